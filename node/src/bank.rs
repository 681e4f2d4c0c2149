//! A bank's half of the service: the shell around the bank's decisions
//! ([`halfveil_consensus::bank::Bank`]). It feeds the machine payers' envelopes, the IM's
//! answers and requests, written blocks and the time, and carries out what it decides:
//! forwards to the IM, refusals stored (synced) before they are told, pruned refusal rows,
//! waiters told. It also keeps the bank's rows: business keys stored encrypted at rest
//! under a key derived from the bank's attestation key, status and limits beside them in
//! the store's local table, and the refusals the bank gave.

use std::sync::Arc;
use std::time::Instant;

use crate::network::{NetworkHandle, Reply, RequestError};
use halfveil_consensus::bank::outbox::REDIRECT_RETRY;
use halfveil_consensus::bank::{
    Bank, BankLimits, Bounds, Effect, ForwardAnswer, Keys, LocalAccount, OnChain, Opening,
    OpeningError, PayeeItem, Refusal, SubmitError,
};
use halfveil_ledger::crypto::{self, BusinessKey, IdentityRecord, SigningKey};
use halfveil_ledger::fastmap::{HashMap, HashMapExt};
use halfveil_ledger::{
    codec, AccountId, BankId, ChainParams, CodecError, CryptoError, Hash32, PublicKey, RejectCode,
    Rejection, Signature, State, TimeMs,
};
use halfveil_store::{RocksStore, Store, StoreError};
use libp2p::PeerId;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use crate::clock;
use crate::protocol::{
    ApprovalItemWire, ForwardBatch, OpenAccountRequest, Request, Response, BATCH_TRANSFERS_MAX,
};
use crate::rpc::{codes, AccountInfo, OpenAccountParams, OpenedAccount, RpcFailure};
use crate::service::{AccountChange, Input, Role, Service, TransferState};

const ACCOUNT_PREFIX: &[u8] = b"acct/";
/// Rows of the refusals this bank has given, kept until the chain's time passes their
/// transfer's expiry (after which it can never commit).
const REFUSAL_PREFIX: &[u8] = b"refused/";
const ROW_VERSION: u8 = 1;
/// Most account rows and refusal rows read at start.
const ACCOUNTS_MAX: usize = 10_000_000;
const REFUSALS_MAX: usize = halfveil_consensus::bank::TRACKED_MAX;

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
        committed: Vec<OnChain>,
    },
    OpenRelayed {
        account: AccountId,
        result: Result<Response, RequestError>,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    },
}

