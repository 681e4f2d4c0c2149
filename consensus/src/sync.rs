//! Catching up with the chain: one peer asked at a time, for a bounded range after the
//! head; blocks that arrive by gossip ahead of the head are held until the gap closes; when
//! the answer comes, the blocks that continue the head are applied in order, and the peer
//! is asked again while it had blocks to give. The node does the asking and the applying.

use std::collections::VecDeque;

use halfveil_ledger::{Block, Height};

/// Most blocks held ahead of the head while a sync runs.
pub const AHEAD_MAX: usize = 64;

/// What sync needs of a block.
pub trait Numbered {
    fn height(&self) -> Height;
}

impl Numbered for Block {
    fn height(&self) -> Height {
        Block::height(self)
    }
}

impl<T: Numbered> Numbered for std::sync::Arc<T> {
    fn height(&self) -> Height {
        T::height(self)
    }
}

/// The blocks to ask a peer for: from the one after `head` up to the peer's head, at most
/// `max`; none if the peer is not ahead.
pub fn range(head: Height, peer_head: Height, max: u64) -> Option<(Height, Height)> {
    let from = head.next()?;
    if peer_head < from || max == 0 {
        return None;
    }
    let last = from.0.saturating_add(max.saturating_sub(1));
    Some((from, Height(peer_head.0.min(last))))
}

/// How long a follower's head may stand still before it asks an IM replica for its head.
pub const HEAD_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A follower's guard against a missed gossip message. Blocks reach banks by gossip and a
/// sync starts only on a connection or a block from ahead, so a bank that missed the last
/// block (dropped, or sent while it was paused or cut off) would wait for the next block,
/// which may never come. When the head has not moved for [`HEAD_POLL`], ask again: each
/// IM replica in turn (the source of blocks; one that does not answer costs one turn).
#[derive(Debug)]
pub struct HeadPoll {
    height: Height,
    since: std::time::Instant,
    next: usize,
}

impl HeadPoll {
    pub fn new(height: Height, now: std::time::Instant) -> Self {
        HeadPoll {
            height,
            since: now,
            next: 0,
        }
    }

    /// The replica (index among `replicas`) to ask now, if the head at `height` has stood
    /// still for [`HEAD_POLL`] and no sync runs; the wait starts again after each ask.
    pub fn due(
        &mut self,
        height: Height,
        now: std::time::Instant,
        syncing: bool,
        replicas: usize,
    ) -> Option<usize> {
        if height != self.height || syncing {
            self.height = height;
            self.since = now;
            return None;
        }
        if now.saturating_duration_since(self.since) < HEAD_POLL {
            return None;
        }
        let replica = self.next.checked_rem(replicas)?;
        self.since = now;
        self.next = replica.saturating_add(1);
        Some(replica)
    }
}

/// What to do with a peer's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Catchup<B> {
    /// Apply these in order, stopping at the first that fails.
    pub apply: Vec<B>,
    /// Then, if all applied, ask the same peer again: it may have more.
    pub ask_again: bool,
}

/// One sync at a time, and the blocks held meanwhile.
#[derive(Debug)]
pub struct BlockSync<B> {
    running: bool,
    ahead: VecDeque<B>,
}

impl<B> Default for BlockSync<B> {
    fn default() -> Self {
        BlockSync {
            running: false,
            ahead: VecDeque::new(),
        }
    }
}

impl<B: Numbered> BlockSync<B> {
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether to start asking a peer now: not while a sync runs.
    pub fn start(&mut self) -> bool {
        !std::mem::replace(&mut self.running, true)
    }

    /// A block from gossip beyond the next height: held for when the gap closes (at most
    /// [`AHEAD_MAX`]; the sync fetches the rest).
    pub fn hold(&mut self, block: B) {
        if self.ahead.len() < AHEAD_MAX {
            self.ahead.push_back(block);
        }
    }

