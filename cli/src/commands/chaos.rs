//! `halfveil chaos`: crash cycles against a local network, and what must hold after each.
//!
//! It writes a testnet (an identity manager and two banks, small transfer-index epochs so
//! seals are frequent), opens accounts at both banks and keeps payments flowing through
//! both: one payer task per account, each paying and waiting for its final answer, sending
//! the same envelope again whenever its bank does not answer (a payer's retry). Each cycle
//! SIGKILLs one node chosen at random (the identity manager in at least a third of the
//! cycles) at a random moment, sometimes again while it catches up, and restarts it. After
//! every cycle it checks, from the nodes and from the payers' side:
//! - every transfer a payer got a verified receipt for is on chain exactly once, at the
//!   height and index of its receipt (no acknowledged transfer lost, none applied twice);
//! - an envelope sent again never moves money twice (its answer is the first one's);
//! - all nodes reach the same head hash and state root within `--converge-limit`;
//! - the supply equals what was issued.
//!
//! At the end `audit replay` verifies the whole chain from genesis. The seed is printed
//! first: `--seed` replays the same choices of nodes and moments (with replicas, which one
//! leads at a kill is the election's choice, not the seed's).
//!
//! With `--im-replicas 3` (or 5) the identity manager is a raft group: an IM kill hits the
//! leading replica two times in three, and payments go on through the others meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::crypto::{self, Envelope};
use halfveil_ledger::{
    codec, AccountId, Amount, BankId, Block, Hash32, Memo, Nonce, Op, Receipt, TimeMs, Transfer,
    VERSION,
};
use halfveil_node::rpc::{ApiClient, TransferStatus};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_core::OsRng;
use serde::Serialize;

use crate::client::{AdminAccess, Node};
use crate::cluster::Cluster;
use crate::commands::audit;
use crate::commands::bench::{open_accounts, BenchAccount};
use crate::commands::chain::Source;
use crate::commands::testnet::{InitOptions, InitSummary};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

/// A payer's wait for one answer before it sends the envelope again.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How far ahead a payment expires.
const EXPIRY: Duration = Duration::from_secs(120);
/// How long a cycle waits for a replica to lead.
const LEADER_LIMIT: Duration = Duration::from_secs(30);

/// `halfveil chaos`: crash cycles (see the module doc).
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// The data folder (replaced if an earlier chaos run made it).
    #[arg(long, default_value = "halfveil-chaos")]
    pub dir: PathBuf,
    /// How many kill-and-restart cycles.
    #[arg(long, default_value_t = 10)]
    pub cycles: u32,
    /// The seed of the choices (which node, when); random when not given.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Accounts paying (half at each bank), one payer task each.
    #[arg(long, default_value_t = 20)]
    pub accounts: usize,
    /// Payments per second each payer offers.
    #[arg(long, default_value_t = 5)]
    pub rate_per_payer: u32,
    /// The longest the nodes may take to agree again after a restart, in seconds.
    #[arg(long, default_value_t = 60)]
    pub converge_limit: u64,
    /// How many identity manager replicas (1, 3 or 5). With replicas, two of three IM
    /// kills hit the leading replica, the others a replica chosen at random.
    #[arg(long, default_value_t = 1)]
    pub im_replicas: usize,
}

/// What a chaos run found.
#[derive(Debug, Default, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub cycles: u32,
    pub im_kills: u32,
    /// IM kills that hit the leading replica (all of them with a single IM).
    pub leader_kills: u32,
    pub bank_kills: u32,
    /// Kills of a node again while it caught up after its restart.
    pub catch_up_kills: u32,
    /// Transfers a payer holds a verified receipt for.
    pub acknowledged: u64,
    /// Envelopes sent again after an acknowledgement, each answered with its first receipt.
    pub resubmitted: u64,
    pub refused: BTreeMap<String, u64>,
    /// Acknowledged transfers not on chain where their receipt says.
    pub lost: u64,
    /// Transfers on chain more than once, or answered differently when sent again.
    pub doubled: u64,
    pub convergence_ms: Vec<u64>,
    pub worst_convergence_ms: u64,
    pub supply_conserved: bool,
    pub replay_ok: bool,
    pub head_height: u64,
    /// Snapshots IM replicas installed (restarted behind their leader's purged log), as
    /// their logs say.
    pub snapshots_installed: u64,
}

