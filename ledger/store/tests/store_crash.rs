//! The RocksDB store: crash safety (a process killed with SIGKILL mid-run loses nothing it
//! reported as committed and leaves a consistent database), genesis and height checks, and
//! what must be durable with a block (last signed height, vault entries, the transfer index).
//!
//! The crash test re-runs this test binary as a child process (`--exact
//! crash_child_commits_blocks --ignored`, switched on by an environment variable) that commits
//! blocks in a loop and prints each height once `commit` has returned; the parent kills it at
//! some point, reopens the database and checks it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use halfveil_ledger::build::propose;
use halfveil_ledger::testkit::{TestAccount, TestChain};
use halfveil_ledger::{
    apply, Amount, Block, ChainParams, Hash32, Height, Issue, Op, State, StateChange, TimeMs,
};
use halfveil_store::{
    BlockWrite, IndexEpochs, Location, RocksStore, Store, StoreError, TransferKey, WAL_BYTES_MAX,
};

/// The child's database directory; the child test does nothing without it.
const CHILD_DIR_ENV: &str = "HALFVEIL_TEST_STORE_CRASH_DIR";
const CHILD_TEST: &str = "crash_child_commits_blocks";
/// The child's line after each commit.
const COMMITTED: &str = "committed height ";
const SEED: u64 = 4242;
const ACCOUNTS_PER_BANK: usize = 4;
const TRANSFERS_PER_BLOCK: usize = 40;
/// The child stops by itself after this long, should the parent never kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// Small transfer index epochs (one closes every five blocks), so the crash test kills
/// writers while they store epochs too.
const CRASH_EPOCHS: IndexEpochs = IndexEpochs {
    transfers: 200,
    heights: 16,
};

/// The chain the child builds: the same keys on every run, whatever is on disk.
struct Writer {
    chain: TestChain,
    accounts: Vec<TestAccount>,
    open_ops: Vec<Op>,
}

impl Writer {
    fn new() -> Writer {
        let mut chain = TestChain::new(SEED, 2, 1, 1);
        chain.seal_identity = false;
        let mut accounts = Vec::new();
        let mut open_ops = Vec::new();
        for index in 0..2 * ACCOUNTS_PER_BANK {
            let (account, open) = chain.new_account(halfveil_ledger::BankId((index % 2) as u16));
            open_ops.push(open);
            open_ops.push(Op::Issue(Issue {
                to: account.id,
                amount: Amount(1_000_000),
                reference: index as u64,
            }));
            accounts.push(account);
        }
        Writer {
            chain,
            accounts,
            open_ops,
        }
    }

    /// The next block: the accounts at height 1, then rings of small transfers whose nonces
    /// derive from the height, so a restarted writer never reuses one.
    fn next_block(&mut self) -> (Block, StateChange) {
        if self.chain.state.height == Height(0) {
            return self.chain.build(Vec::new(), self.open_ops.clone()).unwrap();
        }
        let height = self.chain.state.height.0 + 1;
        let count = self.accounts.len();
        let mut requests = Vec::with_capacity(TRANSFERS_PER_BLOCK);
        for index in 0..TRANSFERS_PER_BLOCK {
            let payee = self.accounts[(index + 1) % count].id;
            let payer = &mut self.accounts[index % count];
            payer.next_nonce = height * TRANSFERS_PER_BLOCK as u64 + index as u64;
            requests.push(self.chain.request(payer, &payee, 1 + (height % 7)));
        }
        let (attestations, ops) = self.chain.transfer_ops(requests);
        self.chain.build(attestations, ops).unwrap()
    }

    /// Builds the next block, writes it (with the IM's last signed height) and moves on.
    fn commit_next(&mut self, store: &RocksStore) -> Height {
        self.commit_next_with(store, &[])
    }

