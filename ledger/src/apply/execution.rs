//! A block body's run: its sizes, its attestations, the dispatch to each op's rules, the
//! replay rule and expiry, and the batch of signatures the ops gather.

use super::{Execution, SigCheck, BLOCK_ATTESTATIONS_MAX};
use crate::crypto::SignatureBatch;
use crate::error::{ApplyError, Violation};
use crate::fastmap::{HashMap, HashMapExt, HashSet, HashSetExt};
use crate::hash::Hash32;
use crate::state::{Account, ChainParams, State};
use crate::types::{
    attestation_message, AccountId, AttestationKind, BankId, BatchAttestation, Height, Nonce, Op,
    PublicKey, TimeMs, ATTESTATION_IDS_MAX, BLOCK_OPS_MAX,
};

impl<'a> Execution<'a> {
    pub(super) fn new(
        params: &'a ChainParams,
        state: &'a State,
        height: Height,
        time: TimeMs,
        ops: usize,
    ) -> Self {
        Execution {
            params,
            state,
            height,
            time,
            touched: HashMap::with_capacity(ops.saturating_mul(2)),
            nonces_added: Vec::with_capacity(ops),
            nonces_in_block: HashSet::with_capacity(ops),
            orders_served: Vec::new(),
            adopted: None,
            transfers: Vec::with_capacity(ops),
            attested: HashSet::with_capacity(ops.saturating_mul(2)),
            signatures: Some(SignatureBatch::with_capacity(ops.saturating_add(16))),
            admitted: false,
            issued: 0,
        }
    }
}

