//! `apply` refuses every broken block with the violation that names what broke.
//!
//! Each test starts from a valid block made by the testkit (real keys, credentials and
//! attestations), alters one thing, and checks the exact [`Violation`] and where it is
//! reported. Where a field is covered by a signature, the alteration is tried twice: as a
//! forger would send it (the signature no longer verifies) and re-signed by the key that
//! covers it (a rogue signer), so the deeper rule is reached too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{forge, reseal, resign, sign_request};
use halfveil_ledger::build::propose;
use halfveil_ledger::crypto;
use halfveil_ledger::hash::{Domain, Hash32};
use halfveil_ledger::testkit::{TestAccount, TestChain};
use halfveil_ledger::threshold::tdh2;
use halfveil_ledger::{
    apply, apply_deferred, attestation_message, AccountId, Amount, ApplyError, AttestationKind,
    AuditorId, AuditorSignature, BankId, BatchAttestation, Block, ChainId, CloseAccount,
    CryptoError, DisclosureOrder, Height, Issue, Memo, Nonce, Op, OpenAccount, OrderOp, RotateKey,
    ShareRecord, Signature, TimeMs, TransactionRequest, Transfer, TransferOp, Violation,
    X25519PublicKey, VERSION,
};
use rand::rngs::OsRng;

const BALANCE: u64 = 1_000;

/// Two banks, three auditors (threshold 2), four funded accounts: 0 and 1 at bank 0, 2 and 3
/// at bank 1.
struct Fixture {
    chain: TestChain,
    accounts: Vec<TestAccount>,
}

fn fixture() -> Fixture {
    let mut chain = TestChain::new(77, 2, 3, 2);
    chain.seal_identity = false;
    let accounts = chain.fund_accounts(2, BALANCE).unwrap();
    assert_eq!(accounts.len(), 4);
    assert_eq!(accounts[0].bank, BankId(0));
    assert_eq!(accounts[3].bank, BankId(1));
    Fixture { chain, accounts }
}

impl Fixture {
    /// A request with every field chosen, signed by the payer's key.
    fn signed(
        &self,
        payer: usize,
        payee: AccountId,
        amount: u64,
        nonce: u64,
        expires_at: TimeMs,
    ) -> TransactionRequest {
        let transfer = Transfer {
            version: VERSION,
            chain_id: self.chain.params.chain_id.clone(),
            payer: self.accounts[payer].id,
            payee,
            amount: Amount(amount),
            nonce: Nonce(nonce),
            expires_at,
            memo: Memo(b"test".to_vec()),
        };
        let mut request = TransactionRequest {
            tx_credential: Signature([0; 64]),
            transfer,
            identity_credential: common::placeholder_credential(&self.chain),
        };
        sign_request(&self.accounts[payer].tx_key, &mut request);
        request
    }

    /// A request from `payer` to `payee` with the next nonce and the default expiry.
    fn pay(&mut self, payer: usize, payee: usize, amount: u64) -> TransactionRequest {
        let payee = self.accounts[payee].id;
        self.chain
            .request(&mut self.accounts[payer], &payee, amount)
    }

    /// The reference block: op 0 pays 100 from account 0 (bank 0) to 2 (bank 1), op 1 pays 50
    /// from 3 (bank 1) to 1 (bank 0). Attestations: 0 PayerOk bank 0, 1 PayerOk bank 1,
    /// 2 PayeeOk bank 0, 3 PayeeOk bank 1.
    fn transfer_block(&mut self) -> Block {
        let requests = vec![self.pay(0, 2, 100), self.pay(3, 1, 50)];
        let (attestations, ops) = self.chain.transfer_ops(requests);
        let (block, _) = self.chain.build(attestations, ops).unwrap();
        block
    }

    fn apply(&self, block: &Block) -> Result<halfveil_ledger::StateChange, ApplyError> {
        apply(&self.chain.params, &self.chain.state, block)
    }

    /// A block of `requests` with honest attestations, forged past `propose` (which would
    /// refuse it), so `apply` judges it.
    fn block_of(&self, requests: Vec<TransactionRequest>) -> Block {
        let (attestations, ops) = self.chain.transfer_ops(requests);
        forge(&self.chain, self.chain.next_time(), attestations, ops)
    }

    /// A block of one account opening, forged past `propose`, so `apply` judges it.
    fn opening_block(&self, open: OpenAccount) -> Block {
        let chain = &self.chain;
        forge(
            chain,
            chain.next_time(),
            Vec::new(),
            vec![Op::OpenAccount(open)],
        )
    }

    /// Builds, signs and commits a block at `time`.
    fn commit_at(&mut self, time: TimeMs, attestations: Vec<BatchAttestation>, ops: Vec<Op>) {
        let proposal = propose(
            &self.chain.params,
            &self.chain.state,
            time,
            attestations,
            ops,
        )
        .unwrap();
        let (block, change) = proposal.sign(&self.chain.validator).unwrap();
        let checked = self.apply(&block).unwrap();
        assert_eq!(checked.state_root, change.state_root);
        self.chain
            .state
            .commit(&change, block.header().hash().unwrap());
    }

    fn commit_requests(&mut self, requests: Vec<TransactionRequest>) {
        let (attestations, ops) = self.chain.transfer_ops(requests);
        let time = self.chain.next_time();
        self.commit_at(time, attestations, ops);
    }

    fn balance(&self, account: usize) -> u64 {
        self.chain
            .state
            .account(&self.accounts[account].id)
            .unwrap()
            .balance
            .0
    }
}

/// Rogue banks: new honest attestations over the (altered) requests, then a rogue IM.
fn reattest(chain: &TestChain, block: &mut Block) {
    let requests = block
        .ops
        .iter()
        .map(|op| transfer_op(op).request.clone())
        .collect();
    let (attestations, ops) = chain.transfer_ops(requests);
    block.attestations = attestations;
    block.ops = ops;
    reseal(chain, block);
}

/// A bank re-signs attestation `index` as it now reads.
fn bank_resigns(chain: &TestChain, block: &mut Block, index: usize) {
    let attestation = &mut block.attestations[index];
    let message = attestation_message(
        &chain.params.chain_id,
        attestation.kind,
        attestation.bank,
        &attestation.ids,
    )
    .unwrap();
    attestation.signature = crypto::sign(&chain.banks[usize::from(attestation.bank.0)], &message);
}

fn transfer_op(op: &Op) -> &TransferOp {
    match op {
        Op::Transfer(transfer) => transfer,
        other => panic!("expected a transfer op, found {}", other.kind()),
    }
}

fn transfer_op_mut(block: &mut Block, index: usize) -> &mut TransferOp {
    match &mut block.ops[index] {
        Op::Transfer(transfer) => transfer,
        other => panic!("expected a transfer op, found {}", other.kind()),
    }
}

fn transfer_mut(block: &mut Block, index: usize) -> &mut Transfer {
    &mut transfer_op_mut(block, index).request.transfer
}

