use proctor_primitives::{Hash, Timestamp};
use proctor_state::{
    Applied, Block, BlockEnv, BlockError, ChainParams, Header, PouwProof, State, checker_message,
    filler_input, tx_root,
};

/// How far ahead of the validator's clock a block timestamp may be.
pub const MAX_FUTURE_DRIFT_MS: u64 = 15_000;

/// Why a block is invalid. Each rule has its own variant and code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConsensusError {
    #[error("block's parent {got} is not the expected parent {expected}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("block timestamp {got} is not after its parent's {parent}")]
    TimestampNotIncreasing { parent: Timestamp, got: Timestamp },
    #[error("block timestamp {got} is more than {MAX_FUTURE_DRIFT_MS} ms ahead of now ({now})")]
    TimestampInFuture { now: Timestamp, got: Timestamp },
    #[error("block difficulty {got}, the chain expects {expected}")]
    WrongDifficulty { expected: u64, got: u64 },
    #[error("block has no proof of useful work")]
    MissingProof,
    #[error("proof is for template {proof}, but the header's template hashes to {header}")]
    TemplateMismatch { header: Hash, proof: Hash },
    #[error("enclave {0} is not registered")]
    UnregisteredEnclave(proctor_primitives::PublicKey),
    #[error("enclave registration expired at height {expired_at}")]
    RegistrationExpired { expired_at: u64 },
    #[error("enclave measurement {0} is no longer allowed")]
    MeasurementNotAllowed(Hash),
    #[error("module {0} is not a module the chain knows (filler task or a job's task)")]
    ModuleNotAllowed(Hash),
    #[error("checker attestation signature does not verify")]
    BadCheckerSignature,
    #[error("useful-work attestation signature does not verify")]
    BadWorkSignature,
    #[error("the proof's draw does not win the lottery at this difficulty")]
    LotteryNotWon,
    #[error("proof has an invalid slice length")]
    BadSlice,
    #[error("transactions root does not match the header")]
    TxRootMismatch,
    #[error("state root after replay is {computed}, header says {header}")]
    StateRootMismatch { header: Hash, computed: Hash },
    #[error(transparent)]
    Block(Box<BlockError>),
    #[error("enclave was deregistered and is unbonding: it can no longer mine")]
    EnclaveDeregistered,
    #[error("proof names job {0}, which is not assigned or running")]
    JobNotActive(u64),
    #[error("enclave {enclave} is not working on job {job} (not assigned, no key, or reported)")]
    NotAssignedToJob {
        job: u64,
        enclave: proctor_primitives::PublicKey,
    },
    #[error("the proof's task ran on input {got}, but the chain expects {expected}")]
    WorkInputMismatch { expected: Hash, got: Hash },
}

impl From<BlockError> for ConsensusError {
    fn from(e: BlockError) -> Self {
        ConsensusError::Block(Box::new(e))
    }
}

impl ConsensusError {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        use ConsensusError::*;
        match self {
            WrongParent { .. } => 2001,
            WrongHeight { .. } => 2002,
            TimestampNotIncreasing { .. } => 2003,
            TimestampInFuture { .. } => 2004,
            WrongDifficulty { .. } => 2005,
            MissingProof => 2006,
            TemplateMismatch { .. } => 2007,
            UnregisteredEnclave(_) => 2008,
            RegistrationExpired { .. } => 2009,
            MeasurementNotAllowed(_) => 2010,
            ModuleNotAllowed(_) => 2011,
            BadCheckerSignature => 2012,
            BadWorkSignature => 2013,
            LotteryNotWon => 2014,
            BadSlice => 2015,
            TxRootMismatch => 2016,
            StateRootMismatch { .. } => 2017,
            Block(_) => 2018,
            EnclaveDeregistered => 2019,
            JobNotActive(_) => 2020,
            NotAssignedToJob { .. } => 2021,
            WorkInputMismatch { .. } => 2022,
        }
    }
}

