//! What a bench reports: per rate the committed rate, latency (with a timeline), refusals
//! and each node's CPU; the checks after; and how it prints as text.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::failure::Failure;

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
    pub p50_ms: f64,
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
    /// `committed_rate` over this machine's reference rate (see [`BenchReport`]).
    pub reference_fraction: f64,
    /// The longest time between two commit notifications, in milliseconds.
    pub longest_pause_ms: f64,
}

/// One kill of the identity manager's leader during a failover run.
#[derive(Debug, Serialize, Clone)]
pub struct KillReport {
    /// The node killed.
    pub node: String,
    /// When, in seconds from the run's start.
    pub at_s: f64,
    /// How long it stayed down before it was started again.
    pub down_s: f64,
    /// The longest time nothing committed, from half a second before the kill until the
    /// next kill (or 10 s after), in milliseconds: the failover gap.
    pub gap_ms: f64,
}

/// A run during which the identity manager's leader (the IM itself, with one replica) was
/// killed with SIGKILL (`--kills` times, spread evenly) and restarted each time.
#[derive(Debug, Serialize, Clone)]
pub struct FailoverReport {
    pub kills: Vec<KillReport>,
    pub gap_p50_ms: f64,
    pub gap_worst_ms: f64,
    pub run: RunReport,
}

/// The bench of one network: its identity manager's replica count, its runs, and the
/// checks after.
#[derive(Debug, Serialize)]
pub struct NetworkReport {
    pub im_replicas: usize,
    pub runs: Vec<RunReport>,
    pub failover: Option<FailoverReport>,
    pub head_height: u64,
    pub nodes_agree: bool,
    pub supply_conserved: bool,
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
    /// One network per `--im-replicas` count, in the order given.
    pub networks: Vec<NetworkReport>,
    /// Whether the nodes of every network agreed after the load.
    pub nodes_agree: bool,
    /// Whether every network's supply equals what was issued.
    pub supply_conserved: bool,
    /// One signature check on this machine, in µs, measured before the runs: machines
    /// differ by a third in speed, so rates are compared beside it.
    pub signature_check_us: f64,
    /// Transfers per second this machine's cores could check the three signatures of, in
    /// batches as the nodes do: each run's `reference_fraction` is its committed rate over
    /// this.
    pub reference_rate: f64,
}

pub(super) fn latency_of(latencies_us: impl Iterator<Item = u64>) -> Result<Latency, Failure> {
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

pub(super) fn timeline_of(latencies_us: &[(u32, u64)]) -> Result<Vec<Second>, Failure> {
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
                p50_ms: latency.p50_ms,
                p99_ms: latency.p99_ms,
                max_ms: latency.max_ms,
            })
        })
        .collect()
}

pub(super) fn render_run(run: &RunReport) -> String {
    let rejected: Vec<String> = run
        .rejected
        .iter()
        .map(|(code, count)| format!("{code}={count}"))
        .collect();
    format!(
        "{:>8} {:>10.0} {:>6.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>8.0}  {}{}",
        run.offered_rate,
        run.committed_rate,
        run.reference_fraction,
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

/// The column titles of [`render_run`]'s lines.
fn run_header() -> String {
    format!(
        "{:>8} {:>10} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8}  cpu",
        "offered",
        "committed",
        "of ref",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "blk/s",
        "tx/blk"
    )
}

/// "1 identity manager" or "3 IM replicas".
fn network_name(replicas: usize) -> String {
    match replicas {
        1 => "1 identity manager".to_owned(),
        n => format!("{n} IM replicas"),
    }
}

/// One network's table, refusal examples, failover run and checks.
fn render_network(network: &NetworkReport) -> Vec<String> {
    let mut lines = vec![
        format!("== {}", network_name(network.im_replicas)),
        run_header(),
    ];
    lines.extend(network.runs.iter().map(render_run));
    for run in &network.runs {
        for (code, example) in &run.rejection_examples {
            lines.push(format!(
                "at {}/s, {code}: {} ({} by {})",
                run.offered_rate, example.detail, example.id, example.by
            ));
        }
    }
    if let Some(failover) = &network.failover {
        lines.push(format!(
            "failover at {}/s: the leader killed {} time(s) ({}); nothing committed for \
             p50 {:.0} ms, worst {:.0} ms after a kill (longest pause without a kill: {:.0} \
             ms); p99 {:.1} ms, {} unanswered",
            failover.run.offered_rate,
            failover.kills.len(),
            failover
                .kills
                .iter()
                .map(|kill| format!("{} at {:.1} s: {:.0} ms", kill.node, kill.at_s, kill.gap_ms))
                .collect::<Vec<_>>()
                .join(", "),
            failover.gap_p50_ms,
            failover.gap_worst_ms,
            network
                .runs
                .iter()
                .map(|run| run.longest_pause_ms)
                .fold(0.0, f64::max),
            failover.run.latency.p99_ms,
            failover.run.unanswered,
        ));
    }
    lines.push(format!(
        "head {}; nodes agree: {}; supply conserved: {}",
        network.head_height, network.nodes_agree, network.supply_conserved
    ));
    lines
}

/// The networks side by side at the rates all of them ran: committed rate, its fraction
/// of the reference, p50 and p99.
fn render_side_by_side(networks: &[NetworkReport]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:>8} {}",
        "offered",
        networks
            .iter()
            .map(|network| format!("| {:<35}", network_name(network.im_replicas)))
            .collect::<String>()
    )];
    let rates = networks[0].runs.iter().map(|run| run.offered_rate);
    for rate in rates {
        let cells: Option<String> = networks
            .iter()
            .map(|network| {
                let run = network.runs.iter().find(|run| run.offered_rate == rate)?;
                Some(format!(
                    "| {:>7.0}/s {:>4.2} p50 {:>6.1} p99 {:>7.1} ",
                    run.committed_rate,
                    run.reference_fraction,
                    run.latency.p50_ms,
                    run.latency.p99_ms
                ))
            })
            .collect();
        if let Some(cells) = cells {
            lines.push(format!("{rate:>8} {cells}"));
        }
    }
    lines
}

/// The bench's text report: each network's table, the networks side by side, and the
/// machine's reference figures.
pub(super) fn render_report(report: &BenchReport, out: &Path) -> String {
    let mut lines: Vec<String> = report.networks.iter().flat_map(render_network).collect();
    if report.networks.len() > 1 {
        lines.extend(render_side_by_side(&report.networks));
    }
    lines.push(format!(
        "{} accounts; signature check {:.1} µs; reference rate {:.0}/s on {} cores (\"of \
         ref\" is the committed rate over it); report in {}, plot in {}",
        report.accounts,
        report.signature_check_us,
        report.reference_rate,
        report.cores,
        out.display(),
        out.with_extension("svg").display()
    ));
    lines.join("\n")
}
