//! `halfveil demo`: the whole product on one machine. It writes a testnet, starts an
//! identity manager and two banks on 127.0.0.1 as separate processes, opens accounts at
//! both banks, issues money, pays across banks, prints every receipt (verified against the
//! IM's key in genesis) and the balances as every node sees them, shows a frozen account's
//! payment refused, and stops the nodes cleanly. The data folder stays for inspection.
//! With `--im-replicas 3` (or 5) the identity manager is a group of replicas: the demo
//! kills the leading one (SIGKILL) after the first payment, the others go on, and the
//! killed replica is restarted and catches up before the balances are compared.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use halfveil_genesis::keystore;
use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use serde::Serialize;

use crate::client::{block_on, AdminAccess};
use crate::cluster::Cluster;
use crate::commands::account::{account_at, open_account, Holder, OpenedReport};
use crate::commands::admin::{change_with, issue_with, BankChange};
use crate::commands::pay::{pay_with, render, Outcome, PayOrder};
use crate::commands::testnet::{InitOptions, InitSummary};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::wallet::Wallet;

/// `halfveil demo`: the whole product on one machine (see the module doc).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The data folder, left for inspection (replaced if an earlier demo made it).
    #[arg(long, default_value = "halfveil-demo")]
    pub dir: PathBuf,
    /// How many identity manager replicas (1, 3 or 5). With more than one, the demo kills
    /// the leading replica midway through its payments, shows payments go on, and
    /// restarts it to catch up.
    #[arg(long, default_value_t = 1)]
    pub im_replicas: usize,
}

const READY_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(20);
/// How long the demo waits for a leading replica.
const LEADER_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize)]
struct Balance {
    holder: String,
    account: String,
    bank: String,
    /// Node name and the balance it reports.
    seen_by: Vec<(String, u64)>,
}

#[derive(Debug, Serialize)]
struct DemoReport {
    dir: String,
    chain_id: String,
    genesis_hash: String,
    accounts: Vec<OpenedReport>,
    payments: Vec<Outcome>,
    /// With replicas: the leading replica killed after the first payment, as receipts name
    /// it (`IM replica N`).
    killed_replica: Option<String>,
    balances: Vec<Balance>,
    frozen_payment: Outcome,
    nodes_stopped_cleanly: bool,
}

struct Person {
    name: &'static str,
    national_id: &'static str,
    bank: &'static str,
}

const PEOPLE: [Person; 3] = [
    Person {
        name: "Alice Example",
        national_id: "AE-1970-0001",
        bank: "bank-1",
    },
    Person {
        name: "Bob Example",
        national_id: "BE-1980-0002",
        bank: "bank-2",
    },
    Person {
        name: "Carol Example",
        national_id: "CE-1990-0003",
        bank: "bank-1",
    },
];

impl DemoArgs {
    /// Runs the demo in `--dir`, then stops the nodes whether or not its steps succeeded.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let dir = &self.dir;
        let text = output == OutputFormat::Text;
        let say = |line: String| {
            if text {
                crate::output::print_line(&line);
            }
        };
        crate::cluster::prepare_dir(dir, "demo")?;
        let (network, mut cluster) = launch(dir, self.im_replicas, &say)?;
        let result = block_on(run_demo(&mut cluster, dir, &say))?;
        let clean = stop(&mut cluster, &say);
        let (accounts, (payments, killed_replica), balances, frozen_payment) = result?;
        say(format!(
            "== done. Data, logs, wallets and keys are in {} for inspection.",
            dir.display()
        ));
        let report = DemoReport {
            dir: dir.display().to_string(),
            chain_id: network.chain_id.clone(),
            genesis_hash: network.genesis_hash.clone(),
            accounts,
            payments,
            killed_replica,
            balances,
            frozen_payment,
            nodes_stopped_cleanly: clean,
        };
        if !text {
            emit(output, &report, String::new);
        }
        if !clean {
            return Err(Failure::error("a node did not stop cleanly; see its log"));
        }
        Ok(())
    }
}

/// Writes the demo's network under `dir` and starts its nodes; says where they listen.
fn launch(
    dir: &Path,
    im_replicas: usize,
    say: &impl Fn(String),
) -> Result<(InitSummary, Cluster), Failure> {
    let network_dir = dir.join("network");
    let network_options = InitOptions {
        im_replicas,
        ..InitOptions::local(network_dir.clone(), "halfveil-demo")
    };
    say(match im_replicas {
        1 => {
            "== writing a network; starting the identity manager and two banks on 127.0.0.1".into()
        }
        n => format!(
            "== writing a network; starting {n} identity manager replicas and two banks on \
             127.0.0.1"
        ),
    });
    let (network, cluster, statuses) = block_on(Cluster::launch(
        &network_options,
        &dir.join("logs"),
        READY_LIMIT,
    ))??;
    say(format!(
        "  network {} (genesis {}) in {}",
        network.chain_id,
        network.genesis_hash,
        network_dir.display()
    ));
    for (node, status) in cluster.nodes.iter().zip(&statuses) {
        say(format!(
            "  {:<7} {:<17} rpc {}  peer {}",
            node.name, status.role, node.rpc, status.peer_id
        ));
    }
    Ok((network, cluster))
}

