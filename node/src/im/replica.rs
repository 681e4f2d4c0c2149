//! The IM as one replica of a replicated identity manager (`crate::replica`). The leader
//! builds blocks as a single IM does but proposes them unsigned through raft instead of
//! signing them; every replica (the leader too) applies each committed block here: checked
//! as the next block, signed with its own key, applied to the service's state and written by
//! the writer thread with raft's applied log id in the same batch, unsynced (the raft log is
//! synced; see `Service::queue_write_with`). Replicas that do not lead build nothing and
//! send forwards on to the leader.

use std::sync::Arc;

use libp2p::PeerId;

use halfveil_consensus::builder::Origin;
use halfveil_ledger::build::Proposal;
use halfveil_ledger::{Hash32, Height, RejectCode};
use halfveil_store::{LocalRow, RocksStore, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{AdminOrigin, AdminWaiter};
use crate::protocol::Response;
use crate::replica::{
    decide, Applied, Chain, ChainError, ChainPoint, ProposeError, Proposed, Replica,
};
use crate::rpc::{codes, RpcFailure};
use crate::service::{Input, Role, Service};

/// Inputs of a replica's IM half.
#[derive(Debug)]
pub enum ReplicaInput {
    /// A committed block to apply; the state machine waits for `reply`.
    Apply {
        proposed: Box<Proposed>,
        applied: LocalRow,
        reply: oneshot::Sender<Result<Applied, ChainError>>,
    },
    /// What became of this replica's own proposal `hash`.
    Proposed {
        hash: Hash32,
        result: Result<Applied, ProposeError>,
    },
    /// A snapshot to install (`super::install`); the state machine waits for `reply`.
    Install {
        point: ChainPoint,
        applied: LocalRow,
        reply: oneshot::Sender<Result<Applied, ChainError>>,
    },
    /// Blocks fetched from another replica for the install under way.
    Fetched {
        fetched: Result<Vec<halfveil_ledger::Block>, String>,
    },
}

/// This replica's proposal waiting to be committed: what to do when it is, or is not.
#[derive(Debug)]
pub struct InFlight {
    hash: Hash32,
    transfer_ids: Vec<Hash32>,
    waiters: Vec<AdminWaiter>,
    /// What the block changes, as built: applying it once committed need not run it again.
    built: Option<(Hash32, halfveil_ledger::StateChange)>,
}

/// A replica's IM half: its raft node and what is in flight.
#[derive(Debug, Default)]
pub struct ReplicaHalf {
    pub replica: Option<Arc<Replica>>,
    pub in_flight: Option<InFlight>,
    /// Blocks applied and queued for writing: the state machine's answer once written.
    pub applying:
        std::collections::BTreeMap<Height, (Hash32, oneshot::Sender<Result<Applied, ChainError>>)>,
    /// The snapshot being installed, if any.
    pub installing: Option<super::install::Installing>,
}

/// The chain the node's replica hands committed blocks to: the service task.
#[derive(Debug)]
pub struct ServiceChain {
    inputs: mpsc::Sender<Input>,
    store: Arc<RocksStore>,
}

impl ServiceChain {
    pub fn new(inputs: mpsc::Sender<Input>, store: Arc<RocksStore>) -> ServiceChain {
        ServiceChain { inputs, store }
    }
}

impl Chain for ServiceChain {
    fn apply(&self, proposed: Proposed, applied: LocalRow) -> Result<Applied, ChainError> {
        let (reply, answer) = oneshot::channel();
        let input = ReplicaInput::Apply {
            proposed: Box::new(proposed),
            applied,
            reply,
        };
        self.inputs
            .blocking_send(Input::Replica(input))
            .map_err(|_| ChainError("the service has stopped".into()))?;
        answer
            .blocking_recv()
            .map_err(|_| ChainError("the service dropped the block".into()))?
    }

    fn record(&self, row: LocalRow) -> Result<(), ChainError> {
        self.store.local_put(&[row]).map_err(ChainError::of)
    }

    fn install(&self, point: ChainPoint, applied: LocalRow) -> Result<(), ChainError> {
        let (reply, answer) = oneshot::channel();
        let input = ReplicaInput::Install {
            point,
            applied,
            reply,
        };
        self.inputs
            .blocking_send(Input::Replica(input))
            .map_err(|_| ChainError("the service has stopped".into()))?;
        answer
            .blocking_recv()
            .map_err(|_| ChainError("the service dropped the snapshot".into()))?
            .map(|_| ())
    }

    fn point(&self) -> Result<ChainPoint, ChainError> {
        let head = self.store.head().map_err(ChainError::of)?;
        Ok(ChainPoint {
            height: head.height,
            hash: head.hash,
        })
    }
}

/// The transfer ids and the waiters of a block's ops, by origin.
pub(super) fn split_origins(included: Vec<Origin<AdminOrigin>>) -> (Vec<Hash32>, Vec<AdminWaiter>) {
    let mut transfer_ids = Vec::new();
    let mut waiters = Vec::new();
    for origin in included {
        match origin {
            Origin::Transfer(id) => transfer_ids.push(id),
            Origin::Admin(waiter) => waiters.push(waiter),
        }
    }
    (transfer_ids, waiters)
}

impl Service {
    pub async fn on_replica_input(&mut self, input: ReplicaInput) {
        match input {
            ReplicaInput::Apply {
                proposed,
                applied,
                reply,
            } => self.replica_apply(*proposed, applied, reply),
            ReplicaInput::Proposed { hash, result } => self.replica_on_proposed(hash, result).await,
            ReplicaInput::Install {
                point,
                applied,
                reply,
            } => self.replica_install(point, applied, reply),
            ReplicaInput::Fetched { fetched } => self.install_fetched(fetched).await,
        }
    }

    /// Stops this node's raft node, if it has one, after dropping what waits on the
    /// service: the raft node then lets go of the store.
    pub async fn stop_replica(&mut self) {
        if let Role::IdentityManager(im) = &mut self.role {
            im.replicated.applying.clear();
            im.replicated.installing = None;
            if let Some(replica) = im.replicated.replica.take() {
                replica.shutdown().await;
            }
        }
    }

    /// This node's raft node, if it is a replica of a replicated IM.
    pub fn im_replica(&self) -> Option<&Arc<Replica>> {
        match &self.role {
            Role::IdentityManager(im) => im.replicated.replica.as_ref(),
            Role::Bank(_) => None,
        }
    }

    /// A peer's last connection closed: if it is the raft leader this replica follows, the
    /// replica calls an election without waiting out raft's timeouts.
    pub fn im_peer_lost(&self, peer: &PeerId) {
        let Some(replica) = self.im_replica() else {
            return;
        };
        // Raft node ids are genesis replica indexes + 1.
        let lost = self.genesis.im_replica(peer).map(|index| index as u64 + 1);
        match replica.leader() {
            Some(leader) if lost == Some(leader) => {
                replica.leader_lost(leader, self.genesis.im_peer_ids.len() as u64)
            }
            _ => {}
        }
    }

    /// Whether this node may build blocks: a single IM, or the leading replica once it has
    /// applied its whole log (see `Replica::leads_caught_up`); the 10 ms tick asks again.
    pub fn im_may_build(&self) -> bool {
        match &self.role {
            Role::IdentityManager(im) => match &im.replicated.replica {
                None => true,
                Some(replica) => im.replicated.in_flight.is_none() && replica.leads_caught_up(),
            },
            Role::Bank(_) => false,
        }
    }

    /// The answer to a bank's request at a replica that does not lead.
    pub fn im_not_leading(&self) -> Option<Response> {
        let replica = self.im_replica()?;
        if replica.is_leader() {
            return None;
        }
        let leader = replica
            .leader()
            .and_then(|id| u16::try_from(id.saturating_sub(1)).ok());
        Some(Response::NotLeader { leader })
    }

    /// The operator's answer at a replica that does not lead: which one does.
    pub fn im_not_leading_failure(&self) -> Option<RpcFailure> {
        let Some(Response::NotLeader { leader }) = self.im_not_leading() else {
            return None;
        };
        let leader = leader.map_or_else(
            || "none yet".to_owned(),
            |index| format!("replica {}", index + 1),
        );
        Some(RpcFailure::new(
            codes::WRONG_ROLE,
            format!(
                "this identity manager replica does not lead (leader: {leader}); ask the leader"
            ),
        ))
    }

    /// Applies a committed block (see the module doc); the state machine hears once it is
    /// written.
    fn replica_apply(
        &mut self,
        proposed: Proposed,
        applied: LocalRow,
        reply: oneshot::Sender<Result<Applied, ChainError>>,
    ) {
        let Role::IdentityManager(im) = &mut self.role else {
            let _ = reply.send(Err(ChainError("not an identity manager".into())));
            return;
        };
        let height = proposed.header.height;
        let proposed_hash = proposed.header.hash().ok();
        let built = im
            .replicated
            .in_flight
            .as_mut()
            .filter(|flight| Some(flight.hash) == proposed_hash)
            .and_then(|flight| flight.built.take());
        let decided = decide(&self.params, &self.state, &im.validator, proposed, built);
        let (block, hash, change) = match decided {
            Ok(decided) => decided,
            Err(reason) => {
                info!(%height, %reason, "committed entry skipped");
                let store = Arc::clone(&self.store);
                tokio::task::spawn_blocking(move || {
                    let written = store.local_put(&[applied]).map_err(ChainError::of);
                    let _ = reply.send(written.map(|()| Applied::Skipped { height, reason }));
                });
                return;
            }
        };
        if let Err(error) = im.guard.check(height) {
            let _ = reply.send(Err(ChainError::of(error)));
            return;
        }
        im.guard.signed(height);
        // A transfer this replica held from a term it led is on chain now: it must never be
        // proposed again (nor refused as a replay) if this replica leads again.
        let committed: Vec<Hash32> = change.transfers.iter().map(|(id, _)| *id).collect();
        im.pool.committed(&committed);
        im.replicated.applying.insert(height, (hash, reply));
        self.state.commit(&change, hash);
        self.queue_write_with(Arc::new(block), hash, change, Some(height), vec![applied]);
    }

    /// A block this replica applied is on disk: its state machine may go on.
    pub(super) fn replica_written(&mut self, height: Height) {
        if let Role::IdentityManager(im) = &mut self.role {
            if let Some((hash, reply)) = im.replicated.applying.remove(&height) {
                let _ = reply.send(Ok(Applied::Block { height, hash }));
            }
        }
    }

    /// Proposes a built block through raft instead of signing it; one at a time.
    pub(super) fn replica_propose(
        &mut self,
        proposal: Proposal,
        included: Vec<Origin<AdminOrigin>>,
    ) {
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        let (transfer_ids, waiters) = split_origins(included);
        let (Some(replica), Ok(hash)) = (im.replicated.replica.clone(), proposal.header.hash())
        else {
            im.pool.undraft(&transfer_ids);
            return;
        };
        im.replicated.in_flight = Some(InFlight {
            hash,
            transfer_ids,
            waiters,
            built: Some((hash, proposal.change)),
        });
        im.last_block_at = Some(tokio::time::Instant::now());
        let proposed = Proposed {
            header: proposal.header,
            attestations: proposal.attestations,
            ops: proposal.ops,
        };
        let inputs = self.inputs.clone();
        let propose_seconds = self.metrics.replica_propose_seconds.clone();
        tokio::spawn(async move {
            let proposed_at = std::time::Instant::now();
            let result = replica.propose(proposed).await;
            propose_seconds.observe(proposed_at.elapsed().as_secs_f64());
            let _ = inputs
                .send(Input::Replica(ReplicaInput::Proposed { hash, result }))
                .await;
        });
    }

    /// The proposal `hash` was committed (its transfers leave the pool, its callers hear the
    /// height) or not (its transfers go back to the pool, its callers hear why). The next
    /// block waits for the tick (up to 10 ms): building at once made smaller blocks and,
    /// at 15,000/s, fell behind (docs/perf-log/round-19.md).
    async fn replica_on_proposed(&mut self, hash: Hash32, result: Result<Applied, ProposeError>) {
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        let Some(flight) = im
            .replicated
            .in_flight
            .take_if(|flight| flight.hash == hash)
        else {
            return;
        };
        let outcome = match result {
            Ok(Applied::Block { height, .. }) => {
                im.pool.committed(&flight.transfer_ids);
                Ok(height)
            }
            other => {
                warn!(
                    ?other,
                    "proposed block not committed; its transfers go back to the pool"
                );
                im.pool.undraft(&flight.transfer_ids);
                Err(not_committed(&other))
            }
        };
        for waiter in flight.waiters {
            self.answer_admin_waiter(waiter, outcome.clone()).await;
        }
    }

    /// Tells an admin op's caller its block's height, or why it has none.
    pub(super) async fn answer_admin_waiter(
        &mut self,
        waiter: AdminWaiter,
        outcome: Result<Height, String>,
    ) {
        match (waiter, outcome) {
            (AdminWaiter::Rpc(reply), outcome) => {
                let _ = reply.send(outcome.map_err(|why| RpcFailure::new(codes::REFUSED, why)));
            }
            (AdminWaiter::Peer(channel, account), Ok(height)) => {
                self.net
                    .respond(channel, Response::Opened { account, height })
                    .await;
            }
            (AdminWaiter::Peer(channel, _), Err(message)) => {
                let response = Response::Error {
                    code: RejectCode::Overloaded,
                    message,
                };
                self.net.respond(channel, response).await;
            }
        }
    }
}

/// Why a proposed block did not commit, for the operator who asked for its op.
fn not_committed(result: &Result<Applied, ProposeError>) -> String {
    match result {
        Err(ProposeError::Timeout(limit)) => format!(
            "no majority of the replicas committed the block within {limit:?}: this replica \
             may be cut off from the others. The block commits later only if a majority \
             holds it; check before asking again"
        ),
        Err(ProposeError::NotLeader { leader }) => format!(
            "this replica stopped leading before the block committed (leader now: {})",
            leader.map_or_else(|| "unknown".to_owned(), |id| format!("replica {id}"))
        ),
        Err(ProposeError::Raft(reason)) => format!("the block was not committed: {reason}"),
        Ok(Applied::Skipped { reason, .. }) => format!("the block was skipped: {reason}"),
        Ok(Applied::Block { .. } | Applied::Nothing) => {
            "the block was not committed (nothing applied)".to_owned()
        }
    }
}