/// The bank: its decisions, and what its rows need.
#[derive(Debug)]
pub struct BankRole {
    pub name: String,
    storage_secret: Zeroizing<[u8; 32]>,
    pub core: Bank,
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
    #[error("{account} is not an account of this bank")]
    NoAccount { account: AccountId },
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
fn load_refusals(store: &RocksStore) -> Result<Vec<Refusal>, BankError> {
    let rows = store
        .local_scan(REFUSAL_PREFIX, REFUSALS_MAX)
        .map_err(BankError::ReadRefusals)?;
    let refusal = |value: &[u8]| {
        let row: RefusalRow = codec::decode(value, 4096).map_err(BankError::RefusalRow)?;
        Ok(Refusal {
            id: row.rejection.transfer,
            rejection: row.rejection,
            expires_at: row.expires_at,
            payer: row.payer,
        })
    };
    rows.into_iter().map(|(_, value)| refusal(&value)).collect()
}

/// A payer's answer: the transfer's id and state, or why its envelope was not taken.
type Answer = Result<(Hash32, TransferState), RpcFailure>;

/// `answer`, unless it refuses a transfer found in `committed`: then where it is.
fn on_chain_instead(answer: Answer, committed: &[OnChain]) -> Answer {
    match answer {
        Ok((id, TransferState::Rejected(rejection))) => {
            match committed.iter().find(|at| at.id == id) {
                Some(at) => Ok((
                    id,
                    TransferState::Committed {
                        height: at.height,
                        index: at.index,
                    },
                )),
                None => Ok((id, TransferState::Rejected(rejection))),
            }
        }
        other => other,
    }
}

/// What to do once refusals are stored: answer an RPC call, told which of the refused
/// transfers the chain holds instead.
type Then = Box<dyn FnOnce(&[OnChain]) + Send>;

/// Drops the refusals of transfers the chain already holds, stores the rest in one synced
/// write; returns the stored refusals and where the others are.
fn store_refusals(
    store: &RocksStore,
    refusals: Vec<Refusal>,
) -> Result<(Vec<Refusal>, Vec<OnChain>), BankError> {
    let mut kept = Vec::with_capacity(refusals.len());
    let mut committed = Vec::new();
    for refusal in refusals {
        match store.transfer_location(&refusal.id)? {
            Some(at) => committed.push(OnChain {
                id: refusal.id,
                height: at.height,
                index: at.index,
            }),
            None => kept.push(refusal),
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
        rows.push((refusal_key(&refusal.id), codec::encode(&row)?));
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
    let id = row_key
        .get(ACCOUNT_PREFIX.len()..)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(BankError::AccountRowKey)?;
    let account = AccountId(id);
    let row: AccountRow = codec::decode(value, 4096).map_err(BankError::AccountRow)?;
    let plaintext = crypto::open_at_rest(storage_secret, &account.0, &row.sealed_business_key)
        .map_err(|_| BankError::BusinessKeySealed { account })?;
    let bytes: [u8; 32] = plaintext
        .as_slice()
        .try_into()
        .map_err(|_| BankError::BusinessKey)?;
    let limits = BankLimits {
        payment_max: row.payment_max,
        daily_max: row.daily_max,
        receive_max: row.receive_max,
    };
    let business_key = BusinessKey::from_bytes(bytes);
    let local = LocalAccount::new(business_key, row.frozen, limits, row.opened);
    Ok((account, local))
}

/// The longest encoded sealed identity record an opening may carry.
const SEALED_RECORD_BYTES_MAX: usize = 2048;

/// Parses an opening request: hex fields of the right lengths, a strong key, an account not
/// on the chain yet, and an identity record that is a valid ciphertext to the disclosure key
/// for this account (the bank cannot read it, but can tell it is well formed).
fn parse_opening(
    params: &OpenAccountParams,
    chain: &ChainParams,
    state: &State,
) -> Result<Opening, RpcFailure> {
    let tx_key = PublicKey(parse_hex::<32>(&params.tx_key, "tx_key")?);
    let holder_signature = Signature(parse_hex::<64>(
        &params.holder_signature,
        "holder_signature",
    )?);
    if params.sealed_record.len() > SEALED_RECORD_BYTES_MAX * 2 {
        return Err(RpcFailure::new(
            codes::INVALID_INPUT,
            "sealed_record is too long",
        ));
    }
    let bytes = hex::decode(&params.sealed_record)
        .map_err(|_| RpcFailure::new(codes::INVALID_INPUT, "sealed_record is not hex"))?;
    let identity_record: halfveil_ledger::SealedIdentityRecord =
        codec::decode(&bytes, SEALED_RECORD_BYTES_MAX).map_err(|error| {
            RpcFailure::new(
                codes::INVALID_INPUT,
                format!("sealed_record does not decode: {error}"),
            )
        })?;
    crypto::check_key_strength(&tx_key)
        .map_err(|error| RpcFailure::new(codes::INVALID_INPUT, error.to_string()))?;
    let account = AccountId::from_key(&tx_key);
    if state.account(&account).is_some() {
        return Err(RpcFailure::new(
            codes::REFUSED,
            "the account already exists",
        ));
    }
    IdentityRecord::check(&identity_record, state.disclosure_key(), &chain.chain_id, &account)
        .map_err(|error| {
            RpcFailure::new(
                codes::INVALID_INPUT,
                format!("sealed_record is not sealed to this chain's disclosure key for this account: {error}"),
            )
        })?;
    Ok(Opening {
        tx_key,
        holder_signature,
        account,
        identity_record: Box::new(identity_record),
    })
}

/// The identity key beside the sealed record: strong, and its proof of possession over the
/// account's record label verifies (the record itself stays sealed; the key is not kept).
fn parse_identity(
    params: &OpenAccountParams,
    chain: &ChainParams,
    account: &AccountId,
) -> Result<halfveil_ledger::IdentityProof, RpcFailure> {
    let identity = halfveil_ledger::IdentityProof {
        key: PublicKey(parse_hex::<32>(&params.identity_key, "identity_key")?),
        possession: Signature(parse_hex::<64>(&params.possession, "possession")?),
    };
    identity.check(&chain.chain_id, account).map_err(|error| {
        RpcFailure::new(
            codes::INVALID_INPUT,
            format!("the identity key's proof of possession does not verify: {error}"),
        )
    })?;
    Ok(identity)
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

/// What a payer hears when the bank did not take an envelope.
fn submit_failure(error: SubmitError) -> RpcFailure {
    let code = match error {
        SubmitError::Envelope => codes::ENVELOPE,
        SubmitError::RefusedBefore => codes::REFUSED,
        SubmitError::Busy => codes::OVERLOADED,
    };
    RpcFailure::new(code, error.to_string())
}

fn opening_failure(error: OpeningError) -> RpcFailure {
    let code = match error {
        OpeningError::Exists => codes::REFUSED,
        OpeningError::HolderSignature => codes::INVALID_INPUT,
        OpeningError::Message => codes::INTERNAL,
    };
    RpcFailure::new(code, error.to_string())
}

/// Sends a request (an opening, a key rotation, a closing) to the IM replica `first`, then,
/// while the one asked does not lead or cannot be reached, to the one it names or the next,
/// for at most [`RELAY_LIMIT`] (a leader election takes about 1.5 s); a single IM is asked
/// once.
pub(crate) async fn relay_to_leader(
    net: &NetworkHandle,
    replicas: &[PeerId],
    first: usize,
    request: Request,
) -> Result<Response, RequestError> {
    let started = Instant::now();
    let mut target = first;
    loop {
        // Genesis validation requires at least one replica, so the index is in range.
        let peer = replicas[target % replicas.len().max(1)];
        let result = net.request(peer, request.clone()).await;
        let next = match &result {
            Ok(Response::NotLeader {
                leader: Some(leader),
            }) => usize::from(*leader),
            Ok(Response::NotLeader { leader: None }) | Err(_) => target + 1,
            Ok(_) => return result,
        };
        if replicas.len() < 2 || started.elapsed() > RELAY_LIMIT {
            return result;
        }
        target = next % replicas.len();
        tokio::time::sleep(REDIRECT_RETRY).await;
    }
}

/// The longest a bank looks for the leading IM replica for one opening.
const RELAY_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The IM's answer to a forward, as the bank's machine takes it (and logged); `replicated`:
/// the IM has replicas, and a failed request goes to the next one.
fn forward_answer(
    result: Result<Response, RequestError>,
    transfers: usize,
    replicated: bool,
) -> ForwardAnswer {
    match result {
        Ok(Response::Forwarded {
            rejected,
            committed,
        }) => ForwardAnswer::Taken {
            rejected,
            committed: committed
                .into_iter()
                .map(|at| OnChain {
                    id: at.id,
                    height: at.height,
                    index: at.index,
                })
                .collect(),
        },
        Ok(Response::Error {
            code: RejectCode::Overloaded,
            message,
        }) => {
            warn!(%message, transfers, "the identity manager is busy; forwarding again shortly");
            ForwardAnswer::Again
        }
        // The replica asked does not lead; the next forward goes to the one it named.
        Ok(Response::NotLeader { .. }) => ForwardAnswer::Elsewhere,
        Ok(Response::Error { code, message }) => {
            warn!(?code, %message, "the identity manager refused a forwarded batch");
            ForwardAnswer::Refused { code, message }
        }
        Ok(_) => {
            warn!("unexpected answer to a forwarded batch");
            ForwardAnswer::Unexpected
        }
        // The IM may or may not have the batch: forwarding it again is safe (it answers a
        // transfer it holds or committed with its status, never a second admission).
        Err(error) if replicated => {
            warn!(%error, transfers, "forwarding failed; asking another replica");
            ForwardAnswer::Elsewhere
        }
        Err(error) => {
            warn!(%error, transfers, "forwarding failed; forwarding again shortly");
            ForwardAnswer::Lost
        }
    }
}

impl BankRole {
    /// Loads the bank's accounts and refusals from the store.
    pub fn load(
        id: BankId,
        name: String,
        key: SigningKey,
        params: &ChainParams,
        store: &RocksStore,
    ) -> Result<BankRole, BankError> {
        let storage_secret = Zeroizing::new(key.to_bytes());
        let accounts = load_accounts(store, &storage_secret)?;
        info!(accounts = accounts.len(), "bank accounts loaded");
        let refusals = load_refusals(store)?;
        let head = store.head().map_err(BankError::Head)?;
        let keys = Keys {
            chain_id: params.chain_id.clone(),
            validators: params.validator_keys.clone(),
            banks: params.bank_keys.clone(),
        };
        let written = (head.height, head.time);
        let core = Bank::new(
            id,
            keys,
            Bounds::default(),
            key,
            accounts,
            refusals,
            written,
        );
        info!(refusals = core.stored_refusals(), "stored refusals loaded");
        Ok(BankRole {
            name,
            storage_secret,
            core,
        })
    }

    /// The stored row of `account`, its business key sealed.
    fn row(&self, account: &AccountId) -> Result<(Vec<u8>, Vec<u8>), BankError> {
        let local = self
            .core
            .account(account)
            .ok_or(BankError::NoAccount { account: *account })?;
        let sealed = crypto::seal_at_rest(
            &self.storage_secret,
            &account.0,
            local.business_key().as_bytes(),
            &mut OsRng,
        )?;
        let value = codec::encode(&AccountRow {
            version: ROW_VERSION,
            sealed_business_key: sealed,
            frozen: local.frozen,
            payment_max: local.limits.payment_max,
            daily_max: local.limits.daily_max,
            receive_max: local.limits.receive_max,
            opened: local.opened,
        })?;
        Ok((row_key(account), value))
    }
}

impl Service {
    pub(crate) fn bank(&mut self) -> Option<&mut BankRole> {
        match &mut self.role {
            Role::Bank(bank) => Some(bank),
            Role::IdentityManager(_) => None,
        }
    }

    /// Envelopes from payers, each answered on its own once the refusals they earned are
    /// stored.
    pub fn bank_submit_batch(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        reply: oneshot::Sender<Vec<Answer>>,
    ) {
        let answers = self.bank_accept(&envelopes);
        self.bank_carry_out(Some(Box::new(move |committed| {
            let answers = answers
                .into_iter()
                .map(|answer| on_chain_instead(answer, committed))
                .collect();
            let _ = reply.send(answers);
        })));
    }

    /// One envelope.
    pub fn bank_submit(&mut self, bytes: Vec<u8>, reply: oneshot::Sender<Answer>) {
        let answers = self.bank_accept(std::slice::from_ref(&bytes));
        self.bank_carry_out(Some(Box::new(move |committed| {
            if let Some(answer) = answers.into_iter().next() {
                let _ = reply.send(on_chain_instead(answer, committed));
            }
        })));
    }

    /// The bank's answers to `envelopes`.
    fn bank_accept(&mut self, envelopes: &[Vec<u8>]) -> Vec<Answer> {
        let refuse_all = |failure: RpcFailure| vec![Err(failure); envelopes.len()];
        let Role::Bank(bank) = &mut self.role else {
            let wrong = RpcFailure::new(codes::WRONG_ROLE, "submit envelopes to the payer's bank");
            return refuse_all(wrong);
        };
        if self.halted {
            let halted =
                "this bank stopped following the chain (equivocation evidence; see hv_evidence)";
            return refuse_all(RpcFailure::new(codes::REFUSED, halted));
        }
        let answers = bank.core.submit_batch(envelopes, clock::now());
        let busy = answers
            .iter()
            .filter(|answer| matches!(answer, Err(SubmitError::Busy)))
            .count();
        self.metrics.queue_full.inc_by(busy as u64);
        answers
            .into_iter()
            .map(|answer| answer.map_err(submit_failure))
            .collect()
    }

    /// Carries out what the bank's machine decided; `then` (an RPC answer) runs once the
    /// refusals it names are stored, or at once if there are none.
    fn bank_carry_out(&mut self, mut then: Option<Then>) {
        let effects = match self.bank() {
            Some(bank) => bank.core.take_effects(),
            None => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Forward {
                    ids,
                    requests,
                    attestation,
                } => self.bank_send_forward(
                    ids,
                    ForwardBatch {
                        requests,
                        attestation,
                    },
                ),
                Effect::StoreRefusals(refusals) => self.bank_store_refusals(refusals, then.take()),
                Effect::PruneRefusals(ids) => self.bank_prune_refusals(ids),
                Effect::Resolve { id, state } => self.waiters.resolve(&id, &state),
            }
        }
        if let Some(then) = then {
            then(&[]);
        }
    }

    fn bank_send_forward(&self, ids: Vec<Hash32>, batch: ForwardBatch) {
        let im_peer = self.im_peer();
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let result = net.request(im_peer, Request::Forward(batch)).await;
            let answer = BankInput::ForwardAnswer { ids, result };
            let _ = inputs.send(Input::Bank(answer)).await;
        });
    }

    /// Stores refusals in one synced write, then tells them: `then` and, through the
    /// machine, the transfers' waiters. Nothing is told before the write, so a refusal once
    /// told is final, across restarts too.
    fn bank_store_refusals(&self, refusals: Vec<Refusal>, then: Option<Then>) {
        let store = Arc::clone(&self.store);
        let inputs = self.inputs.clone();
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

    fn bank_prune_refusals(&self, ids: Vec<Hash32>) {
        let store = Arc::clone(&self.store);
        let keys: Vec<Vec<u8>> = ids.iter().map(refusal_key).collect();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = store.local_delete(&keys) {
                warn!(%error, "cannot prune stored refusals");
            }
        });
    }