/// Stops the nodes and says how each ended; true when every one stopped cleanly.
fn stop(cluster: &mut Cluster, say: &impl Fn(String)) -> bool {
    let stopped = cluster.stop(STOP_LIMIT);
    let clean = stopped
        .iter()
        .all(|(_, status)| status.is_some_and(|status| status.success()));
    say("== stopping the nodes".into());
    for (name, status) in &stopped {
        say(format!(
            "  {name}: {}",
            match status {
                Some(status) if status.success() => "stopped cleanly".to_owned(),
                Some(status) => format!("exited with {status}"),
                None => "did not stop in time; killed".to_owned(),
            }
        ));
    }
    clean
}

/// The demo's payments, and the replica killed among them (as receipts name it).
type Payments = (Vec<Outcome>, Option<String>);
type DemoResult = (Vec<OpenedReport>, Payments, Vec<Balance>, Outcome);

/// The demo's steps against the running `cluster`, in order.
async fn run_demo(
    cluster: &mut Cluster,
    dir: &Path,
    say: &impl Fn(String),
) -> Result<DemoResult, Failure> {
    let (opened, mut wallets) = open_accounts(cluster, dir, say).await?;
    let accounts: Vec<String> = opened.iter().map(|report| report.account.clone()).collect();
    issue_funds(cluster, &accounts, say).await?;
    let payments = pay_across_banks(cluster, &mut wallets, &accounts, say).await?;
    let frozen_payment = pay_while_frozen(cluster, &mut wallets[2], &accounts, say).await?;
    let balances = balances_everywhere(cluster, &accounts, say).await?;
    Ok((opened, payments, balances, frozen_payment))
}

/// Opens each person's account at their bank, each in its own wallet under `dir`.
async fn open_accounts(
    cluster: &Cluster,
    dir: &Path,
    say: &impl Fn(String),
) -> Result<(Vec<OpenedReport>, Vec<Wallet>), Failure> {
    // One wallet per person, all under one random password kept in the demo folder.
    let password_path = dir.join("wallet-password");
    let mut secret = [0u8; 24];
    OsRng.fill_bytes(&mut secret);
    keystore::write_new_private(&password_path, hex::encode(secret).as_bytes())?;
    let password = || SecretString::from(hex::encode(secret));
    let wallets_dir = dir.join("wallets");
    std::fs::create_dir_all(&wallets_dir)?;

    say("== opening accounts (each bank relays a sealed identity record it cannot read)".into());
    let mut opened = Vec::new();
    let mut wallets = Vec::new();
    for person in &PEOPLE {
        let path: PathBuf = wallets_dir.join(format!(
            "{}.wallet",
            person
                .name
                .split(' ')
                .next()
                .unwrap_or("holder")
                .to_lowercase()
        ));
        let bank_rpc = &cluster.node(person.bank)?.rpc;
        let report = open_account(
            bank_rpc,
            &path,
            password(),
            &Holder {
                name: person.name.into(),
                national_id: person.national_id.into(),
            },
        )
        .await?;
        say(format!(
            "  {:<14} {} at {}",
            person.name, report.account, report.bank
        ));
        wallets.push(Wallet::open(&path, password())?);
        opened.push(report);
    }
    Ok((opened, wallets))
}

/// The identity manager issues money to two of the people.
async fn issue_funds(
    cluster: &Cluster,
    accounts: &[String],
    say: &impl Fn(String),
) -> Result<(), Failure> {
    say("== the identity manager issues money".into());
    let im_admin = AdminAccess::from_home(&cluster.im_leader(LEADER_LIMIT).await?.home)?;
    for (index, amount) in [(0usize, 1_000u64), (2, 300)] {
        let issued = issue_with(&im_admin, &accounts[index], amount, None).await?;
        say(format!(
            "  {amount} to {} ({}) in block {}",
            PEOPLE[index].name, issued.account, issued.height
        ));
    }
    Ok(())
}

/// A demo payment of `amount` to `to`.
fn demo_order(to: &str, amount: u64) -> PayOrder {
    PayOrder {
        from: None,
        to: to.to_owned(),
        amount,
        memo: String::new(),
        expires_in: Duration::from_secs(60),
        wait: Duration::from_secs(30),
    }
}