/// Asserts `apply` refuses `$block` at `$op` (None: header or attestations) with a violation
/// matching `$pattern`.
macro_rules! assert_rejected {
    ($fixture:expr, $block:expr, $op:expr, $pattern:pat $(if $guard:expr)?) => {{
        let block: &Block = &$block;
        let error = $fixture.apply(block).expect_err("the block must be rejected");
        assert!(
            matches!(error.violation, $pattern $(if $guard)?),
            "unexpected violation: {error:?}"
        );
        assert_eq!(error.op, $op, "violation reported at the wrong op: {error:?}");
        assert_eq!(error.height, block.height());
        error
    }};
}

#[test]
fn a_valid_transfer_block_applies() {
    let mut fixture = fixture();
    let block = fixture.transfer_block();
    let change = fixture.apply(&block).unwrap();
    assert_eq!(change.state_root, block.header().state_root);
    assert_eq!(change.op_root, block.header().op_root);
    assert_eq!(change.transfers.len(), 2);
    assert_eq!(change.nonces_added.len(), 2);
    // The forger's roots are the real ones.
    let forged = forge(
        &fixture.chain,
        block.header().time,
        block.attestations.clone(),
        block.ops.clone(),
    );
    assert_eq!(forged.header().op_root, block.header().op_root);
    assert_eq!(
        forged.header().attestation_root,
        block.header().attestation_root
    );

    let supply = fixture.chain.state.supply;
    fixture
        .chain
        .state
        .commit(&change, block.header().hash().unwrap());
    assert_eq!(fixture.chain.state.height, Height(2));
    assert_eq!(fixture.balance(0), BALANCE - 100);
    assert_eq!(fixture.balance(2), BALANCE + 100);
    assert_eq!(fixture.balance(3), BALANCE - 50);
    assert_eq!(fixture.balance(1), BALANCE + 50);
    assert_eq!(fixture.chain.state.supply, supply);
    assert!(fixture
        .chain
        .state
        .nonce_used(&fixture.accounts[0].id, Nonce(0)));
    // The same block again is now at the wrong height.
    assert_rejected!(fixture, block, None, Violation::WrongHeight { .. });
}

#[test]
fn a_block_with_real_identity_credentials_applies() {
    let mut fixture = fixture();
    fixture.chain.seal_identity = true;
    let block = fixture.transfer_block();
    let change = fixture.apply(&block).unwrap();
    assert_eq!(change.state_root, block.header().state_root);
    let op = transfer_op(&block.ops[0]);
    let id = op.request.transfer.id().unwrap();
    let chain = &fixture.chain;
    let key = &chain.params.disclosure_key;
    let label = crypto::credential_label(&chain.params.chain_id, &id);
    let credential = &op.request.identity_credential;
    let shares: Vec<_> = chain.holders[..usize::from(key.threshold)]
        .iter()
        .map(|holder| {
            tdh2::share(
                key,
                holder,
                &label,
                &credential.capsule,
                &credential.body,
                &mut OsRng,
            )
            .unwrap()
        })
        .collect();
    let signature =
        crypto::open_identity_credential(key, &chain.params.chain_id, &id, credential, &shares)
            .unwrap();
    // One share short opens nothing.
    assert!(crypto::open_identity_credential(
        key,
        &chain.params.chain_id,
        &id,
        credential,
        &shares[1..],
    )
    .is_err());
    crypto::verify(
        &crypto::public_key(&fixture.accounts[0].identity_key),
        &crypto::identity_signature_message(&id),
        &signature,
    )
    .unwrap();
}

#[test]
fn every_header_field_is_checked() {
    let mut fixture = fixture();
    let base = fixture.transfer_block();
    let chain = &fixture.chain;
    let head = chain.state.height;

    let mut block = base.clone();
    block.signed.header.version = 9;
    assert_rejected!(fixture, block, None, Violation::BlockVersion { version: 9 });

    let mut block = base.clone();
    block.signed.header.chain_id = ChainId::new("halfveil-other").unwrap();
    resign(chain, &mut block);
    assert_rejected!(fixture, block, None, Violation::WrongChain { .. });

    for height in [Height(0), head, Height(head.0 + 2), Height(u64::MAX)] {
        let mut block = base.clone();
        block.signed.header.height = height;
        resign(chain, &mut block);
        let error = fixture.apply(&block).unwrap_err();
        assert_eq!(
            error.violation,
            Violation::WrongHeight {
                found: height,
                head
            }
        );
    }

    let mut block = base.clone();
    block.signed.header.parent = Hash32([1; 32]);
    resign(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::WrongParent { found, expected } if found == Hash32([1; 32]) && expected == chain.state.head_hash
    );

    for time in [chain.state.time, TimeMs(chain.state.time.0 - 1), TimeMs(0)] {
        let mut block = base.clone();
        block.signed.header.time = time;
        resign(chain, &mut block);
        assert_rejected!(fixture, block, None, Violation::TimeNotIncreasing { .. });
    }
    // A later time is the IM's choice: unsigned it is refused, signed it is a valid block.
    let mut block = base.clone();
    block.signed.header.time = TimeMs(base.header().time.0 + 5);
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);
    resign(chain, &mut block);
    fixture.apply(&block).unwrap();

    let mut block = base.clone();
    block.signed.header.op_root = Hash32([2; 32]);
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);
    resign(chain, &mut block);
    assert_rejected!(fixture, block, None, Violation::OpRootMismatch { .. });

    let mut block = base.clone();
    block.signed.header.attestation_root = Hash32([3; 32]);
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);
    resign(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::AttestationRootMismatch { .. }
    );

    let mut block = base.clone();
    block.signed.header.state_root = Hash32([4; 32]);
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);
    resign(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::StateRootMismatch { header, computed } if header == Hash32([4; 32]) && computed == base.header().state_root
    );

    for op_count in [0, 1, 3, u32::MAX] {
        let mut block = base.clone();
        block.signed.header.op_count = op_count;
        resign(chain, &mut block);
        assert_rejected!(
            fixture,
            block,
            None,
            Violation::OpCountMismatch { header, body: 2 } if header == op_count
        );
    }

    // A signer that is not a genesis IM key, even with that key's valid signature.
    let impostor = crypto::generate_signing_key(&mut fixture.chain.rng.clone());
    let chain = &fixture.chain;
    let mut block = base.clone();
    block.signed.signer = crypto::public_key(&impostor);
    assert_rejected!(fixture, block, None, Violation::UnknownSigner);
    block.signed.signature = crypto::sign(&impostor, &block.header().hash().unwrap());
    assert_rejected!(fixture, block, None, Violation::UnknownSigner);

    let mut block = base.clone();
    block.signed.signature.0[7] ^= 0x40;
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);
    let mut block = base.clone();
    block.signed.signature = crypto::sign(&impostor, &block.header().hash().unwrap());
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);
    let mut block = base.clone();
    block.signed.signature = crypto::sign(&chain.validator, &Hash32([5; 32]));
    assert_rejected!(fixture, block, None, Violation::BadBlockSignature);

    // The untouched block still applies: every rejection above came from the one change.
    fixture.apply(&base).unwrap();
}

