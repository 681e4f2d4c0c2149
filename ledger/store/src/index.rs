//! The transfer index: where each committed transfer is, looked up by its id.
//!
//! Ids are hashes: rows keyed by id land at random places in one ever-growing sorted set,
//! which compactions merge again and again (docs/decisions/0010-transfer-index-by-epoch.md).
//! So the index is kept by epoch, the way reth builds its hash-to-number table: the rows of
//! the open epoch live in memory, and when the epoch closes its rows are sorted once and
//! written as one table file that RocksDB takes whole ("ingestion") into the bottom level.
//! Keys start with the epoch, so no file ever overlaps another and RocksDB never rewrites
//! them. The rows are derived from the blocks, so they are not part of the block's synced
//! write: after a crash the open epoch is rebuilt from the stored blocks. An epoch closes
//! after [`IndexEpochs::transfers`] transfers or [`IndexEpochs::heights`] blocks, whichever
//! comes first, always at the end of a block, so the epochs' bounds depend only on the
//! chain, and sealing an epoch again after a crash writes the same rows.
//!
//! A lookup checks the epochs in memory, then probes the stored ones newest first; each
//! probe of an epoch without the id is a Bloom filter check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rocksdb::{IngestExternalFileOptions, Options, SstFileWriter, WriteBatch, DB};

use super::{corrupt, family, write_synced, Location, CF_META};
use crate::StoreError;
use halfveil_ledger::codec;
use halfveil_ledger::hash::Hash32;
use halfveil_ledger::types::Height;

/// The column family of the stored epochs.
pub(super) const CF_INDEX: &str = "transfer_epochs";
/// The `meta` row naming the last stored epoch and the last height it covers.
pub(super) const KEY_SEALED: &[u8] = b"index_sealed";
/// Where an epoch's table file is written before RocksDB takes it (inside the database
/// folder; emptied at every open).
pub(super) fn seal_dir(db_path: &Path) -> PathBuf {
    db_path.join("index-seal")
}

/// When the open epoch closes: after a block that brings it to `transfers` transfers, or
/// its `heights`-th block. The first bounds the memory the open epoch holds (44 bytes a
/// transfer, up to twice that while its buckets grow) and the size of a stored epoch's file (about 12 MB); the second bounds the
/// blocks read again at start on a quiet chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEpochs {
    pub transfers: usize,
    pub heights: u64,
}

impl Default for IndexEpochs {
    /// About ten seconds of blocks at 25,000 transfers/s.
    fn default() -> Self {
        IndexEpochs {
            transfers: 1 << 18,
            heights: 1 << 14,
        }
    }
}

/// A stored row's key: the epoch (big-endian, so the files sort by epoch) and the id.
#[derive(Debug)]
pub struct TransferKey;

impl TransferKey {
    pub const BYTES: usize = 4 + 32;

    pub fn encode(epoch: u32, id: &Hash32) -> [u8; Self::BYTES] {
        let mut key = [0u8; Self::BYTES];
        key[..4].copy_from_slice(&epoch.to_be_bytes());
        key[4..].copy_from_slice(id.as_bytes());
        key
    }
}

/// The `meta` row of the last stored epoch: epochs `0..=epoch` are in the database and
/// cover the heights through `through`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sealed {
    pub epoch: u32,
    pub through: Height,
}

impl Sealed {
    pub(super) fn encode(self) -> [u8; 12] {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&self.epoch.to_be_bytes());
        bytes[4..].copy_from_slice(&self.through.0.to_be_bytes());
        bytes
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Sealed, StoreError> {
        let bytes: [u8; 12] = bytes
            .try_into()
            .map_err(|_| corrupt("the index's sealed row is not 12 bytes"))?;
        let [e0, e1, e2, e3, height @ ..] = bytes;
        Ok(Sealed {
            epoch: u32::from_be_bytes([e0, e1, e2, e3]),
            through: Height(u64::from_be_bytes(height)),
        })
    }
}

/// The options of the stored epochs' family (and of the files written for it). Files are
/// only ever ingested whole, so compaction has nothing to merge; every file carries a Bloom
/// filter (10 bits a key, about 1 % false positives) since a lookup probes every epoch;
/// ids are hashes, so compression would only cost.
pub(super) fn family_options() -> Options {
    let mut options = Options::default();
    options.set_compaction_style(rocksdb::DBCompactionStyle::Level);
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_compression_type(rocksdb::DBCompressionType::None);
    // The file of an epoch (about 12 MB) is written back to disk a megabyte at a time as it
    // is written, so its final fsync finds little left to write; one 12 MB sync held up the
    // blocks' fdatasyncs behind it.
    options.set_bytes_per_sync(1 << 20);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    options.set_block_based_table_factory(&table);
    options
}

