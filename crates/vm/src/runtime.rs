//! The metered engine (wasmtime running rewritten modules, see [`crate::meter`])
//! and sliced execution of tasks.

use crate::checker::{self, CheckError, Limits, Verdict};
use crate::meter;
use crate::wasi::{self, Ctx, Exit, Meter, OutOfFuel, OutputLimit};
use proctor_primitives::Hash;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimitsBuilder, Trap, Val};

/// Errors loading a module.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("module rejected by the checker: {0}")]
    Rejected(#[from] CheckError),
    #[error("module failed to compile: {0}")]
    Compile(String),
    #[error("module could not be metered: {0}")]
    Meter(#[from] crate::meter::MeterError),
    #[error("engine setup: {0}")]
    Engine(String),
}

/// Everything that determines a run besides the module.
#[derive(Clone, Debug, Default)]
pub struct TaskSpec {
    /// Program arguments (`argv[1..]`; `argv[0]` is the module hash).
    pub args: Vec<String>,
    /// Bytes on stdin.
    pub input: Vec<u8>,
    /// Instruction budget; the run fails when it is used up.
    pub fuel: u64,
    /// What the clock reads, in nanoseconds since the Unix epoch.
    pub clock_ns: u64,
    /// Key of the `random_get` stream: [`TaskSpec::job_seed`] for a market
    /// job, [`TaskSpec::task_seed`] for other work.
    pub random_seed: Hash,
}

impl TaskSpec {
    /// The `random_get` seed of market job `job`: its id alone, so every
    /// worker the job is assigned to draws the same bytes, and anyone who
    /// knows the id can reproduce them (`proctor task run --job ID`). Not
    /// secret.
    pub fn job_seed(job: u64) -> Hash {
        Hash::tagged("proctor/job-seed", &[&job.to_le_bytes()])
    }

    /// The `random_get` seed of work that is not a market job (the mining
    /// filler, a dry run without a job id): the module's hash and the input.
    pub fn task_seed(module: &Hash, input: &[u8]) -> Hash {
        Hash::tagged("proctor/task-seed", &[&module.0, input])
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// `_start` returned or the program called `proc_exit(code)`.
    Exited(i32),
    /// The instruction budget ran out.
    OutOfFuel,
    /// The program wrote more output than allowed.
    OutputLimit,
    /// A WebAssembly trap (out-of-bounds access, unreachable, ...).
    Trapped(String),
}

/// The result of a finished run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    /// Instructions executed, deterministic: exact when the program exits
    /// (returning from `_start` or calling `proc_exit`), the budget when it
    /// ran out, and before a trap the count at the last host call or check
    /// that ended a slice (at most about one slice short).
    pub instructions: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }
}

/// A checked, compiled module.
#[derive(Clone)]
pub struct Loaded {
    pub verdict: Verdict,
    module: Module,
}

/// The metered engine: modules are checked, rewritten to count their own
/// instructions ([`crate::meter`]), compiled once and cached by hash. Cheap
/// to clone; the cache is shared.
#[derive(Clone)]
pub struct Vm {
    engine: Engine,
    linker: Arc<Linker<Ctx>>,
    limits: Limits,
    cache: Arc<Mutex<BTreeMap<Hash, Loaded>>>,
}

/// The x86-64 features compiled code may use, fixed for every machine: the
/// x86-64-v3 level (Haswell and later; every SGX, TDX and SEV-SNP machine has
/// it). Pinned rather than detected, so that the machine code of a module is
/// the same on every worker whatever its CPU (a host with AVX-512 gets no
/// different code), and replicas agree bit for bit.
pub const X86_64_FEATURES: &[(&str, &str)] = &[
    ("sse3", "has_sse3"),
    ("ssse3", "has_ssse3"),
    ("sse4.1", "has_sse41"),
    ("sse4.2", "has_sse42"),
    ("popcnt", "has_popcnt"),
    ("avx", "has_avx"),
    ("avx2", "has_avx2"),
    ("fma", "has_fma"),
    ("bmi1", "has_bmi1"),
    ("bmi2", "has_bmi2"),
    ("lzcnt", "has_lzcnt"),
];

