//! A replicated identity manager: 3 or 5 replicas that order blocks through openraft, so
//! that one crash (two of five) stops nothing. This module is the only one that names
//! openraft (pinned `=0.9.25`); docs/design/ha-im-openraft.md says why it is built so.
//!
//! - The leader builds a block as a single IM does, but does not sign it: it proposes the
//!   unsigned block ([`Proposed`]) as one raft log entry.
//! - Once a majority holds the entry, every replica applies it in log order
//!   ([`machine`]): it checks that the block is the next one and keeps the rules, signs the
//!   header with its own validator key (the header's hash does not name the signer, so all
//!   replicas' copies are one block), and writes the block, its state and the applied log id
//!   in one batch, not synced: the raft log is, on a majority, before the entry commits,
//!   and a lost batch is applied again from it. A block is signed only after it is
//!   committed, and each key signs a height once: the store's last-signed height is written
//!   in that same batch (a lost batch is signed again alike: Ed25519 is deterministic).
//! - An entry that is not the next block (a proposal made on a head another entry moved) or
//!   that breaks a rule is skipped by every replica alike, so no two blocks are ever
//!   committed at one height.
//! - The raft log lives in the replica's RocksDB, every write synced before openraft is told
//!   ([`log_store`]); votes and appends travel on their own libp2p stream protocol
//!   ([`transport`]), so heartbeats never queue behind payment traffic.
//! - Every [`LogPolicy::snapshot_entries`] applied entries a replica takes a snapshot (its
//!   chain point and applied log id) and purges its log behind it, keeping
//!   [`LogPolicy::kept_entries`]. A follower behind the purge installs the snapshot: it
//!   fetches the blocks up to the point from the other replicas and checks them as a bank
//!   does ([`Chain::install`]).
//! - Membership comes from genesis only: replica `i` (0-based, genesis order) is raft node
//!   `i + 1`, and the group is formed once, by every replica alike, at first start.

mod chain;
mod log_store;
mod machine;
mod transport;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use halfveil_ledger::{
    BatchAttestation, BlockHeader, ChainParams, Hash32, Height, Op, BLOCK_BYTES_MAX,
};
use halfveil_store::RocksStore;
use libp2p::PeerId;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{EmptyNode, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};

pub use chain::{check_guard, decide, Chain, ChainError, StoreChain};
pub use machine::Machine;
pub use transport::{raft_protocol, RaftRequest, RaftResponse};

use log_store::{LogStore, PurgeGate};
use transport::ReplicaNet;

openraft::declare_raft_types!(
    /// The IM replicas' raft types.
    pub ImRaft:
        D = Proposed,
        R = Applied,
        NodeId = u64,
        Node = EmptyNode,
        SnapshotData = ChainPoint,
);

/// The largest raft entry or message: a block at its hard cap, and room for the rest.
pub const RAFT_BYTES_MAX: usize = BLOCK_BYTES_MAX + (1 << 20);
/// Raft timings (ms): a heartbeat every 100 ms; a follower that hears none for 400 to
/// 700 ms (after the leader's lease) stands for election.
const HEARTBEAT_MS: u64 = 100;
const ELECTION_MIN_MS: u64 = 400;
const ELECTION_MAX_MS: u64 = 700;
/// At most this many blocks in one append: blocks are large, and an append must arrive
/// within a heartbeat.
const PAYLOAD_ENTRIES_MAX: u64 = 16;
/// How long stopping the raft node may take.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How long a proposal may wait to be committed and applied: a leader cut off from the
/// majority learns it no other way.
/// How much later than the replica next after a lost leader each further replica calls an
/// election (see [`Replica::leader_lost`]).
const ELECTION_STAGGER: Duration = Duration::from_millis(150);
const PROPOSE_TIMEOUT: Duration = Duration::from_millis(2 * ELECTION_MAX_MS + 600);
/// How long a leader waits for a follower to install a snapshot (fetch and check the
/// blocks it lacks) before it sends the snapshot again.
const INSTALL_LIMIT_MS: u64 = 60_000;

