//! The three credentials of SPEC section 2 and the receipt: signature rules (ZIP-215 single
//! and batch agree), weak keys, threshold seals and HPKE seals bound to their context, the
//! envelope's uniform failure, identity records of fixed length, and receipts checked
//! against the IM's key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use halfveil_ledger::codec;
use halfveil_ledger::crypto::{
    self, check_key_strength, open_as_requester, open_identity_credential,
    seal_identity_credential, seal_to_requester, BusinessKey, Envelope, IdentityRecord,
    SignatureBatch, SigningKey, X25519Secret, ENVELOPE_BYTES_MAX,
};
use halfveil_ledger::hash::{Domain, Hash32};
use halfveil_ledger::receipt::ReceiptError;
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::threshold::{dkg, tdh2, DisclosureKey, HolderSecret, ThresholdError};
use halfveil_ledger::{
    AccountId, Amount, BankId, ChainId, CodecError, CryptoError, Memo, Nonce, Op, PublicKey,
    Receipt, Signature, TimeMs, TransactionRequest, Transfer, VERSION,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn chain_id() -> ChainId {
    ChainId::new("halfveil-cred").unwrap()
}

fn message(index: u64) -> Hash32 {
    Domain::TransferId.hash(&index.to_le_bytes())
}

/// The little-endian order of the Ed25519 group, L = 2^252 + 27742317777372353535851937790883648493.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The identity point's canonical encoding (y = 1): a public key of order 1.
const IDENTITY_POINT: [u8; 32] = {
    let mut bytes = [0u8; 32];
    bytes[0] = 1;
    bytes
};

/// The eight small-order points of edwards25519, canonically encoded (orders 1, 2, 4, 4, 8 x4).
const SMALL_ORDER_POINTS: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// `s + L` for a signature's scalar half: the same point equation, a non-canonical scalar.
fn add_group_order(signature: &Signature) -> Signature {
    let mut bytes = signature.0;
    let mut carry = 0u16;
    for (byte, order) in bytes[32..].iter_mut().zip(GROUP_ORDER) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    Signature(bytes)
}

/// One signature case: a key, a message and a signature, valid or not.
struct Case {
    name: &'static str,
    key: PublicKey,
    message: Hash32,
    signature: Signature,
}

fn signature_cases() -> Vec<Case> {
    let mut rng = rng(1);
    let key = crypto::generate_signing_key(&mut rng);
    let public = crypto::public_key(&key);
    let valid = crypto::sign(&key, &message(1));
    let mut flipped_r = valid;
    flipped_r.0[3] ^= 0x10;
    let mut flipped_s = valid;
    flipped_s.0[40] ^= 0x01;
    let mut flipped_key = public;
    flipped_key.0[5] ^= 0x02;
    // Under ZIP-215 the identity key with R = identity and s = 0 "signs" every message:
    // the cofactored equation holds trivially. Both rules accept it; check_key_strength is
    // what keeps such keys off the chain.
    let mut trivial = [0u8; 64];
    trivial[..32].copy_from_slice(&IDENTITY_POINT);
    let mut cases = vec![
        Case {
            name: "valid",
            key: public,
            message: message(1),
            signature: valid,
        },
        Case {
            name: "wrong message",
            key: public,
            message: message(2),
            signature: valid,
        },
        Case {
            name: "flipped R",
            key: public,
            message: message(1),
            signature: flipped_r,
        },
        Case {
            name: "flipped s",
            key: public,
            message: message(1),
            signature: flipped_s,
        },
        Case {
            name: "flipped key",
            key: flipped_key,
            message: message(1),
            signature: valid,
        },
        Case {
            name: "s + L (malleated)",
            key: public,
            message: message(1),
            signature: add_group_order(&valid),
        },
        Case {
            name: "weak key, trivial signature",
            key: PublicKey(IDENTITY_POINT),
            message: message(3),
            signature: Signature(trivial),
        },
        Case {
            name: "all-zero signature",
            key: public,
            message: message(1),
            signature: Signature([0u8; 64]),
        },
    ];
    for index in 0..8 {
        let other = crypto::generate_signing_key(&mut rng);
        cases.push(Case {
            name: "valid (more keys)",
            key: crypto::public_key(&other),
            message: message(100 + index),
            signature: crypto::sign(&other, &message(100 + index)),
        });
    }
    cases
}

#[test]
fn single_and_batch_verification_agree_on_every_case() {
    let cases = signature_cases();
    let mut expectations = Vec::new();
    for case in &cases {
        let single = crypto::verify(&case.key, &case.message, &case.signature);
        let mut batch = SignatureBatch::default();
        batch.push(0usize, &case.key, &case.message, &case.signature);
        assert_eq!(single.is_ok(), batch.verify().is_ok(), "case {}", case.name);
        expectations.push((case.name, single.is_ok()));
    }
    // The verdicts themselves, so "agree" cannot mean "both broken".
    let verdict = |name: &str| {
        expectations
            .iter()
            .find(|(found, _)| *found == name)
            .unwrap()
            .1
    };
    assert!(verdict("valid"));
    assert!(!verdict("wrong message"));
    assert!(!verdict("flipped R"));
    assert!(!verdict("flipped s"));
    assert!(!verdict("flipped key"));
    assert!(!verdict("s + L (malleated)"));
    assert!(!verdict("all-zero signature"));
    assert!(
        verdict("weak key, trivial signature"),
        "ZIP-215 accepts small-order keys"
    );
    assert!(verdict("valid (more keys)"));
}

#[test]
fn a_batch_names_its_first_bad_signature() {
    let cases = signature_cases();
    let first_bad = cases
        .iter()
        .position(|case| crypto::verify(&case.key, &case.message, &case.signature).is_err())
        .unwrap();
    let mut batch = SignatureBatch::with_capacity(cases.len());
    for (index, case) in cases.iter().enumerate() {
        batch.push(index, &case.key, &case.message, &case.signature);
    }
    assert_eq!(batch.len(), cases.len());
    assert_eq!(batch.verify(), Err(first_bad));
}

/// Large batches are split over the cores: one bad signature anywhere is still found and
/// named, and a batch of only valid signatures passes.
#[test]
fn a_large_batch_with_one_bad_signature_reports_its_tag() {
    let mut rng = rng(2);
    let keys: Vec<SigningKey> = (0..16)
        .map(|_| crypto::generate_signing_key(&mut rng))
        .collect();
    let items: Vec<(PublicKey, Hash32, Signature)> = (0..300u64)
        .map(|index| {
            let key = &keys[index as usize % keys.len()];
            (
                crypto::public_key(key),
                message(index),
                crypto::sign(key, &message(index)),
            )
        })
        .collect();
    let batch_of = |bad: Option<usize>| {
        let mut batch = SignatureBatch::with_capacity(items.len());
        for (index, (key, message, signature)) in items.iter().enumerate() {
            let mut signature = *signature;
            if Some(index) == bad {
                signature.0[63] ^= 0x04;
            }
            batch.push(index as u32, key, message, &signature);
        }
        batch
    };
    assert!(SignatureBatch::<u32>::default().is_empty());
    assert_eq!(SignatureBatch::<u32>::default().verify(), Ok(()));
    assert_eq!(batch_of(None).verify(), Ok(()));
    for bad in [0usize, 151, 299] {
        assert_eq!(
            batch_of(Some(bad)).verify(),
            Err(bad as u32),
            "bad signature at {bad}"
        );
    }
    // Two bad ones: the first in push order is named.
    let mut batch = SignatureBatch::with_capacity(items.len());
    for (index, (key, message, signature)) in items.iter().enumerate() {
        let mut signature = *signature;
        if index == 40 || index == 270 {
            signature.0[0] ^= 0x01;
        }
        batch.push(index as u32, key, message, &signature);
    }
    assert_eq!(batch.verify(), Err(40));
}

/// Every small-order or non-canonical key with every small-order or non-canonical R, with
/// s = 0 (valid under the cofactored equation) and s = 1 (not): the batch (with its decoded-
/// key cache, cold and then warm) gives ed25519-zebra's single verdict on each, alone and
/// mixed into batches of real signatures.
#[test]
fn batch_and_single_agree_on_zip215_edge_cases_with_a_warm_key_cache() {
    let edges = halfveil_ledger::testkit::zip215_edge_points();
    let mut rng = rng(4);
    let real_key = crypto::generate_signing_key(&mut rng);
    let real = (
        crypto::public_key(&real_key),
        message(7),
        crypto::sign(&real_key, &message(7)),
    );
    let mut accepted = 0;
    for (case, (key, r)) in edges
        .iter()
        .flat_map(|key| edges.iter().map(move |r| (*key, *r)))
        .enumerate()
    {
        for s_low in [0u8, 1] {
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(&r);
            bytes[32] = s_low;
            let signature = Signature(bytes);
            let key = PublicKey(key);
            let message = message(case as u64);
            let single = crypto::verify(&key, &message, &signature).is_ok();
            accepted += usize::from(single);
            for round in ["cold", "warm"] {
                let mut alone = SignatureBatch::default();
                alone.push(0u8, &key, &message, &signature);
                assert_eq!(
                    alone.verify().is_ok(),
                    single,
                    "case {case} s={s_low} {round}"
                );
                let mut mixed = SignatureBatch::default();
                mixed.push(0u8, &real.0, &real.1, &real.2);
                mixed.push(1u8, &key, &message, &signature);
                mixed.push(2u8, &real.0, &real.1, &real.2);
                let expected = if single { Ok(()) } else { Err(1) };
                assert_eq!(mixed.verify(), expected, "case {case} s={s_low} {round}");
            }
        }
    }
    // Not vacuous: some edge cases pass (s = 0 on small-order points), some fail.
    assert!(
        accepted > 0 && accepted < edges.len() * edges.len() * 2,
        "{accepted}"
    );
}

/// Many keys, each signing several times across batches, with one forged signature per
/// batch at a random place: the cache never turns a bad batch good or a good one bad.
#[test]
fn batches_over_many_keys_stay_exact_as_the_cache_fills() {
    let mut rng = rng(5);
    let keys: Vec<SigningKey> = (0..64)
        .map(|_| crypto::generate_signing_key(&mut rng))
        .collect();
    for round in 0..6u64 {
        let items: Vec<(PublicKey, Hash32, Signature)> = (0..80u64)
            .map(|index| {
                let key = &keys[((index * 7 + round * 13) % 64) as usize];
                let message = message(round * 1000 + index);
                (
                    crypto::public_key(key),
                    message,
                    crypto::sign(key, &message),
                )
            })
            .collect();
        let bad = (round * 31 % 80) as usize;
        for forge in [false, true] {
            let mut batch = SignatureBatch::with_capacity(items.len());
            for (index, (key, message, signature)) in items.iter().enumerate() {
                let mut signature = *signature;
                if forge && index == bad {
                    // Another key's valid signature over the same message.
                    signature = crypto::sign(&keys[(bad + 1) % 64], message);
                }
                batch.push(index, key, message, &signature);
            }
            let expected = if forge { Err(bad) } else { Ok(()) };
            assert_eq!(batch.verify(), expected, "round {round} forge {forge}");
        }
    }
}

#[test]
fn small_order_keys_are_refused() {
    for encoded in SMALL_ORDER_POINTS {
        let key = PublicKey::from_hex(encoded).unwrap();
        assert_eq!(
            check_key_strength(&key),
            Err(CryptoError::WeakPublicKey),
            "{encoded}"
        );
    }
    // A non-canonical encoding of the identity (y = p + 1) is refused too.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert!(check_key_strength(&PublicKey(non_canonical)).is_err());
    // Real keys pass.
    let mut rng = rng(3);
    for _ in 0..16 {
        let key = crypto::public_key(&crypto::generate_signing_key(&mut rng));
        assert_eq!(check_key_strength(&key), Ok(()));
    }
}

#[test]
fn bytes_off_the_curve_are_not_a_key() {
    // About half of all y coordinates have no point; find a few and check both rules agree.
    let off_curve: Vec<PublicKey> = (2u8..60)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            PublicKey(bytes)
        })
        .filter(|key| check_key_strength(key) == Err(CryptoError::InvalidPublicKey))
        .collect();
    assert!(
        off_curve.len() >= 5,
        "found only {} off-curve encodings",
        off_curve.len()
    );
    for key in off_curve {
        let signature = Signature([0u8; 64]);
        assert_eq!(
            crypto::verify(&key, &message(0), &signature),
            Err(CryptoError::InvalidPublicKey)
        );
        let mut batch = SignatureBatch::default();
        batch.push((), &key, &message(0), &signature);
        assert!(batch.verify().is_err());
    }
}