/// Which CPU features the engine compiles for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Features {
    /// [`X86_64_FEATURES`] on every x86-64 machine (refused on one that
    /// lacks any): what nodes and enclaves use.
    #[default]
    Pinned,
    /// Plain x86-64 (SSE2 only): to check that results do not depend on the
    /// features (tests).
    Baseline,
    /// Whatever this CPU has, as wasmtime detects it: to compare against
    /// (tests, benchmarks). Not deterministic across machines.
    Host,
}

/// Whether this CPU has x86-64 feature `name` (`std`'s detection names).
#[cfg(target_arch = "x86_64")]
fn cpu_has(name: &str) -> bool {
    match name {
        "sse3" => std::arch::is_x86_feature_detected!("sse3"),
        "ssse3" => std::arch::is_x86_feature_detected!("ssse3"),
        "sse4.1" => std::arch::is_x86_feature_detected!("sse4.1"),
        "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
        "popcnt" => std::arch::is_x86_feature_detected!("popcnt"),
        "avx" => std::arch::is_x86_feature_detected!("avx"),
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "fma" => std::arch::is_x86_feature_detected!("fma"),
        "bmi1" => std::arch::is_x86_feature_detected!("bmi1"),
        "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
        "lzcnt" => std::arch::is_x86_feature_detected!("lzcnt"),
        _ => false,
    }
}

pub(crate) fn base_config(features: Features) -> Result<Config, VmError> {
    let mut c = Config::new();
    // NaN bit patterns are the one nondeterminism of WebAssembly floats. On
    // x86-64 (every TEE proctor supports: SGX, TDX, SEV-SNP) SSE arithmetic
    // produces the same default NaN on every CPU, and all enclaves run the
    // same measured build with the same pinned features (same code), so
    // results are already bit-identical; canonicalizing would cost up to
    // 4.5x on float-heavy code (n-body: 561 ms vs 125 ms). Elsewhere,
    // canonicalize.
    c.cranelift_nan_canonicalization(!cfg!(target_arch = "x86_64"))
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true);
    // Opt-in (`--features proctor-vm/profiling`): name the compiled
    // WebAssembly functions for `perf` (docs/pouw.md, "Profiling the meter").
    #[cfg(feature = "profiling")]
    match std::env::var("PROCTOR_PROFILE").as_deref() {
        Ok("perfmap") => c.profiler(wasmtime::ProfilingStrategy::PerfMap),
        Ok("jitdump") => c.profiler(wasmtime::ProfilingStrategy::JitDump),
        _ => &mut c,
    };
    #[cfg(target_arch = "x86_64")]
    if features != Features::Host {
        // A target triple turns off wasmtime's detection of the host's
        // features: the code is for plain x86-64 plus what is enabled here.
        c.target("x86_64-unknown-linux-gnu")
            .map_err(|e| VmError::Engine(e.to_string()))?;
        if features == Features::Pinned {
            for (cpu, flag) in X86_64_FEATURES {
                if !cpu_has(cpu) {
                    return Err(VmError::Engine(format!(
                        "this CPU lacks {cpu}, one of the x86-64-v3 features the engine compiles for on every machine"
                    )));
                }
                // SAFETY: the flag only lets Cranelift emit instructions of
                // a feature this CPU was just checked to have; the code
                // runs only in this process, on this CPU.
                #[allow(unsafe_code)]
                unsafe {
                    c.cranelift_flag_enable(flag);
                }
            }
        }
    }
    Ok(c)
}

impl Vm {
    pub fn new(limits: Limits) -> Result<Self, VmError> {
        Self::with_features(limits, Features::Pinned)
    }

