//! The state machine's modules. The core (`machine.rs`) verifies, charges
//! the fee, bumps the nonce and routes each call to its module; each module
//! owns its calls' handlers:
//! - `accounts`: transfers;
//! - `registry`: enclave registrations, unbonding, stake withdrawal;
//! - `governance`: the measurement allowlist;
//! - `market`: the compute market (jobs, offers, settlement, end-of-block
//!   scheduling and deadlines).

pub mod accounts;
pub mod governance;
pub mod market;
pub mod registry;
