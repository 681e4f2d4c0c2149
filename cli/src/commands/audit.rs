//! Auditors' commands: export and import the chain, replay and verify it from genesis, and
//! the threshold disclosure of one payment's payer (SPEC sections 6 and 7).
//!
//! Replay trusts nothing but the genesis: every block goes through the same pure
//! `apply` the nodes run (parent links, the IM's signature, op and state roots, every
//! transaction credential and bank attestation, the replay rule, expiry, balances, supply,
//! disclosure thresholds and signers); signature batches are verified on every core.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use halfveil_genesis::file::ValidGenesis;
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_genesis::Genesis;
use halfveil_ledger::crypto::{self, X25519Secret};
use halfveil_ledger::{
    apply, apply_blocks_pending, codec, ApplyError, Block, ChainId, Domain, Hash32, Op, State,
    X25519PublicKey, VERSION,
};
use halfveil_node::config::Config;
use halfveil_node::rpc::{ApiClient, DiscloseParams, DisclosureResult, OrderSignature};
use halfveil_store::{BlockWrite, RocksStore, Store};
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::chainfile::{ChainReader, ChainWriter};
use crate::client::{block_on, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// Blocks checked together: their signatures are one batch.
const REPLAY_WINDOW_BLOCKS: usize = 512;
const REPLAY_WINDOW_TRANSFERS: usize = 16_384;
/// Blocks fetched from a node ahead of the one being checked.
const FETCH_AHEAD: usize = 8;
/// The longest basis text an order carries.
const BASIS_BYTES_MAX: usize = 4096;
const ORDER_FILE_BYTES_MAX: u64 = 1 << 20;

/// Where the chain comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Rpc(String),
    File(PathBuf),
}

/// A progress bar on a terminal for text output; hidden otherwise.
fn progress(total: u64, output: OutputFormat, what: &str) -> ProgressBar {
    if output == OutputFormat::Json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} blocks ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Blocks in height order from a file or a node.
enum Blocks {
    File(ChainReader),
    Rpc {
        receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, Failure>>,
        runtime: tokio::runtime::Runtime,
    },
}

impl Blocks {
    fn next_encoded(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        match self {
            Blocks::File(reader) => reader.next_encoded(),
            Blocks::Rpc { receiver, runtime } => runtime.block_on(receiver.recv()).transpose(),
        }
    }
}

