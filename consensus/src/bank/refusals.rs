//! Refusals: signed here, stored by the node, told once stored; and final states.

use halfveil_ledger::{Hash32, RejectCode, Rejecter, Rejection};

use super::{Bank, Effect, OnChain, Refusal};
use crate::transfer::TransferState;

impl Bank {
    /// This bank's signed refusal of `id`.
    pub(super) fn sign_refusal(
        &self,
        id: Hash32,
        code: RejectCode,
        detail: &str,
    ) -> Option<Rejection> {
        let chain_id = &self.keys.chain_id;
        Rejection::sign(
            chain_id,
            id,
            Rejecter::Bank(self.id),
            code,
            detail,
            &self.key,
        )
        .ok()
    }

    /// Refuses a tracked, pending transfer (signed by this bank); told once stored.
    pub(super) fn refuse(&mut self, id: Hash32, code: RejectCode, detail: &str) {
        if let Some(rejection) = self.sign_refusal(id, code, detail) {
            self.pass_on_refusal(id, rejection);
        }
    }

    /// Queues a verified refusal of a tracked, pending transfer for storing: at most one per
    /// transfer, the first is the one told.
    pub(super) fn pass_on_refusal(&mut self, id: Hash32, rejection: Rejection) {
        let Some(tracked) = self.tracker.get_mut(&id) else {
            return;
        };
        if tracked.state != TransferState::Pending || tracked.refusing {
            return;
        }
        tracked.refusing = true;
        self.new_refusals.push(Refusal {
            id,
            rejection,
            expires_at: tracked.expires_at,
            payer: tracked.payer,
        });
    }

    /// Hands the refusals made while handling this input to the node, to store.
    pub(super) fn flush_refusals(&mut self) {
        let refusals = std::mem::take(&mut self.new_refusals);
        if !refusals.is_empty() {
            self.effects.push(Effect::StoreRefusals(refusals));
        }
    }

    /// The refusals of [`Effect::StoreRefusals`] are on disk, except those of transfers the
    /// chain holds (`committed`): record and tell them, and commit the others.
    pub fn on_refusals_stored(&mut self, refusals: Vec<Refusal>, committed: Vec<OnChain>) {
        for at in committed {
            self.tell_committed(at);
        }
        for refusal in refusals {
            self.refusal_rows.insert((refusal.expires_at, refusal.id));
            let state = TransferState::Rejected(Box::new(refusal.rejection));
            if self.settle(refusal.id, state.clone()) {
                self.effects.push(Effect::Resolve {
                    id: refusal.id,
                    state,
                });
            }
        }
    }

    /// The chain holds `at`: its waiters are told, whether or not this bank tracked it.
    pub(super) fn tell_committed(&mut self, at: OnChain) {
        self.settle(at.id, at.state());
        self.effects.push(Effect::Resolve {
            id: at.id,
            state: at.state(),
        });
    }

    /// A transfer this bank tracks is final: a block on this bank's disk commits it, or its
    /// refusal is stored. Returns false if it was not pending here (final states never
    /// change). The caller tells whoever waits.
    pub fn settle(&mut self, id: Hash32, state: TransferState) -> bool {
        let rejected = matches!(state, TransferState::Rejected(_));
        let Some(tracked) = self.tracker.settle(id, state) else {
            return false;
        };
        if rejected {
            let (payer, amount) = (tracked.payer, tracked.amount);
            self.spending.refund(&payer, amount);
        }
        true
    }
}
