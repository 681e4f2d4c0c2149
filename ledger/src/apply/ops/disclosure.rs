//! Disclosure on chain. An order: of this chain, not expired, not recorded before, signed by
//! at least the threshold of distinct auditors. A share record: of a recorded order, before
//! it expires, by a holder of the disclosure key, once per holder, signed by the holder.
//! Orders and share records are both remembered in the state's set of disclosure records.

use super::super::{Execution, SigCheck};
use crate::disclosure_keys::KeyAdoption;
use crate::error::Violation;
use crate::fastmap::{HashSet, HashSetExt};
use crate::hash::Hash32;
use crate::types::{DisclosureOrder, OrderOp, ShareRecord, DISCLOSURE_SIGNERS_MAX, VERSION};

impl Execution<'_> {
    pub(in crate::apply) fn disclosure_order(
        &mut self,
        index: usize,
        op: &OrderOp,
    ) -> Result<(), Violation> {
        let order_hash = self.check_order(&op.order)?;
        if self.recorded(&order_hash) {
            return Err(Violation::OrderServed { order: order_hash });
        }
        let threshold = self.params.disclosure_threshold;
        if op.signatures.len() > DISCLOSURE_SIGNERS_MAX
            || op.signatures.len() < usize::from(threshold)
        {
            return Err(Violation::BelowThreshold {
                signers: op.signatures.len(),
                threshold,
            });
        }
        let mut seen = HashSet::with_capacity(op.signatures.len());
        for signed in &op.signatures {
            let auditor = signed.auditor.0;
            let key = *self
                .params
                .auditor_keys
                .get(usize::from(auditor))
                .ok_or(Violation::UnknownAuditor { auditor })?;
            if !seen.insert(auditor) {
                return Err(Violation::DuplicateAuditor { auditor });
            }
            self.push_signature(
                SigCheck::Auditor(index, auditor),
                &key,
                &order_hash,
                &signed.signature,
            );
        }
        self.orders_served.push(order_hash);
        Ok(())
    }

    pub(in crate::apply) fn disclosure_share(
        &mut self,
        index: usize,
        record: &ShareRecord,
    ) -> Result<(), Violation> {
        let order_hash = self.check_order(&record.order)?;
        if !self.recorded(&order_hash) {
            return Err(Violation::OrderNotRecorded { order: order_hash });
        }
        let holder = record.holder;
        let signer = *self
            .state
            .holder_signer(self.params, holder)
            .ok_or(Violation::UnknownHolder { holder })?;
        let key = ShareRecord::state_key(&order_hash, holder);
        if self.recorded(&key) {
            return Err(Violation::ShareRecorded { holder });
        }
        let message = ShareRecord::message(
            &self.params.chain_id,
            &order_hash,
            holder,
            &record.sealed_hash,
        )?;
        self.push_signature(
            SigCheck::ShareHolder(index, holder),
            &signer,
            &message,
            &record.signature,
        );
        self.orders_served.push(key);
        Ok(())
    }

    /// A new disclosure key: at most one a block, a successor of the state's current key
    /// ([`crate::disclosure_keys::DisclosureKeys::check_successor`]), signed by every holder's
    /// party. It becomes current after this block: the block's own ops still use the old one.
    pub(in crate::apply) fn adopt_key(
        &mut self,
        index: usize,
        adoption: &KeyAdoption,
    ) -> Result<(), Violation> {
        if self.adopted.is_some() {
            return Err(Violation::KeyAdoptedTwice);
        }
        let held = &adoption.held;
        self.state
            .disclosure_keys()
            .check_successor(self.params, held)?;
        if adoption.signatures.len() != held.parties.len() {
            return Err(Violation::BadKeyAdoption {
                reason: "one signature per holder".to_owned(),
            });
        }
        let message = KeyAdoption::message(&self.params.chain_id, held)?;
        if self.recorded(&message) {
            return Err(Violation::BadKeyAdoption {
                reason: "this key was adopted before".to_owned(),
            });
        }
        let signed = held.key.holders.iter().zip(&held.parties);
        for ((holder, party), signature) in signed.zip(&adoption.signatures) {
            // check_successor found every party in genesis.
            let Some(key) = self.params.party_key(*party).copied() else {
                return Err(Violation::UnknownHolder {
                    holder: holder.holder,
                });
            };
            let check = SigCheck::KeyHolder(index, holder.holder);
            self.push_signature(check, &key, &message, signature);
        }
        self.orders_served.push(message);
        self.adopted = Some(adoption.clone());
        Ok(())
    }

    /// An order's version, chain and expiry (at equality it has expired); its hash.
    fn check_order(&self, order: &DisclosureOrder) -> Result<Hash32, Violation> {
        if order.version != VERSION {
            return Err(Violation::OrderVersion {
                version: order.version,
            });
        }
        if order.chain_id != self.params.chain_id {
            return Err(Violation::OrderWrongChain {
                found: order.chain_id.to_string(),
            });
        }
        if order.expires_at <= self.time {
            return Err(Violation::OrderExpired {
                expires_at: order.expires_at,
                time: self.time,
            });
        }
        Ok(order.hash()?)
    }

    /// Whether an order or share record key is in the state or earlier in this block.
    fn recorded(&self, key: &Hash32) -> bool {
        self.state.order_served(key) || self.orders_served.contains(key)
    }
}
