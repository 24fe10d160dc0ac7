//! The state machine's modules. The core (`machine.rs`) verifies, charges
//! the fee, bumps the nonce and routes each call to its module; each module
//! (a `Module`, `module.rs`) owns its calls, events, records,
//! errors and their handlers, in `modules/<name>/`: `types.rs` (what it
//! stores and says), `mod.rs` (handlers and queries) and its tests.
//! - `accounts`: balances, nonces, transfers;
//! - `registry`: enclave registrations, unbonding, stake withdrawal;
//! - `governance`: the measurement allowlist;
//! - `rewards`: the miner's block reward and fees, at the end of a block;
//! - `market`: the compute market (jobs, offers, settlement, end-of-block
//!   scheduling and deadlines);
//! - `oracle`: requests for web data, enclave-signed datagrams, their fees;
//! - `contracts`: confidential contracts (deploy, keys posted by
//!   gatekeepers, sealed commands, executors' receipts and checkpoints).
//!
//! A module reaches another only through that module's functions (the
//! market slashes through `registry::take_stake`, pays through
//! `Overlay::credit`), never by writing its records.

pub mod accounts;
pub mod contracts;
pub mod governance;
pub mod market;
pub mod oracle;
pub mod registry;
pub mod rewards;
#[cfg(test)]
pub(crate) mod tests;
