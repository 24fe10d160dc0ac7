//! The rewards module's events (it has no calls and no records of its own:
//! it pays into accounts).

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Address, Amount};
use serde::{Deserialize, Serialize};

/// The rewards module's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The miner's pay for a block: the newly minted reward and the block's fees.
    BlockReward {
        miner: Address,
        reward: Amount,
        fees: Amount,
    },
}
