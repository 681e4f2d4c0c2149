//! `apply` on arbitrary blocks over the world's small valid state.
//!
//! The first byte picks how the rest becomes a block:
//! - even: the rest is a block's encoding (as gossip or sync brings it). It is applied as
//!   is, then its body is built again by the IM's own path and signed with the IM's key
//!   (a fuzzer cannot sign), so the rules behind the header's signature are reached too.
//! - odd: the rest is a program ([`Program`]) that builds ops the way wallets, banks and
//!   auditors would, with valid signatures unless it asks for a corrupt one, and picks
//!   amounts, nonces, expiries, keys (small-order and non-canonical ones too) and
//!   attestation indexes among the interesting values. The block is built with the full
//!   check and as the IM builds (credentials checked at admission), then applied.
//!
//! `apply` must never panic, and:
//! - `apply`, `apply_deferred` (with its signatures verified) and `apply_blocks` must agree
//!   on every block, down to the violation they name;
//! - a block the IM's build accepts is accepted; one the full check refuses is refused by
//!   `apply` with the same violation;
//! - after an accepted block: the supply moved by exactly the issues, every account by
//!   exactly its ops, balances sum to the supply, a closed account holds nothing, every
//!   nonce used is remembered, the state root is the header's, every transfer's receipt
//!   verifies, the block's encoding round-trips, and the same block again is refused.

use std::collections::{BTreeMap, HashMap};

use halfveil_ledger::apply::hash_ops;
use halfveil_ledger::build::{propose, propose_or_return, Credentials};
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::fastmap;
use halfveil_ledger::hash::merkle_root;
use halfveil_ledger::{
    apply_blocks, apply_deferred, codec, open_account_message, Account, AccountId, Amount,
    AttestationKind, AuditorId, AuditorSignature, BankId, BatchAttestation, Block, BlockHeader,
    ChainId, CloseAccount, DisclosureOrder, Hash32, IdentityCredential, Issue, Memo, Nonce, Op,
    OpenAccount, OrderOp, PublicKey, Receipt, RotateKey, ShareRecord, Signature, SignedHeader,
    State, StateChange, TimeMs, TransactionRequest, Transfer, TransferOp, X25519PublicKey, VERSION,
};

use crate::decoders::OP_BYTES_MAX;
use crate::reader::Reader;
use crate::sigbatch::edge_points;
use crate::world::{remember, world, World, FUNDED_BALANCE};

/// What an input came to (for the seeds' tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes are not a block.
    NotABlock,
    Refused,
    Applied,
}

pub fn apply(data: &[u8]) {
    run(data);
}

/// Runs one input; for the mode of raw bytes, the outcome of the block as it came.
pub fn run(data: &[u8]) -> Outcome {
    let world = world();
    let Some((&mode, rest)) = data.split_first() else {
        return Outcome::NotABlock;
    };
    if mode % 2 == 0 {
        raw(world, rest)
    } else {
        Program::new(world, rest).run()
    }
}

fn raw(world: &World, bytes: &[u8]) -> Outcome {
    let Ok(block) = Block::decode(bytes) else {
        return Outcome::NotABlock;
    };
    let outcome = check_block(world, &world.state, &block);
    if let Ok(proposal) = propose_or_return(
        &world.params,
        &world.state,
        block.header().time,
        block.attestations.clone(),
        block.ops.clone(),
        Credentials::Verified,
    ) {
        let (signed, _) = proposal.sign(&world.validator).expect("sign");
        check_block(world, &world.state, &signed);
    }
    outcome
}

