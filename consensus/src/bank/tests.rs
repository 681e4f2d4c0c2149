//! The bank's decisions, input by input: real keys, envelopes and signatures from the
//! ledger's testkit, the time set by hand. No process, socket or disk.

use std::time::{Duration, Instant};

use halfveil_ledger::crypto::{self, BusinessKey, Envelope};
use halfveil_ledger::fastmap::{HashMap, HashMapExt};
use halfveil_ledger::testkit::{TestAccount, TestChain};
use halfveil_ledger::{
    attestation_message, AccountId, Amount, AttestationKind, BankId, Hash32, Height, RejectCode,
    Rejecter, Rejection, TimeMs,
};
use rand::RngCore;

use super::outbox::{FORWARDS_IN_FLIGHT_MAX, FORWARD_RETRY, REDIRECT_RETRY};
use super::*;
use crate::clock::Now;

const BANK: BankId = BankId(0);
const DAY_MS: u64 = 86_400_000;

struct World {
    chain: TestChain,
    bank: Bank,
    payers: Vec<(TestAccount, [u8; 32])>,
    payee: AccountId,
    start: Instant,
}

fn world_with(bounds: Bounds) -> World {
    let mut chain = TestChain::new(7, 2, 0, 0);
    chain.seal_identity = false;
    let mut accounts = HashMap::new();
    let mut payers = Vec::new();
    for _ in 0..3 {
        let (account, _) = chain.new_account(BANK);
        let mut secret = [0u8; 32];
        chain.rng.fill_bytes(&mut secret);
        let local = LocalAccount::new(
            BusinessKey::from_bytes(secret),
            false,
            BankLimits::default(),
            true,
        );
        accounts.insert(account.id, local);
        payers.push((account, secret));
    }
    let (payee, _) = chain.new_account(BankId(1));
    let keys = Keys {
        chain_id: chain.params.chain_id.clone(),
        validators: chain.params.validator_keys.clone(),
        banks: chain.params.bank_keys.clone(),
    };
    let key = SigningKey::from_bytes(&chain.banks[0].to_bytes());
    let written = (Height(1), TimeMs(chain.state.time.0));
    let bank = Bank::new(BANK, keys, bounds, key, accounts, Vec::new(), written);
    World {
        chain,
        bank,
        payers,
        payee: payee.id,
        start: Instant::now(),
    }
}

fn world() -> World {
    world_with(Bounds::default())
}

impl World {
    /// The time `secs` seconds after the start, on both clocks.
    fn at(&self, secs: u64) -> Now {
        Now {
            wall: TimeMs(self.chain.state.time.0 + secs * 1000),
            mono: self.start + Duration::from_secs(secs),
        }
    }

    /// A sealed envelope of a transfer of `amount` by payer `index`, and its id.
    fn envelope(&mut self, index: usize, amount: u64) -> (Vec<u8>, Hash32) {
        let payee = self.payee;
        let (payer, secret) = &mut self.payers[index];
        let request = self.chain.request(payer, &payee, amount);
        let id = request.transfer.id().unwrap();
        let key = BusinessKey::from_bytes(*secret);
        let chain_id = &self.chain.params.chain_id;
        let envelope = Envelope::seal(&key, chain_id, BANK, &request, &mut self.chain.rng).unwrap();
        (envelope.encode().unwrap(), id)
    }

    fn submit(&mut self, index: usize, amount: u64, secs: u64) -> (Hash32, TransferState) {
        let (bytes, id) = self.envelope(index, amount);
        let answer = self.bank.submit(&bytes, self.at(secs)).unwrap();
        assert_eq!(answer.0, id);
        answer
    }

    fn im_refusal(&self, id: Hash32, code: RejectCode) -> Rejection {
        let chain_id = &self.chain.params.chain_id;
        let by = Rejecter::IdentityManager;
        Rejection::sign(chain_id, id, by, code, "no", &self.chain.validator).unwrap()
    }
}