/// Payments between people at different banks; each must commit. With replicas, the
/// leading one is killed after the first payment and restarted after the last.
async fn pay_across_banks(
    cluster: &mut Cluster,
    wallets: &mut [Wallet],
    accounts: &[String],
    say: &impl Fn(String),
) -> Result<Payments, Failure> {
    say("== payments across banks".into());
    let mut payments = Vec::new();
    let mut killed = None;
    for (step, (from, to, amount)) in [(0usize, 1usize, 250u64), (1, 0, 40), (0, 2, 10)]
        .into_iter()
        .enumerate()
    {
        if step == 1 && cluster.ims.len() > 1 {
            killed = Some(kill_leader(cluster, say).await?);
        }
        say(format!(
            "-- {} pays {} {amount}",
            PEOPLE[from].name, PEOPLE[to].name
        ));
        let outcome = pay_with(&mut wallets[from], &demo_order(&accounts[to], amount)).await?;
        say(render(&outcome));
        if !matches!(outcome, Outcome::Committed { .. }) {
            return Err(Failure::error(format!(
                "a demo payment was refused: {}",
                render(&outcome)
            )));
        }
        payments.push(outcome);
    }
    let Some((name, at)) = killed else {
        return Ok((payments, None));
    };
    say(format!(
        "== {} payments committed in {:.1} s without {name}; restarting it: it catches up \
         from the others' log",
        payments.len() - 1,
        at.elapsed().as_secs_f64()
    ));
    cluster.restart(&name)?;
    let number = name.trim_start_matches("im-");
    Ok((payments, Some(format!("IM replica {number}"))))
}

/// Kills the leading replica without warning (SIGKILL); returns its name and when.
async fn kill_leader(
    cluster: &mut Cluster,
    say: &impl Fn(String),
) -> Result<(String, Instant), Failure> {
    let (name, at) = cluster.kill_leader(LEADER_LIMIT).await?;
    say(format!(
        "== killed the leading replica {name} (SIGKILL); the others elect a new leader"
    ));
    Ok((name, at))
}

/// The third person's bank freezes their account; a payment from it must be refused.
async fn pay_while_frozen(
    cluster: &Cluster,
    wallet: &mut Wallet,
    accounts: &[String],
    say: &impl Fn(String),
) -> Result<Outcome, Failure> {
    say(format!(
        "== {} is frozen by its bank; its payment is refused",
        PEOPLE[2].name
    ));
    let bank_admin = AdminAccess::from_home(&cluster.node(PEOPLE[2].bank)?.home)?;
    change_with(&bank_admin, &accounts[2], BankChange::Freeze).await?;
    let frozen_payment = pay_with(wallet, &demo_order(&accounts[1], 5)).await?;
    say(render(&frozen_payment));
    if matches!(frozen_payment, Outcome::Committed { .. }) {
        return Err(Failure::error("the frozen account's payment was committed"));
    }
    Ok(frozen_payment)
}

/// Every person's balance as every node reports it, once all nodes hold the IM's head;
/// the nodes must agree.
async fn balances_everywhere(
    cluster: &mut Cluster,
    accounts: &[String],
    say: &impl Fn(String),
) -> Result<Vec<Balance>, Failure> {
    say("== balances as every node sees them".into());
    let im_rpc = cluster.im_leader(LEADER_LIMIT).await?.rpc.clone();
    let head = crate::client::Node::connect(&im_rpc).await?;
    let height = halfveil_node::rpc::ApiClient::head(&head.client)
        .await
        .map_err(|error| head.failure(error))?
        .height;
    cluster.wait_height(height, Duration::from_secs(20)).await?;
    let mut balances = Vec::new();
    let names: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .map(|node| (node.name.clone(), node.rpc.clone()))
        .collect();
    say(format!(
        "  {:<14} {:<10} {}",
        "holder",
        "bank",
        names
            .iter()
            .map(|(name, _)| format!("{name:>8}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    for (index, person) in PEOPLE.iter().enumerate() {
        let mut seen_by = Vec::new();
        for (name, rpc) in &names {
            seen_by.push((
                name.clone(),
                account_at(rpc, &accounts[index]).await?.balance,
            ));
        }
        if seen_by.iter().any(|(_, balance)| *balance != seen_by[0].1) {
            return Err(Failure::verification(format!(
                "nodes disagree on {}'s balance: {seen_by:?}",
                person.name
            )));
        }
        say(format!(
            "  {:<14} {:<10} {}",
            person.name,
            person.bank,
            seen_by
                .iter()
                .map(|(_, balance)| format!("{balance:>8}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        balances.push(Balance {
            holder: person.name.into(),
            account: accounts[index].clone(),
            bank: person.bank.into(),
            seen_by,
        });
    }
    Ok(balances)
}
