//! Three IM replicas on openraft, in one process, over real libp2p connections on
//! 127.0.0.1, each with its own RocksDB:
//! - the leader commits blocks of real ops; when it stops, another replica is elected and
//!   commits the next blocks, with no gap and no height twice; the stopped replica restarts
//!   from its folder and catches up to the same head;
//! - of two blocks proposed for one height, the second is skipped by every replica; a
//!   replica whose folder was deleted rejoins from the log;
//! - a leader cut off from the others (its peers blocked) does not commit and says so within
//!   its limit; the others elect a leader and go on; linked again, it catches up.
//!
//! Every replica holds its own signature on every block, and all their copies are one block.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::testkit::{TestAccount, TestChain};
use halfveil_ledger::{Amount, BankId, BatchAttestation, Height, Issue, Op, State};
use halfveil_node::replica::{
    Applied, LogPolicy, ProposeError, Proposed, Replica, ReplicaSetup, StoreChain,
};
use halfveil_store::{RocksStore, Store};
use libp2p::{identity::Keypair, Multiaddr, PeerId};

const REPLICAS: usize = 3;
const BLOCKS_PER_LEADER: u64 = 20;
const LIMIT: Duration = Duration::from_secs(90);

/// A replica's libp2p behaviour: raft streams, and a block list to cut it off.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct Behaviour {
    blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    stream: libp2p_stream::Behaviour,
}

/// One replica's host: its libp2p swarm (stream protocols only) on 127.0.0.1.
struct Host {
    control: libp2p_stream::Control,
    /// `true` cuts the host off from every peer (connections closed, none accepted or
    /// dialed), `false` links it again.
    cut: tokio::sync::mpsc::UnboundedSender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a swarm for `key` listening on `address`, knowing where `peers` are.
async fn host(key: &Keypair, address: &Multiaddr, peers: &[(PeerId, Multiaddr)]) -> Host {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| Behaviour {
            blocked: Default::default(),
            stream: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.listen_on(address.clone()).unwrap();
    loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { .. } = swarm.select_next_some().await {
            break;
        }
    }
    let control = swarm.behaviour().stream.new_control();
    let (cut, commands) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(run_host(swarm, peers.to_vec(), commands));
    Host { control, cut, task }
}

/// Drives the swarm: dials every peer it is not connected to, four times a second (as a
/// node dials the peers of its config), unless cut off.
async fn run_host(
    mut swarm: libp2p::Swarm<Behaviour>,
    peers: Vec<(PeerId, Multiaddr)>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<bool>,
) {
    let mut redial = tokio::time::interval(Duration::from_millis(250));
    let mut cut = false;
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            Some(command) = commands.recv() => {
                cut = command;
                for (peer, _) in &peers {
                    if cut {
                        swarm.behaviour_mut().blocked.block_peer(*peer);
                    } else {
                        swarm.behaviour_mut().blocked.unblock_peer(*peer);
                    }
                }
            }
            _ = redial.tick(), if !cut => {
                for (peer, address) in &peers {
                    if !swarm.is_connected(peer) {
                        let dial = libp2p::swarm::dial_opts::DialOpts::peer_id(*peer)
                            .addresses(vec![address.clone()])
                            .build();
                        let _ = swarm.dial(dial);
                    }
                }
            }
        }
    }
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A replica and what it runs on.
struct Node {
    replica: Replica,
    /// The state at the replica's applied head.
    state: Arc<Mutex<State>>,
    store: Arc<RocksStore>,
    host: Host,
}

struct Cluster {
    chain: TestChain,
    keys: Vec<SigningKey>,
    node_keys: Vec<Keypair>,
    dirs: Vec<tempfile::TempDir>,
    addresses: Vec<Multiaddr>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    fn new() -> Cluster {
        let mut chain = TestChain::new(19, 2, 1, 1);
        chain.seal_identity = false;
        let mut rng = rand_core::OsRng;
        let mut keys = vec![chain.validator.clone()];
        keys.extend((1..REPLICAS).map(|_| crypto::generate_signing_key(&mut rng)));
        chain.params.validator_keys = keys.iter().map(crypto::public_key).collect();
        let addresses = (0..REPLICAS)
            .map(|_| {
                format!("/ip4/127.0.0.1/tcp/{}", free_port())
                    .parse()
                    .unwrap()
            })
            .collect();
        Cluster {
            chain,
            keys,
            node_keys: (0..REPLICAS).map(|_| Keypair::generate_ed25519()).collect(),
            dirs: (0..REPLICAS)
                .map(|_| tempfile::tempdir().unwrap())
                .collect(),
            addresses,
            nodes: (0..REPLICAS).map(|_| None).collect(),
        }
    }

