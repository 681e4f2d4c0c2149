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
