//! The transfers a bank tracks, each with its status until it is final. Bounded: the oldest
//! are forgotten first, and a forgotten transfer the bank refused is still remembered by id
//! until the chain's time passes its expiry, so its refusal stays final.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use halfveil_ledger::fastmap::{HashSet, HashSetExt};
use halfveil_ledger::sharded::ShardedMap;
use halfveil_ledger::{AccountId, Hash32, TimeMs, TransactionRequest};

use crate::transfer::TransferState;

/// Most ids of stored refusals remembered after their tracked entry was forgotten.
const REFUSED_IDS_MAX: usize = 4_000_000;

/// One transfer the bank tracks.
#[derive(Debug)]
pub struct Tracked {
    pub state: TransferState,
    pub expires_at: TimeMs,
    pub payer: AccountId,
    /// Counted in the payer's daily spending (0 if the bank refused it at once).
    pub amount: u64,
    /// The request, kept while pending so it can be forwarded again.
    pub request: Option<Box<TransactionRequest>>,
    /// When it was last forwarded.
    pub forwarded_at: Option<Instant>,
    /// In the outbox now.
    pub queued: bool,
    /// A refusal of it is being stored: no second one.
    pub refusing: bool,
}

impl Tracked {
    pub fn new(state: TransferState, expires_at: TimeMs, payer: AccountId) -> Tracked {
        Tracked {
            state,
            expires_at,
            payer,
            amount: 0,
            request: None,
            forwarded_at: None,
            queued: false,
            refusing: false,
        }
    }

    /// Pending, with no refusal on its way: it may still be forwarded.
    pub fn forwardable(&self) -> bool {
        self.state == TransferState::Pending && !self.refusing
    }
}

/// The tracked transfers, in the order they arrived, with the pending ones by expiry.
#[derive(Debug)]
pub struct Tracker {
    /// Sharded: it grows by every transfer, and a plain map's doubling stalled the bank.
    entries: ShardedMap<Hash32, Tracked>,
    order: VecDeque<Hash32>,
    /// The pending ones by expiry: the sweep reads only the expired ones.
    pending_by_expiry: BTreeSet<(TimeMs, Hash32)>,
    /// Stored refusals whose entry was forgotten: never accepted again.
    refused_ids: HashSet<Hash32>,
    capacity: usize,
}

impl Tracker {
    pub fn new(capacity: usize) -> Self {
        Tracker {
            entries: ShardedMap::new(),
            order: VecDeque::new(),
            pending_by_expiry: BTreeSet::new(),
            refused_ids: HashSet::new(),
            capacity,
        }
    }

    pub fn get(&self, id: &Hash32) -> Option<&Tracked> {
        self.entries.get(id)
    }

    pub fn get_mut(&mut self, id: &Hash32) -> Option<&mut Tracked> {
        self.entries.get_mut(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    pub fn state(&self, id: &Hash32) -> TransferState {
        self.entries
            .get(id)
            .map_or(TransferState::Unknown, |tracked| tracked.state.clone())
    }

    /// Refused earlier and forgotten since: its refusal is still final.
    pub fn refused_before(&self, id: &Hash32) -> bool {
        self.refused_ids.contains(id)
    }

    /// The chain's time passed the expiry of `id`: it can never commit, so there is no need
    /// to remember it was refused.
    pub fn forget_refusal(&mut self, id: &Hash32) {
        self.refused_ids.remove(id);
    }

    /// Tracks `id`, forgetting the oldest entry when full (`chain_time` tells whether a
    /// forgotten refusal can still matter).
    pub fn remember(&mut self, id: Hash32, tracked: Tracked, chain_time: TimeMs) {
        if self.entries.len() >= self.capacity {
            self.forget_oldest(chain_time);
        }
        if tracked.state == TransferState::Pending {
            self.pending_by_expiry.insert((tracked.expires_at, id));
        }
        self.entries.insert(id, tracked);
        self.order.push_back(id);
    }

    fn forget_oldest(&mut self, chain_time: TimeMs) {
        let Some(oldest) = self.order.pop_front() else {
            return;
        };
        let Some(forgotten) = self.entries.remove(&oldest) else {
            return;
        };
        self.pending_by_expiry
            .remove(&(forgotten.expires_at, oldest));
        let refused = matches!(forgotten.state, TransferState::Rejected(_));
        if refused && forgotten.expires_at > chain_time && self.refused_ids.len() < REFUSED_IDS_MAX
        {
            self.refused_ids.insert(oldest);
        }
    }

    /// Makes a pending transfer final; returns its entry as it was settled, or `None` if it
    /// is not tracked or already final (a final status never changes).
    pub fn settle(&mut self, id: Hash32, state: TransferState) -> Option<&Tracked> {
        debug_assert!(state.is_final(), "only a final status settles a transfer");
        let tracked = self.entries.get_mut(&id)?;
        if tracked.state != TransferState::Pending || !state.is_final() {
            return None;
        }
        self.pending_by_expiry.remove(&(tracked.expires_at, id));
        tracked.request = None;
        tracked.refusing = false;
        tracked.state = state;
        Some(tracked)
    }

    /// The pending transfers whose expiry is at or before `chain_time`.
    pub fn expired(&self, chain_time: TimeMs) -> Vec<Hash32> {
        self.pending_by_expiry
            .range(..=(chain_time, Hash32([u8::MAX; 32])))
            .map(|(_, id)| *id)
            .collect()
    }

    /// Marks queued, and returns, the pending transfers last forwarded at least `after`
    /// before `now` and not queued or being refused meanwhile.
    pub fn take_stale(&mut self, now: Instant, after: Duration) -> Vec<Hash32> {
        let mut stale = Vec::new();
        for (_, id) in &self.pending_by_expiry {
            let Some(tracked) = self.entries.get_mut(id) else {
                continue;
            };
            let waited = tracked
                .forwarded_at
                .is_some_and(|at| now.saturating_duration_since(at) >= after);
            if waited && !tracked.queued && tracked.forwardable() {
                tracked.queued = true;
                stale.push(*id);
            }
        }
        stale
    }
}
