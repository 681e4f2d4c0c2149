//! Block production and acceptance as pure state machines: inputs in, decisions out, no
//! tokio, no libp2p, no disk. The node's driver feeds them and carries out what they decide.
//!
//! - [`pool`]: the identity manager's pool of accepted transfers: admission (replay rule,
//!   balances counting what is in flight), payee approvals, block assembly, expiry.
//! - [`builder`]: the IM's block builder: a draft in, a block every rule accepts out, with
//!   what was left out and why, and what goes back to the pool.
//! - [`guard`]: the validator's last-signed-height guard.
//! - [`follower`]: what a replica does with a block it receives (apply, ignore, fetch the
//!   gap, or keep evidence of equivocation).
//! - [`bank`]: a bank's payer checks, limits, outbox and forwarding, payee approvals and
//!   refusals, as inputs in and [`bank::Effect`]s out.
//! - [`sync`]: catching up with the chain, one peer at a time, blocks ahead held.
//! - [`transfer`], [`clock`]: a transfer's status, and the time as the machines are told it.

// Arithmetic that could overflow and indexing that could panic are refused here outside
// tests: these machines decide what goes on chain (checked_*, saturating_*, get()).
#![cfg_attr(
    not(test),
    deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)
)]

pub mod bank;
pub mod builder;
pub mod clock;
pub mod follower;
pub mod guard;
pub mod pool;
pub mod sync;
pub mod transfer;

pub use clock::Now;
pub use pool::{Admission, ApprovalItem, PoolLimits, TransferPool};
pub use transfer::TransferState;
