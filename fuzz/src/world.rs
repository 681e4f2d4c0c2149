//! The small valid chain every target works against: two banks, three auditors (threshold
//! two), four funded accounts, one empty account, a block of transfers behind it, and the
//! keys of three accounts not yet opened. Built once per process from a fixed seed, so the
//! seeds written from it (valid next blocks, receipts, envelopes) stay valid in every run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use halfveil_ledger::build::propose;
use halfveil_ledger::crypto::{self, BusinessKey, SigningKey};
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::threshold::HolderSecret;
use halfveil_ledger::{
    attestation_message, AccountId, Amount, ApplyError, AttestationKind, BankId, BatchAttestation,
    Block, ChainParams, Hash32, IdentityCredential, Issue, Memo, Nonce, Op, PublicKey,
    SealedIdentityRecord, State, StateChange, TimeMs, TransactionRequest, Transfer, VERSION,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The seed of the chain; changing it changes every seed of `apply`.
const SEED: u64 = 0x6861_6c66_7665_696c;
/// What each funded account starts with.
pub const FUNDED_BALANCE: u64 = 1_000_000;

/// An opened account and its keys.
#[derive(Debug)]
pub struct Holder {
    pub id: AccountId,
    pub tx_key: SigningKey,
    pub identity_key: SigningKey,
    pub bank: BankId,
    /// The next nonce the holder has not used.
    pub next_nonce: u64,
}

/// The chain, its state after the setup blocks and every secret.
#[derive(Debug)]
pub struct World {
    pub params: ChainParams,
    pub validator: SigningKey,
    /// The disclosure key's shares: the three auditors', then the IM's.
    pub holder_secrets: Vec<HolderSecret>,
    pub banks: Vec<SigningKey>,
    pub auditors: Vec<SigningKey>,
    /// The state after the setup blocks: what `apply`'s inputs are checked against.
    pub state: State,
    /// Opened accounts: four funded (two per bank), then one empty at bank 1.
    pub holders: Vec<Holder>,
    /// Keys of accounts not opened.
    pub pool: Vec<SigningKey>,
    /// The business key every envelope of the targets is sealed with.
    pub business_key: BusinessKey,
    /// The setup blocks (openings and issues; transfers and one more opening) and what
    /// each changed.
    pub setup: Vec<(Block, StateChange)>,
    /// The `(payer, nonce)` pairs the state remembers, with their expiry, and the served
    /// disclosure orders: what `State::from_parts` needs to rebuild it from scratch.
    pub remembered: BTreeSet<(AccountId, Nonce, TimeMs)>,
    pub served: Vec<Hash32>,
    /// An identity record sealed for an account that is none of the targets' openings.
    pub spare_record: Box<SealedIdentityRecord>,
}

/// Moves a set of remembered pairs past a block, as `State::commit` moves the state's.
pub fn remember(remembered: &mut BTreeSet<(AccountId, Nonce, TimeMs)>, change: &StateChange) {
    for pair in &change.nonces_expired {
        remembered.remove(pair);
    }
    remembered.extend(change.nonces_added.iter().copied());
}

/// The world, built on first use.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::new)
}

