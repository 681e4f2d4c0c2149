//! Property tests: the ledger's invariants under random sequences of valid and invalid
//! transfers, and the codec's round trip and robustness.
//!
//! The ledger test drives a [`TestChain`] block by block with transfers of random amounts
//! (often more than the payer holds), verbatim replays of committed transfers, new transfers
//! that reuse a committed nonce, expired transfers and jumps in time, and checks every block
//! against a small model: the block is accepted exactly when the model says every op is
//! valid, a rejected block is reported at the model's first bad op with the model's reason,
//! balances match the model, never wrap, and always sum to the unchanged supply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use halfveil_ledger::threshold::tdh2::Capsule;
use halfveil_ledger::threshold::Point;

use std::collections::HashMap;

use common::{forge, placeholder_credential, sign_request};
use halfveil_ledger::codec;
use halfveil_ledger::crypto::Envelope;
use halfveil_ledger::hash::{Hash32, MerkleProof};
use halfveil_ledger::testkit::{TestAccount, TestChain};
use halfveil_ledger::{
    apply, AccountId, Amount, AttestationKind, AuditorId, AuditorSignature, BankId,
    BatchAttestation, Block, BlockHeader, ChainId, CloseAccount, DisclosureOrder, Height,
    IdentityCredential, Issue, Memo, Nonce, Op, OpenAccount, OrderOp, PublicKey, RotateKey,
    SealedIdentityRecord, ShareRecord, Signature, SignedHeader, TimeMs, TransactionRequest,
    Transfer, TransferOp, Violation, X25519PublicKey, BLOCK_BYTES_MAX,
    IDENTITY_CREDENTIAL_BODY_BYTES, IDENTITY_RECORD_BODY_BYTES, VERSION,
};
use proptest::collection::vec;
use proptest::prelude::*;

const ACCOUNTS: usize = 4;
const BALANCE: u64 = 1_000;
/// How far ahead of the block time a new transfer expires (the limit is 600,000 ms).
const EXPIRY_MS: u64 = 300_000;

/// One op the test tries to put in a block.
#[derive(Clone, Debug)]
enum Action {
    /// A fresh transfer; the amount may exceed the payer's balance, or be zero.
    Pay {
        payer: usize,
        payee: usize,
        amount: u64,
    },
    /// A committed transfer again, byte for byte.
    Replay { pick: usize },
    /// A new transfer (new amount, new signature) reusing a committed pair's nonce.
    ReuseNonce { pick: usize, amount: u64 },
    /// A transfer that expired `ago_ms` before the block time (0: expires at it).
    Expired {
        payer: usize,
        payee: usize,
        amount: u64,
        ago_ms: u64,
    },
}

/// One block: how far its time is after the previous block's, and its ops.
#[derive(Clone, Debug)]
struct Step {
    advance_ms: u64,
    actions: Vec<Action>,
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        14 => 1..400u64,
        4 => 400..2_500u64,
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ]
}

/// A payee: another account, now and then the payer itself.
fn payee_offset() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 1..ACCOUNTS, 1 => Just(0)]
}

fn action() -> impl Strategy<Value = Action> {
    let account = 0..ACCOUNTS;
    prop_oneof![
        10 => (account.clone(), payee_offset(), amount()).prop_map(|(payer, offset, amount)| {
            Action::Pay { payer, payee: (payer + offset) % ACCOUNTS, amount }
        }),
        2 => any::<usize>().prop_map(|pick| Action::Replay { pick }),
        1 => (any::<usize>(), 1..300u64)
            .prop_map(|(pick, amount)| Action::ReuseNonce { pick, amount }),
        1 => (account.clone(), account, 1..300u64, 0..2_000_000u64).prop_map(
            |(payer, payee, amount, ago_ms)| Action::Expired { payer, payee, amount, ago_ms }
        ),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let advance_ms = prop_oneof![8 => Just(100u64), 2 => 1..400_000u64];
    (advance_ms, vec(action(), 1..4)).prop_map(|(advance_ms, actions)| Step {
        advance_ms,
        actions,
    })
}

/// Why the model expects an op to fail, in the ledger's order of checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    ZeroAmount,
    SelfTransfer,
    Expired,
    InsufficientFunds,
    Replay,
}

