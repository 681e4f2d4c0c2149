//! A bank's accounts as its checks see them: status and limits, the business key that opens
//! their envelopes, and what each payer spent today.

use halfveil_ledger::crypto::BusinessKey;
use halfveil_ledger::fastmap::{HashMap, HashMapExt};
use halfveil_ledger::{AccountId, RejectCode, TimeMs, TransactionRequest};
use serde::{Deserialize, Serialize};

/// Milliseconds in a UTC day: daily limits count per calendar day of the bank's clock.
const DAY_MS: u64 = 86_400_000;

/// A bank's limits on one account, in the smallest unit; 0 means no limit.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BankLimits {
    pub payment_max: u64,
    pub daily_max: u64,
    pub receive_max: u64,
}

/// One account this bank runs.
#[derive(Debug)]
pub struct LocalAccount {
    business_key: BusinessKey,
    pub frozen: bool,
    pub limits: BankLimits,
    /// Committed on chain (the IM answered).
    pub opened: bool,
}

impl LocalAccount {
    pub fn new(business_key: BusinessKey, frozen: bool, limits: BankLimits, opened: bool) -> Self {
        LocalAccount {
            business_key,
            frozen,
            limits,
            opened,
        }
    }

    /// The key its holder seals envelopes with (stored sealed by the shell).
    pub fn business_key(&self) -> &BusinessKey {
        &self.business_key
    }
}

/// Why a check refused: the code the signed refusal carries, and a line for the payer.
pub type Refused = (RejectCode, String);

/// The bank's checks of a payer's request: an account of this bank, not frozen, within its
/// per-payment and daily limits. Expiry is judged by the identity manager alone: its block
/// time is the chain's clock, and a bank's clock may drift.
pub fn check_payer(
    account: Option<&LocalAccount>,
    request: &TransactionRequest,
    spent_today: u64,
) -> Result<(), Refused> {
    let amount = request.transfer.amount.0;
    let Some(local) = account else {
        return Err((
            RejectCode::UnknownAccount,
            "not an account of this bank".into(),
        ));
    };
    if local.frozen {
        return Err((
            RejectCode::AccountFrozen,
            "the payer's account is frozen".into(),
        ));
    }
    let limits = local.limits;
    if limits.payment_max > 0 && amount > limits.payment_max {
        return Err((
            RejectCode::LimitExceeded,
            format!("above the per-payment limit of {}", limits.payment_max),
        ));
    }
    if limits.daily_max > 0 && spent_today.saturating_add(amount) > limits.daily_max {
        return Err((
            RejectCode::LimitExceeded,
            format!("above the daily limit of {}", limits.daily_max),
        ));
    }
    Ok(())
}

/// May `account` receive `amount`? Open, not frozen, within its receive limit.
pub fn check_payee(account: Option<&LocalAccount>, amount: u64) -> Result<(), Refused> {
    let refused = |code, detail: &str| Err((code, detail.to_owned()));
    match account {
        None => refused(
            RejectCode::UnknownAccount,
            "the payee is not an account of this bank",
        ),
        Some(local) if !local.opened => refused(
            RejectCode::UnknownAccount,
            "the payee's account is not open",
        ),
        Some(local) if local.frozen => {
            refused(RejectCode::AccountFrozen, "the payee's account is frozen")
        }
        Some(local) if local.limits.receive_max > 0 && amount > local.limits.receive_max => {
            refused(RejectCode::LimitExceeded, "above the payee's receive limit")
        }
        Some(_) => Ok(()),
    }
}

/// What each payer spent on the current UTC day (in memory: a restart forgets it; see the
/// operator guide).
#[derive(Debug, Default)]
pub struct Spending {
    by_payer: HashMap<AccountId, (u64, u64)>,
}

fn day_of(time: TimeMs) -> u64 {
    time.0.checked_div(DAY_MS).unwrap_or_default()
}

impl Spending {
    pub fn new() -> Self {
        Spending {
            by_payer: HashMap::new(),
        }
    }

    /// What `payer` spent on the day of `now`.
    pub fn today(&self, payer: &AccountId, now: TimeMs) -> u64 {
        match self.by_payer.get(payer) {
            Some((day, spent)) if *day == day_of(now) => *spent,
            _ => 0,
        }
    }

    /// Counts `amount` in what `payer` spent on the day of `now`.
    pub fn add(&mut self, payer: AccountId, now: TimeMs, amount: u64) {
        let day = day_of(now);
        let entry = self.by_payer.entry(payer).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        entry.1 = entry.1.saturating_add(amount);
    }

    /// Gives back `amount` of a payment that was refused after it was counted.
    pub fn refund(&mut self, payer: &AccountId, amount: u64) {
        if let Some((_, spent)) = self.by_payer.get_mut(payer) {
            *spent = spent.saturating_sub(amount);
        }
    }
}