/// When a replica takes a snapshot, and how much of its raft log it keeps behind one. A
/// snapshot is only a chain point (every replica keeps every block), so taking one costs
/// nothing; what it buys is the purge: the log holds at most about
/// `snapshot_entries + kept_entries` entries, a block each, instead of every block twice.
/// A follower that fell further behind than the kept entries installs the snapshot: it
/// fetches the blocks it lacks from the other replicas (`Chain::install`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPolicy {
    /// Entries applied since the last snapshot after which a replica takes another.
    pub snapshot_entries: u64,
    /// Entries kept behind the last snapshot, so that a follower a little behind (a
    /// restart) catches up from the log.
    pub kept_entries: u64,
}

impl Default for LogPolicy {
    /// 1,024 and 1,024: at 100-150 blocks/s under load, a snapshot every 7-10 s and a log
    /// of at most about 2,048 blocks, so a follower down for up to 7 s catches up from the
    /// log.
    fn default() -> LogPolicy {
        LogPolicy {
            snapshot_entries: 1024,
            kept_entries: 1024,
        }
    }
}

/// A block as the leader proposes it: everything but the signature, which each replica adds
/// once the entry is committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposed {
    pub header: BlockHeader,
    pub attestations: Vec<BatchAttestation>,
    pub ops: Vec<Op>,
}

/// What applying one committed entry did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The block at `height` with this hash is on this replica's disk, signed by it.
    Block { height: Height, hash: Hash32 },
    /// The entry was not the next block, or broke a rule: every replica skipped it.
    Skipped { height: Height, reason: String },
    /// A raft entry of its own (blank or membership).
    Nothing,
}

/// Where a replica's chain is: what a snapshot names (the blocks themselves stay in the
/// store; a replica that installs a snapshot fetches those it lacks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    pub height: Height,
    pub hash: Hash32,
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("replica {id} is not among the {count} replicas genesis names")]
    NotAReplica { id: u64, count: usize },
    #[error("raft configuration: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Fatal(String),
    #[error("store: {0}")]
    Store(#[from] halfveil_store::StoreError),
    #[error("cannot accept raft streams: {0}")]
    Accept(#[from] crate::links::LinkError),
}

/// Why a proposal did not become a block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    /// This replica is not the leader; `leader` is the one it knows of (raft node id).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// Not committed within the time a leader with a majority needs: cut off, or stepping
    /// down. The block may still commit later (a new leader keeps it) or never.
    #[error("not committed within {0:?}")]
    Timeout(Duration),
    #[error("raft: {0}")]
    Raft(String),
}

/// What a replica needs to start.
pub struct ReplicaSetup {
    /// This replica's raft node id: its genesis index + 1.
    pub id: u64,
    pub params: Arc<ChainParams>,
    /// The replica's store: its raft log and applied log id (the blocks go to `chain`).
    pub store: Arc<RocksStore>,
    /// Where committed blocks go: a [`StoreChain`], or the node's service.
    pub chain: Arc<dyn Chain>,
    /// Every replica's peer id, in genesis order.
    pub peers: Vec<PeerId>,
    pub control: libp2p_stream::Control,
    pub log: LogPolicy,
}

impl std::fmt::Debug for ReplicaSetup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReplicaSetup")
            .field("id", &self.id)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// A running replica.