struct Requester {
    secret: X25519Secret,
    public: halfveil_ledger::X25519PublicKey,
}

fn requester_keys(seed: u64) -> Requester {
    let secret = X25519Secret::generate(&mut rng(seed));
    let public = secret.public_key().unwrap();
    Requester { secret, public }
}

/// A 2-of-3 disclosure key from a seeded DKG.
fn disclosure_key(seed: u64) -> (Vec<HolderSecret>, DisclosureKey) {
    dkg::in_memory(0, &[1, 2, 3], 2, None, &mut rng(seed)).unwrap()
}

/// Holders `which` (indices) share the ciphertext under `label`.
fn shares_of(
    holders: &[HolderSecret],
    which: &[usize],
    key: &DisclosureKey,
    label: &Hash32,
    capsule: &tdh2::Capsule,
    body: &[u8],
) -> Vec<tdh2::DecryptionShare> {
    which
        .iter()
        .map(|&index| {
            tdh2::share(key, &holders[index], label, capsule, body, &mut rng(99)).unwrap()
        })
        .collect()
}

#[test]
fn identity_credential_opens_only_in_its_context_and_with_a_quorum() {
    let mut rng = rng(4);
    let (holders, key) = disclosure_key(40);
    let identity_key = crypto::generate_signing_key(&mut rng);
    let transfer_id = message(7);
    let credential =
        seal_identity_credential(&key, &chain_id(), &transfer_id, &identity_key, &mut rng).unwrap();
    let label = crypto::credential_label(&chain_id(), &transfer_id);
    let shares = shares_of(
        &holders,
        &[0, 2],
        &key,
        &label,
        &credential.capsule,
        &credential.body,
    );
    let signature =
        open_identity_credential(&key, &chain_id(), &transfer_id, &credential, &shares).unwrap();
    crypto::verify(
        &crypto::public_key(&identity_key),
        &crypto::identity_signature_message(&transfer_id),
        &signature,
    )
    .unwrap();
    // Two seals of the same thing differ (fresh randomness), both open to one signature.
    let again =
        seal_identity_credential(&key, &chain_id(), &transfer_id, &identity_key, &mut rng).unwrap();
    assert_ne!(again, credential);
    let again_shares = shares_of(&holders, &[1, 2], &key, &label, &again.capsule, &again.body);
    assert_eq!(
        open_identity_credential(&key, &chain_id(), &transfer_id, &again, &again_shares).unwrap(),
        signature
    );
    // Shares of one ciphertext do not open another of the same transfer.
    assert!(open_identity_credential(&key, &chain_id(), &transfer_id, &again, &shares).is_err());

    // The credential copied into another transfer or another chain: no holder shares it.
    let other_chain = ChainId::new("halfveil-other").unwrap();
    for (chain, id) in [(chain_id(), message(8)), (other_chain, transfer_id)] {
        assert_eq!(
            crypto::check_identity_credential(&key, &chain, &id, &credential),
            Err(CryptoError::Threshold(ThresholdError::BadCiphertextProof))
        );
        assert_eq!(
            open_identity_credential(&key, &chain, &id, &credential, &shares),
            Err(CryptoError::Threshold(ThresholdError::BadCiphertextProof))
        );
    }
    // Another group's shares, one share, a tampered body.
    let (strangers, stranger_key) = disclosure_key(41);
    assert!(open_identity_credential(
        &stranger_key,
        &chain_id(),
        &transfer_id,
        &credential,
        &shares
    )
    .is_err());
    assert!(tdh2::share(
        &key,
        &strangers[0],
        &label,
        &credential.capsule,
        &credential.body,
        &mut rng
    )
    .is_err());
    assert_eq!(
        open_identity_credential(&key, &chain_id(), &transfer_id, &credential, &shares[..1]),
        Err(CryptoError::Threshold(ThresholdError::TooFewShares {
            shares: 1,
            threshold: 2
        }))
    );
    let mut tampered = credential.clone();
    tampered.body[10] ^= 1;
    assert_eq!(
        open_identity_credential(&key, &chain_id(), &transfer_id, &tampered, &shares),
        Err(CryptoError::Threshold(ThresholdError::BadCiphertextProof))
    );
}

