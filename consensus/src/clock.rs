//! The time as a machine is told it. The machines never read a clock: the shell reads one
//! (`halfveil_node::clock`) and hands the reading in, so a test can set any time it likes.

use std::time::Instant;

use halfveil_ledger::TimeMs;

/// One reading of the clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock time, for what the chain and its payers count in (days, block times).
    pub wall: TimeMs,
    /// Monotonic time, for time-outs and retries (a wall clock can jump).
    pub mono: Instant,
}
