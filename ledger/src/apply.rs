//! The pure state transition: `apply(params, state, block) -> StateChange`.
//!
//! No I/O, no clock, no randomness beyond the batch verifier's blinding: the same block on
//! the same state gives the same answer on every node. The state is not touched; the caller
//! commits the returned [`StateChange`] (and the store persists it) only if it is `Ok`.
//!
//! Order of checks: the header, then the attestations, then each op in block order (state
//! rules at once, signatures gathered into one batch, verified over the cores at the end).
//! When an op breaks a state rule, the signatures gathered before it are verified first, so
//! the reported violation is always the first one in block order.

use crate::codec;
use crate::crypto::{self, SignatureBatch};
use crate::error::{ApplyError, Violation};
use crate::fastmap::{HashMap, HashMapExt, HashSet, HashSetExt};
use crate::hash::{merkle_root, Hash32};
use crate::state::{Account, ChainParams, CommitmentUpdate, State, StateChange};
use crate::types::{
    attestation_message, open_account_message, AccountId, Amount, AttestationKind, BankId,
    BatchAttestation, Block, BlockHeader, CloseAccount, Disclosure, Height, Issue, Nonce, Op,
    OpenAccount, PublicKey, RotateKey, TimeMs, Transfer, TransferOp, ATTESTATION_IDS_MAX,
    BLOCK_OPS_MAX, DISCLOSURE_SIGNERS_MAX, MEMO_BYTES_MAX, VERSION,
};

/// At most this many attestations in one block (they are referenced by `u16`).
pub const BLOCK_ATTESTATIONS_MAX: usize = 4096;

/// Checks `block` against `state` and returns what it changes.
pub fn apply(
    params: &ChainParams,
    state: &State,
    block: &Block,
) -> Result<StateChange, ApplyError> {
    apply_inner(params, state, block, Signatures::Now).map(|(change, _)| change)
}

/// [`apply`] in two halves, so the signatures can be verified off the caller's thread:
/// every rule but the signatures now, and the block's signatures (its header's first)
/// returned with the change. The change counts only once they verify. A violation found
/// now is the one [`apply`] names.
pub fn apply_deferred(
    params: &ChainParams,
    state: &State,
    block: &Block,
) -> Result<(StateChange, BlockSignatures), ApplyError> {
    let header = block.header();
    let deferred = header
        .hash()
        .map_err(|error| ApplyError {
            height: header.height,
            op: None,
            violation: error.into(),
        })
        .and_then(|hash| {
            apply_inner(params, state, block, Signatures::Deferred).map(|(change, body)| {
                let body = body.unwrap_or_default();
                let mut batch = SignatureBatch::with_capacity(1 + body.len());
                batch.push(
                    SigCheck::Block,
                    &params.validator_key,
                    &hash,
                    &block.signed.signature,
                );
                batch.append(body, |check| check);
                (
                    change,
                    BlockSignatures {
                        batch,
                        height: header.height,
                        hash,
                    },
                )
            })
        });
    match deferred {
        Ok(applied) => Ok(applied),
        // A bad signature may come before the rule found broken: `apply` (signatures first)
        // names what comes first. Only a refused block pays for the second pass.
        Err(error) => Err(apply(params, state, block).err().unwrap_or(error)),
    }
}

/// The signatures of one block that [`apply_deferred`] checked otherwise. It owns what it
/// needs, so it can be verified on another thread.
#[derive(Debug)]
pub struct BlockSignatures {
    batch: SignatureBatch<SigCheck>,
    height: Height,
    hash: Hash32,
}

impl BlockSignatures {
    /// Verifies them all; the first bad one, named as [`apply`] names it.
    pub fn verify(self) -> Result<(), ApplyError> {
        let height = self.height;
        self.batch.verify().map_err(|check| {
            let (op, violation) = check.place();
            ApplyError {
                height,
                op,
                violation,
            }
        })
    }

    /// The block's hash (its header's), computed on the way.
    pub fn block_hash(&self) -> Hash32 {
        self.hash
    }

    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// When a block's signatures are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signatures {
    /// Before `apply` returns.
    Now,
    /// By the caller, later, batched with other blocks' (the header's signature too).
    Deferred,
    /// Before returning, except the transfers' credentials and the batch attestations,
    /// which the caller verified as it received them.
    Admitted,
}

/// The deferred signatures of one block.
type Pending = Option<SignatureBatch<SigCheck>>;

