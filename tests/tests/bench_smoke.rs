//! A short run of `halfveil bench` proves the load generator, the batched RPC path and the
//! after-run checks work. It measures nothing: speed is never a timed test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use halfveil_tests::{describe, halfveil, run_bounded};

#[test]
fn a_short_bench_commits_and_every_node_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let bench_dir = dir.path().join("bench");
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "bench", "--dir"])
            .arg(&bench_dir)
            .args(["--rate", "200", "--duration", "2", "--accounts", "20"]),
        Duration::from_secs(240),
    );
    assert!(output.status.success(), "bench: {}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["nodes_agree"], true, "{report}");
    assert_eq!(report["supply_conserved"], true, "{report}");
    let run = &report["runs"][0];
    assert_eq!(run["offered"], 400, "{report}");
    assert!(run["committed"].as_u64().unwrap() > 0, "{report}");
    assert!(run["latency"]["p50_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(bench_dir.join("bench.json").exists());
}

#[test]
fn a_bench_attaches_to_running_nodes_and_reports_their_cpu() {
    let mut net = halfveil_tests::net::TestNet::start(2);
    net.wait_connected();
    // A payment before the bench: its supply is not the bench's, and must stay as it was.
    let before = net.open_account("bank-1", "Ada Before", "BEFORE-1");
    net.issue(&before, 777);
    let out_dir = net.dir.path().join("attached-bench");
    let im_home = net.node("im").home.clone();
    let mut command = halfveil();
    command
        .args(["--output", "json", "bench", "--dir"])
        .arg(&out_dir)
        .args(["--rate", "100", "--duration", "2", "--accounts", "10"])
        .arg("--im-home")
        .arg(&im_home);
    for name in ["im", "bank-1", "bank-2"] {
        command.arg("--rpc").arg(net.rpc(name));
    }
    let output = run_bounded(&mut command, Duration::from_secs(240));
    assert!(output.status.success(), "bench: {}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["attached"], true, "{report}");
    assert_eq!(report["nodes_agree"], true, "{report}");
    assert_eq!(report["supply_conserved"], true, "{report}");
    let run = &report["runs"][0];
    assert!(run["committed"].as_u64().unwrap() > 0, "{report}");
    assert!(run["blocks"].as_u64().unwrap() > 0, "{report}");
    let cpu = run["cpu"].as_array().unwrap();
    assert_eq!(cpu.len(), 3, "{report}");
    assert!(
        cpu.iter()
            .all(|node| node["cpu_seconds"].as_f64().unwrap() > 0.0),
        "{report}"
    );
    // The nodes were attached to, not started: they still run, and the earlier account
    // kept its funds.
    assert_eq!(net.balance(&before), 777);

    // Without the IM's home the bench cannot fund accounts, and says so (usage: 2).
    let output = run_bounded(
        halfveil()
            .args(["bench", "--dir"])
            .arg(net.dir.path().join("no-admin"))
            .arg("--rpc")
            .arg(net.rpc("im")),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    net.stop_all();
}
