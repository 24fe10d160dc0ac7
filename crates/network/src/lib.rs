//! Peer-to-peer networking: libp2p over TCP with noise and yamux.
//!
//! - **Gossip** (gossipsub, signed messages, strict validation): topic
//!   `proctor/blocks/1` carries new blocks (borsh bytes), `proctor/txs/1`
//!   batches of new transactions (a borsh list of borsh transactions, flushed
//!   every [`TX_FLUSH`] so that thousands of transactions a second cost tens
//!   of messages). A message is forwarded only after the chain accepted it.
//! - **Sync** (request-response, `/proctor/sync/1`): "canonical blocks from
//!   height h, at most 64 and about 8 MiB". A node asks each new peer for the
//!   blocks above its own tip, again every [`RESYNC_EVERY`], and whenever a
//!   gossiped block's parent is unknown, stepping back when the peer is on
//!   another branch, so fork choice ([`ChainAccess::import`]) sees whole
//!   branches.
//! - **Blobs** (request-response, `/proctor/blob/1`): content-addressed
//!   data (task modules, job inputs and outputs) by hash. A node missing a
//!   blob asks its peers one at a time and keeps the first answer whose hash
//!   matches; a peer answering with other bytes is penalized.
//! - **Discovery** (Kademlia, `/proctor/kad/1`, identify): bootnodes are
//!   dialed at start and whenever the node has too few peers; the addresses
//!   peers announce go into the DHT and into the [`peers::PeerBook`], which is
//!   saved in the node's directory so a restarted node finds its peers again.
//! - **Defence**: the peer book scores misbehaviour (invalid blocks and
//!   transactions, malformed messages, request floods) and bans a peer that
//!   crosses the threshold: its connections are closed and refused
//!   (allow/block list), its gossip is blacklisted. Operators ban and unban by
//!   hand through [`Handle`]. Every inbound path is bounded: gossip message
//!   size, sync request and response sizes, concurrent streams, connections
//!   (one per peer, 64 in all), sync requests per peer per tick, the command queue.
//!
//! The network never touches the chain's internals: the node gives it a
//! [`ChainAccess`].
#![forbid(unsafe_code)]

pub mod peers;

pub use libp2p::identity as libp2p_identity;
pub use libp2p::{Multiaddr, PeerId};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, identify, identity, kad, noise, tcp, yamux,
};
use peers::{Offence, PeerBook};
use proctor_primitives::Hash;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Gossip topic of blocks.
pub const BLOCKS_TOPIC: &str = "proctor/blocks/1";
/// Gossip topic of transaction batches.
pub const TXS_TOPIC: &str = "proctor/txs/1";
/// The block sync protocol.
pub const SYNC_PROTOCOL: &str = "/proctor/sync/1";
/// The blob transfer protocol.
pub const BLOB_PROTOCOL: &str = "/proctor/blob/1";
/// Largest blob served or fetched.
pub const MAX_BLOB: u64 = 64 << 20;
/// The Kademlia protocol of proctor networks.
pub const KAD_PROTOCOL: &str = "/proctor/kad/1";
/// Most blocks in one sync response.
pub const SYNC_BATCH: u64 = 64;
/// A sync response stops adding blocks past this many bytes (it always has at least one).
pub const SYNC_BYTES: usize = 8 << 20;
/// Largest gossip message.
const MAX_MESSAGE: usize = 8 << 20;
/// Largest sync response accepted (a full batch in CBOR, with room to spare).
const MAX_SYNC_RESPONSE: u64 = 32 << 20;
/// Room for a block's header and encoding around its transactions.
const BLOCK_OVERHEAD: usize = 64 << 10;
// Every valid block and transaction fits the messages that carry it: a block
// in one gossip message, a response that stops past `SYNC_BYTES` plus one
// more full block within the sync limit, a transaction in one batch.
const _: () = assert!(proctor_state::MAX_BLOCK_BYTES + BLOCK_OVERHEAD <= MAX_MESSAGE);
const _: () = assert!(
    SYNC_BYTES + proctor_state::MAX_BLOCK_BYTES + BLOCK_OVERHEAD <= MAX_SYNC_RESPONSE as usize
);
const _: () = assert!(proctor_state::MAX_TX_BYTES <= TX_BATCH_BYTES);
/// How often pending transactions are gossiped as one batch.
pub const TX_FLUSH: Duration = Duration::from_millis(50);
/// Largest transaction batch message (a flush sends several if needed).
const TX_BATCH_BYTES: usize = 1 << 20;
/// Most bytes of transactions waiting for the next flush; beyond, new ones
/// are not gossiped (they stay in the local mempool and get mined here).
const MAX_PENDING_TX_BYTES: usize = 64 << 20;
/// Maintenance: re-sync, dial, decay scores, save the peer book.
pub const RESYNC_EVERY: Duration = Duration::from_secs(3);
/// The node dials known peers while it has fewer than this.
const TARGET_PEERS: usize = 8;
/// Connection limits.
const MAX_CONNECTIONS: u32 = 64;
/// Sync requests a peer may send per maintenance tick before it is flooding.
const MAX_SYNC_REQUESTS_PER_TICK: u32 = 512;
/// Kademlia bootstrap every this many ticks.
const BOOTSTRAP_EVERY_TICKS: u64 = 10;

