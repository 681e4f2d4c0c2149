//! Golden vectors of the wire format: canonical encodings, ids, hashes and signatures.
//!
//! Every value here goes over the network, into a signature or into the database, so a
//! change to any of them is a wire change. The expected strings are pasted literally: when
//! one of these tests fails, either the change was a mistake, or it is a deliberate wire change
//! that needs a new version, and then the vectors are updated together with the version.
//!
//! Threshold seals (identity credentials and records) and the DKG are randomized by design;
//! under a seeded rng they are fixed, so they are pinned too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::codec;
use halfveil_ledger::crypto::{
    self, open_identity_credential, seal_identity_credential, BusinessKey, Envelope,
    IdentityRecord, SigningKey,
};
use halfveil_ledger::hash::{merkle_proof, merkle_root, Domain, Hash32};
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::threshold::{dkg, tdh2, Point};
use halfveil_ledger::{
    attestation_message, open_account_message, transaction_credential_message, AccountId, Amount,
    AttestationKind, AuditorId, AuditorSignature, BankId, BatchAttestation, Block, BlockHeader,
    ChainId, CloseAccount, DisclosureOrder, Height, IdentityCredential, Issue, Memo, Nonce, Op,
    OpenAccount, OrderOp, PublicKey, RotateKey, SealedIdentityRecord, ShareRecord, Signature,
    SignedHeader, TimeMs, TransactionRequest, Transfer, TransferOp, X25519PublicKey,
    IDENTITY_CREDENTIAL_BODY_BYTES, IDENTITY_RECORD_BODY_BYTES, VERSION,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Compares a list of `(name, actual)` with the pasted expectations. On any difference it
/// names every changed vector and prints the whole computed table, ready to paste once the
/// change is confirmed deliberate (and versioned).
fn assert_golden(group: &str, actual: &[(&str, String)], expected: &[(&str, &str)]) {
    check_vectors_file(group, actual);
    let changed: Vec<&str> = actual
        .iter()
        .filter(|(name, found)| {
            expected
                .iter()
                .find(|(wanted_name, _)| wanted_name == name)
                .map(|(_, wanted)| *wanted)
                != Some(found.as_str())
        })
        .map(|(name, _)| *name)
        .collect();
    let same_names = actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|((found, _), (wanted, _))| found == wanted);
    if changed.is_empty() && same_names {
        return;
    }
    let table: Vec<String> = actual
        .iter()
        .map(|(name, found)| format!("    (\"{name}\", \"{found}\"),"))
        .collect();
    panic!(
        "golden vectors changed (a wire change!): {changed:?}\ncomputed now:\n{}",
        table.join("\n")
    );
}

/// The vectors as auditors read them: `docs/vectors/<group>.json`, one JSON object of the
/// same names and values in the same order, which must equal what this test computes.
/// `HALFVEIL_WRITE_VECTORS=1` rewrites the file (after a deliberate, versioned change).
fn check_vectors_file(group: &str, actual: &[(&str, String)]) {
    let lines: Vec<String> = actual
        .iter()
        .map(|(name, value)| format!("  {name:?}: {value:?}"))
        .collect();
    let text = format!("{{\n{}\n}}\n", lines.join(",\n"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/vectors")
        .join(format!("{group}.json"));
    if std::env::var_os("HALFVEIL_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == text,
        "{} differs from the computed vectors: rerun with HALFVEIL_WRITE_VECTORS=1 once the \
         change is deliberate and versioned",
        path.display()
    );
}

/// The canonical encoding of a value, as hex.
macro_rules! hex_of {
    ($value:expr) => {
        hex::encode(codec::encode($value).unwrap())
    };
}

fn chain_id() -> ChainId {
    ChainId::new("halfveil-golden").unwrap()
}

/// Two fixed Ed25519 keys: ed25519 signing is deterministic, so signatures are golden too.
fn payer_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn bank_key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn fixed_transfer() -> Transfer {
    Transfer {
        version: VERSION,
        chain_id: chain_id(),
        payer: AccountId::from_key(&crypto::public_key(&payer_key())),
        payee: AccountId([0x22; 32]),
        amount: Amount(1_234_567),
        nonce: Nonce(42),
        expires_at: TimeMs(1_767_225_900_000),
        memo: Memo(b"invoice 7".to_vec()),
    }
}

fn fixed_capsule() -> tdh2::Capsule {
    tdh2::Capsule {
        epoch: 1,
        u: Point([0xa1; 32]),
        u_bar: Point([0xa2; 32]),
        proof: [0xa3; 64],
    }
}

/// A well-formed identity credential with fixed bytes (a real one is a randomized seal).
fn placeholder_identity_credential() -> IdentityCredential {
    let mut body = [0u8; IDENTITY_CREDENTIAL_BODY_BYTES];
    body[0] = 0xab;
    body[IDENTITY_CREDENTIAL_BODY_BYTES - 1] = 0xcd;
    IdentityCredential {
        capsule: fixed_capsule(),
        body,
    }
}

/// A sealed identity record with fixed bytes.
fn placeholder_identity_record() -> SealedIdentityRecord {
    let mut body = [0x5c; IDENTITY_RECORD_BODY_BYTES];
    body[0] = 0x01;
    SealedIdentityRecord {
        capsule: fixed_capsule(),
        body,
    }
}

fn fixed_transfer_op() -> Op {
    let transfer = fixed_transfer();
    let id = transfer.id().unwrap();
    let identity_credential = placeholder_identity_credential();
    let message = transaction_credential_message(&id, &identity_credential).unwrap();
    Op::Transfer(TransferOp {
        request: TransactionRequest {
            tx_credential: crypto::sign(&payer_key(), &message),
            transfer,
            identity_credential,
        },
        payer_ok: 0,
        payee_ok: 1,
    })
}

fn fixed_attestation() -> BatchAttestation {
    let ids = vec![fixed_transfer().id().unwrap(), Hash32([0x33; 32])];
    let message =
        attestation_message(&chain_id(), AttestationKind::PayerOk, BankId(1), &ids).unwrap();
    BatchAttestation {
        kind: AttestationKind::PayerOk,
        bank: BankId(1),
        ids,
        signature: crypto::sign(&bank_key(), &message),
    }
}

fn fixed_header() -> BlockHeader {
    BlockHeader {
        version: VERSION,
        chain_id: chain_id(),
        height: Height(3),
        parent: Hash32([0x44; 32]),
        time: TimeMs(1_767_225_600_300),
        op_root: Hash32([0x55; 32]),
        attestation_root: Hash32([0x66; 32]),
        state_root: Hash32([0x77; 32]),
        op_count: 1,
    }
}

fn leaves(count: u64) -> Vec<Hash32> {
    (0..count)
        .map(|index| Domain::OpHash.hash(&index.to_le_bytes()))
        .collect()
}

/// Every domain, so each context is pinned. `listed` below stops compiling when a domain is
/// added, so `Domain::ALL` (and the golden table) cannot silently fall behind.
const ALL_DOMAINS: [Domain; 30] = Domain::ALL;

fn listed(domain: Domain) -> bool {
    match domain {
        Domain::TransferId
        | Domain::OpHash
        | Domain::MerkleLeaf
        | Domain::MerkleNode
        | Domain::MerkleEmpty
        | Domain::BlockHash
        | Domain::AccountId
        | Domain::Attestation
        | Domain::AttestationHash
        | Domain::OpenAccount
        | Domain::RotateKey
        | Domain::CloseAccount
        | Domain::IdentitySignature
        | Domain::DisclosureOrder
        | Domain::StateLeaf
        | Domain::StateRoot
        | Domain::Genesis
        | Domain::EnvelopeAad
        | Domain::Rejection
        | Domain::LocalStorageKey
        | Domain::DisclosureBasis
        | Domain::TransactionCredential
        | Domain::IdentityCredentialHash
        | Domain::IdentityRecordHash
        | Domain::CredentialLabel
        | Domain::RecordLabel
        | Domain::ShareRecordKey
        | Domain::ShareRecord
        | Domain::SealedShares
        | Domain::KeyAdoption => ALL_DOMAINS.contains(&domain),
    }
}

#[test]
fn domain_contexts_are_fixed() {
    let actual: Vec<(&str, String)> = ALL_DOMAINS
        .iter()
        .map(|domain| (domain.context(), domain.hash(b"halfveil").to_hex()))
        .collect();
    assert!(ALL_DOMAINS.iter().all(|domain| listed(*domain)));
    let contexts: Vec<&str> = ALL_DOMAINS.iter().map(|domain| domain.context()).collect();
    let mut unique = contexts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), contexts.len(), "two domains share a context");
    assert_golden("hashes", &actual, DOMAIN_GOLDEN);
}