    /// [`Writer::commit_next`], with node-local rows written in the same batch.
    fn commit_next_with(
        &mut self,
        store: &RocksStore,
        local: &[halfveil_store::LocalRow],
    ) -> Height {
        let (block, change) = self.next_block();
        let block_hash = block.header().hash().unwrap();
        store
            .commit(&BlockWrite {
                block: &block,
                encoded: None,
                block_hash,
                change: &change,
                last_signed: Some(block.height()),
                local,
            })
            .unwrap();
        self.chain.state.commit(&change, block_hash);
        block.height()
    }
}

/// Run only as a child of `killed_writers_lose_nothing_they_reported`.
#[test]
#[ignore = "the child process of the crash test"]
fn crash_child_commits_blocks() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut writer = Writer::new();
    let store = RocksStore::open_with(Path::new(&dir), &writer.chain.params, CRASH_EPOCHS).unwrap();
    writer.chain.state = store.load_state(&writer.chain.params).unwrap();
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let height = writer.commit_next(&store);
        println!("{COMMITTED}{}", height.0);
    }
}

/// Starts a writer on `dir`, reads until it reported `reports` commits, waits `delay`, kills
/// it with SIGKILL and returns the last height it reported.
fn run_and_kill(dir: &Path, reports: usize, delay: Duration) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last = None;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(height) = line.strip_prefix(COMMITTED) {
            let height: u64 = height.trim().parse().unwrap();
            if let Some(previous) = last {
                assert_eq!(height, previous + 1, "the writer skipped a height");
            }
            last = Some(height);
            seen += 1;
            if seen == reports {
                break;
            }
        }
    }
    std::thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer ended before it was killed: {status}"
    );
    last.unwrap_or_else(|| panic!("the writer reported no commit (status {status})"))
}

/// Reopens the database and checks everything a restarted node relies on.
fn check_after_crash(dir: &Path, params: &ChainParams, reported: u64) -> Height {
    let store = RocksStore::open_with(dir, params, CRASH_EPOCHS).unwrap();
    let head = store.head().unwrap();
    assert!(
        head.height.0 >= reported,
        "head {} is behind the reported commit {reported}",
        head.height
    );
    assert_eq!(store.last_signed().unwrap(), head.height);
    let loaded = store.load_state(params).unwrap();
    assert_eq!(loaded.height, head.height);
    assert_eq!(loaded.head_hash, head.hash);
    assert_eq!(loaded.state_root(), head.state_root);
    assert_eq!(loaded.supply, head.supply);

    // Replaying every stored block from genesis reaches the same state.
    let mut replayed = State::genesis(params).unwrap();
    for height in 1..=head.height.0 {
        let block = store.block(Height(height)).unwrap().unwrap();
        let change = apply(params, &replayed, &block).unwrap();
        let hash = block.header().hash().unwrap();
        assert_eq!(store.height_of(&hash).unwrap(), Some(Height(height)));
        for (id, index) in &change.transfers {
            assert_eq!(
                store.transfer_location(id).unwrap(),
                Some(Location {
                    height: Height(height),
                    index: *index
                })
            );
        }
        replayed.commit(&change, hash);
    }
    assert_eq!(replayed.head_hash, head.hash);
    assert_eq!(replayed.state_root(), head.state_root);
    assert_eq!(replayed.nonce_count(), loaded.nonce_count());
    assert_eq!(replayed.account_count(), loaded.account_count());
    assert!(store.block(Height(head.height.0 + 1)).unwrap().is_none());
    head.height
}

#[test]
fn killed_writers_lose_nothing_they_reported() {
    let dir = tempfile::tempdir().unwrap();
    let params = Writer::new().chain.params;
    let mut head = 0;
    // Four kill points; each writer resumes from what the previous one left. The last
    // runs long enough for the blocks family to switch memtables a few times, so the
    // database is killed while it writes into a recycled WAL file.
    for (reports, delay_ms) in [(3, 0), (8, 2), (15, 5), (1_200, 1)] {
        let reported = run_and_kill(dir.path(), reports, Duration::from_millis(delay_ms));
        assert!(
            reported > head,
            "the writer did not resume from the stored head"
        );
        head = check_after_crash(dir.path(), &params, reported).0;
    }
    assert!(head >= 3 + 8 + 15 + 1_200);
}

