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

use crate::network::Reply;
use halfveil_ledger::crypto::{
    self, BusinessKey, Envelope, SealedIdentityRecord, SigningKey, SEALED_IDENTITY_RECORD_BYTES,
};
use halfveil_ledger::fastmap::{HashMap, HashMapExt};
use halfveil_ledger::sharded::ShardedMap;
use halfveil_ledger::store::{RocksStore, Store};
use halfveil_ledger::{
    attestation_message, codec, open_account_message, AccountId, AttestationKind, BankId,
    BatchAttestation, Block, Hash32, OpenAccount, PublicKey, RejectCode, Rejecter, Rejection,
    Signature, TimeMs, TransactionRequest,
};
use libp2p::PeerId;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::protocol::{
    ApprovalItemWire, ForwardBatch, OpenAccountRequest, Request, Response, BATCH_TRANSFERS_MAX,
};
use crate::rpc::{codes, AccountInfo, BankLimits, OpenAccountParams, OpenedAccount, RpcFailure};
use crate::service::{now_ms, AccountChange, Input, Role, Service, Track};

/// Most accepted transfers waiting to be forwarded.
const OUTBOX_MAX: usize = 100_000;
/// Forward batches in flight to the IM at once.
const FORWARDS_IN_FLIGHT_MAX: usize = 4;
/// Transfers whose status the bank remembers (oldest forgotten first).
const TRACKED_MAX: usize = 1_000_000;
/// A pending transfer is declared expired this long after its expiry, so a block the IM
/// built just before the expiry has time to arrive.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);
const ACCOUNT_PREFIX: &[u8] = b"acct/";
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
    track: Track,
    /// When the bank took it: the sweep leaves young transfers to the IM's verdict.
    accepted: Instant,
    expires_at: TimeMs,
    payer: AccountId,
    amount: u64,
}