#[test]
fn every_transfer_field_is_checked() {
    let mut fixture = fixture();
    let base = fixture.transfer_block();
    let chain = &fixture.chain;
    let now = base.header().time;
    let limit_ms = chain.params.limits.transfer_expiry_ms_max;

    // Each case: alter op 0's transfer; the rogue IM reseals the header.
    let altered = |alter: &dyn Fn(&mut Transfer)| {
        let mut block = base.clone();
        alter(transfer_mut(&mut block, 0));
        reseal(chain, &mut block);
        block
    };

    let block = altered(&|transfer| transfer.version = 9);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::TransferVersion { version: 9 }
    );

    let block = altered(&|transfer| transfer.chain_id = ChainId::new("halfveil-other").unwrap());
    assert_rejected!(fixture, block, Some(0), Violation::WrongChain { .. });

    let same_bank_payer = fixture.accounts[1].id;
    let block = altered(&|transfer| transfer.payer = same_bank_payer);
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });
    let other_bank_payer = fixture.accounts[3].id;
    let block = altered(&|transfer| transfer.payer = other_bank_payer);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::WrongAttestingBank {
            index: 0,
            found: BankId(0),
            expected: BankId(1)
        }
    );

    let other_payee = fixture.accounts[3].id;
    let block = altered(&|transfer| transfer.payee = other_payee);
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });

    let block = altered(&|transfer| transfer.amount = Amount(101));
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });
    let block = altered(&|transfer| transfer.amount = Amount(0));
    assert_rejected!(fixture, block, Some(0), Violation::ZeroAmount);

    let block = altered(&|transfer| transfer.nonce = Nonce(9));
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });

    let block = altered(&|transfer| transfer.expires_at = TimeMs(transfer.expires_at.0 + 1));
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });
    let block = altered(&|transfer| transfer.expires_at = now);
    assert_rejected!(fixture, block, Some(0), Violation::Expired { expires_at, time } if expires_at == now && time == now);
    let block = altered(&|transfer| transfer.expires_at = TimeMs(now.0 + limit_ms + 1));
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::ExpiryTooFar {
            limit_ms: 600_000,
            ..
        }
    );

    let block = altered(&|transfer| transfer.memo = Memo(b"tset".to_vec()));
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });
    let block = altered(&|transfer| transfer.memo = Memo(vec![b'm'; 65]));
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::MemoTooLong {
            bytes: 65,
            limit: 64
        }
    );

    // Payer, payee, amount, nonce and expiry re-attested by rogue banks: the payer's key
    // never signed the new id.
    let new_payer = fixture.accounts[1].id;
    let alterations: [(&str, Alteration); 5] = [
        (
            "payer",
            Box::new(move |transfer| transfer.payer = new_payer),
        ),
        (
            "payee",
            Box::new(move |transfer| transfer.payee = other_payee),
        ),
        ("amount", Box::new(|transfer| transfer.amount = Amount(999))),
        ("nonce", Box::new(|transfer| transfer.nonce = Nonce(77))),
        (
            "expiry",
            Box::new(|transfer| transfer.expires_at = TimeMs(transfer.expires_at.0 - 1)),
        ),
    ];
    for (name, alter) in alterations {
        let mut block = base.clone();
        alter(transfer_mut(&mut block, 0));
        reattest(chain, &mut block);
        let error = fixture.apply(&block).unwrap_err();
        assert_eq!(
            error.violation,
            Violation::BadTxCredential,
            "{name}: {error:?}"
        );
        assert_eq!(error.op, Some(0), "{name}");
    }
}

#[test]
fn credentials_of_a_transfer_are_checked() {
    let mut fixture = fixture();
    let base = fixture.transfer_block();
    let chain = &fixture.chain;

    let mut block = base.clone();
    transfer_op_mut(&mut block, 0).request.tx_credential.0[33] ^= 1;
    assert_rejected!(fixture, block, Some(0), Violation::BadTxCredential);

    // A valid signature, by another account's key.
    let mut block = base.clone();
    let op = transfer_op_mut(&mut block, 0);
    sign_request(&fixture.accounts[1].tx_key, &mut op.request);
    reseal(chain, &mut block);
    assert_rejected!(fixture, block, Some(0), Violation::BadTxCredential);

    // Op 1's credential broken: reported at op 1.
    let mut block = base.clone();
    transfer_op_mut(&mut block, 1).request.tx_credential.0[0] ^= 1;
    reseal(chain, &mut block);
    assert_rejected!(fixture, block, Some(1), Violation::BadTxCredential);

    let mut block = base.clone();
    transfer_op_mut(&mut block, 0)
        .request
        .identity_credential
        .capsule
        .epoch = 9;
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::IdentityCredentialEpoch {
            epoch: 9,
            expected: 0
        }
    );

    // The identity credential is opaque to every node, but the transaction credential
    // covers its hash: a bank or IM that swaps the credential breaks the payer's signature,
    // even in a block re-sealed around it.
    let mut block = base.clone();
    transfer_op_mut(&mut block, 0)
        .request
        .identity_credential
        .body[50] ^= 1;
    assert_rejected!(fixture, block, Some(0), Violation::BadTxCredential);
    reseal(chain, &mut block);
    assert_rejected!(fixture, block, Some(0), Violation::BadTxCredential);
}

#[test]
fn every_attestation_field_is_checked() {
    let mut fixture = fixture();
    let base = fixture.transfer_block();
    let chain = &fixture.chain;
    assert_eq!(base.attestations.len(), 4);
    assert_eq!(base.attestations[0].kind, AttestationKind::PayerOk);
    assert_eq!(base.attestations[0].bank, BankId(0));
    let op0_id = transfer_op(&base.ops[0]).request.transfer.id().unwrap();

    // ids: the bank's signature no longer covers them; re-signed, the transfer is uncovered.
    let mut block = base.clone();
    block.attestations[0].ids.retain(|id| *id != op0_id);
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::BadAttestationSignature { index: 0 }
    );
    bank_resigns(chain, &mut block, 0);
    reseal(chain, &mut block);
    assert_rejected!(fixture, block, Some(0), Violation::NotAttested { index: 0 });

    let mut block = base.clone();
    block.attestations[3].ids.push(Hash32([6; 32]));
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::BadAttestationSignature { index: 3 }
    );

    let mut block = base.clone();
    block.attestations[2].signature.0[12] ^= 1;
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::BadAttestationSignature { index: 2 }
    );

    let mut block = base.clone();
    block.attestations[1].bank = BankId(7);
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::UnknownBank {
            index: 1,
            bank: BankId(7)
        }
    );

    let mut block = base.clone();
    block.attestations[0].bank = BankId(1);
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::BadAttestationSignature { index: 0 }
    );
    bank_resigns(chain, &mut block, 0);
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::WrongAttestingBank {
            index: 0,
            found: BankId(1),
            expected: BankId(0)
        }
    );

    let mut block = base.clone();
    block.attestations[0].kind = AttestationKind::PayeeOk;
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        None,
        Violation::BadAttestationSignature { index: 0 }
    );
    bank_resigns(chain, &mut block, 0);
    reseal(chain, &mut block);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::WrongAttestationKind {
            index: 0,
            found: AttestationKind::PayeeOk,
            expected: AttestationKind::PayerOk
        }
    );

    // The attestation ids limit of genesis.
    let mut strict = fixture.chain.params.clone();
    strict.limits.attestation_ids_max = 0;
    let error = apply(&strict, &fixture.chain.state, &base).unwrap_err();
    assert_eq!(
        error.violation,
        Violation::AttestationTooLarge {
            index: 0,
            count: 1,
            limit: 0
        }
    );
}

