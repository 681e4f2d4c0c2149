//! Golden vectors of the wire format: canonical encodings, ids, hashes and signatures.
//!
//! Every value here goes over the network, into a signature or into the database, so a
//! change to any of them is a wire change. The expected strings are pasted literally: when
//! one of these tests fails, either the change was a mistake, or it is a deliberate wire change
//! that needs a new version, and then the vectors are updated together with the version.
//!
//! HPKE seals (identity credentials and records) are randomized by design, so for them only
//! the lengths and round trips are pinned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::codec;
use halfveil_ledger::crypto::{
    self, open_identity_credential, seal_identity_credential, BusinessKey, Envelope,
    IdentityRecord, SigningKey, X25519Secret, SEALED_IDENTITY_RECORD_BYTES,
};
use halfveil_ledger::hash::{merkle_proof, merkle_root, Domain, Hash32};
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::{
    attestation_message, open_account_message, AccountId, Amount, AttestationKind, BankId,
    BatchAttestation, Block, BlockHeader, ChainId, CloseAccount, DisclosureOrder, Height,
    IdentityCredential, Issue, Memo, Nonce, Op, OpenAccount, PublicKey, RotateKey, Signature,
    SignedHeader, TimeMs, TransactionRequest, Transfer, TransferOp, X25519PublicKey,
    IDENTITY_CREDENTIAL_BYTES, VERSION,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Compares a list of `(name, actual)` with the pasted expectations. On any difference it
/// names every changed vector and prints the whole computed table, ready to paste once the
/// change is confirmed deliberate (and versioned).
fn assert_golden(actual: &[(&str, String)], expected: &[(&str, &str)]) {
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

/// A well-formed identity credential with fixed bytes (a real one is a randomized seal).
fn placeholder_identity_credential() -> IdentityCredential {
    let mut bytes = [0u8; IDENTITY_CREDENTIAL_BYTES];
    bytes[0] = VERSION;
    bytes[1] = 0xab;
    bytes[IDENTITY_CREDENTIAL_BYTES - 1] = 0xcd;
    IdentityCredential(bytes)
}

fn fixed_transfer_op() -> Op {
    let transfer = fixed_transfer();
    let id = transfer.id().unwrap();
    Op::Transfer(TransferOp {
        request: TransactionRequest {
            tx_credential: crypto::sign(&payer_key(), &id),
            transfer,
            identity_credential: placeholder_identity_credential(),
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
const ALL_DOMAINS: [Domain; 22] = Domain::ALL;

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
        | Domain::DisclosureResult
        | Domain::DisclosureBasis => ALL_DOMAINS.contains(&domain),
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
    assert_golden(&actual, DOMAIN_GOLDEN);
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
        "halfveil v1 disclosure result",
        "c256be830dedfb92064438ee53ebd6e6564b57ed449777a53971096d872def5f",
    ),
    (
        "halfveil v1 disclosure basis",
        "5a1b7c2e16437f3a5ea9fae238d4b1d423f286d95c951231caef5a719e779df8",
    ),
];

#[test]
fn encodings_and_ids_are_fixed() {
    let transfer = fixed_transfer();
    let transfer_id = transfer.id().unwrap();
    let payer_public = crypto::public_key(&payer_key());
    let payer_account = AccountId::from_key(&payer_public);
    let op = fixed_transfer_op();
    let open = Op::OpenAccount({
        let message = open_account_message(&chain_id(), &payer_public, BankId(1)).unwrap();
        OpenAccount {
            account: payer_account,
            tx_key: payer_public,
            bank: BankId(1),
            holder_signature: crypto::sign(&payer_key(), &message),
            bank_signature: crypto::sign(&bank_key(), &message),
        }
    });
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
        (
            "tx credential",
            crypto::sign(&payer_key(), &transfer_id).to_hex(),
        ),
        (
            "identity signature message",
            crypto::identity_signature_message(&transfer_id).to_hex(),
        ),
        ("transfer op", hex_of!(&op)),
        ("transfer op hash", op.hash().unwrap().to_hex()),
        ("open account op", hex_of!(&open)),
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
        ("disclosure order hash", order.hash().unwrap().to_hex()),
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
    ];
    assert_golden(&actual, ENCODING_GOLDEN);

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
    ("transfer", "020f68616c667665696c2d676f6c64656eb6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34222222222222222222222222222222222222222222222222222222222222222287ad4b2ae0f7fcb6b73309696e766f6963652037"),
    ("transfer id", "8ad59b726e768a3e0df96fe06d8daca5deecec1fb3b41b736bf696b52758e181"),
    ("tx credential", "dcd18b1a9bb300c05af5b780319f0c3e95f5f13e01b06a7e13a24aba9325a4b8cddb23fe122aef2d35ea1cfe784f0dde04cb91e45ca38f8645561eda2881a20d"),
    ("identity signature message", "8dacd3e48b2815796986c642bb4a25a845e2e430d157d08c7bf0454fa23035d8"),
    ("transfer op", "02020f68616c667665696c2d676f6c64656eb6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34222222222222222222222222222222222222222222222222222222222222222287ad4b2ae0f7fcb6b73309696e766f6963652037dcd18b1a9bb300c05af5b780319f0c3e95f5f13e01b06a7e13a24aba9325a4b8cddb23fe122aef2d35ea1cfe784f0dde04cb91e45ca38f8645561eda2881a20d02ab00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000cd0001"),
    ("transfer op hash", "c6cda56ac0b9c9745572189a406ce381e88965df54adbc7038c1f22a9808c556"),
    ("open account op", "00b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c0128608db085de9e16ec7e3ebde14bd5cadabb3745208f08ce58900116209bcbea482addb78e84c502215fba11ed920a71454a7c8b09a6a5c036b6edb85ad064093b63ea8c38bd3cef98598e10f69edabd579f2060f087338502bc08bcc8d43d41fef42caf3173f7081eeed2d200bf40cf8e0d8fca2be635ad0bf8644432f6d308"),
    ("open account op hash", "6e4a876a9ba1f28e674d3676c1d5979733799f33220c3e66910edac340c7f946"),
    ("issue op", "01b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de34ffffffffffffffffff01ac02"),
    ("issue op hash", "beb05a19e68dee32ac416fd20212a1fcacdde8d34138e67ad3a6505e3c7b79db"),
    ("rotate key message", "adb20514ded94b8c853bc100dc6639dfcd939b39d40f0070b88c1798e0145433"),
    ("close account message", "7a9261a9bdd922a66654702a9a38bbe536e9d955076fdb1ba84244f767987508"),
    ("disclosure order hash", "f4a7cb1e5fa16e0ff5830b0b029cc056f49577594e5bdb083634a22f28f2af58"),
    ("attestation message", "5f66f787e8d8dde140d9d98124241bc0c63c8a382b2f32178cd4d6e5eb5e3e26"),
    ("attestation", "0001028ad59b726e768a3e0df96fe06d8daca5deecec1fb3b41b736bf696b52758e1813333333333333333333333333333333333333333333333333333333333333333deee33f6cfae881dc875b345a699c2b60ff89e034942a5d0f07cddd04065c5a479673c18c13a94891e8548cd4d8cf7214469dc5b6ccf7689d7a6b25e045f240e"),
    ("header", "020f68616c667665696c2d676f6c64656e034444444444444444444444444444444444444444444444444444444444444444acd2eab6b73355555555555555555555555555555555555555555555555555555555555555556666666666666666666666666666666666666666666666666666666666666666777777777777777777777777777777777777777777777777777777777777777701"),
    ("header hash", "b2f7caef56a52ce935bfba8e4a2a060b095b20407f948f491a1faf50b17f0103"),
    ("header signature", "c71aea2fae1ae47997f82fe18cacccfd8134f96922334ad7de29807b3449c9dbc4ebc4c86168bd38395f380cda17b2b39219ef8a05d68b6b0c0165a0f5969f06"),
];

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
    assert_golden(&actual, MERKLE_GOLDEN);
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
    assert_golden(&actual, ENVELOPE_GOLDEN);
    assert_eq!(Envelope::decode(&encoded).unwrap(), envelope);
    assert_eq!(
        envelope.open(&key, &chain_id(), BankId(1)).unwrap(),
        request
    );
}

const ENVELOPE_GOLDEN: &[(&str, &str)] = &[
    ("envelope nonce", "fa422e4b92882fdd13c615f7bcfff882f74eb2b38eb67653"),
    ("envelope tag", "c875d22cdefc70e6daa6aafd856c4673"),
    ("envelope prefix", "02b6e3b918e7e7aabc06f20e8b523c0249de305a749dbc170245f85f9a62c2de3401fa422e4b92882fdd13c615f7bcfff882f74eb2b38eb67653c602"),
    ("envelope bytes", "386"),
];

/// HPKE seals are randomized: pin their lengths and that they open.
#[test]
fn sealed_lengths_are_fixed() {
    assert_eq!(IDENTITY_CREDENTIAL_BYTES, 145);
    assert_eq!(SEALED_IDENTITY_RECORD_BYTES, 1073);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let escrow = X25519Secret::generate(&mut rng);
    let escrow_public = escrow.public_key().unwrap();
    let transfer_id = fixed_transfer().id().unwrap();
    let identity_key = SigningKey::from_bytes(&[3u8; 32]);
    let credential = seal_identity_credential(
        &escrow_public,
        &chain_id(),
        &transfer_id,
        &identity_key,
        &mut rng,
    )
    .unwrap();
    assert_eq!(credential.0.len(), IDENTITY_CREDENTIAL_BYTES);
    assert_eq!(credential.0[0], VERSION);
    let signature =
        open_identity_credential(&escrow, &chain_id(), &transfer_id, &credential).unwrap();
    // The sealed signature is the deterministic identity signature over the transfer id.
    assert_eq!(
        signature,
        crypto::sign(
            &identity_key,
            &crypto::identity_signature_message(&transfer_id)
        )
    );
    let record = IdentityRecord {
        version: VERSION,
        name: "Ada Lovelace".to_owned(),
        national_id: "GB-1815-12-10".to_owned(),
        fields: vec![("born".to_owned(), "1815-12-10".to_owned())],
        identity_key: crypto::public_key(&identity_key),
        possession: crypto::sign(&identity_key, &Hash32([0x13; 32])),
    };
    let account = AccountId([0x12; 32]);
    let sealed = record
        .seal(&escrow_public, &chain_id(), &account, &mut rng)
        .unwrap();
    assert_eq!(sealed.0.len(), SEALED_IDENTITY_RECORD_BYTES);
    assert_eq!(sealed.0[0], VERSION);
    assert_eq!(
        IdentityRecord::open(&sealed, &escrow, &chain_id(), &account).unwrap(),
        record
    );
}

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
        ("escrow key", chain.params.escrow_key.to_hex()),
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
    assert_golden(&actual, CHAIN_GOLDEN);
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
    ("escrow key", "cdb8e7ac40c3387c5600b10c6b37c68c51c80224042c40025bbf47df286e8d65"),
    ("bank 0 key", "6ae4f991e19b019fe9a1b55874fb31b112cf592820405d616fa81dc14c8071b3"),
    ("auditor 2 key", "c3685f96e54317ea0a3ecaaeda3f318993c36bd952e9471ba58800a797d5858d"),
    ("genesis hash", "28eae5a405a571adb5cc1ff37a2e3c18091652a667049adb40a5c430013e10d0"),
    ("genesis state root", "e09bc7e5c981ed5a55f745f9338dfd0423126151e3765a8109a4f4088ed74d66"),
    ("account 0", "hv14vpcp4zunnlyn37jwk3jqttpx7zyteztgns60f6d4lzags8tmfgs87v5pj"),
    ("block 1 hash", "c4fe6c7913a3d0343ba0034ee43a615cd1305bd4e21414283d5987a5e1fb7680"),
    ("block 1 state root", "906f39213749a3d0173a6267667a7fcb8f8774a731077bc73e9cf67ee7951cc3"),
    ("block 2 transfer id", "dba57ded485a6f4fa0815d009dd65e6b0db38875f850bd3e59ac63b5f8f8eb0a"),
    ("block 2 op root", "8ff890357e6d92e7886f62b65e413a127b83f9fe5482ac68969f88bf51c2e7d6"),
    ("block 2 attestation root", "ca1bd8c5c74873a6c5d9232888176c93657dea4387703850b686801c95d0ec27"),
    ("block 2 hash", "e8a82a02ad67e9a703e6887633ee334ea9ef23bf600ccc308a98b4c132d558db"),
    ("block 2 state root", "0a886547abb528e969d907d97284db798de45ab096792f8c4c6b6c6af69d8a33"),
    ("block 2 signature", "9bc14c8013eacd0998148d73e9eebd6c882ec8cb7845435a1cf349dd33643b986bae6fd5037d40e1782783f8f2de0f0a728208878dfc419dea14e28264f04607"),
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