    pub async fn bank_tick(&mut self) {
        if let Some(bank) = self.bank() {
            bank.core.tick(clock::now());
        }
        self.bank_carry_out(None);
    }

    pub async fn on_bank_input(&mut self, input: BankInput) {
        match input {
            BankInput::ForwardAnswer { ids, result } => {
                match &result {
                    Ok(Response::NotLeader { leader }) => self.im_not_leader(*leader),
                    // An IM replica that cannot be reached may be a leader that died: ask
                    // the next one (a single IM is asked again).
                    Err(_) => self.im_not_leader(None),
                    Ok(_) => {}
                }
                let replicated = self.genesis.im_replicated();
                let answer = forward_answer(result, ids.len(), replicated);
                if let Some(bank) = self.bank() {
                    bank.core.on_forward_answer(ids, answer, Instant::now());
                }
            }
            BankInput::RefusalsStored {
                refusals,
                committed,
            } => {
                let count = refusals.len() as u64;
                self.metrics.transfers_rejected.inc_by(count);
                if let Some(bank) = self.bank() {
                    bank.core.on_refusals_stored(refusals, committed);
                }
            }
            BankInput::OpenRelayed {
                account,
                result,
                reply,
            } => self.bank_on_open_relayed(account, result, reply).await,
        }
        self.bank_carry_out(None);
    }