/// A fresh store and a small chain written to it.
fn store_with_blocks(blocks: usize) -> (tempfile::TempDir, Writer, RocksStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new();
    let store = RocksStore::open(dir.path(), &writer.chain.params).unwrap();
    for _ in 0..blocks {
        writer.commit_next(&store);
    }
    (dir, writer, store)
}

#[test]
fn a_store_refuses_another_genesis() {
    let (dir, writer, store) = store_with_blocks(1);
    drop(store);
    let mut other = writer.chain.params.clone();
    other.genesis_hash = Hash32([9; 32]);
    match RocksStore::open(dir.path(), &other) {
        Err(StoreError::GenesisMismatch {
            found, expected, ..
        }) => {
            assert_eq!(found, writer.chain.params.genesis_hash);
            assert_eq!(expected, Hash32([9; 32]));
        }
        other => panic!("expected GenesisMismatch, got {other:?}"),
    }
    // A fresh database takes any genesis, and the original still opens.
    let fresh = tempfile::tempdir().unwrap();
    RocksStore::open(fresh.path(), &other).unwrap();
    let store = RocksStore::open(dir.path(), &writer.chain.params).unwrap();
    assert_eq!(store.head().unwrap().height, Height(1));
}

#[test]
fn a_store_takes_only_the_next_height() {
    let (_dir, mut writer, store) = store_with_blocks(2);
    let (block, change) = writer.next_block();
    assert_eq!(block.height(), Height(3));
    fn write<'a>(block: &'a Block, change: &'a StateChange) -> BlockWrite<'a> {
        BlockWrite {
            block,
            encoded: None,
            block_hash: block.header().hash().unwrap(),
            change,
            last_signed: None,
            local: &[],
        }
    }
    for height in [Height(1), Height(2), Height(4), Height(100)] {
        let mut wrong = block.clone();
        wrong.signed.header.height = height;
        match store.commit(&write(&wrong, &change)) {
            Err(StoreError::NotNext {
                height: found,
                head,
            }) => {
                assert_eq!(found, height);
                assert_eq!(head, Height(2));
            }
            other => panic!("height {height}: expected NotNext, got {other:?}"),
        }
    }
    assert_eq!(store.head().unwrap().height, Height(2));
    assert!(store.block(Height(4)).unwrap().is_none());
    store.commit(&write(&block, &change)).unwrap();
    assert_eq!(store.head().unwrap().height, Height(3));
}

#[test]
fn last_signed_and_local_rows_are_durable_with_their_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new();
    let params = writer.chain.params.clone();
    let store = RocksStore::open(dir.path(), &params).unwrap();
    assert_eq!(store.last_signed().unwrap(), Height(0));
    let row = (b"applied".to_vec(), vec![0xa5; 1073]);

    let (block, change) = writer.next_block();
    let hash = block.header().hash().unwrap();
    store
        .commit(&BlockWrite {
            block: &block,
            encoded: None,
            block_hash: hash,
            change: &change,
            last_signed: Some(Height(1)),
            local: std::slice::from_ref(&row),
        })
        .unwrap();
    writer.chain.state.commit(&change, hash);
    // An AM's write carries no signed height: the IM's record stays as it was. It stores
    // the bytes it received instead of encoding the block again.
    let (block, change) = writer.next_block();
    let hash = block.header().hash().unwrap();
    let received = block.encode().unwrap();
    store
        .commit(&BlockWrite {
            block: &block,
            encoded: Some(&received),
            block_hash: hash,
            change: &change,
            last_signed: None,
            local: &[],
        })
        .unwrap();
    drop(store);

    let store = RocksStore::open(dir.path(), &params).unwrap();
    assert_eq!(store.head().unwrap().height, Height(2));
    assert_eq!(store.block(Height(2)).unwrap(), Some(block));
    assert_eq!(store.last_signed().unwrap(), Height(1));
    assert_eq!(store.local_get(&row.0).unwrap(), Some(row.1));
    assert_eq!(store.local_get(b"never written").unwrap(), None);
}

