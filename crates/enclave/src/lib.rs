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
//! The key opens only for the exact job the requester submitted (HPKE `info`
//! over its binding), and a job the requester's own doing stops gets a
//! signed refusal instead.
//!
//! Layout, by request family: this file holds the interface (requests,
//! responses, errors) and registration; `mining.rs` the lottery and the
//! filler; `jobs.rs` confidential jobs and refusals; [`oracle`] the
//! oracle's TLS sessions and signed datagrams ([`Request::OracleOpen`],
//! `OracleData`, `OracleAbort`), with `http.rs` its bounded HTTP/1.1 parser;
//! [`contracts`] the key hierarchy of confidential contracts (root keys,
//! attested handovers, contract keys); `wire.rs` the socket transport for an enclave in its own process.
#![forbid(unsafe_code)]

pub mod contracts;
mod http;
mod jobs;
pub mod light;
mod mining;
pub mod oracle;
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
    /// Start fetching an oracle request ([`oracle`]).
    OracleOpen(Box<oracle::OracleTicket>),
    /// Bytes the server sent in an oracle session (`eof`: the socket closed).
    OracleData {
        session: u64,
        data: Vec<u8>,
        eof: bool,
    },
    /// The host gives up on an oracle session.
    OracleAbort { session: u64, why: oracle::Abort },
    /// Contract keys: the root key of a gatekeeper, handovers between
    /// attested enclaves, contract keys ([`contracts`]).
    Contracts(Box<contracts::ContractRequest>),
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
    /// What a [`Request::Mine`] found, and the work it ran to find it.
    Mined(MineResult, Ran),
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
    /// An oracle session's next step: bytes to send, or its signed datagram.
    OracleIo(oracle::OracleIo),
    /// An answer about contract keys.
    Contracts(contracts::ContractResponse),
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

/// The work one [`Request::Mine`] ran: what the host may count (a worker's
/// metrics) without trusting it for anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Ran {
    /// Whole slices run; each drew the lottery once.
    pub slices: u32,
    /// Metered instructions run (the slices, and the last partial slice of
    /// a task that finished).
    pub instructions: u64,
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
    #[error("oracle: {0}")]
    Oracle(String),
    #[error("contract keys: {0}")]
    Contracts(String),
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
            Error::Oracle(_) => 3008,
            Error::Contracts(_) => 3009,
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
    oracle: oracle::Oracle,
    keys: contracts::Keys,
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
            oracle: oracle::Oracle::default(),
            keys: contracts::Keys::default(),
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
            } => self
                .mine(&template, max_slices)
                .map(|(result, ran)| Response::Mined(result, ran)),
            Request::RunJob(ticket) => self.run_job(*ticket),
            Request::LoadJob { ticket, slice } => self.load_job(*ticket, slice),
            Request::RefuseLate(ticket) => Err(self.refusal(&ticket, RefusalReason::TooLittleTime)),
            Request::OracleOpen(ticket) => self
                .oracle
                .open(self.platform.as_mut(), *ticket)
                .map(Response::OracleIo),
            Request::OracleData { session, data, eof } => self
                .oracle
                .data(self.platform.as_mut(), session, &data, eof)
                .map(Response::OracleIo),
            Request::OracleAbort { session, why } => self
                .oracle
                .abort(self.platform.as_mut(), session, why)
                .map(Response::OracleIo),
            Request::Contracts(req) => self
                .keys
                .handle(self.platform.as_mut(), *req)
                .map(Response::Contracts),
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
}