/// The ids of each forwarded batch among `effects`.
fn forwarded(effects: &[Effect]) -> Vec<Vec<Hash32>> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Forward { ids, .. } => Some(ids.clone()),
            _ => None,
        })
        .collect()
}

fn stored(effects: Vec<Effect>) -> Vec<Refusal> {
    effects
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::StoreRefusals(refusals) => Some(refusals),
            _ => None,
        })
        .flatten()
        .collect()
}

fn resolved(effects: &[Effect]) -> Vec<(Hash32, TransferState)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Resolve { id, state } => Some((*id, state.clone())),
            _ => None,
        })
        .collect()
}

fn code_of(state: &TransferState) -> Option<RejectCode> {
    match state {
        TransferState::Rejected(rejection) => Some(rejection.code),
        _ => None,
    }
}

#[test]
fn an_accepted_envelope_is_pending_and_forwarded_with_a_valid_attestation() {
    let mut w = world();
    let (id, state) = w.submit(0, 10, 0);
    assert_eq!(state, TransferState::Pending);
    let effects = w.bank.take_effects();
    let [Effect::Forward {
        ids,
        requests,
        attestation,
    }] = effects.as_slice()
    else {
        panic!("one forward expected: {effects:?}");
    };
    assert_eq!(ids, &vec![id]);
    assert_eq!(requests[0].transfer.id().unwrap(), id);
    assert_eq!(attestation.kind, AttestationKind::PayerOk);
    let chain_id = &w.chain.params.chain_id;
    let message = attestation_message(chain_id, AttestationKind::PayerOk, BANK, ids).unwrap();
    let key = &w.chain.params.bank_keys[0];
    assert!(crypto::verify(key, &message, &attestation.signature).is_ok());
}

#[test]
fn a_resubmitted_envelope_is_answered_with_its_state_and_never_forwarded_twice() {
    let mut w = world();
    let (bytes, id) = w.envelope(0, 10);
    let now = w.at(0);
    assert_eq!(w.bank.submit(&bytes, now), Ok((id, TransferState::Pending)));
    assert_eq!(forwarded(&w.bank.take_effects()).len(), 1);
    assert_eq!(w.bank.submit(&bytes, now), Ok((id, TransferState::Pending)));
    assert!(forwarded(&w.bank.take_effects()).is_empty());
    assert_eq!(w.bank.outbox_len(), 0);
}

#[test]
fn every_envelope_fault_looks_the_same() {
    let mut w = world();
    let (mut bytes, _) = w.envelope(0, 10);
    let now = w.at(0);
    assert_eq!(w.bank.submit(b"garbage", now), Err(SubmitError::Envelope));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(w.bank.submit(&bytes, now), Err(SubmitError::Envelope));
    // An account that is not open yet cannot pay.
    let payer = w.payers[1].0.id;
    w.bank.account_mut(&payer).unwrap().opened = false;
    let (bytes, _) = w.envelope(1, 10);
    assert_eq!(w.bank.submit(&bytes, now), Err(SubmitError::Envelope));
    assert!(w.bank.take_effects().is_empty());
}

#[test]
fn a_refusal_is_told_only_once_stored_and_stays_final() {
    let mut w = world();
    let payer = w.payers[0].0.id;
    w.bank.account_mut(&payer).unwrap().frozen = true;
    let (bytes, id) = w.envelope(0, 10);
    let (_, state) = w.bank.submit(&bytes, w.at(0)).unwrap();
    assert_eq!(code_of(&state), Some(RejectCode::AccountFrozen));
    // Not yet stored: the bank still holds it pending, nothing resolved, nothing forwarded.
    assert_eq!(w.bank.state(&id), TransferState::Pending);
    let effects = w.bank.take_effects();
    assert!(forwarded(&effects).is_empty() && resolved(&effects).is_empty());
    let refusals = stored(effects);
    assert_eq!(refusals.len(), 1);
    w.bank.on_refusals_stored(refusals, Vec::new());
    let told = resolved(&w.bank.take_effects());
    assert_eq!(told.len(), 1);
    assert_eq!(code_of(&told[0].1), Some(RejectCode::AccountFrozen));
    // Unfrozen, the same envelope is still refused: the refusal is final.
    w.bank.account_mut(&payer).unwrap().frozen = false;
    let (_, again) = w.bank.submit(&bytes, w.at(1)).unwrap();
    assert_eq!(code_of(&again), Some(RejectCode::AccountFrozen));
    assert!(w.bank.take_effects().is_empty());
}

