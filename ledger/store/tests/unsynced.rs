//! A block written without waiting for the disk (`Store::commit_unsynced`, an IM replica's
//! apply) is a whole commit like any other: the head, the state and the local rows move
//! together, it is read back after a restart, and the next block must follow it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::BankId;
use halfveil_store::{BlockWrite, RocksStore, Store, StoreError};

#[test]
fn an_unsynced_block_is_a_whole_commit_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 2, 3, 2);
    let store = RocksStore::open(dir.path(), &chain.params).unwrap();
    let (_, op) = chain.new_account(BankId(0));
    let (block, change) = chain.build(Vec::new(), vec![op]).unwrap();
    let block_hash = block.header().hash().unwrap();
    let applied = (b"raft/applied".to_vec(), vec![7]);
    let write = BlockWrite {
        block: &block,
        encoded: None,
        block_hash,
        change: &change,
        last_signed: Some(block.height()),
        local: std::slice::from_ref(&applied),
    };
    store.commit_unsynced(&write).unwrap();
    chain.state.commit(&change, block_hash);
    assert!(
        matches!(
            store.commit_unsynced(&write),
            Err(StoreError::NotNext { .. })
        ),
        "the same height twice is refused"
    );
    drop(store);

    let store = RocksStore::open(dir.path(), &chain.params).unwrap();
    assert_eq!(store.head().unwrap().hash, block_hash);
    assert_eq!(store.last_signed().unwrap(), block.height());
    assert_eq!(store.local_get(b"raft/applied").unwrap(), Some(vec![7]));
    let loaded = store.load_state(&chain.params).unwrap();
    assert_eq!(loaded.state_root(), chain.state.state_root());
}