/// What importing a block or transaction from the network gave.
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
    /// Canonical blocks from `from`, borsh-encoded: at most `count`, and no
    /// more once `max_bytes` is reached (but at least one if there is one).
    fn blocks_from(&self, from: u64, count: u64, max_bytes: usize) -> Vec<Vec<u8>>;
    /// Imports a block (borsh bytes) received from a peer.
    fn import(&self, block: &[u8]) -> Verdict;
    /// Adds transactions (borsh bytes each) received from a peer to the
    /// mempool; one verdict per transaction.
    fn add_txs(&self, txs: &[Vec<u8>]) -> Vec<Verdict>;
    /// A stored blob by its hash, if this node has it.
    fn blob(&self, hash: &Hash) -> Option<Vec<u8>>;
}

/// A blob request: the blob with this hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobRequest {
    pub hash: [u8; 32],
}

/// A blob response: the bytes, or None if the peer does not have it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobResponse {
    #[serde(with = "byte_strings")]
    pub data: Vec<Vec<u8>>,
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
    #[serde(with = "byte_strings")]
    pub blocks: Vec<Vec<u8>>,
    /// The answering node's canonical height, so the asker can say how far
    /// along its sync is (only reported, never trusted for anything).
    #[serde(default)]
    pub tip: u64,
}

