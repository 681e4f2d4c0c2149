//! The store's errors.

use halfveil_ledger::{CodecError, Hash32, Height};
use thiserror::Error;

/// Errors of the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("database at {path} has schema version {found}, this build reads {expected}")]
    SchemaVersion {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("database at {path} belongs to genesis {found}, not {expected}")]
    GenesisMismatch {
        path: String,
        found: Hash32,
        expected: Hash32,
    },
    #[error("database is corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("block {height} does not follow the stored head {head}")]
    NotNext { height: Height, head: Height },
    #[error("refusing to sign height {height}: already signed up to {last_signed}")]
    AlreadySigned { height: Height, last_signed: Height },
    #[error(transparent)]
    Codec(#[from] CodecError),
}