impl ChaosArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        if self.accounts < 4 || self.rate_per_payer == 0 {
            return Err(Failure::usage(
                "--accounts must be at least 4 and --rate-per-payer positive",
            ));
        }
        let seed = self.seed.unwrap_or_else(|| OsRng.gen());
        crate::output::note!("chaos: seed {seed} (replay the same choices with --seed {seed})");
        crate::cluster::prepare_dir(&self.dir, "chaos")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|error| Failure::error(format!("cannot start the async runtime: {error}")))?;
        let logs = self.dir.join("logs");
        let mut cluster = None;
        let result = runtime.block_on(self.run(seed, &mut cluster));
        let im_rpc = cluster
            .as_ref()
            .and_then(|cluster: &Cluster| cluster.node(cluster.ims.first()?).ok())
            .map(|node| node.rpc.clone());
        let mut report = result.map_err(|failure| {
            failure.context(format!("seed {seed}; node logs are in {}", logs.display()))
        })?;
        if let Some(url) = im_rpc {
            let replayed = audit::replay_chain(&Source::Rpc(url), None, None, OutputFormat::Json);
            report.replay_ok = replayed.is_ok_and(|summary| summary.ok);
        }
        if let Some(cluster) = cluster.as_mut() {
            cluster.stop(Duration::from_secs(30));
        }
        report.snapshots_installed = lines_containing(&logs, SNAPSHOT_INSTALLED);
        emit(output, &report, || summary_line(&report));
        if report.lost > 0 || report.doubled > 0 || !report.supply_conserved || !report.replay_ok {
            return Err(Failure::verification(format!(
                "chaos seed {seed}: {}",
                summary_line(&report)
            )));
        }
        Ok(())
    }

    async fn run(&self, seed: u64, slot: &mut Option<Cluster>) -> Result<ChaosReport, Failure> {
        let network = InitOptions {
            im_replicas: self.im_replicas,
            ..InitOptions::local(self.dir.join("network"), "halfveil-chaos")
        };
        let logs = self.dir.join("logs");
        let (summary, launched, _) =
            Cluster::launch_with(&network, &logs, Duration::from_secs(60), small_epochs).await?;
        let cluster = slot.insert(launched);
        // Blocks are read from the first IM node: every check runs once all nodes agree.
        let im_url = cluster.node(&cluster.ims[0])?.rpc.clone();
        let im_node = Node::connect(&im_url).await?;
        let genesis = im_node.genesis(None).await?;
        let banks = bank_urls(&summary)?;
        let im_admin = AdminAccess::from_home(&cluster.im_leader(LEADER_LIMIT).await?.home)?;
        let supply_before = im_node
            .client
            .head()
            .await
            .map_err(|error| im_node.failure(error))?
            .supply;
        let accounts = open_accounts(&genesis, &banks, &im_admin, self.accounts).await?;
        let issued =
            supply_before + accounts.len() as u64 * crate::commands::bench::FUNDS_PER_ACCOUNT;
        let payers = Payers::start(Arc::new(genesis), &banks, accounts, self.rate_per_payer);
        let mut report = ChaosReport {
            seed,
            cycles: self.cycles,
            ..ChaosReport::default()
        };
        let mut chain = ChainScan::default();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        for cycle in 0..self.cycles {
            let victim = self
                .cycle(cycle, &mut rng, cluster, &payers, &mut report)
                .await?;
            chain.read_new(&im_url).await?;
            payers.check(&chain, &mut report);
            crate::output::note!(
                "chaos: cycle {}: killed {victim}; {} acknowledged so far, {} lost, {} doubled, \
                 converged in {:.1} s",
                cycle + 1,
                report.acknowledged,
                report.lost,
                report.doubled,
                report.convergence_ms.last().copied().unwrap_or(0) as f64 / 1000.0,
            );
        }
        payers.stop().await;
        let elapsed = wait_converged(cluster, Duration::from_secs(self.converge_limit)).await?;
        report.convergence_ms.push(elapsed);
        chain.read_new(&im_url).await?;
        payers.check(&chain, &mut report);
        payers.resubmit_acknowledged(&mut report).await;
        // A new connection: the IM may have been restarted since the first.
        let im_node = Node::connect(&im_url).await?;
        let head = im_node
            .client
            .head()
            .await
            .map_err(|error| im_node.failure(error))?;
        report.head_height = head.height;
        report.supply_conserved = head.supply == issued;
        report.worst_convergence_ms = report.convergence_ms.iter().copied().max().unwrap_or(0);
        report.lost += payers.unconfirmed(&chain);
        Ok(report)
    }

    /// One cycle: wait a random moment, kill a node, sometimes kill it again during its
    /// catch-up, restart it, and measure how long until every node agrees.
    async fn cycle(
        &self,
        cycle: u32,
        rng: &mut ChaCha20Rng,
        cluster: &mut Cluster,
        payers: &Payers,
        report: &mut ChaosReport,
    ) -> Result<String, Failure> {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3_000))).await;
        let victim = choose_victim(cycle, rng, cluster, report).await?;
        let victim = victim.as_str();
        cluster.kill(victim)?;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..2_000))).await;
        cluster.restart(victim)?;
        if rng.gen_bool(0.25) {
            // Again while it loads its state and catches up.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1_500))).await;
            cluster.kill(victim)?;
            report.catch_up_kills += 1;
            cluster.restart(victim)?;
        }
        payers.pause(true);
        let limit = Duration::from_secs(self.converge_limit);
        let converged = wait_converged(cluster, limit).await;
        payers.pause(false);
        report.convergence_ms.push(converged?);
        Ok(victim.to_owned())
    }
}

