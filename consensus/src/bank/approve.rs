//! The IM asks whether payees may receive: one payee-ok attestation over those approved,
//! a signed refusal for each of the others.

use halfveil_ledger::{AccountId, Amount, AttestationKind, BatchAttestation, Hash32, Rejection};

use super::accounts::check_payee;
use super::Bank;

/// One payee the IM asks about.
#[derive(Clone, Copy, Debug)]
pub struct PayeeItem {
    pub id: Hash32,
    pub payee: AccountId,
    pub amount: Amount,
}

/// The bank's verdict on a batch of payees.
#[derive(Debug)]
pub struct Verdict {
    pub attestation: Option<BatchAttestation>,
    pub refused: Vec<Rejection>,
}

impl Bank {
    /// Approves or refuses each payee of `items`.
    pub fn approve(&self, items: impl IntoIterator<Item = PayeeItem>) -> Verdict {
        let mut approved = Vec::new();
        let mut refused = Vec::new();
        for item in items {
            match check_payee(self.accounts.get(&item.payee), item.amount.0) {
                Ok(()) => approved.push(item.id),
                Err((code, detail)) => refused.extend(self.sign_refusal(item.id, code, &detail)),
            }
        }
        Verdict {
            attestation: (!approved.is_empty())
                .then(|| self.attest(AttestationKind::PayeeOk, approved))
                .flatten(),
            refused,
        }
    }
}