#[test]
fn shares_are_sealed_to_the_requester() {
    let mut rng = rng(5);
    let requester = requester_keys(50);
    let order = message(9);
    let sealed = seal_to_requester(
        &requester.public,
        &chain_id(),
        &order,
        b"decryption shares",
        &mut rng,
    )
    .unwrap();
    let opened = open_as_requester(&requester.secret, &chain_id(), &order, &sealed).unwrap();
    assert_eq!(opened.as_slice(), b"decryption shares");
    assert_eq!(
        open_as_requester(&requester.secret, &chain_id(), &message(10), &sealed),
        Err(CryptoError::OpenFailed)
    );
    assert_eq!(
        open_as_requester(&requester_keys(51).secret, &chain_id(), &order, &sealed),
        Err(CryptoError::OpenFailed)
    );
    assert_eq!(
        open_as_requester(&requester.secret, &chain_id(), &order, &sealed[..20]),
        Err(CryptoError::OpenFailed)
    );
}

/// A signed request of `payer`'s key with a placeholder identity credential.
fn request(payer: &SigningKey, payee: AccountId, amount: u64) -> TransactionRequest {
    let transfer = Transfer {
        version: VERSION,
        chain_id: chain_id(),
        payer: AccountId::from_key(&crypto::public_key(payer)),
        payee,
        amount: Amount(amount),
        nonce: Nonce(1),
        expires_at: TimeMs(1_000_000),
        memo: Memo(b"rent".to_vec()),
    };
    let (_, key) = disclosure_key(1);
    let identity_credential = halfveil_ledger::testkit::placeholder_credential(&key);
    let message = halfveil_ledger::transaction_credential_message(
        &transfer.id().unwrap(),
        &identity_credential,
    )
    .unwrap();
    TransactionRequest {
        tx_credential: crypto::sign(payer, &message),
        transfer,
        identity_credential,
    }
}

