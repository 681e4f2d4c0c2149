//! Where a replica's committed blocks go. The state machine ([`super::Machine`]) decides the
//! order and keeps raft's applied log id; a [`Chain`] holds the blocks and the state:
//! [`StoreChain`] writes to the store itself (the in-process tests), and the node passes
//! each block to its service task, which owns the state.

use std::sync::{Arc, Mutex, MutexGuard};

use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::{
    apply_deferred, Block, ChainParams, Hash32, Height, PublicKey, SignedHeader, State, StateChange,
};
use halfveil_store::{BlockWrite, LocalRow, RocksStore, Store};

use super::{Applied, ChainPoint, Proposed};

/// Why a chain could not apply or record an entry: the replica cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChainError(pub String);

impl ChainError {
    pub fn of(error: impl std::fmt::Display) -> ChainError {
        ChainError(error.to_string())
    }
}

/// A replica's chain. Every call blocks until it is done, and is durable when it returns.
pub trait Chain: Send + Sync + 'static {
    /// Applies a committed proposal: if it is the block after the head and keeps the rules,
    /// signs it with the replica's key and writes it with `applied` (the applied log id) in
    /// one synced batch; otherwise writes only `applied` and says why it was skipped.
    fn apply(&self, proposed: Proposed, applied: LocalRow) -> Result<Applied, ChainError>;
    /// Writes `applied` alone (an entry that is not a block).
    fn record(&self, applied: LocalRow) -> Result<(), ChainError>;
    /// The head.
    fn point(&self) -> Result<ChainPoint, ChainError>;
}

/// A signed block and what it changes, if `proposed` is the next block after `state` and
/// keeps the rules; else why it is skipped. Pure: the same on every replica but for the
/// signature.
pub fn decide(
    params: &ChainParams,
    state: &State,
    key: &SigningKey,
    proposed: Proposed,
) -> Result<(Block, Hash32, StateChange), String> {
    let height = proposed.header.height;
    if Some(height) != state.height.next() || proposed.header.parent != state.head_hash {
        return Err(format!("not the block after {}", state.height));
    }
    let hash = proposed.header.hash().map_err(|error| error.to_string())?;
    let block = Block {
        signed: SignedHeader {
            header: proposed.header,
            signer: crypto::public_key(key),
            signature: crypto::sign(key, &hash),
        },
        attestations: proposed.attestations,
        ops: proposed.ops,
    };
    // The leader checked the credentials; the rules and roots are checked here.
    match apply_deferred(params, state, &block) {
        Ok((change, _signatures)) => Ok((block, hash, change)),
        Err(error) => Err(error.to_string()),
    }
}

/// A key never signs a height twice: `last`, the store's last-signed height (written with
/// every block the key signs), must be below `height`.
pub fn check_guard(last: Height, height: Height) -> Result<(), ChainError> {
    if last >= height {
        return Err(ChainError(format!(
            "refusing to sign height {height}: this key signed {last}"
        )));
    }
    Ok(())
}

/// A chain kept in the store directly, its state behind a lock.
pub struct StoreChain {
    params: Arc<ChainParams>,
    key: SigningKey,
    signer: PublicKey,
    store: Arc<RocksStore>,
    state: Arc<Mutex<State>>,
}

impl StoreChain {
    pub fn new(
        params: Arc<ChainParams>,
        key: SigningKey,
        store: Arc<RocksStore>,
        state: Arc<Mutex<State>>,
    ) -> StoreChain {
        StoreChain {
            params,
            signer: crypto::public_key(&key),
            key,
            store,
            state,
        }
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, ChainError> {
        self.state
            .lock()
            .map_err(|_| ChainError("state lock poisoned".into()))
    }
}

impl std::fmt::Debug for StoreChain {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StoreChain")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Chain for StoreChain {
    fn apply(&self, proposed: Proposed, applied: LocalRow) -> Result<Applied, ChainError> {
        let mut state = self.state()?;
        let height = proposed.header.height;
        let vault = proposed.vault.clone();
        let (block, hash, change) = match decide(&self.params, &state, &self.key, proposed) {
            Ok(decided) => decided,
            Err(reason) => {
                self.record(applied)?;
                tracing::info!(%height, %reason, "committed entry skipped");
                return Ok(Applied::Skipped { height, reason });
            }
        };
        check_guard(self.store.last_signed().map_err(ChainError::of)?, height)?;
        let encoded = block.encode().map_err(ChainError::of)?;
        self.store
            .commit(&BlockWrite {
                block: &block,
                encoded: Some(&encoded),
                block_hash: hash,
                change: &change,
                last_signed: Some(height),
                vault: &vault,
                local: std::slice::from_ref(&applied),
            })
            .map_err(ChainError::of)?;
        state.commit(&change, hash);
        Ok(Applied::Block { height, hash })
    }

    fn record(&self, applied: LocalRow) -> Result<(), ChainError> {
        self.store.local_put(&[applied]).map_err(ChainError::of)
    }

    fn point(&self) -> Result<ChainPoint, ChainError> {
        let state = self.state()?;
        Ok(ChainPoint {
            height: state.height,
            hash: state.head_hash,
        })
    }
}
