//! The libp2p swarm (TCP, Noise, Yamux): blocks by gossipsub; batches, approvals and
//! refusals on persistent links (`links.rs`); account openings, status and ranged sync by
//! request-response; identify and ping. Only the peers genesis names may
//! connect (an allow-list), connections are limited, and protocol and topic names carry the
//! genesis hash.
//!
//! One task owns the swarm; the node reaches it through a [`NetworkHandle`] (a bounded
//! channel) and hears from it through its bounded input channel, which carries
//! [`NetEvent`]s among its other inputs.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, core::transport::TransportError, gossipsub, identify,
    noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::links::{self, Frame, Link, LinkError, LinkEvent};
use crate::metrics::Metrics;
use crate::peer_score::{Offence, PeerScores, Verdict};
use crate::protocol::{
    self, offence_of, ProtocolNameError, Request, Response, WireCodec, MESSAGE_BYTES_MAX,
};

/// Bound of the command and event channels.
const CHANNEL_CAPACITY: usize = 1024;
/// Events held for the node before the swarm stops being polled (see `NetworkTask::run`).
const UNDELIVERED_MAX: usize = 1024;
/// How long a request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often unconnected peers are dialled again.
const REDIAL_INTERVAL: Duration = Duration::from_secs(1);
/// How often requests on links are checked for [`REQUEST_TIMEOUT`].
const TIMEOUT_SWEEP: Duration = Duration::from_millis(500);

/// Why the swarm task could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    ProtocolName(#[from] ProtocolNameError),
    /// The transport stack (TCP, Noise, Yamux) could not be built.
    #[error("cannot set up TCP/Noise/Yamux: {0}")]
    Transport(#[source] noise::Error),
    /// Gossipsub or another behaviour refused its configuration.
    #[error("cannot build the network behaviour: {0}")]
    Behaviour(#[source] libp2p::BehaviourBuilderError),
    #[error(transparent)]
    Links(#[from] LinkError),
    /// The listen address could not be bound (in use, not local, ...).
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: Multiaddr,
        #[source]
        source: std::io::Error,
    },
    /// The listen address is not one the transport can listen on.
    #[error("cannot listen on {address}: {source}")]
    ListenAddress {
        address: Multiaddr,
        #[source]
        source: TransportError<std::io::Error>,
    },
    #[error("cannot subscribe to blocks: {0}")]
    Subscribe(#[source] gossipsub::SubscriptionError),
}

/// Why a request to a peer got no response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the network task has stopped")]
    NetworkStopped,
    #[error("the network task dropped the request")]
    Dropped,
    /// A request-response exchange failed.
    #[error("request to {peer} failed: {source}")]
    Outbound {
        peer: PeerId,
        #[source]
        source: request_response::OutboundFailure,
    },
    /// The request could not be queued on the peer's link.
    #[error("request to {peer} failed: {source}")]
    Send {
        peer: PeerId,
        #[source]
        source: SendError,
    },
    /// The link the request was written to broke.
    #[error("request to {peer} failed: its link failed")]
    LinkFailed { peer: PeerId },
    #[error("request to {peer} failed: the peer disconnected")]
    Disconnected { peer: PeerId },
    #[error("request to {peer} failed: no response in {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout { peer: PeerId },
}

/// Why a frame could not be queued on a peer's link.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("not connected")]
    NotConnected,
    #[error(transparent)]
    Frame(#[from] LinkError),
    /// The link was opened and is already gone.
    #[error("no link")]
    NoLink,
    /// [`links::LINK_QUEUE`] frames are already waiting.
    #[error("the link is overloaded")]
    Overloaded,
    #[error("the link has closed")]
    Closed,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    rpc: request_response::Behaviour<WireCodec>,
    links: libp2p_stream::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// What the node asks of the network.
#[derive(Debug)]
enum NetCommand {
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, RequestError>>,
    },
    Respond {
        channel: Reply,
        response: Response,
    },
    Publish {
        bytes: Vec<u8>,
    },
    Validated {
        message: gossipsub::MessageId,
        source: PeerId,
        verdict: BlockVerdict,
    },
}

/// What the node made of a gossiped block, which decides whether gossip relays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Checked and applied: relay it to the peers that may not have it.
    Relay,
    /// Already known, or not checkable yet: do not relay, no fault of the sender.
    Drop,
    /// Fails its checks: do not relay.
    Invalid,
    /// Not a block at all (does not decode): do not relay, and count it against the peer
    /// that sent it.
    Malformed,
}