/// Applies `block` to `state` three ways, which must agree; checks the invariants of an
/// accepted block.
pub fn check_block(world: &World, state: &State, block: &Block) -> Outcome {
    let params = &world.params;
    let applied = halfveil_ledger::apply(params, state, block);
    let deferred = apply_deferred(params, state, block).and_then(|(change, signatures)| {
        assert_eq!(
            Ok(signatures.block_hash()),
            block.header().hash(),
            "apply_deferred's block hash"
        );
        signatures.verify().map(|()| change)
    });
    let mut run_state = state.clone();
    let run = apply_blocks(params, &mut run_state, std::slice::from_ref(block));
    match &applied {
        Ok(change) => {
            let deferred = deferred.unwrap_or_else(|error| {
                panic!("apply_deferred refuses a block apply accepts: {error}")
            });
            assert_eq!(deferred.state_root, change.state_root);
            if let Err(error) = run {
                panic!("apply_blocks refuses a block apply accepts: {}", error.1);
            }
            let after = check_invariants(world, state, block, change);
            assert_eq!(run_state.state_root(), after.state_root());
            assert_eq!(run_state.height, after.height);
            Outcome::Applied
        }
        Err(error) => {
            match deferred {
                Ok(_) => panic!("apply_deferred accepts a block apply refuses ({error})"),
                Err(other) => assert_eq!(&other, error, "apply_deferred names another violation"),
            }
            match run {
                Ok(()) => panic!("apply_blocks accepts a block apply refuses ({error})"),
                Err(other) => {
                    assert_eq!(other.0, 0);
                    assert_eq!(&other.1, error, "apply_blocks names another violation");
                }
            }
            Outcome::Refused
        }
    }
}

fn check_invariants(world: &World, before: &State, block: &Block, change: &StateChange) -> State {
    let header = block.header();
    assert_eq!(change.height, header.height);
    assert_eq!(change.time, header.time);
    assert_eq!(change.state_root, header.state_root);
    let mut issued: u128 = 0;
    let mut flows: BTreeMap<AccountId, i128> = BTreeMap::new();
    let mut nonces = Vec::new();
    let mut closed = Vec::new();
    for op in &block.ops {
        match op {
            Op::Issue(issue) => {
                issued += u128::from(issue.amount.0);
                *flows.entry(issue.to).or_default() += i128::from(issue.amount.0);
            }
            Op::Transfer(transfer) => {
                let transfer = &transfer.request.transfer;
                *flows.entry(transfer.payer).or_default() -= i128::from(transfer.amount.0);
                *flows.entry(transfer.payee).or_default() += i128::from(transfer.amount.0);
                nonces.push((transfer.payer, transfer.nonce));
            }
            Op::RotateKey(rotate) => nonces.push((rotate.account, rotate.nonce)),
            Op::CloseAccount(close) => {
                nonces.push((close.account, close.nonce));
                closed.push(close.account);
            }
            Op::OpenAccount(_)
            | Op::DisclosureOrder(_)
            | Op::DisclosureShare(_)
            | Op::AdoptKey(_) => {}
        }
    }
    assert_eq!(
        u128::from(change.supply.0),
        u128::from(before.supply.0) + issued,
        "the supply moved by other than the issues"
    );
    let touched: BTreeMap<AccountId, _> = change.accounts.iter().map(|(id, a)| (*id, a)).collect();
    for (id, after) in &touched {
        let was = before
            .account(id)
            .map_or(0, |account| i128::from(account.balance.0));
        let flow = flows.get(id).copied().unwrap_or(0);
        assert_eq!(
            i128::from(after.balance.0) - was,
            flow,
            "{id} moved by other than its ops"
        );
        assert!(
            !after.closed || after.balance.0 == 0,
            "closed {id} holds a balance"
        );
    }
    for (id, flow) in &flows {
        assert!(
            *flow == 0 || touched.contains_key(id),
            "{id} moved unrecorded"
        );
    }

    let hash = header.hash().expect("hash");
    let mut after = before.clone();
    after.commit(change, hash);
    assert_eq!(after.state_root(), header.state_root);
    assert_eq!(after.head_hash, hash);
    let total: u128 = after
        .accounts()
        .map(|(_, account)| u128::from(account.balance.0))
        .sum();
    assert_eq!(
        total,
        u128::from(after.supply.0),
        "balances do not sum to the supply"
    );
    for (account, nonce) in &nonces {
        assert!(
            after.nonce_used(account, *nonce),
            "{account} nonce {nonce} forgotten"
        );
    }
    for id in &closed {
        assert!(after.account(id).is_some_and(|account| account.closed));
    }
    if before.height == world.state.height {
        // The commitment, moved leaf by leaf, is the one of the whole state rebuilt.
        let mut remembered = world.remembered.clone();
        remember(&mut remembered, change);
        let accounts: fastmap::HashMap<AccountId, Account> = after
            .accounts()
            .map(|(id, account)| (*id, account.clone()))
            .collect();
        let served: fastmap::HashSet<Hash32> = world
            .served
            .iter()
            .chain(&change.orders_served)
            .copied()
            .collect();
        let pairs = remembered.len();
        let rebuilt = State::from_parts(
            after.height,
            after.head_hash,
            after.time,
            after.supply,
            accounts,
            remembered.into_iter().collect(),
            served,
            after.disclosure_keys().clone(),
        )
        .expect("rebuild");
        assert_eq!(
            rebuilt.state_root(),
            header.state_root,
            "the state root is not the one of the state rebuilt from scratch"
        );
        assert_eq!(after.nonce_count(), pairs);
    }

    assert_eq!(change.op_hashes.len(), block.ops.len());
    assert_eq!(merkle_root(&change.op_hashes), header.op_root);
    for (id, index) in &change.transfers {
        let receipt = Receipt::for_op(block, change, *index as usize).expect("a receipt");
        assert_eq!(receipt.transfer_id, *id);
        receipt
            .verify(&world.params.validator_keys)
            .expect("the receipt of an accepted block verifies");
    }
    let bytes = block.encode().expect("encode");
    assert_eq!(Block::decode(&bytes).as_ref(), Ok(block));
    assert!(
        halfveil_ledger::apply(&world.params, &after, block).is_err(),
        "a block applies twice"
    );
    after
}

