//! The node's one stateful task: it owns the chain state and the role's state (the IM's
//! pool, or a bank's accounts and in-flight transfers) and reacts to [`Input`]s from the
//! network, the RPC server, the writer thread and its own timer. Heavy work runs off the
//! executor (signature batches in `spawn_blocking`, writes on the writer thread); a block's
//! other rules are checked on the task itself; store reads for peers run in spawned tasks.
//!
//! The role-specific halves are in [`crate::im`] and [`crate::bank`].

use std::sync::Arc;
use std::time::Duration;

use crate::network::Reply;
use halfveil_consensus::sync::{BlockSync, HeadPoll};
use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::{AccountId, Block, ChainParams, Hash32, Height, State, StateChange};
use halfveil_store::{RocksStore, Store};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::bank::BankRole;
use crate::im::ImRole;
use crate::metrics::Metrics;
use crate::network::{BlockVerdict, NetEvent, NetworkHandle};
use crate::protocol::{Request, Response, SYNC_BLOCKS_MAX};
use crate::rpc::{AccountInfo, BankLimits, NodeStatus, OpenAccountParams, OpenedAccount};
use crate::writer::{Stored, WriteJob, Writer, WRITE_QUEUE_MAX};

/// Bound of the service's input channel.
pub const INPUT_CAPACITY: usize = 4096;
/// How often the timer fires: the longest a ready batch waits for a block or a forward.
pub const TICK: Duration = Duration::from_millis(10);

pub use halfveil_consensus::TransferState;

/// A change an operator makes to a bank account.
#[derive(Clone, Copy, Debug)]
pub enum AccountChange {
    Freeze,
    Unfreeze,
    Limits(BankLimits),
}

/// Requests from the RPC server.
#[derive(Debug)]
pub enum RpcCommand {
    Status(oneshot::Sender<NodeStatus>),
    Account(AccountId, oneshot::Sender<Option<AccountInfo>>),
    Submit(
        Vec<u8>,
        oneshot::Sender<Result<(Hash32, TransferState), crate::rpc::RpcFailure>>,
    ),
    SubmitBatch(
        Vec<Vec<u8>>,
        oneshot::Sender<Vec<Result<(Hash32, TransferState), crate::rpc::RpcFailure>>>,
    ),
    TransferState(Hash32, oneshot::Sender<TransferState>),
    WaitFinal(Hash32, oneshot::Sender<TransferState>),
    /// [`RpcCommand::WaitFinal`] for many transfers at once.
    WaitFinals(Vec<(Hash32, oneshot::Sender<TransferState>)>),
    OpenAccount(
        OpenAccountParams,
        oneshot::Sender<Result<OpenedAccount, crate::rpc::RpcFailure>>,
    ),
    Issue {
        to: AccountId,
        amount: u64,
        reference: u64,
        reply: oneshot::Sender<Result<Height, crate::rpc::RpcFailure>>,
    },
    Lifecycle {
        op: halfveil_ledger::Op,
        reply: oneshot::Sender<Result<(AccountId, Height), crate::rpc::RpcFailure>>,
    },
    RecordOrder {
        op: halfveil_ledger::OrderOp,
        reply: oneshot::Sender<Result<Height, crate::rpc::RpcFailure>>,
    },
    RecordShare {
        record: halfveil_ledger::ShareRecord,
        reply: oneshot::Sender<Result<Height, crate::rpc::RpcFailure>>,
    },
    AdoptKey {
        adoption: halfveil_ledger::disclosure_keys::KeyAdoption,
        reply: oneshot::Sender<Result<Height, crate::rpc::RpcFailure>>,
    },
    ChangeAccount {
        account: AccountId,
        change: AccountChange,
        reply: oneshot::Sender<Result<AccountInfo, crate::rpc::RpcFailure>>,
    },
}

/// Why asking a peer for blocks failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Request(#[from] crate::network::RequestError),
    /// The peer answered the status request with something else.
    #[error("unexpected answer to a status request")]
    UnexpectedStatus,
}

