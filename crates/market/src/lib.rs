//! The compute market's rules, as pure deterministic functions: the state
//! machine calls them while processing blocks, so they use integers only
//! (fixed point with [`SCALE`] = 1.0), ordered maps, and explicit tie-breaks.
//!
//! - [`fixed`]: fixed-point logarithms.
//! - [`reputation`]: a worker's reputation from its deal history (seed 002's
//!   table: earned fees and completed deals as exponential averages,
//!   completed-deals ratio, service level, rating).
//! - [`scheduler`]: weighted dominant resource fairness (seed 002's WDRF):
//!   *filter* workers that can hold a job, *prioritize* them by the weighted
//!   sum of a price score (cheaper is better, `1/log p`) and reputation, and
//!   serve the requester with the lowest weighted dominant share first.
//! - [`settle`]: escrow, payment per metered instruction, the platform fee
//!   and its split, and the refund, conserving every unit.
#![forbid(unsafe_code)]

pub mod fixed;
pub mod reputation;
pub mod scheduler;
pub mod settle;

/// Fixed-point 1.0.
pub const SCALE: u64 = 1_000_000;
