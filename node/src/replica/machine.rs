//! The replicas' state machine: the chain. Each committed entry is applied in log order, on a
//! blocking thread; a proposed block that is the next one and keeps the rules is signed with
//! this replica's key and written with its state and the applied log id in one synced
//! batch, so a crash at any point neither loses an applied block nor applies one twice.

// openraft's traits return its `StorageError` (224 bytes); the helpers here return it too
// rather than convert at every call.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex, MutexGuard};

use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::{apply_deferred, codec, Block, ChainParams, PublicKey, SignedHeader, State};
use halfveil_store::{BlockWrite, LocalRow, RocksStore, Store, StoreError};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EmptyNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use tokio::sync::broadcast;

use super::{Applied, ChainPoint, ImRaft, Proposed};

/// The applied log id and membership, written with every applied entry.
const KEY_APPLIED: &[u8] = b"raft/applied";

type Result<T> = std::result::Result<T, StorageError<u64>>;
type AppliedState = (Option<LogId<u64>>, StoredMembership<u64, EmptyNode>);

/// The state machine; clones share it.
#[derive(Clone)]
pub struct Machine {
    inner: Arc<Inner>,
}

struct Inner {
    params: Arc<ChainParams>,
    key: SigningKey,
    signer: PublicKey,
    store: Arc<RocksStore>,
    state: Arc<Mutex<State>>,
    applied: Mutex<AppliedState>,
    published: broadcast::Sender<Arc<Block>>,
    /// The last snapshot built or installed (kept in memory: a snapshot is only a point).
    snapshot: Mutex<Option<(SnapshotMeta<u64, EmptyNode>, ChainPoint)>>,
}

fn store_error(verb: ErrorVerb, error: &dyn std::error::Error) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        verb,
        AnyError::error(error.to_string()),
    )
    .into()
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
        formatter
            .debug_struct("Machine")
            .field("signer", &self.inner.signer)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// The machine over `store`, whose head `state` is; reads the applied log id.
    pub fn open(
        params: Arc<ChainParams>,
        key: SigningKey,
        store: Arc<RocksStore>,
        state: Arc<Mutex<State>>,
        published: broadcast::Sender<Arc<Block>>,
    ) -> std::result::Result<Machine, StoreError> {
        let applied = match store.local_get(KEY_APPLIED)? {
            None => AppliedState::default(),
            Some(bytes) => codec::decode(&bytes, 64 * 1024)?,
        };
        Ok(Machine {
            inner: Arc::new(Inner {
                params,
                signer: crypto::public_key(&key),
                key,
                store,
                state,
                applied: Mutex::new(applied),
                published,
                snapshot: Mutex::new(None),
            }),
        })
    }
}

impl Inner {
    /// Applies one committed entry; durable when it returns.
    fn apply_entry(&self, entry: Entry<ImRaft>) -> Result<Applied> {
        let mut applied = locked(&self.applied)?;
        let membership = match &entry.payload {
            EntryPayload::Membership(members) => {
                StoredMembership::new(Some(entry.log_id), members.clone())
            }
            _ => applied.1.clone(),
        };
        let next = (Some(entry.log_id), membership);
        let row = (
            KEY_APPLIED.to_vec(),
            codec::encode(&next).map_err(|error| store_error(ErrorVerb::Write, &error))?,
        );
        let outcome = match entry.payload {
            EntryPayload::Normal(proposed) => self.apply_block(proposed, row)?,
            EntryPayload::Blank | EntryPayload::Membership(_) => {
                self.write_local(row)?;
                Applied::Nothing
            }
        };
        *applied = next;
        Ok(outcome)
    }

    fn write_local(&self, row: LocalRow) -> Result<()> {
        self.store
            .local_put(&[row])
            .map_err(|error| store_error(ErrorVerb::Write, &error))
    }

