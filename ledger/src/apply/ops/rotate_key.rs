//! Rotating an account's key: an open account, a strong new key, the replay rule, signed by
//! the old key and the new.

use super::super::{Execution, SigCheck};
use crate::crypto;
use crate::error::Violation;
use crate::types::RotateKey;

impl Execution<'_> {
    pub(in crate::apply) fn rotate_key(
        &mut self,
        index: usize,
        rotate: &RotateKey,
    ) -> Result<(), Violation> {
        let mut account = self.open_account_of(&rotate.account)?;
        self.check_expiry(rotate.expires_at)?;
        crypto::check_key_strength(&rotate.new_key)
            .map_err(|reason| Violation::BadKey { reason })?;
        self.use_nonce(&rotate.account, rotate.nonce, rotate.expires_at)?;
        let message = rotate.message(&self.params.chain_id)?;
        self.push_signature(
            SigCheck::OldKey(index),
            &account.tx_key,
            &message,
            &rotate.old_signature,
        );
        self.push_signature(
            SigCheck::NewKey(index),
            &rotate.new_key,
            &message,
            &rotate.new_signature,
        );
        account.tx_key = rotate.new_key;
        self.touched.insert(rotate.account, account);
        Ok(())
    }
}
