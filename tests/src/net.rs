//! A real network for integration tests: `halfveil testnet init` into a temporary folder,
//! then one `halfveil start` process per node on 127.0.0.1 with free ports. Nodes are killed
//! when the network is dropped, so a failing test leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use halfveil_genesis::file::ValidGenesis;
use halfveil_genesis::keystore::{self, FileKind};
use halfveil_genesis::Genesis;
use halfveil_ledger::crypto::{self, BusinessKey, Envelope, SigningKey};
use halfveil_ledger::{AccountId, Amount, BankId, Hash32, Memo, Nonce, TimeMs, Transfer, VERSION};
use halfveil_node::launch::NodeProcess;
use halfveil_node::rpc::{AccountInfo, ApiClient, HeadInfo, NodeStatus, TransferStatus};
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use rand_core::OsRng;
use secrecy::SecretString;

use crate::{describe, halfveil, run_bounded};

/// How long any one node operation of a test may take.
pub const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Runs `future` to completion on a small runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A WebSocket client of the node at an `http://` RPC URL.
pub async fn client(url: &str) -> Result<WsClient, ClientError> {
    WsClientBuilder::default()
        .request_timeout(STEP_LIMIT)
        .connection_timeout(Duration::from_secs(5))
        .build(url.replacen("http://", "ws://", 1))
        .await
}

/// Milliseconds since the Unix epoch, the chain's clock (the node's one clock helper).
pub fn now_ms() -> u64 {
    halfveil_node::clock::now_ms().0
}

/// One node of the test network: the same launcher as `halfveil demo`, `bench` and `chaos`.
pub type TestNode = NodeProcess;

/// The decrypted keys of one wallet account, for crafting envelopes in tests.
#[derive(Debug)]
pub struct Keys {
    pub account: AccountId,
    pub bank: BankId,
    pub tx_key: SigningKey,
    pub identity_key: SigningKey,
    pub business_key: BusinessKey,
    pub next_nonce: u64,
}

/// A running local network.
#[derive(Debug)]
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub genesis: ValidGenesis,
    pub nodes: Vec<TestNode>,
    pub password_file: PathBuf,
}

impl TestNet {
    /// Writes a testnet with `banks` banks and starts every node. Ports are picked free
    /// when the testnet is written, so another process may take one before the node binds
    /// it; such a network is thrown away and a new one written (at most three times).
    pub fn start(banks: usize) -> TestNet {
        TestNet::start_replicated(banks, 1)
    }

    /// [`TestNet::start`] with an IM of `replicas` replicas (`im-1` .. `im-N` when more
    /// than one).
    pub fn start_replicated(banks: usize, replicas: usize) -> TestNet {
        TestNet::start_with_env(banks, replicas, &[])
    }