/// Encrypts `request` the way `Envelope::seal` does, but with any account in the clear.
fn envelope_for(
    key: &BusinessKey,
    account: AccountId,
    bank: BankId,
    request: &TransactionRequest,
) -> Envelope {
    let aad =
        Domain::EnvelopeAad.hash(&codec::encode(&(VERSION, &chain_id(), account, bank)).unwrap());
    let nonce = [7u8; 24];
    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &codec::encode(request).unwrap(),
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    Envelope {
        version: VERSION,
        account,
        bank,
        nonce,
        ciphertext,
    }
}

#[test]
fn envelope_round_trips_and_every_failure_is_the_same() {
    let mut rng = rng(6);
    let payer = crypto::generate_signing_key(&mut rng);
    let other_payer = crypto::generate_signing_key(&mut rng);
    let key = BusinessKey::generate(&mut rng);
    let bank = BankId(1);
    let request = request(&payer, AccountId([9; 32]), 500);
    let envelope = Envelope::seal(&key, &chain_id(), bank, &request, &mut rng).unwrap();
    assert_eq!(envelope.account, request.transfer.payer);
    assert_eq!(envelope.open(&key, &chain_id(), bank).unwrap(), request);
    let decoded = Envelope::decode(&envelope.encode().unwrap()).unwrap();
    assert_eq!(decoded.open(&key, &chain_id(), bank).unwrap(), request);

    let other_key = BusinessKey::generate(&mut rng);
    let other_chain = ChainId::new("halfveil-other").unwrap();
    let mut tampered = envelope.clone();
    tampered.ciphertext[10] ^= 0x20;
    let mut tampered_tag = envelope.clone();
    *tampered_tag.ciphertext.last_mut().unwrap() ^= 1;
    let mut moved_nonce = envelope.clone();
    moved_nonce.nonce[0] ^= 1;
    let mut swapped_account = envelope.clone();
    swapped_account.account = AccountId::from_key(&crypto::public_key(&other_payer));
    let mut truncated = envelope.clone();
    truncated.ciphertext.truncate(10);
    let mut versioned = envelope.clone();
    versioned.version = 9;
    // The cleartext bank is bound: the AAD the opener computes uses its own id, so without
    // the check an envelope naming another bank would still open here.
    let mut renamed_bank = envelope.clone();
    renamed_bank.bank = BankId(2);
    let failures = [
        ("wrong key", envelope.open(&other_key, &chain_id(), bank)),
        ("wrong chain", envelope.open(&key, &other_chain, bank)),
        ("wrong bank", envelope.open(&key, &chain_id(), BankId(2))),
        (
            "tampered ciphertext",
            tampered.open(&key, &chain_id(), bank),
        ),
        ("tampered tag", tampered_tag.open(&key, &chain_id(), bank)),
        ("moved nonce", moved_nonce.open(&key, &chain_id(), bank)),
        (
            "swapped account",
            swapped_account.open(&key, &chain_id(), bank),
        ),
        ("truncated", truncated.open(&key, &chain_id(), bank)),
        ("other version", versioned.open(&key, &chain_id(), bank)),
        (
            "cleartext bank of another",
            renamed_bank.open(&key, &chain_id(), bank),
        ),
    ];
    for (name, result) in failures {
        assert_eq!(result, Err(CryptoError::OpenFailed), "{name}");
    }
}

