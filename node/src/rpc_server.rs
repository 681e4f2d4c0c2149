//! The JSON-RPC servers: the public API and the token-guarded operator API. Handlers ask
//! the service through its bounded input channel (a full channel is `OVERLOADED`) and read
//! the store for blocks and receipts in `spawn_blocking`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use halfveil_ledger::{
    codec, AccountId, AuditorId, AuditorSignature, CodecError, DisclosureOrder, Hash32, Height, Op,
    OrderOp, Receipt, ShareRecord, Signature,
};
use halfveil_store::{RocksStore, Store, StoreError};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::server::{
    stop_channel, BatchRequestConfig, Methods, PendingSubscriptionSink, PingConfig, Server,
    ServerConfig, ServerHandle,
};
use prometheus_client::metrics::counter::Counter;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::rpc::{
    codes, rpc_error, AccountChanged, AccountInfo, AdminApiServer, Adopted, ApiServer, BankLimits,
    BlockInfo, Committed, DisclosureKeyInfo, EvidenceInfo, Final, HeadInfo, LifecycleParams,
    NodeStatus, OpenAccountParams, OpenedAccount, RecordOrderParams, RecordShareParams, Recorded,
    RpcFailure, Submitted, TransferStatus, Watched, RPC_BATCH_MAX,
};
use crate::rpc_listen::{self, Limits};
use crate::service::{AccountChange, Input, RpcCommand, TransferState};

/// The largest JSON-RPC request body.
const REQUEST_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// A disclosure order from its hex encoding, bounded and strict.
fn parse_order(text: &str) -> RpcResult<DisclosureOrder> {
    parse_encoded(text, ORDER_BYTES_MAX, "the order")
}

/// A value from the hex of its canonical encoding, at most `max` bytes, or a clear error
/// naming `what`.
fn parse_encoded<T: serde::de::DeserializeOwned + serde::Serialize>(
    text: &str,
    max: usize,
    what: &str,
) -> RpcResult<T> {
    let invalid = |message: String| rpc_error(codes::INVALID_INPUT, &message);
    if text.len() > 2 * max {
        return Err(invalid(format!("{what} is too large")));
    }
    let bytes = hex::decode(text).map_err(|_| invalid(format!("{what} is not hex")))?;
    codec::decode(&bytes, max).map_err(|error| invalid(format!("{what} is malformed: {error}")))
}

/// `N` bytes from hex, or a clear error naming `what`.
fn parse_hex_bytes<const N: usize>(text: &str, what: &str) -> RpcResult<[u8; N]> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| {
        rpc_error(
            codes::INVALID_INPUT,
            format!("{what} is not {N} bytes of hex"),
        )
    })?;
    Ok(bytes)
}

/// The largest encoded key rotation or closing.
const LIFECYCLE_BYTES_MAX: usize = 512;

/// The largest encoded disclosure order.
const ORDER_BYTES_MAX: usize = 1024;
/// The largest JSON-RPC response: a block of genesis's largest size, as hex, in JSON.
const RESPONSE_BYTES_MAX: u32 = 80 * 1024 * 1024;
/// Most calls in one JSON-RPC batch array (bulk work goes through `hv_submitBatch`).
const JSON_BATCH_MAX: u32 = 64;
/// A connection that has not sent its first request's headers by then is closed.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this once the connection waits for them; an idle
/// keep-alive connection is closed after it.
const HEADERS_TIMEOUT: Duration = Duration::from_secs(30);
/// A request's body must arrive within this after its headers (16 MiB at 0.5 MiB/s).
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections the operator port holds.
const ADMIN_CONNECTIONS_MAX: u32 = 16;
/// WebSocket clients are pinged this often, and dropped when silent for the limit.
const WS_PING_INTERVAL: Duration = Duration::from_secs(30);
const WS_INACTIVE_LIMIT: Duration = Duration::from_secs(90);
/// Most subscriptions one connection holds open at once (each up to `RPC_BATCH_MAX` ids;
/// all of them together are bounded by `waiters::WAITERS_MAX`).
const SUBSCRIPTIONS_PER_CONNECTION_MAX: u32 = 64;
/// The longest a subscriber waits for a transfer to become final.
const SUBSCRIPTION_WAIT_MAX: Duration = Duration::from_secs(600);