    /// The IM reports transfers refused after it accepted them.
    pub async fn bank_on_rejected(
        &mut self,
        peer: PeerId,
        rejections: Vec<Rejection>,
        channel: Reply,
    ) {
        let from_im = self.is_im_peer(&peer);
        let response = match self.bank() {
            Some(bank) if from_im => {
                bank.core.on_rejected(rejections);
                Response::Ack
            }
            _ => Response::Error {
                code: RejectCode::Invalid,
                message: "not accepted from this peer".into(),
            },
        };
        self.bank_carry_out(None);
        self.net.respond(channel, response).await;
    }

    /// The IM asks whether payees may receive: a signed verdict for each.
    pub async fn bank_on_approve(
        &mut self,
        peer: PeerId,
        items: Vec<ApprovalItemWire>,
        channel: Reply,
    ) {
        let from_im = self.is_im_peer(&peer) && !self.halted;
        let response = match self.bank() {
            Some(bank) if from_im && items.len() <= BATCH_TRANSFERS_MAX => {
                let items = items.into_iter().map(|item| PayeeItem {
                    id: item.id,
                    payee: item.payee,
                    amount: item.amount,
                });
                let verdict = bank.core.approve(items);
                Response::Approval {
                    attestation: verdict.attestation,
                    refused: verdict.refused,
                }
            }
            _ => Response::Error {
                code: RejectCode::Invalid,
                message: "approvals are asked by the identity manager, in bounded batches".into(),
            },
        };
        self.net.respond(channel, response).await;
    }

