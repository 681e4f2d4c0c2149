use halfveil_ledger::crypto;

use super::*;
use crate::testnet::{generate, Testnet, TestnetSpec};

/// A network's keys made by one generator, handed over as parties would: public parts only.
fn network(im_replicas: usize) -> (Testnet, Vec<PublicEntry>) {
    let spec = TestnetSpec {
        chain_id: "assembly-test".into(),
        im_replicas,
        banks: 2,
        auditors: 3,
        threshold: 2,
        genesis_time_ms: 1_800_000_000_000,
        limits: LimitsEntry::default(),
    };
    let net = generate(&spec).expect("testnet");
    let party = |role, name: &str, key, node: Option<&libp2p_identity::Keypair>| PublicEntry {
        role,
        name: name.to_owned(),
        key: crypto::public_key(key).to_hex(),
        peer_id: node.map(|node| node.public().to_peer_id().to_string()),
        p2p_address: None,
    };
    let mut parties = Vec::new();
    for (index, replica) in net.im.iter().enumerate() {
        let name = format!("im-{}", index + 1);
        let node = Some(&replica.node_key);
        parties.push(party(
            Role::IdentityManager,
            &name,
            &replica.validator,
            node,
        ));
    }
    for bank in &net.banks {
        let node = Some(&bank.node_key);
        parties.push(party(Role::Bank, &bank.name, &bank.attestation, node));
    }
    for auditor in &net.auditors {
        parties.push(party(Role::Auditor, &auditor.name, &auditor.key, None));
    }
    (net, parties)
}

fn spec<'a>(net: &Testnet, parties: &'a [PublicEntry]) -> DraftSpec<'a> {
    let body = &net.genesis.genesis.body;
    DraftSpec {
        chain_id: body.chain_id.clone(),
        genesis_time_ms: body.genesis_time_ms,
        parties,
        auditor_threshold: body.auditors.threshold,
        disclosure_key: body.disclosure_key.clone(),
        limits: body.limits.clone(),
    }
}

fn every_signature(net: &Testnet, body: &GenesisBody) -> Vec<DraftSignature> {
    let keys = net
        .im
        .iter()
        .map(|replica| &replica.validator)
        .chain(net.banks.iter().map(|bank| &bank.attestation))
        .chain(net.auditors.iter().map(|auditor| &auditor.key));
    keys.map(|key| sign_draft(body, key).expect("named key signs"))
        .collect()
}

#[test]
fn parties_signing_apart_make_the_genesis_one_generator_makes() {
    for replicas in [1, 3] {
        let (net, parties) = network(replicas);
        let body = draft(&spec(&net, &parties)).expect("draft");
        assert_eq!(body, net.genesis.genesis.body);
        let mut signatures = every_signature(&net, &body);
        // The order in which the files arrive does not matter.
        signatures.reverse();
        let genesis = assemble(body, &signatures).expect("assembled");
        assert_eq!(genesis.hash, net.genesis.hash);
        assert_eq!(genesis.genesis, net.genesis.genesis);
    }
}

#[test]
fn a_missing_signer_is_named() {
    let (net, parties) = network(1);
    let body = draft(&spec(&net, &parties)).expect("draft");
    let mut signatures = every_signature(&net, &body);
    signatures.remove(2); // bank-2's
    let error = assemble(body, &signatures).expect_err("bank-2 did not sign");
    assert!(
        error.to_string().contains("not signed yet by bank bank-2"),
        "{error}"
    );
}

#[test]
fn a_signature_of_another_draft_or_a_forged_one_is_refused() {
    let (net, parties) = network(1);
    let body = draft(&spec(&net, &parties)).expect("draft");
    let mut other = body.clone();
    other.genesis_time_ms += 1;
    let mut signatures = every_signature(&net, &body);
    signatures[1] = sign_draft(&other, &net.banks[0].attestation).expect("signs");
    let error = assemble(body.clone(), &signatures).expect_err("another draft");
    assert!(
        error.to_string().contains("signed another draft"),
        "{error}"
    );

    let mut signatures = every_signature(&net, &body);
    signatures[3].signature = signatures[4].signature.clone();
    let error = assemble(body, &signatures).expect_err("forged");
    assert!(
        matches!(error, GenesisError::BadSignature { .. }),
        "{error}"
    );
}

#[test]
fn a_key_the_draft_does_not_name_has_nothing_to_sign() {
    let (net, parties) = network(1);
    let body = draft(&spec(&net, &parties)).expect("draft");
    let stranger = crypto::generate_signing_key(&mut rand_core::OsRng);
    let error = sign_draft(&body, &stranger).expect_err("not named");
    assert!(
        error.to_string().contains("does not name the key"),
        "{error}"
    );
}

#[test]
fn a_draft_refuses_what_genesis_refuses() {
    let (net, parties) = network(1);
    let mut no_peer = parties.clone();
    no_peer[1].peer_id = None;
    let error = draft(&spec(&net, &no_peer)).expect_err("bank without peer id");
    assert!(error.to_string().contains("needs its peer_id"), "{error}");

    let no_im: Vec<PublicEntry> = parties[1..].to_vec();
    assert!(draft(&spec(&net, &no_im)).is_err());

    // Two replicas: an IM has 1, 3 or 5.
    let mut two = parties.clone();
    let mut second = two[1].clone();
    second.role = Role::IdentityManager;
    two.insert(1, second);
    let error = draft(&spec(&net, &two)).expect_err("two replicas");
    assert!(error.to_string().contains("1, 3 or 5"), "{error}");

    // The ceremony's holders must be genesis's auditors and IM.
    let mut renamed = parties.clone();
    renamed[3].name = "someone-else".into();
    assert!(draft(&spec(&net, &renamed)).is_err());
}
