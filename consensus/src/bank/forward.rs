//! Forwarding to the IM: attested batches out, the IM's answers in.

use std::time::Instant;

use halfveil_ledger::fastmap::HashSet;
use halfveil_ledger::{AttestationKind, Hash32};
use halfveil_ledger::{Rejecter, Rejection};

use super::outbox::{FORWARD_RETRY, REDIRECT_RETRY};
use super::{Bank, Effect, ForwardAnswer, OnChain, BATCH_TRANSFERS_MAX};

impl Bank {
    /// Forwards the outbox at once if no forward is out: at low load each accepted batch
    /// goes without waiting for the tick; under load what arrives while a forward is out
    /// waits for its answer and goes as one larger batch (fewer, larger batches cost less
    /// CPU), and the tick still sends up to [`super::outbox::FORWARDS_IN_FLIGHT_MAX`].
    pub(super) fn forward_if_idle(&mut self, now: Instant) {
        if self.outbox.in_flight() == 0 {
            self.forward(now);
        }
    }

    /// Sends the outbox to the IM in attested batches, as many as may be out at once.
    pub(super) fn forward(&mut self, now: Instant) {
        while self.outbox.may_send(now) {
            let (ids, requests) =
                self.outbox
                    .next_batch(&mut self.tracker, now, BATCH_TRANSFERS_MAX);
            if ids.is_empty() {
                continue;
            }
            let Some(attestation) = self.attest(AttestationKind::PayerOk, ids.clone()) else {
                // Cannot happen for ids the bank encoded itself; they wait for the sweep.
                self.outbox.answered();
                continue;
            };
            self.effects.push(Effect::Forward {
                ids,
                requests,
                attestation,
            });
        }
    }

    /// The IM's answer to the batch `ids`.
    pub fn on_forward_answer(&mut self, ids: Vec<Hash32>, answer: ForwardAnswer, now: Instant) {
        self.outbox.answered();
        match answer {
            ForwardAnswer::Taken {
                rejected,
                committed,
            } => {
                self.on_taken(&ids, rejected, committed);
                self.forward_again_after_interruption(now);
            }
            ForwardAnswer::Again => {
                self.outbox
                    .forward_again(ids, &mut self.tracker, now, FORWARD_RETRY)
            }
            ForwardAnswer::Lost => {
                self.im_interrupted.get_or_insert(now);
                self.outbox
                    .forward_again(ids, &mut self.tracker, now, FORWARD_RETRY)
            }
            ForwardAnswer::Elsewhere => {
                self.im_interrupted.get_or_insert(now);
                self.outbox
                    .forward_again(ids, &mut self.tracker, now, REDIRECT_RETRY)
            }
            ForwardAnswer::Refused { code, message } => {
                for id in ids {
                    self.refuse(id, code, &message);
                }
            }
            ForwardAnswer::Unexpected => {}
        }
        self.flush_refusals();
        // What queued while this forward was out goes now, as one batch.
        self.forward_if_idle(now);
    }

    /// An IM takes batches again after it was interrupted (a leader change, a restart):
    /// everything forwarded before the interruption and still without an outcome goes
    /// again now. The IM answers what it holds or committed with its status, so nothing
    /// is admitted twice.
    fn forward_again_after_interruption(&mut self, now: Instant) {
        let Some(since) = self.im_interrupted.take() else {
            return;
        };
        let forwarded_before = now.saturating_duration_since(since);
        for id in self.tracker.take_stale(now, forwarded_before) {
            self.outbox.push(id);
        }
    }

    /// The IM took the batch `ids`: its refusals (signed by it, of this batch) are passed
    /// on; transfers it had committed before (this bank forwarded them again) are final
    /// once their block is on this bank's disk; a block still to come settles them.
    fn on_taken(&mut self, ids: &[Hash32], rejected: Vec<Rejection>, committed: Vec<OnChain>) {
        let sent: HashSet<Hash32> = ids.iter().copied().collect();
        for rejection in rejected {
            let valid = rejection.by == Rejecter::IdentityManager
                && sent.contains(&rejection.transfer)
                && self.keys.signed(&rejection);
            if valid {
                self.pass_on_refusal(rejection.transfer, rejection);
            }
        }
        for at in committed {
            if sent.contains(&at.id) && at.height <= self.written.0 {
                self.tell_committed(at);
            }
        }
    }

    /// The IM reports transfers refused after it accepted them (signed by the IM or by the
    /// payee's bank); those whose signature verifies are passed on to the payers.
    pub fn on_rejected(&mut self, rejections: Vec<Rejection>) {
        for rejection in rejections.into_iter().take(BATCH_TRANSFERS_MAX) {
            if self.keys.signed(&rejection) {
                self.pass_on_refusal(rejection.transfer, rejection);
            }
        }
        self.flush_refusals();
    }
}