impl Execution<'_> {
    pub(super) fn error(&self, op: Option<usize>, violation: Violation) -> ApplyError {
        ApplyError {
            height: self.height,
            op,
            violation,
        }
    }

    pub(super) fn push_signature(
        &mut self,
        check: SigCheck,
        key: &PublicKey,
        message: &Hash32,
        signature: &crate::types::Signature,
    ) {
        if self.admitted && matches!(check, SigCheck::TxCredential(_) | SigCheck::Attestation(_)) {
            return;
        }
        if let Some(batch) = self.signatures.as_mut() {
            batch.push(check, key, message, signature);
        }
    }

    /// Verifies the signatures gathered so far; the first bad one, if any, is reported
    /// instead of `violation` at `index`, since it comes first in block order.
    pub(super) fn first_violation(&mut self, index: usize, violation: Violation) -> ApplyError {
        if let Some(batch) = self.signatures.take() {
            if let Err(check) = batch.verify() {
                let (op, violation) = check.place();
                return self.error(op, violation);
            }
        }
        self.error(Some(index), violation)
    }

    pub(super) fn check_sizes(
        &self,
        attestations: &[BatchAttestation],
        ops: &[Op],
    ) -> Result<(), ApplyError> {
        let ops_max = usize::try_from(self.params.limits.block_ops_max)
            .unwrap_or(BLOCK_OPS_MAX)
            .min(BLOCK_OPS_MAX);
        if ops.len() > ops_max {
            return Err(self.error(
                None,
                Violation::TooManyOps {
                    count: ops.len(),
                    limit: ops_max,
                },
            ));
        }
        if attestations.len() > BLOCK_ATTESTATIONS_MAX {
            return Err(self.error(
                None,
                Violation::TooManyOps {
                    count: attestations.len(),
                    limit: BLOCK_ATTESTATIONS_MAX,
                },
            ));
        }
        Ok(())
    }

    pub(super) fn attestations(
        &mut self,
        attestations: &[BatchAttestation],
    ) -> Result<(), ApplyError> {
        let ids_max = usize::try_from(self.params.limits.attestation_ids_max)
            .unwrap_or(ATTESTATION_IDS_MAX)
            .min(ATTESTATION_IDS_MAX);
        for (index, attestation) in attestations.iter().enumerate() {
            let Some(key) = self.params.bank_key(attestation.bank).copied() else {
                return Err(self.error(
                    None,
                    Violation::UnknownBank {
                        index,
                        bank: attestation.bank,
                    },
                ));
            };
            if attestation.ids.len() > ids_max {
                return Err(self.error(
                    None,
                    Violation::AttestationTooLarge {
                        index,
                        count: attestation.ids.len(),
                        limit: ids_max,
                    },
                ));
            }
            let message = attestation_message(
                &self.params.chain_id,
                attestation.kind,
                attestation.bank,
                &attestation.ids,
            )
            .map_err(|error| self.error(None, error.into()))?;
            self.push_signature(
                SigCheck::Attestation(index),
                &key,
                &message,
                &attestation.signature,
            );
            // `index` < BLOCK_ATTESTATIONS_MAX, checked above.
            let tag = u16::try_from(index).unwrap_or(u16::MAX);
            for id in &attestation.ids {
                self.attested.insert((tag, *id));
            }
        }
        Ok(())
    }

    pub(super) fn op(
        &mut self,
        index: usize,
        op: &Op,
        attestations: &[BatchAttestation],
    ) -> Result<(), Violation> {
        match op {
            Op::OpenAccount(open) => self.open_account(index, open),
            Op::Issue(issue) => self.issue(issue),
            Op::Transfer(transfer) => self.transfer(index, transfer, attestations),
            Op::RotateKey(rotate) => self.rotate_key(index, rotate),
            Op::CloseAccount(close) => self.close_account(index, close),
            Op::DisclosureOrder(order) => self.disclosure_order(index, order),
            Op::DisclosureShare(record) => self.disclosure_share(index, record),
            Op::AdoptKey(adoption) => self.adopt_key(index, adoption),
        }
    }

    pub(super) fn account(&self, id: &AccountId) -> Option<&Account> {
        self.touched.get(id).or_else(|| self.state.account(id))
    }

    pub(super) fn open_account_of(&self, id: &AccountId) -> Result<Account, Violation> {
        let account = self
            .account(id)
            .ok_or(Violation::UnknownAccount { account: *id })?;
        if account.closed {
            return Err(Violation::AccountClosed { account: *id });
        }
        Ok(account.clone())
    }

    pub(super) fn check_expiry(&self, expires_at: TimeMs) -> Result<(), Violation> {
        if expires_at <= self.time {
            return Err(Violation::Expired {
                expires_at,
                time: self.time,
            });
        }
        let limit_ms = self.params.limits.transfer_expiry_ms_max;
        // Later than the block's time, checked above.
        if expires_at.0.saturating_sub(self.time.0) > limit_ms {
            return Err(Violation::ExpiryTooFar {
                expires_at,
                time: self.time,
                limit_ms,
            });
        }
        Ok(())
    }

    /// The replay rule: a pair is used if committed and not yet expired, or used earlier in
    /// this block. Records the pair on success.
    pub(super) fn use_nonce(
        &mut self,
        account: &AccountId,
        nonce: Nonce,
        expires_at: TimeMs,
    ) -> Result<(), Violation> {
        let committed = self
            .state
            .nonces
            .get(&(*account, nonce))
            .is_some_and(|remembered_until| *remembered_until > self.time);
        if committed || !self.nonces_in_block.insert((*account, nonce)) {
            return Err(Violation::Replay {
                account: *account,
                nonce,
            });
        }
        self.nonces_added.push((*account, nonce, expires_at));
        Ok(())
    }

    pub(super) fn check_attestation(
        &self,
        attestations: &[BatchAttestation],
        index: u16,
        expected: AttestationKind,
        bank: BankId,
        id: &Hash32,
    ) -> Result<(), Violation> {
        let attestation = attestations
            .get(usize::from(index))
            .ok_or(Violation::MissingAttestation { index })?;
        if attestation.kind != expected {
            return Err(Violation::WrongAttestationKind {
                index,
                found: attestation.kind,
                expected,
            });
        }
        if attestation.bank != bank {
            return Err(Violation::WrongAttestingBank {
                index,
                found: attestation.bank,
                expected: bank,
            });
        }
        if !self.attested.contains(&(index, *id)) {
            return Err(Violation::NotAttested { index });
        }
        Ok(())
    }
}
