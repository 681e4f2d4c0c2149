//! A hash map in shards, so that growing it never moves more than a sliver at once.
//!
//! A `HashMap` that fills up doubles its table and rehashes every entry in one call. The
//! maps that grow with every transfer (the remembered `(payer, nonce)` pairs, ten minutes of
//! them: 15 million entries at 25,000 transfers/s; a bank's tracked transfers, up to a
//! million) stopped their node for 25-300 ms each time they doubled, on every node at the
//! same moment, and the bench's per-second p99 showed it (docs/performance.md). Split into
//! [`SHARDS`] maps by a byte of the key (ids and account ids are hashes, so the shards fill
//! evenly), one doubling moves 1/256 of the entries.

use std::hash::Hash;

use crate::fastmap::{HashMap, HashMapExt};
use crate::hash::Hash32;
use crate::types::{AccountId, Nonce};

/// Shards per map.
pub const SHARDS: usize = 256;

/// A key that names its shard.
pub trait ShardKey: Eq + Hash {
    fn shard(&self) -> u8;
}

impl ShardKey for Hash32 {
    fn shard(&self) -> u8 {
        self.0[0]
    }
}

impl ShardKey for (AccountId, Nonce) {
    /// The nonce's low byte is mixed in: a few busy accounts still fill every shard.
    fn shard(&self) -> u8 {
        self.0 .0[0].wrapping_add(self.1 .0.to_le_bytes()[0])
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
        &self.shards[usize::from(key.shard())]
    }

    fn shard_mut(&mut self, key: &K) -> &mut HashMap<K, V> {
        &mut self.shards[usize::from(key.shard())]
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
    /// than its share and one doubling stays small.
    #[test]
    fn one_account_fills_every_shard() {
        let map: ShardedMap<(AccountId, Nonce), ()> = (0..SHARDS as u64 * 100)
            .map(|nonce| (pair(9, nonce), ()))
            .collect();
        assert_eq!(map.len(), SHARDS * 100);
        assert_eq!(map.largest_shard(), 100);
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
}
