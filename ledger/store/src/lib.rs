//! Durable storage: the [`Store`] trait and its RocksDB implementation, the only place
//! RocksDB appears (kept out of `halfveil-ledger` so the rules build without it).
//!
//! One column family per table. A block and everything it changes (accounts, remembered
//! nonces, the head, the IM's last signed height, new identity-vault entries) go into one
//! `WriteBatch`, written with `sync = true`: one fsync per block, and a crash leaves either
//! the whole block or none of it. The transfer index is derived from the blocks and kept by
//! epoch (see [`index`]). The `meta` table holds the schema version and the genesis hash,
//! checked at every open.

mod error;
mod index;
mod raft_log;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use index::{InMemory, Sealed, TransferIndex, CF_INDEX, KEY_SEALED};
pub use index::{IndexEpochs, TransferKey};

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

pub use error::StoreError;
use halfveil_ledger::codec;
use halfveil_ledger::disclosure_keys::{DisclosureKeys, KeyAdoption, KEY_ADOPTION_BYTES_MAX};
use halfveil_ledger::fastmap::{HashMap, HashSet};
use halfveil_ledger::hash::Hash32;
use halfveil_ledger::state::{Account, ChainParams, State, StateChange};
use halfveil_ledger::types::{
    AccountId, Amount, Block, Height, Nonce, Op, TimeMs, BLOCK_BYTES_MAX,
};

/// The on-disk layout this build reads and writes. Version 1 kept one `nonces` row per
/// remembered `(payer, nonce)`; version 2 keeps one per block (see [`NonceRows`]); version 3
/// keeps the transfer index by epoch (see [`index`]) instead of one `transfers` row per
/// transfer in the block's write. Opening an older database converts it.
pub const SCHEMA_VERSION: u32 = 3;

const CF_META: &str = "meta";
const CF_BLOCKS: &str = "blocks";
const CF_BLOCK_HASHES: &str = "block_hashes";
/// Version 2's transfer index, one row per transfer keyed by id.
const CF_TRANSFERS_V2: &str = "transfers";
const CF_ACCOUNTS: &str = "accounts";
const CF_NONCES: &str = "nonces";
const CF_ORDERS: &str = "orders";
/// Node-local rows outside the chain (a bank's accounts and limits, equivocation evidence).
const CF_LOCAL: &str = "local";
/// A replicated IM's raft log (`raft_log.rs`): entries by big-endian index.
const CF_RAFT_LOG: &str = "raft_log";
/// Families never read by key while the node runs: accounts, nonces and served orders are
/// loaded into memory by one scan at start.
const WRITE_ONLY_FAMILIES: [&str; 3] = [CF_ACCOUNTS, CF_NONCES, CF_ORDERS];
/// Families written by every block: blocks, their hashes, accounts and nonces.
const STEADY_FAMILIES: [&str; 4] = [CF_BLOCKS, CF_BLOCK_HASHES, CF_ACCOUNTS, CF_NONCES];
/// Families compacted by size tiers rather than levels (see `family_options`).
const UNIVERSAL_FAMILIES: [&str; 1] = [CF_ACCOUNTS];
/// The memtable size of the steadily written families (see `family_options`).
const STEADY_WRITE_BUFFER_BYTES: usize = 2 << 20;
/// The most bytes of write-ahead log kept. A WAL file can be deleted (or recycled) only
/// once every family with rows in it has flushed; above this total RocksDB flushes the
/// families holding the oldest file, however little they hold (see `db_options`).
pub const WAL_BYTES_MAX: u64 = 32 << 20;
const COLUMN_FAMILIES: [&str; 9] = [
    CF_META,
    CF_BLOCKS,
    CF_BLOCK_HASHES,
    CF_INDEX,
    CF_ACCOUNTS,
    CF_NONCES,
    CF_ORDERS,
    CF_LOCAL,
    CF_RAFT_LOG,
];

const KEY_SCHEMA: &[u8] = b"schema_version";
const KEY_GENESIS: &[u8] = b"genesis_hash";
const KEY_HEAD: &[u8] = b"head";
const KEY_LAST_SIGNED: &[u8] = b"last_signed_height";
/// Each adopted disclosure key, by this prefix and its epoch (4 bytes, big-endian): a
/// refresh overwrites its epoch's row.
const KEY_DISCLOSURE_PREFIX: &[u8] = b"disclosure_key/";

