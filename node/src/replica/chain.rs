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

/// A replica's chain. Every call blocks until its write is in the store; `record` and
/// `install` are durable when they return, `apply` may not be (the raft log is).
pub trait Chain: Send + Sync + 'static {
    /// Applies a committed proposal: if it is the block after the head and keeps the rules,
    /// signs it with the replica's key and writes it with `applied` (the applied log id) in
    /// one batch (the node's chain does not wait for the disk: the raft log is synced);
    /// otherwise writes only `applied` and says why it was skipped.
    fn apply(&self, proposed: Proposed, applied: LocalRow) -> Result<Applied, ChainError>;
    /// Writes a node-local row alone, synced: the applied log id of an entry that is not a
    /// block, or the kept snapshot.
    fn record(&self, row: LocalRow) -> Result<(), ChainError>;
    /// Installs a snapshot: brings the chain to `point` (the leader purged the log entries
    /// that lead there) and writes `applied` once the chain is there. A chain behind `point`
    /// fetches the blocks it lacks from the other replicas and checks each as a bank checks
    /// a block it syncs; one at `point` writes `applied` alone; one that holds another block
    /// at `point`'s height, or is past it, cannot install it.
    fn install(&self, point: ChainPoint, applied: LocalRow) -> Result<(), ChainError>;
    /// The head.
    fn point(&self) -> Result<ChainPoint, ChainError>;
}

/// A signed block and what it changes, if `proposed` is the next block after `state` and
/// keeps the rules; else why it is skipped. Pure: the same on every replica but for the
/// signature. `built` is what the block changes as its builder computed it, when this
/// replica built it on this same state (the leader): the rules were checked then, so the
/// block is not run again.
pub fn decide(
    params: &ChainParams,
    state: &State,
    key: &SigningKey,
    proposed: Proposed,
    built: Option<(Hash32, StateChange)>,
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
    if let Some((built_hash, change)) = built {
        // The hash covers the parent, the state root and the ops: the same block on the
        // same state, so the same change.
        if built_hash == hash {
            return Ok((block, hash, change));
        }
    }
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
        let (block, hash, change) = match decide(&self.params, &state, &self.key, proposed, None) {
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
                local: std::slice::from_ref(&applied),
            })
            .map_err(ChainError::of)?;
        state.commit(&change, hash);
        Ok(Applied::Block { height, hash })
    }

    fn record(&self, applied: LocalRow) -> Result<(), ChainError> {
        self.store.local_put(&[applied]).map_err(ChainError::of)
    }

    /// Only at `point`: a store alone has nowhere to fetch blocks from (the in-process
    /// tests keep their logs whole).
    fn install(&self, point: ChainPoint, applied: LocalRow) -> Result<(), ChainError> {
        let own = self.point()?;
        if own != point {
            return Err(ChainError(format!(
                "cannot install the snapshot at height {}: this chain is at {} and fetches no blocks",
                point.height, own.height
            )));
        }
        self.record(applied)
    }

    fn point(&self) -> Result<ChainPoint, ChainError> {
        let state = self.state()?;
        Ok(ChainPoint {
            height: state.height,
            hash: state.head_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use halfveil_ledger::build::propose;
    use halfveil_ledger::testkit::TestChain;
    use halfveil_ledger::BankId;

    use super::*;

    /// The next block of `chain` (one account opening), as the leader proposes it, and what
    /// its builder computed it changes.
    fn proposed(chain: &mut TestChain) -> (Proposed, StateChange) {
        let (_, op) = chain.new_account(BankId(0));
        let time = chain.next_time();
        let proposal = propose(&chain.params, &chain.state, time, Vec::new(), vec![op]).unwrap();
        let proposed = Proposed {
            header: proposal.header,
            attestations: proposal.attestations,
            ops: proposal.ops,
        };
        (proposed, proposal.change)
    }

    /// The leader's own block is not run again once committed: the change it built is
    /// taken as is (a marked copy shows it). For any other block it is ignored.
    #[test]
    fn a_built_change_is_taken_only_for_the_block_it_was_built_for() {
        let mut chain = TestChain::new(19, 2, 3, 2);
        let (block, built) = proposed(&mut chain);
        let hash = block.header.hash().unwrap();
        let (params, state, key) = (&chain.params, &chain.state, &chain.validator);
        let (_, ran_hash, ran) = decide(params, state, key, block.clone(), None).unwrap();
        assert_eq!(ran_hash, hash);
        assert_eq!(ran.state_root, built.state_root);

        let mut marked = built;
        marked.op_hashes = vec![Hash32([9; 32])];
        let (signed, _, taken) = decide(
            params,
            state,
            key,
            block.clone(),
            Some((hash, marked.clone())),
        )
        .unwrap();
        assert_eq!(taken.op_hashes, marked.op_hashes, "taken as built");
        assert_eq!(signed.signed.signer, crypto::public_key(key));

        let other = Some((Hash32([1; 32]), marked));
        let (_, _, rerun) = decide(params, state, key, block, other).unwrap();
        assert_eq!(
            rerun.op_hashes, ran.op_hashes,
            "another block's change is ignored"
        );
    }

    /// A block that is not the next one is skipped, built change or not.
    #[test]
    fn a_block_not_after_the_head_is_skipped_even_with_its_built_change() {
        let mut chain = TestChain::new(20, 2, 3, 2);
        let (block, built) = proposed(&mut chain);
        let hash = block.header.hash().unwrap();
        let (_, op) = chain.new_account(BankId(1));
        chain.commit(Vec::new(), vec![op]).unwrap();
        let decided = decide(
            &chain.params,
            &chain.state,
            &chain.validator,
            block,
            Some((hash, built)),
        );
        assert!(decided.unwrap_err().contains("not the block after"));
    }
}
