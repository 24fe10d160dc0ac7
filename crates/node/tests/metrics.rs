//! `GET /metrics`: Prometheus text of a real node after it mined blocks and
//! answered good, bad and junk requests.

mod common;

use proctor_node::{Node, NodeConfig, init_dir};
use proctor_rpc::ApiClient;
use std::io::{Read, Write};
use std::time::Duration;

/// One HTTP/1.1 request on a fresh connection: (status line, headers, body).
fn http(addr: std::net::SocketAddr, request: &str) -> (String, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.into(), headers.to_lowercase(), body.into())
}

/// A node for the test chain, serving RPC on a free loopback port.
async fn start(tc: &common::TestChain) -> Node {
    let ndir = tc.dir.join("node");
    let config = NodeConfig {
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        p2p_listen: None,
        bootnodes: vec![],
        rpc_rate: None,
        explorer: true,
    };
    init_dir(&ndir, &tc.genesis, &config).unwrap();
    Node::start(&ndir).await.unwrap()
}

/// The value of the series `name` (exact, labels included).
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_chain_and_count_requests_by_method_and_code() {
    let mut tc = common::test_chain("metrics");
    let node = start(&tc).await;
    let client = proctor_rpc::http_client(&node.rpc_url()).unwrap();

    // Mine two blocks, then stop so the height holds still.
    let height = common::mine_until(&mut tc, &node, 2).await;

    // A bad transaction (-32602) and a junk method name (-32601).
    assert!(client.send_transaction("zz".into()).await.is_err());
    let junk = r#"{"jsonrpc":"2.0","id":1,"method":"junk_flood_1234","params":[]}"#;
    let (status, _, body) = http(
        node.rpc_addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{junk}",
            junk.len()
        ),
    );
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("-32601"), "{body}");

    let (status, headers, text) = http(
        node.rpc_addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains("200"), "{status}");
    assert!(headers.contains("content-type: text/plain"), "{headers}");
    assert_eq!(
        value(&text, "proctor_head_height"),
        Some(height as f64),
        "{text}"
    );
    let depth = tc.genesis.params.finality_depth;
    assert_eq!(
        value(&text, "proctor_finalized_height"),
        Some(height.saturating_sub(depth) as f64)
    );
    // Every mined block was timed.
    let imports = value(&text, "proctor_block_import_seconds_count").unwrap();
    assert!(
        imports >= height as f64,
        "{imports} imports for {height} blocks"
    );
    assert_eq!(value(&text, "proctor_mempool_transactions"), Some(0.0));
    assert_eq!(value(&text, r#"proctor_jobs{state="pending"}"#), Some(0.0));
    assert!(
        value(&text, "proctor_blob_bytes").unwrap() > 0.0,
        "the filler is stored"
    );
    assert!(
        value(
            &text,
            r#"proctor_rpc_requests_total{method="proctor_head",code="0"}"#
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        value(
            &text,
            r#"proctor_rpc_requests_total{method="proctor_sendTransaction",code="-32602"}"#
        ),
        Some(1.0)
    );
    // The junk name is counted, but never becomes a label of its own.
    assert_eq!(
        value(
            &text,
            r#"proctor_rpc_requests_total{method="unknown",code="-32601"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("junk_flood"));
    node.stop().await;
}

/// A JSON-RPC call over raw HTTP: the whole response.
fn call(addr: std::net::SocketAddr, method: &str, params: &str) -> serde_json::Value {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    let (status, _, text) = http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(status.contains("200"), "{status}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_discover_describes_exactly_the_methods_served() {
    let tc = common::test_chain("discover");
    let node = start(&tc).await;
    let doc = call(node.rpc_addr, "rpc.discover", "[]")["result"].clone();
    assert_eq!(doc["openrpc"], "1.2.6");
    let methods = doc["methods"].as_array().unwrap();
    assert!(methods.len() >= 25, "{}", methods.len());
    // Every documented method is served: none is "method not found".
    for m in methods {
        let name = m["name"].as_str().unwrap();
        let answer = call(node.rpc_addr, name, "[]");
        assert_ne!(answer["error"]["code"], -32601, "{name}: {answer}");
    }
    assert_eq!(
        call(node.rpc_addr, "proctor_noSuchMethod", "[]")["error"]["code"],
        -32601
    );
    // A method as the table says it: parameters, result and errors.
    let block = methods
        .iter()
        .find(|m| m["name"] == "proctor_block")
        .unwrap();
    assert_eq!(block["params"][0]["name"], "id");
    assert_eq!(block["params"][0]["schema"]["type"], "string");
    assert_eq!(
        block["result"]["schema"]["$ref"],
        "#/components/schemas/BlockInfo"
    );
    let codes: Vec<i64> = block["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["code"].as_i64())
        .collect();
    assert!(codes.contains(&4004) && codes.contains(&4290), "{codes:?}");
    // An error names the input that failed, by its parameter name.
    let input = |method: &str, params: &str| {
        let e = call(node.rpc_addr, method, params)["error"].clone();
        (e["code"].as_i64().unwrap(), e["data"]["input"].clone())
    };
    assert_eq!(input("proctor_block", r#"["zz"]"#), (-32602, "id".into()));
    assert_eq!(input("proctor_block", r#"["999999"]"#), (4004, "id".into()));
    assert_eq!(
        input("proctor_sendTransaction", r#"["zz"]"#),
        (-32602, "tx".into())
    );
    assert_eq!(input("proctor_job", "[424242]"), (4004, "id".into()));
    assert_eq!(
        input("admin_banPeer", r#"["wrong", "x"]"#),
        (4031, "token".into())
    );
    // Typed parameters that the server's own parsing refuses are named too,
    // by position or by name, with serde's reason kept.
    assert_eq!(
        input("proctor_transaction", r#"["not-a-hash"]"#),
        (-32602, "hash".into())
    );
    assert_eq!(
        input("proctor_account", r#"{"address": "prc1nope"}"#),
        (-32602, "address".into())
    );
    assert_eq!(input("proctor_job", r#"["seven"]"#), (-32602, "id".into()));
    let good = format!("\"{}\"", "ab".repeat(32));
    let e = call(node.rpc_addr, "proctor_submitWork", &format!("[{good}]"))["error"].clone();
    assert_eq!(
        (e["code"].as_i64(), &e["data"]["input"]),
        (Some(-32602), &"proof".into())
    );
    assert!(e["data"]["reason"].is_string(), "{e}");
    // Node administration lives apart, under admin_*.
    let ban = methods
        .iter()
        .find(|m| m["name"] == "admin_banPeer")
        .unwrap();
    assert_eq!(ban["params"][0]["name"], "token");
    assert!(doc["components"]["schemas"]["BlockInfo"].is_object());
    node.stop().await;
}

/// A real worker mining on a real node serves its own `/metrics`: the
/// slices, draws and instructions its enclave ran, and the blocks it won,
/// which must match the blocks the chain credits to its enclave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_its_own_metrics_that_match_the_chain() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let mut tc = common::test_chain("worker-metrics");
    let node = start(&tc).await;
    let client = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let mut worker = common::miner(&mut tc, &node);
    let identity = worker.info().identity;
    let (addr, server) =
        proctor_worker::metrics::serve("127.0.0.1:0".parse().unwrap(), worker.metrics())
            .await
            .unwrap();
    let scrape = || {
        let (status, headers, text) = http(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(status.contains("200"), "{status}");
        assert!(headers.contains("content-type: text/plain"), "{headers}");
        text
    };
    // Before mining: the series exist and are zero.
    let before = scrape();
    assert_eq!(value(&before, "proctor_worker_slices_total"), Some(0.0));
    assert_eq!(value(&before, "proctor_worker_blocks_won_total"), Some(0.0));
    assert!(
        before.contains(&format!("proctor_worker_info{{identity=\"{identity}\"}} 1")),
        "{before}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let mining = tokio::spawn(async move {
        let r = worker.mine(s).await;
        (worker, r)
    });
    // Mine for at least two blocks and until the rate is measured: it
    // needs a second of the enclave's own time (the rate window), which on
    // a loaded machine takes longer than a second of the clock.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let head = client.head().await.unwrap().height;
        if head >= 2
            && value(&scrape(), "proctor_worker_instructions_per_second").is_some_and(|r| r > 0.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no blocks mined and rate measured in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (worker, result) = mining.await.unwrap();
    result.unwrap();

    let text = scrape();
    let get = |name: &str| value(&text, name).unwrap_or_else(|| panic!("{name}: {text}"));
    let slices = get("proctor_worker_slices_total");
    assert!(slices > 0.0, "{text}");
    assert_eq!(get("proctor_worker_lottery_draws_total"), slices);
    assert!(
        get("proctor_worker_instructions_total") >= slices * proctor_worker::SLICE as f64,
        "{text}"
    );
    assert!(
        get("proctor_worker_instructions_per_second") > 0.0,
        "{text}"
    );
    // Blocks won, as the chain sees them: every block whose proof names this enclave.
    let head = client.head().await.unwrap().height;
    let mut credited = 0u64;
    for h in 1..=head {
        let b = client.block(h.to_string()).await.unwrap();
        if b.pouw.is_some_and(|p| p.enclave == identity) {
            credited += 1;
        }
    }
    assert!(credited >= 2);
    assert_eq!(get("proctor_worker_blocks_won_total"), credited as f64);
    assert_eq!(worker.stats().blocks_won, credited);
    let wins = get("proctor_worker_lottery_wins_total");
    assert_eq!(
        wins,
        credited as f64 + get("proctor_worker_stale_proofs_total")
    );

    // Anything but GET /metrics is not a page: a junk path is not served.
    let (status, _, _) = http(
        addr,
        "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!status.contains("200"), "{status}");
    server.stop().unwrap();
    node.stop().await;
}
