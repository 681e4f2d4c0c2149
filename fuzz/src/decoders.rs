//! The ledger's decoders of outside bytes: envelopes (and the request inside), blocks, the
//! ops and transfers they carry, rejections and receipts a payer's client reads, disclosure
//! orders an auditor submits, identity records a payer seals to the disclosure key, the
//! decryption shares a requester combines, and the text forms of ids that RPC parameters
//! carry.

use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use halfveil_ledger::apply::{execute, execute_admitted, hash_ops};
use halfveil_ledger::codec;
use halfveil_ledger::crypto::{self, BusinessKey, Envelope, IdentityRecord, ENVELOPE_BYTES_MAX};
use halfveil_ledger::disclosure_keys::KeyAdoption;
use halfveil_ledger::hash::{merkle_proof, merkle_root};
use halfveil_ledger::threshold::tdh2;
use halfveil_ledger::{
    transaction_credential_message, AccountId, BankId, Block, ChainId, DisclosureOrder,
    DisclosureShares, Domain, Hash32, Op, PublicKey, Receipt, Rejection, SealedIdentityRecord,
    ShareRecord, Signature, TransactionRequest, Transfer, X25519PublicKey,
    IDENTITY_RECORD_PLAINTEXT_BYTES, VERSION,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use crate::assert_canonical;
use crate::world::world;

/// The bound the CLI decodes receipts with (`cli/src/commands/pay.rs`, `RECEIPT_BYTES_MAX`).
pub const RECEIPT_BYTES_MAX: usize = 1 << 20;
/// The bound the CLI decodes rejections with (`cli/src/commands/pay.rs`).
pub const REJECTION_BYTES_MAX: usize = 4096;
/// The bound the RPC server decodes disclosure orders with (`node/src/rpc_server.rs`).
pub const ORDER_BYTES_MAX: usize = 1024;
/// The bound `halfveil audit disclose` decodes a holder's opened shares with.
pub const SHARES_BYTES_MAX: usize = 1024;
/// A bound for a lone op (ops arrive inside blocks, bounded by the block's).
pub const OP_BYTES_MAX: usize = 1 << 20;

/// An envelope as a bank receives it from `hv_submit`, and the request inside it: a payer
/// holds its business key, so the plaintext is outside bytes too.
pub fn envelope(data: &[u8]) {
    let world = world();
    let chain_id = &world.params.chain_id;
    if let Ok(envelope) = Envelope::decode(data) {
        assert_canonical(&envelope, data);
        if let Ok(request) = envelope.open(&world.business_key, chain_id, envelope.bank) {
            assert_eq!(request.transfer.payer, envelope.account);
            let again = codec::encode(&request).expect("encode");
            assert_eq!(
                codec::decode::<TransactionRequest>(&again, ENVELOPE_BYTES_MAX).as_ref(),
                Ok(&request)
            );
        }
    }
    // The same bytes as the plaintext of an envelope: it opens exactly when they are the
    // canonical encoding of a request by the envelope's account.
    let expected: Option<TransactionRequest> = codec::decode(data, ENVELOPE_BYTES_MAX).ok();
    let account = expected
        .as_ref()
        .map_or(world.holders[0].id, |request| request.transfer.payer);
    let bank = BankId(1);
    let sealed = seal_plaintext(&world.business_key, chain_id, account, bank, data);
    let opened = sealed.open(&world.business_key, chain_id, bank).ok();
    assert_eq!(opened, expected, "an envelope opens to another request");
    assert!(sealed
        .open(&world.business_key, chain_id, BankId(0))
        .is_err());
}

/// What the envelope's AEAD binds (`halfveil_ledger::crypto`'s private `EnvelopeAad`).
#[derive(Serialize)]
struct EnvelopeAad<'a> {
    version: u8,
    chain_id: &'a ChainId,
    account: AccountId,
    bank: BankId,
}

