//! Issuing money: a non-zero amount within the genesis limit, to an open account, without
//! overflowing the supply or the balance.

use super::super::Execution;
use crate::error::Violation;
use crate::types::{Amount, Issue};

impl Execution<'_> {
    pub(in crate::apply) fn issue(&mut self, issue: &Issue) -> Result<(), Violation> {
        if issue.amount.0 == 0 {
            return Err(Violation::ZeroAmount);
        }
        let limit = Amount(self.params.limits.issue_amount_max);
        if issue.amount > limit {
            return Err(Violation::IssueTooLarge {
                amount: issue.amount,
                limit,
            });
        }
        let mut account = self.open_account_of(&issue.to)?;
        let issued = self
            .issued
            .checked_add(issue.amount.0)
            .filter(|issued| self.state.supply.0.checked_add(*issued).is_some())
            .ok_or(Violation::SupplyOverflow)?;
        account.balance = Amount(
            account
                .balance
                .0
                .checked_add(issue.amount.0)
                .ok_or(Violation::BalanceOverflow { account: issue.to })?,
        );
        self.issued = issued;
        self.touched.insert(issue.to, account);
        Ok(())
    }
}