/// A transfer whose attestation indexes are filled in once every op is built.
#[derive(Debug)]
struct TransferJob {
    op: usize,
    id: Hash32,
    payer: AccountId,
    payee: AccountId,
    flags: u8,
}

/// Transfer flags, per transfer.
pub mod flags {
    /// Flip a bit of the first signature (the credential; the holder's; the old key's;
    /// the first auditor's).
    pub const CORRUPT_FIRST: u8 = 0x01;
    /// Flip a bit of the second signature (the bank's; the new key's).
    pub const CORRUPT_SECOND: u8 = 0x02;
    /// A version byte read from the input (an account id, for an opening).
    pub const ODD_VERSION: u8 = 0x04;
    /// Another chain's id.
    pub const OTHER_CHAIN: u8 = 0x08;
    /// Leave the transfer out of its payer bank's attestation.
    pub const NO_PAYER_OK: u8 = 0x10;
    /// Leave the transfer out of its payee bank's attestation.
    pub const NO_PAYEE_OK: u8 = 0x20;
    /// Attestation indexes read from the input.
    pub const RAW_INDEXES: u8 = 0x40;
    /// An identity credential version read from the input.
    pub const ODD_CREDENTIAL: u8 = 0x80;
}

/// Op kinds of a program.
pub mod kinds {
    pub const TRANSFER: u8 = 0;
    pub const ISSUE: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const ROTATE: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const DISCLOSURE: u8 = 5;
    /// An op decoded from the input.
    pub const RAW: u8 = 6;
    pub const COUNT: usize = 7;
}

/// Most ops a program builds.
pub const PROGRAM_OPS_MAX: usize = 8;

