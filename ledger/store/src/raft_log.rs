//! A replicated IM's raft log, as raw bytes: entries by index in the `raft_log` family. The
//! replica module (`node/src/replica/`) encodes and decodes them; here every change is one
//! synced write batch, so an append, a truncation or a purge is on disk when it returns, as
//! Raft requires before a vote or an append is acknowledged.

use rocksdb::WriteBatch;

use crate::{corrupt, LocalRow, RocksStore, StoreError, CF_LOCAL, CF_RAFT_LOG};

impl RocksStore {
    /// Writes `entries` (index, bytes) over whatever was at their indexes, synced.
    pub fn raft_append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        let log = self.cf(CF_RAFT_LOG)?;
        let mut batch = WriteBatch::default();
        for (index, bytes) in entries {
            batch.put_cf(log, index.to_be_bytes(), bytes);
        }
        self.write_synced(batch)
    }

    /// Deletes the entries at `from` and after, synced.
    pub fn raft_truncate(&self, from: u64) -> Result<(), StoreError> {
        let log = self.cf(CF_RAFT_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(log, from.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(log, u64::MAX.to_be_bytes());
        self.write_synced(batch)
    }

    /// Deletes the entries up to `through` (inclusive) and writes `local` rows (the purged
    /// pointer) in the same synced batch.
    pub fn raft_purge(&self, through: u64, local: &[LocalRow]) -> Result<(), StoreError> {
        let log = self.cf(CF_RAFT_LOG)?;
        let local_family = self.cf(CF_LOCAL)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            log,
            0u64.to_be_bytes(),
            through.saturating_add(1).to_be_bytes(),
        );
        if through == u64::MAX {
            batch.delete_cf(log, u64::MAX.to_be_bytes());
        }
        for (key, value) in local {
            batch.put_cf(local_family, key, value);
        }
        self.write_synced(batch)
    }

    /// The entries with `from <= index < to`, in order, stopping once `bytes_max` bytes are
    /// read (at least one entry is returned if any is in range).
    pub fn raft_entries(
        &self,
        from: u64,
        to: u64,
        bytes_max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let log = self.cf(CF_RAFT_LOG)?;
        let start = from.to_be_bytes();
        let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for item in self.db.iterator_cf(log, mode) {
            let (key, value) = item?;
            let index = index_of(&key)?;
            if index >= to || (!entries.is_empty() && bytes.saturating_add(value.len()) > bytes_max)
            {
                break;
            }
            bytes = bytes.saturating_add(value.len());
            entries.push((index, value.to_vec()));
        }
        Ok(entries)
    }

    /// The last entry of the log, if any.
    pub fn raft_last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let log = self.cf(CF_RAFT_LOG)?;
        match self.db.iterator_cf(log, rocksdb::IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                Ok(Some((index_of(&key)?, value.to_vec())))
            }
        }
    }
}

fn index_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| corrupt("raft log key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use halfveil_ledger::testkit::TestChain;

    use super::*;

    fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|index| (index, vec![index as u8; 10])).collect()
    }

    #[test]
    fn append_truncate_purge_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let chain = TestChain::new(3, 1, 1, 1);
        {
            let store = RocksStore::open(dir.path(), &chain.params).unwrap();
            assert_eq!(store.raft_last().unwrap(), None);
            store.raft_append(&entries(1..11)).unwrap();
            assert_eq!(
                store.raft_entries(0, 100, usize::MAX).unwrap(),
                entries(1..11)
            );
            // A bound on bytes stops early, but never before the first entry.
            assert_eq!(store.raft_entries(3, 100, 25).unwrap(), entries(3..5));
            assert_eq!(store.raft_entries(3, 100, 1).unwrap(), entries(3..4));
            store.raft_truncate(8).unwrap();
            assert_eq!(store.raft_last().unwrap(), Some((7, vec![7; 10])));
            // Overwrite from a new leader.
            store.raft_append(&[(7, vec![70; 3])]).unwrap();
            let pointer = (b"raft/purged".to_vec(), vec![1, 2, 3]);
            store.raft_purge(4, std::slice::from_ref(&pointer)).unwrap();
        }
        let store = RocksStore::open(dir.path(), &chain.params).unwrap();
        let mut expected = entries(5..7);
        expected.push((7, vec![70; 3]));
        assert_eq!(
            store.raft_entries(0, u64::MAX, usize::MAX).unwrap(),
            expected
        );
        assert_eq!(store.raft_entries(5, 6, usize::MAX).unwrap(), entries(5..6));
        use crate::Store;
        assert_eq!(
            store.local_get(b"raft/purged").unwrap(),
            Some(vec![1, 2, 3])
        );
        store.raft_purge(u64::MAX, &[]).unwrap();
        assert_eq!(store.raft_last().unwrap(), None);
    }
}