/// Everything the service reacts to.
#[derive(Debug)]
pub enum Input {
    Net(NetEvent),
    Rpc(RpcCommand),
    Written {
        block: Arc<Block>,
        result: Result<Stored, crate::writer::WriterError>,
    },
    Tick,
    /// A wake-up the role asked for (the IM: a block it holds back for spacing).
    Wake,
    Im(crate::im::ImInput),
    /// A replica's raft node: a committed block to apply, or a proposal's fate.
    Replica(crate::im::ReplicaInput),
    Bank(crate::bank::BankInput),
    Synced {
        peer: PeerId,
        result: Result<Response, SyncError>,
    },
    /// Stop after the blocks being written are on disk.
    Shutdown,
}

impl From<NetEvent> for Input {
    fn from(event: NetEvent) -> Self {
        Input::Net(event)
    }
}

/// The role's half of the state.
#[derive(Debug)]
pub enum Role {
    IdentityManager(Box<ImRole>),
    Bank(Box<BankRole>),
}

/// The service (see the module doc).
#[derive(Debug)]
pub struct Service {
    pub moniker: String,
    pub genesis: Arc<ValidGenesis>,
    pub params: ChainParams,
    pub state: State,
    pub store: Arc<RocksStore>,
    pub writer: Writer,
    pub net: NetworkHandle,
    pub inputs: mpsc::Sender<Input>,
    pub metrics: Metrics,
    pub own_peer: PeerId,
    pub peers: usize,
    pub writes_in_flight: usize,
    pub waiters: crate::waiters::Waiters,
    pub halted: bool,
    pub stopping: bool,
    /// Which IM replica this node asks (an index into genesis's replicas).
    pub im_target: usize,
    pub role: Role,
    /// Catching up: one peer asked at a time, blocks ahead of the head held meanwhile.
    pub sync: BlockSync<Arc<Block>>,
    /// A follower asks an IM replica for its head when its own stands still.
    pub head_poll: HeadPoll,
}

impl Service {
    /// The IM replica this node asks: a single IM's only one; of a replicated IM, the
    /// leader as last learned (see [`Service::im_not_leader`]).
    pub fn im_peer(&self) -> PeerId {
        let replicas = &self.genesis.im_peer_ids;
        // Genesis validation requires at least one replica.
        replicas
            .get(self.im_target % replicas.len().max(1))
            .copied()
            .unwrap_or_else(PeerId::random)
    }

    /// Whether `peer` is one of the IM's replicas.
    pub fn is_im_peer(&self, peer: &PeerId) -> bool {
        self.genesis.im_replica(peer).is_some()
    }

    /// The replica asked answered that it does not lead: ask `leader` from now on, or the
    /// next replica if it named none.
    pub fn im_not_leader(&mut self, leader: Option<u16>) {
        let count = self.genesis.im_peer_ids.len();
        if count < 2 {
            return;
        }
        let before = self.im_target;
        self.im_target = match leader {
            Some(leader) => usize::from(leader) % count,
            None => (self.im_target + 1) % count,
        };
        if self.im_target != before {
            tracing::info!(
                replica = self.im_target + 1,
                "asking another identity manager replica"
            );
        }
    }

    pub fn bank_peers(&self) -> &[PeerId] {
        &self.genesis.bank_peer_ids
    }

