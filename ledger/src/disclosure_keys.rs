//! The disclosure key's history on chain. Genesis names the first key; an
//! [`Op::AdoptKey`](crate::types::Op::AdoptKey) signed by every holder of a new key adopts
//! either a **refresh** (same epoch, group key and threshold; fresh shares; holders may
//! drop out) or a **new epoch** (a new group key, holders and threshold). The chain keeps
//! every epoch's latest key, so what was sealed to an old epoch stays openable, and payers
//! seal to the newest. A holder number names the same party in every key the chain keeps
//! (a party keeps its number, a number is never given to another party while a kept key
//! uses it), so a share record needs no epoch to name its signer.
//!
//! Pure: the rules here are what `apply` checks; the state keeps a [`DisclosureKeys`].

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{CodecError, Violation};
use crate::hash::{Domain, Hash32};
use crate::state::ChainParams;
use crate::threshold::DisclosureKey;
use crate::types::{AuditorId, ChainId, PublicKey, Signature};

/// Who holds a share: an auditor of genesis, or the identity manager (whose first validator
/// key signs for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HolderParty {
    Auditor(AuditorId),
    IdentityManager,
}

impl std::fmt::Display for HolderParty {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HolderParty::Auditor(auditor) => write!(formatter, "auditor {}", auditor.0),
            HolderParty::IdentityManager => formatter.write_str("the identity manager"),
        }
    }
}

/// A key and who holds each of its shares, in the order of `key.holders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldKey {
    pub key: DisclosureKey,
    pub parties: Vec<HolderParty>,
}

/// The op that adopts a new disclosure key: the key, each holder's party and each party's
/// signature over [`KeyAdoption::message`], both in the order of `key.holders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAdoption {
    pub held: HeldKey,
    pub signatures: Vec<Signature>,
}

#[derive(Serialize)]
struct AdoptionMessage<'a> {
    chain_id: &'a ChainId,
    held: &'a HeldKey,
}

impl KeyAdoption {
    /// What every holder of the new key signs; also the key the state remembers the
    /// adoption by (a leaf of its set of disclosure records).
    pub fn message(chain_id: &ChainId, held: &HeldKey) -> Result<Hash32, CodecError> {
        let message = AdoptionMessage { chain_id, held };
        Ok(Domain::KeyAdoption.hash(&codec::encode(&message)?))
    }
}

/// The longest encoded [`KeyAdoption`] decoded from outside (64 holders take about 7 KiB).
pub const KEY_ADOPTION_BYTES_MAX: usize = 16 * 1024;

/// The smallest threshold that makes every opening need `auditor_threshold` auditors, when
/// `others` holders are not auditors: any `threshold` holders then include that many.
pub fn threshold_min(auditor_threshold: u16, others: usize) -> usize {
    usize::from(auditor_threshold) + others
}

/// The chain's disclosure keys: each epoch's latest, oldest first (never empty), each with
/// its holders' signatures (none for genesis's key: genesis's own signatures cover it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisclosureKeys {
    epochs: Vec<KeyAdoption>,
}

impl DisclosureKeys {
    /// The key genesis names.
    pub fn genesis(params: &ChainParams) -> DisclosureKeys {
        DisclosureKeys {
            epochs: vec![KeyAdoption {
                held: HeldKey {
                    key: params.disclosure_key.clone(),
                    parties: params.holder_parties.clone(),
                },
                signatures: Vec::new(),
            }],
        }
    }

    /// The key payers seal to now.
    pub fn current(&self) -> &HeldKey {
        &self.current_adoption().held
    }

    /// The current key with its holders' signatures (none if it is genesis's).
    pub fn current_adoption(&self) -> &KeyAdoption {
        // Never empty: it starts from genesis and only grows.
        &self.epochs[self.epochs.len() - 1]
    }

    /// The latest key of `epoch`.
    pub fn of_epoch(&self, epoch: u32) -> Option<&HeldKey> {
        self.epochs
            .iter()
            .map(|adoption| &adoption.held)
            .find(|held| held.key.epoch == epoch)
    }

    /// Every epoch's latest key, oldest first, with its holders' signatures.
    pub fn epochs(&self) -> &[KeyAdoption] {
        &self.epochs
    }

    /// The party holder number `holder` names (in any epoch).
    pub fn party_of(&self, holder: u16) -> Option<HolderParty> {
        self.numbered()
            .find(|(number, _)| *number == holder)
            .map(|(_, party)| party)
    }