    /// The sync ended with `fetched` (`None`: the peer failed): the blocks that continue
    /// `head`, fetched ones first, then held ones; the held ones that do not are dropped.
    pub fn on_fetched(&mut self, head: Height, fetched: Option<Vec<B>>) -> Catchup<B> {
        self.running = false;
        let Some(fetched) = fetched else {
            return Catchup {
                apply: Vec::new(),
                ask_again: false,
            };
        };
        let ask_again = !fetched.is_empty();
        let mut next = head.next();
        let mut apply = Vec::new();
        for block in fetched.into_iter().chain(self.ahead.drain(..)) {
            if Some(block.height()) == next {
                next = block.height().next();
                apply.push(block);
            }
        }
        Catchup { apply, ask_again }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct B(u64);

    impl Numbered for B {
        fn height(&self) -> Height {
            Height(self.0)
        }
    }

    #[test]
    fn the_range_starts_after_the_head_and_is_bounded() {
        assert_eq!(
            range(Height(3), Height(10), 64),
            Some((Height(4), Height(10)))
        );
        assert_eq!(
            range(Height(3), Height(500), 64),
            Some((Height(4), Height(67)))
        );
        assert_eq!(range(Height(3), Height(3), 64), None, "not ahead");
        assert_eq!(range(Height(3), Height(2), 64), None, "behind");
        assert_eq!(range(Height(u64::MAX), Height(u64::MAX), 64), None);
    }

    #[test]
    fn one_sync_at_a_time() {
        let mut sync = BlockSync::<B>::default();
        assert!(sync.start());
        assert!(!sync.start(), "already running");
        assert!(sync.is_running());
        sync.on_fetched(Height(0), None);
        assert!(!sync.is_running());
        assert!(sync.start());
    }

    #[test]
    fn fetched_then_held_blocks_continue_the_head_in_order() {
        let mut sync = BlockSync::default();
        assert!(sync.start());
        // Held blocks are taken in one pass, in the order they came (gossip brings them in
        // order); one that does not continue the head then is dropped (9 here).
        sync.hold(B(6));
        sync.hold(B(9));
        sync.hold(B(7));
        let catchup = sync.on_fetched(Height(3), Some(vec![B(4), B(4), B(5), B(8)]));
        assert_eq!(catchup.apply, vec![B(4), B(5), B(6), B(7)]);
        assert!(catchup.ask_again);
        // What was held is used once.
        let catchup = sync.on_fetched(Height(7), Some(Vec::new()));
        assert_eq!(catchup.apply, Vec::new());
        assert!(!catchup.ask_again, "the peer had nothing more");
    }

    #[test]
    fn a_failed_sync_applies_nothing_and_keeps_the_held_blocks() {
        let mut sync = BlockSync::default();
        sync.start();
        sync.hold(B(5));
        let catchup = sync.on_fetched(Height(3), None);
        assert_eq!(
            catchup,
            Catchup {
                apply: Vec::new(),
                ask_again: false
            }
        );
        let catchup = sync.on_fetched(Height(4), Some(Vec::new()));
        assert_eq!(catchup.apply, vec![B(5)]);
    }

    #[test]
    fn a_standing_head_polls_each_replica_in_turn_and_a_moving_one_does_not() {
        use std::time::{Duration, Instant};
        let start = Instant::now();
        let mut poll = HeadPoll::new(Height(5), start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(poll.due(Height(5), at(999), false, 3), None);
        assert_eq!(poll.due(Height(5), at(1_000), false, 3), Some(0));
        // The wait starts again after each ask; replicas are taken in turn.
        assert_eq!(poll.due(Height(5), at(1_500), false, 3), None);
        assert_eq!(poll.due(Height(5), at(2_000), false, 3), Some(1));
        assert_eq!(poll.due(Height(5), at(3_000), false, 3), Some(2));
        assert_eq!(poll.due(Height(5), at(4_000), false, 3), Some(0));
        // A head that moves, or a sync that runs, resets the wait.
        assert_eq!(poll.due(Height(6), at(5_000), false, 3), None);
        assert_eq!(poll.due(Height(6), at(5_500), true, 3), None);
        assert_eq!(poll.due(Height(6), at(6_400), false, 3), None);
        assert_eq!(poll.due(Height(6), at(6_500), false, 3), Some(1));
        // No replica to ask: nothing.
        assert_eq!(poll.due(Height(6), at(9_000), false, 0), None);
    }

    #[test]
    fn held_blocks_are_bounded() {
        let mut sync = BlockSync::default();
        for height in 0..(AHEAD_MAX as u64 + 10) {
            sync.hold(B(height + 10));
        }
        let catchup = sync.on_fetched(Height(9), Some(Vec::new()));
        assert_eq!(catchup.apply.len(), AHEAD_MAX);
    }
}
