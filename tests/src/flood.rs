//! A genesis peer gone bad, played by tests and by the flood benchmark: it holds a bank's
//! node key (as a thief of the key file would), connects to the other nodes under that
//! bank's peer id, and floods their link protocol with frames that do not decode and with
//! lengths over the frame limit, as fast as it can, coming back whenever it is cut off.
//! Nothing in the product can be told to do this.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use halfveil_ledger::Hash32;
use halfveil_node::network::peer_of;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId};

/// What the flooder saw.
#[derive(Clone, Debug, Default)]
pub struct FloodReport {
    /// Streams it opened and wrote garbage to.
    pub streams: u64,
    /// Connections it established (the first, and each time it came back).
    pub connections: u64,
    /// Connections closed on it.
    pub closed: u64,
    /// Dials that failed (after a ban: refused by the target).
    pub refused: u64,
}

#[derive(Default)]
struct Counts {
    streams: AtomicU64,
    connections: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
}

impl Counts {
    fn report(&self) -> FloodReport {
        FloodReport {
            streams: self.streams.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Floods `targets` (addresses ending in `/p2p/<id>`) for `period` as the holder of
/// `keypair`, on the link protocol of the chain whose genesis hash is `genesis_hash`.
pub async fn flood(
    keypair: libp2p::identity::Keypair,
    genesis_hash: &Hash32,
    targets: Vec<Multiaddr>,
    period: Duration,
) -> FloodReport {
    let protocol = halfveil_node::protocol::link_protocol_name(genesis_hash).expect("protocol");
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("transport")
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .expect("behaviour")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let control = swarm.behaviour().new_control();
    let counts = Arc::new(Counts::default());
    let deadline = tokio::time::Instant::now() + period;
    let writers: Vec<_> = targets
        .iter()
        .filter_map(peer_of)
        .map(|peer| {
            let control = control.clone();
            let protocol = protocol.clone();
            let counts = Arc::clone(&counts);
            tokio::spawn(write_garbage(control, protocol, peer, counts, deadline))
        })
        .collect();
    let mut redial = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = redial.tick() => {
                for address in &targets {
                    let connected = peer_of(address).is_some_and(|peer| swarm.is_connected(&peer));
                    if !connected {
                        let _ = swarm.dial(address.clone());
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { .. } => {
                    counts.connections.fetch_add(1, Ordering::Relaxed);
                }
                SwarmEvent::ConnectionClosed { .. } => {
                    counts.closed.fetch_add(1, Ordering::Relaxed);
                }
                SwarmEvent::OutgoingConnectionError { .. } => {
                    counts.refused.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
        }
    }
    for writer in writers {
        writer.abort();
    }
    counts.report()
}

/// Opens stream after stream to `peer` and writes one bad frame on each: a length over
/// the 16 MiB limit, or three bytes that decode to nothing.
async fn write_garbage(
    mut control: libp2p_stream::Control,
    protocol: libp2p::StreamProtocol,
    peer: PeerId,
    counts: Arc<Counts>,
    deadline: tokio::time::Instant,
) {
    let limit = u32::try_from(halfveil_node::links::FRAME_BYTES_MAX).unwrap_or(u32::MAX);
    let oversized = limit.saturating_add(1).to_le_bytes().to_vec();
    let undecodable = vec![3, 0, 0, 0, 0xff, 0xff, 0xff];
    let mut turn = 0u64;
    while tokio::time::Instant::now() < deadline {
        let Ok(mut stream) = control.open_stream(peer, protocol.clone()).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let garbage = if turn.is_multiple_of(2) {
            &oversized
        } else {
            &undecodable
        };
        turn += 1;
        if stream.write_all(garbage).await.is_ok() {
            counts.streams.fetch_add(1, Ordering::Relaxed);
        }
        let _ = stream.close().await;
    }
}
