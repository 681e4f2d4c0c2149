//! halfveil's ledger: the chain's data and its rules.
//!
//! - [`types`]: ids, amounts, transfers, every op, blocks, attestations, receipts.
//! - [`codec`]: the one canonical binary encoding (postcard, strictly decoded).
//! - [`hash`]: domain-separated blake3 and the Merkle tree of ops.
//! - [`crypto`]: the three credentials (transaction, identity, envelope) and sealing;
//!   [`sigbatch`]: batched signature checks with cached decoded keys.
//! - [`state`] and [`apply`]: the state and the pure transition `apply(state, block)`.
//! - [`build`]: a block from ops (the IM's side of `apply`).
//!
//! Nothing here does I/O, spawns a thread or reads a clock; the node feeds it inputs. The
//! RocksDB store is the crate `halfveil-store` (`ledger/store/`).

pub mod apply;
pub mod build;
pub mod codec;
pub mod crypto;
pub mod disclosure_keys;
pub mod error;
pub mod fastmap;
pub mod hash;
pub mod receipt;
pub mod sharded;
pub mod sigbatch;
pub mod state;
pub mod threshold;
pub mod types;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use apply::{
    apply, apply_blocks, apply_blocks_pending, apply_deferred, execute, BlockSignatures,
    PendingSignatures,
};
pub use error::{ApplyError, CodecError, CryptoError, Violation};
pub use hash::{Domain, Hash32};
pub use state::{Account, ChainParams, Limits, State, StateChange};
pub use types::*;
