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
use halfveil_ledger::crypto::{self, X25519Secret};
use halfveil_ledger::{
    apply_blocks_pending, codec, ApplyError, Block, ChainId, ChainParams, CodecError, Domain,
    Hash32, Op, State, X25519PublicKey, VERSION,
};
use halfveil_node::rpc::{ApiClient, DiscloseParams, DisclosureResult, OrderSignature};
use indicatif::ProgressBar;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::client::{block_on, Node};
use crate::commands::chain::{open_source, Blocks, Source};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, progress, OutputFormat};
use crate::password;

/// Blocks checked together: their signatures are one batch.
const REPLAY_WINDOW_BLOCKS: usize = 512;
const REPLAY_WINDOW_TRANSFERS: usize = 16_384;
/// The longest basis text an order carries.
const BASIS_BYTES_MAX: usize = 4096;
const ORDER_FILE_BYTES_MAX: u64 = 1 << 20;

/// `halfveil audit`: replay and verify the chain; threshold disclosure.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every block from genesis; exit 3 at the first violation.
    Replay(ReplayArgs),
    /// Create a requester's key (disclosure results are sealed to it).
    RequesterKey(RequesterKeyArgs),
    /// Disclosure orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Have the identity manager serve an order signed by a quorum of auditors.
    Disclose(DiscloseArgs),
}

impl AuditCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            AuditCommand::Replay(args) => args.execute(output),
            AuditCommand::RequesterKey(args) => args.execute(output),
            AuditCommand::Order(command) => command.execute(output),
            AuditCommand::Disclose(args) => args.execute(output),
        }
    }
}

/// `halfveil audit order`: write and sign disclosure orders.
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Write a new, unsigned order to reveal one transfer's payer.
    New(OrderNewArgs),
    /// Add one auditor's signature to an order.
    Sign(OrderSignArgs),
}

impl OrderCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            OrderCommand::New(args) => args.execute(output),
            OrderCommand::Sign(args) => args.execute(output),
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

