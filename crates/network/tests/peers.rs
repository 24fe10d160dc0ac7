//! Real libp2p nodes on loopback, in one process, over a stand-in chain:
//! discovery through a bootnode, bans for invalid blocks, bans by hand.

use proctor_network::{ChainAccess, Handle, NetworkConfig, PeerId, Verdict, libp2p_identity};
use proctor_primitives::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A chain that accepts everything except blocks starting with `bad`, and
/// serves the blobs it is given (keyed by whatever hash the test says).
#[derive(Default)]
struct StandIn {
    blocks: Mutex<Vec<Vec<u8>>>,
    blobs: Mutex<Vec<(Hash, Vec<u8>)>>,
}

impl ChainAccess for StandIn {
    fn height(&self) -> u64 {
        0
    }
    fn blocks_from(&self, _: u64, _: u64, _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn import(&self, block: &[u8]) -> Verdict {
        if block.starts_with(b"bad") {
            return Verdict::Reject;
        }
        self.blocks.lock().unwrap().push(block.to_vec());
        Verdict::Accept
    }
    fn add_txs(&self, txs: &[Vec<u8>]) -> Vec<Verdict> {
        vec![Verdict::Accept; txs.len()]
    }
    fn blob(&self, hash: &Hash) -> Option<Vec<u8>> {
        let blobs = self.blobs.lock().unwrap();
        blobs
            .iter()
            .find(|(h, _)| h == hash)
            .map(|(_, d)| d.clone())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct TestNode {
    handle: Handle,
    chain: Arc<StandIn>,
    addr: String,
}

fn node(bootnodes: &[&TestNode]) -> TestNode {
    let addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let chain = Arc::new(StandIn::default());
    let config = NetworkConfig {
        keypair: libp2p_identity::Keypair::generate_ed25519(),
        listen: addr.parse().unwrap(),
        bootnodes: bootnodes.iter().map(|b| b.addr.parse().unwrap()).collect(),
        peers_file: None,
    };
    let handle = proctor_network::start(config, chain.clone()).unwrap();
    TestNode {
        handle,
        chain,
        addr,
    }
}

/// Polls `f` until it holds, or panics after `secs`.
async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connected(n: &TestNode, peer: PeerId) -> bool {
    let s = n.handle.status().await.unwrap();
    s.connected.iter().any(|p| p.id == peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_of_a_bootnode_find_each_other_through_the_dht() {
    let a = node(&[]);
    let b = node(&[&a]);
    let c = node(&[&a]);
    // B and C were only told about A.
    until("B and C to connect directly", 30, async || {
        connected(&b, c.handle.peer_id).await && connected(&c, b.handle.peer_id).await
    })
    .await;
    let s = b.handle.status().await.unwrap();
    assert!(s.known >= 2, "B knows A's and C's addresses: {s:?}");
    // And gossip flows between them.
    until("a block from C to reach B", 30, async || {
        c.handle.publish_block(b"block-1".to_vec());
        b.chain
            .blocks
            .lock()
            .unwrap()
            .contains(&b"block-1".to_vec())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_invalid_blocks_is_banned_and_refused() {
    let a = node(&[]);
    let b = node(&[&a]);
    until("B to connect to A", 30, async || {
        connected(&a, b.handle.peer_id).await
    })
    .await;
    let mut i = 0;
    until("A to ban B", 30, async || {
        i += 1;
        b.handle
            .publish_block(format!("bad block {i}").into_bytes());
        let s = a.handle.status().await.unwrap();
        s.banned.iter().any(|x| x.id == b.handle.peer_id)
    })
    .await;
    let s = a.handle.status().await.unwrap();
    let ban = s.banned.iter().find(|x| x.id == b.handle.peer_id).unwrap();
    assert_eq!(ban.reason, "sent invalid blocks");
    assert!(ban.seconds_left.is_some_and(|t| t > 500), "{ban:?}");
    until("B's connection to be closed", 10, async || {
        !connected(&a, b.handle.peer_id).await
    })
    .await;
    assert!(
        a.chain.blocks.lock().unwrap().is_empty(),
        "nothing from B was imported"
    );

    // Lifted by hand, B's own redial brings it back.
    assert!(a.handle.unban(b.handle.peer_id).await.unwrap());
    assert!(!a.handle.unban(b.handle.peer_id).await.unwrap());
    until("B to reconnect", 30, async || {
        connected(&a, b.handle.peer_id).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ban_holds_until_lifted() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let a = node(&[]);
    let b = node(&[&a]);
    until("B to connect to A", 30, async || {
        connected(&a, b.handle.peer_id).await
    })
    .await;
    a.handle
        .ban(b.handle.peer_id, "partition test".into())
        .await
        .unwrap();
    until("B to be disconnected", 10, async || {
        !connected(&a, b.handle.peer_id).await && !connected(&b, a.handle.peer_id).await
    })
    .await;
    let s = a.handle.status().await.unwrap();
    assert_eq!(s.banned.len(), 1);
    assert_eq!(s.banned[0].seconds_left, None, "manual bans do not expire");
    // Lifted by hand, B's own redial brings it back, and its gossip flows.
    a.handle.unban(b.handle.peer_id).await.unwrap();
    until("B to reconnect after the ban is lifted", 30, async || {
        connected(&a, b.handle.peer_id).await
    })
    .await;
    until("gossip from B after the ban is lifted", 30, async || {
        b.handle.publish_block(b"after".to_vec());
        a.chain.blocks.lock().unwrap().contains(&b"after".to_vec())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_come_from_whichever_peer_has_them_checked_against_their_hash() {
    let a = node(&[]);
    let liar = node(&[&a]);
    let b = node(&[&a]);
    let data = b"a task module".repeat(10_000);
    let hash = Hash::of(&data);
    a.chain.blobs.lock().unwrap().push((hash, data.clone()));
    // The liar claims to have it but serves other bytes.
    liar.chain
        .blobs
        .lock()
        .unwrap()
        .push((hash, b"not it".to_vec()));
    until("B to see both peers", 30, async || {
        connected(&b, a.handle.peer_id).await && connected(&b, liar.handle.peer_id).await
    })
    .await;
    for _ in 0..3 {
        let got = b.handle.fetch_blob(hash).await.unwrap();
        assert_eq!(got.as_deref(), Some(&data[..]));
    }
    assert_eq!(
        b.handle
            .fetch_blob(Hash::of(b"nobody has this"))
            .await
            .unwrap(),
        None
    );
    // A blob only the liar claims: its bytes are refused, and it loses points.
    let other = Hash::of(b"the real other blob");
    liar.chain
        .blobs
        .lock()
        .unwrap()
        .push((other, b"forged".to_vec()));
    assert_eq!(b.handle.fetch_blob(other).await.unwrap(), None);
    let s = b.handle.status().await.unwrap();
    let liar_points = s
        .connected
        .iter()
        .find(|p| p.id == liar.handle.peer_id)
        .map(|p| p.points);
    assert!(
        liar_points.is_some_and(|p| p > 0) || s.banned.iter().any(|x| x.id == liar.handle.peer_id),
        "{s:?}"
    );
}
