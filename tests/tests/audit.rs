//! Auditors: export the chain, replay it from genesis, find every altered field and random
//! byte flips, and run a threshold disclosure that is recorded on chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

use halfveil_genesis::Genesis;
use halfveil_ledger::{apply_blocks, Block, Op, State};
use halfveil_tests::net::{contains, TestNet};
use halfveil_tests::verifier;
use halfveil_tests::{describe, run_bounded};
use rand_core::RngCore;

const MAGIC: &[u8; 8] = b"HVCHAIN1";

/// The genesis text and the encoded blocks of a chain file.
fn read_chain(path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], MAGIC);
    let mut offset = 8;
    let mut frames = Vec::new();
    while offset < bytes.len() {
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        frames.push(bytes[offset + 4..offset + 4 + length].to_vec());
        offset += 4 + length;
    }
    let genesis = frames.remove(0);
    (genesis, frames)
}

fn write_chain(path: &Path, genesis: &[u8], blocks: &[Vec<u8>]) {
    let mut bytes = MAGIC.to_vec();
    for frame in std::iter::once(genesis).chain(blocks.iter().map(Vec::as_slice)) {
        bytes.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        bytes.extend_from_slice(frame);
    }
    std::fs::write(path, bytes).unwrap();
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", describe(output)))
}

struct Audit {
    net: TestNet,
    /// Whether the second verifier (tools/verify-chain) is installed here.
    second_verifier: bool,
    chain: PathBuf,
    transfer: String,
    alice: String,
}

impl Audit {
    fn replay_file(&self, file: &Path) -> Output {
        self.net.run(&[
            "--output",
            "json",
            "audit",
            "replay",
            "--file",
            file.to_str().unwrap(),
        ])
    }

    /// Replays `file` with `halfveil audit replay` and, where it is installed, with the second
    /// verifier, which must agree (`what` names the case in a failure).
    fn replay_both(&self, file: &Path, what: &str) -> Output {
        let output = self.replay_file(file);
        if self.second_verifier {
            verifier::assert_agrees(file, &output, what);
        }
        output
    }

    fn auditors(&self) -> PathBuf {
        self.net.dir.path().join("network").join("auditors")
    }

    fn sign(&self, order: &Path, auditor: usize) -> Output {
        let key = self.auditors().join(format!("auditor-{auditor}.json"));
        let password = self.auditors().join("password");
        self.net.run(&[
            "audit",
            "order",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--password-file",
            password.to_str().unwrap(),
            order.to_str().unwrap(),
        ])
    }

    fn record(&self, order: &Path) -> Output {
        self.net.run(&[
            "--output",
            "json",
            "audit",
            "order",
            "record",
            "--rpc",
            &self.net.rpc("im"),
            order.to_str().unwrap(),
        ])
    }

