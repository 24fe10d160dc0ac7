//! End-to-end tests of several nodes: real `proctor` processes on loopback,
//! peered over libp2p.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn a_second_node_syncs_gossips_and_catches_up_after_a_crash() {
    let dir = tmp("p2p");
    let chain = dir.join("chain");
    let p2p_a = free_port().to_string();
    let (_a, url_a) = start_devnet_with(&chain, 1, &["--p2p-port", &p2p_a]);
    wait_for("some blocks on A", 120, || {
        height(&url_a).filter(|&h| h >= 3)
    });

    // B joins late, with no worker: it must sync from genesis and follow A.
    let b_dir = dir.join("b");
    let rpc_b = free_port();
    let url_b = format!("http://127.0.0.1:{rpc_b}");
    let p2p_b = free_port();
    let genesis = chain.join("genesis.json");
    let b_args = [
        "node",
        "--dir",
        b_dir.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
        "--rpc-addr",
        &format!("127.0.0.1:{rpc_b}"),
        "--p2p-listen",
        &format!("/ip4/127.0.0.1/tcp/{p2p_b}"),
        "--bootnode",
        &format!("/ip4/127.0.0.1/tcp/{p2p_a}"),
    ];
    let b = spawn(&b_args, &dir.join("b.log"));
    let h = converged(&url_a, &url_b, 3);
    assert_eq!(
        block_hash(&url_a, 1),
        block_hash(&url_b, 1),
        "synced from genesis"
    );
    // Its log said how far along the sync was, as plain lines.
    let log = std::fs::read_to_string(dir.join("b.log")).unwrap();
    let progress: Vec<(u64, u64)> = log
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("sync: height ")?;
            let (at, rest) = rest.split_once(" of ")?;
            let tip = rest.split_whitespace().next()?;
            Some((at.parse().ok()?, tip.parse().ok()?))
        })
        .collect();
    assert!(
        progress.iter().any(|&(at, tip)| at >= 3 && at <= tip),
        "no sync progress in the log:\n{log}"
    );

    // A transfer sent to B travels by gossip, is mined on A, and B sees the block.
    let to = address(&chain.join("keys/dev1.json"));
    let before = ok_json(&["--rpc", &url_b, "account", &to, "--json"])["balance"]
        .as_u64()
        .unwrap();
    let t = ok_json(&transfer(
        &url_b,
        &chain.join("keys/dev0.json"),
        &to,
        "4242",
        &["--wait", "--json"],
    ));
    assert_eq!(t["status"]["status"], "included");
    for url in [&url_a, &url_b] {
        let bal = wait_for("the balance on both nodes", 60, || {
            let v = ok_json(&["--rpc", url, "account", &to, "--json"])["balance"]
                .as_u64()
                .unwrap();
            (v == before + 4242).then_some(v)
        });
        assert_eq!(bal, before + 4242);
    }

    // B killed and restarted from its directory (same configuration) catches up.
    drop(b);
    let seen = height(&url_a).unwrap();
    let _b = spawn(
        &["node", "--dir", b_dir.to_str().unwrap()],
        &dir.join("b2.log"),
    );
    let after = converged(&url_a, &url_b, seen + 2);
    assert!(after > h);
}

#[test]
fn a_three_node_devnet_converges_with_mining_on_several_nodes() {
    let dir = tmp("three");
    let (devnet, nodes) = start_nodes(&dir, 3, 3);
    let urls = urls(&nodes);
    assert!(
        nodes
            .iter()
            .all(|n| n["pid"].as_u64().is_some() && n["dir"].as_str().is_some())
    );

    // All three converge, and blocks come from more than one enclave (workers sit on different nodes).
    let h = converged(&urls[0], &urls[1], 6);
    converged(&urls[0], &urls[2], h);
    let enclaves: std::collections::BTreeSet<String> = (1..=h)
        .map(|i| {
            ok_json(&[
                "--rpc",
                &urls[2],
                "chain",
                "block",
                &i.to_string(),
                "--json",
            ])["pouw"]["enclave"]
                .to_string()
        })
        .collect();
    assert!(
        enclaves.len() >= 2,
        "blocks mined through only {enclaves:?}"
    );

    // A node killed with SIGKILL is not restarted by the devnet; the rest go on,
    // and `proctor node --dir` brings it back in sync.
    let pid = nodes[2]["pid"].as_u64().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let before = height(&urls[0]).unwrap();
    wait_for("the others to keep mining", 120, || {
        height(&urls[0]).filter(|&x| x >= before + 2)
    });
    let _node2 = spawn(
        &["node", "--dir", nodes[2]["dir"].as_str().unwrap()],
        &dir.join("node2.log"),
    );
    converged(&urls[0], &urls[2], before + 2);

    // Node 1 is the devnet's child: killing the devnet must not leave it running.
    let pid1 = nodes[1]["pid"].as_u64().unwrap();
    drop(devnet);
    wait_for("the devnet's node to exit with it", 30, || {
        (!Path::new(&format!("/proc/{pid1}")).exists()).then_some(())
    });
}

