//! Files a node or a wallet reads: the genesis JSON, `config.toml`, password-encrypted key
//! files (parsed only: the Argon2id derivation, up to 1 GiB and 16 passes by the file's
//! own word, is not run on fuzz input) and the plaintext libp2p node key.

use std::sync::OnceLock;

use halfveil_genesis::file::{Genesis, ValidGenesis};
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::State;
use halfveil_node::config::Config;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The most banks and auditors a genesis is re-signed for (see [`genesis`]).
const RESIGN_SIGNERS_MAX: usize = 16;
/// The most IM replicas genesis allows.
const REPLICAS_MAX: usize = 5;

/// A genesis file, as a node loads it: parsed, validated, checked canonical. Since a fuzzer
/// cannot sign, the same bytes are also read as a genesis whose keys are swapped for keys
/// the target holds and signed with them, so validation past the signatures is reached:
/// a genesis that validates must parse back from its canonical text to the same chain.
pub fn genesis(data: &[u8]) {
    if let Ok(valid) = Genesis::parse(data) {
        assert_eq!(valid.genesis.to_canonical_json().as_bytes(), data);
        check_valid(&valid);
    }
    let Ok(genesis) = serde_json::from_slice::<Genesis>(data) else {
        return;
    };
    let banks = genesis.body.banks.len();
    let auditors = genesis.body.auditors.members.len();
    let replicas = genesis.body.identity_manager_replicas.len() + 1;
    if banks > RESIGN_SIGNERS_MAX || auditors > RESIGN_SIGNERS_MAX || replicas > REPLICAS_MAX {
        return;
    }
    let keys = signers();
    let mut body = genesis.body;
    let validators: Vec<&SigningKey> = keys[..replicas].iter().collect();
    body.identity_manager.validator_key = crypto::public_key(validators[0]).to_hex();
    for (replica, key) in body
        .identity_manager_replicas
        .iter_mut()
        .zip(&validators[1..])
    {
        replica.validator_key = crypto::public_key(key).to_hex();
    }
    let bank_keys: Vec<&SigningKey> = keys[REPLICAS_MAX..][..banks].iter().collect();
    let auditor_keys: Vec<&SigningKey> = keys[REPLICAS_MAX + RESIGN_SIGNERS_MAX..][..auditors]
        .iter()
        .collect();
    for (bank, key) in body.banks.iter_mut().zip(&bank_keys) {
        bank.attestation_key = crypto::public_key(key).to_hex();
    }
    for (auditor, key) in body.auditors.members.iter_mut().zip(&auditor_keys) {
        auditor.key = crypto::public_key(key).to_hex();
    }
    let Ok(signed) = Genesis::sign(body, &validators, &bank_keys, &auditor_keys) else {
        return;
    };
    let Ok(valid) = signed.validate() else {
        return;
    };
    check_valid(&valid);
    let text = valid.genesis.to_canonical_json();
    let parsed = Genesis::parse(text.as_bytes())
        .unwrap_or_else(|error| panic!("a valid genesis's canonical text is refused: {error}"));
    assert_eq!(parsed.hash, valid.hash);
    assert_eq!(parsed.params, valid.params);
    assert_eq!(parsed.genesis, valid.genesis);
}

/// Keys the genesis target signs with: 5 IM replicas', then 16 banks', then 16 auditors'.
fn signers() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0x0067_656e_6573_6973);
        (0..REPLICAS_MAX + 2 * RESIGN_SIGNERS_MAX)
            .map(|_| crypto::generate_signing_key(&mut rng))
            .collect()
    })
}

/// What a validated genesis promises the node and the ledger.
fn check_valid(valid: &ValidGenesis) {
    let body = &valid.genesis.body;
    assert_eq!(valid.hash, body.hash().expect("hash"));
    assert_eq!(valid.params.genesis_hash, valid.hash);
    assert_eq!(valid.params.bank_keys.len(), body.banks.len());
    let replicas = body.identity_manager_replicas.len() + 1;
    assert_eq!(valid.params.validator_keys.len(), replicas);
    assert_eq!(valid.im_peer_ids.len(), replicas);
    assert_eq!(valid.bank_peer_ids.len(), body.banks.len());
    assert_eq!(valid.params.auditor_keys.len(), body.auditors.members.len());
    let threshold = usize::from(valid.params.disclosure_threshold);
    assert!((1..=valid.params.auditor_keys.len()).contains(&threshold));
    for (index, bank) in body.banks.iter().enumerate() {
        let id = valid.bank_id(&bank.name).expect("a bank has an id");
        assert_eq!(usize::from(id.0), index);
        assert_eq!(valid.bank_name(id), Some(bank.name.as_str()));
    }
    let state = State::genesis(&valid.params).expect("the genesis state");
    let supply: u128 = body
        .initial_accounts
        .iter()
        .map(|account| u128::from(account.balance))
        .sum();
    assert_eq!(u128::from(state.supply.0), supply);
    assert_eq!(state.account_count(), body.initial_accounts.len());
    let total: u128 = state
        .accounts()
        .map(|(_, account)| u128::from(account.balance.0))
        .sum();
    assert_eq!(total, supply);
}

/// A node's `config.toml`: a config that parses has a canonical text that parses back to
/// it, and that text is a fixed point.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text) else {
        return;
    };
    let canonical = config.to_toml();
    let again = Config::parse(&canonical).unwrap_or_else(|error| {
        panic!("a config's own text is refused: {error}\n{canonical}\nfrom {config:?}")
    });
    assert_eq!(again, config, "a config's own text is another config");
    assert_eq!(again.to_toml(), canonical);
}

const FILE_KINDS: [FileKind; 7] = [
    FileKind::ValidatorKey,
    FileKind::DisclosureShare,
    FileKind::DkgState,
    FileKind::AttestationKey,
    FileKind::AuditorKey,
    FileKind::RequesterKey,
    FileKind::Wallet,
];

/// An encrypted key file or wallet, parsed as far as the key derivation (for the kind it
/// says it holds), and a plaintext node key file.
pub fn key_file(data: &[u8]) {
    for kind in FILE_KINDS {
        match keystore::parse("fuzz", data, kind) {
            Ok(parsed) => {
                assert_eq!(parsed.kind(), kind);
                assert!((16..=64).contains(&parsed.salt.len()));
                let params = parsed.params;
                assert!(params.memory_kib >= KdfParams::MIN.memory_kib);
                assert!(params.memory_kib <= 1024 * 1024);
                assert!((KdfParams::MIN.iterations..=16).contains(&params.iterations));
                assert!((1..=8).contains(&params.parallelism));
                let _ = parsed.public_key();
                break;
            }
            // Only the kind is wrong: the file may hold another.
            Err(keystore::KeystoreError::WrongKind { .. }) => continue,
            Err(_) => break,
        }
    }
    if let Ok(keypair) = keystore::parse_node_key("fuzz", data) {
        let peer = keypair.public().to_peer_id();
        assert_eq!(peer.to_string().parse::<libp2p::PeerId>().ok(), Some(peer));
    }
}
