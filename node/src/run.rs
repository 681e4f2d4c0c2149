//! Starting a node from its home folder: config, genesis, keys, role, store, then the
//! network, the writer, the service, the RPC and metrics servers; and stopping it cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use halfveil_consensus::guard::SignGuard;
use halfveil_consensus::sync::HeadPoll;
use halfveil_consensus::{PoolLimits, TransferPool};
use halfveil_genesis::file::ValidGenesis;
use halfveil_genesis::keystore::{self, FileKind, KeystoreError};
use halfveil_genesis::{Genesis, GenesisError};
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::{BankId, ChainParams, CryptoError, State};
use halfveil_store::{IndexEpochs, RocksStore, Store, StoreError};
use jsonrpsee::server::ServerHandle;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use prometheus_client::metrics::gauge::Gauge;
use secrecy::SecretString;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::bank::{BankError, BankRole};
use crate::config::{Config, ConfigError};
use crate::im::ImRole;
use crate::metrics::{self, Metrics};
use crate::network::{self, NetworkError, NetworkSetup};
use crate::rpc_server::{self, ListenError, RpcContext};
use crate::service::{Input, Role, Service, INPUT_CAPACITY};
use crate::waiters::{WaiterCount, Waiters};
use crate::writer::{Writer, WriterError};

/// Which node this home is, from genesis and the node key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// The identity manager, or replica `replica` (genesis index) of a replicated one.
    IdentityManager {
        replica: usize,
    },
    Bank(BankId),
}

