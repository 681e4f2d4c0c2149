//! `halfveil chain head|block|export|import`: read the chain from a node, write it to a
//! chain file, and add a chain file's verified blocks to a stopped node's store; and the
//! [`Source`] of blocks (a node or a chain file) that export and `audit replay` read.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_genesis::Genesis;
use halfveil_ledger::{apply, Block, ChainParams, State};
use halfveil_node::config::Config;
use halfveil_node::rpc::ApiClient;
use halfveil_store::{BlockWrite, RocksStore, Store};
use serde::Serialize;

use crate::chainfile::{ChainReader, ChainWriter};
use crate::client::{block_on, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, progress, OutputFormat};

/// Blocks fetched from a node ahead of the one being checked.
const FETCH_AHEAD: usize = 8;

/// `halfveil chain`: the chain of a node, or of a chain file.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Write blocks (default: all) with the genesis to a chain file.
    Export(ExportArgs),
    /// Verify a chain file's blocks and add them to a stopped node's store.
    Import(ImportArgs),
    /// The node's head block.
    Head(HeadArgs),
    /// A block by height (the head when no height is given).
    Block(BlockArgs),
}

impl ChainCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            ChainCommand::Export(args) => args.execute(output),
            ChainCommand::Import(args) => args.execute(output),
            ChainCommand::Head(args) => args.execute(output),
            ChainCommand::Block(args) => args.execute(output),
        }
    }
}

/// `halfveil chain export`: a node's blocks from `--from` to `--to` into a new chain file.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub rpc: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub from: Option<u64>,
    #[arg(long)]
    pub to: Option<u64>,
}

/// `halfveil chain import`: a chain file's blocks into the store of the node at `--home`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub home: PathBuf,
}

/// `halfveil chain head`: a node's head block.
#[derive(Debug, Args)]
pub struct HeadArgs {
    #[arg(long)]
    pub rpc: String,
}

/// `halfveil chain block`: one block of a node.
#[derive(Debug, Args)]
pub struct BlockArgs {
    #[arg(long)]
    pub rpc: String,
    #[arg(long)]
    pub height: Option<u64>,
}

/// Where the chain comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Rpc(String),
    File(PathBuf),
}

/// Blocks in height order from a file or a node.
pub(crate) enum Blocks {
    File(ChainReader),
    Rpc {
        receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, Failure>>,
        runtime: tokio::runtime::Runtime,
    },
}

impl Blocks {
    /// The next block's canonical encoding; `None` after the last.
    pub(crate) fn next_encoded(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        match self {
            Blocks::File(reader) => reader.next_encoded(),
            Blocks::Rpc { receiver, runtime } => runtime.block_on(receiver.recv()).transpose(),
        }
    }
}

/// Opens a source: its genesis text, the highest height it holds, and its blocks from
/// `from` up to `to`.
pub(crate) fn open_source(
    source: &Source,
    from: u64,
    to: Option<u64>,
) -> Result<(String, u64, Blocks), Failure> {
    match source {
        Source::File(path) => {
            let reader = ChainReader::open(path)?;
            let genesis = reader.genesis_text.clone();
            Ok((genesis, to.unwrap_or(u64::MAX), Blocks::File(reader)))
        }
        Source::Rpc(url) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|error| Failure::error(format!("runtime: {error}")))?;
            let (genesis, head) = runtime.block_on(async {
                let node = Node::connect(url).await?;
                let genesis = node.client.genesis().await.map_err(|e| node.failure(e))?;
                let head = node.client.head().await.map_err(|e| node.failure(e))?;
                Ok::<_, Failure>((genesis, head.height))
            })?;
            let last = to.map_or(head, |to| to.min(head));
            let (sender, receiver) = tokio::sync::mpsc::channel(FETCH_AHEAD * 4);
            let url = url.clone();
            runtime.spawn(async move {
                use futures::StreamExt;
                let node = match Node::connect(&url).await {
                    Ok(node) => std::sync::Arc::new(node),
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                let mut fetches = futures::stream::iter(from..=last)
                    .map(|height| {
                        let node = std::sync::Arc::clone(&node);
                        async move {
                            let block = node
                                .client
                                .block(height)
                                .await
                                .map_err(|error| node.failure(error))?
                                .ok_or_else(|| {
                                    Failure::error(format!("{} has no block {height}", node.url))
                                })?;
                            hex::decode(&block.raw).map_err(|_| {
                                Failure::verification(format!("block {height} is not hex"))
                            })
                        }
                    })
                    .buffered(FETCH_AHEAD);
                while let Some(block) = fetches.next().await {
                    if sender.send(block).await.is_err() {
                        return;
                    }
                }
            });
            Ok((genesis, last, Blocks::Rpc { receiver, runtime }))
        }
    }
}

