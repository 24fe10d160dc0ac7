//! The market's types: job specs and records, offers, reports, refusals,
//! the market's indices and parameters.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_market::settle::FeeSplit;
use proctor_market::{SCALE, reputation::Reputation};
use proctor_primitives::{Address, Amount, Hash, Height, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// Parameters of the compute market.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct MarketParams {
    /// The platform fee and its split.
    pub fees: FeeSplit,
    /// Jobs placed per block at most.
    pub max_placements_per_block: u32,
    pub max_replicas: u8,
    /// Times a job's silent workers are replaced before it settles on what it has.
    pub max_reassignments: u8,
    pub max_deadline_blocks: u64,
    /// Share of its stake a worker loses for a result outvoted by the majority.
    pub slash_wrong_bps: u32,
    /// Share of its stake a worker loses for not reporting by the deadline.
    pub slash_late_bps: u32,
    /// Kept from the escrow of a job that expires or is cancelled.
    pub expiry_fee: Amount,
}

impl Default for MarketParams {
    fn default() -> Self {
        MarketParams {
            fees: FeeSplit::default(),
            max_placements_per_block: 64,
            max_replicas: 7,
            max_reassignments: 3,
            max_deadline_blocks: 10_000,
            slash_wrong_bps: 1_000,
            slash_late_bps: 100,
            expiry_fee: Amount(10_000),
        }
    }
}

/// What a requester asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobSpec {
    /// Blob hash of the task module (WASI command).
    pub module: Hash,
    /// Blob hash of the encrypted input.
    pub input: Hash,
    /// Memory the task may use, in 64 KiB pages.
    pub memory_pages: u64,
    /// Instructions the task may use on each replica.
    pub fuel: u64,
    /// Most the requester pays per instruction.
    pub max_price: Amount,
    /// Workers that run it independently (1 to `max_replicas`).
    pub replicas: u8,
    /// Blocks each assignment has to report.
    pub deadline_blocks: u64,
    /// Blocks the blobs are kept after the job ends.
    pub retention_blocks: u64,
    /// The requester's X25519 key the output is encrypted to (HPKE).
    #[serde(with = "proctor_primitives::codec::hex_array32")]
    pub output_key: [u8; 32],
    /// Program arguments (at most 16, 1 KiB in all).
    pub args: Vec<String>,
}

impl JobSpec {
    /// H(spec): what the requester asked for, every field.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/job-spec", self)
    }
}

/// What binds a run to the job the requester submitted: the job id, the
/// hash of its whole spec and its submission time (the task's clock). The
/// requester wraps the content key with HPKE `info` over it, so the key
/// opens only for this exact job; the enclave signs it into its report and
/// the chain checks it against the job.
pub fn job_binding(job: u64, spec: &JobSpec, submitted_ms: u64) -> Hash {
    Hash::tagged(
        "proctor/job-binding",
        &[
            &job.to_le_bytes(),
            &spec.hash().0,
            &submitted_ms.to_le_bytes(),
        ],
    )
}

/// Where a job is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Assigned,
    Running,
    Settled,
    Failed,
    Expired,
    Cancelled,
    /// An assigned worker's enclave refused it, through the requester's
    /// doing (see [`RefusalReason`]).
    Refused,
}

impl JobState {
    /// Assigned or running: workers are on it, and its task is useful work.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Assigned | JobState::Running)
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Settled
                | JobState::Failed
                | JobState::Expired
                | JobState::Cancelled
                | JobState::Refused
        )
    }
}

/// A worker's result, signed by its enclave identity.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ResultReport {
    pub job: u64,
    pub worker: PublicKey,
    /// [`job_binding`] of the job the enclave ran: id, spec and clock.
    pub binding: Hash,
    pub module: Hash,
    pub input: Hash,
    /// Blob hash of the output, encrypted to the requester.
    pub output: Hash,
    pub instructions: u64,
    /// H(K || output): equal for equal outputs, reveals nothing without K.
    pub commitment: Hash,
}

impl ResultReport {
    /// What the enclave signs.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/job-report", self)
    }
}

/// One worker on a job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Assignment {
    pub worker: PublicKey,
    /// Its price per instruction when placed.
    pub price: Amount,
    /// Its offered speed when placed (instructions a second).
    pub speed: u64,
    pub assigned_at: Height,
    /// The content key wrapped to the worker's enclave (HPKE), once posted.
    #[serde(with = "proctor_primitives::codec::hex_opt")]
    pub key: Option<Vec<u8>>,
    /// The height its key was posted at: the worker's time to run the job
    /// starts there.
    pub keyed_at: Option<Height>,
    pub report: Option<ResultReport>,
}

