//! The enclave: proctor's trusted computing base, kept small.
//!
//! It owns the platform (identity key, sealing, RNG), the checker and the
//! metered engine, and it runs the PoUW lottery. It does no I/O of its own:
//! the untrusted host pushes module bytes, inputs and block templates in and
//! takes attestations out, through one narrow interface, [`Request`] ->
//! [`Response`] (borsh-encoded when the enclave runs as its own process).
//!
//! Mining (seed 000 §3.3-3.4): the host loads a task ([`Request::LoadTask`]);
//! the enclave checks the module itself (it hashes the bytes it was given, so
//! the host cannot lie about M) and signs the checker attestation. Then the
//! host calls [`Request::Mine`] with the current block template; the enclave
//! hashes it itself (T) and reads the difficulty D from it. After each slice
//! of n instructions the enclave draws r from its own RNG and wins iff
//! `r * D < n * 2^128`; on a win it signs the useful-work attestation over
//! (T, D, M, job, input, n, counter, instructions, r) and returns the
//! [`PouwProof`]. A job keeps running across calls and templates: useful work
//! is never thrown away when a new block arrives. The filler task
//! ([`TaskInput::FromParent`]) runs on an input the chain fixes,
//! [`proctor_state::filler_input`] of the template's parent: the enclave
//! restarts it when the parent changes, so no host picks what it runs on.
//!
//! The host cannot forge a win (it never sees the identity key), cannot
//! grind (one draw per slice, bound to the T current at that slice) and cannot
//! make the enclave sign for a module that failed the checker.
//!
//! Jobs ([`Request::RunJob`]): the host brings the module and the *encrypted*
//! input it fetched, and the content key K wrapped (HPKE) to this enclave's
//! registered encryption key. The enclave checks both blobs against the
//! job's hashes, unwraps K, decrypts the input, runs the task metered,
//! seals the output to the requester's key, and signs a
//! [`ResultReport`] with the instruction count and the commitment
//! `H(K || output)`. Plaintext input and output exist only inside this call.
#![forbid(unsafe_code)]

pub mod wire;

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_consensus::lottery_wins;
use proctor_primitives::{Address, EncryptionKey, Hash, PublicKey};
use proctor_state::jobs::{JobRefusal, JobSpec, RefusalReason, ResultReport, job_binding};
use proctor_state::{PouwProof, Template, checker_message, filler_input};
use proctor_tee::envelope;
use proctor_tee::{Platform, Quote, TeeKind, registration_report_data};
use proctor_vm::{Limits, Status, Step, Task, TaskSpec, Vm};

/// What the host may ask of the enclave.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// Identity, measurement and TEE kind.
    Info,
    /// A quote binding the identity and encryption keys to the operator's
    /// account and the chain with this genesis hash, for a registration
    /// valid until `expires_at`.
    RegistrationQuote {
        operator: Address,
        genesis: Hash,
        expires_at: u64,
    },
    /// Check `module` and start running it on `input`.
    LoadTask {
        module: Vec<u8>,
        input: TaskInput,
        args: Vec<String>,
        clock_ns: u64,
        fuel: u64,
        slice: u64,
    },
    /// Run up to `max_slices` slices, drawing the lottery for `template`
    /// (hashed here, its difficulty read from it).
    Mine {
        template: Box<Template>,
        max_slices: u32,
    },
    /// Run a confidential job to completion.
    RunJob(Box<JobTicket>),
    /// Make a confidential job the mining task (see [`MineResult::JobDone`]).
    LoadJob { ticket: Box<JobTicket>, slice: u64 },
    /// Sign a refusal of a job whose key came too late to run its fuel
    /// before the deadline ([`RefusalReason::TooLittleTime`]; the chain
    /// checks the timing itself, from the block the key was posted in).
    RefuseLate(Box<JobTicket>),
}

