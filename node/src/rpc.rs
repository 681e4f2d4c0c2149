//! JSON-RPC 2.0 over HTTP and WebSocket on one port (jsonrpsee): the public API (`hv_*`)
//! on `rpc.listen`, the operator API (`hvadmin_*`) on `rpc.admin_listen`, where every call
//! also needs the token from the node's `admin_token` file. Both listen on 127.0.0.1 by
//! default. One `#[rpc]` trait gives the server and the typed client the CLI uses.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde::{Deserialize, Serialize};

/// JSON-RPC error codes of halfveil (the -32000 range is the application's).
pub mod codes {
    /// The request is malformed (bad hex, bad account id, oversized).
    pub const INVALID_INPUT: i32 = -32001;
    /// The envelope does not open: the one uniform error.
    pub const ENVELOPE: i32 = -32002;
    /// This node's role does not serve the method.
    pub const WRONG_ROLE: i32 = -32003;
    /// The admin token is missing or wrong.
    pub const UNAUTHORIZED: i32 = -32004;
    /// A queue is full; retry later.
    pub const OVERLOADED: i32 = -32005;
    /// The operation was refused (frozen account, unknown account, ...).
    pub const REFUSED: i32 = -32006;
    /// Something failed inside the node.
    pub const INTERNAL: i32 = -32010;
}

pub fn rpc_error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub moniker: String,
    pub role: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub peer_id: String,
    pub height: u64,
    pub head_hash: String,
    pub peers: usize,
    pub accounts: usize,
    pub supply: u64,
    pub pool_pending: usize,
    pub halted: bool,
    /// The bank's index in genesis (account managers only).
    #[serde(default)]
    pub bank: Option<u16>,
    /// Blocks this node has verified and stored since it started.
    #[serde(default)]
    pub blocks_committed: u64,
    /// Synced database writes since it started (one per block).
    #[serde(default)]
    pub fsyncs: u64,
    /// User and system CPU seconds of the node's process (Linux; 0 elsewhere).
    #[serde(default)]
    pub cpu_seconds: f64,
    /// A replica of a replicated IM: its raft role, term, leader and log indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaStatus>,
}

/// A replica's raft state, as `hv_status` reports it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// This replica's number (genesis order, from 1).
    pub replica: u64,
    /// `leader`, `follower`, `candidate` or `learner`; `stopped` if its raft node stopped.
    pub role: String,
    pub term: u64,
    /// The replica that leads, as far as this one knows.
    pub leader: Option<u64>,
    /// The last raft log index this replica holds.
    pub last_log_index: Option<u64>,
    /// The last raft log index it applied (its blocks are written up to there).
    pub last_applied: Option<u64>,
    /// The raft log index of its last snapshot (taken or installed), if any.
    #[serde(default)]
    pub snapshot: Option<u64>,
    /// The last raft log index purged from its log: the log holds the entries after it.
    #[serde(default)]
    pub purged: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadInfo {
    pub height: u64,
    pub hash: String,
    pub time_ms: u64,
    pub state_root: String,
    pub supply: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockInfo {
    pub height: u64,
    pub hash: String,
    pub parent: String,
    pub time_ms: u64,
    pub op_root: String,
    pub state_root: String,
    pub ops: usize,
    pub transfers: usize,
    pub attestations: usize,
    /// The block in its canonical encoding, hex.
    pub raw: String,
}

pub use halfveil_consensus::bank::BankLimits;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountInfo {
    pub account: String,
    pub bank: String,
    pub balance: u64,
    pub closed: bool,
    /// The account's online transaction public key now (it changes with a rotation), hex.
    pub tx_key: String,
    /// Only from the account's own bank.
    pub frozen: Option<bool>,
    pub limits: Option<BankLimits>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum TransferStatus {
    /// Accepted and on its way; not yet in a block.
    Pending { id: String },
    /// In a block: the receipt (hex of its canonical encoding) proves it.
    Committed {
        id: String,
        height: u64,
        index: u32,
        block_hash: String,
        receipt: String,
    },
    /// Refused, with the signed reason (hex of the canonical `Rejection`).
    Rejected {
        id: String,
        by: String,
        code: String,
        detail: String,
        rejection: String,
    },
    /// This node does not know the transfer.
    Unknown { id: String },
}

impl TransferStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TransferStatus::Committed { .. } | TransferStatus::Rejected { .. }
        )
    }
}

/// The most envelopes in one `hv_submitBatch` or `hv_submitAndWatch`, and ids in one
/// `hv_subscribeFinals`.
pub const RPC_BATCH_MAX: usize = 16_384;

