//! A test network whose nodes run in Linux network namespaces, so a test can cut one node
//! off the network and give it back: each node in a namespace of its own, joined to the root
//! namespace by a veth pair whose root side is a port of one bridge. Node `i` (the IM is 0)
//! holds `10.a.b.(i + 1)/24`, the root namespace `10.a.b.254` on the bridge; `a.b` comes from
//! the test's pid and is checked against the host's routes. Nodes reach each other through
//! the bridge, and the test process reaches their RPC the same way. Everything created is
//! named after the pid (`hvbr<pid>`, `hv<pid>r<i>`, `hv<pid>-<node>`) and removed when the
//! network is dropped; nothing else on the host is touched.
//!
//! It needs root, `ip` (iproute2) and network namespaces; [`NsNet::start`] says why not
//! otherwise, and the test skips.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use halfveil_node::config::Config;

use crate::net::TestNet;
use crate::{describe, run_bounded};

/// How long one `ip` command may take.
const IP_LIMIT: Duration = Duration::from_secs(10);

/// Runs `ip args`; panics with its output when it fails.
fn ip(args: &[&str]) {
    let output = run_bounded(Command::new("ip").args(args), IP_LIMIT);
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        describe(&output)
    );
}

/// Runs `ip args` and says whether it succeeded, never panicking (for clean-up and probes).
fn ip_quietly(args: &[&str]) -> bool {
    let Ok(mut child) = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if started.elapsed() < IP_LIMIT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The text `ip args` prints, or an error saying why not.
fn ip_output(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run `ip`: {error}"))?;
    if !output.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), describe(&output)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            // Real, effective, saved, file-system: the effective one decides.
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

/// Why this machine cannot run namespaced nodes, if it cannot.
pub fn unavailable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces need Linux".into());
    }
    if !is_root() {
        return Some("network namespaces need root".into());
    }
    if let Err(error) = ip_output(&["-V"]) {
        return Some(format!("`ip` (iproute2) is missing: {error}"));
    }
    let pid = std::process::id();
    let probe = format!("hv{pid}-probe");
    if let Err(error) = ip_output(&["netns", "add", &probe]) {
        return Some(format!("`ip netns add` fails: {error}"));
    }
    ip_quietly(&["netns", "del", &probe]);
    let bridge = format!("hvpb{pid}");
    if let Err(error) = ip_output(&["link", "add", &bridge, "type", "bridge"]) {
        return Some(format!("cannot create a bridge: {error}"));
    }
    ip_quietly(&["link", "del", &bridge]);
    None
}

/// An IPv4 prefix `address/length` of a route, if the text is one.
fn parse_prefix(text: &str) -> Option<(u32, u32)> {
    let (address, length) = match text.split_once('/') {
        Some((address, length)) => (address, length.parse().ok()?),
        None => (text, 32),
    };
    let address: Ipv4Addr = address.parse().ok()?;
    (length <= 32).then_some((u32::from(address), length))
}

/// Whether two prefixes share an address.
fn overlaps((a, a_length): (u32, u32), (b, b_length): (u32, u32)) -> bool {
    let length = a_length.min(b_length);
    let mask = if length == 0 {
        0
    } else {
        u32::MAX << (32 - length)
    };
    a & mask == b & mask
}

/// A `10.a.b.0/24` derived from the pid that no route or address of the host overlaps
/// (the default route aside).
fn free_subnet() -> [u8; 3] {
    let routes = ip_output(&["-4", "route", "show", "table", "all"]).unwrap_or_default();
    let addresses = ip_output(&["-4", "-o", "addr", "show"]).unwrap_or_default();
    let mut taken: Vec<(u32, u32)> = routes
        .lines()
        .filter_map(|line| line.split_whitespace().find_map(parse_prefix))
        .filter(|&(_, length)| length > 0)
        .collect();
    taken.extend(addresses.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        words.find(|word| *word == "inet")?;
        parse_prefix(words.next()?)
    }));
    let pid = std::process::id();
    for attempt in 0..256u32 {
        let seed = pid.wrapping_add(attempt.wrapping_mul(7919));
        let subnet = [10, 100 + ((seed >> 8) % 128) as u8, (seed % 256) as u8];
        let prefix = (
            u32::from(Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 0)),
            24,
        );
        if !taken.iter().any(|route| overlaps(*route, prefix)) {
            return subnet;
        }
    }
    panic!("no free 10.x.y.0/24 for the test network; the host's routes:\n{routes}");
}

