//! The compute market end to end on a devnet: `proctor job run` uploads,
//! submits, releases the key, follows the job and opens its output; the
//! chain pays exactly the shares it should; nothing of the plaintext reaches
//! the node, the workers, their logs, their disks or RPC.

mod common;

use common::*;
use proctor_market::settle::{self, FeeSplit};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MARKER: &str = "zqxsecretmarker";
const TASK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/tasks/wordfreq.wasm"
);

/// The requester's files live apart from the devnet directory.
fn client_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let c = dir.join("client");
    std::fs::create_dir_all(&c).unwrap();
    let input = c.join("input.txt");
    std::fs::write(&input, format!("a {MARKER} b\nthe {MARKER} and the rest\n")).unwrap();
    (c.clone(), input, c.join("out.txt"))
}

/// What `proctor task run` gives locally: the output and the instruction count.
fn local_run(input: &Path, out_dir: &Path) -> (Vec<u8>, u64) {
    let out = out_dir.join("local.txt");
    let r = ok_json(&[
        "task",
        "run",
        TASK,
        "--input",
        input.to_str().unwrap(),
        "--arg",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    (
        std::fs::read(&out).unwrap(),
        r["instructions"].as_u64().unwrap(),
    )
}

/// `proctor job run` of the word-frequency task on `input`, paid by `key`.
fn job_run_args<'a>(url: &'a str, key: &'a Path, input: &'a Path) -> Vec<&'a str> {
    vec![
        "--rpc",
        url,
        "job",
        "run",
        TASK,
        "--input",
        input.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--arg",
        "1",
        "--timeout",
        "240",
    ]
}

fn job_run(url: &str, key: &Path, input: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = job_run_args(url, key, input);
    args.extend(["--out", out.to_str().unwrap(), "--watch"]);
    args.extend_from_slice(extra);
    let o = run(&args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "job run failed: {err}");
    // The progress names the states it went through.
    for s in ["submitted", "assigned", "settled"] {
        assert!(err.contains(s), "no {s:?} in the progress: {err}");
    }
    let id = ok_json(&[
        "--rpc",
        url,
        "job",
        "list",
        "--key",
        key.to_str().unwrap(),
        "--json",
    ])[0]["id"]
        .as_u64()
        .unwrap();
    ok_json(&["--rpc", url, "job", "status", &id.to_string(), "--json"])
}

/// Every event of every transaction in blocks `from..=to`.
fn events(url: &str, from: u64, to: u64) -> Vec<Value> {
    let mut all = Vec::new();
    for h in from..=to {
        let b = ok_json(&["--rpc", url, "chain", "block", &h.to_string(), "--json"]);
        for tx in b["transactions"].as_array().unwrap() {
            let s = ok_json(&["--rpc", url, "tx", tx.as_str().unwrap(), "--json"]);
            all.extend(s["events"].as_array().cloned().unwrap_or_default());
        }
    }
    all
}

