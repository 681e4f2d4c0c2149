//! Operator commands over a node's admin RPC, authorised by the token in its home:
//! `issue` (identity manager), `bank freeze|unfreeze|limits` (a bank).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_node::rpc::{AccountInfo, AdminApiClient, BankLimits};
use rand_core::{OsRng, RngCore};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::client::{block_on, AdminAccess, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

/// `halfveil issue`: new money into an account, by the identity manager's operator.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The identity manager's home folder (for its admin endpoint and token).
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub amount: u64,
    /// A reference recorded with the issue (random when absent).
    #[arg(long)]
    pub reference: Option<u64>,
}

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

impl IssueArgs {
    /// Issues through the identity manager's admin endpoint; prints the block that holds it.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let access = AdminAccess::from_home(&self.home)?;
        let issued = block_on(issue_with(&access, &self.to, self.amount, self.reference))??;
        emit(output, &issued, || {
            format!(
                "issued {} to {} in block {}",
                issued.amount, issued.account, issued.height
            )
        });
        Ok(())
    }
}

/// `halfveil bank`: a bank operator's changes to one account.
#[derive(Debug, Subcommand)]
pub enum BankCommand {
    /// Stop an account from paying or receiving.
    Freeze(BankAccountArgs),
    Unfreeze(BankAccountArgs),
    /// Set an account's limits (0 = none).
    Limits(LimitsArgs),
}

impl BankCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            BankCommand::Freeze(args) => args.execute(BankChange::Freeze, output),
            BankCommand::Unfreeze(args) => args.execute(BankChange::Unfreeze, output),
            BankCommand::Limits(args) => args.execute(output),
        }
    }
}

// No doc comment on this struct: clap would show it as the help of `bank unfreeze`, which
// has none of its own.
#[derive(Debug, Args)]
pub struct BankAccountArgs {
    #[arg(long)]
    pub home: PathBuf,
    pub account: String,
}

impl BankAccountArgs {
    /// Freezes or unfreezes the account (`change`) at the bank whose home is `--home`.
    pub fn execute(&self, change: BankChange, output: OutputFormat) -> CommandResult {
        bank_change(&self.home, &self.account, change, output)
    }
}

/// `halfveil bank limits`: an account's payment, daily and receive limits.
#[derive(Debug, Args)]
pub struct LimitsArgs {
    #[arg(long)]
    pub home: PathBuf,
    pub account: String,
    #[arg(long, default_value_t = 0)]
    pub payment_max: u64,
    #[arg(long, default_value_t = 0)]
    pub daily_max: u64,
    #[arg(long, default_value_t = 0)]
    pub receive_max: u64,
}

impl LimitsArgs {
    /// Sets the account's limits at the bank whose home is `--home`.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let limits = BankLimits {
            payment_max: self.payment_max,
            daily_max: self.daily_max,
            receive_max: self.receive_max,
        };
        bank_change(
            &self.home,
            &self.account,
            BankChange::Limits(limits),
            output,
        )
    }
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

/// Makes `change` to `account` through the admin endpoint of the bank at `home`; prints
/// the account as it is now.
fn bank_change(
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