/// The namespaces, veth pairs and bridge of one test network; dropping it removes them.
#[derive(Debug)]
pub struct Hosts {
    subnet: [u8; 3],
    bridge: Option<String>,
    /// Per node: its namespace and the root side of its veth pair.
    hosts: Vec<(String, String)>,
}

impl Hosts {
    /// Creates the bridge and one namespace per name, each joined to the bridge.
    pub fn create(names: &[String]) -> Hosts {
        let pid = std::process::id();
        let mut hosts = Hosts {
            subnet: free_subnet(),
            bridge: None,
            hosts: Vec::new(),
        };
        let bridge = format!("hvbr{pid}");
        // Recorded before each creation, so a failure halfway still removes what exists.
        hosts.bridge = Some(bridge.clone());
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let gateway = format!("{}/24", hosts.gateway());
        ip(&["addr", "add", &gateway, "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for (index, name) in names.iter().enumerate() {
            let namespace = format!("hv{pid}-{name}");
            let root_side = format!("hv{pid}r{index}");
            let node_side = format!("hv{pid}n{index}");
            hosts.hosts.push((namespace.clone(), root_side.clone()));
            ip(&["netns", "add", &namespace]);
            ip(&[
                "link", "add", &root_side, "type", "veth", "peer", "name", &node_side, "netns",
                &namespace,
            ]);
            ip(&["link", "set", &root_side, "master", &bridge]);
            ip(&["link", "set", &root_side, "up"]);
            let address = format!("{}/24", hosts.address(index));
            ip(&["-n", &namespace, "addr", "add", &address, "dev", &node_side]);
            ip(&["-n", &namespace, "link", "set", &node_side, "up"]);
            ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// The address of node `index` (the IM is 0).
    pub fn address(&self, index: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, u8::try_from(index + 1).expect("at most 253 nodes"))
    }

    /// The root namespace's address on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 254)
    }

    pub fn namespace(&self, index: usize) -> &str {
        &self.hosts[index].0
    }

    /// The root side of node `index`'s veth pair (its port on the bridge).
    pub fn link(&self, index: usize) -> &str {
        &self.hosts[index].1
    }

    /// Cuts node `index` off the network (its bridge port goes down) or gives it back.
    pub fn set_link(&self, index: usize, up: bool) {
        ip(&[
            "link",
            "set",
            self.link(index),
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (namespace, root_side) in self.hosts.drain(..).rev() {
            // Deleting either end removes the pair; the namespace would take it along, but
            // only some time after its deletion.
            ip_quietly(&["link", "del", &root_side]);
            ip_quietly(&["netns", "del", &namespace]);
        }
        if let Some(bridge) = self.bridge.take() {
            ip_quietly(&["link", "del", &bridge]);
        }
    }
}

/// A [`TestNet`] whose nodes run in network namespaces (see the module documentation).
/// It derefs to the `TestNet`, whose helpers (accounts, payments, heads) work unchanged.
#[derive(Debug)]
pub struct NsNet {
    // Dropped in this order: the nodes are killed before their namespaces go.
    pub net: TestNet,
    pub hosts: Hosts,
}

impl NsNet {
    /// Writes a testnet with `banks` banks, moves every node's addresses into its
    /// namespace (ports kept), starts the nodes with `ip netns exec` and waits until they
    /// see each other. `Err` says why this machine cannot (the test should skip).
    pub fn start(banks: usize) -> Result<NsNet, String> {
        NsNet::start_written(banks, TestNet::write)
    }

    /// [`NsNet::start`] with the IM as `replicas` replicas (`im-1` .. `im-N`).
    pub fn start_replicated(banks: usize, replicas: usize) -> Result<NsNet, String> {
        NsNet::start_written(banks, |banks| TestNet::write_replicated(banks, replicas))
    }

    fn start_written(banks: usize, write: impl Fn(usize) -> TestNet) -> Result<NsNet, String> {
        if let Some(reason) = unavailable() {
            return Err(reason);
        }
        let mut net = write(banks);
        let names: Vec<String> = net.nodes.iter().map(|node| node.name.clone()).collect();
        let hosts = Hosts::create(&names);
        let configs: Vec<Config> = net
            .nodes
            .iter()
            .map(|node| Config::load(&node.home).expect("config"))
            .collect();
        // Every node's p2p address on loopback, and where it moves.
        let moves: Vec<(String, String)> = configs
            .iter()
            .enumerate()
            .map(|(index, config)| {
                let port = config
                    .p2p
                    .listen
                    .rsplit('/')
                    .next()
                    .expect("p2p port")
                    .to_owned();
                (
                    config.p2p.listen.clone(),
                    format!("/ip4/{}/tcp/{port}", hosts.address(index)),
                )
            })
            .collect();
        let moved = |address: &str| -> String {
            moves
                .iter()
                .find_map(|(old, new)| {
                    let rest = address.strip_prefix(old.as_str())?;
                    (rest.is_empty() || rest.starts_with('/')).then(|| format!("{new}{rest}"))
                })
                .unwrap_or_else(|| panic!("{address} is no node's p2p address"))
        };
        for (index, mut config) in configs.into_iter().enumerate() {
            let address = hosts.address(index);
            let at = |old: SocketAddr| SocketAddr::new(address.into(), old.port());
            config.p2p.listen = moved(&config.p2p.listen);
            config.p2p.peers = config.p2p.peers.iter().map(|peer| moved(peer)).collect();
            config.rpc.listen = at(config.rpc.listen);
            config.rpc.admin_listen = at(config.rpc.admin_listen);
            config.metrics.listen = at(config.metrics.listen);
            let node = &mut net.nodes[index];
            config.save(&node.home).expect("save config");
            node.rpc = format!("http://{}", config.rpc.listen);
            node.wrapper = ["ip", "netns", "exec", hosts.namespace(index)]
                .map(str::to_owned)
                .to_vec();
        }
        let mut net = NsNet { net, hosts };
        for name in &names {
            net.net.start_node(name);
        }
        net.net.wait_connected();
        Ok(net)
    }

    fn index(&self, name: &str) -> usize {
        self.net
            .nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Takes node `name`'s link down: nothing reaches it and it reaches nothing.
    pub fn cut(&self, name: &str) {
        self.hosts.set_link(self.index(name), false);
    }

    /// Runs the CLI inside node `name`'s namespace, where the node stays reachable while
    /// its link is down; returns its output.
    pub fn run_inside(&self, name: &str, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new("ip");
        command
            .args(["netns", "exec", self.hosts.namespace(self.index(name))])
            .arg(crate::halfveil_bin())
            .args(args)
            .env("HALFVEIL_PASSWORD_FILE", &self.net.password_file)
            .env_remove("HALFVEIL_PASSWORD")
            .stdin(std::process::Stdio::null());
        crate::run_bounded(&mut command, std::time::Duration::from_secs(60))
    }

    /// Brings node `name`'s link back up.
    pub fn reconnect(&self, name: &str) {
        self.hosts.set_link(self.index(name), true);
    }
}

impl Deref for NsNet {
    type Target = TestNet;

    fn deref(&self) -> &TestNet {
        &self.net
    }
}

impl DerefMut for NsNet {
    fn deref_mut(&mut self) -> &mut TestNet {
        &mut self.net
    }
}
