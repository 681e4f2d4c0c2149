//! What a replica does with a block from the network, decided from its head and the hash it
//! stored at that height. Two blocks at one height that both carry a valid IM signature are
//! equivocation: the replica keeps both as evidence and stops following.

use halfveil_ledger::{Hash32, Height};

/// The decision for one received block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The next block: verify it fully with `apply` and store it.
    Apply,
    /// Already held (same hash): nothing to do.
    Known,
    /// Ahead of the head: fetch `from..=to` first.
    Fetch { from: Height, to: Height },
    /// A different block at a height already held: check its signature; if it verifies,
    /// it is evidence of equivocation.
    Conflict { stored: Hash32 },
}

/// Decides what to do with a block at `height` with hash `hash`, given the head and the
/// stored hash at `height` (if the replica holds that height).
pub fn decide(
    head: Height,
    height: Height,
    hash: &Hash32,
    stored_at_height: Option<Hash32>,
) -> Decision {
    if height > head {
        if Some(height) == head.next() {
            return Decision::Apply;
        }
        return Decision::Fetch {
            from: head.next().unwrap_or(head),
            to: height,
        };
    }
    match stored_at_height {
        Some(stored) if stored == *hash => Decision::Known,
        Some(stored) => Decision::Conflict { stored },
        // Below the head but not stored cannot happen with a gap-free store; fetching it
        // again is the safe answer.
        None => Decision::Fetch {
            from: height,
            to: height,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let hash = Hash32([1; 32]);
        let other = Hash32([2; 32]);
        assert_eq!(decide(Height(3), Height(4), &hash, None), Decision::Apply);
        assert_eq!(
            decide(Height(3), Height(7), &hash, None),
            Decision::Fetch {
                from: Height(4),
                to: Height(7)
            }
        );
        assert_eq!(
            decide(Height(3), Height(2), &hash, Some(hash)),
            Decision::Known
        );
        assert_eq!(
            decide(Height(3), Height(3), &hash, Some(other)),
            Decision::Conflict { stored: other }
        );
    }
}