/// Shared by both servers.
#[derive(Clone, Debug)]
pub struct RpcContext {
    pub inputs: mpsc::Sender<Input>,
    pub store: Arc<RocksStore>,
    /// The genesis, for `hv_genesis` (its canonical text is the file's, byte for byte) and
    /// for names (a refusing bank's).
    pub genesis: Arc<halfveil_genesis::file::ValidGenesis>,
    /// How many final-status waiters the service holds: new waits are refused while full.
    pub waiters: crate::waiters::WaiterCount,
}

/// Why a handler's read of the store failed; the caller sees it as an internal error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored block or row does not encode or decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Why an RPC server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {what} on {address}: {source}")]
pub struct ListenError {
    /// Which server: `RPC` or `admin RPC`.
    pub what: &'static str,
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

fn overloaded() -> jsonrpsee::types::ErrorObjectOwned {
    rpc_error(codes::OVERLOADED, "the node is busy; retry")
}

fn internal(message: impl Into<String>) -> jsonrpsee::types::ErrorObjectOwned {
    rpc_error(codes::INTERNAL, message)
}

impl RpcContext {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> RpcCommand) -> RpcResult<T> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .try_send(Input::Rpc(make(reply)))
            .map_err(|_| overloaded())?;
        answer
            .await
            .map_err(|_| internal("the node dropped the request"))
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&RocksStore) -> Result<T, ReadError> + Send + 'static,
    ) -> RpcResult<T> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|_| internal("store read failed"))?
            .map_err(|error| internal(error.to_string()))
    }

    /// Turns what the service knows into a status with a receipt, reading the store when the
    /// transfer is committed (or when the service does not know it).
    async fn status_of(&self, id: Hash32, track: TransferState) -> RpcResult<TransferStatus> {
        let hex_id = id.to_hex();
        let location = match track {
            TransferState::Pending => return Ok(TransferStatus::Pending { id: hex_id }),
            TransferState::Rejected(rejection) => {
                let by = match rejection.by {
                    halfveil_ledger::Rejecter::IdentityManager => "identity-manager".to_owned(),
                    halfveil_ledger::Rejecter::Bank(bank) => match self.genesis.bank_name(bank) {
                        Some(name) => name.to_owned(),
                        None => format!("bank {}", bank.0),
                    },
                };
                return Ok(TransferStatus::Rejected {
                    id: hex_id,
                    by,
                    code: rejection.code.as_str().to_owned(),
                    detail: rejection.detail.clone(),
                    rejection: hex::encode(
                        codec::encode(&rejection).map_err(|error| internal(error.to_string()))?,
                    ),
                });
            }
            TransferState::Committed { height, index } => Some((height, index)),
            TransferState::Unknown => None,
        };
        let receipt = self
            .read(move |store| {
                let (height, index) = match location {
                    Some(location) => location,
                    None => match store.transfer_location(&id)? {
                        Some(location) => (location.height, location.index),
                        None => return Ok(None),
                    },
                };
                let Some(block) = store.block(height)? else {
                    return Ok(None);
                };
                Ok(receipt_of(&block, index).map(|receipt| (height, index, receipt)))
            })
            .await?;
        Ok(match receipt {
            None => TransferStatus::Unknown { id: hex_id },
            Some((height, index, receipt)) => TransferStatus::Committed {
                id: hex_id,
                height: height.0,
                index,
                block_hash: receipt
                    .header
                    .header
                    .hash()
                    .map(|hash| hash.to_hex())
                    .unwrap_or_default(),
                receipt: hex::encode(
                    codec::encode(&receipt).map_err(|error| internal(error.to_string()))?,
                ),
            },
        })
    }
}

