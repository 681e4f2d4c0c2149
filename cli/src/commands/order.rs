//! `halfveil audit order`: disclosure orders as files auditors pass around and sign, and
//! their recording on chain through the identity manager.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_genesis::keystore::{self, FileKind};
use halfveil_genesis::Genesis;
use halfveil_ledger::crypto;
use halfveil_ledger::{codec, ChainId, Domain, Hash32, X25519PublicKey, VERSION};
use halfveil_node::rpc::OrderSignature;
use serde::{Deserialize, Serialize};

use crate::commands::disclosure::record_order;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// The longest basis text an order carries.
const BASIS_BYTES_MAX: usize = 4096;
const ORDER_FILE_BYTES_MAX: u64 = 1 << 20;

/// `halfveil audit order`: write and sign disclosure orders.
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Write a new, unsigned order to reveal one transfer's payer.
    New(OrderNewArgs),
    /// Add one auditor's signature to an order.
    Sign(OrderSignArgs),
    /// Record an order signed by a quorum of auditors on chain (through the IM); holders
    /// release shares only for a recorded order.
    Record(OrderRecordArgs),
}

impl OrderCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            OrderCommand::New(args) => args.execute(output),
            OrderCommand::Sign(args) => args.execute(output),
            OrderCommand::Record(args) => args.execute(output),
        }
    }
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

/// `halfveil audit order record`: a signed order recorded on chain.
#[derive(Debug, Args)]
pub struct OrderRecordArgs {
    /// The identity manager's RPC URL.
    #[arg(long)]
    pub rpc: String,
    pub order: PathBuf,
}

impl OrderRecordArgs {
    /// Sends the order and its signatures to the IM; returns once its block is written.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let file = OrderFile::load(&self.order)?;
        let (_, hash) = file.order()?;
        if file.signatures.len() < usize::from(file.threshold) {
            return Err(Failure::usage(format!(
                "the order has {} of the {} auditor signatures it needs",
                file.signatures.len(),
                file.threshold
            )));
        }
        let (order_hash, height) = record_order(&self.rpc, &file)?;
        #[derive(Serialize)]
        struct Recorded {
            order_hash: String,
            height: u64,
        }
        let report = Recorded { order_hash, height };
        emit(output, &report, || {
            format!(
                "order {hash} recorded on chain at block {}: holders of the disclosure key may now release their shares (halfveil audit share)",
                report.height
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
    pub fn order(&self) -> Result<(halfveil_ledger::DisclosureOrder, Hash32), Failure> {
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

    pub fn load(path: &Path) -> Result<OrderFile, Failure> {
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