#[test]
fn a_stored_refusal_survives_a_restart() {
    let mut w = world();
    let (bytes, id) = w.envelope(0, 10);
    let rejection = w.im_refusal(id, RejectCode::InsufficientFunds);
    let refusal = Refusal {
        id,
        rejection,
        expires_at: TimeMs(w.chain.state.time.0 + 300_000),
        payer: w.payers[0].0.id,
    };
    let mut accounts = HashMap::new();
    let secret = w.payers[0].1;
    let local = LocalAccount::new(
        BusinessKey::from_bytes(secret),
        false,
        BankLimits::default(),
        true,
    );
    accounts.insert(w.payers[0].0.id, local);
    let keys = w.bank.keys.clone();
    let key = SigningKey::from_bytes(&w.chain.banks[0].to_bytes());
    let written = w.bank.written;
    let mut restarted = Bank::new(
        BANK,
        keys,
        Bounds::default(),
        key,
        accounts,
        vec![refusal],
        written,
    );
    assert_eq!(restarted.stored_refusals(), 1);
    let (_, state) = restarted.submit(&bytes, w.at(0)).unwrap();
    assert_eq!(code_of(&state), Some(RejectCode::InsufficientFunds));
    assert!(restarted.take_effects().is_empty());
}

#[test]
fn limits_refuse_per_payment_and_per_day_and_a_refused_payment_is_given_back() {
    let mut w = world();
    let payer = w.payers[0].0.id;
    w.bank.account_mut(&payer).unwrap().limits = BankLimits {
        payment_max: 100,
        daily_max: 150,
        receive_max: 0,
    };
    let (_, over) = w.submit(0, 101, 0);
    assert_eq!(code_of(&over), Some(RejectCode::LimitExceeded));
    let (first, state) = w.submit(0, 100, 0);
    assert_eq!(state, TransferState::Pending);
    let (_, second) = w.submit(0, 60, 0);
    assert_eq!(
        code_of(&second),
        Some(RejectCode::LimitExceeded),
        "100 + 60 > 150"
    );
    let refusals = stored(w.bank.take_effects());
    w.bank.on_refusals_stored(refusals, Vec::new());
    // The IM refuses the first: its 100 no longer counts today.
    let rejection = w.im_refusal(first, RejectCode::InsufficientFunds);
    let answer = ForwardAnswer::Taken {
        rejected: vec![rejection],
        committed: Vec::new(),
    };
    w.bank.on_forward_answer(vec![first], answer, w.at(0).mono);
    let refusals = stored(w.bank.take_effects());
    assert_eq!(refusals.len(), 1);
    w.bank.on_refusals_stored(refusals, Vec::new());
    let (_, third) = w.submit(0, 100, 1);
    assert_eq!(third, TransferState::Pending);
    // The next day starts from nothing.
    let tomorrow = DAY_MS / 1000;
    let (_, fourth) = w.submit(0, 100, tomorrow);
    assert_eq!(fourth, TransferState::Pending);
}

