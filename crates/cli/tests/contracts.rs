//! Confidential contracts end to end on a devnet: the example contracts of
//! `examples/contracts/` deployed from the CLI, their key published by the
//! devnet's gatekeeper, commands applied by the executor's enclave, replies
//! opened by the caller, and the plaintext nowhere on the devnet's disk.

mod common;
use common::*;

const MARKER: &str = "zqxcontractmarker";

fn example(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../examples/contracts/{name}.wasm"))
        .to_str()
        .unwrap()
        .to_string()
}

/// `proctor contract call ID --msg MSG --key KEY --wait --json`.
fn call(url: &str, id: &str, key: &str, msg: &str) -> std::process::Output {
    run(&[
        "--rpc", url, "contract", "call", id, "--key", key, "--msg", msg, "--wait", "--json",
    ])
}

/// `proctor contract query ID --msg MSG --key KEY --json`.
fn query(url: &str, id: &str, key: &str, msg: &str) -> std::process::Output {
    run(&[
        "--rpc", url, "contract", "query", id, "--key", key, "--msg", msg, "--json",
    ])
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn contracts_deploy_apply_commands_and_keep_their_state_confidential() {
    let dir = tmp("contracts");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet_with(&chain, 1, &["--block-ms", "500"]);
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 2));
    let alice = chain.join("keys/dev0.json");
    let bob = chain.join("keys/dev1.json");
    let (alice, bob) = (alice.to_str().unwrap(), bob.to_str().unwrap());

    // The worker becomes an executor once its market offer is on chain.
    let kv = example("kv");
    let deployed = wait_for("an executor", 120, || {
        let o = run(&[
            "--rpc", &url, "contract", "deploy", &kv, "--key", alice, "--json",
        ]);
        o.status.success().then(|| json(&o))
    });
    let id = deployed["id"].as_u64().unwrap().to_string();

    let secret = format!("set diary {MARKER}");
    let o = call(&url, &id, alice, &secret);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(
        (v["code"].as_i64(), v["reply"].as_str()),
        (Some(0), Some("ok")),
        "{v}"
    );
    assert!(v["instructions"].as_u64().unwrap() > 0);
    assert!(v["paid"].as_u64().unwrap() > 0);
    // Bob may not overwrite Alice's key: refused, exit non-zero, reply kept.
    let o = call(&url, &id, bob, "set diary mine");
    assert!(!o.status.success());
    let v = json(&o);
    assert_eq!(
        (v["code"].as_i64(), v["reply"].as_str()),
        (Some(3), Some("not the owner")),
        "{v}"
    );
    let info = ok_json(&["--rpc", &url, "contract", "info", &id, "--json"]);
    assert_eq!(
        (info["commands"].as_u64(), info["applied"].as_u64()),
        (Some(2), Some(2)),
        "{info}"
    );
    let listed = ok_json(&["--rpc", &url, "contract", "list", "--json"]);
    assert_eq!(listed[0]["id"].as_u64().unwrap().to_string(), id);

    // Queries go to the executor's port, not the chain; the CLI prints an
    // answer only once the enclave's statement checks out.
    let o = query(&url, &id, alice, "get diary");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(v["reply"].as_str(), Some(MARKER), "{v}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["enclave"], info["executor"]);
    assert_eq!(v["state_hash"], info["state_hash"]);
    assert!(v["height"].as_u64().unwrap() > 0 && v["block_hash"].is_string());
    let o = query(&url, &id, bob, "get diary");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refused") && err.contains("not the owner"),
        "{err}"
    );
    assert!(!contains(&o.stdout, MARKER));

    // Egress: a contract forwards a message to the kv store, which applies
    // it as a command from the forwarder's address (sealed to the kv's key
    // inside the forwarder's enclave, paid from the caller's escrow).
    let forward = example("forward");
    let f = json(&run(&[
        "--rpc", &url, "contract", "deploy", &forward, "--key", alice, "--json",
    ]));
    let fid = f["id"].as_u64().unwrap().to_string();
    let o = call(
        &url,
        &fid,
        alice,
        &format!("to {id} set relayed {MARKER}-egress"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the forwarded command applied", 120, || {
        let v = ok_json(&["--rpc", &url, "contract", "info", &id, "--json"]);
        (v["applied"] == 3).then_some(())
    });
    let relayed = rpc(
        &url,
        "proctor_contractCommand",
        serde_json::json!([id.parse::<u64>().unwrap(), 3]),
    );
    assert_eq!(relayed["receipt"]["code"], 0, "{relayed}");
    assert_ne!(
        relayed["sender"], info["owner"],
        "sent by the forwarder, not alice"
    );
    let v = json(&query(&url, &id, alice, "owner relayed"));
    assert_eq!(v["reply"], "taken");

    // The auction: init, sealed bids, the close publishes winner and price.
    let auction = example("auction");
    // Far enough for the deploy, its init and two bids (a few blocks each).
    let close = height(&url).unwrap() + 40;
    let o = run(&[
        "--rpc",
        &url,
        "contract",
        "deploy",
        &auction,
        "--key",
        alice,
        "--init",
        &format!("close {close}"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!(v["init"]["code"].as_i64(), Some(0), "{v}");
    let aid = v["id"].as_u64().unwrap().to_string();
    for (who, bid) in [(alice, "bid 70"), (bob, "bid 90")] {
        let o = call(&url, &aid, who, bid);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    wait_for("the close height", 120, || {
        height(&url).filter(|&h| h >= close)
    });
    let o = call(&url, &aid, alice, "close");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    let reply = v["reply"].as_str().unwrap();
    assert!(
        reply.starts_with("winner ") && reply.ends_with(" price 70"),
        "{v}"
    );

    // The marker was in a command and is in the state: it is nowhere on disk.
    let scanned = assert_nowhere_on_disk(&chain, MARKER);
    assert!(scanned > 10_000, "scanned only {scanned} bytes");
}

/// `proctor bench contracts` runs the executor's path and reports each
/// figure (a small run: the full one takes about a minute).
#[test]
fn the_contracts_bench_reports_its_figures() {
    let v = ok_json(&[
        "bench",
        "contracts",
        "--commands",
        "50",
        "--sizes",
        "1",
        "--json",
    ]);
    assert_eq!(v["commands"], 50);
    assert!(v["commands_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["queries_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    let s = &v["states"][0];
    assert_eq!(s["mb"], 1);
    assert!(s["checkpoint_bytes"].as_u64().unwrap() >= 1 << 20, "{v}");
    assert!(s["recovery_ms"].as_f64().unwrap() > 0.0, "{v}");
}

/// The executor's worker is killed (SIGKILL) after some commands, on a
/// two-node devnet: the chain gives the contract to another executor, which
/// recovers from the latest checkpoint plus the commands after it, applies
/// the next command and answers the same query identically.
#[test]
fn a_killed_executor_is_replaced_and_its_successor_recovers_the_state() {
    let dir = tmp("contracts-recovery");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet_with(&chain, 1, &["--nodes", "2", "--block-ms", "500"]);
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 2));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chain.join("devnet.json")).unwrap()).unwrap();
    let node1 = file["nodes"][1]["rpc"].as_str().unwrap().to_string();
    let w0 = file["workers"][0]["identity"].as_str().unwrap().to_string();
    // A second worker, in its own process, on the second node (its enclave
    // slot is registered in the genesis).
    let w1_dir = chain.join("workers/w1");
    let mut w1 = spawn(
        &[
            "--rpc",
            &node1,
            "worker",
            "--key",
            chain.join("keys/worker1.json").to_str().unwrap(),
            "--dir",
            w1_dir.to_str().unwrap(),
            "--sim-root",
            chain.join("sim-attestation-root.key").to_str().unwrap(),
            "--query",
            "127.0.0.1:0",
        ],
        &dir.join("w1.log"),
    );
    let alice = chain.join("keys/dev0.json");
    let alice = alice.to_str().unwrap();
    // Deploy until a contract lands on the second worker's enclave.
    let kv = example("kv");
    let (id, executor) = wait_for("a contract executed by the second worker", 240, || {
        let o = run(&[
            "--rpc", &url, "contract", "deploy", &kv, "--key", alice, "--json",
        ]);
        let v = o.status.success().then(|| json(&o))?;
        let executor = v["executor"].as_str()?.to_string();
        (executor != w0).then(|| (v["id"].as_u64().unwrap().to_string(), executor))
    });
    // More commands than the checkpoint interval (16): a checkpoint. Large
    // values (kv's largest) make the state larger than a transaction
    // carries, so the checkpoint travels as blobs (uploaded to the second
    // node, fetched by the successor through the first).
    let big = "b".repeat(4_000);
    for i in 0..18 {
        let msg = match i {
            2..15 => format!("set k{i} {big}"),
            _ => format!("set k{i} v{i}"),
        };
        let o = run(&[
            "--rpc", &url, "contract", "call", &id, "--key", alice, "--msg", &msg, "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    wait_for("the commands applied and a checkpoint", 240, || {
        let v = ok_json(&["--rpc", &url, "contract", "info", &id, "--json"]);
        (v["applied"] == 18 && v["checkpoint_applied"].as_u64() >= Some(16)).then_some(())
    });
    // Two more after the checkpoint: the successor replays them.
    for msg in ["set k18 v18", "set k19 v19"] {
        let o = call(&url, &id, alice, msg);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let info = ok_json(&["--rpc", &url, "contract", "info", &id, "--json"]);
    assert!(info["checkpoint_applied"].as_u64().unwrap() < 20, "{info}");
    let id_n: u64 = id.parse().unwrap();
    let cp = rpc(
        &url,
        "proctor_contractCheckpoint",
        serde_json::json!([id_n]),
    );
    assert_eq!(cp["ciphertext"], "", "{cp}");
    assert!(cp["parts"]["len"].as_u64().unwrap() > 52_000, "{cp}");
    let before = json(&query(&url, &id, alice, "get k17"));
    assert_eq!(before["reply"], "v17", "{before}");
    assert_eq!(before["enclave"].as_str(), Some(executor.as_str()));

    w1.0.kill().unwrap(); // SIGKILL
    w1.0.wait().unwrap();
    let o = call(&url, &id, alice, "set after kill");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = ok_json(&["--rpc", &url, "contract", "info", &id, "--json"]);
    assert_eq!(after["executor"].as_str(), Some(w0.as_str()), "{after}");
    assert_eq!(after["applied"], 21);
    let again = json(&query(&url, &id, alice, "get k17"));
    assert_eq!(json(&query(&url, &id, alice, "get k19"))["reply"], "v19");
    assert_eq!(again["reply"], before["reply"]);
    assert_eq!(again["enclave"].as_str(), Some(w0.as_str()));
    assert_ne!(
        again["state_hash"], info["state_hash"],
        "one more command since"
    );
    let last = json(&query(&url, &id, alice, "get after"));
    assert_eq!(last["reply"], "kill");
    let recovered = json(&query(&url, &id, alice, "get k7"));
    assert_eq!(recovered["reply"].as_str(), Some(big.as_str()));
}

/// `--gatekeepers 2`: the second worker's enclave is elected at genesis,
/// asks for the root key with its attestation, receives it from the first
/// gatekeeper's enclave and confirms on chain; contracts go on working.
#[test]
fn an_elected_gatekeeper_receives_the_root_key_and_the_keys_rotate_at_the_next_era() {
    let dir = tmp("contracts-gatekeepers");
    let chain = dir.join("chain");
    let (_devnet, url) = start_devnet_with(
        &chain,
        2,
        &[
            "--gatekeepers",
            "2",
            "--block-ms",
            "500",
            "--era-blocks",
            "50",
        ],
    );
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chain.join("devnet.json")).unwrap()).unwrap();
    let w1 = file["workers"][1]["identity"].clone();
    let set = wait_for("the second gatekeeper ready", 180, || {
        let v = rpc(&url, "proctor_gatekeepers", serde_json::json!([]));
        (v["members"].as_array()?.len() == 2).then_some(v)
    });
    assert_eq!(set["members"][1], w1, "{set}");
    assert_eq!(set["candidates"], serde_json::json!([]));
    // Kept sealed by its enclave, for a restart.
    let sealed = chain.join("workers/w1/root-key.sealed");
    wait_for("the sealed root key on disk", 30, || {
        sealed.exists().then_some(())
    });
    // Contracts still work end to end with two gatekeepers.
    let alice = chain.join("keys/dev0.json");
    let alice = alice.to_str().unwrap();
    let kv = example("kv");
    let v = json(&run(&[
        "--rpc", &url, "contract", "deploy", &kv, "--key", alice, "--json",
    ]));
    let id = v["id"].as_u64().unwrap().to_string();
    let o = call(&url, &id, alice, "set a b");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Era 1: the root key rotates between the two gatekeepers' enclaves,
    // the contract gets its era-1 key, and its executor re-checkpoints
    // under it.
    let info = |url: &str| {
        rpc(
            url,
            "proctor_contract",
            serde_json::json!([id.parse::<u64>().unwrap()]),
        )
    };
    let set = wait_for("the rotation to era 1 ready", 240, || {
        let v = rpc(&url, "proctor_gatekeepers", serde_json::json!([]));
        (v["era"] == 1 && v["rotation"].is_null()).then_some(v)
    });
    assert_eq!(set["members"].as_array().unwrap().len(), 2, "{set}");
    let before = info(&url)["key"].clone();
    wait_for("the contract's era-1 key", 120, || {
        (info(&url)["era"] == 1).then_some(())
    });
    assert_ne!(info(&url)["key"], before, "a new command key");
    // Commands sealed to the new key apply over the state of era 0.
    let o = call(&url, &id, alice, "set c d");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (q, want) in [("get a", "b"), ("get c", "d")] {
        let v = json(&query(&url, &id, alice, q));
        assert_eq!(
            (v["reply"].as_str(), v["verified"].as_bool()),
            (Some(want), Some(true)),
            "{v}"
        );
    }
    let cp = wait_for("a checkpoint under the era-1 key", 120, || {
        let cp = rpc(
            &url,
            "proctor_contractCheckpoint",
            serde_json::json!([id.parse::<u64>().unwrap()]),
        );
        (cp["era"] == 1).then_some(cp)
    });
    assert!(cp["applied"].as_u64().unwrap() >= 1, "{cp}");

    // Governance retires the first gatekeeper and chooses forward secrecy:
    // at era 2 the second alone rotates, and the first destroys its keys.
    let w0 = file["workers"][0]["identity"].as_str().unwrap().to_string();
    let gov = chain.join("keys/governance.json");
    let gone = chain.join("workers/w0/root-key.sealed");
    assert!(gone.exists(), "the first gatekeeper keeps its keys sealed");
    ok_json(&[
        "--rpc",
        &url,
        "governance",
        "gatekeepers",
        "--key",
        gov.to_str().unwrap(),
        "--retire",
        &w0,
        "--forward-secrecy",
        "on",
        "--json",
    ]);
    let set = wait_for("the rotation to era 2 ready", 240, || {
        let v = rpc(&url, "proctor_gatekeepers", serde_json::json!([]));
        (v["era"] == 2 && v["rotation"].is_null()).then_some(v)
    });
    assert_eq!(set["members"], serde_json::json!([w1]), "{set}");
    assert_eq!(set["forward_secrecy"], true);
    wait_for("the retired gatekeeper's sealed keys removed", 60, || {
        (!gone.exists()).then_some(())
    });
    wait_for("the contract's era-2 key", 120, || {
        (info(&url)["era"] == 2).then_some(())
    });
    let o = call(&url, &id, alice, "set e f");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&query(&url, &id, alice, "get a"));
    assert_eq!(v["reply"], "b", "{v}");
}
