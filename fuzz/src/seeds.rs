//! The seeds of every target's corpus: valid inputs built from the world's chain, the
//! genesis and key file code, and the node's own encoders, so that fuzzing starts from
//! inputs that get past the first check. `cargo run -p halfveil-fuzz --bin
//! halfveil-fuzz-seeds` writes them to `fuzz/corpus/NAME/seed-*`.

use halfveil_genesis::file::{Genesis, InitialAccountEntry, LimitsEntry};
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_genesis::testnet::{self, TestnetSpec};
use halfveil_ledger::crypto::{self, Envelope, IdentityRecord};
use halfveil_ledger::{
    codec, AccountId, Amount, AttestationKind, AuditorId, AuditorSignature, BankId, Block,
    CloseAccount, DisclosureOrder, DisclosureShares, Hash32, Height, Issue, Nonce, Op, OpenAccount,
    OrderOp, Receipt, RejectCode, Rejecter, Rejection, RotateKey, ShareRecord, Signature, TimeMs,
    X25519PublicKey, VERSION,
};
use halfveil_node::config::{
    Config, KeysConfig, LogConfig, MetricsConfig, P2pConfig, RpcConfig, RuntimeConfig,
    StorageConfig,
};
use halfveil_node::links::{encode_frame, encode_framed, Frame};
use halfveil_node::protocol::{
    ApprovalItemWire, CommittedAt, ForwardBatch, OpenAccountRequest, Request, Response,
};
use halfveil_node::replica::{ChainPoint, Proposed, RaftRequest, RaftResponse, RAFT_BYTES_MAX};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use secrecy::SecretString;

use crate::apply::{flags, kinds};
use crate::reader::Writer;
use crate::sigbatch::Mode;
use crate::world::{world, World};

/// One seed: its target, its file name (without the `seed-` prefix) and its bytes.
#[derive(Debug)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

struct Seeds(Vec<Seed>);

impl Seeds {
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push(Seed {
            target,
            name: name.into(),
            bytes: bytes.into(),
        });
    }
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let world = world();
    let mut seeds = Seeds(Vec::new());
    ledger_seeds(world, &mut seeds);
    apply_seeds(world, &mut seeds);
    sigbatch_seeds(&mut seeds);
    file_seeds(world, &mut seeds);
    wire_seeds(world, &mut seeds);
    raft_frames(&mut seeds, world, &world.setup[1].0);
    seeds.0
}