/// [`apply`] with its signatures verified as `signatures` says: the header's rules, the
/// body's, then the header's roots against the body's.
fn apply_inner(
    params: &ChainParams,
    state: &State,
    block: &Block,
    signatures: Signatures,
) -> Result<(StateChange, Pending), ApplyError> {
    let header = block.header();
    let at_header = |violation| ApplyError {
        height: header.height,
        op: None,
        violation,
    };
    check_header(params, state, block).map_err(at_header)?;
    if signatures == Signatures::Now {
        let block_hash = header.hash().map_err(|error| at_header(error.into()))?;
        crypto::verify(&params.validator_key, &block_hash, &block.signed.signature)
            .map_err(|_| at_header(Violation::BadBlockSignature))?;
    }

    let (change, pending) = execute_inner(
        params,
        state,
        header.height,
        header.time,
        &block.attestations,
        &block.ops,
        signatures,
    )?;
    check_roots(header, &change).map_err(at_header)?;
    Ok((change, pending))
}

/// The header's rules that need no signature and no body run, in the order they are
/// checked: version, chain, height, parent, time, proposer, op count.
fn check_header(params: &ChainParams, state: &State, block: &Block) -> Result<(), Violation> {
    let header = block.header();
    if header.version != VERSION {
        return Err(Violation::BlockVersion {
            version: header.version,
        });
    }
    if header.chain_id != params.chain_id {
        return Err(Violation::WrongChain {
            found: header.chain_id.to_string(),
            expected: params.chain_id.to_string(),
        });
    }
    if Some(header.height) != state.height.next() {
        return Err(Violation::WrongHeight {
            found: header.height,
            head: state.height,
        });
    }
    if header.parent != state.head_hash {
        return Err(Violation::WrongParent {
            found: header.parent,
            expected: state.head_hash,
        });
    }
    if header.time <= state.time {
        return Err(Violation::TimeNotIncreasing {
            time: header.time,
            previous: state.time,
        });
    }
    if header.proposer != params.validator_key {
        return Err(Violation::WrongProposer);
    }
    if usize::try_from(header.op_count).ok() != Some(block.ops.len()) {
        return Err(Violation::OpCountMismatch {
            header: header.op_count,
            body: block.ops.len(),
        });
    }
    Ok(())
}

/// The header's roots against the ones its body computed: op, attestation, then state.
fn check_roots(header: &BlockHeader, change: &StateChange) -> Result<(), Violation> {
    let roots = [
        (header.op_root, change.op_root, "op"),
        (
            header.attestation_root,
            change.attestation_root,
            "attestation",
        ),
        (header.state_root, change.state_root, "state"),
    ];
    for (in_header, computed, which) in roots {
        if in_header != computed {
            let violation = match which {
                "op" => Violation::OpRootMismatch {
                    header: in_header,
                    computed,
                },
                "attestation" => Violation::AttestationRootMismatch {
                    header: in_header,
                    computed,
                },
                _ => Violation::StateRootMismatch {
                    header: in_header,
                    computed,
                },
            };
            return Err(violation);
        }
    }
    Ok(())
}

/// Applies `blocks` in order to `state`, with every rule of [`apply`], but verifies the
/// signatures of all of them as one batch spread over the cores: an auditor's replay of
/// small blocks goes as fast as one of large blocks. The first violation in chain order is
/// returned with the index of its block in `blocks`, as [`apply`] would find it block by
/// block; `state` has then taken the blocks before it, and possibly the one that broke a
/// rule, so a caller stops there.
pub fn apply_blocks(
    params: &ChainParams,
    state: &mut State,
    blocks: &[Block],
) -> Result<(), RunError> {
    apply_blocks_pending(params, state, blocks)?.verify()
}

/// The first violation in a run of blocks: the index of its block in the run, and what
/// [`apply`] says of that block.
pub type RunError = Box<(usize, ApplyError)>;

/// The signatures of a run of blocks that [`apply_blocks_pending`] applied, still to be
/// verified. It owns everything it needs, so it can be verified on another thread while the
/// next run is applied.
#[derive(Debug)]
pub struct PendingSignatures {
    batch: SignatureBatch<(usize, SigCheck)>,
    heights: Vec<Height>,
}

