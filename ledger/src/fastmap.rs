//! The hash maps and sets of the hot path: std's, with foldhash instead of SipHash.
//!
//! Their keys are ids and account ids (32-byte hashes), nonces and small integers, looked up
//! several times per transfer on every node; SipHash-1-3 over them was 2-4 % of a node's CPU
//! at load (docs/perf-log/round-07.md). foldhash is the hasher hashbrown itself defaults to: seeded
//! at random per process and per map, so a payer cannot choose ids that collide in another
//! node's tables, but much cheaper than SipHash for short keys. Use these for maps that a
//! transfer touches; anything else may keep std's.

pub use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
