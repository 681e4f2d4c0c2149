//! The three credentials of SPEC section 2, identity records, and sealing to a requester.
//!
//! - Transaction credential: Ed25519, signed with ed25519-dalek, verified under ZIP-215 with
//!   ed25519-zebra, whose single and batch verification accept exactly the same signatures,
//!   so every node may batch and no two nodes can disagree. Batches are checked by
//!   [`crate::sigbatch`] (ed25519-zebra's batch equation with cached decoded keys). Both run
//!   on curve25519-dalek 5, whose AVX2 and AVX-512 IFMA backends are picked at run time
//!   (`.cargo/config.toml` compiles the AVX-512 one in).
//!   It signs the transfer id together with the identity credential's hash
//!   ([`crate::types::transaction_credential_message`]), so no bank can swap the credential.
//! - Identity credential: the identity key's signature over the transfer id, encrypted with
//!   TDH2 ([`crate::threshold`]) to the threshold disclosure key under a label naming the
//!   chain and the transfer; fixed length. Only a quorum of holders can open it.
//! - Sealing to a requester (decryption shares in a disclosure): HPKE (RFC 9180, base mode,
//!   DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305); `info` binds the chain and
//!   the purpose, `aad` the order.
//! - Envelope: XChaCha20-Poly1305 under the account's business key with a random nonce; the
//!   associated data binds version, chain, account and bank.
//!
//! Identity records are encrypted like identity credentials (label: chain and account), padded
//! to one fixed length so the ciphertext says nothing of the name's length.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::Signer;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec;
use crate::error::CryptoError;
use crate::hash::{Domain, Hash32};
use crate::threshold::{tdh2, DisclosureKey};
use crate::types::{
    transaction_credential_message, AccountId, BankId, ChainId, IdentityCredential, PublicKey,
    SealedIdentityRecord, Signature, TransactionRequest, X25519PublicKey,
    IDENTITY_CREDENTIAL_BODY_BYTES, IDENTITY_CREDENTIAL_PLAINTEXT_BYTES,
    IDENTITY_RECORD_BODY_BYTES, IDENTITY_RECORD_PLAINTEXT_BYTES, VERSION,
};

/// An Ed25519 signing key (online transaction, identity, validator, attestation or auditor
/// key). Zeroized on drop by ed25519-dalek.
pub type SigningKey = ed25519_dalek::SigningKey;

/// Makes a new signing key from the operating system's randomness (or the given rng).
pub fn generate_signing_key<R: RngCore + CryptoRng>(rng: &mut R) -> SigningKey {
    SigningKey::generate(rng)
}

pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// Signs a 32-byte domain-separated message.
pub fn sign(key: &SigningKey, message: &Hash32) -> Signature {
    Signature(key.sign(message.as_bytes()).to_bytes())
}

/// Refuses keys that are not valid curve points or have small order (SPEC: weak keys are
/// refused when an account is opened).
pub fn check_key_strength(key: &PublicKey) -> Result<(), CryptoError> {
    let decoded = ed25519_dalek::VerifyingKey::from_bytes(&key.0)
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    if decoded.is_weak() {
        return Err(CryptoError::WeakPublicKey);
    }
    Ok(())
}

/// Verifies one signature under ZIP-215.
pub fn verify(key: &PublicKey, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
    let key = ed25519_zebra::VerificationKey::try_from(key.0)
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    key.verify(
        &ed25519_zebra::Signature::from_bytes(&signature.0),
        message.as_bytes(),
    )
    .map_err(|_| CryptoError::BadSignature)
}

pub use crate::sigbatch::SignatureBatch;

/// rand_core 0.6 (dalek's) behind rand_core 0.9 (hpke's) traits.
struct HpkeRng<'a, R>(&'a mut R);

impl<R: RngCore + CryptoRng> hpke::rand_core::RngCore for HpkeRng<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, destination: &mut [u8]) {
        self.0.fill_bytes(destination)
    }
}

impl<R: RngCore + CryptoRng> hpke::rand_core::CryptoRng for HpkeRng<'_, R> {}

/// An X25519 secret: a disclosure requester's key or a key ceremony's transport key.
/// Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct X25519Secret([u8; 32]);

