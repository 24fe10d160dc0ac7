//! The peer book: what a node knows about other peers — where they listen,
//! how they behaved, and whom it refuses to talk to.
//!
//! Misbehaviour adds points ([`Offence::points`]); points decay by
//! [`DECAY_PER_TICK`] on every maintenance tick, so an honest peer that once
//! relayed a bad block recovers, while one that keeps misbehaving reaches
//! [`BAN_THRESHOLD`] and is banned for [`BAN_TIME`]. An operator can also ban
//! a peer by hand (until unbanned). Everything here is bounded: at most
//! [`MAX_KNOWN`] peers with [`MAX_ADDRS`] addresses each.
//!
//! Pure bookkeeping over a caller-supplied clock, so it is unit-tested
//! without sockets.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Points at which a peer is banned.
pub const BAN_THRESHOLD: u32 = 100;
/// How long an automatic ban lasts.
pub const BAN_TIME: Duration = Duration::from_secs(600);
/// Points forgiven on every maintenance tick.
pub const DECAY_PER_TICK: u32 = 5;
/// Most peers whose addresses are remembered.
pub const MAX_KNOWN: usize = 256;
/// Most addresses remembered per peer.
pub const MAX_ADDRS: usize = 4;

/// Something a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// Sent a block that failed validation.
    InvalidBlock,
    /// Sent a transaction with a bad signature or for another chain.
    InvalidTx,
    /// Sent bytes that do not decode, or a sync response that answers nothing asked.
    Malformed,
    /// Sent more sync requests than the rate limit allows.
    RequestFlood,
}

impl Offence {
    /// Misbehaviour points of one offence.
    pub fn points(self) -> u32 {
        match self {
            Offence::InvalidBlock | Offence::Malformed => 50,
            Offence::InvalidTx => 20,
            Offence::RequestFlood => 10,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Offence::InvalidBlock => "sent invalid blocks",
            Offence::InvalidTx => "sent invalid transactions",
            Offence::Malformed => "sent malformed messages",
            Offence::RequestFlood => "flooded us with sync requests",
        }
    }
}

/// Why and until when a peer is banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub reason: String,
    /// None: until an operator lifts it.
    pub until: Option<Instant>,
}

/// What the node knows about other peers.
#[derive(Debug, Default)]
pub struct PeerBook {
    points: BTreeMap<PeerId, u32>,
    bans: BTreeMap<PeerId, Ban>,
    addrs: BTreeMap<PeerId, BTreeSet<Multiaddr>>,
    changed: bool,
}

impl PeerBook {
    /// Records an offence. Returns the ban when this one crossed the threshold.
    pub fn penalize(&mut self, peer: PeerId, offence: Offence, now: Instant) -> Option<Ban> {
        if self.bans.contains_key(&peer) {
            return None;
        }
        let p = self.points.entry(peer).or_default();
        *p = p.saturating_add(offence.points());
        if *p < BAN_THRESHOLD {
            return None;
        }
        self.points.remove(&peer);
        let ban = Ban {
            reason: offence.describe().to_string(),
            until: Some(now + BAN_TIME),
        };
        self.bans.insert(peer, ban.clone());
        Some(ban)
    }

    /// Misbehaviour points a peer currently has.
    pub fn points(&self, peer: &PeerId) -> u32 {
        self.points.get(peer).copied().unwrap_or(0)
    }

    /// Bans a peer by hand; `until` None means until [`PeerBook::unban`].
    pub fn ban(&mut self, peer: PeerId, reason: String, until: Option<Instant>) {
        self.points.remove(&peer);
        self.bans.insert(peer, Ban { reason, until });
    }

    /// Lifts a ban. Returns whether the peer was banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.bans.remove(peer).is_some()
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    pub fn bans(&self) -> impl Iterator<Item = (&PeerId, &Ban)> {
        self.bans.iter()
    }

    /// One maintenance tick: forgives some points and ends expired bans,
    /// returning the peers whose ban ended.
    pub fn tick(&mut self, now: Instant) -> Vec<PeerId> {
        self.points.retain(|_, p| {
            *p = p.saturating_sub(DECAY_PER_TICK);
            *p > 0
        });
        let ended: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, b)| b.until.is_some_and(|u| u <= now))
            .map(|(p, _)| *p)
            .collect();
        for p in &ended {
            self.bans.remove(p);
        }
        ended
    }

    /// Remembers that `peer` listens on `addr` (TCP addresses only, bounded).
    pub fn learn(&mut self, peer: PeerId, addr: Multiaddr) {
        let addr = strip_peer(addr);
        if !addr.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
            return;
        }
        if !self.addrs.contains_key(&peer) && self.addrs.len() >= MAX_KNOWN {
            return;
        }
        let set = self.addrs.entry(peer).or_default();
        if set.len() < MAX_ADDRS && set.insert(addr) {
            self.changed = true;
        }
    }

    /// Known addresses of a peer.
    pub fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addrs
            .get(peer)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Up to `n` known peers worth dialing: not connected, not banned.
    pub fn dial_candidates(&self, connected: &BTreeSet<PeerId>, n: usize) -> Vec<PeerId> {
        self.addrs
            .keys()
            .filter(|p| !connected.contains(p) && !self.bans.contains_key(p))
            .take(n)
            .copied()
            .collect()
    }

    /// The book as text: one `/…/p2p/<id>` multiaddr per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (peer, addrs) in &self.addrs {
            for a in addrs {
                out.push_str(&a.clone().with(Protocol::P2p(*peer)).to_string());
                out.push('\n');
            }
        }
        out
    }

    /// Reads addresses written by [`PeerBook::to_text`]; skips lines that do
    /// not parse or name no peer, returning how many were skipped.
    pub fn load_text(&mut self, text: &str) -> usize {
        let mut skipped = 0;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line
                .parse::<Multiaddr>()
                .ok()
                .and_then(|a| Some((peer_of(&a)?, a)))
            {
                Some((peer, addr)) => self.learn(peer, addr),
                None => skipped += 1,
            }
        }
        self.changed = false;
        skipped
    }

    /// Whether addresses were learned since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

