//! Fuzz targets for halfveil: every decoder that takes outside bytes, `apply` on arbitrary
//! blocks over a small valid chain, and a differential check of the batch signature verifier
//! against ed25519-zebra.
//!
//! Each target is a `pub fn NAME(data: &[u8])` here, so the same code runs under libFuzzer
//! (`fuzz_targets/NAME.rs`, feature `libfuzzer`, nightly: `scripts/fuzz.sh`) and on stable
//! as a plain test that replays the saved corpus `fuzz/corpus/NAME/` (`tests/corpus.rs`).
//! A target panics exactly when it finds a bug: a decoder that panics, a decoded value that
//! does not re-encode to the bytes it came from, `apply` breaking an invariant, or the
//! batch verifier disagreeing with single verification.
//!
//! The seeds of every corpus come from [`seeds`] (`cargo run -p halfveil-fuzz --bin
//! halfveil-fuzz-seeds`), built from [`world`]'s small valid chain.

// A fuzz target reports a bug by panicking: unwrap, expect and panic are how these targets
// state their invariants, so the workspace's warnings on them do not apply here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apply;
pub mod decoders;
pub mod files;
pub mod reader;
pub mod seeds;
pub mod sigbatch;
pub mod wire;
pub mod world;

pub use apply::apply;
pub use decoders::{
    block, disclosure_order, disclosure_shares, envelope, identity_record, op, receipt, rejection,
    text_ids, transfer,
};
pub use files::{config, genesis, key_file};
pub use sigbatch::sigbatch_differential;
pub use wire::{link_frame, node_request, node_response, raft_frame};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its libFuzzer binary and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("block", block),
    ("transfer", transfer),
    ("op", op),
    ("rejection", rejection),
    ("receipt", receipt),
    ("disclosure_order", disclosure_order),
    ("identity_record", identity_record),
    ("disclosure_shares", disclosure_shares),
    ("text_ids", text_ids),
    ("genesis", genesis),
    ("config", config),
    ("key_file", key_file),
    ("node_request", node_request),
    ("node_response", node_response),
    ("link_frame", link_frame),
    ("raft_frame", raft_frame),
    ("apply", apply),
    ("sigbatch_differential", sigbatch_differential),
];

/// Panics unless `value`'s canonical encoding is `bytes`: what every strict decode of the
/// ledger's codec promises.
pub fn assert_canonical<T: serde::Serialize + std::fmt::Debug>(value: &T, bytes: &[u8]) {
    let again = halfveil_ledger::codec::encode(value).expect("a decoded value encodes");
    assert!(
        again == bytes,
        "a decoded value re-encodes to other bytes:\n  input   {}\n  encoded {}\n  value {value:?}",
        hex::encode(bytes),
        hex::encode(&again),
    );
}
