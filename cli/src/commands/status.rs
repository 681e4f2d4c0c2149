//! `halfveil status`: a node's status.

use clap::Args;
use halfveil_node::rpc::ApiClient;

use crate::client::{block_on, Node};
use crate::failure::CommandResult;
use crate::output::{emit, OutputFormat};

/// `halfveil status`: the node at `--rpc`: its role, chain, height, peers and pool.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub rpc: String,
}

impl StatusArgs {
    /// Prints the node's status.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let status = block_on(async {
            let node = Node::connect(&self.rpc).await?;
            node.client
                .status()
                .await
                .map_err(|error| node.failure(error))
        })??;
        emit(output, &status, || {
            let mut text = format!(
                "{} ({})  chain {}  height {}  peers {}  accounts {}  supply {}  pending {}",
                status.moniker,
                status.role,
                status.chain_id,
                status.height,
                status.peers,
                status.accounts,
                status.supply,
                status.pool_pending
            );
            if let Some(replica) = &status.replica {
                let leader = replica
                    .leader
                    .map_or_else(|| "none".to_owned(), |leader| format!("replica {leader}"));
                text.push_str(&format!(
                    "\n  replica {}: {}  term {}  leader {}  log {}  applied {}  snapshot {}  purged {}",
                    replica.replica,
                    replica.role,
                    replica.term,
                    leader,
                    replica.last_log_index.unwrap_or(0),
                    replica.last_applied.unwrap_or(0),
                    replica.snapshot.unwrap_or(0),
                    replica.purged.unwrap_or(0)
                ));
            }
            text
        });
        Ok(())
    }
}
