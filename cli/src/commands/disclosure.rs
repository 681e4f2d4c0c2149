//! Threshold disclosure (SPEC section 6): an order signed by a quorum of auditors is recorded
//! on chain (`audit order new|sign|record`); each holder of the disclosure key checks it
//! against its own replay of the chain, makes its decryption shares of the payment's
//! identity credential and of the payer's identity record, seals them to the requester and
//! records that on chain (`audit share`); the requester combines a quorum of shares on its
//! own machine and opens both (`audit disclose`). Nobody else, the IM included, sees the
//! identity unless it holds a share and releases it, and every release is on chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use halfveil_genesis::file::ValidGenesis;
use halfveil_genesis::keystore::{self, FileKind};
use halfveil_ledger::crypto::{self, IdentityRecord, X25519Secret};
use halfveil_ledger::disclosure_keys::{DisclosureKeys, HeldKey, HolderParty};
use halfveil_ledger::threshold::{tdh2, HolderSecret};
use halfveil_ledger::{
    codec, AccountId, Block, DisclosureOrder, DisclosureShares, Hash32, Op, OpenAccount,
    ShareRecord, TransferOp,
};
use halfveil_node::rpc::{ApiClient, RecordOrderParams, RecordShareParams};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::client::{block_on, Node};
use crate::commands::audit::{replay_chain_watching, ReplaySummary};
use crate::commands::chain::{open_source, Source};
use crate::commands::order::OrderFile;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// The longest share file `audit disclose` reads.
const SHARE_FILE_BYTES_MAX: u64 = 64 * 1024;
/// The longest opened shares (a [`DisclosureShares`]) it decodes.
const SHARES_BYTES_MAX: usize = 1024;

/// What a replay collects for one order: the transfer, where every account was opened, the
/// order's recording and its share records.
#[derive(Debug, Default)]
pub struct Watch {
    transfer: Hash32,
    order: Hash32,
    openings: BTreeMap<AccountId, (u64, usize, Hash32)>,
    found: Option<(u64, TransferOp)>,
    order_recorded: Option<u64>,
    shares: Vec<(u64, ShareRecord)>,
    /// The disclosure keys after the replay (set at its end).
    pub keys: Option<DisclosureKeys>,
}

impl Watch {
    fn new(transfer: Hash32, order: Hash32) -> Watch {
        Watch {
            transfer,
            order,
            ..Watch::default()
        }
    }

