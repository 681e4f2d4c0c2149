//! Building a block: run the body, fill the header from the computed roots, sign.
//!
//! Pure: the signing key and the time come in from outside. The IM's driver (the consensus
//! crate's state machine) decides *when* to sign and guards against signing a height twice.

use crate::apply::{execute, execute_admitted};
use crate::crypto::{self, SigningKey};
use crate::error::ApplyError;
use crate::state::{ChainParams, State, StateChange};
use crate::types::{
    BatchAttestation, Block, BlockHeader, Height, Op, SignedHeader, TimeMs, VERSION,
};

/// An unsigned block and what it changes.
#[derive(Debug)]
pub struct Proposal {
    pub header: BlockHeader,
    pub attestations: Vec<BatchAttestation>,
    pub ops: Vec<Op>,
    pub change: StateChange,
}

/// Runs `ops` on `state` as the next block at `time` and fills in its header.
pub fn propose(
    params: &ChainParams,
    state: &State,
    time: TimeMs,
    attestations: Vec<BatchAttestation>,
    ops: Vec<Op>,
) -> Result<Proposal, ApplyError> {
    propose_or_return(params, state, time, attestations, ops, Credentials::Check)
        .map_err(|refused| refused.error)
}

/// Whether [`propose_or_return`] verifies the transfers' credentials and attestations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    Check,
    /// The caller verified them already (the IM, on receipt; see
    /// [`crate::apply::execute_admitted`]).
    Verified,
}

/// A proposal refused by the rules, with its attestations and ops handed back so the caller
/// can drop the offending op and try again without copying the rest.
#[derive(Debug)]
pub struct Refused {
    pub error: ApplyError,
    pub attestations: Vec<BatchAttestation>,
    pub ops: Vec<Op>,
}

/// [`propose`], returning the inputs on failure.
pub fn propose_or_return(
    params: &ChainParams,
    state: &State,
    time: TimeMs,
    attestations: Vec<BatchAttestation>,
    ops: Vec<Op>,
    credentials: Credentials,
) -> Result<Proposal, Box<Refused>> {
    let executed = next_height(state, time).and_then(|height| {
        let change = match credentials {
            Credentials::Check => execute(params, state, height, time, &attestations, &ops),
            Credentials::Verified => {
                execute_admitted(params, state, height, time, &attestations, &ops)
            }
        }?;
        Ok((height, change))
    });
    let (height, change) = match executed {
        Ok(executed) => executed,
        Err(error) => {
            return Err(Box::new(Refused {
                error,
                attestations,
                ops,
            }))
        }
    };
    let header = header_of(params, state, height, time, &change, ops.len());
    Ok(Proposal {
        header,
        attestations,
        ops,
        change,
    })
}

/// The height of the block after `state`'s head, if one can follow it at `time`: the
/// header rules a proposal can break before its body runs.
fn next_height(state: &State, time: TimeMs) -> Result<Height, ApplyError> {
    let Some(height) = state.height.next() else {
        return Err(ApplyError {
            height: state.height,
            op: None,
            violation: crate::error::Violation::WrongHeight {
                found: state.height,
                head: state.height,
            },
        });
    };
    if time <= state.time {
        return Err(ApplyError {
            height,
            op: None,
            violation: crate::error::Violation::TimeNotIncreasing {
                time,
                previous: state.time,
            },
        });
    }
    Ok(height)
}

/// The header of the next block at `height` and `time`, with the roots of its executed
/// body.
fn header_of(
    params: &ChainParams,
    state: &State,
    height: Height,
    time: TimeMs,
    change: &StateChange,
    op_count: usize,
) -> BlockHeader {
    BlockHeader {
        version: VERSION,
        chain_id: params.chain_id.clone(),
        height,
        parent: state.head_hash,
        time,
        op_root: change.op_root,
        attestation_root: change.attestation_root,
        state_root: change.state_root,
        // Bounded by the block op limit, far below u32::MAX.
        op_count: u32::try_from(op_count).unwrap_or(u32::MAX),
    }
}

impl Proposal {
    /// Signs the header. Call only after the guard allowed this height.
    pub fn sign(
        self,
        validator: &SigningKey,
    ) -> Result<(Block, StateChange), crate::error::CodecError> {
        let hash = self.header.hash()?;
        let signature = crypto::sign(validator, &hash);
        let block = Block {
            signed: SignedHeader {
                header: self.header,
                signer: crypto::public_key(validator),
                signature,
            },
            attestations: self.attestations,
            ops: self.ops,
        };
        Ok((block, self.change))
    }
}