/// The stored head: enough to resume without reading the head block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub height: Height,
    pub hash: Hash32,
    pub time: TimeMs,
    pub supply: Amount,
    pub state_root: Hash32,
}

/// Where a committed transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub height: Height,
    pub index: u32,
}

/// One block's write: the block, what it changed, and the node-specific extras that must be
/// durable with it.
#[derive(Debug)]
pub struct BlockWrite<'a> {
    pub block: &'a Block,
    /// The block's canonical encoding, if the caller holds it (a bank keeps the bytes it
    /// received, which strict decoding proved canonical; the IM's writer encodes once for
    /// the store and for publishing); `None` encodes it here.
    pub encoded: Option<&'a [u8]>,
    pub block_hash: Hash32,
    pub change: &'a StateChange,
    /// The IM records the height it is about to sign in the same batch (SPEC section 5).
    pub last_signed: Option<Height>,
    /// Node-local rows that must be durable with the block (an IM replica's applied raft
    /// log id).
    pub local: &'a [LocalRow],
}

/// What the node needs from storage. One implementation ([`RocksStore`]); the trait keeps the
/// node's storage thread and tests honest about what they use.
pub trait Store: Send + Sync {
    /// The state at the stored head (genesis state on a new database).
    fn load_state(&self, params: &ChainParams) -> Result<State, StoreError>;
    /// Persists one block atomically and durably; returns after the synced write.
    fn commit(&self, write: &BlockWrite<'_>) -> Result<(), StoreError>;
    /// Persists one block atomically, without waiting for the disk: for an IM replica,
    /// whose raft log (synced on a majority before the block was committed) already makes
    /// the block durable; a crash that loses this write applies the block again from the
    /// log. The next synced write of this store persists it too: every write goes through
    /// the one write-ahead log, and a synced write syncs all of it.
    fn commit_unsynced(&self, write: &BlockWrite<'_>) -> Result<(), StoreError>;
    fn head(&self) -> Result<Head, StoreError>;
    /// The disclosure keys adopted on chain (each epoch's latest, oldest first), with their
    /// holders' signatures; empty while genesis's key is the only one.
    fn adopted_keys(&self) -> Result<Vec<KeyAdoption>, StoreError>;
    fn block(&self, height: Height) -> Result<Option<Block>, StoreError>;
    fn height_of(&self, block_hash: &Hash32) -> Result<Option<Height>, StoreError>;
    fn transfer_location(&self, transfer_id: &Hash32) -> Result<Option<Location>, StoreError>;
    fn last_signed(&self) -> Result<Height, StoreError>;
    /// A node-local row.
    fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes node-local rows atomically, synced.
    fn local_put(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError>;
    /// Deletes node-local rows atomically, synced.
    fn local_delete(&self, keys: &[Vec<u8>]) -> Result<(), StoreError>;
    /// Every node-local row whose key starts with `prefix`, at most `limit`.
    fn local_scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<LocalRow>, StoreError>;
}

/// A node-local key and value.
pub type LocalRow = (Vec<u8>, Vec<u8>);

/// RocksDB behind [`Store`].
pub struct RocksStore {
    db: Arc<DB>,
    path: PathBuf,
    index: TransferIndex,
    head: Mutex<Head>,
    /// The keys of the `nonces` rows: every row is deleted by the first block whose time
    /// passes its last expiry.
    nonce_rows: Mutex<BTreeSet<NonceRowKey>>,
}

/// The key of a block's `nonces` row: the latest expiry among its pairs, then the height,
/// both big-endian, so rows sort by when they can go.
type NonceRowKey = (TimeMs, Height);

/// The `(payer, nonce)` pairs a block made the state remember, kept as one row per block
/// rather than one row per pair: a block of 200 transfers writes one memtable entry instead
/// of 200, which RocksDB otherwise inserts, sorts at flush and compacts one by one. The value
/// is the pairs as fixed 48-byte records (payer, nonce, expiry; big-endian numbers).
///
/// The state remembers a pair until the first block at or after its expiry, so at a head of
/// time `t` the remembered pairs are exactly the stored ones that expire after `t`; a row
/// goes in the block that forgets its last pair.
struct NonceRows;

impl NonceRows {
    const RECORD_BYTES: usize = 48;

    fn key((latest, height): NonceRowKey) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&latest.0.to_be_bytes());
        key[8..].copy_from_slice(&height.0.to_be_bytes());
        key
    }

    fn parse_key(key: &[u8]) -> Result<NonceRowKey, StoreError> {
        if key.len() != 16 {
            return Err(corrupt("nonce row key is not 16 bytes"));
        }
        Ok((
            TimeMs(u64_from(&key[..8], "nonce row expiry")?),
            Height(u64_from(&key[8..], "nonce row height")?),
        ))
    }

    fn encode(pairs: &[(AccountId, Nonce, TimeMs)]) -> Vec<u8> {
        let mut value = Vec::with_capacity(pairs.len() * Self::RECORD_BYTES);
        for (account, nonce, expires_at) in pairs {
            value.extend_from_slice(&account.0);
            value.extend_from_slice(&nonce.0.to_be_bytes());
            value.extend_from_slice(&expires_at.0.to_be_bytes());
        }
        value
    }

    fn decode(value: &[u8]) -> Result<Vec<(AccountId, Nonce, TimeMs)>, StoreError> {
        if value.is_empty() || !value.len().is_multiple_of(Self::RECORD_BYTES) {
            return Err(corrupt("nonce row is not a whole number of records"));
        }
        value
            .chunks_exact(Self::RECORD_BYTES)
            .map(|record| {
                Ok((
                    account_id_from(&record[..32])?,
                    Nonce(u64_from(&record[32..40], "nonce")?),
                    TimeMs(u64_from(&record[40..], "nonce expiry")?),
                ))
            })
            .collect()
    }
}

/// Stops and joins RocksDB's background threads. Call once, when the process is done with
/// every database (the last [`RocksStore`] dropped) and about to exit: background threads
/// still running while the C++ runtime destroys its statics can abort the process
/// ("pthread lock: Invalid argument").
pub fn join_background_threads() {
    if let Ok(mut env) = rocksdb::Env::new() {
        env.join_all_threads();
    }
}

impl Drop for RocksStore {
    /// Stops RocksDB's background flushes and compactions before the database closes, so no
    /// background job is still running when the process exits.
    fn drop(&mut self) {
        let _ = self.index.join();
        self.db.cancel_all_background_work(true);
    }
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RocksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A column family of `db`, or why not.
fn family<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| corrupt(format!("column family {name} missing")))
}

