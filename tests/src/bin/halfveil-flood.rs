//! `halfveil-flood --home BANK_HOME --seconds N`: plays the bank whose home is given gone
//! bad (its node key) and floods every peer in its config with invalid and oversized link
//! frames for N seconds, then prints what it saw as JSON. A test harness for measuring how
//! much throughput the others keep beside a flooding genesis peer (scripts/flood-bench.sh);
//! not part of the product.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use halfveil_genesis::keystore;
use halfveil_node::config::Config;

fn main() {
    let mut home = None;
    let mut seconds = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--home" => home = args.next().map(PathBuf::from),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            other => {
                panic!("unknown argument {other}; usage: halfveil-flood --home DIR --seconds N")
            }
        }
    }
    let home = home.expect("--home DIR");
    let config = Config::load(&home).expect("config");
    let keypair =
        keystore::read_node_key(&Config::resolve(&home, &config.keys.node_key)).expect("node key");
    let genesis = halfveil_genesis::Genesis::load(&Config::resolve(&home, &config.keys.genesis))
        .expect("genesis");
    let targets = config
        .p2p
        .peers
        .iter()
        .map(|address| address.parse().expect("peer address"))
        .collect();
    let report = halfveil_tests::net::block_on(halfveil_tests::flood::flood(
        keypair,
        &genesis.hash,
        targets,
        Duration::from_secs(seconds),
    ));
    println!(
        "{{\"streams\":{},\"connections\":{},\"closed\":{},\"refused\":{}}}",
        report.streams, report.connections, report.closed, report.refused
    );
}
