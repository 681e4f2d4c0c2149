//! The payment flow between real node processes on 127.0.0.1: an identity manager and two
//! banks started with `halfveil start`, driven through the CLI and the JSON-RPC API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::crypto::BusinessKey;
use std::collections::BTreeMap;
use std::time::Duration;

use halfveil_node::rpc::{codes, ApiClient, Final, Submitted, TransferStatus, Watched};
use halfveil_tests::describe;
use halfveil_tests::net::{block_on, client, contains, now_ms, public_key, TestNet};
use jsonrpsee::core::client::Error as ClientError;
use rand_core::OsRng;

fn rejected(status: &TransferStatus) -> (String, String) {
    match status {
        TransferStatus::Rejected { by, code, .. } => (by.clone(), code.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn error_code(result: &Result<TransferStatus, ClientError>) -> i32 {
    match result {
        Err(ClientError::Call(object)) => object.code(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

/// Alice (bank-1) pays Bob (bank-2) through the CLI: the receipt verifies, every node holds
/// the same balances, and afterwards no bank's files, logs or RPC answers hold a payer's
/// name, national id or identity key, and the payee's bank never saw the payer's envelope or
/// business key.
#[test]
fn cross_bank_payment_is_equal_on_every_node_and_private() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Liddell", "NID-ALICE-424242");
    let bob = net.open_account("bank-2", "Bob Builder", "NID-BOB-737373");
    net.issue(&alice, 1_000);

    let output = net.pay("Alice Liddell", &bob, 250);
    assert!(output.status.success(), "pay: {}", describe(&output));
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["status"], "committed", "{outcome}");
    assert_eq!(outcome["receipt_verified"], true);

    // The receipt checks offline against the genesis; an altered copy does not.
    let receipt_file = net.dir.path().join("receipt.hex");
    let wallet = net.wallet_path("Alice Liddell");
    let paid = net.run(&[
        "pay",
        "--wallet",
        wallet.to_str().unwrap(),
        "--to",
        &bob,
        "--amount",
        "1",
        "--receipt-out",
        receipt_file.to_str().unwrap(),
    ]);
    assert!(paid.status.success(), "{}", describe(&paid));
    let genesis = net.dir.path().join("network").join("genesis.json");
    let verify = |file: &std::path::Path| {
        net.run(&[
            "receipt",
            "verify",
            "--genesis",
            genesis.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    };
    let checked = verify(&receipt_file);
    assert!(checked.status.success(), "{}", describe(&checked));
    let mut text = std::fs::read_to_string(&receipt_file).unwrap();
    let at = text.len() / 2;
    let flipped = if &text[at..at + 1] == "0" { "1" } else { "0" };
    text.replace_range(at..at + 1, flipped);
    let altered = net.dir.path().join("altered-receipt.hex");
    std::fs::write(&altered, text).unwrap();
    assert_eq!(verify(&altered).status.code(), Some(3));

    // A second payment by a crafted envelope, to follow its bytes.
    let keys = net.keys("Alice Liddell");
    let (_, envelope) = net.envelope(
        &keys,
        &bob,
        50,
        keys.next_nonce,
        now_ms() + 60_000,
        &keys.business_key,
    );
    let status = net.submit("bank-1", &envelope).unwrap();
    assert!(
        matches!(status, TransferStatus::Committed { .. }),
        "{status:?}"
    );

    assert_eq!(net.balance(&alice), 699);
    assert_eq!(net.balance(&bob), 301);
    let head = net.wait_same_head();
    assert_eq!(head.supply, 1_000);
    // Banks relay the blocks gossip brought them only after checking them, and none failed.
    for bank in ["bank-1", "bank-2"] {
        let relayed = net.metric(bank, r#"halfveil_gossip_blocks_total{verdict="relay"}"#);
        assert!(relayed >= 1.0, "{bank} relayed {relayed} checked blocks");
        let invalid = net.metric(bank, r#"halfveil_gossip_blocks_total{verdict="invalid"}"#);
        assert_eq!(invalid, 0.0, "{bank}");
    }

    // Every RPC answer a bank gives about these accounts and blocks.
    let mut rpc_text = String::new();
    for bank in ["bank-1", "bank-2"] {
        for account in [&alice, &bob] {
            rpc_text.push_str(&format!("{:?}", net.account_at(bank, account)));
        }
        let url = net.rpc(bank);
        for height in 1..=head.height {
            let block = halfveil_tests::net::block_on(async {
                use halfveil_node::rpc::ApiClient;
                halfveil_tests::net::client(&url)
                    .await
                    .unwrap()
                    .block(height)
                    .await
                    .unwrap()
            });
            rpc_text.push_str(&serde_json::to_string(&block).unwrap());
        }
    }
    net.stop_all();

    let identity_key = public_key(&keys.identity_key);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("alice's name", b"Alice Liddell".to_vec()),
        ("alice's national id", b"NID-ALICE-424242".to_vec()),
        ("bob's name", b"Bob Builder".to_vec()),
        ("bob's national id", b"NID-BOB-737373".to_vec()),
        ("alice's identity key", identity_key.0.to_vec()),
        (
            "alice's identity key (hex)",
            hex::encode(identity_key.0).into_bytes(),
        ),
    ];
    for bank in ["bank-1", "bank-2"] {
        let mut files = TestNet::files_under(&net.node(bank).home);
        files.push((
            net.node(bank).log.clone(),
            std::fs::read(&net.node(bank).log).unwrap(),
        ));
        assert!(files.len() > 5, "{bank} has files to search");
        for (path, bytes) in &files {
            for (what, secret) in &secrets {
                assert!(
                    !contains(bytes, secret),
                    "{what} found in {}",
                    path.display()
                );
            }
        }
    }
    for (what, secret) in &secrets {
        assert!(
            !contains(rpc_text.as_bytes(), secret),
            "{what} in a bank's RPC answer"
        );
    }
    // The payee's bank: no envelope, no business key of the payer.
    let envelope_bytes = hex::decode(&envelope).unwrap();
    let ciphertext = &envelope_bytes[envelope_bytes.len() - 64..];
    let business_key = keys.business_key.as_bytes().to_vec();
    let mut payee_files = TestNet::files_under(&net.node("bank-2").home);
    payee_files.push((
        net.node("bank-2").log.clone(),
        std::fs::read(&net.node("bank-2").log).unwrap(),
    ));
    for (path, bytes) in &payee_files {
        assert!(
            !contains(bytes, ciphertext),
            "the payer's envelope is in {}",
            path.display()
        );
        assert!(
            !contains(bytes, &business_key)
                && !contains(bytes, hex::encode(&business_key).as_bytes()),
            "the payer's business key is in {}",
            path.display()
        );
    }
}

/// Every way a payment can be refused, with no money moved and the nodes still serving.
#[test]
fn refusals_move_no_money() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Refused", "NID-A-1");
    let bob = net.open_account("bank-2", "Bob Refused", "NID-B-2");
    net.issue(&alice, 100);
    let keys = net.keys("Alice Refused");
    let later = now_ms() + 60_000;
    let mut nonce = keys.next_nonce;

    // The same envelope twice moves money once.
    let (id, envelope) = net.envelope(&keys, &bob, 10, nonce, later, &keys.business_key);
    nonce += 1;
    let first = net.submit("bank-1", &envelope).unwrap();
    assert!(
        matches!(first, TransferStatus::Committed { .. }),
        "{first:?}"
    );
    let second = net.submit("bank-1", &envelope).unwrap();
    match &second {
        TransferStatus::Committed { id: again, .. } => assert_eq!(again, &id.to_hex()),
        TransferStatus::Rejected { code, .. } => assert_eq!(code, "replay"),
        other => panic!("duplicate envelope: {other:?}"),
    }
    assert_eq!(net.balance(&alice), 90);
    assert_eq!(net.balance(&bob), 10);

    // A wrong business key, garbage, a truncated and an oversized envelope, and an unknown
    // account all get the one uniform error or an input error; nothing changes.
    let wrong_key = BusinessKey::generate(&mut OsRng);
    let (_, wrong) = net.envelope(&keys, &bob, 10, nonce, later, &wrong_key);
    let uniform = error_code(&net.submit("bank-1", &wrong));
    assert_eq!(uniform, codes::ENVELOPE);
    let truncated = wrong[..wrong.len() - 40].to_owned();
    assert_eq!(
        error_code(&net.submit("bank-1", &truncated)),
        codes::ENVELOPE
    );
    assert_eq!(
        error_code(&net.submit("bank-1", "00ff00ff")),
        codes::ENVELOPE
    );
    let garbage_hex = net.submit("bank-1", "not hex at all");
    assert!(matches!(
        error_code(&garbage_hex),
        codes::INVALID_INPUT | codes::ENVELOPE
    ));
    let oversized = "ab".repeat(1 << 20);
    assert!(net.submit("bank-1", &oversized).is_err());
    // The payer's envelope at the payee's bank: the same uniform error.
    let (_, elsewhere) = net.envelope(&keys, &bob, 10, nonce, later, &keys.business_key);
    assert_eq!(
        error_code(&net.submit("bank-2", &elsewhere)),
        codes::ENVELOPE
    );

    // The identity manager refuses: insufficient balance, a reused nonce, an expired
    // transfer, an unknown payee.
    let (_, too_much) = net.envelope(&keys, &bob, 1_000, nonce, later, &keys.business_key);
    assert_eq!(
        rejected(&net.submit("bank-1", &too_much).unwrap()),
        ("identity-manager".into(), "insufficient-funds".into())
    );
    let (_, reused) = net.envelope(&keys, &bob, 5, 0, later, &keys.business_key);
    assert_eq!(
        rejected(&net.submit("bank-1", &reused).unwrap()),
        ("identity-manager".into(), "replay".into())
    );
    let (_, expired) = net.envelope(&keys, &bob, 5, nonce, now_ms() - 1_000, &keys.business_key);
    assert_eq!(
        rejected(&net.submit("bank-1", &expired).unwrap()),
        ("identity-manager".into(), "expired".into())
    );
    let stranger = halfveil_ledger::AccountId::from_key(&public_key(
        &halfveil_ledger::crypto::SigningKey::generate(&mut OsRng),
    ))
    .to_string();
    let (_, unknown) = net.envelope(&keys, &stranger, 5, nonce, later, &keys.business_key);
    let (by, _) = rejected(&net.submit("bank-1", &unknown).unwrap());
    assert_eq!(by, "identity-manager");

    // A frozen payer is refused by its bank; a frozen payee by the payee's bank.
    net.bank("bank-1", "freeze", &alice);
    let (_, frozen_payer) = net.envelope(&keys, &bob, 5, nonce, later, &keys.business_key);
    assert_eq!(
        rejected(&net.submit("bank-1", &frozen_payer).unwrap()),
        ("bank-1".into(), "account-frozen".into())
    );
    let output = net.pay("Alice Refused", &bob, 5);
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    net.bank("bank-1", "unfreeze", &alice);
    net.bank("bank-2", "freeze", &bob);
    let (_, frozen_payee) = net.envelope(&keys, &bob, 6, nonce, later, &keys.business_key);
    assert_eq!(
        rejected(&net.submit("bank-1", &frozen_payee).unwrap()),
        ("bank-2".into(), "account-frozen".into())
    );
    net.bank("bank-2", "unfreeze", &bob);

    assert_eq!(net.balance(&alice), 90);
    assert_eq!(net.balance(&bob), 10);
    // Still serving: a good payment goes through.
    let (_, good) = net.envelope(&keys, &bob, 5, nonce + 1, later, &keys.business_key);
    let status = net.submit("bank-1", &good).unwrap();
    assert!(
        matches!(status, TransferStatus::Committed { .. }),
        "{status:?}"
    );
    assert_eq!(net.balance(&alice), 85);
    assert_eq!(net.wait_same_head().supply, 100);
    net.stop_all();
}

/// Batches through `hv_submitAndWatch` (answers first, then outcomes) and through
/// `hv_submitBatch` followed by `hv_subscribeFinals`: every envelope answered in order,
/// every accepted transfer's outcome delivered once, money moved only by the good ones.
#[test]
fn batches_are_answered_then_watched_to_the_end() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Batch", "NID-A-9");
    let bob = net.open_account("bank-2", "Bob Batch", "NID-B-9");
    net.issue(&alice, 100);
    let keys = net.keys("Alice Batch");
    let later = now_ms() + 60_000;
    let nonce = keys.next_nonce;
    let (good, good_envelope) = net.envelope(&keys, &bob, 10, nonce, later, &keys.business_key);
    let (poor, poor_envelope) =
        net.envelope(&keys, &bob, 1_000, nonce + 1, later, &keys.business_key);
    let (later_good, later_envelope) =
        net.envelope(&keys, &bob, 5, nonce + 2, later, &keys.business_key);
    let url = net.rpc("bank-1");
    let limit = Duration::from_secs(30);

    let outcomes: BTreeMap<String, Option<String>> = block_on(async {
        let client = client(&url).await.unwrap();
        let envelopes = vec![good_envelope, "00ff00ff".to_owned(), poor_envelope];
        let mut watched = client.submit_and_watch(envelopes).await.unwrap();
        let answers = match tokio::time::timeout(limit, watched.next()).await {
            Ok(Some(Ok(Watched::Submitted { answers }))) => answers,
            other => panic!("expected the answers first, got {other:?}"),
        };
        assert_eq!(answers.len(), 3);
        assert!(
            matches!(&answers[1], Submitted::Error { code, .. } if *code == codes::ENVELOPE),
            "{:?}",
            answers[1]
        );
        let mut outcomes = BTreeMap::new();
        let mut pending = 0;
        for answer in [&answers[0], &answers[2]] {
            match answer {
                Submitted::Pending { .. } => pending += 1,
                Submitted::Committed { id, .. } => {
                    outcomes.insert(id.clone(), None);
                }
                Submitted::Rejected { id, code } => {
                    outcomes.insert(id.clone(), Some(code.clone()));
                }
                Submitted::Error { message, .. } => panic!("accepted envelope refused: {message}"),
            }
        }
        let mut seen = 0;
        while seen < pending {
            match tokio::time::timeout(limit, watched.next()).await {
                Ok(Some(Ok(Watched::Finals { finals }))) => {
                    for Final { id, code, height } in finals {
                        assert_eq!(height.is_some(), code.is_none(), "{id}");
                        assert!(outcomes.insert(id, code).is_none(), "an outcome twice");
                        seen += 1;
                    }
                }
                other => panic!("expected finals, got {other:?}"),
            }
        }
        outcomes
    });
    assert_eq!(outcomes.get(&good.to_hex()), Some(&None), "{outcomes:?}");
    assert_eq!(
        outcomes.get(&poor.to_hex()),
        Some(&Some("insufficient-funds".to_owned())),
        "{outcomes:?}"
    );

    let finals: Vec<Final> = block_on(async {
        let client = client(&url).await.unwrap();
        let answers = client.submit_batch(vec![later_envelope]).await.unwrap();
        let id = match &answers[..] {
            [Submitted::Pending { id }] => id.clone(),
            other => panic!("expected one pending answer, got {other:?}"),
        };
        let mut subscription = client.subscribe_finals(vec![id]).await.unwrap();
        match tokio::time::timeout(limit, subscription.next()).await {
            Ok(Some(Ok(finals))) => finals,
            other => panic!("expected finals, got {other:?}"),
        }
    });
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].id, later_good.to_hex());
    assert!(finals[0].height.is_some() && finals[0].code.is_none());

    assert_eq!(net.balance(&alice), 85);
    assert_eq!(net.balance(&bob), 15);
    net.stop_all();
}

/// A bank killed while payments go on restarts, catches up from its peers, verifies every
/// block, and ends with the same head, state root and balances as the others.
#[test]
fn a_crashed_bank_catches_up_after_restart() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Crash", "NID-C-1");
    let carol = net.open_account("bank-1", "Carol Crash", "NID-C-3");
    let bob = net.open_account("bank-2", "Bob Crash", "NID-C-2");
    net.issue(&alice, 1_000);
    net.wait_same_head();
    net.kill_node("bank-2");

    let keys = net.keys("Alice Crash");
    let later = now_ms() + 60_000;
    for nonce in 0..20 {
        let (_, envelope) = net.envelope(&keys, &carol, 1, nonce, later, &keys.business_key);
        let status = net.submit("bank-1", &envelope).unwrap();
        assert!(
            matches!(status, TransferStatus::Committed { .. }),
            "{status:?}"
        );
    }
    let head = net.head("im");
    assert!(head.height >= 5, "payments went on without bank-2");

    net.start_node("bank-2");
    net.wait_connected();
    let caught_up = net.wait_same_head();
    assert!(caught_up.height >= head.height);
    assert_eq!(net.head("bank-2").state_root, net.head("im").state_root);
    assert_eq!(net.balance(&alice), 980);
    assert_eq!(net.balance(&carol), 20);
    assert_eq!(net.balance(&bob), 0);
    // And it serves its accounts again.
    let (_, envelope) = net.envelope(&keys, &bob, 7, 20, later, &keys.business_key);
    let status = net.submit("bank-1", &envelope).unwrap();
    assert!(
        matches!(status, TransferStatus::Committed { .. }),
        "{status:?}"
    );
    assert_eq!(net.balance(&bob), 7);
    net.stop_all();
}

/// A node of another genesis, dialling our identity manager, is never admitted.
#[test]
fn a_node_not_in_genesis_cannot_connect() {
    let mut net = TestNet::start(1);
    let mut stranger = TestNet::start(1);
    let im_address = {
        let status = net.status("im").unwrap();
        let config = halfveil_node::config::Config::load(&net.node("im").home).unwrap();
        format!("{}/p2p/{}", config.p2p.listen, status.peer_id)
    };
    // Point the stranger's bank at our identity manager and restart it.
    stranger.stop_node("bank-1");
    let config_path = stranger.node("bank-1").home.join("config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config.replacen("peers = [", &format!("peers = [\"{im_address}\", "), 1);
    std::fs::write(&config_path, config).unwrap();
    stranger.start_node("bank-1");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        net.status("im").unwrap().peers,
        1,
        "only our bank is connected"
    );
    let outsider = stranger.status("bank-1").unwrap();
    assert!(
        outsider.peers <= 1,
        "the stranger reached only its own IM: {outsider:?}"
    );
    assert_eq!(outsider.height, stranger.head("im").height);
    net.stop_all();
    stranger.stop_all();
}

/// With the identity manager down, a bank that missed blocks catches up from the other
/// bank, verifying every block, and ends with the same head.
#[test]
fn a_bank_catches_up_from_another_bank_while_the_im_is_down() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Peer", "NID-P-1");
    let carol = net.open_account("bank-1", "Carol Peer", "NID-P-3");
    net.issue(&alice, 100);
    net.wait_same_head();
    net.stop_node("bank-2");
    let keys = net.keys("Alice Peer");
    let later = now_ms() + 60_000;
    for nonce in 0..5 {
        let (_, envelope) = net.envelope(&keys, &carol, 1, nonce, later, &keys.business_key);
        let status = net.submit("bank-1", &envelope).unwrap();
        assert!(
            matches!(status, TransferStatus::Committed { .. }),
            "{status:?}"
        );
    }
    // bank-1 holds the IM's head; then the IM goes away.
    let head = net.wait_same_head();
    net.stop_node("im");
    net.start_node("bank-2");
    let started = std::time::Instant::now();
    let url = net.rpc("bank-2");
    let bank_2_head = || {
        halfveil_tests::net::block_on(async {
            use halfveil_node::rpc::ApiClient;
            halfveil_tests::net::client(&url)
                .await
                .ok()?
                .head()
                .await
                .ok()
        })
    };
    loop {
        let seen = bank_2_head();
        if seen.as_ref() == Some(&head) {
            break;
        }
        assert!(
            started.elapsed() < halfveil_tests::net::STEP_LIMIT,
            "bank-2 did not catch up from bank-1: {seen:?} vs {head:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(net.balance_at("bank-2", &carol), 5);

    // A transfer bank-1 cannot forward stays pending while the IM is away, even past its
    // expiry: a bank never refuses for expiry on its own clock (the IM might have committed
    // it). When the IM returns, the bank forwards it again and the IM, past its expiry,
    // refuses it, signed.
    let (id, stranded) = net.envelope(&keys, &carol, 1, 5, now_ms() + 1_000, &keys.business_key);
    let url = net.rpc("bank-1");
    let status = |url: &str| {
        halfveil_tests::net::block_on(async {
            use halfveil_node::rpc::ApiClient;
            let client = halfveil_tests::net::client(url).await.unwrap();
            client.submit(stranded.clone()).await.unwrap()
        })
    };
    assert_eq!(status(&url), TransferStatus::Pending { id: id.to_hex() });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(status(&url), TransferStatus::Pending { id: id.to_hex() });
    net.start_node("im");
    net.wait_connected();
    assert_eq!(
        rejected(&net.submit("bank-1", &stranded).unwrap()),
        ("identity-manager".into(), "expired".into())
    );
    assert_eq!(net.balance_at("bank-1", &carol), 5);
    net.stop_all();
}
