//! Raft between the IM replicas over libp2p: a stream protocol of its own,
//! `/halfveil/<genesis hash>/raft/1`, so votes and heartbeats never wait behind payment
//! traffic. A client keeps one stream to its target and sends one request frame, then reads
//! one response frame (the framing of `links.rs`: a 4-byte length, then the strict canonical
//! encoding, at most [`RAFT_BYTES_MAX`]). A stream that fails or times out is dropped; the
//! next request opens another. The server side answers only the replicas genesis names.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use halfveil_ledger::Hash32;
use libp2p::{PeerId, Stream, StreamProtocol};
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{
    EmptyNode, OptionalSend, Raft, RaftNetwork, RaftNetworkFactory, Snapshot, SnapshotMeta, Vote,
};
use serde::{Deserialize, Serialize};

use super::log_store::PurgeGate;
use super::{ChainPoint, ImRaft, RAFT_BYTES_MAX};
use crate::links::{encode_framed, read_framed, LinkError};

/// How soon a replica that could not be reached is tried again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The raft stream protocol of the chain `genesis_hash`.
pub fn raft_protocol(genesis_hash: &Hash32) -> StreamProtocol {
    // A genesis hash in hex is always a valid protocol name.
    StreamProtocol::try_from_owned(format!("/halfveil/{}/raft/1", genesis_hash.to_hex()))
        .unwrap_or(StreamProtocol::new("/halfveil/raft/1"))
}

/// One request on a raft stream.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<ImRaft>),
    Vote(VoteRequest<u64>),
    Snapshot {
        vote: Vote<u64>,
        meta: SnapshotMeta<u64, EmptyNode>,
        point: ChainPoint,
    },
}

/// Its answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    Append(AppendEntriesResponse<u64>),
    Vote(VoteResponse<u64>),
    Snapshot(SnapshotResponse<u64>),
    /// The raft node could not answer (it is shutting down).
    Failed(String),
}

/// Makes a client per target replica.
pub struct ReplicaNet {
    control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peers: Vec<PeerId>,
}

impl ReplicaNet {
    pub fn new(
        control: libp2p_stream::Control,
        protocol: StreamProtocol,
        peers: Vec<PeerId>,
    ) -> ReplicaNet {
        ReplicaNet {
            control,
            protocol,
            peers,
        }
    }
}

impl RaftNetworkFactory<ImRaft> for ReplicaNet {
    type Network = ReplicaClient;

    /// Connects lazily: the first request opens the stream.
    async fn new_client(&mut self, target: u64, _node: &EmptyNode) -> ReplicaClient {
        let peer = usize::try_from(target.saturating_sub(1))
            .ok()
            .and_then(|index| self.peers.get(index))
            .copied();
        ReplicaClient {
            control: self.control.clone(),
            protocol: self.protocol.clone(),
            peer,
            stream: tokio::sync::Mutex::new(None),
            buffer: Vec::new(),
        }
    }
}

/// Why one exchange failed.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("no such replica")]
    UnknownTarget,
    #[error("cannot open a raft stream: {0}")]
    Open(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("raft stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] LinkError),
    #[error("the replica answered: {0}")]
    Remote(String),
    #[error("the replica answered another request")]
    Mismatch,
}

impl ExchangeError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, EmptyNode, E> {
        match self {
            ExchangeError::UnknownTarget | ExchangeError::Open(_) => {
                RPCError::Unreachable(Unreachable::new(&self))
            }
            other => RPCError::Network(NetworkError::new(&other)),
        }
    }
}

/// A client of one target replica.
pub struct ReplicaClient {
    control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peer: Option<PeerId>,
    /// A libp2p stream is not `Sync`, which openraft asks of a client; only `&mut self`
    /// reaches it, so the mutex is never locked.
    stream: tokio::sync::Mutex<Option<Stream>>,
    buffer: Vec<u8>,
}

impl ReplicaClient {
    /// Sends `request` and reads its answer within `limit`; drops the stream on failure.
    async fn exchange(
        &mut self,
        request: &RaftRequest,
        limit: Duration,
    ) -> Result<RaftResponse, ExchangeError> {
        let result = tokio::time::timeout(limit, self.exchange_once(request)).await;
        let result = result.unwrap_or(Err(ExchangeError::Timeout(limit)));
        if result.is_err() {
            *self.stream.get_mut() = None;
        }
        result
    }