impl std::fmt::Debug for X25519Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("X25519Secret(..)")
    }
}

impl X25519Secret {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> X25519Secret {
        let (secret, _) = X25519HkdfSha256::gen_keypair(&mut HpkeRng(rng));
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&secret.to_bytes());
        X25519Secret(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> X25519Secret {
        X25519Secret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn private_key(&self) -> Result<<X25519HkdfSha256 as hpke::Kem>::PrivateKey, CryptoError> {
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::OpenFailed)
    }

    pub fn public_key(&self) -> Result<X25519PublicKey, CryptoError> {
        let public = X25519HkdfSha256::sk_to_pk(&self.private_key()?);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        Ok(X25519PublicKey(bytes))
    }
}

/// HPKE `info` for one purpose on one chain.
fn hpke_info(purpose: &str, chain_id: &ChainId) -> Vec<u8> {
    let mut info = Vec::with_capacity(purpose.len() + 1 + chain_id.as_str().len());
    info.extend_from_slice(purpose.as_bytes());
    info.push(0);
    info.extend_from_slice(chain_id.as_str().as_bytes());
    info
}

const REQUESTER_INFO: &str = "halfveil v1 sealed to a disclosure requester";

/// Seals `plaintext` to `recipient`: version byte, encapsulated key, ciphertext and tag.
fn hpke_seal<R: RngCore + CryptoRng>(
    recipient: &X25519PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let recipient = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&recipient.0)
        .map_err(|_| CryptoError::SealFailed)?;
    let (encapped, ciphertext) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
            &OpModeS::Base,
            &recipient,
            info,
            plaintext,
            aad,
            &mut HpkeRng(rng),
        )
        .map_err(|_| CryptoError::SealFailed)?;
    let mut sealed = Vec::with_capacity(1 + 32 + ciphertext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(&encapped.to_bytes());
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

fn hpke_open(
    secret: &X25519Secret,
    info: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (&version, rest) = sealed.split_first().ok_or(CryptoError::OpenFailed)?;
    if version != VERSION {
        return Err(CryptoError::UnsupportedVersion { version });
    }
    if rest.len() < 32 + 16 {
        return Err(CryptoError::OpenFailed);
    }
    let (encapped, ciphertext) = rest.split_at(32);
    let encapped = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(encapped)
        .map_err(|_| CryptoError::OpenFailed)?;
    let plaintext = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &secret.private_key()?,
        &encapped,
        info,
        ciphertext,
        aad,
    )
    .map_err(|_| CryptoError::OpenFailed)?;
    Ok(Zeroizing::new(plaintext))
}

/// The message the identity key signs for a transfer.
pub fn identity_signature_message(transfer_id: &Hash32) -> Hash32 {
    Domain::IdentitySignature.hash(transfer_id.as_bytes())
}

