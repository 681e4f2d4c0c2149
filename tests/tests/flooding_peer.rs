//! A genesis peer that floods invalid and oversized frames (issue 18, item 5): the test
//! plays bank-3 gone bad (its node key, `halfveil_tests::flood`) while the identity manager,
//! bank-1 and bank-2 serve payments. The nodes it floods count its offences, ban it
//! (disconnect it, and close every connection it makes again before it can open a stream) and say so in a metric and the log,
//! and payments between bank-1 and bank-2 commit all the while. How much throughput the
//! others keep beside a flood is a benchmark (docs/reliability.md), not asserted here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use halfveil_genesis::keystore;
use halfveil_node::config::Config;
use halfveil_node::network::peer_of;
use halfveil_tests::flood::flood;
use halfveil_tests::net::{block_on, TestNet};

#[test]
fn a_flooding_genesis_peer_is_banned_and_payments_go_on() {
    let mut net = TestNet::write(3);
    for name in ["im", "bank-1", "bank-2"] {
        net.start_node(name);
    }
    net.wait_connected();
    let amy = net.open_account("bank-1", "Amy Steady", "NID-FLOOD-1");
    let ben = net.open_account("bank-2", "Ben Steady", "NID-FLOOD-2");
    net.issue(&amy, 1_000);

    // Bank-3's key and the addresses it would dial: the IM's and bank-1's.
    let home = net.node("bank-3").home.clone();
    let config = Config::load(&home).unwrap();
    let keypair = keystore::read_node_key(&Config::resolve(&home, &config.keys.node_key)).unwrap();
    let im_peer = net.genesis.im_peer_ids[0];
    let bank_1_peer = net.genesis.bank_peer_ids[0];
    let targets: Vec<libp2p::Multiaddr> = config
        .p2p
        .peers
        .iter()
        .map(|address| address.parse().unwrap())
        .filter(|address| {
            peer_of(address).is_some_and(|peer| peer == im_peer || peer == bank_1_peer)
        })
        .collect();
    assert_eq!(targets.len(), 2, "{:?}", config.p2p.peers);
    let genesis_hash = net.genesis.hash;
    let flooder = std::thread::spawn(move || {
        block_on(flood(
            keypair,
            &genesis_hash,
            targets,
            Duration::from_secs(8),
        ))
    });

    // Payments through bank-1 and bank-2 while the flood goes on.
    for amount in 1..=5 {
        let output = net.pay("Amy Steady", &ben, amount);
        assert!(
            output.status.success(),
            "{}",
            halfveil_tests::describe(&output)
        );
    }
    let report = flooder.join().unwrap();
    eprintln!("flooder: {report:?}");
    for name in ["im", "bank-1"] {
        let offences: f64 = net
            .metrics(name)
            .lines()
            .filter(|line| line.starts_with("halfveil_peer_offences_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let bans = net.metric(name, "halfveil_peer_bans_total");
        eprintln!("{name}: {offences} offences counted, {bans} bans");
        assert!(bans >= 1.0, "{name} never banned the flooder");
        // Three offences reach the ban (25 + 50 + 25 points); more may land meanwhile.
        assert!(offences >= 3.0, "{name} counted {offences} offences");
    }
    // Once banned it was cut off, and in the 8 s of its 30 s ban every connection it made
    // again was closed before it could open a stream: a few bad frames per node in all.
    assert!(report.closed >= 2, "{report:?}");
    assert!(
        report.streams <= 12,
        "it kept writing after its ban: {report:?}"
    );
    let log = std::fs::read_to_string(&net.node("bank-1").log).unwrap();
    assert!(log.contains("peer banned"), "no ban in bank-1's log");
    assert_eq!(net.balance(&amy), 1_000 - 15);
    assert_eq!(net.balance(&ben), 15);
    net.stop_all();
}
