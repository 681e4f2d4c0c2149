//! A hash map in shards, so that growing it never moves more than a sliver at once.
//!
//! A `HashMap` that fills up rehashes every entry in one call, a stall on every node at once
//! for the maps that grow with every transfer. Split into [`SHARDS`] maps by a byte of the
//! key (ids and account ids are hashes), one doubling moves 1/256 of the entries; and since
//! evenly filled shards all double within one second, the shards take unequal shares
//! (docs/decisions/0011-sharded-maps-unequal-shards.md): shard `i` takes about
//! `2^(i/256)` parts, so their sizes, and the moments they double, spread over a factor of
//! two, and growing the map rehashes a few shards at a time at any size.

use std::hash::Hash;
use std::sync::LazyLock;

use crate::fastmap::{HashMap, HashMapExt};
use crate::hash::Hash32;
use crate::types::{AccountId, Nonce};

/// Shards per map.
pub const SHARDS: usize = 256;

/// Slots the keys fall into, uniformly; each shard owns a run of them.
const SLOTS: usize = 4096;

/// The shard of each slot: shard `i` owns about `2^(i/256)` parts of the slots (11 to 22).
static SHARD_OF_SLOT: LazyLock<[u8; SLOTS]> = LazyLock::new(|| {
    let weights: Vec<f64> = (0..SHARDS)
        .map(|shard| (shard as f64 / SHARDS as f64).exp2())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut table = [0u8; SLOTS];
    let mut shard = 0usize;
    let mut bound = weights[0] / total * SLOTS as f64;
    for (slot, entry) in table.iter_mut().enumerate() {
        while slot as f64 >= bound && shard + 1 < SHARDS {
            shard += 1;
            bound += weights[shard] / total * SLOTS as f64;
        }
        *entry = u8::try_from(shard).unwrap_or(u8::MAX);
    }
    table
});

/// A key that names its slot: 12 uniformly spread bits.
pub trait ShardKey: Eq + Hash {
    fn slot(&self) -> u16;

    fn shard(&self) -> usize {
        usize::from(SHARD_OF_SLOT[usize::from(self.slot()) % SLOTS])
    }
}

impl ShardKey for Hash32 {
    fn slot(&self) -> u16 {
        u16::from_le_bytes([self.0[0], self.0[1]])
    }
}

impl ShardKey for (AccountId, Nonce) {
    /// The nonce's low bits are mixed in: a few busy accounts still fill every shard.
    fn slot(&self) -> u16 {
        let account = u16::from_le_bytes([self.0 .0[0], self.0 .0[1]]);
        let nonce = self.1 .0.to_le_bytes();
        account.wrapping_add(u16::from_le_bytes([nonce[0], nonce[1]]))
    }
}

/// A `HashMap` split into [`SHARDS`] maps by [`ShardKey::shard`].
#[derive(Clone, Debug)]
pub struct ShardedMap<K, V> {
    shards: Vec<HashMap<K, V>>,
    len: usize,
}

impl<K: ShardKey, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
            len: 0,
        }
    }
}

impl<K: ShardKey, V> ShardedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, key: &K) -> &HashMap<K, V> {
        &self.shards[key.shard()]
    }

    fn shard_mut(&mut self, key: &K) -> &mut HashMap<K, V> {
        &mut self.shards[key.shard()]
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.shard(key).get(key)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.shard_mut(key).get_mut(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.shard(key).contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let previous = self.shard_mut(&key).insert(key, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let removed = self.shard_mut(key).remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, shard by shard (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(HashMap::iter)
    }

    /// The entry count of the fullest shard.
    #[cfg(test)]
    fn largest_shard(&self) -> usize {
        self.shards.iter().map(HashMap::len).max().unwrap_or(0)
    }
}

impl<K: ShardKey, V> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = ShardedMap::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(account: u8, nonce: u64) -> (AccountId, Nonce) {
        (AccountId([account; 32]), Nonce(nonce))
    }

    #[test]
    fn behaves_as_one_map() {
        let mut map = ShardedMap::new();
        assert!(map.is_empty());
        assert_eq!(map.insert(pair(1, 7), 70), None);
        assert_eq!(map.insert(pair(1, 7), 71), Some(70));
        assert_eq!(map.insert(pair(2, 7), 20), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&pair(1, 7)), Some(&71));
        assert!(map.contains_key(&pair(2, 7)));
        assert!(!map.contains_key(&pair(3, 7)));
        if let Some(value) = map.get_mut(&pair(2, 7)) {
            *value += 1;
        }
        assert_eq!(map.get(&pair(2, 7)), Some(&21));
        assert_eq!(map.remove(&pair(1, 7)), Some(71));
        assert_eq!(map.remove(&pair(1, 7)), None);
        assert_eq!(map.len(), 1);
        let entries: Vec<_> = map.iter().collect();
        assert_eq!(entries, vec![(&pair(2, 7), &21)]);
    }

    /// One account's nonces still spread over every shard, so no shard holds much more
    /// than its share (at most about twice the average) and one doubling stays small.
    #[test]
    fn one_account_fills_every_shard() {
        let map: ShardedMap<(AccountId, Nonce), ()> = (0..SHARDS as u64 * 100)
            .map(|nonce| (pair(9, nonce), ()))
            .collect();
        assert_eq!(map.len(), SHARDS * 100);
        assert!(
            map.largest_shard() <= 100 * 3 / 2,
            "{}",
            map.largest_shard()
        );
        assert!(map.shards.iter().all(|shard| shard.len() >= 100 / 2));
        let ids: ShardedMap<Hash32, ()> = (0..10_000u32)
            .map(|index| {
                (
                    crate::hash::Domain::TransferId.hash(&index.to_le_bytes()),
                    (),
                )
            })
            .collect();
        assert!(ids.largest_shard() < 10_000 / SHARDS * 2);
    }

    /// Every shard owns a run of slots, 11 to 22 of them, rising with the shard.
    #[test]
    fn shards_own_unequal_runs_of_slots() {
        let mut counts = [0usize; SHARDS];
        for slot in 0..SLOTS {
            counts[usize::from(SHARD_OF_SLOT[slot])] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), SLOTS);
        assert!(
            counts.iter().all(|count| (10..=23).contains(count)),
            "{counts:?}"
        );
        assert!(counts[SHARDS - 1] > counts[0] * 3 / 2);
        assert!(SHARD_OF_SLOT.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    /// Growing the map rehashes a few shards at a time: in no stretch of 1 % of the inserts
    /// do more than a sixth of the shards grow their tables (with even shares, all 256 grew
    /// within the same 1 %).
    #[test]
    fn shards_grow_at_different_moments() {
        const INSERTS: usize = 600_000;
        let window = INSERTS / 100;
        let mut map: ShardedMap<Hash32, ()> = ShardedMap::new();
        let mut grown_at = Vec::new();
        for index in 0..INSERTS {
            let id = crate::hash::Domain::TransferId.hash(&(index as u64).to_le_bytes());
            let shard = id.shard();
            let before = map.shards[shard].capacity();
            map.insert(id, ());
            // Only the doublings past 64K entries in all count; small tables grow often.
            if map.shards[shard].capacity() != before && index > 65_536 {
                grown_at.push(index);
            }
        }
        assert!(grown_at.len() > SHARDS, "{}", grown_at.len());
        let busiest = grown_at
            .iter()
            .map(|&start| {
                grown_at
                    .iter()
                    .filter(|&&at| at >= start && at < start + window)
                    .count()
            })
            .max()
            .unwrap_or(0);
        assert!(
            busiest <= SHARDS / 6,
            "{busiest} shards grew within {window} inserts"
        );
    }
}
