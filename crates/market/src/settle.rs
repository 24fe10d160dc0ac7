//! Money of a job: what the requester escrows, and how a settled job splits it.
//!
//! A job may use `fuel` instructions on each of `replicas` workers at up to
//! `max_price` per instruction, so the escrow is that maximum deal plus the
//! platform fee on it. At settlement each accepted worker is paid its metered
//! instructions times its own price (never above the maximum); the platform
//! fee (seed 002: a share of every deal, 5% by default) is taken on what was
//! paid and split between the resource providers (the paid workers' operators,
//! equally), the application provider (the module's owner) and the treasury
//! (which also gets every rounding remainder); the rest is refunded. Every
//! unit of the escrow lands somewhere: [`Settlement::total`] equals it.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Basis points: 10,000 = 100%.
pub const BPS: u128 = 10_000;

/// The platform fee and its split, in basis points.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct FeeSplit {
    /// Fee on each deal (500 = 5%).
    pub fee_bps: u32,
    /// Share of the fee for the resource providers.
    pub provider_bps: u32,
    /// Share of the fee for the application provider.
    pub app_bps: u32,
}

impl Default for FeeSplit {
    fn default() -> Self {
        FeeSplit {
            fee_bps: 500,
            provider_bps: 4_000,
            app_bps: 2_000,
        }
    }
}

impl FeeSplit {
    /// Whether the split is possible (shares at most 100%).
    pub fn is_valid(&self) -> bool {
        self.fee_bps as u128 <= BPS && (self.provider_bps as u128 + self.app_bps as u128) <= BPS
    }

    fn fee_on(&self, deal: u128) -> Option<u128> {
        // Rounded up, so the escrow always covers it.
        deal.checked_mul(self.fee_bps as u128)
            .map(|x| x.div_ceil(BPS))
    }
}

/// The most a job can cost: the escrow. None on overflow.
pub fn escrow(fuel: u64, max_price: u128, replicas: u32, split: &FeeSplit) -> Option<u128> {
    let deal = (fuel as u128)
        .checked_mul(max_price)?
        .checked_mul(replicas as u128)?;
    deal.checked_add(split.fee_on(deal)?)
}

/// How an escrow is paid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// Per accepted worker (input order): its pay, plus its share of the
    /// provider fee.
    pub workers: Vec<(u128, u128)>,
    pub app_fee: u128,
    pub treasury: u128,
    pub refund: u128,
}

impl Settlement {
    /// Everything paid out; equals the escrow.
    pub fn total(&self) -> u128 {
        self.workers.iter().map(|(p, f)| p + f).sum::<u128>()
            + self.app_fee
            + self.treasury
            + self.refund
    }
}

/// Why an escrow cannot settle as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleError {
    /// The payments and fee exceed the escrow (more instructions than the
    /// fuel limit were claimed).
    Overdrawn {
        needed: u128,
        escrow: u128,
    },
    Overflow,
}

/// Splits `escrow` for the accepted workers' `(instructions, price)`.
pub fn settle(
    escrow: u128,
    accepted: &[(u64, u128)],
    max_price: u128,
    split: &FeeSplit,
) -> Result<Settlement, SettleError> {
    let mut pays = Vec::with_capacity(accepted.len());
    let mut deal: u128 = 0;
    for &(instructions, price) in accepted {
        let pay = (instructions as u128)
            .checked_mul(price.min(max_price))
            .ok_or(SettleError::Overflow)?;
        deal = deal.checked_add(pay).ok_or(SettleError::Overflow)?;
        pays.push(pay);
    }
    let fee = split.fee_on(deal).ok_or(SettleError::Overflow)?;
    let needed = deal.checked_add(fee).ok_or(SettleError::Overflow)?;
    if needed > escrow {
        return Err(SettleError::Overdrawn { needed, escrow });
    }
    let provider_fee = fee * split.provider_bps as u128 / BPS;
    let app_fee = fee * split.app_bps as u128 / BPS;
    let each = match accepted.len() {
        0 => 0,
        n => provider_fee / n as u128,
    };
    let treasury = fee - app_fee - each * accepted.len() as u128;
    Ok(Settlement {
        workers: pays.into_iter().map(|p| (p, each)).collect(),
        app_fee,
        treasury,
        refund: escrow - needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_job_by_hand() {
        let split = FeeSplit::default();
        // 1,000,000 fuel x 10 per instruction x 3 replicas = 30,000,000; +5% = 31,500,000.
        let e = escrow(1_000_000, 10, 3, &split).unwrap();
        assert_eq!(e, 31_500_000);
        // Two accepted: 600,000 instructions at 10 and at 8 (the third was slashed).
        let s = settle(e, &[(600_000, 10), (600_000, 8)], 10, &split).unwrap();
        // Deal 6,000,000 + 4,800,000 = 10,800,000; fee 540,000:
        // providers 40% = 216,000 (108,000 each), app 20% = 108,000, treasury 216,000.
        assert_eq!(s.workers, vec![(6_000_000, 108_000), (4_800_000, 108_000)]);
        assert_eq!(s.app_fee, 108_000);
        assert_eq!(s.treasury, 216_000);
        assert_eq!(s.refund, 31_500_000 - 10_800_000 - 540_000);
        assert_eq!(s.total(), e);
    }

    #[test]
    fn prices_are_capped_and_overdrafts_refused() {
        let split = FeeSplit::default();
        let e = escrow(100, 5, 1, &split).unwrap();
        let s = settle(e, &[(100, 50)], 5, &split).unwrap();
        assert_eq!(
            s.workers[0].0, 500,
            "paid at the maximum, not its own price"
        );
        assert!(matches!(
            settle(e, &[(101, 5)], 5, &split),
            Err(SettleError::Overdrawn { .. })
        ));
        // Nobody accepted (all failed, or the job expired): all refunded.
        let s = settle(e, &[], 5, &split).unwrap();
        assert_eq!(s.refund, e);
    }

    proptest! {
        #[test]
        fn every_unit_of_the_escrow_lands_somewhere(
            fuel in 0u64..10_000_000_000,
            max_price in 0u128..1_000_000,
            replicas in 1u32..=7,
            used in proptest::collection::vec((0u64..=100, 0u128..2_000_000), 0..=7),
            fee_bps in 0u32..=10_000,
            provider_bps in 0u32..=5_000,
            app_bps in 0u32..=5_000,
        ) {
            let split = FeeSplit { fee_bps, provider_bps, app_bps };
            let e = escrow(fuel, max_price, replicas, &split).unwrap();
            let accepted: Vec<(u64, u128)> = used
                .iter()
                .take(replicas as usize)
                .map(|&(pct, price)| (fuel / 100 * pct, price))
                .collect();
            let s = settle(e, &accepted, max_price, &split).unwrap();
            prop_assert_eq!(s.total(), e);
            for (&(i, p), &(pay, _)) in accepted.iter().zip(&s.workers) {
                prop_assert_eq!(pay, i as u128 * p.min(max_price));
            }
        }
    }
}
