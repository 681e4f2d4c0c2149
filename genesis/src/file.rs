//! The genesis file.
//!
//! A genesis is JSON, written in one canonical form (serde_json's pretty printing, fields in
//! schema order, a final newline) and signed by every key it names: the IM's validator key,
//! each bank's attestation key and each auditor's key sign the genesis hash. So a genesis
//! cannot list a key without its holder's consent, and any change to a copy (one byte, even
//! white space) is refused: a changed value breaks the signatures, a changed layout breaks
//! the canonical form. The genesis hash is the blake3 (`"halfveil v1 genesis"`) of the
//! canonical binary encoding of everything but the signatures.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::disclosure_keys::{threshold_min, HolderParty};
use halfveil_ledger::state::InitialAccount;
use halfveil_ledger::threshold::{DisclosureKey, HolderKey, Point};
use halfveil_ledger::{
    codec, AccountId, Amount, AuditorId, BankId, ChainId, ChainParams, Domain, Hash32, Limits,
    PublicKey, Signature, TimeMs, DISCLOSURE_SIGNERS_MAX, MEMO_BYTES_MAX,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The genesis format this build reads.
pub const GENESIS_VERSION: u8 = 2;
/// A genesis file larger than this is refused before parsing.
pub const GENESIS_BYTES_MAX: u64 = 4 * 1024 * 1024;
pub const BANKS_MAX: usize = 1024;
pub const INITIAL_ACCOUNTS_MAX: usize = 100_000;
const NAME_BYTES_MAX: usize = 32;

#[derive(Debug, Error)]
pub enum GenesisError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {bytes} bytes, larger than the {GENESIS_BYTES_MAX}-byte limit")]
    TooLarge { path: String, bytes: u64 },
    #[error("genesis is not valid JSON for this schema at line {line}, column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("genesis field `{field}` is invalid: {reason}")]
    Field { field: String, reason: String },
    #[error("genesis is not in canonical form: first difference at line {line}, column {column} (byte {byte}); a genesis must be byte-for-byte as generated, since it is signed")]
    NotCanonical {
        line: usize,
        column: usize,
        byte: usize,
    },
    #[error("genesis signature of {signer} does not verify: the file was changed after it was signed, or the signature is corrupt")]
    BadSignature { signer: String },
    #[error("cannot encode genesis: {0}")]
    Codec(#[from] halfveil_ledger::CodecError),
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The identity manager's entry: its first (or only) replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityManagerEntry {
    /// The libp2p peer id of the IM node (replica 1).
    pub peer_id: String,
    /// Ed25519 key that signs blocks and receipts (hex).
    pub validator_key: String,
}

/// The holder name of the identity manager's share of the disclosure key.
pub const IM_HOLDER: &str = "identity-manager";

/// One holder of the threshold disclosure key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderEntry {
    /// The holder's number in the key (its FROST identifier), 1 to 64, increasing.
    pub holder: u16,
    /// An auditor's name, or `identity-manager`; that auditor's key (or the IM's validator
    /// key) signs the holder's share records.
    pub name: String,
    /// The holder's public share of the group key (ristretto255, hex).
    pub share_key: String,
}

/// The threshold disclosure key identity credentials and records are encrypted to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureKeyEntry {
    pub epoch: u32,
    pub refresh: u32,
    /// How many holders' shares open a ciphertext. Every set of that many holders must hold
    /// at least `auditors.threshold` auditors.
    pub threshold: u16,
    /// The group key (ristretto255, hex).
    pub group_key: String,
    pub holders: Vec<HolderEntry>,
}

/// Another replica of a replicated IM (replicas 2 to 5): a node of its own with its own
/// validator key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImReplicaEntry {
    pub peer_id: String,
    /// Ed25519 key with which this replica signs the blocks it commits (hex).
    pub validator_key: String,
}

/// How many replicas an IM may have: one, or an odd group that survives one or two crashes.
pub const IM_REPLICA_COUNTS: [usize; 3] = [1, 3, 5];

