//! The identity manager's pool of accepted transfers (SPEC section 3, steps 3 to 5).
//!
//! A transfer enters when a bank forwards it with a payer-ok attestation and it passes the
//! IM's checks: the replay rule and the balance both count transfers already accepted but
//! not yet in a block, so one account can have many payments in flight and still never
//! overspend. It then waits for its payee's bank to approve it (batched per bank), and goes
//! into the next block with both attestations. Committing or dropping it releases what it
//! reserved. Everything is bounded: a full pool refuses with `Overloaded`.

use std::collections::{BTreeMap, VecDeque};

use halfveil_ledger::fastmap::{HashMap, HashMapExt, HashSet, HashSetExt};

use halfveil_ledger::{
    AccountId, Amount, BankId, BatchAttestation, ChainParams, Hash32, Nonce, Op, RejectCode, State,
    TimeMs, TransactionRequest, TransferOp, MEMO_BYTES_MAX, VERSION,
};

/// Bounds of the pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Most transfers held at once (accepted, not committed).
    pub pending_max: usize,
}

/// What a payee's bank is asked about one transfer: nothing of the payer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalItem {
    pub id: Hash32,
    pub payee: AccountId,
    pub amount: Amount,
}

/// The outcome of one forwarded batch.
#[derive(Debug, Default)]
pub struct Admission {
    pub accepted: Vec<Hash32>,
    /// Already in the pool: the same request forwarded again; not an error.
    pub duplicates: Vec<Hash32>,
    pub rejected: Vec<(Hash32, RejectCode, String)>,
}

/// A transfer dropped from the pool, and the bank to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub id: Hash32,
    pub payer_bank: BankId,
    pub code: RejectCode,
    pub detail: String,
}

/// The transfers of the next block, with the attestations they reference.
#[derive(Debug, Default)]
pub struct BlockDraft {
    pub attestations: Vec<BatchAttestation>,
    pub ops: Vec<Op>,
    pub ids: Vec<Hash32>,
}

#[derive(Debug)]
struct Entry {
    request: TransactionRequest,
    payer_bank: BankId,
    payee_bank: BankId,
    payer_ok: u64,
    payee_ok: Option<u64>,
    in_draft: bool,
}

#[derive(Debug)]
struct Arena {
    attestation: BatchAttestation,
    users: usize,
}

/// The pool (see the module doc).
#[derive(Debug)]
pub struct TransferPool {
    limits: PoolLimits,
    entries: HashMap<Hash32, Entry>,
    reserved: HashMap<AccountId, u64>,
    nonces: HashSet<(AccountId, Nonce)>,
    to_ask: BTreeMap<BankId, Vec<Hash32>>,
    ready: VecDeque<Hash32>,
    arena: HashMap<u64, Arena>,
    next_arena: u64,
}

/// A forwarded batch whose attestation the caller has verified: by `bank`, `PayerOk`, its
/// ids exactly the requests' ids in order. `credential_ok[i]` says whether request `i`'s
/// transaction credential verified.
#[derive(Debug)]
pub struct VerifiedBatch {
    pub bank: BankId,
    pub attestation: BatchAttestation,
    pub requests: Vec<TransactionRequest>,
    pub ids: Vec<Hash32>,
    pub credential_ok: Vec<bool>,
}

