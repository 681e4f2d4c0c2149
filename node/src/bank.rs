//! A bank's half of the service: opens envelopes with its accounts' business keys, checks
//! status and limits, forwards accepted transfers to the IM in batches with one payer-ok
//! attestation each, approves or refuses its payees with a signed verdict, opens accounts
//! (relaying the sealed identity record blind), and tracks each transfer until it is final.
//!
//! Business keys are stored encrypted at rest under a key derived from the bank's
//! attestation key; status and limits live beside them in the store's local table.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::network::{Reply, RequestError};
use halfveil_ledger::crypto::{
    self, BusinessKey, Envelope, SealedIdentityRecord, SigningKey, SEALED_IDENTITY_RECORD_BYTES,
};
use halfveil_ledger::fastmap::{HashMap, HashMapExt, HashSet, HashSetExt};
use halfveil_ledger::sharded::ShardedMap;
use halfveil_ledger::{
    attestation_message, codec, open_account_message, AccountId, AttestationKind, BankId,
    BatchAttestation, Block, CodecError, CryptoError, Hash32, Height, OpenAccount, PublicKey,
    RejectCode, Rejecter, Rejection, Signature, State, TimeMs, TransactionRequest,
};
use halfveil_store::{Location, RocksStore, Store, StoreError};
use libp2p::PeerId;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use crate::protocol::{
    ApprovalItemWire, ForwardBatch, OpenAccountRequest, Request, Response, BATCH_TRANSFERS_MAX,
};
use crate::rpc::{codes, AccountInfo, BankLimits, OpenAccountParams, OpenedAccount, RpcFailure};
use crate::service::{now_ms, AccountChange, Input, Role, Service, TransferState};

/// Most accepted transfers waiting to be forwarded.
const OUTBOX_MAX: usize = 100_000;
/// Forward batches in flight to the IM at once.
const FORWARDS_IN_FLIGHT_MAX: usize = 4;
/// Transfers whose status the bank remembers (oldest forgotten first).
const TRACKED_MAX: usize = 1_000_000;
/// A pending transfer without a final answer this long after it was forwarded is forwarded
/// again (the IM may have lost it in a crash; the IM answers one it holds or committed
/// with its status, never a second admission).
const REFORWARD_AFTER: Duration = Duration::from_secs(5);
/// Most ids of stored refusals remembered after their tracked entry was forgotten.
const REFUSED_IDS_MAX: usize = 4_000_000;
/// How long forwarding waits after the IM could not be reached or was busy.
const FORWARD_RETRY: Duration = Duration::from_secs(1);
const ACCOUNT_PREFIX: &[u8] = b"acct/";
/// Rows of the refusals this bank has given, kept until the chain's time passes their
/// transfer's expiry (after which it can never commit).
const REFUSAL_PREFIX: &[u8] = b"refused/";
const ROW_VERSION: u8 = 1;
const ACCOUNTS_MAX: usize = 10_000_000;

/// One account this bank runs.
#[derive(Debug)]
pub struct LocalAccount {
    business_key: BusinessKey,
    pub frozen: bool,
    pub limits: BankLimits,
    /// Committed on chain (the IM answered).
    pub opened: bool,
}

#[derive(Serialize, Deserialize)]
struct AccountRow {
    version: u8,
    sealed_business_key: Vec<u8>,
    frozen: bool,
    payment_max: u64,
    daily_max: u64,
    receive_max: u64,
    opened: bool,
}

#[derive(Debug)]
struct Tracked {
    track: TransferState,
    expires_at: TimeMs,
    payer: AccountId,
    /// Counted in the payer's daily spending (0 if the bank refused it at once).
    amount: u64,
    /// The request, kept while pending so it can be forwarded again.
    request: Option<Box<TransactionRequest>>,
    /// When it was last forwarded.
    forwarded_at: Option<Instant>,
    /// In the outbox now.
    queued: bool,
    /// A refusal of it is being stored: no second one.
    refusing: bool,
}

impl Tracked {
    fn new(track: TransferState, expires_at: TimeMs, payer: AccountId) -> Tracked {
        Tracked {
            track,
            expires_at,
            payer,
            amount: 0,
            request: None,
            forwarded_at: None,
            queued: false,
            refusing: false,
        }
    }
}

/// A refusal this bank gives or passes on: stored (synced) before anyone hears of it, so
/// a signed refusal is final, across restarts too.
#[derive(Debug)]
pub struct Refusal {
    id: Hash32,
    rejection: Rejection,
    expires_at: TimeMs,
    payer: AccountId,
}

/// A stored refusal.
#[derive(Serialize, Deserialize)]
struct RefusalRow {
    version: u8,
    expires_at: TimeMs,
    payer: AccountId,
    rejection: Rejection,
}

/// Inputs only a bank gets.
#[derive(Debug)]
pub enum BankInput {
    ForwardAnswer {
        ids: Vec<Hash32>,
        result: Result<Response, RequestError>,
    },
    /// These refusals are on disk: they may be told. `committed` are transfers whose
    /// refusal was dropped because the chain already holds them.
    RefusalsStored {
        refusals: Vec<Refusal>,
        committed: Vec<(Hash32, Location)>,
    },
    OpenRelayed {
        account: AccountId,
        result: Result<Response, RequestError>,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    },
}