#[test]
fn attestation_references_are_checked() {
    let mut fixture = fixture();
    let base = fixture.transfer_block();
    let chain = &fixture.chain;
    // Op 0: payer bank 0 (attestation 0), payee bank 1 (attestation 3).
    assert_eq!(
        (
            transfer_op(&base.ops[0]).payer_ok,
            transfer_op(&base.ops[0]).payee_ok
        ),
        (0, 3)
    );

    let with = |payer_ok: u16, payee_ok: u16| {
        let mut block = base.clone();
        let op = transfer_op_mut(&mut block, 0);
        op.payer_ok = payer_ok;
        op.payee_ok = payee_ok;
        reseal(chain, &mut block);
        block
    };
    assert_rejected!(
        fixture,
        with(3, 3),
        Some(0),
        Violation::WrongAttestationKind {
            index: 3,
            found: AttestationKind::PayeeOk,
            expected: AttestationKind::PayerOk
        }
    );
    assert_rejected!(
        fixture,
        with(1, 3),
        Some(0),
        Violation::WrongAttestingBank {
            index: 1,
            found: BankId(1),
            expected: BankId(0)
        }
    );
    assert_rejected!(
        fixture,
        with(9, 3),
        Some(0),
        Violation::MissingAttestation { index: 9 }
    );
    assert_rejected!(
        fixture,
        with(u16::MAX, 3),
        Some(0),
        Violation::MissingAttestation { index: u16::MAX }
    );
    assert_rejected!(
        fixture,
        with(0, 0),
        Some(0),
        Violation::WrongAttestationKind {
            index: 0,
            found: AttestationKind::PayerOk,
            expected: AttestationKind::PayeeOk
        }
    );
    assert_rejected!(
        fixture,
        with(0, 2),
        Some(0),
        Violation::WrongAttestingBank {
            index: 2,
            found: BankId(0),
            expected: BankId(1)
        }
    );
    assert_rejected!(
        fixture,
        with(0, 4),
        Some(0),
        Violation::MissingAttestation { index: 4 }
    );
    fixture.apply(&with(0, 3)).unwrap();
}

/// The first violation in block order wins, even when it is a signature checked in a batch
/// and a later op breaks a state rule found earlier in time.
#[test]
fn the_first_violation_in_block_order_is_reported() {
    let mut fixture = fixture();
    let mut block = fixture.transfer_block();
    transfer_op_mut(&mut block, 0).request.tx_credential.0[1] ^= 1;
    transfer_mut(&mut block, 1).amount = Amount(0);
    reseal(&fixture.chain, &mut block);
    assert_rejected!(fixture, block, Some(0), Violation::BadTxCredential);
}

#[test]
fn a_nonce_commits_once() {
    let mut fixture = fixture();
    let first = fixture.pay(0, 2, 10);
    fixture.commit_requests(vec![first.clone()]);
    assert!(fixture
        .chain
        .state
        .nonce_used(&fixture.accounts[0].id, first.transfer.nonce));

    // The same request in a later block.
    let block = fixture.block_of(vec![first.clone()]);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::Replay { account, nonce: Nonce(0) } if account == fixture.accounts[0].id
    );
    // A new transfer reusing the nonce (new amount, new signature).
    let expires_at = first.transfer.expires_at;
    let reuse = fixture.signed(0, fixture.accounts[3].id, 20, 0, expires_at);
    let block = fixture.block_of(vec![reuse]);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::Replay {
            nonce: Nonce(0),
            ..
        }
    );

    // Twice in one block: the second is the replay, whether identical or not.
    let fresh = fixture.pay(0, 2, 10);
    let block = fixture.block_of(vec![fresh.clone(), fresh.clone()]);
    assert_rejected!(
        fixture,
        block,
        Some(1),
        Violation::Replay {
            nonce: Nonce(1),
            ..
        }
    );
    let twin = fixture.signed(0, fixture.accounts[1].id, 30, 1, fresh.transfer.expires_at);
    let block = fixture.block_of(vec![fresh.clone(), twin]);
    assert_rejected!(
        fixture,
        block,
        Some(1),
        Violation::Replay {
            nonce: Nonce(1),
            ..
        }
    );
    // Another payer may use the same number.
    let other = fixture.signed(1, fixture.accounts[2].id, 5, 1, fresh.transfer.expires_at);
    fixture.commit_requests(vec![fresh, other]);
    assert_eq!(fixture.balance(0), BALANCE - 20);
}

/// Remembered pairs are dropped once they expire (memory stays bounded); the old transfer
/// cannot come back because it has expired too.
#[test]
fn expired_nonces_are_forgotten_and_their_transfers_stay_dead() {
    let mut fixture = fixture();
    let first = fixture.pay(0, 2, 10);
    let expires_at = first.transfer.expires_at;
    fixture.commit_requests(vec![first.clone()]);
    assert_eq!(fixture.chain.state.nonce_count(), 1);

    // A block at the expiry time: the pair is forgotten, the transfer is expired.
    let (attestations, ops) = fixture.chain.transfer_ops(vec![first.clone()]);
    let block = forge(&fixture.chain, expires_at, attestations, ops);
    assert_rejected!(fixture, block, Some(0), Violation::Expired { .. });
    let issue = Op::Issue(Issue {
        to: fixture.accounts[1].id,
        amount: Amount(1),
        reference: 1,
    });
    fixture.commit_at(expires_at, Vec::new(), vec![issue]);
    assert_eq!(fixture.chain.state.nonce_count(), 0);
    assert!(!fixture
        .chain
        .state
        .nonce_used(&fixture.accounts[0].id, Nonce(0)));
    let block = fixture.block_of(vec![first]);
    assert_rejected!(fixture, block, Some(0), Violation::Expired { .. });
}

