//! TDH2 over ristretto255 with an AEAD body.
//!
//! With generator `G`, second generator `H` ([`super::second_generator`]), group key
//! `Y = x*G`, label `L` and epoch `e`:
//!
//! - **Seal**: random `r`; `U = r*G`, `Ū = r*H`, `K = r*Y`; the body is ChaCha20-Poly1305
//!   of the message under `blake3-derive("halfveil v1 tdh2 body key", K || U || L)` with a
//!   zero nonce (every key is used once) and associated data `e || L`. A Chaum-Pedersen
//!   proof that `log_G U = log_H Ū`, over a transcript of `e`, `L` and the body, makes the
//!   ciphertext non-malleable (TDH2's validity proof; anyone can check it).
//! - **Share**: a holder checks the ciphertext's proof first (an invalid ciphertext gets no
//!   share), then gives `U_i = x_i*U` and a Chaum-Pedersen proof that
//!   `log_G Y_i = log_U U_i`, over a transcript of `e`, `L` and its number.
//! - **Open**: with `threshold` verified shares from distinct holders,
//!   `K = sum(lambda_i * U_i)` (Lagrange at zero), then the body opens.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use elastic_elgamal::LogEqualityProof;
use merlin::Transcript;
use rand_core::{CryptoRng, RngCore};
use ristretto::ristretto::RistrettoPoint;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    group_table, lagrange_at_zero, second_generator, DisclosureKey, HolderSecret, Point,
    ProofSecret, ThresholdError,
};
use crate::codec::byte_array;
use crate::hash::Hash32;

/// The key-encapsulation part of a ciphertext: `U`, `Ū` and the validity proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capsule {
    pub epoch: u32,
    pub u: Point,
    pub u_bar: Point,
    /// Chaum-Pedersen proof `(challenge, response)`, two scalars.
    #[serde(with = "byte_array")]
    pub proof: [u8; 64],
}

/// One holder's decryption share of one ciphertext, with its proof of correctness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptionShare {
    pub holder: u16,
    pub point: Point,
    #[serde(with = "byte_array")]
    pub proof: [u8; 64],
}

/// The body's AEAD tag length: a body is the plaintext's length plus this.
pub const BODY_OVERHEAD: usize = 16;

fn ciphertext_transcript(epoch: u32, label: &Hash32, body: &[u8]) -> Transcript {
    let mut transcript = Transcript::new(b"halfveil v1 tdh2 ciphertext");
    transcript.append_message(b"epoch", &epoch.to_le_bytes());
    transcript.append_message(b"label", label.as_bytes());
    transcript.append_message(b"body", body);
    transcript
}

fn share_transcript(epoch: u32, label: &Hash32, holder: u16) -> Transcript {
    let mut transcript = Transcript::new(b"halfveil v1 tdh2 decryption share");
    transcript.append_message(b"epoch", &epoch.to_le_bytes());
    transcript.append_message(b"label", label.as_bytes());
    transcript.append_message(b"holder", &holder.to_le_bytes());
    transcript
}

fn body_cipher(shared: &RistrettoPoint, u: &Point, label: &Hash32) -> ChaCha20Poly1305 {
    let mut hasher = blake3::Hasher::new_derive_key("halfveil v1 tdh2 body key");
    hasher.update(shared.compress().as_bytes());
    hasher.update(&u.0);
    hasher.update(label.as_bytes());
    let key = Zeroizing::new(*hasher.finalize().as_bytes());
    ChaCha20Poly1305::new(key.as_ref().into())
}

fn body_aad(epoch: u32, label: &Hash32) -> [u8; 36] {
    let mut aad = [0u8; 36];
    aad[..4].copy_from_slice(&epoch.to_le_bytes());
    aad[4..].copy_from_slice(label.as_bytes());
    aad
}

fn proof_bytes(proof: LogEqualityProof<elastic_elgamal::group::Ristretto>) -> [u8; 64] {
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&proof.to_bytes());
    bytes
}