/// What a loaded task reads on stdin.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum TaskInput {
    /// These bytes (benchmarks, tests; the chain accepts no block won this
    /// way, since its input is the host's choice).
    Given(Vec<u8>),
    /// The filler's input for mining: [`proctor_state::filler_input`] of the
    /// parent of the template being mined, the task restarted whenever it
    /// changes.
    FromParent,
}

/// Everything the enclave needs to run one job, as the host hands it over.
/// The enclave believes none of it: the module and input must hash to the
/// spec's, and the content key opens only under HPKE `info` over
/// [`job_binding`] of (job, spec, submitted_ms), which the requester used
/// when it wrapped the key. A host that alters any field, the output key,
/// the arguments, the fuel, the module, the clock, gets a refusal.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct JobTicket {
    pub job: u64,
    /// The job's whole spec, as on chain.
    pub spec: JobSpec,
    /// The job's submission time (its task's clock), as on chain.
    pub submitted_ms: u64,
    /// The module's bytes (must hash to `spec.module`).
    pub module: Vec<u8>,
    /// The input, encrypted under the content key (must hash to `spec.input`).
    pub input: Vec<u8>,
    /// The content key, HPKE-sealed to this enclave for this job.
    pub wrapped_key: Vec<u8>,
}

/// The enclave's answers.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum Response {
    Info(EnclaveInfo),
    Quote(Quote),
    /// The module passed the checker; the signature is the checker attestation.
    Loaded {
        module: Hash,
        checker_sig: proctor_primitives::Signature,
    },
    Mined(MineResult),
    /// A job ran: its signed report and the output sealed to the requester.
    JobDone {
        report: ResultReport,
        signature: proctor_primitives::Signature,
        output: Vec<u8>,
    },
    Error {
        code: i32,
        message: String,
    },
    /// The job cannot run through the requester's doing: the refusal,
    /// signed by the enclave identity, for the chain (`RefuseJob`).
    Refused {
        refusal: JobRefusal,
        signature: proctor_primitives::Signature,
    },
}

/// Public facts about the enclave.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct EnclaveInfo {
    pub kind: TeeKind,
    pub measurement: Hash,
    pub identity: PublicKey,
    /// X25519 key that data for this enclave is encrypted to.
    pub encryption_key: EncryptionKey,
}

/// The outcome of a [`Request::Mine`].
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum MineResult {
    /// A slice won: here is the proof. The task continues on the next call.
    Won(Box<PouwProof>),
    /// All slices ran without a win.
    NoWin { slices: u32 },
    /// The job being mined finished: its signed report and sealed output.
    JobDone(Box<JobResult>),
    /// The task finished; load another to keep mining.
    TaskDone {
        instructions: u64,
        exit_code: Option<i32>,
        output_hash: Hash,
    },
}

/// A finished job, as [`Response::JobDone`] carries it.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct JobResult {
    pub report: ResultReport,
    pub signature: proctor_primitives::Signature,
    pub output: Vec<u8>,
}

/// Errors of the enclave API, with stable codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("module rejected: {0}")]
    Module(#[from] proctor_vm::VmError),
    #[error("no task is loaded")]
    NoTask,
    #[error("slice length must be positive")]
    BadSlice,
    #[error("platform: {0}")]
    Platform(#[from] proctor_tee::Error),
    #[error("job refused: {0}")]
    Job(String),
    #[error(
        "this build has no test faults (they exist only in test builds, feature `test-faults`)"
    )]
    NoTestFaults,
    #[error("job refused: {reason:?}")]
    Refused {
        reason: RefusalReason,
        refusal: Box<JobRefusal>,
        signature: proctor_primitives::Signature,
    },
}

impl Error {
    pub fn code(&self) -> i32 {
        match self {
            Error::Module(_) => 3001,
            Error::NoTask => 3002,
            Error::BadSlice => 3003,
            Error::Platform(_) => 3004,
            Error::Job(_) => 3005,
            Error::NoTestFaults => 3006,
            Error::Refused { .. } => 3007,
        }
    }
}