/// Valid next blocks over the world's state, by name.
pub fn next_blocks(world: &World) -> Vec<(&'static str, Block)> {
    let state = &world.state;
    let time = world.next_time();
    let holders = &world.holders;
    let chain_id = &world.params.chain_id;
    let mut blocks = Vec::new();

    // Transfers within and across banks.
    let requests = vec![
        world.request(&holders[0], holders[0].next_nonce, holders[2].id, 7),
        world.request(&holders[3], holders[3].next_nonce, holders[0].id, 9),
        world.request(&holders[1], holders[1].next_nonce, holders[0].id, 11),
    ];
    let (attestations, ops) = world.transfer_ops(requests);
    let (block, _) = world
        .build(state, time, attestations, ops)
        .expect("transfers");
    blocks.push(("transfers", block));

    // An issue to the empty account and an opening.
    let pooled = &world.pool[0];
    let tx_key = crypto::public_key(pooled);
    let account = AccountId::from_key(&tx_key);
    let record = world.seal_record(&account, 1);
    let message =
        halfveil_ledger::open_account_message(chain_id, &tx_key, BankId(0), &record).expect("m");
    let open = Op::OpenAccount(OpenAccount {
        account,
        tx_key,
        bank: BankId(0),
        holder_signature: crypto::sign(pooled, &message),
        bank_signature: crypto::sign(&world.banks[0], &message),
        identity_record: Box::new(record),
    });
    let issue = Op::Issue(Issue {
        to: holders[4].id,
        amount: Amount(500),
        reference: 77,
    });
    let (block, _) = world
        .build(state, time, Vec::new(), vec![issue, open])
        .expect("issue and open");
    blocks.push(("issue-open", block));

    // A key rotation and the empty account closed.
    let new_key = &world.pool[1];
    let mut rotate = RotateKey {
        account: holders[1].id,
        new_key: crypto::public_key(new_key),
        nonce: Nonce(holders[1].next_nonce),
        expires_at: TimeMs(time.0 + 60_000),
        old_signature: Signature([0; 64]),
        new_signature: Signature([0; 64]),
    };
    let message = rotate.message(chain_id).expect("m");
    rotate.old_signature = crypto::sign(&holders[1].tx_key, &message);
    rotate.new_signature = crypto::sign(new_key, &message);
    let mut close = CloseAccount {
        account: holders[4].id,
        nonce: Nonce(0),
        expires_at: TimeMs(time.0 + 60_000),
        signature: Signature([0; 64]),
    };
    close.signature = crypto::sign(&holders[4].tx_key, &close.message(chain_id).expect("m"));
    let (block, _) = world
        .build(
            state,
            time,
            Vec::new(),
            vec![Op::RotateKey(rotate), Op::CloseAccount(close)],
        )
        .expect("rotate and close");
    blocks.push(("rotate-close", block));

    // A disclosure of a committed transfer, by two auditors of three.
    let order = DisclosureOrder {
        version: VERSION,
        chain_id: chain_id.clone(),
        transfer: world.setup[1].1.transfers[0].0,
        basis_hash: Hash32([3; 32]),
        requester_key: X25519PublicKey([9; 32]),
        expires_at: TimeMs(time.0 + 600_000),
    };
    let hash = order.hash().expect("hash");
    let sealed_hash = Hash32([5; 32]);
    let share_message = ShareRecord::message(chain_id, &hash, 4, &sealed_hash).expect("m");
    let share = Op::DisclosureShare(ShareRecord {
        order: order.clone(),
        holder: 4,
        sealed_hash,
        signature: crypto::sign(&world.validator, &share_message),
    });
    let disclosure = Op::DisclosureOrder(OrderOp {
        order,
        signatures: (0..2)
            .map(|auditor| AuditorSignature {
                auditor: AuditorId(auditor),
                signature: crypto::sign(&world.auditors[usize::from(auditor)], &hash),
            })
            .collect(),
    });
    let (block, _) = world
        .build(state, time, Vec::new(), vec![disclosure, share])
        .expect("disclosure");
    blocks.push(("disclosure", block));
    blocks
}

