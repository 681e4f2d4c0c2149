//! halfveil's node: the I/O shell around the ledger and consensus.
//!
//! - [`config`]: a node's `config.toml`; [`clock`]: the one place the clock is read.
//! - [`run`]: start a node from its home folder and stop it cleanly.
//! - [`service`]: the one task that owns the chain state; [`im`] and [`bank`] are its
//!   role-specific halves.
//! - [`network`]: the libp2p swarm task; [`protocol`]: what nodes say to each other.
//! - [`writer`]: the storage thread, one synced write per block.
//! - [`rpc`]: the JSON-RPC API (server trait and typed client); [`rpc_server`]: its handlers.
//! - [`metrics`]: Prometheus metrics and health endpoints.
//! - [`launch`]: a node as a child process (for the demo, bench, chaos tool and tests).

pub mod admission;
pub mod bank;
pub mod clock;
pub mod config;
pub mod evidence;
pub mod im;
pub mod launch;
pub mod lifecycle;
pub mod links;
pub mod metrics;
pub mod network;
pub mod peer_score;
pub mod protocol;
pub mod replica;
pub mod rpc;
pub mod rpc_listen;
pub mod rpc_server;
pub mod run;
pub mod service;
pub mod waiters;
pub mod writer;

/// Most transfers the IM holds accepted and not yet committed.
pub const POOL_PENDING_MAX: usize = 200_000;
