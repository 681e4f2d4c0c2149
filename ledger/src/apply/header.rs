//! The header's own rules, and its roots against the body's.

use crate::error::Violation;
use crate::state::{ChainParams, State, StateChange};
use crate::types::{Block, BlockHeader, VERSION};

/// The header's rules that need no signature and no body run, in the order they are
/// checked: version, chain, height, parent, time, signer, op count.
pub(super) fn check_header(
    params: &ChainParams,
    state: &State,
    block: &Block,
) -> Result<(), Violation> {
    let header = block.header();
    if header.version != VERSION {
        return Err(Violation::BlockVersion {
            version: header.version,
        });
    }
    if header.chain_id != params.chain_id {
        return Err(Violation::WrongChain {
            found: header.chain_id.to_string(),
            expected: params.chain_id.to_string(),
        });
    }
    if Some(header.height) != state.height.next() {
        return Err(Violation::WrongHeight {
            found: header.height,
            head: state.height,
        });
    }
    if header.parent != state.head_hash {
        return Err(Violation::WrongParent {
            found: header.parent,
            expected: state.head_hash,
        });
    }
    if header.time <= state.time {
        return Err(Violation::TimeNotIncreasing {
            time: header.time,
            previous: state.time,
        });
    }
    if !params.is_validator(&block.signed.signer) {
        return Err(Violation::UnknownSigner);
    }
    if usize::try_from(header.op_count).ok() != Some(block.ops.len()) {
        return Err(Violation::OpCountMismatch {
            header: header.op_count,
            body: block.ops.len(),
        });
    }
    Ok(())
}

/// The header's roots against the ones its body computed: op, attestation, then state.
pub(super) fn check_roots(header: &BlockHeader, change: &StateChange) -> Result<(), Violation> {
    let roots = [
        (header.op_root, change.op_root, "op"),
        (
            header.attestation_root,
            change.attestation_root,
            "attestation",
        ),
        (header.state_root, change.state_root, "state"),
    ];
    for (in_header, computed, which) in roots {
        if in_header != computed {
            let violation = match which {
                "op" => Violation::OpRootMismatch {
                    header: in_header,
                    computed,
                },
                "attestation" => Violation::AttestationRootMismatch {
                    header: in_header,
                    computed,
                },
                _ => Violation::StateRootMismatch {
                    header: in_header,
                    computed,
                },
            };
            return Err(violation);
        }
    }
    Ok(())
}
