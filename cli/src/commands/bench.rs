//! `halfveil bench`: committed transfers per second and submit-to-result latency of an
//! identity manager and two banks on 127.0.0.1.
//!
//! Before the clock starts it opens the accounts (half at each bank), issues funds and
//! prepares every signed and sealed envelope, so client-side crypto is not measured. Then
//! it offers load open-loop: every 10 ms one `hv_submitAndWatch` per bank with that tick's
//! envelopes (one subscription: the answers, then the accepted transfers' outcomes); each
//! transfer's latency is from just before its batch was sent to the notification of its
//! outcome. `--ramp` repeats
//! this at rising rates until the network no longer keeps up. Afterwards every node must
//! hold the same head and balances, and the supply must equal what was issued.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::crypto::{self, BusinessKey, Envelope, SigningKey};
use halfveil_ledger::{AccountId, Amount, BankId, Memo, Nonce, TimeMs, Transfer, VERSION};
use halfveil_node::metrics::process_cpu_seconds;
use halfveil_node::rpc::{
    AdminApiClient, ApiClient, HeadInfo, NodeStatus, Submitted, TransferStatus, Watched,
};
use hdrhistogram::Histogram;
use rand_core::{OsRng, RngCore};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::client::{AdminAccess, Node, Reconnecting};
use crate::cluster::Cluster;
use crate::commands::account::{Holder, NewAccount};
use crate::commands::testnet::InitOptions;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

const TICK: Duration = Duration::from_millis(10);
/// How long to wait for the last outcomes after the offered load stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
const SETUP_CONCURRENCY: usize = 64;
/// How long the bench waits for a node that went away (restarted) to take connections again.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(60);
pub(crate) const FUNDS_PER_ACCOUNT: u64 = 1_000_000_000;

/// `halfveil bench`: load at one rate or rising rates (see the module doc).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The data folder (replaced if an earlier bench made it).
    #[arg(long, default_value = "halfveil-bench")]
    pub dir: PathBuf,
    /// Offered transfers per second (the first rate with --ramp).
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Seconds of load per rate.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    /// Raise the rate (5k, 10k, 20k, 30k, ...) until the network falls behind.
    #[arg(long)]
    pub ramp: bool,
    /// Where to write the JSON report (default DIR/bench.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Attach to running nodes instead of starting a network: the RPC address of the
    /// identity manager and of two or more banks (repeat the flag).
    #[arg(long, requires = "im_home")]
    pub rpc: Vec<String>,
    /// With --rpc: the identity manager's home folder (its admin endpoint and token fund
    /// the bench's accounts).
    #[arg(long)]
    pub im_home: Option<PathBuf>,
}

/// The nodes a bench talks to, found by asking each for its status; connected once.
struct Targets {
    /// Every node with its moniker: the IM and the banks.
    nodes: Vec<(String, Reconnecting)>,
    /// Which of `nodes` is the identity manager.
    im: usize,
    banks: Vec<(BankId, String)>,
    im_admin: AdminAccess,
}

impl Targets {
    async fn discover(urls: &[String], im_admin: AdminAccess) -> Result<Targets, Failure> {
        let mut im = None;
        let mut banks = Vec::new();
        let mut nodes = Vec::with_capacity(urls.len());
        for url in urls {
            let node = Reconnecting::connect(url, RECONNECT_PATIENCE).await?;
            let status = node
                .call(|node| async move { node.client.status().await })
                .await?;
            match status.bank {
                Some(bank) => banks.push((BankId(bank), url.clone())),
                None if im.is_none() => im = Some(nodes.len()),
                None => return Err(Failure::usage("more than one --rpc is an identity manager")),
            }
            nodes.push((status.moniker, node));
        }
        let im = im.ok_or_else(|| Failure::usage("no --rpc is the identity manager"))?;
        if banks.len() < 2 {
            return Err(Failure::usage(
                "the bench needs two banks among the --rpc nodes",
            ));
        }
        banks.sort();
        Ok(Targets {
            nodes,
            im,
            banks,
            im_admin,
        })
    }

    fn im(&self) -> &Reconnecting {
        &self.nodes[self.im].1
    }

    /// Each node's status, in `nodes` order.
    async fn statuses(&self) -> Result<Vec<NodeStatus>, Failure> {
        let mut statuses = Vec::with_capacity(self.nodes.len());
        for (_, node) in &self.nodes {
            statuses.push(
                node.call(|node| async move { node.client.status().await })
                    .await?,
            );
        }
        Ok(statuses)
    }