impl TransferPool {
    pub fn new(limits: PoolLimits) -> TransferPool {
        TransferPool {
            limits,
            entries: HashMap::new(),
            reserved: HashMap::new(),
            nonces: HashSet::new(),
            to_ask: BTreeMap::new(),
            ready: VecDeque::new(),
            arena: HashMap::new(),
            next_arena: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &Hash32) -> bool {
        self.entries.contains_key(id)
    }

    /// How many transfers are approved and waiting for a block.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Admits a verified batch at the IM's time `now` against the committed `state`.
    pub fn admit(
        &mut self,
        params: &ChainParams,
        state: &State,
        now: TimeMs,
        batch: VerifiedBatch,
    ) -> Admission {
        let mut admission = Admission::default();
        let arena_id = self.next_arena;
        self.next_arena = self.next_arena.wrapping_add(1);
        let mut users = 0usize;
        for ((request, id), credential_ok) in batch
            .requests
            .into_iter()
            .zip(batch.ids)
            .zip(batch.credential_ok)
        {
            if self.entries.contains_key(&id) {
                admission.duplicates.push(id);
                continue;
            }
            if self.entries.len() >= self.limits.pending_max {
                admission.rejected.push((
                    id,
                    RejectCode::Overloaded,
                    "the identity manager's pool is full; retry".into(),
                ));
                continue;
            }
            match self.check(params, state, now, batch.bank, &request, credential_ok) {
                Err((code, detail)) => admission.rejected.push((id, code, detail)),
                Ok(payee_bank) => {
                    let transfer = &request.transfer;
                    let reserved = self.reserved.entry(transfer.payer).or_default();
                    // `check` admitted it only if the balance covers what is reserved and
                    // this amount, so the sum fits.
                    debug_assert!(reserved.checked_add(transfer.amount.0).is_some());
                    *reserved = reserved.saturating_add(transfer.amount.0);
                    self.nonces.insert((transfer.payer, transfer.nonce));
                    self.to_ask.entry(payee_bank).or_default().push(id);
                    self.entries.insert(
                        id,
                        Entry {
                            request,
                            payer_bank: batch.bank,
                            payee_bank,
                            payer_ok: arena_id,
                            payee_ok: None,
                            in_draft: false,
                        },
                    );
                    users = users.saturating_add(1);
                    admission.accepted.push(id);
                }
            }
        }
        if users > 0 {
            self.arena.insert(
                arena_id,
                Arena {
                    attestation: batch.attestation,
                    users,
                },
            );
        }
        admission
    }

    /// The IM's checks of one request; returns the payee's bank.
    fn check(
        &self,
        params: &ChainParams,
        state: &State,
        now: TimeMs,
        bank: BankId,
        request: &TransactionRequest,
        credential_ok: bool,
    ) -> Result<BankId, (RejectCode, String)> {
        check_fields(params, now, request)?;
        let epoch = request.identity_credential.capsule.epoch;
        if epoch != state.disclosure_key().epoch {
            return Err((RejectCode::Invalid, stale_epoch(epoch, state)));
        }
        let transfer = &request.transfer;
        let invalid = |detail: &str| Err((RejectCode::Invalid, detail.to_owned()));
        let payer = open_account(state, &transfer.payer, "payer")?;
        if payer.bank != bank {
            return invalid("the payer's home bank did not forward this transfer");
        }
        let payee = open_account(state, &transfer.payee, "payee")?;
        if state.nonce_used(&transfer.payer, transfer.nonce)
            || self.nonces.contains(&(transfer.payer, transfer.nonce))
        {
            return Err((
                RejectCode::Replay,
                format!("nonce {} already used", transfer.nonce),
            ));
        }
        if !credential_ok {
            return Err((
                RejectCode::BadCredential,
                "the transaction credential does not verify".into(),
            ));
        }
        let reserved = self.reserved.get(&transfer.payer).copied().unwrap_or(0);
        let available = payer.balance.0.saturating_sub(reserved);
        if available < transfer.amount.0 {
            return Err((
                RejectCode::InsufficientFunds,
                format!("available {available}, amount {}", transfer.amount),
            ));
        }
        Ok(payee.bank)
    }

    /// Banks with approvals to ask for.
    pub fn banks_to_ask(&self) -> Vec<BankId> {
        self.to_ask
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(bank, _)| *bank)
            .collect()
    }

    /// Takes up to `max` approval items for `bank`.
    pub fn take_approvals(&mut self, bank: BankId, max: usize) -> Vec<ApprovalItem> {
        let Some(queue) = self.to_ask.get_mut(&bank) else {
            return Vec::new();
        };
        let count = queue.len().min(max);
        let taken: Vec<Hash32> = queue.drain(..count).collect();
        taken
            .into_iter()
            .filter_map(|id| {
                self.entries.get(&id).map(|entry| ApprovalItem {
                    id,
                    payee: entry.request.transfer.payee,
                    amount: entry.request.transfer.amount,
                })
            })
            .collect()
    }