struct Running {
    module: Hash,
    task: Task,
    slice: u64,
    counter: u64,
    checker_sig: proctor_primitives::Signature,
    /// Hash of the input the task runs on.
    input: Hash,
    /// Set when the task is a job: what finishing it needs.
    job: Option<JobContext>,
    /// Set for a filler on [`TaskInput::FromParent`]: how to restart it,
    /// and the parent its current input comes from.
    filler: Option<Filler>,
}

/// A filler task that follows the chain's parent.
struct Filler {
    loaded: proctor_vm::Loaded,
    spec: TaskSpec,
    parent: Option<Hash>,
}

/// A job being mined: its key and where its output goes (enclave memory only).
struct JobContext {
    job: u64,
    binding: Hash,
    key: [u8; 32],
    output_key: EncryptionKey,
    module: Hash,
    input: Hash,
}

/// The enclave object. Secrets stay inside its platform.
pub struct Enclave {
    platform: Box<dyn Platform>,
    vm: Vm,
    running: Option<Running>,
    /// Test-only fault injection; absent from builds without `test-faults`.
    #[cfg(feature = "test-faults")]
    corrupt_results: bool,
}

impl Enclave {
    pub fn new(platform: Box<dyn Platform>) -> Result<Self, Error> {
        Ok(Enclave {
            platform,
            vm: Vm::new(Limits::default())?,
            running: None,
            #[cfg(feature = "test-faults")]
            corrupt_results: false,
        })
    }

    /// Serves one request (the whole host-facing interface).
    pub fn handle(&mut self, req: Request) -> Response {
        let result = match req {
            Request::Info => Ok(Response::Info(self.info())),
            Request::RegistrationQuote {
                operator,
                genesis,
                expires_at,
            } => {
                let p = &self.platform;
                let rd = registration_report_data(
                    &p.identity(),
                    &p.encryption_key(),
                    &operator,
                    &genesis,
                    expires_at,
                );
                self.platform
                    .quote(&rd)
                    .map(Response::Quote)
                    .map_err(Error::from)
            }
            Request::LoadTask {
                module,
                input,
                args,
                clock_ns,
                fuel,
                slice,
            } => self.load_task(&module, input, args, clock_ns, fuel, slice),
            Request::Mine {
                template,
                max_slices,
            } => self.mine(&template, max_slices).map(Response::Mined),
            Request::RunJob(ticket) => self.run_job(*ticket),
            Request::LoadJob { ticket, slice } => self.load_job(*ticket, slice),
            Request::RefuseLate(ticket) => Err(self.refusal(&ticket, RefusalReason::TooLittleTime)),
        };
        result.unwrap_or_else(|e| match e {
            Error::Refused {
                refusal, signature, ..
            } => Response::Refused {
                refusal: *refusal,
                signature,
            },
            e => Response::Error {
                code: e.code(),
                message: e.to_string(),
            },
        })
    }

    pub fn info(&self) -> EnclaveInfo {
        EnclaveInfo {
            kind: self.platform.kind(),
            measurement: self.platform.measurement(),
            identity: self.platform.identity(),
            encryption_key: self.platform.encryption_key(),
        }
    }