#[test]
fn a_reopened_store_holds_the_same_state() {
    let (dir, mut writer, store) = store_with_blocks(3);
    // A block far in the future: every remembered nonce expires and is deleted.
    assert!(writer.chain.state.nonce_count() > 0);
    commit_expiring_block(&mut writer, &store);
    assert_eq!(writer.chain.state.nonce_count(), 0);
    writer.commit_next(&store);
    drop(store);

    let params = &writer.chain.params;
    let store = RocksStore::open(dir.path(), params).unwrap();
    let loaded = store.load_state(params).unwrap();
    let memory = &writer.chain.state;
    assert_eq!(loaded.height, memory.height);
    assert_eq!(loaded.state_root(), memory.state_root());
    assert_eq!(loaded.nonce_count(), memory.nonce_count());
    assert_eq!(loaded.nonce_count(), TRANSFERS_PER_BLOCK);
    for account in &writer.accounts {
        assert_eq!(loaded.account(&account.id), memory.account(&account.id));
    }
    // A fresh database loads the genesis state.
    let fresh = tempfile::tempdir().unwrap();
    let store = RocksStore::open(fresh.path(), params).unwrap();
    let genesis = store.load_state(params).unwrap();
    assert_eq!(genesis.height, Height(0));
    assert_eq!(
        genesis.state_root(),
        State::genesis(params).unwrap().state_root()
    );
    assert_eq!(store.head().unwrap().state_root, genesis.state_root());
}

/// A row missing behind the store's back is found at load, not trusted.
#[test]
fn a_tampered_database_is_refused_at_load() {
    let (dir, writer, store) = store_with_blocks(2);
    drop(store);
    {
        let options = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&options, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&options, dir.path(), &names).unwrap();
        let accounts = db.cf_handle("accounts").unwrap();
        db.delete_cf(accounts, writer.accounts[3].id.0).unwrap();
    }
    let store = RocksStore::open(dir.path(), &writer.chain.params).unwrap();
    match store.load_state(&writer.chain.params) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Accounts that genesis opens are state rows from the start: a store reopened after blocks
/// that never touched them still holds them.
#[test]
fn genesis_accounts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new();
    let (holder, _) = writer.chain.new_account(halfveil_ledger::BankId(0));
    writer
        .chain
        .params
        .initial_accounts
        .push(halfveil_ledger::state::InitialAccount {
            tx_key: halfveil_ledger::crypto::public_key(&holder.tx_key),
            bank: halfveil_ledger::BankId(0),
            balance: Amount(5_000),
        });
    writer.chain.state = State::genesis(&writer.chain.params).unwrap();
    let params = writer.chain.params.clone();
    let store = RocksStore::open(dir.path(), &params).unwrap();
    writer.commit_next(&store);
    writer.commit_next(&store);
    drop(store);

    let store = RocksStore::open(dir.path(), &params).unwrap();
    let loaded = store.load_state(&params).unwrap();
    assert_eq!(loaded.state_root(), writer.chain.state.state_root());
    assert_eq!(
        loaded.account(&holder.id).map(|account| account.balance),
        Some(Amount(5_000))
    );
}

