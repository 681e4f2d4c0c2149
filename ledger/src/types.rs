//! The chain's data: ids, amounts, transfers, every op, blocks, attestations, receipts.
//!
//! Every type here is encoded by [`crate::codec`] and nothing else; the field order is the wire
//! order, so moving a field is a wire change (the golden vectors in `tests/golden.rs` make it
//! visible). Structures that travel or get sealed carry a `version`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::codec::{self, byte_array};
use crate::error::{CodecError, ParseError};
use crate::hash::{Domain, Hash32};

/// The wire version of every versioned structure in this release. Version 2: a block's
/// signer moved from the hashed header into [`SignedHeader`], so that each replica of a
/// replicated IM can sign the same block.
pub const VERSION: u8 = 3;

/// Hard caps that hold whatever genesis says: they bound decoding before genesis limits apply.
pub const CHAIN_ID_BYTES_MAX: usize = 32;
pub const MEMO_BYTES_MAX: usize = 256;
pub const BLOCK_BYTES_MAX: usize = 32 * 1024 * 1024;
pub const BLOCK_OPS_MAX: usize = 65_536;
pub const ATTESTATION_IDS_MAX: usize = 8_192;
pub const DISCLOSURE_SIGNERS_MAX: usize = 64;

/// The chain's name, as in genesis: 1 to 32 bytes of `[a-z0-9-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChainId(String);

impl ChainId {
    pub fn new(name: &str) -> Result<ChainId, ParseError> {
        let valid_chars = name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if name.is_empty() || name.len() > CHAIN_ID_BYTES_MAX || !valid_chars {
            return Err(ParseError::ChainId {
                value: name.chars().take(64).collect(),
            });
        }
        Ok(ChainId(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ChainId({})", self.0)
    }
}

macro_rules! number_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, formatter)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

number_newtype!(
    /// An amount of currency, in the smallest unit.
    Amount(u64)
);
number_newtype!(
    /// A payer's transfer counter; `(payer, nonce)` commits at most once.
    Nonce(u64)
);
number_newtype!(
    /// A block's height; genesis is 0 and the first block is 1.
    Height(u64)
);
number_newtype!(
    /// Milliseconds since the Unix epoch.
    TimeMs(u64)
);
number_newtype!(
    /// A bank's position in genesis' list of banks.
    BankId(u16)
);
number_newtype!(
    /// An auditor's position in genesis' list of auditors.
    AuditorId(u16)
);

impl Height {
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }
}

/// An Ed25519 public key, as its 32 bytes (decoded and checked where it is used).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PublicKey({})", hex::encode(self.0))
    }
}

impl PublicKey {
    pub fn from_hex(text: &str) -> Result<PublicKey, ParseError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| ParseError::Hex { expected_bytes: 32 })?;
        Ok(PublicKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// An X25519 public key (the IM's escrow key, a disclosure requester's key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct X25519PublicKey(pub [u8; 32]);

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "X25519PublicKey({})", hex::encode(self.0))
    }
}

impl X25519PublicKey {
    pub fn from_hex(text: &str) -> Result<X25519PublicKey, ParseError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| ParseError::Hex { expected_bytes: 32 })?;
        Ok(X25519PublicKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "byte_array")] pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Signature({})", hex::encode(self.0))
    }
}

impl Signature {
    pub fn from_hex(text: &str) -> Result<Signature, ParseError> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| ParseError::Hex { expected_bytes: 64 })?;
        Ok(Signature(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// An account: the derived hash of its first online transaction public key. Shown as
/// bech32m with the prefix `hv`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub [u8; 32]);

const ACCOUNT_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("hv");

impl AccountId {
    pub fn from_key(key: &PublicKey) -> AccountId {
        AccountId(Domain::AccountId.hash(&key.0).0)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        bech32::encode_lower_to_fmt::<bech32::Bech32m, _>(formatter, ACCOUNT_HRP, &self.0)
            .map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "AccountId({self})")
    }
}

impl FromStr for AccountId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<AccountId, ParseError> {
        let invalid = || ParseError::AccountId {
            value: text.chars().take(100).collect(),
        };
        if text.len() > 100 {
            return Err(invalid());
        }
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<bech32::Bech32m>(text)
            .map_err(|_| invalid())?;
        if checked.hrp() != ACCOUNT_HRP {
            return Err(invalid());
        }
        // 32 bytes take 52 characters, whose last 4 bits are padding: BIP-173 requires them
        // zero, and without this check 16 lowercase texts named the same account (found by
        // the fuzz target `text_ids`).
        checked.validate_segwit_padding().map_err(|_| invalid())?;
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
        Ok(AccountId(bytes))
    }
}

