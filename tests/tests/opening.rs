//! Account opening: the identity key travels beside the sealed identity record with its
//! proof of possession; the bank (and behind it the IM) checks the proof without opening
//! the record, refuses a bad one, and keeps nothing of the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use halfveil_ledger::crypto::{self, IdentityRecord};
use halfveil_ledger::{codec, open_account_message, AccountId, BankId, VERSION};
use halfveil_node::rpc::{ApiClient, OpenAccountParams};
use halfveil_tests::net::{block_on, client, TestNet};
use rand_core::OsRng;

/// An opening request for a new account at bank 0, and the identity key's public half.
fn request(net: &TestNet) -> (OpenAccountParams, [u8; 32]) {
    let params = &net.genesis.params;
    let tx_key = crypto::generate_signing_key(&mut OsRng);
    let identity_key = crypto::generate_signing_key(&mut OsRng);
    let tx_public = crypto::public_key(&tx_key);
    let account = AccountId::from_key(&tx_public);
    let record = IdentityRecord {
        version: VERSION,
        name: "Olive Opening".into(),
        national_id: "NID-OPEN-1".into(),
        fields: Vec::new(),
        identity_key: crypto::public_key(&identity_key),
        possession: crypto::sign(
            &identity_key,
            &crypto::identity_possession_message(&params.chain_id, &account),
        ),
    };
    let sealed = record
        .seal(
            &params.disclosure_key,
            &params.chain_id,
            &account,
            &mut OsRng,
        )
        .unwrap();
    let message = open_account_message(&params.chain_id, &tx_public, BankId(0), &sealed).unwrap();
    let request = OpenAccountParams {
        tx_key: tx_public.to_hex(),
        holder_signature: crypto::sign(&tx_key, &message).to_hex(),
        sealed_record: hex::encode(codec::encode(&sealed).unwrap()),
        identity_key: record.identity_key.to_hex(),
        possession: record.possession.to_hex(),
    };
    (request, record.identity_key.0)
}

#[test]
fn the_bank_checks_the_proof_of_possession_beside_the_record() {
    let mut net = TestNet::start(2);
    let url = net.rpc("bank-1");
    let (good, identity_key) = request(&net);
    let mut forged = good.clone();
    let mut possession = hex::decode(&forged.possession).unwrap();
    possession[3] ^= 1;
    forged.possession = hex::encode(possession);
    let (other, _) = request(&net);
    let mut swapped = good.clone();
    swapped.identity_key = other.identity_key.clone();
    swapped.possession = other.possession.clone();
    block_on(async {
        let node = client(&url).await.unwrap();
        for (what, bad) in [("forged", forged), ("another account's", swapped)] {
            let error = node.open_account(bad).await.unwrap_err().to_string();
            assert!(error.contains("proof of possession"), "{what}: {error}");
        }
        let opened = node.open_account(good).await.unwrap();
        assert!(opened.height > 0);
    });
    net.wait_same_head();
    // The identity key went to the bank and the IM beside the record, and nobody kept it.
    for (path, bytes) in TestNet::files_under(&net.dir.path().join("network")) {
        assert!(
            !halfveil_tests::net::contains(&bytes, &identity_key),
            "the identity key is stored in {}",
            path.display()
        );
    }
    net.stop_all();
}
