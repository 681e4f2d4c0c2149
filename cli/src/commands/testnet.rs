//! `halfveil testnet init`: the genesis, one home folder per node and the auditors' keys of
//! a network on 127.0.0.1.
//!
//! ```text
//! DIR/genesis.json
//! DIR/im/      config.toml genesis.json node_key.json validator_key.json disclosure_share.json
//!              admin_token [password]    (with --im-replicas 3 or 5: DIR/im-1/, DIR/im-2/, ...)
//! DIR/bank-N/  config.toml genesis.json node_key.json attestation_key.json admin_token [password]
//! DIR/auditors/auditor-N.json auditor-N-share.json [password]
//! ```
//! The disclosure key is shared by the auditors and the IM (any `--threshold` + 1 of them
//! open, so never without `--threshold` auditors); its DKG runs in this one process, since
//! one operator makes every key of a local network anyway.
//! Key files are encrypted with the password from `--password-file` or `HALFVEIL_PASSWORD`;
//! without either, each folder gets a random password in a 0600 `password` file that its
//! config names, so a local network starts unattended. Nothing existing is overwritten.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_genesis::file::{LimitsEntry, IM_REPLICA_COUNTS};
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_genesis::testnet::{generate, AuditorKeys, BankKeys, ImKeys, Testnet, TestnetSpec};
use halfveil_ledger::threshold::HolderSecret;
use halfveil_node::config::{
    Config, KeysConfig, LogConfig, MetricsConfig, P2pConfig, RpcConfig, RuntimeConfig,
    StorageConfig, CONFIG_FILE,
};
use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use serde::Serialize;

use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// `halfveil testnet`: set up a local network.
#[derive(Debug, Subcommand)]
pub enum TestnetCommand {
    /// Write the genesis, one home per node and the auditors' keys of a network on 127.0.0.1.
    Init(InitArgs),
}

impl TestnetCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            TestnetCommand::Init(args) => args.execute(output),
        }
    }
}

/// `halfveil testnet init`: the flags of [`InitOptions`].
#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// Identity manager replicas: 1 (a single IM), or 3 or 5 (a replicated IM, in folders
    /// im-1 .. im-N, each with its own node and validator key and a copy of the IM's disclosure key share).
    #[arg(long, default_value_t = 1)]
    pub im_replicas: usize,
    #[arg(long, default_value_t = 2)]
    pub banks: usize,
    #[arg(long, default_value_t = 3)]
    pub auditors: usize,
    #[arg(long, default_value_t = 2)]
    pub threshold: u16,
    #[arg(long, default_value = "halfveil-testnet")]
    pub chain_id: String,
    /// First port (node i uses base + 10 i .. + 3); free ports are picked when absent.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Encrypt every key with the password in this file (else `HALFVEIL_PASSWORD`, else
    /// a random password per node, kept in its home).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

impl InitArgs {
    /// Writes the network and prints where its nodes are.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let options = InitOptions {
            dir: self.dir.clone(),
            im_replicas: self.im_replicas,
            banks: self.banks,
            auditors: self.auditors,
            threshold: self.threshold,
            chain_id: self.chain_id.clone(),
            base_port: self.base_port,
            password_file: self.password_file.clone(),
        };
        let report = create(&options)?;
        emit(output, &report, || render(&report));
        Ok(())
    }
}

/// What a network is made of: `testnet init`'s flags, and what `demo`, `bench` and
/// `chaos` ask for.
#[derive(Debug)]
pub struct InitOptions {
    pub dir: PathBuf,
    /// 1, 3 or 5.
    pub im_replicas: usize,
    pub banks: usize,
    pub auditors: usize,
    pub threshold: u16,
    pub chain_id: String,
    /// First port; node `i` uses `base + 10 i + {0 p2p, 1 rpc, 2 admin, 3 metrics}`. `None`
    /// picks free ports.
    pub base_port: Option<u16>,
    pub password_file: Option<PathBuf>,
}