    /// Checks a job's blobs, unwraps its key and decrypts its input: what is
    /// needed to run it, with the plaintext only in enclave memory.
    fn open_job(
        &self,
        t: JobTicket,
    ) -> Result<(JobContext, Vm, proctor_vm::Loaded, TaskSpec), Error> {
        let refuse = |m: String| Error::Job(m);
        let spec = &t.spec;
        if Hash::of(&t.module) != spec.module {
            return Err(refuse(
                "module bytes do not match the job's module hash".into(),
            ));
        }
        if Hash::of(&t.input) != spec.input {
            return Err(refuse(
                "input bytes do not match the job's input hash".into(),
            ));
        }
        let binding = job_binding(t.job, spec, t.submitted_ms);
        // From here on, what fails is the requester's doing, on the job the
        // enclave was handed (its binding) and the key it was handed: the
        // enclave signs a refusal, which the chain accepts only if both are
        // the job's and the posted key (a host that altered either gets
        // nothing it can use).
        let signed = |reason| self.refusal(&t, reason);
        let k: [u8; 32] = self
            .platform
            .open_envelope(&envelope::key_info(&binding), &t.wrapped_key)
            .ok()
            .and_then(|key| key.try_into().ok())
            .ok_or_else(|| signed(RefusalReason::KeyDoesNotOpen))?;
        let input = envelope::decrypt(&k, &t.input)
            .map_err(|_| signed(RefusalReason::InputUndecryptable))?;
        let limits = Limits {
            max_memory_pages: spec.memory_pages.min(Limits::default().max_memory_pages),
            ..Limits::default()
        };
        let vm = Vm::new(limits)?;
        let loaded = vm
            .load(&t.module)
            .map_err(|_| signed(RefusalReason::ModuleRejected))?;
        let task = TaskSpec {
            args: spec.args.clone(),
            input,
            fuel: spec.fuel,
            clock_ns: t.submitted_ms.saturating_mul(1_000_000),
            random_seed: TaskSpec::job_seed(t.job),
        };
        let ctx = JobContext {
            job: t.job,
            binding,
            key: k,
            output_key: EncryptionKey(spec.output_key),
            module: spec.module,
            input: spec.input,
        };
        Ok((ctx, vm, loaded, task))
    }

    /// A refusal of the job `t` names (its binding and wrapped key), signed
    /// by this enclave's identity.
    fn refusal(&self, t: &JobTicket, reason: RefusalReason) -> Error {
        let refusal = JobRefusal {
            job: t.job,
            worker: self.platform.identity(),
            binding: job_binding(t.job, &t.spec, t.submitted_ms),
            key: Hash::of(&t.wrapped_key),
            reason,
        };
        let signature = self.platform.sign(&refusal.hash().0);
        Error::Refused {
            reason,
            refusal: Box::new(refusal),
            signature,
        }
    }

    /// Seals a finished job's output to the requester and signs its report.
    fn finish_job(
        &mut self,
        ctx: &JobContext,
        output: Vec<u8>,
        instructions: u64,
    ) -> Result<Response, Error> {
        #[cfg(feature = "test-faults")]
        let output = match self.corrupt_results {
            true => [output, b" (corrupted)".to_vec()].concat(),
            false => output,
        };
        let commitment = envelope::commitment(&ctx.key, &output);
        let mut seed = [0u8; 32];
        self.platform.random(&mut seed);
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
        let sealed = envelope::seal_to(
            &ctx.output_key,
            &envelope::output_info(ctx.job),
            &output,
            &mut rng,
        )
        .map_err(|e| Error::Job(format!("output key: {e}")))?;
        let report = ResultReport {
            job: ctx.job,
            worker: self.platform.identity(),
            binding: ctx.binding,
            module: ctx.module,
            input: ctx.input,
            output: Hash::of(&sealed),
            instructions,
            commitment,
        };
        let signature = self.platform.sign(&report.hash().0);
        Ok(Response::JobDone {
            report,
            signature,
            output: sealed,
        })
    }

    /// Runs a job to completion at once (no lottery).
    fn run_job(&mut self, t: JobTicket) -> Result<Response, Error> {
        let (ctx, vm, loaded, spec) = self.open_job(t)?;
        let fuel = spec.fuel;
        let out = vm.run(&loaded, spec, fuel.max(1));
        self.finish_job(&ctx, out.stdout, out.instructions)
    }