/// A block built op by op from choices read from the input.
///
/// Layout: the time choice, the op count, then each op (its kind, then its choices, see
/// the `op_*` methods), then the attestation flags and their choices, then, for each
/// transfer with [`flags::RAW_INDEXES`], its two indexes. Choice 0 is always the ordinary
/// one, so a short or zero input is a valid block.
struct Program<'w, 'd> {
    world: &'w World,
    reader: Reader<'d>,
    edges: Vec<[u8; 32]>,
    time: TimeMs,
    /// Accounts a choice can name: the world's holders, then its pool.
    candidates: Vec<AccountId>,
    /// Current transaction keys the program knows.
    keys: HashMap<AccountId, SigningKey>,
    banks: HashMap<AccountId, BankId>,
    next_nonce: HashMap<AccountId, u64>,
    ops: Vec<Op>,
    jobs: Vec<TransferJob>,
}

impl<'w, 'd> Program<'w, 'd> {
    fn new(world: &'w World, data: &'d [u8]) -> Self {
        let mut candidates: Vec<AccountId> = world.holders.iter().map(|h| h.id).collect();
        candidates.extend(world.pool_ids());
        let mut keys = HashMap::new();
        let mut banks = HashMap::new();
        let mut next_nonce = HashMap::new();
        for holder in &world.holders {
            keys.insert(holder.id, holder.tx_key.clone());
            banks.insert(holder.id, holder.bank);
            next_nonce.insert(holder.id, holder.next_nonce);
        }
        for (id, key) in world.pool_ids().into_iter().zip(&world.pool) {
            keys.insert(id, key.clone());
        }
        Program {
            world,
            reader: Reader::new(data),
            edges: edge_points(),
            time: world.next_time(),
            candidates,
            keys,
            banks,
            next_nonce,
            ops: Vec::new(),
            jobs: Vec::new(),
        }
    }

    fn run(mut self) -> Outcome {
        let now = self.world.state.time.0;
        self.time = TimeMs(match self.reader.choose(5) {
            0 => now + 100,
            1 => now + 1,
            2 => now,
            3 => now.saturating_add(1 + self.reader.u64() % 10_000_000_000),
            _ => u64::MAX,
        });
        let count = self.reader.choose(PROGRAM_OPS_MAX + 1);
        for _ in 0..count {
            match self.reader.choose(kinds::COUNT) as u8 {
                kinds::TRANSFER => self.op_transfer(),
                kinds::ISSUE => self.op_issue(),
                kinds::OPEN => self.op_open(),
                kinds::ROTATE => self.op_rotate(),
                kinds::CLOSE => self.op_close(),
                kinds::DISCLOSURE => self.op_disclosure(),
                _ => self.op_raw(),
            }
        }
        let attestations = self.attestations();
        self.evaluate(attestations)
    }

    fn evaluate(self, attestations: Vec<BatchAttestation>) -> Outcome {
        let world = self.world;
        let (params, state, time, ops) = (&world.params, &world.state, self.time, self.ops);
        let checked = propose(params, state, time, attestations.clone(), ops.clone());
        let admitted = propose_or_return(
            params,
            state,
            time,
            attestations.clone(),
            ops.clone(),
            Credentials::Verified,
        );
        match (checked, admitted) {
            (Ok(checked), Ok(admitted)) => {
                assert_eq!(checked.header, admitted.header);
                let (block, _) = checked.sign(&world.validator).expect("sign");
                let outcome = check_block(world, state, &block);
                assert_eq!(outcome, Outcome::Applied, "a block the IM built is refused");
                outcome
            }
            (Ok(_), Err(refused)) => panic!(
                "the IM's build refuses a block the full check accepts: {}",
                refused.error
            ),
            (Err(error), Ok(admitted)) => {
                // Only credentials or attestation signatures are bad: receivers refuse the
                // block, naming what the full check named.
                let (block, _) = admitted.sign(&world.validator).expect("sign");
                assert_eq!(check_block(world, state, &block), Outcome::Refused);
                assert_eq!(
                    halfveil_ledger::apply(params, state, &block).err(),
                    Some(error)
                );
                Outcome::Refused
            }
            (Err(_), Err(_)) => {
                // Still a block to throw at `apply`: a right header, made-up roots.
                let (hashes, _) = hash_ops(&ops).expect("hash");
                let header = BlockHeader {
                    version: VERSION,
                    chain_id: params.chain_id.clone(),
                    height: state.height.next().expect("height"),
                    parent: state.head_hash,
                    time,
                    op_root: merkle_root(&hashes),
                    attestation_root: Hash32::default(),
                    state_root: Hash32::default(),
                    op_count: ops.len() as u32,
                };
                let signature = crypto::sign(&world.validator, &header.hash().expect("hash"));
                let signer = world.validator_key();
                let block = Block {
                    signed: SignedHeader {
                        header,
                        signer,
                        signature,
                    },
                    attestations,
                    ops,
                };
                assert_eq!(check_block(world, state, &block), Outcome::Refused);
                Outcome::Refused
            }
        }
    }