/// One bank (account manager).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankEntry {
    pub name: String,
    pub peer_id: String,
    /// Ed25519 key that signs the bank's batch attestations (hex).
    pub attestation_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditorEntry {
    pub name: String,
    /// Ed25519 key that signs disclosure orders (hex).
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auditors {
    /// How many distinct auditors must sign a disclosure order.
    pub threshold: u16,
    pub members: Vec<AuditorEntry>,
}

/// An account funded at genesis (initial issuance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialAccountEntry {
    /// The account's online transaction public key (hex); the account id derives from it.
    pub tx_key: String,
    /// The home bank's name.
    pub bank: String,
    pub balance: u64,
}

/// Protocol limits (see [`halfveil_ledger::Limits`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    pub block_ops_max: u32,
    pub block_bytes_max: u32,
    pub memo_bytes_max: u16,
    pub transfer_expiry_ms_max: u64,
    pub attestation_ids_max: u32,
    pub issue_amount_max: u64,
    pub block_time_ahead_ms_max: u64,
}

impl Default for LimitsEntry {
    fn default() -> Self {
        LimitsEntry {
            block_ops_max: 16_384,
            block_bytes_max: 16 * 1024 * 1024,
            memo_bytes_max: 64,
            transfer_expiry_ms_max: 10 * 60 * 1000,
            attestation_ids_max: 4096,
            issue_amount_max: 1_000_000_000_000_000,
            block_time_ahead_ms_max: 30_000,
        }
    }
}

/// Signatures over the genesis hash by every key the genesis names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSignatures {
    pub identity_manager: String,
    /// By each of `identity_manager_replicas`, in order; absent for a single IM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_manager_replicas: Vec<String>,
    pub banks: Vec<String>,
    pub auditors: Vec<String>,
}

/// Everything the genesis hash covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBody {
    pub version: u8,
    pub chain_id: String,
    pub genesis_time_ms: u64,
    pub identity_manager: IdentityManagerEntry,
    /// Replicas 2 to n of a replicated IM; absent for a single IM, whose genesis (text and
    /// hash) is then the same as before replicas existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_manager_replicas: Vec<ImReplicaEntry>,
    pub banks: Vec<BankEntry>,
    pub auditors: Auditors,
    pub disclosure_key: DisclosureKeyEntry,
    pub initial_accounts: Vec<InitialAccountEntry>,
    pub limits: LimitsEntry,
}

/// The genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub body: GenesisBody,
    pub signatures: GenesisSignatures,
}

/// The checked genesis: parsed keys, ready for the ledger and the node.
#[derive(Clone, Debug)]
pub struct ValidGenesis {
    pub genesis: Genesis,
    pub hash: Hash32,
    pub params: ChainParams,
    /// The IM replicas' peer ids, in genesis order (`params.validator_keys` has their keys).
    pub im_peer_ids: Vec<libp2p_identity::PeerId>,
    pub bank_peer_ids: Vec<libp2p_identity::PeerId>,
}

impl ValidGenesis {
    /// The IM replica that `peer` is (0-based), if it is one.
    pub fn im_replica(&self, peer: &libp2p_identity::PeerId) -> Option<usize> {
        self.im_peer_ids.iter().position(|id| id == peer)
    }

    /// Whether the IM is a replicated group rather than one process.
    pub fn im_replicated(&self) -> bool {
        self.im_peer_ids.len() > 1
    }

    pub fn bank_id(&self, name: &str) -> Option<BankId> {
        self.genesis
            .body
            .banks
            .iter()
            .position(|bank| bank.name == name)
            .and_then(|index| u16::try_from(index).ok())
            .map(BankId)
    }

    pub fn bank_name(&self, bank: BankId) -> Option<&str> {
        self.genesis
            .body
            .banks
            .get(usize::from(bank.0))
            .map(|bank| bank.name.as_str())
    }

    /// Auditor `auditor`'s name.
    pub fn auditor_name(&self, auditor: AuditorId) -> Option<String> {
        let members = &self.genesis.body.auditors.members;
        members
            .get(usize::from(auditor.0))
            .map(|member| member.name.clone())
    }

