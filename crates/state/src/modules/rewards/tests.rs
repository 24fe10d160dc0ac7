//! Tests of the rewards module.

use crate::testkit::{self, keys, transfer};
use crate::*;
use proctor_primitives::Amount;
use proctor_tee::sim::sim_measurement;

use crate::tests::{chain, env};

#[test]
fn the_miner_gets_the_reward_and_every_fee_last() {
    let (ks, g, s) = chain(3);
    let miner = ks[2].public().address();
    let txs = [
        transfer(&g.hash(), &ks[0], 0, &ks[1], 1, 7),
        transfer(&g.hash(), &ks[1], 0, &ks[0], 1, 9),
    ];
    let a = s.apply_block(&env(1, miner), &txs).unwrap();
    let reward = g.params.block_reward;
    assert_eq!(
        a.state.account(&miner).balance,
        Amount(1_000_000 + reward.0 + 16)
    );
    // The reward is the last end-of-block event (after the market's).
    assert_eq!(
        a.events.last(),
        Some(&Event::Rewards(rewards::Event::BlockReward {
            miner,
            reward,
            fees: Amount(16)
        }))
    );
}

#[test]
fn a_reward_that_overflows_the_miners_balance_fails_the_block_in_rewards() {
    let ks = keys(2);
    let miner = ks[1].public().address();
    let mut g = testkit::genesis(&ks, 1_000_000, testkit::params(None, sim_measurement()));
    for a in &mut g.allocations {
        if a.address == miner {
            a.amount = Amount(u128::MAX - 1);
        }
    }
    let s = State::genesis(&g).unwrap();
    assert_eq!(
        s.apply_block(&env(1, miner), &[]).unwrap_err(),
        BlockError::EndOfBlock {
            module: "rewards",
            error: TxError::Overflow
        }
    );
}