/// The label an identity credential is encrypted under: the chain and the transfer.
pub fn credential_label(chain_id: &ChainId, transfer_id: &Hash32) -> Hash32 {
    let mut hasher = Domain::CredentialLabel.hasher();
    hasher.update(chain_id.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(transfer_id.as_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The label an identity record is encrypted under: the chain and the account.
pub fn record_label(chain_id: &ChainId, account: &AccountId) -> Hash32 {
    let mut hasher = Domain::RecordLabel.hasher();
    hasher.update(chain_id.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&account.0);
    Hash32(*hasher.finalize().as_bytes())
}

/// Makes a payment's identity credential: the identity key's signature over the transfer id,
/// encrypted to the disclosure key.
pub fn seal_identity_credential<R: RngCore + CryptoRng>(
    key: &DisclosureKey,
    chain_id: &ChainId,
    transfer_id: &Hash32,
    identity_key: &SigningKey,
    rng: &mut R,
) -> Result<IdentityCredential, CryptoError> {
    let signature = sign(identity_key, &identity_signature_message(transfer_id));
    let mut plaintext = Zeroizing::new([0u8; IDENTITY_CREDENTIAL_PLAINTEXT_BYTES]);
    plaintext[0] = VERSION;
    plaintext[1..65].copy_from_slice(&signature.0);
    let label = credential_label(chain_id, transfer_id);
    let (capsule, body) = tdh2::seal(key, &label, &plaintext[..], rng)?;
    let body: [u8; IDENTITY_CREDENTIAL_BODY_BYTES] =
        body.try_into()
            .map_err(|body: Vec<u8>| CryptoError::WrongLength {
                bytes: body.len(),
                expected: IDENTITY_CREDENTIAL_BODY_BYTES,
            })?;
    Ok(IdentityCredential { capsule, body })
}

/// A payer's request for `transfer`: the identity key's signature encrypted to the
/// disclosure key, and the transaction key's signature over the transfer id and that
/// credential.
pub fn sign_request<R: RngCore + CryptoRng>(
    transfer: crate::types::Transfer,
    tx_key: &SigningKey,
    identity_key: &SigningKey,
    disclosure_key: &DisclosureKey,
    rng: &mut R,
) -> Result<TransactionRequest, CryptoError> {
    let id = transfer.id()?;
    let identity_credential =
        seal_identity_credential(disclosure_key, &transfer.chain_id, &id, identity_key, rng)?;
    let message = transaction_credential_message(&id, &identity_credential)?;
    Ok(TransactionRequest {
        tx_credential: sign(tx_key, &message),
        identity_credential,
        transfer,
    })
}

/// Checks an identity credential is a well-formed ciphertext bound to this transfer
/// (anyone can; a holder does before it makes a share).
pub fn check_identity_credential(
    key: &DisclosureKey,
    chain_id: &ChainId,
    transfer_id: &Hash32,
    credential: &IdentityCredential,
) -> Result<(), CryptoError> {
    let label = credential_label(chain_id, transfer_id);
    Ok(tdh2::check(
        key,
        &label,
        &credential.capsule,
        &credential.body,
    )?)
}

/// Opens an identity credential with a quorum of verified decryption shares and returns the
/// identity signature it carries.
pub fn open_identity_credential(
    key: &DisclosureKey,
    chain_id: &ChainId,
    transfer_id: &Hash32,
    credential: &IdentityCredential,
    shares: &[tdh2::DecryptionShare],
) -> Result<Signature, CryptoError> {
    let label = credential_label(chain_id, transfer_id);
    let plaintext = tdh2::open(key, &label, &credential.capsule, &credential.body, shares)?;
    if plaintext.len() != IDENTITY_CREDENTIAL_PLAINTEXT_BYTES {
        return Err(CryptoError::OpenFailed);
    }
    if plaintext[0] != VERSION {
        return Err(CryptoError::UnsupportedVersion {
            version: plaintext[0],
        });
    }
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&plaintext[1..65]);
    Ok(Signature(signature))
}

/// 32 random bytes issued by the payer's bank; the envelope's key. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct BusinessKey([u8; 32]);

impl std::fmt::Debug for BusinessKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BusinessKey(..)")
    }
}

