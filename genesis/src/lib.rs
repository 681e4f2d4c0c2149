//! halfveil's genesis file, key files and testnet generation.
//!
//! - [`file`]: the genesis JSON: its schema, strict validation with errors that name the
//!   field, its hash, and the [`halfveil_ledger::ChainParams`] the ledger checks blocks with.
//! - [`keystore`]: password-encrypted files (Argon2id, XChaCha20-Poly1305) for signing keys,
//!   disclosure key shares, requester keys and wallets; plaintext libp2p node keys.
//! - [`assembly`]: a genesis made by parties on their own machines: draft, sign, assemble.
//! - [`testnet`]: every key and the signed genesis of a local network.

pub mod assembly;
pub mod file;
pub mod keystore;
pub mod testnet;

pub use file::{Genesis, GenesisError};
