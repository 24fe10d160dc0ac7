//! `proctor bench`: the numbers quoted in docs and closing notes come from here.
//!
//! - `pouw`: the filler task run to completion by wasmtime without fuel
//!   (baseline) and by the full PoUW path (fuel metering, slices, one lottery
//!   draw per slice in the enclave), alternating in one process; reports the
//!   median of each and their ratio.
//! - `transfers`: one block of signed transfers applied by the state machine
//!   (batch signature verification, nonce and balance checks, state-tree
//!   update), on the calling thread; reports transfers per second.

use anyhow::{Result, bail};
use proctor_enclave::{Enclave, MineResult, Request, Response};
use proctor_node::FILLER_WASM;
use proctor_primitives::Hash;
use proctor_state::testkit;
use proctor_state::{BlockEnv, State};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform};
use proctor_vm::{Limits, TaskSpec, UnmeteredVm};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Which benchmark: pouw, transfers or all.
    #[arg(default_value = "all")]
    which: String,
    /// Filler rounds for the pouw benchmark.
    #[arg(long, default_value_t = 300_000)]
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
struct PouwReport {
    instructions: u64,
    unmetered_ms: f64,
    pouw_ms: f64,
    ratio: f64,
    slices: u64,
    slice_instructions: u64,
}

#[derive(Serialize)]
struct TransfersReport {
    txs: usize,
    apply_ms: f64,
    transfers_per_sec: f64,
    verify_only_ms: f64,
}

#[derive(Serialize, Default)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pouw: Option<PouwReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transfers: Option<TransfersReport>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run(args: BenchArgs) -> Result<()> {
    let mut report = Report::default();
    match args.which.as_str() {
        "pouw" => report.pouw = Some(pouw(&args)?),
        "transfers" => report.transfers = Some(transfers(&args)?),
        "all" => {
            report.pouw = Some(pouw(&args)?);
            report.transfers = Some(transfers(&args)?);
        }
        other => bail!("unknown benchmark {other:?}: use pouw, transfers or all"),
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if let Some(p) = &report.pouw {
        println!(
            "pouw: filler, {} instructions, {} slices of {}\n  wasmtime unmetered  {:>9.1} ms\n  PoUW path           {:>9.1} ms\n  ratio               {:>9.3}x",
            p.instructions, p.slices, p.slice_instructions, p.unmetered_ms, p.pouw_ms, p.ratio
        );
    }
    if let Some(t) = &report.transfers {
        println!(
            "transfers: block of {} signed transfers\n  signature batch only {:>8.1} ms\n  apply block          {:>8.1} ms\n  throughput           {:>8.0} transfers/s",
            t.txs, t.verify_only_ms, t.apply_ms, t.transfers_per_sec
        );
    }
    Ok(())
}

fn pouw(args: &BenchArgs) -> Result<PouwReport> {
    let spec = TaskSpec {
        args: vec![args.rounds.to_string()],
        input: b"bench seed".to_vec(),
        fuel: u64::MAX / 2,
        ..TaskSpec::default()
    };
    let base = UnmeteredVm::new(Limits::default())?;
    let module = base.compile(FILLER_WASM)?;
    let dir = std::env::temp_dir().join(format!("proctor-bench-{}", std::process::id()));
    let platform = SimPlatform::open(&dir, SimAttestationRoot::generate())?;
    let mut enclave = Enclave::new(Box::new(platform))?;
    let slice = proctor_worker::SLICE;
    let (mut t_base, mut t_pouw) = (Vec::new(), Vec::new());
    let (mut instructions, mut slices) = (0, 0);
    // Warm-up, then alternate so that both sides see the same machine state.
    let expected = base.run(&module, &spec).stdout;
    for _ in 0..args.reps {
        let t = Instant::now();
        let o = base.run(&module, &spec);
        t_base.push(t.elapsed());
        if o.stdout != expected {
            bail!("unmetered run is not deterministic");
        }

        let t = Instant::now();
        let Response::Loaded { .. } = enclave.handle(Request::LoadTask {
            module: FILLER_WASM.to_vec(),
            input: spec.input.clone(),
            args: spec.args.clone(),
            clock_ns: 0,
            fuel: spec.fuel,
            slice,
        }) else {
            bail!("filler did not load")
        };
        let mut n = 0u64;
        loop {
            match enclave.handle(Request::Mine {
                template: Hash::ZERO,
                difficulty: u64::MAX,
                max_slices: 1_000,
            }) {
                Response::Mined(MineResult::NoWin { slices }) => n += slices as u64,
                Response::Mined(MineResult::TaskDone {
                    instructions: i, ..
                }) => {
                    instructions = i;
                    break;
                }
                Response::Mined(MineResult::Won(_)) => n += 1,
                other => bail!("unexpected enclave answer {other:?}"),
            }
        }
        t_pouw.push(t.elapsed());
        slices = n;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (b, p) = (median(t_base), median(t_pouw));
    Ok(PouwReport {
        instructions,
        unmetered_ms: ms(b),
        pouw_ms: ms(p),
        ratio: p.as_secs_f64() / b.as_secs_f64(),
        slices,
        slice_instructions: slice,
    })
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
