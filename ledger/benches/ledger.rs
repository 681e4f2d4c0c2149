//! The ledger's hot paths, measured against SPEC section 8's budget: encoding, ids, signature
//! checks (single and batched), the envelope, identity credential sealing, `apply` of a block
//! of 1,000 transfers (the store's synced write is measured in `halfveil-store`'s bench).
//!
//! Run with `cargo bench -p halfveil-ledger --bench ledger`; the whole run takes about two
//! minutes on 2 cores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use halfveil_ledger::crypto::{
    self, seal_identity_credential, BusinessKey, Envelope, SignatureBatch, SigningKey,
};
use halfveil_ledger::hash::Domain;
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::threshold::tdh2;
use halfveil_ledger::{apply, codec, Block, Hash32, Op, PublicKey, Signature, StateChange};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const BLOCK_TRANSFERS: usize = 1_000;

/// A chain with 100 funded accounts and, not yet committed, a signed block of 1,000 transfers
/// on top of it.
fn transfer_block() -> (TestChain, Block, StateChange) {
    let mut chain = TestChain::new(1, 2, 0, 0);
    chain.seal_identity = false;
    let mut accounts = chain.fund_accounts(50, 1_000_000_000).unwrap();
    let (attestations, ops) = chain.transfer_block_ops(&mut accounts, BLOCK_TRANSFERS, 1);
    let (block, change) = chain.build(attestations, ops).unwrap();
    (chain, block, change)
}

fn signatures(count: usize, key_count: usize) -> Vec<(PublicKey, Hash32, Signature)> {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let keys: Vec<SigningKey> = (0..key_count)
        .map(|_| crypto::generate_signing_key(&mut rng))
        .collect();
    (0..count)
        .map(|index| {
            let key = &keys[index % keys.len()];
            let message = Domain::TransferId.hash(&(index as u64).to_le_bytes());
            (
                crypto::public_key(key),
                message,
                crypto::sign(key, &message),
            )
        })
        .collect()
}

fn codec_benches(criterion: &mut Criterion, block: &Block) {
    let op = block.ops[0].clone();
    let op_bytes = codec::encode(&op).unwrap();
    let block_bytes = block.encode().unwrap();
    let Op::Transfer(transfer_op) = &op else {
        unreachable!()
    };
    let transfer = transfer_op.request.transfer.clone();

    let mut group = criterion.benchmark_group("codec");
    group.bench_function("transfer_op_encode", |bench| {
        bench.iter(|| codec::encode(black_box(&op)).unwrap())
    });
    group.bench_function("transfer_op_decode", |bench| {
        bench.iter(|| codec::decode::<Op>(black_box(&op_bytes), 4096).unwrap())
    });
    group.bench_function("transfer_id", |bench| {
        bench.iter(|| black_box(&transfer).id().unwrap())
    });
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    group.bench_function("block_1000_encode", |bench| {
        bench.iter(|| black_box(block).encode().unwrap())
    });
    group.bench_function("block_1000_decode", |bench| {
        bench.iter(|| Block::decode(black_box(&block_bytes)).unwrap())
    });
    group.finish();
}

