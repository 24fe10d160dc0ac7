//! End-to-end tests of one node: real `proctor` processes on loopback.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn devnet_transfer_and_blocks_from_the_registered_enclave() {
    let dir = tmp("transfer");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 1);
    wait_for("height 2", 120, || height(&url).filter(|&h| h >= 2));

    let dev0 = chain.join("keys/dev0.json");
    let (a0, a1) = (address(&dev0), address(&chain.join("keys/dev1.json")));
    let before = ok_json(&["--rpc", &url, "account", &a1, "--json"]);
    let b1 = before["balance"].as_u64().unwrap();

    let t = ok_json(&transfer(&url, &dev0, &a1, "12345", &["--wait", "--json"]));
    assert_eq!(t["status"]["status"], "included", "{t}");
    let included_at = t["status"]["height"].as_u64().unwrap();
    let after = ok_json(&["--rpc", &url, "account", &a1, "--json"]);
    assert_eq!(after["balance"].as_u64().unwrap(), b1 + 12345);
    let sender = ok_json(&["--rpc", &url, "account", &a0, "--json"]);
    assert_eq!(sender["nonce"], 1);
    // The block that included it lists it.
    let blk = ok_json(&[
        "--rpc",
        &url,
        "chain",
        "block",
        &included_at.to_string(),
        "--json",
    ]);
    assert!(
        blk["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == &t["hash"]),
        "{blk}"
    );

    // Consecutive blocks all carry PoUW from the enclave registered in the genesis.
    let genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(chain.join("genesis.json")).unwrap())
            .unwrap();
    let enclave = genesis["enclaves"][0]["identity"]
        .as_str()
        .unwrap()
        .to_string();
    let info = ok_json(&["--rpc", &url, "chain", "info", "--json"]);
    let top = wait_for("three more blocks", 120, || {
        height(&url).filter(|&h| h >= included_at + 2)
    });
    let mut prev: Option<Value> = None;
    for h in 1..=top {
        let b = ok_json(&["--rpc", &url, "chain", "block", &h.to_string(), "--json"]);
        let p = &b["pouw"];
        assert_eq!(p["enclave"].as_str().unwrap(), enclave, "block {h}");
        assert_eq!(p["module"], info["filler_module"], "block {h}");
        assert_eq!(p["difficulty"], b["difficulty"]);
        assert!(p["instructions"].as_u64().unwrap() > 0);
        if let Some(prev) = prev {
            assert_eq!(b["parent"], prev["hash"], "block {h} links to its parent");
        }
        prev = Some(b);
    }

    // A devnet's node serves the explorer and metrics on its RPC address.
    let get = |path: &str| {
        use std::io::{Read, Write};
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(get("/").contains("/app.js"), "the explorer at /");
    assert!(get("/metrics").contains("proctor_head_height"));

    // Bad input gets a clear error and a non-zero exit.
    let o = run(&transfer(&url, &dev0, &a1, "1000000000000000000000", &[]));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("insufficient balance"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&transfer(&url, &dev0, "prc1notanaddress", "1", &[]));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid address"));
    let o = run(&["--rpc", &url, "chain", "block", "999999", "--json"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no block 999999"));
}

#[test]
fn node_killed_mid_mining_restarts_at_its_committed_tip() {
    let dir = tmp("crash");
    let chain = dir.join("chain");
    let (devnet, url) = start_devnet(&chain, 1);
    let seen = wait_for("height 4", 120, || height(&url).filter(|&h| h >= 4));
    let hashes: Vec<Value> = (0..=seen)
        .map(|h| {
            ok_json(&["--rpc", &url, "chain", "block", &h.to_string(), "--json"])["hash"].clone()
        })
        .collect();
    drop(devnet); // SIGKILL while the worker is mining

    // Restart only the node, from its own directory.
    let port = free_port();
    let url2 = format!("http://127.0.0.1:{port}");
    let node_dir = chain.join("node");
    let _node = spawn(
        &[
            "node",
            "--dir",
            node_dir.to_str().unwrap(),
            "--rpc-addr",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.join("node.log"),
    );
    let h = wait_for("the restarted node", 60, || head(&url2));
    let tip = h["height"].as_u64().unwrap();
    assert!(
        tip >= seen,
        "restarted at {tip}, but {seen} had been committed"
    );
    for (height, hash) in hashes.iter().enumerate() {
        let b = ok_json(&[
            "--rpc",
            &url2,
            "chain",
            "block",
            &height.to_string(),
            "--json",
        ]);
        assert_eq!(&b["hash"], hash, "block {height} changed across the crash");
    }
    // The state rebuilt from storage has the tip header's state root.
    let tip_block = ok_json(&["--rpc", &url2, "chain", "block", &tip.to_string(), "--json"]);
    assert_eq!(h["hash"], tip_block["hash"]);
    assert_eq!(h["state_root"], tip_block["state_root"]);
}

#[test]
fn keys_new_and_show() {
    let dir = tmp("keys");
    let f = dir.join("me.json");
    let o = run(&["keys", "new", "--out", f.to_str().unwrap()]);
    assert!(o.status.success());
    let shown = ok_json(&["keys", "show", f.to_str().unwrap(), "--json"]);
    assert!(shown["address"].as_str().unwrap().starts_with("prc1"));
    assert!(
        shown.get("secret_key").is_none(),
        "keys show must never print the secret"
    );
    let again = run(&["keys", "new", "--out", f.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "overwriting a key file must be refused"
    );
    std::fs::write(dir.join("bad.json"), "{}").unwrap();
    let bad = run(&["keys", "show", dir.join("bad.json").to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a proctor key file"));
}

#[test]
fn unreachable_node_is_reported() {
    let port = free_port();
    let o = run(&[
        "--rpc",
        &format!("http://127.0.0.1:{port}"),
        "chain",
        "head",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot talk to the node"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn worker_mines_through_an_enclave_process_on_a_socket() {
    let dir = tmp("socket");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 1);
    let sock = dir.join("enclave.sock");
    let _enclave = spawn(
        &[
            "enclave",
            "--dir",
            dir.join("enclave").to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--sim-root",
            chain.join("sim-attestation-root.key").to_str().unwrap(),
        ],
        &dir.join("enclave.log"),
    );
    wait_for("the enclave socket", 60, || sock.exists().then_some(()));
    let worker_log = dir.join("worker.log");
    let _worker = spawn(
        &[
            "--rpc",
            &url,
            "worker",
            "--key",
            chain.join("keys/worker1.json").to_str().unwrap(),
            "--enclave-socket",
            sock.to_str().unwrap(),
        ],
        &worker_log,
    );
    let identity = wait_for("the worker to report its enclave", 60, || {
        let log = std::fs::read_to_string(&worker_log).ok()?;
        let line = log
            .lines()
            .find(|l| l.starts_with("proctor worker: enclave "))?;
        Some(
            line.trim_start_matches("proctor worker: enclave ")
                .trim()
                .to_string(),
        )
    });
    // The new enclave registers by transaction and then wins blocks of its own.
    let mut next = 1;
    let block = wait_for("a block won through the socket enclave", 180, || {
        loop {
            let o = run(&["--rpc", &url, "chain", "block", &next.to_string(), "--json"]);
            if !o.status.success() {
                return None;
            }
            let b: Value = serde_json::from_slice(&o.stdout).unwrap();
            if b["pouw"]["enclave"].as_str() == Some(identity.as_str()) {
                return Some(b);
            }
            next += 1;
        }
    });
    let operator = address(&chain.join("keys/worker1.json"));
    assert_eq!(block["miner"].as_str().unwrap(), operator);

    // While that worker mines through the socket, the operator can still ask
    // the same enclave for its registration.
    let key = chain.join("keys/worker1.json");
    let status = run_bounded(
        &[
            "--rpc",
            &url,
            "worker",
            "--key",
            key.to_str().unwrap(),
            "--enclave-socket",
            sock.to_str().unwrap(),
            "status",
            "--json",
        ],
        60,
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let rec: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rec["identity"].as_str().unwrap(), identity);
}

/// Runs proctor, killing it and failing the test if it takes longer than `secs`.
fn run_bounded(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("proctor {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn worker_registration_lifecycle_and_governance_from_the_cli() {
    let dir = tmp("lifecycle");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 1);
    let key = chain.join("keys/worker2.json");
    let root = chain.join("sim-attestation-root.key");
    let edir = dir.join("second");
    let worker = |cmd: &[&str]| {
        let mut args = vec![
            "--rpc",
            url.as_str(),
            "worker",
            "--key",
            key.to_str().unwrap(),
        ];
        args.extend([
            "--dir",
            edir.to_str().unwrap(),
            "--sim-root",
            root.to_str().unwrap(),
        ]);
        args.extend_from_slice(cmd);
        run(&args)
    };
    let status = |w: &dyn Fn(&[&str]) -> Output| -> Value {
        let o = w(&["status", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert!(status(&worker).is_null(), "a new enclave is not registered");

    let o = worker(&["register"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = status(&worker);
    let info = ok_json(&["--rpc", &url, "chain", "info", "--json"]);
    assert_eq!(s["stake"], info["min_stake"]);
    assert_eq!(s["operator"].as_str().unwrap(), address(&key));
    assert!(s["unbonding_until"].is_null());
    let o = worker(&["register"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already registered"));
    assert!(worker(&["renew"]).status.success());

    assert!(worker(&["deregister"]).status.success());
    assert!(status(&worker)["unbonding_until"].as_u64().is_some());
    let o = worker(&["withdraw"]);
    assert!(!o.status.success(), "the stake is still unbonding");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("code 1126"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Only the governance key may change the measurement allowlist.
    let m = "ab".repeat(32);
    let gov = |k: &str| {
        run(&[
            "--rpc",
            &url,
            "governance",
            "measurements",
            "--key",
            chain.join(k).to_str().unwrap(),
            "--add",
            &m,
        ])
    };
    let o = gov("keys/dev0.json");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("code 1200"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = gov("keys/governance.json");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `--log-format json`: every log line of a running devnet is one JSON
/// object with a level and a message, for log collectors.
#[test]
fn logs_come_as_json_lines_when_asked() {
    let dir = tmp("jsonlog");
    let chain = dir.join("chain");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = dir.join("stderr.log");
    let _devnet = Proc(
        Command::new(BIN)
            .args(["--log-format", "json", "devnet", "--workers", "1", "--dir"])
            .arg(&chain)
            .args(["--rpc-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    wait_for("a block", 120, || height(&url).filter(|&h| h >= 1));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing was logged");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
}
