#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::error::ApplyError;
use crate::testkit::{TestAccount, TestChain};
use crate::threshold::{dkg, HolderSecret};
use crate::types::{BankId, Op};
use rand::SeedableRng;

/// A chain of 3 auditors (threshold 2) and the IM holding the key (holders 1-3 the
/// auditors, 4 the IM; any 3 open), with two funded accounts.
fn chain(seed: u64) -> (TestChain, Vec<TestAccount>) {
    let mut chain = TestChain::new(seed, 2, 3, 2);
    let accounts = chain.fund_accounts(1, 1_000).unwrap();
    (chain, accounts)
}

fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

/// A refresh of the current key by holders `numbers`: their new shares and the key with
/// its parties.
fn refresh(chain: &TestChain, numbers: &[u16]) -> (Vec<HolderSecret>, HeldKey) {
    let current = chain.state.disclosure_keys().current().clone();
    let old: Vec<HolderSecret> = chain
        .holders
        .iter()
        .filter(|secret| numbers.contains(&secret.holder))
        .cloned()
        .collect();
    let (secrets, key) = dkg::in_memory(
        current.key.epoch,
        numbers,
        current.key.threshold,
        Some((&current.key, &old)),
        &mut rng(7),
    )
    .unwrap();
    (secrets, with_parties(&current, key))
}

/// `key` with each holder's party as `like` names it.
fn with_parties(like: &HeldKey, key: DisclosureKey) -> HeldKey {
    let parties = key
        .holders
        .iter()
        .map(|holder| {
            let index = like
                .key
                .holders
                .iter()
                .position(|h| h.holder == holder.holder);
            like.parties[index.unwrap()]
        })
        .collect();
    HeldKey { key, parties }
}

/// The first key of the next epoch, held by the same parties under the same numbers.
fn next_epoch(chain: &TestChain, threshold: u16) -> HeldKey {
    let current = chain.state.disclosure_keys().current().clone();
    let numbers: Vec<u16> = current.key.holders.iter().map(|h| h.holder).collect();
    let (_, key) = dkg::in_memory(
        current.key.epoch + 1,
        &numbers,
        threshold,
        None,
        &mut rng(9),
    )
    .unwrap();
    with_parties(&current, key)
}

fn pay(chain: &mut TestChain, accounts: &mut [TestAccount]) -> Result<(), ApplyError> {
    let payee = accounts[1].id;
    let request = chain.request(&mut accounts[0], &payee, 1);
    let (attestations, ops) = chain.transfer_ops(vec![request]);
    chain.commit(attestations, ops).map(|_| ())
}

fn refused(chain: &mut TestChain, op: Op) -> Violation {
    chain.commit(Vec::new(), vec![op]).unwrap_err().violation
}

fn refused_key(chain: &mut TestChain, held: HeldKey) -> Violation {
    let op = chain.adoption(held);
    refused(chain, op)
}

fn reason(violation: Violation) -> String {
    match violation {
        Violation::BadKeyAdoption { reason } => reason,
        other => panic!("another violation: {other}"),
    }
}

#[test]
fn a_refresh_drops_a_holder_and_payments_go_on() {
    let (mut chain, mut accounts) = chain(1);
    pay(&mut chain, &mut accounts).unwrap();
    let (_, held) = refresh(&chain, &[1, 2, 4]);
    let group_key = held.key.group_key;
    chain
        .commit(Vec::new(), vec![chain.adoption(held)])
        .unwrap();
    let keys = chain.state.disclosure_keys();
    assert_eq!(keys.current().key.refresh, 1);
    assert_eq!(keys.current().key.group_key, group_key);
    assert_eq!(keys.epochs().len(), 1, "a refresh replaces its epoch's key");
    // Same epoch: credentials sealed before and after both commit.
    pay(&mut chain, &mut accounts).unwrap();
    // Holder 3 (auditor 2) left: it holds no share any more, so records no more releases.
    let keys = chain.state.disclosure_keys();
    assert_eq!(keys.party_of(3), None);
    assert_eq!(keys.party_of(4), Some(HolderParty::IdentityManager));
}

#[test]
fn a_new_epoch_keeps_the_old_key_and_refuses_credentials_sealed_to_it() {
    let (mut chain, mut accounts) = chain(2);
    let sealed_before = {
        let payee = accounts[1].id;
        chain.request(&mut accounts[0], &payee, 1)
    };
    let held = next_epoch(&chain, 3);
    chain
        .commit(Vec::new(), vec![chain.adoption(held.clone())])
        .unwrap();
    assert_eq!(chain.state.disclosure_key().epoch, 1);
    assert!(chain.state.disclosure_keys().of_epoch(0).is_some());
    assert_eq!(chain.state.disclosure_keys().of_epoch(1), Some(&held));
    let (attestations, ops) = chain.transfer_ops(vec![sealed_before]);
    let violation = chain.commit(attestations, ops).unwrap_err().violation;
    assert_eq!(
        violation,
        Violation::IdentityCredentialEpoch {
            epoch: 0,
            expected: 1
        }
    );
    pay(&mut chain, &mut accounts).unwrap();
    let (_, opening) = chain.new_account(BankId(0));
    chain.commit(Vec::new(), vec![opening]).unwrap();
}

