//! The operator guide's walk-through, "Deploying on separate machines", run as written: every
//! `HOST$ COMMAND` line of that section, in order, with each host in its own Linux network
//! namespace and home folder (`tests/src/netns.rs`). Hosts reach each other only through
//! their addresses on a bridge; files travel by `scp`, which here copies between the hosts'
//! folders (`HOST:PATH` is `HOSTS/HOST/PATH`). A `halfveil start` line runs in the
//! background until the end. So the guide cannot drift from what works: a step that fails
//! fails this test, naming the line.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halfveil_tests::guide::{section, sh_blocks};
use halfveil_tests::netns::{unavailable, Hosts};
use halfveil_tests::{describe, halfveil_bin, run_bounded};

/// The longest one step may take (a ceremony step derives a key with Argon2id).
const STEP_LIMIT: Duration = Duration::from_secs(120);
const SECTION: &str = "## Deploying on separate machines";

/// One line of the walk-through: the host it runs on and the shell command.
#[derive(Debug)]
struct Step {
    host: String,
    command: String,
}

/// The `HOST$ COMMAND` lines of the section's `sh` blocks, in order.
fn walkthrough(guide: &str) -> Vec<Step> {
    sh_blocks(section(guide, SECTION))
        .into_iter()
        .flatten()
        .map(|command| {
            let (host, line) = command.line.split_once("$ ").unwrap_or_else(|| {
                panic!("a line of an sh block without a host: {}", command.line)
            });
            let is_host = !host.is_empty()
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
            assert!(
                is_host,
                "a line of an sh block without a host: {}",
                command.line
            );
            Step {
                host: host.to_owned(),
                command: line.to_owned(),
            }
        })
        .collect()
}

