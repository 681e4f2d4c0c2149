//! `halfveil audit`: replay and verify the chain from genesis, and the threshold disclosure
//! of one payment's payer (SPEC sections 6 and 7). Exporting and importing the chain are
//! `halfveil chain export|import`, in `chain.rs`.
//!
//! Replay trusts nothing but the genesis: every block goes through the same pure
//! `apply` the nodes run (parent links, the IM's signature, op and state roots, every
//! transaction credential and bank attestation, the replay rule, expiry, balances, supply,
//! disclosure thresholds and signers); signature batches are verified on every core.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Instant;

use clap::{Args, Subcommand};
use halfveil_genesis::file::ValidGenesis;
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_genesis::Genesis;
use halfveil_ledger::crypto::X25519Secret;
use halfveil_ledger::{
    apply_blocks_pending, ApplyError, Block, ChainParams, CodecError, Op, State,
};
use indicatif::ProgressBar;
use rand_core::OsRng;
use serde::Serialize;

use crate::commands::chain::{open_source, Blocks, Source};
use crate::commands::disclosure::{DiscloseArgs, ShareArgs, Watch};
use crate::commands::order::OrderCommand;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, progress, OutputFormat};
use crate::password;

/// Blocks checked together: their signatures are one batch.
const REPLAY_WINDOW_BLOCKS: usize = 512;
const REPLAY_WINDOW_TRANSFERS: usize = 16_384;

/// `halfveil audit`: replay and verify the chain; threshold disclosure.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every block from genesis; exit 3 at the first violation.
    Replay(ReplayArgs),
    /// Create a requester's key (holders seal their decryption shares to it).
    RequesterKey(RequesterKeyArgs),
    /// Disclosure orders: write, sign, record on chain.
    #[command(subcommand)]
    Order(OrderCommand),
    /// As a holder of the disclosure key: check a recorded order on your own replay, release
    /// your decryption shares sealed to its requester, and record that on chain.
    Share(ShareArgs),
    /// As the requester: combine a quorum of holders' shares and open the payer's identity.
    Disclose(DiscloseArgs),
}

impl AuditCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            AuditCommand::Replay(args) => args.execute(output),
            AuditCommand::RequesterKey(args) => args.execute(output),
            AuditCommand::Order(command) => command.execute(output),
            AuditCommand::Share(args) => args.execute(output),
            AuditCommand::Disclose(args) => args.execute(output),
        }
    }
}

/// `halfveil audit replay`: the chain of a node or of a chain file, checked from genesis.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub rpc: Option<String>,
    /// A chain file from `halfveil chain export`.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Stop after this height.
    #[arg(long)]
    pub to: Option<u64>,
    /// A genesis the auditor trusts; the chain's genesis must be this one.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
}

/// `halfveil audit requester-key`: a new requester's key file.
#[derive(Debug, Args)]
pub struct RequesterKeyArgs {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// The chain's genesis from its text; with `pinned`, it must be the genesis of that file.
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
    /// Disclosure orders recorded on chain, with the holders' share records of each.
    pub disclosures: Vec<DisclosureSeen>,
    /// Disclosure keys adopted on chain after genesis's (refreshes and new epochs).
    pub keys_adopted: Vec<KeySeen>,
    /// How many holders' shares open a disclosure (the current disclosure key's threshold).
    pub shares_needed: u16,
    /// The current disclosure key's epoch and refresh (genesis's, or the last adopted).
    pub key_epoch: u32,
    pub key_refresh: u32,
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
    /// The auditors who signed the order.
    pub signers: Vec<u16>,
    /// Each holder's record that it released its shares to the requester.
    pub shares: Vec<ShareSeen>,
    /// Whether enough holders released shares for the requester to open the identity.
    pub openable: bool,
}

/// A disclosure key adopted on chain, signed by every holder.
#[derive(Debug, Serialize)]
pub struct KeySeen {
    pub height: u64,
    pub epoch: u32,
    pub refresh: u32,
    pub threshold: u16,
    pub holders: Vec<u16>,
}