impl PendingSignatures {
    /// Verifies the run's signatures; the first bad one in chain order, with its block's
    /// index in the run.
    pub fn verify(self) -> Result<(), RunError> {
        let heights = self.heights;
        self.batch.verify().map_err(|(index, check)| {
            let (op, violation) = check.place();
            let height = heights.get(index).copied().unwrap_or_default();
            Box::new((
                index,
                ApplyError {
                    height,
                    op,
                    violation,
                },
            ))
        })
    }

    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// [`apply_blocks`] without the final signature check: `state` takes every block whose
/// other rules hold, and the returned signatures must verify before the run counts as
/// valid. A violation found here is already the first in chain order (the run's
/// signatures before it were checked).
pub fn apply_blocks_pending(
    params: &ChainParams,
    state: &mut State,
    blocks: &[Block],
) -> Result<PendingSignatures, RunError> {
    // The headers' signatures first: they need no state.
    let mut hashes = Vec::with_capacity(blocks.len());
    let mut headers = SignatureBatch::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let Ok(hash) = block.header().hash() else {
            break;
        };
        headers.push(index, &params.validator_key, &hash, &block.signed.signature);
        hashes.push(hash);
    }
    let good_headers = match headers.verify() {
        Ok(()) => hashes.len(),
        Err(first_bad) => first_bad,
    };
    let mut pending = PendingSignatures {
        batch: SignatureBatch::default(),
        heights: blocks.iter().map(|block| block.header().height).collect(),
    };
    for (index, block) in blocks.iter().enumerate().take(good_headers) {
        match apply_inner(params, state, block, Signatures::Deferred) {
            Ok((change, signatures)) => {
                if let Some(signatures) = signatures {
                    pending.batch.append(signatures, |check| (index, check));
                }
                state.commit(&change, hashes[index]);
            }
            Err(deferred_error) => {
                // An earlier block's bad signature comes first. Then this block is checked
                // again with its signatures first, so the violation named is the one
                // `apply` names (a bad credential, not the root it also breaks).
                pending.verify()?;
                let error = apply(params, state, block).err().unwrap_or(deferred_error);
                return Err(Box::new((index, error)));
            }
        }
    }
    match blocks.get(good_headers) {
        // The first block whose header does not hash or verify: `apply` names the first
        // rule it breaks (a wrong height, say, before the signature).
        Some(block) => {
            pending.verify()?;
            let error = apply(params, state, block)
                .err()
                .unwrap_or_else(|| ApplyError {
                    height: block.header().height,
                    op: None,
                    violation: Violation::BadBlockSignature,
                });
            Err(Box::new((good_headers, error)))
        }
        None => Ok(pending),
    }
}

/// Runs a block body at `height` and `time` on `state`: every rule but the header's. The IM
/// uses it to build a block (it fills the header from the returned roots); [`apply`] uses it
/// to check one.
pub fn execute(
    params: &ChainParams,
    state: &State,
    height: Height,
    time: TimeMs,
    attestations: &[BatchAttestation],
    ops: &[Op],
) -> Result<StateChange, ApplyError> {
    execute_inner(
        params,
        state,
        height,
        time,
        attestations,
        ops,
        Signatures::Now,
    )
    .map(|(change, _)| change)
}

/// [`execute`] for a body of admitted transfers: the caller (the IM) verified their
/// credentials in batches at admission and each batch attestation as it arrived, so those
/// signatures are not checked again; every other rule and signature is. Nodes that receive
/// the block check everything.
pub fn execute_admitted(
    params: &ChainParams,
    state: &State,
    height: Height,
    time: TimeMs,
    attestations: &[BatchAttestation],
    ops: &[Op],
) -> Result<StateChange, ApplyError> {
    execute_inner(
        params,
        state,
        height,
        time,
        attestations,
        ops,
        Signatures::Admitted,
    )
    .map(|(change, _)| change)
}

fn execute_inner(
    params: &ChainParams,
    state: &State,
    height: Height,
    time: TimeMs,
    attestations: &[BatchAttestation],
    ops: &[Op],
    signatures: Signatures,
) -> Result<(StateChange, Pending), ApplyError> {
    let mut execution = Execution::new(params, state, height, time, ops.len());
    execution.admitted = signatures == Signatures::Admitted;
    execution.check_sizes(attestations, ops)?;
    execution.attestations(attestations)?;
    for (index, op) in ops.iter().enumerate() {
        if let Err(violation) = execution.op(index, op, attestations) {
            return Err(execution.first_violation(index, violation));
        }
    }
    execution.finish(attestations, ops, signatures)
}