impl InitOptions {
    /// The network `demo`, `bench` and `chaos` run in `dir`: an identity manager, two
    /// banks and three auditors (two of them to disclose), on free ports, with no password
    /// file (so `HALFVEIL_PASSWORD`, else a random password per folder).
    pub fn local(dir: PathBuf, chain_id: &str) -> InitOptions {
        InitOptions {
            dir,
            im_replicas: 1,
            banks: 2,
            auditors: 3,
            threshold: 2,
            chain_id: chain_id.to_owned(),
            base_port: None,
            password_file: None,
        }
    }

    /// Checks the counts, and that `dir` holds no network yet.
    fn check(&self) -> Result<(), Failure> {
        if !IM_REPLICA_COUNTS.contains(&self.im_replicas) {
            return Err(Failure::usage("--im-replicas must be 1, 3 or 5"));
        }
        if self.banks == 0 || self.banks > 64 {
            return Err(Failure::usage("--banks must be between 1 and 64"));
        }
        if self.auditors == 0 || self.auditors > 64 {
            return Err(Failure::usage("--auditors must be between 1 and 64"));
        }
        if self.threshold == 0 || usize::from(self.threshold) > self.auditors {
            return Err(Failure::usage(
                "--threshold must be between 1 and --auditors",
            ));
        }
        if self.dir.join("genesis.json").exists() {
            return Err(Failure::usage(format!(
                "{} already holds a network; choose another --dir or remove it",
                self.dir.display()
            )));
        }
        Ok(())
    }
}

/// The four ports of one node.
#[derive(Clone, Copy, Debug, Serialize)]
struct Ports {
    p2p: u16,
    rpc: u16,
    admin: u16,
    metrics: u16,
}

/// Free ports are picked in `FREE_PORTS_FIRST..FREE_PORTS_END`.
const FREE_PORTS_FIRST: u16 = 20_000;
const FREE_PORTS_END: u16 = 32_000;

fn allocate_ports(count: usize, base: Option<u16>) -> Result<Vec<Ports>, Failure> {
    if let Some(base) = base {
        return (0..count)
            .map(|index| {
                let first = u16::try_from(index * 10)
                    .ok()
                    .and_then(|offset| base.checked_add(offset))
                    .filter(|first| first.checked_add(3).is_some())
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "--base-port {base} leaves no room for {count} nodes"
                        ))
                    })?;
                Ok(Ports {
                    p2p: first,
                    rpc: first + 1,
                    admin: first + 2,
                    metrics: first + 3,
                })
            })
            .collect();
    }
    // Random free ports below Linux's ephemeral range (32768-60999), so the source port of
    // some outgoing connection cannot take one before its node starts. Every listener is
    // held until all are chosen, so no two nodes get the same port.
    let mut held = Vec::with_capacity(count * 4);
    let mut tries = 0;
    while held.len() < count * 4 {
        tries += 1;
        if tries > 10_000 {
            return Err(Failure::error(format!(
                "no {} free ports between {FREE_PORTS_FIRST} and {FREE_PORTS_END}; give --base-port",
                count * 4
            )));
        }
        let span = u32::from(FREE_PORTS_END - FREE_PORTS_FIRST);
        let port = FREE_PORTS_FIRST + u16::try_from(OsRng.next_u32() % span).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    let ports: Vec<u16> = held
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect::<Result<_, _>>()?;
    Ok(ports
        .chunks_exact(4)
        .map(|chunk| Ports {
            p2p: chunk[0],
            rpc: chunk[1],
            admin: chunk[2],
            metrics: chunk[3],
        })
        .collect())
}

pub(crate) fn create_private_dir(path: &Path) -> Result<(), Failure> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|error| Failure::error(format!("cannot create {}: {error}", path.display())))
}

fn random_secret_text() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The password for one folder: the given one, or a new random one written beside the keys.
fn folder_password(
    folder: &Path,
    given: &Option<SecretString>,
) -> Result<(SecretString, Option<PathBuf>), Failure> {
    if let Some(password) = given {
        return Ok((password.clone(), None));
    }
    let text = random_secret_text();
    let mut line = text.clone();
    line.push('\n');
    keystore::write_new_private(&folder.join("password"), line.as_bytes())?;
    Ok((SecretString::from(text), Some(PathBuf::from("password"))))
}