#[test]
fn a_busy_or_unreachable_im_gets_the_batch_again_after_the_hold_off() {
    let mut w = world();
    let (id, _) = w.submit(0, 10, 0);
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![id]]);
    w.bank
        .on_forward_answer(vec![id], ForwardAnswer::Again, w.at(0).mono);
    assert!(forwarded(&w.bank.take_effects()).is_empty(), "held off");
    let before = Now {
        mono: w.start + FORWARD_RETRY - Duration::from_millis(1),
        ..w.at(0)
    };
    w.bank.tick(before);
    assert!(
        forwarded(&w.bank.take_effects()).is_empty(),
        "still held off"
    );
    w.bank.tick(w.at(FORWARD_RETRY.as_secs()));
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![id]]);
}

/// A replica that does not lead (or is gone) costs only the short hold-off: the batch goes
/// to another replica after [`REDIRECT_RETRY`], not [`FORWARD_RETRY`].
#[test]
fn a_batch_for_another_replica_goes_again_after_the_short_hold_off() {
    let mut w = world();
    let (id, _) = w.submit(0, 10, 0);
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![id]]);
    w.bank
        .on_forward_answer(vec![id], ForwardAnswer::Elsewhere, w.at(0).mono);
    assert!(forwarded(&w.bank.take_effects()).is_empty(), "held off");
    let base = w.at(0);
    let at = |after: Duration| Now {
        mono: base.mono + after,
        ..base
    };
    w.bank.tick(at(REDIRECT_RETRY - Duration::from_millis(1)));
    assert!(
        forwarded(&w.bank.take_effects()).is_empty(),
        "still held off"
    );
    w.bank.tick(at(REDIRECT_RETRY));
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![id]]);
    assert!(REDIRECT_RETRY < FORWARD_RETRY);
}

fn taken() -> ForwardAnswer {
    ForwardAnswer::Taken {
        rejected: Vec::new(),
        committed: Vec::new(),
    }
}

/// A transfer the IM took (and holds), then another whose forward is answered `answer` at
/// second 1, goes again at second `again` and is taken: returns the world, the held
/// transfer and what the bank forwards right after that.
fn held_then_interrupted(answer: ForwardAnswer, again: u64) -> (World, Hash32, Vec<Vec<Hash32>>) {
    let mut w = world();
    let (held, _) = w.submit(0, 10, 0);
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![held]]);
    w.bank.on_forward_answer(vec![held], taken(), w.at(0).mono);
    let (interrupted, _) = w.submit(0, 10, 1);
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![interrupted]]);
    w.bank
        .on_forward_answer(vec![interrupted], answer, w.at(1).mono);
    w.bank.tick(w.at(again));
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![interrupted]]);
    w.bank
        .on_forward_answer(vec![interrupted], taken(), w.at(again).mono);
    let next = forwarded(&w.bank.take_effects());
    (w, held, next)
}

/// A leader change: the replica that took a batch goes away before committing it. Once
/// another replica takes a batch, what the first held goes again at once, not after
/// [`REFORWARD_AFTER`]; and only once.
#[test]
fn after_a_leader_change_what_the_old_leader_held_goes_again_at_once() {
    let (mut w, held, next) = held_then_interrupted(ForwardAnswer::Elsewhere, 2);
    assert_eq!(
        next,
        vec![vec![held]],
        "the old leader's transfer goes again as soon as a new one takes batches"
    );
    assert!(Duration::from_secs(2) < REFORWARD_AFTER);
    w.bank.on_forward_answer(vec![held], taken(), w.at(2).mono);
    assert!(forwarded(&w.bank.take_effects()).is_empty(), "only once");
}

/// A single IM that cannot be reached may have restarted without what it held: the same
/// once it takes a batch again.
#[test]
fn after_an_unreachable_im_takes_batches_again_what_it_held_goes_again() {
    let again = 1 + FORWARD_RETRY.as_secs();
    let (_, held, next) = held_then_interrupted(ForwardAnswer::Lost, again);
    assert_eq!(next, vec![vec![held]]);
}

/// A busy IM still holds what it took: nothing goes again early.
#[test]
fn after_a_busy_im_takes_batches_again_nothing_goes_again_early() {
    let again = 1 + FORWARD_RETRY.as_secs();
    let (_, _, next) = held_then_interrupted(ForwardAnswer::Again, again);
    assert!(next.is_empty(), "{next:?}");
}

