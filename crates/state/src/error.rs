//! Errors of the state machine, each with a stable numeric code (they cross
//! the RPC boundary, and clients match on the code).

use proctor_primitives::{Address, Amount, Hash, PublicKey};

/// Why a transaction is invalid.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    #[error("signature does not verify for the signer's key")]
    BadSignature,
    #[error("transaction is for chain {got}, this chain is {expected}")]
    WrongChain { expected: Hash, got: Hash },
    #[error("nonce {got} already used: the account's next nonce is {expected}")]
    NonceReplayed { expected: u64, got: u64 },
    #[error(
        "nonce {got} is ahead of the account's next nonce {expected}: send the missing ones first"
    )]
    NonceGap { expected: u64, got: u64 },
    #[error("insufficient balance: needs {needed} (amount plus fee), has {available}")]
    InsufficientBalance { needed: Amount, available: Amount },
    #[error("fee {got} is below the minimum fee {min}")]
    FeeTooLow { min: Amount, got: Amount },
    #[error("amount overflows the recipient's balance")]
    Overflow,
    #[error("attestation quote rejected: {0}")]
    QuoteRejected(proctor_tee::QuoteError),
    #[error("enclave measurement {0} is not on the chain's allowlist")]
    MeasurementNotAllowed(Hash),
    #[error("quote report data does not bind this identity key to this chain")]
    ReportDataMismatch,
    #[error("enclave is already registered by another operator")]
    EnclaveOwnedByOther,
    #[error("stake {got} is below the minimum stake {min}")]
    InsufficientStake { min: Amount, got: Amount },
    #[error("enclave {0} is not registered")]
    EnclaveNotFound(proctor_primitives::PublicKey),
    #[error("only the enclave's operator may do this")]
    NotOperator,
    #[error(
        "enclave is unbonding (since deregistration); it cannot be renewed or deregistered again"
    )]
    AlreadyUnbonding,
    #[error(
        "the stake is bonded: deregister the enclave first, then withdraw after the unbonding period"
    )]
    NotDeregistered,
    #[error("the stake unbonds at height {until}; withdraw after it")]
    StillUnbonding { until: u64 },
    #[error("only the governance account may change the measurement allowlist")]
    NotGovernance,
    #[error("registration expiry {expires_at} must be after height {height} and at most {max}")]
    BadExpiry {
        expires_at: u64,
        height: u64,
        max: u64,
    },
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
    JobState {
        job: u64,
        state: crate::jobs::JobState,
    },
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
    #[error("transaction is {size} bytes, more than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error(
        "{fuel} instructions cannot run in the deadline: the slowest offered worker runs {capacity} in it (raise the deadline or lower the fuel)"
    )]
    FuelBeyondDeadline { fuel: u64, capacity: u128 },
    #[error("invalid refusal: {0}")]
    BadRefusal(String),
}

impl TxError {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            TxError::BadSignature => 1001,
            TxError::WrongChain { .. } => 1002,
            TxError::NonceReplayed { .. } => 1003,
            TxError::NonceGap { .. } => 1004,
            TxError::InsufficientBalance { .. } => 1005,
            TxError::FeeTooLow { .. } => 1006,
            TxError::Overflow => 1007,
            TxError::QuoteRejected(q) => q.code(),
            TxError::MeasurementNotAllowed(_) => 1102,
            TxError::ReportDataMismatch => 1103,
            TxError::EnclaveOwnedByOther => 1104,
            TxError::InsufficientStake { .. } => 1120,
            TxError::EnclaveNotFound(_) => 1121,
            TxError::NotOperator => 1122,
            TxError::AlreadyUnbonding => 1123,
            TxError::NotDeregistered => 1124,
            TxError::StillUnbonding { .. } => 1126,
            TxError::NotGovernance => 1125,
            TxError::BadExpiry { .. } => 1127,
            TxError::JobNotFound(_) => 1130,
            TxError::NotRequester => 1131,
            TxError::BadJob(_) => 1132,
            TxError::EscrowMismatch { .. } => 1133,
            TxError::JobState { .. } => 1134,
            TxError::NotAssigned(_) => 1135,
            TxError::BadReport(_) => 1136,
            TxError::AlreadyReported => 1137,
            TxError::ModuleOwned(_) => 1138,
            TxError::TooLarge { .. } => 1008,
            TxError::WorkerBusy(_) => 1139,
            TxError::FuelBeyondDeadline { .. } => 1140,
            TxError::BadRefusal(_) => 1141,
        }
    }
}

/// Why a block's transactions cannot be applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block has {count} transactions, more than the limit of {limit}")]
    TooManyTxs { count: usize, limit: u32 },
    #[error("block's transactions take {size} bytes, more than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("transaction {index} ({hash}) is invalid: {error}")]
    Tx {
        index: usize,
        hash: Hash,
        error: TxError,
    },
    #[error("market processing failed: {0}")]
    Market(TxError),
    #[error("block reward overflows the miner's balance")]
    RewardOverflow,
}

/// Errors building the genesis state.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis allocates to {0} twice")]
    DuplicateAllocation(proctor_primitives::Address),
    #[error("genesis parameter {0}")]
    BadParam(&'static str),
    #[error("genesis enclave {identity}: {reason}")]
    Enclave {
        identity: proctor_primitives::PublicKey,
        reason: String,
    },
    #[error("genesis file: {0}")]
    Parse(String),
}