/// Buckets of an epoch in memory, by the id's first byte.
const BUCKETS: usize = 256;

/// The rows of one epoch, appended to 256 buckets by the id's first byte (ids are uniform
/// hashes, so about 1,024 rows a bucket in a full epoch).
///
/// Buckets rather than a hash map: appends stay cheap, the seal sorts a bucket at a time in
/// cache, and a lookup scans one bucket (docs/decisions/0010-transfer-index-by-epoch.md).
#[derive(Debug)]
struct Epoch {
    number: u32,
    from: Height,
    buckets: Vec<Vec<(Hash32, Location)>>,
    len: usize,
}

impl Epoch {
    fn new(number: u32, from: Height) -> Epoch {
        Epoch {
            number,
            from,
            buckets: vec![Vec::new(); BUCKETS],
            len: 0,
        }
    }

    fn bucket(id: &Hash32) -> usize {
        usize::from(id.0[0]) % BUCKETS
    }

    fn insert(&mut self, id: Hash32, location: Location) {
        if let Some(bucket) = self.buckets.get_mut(Self::bucket(&id)) {
            bucket.push((id, location));
            self.len += 1;
        }
    }

    fn get(&self, id: &Hash32) -> Option<Location> {
        self.buckets
            .get(Self::bucket(id))?
            .iter()
            .find(|(row, _)| row == id)
            .map(|(_, location)| *location)
    }
}

#[derive(Debug)]
struct Memory {
    open: Epoch,
    /// The closed epoch being written, until the database holds it.
    sealing: Option<Arc<Epoch>>,
    /// Epochs `0..stored` are in the database.
    stored: u32,
    /// Why the last seal failed; the next commit reports it.
    failed: Option<String>,
}

/// Where a lookup stands after the epochs in memory.
pub(super) enum InMemory {
    Found(Location),
    /// Not in memory: probe the stored epochs below this one.
    Stored(u32),
}

/// The index's epochs in memory and the thread that stores a closed one.
#[derive(Debug)]
pub(super) struct TransferIndex {
    epochs: IndexEpochs,
    seal_dir: PathBuf,
    memory: Arc<Mutex<Memory>>,
    sealer: Mutex<Option<Sealer>>,
}

