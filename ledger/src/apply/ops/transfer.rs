//! A transfer: its own fields, expiry, two open accounts, both banks' attestations, the
//! balance moved, the replay rule, and the payer's credential (which covers the identity
//! credential's hash; the identity credential itself is opened only in a disclosure).

use super::super::{Execution, SigCheck};
use crate::error::Violation;
use crate::state::Account;
use crate::types::{
    transaction_credential_message, Amount, AttestationKind, BatchAttestation, Transfer,
    TransferOp, MEMO_BYTES_MAX, VERSION,
};

impl Execution<'_> {
    pub(in crate::apply) fn transfer(
        &mut self,
        index: usize,
        op: &TransferOp,
        attestations: &[BatchAttestation],
    ) -> Result<(), Violation> {
        let transfer = &op.request.transfer;
        self.check_transfer_fields(transfer)?;
        self.check_expiry(transfer.expires_at)?;
        let mut payer = self.open_account_of(&transfer.payer)?;
        let mut payee = self.open_account_of(&transfer.payee)?;
        let epoch = op.request.identity_credential.capsule.epoch;
        let expected = self.state.disclosure_key().epoch;
        if epoch != expected {
            return Err(Violation::IdentityCredentialEpoch { epoch, expected });
        }
        let id = transfer.id()?;
        self.check_attestation(
            attestations,
            op.payer_ok,
            AttestationKind::PayerOk,
            payer.bank,
            &id,
        )?;
        self.check_attestation(
            attestations,
            op.payee_ok,
            AttestationKind::PayeeOk,
            payee.bank,
            &id,
        )?;
        move_amount(transfer, &mut payer, &mut payee)?;
        self.use_nonce(&transfer.payer, transfer.nonce, transfer.expires_at)?;
        let message = transaction_credential_message(&id, &op.request.identity_credential)?;
        self.push_signature(
            SigCheck::TxCredential(index),
            &payer.tx_key,
            &message,
            &op.request.tx_credential,
        );
        self.touched.insert(transfer.payer, payer);
        self.touched.insert(transfer.payee, payee);
        // Block ops are bounded far below u32::MAX.
        self.transfers
            .push((id, u32::try_from(index).unwrap_or(u32::MAX)));
        Ok(())
    }

    /// The transfer's own fields, in the order they are checked: version, chain, memo
    /// length, a non-zero amount, two different accounts.
    fn check_transfer_fields(&self, transfer: &Transfer) -> Result<(), Violation> {
        if transfer.version != VERSION {
            return Err(Violation::TransferVersion {
                version: transfer.version,
            });
        }
        if transfer.chain_id != self.params.chain_id {
            return Err(Violation::WrongChain {
                found: transfer.chain_id.to_string(),
                expected: self.params.chain_id.to_string(),
            });
        }
        let memo_limit = usize::from(self.params.limits.memo_bytes_max).min(MEMO_BYTES_MAX);
        if transfer.memo.0.len() > memo_limit {
            return Err(Violation::MemoTooLong {
                bytes: transfer.memo.0.len(),
                limit: memo_limit,
            });
        }
        if transfer.amount.0 == 0 {
            return Err(Violation::ZeroAmount);
        }
        if transfer.payer == transfer.payee {
            return Err(Violation::SelfTransfer);
        }
        Ok(())
    }
}

/// Moves `transfer`'s amount from `payer` to `payee`: refused if the payer has too little
/// or the payee's balance would overflow.
fn move_amount(
    transfer: &Transfer,
    payer: &mut Account,
    payee: &mut Account,
) -> Result<(), Violation> {
    payer.balance = payer
        .balance
        .0
        .checked_sub(transfer.amount.0)
        .map(Amount)
        .ok_or(Violation::InsufficientFunds {
            account: transfer.payer,
            balance: payer.balance,
            amount: transfer.amount,
        })?;
    payee.balance = payee
        .balance
        .0
        .checked_add(transfer.amount.0)
        .map(Amount)
        .ok_or(Violation::BalanceOverflow {
            account: transfer.payee,
        })?;
    Ok(())
}