    /// An engine compiling for `features` (nodes use [`Vm::new`]: pinned).
    pub fn with_features(limits: Limits, features: Features) -> Result<Self, VmError> {
        let mut config = base_config(features)?;
        config.async_support(true);
        let engine = Engine::new(&config).map_err(|e| VmError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| VmError::Engine(e.to_string()))?;
        wasi::add_check_to_linker(&mut linker).map_err(|e| VmError::Engine(e.to_string()))?;
        Ok(Vm {
            engine,
            linker: Arc::new(linker),
            limits,
            cache: Arc::default(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks and compiles `bytes`, or returns the cached result for its hash.
    pub fn load(&self, bytes: &[u8]) -> Result<Loaded, VmError> {
        let hash = Hash::of(bytes);
        if let Some(l) = self.cache.lock().expect("cache lock").get(&hash) {
            return Ok(l.clone());
        }
        let (verdict, metered) = self.check_and_meter(bytes)?;
        let module =
            Module::new(&self.engine, &metered).map_err(|e| VmError::Compile(e.to_string()))?;
        let loaded = Loaded { verdict, module };
        self.cache
            .lock()
            .expect("cache lock")
            .insert(hash, loaded.clone());
        Ok(loaded)
    }

    /// The machine code [`Vm::load`] compiles `bytes` to (checked and
    /// metered), as the ELF image wasmtime's `Engine::precompile_module`
    /// writes: `objdump -d` reads it, which is how
    /// `examples/corpus/functions.sh --classes` tells what the meter did to
    /// a function's instructions.
    pub fn machine_code(&self, bytes: &[u8]) -> Result<Vec<u8>, VmError> {
        let (_, metered) = self.check_and_meter(bytes)?;
        self.engine
            .precompile_module(&metered)
            .map_err(|e| VmError::Compile(e.to_string()))
    }

    /// The checker's verdict on `bytes` and the module the engine compiles
    /// for it: the same module rewritten to count its own instructions.
    fn check_and_meter(&self, bytes: &[u8]) -> Result<(Verdict, Vec<u8>), VmError> {
        let verdict = checker::check(bytes, &self.limits)?;
        let metered = meter::instrument(bytes).map_err(VmError::Meter)?;
        Ok((verdict, metered))
    }

    /// Starts a run of `loaded` that yields every `slice` instructions.
    pub fn start(&self, loaded: &Loaded, mut spec: TaskSpec, slice: u64) -> Task {
        // The input moves into the run: a large one is not copied again.
        let input = std::mem::take(&mut spec.input);
        let mut ctx = new_ctx(&spec, input, loaded, &self.limits);
        ctx.meter = Meter::new(spec.fuel, slice);
        let progress = ctx.meter.progress.clone();
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.limits);
        let linker = self.linker.clone();
        let module = loaded.module.clone();
        let fut = async move {
            let mut remaining = None;
            let res = async {
                let instance = linker.instantiate_async(&mut store, &module).await?;
                let global = instance
                    .get_global(&mut store, meter::REMAINING)
                    .ok_or_else(|| wasmtime::Error::msg("metering global missing"))?;
                remaining = Some(global);
                let remaining = store.data_mut().meter.set_limit(0);
                global.set(&mut store, Val::I64(remaining))?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            }
            .await;
            let r = remaining.map(|g| g.get(&mut store).unwrap_i64());
            let ctx = store.into_data();
            let used = ctx.meter.used(r);
            // A run that ends (returning or calling `proc_exit`) past its
            // budget, between two checks, ran out of fuel all the same.
            let ended = res
                .as_ref()
                .map_or_else(|e| e.downcast_ref::<Exit>().is_some(), |()| true);
            let res = if ended && used > ctx.meter.budget {
                Err(wasmtime::Error::new(OutOfFuel))
            } else {
                res
            };
            let used = used.min(ctx.meter.budget);
            finish(res, used, ctx)
        };
        Task {
            fut: Box::pin(fut),
            slice: slice.max(1),
            progress,
            reported: 0,
            pending: 0,
            done: None,
        }
    }

    /// Runs to completion (no lottery); convenience for dry runs and tests.
    pub fn run(&self, loaded: &Loaded, spec: TaskSpec, slice: u64) -> Outcome {
        let mut t = self.start(loaded, spec, slice);
        loop {
            if let Step::Done(o) = t.step() {
                return o;
            }
        }
    }
}

/// The run's context: `stdin` is `spec`'s input (which the caller has moved
/// out of it, or copied).
fn new_ctx(
    spec: &TaskSpec,
    stdin: Vec<u8>,
    loaded_verdict: &impl ModuleName,
    limits: &Limits,
) -> Ctx {
    let mut args = vec![loaded_verdict.name().into_bytes()];
    args.extend(spec.args.iter().map(|a| a.clone().into_bytes()));
    let mut rng = blake3::Hasher::new_keyed(&spec.random_seed.0);
    rng.update(b"proctor/task-random");
    Ctx {
        args,
        stdin,
        stdin_pos: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        clock_ns: spec.clock_ns,
        random: rng.finalize_xof(),
        max_output: limits.max_output_bytes,
        max_log: limits.max_log_bytes,
        output_overflow: false,
        meter: Meter::default(),
        limits: StoreLimitsBuilder::new()
            .memory_size((limits.max_memory_pages as usize) << 16)
            .table_elements(limits.max_table_elements as usize)
            .instances(1)
            .build(),
    }
}

trait ModuleName {
    fn name(&self) -> String;
}
impl ModuleName for Loaded {
    fn name(&self) -> String {
        self.verdict.module.to_hex()
    }
}
impl ModuleName for Hash {
    fn name(&self) -> String {
        self.to_hex()
    }
}

fn finish(res: wasmtime::Result<()>, instructions: u64, ctx: Ctx) -> Outcome {
    let status = match res {
        Ok(()) => Status::Exited(0),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                Status::Exited(*code)
            } else if e.downcast_ref::<OutputLimit>().is_some() || ctx.output_overflow {
                Status::OutputLimit
            } else if e.downcast_ref::<OutOfFuel>().is_some()
                || e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel)
            {
                Status::OutOfFuel
            } else {
                Status::Trapped(format!("{e:#}"))
            }
        }
    };
    Outcome {
        status,
        instructions,
        stdout: ctx.stdout,
        stderr: ctx.stderr,
    }
}

