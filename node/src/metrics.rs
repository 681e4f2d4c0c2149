//! Prometheus metrics (`halfveil_*`, base units, `_total` counters; never an account or an
//! identity as a label) and the `/metrics`, `/livez`, `/readyz` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tracing::warn;

/// Every metric of a node; cheap to clone (each metric is shared).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub blocks_committed: Counter,
    pub transfers_committed: Counter,
    pub transfers_rejected: Counter,
    pub fsyncs: Counter,
    pub head_height: Gauge,
    pub peers_connected: Gauge,
    pub pool_pending: Gauge,
    pub queue_full: Counter,
    pub gossip_published_bytes: Counter,
    /// Gossiped blocks received, by what became of them (`relay`, `drop`, `invalid`).
    pub gossip_blocks: Family<[(&'static str, &'static str); 1], Counter>,
    /// Requests this node sent on links, by outcome (`answered`, `failed`, `timeout`).
    pub link_requests: Family<[(&'static str, &'static str); 1], Counter>,
    pub ready: Gauge,
    /// Equivocations detected (two IM-signed blocks at one height); the node stops following.
    pub equivocations: Counter,
    /// Blocks refused for now because their time was too far ahead of this node's clock.
    pub blocks_ahead: Counter,
    /// 1 while every critical task (service, network, writer) runs; `/livez` fails at 0.
    pub live: Gauge,
    /// Final-status waiters held for RPC subscriptions.
    pub rpc_waiters: Gauge,
    /// Offences of peers (undecodable or oversized messages), by kind.
    pub peer_offences: Family<[(&'static str, &'static str); 1], Counter>,
    /// Peers banned (disconnected and refused for a while) for their offences.
    pub peer_bans: Counter,
    /// RPC connections turned away: too many from one address, or from everyone.
    pub rpc_connections_refused: Counter,
    pub block_commit_seconds: Histogram,
    /// A replicated IM's leader: from proposing a block through raft to its being committed
    /// by a majority and written here.
    pub replica_propose_seconds: Histogram,
    /// From a block's header time (when the IM built it) to its synced write on this node:
    /// how far behind the IM's building this node's chain runs.
    pub block_lag_seconds: Histogram,
    /// The process's user and system CPU time, read from `/proc` at each scrape.
    pub process_cpu_seconds: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Every metric, registered under `halfveil_`; `live` starts at 1.
    pub fn new() -> Metrics {
        let metrics = Metrics::unregistered();
        let mut registry = Registry::with_prefix("halfveil");
        // The exposition lists the metrics in the order they are registered.
        metrics.register_chain(&mut registry);
        metrics.register_traffic(&mut registry);
        metrics.register_health(&mut registry);
        metrics.register_refusals(&mut registry);
        metrics.register_timing(&mut registry);
        metrics.live.set(1);
        Metrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// Every metric at zero, with an empty registry of its own.
    fn unregistered() -> Metrics {
        Metrics {
            registry: Arc::new(Registry::default()),
            blocks_committed: Counter::default(),
            transfers_committed: Counter::default(),
            transfers_rejected: Counter::default(),
            fsyncs: Counter::default(),
            head_height: Gauge::default(),
            peers_connected: Gauge::default(),
            pool_pending: Gauge::default(),
            queue_full: Counter::default(),
            gossip_published_bytes: Counter::default(),
            gossip_blocks: Family::default(),
            link_requests: Family::default(),
            ready: Gauge::default(),
            equivocations: Counter::default(),
            blocks_ahead: Counter::default(),
            live: Gauge::default(),
            rpc_waiters: Gauge::default(),
            rpc_connections_refused: Counter::default(),
            peer_offences: Family::default(),
            peer_bans: Counter::default(),
            block_commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            replica_propose_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            block_lag_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            process_cpu_seconds: Gauge::default(),
        }
    }

    /// Registers the metrics of the stored chain: blocks, transfers, synced writes, the head.
    fn register_chain(&self, registry: &mut Registry) {
        registry.register(
            "blocks_committed",
            "Blocks verified and stored",
            self.blocks_committed.clone(),
        );
        registry.register(
            "transfers_committed",
            "Transfers in stored blocks",
            self.transfers_committed.clone(),
        );
        registry.register(
            "transfers_rejected",
            "Transfers refused by this node",
            self.transfers_rejected.clone(),
        );
        registry.register("fsyncs", "Synced database writes", self.fsyncs.clone());
        registry.register(
            "head_height",
            "Height of the stored head block",
            self.head_height.clone(),
        );
    }

    /// Registers the metrics of peers, the pool, full queues, gossip and links.
    fn register_traffic(&self, registry: &mut Registry) {
        registry.register(
            "peers_connected",
            "Open peer connections",
            self.peers_connected.clone(),
        );
        registry.register(
            "pool_pending",
            "Transfers accepted and not yet committed",
            self.pool_pending.clone(),
        );
        registry.register(
            "queue_full",
            "Work refused because a queue was full",
            self.queue_full.clone(),
        );
        registry.register(
            "gossip_published_bytes",
            "Bytes of blocks published",
            self.gossip_published_bytes.clone(),
        );
        registry.register(
            "gossip_blocks",
            "Gossiped blocks received: relay (checked and applied), drop (known or ahead), invalid",
            self.gossip_blocks.clone(),
        );
        registry.register(
            "link_requests",
            "Requests sent on links (forwards, approvals, late refusals): answered, failed (link broken, peer gone or not connected, queue full), timeout",
            self.link_requests.clone(),
        );
    }

    /// Registers the metrics of whether the node serves and follows the chain.
    fn register_health(&self, registry: &mut Registry) {
        registry.register(
            "ready",
            "1 when the node serves requests",
            self.ready.clone(),
        );
        registry.register(
            "equivocations",
            "Equivocations detected: two blocks at one height, both signed by the identity manager",
            self.equivocations.clone(),
        );
        registry.register(
            "blocks_ahead",
            "Blocks refused for now: their time was further ahead of this node's clock than genesis allows",
            self.blocks_ahead.clone(),
        );
        registry.register(
            "live",
            "1 while the service, network and writer all run",
            self.live.clone(),
        );
        registry.register(
            "rpc_waiters",
            "Final-status waiters held for RPC subscriptions (bounded)",
            self.rpc_waiters.clone(),
        );
    }

    /// Registers the metrics of misbehaving peers and refused RPC connections.
    fn register_refusals(&self, registry: &mut Registry) {
        registry.register(
            "peer_offences",
            "Messages from peers that an honest peer never sends, by offence",
            self.peer_offences.clone(),
        );
        registry.register(
            "peer_bans",
            "Peers disconnected and refused for a while for their offences",
            self.peer_bans.clone(),
        );
        registry.register(
            "rpc_connections_refused",
            "RPC connections turned away (rpc.connections_per_address_max or rpc.connections_max)",
            self.rpc_connections_refused.clone(),
        );
    }

    /// Registers the timings: block writes and the process's CPU time.
    fn register_timing(&self, registry: &mut Registry) {
        registry.register(
            "block_commit_seconds",
            "Time of one synced block write",
            self.block_commit_seconds.clone(),
        );
        registry.register(
            "replica_propose_seconds",
            "Time from proposing a block through raft to its being committed and written",
            self.replica_propose_seconds.clone(),
        );
        registry.register(
            "block_lag_seconds",
            "Time from a block's header time (the IM built it) to its synced write here",
            self.block_lag_seconds.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time of this process",
            self.process_cpu_seconds.clone(),
        );
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        if let Some(seconds) = process_cpu_seconds() {
            self.process_cpu_seconds.set(seconds);
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            warn!("cannot encode metrics");
        }
        text
    }
}