impl BusinessKey {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> BusinessKey {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        BusinessKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> BusinessKey {
        BusinessKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The largest envelope a bank accepts.
pub const ENVELOPE_BYTES_MAX: usize = 2048;

/// A transaction request encrypted under the payer's business key. The account and bank are
/// in the clear so the bank can find the key; the AEAD binds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u8,
    pub account: AccountId,
    pub bank: BankId,
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

#[derive(Serialize)]
struct EnvelopeAad<'a> {
    version: u8,
    chain_id: &'a ChainId,
    account: AccountId,
    bank: BankId,
}

fn envelope_aad(
    version: u8,
    chain_id: &ChainId,
    account: AccountId,
    bank: BankId,
) -> Result<Hash32, CryptoError> {
    let aad = EnvelopeAad {
        version,
        chain_id,
        account,
        bank,
    };
    Ok(codec::with_encoded(&aad, |bytes| {
        Domain::EnvelopeAad.hash(bytes)
    })?)
}

impl Envelope {
    pub fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(codec::encode(self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope, CryptoError> {
        Ok(codec::decode(bytes, ENVELOPE_BYTES_MAX)?)
    }

    /// Encrypts a request for the payer's bank.
    pub fn seal<R: RngCore + CryptoRng>(
        key: &BusinessKey,
        chain_id: &ChainId,
        bank: BankId,
        request: &TransactionRequest,
        rng: &mut R,
    ) -> Result<Envelope, CryptoError> {
        let account = request.transfer.payer;
        let aad = envelope_aad(VERSION, chain_id, account, bank)?;
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let plaintext = Zeroizing::new(codec::encode(request)?);
        let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::SealFailed)?;
        Ok(Envelope {
            version: VERSION,
            account,
            bank,
            nonce,
            ciphertext,
        })
    }

    /// Decrypts with the account's business key. Every failure (wrong key, wrong chain, wrong
    /// bank, tampering, a request for another payer, garbage inside) is the same
    /// [`CryptoError::OpenFailed`], so a prober learns nothing.
    pub fn open(
        &self,
        key: &BusinessKey,
        chain_id: &ChainId,
        bank: BankId,
    ) -> Result<TransactionRequest, CryptoError> {
        // The cleartext bank is bound too: an envelope that names another bank is refused
        // even where the AAD (computed with the opener's own id) would let it open.
        if self.version != VERSION || self.bank != bank {
            return Err(CryptoError::OpenFailed);
        }
        let aad = envelope_aad(self.version, chain_id, self.account, bank)?;
        let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&self.nonce),
                    Payload {
                        msg: &self.ciphertext,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| CryptoError::OpenFailed)?,
        );
        let request: TransactionRequest =
            codec::decode(&plaintext, ENVELOPE_BYTES_MAX).map_err(|_| CryptoError::OpenFailed)?;
        if request.transfer.payer != self.account {
            return Err(CryptoError::OpenFailed);
        }
        Ok(request)
    }
}

/// Who a person really is: encrypted to the threshold disclosure key; only a quorum of
/// holders can read it, in a disclosure recorded on chain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct IdentityRecord {
    pub version: u8,
    pub name: String,
    pub national_id: String,
    /// Other identifying fields (date of birth, address), as (name, value) pairs.
    pub fields: Vec<(String, String)>,
    #[zeroize(skip)]
    pub identity_key: PublicKey,
    /// Proof of possession: the identity key's signature over the account id
    /// ([`identity_possession_message`]). Inside the ciphertext, so a bank cannot test a
    /// guessed identity key against it.
    #[zeroize(skip)]
    pub possession: crate::types::Signature,
}

impl std::fmt::Debug for IdentityRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("IdentityRecord(..)")
    }
}

/// What the identity key signs in a record: it holds the account `account` on `chain_id`.
pub fn identity_possession_message(chain_id: &ChainId, account: &AccountId) -> Hash32 {
    record_label(chain_id, account)
}

impl IdentityRecord {
    /// The identity key and its proof of possession, to travel beside the sealed record.
    pub fn proof(&self) -> crate::types::IdentityProof {
        crate::types::IdentityProof {
            key: self.identity_key,
            possession: self.possession,
        }
    }