#[test]
fn what_arrives_while_a_forward_is_out_goes_as_one_batch() {
    let mut w = world();
    let ids: Vec<Hash32> = (0..4).map(|_| w.submit(1, 1, 0).0).collect();
    assert_eq!(
        forwarded(&w.bank.take_effects()),
        vec![vec![ids[0]]],
        "the first at once"
    );
    w.bank.tick(w.at(0));
    assert_eq!(forwarded(&w.bank.take_effects()), vec![ids[1..].to_vec()]);
}

#[test]
fn at_most_four_batches_are_out_at_once() {
    let mut w = world();
    for _ in 0..(FORWARDS_IN_FLIGHT_MAX + 2) {
        w.submit(0, 1, 0);
        w.bank.tick(w.at(0));
    }
    let batches = forwarded(&w.bank.take_effects());
    assert_eq!(batches.len(), FORWARDS_IN_FLIGHT_MAX);
    assert_eq!(w.bank.outbox_len(), 2, "the rest wait for an answer");
    let first = batches[0].clone();
    w.bank
        .on_forward_answer(first, ForwardAnswer::Unexpected, w.at(0).mono);
    assert_eq!(
        forwarded(&w.bank.take_effects()).len(),
        0,
        "three still out"
    );
    w.bank.tick(w.at(0));
    let next = forwarded(&w.bank.take_effects());
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].len(), 2);
}

#[test]
fn the_ims_refusals_are_passed_on_only_when_signed_by_it_for_this_batch() {
    let mut w = world();
    let (a, _) = w.submit(0, 10, 0);
    let (b, _) = w.submit(1, 10, 0);
    w.bank.take_effects();
    let forged = Rejection::sign(
        &w.chain.params.chain_id,
        b,
        Rejecter::IdentityManager,
        RejectCode::Replay,
        "forged",
        &w.chain.banks[1],
    )
    .unwrap();
    let answer = ForwardAnswer::Taken {
        rejected: vec![w.im_refusal(a, RejectCode::Replay), forged],
        committed: Vec::new(),
    };
    w.bank.on_forward_answer(vec![a, b], answer, w.at(0).mono);
    let refusals = stored(w.bank.take_effects());
    assert_eq!(refusals.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(w.bank.state(&b), TransferState::Pending);
}

#[test]
fn a_transfer_committed_before_is_final_once_its_block_is_on_disk() {
    let mut w = world();
    let (a, _) = w.submit(0, 10, 0);
    let (b, _) = w.submit(1, 10, 0);
    w.bank.take_effects();
    let on_disk = OnChain {
        id: a,
        height: Height(1),
        index: 0,
    };
    let to_come = OnChain {
        id: b,
        height: Height(9),
        index: 0,
    };
    let answer = ForwardAnswer::Taken {
        rejected: Vec::new(),
        committed: vec![on_disk, to_come],
    };
    w.bank.on_forward_answer(vec![a, b], answer, w.at(0).mono);
    let told = resolved(&w.bank.take_effects());
    assert_eq!(told, vec![(a, on_disk.state())]);
    assert_eq!(w.bank.state(&a), on_disk.state());
    assert_eq!(w.bank.state(&b), TransferState::Pending);
}

#[test]
fn a_batch_the_im_refuses_as_a_whole_is_refused_by_the_bank() {
    let mut w = world();
    let (a, _) = w.submit(0, 10, 0);
    w.bank.take_effects();
    let answer = ForwardAnswer::Refused {
        code: RejectCode::Invalid,
        message: "no".into(),
    };
    w.bank.on_forward_answer(vec![a], answer, w.at(0).mono);
    let refusals = stored(w.bank.take_effects());
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].rejection.by, Rejecter::Bank(BANK));
    assert_eq!(refusals[0].rejection.code, RejectCode::Invalid);
}