fn ledger_seeds(world: &World, seeds: &mut Seeds) {
    let holders = &world.holders;
    let chain_id = &world.params.chain_id;
    let mut rng = ChaCha20Rng::seed_from_u64(1);

    let request = world.sealed_request(&holders[0], holders[0].next_nonce, holders[1].id, 12);
    let envelope = Envelope::seal(
        &world.business_key,
        chain_id,
        holders[0].bank,
        &request,
        &mut rng,
    )
    .expect("seal");
    seeds.add("envelope", "sealed", envelope.encode().expect("encode"));
    seeds.add("envelope", "plaintext", codec::encode(&request).expect("e"));
    let other_bank =
        Envelope::seal(&world.business_key, chain_id, BankId(1), &request, &mut rng).expect("seal");
    seeds.add("envelope", "other-bank", other_bank.encode().expect("e"));

    seeds.add("transfer", "request", codec::encode(&request).expect("e"));
    seeds.add(
        "transfer",
        "transfer",
        codec::encode(&request.transfer).expect("e"),
    );
    let plain = world.request(&holders[2], 5, holders[3].id, 1);
    seeds.add(
        "transfer",
        "request-plain",
        codec::encode(&plain).expect("e"),
    );

    let mut blocks: Vec<(String, Block)> = world
        .setup
        .iter()
        .enumerate()
        .map(|(index, (block, _))| (format!("setup-{}", index + 1), block.clone()))
        .collect();
    blocks.extend(
        next_blocks(world)
            .into_iter()
            .map(|(name, block)| (format!("next-{name}"), block)),
    );
    for (name, block) in &blocks {
        seeds.add("block", name.clone(), block.encode().expect("e"));
        if let Some(op) = block.ops.first() {
            seeds.add(
                "op",
                format!("{name}-{}", op.kind()),
                codec::encode(op).expect("e"),
            );
        }
    }

    let (block, change) = &world.setup[1];
    for index in 0..2 {
        let receipt = Receipt::for_op(block, change, index).expect("receipt");
        seeds.add(
            "receipt",
            format!("transfer-{index}"),
            codec::encode(&receipt).expect("e"),
        );
    }

    let id = change.transfers[0].0;
    let by_im = Rejection::sign(
        chain_id,
        id,
        Rejecter::IdentityManager,
        RejectCode::Replay,
        "nonce already used",
        &world.validator,
    )
    .expect("sign");
    seeds.add("rejection", "by-im", codec::encode(&by_im).expect("e"));
    let by_bank = Rejection::sign(
        chain_id,
        id,
        Rejecter::Bank(BankId(1)),
        RejectCode::LimitExceeded,
        "daily limit",
        &world.banks[1],
    )
    .expect("sign");
    seeds.add("rejection", "by-bank", codec::encode(&by_bank).expect("e"));

    let order = DisclosureOrder {
        version: VERSION,
        chain_id: chain_id.clone(),
        transfer: id,
        basis_hash: Hash32([1; 32]),
        requester_key: X25519PublicKey([2; 32]),
        expires_at: TimeMs(world.state.time.0 + 3_600_000),
    };
    seeds.add(
        "disclosure_order",
        "order",
        codec::encode(&order).expect("e"),
    );

    let record = IdentityRecord {
        version: VERSION,
        name: "Ada Lovelace".into(),
        national_id: "GB-1815-12-10".into(),
        fields: vec![
            ("born".into(), "1815-12-10".into()),
            ("city".into(), "London".into()),
        ],
        identity_key: crypto::public_key(&holders[0].identity_key),
        possession: Signature([4; 64]),
    };
    seeds.add(
        "identity_record",
        "record",
        codec::encode(&record).expect("e"),
    );

    // A holder's real shares of a sealed credential (the record share is of the same
    // ciphertext here), and the credential's capsule.
    let (transfer_id, credential) = world.sealed_credential();
    let label = crypto::credential_label(chain_id, &transfer_id);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let key = &world.params.disclosure_key;
    let share = halfveil_ledger::threshold::tdh2::share(
        key,
        &world.holder_secrets[1],
        &label,
        &credential.capsule,
        &credential.body,
        &mut rng,
    )
    .expect("share");
    let shares = DisclosureShares {
        order: Hash32([1; 32]),
        holder: share.holder,
        credential: share,
        record: share,
    };
    seeds.add(
        "disclosure_shares",
        "shares",
        codec::encode(&shares).expect("e"),
    );
    seeds.add(
        "disclosure_shares",
        "capsule",
        codec::encode(&credential.capsule).expect("e"),
    );

    seeds.add("text_ids", "account-id", holders[0].id.to_string());
    seeds.add("text_ids", "hash", id.to_hex());
    seeds.add("text_ids", "public-key", world.validator_key().to_hex());
    seeds.add("text_ids", "signature", by_im.signature.to_hex());
    seeds.add("text_ids", "chain-id", chain_id.as_str());
}

/// A program's bytes for the `apply` target (see `apply::Program` for the layout).
fn program(ops: usize, build: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.u8(1).u8(0).u8(ops as u8);
    build(&mut writer);
    writer.u8(0);
    writer.bytes
}

/// A plain transfer in a program: payer and payee by index, amount 1 to 256.
fn transfer(writer: &mut Writer, payer: u8, payee: u8, amount: u8, flags: u8) {
    writer
        .u8(kinds::TRANSFER)
        .u8(payer)
        .u8(payee)
        .u8(flags)
        .u8(0)
        .u8(amount - 1)
        .u8(0)
        .u8(0)
        .u8(4)
        .bytes(b"memo");
}