/// A bank must not accept, under account B's key, a request that spends from account A: the
/// envelope decrypts, but the payer inside is not the account outside.
#[test]
fn envelope_refuses_a_request_for_another_payer() {
    let mut rng = rng(7);
    let payer = crypto::generate_signing_key(&mut rng);
    let key = BusinessKey::generate(&mut rng);
    let request = request(&payer, AccountId([9; 32]), 500);
    // Built by hand for the right account, it opens: the hand-made AAD is the real one.
    let honest = envelope_for(&key, request.transfer.payer, BankId(0), &request);
    assert_eq!(honest.open(&key, &chain_id(), BankId(0)).unwrap(), request);
    // The same request under another account's id (and that account's key) is refused.
    let other_account = AccountId([0x31; 32]);
    let smuggled = envelope_for(&key, other_account, BankId(0), &request);
    assert_eq!(
        smuggled.open(&key, &chain_id(), BankId(0)),
        Err(CryptoError::OpenFailed)
    );
}

#[test]
fn envelope_decode_is_bounded_and_strict() {
    let mut rng = rng(8);
    let payer = crypto::generate_signing_key(&mut rng);
    let key = BusinessKey::generate(&mut rng);
    let envelope = Envelope::seal(
        &key,
        &chain_id(),
        BankId(0),
        &request(&payer, AccountId([9; 32]), 1),
        &mut rng,
    )
    .unwrap();
    let bytes = envelope.encode().unwrap();
    assert!(bytes.len() < ENVELOPE_BYTES_MAX);

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        Envelope::decode(&trailing),
        Err(CryptoError::Codec(CodecError::TrailingBytes { bytes: 1 }))
    );

    let mut oversized = envelope.clone();
    oversized.ciphertext.resize(ENVELOPE_BYTES_MAX, 0);
    let oversized = oversized.encode().unwrap();
    assert!(oversized.len() > ENVELOPE_BYTES_MAX);
    assert_eq!(
        Envelope::decode(&oversized),
        Err(CryptoError::Codec(CodecError::TooLarge {
            bytes: oversized.len(),
            bytes_max: ENVELOPE_BYTES_MAX
        }))
    );
    // Exactly at the limit still decodes.
    let mut at_limit = envelope;
    let fill = ENVELOPE_BYTES_MAX - bytes.len();
    at_limit
        .ciphertext
        .resize(at_limit.ciphertext.len() + fill, 0);
    let at_limit_bytes = at_limit.encode().unwrap();
    assert_eq!(
        at_limit_bytes.len(),
        ENVELOPE_BYTES_MAX,
        "adjust the fill for the varint"
    );
    assert_eq!(Envelope::decode(&at_limit_bytes).unwrap(), at_limit);

    assert!(Envelope::decode(&[]).is_err());
    assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
}

