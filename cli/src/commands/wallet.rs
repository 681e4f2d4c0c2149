//! `halfveil wallet create|show|export|import`: the payer's encrypted wallet.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use halfveil_genesis::Genesis;
use serde::Serialize;

use crate::failure::CommandResult;
use crate::output::{emit, OutputFormat};
use crate::password;
use crate::wallet::Wallet;

/// `halfveil wallet`: the payer's encrypted wallet.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create an empty wallet for the chain of a genesis file.
    Create(CreateArgs),
    /// List a wallet's accounts.
    Show(ShowArgs),
    /// Write a backup of the wallet, encrypted under its own password.
    Export(ExportArgs),
    /// Restore a wallet from a backup, under a new password.
    Import(ImportArgs),
}

impl WalletCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            WalletCommand::Create(args) => args.execute(output),
            WalletCommand::Show(args) => args.execute(output),
            WalletCommand::Export(args) => args.execute(output),
            WalletCommand::Import(args) => args.execute(output),
        }
    }
}

/// `halfveil wallet create`: a new, empty wallet file.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub wallet: PathBuf,
    #[arg(long)]
    pub genesis: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `halfveil wallet show`: a wallet's accounts.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long)]
    pub wallet: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `halfveil wallet export`: a backup file of the wallet, under a backup password.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub wallet: PathBuf,
    /// The backup file (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// The backup's password (asked twice when not given).
    #[arg(long)]
    pub backup_password_file: Option<PathBuf>,
}

/// `halfveil wallet import`: a wallet restored from a backup.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub backup: PathBuf,
    /// The restored wallet (never overwritten).
    #[arg(long)]
    pub wallet: PathBuf,
    #[arg(long)]
    pub backup_password_file: Option<PathBuf>,
    /// The restored wallet's password (asked twice when not given).
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Serialize)]
struct Copied {
    from: String,
    to: String,
    accounts: usize,
}

impl ExportArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let password = password::obtain(
            self.password_file.as_deref(),
            &format!("wallet {}", self.wallet.display()),
        )?;
        let wallet = Wallet::open(&self.wallet, password)?;
        let backup_password =
            password::obtain_new(self.backup_password_file.as_deref(), "the backup")?;
        wallet.copy_to(&self.out, backup_password)?;
        let report = Copied {
            from: self.wallet.display().to_string(),
            to: self.out.display().to_string(),
            accounts: wallet.accounts().len(),
        };
        emit(output, &report, || {
            format!(
                "backup of {} ({} accounts) written to {}; export again after a key rotation, which a backup does not follow",
                report.from, report.accounts, report.to
            )
        });
        Ok(())
    }
}

impl ImportArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let backup_password = password::obtain(self.backup_password_file.as_deref(), "the backup")?;
        let backup = Wallet::open(&self.backup, backup_password)?;
        let password = password::obtain_new(
            self.password_file.as_deref(),
            &format!("new wallet {}", self.wallet.display()),
        )?;
        let restored = backup.copy_to(&self.wallet, password)?;
        let report = Copied {
            from: self.backup.display().to_string(),
            to: self.wallet.display().to_string(),
            accounts: restored.accounts().len(),
        };
        emit(output, &report, || {
            format!(
                "wallet {} restored from {} ({} accounts)",
                report.to, report.from, report.accounts
            )
        });
        Ok(())
    }
}

impl CreateArgs {
    /// Creates an empty wallet for the chain of `genesis`.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (wallet, genesis, password_file) =
            (&self.wallet, &self.genesis, self.password_file.as_deref());
        let genesis = Genesis::load(genesis)?;
        let password =
            password::obtain_new(password_file, &format!("new wallet {}", wallet.display()))?;
        let created = Wallet::create(
            wallet,
            password,
            &genesis.genesis.body.chain_id,
            &genesis.hash.to_hex(),
        )?;
        #[derive(Serialize)]
        struct Created {
            wallet: String,
            chain_id: String,
        }
        let report = Created {
            wallet: wallet.display().to_string(),
            chain_id: created.chain_id().to_owned(),
        };
        emit(output, &report, || {
            format!(
                "created wallet {} for chain {}",
                report.wallet, report.chain_id
            )
        });
        Ok(())
    }
}

impl ShowArgs {
    /// Lists a wallet's accounts (never its keys).
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (wallet, password_file) = (&self.wallet, self.password_file.as_deref());
        let password = password::obtain(password_file, &format!("wallet {}", wallet.display()))?;
        let opened = Wallet::open(wallet, password)?;
        #[derive(Serialize)]
        struct Entry {
            account: String,
            bank: String,
            next_nonce: u64,
        }
        #[derive(Serialize)]
        struct Shown {
            chain_id: String,
            genesis_hash: String,
            accounts: Vec<Entry>,
        }
        let report = Shown {
            chain_id: opened.chain_id().to_owned(),
            genesis_hash: opened.genesis_hash().to_owned(),
            accounts: opened
                .accounts()
                .iter()
                .map(|account| Entry {
                    account: account.account.clone(),
                    bank: account.bank.clone(),
                    next_nonce: account.next_nonce,
                })
                .collect(),
        };
        emit(output, &report, || {
            let mut text = format!(
                "wallet for chain {} ({} accounts)",
                report.chain_id,
                report.accounts.len()
            );
            for entry in &report.accounts {
                text.push_str(&format!(
                    "\n  {}  at {}  next nonce {}",
                    entry.account, entry.bank, entry.next_nonce
                ));
            }
            text
        });
        Ok(())
    }
}
