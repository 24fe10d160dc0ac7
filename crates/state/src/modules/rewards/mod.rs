//! Rewards: at the end of every block the miner receives the block reward
//! (newly minted) and every fee the block's transactions paid.

use crate::TxError;
use crate::context::{Context, lift};
use crate::module::Module;
use crate::types::Transaction;
use proctor_primitives::Address;

pub mod types;
pub use types::*;

/// The rewards module.
pub(crate) struct Rewards;

impl Module for Rewards {
    const NAME: &'static str = "rewards";
    const KEY_PREFIX: &'static str = "proctor/rewards";
    const CODES: std::ops::RangeInclusive<i32> = 1250..=1259;
    /// It takes no transactions.
    type Call = std::convert::Infallible;

    fn apply(
        _cx: &mut Context<'_>,
        _from: Address,
        _tx: &Transaction,
        call: &Self::Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        match *call {}
    }

    fn end_block(cx: &mut Context<'_>) -> Result<Vec<crate::Event>, TxError> {
        let reward = cx.params().block_reward;
        let miner = cx.env.miner;
        let total = reward.checked_add(cx.fees).ok_or(TxError::Overflow)?;
        cx.o.credit(&miner, total)?;
        Ok(lift(vec![Event::BlockReward {
            miner,
            reward,
            fees: cx.fees,
        }]))
    }
}

#[cfg(test)]
mod tests;
