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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use halfveil_node::rpc::BankLimits;

use clap::{Parser, Subcommand};

use crate::commands::admin::BankChange;
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
    /// Run a node (identity manager or bank, as its keys and genesis say) until SIGINT/SIGTERM.
    Start {
        #[arg(long)]
        home: PathBuf,
    },
    /// Start an identity manager and two banks on 127.0.0.1 and make real payments.
    Demo {
        /// The data folder, left for inspection (replaced if an earlier demo made it).
        #[arg(long, default_value = "halfveil-demo")]
        dir: PathBuf,
    },
    /// Crash cycles against a local IM and two banks under steady payments; checks that no
    /// acknowledged transfer is lost or doubled and that the nodes converge.
    Chaos(commands::chaos::ChaosArgs),
    /// Measure committed transfers per second and latency of a local IM and two banks.
    Bench {
        /// The data folder (replaced if an earlier bench made it).
        #[arg(long, default_value = "halfveil-bench")]
        dir: PathBuf,
        /// Offered transfers per second (the first rate with --ramp).
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Seconds of load per rate.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 1_000)]
        accounts: usize,
        /// Raise the rate (5k, 10k, 20k, 30k, ...) until the network falls behind.
        #[arg(long)]
        ramp: bool,
        /// Where to write the JSON report (default DIR/bench.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Attach to running nodes instead of starting a network: the RPC address of the
        /// identity manager and of two or more banks (repeat the flag).
        #[arg(long, requires = "im_home")]
        rpc: Vec<String>,
        /// With --rpc: the identity manager's home folder (its admin endpoint and token fund
        /// the bench's accounts).
        #[arg(long)]
        im_home: Option<PathBuf>,
    },
    /// Open or look at accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Pay from a wallet's account; waits for the result and verifies the receipt.
    Pay {
        #[arg(long)]
        wallet: PathBuf,
        /// The paying account (needed when the wallet holds several).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
        #[arg(long, default_value = "")]
        memo: String,
        /// Seconds the transfer stays valid.
        #[arg(long, default_value_t = 60)]
        expires_in: u64,
        /// Seconds to wait for the result.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Also write the receipt (hex of its canonical encoding) to this file.
        #[arg(long)]
        receipt_out: Option<PathBuf>,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Check receipts offline.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Create currency into an account (identity manager operator).
    Issue {
        /// The identity manager's home folder (for its admin endpoint and token).
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
        /// A reference recorded with the issue (random when absent).
        #[arg(long)]
        reference: Option<u64>,
    },
    /// Bank operator commands.
    #[command(subcommand)]
    Bank(BankCommand),
    /// Read the chain from a node.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Replay and verify the chain; threshold disclosure.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Look up a transfer.
    #[command(subcommand)]
    Transfer(TransferCommand),
    /// A node's status.
    Status {
        #[arg(long)]
        rpc: String,
    },
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
enum AccountCommand {
    /// Open an account at a bank; prints the new account id.
    Open {
        /// The bank's RPC URL.
        #[arg(long)]
        bank: String,
        /// The wallet that keeps the account's keys (created if missing).
        #[arg(long)]
        wallet: PathBuf,
        /// The holder's name: sealed to the identity manager, never seen by the bank.
        #[arg(long)]
        name: String,
        #[arg(long)]
        national_id: String,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Balances and status, from each account's bank or from a node.
    Show {
        #[arg(long, conflicts_with_all = ["account", "rpc"], required_unless_present = "account")]
        wallet: Option<PathBuf>,
        #[arg(long, requires = "rpc")]
        account: Option<String>,
        #[arg(long)]
        rpc: Option<String>,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Check a receipt against the identity manager's key in a genesis file; exit 3 if it
    /// does not verify.
    Verify {
        #[arg(long)]
        genesis: PathBuf,
        /// A file holding the receipt's hex (as `pay --receipt-out` writes it).
        receipt: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BankCommand {
    /// Stop an account from paying or receiving.
    Freeze {
        #[arg(long)]
        home: PathBuf,
        account: String,
    },
    Unfreeze {
        #[arg(long)]
        home: PathBuf,
        account: String,
    },
    /// Set an account's limits (0 = none).
    Limits {
        #[arg(long)]
        home: PathBuf,
        account: String,
        #[arg(long, default_value_t = 0)]
        payment_max: u64,
        #[arg(long, default_value_t = 0)]
        daily_max: u64,
        #[arg(long, default_value_t = 0)]
        receive_max: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ChainCommand {
    /// Write blocks (default: all) with the genesis to a chain file.
    Export {
        #[arg(long)]
        rpc: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
    },
    /// Verify a chain file's blocks and add them to a stopped node's store.
    Import {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        home: PathBuf,
    },
    /// The node's head block.
    Head {
        #[arg(long)]
        rpc: String,
    },
    /// A block by height (the head when no height is given).
    Block {
        #[arg(long)]
        rpc: String,
        #[arg(long)]
        height: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every block from genesis; exit 3 at the first violation.
    Replay {
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        rpc: Option<String>,
        /// A chain file from `halfveil chain export`.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Stop after this height.
        #[arg(long)]
        to: Option<u64>,
        /// A genesis the auditor trusts; the chain's genesis must be this one.
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    /// Create a requester's key (disclosure results are sealed to it).
    RequesterKey {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Disclosure orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Have the identity manager serve an order signed by a quorum of auditors.
    Disclose {
        /// The identity manager's RPC URL.
        #[arg(long)]
        rpc: String,
        #[arg(long)]
        order: PathBuf,
        /// The requester's key file (the result is sealed to it).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Write a new, unsigned order to reveal one transfer's payer.
    New {
        #[arg(long)]
        transfer: String,
        /// The legal basis; the chain records only its hash.
        #[arg(long)]
        basis: String,
        #[arg(long)]
        requester_key: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The chain's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// Seconds the order stays valid.
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        expires_in: u64,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Add one auditor's signature to an order.
    Sign {
        #[arg(long)]
        key: PathBuf,
        order: PathBuf,
        #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TransferCommand {
    /// A transfer's status at a node.
    Status {
        #[arg(long)]
        rpc: String,
        id: String,
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
        Command::Start { home } => commands::node::start(&home),
        Command::Demo { dir } => commands::demo::demo(&dir, output),
        Command::Chaos(args) => args.execute(output),
        Command::Bench {
            dir,
            rate,
            duration,
            accounts,
            ramp,
            out,
            rpc,
            im_home,
        } => commands::bench::bench(
            &commands::bench::BenchOptions {
                dir,
                rate,
                duration: Duration::from_secs(duration),
                accounts,
                ramp,
                out,
                rpc,
                im_home,
            },
            output,
        ),
        Command::Account(AccountCommand::Open {
            bank,
            wallet,
            name,
            national_id,
            password_file,
        }) => commands::account::open(
            &bank,
            &wallet,
            password_file.as_deref(),
            &commands::account::Holder { name, national_id },
            output,
        ),
        Command::Account(AccountCommand::Show {
            wallet,
            account,
            rpc,
            password_file,
        }) => {
            let target = match (wallet, account, rpc) {
                (Some(path), _, _) => commands::account::ShowTarget::Wallet {
                    path,
                    password_file,
                },
                (None, Some(account), Some(rpc)) => {
                    commands::account::ShowTarget::Account { account, rpc }
                }
                _ => {
                    return Err(failure::Failure::usage(
                        "give --wallet FILE, or --account ID with --rpc URL",
                    ))
                }
            };
            commands::account::show(target, output)
        }
        Command::Pay {
            wallet,
            from,
            to,
            amount,
            memo,
            expires_in,
            wait,
            receipt_out,
            password_file,
        } => commands::pay::pay(
            &wallet,
            password_file.as_deref(),
            receipt_out.as_deref(),
            &commands::pay::PayOrder {
                from,
                to,
                amount,
                memo,
                expires_in: Duration::from_secs(expires_in),
                wait: Duration::from_secs(wait),
            },
            output,
        ),
        Command::Receipt(ReceiptCommand::Verify { genesis, receipt }) => {
            commands::pay::verify_receipt(&genesis, &receipt, output)
        }
        Command::Issue {
            home,
            to,
            amount,
            reference,
        } => commands::admin::issue(&home, &to, amount, reference, output),
        Command::Bank(BankCommand::Freeze { home, account }) => {
            commands::admin::bank_change(&home, &account, BankChange::Freeze, output)
        }
        Command::Bank(BankCommand::Unfreeze { home, account }) => {
            commands::admin::bank_change(&home, &account, BankChange::Unfreeze, output)
        }
        Command::Bank(BankCommand::Limits {
            home,
            account,
            payment_max,
            daily_max,
            receive_max,
        }) => commands::admin::bank_change(
            &home,
            &account,
            BankChange::Limits(BankLimits {
                payment_max,
                daily_max,
                receive_max,
            }),
            output,
        ),
        Command::Chain(ChainCommand::Head { rpc }) => commands::chain::head(&rpc, output),
        Command::Chain(ChainCommand::Export { rpc, out, from, to }) => {
            commands::audit::export(&rpc, &out, from, to, output)
        }
        Command::Chain(ChainCommand::Import { file, home }) => {
            commands::audit::import(&file, &home, output)
        }
        Command::Audit(AuditCommand::Replay {
            rpc,
            file,
            to,
            genesis,
        }) => {
            let source = match (rpc, file) {
                (Some(rpc), None) => commands::audit::Source::Rpc(rpc),
                (None, Some(file)) => commands::audit::Source::File(file),
                _ => return Err(failure::Failure::usage("give --rpc URL or --file FILE")),
            };
            commands::audit::replay(&source, to, genesis.as_deref(), output)
        }
        Command::Audit(AuditCommand::RequesterKey { out, password_file }) => {
            commands::audit::requester_key(&out, password_file.as_deref(), output)
        }
        Command::Audit(AuditCommand::Order(OrderCommand::New {
            transfer,
            basis,
            requester_key,
            out,
            genesis,
            expires_in,
            password_file,
        })) => commands::audit::order_new(
            &commands::audit::NewOrder {
                transfer,
                basis,
                requester_key,
                out,
                genesis,
                expires_in: Duration::from_secs(expires_in),
                password_file,
            },
            output,
        ),
        Command::Audit(AuditCommand::Order(OrderCommand::Sign {
            key,
            order,
            password_file,
        })) => commands::audit::order_sign(&order, &key, password_file.as_deref(), output),
        Command::Audit(AuditCommand::Disclose {
            rpc,
            order,
            key,
            password_file,
        }) => commands::audit::disclose(&rpc, &order, &key, password_file.as_deref(), output),
        Command::Chain(ChainCommand::Block { rpc, height }) => {
            commands::chain::block(&rpc, height, output)
        }
        Command::Transfer(TransferCommand::Status { rpc, id }) => {
            commands::chain::transfer_status(&rpc, &id, output)
        }
        Command::Status { rpc } => commands::chain::status(&rpc, output),
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
    let result = run(cli);
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