#[test]
fn a_confidential_job_runs_end_to_end_and_pays_exact_shares() {
    let dir = tmp("market");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 1);
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 2));
    let (client, input, out) = client_files(&dir);
    let (expected, instructions) = local_run(&input, &client);
    let key = chain.join("keys/dev0.json");
    let me = address(&key);
    let info = ok_json(&["--rpc", &url, "chain", "info", "--json"]);
    let min_fee = info["min_fee"].as_u64().unwrap() as u128;
    let fees: FeeSplit = serde_json::from_value(info["market"]["fees"].clone()).unwrap();
    let treasury = proctor_state::jobs::treasury().to_string();
    let (before, treasury_before) = (balance(&url, &me) as u128, balance(&url, &treasury) as u128);
    let start = height(&url).unwrap();

    let j = job_run(&url, &key, &input, &out, &["--retention", "10"]);
    // The job's blobs as the node serves them: ciphertext only.
    for h in [&j["spec"]["input"], &j["output"]] {
        let served = proctor_rpc_blob(&url, h.as_str().unwrap());
        assert!(!contains(&served, MARKER), "blob {h} holds plaintext");
    }

    // The decrypted output equals a local run, instruction for instruction.
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    assert_eq!(j["state"], "settled");
    assert_eq!(j["instructions"].as_u64().unwrap(), instructions);
    let blocks = j["ended_at"].as_u64().unwrap() - j["submitted_at"].as_u64().unwrap();
    eprintln!("latency: job settled {blocks} blocks after the block that included it");
    // Exact money: the devnet's worker charges 1 per instruction.
    let escrow = j["escrow"].as_u64().unwrap() as u128;
    let s = settle::settle(escrow, &[(instructions, 1)], 10, &fees).unwrap();
    assert_eq!(j["paid"].as_u64().unwrap() as u128, s.workers[0].0);
    assert_eq!(j["refund"].as_u64().unwrap() as u128, s.refund);
    // The requester paid the escrow less the refund, and two fees (submit, keys).
    assert_eq!(
        before - balance(&url, &me) as u128,
        escrow - s.refund + 2 * min_fee
    );
    // The worker's pay and fee share, and the treasury's (plus the application
    // share: nobody registered the module).
    let ev = events(&url, start, height(&url).unwrap());
    let paid: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "job_paid").collect();
    assert_eq!(paid.len(), 1, "{ev:?}");
    assert_eq!(paid[0]["pay"].as_u64().unwrap() as u128, s.workers[0].0);
    assert_eq!(
        paid[0]["fee_share"].as_u64().unwrap() as u128,
        s.workers[0].1
    );
    assert_eq!(
        balance(&url, &treasury) as u128 - treasury_before,
        s.treasury + s.app_fee
    );

    // Confidentiality: the marker is nowhere in the devnet directory (node,
    // workers, their logs and databases), nor in the devnet's own log, nor in
    // what RPC serves about the job.
    let scanned = assert_nowhere_on_disk(&chain, MARKER);
    assert!(
        scanned > 100_000,
        "the scan covered the databases ({scanned} bytes)"
    );
    assert!(!contains(j.to_string().as_bytes(), MARKER));
    let human = run(&["--rpc", &url, "job", "status", &j["id"].to_string()]).stdout;
    assert!(!contains(&human, MARKER));
    // The requester's own decryption is where it appears.
    assert!(contains(&std::fs::read(&out).unwrap(), MARKER));

    // Short-lived storage: ten blocks after the job's end (--retention 10),
    // its input and output are gone from the node.
    let ended = j["ended_at"].as_u64().unwrap();
    wait_for("the retention to pass", 120, || {
        height(&url).filter(|&h| h > ended + 10)
    });
    for h in [&j["spec"]["input"], &j["output"]] {
        let o = run(&[
            "--rpc",
            &url,
            "job",
            "result",
            &j["id"].to_string(),
            "--key",
            key.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        let rpc_blob = blob_exists(&url, h.as_str().unwrap());
        assert!(!rpc_blob, "blob {h} outlived its retention");
    }
}

fn blob_exists(url: &str, hash: &str) -> bool {
    use proctor_rpc::ApiClient;
    with_client(url, async |c| c.blob(hash.parse().unwrap()).await.is_ok())
}

/// Runs `f` with a JSON-RPC client of `url` on a runtime of its own.
fn with_client<T>(
    url: &str,
    f: impl AsyncFnOnce(proctor_rpc::jsonrpsee::http_client::HttpClient) -> T,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { f(proctor_rpc::http_client(url).unwrap()).await })
}

/// A blob's bytes as the node serves them.
fn proctor_rpc_blob(url: &str, hash: &str) -> Vec<u8> {
    use proctor_rpc::ApiClient;
    with_client(url, async |c| {
        hex::decode(c.blob(hash.parse().unwrap()).await.unwrap()).unwrap()
    })
}