/// Which signature an entry of the batch is, to name the violation if it fails.
#[derive(Clone, Copy, Debug)]
enum SigCheck {
    Block,
    Attestation(usize),
    TxCredential(usize),
    Holder(usize),
    Bank(usize),
    OldKey(usize),
    NewKey(usize),
    Auditor(usize, u16),
}

impl SigCheck {
    fn place(self) -> (Option<usize>, Violation) {
        match self {
            SigCheck::Block => (None, Violation::BadBlockSignature),
            SigCheck::Attestation(index) => (None, Violation::BadAttestationSignature { index }),
            SigCheck::TxCredential(op) => (Some(op), Violation::BadTxCredential),
            SigCheck::Holder(op) | SigCheck::OldKey(op) | SigCheck::NewKey(op) => {
                (Some(op), Violation::BadHolderSignature)
            }
            SigCheck::Bank(op) => (Some(op), Violation::BadBankSignature),
            SigCheck::Auditor(op, auditor) => {
                (Some(op), Violation::BadAuditorSignature { auditor })
            }
        }
    }
}

struct Execution<'a> {
    params: &'a ChainParams,
    state: &'a State,
    height: Height,
    time: TimeMs,
    touched: HashMap<AccountId, Account>,
    nonces_added: Vec<(AccountId, Nonce, TimeMs)>,
    nonces_in_block: HashSet<(AccountId, Nonce)>,
    orders_served: Vec<Hash32>,
    transfers: Vec<(Hash32, u32)>,
    attested: HashSet<(u16, Hash32)>,
    signatures: Option<SignatureBatch<SigCheck>>,
    /// Credentials and attestations were verified on receipt (see [`execute_admitted`]).
    admitted: bool,
    issued: u64,
}

