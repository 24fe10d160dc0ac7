//! The block explorer in a real browser: Debian's `chromium`, headless,
//! loads a live node's page and the test reads the DOM it built. Without
//! chromium the test says so and passes, unless `PROCTOR_REQUIRE_BROWSER=1`
//! (set by `.ci/run`, which installs it).

mod common;

use proctor_node::{Node, NodeConfig, init_dir};
use proctor_rpc::ApiClient;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// The DOM chromium has built for `url` once the page's scripts settled.
fn dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    let mut child = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

async fn start(tc: &common::TestChain, name: &str, explorer: bool) -> Node {
    let ndir = tc.dir.join(name);
    let config = NodeConfig {
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        p2p_listen: None,
        bootnodes: vec![],
        rpc_rate: None,
        explorer,
    };
    init_dir(&ndir, &tc.genesis, &config).unwrap();
    Node::start(&ndir).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_the_height_and_each_blocks_enclave_in_a_browser() {
    let browser = match chromium() {
        Some(b) => b,
        None if std::env::var_os("PROCTOR_REQUIRE_BROWSER").is_some() => {
            panic!("PROCTOR_REQUIRE_BROWSER is set but chromium is not installed")
        }
        None => {
            eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium)");
            return;
        }
    };
    let mut tc = common::test_chain("explorer");
    let node = start(&tc, "node", true).await;
    let client = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let height = common::mine_until(&mut tc, &node, 3).await;
    let tip = client.block(height.to_string()).await.unwrap();
    let enclave = serde_json::to_value(tip.pouw.unwrap().enclave).unwrap();
    let enclave = enclave.as_str().unwrap().to_string();

    let profile = tc.dir.join("chromium");
    let url = node.rpc_url();
    let (b, p, u) = (browser.clone(), profile.clone(), url.clone());
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &p, &format!("{u}/")))
        .await
        .unwrap();
    assert!(
        dom.contains(&format!(r#"id="height" data-height="{height}""#)),
        "the page shows height {height}: {dom}"
    );
    assert!(
        dom.contains(&format!(r#"<tr data-height="{height}">"#)),
        "the tip's row: {dom}"
    );
    assert!(
        dom.contains(&format!(r#"data-enclave="{enclave}""#)),
        "the tip's enclave {enclave}: {dom}"
    );
    assert!(!dom.contains("class=\"error\""), "{dom}");

    // A block's page shows its proof.
    let (b, p) = (browser.clone(), profile.clone());
    let block_url = format!("{url}/#/block/{height}");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&b, &p, &block_url))
        .await
        .unwrap();
    assert!(dom.contains("PoUW proof"), "{dom}");
    assert!(
        dom.contains(&format!(r#"data-enclave="{enclave}""#)),
        "{dom}"
    );
    assert!(dom.contains(&tip.hash.to_string()), "{dom}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_is_served_only_when_on() {
    let tc = common::test_chain("explorer-off");
    let on = start(&tc, "on", true).await;
    let page = get(on.rpc_addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.to_lowercase().contains("content-type: text/html"));
    assert!(page.contains("/app.js"));
    let js = get(on.rpc_addr, "/app.js");
    assert!(js.contains("proctor_subscribeNewHeads"));
    on.stop().await;
    let off = start(&tc, "off", false).await;
    let page = get(off.rpc_addr, "/");
    assert!(!page.contains("/app.js"), "{page}");
    off.stop().await;
}