const DOMAIN_GOLDEN: &[(&str, &str)] = &[
    (
        "halfveil v1 transfer id",
        "5028199e6e8a6e74fd97d8d2a3fc9f34894448fcc418183d593a328e6c9a607e",
    ),
    (
        "halfveil v1 op hash",
        "831a18eaa905033d0b7366a0180f7c53a3fd9e622f870a78c53e05ed738e32d3",
    ),
    (
        "halfveil v1 merkle leaf",
        "2611fc42070647f80a5822d61feb6342afa3c5d91752959d99b75a899764709c",
    ),
    (
        "halfveil v1 merkle node",
        "f3ae3ec58ccd2c35a33de9dd5be37125f2eef95d3edacba287a0a6890af43a0f",
    ),
    (
        "halfveil v1 merkle empty",
        "3d385dc5fca16e6f8cbd29effa6714b2456c82ba1b7bec876f3c5f29ea860599",
    ),
    (
        "halfveil v1 block hash",
        "26a7672ec175c250896eea2e9d6c85f6045085eb5880d21a8ea9ea3b96e167b6",
    ),
    (
        "halfveil v1 account id",
        "1af057a2fcae9f595e0d6324adfaaf4fe3178ddd8bbe926b819ac0ac9ba5d74e",
    ),
    (
        "halfveil v1 batch attestation",
        "598e9ebf0a07cbf25adfa7e0311c3988fe08783707373bec469157825a058bd5",
    ),
    (
        "halfveil v1 attestation hash",
        "fe1e983f9b4f3ad5b09677fe036dd72c081b7f44fbbef4ee5f7f8004921bc47f",
    ),
    (
        "halfveil v1 open account",
        "b52ce3e2eddc7b85c25b322eb9fdc1dfa81f5c1849af0f5ee727a42360080317",
    ),
    (
        "halfveil v1 rotate key",
        "c792a027fe632c33f6740aaa8ac14d5703f9c2b403968b62c1f021b9489250ec",
    ),
    (
        "halfveil v1 close account",
        "5869549ea1acf3f7a5d2f62df05dc017f7a5f949a6e5511a3344e6ffe14b83f1",
    ),
    (
        "halfveil v1 identity signature",
        "f871edba25c832b054d09c80e60a6379e128b7ddcfc8b0515244a365a6c1e437",
    ),
    (
        "halfveil v1 disclosure order",
        "5a1cd6f5856b35b25d321e2e3637bcc7d061208bc9cb1fe7523927419f679dcc",
    ),
    (
        "halfveil v1 state leaf",
        "4ecb6c86bdcf53785922ff0087dd301e6dec0e86e33b8c39f923e05cc24a5ccf",
    ),
    (
        "halfveil v1 state root",
        "a090d81e8b6239e5e805dc09c0eb4bae3ccb3c8fd901bfef7602ccc3133643c4",
    ),
    (
        "halfveil v1 genesis",
        "15345c459f32398dfdb011007c8172de32811fe3aae3838b2bc0f29847a1436e",
    ),
    (
        "halfveil v1 envelope aad",
        "4ce19b86c8284a62196ec7c5f74f16a9c6fc8fe0aff44d222dfec3f7383016f8",
    ),
    (
        "halfveil v1 rejection",
        "793ad0ca8c9c6c555179118b7eda617be5336d51648729cbb0b5d3f35a4a755b",
    ),
    (
        "halfveil v1 local storage key",
        "9440ebb995755dbccf3d385488d9abf4c3ce7e305b787c3d1a7ec4f797cdfb82",
    ),
    (
        "halfveil v1 disclosure basis",
        "5a1b7c2e16437f3a5ea9fae238d4b1d423f286d95c951231caef5a719e779df8",
    ),
    (
        "halfveil v1 transaction credential",
        "ae7f7dda130de8c6f4737656eb9acb56f74f57b1d560cddb4388e4f56f463a7d",
    ),
    (
        "halfveil v1 identity credential hash",
        "6b01fa639ca50567419eaf122dea62a1b11a2afc2e29f9ca0d2e369b81ddeebe",
    ),
    (
        "halfveil v1 identity record hash",
        "950b24d1189967b771ea4cf02439da59b72bb803f9fc8bb8801ec1fcb7831b25",
    ),
    (
        "halfveil v1 identity credential label",
        "541bc07cbe606432a3c8ea97998e48255c38cb7184cce26572b43f8ee6af0df6",
    ),
    (
        "halfveil v1 identity record label",
        "3934b0bc5b43561698d14fbcefe7c91ff130a51e34c41db2d4a9432519de479a",
    ),
    (
        "halfveil v1 disclosure share record key",
        "974980ffd8e3e285069bbc1459cffefd2fc7827b80594cbff647c25990abc869",
    ),
    (
        "halfveil v1 disclosure share record",
        "fdedfcb1f42d3c6023e91d31fa97befa6c75f1506229fe6f10d6aca364967a09",
    ),
    (
        "halfveil v1 sealed disclosure shares",
        "db9f04da8a9bd8d8dcbb9ec1a9dbc824abcd2fc1fe9c073dca65492e22c182b4",
    ),
    (
        "halfveil v1 adopt disclosure key",
        "38ab19369362d56672062dfb1aaf40606709b975058ec3eebacd5811cb79f3b3",
    ),
];

