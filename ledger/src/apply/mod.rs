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

//!
//! The rules live one concern a file: [`header`] (the header's own rules and its roots),
//! [`execution`] (the body's run: sizes, attestations, the replay rule, the signature
//! batch), one file per op under [`ops`], [`commit`] (what the block changes, hashed into
//! the state root), and [`run`] (many blocks with one signature batch).

// Arithmetic that could overflow and indexing that could panic are refused in the rules
// outside tests: every node must reach the same answer without a panic (checked_*,
// saturating_*, get()).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

mod commit;
mod execution;
mod header;
mod ops;
mod run;

use crate::crypto::{self, SignatureBatch};
use crate::error::{ApplyError, Violation};
use crate::fastmap::{HashMap, HashSet};
use crate::hash::Hash32;
use crate::state::{Account, ChainParams, State, StateChange};
use crate::types::{AccountId, BatchAttestation, Block, Height, Nonce, Op, TimeMs};

pub use commit::hash_ops;
pub use run::{apply_blocks, apply_blocks_pending, PendingSignatures, RunError};

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
                let mut batch = SignatureBatch::with_capacity(body.len().saturating_add(1));
                batch.push(
                    SigCheck::Block,
                    &block.signed.signer,
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
    header::check_header(params, state, block).map_err(at_header)?;
    if signatures == Signatures::Now {
        let block_hash = header.hash().map_err(|error| at_header(error.into()))?;
        crypto::verify(&block.signed.signer, &block_hash, &block.signed.signature)
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
    header::check_roots(header, &change).map_err(at_header)?;
    Ok((change, pending))
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
    ShareHolder(usize, u16),
    KeyHolder(usize, u16),
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
            SigCheck::ShareHolder(op, holder) => {
                (Some(op), Violation::BadShareSignature { holder })
            }
            SigCheck::KeyHolder(op, holder) => {
                (Some(op), Violation::BadKeyAdoptionSignature { holder })
            }
        }
    }
}

/// One block body being run: what it touched so far, and the signatures it gathered.
struct Execution<'a> {
    params: &'a ChainParams,
    state: &'a State,
    height: Height,
    time: TimeMs,
    touched: HashMap<AccountId, Account>,
    nonces_added: Vec<(AccountId, Nonce, TimeMs)>,
    nonces_in_block: HashSet<(AccountId, Nonce)>,
    orders_served: Vec<Hash32>,
    /// The disclosure key this block adopts, if any.
    adopted: Option<crate::disclosure_keys::KeyAdoption>,
    transfers: Vec<(Hash32, u32)>,
    attested: HashSet<(u16, Hash32)>,
    signatures: Option<SignatureBatch<SigCheck>>,
    /// Credentials and attestations were verified on receipt (see [`execute_admitted`]).
    admitted: bool,
    issued: u64,
}
