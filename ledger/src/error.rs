//! The ledger's errors: one enum per concern, each carrying the facts a caller needs to say
//! what failed.

use thiserror::Error;

use crate::hash::Hash32;
use crate::types::{AccountId, Amount, AttestationKind, BankId, Height, Nonce, TimeMs};

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum CodecError {
    #[error("input of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    TooLarge { bytes: usize, bytes_max: usize },
    #[error("malformed encoding: {reason}")]
    Malformed { reason: String },
    #[error("{bytes} trailing bytes after the value")]
    TrailingBytes { bytes: usize },
    #[error("not the canonical encoding of the value")]
    NotCanonical,
    #[error("cannot encode: {reason}")]
    Encode { reason: String },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("invalid chain id {value:?}: 1 to 32 characters of a-z, 0-9 and '-'")]
    ChainId { value: String },
    #[error("invalid account id {value:?}: expected bech32m starting with hv1")]
    AccountId { value: String },
    #[error("invalid hex: expected {expected_bytes} bytes as {} hex digits", expected_bytes * 2)]
    Hex { expected_bytes: usize },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {index} is not below the leaf count {leaf_count}")]
    IndexOutOfRange { index: u32, leaf_count: u32 },
    #[error("proof is deeper than any tree")]
    TooDeep,
    #[error("proof has the wrong number of siblings for its position")]
    WrongLength,
}

/// Failures of the three credentials and of sealing.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum CryptoError {
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    #[error("weak (small-order) public key refused")]
    WeakPublicKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("cannot open: wrong key, wrong context or corrupted data")]
    OpenFailed,
    #[error("sealing failed")]
    SealFailed,
    #[error("sealed data has {bytes} bytes, expected {expected}")]
    WrongLength { bytes: usize, expected: usize },
    #[error("unsupported version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("identity record too large: {bytes} bytes encoded, limit {bytes_max}")]
    RecordTooLarge { bytes: usize, bytes_max: usize },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Threshold(#[from] crate::threshold::ThresholdError),
}