/// Writes `batch` with `sync = true`.
fn write_synced(db: &DB, batch: WriteBatch) -> Result<(), StoreError> {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    db.write_opt(batch, &options)?;
    Ok(())
}

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        reason: reason.into(),
    }
}

/// The database's options: compression, background jobs at low priority, synced bytes,
/// recycled and bounded WAL (docs/decisions/0018-rocksdb-tuning.md).
fn db_options() -> Result<Options, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_max_background_jobs(2);
    // Flushes and compactions at nice 19: they take the cores the payment pipeline
    // leaves, and RocksDB's write stall is the backpressure (docs/decisions/0018-rocksdb-tuning.md).
    let mut env = rocksdb::Env::new()?;
    env.lower_thread_pool_cpu_priority();
    env.lower_high_priority_thread_pool_cpu_priority();
    options.set_env(&env);
    options.set_bytes_per_sync(1 << 20);
    // Recycled WAL files: a block's fdatasync then needs no file-system metadata.
    options.set_recycle_log_file_num(4);
    // Bounded, or rarely written families keep every WAL file alive and none is ever
    // recycled (docs/decisions/0018-rocksdb-tuning.md).
    options.set_max_total_wal_size(WAL_BYTES_MAX);
    // Vector memtables (`family_options`) take one writer at a time; ours is one thread
    // anyway.
    options.set_allow_concurrent_memtable_write(false);
    Ok(options)
}

