//! The store's hot paths: the synced write of a block of 1,000 transfers, and a transfer
//! index lookup that misses across 1,000 stored epochs.
//!
//! Run with `cargo bench -p halfveil-store --bench store`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::{Block, Hash32, StateChange};
use halfveil_store::{BlockWrite, IndexEpochs, RocksStore, Store};

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

fn commit_benches(
    criterion: &mut Criterion,
    chain: &TestChain,
    block: &Block,
    change: &StateChange,
) {
    let mut group = criterion.benchmark_group("block");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BLOCK_TRANSFERS as u64));
    // Synced writes on the target directory's disk (not a tmpfs). The store checks only the
    // height, so one block is written again and again under increasing heights.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = RocksStore::open(dir.path(), &chain.params).unwrap();
    let mut block = block.clone();
    let block_hash = block.header().hash().unwrap();
    group.bench_function("store_commit_1000_transfers", |bench| {
        bench.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                commit_again(&store, &mut block, block_hash, change);
            }
            started.elapsed()
        })
    });
    group.finish();
}

/// Writes `block` again at the height after the store's head (the store checks only the
/// height).
fn commit_again(store: &RocksStore, block: &mut Block, block_hash: Hash32, change: &StateChange) {
    block.signed.header.height = store.head().unwrap().height.next().unwrap();
    store
        .commit(&BlockWrite {
            block,
            encoded: None,
            block_hash,
            change,
            last_signed: Some(block.height()),
            local: &[],
        })
        .unwrap();
}

/// A transfer index lookup that misses: it probes every stored epoch, newest first, so its
/// cost grows with the chain (a Bloom filter check per epoch).
fn index_benches(
    criterion: &mut Criterion,
    chain: &TestChain,
    block: &Block,
    change: &StateChange,
) {
    const EPOCHS: u64 = 1_000;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let epochs = IndexEpochs {
        transfers: BLOCK_TRANSFERS,
        heights: 1,
    };
    let store = RocksStore::open_with(dir.path(), &chain.params, epochs).unwrap();
    let mut block = block.clone();
    let block_hash = block.header().hash().unwrap();
    for _ in 0..EPOCHS {
        commit_again(&store, &mut block, block_hash, change);
    }
    // Reopened, so every epoch is stored and none is in memory.
    drop(store);
    let store = RocksStore::open_with(dir.path(), &chain.params, epochs).unwrap();
    let unknown = Hash32([7; 32]);
    let mut group = criterion.benchmark_group("index");
    group.sample_size(10);
    group.bench_function("miss_1000_epochs", |bench| {
        bench.iter(|| {
            assert!(store
                .transfer_location(black_box(&unknown))
                .unwrap()
                .is_none())
        })
    });
    group.finish();
}

fn benches(criterion: &mut Criterion) {
    let (chain, block, change) = transfer_block();
    commit_benches(criterion, &chain, &block, &change);
    index_benches(criterion, &chain, &block, &change);
}

criterion_group! {
    name = store;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = benches
}
criterion_main!(store);