/// Opens a source: its genesis text, the highest height it holds, and its blocks from
/// `from` up to `to`.
fn open_source(
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

fn parse_genesis(text: &str, pinned: Option<&Path>) -> Result<ValidGenesis, Failure> {
    let genesis = Genesis::parse(text.as_bytes()).map_err(|error| {
        Failure::verification(format!("the chain's genesis is invalid: {error}"))
    })?;
    if let Some(path) = pinned {
        let trusted = Genesis::load(path)
            .map_err(|error| Failure::verification(format!("{}: {error}", path.display())))?;
        if trusted.hash != genesis.hash {
            return Err(Failure::verification(format!(
                "the chain's genesis {} is not the trusted genesis {} of {}",
                genesis.hash.to_hex(),
                trusted.hash.to_hex(),
                path.display()
            )));
        }
    }
    Ok(genesis)
}

pub fn export(
    rpc: &str,
    out: &Path,
    from: Option<u64>,
    to: Option<u64>,
    output: OutputFormat,
) -> CommandResult {
    let from = from.unwrap_or(1).max(1);
    let (genesis, last, mut blocks) = open_source(&Source::Rpc(rpc.to_owned()), from, to)?;
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

/// What a replay found.
#[derive(Debug, Serialize)]
pub struct ReplaySummary {
    pub ok: bool,
    pub genesis_hash: String,
    pub blocks: u64,
    pub ops: u64,
    pub transfers: u64,
    pub accounts: usize,
    pub supply: u64,
    pub disclosures: Vec<DisclosureSeen>,
    pub head_hash: String,
    pub state_root: String,
    pub seconds: f64,
    pub transfers_per_second: f64,
    /// The first violation: where and why.
    pub violation: Option<ViolationReport>,
}

#[derive(Debug, Serialize)]
pub struct DisclosureSeen {
    pub height: u64,
    pub order_hash: String,
    pub transfer: String,
    pub signers: Vec<u16>,
    pub result_hash: String,
}

#[derive(Debug, Serialize)]
pub struct ViolationReport {
    pub height: u64,
    pub op: Option<usize>,
    pub op_kind: Option<String>,
    pub reason: String,
}

/// Replays `source` from genesis; stops at the first violation.
pub fn replay_chain(
    source: &Source,
    to: Option<u64>,
    pinned: Option<&Path>,
    output: OutputFormat,
) -> Result<ReplaySummary, Failure> {
    let (genesis_text, last, mut blocks) = open_source(source, 1, to)?;
    let genesis = parse_genesis(&genesis_text, pinned)?;
    let params = &genesis.params;
    let mut state = State::genesis(params)?;
    let started = Instant::now();
    let bar = progress(if last == u64::MAX { 0 } else { last }, output, "replaying");
    let mut summary = ReplaySummary {
        ok: true,
        genesis_hash: genesis.hash.to_hex(),
        blocks: 0,
        ops: 0,
        transfers: 0,
        accounts: 0,
        supply: 0,
        disclosures: Vec::new(),
        head_hash: state.head_hash.to_hex(),
        state_root: String::new(),
        seconds: 0.0,
        transfers_per_second: 0.0,
        violation: None,
    };
    // Blocks are read and decoded on their own thread while the window before them is
    // checked; a window's signatures are verified as one batch on every core.
    let (sender, decoded) = std::sync::mpsc::sync_channel::<Result<Result<Block, String>, Failure>>(
        REPLAY_WINDOW_BLOCKS * 2,
    );
    let reader = std::thread::spawn(move || loop {
        let next = match blocks.next_encoded() {
            Ok(Some(bytes)) => Ok(Block::decode(&bytes).map_err(|error| error.to_string())),
            Ok(None) => return,
            Err(error) => Err(error),
        };
        let stop = next.is_err();
        if sender.send(next).is_err() || stop {
            return;
        }
    });
    // While one window's signatures are verified on a helper thread, the next window is
    // applied; a window counts only once its signatures hold.
    let mut previous: Option<Verifying> = None;
    let mut ended = false;
    while !ended && summary.violation.is_none() {
        let mut window: Vec<Block> = Vec::with_capacity(REPLAY_WINDOW_BLOCKS);
        let mut window_ops = 0usize;
        let mut undecodable = None;
        let base = summary.blocks
            + previous
                .as_ref()
                .map_or(0, |(blocks, _)| blocks.len() as u64);
        while window.len() < REPLAY_WINDOW_BLOCKS && window_ops < REPLAY_WINDOW_TRANSFERS {
            let height = base + window.len() as u64 + 1;
            if height > last {
                ended = true;
                break;
            }
            match decoded.recv() {
                Err(_) => {
                    ended = true;
                    break;
                }
                Ok(Err(failure)) => return Err(failure),
                Ok(Ok(Err(error))) => {
                    undecodable = Some(ViolationReport {
                        height,
                        op: None,
                        op_kind: None,
                        reason: format!("the block does not decode: {error}"),
                    });
                    ended = true;
                    break;
                }
                Ok(Ok(Ok(block))) => {
                    window_ops += block.ops.len();
                    window.push(block);
                }
            }
        }
        let checked = apply_blocks_pending(params, &mut state, &window);
        if let Some(verifying) = previous.take() {
            settle(&mut summary, &bar, verifying)?;
            if summary.violation.is_some() {
                break;
            }
        }
        match checked {
            Ok(pending) => {
                if window.is_empty() {
                    continue;
                }
                let verifier = std::thread::spawn(move || pending.verify());
                previous = Some((window, verifier));
            }
            Err(failure) => {
                let (index, error) = *failure;
                count_blocks(&mut summary, &window[..index])?;
                summary.violation = Some(violation_at(&summary, &window, index, &error));
            }
        }
        if summary.violation.is_none() {
            if let Some(undecodable) = undecodable {
                // Everything before the undecodable block must hold first.
                if let Some(verifying) = previous.take() {
                    settle(&mut summary, &bar, verifying)?;
                }
                if summary.violation.is_none() {
                    summary.violation = Some(undecodable);
                }
            }
        }
    }
    if let Some(verifying) = previous.take() {
        settle(&mut summary, &bar, verifying)?;
    }
    drop(decoded);
    let _ = reader.join();
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    summary.ok = summary.violation.is_none();
    summary.accounts = state.account_count();
    summary.supply = state.supply.0;
    summary.head_hash = state.head_hash.to_hex();
    summary.state_root = state.state_root().to_hex();
    summary.seconds = seconds;
    summary.transfers_per_second = summary.transfers as f64 / seconds.max(f64::EPSILON);
    Ok(summary)
}

/// A window of applied blocks and the thread verifying their signatures.
type Verifying = (
    Vec<Block>,
    std::thread::JoinHandle<Result<(), halfveil_ledger::apply::RunError>>,
);

/// Waits for a window's signatures: counts its blocks if they hold, or those before the
/// first bad one and records the violation.
fn settle(
    summary: &mut ReplaySummary,
    bar: &ProgressBar,
    (blocks, verifier): Verifying,
) -> Result<(), Failure> {
    let verified = verifier
        .join()
        .map_err(|_| Failure::error("signature verification failed to run"))?;
    match verified {
        Ok(()) => {
            count_blocks(summary, &blocks)?;
            bar.inc(blocks.len() as u64);
        }
        Err(failure) => {
            let (index, error) = *failure;
            count_blocks(summary, &blocks[..index])?;
            summary.violation = Some(violation_at(summary, &blocks, index, &error));
        }
    }
    Ok(())
}

/// Adds verified blocks to the summary.
fn count_blocks(summary: &mut ReplaySummary, blocks: &[Block]) -> Result<(), Failure> {
    for block in blocks {
        summary.blocks += 1;
        summary.ops += block.ops.len() as u64;
        for op in &block.ops {
            match op {
                Op::Transfer(_) => summary.transfers += 1,
                Op::Disclosure(disclosure) => summary.disclosures.push(DisclosureSeen {
                    height: summary.blocks,
                    order_hash: disclosure.order.hash()?.to_hex(),
                    transfer: disclosure.order.transfer.to_hex(),
                    signers: disclosure.signatures.iter().map(|s| s.auditor.0).collect(),
                    result_hash: disclosure.result_hash.to_hex(),
                }),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The violation at `blocks[index]`, the block right after those counted so far. Its height
/// is its position in the chain: a block that lies about its height is reported where it
/// stands.
fn violation_at(
    summary: &ReplaySummary,
    blocks: &[Block],
    index: usize,
    error: &ApplyError,
) -> ViolationReport {
    ViolationReport {
        height: summary.blocks + 1,
        op: error.op,
        op_kind: error
            .op
            .and_then(|op| blocks.get(index).and_then(|block| block.ops.get(op)))
            .map(|op| op.kind().to_owned()),
        reason: error.violation.to_string(),
    }
}

pub fn replay(
    source: &Source,
    to: Option<u64>,
    pinned: Option<&Path>,
    output: OutputFormat,
) -> CommandResult {
    let summary = replay_chain(source, to, pinned, output)?;
    emit(output, &summary, || match &summary.violation {
        Some(violation) => format!(
            "INVALID at block {}{}: {}\n(verified {} blocks before it)",
            violation.height,
            match (violation.op, &violation.op_kind) {
                (Some(op), Some(kind)) => format!(", op {op} ({kind})"),
                (Some(op), None) => format!(", op {op}"),
                _ => String::new(),
            },
            violation.reason,
            summary.blocks
        ),
        None => {
            let mut text = format!(
                "valid: {} blocks, {} ops, {} transfers, {} accounts, supply {}, {} disclosures\nhead {} state root {}\n{:.2} s, {:.0} transfers/s",
                summary.blocks,
                summary.ops,
                summary.transfers,
                summary.accounts,
                summary.supply,
                summary.disclosures.len(),
                summary.head_hash,
                summary.state_root,
                summary.seconds,
                summary.transfers_per_second
            );
            for disclosure in &summary.disclosures {
                text.push_str(&format!(
                    "\ndisclosure at block {}: transfer {} by auditors {:?} (order {})",
                    disclosure.height,
                    disclosure.transfer,
                    disclosure.signers,
                    disclosure.order_hash
                ));
            }
            text
        }
    });
    match &summary.violation {
        Some(violation) => Err(Failure::verification(format!(
            "the chain breaks a rule at block {}: {}",
            violation.height, violation.reason
        ))),
        None => Ok(()),
    }
}

/// Imports a chain file into a stopped node's store, verifying every block.
pub fn import(file: &Path, home: &Path, output: OutputFormat) -> CommandResult {
    let config = Config::load(home)?;
    let _lock = halfveil_node::run::lock_home(home).map_err(Failure::error)?;
    let genesis_path = Config::resolve(home, &config.keys.genesis);
    let genesis = Genesis::load(&genesis_path)
        .map_err(|error| Failure::error(format!("{}: {error}", genesis_path.display())))?;
    let mut reader = ChainReader::open(file)?;
    let theirs = Genesis::parse(reader.genesis_text.as_bytes())
        .map_err(|error| Failure::verification(format!("{}: genesis: {error}", file.display())))?;
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
        let change = apply(params, &state, &block)
            .map_err(|error| Failure::verification(format!("{}: {error}", file.display())))?;
        let block_hash = block.header().hash()?;
        store.commit(&BlockWrite {
            block: &block,
            encoded: None,
            block_hash,
            change: &change,
            last_signed: None,
            vault: &[],
        })?;
        state.commit(&change, block_hash);
        imported += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
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

/// Creates a requester's X25519 key file; disclosure results are sealed to it.
pub fn requester_key(
    out: &Path,
    password_file: Option<&Path>,
    output: OutputFormat,
) -> CommandResult {
    let password = password::obtain_new(password_file, "the requester key")?;
    let secret = X25519Secret::generate(&mut OsRng);
    let public = secret.public_key()?;
    keystore::write_key_file(
        out,
        FileKind::RequesterKey,
        secret.as_bytes(),
        &public.0,
        &password,
        KdfParams::DEFAULT,
    )?;
    #[derive(Serialize)]
    struct Created {
        file: String,
        public_key: String,
    }
    let report = Created {
        file: out.display().to_string(),
        public_key: hex::encode(public.0),
    };
    emit(output, &report, || {
        format!(
            "requester key {} written to {}",
            report.public_key, report.file
        )
    });
    Ok(())
}

/// A disclosure order as a file auditors pass around and sign.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderFile {
    pub version: u8,
    pub chain_id: String,
    pub genesis_hash: String,
    pub transfer: String,
    pub basis: String,
    pub basis_hash: String,
    pub requester_key: String,
    pub expires_at_ms: u64,
    /// The order's canonical encoding, hex: what the fields above encode.
    pub order: String,
    pub order_hash: String,
    /// The auditors' keys and threshold from genesis, so signers need no node.
    pub auditor_keys: Vec<String>,
    pub threshold: u16,
    pub signatures: Vec<OrderSignature>,
}

fn hex32(text: &str, what: &str) -> Result<[u8; 32], Failure> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| Failure::verification(format!("{what} must be 32 bytes of hex")))?;
    Ok(bytes)
}

impl OrderFile {
    /// The order the fields describe, checked against the encoding and hash in the file.
    fn order(&self) -> Result<(halfveil_ledger::DisclosureOrder, Hash32), Failure> {
        if self.basis_hash != Domain::DisclosureBasis.hash(self.basis.as_bytes()).to_hex() {
            return Err(Failure::verification(
                "the order's basis does not match its hash",
            ));
        }
        let order = halfveil_ledger::DisclosureOrder {
            version: self.version,
            chain_id: ChainId::new(&self.chain_id)
                .map_err(|error| Failure::verification(format!("chain_id: {error}")))?,
            transfer: Hash32(hex32(&self.transfer, "transfer")?),
            basis_hash: Hash32(hex32(&self.basis_hash, "basis_hash")?),
            requester_key: X25519PublicKey(hex32(&self.requester_key, "requester_key")?),
            expires_at: halfveil_ledger::TimeMs(self.expires_at_ms),
        };
        let encoded = hex::encode(codec::encode(&order)?);
        let hash = order.hash()?;
        if encoded != self.order || hash.to_hex() != self.order_hash {
            return Err(Failure::verification(
                "the order file's fields do not match its encoding: it was altered",
            ));
        }
        Ok((order, hash))
    }

    fn load(path: &Path) -> Result<OrderFile, Failure> {
        let bytes = std::fs::metadata(path)
            .map_err(|error| Failure::error(format!("{}: {error}", path.display())))?
            .len();
        if bytes > ORDER_FILE_BYTES_MAX {
            return Err(Failure::verification(format!(
                "{} is too large for an order",
                path.display()
            )));
        }
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(|error| {
            Failure::verification(format!("{}: not an order file: {error}", path.display()))
        })
    }

    fn save(&self, path: &Path, create: bool) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|error| Failure::error(error.to_string()))?;
        if create {
            keystore::write_new_private(path, text.as_bytes())?;
        } else {
            keystore::replace_private(path, text.as_bytes())?;
        }
        Ok(())
    }
}

/// Options of `audit order new`.
#[derive(Debug)]
pub struct NewOrder {
    pub transfer: String,
    pub basis: String,
    pub requester_key: PathBuf,
    pub out: PathBuf,
    pub genesis: PathBuf,
    pub expires_in: Duration,
    pub password_file: Option<PathBuf>,
}

pub fn order_new(options: &NewOrder, output: OutputFormat) -> CommandResult {
    if options.basis.trim().is_empty() || options.basis.len() > BASIS_BYTES_MAX {
        return Err(Failure::usage(format!(
            "--basis must be 1 to {BASIS_BYTES_MAX} bytes"
        )));
    }
    let genesis = Genesis::load(&options.genesis).map_err(|error| {
        Failure::verification(format!("{}: {error}", options.genesis.display()))
    })?;
    let transfer =
        Hash32(hex32(&options.transfer, "--transfer").map_err(|e| Failure::usage(e.message))?);
    let password = password::obtain(options.password_file.as_deref(), "the requester key")?;
    let requester =
        keystore::read_x25519_key(&options.requester_key, FileKind::RequesterKey, &password)?;
    let params = &genesis.params;
    let order = halfveil_ledger::DisclosureOrder {
        version: VERSION,
        chain_id: params.chain_id.clone(),
        transfer,
        basis_hash: Domain::DisclosureBasis.hash(options.basis.as_bytes()),
        requester_key: requester.public_key()?,
        expires_at: halfveil_ledger::TimeMs(
            crate::cluster::now_ms()
                .saturating_add(u64::try_from(options.expires_in.as_millis()).unwrap_or(u64::MAX)),
        ),
    };
    let file = OrderFile {
        version: order.version,
        chain_id: order.chain_id.to_string(),
        genesis_hash: genesis.hash.to_hex(),
        transfer: transfer.to_hex(),
        basis: options.basis.clone(),
        basis_hash: order.basis_hash.to_hex(),
        requester_key: hex::encode(order.requester_key.0),
        expires_at_ms: order.expires_at.0,
        order: hex::encode(codec::encode(&order)?),
        order_hash: order.hash()?.to_hex(),
        auditor_keys: params
            .auditor_keys
            .iter()
            .map(|key| hex::encode(key.0))
            .collect(),
        threshold: params.disclosure_threshold,
        signatures: Vec::new(),
    };
    file.save(&options.out, true)?;
    emit(output, &file, || {
        format!(
            "order {} for transfer {} written to {}; it needs {} auditor signatures",
            file.order_hash,
            file.transfer,
            options.out.display(),
            file.threshold
        )
    });
    Ok(())
}

pub fn order_sign(
    order_path: &Path,
    key: &Path,
    password_file: Option<&Path>,
    output: OutputFormat,
) -> CommandResult {
    let mut file = OrderFile::load(order_path)?;
    let (_, hash) = file.order()?;
    let password = password::obtain(password_file, "the auditor key")?;
    let signing = keystore::read_signing_key(key, FileKind::AuditorKey, &password)?;
    let public = hex::encode(crypto::public_key(&signing).0);
    let auditor = file
        .auditor_keys
        .iter()
        .position(|listed| *listed == public)
        .ok_or_else(|| {
            Failure::verification(format!("{} is not an auditor of this chain", key.display()))
        })?;
    let auditor =
        u16::try_from(auditor).map_err(|_| Failure::error("auditor index out of range"))?;
    if file
        .signatures
        .iter()
        .any(|signed| signed.auditor == auditor)
    {
        return Err(Failure::usage(format!(
            "auditor {auditor} has already signed this order"
        )));
    }
    file.signatures.push(OrderSignature {
        auditor,
        signature: hex::encode(crypto::sign(&signing, &hash).0),
    });
    file.save(order_path, false)?;
    emit(output, &file, || {
        format!(
            "auditor {auditor} signed order {} ({} of {} signatures)",
            file.order_hash,
            file.signatures.len(),
            file.threshold
        )
    });
    Ok(())
}

pub fn disclose(
    rpc: &str,
    order_path: &Path,
    key: &Path,
    password_file: Option<&Path>,
    output: OutputFormat,
) -> CommandResult {
    let file = OrderFile::load(order_path)?;
    let (order, hash) = file.order()?;
    let password = password::obtain(password_file, "the requester key")?;
    let requester = keystore::read_x25519_key(key, FileKind::RequesterKey, &password)?;
    if requester.public_key()? != order.requester_key {
        return Err(Failure::usage(format!(
            "{} is not the order's requester key",
            key.display()
        )));
    }
    let disclosed = block_on(async {
        let node = Node::connect(rpc).await?;
        let genesis = node.genesis(Some(&file.genesis_hash)).await?;
        let disclosed = node
            .client
            .disclose(DiscloseParams {
                order: file.order.clone(),
                signatures: file.signatures.clone(),
            })
            .await
            .map_err(|error| node.failure(error))?;
        Ok::<_, Failure>((disclosed, genesis))
    })??;
    let (disclosed, genesis) = disclosed;
    let sealed = hex::decode(&disclosed.sealed_result)
        .map_err(|_| Failure::verification("the sealed result is not hex"))?;
    let plaintext =
        crypto::open_disclosure_result(&requester, &genesis.params.chain_id, &hash, &sealed)
            .map_err(|_| {
                Failure::verification("the sealed result does not open with the requester key")
            })?;
    let result: DisclosureResult = serde_json::from_slice(&plaintext).map_err(|error| {
        Failure::verification(format!("the disclosure result is malformed: {error}"))
    })?;
    if result.transfer != file.transfer {
        return Err(Failure::verification("the result is for another transfer"));
    }
    #[derive(Serialize)]
    struct Report<'a> {
        order_hash: &'a str,
        recorded_at_height: u64,
        result_hash: String,
        #[serde(flatten)]
        result: &'a DisclosureResult,
    }
    let report = Report {
        order_hash: &disclosed.order_hash,
        recorded_at_height: disclosed.height,
        result_hash: Domain::DisclosureResult.hash(&sealed).to_hex(),
        result: &result,
    };
    emit(output, &report, || {
        format!(
            "transfer {} (block {})\n  paid from account {}\n  payer: {} (national id {})\n  identity key {}\n  identity credential verified: {}\n  disclosure recorded on chain at block {} (order {})",
            result.transfer,
            result.height,
            result.account,
            result.name,
            result.national_id,
            result.identity_key,
            result.credential_verified,
            disclosed.height,
            disclosed.order_hash
        )
    });
    Ok(())
}
