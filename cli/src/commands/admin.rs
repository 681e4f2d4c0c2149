//! Operator commands over a node's admin RPC, authorised by the token in its home:
//! `issue` (identity manager), `bank freeze|unfreeze|limits` (a bank).

use std::path::Path;

use halfveil_node::rpc::{AccountInfo, AdminApiClient, BankLimits};
use rand_core::{OsRng, RngCore};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::client::{block_on, AdminAccess, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

#[derive(Debug, Serialize)]
pub struct Issued {
    pub account: String,
    pub amount: u64,
    pub reference: u64,
    pub height: u64,
}

/// Issues `amount` into `to`; returns once the block holding it is committed.
pub async fn issue_with(
    access: &AdminAccess,
    to: &str,
    amount: u64,
    reference: Option<u64>,
) -> Result<Issued, Failure> {
    if amount == 0 {
        return Err(Failure::usage("--amount must be positive"));
    }
    let reference = reference.unwrap_or_else(|| OsRng.next_u64());
    let node = Node::connect(&access.url).await?;
    let committed = node
        .client
        .issue(
            access.token.expose_secret().to_owned(),
            to.to_owned(),
            amount,
            reference,
        )
        .await
        .map_err(|error| node.failure(error))?;
    Ok(Issued {
        account: to.to_owned(),
        amount,
        reference,
        height: committed.height,
    })
}

pub fn issue(
    home: &Path,
    to: &str,
    amount: u64,
    reference: Option<u64>,
    output: OutputFormat,
) -> CommandResult {
    let access = AdminAccess::from_home(home)?;
    let issued = block_on(issue_with(&access, to, amount, reference))??;
    emit(output, &issued, || {
        format!(
            "issued {} to {} in block {}",
            issued.amount, issued.account, issued.height
        )
    });
    Ok(())
}

/// What a bank operator changes on one account.
#[derive(Clone, Copy, Debug)]
pub enum BankChange {
    Freeze,
    Unfreeze,
    Limits(BankLimits),
}

pub async fn change_with(
    access: &AdminAccess,
    account: &str,
    change: BankChange,
) -> Result<AccountInfo, Failure> {
    let node = Node::connect(&access.url).await?;
    let token = access.token.expose_secret().to_owned();
    let account = account.to_owned();
    let answer = match change {
        BankChange::Freeze => node.client.freeze(token, account).await,
        BankChange::Unfreeze => node.client.unfreeze(token, account).await,
        BankChange::Limits(limits) => node.client.set_limits(token, account, limits).await,
    };
    answer.map_err(|error| node.failure(error))
}

pub fn bank_change(
    home: &Path,
    account: &str,
    change: BankChange,
    output: OutputFormat,
) -> CommandResult {
    let access = AdminAccess::from_home(home)?;
    let info = block_on(change_with(&access, account, change))??;
    emit(output, &info, || {
        let limits = info.limits.unwrap_or_default();
        format!(
            "{}  balance {}  frozen {}  limits: payment {} daily {} receive {} (0 = none)",
            info.account,
            info.balance,
            info.frozen.unwrap_or(false),
            limits.payment_max,
            limits.daily_max,
            limits.receive_max
        )
    });
    Ok(())
}
