//! A bank's decisions, as a state machine: which envelopes it accepts (its payer checks and
//! limits), what it forwards to the IM and when (its outbox), which payees it approves,
//! when a transfer is final, and which refusals it signs. Each input is a method; what the
//! bank must do about it comes out as [`Effect`]s, which the node carries out
//! (`halfveil_node::bank`). No clock, disk or network here: the time is an input.
//!
//! A refusal is signed here but told only after the node stored it
//! ([`Effect::StoreRefusals`], then [`Bank::on_refusals_stored`]), so a refusal once told is
//! final, across restarts too.

pub mod accounts;
mod approve;
mod forward;
mod open;
pub mod outbox;
mod refusals;
mod submit;
mod sweep;
pub mod tracker;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::fastmap::HashMap;
use halfveil_ledger::{
    attestation_message, AccountId, AttestationKind, BankId, BatchAttestation, ChainId, Hash32,
    Height, PublicKey, RejectCode, Rejection, TimeMs, TransactionRequest,
};

pub use accounts::{BankLimits, LocalAccount, Spending};
pub use approve::{PayeeItem, Verdict};
use outbox::Outbox;
pub use submit::Submitted;
use tracker::{Tracked, Tracker};

use crate::transfer::TransferState;

/// Most accepted transfers waiting to be forwarded.
pub const OUTBOX_MAX: usize = 100_000;
/// Transfers whose status the bank remembers (oldest forgotten first).
pub const TRACKED_MAX: usize = 1_000_000;
/// Most transfers in one forwarded batch, or one approval batch.
pub const BATCH_TRANSFERS_MAX: usize = 4096;
/// A pending transfer without a final answer this long after it was forwarded is forwarded
/// again (the IM may have lost it in a crash; it answers one it holds or committed with its
/// status, never a second admission).
pub const REFORWARD_AFTER: Duration = Duration::from_secs(5);
/// How often the bank sweeps its pending transfers for expiry and staleness.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What the node must do for the bank.
#[derive(Debug)]
pub enum Effect {
    /// Send this batch to the IM; its answer comes back through [`Bank::on_forward_answer`].
    Forward {
        ids: Vec<Hash32>,
        requests: Vec<TransactionRequest>,
        attestation: BatchAttestation,
    },
    /// Store these refusals in one synced write, dropping those whose transfer the chain
    /// holds; then [`Bank::on_refusals_stored`]. Nothing of them is told before.
    StoreRefusals(Vec<Refusal>),
    /// Delete the stored refusals of these transfers: the chain's time passed their expiry.
    PruneRefusals(Vec<Hash32>),
    /// This transfer is final: tell whoever waits for it.
    Resolve { id: Hash32, state: TransferState },
}

/// A refusal this bank gives or passes on, to be stored before anyone hears of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub id: Hash32,
    pub rejection: Rejection,
    pub expires_at: TimeMs,
    pub payer: AccountId,
}

/// Where the chain holds a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChain {
    pub id: Hash32,
    pub height: Height,
    pub index: u32,
}

impl OnChain {
    fn state(&self) -> TransferState {
        TransferState::Committed {
            height: self.height,
            index: self.index,
        }
    }
}

/// The IM's answer to a forwarded batch, as the bank needs it.
#[derive(Debug)]
pub enum ForwardAnswer {
    /// Taken: these refused (signed by the IM), these committed before; the rest pending.
    Taken {
        rejected: Vec<Rejection>,
        committed: Vec<OnChain>,
    },
    /// The IM is busy: it may or may not hold the batch, so it goes again shortly (the IM
    /// never admits a transfer twice).
    Again,
    /// The IM could not be reached or did not answer: as [`ForwardAnswer::Again`], and it
    /// may have restarted and lost what it held (see [`Bank`]'s `im_interrupted`).
    Lost,
    /// The IM replica asked does not lead, or could not be reached: the batch goes to
    /// another replica after a short hold-off.
    Elsewhere,
    /// The IM refused the batch as a whole.
    Refused { code: RejectCode, message: String },
    /// An answer that makes no sense for a forward: the transfers wait for the sweep.
    Unexpected,
}

/// Why an envelope was not taken (the payer hears the same for every envelope fault).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the envelope cannot be opened by this bank")]
    Envelope,
    #[error("this transfer was refused earlier; its refusal is final")]
    RefusedBefore,
    #[error("the bank is busy; retry")]
    Busy,
}

/// An account opening the bank was asked for, parsed.
#[derive(Clone, Debug)]
pub struct Opening {
    pub tx_key: PublicKey,
    pub holder_signature: halfveil_ledger::Signature,
    pub account: AccountId,
    /// The holder's identity record, encrypted to the disclosure key: the bank relays it
    /// blind, and its signature covers it.
    pub identity_record: Box<halfveil_ledger::SealedIdentityRecord>,
}

