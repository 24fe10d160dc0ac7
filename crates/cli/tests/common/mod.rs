//! Helpers of the end-to-end tests: real `proctor` processes on loopback.
//!
//! Every wait polls a condition with a deadline; every child process is
//! killed when its guard drops.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_proctor");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh test directory, deleted when the test passes (kept, with its
/// logs, when it fails). Declare it before the processes that use it, so
/// they are stopped first.
pub struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
            let _ = std::fs::remove_file(self.0.with_extension("log"));
        }
    }
}

pub fn tmp(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("proctor-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run proctor")
}

pub fn ok_json(args: &[&str]) -> Value {
    let o = run(args);
    assert!(
        o.status.success(),
        "proctor {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// Polls `f` until it returns Some, or panics after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(args: &[&str], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Proc(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn proctor"),
    )
}

pub fn head(url: &str) -> Option<Value> {
    let o = run(&["--rpc", url, "chain", "head", "--json"]);
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).unwrap())
}

pub fn height(url: &str) -> Option<u64> {
    head(url).map(|h| h["height"].as_u64().unwrap())
}

pub fn start_devnet(dir: &Path, workers: usize) -> (Proc, String) {
    start_devnet_with(dir, workers, &[])
}

pub fn start_devnet_with(dir: &Path, workers: usize, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (port_s, workers_s) = (port.to_string(), workers.to_string());
    let mut args = vec![
        "devnet",
        "--dir",
        dir.to_str().unwrap(),
        "--rpc-port",
        &port_s,
        "--workers",
        &workers_s,
    ];
    args.extend_from_slice(extra);
    let p = spawn(&args, &dir.with_extension("log"));
    wait_for("the devnet's RPC", 120, || head(&url));
    (p, url)
}

/// Arguments of `proctor transfer`.
pub fn transfer<'a>(
    url: &'a str,
    key: &'a Path,
    to: &'a str,
    amount: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "--rpc",
        url,
        "transfer",
        "--key",
        key.to_str().unwrap(),
        "--to",
        to,
        "--amount",
        amount,
    ];
    v.extend_from_slice(extra);
    v
}

pub fn address(key: &Path) -> String {
    ok_json(&["keys", "show", key.to_str().unwrap(), "--json"])["address"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn block_hash(url: &str, height: u64) -> Option<Value> {
    let o = run(&[
        "--rpc",
        url,
        "chain",
        "block",
        &height.to_string(),
        "--json",
    ]);
    o.status
        .success()
        .then(|| serde_json::from_slice::<Value>(&o.stdout).unwrap()["hash"].clone())
}

/// Waits until both nodes hold the same block at a height of at least `min`.
pub fn converged(a: &str, b: &str, min: u64) -> u64 {
    wait_for("the nodes to converge", 120, || {
        let h = height(a)?.min(height(b)?);
        (h >= min && block_hash(a, h)? == block_hash(b, h)?).then_some(h)
    })
}

/// A base port with `n` consecutive free ports on loopback.
pub fn free_ports(n: u16) -> u16 {
    for _ in 0..50 {
        let base = free_port();
        if base < u16::MAX - n
            && (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no {n} consecutive free ports")
}

/// A devnet of `nodes` node processes and `workers` workers in `dir`/chain,
/// with its log in `dir`/devnet.log; returns it and devnet.json's nodes.
pub fn start_nodes(dir: &Path, nodes: usize, workers: usize) -> (Proc, Vec<Value>) {
    let chain = dir.join("chain");
    let (rpc, p2p) = (free_ports(nodes as u16), free_ports(nodes as u16));
    let (rpc_s, p2p_s) = (rpc.to_string(), p2p.to_string());
    let (nodes_s, workers_s) = (nodes.to_string(), workers.to_string());
    let devnet = spawn(
        &[
            "devnet",
            "--dir",
            chain.to_str().unwrap(),
            "--nodes",
            &nodes_s,
            "--workers",
            &workers_s,
            "--rpc-port",
            &rpc_s,
            "--p2p-port",
            &p2p_s,
        ],
        &dir.join("devnet.log"),
    );
    (devnet, devnet_nodes(&chain, nodes))
}

/// The `nodes` entries of `chain`/devnet.json, once the devnet wrote it.
pub fn devnet_nodes(chain: &Path, nodes: usize) -> Vec<Value> {
    let file = chain.join("devnet.json");
    wait_for("devnet.json", 120, || {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        let list = v["nodes"].as_array()?.clone();
        (list.len() == nodes).then_some(list)
    })
}

/// devnet.json's workers, once it lists `workers` of them.
pub fn devnet_workers(chain: &Path, workers: usize) -> Vec<Value> {
    let file = chain.join("devnet.json");
    wait_for("devnet.json workers", 120, || {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        let list = v["workers"].as_array()?.clone();
        (list.len() == workers).then_some(list)
    })
}

/// The body of `GET url` (`http://HOST:PORT/PATH`), if it answers 200.
pub fn http_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The RPC URLs of devnet.json's nodes.
pub fn urls(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["rpc"].as_str().unwrap().to_string())
        .collect()
}

/// An account's balance on a node.
pub fn balance(url: &str, address: &str) -> u64 {
    ok_json(&["--rpc", url, "account", address, "--json"])["balance"]
        .as_u64()
        .unwrap()
}

/// A node's `net info --json`.
pub fn net_info(url: &str) -> Value {
    ok_json(&["--rpc", url, "net", "info", "--json"])
}

/// Ids of a node's connected peers.
pub fn peer_ids(url: &str) -> Vec<String> {
    net_info(url)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

/// Total supply minus all block rewards so far: constant on a sound chain.
pub fn supply_less_rewards(url: &str, reward: u64) -> u128 {
    let s = ok_json(&["--rpc", url, "chain", "supply", "--json"]);
    let total = s["total_supply"].as_u64().unwrap() as u128;
    total - s["height"].as_u64().unwrap() as u128 * reward as u128
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Asserts that `marker` is in no file under the devnet directory `chain`
/// (node, workers, their logs and databases) nor in the devnet's own log;
/// returns how many bytes were scanned.
pub fn assert_nowhere_on_disk(chain: &Path, marker: &str) -> usize {
    let mut scanned = 0;
    for f in files(chain)
        .into_iter()
        .chain([chain.with_extension("log")])
    {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, marker),
            "the plaintext leaked into {}",
            f.display()
        );
        scanned += bytes.len();
    }
    scanned
}

/// A JSON-RPC call over plain HTTP; its `result` or `error`.
pub fn rpc(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://").unwrap();
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        .to_string();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (_, body) = out.split_once("\r\n\r\n").unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    match v.get("result") {
        Some(r) => r.clone(),
        None => v["error"].clone(),
    }
}
