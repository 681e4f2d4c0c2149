//! The identity manager's block builder: from a draft (admin ops first, then approved
//! transfers, with their attestations) to a block that every rule of `apply` accepts. An op
//! that breaks a rule is left out, with why; when the block as a whole is refused (its
//! size), the later half of the transfers goes back to the pool for the next block. Pure:
//! the caller hands in the draft, the state and the time, and carries out the outcome
//! (the pool's bookkeeping, the answers to admin callers, the signature, the write).

use crate::pool::stale_epoch;
use halfveil_ledger::build::{propose_or_return, Credentials, Proposal};
use halfveil_ledger::state::{ChainParams, State};
use halfveil_ledger::{BatchAttestation, Hash32, Op, TimeMs};

/// Attempts at building one block before giving up on the ops left.
pub const BUILD_ATTEMPTS_MAX: usize = 16;

/// Where an op came from, so that what becomes of it reaches the right place.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin<A> {
    /// A transfer of the pool, by id.
    Transfer(Hash32),
    /// An admin op (issue, account opening, disclosure), with what its caller waits on.
    Admin(A),
}

/// An op left out of the block, and why.
#[derive(Debug)]
pub struct Left<A> {
    pub origin: Origin<A>,
    pub reason: String,
}

/// What became of a draft.
#[derive(Debug)]
pub struct Outcome<A> {
    /// The block, unsigned, when at least one op made it.
    pub proposal: Option<Proposal>,
    /// The origin of each op of `proposal`, in block order.
    pub included: Vec<Origin<A>>,
    /// Transfers to give back to the pool, untouched, for a later block.
    pub returned: Vec<Hash32>,
    /// Ops that break a rule of the block, each with why.
    pub refused: Vec<Left<A>>,
}

/// The ops of the block being built and the origin of each, kept aligned: every change to
/// one is made to the other here.
struct Slate<A> {
    ops: Vec<Op>,
    origins: Vec<Origin<A>>,
}

impl<A> Slate<A> {
    fn new(candidates: Vec<(Op, Origin<A>)>) -> Self {
        let (ops, origins) = candidates.into_iter().unzip();
        Slate { ops, origins }
    }

    fn transfers(&self) -> usize {
        self.origins
            .iter()
            .filter(|origin| matches!(origin, Origin::Transfer(_)))
            .count()
    }

    /// Takes the op at `index` out, with its origin.
    fn remove(&mut self, index: usize) -> Option<Origin<A>> {
        debug_assert_eq!(self.ops.len(), self.origins.len());
        if index >= self.ops.len() {
            return None;
        }
        self.ops.remove(index);
        Some(self.origins.remove(index))
    }

    /// Takes out the transfers sealed to another disclosure key epoch than the state's (a
    /// new epoch was adopted after they were admitted): in one pass, where leaving them out
    /// one build attempt at a time could give up on the block.
    fn take_stale(&mut self, state: &State) -> Vec<Left<A>> {
        let epoch = state.disclosure_key().epoch;
        let stale = |op: &Op| {
            matches!(op, Op::Transfer(transfer)
                if transfer.request.identity_credential.capsule.epoch != epoch)
        };
        if !self.ops.iter().any(stale) {
            return Vec::new();
        }
        let mut left = Vec::new();
        let mut kept = Slate {
            ops: Vec::with_capacity(self.ops.len()),
            origins: Vec::with_capacity(self.ops.len()),
        };
        let slate = std::mem::replace(
            self,
            Slate {
                ops: Vec::new(),
                origins: Vec::new(),
            },
        );
        for (op, origin) in slate.ops.into_iter().zip(slate.origins) {
            match &op {
                Op::Transfer(transfer) if stale(&op) => left.push(Left {
                    origin,
                    reason: stale_epoch(transfer.request.identity_credential.capsule.epoch, state),
                }),
                _ => {
                    kept.ops.push(op);
                    kept.origins.push(origin);
                }
            }
        }
        *self = kept;
        left
    }

    /// Keeps the first `keep` ops; returns the origins of the rest.
    fn truncate(&mut self, keep: usize) -> Vec<Origin<A>> {
        debug_assert_eq!(self.ops.len(), self.origins.len());
        self.ops.truncate(keep);
        self.origins.split_off(keep.min(self.origins.len()))
    }
}