/// The options of the column family `name`, by how it is written and read.
fn family_options(name: &str) -> Options {
    let mut cf_options = Options::default();
    if WRITE_ONLY_FAMILIES.contains(&name) {
        // Written while running, scanned once at start: append-only memtables.
        cf_options.set_memtable_factory(rocksdb::MemtableFactory::Vector);
    }
    if STEADY_FAMILIES.contains(&name) {
        // Small memtables flush in small steps; a large flush stalls the next
        // blocks' fdatasync (docs/decisions/0018-rocksdb-tuning.md).
        cf_options.set_write_buffer_size(STEADY_WRITE_BUFFER_BYTES);
    }
    if UNIVERSAL_FAMILIES.contains(&name) {
        // Accounts are rewritten in place by random keys: size-tiered compaction
        // rewrites an entry about log(n) times, not the whole family every four
        // flushes (docs/decisions/0018-rocksdb-tuning.md).
        cf_options.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
    }
    if name == CF_INDEX {
        cf_options = index::family_options();
    }
    cf_options
}

impl RocksStore {
    /// Opens (or creates) the database at `path` for the chain of `params`. Refuses a
    /// database of another schema version or another genesis.
    pub fn open(path: &Path, params: &ChainParams) -> Result<RocksStore, StoreError> {
        Self::open_with(path, params, IndexEpochs::default())
    }