/// Every node of a testnet shares this machine's cores: one async worker each (measured:
/// about 5-10 % less CPU and a lower p99 under load than one per core).
const TESTNET_WORKER_THREADS: usize = 1;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Where a node listens.
#[derive(Clone, Debug)]
pub(crate) struct Listen {
    /// A libp2p address, `/ip4/HOST/tcp/PORT`.
    pub p2p: String,
    pub rpc: SocketAddr,
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
}

impl Listen {
    fn loopback(ports: Ports) -> Listen {
        Listen {
            p2p: format!("/ip4/127.0.0.1/tcp/{}", ports.p2p),
            rpc: loopback(ports.rpc),
            admin: loopback(ports.admin),
            metrics: loopback(ports.metrics),
        }
    }
}

/// A node's configuration; `worker_threads` 0 is one per core.
pub(crate) fn node_config(
    moniker: &str,
    listen: &Listen,
    peers: Vec<String>,
    signing_key: &str,
    password_file: Option<PathBuf>,
    worker_threads: usize,
) -> Config {
    Config {
        moniker: moniker.to_owned(),
        p2p: P2pConfig {
            listen: listen.p2p.clone(),
            peers,
            connections_max: 64,
        },
        rpc: RpcConfig {
            listen: listen.rpc,
            admin_listen: listen.admin,
            admin_token_file: "admin_token".into(),
            connections_max: 256,
            connections_per_address_max: 64,
        },
        metrics: MetricsConfig {
            listen: listen.metrics,
        },
        storage: StorageConfig {
            data_dir: "data".into(),
            index_epoch_transfers: None,
            index_epoch_blocks: None,
            raft_snapshot_entries: None,
            raft_log_kept_entries: None,
        },
        keys: KeysConfig {
            genesis: "genesis.json".into(),
            node_key: "node_key.json".into(),
            signing_key: signing_key.into(),
            password_file,
        },
        log: LogConfig::default(),
        runtime: RuntimeConfig { worker_threads },
    }
}

#[derive(Debug, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub role: &'static str,
    pub home: String,
    pub peer_id: String,
    pub rpc: String,
    pub admin_rpc: String,
    pub metrics: String,
    pub p2p: String,
}

/// What `testnet init` wrote.
#[derive(Debug, Serialize)]
pub struct InitSummary {
    pub dir: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub nodes: Vec<NodeSummary>,
    pub auditors: Vec<String>,
    pub auditor_threshold: u16,
}

/// Writes the network's files; see the module documentation.
pub fn create(options: &InitOptions) -> Result<InitSummary, Failure> {
    options.check()?;
    let given = given_password(options)?;
    let testnet = generate(&TestnetSpec {
        chain_id: options.chain_id.clone(),
        im_replicas: options.im_replicas,
        banks: options.banks,
        auditors: options.auditors,
        threshold: options.threshold,
        genesis_time_ms: genesis_time_ms()?,
        limits: LimitsEntry::default(),
    })?;
    let replicas = testnet.im.len();
    let ports = allocate_ports(replicas + options.banks, options.base_port)?;
    let genesis_text = testnet.genesis.genesis.to_canonical_json();
    create_private_dir(&options.dir)?;
    keystore::write_new_private(&options.dir.join("genesis.json"), genesis_text.as_bytes())?;

    let addresses = peer_addresses(&testnet, &ports);
    let home = Home {
        genesis_text: &genesis_text,
        given: &given,
    };
    let mut nodes = Vec::with_capacity(ports.len());
    for (index, replica) in testnet.im.iter().enumerate() {
        let name = match replicas {
            1 => "im".to_owned(),
            _ => format!("im-{}", index + 1),
        };
        let node = NodeSlot {
            name: &name,
            index,
            ports: &ports,
            addresses: &addresses,
        };
        let im_share = testnet
            .holders
            .last()
            .ok_or_else(|| Failure::usage("no IM share"))?;
        nodes.push(home.write_im(&options.dir, &node, replica, im_share)?);
    }
    for (index, bank) in testnet.banks.iter().enumerate() {
        let node = NodeSlot {
            name: &bank.name,
            index: replicas + index,
            ports: &ports,
            addresses: &addresses,
        };
        nodes.push(home.write_bank(&options.dir, &node, bank)?);
    }
    let auditors = write_auditor_keys(
        &options.dir.join("auditors"),
        &testnet.auditors,
        &testnet.holders,
        &given,
    )?;

    let report = InitSummary {
        dir: options.dir.display().to_string(),
        chain_id: options.chain_id.clone(),
        genesis_hash: testnet.genesis.hash.to_hex(),
        nodes,
        auditors,
        auditor_threshold: options.threshold,
    };
    Ok(report)
}