/// The write-ahead log stays bounded however unevenly the families are written: here every
/// block carries a large node-local row (a family that never fills its memtable), which without
/// `max_total_wal_size` pinned every WAL file since the start. A bounded log is the live file
/// plus up to a few obsolete files of about the same size kept for recycling.
#[test]
fn the_write_ahead_log_stays_bounded() {
    const BLOCKS: usize = 160;
    const RECORD_BYTES: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new();
    let params = writer.chain.params.clone();
    let store = RocksStore::open(dir.path(), &params).unwrap();
    let mut last = None;
    for index in 0..BLOCKS {
        let row = (
            format!("row {}", index % 4).into_bytes(),
            vec![index as u8; RECORD_BYTES],
        );
        writer.commit_next_with(&store, std::slice::from_ref(&row));
        last = Some(row);
    }
    let wal_bytes = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
            .map(|entry| entry.metadata().unwrap().len())
            .sum()
    };
    // Flushes run in the background; give the last one a moment.
    let written = (BLOCKS * RECORD_BYTES) as u64;
    let bound = 4 * (WAL_BYTES_MAX + 2 * RECORD_BYTES as u64);
    assert!(written > bound + 16 * RECORD_BYTES as u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut kept = wal_bytes(dir.path());
    while kept > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        kept = wal_bytes(dir.path());
    }
    assert!(
        kept <= bound,
        "{kept} bytes of WAL kept after writing {written}: {:?}",
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name(), entry.metadata().unwrap().len())
            })
            .collect::<Vec<_>>()
    );
    // Nothing was lost to the flushes that bounded it.
    drop(store);
    let store = RocksStore::open(dir.path(), &params).unwrap();
    assert_eq!(store.head().unwrap().height, Height(BLOCKS as u64));
    let (key, value) = last.unwrap();
    assert_eq!(store.local_get(&key).unwrap(), Some(value));
}

/// The raw database under a closed store, every column family open.
fn raw_db(dir: &Path) -> rocksdb::DB {
    let options = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&options, dir).unwrap();
    rocksdb::DB::open_cf(&options, dir, &names).unwrap()
}

/// Every row of one column family.
fn raw_rows(db: &rocksdb::DB, family: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cf = db.cf_handle(family).unwrap();
    db.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

/// A block that expires every remembered nonce, committed to `store` and to the writer.
fn commit_expiring_block(writer: &mut Writer, store: &RocksStore) {
    commit_empty_block_after(writer, store, 10_000_000);
}

/// Commits an empty block a second after the head.
fn commit_empty_block(writer: &mut Writer, store: &RocksStore) {
    commit_empty_block_after(writer, store, 1_000);
}

/// Commits an empty block `step_ms` after the head, to `store` and to the writer.
fn commit_empty_block_after(writer: &mut Writer, store: &RocksStore, step_ms: u64) {
    let time = TimeMs(writer.chain.state.time.0 + step_ms);
    let proposal = propose(
        &writer.chain.params,
        &writer.chain.state,
        time,
        Vec::new(),
        Vec::new(),
    )
    .unwrap();
    let (block, change) = proposal.sign(&writer.chain.validator).unwrap();
    let hash = block.header().hash().unwrap();
    store
        .commit(&BlockWrite {
            block: &block,
            encoded: None,
            block_hash: hash,
            change: &change,
            last_signed: Some(block.height()),
            local: &[],
        })
        .unwrap();
    writer.chain.state.commit(&change, hash);
}

/// Remembered nonces are one row per block, and the block that forgets a row's last pair
/// deletes it.
#[test]
fn nonce_rows_are_per_block_and_go_when_they_expire() {
    let (dir, mut writer, store) = store_with_blocks(4);
    drop(store);
    let db = raw_db(dir.path());
    let rows = raw_rows(&db, "nonces");
    // Height 1 opens the accounts (no nonces); heights 2-4 hold 40 transfers each.
    assert_eq!(rows.len(), 3);
    for (height, (key, value)) in (2u64..).zip(&rows) {
        assert_eq!(key.len(), 16);
        assert_eq!(key[8..], height.to_be_bytes());
        assert_eq!(value.len(), 48 * TRANSFERS_PER_BLOCK);
    }
    drop(db);

    let store = RocksStore::open(dir.path(), &writer.chain.params).unwrap();
    commit_expiring_block(&mut writer, &store);
    writer.commit_next(&store);
    drop(store);
    let db = raw_db(dir.path());
    let rows = raw_rows(&db, "nonces");
    assert_eq!(rows.len(), 1, "only the last block's row is left");
    assert_eq!(rows[0].0[8..], writer.chain.state.height.0.to_be_bytes());
}

/// A version 1 database (one `nonces` row per remembered pair) opens as version 3, with
/// the same state, and goes on committing.
#[test]
fn a_version_1_database_is_upgraded() {
    let (dir, mut writer, store) = store_with_blocks(3);
    drop(store);
    {
        let db = raw_db(dir.path());
        let nonces = db.cf_handle("nonces").unwrap();
        let meta = db.cf_handle("meta").unwrap();
        for (key, value) in raw_rows(&db, "nonces") {
            db.delete_cf(nonces, key).unwrap();
            for record in value.chunks_exact(48) {
                db.put_cf(nonces, &record[..40], &record[40..]).unwrap();
            }
        }
        db.put_cf(meta, b"schema_version", 1u32.to_be_bytes())
            .unwrap();
        assert_eq!(raw_rows(&db, "nonces").len(), 2 * TRANSFERS_PER_BLOCK);
    }
    let params = writer.chain.params.clone();
    let store = RocksStore::open(dir.path(), &params).unwrap();
    let loaded = store.load_state(&params).unwrap();
    assert_eq!(loaded.state_root(), writer.chain.state.state_root());
    assert_eq!(loaded.nonce_count(), 2 * TRANSFERS_PER_BLOCK);
    writer.commit_next(&store);
    drop(store);
    {
        let db = raw_db(dir.path());
        assert_eq!(
            meta_row(&db, b"schema_version"),
            Some(3u32.to_be_bytes().to_vec())
        );
        assert_eq!(
            raw_rows(&db, "nonces").len(),
            2,
            "the converted row and the new block's"
        );
    }
    let store = RocksStore::open(dir.path(), &params).unwrap();
    let loaded = store.load_state(&params).unwrap();
    assert_eq!(loaded.state_root(), writer.chain.state.state_root());
    assert_eq!(loaded.nonce_count(), 3 * TRANSFERS_PER_BLOCK);
}

/// A database of a schema this build does not know is refused, not guessed at.
#[test]
fn an_unknown_schema_version_is_refused() {
    let (dir, writer, store) = store_with_blocks(1);
    drop(store);
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema_version", 9u32.to_be_bytes())
            .unwrap();
    }
    match RocksStore::open(dir.path(), &writer.chain.params) {
        Err(StoreError::SchemaVersion {
            found: 9,
            expected: 3,
            ..
        }) => {}
        other => panic!("expected SchemaVersion, got {other:?}"),
    }
}

