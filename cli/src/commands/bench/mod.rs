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

//!
//! One concern a file: [`targets`] (the nodes, found and checked), [`accounts`] (the
//! bench's accounts, opened and funded), [`envelopes`] (the payments planned, signed and
//! sealed before the clock starts), [`load`] (offering them and collecting outcomes) and
//! [`report`] (the figures and how they print).

mod accounts;
mod envelopes;
mod load;
mod report;
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use halfveil_genesis::file::ValidGenesis;
use halfveil_node::metrics::process_cpu_seconds;
use halfveil_node::rpc::ApiClient;

use crate::client::AdminAccess;
use crate::cluster::Cluster;
use crate::commands::testnet::InitOptions;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

pub(crate) use accounts::{open_accounts, signature_check_us, BenchAccount, FUNDS_PER_ACCOUNT};
use report::{BenchReport, RunReport};

use envelopes::prepare_envelopes;
use load::offer;
use report::{latency_of, render_report, render_run, timeline_of};
use targets::{node_costs, settle, Targets};

const TICK: Duration = Duration::from_millis(10);
/// How long to wait for the last outcomes after the offered load stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
const SETUP_CONCURRENCY: usize = 64;
/// How long the bench waits for a node that went away (restarted) to take connections again.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(60);

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