    /// Records a payee bank's answer: `attestation` (verified by the caller: `PayeeOk`, by
    /// `bank`) approves its ids; `refused` are dropped and returned.
    pub fn approved(
        &mut self,
        bank: BankId,
        attestation: Option<BatchAttestation>,
        refused: &[(Hash32, RejectCode, String)],
    ) -> Vec<Dropped> {
        if let Some(attestation) = attestation {
            let arena_id = self.next_arena;
            self.next_arena = self.next_arena.wrapping_add(1);
            let mut users = 0usize;
            for id in &attestation.ids {
                if let Some(entry) = self.entries.get_mut(id) {
                    if entry.payee_bank == bank && entry.payee_ok.is_none() {
                        entry.payee_ok = Some(arena_id);
                        self.ready.push_back(*id);
                        users = users.saturating_add(1);
                    }
                }
            }
            if users > 0 {
                self.arena.insert(arena_id, Arena { attestation, users });
            }
        }
        let mut dropped = Vec::new();
        for (id, code, detail) in refused {
            let belongs = self
                .entries
                .get(id)
                .is_some_and(|entry| entry.payee_bank == bank && entry.payee_ok.is_none());
            if belongs {
                if let Some(drop) = self.remove(id, *code, detail.clone()) {
                    dropped.push(drop);
                }
            }
        }
        dropped
    }

    /// Drops transfers whose approval could not be had (the payee's bank did not answer).
    pub fn approval_failed(&mut self, ids: &[Hash32], detail: &str) -> Vec<Dropped> {
        ids.iter()
            .filter_map(|id| self.remove(id, RejectCode::Timeout, detail.to_owned()))
            .collect()
    }

    /// Up to `ops_max` approved transfers for the next block, at most `attestations_max`
    /// distinct attestations.
    pub fn draft(&mut self, ops_max: usize, attestations_max: usize) -> BlockDraft {
        let mut draft = BlockDraft::default();
        let mut index_of: HashMap<u64, u16> = HashMap::new();
        while draft.ops.len() < ops_max {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let Some(payee_ok) = entry.payee_ok else {
                continue;
            };
            let needed = [entry.payer_ok, payee_ok]
                .iter()
                .filter(|arena_id| !index_of.contains_key(arena_id))
                .count();
            if index_of.len().saturating_add(needed) > attestations_max {
                self.ready.push_front(id);
                break;
            }
            let mut indexes = [0u16; 2];
            for (slot, arena_id) in indexes.iter_mut().zip([entry.payer_ok, payee_ok]) {
                let next = u16::try_from(draft.attestations.len()).unwrap_or(u16::MAX);
                *slot = *index_of.entry(arena_id).or_insert_with(|| {
                    if let Some(arena) = self.arena.get(&arena_id) {
                        draft.attestations.push(arena.attestation.clone());
                    }
                    next
                });
            }
            entry.in_draft = true;
            draft.ops.push(Op::Transfer(TransferOp {
                request: entry.request.clone(),
                payer_ok: indexes[0],
                payee_ok: indexes[1],
            }));
            draft.ids.push(id);
        }
        draft
    }

    /// The block with these transfers is committed: the state now holds them.
    pub fn committed(&mut self, ids: &[Hash32]) {
        for id in ids {
            self.remove(id, RejectCode::Invalid, String::new());
        }
    }

    /// A drafted transfer the block could not take after all: dropped with `detail`.
    pub fn reject(&mut self, id: &Hash32, code: RejectCode, detail: &str) -> Option<Dropped> {
        self.remove(id, code, detail.to_owned())
    }

    /// Drafted transfers that did not go into a block go back to the front of the queue.
    pub fn undraft(&mut self, ids: &[Hash32]) {
        for id in ids.iter().rev() {
            if let Some(entry) = self.entries.get_mut(id) {
                if entry.in_draft {
                    entry.in_draft = false;
                    self.ready.push_front(*id);
                }
            }
        }
    }

    /// Drops transfers that expired by `now` and are not in a block being written.
    pub fn expire(&mut self, now: TimeMs) -> Vec<Dropped> {
        let expired: Vec<Hash32> = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.in_draft && entry.request.transfer.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        expired
            .iter()
            .filter_map(|id| {
                self.remove(
                    id,
                    RejectCode::Expired,
                    "expired before it could be committed".into(),
                )
            })
            .collect()
    }

    fn release_arena(&mut self, arena_id: u64) {
        if let Some(arena) = self.arena.get_mut(&arena_id) {
            arena.users = arena.users.saturating_sub(1);
            if arena.users == 0 {
                self.arena.remove(&arena_id);
            }
        }
    }