fn signature_benches(criterion: &mut Criterion) {
    let items = signatures(1_000, 64);
    // As in `halfveil bench`: every signature from another payer, payers signing again in
    // later blocks (their decoded keys cached after the first).
    let distinct = signatures(1_000, 1_000);
    let mut group = criterion.benchmark_group("signature");
    let (key, message, signature) = items[0];
    group.bench_function("verify_single", |bench| {
        bench.iter(|| crypto::verify(black_box(&key), black_box(&message), black_box(&signature)))
    });
    for (name, count, items) in [
        ("batch_verify_256", 256usize, &items),
        ("batch_verify_1000", 1_000, &items),
        ("batch_verify_1000_distinct_keys", 1_000, &distinct),
        // How the cost per signature falls with the batch's size (one thread below 256).
        ("batch_verify_32_distinct_keys", 32, &distinct),
        ("batch_verify_64_distinct_keys", 64, &distinct),
        ("batch_verify_128_distinct_keys", 128, &distinct),
        ("batch_verify_255_distinct_keys", 255, &distinct),
    ] {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(name, |bench| {
            bench.iter_batched(
                || {
                    let mut batch = SignatureBatch::with_capacity(count);
                    for (index, (key, message, signature)) in items[..count].iter().enumerate() {
                        batch.push(index, key, message, signature);
                    }
                    batch
                },
                |batch| batch.verify().unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn credential_benches(criterion: &mut Criterion, chain: &TestChain, block: &Block) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let Op::Transfer(op) = &block.ops[0] else {
        unreachable!()
    };
    let request = op.request.clone();
    let key = BusinessKey::generate(&mut rng);
    let chain_id = &chain.params.chain_id;
    let envelope = Envelope::seal(
        &key,
        chain_id,
        halfveil_ledger::BankId(0),
        &request,
        &mut rng,
    )
    .unwrap();
    let transfer_id = request.transfer.id().unwrap();
    let identity_key = crypto::generate_signing_key(&mut rng);

    let mut group = criterion.benchmark_group("credential");
    group.bench_function("envelope_open", |bench| {
        bench.iter(|| {
            envelope
                .open(&key, chain_id, halfveil_ledger::BankId(0))
                .unwrap()
        })
    });
    group.bench_function("identity_credential_seal", |bench| {
        bench.iter(|| {
            seal_identity_credential(
                &chain.params.disclosure_key,
                chain_id,
                &transfer_id,
                &identity_key,
                &mut rng,
            )
            .unwrap()
        })
    });
    group.finish();
    threshold_benches(criterion, chain, &transfer_id, &identity_key);
}

/// A holder's share (ciphertext check, share and its proof), anyone's check of one share,
/// the requester's combination of a quorum (each share checked, then opened), and a key
/// adoption's check as a payer makes it (the key's interpolation and every holder's
/// signature).
fn threshold_benches(
    criterion: &mut Criterion,
    chain: &TestChain,
    transfer_id: &halfveil_ledger::Hash32,
    identity_key: &crypto::SigningKey,
) {
    let key = &chain.params.disclosure_key;
    let chain_id = &chain.params.chain_id;
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let credential =
        seal_identity_credential(key, chain_id, transfer_id, identity_key, &mut rng).unwrap();
    let label = crypto::credential_label(chain_id, transfer_id);
    let (capsule, body) = (&credential.capsule, &credential.body[..]);
    let quorum = usize::from(key.threshold);
    let shares: Vec<_> = chain.holders[..quorum]
        .iter()
        .map(|secret| tdh2::share(key, secret, &label, capsule, body, &mut rng).unwrap())
        .collect();
    let mut group = criterion.benchmark_group("threshold");
    group.bench_function("share", |bench| {
        bench.iter(|| tdh2::share(key, &chain.holders[0], &label, capsule, body, &mut rng))
    });
    group.bench_function("verify_share", |bench| {
        bench.iter(|| tdh2::verify_share(key, &label, capsule, &shares[0]).unwrap())
    });
    group.bench_function(format!("combine_{quorum}_shares"), |bench| {
        bench.iter(|| {
            crypto::open_identity_credential(key, chain_id, transfer_id, &credential, &shares)
                .unwrap()
        })
    });
    let current = chain.state.disclosure_keys().current().clone();
    let Op::AdoptKey(adoption) = chain.adoption(current) else {
        unreachable!("an adoption op")
    };
    group.bench_function("adoption_verify", |bench| {
        bench.iter(|| black_box(adoption.verify(&chain.params)))
    });
    group.finish();
}

fn block_benches(criterion: &mut Criterion, chain: &TestChain, block: &Block) {
    let mut group = criterion.benchmark_group("block");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    group.bench_function("apply_1000_transfers", |bench| {
        bench.iter(|| apply(&chain.params, &chain.state, black_box(block)).unwrap())
    });

    group.finish();
}

fn benches(criterion: &mut Criterion) {
    let (chain, block, _change) = transfer_block();
    codec_benches(criterion, &block);
    signature_benches(criterion);
    credential_benches(criterion, &chain, &block);
    block_benches(criterion, &chain, &block);
}

criterion_group! {
    name = ledger;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = benches
}
criterion_main!(ledger);