/// The node a cycle kills: an IM node in at least a third of the cycles (forced when the
/// IM falls behind that share), else any node. With replicas, an IM kill hits the leading
/// replica two times in three.
async fn choose_victim(
    cycle: u32,
    rng: &mut ChaCha20Rng,
    cluster: &Cluster,
    report: &mut ChaosReport,
) -> Result<String, Failure> {
    let im_due = report.im_kills * 3 < cycle + 1;
    let pick = rng.gen_range(0..cluster.nodes.len());
    let chosen = &cluster.nodes[pick].name;
    if !im_due && !cluster.ims.contains(chosen) {
        report.bank_kills += 1;
        return Ok(chosen.clone());
    }
    report.im_kills += 1;
    let leader = cluster.im_leader(LEADER_LIMIT).await?.name.clone();
    if rng.gen_bool(2.0 / 3.0) || cluster.ims.len() == 1 {
        report.leader_kills += 1;
        return Ok(leader);
    }
    let replica = cluster.ims[rng.gen_range(0..cluster.ims.len())].clone();
    if replica == leader {
        report.leader_kills += 1;
    }
    Ok(replica)
}

/// The banks of a network as `testnet init` wrote it, with their RPC URLs, in genesis order.
fn bank_urls(summary: &InitSummary) -> Result<Vec<(BankId, String)>, Failure> {
    summary
        .nodes
        .iter()
        .filter(|node| node.role != "identity-manager")
        .enumerate()
        .map(|(index, node)| Ok((BankId(u16::try_from(index)?), node.rpc.clone())))
        .collect::<Result<_, std::num::TryFromIntError>>()
        .map_err(|_| Failure::error("too many banks"))
}

/// Each node's config with small transfer-index epochs, so crashes land mid-seal too, and
/// a short raft log (a snapshot every 32 entries, 16 kept behind it), so IM replicas
/// restarted after a kill install snapshots, and crashes land mid-install too.
fn small_epochs(config: &mut halfveil_node::config::Config) {
    config.storage.index_epoch_transfers = Some(2_000);
    config.storage.index_epoch_blocks = Some(64);
    config.storage.raft_snapshot_entries = Some(32);
    config.storage.raft_log_kept_entries = Some(16);
}