    fn remove(&mut self, id: &Hash32, code: RejectCode, detail: String) -> Option<Dropped> {
        let entry = self.entries.remove(id)?;
        let transfer = &entry.request.transfer;
        if let Some(reserved) = self.reserved.get_mut(&transfer.payer) {
            // Each pooled transfer's amount was added to its payer's reservation once.
            debug_assert!(
                *reserved >= transfer.amount.0,
                "more released than reserved"
            );
            *reserved = reserved.saturating_sub(transfer.amount.0);
            if *reserved == 0 {
                self.reserved.remove(&transfer.payer);
            }
        }
        self.nonces.remove(&(transfer.payer, transfer.nonce));
        self.release_arena(entry.payer_ok);
        if let Some(payee_ok) = entry.payee_ok {
            self.release_arena(payee_ok);
        }
        Some(Dropped {
            id: *id,
            payer_bank: entry.payer_bank,
            code,
            detail,
        })
    }
}

/// The account `id` of a transfer's `role` (payer or payee), if it exists and is open; a
/// closed account is refused as unknown, saying it is closed.
fn open_account<'a>(
    state: &'a State,
    id: &AccountId,
    role: &str,
) -> Result<&'a halfveil_ledger::Account, (RejectCode, String)> {
    match state.account(id) {
        None => Err((RejectCode::UnknownAccount, format!("unknown {role} {id}"))),
        Some(account) if account.closed => Err((
            RejectCode::UnknownAccount,
            format!("the {role}'s account {id} is closed"),
        )),
        Some(account) => Ok(account),
    }
}

/// Why a credential sealed to disclosure key epoch `epoch` is refused.
pub fn stale_epoch(epoch: u32, state: &State) -> String {
    format!(
        "identity credential sealed to disclosure key epoch {epoch}; the chain's is epoch {} \
         (fetch the current key and pay again)",
        state.disclosure_key().epoch
    )
}

