//! A replica installs a snapshot: the leader purged the raft log entries that would bring
//! this replica's chain up to date, and sent instead the point the chain must reach (see
//! `crate::replica::LogPolicy`). The service fetches the blocks it lacks from the other
//! replicas, checks each fully as a bank checks a synced block (`Service::accept_block`:
//! the rules, the IM replica's signature, the attestations), and writes raft's applied log
//! id in the same synced batch as the block at the point. The state machine hears once that
//! batch is on disk; a crash before leaves the applied log id where it was, and the
//! snapshot is installed again from the blocks already written.

use std::sync::Arc;
use std::time::Duration;

use halfveil_ledger::{Block, Height};
use halfveil_store::{LocalRow, Store};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::ReplicaInput;
use crate::protocol::{Request, Response, SYNC_BLOCKS_MAX};
use crate::replica::{Applied, ChainError, ChainPoint};
use crate::service::{Input, Role, Service};

/// Fetches in a row that bring no block before the install gives up (the state machine
/// then stops the replica's raft node; a restart tries again).
const STALLS_MAX: u32 = 50;
/// The pause before asking again after a fetch that brought nothing.
const STALL_PAUSE: Duration = Duration::from_millis(200);

/// What a replica installing a snapshot at `point` does next, its head being `head`.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The chain is at the point.
    Done,
    /// Fetch the blocks `from..=to`.
    Fetch { from: Height, to: Height },
    /// The chain holds another block at the point's height, or is past it.
    Impossible(String),
}

/// The next step of an install (pure).
pub fn step(head: ChainPoint, point: ChainPoint) -> Step {
    if head.height > point.height {
        return Step::Impossible(format!(
            "this replica's chain is at height {}, past the snapshot's {}",
            head.height, point.height
        ));
    }
    if head.height == point.height {
        return if head.hash == point.hash {
            Step::Done
        } else {
            Step::Impossible(format!(
                "this replica holds another block at the snapshot's height {}",
                point.height
            ))
        };
    }
    match halfveil_consensus::sync::range(head.height, point.height, SYNC_BLOCKS_MAX) {
        Some((from, to)) => Step::Fetch { from, to },
        None => Step::Done,
    }
}

/// An install under way.
#[derive(Debug)]
pub struct Installing {
    point: ChainPoint,
    /// Raft's applied log id, written with the block at the point.
    applied: LocalRow,
    reply: oneshot::Sender<Result<Applied, ChainError>>,
    /// Which replica (genesis index) is asked, and how many fetches in a row brought nothing.
    source: usize,
    stalls: u32,
}

impl Service {
    fn head_point(&self) -> ChainPoint {
        ChainPoint {
            height: self.state.height,
            hash: self.state.head_hash,
        }
    }

    /// Begins installing the snapshot at `point` (see the module doc).
    pub(super) fn replica_install(
        &mut self,
        point: ChainPoint,
        applied: LocalRow,
        reply: oneshot::Sender<Result<Applied, ChainError>>,
    ) {
        let own = self.genesis.im_replica(&self.own_peer).unwrap_or(0);
        let replicas = self.genesis.im_peer_ids.len().max(1);
        let leader = self
            .im_replica()
            .and_then(|replica| replica.leader())
            .and_then(|id| usize::try_from(id.saturating_sub(1)).ok())
            .filter(|index| *index != own);
        let Role::IdentityManager(im) = &mut self.role else {
            let _ = reply.send(Err(ChainError("not an identity manager".into())));
            return;
        };
        info!(height = %point.height, head = %self.state.height, "installing a snapshot");
        im.replicated.installing = Some(Installing {
            point,
            applied,
            reply,
            source: leader.unwrap_or((own + 1) % replicas),
            stalls: 0,
        });
        self.install_next();
    }

    /// Fetches the next blocks, or finishes once the chain is at the point.
    fn install_next(&mut self) {
        let head = self.head_point();
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        let Some(installing) = im.replicated.installing.as_ref() else {
            return;
        };
        match step(head, installing.point) {
            Step::Fetch { from, to } => {
                let peer = self.genesis.im_peer_ids.get(installing.source).copied();
                let pause = (installing.stalls > 0).then_some(STALL_PAUSE);
                self.install_fetch(peer, from, to, pause);
            }
            Step::Done => {
                // Already at the point when the install began: the applied log id alone.
                let Some(installing) = im.replicated.installing.take() else {
                    return;
                };
                let store = Arc::clone(&self.store);
                tokio::task::spawn_blocking(move || {
                    let written = store
                        .local_put(&[installing.applied])
                        .map_err(ChainError::of);
                    let _ = installing.reply.send(written.map(|()| Applied::Nothing));
                });
            }
            Step::Impossible(reason) => self.install_failed(reason),
        }
    }