/// Inputs only a bank gets.
#[derive(Debug)]
pub enum BankInput {
    ForwardAnswer {
        ids: Vec<Hash32>,
        result: Result<Response, String>,
    },
    OpenRelayed {
        account: AccountId,
        result: Result<Response, String>,
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
    /// Accepted transfers not yet forwarded, with their ids.
    outbox: VecDeque<(Hash32, TransactionRequest)>,
    /// Sharded: it grows by every transfer, and a plain map's doubling stalled the bank.
    tracked: ShardedMap<Hash32, Tracked>,
    tracked_order: VecDeque<Hash32>,
    /// The tracked transfers still pending, by expiry: the sweep reads only the expired
    /// ones, not every tracked transfer each second.
    pending_by_expiry: BTreeSet<(TimeMs, Hash32)>,
    forwards_in_flight: usize,
    /// Spent per account on the current UTC day (in memory; see the operator guide).
    spent: HashMap<AccountId, (u64, u64)>,
    last_sweep: Instant,
}

fn row_key(account: &AccountId) -> Vec<u8> {
    let mut key = ACCOUNT_PREFIX.to_vec();
    key.extend_from_slice(&account.0);
    key
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
    ) -> Result<BankRole, String> {
        let storage_secret = Zeroizing::new(key.to_bytes());
        let mut accounts = HashMap::new();
        let rows = store
            .local_scan(ACCOUNT_PREFIX, ACCOUNTS_MAX)
            .map_err(|error| format!("cannot read the bank's accounts: {error}"))?;
        for (row_key, value) in rows {
            let account = AccountId(
                row_key[ACCOUNT_PREFIX.len()..]
                    .try_into()
                    .map_err(|_| "corrupt account row key".to_owned())?,
            );
            let row: AccountRow = codec::decode(&value, 4096)
                .map_err(|error| format!("corrupt account row: {error}"))?;
            let plaintext =
                crypto::open_at_rest(&storage_secret, &account.0, &row.sealed_business_key)
                    .map_err(|_| {
                        format!("the business key of {account} does not open with this bank's key")
                    })?;
            let bytes: [u8; 32] = plaintext
                .as_slice()
                .try_into()
                .map_err(|_| "corrupt business key".to_owned())?;
            accounts.insert(
                account,
                LocalAccount {
                    business_key: BusinessKey::from_bytes(bytes),
                    frozen: row.frozen,
                    limits: BankLimits {
                        payment_max: row.payment_max,
                        daily_max: row.daily_max,
                        receive_max: row.receive_max,
                    },
                    opened: row.opened,
                },
            );
        }
        info!(accounts = accounts.len(), "bank accounts loaded");
        Ok(BankRole {
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
            spent: HashMap::new(),
            last_sweep: Instant::now(),
        })
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    pub fn track(&self, id: &Hash32) -> Track {
        self.tracked
            .get(id)
            .map_or(Track::Unknown, |tracked| tracked.track.clone())
    }

    /// Updates a transfer this bank tracks (others are ignored).
    pub fn set_track(&mut self, id: Hash32, track: Track) {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if tracked.track != Track::Pending || track == Track::Pending {
            return;
        }
        self.pending_by_expiry.remove(&(tracked.expires_at, id));
        if matches!(track, Track::Rejected(_)) {
            if let Some((_, spent)) = self.spent.get_mut(&tracked.payer) {
                *spent = spent.saturating_sub(tracked.amount);
            }
        }
        tracked.track = track;
    }

    fn remember(&mut self, id: Hash32, tracked: Tracked) {
        if self.tracked.len() >= TRACKED_MAX {
            if let Some(oldest) = self.tracked_order.pop_front() {
                if let Some(forgotten) = self.tracked.remove(&oldest) {
                    self.pending_by_expiry
                        .remove(&(forgotten.expires_at, oldest));
                }
            }
        }
        if tracked.track == Track::Pending {
            self.pending_by_expiry.insert((tracked.expires_at, id));
        }
        self.tracked.insert(id, tracked);
        self.tracked_order.push_back(id);
    }

    fn row(&self, account: &AccountId, local: &LocalAccount) -> Result<Vec<u8>, String> {
        let sealed = crypto::seal_at_rest(
            &self.storage_secret,
            &account.0,
            local.business_key.as_bytes(),
            &mut OsRng,
        )
        .map_err(|error| error.to_string())?;
        codec::encode(&AccountRow {
            version: ROW_VERSION,
            sealed_business_key: sealed,
            frozen: local.frozen,
            payment_max: local.limits.payment_max,
            daily_max: local.limits.daily_max,
            receive_max: local.limits.receive_max,
            opened: local.opened,
        })
        .map_err(|error| error.to_string())
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
        reply: oneshot::Sender<Result<(Hash32, Track), RpcFailure>>,
    ) {
        let _ = reply.send(self.bank_accept(&bytes));
        self.bank_forward_if_idle();
    }

    /// A batch of envelopes, each answered on its own.
    pub fn bank_submit_batch(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        reply: oneshot::Sender<Vec<Result<(Hash32, Track), RpcFailure>>>,
    ) {
        let answers = envelopes
            .iter()
            .map(|bytes| self.bank_accept(bytes))
            .collect();
        let _ = reply.send(answers);
        self.bank_forward_if_idle();
    }

    /// Opens one envelope, checks the payer, and queues the transfer for forwarding.
    fn bank_accept(&mut self, bytes: &[u8]) -> Result<(Hash32, Track), RpcFailure> {
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
        let uniform = || {
            RpcFailure::new(
                codes::ENVELOPE,
                "the envelope cannot be opened by this bank",
            )
        };
        let request = Envelope::decode(bytes)
            .ok()
            .and_then(|envelope| {
                let local = bank
                    .accounts
                    .get(&envelope.account)
                    .filter(|local| local.opened)?;
                envelope.open(&local.business_key, chain_id, bank.id).ok()
            })
            .ok_or_else(uniform)?;
        let id = request.transfer.id().map_err(|_| uniform())?;
        if let Some(tracked) = bank.tracked.get(&id) {
            return Ok((id, tracked.track.clone()));
        }
        if bank.outbox.len() >= OUTBOX_MAX {
            metrics.queue_full.inc();
            return Err(RpcFailure::new(
                codes::OVERLOADED,
                "the bank is busy; retry",
            ));
        }
        let now = now_ms();
        let transfer = &request.transfer;
        let track = match bank.check_payer(&request, now) {
            Ok(()) => {
                let day = day_of(now);
                let entry = bank.spent.entry(transfer.payer).or_insert((day, 0));
                if entry.0 != day {
                    *entry = (day, 0);
                }
                entry.1 = entry.1.saturating_add(transfer.amount.0);
                Track::Pending
            }
            Err((code, detail)) => {
                metrics.transfers_rejected.inc();
                match bank.reject(chain_id, id, code, &detail) {
                    Some(rejection) => Track::Rejected(Box::new(rejection)),
                    None => Track::Unknown,
                }
            }
        };
        let tracked = Tracked {
            track: track.clone(),
            accepted: Instant::now(),
            expires_at: transfer.expires_at,
            payer: transfer.payer,
            amount: transfer.amount.0,
        };
        if track == Track::Pending {
            bank.outbox.push_back((id, request));
        }
        bank.remember(id, tracked);
        Ok((id, track))
    }

    pub async fn bank_tick(&mut self) {
        self.bank_expire();
        self.bank_forward();
    }

    /// Once a second: declares expired the pending transfers the IM never committed.
    fn bank_expire(&mut self) {
        let chain_id = self.params.chain_id.clone();
        let mut expired = Vec::new();
        let Some(bank) = self.bank() else {
            return;
        };
        if bank.last_sweep.elapsed() < Duration::from_secs(1) {
            return;
        }
        bank.last_sweep = Instant::now();
        let cutoff = TimeMs(
            now_ms()
                .0
                .saturating_sub(u64::try_from(EXPIRY_GRACE.as_millis()).unwrap_or(0)),
        );
        for (_, id) in bank
            .pending_by_expiry
            .range(..=(cutoff, Hash32([u8::MAX; 32])))
        {
            if bank
                .tracked
                .get(id)
                .is_some_and(|tracked| tracked.accepted.elapsed() >= EXPIRY_GRACE)
            {
                expired.push(*id);
            }
        }
        for id in expired {
            let rejection = self.bank().and_then(|bank| {
                bank.reject(
                    &chain_id,
                    id,
                    RejectCode::Expired,
                    "expired before it was committed",
                )
            });
            if let Some(rejection) = rejection {
                self.resolve(id, Track::Rejected(Box::new(rejection)));
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
        let mut batches = Vec::new();
        while bank.forwards_in_flight < FORWARDS_IN_FLIGHT_MAX && !bank.outbox.is_empty() {
            let count = bank.outbox.len().min(BATCH_TRANSFERS_MAX);
            let (ids, requests): (Vec<Hash32>, Vec<TransactionRequest>) =
                bank.outbox.drain(..count).unzip();
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
                let _ = inputs
                    .send(Input::Bank(BankInput::ForwardAnswer { ids, result }))
                    .await;
            });
        }
    }

    pub async fn on_bank_input(&mut self, input: BankInput) {
        match input {
            BankInput::ForwardAnswer { ids, result } => self.bank_on_forward_answer(ids, result),
            BankInput::OpenRelayed {
                account,
                result,
                reply,
            } => self.bank_on_open_relayed(account, result, reply).await,
        }
    }

    fn bank_on_forward_answer(&mut self, ids: Vec<Hash32>, result: Result<Response, String>) {
        let chain_id = self.params.chain_id.clone();
        let validator = self.params.validator_key;
        let Some(bank) = self.bank() else {
            return;
        };
        bank.forwards_in_flight = bank.forwards_in_flight.saturating_sub(1);
        let mut resolved = Vec::new();
        match result {
            Ok(Response::Forwarded { rejected }) => {
                for rejection in rejected {
                    let valid = rejection.by == Rejecter::IdentityManager
                        && ids.contains(&rejection.transfer)
                        && rejection.verify(&chain_id, &validator).is_ok();
                    if valid {
                        resolved.push((rejection.transfer, Track::Rejected(Box::new(rejection))));
                    }
                }
            }
            Ok(Response::Error { code, message }) => {
                warn!(?code, %message, "the identity manager refused a forwarded batch");
                for id in &ids {
                    if let Some(rejection) = bank.reject(&chain_id, *id, code, &message) {
                        resolved.push((*id, Track::Rejected(Box::new(rejection))));
                    }
                }
            }
            Ok(_) => warn!("unexpected answer to a forwarded batch"),
            // The IM may or may not have the batch: the transfers stay pending until a block
            // commits them, a refusal arrives or they expire.
            Err(error) => warn!(%error, transfers = ids.len(), "forwarding failed"),
        }
        self.metrics
            .transfers_rejected
            .inc_by(resolved.len() as u64);
        for (id, track) in resolved {
            self.resolve(id, track);
        }
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
                self.resolve(rejection.transfer, Track::Rejected(Box::new(rejection)));
            }
        }
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
        let from_im = peer == self.im_peer();
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

