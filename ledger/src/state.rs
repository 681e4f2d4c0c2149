//! The ledger state every node holds after each block, and its commitment.
//!
//! The state root commits to every account, the total supply, the remembered `(payer, nonce)`
//! pairs and the served disclosure orders. It is an LtHash (Bellare-Micciancio's additive
//! lattice hash with the parameters of Lewi et al. 2019 and Solana's accounts hash: blake3
//! XOF to 1,024 16-bit lanes, added lane-wise modulo 2^16), so a block updates the root in
//! time proportional to what it touched, not to the size of the state: the cost per transfer
//! stays flat between a thousand and a million accounts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::disclosure_keys::{DisclosureKeys, HolderParty, KeyAdoption};
use crate::error::CodecError;
use crate::fastmap::{HashMap, HashMapExt, HashSet, HashSetExt};
use crate::hash::{Domain, Hash32};
use crate::sharded::ShardedMap;
use crate::types::{AccountId, Amount, BankId, ChainId, Height, Nonce, PublicKey, TimeMs};

/// Protocol limits, set in genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub block_ops_max: u32,
    pub block_bytes_max: u32,
    pub memo_bytes_max: u16,
    /// How far past the block time a transfer's `expires_at` may lie.
    pub transfer_expiry_ms_max: u64,
    pub attestation_ids_max: u32,
    pub issue_amount_max: u64,
    /// How far ahead of a node's own clock a block's time may be: a node refuses (for now) a
    /// block further ahead, so a jump of the IM's clock cannot expire every pending transfer.
    pub block_time_ahead_ms_max: u64,
}

/// An account that exists at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialAccount {
    pub tx_key: PublicKey,
    pub bank: BankId,
    pub balance: Amount,
}

/// What the ledger needs from genesis to check blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    pub chain_id: ChainId,
    pub genesis_hash: Hash32,
    pub genesis_time: TimeMs,
    /// The IM replicas' validator keys, in genesis order (one for a single IM): any of them
    /// may sign a block.
    pub validator_keys: Vec<PublicKey>,
    /// The threshold disclosure key identity credentials and records are encrypted to.
    pub disclosure_key: crate::threshold::DisclosureKey,
    /// Who holds each share of the genesis key (an auditor, or the IM), in the order of
    /// `disclosure_key.holders`: that party's key signs the holder's share records.
    pub holder_parties: Vec<HolderParty>,
    /// Each bank's attestation key, by [`BankId`].
    pub bank_keys: Vec<PublicKey>,
    /// Each auditor's key, by [`crate::types::AuditorId`].
    pub auditor_keys: Vec<PublicKey>,
    pub disclosure_threshold: u16,
    pub limits: Limits,
    pub initial_accounts: Vec<InitialAccount>,
}

impl ChainParams {
    pub fn bank_key(&self, bank: BankId) -> Option<&PublicKey> {
        self.bank_keys.get(usize::from(bank.0))
    }

    /// Whether `key` is one of the IM replicas' validator keys.
    pub fn is_validator(&self, key: &PublicKey) -> bool {
        self.validator_keys.contains(key)
    }
}

/// One account as the chain knows it: no identity, only its key, home bank and balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub tx_key: PublicKey,
    pub bank: BankId,
    pub balance: Amount,
    pub closed: bool,
}

/// Number of 16-bit lanes of the LtHash.
pub const LTHASH_LANES: usize = 1024;

/// The additive state commitment (see the module doc).
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(Box<[u16; LTHASH_LANES]>);

impl std::fmt::Debug for LtHash {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "LtHash({})", self.checksum())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash(Box::new([0u16; LTHASH_LANES]))
    }
}

