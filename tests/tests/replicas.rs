//! A replicated identity manager as processes on 127.0.0.1: three IM replicas (`halfveil
//! testnet init --im-replicas 3`) and two banks. Accounts, issues and payments go through
//! whichever replica leads (the others answer that they do not lead, and banks ask the
//! next). The leader is killed with SIGKILL: the two others elect a new one and payments go
//! on, each committed once; the killed replica restarts from its folder and catches up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use halfveil_tests::describe;
use halfveil_tests::net::TestNet;
use halfveil_tests::netns::NsNet;

/// The replica that takes an issue now: the leader.
fn leader(net: &TestNet, account: &str) -> String {
    for _ in 0..50 {
        for node in net.im_nodes() {
            let home = node.home.to_str().unwrap().to_owned();
            let output = net.run(&["issue", "--home", &home, "--to", account, "--amount", "1"]);
            if output.status.success() {
                return node.name.clone();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("no replica leads");
}

/// Every running replica's `hv_status`: exactly one says it leads, it is `leader`, and the
/// others name it as their leader.
fn check_status(net: &TestNet, leader: &str) {
    let number: u64 = leader.trim_start_matches("im-").parse().unwrap();
    for node in net.im_nodes() {
        let status = net.status(&node.name).unwrap();
        let replica = status.replica.expect("a replica reports its raft state");
        assert_eq!(replica.leader, Some(number), "{}: {replica:?}", node.name);
        let role = if node.name == leader {
            "leader"
        } else {
            "follower"
        };
        assert_eq!(replica.role, role, "{}: {replica:?}", node.name);
        assert!(
            replica.term >= 1 && replica.last_applied.is_some(),
            "{replica:?}"
        );
    }
}

/// Pays and requires the payment committed with a verified receipt (exit 0).
fn pay(net: &TestNet, from: &str, to: &str, amount: u64) {
    let output = net.pay(from, to, amount);
    assert!(output.status.success(), "pay: {}", describe(&output));
}

#[test]
fn payments_go_on_when_the_leading_replica_is_killed() {
    let mut net = TestNet::start_replicated(2, 3);
    let alice = net.open_account("bank-1", "alice", "A-1");
    let bob = net.open_account("bank-2", "bob", "B-2");
    net.issue(&alice, 1_000);
    for _ in 0..3 {
        pay(&net, "alice", &bob, 10);
    }
    let first = leader(&net, &alice);
    check_status(&net, &first);

    net.kill_node(&first);
    let killed = Instant::now();
    pay(&net, "alice", &bob, 10);
    println!(
        "first payment after the leader's SIGKILL committed in {:?}",
        killed.elapsed()
    );
    for _ in 0..2 {
        pay(&net, "alice", &bob, 10);
    }
    let second = leader(&net, &alice);
    assert_ne!(first, second);
    check_status(&net, &second);

    net.start_node(&first);
    net.wait_connected();
    pay(&net, "alice", &bob, 10);
    // Every node, the restarted replica too, holds one chain with each payment once.
    assert_eq!(net.balance(&bob), 70);
    assert_eq!(net.balance(&alice), 1_000 + 2 - 70);
    net.stop_all();
}

/// A follower is killed: payers notice nothing (the leader stays, every payment commits),
/// and when the follower's data folder is lost too it rejoins from nothing, from the
/// leader's log, and converges to the same head and balances.
#[test]
fn a_lost_follower_and_then_its_lost_disk_change_nothing_for_payers() {
    let mut net = TestNet::start_replicated(2, 3);
    let alice = net.open_account("bank-1", "alice", "A-1");
    let bob = net.open_account("bank-2", "bob", "B-2");
    net.issue(&alice, 1_000);
    pay(&net, "alice", &bob, 10);
    let leading = leader(&net, &alice);
    let follower = net
        .im_nodes()
        .iter()
        .map(|node| node.name.clone())
        .find(|name| *name != leading)
        .unwrap();

    net.kill_node(&follower);
    for _ in 0..3 {
        pay(&net, "alice", &bob, 10);
    }
    assert_eq!(
        leader(&net, &alice),
        leading,
        "losing a follower keeps the leader"
    );
    let head = net.wait_same_head();

    let data = net.node(&follower).home.join("data");
    assert!(data.is_dir(), "{} holds the replica's data", data.display());
    std::fs::remove_dir_all(&data).unwrap();
    net.start_node(&follower);
    net.wait_connected();
    pay(&net, "alice", &bob, 10);
    let rejoined = net.wait_same_head();
    assert!(rejoined.height > head.height);
    assert_eq!(net.head(&follower), rejoined);
    assert_eq!(net.balance(&bob), 50);
    assert_eq!(net.balance_at(&follower, &alice), 1_000 + 2 - 50);
    check_status(&net, &leading);
    net.stop_all();
}

/// With a raft log kept short (a snapshot every 4 entries, 2 kept behind it), the leader
/// purges the entries a killed follower lacks; that follower, its data folder lost too,
/// rejoins by installing the leader's snapshot: it fetches the blocks up to the snapshot's
/// point from the other replicas, checks each, and converges to the same head and balances.
#[test]
fn a_replica_behind_the_purged_log_installs_a_snapshot_and_converges() {
    let env = [
        ("HALFVEIL_STORAGE__RAFT_SNAPSHOT_ENTRIES", "4"),
        ("HALFVEIL_STORAGE__RAFT_LOG_KEPT_ENTRIES", "2"),
    ];
    let mut net = TestNet::start_with_env(2, 3, &env);
    let alice = net.open_account("bank-1", "alice", "A-1");
    let bob = net.open_account("bank-2", "bob", "B-2");
    net.issue(&alice, 1_000);
    let leading = leader(&net, &alice);
    let follower = net
        .im_nodes()
        .iter()
        .map(|node| node.name.clone())
        .find(|name| *name != leading)
        .unwrap();
    net.kill_node(&follower);
    std::fs::remove_dir_all(net.node(&follower).home.join("data")).unwrap();
    for _ in 0..12 {
        pay(&net, "alice", &bob, 10);
    }
    let replica = net.status(&leading).unwrap().replica.unwrap();
    let purged = replica.purged.expect("the leader purged its log");
    assert!(purged > 2 && replica.snapshot > Some(purged), "{replica:?}");

    net.start_node(&follower);
    net.wait_connected();
    pay(&net, "alice", &bob, 10);
    let head = net.wait_same_head();
    assert_eq!(net.head(&follower), head);
    let rejoined = net.status(&follower).unwrap().replica.unwrap();
    assert!(
        rejoined.snapshot.is_some() && rejoined.last_applied >= rejoined.snapshot,
        "the follower installed a snapshot: {rejoined:?}"
    );
    let log = std::fs::read_to_string(&net.node(&follower).log).unwrap();
    assert!(log.contains("snapshot installed"), "{follower}'s log");
    assert_eq!(net.balance(&bob), 130);
    assert_eq!(net.balance_at(&follower, &alice), 1_000 + 1 - 130);
    check_status(&net, &leading);
    net.stop_all();
}

/// The height and raft role of `name`'s status, read inside its namespace.
fn status_inside(net: &NsNet, name: &str) -> (u64, String) {
    let rpc = net.rpc(name);
    let output = net.run_inside(name, &["--output", "json", "status", "--rpc", &rpc]);
    assert!(output.status.success(), "status: {}", describe(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let role = status["replica"]["role"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status["height"].as_u64().unwrap(), role)
}

/// A minority of one: the leading replica is cut off from everyone (its link down, in a
/// network namespace). The two others elect a leader and payments go on; the cut-off
/// replica signs nothing, and its operator's request fails with a clear error in bounded
/// time. When the link returns it follows the new leader, drops what it could not commit
/// and converges.
#[test]
fn a_replica_cut_off_from_the_others_stops_signing_and_rejoins() {
    let mut net = match NsNet::start_replicated(2, 3) {
        Ok(net) => net,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let alice = net.open_account("bank-1", "alice", "A-1");
    let bob = net.open_account("bank-2", "bob", "B-2");
    net.issue(&alice, 1_000);
    pay(&net, "alice", &bob, 10);
    let cut_off = leader(&net, &alice);
    let before = net.wait_same_head();

    net.cut(&cut_off);
    for _ in 0..3 {
        pay(&net, "alice", &bob, 10);
    }
    let home = net.node(&cut_off).home.to_str().unwrap().to_owned();
    let started = Instant::now();
    let refused = net.run_inside(
        &cut_off,
        &["issue", "--home", &home, "--to", &alice, "--amount", "7"],
    );
    let answered_in = started.elapsed();
    let said = describe(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("does not lead") || said.contains("no majority of the replicas"),
        "a clear error: {said}"
    );
    assert!(answered_in < Duration::from_secs(10), "{answered_in:?}");
    let (height, role) = status_inside(&net, &cut_off);
    assert_eq!(height, before.height, "the cut-off replica signed nothing");
    println!("cut off: {cut_off} was {role}, answered the issue in {answered_in:?}: {said}");

    net.reconnect(&cut_off);
    pay(&net, "alice", &bob, 10);
    let head = net.wait_same_head();
    assert_eq!(net.head(&cut_off), head);
    let new_leader = leader(&net, &alice);
    assert_ne!(new_leader, cut_off, "the new term's leader stays");
    check_status(&net, &new_leader);
    // The issue of 7 was never committed; five payments were.
    assert_eq!(net.balance(&bob), 50);
    assert_eq!(net.balance(&alice), 1_000 + 2 - 50);
    net.stop_all();
}

/// The failover gap, measured: `HALFVEIL_KILLS` times (20 by default), SIGKILL the leading
/// replica and time the next payment from the kill to its verified receipt; restart the
/// killed replica and go on. Prints every gap, the median and the worst; asserts only that
/// every payment commits once. Run with `cargo test -p halfveil-tests --test replicas --
/// --ignored --nocapture` (about 5 s a kill on a 2-core machine).
#[test]
#[ignore = "a measurement: minutes long"]
fn failover_gap_over_many_kills() {
    let kills: usize = std::env::var("HALFVEIL_KILLS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20);
    let mut net = TestNet::start_replicated(2, 3);
    let alice = net.open_account("bank-1", "alice", "A-1");
    let bob = net.open_account("bank-2", "bob", "B-2");
    net.issue(&alice, 1_000_000);
    pay(&net, "alice", &bob, 1);
    let mut gaps = Vec::with_capacity(kills);
    let mut issued = 0;
    for round in 0..kills {
        let victim = leader(&net, &alice);
        issued += 1;
        net.kill_node(&victim);
        let killed = Instant::now();
        pay(&net, "alice", &bob, 1);
        let gap = killed.elapsed();
        println!(
            "kill {}: {victim} killed, next payment committed after {gap:?}",
            round + 1
        );
        gaps.push(gap);
        net.start_node(&victim);
        net.wait_connected();
    }
    gaps.sort();
    println!(
        "failover over {kills} kills: p50 {:?}, worst {:?}",
        gaps[gaps.len() / 2],
        gaps[gaps.len() - 1]
    );
    let paid = 1 + kills as u64;
    assert_eq!(net.balance(&bob), paid);
    assert_eq!(net.balance(&alice), 1_000_000 + issued - paid);
    net.stop_all();
}