    /// An account: a holder, a pooled account, or any id.
    fn account(&mut self) -> AccountId {
        let index = self.reader.choose(self.candidates.len() + 1);
        match self.candidates.get(index) {
            Some(id) => *id,
            None => AccountId(self.reader.array()),
        }
    }

    fn amount(&mut self) -> Amount {
        let limit = self.world.params.limits.issue_amount_max;
        Amount(match self.reader.choose(8) {
            0 => 1 + u64::from(self.reader.u8()),
            1 => self.reader.u64(),
            2 => 0,
            3 => u64::MAX,
            4 => FUNDED_BALANCE,
            5 => limit,
            6 => limit.saturating_add(1),
            _ => FUNDED_BALANCE + 1,
        })
    }

    fn nonce(&mut self, account: &AccountId) -> Nonce {
        let choice = self.reader.choose(4);
        let next = self.next_nonce.entry(*account).or_default();
        Nonce(match choice {
            0 => {
                *next += 1;
                *next - 1
            }
            // The last one used: committed, or earlier in this block.
            1 => next.saturating_sub(1),
            2 => 0,
            _ => self.reader.u64(),
        })
    }

    fn expiry(&mut self) -> TimeMs {
        let time = self.time.0;
        let limit = self.world.params.limits.transfer_expiry_ms_max;
        TimeMs(match self.reader.choose(6) {
            0 => time.saturating_add(300_000),
            1 => time,
            2 => time.saturating_add(limit).saturating_add(1),
            3 => time.saturating_add(limit),
            4 => self.reader.u64(),
            _ => time.saturating_add(1),
        })
    }

    /// A new key: a pooled account's (its secret known), a ZIP-215 edge encoding, or any
    /// 32 bytes.
    fn new_key(&mut self) -> (PublicKey, Option<SigningKey>) {
        match self.reader.choose(4) {
            0 | 1 => {
                let pool = &self.world.pool;
                let key = &pool[self.reader.choose(pool.len())];
                (crypto::public_key(key), Some(key.clone()))
            }
            2 => (
                PublicKey(self.edges[self.reader.choose(self.edges.len())]),
                None,
            ),
            _ => (PublicKey(self.reader.array()), None),
        }
    }

    /// `key`'s signature over `message`, or bytes from the input without a key.
    fn sign(&mut self, key: Option<&SigningKey>, message: &Hash32) -> Signature {
        match key {
            Some(key) => crypto::sign(key, message),
            None => Signature(self.reader.array()),
        }
    }

    fn sign_as(&mut self, account: &AccountId, message: &Hash32) -> Signature {
        let key = self.keys.get(account).cloned();
        self.sign(key.as_ref(), message)
    }

    fn corrupt(&mut self, signature: &mut Signature) {
        let bit = self.reader.u16();
        signature.0[usize::from(bit / 8) % 64] ^= 1 << (bit % 8);
    }