impl TransferIndex {
    /// The index after the stored epochs `sealed` names (none: epoch 0 opens at height 1).
    /// Leftover files of an interrupted seal are removed.
    pub(super) fn open(
        db_path: &Path,
        epochs: IndexEpochs,
        sealed: Option<Sealed>,
    ) -> Result<TransferIndex, StoreError> {
        let seal_dir = seal_dir(db_path);
        match std::fs::remove_dir_all(&seal_dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(corrupt(format!(
                    "cannot clear {}: {error}",
                    seal_dir.display()
                )))
            }
        }
        let (stored, from) = match sealed {
            None => (0, Height(1)),
            Some(sealed) => (
                sealed
                    .epoch
                    .checked_add(1)
                    .ok_or_else(|| corrupt("the index has no epoch numbers left"))?,
                sealed
                    .through
                    .next()
                    .ok_or_else(|| corrupt("the index's sealed height is the last one"))?,
            ),
        };
        Ok(TransferIndex {
            epochs: epochs.max_one(),
            seal_dir,
            memory: Arc::new(Mutex::new(Memory {
                open: Epoch::new(stored, from),
                sealing: None,
                stored,
                failed: None,
            })),
            sealer: Mutex::new(None),
        })
    }

    /// The first height whose transfers are not stored (the open epoch's first).
    pub(super) fn open_from(&self) -> Result<Height, StoreError> {
        Ok(self.lock()?.open.from)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Memory>, StoreError> {
        self.memory
            .lock()
            .map_err(|_| corrupt("transfer index lock poisoned"))
    }

    /// Fails if the last seal failed: the store can no longer keep its index.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &self.lock()?.failed {
            None => Ok(()),
            Some(reason) => Err(corrupt(format!(
                "storing the transfer index failed: {reason}"
            ))),
        }
    }

    /// Adds a committed block's transfers to the open epoch and, if that closes it, starts
    /// storing it on its own thread (after the previous one is done).
    pub(super) fn record(
        &self,
        db: &Arc<DB>,
        height: Height,
        transfers: impl IntoIterator<Item = (Hash32, u32)>,
    ) -> Result<(), StoreError> {
        let closed = {
            let mut memory = self.lock()?;
            let open = &mut memory.open;
            for (id, index) in transfers {
                open.insert(id, Location { height, index });
            }
            let blocks = height.0.saturating_sub(open.from.0).saturating_add(1);
            if open.len < self.epochs.transfers && blocks < self.epochs.heights {
                return Ok(());
            }
            let next = Epoch::new(
                open.number
                    .checked_add(1)
                    .ok_or_else(|| corrupt("the index has no epoch numbers left"))?,
                height
                    .next()
                    .ok_or_else(|| corrupt("the index reached the last height"))?,
            );
            Arc::new(std::mem::replace(open, next))
        };
        self.join()?;
        self.check()?;
        self.lock()?.sealing = Some(Arc::clone(&closed));
        let db = Arc::clone(db);
        let memory = Arc::clone(&self.memory);
        let seal_dir = self.seal_dir.clone();
        let hurry = Arc::new(AtomicBool::new(false));
        let told = Arc::clone(&hurry);
        let thread = std::thread::Builder::new()
            .name("index-seal".into())
            .spawn(move || {
                let result = store_epoch(&db, &seal_dir, Arc::clone(&closed), height, told);
                if let Ok(mut memory) = memory.lock() {
                    match result {
                        Ok(()) => {
                            memory.sealing = None;
                            memory.stored = closed.number.saturating_add(1);
                        }
                        Err(error) => memory.failed = Some(error.to_string()),
                    }
                }
            })
            .map_err(|error| corrupt(format!("cannot start the index's seal thread: {error}")))?;
        *self
            .sealer
            .lock()
            .map_err(|_| corrupt("transfer index lock poisoned"))? = Some(Sealer { thread, hurry });
        Ok(())
    }

    /// Waits for the epoch being stored, if any, telling it to hurry.
    pub(super) fn join(&self) -> Result<(), StoreError> {
        let sealer = self
            .sealer
            .lock()
            .map_err(|_| corrupt("transfer index lock poisoned"))?
            .take();
        if let Some(Sealer { thread, hurry }) = sealer {
            hurry.store(true, Ordering::Relaxed);
            thread
                .join()
                .map_err(|_| corrupt("the index's seal thread panicked"))?;
        }
        Ok(())
    }

    /// Looks an id up in the epochs in memory.
    pub(super) fn in_memory(&self, id: &Hash32) -> Result<InMemory, StoreError> {
        let memory = self.lock()?;
        let found = memory
            .open
            .get(id)
            .or_else(|| memory.sealing.as_ref().and_then(|sealing| sealing.get(id)));
        Ok(match found {
            Some(location) => InMemory::Found(location),
            None => InMemory::Stored(memory.stored),
        })
    }
}

impl IndexEpochs {
    /// At least one transfer and one block an epoch.
    fn max_one(self) -> IndexEpochs {
        IndexEpochs {
            transfers: self.transfers.max(1),
            heights: self.heights.max(1),
        }
    }
}

fn id_prefix(id: &Hash32) -> u64 {
    let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = id.0;
    u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
}

/// Work of a seal between rests, and the rest: a tenth of a core while it runs.
const SEAL_WORK: Duration = Duration::from_millis(1);
const SEAL_REST: Duration = Duration::from_millis(9);
/// A seal starts after a random delay below this.
const SEAL_DELAY_MAX_MS: u64 = 2_000;

/// Keeps a seal to slices of [`SEAL_WORK`] with a rest of [`SEAL_REST`] after each, unless
/// told to hurry (the next epoch closed, or the store closes).
struct Pacer {
    since: Instant,
    hurry: Arc<AtomicBool>,
}

impl Pacer {
    fn new(hurry: Arc<AtomicBool>) -> Pacer {
        Pacer {
            since: Instant::now(),
            hurry,
        }
    }

    fn hurried(&self) -> bool {
        self.hurry.load(Ordering::Relaxed)
    }

    fn pause_if_due(&mut self) {
        if !self.hurried() && self.since.elapsed() >= SEAL_WORK {
            std::thread::sleep(SEAL_REST);
            self.since = Instant::now();
        }
    }

    /// Waits `delay`, or less if told to hurry.
    fn wait(&mut self, delay: Duration) {
        let started = Instant::now();
        while !self.hurried() && started.elapsed() < delay {
            std::thread::sleep(SEAL_REST);
        }
        self.since = Instant::now();
    }
}

