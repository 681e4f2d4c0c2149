//! Evidence of equivocation: two different headers at one height, each carrying a valid
//! signature by one of the identity manager replicas' validator keys (the same replica's or
//! two replicas'). A bank that receives a second block at a height
//! it holds keeps both signed headers (node-local, synced), stops following, and reports it
//! (`hv_status.halted`, `hv_evidence`, the metric `halfveil_equivocations_total`, an error
//! log). At its next start it finds the evidence and stays stopped until an operator has
//! dealt with it (see the operator guide).

use halfveil_ledger::{codec, crypto, ChainParams, CodecError, Hash32, Height, SignedHeader};
use halfveil_store::StoreError;
use serde::{Deserialize, Serialize};

/// Prefix of evidence rows in the store's node-local table.
pub const EVIDENCE_PREFIX: &[u8] = b"evidence/";
/// 2 since the signed header names its signer (wire version 2).
const EVIDENCE_VERSION: u8 = 2;
/// Most evidence rows read at start or for `hv_evidence`.
pub const EVIDENCE_ROWS_MAX: usize = 64;
const EVIDENCE_BYTES_MAX: usize = 4096;

/// Two signed headers at one height (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub version: u8,
    /// The header this node had stored.
    pub first: SignedHeader,
    /// The header it received.
    pub second: SignedHeader,
}

impl Evidence {
    pub fn new(first: SignedHeader, second: SignedHeader) -> Evidence {
        Evidence {
            version: EVIDENCE_VERSION,
            first,
            second,
        }
    }

    pub fn height(&self) -> Height {
        self.first.header.height
    }

    /// The evidence's row in the node-local table.
    pub fn row(&self) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let mut key = EVIDENCE_PREFIX.to_vec();
        key.extend_from_slice(&self.height().0.to_be_bytes());
        Ok((key, codec::encode(self)?))
    }

    /// Decodes a stored row strictly.
    pub fn decode(bytes: &[u8]) -> Result<Evidence, CodecError> {
        codec::decode(bytes, EVIDENCE_BYTES_MAX)
    }

    /// Whether this proves equivocation under `params`: one height, two different headers,
    /// each signed by a genesis IM validator key (the same replica's or two replicas': the
    /// hash does not cover the signer, so replicas signing one block agree on its hash).
    /// Anyone holding the genesis can check it.
    pub fn proves(&self, params: &ChainParams) -> bool {
        let hashes = (self.first.header.hash(), self.second.header.hash());
        let (Ok(first), Ok(second)) = hashes else {
            return false;
        };
        let signed = |hash: &Hash32, signed: &SignedHeader| {
            params.is_validator(&signed.signer)
                && crypto::verify(&signed.signer, hash, &signed.signature).is_ok()
        };
        self.first.header.height == self.second.header.height
            && first != second
            && signed(&first, &self.first)
            && signed(&second, &self.second)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use halfveil_ledger::testkit::TestChain;
    use halfveil_ledger::TimeMs;

    use super::*;

    /// `header` signed by `key`.
    fn signed_by(header: &SignedHeader, key: &crypto::SigningKey) -> SignedHeader {
        let hash = header.header.hash().unwrap();
        SignedHeader {
            header: header.header.clone(),
            signer: crypto::public_key(key),
            signature: crypto::sign(key, &hash),
        }
    }

    /// With three replicas: one block signed by two replicas is one block, not evidence;
    /// two blocks at one height are evidence whichever replicas signed them; a key that is
    /// not in genesis, or a signature by another key than the one named, proves nothing.
    #[test]
    fn replicas_signing_one_block_agree_and_two_blocks_are_evidence() {
        let mut chain = TestChain::new(7, 1, 1, 1);
        let replicas: Vec<crypto::SigningKey> = (0..3)
            .map(|_| crypto::generate_signing_key(&mut rand_core::OsRng))
            .collect();
        let outsider = replicas[2].clone();
        chain
            .params
            .validator_keys
            .extend(replicas[..2].iter().map(crypto::public_key));
        let (block, _) = chain.build(Vec::new(), Vec::new()).unwrap();
        let first = block.signed.clone();
        let same_by_two = signed_by(&first, &replicas[0]);
        assert!(!Evidence::new(first.clone(), same_by_two).proves(&chain.params));

        let mut other = first.clone();
        other.header.time = TimeMs(other.header.time.0 + 1);
        let other_by_three = signed_by(&other, &replicas[1]);
        let evidence = Evidence::new(first.clone(), other_by_three.clone());
        assert!(evidence.proves(&chain.params));
        assert_eq!(
            Evidence::decode(&evidence.row().unwrap().1).unwrap(),
            evidence
        );
        assert!(
            Evidence::new(signed_by(&first, &replicas[1]), other_by_three.clone())
                .proves(&chain.params)
        );

        let by_outsider = signed_by(&other, &outsider);
        assert!(!Evidence::new(first.clone(), by_outsider).proves(&chain.params));
        let mut misnamed = other_by_three;
        misnamed.signer = chain.params.validator_keys[0];
        assert!(!Evidence::new(first, misnamed).proves(&chain.params));
    }
}