/// Serializes a list of byte vectors as CBOR byte strings (serde's default is
/// an array of integers, about twice the size).
mod byte_strings {
    use serde::de::{Deserializer, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};

    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(&Bytes(b))?;
        }
        seq.end()
    }

    struct Buf(Vec<u8>);
    impl<'de> Deserialize<'de> for Buf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Buf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a byte string")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Buf, E> {
                    Ok(Buf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Buf, E> {
                    Ok(Buf(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<Buf>::deserialize(d)?
            .into_iter()
            .map(|b| b.0)
            .collect())
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    blobs: request_response::cbor::Behaviour<BlobRequest, BlobResponse>,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// Network errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network setup: {0}")]
    Setup(String),
    #[error("invalid address {0:?}: {1}")]
    Address(String, String),
    #[error("invalid peer id {0:?}: {1}")]
    PeerId(String, String),
    #[error("the network has stopped")]
    Stopped,
}

/// Where and with whom to network.
pub struct NetworkConfig {
    pub keypair: identity::Keypair,
    pub listen: Multiaddr,
    pub bootnodes: Vec<Multiaddr>,
    /// Where the peer book is kept between runs (None: not kept).
    pub peers_file: Option<PathBuf>,
}

/// Parses a multiaddr such as `/ip4/127.0.0.1/tcp/7000`.
pub fn parse_addr(s: &str) -> Result<Multiaddr, Error> {
    s.parse()
        .map_err(|e: libp2p::multiaddr::Error| Error::Address(s.to_string(), e.to_string()))
}

/// Parses a peer id (base58, as shown by `proctor net peers`).
pub fn parse_peer(s: &str) -> Result<PeerId, Error> {
    s.parse()
        .map_err(|e: libp2p::identity::ParseError| Error::PeerId(s.to_string(), e.to_string()))
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: PeerId,
    pub address: Option<Multiaddr>,
    /// Misbehaviour points (banned at [`peers::BAN_THRESHOLD`]).
    pub points: u32,
}

/// A banned peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanStatus {
    pub id: PeerId,
    pub reason: String,
    /// Seconds until the ban ends; None: until lifted by hand.
    pub seconds_left: Option<u64>,
}

/// The network as it is now.
#[derive(Debug, Clone)]
pub struct NetworkStatus {
    pub local: PeerId,
    pub listen: Vec<Multiaddr>,
    pub connected: Vec<PeerStatus>,
    pub banned: Vec<BanStatus>,
    /// Peers whose addresses are known (dialable).
    pub known: usize,
}

enum Command {
    Block(Vec<u8>),
    Status(oneshot::Sender<NetworkStatus>),
    Ban(PeerId, String, oneshot::Sender<()>),
    Unban(PeerId, oneshot::Sender<bool>),
    FetchBlob(Hash, oneshot::Sender<Option<Vec<u8>>>),
}

/// Transactions waiting for the next gossip batch.
#[derive(Default)]
struct TxBuffer {
    txs: Vec<Vec<u8>>,
    bytes: usize,
    dropped: u64,
}

/// The node's handle on the running network.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    txs: Arc<std::sync::Mutex<TxBuffer>>,
    pub peer_id: PeerId,
}

