//! Every key and the signed genesis of a local network: one IM, `banks` banks, `auditors`
//! auditors. The caller writes them to disk (the CLI's `testnet init`).

use halfveil_ledger::crypto::{self, SigningKey, X25519Secret};
use rand_core::OsRng;

use crate::file::{
    AuditorEntry, Auditors, BankEntry, Genesis, GenesisBody, GenesisError, IdentityManagerEntry,
    LimitsEntry, ValidGenesis, GENESIS_VERSION,
};

/// What to generate.
#[derive(Clone, Debug)]
pub struct TestnetSpec {
    pub chain_id: String,
    pub banks: usize,
    pub auditors: usize,
    pub threshold: u16,
    pub genesis_time_ms: u64,
    pub limits: LimitsEntry,
}

#[derive(Debug)]
pub struct ImKeys {
    pub node_key: libp2p_identity::Keypair,
    pub validator: SigningKey,
    pub escrow: X25519Secret,
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
    pub im: ImKeys,
    pub banks: Vec<BankKeys>,
    pub auditors: Vec<AuditorKeys>,
}

/// Generates keys and signs a genesis for `spec`.
pub fn generate(spec: &TestnetSpec) -> Result<Testnet, GenesisError> {
    let mut rng = OsRng;
    let im = ImKeys {
        node_key: libp2p_identity::Keypair::generate_ed25519(),
        validator: crypto::generate_signing_key(&mut rng),
        escrow: X25519Secret::generate(&mut rng),
    };
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
    let escrow_public = im
        .escrow
        .public_key()
        .map_err(|error| GenesisError::Field {
            field: "identity_manager.escrow_key".into(),
            reason: error.to_string(),
        })?;
    let body = GenesisBody {
        version: GENESIS_VERSION,
        chain_id: spec.chain_id.clone(),
        genesis_time_ms: spec.genesis_time_ms,
        identity_manager: IdentityManagerEntry {
            peer_id: im.node_key.public().to_peer_id().to_string(),
            validator_key: crypto::public_key(&im.validator).to_hex(),
            escrow_key: escrow_public.to_hex(),
        },
        banks: banks
            .iter()
            .map(|bank| BankEntry {
                name: bank.name.clone(),
                peer_id: bank.node_key.public().to_peer_id().to_string(),
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
        initial_accounts: Vec::new(),
        limits: spec.limits.clone(),
    };
    let bank_keys: Vec<&SigningKey> = banks.iter().map(|bank| &bank.attestation).collect();
    let auditor_keys: Vec<&SigningKey> = auditors.iter().map(|auditor| &auditor.key).collect();
    let genesis = Genesis::sign(body, &im.validator, &bank_keys, &auditor_keys)?;
    let genesis = genesis.validate()?;
    Ok(Testnet {
        genesis,
        im,
        banks,
        auditors,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::file::GenesisError;

    fn spec() -> TestnetSpec {
        TestnetSpec {
            chain_id: "halfveil-test".into(),
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
        genesis.signatures.identity_manager = crypto::sign(&testnet.im.validator, &hash).to_hex();
        let error = genesis.validate().unwrap_err();
        assert!(
            matches!(error, GenesisError::BadSignature { ref signer } if signer == "bank bank-1"),
            "{error}"
        );
    }
}