fn record(name: &str) -> IdentityRecord {
    IdentityRecord {
        version: VERSION,
        name: name.to_owned(),
        national_id: "NL-123456782".to_owned(),
        fields: vec![
            ("born".to_owned(), "1990-02-03".to_owned()),
            ("address".to_owned(), "Damrak 1, Amsterdam".to_owned()),
        ],
        identity_key: PublicKey([0x61; 32]),
        possession: Signature([0x62; 64]),
    }
}

#[test]
fn identity_record_seals_to_one_length_and_opens_only_for_its_account() {
    let mut rng = rng(9);
    let (holders, key) = disclosure_key(90);
    let account = AccountId([0x71; 32]);
    let short = record("Jo");
    let long = record(&"Maximiliane-Wilhelmina ".repeat(20));
    let sealed_short = short.seal(&key, &chain_id(), &account, &mut rng).unwrap();
    let sealed_long = long.seal(&key, &chain_id(), &account, &mut rng).unwrap();
    // One length whatever the name: the encodings are equally long.
    assert_eq!(
        codec::encode(&sealed_short).unwrap().len(),
        codec::encode(&sealed_long).unwrap().len()
    );
    let label = crypto::record_label(&chain_id(), &account);
    for (sealed, plain) in [(&sealed_short, &short), (&sealed_long, &long)] {
        let shares = shares_of(
            &holders,
            &[0, 1],
            &key,
            &label,
            &sealed.capsule,
            &sealed.body,
        );
        assert_eq!(
            &IdentityRecord::open(sealed, &key, &chain_id(), &account, &shares).unwrap(),
            plain
        );
    }
    let shares = shares_of(
        &holders,
        &[1, 2],
        &key,
        &label,
        &sealed_short.capsule,
        &sealed_short.body,
    );
    let other_chain = ChainId::new("halfveil-other").unwrap();
    let refused = [
        IdentityRecord::open(
            &sealed_short,
            &key,
            &chain_id(),
            &AccountId([0x72; 32]),
            &shares,
        )
        .map(|_| ()),
        IdentityRecord::open(&sealed_short, &key, &other_chain, &account, &shares).map(|_| ()),
        IdentityRecord::check(&sealed_short, &key, &chain_id(), &AccountId([0x72; 32])),
    ];
    for result in refused {
        assert_eq!(
            result,
            Err(CryptoError::Threshold(ThresholdError::BadCiphertextProof))
        );
    }
    let mut tampered = sealed_short.clone();
    tampered.body[500] ^= 4;
    assert_eq!(
        IdentityRecord::check(&tampered, &key, &chain_id(), &account),
        Err(CryptoError::Threshold(ThresholdError::BadCiphertextProof))
    );
    let too_large = record(&"x".repeat(1100));
    assert!(matches!(
        too_large.seal(&key, &chain_id(), &account, &mut rng),
        Err(CryptoError::RecordTooLarge {
            bytes_max: 1024,
            ..
        })
    ));
}