    fn chain_id(&self, flags: u8) -> ChainId {
        if flags & flags::OTHER_CHAIN != 0 {
            ChainId::new("other-chain").expect("chain id")
        } else {
            self.world.params.chain_id.clone()
        }
    }

    fn version(&mut self, flags: u8) -> u8 {
        if flags & flags::ODD_VERSION != 0 {
            self.reader.u8()
        } else {
            VERSION
        }
    }

    /// Payer, payee, flags, amount, nonce, expiry, memo length and memo, then what the
    /// flags ask for.
    fn op_transfer(&mut self) {
        let payer = self.account();
        let payee = self.account();
        let flags = self.reader.u8();
        let amount = self.amount();
        let nonce = self.nonce(&payer);
        let expires_at = self.expiry();
        let memo_length = self.reader.choose(80);
        let memo = Memo(self.reader.take(memo_length).to_vec());
        let transfer = Transfer {
            version: self.version(flags),
            chain_id: self.chain_id(flags),
            payer,
            payee,
            amount,
            nonce,
            expires_at,
            memo,
        };
        let id = transfer.id().expect("id");
        let mut credential: IdentityCredential =
            halfveil_ledger::testkit::placeholder_credential(&self.world.params.disclosure_key);
        if flags & flags::ODD_CREDENTIAL != 0 {
            credential.capsule.epoch = u32::from(self.reader.u8());
            credential.body[0] = self.reader.u8();
        }
        let message =
            halfveil_ledger::transaction_credential_message(&id, &credential).expect("message");
        let mut tx_credential = self.sign_as(&payer, &message);
        if flags & flags::CORRUPT_FIRST != 0 {
            self.corrupt(&mut tx_credential);
        }
        self.ops.push(Op::Transfer(TransferOp {
            request: TransactionRequest {
                transfer,
                tx_credential,
                identity_credential: credential,
            },
            payer_ok: 0,
            payee_ok: 0,
        }));
        self.jobs.push(TransferJob {
            op: self.ops.len() - 1,
            id,
            payer,
            payee,
            flags,
        });
    }

    /// Account, amount, reference.
    fn op_issue(&mut self) {
        let to = self.account();
        let amount = self.amount();
        let reference = self.reader.u64();
        self.ops.push(Op::Issue(Issue {
            to,
            amount,
            reference,
        }));
    }

    /// Key, bank (2 is none), flags, then what they ask for.
    fn op_open(&mut self) {
        let (tx_key, secret) = self.new_key();
        let bank = BankId(u16::from(self.reader.u8() % 3));
        let flags = self.reader.u8();
        let account = if flags & flags::ODD_VERSION != 0 {
            AccountId(self.reader.array())
        } else {
            AccountId::from_key(&tx_key)
        };
        // A record sealed for this account, or (odd) the world's record of another one.
        let record = if flags & flags::ODD_CREDENTIAL != 0 {
            self.world.spare_record.clone()
        } else {
            Box::new(self.world.seal_record(&account, u64::from(account.0[0])))
        };
        let message = open_account_message(&self.world.params.chain_id, &tx_key, bank, &record)
            .expect("message");
        let mut holder_signature = self.sign(secret.as_ref(), &message);
        let bank_key = self.world.banks.get(usize::from(bank.0)).cloned();
        let mut bank_signature = self.sign(bank_key.as_ref(), &message);
        if flags & flags::CORRUPT_FIRST != 0 {
            self.corrupt(&mut holder_signature);
        }
        if flags & flags::CORRUPT_SECOND != 0 {
            self.corrupt(&mut bank_signature);
        }
        self.ops.push(Op::OpenAccount(OpenAccount {
            account,
            tx_key,
            bank,
            holder_signature,
            bank_signature,
            identity_record: record,
        }));
        if let Some(secret) = secret {
            self.keys.insert(account, secret);
        }
        self.banks.insert(account, bank);
    }