    /// Holder `holder` (auditor-1..3, or `im`) releases its shares of `order` into `out`.
    fn share(&self, order: &Path, holder: &str, out: &Path) -> Output {
        let (share, key, password) = if holder == "im" {
            let home = self.net.dir.path().join("network").join("im");
            (
                home.join("disclosure_share.json"),
                home.join("validator_key.json"),
                home.join("password"),
            )
        } else {
            (
                self.auditors().join(format!("{holder}-share.json")),
                self.auditors().join(format!("{holder}.json")),
                self.auditors().join("password"),
            )
        };
        self.net.run(&[
            "--output",
            "json",
            "audit",
            "share",
            "--rpc",
            &self.net.rpc("im"),
            "--order",
            order.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
            "--signing-key",
            key.to_str().unwrap(),
            "--password-file",
            password.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    }

    fn disclose(&self, order: &Path, requester: &Path, shares: &[&Path]) -> Output {
        let mut args = vec![
            "--output".to_owned(),
            "json".to_owned(),
            "audit".to_owned(),
            "disclose".to_owned(),
            "--rpc".to_owned(),
            self.net.rpc("bank-1"),
            "--order".to_owned(),
            order.to_str().unwrap().to_owned(),
            "--key".to_owned(),
            requester.to_str().unwrap().to_owned(),
            "--shares".to_owned(),
        ];
        args.extend(shares.iter().map(|path| path.to_str().unwrap().to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.net.run(&args)
    }

    fn new_order(&self, name: &str, requester: &Path) -> PathBuf {
        let order = self.net.dir.path().join(name);
        let genesis = self.net.dir.path().join("network").join("genesis.json");
        let output = self.net.run(&[
            "audit",
            "order",
            "new",
            "--transfer",
            &self.transfer,
            "--basis",
            "court order 2026/117",
            "--requester-key",
            requester.to_str().unwrap(),
            "--genesis",
            genesis.to_str().unwrap(),
            "--out",
            order.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "order new: {}", describe(&output));
        order
    }
}

/// A network with two payments and an exported chain.
fn setup() -> Audit {
    let mut net = TestNet::start(2);
    let alice = net.open_account("bank-1", "Alice Audited", "NID-AUDIT-1111");
    let bob = net.open_account("bank-2", "Bob Audited", "NID-AUDIT-2222");
    net.issue(&alice, 500);
    let paid = net.pay("Alice Audited", &bob, 120);
    assert!(paid.status.success(), "{}", describe(&paid));
    let transfer = json(&paid)["transfer"].as_str().unwrap().to_owned();
    let again = net.pay("Alice Audited", &bob, 30);
    assert!(again.status.success(), "{}", describe(&again));
    net.wait_same_head();
    let chain = net.dir.path().join("chain.hv");
    let output = net.run(&[
        "chain",
        "export",
        "--rpc",
        &net.rpc("bank-2"),
        "--out",
        chain.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "export: {}", describe(&output));
    Audit {
        net,
        second_verifier: verifier::available(),
        chain,
        transfer,
        alice,
    }
}

#[test]
fn replay_verifies_the_chain_and_finds_every_altered_field() {
    let audit = setup();
    let output = audit.replay_both(&audit.chain, "the exported chain");
    assert!(output.status.success(), "replay: {}", describe(&output));
    let summary = json(&output);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["transfers"], 2);
    assert_eq!(summary["supply"], 500);
    let blocks = summary["blocks"].as_u64().unwrap();
    // The same from a node.
    let from_node = audit.net.run(&[
        "--output",
        "json",
        "audit",
        "replay",
        "--rpc",
        &audit.net.rpc("bank-1"),
    ]);
    assert!(from_node.status.success(), "{}", describe(&from_node));
    assert_eq!(json(&from_node)["head_hash"], summary["head_hash"]);

    // The exported chain and the replay output hold no identity.
    let chain_bytes = std::fs::read(&audit.chain).unwrap();
    for secret in [
        "Alice Audited",
        "NID-AUDIT-1111",
        "Bob Audited",
        "NID-AUDIT-2222",
    ] {
        assert!(
            !contains(&chain_bytes, secret.as_bytes()),
            "{secret} in the chain"
        );
        assert!(
            !contains(&output.stdout, secret.as_bytes()),
            "{secret} in replay"
        );
    }

    // One altered field at a time: replay names the block and the reason.
    let (genesis, frames) = read_chain(&audit.chain);
    let decoded: Vec<Block> = frames
        .iter()
        .map(|bytes| Block::decode(bytes).unwrap())
        .collect();
    let transfer_at = decoded
        .iter()
        .position(|block| block.ops.iter().any(|op| matches!(op, Op::Transfer(_))))
        .unwrap();
    type Change = fn(&mut Block);
    let cases: Vec<(&str, usize, Change, &str)> = vec![
        ("parent", 1, |b| b.signed.header.parent.0[0] ^= 1, "parent"),
        ("time", 1, |b| b.signed.header.time.0 += 1, "signature"),
        (
            "state root",
            1,
            |b| b.signed.header.state_root.0[3] ^= 1,
            "signature",
        ),
        (
            "block signature",
            1,
            |b| b.signed.signature.0[5] ^= 1,
            "signature",
        ),
        ("height", 1, |b| b.signed.header.height.0 += 1, "height"),
        (
            "transfer amount",
            transfer_at,
            |b| {
                for op in &mut b.ops {
                    if let Op::Transfer(transfer) = op {
                        transfer.request.transfer.amount.0 += 1;
                    }
                }
            },
            "",
        ),
        (
            "transaction credential",
            transfer_at,
            |b| {
                for op in &mut b.ops {
                    if let Op::Transfer(transfer) = op {
                        transfer.request.tx_credential.0[7] ^= 1;
                    }
                }
            },
            "credential",
        ),
        (
            "identity credential",
            transfer_at,
            |b| {
                for op in &mut b.ops {
                    if let Op::Transfer(transfer) = op {
                        transfer.request.identity_credential.body[40] ^= 1;
                    }
                }
            },
            // The payer's signature covers the credential: a swapped one breaks it.
            "credential",
        ),
        (
            "attestation signature",
            transfer_at,
            |b| b.attestations[0].signature.0[9] ^= 1,
            "attestation",
        ),
        (
            "attestation position",
            transfer_at,
            |b| {
                for op in &mut b.ops {
                    if let Op::Transfer(transfer) = op {
                        std::mem::swap(&mut transfer.payer_ok, &mut transfer.payee_ok);
                    }
                }
            },
            "",
        ),
    ];
    let opened_at = decoded
        .iter()
        .position(|block| block.ops.iter().any(|op| matches!(op, Op::OpenAccount(_))))
        .unwrap();
    let issued_at = decoded
        .iter()
        .position(|block| block.ops.iter().any(|op| matches!(op, Op::Issue(_))))
        .unwrap();
    let mut cases = cases;
    cases.push((
        "open-account holder signature",
        opened_at,
        |b| {
            for op in &mut b.ops {
                if let Op::OpenAccount(open) = op {
                    open.holder_signature.0[3] ^= 1;
                }
            }
        },
        "holder",
    ));
    cases.push((
        "open-account bank signature",
        opened_at,
        |b| {
            for op in &mut b.ops {
                if let Op::OpenAccount(open) = op {
                    open.bank_signature.0[3] ^= 1;
                }
            }
        },
        "bank's signature",
    ));
    cases.push((
        "issue amount",
        issued_at,
        |b| {
            for op in &mut b.ops {
                if let Op::Issue(issue) = op {
                    issue.amount.0 += 1;
                }
            }
        },
        "root",
    ));
    let altered = audit.net.dir.path().join("altered.hv");
    for (field, index, change, reason) in cases {
        let mut blocks = frames.clone();
        let mut block = decoded[index].clone();
        change(&mut block);
        blocks[index] = block.encode().unwrap();
        write_chain(&altered, &genesis, &blocks);
        let output = audit.replay_both(&altered, field);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{field}: {}",
            describe(&output)
        );
        let report = json(&output);
        assert_eq!(
            report["violation"]["height"].as_u64(),
            Some(index as u64 + 1),
            "{field}: {report}"
        );
        let said = report["violation"]["reason"]
            .as_str()
            .unwrap()
            .to_lowercase();
        assert!(
            said.contains(reason),
            "{field}: reason {said:?} lacks {reason:?}"
        );
    }
    // A missing block.
    let mut gap = frames.clone();
    gap.remove(1);
    write_chain(&altered, &genesis, &gap);
    assert_eq!(
        audit.replay_both(&altered, "a missing block").status.code(),
        Some(3)
    );
    // A block that does not decode, first, in the middle and last: found at its height
    // (the first once passed as an empty valid chain).
    for index in [0, frames.len() / 2, frames.len() - 1] {
        let mut garbage = frames.clone();
        garbage[index] = vec![0xff; 10];
        write_chain(&altered, &genesis, &garbage);
        let output = audit.replay_both(&altered, "a block that does not decode");
        assert_eq!(
            output.status.code(),
            Some(3),
            "block {index}: {}",
            describe(&output)
        );
        let report = json(&output);
        assert_eq!(
            report["violation"]["height"].as_u64(),
            Some(index as u64 + 1),
            "block {index}: {report}"
        );
    }
    // Framing: a file cut inside block 3, and block 3's length over the 32 MiB bound. Both
    // verifiers read record by record and name block 3.
    let offset_of = |index: usize| -> usize {
        8 + 4 + genesis.len() + frames[..index].iter().map(|f| 4 + f.len()).sum::<usize>()
    };
    let whole = std::fs::read(&audit.chain).unwrap();
    std::fs::write(&altered, &whole[..offset_of(2) + 50]).unwrap();
    let cut = audit.replay_both(&altered, "a file cut inside block 3");
    assert_eq!(cut.status.code(), Some(3), "{}", describe(&cut));
    let mut oversized = whole.clone();
    let at = offset_of(2);
    oversized[at..at + 4].copy_from_slice(&(40u32 << 20).to_le_bytes());
    std::fs::write(&altered, &oversized).unwrap();
    let over = audit.replay_both(&altered, "a block length over 32 MiB");
    assert_eq!(over.status.code(), Some(3), "{}", describe(&over));
    // Import: a bank that lost its data is rebuilt from the file, verified block by block,
    // and rejoins with the same head; an altered file is refused.
    let mut audit = audit;
    audit.net.stop_node("bank-2");
    let home = audit.net.node("bank-2").home.clone();
    write_chain(&altered, &genesis, &{
        let mut blocks = frames.clone();
        let mut block = decoded[1].clone();
        block.signed.signature.0[0] ^= 1;
        blocks[1] = block.encode().unwrap();
        blocks
    });
    std::fs::remove_dir_all(home.join("data")).unwrap();
    let refused = audit.net.run(&[
        "chain",
        "import",
        "--file",
        altered.to_str().unwrap(),
        "--home",
        home.to_str().unwrap(),
    ]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    std::fs::remove_dir_all(home.join("data")).unwrap();
    let imported = audit.net.run(&[
        "--output",
        "json",
        "chain",
        "import",
        "--file",
        audit.chain.to_str().unwrap(),
        "--home",
        home.to_str().unwrap(),
    ]);
    assert!(imported.status.success(), "{}", describe(&imported));
    assert_eq!(json(&imported)["head"].as_u64(), Some(blocks));
    audit.net.start_node("bank-2");
    audit.net.wait_connected();
    assert_eq!(audit.net.wait_same_head().height, blocks);

    // A few hundred random single-byte flips: each is found (replayed in process with the
    // ledger's own rules, then a sample through the CLI).
    let trusted = Genesis::parse(&genesis).unwrap();
    let all: Vec<u8> = std::fs::read(&audit.chain).unwrap();
    let mut rng = rand_core::OsRng;
    let body_start = 8 + 4 + genesis.len();
    for round in 0..300 {
        let mut bytes = all.clone();
        let at = body_start + (rng.next_u64() as usize) % (bytes.len() - body_start);
        let flip = 1u8 << (rng.next_u32() % 8);
        bytes[at] ^= flip;
        // Decoded strictly, then checked as replay checks: windows of blocks whose
        // signatures are verified together.
        let detected = (|| {
            let mut offset = body_start;
            let mut decoded = Vec::new();
            while offset < bytes.len() {
                let Some(length) = bytes.get(offset..offset + 4) else {
                    return true;
                };
                let length = u32::from_le_bytes(length.try_into().unwrap()) as usize;
                let Some(frame) = bytes.get(offset + 4..offset + 4 + length) else {
                    return true;
                };
                let Ok(block) = Block::decode(frame) else {
                    return true;
                };
                decoded.push(block);
                offset += 4 + length;
            }
            let mut state = State::genesis(&trusted.params).unwrap();
            decoded.len() as u64 != blocks
                || apply_blocks(&trusted.params, &mut state, &decoded).is_err()
        })();
        assert!(
            detected,
            "flip {round} of bit {flip} at byte {at} was not detected"
        );
        if round % 20 == 0 {
            std::fs::write(&altered, &bytes).unwrap();
            let output = audit.replay_both(&altered, &format!("flip of bit {flip} at byte {at}"));
            assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
        }
    }
}

#[test]
fn disclosure_needs_a_recorded_order_and_a_quorum_of_recorded_shares() {
    let mut audit = setup();
    let requester = audit.net.dir.path().join("requester.json");
    let output = audit.net.run(&[
        "audit",
        "requester-key",
        "--out",
        requester.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let order = audit.new_order("order.json", &requester);
    let height_before = audit.net.head("im").height;
    let dir = audit.net.dir.path().to_path_buf();

    // Below the auditors' threshold (2 of 3): the CLI does not send it.
    assert!(audit.sign(&order, 1).status.success());
    assert_eq!(audit.record(&order).status.code(), Some(2));
    // The same auditor twice, or one not in genesis: the IM refuses, nothing recorded.
    assert_eq!(audit.sign(&order, 1).status.code(), Some(2));
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&order).unwrap()).unwrap();
    let first = file["signatures"][0].clone();
    file["signatures"].as_array_mut().unwrap().push(first);
    let twice = dir.join("twice.json");
    std::fs::write(&twice, serde_json::to_vec(&file).unwrap()).unwrap();
    let refused = audit.record(&twice);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("signed twice"),
        "{}",
        describe(&refused)
    );
    file["signatures"][1]["auditor"] = serde_json::json!(9);
    std::fs::write(&twice, serde_json::to_vec(&file).unwrap()).unwrap();
    let refused = audit.record(&twice);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not in genesis"),
        "{}",
        describe(&refused)
    );
    // An altered order file.
    file["basis"] = serde_json::json!("another basis");
    std::fs::write(&twice, serde_json::to_vec(&file).unwrap()).unwrap();
    assert_eq!(audit.record(&twice).status.code(), Some(3));
    // No holder shares for an order that is not on chain.
    let early = audit.share(&order, "auditor-1", &dir.join("early.json"));
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("not recorded on chain"),
        "{}",
        describe(&early)
    );
    assert_eq!(
        audit.net.head("im").height,
        height_before,
        "refusals record nothing"
    );

    // Exactly the auditors' threshold: recorded, once.
    assert!(audit.sign(&order, 3).status.success());
    let recorded = audit.record(&order);
    assert!(recorded.status.success(), "{}", describe(&recorded));
    let recorded_at = json(&recorded)["height"].as_u64().unwrap();
    assert!(recorded_at > height_before);
    let again = audit.record(&order);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already recorded"),
        "{}",
        describe(&again)
    );

    // Holders release shares: each on chain, each once. Two do not open (the key needs
    // three: two auditors at least, whatever the IM does).
    let shares: Vec<PathBuf> = ["auditor-1", "auditor-2", "im"]
        .iter()
        .map(|holder| {
            let out = dir.join(format!("{holder}.shares.json"));
            let shared = audit.share(&order, holder, &out);
            assert!(shared.status.success(), "{holder}: {}", describe(&shared));
            assert!(!contains(&shared.stdout, b"Alice Audited"));
            out
        })
        .collect();
    let twice = audit.share(&order, "auditor-1", &dir.join("twice.shares.json"));
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("already released"),
        "{}",
        describe(&twice)
    );
    let two = audit.disclose(&order, &requester, &[&shares[0], &shares[2]]);
    assert!(!two.status.success(), "{}", describe(&two));
    assert!(
        String::from_utf8_lossy(&two.stderr).contains("3 needed"),
        "{}",
        describe(&two)
    );
    assert!(!contains(&two.stdout, b"Alice Audited"));

