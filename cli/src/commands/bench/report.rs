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

/// The bench's text report: a table of the runs, example refusals, and the checks after.
pub(super) fn render_report(report: &BenchReport, out: &Path) -> String {
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
