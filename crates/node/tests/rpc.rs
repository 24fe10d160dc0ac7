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
    start_node_with(tc, None).await
}

/// The same, serving `rpc_rate` requests per second per connection.
async fn start_node_with(tc: &common::TestChain, rpc_rate: Option<u32>) -> Node {
    let ndir = tc.dir.join("node");
    init_dir(
        &ndir,
        &tc.genesis,
        &NodeConfig {
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            p2p_listen: None,
            bootnodes: vec![],
            rpc_rate,
            explorer: false,
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
    // Both registrations' quotes are served, and check out against the
    // genesis on the client's side.
    let genesis = http.genesis().await.unwrap();
    assert_eq!(genesis.hash(), tc.genesis.hash());
    for who in [tc.genesis.enclaves[0].identity, id] {
        let q = http.enclave_quote(who).await.unwrap();
        assert_eq!(q.in_genesis, who != id);
        let key = proctor_rpc::verify_enclave_quote(&tc.genesis, &q).unwrap();
        assert_eq!(
            key,
            http.enclave(who).await.unwrap().unwrap().encryption_key
        );
    }

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
    let chunk = c.put_blob(hex::encode(&big[..1000])).await.unwrap();
    let missing = proctor_primitives::Hash::of(b"never uploaded");
    assert_eq!(
        code(c.compose_blob(vec![chunk, missing]).await.unwrap_err()),
        codes::NOT_FOUND
    );
    // A file of zeros has chunks that would repeat at a fixed size: it
    // still uploads, since every chunk has its own length.
    let zeros = vec![0u8; (2 << 20) + 5];
    let hz = proctor_rpc::upload_blob(&c, &zeros).await.unwrap();
    assert_eq!(proctor_rpc::download_blob(&c, hz).await.unwrap(), zeros);
    // Storage is not multiplied for free: one chunk named many times, or a
    // joined blob used as a chunk, is refused.
    let e = c.compose_blob(vec![chunk; 64]).await.unwrap_err();
    assert_eq!(code(e), codes::INVALID_PARAMS);
    let e = c.compose_blob(vec![h, chunk]).await.unwrap_err();
    assert_eq!(code(e), codes::TOO_LARGE);
    let huge = hex::encode(vec![0u8; 13 << 20]);
    assert_eq!(code(c.put_blob(huge).await.unwrap_err()), codes::TOO_LARGE);
    node.stop().await;
}

/// A caller that floods the node: batches over the limit and requests over
/// a connection's rate are refused at once (other connections are served),
/// and admin methods refuse a caller without the node's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_callers_and_admin_calls_without_the_token_are_refused() {
    use proctor_rpc::AdminClient;
    use proctor_rpc::jsonrpsee::core::client::ClientT;
    use proctor_rpc::jsonrpsee::core::params::BatchRequestBuilder;

    let tc = common::test_chain("flood");
    let node = start_node_with(&tc, Some(500)).await;
    let url = format!("ws://{}", node.rpc_addr);
    let connect = || WsClientBuilder::default().build(&url);
    let batch = |n: usize| {
        let mut b = BatchRequestBuilder::new();
        for _ in 0..n {
            b.insert("proctor_head", proctor_rpc::jsonrpsee::rpc_params![])
                .unwrap();
        }
        b
    };

    // A full second's worth in one batch is served; one more is refused,
    // whole, before any of it runs.
    let a = connect().await.unwrap();
    let served = a
        .batch_request::<proctor_rpc::HeadInfo>(batch(500))
        .await
        .unwrap();
    assert_eq!(served.num_successful_calls(), 500);
    let b = connect().await.unwrap();
    let refused = b
        .batch_request::<proctor_rpc::HeadInfo>(batch(501))
        .await
        .unwrap();
    assert_eq!(refused.num_successful_calls(), 0);
    for r in refused.into_iter() {
        assert_eq!(r.unwrap_err().code(), codes::RATE_LIMITED);
    }
    // The refusal cost nothing: the same connection is still served.
    assert!(b.head().await.is_ok());
    // Past the batch limit, the server refuses whatever the rate.
    let c = connect().await.unwrap();
    let too_long = c
        .batch_request::<proctor_rpc::HeadInfo>(batch(proctor_node::rpc::MAX_BATCH as usize + 1))
        .await;
    assert!(too_long.is_err(), "a batch over the limit was served");

    // Admin methods: the token is in the node's directory, for its owner only.
    let token_path = tc.dir.join("node").join(proctor_rpc::ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&token_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the admin token is readable by others");
    }
    let http = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".to_string();
    for wrong in [String::new(), "00".repeat(32), token.to_uppercase()] {
        let e = http.ban_peer(wrong, peer.clone(), None).await.unwrap_err();
        assert_eq!(code(e), codes::UNAUTHORIZED);
    }
    let e = http.unban_peer("x".into(), peer.clone()).await.unwrap_err();
    assert_eq!(code(e), codes::UNAUTHORIZED);
    // With the token, the call gets through to the (absent) network.
    let e = http.ban_peer(token, peer, None).await.unwrap_err();
    assert_eq!(code(e), codes::NO_NETWORK);
    node.stop().await;
}

/// Jobs are listed in pages, newest first, and a job holds its blobs from
/// submission: an upload's short retention cannot delete them while the job
/// waits in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_come_in_pages_and_hold_their_blobs_from_submission() {
    use proctor_state::jobs::JobSpec;
    use proctor_state::{Call, Transaction};

    let mut tc = common::test_chain("jobpages");
    let node = start_node(&tc).await;
    let http = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let mut enclave = tc.enclave.take().unwrap();
    common::load(&mut enclave);
    let g = tc.genesis.hash();
    let (a, b) = (&tc.keys[1], &tc.keys[2]);
    let module = http.put_blob(hex::encode(b"\0asm module")).await.unwrap();
    let input = http.put_blob(hex::encode(b"sealed input")).await.unwrap();
    let spec = JobSpec {
        module,
        input,
        memory_pages: 16,
        fuel: 1_000_000,
        max_price: Amount(1),
        replicas: 1,
        deadline_blocks: 10,
        retention_blocks: 5,
        output_key: [9; 32],
        args: vec![],
    };
    let escrow =
        proctor_market::settle::escrow(spec.fuel, 1, 1, &tc.genesis.params.market.fees).unwrap();
    // Jobs 0..8: requester a submits 0,1,3,4,6,7 and b submits 2,5.
    let mut nonces = [0u64; 2];
    let mut txs = Vec::new();
    for id in 0..8u64 {
        let (k, n) = if id % 3 == 2 {
            (b, &mut nonces[1])
        } else {
            (a, &mut nonces[0])
        };
        txs.push(
            Transaction {
                chain: g,
                signer: k.public(),
                nonce: *n,
                fee: Amount(1),
                call: Call::Market(proctor_state::market::Call::SubmitJob {
                    spec: spec.clone(),
                    escrow: Amount(escrow),
                }),
            }
            .sign(k),
        );
        *n += 1;
    }
    let height = {
        let mut chain = node.chain.lock().unwrap();
        let now = tc.genesis.timestamp + 1_000;
        for t in txs {
            chain.submit_tx(t, now).unwrap();
        }
        common::mine(&mut chain, &mut enclave, tc.keys[0].public().address(), now);
        assert_eq!(chain.state().market_index().next_job, 8);
        chain.head().height
    };

    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let page = http
            .jobs(a.public().address(), Some(4), before)
            .await
            .unwrap();
        assert!(page.jobs.len() <= 4);
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    // The block orders the jobs; which are whose is in their records.
    let of = |k: &proctor_primitives::Keypair| -> Vec<u64> {
        let c = node.chain.lock().unwrap();
        (0..8u64)
            .rev()
            .filter(|id| c.state().job(*id).unwrap().requester == k.public().address())
            .collect()
    };
    let (mine_a, mine_b) = (of(a), of(b));
    assert_eq!((mine_a.len(), mine_b.len()), (6, 2));
    assert_eq!(seen, mine_a);
    let b_jobs = http.jobs(b.public().address(), None, None).await.unwrap();
    assert_eq!(b_jobs.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), mine_b);
    assert_eq!(b_jobs.next, None);
    let older = http
        .jobs(a.public().address(), None, Some(mine_a[3]))
        .await
        .unwrap();
    assert_eq!(
        older.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        mine_a[4..].to_vec()
    );

    // Far past the upload retention, the pending jobs' blobs are still here.
    let store = node.chain.lock().unwrap().store().clone();
    store.expire_blobs(height + 1_000_000).unwrap();
    for h in [module, input] {
        assert!(
            store.blob(&h).unwrap().is_some(),
            "a pending job's blob was deleted"
        );
    }
    node.stop().await;
}
