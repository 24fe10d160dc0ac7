//! A worker's reputation, from seed 002's table for resource providers:
//!
//! | index | weight | value |
//! |---|---|---|
//! | TotalEarnedFee | 0.4 | p_t = ψ·f(fee) + (1−ψ)·p_{t−1} |
//! | TotalCompletedDeals | 0.2 | p_t = ψ·[completed] + (1−ψ)·p_{t−1} |
//! | CompletedDealsRatio | 0.2 | completed / (completed + failed) |
//! | ServiceLevel | 0.1 | exponential average of the share of the deadline left at report time |
//! | RatingScore | 0.1 | no ratings on chain yet: neutral 0.5 |
//!
//! with ψ = 1/8 and f(fee) = min(log10(fee) / 18, 1) (fees in base units;
//! the seed divides by 1000 for its own token scale). A new worker has no
//! history: ratio and rating count as 0.5, the averages as 0.

use crate::SCALE;
use crate::fixed::{log10, mul};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Weight of the newest deal in the exponential averages (1/8).
pub const PSI: u64 = SCALE / 8;
/// The rating index until ratings exist.
pub const NEUTRAL: u64 = SCALE / 2;
/// log10 of the fee that saturates the fee index.
const FEE_LOG_CAP: u64 = 18;

/// A worker's deal history and averaged indices (SCALE units).
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
pub struct Reputation {
    pub completed: u64,
    pub failed: u64,
    pub fee_ema: u64,
    pub deals_ema: u64,
    pub service_ema: u64,
}

fn ema(prev: u64, x: u64) -> u64 {
    mul(PSI, x) + mul(SCALE - PSI, prev)
}

impl Reputation {
    /// The reputation score in [0, SCALE].
    pub fn score(&self) -> u64 {
        let ratio = match self.completed + self.failed {
            0 => NEUTRAL,
            n => (self.completed as u128 * SCALE as u128 / n as u128) as u64,
        };
        mul(400_000, self.fee_ema)
            + mul(200_000, self.deals_ema)
            + mul(200_000, ratio)
            + mul(100_000, self.service_ema)
            + mul(100_000, NEUTRAL)
    }

    /// A deal completed and paid `earned`; `service` is the share of the
    /// deadline window left when the result came (SCALE = at once).
    pub fn record_completed(&mut self, earned: u128, service: u64) {
        self.completed += 1;
        let f = (log10(earned.max(1)) / FEE_LOG_CAP).min(SCALE);
        self.fee_ema = ema(self.fee_ema, f);
        self.deals_ema = ema(self.deals_ema, SCALE);
        self.service_ema = ema(self.service_ema, service.min(SCALE));
    }

    /// A deal failed: a wrong result, or none by the deadline.
    pub fn record_failed(&mut self) {
        self.failed += 1;
        self.fee_ema = ema(self.fee_ema, 0);
        self.deals_ema = ema(self.deals_ema, 0);
        self.service_ema = ema(self.service_ema, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_worker_scores_the_neutral_parts_only() {
        // 0.2 * 0.5 (ratio) + 0.1 * 0.5 (rating) = 0.15
        assert_eq!(Reputation::default().score(), 150_000);
    }

    #[test]
    fn one_completed_deal_by_hand() {
        let mut r = Reputation::default();
        // Fee 10^9: f = 9/18 = 0.5; at once: service 1.0.
        r.record_completed(1_000_000_000, SCALE);
        assert_eq!(r.completed, 1);
        assert!(r.fee_ema.abs_diff(62_500) <= 1, "{}", r.fee_ema); // 0.5 / 8
        assert_eq!(r.deals_ema, 125_000); // 1 / 8
        assert_eq!(r.service_ema, 125_000);
        // 0.4*0.0625 + 0.2*0.125 + 0.2*1 + 0.1*0.125 + 0.1*0.5 = 0.3125
        assert!(r.score().abs_diff(312_500) <= 1, "{}", r.score());
    }

    #[test]
    fn failures_lower_the_score_and_successes_raise_it() {
        let mut good = Reputation::default();
        let mut bad = Reputation::default();
        for _ in 0..20 {
            good.record_completed(1_000_000, SCALE / 2);
            bad.record_failed();
        }
        assert!(good.score() > Reputation::default().score());
        assert!(bad.score() < Reputation::default().score());
        // All failures: only the neutral rating is left.
        assert_eq!(bad.score(), 50_000);
        // The averages approach their inputs: deals -> 1 after many deals.
        assert!(good.deals_ema > 900_000);
        assert!(good.score() <= SCALE);
    }
}