/// The `apply` seeds: raw blocks (mode 0) and programs (mode 1), each with the outcome it
/// must have, as `(name, bytes, applied)`.
pub fn apply_cases(world: &World) -> Vec<(String, Vec<u8>, bool)> {
    let mut cases = Vec::new();
    for (name, block) in next_blocks(world) {
        let mut bytes = vec![0u8];
        bytes.extend(block.encode().expect("e"));
        cases.push((format!("raw-{name}"), bytes, true));
    }
    let mut stale = vec![0u8];
    stale.extend(world.setup[1].0.encode().expect("e"));
    cases.push(("raw-stale".into(), stale, false));

    cases.push(("program-empty".into(), vec![1], true));
    cases.push((
        "program-transfer".into(),
        program(1, |w| transfer(w, 0, 1, 5, 0)),
        true,
    ));
    cases.push((
        "program-transfers".into(),
        program(4, |w| {
            transfer(w, 0, 2, 10, 0);
            transfer(w, 2, 3, 20, 0);
            transfer(w, 3, 1, 30, 0);
            transfer(w, 1, 0, 40, 0);
        }),
        true,
    ));
    cases.push((
        "program-issue-open".into(),
        program(2, |w| {
            w.u8(kinds::ISSUE).u8(4).u8(0).u8(99).u64(12);
            w.u8(kinds::OPEN).u8(0).u8(0).u8(1).u8(0);
        }),
        true,
    ));
    cases.push((
        "program-rotate-close".into(),
        program(2, |w| {
            w.u8(kinds::ROTATE).u8(1).u8(0).u8(1).u8(0).u8(0).u8(0);
            w.u8(kinds::CLOSE).u8(4).u8(0).u8(0).u8(0);
        }),
        true,
    ));
    cases.push((
        "program-disclosure".into(),
        program(1, |w| {
            w.u8(kinds::DISCLOSURE).u8(0).u8(0).u8(0);
            w.bytes(&[3; 32]).bytes(&[9; 32]).u8(0).u8(2).u8(0).u8(1);
        }),
        true,
    ));
    cases.push((
        "program-disclosure-and-share".into(),
        program(1, |w| {
            w.u8(kinds::DISCLOSURE)
                .u8(flags::ODD_CREDENTIAL)
                .u8(0)
                .u8(0);
            w.bytes(&[3; 32]).bytes(&[9; 32]).u8(0).u8(2).u8(0).u8(1);
            w.u8(4).bytes(&[5; 32]);
        }),
        true,
    ));
    cases.push((
        "program-open-then-pay".into(),
        program(3, |w| {
            w.u8(kinds::OPEN).u8(0).u8(2).u8(1).u8(0);
            transfer(w, 0, 7, 50, 0);
            transfer(w, 7, 1, 10, 0);
        }),
        true,
    ));
    // Refused: a replayed nonce, a corrupt credential, a transfer its payee's bank did not
    // approve.
    cases.push((
        "program-replay".into(),
        program(1, |w| {
            w.u8(kinds::TRANSFER)
                .u8(0)
                .u8(1)
                .u8(0)
                .u8(0)
                .u8(1)
                .u8(1)
                .u8(0)
                .u8(0);
        }),
        false,
    ));
    cases.push((
        "program-bad-credential".into(),
        program(1, |w| {
            transfer(w, 0, 1, 5, flags::CORRUPT_FIRST);
            w.u16(77);
        }),
        false,
    ));
    cases.push((
        "program-unapproved".into(),
        program(1, |w| transfer(w, 0, 2, 5, flags::NO_PAYEE_OK)),
        false,
    ));
    cases
}

fn apply_seeds(world: &World, seeds: &mut Seeds) {
    for (name, bytes, _) in apply_cases(world) {
        seeds.add("apply", name, bytes);
    }
}