    // A quorum: the requester opens the payer's identity, and both signatures hold.
    let paths: Vec<&Path> = shares.iter().map(PathBuf::as_path).collect();
    let disclosed = audit.disclose(&order, &requester, &paths);
    assert!(disclosed.status.success(), "{}", describe(&disclosed));
    let result = json(&disclosed);
    assert_eq!(result["name"], "Alice Audited");
    assert_eq!(result["national_id"], "NID-AUDIT-1111");
    assert_eq!(result["account"], audit.alice.as_str());
    assert_eq!(result["credential_verified"], true);
    assert_eq!(result["possession_verified"], true);
    assert_eq!(result["holders"], serde_json::json!([1, 2, 4]));

    // Shares whose release is not the one recorded are refused.
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&shares[1]).unwrap()).unwrap();
    let sealed = forged["sealed"].as_str().unwrap().to_owned();
    let flipped = if sealed.ends_with('0') { "1" } else { "0" };
    forged["sealed"] = serde_json::json!(format!("{}{flipped}", &sealed[..sealed.len() - 1]));
    let forged_path = dir.join("forged.shares.json");
    std::fs::write(&forged_path, serde_json::to_vec(&forged).unwrap()).unwrap();
    let refused = audit.disclose(&order, &requester, &[&shares[0], &forged_path, &shares[2]]);
    assert_eq!(refused.status.code(), Some(3), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not recorded on chain"),
        "{}",
        describe(&refused)
    );

    // An order for a transfer not on the chain.
    audit.transfer = "ab".repeat(32);
    let unknown = audit.new_order("unknown.json", &requester);
    assert!(audit.sign(&unknown, 1).status.success());
    assert!(audit.sign(&unknown, 2).status.success());
    let refused = audit.record(&unknown);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not on the chain"),
        "{}",
        describe(&refused)
    );

    // A rotation and a closing, so that the chain both verifiers check below holds every
    // kind of op.
    let account = |command: &str, holder: &str, extra: &[&str]| {
        let wallet = audit.net.wallet_path(holder);
        let mut args = vec!["--output", "json", "account", command, "--wallet"];
        args.push(wallet.to_str().unwrap());
        args.extend_from_slice(extra);
        let output = audit.net.run(&args);
        assert!(output.status.success(), "{command}: {}", describe(&output));
    };
    account("rotate-key", "Alice Audited", &[]);
    account("close", "Bob Audited", &["--to", &audit.alice]);

    // Replay shows the order and the three releases, with no identity.
    audit.net.wait_same_head();
    let replay = audit.net.run(&[
        "--output",
        "json",
        "audit",
        "replay",
        "--rpc",
        &audit.net.rpc("bank-1"),
    ]);
    assert!(replay.status.success(), "{}", describe(&replay));
    let summary = json(&replay);
    let disclosures = summary["disclosures"].as_array().unwrap();
    assert_eq!(disclosures.len(), 1);
    assert_eq!(disclosures[0]["height"].as_u64(), Some(recorded_at));
    assert_eq!(disclosures[0]["signers"], serde_json::json!([0, 2]));
    let holders: Vec<u64> = disclosures[0]["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|share| share["holder"].as_u64().unwrap())
        .collect();
    assert_eq!(holders, [1, 2, 4]);
    assert_eq!(disclosures[0]["openable"], true);
    assert!(!contains(&replay.stdout, b"Alice Audited"));
    let share_at = disclosures[0]["shares"][1]["height"].as_u64().unwrap();

    // An altered auditor signature on the order, or holder signature on a release, is
    // found by replay.
    let chain = dir.join("disclosed.hv");
    let output = audit.net.run(&[
        "chain",
        "export",
        "--rpc",
        &audit.net.rpc("im"),
        "--out",
        chain.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let whole = "issues, payments, a disclosure, a rotation and a closing";
    let replayed = audit.replay_both(&chain, whole);
    assert!(replayed.status.success(), "{}", describe(&replayed));
    if std::env::var_os("HALFVEIL_WRITE_VECTORS").is_some() {
        write_chain_vector(&chain, &json(&replayed));
    }
    if audit.second_verifier {
        let (_, second) = verifier::run(&chain);
        for kind in [
            "open-account",
            "issue",
            "transfer",
            "rotate-key",
            "close-account",
        ] {
            assert!(second["ops"][kind].as_u64() >= Some(1), "{kind}: {second}");
        }
        assert_eq!(second["ops"]["disclosure-order"], 1, "{second}");
        assert_eq!(second["ops"]["disclosure-share"], 3, "{second}");
    }
    let (genesis, frames) = read_chain(&chain);
    let alter = |height: u64, name: &str, change: &dyn Fn(&mut Op) -> bool| {
        let mut frames = frames.clone();
        let index = (height - 1) as usize;
        let mut block = Block::decode(&frames[index]).unwrap();
        assert!(
            block.ops.iter_mut().any(change),
            "no such op in block {height}"
        );
        frames[index] = block.encode().unwrap();
        let altered = dir.join(name);
        write_chain(&altered, &genesis, &frames);
        let output = audit.replay_both(&altered, name);
        assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
        json(&output)
    };
    let report = alter(recorded_at, "altered-order.hv", &|op| match op {
        Op::DisclosureOrder(recorded) => {
            recorded.signatures[1].signature.0[0] ^= 1;
            true
        }
        _ => false,
    });
    assert_eq!(report["violation"]["height"].as_u64(), Some(recorded_at));
    assert_eq!(report["violation"]["op_kind"], "disclosure-order");
    assert!(
        report["violation"]["reason"]
            .as_str()
            .unwrap()
            .contains("auditor 2"),
        "{report}"
    );
    let report = alter(share_at, "altered-share.hv", &|op| match op {
        Op::DisclosureShare(record) => {
            record.sealed_hash.0[0] ^= 1;
            true
        }
        _ => false,
    });
    assert_eq!(report["violation"]["op_kind"], "disclosure-share");
    assert!(
        report["violation"]["reason"]
            .as_str()
            .unwrap()
            .contains("holder 2"),
        "{report}"
    );
    // Altered rotations, closings and identity records: both verifiers refuse them alike.
    let height_of = |kind: &str| -> u64 {
        let index = frames
            .iter()
            .position(|frame| {
                let block = Block::decode(frame).unwrap();
                block.ops.iter().any(|op| op.kind() == kind)
            })
            .unwrap();
        index as u64 + 1
    };
    alter(
        height_of("rotate-key"),
        "altered-rotation.hv",
        &|op| match op {
            Op::RotateKey(rotate) => {
                rotate.new_signature.0[1] ^= 1;
                true
            }
            _ => false,
        },
    );
    alter(
        height_of("close-account"),
        "altered-closing.hv",
        &|op| match op {
            Op::CloseAccount(close) => {
                close.nonce.0 += 1;
                true
            }
            _ => false,
        },
    );
    alter(
        height_of("open-account"),
        "altered-record.hv",
        &|op| match op {
            Op::OpenAccount(open) => {
                open.identity_record.body[10] ^= 1;
                true
            }
            _ => false,
        },
    );
    audit.net.stop_all();
}

/// `docs/vectors/chain.hv`: a small chain exported from a real run (issues, payments, a
/// disclosure, a rotation, a closing), and `chain-file.json`, what replaying it gives.
fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

fn write_chain_vector(chain: &Path, replayed: &serde_json::Value) {
    std::fs::copy(chain, vectors_dir().join("chain.hv")).unwrap();
    let expected = serde_json::json!({
        "height": replayed["blocks"],
        "head_hash": replayed["head_hash"],
        "state_root": replayed["state_root"],
        "supply": replayed["supply"],
    });
    let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    std::fs::write(vectors_dir().join("chain-file.json"), text).unwrap();
}

/// The chain file vector replays to what `chain-file.json` says, with both verifiers.
#[test]
fn the_chain_file_vector_replays_to_its_recorded_head() {
    let chain = vectors_dir().join("chain.hv");
    let output = run_bounded(
        halfveil_tests::halfveil().args([
            "--output",
            "json",
            "audit",
            "replay",
            "--file",
            chain.to_str().unwrap(),
        ]),
        std::time::Duration::from_secs(120),
    );
    assert!(output.status.success(), "{}", describe(&output));
    let summary = json(&output);
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors_dir().join("chain-file.json")).unwrap())
            .unwrap();
    for field in ["head_hash", "state_root", "supply"] {
        assert_eq!(summary[field], expected[field], "{field}");
    }
    assert_eq!(summary["blocks"], expected["height"]);
    if verifier::available() {
        verifier::assert_agrees(&chain, &output, "docs/vectors/chain.hv");
    }
}