    pub fn bank_on_written(&mut self, _block: &Block) {}

    /// A payer asks to open an account: check the key and the proof of possession, issue a
    /// business key, store it encrypted, and relay the opening to the IM.
    pub async fn bank_open_account(
        &mut self,
        params: OpenAccountParams,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    ) {
        let chain_id = self.params.chain_id.clone();
        let store = Arc::clone(&self.store);
        let im_peer = self.im_peer();
        let in_state = |account: &AccountId| self.state.account(account).is_some();
        let prepared = (|| {
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
            if in_state(&account) {
                return Err(RpcFailure::new(
                    codes::REFUSED,
                    "the account already exists",
                ));
            }
            Ok((tx_key, holder_signature, record, account))
        })();
        let (tx_key, holder_signature, record, account) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => {
                let _ = reply.send(Err(failure));
                return;
            }
        };
        let Some(bank) = self.bank() else {
            let _ = reply.send(Err(RpcFailure::new(
                codes::WRONG_ROLE,
                "accounts are opened at a bank",
            )));
            return;
        };
        if bank.accounts.contains_key(&account) {
            let _ = reply.send(Err(RpcFailure::new(
                codes::REFUSED,
                "the account already exists at this bank",
            )));
            return;
        }
        let Ok(message) = open_account_message(&chain_id, &tx_key, bank.id) else {
            return;
        };
        if crypto::verify(&tx_key, &message, &holder_signature).is_err() {
            let _ = reply.send(Err(RpcFailure::new(
                codes::INVALID_INPUT,
                "the holder's signature does not verify",
            )));
            return;
        }
        let local = LocalAccount {
            business_key: BusinessKey::generate(&mut OsRng),
            frozen: false,
            limits: BankLimits::default(),
            opened: false,
        };
        let row = match bank.row(&account, &local) {
            Ok(row) => row,
            Err(error) => {
                let _ = reply.send(Err(RpcFailure::new(codes::INTERNAL, error)));
                return;
            }
        };
        let op = OpenAccount {
            account,
            tx_key,
            bank: bank.id,
            holder_signature,
            bank_signature: crypto::sign(&bank.key, &message),
        };
        bank.accounts.insert(account, local);
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
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        let request = Request::OpenAccount(OpenAccountRequest {
            op,
            record: SealedIdentityRecord(record),
        });
        tokio::spawn(async move {
            let result = net.request(im_peer, request).await;
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
        result: Result<Response, String>,
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
            Err(error) => (None, Some(error)),
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
