//! Who waits for which transfer's final status: the RPC subscriptions (`hv_subscribeTransfer`,
//! `hv_subscribeFinals`, `hv_submitAndWatch`) register a oneshot per transfer here, and the
//! service answers them when the transfer commits or is refused.
//!
//! Bounded, because a client chooses the ids: a subscription to ids that never become final
//! would otherwise stay in the table after the client left. A waiter whose receiver is gone
//! (the client unsubscribed, disconnected or hit the subscription deadline) is swept; the
//! whole table holds at most [`WAITERS_MAX`], and the RPC server refuses new waits while it
//! is full (it reads the count through [`WaiterCount`] without asking the service).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use halfveil_ledger::fastmap::HashMap;
use halfveil_ledger::Hash32;
use tokio::sync::oneshot;

use crate::service::TransferState;

/// Most waiters across every transfer and client.
pub const WAITERS_MAX: usize = 200_000;
/// Most waiters for one transfer's final status.
const WAITERS_PER_TRANSFER_MAX: usize = 16;
/// Above this many waiters the table is swept every [`SWEEP_EVERY_LARGE`], below it every
/// [`SWEEP_EVERY`] (and always when full).
const SWEEP_ABOVE: usize = 10_000;
const SWEEP_EVERY_LARGE: Duration = Duration::from_millis(100);
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The number of waiters, readable from the RPC server's tasks.
#[derive(Clone, Debug, Default)]
pub struct WaiterCount(Arc<AtomicUsize>);

impl WaiterCount {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Whether `more` waiters fit now.
    pub fn has_room(&self, more: usize) -> bool {
        self.get().saturating_add(more) <= WAITERS_MAX
    }

    fn set(&self, count: usize) {
        self.0.store(count, Ordering::Relaxed);
    }
}

/// The table (see the module doc).
#[derive(Debug, Default)]
pub struct Waiters {
    by_transfer: HashMap<Hash32, Vec<oneshot::Sender<TransferState>>>,
    count: usize,
    shared: WaiterCount,
    swept_at: Option<Instant>,
}

impl Waiters {
    pub fn new(shared: WaiterCount) -> Waiters {
        Waiters {
            shared,
            ..Waiters::default()
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Registers `reply` for `id`. A full table first sweeps; if still full, `reply` is
    /// dropped, which ends the waiting subscription.
    pub fn add(&mut self, id: Hash32, reply: oneshot::Sender<TransferState>) {
        if self.count >= WAITERS_MAX {
            self.sweep();
        }
        if self.count >= WAITERS_MAX {
            return;
        }
        let waiters = self.by_transfer.entry(id).or_default();
        let before = waiters.len();
        waiters.retain(|waiter| !waiter.is_closed());
        let mut count = self.count.saturating_sub(before - waiters.len());
        if waiters.len() < WAITERS_PER_TRANSFER_MAX {
            waiters.push(reply);
            count += 1;
        }
        self.count = count;
        self.shared.set(count);
    }

    /// Answers everyone waiting for `id`.
    pub fn resolve(&mut self, id: &Hash32, track: &TransferState) {
        let Some(waiters) = self.by_transfer.remove(id) else {
            return;
        };
        self.count = self.count.saturating_sub(waiters.len());
        self.shared.set(self.count);
        for waiter in waiters {
            let _ = waiter.send(track.clone());
        }
    }

    /// Drops the waiters whose client is gone, when a sweep is due. Cheap to call on every
    /// tick.
    pub fn sweep_when_due(&mut self, now: Instant) {
        let every = if self.count > SWEEP_ABOVE {
            SWEEP_EVERY_LARGE
        } else {
            SWEEP_EVERY
        };
        if self
            .swept_at
            .is_none_or(|at| now.saturating_duration_since(at) >= every)
        {
            self.sweep();
            self.swept_at = Some(now);
        }
    }

    fn sweep(&mut self) {
        let mut count = 0;
        self.by_transfer.retain(|_, waiters| {
            waiters.retain(|waiter| !waiter.is_closed());
            count += waiters.len();
            !waiters.is_empty()
        });
        self.count = count;
        self.shared.set(count);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(n: u8) -> Hash32 {
        Hash32([n; 32])
    }

    #[test]
    fn waiters_of_gone_clients_are_swept_and_the_table_is_bounded() {
        let shared = WaiterCount::default();
        let mut waiters = Waiters::new(shared.clone());
        let mut kept = Vec::new();
        for n in 0..=u8::MAX {
            let (reply, answer) = oneshot::channel();
            waiters.add(id(n), reply);
            if n % 2 == 0 {
                kept.push(answer);
            }
        }
        assert_eq!(shared.get(), 256);
        waiters.sweep();
        assert_eq!(
            waiters.len(),
            128,
            "the dropped receivers' waiters are gone"
        );
        assert_eq!(shared.get(), 128);
        waiters.resolve(&id(0), &TransferState::Unknown);
        assert_eq!(waiters.len(), 127);
        assert_eq!(kept[0].try_recv().unwrap(), TransferState::Unknown);
    }

    #[test]
    fn one_transfer_holds_at_most_its_share() {
        let mut waiters = Waiters::default();
        let mut answers = Vec::new();
        for _ in 0..WAITERS_PER_TRANSFER_MAX + 5 {
            let (reply, answer) = oneshot::channel();
            waiters.add(id(1), reply);
            answers.push(answer);
        }
        assert_eq!(waiters.len(), WAITERS_PER_TRANSFER_MAX);
    }

    #[test]
    fn a_full_table_refuses_until_swept() {
        let mut waiters = Waiters::default();
        let mut answers = Vec::new();
        for n in 0..WAITERS_MAX {
            let bytes = u64::try_from(n).unwrap().to_le_bytes();
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&bytes);
            let (reply, answer) = oneshot::channel();
            waiters.add(Hash32(key), reply);
            answers.push(answer);
        }
        assert_eq!(waiters.len(), WAITERS_MAX);
        let (reply, mut refused) = oneshot::channel();
        waiters.add(id(200), reply);
        assert_eq!(waiters.len(), WAITERS_MAX);
        assert!(refused.try_recv().is_err(), "the extra waiter was dropped");
        answers.truncate(10);
        let (reply, _answer) = oneshot::channel();
        waiters.add(id(201), reply);
        assert_eq!(
            waiters.len(),
            11,
            "a full table sweeps the gone clients first"
        );
    }
}