#[test]
fn three_replicas_with_one_corrupted_enclave_the_majority_wins() {
    let dir = tmp("replicas");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet_with(&chain, 3, &["--corrupt-worker", "1"]);
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 2));
    let (client, input, out) = client_files(&dir);
    let (expected, instructions) = local_run(&input, &client);
    let genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(chain.join("genesis.json")).unwrap())
            .unwrap();
    let bad = genesis["enclaves"][1]["identity"]
        .as_str()
        .unwrap()
        .to_string();
    let key = chain.join("keys/dev0.json");

    let j = job_run(&url, &key, &input, &out, &["--replicas", "3"]);

    assert_eq!(std::fs::read(&out).unwrap(), expected, "the right output");
    let failed: Vec<String> = j["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        failed,
        vec![bad.clone()],
        "the corrupted worker was outvoted"
    );
    // ... and slashed: its stake is below what it locked at genesis.
    let stake = |id: &str| {
        use proctor_rpc::ApiClient;
        with_client(&url, async |c| {
            c.enclave(id.parse().unwrap())
                .await
                .unwrap()
                .unwrap()
                .stake
                .0
        })
    };
    let good = genesis["enclaves"][0]["identity"].as_str().unwrap();
    assert!(stake(&bad) < stake(good), "the outvoted worker lost stake");
    assert_eq!(
        j["paid"].as_u64().unwrap(),
        2 * instructions,
        "two workers paid at 1 per instruction"
    );
}

/// Sends `call` signed by `key` and waits until it is in a block.
fn send(url: &str, key: &Path, call: proctor_state::Call) {
    use proctor_rpc::ApiClient;
    let k = proctor_cli::keys::read(key).unwrap();
    with_client(url, async |c| {
        let info = c.chain_info().await.unwrap();
        let acc = c.account(k.public().address()).await.unwrap();
        let tx = proctor_state::Transaction {
            chain: info.genesis_hash,
            signer: k.public(),
            nonce: acc.next_nonce,
            fee: info.min_fee,
            call,
        }
        .sign(&k);
        let h = c.send_transaction(proctor_rpc::to_hex(&tx)).await.unwrap();
        for _ in 0..600 {
            if let proctor_rpc::TxStatus::Included { .. } = c.transaction(h).await.unwrap() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("transaction {h} not included");
    })
}

#[test]
fn a_requester_who_never_releases_the_key_is_refunded_minus_the_fee() {
    let dir = tmp("nokey");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 1);
    let key = chain.join("keys/dev0.json");
    let me = address(&key);
    let info = ok_json(&["--rpc", &url, "chain", "info", "--json"]);
    let fees: FeeSplit = serde_json::from_value(info["market"]["fees"].clone()).unwrap();
    let expiry_fee = info["market"]["expiry_fee"].as_u64().unwrap();
    let min_fee = info["min_fee"].as_u64().unwrap();
    // The worker must have its offer on chain, or the job would wait unassigned.
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 3));
    let spec = proctor_state::jobs::JobSpec {
        module: proctor_primitives::Hash::of(b"never fetched"),
        input: proctor_primitives::Hash::of(b"never fetched either"),
        memory_pages: 16,
        fuel: 1_000,
        max_price: proctor_primitives::Amount(10),
        replicas: 1,
        deadline_blocks: 3,
        retention_blocks: 1,
        output_key: [1; 32],
        args: vec![],
    };
    let escrow = settle::escrow(1_000, 10, 1, &fees).unwrap();
    let before = balance(&url, &me);
    send(
        &url,
        &key,
        proctor_state::Call::Market(proctor_state::market::Call::SubmitJob {
            spec,
            escrow: proctor_primitives::Amount(escrow),
        }),
    );
    let j = wait_for("the job to expire", 120, || {
        let j = ok_json(&["--rpc", &url, "job", "status", "0", "--json"]);
        (j["state"] == "expired").then_some(j)
    });
    assert!(
        !j["assignments"].as_array().unwrap().is_empty(),
        "it was assigned, never keyed"
    );
    assert_eq!(
        j["refund"].as_u64().unwrap() as u128,
        escrow - expiry_fee as u128
    );
    assert_eq!(before - balance(&url, &me), expiry_fee + min_fee);
}