impl World {
    fn new() -> World {
        let mut chain = TestChain::new(SEED, 2, 3, 2);
        let mut setup = Vec::new();

        // Block 1: four accounts, two per bank, each funded.
        let mut accounts = Vec::new();
        let mut ops = Vec::new();
        for bank in [0u16, 0, 1, 1] {
            let (account, op) = chain.new_account(BankId(bank));
            ops.push(op);
            ops.push(Op::Issue(Issue {
                to: account.id,
                amount: Amount(FUNDED_BALANCE),
                reference: accounts.len() as u64,
            }));
            accounts.push(account);
        }
        let (block, change) = chain.build(Vec::new(), ops).expect("setup block 1");
        chain
            .state
            .commit(&change, block.header().hash().expect("hash"));
        setup.push((block, change));

        // Block 2: three transfers (0 -> 1, 1 -> 2, 2 -> 3) and an empty account at bank 1.
        let (attestations, mut ops) = chain.transfer_block_ops(&mut accounts, 3, 25);
        let (empty, open) = chain.new_account(BankId(1));
        ops.push(open);
        accounts.push(empty);
        let (block, change) = chain.build(attestations, ops).expect("setup block 2");
        chain
            .state
            .commit(&change, block.header().hash().expect("hash"));
        setup.push((block, change));

        let mut remembered = BTreeSet::new();
        let mut served = Vec::new();
        for (_, change) in &setup {
            remember(&mut remembered, change);
            served.extend_from_slice(&change.orders_served);
        }

        let pool = (0..3)
            .map(|_| crypto::generate_signing_key(&mut chain.rng))
            .collect();
        let spare_record = seal_record_for(&chain.params, &AccountId([0x5e; 32]), 5);
        let holders = accounts
            .into_iter()
            .map(|account| Holder {
                id: account.id,
                tx_key: account.tx_key,
                identity_key: account.identity_key,
                bank: account.bank,
                next_nonce: account.next_nonce,
            })
            .collect();
        World {
            params: chain.params,
            validator: chain.validator,
            holder_secrets: chain.holders,
            banks: chain.banks,
            auditors: chain.auditors,
            state: chain.state,
            holders,
            pool,
            business_key: BusinessKey::from_bytes([0x42; 32]),
            setup,
            remembered,
            served,
            spare_record: Box::new(spare_record),
        }
    }

    /// The first committed transfer's id and its identity credential, really sealed.
    pub fn sealed_credential(&self) -> (Hash32, IdentityCredential) {
        static SEALED: OnceLock<(Hash32, IdentityCredential)> = OnceLock::new();
        SEALED
            .get_or_init(|| {
                let request = self.sealed_request(&self.holders[0], 9_999, self.holders[1].id, 1);
                let id = request.transfer.id().expect("id");
                (id, request.identity_credential)
            })
            .clone()
    }

    /// An identity record sealed to the disclosure key for `account`, from `seed`.
    pub fn seal_record(&self, account: &AccountId, seed: u64) -> SealedIdentityRecord {
        seal_record_for(&self.params, account, seed)
    }

    /// The time of the next block, as the IM would pick it.
    pub fn next_time(&self) -> TimeMs {
        TimeMs(self.state.time.0 + 100)
    }

    /// The current transaction key of an account the world knows (opened or pooled).
    pub fn key_of(&self, id: &AccountId) -> Option<&SigningKey> {
        self.holders
            .iter()
            .find(|holder| holder.id == *id)
            .map(|holder| &holder.tx_key)
            .or_else(|| {
                self.pool
                    .iter()
                    .find(|key| AccountId::from_key(&crypto::public_key(key)) == *id)
            })
    }

    /// The ids of the accounts of the pool.
    pub fn pool_ids(&self) -> Vec<AccountId> {
        self.pool
            .iter()
            .map(|key| AccountId::from_key(&crypto::public_key(key)))
            .collect()
    }

    /// A transfer request signed by `payer`, with a well-formed identity credential that
    /// only a quorum of holders could tell from a real one (`apply` cannot).
    pub fn request(
        &self,
        payer: &Holder,
        nonce: u64,
        payee: AccountId,
        amount: u64,
    ) -> TransactionRequest {
        let transfer = Transfer {
            version: VERSION,
            chain_id: self.params.chain_id.clone(),
            payer: payer.id,
            payee,
            amount: Amount(amount),
            nonce: Nonce(nonce),
            expires_at: TimeMs(self.state.time.0 + 300_000),
            memo: Memo(b"fuzz".to_vec()),
        };
        let id = transfer.id().expect("id");
        let identity_credential: IdentityCredential =
            halfveil_ledger::testkit::placeholder_credential(&self.params.disclosure_key);
        let message = halfveil_ledger::transaction_credential_message(&id, &identity_credential)
            .expect("message");
        TransactionRequest {
            tx_credential: crypto::sign(&payer.tx_key, &message),
            identity_credential,
            transfer,
        }
    }