    async fn exchange_once(
        &mut self,
        request: &RaftRequest,
    ) -> Result<RaftResponse, ExchangeError> {
        let peer = self.peer.ok_or(ExchangeError::UnknownTarget)?;
        let bytes = encode_framed(request, RAFT_BYTES_MAX)?;
        let slot = self.stream.get_mut();
        let stream = match slot {
            Some(stream) => stream,
            None => {
                let opened = self
                    .control
                    .open_stream(peer, self.protocol.clone())
                    .await
                    .map_err(|error| ExchangeError::Open(error.to_string()))?;
                slot.insert(opened)
            }
        };
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        match read_framed(stream, &mut self.buffer, RAFT_BYTES_MAX).await? {
            Some(RaftResponse::Failed(reason)) => Err(ExchangeError::Remote(reason)),
            Some(response) => Ok(response),
            None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
        }
    }
}

type RpcResult<T> = Result<T, RPCError<u64, EmptyNode, RaftError<u64>>>;

impl RaftNetwork<ImRaft> for ReplicaClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ImRaft>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        let request = RaftRequest::Append(rpc);
        match self.exchange(&request, option.hard_ttl()).await {
            Ok(RaftResponse::Append(response)) => Ok(response),
            Ok(_) => Err(ExchangeError::Mismatch.into_rpc()),
            Err(error) => Err(error.into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        match self
            .exchange(&RaftRequest::Vote(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftResponse::Vote(response)) => Ok(response),
            Ok(_) => Err(ExchangeError::Mismatch.into_rpc()),
            Err(error) => Err(error.into_rpc()),
        }
    }

    /// Sends the snapshot's point (the blocks stay in the stores: the follower fetches those
    /// it lacks) and waits for the follower to install it, within openraft's
    /// `install_snapshot_timeout`.
    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<ImRaft>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<ImRaft, Fatal<u64>>> {
        let request = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            point: *snapshot.snapshot,
        };
        match self.exchange(&request, option.hard_ttl()).await {
            Ok(RaftResponse::Snapshot(response)) => Ok(response),
            Ok(_) => Err(StreamingError::Network(NetworkError::new(
                &ExchangeError::Mismatch,
            ))),
            Err(error) => Err(StreamingError::Network(NetworkError::new(&error))),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(RETRY_AFTER))
    }
}

/// Accepts the raft streams of the other replicas and answers them, one task per stream;
/// a stream from any other peer is closed unread.
pub fn serve(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peers: Vec<PeerId>,
    raft: Raft<ImRaft>,
    gate: Arc<PurgeGate>,
) -> Result<tokio::task::JoinHandle<()>, LinkError> {
    let mut incoming = control.accept(protocol).map_err(LinkError::Accept)?;
    Ok(tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            if peers.contains(&peer) {
                tokio::spawn(answer(stream, raft.clone(), Arc::clone(&gate)));
            }
        }
    }))
}

/// Answers one stream's requests in order until it ends or breaks the framing.
async fn answer(mut stream: Stream, raft: Raft<ImRaft>, gate: Arc<PurgeGate>) {
    let mut buffer = Vec::new();
    loop {
        let request = match read_framed(&mut stream, &mut buffer, RAFT_BYTES_MAX).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "raft stream dropped");
                return;
            }
        };
        let response = handle(&raft, &gate, request).await;
        let written = match encode_framed(&response, RAFT_BYTES_MAX) {
            Ok(bytes) => stream.write_all(&bytes).await.and(stream.flush().await),
            Err(error) => Err(std::io::Error::other(error.to_string())),
        };
        if written.is_err() {
            return;
        }
    }
}

async fn handle(raft: &Raft<ImRaft>, gate: &PurgeGate, request: RaftRequest) -> RaftResponse {
    let failed = |error: &dyn std::fmt::Display| RaftResponse::Failed(error.to_string());
    match request {
        RaftRequest::Append(rpc) => match raft.append_entries(rpc).await {
            Ok(response) => RaftResponse::Append(response),
            Err(error) => failed(&error),
        },
        RaftRequest::Vote(rpc) => match raft.vote(rpc).await {
            Ok(response) => RaftResponse::Vote(response),
            Err(error) => failed(&error),
        },
        RaftRequest::Snapshot { vote, meta, point } => {
            let snapshot = Snapshot {
                meta,
                snapshot: Box::new(point),
            };
            gate.open();
            let installed = raft.install_full_snapshot(vote, snapshot).await;
            if let Err(error) = gate.close(installed.is_ok()).await {
                tracing::error!(%error, "cannot purge the raft log after a snapshot");
            }
            match installed {
                Ok(response) => RaftResponse::Snapshot(response),
                Err(error) => failed(&error),
            }
        }
    }
}