fn refusal_of(violation: &Violation) -> Option<Refusal> {
    match violation {
        Violation::ZeroAmount => Some(Refusal::ZeroAmount),
        Violation::SelfTransfer => Some(Refusal::SelfTransfer),
        Violation::Expired { .. } => Some(Refusal::Expired),
        Violation::InsufficientFunds { .. } => Some(Refusal::InsufficientFunds),
        Violation::Replay { .. } => Some(Refusal::Replay),
        _ => None,
    }
}

/// What the chain should hold: balances by account index and the remembered pairs.
struct Model {
    balances: Vec<u64>,
    remembered: HashMap<(usize, u64), TimeMs>,
    /// Every committed request, for replays.
    committed: Vec<(usize, TransactionRequest)>,
}

impl Model {
    /// Judges a block's requests at `time`: the index and reason of the first bad one.
    fn judge(
        &self,
        time: TimeMs,
        requests: &[(usize, usize, TransactionRequest)],
    ) -> Option<(usize, Refusal)> {
        let mut balances = self.balances.clone();
        let mut in_block = std::collections::HashSet::new();
        for (index, (payer, payee, request)) in requests.iter().enumerate() {
            let transfer = &request.transfer;
            let refusal = if transfer.amount.0 == 0 {
                Some(Refusal::ZeroAmount)
            } else if payer == payee {
                Some(Refusal::SelfTransfer)
            } else if transfer.expires_at <= time {
                Some(Refusal::Expired)
            } else if balances[*payer] < transfer.amount.0 {
                Some(Refusal::InsufficientFunds)
            } else if self
                .remembered
                .get(&(*payer, transfer.nonce.0))
                .is_some_and(|expires_at| *expires_at > time)
                || !in_block.insert((*payer, transfer.nonce.0))
            {
                Some(Refusal::Replay)
            } else {
                None
            };
            if let Some(refusal) = refusal {
                return Some((index, refusal));
            }
            balances[*payer] -= transfer.amount.0;
            balances[*payee] += transfer.amount.0;
        }
        None
    }

    fn commit(&mut self, time: TimeMs, requests: Vec<(usize, usize, TransactionRequest)>) {
        self.remembered.retain(|_, expires_at| *expires_at > time);
        for (payer, payee, request) in requests {
            let transfer = &request.transfer;
            self.balances[payer] -= transfer.amount.0;
            self.balances[payee] += transfer.amount.0;
            self.remembered
                .insert((payer, transfer.nonce.0), transfer.expires_at);
            self.committed.push((payer, request));
        }
    }
}