#[derive(Debug, Serialize)]
pub struct ShareSeen {
    pub height: u64,
    pub holder: u16,
    pub sealed_hash: String,
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
    replay_chain_watching(source, to, pinned, output, Watch::default()).map(|(summary, _)| summary)
}

/// [`replay_chain`], showing `watch` every verified block (a disclosure's holder or
/// requester looks for its order, transfer and opening this way).
pub fn replay_chain_watching(
    source: &Source,
    to: Option<u64>,
    pinned: Option<&Path>,
    output: OutputFormat,
    watch: Watch,
) -> Result<(ReplaySummary, Watch), Failure> {
    let (genesis_text, last, blocks) = open_source(source, 1, to)?;
    let genesis = parse_genesis(&genesis_text, pinned)?;
    let params = &genesis.params;
    let mut state = State::genesis(params)?;
    let started = Instant::now();
    let bar = progress(if last == u64::MAX { 0 } else { last }, output, "replaying");
    let summary = ReplaySummary::new(genesis.hash.to_hex(), state.head_hash.to_hex());
    let mut replay = Replay { summary, watch };
    // Blocks are read and decoded on their own thread while the window before them is
    // checked; a window's signatures are verified as one batch on every core.
    let (decoded, reader) = spawn_decoder(blocks);
    check_windows(params, &mut state, &decoded, last, &mut replay, &bar)?;
    drop(decoded);
    let _ = reader.join();
    bar.finish_and_clear();
    replay
        .summary
        .finish(&state, started.elapsed().as_secs_f64());
    replay.watch.keys = Some(state.disclosure_keys().clone());
    Ok((replay.summary, replay.watch))
}

/// A replay's findings so far: the summary, and the watch that sees every verified block.
struct Replay {
    summary: ReplaySummary,
    watch: Watch,
}

impl ReplaySummary {
    /// Nothing replayed yet: the chain of genesis `genesis_hash`, at its genesis head.
    fn new(genesis_hash: String, head_hash: String) -> ReplaySummary {
        ReplaySummary {
            ok: true,
            genesis_hash,
            blocks: 0,
            ops: 0,
            transfers: 0,
            accounts: 0,
            supply: 0,
            disclosures: Vec::new(),
            keys_adopted: Vec::new(),
            shares_needed: 0,
            key_epoch: 0,
            key_refresh: 0,
            head_hash,
            state_root: String::new(),
            seconds: 0.0,
            transfers_per_second: 0.0,
            violation: None,
        }
    }

    /// Records the replayed state and the `seconds` the replay took.
    fn finish(&mut self, state: &State, seconds: f64) {
        self.ok = self.violation.is_none();
        self.accounts = state.account_count();
        self.supply = state.supply.0;
        self.head_hash = state.head_hash.to_hex();
        self.state_root = state.state_root().to_hex();
        let key = state.disclosure_key();
        (self.shares_needed, self.key_epoch, self.key_refresh) =
            (key.threshold, key.epoch, key.refresh);
        self.seconds = seconds;
        self.transfers_per_second = self.transfers as f64 / seconds.max(f64::EPSILON);
        for disclosure in &mut self.disclosures {
            disclosure.openable = disclosure.shares.len() >= usize::from(self.shares_needed);
        }
    }
}

/// A block as the decoder thread sends it: decoded, not decodable (and why), or a failure
/// to read the source.
type Decoded = Result<Result<Block, CodecError>, Failure>;

/// Reads and decodes `blocks` on a thread of its own, up to two windows ahead; it stops
/// at the end of the blocks, at a failure to read them, or when the receiver is dropped.
fn spawn_decoder(mut blocks: Blocks) -> (Receiver<Decoded>, JoinHandle<()>) {
    let (sender, decoded) = std::sync::mpsc::sync_channel::<Decoded>(REPLAY_WINDOW_BLOCKS * 2);
    let reader = std::thread::spawn(move || loop {
        let next = match blocks.next_encoded() {
            Ok(Some(bytes)) => Ok(Block::decode(&bytes)),
            Ok(None) => return,
            Err(error) => Err(error),
        };
        let stop = next.is_err();
        if sender.send(next).is_err() || stop {
            return;
        }
    });
    (decoded, reader)
}