pub struct Replica {
    id: u64,
    raft: Raft<ImRaft>,
    server: tokio::task::JoinHandle<()>,
    /// Whether this replica may call elections: false while a restarted replica catches up
    /// ([`hold_elections`]).
    may_elect: Arc<AtomicBool>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Replica")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Starts the raft node over the replica's store and the network's stream control, and
    /// forms the group on first start.
    pub async fn start(setup: ReplicaSetup) -> Result<Replica, ReplicaError> {
        let count = setup.peers.len();
        if setup.id == 0 || setup.id > count as u64 {
            return Err(ReplicaError::NotAReplica {
                id: setup.id,
                count,
            });
        }
        let config = Arc::new(raft_config(&setup.params.genesis_hash, setup.log)?);
        let machine = Machine::open(setup.chain, setup.store.as_ref())?;
        let protocol = raft_protocol(&setup.params.genesis_hash);
        let network = ReplicaNet::new(setup.control.clone(), protocol.clone(), setup.peers.clone());
        let gate = PurgeGate::new(Arc::clone(&setup.store));
        let raft = Raft::new(
            setup.id,
            config,
            network,
            LogStore::new(setup.store, Arc::clone(&gate)),
            machine,
        )
        .await
        .map_err(|error| ReplicaError::Fatal(error.to_string()))?;
        let server = transport::serve(
            setup.control,
            protocol,
            setup.peers.clone(),
            raft.clone(),
            gate,
        )?;
        let replica = Replica {
            id: setup.id,
            raft,
            server,
            may_elect: Arc::new(AtomicBool::new(true)),
        };
        if replica.form(count).await? {
            replica.raft.runtime_config().elect(false);
            replica.may_elect.store(false, Ordering::Relaxed);
            tokio::spawn(hold_elections(
                replica.raft.clone(),
                setup.id,
                Arc::clone(&replica.may_elect),
            ));
        }
        Ok(replica)
    }

    /// Forms the group from genesis on a replica that never joined it; a no-op after.
    /// Returns whether the replica had joined before (it restarts).
    async fn form(&self, count: usize) -> Result<bool, ReplicaError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|error| ReplicaError::Fatal(error.to_string()))?;
        if initialized {
            return Ok(true);
        }
        let members: BTreeMap<u64, EmptyNode> =
            (1..=count as u64).map(|id| (id, EmptyNode {})).collect();
        match self.raft.initialize(members).await {
            // Another replica's vote or entries reached this one first: it is formed.
            Ok(()) | Err(RaftError::APIError(_)) => Ok(false),
            Err(error) => Err(ReplicaError::Fatal(error.to_string())),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The raft node's metrics: role, term, leader, log and applied indexes.
    pub fn metrics(&self) -> tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, EmptyNode>> {
        self.raft.metrics()
    }

    /// The leader this replica knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The connection to `leader` closed (its process died, or the link broke): call an
    /// election now rather than wait out raft's lease and election timeout (together 1.1 to
    /// 1.4 s after its last heartbeat). The replica next after the leader in replica order
    /// calls at once, each one after it [`ELECTION_STAGGER`] later. The first call is often
    /// refused (the others still hold the lost leader's lease), but the next replica's call
    /// ends that lease, so each calls once more, `replicas - 1` staggers later, if no leader
    /// has appeared by then: measured, a failover then takes about 0.3 s instead of 0.6 to
    /// 0.9 s. Nothing happens while this replica may not elect, or once it leads or follows
    /// another leader. A link that broke while the leader lives costs a needless election
    /// (a new term), nothing more.
    pub fn leader_lost(&self, leader: u64, replicas: u64) {
        let Some(position) = (self.id + 2 * replicas)
            .checked_sub(leader + 1)
            .map(|offset| offset % replicas.max(1))
        else {
            return;
        };
        let stagger =
            |steps: u64| ELECTION_STAGGER.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX));
        let calls = [stagger(position), stagger(replicas - 1 + position)];
        let raft = self.raft.clone();
        let may_elect = Arc::clone(&self.may_elect);
        tokio::spawn(async move {
            let lost_at = tokio::time::Instant::now();
            for call in calls {
                tokio::time::sleep_until(lost_at + call).await;
                let lost = {
                    let metrics = raft.metrics();
                    let metrics = metrics.borrow();
                    metrics.state != openraft::ServerState::Leader
                        && metrics.current_leader.is_none_or(|known| known == leader)
                };
                if !lost || !may_elect.load(Ordering::Relaxed) {
                    return;
                }
                tracing::info!(
                    leader,
                    "the leader's connection closed; calling an election"
                );
                let _ = raft.trigger().elect().await;
            }
        });
    }

    /// Its raft state for `hv_status`.
    pub fn status(&self) -> crate::rpc::ReplicaStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let role = match (&metrics.running_state, metrics.state) {
            (Err(_), _) => "stopped",
            (Ok(()), openraft::ServerState::Leader) => "leader",
            (Ok(()), openraft::ServerState::Follower) => "follower",
            (Ok(()), openraft::ServerState::Candidate) => "candidate",
            (Ok(()), openraft::ServerState::Learner) => "learner",
            (Ok(()), openraft::ServerState::Shutdown) => "stopped",
        };
        crate::rpc::ReplicaStatus {
            replica: self.id,
            role: role.to_owned(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            last_applied: metrics.last_applied.map(|log_id| log_id.index),
            snapshot: metrics.snapshot.map(|log_id| log_id.index),
            purged: metrics.purged.map(|log_id| log_id.index),
        }
    }

    /// Whether this replica leads now (as far as it knows).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == openraft::ServerState::Leader && metrics.current_leader == Some(self.id)
    }

    /// Whether this replica leads and has applied every entry of its log: only then is the
    /// state it builds the next block on the chain's head. A new leader often holds a few
    /// entries of the last term that it has not applied yet; a block built before they are
    /// would name a height already taken and be skipped by every replica.
    pub fn leads_caught_up(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let applied = metrics.last_applied.map(|log_id| log_id.index);
        metrics.state == openraft::ServerState::Leader
            && metrics.current_leader == Some(self.id)
            && applied >= metrics.last_log_index
    }

    /// Proposes a block; returns once it is committed and applied here, or why not.
    pub async fn propose(&self, proposed: Proposed) -> Result<Applied, ProposeError> {
        let write = self.raft.client_write(proposed);
        let response = tokio::time::timeout(PROPOSE_TIMEOUT, write)
            .await
            .map_err(|_| ProposeError::Timeout(PROPOSE_TIMEOUT))?;
        match response {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(ProposeError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => Err(ProposeError::Raft(error.to_string())),
        }
    }

    /// Stops the raft node and its stream server (within [`SHUTDOWN_LIMIT`]).
    pub async fn shutdown(&self) {
        self.server.abort();
        match tokio::time::timeout(SHUTDOWN_LIMIT, self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "raft did not shut down cleanly"),
            Err(_) => tracing::warn!("raft did not shut down within {SHUTDOWN_LIMIT:?}"),
        }
    }
}