/// Builds the block at `state`'s next height from `candidates` (admin ops first, then
/// transfers, whose credentials and attestations were verified at admission).
pub fn build<A>(
    params: &ChainParams,
    state: &State,
    time: TimeMs,
    attestations: Vec<BatchAttestation>,
    candidates: Vec<(Op, Origin<A>)>,
) -> Outcome<A> {
    let mut slate = Slate::new(candidates);
    let mut attestations = attestations;
    let mut outcome = Outcome {
        proposal: None,
        included: Vec::new(),
        returned: Vec::new(),
        refused: slate.take_stale(state),
    };
    for _ in 0..BUILD_ATTEMPTS_MAX {
        let ops = std::mem::take(&mut slate.ops);
        let refused = match propose_or_return(
            params,
            state,
            time,
            attestations,
            ops,
            Credentials::Verified,
        ) {
            Ok(proposal) => {
                return built(outcome, proposal, slate.origins);
            }
            Err(refused) => refused,
        };
        let refused = *refused;
        attestations = refused.attestations;
        slate.ops = refused.ops;
        let reason = refused.error.violation.to_string();
        match refused.error.op {
            // One op breaks a rule: leave it out and try again.
            Some(index) => match slate.remove(index) {
                Some(origin) => outcome.refused.push(Left { origin, reason }),
                None => return give_up(outcome, slate, &reason),
            },
            // A rule of the whole block (its size): keep the first half of the transfers,
            // the rest go back to the pool.
            None if slate.transfers() > 1 => {
                // Transfers are among the ops: this keeps at least the admin ops.
                let keep = slate.ops.len().saturating_sub(slate.transfers() / 2);
                for origin in slate.truncate(keep) {
                    if let Origin::Transfer(id) = origin {
                        outcome.returned.push(id);
                    }
                }
            }
            None => return give_up(outcome, slate, &reason),
        }
    }
    give_up(
        outcome,
        slate,
        &format!("no block could be built in {BUILD_ATTEMPTS_MAX} attempts"),
    )
}

/// The outcome of a block that was built.
fn built<A>(mut outcome: Outcome<A>, proposal: Proposal, origins: Vec<Origin<A>>) -> Outcome<A> {
    if proposal.ops.is_empty() {
        return outcome;
    }
    debug_assert_eq!(proposal.ops.len(), origins.len());
    outcome.proposal = Some(proposal);
    outcome.included = origins;
    outcome
}