/// Applies the blocks window by window up to height `last`. While one window's signatures
/// are verified on a helper thread, the next window is applied; a window counts only once
/// its signatures hold. Stops at the first violation, which it records in `summary`.
fn check_windows(
    params: &ChainParams,
    state: &mut State,
    decoded: &Receiver<Decoded>,
    last: u64,
    replay: &mut Replay,
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let mut previous: Option<Verifying> = None;
    let mut ended = false;
    while !ended && replay.summary.violation.is_none() {
        let base = replay.summary.blocks
            + previous
                .as_ref()
                .map_or(0, |(blocks, _)| blocks.len() as u64);
        let window = read_window(decoded, base, last)?;
        ended = window.ended;
        let checked = apply_blocks_pending(params, state, &window.blocks);
        if let Some(verifying) = previous.take() {
            settle(replay, bar, verifying)?;
            if replay.summary.violation.is_some() {
                break;
            }
        }
        match checked {
            // An empty window still goes on to its undecodable block, if any: the first
            // block of a file that does not decode is a violation, not an empty chain.
            Ok(pending) if window.blocks.is_empty() => drop(pending),
            Ok(pending) => {
                let verifier = std::thread::spawn(move || pending.verify());
                previous = Some((window.blocks, verifier));
            }
            Err(failure) => {
                let (index, error) = *failure;
                count_blocks(replay, &window.blocks[..index])?;
                replay.summary.violation =
                    Some(violation_at(&replay.summary, &window.blocks, index, &error));
            }
        }
        if replay.summary.violation.is_none() {
            if let Some(undecodable) = window.undecodable {
                // Everything before the undecodable block must hold first.
                if let Some(verifying) = previous.take() {
                    settle(replay, bar, verifying)?;
                }
                if replay.summary.violation.is_none() {
                    replay.summary.violation = Some(undecodable);
                }
            }
        }
    }
    if let Some(verifying) = previous.take() {
        settle(replay, bar, verifying)?;
    }
    Ok(())
}

/// The blocks checked together, as [`read_window`] read them.
#[derive(Debug)]
struct Window {
    blocks: Vec<Block>,
    /// The block after `blocks` did not decode: the violation, once `blocks` hold.
    undecodable: Option<ViolationReport>,
    /// Nothing follows: height `last` was reached, the blocks ran out, or one did not decode.
    ended: bool,
}

/// Receives the blocks from height `base + 1` until the window is full (in blocks or ops),
/// height `last` is passed, the blocks run out, or one does not decode.
fn read_window(decoded: &Receiver<Decoded>, base: u64, last: u64) -> Result<Window, Failure> {
    let mut window = Window {
        blocks: Vec::with_capacity(REPLAY_WINDOW_BLOCKS),
        undecodable: None,
        ended: false,
    };
    let mut window_ops = 0usize;
    while window.blocks.len() < REPLAY_WINDOW_BLOCKS && window_ops < REPLAY_WINDOW_TRANSFERS {
        let height = base + window.blocks.len() as u64 + 1;
        if height > last {
            window.ended = true;
            break;
        }
        match decoded.recv() {
            Err(_) => {
                window.ended = true;
                break;
            }
            Ok(Err(failure)) => return Err(failure),
            Ok(Ok(Err(error))) => {
                window.undecodable = Some(ViolationReport {
                    height,
                    op: None,
                    op_kind: None,
                    reason: format!("the block does not decode: {error}"),
                });
                window.ended = true;
                break;
            }
            Ok(Ok(Ok(block))) => {
                window_ops += block.ops.len();
                window.blocks.push(block);
            }
        }
    }
    Ok(window)
}

/// A window of applied blocks and the thread verifying their signatures.
type Verifying = (
    Vec<Block>,
    std::thread::JoinHandle<Result<(), halfveil_ledger::apply::RunError>>,
);

