//! Adopted disclosure keys are state: written with their block and read back on restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::disclosure_keys::HeldKey;
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::threshold::dkg;
use halfveil_store::{BlockWrite, RocksStore, Store};

/// Commits the block of `ops` to `store` and to the chain's state.
fn commit(chain: &mut TestChain, store: &RocksStore, ops: Vec<halfveil_ledger::Op>) {
    let (block, change) = chain.build(Vec::new(), ops).unwrap();
    let block_hash = block.header().hash().unwrap();
    store
        .commit(&BlockWrite {
            block: &block,
            encoded: None,
            block_hash,
            change: &change,
            last_signed: None,
            local: &[],
        })
        .unwrap();
    chain.state.commit(&change, block_hash);
}

/// The first key of the next epoch, held as the current one is.
fn next_epoch(chain: &mut TestChain) -> HeldKey {
    let current = chain.state.disclosure_keys().current().clone();
    let numbers: Vec<u16> = current.key.holders.iter().map(|h| h.holder).collect();
    let epoch = current.key.epoch + 1;
    let (_, key) = dkg::in_memory(epoch, &numbers, 3, None, &mut chain.rng).unwrap();
    HeldKey {
        key,
        parties: current.parties,
    }
}

#[test]
fn adopted_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(3, 1, 3, 2);
    let store = RocksStore::open(dir.path(), &chain.params).unwrap();
    for _ in 0..2 {
        let held = next_epoch(&mut chain);
        let adoption = chain.adoption(held);
        commit(&mut chain, &store, vec![adoption]);
    }
    assert_eq!(chain.state.disclosure_key().epoch, 2);
    drop(store);
    let store = RocksStore::open(dir.path(), &chain.params).unwrap();
    let loaded = store.load_state(&chain.params).unwrap();
    assert_eq!(loaded.disclosure_keys(), chain.state.disclosure_keys());
    assert_eq!(loaded.state_root(), chain.state.state_root());
    let stored = store.adopted_keys().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].held, *chain.state.disclosure_keys().current());
}