#[test]
fn expiry_bounds_are_exact() {
    let mut fixture = fixture();
    let time = fixture.chain.next_time();
    let limit_ms = fixture.chain.params.limits.transfer_expiry_ms_max;
    let payee = fixture.accounts[2].id;
    let refused = [
        TimeMs(0),
        TimeMs(time.0 - 1),
        time,
        TimeMs(time.0 + limit_ms + 1),
        TimeMs(u64::MAX),
    ];
    for (index, expires_at) in refused.iter().enumerate() {
        let request = fixture.signed(0, payee, 1, index as u64, *expires_at);
        let block = fixture.block_of(vec![request]);
        let error = fixture.apply(&block).unwrap_err();
        let expected_expired = *expires_at <= time;
        match error.violation {
            Violation::Expired {
                expires_at: found,
                time: at,
            } => {
                assert!(expected_expired, "{expires_at:?}");
                assert_eq!((found, at), (*expires_at, time));
            }
            Violation::ExpiryTooFar {
                expires_at: found,
                time: at,
                limit_ms: limit,
            } => {
                assert!(!expected_expired, "{expires_at:?}");
                assert_eq!((found, at, limit), (*expires_at, time, limit_ms));
            }
            other => panic!("{expires_at:?}: unexpected {other:?}"),
        }
    }
    // Just after the block time and exactly at the limit are both fine.
    let soon = fixture.signed(0, payee, 1, 10, TimeMs(time.0 + 1));
    let late = fixture.signed(0, payee, 1, 11, TimeMs(time.0 + limit_ms));
    fixture.commit_requests(vec![soon, late]);
    assert_eq!(fixture.balance(2), BALANCE + 2);
}

#[test]
fn balances_never_go_negative() {
    let mut fixture = fixture();
    let too_much = fixture.pay(0, 2, BALANCE + 1);
    let block = fixture.block_of(vec![too_much]);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::InsufficientFunds {
            balance: Amount(BALANCE),
            amount: Amount(1_001),
            ..
        }
    );
    let huge = fixture.pay(0, 2, u64::MAX);
    let block = fixture.block_of(vec![huge]);
    assert_rejected!(fixture, block, Some(0), Violation::InsufficientFunds { .. });

    // Two payments that fit alone but not together.
    let first = fixture.pay(0, 2, 600);
    let second = fixture.pay(0, 3, 600);
    let block = fixture.block_of(vec![first.clone(), second]);
    assert_rejected!(
        fixture,
        block,
        Some(1),
        Violation::InsufficientFunds {
            balance: Amount(400),
            amount: Amount(600),
            ..
        }
    );
    // Received money can be spent in the same block.
    let everything = fixture.pay(0, 2, BALANCE);
    let onward = fixture.pay(2, 3, 2 * BALANCE);
    fixture.commit_requests(vec![everything, onward]);
    assert_eq!(fixture.balance(0), 0);
    assert_eq!(fixture.balance(2), 0);
    assert_eq!(fixture.balance(3), 3 * BALANCE);
    let nothing_left = fixture.pay(0, 1, 1);
    let block = fixture.block_of(vec![nothing_left]);
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::InsufficientFunds {
            balance: Amount(0),
            ..
        }
    );
}

#[test]
fn self_and_unknown_accounts_are_refused() {
    let mut fixture = fixture();
    let to_self = fixture.pay(0, 0, 5);
    let block = fixture.block_of(vec![to_self]);
    assert_rejected!(fixture, block, Some(0), Violation::SelfTransfer);

    let nobody = AccountId([0xee; 32]);
    let request = fixture.chain.request(&mut fixture.accounts[0], &nobody, 5);
    let block = fixture.block_of(vec![request]);
    assert_rejected!(fixture, block, Some(0), Violation::UnknownAccount { account } if account == nobody);

    // A payer whose account was never opened.
    let (mut stranger, _) = fixture.chain.new_account(BankId(0));
    let payee = fixture.accounts[2].id;
    let request = fixture.chain.request(&mut stranger, &payee, 5);
    let block = fixture.block_of(vec![request]);
    assert_rejected!(fixture, block, Some(0), Violation::UnknownAccount { account } if account == stranger.id);

    let issue = Op::Issue(Issue {
        to: nobody,
        amount: Amount(1),
        reference: 9,
    });
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![issue],
    );
    assert_rejected!(fixture, block, Some(0), Violation::UnknownAccount { .. });
}

fn close_op(chain: &TestChain, account: &TestAccount, nonce: u64) -> Op {
    let mut close = CloseAccount {
        account: account.id,
        nonce: Nonce(nonce),
        expires_at: TimeMs(chain.next_time().0 + 1_000),
        signature: Signature([0; 64]),
    };
    close.signature = crypto::sign(
        &account.tx_key,
        &close.message(&chain.params.chain_id).unwrap(),
    );
    Op::CloseAccount(close)
}

#[test]
fn a_closed_account_neither_pays_nor_receives() {
    let mut fixture = fixture();
    // Only an empty account closes.
    let op = close_op(&fixture.chain, &fixture.accounts[0], 50);
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![op],
    );
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::CloseNonEmpty {
            balance: Amount(BALANCE),
            ..
        }
    );

    let (mut empty, open) = fixture.chain.new_account(BankId(1));
    let mut forged = close_op(&fixture.chain, &empty, 0);
    if let Op::CloseAccount(close) = &mut forged {
        close.signature.0[2] ^= 1;
    }
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![open.clone(), forged],
    );
    assert_rejected!(fixture, block, Some(1), Violation::BadHolderSignature);

    let close = close_op(&fixture.chain, &empty, 0);
    let time = fixture.chain.next_time();
    fixture.commit_at(time, Vec::new(), vec![open, close]);
    assert!(fixture.chain.state.account(&empty.id).unwrap().closed);

    let to_closed = fixture.pay(0, 2, 1);
    let mut request = to_closed.clone();
    request.transfer.payee = empty.id;
    sign_request(&fixture.accounts[0].tx_key, &mut request);
    let block = fixture.block_of(vec![request]);
    assert_rejected!(fixture, block, Some(0), Violation::AccountClosed { account } if account == empty.id);

    let payee = fixture.accounts[0].id;
    let from_closed = fixture.chain.request(&mut empty, &payee, 1);
    let block = fixture.block_of(vec![from_closed]);
    assert_rejected!(fixture, block, Some(0), Violation::AccountClosed { account } if account == empty.id);

    let issue = Op::Issue(Issue {
        to: empty.id,
        amount: Amount(5),
        reference: 3,
    });
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![issue],
    );
    assert_rejected!(fixture, block, Some(0), Violation::AccountClosed { .. });

    let again = close_op(&fixture.chain, &empty, 1);
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![again],
    );
    assert_rejected!(fixture, block, Some(0), Violation::AccountClosed { .. });
}