/// The receipt of the op at `index` of `block`.
pub fn receipt_of(block: &halfveil_ledger::Block, index: u32) -> Option<Receipt> {
    let (op_hashes, _) = halfveil_ledger::apply::hash_ops(&block.ops).ok()?;
    let index = usize::try_from(index).ok()?;
    let halfveil_ledger::Op::Transfer(transfer) = block.ops.get(index)? else {
        return None;
    };
    Some(Receipt {
        version: halfveil_ledger::VERSION,
        transfer_id: transfer.request.transfer.id().ok()?,
        op: block.ops.get(index)?.clone(),
        header: block.signed.clone(),
        proof: halfveil_ledger::hash::merkle_proof(&op_hashes, index)?,
    })
}

fn parse_account(text: &str) -> RpcResult<AccountId> {
    text.parse()
        .map_err(|error: halfveil_ledger::error::ParseError| {
            rpc_error(codes::INVALID_INPUT, error.to_string())
        })
}

fn parse_id(text: &str) -> RpcResult<Hash32> {
    Hash32::from_hex(text)
        .map_err(|_| rpc_error(codes::INVALID_INPUT, "a transfer id is 64 hex digits"))
}

fn block_info(block: &halfveil_ledger::Block) -> Result<BlockInfo, CodecError> {
    let header = block.header();
    Ok(BlockInfo {
        height: header.height.0,
        hash: header.hash()?.to_hex(),
        parent: header.parent.to_hex(),
        time_ms: header.time.0,
        op_root: header.op_root.to_hex(),
        state_root: header.state_root.to_hex(),
        ops: block.ops.len(),
        transfers: block
            .ops
            .iter()
            .filter(|op| matches!(op, halfveil_ledger::Op::Transfer(_)))
            .count(),
        attestations: block.attestations.len(),
        raw: hex::encode(block.encode()?),
    })
}

/// The transfers a subscription waits for, each with its outcome once final.
type Waiting = futures::stream::FuturesUnordered<Outcome>;

/// One transfer's outcome, named by its id when it arrives (a plain future, so waiting
/// for a batch allocates nothing per transfer).
struct Outcome {
    id: Hash32,
    answer: oneshot::Receiver<TransferState>,
}

impl std::future::Future for Outcome {
    type Output = (Hash32, Result<TransferState, oneshot::error::RecvError>);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let id = self.id;
        std::pin::Pin::new(&mut self.answer)
            .poll(context)
            .map(|answer| (id, answer))
    }
}

impl RpcContext {
    /// `hv_submitBatch`'s work: every envelope's answer, in order, and the ids of the
    /// accepted transfers that are not final yet.
    async fn submit_envelopes(
        &self,
        envelopes: &[String],
    ) -> RpcResult<(Vec<Submitted>, Vec<Hash32>)> {
        if envelopes.len() > RPC_BATCH_MAX {
            return Err(rpc_error(
                codes::INVALID_INPUT,
                format!("at most {RPC_BATCH_MAX} envelopes per batch"),
            ));
        }
        // Undecodable envelopes are answered here; the rest go to the service in one message.
        let mut decoded = Vec::with_capacity(envelopes.len());
        let mut positions = Vec::with_capacity(envelopes.len());
        let mut answers: Vec<Option<Submitted>> = Vec::with_capacity(envelopes.len());
        for (index, envelope) in envelopes.iter().enumerate() {
            let bytes = (envelope.len() <= 2 * halfveil_ledger::crypto::ENVELOPE_BYTES_MAX)
                .then(|| hex::decode(envelope).ok())
                .flatten();
            match bytes {
                Some(bytes) => {
                    decoded.push(bytes);
                    positions.push(index);
                    answers.push(None);
                }
                None => answers.push(Some(Submitted::Error {
                    code: codes::ENVELOPE,
                    message: "the envelope cannot be opened by this bank".into(),
                })),
            }
        }
        let results = self
            .ask(|reply| RpcCommand::SubmitBatch(decoded, reply))
            .await?;
        let mut pending = Vec::with_capacity(results.len());
        for (position, result) in positions.into_iter().zip(results) {
            answers[position] = Some(match result {
                Err(failure) => Submitted::Error {
                    code: failure.code,
                    message: failure.message,
                },
                Ok((id, TransferState::Committed { height, .. })) => Submitted::Committed {
                    id: id.to_hex(),
                    height: height.0,
                },
                Ok((id, TransferState::Rejected(rejection))) => Submitted::Rejected {
                    id: id.to_hex(),
                    code: rejection.code.as_str().to_owned(),
                },
                Ok((id, _)) => {
                    pending.push(id);
                    Submitted::Pending { id: id.to_hex() }
                }
            });
        }
        Ok((answers.into_iter().flatten().collect(), pending))
    }