#[test]
fn a_refused_transfer_the_chain_holds_is_committed_instead() {
    let mut w = world();
    let (a, _) = w.submit(0, 10, 0);
    w.bank.take_effects();
    w.bank
        .on_rejected(vec![w.im_refusal(a, RejectCode::Timeout)]);
    let refusals = stored(w.bank.take_effects());
    assert_eq!(refusals.len(), 1);
    let at = OnChain {
        id: a,
        height: Height(2),
        index: 3,
    };
    w.bank.on_refusals_stored(Vec::new(), vec![at]);
    assert_eq!(resolved(&w.bank.take_effects()), vec![(a, at.state())]);
    assert_eq!(w.bank.state(&a), at.state());
}

#[test]
fn expiry_follows_the_chains_clock_not_the_banks() {
    let mut w = world();
    let (a, _) = w.submit(0, 10, 0);
    w.bank.take_effects();
    // An hour on the bank's clock: the chain has not moved, nothing expires.
    w.bank.tick(w.at(3600));
    assert!(stored(w.bank.take_effects()).is_empty());
    let expiry = w.bank.tracker.get(&a).unwrap().expires_at;
    w.bank.on_written(Height(2), expiry);
    w.bank.tick(w.at(3602));
    let refusals = stored(w.bank.take_effects());
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].rejection.code, RejectCode::Expired);
}

#[test]
fn a_forward_without_an_answer_goes_again_after_five_seconds() {
    let mut w = world();
    let (a, _) = w.submit(0, 10, 0);
    assert_eq!(forwarded(&w.bank.take_effects()).len(), 1);
    w.bank
        .on_forward_answer(vec![a], ForwardAnswer::Unexpected, w.at(0).mono);
    w.bank.tick(w.at(1));
    assert!(forwarded(&w.bank.take_effects()).is_empty());
    w.bank.tick(w.at(REFORWARD_AFTER.as_secs()));
    assert_eq!(forwarded(&w.bank.take_effects()), vec![vec![a]]);
}

#[test]
fn stored_refusals_are_pruned_once_the_chain_passes_their_expiry() {
    let mut w = world();
    let payer = w.payers[0].0.id;
    w.bank.account_mut(&payer).unwrap().frozen = true;
    let (a, _) = w.submit(0, 10, 0);
    let refusals = stored(w.bank.take_effects());
    let expiry = refusals[0].expires_at;
    w.bank.on_refusals_stored(refusals, Vec::new());
    w.bank.take_effects();
    w.bank.tick(w.at(1));
    assert!(w.bank.take_effects().is_empty());
    w.bank.on_written(Height(5), expiry);
    w.bank.tick(w.at(3));
    let effects = w.bank.take_effects();
    assert!(matches!(effects.as_slice(), [Effect::PruneRefusals(ids)] if ids == &vec![a]));
    assert_eq!(w.bank.stored_refusals(), 0);
}

#[test]
fn a_full_outbox_answers_busy_and_takes_nothing() {
    let bounds = Bounds {
        outbox_max: 2,
        ..Bounds::default()
    };
    let mut w = world_with(bounds);
    // One forward out holds the rest in the outbox.
    w.submit(0, 1, 0);
    w.submit(0, 1, 0);
    w.submit(0, 1, 0);
    let (bytes, id) = w.envelope(0, 1);
    assert_eq!(w.bank.submit(&bytes, w.at(0)), Err(SubmitError::Busy));
    assert_eq!(w.bank.state(&id), TransferState::Unknown);
}