    /// Runs until the input channel closes.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.metrics
            .head_height
            .set(i64::try_from(self.state.height.0).unwrap_or(i64::MAX));
        self.metrics.ready.set(i64::from(!self.halted));
        loop {
            let wake_at = self.im_wake_at();
            let input = tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => input,
                    None => break,
                },
                _ = tick.tick() => Input::Tick,
                _ = tokio::time::sleep_until(wake_at.unwrap_or_else(tokio::time::Instant::now)),
                    if wake_at.is_some() => Input::Wake,
            };
            self.handle(input).await;
            if self.stopping && self.writes_in_flight == 0 {
                break;
            }
        }
        // Inputs still queued (a replica's block to apply among them) are dropped with their
        // reply channels, so nothing waits on this task while the raft node stops.
        inputs.close();
        while inputs.try_recv().is_ok() {}
        self.stop_replica().await;
        info!("service stopped");
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::Net(event) => self.on_net(event).await,
            Input::Rpc(command) => self.on_rpc(command).await,
            Input::Written { block, result } => self.on_written(block, result).await,
            Input::Tick => self.on_tick().await,
            Input::Wake => self.im_wake(),
            Input::Im(input) => self.on_im_input(input).await,
            Input::Replica(input) => self.on_replica_input(input).await,
            Input::Bank(input) => self.on_bank_input(input).await,
            Input::Synced { peer, result } => self.on_synced(peer, result).await,
            Input::Shutdown => {
                self.stopping = true;
                self.metrics.ready.set(0);
            }
        }
    }

    async fn on_tick(&mut self) {
        if self.stopping {
            return;
        }
        self.waiters.sweep_when_due(std::time::Instant::now());
        self.metrics
            .rpc_waiters
            .set(i64::try_from(self.waiters.len()).unwrap_or(i64::MAX));
        match self.role {
            Role::IdentityManager(_) => self.im_tick().await,
            Role::Bank(_) => {
                self.poll_head();
                self.bank_tick().await
            }
        }
    }

    /// A bank whose head stood still for a while asks an IM replica for its head, in case
    /// it missed a gossiped block (see [`HeadPoll`]).
    fn poll_head(&mut self) {
        let replicas = &self.genesis.im_peer_ids;
        let syncing = self.sync.is_running();
        let now = std::time::Instant::now();
        let due = self
            .head_poll
            .due(self.state.height, now, syncing, replicas.len());
        if let Some(peer) = due.and_then(|index| replicas.get(index)).copied() {
            self.start_sync(peer);
        }
    }

    async fn on_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected(peer) => {
                self.peers += 1;
                // Any peer can serve blocks: each is verified in full, so a bank catches up
                // from another bank while the IM is away.
                if !matches!(self.role, Role::IdentityManager(_)) {
                    self.start_sync(peer);
                }
            }
            NetEvent::Disconnected(peer) => {
                self.peers = self.peers.saturating_sub(1);
                self.im_peer_lost(&peer);
            }
            NetEvent::Block {
                peer,
                message,
                bytes,
            } => {
                let verdict = self.on_gossip_block(peer, bytes).await;
                self.metrics
                    .gossip_blocks
                    .get_or_create(&[("verdict", verdict.label())])
                    .inc();
                self.net.report_block(message, peer, verdict);
            }
            NetEvent::Request {
                peer,
                request,
                channel,
            } => self.on_request(peer, *request, channel).await,
        }
    }

    async fn on_request(&mut self, peer: PeerId, request: Request, channel: Reply) {
        match request {
            Request::Blocks { from, to } => self.serve_blocks(from, to, channel),
            Request::Status => {
                let response = Response::Status {
                    height: self.state.height,
                    hash: self.state.head_hash,
                };
                self.net.respond(channel, response).await;
            }
            Request::Forward(batch) => self.im_on_forward(peer, batch, channel).await,
            Request::OpenAccount(open) => self.im_on_open_account(peer, open, channel).await,
            Request::Lifecycle(op) => self.im_on_lifecycle(peer, *op, channel).await,
            Request::Approve(items) => self.bank_on_approve(peer, items, channel).await,
            Request::Rejected(rejections) => self.bank_on_rejected(peer, rejections, channel).await,
        }
    }

    fn serve_blocks(&self, from: Height, to: Height, channel: Reply) {
        let store = Arc::clone(&self.store);
        let net = self.net.clone();
        let head = self.state.height;
        tokio::spawn(async move {
            let last = Height(
                to.0.min(head.0)
                    .min(from.0.saturating_add(SYNC_BLOCKS_MAX - 1)),
            );
            let read = tokio::task::spawn_blocking(move || {
                let mut blocks = Vec::new();
                let mut height = from;
                while height <= last && height.0 > 0 {
                    match store.block(height) {
                        Ok(Some(block)) => blocks.push(block),
                        Ok(None) => break,
                        Err(error) => return Err(error.to_string()),
                    }
                    height = Height(height.0 + 1);
                }
                Ok(blocks)
            })
            .await;
            let response = match read {
                Ok(Ok(blocks)) => Response::Blocks(blocks),
                Ok(Err(message)) => {
                    warn!(%message, "cannot read blocks for a peer");
                    Response::Error {
                        code: halfveil_ledger::RejectCode::Invalid,
                        message: "cannot read blocks".into(),
                    }
                }
                Err(_) => Response::Error {
                    code: halfveil_ledger::RejectCode::Invalid,
                    message: "cannot read blocks".into(),
                },
            };
            net.respond(channel, response).await;
        });
    }

    /// Asks `peer` for its head, then for the blocks this node lacks (one sync at a time).
    pub fn start_sync(&mut self, peer: PeerId) {
        if self.halted || !self.sync.start() {
            return;
        }
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        let head = self.state.height;
        tokio::spawn(async move {
            let result = match net.request(peer, Request::Status).await {
                Ok(Response::Status { height, .. }) => {
                    match halfveil_consensus::sync::range(head, height, SYNC_BLOCKS_MAX) {
                        Some((from, to)) => net
                            .request(peer, Request::Blocks { from, to })
                            .await
                            .map_err(SyncError::from),
                        None => Ok(Response::Blocks(Vec::new())),
                    }
                }
                Ok(_) => Err(SyncError::UnexpectedStatus),
                Err(error) => Err(error.into()),
            };
            let _ = inputs.send(Input::Synced { peer, result }).await;
        });
    }

    /// A sync ended: apply what continues the head, and ask again while the peer had more.
    async fn on_synced(&mut self, peer: PeerId, result: Result<Response, SyncError>) {
        let fetched = match result {
            Ok(Response::Blocks(blocks)) => Some(blocks.into_iter().map(Arc::new).collect()),
            Ok(_) => {
                warn!(%peer, "unexpected answer to a block request");
                None
            }
            Err(error) => {
                warn!(%peer, %error, "sync failed; retrying on the next block");
                None
            }
        };
        let catchup = self.sync.on_fetched(self.state.height, fetched);
        for block in catchup.apply {
            if !self.accept_block(block, None).await {
                return;
            }
        }
        if catchup.ask_again {
            self.start_sync(peer);
        }
    }

    /// A block from gossip: apply it, queue it behind a sync, or find it known. The verdict
    /// tells gossip whether to relay it.
    async fn on_gossip_block(&mut self, peer: PeerId, bytes: Vec<u8>) -> BlockVerdict {
        if matches!(self.role, Role::IdentityManager(_)) || self.halted {
            return BlockVerdict::Drop;
        }
        let block = match Block::decode(&bytes) {
            Ok(block) => Arc::new(block),
            Err(error) => {
                warn!(%peer, %error, "undecodable block refused");
                return BlockVerdict::Malformed;
            }
        };
        let Ok(hash) = block.header().hash() else {
            return BlockVerdict::Malformed;
        };
        debug!(
            height = %block.height(),
            head = %self.state.height,
            %peer,
            signer = ?self.params.validator_keys.iter().position(|key| *key == block.signed.signer),
            lag_ms = crate::clock::now_ms().0.saturating_sub(block.signed.header.time.0),
            "gossiped block"
        );
        let stored = if block.height() == self.state.height {
            // The head's hash is in memory; no need to read the block back.
            Some(self.state.head_hash)
        } else if block.height() < self.state.height {
            self.stored_hash(block.height()).await
        } else {
            None
        };
        match halfveil_consensus::follower::decide(self.state.height, block.height(), &hash, stored)
        {
            halfveil_consensus::follower::Decision::Apply => {
                if self.accept_block(block, Some(bytes)).await {
                    BlockVerdict::Relay
                } else {
                    BlockVerdict::Invalid
                }
            }
            halfveil_consensus::follower::Decision::Known => BlockVerdict::Drop,
            halfveil_consensus::follower::Decision::Fetch { .. } => {
                self.sync.hold(block);
                // The peer that relayed the block has the ones before it.
                self.start_sync(peer);
                BlockVerdict::Drop
            }
            halfveil_consensus::follower::Decision::Conflict { stored } => {
                if self.on_conflict(block, hash, stored).await {
                    BlockVerdict::Drop
                } else {
                    BlockVerdict::Invalid
                }
            }
        }
    }

    async fn stored_hash(&self, height: Height) -> Option<Hash32> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            store
                .block(height)
                .ok()
                .flatten()
                .and_then(|block| block.header().hash().ok())
        })
        .await
        .ok()
        .flatten()
    }

    /// Two IM-signed blocks at one height: keep both as evidence and stop following.
    /// Returns false if the conflicting block is not even signed by an IM replica key (an
    /// invalid block, not evidence).
    async fn on_conflict(&mut self, block: Arc<Block>, hash: Hash32, stored: Hash32) -> bool {
        let signer = &block.signed.signer;
        let signed = self.params.is_validator(signer)
            && halfveil_ledger::crypto::verify(signer, &hash, &block.signed.signature).is_ok();
        if !signed {
            warn!(height = %block.height(), "conflicting block with a bad signature ignored");
            return false;
        }
        error!(height = %block.height(), %hash, %stored, "EQUIVOCATION: the identity manager signed two blocks at one height; stopped following");
        self.halted = true;
        self.metrics.ready.set(0);
        self.metrics.equivocations.inc();
        let store = Arc::clone(&self.store);
        let height = block.height();
        let saved = tokio::task::spawn_blocking(move || {
            let first =
                store
                    .block(height)?
                    .ok_or_else(|| halfveil_store::StoreError::Corrupt {
                        reason: format!("block {height} is missing"),
                    })?;
            let evidence = crate::evidence::Evidence::new(first.signed, block.signed.clone());
            store.local_put(&[evidence.row()?])
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            error!(%height, "cannot store the equivocation evidence");
        }
        true
    }

    /// Verifies a block fully and, if valid, applies it in memory and queues its write.
    /// Returns false if the block is invalid.
    ///
    /// The rules are checked here on the service task (hash maps and hashing, no awaits);
    /// the block's signatures, the heavy part, are verified on the blocking pool while the
    /// runtime's worker serves the network and RPC. This replaced `block_in_place`, which
    /// handed the worker to another thread and back for every block: at 13,000/s that cost
    /// 4-6 % more CPU and 3-5 ms more p50 than checking in place.
    /// `encoded` is the block's canonical bytes when they came with it (gossip), so the
    /// writer stores them instead of encoding the block again.
    pub async fn accept_block(&mut self, block: Arc<Block>, encoded: Option<Vec<u8>>) -> bool {
        self.accept_block_with(block, encoded, Vec::new()).await
    }

    /// [`Service::accept_block`], writing `local` rows in the block's batch (an IM replica
    /// installing a snapshot: raft's applied log id). An IM's pool forgets the block's
    /// transfers: they must never be proposed again.
    pub async fn accept_block_with(
        &mut self,
        block: Arc<Block>,
        encoded: Option<Vec<u8>>,
        local: Vec<halfveil_store::LocalRow>,
    ) -> bool {
        let ahead_ms = block
            .signed
            .header
            .time
            .0
            .saturating_sub(crate::clock::now_ms().0);
        if ahead_ms > self.params.limits.block_time_ahead_ms_max {
            // Not applied now (it would expire transfers before their time); the block is
            // asked for again once this node's clock has caught up.
            warn!(height = %block.height(), ahead_ms, "block time too far ahead of this node's clock; refused for now");
            self.metrics.blocks_ahead.inc();
            return false;
        }
        let (change, signatures) =
            match halfveil_ledger::apply_deferred(&self.params, &self.state, &block) {
                Ok(applied) => applied,
                Err(error) => {
                    warn!(%error, "invalid block refused");
                    return false;
                }
            };
        let hash = signatures.block_hash();
        let verified = tokio::task::spawn_blocking(move || signatures.verify())
            .await
            .unwrap_or_else(|_| {
                Err(halfveil_ledger::ApplyError {
                    height: block.height(),
                    op: None,
                    violation: halfveil_ledger::Violation::BadBlockSignature,
                })
            });
        if let Err(error) = verified {
            warn!(%error, "invalid block refused");
            return false;
        }
        if let Role::IdentityManager(im) = &mut self.role {
            let committed: Vec<Hash32> = change.transfers.iter().map(|(id, _)| *id).collect();
            im.pool.committed(&committed);
        }
        self.state.commit(&change, hash);
        self.submit_write(WriteJob {
            block,
            encoded,
            hash,
            change,
            last_signed: None,
            local,
            synced: true,
        });
        true
    }

    /// Hands a block to the writer; its `Written` input comes back after the fsync, sent by
    /// the writer thread itself.
    pub fn queue_write(
        &mut self,
        block: Arc<Block>,
        encoded: Option<Vec<u8>>,
        hash: Hash32,
        change: StateChange,
        last_signed: Option<Height>,
    ) {
        let job = WriteJob {
            block,
            encoded,
            hash,
            change,
            last_signed,
            local: Vec::new(),
            synced: true,
        };
        self.submit_write(job);
    }

    /// [`Service::queue_write`] of a block a replica applied from its raft log, with
    /// `local` rows (raft's applied log id) in the same batch. The write does not wait for
    /// the disk: the raft log, synced on a majority before the block was committed, makes
    /// it durable, and a crash that loses the write applies the block again from the log
    /// (`Store::commit_unsynced`); its `Written` input comes once it is in the store.
    pub fn queue_write_with(
        &mut self,
        block: Arc<Block>,
        hash: Hash32,
        change: StateChange,
        last_signed: Option<Height>,
        local: Vec<halfveil_store::LocalRow>,
    ) {
        let job = WriteJob {
            block,
            encoded: None,
            hash,
            change,
            last_signed,
            local,
            synced: false,
        };
        self.submit_write(job);
    }

    fn submit_write(&mut self, job: WriteJob) {
        self.writes_in_flight += 1;
        if let Err(error) = self.writer.submit(job) {
            error!(%error, "fatal: cannot write blocks");
            std::process::exit(1);
        }
    }

    pub fn can_queue_write(&self) -> bool {
        self.writes_in_flight < WRITE_QUEUE_MAX - 1
    }

    async fn on_written(
        &mut self,
        block: Arc<Block>,
        result: Result<Stored, crate::writer::WriterError>,
    ) {
        self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
        let stored = match result {
            Ok(stored) => stored,
            Err(error) => {
                // The state in memory is ahead of the disk: the only safe move is to stop and
                // restart from what is stored.
                error!(%error, "fatal: block write failed; stopping");
                std::process::exit(1);
            }
        };
        self.metrics.fsyncs.inc();
        self.metrics.blocks_committed.inc();
        self.metrics
            .block_commit_seconds
            .observe(stored.took.as_secs_f64());
        let lag_ms = crate::clock::now_ms()
            .0
            .saturating_sub(block.signed.header.time.0);
        self.metrics
            .block_lag_seconds
            .observe(lag_ms as f64 / 1000.0);
        self.metrics
            .head_height
            .set(i64::try_from(block.height().0).unwrap_or(i64::MAX));
        self.metrics
            .transfers_committed
            .inc_by(stored.transfers.len() as u64);
        for (id, index) in stored.transfers {
            let track = TransferState::Committed {
                height: block.height(),
                index,
            };
            self.resolve(id, track);
        }
        match self.role {
            Role::IdentityManager(_) => self.im_on_written(block, stored.encoded).await,
            Role::Bank(_) => self.bank_on_written(&block),
        }
    }

    /// Records a final status and wakes whoever waits for it.
    pub fn resolve(&mut self, id: Hash32, track: TransferState) {
        if let Role::Bank(bank) = &mut self.role {
            bank.core.settle(id, track.clone());
        }
        self.waiters.resolve(&id, &track);
    }

    fn track(&self, id: &Hash32) -> TransferState {
        match &self.role {
            Role::Bank(bank) => bank.core.state(id),
            Role::IdentityManager(im) => im.track(id),
        }
    }

    async fn on_rpc(&mut self, command: RpcCommand) {
        match command {
            RpcCommand::Status(reply) => {
                let _ = reply.send(self.status());
            }
            RpcCommand::Account(account, reply) => {
                let _ = reply.send(self.account_info(&account));
            }
            RpcCommand::TransferState(id, reply) => {
                let _ = reply.send(self.track(&id));
            }
            RpcCommand::WaitFinal(id, reply) => self.wait_final(id, reply),
            RpcCommand::WaitFinals(waits) => {
                for (id, reply) in waits {
                    self.wait_final(id, reply);
                }
            }
            RpcCommand::SubmitBatch(envelopes, reply) => self.bank_submit_batch(envelopes, reply),
            RpcCommand::Submit(bytes, reply) => self.bank_submit(bytes, reply),
            RpcCommand::OpenAccount(params, reply) => self.bank_open_account(params, reply).await,
            RpcCommand::Issue {
                to,
                amount,
                reference,
                reply,
            } => self.im_issue(to, amount, reference, reply),
            RpcCommand::Lifecycle { op, reply } => self.bank_lifecycle(op, reply),
            RpcCommand::RecordOrder { op, reply } => self.im_record_order(op, reply),
            RpcCommand::RecordShare { record, reply } => self.im_record_share(record, reply),
            RpcCommand::AdoptKey { adoption, reply } => self.im_adopt_key(adoption, reply),
            RpcCommand::ChangeAccount {
                account,
                change,
                reply,
            } => self.bank_change_account(account, change, reply).await,
        }
    }

    /// Answers `reply` when transfer `id` is final: now, or when it commits or is refused.
    fn wait_final(&mut self, id: Hash32, reply: oneshot::Sender<TransferState>) {
        let track = self.track(&id);
        if track.is_final() {
            let _ = reply.send(track);
            return;
        }
        self.waiters.add(id, reply);
    }

    fn status(&self) -> NodeStatus {
        let (role, pending, bank) = match &self.role {
            Role::IdentityManager(im) => ("identity-manager", im.pool.len(), None),
            Role::Bank(bank) => (
                "account-manager",
                bank.core.outbox_len(),
                Some(bank.core.id.0),
            ),
        };
        NodeStatus {
            moniker: self.moniker.clone(),
            role: role.into(),
            chain_id: self.params.chain_id.to_string(),
            genesis_hash: self.params.genesis_hash.to_hex(),
            peer_id: self.own_peer.to_string(),
            height: self.state.height.0,
            head_hash: self.state.head_hash.to_hex(),
            peers: self.peers,
            accounts: self.state.account_count(),
            supply: self.state.supply.0,
            pool_pending: pending,
            halted: self.halted,
            bank,
            blocks_committed: self.metrics.blocks_committed.get(),
            fsyncs: self.metrics.fsyncs.get(),
            cpu_seconds: crate::metrics::process_cpu_seconds().unwrap_or(0.0),
            replica: self.im_replica().map(|replica| replica.status()),
        }
    }

    pub fn account_info(&self, id: &AccountId) -> Option<AccountInfo> {
        let account = self.state.account(id)?;
        let (frozen, limits) = match &self.role {
            Role::Bank(bank) => match bank.core.account(id) {
                Some(local) => (Some(local.frozen), Some(local.limits)),
                None => (None, None),
            },
            Role::IdentityManager(_) => (None, None),
        };
        Some(AccountInfo {
            account: id.to_string(),
            bank: self
                .genesis
                .bank_name(account.bank)
                .unwrap_or("?")
                .to_owned(),
            balance: account.balance.0,
            closed: account.closed,
            tx_key: account.tx_key.to_hex(),
            frozen,
            limits,
        })
    }
}
