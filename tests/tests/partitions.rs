//! Pauses and partitions (issue 18): a bank that stops answering, first because its process
//! is paused (SIGSTOP, on loopback), then because the network cuts it off (its link down,
//! in Linux network namespaces). Meanwhile the rest of the network goes on with payments that
//! do not need that bank, and its own payers get a clear error in bounded time instead of a
//! hang. When it comes back it catches up: the same head and state root as the identity
//! manager, the same balances on every node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use halfveil_node::rpc::{ApiClient, TransferStatus};
use halfveil_tests::net::{block_on, client, now_ms, TestNet};
use halfveil_tests::netns::NsNet;
use halfveil_tests::{describe, run_bounded};
use jsonrpsee::core::client::Error as ClientError;

/// How long the bank stays paused or cut off.
const OUTAGE: Duration = Duration::from_secs(10);
/// How long a payment that does not need the missing bank may take to commit.
const COMMIT_BOUND: Duration = Duration::from_secs(15);
/// `halfveil pay --wait` for the missing bank's payer, and how long its CLI may take at most
/// (it connects within 5 s or gives up; the wallet's key derivation comes first).
const PAYER_WAIT_SECS: u64 = 5;
const PAYER_BOUND: Duration = Duration::from_secs(20);

/// Submits `envelope` to the bank at `url` and waits at most `limit` for its final status.
fn submit_within(url: &str, envelope: &str, limit: Duration) -> TransferStatus {
    let outcome = block_on(async {
        tokio::time::timeout(limit, async {
            let client = client(url).await?;
            let status = client.submit(envelope.to_owned()).await?;
            let id = match &status {
                TransferStatus::Pending { id } => id.clone(),
                _ => return Ok::<_, ClientError>(status),
            };
            let mut subscription = client.subscribe_transfer(id).await?;
            match subscription.next().await {
                Some(Ok(status)) => Ok(status),
                other => panic!("no final status from {url}: {other:?}"),
            }
        })
        .await
    });
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => panic!("submitting to {url}: {error}"),
        Err(_) => panic!("a payment through {url} had no final status within {limit:?}"),
    }
}

/// What each paying account is issued: more than one payment of 1 per millisecond for the
/// whole outage could spend.
const FUNDS: u64 = 1_000_000;

/// Pays 1 from `holder`'s account to `payee`, one crafted envelope after another through
/// `bank`, for `period`, each payment committed within [`COMMIT_BOUND`]; returns how many.
fn pay_for(net: &TestNet, bank: &str, holder: &str, payee: &str, period: Duration) -> u64 {
    let keys = net.keys(holder);
    let url = net.rpc(bank);
    let started = Instant::now();
    let mut nonce = keys.next_nonce;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < period {
        let (_, envelope) = net.envelope(
            &keys,
            payee,
            1,
            nonce,
            now_ms() + 60_000,
            &keys.business_key,
        );
        let sent = Instant::now();
        let status = submit_within(&url, &envelope, COMMIT_BOUND);
        assert!(
            matches!(status, TransferStatus::Committed { .. }),
            "payment {nonce} of {holder} through {bank}: {status:?}"
        );
        slowest = slowest.max(sent.elapsed());
        nonce += 1;
    }
    let count = nonce - keys.next_nonce;
    eprintln!("{count} payments of {holder} through {bank} committed, slowest {slowest:?}");
    count
}

/// `halfveil pay --wait` from `holder`'s wallet, run on a thread while the test goes on;
/// the thread returns the output and how long the CLI took.
fn pay_in_background(
    net: &TestNet,
    holder: &str,
    payee: &str,
    amount: u64,
) -> JoinHandle<(Output, Duration)> {
    let wallet = net.wallet_path(holder);
    let mut command: Command = net.cli();
    command
        .args(["--output", "json", "pay", "--wallet"])
        .arg(wallet)
        .args(["--to", payee, "--amount", &amount.to_string(), "--wait"])
        .arg(PAYER_WAIT_SECS.to_string());
    std::thread::spawn(move || {
        let started = Instant::now();
        // A hard bound well above the one asserted, so a hang fails rather than blocks.
        let output = run_bounded(&mut command, PAYER_BOUND + Duration::from_secs(40));
        (output, started.elapsed())
    })
}

/// The missing bank's payer got a clear error, not a hang: a non-zero exit code within
/// [`PAYER_BOUND`] and a message.
fn assert_clear_error(who: &str, payer: JoinHandle<(Output, Duration)>) -> Option<i32> {
    let (output, took) = payer.join().expect("the payer's thread");
    eprintln!(
        "{who}'s payer: exit {:?} after {took:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    assert!(
        !output.status.success(),
        "{who}'s payer succeeded: {}",
        describe(&output)
    );
    let code = output.status.code();
    assert!(
        code.is_some_and(|code| code != 0),
        "{who}'s payer was killed: {}",
        describe(&output)
    );
    assert!(
        took <= PAYER_BOUND,
        "{who}'s payer took {took:?} (bound {PAYER_BOUND:?}): {}",
        describe(&output)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).trim().is_empty(),
        "{who}'s payer failed without a message: {}",
        describe(&output)
    );
    code
}