/// The things the state root commits to, each a distinct leaf kind.
#[derive(Serialize)]
enum StateLeaf<'a> {
    Account(&'a AccountId, &'a Account),
    Nonce(&'a AccountId, Nonce, TimeMs),
    Order(&'a Hash32),
}

impl LtHash {
    fn of_leaf(leaf: &StateLeaf<'_>) -> Result<[u16; LTHASH_LANES], CodecError> {
        let mut reader = codec::with_encoded(leaf, |bytes| {
            Domain::StateLeaf.hasher().update(bytes).finalize_xof()
        })?;
        let mut raw = [0u8; LTHASH_LANES * 2];
        reader.fill(&mut raw);
        let mut lanes = [0u16; LTHASH_LANES];
        for (lane, pair) in lanes.iter_mut().zip(raw.chunks_exact(2)) {
            *lane = u16::from_le_bytes([pair[0], pair[1]]);
        }
        Ok(lanes)
    }

    fn add(&mut self, leaf: &StateLeaf<'_>) -> Result<(), CodecError> {
        let lanes = Self::of_leaf(leaf)?;
        for (mine, theirs) in self.0.iter_mut().zip(lanes.iter()) {
            *mine = mine.wrapping_add(*theirs);
        }
        Ok(())
    }

    fn remove(&mut self, leaf: &StateLeaf<'_>) -> Result<(), CodecError> {
        let lanes = Self::of_leaf(leaf)?;
        for (mine, theirs) in self.0.iter_mut().zip(lanes.iter()) {
            *mine = mine.wrapping_sub(*theirs);
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|lane| lane.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<LtHash> {
        if bytes.len() != LTHASH_LANES * 2 {
            return None;
        }
        let mut lanes = Box::new([0u16; LTHASH_LANES]);
        for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([pair[0], pair[1]]);
        }
        Some(LtHash(lanes))
    }

    pub fn checksum(&self) -> Hash32 {
        Hash32(*blake3::hash(&self.to_bytes()).as_bytes())
    }
}

/// The root committed in a header: the LtHash's checksum and the total supply.
pub fn state_root(lthash: &LtHash, supply: Amount) -> Hash32 {
    let mut hasher = Domain::StateRoot.hasher();
    hasher.update(lthash.checksum().as_bytes());
    hasher.update(&supply.0.to_le_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The chain's state after the block at `height`.
#[derive(Clone, Debug)]
pub struct State {
    pub height: Height,
    /// The hash of the block at `height`, or the genesis hash at height 0.
    pub head_hash: Hash32,
    pub time: TimeMs,
    pub supply: Amount,
    pub(crate) accounts: HashMap<AccountId, Account>,
    /// Sharded: it grows by every transfer, and a plain map's doubling stalled the node.
    pub(crate) nonces: ShardedMap<(AccountId, Nonce), TimeMs>,
    pub(crate) expiries: ExpiryIndex,
    pub(crate) served_orders: HashSet<Hash32>,
    pub(crate) lthash: LtHash,
    /// The disclosure keys adopted so far (genesis's first).
    pub(crate) keys: DisclosureKeys,
}

/// Everything one block changed: what `apply` returns and what the store writes.
#[derive(Clone, Debug)]
pub struct StateChange {
    pub height: Height,
    pub time: TimeMs,
    /// Final values of every account the block touched, sorted by id.
    pub accounts: Vec<(AccountId, Account)>,
    pub nonces_added: Vec<(AccountId, Nonce, TimeMs)>,
    pub nonces_expired: Vec<(AccountId, Nonce, TimeMs)>,
    pub orders_served: Vec<Hash32>,
    /// The disclosure key the block adopted, if any (its adoption is among `orders_served`).
    pub adopted: Option<KeyAdoption>,
    /// Transfer ids committed, with their op index.
    pub transfers: Vec<(Hash32, u32)>,
    pub supply: Amount,
    pub lthash: LtHash,
    pub op_root: Hash32,
    pub attestation_root: Hash32,
    pub state_root: Hash32,
    /// Each op's hash, in block order (the op root's leaves).
    pub op_hashes: Vec<Hash32>,
}

impl State {
    /// The state at genesis.
    pub fn genesis(params: &ChainParams) -> Result<State, CodecError> {
        let mut state = State {
            height: Height(0),
            head_hash: params.genesis_hash,
            time: params.genesis_time,
            supply: Amount(0),
            accounts: HashMap::new(),
            nonces: ShardedMap::new(),
            expiries: ExpiryIndex::default(),
            served_orders: HashSet::new(),
            lthash: LtHash::default(),
            keys: DisclosureKeys::genesis(params),
        };
        let mut supply: u64 = 0;
        for initial in &params.initial_accounts {
            let id = AccountId::from_key(&initial.tx_key);
            let account = Account {
                tx_key: initial.tx_key,
                bank: initial.bank,
                balance: initial.balance,
                closed: false,
            };
            state.lthash.add(&StateLeaf::Account(&id, &account))?;
            state.accounts.insert(id, account);
            // Genesis validation bounds the sum; saturating only guards a bug.
            supply = supply.saturating_add(initial.balance.0);
        }
        state.supply = Amount(supply);
        Ok(state)
    }

    /// Rebuilds a state from stored rows (the store's restart path). The caller checks the
    /// returned root against the stored head.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        height: Height,
        head_hash: Hash32,
        time: TimeMs,
        supply: Amount,
        accounts: HashMap<AccountId, Account>,
        nonces: Vec<(AccountId, Nonce, TimeMs)>,
        served_orders: HashSet<Hash32>,
        keys: DisclosureKeys,
    ) -> Result<State, CodecError> {
        let mut lthash = LtHash::default();
        for (id, account) in &accounts {
            lthash.add(&StateLeaf::Account(id, account))?;
        }
        let mut nonce_map = ShardedMap::new();
        let mut expiries = ExpiryIndex::default();
        for (account, nonce, expires_at) in nonces {
            lthash.add(&StateLeaf::Nonce(&account, nonce, expires_at))?;
            nonce_map.insert((account, nonce), expires_at);
            expiries.insert(account, nonce, expires_at);
        }
        for order in &served_orders {
            lthash.add(&StateLeaf::Order(order))?;
        }
        Ok(State {
            height,
            head_hash,
            time,
            supply,
            accounts,
            nonces: nonce_map,
            expiries,
            served_orders,
            lthash,
            keys,
        })
    }

    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.accounts.iter()
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Whether `(account, nonce)` is remembered as committed.
    pub fn nonce_used(&self, account: &AccountId, nonce: Nonce) -> bool {
        self.nonces.contains_key(&(*account, nonce))
    }

    pub fn nonce_count(&self) -> usize {
        self.nonces.len()
    }

    pub fn order_served(&self, order: &Hash32) -> bool {
        self.served_orders.contains(order)
    }

    /// The disclosure keys: the current one payers seal to, and every epoch's latest.
    pub fn disclosure_keys(&self) -> &DisclosureKeys {
        &self.keys
    }

    /// The current disclosure key.
    pub fn disclosure_key(&self) -> &crate::threshold::DisclosureKey {
        &self.keys.current().key
    }

    /// The signing key of disclosure key holder `holder` (of any epoch).
    pub fn holder_signer<'p>(&self, params: &'p ChainParams, holder: u16) -> Option<&'p PublicKey> {
        params.party_key(self.keys.party_of(holder)?)
    }

    pub fn lthash(&self) -> &LtHash {
        &self.lthash
    }

    pub fn state_root(&self) -> Hash32 {
        state_root(&self.lthash, self.supply)
    }

    /// Moves the state past a block `apply` accepted.
    pub fn commit(&mut self, change: &StateChange, block_hash: Hash32) {
        for (id, account) in &change.accounts {
            self.accounts.insert(*id, account.clone());
        }
        for (account, nonce, expires_at) in &change.nonces_expired {
            self.nonces.remove(&(*account, *nonce));
            self.expiries.remove(*account, *nonce, *expires_at);
        }
        for (account, nonce, expires_at) in &change.nonces_added {
            self.nonces.insert((*account, *nonce), *expires_at);
            self.expiries.insert(*account, *nonce, *expires_at);
        }
        for order in &change.orders_served {
            self.served_orders.insert(*order);
        }
        if let Some(adoption) = &change.adopted {
            self.keys.adopt(adoption.clone());
        }
        self.height = change.height;
        self.head_hash = block_hash;
        self.time = change.time;
        self.supply = change.supply;
        self.lthash = change.lthash.clone();
    }

    /// The remembered pairs that expire at or before `time`.
    pub(crate) fn expired_by(&self, time: TimeMs) -> Vec<(AccountId, Nonce, TimeMs)> {
        self.expiries.expired_by(time)
    }
}

/// The remembered `(payer, nonce)` pairs by the 10 ms slot they expire in.
///
/// Every committed transfer adds a pair, and a pair stays until its expiry (up to
/// `transfer_expiry_ms_max`, ten minutes by default): millions of pairs at load. One ordered
/// set of all of them cost a tree walk with cache misses per insert (2 % of a node at
/// 20,000/s); here an insert is a lookup among the slots ahead (at most 60,000 for ten
/// minutes) and a hash set insert, and expiry reads only the slots that have begun, of
/// which just the last can hold pairs not yet due: a block scans at most one slot more
/// than it expires.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExpiryIndex {
    by_slot: BTreeMap<u64, HashSet<(AccountId, Nonce, TimeMs)>>,
}

