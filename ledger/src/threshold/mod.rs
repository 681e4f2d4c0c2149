//! The threshold disclosure key: identity credentials and identity records are encrypted to a
//! key that `threshold` of the genesis holders share, and are opened only by combining that
//! many decryption shares. Nobody, the identity manager included, ever holds the private key.
//!
//! - Key generation and refresh ([`dkg`]): FROST's distributed key generation
//!   (frost-ristretto255, the ristretto255 group of RFC 9591), so the group key comes out of a
//!   protocol that no holder controls, and a refresh changes every share but not the key.
//! - Encryption ([`tdh2`]): TDH2 of Shoup and Gennaro ("Securing threshold cryptosystems
//!   against chosen ciphertext attack", J. Cryptology 2002) over ristretto255, with the
//!   message in a ChaCha20-Poly1305 body keyed from the shared point. A ciphertext carries
//!   a Chaum-Pedersen proof that binds its label (a transfer id or account id) and its body,
//!   so a copied or altered ciphertext cannot be opened under another label.
//! - Proofs: elastic-elgamal's `LogEqualityProof` (Chaum-Pedersen, Fiat-Shamir over a merlin
//!   transcript) for the ciphertext and for every decryption share.
//!
//! The pinned crates (frost-ristretto255, elastic-elgamal, merlin, curve25519-dalek 4) are
//! used only inside this module; everything outside sees 32-byte points and 64-byte proofs.

pub mod dkg;
pub mod tdh2;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use elastic_elgamal::group::Ristretto;
use ristretto::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use ristretto::Scalar;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::codec::byte_array;

type ProofKey = elastic_elgamal::PublicKey<Ristretto>;
type ProofSecret = elastic_elgamal::SecretKey<Ristretto>;

/// A ristretto255 point in its canonical 32-byte encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Point(pub [u8; 32]);

impl std::fmt::Debug for Point {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Point({})", hex::encode(self.0))
    }
}

impl Point {
    fn of(point: &RistrettoPoint) -> Point {
        Point(point.compress().to_bytes())
    }

    /// Decodes a canonical encoding that is not the identity.
    fn decode(&self) -> Result<RistrettoPoint, ThresholdError> {
        let point = CompressedRistretto(self.0)
            .decompress()
            .ok_or(ThresholdError::InvalidPoint)?;
        if point == RistrettoPoint::default() {
            return Err(ThresholdError::IdentityPoint);
        }
        Ok(point)
    }

    fn proof_key(&self) -> Result<ProofKey, ThresholdError> {
        self.decode()?;
        ProofKey::from_bytes(&self.0).map_err(|_| ThresholdError::InvalidPoint)
    }
}

/// One holder's public share of the group key: `share_key = x_i * G`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderKey {
    /// The holder's number, 1 to n (its FROST identifier).
    pub holder: u16,
    pub share_key: Point,
}

/// The public side of one epoch's disclosure key, as genesis names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureKey {
    /// The group key's generation: a new DKG starts a new epoch, and every ciphertext names
    /// the epoch it was sealed to.
    pub epoch: u32,
    /// How often this epoch's shares were refreshed (the group key stays).
    pub refresh: u32,
    /// How many distinct holders' shares open a ciphertext.
    pub threshold: u16,
    pub group_key: Point,
    /// Sorted by holder number, no duplicates (a refresh may leave gaps).
    pub holders: Vec<HolderKey>,
}

impl DisclosureKey {
    /// Checks the key is usable: 1 <= threshold <= holders, holder numbers non-zero and
    /// increasing, every point valid, and the first `threshold` shares interpolate to the
    /// group key.
    pub fn check(&self) -> Result<(), ThresholdError> {
        let count = self.holders.len();
        if self.threshold == 0 || usize::from(self.threshold) > count || count > HOLDERS_MAX {
            return Err(ThresholdError::BadThreshold {
                threshold: self.threshold,
                holders: count,
            });
        }
        let mut previous = 0u16;
        for holder in &self.holders {
            if holder.holder <= previous {
                return Err(ThresholdError::HolderNumbering);
            }
            previous = holder.holder;
            holder.share_key.decode()?;
        }
        let group_key = self.group_key.decode()?;
        let (first, others) = self.holders.split_at(usize::from(self.threshold));
        let numbers: Vec<u16> = first.iter().map(|holder| holder.holder).collect();
        let value_at = |at: Scalar| -> Result<RistrettoPoint, ThresholdError> {
            let mut sum = RistrettoPoint::default();
            for holder in first {
                sum += lagrange_at(at, holder.holder, &numbers) * holder.share_key.decode()?;
            }
            Ok(sum)
        };
        if value_at(Scalar::ZERO)? != group_key {
            return Err(ThresholdError::SharesDoNotMatchKey);
        }
        // Every other share lies on the same polynomial: a holder whose share does not could
        // never take part in an opening.
        for holder in others {
            if value_at(Scalar::from(u64::from(holder.holder)))? != holder.share_key.decode()? {
                return Err(ThresholdError::SharesDoNotMatchKey);
            }
        }
        Ok(())
    }