/// What one [`Task::step`] did.
#[derive(Debug)]
pub enum Step {
    /// A slice of instructions ran; the task can be resumed.
    Slice,
    /// The run finished (every completed slice was reported before).
    Done(Outcome),
}

/// A run in progress. Dropping it abandons the run.
///
/// The guest yields every few slices (see `YIELD_SLICES`) and the task hands
/// the slices completed since the last yield out one [`Step::Slice`] at a
/// time, so callers see one step per slice of `n` instructions.
pub struct Task {
    fut: Pin<Box<dyn Future<Output = Outcome> + Send>>,
    slice: u64,
    progress: Arc<std::sync::atomic::AtomicU64>,
    /// Slices completed as of the last yield (or the end).
    reported: u64,
    /// Of those, not handed out yet.
    pending: u64,
    done: Option<Outcome>,
}

impl Task {
    /// Runs until the next slice boundary or the end.
    pub fn step(&mut self) -> Step {
        loop {
            if self.pending > 0 {
                self.pending -= 1;
                return Step::Slice;
            }
            if let Some(o) = self.done.take() {
                return Step::Done(o);
            }
            let mut cx = Context::from_waker(Waker::noop());
            let completed = match self.fut.as_mut().poll(&mut cx) {
                Poll::Pending => {
                    self.progress.load(std::sync::atomic::Ordering::Relaxed) / self.slice
                }
                Poll::Ready(o) => {
                    let completed = o.instructions / self.slice;
                    self.done = Some(o);
                    completed
                }
            };
            self.pending = completed.saturating_sub(self.reported);
            self.reported = self.reported.max(completed);
        }
    }

    /// Slices completed and handed out so far.
    pub fn slices(&self) -> u64 {
        self.reported - self.pending
    }
}

/// Plain wasmtime on the original module: without metering, the baseline
/// that benchmarks compare against; with wasmtime's own fuel
/// ([`UnmeteredVm::with_fuel`]), the independent reference that tests hold
/// the rewriting meter's counts against.
pub struct UnmeteredVm {
    engine: Engine,
    linker: Linker<Ctx>,
    limits: Limits,
    fuel: bool,
}

impl UnmeteredVm {
    pub fn new(limits: Limits) -> Result<Self, VmError> {
        Self::build(limits, false, Features::Pinned)
    }