    /// Waits until every node's head is at least `height`.
    async fn wait_height(&self, height: u64, limit: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + limit;
        for (name, node) in &self.nodes {
            loop {
                let head = node
                    .call(|node| async move { node.client.head().await })
                    .await
                    .ok()
                    .map(|head| head.height);
                if head.is_some_and(|head| head >= height) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Failure::error(format!(
                        "node {name} did not reach height {height} in {} s",
                        limit.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// One account the bench pays from and to.
pub(crate) struct BenchAccount {
    pub(crate) id: AccountId,
    pub(crate) bank: BankId,
    pub(crate) tx_key: SigningKey,
    pub(crate) identity_key: SigningKey,
    pub(crate) business_key: BusinessKey,
    pub(crate) next_nonce: u64,
}

#[derive(Debug, Serialize, Clone)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// One second of a run: the transfers sent in it that committed, and their latency.
#[derive(Debug, Serialize, Clone)]
pub struct Second {
    pub second: u32,
    pub committed: u64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize, Clone)]
pub struct NodeCost {
    pub node: String,
    pub cpu_seconds: f64,
}

/// The outcome of one offered rate.
#[derive(Debug, Serialize, Clone)]
pub struct RunReport {
    pub offered_rate: u64,
    pub duration_s: f64,
    pub offered: u64,
    pub committed: u64,
    pub committed_rate: f64,
    pub latency: Latency,
    /// Latency by the second the transfers were sent in: where the tail happened.
    pub timeline: Vec<Second>,
    pub rejected: BTreeMap<String, u64>,
    /// One rejected transfer per code and the reason its refusal gives.
    pub rejection_examples: BTreeMap<String, RejectionExample>,
    pub unanswered: u64,
    /// Times the bench connected again to a bank that went away (restarted) during the run.
    pub reconnections: u64,
    pub blocks: u64,
    pub blocks_per_s: f64,
    pub fsyncs_per_s: f64,
    pub transfers_per_block: f64,
    pub cpu: Vec<NodeCost>,
    /// The load generator's own CPU on the same machine.
    pub client_cpu_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RejectionExample {
    pub id: String,
    /// Who refused it and why, from the signed refusal (`hv_transferStatus`).
    pub by: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub dir: String,
    /// Whether the bench attached to running nodes (`--rpc`) rather than starting them.
    pub attached: bool,
    pub accounts: usize,
    pub cores: usize,
    pub runs: Vec<RunReport>,
    pub head_height: u64,
    pub nodes_agree: bool,
    pub supply_conserved: bool,
    /// One signature check on this machine, in µs, measured before the runs: machines
    /// differ by a third in speed, so rates are compared beside it.
    pub signature_check_us: f64,
}

/// This machine's cost of one signature check as the nodes make it (ZIP-215), in µs.
pub(crate) fn signature_check_us() -> f64 {
    const ROUNDS: u32 = 2_000;
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = crypto::public_key(&key);
    let message = halfveil_ledger::Hash32([9; 32]);
    let signature = crypto::sign(&key, &message);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let checked = crypto::verify(&public, std::hint::black_box(&message), &signature);
        std::hint::black_box(checked.is_ok());
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

/// Opens `count` accounts, alternating banks, and funds each.
pub(crate) async fn open_accounts(
    genesis: &ValidGenesis,
    banks: &[(BankId, String)],
    im_admin: &AdminAccess,
    count: usize,
) -> Result<Vec<BenchAccount>, Failure> {
    let params = &genesis.params;
    let mut clients = Vec::new();
    for (_, url) in banks {
        clients.push(Arc::new(Node::connect(url).await?));
    }
    let opened = futures::stream::iter(0..count)
        .map(|index| {
            let (bank, _) = banks[index % banks.len()];
            let node = Arc::clone(&clients[index % banks.len()]);
            async move {
                let holder = Holder {
                    name: format!("Bench Holder {index}"),
                    national_id: format!("BENCH-{index:08}"),
                };
                let new = NewAccount::generate(params, bank, &holder)?;
                let (business_key, _) = new.open_at(&node, bank).await?;
                Ok::<_, Failure>(BenchAccount {
                    id: new.account,
                    bank,
                    tx_key: new.tx_key,
                    identity_key: new.identity_key,
                    business_key,
                    next_nonce: 0,
                })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let admin = Arc::new(Node::connect(&im_admin.url).await?);
    let token = im_admin.token.expose_secret().to_owned();
    futures::stream::iter(opened.iter().map(|account| account.id))
        .map(|id| {
            let admin = Arc::clone(&admin);
            let token = token.clone();
            async move {
                admin
                    .client
                    .issue(token, id.to_string(), FUNDS_PER_ACCOUNT, OsRng.next_u64())
                    .await
                    .map_err(|error| admin.failure(error))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(opened)
}

/// Payer and payee (indexes into the accounts, whose banks are `homes`) of `count`
/// payments: payers in turn; every payee at the next bank (so each payment crosses banks),
/// a different one each round. With one bank, any other account of it.
fn plan_payments(homes: &[BankId], count: usize) -> Vec<(usize, usize)> {
    let total = homes.len();
    if total < 2 {
        return Vec::new();
    }
    let mut by_bank: BTreeMap<BankId, Vec<usize>> = BTreeMap::new();
    for (index, bank) in homes.iter().enumerate() {
        by_bank.entry(*bank).or_default().push(index);
    }
    let lists: Vec<&Vec<usize>> = by_bank.values().collect();
    let mut home = vec![0usize; total];
    for (position, list) in lists.iter().enumerate() {
        for &index in list.iter() {
            home[index] = position;
        }
    }
    (0..count)
        .map(|step| {
            let payer = step % total;
            let round = step / total;
            let payees = lists[(home[payer] + 1) % lists.len()];
            let mut payee = payees[(payer + round) % payees.len()];
            if payee == payer {
                payee = payees[(payer + round + 1) % payees.len()];
            }
            (payer, payee)
        })
        .collect()
}

/// One payment planned before the run: the payer (index into the accounts), the payee,
/// the payer's nonce and the expiry.
type Planned = (usize, AccountId, u64, TimeMs);

/// Signs and seals `count` envelopes, each payer paying an account of the other bank,
/// using every core. Returns per bank the hex envelopes in offering order.
fn prepare_envelopes(
    genesis: &ValidGenesis,
    accounts: &mut [BenchAccount],
    count: usize,
    banks: &[(BankId, String)],
) -> Result<Vec<Vec<String>>, Failure> {
    let plan = plan_envelopes(genesis, accounts, count);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let chunk = plan.len().div_ceil(threads).max(1);
    let accounts: &[BenchAccount] = accounts;
    let sealed: Vec<Result<Vec<(BankId, String)>, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|planned| seal_envelope(genesis, accounts, planned))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Failure::error("envelope preparation failed")))
            })
            .collect()
    });
    let mut per_bank = vec![Vec::with_capacity(count / banks.len() + 1); banks.len()];
    for part in sealed {
        for (bank, envelope) in part? {
            let index = banks.iter().position(|(id, _)| *id == bank).unwrap_or(0);
            per_bank[index].push(envelope);
        }
    }
    Ok(per_bank)
}

/// Plans `count` payments (cheap, sequential): payer, payee, nonce (taken from the payer)
/// and expiry.
fn plan_envelopes(
    genesis: &ValidGenesis,
    accounts: &mut [BenchAccount],
    count: usize,
) -> Vec<Planned> {
    // Expiries rise through the run as a client's would (its send time plus a fixed
    // window), spread over up to a minute, all at least a minute short of the longest
    // allowed; one expiry shared by every transfer would put all of them into one slot of
    // the nodes' expiry index.
    let expiry_max = genesis.params.limits.transfer_expiry_ms_max;
    let spread = (expiry_max / 2).min(60_000);
    let expiry_base = crate::cluster::now_ms() + expiry_max.saturating_sub(1_000 + spread);
    let homes: Vec<BankId> = accounts.iter().map(|account| account.bank).collect();
    let mut plan = Vec::with_capacity(count);
    for (step, (payer, payee)) in plan_payments(&homes, count).into_iter().enumerate() {
        let nonce = accounts[payer].next_nonce;
        accounts[payer].next_nonce += 1;
        let offset = (step as u64).saturating_mul(spread) / (count as u64).max(1);
        plan.push((
            payer,
            accounts[payee].id,
            nonce,
            TimeMs(expiry_base + offset),
        ));
    }
    plan
}

/// Signs one planned transfer and seals it for the payer's bank: that bank and the
/// envelope's hex.
fn seal_envelope(
    genesis: &ValidGenesis,
    accounts: &[BenchAccount],
    &(payer, payee, nonce, expires_at): &Planned,
) -> Result<(BankId, String), Failure> {
    let params = &genesis.params;
    let from = &accounts[payer];
    let transfer = Transfer {
        version: VERSION,
        chain_id: params.chain_id.clone(),
        payer: from.id,
        payee,
        amount: Amount(1),
        nonce: Nonce(nonce),
        expires_at,
        memo: Memo(Vec::new()),
    };
    let request = crypto::sign_request(
        transfer,
        &from.tx_key,
        &from.identity_key,
        &params.escrow_key,
        &mut OsRng,
    )?;
    let envelope = Envelope::seal(
        &from.business_key,
        &params.chain_id,
        from.bank,
        &request,
        &mut OsRng,
    )?;
    Ok((from.bank, hex::encode(envelope.encode()?)))
}

/// What the collector learns about each batch.
#[derive(Default)]
struct Tally {
    /// Per committed transfer: the second of the run it was sent in, and its latency.
    latencies_us: Vec<(u32, u64)>,
    rejected: BTreeMap<String, u64>,
    /// The first rejected transfer of each code, with the bank it was submitted to.
    examples: BTreeMap<String, (usize, String)>,
    committed: u64,
    last_final: Option<Instant>,
    unanswered: u64,
    reconnections: u64,
}

impl Tally {
    fn reject(&mut self, bank: usize, id: String, code: String) {
        *self.rejected.entry(code.clone()).or_default() += 1;
        self.examples.entry(code).or_insert((bank, id));
    }
}

/// The signed reason of each example refusal, asked of the bank the transfer went to.
async fn rejection_examples(
    clients: &[Arc<Reconnecting>],
    examples: &BTreeMap<String, (usize, String)>,
) -> BTreeMap<String, RejectionExample> {
    let mut explained = BTreeMap::new();
    for (code, (bank, id)) in examples {
        let Some(node) = clients.get(*bank) else {
            continue;
        };
        let status = node
            .call(|node| async move { node.client.transfer_status(id.clone()).await })
            .await;
        let (by, detail) = match status {
            Ok(TransferStatus::Rejected { by, detail, .. }) => (by, detail),
            Ok(other) => (String::new(), format!("status now: {other:?}")),
            Err(failure) => (String::new(), format!("status unavailable: {failure}")),
        };
        let example = RejectionExample {
            id: id.clone(),
            by,
            detail,
        };
        explained.insert(code.clone(), example);
    }
    explained
}

/// Offers `envelopes` (per bank) at `rate` per second, open-loop, and measures outcomes.
async fn offer(
    banks: &[(BankId, String)],
    envelopes: Vec<Vec<String>>,
    rate: u64,
    duration: Duration,
) -> Result<(Tally, Duration, BTreeMap<String, RejectionExample>), Failure> {
    let mut clients = Vec::new();
    for (_, url) in banks {
        clients.push(Arc::new(
            Reconnecting::connect(url, RECONNECT_PATIENCE).await?,
        ));
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let ticks = (duration.as_millis() / TICK.as_millis()).max(1) as u64;
    let per_tick_total = (rate * TICK.as_millis() as u64).div_ceil(1000).max(1) as usize;
    let per_tick_bank = per_tick_total.div_ceil(banks.len());
    let mut queues: Vec<std::vec::IntoIter<String>> =
        envelopes.into_iter().map(Vec::into_iter).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..ticks {
        interval.tick().await;
        for (index, queue) in queues.iter_mut().enumerate() {
            let batch: Vec<String> = queue.by_ref().take(per_tick_bank).collect();
            if batch.is_empty() {
                continue;
            }
            let sent = Instant::now();
            let record = Record {
                tally: Arc::clone(&tally),
                bank: index,
                sent,
                second: u32::try_from(sent.duration_since(started).as_secs()).unwrap_or(0),
            };
            tasks.push(tokio::spawn(deliver(
                Arc::clone(&clients[index]),
                batch,
                record,
            )));
        }
    }
    let offered_for = started.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| Failure::error("bench tasks still running"))?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let measured = tally
        .last_final
        .map(|last| last.duration_since(started))
        .unwrap_or(offered_for)
        .max(offered_for);
    let examples = rejection_examples(&clients, &tally.examples).await;
    let mut tally = tally;
    tally.reconnections = clients.iter().map(|client| client.current().0).sum();
    Ok((tally, measured, examples))
}

/// Where one batch's outcomes go.
struct Record {
    tally: Arc<Mutex<Tally>>,
    /// The bank it went to (index into the bench's banks).
    bank: usize,
    sent: Instant,
    /// The second of the run it was sent in.
    second: u32,
}

impl Record {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One batch through its bank, to each transfer's final outcome. When the connection
/// breaks (the bank restarted), the transfers without one are offered again on a new
/// connection: a bank answers an envelope it has seen with that transfer's status, so
/// nothing moves twice. What has no outcome after [`DRAIN_LIMIT`] is unanswered.
async fn deliver(link: Arc<Reconnecting>, batch: Vec<String>, record: Record) {
    let deadline = tokio::time::Instant::from_std(record.sent + DRAIN_LIMIT);
    let mut left = batch;
    loop {
        let (generation, node) = link.current();
        left = watch_batch(&node, left, deadline, &record).await;
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        if node.client.is_connected() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else if link.renew(generation).await.is_err() {
            break;
        }
    }
    record.tally().unanswered += left.len() as u64;
}

/// Submits `envelopes` on one subscription and records the outcomes it brings by
/// `deadline`; returns the envelopes still without one.
async fn watch_batch(
    node: &Node,
    envelopes: Vec<String>,
    deadline: tokio::time::Instant,
    record: &Record,
) -> Vec<String> {
    let Ok(mut watched) = node.client.submit_and_watch(envelopes.clone()).await else {
        return envelopes;
    };
    let first = tokio::time::timeout_at(deadline, watched.next()).await;
    let Ok(Some(Ok(Watched::Submitted { answers }))) = first else {
        return envelopes;
    };
    let mut waiting = HashMap::new();
    {
        let mut tally = record.tally();
        for (envelope, answer) in envelopes.into_iter().zip(answers) {
            match answer {
                Submitted::Pending { id } => {
                    waiting.insert(id, envelope);
                }
                Submitted::Committed { .. } => tally.committed += 1,
                Submitted::Rejected { id, code } => tally.reject(record.bank, id, code),
                Submitted::Error { message, .. } => {
                    *tally.rejected.entry(message).or_default() += 1
                }
            }
        }
    }
    while !waiting.is_empty() {
        let next = tokio::time::timeout_at(deadline, watched.next()).await;
        let Ok(Some(Ok(Watched::Finals { finals }))) = next else {
            break;
        };
        let now = Instant::now();
        let latency =
            u64::try_from(now.duration_since(record.sent).as_micros()).unwrap_or(u64::MAX);
        let mut tally = record.tally();
        for outcome in finals {
            if waiting.remove(&outcome.id).is_none() {
                continue;
            }
            match outcome.code {
                None => {
                    tally.committed += 1;
                    tally.latencies_us.push((record.second, latency));
                }
                Some(code) => tally.reject(record.bank, outcome.id, code),
            }
        }
        tally.last_final = Some(now);
    }
    waiting.into_values().collect()
}

fn latency_of(latencies_us: impl Iterator<Item = u64>) -> Result<Latency, Failure> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|error| Failure::error(format!("histogram: {error}")))?;
    for latency in latencies_us {
        histogram.saturating_record(latency.max(1));
    }
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    Ok(Latency {
        p50_ms: ms(0.50),
        p90_ms: ms(0.90),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: histogram.max() as f64 / 1000.0,
    })
}

fn timeline_of(latencies_us: &[(u32, u64)]) -> Result<Vec<Second>, Failure> {
    let mut by_second: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (second, latency) in latencies_us {
        by_second.entry(*second).or_default().push(*latency);
    }
    by_second
        .into_iter()
        .map(|(second, latencies)| {
            let committed = latencies.len() as u64;
            let latency = latency_of(latencies.into_iter())?;
            Ok(Second {
                second,
                committed,
                p99_ms: latency.p99_ms,
                max_ms: latency.max_ms,
            })
        })
        .collect()
}

fn render_run(run: &RunReport) -> String {
    let rejected: Vec<String> = run
        .rejected
        .iter()
        .map(|(code, count)| format!("{code}={count}"))
        .collect();
    format!(
        "{:>8} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>8.0}  {}{}",
        run.offered_rate,
        run.committed_rate,
        run.latency.p50_ms,
        run.latency.p90_ms,
        run.latency.p99_ms,
        run.latency.p999_ms,
        run.latency.max_ms,
        run.blocks_per_s,
        run.transfers_per_block,
        run.cpu
            .iter()
            .map(|cost| format!("{}={:.1}s ", cost.node, cost.cpu_seconds))
            .chain(std::iter::once(format!(
                "client={:.1}s",
                run.client_cpu_seconds
            )))
            .collect::<String>(),
        if rejected.is_empty() {
            String::new()
        } else {
            format!(" rejected: {}", rejected.join(" "))
        }
    )
}

impl BenchArgs {
    /// Runs the bench on a network of its own, or on the nodes of `--rpc`; writes the
    /// report, and fails if afterwards the nodes disagree or the supply changed.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let attach_home = self.check()?;
        let text = output == OutputFormat::Text;
        let say = |line: String| {
            if text {
                crate::output::note!("{line}");
            }
        };
        crate::cluster::prepare_dir(&self.dir, "bench")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|error| Failure::error(format!("cannot start the async runtime: {error}")))?;
        let report = match attach_home {
            Some(im_home) => self.run_attached(&runtime, im_home, &say)?,
            None => self.run_local(&runtime, &say)?,
        };
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| self.dir.join("bench.json"));
        std::fs::write(
            &out,
            serde_json::to_string_pretty(&report)
                .map_err(|error| Failure::error(error.to_string()))?,
        )?;
        emit(output, &report, || render_report(&report, &out));
        if !report.nodes_agree || !report.supply_conserved {
            return Err(Failure::verification(
                "after the load the nodes disagree or the supply changed",
            ));
        }
        Ok(())
    }

    /// Checks the flags; returns the identity manager's home when the bench attaches to
    /// running nodes.
    fn check(&self) -> Result<Option<&Path>, Failure> {
        if self.accounts < 2 {
            return Err(Failure::usage("--accounts must be at least 2"));
        }
        if self.rate == 0 || self.duration == 0 {
            return Err(Failure::usage("--rate and --duration must be positive"));
        }
        match (self.rpc.is_empty(), &self.im_home) {
            (true, _) => Ok(None),
            (false, Some(home)) => Ok(Some(home.as_path())),
            (false, None) => Err(Failure::usage(
                "--rpc needs --im-home: the identity manager's home, for its admin endpoint",
            )),
        }
    }

    /// The bench on the running nodes of `--rpc`.
    fn run_attached(
        &self,
        runtime: &tokio::runtime::Runtime,
        im_home: &Path,
        say: &impl Fn(String),
    ) -> Result<BenchReport, Failure> {
        let im_admin = AdminAccess::from_home(im_home)?;
        runtime.block_on(async {
            let targets = Targets::discover(&self.rpc, im_admin).await?;
            run_bench(&targets, self, say).await
        })
    }

    /// The bench on a network it starts in `DIR/network` and stops afterwards; a node that
    /// does not stop cleanly fails it.
    fn run_local(
        &self,
        runtime: &tokio::runtime::Runtime,
        say: &impl Fn(String),
    ) -> Result<BenchReport, Failure> {
        let network = InitOptions::local(self.dir.join("network"), "halfveil-bench");
        let logs = self.dir.join("logs");
        let mut cluster = None;
        let report = runtime.block_on(async {
            let (_, launched, _) =
                Cluster::launch(&network, &logs, Duration::from_secs(60)).await?;
            let cluster = cluster.insert(launched);
            let urls: Vec<String> = cluster.nodes.iter().map(|node| node.rpc.clone()).collect();
            let im_admin = AdminAccess::from_home(&cluster.node("im")?.home)?;
            let targets = Targets::discover(&urls, im_admin).await?;
            run_bench(&targets, self, say).await
        });
        let stopped = cluster
            .as_mut()
            .map(|cluster| cluster.stop(Duration::from_secs(30)))
            .unwrap_or_default();
        let report = report
            .map_err(|failure| failure.context(format!("node logs are in {}", logs.display())))?;
        if stopped
            .iter()
            .any(|(_, status)| !status.is_some_and(|status| status.success()))
        {
            return Err(Failure::error(format!(
                "a node did not stop cleanly: {stopped:?}"
            )));
        }
        Ok(report)
    }

    /// The offered rates: `--rate`; with `--ramp`, twelve rising from `--rate` (5k at most).
    fn rates(&self) -> Vec<u64> {
        if !self.ramp {
            return vec![self.rate];
        }
        let mut rates = vec![self.rate.min(5_000)];
        while rates.len() < 12 {
            let last = *rates.last().unwrap_or(&5_000);
            rates.push(if last < 10_000 {
                last * 2
            } else {
                last + 10_000
            });
        }
        rates
    }
}

/// The bench's text report: a table of the runs, example refusals, and the checks after.
fn render_report(report: &BenchReport, out: &Path) -> String {
    let mut lines = vec![format!(
        "{:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8}  cpu",
        "offered",
        "committed",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "blk/s",
        "tx/blk"
    )];
    lines.extend(report.runs.iter().map(render_run));
    for run in &report.runs {
        for (code, example) in &run.rejection_examples {
            lines.push(format!(
                "at {}/s, {code}: {} ({} by {})",
                run.offered_rate, example.detail, example.id, example.by
            ));
        }
    }
    lines.push(format!(
        "{} accounts; head {}; nodes agree: {}; supply conserved: {}; signature check {:.1} µs; report in {}",
        report.accounts,
        report.head_height,
        report.nodes_agree,
        report.supply_conserved,
        report.signature_check_us,
        out.display()
    ));
    lines.join("\n")
}

/// Opens and funds the accounts, offers each rate in turn (stopping a ramp once the
/// network falls behind), then checks that the nodes agree and the supply is conserved.
async fn run_bench(
    targets: &Targets,
    options: &BenchArgs,
    say: &impl Fn(String),
) -> Result<BenchReport, Failure> {
    let signature_check_us = signature_check_us();
    say(format!(
        "one signature check takes {signature_check_us:.1} µs on this machine"
    ));
    let im_node = targets.im();
    let genesis = im_node.current().1.genesis(None).await?;
    let supply_before = im_node
        .call(|node| async move { node.client.head().await })
        .await?
        .supply;
    let setup = Instant::now();
    let mut accounts = open_accounts(
        &genesis,
        &targets.banks,
        &targets.im_admin,
        options.accounts,
    )
    .await?;
    say(format!(
        "opened and funded {} accounts in {:.1} s",
        accounts.len(),
        setup.elapsed().as_secs_f64()
    ));
    let mut runs = Vec::new();
    for rate in options.rates() {
        let run = run_rate(targets, &genesis, &mut accounts, rate, options, say).await?;
        say(render_run(&run));
        let behind = run.committed_rate < 0.9 * rate as f64 || run.latency.p99_ms > 1_000.0;
        runs.push(run);
        if options.ramp && behind {
            break;
        }
    }
    let settled = settle(targets, &accounts).await?;
    let issued = FUNDS_PER_ACCOUNT * accounts.len() as u64;
    Ok(BenchReport {
        dir: options.dir.display().to_string(),
        attached: !options.rpc.is_empty(),
        accounts: accounts.len(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        runs,
        head_height: settled.head.height,
        nodes_agree: settled.nodes_agree,
        supply_conserved: settled.balances_total == issued
            && settled.head.supply == supply_before + issued,
        signature_check_us,
    })
}

/// One offered rate for `--duration` seconds: prepares its envelopes, offers them, and
/// reports what committed, how fast, and what it cost each node.
async fn run_rate(
    targets: &Targets,
    genesis: &ValidGenesis,
    accounts: &mut [BenchAccount],
    rate: u64,
    options: &BenchArgs,
    say: &impl Fn(String),
) -> Result<RunReport, Failure> {
    let banks = &targets.banks;
    let count = usize::try_from(rate * options.duration.max(1)).unwrap_or(usize::MAX);
    let prepared = Instant::now();
    let envelopes = prepare_envelopes(genesis, accounts, count, banks)?;
    say(format!(
        "prepared {count} envelopes in {:.1} s; offering {rate}/s for {} s",
        prepared.elapsed().as_secs_f64(),
        options.duration
    ));
    let before = targets.statuses().await?;
    let client_before = process_cpu_seconds().unwrap_or(0.0);
    let (tally, measured, rejection_examples) = offer(
        banks,
        envelopes,
        rate,
        Duration::from_secs(options.duration),
    )
    .await?;
    let client_cpu_seconds = process_cpu_seconds().unwrap_or(0.0) - client_before;
    let after = targets.statuses().await?;
    let seconds = measured.as_secs_f64().max(f64::EPSILON);
    let (im_before, im_after) = (&before[targets.im], &after[targets.im]);
    let blocks = im_after
        .blocks_committed
        .saturating_sub(im_before.blocks_committed);
    let fsyncs = im_after.fsyncs.saturating_sub(im_before.fsyncs);
    Ok(RunReport {
        offered_rate: rate,
        duration_s: seconds,
        offered: count as u64,
        committed: tally.committed,
        committed_rate: tally.committed as f64 / seconds,
        latency: latency_of(tally.latencies_us.iter().map(|(_, latency)| *latency))?,
        timeline: timeline_of(&tally.latencies_us)?,
        rejected: tally.rejected,
        rejection_examples,
        unanswered: tally.unanswered,
        reconnections: tally.reconnections,
        blocks,
        blocks_per_s: blocks as f64 / seconds,
        fsyncs_per_s: fsyncs as f64 / seconds,
        transfers_per_block: if blocks > 0 {
            tally.committed as f64 / blocks as f64
        } else {
            0.0
        },
        cpu: node_costs(targets, &before, &after),
        client_cpu_seconds,
    })
}

/// Each node's CPU seconds between two of its statuses.
fn node_costs(targets: &Targets, before: &[NodeStatus], after: &[NodeStatus]) -> Vec<NodeCost> {
    targets
        .nodes
        .iter()
        .zip(before.iter().zip(after))
        .map(|((name, _), (before, after))| NodeCost {
            node: name.clone(),
            // A node that restarted during the run counts its new process only.
            cpu_seconds: if after.cpu_seconds >= before.cpu_seconds {
                after.cpu_seconds - before.cpu_seconds
            } else {
                after.cpu_seconds
            },
        })
        .collect()
}

/// What the nodes hold once the load is over.
#[derive(Debug)]
struct Settled {
    /// The identity manager's head, which every node reached.
    head: HeadInfo,
    /// Every node has the same head hash, state root and balance of every account.
    nodes_agree: bool,
    /// The sum of the accounts' balances (as the first node reports them).
    balances_total: u64,
}

/// Waits until every node holds the identity manager's head, then compares their heads
/// and the balance of every account.
async fn settle(targets: &Targets, accounts: &[BenchAccount]) -> Result<Settled, Failure> {
    let head = targets
        .im()
        .call(|node| async move { node.client.head().await })
        .await?;
    targets
        .wait_height(head.height, Duration::from_secs(60))
        .await?;
    let mut nodes_agree = true;
    for (_, node) in &targets.nodes {
        let their = node
            .call(|node| async move { node.client.head().await })
            .await?;
        nodes_agree &= their.hash == head.hash && their.state_root == head.state_root;
    }
    let nodes = &targets.nodes;
    let balances = futures::stream::iter(accounts.iter().map(|account| account.id))
        .map(|id| async move {
            let mut seen = Vec::with_capacity(nodes.len());
            for (_, node) in nodes {
                let info = node
                    .call(|node| async move { node.client.account(id.to_string()).await })
                    .await?;
                seen.push(info.map(|info| info.balance));
            }
            Ok::<_, Failure>(seen)
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut balances_total = 0u64;
    for seen in balances {
        let seen = seen?;
        nodes_agree &= seen.iter().all(|balance| *balance == seen[0]);
        balances_total += seen[0].unwrap_or(0);
    }
    Ok(Settled {
        head,
        nodes_agree,
        balances_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over more rounds than there are accounts (the old plan paid an account to itself
    /// after 499 rounds of 1,000), no payment is to its payer and every one crosses banks.
    #[test]
    fn planned_payments_cross_banks_and_never_pay_the_payer() {
        for (homes, rounds) in [
            (
                (0..1000u16)
                    .map(|index| BankId(index % 2))
                    .collect::<Vec<_>>(),
                600,
            ),
            (
                (0..10u16)
                    .map(|index| BankId(u16::from(index >= 3)))
                    .collect(),
                40,
            ),
            ((0..7u16).map(|index| BankId(index % 3)).collect(), 20),
        ] {
            let plan = plan_payments(&homes, homes.len() * rounds);
            assert_eq!(plan.len(), homes.len() * rounds);
            for (step, (payer, payee)) in plan.iter().enumerate() {
                assert_eq!(*payer, step % homes.len());
                assert_ne!(homes[*payer], homes[*payee], "step {step}");
            }
            // Payees vary: each payer pays more than one account.
            let first: Vec<usize> = plan.iter().take(homes.len()).map(|(_, p)| *p).collect();
            let second: Vec<usize> = plan
                .iter()
                .skip(homes.len())
                .take(homes.len())
                .map(|(_, p)| *p)
                .collect();
            assert_ne!(first, second);
        }
        let one_bank = vec![BankId(0); 4];
        for (payer, payee) in plan_payments(&one_bank, 40) {
            assert_ne!(payer, payee);
        }
        assert!(plan_payments(&[BankId(0)], 5).is_empty());
    }
}
