//! Distributed key generation and refresh of the disclosure key, by FROST's DKG
//! (frost-ristretto255; Komlo and Goldberg's Pedersen DKG with proofs of knowledge).
//!
//! Three steps per holder, for a new key ([`begin`], [`exchange`], [`finish`]) and for a
//! refresh that keeps the group key and may drop holders ([`begin_refresh`],
//! [`exchange`], [`finish_refresh`]):
//!
//! 1. `begin`: publish the round-1 package to every other holder; keep the secret.
//! 2. `exchange`: with every other holder's round-1 package, make one round-2 package per
//!    other holder. Round-2 packages are secret: the caller seals each to its recipient.
//! 3. `finish`: with the round-1 packages and the round-2 packages addressed to this holder,
//!    get this holder's [`HolderSecret`] and the public [`DisclosureKey`]. All holders get
//!    the same public key; they compare it before it goes into genesis.

use std::collections::BTreeMap;

use frost_ristretto255 as frost;
use frost_ristretto255::keys::dkg::{round1, round2};
use frost_ristretto255::keys::{KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare};
use frost_ristretto255::{Identifier, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use ristretto::Scalar;
use zeroize::Zeroizing;

use super::{DisclosureKey, HolderKey, HolderSecret, Point, ThresholdError, HOLDERS_MAX};

/// A holder's secret state after step 1. Persist only encrypted.
pub struct Round1Secret(round1::SecretPackage);

/// A holder's secret state after step 2. Persist only encrypted.
pub struct Round2Secret(round2::SecretPackage);

impl std::fmt::Debug for Round1Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Round1Secret(..)")
    }
}

impl std::fmt::Debug for Round2Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Round2Secret(..)")
    }
}

fn dkg_error(error: frost::Error) -> ThresholdError {
    ThresholdError::Dkg(error.to_string())
}

fn identifier(holder: u16) -> Result<Identifier, ThresholdError> {
    Identifier::try_from(holder).map_err(dkg_error)
}

fn check_size(holders: u16, threshold: u16) -> Result<(), ThresholdError> {
    if threshold == 0 || threshold > holders || usize::from(holders) > HOLDERS_MAX {
        return Err(ThresholdError::BadThreshold {
            threshold,
            holders: usize::from(holders),
        });
    }
    Ok(())
}

impl Round1Secret {
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
        self.0.serialize().map(Zeroizing::new).map_err(dkg_error)
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Round1Secret, ThresholdError> {
        round1::SecretPackage::deserialize(bytes)
            .map(Round1Secret)
            .map_err(dkg_error)
    }
}