/// The password for every key: from `--password-file`, else `HALFVEIL_PASSWORD`; `None`
/// means a random one per folder.
fn given_password(options: &InitOptions) -> Result<Option<SecretString>, Failure> {
    if let Some(path) = &options.password_file {
        return Ok(Some(password::from_file(path)?));
    }
    match std::env::var(password::PASSWORD_VARIABLE) {
        Ok(value) if !value.is_empty() => Ok(Some(SecretString::from(value))),
        _ => Ok(None),
    }
}

/// The genesis time: now, in milliseconds since the Unix epoch.
pub(crate) fn genesis_time_ms() -> Result<u64, Failure> {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Failure::error("the system clock is before 1970"))?
            .as_millis(),
    )
    .map_err(|_| Failure::error("the system clock is out of range"))
}

/// The p2p address of every node, the identity manager's replicas first, then the banks.
fn peer_addresses(testnet: &Testnet, ports: &[Ports]) -> Vec<String> {
    testnet
        .im
        .iter()
        .map(|replica| replica.node_key.public().to_peer_id())
        .chain(
            testnet
                .banks
                .iter()
                .map(|bank| bank.node_key.public().to_peer_id()),
        )
        .zip(ports)
        .map(|(peer, ports)| format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", ports.p2p))
        .collect()
}

/// Every address but the node's own (`index`): the peers it dials.
fn peers_except(addresses: &[String], index: usize) -> Vec<String> {
    addresses
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, address)| address.clone())
        .collect()
}

/// A node's place in the network: its folder name, its index in `ports` and `addresses`.
#[derive(Debug)]
struct NodeSlot<'a> {
    name: &'a str,
    index: usize,
    ports: &'a [Ports],
    addresses: &'a [String],
}

/// What every node's home gets: the genesis, and the password given for the keys (or
/// none, for a random one per home).
#[derive(Debug)]
struct Home<'a> {
    genesis_text: &'a str,
    given: &'a Option<SecretString>,
}

impl Home<'_> {
    /// Writes `DIR/im` (or `DIR/im-N`): an identity manager replica's keys, config, genesis
    /// and admin token.
    fn write_im(
        &self,
        dir: &Path,
        node: &NodeSlot<'_>,
        im: &ImKeys,
        share: &HolderSecret,
    ) -> Result<NodeSummary, Failure> {
        let home = dir.join(node.name);
        create_private_dir(&home)?;
        let (password, password_file) = folder_password(&home, self.given)?;
        keystore::write_node_key(&home.join("node_key.json"), &im.node_key)?;
        keystore::write_key_file(
            &home.join("validator_key.json"),
            FileKind::ValidatorKey,
            &im.validator.to_bytes(),
            &im.validator.verifying_key().to_bytes(),
            &password,
            KdfParams::DEFAULT,
        )?;
        keystore::write_disclosure_share(
            &home.join("disclosure_share.json"),
            share,
            &password,
            KdfParams::DEFAULT,
        )?;
        let ports = node.ports[node.index];
        let config = node_config(
            node.name,
            &Listen::loopback(ports),
            peers_except(node.addresses, node.index),
            "validator_key.json",
            password_file,
            TESTNET_WORKER_THREADS,
        );
        write_home_files(&home, &config, self.genesis_text)?;
        let peer = im.node_key.public().to_peer_id().to_string();
        Ok(summary(node.name, "identity-manager", &home, &peer, ports))
    }

    /// Writes `DIR/bank-N` for the bank in `node`: its keys, config, genesis and admin
    /// token.
    fn write_bank(
        &self,
        dir: &Path,
        node: &NodeSlot<'_>,
        bank: &BankKeys,
    ) -> Result<NodeSummary, Failure> {
        let home = dir.join(&bank.name);
        create_private_dir(&home)?;
        let (password, password_file) = folder_password(&home, self.given)?;
        keystore::write_node_key(&home.join("node_key.json"), &bank.node_key)?;
        keystore::write_key_file(
            &home.join("attestation_key.json"),
            FileKind::AttestationKey,
            &bank.attestation.to_bytes(),
            &bank.attestation.verifying_key().to_bytes(),
            &password,
            KdfParams::DEFAULT,
        )?;
        let ports = node.ports[node.index];
        let config = node_config(
            &bank.name,
            &Listen::loopback(ports),
            peers_except(node.addresses, node.index),
            "attestation_key.json",
            password_file,
            TESTNET_WORKER_THREADS,
        );
        write_home_files(&home, &config, self.genesis_text)?;
        let peer = bank.node_key.public().to_peer_id().to_string();
        Ok(summary(&bank.name, "account-manager", &home, &peer, ports))
    }
}