/// The bank's state.
#[derive(Debug)]
pub struct BankRole {
    pub id: BankId,
    pub name: String,
    key: SigningKey,
    storage_secret: Zeroizing<[u8; 32]>,
    pub accounts: HashMap<AccountId, LocalAccount>,
    /// Accepted transfers to forward, by id (their requests are in `tracked`).
    outbox: VecDeque<Hash32>,
    /// Sharded: it grows by every transfer, and a plain map's doubling stalled the bank.
    tracked: ShardedMap<Hash32, Tracked>,
    tracked_order: VecDeque<Hash32>,
    /// The tracked transfers still pending, by expiry: the sweep reads only the expired
    /// ones, not every tracked transfer each second.
    pending_by_expiry: BTreeSet<(TimeMs, Hash32)>,
    forwards_in_flight: usize,
    /// No forward before this (the IM was unreachable or busy).
    forward_retry_at: Option<Instant>,
    /// Refusals made while handling the current input, to store before they are told.
    new_refusals: Vec<Refusal>,
    /// The stored refusal rows, by their transfer's expiry, for pruning.
    refusal_rows: BTreeSet<(TimeMs, Hash32)>,
    /// Stored refusals whose tracked entry was forgotten: such a transfer is never
    /// accepted again (until the chain's time passes its expiry).
    refused_ids: HashSet<Hash32>,
    /// Height and time of the last block on this bank's disk: a transfer not committed by
    /// a block at or after its expiry never will be.
    written: (Height, TimeMs),
    /// Spent per account on the current UTC day (in memory; see the operator guide).
    spent: HashMap<AccountId, (u64, u64)>,
    last_sweep: Instant,
}

