//! Account openings: the holder proves the key, the bank issues a business key, co-signs the
//! opening for the IM, and marks the account open once the IM committed it.

use halfveil_ledger::crypto::{self, BusinessKey};
use halfveil_ledger::{open_account_message, AccountId, OpenAccount};

use super::{Bank, BankLimits, LocalAccount, Opening, OpeningError};

impl Bank {
    /// Adds the account of `opening`, not opened yet, with `business_key`, once the
    /// holder's signature verifies; returns the opening op, co-signed by this bank, for
    /// the IM. The node stores the account before it relays the op, and calls
    /// [`Bank::remove_account`] if it cannot.
    pub fn add_account(
        &mut self,
        opening: &Opening,
        business_key: BusinessKey,
    ) -> Result<OpenAccount, OpeningError> {
        if self.accounts.contains_key(&opening.account) {
            return Err(OpeningError::Exists);
        }
        let message = open_account_message(
            &self.keys.chain_id,
            &opening.tx_key,
            self.id,
            &opening.identity_record,
        )
        .map_err(|_| OpeningError::Message)?;
        crypto::verify(&opening.tx_key, &message, &opening.holder_signature)
            .map_err(|_| OpeningError::HolderSignature)?;
        let local = LocalAccount::new(business_key, false, BankLimits::default(), false);
        self.accounts.insert(opening.account, local);
        Ok(OpenAccount {
            account: opening.account,
            tx_key: opening.tx_key,
            bank: self.id,
            holder_signature: opening.holder_signature,
            bank_signature: crypto::sign(&self.key, &message),
            identity_record: opening.identity_record.clone(),
        })
    }

    /// Takes back an account the node could not store.
    pub fn remove_account(&mut self, account: &AccountId) {
        self.accounts.remove(account);
    }
}
