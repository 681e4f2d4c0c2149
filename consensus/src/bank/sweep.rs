//! The bank's timer: expiry by the chain's clock, forwarding again what got no answer,
//! pruning refusals that can no longer matter.

use halfveil_ledger::{Height, RejectCode, TimeMs};

use super::{Bank, Effect, BATCH_TRANSFERS_MAX, REFORWARD_AFTER, SWEEP_EVERY};
use crate::clock::Now;

impl Bank {
    /// The timer fired: sweep when due, then forward what may go.
    pub fn tick(&mut self, now: Now) {
        let due = self
            .last_sweep
            .is_none_or(|last| now.mono.saturating_duration_since(last) >= SWEEP_EVERY);
        if due {
            self.last_sweep = Some(now.mono);
            self.sweep(now);
        }
        self.forward(now.mono);
    }

    /// A block is on this bank's disk: the chain's clock moved.
    pub fn on_written(&mut self, height: Height, time: TimeMs) {
        debug_assert!(height >= self.written.0, "the head only grows");
        self.written = (height, time);
    }

    /// Declares expired the pending transfers that the chain can no longer commit (a block
    /// on this bank's disk is at or past their expiry: block times only grow), forwards
    /// again those without an answer for a while, and prunes stored refusals of transfers
    /// past their expiry. Expiry is judged by the chain's clock only, never the bank's, so
    /// a refusal for expiry is never contradicted by a later block.
    fn sweep(&mut self, now: Now) {
        let chain_time = self.written.1;
        for id in self.tracker.expired(chain_time) {
            self.refuse(id, RejectCode::Expired, "expired before it was committed");
        }
        for id in self.tracker.take_stale(now.mono, REFORWARD_AFTER) {
            self.outbox.push(id);
        }
        let mut prune = Vec::new();
        while let Some(&(expires_at, id)) = self.refusal_rows.first() {
            if expires_at > chain_time || prune.len() >= BATCH_TRANSFERS_MAX {
                break;
            }
            self.refusal_rows.pop_first();
            self.tracker.forget_refusal(&id);
            prune.push(id);
        }
        if !prune.is_empty() {
            self.effects.push(Effect::PruneRefusals(prune));
        }
        self.flush_refusals();
    }
}