/// The lottery rule: `r` wins a slice of `n` instructions at difficulty `d`
/// iff `r * d < n * 2^128` (that is, `r < 2^128 * n / d`).
pub fn lottery_wins(r: u128, n: u64, d: u64) -> bool {
    // r * d as a 256-bit number; compare its high 128 bits with n.
    let d = d as u128;
    let lo = (r as u64 as u128) * d;
    let hi = (r >> 64) * d;
    let mid = hi + (lo >> 64); // cannot overflow: hi <= (2^64-1)^2
    (mid >> 64) < n as u128
}

/// The difficulty of the block after `parent`, given the time the parent took
/// (`parent_interval_ms`, None for the block after genesis).
///
/// `D' = D * 8T / (7T + t)` with t clamped to [T/4, 4T]: a damped step
/// toward the target interval T, at most +10.4% and -27.3% per block.
pub fn next_difficulty(
    params: &ChainParams,
    parent_difficulty: u64,
    parent_interval_ms: Option<u64>,
) -> u64 {
    let Some(actual) = parent_interval_ms else {
        return parent_difficulty;
    };
    let t = params.target_block_ms as u128;
    let actual = (actual as u128).clamp(t / 4, t * 4);
    let next = parent_difficulty as u128 * 8 * t / (7 * t + actual);
    (next.min(u64::MAX as u128) as u64).max(params.min_difficulty)
}

/// Checks the proof of useful work on `header` against the state at its
/// parent: first what needs no state ([`check_attestations`]), then the
/// enclave's registration at this height and the work the proof names.
pub fn validate_pouw(header: &Header, parent_state: &State) -> Result<(), ConsensusError> {
    check_attestations(header)?;
    let p = header.pouw.as_ref().ok_or(ConsensusError::MissingProof)?;
    let t = &header.template;
    let rec = parent_state
        .enclave(&p.enclave)
        .ok_or(ConsensusError::UnregisteredEnclave(p.enclave))?;
    if t.height > rec.expires_at {
        return Err(ConsensusError::RegistrationExpired {
            expired_at: rec.expires_at,
        });
    }
    if rec.unbonding_until.is_some() {
        return Err(ConsensusError::EnclaveDeregistered);
    }
    if !parent_state.measurement_allowed(&rec.measurement, t.height) {
        return Err(ConsensusError::MeasurementNotAllowed(rec.measurement));
    }
    validate_work_source(p, &t.parent, parent_state)
}

/// The checks of a proof that need no state: it is for this header's
/// template, both attestations verify under the key it names, and its draw
/// wins. Cheap; a node runs them on a block from a side branch before it
/// spends a replay of the branch on the rest.
pub fn check_attestations(header: &Header) -> Result<(), ConsensusError> {
    let p = header.pouw.as_ref().ok_or(ConsensusError::MissingProof)?;
    let t = &header.template;
    let th = t.hash();
    if p.template != th {
        return Err(ConsensusError::TemplateMismatch {
            header: th,
            proof: p.template,
        });
    }
    p.enclave
        .verify(&checker_message(&p.module), &p.checker_sig)
        .map_err(|_| ConsensusError::BadCheckerSignature)?;
    p.enclave
        .verify(&p.work_message(t.difficulty), &p.work_sig)
        .map_err(|_| ConsensusError::BadWorkSignature)?;
    if p.slice == 0 {
        return Err(ConsensusError::BadSlice);
    }
    if !lottery_wins(p.draw, p.slice, t.difficulty) {
        return Err(ConsensusError::LotteryNotWon);
    }
    Ok(())
}