fn parse_proof(
    bytes: &[u8; 64],
) -> Result<LogEqualityProof<elastic_elgamal::group::Ristretto>, ThresholdError> {
    LogEqualityProof::from_bytes(bytes).ok_or(ThresholdError::InvalidScalar)
}

/// Encrypts `plaintext` to `key` under `label`.
pub fn seal<R: RngCore + CryptoRng>(
    key: &DisclosureKey,
    label: &Hash32,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Capsule, Vec<u8>), ThresholdError> {
    let group_table = group_table(&key.group_key)?;
    let (_, generator_key, generator_table) = second_generator()?;
    let r = ProofSecret::generate(rng);
    let u = RistrettoPoint::mul_base(r.expose_scalar());
    let u_bar = generator_table * r.expose_scalar();
    let u_point = Point::of(&u);
    let body = body_cipher(&(&*group_table * r.expose_scalar()), &u_point, label)
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: plaintext,
                aad: &body_aad(key.epoch, label),
            },
        )
        .map_err(|_| ThresholdError::OpenFailed)?;
    let proof = LogEqualityProof::new(
        generator_key,
        &r,
        (u, u_bar),
        &mut ciphertext_transcript(key.epoch, label, &body),
        rng,
    );
    let capsule = Capsule {
        epoch: key.epoch,
        u: u_point,
        u_bar: Point::of(&u_bar),
        proof: proof_bytes(proof),
    };
    Ok((capsule, body))
}

/// Checks a ciphertext is well formed and bound to `label` (anyone can; holders must before
/// they share).
pub fn check(
    key: &DisclosureKey,
    label: &Hash32,
    capsule: &Capsule,
    body: &[u8],
) -> Result<(), ThresholdError> {
    if capsule.epoch != key.epoch {
        return Err(ThresholdError::WrongEpoch {
            found: capsule.epoch,
            expected: key.epoch,
        });
    }
    let u = capsule.u.decode()?;
    let u_bar = capsule.u_bar.decode()?;
    parse_proof(&capsule.proof)?
        .verify(
            &second_generator()?.1,
            (u, u_bar),
            &mut ciphertext_transcript(key.epoch, label, body),
        )
        .map_err(|_| ThresholdError::BadCiphertextProof)
}

/// A holder's decryption share of a ciphertext it has checked.
pub fn share<R: RngCore + CryptoRng>(
    key: &DisclosureKey,
    secret: &HolderSecret,
    label: &Hash32,
    capsule: &Capsule,
    body: &[u8],
    rng: &mut R,
) -> Result<DecryptionShare, ThresholdError> {
    check(key, label, capsule, body)?;
    secret.check_against(key)?;
    let x_i = secret.proof_secret()?;
    let share_key = key.holder_key(secret.holder)?.decode()?;
    let u_key = capsule.u.proof_key()?;
    let u_i = capsule.u.decode()? * x_i.expose_scalar();
    let proof = LogEqualityProof::new(
        &u_key,
        &x_i,
        (share_key, u_i),
        &mut share_transcript(key.epoch, label, secret.holder),
        rng,
    );
    Ok(DecryptionShare {
        holder: secret.holder,
        point: Point::of(&u_i),
        proof: proof_bytes(proof),
    })
}

/// Checks one holder's share of a ciphertext (the ciphertext itself is checked separately).
pub fn verify_share(
    key: &DisclosureKey,
    label: &Hash32,
    capsule: &Capsule,
    share: &DecryptionShare,
) -> Result<(), ThresholdError> {
    let share_key = key.holder_key(share.holder)?.decode()?;
    let u_key = capsule.u.proof_key()?;
    let bad = ThresholdError::BadShare {
        holder: share.holder,
    };
    let u_i = share.point.decode().map_err(|_| bad.clone())?;
    parse_proof(&share.proof)
        .map_err(|_| bad.clone())?
        .verify(
            &u_key,
            (share_key, u_i),
            &mut share_transcript(key.epoch, label, share.holder),
        )
        .map_err(|_| bad)
}

