//! Envelopes from payers: open, check, accept (queued to forward) or refuse.

use halfveil_ledger::crypto::Envelope;
use halfveil_ledger::{Hash32, RejectCode, TransactionRequest};

use super::accounts::check_payer;
use super::tracker::Tracked;
use super::{Bank, SubmitError};
use crate::clock::Now;
use crate::transfer::TransferState;

/// A payer's answer: the transfer's id and its state, or why the envelope was not taken.
pub type Submitted = Result<(Hash32, TransferState), SubmitError>;

impl Bank {
    /// One envelope. A refusal it earns comes out as [`super::Effect::StoreRefusals`]: the
    /// answer may be told only after it.
    pub fn submit(&mut self, bytes: &[u8], now: Now) -> Submitted {
        let answer = self.accept(bytes, now);
        self.flush_refusals();
        self.forward_if_idle(now.mono);
        answer
    }

    /// Envelopes, each answered on its own.
    pub fn submit_batch(&mut self, envelopes: &[Vec<u8>], now: Now) -> Vec<Submitted> {
        let answers = envelopes
            .iter()
            .map(|bytes| self.accept(bytes, now))
            .collect();
        self.flush_refusals();
        self.forward_if_idle(now.mono);
        answers
    }

    /// Opens one envelope, checks the payer, and queues the transfer for forwarding. One
    /// already tracked is answered with its state, never taken twice.
    fn accept(&mut self, bytes: &[u8], now: Now) -> Submitted {
        let (id, request) = self.open_envelope(bytes)?;
        if let Some(tracked) = self.tracker.get(&id) {
            return Ok((id, tracked.state.clone()));
        }
        if self.tracker.refused_before(&id) {
            return Err(SubmitError::RefusedBefore);
        }
        if self.outbox.len() >= self.bounds.outbox_max {
            return Err(SubmitError::Busy);
        }
        let transfer = &request.transfer;
        let spent = self.spending.today(&transfer.payer, now.wall);
        let state = match check_payer(self.accounts.get(&transfer.payer), &request, spent) {
            Ok(()) => self.queue_accepted(id, request, now),
            Err((code, detail)) => self.refuse_at_once(id, &request, code, &detail),
        };
        Ok((id, state))
    }

    /// The request an envelope holds and its transfer's id, if the envelope is for an open
    /// account of this bank and opens with its business key; every failure looks the same
    /// to the sender.
    fn open_envelope(&self, bytes: &[u8]) -> Result<(Hash32, TransactionRequest), SubmitError> {
        let request = Envelope::decode(bytes)
            .ok()
            .and_then(|envelope| {
                let local = self
                    .accounts
                    .get(&envelope.account)
                    .filter(|local| local.opened)?;
                let key = local.business_key();
                envelope.open(key, &self.keys.chain_id, self.id).ok()
            })
            .ok_or(SubmitError::Envelope)?;
        let id = request.transfer.id().map_err(|_| SubmitError::Envelope)?;
        Ok((id, request))
    }

    /// Counts an accepted transfer in its payer's daily spending and queues it for
    /// forwarding; it is pending.
    fn queue_accepted(
        &mut self,
        id: Hash32,
        request: TransactionRequest,
        now: Now,
    ) -> TransferState {
        let transfer = &request.transfer;
        let mut tracked = Tracked::new(TransferState::Pending, transfer.expires_at, transfer.payer);
        self.spending
            .add(transfer.payer, now.wall, transfer.amount.0);
        tracked.amount = transfer.amount.0;
        tracked.queued = true;
        tracked.request = Some(Box::new(request));
        self.tracker.remember(id, tracked, self.written.1);
        self.outbox.push(id);
        TransferState::Pending
    }

    /// Refuses a transfer the payer's checks fail: signs the refusal and queues it to be
    /// stored; the transfer stays pending until then.
    fn refuse_at_once(
        &mut self,
        id: Hash32,
        request: &TransactionRequest,
        code: RejectCode,
        detail: &str,
    ) -> TransferState {
        let transfer = &request.transfer;
        let tracked = Tracked::new(TransferState::Pending, transfer.expires_at, transfer.payer);
        self.tracker.remember(id, tracked, self.written.1);
        match self.sign_refusal(id, code, detail) {
            Some(rejection) => {
                self.pass_on_refusal(id, rejection.clone());
                TransferState::Rejected(Box::new(rejection))
            }
            None => TransferState::Unknown,
        }
    }
}