/// One envelope's answer in `hv_submitBatch`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Submitted {
    /// Accepted; not final yet.
    Pending {
        id: String,
    },
    Committed {
        id: String,
        height: u64,
    },
    /// Refused; `hv_transferStatus` gives the signed refusal.
    Rejected {
        id: String,
        code: String,
    },
    /// Not accepted (the uniform envelope error, an overloaded bank, ...).
    Error {
        code: i32,
        message: String,
    },
}

/// A notification of `hv_submitAndWatch`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Watched {
    /// The first: every envelope's answer, in order, as `hv_submitBatch` gives them.
    Submitted { answers: Vec<Submitted> },
    /// Then: accepted transfers that became final, as `hv_subscribeFinals` sends them.
    Finals { finals: Vec<Final> },
}

/// A transfer that became final, in `hv_subscribeFinals` and `hv_submitAndWatch`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Final {
    pub id: String,
    /// The block height when committed.
    pub height: Option<u64>,
    /// The refusal code when rejected.
    pub code: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenAccountParams {
    /// The online transaction public key, hex.
    pub tx_key: String,
    /// The transaction key's signature over the open-account message, hex.
    pub holder_signature: String,
    /// The identity record sealed to the disclosure key, hex.
    pub sealed_record: String,
    /// The identity key inside the record, hex: it travels beside it to the bank and the
    /// IM, which check its proof of possession without opening the record; neither keeps it.
    pub identity_key: String,
    /// The identity key's signature over the account's record label, hex.
    pub possession: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenedAccount {
    pub account: String,
    pub bank: String,
    pub bank_id: u16,
    /// The business key, hex: given to the holder once, kept encrypted by the bank.
    pub business_key: String,
    pub height: u64,
}

/// One auditor's signature on a disclosure order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderSignature {
    pub auditor: u16,
    /// Ed25519 over the order hash, hex.
    pub signature: String,
}

/// A holder's key rotation or account closing, signed by the account's keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleParams {
    /// The canonical encoding of the op (`RotateKey` or `CloseAccount`), hex.
    pub op: String,
}

/// An account's change committed on chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountChanged {
    pub account: String,
    pub height: u64,
}

/// A disclosure order with the auditors' signatures, to record on chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordOrderParams {
    /// The order's canonical encoding, hex.
    pub order: String,
    pub signatures: Vec<OrderSignature>,
}

/// A holder's record that it released its decryption shares of an order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordShareParams {
    /// The order's canonical encoding, hex.
    pub order: String,
    pub holder: u16,
    /// The hash of the shares as sealed to the requester, hex.
    pub sealed_hash: String,
    /// The holder's signing key over the share record's message, hex.
    pub signature: String,
}

/// The current disclosure key, as `hv_disclosureKey` gives it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DisclosureKeyInfo {
    pub epoch: u32,
    pub refresh: u32,
    pub threshold: u16,
    /// The group key, hex.
    pub group_key: String,
    /// Every adopted key (each epoch's latest, oldest first; the last is the current key
    /// unless empty, when genesis's is): each adoption's canonical encoding (the key, its
    /// holders' parties and their signatures), hex, for the caller to verify against genesis.
    pub adoptions: Vec<String>,
}

/// A disclosure key adopted on chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Adopted {
    /// The adoption's hash (what every holder signed), hex.
    pub adoption_hash: String,
    pub epoch: u32,
    pub refresh: u32,
    pub height: u64,
}

/// An order or share record committed on chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recorded {
    pub order_hash: String,
    pub height: u64,
}

/// Evidence of equivocation, as `hv_evidence` returns it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EvidenceInfo {
    pub height: u64,
    pub first_hash: String,
    pub second_hash: String,
    /// The canonical encoding of both signed headers (hex), checkable against genesis.
    pub raw: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Committed {
    pub height: u64,
}

#[rpc(server, client, namespace = "hv")]
pub trait Api {
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<NodeStatus>;

    /// The genesis file's text.
    #[method(name = "genesis")]
    async fn genesis(&self) -> RpcResult<String>;

    #[method(name = "head")]
    async fn head(&self) -> RpcResult<HeadInfo>;

    #[method(name = "block")]
    async fn block(&self, height: u64) -> RpcResult<Option<BlockInfo>>;

    #[method(name = "account")]
    async fn account(&self, account: String) -> RpcResult<Option<AccountInfo>>;