/// Waits for a window's signatures: counts its blocks if they hold, or those before the
/// first bad one and records the violation.
fn settle(
    replay: &mut Replay,
    bar: &ProgressBar,
    (blocks, verifier): Verifying,
) -> Result<(), Failure> {
    let verified = verifier
        .join()
        .map_err(|_| Failure::error("signature verification failed to run"))?;
    match verified {
        Ok(()) => {
            count_blocks(replay, &blocks)?;
            bar.inc(blocks.len() as u64);
        }
        Err(failure) => {
            let (index, error) = *failure;
            count_blocks(replay, &blocks[..index])?;
            replay.summary.violation = Some(violation_at(&replay.summary, &blocks, index, &error));
        }
    }
    Ok(())
}

/// Adds verified blocks to the summary, and shows them to the watch.
fn count_blocks(replay: &mut Replay, blocks: &[Block]) -> Result<(), Failure> {
    for block in blocks {
        let summary = &mut replay.summary;
        summary.blocks += 1;
        summary.ops += block.ops.len() as u64;
        let height = summary.blocks;
        for op in &block.ops {
            match op {
                Op::Transfer(_) => summary.transfers += 1,
                Op::AdoptKey(adoption) => summary.keys_adopted.push(KeySeen {
                    height,
                    epoch: adoption.held.key.epoch,
                    refresh: adoption.held.key.refresh,
                    threshold: adoption.held.key.threshold,
                    holders: adoption.held.key.holders.iter().map(|h| h.holder).collect(),
                }),
                Op::DisclosureOrder(recorded) => summary.disclosures.push(DisclosureSeen {
                    height,
                    order_hash: recorded.order.hash()?.to_hex(),
                    transfer: recorded.order.transfer.to_hex(),
                    signers: recorded.signatures.iter().map(|s| s.auditor.0).collect(),
                    shares: Vec::new(),
                    openable: false,
                }),
                Op::DisclosureShare(record) => {
                    let order_hash = record.order.hash()?.to_hex();
                    // `apply` accepted it, so its order is on chain, hence listed.
                    if let Some(order) = summary
                        .disclosures
                        .iter_mut()
                        .find(|seen| seen.order_hash == order_hash)
                    {
                        order.shares.push(ShareSeen {
                            height,
                            holder: record.holder,
                            sealed_hash: record.sealed_hash.to_hex(),
                        });
                    }
                }
                _ => {}
            }
        }
        replay.watch.see(height, block)?;
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

impl ReplayArgs {
    /// Replays the chain and prints what it found; a violation is exit code 3.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let source = match (&self.rpc, &self.file) {
            (Some(rpc), None) => Source::Rpc(rpc.clone()),
            (None, Some(file)) => Source::File(file.clone()),
            _ => return Err(Failure::usage("give --rpc URL or --file FILE")),
        };
        let summary = replay_chain(&source, self.to, self.genesis.as_deref(), output)?;
        emit(output, &summary, || render_replay(&summary));
        match &summary.violation {
            Some(violation) => Err(Failure::verification(format!(
                "the chain breaks a rule at block {}: {}",
                violation.height, violation.reason
            ))),
            None => Ok(()),
        }
    }
}

/// A replay's summary for a person: the violation, or what was verified.
fn render_replay(summary: &ReplaySummary) -> String {
    match &summary.violation {
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
            for key in &summary.keys_adopted {
                text.push_str(&format!(
                    "\ndisclosure key epoch {} refresh {} adopted at block {}: any {} of holders {:?}",
                    key.epoch, key.refresh, key.height, key.threshold, key.holders
                ));
            }
            for disclosure in &summary.disclosures {
                let holders: Vec<u16> =
                    disclosure.shares.iter().map(|share| share.holder).collect();
                text.push_str(&format!(
                    "\ndisclosure order at block {}: transfer {} by auditors {:?} (order {}); shares released by holders {:?}{}",
                    disclosure.height,
                    disclosure.transfer,
                    disclosure.signers,
                    disclosure.order_hash,
                    holders,
                    if disclosure.openable { ", enough to open" } else { "" }
                ));
            }
            text
        }
    }
}

impl RequesterKeyArgs {
    /// Creates a requester's X25519 key file; disclosure results are sealed to it.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let out = &self.out;
        let password = password::obtain_new(self.password_file.as_deref(), "the requester key")?;
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
}