impl BlockVerdict {
    /// The verdict's metric label.
    pub fn label(self) -> &'static str {
        match self {
            BlockVerdict::Relay => "relay",
            BlockVerdict::Drop => "drop",
            BlockVerdict::Invalid => "invalid",
            BlockVerdict::Malformed => "malformed",
        }
    }
}

/// Where the answer to a peer's request goes: back on its request-response stream, or
/// as a frame on this node's link to the peer.
#[derive(Debug)]
pub enum Reply {
    Rpc(ResponseChannel<Response>),
    Link { peer: PeerId, id: u64 },
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetEvent {
    Request {
        peer: PeerId,
        request: Box<Request>,
        channel: Reply,
    },
    Block {
        peer: PeerId,
        /// Gossip's name for the message, to report the verdict under.
        message: gossipsub::MessageId,
        bytes: Vec<u8>,
    },
    Connected(PeerId),
    Disconnected(PeerId),
}

/// The node's way to the swarm task.
#[derive(Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<NetCommand>,
    /// Opens and accepts streams of other protocols on the swarm's connections (the IM
    /// replicas' raft).
    pub streams: libp2p_stream::Control,
}

impl std::fmt::Debug for NetworkHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NetworkHandle")
            .finish_non_exhaustive()
    }
}

impl NetworkHandle {
    /// Sends a request and waits for its response.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, RequestError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(NetCommand::Request {
                peer,
                request,
                reply,
            })
            .await
            .map_err(|_| RequestError::NetworkStopped)?;
        response.await.map_err(|_| RequestError::Dropped)?
    }

    pub async fn respond(&self, channel: Reply, response: Response) {
        if self
            .commands
            .send(NetCommand::Respond { channel, response })
            .await
            .is_err()
        {
            warn!("network task stopped; response dropped");
        }
    }

    /// Tells gossip what became of a block it delivered; it relays only [`BlockVerdict::Relay`].
    /// Never waits: with the command queue full the verdict is dropped, and gossip forgets the
    /// message unrelayed after a few heartbeats, which costs nothing but the relay.
    pub fn report_block(
        &self,
        message: gossipsub::MessageId,
        source: PeerId,
        verdict: BlockVerdict,
    ) {
        let command = NetCommand::Validated {
            message,
            source,
            verdict,
        };
        if self.commands.try_send(command).is_err() {
            debug!("network queue full or stopped; block verdict dropped");
        }
    }

    pub async fn publish_block(&self, bytes: Vec<u8>) {
        if self
            .commands
            .send(NetCommand::Publish { bytes })
            .await
            .is_err()
        {
            warn!("network task stopped; block not published");
        }
    }
}

/// How to start the network.
#[derive(Debug)]
pub struct NetworkSetup {
    pub keypair: libp2p::identity::Keypair,
    pub listen: Multiaddr,
    pub peers: Vec<Multiaddr>,
    /// Every peer genesis names (the allow-list); this node's own id is skipped.
    pub allowed: Vec<PeerId>,
    pub genesis_hash: halfveil_ledger::Hash32,
    pub connections_max: u32,
}