/// No block: the transfers left go back to the pool, the admin ops left are refused with
/// `reason` (their callers hear it).
fn give_up<A>(mut outcome: Outcome<A>, slate: Slate<A>, reason: &str) -> Outcome<A> {
    for origin in slate.origins {
        match origin {
            Origin::Transfer(id) => outcome.returned.push(id),
            admin @ Origin::Admin(_) => outcome.refused.push(Left {
                origin: admin,
                reason: reason.to_owned(),
            }),
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use halfveil_ledger::disclosure_keys::HeldKey;
    use halfveil_ledger::testkit::{TestAccount, TestChain};
    use halfveil_ledger::threshold::dkg;
    use halfveil_ledger::{codec, Amount, Issue};

    /// A chain with one funded account (100) at each of two banks, and transfer candidates
    /// of `amounts` from the first to the second, with their attestations.
    /// A test chain, its accounts, the draft's candidates and attestations.
    type Draft = (
        TestChain,
        Vec<TestAccount>,
        Vec<(Op, Origin<u32>)>,
        Vec<BatchAttestation>,
    );

    fn draft(seed: u64, amounts: &[u64]) -> Draft {
        let mut chain = TestChain::new(seed, 2, 1, 1);
        chain.seal_identity = false;
        let mut accounts = chain.fund_accounts(1, 100).unwrap();
        let payee = accounts[1].id;
        let requests: Vec<_> = amounts
            .iter()
            .map(|amount| chain.request(&mut accounts[0], &payee, *amount))
            .collect();
        let (attestations, ops) = chain.transfer_ops(requests);
        let candidates = ops
            .into_iter()
            .map(|op| {
                let Op::Transfer(transfer) = &op else {
                    panic!("not a transfer");
                };
                let id = transfer.request.transfer.id().unwrap();
                (op, Origin::Transfer(id))
            })
            .collect();
        (chain, accounts, candidates, attestations)
    }

    fn transfer_ids(origins: &[(Op, Origin<u32>)]) -> Vec<Hash32> {
        ids(origins.iter().map(|(_, origin)| origin))
    }

    fn ids<'a>(origins: impl IntoIterator<Item = &'a Origin<u32>>) -> Vec<Hash32> {
        origins
            .into_iter()
            .filter_map(|origin| match origin {
                Origin::Transfer(id) => Some(*id),
                Origin::Admin(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_draft_that_keeps_every_rule_becomes_one_block_in_order() {
        let (chain, _, candidates, attestations) = draft(11, &[10, 20, 30]);
        let expected = transfer_ids(&candidates);
        let time = chain.next_time();
        let outcome = build(&chain.params, &chain.state, time, attestations, candidates);
        assert_eq!(outcome.proposal.expect("a block").ops.len(), 3);
        assert_eq!(ids(&outcome.included), expected);
        assert!(outcome.returned.is_empty() && outcome.refused.is_empty());
    }

    #[test]
    fn an_op_that_breaks_a_rule_is_left_out_with_why_and_the_rest_build() {
        // 60 + 60 from a balance of 100: the second overdraws.
        let (chain, _, candidates, attestations) = draft(12, &[60, 60, 10]);
        let all = transfer_ids(&candidates);
        let time = chain.next_time();
        let outcome = build(&chain.params, &chain.state, time, attestations, candidates);
        assert_eq!(outcome.proposal.expect("a block").ops.len(), 2);
        assert_eq!(ids(&outcome.included), vec![all[0], all[2]]);
        assert_eq!(outcome.refused.len(), 1);
        assert_eq!(outcome.refused[0].origin, Origin::Transfer(all[1]));
        assert!(!outcome.refused[0].reason.is_empty());
        assert!(outcome.returned.is_empty());
    }

    #[test]
    fn a_block_too_large_keeps_the_first_transfers_and_returns_the_rest() {
        let (mut chain, _, candidates, attestations) = draft(13, &[1; 8]);
        let all = transfer_ids(&candidates);
        let ops_bytes: usize = candidates
            .iter()
            .map(|(op, _)| codec::encode(op).unwrap().len())
            .sum();
        let attestation_bytes: usize = attestations
            .iter()
            .map(|attestation| codec::encode(attestation).unwrap().len())
            .sum();
        // Room for the attestations and three quarters of the transfers: 8 do not fit, 4 do.
        chain.params.limits.block_bytes_max = (attestation_bytes + ops_bytes * 3 / 4) as u32;
        let time = chain.next_time();
        let outcome = build(&chain.params, &chain.state, time, attestations, candidates);
        assert_eq!(outcome.proposal.expect("a block").ops.len(), 4);
        assert_eq!(ids(&outcome.included), all[..4]);
        assert_eq!(outcome.returned, all[4..]);
        assert!(outcome.refused.is_empty());
    }

    #[test]
    fn with_no_room_at_all_admin_ops_are_refused_and_transfers_returned() {
        let (mut chain, accounts, mut candidates, attestations) = draft(14, &[5, 6]);
        let issue = Op::Issue(Issue {
            to: accounts[0].id,
            amount: Amount(1),
            reference: 99,
        });
        candidates.insert(0, (issue, Origin::Admin(7)));
        let all = transfer_ids(&candidates);
        chain.params.limits.block_bytes_max = 1;
        let time = chain.next_time();
        let outcome = build(&chain.params, &chain.state, time, attestations, candidates);
        assert!(outcome.proposal.is_none());
        let mut returned = outcome.returned.clone();
        returned.sort();
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(returned, expected, "every transfer goes back to the pool");
        assert_eq!(outcome.refused.len(), 1);
        assert_eq!(outcome.refused[0].origin, Origin::Admin(7));
        assert!(
            outcome.refused[0].reason.contains("limit 1"),
            "{}",
            outcome.refused[0].reason
        );
    }

    #[test]
    fn an_admin_op_that_breaks_a_rule_is_refused_and_the_transfers_build() {
        let (chain, accounts, mut candidates, attestations) = draft(15, &[5]);
        // More than the supply may ever hold.
        let issue = Op::Issue(Issue {
            to: accounts[0].id,
            amount: Amount(u64::MAX),
            reference: 99,
        });
        candidates.insert(0, (issue, Origin::Admin(7)));
        let time = chain.next_time();
        let outcome = build(&chain.params, &chain.state, time, attestations, candidates);
        assert_eq!(outcome.refused.len(), 1);
        assert_eq!(outcome.refused[0].origin, Origin::Admin(7));
        assert_eq!(outcome.proposal.expect("a block").ops.len(), 1);
    }

    #[test]
    fn transfers_sealed_to_a_replaced_epoch_are_refused_in_one_pass() {
        let amounts = [1; 2 * BUILD_ATTEMPTS_MAX];
        let (mut chain, accounts, mut candidates, attestations) = draft(16, &amounts);
        // A new epoch is adopted after these transfers were admitted.
        let current = chain.state.disclosure_keys().current().clone();
        let numbers: Vec<u16> = current.key.holders.iter().map(|h| h.holder).collect();
        let threshold = current.key.threshold;
        let (_, key) = dkg::in_memory(1, &numbers, threshold, None, &mut chain.rng).unwrap();
        let held = HeldKey {
            key,
            parties: current.parties,
        };
        let adoption = chain.adoption(held);
        chain.commit(Vec::new(), vec![adoption]).unwrap();
        let issue = Op::Issue(Issue {
            to: accounts[0].id,
            amount: Amount(1),
            reference: 99,
        });
        candidates.insert(0, (issue, Origin::Admin(7)));
        let time = chain.next_time();
        let outcome = build(&chain.params, &chain.state, time, attestations, candidates);
        assert_eq!(outcome.included, vec![Origin::Admin(7)]);
        assert_eq!(outcome.refused.len(), amounts.len());
        assert!(outcome.returned.is_empty());
        assert!(
            outcome.refused[0]
                .reason
                .contains("epoch 0; the chain's is epoch 1"),
            "{}",
            outcome.refused[0].reason
        );
    }
}
