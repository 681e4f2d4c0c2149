//! Every key and the signed genesis of a local network: an IM of 1, 3 or 5 replicas, `banks`
//! banks, `auditors` auditors. The caller writes them to disk (the CLI's `testnet init`).

use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::threshold::{dkg, DisclosureKey, HolderSecret};
use rand_core::OsRng;

use crate::file::{
    AuditorEntry, Auditors, BankEntry, DisclosureKeyEntry, Genesis, GenesisBody, GenesisError,
    HolderEntry, IdentityManagerEntry, ImReplicaEntry, LimitsEntry, ValidGenesis, GENESIS_VERSION,
    IM_HOLDER,
};

/// What to generate.
#[derive(Clone, Debug)]
pub struct TestnetSpec {
    pub chain_id: String,
    /// How many IM replicas: 1 (a single IM), 3 or 5.
    pub im_replicas: usize,
    pub banks: usize,
    pub auditors: usize,
    pub threshold: u16,
    pub genesis_time_ms: u64,
    pub limits: LimitsEntry,
}

/// One IM replica's own keys.
#[derive(Debug)]
pub struct ImKeys {
    pub node_key: libp2p_identity::Keypair,
    pub validator: SigningKey,
}

#[derive(Debug)]
pub struct BankKeys {
    pub name: String,
    pub node_key: libp2p_identity::Keypair,
    pub attestation: SigningKey,
}

#[derive(Debug)]
pub struct AuditorKeys {
    pub name: String,
    pub key: SigningKey,
}

/// A generated network: its validated genesis and every secret.
#[derive(Debug)]
pub struct Testnet {
    pub genesis: ValidGenesis,
    /// The IM replicas, in genesis order.
    pub im: Vec<ImKeys>,
    /// The disclosure key's shares: each auditor's, in auditor order, then the IM's (which
    /// every IM replica holds).
    pub holders: Vec<HolderSecret>,
    pub banks: Vec<BankKeys>,
    pub auditors: Vec<AuditorKeys>,
}

/// Generates keys and signs a genesis for `spec`.
pub fn generate(spec: &TestnetSpec) -> Result<Testnet, GenesisError> {
    let mut rng = OsRng;
    let im: Vec<ImKeys> = (0..spec.im_replicas)
        .map(|_| ImKeys {
            node_key: libp2p_identity::Keypair::generate_ed25519(),
            validator: crypto::generate_signing_key(&mut rng),
        })
        .collect();
    let banks: Vec<BankKeys> = (1..=spec.banks)
        .map(|number| BankKeys {
            name: format!("bank-{number}"),
            node_key: libp2p_identity::Keypair::generate_ed25519(),
            attestation: crypto::generate_signing_key(&mut rng),
        })
        .collect();
    let auditors: Vec<AuditorKeys> = (1..=spec.auditors)
        .map(|number| AuditorKeys {
            name: format!("auditor-{number}"),
            key: crypto::generate_signing_key(&mut rng),
        })
        .collect();
    // One operator makes every key of a local network anyway, so the DKG runs in memory here;
    // a real network runs `halfveil keys dkg` on each holder's machine.
    let numbers: Vec<u16> = (1..=spec.auditors as u16 + 1).collect();
    let (holders, disclosure_key) = dkg::in_memory(0, &numbers, spec.threshold + 1, None, &mut rng)
        .map_err(|error| GenesisError::Field {
            field: "disclosure_key".into(),
            reason: error.to_string(),
        })?;
    let body = body_of(spec, &im, &disclosure_key, &banks, &auditors)?;
    let bank_keys: Vec<&SigningKey> = banks.iter().map(|bank| &bank.attestation).collect();
    let auditor_keys: Vec<&SigningKey> = auditors.iter().map(|auditor| &auditor.key).collect();
    let validators: Vec<&SigningKey> = im.iter().map(|replica| &replica.validator).collect();
    let genesis = Genesis::sign(body, &validators, &bank_keys, &auditor_keys)?;
    let genesis = genesis.validate()?;
    Ok(Testnet {
        genesis,
        im,
        holders,
        banks,
        auditors,
    })
}