/// User plus system CPU seconds this process has used, from `/proc/self/stat` (Linux; the
/// kernel reports it in USER_HZ ticks, 100 per second on every mainstream platform).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_from_stat(&stat)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line; the command name, which may
/// hold spaces and parentheses, ends at the last ')'.
pub fn cpu_seconds_from_stat(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Serves `/metrics`, `/livez` and `/readyz` until the task is dropped.
pub async fn serve(
    address: SocketAddr,
    metrics: Metrics,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let for_metrics = metrics.clone();
    let live = metrics.live.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = for_metrics.clone();
                async move { metrics.render() }
            }),
        )
        .route(
            "/livez",
            get(move || {
                let live = live.get() == 1;
                async move {
                    if live {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "a critical task stopped")
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = metrics.ready.get() == 1;
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            warn!(%error, "metrics server stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (we) ird (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0";
        assert_eq!(cpu_seconds_from_stat(stat), Some(3.25));
        assert_eq!(cpu_seconds_from_stat("4242 (cut) S 1 2"), None);
        assert_eq!(cpu_seconds_from_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut spent = 0u64;
        for round in 0..2_000_000u64 {
            spent = spent.wrapping_mul(31).wrapping_add(round);
        }
        assert!(spent != 1);
        let seconds = process_cpu_seconds().unwrap_or(-1.0);
        assert!(seconds >= 0.0, "{seconds}");
        assert!(Metrics::new()
            .render()
            .contains("halfveil_process_cpu_seconds "));
    }

    /// Every metric the Grafana dashboard in `contrib/grafana/` queries is one a node
    /// serves (histograms with one of their series' suffixes; families observed once so
    /// they render).
    #[test]
    fn the_dashboard_queries_only_metrics_a_node_serves() {
        let metrics = Metrics::new();
        metrics.block_commit_seconds.observe(0.001);
        metrics.replica_propose_seconds.observe(0.01);
        for family in [
            &metrics.gossip_blocks,
            &metrics.link_requests,
            &metrics.peer_offences,
        ] {
            family.get_or_create(&[("label", "value")]).inc();
        }
        let served: Vec<String> = metrics
            .render()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
            .collect();
        let dashboard = include_str!("../../contrib/grafana/halfveil.json");
        let mut queried = 0;
        for (index, _) in dashboard.match_indices("halfveil_") {
            let name: String = dashboard[index..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == "halfveil_" {
                continue;
            }
            queried += 1;
            assert!(
                served.contains(&name),
                "the dashboard queries {name}, which no node serves"
            );
        }
        assert!(
            queried > 20,
            "{queried} metric names found in the dashboard"
        );
    }
}
