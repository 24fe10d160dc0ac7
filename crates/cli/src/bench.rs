//! `proctor bench`: the numbers quoted in docs and closing notes come from here.
//!
//! - `pouw`: the filler task run to completion by wasmtime without fuel
//!   (baseline) and by the full PoUW path (the metering rewriter, slices, one lottery
//!   draw per slice in the enclave), alternating in one process; reports the
//!   median of each and their ratio.
//! - `transfers`: one block of signed transfers applied by the state machine
//!   (batch signature verification, nonce and balance checks, state-tree
//!   update), on the calling thread; reports transfers per second.
//! - `scheduler`: the market's WDRF scheduler placing jobs from a queue of
//!   100,000 on 10,000 workers (varied prices, reputations, capacities,
//!   requesters and replica counts): all at once, and in per-block calls of
//!   256; reports placements per second.

use crate::task::{Comparison, median, ms};
use anyhow::{Result, bail};
use proctor_node::FILLER_WASM;
use proctor_primitives::Hash;
use proctor_state::testkit;
use proctor_state::{BlockEnv, State};
use proctor_vm::TaskSpec;
use serde::Serialize;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: pouw, transfers, quotes, scheduler or all.
    #[arg(default_value = "all")]
    which: String,
    /// Filler rounds for the pouw benchmark.
    #[arg(long, default_value_t = 1_000)]
    rounds: u64,
    /// Repetitions of each side (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Transfers in the block of the transfers benchmark.
    #[arg(long, default_value_t = 10_000)]
    txs: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TransfersReport {
    txs: usize,
    apply_ms: f64,
    transfers_per_sec: f64,
    verify_only_ms: f64,
}

#[derive(Serialize)]
struct QuotesReport {
    sim_per_sec: f64,
    dcap_per_sec: f64,
    dcap_ms_each: f64,
}

#[derive(Serialize)]
struct SchedulerReport {
    workers: usize,
    jobs: usize,
    placed: usize,
    placements_per_sec: f64,
    block_calls: usize,
    block_call_ms: f64,
}

