//! Opening an account: the id is the key's, new, at a bank of genesis; a strong key; the
//! holder and the bank both sign, over the sealed identity record too; the record is a
//! well-formed ciphertext to the disclosure key, bound to this account.

use super::super::{Execution, SigCheck};
use crate::crypto;
use crate::error::Violation;
use crate::state::Account;
use crate::types::{open_account_message, AccountId, Amount, OpenAccount};

impl Execution<'_> {
    pub(in crate::apply) fn open_account(
        &mut self,
        index: usize,
        open: &OpenAccount,
    ) -> Result<(), Violation> {
        if AccountId::from_key(&open.tx_key) != open.account {
            return Err(Violation::AccountIdMismatch {
                account: open.account,
            });
        }
        if self.account(&open.account).is_some() {
            return Err(Violation::AccountExists {
                account: open.account,
            });
        }
        let bank_key = *self
            .params
            .bank_key(open.bank)
            .ok_or(Violation::UnknownBank {
                index,
                bank: open.bank,
            })?;
        crypto::check_key_strength(&open.tx_key).map_err(|reason| Violation::BadKey { reason })?;
        crypto::IdentityRecord::check(
            &open.identity_record,
            self.state.disclosure_key(),
            &self.params.chain_id,
            &open.account,
        )
        .map_err(|reason| Violation::BadIdentityRecord { reason })?;
        let message = open_account_message(
            &self.params.chain_id,
            &open.tx_key,
            open.bank,
            &open.identity_record,
        )?;
        self.push_signature(
            SigCheck::Holder(index),
            &open.tx_key,
            &message,
            &open.holder_signature,
        );
        self.push_signature(
            SigCheck::Bank(index),
            &bank_key,
            &message,
            &open.bank_signature,
        );
        self.touched.insert(
            open.account,
            Account {
                tx_key: open.tx_key,
                bank: open.bank,
                balance: Amount(0),
                closed: false,
            },
        );
        Ok(())
    }
}
