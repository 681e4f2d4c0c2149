//! Closing an account: open and empty, the replay rule, signed by its key.

use super::super::{Execution, SigCheck};
use crate::error::Violation;
use crate::types::CloseAccount;

impl Execution<'_> {
    pub(in crate::apply) fn close_account(
        &mut self,
        index: usize,
        close: &CloseAccount,
    ) -> Result<(), Violation> {
        let mut account = self.open_account_of(&close.account)?;
        if account.balance.0 != 0 {
            return Err(Violation::CloseNonEmpty {
                account: close.account,
                balance: account.balance,
            });
        }
        self.check_expiry(close.expires_at)?;
        self.use_nonce(&close.account, close.nonce, close.expires_at)?;
        let message = close.message(&self.params.chain_id)?;
        self.push_signature(
            SigCheck::Holder(index),
            &account.tx_key,
            &message,
            &close.signature,
        );
        account.closed = true;
        self.touched.insert(close.account, account);
        Ok(())
    }
}