    /// The genesis name of a disclosure key holder's party.
    pub fn party_name(&self, party: HolderParty) -> Option<String> {
        match party {
            HolderParty::IdentityManager => Some(IM_HOLDER.to_owned()),
            HolderParty::Auditor(auditor) => self.auditor_name(auditor),
        }
    }
}

impl GenesisBody {
    /// The genesis hash: over the canonical binary encoding of the body.
    pub fn hash(&self) -> Result<Hash32, GenesisError> {
        Ok(Domain::Genesis.hash(&codec::encode(self)?))
    }
}

impl Genesis {
    /// Signs `body` with every key it names (a testnet or ceremony tool holds them all):
    /// `validators` are the IM replicas' keys in genesis order.
    pub fn sign(
        body: GenesisBody,
        validators: &[&SigningKey],
        banks: &[&SigningKey],
        auditors: &[&SigningKey],
    ) -> Result<Genesis, GenesisError> {
        let hash = body.hash()?;
        let sign = |key: &SigningKey| crypto::sign(key, &hash).to_hex();
        let Some((first, replicas)) = validators.split_first() else {
            return Err(field_error(
                "identity_manager",
                "no validator key to sign with",
            ));
        };
        Ok(Genesis {
            signatures: GenesisSignatures {
                identity_manager: sign(first),
                identity_manager_replicas: replicas.iter().map(|key| sign(key)).collect(),
                banks: banks.iter().map(|key| sign(key)).collect(),
                auditors: auditors.iter().map(|key| sign(key)).collect(),
            },
            body,
        })
    }

    /// The canonical text of this genesis.
    pub fn to_canonical_json(&self) -> String {
        // Serializing these plain structs cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<ValidGenesis, GenesisError> {
        let display = path.display().to_string();
        let io = |source| GenesisError::Io {
            path: display.clone(),
            source,
        };
        let bytes = std::fs::metadata(path).map_err(io)?.len();
        if bytes > GENESIS_BYTES_MAX {
            return Err(GenesisError::TooLarge {
                path: display,
                bytes,
            });
        }
        let text = std::fs::read(path).map_err(io)?;
        Genesis::parse(&text)
    }

    /// Parses and validates genesis text.
    pub fn parse(text: &[u8]) -> Result<ValidGenesis, GenesisError> {
        if text.len() as u64 > GENESIS_BYTES_MAX {
            return Err(GenesisError::TooLarge {
                path: "genesis".into(),
                bytes: text.len() as u64,
            });
        }
        check_version(text)?;
        let genesis: Genesis =
            serde_json::from_slice(text).map_err(|error| GenesisError::Json {
                line: error.line(),
                column: error.column(),
                reason: error.to_string(),
            })?;
        let valid = genesis.validate()?;
        let canonical = valid.genesis.to_canonical_json();
        if let Some(byte) = first_difference(canonical.as_bytes(), text) {
            let (line, column) = line_column(text, byte);
            return Err(GenesisError::NotCanonical { line, column, byte });
        }
        Ok(valid)
    }

    /// Checks every field and every signature.
    pub fn validate(self) -> Result<ValidGenesis, GenesisError> {
        let checked = self.body.check()?;
        let params = &checked.params;
        verify_signatures(
            &self,
            &checked.hash,
            &params.validator_keys,
            &params.bank_keys,
            &params.auditor_keys,
        )?;
        Ok(ValidGenesis {
            genesis: self,
            hash: checked.hash,
            params: checked.params,
            im_peer_ids: checked.im_peer_ids,
            bank_peer_ids: checked.bank_peer_ids,
        })
    }
}

/// A genesis body whose every field is checked, before anyone signed it (a draft): its hash,
/// the chain parameters and the nodes' peer ids.
#[derive(Clone, Debug)]
pub struct CheckedBody {
    pub hash: Hash32,
    pub params: ChainParams,
    pub im_peer_ids: Vec<libp2p_identity::PeerId>,
    pub bank_peer_ids: Vec<libp2p_identity::PeerId>,
}