/// Seals arbitrary bytes as an envelope's plaintext, as a payer's client could.
pub fn seal_plaintext(
    key: &BusinessKey,
    chain_id: &ChainId,
    account: AccountId,
    bank: BankId,
    plaintext: &[u8],
) -> Envelope {
    let aad = EnvelopeAad {
        version: VERSION,
        chain_id,
        account,
        bank,
    };
    let aad = Domain::EnvelopeAad.hash(&codec::encode(&aad).expect("encode"));
    let nonce = [7u8; 24];
    let ciphertext = XChaCha20Poly1305::new(key.as_bytes().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .expect("encrypt");
    Envelope {
        version: VERSION,
        account,
        bank,
        nonce,
        ciphertext,
    }
}

/// A block as it arrives by gossip or sync: decoded strictly, then hashed the way a node
/// hashes it before its rules (header, ops, op root and the receipts' proofs).
pub fn block(data: &[u8]) {
    let Ok(block) = Block::decode(data) else {
        return;
    };
    assert_canonical(&block, data);
    block.header().hash().expect("a decoded header hashes");
    let (hashes, _) = hash_ops(&block.ops).expect("decoded ops hash");
    assert_eq!(hashes.len(), block.ops.len());
    let root = merkle_root(&hashes);
    for (index, leaf) in hashes.iter().enumerate().take(16) {
        let proof = merkle_proof(&hashes, index).expect("an op has a proof");
        assert_eq!(proof.root(leaf).expect("the proof is well formed"), root);
    }
}

/// A transfer request (the plaintext of an envelope, the body of a forwarded batch) and a
/// bare transfer.
pub fn transfer(data: &[u8]) {
    if let Ok(request) = codec::decode::<TransactionRequest>(data, ENVELOPE_BYTES_MAX) {
        assert_canonical(&request, data);
        let id = request.transfer.id().expect("id");
        let message =
            transaction_credential_message(&id, &request.identity_credential).expect("message");
        if let Some(key) = world().key_of(&request.transfer.payer) {
            let _ = crypto::verify(&crypto::public_key(key), &message, &request.tx_credential);
        }
    }
    if let Ok(transfer) = codec::decode::<Transfer>(data, ENVELOPE_BYTES_MAX) {
        assert_canonical(&transfer, data);
        transfer.id().expect("id");
    }
}

/// One op, decoded as inside a block, then run as a one-op block over the world's state:
/// with every signature checked, and as the IM builds (credentials checked at admission),
/// which must accept whatever the full check accepts, with the same result.
pub fn op(data: &[u8]) {
    let Ok(op) = codec::decode::<Op>(data, OP_BYTES_MAX) else {
        return;
    };
    assert_canonical(&op, data);
    op.hash().expect("a decoded op hashes");
    let world = world();
    let chain_id = &world.params.chain_id;
    match &op {
        Op::OpenAccount(open) => {
            let _ = crypto::check_key_strength(&open.tx_key);
        }
        Op::RotateKey(rotate) => {
            rotate.message(chain_id).expect("message");
            let _ = crypto::check_key_strength(&rotate.new_key);
        }
        Op::CloseAccount(close) => {
            close.message(chain_id).expect("message");
        }
        Op::DisclosureOrder(op) => {
            op.order.hash().expect("hash");
        }
        Op::DisclosureShare(record) => {
            let hash = record.order.hash().expect("hash");
            ShareRecord::message(chain_id, &hash, record.holder, &record.sealed_hash)
                .expect("message");
        }
        Op::Transfer(transfer) => {
            transfer.request.transfer.id().expect("id");
        }
        Op::Issue(_) => {}
        Op::AdoptKey(adoption) => {
            let message = KeyAdoption::message(chain_id, &adoption.held).expect("message");
            // Checking it on its own never panics, whatever the points and parties.
            if adoption.verify(&world.params).is_ok() {
                assert_ne!(message, Hash32::ZERO);
            }
        }
    }
    let height = world.state.height.next().expect("height");
    let ops = [op];
    let checked = execute(
        &world.params,
        &world.state,
        height,
        world.next_time(),
        &[],
        &ops,
    );
    let admitted = execute_admitted(
        &world.params,
        &world.state,
        height,
        world.next_time(),
        &[],
        &ops,
    );
    if let Ok(checked) = checked {
        let admitted = admitted.expect("the IM's build refuses an op the full check accepts");
        assert_eq!(checked.state_root, admitted.state_root);
    }
}

/// A signed refusal, as the CLI reads it from the RPC (`hv_status`).
pub fn rejection(data: &[u8]) {
    let Ok(rejection) = codec::decode::<Rejection>(data, REJECTION_BYTES_MAX) else {
        return;
    };
    assert_canonical(&rejection, data);
    let world = world();
    let chain_id = &world.params.chain_id;
    for key in &world.params.validator_keys {
        let _ = rejection.verify(chain_id, key);
    }
    for key in &world.params.bank_keys {
        let _ = rejection.verify(chain_id, key);
    }
}

/// A receipt, as the CLI reads it from the RPC or a file, checked against the IM's key.
pub fn receipt(data: &[u8]) {
    let Ok(receipt) = codec::decode::<Receipt>(data, RECEIPT_BYTES_MAX) else {
        return;
    };
    assert_canonical(&receipt, data);
    let world = world();
    for keys in [
        world.params.validator_keys.clone(),
        vec![receipt.header.signer],
    ] {
        if receipt.verify(&keys).is_ok() {
            let Op::Transfer(transfer) = &receipt.op else {
                panic!("a receipt of another op verifies");
            };
            assert_eq!(
                transfer.request.transfer.id().ok(),
                Some(receipt.transfer_id)
            );
            assert_eq!(receipt.proof.leaf_count, receipt.header.header.op_count);
            assert_eq!(
                receipt.proof.root(&receipt.op.hash().expect("hash")).ok(),
                Some(receipt.header.header.op_root)
            );
        }
    }
}

/// A disclosure order, as `hv_recordOrder` and `hv_recordShare` decode it.
pub fn disclosure_order(data: &[u8]) {
    let Ok(order) = codec::decode::<DisclosureOrder>(data, ORDER_BYTES_MAX) else {
        return;
    };
    assert_canonical(&order, data);
    order.hash().expect("hash");
}

/// An identity record, as a disclosure opens it: anyone can seal to the disclosure key, so
/// the plaintext is outside bytes. The bytes (cut to the record's fixed plaintext length,
/// zero-padded) are sealed to the world's key for an account and opened with a quorum of
/// the world's holders' shares.
pub fn identity_record(data: &[u8]) {
    let world = world();
    let chain_id = &world.params.chain_id;
    let key = &world.params.disclosure_key;
    let account = world.holders[0].id;
    let plaintext = &data[..data.len().min(IDENTITY_RECORD_PLAINTEXT_BYTES)];
    let mut padded = vec![0u8; IDENTITY_RECORD_PLAINTEXT_BYTES];
    padded[..plaintext.len()].copy_from_slice(plaintext);
    let label = crypto::record_label(chain_id, &account);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (capsule, body) = tdh2::seal(key, &label, &padded, &mut rng).expect("seal");
    let sealed = SealedIdentityRecord {
        capsule,
        body: body.try_into().expect("record length"),
    };
    let shares = quorum_shares(&label, &sealed.capsule, &sealed.body);
    let opened = IdentityRecord::open(&sealed, key, chain_id, &account, &shares);
    if let Ok(record) = &opened {
        assert_eq!(record.version, VERSION);
        let again = codec::encode(record).expect("encode");
        assert!(again.len() <= IDENTITY_RECORD_PLAINTEXT_BYTES);
        let decoded: IdentityRecord = postcard::from_bytes(&again).expect("decode");
        assert!(decoded == *record, "a record re-encodes to another record");
    }
    if let Ok(record) = codec::decode::<IdentityRecord>(plaintext, IDENTITY_RECORD_PLAINTEXT_BYTES)
    {
        if record.version == VERSION {
            assert!(
                opened.as_ref().is_ok_and(|opened| *opened == record),
                "a canonical record does not open: {:?}",
                opened.err()
            );
        }
    }
    // Another account's or chain's context never opens it.
    let other = world.holders[1].id;
    assert!(IdentityRecord::open(&sealed, key, chain_id, &other, &shares).is_err());
}

/// The shares of the world's first `threshold` holders of a ciphertext under `label`.
fn quorum_shares(
    label: &Hash32,
    capsule: &tdh2::Capsule,
    body: &[u8],
) -> Vec<tdh2::DecryptionShare> {
    let world = world();
    let key = &world.params.disclosure_key;
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    world.holder_secrets[..usize::from(key.threshold)]
        .iter()
        .map(|holder| tdh2::share(key, holder, label, capsule, body, &mut rng).expect("share"))
        .collect()
}

/// A holder's decryption shares as a requester opens them (`halfveil audit disclose`), and
/// a ciphertext's capsule as anyone checks it: against the world's key and the identity
/// credential of one sealed transfer. A share verifies only if it is that holder's real
/// share, and then it helps open the credential.
pub fn disclosure_shares(data: &[u8]) {
    let world = world();
    let key = &world.params.disclosure_key;
    let chain_id = &world.params.chain_id;
    let (transfer_id, credential) = world.sealed_credential();
    let label = crypto::credential_label(chain_id, &transfer_id);
    if let Ok(shares) = codec::decode::<DisclosureShares>(data, SHARES_BYTES_MAX) {
        assert_canonical(&shares, data);
        let verified =
            tdh2::verify_share(key, &label, &credential.capsule, &shares.credential).is_ok();
        if verified {
            let mut quorum = quorum_shares(&label, &credential.capsule, &credential.body);
            quorum.retain(|share| share.holder != shares.credential.holder);
            quorum.insert(0, shares.credential);
            quorum.truncate(usize::from(key.threshold));
            crypto::open_identity_credential(key, chain_id, &transfer_id, &credential, &quorum)
                .expect("a verified share opens with a quorum");
        }
    }
    if let Ok(capsule) = codec::decode::<tdh2::Capsule>(data, SHARES_BYTES_MAX) {
        assert_canonical(&capsule, data);
        let accepted = tdh2::check(key, &label, &capsule, &credential.body).is_ok();
        assert_eq!(
            accepted,
            capsule == credential.capsule,
            "another capsule passes the check"
        );
    }
}

/// The text forms of ids and keys that RPC parameters and CLI arguments carry: each parses
/// to a value whose own text parses back to it, and a lowercase account id is its own text.
pub fn text_ids(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = AccountId::from_str(text) {
        let shown = id.to_string();
        assert_eq!(AccountId::from_str(&shown).ok(), Some(id));
        if !text.bytes().any(|byte| byte.is_ascii_uppercase()) {
            assert_eq!(shown, text, "an account id has two lowercase texts");
        }
    }
    if let Ok(hash) = Hash32::from_hex(text) {
        assert_eq!(Hash32::from_hex(&hash.to_hex()).ok(), Some(hash));
    }
    if let Ok(key) = PublicKey::from_hex(text) {
        assert_eq!(PublicKey::from_hex(&key.to_hex()).ok(), Some(key));
    }
    if let Ok(key) = X25519PublicKey::from_hex(text) {
        assert_eq!(X25519PublicKey::from_hex(&key.to_hex()).ok(), Some(key));
    }
    if let Ok(signature) = Signature::from_hex(text) {
        assert_eq!(
            Signature::from_hex(&signature.to_hex()).ok(),
            Some(signature)
        );
    }
    if let Ok(chain) = ChainId::new(text) {
        assert_eq!(chain.as_str(), text);
    }
}
