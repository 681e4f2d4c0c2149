//! The storage writer: one thread that owns the order of writes and performs one synced
//! RocksDB `WriteBatch` per block. The node hands it a block it has already verified and
//! applied in memory, and hears back only after the fsync: nothing is acknowledged, signed
//! out or published before that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use halfveil_ledger::{Block, CodecError, Hash32, Height, StateChange};
use halfveil_store::{BlockWrite, RocksStore, Store, StoreError};
use tracing::warn;

/// A block write slower than this is logged at `warn`: every transfer in the block, and in
/// the blocks queued behind it, waits for it. On the reference machine a write takes 1-5 ms;
/// the rare slow ones (an fsync behind a RocksDB flush) are where the bench's latency spikes
/// come from.
pub const SLOW_WRITE: Duration = Duration::from_millis(50);

/// Blocks queued for writing at most; the node does not build further ahead.
pub const WRITE_QUEUE_MAX: usize = 4;

/// One block to persist.
#[derive(Debug)]
pub struct WriteJob {
    pub block: Arc<Block>,
    /// The block's canonical bytes, if the node holds them (a bank, as received); the
    /// writer encodes the block otherwise.
    pub encoded: Option<Vec<u8>>,
    pub hash: Hash32,
    pub change: StateChange,
    pub last_signed: Option<Height>,
    /// Node-local rows written in the same batch (a replica's applied raft log id).
    pub local: Vec<halfveil_store::LocalRow>,
    /// Whether the write waits for the disk: always but for a block an IM replica applies
    /// from its raft log, which the log already makes durable ([`Store::commit_unsynced`]).
    pub synced: bool,
}

/// What the writer reports once a block is on disk.
#[derive(Debug)]
pub struct Stored {
    /// How long the synced write took.
    pub took: Duration,
    /// The block's transfer ids with their op index, as `apply` computed them: the node
    /// answers their waiters without hashing every transfer again.
    pub transfers: Vec<(Hash32, u32)>,
    /// The block's canonical bytes as stored: the IM publishes them without encoding the
    /// block again.
    pub encoded: Vec<u8>,
}

/// Why the writer could not start, take a job, or store a block.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The operating system refused the thread.
    #[error("cannot start the writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The thread has ended: no more blocks can be written.
    #[error("the writer thread has stopped")]
    Stopped,
    /// The block could not be encoded for storage.
    #[error("cannot store block {height}: {source}")]
    Encode {
        height: Height,
        #[source]
        source: CodecError,
    },
    /// The synced write failed.
    #[error("cannot store block {height}: {source}")]
    Store {
        height: Height,
        #[source]
        source: StoreError,
    },
}

/// The writer thread's handle.
#[derive(Debug)]
pub struct Writer {
    jobs: std::sync::mpsc::SyncSender<WriteJob>,
}

impl Writer {
    /// Starts the writer thread over `store`; it calls `written` with each block after its
    /// synced write (or with the error), in order, from the thread itself: the node hears
    /// of a stored block with no task in between. The thread ends once the [`Writer`] is
    /// dropped and every queued job is written; join it with the returned handle.
    pub fn start(
        store: Arc<RocksStore>,
        written: impl Fn(Arc<Block>, Result<Stored, WriterError>) + Send + 'static,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), WriterError> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<WriteJob>(WRITE_QUEUE_MAX);
        let thread = std::thread::Builder::new()
            .name("halfveil-writer".into())
            .spawn(move || {
                for mut job in queue {
                    let started = Instant::now();
                    let height = job.block.height();
                    let encoded = match job.encoded.take() {
                        Some(bytes) => Ok(bytes),
                        None => job
                            .block
                            .encode()
                            .map_err(|source| WriterError::Encode { height, source }),
                    };
                    let result = encoded.and_then(|encoded| {
                        let write = BlockWrite {
                            block: &job.block,
                            encoded: Some(&encoded),
                            block_hash: job.hash,
                            change: &job.change,
                            last_signed: job.last_signed,
                            local: &job.local,
                        };
                        let committed = if job.synced {
                            store.commit(&write)
                        } else {
                            store.commit_unsynced(&write)
                        };
                        committed
                            .map(|()| encoded)
                            .map_err(|source| WriterError::Store { height, source })
                    });
                    let took = started.elapsed();
                    if result.is_ok() && took >= SLOW_WRITE {
                        warn!(
                            height = %job.block.height(),
                            ms = took.as_millis() as u64,
                            ops = job.block.ops.len(),
                            "slow block write"
                        );
                    }
                    let result = result.map(|encoded| Stored {
                        took,
                        transfers: std::mem::take(&mut job.change.transfers),
                        encoded,
                    });
                    written(job.block, result);
                }
            })
            .map_err(WriterError::Spawn)?;
        Ok((Writer { jobs }, thread))
    }

    /// Queues a job; blocks the caller only if [`WRITE_QUEUE_MAX`] jobs are waiting, which
    /// the node avoids by counting its writes in flight.
    pub fn submit(&self, job: WriteJob) -> Result<(), WriterError> {
        self.jobs.send(job).map_err(|_| WriterError::Stopped)
    }
}