    /// Starts a job as the mining task: [`Request::Mine`] then runs it in
    /// slices with a lottery draw after each, as for the filler task, and
    /// returns [`MineResult::JobDone`] when it finishes. The job is the
    /// useful work that secures the chain.
    fn load_job(&mut self, t: JobTicket, slice: u64) -> Result<Response, Error> {
        if slice == 0 {
            return Err(Error::BadSlice);
        }
        let (ctx, vm, loaded, spec) = self.open_job(t)?;
        let task = vm.start(&loaded, spec, slice);
        let input = ctx.input;
        Ok(self.start_mining(loaded.verdict.module, task, slice, input, Some(ctx)))
    }

    /// Makes `task` (module `m`, passed by the checker) the mining task and
    /// signs the checker attestation.
    fn start_mining(
        &mut self,
        m: Hash,
        task: Task,
        slice: u64,
        input: Hash,
        job: Option<JobContext>,
    ) -> Response {
        let checker_sig = self.platform.sign(&checker_message(&m));
        self.running = Some(Running {
            module: m,
            task,
            slice,
            counter: 0,
            checker_sig,
            input,
            job,
            filler: None,
        });
        Response::Loaded {
            module: m,
            checker_sig,
        }
    }

    /// Test-only fault injection: every job output is altered before it is
    /// committed to and sealed, as a broken or malicious enclave would. Used
    /// to test that replication outvotes and slashes such a worker.
    ///
    /// The fault exists only in builds with the `test-faults` feature (turned
    /// on by the test builds' dev-dependencies, never by `cargo build`); other
    /// builds refuse with [`Error::NoTestFaults`] and stay honest.
    pub fn corrupt_results_for_testing(&mut self, on: bool) -> Result<(), Error> {
        #[cfg(feature = "test-faults")]
        {
            self.corrupt_results = on;
            Ok(())
        }
        #[cfg(not(feature = "test-faults"))]
        {
            let _ = on;
            Err(Error::NoTestFaults)
        }
    }

    fn load_task(
        &mut self,
        module: &[u8],
        input: TaskInput,
        args: Vec<String>,
        clock_ns: u64,
        fuel: u64,
        slice: u64,
    ) -> Result<Response, Error> {
        if slice == 0 {
            return Err(Error::BadSlice);
        }
        let loaded = self.vm.load(module)?;
        let m = loaded.verdict.module;
        let mut spec = TaskSpec {
            args,
            input: Vec::new(),
            fuel,
            clock_ns,
            random_seed: Hash::ZERO,
        };
        let (bytes, follows_parent) = match input {
            TaskInput::Given(bytes) => (bytes, false),
            // Replaced by the first template's input before any slice runs.
            TaskInput::FromParent => (filler_input(&Hash::ZERO).to_vec(), true),
        };
        let input_hash = Hash::of(&bytes);
        // Not a job: the random stream is keyed by module and input.
        spec.random_seed = TaskSpec::task_seed(&m, &bytes);
        spec.input = bytes;
        let task = self.vm.start(&loaded, spec.clone(), slice);
        let response = self.start_mining(m, task, slice, input_hash, None);
        if follows_parent && let Some(run) = self.running.as_mut() {
            run.filler = Some(Filler {
                loaded,
                spec,
                parent: None,
            });
        }
        Ok(response)
    }

    /// Points a parent-following filler at `parent`: restarts it on that
    /// parent's input if it runs on another's.
    fn follow_parent(vm: &Vm, run: &mut Running, parent: Hash) {
        let Some(f) = run.filler.as_mut() else {
            return;
        };
        if f.parent == Some(parent) {
            return;
        }
        let bytes = filler_input(&parent).to_vec();
        let mut spec = f.spec.clone();
        spec.random_seed = TaskSpec::task_seed(&run.module, &bytes);
        run.input = Hash::of(&bytes);
        spec.input = bytes;
        run.task = vm.start(&f.loaded, spec, run.slice);
        run.counter = 0;
        f.parent = Some(parent);
    }