/// What the winning task ran must be useful work the chain knows: the
/// genesis filler module on the input derived from the parent, or an active
/// job's module and input, run by an enclave the job is assigned to (its key
/// posted, its result not yet reported).
fn validate_work_source(p: &PouwProof, parent: &Hash, state: &State) -> Result<(), ConsensusError> {
    let expected_input = match p.job {
        None => {
            if p.module != state.params().filler_module {
                return Err(ConsensusError::ModuleNotAllowed(p.module));
            }
            Hash::of(&filler_input(parent))
        }
        Some(id) => {
            let job = state
                .job(id)
                .filter(|j| j.state.is_active())
                .ok_or(ConsensusError::JobNotActive(id))?;
            if p.module != job.spec.module {
                return Err(ConsensusError::ModuleNotAllowed(p.module));
            }
            let working = job
                .assignments
                .iter()
                .any(|a| a.worker == p.enclave && a.key.is_some() && a.report.is_none());
            if !working {
                return Err(ConsensusError::NotAssignedToJob {
                    job: id,
                    enclave: p.enclave,
                });
            }
            job.spec.input
        }
    };
    if p.input != expected_input {
        return Err(ConsensusError::WorkInputMismatch {
            expected: expected_input,
            got: p.input,
        });
    }
    Ok(())
}

/// What a validator knows about the block's ancestry.
pub struct Parent<'a> {
    pub header: &'a Header,
    pub state: &'a State,
    /// Interval the parent took after its own parent (None when the parent is genesis).
    pub interval_ms: Option<u64>,
}

/// Checks the header fields that do not need the proof or the transactions.
pub fn validate_header(
    parent: &Parent<'_>,
    header: &Header,
    now_ms: Option<Timestamp>,
) -> Result<(), ConsensusError> {
    let (pt, t) = (&parent.header.template, &header.template);
    let ph = parent.header.hash();
    if t.parent != ph {
        return Err(ConsensusError::WrongParent {
            expected: ph,
            got: t.parent,
        });
    }
    if t.height != pt.height + 1 {
        return Err(ConsensusError::WrongHeight {
            expected: pt.height + 1,
            got: t.height,
        });
    }
    if t.timestamp <= pt.timestamp {
        return Err(ConsensusError::TimestampNotIncreasing {
            parent: pt.timestamp,
            got: t.timestamp,
        });
    }
    if let Some(now) = now_ms
        && t.timestamp > now + MAX_FUTURE_DRIFT_MS
    {
        return Err(ConsensusError::TimestampInFuture {
            now,
            got: t.timestamp,
        });
    }
    let expected = next_difficulty(parent.state.params(), pt.difficulty, parent.interval_ms);
    if t.difficulty != expected {
        return Err(ConsensusError::WrongDifficulty {
            expected,
            got: t.difficulty,
        });
    }
    Ok(())
}

/// Fully validates `block` on top of `parent` and returns the new state.
pub fn validate_block(
    parent: &Parent<'_>,
    block: &Block,
    now_ms: Option<Timestamp>,
) -> Result<Applied, ConsensusError> {
    validate_block_known(parent, block, now_ms, &|_| false)
}

/// [`validate_block`] that skips the signature check of transactions for
/// which `known_tx` is true: ones whose exact signed bytes the caller has
/// verified before (a node's mempool holds most of a new block's
/// transactions). Every other rule is checked in full.
pub fn validate_block_known(
    parent: &Parent<'_>,
    block: &Block,
    now_ms: Option<Timestamp>,
    known_tx: &dyn Fn(&proctor_state::SignedTransaction) -> bool,
) -> Result<Applied, ConsensusError> {
    let h = &block.header;
    validate_header(parent, h, now_ms)?;
    validate_pouw(h, parent.state)?;
    if tx_root(&block.txs) != h.template.tx_root {
        return Err(ConsensusError::TxRootMismatch);
    }
    let env = BlockEnv {
        height: h.template.height,
        timestamp: h.template.timestamp,
        miner: h.template.miner,
    };
    let applied = parent.state.apply_block_known(&env, &block.txs, known_tx)?;
    if applied.state.root() != h.template.state_root {
        return Err(ConsensusError::StateRootMismatch {
            header: h.template.state_root,
            computed: applied.state.root(),
        });
    }
    Ok(applied)
}