#[test]
fn a_forgotten_refusal_is_still_final_until_the_chain_passes_its_expiry() {
    let bounds = Bounds {
        tracked_max: 1,
        ..Bounds::default()
    };
    let mut w = world_with(bounds);
    let payer = w.payers[0].0.id;
    w.bank.account_mut(&payer).unwrap().frozen = true;
    let (bytes, id) = w.envelope(0, 10);
    w.bank.submit(&bytes, w.at(0)).unwrap();
    let refusals = stored(w.bank.take_effects());
    w.bank.on_refusals_stored(refusals, Vec::new());
    w.bank.account_mut(&payer).unwrap().frozen = false;
    // A second transfer pushes the first out of the tracker.
    w.submit(1, 10, 0);
    assert_eq!(w.bank.state(&id), TransferState::Unknown);
    assert_eq!(
        w.bank.submit(&bytes, w.at(0)),
        Err(SubmitError::RefusedBefore)
    );
}

#[test]
fn payees_are_approved_in_one_attestation_or_refused_each_with_a_signature() {
    let mut w = world();
    let ids: Vec<Hash32> = (0u8..4).map(|i| Hash32([i; 32])).collect();
    let (open, frozen, limited) = (w.payers[0].0.id, w.payers[1].0.id, w.payers[2].0.id);
    w.bank.account_mut(&frozen).unwrap().frozen = true;
    w.bank.account_mut(&limited).unwrap().limits.receive_max = 5;
    let item = |id: Hash32, payee: AccountId, amount: u64| PayeeItem {
        id,
        payee,
        amount: Amount(amount),
    };
    let verdict = w.bank.approve([
        item(ids[0], open, 10),
        item(ids[1], frozen, 10),
        item(ids[2], limited, 10),
        item(ids[3], w.payee, 10),
    ]);
    let attestation = verdict.attestation.unwrap();
    assert_eq!(attestation.ids, vec![ids[0]]);
    assert_eq!(attestation.kind, AttestationKind::PayeeOk);
    let codes: Vec<RejectCode> = verdict.refused.iter().map(|r| r.code).collect();
    let expected = [
        RejectCode::AccountFrozen,
        RejectCode::LimitExceeded,
        RejectCode::UnknownAccount,
    ];
    assert_eq!(codes, expected);
    let bank_key = &w.chain.params.bank_keys[0];
    for refusal in &verdict.refused {
        assert!(refusal.verify(&w.chain.params.chain_id, bank_key).is_ok());
    }
    let none = w.bank.approve([item(ids[1], frozen, 10)]);
    assert!(none.attestation.is_none());
}

#[test]
fn an_opening_needs_the_holders_signature_and_a_new_account() {
    let mut w = world();
    let tx_key = crypto::generate_signing_key(&mut w.chain.rng);
    let public = crypto::public_key(&tx_key);
    let account = AccountId::from_key(&public);
    let chain_id = w.chain.params.chain_id.clone();
    // The testkit's opening carries a real record for another account; any record will do
    // for the bank, which cannot read it (the chain checks its label).
    let (_, other) = w.chain.new_account(BANK);
    let halfveil_ledger::Op::OpenAccount(other) = other else {
        unreachable!()
    };
    let identity_record = other.identity_record;
    let message =
        halfveil_ledger::open_account_message(&chain_id, &public, BANK, &identity_record).unwrap();
    let wrong = Opening {
        tx_key: public,
        holder_signature: crypto::sign(&w.chain.banks[0], &message),
        account,
        identity_record,
    };
    let key = || BusinessKey::from_bytes([9; 32]);
    assert_eq!(
        w.bank.add_account(&wrong, key()).unwrap_err(),
        OpeningError::HolderSignature
    );
    let opening = Opening {
        holder_signature: crypto::sign(&tx_key, &message),
        ..wrong.clone()
    };
    let op = w.bank.add_account(&opening, key()).unwrap();
    let bank_key = &w.chain.params.bank_keys[0];
    assert!(crypto::verify(bank_key, &message, &op.bank_signature).is_ok());
    assert!(!w.bank.account(&account).unwrap().opened);
    assert_eq!(
        w.bank.add_account(&opening, key()).unwrap_err(),
        OpeningError::Exists
    );
    w.bank.remove_account(&account);
    assert!(w.bank.account(&account).is_none());
}
