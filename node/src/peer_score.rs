//! What a node thinks of each genesis peer's behaviour: a score that offences lower and
//! time restores, and a ban when it falls too low. Genesis admits only its own peers, but a
//! peer's key can be stolen or its software broken: a peer that sends frames that do not
//! decode, frames over the size limit, or blocks that fail their checks is disconnected and
//! refused for a while, longer each time. Pure: the network task asks it and acts.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A score at or below this bans the peer.
pub const BAN_AT: i32 = -100;
/// Points restored per second of good behaviour, up to 0.
pub const RESTORE_PER_SECOND: i32 = 5;
/// The first ban's length; each further ban doubles it, up to [`BAN_MAX`].
pub const BAN_FIRST: Duration = Duration::from_secs(30);
pub const BAN_MAX: Duration = Duration::from_secs(3600);

/// Something a peer sent that an honest peer never sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// A frame or request that does not decode (framing, encoding, trailing bytes).
    Undecodable,
    /// A frame or message over the size limit.
    Oversized,
    /// A gossiped block that fails its checks.
    InvalidBlock,
}

impl Offence {
    pub fn penalty(self) -> i32 {
        match self {
            Offence::Undecodable => 25,
            Offence::Oversized => 50,
            Offence::InvalidBlock => 50,
        }
    }

    /// The offence's metric label.
    pub fn label(self) -> &'static str {
        match self {
            Offence::Undecodable => "undecodable",
            Offence::Oversized => "oversized",
            Offence::InvalidBlock => "invalid-block",
        }
    }
}

/// What the network task should do after an offence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; the peer stays.
    Noted { score: i32 },
    /// Disconnect the peer and refuse it until `until`.
    Ban { until: Instant, length: Duration },
    /// Already banned: nothing more to do.
    Banned,
}

#[derive(Clone, Copy, Debug)]
struct Standing {
    score: i32,
    /// When `score` was last brought up to date.
    at: Instant,
    bans: u32,
    banned_until: Option<Instant>,
}

/// Every peer's standing.
#[derive(Debug)]
pub struct PeerScores<P> {
    peers: HashMap<P, Standing>,
}

impl<P> Default for PeerScores<P> {
    fn default() -> Self {
        PeerScores {
            peers: HashMap::new(),
        }
    }
}

impl<P: Copy + Eq + Hash> PeerScores<P> {
    /// Counts `offence` by `peer` at `now`.
    pub fn offend(&mut self, peer: P, offence: Offence, now: Instant) -> Verdict {
        let standing = self.peers.entry(peer).or_insert(Standing {
            score: 0,
            at: now,
            bans: 0,
            banned_until: None,
        });
        if standing.banned_until.is_some_and(|until| until > now) {
            return Verdict::Banned;
        }
        restore(standing, now);
        standing.score = standing.score.saturating_sub(offence.penalty());
        if standing.score > BAN_AT {
            return Verdict::Noted {
                score: standing.score,
            };
        }
        let length = ban_length(standing.bans);
        standing.bans = standing.bans.saturating_add(1);
        standing.score = 0;
        let until = now + length;
        standing.banned_until = Some(until);
        Verdict::Ban { until, length }
    }

    /// The peers whose ban has ended by `now`: the network lets them in again.
    pub fn lift(&mut self, now: Instant) -> Vec<P> {
        let mut lifted = Vec::new();
        for (peer, standing) in &mut self.peers {
            if standing.banned_until.is_some_and(|until| until <= now) {
                standing.banned_until = None;
                standing.at = now;
                lifted.push(*peer);
            }
        }
        lifted
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &P, now: Instant) -> bool {
        self.peers
            .get(peer)
            .and_then(|standing| standing.banned_until)
            .is_some_and(|until| until > now)
    }

    /// The peer's score at `now` (0 for a peer never seen offending).
    pub fn score(&self, peer: &P, now: Instant) -> i32 {
        self.peers.get(peer).map_or(0, |standing| {
            let mut standing = *standing;
            restore(&mut standing, now);
            standing.score
        })
    }
}

/// Brings `standing.score` back toward 0 for the time since it was last updated.
fn restore(standing: &mut Standing, now: Instant) {
    let seconds = now.saturating_duration_since(standing.at).as_secs();
    let restored = i32::try_from(seconds)
        .unwrap_or(i32::MAX)
        .saturating_mul(RESTORE_PER_SECOND);
    standing.score = standing.score.saturating_add(restored).min(0);
    // Keep the fraction of a second not yet counted.
    standing.at += Duration::from_secs(seconds);
}

/// The length of a peer's ban after `bans` earlier ones.
fn ban_length(bans: u32) -> Duration {
    let factor = 1u32.checked_shl(bans.min(16)).unwrap_or(u32::MAX);
    BAN_FIRST.saturating_mul(factor).min(BAN_MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn a_few_bad_frames_are_noted_and_a_flood_bans() {
        let mut scores = PeerScores::default();
        let now = Instant::now();
        assert_eq!(
            scores.offend(1, Offence::Undecodable, now),
            Verdict::Noted { score: -25 }
        );
        assert_eq!(
            scores.offend(1, Offence::Undecodable, now),
            Verdict::Noted { score: -50 }
        );
        assert_eq!(
            scores.offend(1, Offence::Oversized, now),
            Verdict::Ban {
                until: now + BAN_FIRST,
                length: BAN_FIRST
            }
        );
        assert!(scores.is_banned(&1, now));
        assert_eq!(scores.offend(1, Offence::Undecodable, now), Verdict::Banned);
        // Another peer is not touched.
        assert!(!scores.is_banned(&2, now));
        assert_eq!(scores.score(&2, now), 0);
    }

    #[test]
    fn time_restores_the_score_and_rare_faults_never_ban() {
        let mut scores = PeerScores::default();
        let mut now = Instant::now();
        // One undecodable frame every 10 s: 50 points restored in between.
        for _ in 0..100 {
            assert!(matches!(
                scores.offend(7, Offence::Undecodable, now),
                Verdict::Noted { .. }
            ));
            now += Duration::from_secs(10);
        }
        assert_eq!(scores.score(&7, now), 0);
    }

    #[test]
    fn bans_end_and_grow_longer_each_time() {
        let mut scores = PeerScores::default();
        let mut now = Instant::now();
        let mut lengths = Vec::new();
        for _ in 0..10 {
            let verdict = loop {
                match scores.offend(3, Offence::InvalidBlock, now) {
                    Verdict::Ban { length, .. } => break length,
                    Verdict::Noted { .. } => {}
                    Verdict::Banned => panic!("still banned"),
                }
            };
            lengths.push(verdict.as_secs());
            assert!(scores
                .lift(now + verdict - Duration::from_millis(1))
                .is_empty());
            now += verdict;
            assert_eq!(scores.lift(now), vec![3]);
            assert!(!scores.is_banned(&3, now));
        }
        assert_eq!(
            lengths,
            [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
        );
    }
}