#[test]
fn opening_an_account_is_checked() {
    let mut fixture = fixture();
    let (account, op) = fixture.chain.new_account(BankId(1));
    let opened = account.id;
    let Op::OpenAccount(base) = op else {
        unreachable!()
    };
    let chain = &fixture.chain;
    let block_of = |open: OpenAccount| fixture.opening_block(open);

    fixture.apply(&block_of(base.clone())).unwrap();

    let mut weak = base.clone();
    // The identity point: small order, a valid encoding.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    weak.tx_key = halfveil_ledger::PublicKey(identity);
    weak.account = AccountId::from_key(&weak.tx_key);
    assert_rejected!(
        fixture,
        block_of(weak),
        Some(0),
        Violation::BadKey {
            reason: CryptoError::WeakPublicKey
        }
    );

    let mut mismatch = base.clone();
    mismatch.account = fixture.accounts[0].id;
    assert_rejected!(
        fixture,
        block_of(mismatch),
        Some(0),
        Violation::AccountIdMismatch { .. }
    );

    let mut holder = base.clone();
    holder.holder_signature.0[9] ^= 1;
    assert_rejected!(
        fixture,
        block_of(holder),
        Some(0),
        Violation::BadHolderSignature
    );

    let mut bank = base.clone();
    bank.bank_signature.0[9] ^= 1;
    assert_rejected!(
        fixture,
        block_of(bank),
        Some(0),
        Violation::BadBankSignature
    );

    // Opened at bank 0 instead: bank 1's signature is over another message.
    let mut moved = base.clone();
    moved.bank = BankId(0);
    assert_rejected!(
        fixture,
        block_of(moved),
        Some(0),
        Violation::BadHolderSignature
    );

    let mut unknown = base.clone();
    unknown.bank = BankId(2);
    assert_rejected!(
        fixture,
        block_of(unknown),
        Some(0),
        Violation::UnknownBank {
            bank: BankId(2),
            ..
        }
    );

    // The same account twice, in one block or after it exists.
    let twice = forge(
        chain,
        chain.next_time(),
        Vec::new(),
        vec![Op::OpenAccount(base.clone()), Op::OpenAccount(base.clone())],
    );
    assert_rejected!(fixture, twice, Some(1), Violation::AccountExists { account } if account == opened);
    let mut existing = base;
    existing.tx_key = crypto::public_key(&fixture.accounts[0].tx_key);
    existing.account = fixture.accounts[0].id;
    assert_rejected!(
        fixture,
        block_of(existing),
        Some(0),
        Violation::AccountExists { .. }
    );
}

#[test]
fn a_rotated_key_replaces_the_old_one() {
    let mut fixture = fixture();
    let new_key = crypto::generate_signing_key(&mut fixture.chain.rng);
    let mut rotate = RotateKey {
        account: fixture.accounts[0].id,
        new_key: crypto::public_key(&new_key),
        nonce: Nonce(100),
        expires_at: TimeMs(fixture.chain.next_time().0 + 1_000),
        old_signature: Signature([0; 64]),
        new_signature: Signature([0; 64]),
    };
    let message = rotate.message(&fixture.chain.params.chain_id).unwrap();
    rotate.old_signature = crypto::sign(&fixture.accounts[0].tx_key, &message);
    rotate.new_signature = crypto::sign(&new_key, &message);

    let mut no_possession = rotate.clone();
    no_possession.new_signature = crypto::sign(&fixture.accounts[1].tx_key, &message);
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![Op::RotateKey(no_possession)],
    );
    assert_rejected!(fixture, block, Some(0), Violation::BadHolderSignature);
    let mut not_holder = rotate.clone();
    not_holder.old_signature = crypto::sign(&fixture.accounts[1].tx_key, &message);
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![Op::RotateKey(not_holder)],
    );
    assert_rejected!(fixture, block, Some(0), Violation::BadHolderSignature);

    let time = fixture.chain.next_time();
    fixture.commit_at(time, Vec::new(), vec![Op::RotateKey(rotate.clone())]);
    // Its nonce is used like a transfer's.
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![Op::RotateKey(rotate)],
    );
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::Replay {
            nonce: Nonce(100),
            ..
        }
    );

    let old_key_payment = fixture.pay(0, 2, 5);
    let block = fixture.block_of(vec![old_key_payment.clone()]);
    assert_rejected!(fixture, block, Some(0), Violation::BadTxCredential);
    let mut new_key_payment = old_key_payment;
    sign_request(&new_key, &mut new_key_payment);
    fixture.commit_requests(vec![new_key_payment]);
    assert_eq!(fixture.balance(0), BALANCE - 5);
}

/// A fixture with one committed transfer and a disclosure order for it.
fn disclosure_fixture() -> (Fixture, DisclosureOrder) {
    let mut fixture = fixture();
    let request = fixture.pay(0, 2, 10);
    let transfer = request.transfer.id().unwrap();
    fixture.commit_requests(vec![request]);
    let order = DisclosureOrder {
        version: VERSION,
        chain_id: fixture.chain.params.chain_id.clone(),
        transfer,
        basis_hash: Domain::DisclosureOrder.hash(b"court order 2026/17"),
        requester_key: X25519PublicKey([0x42; 32]),
        expires_at: TimeMs(fixture.chain.next_time().0 + 60_000),
    };
    (fixture, order)
}

fn disclosure(chain: &TestChain, order: &DisclosureOrder, signers: &[(u16, usize)]) -> Op {
    let hash = order.hash().unwrap();
    Op::DisclosureOrder(OrderOp {
        order: order.clone(),
        signatures: signers
            .iter()
            .map(|(auditor, key)| AuditorSignature {
                auditor: AuditorId(*auditor),
                signature: crypto::sign(&chain.auditors[*key], &hash),
            })
            .collect(),
    })
}

/// Holder `holder`'s share record for `order`, signed with `signer` (auditors 0..3 are
/// holders 1..=3, the IM's validator key signs for holder 4).
fn share_record(
    chain: &TestChain,
    order: &DisclosureOrder,
    holder: u16,
    signer: &crypto::SigningKey,
) -> Op {
    let sealed_hash = Hash32([holder as u8; 32]);
    let message = ShareRecord::message(
        &chain.params.chain_id,
        &order.hash().unwrap(),
        holder,
        &sealed_hash,
    )
    .unwrap();
    Op::DisclosureShare(ShareRecord {
        order: order.clone(),
        holder,
        sealed_hash,
        signature: crypto::sign(signer, &message),
    })
}

#[test]
fn share_records_need_a_recorded_live_order_a_known_holder_once_and_its_signature() {
    let (mut fixture, order) = disclosure_fixture();
    let chain = &fixture.chain;
    assert_eq!(chain.params.disclosure_key.holders.len(), 4);
    let block_of = |ops: Vec<Op>| forge(chain, chain.next_time(), Vec::new(), ops);
    assert_rejected!(
        fixture,
        block_of(vec![share_record(chain, &order, 1, &chain.auditors[0])]),
        Some(0),
        Violation::OrderNotRecorded { .. }
    );
    let recorded = disclosure(chain, &order, &[(0, 0), (1, 1)]);
    // In the order's own block, after it.
    fixture
        .apply(&block_of(vec![
            recorded.clone(),
            share_record(chain, &order, 4, &chain.validator),
        ]))
        .unwrap();
    let time = fixture.chain.next_time();
    fixture.commit_at(time, Vec::new(), vec![recorded]);
    let chain = &fixture.chain;
    let block_of = |ops: Vec<Op>| forge(chain, chain.next_time(), Vec::new(), ops);
    assert_rejected!(
        fixture,
        block_of(vec![share_record(chain, &order, 5, &chain.auditors[0])]),
        Some(0),
        Violation::UnknownHolder { holder: 5 }
    );
    // Auditor 0's key signing as holder 2 (auditor 1's place).
    assert_rejected!(
        fixture,
        block_of(vec![share_record(chain, &order, 2, &chain.auditors[0])]),
        Some(0),
        Violation::BadShareSignature { holder: 2 }
    );
    let first = share_record(chain, &order, 2, &chain.auditors[1]);
    assert_rejected!(
        fixture,
        block_of(vec![first.clone(), first.clone()]),
        Some(1),
        Violation::ShareRecorded { holder: 2 }
    );
    let time = fixture.chain.next_time();
    fixture.commit_at(time, Vec::new(), vec![first.clone()]);
    let chain = &fixture.chain;
    assert_rejected!(
        fixture,
        forge(chain, chain.next_time(), Vec::new(), vec![first]),
        Some(0),
        Violation::ShareRecorded { holder: 2 }
    );
    // Past the order's expiry (equality included), no share is recorded.
    let late = forge(
        chain,
        order.expires_at,
        Vec::new(),
        vec![share_record(chain, &order, 3, &chain.auditors[2])],
    );
    assert_rejected!(fixture, late, Some(0), Violation::OrderExpired { .. });
}

