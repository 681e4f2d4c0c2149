//! The one place the node reads the clock: the wall clock (the chain's time, in
//! milliseconds since the Unix epoch) and the monotonic one, as the machines of
//! `halfveil_consensus` take them.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use halfveil_consensus::Now;
use halfveil_ledger::TimeMs;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> TimeMs {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    TimeMs(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// Both clocks, read now.
pub fn now() -> Now {
    Now {
        wall: now_ms(),
        mono: Instant::now(),
    }
}