/// The genesis body that names these keys.
fn body_of(
    spec: &TestnetSpec,
    im: &[ImKeys],
    disclosure_key: &DisclosureKey,
    banks: &[BankKeys],
    auditors: &[AuditorKeys],
) -> Result<GenesisBody, GenesisError> {
    let Some((first, replicas)) = im.split_first() else {
        return Err(GenesisError::Field {
            field: "identity_manager".into(),
            reason: "an IM has at least one replica".into(),
        });
    };
    let peer_id = |key: &libp2p_identity::Keypair| key.public().to_peer_id().to_string();
    Ok(GenesisBody {
        version: GENESIS_VERSION,
        chain_id: spec.chain_id.clone(),
        genesis_time_ms: spec.genesis_time_ms,
        identity_manager: IdentityManagerEntry {
            peer_id: peer_id(&first.node_key),
            validator_key: crypto::public_key(&first.validator).to_hex(),
        },
        identity_manager_replicas: replicas
            .iter()
            .map(|replica| ImReplicaEntry {
                peer_id: peer_id(&replica.node_key),
                validator_key: crypto::public_key(&replica.validator).to_hex(),
            })
            .collect(),
        banks: banks
            .iter()
            .map(|bank| BankEntry {
                name: bank.name.clone(),
                peer_id: peer_id(&bank.node_key),
                attestation_key: crypto::public_key(&bank.attestation).to_hex(),
            })
            .collect(),
        auditors: Auditors {
            threshold: spec.threshold,
            members: auditors
                .iter()
                .map(|auditor| AuditorEntry {
                    name: auditor.name.clone(),
                    key: crypto::public_key(&auditor.key).to_hex(),
                })
                .collect(),
        },
        disclosure_key: disclosure_key_entry(disclosure_key, |holder| {
            auditors
                .get(usize::from(holder) - 1)
                .map_or_else(|| IM_HOLDER.to_owned(), |auditor| auditor.name.clone())
        }),
        initial_accounts: Vec::new(),
        limits: spec.limits.clone(),
    })
}