/// What a replica logs once it installed a snapshot.
const SNAPSHOT_INSTALLED: &str = "snapshot installed";

/// Lines holding `needle` in the `*.log` files of `dir` (0 if it cannot be read).
fn lines_containing(dir: &std::path::Path, needle: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|text| text.lines().filter(|line| line.contains(needle)).count() as u64)
        .sum()
}

fn summary_line(report: &ChaosReport) -> String {
    format!(
        "{} cycles ({} IM kills, {} of the leader, {} bank kills, {} during catch-up), {} \
         transfers acknowledged, \
         {} resubmitted, {} lost, {} doubled, worst convergence {:.1} s, supply conserved: {}, \
         replay: {}, snapshots installed: {}",
        report.convergence_ms.len().min(report.cycles as usize),
        report.im_kills,
        report.leader_kills,
        report.bank_kills,
        report.catch_up_kills,
        report.acknowledged,
        report.resubmitted,
        report.lost,
        report.doubled,
        report.convergence_ms.iter().copied().max().unwrap_or(0) as f64 / 1000.0,
        report.supply_conserved,
        if report.replay_ok {
            "ok"
        } else {
            "not yet / failed"
        },
        report.snapshots_installed,
    )
}

/// Waits until every node answers with the same head hash and state root; returns how long
/// that took, in milliseconds.
async fn wait_converged(cluster: &mut Cluster, limit: Duration) -> Result<u64, Failure> {
    let started = Instant::now();
    loop {
        let mut heads = Vec::new();
        for node in &cluster.nodes {
            let head = match Node::connect(&node.rpc).await {
                Ok(client) => client.client.head().await.ok(),
                Err(_) => None,
            };
            heads.push(head.map(|head| (head.hash, head.state_root)));
        }
        let first = heads.first().cloned().flatten();
        if first.is_some() && heads.iter().all(|head| *head == first) {
            return Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
        if started.elapsed() > limit {
            return Err(Failure::verification(format!(
                "the nodes did not agree within {} s: {heads:?}",
                limit.as_secs()
            )));
        }
        cluster.check_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every transfer on chain and where, read block by block from the identity manager.
#[derive(Debug, Default)]
struct ChainScan {
    height: u64,
    at: HashMap<Hash32, (u64, u32)>,
    /// Transfers found more than once.
    doubled: u64,
}

impl ChainScan {
    /// Reads the blocks after the last one read, from the node at `url` (connected anew:
    /// the node may have been restarted since the last read).
    async fn read_new(&mut self, url: &str) -> Result<(), Failure> {
        let node = Node::connect(url).await?;
        let head = node
            .client
            .head()
            .await
            .map_err(|error| node.failure(error))?;
        while self.height < head.height {
            let height = self.height + 1;
            let info = node
                .client
                .block(height)
                .await
                .map_err(|error| node.failure(error))?
                .ok_or_else(|| Failure::error(format!("block {height} is missing")))?;
            let bytes =
                hex::decode(&info.raw).map_err(|error| Failure::error(error.to_string()))?;
            let block = Block::decode(&bytes).map_err(|error| Failure::error(error.to_string()))?;
            for (index, op) in block.ops.iter().enumerate() {
                if let Op::Transfer(transfer) = op {
                    let id = transfer.request.transfer.id()?;
                    let index = u32::try_from(index).map_err(|_| Failure::error("op index"))?;
                    if self.at.insert(id, (height, index)).is_some() {
                        self.doubled += 1;
                    }
                }
            }
            self.height = height;
        }
        Ok(())
    }
}

/// A payment a payer made and what it was told.
#[derive(Debug, Clone)]
struct Payment {
    bank: usize,
    envelope: String,
    /// Where its verified receipt says it is.
    receipt: Option<(u64, u32)>,
    checked: bool,
}

/// What every payer task shares.
#[derive(Debug, Default)]
struct Book {
    payments: HashMap<Hash32, Payment>,
    refused: BTreeMap<String, u64>,
    /// Answers that contradict an earlier answer for the same envelope.
    contradictions: u64,
}

/// The payer tasks (see the module doc).
struct Payers {
    book: Arc<Mutex<Book>>,
    paused: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    genesis: Arc<ValidGenesis>,
    banks: Vec<String>,
}

impl Payers {
    fn start(
        genesis: Arc<ValidGenesis>,
        banks: &[(BankId, String)],
        accounts: Vec<BenchAccount>,
        rate: u32,
    ) -> Payers {
        let ids: Vec<(AccountId, BankId)> = accounts
            .iter()
            .map(|account| (account.id, account.bank))
            .collect();
        let mut payers = Payers {
            book: Arc::default(),
            paused: Arc::default(),
            stopping: Arc::default(),
            tasks: Vec::new(),
            genesis,
            banks: banks.iter().map(|(_, url)| url.clone()).collect(),
        };
        for account in accounts {
            let bank_index = usize::from(account.bank.0);
            let payees: Vec<AccountId> = ids
                .iter()
                .filter(|(_, bank)| *bank != account.bank)
                .map(|(id, _)| *id)
                .collect();
            let task = PayerTask {
                account,
                payees,
                bank_url: payers.banks.get(bank_index).cloned().unwrap_or_default(),
                bank_index,
                interval: Duration::from_millis(1_000 / u64::from(rate)),
                genesis: Arc::clone(&payers.genesis),
                book: Arc::clone(&payers.book),
                paused: Arc::clone(&payers.paused),
                stopping: Arc::clone(&payers.stopping),
            };
            payers.tasks.push(tokio::spawn(task.run()));
        }
        payers
    }

    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Stops offering new payments and waits for every payer's last answer.
    async fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.pause(false);
        for task in &self.tasks {
            while !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Checks the receipts acknowledged so far against the chain read up to its height.
    fn check(&self, chain: &ChainScan, report: &mut ChaosReport) {
        let Ok(mut book) = self.book.lock() else {
            return;
        };
        for (id, payment) in &mut book.payments {
            let Some((height, index)) = payment.receipt else {
                continue;
            };
            if payment.checked || height > chain.height {
                continue;
            }
            payment.checked = true;
            report.acknowledged += 1;
            if chain.at.get(id) != Some(&(height, index)) {
                crate::output::note!(
                    "chaos: transfer {id} acknowledged at {height}/{index} is not there"
                );
                report.lost += 1;
            }
        }
        report.refused = book.refused.clone();
        report.doubled = chain.doubled + book.contradictions;
    }

    /// Acknowledged payments not yet checked against the chain (the chain never reached
    /// their height): counted as lost.
    fn unconfirmed(&self, chain: &ChainScan) -> u64 {
        let Ok(book) = self.book.lock() else {
            return 0;
        };
        book.payments
            .values()
            .filter(|payment| payment.receipt.is_some() && !payment.checked)
            .filter(|payment| {
                payment
                    .receipt
                    .is_some_and(|(height, _)| height > chain.height)
            })
            .count() as u64
    }

    /// Sends a sample of acknowledged envelopes again: each must be answered with its
    /// first receipt's place, and move no money.
    async fn resubmit_acknowledged(&self, report: &mut ChaosReport) {
        let sample: Vec<(Payment, (u64, u32))> = match self.book.lock() {
            Ok(book) => book
                .payments
                .values()
                .filter_map(|payment| payment.receipt.map(|at| (payment.clone(), at)))
                .take(200)
                .collect(),
            Err(_) => return,
        };
        for (payment, at) in sample {
            let Some(url) = self.banks.get(payment.bank) else {
                continue;
            };
            let answer = final_status(url, &payment.envelope).await;
            report.resubmitted += 1;
            match answer {
                Some(TransferStatus::Committed { height, index, .. }) if (height, index) == at => {}
                other => {
                    crate::output::note!(
                        "chaos: an envelope sent again was answered {other:?}, not {at:?}"
                    );
                    report.doubled += 1;
                }
            }
        }
    }
}

/// One payer: pays an account of the other bank, waits for the final answer, sending the
/// same envelope again while its bank does not answer, and records the outcome.
struct PayerTask {
    account: BenchAccount,
    payees: Vec<AccountId>,
    bank_url: String,
    bank_index: usize,
    interval: Duration,
    genesis: Arc<ValidGenesis>,
    book: Arc<Mutex<Book>>,
    paused: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl PayerTask {
    async fn run(mut self) {
        let mut round = 0usize;
        while !self.stopping.load(Ordering::Relaxed) {
            if self.paused.load(Ordering::Relaxed) || self.payees.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let started = Instant::now();
            let payee = self.payees[round % self.payees.len()];
            round += 1;
            let Ok((id, envelope)) = self.envelope(payee) else {
                return;
            };
            let status = final_status(&self.bank_url, &envelope).await;
            self.record(id, envelope, status);
            if let Some(rest) = self.interval.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }

    fn envelope(&mut self, payee: AccountId) -> Result<(Hash32, String), Failure> {
        let params = &self.genesis.params;
        let account = &mut self.account;
        let transfer = Transfer {
            version: VERSION,
            chain_id: params.chain_id.clone(),
            payer: account.id,
            payee,
            amount: Amount(1),
            nonce: Nonce(account.next_nonce),
            expires_at: TimeMs(halfveil_node::clock::now_ms().0 + EXPIRY.as_millis() as u64),
            memo: Memo(Vec::new()),
        };
        account.next_nonce += 1;
        let id = transfer.id()?;
        let request = crypto::sign_request(
            transfer,
            &account.tx_key,
            &account.identity_key,
            &params.disclosure_key,
            &mut OsRng,
        )?;
        let envelope = Envelope::seal(
            &account.business_key,
            &params.chain_id,
            account.bank,
            &request,
            &mut OsRng,
        )?;
        Ok((id, hex::encode(envelope.encode()?)))
    }

    fn record(&self, id: Hash32, envelope: String, status: Option<TransferStatus>) {
        let receipt = match &status {
            Some(TransferStatus::Committed {
                height,
                index,
                receipt,
                ..
            }) => verified(receipt, &id, &self.genesis).then_some((*height, *index)),
            _ => None,
        };
        let Ok(mut book) = self.book.lock() else {
            return;
        };
        if let Some(TransferStatus::Rejected { code, .. }) = &status {
            *book.refused.entry(code.clone()).or_default() += 1;
        }
        if matches!(status, Some(TransferStatus::Committed { .. })) && receipt.is_none() {
            book.contradictions += 1;
        }
        book.payments.insert(
            id,
            Payment {
                bank: self.bank_index,
                envelope,
                receipt,
                checked: false,
            },
        );
    }
}

/// Submits `envelope` to the bank at `bank_url` and waits for its final status, sending it
/// again whenever the bank does not answer within [`ANSWER_WAIT`] (killed, restarting,
/// catching up), as a payer would.
async fn final_status(bank_url: &str, envelope: &str) -> Option<TransferStatus> {
    let deadline = Instant::now() + EXPIRY + Duration::from_secs(120);
    while Instant::now() < deadline {
        let attempt = async {
            let node = Node::connect(bank_url).await.ok()?;
            let status = node.client.submit(envelope.to_owned()).await.ok()?;
            if status.is_final() {
                return Some(status);
            }
            let TransferStatus::Pending { id } = status else {
                return None;
            };
            let mut subscription = node.client.subscribe_transfer(id).await.ok()?;
            futures::StreamExt::next(&mut subscription).await?.ok()
        };
        if let Ok(Some(status)) = tokio::time::timeout(ANSWER_WAIT, attempt).await {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Whether `receipt` (hex) verifies against genesis and is of transfer `id`.
fn verified(receipt: &str, id: &Hash32, genesis: &ValidGenesis) -> bool {
    let Ok(bytes) = hex::decode(receipt) else {
        return false;
    };
    let Ok(receipt) = codec::decode::<Receipt>(&bytes, 1 << 20) else {
        return false;
    };
    receipt.transfer_id == *id && receipt.verify(&genesis.params.validator_keys).is_ok()
}