/// Writes each auditor's key file and disclosure key share into `auditors_dir`; returns the
/// key files' paths.
fn write_auditor_keys(
    auditors_dir: &Path,
    auditors: &[AuditorKeys],
    shares: &[HolderSecret],
    given: &Option<SecretString>,
) -> Result<Vec<String>, Failure> {
    create_private_dir(auditors_dir)?;
    let (password, _) = folder_password(auditors_dir, given)?;
    let mut auditor_files = Vec::new();
    for (auditor, share) in auditors.iter().zip(shares) {
        keystore::write_disclosure_share(
            &auditors_dir.join(format!("{}-share.json", auditor.name)),
            share,
            &password,
            KdfParams::DEFAULT,
        )?;
        let path = auditors_dir.join(format!("{}.json", auditor.name));
        keystore::write_key_file(
            &path,
            FileKind::AuditorKey,
            &auditor.key.to_bytes(),
            &auditor.key.verifying_key().to_bytes(),
            &password,
            KdfParams::DEFAULT,
        )?;
        auditor_files.push(path.display().to_string());
    }
    drop(password);
    Ok(auditor_files)
}

fn write_home_files(home: &Path, config: &Config, genesis_text: &str) -> Result<(), Failure> {
    keystore::write_new_private(&home.join("genesis.json"), genesis_text.as_bytes())?;
    write_config_and_token(home, config)
}

/// Writes a new home's `config.toml` and a random `admin_token`.
pub(crate) fn write_config_and_token(home: &Path, config: &Config) -> Result<(), Failure> {
    keystore::write_new_private(&home.join(CONFIG_FILE), config.to_toml().as_bytes())?;
    let mut token = random_secret_text();
    token.push('\n');
    keystore::write_new_private(&home.join("admin_token"), token.as_bytes())?;
    Ok(())
}

fn summary(
    name: &str,
    role: &'static str,
    home: &Path,
    peer_id: &str,
    ports: Ports,
) -> NodeSummary {
    NodeSummary {
        name: name.to_owned(),
        role,
        home: home.display().to_string(),
        peer_id: peer_id.to_owned(),
        rpc: format!("http://127.0.0.1:{}", ports.rpc),
        admin_rpc: format!("http://127.0.0.1:{}", ports.admin),
        metrics: format!("http://127.0.0.1:{}/metrics", ports.metrics),
        p2p: format!("/ip4/127.0.0.1/tcp/{}", ports.p2p),
    }
}

fn render(report: &InitSummary) -> String {
    let mut text = format!(
        "testnet {} written to {}\n  genesis hash {}\n",
        report.chain_id, report.dir, report.genesis_hash
    );
    for node in &report.nodes {
        text.push_str(&format!(
            "  {:<8} {:<17} home {}  rpc {}  p2p {}\n",
            node.name, node.role, node.home, node.rpc, node.p2p
        ));
    }
    text.push_str(&format!(
        "  auditors: {} (an order needs {} of their signatures)\n  check it: halfveil genesis validate {}/genesis.json",
        report.auditors.len(),
        report.auditor_threshold,
        report.dir
    ));
    text
}