    fn peers(&self) -> Vec<PeerId> {
        self.node_keys
            .iter()
            .map(|key| key.public().to_peer_id())
            .collect()
    }

    /// Starts every replica at once (each forms the group).
    async fn start_all(&mut self) {
        let starts: Vec<_> = (0..REPLICAS).map(|index| self.start(index)).collect();
        for (index, node) in futures::future::join_all(starts)
            .await
            .into_iter()
            .enumerate()
        {
            self.nodes[index] = Some(node);
        }
    }

    /// Starts replica `index` on its folder and address.
    async fn start(&self, index: usize) -> Node {
        let peers = self.peers();
        let others: Vec<(PeerId, Multiaddr)> = peers
            .iter()
            .copied()
            .zip(self.addresses.iter().cloned())
            .filter(|(peer, _)| *peer != peers[index])
            .collect();
        let host = host(&self.node_keys[index], &self.addresses[index], &others).await;
        let store =
            Arc::new(RocksStore::open(self.dirs[index].path(), &self.chain.params).unwrap());
        let params = Arc::new(self.chain.params.clone());
        let state = Arc::new(Mutex::new(store.load_state(&params).unwrap()));
        let chain = StoreChain::new(
            params.clone(),
            self.keys[index].clone(),
            store.clone(),
            state.clone(),
        );
        let setup = ReplicaSetup {
            id: index as u64 + 1,
            params,
            store: store.clone(),
            chain: Arc::new(chain),
            peers,
            control: host.control.clone(),
            log: LogPolicy::default(),
        };
        let replica = Replica::start(setup).await.unwrap();
        Node {
            replica,
            state,
            store,
            host,
        }
    }

    async fn stop_all(&mut self) {
        for index in 0..REPLICAS {
            self.stop(index).await;
        }
    }

    /// Stops replica `index` (its raft node and its connections).
    async fn stop(&mut self, index: usize) {
        if let Some(node) = self.nodes[index].take() {
            node.replica.shutdown().await;
        }
    }

    /// The replica every running replica agrees leads, once there is one.
    async fn leader(&self) -> usize {
        let all: Vec<usize> = (0..REPLICAS).collect();
        self.leader_among(&all).await
    }