    fn install_fetch(
        &self,
        peer: Option<libp2p::PeerId>,
        from: Height,
        to: Height,
        pause: Option<Duration>,
    ) {
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
            let fetched = match peer {
                None => Err("no such replica".to_owned()),
                Some(peer) => match net.request(peer, Request::Blocks { from, to }).await {
                    Ok(Response::Blocks(blocks)) => Ok(blocks),
                    Ok(_) => Err("unexpected answer to a block request".to_owned()),
                    Err(error) => Err(error.to_string()),
                },
            };
            let input = ReplicaInput::Fetched { fetched };
            let _ = inputs.send(Input::Replica(input)).await;
        });
    }

    /// Blocks fetched for the install: each that continues the head is checked and
    /// applied; the one at the point carries the applied log id to disk.
    pub(super) async fn install_fetched(&mut self, fetched: Result<Vec<Block>, String>) {
        let before = self.state.height;
        match fetched {
            Ok(blocks) => {
                for block in blocks {
                    if !self.install_block(block).await {
                        break;
                    }
                }
            }
            Err(error) => warn!(%error, "fetching blocks for the snapshot failed"),
        }
        if self.state.height == before {
            if let Some(reason) = self.install_stalled() {
                self.install_failed(reason);
                return;
            }
        } else if let Some(installing) = self.installing() {
            installing.stalls = 0;
        }
        self.install_next();
    }

    fn installing(&mut self) -> Option<&mut Installing> {
        match &mut self.role {
            Role::IdentityManager(im) => im.replicated.installing.as_mut(),
            Role::Bank(_) => None,
        }
    }

    /// A fetch brought nothing: ask the next replica (not this one); why to give up, once
    /// too many did.
    fn install_stalled(&mut self) -> Option<String> {
        let replicas = self.genesis.im_peer_ids.clone();
        let own = self.own_peer;
        let installing = self.installing()?;
        installing.stalls += 1;
        for _ in 0..2 {
            installing.source = (installing.source + 1) % replicas.len().max(1);
            if replicas.get(installing.source) != Some(&own) {
                break;
            }
        }
        (installing.stalls > STALLS_MAX).then(|| {
            format!(
                "no replica served the blocks up to height {} ({} fetches brought none)",
                installing.point.height, installing.stalls
            )
        })
    }

    /// Applies one fetched block if it is the next one; false once no more should be.
    async fn install_block(&mut self, block: Block) -> bool {
        let Some(point) = self.installing().map(|installing| installing.point) else {
            return false;
        };
        if Some(block.height()) != self.state.height.next() || block.height() > point.height {
            return false;
        }
        if block.height() < point.height {
            return self.accept_block(Arc::new(block), None).await;
        }
        if block.header().hash().ok() != Some(point.hash) {
            warn!(height = %point.height, "a replica served another block at the snapshot's point");
            return false;
        }
        let Role::IdentityManager(im) = &mut self.role else {
            return false;
        };
        let Some(installing) = im.replicated.installing.take() else {
            return false;
        };
        let local = vec![installing.applied];
        if !self.accept_block_with(Arc::new(block), None, local).await {
            let reason = format!("the block at {} breaks the rules", point.height);
            warn!(%reason, "cannot install the snapshot");
            let _ = installing.reply.send(Err(ChainError(reason)));
            return false;
        }
        info!(height = %point.height, "snapshot installed: the chain is at its point");
        if let Role::IdentityManager(im) = &mut self.role {
            im.replicated
                .applying
                .insert(point.height, (point.hash, installing.reply));
        }
        false
    }

    fn install_failed(&mut self, reason: String) {
        if let Role::IdentityManager(im) = &mut self.role {
            if let Some(installing) = im.replicated.installing.take() {
                warn!(%reason, "cannot install the snapshot");
                let _ = installing.reply.send(Err(ChainError(reason)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use halfveil_ledger::Hash32;

    use super::*;

    fn at(height: u64, hash: u8) -> ChainPoint {
        ChainPoint {
            height: Height(height),
            hash: Hash32([hash; 32]),
        }
    }

    #[test]
    fn a_chain_behind_fetches_at_most_a_request_of_blocks_at_a_time() {
        let to = Height(SYNC_BLOCKS_MAX);
        assert_eq!(
            step(at(0, 0), at(1000, 9)),
            Step::Fetch {
                from: Height(1),
                to
            }
        );
        assert_eq!(
            step(at(990, 1), at(1000, 9)),
            Step::Fetch {
                from: Height(991),
                to: Height(1000)
            }
        );
    }

    #[test]
    fn a_chain_at_the_point_is_done_and_one_that_differs_or_is_past_it_cannot_install() {
        assert_eq!(step(at(1000, 9), at(1000, 9)), Step::Done);
        assert!(matches!(
            step(at(1000, 8), at(1000, 9)),
            Step::Impossible(reason) if reason.contains("another block")
        ));
        assert!(matches!(
            step(at(1001, 9), at(1000, 9)),
            Step::Impossible(reason) if reason.contains("past")
        ));
    }
}