#[test]
fn an_identity_record_must_be_a_ciphertext_bound_to_its_account() {
    let mut fixture = fixture();
    let (_, first) = fixture.chain.new_account(BankId(0));
    let (_, second) = fixture.chain.new_account(BankId(0));
    let (Op::OpenAccount(first), Op::OpenAccount(second)) = (first, second) else {
        unreachable!()
    };
    let chain = &fixture.chain;
    let block_of = |open: OpenAccount| fixture.opening_block(open);
    // Another account's record, re-signed by the holder and the bank: the label differs.
    let mut copied = first.clone();
    copied.identity_record = second.identity_record.clone();
    assert_rejected!(
        fixture,
        block_of(copied),
        Some(0),
        Violation::BadIdentityRecord { .. }
    );
    // One byte of the body changed: the ciphertext's proof breaks.
    let mut altered = first.clone();
    altered.identity_record.body[7] ^= 1;
    assert_rejected!(
        fixture,
        block_of(altered),
        Some(0),
        Violation::BadIdentityRecord { .. }
    );
    // A valid record, but not the one the holder and the bank signed.
    let record = crypto::IdentityRecord {
        version: VERSION,
        name: "Someone Else".into(),
        national_id: "X".into(),
        fields: Vec::new(),
        identity_key: first.tx_key,
        possession: Signature([0; 64]),
    };
    let mut swapped = first.clone();
    swapped.identity_record = Box::new(
        record
            .seal(
                &chain.params.disclosure_key,
                &chain.params.chain_id,
                &first.account,
                &mut OsRng,
            )
            .unwrap(),
    );
    assert_rejected!(
        fixture,
        block_of(swapped),
        Some(0),
        Violation::BadHolderSignature
    );
    fixture.apply(&block_of(first)).unwrap();
}

#[test]
fn a_disclosure_needs_a_quorum_of_distinct_known_auditors() {
    let (mut fixture, order) = disclosure_fixture();
    let chain = &fixture.chain;
    let block_of = |ops: Vec<Op>| forge(chain, chain.next_time(), Vec::new(), ops);
    assert_eq!(chain.params.disclosure_threshold, 2);

    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &order, &[(1, 1)])]),
        Some(0),
        Violation::BelowThreshold {
            signers: 1,
            threshold: 2
        }
    );
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &order, &[])]),
        Some(0),
        Violation::BelowThreshold {
            signers: 0,
            threshold: 2
        }
    );
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &order, &[(0, 0), (0, 0)])]),
        Some(0),
        Violation::DuplicateAuditor { auditor: 0 }
    );
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &order, &[(0, 0), (5, 1)])]),
        Some(0),
        Violation::UnknownAuditor { auditor: 5 }
    );
    // Auditor 1's signature presented as auditor 2's.
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &order, &[(0, 0), (2, 1)])]),
        Some(0),
        Violation::BadAuditorSignature { auditor: 2 }
    );
    // Signatures over another order.
    let mut other = order.clone();
    other.basis_hash = Hash32([9; 32]);
    let Op::DisclosureOrder(mut swapped) = disclosure(chain, &other, &[(0, 0), (1, 1)]) else {
        unreachable!()
    };
    swapped.order = order.clone();
    assert_rejected!(
        fixture,
        block_of(vec![Op::DisclosureOrder(swapped)]),
        Some(0),
        Violation::BadAuditorSignature { auditor: 0 }
    );

    let mut expired = order.clone();
    expired.expires_at = chain.state.time;
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &expired, &[(0, 0), (1, 1)])]),
        Some(0),
        Violation::OrderExpired { .. }
    );
    let mut wrong_chain = order.clone();
    wrong_chain.chain_id = ChainId::new("halfveil-other").unwrap();
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &wrong_chain, &[(0, 0), (1, 1)])]),
        Some(0),
        Violation::OrderWrongChain { .. }
    );
    let mut version = order.clone();
    version.version = 9;
    assert_rejected!(
        fixture,
        block_of(vec![disclosure(chain, &version, &[(0, 0), (1, 1)])]),
        Some(0),
        Violation::OrderVersion { version: 9 }
    );

    // Served twice in one block.
    let served = disclosure(chain, &order, &[(2, 2), (0, 0)]);
    assert_rejected!(
        fixture,
        block_of(vec![
            served.clone(),
            disclosure(chain, &order, &[(1, 1), (2, 2)])
        ]),
        Some(1),
        Violation::OrderServed { .. }
    );
    // Served, then again in a later block.
    let time = fixture.chain.next_time();
    fixture.commit_at(time, Vec::new(), vec![served]);
    assert!(fixture.chain.state.order_served(&order.hash().unwrap()));
    let chain = &fixture.chain;
    let again = forge(
        chain,
        chain.next_time(),
        Vec::new(),
        vec![disclosure(chain, &order, &[(0, 0), (1, 1)])],
    );
    assert_rejected!(
        fixture,
        again,
        Some(0),
        Violation::OrderServed { order: hash } if hash == order.hash().unwrap()
    );
    // All three auditors is more than enough for another order.
    let mut second = order;
    second.basis_hash = Hash32([7; 32]);
    let time = fixture.chain.next_time();
    let op = disclosure(&fixture.chain, &second, &[(0, 0), (1, 1), (2, 2)]);
    fixture.commit_at(time, Vec::new(), vec![op]);
}

