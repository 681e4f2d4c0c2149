//! Domain-separated hashing and the Merkle tree of a block's ops.
//!
//! Every hash in halfveil is blake3 in `derive_key` mode under a context naming what is
//! hashed (`"halfveil v1 transfer id"`), so a value hashed for one purpose can never be
//! mistaken for another. The Merkle tree follows RFC 6962 (split at the largest power of two,
//! distinct leaf and node hashes), so proofs are short and a leaf can never pose as a node.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProofError;

/// blake3 in `derive_key` mode under `context`: for hashes that are not chain data (a key
/// ceremony's files), whose contexts live with their users; chain hashes use [`Domain`].
pub fn derive(context: &str, bytes: &[u8]) -> Hash32 {
    Hash32(blake3::derive_key(context, bytes))
}

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Hash32, hex::FromHexError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)?;
        Ok(Hash32(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Hash32({})", self.to_hex())
    }
}

/// The purpose of a hash. Each has its own blake3 `derive_key` context; the strings are
/// part of the wire format and never change within a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    TransferId,
    OpHash,
    MerkleLeaf,
    MerkleNode,
    MerkleEmpty,
    BlockHash,
    AccountId,
    Attestation,
    AttestationHash,
    OpenAccount,
    RotateKey,
    CloseAccount,
    IdentitySignature,
    DisclosureOrder,
    StateLeaf,
    StateRoot,
    Genesis,
    EnvelopeAad,
    Rejection,
    LocalStorageKey,
    DisclosureBasis,
    TransactionCredential,
    IdentityCredentialHash,
    IdentityRecordHash,
    CredentialLabel,
    RecordLabel,
    ShareRecordKey,
    ShareRecord,
    SealedShares,
    KeyAdoption,
}

impl Domain {
    pub const fn context(self) -> &'static str {
        match self {
            Domain::TransferId => "halfveil v1 transfer id",
            Domain::OpHash => "halfveil v1 op hash",
            Domain::MerkleLeaf => "halfveil v1 merkle leaf",
            Domain::MerkleNode => "halfveil v1 merkle node",
            Domain::MerkleEmpty => "halfveil v1 merkle empty",
            Domain::BlockHash => "halfveil v1 block hash",
            Domain::AccountId => "halfveil v1 account id",
            Domain::Attestation => "halfveil v1 batch attestation",
            Domain::AttestationHash => "halfveil v1 attestation hash",
            Domain::OpenAccount => "halfveil v1 open account",
            Domain::RotateKey => "halfveil v1 rotate key",
            Domain::CloseAccount => "halfveil v1 close account",
            Domain::IdentitySignature => "halfveil v1 identity signature",
            Domain::DisclosureOrder => "halfveil v1 disclosure order",
            Domain::StateLeaf => "halfveil v1 state leaf",
            Domain::StateRoot => "halfveil v1 state root",
            Domain::Genesis => "halfveil v1 genesis",
            Domain::EnvelopeAad => "halfveil v1 envelope aad",
            Domain::Rejection => "halfveil v1 rejection",
            Domain::LocalStorageKey => "halfveil v1 local storage key",
            Domain::DisclosureBasis => "halfveil v1 disclosure basis",
            Domain::TransactionCredential => "halfveil v1 transaction credential",
            Domain::IdentityCredentialHash => "halfveil v1 identity credential hash",
            Domain::IdentityRecordHash => "halfveil v1 identity record hash",
            Domain::CredentialLabel => "halfveil v1 identity credential label",
            Domain::RecordLabel => "halfveil v1 identity record label",
            Domain::ShareRecordKey => "halfveil v1 disclosure share record key",
            Domain::ShareRecord => "halfveil v1 disclosure share record",
            Domain::SealedShares => "halfveil v1 sealed disclosure shares",
            Domain::KeyAdoption => "halfveil v1 adopt disclosure key",
        }
    }

    /// Every domain, in declaration order (`self as usize` indexes it).
    pub const ALL: [Domain; 30] = [
        Domain::TransferId,
        Domain::OpHash,
        Domain::MerkleLeaf,
        Domain::MerkleNode,
        Domain::MerkleEmpty,
        Domain::BlockHash,
        Domain::AccountId,
        Domain::Attestation,
        Domain::AttestationHash,
        Domain::OpenAccount,
        Domain::RotateKey,
        Domain::CloseAccount,
        Domain::IdentitySignature,
        Domain::DisclosureOrder,
        Domain::StateLeaf,
        Domain::StateRoot,
        Domain::Genesis,
        Domain::EnvelopeAad,
        Domain::Rejection,
        Domain::LocalStorageKey,
        Domain::DisclosureBasis,
        Domain::TransactionCredential,
        Domain::IdentityCredentialHash,
        Domain::IdentityRecordHash,
        Domain::CredentialLabel,
        Domain::RecordLabel,
        Domain::ShareRecordKey,
        Domain::ShareRecord,
        Domain::SealedShares,
        Domain::KeyAdoption,
    ];

    /// A hasher for this domain, for inputs fed in pieces. `derive_key` mode first hashes
    /// the context string into a key; that is done once per domain per process and the
    /// keyed hasher cloned (a few hundred bytes) for each hash.
    pub fn hasher(self) -> blake3::Hasher {
        static PROTOTYPES: std::sync::OnceLock<Vec<blake3::Hasher>> = std::sync::OnceLock::new();
        let prototypes = PROTOTYPES.get_or_init(|| {
            Domain::ALL
                .iter()
                .map(|domain| blake3::Hasher::new_derive_key(domain.context()))
                .collect()
        });
        match prototypes.get(self as usize) {
            Some(prototype) => prototype.clone(),
            None => blake3::Hasher::new_derive_key(self.context()),
        }
    }

    /// Hashes `bytes` in this domain.
    pub fn hash(self, bytes: &[u8]) -> Hash32 {
        Hash32(*self.hasher().update(bytes).finalize().as_bytes())
    }
}