impl ExpiryIndex {
    const SLOT_MS: u64 = 10;

    pub(crate) fn insert(&mut self, account: AccountId, nonce: Nonce, expires_at: TimeMs) {
        self.by_slot
            .entry(expires_at.0 / Self::SLOT_MS)
            .or_default()
            .insert((account, nonce, expires_at));
    }

    pub(crate) fn remove(&mut self, account: AccountId, nonce: Nonce, expires_at: TimeMs) {
        let slot = expires_at.0 / Self::SLOT_MS;
        if let Some(pairs) = self.by_slot.get_mut(&slot) {
            pairs.remove(&(account, nonce, expires_at));
            if pairs.is_empty() {
                self.by_slot.remove(&slot);
            }
        }
    }

    /// The pairs that expire at or before `time`, ordered by expiry, then account, then
    /// nonce, so that every node lists them alike.
    pub(crate) fn expired_by(&self, time: TimeMs) -> Vec<(AccountId, Nonce, TimeMs)> {
        let mut expired: Vec<(AccountId, Nonce, TimeMs)> = self
            .by_slot
            .range(..=time.0 / Self::SLOT_MS)
            .flat_map(|(_, pairs)| pairs.iter())
            .filter(|(_, _, expires_at)| *expires_at <= time)
            .copied()
            .collect();
        expired
            .sort_unstable_by_key(|(account, nonce, expires_at)| (*expires_at, *account, *nonce));
        expired
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_slot.values().map(HashSet::len).sum()
    }
}

