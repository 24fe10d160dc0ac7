//! `proctor bench network`: a real multi-node devnet under load.
//!
//! Starts `proctor devnet --nodes N --workers W` (this binary, child
//! processes, loopback) in a temporary directory, then:
//! 1. **idle**: lets it mine for `--idle-secs` to see blocks at the target
//!    interval without load;
//! 2. **load**: funds `--senders` fresh accounts, pre-signs `--txs` transfers
//!    and submits them over JSON-RPC (batch requests, each sender to one
//!    node, nodes in parallel); a transaction counts when its block has
//!    `--confirmations` blocks on top on node 0.
//!
//! Throughout, every node's new heads arrive over WebSocket subscriptions:
//! the spread between the first and the last node announcing a block is its
//! **propagation time**; a block announced as a head by some node but not in
//! the final canonical chain is **stale**.

use anyhow::{Context, Result, bail};
use proctor_primitives::{Amount, Hash, Keypair};
use proctor_rpc::jsonrpsee::core::client::ClientT;
use proctor_rpc::jsonrpsee::core::params::BatchRequestBuilder;
use proctor_rpc::jsonrpsee::ws_client::WsClientBuilder;
use proctor_rpc::{ApiClient, HeadInfo, to_hex};
use proctor_state::SignedTransaction;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct NetBenchArgs {
    /// Nodes of the devnet.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Mining workers (spread over the nodes).
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Transfers submitted in the load phase.
    #[arg(long, default_value_t = 60_000)]
    txs: usize,
    /// Accounts sending them.
    #[arg(long, default_value_t = 24)]
    senders: usize,
    /// Transactions per JSON-RPC batch request.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Blocks on top of a transaction's block before it counts.
    #[arg(long, default_value_t = 2)]
    confirmations: u64,
    /// Seconds of mining without load first (blocks for the stale rate).
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Target block interval of the devnet, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Keep the devnet directory afterwards (its path is printed).
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
pub struct NetReport {
    nodes: usize,
    workers: usize,
    txs: usize,
    confirmations: u64,
    /// Transactions refused at submission (should be zero).
    rejected: usize,
    submit_secs: f64,
    submit_per_sec: f64,
    /// From the first submission until the last transaction was in a block.
    included_secs: f64,
    /// From the first submission until the last transaction was k-confirmed.
    confirmed_secs: f64,
    /// End to end: transactions / confirmed_secs.
    tps: f64,
    blocks_under_load: u64,
    largest_block: usize,
    blocks: u64,
    stale_blocks: usize,
    stale_rate_percent: f64,
    mean_block_secs: f64,
    propagation_median_ms: f64,
    propagation_p90_ms: f64,
    propagation_max_ms: f64,
}

/// A child process killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_ports(n: u16) -> Result<u16> {
    for _ in 0..50 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if base < u16::MAX - n
            && (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return Ok(base);
        }
    }
    bail!("no {n} consecutive free ports on 127.0.0.1")
}

/// Heads announced by each node: (node, height, hash, when).
type Seen = Arc<Mutex<Vec<(usize, u64, Hash, Instant)>>>;

async fn watch_heads(urls: &[String], seen: Seen) -> Result<()> {
    for (i, url) in urls.iter().enumerate() {
        let ws = WsClientBuilder::default()
            .build(url.replace("http://", "ws://"))
            .await
            .with_context(|| format!("WebSocket to {url}"))?;
        let mut sub = ApiClient::subscribe_new_heads(&ws).await?;
        let seen = seen.clone();
        tokio::spawn(async move {
            let _ws = ws;
            while let Some(Ok(h)) = sub.next().await {
                let h: HeadInfo = h;
                seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                    i,
                    h.height,
                    h.hash,
                    Instant::now(),
                ));
            }
        });
    }
    Ok(())
}

