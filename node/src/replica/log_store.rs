//! The raft log and vote in the replica's RocksDB ([`halfveil_store::RocksStore`]'s
//! `raft_log` family and node-local rows). Every change is one synced write batch, done off
//! the async executor, and openraft hears of an append only after it returned: Raft's
//! safety rests on a vote or an entry being on disk before it is acknowledged.

// openraft's traits return its `StorageError` (224 bytes); the helpers here return it too
// rather than convert at every call.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use halfveil_ledger::codec;
use halfveil_store::{RocksStore, Store, StoreError};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    StorageError, StorageIOError, Vote,
};

use super::{ImRaft, RAFT_BYTES_MAX};

const KEY_VOTE: &[u8] = b"raft/vote";
const KEY_PURGED: &[u8] = b"raft/purged";
/// What one read for replication returns at most (at least one entry): an append must
/// reach a follower within a heartbeat.
const READ_BYTES_MAX: usize = 8 << 20;

type Result<T> = std::result::Result<T, StorageError<u64>>;

/// The replica's raft log store.
#[derive(Clone, Debug)]
pub struct LogStore {
    store: Arc<RocksStore>,
    gate: Arc<PurgeGate>,
}

/// Purges held back while a snapshot installs. openraft purges a follower's log up to a
/// snapshot's last entry as soon as it accepts the snapshot, before the state machine has
/// installed it; an install fetches blocks and takes a while, and a crash in between left
/// a log purged past every snapshot the replica kept, which openraft refuses at start
/// (`halfveil chaos --cycles 200 --im-replicas 3`). So the transport opens the gate around
/// each install it serves ([`PurgeGate::open`]); purges asked meanwhile are held and done
/// once the install completed. A crash before leaves the log as it was: the entries are
/// committed ones, and the blocks the install already fetched are skipped when met again.
#[derive(Debug)]
pub struct PurgeGate {
    store: Arc<RocksStore>,
    state: std::sync::Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    installs: usize,
    held: Option<LogId<u64>>,
}

impl PurgeGate {
    pub fn new(store: Arc<RocksStore>) -> Arc<PurgeGate> {
        Arc::new(PurgeGate {
            store,
            state: std::sync::Mutex::new(GateState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An install begins.
    pub fn open(&self) {
        self.state().installs += 1;
    }

    /// An install ended (`installed`: it completed); once none is under way, the held purge
    /// is done. A failed install drops it: its replica's raft node stops.
    pub async fn close(&self, installed: bool) -> Result<()> {
        let held = {
            let mut state = self.state();
            state.installs = state.installs.saturating_sub(1);
            if !installed {
                state.held = None;
            }
            if state.installs == 0 {
                state.held.take()
            } else {
                None
            }
        };
        match held {
            Some(log_id) => purge_through(Arc::clone(&self.store), log_id).await,
            None => Ok(()),
        }
    }

    /// Whether `log_id`'s purge is held (an install is under way).
    fn hold(&self, log_id: LogId<u64>) -> bool {
        let mut state = self.state();
        if state.installs == 0 {
            return false;
        }
        state.held = state.held.max(Some(log_id));
        true
    }
}

/// Purges the log through `log_id` and records the purge pointer, in one synced batch.
async fn purge_through(store: Arc<RocksStore>, log_id: LogId<u64>) -> Result<()> {
    let pointer = codec::encode(&log_id)
        .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
    let purged = tokio::task::spawn_blocking(move || {
        store.raft_purge(log_id.index, &[(KEY_PURGED.to_vec(), pointer)])
    })
    .await;
    match purged {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(io_error(ErrorSubject::Logs, ErrorVerb::Delete, &error)),
        Err(error) => Err(io_error(ErrorSubject::Logs, ErrorVerb::Delete, &error)),
    }
}

impl LogStore {
    pub fn new(store: Arc<RocksStore>, gate: Arc<PurgeGate>) -> LogStore {
        LogStore { store, gate }
    }

    /// Runs `work` on the store on a blocking thread.
    async fn blocking<T, F>(&self, verb: ErrorVerb, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&RocksStore) -> std::result::Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(io_error(ErrorSubject::Logs, verb, &error)),
            Err(error) => Err(io_error(ErrorSubject::Logs, verb, &error)),
        }
    }

    async fn read_entries(
        &self,
        from: u64,
        to: u64,
        bytes_max: usize,
    ) -> Result<Vec<Entry<ImRaft>>> {
        let rows = self
            .blocking(ErrorVerb::Read, move |store| {
                store.raft_entries(from, to, bytes_max)
            })
            .await?;
        rows.iter().map(|(_, bytes)| decode_entry(bytes)).collect()
    }

    async fn read_local<T>(&self, key: &'static [u8]) -> Result<Option<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        let bytes = self
            .blocking(ErrorVerb::Read, move |store| store.local_get(key))
            .await?;
        match bytes {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes, 1024)
                .map(Some)
                .map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Read, &error)),
        }
    }
}

fn io_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    error: &dyn std::error::Error,
) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::error(error.to_string())).into()
}

fn decode_entry(bytes: &[u8]) -> Result<Entry<ImRaft>> {
    codec::decode(bytes, RAFT_BYTES_MAX)
        .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &error))
}

/// The half-open index range `[from, to)` of `range`.
fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(start) => *start,
        Bound::Excluded(start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(end) => end.saturating_add(1),
        Bound::Excluded(end) => *end,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl RaftLogReader<ImRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<ImRaft>>> {
        let (from, to) = bounds(&range);
        self.read_entries(from, to, usize::MAX).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<ImRaft>>> {
        self.read_entries(start, end, READ_BYTES_MAX).await
    }
}

impl RaftLogStorage<ImRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ImRaft>> {
        let purged: Option<LogId<u64>> = self.read_local(KEY_PURGED).await?;
        let last = self
            .blocking(ErrorVerb::Read, |store| store.raft_last())
            .await?;
        let last_log_id = match last {
            Some((_, bytes)) => Some(decode_entry(&bytes)?.log_id),
            None => purged,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        let row = codec::encode(vote)
            .map_err(|error| io_error(ErrorSubject::Vote, ErrorVerb::Write, &error))?;
        self.blocking(ErrorVerb::Write, move |store| {
            store.local_put(&[(KEY_VOTE.to_vec(), row)])
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        self.read_local(KEY_VOTE).await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<ImRaft>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<ImRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows: std::result::Result<Vec<(u64, Vec<u8>)>, _> = entries
            .into_iter()
            .map(|entry| codec::encode(&entry).map(|bytes| (entry.log_id.index, bytes)))
            .collect();
        let rows = rows.map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
        let written = self
            .blocking(ErrorVerb::Write, move |store| store.raft_append(&rows))
            .await;
        // Told only now: the entries are on disk (or the append failed).
        match &written {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(error) => callback.log_io_completed(Err(std::io::Error::other(error.to_string()))),
        }
        written
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.blocking(ErrorVerb::Delete, move |store| {
            store.raft_truncate(log_id.index)
        })
        .await
    }

    /// Held while a snapshot installs ([`PurgeGate`]).
    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        if self.gate.hold(log_id) {
            return Ok(());
        }
        purge_through(Arc::clone(&self.store), log_id).await
    }
}
