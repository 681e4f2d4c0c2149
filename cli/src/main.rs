//! `halfveil`: one binary for every node and every user.
//!
//! Node operators run `halfveil start --home DIR`; payers, bank operators and auditors use
//! the client commands, which talk to a node over JSON-RPC or read files. Exit codes: 0 ok,
//! 1 error, 2 usage, 3 verification failed, 4 node unreachable, 5 payment refused.

mod chainfile;
mod client;
mod cluster;
mod commands;
mod failure;
mod output;
mod password;
mod wallet;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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

/// The commands of `halfveil`; each lives in its own module under `commands/`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (identity manager or bank, as its keys and genesis say) until SIGINT/SIGTERM.
    Start(commands::node::StartArgs),
    /// Start an identity manager and two banks on 127.0.0.1 and make real payments.
    Demo(commands::demo::DemoArgs),
    /// Crash cycles against a local IM and two banks under steady payments; checks that no
    /// acknowledged transfer is lost or doubled and that the nodes converge.
    Chaos(commands::chaos::ChaosArgs),
    /// Measure committed transfers per second and latency of a local IM and two banks.
    Bench(commands::bench::BenchArgs),
    /// Open or look at accounts.
    #[command(subcommand)]
    Account(commands::account::AccountCommand),
    /// Pay from a wallet's account; waits for the result and verifies the receipt.
    Pay(commands::pay::PayArgs),
    /// Check receipts offline.
    #[command(subcommand)]
    Receipt(commands::receipt::ReceiptCommand),
    /// Create currency into an account (identity manager operator).
    Issue(commands::admin::IssueArgs),
    /// Bank operator commands.
    #[command(subcommand)]
    Bank(commands::admin::BankCommand),
    /// Read the chain from a node.
    #[command(subcommand)]
    Chain(commands::chain::ChainCommand),
    /// Replay and verify the chain; threshold disclosure.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Look up a transfer.
    #[command(subcommand)]
    Transfer(commands::transfer::TransferCommand),
    /// A node's status.
    Status(commands::status::StatusArgs),
    /// Make this party's keys (an IM replica, a bank or an auditor) for a genesis assembled
    /// from several machines; prints the public part to hand over.
    Init(commands::init::InitArgs),
    /// Set up a local network.
    #[command(subcommand)]
    Testnet(commands::testnet::TestnetCommand),
    /// Check a genesis file; draft, sign and assemble one across machines.
    #[command(subcommand)]
    Genesis(commands::genesis::GenesisCommand),
    /// Key ceremonies: the disclosure key's distributed generation among its holders.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// The payer's encrypted wallet.
    #[command(subcommand)]
    Wallet(commands::wallet::WalletCommand),
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Print a shell completion script
    Completions(commands::shell::CompletionsArgs),
    /// Write the man pages
    Man(commands::shell::ManArgs),
}

impl Command {
    /// Runs the command; `output` is the format of what it prints.
    fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            Command::Start(args) => args.execute(),
            Command::Demo(args) => args.execute(output),
            Command::Chaos(args) => args.execute(output),
            Command::Bench(args) => args.execute(output),
            Command::Account(command) => command.execute(output),
            Command::Pay(args) => args.execute(output),
            Command::Receipt(command) => command.execute(output),
            Command::Issue(args) => args.execute(output),
            Command::Bank(command) => command.execute(output),
            Command::Chain(command) => command.execute(output),
            Command::Audit(command) => command.execute(output),
            Command::Transfer(command) => command.execute(output),
            Command::Status(args) => args.execute(output),
            Command::Init(args) => args.execute(output),
            Command::Testnet(command) => command.execute(output),
            Command::Genesis(command) => command.execute(output),
            Command::Keys(command) => command.execute(output),
            Command::Wallet(command) => command.execute(output),
            Command::Config(command) => command.execute(output),
            Command::Completions(args) => args.execute(Cli::command()),
            Command::Man(args) => args.execute(Cli::command(), output),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_format(cli.output);
    let result = cli.command.execute(cli.output);
    // Every database is closed by now; RocksDB's threads must end before the process does.
    halfveil_store::join_background_threads();
    // A reader that left (`| head`) is no failure of the command; a write that failed is.
    let result = result.and_then(|()| match output::output_state() {
        output::OutputState::Failed => {
            Err(failure::Failure::error("cannot write to standard output"))
        }
        output::OutputState::Open | output::OutputState::Closed => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            output::note!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