    /// Unmetered, compiling for `features`.
    pub fn with_features(limits: Limits, features: Features) -> Result<Self, VmError> {
        Self::build(limits, false, features)
    }

    /// wasmtime's fuel: counts the same cost table as [`Vm`], a completed run
    /// reports the same `instructions`.
    pub fn with_fuel(limits: Limits) -> Result<Self, VmError> {
        Self::build(limits, true, Features::Pinned)
    }

    fn build(limits: Limits, fuel: bool, features: Features) -> Result<Self, VmError> {
        let mut config = base_config(features)?;
        config.consume_fuel(fuel);
        let engine = Engine::new(&config).map_err(|e| VmError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| VmError::Engine(e.to_string()))?;
        Ok(UnmeteredVm {
            engine,
            linker,
            limits,
            fuel,
        })
    }

    pub fn compile(&self, bytes: &[u8]) -> Result<Module, VmError> {
        checker::check(bytes, &self.limits)?;
        Module::new(&self.engine, bytes).map_err(|e| VmError::Compile(e.to_string()))
    }

    /// The machine code [`UnmeteredVm::compile`] compiles `bytes` to, as
    /// an ELF image (see [`Vm::machine_code`]).
    pub fn machine_code(&self, bytes: &[u8]) -> Result<Vec<u8>, VmError> {
        checker::check(bytes, &self.limits)?;
        self.engine
            .precompile_module(bytes)
            .map_err(|e| VmError::Compile(e.to_string()))
    }

