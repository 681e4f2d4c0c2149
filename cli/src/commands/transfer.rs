//! `halfveil transfer status`: a transfer's status as a node sees it.

use clap::{Args, Subcommand};
use halfveil_node::rpc::ApiClient;

use crate::client::{block_on, Node};
use crate::failure::CommandResult;
use crate::output::{emit, OutputFormat};

/// `halfveil transfer`: look up a transfer.
#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// A transfer's status at a node.
    Status(StatusArgs),
}

impl TransferCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            TransferCommand::Status(args) => args.execute(output),
        }
    }
}

/// `halfveil transfer status`: one transfer, by id, at the node of `--rpc`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub rpc: String,
    pub id: String,
}

impl StatusArgs {
    /// Prints the transfer's status as the node reports it.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let status = block_on(async {
            let node = Node::connect(&self.rpc).await?;
            node.client
                .transfer_status(self.id.clone())
                .await
                .map_err(|error| node.failure(error))
        })??;
        emit(output, &status, || {
            serde_json::to_string_pretty(&status).unwrap_or_default()
        });
        Ok(())
    }
}
