//! halfveil's node: the I/O shell around the ledger and consensus.
//!
//! - [`config`]: a node's `config.toml`.

pub mod config;