    /// Account, new key, nonce, expiry, flags, then what they ask for.
    fn op_rotate(&mut self) {
        let account = self.account();
        let (new_key, secret) = self.new_key();
        let nonce = self.nonce(&account);
        let expires_at = self.expiry();
        let flags = self.reader.u8();
        let mut rotate = RotateKey {
            account,
            new_key,
            nonce,
            expires_at,
            old_signature: Signature([0; 64]),
            new_signature: Signature([0; 64]),
        };
        let message = rotate
            .message(&self.world.params.chain_id)
            .expect("message");
        rotate.old_signature = self.sign_as(&account, &message);
        rotate.new_signature = self.sign(secret.as_ref(), &message);
        if flags & flags::CORRUPT_FIRST != 0 {
            self.corrupt(&mut rotate.old_signature);
        }
        if flags & flags::CORRUPT_SECOND != 0 {
            self.corrupt(&mut rotate.new_signature);
        }
        self.ops.push(Op::RotateKey(rotate));
        match secret {
            Some(secret) => self.keys.insert(account, secret),
            None => self.keys.remove(&account),
        };
    }

    /// Account, nonce, expiry, flags, then what they ask for.
    fn op_close(&mut self) {
        let account = self.account();
        let nonce = self.nonce(&account);
        let expires_at = self.expiry();
        let flags = self.reader.u8();
        let mut close = CloseAccount {
            account,
            nonce,
            expires_at,
            signature: Signature([0; 64]),
        };
        let message = close.message(&self.world.params.chain_id).expect("message");
        close.signature = self.sign_as(&account, &message);
        if flags & flags::CORRUPT_FIRST != 0 {
            self.corrupt(&mut close.signature);
        }
        self.ops.push(Op::CloseAccount(close));
    }