/// Why the bank's own rows (accounts, refusals) could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("cannot read the bank's refusals: {0}")]
    ReadRefusals(#[source] StoreError),
    #[error("corrupt refusal row: {0}")]
    RefusalRow(#[source] CodecError),
    #[error("cannot read the bank's accounts: {0}")]
    ReadAccounts(#[source] StoreError),
    /// An account row's key is not the prefix and 32 bytes.
    #[error("corrupt account row key")]
    AccountRowKey,
    #[error("corrupt account row: {0}")]
    AccountRow(#[source] CodecError),
    /// The sealed business key does not open: the row was written under another key.
    #[error("the business key of {account} does not open with this bank's key")]
    BusinessKeySealed { account: AccountId },
    /// The opened business key is not 32 bytes.
    #[error("corrupt business key")]
    BusinessKey,
    #[error("cannot read the head: {0}")]
    Head(#[source] StoreError),
    /// Writing refusals, or looking up where a refused transfer is on chain.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A row does not encode.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// A business key cannot be sealed for storage.
    #[error(transparent)]
    Seal(#[from] CryptoError),
}

fn row_key(account: &AccountId) -> Vec<u8> {
    let mut key = ACCOUNT_PREFIX.to_vec();
    key.extend_from_slice(&account.0);
    key
}

fn refusal_key(id: &Hash32) -> Vec<u8> {
    let mut key = REFUSAL_PREFIX.to_vec();
    key.extend_from_slice(&id.0);
    key
}

/// The refusals this bank has given and not yet pruned.
fn load_refusals(store: &RocksStore) -> Result<Vec<RefusalRow>, BankError> {
    let rows = store
        .local_scan(REFUSAL_PREFIX, TRACKED_MAX)
        .map_err(BankError::ReadRefusals)?;
    rows.into_iter()
        .map(|(_, value)| codec::decode::<RefusalRow>(&value, 4096).map_err(BankError::RefusalRow))
        .collect()
}

/// `answer`, unless it refuses a transfer found in `committed`: then where it is.
fn on_chain_instead(
    answer: Result<(Hash32, TransferState), RpcFailure>,
    committed: &[(Hash32, Location)],
) -> Result<(Hash32, TransferState), RpcFailure> {
    match answer {
        Ok((id, track @ TransferState::Rejected(_))) => {
            match committed.iter().find(|(found, _)| *found == id) {
                Some((_, location)) => Ok((
                    id,
                    TransferState::Committed {
                        height: location.height,
                        index: location.index,
                    },
                )),
                None => Ok((id, track)),
            }
        }
        other => other,
    }
}

/// What to do once refusals are stored: answer an RPC call, told which of the refused
/// transfers the chain holds instead.
type Then = Box<dyn FnOnce(&[(Hash32, Location)]) + Send>;

/// Drops the refusals of transfers the chain already holds, stores the rest in one synced
/// write; returns the stored refusals and where the others are.
#[allow(clippy::type_complexity)]
fn store_refusals(
    store: &RocksStore,
    refusals: Vec<Refusal>,
) -> Result<(Vec<Refusal>, Vec<(Hash32, Location)>), BankError> {
    let mut kept = Vec::with_capacity(refusals.len());
    let mut committed = Vec::new();
    for refusal in refusals {
        match store.transfer_location(&refusal.id) {
            Ok(Some(location)) => committed.push((refusal.id, location)),
            Ok(None) => kept.push(refusal),
            Err(error) => return Err(error.into()),
        }
    }
    let mut rows = Vec::with_capacity(kept.len());
    for refusal in &kept {
        let row = RefusalRow {
            version: ROW_VERSION,
            expires_at: refusal.expires_at,
            payer: refusal.payer,
            rejection: refusal.rejection.clone(),
        };
        let value = codec::encode(&row)?;
        rows.push((refusal_key(&refusal.id), value));
    }
    if !rows.is_empty() {
        store.local_put(&rows)?;
    }
    Ok((kept, committed))
}

/// The bank's accounts as stored, their business keys opened with `storage_secret`.
fn load_accounts(
    store: &RocksStore,
    storage_secret: &[u8; 32],
) -> Result<HashMap<AccountId, LocalAccount>, BankError> {
    let mut accounts = HashMap::new();
    let rows = store
        .local_scan(ACCOUNT_PREFIX, ACCOUNTS_MAX)
        .map_err(BankError::ReadAccounts)?;
    for (row_key, value) in rows {
        let (account, local) = account_from_row(storage_secret, &row_key, &value)?;
        accounts.insert(account, local);
    }
    Ok(accounts)
}

/// One stored account row: the account its key names, and the account with its business
/// key opened.
fn account_from_row(
    storage_secret: &[u8; 32],
    row_key: &[u8],
    value: &[u8],
) -> Result<(AccountId, LocalAccount), BankError> {
    let account = AccountId(
        row_key[ACCOUNT_PREFIX.len()..]
            .try_into()
            .map_err(|_| BankError::AccountRowKey)?,
    );
    let row: AccountRow = codec::decode(value, 4096).map_err(BankError::AccountRow)?;
    let plaintext = crypto::open_at_rest(storage_secret, &account.0, &row.sealed_business_key)
        .map_err(|_| BankError::BusinessKeySealed { account })?;
    let bytes: [u8; 32] = plaintext
        .as_slice()
        .try_into()
        .map_err(|_| BankError::BusinessKey)?;
    let local = LocalAccount {
        business_key: BusinessKey::from_bytes(bytes),
        frozen: row.frozen,
        limits: BankLimits {
            payment_max: row.payment_max,
            daily_max: row.daily_max,
            receive_max: row.receive_max,
        },
        opened: row.opened,
    };
    Ok((account, local))
}

/// An account opening as a payer asks for it, parsed.
#[derive(Debug)]
struct Opening {
    tx_key: PublicKey,
    holder_signature: Signature,
    /// The identity record, sealed to the IM: relayed blind.
    record: Vec<u8>,
    account: AccountId,
}

/// Parses an opening request: hex fields of the right lengths, a strong key, and an account
/// not on the chain yet.
fn parse_opening(params: &OpenAccountParams, state: &State) -> Result<Opening, RpcFailure> {
    let tx_key = PublicKey(parse_hex::<32>(&params.tx_key, "tx_key")?);
    let holder_signature = Signature(parse_hex::<64>(
        &params.holder_signature,
        "holder_signature",
    )?);
    if params.sealed_record.len() != SEALED_IDENTITY_RECORD_BYTES * 2 {
        return Err(RpcFailure::new(
            codes::INVALID_INPUT,
            "sealed_record has the wrong length",
        ));
    }
    let record = hex::decode(&params.sealed_record)
        .map_err(|_| RpcFailure::new(codes::INVALID_INPUT, "sealed_record is not hex"))?;
    crypto::check_key_strength(&tx_key)
        .map_err(|error| RpcFailure::new(codes::INVALID_INPUT, error.to_string()))?;
    let account = AccountId::from_key(&tx_key);
    if state.account(&account).is_some() {
        return Err(RpcFailure::new(
            codes::REFUSED,
            "the account already exists",
        ));
    }
    Ok(Opening {
        tx_key,
        holder_signature,
        record,
        account,
    })
}

fn day_of(time: TimeMs) -> u64 {
    time.0 / 86_400_000
}

impl BankRole {
    /// Loads the bank's accounts from the store.
    pub fn load(
        id: BankId,
        name: String,
        key: SigningKey,
        store: &RocksStore,
    ) -> Result<BankRole, BankError> {
        let storage_secret = Zeroizing::new(key.to_bytes());
        let accounts = load_accounts(store, &storage_secret)?;
        info!(accounts = accounts.len(), "bank accounts loaded");
        let refusals = load_refusals(store)?;
        let head = store.head().map_err(BankError::Head)?;
        let mut bank = BankRole {
            id,
            name,
            key,
            storage_secret,
            accounts,
            outbox: VecDeque::new(),
            tracked: ShardedMap::new(),
            tracked_order: VecDeque::new(),
            pending_by_expiry: BTreeSet::new(),
            forwards_in_flight: 0,
            forward_retry_at: None,
            new_refusals: Vec::new(),
            refusal_rows: BTreeSet::new(),
            refused_ids: HashSet::new(),
            written: (head.height, head.time),
            spent: HashMap::new(),
            last_sweep: Instant::now(),
        };
        for row in refusals {
            let id = row.rejection.transfer;
            bank.refusal_rows.insert((row.expires_at, id));
            let track = TransferState::Rejected(Box::new(row.rejection));
            bank.remember(id, Tracked::new(track, row.expires_at, row.payer));
        }
        info!(refusals = bank.refusal_rows.len(), "stored refusals loaded");
        Ok(bank)
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    pub fn track(&self, id: &Hash32) -> TransferState {
        self.tracked
            .get(id)
            .map_or(TransferState::Unknown, |tracked| tracked.track.clone())
    }

    /// Refuses `id` (signed by this bank); the refusal is told once stored.
    fn refuse(
        &mut self,
        chain_id: &halfveil_ledger::ChainId,
        id: Hash32,
        code: RejectCode,
        detail: &str,
    ) {
        if let Some(rejection) = self.reject(chain_id, id, code, detail) {
            self.pass_on_refusal(id, rejection);
        }
    }

    /// Queues a verified refusal of a tracked, pending transfer for storing (at most one per
    /// transfer: the first refusal is the one told).
    fn pass_on_refusal(&mut self, id: Hash32, rejection: Rejection) {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if tracked.track != TransferState::Pending || tracked.refusing {
            return;
        }
        tracked.refusing = true;
        let (expires_at, payer) = (tracked.expires_at, tracked.payer);
        self.new_refusals.push(Refusal {
            id,
            rejection,
            expires_at,
            payer,
        });
    }

    /// Puts a batch the IM did not take back at the front of the outbox (the transfers
    /// still pending), and holds forwarding back for [`FORWARD_RETRY`].
    fn forward_again(&mut self, ids: Vec<Hash32>) {
        for id in ids.into_iter().rev() {
            if let Some(tracked) = self.tracked.get_mut(&id) {
                if tracked.track == TransferState::Pending && !tracked.refusing && !tracked.queued {
                    tracked.queued = true;
                    self.outbox.push_front(id);
                }
            }
        }
        self.forward_retry_at = Some(Instant::now() + FORWARD_RETRY);
    }

    /// Queues again the pending transfers forwarded more than [`REFORWARD_AFTER`] ago
    /// without a final answer.
    fn queue_stale(&mut self, now: Instant) {
        for (_, id) in &self.pending_by_expiry {
            let Some(tracked) = self.tracked.get_mut(id) else {
                continue;
            };
            let stale = tracked
                .forwarded_at
                .is_some_and(|at| now.saturating_duration_since(at) >= REFORWARD_AFTER);
            if stale
                && !tracked.queued
                && !tracked.refusing
                && tracked.track == TransferState::Pending
            {
                tracked.queued = true;
                self.outbox.push_back(*id);
            }
        }
    }

    /// The ids and requests of the next forward batch: at most [`BATCH_TRANSFERS_MAX`] from
    /// the outbox, skipping transfers that became final or are being refused meanwhile.
    fn next_batch(&mut self, now: Instant) -> (Vec<Hash32>, Vec<TransactionRequest>) {
        let mut ids = Vec::new();
        let mut requests = Vec::new();
        while ids.len() < BATCH_TRANSFERS_MAX {
            let Some(id) = self.outbox.pop_front() else {
                break;
            };
            let Some(tracked) = self.tracked.get_mut(&id) else {
                continue;
            };
            tracked.queued = false;
            let forwardable = tracked.track == TransferState::Pending && !tracked.refusing;
            if let (true, Some(request)) = (forwardable, &tracked.request) {
                tracked.forwarded_at = Some(now);
                requests.push(TransactionRequest::clone(request));
                ids.push(id);
            }
        }
        (ids, requests)
    }

    /// Updates a transfer this bank tracks (others are ignored).
    pub fn set_track(&mut self, id: Hash32, track: TransferState) {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if tracked.track != TransferState::Pending || track == TransferState::Pending {
            return;
        }
        self.pending_by_expiry.remove(&(tracked.expires_at, id));
        tracked.request = None;
        tracked.refusing = false;
        if matches!(track, TransferState::Rejected(_)) {
            if let Some((_, spent)) = self.spent.get_mut(&tracked.payer) {
                *spent = spent.saturating_sub(tracked.amount);
            }
        }
        tracked.track = track;
    }

    /// The request an envelope holds and its transfer's id, if the envelope is for an open
    /// account of this bank and opens with its business key; every failure looks the same
    /// to the sender.
    fn open_envelope(
        &self,
        chain_id: &halfveil_ledger::ChainId,
        bytes: &[u8],
    ) -> Result<(Hash32, TransactionRequest), RpcFailure> {
        let uniform = || {
            RpcFailure::new(
                codes::ENVELOPE,
                "the envelope cannot be opened by this bank",
            )
        };
        let request = Envelope::decode(bytes)
            .ok()
            .and_then(|envelope| {
                let local = self
                    .accounts
                    .get(&envelope.account)
                    .filter(|local| local.opened)?;
                envelope.open(&local.business_key, chain_id, self.id).ok()
            })
            .ok_or_else(uniform)?;
        let id = request.transfer.id().map_err(|_| uniform())?;
        Ok((id, request))
    }

    /// Counts an accepted transfer in its payer's daily spending and queues it for
    /// forwarding; it is pending.
    fn queue_accepted(
        &mut self,
        id: Hash32,
        request: TransactionRequest,
        now: TimeMs,
    ) -> TransferState {
        let transfer = &request.transfer;
        let mut tracked = Tracked::new(TransferState::Pending, transfer.expires_at, transfer.payer);
        let day = day_of(now);
        let entry = self.spent.entry(transfer.payer).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        entry.1 = entry.1.saturating_add(transfer.amount.0);
        tracked.amount = transfer.amount.0;
        tracked.queued = true;
        tracked.request = Some(Box::new(request));
        self.remember(id, tracked);
        self.outbox.push_back(id);
        TransferState::Pending
    }

    /// Refuses a transfer the payer's checks fail: signs the refusal and queues it to be
    /// stored; the transfer stays pending until then.
    fn refuse_at_once(
        &mut self,
        chain_id: &halfveil_ledger::ChainId,
        id: Hash32,
        request: &TransactionRequest,
        code: RejectCode,
        detail: &str,
    ) -> TransferState {
        let transfer = &request.transfer;
        let tracked = Tracked::new(TransferState::Pending, transfer.expires_at, transfer.payer);
        // Pending until the refusal is stored; the caller answers after that.
        self.remember(id, tracked);
        let rejection = self.reject(chain_id, id, code, detail);
        match rejection {
            Some(rejection) => {
                self.pass_on_refusal(id, rejection.clone());
                TransferState::Rejected(Box::new(rejection))
            }
            None => TransferState::Unknown,
        }
    }

    /// Adds a new account for `opening` once the holder's signature verifies: a fresh
    /// business key, not opened yet. Returns the request to relay to the IM (signed by the
    /// bank) and the account's row to store; `None` if the open-account message does not
    /// encode.
    fn add_account(
        &mut self,
        chain_id: &halfveil_ledger::ChainId,
        opening: Opening,
    ) -> Result<Option<(OpenAccountRequest, Vec<u8>)>, RpcFailure> {
        let Opening {
            tx_key,
            holder_signature,
            record,
            account,
        } = opening;
        if self.accounts.contains_key(&account) {
            return Err(RpcFailure::new(
                codes::REFUSED,
                "the account already exists at this bank",
            ));
        }
        let Ok(message) = open_account_message(chain_id, &tx_key, self.id) else {
            return Ok(None);
        };
        if crypto::verify(&tx_key, &message, &holder_signature).is_err() {
            return Err(RpcFailure::new(
                codes::INVALID_INPUT,
                "the holder's signature does not verify",
            ));
        }
        let local = LocalAccount {
            business_key: BusinessKey::generate(&mut OsRng),
            frozen: false,
            limits: BankLimits::default(),
            opened: false,
        };
        let row = self
            .row(&account, &local)
            .map_err(|error| RpcFailure::new(codes::INTERNAL, error.to_string()))?;
        let op = OpenAccount {
            account,
            tx_key,
            bank: self.id,
            holder_signature,
            bank_signature: crypto::sign(&self.key, &message),
        };
        self.accounts.insert(account, local);
        let request = OpenAccountRequest {
            op,
            record: SealedIdentityRecord(record),
        };
        Ok(Some((request, row)))
    }

    fn remember(&mut self, id: Hash32, tracked: Tracked) {
        if self.tracked.len() >= TRACKED_MAX {
            if let Some(oldest) = self.tracked_order.pop_front() {
                if let Some(forgotten) = self.tracked.remove(&oldest) {
                    self.pending_by_expiry
                        .remove(&(forgotten.expires_at, oldest));
                    // A stored refusal still valid: never accepted again.
                    let refused = matches!(forgotten.track, TransferState::Rejected(_));
                    if refused
                        && forgotten.expires_at > self.written.1
                        && self.refused_ids.len() < REFUSED_IDS_MAX
                    {
                        self.refused_ids.insert(oldest);
                    }
                }
            }
        }
        if tracked.track == TransferState::Pending {
            self.pending_by_expiry.insert((tracked.expires_at, id));
        }
        self.tracked.insert(id, tracked);
        self.tracked_order.push_back(id);
    }

    fn row(&self, account: &AccountId, local: &LocalAccount) -> Result<Vec<u8>, BankError> {
        let sealed = crypto::seal_at_rest(
            &self.storage_secret,
            &account.0,
            local.business_key.as_bytes(),
            &mut OsRng,
        )?;
        Ok(codec::encode(&AccountRow {
            version: ROW_VERSION,
            sealed_business_key: sealed,
            frozen: local.frozen,
            payment_max: local.limits.payment_max,
            daily_max: local.limits.daily_max,
            receive_max: local.limits.receive_max,
            opened: local.opened,
        })?)
    }

    fn reject(
        &self,
        chain_id: &halfveil_ledger::ChainId,
        id: Hash32,
        code: RejectCode,
        detail: &str,
    ) -> Option<Rejection> {
        Rejection::sign(
            chain_id,
            id,
            Rejecter::Bank(self.id),
            code,
            detail,
            &self.key,
        )
        .ok()
    }

    /// The bank's checks of a payer's request: status, limits, expiry.
    fn check_payer(
        &self,
        request: &TransactionRequest,
        now: TimeMs,
    ) -> Result<(), (RejectCode, String)> {
        let transfer = &request.transfer;
        let Some(local) = self.accounts.get(&transfer.payer) else {
            return Err((
                RejectCode::UnknownAccount,
                "not an account of this bank".into(),
            ));
        };
        if local.frozen {
            return Err((
                RejectCode::AccountFrozen,
                "the payer's account is frozen".into(),
            ));
        }
        // Expiry is judged by the identity manager alone: its block time is the chain's
        // clock, and a bank's clock may drift.
        let limits = local.limits;
        if limits.payment_max > 0 && transfer.amount.0 > limits.payment_max {
            return Err((
                RejectCode::LimitExceeded,
                format!("above the per-payment limit of {}", limits.payment_max),
            ));
        }
        if limits.daily_max > 0 {
            let spent = match self.spent.get(&transfer.payer) {
                Some((day, spent)) if *day == day_of(now) => *spent,
                _ => 0,
            };
            if spent.saturating_add(transfer.amount.0) > limits.daily_max {
                return Err((
                    RejectCode::LimitExceeded,
                    format!("above the daily limit of {}", limits.daily_max),
                ));
            }
        }
        Ok(())
    }
}

fn parse_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], RpcFailure> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| {
        RpcFailure::new(
            codes::INVALID_INPUT,
            format!("{what} must be {N} bytes of hex"),
        )
    })?;
    Ok(bytes)
}

impl Service {
    fn bank(&mut self) -> Option<&mut BankRole> {
        match &mut self.role {
            Role::Bank(bank) => Some(bank),
            Role::IdentityManager(_) => None,
        }
    }

    /// A payer submits an envelope.
    pub fn bank_submit(
        &mut self,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(Hash32, TransferState), RpcFailure>>,
    ) {
        let answer = self.bank_accept(&bytes);
        self.bank_store_refusals(Some(Box::new(move |committed| {
            let _ = reply.send(on_chain_instead(answer, committed));
        })));
        self.bank_forward_if_idle();
    }

    /// A batch of envelopes, each answered on its own.
    pub fn bank_submit_batch(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        reply: oneshot::Sender<Vec<Result<(Hash32, TransferState), RpcFailure>>>,
    ) {
        let answers: Vec<_> = envelopes
            .iter()
            .map(|bytes| self.bank_accept(bytes))
            .collect();
        self.bank_store_refusals(Some(Box::new(move |committed| {
            let answers = answers
                .into_iter()
                .map(|answer| on_chain_instead(answer, committed))
                .collect();
            let _ = reply.send(answers);
        })));
        self.bank_forward_if_idle();
    }

    /// Opens one envelope, checks the payer, and queues the transfer for forwarding.
    fn bank_accept(&mut self, bytes: &[u8]) -> Result<(Hash32, TransferState), RpcFailure> {
        // Fields borrowed one by one (not through `self.bank()`), so that nothing is cloned
        // per envelope.
        let chain_id = &self.params.chain_id;
        let metrics = &self.metrics;
        let Role::Bank(bank) = &mut self.role else {
            return Err(RpcFailure::new(
                codes::WRONG_ROLE,
                "submit envelopes to the payer's bank",
            ));
        };
        if self.halted {
            return Err(RpcFailure::new(
                codes::REFUSED,
                "this bank stopped following the chain (equivocation evidence; see hv_evidence)",
            ));
        }
        let (id, request) = bank.open_envelope(chain_id, bytes)?;
        if let Some(tracked) = bank.tracked.get(&id) {
            return Ok((id, tracked.track.clone()));
        }
        if bank.refused_ids.contains(&id) {
            return Err(RpcFailure::new(
                codes::REFUSED,
                "this transfer was refused earlier; its refusal is final",
            ));
        }
        if bank.outbox.len() >= OUTBOX_MAX {
            metrics.queue_full.inc();
            return Err(RpcFailure::new(
                codes::OVERLOADED,
                "the bank is busy; retry",
            ));
        }
        let now = now_ms();
        let track = match bank.check_payer(&request, now) {
            Ok(()) => bank.queue_accepted(id, request, now),
            Err((code, detail)) => bank.refuse_at_once(chain_id, id, &request, code, &detail),
        };
        Ok((id, track))
    }

    pub async fn bank_tick(&mut self) {
        self.bank_expire();
        self.bank_forward();
    }

    /// Once a second: declares expired the pending transfers that the chain can no longer
    /// commit (a block on this bank's disk is at or past their expiry: block times only
    /// grow), forwards again those without an answer for a while, and prunes stored
    /// refusals of transfers past their expiry. Expiry is judged by the chain's clock only,
    /// never the bank's, so a refusal for expiry is never contradicted by a later block.
    fn bank_expire(&mut self) {
        let chain_id = self.params.chain_id.clone();
        let store = Arc::clone(&self.store);
        let Some(bank) = self.bank() else {
            return;
        };
        let now = Instant::now();
        if now.saturating_duration_since(bank.last_sweep) < Duration::from_secs(1) {
            return;
        }
        bank.last_sweep = now;
        let chain_time = bank.written.1;
        let expired: Vec<Hash32> = bank
            .pending_by_expiry
            .range(..=(chain_time, Hash32([u8::MAX; 32])))
            .map(|(_, id)| *id)
            .collect();
        for id in expired {
            bank.refuse(
                &chain_id,
                id,
                RejectCode::Expired,
                "expired before it was committed",
            );
        }
        bank.queue_stale(now);
        let mut prune = Vec::new();
        while let Some(first) = bank.refusal_rows.first().copied() {
            if first.0 > chain_time || prune.len() >= BATCH_TRANSFERS_MAX {
                break;
            }
            bank.refusal_rows.pop_first();
            bank.refused_ids.remove(&first.1);
            prune.push(refusal_key(&first.1));
        }
        if !prune.is_empty() {
            tokio::task::spawn_blocking(move || {
                if let Err(error) = store.local_delete(&prune) {
                    warn!(%error, "cannot prune stored refusals");
                }
            });
        }
        self.bank_store_refusals(None);
    }

    /// Stores the refusals made while handling this input in one synced write, then tells
    /// them: `then` (an RPC answer that names them) and the transfers' waiters. Nothing is
    /// told before the write, so a refusal once told is final, across restarts too. A
    /// transfer the chain already holds (sent again after a restart, say) is not refused:
    /// `then` learns where it is instead.
    fn bank_store_refusals(&mut self, then: Option<Then>) {
        let store = Arc::clone(&self.store);
        let inputs = self.inputs.clone();
        let Some(bank) = self.bank() else {
            return;
        };
        let refusals = std::mem::take(&mut bank.new_refusals);
        if refusals.is_empty() {
            if let Some(then) = then {
                then(&[]);
            }
            return;
        }
        tokio::spawn(async move {
            let stored =
                tokio::task::spawn_blocking(move || store_refusals(&store, refusals)).await;
            let Ok(Ok((refusals, committed))) = stored else {
                // Like a failed block write: what was promised cannot be kept on this disk.
                error!("fatal: cannot store refusals; stopping");
                std::process::exit(1);
            };
            if let Some(then) = then {
                then(&committed);
            }
            let stored = BankInput::RefusalsStored {
                refusals,
                committed,
            };
            let _ = inputs.send(Input::Bank(stored)).await;
        });
    }

    /// Stored refusals are final: record and tell them. Transfers found on chain instead
    /// are committed, at the place the chain says (their block is on this bank's disk).
    fn bank_on_refusals_stored(
        &mut self,
        refusals: Vec<Refusal>,
        committed: Vec<(Hash32, Location)>,
    ) {
        for (id, location) in committed {
            let track = TransferState::Committed {
                height: location.height,
                index: location.index,
            };
            self.resolve(id, track);
        }
        self.metrics
            .transfers_rejected
            .inc_by(refusals.len() as u64);
        for refusal in refusals {
            let Some(bank) = self.bank() else {
                return;
            };
            bank.refusal_rows.insert((refusal.expires_at, refusal.id));
            if bank.track(&refusal.id) == TransferState::Pending {
                self.resolve(
                    refusal.id,
                    TransferState::Rejected(Box::new(refusal.rejection)),
                );
            }
        }
    }

    /// Forwards the outbox at once if no forward is out: at low load each accepted batch
    /// goes without waiting for the tick (up to 10 ms); under load what arrives while a
    /// forward is out waits for its answer and goes as one larger batch (forwarding every
    /// submitted batch at once cost 4-7 % more CPU at 15,000/s), and the tick still sends
    /// up to [`FORWARDS_IN_FLIGHT_MAX`] batches.
    fn bank_forward_if_idle(&mut self) {
        if self.bank().is_some_and(|bank| bank.forwards_in_flight == 0) {
            self.bank_forward();
        }
    }

    /// Sends the outbox to the IM in attested batches, up to [`FORWARDS_IN_FLIGHT_MAX`] at
    /// once.
    fn bank_forward(&mut self) {
        let chain_id = self.params.chain_id.clone();
        let im_peer = self.im_peer();
        let Some(bank) = self.bank() else {
            return;
        };
        if bank.forward_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        bank.forward_retry_at = None;
        let mut batches = Vec::new();
        let now = Instant::now();
        while bank.forwards_in_flight < FORWARDS_IN_FLIGHT_MAX && !bank.outbox.is_empty() {
            let (ids, requests) = bank.next_batch(now);
            if ids.is_empty() {
                continue;
            }
            let Ok(message) =
                attestation_message(&chain_id, AttestationKind::PayerOk, bank.id, &ids)
            else {
                continue;
            };
            let attestation = BatchAttestation {
                kind: AttestationKind::PayerOk,
                bank: bank.id,
                ids: ids.clone(),
                signature: crypto::sign(&bank.key, &message),
            };
            bank.forwards_in_flight += 1;
            batches.push((
                ids,
                ForwardBatch {
                    requests,
                    attestation,
                },
            ));
        }
        for (ids, batch) in batches {
            let net = self.net.clone();
            let inputs = self.inputs.clone();
            tokio::spawn(async move {
                let result = net.request(im_peer, Request::Forward(batch)).await;
                let answer = BankInput::ForwardAnswer { ids, result };
                let _ = inputs.send(Input::Bank(answer)).await;
            });
        }
    }

    pub async fn on_bank_input(&mut self, input: BankInput) {
        match input {
            BankInput::ForwardAnswer { ids, result } => self.bank_on_forward_answer(ids, result),
            BankInput::RefusalsStored {
                refusals,
                committed,
            } => self.bank_on_refusals_stored(refusals, committed),
            BankInput::OpenRelayed {
                account,
                result,
                reply,
            } => self.bank_on_open_relayed(account, result, reply).await,
        }
    }

    fn bank_on_forward_answer(&mut self, ids: Vec<Hash32>, result: Result<Response, RequestError>) {
        let chain_id = self.params.chain_id.clone();
        let validator = self.params.validator_key;
        let Some(bank) = self.bank() else {
            return;
        };
        bank.forwards_in_flight = bank.forwards_in_flight.saturating_sub(1);
        let mut committed_now = Vec::new();
        match result {
            Ok(Response::Forwarded {
                rejected,
                committed,
            }) => {
                for rejection in rejected {
                    let valid = rejection.by == Rejecter::IdentityManager
                        && ids.contains(&rejection.transfer)
                        && rejection.verify(&chain_id, &validator).is_ok();
                    if valid {
                        bank.pass_on_refusal(rejection.transfer, rejection);
                    }
                }
                // Committed before (this bank forwarded it again): final once the block is
                // on this bank's disk; a block still to come resolves it when written.
                for at in committed {
                    if ids.contains(&at.id) && at.height <= bank.written.0 {
                        committed_now.push(at);
                    }
                }
            }
            Ok(Response::Error {
                code: RejectCode::Overloaded,
                message,
            }) => {
                warn!(%message, transfers = ids.len(), "the identity manager is busy; forwarding again shortly");
                bank.forward_again(ids);
            }
            Ok(Response::Error { code, message }) => {
                warn!(?code, %message, "the identity manager refused a forwarded batch");
                for id in &ids {
                    bank.refuse(&chain_id, *id, code, &message);
                }
            }
            Ok(_) => warn!("unexpected answer to a forwarded batch"),
            // The IM may or may not have the batch: forwarding it again is safe (it answers a
            // transfer it holds or committed with its status, never a second admission).
            Err(error) => {
                warn!(%error, transfers = ids.len(), "forwarding failed; forwarding again shortly");
                bank.forward_again(ids);
            }
        }
        for at in committed_now {
            let track = TransferState::Committed {
                height: at.height,
                index: at.index,
            };
            self.resolve(at.id, track);
        }
        self.bank_store_refusals(None);
        // What queued while this forward was out goes now, as one batch.
        self.bank_forward_if_idle();
    }

    /// The IM reports transfers refused after it accepted them.
    pub async fn bank_on_rejected(
        &mut self,
        peer: PeerId,
        rejections: Vec<Rejection>,
        channel: Reply,
    ) {
        if peer != self.im_peer() || !matches!(self.role, Role::Bank(_)) {
            self.net
                .respond(
                    channel,
                    Response::Error {
                        code: RejectCode::Invalid,
                        message: "not accepted from this peer".into(),
                    },
                )
                .await;
            return;
        }
        let chain_id = self.params.chain_id.clone();
        for rejection in rejections.into_iter().take(BATCH_TRANSFERS_MAX) {
            let key: Option<PublicKey> = match rejection.by {
                Rejecter::IdentityManager => Some(self.params.validator_key),
                Rejecter::Bank(bank) => self.params.bank_key(bank).copied(),
            };
            if key.is_some_and(|key| rejection.verify(&chain_id, &key).is_ok()) {
                if let Some(bank) = self.bank() {
                    bank.pass_on_refusal(rejection.transfer, rejection);
                }
            }
        }
        self.bank_store_refusals(None);
        self.net.respond(channel, Response::Ack).await;
    }

    /// The IM asks whether payees may receive: a signed verdict for each.
    pub async fn bank_on_approve(
        &mut self,
        peer: PeerId,
        items: Vec<ApprovalItemWire>,
        channel: Reply,
    ) {
        let chain_id = self.params.chain_id.clone();
        let from_im = peer == self.im_peer() && !self.halted;
        let response = match self.bank() {
            Some(bank) if from_im && items.len() <= BATCH_TRANSFERS_MAX => {
                let mut approved = Vec::with_capacity(items.len());
                let mut refused = Vec::new();
                for item in items {
                    let verdict = match bank.accounts.get(&item.payee) {
                        None => Err((
                            RejectCode::UnknownAccount,
                            "the payee is not an account of this bank",
                        )),
                        Some(local) if !local.opened => Err((
                            RejectCode::UnknownAccount,
                            "the payee's account is not open",
                        )),
                        Some(local) if local.frozen => {
                            Err((RejectCode::AccountFrozen, "the payee's account is frozen"))
                        }
                        Some(local)
                            if local.limits.receive_max > 0
                                && item.amount.0 > local.limits.receive_max =>
                        {
                            Err((RejectCode::LimitExceeded, "above the payee's receive limit"))
                        }
                        Some(_) => Ok(()),
                    };
                    match verdict {
                        Ok(()) => approved.push(item.id),
                        Err((code, detail)) => {
                            refused.extend(bank.reject(&chain_id, item.id, code, detail))
                        }
                    }
                }
                let attestation = if approved.is_empty() {
                    None
                } else {
                    attestation_message(&chain_id, AttestationKind::PayeeOk, bank.id, &approved)
                        .ok()
                        .map(|message| BatchAttestation {
                            kind: AttestationKind::PayeeOk,
                            bank: bank.id,
                            signature: crypto::sign(&bank.key, &message),
                            ids: approved,
                        })
                };
                Response::Approval {
                    attestation,
                    refused,
                }
            }
            _ => Response::Error {
                code: RejectCode::Invalid,
                message: "approvals are asked by the identity manager, in bounded batches".into(),
            },
        };
        self.net.respond(channel, response).await;
    }

    pub fn bank_on_written(&mut self, block: &Block) {
        if let Some(bank) = self.bank() {
            bank.written = (block.height(), block.signed.header.time);
        }
    }

    /// A payer asks to open an account: check the key and the proof of possession, issue a
    /// business key, store it encrypted, and relay the opening to the IM.
    pub async fn bank_open_account(
        &mut self,
        params: OpenAccountParams,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    ) {
        let chain_id = self.params.chain_id.clone();
        let store = Arc::clone(&self.store);
        let opening = parse_opening(&params, &self.state).and_then(|opening| match self.bank() {
            Some(bank) => bank.add_account(&chain_id, opening),
            None => Err(RpcFailure::new(
                codes::WRONG_ROLE,
                "accounts are opened at a bank",
            )),
        });
        let (request, row) = match opening {
            Ok(Some(opened)) => opened,
            // The open-account message does not encode: nothing to sign, nothing answered.
            Ok(None) => return,
            Err(failure) => {
                let _ = reply.send(Err(failure));
                return;
            }
        };
        let account = request.op.account;
        let key = row_key(&account);
        let stored = tokio::task::spawn_blocking(move || store.local_put(&[(key, row)])).await;
        if !matches!(stored, Ok(Ok(()))) {
            if let Some(bank) = self.bank() {
                bank.accounts.remove(&account);
            }
            let _ = reply.send(Err(RpcFailure::new(
                codes::INTERNAL,
                "cannot store the account",
            )));
            return;
        }
        self.bank_relay_opening(request, reply);
    }

    /// Relays a stored account opening to the IM; its answer comes back as an input.
    fn bank_relay_opening(
        &self,
        request: OpenAccountRequest,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    ) {
        let im_peer = self.im_peer();
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        let account = request.op.account;
        tokio::spawn(async move {
            let result = net.request(im_peer, Request::OpenAccount(request)).await;
            let _ = inputs
                .send(Input::Bank(BankInput::OpenRelayed {
                    account,
                    result,
                    reply,
                }))
                .await;
        });
    }

    async fn bank_on_open_relayed(
        &mut self,
        account: AccountId,
        result: Result<Response, RequestError>,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    ) {
        let store = Arc::clone(&self.store);
        let Some(bank) = self.bank() else {
            return;
        };
        let (height, failure) = match result {
            Ok(Response::Opened {
                account: opened,
                height,
            }) if opened == account => (Some(height), None),
            Ok(Response::Error { message, .. }) => (None, Some(message)),
            Ok(_) => (
                None,
                Some("unexpected answer from the identity manager".to_owned()),
            ),
            Err(error) => (None, Some(error.to_string())),
        };
        let (Some(height), None) = (height, failure.clone()) else {
            let _ = reply.send(Err(RpcFailure::new(
                codes::REFUSED,
                format!(
                    "the identity manager refused the account: {}",
                    failure.unwrap_or_default()
                ),
            )));
            return;
        };
        let Some(local) = bank.accounts.get_mut(&account) else {
            return;
        };
        local.opened = true;
        let business_key = hex::encode(local.business_key.as_bytes());
        let Some(local) = bank.accounts.get(&account) else {
            return;
        };
        let row = bank.row(&account, local);
        let (name, id) = (bank.name.clone(), bank.id);
        if let Ok(row) = row {
            let key = row_key(&account);
            let _ = tokio::task::spawn_blocking(move || store.local_put(&[(key, row)])).await;
        }
        let _ = reply.send(Ok(OpenedAccount {
            account: account.to_string(),
            bank: name,
            bank_id: id.0,
            business_key,
            height: height.0,
        }));
    }

    /// Freeze, unfreeze, or set limits on one of this bank's accounts (synced).
    pub async fn bank_change_account(
        &mut self,
        account: AccountId,
        change: AccountChange,
        reply: oneshot::Sender<Result<AccountInfo, RpcFailure>>,
    ) {
        let store = Arc::clone(&self.store);
        let Some(bank) = self.bank() else {
            let _ = reply.send(Err(RpcFailure::new(
                codes::WRONG_ROLE,
                "only a bank manages its accounts",
            )));
            return;
        };
        let Some(local) = bank.accounts.get_mut(&account) else {
            let _ = reply.send(Err(RpcFailure::new(
                codes::REFUSED,
                format!("{account} is not an account of this bank"),
            )));
            return;
        };
        let before = (local.frozen, local.limits);
        match change {
            AccountChange::Freeze => local.frozen = true,
            AccountChange::Unfreeze => local.frozen = false,
            AccountChange::Limits(limits) => local.limits = limits,
        }
        let Some(local) = bank.accounts.get(&account) else {
            return;
        };
        let row = bank.row(&account, local);
        let stored = match row {
            Ok(row) => {
                let key = row_key(&account);
                matches!(
                    tokio::task::spawn_blocking(move || store.local_put(&[(key, row)])).await,
                    Ok(Ok(()))
                )
            }
            Err(_) => false,
        };
        if !stored {
            // Not on disk, so not in force.
            if let Some(local) = self.bank().and_then(|bank| bank.accounts.get_mut(&account)) {
                (local.frozen, local.limits) = before;
            }
            let _ = reply.send(Err(RpcFailure::new(
                codes::INTERNAL,
                "cannot store the change",
            )));
            return;
        }
        info!(%account, ?change, "account changed by the operator");
        let info = self.account_info(&account);
        let _ = reply.send(
            info.ok_or_else(|| RpcFailure::new(codes::REFUSED, "the account is not on chain yet")),
        );
    }
}
