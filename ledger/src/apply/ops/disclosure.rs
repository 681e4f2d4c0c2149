//! A disclosure: an order of this chain, not expired, not served before, signed by at least
//! the threshold of distinct auditors.

use super::super::{Execution, SigCheck};
use crate::error::Violation;
use crate::fastmap::{HashSet, HashSetExt};
use crate::types::{Disclosure, DISCLOSURE_SIGNERS_MAX, VERSION};

impl Execution<'_> {
    pub(in crate::apply) fn disclosure(
        &mut self,
        index: usize,
        disclosure: &Disclosure,
    ) -> Result<(), Violation> {
        let order = &disclosure.order;
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
        let order_hash = order.hash()?;
        if self.state.order_served(&order_hash) || self.orders_served.contains(&order_hash) {
            return Err(Violation::OrderServed { order: order_hash });
        }
        let threshold = self.params.disclosure_threshold;
        if disclosure.signatures.len() > DISCLOSURE_SIGNERS_MAX
            || disclosure.signatures.len() < usize::from(threshold)
        {
            return Err(Violation::BelowThreshold {
                signers: disclosure.signatures.len(),
                threshold,
            });
        }
        let mut seen = HashSet::with_capacity(disclosure.signatures.len());
        for signed in &disclosure.signatures {
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
}