    fn numbered(&self) -> impl Iterator<Item = (u16, HolderParty)> + '_ {
        self.epochs.iter().flat_map(|adoption| {
            let held = &adoption.held;
            held.key
                .holders
                .iter()
                .map(|holder| holder.holder)
                .zip(held.parties.iter().copied())
        })
    }

    /// Moves to an adopted key: a refresh replaces its epoch's key, a new epoch is added.
    pub fn adopt(&mut self, adoption: KeyAdoption) {
        match self.epochs.last_mut() {
            Some(last) if last.held.key.epoch == adoption.held.key.epoch => *last = adoption,
            _ => self.epochs.push(adoption),
        }
    }

    /// Every rule of an adoption but its signatures: the key is sound, its holders are
    /// parties of genesis each once, keep the numbers they had, every opening needs the
    /// auditor threshold, and it is the next refresh of the current epoch or the first key of
    /// the next epoch.
    pub fn check_successor(&self, params: &ChainParams, held: &HeldKey) -> Result<(), Violation> {
        held.check(params)?;
        self.check_numbers(held)?;
        self.check_succession(&held.key)
    }

    /// Each holder keeps the number it had, and no number changes hands.
    fn check_numbers(&self, held: &HeldKey) -> Result<(), Violation> {
        let bad = |reason: String| Err(Violation::BadKeyAdoption { reason });
        for (holder, party) in held.key.holders.iter().zip(&held.parties) {
            for (number, named) in self.numbered() {
                if (number == holder.holder) != (named == *party) {
                    return bad(format!(
                        "holder {} is {party} here but holder {number} is {named} on chain",
                        holder.holder
                    ));
                }
            }
        }
        Ok(())
    }

    /// A refresh of the current key, or the first key of the next epoch.
    fn check_succession(&self, key: &DisclosureKey) -> Result<(), Violation> {
        let current = &self.current().key;
        let bad = |reason: String| Err(Violation::BadKeyAdoption { reason });
        if key.epoch == current.epoch {
            let Some(next) = current.refresh.checked_add(1) else {
                return bad("no refresh after this one: start a new epoch".to_owned());
            };
            if key.refresh != next {
                return bad(format!(
                    "a refresh of epoch {} must be refresh {next}",
                    key.epoch
                ));
            }
            if key.group_key != current.group_key || key.threshold != current.threshold {
                return bad("a refresh keeps the group key and the threshold".to_owned());
            }
            let held_now = |number: u16| current.holders.iter().any(|h| h.holder == number);
            if !key.holders.iter().all(|holder| held_now(holder.holder)) {
                return bad("a refresh cannot add holders: start a new epoch".to_owned());
            }
            return Ok(());
        }
        if u64::from(key.epoch) != u64::from(current.epoch) + 1 || key.refresh != 0 {
            return bad(format!(
                "the key must be epoch {}'s next refresh or epoch {} refresh 0",
                current.epoch,
                u64::from(current.epoch) + 1
            ));
        }
        if self
            .epochs
            .iter()
            .any(|old| old.held.key.group_key == key.group_key)
        {
            return bad("a new epoch needs a new group key".to_owned());
        }
        Ok(())
    }
}

impl HeldKey {
    /// What a key must be on its own: sound, one party of genesis per holder, each once, and
    /// every opening needs the auditor threshold of auditors.
    pub fn check(&self, params: &ChainParams) -> Result<(), Violation> {
        let bad = |reason: String| Err(Violation::BadKeyAdoption { reason });
        self.key
            .check()
            .map_err(|error| Violation::BadKeyAdoption {
                reason: error.to_string(),
            })?;
        if self.parties.len() != self.key.holders.len() {
            return bad("one party per holder".to_owned());
        }
        for (index, party) in self.parties.iter().enumerate() {
            if params.party_key(*party).is_none() {
                return bad(format!("{party} is not in genesis"));
            }
            if self.parties[..index].contains(party) {
                return bad(format!("{party} holds two shares"));
            }
        }
        let others = self
            .parties
            .iter()
            .filter(|party| **party == HolderParty::IdentityManager)
            .count();
        let needed = threshold_min(params.disclosure_threshold, others);
        if usize::from(self.key.threshold) < needed {
            return bad(format!(
                "threshold {} could open without {} auditors: it must be at least {needed}",
                self.key.threshold, params.disclosure_threshold
            ));
        }
        Ok(())
    }
}

impl KeyAdoption {
    /// Checks an adoption on its own, as a payer does before sealing to a key a node hands
    /// it: the key ([`HeldKey::check`]), of genesis's epoch or later, signed by every holder.
    /// Whether it is the chain's current key is the chain's business: a payment sealed to
    /// another epoch is refused, and one sealed to this key opens only by its holders.
    pub fn verify(&self, params: &ChainParams) -> Result<(), Violation> {
        self.held.check(params)?;
        if self.held.key.epoch < params.disclosure_key.epoch {
            return Err(Violation::BadKeyAdoption {
                reason: "older than genesis's key".to_owned(),
            });
        }
        if self.signatures.len() != self.held.parties.len() {
            return Err(Violation::BadKeyAdoption {
                reason: "one signature per holder".to_owned(),
            });
        }
        let message = KeyAdoption::message(&params.chain_id, &self.held)?;
        let holders = self.held.key.holders.iter().zip(&self.held.parties);
        for ((holder, party), signature) in holders.zip(&self.signatures) {
            let holder = holder.holder;
            let key = params
                .party_key(*party)
                .ok_or(Violation::UnknownHolder { holder })?;
            crate::crypto::verify(key, &message, signature)
                .map_err(|_| Violation::BadKeyAdoptionSignature { holder })?;
        }
        Ok(())
    }
}

impl ChainParams {
    /// The signing key of a holder party: an auditor's key, or the IM's first validator key.
    pub fn party_key(&self, party: HolderParty) -> Option<&PublicKey> {
        match party {
            HolderParty::Auditor(auditor) => self.auditor_keys.get(usize::from(auditor.0)),
            HolderParty::IdentityManager => self.validator_keys.first(),
        }
    }
}

#[cfg(test)]
mod tests;