#[test]
fn an_adoption_takes_effect_after_its_block() {
    let (mut chain, mut accounts) = chain(3);
    let payee = accounts[1].id;
    let request = chain.request(&mut accounts[0], &payee, 1);
    let (attestations, mut ops) = chain.transfer_ops(vec![request]);
    ops.insert(0, chain.adoption(next_epoch(&chain, 3)));
    chain.commit(attestations, ops).unwrap();
    assert_eq!(chain.state.disclosure_key().epoch, 1);
}

#[test]
fn every_holder_must_sign() {
    let (mut chain, _) = chain(4);
    let Op::AdoptKey(mut adoption) = chain.adoption(next_epoch(&chain, 3)) else {
        unreachable!()
    };
    adoption.signatures[1] = adoption.signatures[0];
    let violation = refused(&mut chain, Op::AdoptKey(adoption.clone()));
    assert_eq!(violation, Violation::BadKeyAdoptionSignature { holder: 2 });
    adoption.signatures.pop();
    let violation = refused(&mut chain, Op::AdoptKey(adoption));
    assert!(reason(violation).contains("one signature per holder"));
}

#[test]
fn a_refresh_keeps_key_and_threshold_and_adds_nobody() {
    let (mut chain, _) = chain(5);
    let genesis_key = chain.state.disclosure_keys().current().clone();
    let (_, held) = refresh(&chain, &[1, 2, 4]);
    // A sound key of its own, but another group key.
    let mut other_key = next_epoch(&chain, 3);
    (other_key.key.epoch, other_key.key.refresh) = (0, 1);
    let violation = refused_key(&mut chain, other_key);
    assert!(reason(violation).contains("keeps the group key"));
    let mut skipped = held.clone();
    skipped.key.refresh = 2;
    let violation = refused_key(&mut chain, skipped);
    assert!(reason(violation).contains("must be refresh 1"));
    let mut same_again = held.clone();
    same_again.key.refresh = 0;
    assert!(reason(refused_key(&mut chain, same_again)).contains("refresh 1"));
    // Holder 3 refreshed out cannot come back in a refresh (genesis's shares, refresh 2).
    chain
        .commit(Vec::new(), vec![chain.adoption(held)])
        .unwrap();
    let mut back = genesis_key;
    back.key.refresh = 2;
    let violation = refused_key(&mut chain, back);
    assert!(reason(violation).contains("cannot add holders"));
}

#[test]
fn numbers_stay_with_their_parties() {
    let (mut chain, _) = chain(6);
    let mut swapped = next_epoch(&chain, 3);
    swapped.parties.swap(0, 1);
    let violation = refused_key(&mut chain, swapped);
    assert!(reason(violation).contains("on chain"));
}

#[test]
fn every_opening_needs_the_auditor_threshold() {
    let (mut chain, _) = chain(7);
    // Auditor threshold 2, the IM holds a share: any 2 holders could be 1 auditor and the IM.
    let weak = next_epoch(&chain, 2);
    let violation = refused_key(&mut chain, weak);
    assert!(reason(violation).contains("at least 3"));
}

#[test]
fn epochs_follow_one_another_with_new_keys() {
    let (mut chain, _) = chain(8);
    let mut skipped = next_epoch(&chain, 3);
    skipped.key.epoch = 2;
    assert!(reason(refused_key(&mut chain, skipped)).contains("epoch 1 refresh 0"));
    let mut old_key = next_epoch(&chain, 3);
    old_key.key = chain.state.disclosure_key().clone();
    old_key.key.epoch = 1;
    old_key.key.refresh = 0;
    assert!(reason(refused_key(&mut chain, old_key)).contains("new group key"));
}

#[test]
fn one_adoption_a_block() {
    let (mut chain, _) = chain(9);
    let first = chain.adoption(next_epoch(&chain, 3));
    let (_, refreshed) = refresh(&chain, &[1, 2, 3, 4]);
    let second = chain.adoption(refreshed);
    let error = chain.commit(Vec::new(), vec![first, second]).unwrap_err();
    assert_eq!(error.violation, Violation::KeyAdoptedTwice);
    assert_eq!(error.op, Some(1));
}

#[test]
fn an_adoption_verifies_on_its_own_as_a_payer_checks_it() {
    let (chain, _) = chain(10);
    let Op::AdoptKey(adoption) = chain.adoption(next_epoch(&chain, 3)) else {
        unreachable!()
    };
    adoption.verify(&chain.params).unwrap();
    let mut forged = adoption.clone();
    forged.held.key.threshold = 4;
    assert!(forged.verify(&chain.params).is_err());
    let mut stranger = adoption;
    stranger.held.parties[0] = HolderParty::Auditor(AuditorId(9));
    assert!(reason(stranger.verify(&chain.params).unwrap_err()).contains("not in genesis"));
}