/// The position in a receipt is proven too: a proof re-shaped for another tree size (here,
/// the last of 3 leaves presented as the second of 2, which hashes to the same root) is
/// refused, so a verified receipt's index is the op's real index.
#[test]
fn a_receipt_cannot_claim_another_position() {
    let (chain, block, change) = receipt_fixture();
    let validator = chain.params.validator_keys.clone();
    assert_eq!(block.header().op_count, 3);
    let receipt = Receipt::for_op(&block, &change, 2).unwrap();
    assert_eq!((receipt.proof.index, receipt.proof.leaf_count), (2, 3));
    assert_eq!(receipt.proof.siblings.len(), 1);
    let mut moved = receipt.clone();
    moved.proof.index = 1;
    moved.proof.leaf_count = 2;
    // The same root comes out: only the leaf count ties the proof to the block.
    assert_eq!(
        moved.proof.root(&moved.op.hash().unwrap()).unwrap(),
        block.header().op_root
    );
    assert_eq!(moved.verify(&validator), Err(ReceiptError::NotIncluded));
    assert_eq!(receipt.verify(&validator), Ok(()));
}

/// A chain with one block of three transfers, its change kept for receipts.
fn receipt_fixture() -> (
    TestChain,
    halfveil_ledger::Block,
    halfveil_ledger::StateChange,
) {
    let mut chain = TestChain::new(10, 2, 0, 0);
    chain.seal_identity = false;
    let mut accounts = chain.fund_accounts(2, 1_000).unwrap();
    let (attestations, ops) = chain.transfer_block_ops(&mut accounts, 3, 10);
    let (block, change) = chain.build(attestations, ops).unwrap();
    (chain, block, change)
}

#[test]
fn receipts_verify_against_the_validator_key() {
    let (chain, block, change) = receipt_fixture();
    let validator = chain.params.validator_keys.clone();
    for index in 0..block.ops.len() {
        let receipt = Receipt::for_op(&block, &change, index).unwrap();
        assert_eq!(receipt.transfer_id, change.transfers[index].0);
        assert_eq!(receipt.verify(&validator), Ok(()));
    }
    assert!(Receipt::for_op(&block, &change, block.ops.len()).is_none());
    // Another validator key is refused.
    let other = crypto::public_key(&crypto::generate_signing_key(&mut rng(11)));
    let receipt = Receipt::for_op(&block, &change, 1).unwrap();
    assert_eq!(receipt.verify(&[other]), Err(ReceiptError::UnknownSigner));
}