/// A request's own fields, in the order they are checked: versions, chain, memo length, a
/// non-zero amount, two different accounts, an expiry after `now` and not too far ahead.
fn check_fields(
    params: &ChainParams,
    now: TimeMs,
    request: &TransactionRequest,
) -> Result<(), (RejectCode, String)> {
    let transfer = &request.transfer;
    let invalid = |detail: &str| Err((RejectCode::Invalid, detail.to_owned()));
    if transfer.version != VERSION {
        return invalid("unsupported version");
    }
    if transfer.chain_id != params.chain_id {
        return invalid("wrong chain");
    }
    let memo_limit = usize::from(params.limits.memo_bytes_max).min(MEMO_BYTES_MAX);
    if transfer.memo.0.len() > memo_limit {
        return invalid("memo too long");
    }
    if transfer.amount.0 == 0 {
        return invalid("amount must be positive");
    }
    if transfer.payer == transfer.payee {
        return invalid("payer and payee are the same account");
    }
    if transfer.expires_at <= now {
        return Err((
            RejectCode::Expired,
            format!("expired at {}", transfer.expires_at),
        ));
    }
    // After the check above, `expires_at > now`.
    if transfer.expires_at.0.saturating_sub(now.0) > params.limits.transfer_expiry_ms_max {
        return Err((
            RejectCode::Expired,
            "expires further ahead than the chain allows".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use halfveil_ledger::testkit::TestChain;
    use halfveil_ledger::AttestationKind;

    fn batch(chain: &TestChain, bank: BankId, requests: Vec<TransactionRequest>) -> VerifiedBatch {
        let ids: Vec<Hash32> = requests
            .iter()
            .map(|request| request.transfer.id().unwrap())
            .collect();
        VerifiedBatch {
            bank,
            attestation: chain.attest(AttestationKind::PayerOk, bank, ids.clone()),
            credential_ok: vec![true; ids.len()],
            requests,
            ids,
        }
    }

    #[test]
    fn in_flight_transfers_count_against_balance_and_nonces_and_blocks_apply() {
        let mut chain = TestChain::new(7, 2, 1, 1);
        chain.seal_identity = false;
        let mut accounts = chain.fund_accounts(1, 100).unwrap();
        let payee = accounts[1].id;
        let mut pool = TransferPool::new(PoolLimits { pending_max: 100 });
        let first = chain.request(&mut accounts[0], &payee, 60);
        let second = chain.request(&mut accounts[0], &payee, 60);
        let replay = first.clone();
        let now = chain.next_time();
        let params = chain.params.clone();
        let admission = pool.admit(
            &params,
            &chain.state,
            now,
            batch(&chain, BankId(0), vec![first, second, replay]),
        );
        assert_eq!(admission.accepted.len(), 1);
        assert_eq!(
            admission.duplicates.len(),
            1,
            "the same request again is a duplicate"
        );
        assert_eq!(admission.rejected.len(), 1);
        assert_eq!(admission.rejected[0].1, RejectCode::InsufficientFunds);

        let items = pool.take_approvals(BankId(1), 10);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].payee, payee);
        let payee_ok = chain.attest(AttestationKind::PayeeOk, BankId(1), vec![items[0].id]);
        assert!(pool.approved(BankId(1), Some(payee_ok), &[]).is_empty());
        let draft = pool.draft(100, 16);
        assert_eq!(draft.ops.len(), 1);
        assert_eq!(draft.attestations.len(), 2);
        chain
            .commit(draft.attestations, draft.ops)
            .expect("the drafted block applies");
        pool.committed(&draft.ids);
        assert!(pool.is_empty());
        assert_eq!(chain.state.account(&payee).unwrap().balance, Amount(160));
    }

    #[test]
    fn refusals_timeouts_and_expiry_release_what_was_reserved() {
        let mut chain = TestChain::new(8, 2, 1, 1);
        chain.seal_identity = false;
        let mut accounts = chain.fund_accounts(1, 100).unwrap();
        let payee = accounts[1].id;
        let mut pool = TransferPool::new(PoolLimits { pending_max: 100 });
        let params = chain.params.clone();
        let request = chain.request(&mut accounts[0], &payee, 100);
        let id = request.transfer.id().unwrap();
        let now = chain.next_time();
        pool.admit(
            &params,
            &chain.state,
            now,
            batch(&chain, BankId(0), vec![request]),
        );
        let dropped = pool.approved(
            BankId(1),
            None,
            &[(id, RejectCode::AccountFrozen, "frozen".into())],
        );
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].payer_bank, BankId(0));
        assert!(pool.is_empty());
        // The whole balance is available again.
        let again = chain.request(&mut accounts[0], &payee, 100);
        let expires_at = again.transfer.expires_at;
        let admission = pool.admit(
            &params,
            &chain.state,
            now,
            batch(&chain, BankId(0), vec![again]),
        );
        assert_eq!(admission.accepted.len(), 1);
        assert_eq!(pool.expire(expires_at).len(), 1);
        assert!(pool.is_empty());
    }

    #[test]
    fn a_full_pool_and_a_wrong_bank_and_a_bad_credential_are_refused() {
        let mut chain = TestChain::new(9, 2, 1, 1);
        chain.seal_identity = false;
        let mut accounts = chain.fund_accounts(1, 100).unwrap();
        let payee = accounts[1].id;
        let params = chain.params.clone();
        let mut pool = TransferPool::new(PoolLimits { pending_max: 1 });
        let now = chain.next_time();
        let requests: Vec<_> = (0..3)
            .map(|_| chain.request(&mut accounts[0], &payee, 1))
            .collect();
        let mut forwarded = batch(&chain, BankId(0), requests);
        forwarded.credential_ok[1] = false;
        let admission = pool.admit(&params, &chain.state, now, forwarded);
        assert_eq!(admission.accepted.len(), 1);
        assert!(admission
            .rejected
            .iter()
            .all(|(_, code, _)| *code == RejectCode::Overloaded));
        let mut pool = TransferPool::new(PoolLimits { pending_max: 10 });
        let requests: Vec<_> = (0..2)
            .map(|_| chain.request(&mut accounts[0], &payee, 1))
            .collect();
        let mut forwarded = batch(&chain, BankId(0), requests);
        forwarded.credential_ok[1] = false;
        let admission = pool.admit(&params, &chain.state, now, forwarded);
        assert_eq!(admission.rejected[0].1, RejectCode::BadCredential);
        let request = chain.request(&mut accounts[0], &payee, 1);
        let admission = pool.admit(
            &params,
            &chain.state,
            now,
            batch(&chain, BankId(1), vec![request]),
        );
        assert_eq!(
            admission.rejected[0].1,
            RejectCode::Invalid,
            "forwarded by a bank that is not the payer's"
        );
    }
}