#[test]
fn a_partition_grows_two_branches_and_healing_converges_without_double_spends() {
    let dir = tmp("partition");
    let keys = dir.join("chain/keys");
    let (_devnet, nodes) = start_nodes(&dir, 3, 3);
    let urls = urls(&nodes);
    let reward = ok_json(&["--rpc", &urls[0], "chain", "info", "--json"])["block_reward"]
        .as_u64()
        .unwrap();
    let h = converged(&urls[0], &urls[1], 3);
    converged(&urls[0], &urls[2], h);
    let ids: Vec<String> = urls
        .iter()
        .map(|u| net_info(u)["peer_id"].as_str().unwrap().to_string())
        .collect();
    // Nodes 1 and 2 found each other through node 0 (Kademlia).
    wait_for("nodes 1 and 2 to peer directly", 60, || {
        peer_ids(&urls[1]).contains(&ids[2]).then_some(())
    });
    let base = supply_less_rewards(&urls[0], reward);

    // Partition: node 0 (one worker) alone, nodes 1 and 2 (two workers) together.
    // Banning changes the node, not the chain: it needs the node's admin token.
    let token0 = format!("{}/admin.token", nodes[0]["dir"].as_str().unwrap());
    let o = run(&["--rpc", &urls[0], "net", "ban", &ids[1]]);
    assert!(
        !o.status.success(),
        "a ban without the admin token was obeyed"
    );
    let wrong = dir.join("wrong.token");
    std::fs::write(&wrong, "00").unwrap();
    let o = run(&[
        "--rpc",
        &urls[0],
        "net",
        "ban",
        &ids[1],
        "--admin-token",
        wrong.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "a ban with a wrong admin token was obeyed"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong admin token"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        peer_ids(&urls[0]).contains(&ids[1]),
        "the peer was banned anyway"
    );
    for id in &ids[1..] {
        let o = run(&[
            "--rpc",
            &urls[0],
            "net",
            "ban",
            id,
            "--reason",
            "partition",
            "--admin-token",
            &token0,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    wait_for("node 0 to be cut off", 30, || {
        (peer_ids(&urls[0]).is_empty()
            && !peer_ids(&urls[1]).contains(&ids[0])
            && !peer_ids(&urls[2]).contains(&ids[0]))
        .then_some(())
    });
    let fork = height(&urls[0]).unwrap().max(height(&urls[1]).unwrap());

    // On each side, a transfer of its own, and dev0 spending the same nonce twice.
    let fresh = |name: &str| {
        let f = dir.join(format!("{name}.json"));
        ok_json(&["keys", "new", "--out", f.to_str().unwrap(), "--json"])["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (x, y, z) = (fresh("x"), fresh("y"), fresh("z"));
    let sends = [
        (&urls[0], "dev1", &x, "1111"),
        (&urls[1], "dev2", &x, "2222"),
        (&urls[0], "dev0", &y, "5000"),
        (&urls[1], "dev0", &z, "7000"),
    ];
    // All at once: the partition must heal before either branch is deeper than
    // the finality depth (6 blocks), or the split would be final.
    let procs: Vec<_> = sends
        .iter()
        .map(|(url, from, to, amount)| {
            let key = keys.join(format!("{from}.json"));
            Command::new(BIN)
                .args(transfer(url, &key, to, amount, &["--wait", "--json"]))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = procs
        .into_iter()
        .map(|p| p.wait_with_output().unwrap())
        .collect();
    for (o, s) in outputs.iter().zip(&sends) {
        assert!(
            o.status.success(),
            "{s:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Both branches grew past the fork point, apart.
    let (h0, h1) = wait_for("both sides to mine", 60, || {
        let (h0, h1) = (height(&urls[0])?, height(&urls[1])?);
        (h0 > fork && h1 > fork).then_some((h0, h1))
    });
    let (tip0, tip1) = (
        block_hash(&urls[0], h0).unwrap(),
        block_hash(&urls[1], h1).unwrap(),
    );
    assert_ne!(
        block_hash(&urls[0], fork + 1),
        block_hash(&urls[1], fork + 1),
        "two branches"
    );
    assert_eq!(balance(&urls[0], &y), 5000);
    assert_eq!(balance(&urls[1], &z), 7000);

    // Heal: all three converge on the heavier branch.
    for id in &ids[1..] {
        let o = run(&[
            "--rpc",
            &urls[0],
            "net",
            "unban",
            id,
            "--admin-token",
            &token0,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let top = converged(&urls[0], &urls[1], h0.max(h1) + 1);
    converged(&urls[0], &urls[2], top);
    let lost0 = block_hash(&urls[0], h0) != Some(tip0);
    let lost1 = block_hash(&urls[1], h1) != Some(tip1);
    assert!(lost0 ^ lost1, "exactly one side's branch was abandoned");

    // The losing side's own transfer is mined again: x gets both.
    for url in &urls {
        wait_for("both transfers to x on every node", 120, || {
            (balance(url, &x) == 3333).then_some(())
        });
    }
    // The double spend: exactly one of the two survives, everywhere.
    for url in &urls {
        let (by, bz) = (balance(url, &y), balance(url, &z));
        assert!(
            (by, bz) == (5000, 0) || (by, bz) == (0, 7000),
            "double spend on {url}: y {by}, z {bz}"
        );
        assert_eq!((by, bz), (balance(&urls[0], &y), balance(&urls[0], &z)));
        assert_eq!(supply_less_rewards(url, reward), base, "supply on {url}");
    }
}

/// `proctor devnet --nodes 3 --workers 3` as a newcomer types it: no port
/// flags. The devnet finds free RPC and p2p ports, lists them in
/// devnet.json, and its nodes peer and agree. (Node 0's RPC is 8645 by
/// default; if something here holds 8645, `--rpc-port 0` asks for any.)
#[test]
fn a_devnet_of_three_finds_its_own_ports() {
    let dir = tmp("own-ports");
    let chain = dir.join("chain");
    let mut args = vec![
        "devnet",
        "--dir",
        chain.to_str().unwrap(),
        "--nodes",
        "3",
        "--workers",
        "3",
    ];
    if std::net::TcpListener::bind(("127.0.0.1", 8645)).is_err() {
        args.extend(["--rpc-port", "0"]);
    }
    let _devnet = spawn(&args, &dir.join("devnet.log"));
    let list = devnet_nodes(&chain, 3);
    let rpc: std::collections::BTreeSet<&str> =
        list.iter().filter_map(|n| n["rpc"].as_str()).collect();
    let p2p: std::collections::BTreeSet<&str> =
        list.iter().filter_map(|n| n["p2p"].as_str()).collect();
    assert_eq!((rpc.len(), p2p.len()), (3, 3), "{list:?}");
    let urls = urls(&list);
    let h = converged(&urls[0], &urls[1], 3);
    converged(&urls[0], &urls[2], h);
    // Each worker serves its own metrics at the address devnet.json lists,
    // labelled with its enclave, and counts the slices it runs.
    let workers = devnet_workers(&chain, 3);
    let mut addrs = std::collections::BTreeSet::new();
    for w in &workers {
        let url = w["metrics"].as_str().unwrap();
        addrs.insert(url.to_string());
        let identity = w["identity"].as_str().unwrap();
        let text = wait_for("worker metrics", 60, || {
            let text = http_get(url)?;
            let slices: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("proctor_worker_slices_total "))?
                .parse()
                .ok()?;
            (slices > 0).then_some(text)
        });
        assert!(
            text.contains(&format!("proctor_worker_info{{identity=\"{identity}\"}} 1")),
            "{text}"
        );
    }
    assert_eq!(addrs.len(), 3, "{workers:?}");
}
