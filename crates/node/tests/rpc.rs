//! The RPC server: new heads over WebSocket while a worker mines, and stable
//! error codes for bad input.

mod common;

use proctor_node::{Node, NodeConfig, init_dir};
use proctor_primitives::{Amount, Hash};
use proctor_rpc::jsonrpsee::core::ClientError;
use proctor_rpc::jsonrpsee::ws_client::WsClientBuilder;
use proctor_rpc::{ApiClient, codes};
use proctor_state::testkit::transfer;
use proctor_worker::{Worker, WorkerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Starts a node for the test chain, serving RPC on a free loopback port.
async fn start_node(tc: &common::TestChain) -> Node {
    let ndir = tc.dir.join("node");
    init_dir(
        &ndir,
        &tc.genesis,
        &NodeConfig {
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            p2p_listen: None,
            bootnodes: vec![],
        },
    )
    .unwrap();
    Node::start(&ndir).await.unwrap()
}

/// A worker mining through `enclave` for `operator` until `stop` is set.
fn spawn_miner(
    enclave: Box<dyn proctor_enclave::wire::Transport>,
    operator: &proctor_primitives::Keypair,
    node: &Node,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<(), proctor_worker::Error>> {
    let config = WorkerConfig {
        rpc_url: node.rpc_url(),
        operator: operator.clone(),
        collateral: None,
        offer: None,
    };
    let mut worker = Worker::new(enclave, config).unwrap();
    let stop = stop.clone();
    tokio::spawn(async move { worker.mine(stop).await })
}

fn code(e: ClientError) -> i32 {
    match e {
        ClientError::Call(obj) => obj.code(),
        other => panic!("expected a call error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_heads_over_websocket_and_error_codes() {
    let mut tc = common::test_chain("rpc");
    let node = start_node(&tc).await;
    let ws = WsClientBuilder::default()
        .build(format!("ws://{}", node.rpc_addr))
        .await
        .unwrap();
    let http = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let mut heads = ws.subscribe_new_heads().await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mining = spawn_miner(
        Box::new(tc.enclave.take().unwrap()),
        &tc.keys[0],
        &node,
        &stop,
    );

    let mut last = 0;
    for _ in 0..3 {
        let head = tokio::time::timeout(Duration::from_secs(60), heads.next())
            .await
            .expect("a new head within 60 s")
            .expect("subscription open")
            .expect("well-formed head");
        assert!(head.height > last, "heads arrive in order");
        last = head.height;
        let block = http.block(head.height.to_string()).await.unwrap();
        assert_eq!(block.hash, head.hash);
    }

    // Mining stops first: a block between two submissions would turn "already
    // pending" (4009) into "nonce already used" (1003).
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), mining)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();

    // Stable error codes.
    let g = tc.genesis.hash();
    assert_eq!(
        code(http.send_transaction("zz".into()).await.unwrap_err()),
        -32602
    );
    let mut bad_sig = transfer(&g, &tc.keys[1], 0, &tc.keys[2], 1, 1);
    bad_sig.tx.fee = Amount(2);
    assert_eq!(
        code(
            http.send_transaction(proctor_rpc::to_hex(&bad_sig))
                .await
                .unwrap_err()
        ),
        1001
    );
    let other_chain = transfer(&Hash([1; 32]), &tc.keys[1], 0, &tc.keys[2], 1, 1);
    assert_eq!(
        code(
            http.send_transaction(proctor_rpc::to_hex(&other_chain))
                .await
                .unwrap_err()
        ),
        1002
    );
    let gap = transfer(&g, &tc.keys[1], 9, &tc.keys[2], 1, 1);
    assert_eq!(
        code(
            http.send_transaction(proctor_rpc::to_hex(&gap))
                .await
                .unwrap_err()
        ),
        1004
    );
    let broke = transfer(&g, &tc.keys[1], 0, &tc.keys[2], u64::MAX as u128, 1);
    let e = http
        .send_transaction(proctor_rpc::to_hex(&broke))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("insufficient balance"), "{e}");
    assert_eq!(code(e), 1005);
    let good = transfer(&g, &tc.keys[1], 0, &tc.keys[2], 1, 1);
    http.send_transaction(proctor_rpc::to_hex(&good))
        .await
        .unwrap();
    assert_eq!(
        code(
            http.send_transaction(proctor_rpc::to_hex(&good))
                .await
                .unwrap_err()
        ),
        4009
    );
    assert_eq!(
        code(
            http.submit_work(Hash([3; 32]), "00".into())
                .await
                .unwrap_err()
        ),
        -32602
    );
    assert_eq!(
        code(http.block("not-a-block".into()).await.unwrap_err()),
        -32602
    );
    assert_eq!(code(http.block("123456".into()).await.unwrap_err()), 4004);

    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_enclave_registers_by_transaction_then_mines() {
    use proctor_enclave::Enclave;
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform};

    let mut tc = common::test_chain("register");
    let node = start_node(&tc).await;
    let http = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // The genesis enclave mines, so that the registration can be included.
    let first = spawn_miner(
        Box::new(tc.enclave.take().unwrap()),
        &tc.keys[0],
        &node,
        &stop,
    );

    // A new machine, same simulated attestation root, not in the genesis.
    let platform = SimPlatform::open(
        &tc.dir.join("second"),
        SimAttestationRoot::from_secret(&[5; 32]),
    )
    .unwrap();
    let mut second = Worker::new(
        Box::new(Enclave::new(Box::new(platform)).unwrap()),
        WorkerConfig {
            rpc_url: node.rpc_url(),
            operator: tc.keys[1].clone(),
            collateral: None,
            offer: None,
        },
    )
    .unwrap();
    let id = second.info().identity;
    assert!(http.enclave(id).await.unwrap().is_none());
    second.ensure_registered(&stop).await.unwrap();
    let rec = http
        .enclave(id)
        .await
        .unwrap()
        .expect("registered on chain");
    assert_eq!(rec.operator, tc.keys[1].public().address());
    let registered_at = rec.registered_at;

    let s = stop.clone();
    let second = tokio::spawn(async move { second.mine(s).await });
    // Both enclaves now compete; the new one wins a block within a bounded wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut next = registered_at + 1;
    let won_by_second = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the new enclave never won a block"
        );
        match http.block(next.to_string()).await {
            Ok(b) => {
                if b.pouw.as_ref().unwrap().enclave == id {
                    break b;
                }
                next += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(
        won_by_second.miner,
        tc.keys[1].public().address(),
        "rewards go to the new operator"
    );

    stop.store(true, Ordering::Relaxed);
    for w in [first, second] {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("worker stops")
            .unwrap()
            .unwrap();
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_travel_in_chunks_and_limits_are_enforced() {
    let tc = common::test_chain("blobs");
    let node = start_node(&tc).await;
    let c = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    // 3 MiB and a bit: four chunks up, four ranges down.
    let big: Vec<u8> = (0..(3 << 20) + 17)
        .map(|i: u32| (i * 7 + i / 1000) as u8)
        .collect();
    let h = proctor_rpc::upload_blob(&c, &big).await.unwrap();
    assert_eq!(h, proctor_primitives::Hash::of(&big));
    assert_eq!(c.blob_size(h).await.unwrap(), big.len() as u64);
    assert_eq!(proctor_rpc::download_blob(&c, h).await.unwrap(), big);
    // A range never exceeds one chunk; past the end it is empty.
    let part = c.blob_range(h, 10, 5 << 20).await.unwrap();
    assert_eq!(hex::decode(part).unwrap().len(), proctor_rpc::BLOB_CHUNK);
    assert!(c.blob_range(h, 1 << 30, 10).await.unwrap().is_empty());
    // Joining a chunk that was never uploaded, and one upload too large.
    let missing = proctor_primitives::Hash::of(b"never uploaded");
    assert_eq!(
        code(c.compose_blob(vec![h, missing]).await.unwrap_err()),
        codes::NOT_FOUND
    );
    let huge = hex::encode(vec![0u8; 13 << 20]);
    assert_eq!(code(c.put_blob(huge).await.unwrap_err()), codes::TOO_LARGE);
    node.stop().await;
}