    /// [`RocksStore::open`] with the transfer index's epochs closing at `epochs` (tests use
    /// small ones).
    pub fn open_with(
        path: &Path,
        params: &ChainParams,
        epochs: IndexEpochs,
    ) -> Result<RocksStore, StoreError> {
        let options = db_options()?;
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, family_options(name)));
        // RocksDB opens a database only with every family it has: a version 2 database still
        // has its `transfers` family until it is converted, and an older one its `vault`
        // (whose chain the meta check then refuses with a clear error).
        let extra: Vec<String> = DB::list_cf(&options, path)
            .unwrap_or_default()
            .into_iter()
            .filter(|name| name != "default" && !COLUMN_FAMILIES.contains(&name.as_str()))
            .collect();
        let legacy = extra.iter().any(|name| name == CF_TRANSFERS_V2);
        let descriptors = descriptors.chain(
            extra
                .iter()
                .map(|name| ColumnFamilyDescriptor::new(name, Options::default())),
        );
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;
        let mut store = RocksStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
            index: TransferIndex::open(path, epochs, None)?,
            head: Mutex::new(Head {
                height: Height(0),
                hash: params.genesis_hash,
                time: params.genesis_time,
                supply: Amount(0),
                state_root: Hash32::ZERO,
            }),
            nonce_rows: Mutex::new(BTreeSet::new()),
        };
        store.check_or_init_meta(params)?;
        if legacy {
            Arc::get_mut(&mut store.db)
                .ok_or_else(|| corrupt("database shared while opening"))?
                .drop_cf(CF_TRANSFERS_V2)?;
        }
        let sealed = match store.db.get_cf(store.cf(CF_META)?, KEY_SEALED)? {
            None => None,
            Some(bytes) => Some(Sealed::decode(&bytes)?),
        };
        store.index = TransferIndex::open(path, epochs, sealed)?;
        store.load_nonce_rows()?;
        let head = store.load_head(params)?;
        store.rebuild_open_epoch(head.height)?;
        Ok(store)
    }

    /// Reads the keys of the `nonces` rows into memory (see `RocksStore::nonce_rows`).
    fn load_nonce_rows(&self) -> Result<(), StoreError> {
        let rows = self
            .scan(CF_NONCES, |key, _| NonceRows::parse_key(key))?
            .into_iter()
            .collect();
        *self
            .nonce_rows
            .lock()
            .map_err(|_| corrupt("nonce rows lock poisoned"))? = rows;
        Ok(())
    }

    /// Reads the stored head into memory, or the genesis state's on a new database; returns
    /// it.
    fn load_head(&self, params: &ChainParams) -> Result<Head, StoreError> {
        let head = self.read_head()?.unwrap_or_else(|| {
            let genesis = State::genesis(params).ok();
            Head {
                height: Height(0),
                hash: params.genesis_hash,
                time: params.genesis_time,
                supply: genesis.as_ref().map_or(Amount(0), |state| state.supply),
                state_root: genesis.map_or(Hash32::ZERO, |state| state.state_root()),
            }
        });
        *self
            .head
            .lock()
            .map_err(|_| corrupt("head lock poisoned"))? = head.clone();
        Ok(head)
    }

    /// Puts the transfers of the blocks after the stored epochs back into memory (closing
    /// and storing epochs on the way, as the commits did); returns once they are stored.
    fn rebuild_open_epoch(&self, head: Height) -> Result<(), StoreError> {
        let mut height = self.index.open_from()?;
        while height <= head {
            let block = self
                .block(height)?
                .ok_or_else(|| corrupt(format!("block {height} missing below the head")))?;
            let mut transfers = Vec::new();
            for (index, op) in block.ops.iter().enumerate() {
                if let Op::Transfer(transfer) = op {
                    let index = u32::try_from(index)
                        .map_err(|_| corrupt(format!("block {height} has too many ops")))?;
                    transfers.push((transfer.request.transfer.id()?, index));
                }
            }
            self.index.record(&self.db, height, transfers)?;
            height = height
                .next()
                .ok_or_else(|| corrupt("the head is the last height"))?;
        }
        self.index.join()?;
        self.index.check()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        family(&self.db, name)
    }

    fn check_or_init_meta(&self, params: &ChainParams) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        let path = self.path.display().to_string();
        match self.db.get_cf(meta, KEY_SCHEMA)? {
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, KEY_SCHEMA, SCHEMA_VERSION.to_be_bytes());
                batch.put_cf(meta, KEY_GENESIS, params.genesis_hash.as_bytes());
                self.write_synced(batch)?;
                Ok(())
            }
            Some(bytes) => {
                let version = u32::from_be_bytes(
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("schema version is not 4 bytes"))?,
                );
                if !(1..=SCHEMA_VERSION).contains(&version) {
                    return Err(StoreError::SchemaVersion {
                        path,
                        found: version,
                        expected: SCHEMA_VERSION,
                    });
                }
                let genesis = self
                    .db
                    .get_cf(meta, KEY_GENESIS)?
                    .ok_or_else(|| corrupt("genesis hash missing"))?;
                let found = Hash32(
                    genesis
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("genesis hash is not 32 bytes"))?,
                );
                if found != params.genesis_hash {
                    return Err(StoreError::GenesisMismatch {
                        path,
                        found,
                        expected: params.genesis_hash,
                    });
                }
                if version == 1 {
                    self.upgrade_from_1()?;
                }
                if version <= 2 {
                    self.upgrade_from_2()?;
                }
                Ok(())
            }
        }
    }

    /// Converts a version 1 database, where every remembered pair had its own `nonces` row
    /// (the 40-byte key payer and nonce, the expiry as value), into one row under the head's
    /// height, in one synced batch with the new version.
    fn upgrade_from_1(&self) -> Result<(), StoreError> {
        let nonces = self.cf(CF_NONCES)?;
        let mut batch = WriteBatch::default();
        let mut pairs = Vec::new();
        for entry in self.db.iterator_cf(nonces, rocksdb::IteratorMode::Start) {
            let (key, value) = entry?;
            if key.len() != 40 {
                return Err(corrupt("version 1 nonce key is not 40 bytes"));
            }
            pairs.push((
                account_id_from(&key[..32])?,
                Nonce(u64_from(&key[32..], "nonce")?),
                TimeMs(u64_from(&value, "nonce expiry")?),
            ));
            batch.delete_cf(nonces, key);
        }
        if let Some(latest) = pairs.iter().map(|(_, _, expires_at)| *expires_at).max() {
            let height = self
                .read_head()?
                .ok_or_else(|| corrupt("remembered nonces without a head"))?
                .height;
            batch.put_cf(
                nonces,
                NonceRows::key((latest, height)),
                NonceRows::encode(&pairs),
            );
        }
        batch.put_cf(self.cf(CF_META)?, KEY_SCHEMA, 2u32.to_be_bytes());
        self.write_synced(batch)
    }

    /// Converts a version 2 transfer index (one `transfers` row per transfer, keyed by id,
    /// so already sorted) into stored epoch 0, covering every height up to the head, and
    /// records version 3 in the same synced batch as the epoch. `open` then drops the old
    /// family. Interrupted before that batch, the next open converts again: the same rows,
    /// which read the same.
    fn upgrade_from_2(&self) -> Result<(), StoreError> {
        if let Some(legacy) = self.db.cf_handle(CF_TRANSFERS_V2) {
            let rows = self
                .db
                .iterator_cf(legacy, rocksdb::IteratorMode::Start)
                .map(|entry| {
                    let (key, value) = entry?;
                    let id = Hash32(
                        key.as_ref()
                            .try_into()
                            .map_err(|_| corrupt("version 2 transfer key is not 32 bytes"))?,
                    );
                    Ok((id, codec::decode::<Location>(&value, 32)?))
                });
            if let Some(file) = index::write_epoch_file(&index::seal_dir(&self.path), 0, rows)? {
                index::ingest_epoch_file(&self.db, &file)?;
            }
        }
        let meta = self.cf(CF_META)?;
        let mut batch = WriteBatch::default();
        if let Some(head) = self.read_head()? {
            let sealed = Sealed {
                epoch: 0,
                through: head.height,
            };
            batch.put_cf(meta, KEY_SEALED, sealed.encode());
        }
        batch.put_cf(meta, KEY_SCHEMA, SCHEMA_VERSION.to_be_bytes());
        self.write_synced(batch)
    }

    fn read_head(&self) -> Result<Option<Head>, StoreError> {
        let meta = self.cf(CF_META)?;
        match self.db.get_cf(meta, KEY_HEAD)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes, 1024)?)),
        }
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        write_synced(&self.db, batch)
    }

    /// Adds a block's own rows to `batch`: its bytes by height, its height by hash, and the
    /// accounts it changed.
    fn batch_block(
        &self,
        batch: &mut WriteBatch,
        write: &BlockWrite<'_>,
        height_key: [u8; 8],
    ) -> Result<(), StoreError> {
        match write.encoded {
            Some(bytes) => batch.put_cf(self.cf(CF_BLOCKS)?, height_key, bytes),
            None => batch.put_cf(self.cf(CF_BLOCKS)?, height_key, write.block.encode()?),
        }
        batch.put_cf(
            self.cf(CF_BLOCK_HASHES)?,
            write.block_hash.as_bytes(),
            height_key,
        );
        let accounts = self.cf(CF_ACCOUNTS)?;
        for (id, account) in &write.change.accounts {
            codec::with_encoded(account, |bytes| batch.put_cf(accounts, id.0, bytes))?;
        }
        Ok(())
    }

    /// Adds the disclosure orders and share records a block recorded (with its height) to
    /// `batch`.
    fn batch_orders(
        &self,
        batch: &mut WriteBatch,
        write: &BlockWrite<'_>,
        height_key: [u8; 8],
    ) -> Result<(), StoreError> {
        let orders = self.cf(CF_ORDERS)?;
        for order in &write.change.orders_served {
            batch.put_cf(orders, order.as_bytes(), height_key);
        }
        if let Some(adoption) = &write.change.adopted {
            let mut key = KEY_DISCLOSURE_PREFIX.to_vec();
            key.extend_from_slice(&adoption.held.key.epoch.to_be_bytes());
            batch.put_cf(self.cf(CF_META)?, key, codec::encode(adoption)?);
        }
        Ok(())
    }

    /// Adds the new head to `batch`, with the height the IM is about to sign, if any.
    fn batch_head(
        &self,
        batch: &mut WriteBatch,
        head: &Head,
        last_signed: Option<Height>,
    ) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        batch.put_cf(meta, KEY_HEAD, codec::encode(head)?);
        if let Some(signed) = last_signed {
            batch.put_cf(meta, KEY_LAST_SIGNED, signed.0.to_be_bytes());
        }
        Ok(())
    }

    /// Genesis's disclosure key and every adopted one, each adoption recorded in `orders`
    /// (the state root covers those records).
    fn load_disclosure_keys(
        &self,
        params: &ChainParams,
        orders: &HashSet<Hash32>,
    ) -> Result<DisclosureKeys, StoreError> {
        let mut keys = DisclosureKeys::genesis(params);
        for adoption in self.adopted_keys()? {
            let message = KeyAdoption::message(&params.chain_id, &adoption.held)?;
            if !orders.contains(&message) {
                return Err(corrupt(format!(
                    "disclosure key of epoch {} has no adoption on chain",
                    adoption.held.key.epoch
                )));
            }
            keys.adopt(adoption);
        }
        Ok(keys)
    }

    /// Reads every row of a column family, decoding each with `decode`.
    fn scan<T>(
        &self,
        name: &str,
        mut decode: impl FnMut(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let cf = self.cf(name)?;
        let mut rows = Vec::new();
        for entry in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (key, value) = entry?;
            rows.push(decode(&key, &value)?);
        }
        Ok(rows)
    }
}