    /// Signs and writes the proposed block if it is the next one and keeps the rules;
    /// otherwise skips it (as every replica does) and records only the applied log id.
    fn apply_block(&self, proposed: Proposed, row: LocalRow) -> Result<Applied> {
        let mut state = locked(&self.state)?;
        let height = proposed.header.height;
        let skip = |reason: String| -> Result<Applied> {
            self.write_local(row.clone())?;
            tracing::info!(%height, %reason, "committed entry skipped");
            Ok(Applied::Skipped { height, reason })
        };
        if Some(height) != state.height.next() || proposed.header.parent != state.head_hash {
            return skip(format!("not the block after {}", state.height));
        }
        let hash = proposed
            .header
            .hash()
            .map_err(|error| store_error(ErrorVerb::Write, &error))?;
        self.check_guard(height)?;
        let block = Block {
            signed: SignedHeader {
                header: proposed.header,
                signer: self.signer,
                signature: crypto::sign(&self.key, &hash),
            },
            attestations: proposed.attestations,
            ops: proposed.ops,
        };
        // The leader checked the credentials; the rules and roots are checked here.
        let change = match apply_deferred(&self.params, &state, &block) {
            Ok((change, _signatures)) => change,
            Err(error) => return skip(error.to_string()),
        };
        let encoded = block
            .encode()
            .map_err(|error| store_error(ErrorVerb::Write, &error))?;
        self.store
            .commit(&BlockWrite {
                block: &block,
                encoded: Some(&encoded),
                block_hash: hash,
                change: &change,
                last_signed: Some(height),
                vault: &proposed.vault,
                local: std::slice::from_ref(&row),
            })
            .map_err(|error| store_error(ErrorVerb::Write, &error))?;
        state.commit(&change, hash);
        // Nobody listening is fine.
        let _ = self.published.send(Arc::new(block));
        Ok(Applied::Block { height, hash })
    }

    /// This key never signs a height twice: the store's last-signed height, written with
    /// every block it signs, must be below `height`.
    fn check_guard(&self, height: halfveil_ledger::Height) -> Result<()> {
        let last = self
            .store
            .last_signed()
            .map_err(|error| store_error(ErrorVerb::Read, &error))?;
        if last >= height {
            let reason = format!("refusing to sign height {height}: this key signed {last}");
            return Err(store_error(
                ErrorVerb::Write,
                &std::io::Error::other(reason),
            ));
        }
        Ok(())
    }

    fn point(&self) -> Result<ChainPoint> {
        let state = locked(&self.state)?;
        Ok(ChainPoint {
            height: state.height,
            hash: state.head_hash,
        })
    }
}

impl RaftSnapshotBuilder<ImRaft> for Machine {
    /// The applied point; the blocks stay in the store.
    async fn build_snapshot(&mut self) -> Result<Snapshot<ImRaft>> {
        let applied = locked(&self.inner.applied)?;
        let (last_log_id, last_membership) = applied.clone();
        let point = self.inner.point()?;
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id: format!("{}-{}", point.height, point.hash),
        };
        *locked(&self.inner.snapshot)? = Some((meta.clone(), point));
        drop(applied);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(point),
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

    /// A snapshot names a chain point, not the blocks: it installs only on a replica whose
    /// head is that point (it then takes the snapshot's applied log id and membership).
    /// Replicas keep their whole log (`SnapshotPolicy::Never`), so a leader sends none
    /// today; one ahead of this replica's head is refused rather than half installed.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, EmptyNode>,
        snapshot: Box<ChainPoint>,
    ) -> Result<()> {
        let mut applied = locked(&self.inner.applied)?;
        let own = self.inner.point()?;
        if own != *snapshot {
            let reason = format!(
                "snapshot {} is at height {}, this replica at {}: it catches up from the log",
                meta.snapshot_id, snapshot.height, own.height
            );
            return Err(store_error(
                ErrorVerb::Write,
                &std::io::Error::other(reason),
            ));
        }
        let next = (meta.last_log_id, meta.last_membership.clone());
        let row = codec::encode(&next).map_err(|error| store_error(ErrorVerb::Write, &error))?;
        self.inner.write_local((KEY_APPLIED.to_vec(), row))?;
        *applied = next;
        *locked(&self.inner.snapshot)? = Some((meta.clone(), *snapshot));
        Ok(())
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