impl<'a> Execution<'a> {
    fn new(
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
            touched: HashMap::with_capacity(ops * 2),
            nonces_added: Vec::with_capacity(ops),
            nonces_in_block: HashSet::with_capacity(ops),
            orders_served: Vec::new(),
            transfers: Vec::with_capacity(ops),
            attested: HashSet::with_capacity(ops * 2),
            signatures: Some(SignatureBatch::with_capacity(ops + 16)),
            admitted: false,
            issued: 0,
        }
    }

    fn error(&self, op: Option<usize>, violation: Violation) -> ApplyError {
        ApplyError {
            height: self.height,
            op,
            violation,
        }
    }

    fn push_signature(
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
    fn first_violation(&mut self, index: usize, violation: Violation) -> ApplyError {
        if let Some(batch) = self.signatures.take() {
            if let Err(check) = batch.verify() {
                let (op, violation) = check.place();
                return self.error(op, violation);
            }
        }
        self.error(Some(index), violation)
    }

    fn check_sizes(&self, attestations: &[BatchAttestation], ops: &[Op]) -> Result<(), ApplyError> {
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

    fn attestations(&mut self, attestations: &[BatchAttestation]) -> Result<(), ApplyError> {
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

    fn op(
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
            Op::Disclosure(disclosure) => self.disclosure(index, disclosure),
        }
    }

    fn account(&self, id: &AccountId) -> Option<&Account> {
        self.touched.get(id).or_else(|| self.state.account(id))
    }

    fn open_account_of(&self, id: &AccountId) -> Result<Account, Violation> {
        let account = self
            .account(id)
            .ok_or(Violation::UnknownAccount { account: *id })?;
        if account.closed {
            return Err(Violation::AccountClosed { account: *id });
        }
        Ok(account.clone())
    }

    fn check_expiry(&self, expires_at: TimeMs) -> Result<(), Violation> {
        if expires_at <= self.time {
            return Err(Violation::Expired {
                expires_at,
                time: self.time,
            });
        }
        let limit_ms = self.params.limits.transfer_expiry_ms_max;
        if expires_at.0 - self.time.0 > limit_ms {
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
    fn use_nonce(
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

    fn open_account(&mut self, index: usize, open: &OpenAccount) -> Result<(), Violation> {
        if AccountId::from_key(&open.tx_key) != open.account {
            return Err(Violation::AccountIdMismatch {
                account: open.account,
            });
        }
        if self.account(&open.account).is_some() {
            return Err(Violation::AccountExists {
                account: open.account,
            });
        }
        let bank_key = *self
            .params
            .bank_key(open.bank)
            .ok_or(Violation::UnknownBank {
                index,
                bank: open.bank,
            })?;
        crypto::check_key_strength(&open.tx_key).map_err(|reason| Violation::BadKey { reason })?;
        let message = open_account_message(&self.params.chain_id, &open.tx_key, open.bank)?;
        self.push_signature(
            SigCheck::Holder(index),
            &open.tx_key,
            &message,
            &open.holder_signature,
        );
        self.push_signature(
            SigCheck::Bank(index),
            &bank_key,
            &message,
            &open.bank_signature,
        );
        self.touched.insert(
            open.account,
            Account {
                tx_key: open.tx_key,
                bank: open.bank,
                balance: Amount(0),
                closed: false,
            },
        );
        Ok(())
    }

    fn issue(&mut self, issue: &Issue) -> Result<(), Violation> {
        if issue.amount.0 == 0 {
            return Err(Violation::ZeroAmount);
        }
        let limit = Amount(self.params.limits.issue_amount_max);
        if issue.amount > limit {
            return Err(Violation::IssueTooLarge {
                amount: issue.amount,
                limit,
            });
        }
        let mut account = self.open_account_of(&issue.to)?;
        let issued = self
            .issued
            .checked_add(issue.amount.0)
            .filter(|issued| self.state.supply.0.checked_add(*issued).is_some())
            .ok_or(Violation::SupplyOverflow)?;
        account.balance = Amount(
            account
                .balance
                .0
                .checked_add(issue.amount.0)
                .ok_or(Violation::BalanceOverflow { account: issue.to })?,
        );
        self.issued = issued;
        self.touched.insert(issue.to, account);
        Ok(())
    }

    fn check_attestation(
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

    fn transfer(
        &mut self,
        index: usize,
        op: &TransferOp,
        attestations: &[BatchAttestation],
    ) -> Result<(), Violation> {
        let transfer = &op.request.transfer;
        self.check_transfer_fields(transfer)?;
        self.check_expiry(transfer.expires_at)?;
        let mut payer = self.open_account_of(&transfer.payer)?;
        let mut payee = self.open_account_of(&transfer.payee)?;
        let credential_version = op.request.identity_credential.0[0];
        if credential_version != VERSION {
            return Err(Violation::IdentityCredentialVersion {
                version: credential_version,
            });
        }
        let id = transfer.id()?;
        self.check_attestation(
            attestations,
            op.payer_ok,
            AttestationKind::PayerOk,
            payer.bank,
            &id,
        )?;
        self.check_attestation(
            attestations,
            op.payee_ok,
            AttestationKind::PayeeOk,
            payee.bank,
            &id,
        )?;
        move_amount(transfer, &mut payer, &mut payee)?;
        self.use_nonce(&transfer.payer, transfer.nonce, transfer.expires_at)?;
        self.push_signature(
            SigCheck::TxCredential(index),
            &payer.tx_key,
            &id,
            &op.request.tx_credential,
        );
        self.touched.insert(transfer.payer, payer);
        self.touched.insert(transfer.payee, payee);
        // Block ops are bounded far below u32::MAX.
        self.transfers
            .push((id, u32::try_from(index).unwrap_or(u32::MAX)));
        Ok(())
    }

    /// The transfer's own fields, in the order they are checked: version, chain, memo
    /// length, a non-zero amount, two different accounts.
    fn check_transfer_fields(&self, transfer: &Transfer) -> Result<(), Violation> {
        if transfer.version != VERSION {
            return Err(Violation::TransferVersion {
                version: transfer.version,
            });
        }
        if transfer.chain_id != self.params.chain_id {
            return Err(Violation::WrongChain {
                found: transfer.chain_id.to_string(),
                expected: self.params.chain_id.to_string(),
            });
        }
        let memo_limit = usize::from(self.params.limits.memo_bytes_max).min(MEMO_BYTES_MAX);
        if transfer.memo.0.len() > memo_limit {
            return Err(Violation::MemoTooLong {
                bytes: transfer.memo.0.len(),
                limit: memo_limit,
            });
        }
        if transfer.amount.0 == 0 {
            return Err(Violation::ZeroAmount);
        }
        if transfer.payer == transfer.payee {
            return Err(Violation::SelfTransfer);
        }
        Ok(())
    }

    fn rotate_key(&mut self, index: usize, rotate: &RotateKey) -> Result<(), Violation> {
        let mut account = self.open_account_of(&rotate.account)?;
        self.check_expiry(rotate.expires_at)?;
        crypto::check_key_strength(&rotate.new_key)
            .map_err(|reason| Violation::BadKey { reason })?;
        self.use_nonce(&rotate.account, rotate.nonce, rotate.expires_at)?;
        let message = rotate.message(&self.params.chain_id)?;
        self.push_signature(
            SigCheck::OldKey(index),
            &account.tx_key,
            &message,
            &rotate.old_signature,
        );
        self.push_signature(
            SigCheck::NewKey(index),
            &rotate.new_key,
            &message,
            &rotate.new_signature,
        );
        account.tx_key = rotate.new_key;
        self.touched.insert(rotate.account, account);
        Ok(())
    }

    fn close_account(&mut self, index: usize, close: &CloseAccount) -> Result<(), Violation> {
        let mut account = self.open_account_of(&close.account)?;
        if account.balance.0 != 0 {
            return Err(Violation::CloseNonEmpty {
                account: close.account,
                balance: account.balance,
            });
        }
        self.check_expiry(close.expires_at)?;
        self.use_nonce(&close.account, close.nonce, close.expires_at)?;
        let message = close.message(&self.params.chain_id)?;
        self.push_signature(
            SigCheck::Holder(index),
            &account.tx_key,
            &message,
            &close.signature,
        );
        account.closed = true;
        self.touched.insert(close.account, account);
        Ok(())
    }

    fn disclosure(&mut self, index: usize, disclosure: &Disclosure) -> Result<(), Violation> {
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

    /// Ends the block: settles the gathered signatures, commits what the ops changed to the
    /// state's hash and checks the body's size; returns the change and the signatures
    /// deferred to the caller.
    fn finish(
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
    fn verify_or_defer(&mut self, signatures: Signatures) -> Result<Pending, ApplyError> {
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
    fn codec_error(&self, error: crate::error::CodecError) -> ApplyError {
        self.error(None, error.into())
    }

    /// Puts the touched accounts into `update`, sorted by id, and checks the supply: the
    /// balances moved by exactly what was issued.
    fn update_accounts(
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
            before_total += before.map_or(0, |account| u128::from(account.balance.0));
            after_total += u128::from(after.balance.0);
            update
                .replace_account(id, before, after)
                .map_err(|error| self.codec_error(error))?;
        }
        let expected = before_total + u128::from(self.issued);
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
    fn update_nonces_and_orders(
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
    fn hash_body(
        &self,
        ops: &[Op],
        attestations: &[BatchAttestation],
    ) -> Result<(Vec<Hash32>, Vec<Hash32>), ApplyError> {
        let (op_hashes, body_bytes) = hash_ops(ops).map_err(|error| self.codec_error(error))?;
        let (attestation_hashes, attestation_bytes) =
            hash_attestations(attestations).map_err(|error| self.codec_error(error))?;
        let bytes = body_bytes + attestation_bytes;
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

/// Moves `transfer`'s amount from `payer` to `payee`: refused if the payer has too little
/// or the payee's balance would overflow.
fn move_amount(
    transfer: &Transfer,
    payer: &mut Account,
    payee: &mut Account,
) -> Result<(), Violation> {
    payer.balance = payer
        .balance
        .0
        .checked_sub(transfer.amount.0)
        .map(Amount)
        .ok_or(Violation::InsufficientFunds {
            account: transfer.payer,
            balance: payer.balance,
            amount: transfer.amount,
        })?;
    payee.balance = payee
        .balance
        .0
        .checked_add(transfer.amount.0)
        .map(Amount)
        .ok_or(Violation::BalanceOverflow {
            account: transfer.payee,
        })?;
    Ok(())
}

/// Each op's hash and the body's encoded size, reusing one buffer.
pub fn hash_ops(ops: &[Op]) -> Result<(Vec<Hash32>, usize), crate::error::CodecError> {
    let mut buffer = Vec::with_capacity(512);
    let mut hashes = Vec::with_capacity(ops.len());
    let mut bytes = 0usize;
    for op in ops {
        codec::encode_into(op, &mut buffer)?;
        bytes += buffer.len();
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
        bytes += buffer.len();
        hashes.push(crate::hash::Domain::AttestationHash.hash(&buffer));
    }
    Ok((hashes, bytes))
}
