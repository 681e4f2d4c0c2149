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
    let run = &report["networks"][0]["runs"][0];
    assert_eq!(run["offered"], 400, "{report}");
    assert!(run["committed"].as_u64().unwrap() > 0, "{report}");
    assert!(run["latency"]["p50_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(bench_dir.join("bench.json").exists());
    // The picture beside it: an SVG with the axes and one line per series.
    let svg = std::fs::read_to_string(bench_dir.join("bench.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for label in [
        "committed transfers/s",
        "latency (ms, log scale)",
        "1 IM: p99 ms (dashed)",
    ] {
        assert!(svg.contains(label), "{label} missing from the plot");
    }
    assert!(svg.matches("<polyline").count() >= 3, "no lines drawn");
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
    let run = &report["networks"][0]["runs"][0];
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

/// A bench attached with `--rpc` keeps going when a bank it sends to is killed and started
/// again mid-run: it connects again and offers the transfers that had no outcome once more
/// (the bank answers an envelope it has seen with its status), so every offered transfer
/// gets its final answer, none is left unanswered, and the nodes agree afterwards.
#[test]
fn an_attached_bench_survives_a_bank_restart() {
    use std::io::BufRead;

    let mut net = halfveil_tests::net::TestNet::start(2);
    net.wait_connected();
    let out_dir = net.dir.path().join("restart-bench");
    let mut command = halfveil();
    command
        .args(["bench", "--dir"])
        .arg(&out_dir)
        .args(["--rate", "100", "--duration", "6", "--accounts", "20"])
        .arg("--im-home")
        .arg(&net.node("im").home);
    for name in ["im", "bank-1", "bank-2"] {
        command.arg("--rpc").arg(net.rpc(name));
    }
    let mut bench = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The bench says when it starts offering load (on stderr, in text mode; the report is
    // its bench.json); the bank dies 2 s into it.
    let stderr = std::io::BufReader::new(bench.stderr.take().unwrap());
    let (offering, heard) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("offering") {
                let _ = offering.send(());
            }
            lines.push(line);
        }
        lines
    });
    heard
        .recv_timeout(Duration::from_secs(180))
        .expect("the bench never started offering load");
    std::thread::sleep(Duration::from_secs(2));
    net.kill_node("bank-1");
    std::thread::sleep(Duration::from_millis(500));
    net.start_node("bank-1");

    let started = std::time::Instant::now();
    while bench.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(240) {
            let _ = bench.kill();
            panic!("the bench did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = bench.wait_with_output().unwrap();
    let said = reader.join().unwrap().join("\n");
    assert!(output.status.success(), "bench: {said}");
    let report = std::fs::read(out_dir.join("bench.json")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    let run = &report["networks"][0]["runs"][0];
    assert_eq!(run["offered"], 600, "{report}");
    assert_eq!(run["unanswered"], 0, "{report}");
    assert!(run["reconnections"].as_u64().unwrap() >= 1, "{report}");
    // Every transfer has its final answer: committed, or refused by the IM because the
    // payee's bank (bank-1, down) did not answer its approval in time; nothing else.
    let rejected = run["rejected"].as_object().unwrap();
    let refused: u64 = rejected.values().map(|count| count.as_u64().unwrap()).sum();
    assert!(rejected.keys().all(|code| code == "timeout"), "{report}");
    assert_eq!(
        run["committed"].as_u64().unwrap() + refused,
        600,
        "{report}\n{said}"
    );
    assert_eq!(report["nodes_agree"], true, "{report}");
    assert_eq!(report["supply_conserved"], true, "{report}");
    net.stop_all();
}

/// `--im-replicas 1,3 --failover --kills 2`: a network per count, each with a run in which
/// the IM's leader is killed twice and restarted; every transfer still gets its final answer and
/// the nodes of both networks agree afterwards.
#[test]
fn a_bench_compares_one_im_with_three_replicas_through_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "bench", "--dir"])
            .arg(dir.path().join("bench"))
            .args(["--rate", "200", "--duration", "4", "--accounts", "20"])
            .args(["--im-replicas", "1,3", "--failover", "--kills", "2"]),
        Duration::from_secs(300),
    );
    assert!(output.status.success(), "bench: {}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["nodes_agree"], true, "{report}");
    assert_eq!(report["supply_conserved"], true, "{report}");
    assert!(report["reference_rate"].as_f64().unwrap() > 0.0, "{report}");
    let networks = report["networks"].as_array().unwrap();
    assert_eq!(networks.len(), 2, "{report}");
    for (network, replicas, killed) in [(&networks[0], 1, "im"), (&networks[1], 3, "im-")] {
        assert_eq!(network["im_replicas"], replicas, "{report}");
        assert!(network["runs"][0]["reference_fraction"].as_f64().unwrap() > 0.0);
        let failover = &network["failover"];
        let kills = failover["kills"].as_array().unwrap();
        assert_eq!(kills.len(), 2, "{report}");
        for kill in kills {
            assert!(
                kill["node"].as_str().unwrap().starts_with(killed),
                "{report}"
            );
            assert!(kill["gap_ms"].as_f64().unwrap() > 0.0, "{report}");
        }
        assert_eq!(failover["run"]["unanswered"], 0, "{report}");
        assert!(failover["gap_worst_ms"].as_f64().unwrap() > 0.0, "{report}");
        assert_eq!(network["nodes_agree"], true, "{report}");
    }
}