    /// A request whose identity credential is really sealed to the disclosure key.
    pub fn sealed_request(
        &self,
        payer: &Holder,
        nonce: u64,
        payee: AccountId,
        amount: u64,
    ) -> TransactionRequest {
        let mut request = self.request(payer, nonce, payee, amount);
        let id = request.transfer.id().expect("id");
        let mut rng = ChaCha20Rng::seed_from_u64(nonce ^ SEED);
        request.identity_credential = crypto::seal_identity_credential(
            &self.params.disclosure_key,
            &self.params.chain_id,
            &id,
            &payer.identity_key,
            &mut rng,
        )
        .expect("seal");
        let message =
            halfveil_ledger::transaction_credential_message(&id, &request.identity_credential)
                .expect("message");
        request.tx_credential = crypto::sign(&payer.tx_key, &message);
        request
    }

    /// `bank`'s attestation over `ids`; a random signature for a bank genesis does not name.
    pub fn attest(
        &self,
        kind: AttestationKind,
        bank: BankId,
        ids: Vec<Hash32>,
    ) -> BatchAttestation {
        let message =
            attestation_message(&self.params.chain_id, kind, bank, &ids).expect("message");
        let signature = match self.banks.get(usize::from(bank.0)) {
            Some(key) => crypto::sign(key, &message),
            None => halfveil_ledger::Signature([0x5a; 64]),
        };
        BatchAttestation {
            kind,
            bank,
            ids,
            signature,
        }
    }

    /// Transfer ops for `requests` with the attestations the banks would give, each
    /// payer's and payee's bank read from `banks` or the state.
    pub fn transfer_ops(
        &self,
        requests: Vec<TransactionRequest>,
    ) -> (Vec<BatchAttestation>, Vec<Op>) {
        let bank_of = |id: &AccountId| self.state.account(id).map_or(BankId(0), |a| a.bank);
        let mut groups: BTreeMap<(u8, BankId), Vec<Hash32>> = BTreeMap::new();
        for request in &requests {
            let id = request.transfer.id().expect("id");
            groups
                .entry((0, bank_of(&request.transfer.payer)))
                .or_default()
                .push(id);
            groups
                .entry((1, bank_of(&request.transfer.payee)))
                .or_default()
                .push(id);
        }
        let mut index = BTreeMap::new();
        let mut attestations = Vec::new();
        for ((kind, bank), ids) in groups {
            index.insert((kind, bank), attestations.len() as u16);
            let kind_value = if kind == 0 {
                AttestationKind::PayerOk
            } else {
                AttestationKind::PayeeOk
            };
            attestations.push(self.attest(kind_value, bank, ids));
        }
        let ops = requests
            .into_iter()
            .map(|request| {
                let payer_ok = index[&(0, bank_of(&request.transfer.payer))];
                let payee_ok = index[&(1, bank_of(&request.transfer.payee))];
                Op::Transfer(halfveil_ledger::TransferOp {
                    request,
                    payer_ok,
                    payee_ok,
                })
            })
            .collect();
        (attestations, ops)
    }

    /// Builds and signs a block over `state` at `time`, as the IM does.
    pub fn build(
        &self,
        state: &State,
        time: TimeMs,
        attestations: Vec<BatchAttestation>,
        ops: Vec<Op>,
    ) -> Result<(Block, StateChange), ApplyError> {
        let proposal = propose(&self.params, state, time, attestations, ops)?;
        Ok(proposal.sign(&self.validator).expect("sign"))
    }

    pub fn validator_key(&self) -> PublicKey {
        crypto::public_key(&self.validator)
    }
}

fn seal_record_for(params: &ChainParams, account: &AccountId, seed: u64) -> SealedIdentityRecord {
    let record = crypto::IdentityRecord {
        version: VERSION,
        name: "Fuzz Holder".into(),
        national_id: format!("F-{seed}"),
        fields: Vec::new(),
        identity_key: PublicKey([0x61; 32]),
        possession: halfveil_ledger::Signature([0x62; 64]),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    record
        .seal(&params.disclosure_key, &params.chain_id, account, &mut rng)
        .expect("seal")
}