/// Genesis's entry for `key`, each holder named by `name_of` its number.
pub fn disclosure_key_entry(
    key: &DisclosureKey,
    name_of: impl Fn(u16) -> String,
) -> DisclosureKeyEntry {
    DisclosureKeyEntry {
        epoch: key.epoch,
        refresh: key.refresh,
        threshold: key.threshold,
        group_key: hex::encode(key.group_key.0),
        holders: key
            .holders
            .iter()
            .map(|holder| HolderEntry {
                holder: holder.holder,
                name: name_of(holder.holder),
                share_key: hex::encode(holder.share_key.0),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::file::GenesisError;

    fn spec() -> TestnetSpec {
        TestnetSpec {
            chain_id: "halfveil-test".into(),
            im_replicas: 1,
            banks: 2,
            auditors: 3,
            threshold: 2,
            genesis_time_ms: 1_767_225_600_000,
            limits: LimitsEntry::default(),
        }
    }

    #[test]
    fn generated_genesis_round_trips_through_its_canonical_text() {
        let testnet = generate(&spec()).unwrap();
        let text = testnet.genesis.genesis.to_canonical_json();
        let parsed = Genesis::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.hash, testnet.genesis.hash);
        assert_eq!(parsed.params.bank_keys.len(), 2);
        assert_eq!(parsed.params.disclosure_threshold, 2);
    }

    #[test]
    fn every_single_byte_change_is_refused() {
        let testnet = generate(&spec()).unwrap();
        let text = testnet.genesis.genesis.to_canonical_json().into_bytes();
        // Every position, one replacement byte each: nothing slips through.
        for position in 0..text.len() {
            let mut changed = text.clone();
            changed[position] = match changed[position] {
                b'0' => b'1',
                b'a' => b'b',
                b' ' => b'\t',
                b'"' => b'\'',
                other => other.wrapping_add(1),
            };
            assert!(
                Genesis::parse(&changed).is_err(),
                "changing byte {position} ({:?}) was accepted",
                text[position] as char
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let testnet = generate(&spec()).unwrap();
        let mut genesis = testnet.genesis.genesis.clone();
        genesis.body.auditors.threshold = 4;
        let error = genesis.clone().validate().unwrap_err();
        assert!(
            matches!(&error, GenesisError::Field { field, .. } if field == "auditors.threshold"),
            "{error}"
        );
        let mut genesis = testnet.genesis.genesis.clone();
        genesis.body.banks[1].attestation_key = "zz".into();
        let error = genesis.validate().unwrap_err();
        assert!(
            error.to_string().contains("banks[1].attestation_key"),
            "{error}"
        );
        let mut genesis = testnet.genesis.genesis.clone();
        genesis.body.limits.transfer_expiry_ms_max = 1;
        let error = genesis.validate().unwrap_err();
        assert!(
            error.to_string().contains("limits.transfer_expiry_ms_max"),
            "{error}"
        );
        let unknown = Genesis::parse(br#"{"body": {}, "extra": 1}"#).unwrap_err();
        assert!(matches!(unknown, GenesisError::Json { .. }));
    }

    #[test]
    fn a_resigned_change_is_accepted_only_with_every_signature() {
        let testnet = generate(&spec()).unwrap();
        let mut body = testnet.genesis.genesis.body.clone();
        body.limits.memo_bytes_max = 32;
        // Signed by the IM alone: the banks' and auditors' old signatures no longer verify.
        let mut genesis = testnet.genesis.genesis.clone();
        genesis.body = body.clone();
        let hash = body.hash().unwrap();
        genesis.signatures.identity_manager =
            crypto::sign(&testnet.im[0].validator, &hash).to_hex();
        let error = genesis.validate().unwrap_err();
        assert!(
            matches!(error, GenesisError::BadSignature { ref signer } if signer == "bank bank-1"),
            "{error}"
        );
    }

    fn replicated(count: usize) -> Testnet {
        generate(&TestnetSpec {
            im_replicas: count,
            ..spec()
        })
        .unwrap()
    }

    /// A genesis of version 1 (an escrow key, no disclosure key) is refused with a reason,
    /// and a single-IM genesis has no replicas' fields in its text or hashed encoding.
    #[test]
    fn a_version_1_genesis_is_refused_and_a_single_im_has_no_replica_fields() {
        let text = include_bytes!("../tests/fixtures/single-im-before-replicas.json");
        let error = Genesis::parse(text).unwrap_err();
        assert!(
            error.to_string().contains("version 1 is not supported"),
            "{error}"
        );
        let single = generate(&spec()).unwrap().genesis;
        assert_eq!(single.params.validator_keys.len(), 1);
        assert!(!single.im_replicated());
        let written = generate(&spec())
            .unwrap()
            .genesis
            .genesis
            .to_canonical_json();
        assert!(!written.contains("identity_manager_replicas"));
    }

    #[test]
    fn three_and_five_replicas_each_sign_and_round_trip() {
        for count in [3, 5] {
            let testnet = replicated(count);
            let text = testnet.genesis.genesis.to_canonical_json();
            let parsed = Genesis::parse(text.as_bytes()).unwrap();
            assert_eq!(parsed.hash, testnet.genesis.hash);
            assert_eq!(parsed.params.validator_keys.len(), count);
            assert_eq!(parsed.im_peer_ids.len(), count);
            assert!(parsed.im_replicated());
            for (index, replica) in testnet.im.iter().enumerate() {
                let peer = replica.node_key.public().to_peer_id();
                assert_eq!(parsed.im_replica(&peer), Some(index));
                assert_eq!(
                    parsed.params.validator_keys[index],
                    crypto::public_key(&replica.validator)
                );
            }
            let bank_peer = testnet.banks[0].node_key.public().to_peer_id();
            assert_eq!(parsed.im_replica(&bank_peer), None);
        }
    }

    #[test]
    fn replica_sets_are_checked() {
        let testnet = replicated(3);
        let field_of = |genesis: Genesis| match genesis.validate().unwrap_err() {
            GenesisError::Field { field, .. } => field,
            other => panic!("{other}"),
        };
        // 2 or 4 replicas: no majority that survives a crash for the price.
        let mut two = testnet.genesis.genesis.clone();
        two.body.identity_manager_replicas.pop();
        assert_eq!(field_of(two), "identity_manager_replicas");
        let mut four = testnet.genesis.genesis.clone();
        let extra = four.body.identity_manager_replicas[0].clone();
        four.body.identity_manager_replicas.push(extra);
        assert_eq!(field_of(four), "identity_manager_replicas");

        let mut same_key = testnet.genesis.genesis.clone();
        same_key.body.identity_manager_replicas[1].validator_key =
            same_key.body.identity_manager.validator_key.clone();
        assert_eq!(
            field_of(same_key),
            "identity_manager_replicas[1].validator_key"
        );
        let mut same_peer = testnet.genesis.genesis.clone();
        same_peer.body.identity_manager_replicas[0].peer_id =
            same_peer.body.identity_manager.peer_id.clone();
        assert_eq!(field_of(same_peer), "identity_manager_replicas[0].peer_id");
        let mut bank_peer = testnet.genesis.genesis.clone();
        bank_peer.body.banks[0].peer_id =
            bank_peer.body.identity_manager_replicas[1].peer_id.clone();
        assert_eq!(field_of(bank_peer), "banks[0].peer_id");

        // Every replica signs: a missing or a wrong replica signature is refused.
        let mut missing = testnet.genesis.genesis.clone();
        missing.signatures.identity_manager_replicas.pop();
        assert_eq!(field_of(missing), "signatures.identity_manager_replicas");
        let mut wrong = testnet.genesis.genesis.clone();
        wrong.signatures.identity_manager_replicas.swap(0, 1);
        let error = wrong.validate().unwrap_err();
        assert!(
            matches!(&error, GenesisError::BadSignature { signer } if signer == "identity manager replica 2"),
            "{error}"
        );
    }
}