async fn wait_until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(args: NetBenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("proctor-bench-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = bench(&args, &dir).await;
    if args.keep {
        eprintln!("devnet kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let r = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "network: {} nodes, {} workers on loopback, {} ms target blocks\n\
         load: {} transfers from {} senders over JSON-RPC, counted at {} confirmations\n  \
         submitted in        {:>8.2} s ({:.0}/s; {} refused)\n  \
         all included after  {:>8.2} s\n  \
         all confirmed after {:>8.2} s\n  \
         end-to-end          {:>8.0} tx/s ({} blocks, largest {} txs)\n\
         blocks: {} canonical, mean interval {:.2} s, {} stale ({:.2}%)\n\
         propagation to every node: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        r.nodes,
        r.workers,
        args.block_ms,
        r.txs,
        args.senders,
        r.confirmations,
        r.submit_secs,
        r.submit_per_sec,
        r.rejected,
        r.included_secs,
        r.confirmed_secs,
        r.tps,
        r.blocks_under_load,
        r.largest_block,
        r.blocks,
        r.mean_block_secs,
        r.stale_blocks,
        r.stale_rate_percent,
        r.propagation_median_ms,
        r.propagation_p90_ms,
        r.propagation_max_ms,
    );
    Ok(())
}

async fn bench(args: &NetBenchArgs, dir: &Path) -> Result<NetReport> {
    if args.nodes == 0 || args.senders == 0 || args.txs == 0 || args.batch == 0 {
        bail!("--nodes, --senders, --txs and --batch must be at least 1");
    }
    let (rpc, p2p) = (
        free_ports(args.nodes as u16)?,
        free_ports(args.nodes as u16)?,
    );
    let chain = dir.join("chain");
    let log = std::fs::File::create(dir.join("devnet.log"))?;
    let _devnet = Child(
        std::process::Command::new(std::env::current_exe()?)
            .arg("devnet")
            .arg("--dir")
            .arg(&chain)
            .args(["--nodes", &args.nodes.to_string()])
            .args(["--workers", &args.workers.to_string()])
            .args(["--rpc-port", &rpc.to_string()])
            .args(["--p2p-port", &p2p.to_string()])
            .args(["--block-ms", &args.block_ms.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the devnet")?,
    );
    let urls: Vec<String> = (0..args.nodes)
        .map(|i| format!("http://127.0.0.1:{}", rpc + i as u16))
        .collect();
    let clients = urls
        .iter()
        .map(|u| proctor_rpc::http_client(u))
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "starting {} nodes and {} workers ...",
        args.nodes, args.workers
    );
    for c in &clients {
        wait_until("the devnet's nodes", 120, || async {
            c.head().await.ok().filter(|h| h.height >= 2)
        })
        .await?;
    }
    let seen: Seen = Arc::default();
    watch_heads(&urls, seen.clone()).await?;
    let watch_from = clients[0].head().await?.height;

    eprintln!("idle for {} s ...", args.idle_secs);
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;

    // Fund the senders from the dev accounts.
    let info = clients[0].chain_info().await?;
    let g = info.genesis_hash;
    let fee = info.min_fee.0;
    let devs: Vec<Keypair> = (0..4)
        .map(|i| crate::keys::read(&chain.join(format!("keys/dev{i}.json"))))
        .collect::<Result<_>>()?;
    let senders: Vec<Keypair> = (0..args.senders)
        .map(|_| Keypair::generate(&mut rand_core::OsRng))
        .collect();
    let per_sender = args.txs.div_ceil(args.senders);
    let funding = (per_sender as u128 + 1) * (fee + 1);
    let mut funding_txs = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let dev = &devs[i % devs.len()];
        let nonce =
            clients[0].account(dev.public().address()).await?.next_nonce + (i / devs.len()) as u64;
        funding_txs.push(transfer(&g, dev, nonce, &s.public(), funding, fee));
    }
    let (_, refused) = submit(&clients[0], &funding_txs, args.batch).await?;
    if refused > 0 {
        bail!("{refused} funding transfers were refused");
    }
    let last = funding_txs.last().expect("senders >= 1").hash();
    wait_until("the senders' funding", 120, || async {
        matches!(
            clients[0].transaction(last).await,
            Ok(proctor_rpc::TxStatus::Included { .. })
        )
        .then_some(())
    })
    .await?;
    for c in &clients {
        let want = senders[0].public().address();
        wait_until("the funding on every node", 60, || async {
            c.account(want)
                .await
                .ok()
                .filter(|a| a.balance.0 == funding)
        })
        .await?;
    }

    // Pre-sign, then submit: each sender to one node, nodes in parallel.
    eprintln!("signing {} transfers ...", args.txs);
    let sink = Keypair::generate(&mut rand_core::OsRng).public();
    let mut per_node: Vec<Vec<SignedTransaction>> = vec![Vec::new(); args.nodes];
    for n in 0..per_sender as u64 {
        for (i, s) in senders.iter().enumerate() {
            if per_node.iter().map(Vec::len).sum::<usize>() < args.txs {
                per_node[i % args.nodes].push(transfer(&g, s, n, &sink, 1, fee));
            }
        }
    }
    let start_height = clients[0].head().await?.height;
    eprintln!("submitting ...");
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (c, txs) in clients.iter().cloned().zip(per_node) {
        let batch = args.batch;
        tasks.push(tokio::spawn(async move { submit(&c, &txs, batch).await }));
    }
    let mut rejected = 0;
    for t in tasks {
        rejected += t.await??.1;
    }
    let submit_secs = t0.elapsed().as_secs_f64();
    let accepted = args.txs - rejected;
    eprintln!(
        "submitted in {submit_secs:.2} s; waiting for {accepted} transfers to be confirmed ..."
    );

    // Count: blocks above start_height on node 0, until every accepted
    // transaction is in a block with enough blocks on top.
    let mut counted: BTreeMap<u64, usize> = BTreeMap::new();
    let mut included_at = None;
    let mut largest = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let mut progress =
        crate::progress::Progress::steps("confirming transfers", accepted as u64, "transfer");
    let confirmed_at = loop {
        let tip = clients[0].head().await?.height;
        let from = counted.keys().next_back().map_or(start_height, |h| *h) + 1;
        for h in from..=tip {
            let b = clients[0].block(h.to_string()).await?;
            largest = largest.max(b.transactions.len());
            counted.insert(h, b.transactions.len());
        }
        let total: usize = counted.values().sum();
        if included_at.is_none() && total >= accepted {
            included_at = Some(t0.elapsed());
        }
        let confirmed: usize = counted
            .range(..=tip.saturating_sub(args.confirmations))
            .map(|(_, n)| n)
            .sum();
        if confirmed >= accepted {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            bail!("only {confirmed} of {accepted} transfers confirmed after 10 minutes");
        }
        if Instant::now() > next_report {
            progress.update(confirmed as u64, accepted as u64);
            next_report = Instant::now() + Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(progress);
    let blocks_under_load = counted.len() as u64;

    eprintln!("measuring propagation and stale blocks ...");
    // Stale blocks and propagation, from the heads every node announced.
    let end = clients[0].head().await?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let top = end.height.saturating_sub(args.confirmations);
    let mut canonical = BTreeSet::new();
    for h in watch_from + 1..=top {
        canonical.insert(clients[0].block(h.to_string()).await?.hash);
    }
    let stale: BTreeSet<Hash> = seen
        .iter()
        .filter(|(_, h, hash, _)| *h > watch_from && *h <= top && !canonical.contains(hash))
        .map(|(_, _, hash, _)| *hash)
        .collect();
    let mut by_block: BTreeMap<Hash, Vec<(usize, Instant)>> = BTreeMap::new();
    for (node, _, hash, at) in &seen {
        if canonical.contains(hash) {
            by_block.entry(*hash).or_default().push((*node, *at));
        }
    }
    let mut spreads: Vec<f64> = by_block
        .values()
        .filter_map(|v| {
            let nodes: BTreeSet<usize> = v.iter().map(|(n, _)| *n).collect();
            (nodes.len() == args.nodes).then(|| {
                // First announcement per node.
                let firsts: Vec<Instant> = nodes
                    .iter()
                    .map(|n| v.iter().filter(|(m, _)| m == n).map(|(_, t)| *t).min())
                    .map(|t| t.expect("node present"))
                    .collect();
                let (lo, hi) = (firsts.iter().min(), firsts.iter().max());
                hi.expect("nonempty")
                    .duration_since(*lo.expect("nonempty"))
                    .as_secs_f64()
                    * 1e3
            })
        })
        .collect();
    spreads.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if spreads.is_empty() {
            return f64::NAN;
        }
        spreads[((spreads.len() - 1) as f64 * p).round() as usize]
    };
    let first_ts = clients[0]
        .block((watch_from + 1).to_string())
        .await?
        .timestamp;
    let last_ts = clients[0].block(top.to_string()).await?.timestamp;
    let blocks = canonical.len() as u64;
    let confirmed_secs = confirmed_at.as_secs_f64();
    Ok(NetReport {
        nodes: args.nodes,
        workers: args.workers,
        txs: args.txs,
        confirmations: args.confirmations,
        rejected,
        submit_secs,
        submit_per_sec: accepted as f64 / submit_secs,
        included_secs: included_at.unwrap_or(confirmed_at).as_secs_f64(),
        confirmed_secs,
        tps: accepted as f64 / confirmed_secs,
        blocks_under_load,
        largest_block: largest,
        blocks,
        stale_blocks: stale.len(),
        stale_rate_percent: 100.0 * stale.len() as f64 / (blocks as f64 + stale.len() as f64),
        mean_block_secs: (last_ts - first_ts) as f64 / 1e3 / (blocks.max(2) - 1) as f64,
        propagation_median_ms: pct(0.5),
        propagation_p90_ms: pct(0.9),
        propagation_max_ms: spreads.last().copied().unwrap_or(f64::NAN),
    })
}

fn transfer(
    g: &Hash,
    from: &Keypair,
    nonce: u64,
    to: &proctor_primitives::PublicKey,
    amount: u128,
    fee: u128,
) -> SignedTransaction {
    proctor_state::Transaction {
        chain: *g,
        signer: from.public(),
        nonce,
        fee: Amount(fee),
        call: proctor_state::Call::Accounts(proctor_state::accounts::Call::Transfer {
            to: to.address(),
            amount: Amount(amount),
        }),
    }
    .sign(from)
}

/// Submits `txs` in batch requests, in order; returns (accepted, refused).
async fn submit(
    client: &proctor_rpc::jsonrpsee::http_client::HttpClient,
    txs: &[SignedTransaction],
    batch: usize,
) -> Result<(usize, usize)> {
    let (mut ok, mut refused) = (0, 0);
    let mut first_error = None;
    for chunk in txs.chunks(batch) {
        let mut b = BatchRequestBuilder::new();
        for t in chunk {
            b.insert("proctor_sendTransaction", vec![to_hex(t)])?;
        }
        let resp = client.batch_request::<Hash>(b).await?;
        for r in resp.into_iter() {
            match r {
                Ok(_) => ok += 1,
                Err(e) => {
                    refused += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("{refused} transactions refused; the first: {e}");
    }
    Ok((ok, refused))
}