    pub fn bank_on_written(&mut self, block: &halfveil_ledger::Block) {
        if let Some(bank) = self.bank() {
            bank.core
                .on_written(block.height(), block.signed.header.time);
        }
    }
}

impl Service {
    /// A payer asks to open an account: check the key and the proof of possession, issue a
    /// business key, store it encrypted, and relay the opening to the IM.
    pub async fn bank_open_account(
        &mut self,
        params: OpenAccountParams,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    ) {
        let store = Arc::clone(&self.store);
        let added = parse_opening(&params, &self.params, &self.state).and_then(|opening| {
            let identity = parse_identity(&params, &self.params, &opening.account)?;
            let Some(bank) = self.bank() else {
                return Err(RpcFailure::new(
                    codes::WRONG_ROLE,
                    "accounts are opened at a bank",
                ));
            };
            let business_key = BusinessKey::generate(&mut OsRng);
            let op = bank
                .core
                .add_account(&opening, business_key)
                .map_err(opening_failure)?;
            let row = bank.row(&opening.account).map_err(|error| {
                bank.core.remove_account(&opening.account);
                RpcFailure::new(codes::INTERNAL, error.to_string())
            })?;
            Ok((OpenAccountRequest { op, identity }, row))
        });
        let (request, row) = match added {
            Ok(added) => added,
            Err(failure) => {
                let _ = reply.send(Err(failure));
                return;
            }
        };
        let account = request.op.account;
        let stored = tokio::task::spawn_blocking(move || store.local_put(&[row])).await;
        if !matches!(stored, Ok(Ok(()))) {
            if let Some(bank) = self.bank() {
                bank.core.remove_account(&account);
            }
            let failure = RpcFailure::new(codes::INTERNAL, "cannot store the account");
            let _ = reply.send(Err(failure));
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
        let replicas = self.genesis.im_peer_ids.clone();
        let first = self.im_target;
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        let account = request.op.account;
        tokio::spawn(async move {
            let result =
                relay_to_leader(&net, &replicas, first, Request::OpenAccount(request)).await;
            let relayed = BankInput::OpenRelayed {
                account,
                result,
                reply,
            };
            let _ = inputs.send(Input::Bank(relayed)).await;
        });
    }

    /// The IM committed (or refused) an opening: mark the account open and store it.
    async fn bank_on_open_relayed(
        &mut self,
        account: AccountId,
        result: Result<Response, RequestError>,
        reply: oneshot::Sender<Result<OpenedAccount, RpcFailure>>,
    ) {
        let store = Arc::clone(&self.store);
        let height = match result {
            Ok(Response::Opened {
                account: opened,
                height,
            }) if opened == account => Ok(height),
            Ok(Response::Error { message, .. }) => Err(message),
            Ok(Response::NotLeader { leader }) => {
                self.im_not_leader(leader);
                Err("the replica asked does not lead; retry".to_owned())
            }
            Ok(_) => Err("unexpected answer from the identity manager".to_owned()),
            Err(error) => {
                self.im_not_leader(None);
                Err(error.to_string())
            }
        };
        let height = match height {
            Ok(height) => height,
            Err(why) => {
                let why = format!("the identity manager refused the account: {why}");
                let _ = reply.send(Err(RpcFailure::new(codes::REFUSED, why)));
                return;
            }
        };
        let Some(bank) = self.bank() else {
            return;
        };
        let Some(local) = bank.core.account_mut(&account) else {
            return;
        };
        local.opened = true;
        let business_key = hex::encode(local.business_key().as_bytes());
        if let Ok(row) = bank.row(&account) {
            let _ = tokio::task::spawn_blocking(move || store.local_put(&[row])).await;
        }
        let Some(bank) = self.bank() else {
            return;
        };
        let _ = reply.send(Ok(OpenedAccount {
            account: account.to_string(),
            bank: bank.name.clone(),
            bank_id: bank.core.id.0,
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
        let changed = self.bank_apply_change(&account, change).await;
        if let Err(failure) = changed {
            let _ = reply.send(Err(failure));
            return;
        }
        info!(%account, ?change, "account changed by the operator");
        let info = self.account_info(&account);
        let _ = reply.send(
            info.ok_or_else(|| RpcFailure::new(codes::REFUSED, "the account is not on chain yet")),
        );
    }

    /// Makes `change` to `account` and stores it; undone if it cannot be stored (not on
    /// disk, so not in force).
    async fn bank_apply_change(
        &mut self,
        account: &AccountId,
        change: AccountChange,
    ) -> Result<(), RpcFailure> {
        let store = Arc::clone(&self.store);
        let bank = self.bank().ok_or_else(|| {
            RpcFailure::new(codes::WRONG_ROLE, "only a bank manages its accounts")
        })?;
        let not_ours = || {
            RpcFailure::new(
                codes::REFUSED,
                format!("{account} is not an account of this bank"),
            )
        };
        let local = bank.core.account_mut(account).ok_or_else(not_ours)?;
        let before = (local.frozen, local.limits);
        match change {
            AccountChange::Freeze => local.frozen = true,
            AccountChange::Unfreeze => local.frozen = false,
            AccountChange::Limits(limits) => local.limits = limits,
        }
        let stored = match bank.row(account) {
            Ok(row) => matches!(
                tokio::task::spawn_blocking(move || store.local_put(&[row])).await,
                Ok(Ok(()))
            ),
            Err(_) => false,
        };
        if stored {
            return Ok(());
        }
        if let Some(local) = self.bank().and_then(|bank| bank.core.account_mut(account)) {
            (local.frozen, local.limits) = before;
        }
        Err(RpcFailure::new(codes::INTERNAL, "cannot store the change"))
    }
}