/// With three IM replicas, a header signed by any of their keys makes a valid receipt; a
/// signature by one replica presented as another's, or by a key not in genesis, does not.
#[test]
fn receipts_verify_against_any_replica_key() {
    let (chain, block, change) = receipt_fixture();
    let replicas: Vec<SigningKey> = (0..2)
        .map(|seed| crypto::generate_signing_key(&mut rng(20 + seed)))
        .collect();
    let mut keys = chain.params.validator_keys.clone();
    keys.extend(replicas.iter().map(crypto::public_key));
    let receipt = Receipt::for_op(&block, &change, 1).unwrap();
    let hash = block.header().hash().unwrap();
    let mut third = receipt.clone();
    third.header.signer = keys[2];
    third.header.signature = crypto::sign(&replicas[1], &hash);
    assert_eq!(third.verify(&keys), Ok(()));
    assert_eq!(receipt.verify(&keys), Ok(()));
    // The block hash does not cover the signer: both signed copies are one block.
    assert_eq!(third.header.header.hash().unwrap(), hash);

    let mut swapped = third.clone();
    swapped.header.signer = keys[1];
    assert_eq!(swapped.verify(&keys), Err(ReceiptError::BadSignature));
    assert_eq!(third.verify(&keys[..2]), Err(ReceiptError::UnknownSigner));
}

#[test]
fn receipts_fail_when_header_proof_or_op_change() {
    let (chain, block, change) = receipt_fixture();
    let validator = chain.params.validator_keys.clone();
    let receipt = Receipt::for_op(&block, &change, 1).unwrap();

    let mut header = receipt.clone();
    header.header.header.time = TimeMs(header.header.header.time.0 + 1);
    assert_eq!(header.verify(&validator), Err(ReceiptError::BadSignature));

    let mut signature = receipt.clone();
    signature.header.signature.0[10] ^= 1;
    assert_eq!(
        signature.verify(&validator),
        Err(ReceiptError::BadSignature)
    );

    let mut sibling = receipt.clone();
    sibling.proof.siblings[0].0[0] ^= 1;
    assert_eq!(sibling.verify(&validator), Err(ReceiptError::NotIncluded));

    let mut index = receipt.clone();
    index.proof.index = 0;
    assert!(index.verify(&validator).is_err());

    let mut short = receipt.clone();
    short.proof.siblings.pop();
    assert!(short.verify(&validator).is_err());

    // The op of another transfer of the same block, with its id: not at this position.
    let mut other_op = receipt.clone();
    other_op.op = block.ops[2].clone();
    other_op.transfer_id = change.transfers[2].0;
    assert_eq!(other_op.verify(&validator), Err(ReceiptError::NotIncluded));

    // An altered amount: the id no longer matches.
    let mut amount = receipt.clone();
    let Op::Transfer(op) = &mut amount.op else {
        unreachable!()
    };
    op.request.transfer.amount = Amount(11);
    let new_id = op.request.transfer.id().unwrap();
    assert!(matches!(
        amount.verify(&validator),
        Err(ReceiptError::WrongTransfer { .. })
    ));
    // ... and with the id updated, the proof fails.
    amount.transfer_id = new_id;
    assert_eq!(amount.verify(&validator), Err(ReceiptError::NotIncluded));

    // A changed credential keeps the id but changes the op hash.
    let mut credential = receipt.clone();
    let Op::Transfer(op) = &mut credential.op else {
        unreachable!()
    };
    op.request.tx_credential.0[0] ^= 1;
    assert_eq!(
        credential.verify(&validator),
        Err(ReceiptError::NotIncluded)
    );

    let mut not_transfer = receipt.clone();
    not_transfer.op = block.ops[0].clone();
    not_transfer.op = match not_transfer.op {
        Op::Transfer(op) => Op::Issue(halfveil_ledger::Issue {
            to: op.request.transfer.payee,
            amount: Amount(1),
            reference: 0,
        }),
        other => other,
    };
    assert_eq!(
        not_transfer.verify(&validator),
        Err(ReceiptError::NotATransfer)
    );

    let mut version = receipt;
    version.version = 9;
    assert_eq!(
        version.verify(&validator),
        Err(ReceiptError::Version { version: 9 })
    );
}