impl ExportArgs {
    /// Writes the genesis and the blocks, each checked to decode and to be at its height.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (rpc, out) = (&self.rpc, &self.out);
        let from = self.from.unwrap_or(1).max(1);
        let (genesis, last, mut blocks) = open_source(&Source::Rpc(rpc.clone()), from, self.to)?;
        let mut writer = ChainWriter::create(out, &genesis)?;
        let bar = progress(last.saturating_sub(from) + 1, output, "exporting");
        let mut count = 0u64;
        while let Some(bytes) = blocks.next_encoded()? {
            let block = Block::decode(&bytes).map_err(|error| {
                Failure::verification(format!(
                    "block {} from {rpc} does not decode: {error}",
                    from + count
                ))
            })?;
            if block.height().0 != from + count {
                return Err(Failure::verification(format!(
                    "{rpc} sent block {} where {} was expected",
                    block.height(),
                    from + count
                )));
            }
            writer.push(&bytes)?;
            count += 1;
            bar.inc(1);
        }
        writer.finish()?;
        bar.finish_and_clear();
        #[derive(Serialize)]
        struct Exported {
            file: String,
            from: u64,
            to: u64,
            blocks: u64,
        }
        let report = Exported {
            file: out.display().to_string(),
            from,
            to: from + count.saturating_sub(1),
            blocks: count,
        };
        emit(output, &report, || {
            format!(
                "exported blocks {}..={} ({} blocks) to {}",
                report.from, report.to, report.blocks, report.file
            )
        });
        Ok(())
    }
}

impl ImportArgs {
    /// Imports the chain file into the stopped node's store, verifying every block; blocks
    /// the node has already must be the file's.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (file, home) = (&self.file, &self.home);
        let config = Config::load(home)?;
        let _lock = halfveil_node::run::lock_home(home)?;
        let genesis_path = Config::resolve(home, &config.keys.genesis);
        let genesis = Genesis::load(&genesis_path)
            .map_err(|error| Failure::error(format!("{}: {error}", genesis_path.display())))?;
        let mut reader = ChainReader::open(file)?;
        let theirs = Genesis::parse(reader.genesis_text.as_bytes()).map_err(|error| {
            Failure::verification(format!("{}: genesis: {error}", file.display()))
        })?;
        if theirs.hash != genesis.hash {
            return Err(Failure::verification(format!(
                "{} is a chain of genesis {}, the node's genesis is {}",
                file.display(),
                theirs.hash.to_hex(),
                genesis.hash.to_hex()
            )));
        }
        let params = &genesis.params;
        let data_dir = Config::resolve(home, &config.storage.data_dir);
        let store = RocksStore::open(&data_dir, params)?;
        let mut state = store.load_state(params)?;
        let start = state.height.0;
        let (imported, seen) =
            import_blocks(file, &mut reader, &store, params, &mut state, output)?;
        #[derive(Serialize)]
        struct Imported {
            from_height: u64,
            imported: u64,
            blocks_in_file: u64,
            head: u64,
        }
        let report = Imported {
            from_height: start,
            imported,
            blocks_in_file: seen,
            head: state.height.0,
        };
        emit(output, &report, || {
            format!(
                "imported {} verified blocks (the node was at {}, now at {})",
                report.imported, report.from_height, report.head
            )
        });
        Ok(())
    }
}

/// Applies and commits the blocks of `reader` above the node's height (`state`); those at
/// or below it must equal the node's. Returns how many were imported and how many the
/// file holds.
fn import_blocks(
    file: &Path,
    reader: &mut ChainReader,
    store: &RocksStore,
    params: &ChainParams,
    state: &mut State,
    output: OutputFormat,
) -> Result<(u64, u64), Failure> {
    let bar = progress(0, output, "importing");
    let mut imported = 0u64;
    let mut seen = 0u64;
    while let Some(block) = reader.next_block()? {
        seen += 1;
        let height = block.height().0;
        if height <= state.height.0 {
            let ours = store.block(block.height())?;
            if ours.as_ref() != Some(&block) {
                return Err(Failure::verification(format!(
                    "block {height} of {} differs from the node's block {height}",
                    file.display()
                )));
            }
            continue;
        }
        let change = apply(params, state, &block)
            .map_err(|error| Failure::verification(format!("{}: {error}", file.display())))?;
        let block_hash = block.header().hash()?;
        store.commit(&BlockWrite {
            block: &block,
            encoded: None,
            block_hash,
            change: &change,
            last_signed: None,
            local: &[],
        })?;
        state.commit(&change, block_hash);
        imported += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((imported, seen))
}

impl HeadArgs {
    /// Prints the node's head.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let rpc = &self.rpc;
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
}

impl BlockArgs {
    /// Prints the block at `--height`, or the head block.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (rpc, height) = (&self.rpc, self.height);
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
}