impl GenesisBody {
    /// Checks every field (but no signature: see [`Genesis::validate`]).
    pub fn check(&self) -> Result<CheckedBody, GenesisError> {
        let body = self;
        if body.version != GENESIS_VERSION {
            return Err(field_error(
                "version",
                format!(
                    "version {} is not supported; this build reads {GENESIS_VERSION}",
                    body.version
                ),
            ));
        }
        let chain_id = ChainId::new(&body.chain_id)
            .map_err(|error| field_error("chain_id", error.to_string()))?;
        // 2020-01-01 .. 2200-01-01: catches seconds given for milliseconds and other slips.
        if !(1_577_836_800_000..7_258_118_400_000).contains(&body.genesis_time_ms) {
            return Err(field_error(
                "genesis_time_ms",
                "must be milliseconds since the Unix epoch between 2020 and 2200",
            ));
        }
        let (im_peer_ids, validator_keys) = validate_replicas(body)?;
        let (bank_keys, bank_peer_ids) = validate_banks(&body.banks, &im_peer_ids)?;
        let auditor_keys = validate_auditors(&body.auditors)?;
        let (disclosure_key, holder_parties) = validate_disclosure_key(body)?;
        let limits = validate_limits(&body.limits)?;
        let initial_accounts = validate_initial_accounts(body)?;
        let hash = body.hash()?;
        let params = ChainParams {
            chain_id,
            genesis_hash: hash,
            genesis_time: TimeMs(body.genesis_time_ms),
            validator_keys,
            disclosure_key,
            holder_parties,
            bank_keys,
            auditor_keys,
            disclosure_threshold: body.auditors.threshold,
            limits,
            initial_accounts,
        };
        Ok(CheckedBody {
            hash,
            params,
            im_peer_ids,
            bank_peer_ids,
        })
    }
}

/// Refuses a genesis of another version before its fields are read, so an older file gets
/// that reason rather than an unknown field.
fn check_version(text: &[u8]) -> Result<(), GenesisError> {
    #[derive(Deserialize)]
    struct Versioned {
        body: VersionOnly,
    }
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u8,
    }
    match serde_json::from_slice::<Versioned>(text) {
        Ok(versioned) if versioned.body.version != GENESIS_VERSION => Err(field_error(
            "version",
            format!(
                "version {} is not supported; this build reads {GENESIS_VERSION}",
                versioned.body.version
            ),
        )),
        _ => Ok(()),
    }
}

fn first_difference(expected: &[u8], found: &[u8]) -> Option<usize> {
    let common = expected
        .iter()
        .zip(found.iter())
        .position(|(left, right)| left != right);
    match common {
        Some(index) => Some(index),
        None if expected.len() != found.len() => Some(expected.len().min(found.len())),
        None => None,
    }
}

