//! `halfveil demo`, the README's main job, as a user runs it: with one identity manager,
//! and with three replicas, where it kills the leading replica after the first payment.
//! Every payment commits with a verified receipt, every node reports the same balances and
//! every node stops cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use halfveil_tests::{describe, halfveil, run_bounded};
use serde_json::Value;

/// Runs the demo with `replicas` IM replicas and returns its JSON report.
fn demo(replicas: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let output = run_bounded(
        halfveil()
            .args([
                "--output",
                "json",
                "demo",
                "--im-replicas",
                replicas,
                "--dir",
            ])
            .arg(dir.path().join("demo")),
        Duration::from_secs(300),
    );
    assert!(output.status.success(), "demo: {}", describe(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["nodes_stopped_cleanly"], true, "{report}");
    let payments = report["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 3, "{report}");
    for payment in payments {
        assert_eq!(payment["receipt_verified"], true, "{payment}");
    }
    assert_eq!(report["frozen_payment"]["status"], "rejected", "{report}");
    for balance in report["balances"].as_array().unwrap() {
        let seen: Vec<&Value> = balance["seen_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| &pair[1])
            .collect();
        assert!(seen.iter().all(|value| *value == seen[0]), "{balance}");
    }
    report
}

/// The signers of the demo's payments, in order.
fn signers(report: &Value) -> Vec<String> {
    report["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|payment| payment["signed_by"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_demo_runs_with_one_identity_manager() {
    let report = demo("1");
    assert!(
        signers(&report).iter().all(|by| by == "identity manager"),
        "{report}"
    );
    assert_eq!(
        report["balances"][0]["seen_by"].as_array().unwrap().len(),
        3
    );
}

#[test]
fn the_demo_kills_the_leading_replica_and_payments_go_on() {
    let report = demo("3");
    // Every replica signs each committed block with its own key and a receipt may carry
    // any replica's signature; the killed one signs nothing until it has been restarted,
    // after the last payment.
    let killed = report["killed_replica"].as_str().unwrap();
    assert!(killed.starts_with("IM replica "), "{report}");
    assert!(
        signers(&report)[1..].iter().all(|by| by != killed),
        "{report}"
    );
    // Five nodes, the restarted replica among them, report the same balances.
    assert_eq!(
        report["balances"][0]["seen_by"].as_array().unwrap().len(),
        5
    );
}