    /// The replica the running replicas of `among` agree leads, once there is one.
    async fn leader_among(&self, among: &[usize]) -> usize {
        loop {
            let running: Vec<&Node> = among
                .iter()
                .filter_map(|index| self.nodes[*index].as_ref())
                .collect();
            let leaders: Vec<Option<u64>> =
                running.iter().map(|node| node.replica.leader()).collect();
            if let Some(Some(leader)) = leaders.first() {
                let index = (*leader - 1) as usize;
                if leaders.iter().all(|other| *other == Some(*leader))
                    && self.nodes[index].is_some()
                {
                    return index;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Builds the next block on the test chain and has replica `index` propose it; on
    /// success the test chain moves on too. Returns what the replica answered.
    async fn propose_next(
        &mut self,
        index: usize,
        (attestations, ops): (Vec<BatchAttestation>, Vec<Op>),
    ) -> Result<Applied, ProposeError> {
        let (block, change) = self.chain.build(attestations, ops).unwrap();
        let hash = block.header().hash().unwrap();
        let proposed = Proposed {
            header: block.signed.header,
            attestations: block.attestations,
            ops: block.ops,
        };
        let node = self.nodes[index].as_ref().unwrap();
        let applied = node.replica.propose(proposed).await?;
        if let Applied::Block { hash: applied, .. } = &applied {
            assert_eq!(*applied, hash);
            self.chain.state.commit(&change, hash);
        }
        Ok(applied)
    }
}

/// Block 1, through replica `index`: two accounts at each bank, funded.
async fn open_accounts(cluster: &mut Cluster, index: usize) -> Vec<TestAccount> {
    let mut accounts = Vec::new();
    let mut ops = Vec::new();
    for bank in [BankId(0), BankId(1), BankId(0), BankId(1)] {
        let (account, open) = cluster.chain.new_account(bank);
        ops.push(open);
        ops.push(Op::Issue(Issue {
            to: account.id,
            amount: Amount(1_000),
            reference: accounts.len() as u64,
        }));
        accounts.push(account);
    }
    let applied = cluster
        .propose_next(index, (Vec::new(), ops))
        .await
        .unwrap();
    assert!(
        matches!(
            applied,
            Applied::Block {
                height: Height(1),
                ..
            }
        ),
        "{applied:?}"
    );
    accounts
}

/// `count` blocks of four transfers each, through replica `index`; their heights follow on.
async fn commit_blocks(
    cluster: &mut Cluster,
    index: usize,
    accounts: &mut [TestAccount],
    count: u64,
) {
    for _ in 0..count {
        let expected = cluster.chain.state.height.next().unwrap();
        let ops = cluster.chain.transfer_block_ops(accounts, 4, 1);
        let applied = cluster.propose_next(index, ops).await.unwrap();
        assert!(
            matches!(applied, Applied::Block { height, .. } if height == expected),
            "{applied:?}"
        );
    }
}

/// The first block after the leader stopped: proposed to whichever replica leads, again
/// while the one asked says it is not the leader. Returns the new leader.
async fn first_block_after_failover(cluster: &mut Cluster, accounts: &mut [TestAccount]) -> usize {
    loop {
        let leader = cluster.leader().await;
        let expected = cluster.chain.state.height.next().unwrap();
        let ops = cluster.chain.transfer_block_ops(accounts, 4, 1);
        match cluster.propose_next(leader, ops).await {
            Ok(Applied::Block { height, .. }) if height == expected => return leader,
            Err(ProposeError::NotLeader { .. }) => {
                // Nothing was proposed; the transfers' nonces were used: take new ones.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Waits until replica `index` has applied the test chain's head, its raft node running.
async fn caught_up(cluster: &Cluster, index: usize) {
    let node = cluster.nodes[index].as_ref().unwrap();
    loop {
        let running = node.replica.metrics().borrow().running_state.clone();
        assert_eq!(running, Ok(()), "replica {}'s raft node stopped", index + 1);
        let head = {
            let state = node.state.lock().unwrap();
            (state.height, state.head_hash)
        };
        if head == (cluster.chain.state.height, cluster.chain.state.head_hash) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every replica's store holds every block, signed by that replica, and all copies of a
/// height are one block (one hash).
fn check_stores(cluster: &Cluster) {
    let head = cluster.chain.state.height;
    for height in 1..=head.0 {
        let mut hashes = Vec::new();
        for (index, node) in cluster.nodes.iter().enumerate() {
            let node = node.as_ref().unwrap();
            let block = node.store.block(Height(height)).unwrap().unwrap();
            let hash = block.header().hash().unwrap();
            assert_eq!(
                block.signed.signer,
                crypto::public_key(&cluster.keys[index])
            );
            crypto::verify(&block.signed.signer, &hash, &block.signed.signature).unwrap();
            hashes.push(hash);
        }
        assert!(
            hashes.windows(2).all(|pair| pair[0] == pair[1]),
            "height {height}"
        );
    }
    for node in cluster.nodes.iter().flatten() {
        assert_eq!(
            node.store.head().unwrap().hash,
            cluster.chain.state.head_hash
        );
        assert_eq!(node.store.last_signed().unwrap(), head);
    }
}

async fn scenario() {
    let mut cluster = Cluster::new();
    cluster.start_all().await;
    let first = cluster.leader().await;
    let mut accounts = open_accounts(&mut cluster, first).await;
    commit_blocks(&mut cluster, first, &mut accounts, BLOCKS_PER_LEADER - 1).await;
    for index in 0..REPLICAS {
        caught_up(&cluster, index).await;
    }

    cluster.stop(first).await;
    let stopped = Instant::now();
    let second = first_block_after_failover(&mut cluster, &mut accounts).await;
    let gap = stopped.elapsed();
    assert_ne!(second, first);
    println!(
        "failover: replica {} committed {:?} after replica {} stopped",
        second + 1,
        gap,
        first + 1
    );
    commit_blocks(&mut cluster, second, &mut accounts, BLOCKS_PER_LEADER - 1).await;
    assert_eq!(cluster.chain.state.height, Height(2 * BLOCKS_PER_LEADER));

    let restarted = cluster.start(first).await;
    cluster.nodes[first] = Some(restarted);
    for index in 0..REPLICAS {
        caught_up(&cluster, index).await;
    }
    check_stores(&cluster);
    cluster.stop_all().await;
}

/// Runs a scenario within [`LIMIT`], with logs as `RUST_LOG` asks.
async fn bounded(scenario: impl std::future::Future<Output = ()>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(LIMIT, scenario)
        .await
        .expect("the scenario finished within its limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_commits_after_the_leader_stops_and_the_old_one_catches_up() {
    bounded(scenario()).await;
}

/// Two blocks proposed for one height (the second built on the head the first moves): the
/// first commits, every replica skips the second, and a replica whose folder was deleted
/// rejoins from the log and signs the same chain.
async fn one_block_per_height_and_disk_loss() {
    let mut cluster = Cluster::new();
    cluster.start_all().await;
    let leader = cluster.leader().await;
    let mut accounts = open_accounts(&mut cluster, leader).await;
    let (first, change) = {
        let ops = cluster.chain.transfer_block_ops(&mut accounts, 2, 1);
        cluster.chain.build(ops.0, ops.1).unwrap()
    };
    let (second, _) = {
        let ops = cluster.chain.transfer_block_ops(&mut accounts, 3, 1);
        cluster.chain.build(ops.0, ops.1).unwrap()
    };
    assert_eq!(first.height(), second.height());
    let node = cluster.nodes[leader].as_ref().unwrap();
    let proposed = |block: &halfveil_ledger::Block| Proposed {
        header: block.signed.header.clone(),
        attestations: block.attestations.clone(),
        ops: block.ops.clone(),
    };
    let applied = node.replica.propose(proposed(&first)).await.unwrap();
    assert!(
        matches!(
            applied,
            Applied::Block {
                height: Height(2),
                ..
            }
        ),
        "{applied:?}"
    );
    let applied = node.replica.propose(proposed(&second)).await.unwrap();
    assert!(
        matches!(
            applied,
            Applied::Skipped {
                height: Height(2),
                ..
            }
        ),
        "{applied:?}"
    );
    cluster
        .chain
        .state
        .commit(&change, first.header().hash().unwrap());
    commit_blocks(&mut cluster, leader, &mut accounts, 3).await;

    let follower = (leader + 1) % REPLICAS;
    cluster.stop(follower).await;
    cluster.dirs[follower] = tempfile::tempdir().unwrap();
    let restarted = cluster.start(follower).await;
    cluster.nodes[follower] = Some(restarted);
    for index in 0..REPLICAS {
        caught_up(&cluster, index).await;
    }
    check_stores(&cluster);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_block_per_height_and_a_wiped_replica_rejoins_from_the_log() {
    bounded(one_block_per_height_and_disk_loss()).await;
}

/// The leader cut off from both others: its proposal is not committed and it says so
/// within its limit; the two others elect a leader and go on; once linked again, the old
/// leader drops what it alone held, catches up, and signs the same chain.
async fn cut_off_leader() {
    let mut cluster = Cluster::new();
    cluster.start_all().await;
    let cut = cluster.leader().await;
    let mut accounts = open_accounts(&mut cluster, cut).await;
    commit_blocks(&mut cluster, cut, &mut accounts, 3).await;
    cluster.nodes[cut]
        .as_ref()
        .unwrap()
        .host
        .cut
        .send(true)
        .unwrap();

    let ops = cluster.chain.transfer_block_ops(&mut accounts, 4, 1);
    let answer = cluster.propose_next(cut, ops).await;
    assert!(
        matches!(
            answer,
            Err(ProposeError::Timeout(_) | ProposeError::NotLeader { .. })
        ),
        "{answer:?}"
    );
    let others: Vec<usize> = (0..REPLICAS).filter(|index| *index != cut).collect();
    let leader = cluster.leader_among(&others).await;
    commit_blocks(&mut cluster, leader, &mut accounts, 3).await;

    cluster.nodes[cut]
        .as_ref()
        .unwrap()
        .host
        .cut
        .send(false)
        .unwrap();
    for index in 0..REPLICAS {
        caught_up(&cluster, index).await;
    }
    check_stores(&cluster);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_stops_committing_and_rejoins() {
    bounded(cut_off_leader()).await;
}
