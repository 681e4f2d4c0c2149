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
mod plot;
mod report;
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use halfveil_genesis::file::ValidGenesis;
use halfveil_node::metrics::process_cpu_seconds;
use halfveil_node::rpc::{ApiClient, NodeStatus};

use crate::client::AdminAccess;
use crate::cluster::Cluster;
use crate::commands::testnet::InitOptions;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

use accounts::reference_rate;
pub(crate) use accounts::{open_accounts, signature_check_us, BenchAccount, FUNDS_PER_ACCOUNT};
use report::{BenchReport, FailoverReport, KillReport, NetworkReport, RunReport};

use envelopes::prepare_envelopes;
use load::{longest_pause_ms, offer, pause_within, Tally};
use report::{latency_of, render_report, render_run, timeline_of};
use targets::{node_costs, settle, Targets};

const TICK: Duration = Duration::from_millis(10);
/// How long to wait for the last outcomes after the offered load stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
const SETUP_CONCURRENCY: usize = 64;
/// How long the bench waits for a node that went away (restarted) to take connections again.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(60);
/// How long the bench waits for a leading replica.
const LEADER_LIMIT: Duration = Duration::from_secs(30);
/// How long a killed replica stays down in a failover run (a single IM restarts at once:
/// nothing commits until it does).
const REPLICA_DOWN: Duration = Duration::from_secs(2);

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
    /// Raise the rate (5k, 10k, 15k, 20k, ...) until the network falls behind.
    #[arg(long)]
    pub ramp: bool,
    /// Where to write the JSON report (default DIR/bench.json); its SVG plot goes beside it
    /// (the same name ending in .svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Attach to running nodes instead of starting a network: the RPC address of the
    /// identity manager and of two or more banks (repeat the flag).
    #[arg(long, requires = "im_home")]
    pub rpc: Vec<String>,
    /// With --rpc: the identity manager's home folder (its admin endpoint and token fund
    /// the bench's accounts; with replicas, the leading replica's).
    #[arg(long)]
    pub im_home: Option<PathBuf>,
    /// The identity manager's replica counts to bench, each on a network of its own, in
    /// turn (1, 3 or 5; e.g. `1,3` for the single IM and three replicas side by side).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        conflicts_with = "rpc"
    )]
    pub im_replicas: Vec<usize>,
    /// After the runs, one more at --rate during which the IM's leader (the IM itself with
    /// one replica) is killed with SIGKILL halfway and restarted: the failover gap.
    #[arg(long, conflicts_with = "rpc")]
    pub failover: bool,
    /// With --failover: how many times the leader is killed in that run, evenly spread
    /// (e.g. 20 in a 120 s run: one every 5.7 s).
    #[arg(long, default_value_t = 1, requires = "failover")]
    pub kills: u32,
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
        let signature_check_us = signature_check_us();
        let reference = reference_rate();
        say(format!(
            "one signature check takes {signature_check_us:.1} µs on this machine; its cores \
             check the signatures of {reference:.0} transfers/s in batches (the reference rate)"
        ));
        let networks = match attach_home {
            Some(im_home) => vec![self.run_attached(&runtime, im_home, reference, &say)?],
            None => self
                .im_replicas
                .iter()
                .map(|replicas| self.run_local(&runtime, *replicas, reference, &say))
                .collect::<Result<_, _>>()?,
        };
        let report = BenchReport {
            dir: self.dir.display().to_string(),
            attached: attach_home.is_some(),
            accounts: self.accounts,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            nodes_agree: networks.iter().all(|network| network.nodes_agree),
            supply_conserved: networks.iter().all(|network| network.supply_conserved),
            networks,
            signature_check_us,
            reference_rate: reference,
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
        plot::write_svg(&report, &out.with_extension("svg"))?;
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
        if self.im_replicas.is_empty()
            || self
                .im_replicas
                .iter()
                .any(|count| !halfveil_genesis::file::IM_REPLICA_COUNTS.contains(count))
        {
            return Err(Failure::usage("--im-replicas takes counts of 1, 3 or 5"));
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
        reference: f64,
        say: &impl Fn(String),
    ) -> Result<NetworkReport, Failure> {
        let im_admin = AdminAccess::from_home(im_home)?;
        runtime.block_on(async {
            let targets = Targets::discover(&self.rpc, im_admin).await?;
            run_bench(&targets, self, reference, None, say).await
        })
    }

    /// The bench on a network with `replicas` IM replicas that it starts in `DIR/network`
    /// (`DIR/network-N` when several counts are benched; logs beside it) and stops
    /// afterwards; a node that does not stop cleanly fails it.
    fn run_local(
        &self,
        runtime: &tokio::runtime::Runtime,
        replicas: usize,
        reference: f64,
        say: &impl Fn(String),
    ) -> Result<NetworkReport, Failure> {
        let suffix = match self.im_replicas.len() {
            1 => String::new(),
            _ => format!("-{replicas}"),
        };
        let network = InitOptions {
            im_replicas: replicas,
            ..InitOptions::local(self.dir.join(format!("network{suffix}")), "halfveil-bench")
        };
        let logs = self.dir.join(format!("logs{suffix}"));
        say(format!("== {replicas} IM replica(s), two banks"));
        let mut cluster = None;
        let report = runtime.block_on(async {
            let (_, launched, _) =
                Cluster::launch(&network, &logs, Duration::from_secs(60)).await?;
            let cluster = cluster.insert(launched);
            let urls: Vec<String> = cluster.nodes.iter().map(|node| node.rpc.clone()).collect();
            let im_admin = AdminAccess::from_home(&cluster.im_leader(LEADER_LIMIT).await?.home)?;
            let targets = Targets::discover(&urls, im_admin).await?;
            run_bench(&targets, self, reference, Some(cluster), say).await
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

    /// The offered rates: `--rate`; with `--ramp`, twelve rising from `--rate` (5k at most)
    /// by 5k a step (5k, 10k, 15k, 20k, ...).
    fn rates(&self) -> Vec<u64> {
        if !self.ramp {
            return vec![self.rate];
        }
        let first = self.rate.min(5_000);
        (0..12)
            .map(|step| if step == 0 { first } else { 5_000 * (step + 1) })
            .collect()
    }
}

/// Opens and funds the accounts, offers each rate in turn (stopping a ramp once the
/// network falls behind), kills the leader in one more run with `--failover` (a network
/// the bench started), then checks that the nodes agree and the supply is conserved.
async fn run_bench(
    targets: &Targets,
    options: &BenchArgs,
    reference: f64,
    cluster: Option<&mut Cluster>,
    say: &impl Fn(String),
) -> Result<NetworkReport, Failure> {
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
    let mut load = Load {
        targets,
        genesis: &genesis,
        accounts: &mut accounts,
        options,
        reference,
    };
    for rate in options.rates() {
        let (run, _) = load.run(rate, None).await?;
        say(render_run(&run));
        let behind = run.committed_rate < 0.9 * rate as f64 || run.latency.p99_ms > 1_000.0;
        runs.push(run);
        if options.ramp && behind {
            break;
        }
    }
    let failover = match cluster.filter(|_| options.failover) {
        Some(cluster) => Some(load.failover(cluster, say).await?),
        None => None,
    };
    let settled = settle(targets, &accounts).await?;
    let issued = FUNDS_PER_ACCOUNT * accounts.len() as u64;
    Ok(NetworkReport {
        im_replicas: targets.im_replicas,
        runs,
        failover,
        head_height: settled.head.height,
        nodes_agree: settled.nodes_agree,
        supply_conserved: settled.balances_total == issued
            && settled.head.supply == supply_before + issued,
    })
}

/// A leader killed during a run: who, when, and how long it stayed down.
struct Killed {
    name: String,
    at: Instant,
    down: Duration,
}

/// Kills the IM's leader `kills` times, spread evenly over `duration` (the first after
/// `duration / (kills + 1)`).
async fn kill_leaders(
    cluster: &mut Cluster,
    duration: Duration,
    kills: u32,
) -> Result<Vec<Killed>, Failure> {
    let started = tokio::time::Instant::now();
    let every = duration / (kills + 1);
    let mut killed = Vec::new();
    for kill in 1..=kills {
        tokio::time::sleep_until(started + every * kill).await;
        killed.push(kill_leader(cluster).await?);
    }
    Ok(killed)
}

/// Kills the IM's leader with SIGKILL and restarts it: at once when it is the only
/// replica, else after [`REPLICA_DOWN`].
async fn kill_leader(cluster: &mut Cluster) -> Result<Killed, Failure> {
    let (name, at) = cluster.kill_leader(LEADER_LIMIT).await?;
    let down = if cluster.ims.len() == 1 {
        Duration::ZERO
    } else {
        REPLICA_DOWN
    };
    tokio::time::sleep(down).await;
    cluster.restart(&name)?;
    Ok(Killed { name, at, down })
}

/// What every run of one network shares.
struct Load<'a> {
    targets: &'a Targets,
    genesis: &'a ValidGenesis,
    accounts: &'a mut [BenchAccount],
    options: &'a BenchArgs,
    reference: f64,
}

impl Load<'_> {
    /// The failover run: `--rate` with the leader killed `--kills` times.
    async fn failover(
        &mut self,
        cluster: &mut Cluster,
        say: &impl Fn(String),
    ) -> Result<FailoverReport, Failure> {
        let (rate, kills) = (self.options.rate, self.options.kills);
        say(format!(
            "failover: {rate}/s for {} s, the leader killed {kills} time(s)",
            self.options.duration
        ));
        let (run, kills) = self.run(rate, Some((cluster, kills))).await?;
        say(render_run(&run));
        failover_report(run, kills)
    }

    /// One offered rate for `--duration` seconds: prepares its envelopes, offers them
    /// (killing the leader as often as asked when given the cluster), and reports what
    /// committed, how fast, and what it cost each node; with each kill and the longest
    /// time nothing committed around it.
    async fn run(
        &mut self,
        rate: u64,
        faults: Option<(&mut Cluster, u32)>,
    ) -> Result<(RunReport, Vec<KillReport>), Failure> {
        let (targets, options) = (self.targets, self.options);
        let count = usize::try_from(rate * options.duration.max(1)).unwrap_or(usize::MAX);
        let prepared = Instant::now();
        let envelopes = prepare_envelopes(self.genesis, self.accounts, count, &targets.banks)?;
        crate::output::note!(
            "prepared {count} envelopes in {:.1} s; offering {rate}/s for {} s",
            prepared.elapsed().as_secs_f64(),
            options.duration
        );
        let duration = Duration::from_secs(options.duration);
        let before = targets.statuses().await?;
        let client_before = process_cpu_seconds().unwrap_or(0.0);
        let started = Instant::now();
        let (offered, killed) =
            tokio::join!(offer(&targets.banks, envelopes, rate, duration), async {
                match faults {
                    Some((cluster, kills)) => kill_leaders(cluster, duration, kills).await,
                    None => Ok(Vec::new()),
                }
            });
        let (tally, measured, rejection_examples) = offered?;
        let client_cpu_seconds = process_cpu_seconds().unwrap_or(0.0) - client_before;
        let after = targets.statuses().await?;
        let mut run = figures(targets, rate, count, &tally, measured, (&before, &after))?;
        run.rejection_examples = rejection_examples;
        run.client_cpu_seconds = client_cpu_seconds;
        run.reference_fraction = run.committed_rate / self.reference.max(f64::EPSILON);
        Ok((run, kill_reports(&killed?, &tally, started)))
    }
}

/// How long before a kill its gap may start: the last commits before it count.
const GAP_BEFORE_KILL: Duration = Duration::from_millis(500);
/// The longest a gap after a kill is looked for, when no later kill ends it sooner.
const GAP_WINDOW: Duration = Duration::from_secs(10);

/// Each kill with the longest time nothing committed from just before it until the next
/// kill (or [`GAP_WINDOW`]), so that no pause counts for two kills; and not past the run's
/// last commit, once commits came back after the kill (the quiet after the load ends is no
/// failover: it made the last kill of every run look 4 s long).
fn kill_reports(killed: &[Killed], tally: &Tally, started: Instant) -> Vec<KillReport> {
    let last_commit = tally.commit_times.iter().max().copied();
    killed
        .iter()
        .enumerate()
        .map(|(index, kill)| {
            let until = killed.get(index + 1).map_or(kill.at + GAP_WINDOW, |next| {
                next.at.min(kill.at + GAP_WINDOW)
            });
            let until = match last_commit {
                Some(last) if last > kill.at => until.min(last),
                _ => until,
            };
            let from = kill.at.checked_sub(GAP_BEFORE_KILL).unwrap_or(kill.at);
            KillReport {
                node: kill.name.clone(),
                at_s: kill.at.saturating_duration_since(started).as_secs_f64(),
                down_s: kill.down.as_secs_f64(),
                gap_ms: pause_within(&tally.commit_times, from, until).as_secs_f64() * 1000.0,
            }
        })
        .collect()
}

/// The failover run's report: its kills, and the median and worst of their gaps.
fn failover_report(run: RunReport, kills: Vec<KillReport>) -> Result<FailoverReport, Failure> {
    let mut gaps: Vec<f64> = kills.iter().map(|kill| kill.gap_ms).collect();
    gaps.sort_by(f64::total_cmp);
    let (Some(worst), Some(median)) = (gaps.last(), gaps.get(gaps.len() / 2)) else {
        return Err(Failure::error("no node was killed"));
    };
    Ok(FailoverReport {
        gap_p50_ms: *median,
        gap_worst_ms: *worst,
        kills,
        run,
    })
}

/// A run's figures from its tally and the nodes' statuses before and after it.
fn figures(
    targets: &Targets,
    rate: u64,
    count: usize,
    tally: &Tally,
    measured: Duration,
    (before, after): (&[NodeStatus], &[NodeStatus]),
) -> Result<RunReport, Failure> {
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
        rejected: tally.rejected.clone(),
        rejection_examples: Default::default(),
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
        cpu: node_costs(targets, before, after),
        client_cpu_seconds: 0.0,
        reference_fraction: 0.0,
        longest_pause_ms: longest_pause_ms(tally),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_kill_s_gap_ends_with_the_run_s_last_commit() {
        let started = Instant::now();
        let ms = |ms: u64| started + Duration::from_millis(ms);
        let kill = |at: u64| Killed {
            name: "im-1".into(),
            at: ms(at),
            down: Duration::from_secs(2),
        };
        // Commits every 100 ms until 9,000 ms, but none from 2,000 to 2,400 (the first
        // kill) nor from 6,000 to 6,300 (the second); the load ends at 9,000.
        let commit_times = (0..=90)
            .map(|step| step * 100)
            .filter(|at| !((2_001..2_400).contains(at) || (6_001..6_300).contains(at)))
            .map(ms)
            .collect();
        let tally = Tally {
            commit_times,
            ..Tally::default()
        };
        let gaps: Vec<f64> = kill_reports(&[kill(2_000), kill(6_000)], &tally, started)
            .iter()
            .map(|report| report.gap_ms.round())
            .collect();
        assert_eq!(gaps, vec![400.0, 300.0]);
        // A kill after which nothing ever committed: the whole window is its gap.
        let gaps = kill_reports(&[kill(9_500)], &tally, started);
        assert!(gaps[0].gap_ms >= 9_999.0, "{:?}", gaps[0].gap_ms);
    }
}