/// A short note the payer attaches; bounded by genesis (and [`MEMO_BYTES_MAX`]).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Memo(pub Vec<u8>);

impl fmt::Debug for Memo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Memo({} bytes)", self.0.len())
    }
}

/// What the payer asks for: move `amount` from `payer` to `payee`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub version: u8,
    pub chain_id: ChainId,
    pub payer: AccountId,
    pub payee: AccountId,
    pub amount: Amount,
    pub nonce: Nonce,
    pub expires_at: TimeMs,
    pub memo: Memo,
}

impl Transfer {
    /// The transfer's id: the derived hash of its canonical encoding. Signatures are not part
    /// of it, so signature malleability cannot change an id.
    pub fn id(&self) -> Result<Hash32, CodecError> {
        codec::with_encoded(self, |bytes| Domain::TransferId.hash(bytes))
    }
}

/// What an identity credential encrypts: the version byte and the identity key's signature.
pub const IDENTITY_CREDENTIAL_PLAINTEXT_BYTES: usize = 1 + 64;
/// The credential's encrypted body: the plaintext and the AEAD tag.
pub const IDENTITY_CREDENTIAL_BODY_BYTES: usize =
    IDENTITY_CREDENTIAL_PLAINTEXT_BYTES + crate::threshold::tdh2::BODY_OVERHEAD;

/// The identity credential: the identity key's signature over the transfer id, encrypted to
/// the threshold disclosure key under the transfer's label. Only a quorum of holders can open
/// it, and only in a disclosure recorded on chain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityCredential {
    pub capsule: crate::threshold::tdh2::Capsule,
    #[serde(with = "byte_array")]
    pub body: [u8; IDENTITY_CREDENTIAL_BODY_BYTES],
}

impl fmt::Debug for IdentityCredential {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "IdentityCredential(sealed to key epoch {})",
            self.capsule.epoch
        )
    }
}

impl IdentityCredential {
    /// The credential's hash, which the transaction credential covers.
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        codec::with_encoded(self, |bytes| Domain::IdentityCredentialHash.hash(bytes))
    }
}

/// The 32-byte message the online transaction key signs for a payment: the transfer id
/// and the identity credential's hash, so no bank can swap or strip the credential.
pub fn transaction_credential_message(
    transfer_id: &Hash32,
    credential: &IdentityCredential,
) -> Result<Hash32, CodecError> {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(transfer_id.as_bytes());
    bytes[32..].copy_from_slice(credential.hash()?.as_bytes());
    Ok(Domain::TransactionCredential.hash(&bytes))
}

/// What the payer's client sends inside the envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRequest {
    pub transfer: Transfer,
    /// Ed25519 signature of the online transaction key over
    /// [`transaction_credential_message`].
    pub tx_credential: Signature,
    pub identity_credential: IdentityCredential,
}

/// A transfer as committed: the request plus the positions, in the block's attestation list,
/// of the payer's bank's and the payee's bank's batch attestations that cover it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOp {
    pub request: TransactionRequest,
    pub payer_ok: u16,
    pub payee_ok: u16,
}

/// A bank's statement about a whole batch of transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttestationKind {
    /// The payer's bank opened the envelope and the payer may pay.
    PayerOk,
    /// The payee's bank approves the payee receiving.
    PayeeOk,
}

/// One signature by a bank's attestation key over the ids of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAttestation {
    pub kind: AttestationKind,
    pub bank: BankId,
    pub ids: Vec<Hash32>,
    pub signature: Signature,
}

