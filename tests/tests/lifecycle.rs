//! A payer rotates its account's key and closes the account, through its bank: the old key
//! stops working (a payment signed with it is refused), the new one pays, and a closed
//! account neither pays nor receives (signed refusals); closing pays the balance out first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::crypto;
use halfveil_node::rpc::TransferStatus;
use halfveil_tests::describe;
use halfveil_tests::net::TestNet;

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", describe(output)))
}

fn account_command(
    net: &TestNet,
    command: &str,
    holder: &str,
    extra: &[&str],
) -> std::process::Output {
    let wallet = net.wallet_path(holder);
    let mut args = vec![
        "--output",
        "json",
        "account",
        command,
        "--wallet",
        wallet.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    net.run(&args)
}

#[test]
fn a_rotated_key_replaces_the_old_one_and_a_closed_account_is_shut() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Lifecycle", "NID-LIFE-1");
    let bob = net.open_account("bank-2", "Bob Lifecycle", "NID-LIFE-2");
    let carol = net.open_account("bank-1", "Carol Lifecycle", "NID-LIFE-3");
    net.issue(&alice, 1_000);
    let old = net.keys("Alice Lifecycle");

    let rotated = account_command(&net, "rotate-key", "Alice Lifecycle", &[]);
    assert!(rotated.status.success(), "{}", describe(&rotated));
    let report = json(&rotated);
    assert_eq!(report["account"], alice.as_str());
    let new_key = report["tx_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, crypto::public_key(&old.tx_key).to_hex());
    net.wait_same_head();
    assert_eq!(net.account_at("bank-2", &alice).unwrap().tx_key, new_key);

    // The wallet pays with the new key; a payment signed with the old key is refused.
    let paid = net.pay("Alice Lifecycle", &bob, 100);
    assert!(paid.status.success(), "{}", describe(&paid));
    assert_eq!(json(&paid)["status"], "committed", "{}", describe(&paid));
    let now = halfveil_node::clock::now_ms().0;
    let (_, envelope) = net.envelope(
        &old,
        &bob,
        5,
        old.next_nonce + 10,
        now + 60_000,
        &old.business_key,
    );
    match net.submit("bank-1", &envelope).unwrap() {
        TransferStatus::Rejected { code, .. } => assert_eq!(code, "bad-credential", "{code}"),
        other => panic!("a payment signed with the rotated-out key: {other:?}"),
    }

    // Closing a non-empty account needs --to; with it, the balance goes first.
    let refused = account_command(&net, "close", "Alice Lifecycle", &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    let closed = account_command(&net, "close", "Alice Lifecycle", &["--to", &carol]);
    assert!(closed.status.success(), "{}", describe(&closed));
    let report = json(&closed);
    assert_eq!(report["paid_out"]["status"], "committed", "{report}");
    assert_eq!(report["paid_out"]["amount"], 900);
    net.wait_same_head();
    let info = net.account_at("bank-2", &alice).unwrap();
    assert!(info.closed);
    assert_eq!(info.balance, 0);
    assert_eq!(net.balance_at("bank-1", &carol), 900);

    // A closed account neither receives nor pays: signed refusals with the reason.
    let to_closed = net.pay("Bob Lifecycle", &alice, 10);
    let outcome = json(&to_closed);
    assert_eq!(outcome["status"], "rejected", "{}", describe(&to_closed));
    assert_eq!(outcome["signature_verified"], true);
    let from_closed = net.pay("Alice Lifecycle", &bob, 1);
    assert!(
        !from_closed.status.success() || json(&from_closed)["status"] == "rejected",
        "{}",
        describe(&from_closed)
    );
    let again = account_command(&net, "close", "Alice Lifecycle", &[]);
    assert!(!again.status.success(), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("closed"),
        "{}",
        describe(&again)
    );
    net.stop_all();
}