    pub fn holder_key(&self, holder: u16) -> Result<Point, ThresholdError> {
        self.holders
            .iter()
            .find(|entry| entry.holder == holder)
            .map(|entry| entry.share_key)
            .ok_or(ThresholdError::UnknownHolder { holder })
    }
}

/// The most holders a disclosure key may have.
pub const HOLDERS_MAX: usize = 64;

/// One holder's secret share of an epoch's key. Zeroized on drop; never logged.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
pub struct HolderSecret {
    pub epoch: u32,
    pub refresh: u32,
    pub holder: u16,
    #[serde(with = "byte_array")]
    share: [u8; 32],
}

impl std::fmt::Debug for HolderSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "HolderSecret(epoch {}.{}, holder {}, ..)",
            self.epoch, self.refresh, self.holder
        )
    }
}

impl HolderSecret {
    fn new(epoch: u32, refresh: u32, holder: u16, share: &Scalar) -> HolderSecret {
        HolderSecret {
            epoch,
            refresh,
            holder,
            share: share.to_bytes(),
        }
    }

    /// The secret share's 32 bytes, for an encrypted key file.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.share)
    }

    /// This share's public key, `x_i * G`.
    pub fn public(&self) -> Result<Point, ThresholdError> {
        Ok(Point::of(&RistrettoPoint::mul_base(&self.scalar()?)))
    }

    /// The holder of `key` whose public share `share` (a key file's secret) is.
    pub fn for_key(key: &DisclosureKey, share: &[u8; 32]) -> Result<HolderSecret, ThresholdError> {
        let scalar = Option::<Scalar>::from(Scalar::from_canonical_bytes(*share))
            .ok_or(ThresholdError::InvalidScalar)?;
        let public = Point::of(&RistrettoPoint::mul_base(&scalar));
        let holder = key
            .holders
            .iter()
            .find(|holder| holder.share_key == public)
            .ok_or(ThresholdError::NotAHolder)?;
        Ok(HolderSecret::new(
            key.epoch,
            key.refresh,
            holder.holder,
            &scalar,
        ))
    }

    fn scalar(&self) -> Result<Scalar, ThresholdError> {
        Option::from(Scalar::from_canonical_bytes(self.share)).ok_or(ThresholdError::InvalidScalar)
    }

    fn proof_secret(&self) -> Result<ProofSecret, ThresholdError> {
        ProofSecret::from_bytes(&self.share).ok_or(ThresholdError::InvalidScalar)
    }

    /// Checks that this share is the one `key` publishes for its holder.
    pub fn check_against(&self, key: &DisclosureKey) -> Result<(), ThresholdError> {
        if (self.epoch, self.refresh) != (key.epoch, key.refresh) {
            return Err(ThresholdError::StaleShare {
                epoch: self.epoch,
                refresh: self.refresh,
                key_epoch: key.epoch,
                key_refresh: key.refresh,
            });
        }
        let public = key.holder_key(self.holder)?;
        if Point::of(&RistrettoPoint::mul_base(&self.scalar()?)) != public {
            return Err(ThresholdError::ShareDoesNotMatchKey {
                holder: self.holder,
            });
        }
        Ok(())
    }
}

/// The Lagrange coefficient of `holder` at zero over the set `numbers` (distinct, non-zero).
fn lagrange_at_zero(holder: u16, numbers: &[u16]) -> Scalar {
    lagrange_at(Scalar::ZERO, holder, numbers)
}

/// The Lagrange coefficient of `holder` among `numbers` for the polynomial's value at `at`.
fn lagrange_at(at: Scalar, holder: u16, numbers: &[u16]) -> Scalar {
    let x_i = Scalar::from(u64::from(holder));
    let mut numerator = Scalar::ONE;
    let mut denominator = Scalar::ONE;
    for &other in numbers.iter().filter(|&&other| other != holder) {
        let x_j = Scalar::from(u64::from(other));
        numerator *= x_j - at;
        denominator *= x_j - x_i;
    }
    numerator * denominator.invert()
}