/// What a bank signs for a batch attestation.
#[derive(Serialize)]
struct AttestationMessage<'a> {
    chain_id: &'a ChainId,
    kind: AttestationKind,
    bank: BankId,
    ids: &'a [Hash32],
}

/// The 32-byte message a bank signs over a batch.
pub fn attestation_message(
    chain_id: &ChainId,
    kind: AttestationKind,
    bank: BankId,
    ids: &[Hash32],
) -> Result<Hash32, CodecError> {
    let message = AttestationMessage {
        chain_id,
        kind,
        bank,
        ids,
    };
    codec::with_encoded(&message, |bytes| Domain::Attestation.hash(bytes))
}

/// Opens an account at `bank` for the holder of `tx_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAccount {
    pub account: AccountId,
    pub tx_key: PublicKey,
    pub bank: BankId,
    /// Proof of possession: the online transaction key over [`open_account_message`].
    pub holder_signature: Signature,
    /// The home bank's attestation key over the same message: the bank runs this account.
    pub bank_signature: Signature,
    /// Who holds the account, encrypted to the threshold disclosure key under the account's
    /// label: on chain, so every holder can find it for a disclosure, and nobody else (the
    /// IM and the bank included) can read it.
    pub identity_record: Box<SealedIdentityRecord>,
}

/// An account's identity key with its proof of possession, travelling beside the sealed
/// identity record from the payer through the bank to the IM, which check the proof without
/// opening the record. Never stored: no node keeps a payer's identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProof {
    pub key: PublicKey,
    /// The identity key's signature over the account's record label
    /// ([`crate::crypto::identity_possession_message`]).
    pub possession: Signature,
}

impl IdentityProof {
    /// Checks the key is strong and the proof verifies for `account`.
    pub fn check(&self, chain_id: &ChainId, account: &AccountId) -> Result<(), crate::CryptoError> {
        crate::crypto::check_key_strength(&self.key)?;
        let message = crate::crypto::identity_possession_message(chain_id, account);
        crate::crypto::verify(&self.key, &message, &self.possession)
    }
}

#[derive(Serialize)]
struct OpenAccountMessage<'a> {
    chain_id: &'a ChainId,
    account: AccountId,
    tx_key: PublicKey,
    bank: BankId,
    identity_record: Hash32,
}

/// The message the holder and the bank sign to open an account; it covers the sealed
/// identity record, so no one on the way can swap it.
pub fn open_account_message(
    chain_id: &ChainId,
    tx_key: &PublicKey,
    bank: BankId,
    identity_record: &SealedIdentityRecord,
) -> Result<Hash32, CodecError> {
    let message = OpenAccountMessage {
        chain_id,
        account: AccountId::from_key(tx_key),
        tx_key: *tx_key,
        bank,
        identity_record: identity_record.hash()?,
    };
    Ok(Domain::OpenAccount.hash(&codec::encode(&message)?))
}

/// Every identity record has this plaintext length (encoded record, zero padding), so its
/// ciphertext says nothing of the name's length.
pub const IDENTITY_RECORD_PLAINTEXT_BYTES: usize = 1024;
/// The record's encrypted body: the plaintext and the AEAD tag.
pub const IDENTITY_RECORD_BODY_BYTES: usize =
    IDENTITY_RECORD_PLAINTEXT_BYTES + crate::threshold::tdh2::BODY_OVERHEAD;

/// An identity record encrypted to the threshold disclosure key; banks relay it blind.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedIdentityRecord {
    pub capsule: crate::threshold::tdh2::Capsule,
    #[serde(with = "byte_array")]
    pub body: [u8; IDENTITY_RECORD_BODY_BYTES],
}

impl fmt::Debug for SealedIdentityRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "SealedIdentityRecord(sealed to key epoch {})",
            self.capsule.epoch
        )
    }
}

impl SealedIdentityRecord {
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        codec::with_encoded(self, |bytes| Domain::IdentityRecordHash.hash(bytes))
    }
}

/// The IM creates currency into an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub to: AccountId,
    pub amount: Amount,
    /// The operator's reference (a ticket number); makes two equal issues distinct ops.
    pub reference: u64,
}