/// A job on chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub requester: Address,
    pub spec: JobSpec,
    pub escrow: Amount,
    pub state: JobState,
    pub submitted_at: Height,
    /// Block timestamp of the submission: what the task's clock reads.
    pub submitted_ms: u64,
    /// Last height at which the current assignments may report.
    pub deadline: Height,
    pub assignments: Vec<Assignment>,
    /// Workers removed from the job (silent or outvoted); never placed on it again.
    pub failed: Vec<PublicKey>,
    pub reassignments: u8,
    /// Paid to workers (without fees), once settled.
    pub paid: Amount,
    /// Instructions of the accepted result.
    pub instructions: u64,
    /// The accepted output blob.
    pub output: Option<Hash>,
    /// Returned to the requester when the job ended.
    pub refund: Amount,
    pub ended_at: Option<Height>,
    /// Why it was refused, when it was.
    pub refusal: Option<RefusalReason>,
}

impl JobRecord {
    /// [`job_binding`] of this job.
    pub fn binding(&self) -> Hash {
        job_binding(self.id, &self.spec, self.submitted_ms)
    }
}

/// A worker's standing offer to run jobs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct WorkerOffer {
    pub identity: PublicKey,
    /// Price per instruction.
    pub price: Amount,
    pub memory_pages: u64,
    pub fuel: u64,
    /// Instructions per second it commits to run a job at: it is placed
    /// only on jobs whose fuel it can run before their deadline.
    pub speed: u64,
    /// Reserved by the jobs it runs now.
    pub used_memory_pages: u64,
    pub used_fuel: u64,
    pub reputation: Reputation,
}

impl WorkerOffer {
    /// Instructions this worker runs in `blocks` blocks of `block_ms`.
    pub fn instructions_in(&self, blocks: u64, block_ms: u64) -> u128 {
        instructions_in(self.speed, blocks, block_ms)
    }
}

/// Instructions run at `speed` a second in `blocks` blocks of `block_ms`.
pub fn instructions_in(speed: u64, blocks: u64, block_ms: u64) -> u128 {
    u128::from(speed) * u128::from(blocks) * u128::from(block_ms) / 1_000
}

/// Why a worker's enclave refuses an assigned job: each is the requester's
/// doing, established by the enclave on the exact job (its binding) and the
/// exact key posted on chain, so a host cannot blame the requester for what
/// it altered.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The module (its bytes hash to the spec's) fails the checker.
    ModuleRejected,
    /// The posted content key does not open for this job in this enclave.
    KeyDoesNotOpen,
    /// The input (its bytes hash to the spec's) does not decrypt with the key.
    InputUndecryptable,
    /// The key came too late: at the worker's offered speed, the fuel cannot
    /// run between the block the key was posted in and the deadline (the
    /// chain checks this itself).
    TooLittleTime,
}

/// An enclave's refusal of a job, signed by its identity.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobRefusal {
    pub job: u64,
    pub worker: PublicKey,
    /// [`job_binding`] of the job the enclave was handed.
    pub binding: Hash,
    /// Hash of the wrapped content key it was handed.
    pub key: Hash,
    pub reason: RefusalReason,
}

impl JobRefusal {
    /// What the enclave signs.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/job-refusal", self)
    }
}

/// The market's indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MarketIndex {
    pub next_job: u64,
    /// Jobs waiting for workers, oldest first.
    pub pending: Vec<u64>,
    /// Jobs assigned or running.
    pub active: Vec<u64>,
    /// Workers with an offer.
    pub workers: Vec<PublicKey>,
}

/// Resources a requester's running jobs hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RequesterUsage {
    pub memory_pages: u64,
    pub fuel: u64,
    /// The requester's own record (seed 002's demand side): settled jobs
    /// count as completed deals with the fee paid, jobs left to expire for
    /// want of a key as failed ones.
    pub reputation: Reputation,
}

impl RequesterUsage {
    /// The requester's weight in the fair share (SCALE = 1.0 for a new
    /// requester): 1 + (reputation − a newcomer's reputation), within [0.5, 2].
    pub fn weight(&self) -> u64 {
        let base = Reputation::default().score();
        (SCALE + self.reputation.score())
            .saturating_sub(base)
            .clamp(SCALE / 2, 2 * SCALE)
    }
}

/// A content key wrapped to one assigned enclave.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WrappedKey {
    pub worker: PublicKey,
    pub key: Vec<u8>,
}