struct World {
    chain: TestChain,
    accounts: Vec<TestAccount>,
    model: Model,
    next_nonce: Vec<u64>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut chain = TestChain::new(seed, 2, 0, 0);
        chain.seal_identity = false;
        let accounts = chain.fund_accounts(ACCOUNTS / 2, BALANCE).unwrap();
        World {
            chain,
            accounts,
            model: Model {
                balances: vec![BALANCE; ACCOUNTS],
                remembered: HashMap::new(),
                committed: Vec::new(),
            },
            next_nonce: vec![0; ACCOUNTS],
        }
    }

    fn signed(
        &self,
        payer: usize,
        payee: usize,
        amount: u64,
        nonce: u64,
        expires_at: TimeMs,
    ) -> TransactionRequest {
        let mut request = TransactionRequest {
            transfer: Transfer {
                version: VERSION,
                chain_id: self.chain.params.chain_id.clone(),
                payer: self.accounts[payer].id,
                payee: self.accounts[payee].id,
                amount: Amount(amount),
                nonce: Nonce(nonce),
                expires_at,
                memo: Memo(Vec::new()),
            },
            tx_credential: Signature([0; 64]),
            identity_credential: placeholder_credential(&self.chain),
        };
        sign_request(&self.accounts[payer].tx_key, &mut request);
        request
    }

    fn fresh_nonce(&mut self, payer: usize) -> u64 {
        let nonce = self.next_nonce[payer];
        self.next_nonce[payer] += 1;
        nonce
    }

    /// The request an action stands for, with its payer and payee indexes; `None` when a
    /// replay has nothing to replay yet.
    fn request(
        &mut self,
        time: TimeMs,
        action: &Action,
    ) -> Option<(usize, usize, TransactionRequest)> {
        let index_of = |accounts: &[TestAccount], id: &AccountId| {
            accounts
                .iter()
                .position(|account| account.id == *id)
                .unwrap()
        };
        match *action {
            Action::Pay {
                payer,
                payee,
                amount,
            } => {
                let nonce = self.fresh_nonce(payer);
                Some((
                    payer,
                    payee,
                    self.signed(payer, payee, amount, nonce, TimeMs(time.0 + EXPIRY_MS)),
                ))
            }
            Action::Replay { pick } => {
                let count = self.model.committed.len();
                let (payer, request) = self.model.committed.get(pick % count.max(1))?.clone();
                let payee = index_of(&self.accounts, &request.transfer.payee);
                Some((payer, payee, request))
            }
            Action::ReuseNonce { pick, amount } => {
                let count = self.model.committed.len();
                let (payer, old) = self.model.committed.get(pick % count.max(1))?.clone();
                let payee = (payer + 1) % ACCOUNTS;
                let expires_at = TimeMs(time.0 + EXPIRY_MS);
                Some((
                    payer,
                    payee,
                    self.signed(payer, payee, amount, old.transfer.nonce.0, expires_at),
                ))
            }
            Action::Expired {
                payer,
                payee,
                amount,
                ago_ms,
            } => {
                let nonce = self.fresh_nonce(payer);
                let expires_at = TimeMs(time.0.saturating_sub(ago_ms));
                Some((
                    payer,
                    payee,
                    self.signed(payer, payee, amount, nonce, expires_at),
                ))
            }
        }
    }

    /// Builds the step's block, applies it, and checks it against the model.
    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let time = TimeMs(self.chain.state.time.0 + step.advance_ms);
        let mut requests = Vec::new();
        let mut must_fail = false;
        for action in &step.actions {
            if let Some(request) = self.request(time, action) {
                must_fail |= matches!(action, Action::Replay { .. } | Action::Expired { .. });
                requests.push(request);
            }
        }
        let expected = self.model.judge(time, &requests);
        // A transfer replayed byte for byte, or expired, never commits.
        if must_fail {
            prop_assert!(
                expected.is_some(),
                "the model accepts a replay or an expired transfer"
            );
        }
        let (attestations, ops) = self.chain.transfer_ops(
            requests
                .iter()
                .map(|(_, _, request)| request.clone())
                .collect(),
        );
        let block = forge(&self.chain, time, attestations, ops);
        let root_before = self.chain.state.state_root();
        let result = apply(&self.chain.params, &self.chain.state, &block);
        match (expected, result) {
            (None, Ok(change)) => {
                prop_assert_eq!(change.state_root, block.header().state_root);
                self.chain
                    .state
                    .commit(&change, block.header().hash().unwrap());
                self.model.commit(time, requests);
            }
            (Some((index, refusal)), Err(error)) => {
                prop_assert_eq!(error.op, Some(index), "{:?}", error);
                prop_assert_eq!(refusal_of(&error.violation), Some(refusal), "{:?}", error);
                // Nothing moved.
                prop_assert_eq!(self.chain.state.state_root(), root_before);
            }
            (expected, result) => {
                return Err(TestCaseError::fail(format!(
                    "model expected {expected:?}, apply said {result:?}"
                )));
            }
        }
        self.check_invariants()
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        let state = &self.chain.state;
        let total: u128 = state
            .accounts()
            .map(|(_, account)| u128::from(account.balance.0))
            .sum();
        prop_assert_eq!(total, u128::from(state.supply.0));
        prop_assert_eq!(state.supply, Amount(BALANCE * ACCOUNTS as u64));
        for (index, account) in self.accounts.iter().enumerate() {
            let balance = state.account(&account.id).unwrap().balance.0;
            prop_assert_eq!(balance, self.model.balances[index]);
            // A wrapped balance would be near u64::MAX.
            prop_assert!(balance <= BALANCE * ACCOUNTS as u64);
        }
        // Memory is bounded: only unexpired pairs are remembered.
        prop_assert_eq!(state.nonce_count(), self.model.remembered.len());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ledger_invariants_hold_under_random_blocks(seed in any::<u64>(), steps in vec(step(), 1..20)) {
        let mut world = World::new(seed);
        for step in &steps {
            world.run(step)?;
        }
    }
}

// ---- codec ----

fn bytes32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn signature() -> impl Strategy<Value = Signature> {
    (bytes32(), bytes32()).prop_map(|(left, right)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&left);
        bytes[32..].copy_from_slice(&right);
        Signature(bytes)
    })
}

