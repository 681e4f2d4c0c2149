//! Evidence of equivocation: two headers, each carrying a valid signature of the identity
//! manager's validator key, at one height. A bank that receives a second block at a height
//! it holds keeps both signed headers (node-local, synced), stops following, and reports it
//! (`hv_status.halted`, `hv_evidence`, the metric `halfveil_equivocations_total`, an error
//! log). At its next start it finds the evidence and stays stopped until an operator has
//! dealt with it (see the operator guide).

use halfveil_ledger::{codec, crypto, ChainParams, CodecError, Hash32, Height, SignedHeader};
use halfveil_store::StoreError;
use serde::{Deserialize, Serialize};

/// Prefix of evidence rows in the store's node-local table.
pub const EVIDENCE_PREFIX: &[u8] = b"evidence/";
const EVIDENCE_VERSION: u8 = 1;
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
    /// both signed by the genesis validator key. Anyone holding the genesis can check it.
    pub fn proves(&self, params: &ChainParams) -> bool {
        let hashes = (self.first.header.hash(), self.second.header.hash());
        let (Ok(first), Ok(second)) = hashes else {
            return false;
        };
        let signed = |hash: &Hash32, signed: &SignedHeader| {
            crypto::verify(&params.validator_key, hash, &signed.signature).is_ok()
        };
        self.first.header.height == self.second.header.height
            && first != second
            && signed(&first, &self.first)
            && signed(&second, &self.second)
    }
}