/// Why a node could not start, or stopped on its own: what failed, with the file, address
/// or task it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or folder of the home could not be read or created.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `node.lock` is held by another process.
    #[error("another halfveil node is running with the home {home}")]
    Locked { home: PathBuf },
    #[error("{path}: {source}")]
    Genesis {
        path: PathBuf,
        #[source]
        source: GenesisError,
    },
    /// A key file does not read or decrypt.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// Genesis names more banks than a bank id counts.
    #[error("too many banks")]
    TooManyBanks,
    /// The node key's peer id is neither the IM's nor a bank's in genesis.
    #[error("this node's peer id {peer} (from {node_key}) is not in genesis {genesis}")]
    NotInGenesis {
        // Boxed, as in `OtherOwner`: a peer id is 80 bytes, every `Result` would carry them.
        peer: Box<PeerId>,
        node_key: PathBuf,
        genesis: PathBuf,
    },
    #[error("{path} is not the validator key genesis names")]
    NotGenesisValidatorKey { path: PathBuf },
    /// The IM replicas' raft node could not start.
    #[error("cannot start the identity manager replica: {0}")]
    Replica(#[from] crate::replica::ReplicaError),
    #[error("{path} is not the attestation key genesis names for this bank")]
    NotGenesisBankKey { path: PathBuf },
    /// A key or seal failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The chain state or the IM's last signed height cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data folder's owner row cannot be read or written.
    #[error("{data_dir}: {source}")]
    Owner {
        data_dir: PathBuf,
        #[source]
        source: StoreError,
    },
    /// The data folder belongs to another node of the same genesis.
    #[error(
        "{data_dir} was written by node {other}, not by this node {own} ({role:?}); \
         point storage.data_dir at this node's own data folder"
    )]
    OtherOwner {
        data_dir: PathBuf,
        /// The owner's peer id, or "an unreadable peer id".
        other: String,
        own: Box<PeerId>,
        role: NodeRole,
    },
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error("p2p.listen {address:?}: {source}")]
    P2pListen {
        address: String,
        #[source]
        source: libp2p::multiaddr::Error,
    },
    #[error("p2p.peers {address:?}: {source}")]
    P2pPeer {
        address: String,
        #[source]
        source: libp2p::multiaddr::Error,
    },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error(transparent)]
    Rpc(#[from] ListenError),
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read equivocation evidence: {0}")]
    ReadEvidence(#[source] StoreError),
    /// A task the node cannot run without ended before shutdown.
    #[error("critical task {task} stopped: {how}")]
    CriticalTaskStopped { task: &'static str, how: String },
}

/// A failed read or write of `path`.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Holds `home/node.lock` for the life of the process: one node per home.
pub fn lock_home(home: &Path) -> Result<std::fs::File, StartError> {
    let path = home.join("node.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    file.try_lock().map_err(|_| StartError::Locked {
        home: home.to_path_buf(),
    })?;
    Ok(file)
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(io_error(path))
}

/// The password file `config` names, resolved against `home`, if any.
pub fn configured_password_file(home: &Path, config: &Config) -> Option<PathBuf> {
    config
        .keys
        .password_file
        .as_ref()
        .map(|path| Config::resolve(home, path))
}

/// How long shutdown waits for the last user of the database to finish.
const STORE_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the node of `home` with `config` (its effective configuration) until `shutdown`
/// resolves.
pub async fn run(
    home: &Path,
    config: Config,
    password: SecretString,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let _lock = lock_home(home)?;
    let opened = open_node(home, &config, password)?;
    let mut running = start_node(home, &config, opened).await?;
    let critical = Critical {
        service: &mut running.service_task,
        network: &mut running.network_task,
        writer: &running.writer_thread,
    };
    supervise(shutdown, critical, &running.live).await?;
    running.stop().await;
    Ok(())
}

/// Who this node is, from its home: genesis, the node key,
/// its peer id and its role.
struct Identity {
    genesis: Arc<ValidGenesis>,
    keypair: Keypair,
    own_peer: PeerId,
    role: NodeRole,
}

/// Reads genesis and the node key named in the config, and finds this node's role in
/// genesis; a node genesis does not name is refused.
fn identify(home: &Path, config: &Config) -> Result<Identity, StartError> {
    let genesis_path = Config::resolve(home, &config.keys.genesis);
    let genesis = Arc::new(
        Genesis::load(&genesis_path).map_err(|source| StartError::Genesis {
            path: genesis_path.clone(),
            source,
        })?,
    );
    let node_key_path = Config::resolve(home, &config.keys.node_key);
    let keypair = keystore::read_node_key(&node_key_path)?;
    let own_peer = keypair.public().to_peer_id();
    let role = if let Some(replica) = genesis.im_replica(&own_peer) {
        NodeRole::IdentityManager { replica }
    } else if let Some(index) = genesis
        .bank_peer_ids
        .iter()
        .position(|peer| *peer == own_peer)
    {
        NodeRole::Bank(BankId(
            u16::try_from(index).map_err(|_| StartError::TooManyBanks)?,
        ))
    } else {
        return Err(StartError::NotInGenesis {
            peer: Box::new(own_peer),
            node_key: node_key_path,
            genesis: genesis_path,
        });
    };
    Ok(Identity {
        genesis,
        keypair,
        own_peer,
        role,
    })
}

/// A node opened from its home and not started yet: who it is, its chain as stored, and
/// its role's keys and state.
struct Opened {
    identity: Identity,
    params: ChainParams,
    store: Arc<RocksStore>,
    state: State,
    role: Role,
}

/// Opens the node of `home`: its identity, its role's keys (checked against genesis), its
/// data folder and the state at the stored head.
fn open_node(home: &Path, config: &Config, password: SecretString) -> Result<Opened, StartError> {
    let identity = identify(home, config)?;
    let params = identity.genesis.params.clone();
    // Keys first: a home whose keys do not match genesis never creates or touches `data/`.
    let keys = read_role_keys(home, config, &params, identity.role, &password)?;
    drop(password);
    let store = open_store(home, config, &params, identity.own_peer, identity.role)?;
    let state = store.load_state(&params)?;
    info!(
        height = %state.height,
        accounts = state.account_count(),
        role = ?identity.role,
        "chain loaded"
    );
    let role = service_role(keys, &identity.genesis, &store, &state)?;
    Ok(Opened {
        identity,
        params,
        store,
        state,
        role,
    })
}

/// Opens the data folder the config names (created, private, if missing), and claims it for
/// this node or refuses one another node wrote.
fn open_store(
    home: &Path,
    config: &Config,
    params: &ChainParams,
    own_peer: PeerId,
    role: NodeRole,
) -> Result<Arc<RocksStore>, StartError> {
    let data_dir = Config::resolve(home, &config.storage.data_dir);
    create_private_dir(&data_dir)?;
    let store = RocksStore::open_with(&data_dir, params, index_epochs(config));
    let store = Arc::new(store?);
    check_owner(&store, &data_dir, own_peer, role)?;
    Ok(store)
}

/// The transfer index's epochs: the config's, each defaulting to the store's.
fn index_epochs(config: &Config) -> IndexEpochs {
    let defaults = IndexEpochs::default();
    IndexEpochs {
        transfers: config
            .storage
            .index_epoch_transfers
            .and_then(|bound| usize::try_from(bound).ok())
            .unwrap_or(defaults.transfers),
        heights: config
            .storage
            .index_epoch_blocks
            .unwrap_or(defaults.heights),
    }
}

/// The role's part of the service: the IM's pool and sign guard (above the last height it
/// signed, and above the head), or the bank's accounts and refusals from the store.
fn service_role(
    keys: RoleKeys,
    genesis: &ValidGenesis,
    store: &RocksStore,
    state: &State,
) -> Result<Role, StartError> {
    match keys {
        RoleKeys::IdentityManager { validator } => {
            let last_signed = store.last_signed()?;
            let pool_limits = PoolLimits {
                pending_max: crate::POOL_PENDING_MAX,
            };
            Ok(Role::IdentityManager(Box::new(ImRole::new(
                validator,
                TransferPool::new(pool_limits),
                SignGuard::new(last_signed.max(state.height)),
            ))))
        }
        RoleKeys::Bank { id, key } => {
            let name = genesis.bank_name(id).unwrap_or("bank").to_owned();
            let role = BankRole::load(id, name, key, &genesis.params, store)?;
            Ok(Role::Bank(Box::new(role)))
        }
    }
}

/// A started node: what runs, and what stopping it needs.
struct Running {
    inputs: mpsc::Sender<Input>,
    service_task: tokio::task::JoinHandle<()>,
    network_task: tokio::task::JoinHandle<()>,
    writer_thread: std::thread::JoinHandle<()>,
    public_rpc: ServerHandle,
    admin_rpc: ServerHandle,
    metrics_task: tokio::task::JoinHandle<()>,
    /// 1 while the critical tasks run (`/livez`).
    live: Gauge,
    /// The database, to see it close at shutdown.
    store_alive: Weak<RocksStore>,
}

/// The raft log policy the config sets, over the defaults.
fn log_policy(config: &Config) -> crate::replica::LogPolicy {
    let defaults = crate::replica::LogPolicy::default();
    crate::replica::LogPolicy {
        snapshot_entries: config
            .storage
            .raft_snapshot_entries
            .unwrap_or(defaults.snapshot_entries),
        kept_entries: config
            .storage
            .raft_log_kept_entries
            .unwrap_or(defaults.kept_entries),
    }
}

/// A replica of a replicated IM starts its raft node, which hands committed blocks to the
/// service (`im::ServiceChain`); a single IM or a bank starts none.
async fn start_replica(
    config: &Config,
    identity: &Identity,
    params: &ChainParams,
    store: &Arc<RocksStore>,
    inputs: &mpsc::Sender<Input>,
    net: &crate::network::NetworkHandle,
    role: &mut Role,
) -> Result<(), StartError> {
    let genesis = &identity.genesis;
    let (NodeRole::IdentityManager { replica }, Role::IdentityManager(im)) = (identity.role, role)
    else {
        return Ok(());
    };
    if !genesis.im_replicated() {
        return Ok(());
    }
    let setup = crate::replica::ReplicaSetup {
        id: replica as u64 + 1,
        params: Arc::new(params.clone()),
        store: Arc::clone(store),
        chain: Arc::new(crate::im::ServiceChain::new(
            inputs.clone(),
            Arc::clone(store),
        )),
        peers: genesis.im_peer_ids.clone(),
        control: net.streams.clone(),
        log: log_policy(config),
    };
    let started = crate::replica::Replica::start(setup).await?;
    info!(replica = replica + 1, "identity manager replica started");
    im.replicated.replica = Some(Arc::new(started));
    Ok(())
}

/// Starts the network, the writer thread, the RPC and metrics servers and the service.
async fn start_node(home: &Path, config: &Config, opened: Opened) -> Result<Running, StartError> {
    let Opened {
        identity,
        params,
        store,
        state,
        mut role,
    } = opened;
    let metrics = Metrics::new();
    let (inputs, input_queue) = mpsc::channel(INPUT_CAPACITY);
    let setup = network_setup(config, &identity.genesis, identity.keypair.clone(), &params)?;
    let (net, network_task) = network::start(setup, metrics.clone(), inputs.clone())?;
    let (writer, writer_thread) = start_writer(&store, &inputs)?;
    start_replica(config, &identity, &params, &store, &inputs, &net, &mut role).await?;
    let waiter_count = WaiterCount::default();
    let context = RpcContext {
        inputs: inputs.clone(),
        store: Arc::clone(&store),
        genesis: Arc::clone(&identity.genesis),
        waiters: waiter_count.clone(),
    };
    let (public_rpc, admin_rpc) = start_rpc(home, config, context, &metrics).await?;
    let metrics_task = metrics::serve(config.metrics.listen, metrics.clone())
        .await
        .map_err(|source| StartError::Metrics {
            address: config.metrics.listen,
            source,
        })?;
    info!(
        moniker = %config.moniker,
        peer = %identity.own_peer,
        rpc = %config.rpc.listen,
        "node started"
    );
    let store_alive = Arc::downgrade(&store);
    let live = metrics.live.clone();
    let service = Service {
        moniker: config.moniker.clone(),
        genesis: identity.genesis,
        params,
        head_poll: HeadPoll::new(state.height, std::time::Instant::now()),
        state,
        halted: holds_evidence(&store)?,
        store,
        writer,
        net,
        inputs: inputs.clone(),
        metrics,
        own_peer: identity.own_peer,
        peers: 0,
        writes_in_flight: 0,
        waiters: Waiters::new(waiter_count),
        stopping: false,
        im_target: 0,
        role,
        sync: Default::default(),
    };
    let service_task = tokio::spawn(service.run(input_queue));
    Ok(Running {
        inputs,
        service_task,
        network_task,
        writer_thread,
        public_rpc,
        admin_rpc,
        metrics_task,
        live,
        store_alive,
    })
}

/// How the swarm starts, with the node key: where it listens, whom it dials, and the
/// allow-list (every peer genesis names).
fn network_setup(
    config: &Config,
    genesis: &ValidGenesis,
    keypair: Keypair,
    params: &ChainParams,
) -> Result<NetworkSetup, StartError> {
    let listen: Multiaddr = config
        .p2p
        .listen
        .parse()
        .map_err(|source| StartError::P2pListen {
            address: config.p2p.listen.clone(),
            source,
        })?;
    let peers = config
        .p2p
        .peers
        .iter()
        .map(|peer| {
            peer.parse::<Multiaddr>()
                .map_err(|source| StartError::P2pPeer {
                    address: peer.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut allowed = genesis.bank_peer_ids.clone();
    allowed.extend(&genesis.im_peer_ids);
    Ok(NetworkSetup {
        keypair,
        listen,
        peers,
        allowed,
        genesis_hash: params.genesis_hash,
        connections_max: config.p2p.connections_max,
    })
}

/// Starts the writer thread over `store`; it hands each written block to the service.
fn start_writer(
    store: &Arc<RocksStore>,
    inputs: &mpsc::Sender<Input>,
) -> Result<(Writer, std::thread::JoinHandle<()>), WriterError> {
    let written = inputs.clone();
    Writer::start(Arc::clone(store), move |block, result| {
        // The service counts its writes in flight and drains its queue, so this waits
        // only while the service is busy; it fails only once the service has stopped.
        let _ = written.blocking_send(Input::Written { block, result });
    })
}

/// Starts the public and admin RPC servers; the admin one takes the token in the file the
/// config names.
async fn start_rpc(
    home: &Path,
    config: &Config,
    context: RpcContext,
    metrics: &Metrics,
) -> Result<(ServerHandle, ServerHandle), StartError> {
    let token_path = Config::resolve(home, &config.rpc.admin_token_file);
    let token = std::fs::read_to_string(&token_path).map_err(io_error(&token_path))?;
    let token = SecretString::from(token.trim().to_owned());
    let servers = rpc_server::start(
        context,
        token,
        rpc_server::Listen {
            public: config.rpc.listen,
            admin: config.rpc.admin_listen,
            connections_max: config.rpc.connections_max,
            connections_per_address_max: config.rpc.connections_per_address_max,
        },
        metrics.rpc_connections_refused.clone(),
    )
    .await?;
    Ok(servers)
}

/// Whether this node holds evidence of equivocation: it then does not follow the chain
/// until an operator has dealt with it (and says so).
fn holds_evidence(store: &RocksStore) -> Result<bool, StartError> {
    let halted = !store
        .local_scan(crate::evidence::EVIDENCE_PREFIX, 1)
        .map_err(StartError::ReadEvidence)?
        .is_empty();
    if halted {
        error!("this node holds evidence of equivocation (hv_evidence): it does not follow the chain until an operator has dealt with it");
    }
    Ok(halted)
}

impl Running {
    /// Stops the node: the RPC servers, then the service (which drains its queue), the
    /// network, the metrics server and the writer thread; then waits up to
    /// [`STORE_CLOSE_WAIT`] for the database to close.
    async fn stop(self) {
        info!("stopping");
        let _ = self.public_rpc.stop();
        let _ = self.admin_rpc.stop();
        if self.inputs.send(Input::Shutdown).await.is_err() {
            warn!("the service had already stopped");
        }
        let _ = self.service_task.await;
        self.network_task.abort();
        self.metrics_task.abort();
        self.public_rpc.stopped().await;
        self.admin_rpc.stopped().await;
        // The service (and with it the writer's queue) is gone: the thread writes what was
        // queued and ends. Joined, so it has fully exited (thread-locals included) before the
        // process does.
        let writer_thread = self.writer_thread;
        let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            warn!("the writer thread did not end cleanly");
        }
        // Every holder of the store (service, writer thread, RPC handlers) must let go before
        // the process exits: RocksDB closes only when the last one does, and a database still
        // open at exit can abort in its static destructors.
        let deadline = tokio::time::Instant::now() + STORE_CLOSE_WAIT;
        while self.store_alive.strong_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.store_alive.strong_count() > 0 {
            warn!("the database was still in use at shutdown");
        }
        info!("stopped");
    }
}

/// How a task that should have run until shutdown ended.
fn describe_end<T>(result: Result<T, tokio::task::JoinError>) -> String {
    match result {
        Ok(_) => "it returned".to_owned(),
        Err(error) if error.is_panic() => "it panicked".to_owned(),
        Err(error) => error.to_string(),
    }
}

/// Resolves once `thread` has ended (checked every 100 ms).
async fn thread_ended<T>(thread: &std::thread::JoinHandle<T>) {
    while !thread.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The node's critical tasks: if one ends before shutdown, the node stops.
struct Critical<'a> {
    service: &'a mut tokio::task::JoinHandle<()>,
    network: &'a mut tokio::task::JoinHandle<()>,
    writer: &'a std::thread::JoinHandle<()>,
}

/// Waits for `shutdown`; if a critical task ends first, marks the node not live and says
/// which task and how, as reth's task manager does: a node missing one of them would accept
/// work it can never finish. Everything acknowledged is already on disk.
async fn supervise(
    shutdown: impl std::future::Future<Output = ()>,
    critical: Critical<'_>,
    live: &prometheus_client::metrics::gauge::Gauge,
) -> Result<(), StartError> {
    let stopped = tokio::select! {
        () = shutdown => None,
        result = critical.service => Some(("service", describe_end(result))),
        result = critical.network => Some(("network", describe_end(result))),
        () = thread_ended(critical.writer) => Some(("writer", "the thread ended".to_owned())),
    };
    let Some((task, how)) = stopped else {
        return Ok(());
    };
    live.set(0);
    error!(task, %how, "a critical task stopped; exiting");
    Err(StartError::CriticalTaskStopped { task, how })
}

/// A role's secret keys, decrypted and checked against genesis.
enum RoleKeys {
    IdentityManager { validator: SigningKey },
    Bank { id: BankId, key: SigningKey },
}

/// Decrypts the keys `role` needs from `home` and checks each against genesis.
fn read_role_keys(
    home: &Path,
    config: &Config,
    params: &ChainParams,
    role: NodeRole,
    password: &SecretString,
) -> Result<RoleKeys, StartError> {
    let signing_path = Config::resolve(home, &config.keys.signing_key);
    match role {
        NodeRole::IdentityManager { replica } => {
            let validator =
                keystore::read_signing_key(&signing_path, FileKind::ValidatorKey, password)?;
            // Each replica signs with its own key, the one genesis lists at its place.
            if params.validator_keys.get(replica) != Some(&crypto::public_key(&validator)) {
                return Err(StartError::NotGenesisValidatorKey { path: signing_path });
            }
            Ok(RoleKeys::IdentityManager { validator })
        }
        NodeRole::Bank(id) => {
            let key =
                keystore::read_signing_key(&signing_path, FileKind::AttestationKey, password)?;
            if Some(&crypto::public_key(&key)) != params.bank_key(id) {
                return Err(StartError::NotGenesisBankKey { path: signing_path });
            }
            Ok(RoleKeys::Bank { id, key })
        }
    }
}

/// The node-local row naming the node that writes this data folder.
const OWNER_KEY: &[u8] = b"node/owner";

/// Refuses a data folder written by another node of the same genesis (a copied or
/// misconfigured home): each node's data holds its own node-local rows (a bank's business
/// keys, the IM's last signed height and vault). A folder without an owner row (new, or
/// written before this check) is claimed.
fn check_owner(
    store: &RocksStore,
    data_dir: &Path,
    own_peer: PeerId,
    role: NodeRole,
) -> Result<(), StartError> {
    let owner_error = |source| StartError::Owner {
        data_dir: data_dir.to_path_buf(),
        source,
    };
    let owner = store.local_get(OWNER_KEY).map_err(owner_error)?;
    match owner {
        Some(owner) if owner == own_peer.to_bytes() => Ok(()),
        Some(owner) => {
            let other = PeerId::from_bytes(&owner).map_or_else(
                |_| "an unreadable peer id".to_owned(),
                |peer| peer.to_string(),
            );
            Err(StartError::OtherOwner {
                data_dir: data_dir.to_path_buf(),
                other,
                own: Box::new(own_peer),
                role,
            })
        }
        None => store
            .local_put(&[(OWNER_KEY.to_vec(), own_peer.to_bytes())])
            .map_err(owner_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_critical_task_stops_the_node() {
        let live = prometheus_client::metrics::gauge::Gauge::default();
        live.set(1);
        let mut service = tokio::spawn(async { panic!("injected") });
        let mut network = tokio::spawn(std::future::pending::<()>());
        let writer = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(5)));
        let critical = Critical {
            service: &mut service,
            network: &mut network,
            writer: &writer,
        };
        let result = supervise(std::future::pending::<()>(), critical, &live).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "critical task service stopped: it panicked"
        );
        assert_eq!(live.get(), 0, "/livez fails");
        network.abort();
    }

    #[tokio::test]
    async fn a_writer_thread_that_ends_stops_the_node() {
        let live = prometheus_client::metrics::gauge::Gauge::default();
        let mut service = tokio::spawn(std::future::pending::<()>());
        let mut network = tokio::spawn(std::future::pending::<()>());
        let writer = std::thread::spawn(|| ());
        let critical = Critical {
            service: &mut service,
            network: &mut network,
            writer: &writer,
        };
        let result = supervise(std::future::pending::<()>(), critical, &live).await;
        assert!(matches!(
            result,
            Err(StartError::CriticalTaskStopped { task: "writer", .. })
        ));
        service.abort();
        network.abort();
    }

    #[tokio::test]
    async fn shutdown_first_is_a_clean_stop() {
        let live = prometheus_client::metrics::gauge::Gauge::default();
        live.set(1);
        let mut service = tokio::spawn(std::future::pending::<()>());
        let mut network = tokio::spawn(std::future::pending::<()>());
        let writer = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(5)));
        let critical = Critical {
            service: &mut service,
            network: &mut network,
            writer: &writer,
        };
        assert!(supervise(async {}, critical, &live).await.is_ok());
        assert_eq!(live.get(), 1);
        service.abort();
        network.abort();
    }
}