    /// Notes what block `height` (verified) holds for this order.
    pub fn see(&mut self, height: u64, block: &Block) -> Result<(), Failure> {
        let block_hash = block.header().hash()?;
        for (index, op) in block.ops.iter().enumerate() {
            match op {
                Op::OpenAccount(open) => {
                    self.openings
                        .insert(open.account, (height, index, block_hash));
                }
                Op::Transfer(transfer) if transfer.request.transfer.id()? == self.transfer => {
                    self.found = Some((height, transfer.clone()));
                }
                Op::DisclosureOrder(recorded) if recorded.order.hash()? == self.order => {
                    self.order_recorded = Some(height);
                }
                Op::DisclosureShare(record) if record.order.hash()? == self.order => {
                    self.shares.push((height, record.clone()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The chain as one holder or requester sees it: replayed from genesis, with what it holds
/// for one order.
struct Replayed {
    genesis: ValidGenesis,
    summary: ReplaySummary,
    watch: Watch,
    transfer: TransferOp,
    transfer_height: u64,
    opening: OpenAccount,
    keys: DisclosureKeys,
}

impl Replayed {
    /// The keys the payment's identity credential and its payer's identity record were
    /// sealed to (each names its epoch; the chain keeps every epoch's latest key).
    fn sealed_to(&self) -> Result<(&HeldKey, &HeldKey), Failure> {
        let of = |epoch: u32| {
            self.keys.of_epoch(epoch).ok_or_else(|| {
                Failure::verification(format!("no disclosure key of epoch {epoch} on chain"))
            })
        };
        Ok((
            of(self.transfer.request.identity_credential.capsule.epoch)?,
            of(self.opening.identity_record.capsule.epoch)?,
        ))
    }
}

/// Replays the chain of `rpc` (its genesis must be `genesis_hash`) with a watch on `order`,
/// and finds the order's transfer and its payer's opening. Refuses a chain that breaks a
/// rule, an order not recorded on it, and an order of another transfer.
fn replay_for(
    rpc: &str,
    genesis_hash: &str,
    order: &DisclosureOrder,
    output: OutputFormat,
) -> Result<Replayed, Failure> {
    let source = Source::Rpc(rpc.to_owned());
    let order_hash = order.hash()?;
    let genesis = block_on(async {
        let node = Node::connect(rpc).await?;
        node.genesis(Some(genesis_hash)).await
    })??;
    let (summary, watch) = replay_chain_watching(
        &source,
        None,
        None,
        output,
        Watch::new(order.transfer, order_hash),
    )?;
    if let Some(violation) = &summary.violation {
        return Err(Failure::verification(format!(
            "the chain breaks a rule at block {}: {}; no disclosure on it",
            violation.height, violation.reason
        )));
    }
    if summary.genesis_hash != genesis.hash.to_hex() {
        return Err(Failure::verification(
            "the node changed its genesis mid-replay",
        ));
    }
    let order_height = watch.order_recorded.ok_or_else(|| {
        Failure::refused(format!(
            "order {order_hash} is not recorded on chain: record it first (halfveil audit order record)"
        ))
    })?;
    let (transfer_height, transfer) = watch.found.clone().ok_or_else(|| {
        Failure::verification(format!("transfer {} is not on the chain", order.transfer))
    })?;
    let payer = transfer.request.transfer.payer;
    let opening = fetch_opening(&source, &watch, &payer)?;
    tracing::debug!(order_height, transfer_height, "order and transfer found");
    let keys = watch
        .keys
        .clone()
        .unwrap_or_else(|| DisclosureKeys::genesis(&genesis.params));
    Ok(Replayed {
        genesis,
        summary,
        watch,
        transfer,
        transfer_height,
        opening,
        keys,
    })
}

/// The op that opened `account`, read again from `source` at the height the replay saw it,
/// in the block of the hash it verified.
fn fetch_opening(
    source: &Source,
    watch: &Watch,
    account: &AccountId,
) -> Result<OpenAccount, Failure> {
    let &(height, index, hash) = watch.openings.get(account).ok_or_else(|| {
        Failure::verification(format!(
            "the payer's account {account} was never opened on chain"
        ))
    })?;
    let (_, _, mut blocks) = open_source(source, height, Some(height))?;
    while let Some(bytes) = blocks.next_encoded()? {
        let block = Block::decode(&bytes)
            .map_err(|error| Failure::verification(format!("block {height}: {error}")))?;
        if block.height().0 != height {
            continue;
        }
        if block.header().hash()? != hash {
            return Err(Failure::verification(format!(
                "block {height} changed since it was replayed"
            )));
        }
        return match block.ops.get(index) {
            Some(Op::OpenAccount(open)) if open.account == *account => Ok(open.clone()),
            _ => Err(Failure::verification("the opening op moved")),
        };
    }
    Err(Failure::verification(format!("block {height} is gone")))
}

/// `halfveil audit share`: one holder's decryption shares of an order, sealed to its
/// requester and recorded on chain.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// A node's RPC URL (the IM's, or a bank's that relays to it: records go to the IM).
    #[arg(long)]
    pub rpc: String,
    /// The IM's RPC URL, if `--rpc` is not the IM's.
    #[arg(long)]
    pub im_rpc: Option<String>,
    #[arg(long)]
    pub order: PathBuf,
    /// This holder's disclosure key share (an auditor's `auditor-N-share.json`, or the IM's
    /// `disclosure_share.json`): the latest refresh of the epoch the payment was sealed to,
    /// and of the epoch the payer's account was opened in when that is another (give
    /// `--share` twice then).
    #[arg(long, num_args = 1.., required = true)]
    pub share: Vec<PathBuf>,
    /// The key that signs this holder's share records: the auditor's key, or the IM's
    /// validator key.
    #[arg(long)]
    pub signing_key: PathBuf,
    /// Where to write the sealed shares for the requester.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// What `audit share` writes for the requester: its shares, sealed to the requester's key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareFile {
    pub order_hash: String,
    pub holder: u16,
    pub holder_name: String,
    /// The sealed [`DisclosureShares`], hex.
    pub sealed: String,
    pub sealed_hash: String,
    pub recorded_at_height: u64,
}

/// This holder's shares of the two keys the payment and its payer's record were sealed to
/// (one, if the same), its signing key, and its name.
struct HolderKeys {
    credential: HolderSecret,
    record: HolderSecret,
    signing: halfveil_ledger::crypto::SigningKey,
    name: String,
}

/// The holder's share of `key` among the `--share` files.
fn share_of(
    files: &[PathBuf],
    password: &secrecy::SecretString,
    key: &HeldKey,
) -> Result<HolderSecret, Failure> {
    for path in files {
        if let Ok(share) = keystore::read_disclosure_share(path, password, &key.key) {
            return Ok(share);
        }
    }
    Err(Failure::usage(format!(
        "no --share file is a share of the disclosure key of epoch {} refresh {} (a share of \
         an older refresh, or a holder this key left out?)",
        key.key.epoch, key.key.refresh
    )))
}

/// The holder's shares and signing key, checked against the keys on chain and genesis.
fn holder_keys(replayed: &Replayed, args: &ShareArgs) -> Result<HolderKeys, Failure> {
    let password = password::obtain(args.password_file.as_deref(), "the holder's keys")?;
    let (credential_key, record_key) = replayed.sealed_to()?;
    let credential = share_of(&args.share, &password, credential_key)?;
    let record = share_of(&args.share, &password, record_key)?;
    if credential.holder != record.holder {
        return Err(Failure::usage("the --share files are of two holders"));
    }
    let params = &replayed.genesis.params;
    let party = replayed
        .keys
        .party_of(credential.holder)
        .ok_or_else(|| Failure::verification("the share's holder is not on chain"))?;
    let kind = match party {
        HolderParty::IdentityManager => FileKind::ValidatorKey,
        HolderParty::Auditor(_) => FileKind::AuditorKey,
    };
    let name = replayed.genesis.party_name(party).unwrap_or_default();
    let signing = keystore::read_signing_key(&args.signing_key, kind, &password)?;
    if params.party_key(party) != Some(&crypto::public_key(&signing)) {
        return Err(Failure::usage(format!(
            "{} is not the key genesis names for holder {} ({name})",
            args.signing_key.display(),
            credential.holder,
        )));
    }
    Ok(HolderKeys {
        credential,
        record,
        signing,
        name,
    })
}

/// This holder's shares of the credential and the record, checked ciphertexts first.
fn make_shares(
    replayed: &Replayed,
    holder: &HolderKeys,
    order_hash: Hash32,
) -> Result<DisclosureShares, Failure> {
    let params = &replayed.genesis.params;
    let (credential_key, record_key) = replayed.sealed_to()?;
    let transfer_id = replayed.transfer.request.transfer.id()?;
    let credential = &replayed.transfer.request.identity_credential;
    let record = &replayed.opening.identity_record;
    let refuse = |what: &str, error: halfveil_ledger::threshold::ThresholdError| {
        Failure::verification(format!(
            "no share: the {what} is not a valid ciphertext: {error}"
        ))
    };
    let credential_label = crypto::credential_label(&params.chain_id, &transfer_id);
    let credential_share = tdh2::share(
        &credential_key.key,
        &holder.credential,
        &credential_label,
        &credential.capsule,
        &credential.body,
        &mut OsRng,
    )
    .map_err(|error| refuse("payment's identity credential", error))?;
    let record_label = crypto::record_label(&params.chain_id, &replayed.opening.account);
    let record_share = tdh2::share(
        &record_key.key,
        &holder.record,
        &record_label,
        &record.capsule,
        &record.body,
        &mut OsRng,
    )
    .map_err(|error| refuse("payer's identity record", error))?;
    Ok(DisclosureShares {
        order: order_hash,
        holder: holder.credential.holder,
        credential: credential_share,
        record: record_share,
    })
}

impl ShareArgs {
    /// Checks the order on this holder's own replay, makes and seals its shares, records
    /// them on chain and writes them for the requester.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let file = OrderFile::load(&self.order)?;
        let (order, order_hash) = file.order()?;
        let replayed = replay_for(&self.rpc, &file.genesis_hash, &order, output)?;
        let holder = holder_keys(&replayed, self)?;
        let number = holder.credential.holder;
        if order.expires_at.0 <= halfveil_node::clock::now_ms().0 {
            return Err(Failure::refused("the order has expired: no share"));
        }
        if replayed
            .watch
            .shares
            .iter()
            .any(|(_, record)| record.holder == number)
        {
            return Err(Failure::refused(format!(
                "holder {number} already released its shares of this order"
            )));
        }
        let shares = make_shares(&replayed, &holder, order_hash)?;
        let params = &replayed.genesis.params;
        let plaintext = zeroize::Zeroizing::new(codec::encode(&shares)?);
        let sealed = crypto::seal_to_requester(
            &order.requester_key,
            &params.chain_id,
            &order_hash,
            &plaintext,
            &mut OsRng,
        )?;
        let sealed_hash = DisclosureShares::sealed_hash(&sealed);
        let message = ShareRecord::message(&params.chain_id, &order_hash, number, &sealed_hash)?;
        let params_out = RecordShareParams {
            order: file.order.clone(),
            holder: number,
            sealed_hash: sealed_hash.to_hex(),
            signature: hex::encode(crypto::sign(&holder.signing, &message).0),
        };
        let im = self.im_rpc.as_deref().unwrap_or(&self.rpc);
        let recorded = block_on(async {
            let node = Node::connect(im).await?;
            node.client
                .record_share(params_out)
                .await
                .map_err(|error| node.failure(error))
        })??;
        let report = ShareFile {
            order_hash: order_hash.to_hex(),
            holder: number,
            holder_name: holder.name.clone(),
            sealed: hex::encode(&sealed),
            sealed_hash: sealed_hash.to_hex(),
            recorded_at_height: recorded.height,
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|error| Failure::error(error.to_string()))?;
        keystore::write_new_private(&self.out, text.as_bytes())?;
        emit(output, &report, || {
            format!(
                "holder {} ({}) released its shares of order {}: recorded at block {}, sealed to the requester in {}",
                report.holder,
                report.holder_name,
                report.order_hash,
                report.recorded_at_height,
                self.out.display()
            )
        });
        Ok(())
    }
}

/// `halfveil audit disclose`: the requester combines a quorum of holders' shares and opens
/// the payment's identity credential and the payer's identity record.
#[derive(Debug, Args)]
pub struct DiscloseArgs {
    /// A node's RPC URL: the chain the shares are checked against.
    #[arg(long)]
    pub rpc: String,
    #[arg(long)]
    pub order: PathBuf,
    /// The requester's key file (the shares are sealed to it).
    #[arg(long)]
    pub key: PathBuf,
    /// Share files from `audit share`, one per holder.
    #[arg(long = "shares", num_args = 1.., required = true)]
    pub shares: Vec<PathBuf>,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// Who paid, as the requester learns it.
#[derive(Debug, Serialize)]
pub struct Disclosed {
    pub order_hash: String,
    pub transfer: String,
    pub height: u64,
    pub account: String,
    pub name: String,
    pub national_id: String,
    pub fields: Vec<(String, String)>,
    pub identity_key: String,
    /// The payment's identity credential holds the identity key's signature of the transfer.
    pub credential_verified: bool,
    /// The record's identity key signed the account's opening.
    pub possession_verified: bool,
    /// The holders whose shares opened it, each recorded on chain.
    pub holders: Vec<u16>,
}

impl Drop for Disclosed {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.name.zeroize();
        self.national_id.zeroize();
        for (name, value) in &mut self.fields {
            name.zeroize();
            value.zeroize();
        }
    }
}

/// Opens one share file: recorded on chain by its holder with this sealed hash, sealed to
/// this requester, for this order.
fn open_share_file(
    path: &Path,
    replayed: &Replayed,
    requester: &X25519Secret,
    order_hash: &Hash32,
) -> Result<DisclosureShares, Failure> {
    let bytes = std::fs::metadata(path)
        .map_err(|error| Failure::error(format!("{}: {error}", path.display())))?
        .len();
    if bytes > SHARE_FILE_BYTES_MAX {
        return Err(Failure::verification(format!(
            "{} is too large",
            path.display()
        )));
    }
    let file: ShareFile = serde_json::from_slice(&std::fs::read(path)?).map_err(|error| {
        Failure::verification(format!("{}: not a share file: {error}", path.display()))
    })?;
    let sealed = hex::decode(&file.sealed)
        .map_err(|_| Failure::verification(format!("{}: sealed is not hex", path.display())))?;
    let sealed_hash = DisclosureShares::sealed_hash(&sealed);
    let recorded = replayed
        .watch
        .shares
        .iter()
        .any(|(_, record)| record.holder == file.holder && record.sealed_hash == sealed_hash);
    if !recorded {
        return Err(Failure::verification(format!(
            "{}: holder {}'s release of these shares is not recorded on chain",
            path.display(),
            file.holder
        )));
    }
    let params = &replayed.genesis.params;
    let plaintext = crypto::open_as_requester(requester, &params.chain_id, order_hash, &sealed)
        .map_err(|_| {
            Failure::verification(format!(
                "{}: does not open with the requester key",
                path.display()
            ))
        })?;
    let shares: DisclosureShares = codec::decode(&plaintext, SHARES_BYTES_MAX)
        .map_err(|error| Failure::verification(format!("{}: {error}", path.display())))?;
    if shares.order != *order_hash || shares.holder != file.holder {
        return Err(Failure::verification(format!(
            "{}: shares of another order or holder",
            path.display()
        )));
    }
    Ok(shares)
}

/// Combines the shares: opens the credential and the record, and checks both signatures.
fn open_identity(
    replayed: &Replayed,
    shares: &[DisclosureShares],
    order_hash: &Hash32,
) -> Result<Disclosed, Failure> {
    let params = &replayed.genesis.params;
    let (credential_key, record_key) = replayed.sealed_to()?;
    let transfer_id = replayed.transfer.request.transfer.id()?;
    let account = replayed.opening.account;
    let credential_shares: Vec<_> = shares.iter().map(|share| share.credential).collect();
    let record_shares: Vec<_> = shares.iter().map(|share| share.record).collect();
    let signature = crypto::open_identity_credential(
        &credential_key.key,
        &params.chain_id,
        &transfer_id,
        &replayed.transfer.request.identity_credential,
        &credential_shares,
    )
    .map_err(|error| {
        Failure::verification(format!("the identity credential does not open: {error}"))
    })?;
    let record = IdentityRecord::open(
        &replayed.opening.identity_record,
        &record_key.key,
        &params.chain_id,
        &account,
        &record_shares,
    )
    .map_err(|error| {
        Failure::verification(format!("the identity record does not open: {error}"))
    })?;
    let credential_verified = crypto::verify(
        &record.identity_key,
        &crypto::identity_signature_message(&transfer_id),
        &signature,
    )
    .is_ok();
    let possession_verified = crypto::verify(
        &record.identity_key,
        &crypto::identity_possession_message(&params.chain_id, &account),
        &record.possession,
    )
    .is_ok();
    Ok(Disclosed {
        order_hash: order_hash.to_hex(),
        transfer: transfer_id.to_hex(),
        height: replayed.transfer_height,
        account: account.to_string(),
        name: record.name.clone(),
        national_id: record.national_id.clone(),
        fields: record.fields.clone(),
        identity_key: record.identity_key.to_hex(),
        credential_verified,
        possession_verified,
        holders: shares.iter().map(|share| share.holder).collect(),
    })
}

impl DiscloseArgs {
    /// Checks every share against the chain, combines a quorum and prints the payer.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let file = OrderFile::load(&self.order)?;
        let (order, order_hash) = file.order()?;
        let password = password::obtain(self.password_file.as_deref(), "the requester key")?;
        let requester = keystore::read_x25519_key(&self.key, FileKind::RequesterKey, &password)?;
        if requester.public_key()? != order.requester_key {
            return Err(Failure::usage(format!(
                "{} is not the order's requester key",
                self.key.display()
            )));
        }
        let replayed = replay_for(&self.rpc, &file.genesis_hash, &order, output)?;
        let mut shares: Vec<DisclosureShares> = Vec::with_capacity(self.shares.len());
        for path in &self.shares {
            let opened = open_share_file(path, &replayed, &requester, &order_hash)?;
            if shares.iter().any(|share| share.holder == opened.holder) {
                return Err(Failure::usage(format!(
                    "two share files of holder {}",
                    opened.holder
                )));
            }
            shares.push(opened);
        }
        let (credential_key, record_key) = replayed.sealed_to()?;
        let threshold = usize::from(credential_key.key.threshold.max(record_key.key.threshold));
        if shares.len() < threshold {
            return Err(Failure::refused(format!(
                "{} holders' shares, {threshold} needed",
                shares.len()
            )));
        }
        let disclosed = open_identity(&replayed, &shares, &order_hash)?;
        let replay_ok = replayed.summary.ok;
        emit(output, &disclosed, || render(&disclosed, replay_ok));
        if !disclosed.credential_verified {
            return Err(Failure::verification(
                "the identity credential does not hold the payer's identity signature",
            ));
        }
        Ok(())
    }
}

fn render(disclosed: &Disclosed, replay_ok: bool) -> String {
    format!(
        "transfer {} (block {})\n  paid from account {}\n  payer: {} (national id {})\n  identity key {}\n  identity credential verified: {}\n  proof of possession verified: {}\n  opened with the shares of holders {:?}, each recorded on chain (chain replayed: {})",
        disclosed.transfer,
        disclosed.height,
        disclosed.account,
        disclosed.name,
        disclosed.national_id,
        disclosed.identity_key,
        disclosed.credential_verified,
        disclosed.possession_verified,
        disclosed.holders,
        if replay_ok { "valid" } else { "INVALID" },
    )
}

/// Records a signed order on chain through the IM; the order's hash and block.
pub fn record_order(rpc: &str, file: &OrderFile) -> Result<(String, u64), Failure> {
    let recorded = block_on(async {
        let node = Node::connect(rpc).await?;
        node.genesis(Some(&file.genesis_hash)).await?;
        node.client
            .record_order(RecordOrderParams {
                order: file.order.clone(),
                signatures: file.signatures.clone(),
            })
            .await
            .map_err(|error| node.failure(error))
    })??;
    Ok((recorded.order_hash, recorded.height))
}
