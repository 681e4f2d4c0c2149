//! Answers that hold (issue 18, item 6), between real node processes on 127.0.0.1: a signed
//! refusal is final across resubmissions, balance changes and restarts; a committed transfer
//! resubmitted after a restart gets its committed status and moves money once; a transfer a
//! bank accepted while the identity manager was down commits when it returns; and the RPC
//! server's table of status waiters does not keep what clients left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use halfveil_node::rpc::{ApiClient, TransferStatus};
use halfveil_tests::net::{block_on, client, now_ms, TestNet};
use halfveil_tests::{describe, halfveil, run_bounded};

/// Who refused, why, and the signed refusal itself (deterministic signatures: the same
/// refusal is the same bytes).
fn refusal(status: &TransferStatus) -> (String, String, String) {
    match status {
        TransferStatus::Rejected {
            by,
            code,
            rejection,
            ..
        } => (by.clone(), code.clone(), rejection.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn committed_height(status: &TransferStatus) -> u64 {
    match status {
        TransferStatus::Committed { height, .. } => *height,
        other => panic!("expected a committed transfer, got {other:?}"),
    }
}

#[test]
fn a_signed_refusal_is_final_and_a_resubmission_moves_money_once() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Final", "NID-F-1");
    let bob = net.open_account("bank-2", "Bob Final", "NID-F-2");
    net.issue(&alice, 100);
    let keys = net.keys("Alice Final");
    let later = now_ms() + 120_000;
    let nonce = keys.next_nonce;

    // Refused by the payer's bank (frozen), then the account is unfrozen: still refused.
    net.bank("bank-1", "freeze", &alice);
    let (_, frozen) = net.envelope(&keys, &bob, 10, nonce, later, &keys.business_key);
    let first = refusal(&net.submit("bank-1", &frozen).unwrap());
    assert_eq!(
        (first.0.as_str(), first.1.as_str()),
        ("bank-1", "account-frozen")
    );
    net.bank("bank-1", "unfreeze", &alice);
    assert_eq!(refusal(&net.submit("bank-1", &frozen).unwrap()), first);

    // Refused by the identity manager (insufficient funds), then the payer is funded.
    let (_, too_much) = net.envelope(&keys, &bob, 500, nonce + 1, later, &keys.business_key);
    let second = refusal(&net.submit("bank-1", &too_much).unwrap());
    assert_eq!(second.1, "insufficient-funds");
    net.issue(&alice, 1_000);

    // A payment that commits.
    let (_, good) = net.envelope(&keys, &bob, 7, nonce + 2, later, &keys.business_key);
    let height = committed_height(&net.submit("bank-1", &good).unwrap());

    // The payer's bank crashes and comes back: every answer holds.
    net.kill_node("bank-1");
    net.start_node("bank-1");
    net.wait_connected();
    net.wait_same_head();
    assert_eq!(refusal(&net.submit("bank-1", &frozen).unwrap()), first);
    assert_eq!(refusal(&net.submit("bank-1", &too_much).unwrap()), second);
    assert_eq!(
        committed_height(&net.submit("bank-1", &good).unwrap()),
        height
    );

    // The identity manager crashes and comes back too.
    net.kill_node("im");
    net.start_node("im");
    net.wait_connected();
    assert_eq!(refusal(&net.submit("bank-1", &too_much).unwrap()), second);
    assert_eq!(
        committed_height(&net.submit("bank-1", &good).unwrap()),
        height
    );

    assert_eq!(net.balance(&alice), 1_093);
    assert_eq!(net.balance(&bob), 7);
    assert_eq!(net.wait_same_head().supply, 1_100);
    net.stop_all();
}

#[test]
fn a_transfer_accepted_while_the_im_is_down_commits_when_it_returns() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Waits", "NID-W-1");
    let bob = net.open_account("bank-2", "Bob Waits", "NID-W-2");
    net.issue(&alice, 100);
    net.wait_same_head();
    let keys = net.keys("Alice Waits");
    let (id, envelope) = net.envelope(
        &keys,
        &bob,
        9,
        keys.next_nonce,
        now_ms() + 120_000,
        &keys.business_key,
    );

    net.kill_node("im");
    let url = net.rpc("bank-1");
    let accepted = block_on(async {
        let client = client(&url).await.unwrap();
        client.submit(envelope.clone()).await.unwrap()
    });
    assert!(
        matches!(&accepted, TransferStatus::Pending { id: pending } if *pending == id.to_hex()),
        "{accepted:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    net.start_node("im");
    net.wait_connected();
    let status = net.submit("bank-1", &envelope).unwrap();
    committed_height(&status);
    assert_eq!(net.balance(&bob), 9);
    net.stop_all();
}

#[test]
fn waiters_of_clients_that_left_are_freed() {
    let mut net = TestNet::start(1);
    let url = net.rpc("bank-1");
    let held = |net: &TestNet| net.metric("bank-1", "halfveil_rpc_waiters");
    let wait_for = |net: &TestNet, done: &dyn Fn(f64) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(held(net)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        held(net)
    };
    // One client subscribes to many transfers that will never exist...
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let subscriptions = runtime.block_on(async {
        let client = client(&url).await.unwrap();
        let mut subscriptions = Vec::new();
        for round in 0..16u32 {
            let ids: Vec<String> = (0..1_000u32)
                .map(|n| {
                    let mut bytes = [0u8; 32];
                    bytes[..4].copy_from_slice(&round.to_le_bytes());
                    bytes[4..8].copy_from_slice(&n.to_le_bytes());
                    hex::encode(bytes)
                })
                .collect();
            subscriptions.push(client.subscribe_finals(ids).await.unwrap());
        }
        (client, subscriptions)
    });
    assert_eq!(
        wait_for(&net, &|held| held >= 16_000.0),
        16_000.0,
        "every wait registered"
    );
    // ...then leaves without unsubscribing: the table empties.
    drop(subscriptions);
    drop(runtime);
    assert_eq!(
        wait_for(&net, &|held| held == 0.0),
        0.0,
        "waiters of a client that left are swept"
    );
    net.stop_all();
}

#[test]
fn a_node_refuses_another_nodes_data_and_checks_keys_before_touching_data() {
    let mut net = TestNet::start(2);
    net.wait_same_head();
    net.stop_all();
    let bank_1 = net.node("bank-1").home.clone();
    let bank_2 = net.node("bank-2").home.clone();

    // bank-1's home pointed at bank-2's data: refused, nothing changed.
    let own_data = bank_1.join("data");
    let kept = bank_1.join("data.kept");
    std::fs::rename(&own_data, &kept).unwrap();
    copy_dir(&bank_2.join("data"), &own_data);
    let output = run_bounded(
        halfveil().arg("start").arg("--home").arg(&bank_1),
        Duration::from_secs(60),
    );
    // 3: the home does not fit (a supervisor should not restart it), not a crash (1).
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("was written by node"), "{said}");
    std::fs::remove_dir_all(&own_data).unwrap();
    std::fs::rename(&kept, &own_data).unwrap();

    // A home whose signing key is not the one genesis names: refused before `data/` exists.
    let data = bank_2.join("data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::copy(
        bank_1.join("attestation_key.json"),
        bank_2.join("attestation_key.json"),
    )
    .unwrap();
    let output = run_bounded(
        halfveil().arg("start").arg("--home").arg(&bank_2),
        Duration::from_secs(60),
    );
    // 1: the copied key file does not open with this home's password.
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(!data.exists(), "data/ was not created");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
