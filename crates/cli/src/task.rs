//! `proctor task`: check a module, dry-run it metered, benchmark it.
//!
//! `run` uses exactly the engine a worker's enclave uses (the metering rewriter,
//! deterministic WASI environment), so the instruction count it prints is the
//! count a job would be charged for the same module, input and arguments.

use anyhow::{Context, Result, anyhow, bail};
use proctor_enclave::{Enclave, MineResult, Request, Response};
use proctor_primitives::Hash;
use proctor_tee::sim::{SimAttestationRoot, SimPlatform};
use proctor_vm::{Limits, Status, TaskSpec, UnmeteredVm, Vm};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default instruction budget of a dry run.
pub const DEFAULT_FUEL: u64 = 1_000_000_000_000;

#[derive(clap::Subcommand)]
pub enum TaskCmd {
    /// Run the checker: accept or reject a module, list its imports and exports.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run a module locally, metered, and report the instructions it used.
    Run {
        file: PathBuf,
        #[command(flatten)]
        io: TaskIo,
        /// Instruction budget.
        #[arg(long, default_value_t = DEFAULT_FUEL)]
        fuel: u64,
        /// Write the output here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print a JSON report (with the output inline unless --out is given).
        #[arg(long)]
        json: bool,
    },
    /// Time the module under plain wasmtime and under the full PoUW path.
    Bench {
        file: PathBuf,
        #[command(flatten)]
        io: TaskIo,
        /// Also time this native build of the same program.
        #[arg(long)]
        native: Option<PathBuf>,
        /// Repetitions of each side (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        #[arg(long)]
        json: bool,
    },
}

/// Input and arguments of a task run.
#[derive(clap::Args)]
pub struct TaskIo {
    /// File whose bytes are the task's stdin.
    #[arg(long)]
    input: Option<PathBuf>,
    /// A program argument (repeatable).
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Seed `random_get` as market job ID's run is seeded (by default, from
    /// the module and the input).
    #[arg(long = "job", value_name = "ID")]
    job: Option<u64>,
}