fn leaf_hash(leaf: &Hash32) -> Hash32 {
    Domain::MerkleLeaf.hash(leaf.as_bytes())
}

fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut hasher = Domain::MerkleNode.hasher();
    hasher.update(left.as_bytes());
    hasher.update(right.as_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The largest power of two strictly less than `count` (`count >= 2`).
fn split_point(count: usize) -> usize {
    let mut split = 1;
    while split * 2 < count {
        split *= 2;
    }
    split
}

/// The Merkle root over `leaves` (RFC 6962 shape).
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    match leaves {
        [] => Domain::MerkleEmpty.hash(&[]),
        [leaf] => leaf_hash(leaf),
        _ => {
            let split = split_point(leaves.len());
            let (left, right) = leaves.split_at(split);
            node_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The inclusion proof of one leaf: the sibling hashes from the leaf up to the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    pub index: u32,
    pub leaf_count: u32,
    pub siblings: Vec<Hash32>,
}

/// A proof never needs more siblings than this (a tree of 2^32 leaves).
pub const MERKLE_PROOF_DEPTH_MAX: usize = 32;

/// Builds the proof for `leaves[index]`; `None` when `index` is out of range.
pub fn merkle_proof(leaves: &[Hash32], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let mut siblings = Vec::new();
    collect_siblings(leaves, index, &mut siblings);
    Some(MerkleProof {
        index: u32::try_from(index).ok()?,
        leaf_count: u32::try_from(leaves.len()).ok()?,
        siblings,
    })
}

fn collect_siblings(leaves: &[Hash32], index: usize, siblings: &mut Vec<Hash32>) {
    if leaves.len() <= 1 {
        return;
    }
    let split = split_point(leaves.len());
    let (left, right) = leaves.split_at(split);
    if index < split {
        collect_siblings(left, index, siblings);
        siblings.push(merkle_root(right));
    } else {
        collect_siblings(right, index - split, siblings);
        siblings.push(merkle_root(left));
    }
}

impl MerkleProof {
    /// Recomputes the root from `leaf` and this proof (RFC 9162, section 2.1.3.2).
    pub fn root(&self, leaf: &Hash32) -> Result<Hash32, ProofError> {
        if self.index >= self.leaf_count {
            return Err(ProofError::IndexOutOfRange {
                index: self.index,
                leaf_count: self.leaf_count,
            });
        }
        if self.siblings.len() > MERKLE_PROOF_DEPTH_MAX {
            return Err(ProofError::TooDeep);
        }
        let mut fn_index = u64::from(self.index);
        let mut sn_index = u64::from(self.leaf_count) - 1;
        let mut hash = leaf_hash(leaf);
        for sibling in &self.siblings {
            if sn_index == 0 {
                return Err(ProofError::WrongLength);
            }
            if fn_index & 1 == 1 || fn_index == sn_index {
                hash = node_hash(sibling, &hash);
                while fn_index & 1 == 0 && fn_index != 0 {
                    fn_index >>= 1;
                    sn_index >>= 1;
                }
            } else {
                hash = node_hash(&hash, sibling);
            }
            fn_index >>= 1;
            sn_index >>= 1;
        }
        if sn_index != 0 {
            return Err(ProofError::WrongLength);
        }
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached hashers are the `derive_key` hashers of their own contexts: `ALL` is in
    /// declaration order, every context is distinct, and short and long inputs agree.
    #[test]
    fn cached_domain_hashers_match_derive_key_for_every_domain() {
        let mut contexts = std::collections::HashSet::new();
        for (index, domain) in Domain::ALL.iter().enumerate() {
            assert_eq!(*domain as usize, index, "{domain:?}");
            assert!(contexts.insert(domain.context()), "{domain:?}");
            for input in [&b""[..], b"abc", &[7u8; 3000][..]] {
                let expected = blake3::derive_key(domain.context(), input);
                assert_eq!(domain.hash(input).0, expected, "{domain:?}");
                assert_eq!(domain.hash(input).0, expected, "{domain:?} again");
            }
        }
    }

    fn leaves(count: usize) -> Vec<Hash32> {
        (0..count)
            .map(|index| Domain::OpHash.hash(&(index as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn every_proof_of_every_tree_size_verifies() {
        for count in 1..40 {
            let leaves = leaves(count);
            let root = merkle_root(&leaves);
            for (index, leaf) in leaves.iter().enumerate() {
                let proof = merkle_proof(&leaves, index).unwrap();
                assert_eq!(
                    proof.root(leaf).unwrap(),
                    root,
                    "count {count} index {index}"
                );
            }
        }
    }

    #[test]
    fn a_proof_for_another_leaf_or_position_fails() {
        let leaves = leaves(13);
        let root = merkle_root(&leaves);
        let proof = merkle_proof(&leaves, 5).unwrap();
        assert_ne!(proof.root(&leaves[6]).unwrap(), root);
        let mut moved = proof.clone();
        moved.index = 4;
        assert_ne!(moved.root(&leaves[5]).unwrap(), root);
        let mut short = proof.clone();
        short.siblings.pop();
        assert!(short.root(&leaves[5]).is_err());
        let mut resized = proof;
        resized.leaf_count = 200;
        assert!(resized.root(&leaves[5]).is_err() || resized.root(&leaves[5]).unwrap() != root);
    }

    #[test]
    fn domains_differ() {
        assert_ne!(Domain::OpHash.hash(b"x"), Domain::TransferId.hash(b"x"));
        assert_ne!(merkle_root(&[]), merkle_root(&leaves(1)));
    }
}