/// Waits until every node has the IM's head; checks the state root and says how long it took.
fn converge(net: &mut TestNet, bank: &str) -> Duration {
    let started = Instant::now();
    let head = net.wait_same_head();
    let took = started.elapsed();
    let at_bank = net.head(bank);
    let at_im = net.head("im");
    assert_eq!(at_bank.hash, at_im.hash, "{bank}'s head");
    assert_eq!(at_bank.state_root, at_im.state_root, "{bank}'s state root");
    eprintln!(
        "{bank} caught up in {took:?}: height {}, hash {}",
        head.height, head.hash
    );
    took
}

/// A payment through the CLI that must commit.
fn pay_committed(net: &TestNet, holder: &str, payee: &str, amount: u64) {
    let output = net.pay(holder, payee, amount);
    assert!(output.status.success(), "pay: {}", describe(&output));
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["status"], "committed", "{outcome}");
}

/// Bank-1's process is paused for ten seconds. Bank-2's payers, paying each other, need only
/// bank-2 and the IM: every payment commits. Bank-1's payer gets an error (the node is
/// unreachable) within a bounded time. Once bank-1 runs again it catches up.
#[test]
fn a_paused_bank_catches_up_and_the_other_bank_goes_on() {
    let test_started = Instant::now();
    let mut net = TestNet::start(2);
    let dora = net.open_account("bank-1", "Dora Paused", "NID-PAUSE-1");
    let erin = net.open_account("bank-2", "Erin Going", "NID-PAUSE-2");
    let finn = net.open_account("bank-2", "Finn Going", "NID-PAUSE-3");
    net.issue(&dora, FUNDS);
    net.issue(&erin, FUNDS);
    let before = net.wait_same_head();

    net.signal("bank-1", "STOP");
    let paused = Instant::now();
    let payer = pay_in_background(&net, "Dora Paused", &finn, 5);
    let count = pay_for(&net, "bank-2", "Erin Going", &finn, OUTAGE);
    let code = assert_clear_error("bank-1", payer);
    let pause = paused.elapsed();
    net.signal("bank-1", "CONT");
    eprintln!("bank-1 paused for {pause:?}; its payer exited with {code:?}");

    let caught_up = converge(&mut net, "bank-1");
    assert!(count > 0 && net.head("bank-1").height > before.height);
    // The paused bank's payer never reached its bank: nothing of it moved.
    assert_eq!(net.balance(&dora), FUNDS);
    assert_eq!(net.balance(&erin), FUNDS - count);
    assert_eq!(net.balance(&finn), count);
    // And bank-1 serves its payers again.
    pay_committed(&net, "Dora Paused", &finn, 7);
    assert_eq!(net.balance(&dora), FUNDS - 7);
    assert_eq!(net.balance(&finn), count + 7);
    assert_eq!(net.wait_same_head().supply, 2 * FUNDS);
    net.stop_all();
    eprintln!(
        "paused bank: catch-up {caught_up:?}, whole test {:?}",
        test_started.elapsed()
    );
}

/// Bank-2's link to the network goes down for ten seconds. Bank-1's payers, paying each
/// other, need only bank-1 and the IM: every payment commits. Bank-2's payer gets an error
/// within a bounded time. When the link returns, bank-2 catches up.
#[test]
fn a_bank_cut_off_by_the_network_catches_up_when_the_link_returns() {
    let test_started = Instant::now();
    let mut net = match NsNet::start(2) {
        Ok(net) => net,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    eprintln!(
        "nodes at {}, {}, {} (bridge {})",
        net.rpc("im"),
        net.rpc("bank-1"),
        net.rpc("bank-2"),
        net.hosts.gateway()
    );
    let gail = net.open_account("bank-1", "Gail Connected", "NID-CUT-1");
    let hank = net.open_account("bank-1", "Hank Connected", "NID-CUT-2");
    let ivy = net.open_account("bank-2", "Ivy Cut", "NID-CUT-3");
    net.issue(&gail, FUNDS);
    net.issue(&ivy, FUNDS);
    // Payments across the bridge, both ways.
    pay_committed(&net, "Gail Connected", &ivy, 10);
    pay_committed(&net, "Ivy Cut", &hank, 20);
    let before = net.wait_same_head();

    net.cut("bank-2");
    let cut = Instant::now();
    let payer = pay_in_background(&net, "Ivy Cut", &hank, 5);
    let count = pay_for(&net, "bank-1", "Gail Connected", &hank, OUTAGE);
    let code = assert_clear_error("bank-2", payer);
    let outage = cut.elapsed();
    net.reconnect("bank-2");
    eprintln!("bank-2 cut off for {outage:?}; its payer exited with {code:?}");

    let caught_up = converge(&mut net, "bank-2");
    assert!(count > 0 && net.head("bank-2").height > before.height);
    // The cut-off bank's payer never reached its bank: nothing of it moved.
    assert_eq!(net.balance(&gail), FUNDS - 10 - count);
    assert_eq!(net.balance(&hank), 20 + count);
    assert_eq!(net.balance(&ivy), FUNDS - 10);
    // And bank-2 serves its payers again, across the bridge.
    pay_committed(&net, "Ivy Cut", &hank, 7);
    assert_eq!(net.balance(&ivy), FUNDS - 17);
    assert_eq!(net.balance(&hank), 27 + count);
    assert_eq!(net.wait_same_head().supply, 2 * FUNDS);
    net.stop_all();
    eprintln!(
        "cut-off bank: catch-up {caught_up:?}, whole test {:?}",
        test_started.elapsed()
    );
}