fn sigbatch_seeds(seeds: &mut Seeds) {
    let signed = |seed: u8, tweak: u8| {
        let mut writer = Writer::default();
        writer
            .u8(Mode::Signed as u8)
            .bytes(&[seed; 32])
            .bytes(&[seed.wrapping_mul(3); 32])
            .u8(tweak);
        writer.bytes
    };
    let one = |item: Vec<u8>| {
        let mut bytes = vec![0u8];
        bytes.extend(item);
        bytes
    };
    seeds.add("sigbatch_differential", "valid", one(signed(1, 0)));
    seeds.add("sigbatch_differential", "s-plus-order", one(signed(2, 3)));
    seeds.add("sigbatch_differential", "small-order-r", {
        let mut item = signed(3, 1);
        item.push(5);
        one(item)
    });
    let small_order = |key: u8, r: u8| {
        let mut writer = Writer::default();
        writer
            .u8(Mode::SmallOrder as u8)
            .u8(key)
            .u8(r)
            .u8(0)
            .bytes(&[7; 32]);
        writer.bytes
    };
    seeds.add(
        "sigbatch_differential",
        "small-order",
        one(small_order(1, 2)),
    );
    seeds.add(
        "sigbatch_differential",
        "non-canonical",
        one(small_order(8, 9)),
    );
    let mixed = {
        let mut writer = Writer::default();
        writer
            .u8(Mode::MixedOrder as u8)
            .bytes(&[11; 32])
            .bytes(&[12; 32])
            .u8(3)
            .u8(5);
        writer.bytes
    };
    seeds.add("sigbatch_differential", "mixed-order", one(mixed.clone()));
    let mut batch = vec![5u8];
    batch.extend(signed(4, 0));
    batch.extend([Mode::SameKey as u8, 0]);
    batch.extend([13u8; 32]);
    batch.push(0);
    batch.extend(small_order(3, 4));
    batch.extend(mixed);
    batch.extend(signed(6, 0));
    batch.extend(signed(7, 4));
    seeds.add("sigbatch_differential", "batch", batch);
}