    /// Flags, the transfer (a committed one, one of this block, any), the basis, the
    /// requester key, expiry, signer count and each signer (3 is no auditor), the result.
    fn op_disclosure(&mut self) {
        let flags = self.reader.u8();
        let world = self.world;
        let committed = &world.setup[1].1.transfers;
        let transfer = match self.reader.choose(3) {
            0 => committed[self.reader.choose(committed.len())].0,
            1 if !self.jobs.is_empty() => self.jobs[self.reader.choose(self.jobs.len())].id,
            _ => Hash32(self.reader.array()),
        };
        let order = DisclosureOrder {
            version: self.version(flags),
            chain_id: self.chain_id(flags),
            transfer,
            basis_hash: Hash32(self.reader.array()),
            requester_key: X25519PublicKey(self.reader.array()),
            expires_at: self.expiry(),
        };
        let hash = order.hash().expect("hash");
        let count = self.reader.choose(5);
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            let auditor = self.reader.choose(4) as u16;
            let key = self.world.auditors.get(usize::from(auditor)).cloned();
            let signature = self.sign(key.as_ref(), &hash);
            signatures.push(AuditorSignature {
                auditor: AuditorId(auditor),
                signature,
            });
        }
        if flags & flags::CORRUPT_FIRST != 0 {
            if let Some(first) = signatures.first_mut() {
                let bit = self.reader.u16();
                first.signature.0[usize::from(bit / 8) % 64] ^= 1 << (bit % 8);
            }
        }
        let record_share = flags & flags::ODD_CREDENTIAL != 0;
        self.ops.push(Op::DisclosureOrder(OrderOp {
            order: order.clone(),
            signatures,
        }));
        if record_share {
            self.op_share(order, flags);
        }
    }

    /// A share record of `order`: the holder (0 and 5 are none), signed by its key unless
    /// the flags corrupt it.
    fn op_share(&mut self, order: DisclosureOrder, flags: u8) {
        let holder = self.reader.choose(6) as u16;
        let world = self.world;
        let signer = match holder {
            1..=3 => world.auditors.get(usize::from(holder) - 1).cloned(),
            4 => Some(world.validator.clone()),
            _ => None,
        };
        let sealed_hash = Hash32(self.reader.array());
        let order_hash = order.hash().expect("hash");
        let message =
            ShareRecord::message(&world.params.chain_id, &order_hash, holder, &sealed_hash)
                .expect("message");
        let mut signature = self.sign(signer.as_ref(), &message);
        if flags & flags::CORRUPT_SECOND != 0 {
            self.corrupt(&mut signature);
        }
        self.ops.push(Op::DisclosureShare(ShareRecord {
            order,
            holder,
            sealed_hash,
            signature,
        }));
    }

    /// A length, then that many bytes decoded as an op (nothing if they are not one).
    fn op_raw(&mut self) {
        let length = usize::from(self.reader.u8());
        if let Ok(op) = codec::decode::<Op>(self.reader.take(length), OP_BYTES_MAX) {
            self.ops.push(op);
        }
    }

    fn bank_of(&self, account: &AccountId) -> BankId {
        self.banks.get(account).copied().unwrap_or(BankId(0))
    }

    /// The attestations the banks would give the block's transfers (those not left out by
    /// their flags); then flags: 1 corrupts one, 2 adds one made up, 4 repeats the first.
    fn attestations(&mut self) -> Vec<BatchAttestation> {
        let mut groups: BTreeMap<(u8, BankId), Vec<Hash32>> = BTreeMap::new();
        for job in &self.jobs {
            if job.flags & flags::NO_PAYER_OK == 0 {
                groups
                    .entry((0, self.bank_of(&job.payer)))
                    .or_default()
                    .push(job.id);
            }
            if job.flags & flags::NO_PAYEE_OK == 0 {
                groups
                    .entry((1, self.bank_of(&job.payee)))
                    .or_default()
                    .push(job.id);
            }
        }
        let mut index = BTreeMap::new();
        let mut attestations = Vec::new();
        for ((kind, bank), ids) in groups {
            index.insert((kind, bank), attestations.len() as u16);
            let kind = if kind == 0 {
                AttestationKind::PayerOk
            } else {
                AttestationKind::PayeeOk
            };
            attestations.push(self.world.attest(kind, bank, ids));
        }
        let attestation_flags = self.reader.u8();
        if attestation_flags & 1 != 0 && !attestations.is_empty() {
            let which = self.reader.choose(attestations.len());
            let mut signature = attestations[which].signature;
            self.corrupt(&mut signature);
            attestations[which].signature = signature;
        }
        if attestation_flags & 2 != 0 {
            let kind = if self.reader.u8().is_multiple_of(2) {
                AttestationKind::PayerOk
            } else {
                AttestationKind::PayeeOk
            };
            let bank = BankId(self.reader.u16() % 4);
            let ids = (0..self.reader.choose(4))
                .map(|_| Hash32(self.reader.array()))
                .collect();
            attestations.push(self.world.attest(kind, bank, ids));
        }
        if attestation_flags & 4 != 0 && !attestations.is_empty() {
            attestations.push(attestations[0].clone());
        }
        for job_index in 0..self.jobs.len() {
            let job = &self.jobs[job_index];
            let (op, flags) = (job.op, job.flags);
            let payer_bank = self.bank_of(&job.payer);
            let payee_bank = self.bank_of(&job.payee);
            let (payer_ok, payee_ok) = if flags & flags::RAW_INDEXES != 0 {
                (self.reader.u16(), self.reader.u16())
            } else {
                (
                    index.get(&(0, payer_bank)).copied().unwrap_or(0),
                    index.get(&(1, payee_bank)).copied().unwrap_or(0),
                )
            };
            if let Op::Transfer(transfer) = &mut self.ops[op] {
                transfer.payer_ok = payer_ok;
                transfer.payee_ok = payee_ok;
            }
        }
        attestations
    }
}
