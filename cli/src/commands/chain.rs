//! `halfveil chain head|block` and `halfveil transfer status`: read-only views of a node.

use halfveil_node::rpc::ApiClient;

use crate::client::{block_on, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

pub fn head(rpc: &str, output: OutputFormat) -> CommandResult {
    let head = block_on(async {
        let node = Node::connect(rpc).await?;
        node.client
            .head()
            .await
            .map_err(|error| node.failure(error))
    })??;
    emit(output, &head, || {
        format!(
            "height {}\nhash {}\ntime_ms {}\nstate_root {}\nsupply {}",
            head.height, head.hash, head.time_ms, head.state_root, head.supply
        )
    });
    Ok(())
}

pub fn block(rpc: &str, height: Option<u64>, output: OutputFormat) -> CommandResult {
    let block = block_on(async {
        let node = Node::connect(rpc).await?;
        let height = match height {
            Some(height) => height,
            None => {
                node.client
                    .head()
                    .await
                    .map_err(|error| node.failure(error))?
                    .height
            }
        };
        node.client
            .block(height)
            .await
            .map_err(|error| node.failure(error))?
            .ok_or_else(|| Failure::error(format!("{rpc} has no block at height {height}")))
    })??;
    emit(output, &block, || {
        format!(
            "height {}\nhash {}\nparent {}\ntime_ms {}\nop_root {}\nstate_root {}\nops {} (transfers {}, attestations {})",
            block.height,
            block.hash,
            block.parent,
            block.time_ms,
            block.op_root,
            block.state_root,
            block.ops,
            block.transfers,
            block.attestations
        )
    });
    Ok(())
}

pub fn transfer_status(rpc: &str, id: &str, output: OutputFormat) -> CommandResult {
    let status = block_on(async {
        let node = Node::connect(rpc).await?;
        node.client
            .transfer_status(id.to_owned())
            .await
            .map_err(|error| node.failure(error))
    })??;
    emit(output, &status, || {
        serde_json::to_string_pretty(&status).unwrap_or_default()
    });
    Ok(())
}

pub fn status(rpc: &str, output: OutputFormat) -> CommandResult {
    let status = block_on(async {
        let node = Node::connect(rpc).await?;
        node.client
            .status()
            .await
            .map_err(|error| node.failure(error))
    })??;
    emit(output, &status, || {
        format!(
            "{} ({})  chain {}  height {}  peers {}  accounts {}  supply {}  pending {}",
            status.moniker,
            status.role,
            status.chain_id,
            status.height,
            status.peers,
            status.accounts,
            status.supply,
            status.pool_pending
        )
    });
    Ok(())
}