    fn mine(&mut self, template: &Template, max_slices: u32) -> Result<MineResult, Error> {
        let run = self.running.as_mut().ok_or(Error::NoTask)?;
        Self::follow_parent(&self.vm, run, template.parent);
        let (t, difficulty) = (template.hash(), template.difficulty);
        for _ in 0..max_slices {
            match run.task.step() {
                Step::Slice => {
                    run.counter += 1;
                    // Seed 000 §3.3: one draw per slice of n instructions.
                    let r = self.platform.random_u128();
                    if lottery_wins(r, run.slice, difficulty) {
                        let mut proof = PouwProof {
                            enclave: self.platform.identity(),
                            template: t,
                            module: run.module,
                            job: run.job.as_ref().map(|j| j.job),
                            input: run.input,
                            slice: run.slice,
                            counter: run.counter,
                            instructions: run.counter * run.slice,
                            draw: r,
                            checker_sig: run.checker_sig,
                            work_sig: run.checker_sig,
                        };
                        proof.work_sig = self.platform.sign(&proof.work_message(difficulty));
                        return Ok(MineResult::Won(Box::new(proof)));
                    }
                }
                Step::Done(outcome) => {
                    let finished = self.running.take().ok_or(Error::NoTask)?;
                    if let Some(ctx) = finished.job {
                        let done = self.finish_job(&ctx, outcome.stdout, outcome.instructions)?;
                        let Response::JobDone {
                            report,
                            signature,
                            output,
                        } = done
                        else {
                            unreachable!("finish_job answers JobDone")
                        };
                        return Ok(MineResult::JobDone(Box::new(JobResult {
                            report,
                            signature,
                            output,
                        })));
                    }
                    let exit_code = match outcome.status {
                        Status::Exited(c) => Some(c),
                        _ => None,
                    };
                    return Ok(MineResult::TaskDone {
                        instructions: outcome.instructions,
                        exit_code,
                        output_hash: Hash::of(&outcome.stdout),
                    });
                }
            }
        }
        Ok(MineResult::NoWin { slices: max_slices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform};

    const FILLER: &[u8] = include_bytes!("../../../examples/tasks/filler.wasm");

    fn enclave(name: &str) -> Enclave {
        let dir =
            std::env::temp_dir().join(format!("proctor-enclave-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Enclave::new(Box::new(
            SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[1; 32])).unwrap(),
        ))
        .unwrap()
    }

    fn template(parent: u8, difficulty: u64) -> Box<Template> {
        Box::new(Template {
            parent: Hash([parent; 32]),
            height: 5,
            timestamp: 6,
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            difficulty,
            miner: Address([1; 20]),
        })
    }

    fn load(e: &mut Enclave, rounds: &str, slice: u64) -> Hash {
        load_on(e, rounds, slice, TaskInput::Given(b"seed".to_vec()))
    }