fn line_column(text: &[u8], byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

fn parse_peer_id(field: &str, text: &str) -> Result<libp2p_identity::PeerId, GenesisError> {
    libp2p_identity::PeerId::from_str(text)
        .map_err(|error| field_error(field, format!("not a libp2p peer id: {error}")))
}

/// An Ed25519 public key that is a valid, not small-order, point.
fn parse_signing_public(field: &str, text: &str) -> Result<PublicKey, GenesisError> {
    let key = PublicKey::from_hex(text).map_err(|error| field_error(field, error.to_string()))?;
    crypto::check_key_strength(&key).map_err(|error| field_error(field, error.to_string()))?;
    Ok(key)
}

/// A bank's or an auditor's name: 1 to 32 characters of a-z, 0-9 and '-'.
pub fn check_name(field: &str, name: &str) -> Result<(), GenesisError> {
    let valid = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if !valid {
        return Err(field_error(
            field,
            "names are 1 to 32 characters of a-z, 0-9 and '-'",
        ));
    }
    Ok(())
}

type NodeKeys = (Vec<libp2p_identity::PeerId>, Vec<PublicKey>);

/// The IM replicas' peer ids and validator keys: 1, 3 or 5 of them, all distinct.
fn validate_replicas(body: &GenesisBody) -> Result<NodeKeys, GenesisError> {
    let count = body.identity_manager_replicas.len().saturating_add(1);
    if !IM_REPLICA_COUNTS.contains(&count) {
        return Err(field_error(
            "identity_manager_replicas",
            format!("an IM has 1, 3 or 5 replicas, not {count}: list 0, 2 or 4 here"),
        ));
    }
    let im = &body.identity_manager;
    let first = (
        "identity_manager".to_owned(),
        im.peer_id.as_str(),
        im.validator_key.as_str(),
    );
    let others = body
        .identity_manager_replicas
        .iter()
        .enumerate()
        .map(|(index, replica)| {
            (
                format!("identity_manager_replicas[{index}]"),
                replica.peer_id.as_str(),
                replica.validator_key.as_str(),
            )
        });
    let mut peers = Vec::with_capacity(count);
    let mut keys: Vec<PublicKey> = Vec::with_capacity(count);
    for (field, peer_text, key_text) in std::iter::once(first).chain(others) {
        let peer = parse_peer_id(&format!("{field}.peer_id"), peer_text)?;
        let key = parse_signing_public(&format!("{field}.validator_key"), key_text)?;
        if peers.contains(&peer) {
            return Err(field_error(
                format!("{field}.peer_id"),
                "peer id used by another replica",
            ));
        }
        if keys.contains(&key) {
            return Err(field_error(
                format!("{field}.validator_key"),
                "validator key used by another replica",
            ));
        }
        peers.push(peer);
        keys.push(key);
    }
    Ok((peers, keys))
}

type BankKeys = (Vec<PublicKey>, Vec<libp2p_identity::PeerId>);

fn validate_banks(
    banks: &[BankEntry],
    im_peers: &[libp2p_identity::PeerId],
) -> Result<BankKeys, GenesisError> {
    if banks.is_empty() || banks.len() > BANKS_MAX {
        return Err(field_error(
            "banks",
            format!("between 1 and {BANKS_MAX} banks"),
        ));
    }
    let mut names = HashSet::new();
    let mut peers: HashSet<libp2p_identity::PeerId> = im_peers.iter().copied().collect();
    let mut keys = HashSet::new();
    let mut bank_keys = Vec::with_capacity(banks.len());
    let mut peer_ids = Vec::with_capacity(banks.len());
    for (index, bank) in banks.iter().enumerate() {
        check_name(&format!("banks[{index}].name"), &bank.name)?;
        if !names.insert(bank.name.as_str()) {
            return Err(field_error(
                format!("banks[{index}].name"),
                format!("duplicate bank name {:?}", bank.name),
            ));
        }
        let peer = parse_peer_id(&format!("banks[{index}].peer_id"), &bank.peer_id)?;
        if !peers.insert(peer) {
            return Err(field_error(
                format!("banks[{index}].peer_id"),
                "peer id used by another node",
            ));
        }
        let key = parse_signing_public(
            &format!("banks[{index}].attestation_key"),
            &bank.attestation_key,
        )?;
        if !keys.insert(key) {
            return Err(field_error(
                format!("banks[{index}].attestation_key"),
                "key used by another bank",
            ));
        }
        bank_keys.push(key);
        peer_ids.push(peer);
    }
    Ok((bank_keys, peer_ids))
}

fn parse_point(field: &str, text: &str) -> Result<Point, GenesisError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|error| field_error(field, format!("not 32 bytes of hex: {error}")))?;
    Ok(Point(bytes))
}

