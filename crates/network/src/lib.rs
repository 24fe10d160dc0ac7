//! Peer-to-peer networking: libp2p over TCP with noise and yamux.
//!
//! - **Gossip** (gossipsub, signed messages, strict validation): topic
//!   `proctor/blocks/1` carries new blocks, `proctor/txs/1` new transactions,
//!   both as their borsh bytes. A message is forwarded only after the chain
//!   accepted it; invalid ones are rejected, which lowers the sender's score.
//! - **Sync** (request-response, `/proctor/sync/1`): "canonical blocks from
//!   height h, at most 64". A node asks each new peer for the blocks above its
//!   own tip, and asks again whenever a gossiped block's parent is unknown,
//!   stepping back when the peer is on another branch, so fork choice
//!   ([`ChainAccess::import`]) sees whole branches.
//!
//! The network never touches the chain's internals: the node gives it a
//! [`ChainAccess`]. Inbound traffic is bounded (gossip message size, sync batch
//! size, command queue); nothing a peer sends can grow memory without limit.
#![forbid(unsafe_code)]

pub use libp2p::identity as libp2p_identity;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, identity, noise, tcp, yamux};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Gossip topic of blocks.
pub const BLOCKS_TOPIC: &str = "proctor/blocks/1";
/// Gossip topic of transactions.
pub const TXS_TOPIC: &str = "proctor/txs/1";
/// The block sync protocol.
pub const SYNC_PROTOCOL: &str = "/proctor/sync/1";
/// Most blocks in one sync response.
pub const SYNC_BATCH: u64 = 64;
/// Largest gossip message.
const MAX_MESSAGE: usize = 8 << 20;
/// How often a node re-checks a peer for blocks it missed.
const RESYNC_EVERY: Duration = Duration::from_secs(3);

/// What importing a block from the network gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid (new or already known): forward it.
    Accept,
    /// Its parent is unknown: fetch the branch.
    UnknownParent,
    /// Not useful (already pending, stale) but not the sender's fault: do not forward.
    Ignore,
    /// Invalid: drop it and penalize the sender.
    Reject,
}

/// The chain as the network sees it.
pub trait ChainAccess: Send + Sync + 'static {
    /// Height of the canonical tip.
    fn height(&self) -> u64;
    /// Canonical blocks from `from`, at most `count`, borsh-encoded.
    fn blocks_from(&self, from: u64, count: u64) -> Vec<Vec<u8>>;
    /// Imports a block (borsh bytes) received from a peer.
    fn import(&self, block: &[u8]) -> Verdict;
    /// Adds a transaction (borsh bytes) received from a peer to the mempool.
    fn add_tx(&self, tx: &[u8]) -> Verdict;
}

/// A sync request: canonical blocks from `from`, at most `count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    pub from: u64,
    pub count: u64,
}

/// A sync response: the blocks, borsh-encoded, in height order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResponse {
    pub blocks: Vec<Vec<u8>>,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    identify: identify::Behaviour,
}

/// Network errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network setup: {0}")]
    Setup(String),
    #[error("invalid address {0:?}: {1}")]
    Address(String, String),
}

/// Where and with whom to network.
pub struct NetworkConfig {
    pub keypair: identity::Keypair,
    pub listen: Multiaddr,
    pub bootnodes: Vec<Multiaddr>,
}

/// Parses a multiaddr such as `/ip4/127.0.0.1/tcp/7000`.
pub fn parse_addr(s: &str) -> Result<Multiaddr, Error> {
    s.parse()
        .map_err(|e: libp2p::multiaddr::Error| Error::Address(s.to_string(), e.to_string()))
}

enum Command {
    Publish(&'static str, Vec<u8>),
}

/// The node's handle on the running network.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    pub peer_id: PeerId,
}

impl Handle {
    /// Gossips a block (borsh bytes). Drops it if the network is overloaded.
    pub fn publish_block(&self, bytes: Vec<u8>) {
        let _ = self
            .commands
            .try_send(Command::Publish(BLOCKS_TOPIC, bytes));
    }
    /// Gossips a transaction (borsh bytes). Drops it if the network is overloaded.
    pub fn publish_tx(&self, bytes: Vec<u8>) {
        let _ = self.commands.try_send(Command::Publish(TXS_TOPIC, bytes));
    }
}

fn setup(e: impl std::fmt::Display) -> Error {
    Error::Setup(e.to_string())
}

