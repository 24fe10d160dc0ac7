//! A real node against a junk peer over real libp2p on loopback: a peer
//! that gossips a branch of junk side blocks is banned, and nothing it sent
//! is stored or relayed.

mod common;

use proctor_network::{ChainAccess, NetworkConfig, Verdict, libp2p_identity};
use proctor_node::{Node, NodeConfig, init_dir};
use proctor_primitives::{Hash, Keypair};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The junk peer's own view: it serves nothing and takes nothing.
struct Nothing;

impl ChainAccess for Nothing {
    fn height(&self) -> u64 {
        0
    }
    fn blocks_from(&self, _: u64, _: u64, _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn import(&self, _: &[u8]) -> Verdict {
        Verdict::Ignore
    }
    fn add_txs(&self, txs: &[Vec<u8>]) -> Vec<Verdict> {
        vec![Verdict::Ignore; txs.len()]
    }
    fn blob(&self, _: &Hash) -> Option<Vec<u8>> {
        None
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gossiping_junk_side_blocks_is_banned_and_nothing_is_stored() {
    let mut tc = common::test_chain("junkpeer");
    let ndir = tc.dir.join("node");
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    init_dir(
        &ndir,
        &tc.genesis,
        &NodeConfig {
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            p2p_listen: Some(p2p.clone()),
            bootnodes: vec![],
            rpc_rate: None,
            explorer: false,
        },
    )
    .unwrap();
    let node = Node::start(&ndir).await.unwrap();
    // The node is two blocks in, so a block off genesis is a side block.
    let genesis = {
        let mut enclave = tc.enclave.take().unwrap();
        common::load(&mut enclave);
        let mut c = node.chain.lock().unwrap();
        for i in 1..=2 {
            let now = tc.genesis.timestamp + 1_000 * i;
            common::mine(&mut c, &mut enclave, tc.keys[0].public().address(), now);
        }
        c.store().block_at(0).unwrap().unwrap()
    };
    let http = proctor_rpc::http_client(&node.rpc_url()).unwrap();

    let peer = proctor_network::start(
        NetworkConfig {
            keypair: libp2p_identity::Keypair::generate_ed25519(),
            listen: format!("/ip4/127.0.0.1/tcp/{}", free_port())
                .parse()
                .unwrap(),
            bootnodes: vec![p2p.parse().unwrap()],
            peers_file: None,
        },
        Arc::new(Nothing),
    )
    .unwrap();
    let stranger = Keypair::from_secret(&[66; 32]);
    let mut sent = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut salt = 0u8;
    let banned = loop {
        assert!(Instant::now() < deadline, "the junk peer was never banned");
        // A fresh junk branch off genesis, and a child of it.
        salt = salt.wrapping_add(1);
        let params = &tc.genesis.params;
        let root = common::junk_block(&genesis, params, &stranger, 1, salt);
        let child = common::junk_block(&root, params, &stranger, 2, salt);
        for b in [root, child] {
            peer.publish_block(proctor_primitives::codec::encode(&b));
            sent.push(b.hash());
        }
        let info = proctor_rpc::ApiClient::net_info(&http).await.unwrap();
        if let Some(b) = info
            .banned
            .into_iter()
            .find(|b| b.id == peer.peer_id.to_string())
        {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(banned.reason, "sent invalid blocks");
    let c = node.chain.lock().unwrap();
    for h in &sent {
        assert!(
            c.store().block(h).unwrap().is_none(),
            "junk block {h} was stored"
        );
    }
    assert_eq!(c.store().side_blocks().unwrap(), (0, 0));
    assert_eq!(c.head().height, 2, "the chain did not move");
}