/// What a block's write does to the `nonces` rows, added to `batch`: deletes every row
/// whose pairs all expire at or before the block's time, and adds one row for the pairs the
/// block remembers. Returns the deleted keys and the added one, for `rows` once written.
fn batch_nonces(
    batch: &mut WriteBatch,
    nonces: &rocksdb::ColumnFamily,
    rows: &BTreeSet<NonceRowKey>,
    change: &StateChange,
    height: Height,
) -> (Vec<NonceRowKey>, Option<NonceRowKey>) {
    // This block forgets every pair that expires at or before its time.
    let forgotten: Vec<NonceRowKey> = rows
        .range(..=(change.time, Height(u64::MAX)))
        .copied()
        .collect();
    for key in &forgotten {
        batch.delete_cf(nonces, NonceRows::key(*key));
    }
    let added = change
        .nonces_added
        .iter()
        .map(|(_, _, expires_at)| *expires_at)
        .max()
        .map(|latest| (latest, height));
    if let Some(key) = added {
        batch.put_cf(
            nonces,
            NonceRows::key(key),
            NonceRows::encode(&change.nonces_added),
        );
    }
    (forgotten, added)
}

fn account_id_from(key: &[u8]) -> Result<AccountId, StoreError> {
    Ok(AccountId(
        key.try_into()
            .map_err(|_| corrupt("account key is not 32 bytes"))?,
    ))
}