impl Handle {
    /// Gossips a block (borsh bytes). Drops it if the network is overloaded.
    pub fn publish_block(&self, bytes: Vec<u8>) {
        let _ = self.commands.try_send(Command::Block(bytes));
    }
    /// Gossips a transaction (borsh bytes) with the next batch. Drops it if
    /// [`MAX_PENDING_TX_BYTES`] are already waiting.
    pub fn publish_tx(&self, bytes: Vec<u8>) {
        let mut b = self.txs.lock().unwrap_or_else(|p| p.into_inner());
        if b.bytes + bytes.len() > MAX_PENDING_TX_BYTES {
            b.dropped += 1;
            return;
        }
        b.bytes += bytes.len();
        b.txs.push(bytes);
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Connected and banned peers.
    pub async fn status(&self) -> Result<NetworkStatus, Error> {
        self.ask(Command::Status).await
    }
    /// Bans a peer until [`Handle::unban`]: closes and refuses its connections.
    pub async fn ban(&self, peer: PeerId, reason: String) -> Result<(), Error> {
        self.ask(|tx| Command::Ban(peer, reason, tx)).await
    }
    /// Lifts a ban; returns whether the peer was banned.
    pub async fn unban(&self, peer: PeerId) -> Result<bool, Error> {
        self.ask(|tx| Command::Unban(peer, tx)).await
    }
    /// Fetches a blob from the peers (each asked in turn until one has it);
    /// the bytes returned hash to `hash`. None if no peer has it.
    pub async fn fetch_blob(&self, hash: Hash) -> Result<Option<Vec<u8>>, Error> {
        self.ask(|tx| Command::FetchBlob(hash, tx)).await
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
            tcp::Config::default().nodelay(true),
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
            let sync = request_response::cbor::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(1024)
                    .set_response_size_maximum(MAX_SYNC_RESPONSE),
                [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(20))
                    .with_max_concurrent_streams(16),
            );
            let blobs = request_response::cbor::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(1024)
                    .set_response_size_maximum(MAX_BLOB + 1024),
                [(StreamProtocol::new(BLOB_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(8),
            );
            let identify =
                identify::Behaviour::new(identify::Config::new("/proctor/1".into(), key.public()));
            let local = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                local,
                kad::store::MemoryStore::new(local),
                kad::Config::new(StreamProtocol::new(KAD_PROTOCOL)),
            );
            // Serve the DHT even before an external address is confirmed
            // (always the case on loopback and behind NAT-less private networks).
            kad.set_mode(Some(kad::Mode::Server));
            let limits = connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(MAX_CONNECTIONS))
                    .with_max_pending_incoming(Some(MAX_CONNECTIONS / 2))
                    // One connection per peer: with two (both sides
                    // dialing at once) gossipsub sends its subscriptions on
                    // one of them only, and they are lost if that one closes.
                    .with_max_established_per_peer(Some(1)),
            );
            Ok(Behaviour {
                blocked: Default::default(),
                limits,
                gossipsub,
                sync,
                blobs,
                identify,
                kad,
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
    let mut book = PeerBook::default();
    if let Some(path) = &config.peers_file
        && let Ok(text) = std::fs::read_to_string(path)
    {
        let skipped = book.load_text(&text);
        if skipped > 0 {
            tracing::warn!(file = %path.display(), skipped, "ignored unreadable lines of the peer book");
        }
    }
    let (commands, rx) = mpsc::channel(4096);
    let txs: Arc<std::sync::Mutex<TxBuffer>> = Arc::default();
    let mut net = Net {
        txs: txs.clone(),
        swarm,
        chain,
        book,
        peers_file: config.peers_file,
        bootnodes: config.bootnodes.into_iter().map(|a| (a, None)).collect(),
        pending: BTreeMap::new(),
        requests: BTreeMap::new(),
        fetches: BTreeMap::new(),
        ticks: 0,
    };
    net.dial_more();
    tokio::spawn(net.run(rx));
    Ok(Handle {
        commands,
        txs,
        peer_id,
    })
}

/// A blob fetch in flight.
struct Fetch {
    hash: Hash,
    /// Peers not asked yet.
    peers: Vec<PeerId>,
    reply: oneshot::Sender<Option<Vec<u8>>>,
}

/// The event loop's state.
struct Net {
    swarm: libp2p::Swarm<Behaviour>,
    chain: Arc<dyn ChainAccess>,
    book: PeerBook,
    peers_file: Option<PathBuf>,
    /// Bootnode addresses and, once connected, who answered there.
    bootnodes: Vec<(Multiaddr, Option<PeerId>)>,
    /// Outstanding sync requests: to whom, from which height.
    pending: BTreeMap<request_response::OutboundRequestId, (PeerId, u64)>,
    /// Sync and blob requests received this tick, per peer.
    requests: BTreeMap<PeerId, u32>,
    /// Blob fetches in flight: the hash, the peers still to ask, the caller.
    fetches: BTreeMap<request_response::OutboundRequestId, Fetch>,
    /// Transactions waiting for the next gossip batch (shared with [`Handle`]).
    txs: Arc<std::sync::Mutex<TxBuffer>>,
    ticks: u64,
}

impl Net {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(RESYNC_EVERY);
        let mut flush = tokio::time::interval(TX_FLUSH);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                _ = tick.tick() => self.maintain(),
                _ = flush.tick() => self.flush_txs(),
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Block(bytes) => self.publish(BLOCKS_TOPIC, bytes),
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Ban(peer, reason, reply) => {
                self.ban(
                    peer,
                    peers::Ban {
                        reason,
                        until: None,
                    },
                );
                let _ = reply.send(());
            }
            Command::Unban(peer, reply) => {
                let was = self.book.unban(&peer);
                self.lift(peer);
                let _ = reply.send(was);
            }
            Command::FetchBlob(hash, reply) => {
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                self.fetch_next(Fetch { hash, peers, reply });
            }
        }
    }

