//! A local network of node processes for `halfveil demo`, `bench` and `chaos`: each node
//! is this same binary running `start --home DIR` ([`halfveil_node::launch`], as in the
//! integration tests), its output in `logs/NAME.log`. Nodes are asked to stop with
//! SIGTERM; any still running when the cluster is dropped are killed.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use halfveil_node::launch::NodeProcess;
use halfveil_node::rpc::{ApiClient, NodeStatus};

use halfveil_node::config::Config;

use crate::client::Node;
use crate::commands::testnet::{self, InitOptions, InitSummary};
use crate::failure::Failure;

/// Makes `dir` ready for a fresh run of `halfveil COMMAND`: empties it if an earlier run
/// of that command made it (it holds `.halfveil-COMMAND`), refuses any other non-empty
/// folder.
pub fn prepare_dir(dir: &Path, command: &str) -> Result<(), Failure> {
    let marker = dir.join(format!(".halfveil-{command}"));
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        if !marker.exists() {
            return Err(Failure::usage(format!(
                "{} exists and was not made by `halfveil {command}`; choose another --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        marker,
        format!("made by halfveil {command}; safe to delete\n"),
    )?;
    Ok(())
}

/// The nodes of a testnet, started from its homes.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<NodeProcess>,
    /// The names of the identity manager's nodes: `im`, or its replicas `im-1` to `im-N`.
    pub ims: Vec<String>,
}

/// How many networks `Cluster::launch` writes before giving up on free ports.
const LAUNCH_ATTEMPTS: usize = 3;

impl Cluster {
    /// Writes a testnet as `options` says, starts its nodes (logging into `logs`) and waits
    /// up to `ready` for every node to answer and see the others. Free ports are picked when
    /// the network is written, so another process may bind one before its node does; such
    /// a network is stopped, removed and written again with other ports (at most three
    /// times; never when the ports were given with `base_port`).
    pub async fn launch(
        options: &InitOptions,
        logs: &Path,
        ready: Duration,
    ) -> Result<(InitSummary, Cluster, Vec<NodeStatus>), Failure> {
        Cluster::launch_with(options, logs, ready, |_| {}).await
    }

    /// [`Cluster::launch`], with each node's config changed by `configure` before it starts.
    pub async fn launch_with(
        options: &InitOptions,
        logs: &Path,
        ready: Duration,
        configure: impl Fn(&mut Config),
    ) -> Result<(InitSummary, Cluster, Vec<NodeStatus>), Failure> {
        let mut attempt = 1;
        loop {
            let network = testnet::create(options)?;
            for node in &network.nodes {
                let home = Path::new(&node.home);
                let mut config = Config::load(home)?;
                configure(&mut config);
                config.save(home)?;
            }
            let mut cluster = Cluster::start(&network, logs)?;
            match cluster.wait_ready(ready).await {
                Ok(statuses) => return Ok((network, cluster, statuses)),
                Err(failure)
                    if attempt < LAUNCH_ATTEMPTS
                        && options.base_port.is_none()
                        && failure.message.contains("Address already in use") =>
                {
                    drop(cluster);
                    attempt += 1;
                    crate::output::note!(
                        "a port was taken before its node bound it; writing the network again \
                         with other ports (attempt {attempt} of {LAUNCH_ATTEMPTS})"
                    );
                    std::fs::remove_dir_all(&options.dir)?;
                    std::fs::remove_dir_all(logs)?;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// Starts every node of `network`, logging into `logs`.
    pub fn start(network: &InitSummary, logs: &Path) -> Result<Cluster, Failure> {
        std::fs::create_dir_all(logs)?;
        let program = std::env::current_exe()
            .map_err(|error| Failure::error(format!("cannot find this program: {error}")))?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            ims: Vec::new(),
        };
        for summary in &network.nodes {
            if summary.role == "identity-manager" {
                cluster.ims.push(summary.name.clone());
            }
            let home = PathBuf::from(&summary.home);
            let log = logs.join(format!("{}.log", summary.name));
            let node = NodeProcess::new(&summary.name, &home, &summary.rpc, &log, &program);
            cluster.nodes.push(node);
            cluster.restart(&summary.name)?;
        }
        Ok(cluster)
    }

    /// Kills node `name` without warning (SIGKILL: a crash).
    pub fn kill(&mut self, name: &str) -> Result<(), Failure> {
        self.node_mut(name)?.kill();
        Ok(())
    }

    /// Starts node `name` (again) from its home; its log goes on.
    pub fn restart(&mut self, name: &str) -> Result<(), Failure> {
        let node = self.node_mut(name)?;
        node.spawn()
            .map_err(|error| Failure::error(format!("cannot start node {name}: {error}")))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut NodeProcess, Failure> {
        self.nodes
            .iter_mut()
            .find(|node| node.name == name)
            .ok_or_else(|| Failure::error(format!("no node named {name}")))
    }

    pub fn node(&self, name: &str) -> Result<&NodeProcess, Failure> {
        self.nodes
            .iter()
            .find(|node| node.name == name)
            .ok_or_else(|| Failure::error(format!("no node named {name}")))
    }

    /// The identity manager's node that leads now: the only one, or the replica that says it
    /// leads and that every running replica names as leader. Waits up to `limit` for one.
    pub async fn im_leader(&self, limit: Duration) -> Result<&NodeProcess, Failure> {
        let deadline = Instant::now() + limit;
        loop {
            if let [only] = self.ims.as_slice() {
                return self.node(only);
            }
            if let Some(name) = self.agreed_leader().await {
                return self.node(&name);
            }
            if Instant::now() > deadline {
                return Err(Failure::error(format!(
                    "no identity manager replica led within {} s",
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the identity manager's leading node without warning (SIGKILL), waiting up to
    /// `limit` for one to lead; returns its name and when it died.
    pub async fn kill_leader(&mut self, limit: Duration) -> Result<(String, Instant), Failure> {
        let name = self.im_leader(limit).await?.name.clone();
        self.kill(&name)?;
        Ok((name, Instant::now()))
    }

    /// The replica every answering replica names as leader, if that one says it leads.
    async fn agreed_leader(&self) -> Option<String> {
        let mut named = None;
        for name in &self.ims {
            let Ok(node) = self.node(name) else { continue };
            let Ok(client) = Node::connect(&node.rpc).await else {
                continue;
            };
            let Ok(status) = client.client.status().await else {
                continue;
            };
            let replica = status.replica?;
            let leader = replica.leader?;
            if named.is_some_and(|named| named != leader) {
                return None;
            }
            named = Some(leader);
        }
        let name = format!("im-{}", named?);
        let node = self.node(&name).ok()?;
        let status = Node::connect(&node.rpc)
            .await
            .ok()?
            .client
            .status()
            .await
            .ok()?;
        (status.replica?.role == "leader").then_some(name)
    }

    /// Fails if a node has exited.
    pub fn check_alive(&mut self) -> Result<(), Failure> {
        for node in &mut self.nodes {
            if let Some(status) = node.exited() {
                return Err(Failure::error(format!(
                    "node {} stopped ({status}); last lines of {}:\n{}",
                    node.name,
                    node.log.display(),
                    node.log_tail(15)
                )));
            }
        }
        Ok(())
    }

    /// Waits until every node answers and is connected to all the others.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Vec<NodeStatus>, Failure> {
        let deadline = Instant::now() + limit;
        let peers_wanted = self.nodes.len().saturating_sub(1);
        loop {
            self.check_alive()?;
            let mut statuses = Vec::with_capacity(self.nodes.len());
            for node in &self.nodes {
                let status = match Node::connect(&node.rpc).await {
                    Ok(client) => client.client.status().await.ok(),
                    Err(_) => None,
                };
                match status {
                    Some(status) if status.peers >= peers_wanted => statuses.push(status),
                    _ => break,
                }
            }
            if statuses.len() == self.nodes.len() {
                return Ok(statuses);
            }
            if Instant::now() > deadline {
                return Err(Failure::error(format!(
                    "the network was not ready after {} s; see the logs in {}",
                    limit.as_secs(),
                    self.nodes
                        .first()
                        .and_then(|node| node.log.parent())
                        .map(|dir| dir.display().to_string())
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every node's head is at least `height`.
    pub async fn wait_height(&mut self, height: u64, limit: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive()?;
            let mut behind = None;
            for node in &self.nodes {
                let head = match Node::connect(&node.rpc).await {
                    Ok(client) => client.client.head().await.ok().map(|head| head.height),
                    Err(_) => None,
                };
                if head.is_none_or(|head| head < height) {
                    behind = Some(node.name.clone());
                    break;
                }
            }
            let Some(behind) = behind else {
                return Ok(());
            };
            if Instant::now() > deadline {
                return Err(Failure::error(format!(
                    "node {behind} did not reach height {height} in {} s",
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks every node to stop (SIGTERM) and waits; returns each node's exit status.
    pub fn stop(&mut self, limit: Duration) -> Vec<(String, Option<ExitStatus>)> {
        for node in &self.nodes {
            node.signal("TERM");
        }
        let deadline = Instant::now() + limit;
        self.nodes
            .iter_mut()
            .map(|node| (node.name.clone(), node.wait_until(deadline)))
            .collect()
    }
}