fn chain_id() -> impl Strategy<Value = ChainId> {
    "[a-z0-9-]{1,32}".prop_map(|name| ChainId::new(&name).unwrap())
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (
        any::<u8>(),
        chain_id(),
        bytes32(),
        bytes32(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(version, chain_id, payer, payee, amount, nonce, expires_at, memo)| Transfer {
                version,
                chain_id,
                payer: AccountId(payer),
                payee: AccountId(payee),
                amount: Amount(amount),
                nonce: Nonce(nonce),
                expires_at: TimeMs(expires_at),
                memo: Memo(memo),
            },
        )
}

fn capsule() -> impl Strategy<Value = Capsule> {
    (any::<u32>(), bytes32(), bytes32(), vec(any::<u8>(), 64)).prop_map(
        |(epoch, u, u_bar, proof)| Capsule {
            epoch,
            u: Point(u),
            u_bar: Point(u_bar),
            proof: proof.try_into().unwrap(),
        },
    )
}

fn transfer_op() -> impl Strategy<Value = TransferOp> {
    (
        transfer(),
        signature(),
        (capsule(), vec(any::<u8>(), IDENTITY_CREDENTIAL_BODY_BYTES)),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(
            |(transfer, tx_credential, (capsule, body), payer_ok, payee_ok)| TransferOp {
                request: TransactionRequest {
                    transfer,
                    tx_credential,
                    identity_credential: IdentityCredential {
                        capsule,
                        body: body.try_into().unwrap(),
                    },
                },
                payer_ok,
                payee_ok,
            },
        )
}

fn order() -> impl Strategy<Value = DisclosureOrder> {
    (
        any::<u8>(),
        chain_id(),
        bytes32(),
        bytes32(),
        bytes32(),
        any::<u64>(),
    )
        .prop_map(
            |(version, chain_id, transfer, basis, requester, expires_at)| DisclosureOrder {
                version,
                chain_id,
                transfer: Hash32(transfer),
                basis_hash: Hash32(basis),
                requester_key: X25519PublicKey(requester),
                expires_at: TimeMs(expires_at),
            },
        )
}

fn disclosure_order() -> impl Strategy<Value = OrderOp> {
    (order(), vec((any::<u16>(), signature()), 0..5)).prop_map(|(order, signers)| OrderOp {
        order,
        signatures: signers
            .into_iter()
            .map(|(auditor, signature)| AuditorSignature {
                auditor: AuditorId(auditor),
                signature,
            })
            .collect(),
    })
}

fn share_record() -> impl Strategy<Value = ShareRecord> {
    (order(), any::<u16>(), bytes32(), signature()).prop_map(
        |(order, holder, sealed, signature)| ShareRecord {
            order,
            holder,
            sealed_hash: Hash32(sealed),
            signature,
        },
    )
}

fn sealed_record() -> impl Strategy<Value = SealedIdentityRecord> {
    (capsule(), vec(any::<u8>(), IDENTITY_RECORD_BODY_BYTES)).prop_map(|(capsule, body)| {
        SealedIdentityRecord {
            capsule,
            body: body.try_into().unwrap(),
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            bytes32(),
            bytes32(),
            any::<u16>(),
            signature(),
            signature(),
            sealed_record()
        )
            .prop_map(
                |(account, key, bank, holder_signature, bank_signature, identity_record)| {
                    Op::OpenAccount(OpenAccount {
                        account: AccountId(account),
                        tx_key: PublicKey(key),
                        bank: BankId(bank),
                        holder_signature,
                        bank_signature,
                        identity_record: Box::new(identity_record),
                    })
                }
            ),
        (bytes32(), any::<u64>(), any::<u64>()).prop_map(|(to, amount, reference)| Op::Issue(
            Issue {
                to: AccountId(to),
                amount: Amount(amount),
                reference
            }
        )),
        transfer_op().prop_map(Op::Transfer),
        (
            bytes32(),
            bytes32(),
            any::<u64>(),
            any::<u64>(),
            signature(),
            signature()
        )
            .prop_map(
                |(account, key, nonce, expires_at, old_signature, new_signature)| {
                    Op::RotateKey(RotateKey {
                        account: AccountId(account),
                        new_key: PublicKey(key),
                        nonce: Nonce(nonce),
                        expires_at: TimeMs(expires_at),
                        old_signature,
                        new_signature,
                    })
                }
            ),
        (bytes32(), any::<u64>(), any::<u64>(), signature()).prop_map(
            |(account, nonce, expires_at, signature)| Op::CloseAccount(CloseAccount {
                account: AccountId(account),
                nonce: Nonce(nonce),
                expires_at: TimeMs(expires_at),
                signature,
            })
        ),
        disclosure_order().prop_map(Op::DisclosureOrder),
        share_record().prop_map(Op::DisclosureShare),
    ]
}

fn attestation() -> impl Strategy<Value = BatchAttestation> {
    (
        any::<bool>(),
        any::<u16>(),
        vec(bytes32(), 0..4),
        signature(),
    )
        .prop_map(|(payer, bank, ids, signature)| BatchAttestation {
            kind: if payer {
                AttestationKind::PayerOk
            } else {
                AttestationKind::PayeeOk
            },
            bank: BankId(bank),
            ids: ids.into_iter().map(Hash32).collect(),
            signature,
        })
}

fn block() -> impl Strategy<Value = Block> {
    (
        (
            any::<u8>(),
            chain_id(),
            any::<u64>(),
            bytes32(),
            any::<u64>(),
        ),
        (
            bytes32(),
            bytes32(),
            bytes32(),
            any::<u32>(),
            bytes32(),
            signature(),
        ),
        vec(attestation(), 0..3),
        vec(op(), 0..4),
    )
        .prop_map(
            |(
                (version, chain_id, height, parent, time),
                (op_root, attestation_root, state_root, op_count, proposer, signature),
                attestations,
                ops,
            )| Block {
                signed: SignedHeader {
                    header: BlockHeader {
                        version,
                        chain_id,
                        height: Height(height),
                        parent: Hash32(parent),
                        time: TimeMs(time),
                        op_root: Hash32(op_root),
                        attestation_root: Hash32(attestation_root),
                        state_root: Hash32(state_root),
                        op_count,
                    },
                    signer: PublicKey(proposer),
                    signature,
                },
                attestations,
                ops,
            },
        )
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<u8>(),
        bytes32(),
        any::<u16>(),
        vec(any::<u8>(), 24),
        vec(any::<u8>(), 0..600),
    )
        .prop_map(|(version, account, bank, nonce, ciphertext)| Envelope {
            version,
            account: AccountId(account),
            bank: BankId(bank),
            nonce: nonce.try_into().unwrap(),
            ciphertext,
        })
}

/// Decoding never panics; whatever decodes is the canonical encoding of what it decoded.
fn check_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(block) = Block::decode(bytes) {
        prop_assert_eq!(block.encode().unwrap(), bytes);
    }
    if let Ok(envelope) = Envelope::decode(bytes) {
        prop_assert_eq!(envelope.encode().unwrap(), bytes);
    }
    if let Ok(op) = codec::decode::<Op>(bytes, BLOCK_BYTES_MAX) {
        prop_assert_eq!(codec::encode(&op).unwrap(), bytes);
    }
    if let Ok(proof) = codec::decode::<MerkleProof>(bytes, 4096) {
        prop_assert_eq!(codec::encode(&proof).unwrap(), bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn transfers_round_trip(transfer in transfer()) {
        let bytes = codec::encode(&transfer).unwrap();
        let decoded: Transfer = codec::decode(&bytes, 4096).unwrap();
        prop_assert_eq!(decoded.id().unwrap(), transfer.id().unwrap());
        prop_assert_eq!(decoded, transfer);
    }

    #[test]
    fn ops_round_trip(op in op()) {
        let bytes = codec::encode(&op).unwrap();
        let decoded: Op = codec::decode(&bytes, BLOCK_BYTES_MAX).unwrap();
        prop_assert_eq!(decoded.hash().unwrap(), op.hash().unwrap());
        prop_assert_eq!(decoded, op);
        // A truncated op never decodes, and one more byte is refused.
        prop_assert!(codec::decode::<Op>(&bytes[..bytes.len() - 1], BLOCK_BYTES_MAX).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(codec::decode::<Op>(&longer, BLOCK_BYTES_MAX).is_err());
    }

    #[test]
    fn blocks_and_envelopes_round_trip(block in block(), envelope in envelope()) {
        prop_assert_eq!(Block::decode(&block.encode().unwrap()).unwrap(), block);
        prop_assert_eq!(Envelope::decode(&envelope.encode().unwrap()).unwrap(), envelope);
    }

    #[test]
    fn corrupted_encodings_never_panic(
        block in block(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = block.encode().unwrap();
        let mut edited = bytes.clone();
        for (at, value) in &edits {
            let at = at.index(edited.len());
            edited[at] = *value;
        }
        check_decoders(&edited)?;
        check_decoders(&bytes[..cut.index(bytes.len())])?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..3_000)) {
        check_decoders(&bytes)?;
    }
}
