//! Runs of blocks: every rule of [`apply`] block by block, the signatures of the whole run
//! as one batch.

use super::{apply, apply_inner, SigCheck, Signatures};
use crate::crypto::SignatureBatch;
use crate::error::{ApplyError, Violation};
use crate::state::{ChainParams, State};
use crate::types::{Block, Height};

/// Applies `blocks` in order to `state`, with every rule of [`apply`], but verifies the
/// signatures of all of them as one batch spread over the cores: an auditor's replay of
/// small blocks goes as fast as one of large blocks. The first violation in chain order is
/// returned with the index of its block in `blocks`, as [`apply`] would find it block by
/// block; `state` has then taken the blocks before it, and possibly the one that broke a
/// rule, so a caller stops there.
pub fn apply_blocks(
    params: &ChainParams,
    state: &mut State,
    blocks: &[Block],
) -> Result<(), RunError> {
    apply_blocks_pending(params, state, blocks)?.verify()
}

/// The first violation in a run of blocks: the index of its block in the run, and what
/// [`apply`] says of that block.
pub type RunError = Box<(usize, ApplyError)>;

/// The signatures of a run of blocks that [`apply_blocks_pending`] applied, still to be
/// verified. It owns everything it needs, so it can be verified on another thread while the
/// next run is applied.
#[derive(Debug)]
pub struct PendingSignatures {
    batch: SignatureBatch<(usize, SigCheck)>,
    heights: Vec<Height>,
}

impl PendingSignatures {
    /// Verifies the run's signatures; the first bad one in chain order, with its block's
    /// index in the run.
    pub fn verify(self) -> Result<(), RunError> {
        let heights = self.heights;
        self.batch.verify().map_err(|(index, check)| {
            let (op, violation) = check.place();
            let height = heights.get(index).copied().unwrap_or_default();
            Box::new((
                index,
                ApplyError {
                    height,
                    op,
                    violation,
                },
            ))
        })
    }

    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// [`apply_blocks`] without the final signature check: `state` takes every block whose
/// other rules hold, and the returned signatures must verify before the run counts as
/// valid. A violation found here is already the first in chain order (the run's
/// signatures before it were checked).
pub fn apply_blocks_pending(
    params: &ChainParams,
    state: &mut State,
    blocks: &[Block],
) -> Result<PendingSignatures, RunError> {
    // The headers' signatures first: they need no state.
    let mut hashes = Vec::with_capacity(blocks.len());
    let mut headers = SignatureBatch::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let Ok(hash) = block.header().hash() else {
            break;
        };
        // An unknown signer is refused by the header's rules below; its signature is
        // checked like any other meanwhile.
        headers.push(index, &block.signed.signer, &hash, &block.signed.signature);
        hashes.push(hash);
    }
    let good_headers = match headers.verify() {
        Ok(()) => hashes.len(),
        Err(first_bad) => first_bad,
    };
    let mut pending = PendingSignatures {
        batch: SignatureBatch::default(),
        heights: blocks.iter().map(|block| block.header().height).collect(),
    };
    // `good_headers` is at most the number of hashes: each block with a hash is zipped to it.
    for ((index, block), hash) in blocks.iter().enumerate().zip(&hashes).take(good_headers) {
        match apply_inner(params, state, block, Signatures::Deferred) {
            Ok((change, signatures)) => {
                if let Some(signatures) = signatures {
                    pending.batch.append(signatures, |check| (index, check));
                }
                state.commit(&change, *hash);
            }
            Err(deferred_error) => {
                // An earlier block's bad signature comes first. Then this block is checked
                // again with its signatures first, so the violation named is the one
                // `apply` names (a bad credential, not the root it also breaks).
                pending.verify()?;
                let error = apply(params, state, block).err().unwrap_or(deferred_error);
                return Err(Box::new((index, error)));
            }
        }
    }
    match blocks.get(good_headers) {
        // The first block whose header does not hash or verify: `apply` names the first
        // rule it breaks (a wrong height, say, before the signature).
        Some(block) => {
            pending.verify()?;
            let error = apply(params, state, block)
                .err()
                .unwrap_or_else(|| ApplyError {
                    height: block.header().height,
                    op: None,
                    violation: Violation::BadBlockSignature,
                });
            Err(Box::new((good_headers, error)))
        }
        None => Ok(pending),
    }
}