    /// [`TestNet::start_replicated`] with `env` in every node's environment (config
    /// overrides such as `HALFVEIL_STORAGE__RAFT_SNAPSHOT_ENTRIES`).
    pub fn start_with_env(banks: usize, replicas: usize, env: &[(&str, &str)]) -> TestNet {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match TestNet::start_once(banks, replicas, env) {
                Ok(net) => return net,
                Err(failure) if failure.contains("Address already in use") => {
                    failures.push(failure)
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("no free ports in three attempts:\n{}", failures.join("\n"))
    }

    fn start_once(banks: usize, replicas: usize, env: &[(&str, &str)]) -> Result<TestNet, String> {
        let mut net = TestNet::write_replicated(banks, replicas);
        net.nodes = std::mem::take(&mut net.nodes)
            .into_iter()
            .map(|node| {
                env.iter()
                    .fold(node, |node, (key, value)| node.env(key, value))
            })
            .collect();
        let names: Vec<String> = net.nodes.iter().map(|node| node.name.clone()).collect();
        for name in &names {
            net.start_node(name);
        }
        net.wait_connected_checked()?;
        Ok(net)
    }

    /// Writes a testnet with `banks` banks (`halfveil testnet init`) and starts no node.
    pub fn write(banks: usize) -> TestNet {
        TestNet::write_replicated(banks, 1)
    }

    /// [`TestNet::write`] with an IM of `replicas` replicas.
    pub fn write_replicated(banks: usize, replicas: usize) -> TestNet {
        let dir = tempfile::tempdir().expect("tempdir");
        let network = dir.path().join("network");
        let output = run_bounded(
            halfveil()
                .args(["--output", "json", "testnet", "init", "--dir"])
                .arg(&network)
                .args([
                    "--im-replicas",
                    &replicas.to_string(),
                    "--banks",
                    &banks.to_string(),
                    "--auditors",
                    "3",
                    "--threshold",
                    "2",
                ]),
            STEP_LIMIT,
        );
        assert!(
            output.status.success(),
            "testnet init: {}",
            describe(&output)
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("init prints JSON");
        let genesis = Genesis::load(&network.join("genesis.json")).expect("genesis");
        let password_file = dir.path().join("wallet-password");
        std::fs::write(&password_file, "test wallet password\n").expect("password file");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let nodes = summary["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| {
                let name = node["name"].as_str().expect("name");
                let home = Path::new(node["home"].as_str().expect("home"));
                let rpc = node["rpc"].as_str().expect("rpc");
                let log = logs.join(format!("{name}.log"));
                NodeProcess::new(name, home, rpc, &log, &crate::halfveil_bin())
                    .env_remove("HALFVEIL_PASSWORD")
                    .env(
                        "RUST_LOG",
                        &std::env::var("HALFVEIL_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
                    )
            })
            .collect();
        TestNet {
            dir,
            genesis,
            nodes,
            password_file,
        }
    }

    fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node(&self, name: &str) -> &TestNode {
        &self.nodes[self.index(name)]
    }

    pub fn rpc(&self, name: &str) -> String {
        self.node(name).rpc.clone()
    }

    /// The process id of a running node (to stop and continue it with signals).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.node(name).pid()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to a running node with `kill`.
    pub fn signal(&self, name: &str, signal: &str) {
        let node = self.node(name);
        assert!(node.is_running(), "{name} is not running");
        assert!(node.signal(signal), "kill -{signal} {name} failed");
    }

    /// Starts (or restarts) a node process; its output is appended to its log.
    pub fn start_node(&mut self, name: &str) {
        let index = self.index(name);
        if let Err(error) = self.nodes[index].spawn() {
            panic!("cannot start {name}: {error}");
        }
    }

    /// Kills a node without warning (a crash).
    pub fn kill_node(&mut self, name: &str) {
        let index = self.index(name);
        self.nodes[index].kill();
    }

    /// Asks a node to stop (SIGTERM) and checks that it exits cleanly.
    pub fn stop_node(&mut self, name: &str) {
        let index = self.index(name);
        let node = &mut self.nodes[index];
        if !node.is_running() {
            return;
        }
        match node.stop(STEP_LIMIT) {
            Some(status) => assert!(status.success(), "{name} exited with {status}"),
            None => panic!("{name} did not stop within {STEP_LIMIT:?}"),
        }
    }

    /// Stops every node cleanly.
    pub fn stop_all(&mut self) {
        let names: Vec<String> = self.nodes.iter().map(|node| node.name.clone()).collect();
        for name in names {
            self.stop_node(&name);
        }
    }

    fn check_alive(&mut self) {
        if let Err(failure) = self.alive() {
            panic!("{failure}");
        }
    }

    /// Fails with the log of a node that has exited.
    fn alive(&mut self) -> Result<(), String> {
        for node in &mut self.nodes {
            if let Some(status) = node.exited() {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                return Err(format!("node {} exited ({status}); log:\n{log}", node.name));
            }
        }
        Ok(())
    }

    /// The node's Prometheus text, fetched from the metrics address in its config.
    pub fn metrics(&self, name: &str) -> String {
        use std::io::{Read, Write};
        let config = halfveil_node::config::Config::load(&self.node(name).home).expect("config");
        let mut stream = std::net::TcpStream::connect(config.metrics.listen).expect("metrics");
        stream.set_read_timeout(Some(STEP_LIMIT)).expect("timeout");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("metrics request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("metrics response");
        text
    }

    /// One sample of a node's metrics, by its full name with labels (0 when absent).
    pub fn metric(&self, name: &str, sample: &str) -> f64 {
        self.metrics(name)
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn status(&self, name: &str) -> Option<NodeStatus> {
        let url = self.rpc(name);
        block_on(async { client(&url).await.ok()?.status().await.ok() })
    }

    /// Waits until every running node answers and sees all the others.
    pub fn wait_connected(&mut self) {
        if let Err(failure) = self.wait_connected_checked() {
            panic!("{failure}");
        }
    }

    fn wait_connected_checked(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            self.alive()?;
            let running: Vec<String> = self
                .nodes
                .iter()
                .filter(|node| node.is_running())
                .map(|node| node.name.clone())
                .collect();
            let ready = running.iter().all(|name| {
                self.status(name)
                    .is_some_and(|status| status.peers + 1 >= running.len())
            });
            if ready {
                return Ok(());
            }
            if started.elapsed() > STEP_LIMIT {
                return Err(format!("the network did not connect within {STEP_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn head(&self, name: &str) -> HeadInfo {
        let url = self.rpc(name);
        block_on(async { client(&url).await?.head().await }).expect("head")
    }

    /// Waits until every running node has the identity manager's head.
    pub fn wait_same_head(&mut self) -> HeadInfo {
        let started = Instant::now();
        loop {
            self.check_alive();
            let first_im = self.im_nodes().first().map(|node| node.name.clone());
            let im = self.head(first_im.as_deref().unwrap_or("im"));
            let same = self
                .nodes
                .iter()
                .filter(|node| node.is_running())
                .all(|node| self.head(&node.name) == im);
            if same {
                return im;
            }
            assert!(
                started.elapsed() < STEP_LIMIT,
                "nodes did not agree on the head within {STEP_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `halfveil` command with the wallet password file set.
    pub fn cli(&self) -> Command {
        let mut command = halfveil();
        command.env("HALFVEIL_PASSWORD_FILE", &self.password_file);
        command
    }

    /// Runs a CLI command and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.cli().args(args), STEP_LIMIT)
    }

    pub fn wallet_path(&self, holder: &str) -> PathBuf {
        self.dir.path().join(format!("{holder}.wallet"))
    }

    /// Opens an account at `bank` for `holder` with the CLI; returns the account id.
    pub fn open_account(&self, bank: &str, holder: &str, national_id: &str) -> String {
        let wallet = self.wallet_path(holder);
        let output = self.run(&[
            "account",
            "open",
            "--bank",
            &self.rpc(bank),
            "--wallet",
            wallet.to_str().expect("utf-8 path"),
            "--name",
            holder,
            "--national-id",
            national_id,
        ]);
        assert!(
            output.status.success(),
            "account open: {}",
            describe(&output)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let account = text.lines().next().unwrap_or_default().trim().to_owned();
        assert!(account.starts_with("hv1"), "account open printed {text}");
        account
    }

    /// Issues money with the CLI, as the IM's operator: at the IM, or at each running
    /// replica of a replicated IM until the leader takes it (the others say they do not
    /// lead).
    pub fn issue(&self, account: &str, amount: u64) {
        let started = Instant::now();
        loop {
            let mut answers = Vec::new();
            for node in self.im_nodes() {
                let output = self.run(&[
                    "issue",
                    "--home",
                    node.home.to_str().expect("utf-8 path"),
                    "--to",
                    account,
                    "--amount",
                    &amount.to_string(),
                ]);
                if output.status.success() {
                    return;
                }
                answers.push(describe(&output));
            }
            assert!(
                started.elapsed() < STEP_LIMIT
                    && answers
                        .iter()
                        .all(|answer| answer.contains("does not lead")),
                "issue: {answers:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The IM's running nodes: `im`, or the replicas `im-1` .. `im-N`.
    pub fn im_nodes(&self) -> Vec<&TestNode> {
        self.nodes
            .iter()
            .filter(|node| node.name == "im" || node.name.starts_with("im-"))
            .filter(|node| node.is_running())
            .collect()
    }

    /// A bank operator command with the CLI (`freeze`, `unfreeze`).
    pub fn bank(&self, bank: &str, action: &str, account: &str) {
        let home = self.node(bank).home.clone();
        let output = self.run(&[
            "bank",
            action,
            "--home",
            home.to_str().expect("utf-8 path"),
            account,
        ]);
        assert!(
            output.status.success(),
            "bank {action}: {}",
            describe(&output)
        );
    }

    /// Pays with the CLI; returns its output (exit 0 committed, 5 refused).
    pub fn pay(&self, holder: &str, to: &str, amount: u64) -> Output {
        let wallet = self.wallet_path(holder);
        self.run(&[
            "--output",
            "json",
            "pay",
            "--wallet",
            wallet.to_str().expect("utf-8 path"),
            "--to",
            to,
            "--amount",
            &amount.to_string(),
        ])
    }

    pub fn account_at(&self, node: &str, account: &str) -> Option<AccountInfo> {
        let url = self.rpc(node);
        block_on(async { client(&url).await?.account(account.to_owned()).await }).expect("account")
    }

    pub fn balance_at(&self, node: &str, account: &str) -> u64 {
        self.account_at(node, account)
            .unwrap_or_else(|| panic!("{node} does not know {account}"))
            .balance
    }

    /// The balance of `account`, after checking that every running node agrees on it.
    pub fn balance(&mut self, account: &str) -> u64 {
        self.wait_same_head();
        let seen: Vec<(String, u64)> = self
            .nodes
            .iter()
            .filter(|node| node.is_running())
            .map(|node| (node.name.clone(), self.balance_at(&node.name, account)))
            .collect();
        assert!(
            seen.iter().all(|(_, balance)| *balance == seen[0].1),
            "nodes disagree on {account}: {seen:?}"
        );
        seen[0].1
    }

    /// The keys of `holder`'s only account, decrypted from its wallet.
    pub fn keys(&self, holder: &str) -> Keys {
        let path = self.wallet_path(holder);
        let text = keystore::read_bounded(&path).expect("wallet");
        let password = SecretString::from("test wallet password".to_owned());
        let opened = keystore::open("wallet", &text, FileKind::Wallet, &password).expect("open");
        let data: serde_json::Value = serde_json::from_slice(&opened.plaintext).expect("json");
        let account = &data["accounts"][0];
        let secret = |field: &str| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(account[field].as_str().expect(field), &mut bytes).expect(field);
            bytes
        };
        Keys {
            account: account["account"]
                .as_str()
                .expect("account")
                .parse()
                .expect("id"),
            bank: BankId(account["bank_id"].as_u64().expect("bank_id") as u16),
            tx_key: SigningKey::from_bytes(&secret("tx_key")),
            identity_key: SigningKey::from_bytes(&secret("identity_key")),
            business_key: BusinessKey::from_bytes(secret("business_key")),
            next_nonce: account["next_nonce"].as_u64().expect("nonce"),
        }
    }

    /// A signed, sealed envelope from `keys` (hex), and its transfer id.
    pub fn envelope(
        &self,
        keys: &Keys,
        payee: &str,
        amount: u64,
        nonce: u64,
        expires_at: u64,
        business_key: &BusinessKey,
    ) -> (Hash32, String) {
        let params = &self.genesis.params;
        let transfer = Transfer {
            version: VERSION,
            chain_id: params.chain_id.clone(),
            payer: keys.account,
            payee: payee.parse().expect("payee"),
            amount: Amount(amount),
            nonce: Nonce(nonce),
            expires_at: TimeMs(expires_at),
            memo: Memo(Vec::new()),
        };
        let id = transfer.id().expect("id");
        let request = crypto::sign_request(
            transfer,
            &keys.tx_key,
            &keys.identity_key,
            &params.disclosure_key,
            &mut OsRng,
        )
        .expect("signed request");
        let envelope = Envelope::seal(
            business_key,
            &params.chain_id,
            keys.bank,
            &request,
            &mut OsRng,
        )
        .expect("envelope");
        (id, hex::encode(envelope.encode().expect("encode")))
    }

    /// Submits an envelope to `bank` and waits for the final status.
    pub fn submit(&self, bank: &str, envelope: &str) -> Result<TransferStatus, ClientError> {
        let url = self.rpc(bank);
        block_on(async {
            let client = client(&url).await?;
            let status = client.submit(envelope.to_owned()).await?;
            let id = match &status {
                TransferStatus::Pending { id } => id.clone(),
                _ => return Ok(status),
            };
            let mut subscription = client.subscribe_transfer(id).await?;
            match tokio::time::timeout(STEP_LIMIT, subscription.next()).await {
                Ok(Some(Ok(status))) => Ok(status),
                other => panic!("no final status: {other:?}"),
            }
        })
    }

    /// Every file under `path`, read whole.
    pub fn files_under(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut found = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    found.push((path, bytes));
                }
            }
        }
        found
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        // A failed test keeps the nodes' logs for the person who reads the failure.
        if std::thread::panicking() {
            let kept = std::env::temp_dir().join(format!(
                "halfveil-test-logs-{}-{}",
                std::process::id(),
                now_ms()
            ));
            if std::fs::create_dir_all(&kept).is_ok() {
                for node in &self.nodes {
                    let _ = std::fs::copy(&node.log, kept.join(format!("{}.log", node.name)));
                }
                eprintln!("node logs kept in {}", kept.display());
            }
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

pub use halfveil_ledger::crypto::public_key;