fn file_seeds(world: &World, seeds: &mut Seeds) {
    let genesis_time_ms = 1_767_225_600_000;
    for (banks, auditors, threshold) in [(1, 1, 1), (2, 3, 2)] {
        let spec = TestnetSpec {
            chain_id: "halfveil-fuzz".into(),
            im_replicas: 1,
            banks,
            auditors,
            threshold,
            genesis_time_ms,
            limits: LimitsEntry::default(),
        };
        let net = testnet::generate(&spec).expect("testnet");
        seeds.add(
            "genesis",
            format!("testnet-{banks}-banks-{auditors}-auditors"),
            net.genesis.genesis.to_canonical_json(),
        );
        if banks == 2 {
            let mut body = net.genesis.genesis.body.clone();
            body.initial_accounts = world
                .holders
                .iter()
                .take(3)
                .enumerate()
                .map(|(index, holder)| InitialAccountEntry {
                    tx_key: crypto::public_key(&holder.tx_key).to_hex(),
                    bank: format!("bank-{}", 1 + index % 2),
                    balance: 1_000 * (index as u64 + 1),
                })
                .collect();
            let bank_keys: Vec<_> = net.banks.iter().map(|bank| &bank.attestation).collect();
            let auditor_keys: Vec<_> = net.auditors.iter().map(|auditor| &auditor.key).collect();
            let validators: Vec<_> = net.im.iter().map(|replica| &replica.validator).collect();
            let genesis = Genesis::sign(body, &validators, &bank_keys, &auditor_keys)
                .expect("sign")
                .validate()
                .expect("valid");
            seeds.add(
                "genesis",
                "initial-accounts",
                genesis.genesis.to_canonical_json(),
            );
        }
    }

    let config = |moniker: &str, json_logs: bool| Config {
        moniker: moniker.into(),
        p2p: P2pConfig {
            listen: "/ip4/127.0.0.1/tcp/26656".into(),
            peers: vec![
                "/ip4/127.0.0.1/tcp/26666/p2p/12D3KooWLu6bDXtq9iRVN2eLXuVkcQqErKJsdEGsaHBnadPkPi1a"
                    .into(),
            ],
            connections_max: 64,
        },
        rpc: RpcConfig {
            listen: "127.0.0.1:26657".parse().expect("address"),
            admin_listen: "[::1]:26658".parse().expect("address"),
            admin_token_file: "admin_token".into(),
            connections_max: 256,
            connections_per_address_max: 64,
        },
        metrics: MetricsConfig {
            listen: "127.0.0.1:26660".parse().expect("address"),
        },
        storage: StorageConfig {
            data_dir: "data".into(),
            index_epoch_transfers: None,
            index_epoch_blocks: None,
            raft_snapshot_entries: None,
            raft_log_kept_entries: None,
        },
        keys: KeysConfig {
            genesis: "genesis.json".into(),
            node_key: "node_key.json".into(),
            signing_key: "signing_key.json".into(),
            password_file: Some("password".into()),
        },
        log: LogConfig {
            format: if json_logs { "json" } else { "text" }.into(),
            filter: "info,halfveil=debug".into(),
        },
        runtime: RuntimeConfig { worker_threads: 2 },
    };
    seeds.add("config", "bank", config("bank-1", false).to_toml());
    seeds.add("config", "im", config("im", true).to_toml());

    let password = SecretString::from("fuzz".to_owned());
    let key = &world.validator;
    let text = keystore::seal(
        FileKind::ValidatorKey,
        &crypto::public_key(key).to_hex(),
        &key.to_bytes(),
        &password,
        KdfParams::MIN,
    )
    .expect("seal");
    seeds.add("key_file", "validator-key", text);
    let text = keystore::seal(
        FileKind::Wallet,
        "",
        br#"{"accounts":[]}"#,
        &password,
        KdfParams::MIN,
    )
    .expect("seal");
    seeds.add("key_file", "wallet", text);
    let directory =
        std::env::temp_dir().join(format!("halfveil-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join("node_key.json");
    let _ = std::fs::remove_file(&path);
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes([21u8; 32]).expect("key");
    keystore::write_node_key(&path, &keypair).expect("write");
    let text = std::fs::read(&path).expect("read");
    let _ = std::fs::remove_dir_all(&directory);
    seeds.add("key_file", "node-key", text);
}

fn wire_seeds(world: &World, seeds: &mut Seeds) {
    let holders = &world.holders;
    let chain_id = &world.params.chain_id;
    let requests = vec![
        world.request(&holders[0], holders[0].next_nonce, holders[2].id, 3),
        world.request(&holders[1], holders[1].next_nonce, holders[3].id, 4),
    ];
    let ids: Vec<Hash32> = requests
        .iter()
        .map(|request| request.transfer.id().expect("id"))
        .collect();
    let attestation = world.attest(AttestationKind::PayerOk, BankId(0), ids.clone());
    let (block1, _) = &world.setup[0];
    let (block2, _) = &world.setup[1];
    let Op::OpenAccount(open) = block1.ops[0].clone() else {
        panic!("block 1 starts with an opening");
    };
    let rejection = Rejection::sign(
        chain_id,
        ids[0],
        Rejecter::Bank(BankId(1)),
        RejectCode::AccountFrozen,
        "frozen",
        &world.banks[1],
    )
    .expect("sign");
    let approval = world.attest(AttestationKind::PayeeOk, BankId(1), ids.clone());

    let all_requests = vec![
        (
            "forward",
            Request::Forward(ForwardBatch {
                requests,
                attestation,
            }),
        ),
        (
            "open-account",
            Request::OpenAccount(OpenAccountRequest {
                op: open,
                identity: halfveil_ledger::IdentityProof {
                    key: halfveil_ledger::PublicKey([0x61; 32]),
                    possession: halfveil_ledger::Signature([0x62; 64]),
                },
            }),
        ),
        (
            "approve",
            Request::Approve(vec![ApprovalItemWire {
                id: ids[0],
                payee: holders[2].id,
                amount: Amount(3),
            }]),
        ),
        ("rejected", Request::Rejected(vec![rejection.clone()])),
        ("lifecycle", Request::Lifecycle(Box::new(close_op(world)))),
        (
            "blocks",
            Request::Blocks {
                from: Height(1),
                to: Height(2),
            },
        ),
        ("status", Request::Status),
    ];
    let all_responses = vec![
        ("ack", Response::Ack),
        (
            "forwarded",
            Response::Forwarded {
                rejected: vec![rejection.clone()],
                committed: vec![CommittedAt {
                    id: ids[1],
                    height: Height(2),
                    index: 0,
                }],
            },
        ),
        (
            "opened",
            Response::Opened {
                account: holders[0].id,
                height: Height(1),
            },
        ),
        (
            "approval",
            Response::Approval {
                attestation: Some(approval),
                refused: vec![rejection],
            },
        ),
        (
            "blocks",
            Response::Blocks(vec![block1.clone(), block2.clone()]),
        ),
        (
            "status",
            Response::Status {
                height: Height(2),
                hash: world.state.head_hash,
            },
        ),
        (
            "error",
            Response::Error {
                code: RejectCode::Overloaded,
                message: "busy".into(),
            },
        ),
    ];
    let mut stream = Vec::new();
    for (id, (name, request)) in all_requests.into_iter().enumerate() {
        seeds.add("node_request", name, codec::encode(&request).expect("e"));
        let frame = encode_frame(&Frame::Request {
            id: id as u64,
            request,
        })
        .expect("frame");
        seeds.add("link_frame", format!("request-{name}"), frame.clone());
        stream.extend(frame);
    }
    for (id, (name, response)) in all_responses.into_iter().enumerate() {
        seeds.add("node_response", name, codec::encode(&response).expect("e"));
        let frame = encode_frame(&Frame::Response {
            id: id as u64,
            response,
        })
        .expect("frame");
        if name != "blocks" {
            seeds.add("link_frame", format!("response-{name}"), frame.clone());
            stream.extend(frame);
        }
    }
    seeds.add("link_frame", "stream", stream);
}

/// The empty account's closing, signed by its key.
fn close_op(world: &World) -> Op {
    let holder = &world.holders[4];
    let mut close = CloseAccount {
        account: holder.id,
        nonce: Nonce(holder.next_nonce),
        expires_at: TimeMs(world.state.time.0 + 60_000),
        signature: Signature([0; 64]),
    };
    let message = close.message(&world.params.chain_id).expect("message");
    close.signature = crypto::sign(&holder.tx_key, &message);
    Op::CloseAccount(close)
}

/// Raft streams between IM replicas: requests (an append carrying a proposed block, a vote,
/// a snapshot point) and their answers, each side as one stream.
fn raft_frames(seeds: &mut Seeds, world: &World, block: &Block) {
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};
    let log_id = |index| LogId::new(CommittedLeaderId::new(2, 1), index);
    let proposed = Proposed {
        header: block.signed.header.clone(),
        attestations: block.attestations.clone(),
        ops: block.ops.clone(),
    };
    let requests = vec![
        RaftRequest::Append(AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(4)),
            entries: vec![
                Entry {
                    log_id: log_id(5),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: log_id(6),
                    payload: EntryPayload::Normal(proposed),
                },
            ],
            leader_commit: Some(log_id(4)),
        }),
        RaftRequest::Vote(VoteRequest {
            vote: Vote::new(3, 2),
            last_log_id: Some(log_id(6)),
        }),
        RaftRequest::Snapshot {
            vote: Vote::new_committed(2, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(6)),
                last_membership: Default::default(),
                snapshot_id: "2-x".into(),
            },
            point: ChainPoint {
                height: Height(2),
                hash: world.state.head_hash,
            },
        },
    ];
    let responses = vec![
        RaftResponse::Append(AppendEntriesResponse::Success),
        RaftResponse::Append(AppendEntriesResponse::HigherVote(Vote::new(4, 3))),
        RaftResponse::Vote(VoteResponse::new(Vote::new(3, 2), Some(log_id(6)), true)),
        RaftResponse::Snapshot(SnapshotResponse::new(Vote::new_committed(2, 1))),
        RaftResponse::Failed("shutting down".into()),
    ];
    let mut stream = vec![0u8];
    for request in &requests {
        stream.extend(encode_framed(request, RAFT_BYTES_MAX).expect("frame"));
    }
    seeds.add("raft_frame", "requests", stream);
    let mut stream = vec![1u8];
    for response in &responses {
        stream.extend(encode_framed(response, RAFT_BYTES_MAX).expect("frame"));
    }
    seeds.add("raft_frame", "responses", stream);
}