/// The disclosure key: a consistent threshold key whose holders are auditors of genesis (or
/// the IM), each once, and whose threshold can only be met with at least `auditors.threshold`
/// auditors. Returns the key and who holds each share.
fn validate_disclosure_key(
    body: &GenesisBody,
) -> Result<(DisclosureKey, Vec<HolderParty>), GenesisError> {
    let entry = &body.disclosure_key;
    let mut holders = Vec::with_capacity(entry.holders.len());
    let mut parties = Vec::with_capacity(entry.holders.len());
    let mut names = HashSet::new();
    for (index, holder) in entry.holders.iter().enumerate() {
        let field = format!("disclosure_key.holders[{index}]");
        let party = if holder.name == IM_HOLDER {
            Some(HolderParty::IdentityManager)
        } else {
            body.auditors
                .members
                .iter()
                .position(|auditor| auditor.name == holder.name)
                .and_then(|position| u16::try_from(position).ok())
                .map(|position| HolderParty::Auditor(AuditorId(position)))
        };
        let party = party.ok_or_else(|| {
            field_error(
                format!("{field}.name"),
                "neither an auditor's name nor identity-manager",
            )
        })?;
        if !names.insert(holder.name.as_str()) {
            return Err(field_error(format!("{field}.name"), "holds two shares"));
        }
        holders.push(HolderKey {
            holder: holder.holder,
            share_key: parse_point(&format!("{field}.share_key"), &holder.share_key)?,
        });
        parties.push(party);
    }
    let key = DisclosureKey {
        epoch: entry.epoch,
        refresh: entry.refresh,
        threshold: entry.threshold,
        group_key: parse_point("disclosure_key.group_key", &entry.group_key)?,
        holders,
    };
    key.check()
        .map_err(|error| field_error("disclosure_key", error.to_string()))?;
    let others = parties
        .iter()
        .filter(|party| **party == HolderParty::IdentityManager)
        .count();
    let needed = threshold_min(body.auditors.threshold, others);
    if usize::from(entry.threshold) < needed {
        return Err(field_error(
            "disclosure_key.threshold",
            format!(
                "{} holders could open without {} auditors: the threshold must be at least {needed}",
                entry.threshold, body.auditors.threshold,
            ),
        ));
    }
    Ok((key, parties))
}

