//! The long chaos test (ignored by default; see the README for the command):
//! three nodes and three workers as separate processes; every round SIGKILLs
//! one of them at random and restarts it after a random pause. Throughout,
//! no block deeper than the finality depth may ever change on any node; at
//! the end all nodes converge and total supply equals the genesis supply plus
//! the block rewards.
//!
//! `PROCTOR_CHAOS_ROUNDS` (default 100) and `PROCTOR_CHAOS_SEED` (default:
//! from the clock, printed) control the run.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct Cluster {
    chain: PathBuf,
    logs: PathBuf,
    node_dirs: Vec<String>,
    urls: Vec<String>,
    nodes: Vec<Option<Proc>>,
    workers: Vec<Option<Proc>>,
    starts: usize,
}

impl Cluster {
    fn start_node(&mut self, i: usize) {
        self.starts += 1;
        let log = self.logs.join(format!("node{i}-{}.log", self.starts));
        self.nodes[i] = Some(spawn(&["node", "--dir", &self.node_dirs[i]], &log));
        let url = self.urls[i].clone();
        wait_for("a restarted node's RPC", 60, || head(&url));
    }

    fn start_worker(&mut self, i: usize) {
        self.starts += 1;
        let log = self.logs.join(format!("worker{i}-{}.log", self.starts));
        let key = self.chain.join(format!("keys/worker{i}.json"));
        let dir = self.chain.join(format!("workers/w{i}"));
        let root = self.chain.join("sim-attestation-root.key");
        self.workers[i] = Some(spawn(
            &[
                "--rpc",
                &self.urls[i],
                "worker",
                "--key",
                key.to_str().unwrap(),
                "--dir",
                dir.to_str().unwrap(),
                "--sim-root",
                root.to_str().unwrap(),
            ],
            &log,
        ));
    }
}

/// Canonical hashes at every height at least `depth` below each node's tip,
/// checked against (and added to) `finalized`.
fn check_finality(urls: &[String], depth: u64, finalized: &mut BTreeMap<u64, String>) {
    for url in urls {
        let Some(tip) = height(url) else { continue };
        let from = finalized.keys().next_back().map_or(1, |h| h + 1);
        // New heights, plus the most recent finalized ones again.
        let recheck = from.saturating_sub(3).max(1);
        for h in recheck..=tip.saturating_sub(depth) {
            let Some(hash) = block_hash(url, h) else {
                continue;
            };
            let hash = hash.as_str().unwrap().to_string();
            let seen = finalized.entry(h).or_insert_with(|| hash.clone());
            assert_eq!(
                *seen, hash,
                "block {h} changed on {url} although it was {depth} blocks deep"
            );
        }
    }
}

#[test]
#[ignore = "long: about 10 minutes; run with --run-ignored only"]
fn chaos_kills_and_restarts_never_change_final_blocks() {
    let rounds: usize = std::env::var("PROCTOR_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("PROCTOR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos: {rounds} rounds, PROCTOR_CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tmp("chaos");

    // Let the devnet lay out the chain and the three node directories, then
    // run every node and worker as its own process.
    let (devnet, list) = start_nodes(&dir, 3, 0);
    let urls = urls(&list);
    let node_dirs: Vec<String> = list
        .iter()
        .map(|n| n["dir"].as_str().unwrap().to_string())
        .collect();
    let pids: Vec<u64> = list.iter().map(|n| n["pid"].as_u64().unwrap()).collect();
    drop(devnet);
    wait_for("the devnet's nodes to exit", 30, || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
            .then_some(())
    });
    let mut c = Cluster {
        chain: dir.join("chain"),
        logs: dir.to_path_buf(),
        node_dirs,
        urls: urls.clone(),
        nodes: (0..3).map(|_| None).collect(),
        workers: (0..3).map(|_| None).collect(),
        starts: 0,
    };
    for i in 0..3 {
        c.start_node(i);
    }
    for i in 0..3 {
        c.start_worker(i);
    }
    let info = ok_json(&["--rpc", &urls[0], "chain", "info", "--json"]);
    let depth = info["finality_depth"].as_u64().unwrap();
    let reward = info["block_reward"].as_u64().unwrap();
    let base = supply_less_rewards(&urls[0], reward);
    wait_for("the first blocks", 120, || {
        height(&urls[0]).filter(|&h| h >= 3)
    });

    let mut finalized = BTreeMap::new();
    for round in 0..rounds {
        let victim = rng.next(6) as usize;
        let pause = Duration::from_millis(rng.next(2_000));
        eprintln!(
            "round {round}: kill {} {} for {pause:?}",
            if victim < 3 { "node" } else { "worker" },
            victim % 3
        );
        // Dropping a Proc SIGKILLs it; the pause is the outage itself.
        if victim < 3 {
            c.nodes[victim] = None;
            std::thread::sleep(pause);
            c.start_node(victim);
        } else {
            c.workers[victim - 3] = None;
            std::thread::sleep(pause);
            c.start_worker(victim - 3);
        }
        check_finality(&urls, depth, &mut finalized);
    }

    // The end: everyone converges, no final block ever changed, supply holds.
    let top = height(&urls[0]).unwrap();
    let h = converged(&urls[0], &urls[1], top + 2);
    converged(&urls[0], &urls[2], h);
    finalized.clear();
    check_finality(&urls, depth, &mut finalized);
    for url in &urls {
        for (h, hash) in &finalized {
            assert_eq!(
                block_hash(url, *h).unwrap().as_str().unwrap(),
                hash,
                "block {h} differs on {url}"
            );
        }
        assert_eq!(supply_less_rewards(url, reward), base, "supply on {url}");
    }
    eprintln!(
        "chaos: {rounds} rounds survived; {} final blocks agree on all nodes",
        finalized.len()
    );
}
