//! A misbehaving identity manager, played by this test: it holds the IM's keys (decrypted
//! from the IM's home, as a thief of its key files would), stops the real IM, joins the
//! network under the IM's peer id and publishes blocks no honest IM would. Nothing in the
//! product can be told to do this.
//!
//! - A block whose time is far ahead of the banks' clocks is refused for now (a jump of the
//!   IM's clock must not expire every pending transfer): the banks' heads do not move.
//! - A second block at a height the banks hold, validly signed: every bank detects the
//!   equivocation, keeps both signed headers (checkable against genesis, exported by
//!   `hv_evidence`), stops following and says so (`hv_status.halted`, `/readyz`, a metric),
//!   and is still stopped after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use halfveil_genesis::keystore::{self, FileKind};
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::{Block, TimeMs};
use halfveil_node::config::Config;
use halfveil_node::evidence::Evidence;
use halfveil_node::metrics::Metrics;
use halfveil_node::network::{self, NetEvent, NetworkHandle, NetworkSetup};
use halfveil_node::rpc::ApiClient;
use halfveil_tests::net::{block_on, client, now_ms, TestNet};
use secrecy::SecretString;

/// The IM's validator key and node key, read from its home as the node itself does.
fn im_keys(net: &TestNet) -> (SigningKey, libp2p::identity::Keypair) {
    let home = &net.node("im").home;
    let config = Config::load(home).unwrap();
    let password_file = Config::resolve(home, config.keys.password_file.as_ref().unwrap());
    let password = std::fs::read_to_string(password_file).unwrap();
    let password = SecretString::from(password.trim().to_owned());
    let signing = Config::resolve(home, &config.keys.signing_key);
    let validator =
        keystore::read_signing_key(&signing, FileKind::ValidatorKey, &password).unwrap();
    let node_key = keystore::read_node_key(&Config::resolve(home, &config.keys.node_key)).unwrap();
    (validator, node_key)
}

fn block_at(net: &TestNet, height: u64) -> Block {
    let url = net.rpc("bank-1");
    let info = block_on(async {
        let client = client(&url).await.unwrap();
        client.block(height).await.unwrap().unwrap()
    });
    Block::decode(&hex::decode(info.raw).unwrap()).unwrap()
}

/// `block` with a new time, signed again with `key`.
fn resigned(block: &Block, time: TimeMs, key: &SigningKey) -> Vec<u8> {
    let mut block = block.clone();
    block.signed.header.time = time;
    let hash = block.header().hash().unwrap();
    block.signed.signature = crypto::sign(key, &hash);
    block.encode().unwrap()
}

/// Joins the network as the IM (its peer id and listen address).
async fn impostor(net: &TestNet, keypair: libp2p::identity::Keypair) -> NetworkHandle {
    let home = &net.node("im").home;
    let config = Config::load(home).unwrap();
    let (events, mut received) = tokio::sync::mpsc::channel::<NetEvent>(1024);
    // Drain what the banks send (sync requests and the like go unanswered).
    tokio::spawn(async move { while received.recv().await.is_some() {} });
    let setup = NetworkSetup {
        keypair,
        listen: config.p2p.listen.parse().unwrap(),
        peers: config
            .p2p
            .peers
            .iter()
            .map(|peer| peer.parse().unwrap())
            .collect(),
        allowed: net.genesis.bank_peer_ids.clone(),
        genesis_hash: net.genesis.params.genesis_hash,
        connections_max: 16,
    };
    let (handle, _task) = network::start(setup, Metrics::new(), events).unwrap();
    handle
}

/// Publishes `bytes` every half second until `done` holds (at most 60 s).
fn publish_until(
    runtime: &tokio::runtime::Runtime,
    handle: &NetworkHandle,
    bytes: &[u8],
    done: impl Fn() -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        runtime.block_on(handle.publish_block(bytes.to_vec()));
        std::thread::sleep(Duration::from_millis(500));
        if done() {
            return true;
        }
    }
    false
}

#[test]
fn banks_refuse_blocks_from_the_future_and_stop_at_equivocation() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Equivocation", "NID-E-1");
    net.issue(&alice, 50);
    let head = net.wait_same_head();
    let (validator, node_key) = im_keys(&net);
    let stored = block_at(&net, head.height);
    net.kill_node("im");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let handle = runtime.block_on(impostor(&net, node_key));

    // A block an hour ahead of every clock, at the next height: refused, heads unmoved.
    let mut next = stored.clone();
    next.signed.header.height = head
        .height
        .checked_add(1)
        .map(halfveil_ledger::Height)
        .unwrap();
    next.signed.header.parent = stored.header().hash().unwrap();
    let future = resigned(&next, TimeMs(now_ms() + 3_600_000), &validator);
    let refused = publish_until(&runtime, &handle, &future, || {
        ["bank-1", "bank-2"]
            .iter()
            .all(|bank| net.metric(bank, "halfveil_blocks_ahead_total") >= 1.0)
    });
    assert!(refused, "both banks refused the block from the future");
    assert_eq!(net.head("bank-1").height, head.height);
    assert_eq!(net.head("bank-2").height, head.height);

    // A second block at the head's height, validly signed.
    let other = resigned(&stored, TimeMs(stored.signed.header.time.0 + 1), &validator);
    let halted = |net: &TestNet| {
        ["bank-1", "bank-2"]
            .iter()
            .all(|bank| net.status(bank).is_some_and(|status| status.halted))
    };
    let detected = publish_until(&runtime, &handle, &other, || halted(&net));
    assert!(detected, "both banks stopped following");
    drop(handle);
    drop(runtime);

    for bank in ["bank-1", "bank-2"] {
        assert_eq!(net.metric(bank, "halfveil_equivocations_total"), 1.0);
        assert_eq!(net.metric(bank, "halfveil_ready"), 0.0);
        let url = net.rpc(bank);
        let evidence = block_on(async { client(&url).await.unwrap().evidence().await.unwrap() });
        assert_eq!(evidence.len(), 1, "{bank}: {evidence:?}");
        assert_eq!(evidence[0].height, head.height);
        assert_ne!(evidence[0].first_hash, evidence[0].second_hash);
        let proof = Evidence::decode(&hex::decode(&evidence[0].raw).unwrap()).unwrap();
        assert!(
            proof.proves(&net.genesis.params),
            "{bank}: evidence checks against genesis"
        );
    }
    // Still stopped after a restart: the evidence is on disk.
    net.kill_node("bank-1");
    net.start_node("bank-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while net.status("bank-1").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(net.status("bank-1").is_some_and(|status| status.halted));
    net.stop_all();
}