    /// Encrypts the record for `account` to the disclosure key.
    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        key: &DisclosureKey,
        chain_id: &ChainId,
        account: &AccountId,
        rng: &mut R,
    ) -> Result<SealedIdentityRecord, CryptoError> {
        let encoded = Zeroizing::new(codec::encode(self)?);
        if encoded.len() > IDENTITY_RECORD_PLAINTEXT_BYTES {
            return Err(CryptoError::RecordTooLarge {
                bytes: encoded.len(),
                bytes_max: IDENTITY_RECORD_PLAINTEXT_BYTES,
            });
        }
        let mut padded = Zeroizing::new(vec![0u8; IDENTITY_RECORD_PLAINTEXT_BYTES]);
        padded[..encoded.len()].copy_from_slice(&encoded);
        let (capsule, body) = tdh2::seal(key, &record_label(chain_id, account), &padded, rng)?;
        let body: [u8; IDENTITY_RECORD_BODY_BYTES] =
            body.try_into()
                .map_err(|body: Vec<u8>| CryptoError::WrongLength {
                    bytes: body.len(),
                    expected: IDENTITY_RECORD_BODY_BYTES,
                })?;
        Ok(SealedIdentityRecord { capsule, body })
    }

    /// Checks a sealed record is a well-formed ciphertext bound to `account`.
    pub fn check(
        sealed: &SealedIdentityRecord,
        key: &DisclosureKey,
        chain_id: &ChainId,
        account: &AccountId,
    ) -> Result<(), CryptoError> {
        let label = record_label(chain_id, account);
        Ok(tdh2::check(key, &label, &sealed.capsule, &sealed.body)?)
    }

    /// Opens a sealed record for `account` with a quorum of verified decryption shares.
    pub fn open(
        sealed: &SealedIdentityRecord,
        key: &DisclosureKey,
        chain_id: &ChainId,
        account: &AccountId,
        shares: &[tdh2::DecryptionShare],
    ) -> Result<IdentityRecord, CryptoError> {
        let label = record_label(chain_id, account);
        let padded = tdh2::open(key, &label, &sealed.capsule, &sealed.body, shares)?;
        let (record, rest) = postcard::take_from_bytes::<IdentityRecord>(&padded)
            .map_err(|_| CryptoError::OpenFailed)?;
        if rest.iter().any(|&byte| byte != 0) {
            return Err(CryptoError::OpenFailed);
        }
        if record.version != VERSION {
            return Err(CryptoError::UnsupportedVersion {
                version: record.version,
            });
        }
        Ok(record)
    }
}

/// Seals `plaintext` to a disclosure requester's key (a holder's decryption shares), bound
/// to the chain and the order.
pub fn seal_to_requester<R: RngCore + CryptoRng>(
    requester: &X25519PublicKey,
    chain_id: &ChainId,
    order_hash: &Hash32,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let info = hpke_info(REQUESTER_INFO, chain_id);
    hpke_seal(requester, &info, order_hash.as_bytes(), plaintext, rng)
}

/// Opens what [`seal_to_requester`] sealed, with the requester's X25519 secret.
pub fn open_as_requester(
    requester: &X25519Secret,
    chain_id: &ChainId,
    order_hash: &Hash32,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let info = hpke_info(REQUESTER_INFO, chain_id);
    hpke_open(requester, &info, order_hash.as_bytes(), sealed)
}

/// Seals a key ceremony's secret message (a DKG round-2 package) to one holder's transport
/// key, bound to the ceremony (`ceremony`, its hash) and to sender and recipient (`aad`).
pub fn seal_to_holder<R: RngCore + CryptoRng>(
    recipient: &X25519PublicKey,
    ceremony: &Hash32,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    hpke_seal(recipient, &dkg_info(ceremony), aad, plaintext, rng)
}

/// Opens what [`seal_to_holder`] sealed, with the holder's transport secret.
pub fn open_as_holder(
    transport: &X25519Secret,
    ceremony: &Hash32,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    hpke_open(transport, &dkg_info(ceremony), aad, sealed)
}

fn dkg_info(ceremony: &Hash32) -> Vec<u8> {
    let mut info = b"halfveil v1 dkg round 2".to_vec();
    info.push(0);
    info.extend_from_slice(ceremony.as_bytes());
    info
}

/// Encrypts a node-local secret at rest (a bank's business keys) under a key derived from
/// one of the node's own secrets: XChaCha20-Poly1305, random nonce, `aad` binding the row.
pub fn seal_at_rest<R: RngCore + CryptoRng>(
    node_secret: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let key = Zeroizing::new(Domain::LocalStorageKey.hash(node_secret).0);
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::SealFailed)?;
    let mut sealed = Vec::with_capacity(1 + 24 + ciphertext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens what [`seal_at_rest`] sealed.
pub fn open_at_rest(
    node_secret: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (&version, rest) = sealed.split_first().ok_or(CryptoError::OpenFailed)?;
    if version != VERSION {
        return Err(CryptoError::UnsupportedVersion { version });
    }
    if rest.len() < 24 + 16 {
        return Err(CryptoError::OpenFailed);
    }
    let (nonce, ciphertext) = rest.split_at(24);
    let key = Zeroizing::new(Domain::LocalStorageKey.hash(node_secret).0);
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let plaintext = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::OpenFailed)?;
    Ok(Zeroizing::new(plaintext))
}