    /// Asks the next peer of `f` for its blob, or answers None when none is left.
    fn fetch_next(&mut self, mut f: Fetch) {
        match f.peers.pop() {
            Some(peer) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_request(&peer, BlobRequest { hash: f.hash.0 });
                self.fetches.insert(id, f);
            }
            None => {
                let _ = f.reply.send(None);
            }
        }
    }

    /// Whether a peer may have another request served this tick.
    fn allow_request(&mut self, peer: PeerId) -> bool {
        let n = self.requests.entry(peer).or_default();
        *n += 1;
        if *n > MAX_SYNC_REQUESTS_PER_TICK {
            self.penalize(peer, Offence::RequestFlood);
            return false;
        }
        true
    }

    fn publish(&mut self, topic: &'static str, bytes: Vec<u8>) {
        // No peers yet is normal on a fresh network.
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        if let Err(e) = gs.publish(IdentTopic::new(topic), bytes) {
            tracing::trace!(topic, "not gossiped: {e}");
        }
    }

    /// Gossips the waiting transactions, in messages of at most [`TX_BATCH_BYTES`].
    fn flush_txs(&mut self) {
        let (txs, dropped) = {
            let mut b = self.txs.lock().unwrap_or_else(|p| p.into_inner());
            b.bytes = 0;
            (std::mem::take(&mut b.txs), std::mem::take(&mut b.dropped))
        };
        if dropped > 0 {
            tracing::warn!(dropped, "gossip backlog full: transactions kept local");
        }
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut size = 0;
        for tx in txs {
            if size + tx.len() > TX_BATCH_BYTES && !batch.is_empty() {
                self.publish(TXS_TOPIC, proctor_primitives::codec::encode(&batch));
                batch.clear();
                size = 0;
            }
            size += tx.len();
            batch.push(tx);
        }
        if !batch.is_empty() {
            self.publish(TXS_TOPIC, proctor_primitives::codec::encode(&batch));
        }
    }

    fn status(&self) -> NetworkStatus {
        let now = Instant::now();
        let connected = self
            .swarm
            .connected_peers()
            .map(|p| PeerStatus {
                id: *p,
                address: self.book.addresses(p).into_iter().next(),
                points: self.book.points(p),
            })
            .collect();
        let banned = self
            .book
            .bans()
            .map(|(p, b)| BanStatus {
                id: *p,
                reason: b.reason.clone(),
                seconds_left: b.until.map(|u| u.saturating_duration_since(now).as_secs()),
            })
            .collect();
        NetworkStatus {
            local: *self.swarm.local_peer_id(),
            listen: self.swarm.listeners().cloned().collect(),
            connected,
            banned,
            known: self
                .book
                .dial_candidates(&BTreeSet::new(), usize::MAX)
                .len(),
        }
    }

    fn penalize(&mut self, peer: PeerId, offence: Offence) {
        tracing::debug!(%peer, ?offence, "peer misbehaved");
        if let Some(ban) = self.book.penalize(peer, offence, Instant::now()) {
            self.ban(peer, ban);
        }
    }

    /// Bans a peer: closes and refuses its connections, ignores its gossip.
    fn ban(&mut self, peer: PeerId, ban: peers::Ban) {
        tracing::warn!(%peer, reason = %ban.reason, "banning peer");
        self.book.ban(peer, ban.reason, ban.until);
        let b = self.swarm.behaviour_mut();
        b.blocked.block_peer(peer);
        b.gossipsub.blacklist_peer(&peer);
        b.kad.remove_peer(&peer);
        self.pending.retain(|_, (p, _)| *p != peer);
    }

    fn lift(&mut self, peer: PeerId) {
        let b = self.swarm.behaviour_mut();
        b.blocked.unblock_peer(peer);
        b.gossipsub.remove_blacklisted_peer(&peer);
    }

    /// Every [`RESYNC_EVERY`]: end bans, decay scores, ask peers for missed
    /// blocks, dial more peers, refresh the DHT, save the peer book.
    fn maintain(&mut self) {
        for peer in self.book.tick(Instant::now()) {
            tracing::info!(%peer, "ban ended");
            self.lift(peer);
        }
        self.requests.clear();
        let from = self.chain.height() + 1;
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.request(peer, from);
        }
        self.dial_more();
        self.ticks += 1;
        if self.ticks % BOOTSTRAP_EVERY_TICKS == 1 {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
        if self.book.take_changed()
            && let Some(path) = &self.peers_file
        {
            let tmp = path.with_extension("tmp");
            let written =
                std::fs::write(&tmp, self.book.to_text()).and_then(|_| std::fs::rename(&tmp, path));
            if let Err(e) = written {
                tracing::warn!(file = %path.display(), "cannot save the peer book: {e}");
            }
        }
    }

    /// Dials bootnodes and known peers while below [`TARGET_PEERS`].
    fn dial_more(&mut self) {
        let connected: BTreeSet<PeerId> = self.swarm.connected_peers().copied().collect();
        if connected.len() >= TARGET_PEERS {
            return;
        }
        for (addr, id) in &self.bootnodes {
            let skip = id.is_some_and(|p| connected.contains(&p) || self.book.is_banned(&p));
            if skip {
                continue;
            }
            // Once its peer id is known, dial it as that peer (not while
            // already dialing it), so redials do not race each other.
            let opts = match id {
                Some(p) => DialOpts::peer_id(*p).addresses(vec![addr.clone()]).build(),
                None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            };
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%addr, "cannot dial bootnode: {e}");
            }
        }
        for peer in self
            .book
            .dial_candidates(&connected, TARGET_PEERS - connected.len())
        {
            let opts = DialOpts::peer_id(peer)
                .addresses(self.book.addresses(&peer))
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, "cannot dial: {e}");
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "p2p listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::info!(%peer_id, "peer connected");
                if endpoint.is_dialer() {
                    let addr = endpoint.get_remote_address().clone();
                    for (a, id) in &mut self.bootnodes {
                        if *a == addr {
                            *id = Some(peer_id);
                        }
                    }
                    self.book.learn(peer_id, addr);
                }
                self.request(peer_id, self.chain.height() + 1);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                tracing::info!(%peer_id, "peer disconnected");
                self.pending.retain(|_, (p, _)| *p != peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                let mut new_peer = false;
                for addr in info.listen_addrs {
                    let update = kad.add_address(&peer_id, addr.clone());
                    new_peer |= matches!(update, kad::RoutingUpdate::Success);
                    self.book.learn(peer_id, addr);
                }
                // A peer we did not know: ask the DHT for the peers near us,
                // which finds the rest of the network through it.
                if new_peer {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                addresses,
                is_new_peer,
                ..
            })) => {
                for addr in addresses.iter() {
                    self.book.learn(peer, addr.clone());
                }
                if is_new_peer && !self.swarm.is_connected(&peer) {
                    self.dial_more();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let acceptance = if message.topic == IdentTopic::new(BLOCKS_TOPIC).hash() {
                    self.on_gossip_block(propagation_source, &message.data)
                } else {
                    self.on_gossip_txs(propagation_source, &message.data)
                };
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = gs.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.allow_request(peer) {
                        // Not answered: the channel drops and the peer's request fails.
                        return;
                    }
                    let blocks = self.chain.blocks_from(
                        request.from,
                        request.count.min(SYNC_BATCH),
                        SYNC_BYTES,
                    );
                    let _ = self.swarm.behaviour_mut().sync.send_response(
                        channel,
                        SyncResponse {
                            blocks,
                            tip: self.chain.height(),
                        },
                    );
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, from)) = self.pending.remove(&request_id) {
                        self.on_blocks(peer, from, response);
                    }
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.allow_request(peer) {
                        return;
                    }
                    let data = self
                        .chain
                        .blob(&Hash(request.hash))
                        .filter(|d| d.len() as u64 <= MAX_BLOB)
                        .into_iter()
                        .collect();
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blobs
                        .send_response(channel, BlobResponse { data });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some(f) = self.fetches.remove(&request_id) else {
                        return;
                    };
                    match response.data.into_iter().next() {
                        Some(d) if Hash::of(&d) == f.hash => {
                            let _ = f.reply.send(Some(d));
                        }
                        Some(_) => {
                            self.penalize(peer, Offence::Malformed);
                            self.fetch_next(f);
                        }
                        None => self.fetch_next(f),
                    }
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(
                request_response::Event::OutboundFailure { request_id, .. },
            )) => {
                if let Some(f) = self.fetches.remove(&request_id) {
                    self.fetch_next(f);
                }
            }
            _ => {}
        }
    }

    fn on_gossip_block(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        match self.chain.import(data) {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Reject => {
                self.penalize(source, Offence::InvalidBlock);
                MessageAcceptance::Reject
            }
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::UnknownParent => {
                // Fetch the branch from a little below our tip.
                let from = self.chain.height().saturating_sub(SYNC_BATCH / 4).max(1);
                self.request(source, from);
                MessageAcceptance::Ignore
            }
        }
    }

    fn on_gossip_txs(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let Ok(batch) = proctor_primitives::codec::decode::<Vec<Vec<u8>>>("transactions", data)
        else {
            self.penalize(source, Offence::Malformed);
            return MessageAcceptance::Reject;
        };
        let (mut accepted, mut rejected) = (0, 0);
        for v in self.chain.add_txs(&batch) {
            match v {
                Verdict::Accept => accepted += 1,
                Verdict::Reject => rejected += 1,
                Verdict::Ignore | Verdict::UnknownParent => {}
            }
        }
        if rejected > 0 {
            self.penalize(source, Offence::InvalidTx);
            MessageAcceptance::Reject
        } else if accepted > 0 {
            MessageAcceptance::Accept
        } else {
            MessageAcceptance::Ignore
        }
    }

    fn request(&mut self, peer: PeerId, from: u64) {
        // One outstanding request per peer is enough; more only repeats work.
        if self.pending.values().any(|(p, _)| *p == peer) || self.book.is_banned(&peer) {
            return;
        }
        let id = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            SyncRequest {
                from,
                count: SYNC_BATCH,
            },
        );
        self.pending.insert(id, (peer, from));
    }

    /// Imports a sync batch; continues with the next batch, or steps back when
    /// the peer's blocks belong to a branch whose start we lack.
    fn on_blocks(&mut self, peer: PeerId, from: u64, response: SyncResponse) {
        let n = response.blocks.len() as u64;
        if n > SYNC_BATCH {
            self.penalize(peer, Offence::Malformed);
            return;
        }
        for (i, b) in response.blocks.iter().enumerate() {
            match self.chain.import(b) {
                Verdict::Accept => {}
                Verdict::UnknownParent if i == 0 && from > 1 => {
                    self.request(peer, from.saturating_sub(SYNC_BATCH).max(1));
                    return;
                }
                Verdict::Reject => {
                    self.penalize(peer, Offence::InvalidBlock);
                    return;
                }
                Verdict::UnknownParent | Verdict::Ignore => {
                    tracing::debug!(%peer, height = from + i as u64, "sync stopped at a block we cannot use");
                    return;
                }
            }
        }
        // Progress, as plain log lines, while catching up (not for the one
        // block at a time of a node that follows the tip).
        let height = self.chain.height();
        if n > 1 || (n == 1 && height < response.tip) {
            let tip = response.tip.max(height);
            let pct = (height * 100).checked_div(tip).unwrap_or(100);
            tracing::info!(%peer, "sync: height {height} of {tip} ({pct}%)");
        }
        // A full batch, or one cut short by size: there may be more (an empty
        // answer ends the sync).
        if n > 0 {
            self.request(peer, from + n);
        }
    }
}