#[derive(Serialize, Default)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler: Option<SchedulerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quotes: Option<QuotesReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pouw: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transfers: Option<TransfersReport>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let mut report = Report::default();
    match args.which.as_str() {
        "pouw" => report.pouw = Some(pouw(&args)?),
        "transfers" => report.transfers = Some(transfers(&args)?),
        "quotes" => report.quotes = Some(quotes()?),
        "scheduler" => report.scheduler = Some(scheduler()),
        "all" => {
            report.scheduler = Some(scheduler());
            report.pouw = Some(pouw(&args)?);
            report.transfers = Some(transfers(&args)?);
            report.quotes = Some(quotes()?);
        }
        other => {
            bail!("unknown benchmark {other:?}: use pouw, transfers, quotes, scheduler or all")
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if let Some(p) = &report.pouw {
        println!("pouw: filler task, {}", p.human());
    }
    if let Some(t) = &report.transfers {
        println!(
            "transfers: block of {} signed transfers\n  signature batch only {:>8.1} ms\n  apply block          {:>8.1} ms\n  throughput           {:>8.0} transfers/s",
            t.txs, t.verify_only_ms, t.apply_ms, t.transfers_per_sec
        );
    }
    if let Some(r) = &report.scheduler {
        println!(
            "scheduler: WDRF, {} workers, {} pending jobs\n  placed {} at once      {:>8.0} placements/s\n  per-block calls of 256 {:>8.2} ms each ({} calls)",
            r.workers, r.jobs, r.placed, r.placements_per_sec, r.block_call_ms, r.block_calls
        );
    }
    if let Some(q) = &report.quotes {
        println!(
            "quotes: verifications per second on one core\n  simulated TEE        {:>8.0}/s\n  Intel DCAP (SGX)     {:>8.0}/s ({:.2} ms each)",
            q.sim_per_sec, q.dcap_per_sec, q.dcap_ms_each
        );
    }
    Ok(())
}

/// Quote verification rate: the real SGX quote of the test fixtures (DCAP,
/// with its collateral, at a time inside the collateral's validity) and a
/// simulated quote, each through the chain's `verify_quote`.
fn quotes() -> Result<QuotesReport> {
    use proctor_tee::quote::{DcapPolicy, DcapQuote, INTEL_SGX_ROOT_CA_DER};
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform};
    use proctor_tee::{Platform, Quote, TrustPolicy, verify_quote};
    const SGX: &[u8] = include_bytes!("../../tee/tests/fixtures/sgx_quote");
    const COLLATERAL: &[u8] = include_bytes!("../../tee/tests/fixtures/sgx_quote_collateral.json");
    let rate = |q: &Quote, policy: &TrustPolicy, at: u64| -> Result<f64> {
        verify_quote(q, policy, at)?;
        let n = 2_000;
        let t = Instant::now();
        for _ in 0..n {
            verify_quote(q, policy, at)?;
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    };
    let dcap = Quote::Dcap(DcapQuote {
        quote: SGX.to_vec(),
        collateral: COLLATERAL.to_vec(),
    });
    let dcap_policy = TrustPolicy {
        sim_root: None,
        dcap: Some(DcapPolicy {
            root_ca_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
            accepted_tcb_statuses: vec!["ConfigurationAndSWHardeningNeeded".into()],
            rejected_advisories: vec![],
            allow_debug: false,
        }),
    };
    let dcap_per_sec = rate(&dcap, &dcap_policy, 1_751_328_000)?;
    let dir = std::env::temp_dir().join(format!("proctor-bench-quotes-{}", std::process::id()));
    let root = SimAttestationRoot::generate();
    let root_pk = root.public();
    let sim = SimPlatform::open(&dir, root)?.quote(&[1; 64])?;
    let sim_per_sec = rate(
        &sim,
        &TrustPolicy {
            sim_root: Some(root_pk),
            dcap: None,
        },
        0,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(QuotesReport {
        sim_per_sec,
        dcap_per_sec,
        dcap_ms_each: 1000.0 / dcap_per_sec,
    })
}

fn pouw(args: &BenchArgs) -> Result<Comparison> {
    let spec = TaskSpec {
        args: vec![args.rounds.to_string()],
        input: b"bench seed".to_vec(),
        fuel: u64::MAX / 2,
        ..TaskSpec::default()
    };
    crate::task::compare(FILLER_WASM, &spec, args.reps, None)
}

fn transfers(args: &BenchArgs) -> Result<TransfersReport> {
    let n = args.txs;
    let senders = testkit::keys(n);
    let receivers = testkit::keys(n + 1);
    let mut params = testkit::params(None, Hash::ZERO);
    params.max_block_txs = n as u32;
    let g = testkit::genesis(&senders, 1_000_000_000, params);
    let state = State::genesis(&g)?;
    let txs: Vec<_> = (0..n)
        .map(|i| {
            testkit::transfer(
                &g.hash(),
                &senders[i],
                0,
                &receivers[(i * 7 + 1) % (n + 1)],
                5,
                1,
            )
        })
        .collect();
    let env = BlockEnv {
        height: 1,
        timestamp: g.timestamp + 1000,
        miner: receivers[n].public().address(),
    };
    let mut apply = Vec::new();
    let mut verify = Vec::new();
    for _ in 0..args.reps {
        let hashes: Vec<Hash> = txs.iter().map(|t| t.hash()).collect();
        let items: Vec<_> = txs
            .iter()
            .zip(&hashes)
            .map(|(t, h)| (t.tx.signer, &h.0[..], t.signature))
            .collect();
        let t = Instant::now();
        proctor_primitives::verify_batch(&items)?;
        verify.push(t.elapsed());

        let t = Instant::now();
        let a = state.apply_block(&env, &txs)?;
        apply.push(t.elapsed());
        if a.receipts.len() != n {
            bail!("not every transfer applied");
        }
    }
    let a = median(apply);
    Ok(TransfersReport {
        txs: n,
        apply_ms: ms(a),
        transfers_per_sec: n as f64 / a.as_secs_f64(),
        verify_only_ms: ms(median(verify)),
    })
}

/// The WDRF scheduler on a large market: 10,000 workers, 100,000 jobs from
/// 1,000 requesters (1-3 replicas, varied demands and price limits).
fn scheduler() -> SchedulerReport {
    use proctor_market::scheduler::{Job, Resources, Usage, Weights, Worker, schedule};
    use proctor_primitives::{Address, PublicKey};
    const WORKERS: usize = 10_000;
    const JOBS: usize = 100_000;
    let mix = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    let workers = || -> Vec<Worker> {
        (0..WORKERS as u64)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&i.to_le_bytes());
                Worker {
                    id: PublicKey(id),
                    price: 1 + (mix(i) % 1_000) as u128,
                    capacity: Resources {
                        memory_pages: 4_096 + mix(i + 1) % 4_096,
                        fuel: 40_000_000_000,
                    },
                    used: Resources::default(),
                    reputation: mix(i + 2) % proctor_market::SCALE,
                }
            })
            .collect()
    };
    let jobs: Vec<Job> = (0..JOBS as u64)
        .map(|i| {
            let mut a = [0u8; 20];
            a[..8].copy_from_slice(&(mix(i) % 1_000).to_le_bytes());
            Job {
                id: i,
                requester: Address(a),
                demand: Resources {
                    memory_pages: 16 + mix(i + 3) % 256,
                    fuel: 1_000_000_000 + mix(i + 4) % 3_000_000_000,
                },
                max_price: 200 + (mix(i + 5) % 1_000) as u128,
                replicas: 1 + (i % 3) as u32,
                exclude: vec![],
            }
        })
        .collect();
    let w = Weights::default();
    let mut ws = workers();
    let mut usage: std::collections::BTreeMap<Address, Usage> = Default::default();
    let t = Instant::now();
    let placed = schedule(&mut ws, jobs.clone(), &mut usage, &w, usize::MAX);
    let secs = t.elapsed().as_secs_f64();
    let replicas: usize = placed.iter().map(|p| p.workers.len()).sum();
    // Per-block calls: the same queue, 256 placements at a time.
    let mut ws = workers();
    let mut usage = Default::default();
    let mut queue = jobs;
    let calls = 20;
    let t = Instant::now();
    for _ in 0..calls {
        let done = schedule(&mut ws, queue.clone(), &mut usage, &w, 256);
        let ids: std::collections::BTreeSet<u64> = done.iter().map(|p| p.job).collect();
        queue.retain(|j| !ids.contains(&j.id));
    }
    let block_call_ms = t.elapsed().as_secs_f64() * 1e3 / calls as f64;
    SchedulerReport {
        workers: WORKERS,
        jobs: JOBS,
        placed: replicas,
        placements_per_sec: replicas as f64 / secs,
        block_calls: calls,
        block_call_ms,
    }
}