/// `scp SOURCE... TARGET` between the hosts' folders.
const SCP: &str = r#"#!/bin/sh
set -e
map() { case "$1" in *:*) echo "$HV_HOSTS/${1%%:*}/${1#*:}" ;; *) echo "$1" ;; esac; }
eval "target=\${$#}"
target=$(map "$target")
while [ $# -gt 1 ]; do cp "$(map "$1")" "$target"; shift; done
"#;

/// The walk-through's world: hosts, their folders, the nodes started.
struct World {
    root: tempfile::TempDir,
    hosts: Hosts,
    names: Vec<String>,
    /// Background `halfveil start` processes (each its own process group), by host.
    nodes: Vec<(String, Child)>,
}

impl World {
    fn new(names: Vec<String>) -> World {
        let root = tempfile::tempdir().expect("temp dir");
        for name in &names {
            std::fs::create_dir_all(root.path().join("hosts").join(name)).unwrap();
        }
        std::fs::create_dir_all(root.path().join("shared")).unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(halfveil_bin(), bin.join("halfveil")).unwrap();
        std::fs::write(bin.join("scp"), SCP).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("scp"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let hosts = Hosts::create(&names);
        World {
            root,
            hosts,
            names,
            nodes: Vec::new(),
        }
    }

    fn index(&self, host: &str) -> usize {
        self.names
            .iter()
            .position(|name| name == host)
            .unwrap_or_else(|| panic!("no host {host}"))
    }

    fn home(&self, host: &str) -> PathBuf {
        self.root.path().join("hosts").join(host)
    }

    /// The variables the guide names, plus a clean environment.
    fn variables(&self, host: &str) -> BTreeMap<String, String> {
        let address = |name: &str| self.hosts.address(self.index(name)).to_string();
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            self.root.path().join("bin").display()
        );
        [
            ("PATH", path),
            ("HOME", self.home(host).display().to_string()),
            (
                "HV_HOSTS",
                self.root.path().join("hosts").display().to_string(),
            ),
            (
                "SHARED",
                self.root.path().join("shared").display().to_string(),
            ),
            ("IM_ADDR", address("im")),
            ("BANK1_ADDR", address("bank-1")),
            ("BANK2_ADDR", address("bank-2")),
            (
                "RUST_LOG",
                std::env::var("HALFVEIL_TEST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// `sh -ec COMMAND` on `host`, in its namespace and folder.
    fn command(&self, step: &Step) -> Command {
        let namespace = self.hosts.namespace(self.index(&step.host));
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace, "sh", "-ec", &step.command])
            .env_clear()
            .envs(self.variables(&step.host))
            .current_dir(self.home(&step.host))
            .stdin(Stdio::null());
        command
    }

    fn run(&mut self, number: usize, step: &Step) {
        eprintln!("[{number}] {}$ {}", step.host, step.command);
        if step.command.contains("halfveil start") {
            self.start(step);
            return;
        }
        let output = run_bounded(&mut self.command(step), STEP_LIMIT);
        if !output.status.success() {
            panic!(
                "step {number} failed: {}$ {}\n{}\n{}",
                step.host,
                step.command,
                describe(&output),
                self.node_logs()
            );
        }
    }

    fn start(&mut self, step: &Step) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(self.home(&step.host).join("node.log")).unwrap();
        let child = self
            .command(step)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start a node");
        self.nodes.push((step.host.clone(), child));
    }

    /// The last lines of every node's log, for a failure's message.
    fn node_logs(&self) -> String {
        let mut text = String::new();
        for (host, _) in &self.nodes {
            let log = std::fs::read_to_string(self.home(host).join("node.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            text.push_str(&format!("--- {host} node log (last lines)\n{tail}\n"));
        }
        text
    }

    /// A node's status, asked from inside its own host.
    fn status(&self, host: &str, rpc: &str) -> serde_json::Value {
        let step = Step {
            host: host.to_owned(),
            command: format!("halfveil --output json status --rpc {rpc}"),
        };
        let output = run_bounded(&mut self.command(&step), STEP_LIMIT);
        assert!(
            output.status.success(),
            "status of {host}: {}",
            describe(&output)
        );
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    /// Stops every node as an operator would: SIGTERM to the `halfveil` process of its
    /// process group (the shell of its line then exits with the node's status); SIGKILL to
    /// the group after 20 s.
    fn stop_nodes(&mut self) -> bool {
        let mut clean = true;
        for (host, mut child) in self.nodes.drain(..) {
            let group = format!("-{}", child.id());
            let _ = Command::new("pkill")
                .args(["-TERM", "-g", &child.id().to_string(), "-x", "halfveil"])
                .status();
            let started = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        clean &= status.success();
                        if !status.success() {
                            eprintln!("{host}'s node exited with {status}");
                        }
                        break;
                    }
                    Ok(None) if started.elapsed() < Duration::from_secs(20) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                        let _ = child.wait();
                        clean = false;
                        break;
                    }
                }
            }
        }
        clean
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_nodes();
    }
}

fn guide() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator-guide.md");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn the_guide_names_every_step_of_a_deployment() {
    let steps = walkthrough(&guide());
    let all: Vec<String> = steps
        .iter()
        .map(|step| format!("{}$ {}", step.host, step.command))
        .collect();
    for needed in [
        "im$ halfveil init --home hv --role identity-manager",
        "bank-1$ halfveil init --home hv --role bank",
        "auditor-1$ halfveil init --home hv --role auditor",
        "im$ halfveil keys dkg init",
        "auditor-3$ halfveil keys dkg finish",
        "im$ halfveil genesis draft",
        "bank-2$ halfveil genesis sign",
        "im$ halfveil genesis assemble",
        "bank-1$ halfveil config peers",
        "bank-2$ HALFVEIL_PASSWORD=\"$(cat password)\" halfveil start --home hv",
        "payer$ halfveil pay",
        "auditor-1$ halfveil audit replay",
    ] {
        assert!(
            all.iter().any(|line| line.starts_with(needed)),
            "the walk-through lost its step `{needed}`"
        );
    }
}

#[test]
fn the_operator_guide_walk_through_runs_on_separate_hosts() {
    if let Some(reason) = unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let started = Instant::now();
    let steps = walkthrough(&guide());
    let mut names: Vec<String> = Vec::new();
    for step in &steps {
        if !names.contains(&step.host) {
            names.push(step.host.clone());
        }
    }
    let mut world = World::new(names);
    for (number, step) in steps.iter().enumerate() {
        world.run(number + 1, step);
    }
    // Every node ends at one head: the payment and the issue are on all three.
    let rpc = |host: &str| match host {
        "im" => "http://127.0.0.1:26657".to_owned(),
        _ => format!("http://{}:26657", world.hosts.address(world.index(host))),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let heads = loop {
        let heads: Vec<(u64, String)> = ["im", "bank-1", "bank-2"]
            .iter()
            .map(|host| {
                let status = world.status(host, &rpc(host));
                (
                    status["height"].as_u64().expect("height"),
                    status["head_hash"].as_str().expect("head hash").to_owned(),
                )
            })
            .collect();
        if heads.iter().all(|head| *head == heads[0]) || Instant::now() > deadline {
            break heads;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        heads.iter().all(|head| *head == heads[0]),
        "the nodes did not converge: {heads:?}"
    );
    assert!(
        heads[0].0 >= 4,
        "openings, issue and payment make blocks: {heads:?}"
    );
    assert!(
        world.stop_nodes(),
        "a node did not stop cleanly\n{}",
        world.node_logs()
    );
    eprintln!(
        "{} steps on {} hosts in {:?}; head {:?}",
        steps.len(),
        world.names.len(),
        started.elapsed(),
        heads[0]
    );
}