/// `halfveil audit order new`: an unsigned order file for one transfer.
#[derive(Debug, Args)]
pub struct OrderNewArgs {
    #[arg(long)]
    pub transfer: String,
    /// The legal basis; the chain records only its hash.
    #[arg(long)]
    pub basis: String,
    #[arg(long)]
    pub requester_key: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// The chain's genesis file.
    #[arg(long)]
    pub genesis: PathBuf,
    /// Seconds the order stays valid.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub expires_in: u64,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `halfveil audit order sign`: one auditor's signature added to an order file.
#[derive(Debug, Args)]
pub struct OrderSignArgs {
    #[arg(long)]
    pub key: PathBuf,
    pub order: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `halfveil audit disclose`: a signed order served by the identity manager.
#[derive(Debug, Args)]
pub struct DiscloseArgs {
    /// The identity manager's RPC URL.
    #[arg(long)]
    pub rpc: String,
    #[arg(long)]
    pub order: PathBuf,
    /// The requester's key file (the result is sealed to it).
    #[arg(long)]
    pub key: PathBuf,
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
    let (genesis_text, last, blocks) = open_source(source, 1, to)?;
    let genesis = parse_genesis(&genesis_text, pinned)?;
    let params = &genesis.params;
    let mut state = State::genesis(params)?;
    let started = Instant::now();
    let bar = progress(if last == u64::MAX { 0 } else { last }, output, "replaying");
    let mut summary = ReplaySummary::new(genesis.hash.to_hex(), state.head_hash.to_hex());
    // Blocks are read and decoded on their own thread while the window before them is
    // checked; a window's signatures are verified as one batch on every core.
    let (decoded, reader) = spawn_decoder(blocks);
    check_windows(params, &mut state, &decoded, last, &mut summary, &bar)?;
    drop(decoded);
    let _ = reader.join();
    bar.finish_and_clear();
    summary.finish(&state, started.elapsed().as_secs_f64());
    Ok(summary)
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
        self.seconds = seconds;
        self.transfers_per_second = self.transfers as f64 / seconds.max(f64::EPSILON);
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
    summary: &mut ReplaySummary,
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let mut previous: Option<Verifying> = None;
    let mut ended = false;
    while !ended && summary.violation.is_none() {
        let base = summary.blocks
            + previous
                .as_ref()
                .map_or(0, |(blocks, _)| blocks.len() as u64);
        let window = read_window(decoded, base, last)?;
        ended = window.ended;
        let checked = apply_blocks_pending(params, state, &window.blocks);
        if let Some(verifying) = previous.take() {
            settle(summary, bar, verifying)?;
            if summary.violation.is_some() {
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
                count_blocks(summary, &window.blocks[..index])?;
                summary.violation = Some(violation_at(summary, &window.blocks, index, &error));
            }
        }
        if summary.violation.is_none() {
            if let Some(undecodable) = window.undecodable {
                // Everything before the undecodable block must hold first.
                if let Some(verifying) = previous.take() {
                    settle(summary, bar, verifying)?;
                }
                if summary.violation.is_none() {
                    summary.violation = Some(undecodable);
                }
            }
        }
    }
    if let Some(verifying) = previous.take() {
        settle(summary, bar, verifying)?;
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

impl OrderNewArgs {
    /// Writes the order, with the chain's auditor keys and threshold, to a new file.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        if self.basis.trim().is_empty() || self.basis.len() > BASIS_BYTES_MAX {
            return Err(Failure::usage(format!(
                "--basis must be 1 to {BASIS_BYTES_MAX} bytes"
            )));
        }
        let genesis = Genesis::load(&self.genesis).map_err(|error| {
            Failure::verification(format!("{}: {error}", self.genesis.display()))
        })?;
        let transfer =
            Hash32(hex32(&self.transfer, "--transfer").map_err(|e| Failure::usage(e.message))?);
        let password = password::obtain(self.password_file.as_deref(), "the requester key")?;
        let requester =
            keystore::read_x25519_key(&self.requester_key, FileKind::RequesterKey, &password)?;
        let params = &genesis.params;
        let order = halfveil_ledger::DisclosureOrder {
            version: VERSION,
            chain_id: params.chain_id.clone(),
            transfer,
            basis_hash: Domain::DisclosureBasis.hash(self.basis.as_bytes()),
            requester_key: requester.public_key()?,
            expires_at: halfveil_ledger::TimeMs(
                halfveil_node::clock::now_ms()
                    .0
                    .saturating_add(self.expires_in.saturating_mul(1_000)),
            ),
        };
        let file = OrderFile {
            version: order.version,
            chain_id: order.chain_id.to_string(),
            genesis_hash: genesis.hash.to_hex(),
            transfer: transfer.to_hex(),
            basis: self.basis.clone(),
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
        file.save(&self.out, true)?;
        emit(output, &file, || {
            format!(
                "order {} for transfer {} written to {}; it needs {} auditor signatures",
                file.order_hash,
                file.transfer,
                self.out.display(),
                file.threshold
            )
        });
        Ok(())
    }
}

impl OrderSignArgs {
    /// Adds the signature of the auditor whose key is `--key` to the order file.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (order_path, key) = (&self.order, &self.key);
        let mut file = OrderFile::load(order_path)?;
        let (_, hash) = file.order()?;
        let password = password::obtain(self.password_file.as_deref(), "the auditor key")?;
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
}

impl DiscloseArgs {
    /// Asks the identity manager to serve the order; opens the sealed result with the
    /// requester's key and prints the payer it reveals.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (rpc, order_path, key) = (&self.rpc, &self.order, &self.key);
        let file = OrderFile::load(order_path)?;
        let (order, hash) = file.order()?;
        let password = password::obtain(self.password_file.as_deref(), "the requester key")?;
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
        let result = open_result(&requester, &genesis.params.chain_id, &hash, &sealed)?;
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
}

/// Opens the sealed result of the order `order_hash` with the requester's key.
fn open_result(
    requester: &X25519Secret,
    chain_id: &ChainId,
    order_hash: &Hash32,
    sealed: &[u8],
) -> Result<DisclosureResult, Failure> {
    let plaintext = crypto::open_disclosure_result(requester, chain_id, order_hash, sealed)
        .map_err(|_| {
            Failure::verification("the sealed result does not open with the requester key")
        })?;
    serde_json::from_slice(&plaintext).map_err(|error| {
        Failure::verification(format!("the disclosure result is malformed: {error}"))
    })
}