/// Starts the network on the current tokio runtime.
pub fn start(config: NetworkConfig, chain: Arc<dyn ChainAccess>) -> Result<Handle, Error> {
    let peer_id = config.keypair.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(setup)?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(MAX_MESSAGE)
                .heartbeat_interval(Duration::from_millis(500))
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            let sync = request_response::cbor::Behaviour::new(
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
            );
            let identify =
                identify::Behaviour::new(identify::Config::new("/proctor/1".into(), key.public()));
            Ok(Behaviour {
                gossipsub,
                sync,
                identify,
            })
        })
        .map_err(setup)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for topic in [BLOCKS_TOPIC, TXS_TOPIC] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))
            .map_err(setup)?;
    }
    swarm.listen_on(config.listen.clone()).map_err(setup)?;
    for addr in &config.bootnodes {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, "cannot dial bootnode: {e}");
        }
    }
    let (commands, rx) = mpsc::channel(1024);
    tokio::spawn(run(swarm, rx, chain));
    Ok(Handle { commands, peer_id })
}

/// The event loop: the swarm, the node's commands, and periodic re-sync.
async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    chain: Arc<dyn ChainAccess>,
) {
    let mut pending: BTreeMap<request_response::OutboundRequestId, (PeerId, u64)> = BTreeMap::new();
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Publish(topic, bytes)) => {
                    // No peers yet is normal on a fresh network.
                    let _ = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic), bytes);
                }
                None => return,
            },
            _ = resync.tick() => {
                let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
                for peer in peers {
                    request(&mut swarm, &mut pending, peer, chain.height() + 1);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "p2p listening"),
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    tracing::info!(%peer_id, "peer connected");
                    request(&mut swarm, &mut pending, peer_id, chain.height() + 1);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                    propagation_source, message_id, message,
                })) => {
                    let verdict = if message.topic == IdentTopic::new(BLOCKS_TOPIC).hash() {
                        chain.import(&message.data)
                    } else {
                        chain.add_tx(&message.data)
                    };
                    let acceptance = match verdict {
                        Verdict::Accept => MessageAcceptance::Accept,
                        Verdict::Reject => MessageAcceptance::Reject,
                        Verdict::Ignore => MessageAcceptance::Ignore,
                        Verdict::UnknownParent => {
                            // Fetch the branch from a little below our tip.
                            let from = chain.height().saturating_sub(SYNC_BATCH / 4).max(1);
                            request(&mut swarm, &mut pending, propagation_source, from);
                            MessageAcceptance::Ignore
                        }
                    };
                    let gs = &mut swarm.behaviour_mut().gossipsub;
                    let _ = gs.report_message_validation_result(&message_id, &propagation_source, acceptance);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. })) => {
                    match message {
                        request_response::Message::Request { request, channel, .. } => {
                            let blocks = chain.blocks_from(request.from, request.count.min(SYNC_BATCH));
                            let _ = swarm.behaviour_mut().sync.send_response(channel, SyncResponse { blocks });
                        }
                        request_response::Message::Response { request_id, response } => {
                            let Some((_, from)) = pending.remove(&request_id) else { continue };
                            on_blocks(&mut swarm, &mut pending, &chain, peer, from, response);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn request(
    swarm: &mut libp2p::Swarm<Behaviour>,
    pending: &mut BTreeMap<request_response::OutboundRequestId, (PeerId, u64)>,
    peer: PeerId,
    from: u64,
) {
    // One outstanding request per peer is enough; more only repeats work.
    if pending.values().any(|(p, _)| *p == peer) {
        return;
    }
    let id = swarm.behaviour_mut().sync.send_request(
        &peer,
        SyncRequest {
            from,
            count: SYNC_BATCH,
        },
    );
    pending.insert(id, (peer, from));
}

/// Imports a sync batch; continues with the next batch, or steps back when
/// the peer's blocks belong to a branch whose start we lack.
fn on_blocks(
    swarm: &mut libp2p::Swarm<Behaviour>,
    pending: &mut BTreeMap<request_response::OutboundRequestId, (PeerId, u64)>,
    chain: &Arc<dyn ChainAccess>,
    peer: PeerId,
    from: u64,
    response: SyncResponse,
) {
    let n = response.blocks.len() as u64;
    for (i, b) in response.blocks.iter().enumerate() {
        match chain.import(b) {
            Verdict::Accept => {}
            Verdict::UnknownParent if i == 0 && from > 1 => {
                request(swarm, pending, peer, from.saturating_sub(SYNC_BATCH).max(1));
                return;
            }
            Verdict::UnknownParent | Verdict::Reject | Verdict::Ignore => {
                tracing::debug!(%peer, height = from + i as u64, "sync stopped at a block we cannot use");
                return;
            }
        }
    }
    if n == SYNC_BATCH {
        request(swarm, pending, peer, from + n);
    }
}