#[test]
fn a_worker_killed_mid_job_is_replaced_and_the_job_completes() {
    let dir = tmp("killed");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 0);
    // Two workers as their own processes, so one can be killed.
    let worker = |i: usize, log: &str| {
        spawn(
            &[
                "--rpc",
                &url,
                "worker",
                "--key",
                chain.join(format!("keys/worker{i}.json")).to_str().unwrap(),
                "--dir",
                chain.join(format!("workers/w{i}")).to_str().unwrap(),
                "--sim-root",
                chain.join("sim-attestation-root.key").to_str().unwrap(),
                // Fast enough on paper for the job's 60G fuel in 15 blocks
                // (the run itself needs far less).
                "--speed",
                "10000000000",
            ],
            &dir.join(log),
        )
    };
    let mut workers = [Some(worker(0, "w0.log")), Some(worker(1, "w1.log"))];
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 3));
    let genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(chain.join("genesis.json")).unwrap())
            .unwrap();
    let ids: Vec<String> = (0..2)
        .map(|i| {
            genesis["enclaves"][i]["identity"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Both offers on chain, so the job can move to the survivor.
    let nbody = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/tasks/nbody.wasm"
    );
    let (client, _, out) = client_files(&dir);
    let empty = client.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let key = chain.join("keys/dev0.json");
    let requester = spawn(
        &[
            "--rpc",
            &url,
            "job",
            "run",
            nbody,
            "--input",
            empty.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--arg",
            "30000000",
            "--fuel",
            "60000000000",
            "--deadline",
            "15",
            "--watch",
            "--timeout",
            "240",
        ],
        &dir.join("requester.log"),
    );
    // Kill whichever worker the job lands on, as soon as it is placed.
    let first = wait_for("the job's first assignment", 120, || {
        let o = run(&["--rpc", &url, "job", "status", "0", "--json"]);
        let j: Value = serde_json::from_slice(&o.stdout).ok()?;
        j["assignments"][0]["worker"].as_str().map(str::to_string)
    });
    let victim = ids.iter().position(|i| *i == first).unwrap();
    workers[victim] = None;
    let mut requester = requester;
    let status = wait_for("the requester to finish", 240, || {
        requester.0.try_wait().unwrap()
    });
    let log = std::fs::read_to_string(dir.join("requester.log")).unwrap();
    assert!(status.success(), "job run failed: {log}");
    let j = ok_json(&["--rpc", &url, "job", "status", "0", "--json"]);
    assert_eq!(j["state"], "settled");
    assert_eq!(
        j["failed"][0].as_str().unwrap(),
        first,
        "the killed worker failed the job"
    );
    assert_eq!(j["reassignments"], 1);
    assert_ne!(j["assignments"][0]["worker"].as_str().unwrap(), first);
    // The output is nbody's, as a local run gives it.
    let local = run(&["task", "run", nbody, "--arg", "30000000"]).stdout;
    assert_eq!(std::fs::read(&out).unwrap(), local);
}

/// A large input goes up in chunks, and with standard error piped the
/// progress comes as plain lines (no bar, no carriage returns).
#[test]
fn a_large_input_uploads_with_progress_lines_when_piped() {
    let dir = tmp("progress");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet(&chain, 1);
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 3));
    let key = chain.join("keys/dev0.json");
    let input = dir.join("big.txt");
    let words = "the quick brown fox jumps over the lazy dog\n".repeat(60_000);
    assert!(words.len() > 2 * 1024 * 1024);
    std::fs::write(&input, &words).unwrap();
    let o = run(&job_run_args(&url, &key, &input));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("uploading the encrypted input: "))
        .collect();
    assert!(lines.len() >= 3, "one line per chunk: {err}");
    assert!(lines.last().unwrap().ends_with("(100%)"), "{err}");
    assert!(!err.contains('\r'), "no bar when piped");
}
