//! The replicas' state machine. Each committed entry is applied in log order, on a blocking
//! thread, by the replica's [`Chain`]: a proposed block that is the next one and keeps the
//! rules is signed with this replica's key and written with its state and the applied log
//! id in one batch (not waiting for the disk: the synced raft log makes the block durable,
//! and a lost batch is applied again from it), so a crash at any point neither loses an
//! applied block nor applies one twice. Raft's own entries (blank, membership) record the
//! applied log id.

// openraft's traits return its `StorageError` (224 bytes); the helpers here return it too
// rather than convert at every call.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex, MutexGuard};

use super::chain::{Chain, ChainError};
use super::{Applied, ChainPoint, ImRaft};
use halfveil_ledger::codec;
use halfveil_store::{LocalRow, Store, StoreError};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EmptyNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};

/// The applied log id and membership, written with every applied entry.
const KEY_APPLIED: &[u8] = b"raft/applied";
/// The last snapshot built or installed: its meta and chain point.
const KEY_SNAPSHOT: &[u8] = b"raft/snapshot";
/// The most either row may take (membership of at most five replicas).
const ROW_BYTES_MAX: usize = 64 * 1024;

type Result<T> = std::result::Result<T, StorageError<u64>>;
type AppliedState = (Option<LogId<u64>>, StoredMembership<u64, EmptyNode>);
type Kept = (SnapshotMeta<u64, EmptyNode>, ChainPoint);

/// The state machine; clones share it.
#[derive(Clone)]
pub struct Machine {
    inner: Arc<Inner>,
}

struct Inner {
    chain: Arc<dyn Chain>,
    applied: Mutex<AppliedState>,
    /// The last snapshot built or installed: a snapshot is only a point, since every
    /// replica keeps every block; also in the store, so a restarted leader can send it.
    snapshot: Mutex<Option<Kept>>,
}

fn store_error(verb: ErrorVerb, error: &dyn std::error::Error) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        AnyError::error(error.to_string()),
    )
    .into()
}

fn chain_error(error: ChainError) -> StorageError<u64> {
    store_error(ErrorVerb::Write, &error)
}

fn locked<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| {
        StorageIOError::new(
            ErrorSubject::StateMachine,
            ErrorVerb::Read,
            AnyError::error("state lock poisoned"),
        )
        .into()
    })
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Machine").finish_non_exhaustive()
    }
}

impl Machine {
    /// The machine over `chain`, reading the applied log id and the last snapshot from
    /// `store`.
    pub fn open(
        chain: Arc<dyn Chain>,
        store: &dyn Store,
    ) -> std::result::Result<Machine, StoreError> {
        let applied = match store.local_get(KEY_APPLIED)? {
            None => AppliedState::default(),
            Some(bytes) => codec::decode(&bytes, ROW_BYTES_MAX)?,
        };
        let snapshot = match store.local_get(KEY_SNAPSHOT)? {
            None => None,
            Some(bytes) => Some(codec::decode(&bytes, ROW_BYTES_MAX)?),
        };
        Ok(Machine {
            inner: Arc::new(Inner {
                chain,
                applied: Mutex::new(applied),
                snapshot: Mutex::new(snapshot),
            }),
        })
    }
}

/// The applied-log-id row for `state`.
fn applied_row(state: &AppliedState) -> Result<LocalRow> {
    let value = codec::encode(state).map_err(|error| store_error(ErrorVerb::Write, &error))?;
    Ok((KEY_APPLIED.to_vec(), value))
}