#[test]
fn encodings_and_ids_are_fixed() {
    let transfer = fixed_transfer();
    let transfer_id = transfer.id().unwrap();
    let payer_public = crypto::public_key(&payer_key());
    let payer_account = AccountId::from_key(&payer_public);
    let op = fixed_transfer_op();
    let record = placeholder_identity_record();
    let open_message =
        open_account_message(&chain_id(), &payer_public, BankId(1), &record).unwrap();
    let open = Op::OpenAccount(OpenAccount {
        account: payer_account,
        tx_key: payer_public,
        bank: BankId(1),
        holder_signature: crypto::sign(&payer_key(), &open_message),
        bank_signature: crypto::sign(&bank_key(), &open_message),
        identity_record: Box::new(record.clone()),
    });
    let open_encoded = codec::encode(&open).unwrap();
    let issue = Op::Issue(Issue {
        to: payer_account,
        amount: Amount(u64::MAX),
        reference: 300,
    });
    let rotate = RotateKey {
        account: payer_account,
        new_key: crypto::public_key(&bank_key()),
        nonce: Nonce(5),
        expires_at: TimeMs(1_767_225_700_000),
        old_signature: Signature([0u8; 64]),
        new_signature: Signature([0u8; 64]),
    };
    let close = CloseAccount {
        account: payer_account,
        nonce: Nonce(6),
        expires_at: TimeMs(1_767_225_700_000),
        signature: Signature([0u8; 64]),
    };
    let order = DisclosureOrder {
        version: VERSION,
        chain_id: chain_id(),
        transfer: transfer_id,
        basis_hash: Hash32([0x88; 32]),
        requester_key: X25519PublicKey([0x99; 32]),
        expires_at: TimeMs(1_767_225_800_000),
    };
    let order_hash = order.hash().unwrap();
    let order_op = Op::DisclosureOrder(OrderOp {
        order: order.clone(),
        signatures: vec![AuditorSignature {
            auditor: AuditorId(2),
            signature: crypto::sign(&bank_key(), &order_hash),
        }],
    });
    let share_message =
        ShareRecord::message(&chain_id(), &order_hash, 4, &Hash32([0xbb; 32])).unwrap();
    let share_op = Op::DisclosureShare(ShareRecord {
        order: order.clone(),
        holder: 4,
        sealed_hash: Hash32([0xbb; 32]),
        signature: crypto::sign(&bank_key(), &share_message),
    });
    let credential = placeholder_identity_credential();
    let attestation = fixed_attestation();
    let header = fixed_header();
    let header_hash = header.hash().unwrap();
    let header_signature = crypto::sign(&bank_key(), &header_hash);
    let actual: Vec<(&str, String)> = vec![
        ("chain id", hex_of!(&chain_id())),
        ("amount 0", hex_of!(&Amount(0))),
        ("amount 300", hex_of!(&Amount(300))),
        ("amount max", hex_of!(&Amount(u64::MAX))),
        ("memo", hex_of!(&Memo(b"hi".to_vec()))),
        ("payer public key", payer_public.to_hex()),
        ("payer account hex", hex::encode(payer_account.0)),
        ("payer account bech32m", payer_account.to_string()),
        ("transfer", hex_of!(&transfer)),
        ("transfer id", transfer_id.to_hex()),
        ("identity credential", hex_of!(&credential)),
        (
            "identity credential hash",
            credential.hash().unwrap().to_hex(),
        ),
        (
            "tx credential message",
            transaction_credential_message(&transfer_id, &credential)
                .unwrap()
                .to_hex(),
        ),
        (
            "credential label",
            crypto::credential_label(&chain_id(), &transfer_id).to_hex(),
        ),
        (
            "record label",
            crypto::record_label(&chain_id(), &payer_account).to_hex(),
        ),
        (
            "identity signature message",
            crypto::identity_signature_message(&transfer_id).to_hex(),
        ),
        ("transfer op", hex_of!(&op)),
        ("transfer op hash", op.hash().unwrap().to_hex()),
        ("identity record hash", record.hash().unwrap().to_hex()),
        ("open account message", open_message.to_hex()),
        (
            "open account op without the record body",
            hex::encode(&open_encoded[..open_encoded.len() - IDENTITY_RECORD_BODY_BYTES]),
        ),
        ("open account op hash", open.hash().unwrap().to_hex()),
        ("issue op", hex_of!(&issue)),
        ("issue op hash", issue.hash().unwrap().to_hex()),
        (
            "rotate key message",
            rotate.message(&chain_id()).unwrap().to_hex(),
        ),
        (
            "close account message",
            close.message(&chain_id()).unwrap().to_hex(),
        ),
        ("disclosure order hash", order_hash.to_hex()),
        ("disclosure order op", hex_of!(&order_op)),
        ("share record message", share_message.to_hex()),
        ("share record op", hex_of!(&share_op)),
        (
            "share record state key",
            ShareRecord::state_key(&order_hash, 4).to_hex(),
        ),
        (
            "attestation message",
            attestation_message(
                &chain_id(),
                attestation.kind,
                attestation.bank,
                &attestation.ids,
            )
            .unwrap()
            .to_hex(),
        ),
        ("attestation", hex_of!(&attestation)),
        ("header", hex_of!(&header)),
        ("header hash", header_hash.to_hex()),
        ("header signature", header_signature.to_hex()),
        ("open account op", hex::encode(&open_encoded)),
        ("rotate key op", hex_of!(&Op::RotateKey(rotate.clone()))),
        (
            "close account op",
            hex_of!(&Op::CloseAccount(close.clone())),
        ),
    ];
    assert_golden("encodings", &actual, ENCODING_GOLDEN);

    // A block is its parts in order, each with a varint length prefix for the lists.
    let block = Block {
        signed: SignedHeader {
            header,
            signer: crypto::public_key(&bank_key()),
            signature: header_signature,
        },
        attestations: vec![attestation],
        ops: vec![op],
    };
    // Since version 2 the signer follows the header, outside the hash.
    let signer_hex = crypto::public_key(&bank_key()).to_hex();
    let expected_block = [
        find(ENCODING_GOLDEN, "header"),
        signer_hex.as_str(),
        find(ENCODING_GOLDEN, "header signature"),
        "01",
        find(ENCODING_GOLDEN, "attestation"),
        "01",
        find(ENCODING_GOLDEN, "transfer op"),
    ]
    .concat();
    assert_eq!(hex_of!(&block), expected_block);
    assert_eq!(Block::decode(&block.encode().unwrap()).unwrap(), block);
}

