//! The registry's enclave record, calls, events and errors.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Height, PublicKey};
use proctor_tee::Quote;
use serde::{Deserialize, Serialize};

/// A registered enclave.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct EnclaveRecord {
    pub identity: PublicKey,
    /// Where data for this enclave is encrypted to (X25519).
    pub encryption_key: EncryptionKey,
    /// The account that registered it (and is paid for its work).
    pub operator: Address,
    pub measurement: Hash,
    pub registered_at: Height,
    /// Last height at which the registration is valid.
    pub expires_at: Height,
    /// Tokens locked by the registration (slashable; returned after unbonding).
    pub stake: Amount,
    /// Set by deregistration: the enclave no longer mines or takes work, and
    /// the stake can be withdrawn after this height.
    pub unbonding_until: Option<Height>,
    /// The transaction of the last registration or renewal, whose quote
    /// anyone can check again (None: registered in the genesis).
    pub registration_tx: Option<Hash>,
}

/// The registry's calls.
// A registration carries its quote inline (a DCAP quote is a few KiB on the
// heap anyway); calls are decoded once and moved, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// Register (or renew) an enclave until `expires_at`: its identity and
    /// encryption keys and a quote whose report data binds both keys, this
    /// chain and the expiry; `stake` is locked (added to the existing stake on
    /// renewal).
    RegisterEnclave {
        identity: PublicKey,
        encryption_key: EncryptionKey,
        expires_at: Height,
        quote: Quote,
        stake: Amount,
    },
    /// Stop an enclave: it can no longer mine or take work; its stake unbonds.
    DeregisterEnclave { identity: PublicKey },
    /// Return an unbonded enclave's stake to its operator and forget it.
    WithdrawStake { identity: PublicKey },
}

/// The registry's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    EnclaveRegistered {
        identity: PublicKey,
        operator: Address,
        expires_at: Height,
        stake: Amount,
    },
    EnclaveDeregistered {
        identity: PublicKey,
        unbonding_until: Height,
    },
    StakeWithdrawn {
        identity: PublicKey,
        operator: Address,
        amount: Amount,
    },
}

/// The registry's records.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Enclave(EnclaveRecord),
    /// A registration whose stake was withdrawn (stake 0): kept so the
    /// quote of an enclave that once mined can still be checked (a light
    /// client verifying old headers needs it).
    Retired(EnclaveRecord),
}

/// The registry's errors: codes 1100-1129 (1105-1113 are the quote's own,
/// [`proctor_tee::QuoteError::code`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
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
    EnclaveNotFound(PublicKey),
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
    #[error("registration expiry {expires_at} must be after height {height} and at most {max}")]
    BadExpiry {
        expires_at: u64,
        height: u64,
        max: u64,
    },
}

impl Error {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            Error::QuoteRejected(q) => q.code(),
            Error::MeasurementNotAllowed(_) => 1102,
            Error::ReportDataMismatch => 1103,
            Error::EnclaveOwnedByOther => 1104,
            Error::InsufficientStake { .. } => 1120,
            Error::EnclaveNotFound(_) => 1121,
            Error::NotOperator => 1122,
            Error::AlreadyUnbonding => 1123,
            Error::NotDeregistered => 1124,
            Error::StillUnbonding { .. } => 1126,
            Error::BadExpiry { .. } => 1127,
        }
    }
}