/// Opens a ciphertext with at least `threshold` verified shares of distinct holders.
pub fn open(
    key: &DisclosureKey,
    label: &Hash32,
    capsule: &Capsule,
    body: &[u8],
    shares: &[DecryptionShare],
) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
    check(key, label, capsule, body)?;
    let needed = usize::from(key.threshold);
    let mut chosen: Vec<&DecryptionShare> = Vec::with_capacity(needed);
    for share in shares {
        if chosen.iter().any(|other| other.holder == share.holder) {
            return Err(ThresholdError::DuplicateShare {
                holder: share.holder,
            });
        }
        verify_share(key, label, capsule, share)?;
        chosen.push(share);
    }
    if chosen.len() < needed {
        return Err(ThresholdError::TooFewShares {
            shares: chosen.len(),
            threshold: key.threshold,
        });
    }
    chosen.truncate(needed);
    let numbers: Vec<u16> = chosen.iter().map(|share| share.holder).collect();
    let mut shared = RistrettoPoint::default();
    for share in &chosen {
        shared += lagrange_at_zero(share.holder, &numbers) * share.point.decode()?;
    }
    let plaintext = body_cipher(&shared, &capsule.u, label)
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: body,
                aad: &body_aad(key.epoch, label),
            },
        )
        .map_err(|_| ThresholdError::OpenFailed)?;
    Ok(Zeroizing::new(plaintext))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::super::dkg::tests::ceremony;
    use super::*;
    use rand::rngs::OsRng;

    struct Fixture {
        key: DisclosureKey,
        secrets: Vec<HolderSecret>,
        label: Hash32,
        capsule: Capsule,
        body: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let (secrets, key) = ceremony(&[1, 2, 3], 2, None);
        let label = Hash32([1; 32]);
        let (capsule, body) = seal(&key, &label, b"the payer's identity", &mut OsRng).unwrap();
        Fixture {
            key,
            secrets,
            label,
            capsule,
            body,
        }
    }

    fn shares(
        fixture: &Fixture,
        label: &Hash32,
        capsule: &Capsule,
        body: &[u8],
    ) -> Vec<DecryptionShare> {
        fixture.secrets[..2]
            .iter()
            .map(|secret| share(&fixture.key, secret, label, capsule, body, &mut OsRng).unwrap())
            .collect()
    }

    #[test]
    fn a_sealed_message_opens_with_threshold_shares() {
        let f = fixture();
        assert_eq!(f.body.len(), 20 + BODY_OVERHEAD);
        check(&f.key, &f.label, &f.capsule, &f.body).unwrap();
        let shares = shares(&f, &f.label, &f.capsule, &f.body);
        let opened = open(&f.key, &f.label, &f.capsule, &f.body, &shares).unwrap();
        assert_eq!(&opened[..], b"the payer's identity");
    }

    #[test]
    fn a_copied_ciphertext_under_another_label_gets_no_share() {
        let f = fixture();
        let other = Hash32([2; 32]);
        assert_eq!(
            check(&f.key, &other, &f.capsule, &f.body),
            Err(ThresholdError::BadCiphertextProof)
        );
        for secret in &f.secrets {
            assert_eq!(
                share(&f.key, secret, &other, &f.capsule, &f.body, &mut OsRng).unwrap_err(),
                ThresholdError::BadCiphertextProof
            );
        }
    }

    #[test]
    fn related_ciphertexts_are_refused() {
        let f = fixture();
        let mut body = f.body.clone();
        body[0] ^= 1;
        assert_eq!(
            check(&f.key, &f.label, &f.capsule, &body),
            Err(ThresholdError::BadCiphertextProof)
        );
        // U + G: a ciphertext whose shares would differ by a known amount.
        let mut shifted = f.capsule;
        let u = f.capsule.u.decode().unwrap() + ristretto::constants::RISTRETTO_BASEPOINT_POINT;
        shifted.u = Point::of(&u);
        assert_eq!(
            check(&f.key, &f.label, &shifted, &f.body),
            Err(ThresholdError::BadCiphertextProof)
        );
        let mut swapped = f.capsule;
        swapped.u_bar = f.capsule.u;
        assert_eq!(
            check(&f.key, &f.label, &swapped, &f.body),
            Err(ThresholdError::BadCiphertextProof)
        );
        let mut other_epoch = f.capsule;
        other_epoch.epoch += 1;
        assert!(matches!(
            check(&f.key, &f.label, &other_epoch, &f.body),
            Err(ThresholdError::WrongEpoch { .. })
        ));
    }

    #[test]
    fn the_identity_point_is_refused_everywhere() {
        let f = fixture();
        let mut capsule = f.capsule;
        capsule.u = Point([0; 32]);
        assert_eq!(
            check(&f.key, &f.label, &capsule, &f.body),
            Err(ThresholdError::IdentityPoint)
        );
        let mut shares = shares(&f, &f.label, &f.capsule, &f.body);
        shares[0].point = Point([0; 32]);
        assert_eq!(
            open(&f.key, &f.label, &f.capsule, &f.body, &shares).unwrap_err(),
            ThresholdError::BadShare { holder: 1 }
        );
        let mut key = f.key.clone();
        key.group_key = Point([0; 32]);
        assert_eq!(key.check(), Err(ThresholdError::IdentityPoint));
    }

    #[test]
    fn bad_shares_and_too_few_shares_open_nothing() {
        let f = fixture();
        let good = shares(&f, &f.label, &f.capsule, &f.body);
        // A share moved to another holder's number, a share for another label, a forged point.
        let mut renamed = good.clone();
        renamed[1].holder = 3;
        assert_eq!(
            open(&f.key, &f.label, &f.capsule, &f.body, &renamed).unwrap_err(),
            ThresholdError::BadShare { holder: 3 }
        );
        let mut forged = good.clone();
        forged[0].point = f.capsule.u;
        assert_eq!(
            open(&f.key, &f.label, &f.capsule, &f.body, &forged).unwrap_err(),
            ThresholdError::BadShare { holder: 1 }
        );
        let duplicated = [good[0], good[0]];
        assert_eq!(
            open(&f.key, &f.label, &f.capsule, &f.body, &duplicated).unwrap_err(),
            ThresholdError::DuplicateShare { holder: 1 }
        );
        assert_eq!(
            open(&f.key, &f.label, &f.capsule, &f.body, &good[..1]).unwrap_err(),
            ThresholdError::TooFewShares {
                shares: 1,
                threshold: 2
            }
        );
        let unknown = DecryptionShare {
            holder: 9,
            ..good[0]
        };
        assert_eq!(
            verify_share(&f.key, &f.label, &f.capsule, &unknown),
            Err(ThresholdError::UnknownHolder { holder: 9 })
        );
    }

    #[test]
    fn a_wrong_label_does_not_open_even_with_valid_shares() {
        let f = fixture();
        let good = shares(&f, &f.label, &f.capsule, &f.body);
        let other = Hash32([5; 32]);
        assert!(open(&f.key, &other, &f.capsule, &f.body, &good).is_err());
    }

    #[test]
    fn a_share_from_a_secret_of_another_key_is_refused_before_it_is_made() {
        let f = fixture();
        let (strangers, _) = ceremony(&[1, 2, 3], 2, None);
        assert!(matches!(
            share(
                &f.key,
                &strangers[0],
                &f.label,
                &f.capsule,
                &f.body,
                &mut OsRng
            ),
            Err(ThresholdError::ShareDoesNotMatchKey { holder: 1 })
        ));
    }

    #[test]
    fn encodings_round_trip_through_the_codec() {
        let f = fixture();
        let bytes = crate::codec::encode(&f.capsule).unwrap();
        assert_eq!(bytes.len(), 1 + 32 + 32 + 64, "epoch 7 is one varint byte");
        let back: Capsule = crate::codec::decode(&bytes, 256).unwrap();
        assert_eq!(back, f.capsule);
    }
}
