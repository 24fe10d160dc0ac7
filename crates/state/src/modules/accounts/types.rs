//! The accounts module's account record, call and events.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Address, Amount};
use serde::{Deserialize, Serialize};

/// An account.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Account {
    pub balance: Amount,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

/// The accounts module's calls.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// Move `amount` to `to`.
    Transfer { to: Address, amount: Amount },
}

/// The accounts module's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Transfer {
        from: Address,
        to: Address,
        amount: Amount,
    },
    /// Every transaction's fee, taken before its call runs.
    FeePaid { payer: Address, amount: Amount },
}

/// The accounts module's records.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Account(Account),
}
