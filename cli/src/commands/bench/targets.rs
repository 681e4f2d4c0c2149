//! The nodes a bench talks to: found by their statuses, waited for, and compared once the
//! load is over.

use std::time::{Duration, Instant};

use futures::StreamExt;
use halfveil_ledger::BankId;
use halfveil_node::rpc::{ApiClient, HeadInfo, NodeStatus};

use super::accounts::BenchAccount;
use super::report::NodeCost;
use super::{RECONNECT_PATIENCE, SETUP_CONCURRENCY};
use crate::client::{AdminAccess, Reconnecting};
use crate::failure::Failure;

/// The nodes a bench talks to, found by asking each for its status; connected once.
pub(super) struct Targets {
    /// Every node with its moniker: the IM and the banks.
    pub(super) nodes: Vec<(String, Reconnecting)>,
    /// Which of `nodes` is the identity manager (its first replica, if it has several).
    pub(super) im: usize,
    /// How many of `nodes` are the identity manager's replicas.
    pub(super) im_replicas: usize,
    pub(super) banks: Vec<(BankId, String)>,
    pub(super) im_admin: AdminAccess,
}

impl Targets {
    pub(super) async fn discover(
        urls: &[String],
        im_admin: AdminAccess,
    ) -> Result<Targets, Failure> {
        let mut ims = Vec::new();
        let mut banks = Vec::new();
        let mut nodes = Vec::with_capacity(urls.len());
        for url in urls {
            let node = Reconnecting::connect(url, RECONNECT_PATIENCE).await?;
            let status = node
                .call(|node| async move { node.client.status().await })
                .await?;
            match status.bank {
                Some(bank) => banks.push((BankId(bank), url.clone())),
                None => ims.push(nodes.len()),
            }
            nodes.push((status.moniker, node));
        }
        let im = *ims
            .first()
            .ok_or_else(|| Failure::usage("no --rpc is the identity manager"))?;
        if banks.len() < 2 {
            return Err(Failure::usage(
                "the bench needs two banks among the --rpc nodes",
            ));
        }
        banks.sort();
        Ok(Targets {
            nodes,
            im,
            im_replicas: ims.len(),
            banks,
            im_admin,
        })
    }

    pub(super) fn im(&self) -> &Reconnecting {
        &self.nodes[self.im].1
    }

    /// Each node's status, in `nodes` order.
    pub(super) async fn statuses(&self) -> Result<Vec<NodeStatus>, Failure> {
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
    pub(super) async fn wait_height(&self, height: u64, limit: Duration) -> Result<(), Failure> {
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

/// Each node's CPU seconds between two of its statuses.
pub(super) fn node_costs(
    targets: &Targets,
    before: &[NodeStatus],
    after: &[NodeStatus],
) -> Vec<NodeCost> {
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
pub(super) struct Settled {
    /// The identity manager's head once every node reached the highest head seen.
    pub(super) head: HeadInfo,
    /// Every node has the same head hash, state root and balance of every account.
    pub(super) nodes_agree: bool,
    /// The sum of the accounts' balances (as the first node reports them).
    pub(super) balances_total: u64,
}

/// Waits until every node holds the highest head any of them reported, then compares
/// their heads and the balance of every account.
pub(super) async fn settle(
    targets: &Targets,
    accounts: &[BenchAccount],
) -> Result<Settled, Failure> {
    // The highest head any node holds: a replica restarted late in a failover run may
    // still be catching up, so the first IM node is not the reference.
    let mut heads = Vec::with_capacity(targets.nodes.len());
    for (_, node) in &targets.nodes {
        heads.push(
            node.call(|node| async move { node.client.head().await })
                .await?,
        );
    }
    let top = heads.iter().map(|head| head.height).max().unwrap_or(0);
    targets.wait_height(top, Duration::from_secs(60)).await?;
    let head = targets
        .im()
        .call(|node| async move { node.client.head().await })
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