#[test]
fn issuing_is_bounded() {
    let mut fixture = fixture();
    let to = fixture.accounts[1].id;
    let issue = |amount: u64, reference: u64| {
        Op::Issue(Issue {
            to,
            amount: Amount(amount),
            reference,
        })
    };
    let limit = fixture.chain.params.limits.issue_amount_max;
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![issue(0, 1)],
    );
    assert_rejected!(fixture, block, Some(0), Violation::ZeroAmount);
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![issue(limit + 1, 1)],
    );
    assert_rejected!(
        fixture,
        block,
        Some(0),
        Violation::IssueTooLarge { amount, limit: found } if amount.0 == limit + 1 && found.0 == limit
    );

    // Without a per-issue limit, the total supply still cannot overflow.
    fixture.chain.params.limits.issue_amount_max = u64::MAX;
    let supply = fixture.chain.state.supply.0;
    assert_eq!(supply, 4 * BALANCE);
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![issue(u64::MAX / 2, 1), issue(u64::MAX / 2, 2)],
    );
    assert_rejected!(fixture, block, Some(1), Violation::SupplyOverflow);
    let time = fixture.chain.next_time();
    fixture.commit_at(time, Vec::new(), vec![issue(u64::MAX - supply, 3)]);
    assert_eq!(fixture.chain.state.supply, Amount(u64::MAX));
    let block = forge(
        &fixture.chain,
        fixture.chain.next_time(),
        Vec::new(),
        vec![issue(1, 4)],
    );
    assert_rejected!(fixture, block, Some(0), Violation::SupplyOverflow);
    // Transfers still work at the maximum supply.
    let request = fixture.pay(1, 0, u64::MAX - supply);
    fixture.commit_requests(vec![request]);
    assert_eq!(fixture.balance(0), u64::MAX - 3 * BALANCE);
}

#[test]
fn block_size_limits_of_genesis_hold() {
    let mut fixture = fixture();
    let block = fixture.transfer_block();
    let mut strict = fixture.chain.params.clone();
    strict.limits.block_ops_max = 1;
    let error = apply(&strict, &fixture.chain.state, &block).unwrap_err();
    assert_eq!(
        error.violation,
        Violation::TooManyOps { count: 2, limit: 1 }
    );
    let mut strict = fixture.chain.params.clone();
    strict.limits.block_bytes_max = 200;
    let error = apply(&strict, &fixture.chain.state, &block).unwrap_err();
    assert!(
        matches!(error.violation, Violation::BlockTooLarge { limit: 200, .. }),
        "{error:?}"
    );
    let mut strict = fixture.chain.params.clone();
    strict.limits.memo_bytes_max = 3;
    let error = apply(&strict, &fixture.chain.state, &block).unwrap_err();
    assert_eq!(
        error.violation,
        Violation::MemoTooLong { bytes: 4, limit: 3 }
    );
    assert_eq!(error.op, Some(0));
}

/// A named change to a transfer.
type Alteration = Box<dyn Fn(&mut Transfer)>;

/// The IM verifies credentials at admission and each batch attestation as it arrives, and
/// builds with `execute_admitted`: that skips exactly those signatures, and every receiving
/// node's `apply` still refuses a bad one.
#[test]
fn building_admitted_transfers_skips_only_their_signatures() {
    let mut fixture = fixture();
    let base = fixture.transfer_block();
    let chain = &fixture.chain;
    let time = chain.next_time();
    let height = chain.state.height.next().unwrap();
    let admitted = |block: &Block| {
        halfveil_ledger::apply::execute_admitted(
            &chain.params,
            &chain.state,
            height,
            time,
            &block.attestations,
            &block.ops,
        )
    };
    let checked = |block: &Block| {
        halfveil_ledger::execute(
            &chain.params,
            &chain.state,
            height,
            time,
            &block.attestations,
            &block.ops,
        )
    };

    let mut bad_credential = base.clone();
    transfer_op_mut(&mut bad_credential, 0)
        .request
        .tx_credential
        .0[3] ^= 1;
    assert!(
        admitted(&bad_credential).is_ok(),
        "the credential was trusted as verified"
    );
    assert_eq!(
        checked(&bad_credential).unwrap_err().violation,
        Violation::BadTxCredential
    );
    reseal(chain, &mut bad_credential);
    assert_rejected!(fixture, bad_credential, Some(0), Violation::BadTxCredential);

    let mut bad_attestation = base.clone();
    bad_attestation.attestations[0].signature.0[3] ^= 1;
    assert!(
        admitted(&bad_attestation).is_ok(),
        "the attestation was trusted as verified"
    );
    assert!(matches!(
        checked(&bad_attestation).unwrap_err().violation,
        Violation::BadAttestationSignature { index: 0 }
    ));
    reseal(chain, &mut bad_attestation);
    assert_rejected!(
        fixture,
        bad_attestation,
        None,
        Violation::BadAttestationSignature { index: 0 }
    );

    // Every other rule is still checked: a transfer pointing at no attestation.
    let mut unattested = base.clone();
    transfer_op_mut(&mut unattested, 0).payer_ok = 99;
    let refused = admitted(&unattested).unwrap_err();
    assert_eq!(
        (refused.op, refused.violation),
        (Some(0), Violation::MissingAttestation { index: 99 })
    );
}

/// `apply_deferred` checks every rule but the signatures, and the signatures it returns
/// decide as `apply` would, naming the same violation.
#[test]
fn deferred_signatures_decide_as_apply_does() {
    let mut fixture = fixture();
    let block = fixture.transfer_block();
    let chain = &fixture.chain;
    let (change, signatures) = apply_deferred(&chain.params, &chain.state, &block).unwrap();
    let applied = fixture.apply(&block).unwrap();
    assert_eq!(change.state_root, applied.state_root);
    assert_eq!(change.transfers, applied.transfers);
    assert_eq!(signatures.block_hash(), block.header().hash().unwrap());
    // The header's, two credentials, and each bank's payer-ok and payee-ok attestations.
    assert_eq!(signatures.len(), 7);
    signatures.verify().unwrap();

    // A bad credential under an honest-looking header: deferred, then refused.
    let mut bad_credential = block.clone();
    transfer_op_mut(&mut bad_credential, 1)
        .request
        .tx_credential
        .0[5] ^= 1;
    reseal(chain, &mut bad_credential);
    let (_, signatures) = apply_deferred(&chain.params, &chain.state, &bad_credential).unwrap();
    let error = signatures.verify().unwrap_err();
    assert_eq!(error, fixture.apply(&bad_credential).unwrap_err());
    assert_eq!(
        (error.op, error.violation),
        (Some(1), Violation::BadTxCredential)
    );

    // A block not signed by the IM.
    let mut unsigned = block.clone();
    unsigned.signed.signature.0[7] ^= 1;
    let (_, signatures) = apply_deferred(&chain.params, &chain.state, &unsigned).unwrap();
    let error = signatures.verify().unwrap_err();
    assert_eq!(error, fixture.apply(&unsigned).unwrap_err());
    assert_eq!(
        (error.op, error.violation),
        (None, Violation::BadBlockSignature)
    );

    // A wrong state root that is not signed either: `apply` names the signature first, and
    // so does `apply_deferred`, though it found the root first.
    let mut forged_root = block.clone();
    forged_root.signed.header.state_root = Hash32([9; 32]);
    let error = apply_deferred(&chain.params, &chain.state, &forged_root).unwrap_err();
    assert_eq!(error, fixture.apply(&forged_root).unwrap_err());
    assert_eq!(error.violation, Violation::BadBlockSignature);
}