/// The holder replaces the account's online transaction key (the account id stays).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateKey {
    pub account: AccountId,
    pub new_key: PublicKey,
    pub nonce: Nonce,
    pub expires_at: TimeMs,
    /// The current key over [`RotateKey::message`].
    pub old_signature: Signature,
    /// The new key over the same message (proof of possession).
    pub new_signature: Signature,
}

#[derive(Serialize)]
struct LifecycleMessage<'a> {
    chain_id: &'a ChainId,
    account: AccountId,
    new_key: Option<PublicKey>,
    nonce: Nonce,
    expires_at: TimeMs,
}

impl RotateKey {
    pub fn message(&self, chain_id: &ChainId) -> Result<Hash32, CodecError> {
        let message = LifecycleMessage {
            chain_id,
            account: self.account,
            new_key: Some(self.new_key),
            nonce: self.nonce,
            expires_at: self.expires_at,
        };
        Ok(Domain::RotateKey.hash(&codec::encode(&message)?))
    }
}

/// The holder closes an empty account; it can neither pay nor receive again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseAccount {
    pub account: AccountId,
    pub nonce: Nonce,
    pub expires_at: TimeMs,
    pub signature: Signature,
}

impl CloseAccount {
    pub fn message(&self, chain_id: &ChainId) -> Result<Hash32, CodecError> {
        let message = LifecycleMessage {
            chain_id,
            account: self.account,
            new_key: None,
            nonce: self.nonce,
            expires_at: self.expires_at,
        };
        Ok(Domain::CloseAccount.hash(&codec::encode(&message)?))
    }
}

/// An order to reveal the payer of one transfer, signed by a quorum of auditors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureOrder {
    pub version: u8,
    pub chain_id: ChainId,
    pub transfer: Hash32,
    /// The hash of the legal basis text (the text itself stays with the requester).
    pub basis_hash: Hash32,
    /// The result is sealed to this key, so only the requester reads it.
    pub requester_key: X25519PublicKey,
    pub expires_at: TimeMs,
}

impl DisclosureOrder {
    /// What auditors sign.
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        Ok(Domain::DisclosureOrder.hash(&codec::encode(self)?))
    }
}

/// One auditor's signature over an order's hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditorSignature {
    pub auditor: AuditorId,
    pub signature: Signature,
}

/// An order recorded on chain, with the signatures of at least the threshold of auditors.
/// Holders make decryption shares only for a recorded order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderOp {
    pub order: DisclosureOrder,
    pub signatures: Vec<AuditorSignature>,
}

/// The record that one holder released its decryption shares for an order: the hash of
/// what it sealed to the requester, signed by the holder's key. No identity, no share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub order: DisclosureOrder,
    /// The holder's number in the disclosure key.
    pub holder: u16,
    /// The hash of the shares as sealed to the order's requester.
    pub sealed_hash: Hash32,
    /// The holder's signing key over [`ShareRecord::message`].
    pub signature: Signature,
}

#[derive(Serialize)]
struct ShareRecordMessage<'a> {
    chain_id: &'a ChainId,
    order: Hash32,
    holder: u16,
    sealed_hash: Hash32,
}

impl ShareRecord {
    /// What the holder signs.
    pub fn message(
        chain_id: &ChainId,
        order: &Hash32,
        holder: u16,
        sealed_hash: &Hash32,
    ) -> Result<Hash32, CodecError> {
        let message = ShareRecordMessage {
            chain_id,
            order: *order,
            holder,
            sealed_hash: *sealed_hash,
        };
        Ok(Domain::ShareRecord.hash(&codec::encode(&message)?))
    }

    /// The key the state remembers for this holder and order: one record each.
    pub fn state_key(order: &Hash32, holder: u16) -> Hash32 {
        let mut bytes = [0u8; 34];
        bytes[..32].copy_from_slice(order.as_bytes());
        bytes[32..].copy_from_slice(&holder.to_le_bytes());
        Domain::ShareRecordKey.hash(&bytes)
    }
}

