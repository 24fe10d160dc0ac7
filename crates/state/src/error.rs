//! Errors of the state machine, each with a stable numeric code (they cross
//! the RPC boundary, and clients match on the code). The core's own errors
//! (signature, chain, nonce, fee, balance, size) are codes 1000-1099; each
//! module's errors are its own enum in its own range, wrapped here: registry
//! 1100-1129, market 1130-1199, governance 1200-1249, oracle 1260-1299.

use crate::modules::registry::types as registry;
use crate::modules::{
    contracts::types as contracts, governance::types as governance, market::types as market,
    oracle::types as oracle,
};
use proctor_primitives::{Amount, Hash};

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
    #[error("transaction is {size} bytes, more than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Governance(#[from] governance::Error),
    #[error(transparent)]
    Market(#[from] market::Error),
    #[error(transparent)]
    Oracle(#[from] oracle::Error),
    #[error(transparent)]
    Contracts(#[from] contracts::Error),
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
            TxError::TooLarge { .. } => 1008,
            TxError::Registry(e) => e.code(),
            TxError::Governance(e) => e.code(),
            TxError::Market(e) => e.code(),
            TxError::Oracle(e) => e.code(),
            TxError::Contracts(e) => e.code(),
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
    #[error("{module}'s end-of-block work failed: {error}")]
    EndOfBlock {
        module: &'static str,
        error: TxError,
    },
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