impl Round2Secret {
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ThresholdError> {
        self.0.serialize().map(Zeroizing::new).map_err(dkg_error)
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Round2Secret, ThresholdError> {
        round2::SecretPackage::deserialize(bytes)
            .map(Round2Secret)
            .map_err(dkg_error)
    }
}

/// Step 1 of a new key: `holder` of `holders`, any `threshold` of whom can open.
pub fn begin<R: RngCore + CryptoRng>(
    holder: u16,
    holders: u16,
    threshold: u16,
    rng: &mut R,
) -> Result<(Round1Secret, Vec<u8>), ThresholdError> {
    check_size(holders, threshold)?;
    let (secret, package) =
        frost::keys::dkg::part1(identifier(holder)?, holders, threshold, rng).map_err(dkg_error)?;
    Ok((
        Round1Secret(secret),
        package.serialize().map_err(dkg_error)?,
    ))
}

/// Step 1 of a refresh: the holders taking part (`holders` of them, all from the current
/// key) make fresh shares of the same group key; holders left out lose theirs.
pub fn begin_refresh<R: RngCore + CryptoRng>(
    holder: u16,
    holders: u16,
    threshold: u16,
    rng: &mut R,
) -> Result<(Round1Secret, Vec<u8>), ThresholdError> {
    check_size(holders, threshold)?;
    let (secret, package) =
        frost::keys::refresh::refresh_dkg_part1(identifier(holder)?, holders, threshold, rng)
            .map_err(dkg_error)?;
    Ok((
        Round1Secret(secret),
        package.serialize().map_err(dkg_error)?,
    ))
}

/// Packages by holder number, decoded with `deserialize` and keyed by FROST identifier.
fn packages<T>(
    packages: &BTreeMap<u16, Vec<u8>>,
    deserialize: fn(&[u8]) -> Result<T, frost::Error>,
) -> Result<BTreeMap<Identifier, T>, ThresholdError> {
    packages
        .iter()
        .map(|(holder, bytes)| {
            let package = deserialize(bytes).map_err(dkg_error)?;
            Ok((identifier(*holder)?, package))
        })
        .collect()
}

fn round1_packages(
    given: &BTreeMap<u16, Vec<u8>>,
) -> Result<BTreeMap<Identifier, round1::Package>, ThresholdError> {
    packages(given, round1::Package::deserialize)
}

fn round2_packages(
    given: &BTreeMap<u16, Vec<u8>>,
) -> Result<BTreeMap<Identifier, round2::Package>, ThresholdError> {
    packages(given, round2::Package::deserialize)
}

/// The holder number behind a FROST identifier (holders are numbered 1..=HOLDERS_MAX).
fn holder_number(id: &Identifier) -> Result<u16, ThresholdError> {
    (1..=HOLDERS_MAX as u16)
        .find(|&number| identifier(number).ok().as_ref() == Some(id))
        .ok_or(ThresholdError::HolderNumbering)
}

/// Round-2 packages by recipient holder: secret, each for its recipient only.
pub type Outgoing = BTreeMap<u16, Zeroizing<Vec<u8>>>;

/// Step 2 (new key or refresh): `others` maps every other holder to its round-1 package.
/// Returns one secret round-2 package for each other holder.
pub fn exchange(
    secret: Round1Secret,
    others: &BTreeMap<u16, Vec<u8>>,
    refresh: bool,
) -> Result<(Round2Secret, Outgoing), ThresholdError> {
    let round1 = round1_packages(others)?;
    let (secret, outgoing) = if refresh {
        frost::keys::refresh::refresh_dkg_part2(secret.0, &round1)
    } else {
        frost::keys::dkg::part2(secret.0, &round1)
    }
    .map_err(dkg_error)?;
    let mut packages = BTreeMap::new();
    for (id, package) in outgoing {
        let bytes = package.serialize().map_err(dkg_error)?;
        packages.insert(holder_number(&id)?, Zeroizing::new(bytes));
    }
    Ok((Round2Secret(secret), packages))
}

/// Step 3 of a new key: every other holder's round-1 package and the round-2 packages
/// addressed to this holder.
pub fn finish(
    epoch: u32,
    secret: &Round2Secret,
    round1: &BTreeMap<u16, Vec<u8>>,
    round2: &BTreeMap<u16, Vec<u8>>,
) -> Result<(HolderSecret, DisclosureKey), ThresholdError> {
    let (key_package, public) = frost::keys::dkg::part3(
        &secret.0,
        &round1_packages(round1)?,
        &round2_packages(round2)?,
    )
    .map_err(dkg_error)?;
    export(epoch, 0, &key_package, &public)
}

/// Step 3 of a refresh: as [`finish`], plus this holder's current share and the current
/// public key. The group key stays; `refresh` counts up.
pub fn finish_refresh(
    secret: &Round2Secret,
    round1: &BTreeMap<u16, Vec<u8>>,
    round2: &BTreeMap<u16, Vec<u8>>,
    current: &DisclosureKey,
    current_secret: &HolderSecret,
) -> Result<(HolderSecret, DisclosureKey), ThresholdError> {
    current_secret.check_against(current)?;
    let (old_key_package, old_public) = import(current, current_secret)?;
    let (key_package, public) = frost::keys::refresh::refresh_dkg_shares(
        &secret.0,
        &round1_packages(round1)?,
        &round2_packages(round2)?,
        old_public,
        old_key_package,
    )
    .map_err(dkg_error)?;
    let refresh = current.refresh.checked_add(1).ok_or_else(|| {
        ThresholdError::Dkg("no refresh after this one: start a new epoch".into())
    })?;
    export(current.epoch, refresh, &key_package, &public)
}

fn export(
    epoch: u32,
    refresh: u32,
    key_package: &KeyPackage,
    public: &PublicKeyPackage,
) -> Result<(HolderSecret, DisclosureKey), ThresholdError> {
    let mut holders = Vec::with_capacity(public.verifying_shares().len());
    for (id, share) in public.verifying_shares() {
        holders.push(HolderKey {
            holder: holder_number(id)?,
            share_key: point_of(&share.serialize().map_err(dkg_error)?)?,
        });
    }
    holders.sort_by_key(|holder| holder.holder);
    let key = DisclosureKey {
        epoch,
        refresh,
        threshold: *key_package.min_signers(),
        group_key: point_of(&public.verifying_key().serialize().map_err(dkg_error)?)?,
        holders,
    };
    let share_bytes = Zeroizing::new(key_package.signing_share().serialize());
    let scalar = Option::<Scalar>::from(Scalar::from_canonical_bytes(
        share_bytes
            .as_slice()
            .try_into()
            .map_err(|_| ThresholdError::InvalidScalar)?,
    ))
    .ok_or(ThresholdError::InvalidScalar)?;
    let holder = holder_number(key_package.identifier())?;
    let secret = HolderSecret::new(epoch, refresh, holder, &scalar);
    key.check()?;
    secret.check_against(&key)?;
    Ok((secret, key))
}

fn point_of(bytes: &[u8]) -> Result<Point, ThresholdError> {
    let point = Point(bytes.try_into().map_err(|_| ThresholdError::InvalidPoint)?);
    point.decode()?;
    Ok(point)
}

fn import(
    key: &DisclosureKey,
    secret: &HolderSecret,
) -> Result<(KeyPackage, PublicKeyPackage), ThresholdError> {
    let verifying_key = VerifyingKey::deserialize(&key.group_key.0).map_err(dkg_error)?;
    let mut shares = BTreeMap::new();
    for holder in &key.holders {
        let share = VerifyingShare::deserialize(&holder.share_key.0).map_err(dkg_error)?;
        shares.insert(identifier(holder.holder)?, share);
    }
    let own = identifier(secret.holder)?;
    let own_share = *shares.get(&own).ok_or(ThresholdError::UnknownHolder {
        holder: secret.holder,
    })?;
    let signing_share = SigningShare::deserialize(&secret.share).map_err(dkg_error)?;
    let key_package = KeyPackage::new(own, signing_share, own_share, verifying_key, key.threshold);
    let public = PublicKeyPackage::new(shares, verifying_key, Some(key.threshold));
    Ok((key_package, public))
}

/// Runs every holder's three steps in one process: for a local testnet and for tests, where
/// one operator makes all the keys anyway. A real network runs the steps on each holder's
/// machine (`halfveil keys dkg`), so that no machine ever sees two shares.
pub fn in_memory<R: RngCore + CryptoRng>(
    epoch: u32,
    numbers: &[u16],
    threshold: u16,
    refresh_of: Option<(&DisclosureKey, &[HolderSecret])>,
    rng: &mut R,
) -> Result<(Vec<HolderSecret>, DisclosureKey), ThresholdError> {
    let count = u16::try_from(numbers.len()).map_err(|_| ThresholdError::HolderNumbering)?;
    let mut round1 = BTreeMap::new();
    let mut public1 = BTreeMap::new();
    for &number in numbers {
        let (secret, package) = match refresh_of {
            Some(_) => begin_refresh(number, count, threshold, rng)?,
            None => begin(number, count, threshold, rng)?,
        };
        round1.insert(number, secret);
        public1.insert(number, package);
    }
    let others = |me: u16| -> BTreeMap<u16, Vec<u8>> {
        public1
            .iter()
            .filter(|(&holder, _)| holder != me)
            .map(|(&holder, package)| (holder, package.clone()))
            .collect()
    };
    let mut round2 = BTreeMap::new();
    let mut mailbox: BTreeMap<u16, BTreeMap<u16, Vec<u8>>> = BTreeMap::new();
    for (number, secret) in round1 {
        let (secret2, outgoing) = exchange(secret, &others(number), refresh_of.is_some())?;
        round2.insert(number, secret2);
        for (to, package) in outgoing {
            mailbox
                .entry(to)
                .or_default()
                .insert(number, package.to_vec());
        }
    }
    let mut secrets = Vec::with_capacity(numbers.len());
    let mut keys: Vec<DisclosureKey> = Vec::with_capacity(numbers.len());
    for &number in numbers {
        let secret2 = round2.get(&number).ok_or(ThresholdError::HolderNumbering)?;
        let inbox = mailbox.remove(&number).unwrap_or_default();
        let (secret, key) = match refresh_of {
            Some((current, old)) => {
                let old = old
                    .iter()
                    .find(|secret| secret.holder == number)
                    .ok_or(ThresholdError::UnknownHolder { holder: number })?;
                finish_refresh(secret2, &others(number), &inbox, current, old)?
            }
            None => finish(epoch, secret2, &others(number), &inbox)?,
        };
        if keys.first().is_some_and(|first| *first != key) {
            return Err(ThresholdError::Dkg("holders disagree on the key".into()));
        }
        secrets.push(secret);
        keys.push(key);
    }
    let key = keys.pop().ok_or(ThresholdError::HolderNumbering)?;
    Ok((secrets, key))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::super::tdh2;
    use super::*;
    use crate::hash::Hash32;
    use rand::rngs::OsRng;

    pub(crate) fn ceremony(
        numbers: &[u16],
        threshold: u16,
        refresh_of: Option<(&DisclosureKey, &[HolderSecret])>,
    ) -> (Vec<HolderSecret>, DisclosureKey) {
        in_memory(7, numbers, threshold, refresh_of, &mut OsRng).unwrap()
    }

    fn open_with(
        key: &DisclosureKey,
        secrets: &[&HolderSecret],
        sealed: &(tdh2::Capsule, Vec<u8>),
        label: &Hash32,
    ) -> Vec<u8> {
        let shares: Vec<_> = secrets
            .iter()
            .map(|secret| {
                tdh2::share(key, secret, label, &sealed.0, &sealed.1, &mut OsRng).unwrap()
            })
            .collect();
        tdh2::open(key, label, &sealed.0, &sealed.1, &shares)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_new_key_opens_with_any_threshold_of_holders() {
        let (secrets, key) = ceremony(&[1, 2, 3, 4], 3, None);
        assert_eq!(
            (key.epoch, key.refresh, key.threshold, key.holders.len()),
            (7, 0, 3, 4)
        );
        let label = Hash32([9; 32]);
        let sealed = tdh2::seal(&key, &label, b"who paid", &mut OsRng).unwrap();
        for subset in [[0, 1, 2], [1, 2, 3], [0, 2, 3], [3, 1, 0]] {
            let chosen: Vec<_> = subset.iter().map(|&index| &secrets[index]).collect();
            assert_eq!(open_with(&key, &chosen, &sealed, &label), b"who paid");
        }
    }

    #[test]
    fn a_refresh_keeps_the_key_drops_a_holder_and_old_shares_stop_working() {
        let (secrets, key) = ceremony(&[1, 2, 3, 4], 2, None);
        let label = Hash32([3; 32]);
        let sealed = tdh2::seal(&key, &label, b"before the refresh", &mut OsRng).unwrap();
        let (fresh, refreshed) = ceremony(&[1, 3, 4], 2, Some((&key, &secrets)));
        assert_eq!(refreshed.group_key, key.group_key);
        assert_eq!(refreshed.refresh, 1);
        let numbers: Vec<u16> = refreshed
            .holders
            .iter()
            .map(|holder| holder.holder)
            .collect();
        assert_eq!(numbers, [1, 3, 4], "holder 2 is dropped");
        assert_eq!(
            open_with(&refreshed, &[&fresh[0], &fresh[2]], &sealed, &label),
            b"before the refresh"
        );
        // An old share checks against the old key only.
        assert!(secrets[0].check_against(&refreshed).is_err());
        let stale =
            tdh2::share(&key, &secrets[0], &label, &sealed.0, &sealed.1, &mut OsRng).unwrap();
        let current = tdh2::share(
            &refreshed, &fresh[1], &label, &sealed.0, &sealed.1, &mut OsRng,
        )
        .unwrap();
        assert_eq!(
            tdh2::open(&refreshed, &label, &sealed.0, &sealed.1, &[stale, current]).unwrap_err(),
            ThresholdError::BadShare { holder: 1 }
        );
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        assert!(matches!(
            begin(1, 3, 0, &mut OsRng),
            Err(ThresholdError::BadThreshold { .. })
        ));
        assert!(matches!(
            begin(1, 3, 4, &mut OsRng),
            Err(ThresholdError::BadThreshold { .. })
        ));
        assert!(
            begin(1, 3, 1, &mut OsRng).is_err(),
            "FROST wants threshold >= 2"
        );
    }
}
