//! Hostile clients against a running bank's public JSON-RPC (issue 18, items 5 and 7): each
//! bad request gets a clear error or is cut off, nothing panics, the node's memory stays
//! bounded, and payments still commit afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use halfveil_tests::net::{now_ms, TestNet};

/// `host:port` of a node's RPC URL.
fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Sends one HTTP POST with `body` and returns the response (status line and body), or
/// what reading gave when the server cut the connection.
fn post(address: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may refuse and close before the whole body is sent.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn call(address: &str, json: &str) -> String {
    post(address, json.as_bytes())
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_requests_get_errors_and_payments_go_on() {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Hostile", "NID-H-1");
    let bob = net.open_account("bank-2", "Bob Hostile", "NID-H-2");
    net.issue(&alice, 100);
    let bank = address(&net.rpc("bank-1"));
    let pid = net.pid("bank-1").unwrap();
    let rss_before = rss_kib(pid);

    // A 10 MiB body that is not JSON-RPC: an error, not a crash.
    let big = vec![b'['; 10 << 20];
    let answer = post(&bank, &big);
    assert!(
        answer.contains("error") || answer.starts_with("HTTP/1.1 4"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    // A batch of 10,000 calls: refused as too large.
    let batch: Vec<String> = (0..10_000)
        .map(|id| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"hv_head","params":[]}}"#))
        .collect();
    let answer = call(&bank, &format!("[{}]", batch.join(",")));
    assert!(
        answer.contains("error"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    // JSON nested 10,000 deep.
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"hv_submit","params":[{}{}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(call(&bank, &nested).contains("error"));
    // Wrong types, bad hex, an unknown method.
    let wrong = call(
        &bank,
        r#"{"jsonrpc":"2.0","id":1,"method":"hv_block","params":["ten"]}"#,
    );
    assert!(wrong.contains("-32602"), "{wrong}");
    let bad_hex = call(
        &bank,
        r#"{"jsonrpc":"2.0","id":1,"method":"hv_submit","params":["zz"]}"#,
    );
    assert!(bad_hex.contains("error"), "{bad_hex}");
    let unknown = call(
        &bank,
        r#"{"jsonrpc":"2.0","id":1,"method":"hv_mint","params":[]}"#,
    );
    assert!(unknown.contains("-32601"), "{unknown}");

    // A client that never finishes its request is cut off.
    let mut slow = TcpStream::connect(&bank).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Len")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    let closed = match slow.read(&mut buffer) {
        Ok(_) => true,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed && started.elapsed() < Duration::from_secs(45),
        "a stalled request is closed by the server (took {:?})",
        started.elapsed()
    );

    // 1,000 idle connections: beyond the node's bound they are refused or closed, the idle
    // ones are cut off, and a payment commits once they are gone.
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        if let Ok(stream) = TcpStream::connect(&bank) {
            idle.push(stream);
        }
    }
    std::thread::sleep(Duration::from_secs(15));
    let mut open = 0;
    for stream in &mut idle {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        // `WouldBlock` means the server still holds it open.
        let read = stream.read(&mut byte);
        if matches!(read, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock) {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "idle connections are closed after the first-request time-out"
    );
    drop(idle);

    let keys = net.keys("Alice Hostile");
    let (_, envelope) = net.envelope(
        &keys,
        &bob,
        5,
        keys.next_nonce,
        now_ms() + 60_000,
        &keys.business_key,
    );
    let status = net.submit("bank-1", &envelope).unwrap();
    assert!(
        matches!(status, halfveil_node::rpc::TransferStatus::Committed { .. }),
        "{status:?}"
    );
    let rss_after = rss_kib(pid);
    eprintln!("bank-1 RSS: {rss_before} KiB before, {rss_after} KiB after the hostile requests");
    assert!(
        rss_after < rss_before + 256 * 1024,
        "memory grew by more than 256 MiB: {rss_before} -> {rss_after} KiB"
    );
    net.stop_all();
}