/// The market's calls.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// The operator offers an enclave's capacity to the market at `price`
    /// per instruction (or updates the offer).
    SetOffer {
        identity: PublicKey,
        price: Amount,
        memory_pages: u64,
        fuel: u64,
        /// Instructions per second the worker commits to run a job at.
        speed: u64,
    },
    /// Claims a task module: its owner receives the application provider's
    /// share of the fees of jobs that run it.
    RegisterModule { module: Hash },
    /// Submits a job, escrowing its maximum cost (which must equal
    /// [`proctor_market::settle::escrow`] of the spec).
    SubmitJob { spec: JobSpec, escrow: Amount },
    /// The requester releases the job's content key to its assigned enclaves.
    PostKeys { job: u64, keys: Vec<WrappedKey> },
    /// A worker's result, signed by its enclave.
    SubmitResult {
        report: ResultReport,
        signature: Signature,
    },
    /// A worker's enclave-signed refusal of an assigned job it cannot run
    /// through the requester's fault (the module fails the checker, the
    /// posted key does not open, the input does not decrypt).
    RefuseJob {
        refusal: JobRefusal,
        signature: Signature,
    },
    /// The requester withdraws a job before any key was released.
    CancelJob { job: u64 },
}

/// The market's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    OfferSet {
        identity: PublicKey,
        price: Amount,
    },
    ModuleRegistered {
        module: Hash,
        owner: Address,
    },
    JobSubmitted {
        job: u64,
        requester: Address,
        escrow: Amount,
    },
    JobAssigned {
        job: u64,
        workers: Vec<PublicKey>,
        deadline: Height,
    },
    JobKeysPosted {
        job: u64,
        running: bool,
    },
    JobResult {
        job: u64,
        worker: PublicKey,
    },
    /// An assigned worker's enclave refused the job, with the reason.
    JobRefused {
        job: u64,
        worker: PublicKey,
        reason: RefusalReason,
    },
    JobRequeued {
        job: u64,
        missing: u8,
    },
    JobEnded {
        job: u64,
        state: JobState,
        paid: Amount,
        refund: Amount,
    },
    /// A worker's pay for a settled job and its share of the platform fee.
    JobPaid {
        job: u64,
        worker: PublicKey,
        operator: Address,
        pay: Amount,
        fee_share: Amount,
    },
    /// The rest of a settled job's platform fee.
    JobFees {
        job: u64,
        app: Address,
        app_fee: Amount,
        treasury: Amount,
    },
    WorkerSlashed {
        identity: PublicKey,
        amount: Amount,
        reason: String,
    },
}

/// The market's records.
// A record is decoded, read and dropped (or re-encoded): never held in
// bulk, so boxing the job would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Job(JobRecord),
    Offer(WorkerOffer),
    Index(MarketIndex),
    /// A task module's owner (the application provider).
    Module(Address),
    Usage(RequesterUsage),
}

/// The market's errors: codes 1130-1199.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("job {0} does not exist")]
    JobNotFound(u64),
    #[error("only the job's requester may do this")]
    NotRequester,
    #[error("invalid job: {0}")]
    BadJob(String),
    #[error(
        "escrow {got} does not match the job's maximum cost {expected} (fuel x max price x replicas, plus the platform fee)"
    )]
    EscrowMismatch { expected: Amount, got: Amount },
    #[error("job {job} is {state:?}, which does not allow this")]
    JobState { job: u64, state: JobState },
    #[error("worker {0} is not assigned to this job")]
    NotAssigned(PublicKey),
    #[error("invalid result report: {0}")]
    BadReport(String),
    #[error("this worker already reported a result for the job")]
    AlreadyReported,
    #[error("the module is already registered to {0}")]
    ModuleOwned(Address),
    #[error("enclave {0} is assigned to an open job: its stake answers for it until the job ends")]
    WorkerBusy(PublicKey),
    #[error(
        "{fuel} instructions cannot run in the deadline: the slowest offered worker runs {capacity} in it (raise the deadline or lower the fuel)"
    )]
    FuelBeyondDeadline { fuel: u64, capacity: u128 },
    #[error("invalid refusal: {0}")]
    BadRefusal(String),
}

impl Error {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            Error::JobNotFound(_) => 1130,
            Error::NotRequester => 1131,
            Error::BadJob(_) => 1132,
            Error::EscrowMismatch { .. } => 1133,
            Error::JobState { .. } => 1134,
            Error::NotAssigned(_) => 1135,
            Error::BadReport(_) => 1136,
            Error::AlreadyReported => 1137,
            Error::ModuleOwned(_) => 1138,
            Error::WorkerBusy(_) => 1139,
            Error::FuelBeyondDeadline { .. } => 1140,
            Error::BadRefusal(_) => 1141,
        }
    }
}