impl Inner {
    /// Applies one committed entry; in the store when it returns (durable with the next
    /// synced write; the raft log holds the entry meanwhile).
    fn apply_entry(&self, entry: Entry<ImRaft>) -> Result<Applied> {
        let mut applied = locked(&self.applied)?;
        let membership = match &entry.payload {
            EntryPayload::Membership(members) => {
                StoredMembership::new(Some(entry.log_id), members.clone())
            }
            _ => applied.1.clone(),
        };
        let next = (Some(entry.log_id), membership);
        let row = applied_row(&next)?;
        let outcome = match entry.payload {
            EntryPayload::Normal(proposed) => {
                self.chain.apply(proposed, row).map_err(chain_error)?
            }
            EntryPayload::Blank | EntryPayload::Membership(_) => {
                self.chain.record(row).map_err(chain_error)?;
                Applied::Nothing
            }
        };
        *applied = next;
        Ok(outcome)
    }

    fn point(&self) -> Result<ChainPoint> {
        self.chain.point().map_err(chain_error)
    }

    /// Brings the chain to the snapshot's point and takes its applied log id and
    /// membership; durable when it returns.
    fn install(&self, meta: SnapshotMeta<u64, EmptyNode>, point: ChainPoint) -> Result<()> {
        let mut applied = locked(&self.applied)?;
        let next = (meta.last_log_id, meta.last_membership.clone());
        tracing::info!(
            snapshot = %meta.snapshot_id,
            height = %point.height,
            "installing a snapshot: the leader purged the log entries this replica lacks"
        );
        self.chain
            .install(point, applied_row(&next)?)
            .map_err(chain_error)?;
        *applied = next;
        drop(applied);
        self.keep((meta, point))
    }

    /// Keeps `snapshot` as the current one, in memory and in the store.
    fn keep(&self, snapshot: Kept) -> Result<()> {
        let row =
            codec::encode(&snapshot).map_err(|error| store_error(ErrorVerb::Write, &error))?;
        self.chain
            .record((KEY_SNAPSHOT.to_vec(), row))
            .map_err(chain_error)?;
        *locked(&self.snapshot)? = Some(snapshot);
        Ok(())
    }
}

impl RaftSnapshotBuilder<ImRaft> for Machine {
    /// The applied point; the blocks stay in the store. Read under the applied lock, so
    /// the point is the chain that the applied log id leads to.
    async fn build_snapshot(&mut self) -> Result<Snapshot<ImRaft>> {
        let inner = self.inner.clone();
        let kept = tokio::task::spawn_blocking(move || {
            let applied = locked(&inner.applied)?;
            let (last_log_id, last_membership) = applied.clone();
            let point = inner.point()?;
            drop(applied);
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id: format!("{}-{}", point.height, point.hash),
            };
            inner.keep((meta.clone(), point))?;
            Ok::<_, StorageError<u64>>((meta, point))
        })
        .await
        .map_err(|error| store_error(ErrorVerb::Write, &error))??;
        Ok(Snapshot {
            meta: kept.0,
            snapshot: Box::new(kept.1),
        })
    }
}

impl RaftStateMachine<ImRaft> for Machine {
    type SnapshotBuilder = Machine;

    async fn applied_state(&mut self) -> Result<AppliedState> {
        Ok(locked(&self.inner.applied)?.clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<ImRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            let inner = self.inner.clone();
            let applied = tokio::task::spawn_blocking(move || inner.apply_entry(entry))
                .await
                .map_err(|error| store_error(ErrorVerb::Write, &error))??;
            results.push(applied);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<ChainPoint>> {
        Ok(Box::default())
    }

    /// A snapshot names a chain point, not the blocks: the chain fetches the blocks it
    /// lacks up to that point ([`Chain::install`]), then takes the snapshot's applied log
    /// id and membership. Until it returns, this replica's raft node still answers
    /// heartbeats (openraft runs the state machine on a task of its own).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, EmptyNode>,
        snapshot: Box<ChainPoint>,
    ) -> Result<()> {
        let inner = self.inner.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || inner.install(meta, *snapshot))
            .await
            .map_err(|error| store_error(ErrorVerb::Write, &error))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<ImRaft>>> {
        Ok(locked(&self.inner.snapshot)?
            .as_ref()
            .map(|(meta, point)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(*point),
            }))
    }
}
