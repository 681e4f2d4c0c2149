//! Receipts: a payer's proof that a transfer was committed, checkable with only the IM
//! replicas' public keys from genesis.

use crate::crypto;
use crate::error::{CodecError, ProofError};
use crate::hash::{merkle_proof, Hash32};
use crate::state::StateChange;
use crate::types::{Block, Op, PublicKey, Receipt, VERSION};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("unsupported receipt version {version}")]
    Version { version: u8 },
    #[error("the receipt's op is not a transfer")]
    NotATransfer,
    #[error("the receipt's transfer has id {found}, not {expected}")]
    WrongTransfer { found: Hash32, expected: Hash32 },
    #[error("the receipt's header is not signed by the identity manager")]
    BadSignature,
    #[error("the receipt's header is signed by a key that is not one of the identity manager's")]
    UnknownSigner,
    #[error("the inclusion proof does not lead to the header's op root")]
    NotIncluded,
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl Receipt {
    /// The receipt of the op at `index` of `block`; `None` if it is not a transfer.
    pub fn for_op(block: &Block, change: &StateChange, index: usize) -> Option<Receipt> {
        let Some(Op::Transfer(transfer)) = block.ops.get(index) else {
            return None;
        };
        let transfer_id = transfer.request.transfer.id().ok()?;
        Some(Receipt {
            version: VERSION,
            transfer_id,
            op: Op::Transfer(transfer.clone()),
            header: block.signed.clone(),
            proof: merkle_proof(&change.op_hashes, index)?,
        })
    }

    /// Checks the receipt against the IM replicas' validator keys (genesis order).
    pub fn verify(&self, validator_keys: &[PublicKey]) -> Result<(), ReceiptError> {
        if self.version != VERSION {
            return Err(ReceiptError::Version {
                version: self.version,
            });
        }
        let Op::Transfer(transfer) = &self.op else {
            return Err(ReceiptError::NotATransfer);
        };
        let found = transfer.request.transfer.id()?;
        if found != self.transfer_id {
            return Err(ReceiptError::WrongTransfer {
                found,
                expected: self.transfer_id,
            });
        }
        if !validator_keys.contains(&self.header.signer) {
            return Err(ReceiptError::UnknownSigner);
        }
        let header_hash = self.header.header.hash()?;
        crypto::verify(&self.header.signer, &header_hash, &self.header.signature)
            .map_err(|_| ReceiptError::BadSignature)?;
        // The leaf count must be the block's op count: a proof re-shaped for another tree size
        // can reach the same root with another index, and the index is part of the receipt.
        if self.proof.leaf_count != self.header.header.op_count
            || self.proof.root(&self.op.hash()?)? != self.header.header.op_root
        {
            return Err(ReceiptError::NotIncluded);
        }
        Ok(())
    }
}
