//! Hostile clients against a running bank's public JSON-RPC (issue 18, items 5 and 7): each
//! bad request gets a clear error or is cut off, one address cannot hold more than its share
//! of connections, stalled requests and idle connections time out, nothing panics, the
//! node's memory stays bounded (its RSS is printed after each attack), and payments commit
//! meanwhile and afterwards.

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
    let mut rss = vec![("at start", rss_kib(pid))];

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

    rss.push((
        "bad requests (10 MiB body, 10,000-call batch, 10,000-deep JSON, bad types)",
        rss_kib(pid),
    ));

    // Stalled clients, all at once: headers never finished, a body never finished, a
    // keep-alive connection left idle after one request. Each is cut off by its time-out.
    let stalled = [
        std::thread::spawn({
            let bank = bank.clone();
            move || stalled_for(&bank, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Len", false)
        }),
        std::thread::spawn({
            let bank = bank.clone();
            move || {
                let head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"";
                stalled_for(&bank, head.as_bytes(), false)
            }
        }),
        std::thread::spawn({
            let bank = bank.clone();
            move || {
                let request = format!(
                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{HEAD_CALL}",
                    HEAD_CALL.len()
                );
                stalled_for(&bank, request.as_bytes(), true)
            }
        }),
    ];

    // 1,000 idle connections from one address (127.0.0.5): the node keeps 64 of them (its
    // per-address bound) and turns the rest away at once; meanwhile payers from other
    // addresses are served. The 64 are closed after the first-request time-out.
    let (idle, turned_away) = connect_many(&bank, [127, 0, 0, 5], 1_000);
    eprintln!("idle: {} held, {turned_away} turned away", idle.len());
    assert!(
        idle.len() <= 64,
        "one address held {} connections",
        idle.len()
    );
    assert!(
        turned_away >= 900,
        "only {turned_away} of 1,000 turned away"
    );
    pay(&net, &bob, 0);
    rss.push(("1,000 idle connections from one address", rss_kib(pid)));
    std::thread::sleep(Duration::from_secs(12));
    let open = still_open(idle);
    assert_eq!(
        open, 0,
        "idle connections are closed after the first-request time-out"
    );
    for (which, thread) in ["headers", "body", "idle keep-alive"].iter().zip(stalled) {
        let took = thread.join().unwrap();
        eprintln!("a stalled client ({which}) was cut off after {took:?}");
        assert!(took < Duration::from_secs(45), "{which}: {took:?}");
    }
    rss.push(("stalled headers, body and keep-alive", rss_kib(pid)));
    let refused = net.metric("bank-1", "halfveil_rpc_connections_refused_total");
    assert!(refused >= 900.0, "refused connections counted: {refused}");

    pay(&net, &bob, 1);
    let (start, end) = (rss[0].1, rss[rss.len() - 1].1);
    for (attack, kib) in &rss {
        eprintln!("bank-1 RSS after {attack}: {kib} KiB");
    }
    assert!(
        end < start + 256 * 1024,
        "memory grew by more than 256 MiB: {start} -> {end} KiB"
    );
    net.stop_all();
}

/// A JSON-RPC call that needs nothing.
const HEAD_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"hv_head","params":[]}"#;

/// Alice's `nth` payment (from 0) of 1 to Bob, through bank-1 from 127.0.0.1; it must
/// commit.
fn pay(net: &TestNet, bob: &str, nth: u64) {
    let keys = net.keys("Alice Hostile");
    let (_, envelope) = net.envelope(
        &keys,
        bob,
        1,
        keys.next_nonce + nth,
        now_ms() + 60_000,
        &keys.business_key,
    );
    let status = net.submit("bank-1", &envelope).unwrap();
    assert!(
        matches!(status, halfveil_node::rpc::TransferStatus::Committed { .. }),
        "{status:?}"
    );
}

/// Sends `bytes` and then nothing; returns how long until the server closed the connection
/// (after reading one response first, if `answered`).
fn stalled_for(address: &str, bytes: &[u8], answered: bool) -> Duration {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    if answered {
        let read = stream.read(&mut buffer).unwrap();
        let answer = String::from_utf8_lossy(&buffer[..read]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return started.elapsed(),
            // A 408 or an error response before the close is fine.
            Ok(_) => continue,
        }
    }
}

/// Opens `count` connections to `address` from the loopback address `source`; returns the
/// ones the server holds open and how many it closed at once (read EOF or an answer).
fn connect_many(address: &str, source: [u8; 4], count: usize) -> (Vec<TcpStream>, usize) {
    let target: std::net::SocketAddr = address.parse().unwrap();
    let streams = halfveil_tests::net::block_on(async move {
        let mut streams = Vec::new();
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind((std::net::Ipv4Addr::from(source), 0).into())
                .unwrap();
            if let Ok(stream) = socket.connect(target).await {
                streams.push(stream.into_std().unwrap());
            }
        }
        streams
    });
    // Let the server decide on each before looking.
    std::thread::sleep(Duration::from_millis(500));
    let held: Vec<TcpStream> = streams.into_iter().filter(is_open).collect();
    // Refused at connect, or closed by the server since.
    let closed = count - held.len();
    (held, closed)
}

/// Whether the server still holds `stream` open (a read would block).
fn is_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    matches!((&*stream).read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

/// How many of `streams` the server still holds open.
fn still_open(streams: Vec<TcpStream>) -> usize {
    streams.iter().filter(|stream| is_open(stream)).count()
}