/// The thread storing a closed epoch, and how to make it hurry.
#[derive(Debug)]
struct Sealer {
    thread: JoinHandle<()>,
    hurry: Arc<AtomicBool>,
}

/// Stores a closed epoch: its rows sorted and written as one table file, RocksDB made to
/// take the file, and the epoch recorded as stored (synced). An epoch without transfers
/// writes no file.
///
/// Every node closes an epoch at the same height, so a seal starts after a random delay and
/// works in slices ([`SEAL_WORK`], then [`SEAL_REST`]), as TigerBeetle paces compaction; if
/// the next epoch closes first it hurries (docs/decisions/0010-transfer-index-by-epoch.md).
fn store_epoch(
    db: &DB,
    seal_dir: &Path,
    epoch: Arc<Epoch>,
    through: Height,
    hurry: Arc<AtomicBool>,
) -> Result<(), StoreError> {
    let number = epoch.number;
    let mut pacer = Pacer::new(hurry);
    pacer.wait(Duration::from_millis(
        rand::thread_rng().gen_range(0..SEAL_DELAY_MAX_MS),
    ));
    let rows = epoch.buckets.iter().flat_map(|bucket| {
        pacer.pause_if_due();
        let mut bucket = bucket.clone();
        // By the ids' first eight bytes (ids are uniform hashes, so they almost never tie),
        // whole ids on a tie.
        bucket.sort_unstable_by(|(a, _), (b, _)| {
            id_prefix(a).cmp(&id_prefix(b)).then_with(|| a.0.cmp(&b.0))
        });
        // An id is on the chain once; a table file takes each key once in any case.
        bucket.dedup_by(|(a, _), (b, _)| a == b);
        bucket.into_iter().map(Ok)
    });
    let file = write_epoch_file(seal_dir, number, rows)?;
    if let Some(file) = file {
        ingest_epoch_file(db, &file)?;
    }
    let mut batch = WriteBatch::default();
    let sealed = Sealed {
        epoch: number,
        through,
    };
    batch.put_cf(family(db, CF_META)?, KEY_SEALED, sealed.encode());
    write_synced(db, batch)
}

/// Writes `rows` (sorted by id) as epoch `number`'s table file in `seal_dir`; `None` if
/// there are none.
pub(super) fn write_epoch_file(
    seal_dir: &Path,
    number: u32,
    mut rows: impl Iterator<Item = Result<(Hash32, Location), StoreError>>,
) -> Result<Option<PathBuf>, StoreError> {
    let Some(first) = rows.next() else {
        return Ok(None);
    };
    std::fs::create_dir_all(seal_dir)
        .map_err(|error| corrupt(format!("cannot create {}: {error}", seal_dir.display())))?;
    let file = seal_dir.join(format!("epoch-{number}.sst"));
    let options = family_options();
    let mut writer = SstFileWriter::create(&options);
    writer.open(&file)?;
    for row in std::iter::once(first).chain(rows) {
        let (id, location) = row?;
        codec::with_encoded(&location, |bytes| {
            writer.put(TransferKey::encode(number, &id), bytes)
        })??;
    }
    writer.finish()?;
    Ok(Some(file))
}

/// Has RocksDB take an epoch's file whole. Taking the same epoch twice (a crash between
/// ingestion and the `meta` row) stores the same rows again, which read the same.
pub(super) fn ingest_epoch_file(db: &DB, file: &Path) -> Result<(), StoreError> {
    let index = family(db, CF_INDEX)?;
    let mut ingest = IngestExternalFileOptions::default();
    ingest.set_move_files(true);
    db.ingest_external_file_cf_opts(index, &ingest, vec![file])?;
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(corrupt(format!(
            "cannot remove {}: {error}",
            file.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_epoch_then_id() {
        let low = Hash32([0xff; 32]);
        let high = Hash32([0x00; 32]);
        assert!(TransferKey::encode(1, &low) < TransferKey::encode(2, &high));
        assert!(TransferKey::encode(2, &high) < TransferKey::encode(2, &low));
        assert_eq!(TransferKey::encode(3, &low)[..4], 3u32.to_be_bytes());
    }

    #[test]
    fn the_sealed_row_round_trips_and_refuses_other_lengths() {
        let sealed = Sealed {
            epoch: 7,
            through: Height(123_456),
        };
        assert_eq!(Sealed::decode(&sealed.encode()).unwrap(), sealed);
        assert!(Sealed::decode(&[0; 11]).is_err());
        assert!(Sealed::decode(&[0; 13]).is_err());
    }
}
