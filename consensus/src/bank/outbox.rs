//! The bank's outbox: accepted transfers waiting to go to the IM, and how many batches may be
//! out at once. A batch the IM did not take goes back to the front, and forwarding holds
//! off for a while.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use halfveil_ledger::{Hash32, TransactionRequest};

use super::tracker::Tracker;

/// Forward batches in flight to the IM at once.
pub const FORWARDS_IN_FLIGHT_MAX: usize = 4;
/// How long forwarding waits after the IM could not be reached or was busy.
pub const FORWARD_RETRY: Duration = Duration::from_secs(1);
/// The hold-off before a batch goes to another IM replica (the one asked does not lead, or
/// could not be reached): short, so a leader change costs little more than the election,
/// and not zero, so replicas that all answer at once are not asked in a tight loop.
pub const REDIRECT_RETRY: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct Outbox {
    /// By id; the requests are in the tracker.
    queue: VecDeque<Hash32>,
    in_flight: usize,
    /// No forward before this (the IM was unreachable or busy).
    retry_at: Option<Instant>,
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues a transfer the tracker marked queued.
    pub fn push(&mut self, id: Hash32) {
        self.queue.push_back(id);
    }

    /// A forwarded batch was answered (whatever the answer).
    pub fn answered(&mut self) {
        debug_assert!(self.in_flight > 0, "an answer to a batch that was not sent");
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Puts a batch the IM did not take back at the front (the transfers still pending),
    /// and holds forwarding back for `hold_off`.
    pub fn forward_again(
        &mut self,
        ids: Vec<Hash32>,
        tracker: &mut Tracker,
        now: Instant,
        hold_off: Duration,
    ) {
        for id in ids.into_iter().rev() {
            if let Some(tracked) = tracker.get_mut(&id) {
                if tracked.forwardable() && !tracked.queued {
                    tracked.queued = true;
                    self.queue.push_front(id);
                }
            }
        }
        self.retry_at = now.checked_add(hold_off);
    }

    /// Whether a batch may go now: fewer than [`FORWARDS_IN_FLIGHT_MAX`] out, something
    /// queued, and no hold-off in force.
    pub fn may_send(&mut self, now: Instant) -> bool {
        if self.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        self.retry_at = None;
        self.in_flight < FORWARDS_IN_FLIGHT_MAX && !self.queue.is_empty()
    }

    /// The ids and requests of the next batch: at most `max` from the front, skipping
    /// transfers that became final or are being refused meanwhile. Counts it in flight if
    /// it is not empty.
    pub fn next_batch(
        &mut self,
        tracker: &mut Tracker,
        now: Instant,
        max: usize,
    ) -> (Vec<Hash32>, Vec<TransactionRequest>) {
        let mut ids = Vec::new();
        let mut requests = Vec::new();
        while ids.len() < max {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let Some(tracked) = tracker.get_mut(&id) else {
                continue;
            };
            tracked.queued = false;
            if let (true, Some(request)) = (tracked.forwardable(), &tracked.request) {
                tracked.forwarded_at = Some(now);
                requests.push(TransactionRequest::clone(request));
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            self.in_flight = self.in_flight.saturating_add(1);
        }
        (ids, requests)
    }
}