/// Adds and removes leaves; `apply` uses it to move the commitment.
pub(crate) struct CommitmentUpdate {
    pub lthash: LtHash,
}

impl CommitmentUpdate {
    pub fn replace_account(
        &mut self,
        id: &AccountId,
        before: Option<&Account>,
        after: &Account,
    ) -> Result<(), CodecError> {
        if let Some(before) = before {
            self.lthash.remove(&StateLeaf::Account(id, before))?;
        }
        self.lthash.add(&StateLeaf::Account(id, after))
    }

    pub fn add_nonce(
        &mut self,
        account: &AccountId,
        nonce: Nonce,
        at: TimeMs,
    ) -> Result<(), CodecError> {
        self.lthash.add(&StateLeaf::Nonce(account, nonce, at))
    }

    pub fn remove_nonce(
        &mut self,
        account: &AccountId,
        nonce: Nonce,
        at: TimeMs,
    ) -> Result<(), CodecError> {
        self.lthash.remove(&StateLeaf::Nonce(account, nonce, at))
    }

    pub fn add_order(&mut self, order: &Hash32) -> Result<(), CodecError> {
        self.lthash.add(&StateLeaf::Order(order))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::collections::BTreeSet;

    fn account(byte: u8) -> AccountId {
        AccountId([byte; 32])
    }

    /// The index lists exactly what one ordered set of all pairs would, in its order,
    /// through inserts, duplicates, removals and expiry at millisecond edges.
    #[test]
    fn expiry_index_agrees_with_an_ordered_set() {
        let mut index = ExpiryIndex::default();
        let mut reference: BTreeSet<(TimeMs, AccountId, Nonce)> = BTreeSet::new();
        // A small deterministic generator: times spread over a few seconds, with repeats.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5_000 {
            let (who, nonce, at) = (
                account((next() % 7) as u8),
                Nonce(next() % 50),
                TimeMs(10_000 + next() % 4_000),
            );
            index.insert(who, nonce, at);
            reference.insert((at, who, nonce));
        }
        assert_eq!(index.len(), reference.len());
        for time in [9_999, 10_000, 10_999, 11_000, 12_345, 13_999, 14_000] {
            let expected: Vec<(AccountId, Nonce, TimeMs)> = reference
                .iter()
                .take_while(|(at, _, _)| at.0 <= time)
                .map(|(at, who, nonce)| (*who, *nonce, *at))
                .collect();
            assert_eq!(index.expired_by(TimeMs(time)), expected, "at {time}");
        }
        // Expire a prefix the way `State::commit` does, then remove one pair early.
        for (who, nonce, at) in index.expired_by(TimeMs(11_500)) {
            index.remove(who, nonce, at);
            reference.remove(&(at, who, nonce));
        }
        let (at, who, nonce) = *reference.iter().next().unwrap();
        index.remove(who, nonce, at);
        reference.remove(&(at, who, nonce));
        // Removing what is not there changes nothing.
        index.remove(account(99), Nonce(1), TimeMs(12_000));
        assert_eq!(index.len(), reference.len());
        assert!(index.expired_by(TimeMs(11_500)).is_empty());
        let all: Vec<(AccountId, Nonce, TimeMs)> = reference
            .iter()
            .map(|(at, who, nonce)| (*who, *nonce, *at))
            .collect();
        assert_eq!(index.expired_by(TimeMs(u64::MAX)), all);
        assert!(index.by_slot.keys().all(|slot| *slot >= 1_150));
    }
}