/// Why a block, or one of its ops, breaks the rules. `op` in [`ApplyError`] says which op.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum Violation {
    #[error("unsupported block version {version}")]
    BlockVersion { version: u8 },
    #[error("wrong chain id {found:?}, this chain is {expected:?}")]
    WrongChain { found: String, expected: String },
    #[error("height {found} does not follow the head {head}")]
    WrongHeight { found: Height, head: Height },
    #[error("parent {found} is not the head block {expected}")]
    WrongParent { found: Hash32, expected: Hash32 },
    #[error("block time {time} is not after the previous block time {previous}")]
    TimeNotIncreasing { time: TimeMs, previous: TimeMs },
    #[error("the block's signer is not one of the identity manager's validator keys")]
    UnknownSigner,
    #[error("the identity manager's block signature does not verify")]
    BadBlockSignature,
    #[error("header says {header} ops, body has {body}")]
    OpCountMismatch { header: u32, body: usize },
    #[error("block has {count} ops, limit {limit}")]
    TooManyOps { count: usize, limit: usize },
    #[error("block is {bytes} bytes, limit {limit}")]
    BlockTooLarge { bytes: usize, limit: usize },
    #[error("op root mismatch: header {header}, computed {computed}")]
    OpRootMismatch { header: Hash32, computed: Hash32 },
    #[error("attestation root mismatch: header {header}, computed {computed}")]
    AttestationRootMismatch { header: Hash32, computed: Hash32 },
    #[error("state root mismatch: header {header}, computed {computed}")]
    StateRootMismatch { header: Hash32, computed: Hash32 },
    #[error("attestation {index} names unknown bank {bank}")]
    UnknownBank { index: usize, bank: BankId },
    #[error("attestation {index} has {count} ids, limit {limit}")]
    AttestationTooLarge {
        index: usize,
        count: usize,
        limit: usize,
    },
    #[error("attestation {index}: the bank's signature does not verify")]
    BadAttestationSignature { index: usize },
    #[error("unknown account {account}")]
    UnknownAccount { account: AccountId },
    #[error("account {account} is closed")]
    AccountClosed { account: AccountId },
    #[error("account {account} already exists")]
    AccountExists { account: AccountId },
    #[error("account id {account} is not derived from the key")]
    AccountIdMismatch { account: AccountId },
    #[error("public key refused: {reason}")]
    BadKey { reason: CryptoError },
    #[error("holder's signature does not verify")]
    BadHolderSignature,
    #[error("home bank's signature does not verify")]
    BadBankSignature,
    #[error("transaction credential does not verify")]
    BadTxCredential,
    #[error("unsupported transfer version {version}")]
    TransferVersion { version: u8 },
    #[error(
        "identity credential is sealed to disclosure key epoch {epoch}, the chain's is {expected}"
    )]
    IdentityCredentialEpoch { epoch: u32, expected: u32 },
    #[error("identity record is not a valid ciphertext for this account: {reason}")]
    BadIdentityRecord { reason: CryptoError },
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("payer and payee are the same account")]
    SelfTransfer,
    #[error("memo of {bytes} bytes exceeds the limit of {limit}")]
    MemoTooLong { bytes: usize, limit: usize },
    #[error("expired at {expires_at}, block time {time}")]
    Expired { expires_at: TimeMs, time: TimeMs },
    #[error("expires at {expires_at}, further ahead of block time {time} than the limit of {limit_ms} ms")]
    ExpiryTooFar {
        expires_at: TimeMs,
        time: TimeMs,
        limit_ms: u64,
    },
    #[error("nonce {nonce} of {account} was already committed")]
    Replay { account: AccountId, nonce: Nonce },
    #[error("insufficient funds in {account}: balance {balance}, amount {amount}")]
    InsufficientFunds {
        account: AccountId,
        balance: Amount,
        amount: Amount,
    },
    #[error("balance of {account} would overflow")]
    BalanceOverflow { account: AccountId },
    #[error("total supply would overflow")]
    SupplyOverflow,
    #[error("issue of {amount} exceeds the limit of {limit}")]
    IssueTooLarge { amount: Amount, limit: Amount },
    #[error("account {account} still holds {balance}; only an empty account can close")]
    CloseNonEmpty { account: AccountId, balance: Amount },
    #[error("attestation {index} does not exist in this block")]
    MissingAttestation { index: u16 },
    #[error("attestation {index} is a {found:?}, expected {expected:?}")]
    WrongAttestationKind {
        index: u16,
        found: AttestationKind,
        expected: AttestationKind,
    },
    #[error("attestation {index} is by bank {found}, but the account's home bank is {expected}")]
    WrongAttestingBank {
        index: u16,
        found: BankId,
        expected: BankId,
    },
    #[error("attestation {index} does not cover this transfer")]
    NotAttested { index: u16 },
    #[error("disclosure order is for chain {found:?}")]
    OrderWrongChain { found: String },
    #[error("unsupported disclosure order version {version}")]
    OrderVersion { version: u8 },
    #[error("disclosure order expired at {expires_at}, block time {time}")]
    OrderExpired { expires_at: TimeMs, time: TimeMs },
    #[error("disclosure order {order} is already recorded")]
    OrderServed { order: Hash32 },
    #[error("disclosure order {order} is not recorded on chain")]
    OrderNotRecorded { order: Hash32 },
    #[error("holder {holder} is not a holder of the disclosure key")]
    UnknownHolder { holder: u16 },
    #[error("holder {holder} already recorded its shares for this order")]
    ShareRecorded { holder: u16 },
    #[error("holder {holder}'s signature on its share record does not verify")]
    BadShareSignature { holder: u16 },
    #[error("disclosure key not adopted: {reason}")]
    BadKeyAdoption { reason: String },
    #[error("a block adopts at most one disclosure key")]
    KeyAdoptedTwice,
    #[error("holder {holder}'s signature on the adopted disclosure key does not verify")]
    BadKeyAdoptionSignature { holder: u16 },
    #[error("auditor {auditor} is not in genesis")]
    UnknownAuditor { auditor: u16 },
    #[error("auditor {auditor} signed twice")]
    DuplicateAuditor { auditor: u16 },
    #[error("{signers} auditor signatures, threshold {threshold}")]
    BelowThreshold { signers: usize, threshold: u16 },
    #[error("auditor {auditor}'s signature does not verify")]
    BadAuditorSignature { auditor: u16 },
    #[error("supply not conserved: expected {expected}, balances sum to {found}")]
    SupplyMismatch { expected: u128, found: u128 },
    #[error("cannot encode: {0}")]
    Codec(#[from] CodecError),
}

/// A rule broken by a block: at which op (if one) and why.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub struct ApplyError {
    pub height: Height,
    /// The op's index in the block; `None` for the header or the attestations.
    pub op: Option<usize>,
    pub violation: Violation,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            Some(op) => write!(
                formatter,
                "block {}, op {}: {}",
                self.height, op, self.violation
            ),
            None => write!(formatter, "block {}: {}", self.height, self.violation),
        }
    }
}
