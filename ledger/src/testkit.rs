//! Builders of valid chains for tests and benchmarks (feature `testkit`).
//!
//! A [`TestChain`] plays every role at once (IM, banks, payers) from one seed, so a test can
//! make real blocks with real credentials and attestations, then break one field and watch
//! `apply` refuse it. Not for production: it holds every secret in one place.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::build::propose;
use crate::crypto::{self, SigningKey};
use crate::disclosure_keys::{HeldKey, HolderParty, KeyAdoption};
use crate::error::ApplyError;
use crate::hash::Hash32;
use crate::state::{ChainParams, Limits, State, StateChange};
use crate::threshold::{dkg, DisclosureKey, HolderSecret};
use crate::types::{
    attestation_message, open_account_message, AccountId, Amount, AttestationKind, AuditorId,
    BankId, BatchAttestation, Block, ChainId, Issue, Memo, Nonce, Op, OpenAccount, PublicKey,
    TimeMs, TransactionRequest, Transfer, TransferOp, VERSION,
};

/// Limits generous enough for benchmarks.
pub fn test_limits() -> Limits {
    Limits {
        block_ops_max: 20_000,
        block_bytes_max: 16 * 1024 * 1024,
        memo_bytes_max: 64,
        transfer_expiry_ms_max: 600_000,
        attestation_ids_max: 8192,
        issue_amount_max: 1_000_000_000_000,
        block_time_ahead_ms_max: 30_000,
    }
}

/// A disclosure key held by `auditors` auditors and the IM (holder `auditors + 1`), any
/// `threshold + 1` of whom open, so every opening needs at least `threshold` auditors (at
/// least two holders and a threshold of two: FROST's minimum).
pub fn test_disclosure_key<R: rand::RngCore + rand::CryptoRng>(
    auditors: usize,
    threshold: u16,
    rng: &mut R,
) -> (Vec<HolderSecret>, DisclosureKey) {
    let holders = (auditors as u16 + 1).max(2);
    let numbers: Vec<u16> = (1..=holders).collect();
    let threshold = (threshold + 1).clamp(2, holders);
    dkg::in_memory(0, &numbers, threshold, None, rng)
        .unwrap_or_else(|_| unreachable!("FROST accepts these sizes"))
}

/// A well-formed identity credential that opens to nothing: for benchmarks that do not
/// measure the payer's sealing (`apply` never opens a credential).
pub fn placeholder_credential(key: &DisclosureKey) -> crate::types::IdentityCredential {
    let point = key.group_key;
    crate::types::IdentityCredential {
        capsule: crate::threshold::tdh2::Capsule {
            epoch: key.epoch,
            u: point,
            u_bar: point,
            proof: [0u8; 64],
        },
        body: [0u8; crate::types::IDENTITY_CREDENTIAL_BODY_BYTES],
    }
}

/// A payer's keys, as a wallet would hold them.
#[derive(Debug)]
pub struct TestAccount {
    pub id: AccountId,
    pub tx_key: SigningKey,
    pub identity_key: SigningKey,
    pub bank: BankId,
    pub next_nonce: u64,
}

/// A whole network's secrets and the chain's state.
#[derive(Debug)]
pub struct TestChain {
    pub params: ChainParams,
    pub validator: SigningKey,
    /// Every disclosure key holder's share: the auditors' in auditor order, then the IM's.
    pub holders: Vec<HolderSecret>,
    pub banks: Vec<SigningKey>,
    pub auditors: Vec<SigningKey>,
    pub state: State,
    pub rng: ChaCha20Rng,
    /// Whether transfers carry a real sealed identity credential (about 90 us each) or a
    /// well-formed placeholder; `apply` cannot tell, only the IM can open them.
    pub seal_identity: bool,
}

pub const GENESIS_TIME: TimeMs = TimeMs(1_767_225_600_000);

impl TestChain {
    pub fn new(seed: u64, banks: usize, auditors: usize, threshold: u16) -> TestChain {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let validator = crypto::generate_signing_key(&mut rng);
        let bank_keys: Vec<SigningKey> = (0..banks)
            .map(|_| crypto::generate_signing_key(&mut rng))
            .collect();
        let auditor_keys: Vec<SigningKey> = (0..auditors)
            .map(|_| crypto::generate_signing_key(&mut rng))
            .collect();
        let (holders, disclosure_key) = test_disclosure_key(auditors, threshold, &mut rng);
        let holder_parties = (0..disclosure_key.holders.len())
            .map(|index| match u16::try_from(index) {
                Ok(auditor) if index < auditors => HolderParty::Auditor(AuditorId(auditor)),
                _ => HolderParty::IdentityManager,
            })
            .collect();
        let params = ChainParams {
            chain_id: ChainId::new("halfveil-test").unwrap_or_else(|_| unreachable!()),
            genesis_hash: crate::hash::Domain::Genesis.hash(&seed.to_le_bytes()),
            genesis_time: GENESIS_TIME,
            validator_keys: vec![crypto::public_key(&validator)],
            disclosure_key,
            holder_parties,
            bank_keys: bank_keys.iter().map(crypto::public_key).collect(),
            auditor_keys: auditor_keys.iter().map(crypto::public_key).collect(),
            disclosure_threshold: threshold,
            limits: test_limits(),
            initial_accounts: Vec::new(),
        };
        let state = State::genesis(&params).unwrap_or_else(|_| unreachable!());
        TestChain {
            params,
            validator,
            holders,
            banks: bank_keys,
            auditors: auditor_keys,
            state,
            rng,
            seal_identity: true,
        }
    }