/// The longest a restarted replica holds off starting elections.
const ELECTION_HOLD_MAX: Duration = Duration::from_secs(5);

/// A restarted replica starts no election until a leader other than itself has sent it
/// entries since the restart, or for [`ELECTION_HOLD_MAX`] (so a whole group restarted at
/// once still elects; an idle leader sends no entries). It still votes. (A leader alone
/// is not enough: the vote it restarts with names the leader it knew, perhaps the one just
/// killed.) Without this, a replica restarted with a stale log times out first, raises
/// the term with a candidacy the others refuse (its log is behind), and costs the
/// up-to-date candidate another election round: measured under load, failovers that
/// overlapped such a restart took 3-4 s instead of 1.6 s. Raft's pre-vote would do the
/// same; openraft 0.9 has none. The hold does not wait for the entries to be applied:
/// under load applying trails the log by a few entries, so such a replica stayed held the
/// whole 5 s even when it held the longest log, and no other could win meanwhile
/// (failovers of 3-6 s). A leader builds only once it has applied its whole log
/// ([`Replica::leads_caught_up`]).
async fn hold_elections(raft: Raft<ImRaft>, id: u64, may_elect: Arc<AtomicBool>) {
    let held = tokio::time::Instant::now();
    let mut metrics = raft.metrics();
    let restarted_with = metrics.borrow().last_log_index;
    loop {
        let caught_up = {
            let now = metrics.borrow();
            now.current_leader.is_some_and(|leader| leader != id)
                && now.last_log_index > restarted_with
        };
        if caught_up {
            break;
        }
        let wait = tokio::time::sleep_until(held + ELECTION_HOLD_MAX);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            () = wait => break,
        }
    }
    tracing::info!(
        held_ms = held.elapsed().as_millis() as u64,
        "this replica may start elections again"
    );
    raft.runtime_config().elect(true);
    may_elect.store(true, Ordering::Relaxed);
}