/// Starts the swarm task, which hands its events to `events` (the node's own input queue,
/// so an event reaches the node without another task in between); returns its handle.
pub fn start<E: From<NetEvent> + Send + 'static>(
    setup: NetworkSetup,
    metrics: Metrics,
    events: mpsc::Sender<E>,
) -> Result<(NetworkHandle, tokio::task::JoinHandle<()>), NetworkError> {
    let mut swarm = build_swarm(&setup)?;
    let link_protocol = protocol::link_protocol_name(&setup.genesis_hash)?;
    let (link_events, link_inbox) = mpsc::channel(CHANNEL_CAPACITY);
    let link_control = swarm.behaviour().links.new_control();
    links::accept(
        link_control.clone(),
        link_protocol.clone(),
        link_events.clone(),
    )?;
    swarm
        .listen_on(setup.listen.clone())
        .map_err(|error| match error {
            // The transport's own error says nothing of the cause; the I/O error does.
            TransportError::Other(source) => NetworkError::Listen {
                address: setup.listen.clone(),
                source,
            },
            source => NetworkError::ListenAddress {
                address: setup.listen.clone(),
                source,
            },
        })?;
    let topic = gossipsub::IdentTopic::new(protocol::blocks_topic(&setup.genesis_hash));
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(NetworkError::Subscribe)?;
    let (command_sender, commands) = mpsc::channel(CHANNEL_CAPACITY);
    let streams = link_control.clone();
    let task = NetworkTask {
        swarm,
        topic,
        peers: setup.peers,
        commands,
        events,
        pending: HashMap::new(),
        link_control,
        link_protocol,
        link_events,
        link_inbox,
        links: HashMap::new(),
        link_pending: HashMap::new(),
        next_id: 1,
        undelivered: VecDeque::new(),
        connected: HashSet::new(),
        scores: PeerScores::default(),
        metrics,
    };
    let join = tokio::spawn(task.run());
    Ok((
        NetworkHandle {
            commands: command_sender,
            streams,
        },
        join,
    ))
}