    /// The time the next block will carry.
    pub fn next_time(&self) -> TimeMs {
        TimeMs(self.state.time.0 + 100)
    }

    /// A new account at `bank` and the op that opens it.
    pub fn new_account(&mut self, bank: BankId) -> (TestAccount, Op) {
        let tx_key = crypto::generate_signing_key(&mut self.rng);
        let identity_key = crypto::generate_signing_key(&mut self.rng);
        let public = crypto::public_key(&tx_key);
        let id = AccountId::from_key(&public);
        let record = crypto::IdentityRecord {
            version: VERSION,
            name: format!("Holder of {id}"),
            national_id: format!("ID-{}", self.state.account_count()),
            fields: Vec::new(),
            identity_key: crypto::public_key(&identity_key),
            possession: crypto::sign(
                &identity_key,
                &crypto::identity_possession_message(&self.params.chain_id, &id),
            ),
        };
        let key = self.state.disclosure_key().clone();
        let identity_record = record
            .seal(&key, &self.params.chain_id, &id, &mut self.rng)
            .unwrap_or_else(|_| unreachable!());
        let message = open_account_message(&self.params.chain_id, &public, bank, &identity_record)
            .unwrap_or_else(|_| unreachable!());
        let op = Op::OpenAccount(OpenAccount {
            account: id,
            tx_key: public,
            bank,
            holder_signature: crypto::sign(&tx_key, &message),
            bank_signature: crypto::sign(&self.banks[usize::from(bank.0)], &message),
            identity_record: Box::new(identity_record),
        });
        let account = TestAccount {
            id,
            tx_key,
            identity_key,
            bank,
            next_nonce: 0,
        };
        (account, op)
    }

    /// Opens `per_bank` accounts at every bank and funds each with `balance`, in one block.
    pub fn fund_accounts(
        &mut self,
        per_bank: usize,
        balance: u64,
    ) -> Result<Vec<TestAccount>, ApplyError> {
        let mut accounts = Vec::new();
        let mut ops = Vec::new();
        for bank in 0..self.banks.len() {
            for _ in 0..per_bank {
                let (account, op) = self.new_account(BankId(bank as u16));
                ops.push(op);
                ops.push(Op::Issue(Issue {
                    to: account.id,
                    amount: Amount(balance),
                    reference: accounts.len() as u64,
                }));
                accounts.push(account);
            }
        }
        for chunk in ops.chunks(self.params.limits.block_ops_max as usize) {
            self.commit(Vec::new(), chunk.to_vec())?;
        }
        Ok(accounts)
    }

    /// A signed transfer request (credential and identity credential included).
    pub fn request(
        &mut self,
        payer: &mut TestAccount,
        payee: &AccountId,
        amount: u64,
    ) -> TransactionRequest {
        let transfer = Transfer {
            version: VERSION,
            chain_id: self.params.chain_id.clone(),
            payer: payer.id,
            payee: *payee,
            amount: Amount(amount),
            nonce: Nonce(payer.next_nonce),
            expires_at: TimeMs(self.state.time.0 + 300_000),
            memo: Memo(b"test".to_vec()),
        };
        payer.next_nonce += 1;
        let id = transfer.id().unwrap_or_else(|_| unreachable!());
        let key = self.state.disclosure_key().clone();
        let identity_credential = if self.seal_identity {
            crypto::seal_identity_credential(
                &key,
                &self.params.chain_id,
                &id,
                &payer.identity_key,
                &mut self.rng,
            )
            .unwrap_or_else(|_| unreachable!())
        } else {
            placeholder_credential(&key)
        };
        let message = crate::types::transaction_credential_message(&id, &identity_credential)
            .unwrap_or_else(|_| unreachable!());
        TransactionRequest {
            tx_credential: crypto::sign(&payer.tx_key, &message),
            transfer,
            identity_credential,
        }
    }

    /// A batch attestation by `bank` over `ids`.
    pub fn attest(
        &self,
        kind: AttestationKind,
        bank: BankId,
        ids: Vec<Hash32>,
    ) -> BatchAttestation {
        let message = attestation_message(&self.params.chain_id, kind, bank, &ids)
            .unwrap_or_else(|_| unreachable!());
        BatchAttestation {
            kind,
            bank,
            ids,
            signature: crypto::sign(&self.banks[usize::from(bank.0)], &message),
        }
    }