    fn load_on(e: &mut Enclave, rounds: &str, slice: u64, input: TaskInput) -> Hash {
        match e.handle(Request::LoadTask {
            module: FILLER.to_vec(),
            input,
            args: vec![rounds.into()],
            clock_ns: 0,
            fuel: u64::MAX / 4,
            slice,
        }) {
            Response::Loaded {
                module,
                checker_sig,
            } => {
                assert!(
                    e.info()
                        .identity
                        .verify(&checker_message(&module), &checker_sig)
                        .is_ok()
                );
                module
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wins_carry_valid_attestations() {
        let mut e = enclave("win");
        let m = load(&mut e, "100000", 10_000);
        assert_eq!(m, Hash::of(FILLER));
        // Difficulty = slice: every slice wins.
        let Response::Mined(MineResult::Won(p)) = e.handle(Request::Mine {
            template: template(7, 10_000),
            max_slices: 10,
        }) else {
            panic!("expected a win")
        };
        let id = e.info().identity;
        assert_eq!(p.enclave, id);
        assert_eq!(p.template, template(7, 10_000).hash());
        assert_eq!(p.counter, 1);
        assert_eq!((p.job, p.input), (None, Hash::of(b"seed")));
        assert!(id.verify(&p.work_message(10_000), &p.work_sig).is_ok());
        // A proof altered in any field the attestation covers fails it.
        for alter in [
            (|p: &mut PouwProof| p.input = Hash([1; 32])) as fn(&mut PouwProof),
            |p| p.job = Some(0),
            |p| p.module = Hash([2; 32]),
            |p| p.instructions += 1,
        ] {
            let mut forged = (*p).clone();
            alter(&mut forged);
            assert!(
                id.verify(&forged.work_message(10_000), &p.work_sig)
                    .is_err()
            );
        }
        let t = template(7, u64::MAX);
        // Impossible difficulty: no win, and the task eventually finishes with its exact count.
        let mut total_slices = 0u64;
        loop {
            match e.handle(Request::Mine {
                template: t.clone(),
                max_slices: 1000,
            }) {
                Response::Mined(MineResult::NoWin { slices }) => total_slices += slices as u64,
                Response::Mined(MineResult::TaskDone {
                    instructions,
                    exit_code,
                    ..
                }) => {
                    assert_eq!(exit_code, Some(0));
                    assert!(instructions > 100_000 * 1000, "{instructions}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(total_slices > 0);
        assert!(matches!(
            e.handle(Request::Mine {
                template: template(7, 1),
                max_slices: 1
            }),
            Response::Error { code: 3002, .. }
        ));
    }

    /// The host cannot pick the filler's input: it is derived from the
    /// template's parent, and a new parent restarts the task on its input.
    #[test]
    fn the_filler_runs_on_the_input_the_parent_fixes() {
        let mut e = enclave("parent");
        load_on(&mut e, "100000", 10_000, TaskInput::FromParent);
        let win = |e: &mut Enclave, parent: u8| match e.handle(Request::Mine {
            template: template(parent, 10_000),
            max_slices: 1,
        }) {
            Response::Mined(MineResult::Won(p)) => p,
            other => panic!("{other:?}"),
        };
        let expect = |parent: u8| Hash::of(&filler_input(&Hash([parent; 32])));
        let a = win(&mut e, 1);
        assert_eq!((a.input, a.counter), (expect(1), 1));
        let a2 = win(&mut e, 1);
        assert_eq!((a2.input, a2.counter), (expect(1), 2));
        // A new block: the task starts again on the new parent's input.
        let b = win(&mut e, 2);
        assert_eq!((b.input, b.counter), (expect(2), 1));
        assert_ne!(expect(1), expect(2));
    }

    #[test]
    fn rejected_module_gets_no_checker_attestation() {
        let mut e = enclave("reject");
        let r = e.handle(Request::LoadTask {
            module: b"\0asm garbage".to_vec(),
            input: TaskInput::Given(vec![]),
            args: vec![],
            clock_ns: 0,
            fuel: 1,
            slice: 1,
        });
        assert!(matches!(r, Response::Error { code: 3001, .. }), "{r:?}");
    }

    #[test]
    fn filler_output_matches_native_sha256_chain() {
        // 1000 rounds of SHA-256 over "hello", computed natively by the C build
        // (examples/tasks/build.sh) and recorded in examples/tasks/expected/.
        let expected = include_str!("../../../examples/tasks/expected/filler.1000.out").trim();
        let vm = Vm::new(Limits::default()).unwrap();
        let l = vm.load(FILLER).unwrap();
        let o = vm.run(
            &l,
            TaskSpec {
                args: vec!["1000".into()],
                input: b"hello".to_vec(),
                fuel: u64::MAX / 4,
                ..TaskSpec::default()
            },
            100_000,
        );
        assert!(
            o.success(),
            "{:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), expected);
    }
}