fn u64_from(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(
        bytes
            .try_into()
            .map_err(|_| corrupt(format!("{what} is not 8 bytes")))?,
    ))
}

impl RocksStore {
    /// [`Store::commit`] (`sync`) or [`Store::commit_unsynced`].
    fn commit_block(&self, write: &BlockWrite<'_>, sync: bool) -> Result<(), StoreError> {
        let mut head = self
            .head
            .lock()
            .map_err(|_| corrupt("head lock poisoned"))?;
        let height = write.block.height();
        if Some(height) != head.height.next() {
            return Err(StoreError::NotNext {
                height,
                head: head.height,
            });
        }
        self.index.check()?;
        let change = write.change;
        let mut batch = WriteBatch::default();
        let height_key = height.0.to_be_bytes();
        self.batch_block(&mut batch, write, height_key)?;
        let nonces = self.cf(CF_NONCES)?;
        let mut nonce_rows = self
            .nonce_rows
            .lock()
            .map_err(|_| corrupt("nonce rows lock poisoned"))?;
        let (forgotten, added) = batch_nonces(&mut batch, nonces, &nonce_rows, change, height);
        self.batch_orders(&mut batch, write, height_key)?;
        let local = self.cf(CF_LOCAL)?;
        for (key, value) in write.local {
            batch.put_cf(local, key, value);
        }
        let new_head = Head {
            height,
            hash: write.block_hash,
            time: change.time,
            supply: change.supply,
            state_root: change.state_root,
        };
        self.batch_head(&mut batch, &new_head, write.last_signed)?;
        if sync {
            self.write_synced(batch)?;
        } else {
            self.db.write(batch)?;
        }
        *head = new_head;
        for key in &forgotten {
            nonce_rows.remove(key);
        }
        nonce_rows.extend(added);
        self.index.record(
            &self.db,
            height,
            change.transfers.iter().map(|(id, index)| (*id, *index)),
        )
    }
}

impl Store for RocksStore {
    fn load_state(&self, params: &ChainParams) -> Result<State, StoreError> {
        let Some(head) = self.read_head()? else {
            return Ok(State::genesis(params)?);
        };
        let mut accounts: HashMap<AccountId, Account> = self
            .scan(CF_ACCOUNTS, |key, value| {
                Ok((account_id_from(key)?, codec::decode::<Account>(value, 256)?))
            })?
            .into_iter()
            .collect();
        // A block writes the accounts it touched; an account genesis opened and no block
        // has touched since has no row and still its genesis value.
        for (id, account) in State::genesis(params)?.accounts() {
            accounts.entry(*id).or_insert_with(|| account.clone());
        }
        let mut nonces = Vec::new();
        for pairs in self.scan(CF_NONCES, |_, value| NonceRows::decode(value))? {
            nonces.extend(
                pairs
                    .into_iter()
                    .filter(|(_, _, expires_at)| *expires_at > head.time),
            );
        }
        let orders: HashSet<Hash32> = self
            .scan(CF_ORDERS, |key, _| {
                Ok(Hash32(
                    key.try_into()
                        .map_err(|_| corrupt("order key is not 32 bytes"))?,
                ))
            })?
            .into_iter()
            .collect();
        let keys = self.load_disclosure_keys(params, &orders)?;
        let state = State::from_parts(
            head.height,
            head.hash,
            head.time,
            head.supply,
            accounts,
            nonces,
            orders,
            keys,
        )?;
        // The rows must add up to the root the head block committed to.
        if state.state_root() != head.state_root {
            return Err(corrupt(format!(
                "stored state does not match the state root of block {}",
                head.height
            )));
        }
        Ok(state)
    }