/// TDH2's second generator: a point nobody knows the discrete log of, derived from a fixed
/// string with ristretto255's hash-to-group (RFC 9496's one-way map of 64 uniform bytes);
/// with its multiplication table.
fn second_generator(
) -> Result<&'static (RistrettoPoint, ProofKey, RistrettoBasepointTable), ThresholdError> {
    static GENERATOR: OnceLock<Option<(RistrettoPoint, ProofKey, RistrettoBasepointTable)>> =
        OnceLock::new();
    let generator = GENERATOR.get_or_init(|| {
        let mut uniform = [0u8; 64];
        blake3::Hasher::new_derive_key("halfveil v1 tdh2 second generator")
            .finalize_xof()
            .fill(&mut uniform);
        let point = RistrettoPoint::from_uniform_bytes(&uniform);
        let key = Point::of(&point).proof_key().ok()?;
        Some((point, key, RistrettoBasepointTable::create(&point)))
    });
    generator.as_ref().ok_or(ThresholdError::InvalidPoint)
}

/// A multiplication table of the last group key sealed to: a payer or a benchmark seals
/// many credentials to one key, and a table multiplies about four times faster.
fn group_table(key: &Point) -> Result<Arc<RistrettoBasepointTable>, ThresholdError> {
    static LAST: Mutex<Option<(Point, Arc<RistrettoBasepointTable>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((point, table)) = last.as_ref() {
        if point == key {
            return Ok(Arc::clone(table));
        }
    }
    let table = Arc::new(RistrettoBasepointTable::create(&key.decode()?));
    *last = Some((*key, Arc::clone(&table)));
    Ok(table)
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ThresholdError {
    #[error("not a valid ristretto255 point")]
    InvalidPoint,
    #[error("the identity point is not allowed here")]
    IdentityPoint,
    #[error("not a canonical scalar")]
    InvalidScalar,
    #[error("threshold {threshold} does not fit {holders} holders")]
    BadThreshold { threshold: u16, holders: usize },
    #[error("holders must be numbered 1, 2, ... n in order")]
    HolderNumbering,
    #[error("the holders' public shares do not interpolate to the group key")]
    SharesDoNotMatchKey,
    #[error("holder {holder} is not one of this key's holders")]
    UnknownHolder { holder: u16 },
    #[error("this share is not one of the disclosure key's holders' shares")]
    NotAHolder,
    #[error("holder {holder}'s secret share does not match its public share")]
    ShareDoesNotMatchKey { holder: u16 },
    #[error("the ciphertext is for key epoch {found}, this key is epoch {expected}")]
    WrongEpoch { found: u32, expected: u32 },
    #[error("this share is of key {epoch}.{refresh}, the key is {key_epoch}.{key_refresh}")]
    StaleShare {
        epoch: u32,
        refresh: u32,
        key_epoch: u32,
        key_refresh: u32,
    },
    #[error("the ciphertext's proof does not verify: wrong label, or the ciphertext was altered")]
    BadCiphertextProof,
    #[error("holder {holder}'s decryption share does not verify")]
    BadShare { holder: u16 },
    #[error("holder {holder} gave two shares")]
    DuplicateShare { holder: u16 },
    #[error("{shares} valid shares, {threshold} needed")]
    TooFewShares { shares: usize, threshold: u16 },
    #[error("the body does not open under the combined key")]
    OpenFailed,
    #[error("key generation failed: {0}")]
    Dkg(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn lagrange_interpolates_a_line_at_zero() {
        // f(x) = 7 + 3x: f(1) = 10, f(3) = 16; f(0) = 7.
        let numbers = [1u16, 3];
        let at_zero = lagrange_at_zero(1, &numbers) * Scalar::from(10u64)
            + lagrange_at_zero(3, &numbers) * Scalar::from(16u64);
        assert_eq!(at_zero, Scalar::from(7u64));
    }

    /// Every share must lie on the polynomial, not just the first `threshold`: a key whose
    /// last holder's share is off it is refused, as is one whose shares miss the group key.
    #[test]
    fn a_share_off_the_polynomial_is_refused() {
        let mut rng = rand::rngs::OsRng;
        let (_, key) = dkg::in_memory(1, &[1, 2, 3, 5], 2, None, &mut rng).unwrap();
        key.check().unwrap();
        let mut off = key.clone();
        let last = off.holders.len() - 1;
        off.holders[last].share_key = off.holders[0].share_key;
        assert_eq!(
            off.check().unwrap_err(),
            ThresholdError::SharesDoNotMatchKey
        );
        let mut wrong_group = key.clone();
        wrong_group.group_key = key.holders[1].share_key;
        assert_eq!(
            wrong_group.check().unwrap_err(),
            ThresholdError::SharesDoNotMatchKey
        );
    }

    #[test]
    fn identity_and_garbage_points_are_refused() {
        assert_eq!(
            Point([0u8; 32]).decode().unwrap_err(),
            ThresholdError::IdentityPoint
        );
        assert_eq!(
            Point([0xff; 32]).decode().unwrap_err(),
            ThresholdError::InvalidPoint
        );
    }
}