impl TaskIo {
    fn spec(&self, fuel: u64, module: &[u8]) -> Result<TaskSpec> {
        let input = match &self.input {
            Some(p) => {
                std::fs::read(p).with_context(|| format!("reading input {}", p.display()))?
            }
            None => Vec::new(),
        };
        let random_seed = match self.job {
            Some(job) => TaskSpec::job_seed(job),
            None => TaskSpec::task_seed(&Hash::of(module), &input),
        };
        Ok(TaskSpec {
            args: self.args.clone(),
            input,
            fuel,
            clock_ns: 0,
            random_seed,
        })
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading module {}", path.display()))
}

pub fn run(cmd: TaskCmd) -> Result<()> {
    match cmd {
        TaskCmd::Check { file, json } => check(&file, json),
        TaskCmd::Run {
            file,
            io,
            fuel,
            out,
            json,
        } => dry_run(&file, &io, fuel, out, json),
        TaskCmd::Bench {
            file,
            io,
            native,
            reps,
            json,
        } => {
            let module = read_module(&file)?;
            let spec = io.spec(u64::MAX / 2, &module)?;
            let c = compare(&module, &spec, reps, native.as_deref())?;
            crate::print(json, &c, Comparison::human)
        }
    }
}

fn check(file: &Path, json: bool) -> Result<()> {
    let bytes = read_module(file)?;
    let verdict = proctor_vm::check(&bytes, &Limits::default())
        .map_err(|e| anyhow!("{}: rejected: {e}", file.display()))?;
    crate::print(json, &verdict, |v| {
        format!(
            "accepted {}\nmodule:  {}\nmemory:  {} pages\nimports: {}\nexports: {}",
            file.display(),
            v.module,
            v.memory_pages,
            v.imports.join(", "),
            v.exports.join(", ")
        )
    })
}

#[derive(Serialize)]
struct RunReport {
    module: Hash,
    status: String,
    exit_code: Option<i32>,
    instructions: u64,
    output_bytes: usize,
    output_hash: Hash,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_hex: Option<String>,
    stderr: String,
}

fn dry_run(file: &Path, io: &TaskIo, fuel: u64, out: Option<PathBuf>, json: bool) -> Result<()> {
    let bytes = read_module(file)?;
    let vm = Vm::new(Limits::default())?;
    let loaded = vm
        .load(&bytes)
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let o = vm.run(&loaded, io.spec(fuel, &bytes)?, proctor_worker::SLICE);
    let (status, exit_code) = match &o.status {
        Status::Exited(c) => (
            if *c == 0 {
                "ok".to_string()
            } else {
                "exited".to_string()
            },
            Some(*c),
        ),
        Status::OutOfFuel => (
            format!("out of fuel after {} instructions", o.instructions),
            None,
        ),
        Status::OutputLimit => ("output limit exceeded".to_string(), None),
        Status::Trapped(t) => (format!("trapped: {t}"), None),
    };
    if let Some(path) = &out {
        std::fs::write(path, &o.stdout).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        let (output, output_hex) = match (&out, std::str::from_utf8(&o.stdout)) {
            (Some(_), _) => (None, None),
            (None, Ok(s)) => (Some(s.to_string()), None),
            (None, Err(_)) => (None, Some(hex::encode(&o.stdout))),
        };
        let report = RunReport {
            module: loaded.verdict.module,
            status: status.clone(),
            exit_code,
            instructions: o.instructions,
            output_bytes: o.stdout.len(),
            output_hash: Hash::of(&o.stdout),
            output,
            output_hex,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if out.is_none() {
            use std::io::Write;
            std::io::stdout().write_all(&o.stdout)?;
        }
        eprintln!(
            "{}: {status}, {} instructions",
            file.display(),
            o.instructions
        );
    }
    if !o.success() {
        bail!("the task did not finish successfully: {status}");
    }
    Ok(())
}

/// Side-by-side timings of one module and input.
#[derive(Serialize)]
pub struct Comparison {
    pub instructions: u64,
    /// Median times and their ratios.
    #[serde(flatten)]
    pub median: Timings,
    pub slices: u64,
    pub slice_instructions: u64,
    /// The fastest repetition of each side, and the same ratios between
    /// them: on a busy host interference only ever adds time, so these are
    /// the steadier figures.
    pub fastest: Timings,
}

/// One statistic (median or minimum) of each side's times, and its ratios.
#[derive(Serialize)]
pub struct Timings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_ms: Option<f64>,
    pub unmetered_ms: f64,
    pub pouw_ms: f64,
    /// PoUW path over unmetered wasmtime.
    pub ratio: f64,
    /// PoUW path over native, when a native build was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_native: Option<f64>,
}

impl Timings {
    /// `stat` of each side's repetitions (`native` empty: no native build).
    fn of(
        stat: fn(Vec<Duration>) -> Duration,
        native: &[Duration],
        unmetered: &[Duration],
        pouw: &[Duration],
    ) -> Timings {
        let native_ms = (!native.is_empty()).then(|| ms(stat(native.to_vec())));
        let (unmetered_ms, pouw_ms) = (ms(stat(unmetered.to_vec())), ms(stat(pouw.to_vec())));
        Timings {
            native_ms,
            unmetered_ms,
            pouw_ms,
            ratio: pouw_ms / unmetered_ms,
            ratio_native: native_ms.map(|n| pouw_ms / n),
        }
    }
}

impl Comparison {
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} instructions, {} slices of {}\n",
            self.instructions, self.slices, self.slice_instructions
        );
        let (m, f) = (&self.median, &self.fastest);
        if let Some(n) = m.native_ms {
            s += &format!("  native build        {n:>9.1} ms\n");
        }
        s += &format!(
            "  wasmtime unmetered  {:>9.1} ms\n  PoUW path           {:>9.1} ms\n  PoUW / unmetered    {:>9.3}x",
            m.unmetered_ms, m.pouw_ms, m.ratio
        );
        s += &format!("   (fastest runs: {:.3}x)", f.ratio);
        if let Some(r) = m.ratio_native {
            s += &format!("\n  PoUW / native       {r:>9.3}x");
            if let Some(rf) = f.ratio_native {
                s += &format!("   (fastest runs: {rf:.3}x)");
            }
        }
        s
    }
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `module` alternately under wasmtime without fuel and through the full
/// PoUW path (enclave: checker, metering rewriter, slices, one lottery draw per
/// slice at an unwinnable difficulty so the whole run is measured), and
/// optionally as a native process; reports medians and minimums, and their
/// ratios.
pub fn compare(
    module: &[u8],
    spec: &TaskSpec,
    reps: usize,
    native: Option<&Path>,
) -> Result<Comparison> {
    let reps = reps.max(1);
    let base = UnmeteredVm::new(Limits::default())?;
    let compiled = base.compile(module)?;
    let dir = std::env::temp_dir().join(format!("proctor-bench-{}", std::process::id()));
    let mut enclave = Enclave::new(Box::new(SimPlatform::open(
        &dir,
        SimAttestationRoot::generate(),
    )?))?;
    let slice = proctor_worker::SLICE;
    let expected = base.run(&compiled, spec).stdout; // warm-up
    let (mut t_native, mut t_base, mut t_pouw) = (Vec::new(), Vec::new(), Vec::new());
    let mut instructions = 0;
    let mut progress = crate::progress::Progress::steps("benchmarking", reps as u64, "run");
    for rep in 0..reps {
        if let Some(bin) = native {
            let t = Instant::now();
            let out = native_run(bin, spec)?;
            t_native.push(t.elapsed());
            if out != expected {
                bail!("the native build's output differs from the WebAssembly build's");
            }
        }
        let t = Instant::now();
        let o = base.run(&compiled, spec);
        t_base.push(t.elapsed());
        if o.stdout != expected {
            bail!("unmetered run is not deterministic");
        }

        // The lottery runs as when mining, at a difficulty no slice wins.
        let never_wins = proctor_state::Template {
            parent: Hash::ZERO,
            height: 1,
            timestamp: 0,
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            difficulty: u64::MAX,
            miner: proctor_primitives::Address([0; 20]),
        };
        let t = Instant::now();
        let Response::Loaded { .. } = enclave.handle(Request::LoadTask {
            module: module.to_vec(),
            input: proctor_enclave::TaskInput::Given(spec.input.clone()),
            args: spec.args.clone(),
            clock_ns: spec.clock_ns,
            fuel: spec.fuel,
            slice,
        }) else {
            bail!("the module did not load into the enclave")
        };
        loop {
            match enclave.handle(Request::Mine {
                template: Box::new(never_wins.clone()),
                max_slices: 1_000,
            }) {
                Response::Mined(MineResult::NoWin { .. } | MineResult::Won(_), _) => {}
                Response::Mined(
                    MineResult::TaskDone {
                        instructions: i,
                        output_hash,
                        ..
                    },
                    _,
                ) => {
                    if output_hash != Hash::of(&expected) {
                        bail!("PoUW run output differs from the unmetered run");
                    }
                    instructions = i;
                    break;
                }
                other => bail!("unexpected enclave answer {other:?}"),
            }
        }
        t_pouw.push(t.elapsed());
        progress.update(rep as u64 + 1, reps as u64);
    }
    drop(progress);
    let _ = std::fs::remove_dir_all(&dir);
    let fastest = |v: Vec<Duration>| v.into_iter().min().unwrap_or_default();
    Ok(Comparison {
        instructions,
        median: Timings::of(median, &t_native, &t_base, &t_pouw),
        // One lottery draw per completed slice.
        slices: instructions / slice,
        slice_instructions: slice,
        fastest: Timings::of(fastest, &t_native, &t_base, &t_pouw),
    })
}

fn native_run(bin: &Path, spec: &TaskSpec) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin)
        .args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    // Fed from another thread: a program that writes while it reads would
    // otherwise fill its stdout pipe while we still fill its stdin.
    let mut stdin = child.stdin.take().expect("piped");
    let input = spec.input.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    // A program may exit without reading all of its input (a broken pipe).
    let _ = feeder.join();
    Ok(out.stdout)
}