fn build_swarm(setup: &NetworkSetup) -> Result<Swarm<Behaviour>, NetworkError> {
    let protocol = protocol::protocol_name(&setup.genesis_hash)?;
    let own = setup.keypair.public().to_peer_id();
    let allowed_peers = setup.allowed.clone();
    let connections_max = setup.connections_max;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(setup.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(NetworkError::Transport)?
        .with_behaviour(|key| {
            let mut allowed = allow_block_list::Behaviour::default();
            for peer in allowed_peers.iter().filter(|peer| **peer != own) {
                allowed.allow_peer(*peer);
            }
            // Anonymous messages named by their hash (blocks carry the IM's signature), relayed
            // only once checked and applied (docs/decisions/0017-network-names-and-gossip.md).
            let gossip_config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(MESSAGE_BYTES_MAX)
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(|message: &gossipsub::Message| {
                    gossipsub::MessageId::from(&blake3::hash(&message.data).as_bytes()[..20])
                })
                .mesh_n_low(1)
                .mesh_n(2)
                .mesh_n_high(4)
                .mesh_outbound_min(0)
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .map_err(|error| std::io::Error::other(error.to_string()))?;
            let gossipsub =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)
                    .map_err(std::io::Error::other)?;
            let rpc = request_response::Behaviour::with_codec(
                WireCodec,
                [(protocol.clone(), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(REQUEST_TIMEOUT)
                    .with_max_concurrent_streams(256),
            );
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(connections_max))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(connections_max));
            Ok(Behaviour {
                allowed,
                limits: connection_limits::Behaviour::new(limits),
                gossipsub,
                rpc,
                links: libp2p_stream::Behaviour::new(),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/halfveil/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            })
        })
        .map_err(NetworkError::Behaviour)?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

struct NetworkTask<E> {
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    peers: Vec<Multiaddr>,
    commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<E>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, RequestError>>>,
    link_control: libp2p_stream::Control,
    link_protocol: libp2p::StreamProtocol,
    /// Link tasks report here; the receiver is `link_inbox`.
    link_events: mpsc::Sender<LinkEvent>,
    link_inbox: mpsc::Receiver<LinkEvent>,
    /// This node's outbound link to each peer, opened by the first frame for it.
    links: HashMap<PeerId, Link>,
    /// Requests sent on links, by id: their peer, deadline and waiter.
    link_pending: HashMap<u64, PendingOnLink>,
    /// The id of the next link request or link.
    next_id: u64,
    /// Events the node has not taken yet (see `run`).
    undelivered: VecDeque<E>,
    connected: HashSet<PeerId>,
    /// Each peer's standing: offences lower it, and a low one bans the peer for a while.
    scores: PeerScores<PeerId>,
    metrics: Metrics,
}

/// A request sent on a link, waiting for its response.
struct PendingOnLink {
    peer: PeerId,
    /// The link it was written to.
    link: u64,
    deadline: tokio::time::Instant,
    reply: oneshot::Sender<Result<Response, RequestError>>,
}

/// Requests that go on links: the ones a busy network sends many times a second.
fn on_link(request: &Request) -> bool {
    matches!(
        request,
        Request::Forward(_) | Request::Approve(_) | Request::Rejected(_)
    )
}

/// The peer id at the end of `address` (`.../p2p/<id>`).
pub fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|part| match part {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl<E: From<NetEvent> + Send + 'static> NetworkTask<E> {
    /// Polls the swarm, carries out commands and hands events to the node. It never waits
    /// on the node while commands queue up: the node may itself be waiting to queue a
    /// command (a response, a verdict, a block to publish), and both queues full would be a
    /// deadlock. Events wait here instead; past [`UNDELIVERED_MAX`] the swarm is not polled,
    /// which pushes back on the peers, while commands are still carried out.
    async fn run(mut self) {
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        let mut sweep = tokio::time::interval(TIMEOUT_SWEEP);
        // A permit borrows its sender; a clone keeps that borrow off `self`.
        let events = self.events.clone();
        loop {
            let has_undelivered = !self.undelivered.is_empty();
            let room = self.undelivered.len() < UNDELIVERED_MAX;
            tokio::select! {
                event = self.swarm.select_next_some(), if room => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                permit = events.reserve(), if has_undelivered => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.undelivered.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => {
                        debug!("node stopped listening to the network");
                        self.undelivered.clear();
                    }
                },
                Some(event) = self.link_inbox.recv(), if room => self.on_link_event(event),
                _ = redial.tick() => self.dial_missing(),
                _ = sweep.tick() => {
                    self.expire_link_requests();
                    self.lift_bans();
                }
            }
        }
        debug!("network task stopped");
    }

    fn dial_missing(&mut self) {
        for address in self.peers.clone() {
            let Some(peer) = peer_of(&address) else {
                continue;
            };
            let banned = self.scores.is_banned(&peer, std::time::Instant::now());
            if !banned && !self.connected.contains(&peer) && !self.swarm.is_connected(&peer) {
                if let Err(error) = self.swarm.dial(address.clone()) {
                    debug!(%peer, %error, "dial failed");
                }
            }
        }
    }

    /// Carries out one command of the node.
    fn on_command(&mut self, command: NetCommand) {
        match command {
            NetCommand::Request {
                peer,
                request,
                reply,
            } => self.send_request(peer, request, reply),
            NetCommand::Respond { channel, response } => self.send_response(channel, response),
            NetCommand::Publish { bytes } => self.publish(bytes),
            NetCommand::Validated {
                message,
                source,
                verdict,
            } => self.report_validation(message, source, verdict),
        }
    }

    /// Sends a request on the link to `peer` if it is a frequent one (see [`on_link`]), by
    /// request-response otherwise; `reply` gets the response.
    fn send_request(
        &mut self,
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, RequestError>>,
    ) {
        if !on_link(&request) {
            let id = self.swarm.behaviour_mut().rpc.send_request(&peer, request);
            self.pending.insert(id, reply);
            return;
        }
        let id = self.take_id();
        match self.send_frame(peer, &Frame::Request { id, request }) {
            Ok(link) => {
                let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
                self.link_pending.insert(
                    id,
                    PendingOnLink {
                        peer,
                        link,
                        deadline,
                        reply,
                    },
                );
            }
            Err(source) => {
                self.count_link_request("failed");
                let _ = reply.send(Err(RequestError::Send { peer, source }));
            }
        }
    }

    /// Answers a peer's request the way it came: on its request-response stream, or as a
    /// frame on this node's link to the peer.
    fn send_response(&mut self, channel: Reply, response: Response) {
        match channel {
            Reply::Rpc(channel) => {
                if self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_response(channel, response)
                    .is_err()
                {
                    debug!("response channel closed before the response was sent");
                }
            }
            Reply::Link { peer, id } => {
                if let Err(error) = self.send_frame(peer, &Frame::Response { id, response }) {
                    debug!(%peer, %error, "response not sent");
                }
            }
        }
    }

    /// Publishes a block's bytes on the blocks topic and counts them.
    fn publish(&mut self, bytes: Vec<u8>) {
        let size = bytes.len();
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
        {
            Ok(_) => {
                self.metrics.gossip_published_bytes.inc_by(size as u64);
            }
            Err(error) => warn!(%error, "block not published"),
        }
    }

    /// Tells gossip what the node made of a block it received, which decides whether gossip
    /// relays it; a block that does not decode counts against the peer that sent it.
    fn report_validation(
        &mut self,
        message: gossipsub::MessageId,
        source: PeerId,
        verdict: BlockVerdict,
    ) {
        let acceptance = match verdict {
            BlockVerdict::Relay => gossipsub::MessageAcceptance::Accept,
            BlockVerdict::Drop => gossipsub::MessageAcceptance::Ignore,
            BlockVerdict::Invalid => gossipsub::MessageAcceptance::Reject,
            BlockVerdict::Malformed => {
                self.on_offence(source, Offence::Undecodable);
                gossipsub::MessageAcceptance::Reject
            }
        };
        // False when gossip no longer holds the message (its cache timed out).
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message, &source, acceptance);
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Queues a frame on the link to `peer`, opening the link if there is none (or the
    /// last one has ended); returns the link's id.
    fn send_frame(&mut self, peer: PeerId, frame: &Frame) -> Result<u64, SendError> {
        if !self.connected.contains(&peer) {
            return Err(SendError::NotConnected);
        }
        let bytes = links::encode_frame(frame)?;
        if self
            .links
            .get(&peer)
            .is_none_or(|link| link.frames.is_closed())
        {
            let id = self.take_id();
            let link = links::open(
                self.link_control.clone(),
                self.link_protocol.clone(),
                peer,
                id,
                self.link_events.clone(),
            );
            self.links.insert(peer, link);
        }
        let link = self.links.get(&peer).ok_or(SendError::NoLink)?;
        link.frames
            .try_send(bytes)
            .map(|()| link.id)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => SendError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Frame { peer, frame } => match *frame {
                Frame::Request { id, request } => self.emit(NetEvent::Request {
                    peer,
                    request: Box::new(request),
                    channel: Reply::Link { peer, id },
                }),
                Frame::Response { id, response } => self.on_link_response(peer, id, response),
            },
            LinkEvent::Offence { peer, offence } => self.on_offence(peer, offence),
            LinkEvent::Down { peer, link } => {
                if self.links.get(&peer).is_some_and(|open| open.id == link) {
                    self.links.remove(&peer);
                }
                self.fail_link_requests(
                    |pending| pending.link == link,
                    "failed",
                    |peer| RequestError::LinkFailed { peer },
                );
            }
        }
    }

    fn on_link_response(&mut self, peer: PeerId, id: u64, response: Response) {
        // Only the peer a request went to may answer it.
        let Entry::Occupied(pending) = self.link_pending.entry(id) else {
            return;
        };
        if pending.get().peer == peer {
            let _ = pending.remove().reply.send(Ok(response));
            self.count_link_request("answered");
        }
    }

    fn count_link_request(&self, outcome: &'static str) {
        self.metrics
            .link_requests
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// Fails the link requests `which` picks, counted under `outcome`: their responses
    /// will not come.
    fn fail_link_requests(
        &mut self,
        which: impl Fn(&PendingOnLink) -> bool,
        outcome: &'static str,
        why: impl Fn(PeerId) -> RequestError,
    ) {
        let failed: Vec<PendingOnLink> = self
            .link_pending
            .extract_if(|_, pending| which(pending))
            .map(|(_, pending)| pending)
            .collect();
        for pending in failed {
            self.count_link_request(outcome);
            let _ = pending.reply.send(Err(why(pending.peer)));
        }
    }

    fn expire_link_requests(&mut self) {
        let now = tokio::time::Instant::now();
        self.fail_link_requests(
            |pending| pending.deadline <= now,
            "timeout",
            |peer| RequestError::Timeout { peer },
        );
    }

    /// Counts `offence` against `peer`; a peer whose score falls too low is disconnected
    /// and refused until its ban ends.
    fn on_offence(&mut self, peer: PeerId, offence: Offence) {
        self.metrics
            .peer_offences
            .get_or_create(&[("offence", offence.label())])
            .inc();
        match self.scores.offend(peer, offence, std::time::Instant::now()) {
            Verdict::Noted { score } => {
                debug!(%peer, offence = offence.label(), score, "peer offence");
            }
            Verdict::Ban { length, .. } => {
                warn!(%peer, offence = offence.label(), seconds = length.as_secs(), "peer banned: disconnected and refused");
                self.metrics.peer_bans.inc();
                // Closes its connections at once and refuses new ones.
                self.swarm.behaviour_mut().allowed.disallow_peer(peer);
            }
            Verdict::Banned => {}
        }
    }

    /// Lets in again the peers whose ban has ended.
    fn lift_bans(&mut self) {
        for peer in self.scores.lift(std::time::Instant::now()) {
            info!(%peer, "peer ban ended");
            self.swarm.behaviour_mut().allowed.allow_peer(peer);
        }
    }

    fn emit(&mut self, event: NetEvent) {
        self.undelivered.push_back(E::from(event));
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.metrics.peers_connected.inc();
                if self.connected.insert(peer_id) {
                    info!(peer = %peer_id, "peer connected");
                    self.emit(NetEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.metrics.peers_connected.dec();
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    // Its link's stream went with the connection.
                    self.links.remove(&peer_id);
                    self.fail_link_requests(
                        |pending| pending.peer == peer_id,
                        "failed",
                        |peer| RequestError::Disconnected { peer },
                    );
                    info!(peer = %peer_id, "peer disconnected");
                    self.emit(NetEvent::Disconnected(peer_id));
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                debug!(%send_back_addr, %error, "incoming connection refused");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.emit(NetEvent::Block {
                    peer: propagation_source,
                    message: message_id,
                    bytes: message.data,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(event)) => self.on_rpc_event(event),
            _ => {}
        }
    }

    fn on_rpc_event(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.emit(NetEvent::Request {
                        peer,
                        request: Box::new(request),
                        channel: Reply::Rpc(channel),
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                debug!(%peer, %error, "request failed");
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(RequestError::Outbound {
                        peer,
                        source: error,
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound request failed");
                if let request_response::InboundFailure::Io(error) = &error {
                    if let Some(offence) = offence_of(error) {
                        self.on_offence(peer, offence);
                    }
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A port free a moment ago on 127.0.0.1.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap()
    }

    struct Peer {
        id: PeerId,
        address: Multiaddr,
        keypair: libp2p::identity::Keypair,
    }

    fn peer() -> Peer {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let id = keypair.public().to_peer_id();
        let address: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", free_port())
            .parse()
            .unwrap();
        Peer {
            id,
            address,
            keypair,
        }
    }

    /// Starts `me`'s network (dialling `other` if `dial`). A port taken since it was
    /// picked is picked again.
    fn run(
        me: &mut Peer,
        other: &Peer,
        dial: bool,
        metrics: &Metrics,
    ) -> (
        NetworkHandle,
        tokio::task::JoinHandle<()>,
        mpsc::Receiver<NetEvent>,
    ) {
        for _ in 0..5 {
            let (events, inbox) = mpsc::channel(64);
            let listen: Multiaddr = me
                .address
                .iter()
                .filter(|part| !matches!(part, libp2p::multiaddr::Protocol::P2p(_)))
                .collect();
            let setup = NetworkSetup {
                keypair: me.keypair.clone(),
                listen,
                peers: if dial {
                    vec![other.address.clone()]
                } else {
                    vec![]
                },
                allowed: vec![me.id, other.id],
                genesis_hash: halfveil_ledger::Hash32([7; 32]),
                connections_max: 8,
            };
            match start(setup, metrics.clone(), events) {
                Ok((handle, task)) => return (handle, task, inbox),
                Err(error) if error.to_string().contains("Address already in use") => {
                    me.address = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", free_port(), me.id)
                        .parse()
                        .unwrap();
                }
                Err(error) => panic!("{error}"),
            }
        }
        panic!("no free port in five tries");
    }

    async fn connected(inbox: &mut mpsc::Receiver<NetEvent>, who: &str) {
        loop {
            match tokio::time::timeout(Duration::from_secs(60), inbox.recv()).await {
                Ok(Some(NetEvent::Connected(_))) => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{who}: the network task stopped"),
                Err(_) => panic!("{who}: no connection in 60 s"),
            }
        }
    }

    /// A link request is answered over the link, and a request waiting on a peer that goes
    /// away fails when it disconnects, not after the 10 s timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn link_requests_are_answered_and_fail_when_the_peer_goes() {
        let (mut bank, mut im) = (peer(), peer());
        let bank_metrics = Metrics::new();
        let (im_net, im_task, mut im_inbox) = run(&mut im, &bank, false, &Metrics::new());
        let (bank_net, _bank_task, mut bank_inbox) = run(&mut bank, &im, true, &bank_metrics);
        connected(&mut bank_inbox, "bank").await;
        connected(&mut im_inbox, "im").await;

        // The IM answers the first request it gets.
        let answering = tokio::spawn(async move {
            loop {
                match im_inbox.recv().await {
                    Some(NetEvent::Request {
                        peer,
                        request,
                        channel,
                    }) => {
                        assert!(matches!(*request, Request::Rejected(_)));
                        assert!(matches!(channel, Reply::Link { .. }), "{channel:?}");
                        im_net.respond(channel, Response::Ack).await;
                        return (peer, im_inbox, im_net);
                    }
                    Some(_) => {}
                    None => panic!("the IM's network stopped"),
                }
            }
        });
        let response = bank_net
            .request(im.id, Request::Rejected(Vec::new()))
            .await
            .unwrap();
        assert!(matches!(response, Response::Ack), "{response:?}");
        let (asker, mut im_inbox, im_net) = answering.await.unwrap();
        assert_eq!(asker, bank.id);

        // The next request is never answered: the IM's network goes away instead.
        let waiting = {
            let bank_net = bank_net.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = bank_net.request(im.id, Request::Rejected(Vec::new())).await;
                (result, started.elapsed())
            })
        };
        loop {
            if let Some(NetEvent::Request { .. }) = im_inbox.recv().await {
                break;
            }
        }
        drop(im_net);
        im_task.abort();
        let (result, took) = tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the waiting request neither failed nor timed out in 60 s")
            .unwrap();
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("disconnected") || error.contains("link"),
            "{error}"
        );
        assert!(took < REQUEST_TIMEOUT, "failed only after {took:?}");

        // And a request to a peer that is not connected fails at once.
        let error = bank_net
            .request(im.id, Request::Rejected(Vec::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                RequestError::Send {
                    source: SendError::NotConnected,
                    ..
                }
            ),
            "{error}"
        );

        let counted = |outcome: &'static str| {
            bank_metrics
                .link_requests
                .get_or_create(&[("outcome", outcome)])
                .get()
        };
        assert_eq!(
            (counted("answered"), counted("failed"), counted("timeout")),
            (1, 2, 0)
        );
    }
}