    /// Runs `module` to completion; `instructions` is the fuel consumed, or 0
    /// without fuel. Fuel counts `memory.grow` as 1 where the meter adds
    /// [`meter::PAGE_CHARGE`] per page: the pages the memory grew by are
    /// added here, read from its size before and after the run (the two
    /// agree whenever every grow succeeds; a refused grow is charged by the
    /// meter, not here). The other size charges (`memory.copy` and `fill`)
    /// have no counterpart in fuel; WASI calls charge both alike.
    pub fn run(&self, module: &Module, spec: &TaskSpec) -> Outcome {
        let mut store = Store::new(
            &self.engine,
            new_ctx(
                spec,
                spec.input.clone(),
                &Hash::of(b"unmetered"),
                &self.limits,
            ),
        );
        store.limiter(|ctx| &mut ctx.limits);
        if self.fuel {
            store.set_fuel(spec.fuel).expect("fuel is enabled");
        }
        let mut memory = None;
        let res = (|| {
            let instance = self.linker.instantiate(&mut store, module)?;
            memory = instance.get_memory(&mut store, "memory");
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        })();
        let used = if self.fuel {
            let initial = module.exports().find_map(|e| match e.ty() {
                wasmtime::ExternType::Memory(m) if e.name() == "memory" => Some(m.minimum()),
                _ => None,
            });
            let grown = match (memory, initial) {
                (Some(m), Some(min)) => m.size(&store).saturating_sub(min),
                _ => 0,
            };
            let fuel = spec.fuel - store.get_fuel().expect("fuel is enabled");
            fuel.saturating_add(grown.saturating_mul(meter::PAGE_CHARGE as u64))
        } else {
            0
        };
        finish(res, used, store.into_data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOP: &str = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start") (local $i i32) (local $n i32)
            ;; read 4 bytes of input: the iteration count
            (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 4))
            (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
            (local.set $n (i32.load (i32.const 100)))
            (block $done (loop $l
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $l)))
            ;; write "ok\n"
            (i32.store (i32.const 200) (i32.const 0x0a6b6f))
            (i32.store (i32.const 0) (i32.const 200)) (i32.store (i32.const 4) (i32.const 3))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

    fn spec(n: u32, fuel: u64) -> TaskSpec {
        TaskSpec {
            input: n.to_le_bytes().to_vec(),
            fuel,
            ..TaskSpec::default()
        }
    }

    #[test]
    fn count_is_identical_across_runs_and_slice_sizes() {
        let vm = Vm::new(Limits::default()).unwrap();
        let m = vm.load(&wat::parse_str(LOOP).unwrap()).unwrap();
        let base = vm.run(&m, spec(100_000, u64::MAX / 2), 1_000_000_000);
        assert!(base.success(), "{:?}", base.status);
        assert_eq!(base.stdout, b"ok\n");
        for slice in [1_000, 7_777, 100_000] {
            for _ in 0..2 {
                let o = vm.run(&m, spec(100_000, u64::MAX / 2), slice);
                assert_eq!(o.instructions, base.instructions, "slice {slice}");
            }
        }
        // The count grows with the work: each loop iteration costs the same.
        let bigger = vm.run(&m, spec(200_000, u64::MAX / 2), 10_000);
        let per_iter = (bigger.instructions - base.instructions) / 100_000;
        assert!((4..20).contains(&per_iter), "per-iteration cost {per_iter}");
    }

    #[test]
    fn slices_yield_about_every_n_instructions() {
        let vm = Vm::new(Limits::default()).unwrap();
        let m = vm.load(&wat::parse_str(LOOP).unwrap()).unwrap();
        let mut t = vm.start(&m, spec(1_000_000, u64::MAX / 2), 50_000);
        let outcome = loop {
            if let Step::Done(o) = t.step() {
                break o;
            }
        };
        let expected = outcome.instructions / 50_000;
        assert!(
            t.slices().abs_diff(expected) <= 1,
            "{} slices for {} instructions",
            t.slices(),
            outcome.instructions
        );
    }

    #[test]
    fn budget_exhaustion_reports_used_fuel() {
        let vm = Vm::new(Limits::default()).unwrap();
        let m = vm.load(&wat::parse_str(LOOP).unwrap()).unwrap();
        let o = vm.run(&m, spec(u32::MAX, 123_456), 10_000);
        assert_eq!(o.status, Status::OutOfFuel);
        assert_eq!(o.instructions, 123_456);
        assert!(o.stdout.is_empty());
    }

    #[test]
    fn the_largest_budget_and_slice_run_normally() {
        let vm = Vm::new(Limits::default()).unwrap();
        let m = vm.load(&wat::parse_str(LOOP).unwrap()).unwrap();
        let reference = vm.run(&m, spec(10_000, 1 << 40), 1 << 20);
        let o = vm.run(&m, spec(10_000, u64::MAX), u64::MAX);
        assert!(o.success(), "{:?}", o.status);
        assert_eq!(o.instructions, reference.instructions);
    }

    #[test]
    fn unmetered_matches_output() {
        let u = UnmeteredVm::new(Limits::default()).unwrap();
        let m = u.compile(&wat::parse_str(LOOP).unwrap()).unwrap();
        let o = u.run(&m, &spec(1000, 0));
        assert!(o.success());
        assert_eq!(o.stdout, b"ok\n");
    }

    #[test]
    fn rejected_module_does_not_load() {
        let vm = Vm::new(Limits::default()).unwrap();
        let bad = wat::parse_str(r#"(module (import "env" "x" (func)) (func (export "_start")))"#)
            .unwrap();
        assert!(matches!(vm.load(&bad), Err(VmError::Rejected(_))));
        assert!(matches!(vm.machine_code(&bad), Err(VmError::Rejected(_))));
        let u = UnmeteredVm::new(Limits::default()).unwrap();
        assert!(matches!(u.machine_code(&bad), Err(VmError::Rejected(_))));
    }

    #[test]
    fn machine_code_is_an_elf_image_of_the_metered_module() {
        let bytes = wat::parse_str(LOOP).unwrap();
        let metered = Vm::new(Limits::default())
            .unwrap()
            .machine_code(&bytes)
            .unwrap();
        let plain = UnmeteredVm::new(Limits::default())
            .unwrap()
            .machine_code(&bytes)
            .unwrap();
        assert!(metered.starts_with(b"\x7fELF") && plain.starts_with(b"\x7fELF"));
        // The metered module has more functions (the check import's
        // trampoline, internal versions) and code to count: more bytes.
        assert!(
            metered.len() > plain.len(),
            "{} <= {}",
            metered.len(),
            plain.len()
        );
    }
}