    /// Asks the service to answer when each of `ids` is final; `None` if it is overloaded
    /// or its table of waiters is full.
    fn wait_finals(&self, ids: Vec<Hash32>) -> Option<Waiting> {
        if !self.waiters.has_room(ids.len()) {
            return None;
        }
        let waiting = Waiting::new();
        let mut waits = Vec::with_capacity(ids.len());
        for id in ids {
            let (reply, answer) = oneshot::channel();
            waits.push((id, reply));
            waiting.push(Outcome { id, answer });
        }
        self.inputs
            .try_send(Input::Rpc(RpcCommand::WaitFinals(waits)))
            .ok()?;
        Some(waiting)
    }
}

/// Sends the outcomes in `waiting` as they become final, what is final at once in one
/// notification (built by `message`), until all are sent, the client leaves or
/// [`SUBSCRIPTION_WAIT_MAX`] passes.
async fn send_finals(
    sink: &jsonrpsee::server::SubscriptionSink,
    mut waiting: Waiting,
    message: impl Fn(Vec<Final>) -> Result<Box<serde_json::value::RawValue>, serde_json::Error>,
) -> SubscriptionResult {
    let deadline = tokio::time::Instant::now() + SUBSCRIPTION_WAIT_MAX;
    while !waiting.is_empty() {
        // Gather what is final now, then send it as one notification.
        let first = tokio::select! {
            next = futures::StreamExt::next(&mut waiting) => next,
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = sink.closed() => return Ok(()),
        };
        let mut finals = Vec::new();
        let mut push =
            |(id, answer): (Hash32, Result<TransferState, oneshot::error::RecvError>)| match answer
            {
                Ok(TransferState::Committed { height, .. }) => finals.push(Final {
                    id: id.to_hex(),
                    height: Some(height.0),
                    code: None,
                }),
                Ok(TransferState::Rejected(rejection)) => finals.push(Final {
                    id: id.to_hex(),
                    height: None,
                    code: Some(rejection.code.as_str().to_owned()),
                }),
                _ => {}
            };
        if let Some(item) = first {
            push(item);
        }
        while let Some(Some(item)) =
            futures::FutureExt::now_or_never(futures::StreamExt::next(&mut waiting))
        {
            push(item);
        }
        if !finals.is_empty() {
            sink.send(message(finals)?).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl ApiServer for RpcContext {
    async fn status(&self) -> RpcResult<NodeStatus> {
        self.ask(RpcCommand::Status).await
    }

    async fn genesis(&self) -> RpcResult<String> {
        Ok(self.genesis.genesis.to_canonical_json())
    }

    async fn evidence(&self) -> RpcResult<Vec<EvidenceInfo>> {
        use crate::evidence::{Evidence, EVIDENCE_PREFIX, EVIDENCE_ROWS_MAX};
        self.read(|store| {
            let rows = store.local_scan(EVIDENCE_PREFIX, EVIDENCE_ROWS_MAX)?;
            rows.into_iter()
                .map(|(_, raw)| -> Result<EvidenceInfo, ReadError> {
                    let evidence = Evidence::decode(&raw)?;
                    let hash = |signed: &halfveil_ledger::SignedHeader| {
                        signed.header.hash().map(|hash| hash.to_hex())
                    };
                    Ok(EvidenceInfo {
                        height: evidence.height().0,
                        first_hash: hash(&evidence.first)?,
                        second_hash: hash(&evidence.second)?,
                        raw: hex::encode(raw),
                    })
                })
                .collect()
        })
        .await
    }

    async fn head(&self) -> RpcResult<HeadInfo> {
        self.read(|store| {
            let head = store.head()?;
            Ok(HeadInfo {
                height: head.height.0,
                hash: head.hash.to_hex(),
                time_ms: head.time.0,
                state_root: head.state_root.to_hex(),
                supply: head.supply.0,
            })
        })
        .await
    }

    async fn block(&self, height: u64) -> RpcResult<Option<BlockInfo>> {
        self.read(move |store| match store.block(Height(height))? {
            Some(block) => Ok(Some(block_info(&block)?)),
            None => Ok(None),
        })
        .await
    }

    async fn account(&self, account: String) -> RpcResult<Option<AccountInfo>> {
        let account = parse_account(&account)?;
        self.ask(|reply| RpcCommand::Account(account, reply)).await
    }

    async fn submit(&self, envelope: String) -> RpcResult<TransferStatus> {
        if envelope.len() > 2 * halfveil_ledger::crypto::ENVELOPE_BYTES_MAX {
            return Err(rpc_error(
                codes::ENVELOPE,
                "the envelope cannot be opened by this bank",
            ));
        }
        let bytes = hex::decode(&envelope).map_err(|_| {
            rpc_error(
                codes::ENVELOPE,
                "the envelope cannot be opened by this bank",
            )
        })?;
        let (id, track) = self
            .ask(|reply| RpcCommand::Submit(bytes, reply))
            .await?
            .map_err(RpcFailure::into_error)?;
        self.status_of(id, track).await
    }

    async fn transfer_status(&self, id: String) -> RpcResult<TransferStatus> {
        let id = parse_id(&id)?;
        let track = self
            .ask(|reply| RpcCommand::TransferState(id, reply))
            .await?;
        self.status_of(id, track).await
    }

    async fn subscribe_transfer(
        &self,
        pending: PendingSubscriptionSink,
        id: String,
    ) -> SubscriptionResult {
        let id = match parse_id(&id) {
            Ok(id) => id,
            Err(error) => {
                pending.reject(error).await;
                return Ok(());
            }
        };
        let (reply, answer) = oneshot::channel();
        if !self.waiters.has_room(1)
            || self
                .inputs
                .try_send(Input::Rpc(RpcCommand::WaitFinal(id, reply)))
                .is_err()
        {
            pending.reject(overloaded()).await;
            return Ok(());
        }
        let sink = pending.accept().await?;
        let track = tokio::select! {
            answer = tokio::time::timeout(SUBSCRIPTION_WAIT_MAX, answer) => match answer {
                Ok(Ok(track)) => track,
                _ => return Ok(()),
            },
            _ = sink.closed() => return Ok(()),
        };
        let status = self.status_of(id, track).await?;
        let message = serde_json::value::to_raw_value(&status)?;
        sink.send(message).await?;
        Ok(())
    }

    async fn submit_batch(&self, envelopes: Vec<String>) -> RpcResult<Vec<Submitted>> {
        Ok(self.submit_envelopes(&envelopes).await?.0)
    }

    async fn subscribe_finals(
        &self,
        pending: PendingSubscriptionSink,
        ids: Vec<String>,
    ) -> SubscriptionResult {
        if ids.len() > RPC_BATCH_MAX {
            pending
                .reject(rpc_error(
                    codes::INVALID_INPUT,
                    format!("at most {RPC_BATCH_MAX} ids per subscription"),
                ))
                .await;
            return Ok(());
        }
        let mut parsed = Vec::with_capacity(ids.len());
        for id in &ids {
            match parse_id(id) {
                Ok(id) => parsed.push(id),
                Err(error) => {
                    pending.reject(error).await;
                    return Ok(());
                }
            }
        }
        let Some(waiting) = self.wait_finals(parsed) else {
            pending.reject(overloaded()).await;
            return Ok(());
        };
        let sink = pending.accept().await?;
        send_finals(&sink, waiting, |finals| {
            serde_json::value::to_raw_value(&finals)
        })
        .await
    }

    async fn submit_and_watch(
        &self,
        pending: PendingSubscriptionSink,
        envelopes: Vec<String>,
    ) -> SubscriptionResult {
        let (answers, ids) = match self.submit_envelopes(&envelopes).await {
            Ok(submitted) => submitted,
            Err(error) => {
                pending.reject(error).await;
                return Ok(());
            }
        };
        // Accepted envelopes stay accepted: if the waits cannot be registered the client
        // still gets every answer, and can ask for the outcomes later.
        let waiting = self.wait_finals(ids);
        let sink = pending.accept().await?;
        sink.send(serde_json::value::to_raw_value(&Watched::Submitted {
            answers,
        })?)
        .await?;
        let Some(waiting) = waiting else {
            return Ok(());
        };
        send_finals(&sink, waiting, |finals| {
            serde_json::value::to_raw_value(&Watched::Finals { finals })
        })
        .await
    }

    async fn submit_lifecycle(&self, params: LifecycleParams) -> RpcResult<AccountChanged> {
        let invalid = |message: &str| rpc_error(codes::INVALID_INPUT, message);
        if params.op.len() > 2 * LIFECYCLE_BYTES_MAX {
            return Err(invalid("the op is too large"));
        }
        let bytes = hex::decode(&params.op).map_err(|_| invalid("the op is not hex"))?;
        let op: Op = codec::decode(&bytes, LIFECYCLE_BYTES_MAX)
            .map_err(|error| invalid(&format!("the op is malformed: {error}")))?;
        if !matches!(op, Op::RotateKey(_) | Op::CloseAccount(_)) {
            return Err(invalid("only a key rotation or an account closing"));
        }
        let (account, height) = self
            .ask(|reply| RpcCommand::Lifecycle { op, reply })
            .await?
            .map_err(RpcFailure::into_error)?;
        Ok(AccountChanged {
            account: account.to_string(),
            height: height.0,
        })
    }

    async fn record_order(&self, params: RecordOrderParams) -> RpcResult<Recorded> {
        let invalid = |message: &str| rpc_error(codes::INVALID_INPUT, message);
        if params.signatures.len() > halfveil_ledger::DISCLOSURE_SIGNERS_MAX {
            return Err(invalid("too many signatures"));
        }
        let order = parse_order(&params.order)?;
        let signatures = params
            .signatures
            .iter()
            .map(|signed| {
                Ok(AuditorSignature {
                    auditor: AuditorId(signed.auditor),
                    signature: Signature(parse_hex_bytes::<64>(&signed.signature, "a signature")?),
                })
            })
            .collect::<RpcResult<Vec<_>>>()?;
        let order_hash = order.hash().map_err(|error| invalid(&error.to_string()))?;
        let op = OrderOp { order, signatures };
        let height = self
            .ask(|reply| RpcCommand::RecordOrder { op, reply })
            .await?
            .map_err(RpcFailure::into_error)?;
        Ok(Recorded {
            order_hash: order_hash.to_hex(),
            height: height.0,
        })
    }

    async fn record_share(&self, params: RecordShareParams) -> RpcResult<Recorded> {
        let invalid = |message: &str| rpc_error(codes::INVALID_INPUT, message);
        let order = parse_order(&params.order)?;
        let order_hash = order.hash().map_err(|error| invalid(&error.to_string()))?;
        let record = ShareRecord {
            order,
            holder: params.holder,
            sealed_hash: Hash32(parse_hex_bytes::<32>(&params.sealed_hash, "sealed_hash")?),
            signature: Signature(parse_hex_bytes::<64>(&params.signature, "signature")?),
        };
        let height = self
            .ask(|reply| RpcCommand::RecordShare { record, reply })
            .await?
            .map_err(RpcFailure::into_error)?;
        Ok(Recorded {
            order_hash: order_hash.to_hex(),
            height: height.0,
        })
    }

    async fn disclosure_key(&self) -> RpcResult<DisclosureKeyInfo> {
        let genesis = self.genesis.params.disclosure_key.clone();
        let adopted = self.read(|store| Ok(store.adopted_keys()?)).await?;
        let key = adopted
            .last()
            .map_or(&genesis, |adoption| &adoption.held.key);
        let adoptions = adopted
            .iter()
            .map(|adoption| codec::encode(adoption).map(hex::encode))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                internal(format!("a stored disclosure key does not encode: {error}"))
            })?;
        Ok(DisclosureKeyInfo {
            epoch: key.epoch,
            refresh: key.refresh,
            threshold: key.threshold,
            group_key: hex::encode(key.group_key.0),
            adoptions,
        })
    }

    async fn adopt_disclosure_key(&self, adoption: String) -> RpcResult<Adopted> {
        use halfveil_ledger::disclosure_keys::{KeyAdoption, KEY_ADOPTION_BYTES_MAX};
        let adoption: KeyAdoption =
            parse_encoded(&adoption, KEY_ADOPTION_BYTES_MAX, "the adoption")?;
        let (epoch, refresh) = (adoption.held.key.epoch, adoption.held.key.refresh);
        let hash = KeyAdoption::message(&self.genesis.params.chain_id, &adoption.held)
            .map_err(|error| rpc_error(codes::INVALID_INPUT, error.to_string()))?;
        let height = self
            .ask(|reply| RpcCommand::AdoptKey { adoption, reply })
            .await?
            .map_err(RpcFailure::into_error)?;
        Ok(Adopted {
            adoption_hash: hash.to_hex(),
            epoch,
            refresh,
            height: height.0,
        })
    }

    async fn open_account(&self, params: OpenAccountParams) -> RpcResult<OpenedAccount> {
        self.ask(|reply| RpcCommand::OpenAccount(params, reply))
            .await?
            .map_err(RpcFailure::into_error)
    }
}

impl RpcFailure {
    fn into_error(self) -> jsonrpsee::types::ErrorObjectOwned {
        self.into()
    }
}

/// The operator API; every call checks the token.
#[derive(Clone, Debug)]
pub struct AdminContext {
    pub context: RpcContext,
    pub token: Arc<SecretString>,
}

impl AdminContext {
    fn authorize(&self, token: &str) -> RpcResult<()> {
        let expected = self.token.expose_secret().as_bytes();
        let given = token.as_bytes();
        // Compare in time independent of where they differ.
        let same = expected.len() == given.len()
            && expected
                .iter()
                .zip(given)
                .fold(0u8, |acc, (left, right)| acc | (left ^ right))
                == 0;
        if same {
            Ok(())
        } else {
            Err(rpc_error(
                codes::UNAUTHORIZED,
                "the admin token is missing or wrong",
            ))
        }
    }

    async fn change(
        &self,
        token: String,
        account: String,
        change: AccountChange,
    ) -> RpcResult<AccountInfo> {
        self.authorize(&token)?;
        let account = parse_account(&account)?;
        self.context
            .ask(|reply| RpcCommand::ChangeAccount {
                account,
                change,
                reply,
            })
            .await?
            .map_err(RpcFailure::into_error)
    }
}

#[async_trait]
impl AdminApiServer for AdminContext {
    async fn issue(
        &self,
        token: String,
        to: String,
        amount: u64,
        reference: u64,
    ) -> RpcResult<Committed> {
        self.authorize(&token)?;
        let to = parse_account(&to)?;
        if amount == 0 {
            return Err(rpc_error(
                codes::INVALID_INPUT,
                "the amount must be positive",
            ));
        }
        let height = self
            .context
            .ask(|reply| RpcCommand::Issue {
                to,
                amount,
                reference,
                reply,
            })
            .await?
            .map_err(RpcFailure::into_error)?;
        Ok(Committed { height: height.0 })
    }

    async fn freeze(&self, token: String, account: String) -> RpcResult<AccountInfo> {
        self.change(token, account, AccountChange::Freeze).await
    }

    async fn unfreeze(&self, token: String, account: String) -> RpcResult<AccountInfo> {
        self.change(token, account, AccountChange::Unfreeze).await
    }

    async fn set_limits(
        &self,
        token: String,
        account: String,
        limits: BankLimits,
    ) -> RpcResult<AccountInfo> {
        self.change(token, account, AccountChange::Limits(limits))
            .await
    }
}

/// Where and how many the servers take.
#[derive(Clone, Copy, Debug)]
pub struct Listen {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// Public connections, from everyone and from one address (the admin port takes 16).
    pub connections_max: u32,
    pub connections_per_address_max: u32,
}

/// Starts both servers, each behind [`rpc_listen::serve`]'s limits.
pub async fn start(
    context: RpcContext,
    token: SecretString,
    listen: Listen,
    refused: Counter,
) -> Result<(ServerHandle, ServerHandle), ListenError> {
    let admin_context = AdminContext {
        context: context.clone(),
        token: Arc::new(token),
    };
    let public = spawn_server(
        listen.public,
        "RPC",
        context.into_rpc().into(),
        limits(listen.connections_max, listen.connections_per_address_max),
        refused.clone(),
    )
    .await?;
    let admin = spawn_server(
        listen.admin,
        "admin RPC",
        admin_context.into_rpc().into(),
        limits(ADMIN_CONNECTIONS_MAX, ADMIN_CONNECTIONS_MAX),
        refused,
    )
    .await?;
    Ok((public, admin))
}

fn limits(total: u32, per_address: u32) -> Limits {
    Limits {
        total: total as usize,
        per_address: per_address as usize,
        first_request: FIRST_REQUEST_TIMEOUT,
        headers: HEADERS_TIMEOUT,
        body: BODY_TIMEOUT,
    }
}

/// Binds `address` and serves `methods` there until the returned handle stops it.
async fn spawn_server(
    address: SocketAddr,
    what: &'static str,
    methods: Methods,
    limits: Limits,
    refused: Counter,
) -> Result<ServerHandle, ListenError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ListenError {
            what,
            address,
            source,
        })?;
    let ping = PingConfig::new()
        .ping_interval(WS_PING_INTERVAL)
        .inactive_limit(WS_INACTIVE_LIMIT);
    let config = ServerConfig::builder()
        .max_connections(limits.total as u32)
        .max_request_body_size(REQUEST_BYTES_MAX)
        .max_response_body_size(RESPONSE_BYTES_MAX)
        .max_subscriptions_per_connection(SUBSCRIPTIONS_PER_CONNECTION_MAX)
        .set_batch_request_config(BatchRequestConfig::Limit(JSON_BATCH_MAX))
        .enable_ws_ping(ping)
        .build();
    let builder = Server::builder().set_config(config).to_service_builder();
    let (stop, handle) = stop_channel();
    tokio::spawn(rpc_listen::serve(
        listener, builder, methods, stop, limits, refused,
    ));
    Ok(handle)
}