/// What a holder seals to an order's requester ([`crate::crypto::seal_to_requester`]): its
/// decryption shares of the payment's identity credential and of the payer's identity
/// record. The hash of the sealed bytes is what its [`ShareRecord`] records on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureShares {
    /// The order's hash.
    pub order: Hash32,
    pub holder: u16,
    pub credential: crate::threshold::tdh2::DecryptionShare,
    pub record: crate::threshold::tdh2::DecryptionShare,
}

impl DisclosureShares {
    /// The hash a share record carries for these shares as sealed (`sealed`).
    pub fn sealed_hash(sealed: &[u8]) -> Hash32 {
        Domain::SealedShares.hash(sealed)
    }
}

/// Everything a block can do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    OpenAccount(OpenAccount),
    Issue(Issue),
    Transfer(TransferOp),
    RotateKey(RotateKey),
    CloseAccount(CloseAccount),
    DisclosureOrder(OrderOp),
    DisclosureShare(ShareRecord),
    /// A new disclosure key (a refresh or a new epoch), signed by all its holders.
    AdoptKey(crate::disclosure_keys::KeyAdoption),
}

impl Op {
    /// The op's hash, a leaf of the block's op root.
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        codec::with_encoded(self, |bytes| Domain::OpHash.hash(bytes))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Op::OpenAccount(_) => "open-account",
            Op::Issue(_) => "issue",
            Op::Transfer(_) => "transfer",
            Op::RotateKey(_) => "rotate-key",
            Op::CloseAccount(_) => "close-account",
            Op::DisclosureOrder(_) => "disclosure-order",
            Op::DisclosureShare(_) => "disclosure-share",
            Op::AdoptKey(_) => "adopt-disclosure-key",
        }
    }
}

/// A block's header; an IM replica signs its hash. The hash does not name the signer: every
/// replica of a replicated IM signs the same committed header with its own key, and all those
/// signed copies are one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub version: u8,
    pub chain_id: ChainId,
    pub height: Height,
    /// The parent block's hash; for block 1, the genesis hash.
    pub parent: Hash32,
    /// The IM's clock when it built the block; strictly increasing.
    pub time: TimeMs,
    /// Merkle root over the ops' hashes.
    pub op_root: Hash32,
    /// Merkle root over the attestations' hashes.
    pub attestation_root: Hash32,
    /// Commitment to all state after the block.
    pub state_root: Hash32,
    pub op_count: u32,
}

impl BlockHeader {
    pub fn hash(&self) -> Result<Hash32, CodecError> {
        codec::with_encoded(self, |bytes| Domain::BlockHash.hash(bytes))
    }
}

/// A header with one IM replica's signature over its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHeader {
    pub header: BlockHeader,
    /// The genesis IM validator key that made `signature`.
    pub signer: PublicKey,
    pub signature: Signature,
}

/// A signed header and its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub signed: SignedHeader,
    pub attestations: Vec<BatchAttestation>,
    pub ops: Vec<Op>,
}

impl Block {
    pub fn header(&self) -> &BlockHeader {
        &self.signed.header
    }

    pub fn height(&self) -> Height {
        self.signed.header.height
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Decodes a block strictly, within [`BLOCK_BYTES_MAX`].
    pub fn decode(bytes: &[u8]) -> Result<Block, CodecError> {
        codec::decode(bytes, BLOCK_BYTES_MAX)
    }
}

/// Proof that a transfer was committed: the signed header, the op's position and its Merkle
/// proof under the header's op root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub version: u8,
    pub transfer_id: Hash32,
    pub op: Op,
    pub header: SignedHeader,
    pub proof: crate::hash::MerkleProof,
}

/// Who refused a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejecter {
    IdentityManager,
    Bank(BankId),
}

