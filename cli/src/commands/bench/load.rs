//! Offering the load open-loop, one subscription per batch, and collecting each transfer's
//! outcome and latency; batches cut off by a restarted bank are offered again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halfveil_ledger::BankId;
use halfveil_node::rpc::{ApiClient, Submitted, TransferStatus, Watched};

use super::report::RejectionExample;
use super::{DRAIN_LIMIT, RECONNECT_PATIENCE, TICK};
use crate::client::{Node, Reconnecting};
use crate::failure::Failure;

/// What the collector learns about each batch.
#[derive(Default)]
pub(super) struct Tally {
    /// Per committed transfer: the second of the run it was sent in, and its latency.
    pub(super) latencies_us: Vec<(u32, u64)>,
    pub(super) rejected: BTreeMap<String, u64>,
    /// The first rejected transfer of each code, with the bank it was submitted to.
    pub(super) examples: BTreeMap<String, (usize, String)>,
    pub(super) committed: u64,
    pub(super) last_final: Option<Instant>,
    /// When each notification that committed transfers arrived, in arrival order per
    /// batch: the longest pause between two is how long nothing committed.
    pub(super) commit_times: Vec<Instant>,
    pub(super) unanswered: u64,
    pub(super) reconnections: u64,
}

impl Tally {
    fn reject(&mut self, bank: usize, id: String, code: String) {
        *self.rejected.entry(code.clone()).or_default() += 1;
        self.examples.entry(code).or_insert((bank, id));
    }
}

/// The signed reason of each example refusal, asked of the bank the transfer went to.
pub(super) async fn rejection_examples(
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

/// The longest time between two commit notifications of `tally`, in milliseconds.
pub(super) fn longest_pause_ms(tally: &Tally) -> f64 {
    let times = &tally.commit_times;
    match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) => pause_within(times, *first, *last).as_secs_f64() * 1000.0,
        _ => 0.0,
    }
}

/// The longest time between `from` and `until` in which no commit notification of `times`
/// arrived: from `from` to the first one, between two, or from the last to `until`.
pub(super) fn pause_within(times: &[Instant], from: Instant, until: Instant) -> Duration {
    let mut inside: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|time| *time > from && *time < until)
        .collect();
    inside.sort_unstable();
    std::iter::once(from)
        .chain(inside)
        .chain(std::iter::once(until))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]))
        .max()
        .unwrap_or_default()
}

/// Offers `envelopes` (per bank) at `rate` per second, open-loop, and measures outcomes.
pub(super) async fn offer(
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
pub(super) struct Record {
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
pub(super) async fn deliver(link: Arc<Reconnecting>, batch: Vec<String>, record: Record) {
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
pub(super) async fn watch_batch(
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
        let committed_before = tally.committed;
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
        if tally.committed > committed_before {
            tally.commit_times.push(now);
        }
        tally.last_final = Some(now);
    }
    waiting.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commit times `ms` milliseconds after `base`.
    fn at(base: Instant, ms: &[u64]) -> Vec<Instant> {
        ms.iter()
            .map(|ms| base + Duration::from_millis(*ms))
            .collect()
    }

    #[test]
    fn the_pause_around_a_kill_runs_from_the_last_commit_before_it_to_the_first_after() {
        let base = Instant::now();
        let ms = |ms: u64| base + Duration::from_millis(ms);
        // Commits every 10 ms, then none from 1,000 to 2,700 ms (the kill at 1,005).
        let mut times = at(base, &[950, 960, 970, 980, 990, 1_000]);
        times.extend(at(base, &[2_700, 2_710, 2_720, 3_500, 4_500, 5_500, 6_100]));
        let pause = pause_within(&times, ms(505), ms(6_000));
        assert_eq!(pause, Duration::from_millis(1_700));
        // The last pause ends with the window: a pause after it (the next kill's) is not
        // this one's.
        assert_eq!(
            pause_within(&at(base, &[600, 3_000]), ms(505), ms(1_000)),
            Duration::from_millis(400)
        );
        // No commit at all: the whole window.
        assert_eq!(
            pause_within(&[], ms(0), ms(1_000)),
            Duration::from_millis(1_000)
        );
    }
}