fn find<'a>(golden: &[(&str, &'a str)], name: &str) -> &'a str {
    golden
        .iter()
        .find(|(found, _)| *found == name)
        .map(|(_, value)| *value)
        .unwrap()
}

const ENCODING_GOLDEN: &[(&str, &str)] = &[
    ("chain id", "0f68616c667665696c2d676f6c64656e"),
    ("amount 0", "00"),
    ("amount 300", "ac02"),
    ("amount max", "ffffffffffffffffff01"),
    ("memo", "026869"),
    ("payer public key", "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"),
    ("payer account hex", "b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34"),
    ("payer account bech32m", "hv1km3mjx88u74tcphjp694y0qzf80rqkn5nk7pwqj9lp0e5ckzmc6q6g5pah"),
    ("transfer", "030f68616c667665696c2d676f6c64656eb6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34222222222222222222222222222222222222222222222222222222222222222287ad4b2ae0f7fcb6b73309696e766f6963652037"),
    ("transfer id", "caa8989aeedde9d8d169836c0becc5f856a37270eaa383327a12ce006ad41b99"),
    ("identity credential", "01a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3ab00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000cd"),
    ("identity credential hash", "794a6079a71e4ab7824a28d021edc0ce331b6e6177c1bdaf8c3ce830dc3f40c5"),
    ("tx credential message", "07ecdda61eaf23abfed351cd6a8115988c3e26f264092dddf0563425a8efd933"),
    ("credential label", "a9174f1f38c227189eb16a64ac6fdeedcf73fa9348435cefc67e0eb543632fe2"),
    ("record label", "b91026f5ea3ac5c49ce428721b054f02240fabcc2838794accd878b80c2d8669"),
    ("identity signature message", "020b5a357576ddada8e0e9ea842616e9d4ccf74caa21c7c0dad3ca9707e38919"),
    ("transfer op", "02030f68616c667665696c2d676f6c64656eb6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34222222222222222222222222222222222222222222222222222222222222222287ad4b2ae0f7fcb6b73309696e766f696365203799dfc0c76701f0ec6f1fad7a728b0db7ca51e13a88a28cfec416d70376f66c200390b7eccf8bcdbe60cb66bd0d41899d2ec9b9e0bb362dcafef422f643a38a0601a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3ab00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000cd0001"),
    ("transfer op hash", "4472aa9006427e3efcc8baae1fe2977e5a493cc710fe0d45cb6c76c3d180933f"),
    ("identity record hash", "a3136fbd52a2cddc7387417f7408f7755afd30c23f428496a289ceaea99efca1"),
    ("open account message", "d51b233538c8e45ed9b89554ace75d714277e6b060d88e66550e73d7496f8d94"),
    ("open account op without the record body", "00b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c01e5028396f5351ef7901e333c75331f25a6ca35ce4e79eca0704548c2fa4f2beacabdb50ac9fd7e8a7db04a1e1fc97ae36d49d57e7dad131ad76b3e44319abd055fda97794109b91e0bd58da573504158290df1923d73ad222ddbeabae700e241a3170e32f14d9cdaea86e5aa925fe2d635b10c3d0504e790bb815ba1acb1640701a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3"),
    ("open account op hash", "863edf37fb3a12d6e359f4dbe421f1e7cab6d8a743839f5cf5664e6a69c08d02"),
    ("issue op", "01b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34ffffffffffffffffff01ac02"),
    ("issue op hash", "beb05a19e68dee32ac416fd20212a1fcacdde8d34138e67ad3a6505e3c7b79db"),
    ("rotate key message", "adb20514ded94b8c853bc100dc6639dfcd939b39d40f0070b88c1798e0145433"),
    ("close account message", "7a9261a9bdd922a66654702a9a38bbe536e9d955076fdb1ba84244f767987508"),
    ("disclosure order hash", "211e03f8cb9c1bf27ab804de69491356e1d0304e082357b60b49fc0b3620c7c3"),
    ("disclosure order op", "05030f68616c667665696c2d676f6c64656ecaa8989aeedde9d8d169836c0becc5f856a37270eaa383327a12ce006ad41b9988888888888888888888888888888888888888888888888888888888888888889999999999999999999999999999999999999999999999999999999999999999c0eaf6b6b73301020816a977c340f860438e1a68c5ea7f4bc8b79eb82582b4c92878b1028a34053a9a8b13fdcd5df204d3b8c790929c9659b608c62b8022485d1ea43b1561ae2504"),
    ("share record message", "d2de51300580a40e592329fbe1ea703b289ab0bd42a119c6f53f5b83f4f317a5"),
    ("share record op", "06030f68616c667665696c2d676f6c64656ecaa8989aeedde9d8d169836c0becc5f856a37270eaa383327a12ce006ad41b9988888888888888888888888888888888888888888888888888888888888888889999999999999999999999999999999999999999999999999999999999999999c0eaf6b6b73304bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2400c9db5d1a4376624bea21816dc01edf73cc48ce3f9f7c4921f3fb237df45045b91ad114514f58ed2fcf793734384b27690ce55d262ed8f000b065901a2f07"),
    ("share record state key", "0a53c7448e0f1c9fb446dc63187f4b073436151978999ab2bbd3a59256a5afb1"),
    ("attestation message", "41aa8e7f6959dca5dab36fe86b908d5ad230a47748aeedb344137adedc42c863"),
    ("attestation", "000102caa8989aeedde9d8d169836c0becc5f856a37270eaa383327a12ce006ad41b99333333333333333333333333333333333333333333333333333333333333333340155159c0b067dc3dfa0c4bfbb93a4d33d847484183fcbf503dc7adbed4c5df71c0a3765ebad14f049379aa6819442e74aa057232b7bbeb80c2020e66e07d0f"),
    ("header", "030f68616c667665696c2d676f6c64656e034444444444444444444444444444444444444444444444444444444444444444acd2eab6b73355555555555555555555555555555555555555555555555555555555555555556666666666666666666666666666666666666666666666666666666666666666777777777777777777777777777777777777777777777777777777777777777701"),
    ("header hash", "8106da91466cb83cff59a91eaba6c96187eb4062fd08b2b105c0d3b5c1c92624"),
    ("header signature", "4bdff91b4e9e3ee8edca4d2f0c10556d67ad3e3cbbc54ee2793d25716fbc799d4dfa8fce4ba1bd258750b0ef7c397da2af527e4793d5531d5cf5a6604b19f10c"),
    ("open account op", "00b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c01e5028396f5351ef7901e333c75331f25a6ca35ce4e79eca0704548c2fa4f2beacabdb50ac9fd7e8a7db04a1e1fc97ae36d49d57e7dad131ad76b3e44319abd055fda97794109b91e0bd58da573504158290df1923d73ad222ddbeabae700e241a3170e32f14d9cdaea86e5aa925fe2d635b10c3d0504e790bb815ba1acb1640701a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3015c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"),
    ("rotate key op", "03b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f61805a0ddf0b6b7330000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
    ("close account op", "04b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de3406a0ddf0b6b73300000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
];

/// A disclosure key adoption (wire version 3, issue 22): epoch 1 held by auditors 0 and 2
/// and the IM, threshold 3, each holder's signature over the adoption message.
#[test]
fn key_adoption_is_fixed() {
    use halfveil_ledger::disclosure_keys::{HeldKey, HolderParty, KeyAdoption};
    use halfveil_ledger::threshold::{DisclosureKey, HolderKey, Point};
    let held = HeldKey {
        key: DisclosureKey {
            epoch: 1,
            refresh: 0,
            threshold: 3,
            group_key: Point([0x11; 32]),
            holders: (1..=3u8)
                .map(|number| HolderKey {
                    holder: u16::from(number),
                    share_key: Point([0x20 + number; 32]),
                })
                .collect(),
        },
        parties: vec![
            HolderParty::Auditor(AuditorId(0)),
            HolderParty::Auditor(AuditorId(2)),
            HolderParty::IdentityManager,
        ],
    };
    let message = KeyAdoption::message(&chain_id(), &held).unwrap();
    let adoption = KeyAdoption {
        signatures: vec![crypto::sign(&bank_key(), &message); 3],
        held: held.clone(),
    };
    let op = Op::AdoptKey(adoption.clone());
    let actual: Vec<(&str, String)> = vec![
        ("held key", hex_of!(&held)),
        ("adoption message", message.to_hex()),
        ("adopt key op", hex_of!(&op)),
        ("adopt key op hash", op.hash().unwrap().to_hex()),
    ];
    check_vectors_file("adoption", &actual);
    // The op is its tag (7) and the adoption: the held key, then the signatures.
    let expected = [
        "07",
        &hex_of!(&held),
        "03",
        &adoption.signatures[0].to_hex().repeat(3),
    ]
    .concat();
    assert_eq!(hex_of!(&op), expected);
}

#[test]
fn merkle_roots_and_proofs_are_fixed() {
    let mut actual: Vec<(&str, String)> = Vec::new();
    const NAMES: [&str; 6] = [
        "root of 0 leaves",
        "root of 1 leaf",
        "root of 2 leaves",
        "root of 3 leaves",
        "root of 5 leaves",
        "root of 7 leaves",
    ];
    for (name, count) in NAMES.iter().zip([0u64, 1, 2, 3, 5, 7]) {
        actual.push((name, merkle_root(&leaves(count)).to_hex()));
    }
    let seven = leaves(7);
    let proof = merkle_proof(&seven, 4).unwrap();
    assert_eq!(proof.root(&seven[4]).unwrap(), merkle_root(&seven));
    actual.push(("proof of leaf 4 of 7", hex_of!(&proof)));
    assert_golden("merkle", &actual, MERKLE_GOLDEN);
}

const MERKLE_GOLDEN: &[(&str, &str)] = &[
    ("root of 0 leaves", "d83fde8d13ed533ca3262ee0326e7d0ad1cb047f40e637b6143740a1b03788fe"),
    ("root of 1 leaf", "ffcb556f8e27d67a6b8b79f8585f259eb5dfad2bd1336434698e8462fb051869"),
    ("root of 2 leaves", "ad657ed2c230bdc9e780298a307b82382d0ddbb97b8b5ee76451b2b0502c7981"),
    ("root of 3 leaves", "de2ce54aa9f41ac25f05e0c7544dc46cfb06df3ce717f1a7da2a585d8754f747"),
    ("root of 5 leaves", "a8172f0f74286f879d1bf220a66fa6d487a8c5c4db39bad0076aab494a24b55f"),
    ("root of 7 leaves", "6f39b44d3c3792b15f707f317c677360dd0b34cb499dfb77a851e401d391dc53"),
    ("proof of leaf 4 of 7", "040703a0189a641bb9ae897080527b58c06d740bfce367d8c44b07ed394c66c10e7a6c86d099be67dca2e04cd80275fb0bf7b8b3eb8f59440a55ee9a54bcf90e9f77f6db14972fff07e8c35702446a17d36c3ebbc4db7abd78d65b3834fd2149d5273e"),
];

/// The envelope is XChaCha20-Poly1305 under a random nonce: with a seeded rng it is fixed, and
/// its tag pins the associated data (version, chain, account, bank) too.
#[test]
fn envelope_is_fixed_under_a_seeded_rng() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let key = BusinessKey::from_bytes([0x5a; 32]);
    let Op::Transfer(op) = fixed_transfer_op() else {
        unreachable!()
    };
    let request = op.request;
    let envelope = Envelope::seal(&key, &chain_id(), BankId(1), &request, &mut rng).unwrap();
    let plaintext_bytes = codec::encode(&request).unwrap().len();
    assert_eq!(envelope.ciphertext.len(), plaintext_bytes + 16);
    let tag = &envelope.ciphertext[envelope.ciphertext.len() - 16..];
    let encoded = envelope.encode().unwrap();
    let actual: Vec<(&str, String)> = vec![
        ("envelope nonce", hex::encode(envelope.nonce)),
        ("envelope tag", hex::encode(tag)),
        (
            "envelope prefix",
            hex::encode(&encoded[..encoded.len() - envelope.ciphertext.len()]),
        ),
        ("envelope bytes", encoded.len().to_string()),
    ];
    assert_golden("envelope", &actual, ENVELOPE_GOLDEN);
    assert_eq!(Envelope::decode(&encoded).unwrap(), envelope);
    assert_eq!(
        envelope.open(&key, &chain_id(), BankId(1)).unwrap(),
        request
    );
}

const ENVELOPE_GOLDEN: &[(&str, &str)] = &[
    ("envelope nonce", "fa422e4b92882fdd13c615f7bcfff882f74eb2b38eb67653"),
    ("envelope tag", "456d73968c29a45fa5349b2dc026fd78"),
    ("envelope prefix", "03b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de3401fa422e4b92882fdd13c615f7bcfff882f74eb2b38eb676538703"),
    ("envelope bytes", "451"),
];

/// The disclosure key from a seeded DKG, and a credential and a record sealed to it under a
/// seeded rng: fixed, so they are pinned; and they open with any two of the three shares.
#[test]
fn threshold_seals_are_fixed_under_a_seeded_rng() {
    assert_eq!(IDENTITY_CREDENTIAL_BODY_BYTES, 81);
    assert_eq!(IDENTITY_RECORD_BODY_BYTES, 1040);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let (holders, key) = dkg::in_memory(1, &[1, 2, 3], 2, None, &mut rng).unwrap();
    let transfer_id = fixed_transfer().id().unwrap();
    let identity_key = SigningKey::from_bytes(&[3u8; 32]);
    let credential =
        seal_identity_credential(&key, &chain_id(), &transfer_id, &identity_key, &mut rng).unwrap();
    crypto::check_identity_credential(&key, &chain_id(), &transfer_id, &credential).unwrap();
    let label = crypto::credential_label(&chain_id(), &transfer_id);
    let shares: Vec<tdh2::DecryptionShare> = [&holders[2], &holders[0]]
        .iter()
        .map(|holder| {
            tdh2::share(
                &key,
                holder,
                &label,
                &credential.capsule,
                &credential.body,
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    let signature =
        open_identity_credential(&key, &chain_id(), &transfer_id, &credential, &shares).unwrap();
    // The sealed signature is the deterministic identity signature over the transfer id.
    assert_eq!(
        signature,
        crypto::sign(
            &identity_key,
            &crypto::identity_signature_message(&transfer_id)
        )
    );
    let account = AccountId([0x12; 32]);
    let record = IdentityRecord {
        version: VERSION,
        name: "Ada Lovelace".to_owned(),
        national_id: "GB-1815-12-10".to_owned(),
        fields: vec![("born".to_owned(), "1815-12-10".to_owned())],
        identity_key: crypto::public_key(&identity_key),
        possession: crypto::sign(
            &identity_key,
            &crypto::identity_possession_message(&chain_id(), &account),
        ),
    };
    let sealed = record.seal(&key, &chain_id(), &account, &mut rng).unwrap();
    let record_label = crypto::record_label(&chain_id(), &account);
    let record_shares: Vec<tdh2::DecryptionShare> = holders[1..]
        .iter()
        .map(|holder| {
            tdh2::share(
                &key,
                holder,
                &record_label,
                &sealed.capsule,
                &sealed.body,
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        IdentityRecord::open(&sealed, &key, &chain_id(), &account, &record_shares).unwrap(),
        record
    );
    let actual: Vec<(&str, String)> = vec![
        ("disclosure key", hex_of!(&key)),
        ("holder 1 secret", hex_of!(&holders[0])),
        ("identity credential", hex_of!(&credential)),
        ("decryption share of holder 3", hex_of!(&shares[0])),
        ("identity record hash", sealed.hash().unwrap().to_hex()),
        ("identity record", hex_of!(&sealed)),
        ("identity record account", hex::encode(account.0)),
    ];
    assert_golden("threshold", &actual, THRESHOLD_GOLDEN);
}

const THRESHOLD_GOLDEN: &[(&str, &str)] = &[
    ("disclosure key", "010002a248dd469ea5c09420c0989fad74ebcf9a0c2c6f36336b10168b82b7a5cc9d4d03017eb27e4197ae9e2434fb8328ae7e3e1673f30c8ff1553e5502c4ad7fc042b1710290912248c2f29989cc3f849764870b0fab2069317d9ce9faf8bd55e54f590c5803588c4e291699509316bfca65df2d1e91b69edc30beb1989c60e3d5b169bcec1f"),
    ("holder 1 secret", "01000109c4887772aa404cb1c2b5ba68ca44916f140a92ced2128271444b0edd9c0903"),
    ("identity credential", "015cd84ea27646cd7f4dca067af9ce9a61649800229cae06c2a94db0193ad3f27ca86409459a44c6f3b81fc081973638b2da908a7450b1c2ed53bf5569cb2587753022429110e950bcf2373987c23a464ef0612754d0545d64b0207f3ad091200f0685b6c8a46cd67aa1beea8c4c61a562318a48597c8bba76d5a968727e488001d445a7c16717914e9e0d5817a6562e07bf90644c5822b4921efb3c88fdcdbbe3346a2bbaec32930002b0909ea9f320d0d4d83c2ec1f37890118f29b336cee80dca4af04c28b3e7d2e56c54762a4b659947"),
    ("decryption share of holder 3", "039a79ca4e0ac567b83096de7be0d72a4f0991f2b3f0deab6404bc3522cf6f2b4765fa760e8e4c2305449633cc978f7759fb73b86948419d6caad87e6b7b764001274ae28cf488d96f1b396afa673459324645151d2f72f7979f0111560a1d0f03"),
    ("identity record hash", "614315e180552d9c80027d05951bb9599e836d31bad905b6ef18a35871c37a75"),
    ("identity record", "016802a08e89f38c92371b5d4cabdfc415bd2495646c39d3d11b0118f23cb58e638045756d041352feaffa5965c07e425ffb6a2636fa3ad5b6233098e3ebae227898cebc60200f2bd7c98b8971af7b8ae3e5738c7349747850fe53ff68debb060254a804168a0bba3c345f58da2186fe9bce140f38ba2fbd83577c118c1eaea701204e144cdedda3a9ff667b40f83615a0dd99af498ae19a27f720bad7473d13593e03c3c6235840a6ee43c90d18a9e5e990bfbd18ddb7c0a3c35d536bc9df83d9ff3c6597afc3f555d5b07ddfc7e4789834175b5539a4a6a34ed4a825b888fc517dba0604c1953551e1e6b6014cf9071845055f42bcc82c1fb7d0dd5a9d7bc7232bed1c57897f9ac007da18c23975a7d26c3f2c3b326d7e42c2793b052112748d3e7d13ae388d9a78692e73ef541338ece9e00a8dc2e50eec57fef267ce24e51b31a3f1eb63afd9ea40592106d13d79ec81272e19db7c8675887190ace901dcf3c5d7c6d24a0a9daad63fd5f606459cabad0d6f227c32d387b51853ed5e539175c848a76f012edd85aa45375aa78e828855952e11d1baaf087343c5deb659c0460c712ca87633cb20f736219492a0a2176fde1da82878874ac04382c890e19038bd3e11f48dea2a5c04aab6d92a4abf19f3a99bbea7d9f90832a07bae251b81f838d92860bf89ef6d262bae55aa8b4d1fbf3b597308af1f3d821d5a8856c7bbbdb3add7a5ec8a875bbd4eb6ef8dfe13be8402f6bcbae5951653859ab967926ce1c5e55ef3fb5c1718e86d11725c97870635289dd5e260e2588e6ada37803fb000848cf0db314fa8954dbad11892e77a7ee847f73c2c45ef0dd8e4a041cf1a91de4a6c83f9b99e319940faa0c6211bdaae30a73004bc3896b7afd6170e82d41c1358cbe293b51d8365212c53629491d9147d84a3f343ecbf3c0b1b31a4a41d4cd8c034ff94ebbaf629d1decbb14f6f0ae73f2592cfbdf4abad098dceb194477ceaedb8ae8361e21a8a506192569b6c6b7ced87c46eb0c2d44e0e628231867f99ecee4681b41e6502136b51df32bb7a65e4817304e8c6179b1136c919704d0b9eed55dc6cf48e19993b110412d44bcf23a64d145933a07bd4cc85bba88580ef41c8903c75602f2a6bf8c17bd8f8c4bac0c45d81d8ff8fafa192afbe8829c17b27bd2652f490cc3fb59ca252c15538207b8d4c20f56d10dacd476d714127b017757d340645d93b07dd5ca025b15fffc46c9edcc70134bc4ab6f901b2e3489c926ec6804ff12999152c9434688e5586ddda5ae086df998c74c2a5c324a98b9dc2b1e5e2cd37204b16e684960d88ec47256a42af936b7ed0581eea12ff563b09e4f1979e0377e2fa55f5f75a32924049a0a7e95c9fb4c756809e5996b929c9a9b282e016f1df3e62c3381629e0bf0c1b4df39734c45f889000599ea8799c61a6007939eb3b2f61c7ff7803189fa8c78767a58ec0d8fea65df84dc780ea0b940ee601cbbbf20f2bce1f99875cb9177ae879bde884b7a99dbf74298a9e17a4dc74fa0909a386e7d3c130d65524f45644723ac55fa50aca9d83c2dee9114ed3b6aef129aceb2733aafaff4cea0505cb66a9bd7c38d5cc5e7b327b5143efad56f22782c2f2aef1f53313483c44b83451d18fd48c38"),
    ("identity record account", "1212121212121212121212121212121212121212121212121212121212121212"),
];

/// The seeded test chain: keys, genesis, and the first blocks' hashes and state roots. These
/// pin the state commitment (the LtHash and its root) as well as the block format.
#[test]
fn seeded_test_chain_is_fixed() {
    let mut chain = TestChain::new(2026, 2, 3, 2);
    chain.seal_identity = false;
    let genesis_root = chain.state.state_root();
    let mut accounts = chain.fund_accounts(1, 1_000).unwrap();
    let block_1 = chain.state.head_hash;
    let root_1 = chain.state.state_root();
    let payee = accounts[1].id;
    let request = chain.request(&mut accounts[0], &payee, 250);
    let transfer_id = request.transfer.id().unwrap();
    let (attestations, ops) = chain.transfer_ops(vec![request]);
    let block = chain.commit(attestations, ops).unwrap();
    let actual: Vec<(&str, String)> = vec![
        ("validator key", chain.params.validator_keys[0].to_hex()),
        (
            "disclosure group key",
            hex::encode(chain.params.disclosure_key.group_key.0),
        ),
        ("bank 0 key", chain.params.bank_keys[0].to_hex()),
        ("auditor 2 key", chain.params.auditor_keys[2].to_hex()),
        ("genesis hash", chain.params.genesis_hash.to_hex()),
        ("genesis state root", genesis_root.to_hex()),
        ("account 0", accounts[0].id.to_string()),
        ("block 1 hash", block_1.to_hex()),
        ("block 1 state root", root_1.to_hex()),
        ("block 2 transfer id", transfer_id.to_hex()),
        ("block 2 op root", block.header().op_root.to_hex()),
        (
            "block 2 attestation root",
            block.header().attestation_root.to_hex(),
        ),
        ("block 2 hash", chain.state.head_hash.to_hex()),
        ("block 2 state root", chain.state.state_root().to_hex()),
        ("block 2 signature", block.signed.signature.to_hex()),
    ];
    assert_golden("chain", &actual, CHAIN_GOLDEN);
    assert_eq!(chain.state.supply, Amount(2_000));
    assert_eq!(
        chain.state.account(&accounts[0].id).unwrap().balance,
        Amount(750)
    );
    assert_eq!(
        chain.state.account(&accounts[1].id).unwrap().balance,
        Amount(1_250)
    );
}

const CHAIN_GOLDEN: &[(&str, &str)] = &[
    ("validator key", "2ac1b57b44ec16fdf46b9816e10c428d64ad5cb92514b4bb89a1f8bdaf07b279"),
    ("disclosure group key", "be73e2232025a71783036bdc78d01419b0877ac0b0d1c976072c79336a360862"),
    ("bank 0 key", "4c58289ea80cb6aa8f1bbc6e1f79feec5ea6f8a655058f4a15447ad08eb87f48"),
    ("auditor 2 key", "4d6ff76729c4f4dbdd02739d95ec0285cd515bce7abf0b59b85e867d05b951ca"),
    ("genesis hash", "28eae5a405a571adb5cc1ff37a2e3c18091652a667049adb40a5c430013e10d0"),
    ("genesis state root", "e09bc7e5c981ed5a55f745f9338dfd0423126151e3765a8109a4f4088ed74d66"),
    ("account 0", "hv1xypmg6w5m0aqqd2qp5l9n97rswv9f9x6lyzrj4g2lh74jejfh4rquczr6y"),
    ("block 1 hash", "9af359853703586ae845135d9a5eb3369adfffbf5aa90faef47aec1815135311"),
    ("block 1 state root", "c006c8ec8510f94827e6dbf5730fed8c8d94a5dd020eca6cc3c6f24c4d4b9771"),
    ("block 2 transfer id", "3f5fd130d6aa4ab81c0fa9b6711d2bb62833885376a4423fe6564ce8c8f2f33e"),
    ("block 2 op root", "8bb9ad3ae20b9a0f74ee8de4fdb424cc7ce09dc0df390199ce40183aa09826ba"),
    ("block 2 attestation root", "713a16f13285f2ff22fc17fb2491b6532d42de46ee3f69d94c38dc238d4210e2"),
    ("block 2 hash", "c1ec91deb6700b0675a07d1a254a4d151d2d7773d34d1651e5675961654a220e"),
    ("block 2 state root", "8222426fd2622def1d42aa8e4a6b76153d3d3f3b27add00cb567b3f4f7dd3f87"),
    ("block 2 signature", "0e835b8fc005b81afbd6bc9decef296fc1363fbdf98cb83c176dd8932bea8a51b010a90c16e0812d4b94f16bb8199e91f8a8b2452e8d236e897d5bb286e57b0d"),
];

/// The bech32m form parses back and refuses another prefix or a broken checksum.
#[test]
fn account_id_text_round_trips() {
    let account = AccountId::from_key(&PublicKey([0x42; 32]));
    let text = account.to_string();
    assert!(text.starts_with("hv1"), "{text}");
    assert_eq!(text.parse::<AccountId>().unwrap(), account);
    let mut broken = text.clone().into_bytes();
    let last = broken.len() - 1;
    broken[last] = if broken[last] == b'q' { b'p' } else { b'q' };
    assert!(String::from_utf8(broken)
        .unwrap()
        .parse::<AccountId>()
        .is_err());
    assert!("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        .parse::<AccountId>()
        .is_err());
}

/// An account id has one lowercase text: the four padding bits after 32 bytes must be zero
/// (BIP-173), or 16 texts with valid checksums would name one account (found by fuzzing).
#[test]
fn account_id_text_with_nonzero_padding_is_refused() {
    let canonical = "hv1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurshlth5m";
    let padded = "hv1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurlgjcttr";
    let account = canonical.parse::<AccountId>().unwrap();
    assert_eq!(account.to_string(), canonical);
    assert!(padded.parse::<AccountId>().is_err());
}

/// The signature rule is ZIP-215: it accepts what strict RFC 8032 verifiers accept and also
/// a small-order key with a small-order R (valid for any message), which strict verifiers
/// refuse; s must still be below the group order. Written to `docs/vectors/signatures.json`
/// for second implementations (`"<case> valid"` is what the chain's rule says).
#[test]
fn signature_rule_is_zip215() {
    let key = payer_key();
    let public = PublicKey(key.verifying_key().to_bytes());
    let message = Domain::OpHash.hash(b"halfveil");
    let signature = crypto::sign(&key, &message);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut small_order = [0u8; 64];
    small_order[..32].copy_from_slice(&identity);
    let strict = ed25519_dalek::VerifyingKey::from_bytes(&identity)
        .unwrap()
        .verify_strict(
            message.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&small_order),
        );
    assert!(
        strict.is_err(),
        "strict RFC 8032 refuses the small-order case"
    );
    // s + L: the same signature with a non-canonical s.
    let mut high_s = signature.0;
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    let mut order = [0u8; 32];
    hex::decode_to_slice(
        "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010",
        &mut order,
    )
    .unwrap();
    let mut carry = 0u16;
    for (byte, add) in high_s[32..].iter_mut().zip(order) {
        let sum = u16::from(*byte) + u16::from(add) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    let cases: [(&str, PublicKey, Hash32, [u8; 64]); 4] = [
        ("valid", public, message, signature.0),
        ("zip215_only", PublicKey(identity), message, small_order),
        ("s_not_canonical", public, message, high_s),
        (
            "other_message",
            public,
            Domain::OpHash.hash(b"other"),
            signature.0,
        ),
    ];
    let mut actual: Vec<(String, String)> = Vec::new();
    for (name, key, message, signature) in cases {
        let valid = crypto::verify(&key, &message, &Signature(signature)).is_ok();
        actual.push((format!("{name} key"), key.to_hex()));
        actual.push((format!("{name} message"), message.to_hex()));
        actual.push((format!("{name} signature"), hex::encode(signature)));
        actual.push((format!("{name} valid"), valid.to_string()));
    }
    let valid = |name: &str| actual.iter().any(|(n, v)| n == name && v == "true");
    assert!(valid("valid valid") && valid("zip215_only valid"));
    assert!(!valid("s_not_canonical valid") && !valid("other_message valid"));
    let named: Vec<(&str, String)> = actual
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    check_vectors_file("signatures", &named);
}

/// A whole block with real roots, signed, and the receipt of its transfer; and a state root
/// over one account, one remembered nonce and one disclosure record. Written to
/// `docs/vectors/block.json` and `docs/vectors/state.json` for second implementations.
#[test]
fn block_receipt_and_state_root_vectors() {
    let op = fixed_transfer_op();
    let attestation = fixed_attestation();
    let op_hashes = vec![op.hash().unwrap()];
    let attestation_hash = Domain::AttestationHash.hash(&codec::encode(&attestation).unwrap());
    let header = BlockHeader {
        op_root: merkle_root(&op_hashes),
        attestation_root: merkle_root(&[attestation_hash]),
        ..fixed_header()
    };
    let signer = crypto::public_key(&bank_key());
    let signature = crypto::sign(&bank_key(), &header.hash().unwrap());
    let block = Block {
        signed: SignedHeader {
            header: header.clone(),
            signer,
            signature,
        },
        attestations: vec![attestation],
        ops: vec![op.clone()],
    };
    let receipt = halfveil_ledger::Receipt {
        version: VERSION,
        transfer_id: fixed_transfer().id().unwrap(),
        op,
        header: block.signed.clone(),
        proof: merkle_proof(&op_hashes, 0).unwrap(),
    };
    receipt.verify(&[signer]).unwrap();
    check_vectors_file(
        "block",
        &[
            ("block", hex_of!(&block)),
            ("block hash", header.hash().unwrap().to_hex()),
            ("validator key", signer.to_hex()),
            ("receipt", hex_of!(&receipt)),
        ],
    );

    let account = AccountId::from_key(&crypto::public_key(&payer_key()));
    let mut accounts = halfveil_ledger::fastmap::HashMap::default();
    accounts.insert(
        account,
        halfveil_ledger::Account {
            tx_key: crypto::public_key(&payer_key()),
            bank: BankId(1),
            balance: Amount(1_000),
            closed: false,
        },
    );
    let nonce = (account, Nonce(42), TimeMs(1_767_225_900_000));
    let record = Hash32([0x88; 32]);
    let state = halfveil_ledger::State::from_parts(
        Height(3),
        Hash32::ZERO,
        TimeMs(1_767_225_600_300),
        Amount(1_000),
        accounts,
        vec![nonce],
        [record].into_iter().collect(),
        halfveil_ledger::disclosure_keys::DisclosureKeys::genesis(
            &halfveil_ledger::testkit::TestChain::new(1, 1, 1, 1).params,
        ),
    )
    .unwrap();
    check_vectors_file(
        "state",
        &[
            ("account", hex::encode(account.0)),
            ("tx key", crypto::public_key(&payer_key()).to_hex()),
            ("bank", "1".to_owned()),
            ("balance", "1000".to_owned()),
            ("nonce", "42".to_owned()),
            ("nonce expires at", "1767225900000".to_owned()),
            ("record", record.to_hex()),
            ("supply", "1000".to_owned()),
            ("lthash checksum", state.lthash().checksum().to_hex()),
            ("state root", state.state_root().to_hex()),
        ],
    );
}
