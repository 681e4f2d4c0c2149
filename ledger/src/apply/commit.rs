//! The end of a block body: its signatures settled, what it changed hashed into the state
//! root, the supply checked, the body's size bounded.

use super::{Execution, Pending, Signatures};
use crate::codec;
use crate::error::{ApplyError, Violation};
use crate::hash::{merkle_root, Hash32};
use crate::state::{Account, CommitmentUpdate, StateChange};
use crate::types::{AccountId, Amount, BatchAttestation, Nonce, Op, TimeMs};

impl Execution<'_> {
    /// Ends the block: settles the gathered signatures, commits what the ops changed to the
    /// state's hash and checks the body's size; returns the change and the signatures
    /// deferred to the caller.
    pub(super) fn finish(
        mut self,
        attestations: &[BatchAttestation],
        ops: &[Op],
        signatures: Signatures,
    ) -> Result<(StateChange, Pending), ApplyError> {
        let pending = self.verify_or_defer(signatures)?;
        let mut update = CommitmentUpdate {
            lthash: self.state.lthash().clone(),
        };
        let accounts = self.update_accounts(&mut update)?;
        let nonces_expired = self.update_nonces_and_orders(&mut update)?;
        // The issue checks bounded this sum.
        let supply = Amount(self.state.supply.0.saturating_add(self.issued));
        let (op_hashes, attestation_hashes) = self.hash_body(ops, attestations)?;
        let state_root = crate::state::state_root(&update.lthash, supply);
        let change = StateChange {
            height: self.height,
            time: self.time,
            accounts,
            nonces_added: self.nonces_added,
            nonces_expired,
            orders_served: self.orders_served,
            adopted: self.adopted,
            transfers: self.transfers,
            supply,
            lthash: update.lthash,
            op_root: merkle_root(&op_hashes),
            attestation_root: merkle_root(&attestation_hashes),
            state_root,
            op_hashes,
        };
        Ok((change, pending))
    }

    /// The signatures gathered from the block: verified now (the first bad one is the
    /// violation), or handed back when the caller verifies them later.
    pub(super) fn verify_or_defer(
        &mut self,
        signatures: Signatures,
    ) -> Result<Pending, ApplyError> {
        let Some(batch) = self.signatures.take() else {
            return Ok(None);
        };
        if signatures == Signatures::Deferred {
            return Ok(Some(batch));
        }
        if let Err(check) = batch.verify() {
            let (op, violation) = check.place();
            return Err(self.error(op, violation));
        }
        Ok(None)
    }

    /// A codec failure while committing the block, named at the header.
    pub(super) fn codec_error(&self, error: crate::error::CodecError) -> ApplyError {
        self.error(None, error.into())
    }

    /// Puts the touched accounts into `update`, sorted by id, and checks the supply: the
    /// balances moved by exactly what was issued.
    pub(super) fn update_accounts(
        &mut self,
        update: &mut CommitmentUpdate,
    ) -> Result<Vec<(AccountId, Account)>, ApplyError> {
        let mut before_total: u128 = 0;
        let mut after_total: u128 = 0;
        let mut accounts: Vec<(AccountId, Account)> =
            std::mem::take(&mut self.touched).into_iter().collect();
        accounts.sort_unstable_by_key(|(id, _)| *id);
        for (id, after) in &accounts {
            let before = self.state.account(id);
            let balance = before.map_or(0, |account| u128::from(account.balance.0));
            // At most 2^64 accounts of at most 2^64 each: a u128 sum cannot overflow.
            before_total = before_total.saturating_add(balance);
            after_total = after_total.saturating_add(u128::from(after.balance.0));
            update
                .replace_account(id, before, after)
                .map_err(|error| self.codec_error(error))?;
        }
        let expected = before_total.saturating_add(u128::from(self.issued));
        if after_total != expected {
            return Err(self.error(
                None,
                Violation::SupplyMismatch {
                    expected,
                    found: after_total,
                },
            ));
        }
        Ok(accounts)
    }

    /// Puts the nonces this block forgets and remembers, and the orders it serves, into
    /// `update`; returns the forgotten nonces.
    pub(super) fn update_nonces_and_orders(
        &self,
        update: &mut CommitmentUpdate,
    ) -> Result<Vec<(AccountId, Nonce, TimeMs)>, ApplyError> {
        let nonces_expired = self.state.expired_by(self.time);
        for (account, nonce, at) in &nonces_expired {
            update
                .remove_nonce(account, *nonce, *at)
                .map_err(|error| self.codec_error(error))?;
        }
        for (account, nonce, at) in &self.nonces_added {
            update
                .add_nonce(account, *nonce, *at)
                .map_err(|error| self.codec_error(error))?;
        }
        for order in &self.orders_served {
            update
                .add_order(order)
                .map_err(|error| self.codec_error(error))?;
        }
        Ok(nonces_expired)
    }

    /// The hashes of the ops and of the attestations, once the body's encoded size is
    /// checked against the limit.
    pub(super) fn hash_body(
        &self,
        ops: &[Op],
        attestations: &[BatchAttestation],
    ) -> Result<(Vec<Hash32>, Vec<Hash32>), ApplyError> {
        let (op_hashes, body_bytes) = hash_ops(ops).map_err(|error| self.codec_error(error))?;
        let (attestation_hashes, attestation_bytes) =
            hash_attestations(attestations).map_err(|error| self.codec_error(error))?;
        let bytes = body_bytes.saturating_add(attestation_bytes);
        let bytes_max = usize::try_from(self.params.limits.block_bytes_max).unwrap_or(usize::MAX);
        if bytes > bytes_max {
            return Err(self.error(
                None,
                Violation::BlockTooLarge {
                    bytes,
                    limit: bytes_max,
                },
            ));
        }
        Ok((op_hashes, attestation_hashes))
    }
}

/// Each op's hash and the body's encoded size, reusing one buffer.
pub fn hash_ops(ops: &[Op]) -> Result<(Vec<Hash32>, usize), crate::error::CodecError> {
    let mut buffer = Vec::with_capacity(512);
    let mut hashes = Vec::with_capacity(ops.len());
    let mut bytes = 0usize;
    for op in ops {
        codec::encode_into(op, &mut buffer)?;
        bytes = bytes.saturating_add(buffer.len());
        hashes.push(crate::hash::Domain::OpHash.hash(&buffer));
    }
    Ok((hashes, bytes))
}

fn hash_attestations(
    attestations: &[BatchAttestation],
) -> Result<(Vec<Hash32>, usize), crate::error::CodecError> {
    let mut buffer = Vec::with_capacity(1024);
    let mut hashes = Vec::with_capacity(attestations.len());
    let mut bytes = 0usize;
    for attestation in attestations {
        codec::encode_into(attestation, &mut buffer)?;
        bytes = bytes.saturating_add(buffer.len());
        hashes.push(crate::hash::Domain::AttestationHash.hash(&buffer));
    }
    Ok((hashes, bytes))
}