    /// A bank takes a payer's envelope (hex); returns the transfer's status.
    #[method(name = "submit")]
    async fn submit(&self, envelope: String) -> RpcResult<TransferStatus>;

    #[method(name = "transferStatus")]
    async fn transfer_status(&self, id: String) -> RpcResult<TransferStatus>;

    /// Sends the transfer's status once it is final (committed or rejected).
    #[subscription(name = "subscribeTransfer" => "transfer", unsubscribe = "unsubscribeTransfer", item = TransferStatus)]
    async fn subscribe_transfer(&self, id: String) -> SubscriptionResult;

    /// Many envelopes (hex) at once, each answered on its own, in order.
    #[method(name = "submitBatch")]
    async fn submit_batch(&self, envelopes: Vec<String>) -> RpcResult<Vec<Submitted>>;

    /// Sends the given transfers' outcomes in batches as they become final; ends when all
    /// are final.
    #[subscription(name = "subscribeFinals" => "finals", unsubscribe = "unsubscribeFinals", item = Vec<Final>)]
    async fn subscribe_finals(&self, ids: Vec<String>) -> SubscriptionResult;

    /// `hv_submitBatch` and `hv_subscribeFinals` in one call: the first notification
    /// answers every envelope, in order; the next ones bring the accepted transfers'
    /// outcomes as they become final, in batches; ends when all are final. One round trip
    /// instead of two, and the accepted ids need not be sent back.
    #[subscription(name = "submitAndWatch" => "watched", unsubscribe = "unsubscribeWatched", item = Watched)]
    async fn submit_and_watch(&self, envelopes: Vec<String>) -> SubscriptionResult;

    /// Evidence of equivocation this node holds (two IM-signed headers at one height).
    #[method(name = "evidence")]
    async fn evidence(&self) -> RpcResult<Vec<EvidenceInfo>>;

    /// The identity manager records a disclosure order signed by a quorum of auditors;
    /// holders make their shares only for a recorded order.
    #[method(name = "recordOrder")]
    async fn record_order(&self, params: RecordOrderParams) -> RpcResult<Recorded>;

    /// The identity manager records that a holder released its shares of an order.
    #[method(name = "recordShare")]
    async fn record_share(&self, params: RecordShareParams) -> RpcResult<Recorded>;

    /// The disclosure key payers seal to now, with its adoption for them to verify.
    #[method(name = "disclosureKey")]
    async fn disclosure_key(&self) -> RpcResult<DisclosureKeyInfo>;

    /// The identity manager adopts a new disclosure key (a refresh or a new epoch) signed by
    /// every holder: `adoption` is the op's canonical encoding, hex. Answers once committed.
    #[method(name = "adoptDisclosureKey")]
    async fn adopt_disclosure_key(&self, adoption: String) -> RpcResult<Adopted>;

    /// A bank relays its payer's key rotation or account closing to the IM; answers once the
    /// op is committed.
    #[method(name = "submitLifecycle")]
    async fn submit_lifecycle(&self, params: LifecycleParams) -> RpcResult<AccountChanged>;

    /// A bank opens an account for a payer (relaying the sealed identity record to the IM).
    #[method(name = "openAccount")]
    async fn open_account(&self, params: OpenAccountParams) -> RpcResult<OpenedAccount>;
}

#[rpc(server, client, namespace = "hvadmin")]
pub trait AdminApi {
    /// The IM creates currency into an account; returns once it is committed.
    #[method(name = "issue")]
    async fn issue(
        &self,
        token: String,
        to: String,
        amount: u64,
        reference: u64,
    ) -> RpcResult<Committed>;

    #[method(name = "freeze")]
    async fn freeze(&self, token: String, account: String) -> RpcResult<AccountInfo>;

    #[method(name = "unfreeze")]
    async fn unfreeze(&self, token: String, account: String) -> RpcResult<AccountInfo>;

    #[method(name = "setLimits")]
    async fn set_limits(
        &self,
        token: String,
        account: String,
        limits: BankLimits,
    ) -> RpcResult<AccountInfo>;
}

/// A refusal the service returns to the RPC layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcFailure {
    pub code: i32,
    pub message: String,
}

impl RpcFailure {
    pub fn new(code: i32, message: impl Into<String>) -> RpcFailure {
        RpcFailure {
            code,
            message: message.into(),
        }
    }
}

impl From<RpcFailure> for ErrorObjectOwned {
    fn from(failure: RpcFailure) -> ErrorObjectOwned {
        rpc_error(failure.code, failure.message)
    }
}