/// Why the bank will not open an account.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpeningError {
    #[error("the account already exists at this bank")]
    Exists,
    #[error("the holder's signature does not verify")]
    HolderSignature,
    #[error("the open-account message does not encode")]
    Message,
}

/// How much the bank holds at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Accepted transfers waiting to be forwarded; beyond, payers hear "busy".
    pub outbox_max: usize,
    /// Transfers whose status the bank remembers (oldest forgotten first).
    pub tracked_max: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            outbox_max: OUTBOX_MAX,
            tracked_max: TRACKED_MAX,
        }
    }
}

/// The keys the bank checks others' signatures with.
#[derive(Clone, Debug)]
pub struct Keys {
    pub chain_id: ChainId,
    /// The IM replicas' validator keys: any of them may sign an IM refusal.
    pub validators: Vec<PublicKey>,
    /// Each bank's attestation key, by [`BankId`].
    pub banks: Vec<PublicKey>,
}

impl Keys {
    /// Whether `rejection` is signed by whom it names: an IM replica (a refusal carries no
    /// replica number, so each replica key is tried) or the bank.
    pub fn signed(&self, rejection: &Rejection) -> bool {
        rejection
            .verify_by(&self.chain_id, &self.validators, &self.banks)
            .is_ok()
    }
}

/// A bank's state and decisions.
#[derive(Debug)]
pub struct Bank {
    pub id: BankId,
    keys: Keys,
    bounds: Bounds,
    key: SigningKey,
    accounts: HashMap<AccountId, LocalAccount>,
    tracker: Tracker,
    outbox: Outbox,
    spending: Spending,
    /// Refusals made while handling the current input, to store before they are told.
    new_refusals: Vec<Refusal>,
    /// The stored refusals, by their transfer's expiry, for pruning.
    refusal_rows: BTreeSet<(TimeMs, Hash32)>,
    /// Height and time of the last block on this bank's disk: a transfer not committed by
    /// a block at or after its expiry never will be.
    written: (Height, TimeMs),
    last_sweep: Option<Instant>,
    /// Since when the IM (or the replica forwarded to) has not taken a batch: it did not
    /// lead, could not be reached, or restarted. What it held but had not committed may be
    /// gone with it, so once an IM takes a batch again, everything forwarded before this
    /// moment goes again at once rather than after [`REFORWARD_AFTER`].
    im_interrupted: Option<Instant>,
    effects: Vec<Effect>,
}

impl Bank {
    /// A bank with its stored accounts and refusals, its head at `written`.
    pub fn new(
        id: BankId,
        keys: Keys,
        bounds: Bounds,
        key: SigningKey,
        accounts: HashMap<AccountId, LocalAccount>,
        refusals: Vec<Refusal>,
        written: (Height, TimeMs),
    ) -> Bank {
        let mut bank = Bank {
            id,
            keys,
            bounds,
            key,
            accounts,
            tracker: Tracker::new(bounds.tracked_max),
            outbox: Outbox::default(),
            spending: Spending::new(),
            new_refusals: Vec::new(),
            refusal_rows: BTreeSet::new(),
            written,
            last_sweep: None,
            im_interrupted: None,
            effects: Vec::new(),
        };
        for refusal in refusals {
            bank.refusal_rows.insert((refusal.expires_at, refusal.id));
            let state = TransferState::Rejected(Box::new(refusal.rejection));
            let tracked = Tracked::new(state, refusal.expires_at, refusal.payer);
            bank.tracker.remember(refusal.id, tracked, written.1);
        }
        bank
    }

    /// What the node must do now; each effect is handed out once.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    pub fn stored_refusals(&self) -> usize {
        self.refusal_rows.len()
    }

    pub fn state(&self, id: &Hash32) -> TransferState {
        self.tracker.state(id)
    }

    pub fn account(&self, id: &AccountId) -> Option<&LocalAccount> {
        self.accounts.get(id)
    }

    pub fn account_mut(&mut self, id: &AccountId) -> Option<&mut LocalAccount> {
        self.accounts.get_mut(id)
    }

    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// This bank's attestation of `kind` over `ids`.
    fn attest(&self, kind: AttestationKind, ids: Vec<Hash32>) -> Option<BatchAttestation> {
        let message = attestation_message(&self.keys.chain_id, kind, self.id, &ids).ok()?;
        Some(BatchAttestation {
            kind,
            bank: self.id,
            ids,
            signature: crypto::sign(&self.key, &message),
        })
    }
}
