//! Proof-of-Useful-Work consensus rules. Pure and deterministic: no clock
//! (callers pass "now" where the rule needs it), no I/O, integers only.
//!
//! - [`lottery_wins`]: the lottery rule of seed 000 §3.3. After each slice of
//!   n instructions the enclave draws a uniform 128-bit r and wins iff
//!   `r < 2^128 * n / D`, evaluated exactly as `r * D < n * 2^128` in 256-bit
//!   arithmetic. Each instruction is then a Bernoulli trial with probability
//!   1/D, so the expected instructions per block are D whatever the slice size.
//! - [`next_difficulty`]: retargets toward the target block interval.
//! - [`validate_pouw`] / [`validate_block`]: block validity (seed 000 §3.4.3):
//!   header linkage, expected difficulty, both attestations signed by an
//!   enclave whose registration is valid at that height, the module is one the
//!   chain knows, and replaying the transactions gives the header's state root.
//! - [`fork_choice`]: the tip with the most total difficulty wins.
#![forbid(unsafe_code)]

mod fork;
mod rules;

pub use fork::{ForkError, Tip, fork_choice, fork_point};
pub use rules::*;

#[cfg(test)]
mod tests;