/// The raft configuration of the IM replicas of the chain `genesis_hash`.
fn raft_config(genesis_hash: &Hash32, log: LogPolicy) -> Result<openraft::Config, ReplicaError> {
    openraft::Config {
        cluster_name: genesis_hash.to_hex(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_MIN_MS,
        election_timeout_max: ELECTION_MAX_MS,
        max_payload_entries: PAYLOAD_ENTRIES_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(log.snapshot_entries),
        max_in_snapshot_log_to_keep: log.kept_entries,
        install_snapshot_timeout: INSTALL_LIMIT_MS,
        ..Default::default()
    }
    .validate()
    .map_err(|error| ReplicaError::Config(error.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use halfveil_ledger::testkit::TestChain;
    use std::sync::Mutex;

    use halfveil_store::Store;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::StorageError;

    use super::*;

    /// A fresh store, log store and machine; the folder lives as long as they do.
    struct Fresh;

    impl StoreBuilder<ImRaft, LogStore, Machine, tempfile::TempDir> for Fresh {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, Machine), StorageError<u64>> {
            let dir = tempfile::tempdir().unwrap();
            let chain = TestChain::new(5, 1, 1, 1);
            let store = Arc::new(RocksStore::open(dir.path(), &chain.params).unwrap());
            let state = store.load_state(&chain.params).unwrap();
            let keeper = StoreChain::new(
                Arc::new(chain.params.clone()),
                chain.validator.clone(),
                store.clone(),
                Arc::new(Mutex::new(state)),
            );
            let machine = Machine::open(Arc::new(keeper), store.as_ref()).unwrap();
            let gate = log_store::PurgeGate::new(Arc::clone(&store));
            Ok((dir, LogStore::new(store, gate), machine))
        }
    }

    /// A purge asked while a snapshot installs waits for the install: done once it
    /// completed, dropped if it failed (a crash meanwhile leaves the log whole).
    #[tokio::test]
    async fn a_purge_asked_during_an_install_waits_for_it() {
        use openraft::storage::RaftLogStorage;
        use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
        let dir = tempfile::tempdir().unwrap();
        let chain = TestChain::new(6, 1, 1, 1);
        let store = Arc::new(RocksStore::open(dir.path(), &chain.params).unwrap());
        let id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
        let rows: Vec<(u64, Vec<u8>)> = (1..=10)
            .map(|index| {
                let entry = Entry::<ImRaft> {
                    log_id: id(index),
                    payload: EntryPayload::Blank,
                };
                (index, halfveil_ledger::codec::encode(&entry).unwrap())
            })
            .collect();
        store.raft_append(&rows).unwrap();
        let gate = log_store::PurgeGate::new(Arc::clone(&store));
        let mut log = LogStore::new(Arc::clone(&store), Arc::clone(&gate));
        let purged = |log: &mut LogStore| {
            let mut log = log.clone();
            async move { log.get_log_state().await.unwrap().last_purged_log_id }
        };

        gate.open();
        log.purge(id(5)).await.unwrap();
        assert_eq!(purged(&mut log).await, None, "held during the install");
        gate.close(true).await.unwrap();
        assert_eq!(
            purged(&mut log).await,
            Some(id(5)),
            "done once it completed"
        );

        gate.open();
        log.purge(id(8)).await.unwrap();
        gate.close(false).await.unwrap();
        assert_eq!(
            purged(&mut log).await,
            Some(id(5)),
            "dropped: the install failed"
        );

        log.purge(id(7)).await.unwrap();
        assert_eq!(
            purged(&mut log).await,
            Some(id(7)),
            "no install: done at once"
        );
    }

    /// openraft's own suite for log stores and state machines: votes, appends, truncation,
    /// purges, the log state, and the applied state and membership after a restart.
    #[test]
    fn the_log_store_and_machine_pass_openraft_suite() {
        Suite::test_all(Fresh).unwrap();
    }
}