/// The peer id at the end of a multiaddr, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn strip_peer(addr: Multiaddr) -> Multiaddr {
    addr.into_iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn repeated_offences_ban_and_the_ban_expires() {
        let mut book = PeerBook::default();
        let (bad, now) = (peer(), Instant::now());
        // 50 points per invalid block: the second one reaches 100.
        assert_eq!(book.penalize(bad, Offence::InvalidBlock, now), None);
        assert_eq!(book.points(&bad), 50);
        let ban = book
            .penalize(bad, Offence::InvalidBlock, now)
            .expect("banned at the threshold");
        assert_eq!(ban.until, Some(now + BAN_TIME));
        assert!(book.is_banned(&bad));
        // Still banned just before the end, free after.
        assert!(
            book.tick(now + BAN_TIME - Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(book.tick(now + BAN_TIME), vec![bad]);
        assert!(!book.is_banned(&bad));
    }

    #[test]
    fn points_decay_so_rare_mistakes_are_forgiven() {
        let mut book = PeerBook::default();
        let (p, now) = (peer(), Instant::now());
        book.penalize(p, Offence::InvalidTx, now);
        assert_eq!(book.points(&p), 20);
        book.tick(now);
        assert_eq!(book.points(&p), 20 - DECAY_PER_TICK);
        for _ in 0..10 {
            book.tick(now);
        }
        assert_eq!(book.points(&p), 0);
        // Four invalid transactions spaced out never add up to a ban ...
        for _ in 0..4 {
            assert!(book.penalize(p, Offence::InvalidTx, now).is_none());
            for _ in 0..4 {
                book.tick(now);
            }
        }
        // ... five in a row do.
        let q = peer();
        let bans = (0..5)
            .filter_map(|_| book.penalize(q, Offence::InvalidTx, now))
            .count();
        assert_eq!(bans, 1);
    }

    #[test]
    fn manual_bans_last_until_lifted() {
        let mut book = PeerBook::default();
        let p = peer();
        book.learn(p, addr(7000));
        book.ban(p, "operator".into(), None);
        let far = Instant::now() + Duration::from_secs(1_000_000);
        assert!(book.tick(far).is_empty());
        assert!(book.dial_candidates(&BTreeSet::new(), 10).is_empty());
        assert!(book.unban(&p));
        assert_eq!(book.dial_candidates(&BTreeSet::new(), 10), vec![p]);
    }

    #[test]
    fn addresses_are_bounded_and_round_trip_as_text() {
        let mut book = PeerBook::default();
        let p = peer();
        for port in 7000..7010 {
            book.learn(p, addr(port));
        }
        assert_eq!(book.addresses(&p).len(), MAX_ADDRS);
        // Non-TCP addresses are not dialable here.
        let q = peer();
        book.learn(q, "/ip4/127.0.0.1/udp/9".parse().unwrap());
        assert!(book.addresses(&q).is_empty());
        for _ in 0..MAX_KNOWN + 10 {
            book.learn(peer(), addr(8000));
        }
        assert_eq!(book.addrs.len(), MAX_KNOWN);
        assert!(book.take_changed());

        let mut again = PeerBook::default();
        let skipped = again.load_text(&format!(
            "{}\nnot an address\n/ip4/1.2.3.4/tcp/5\n",
            book.to_text()
        ));
        assert_eq!(skipped, 2, "garbage and an address without a peer id");
        assert_eq!(again.addrs, book.addrs);
        assert!(!again.take_changed());
    }

    #[test]
    fn connected_peers_are_not_dial_candidates() {
        let mut book = PeerBook::default();
        let (a, b) = (peer(), peer());
        book.learn(a, addr(1));
        book.learn(b, addr(2));
        let connected = BTreeSet::from([a]);
        assert_eq!(book.dial_candidates(&connected, 10), vec![b]);
        assert_eq!(book.dial_candidates(&BTreeSet::new(), 1).len(), 1);
    }
}