fn validate_auditors(auditors: &Auditors) -> Result<Vec<PublicKey>, GenesisError> {
    let count = auditors.members.len();
    if count == 0 || count > DISCLOSURE_SIGNERS_MAX {
        return Err(field_error(
            "auditors.members",
            format!("between 1 and {DISCLOSURE_SIGNERS_MAX} auditors"),
        ));
    }
    if auditors.threshold == 0 || usize::from(auditors.threshold) > count {
        return Err(field_error(
            "auditors.threshold",
            format!("must be between 1 and the number of auditors ({count})"),
        ));
    }
    let mut names = HashSet::new();
    let mut keys = Vec::with_capacity(count);
    for (index, auditor) in auditors.members.iter().enumerate() {
        check_name(&format!("auditors.members[{index}].name"), &auditor.name)?;
        if !names.insert(auditor.name.as_str()) {
            return Err(field_error(
                format!("auditors.members[{index}].name"),
                "duplicate auditor name",
            ));
        }
        let key = parse_signing_public(&format!("auditors.members[{index}].key"), &auditor.key)?;
        if keys.contains(&key) {
            return Err(field_error(
                format!("auditors.members[{index}].key"),
                "key used by another auditor",
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn validate_limits(limits: &LimitsEntry) -> Result<Limits, GenesisError> {
    let checks: [(&str, u64, u64, u64); 7] = [
        (
            "limits.block_ops_max",
            u64::from(limits.block_ops_max),
            1,
            halfveil_ledger::BLOCK_OPS_MAX as u64,
        ),
        (
            "limits.block_bytes_max",
            u64::from(limits.block_bytes_max),
            64 * 1024,
            halfveil_ledger::BLOCK_BYTES_MAX as u64,
        ),
        (
            "limits.memo_bytes_max",
            u64::from(limits.memo_bytes_max),
            0,
            MEMO_BYTES_MAX as u64,
        ),
        (
            "limits.transfer_expiry_ms_max",
            limits.transfer_expiry_ms_max,
            1_000,
            3_600_000,
        ),
        (
            "limits.attestation_ids_max",
            u64::from(limits.attestation_ids_max),
            1,
            halfveil_ledger::ATTESTATION_IDS_MAX as u64,
        ),
        (
            "limits.issue_amount_max",
            limits.issue_amount_max,
            1,
            u64::MAX,
        ),
        (
            "limits.block_time_ahead_ms_max",
            limits.block_time_ahead_ms_max,
            1_000,
            3_600_000,
        ),
    ];
    for (field, value, low, high) in checks {
        if !(low..=high).contains(&value) {
            return Err(field_error(
                field,
                format!("{value} is outside {low}..={high}"),
            ));
        }
    }
    Ok(Limits {
        block_ops_max: limits.block_ops_max,
        block_bytes_max: limits.block_bytes_max,
        memo_bytes_max: limits.memo_bytes_max,
        transfer_expiry_ms_max: limits.transfer_expiry_ms_max,
        attestation_ids_max: limits.attestation_ids_max,
        issue_amount_max: limits.issue_amount_max,
        block_time_ahead_ms_max: limits.block_time_ahead_ms_max,
    })
}

fn validate_initial_accounts(body: &GenesisBody) -> Result<Vec<InitialAccount>, GenesisError> {
    if body.initial_accounts.len() > INITIAL_ACCOUNTS_MAX {
        return Err(field_error(
            "initial_accounts",
            format!("at most {INITIAL_ACCOUNTS_MAX}"),
        ));
    }
    let mut total: u64 = 0;
    let mut seen = HashSet::new();
    let mut accounts = Vec::with_capacity(body.initial_accounts.len());
    for (index, entry) in body.initial_accounts.iter().enumerate() {
        let field = format!("initial_accounts[{index}]");
        let tx_key = parse_signing_public(&format!("{field}.tx_key"), &entry.tx_key)?;
        if !seen.insert(AccountId::from_key(&tx_key)) {
            return Err(field_error(
                format!("{field}.tx_key"),
                "account listed twice",
            ));
        }
        let bank = body
            .banks
            .iter()
            .position(|bank| bank.name == entry.bank)
            .and_then(|position| u16::try_from(position).ok())
            .ok_or_else(|| {
                field_error(
                    format!("{field}.bank"),
                    format!("no bank named {:?}", entry.bank),
                )
            })?;
        total = total.checked_add(entry.balance).ok_or_else(|| {
            field_error(format!("{field}.balance"), "total initial supply overflows")
        })?;
        accounts.push(InitialAccount {
            tx_key,
            bank: BankId(bank),
            balance: Amount(entry.balance),
        });
    }
    Ok(accounts)
}

fn verify_signatures(
    genesis: &Genesis,
    hash: &Hash32,
    validators: &[PublicKey],
    banks: &[PublicKey],
    auditors: &[PublicKey],
) -> Result<(), GenesisError> {
    let signatures = &genesis.signatures;
    if signatures.identity_manager_replicas.len() != validators.len().saturating_sub(1) {
        return Err(field_error(
            "signatures.identity_manager_replicas",
            format!("expected {} signatures", validators.len().saturating_sub(1)),
        ));
    }
    if signatures.banks.len() != banks.len() {
        return Err(field_error(
            "signatures.banks",
            format!("expected {} signatures", banks.len()),
        ));
    }
    if signatures.auditors.len() != auditors.len() {
        return Err(field_error(
            "signatures.auditors",
            format!("expected {} signatures", auditors.len()),
        ));
    }
    let replica_signatures =
        std::iter::once(&signatures.identity_manager).chain(&signatures.identity_manager_replicas);
    let mut expected = Vec::new();
    for (index, (key, signature)) in validators.iter().zip(replica_signatures).enumerate() {
        let signer = match index {
            0 => "identity manager".to_owned(),
            _ => format!("identity manager replica {}", index.saturating_add(1)),
        };
        expected.push((signer, *key, signature));
    }
    for (index, (key, signature)) in banks.iter().zip(&signatures.banks).enumerate() {
        expected.push((
            format!("bank {}", genesis.body.banks[index].name),
            *key,
            signature,
        ));
    }
    for (index, (key, signature)) in auditors.iter().zip(&signatures.auditors).enumerate() {
        expected.push((
            format!("auditor {}", genesis.body.auditors.members[index].name),
            *key,
            signature,
        ));
    }
    for (signer, key, text) in expected {
        let signature = Signature::from_hex(text).map_err(|_| GenesisError::BadSignature {
            signer: signer.clone(),
        })?;
        crypto::verify(&key, hash, &signature)
            .map_err(|_| GenesisError::BadSignature { signer })?;
    }
    Ok(())
}