/// Why a transfer was refused; the detail text says more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectCode {
    /// The envelope could not be opened (the one uniform error).
    Envelope,
    /// The payer's or payee's account is frozen or closed at its bank.
    AccountFrozen,
    /// A bank limit (per payment, daily, receive) would be exceeded.
    LimitExceeded,
    /// The account is not known.
    UnknownAccount,
    /// Expired, or expiring further ahead than genesis allows.
    Expired,
    /// `(payer, nonce)` already committed or in flight.
    Replay,
    InsufficientFunds,
    /// The transaction credential does not verify.
    BadCredential,
    /// Anything else the rules of a block refuse.
    Invalid,
    /// A queue was full; the payer may retry.
    Overloaded,
    /// The payee's bank did not answer in time.
    Timeout,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Envelope => "envelope",
            RejectCode::AccountFrozen => "account-frozen",
            RejectCode::LimitExceeded => "limit-exceeded",
            RejectCode::UnknownAccount => "unknown-account",
            RejectCode::Expired => "expired",
            RejectCode::Replay => "replay",
            RejectCode::InsufficientFunds => "insufficient-funds",
            RejectCode::BadCredential => "bad-credential",
            RejectCode::Invalid => "invalid",
            RejectCode::Overloaded => "overloaded",
            RejectCode::Timeout => "timeout",
        }
    }
}

/// The longest detail text of a rejection.
pub const REJECTION_DETAIL_BYTES_MAX: usize = 256;

/// A signed refusal of one transfer, by the IM (validator key) or a bank (attestation key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub version: u8,
    pub transfer: Hash32,
    pub by: Rejecter,
    pub code: RejectCode,
    pub detail: String,
    pub signature: Signature,
}

#[derive(Serialize)]
struct RejectionMessage<'a> {
    chain_id: &'a ChainId,
    transfer: &'a Hash32,
    by: Rejecter,
    code: RejectCode,
    detail: &'a str,
}

/// The message a rejecter signs.
pub fn rejection_message(
    chain_id: &ChainId,
    transfer: &Hash32,
    by: Rejecter,
    code: RejectCode,
    detail: &str,
) -> Result<Hash32, CodecError> {
    let message = RejectionMessage {
        chain_id,
        transfer,
        by,
        code,
        detail,
    };
    codec::with_encoded(&message, |bytes| Domain::Rejection.hash(bytes))
}

impl Rejection {
    /// Makes and signs a rejection; the detail is cut to [`REJECTION_DETAIL_BYTES_MAX`].
    pub fn sign(
        chain_id: &ChainId,
        transfer: Hash32,
        by: Rejecter,
        code: RejectCode,
        detail: &str,
        key: &crate::crypto::SigningKey,
    ) -> Result<Rejection, CodecError> {
        let mut detail = detail.to_owned();
        if detail.len() > REJECTION_DETAIL_BYTES_MAX {
            let mut cut = REJECTION_DETAIL_BYTES_MAX;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        let message = rejection_message(chain_id, &transfer, by, code, &detail)?;
        Ok(Rejection {
            version: VERSION,
            transfer,
            by,
            code,
            signature: crate::crypto::sign(key, &message),
            detail,
        })
    }

    /// Checks the signature with the rejecter's key.
    pub fn verify(
        &self,
        chain_id: &ChainId,
        key: &PublicKey,
    ) -> Result<(), crate::error::CryptoError> {
        let message =
            rejection_message(chain_id, &self.transfer, self.by, self.code, &self.detail)?;
        crate::crypto::verify(key, &message, &self.signature)
    }

    /// Checks the signature against the keys of whom it names: an IM refusal carries no
    /// replica number, so each IM replica key (`validators`) is tried; a bank's, against
    /// that bank's key in `banks`.
    pub fn verify_by(
        &self,
        chain_id: &ChainId,
        validators: &[PublicKey],
        banks: &[PublicKey],
    ) -> Result<(), crate::error::CryptoError> {
        let keys = match self.by {
            Rejecter::IdentityManager => validators,
            Rejecter::Bank(bank) => banks
                .get(usize::from(bank.0))
                .map(std::slice::from_ref)
                .unwrap_or_default(),
        };
        let message =
            rejection_message(chain_id, &self.transfer, self.by, self.code, &self.detail)?;
        keys.iter()
            .find_map(|key| crate::crypto::verify(key, &message, &self.signature).ok())
            .ok_or(crate::error::CryptoError::BadSignature)
    }
}