    /// Transfer ops for `requests`, with one payer-ok attestation per payer bank and one
    /// payee-ok per payee bank, as the network would batch them.
    pub fn transfer_ops(
        &self,
        requests: Vec<TransactionRequest>,
    ) -> (Vec<BatchAttestation>, Vec<Op>) {
        let home = |id: &AccountId| {
            self.state
                .account(id)
                .map_or(BankId(0), |account| account.bank)
        };
        let mut payer_ids: BTreeMap<BankId, Vec<Hash32>> = BTreeMap::new();
        let mut payee_ids: BTreeMap<BankId, Vec<Hash32>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(requests.len());
        for request in &requests {
            let id = request.transfer.id().unwrap_or_else(|_| unreachable!());
            payer_ids
                .entry(home(&request.transfer.payer))
                .or_default()
                .push(id);
            payee_ids
                .entry(home(&request.transfer.payee))
                .or_default()
                .push(id);
            ids.push(id);
        }
        let mut attestations = Vec::new();
        let mut payer_index = BTreeMap::new();
        let mut payee_index = BTreeMap::new();
        for (bank, ids) in payer_ids {
            payer_index.insert(bank, attestations.len() as u16);
            attestations.push(self.attest(AttestationKind::PayerOk, bank, ids));
        }
        for (bank, ids) in payee_ids {
            payee_index.insert(bank, attestations.len() as u16);
            attestations.push(self.attest(AttestationKind::PayeeOk, bank, ids));
        }
        let ops = requests
            .into_iter()
            .map(|request| {
                let payer_ok = payer_index[&home(&request.transfer.payer)];
                let payee_ok = payee_index[&home(&request.transfer.payee)];
                Op::Transfer(TransferOp {
                    request,
                    payer_ok,
                    payee_ok,
                })
            })
            .collect();
        (attestations, ops)
    }

    /// Builds and signs the next block, without committing it.
    pub fn build(
        &self,
        attestations: Vec<BatchAttestation>,
        ops: Vec<Op>,
    ) -> Result<(Block, StateChange), ApplyError> {
        let proposal = propose(
            &self.params,
            &self.state,
            self.next_time(),
            attestations,
            ops,
        )?;
        Ok(proposal
            .sign(&self.validator)
            .unwrap_or_else(|_| unreachable!()))
    }

    /// Builds, signs and commits the next block to the in-memory state.
    pub fn commit(
        &mut self,
        attestations: Vec<BatchAttestation>,
        ops: Vec<Op>,
    ) -> Result<Block, ApplyError> {
        let (block, change) = self.build(attestations, ops)?;
        let hash = block.header().hash().unwrap_or_else(|_| unreachable!());
        self.state.commit(&change, hash);
        Ok(block)
    }

    /// A block of `count` transfers between `accounts` (each pays the next one).
    pub fn transfer_block_ops(
        &mut self,
        accounts: &mut [TestAccount],
        count: usize,
        amount: u64,
    ) -> (Vec<BatchAttestation>, Vec<Op>) {
        let mut requests = Vec::with_capacity(count);
        let total = accounts.len();
        for index in 0..count {
            let payee = accounts[(index + 1) % total].id;
            let request = self.request(&mut accounts[index % total], &payee, amount);
            requests.push(request);
        }
        self.transfer_ops(requests)
    }

    /// The op adopting `held`, signed by each holder's party (auditor keys, the validator).
    pub fn adoption(&self, held: HeldKey) -> Op {
        let message =
            KeyAdoption::message(&self.params.chain_id, &held).unwrap_or_else(|_| unreachable!());
        let signatures = held
            .parties
            .iter()
            .map(|party| match party {
                HolderParty::Auditor(auditor) => &self.auditors[usize::from(auditor.0)],
                HolderParty::IdentityManager => &self.validator,
            })
            .map(|key| crypto::sign(key, &message))
            .collect();
        Op::AdoptKey(KeyAdoption { held, signatures })
    }

    pub fn validator_public(&self) -> PublicKey {
        crypto::public_key(&self.validator)
    }
}

/// The encodings ZIP-215 is about: the eight small-order points (canonical), and the
/// non-canonical encodings of y = 0 and y = 1 (y + p), with either sign bit.
pub fn zip215_edge_points() -> Vec<[u8; 32]> {
    let mut points: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
        .iter()
        .map(|point| point.compress().to_bytes())
        .collect();
    for low in [0xedu8, 0xee] {
        for high in [0x7fu8, 0xff] {
            let mut bytes = [0xffu8; 32];
            bytes[0] = low;
            bytes[31] = high;
            points.push(bytes);
        }
    }
    points
}
