//! `halfveil`: one binary for every node and every user.
//!
//! Node operators run `halfveil start --home DIR`; payers, bank operators and auditors use
//! the client commands, which talk to a node over JSON-RPC or read files. Exit codes: 0 ok,
//! 1 error, 2 usage, 3 verification failed, 4 node unreachable.

mod commands;
mod failure;
mod output;
mod password;
// Account keys and nonces are used by `account open` and `pay`, which come with the node.
#[allow(dead_code)]
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::failure::CommandResult;
use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "halfveil",
    version,
    about = "Semi-anonymous payments: identity manager, banks, payers and auditors"
)]
struct Cli {
    /// Output format of client commands.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up a local network.
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// Check a genesis file.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// The payer's encrypted wallet.
    #[command(subcommand)]
    Wallet(WalletCommand),
}

#[derive(Debug, Subcommand)]
enum TestnetCommand {
    /// Write the genesis, one home per node and the auditors' keys of a network on 127.0.0.1.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2)]
        banks: usize,
        #[arg(long, default_value_t = 3)]
        auditors: usize,
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        #[arg(long, default_value = "halfveil-testnet")]
        chain_id: String,
        /// First port (node i uses base + 10 i .. + 3); free ports are picked when absent.
        #[arg(long)]
        base_port: Option<u16>,
        /// Encrypt every key with the password in this file (else `HALFVEIL_PASSWORD`, else
        /// a random password per node, kept in its home).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum GenesisCommand {
    /// Check every field and signature; exit 3 if the file is not a valid genesis.
    Validate { file: PathBuf },
    /// Print the genesis hash.
    Hash { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum WalletCommand {
    /// Create an empty wallet for the chain of a genesis file.
    Create {
        #[arg(long)]
        wallet: PathBuf,
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// List a wallet's accounts.
    Show {
        #[arg(long)]
        wallet: PathBuf,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> CommandResult {
    let output = cli.output;
    match cli.command {
        Command::Testnet(TestnetCommand::Init {
            dir,
            banks,
            auditors,
            threshold,
            chain_id,
            base_port,
            password_file,
        }) => commands::testnet::init(
            &commands::testnet::InitOptions {
                dir,
                banks,
                auditors,
                threshold,
                chain_id,
                base_port,
                password_file,
            },
            output,
        ),
        Command::Genesis(GenesisCommand::Validate { file }) => {
            commands::genesis::validate(&file, output)
        }
        Command::Genesis(GenesisCommand::Hash { file }) => commands::genesis::hash(&file, output),
        Command::Wallet(WalletCommand::Create {
            wallet,
            genesis,
            password_file,
        }) => commands::wallet::create(&wallet, &genesis, password_file.as_deref(), output),
        Command::Wallet(WalletCommand::Show {
            wallet,
            password_file,
        }) => commands::wallet::show(&wallet, password_file.as_deref(), output),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