/// Every transfer of the stored blocks, with where it is.
fn stored_transfers(store: &RocksStore) -> Vec<(Hash32, Location)> {
    let head = store.head().unwrap().height;
    let mut transfers = Vec::new();
    for height in 1..=head.0 {
        let block = store.block(Height(height)).unwrap().unwrap();
        for (index, op) in block.ops.iter().enumerate() {
            if let Op::Transfer(transfer) = op {
                transfers.push((
                    transfer.request.transfer.id().unwrap(),
                    Location {
                        height: Height(height),
                        index: index as u32,
                    },
                ));
            }
        }
    }
    transfers
}

/// The value of one `meta` row.
fn meta_row(db: &rocksdb::DB, name: &[u8]) -> Option<Vec<u8>> {
    raw_rows(db, "meta")
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// The `meta` row of the stored epochs: the last epoch and the last height it covers.
fn sealed_row(db: &rocksdb::DB) -> Option<(u32, u64)> {
    meta_row(db, b"index_sealed").map(|value| {
        (
            u32::from_be_bytes(value[..4].try_into().unwrap()),
            u64::from_be_bytes(value[4..].try_into().unwrap()),
        )
    })
}

/// The transfer index closes an epoch after enough transfers or blocks and stores it as
/// rows keyed by epoch; transfers are found in the stored epochs and in the open one, also
/// after a reopen (which rebuilds the open epoch from the blocks); an unknown id is not.
#[test]
fn transfers_are_found_in_stored_and_open_epochs() {
    let epochs = IndexEpochs {
        transfers: 100,
        heights: 4,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new();
    let params = writer.chain.params.clone();
    let store = RocksStore::open_with(dir.path(), &params, epochs).unwrap();
    // Epoch 0: heights 1-4 (closed by its 120 transfers, and its fourth block).
    for _ in 0..4 {
        writer.commit_next(&store);
    }
    // Epoch 1: heights 5-8, no transfers (closed by its fourth block; no file).
    for _ in 0..4 {
        commit_empty_block(&mut writer, &store);
    }
    // Epoch 2, open: height 9.
    writer.commit_next(&store);
    let transfers = stored_transfers(&store);
    assert_eq!(transfers.len(), 4 * TRANSFERS_PER_BLOCK);
    let unknown = Hash32([7; 32]);
    for (id, location) in &transfers {
        assert_eq!(store.transfer_location(id).unwrap(), Some(*location));
    }
    assert_eq!(store.transfer_location(&unknown).unwrap(), None);
    drop(store);

    let db = raw_db(dir.path());
    assert_eq!(sealed_row(&db), Some((1, 8)));
    let rows = raw_rows(&db, "transfer_epochs");
    let stored: Vec<_> = transfers
        .iter()
        .filter(|(_, location)| location.height.0 <= 4)
        .collect();
    assert_eq!(rows.len(), stored.len(), "the open epoch is not stored");
    for (id, _) in stored {
        let key = TransferKey::encode(0, id);
        assert!(rows.iter().any(|(row, _)| row[..] == key[..]));
    }
    drop(db);

    let store = RocksStore::open_with(dir.path(), &params, epochs).unwrap();
    for (id, location) in &transfers {
        assert_eq!(store.transfer_location(id).unwrap(), Some(*location));
    }
    assert_eq!(store.transfer_location(&unknown).unwrap(), None);
    // Height 11 closes epoch 2 (heights 9-11, 120 transfers); height 12 opens epoch 3.
    for _ in 0..3 {
        writer.commit_next(&store);
    }
    drop(store);
    let db = raw_db(dir.path());
    assert_eq!(sealed_row(&db), Some((2, 11)));
    assert_eq!(
        raw_rows(&db, "transfer_epochs").len(),
        6 * TRANSFERS_PER_BLOCK
    );
}

/// A version 2 database (one `transfers` row per transfer, keyed by id) opens as version
/// 3 with every transfer found in stored epoch 0 and the old family gone, and goes on
/// committing.
#[test]
fn a_version_2_transfer_index_is_converted() {
    let (dir, mut writer, store) = store_with_blocks(3);
    let transfers = stored_transfers(&store);
    assert_eq!(transfers.len(), 2 * TRANSFERS_PER_BLOCK);
    drop(store);
    {
        let mut db = raw_db(dir.path());
        db.drop_cf("transfer_epochs").unwrap();
        db.create_cf("transfers", &rocksdb::Options::default())
            .unwrap();
        let index = db.cf_handle("transfers").unwrap();
        for (id, location) in &transfers {
            let value = halfveil_ledger::codec::encode(location).unwrap();
            db.put_cf(index, id.as_bytes(), value).unwrap();
        }
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema_version", 2u32.to_be_bytes())
            .unwrap();
    }
    let params = writer.chain.params.clone();
    let store = RocksStore::open(dir.path(), &params).unwrap();
    for (id, location) in &transfers {
        assert_eq!(store.transfer_location(id).unwrap(), Some(*location));
    }
    assert_eq!(store.transfer_location(&Hash32([7; 32])).unwrap(), None);
    writer.commit_next(&store);
    let all = stored_transfers(&store);
    assert_eq!(all.len(), transfers.len() + TRANSFERS_PER_BLOCK);
    for (id, location) in &all {
        assert_eq!(store.transfer_location(id).unwrap(), Some(*location));
    }
    drop(store);
    let db = raw_db(dir.path());
    let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    assert!(!families.iter().any(|name| name == "transfers"));
    assert_eq!(sealed_row(&db), Some((0, 3)));
    let rows = raw_rows(&db, "transfer_epochs");
    assert_eq!(rows.len(), transfers.len());
    assert!(rows.iter().all(|(key, _)| key[..4] == [0; 4]));
    assert_eq!(
        meta_row(&db, b"schema_version"),
        Some(3u32.to_be_bytes().to_vec())
    );
}