    fn commit(&self, write: &BlockWrite<'_>) -> Result<(), StoreError> {
        self.commit_block(write, true)
    }

    fn commit_unsynced(&self, write: &BlockWrite<'_>) -> Result<(), StoreError> {
        self.commit_block(write, false)
    }

    fn adopted_keys(&self) -> Result<Vec<KeyAdoption>, StoreError> {
        let meta = self.cf(CF_META)?;
        let mut adoptions = Vec::new();
        for row in self.db.prefix_iterator_cf(meta, KEY_DISCLOSURE_PREFIX) {
            let (key, value) = row?;
            if !key.starts_with(KEY_DISCLOSURE_PREFIX) {
                break;
            }
            adoptions.push(codec::decode(&value, KEY_ADOPTION_BYTES_MAX)?);
        }
        Ok(adoptions)
    }

    fn head(&self) -> Result<Head, StoreError> {
        Ok(self
            .head
            .lock()
            .map_err(|_| corrupt("head lock poisoned"))?
            .clone())
    }

    fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        match self
            .db
            .get_cf(self.cf(CF_BLOCKS)?, height.0.to_be_bytes())?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes, BLOCK_BYTES_MAX)?)),
        }
    }

    fn height_of(&self, block_hash: &Hash32) -> Result<Option<Height>, StoreError> {
        match self
            .db
            .get_cf(self.cf(CF_BLOCK_HASHES)?, block_hash.as_bytes())?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(Height(u64_from(&bytes, "block height")?))),
        }
    }

    /// The epochs in memory first, then the stored ones newest first: a recent transfer is
    /// found at once, and a miss costs a Bloom filter check per stored epoch.
    fn transfer_location(&self, transfer_id: &Hash32) -> Result<Option<Location>, StoreError> {
        let stored = match self.index.in_memory(transfer_id)? {
            InMemory::Found(location) => return Ok(Some(location)),
            InMemory::Stored(stored) => stored,
        };
        let index = self.cf(CF_INDEX)?;
        for epoch in (0..stored).rev() {
            if let Some(bytes) = self
                .db
                .get_pinned_cf(index, TransferKey::encode(epoch, transfer_id))?
            {
                return Ok(Some(codec::decode(&bytes, 32)?));
            }
        }
        Ok(None)
    }

    fn last_signed(&self) -> Result<Height, StoreError> {
        match self.db.get_cf(self.cf(CF_META)?, KEY_LAST_SIGNED)? {
            None => Ok(Height(0)),
            Some(bytes) => Ok(Height(u64_from(&bytes, "last signed height")?)),
        }
    }

    fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_LOCAL)?, key)?)
    }

    fn local_put(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let local = self.cf(CF_LOCAL)?;
        let mut batch = WriteBatch::default();
        for (key, value) in rows {
            batch.put_cf(local, key, value);
        }
        self.write_synced(batch)
    }

    fn local_delete(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let local = self.cf(CF_LOCAL)?;
        let mut batch = WriteBatch::default();
        for key in keys {
            batch.delete_cf(local, key);
        }
        self.write_synced(batch)
    }

    fn local_scan(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let local = self.cf(CF_LOCAL)?;
        let mut rows = Vec::new();
        let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
        for entry in self.db.iterator_cf(local, mode) {
            let (key, value) = entry?;
            if !key.starts_with(prefix) || rows.len() >= limit {
                break;
            }
            rows.push((key.to_vec(), value.to_vec()));
        }
        Ok(rows)
    }
}
