//! The proctor state machine: pure, deterministic, no I/O.
//!
//! `State::apply_block(env, txs) -> Applied { state', receipts, events, changes }`
//! is the whole interface the node, the validator and (later) the enclave's
//! light validation use. It never reads a clock (time comes from the block
//! environment), never iterates a hash map, and uses integers only.
//!
//! The state is a set of typed records (accounts, enclave registrations,
//! parameters) in an authenticated sparse Merkle tree ([`smt`]). The root
//! commits to every record; proofs show one account's value (or absence)
//! against a header's state root. Cloning a state is O(1) and each block
//! updates the tree in one sorted batch, O(log n) per changed key.
//!
//! Transaction validity (checked at mempool admission and again in blocks):
//! signature (batch-verified per block), chain id, minimum fee, exact next
//! nonce (replays and gaps rejected), balance covering amount plus fee. Enclave
//! registration verifies the quote against the genesis's trust policy, the
//! measurement allowlist and the report-data binding to identity and chain.
//! An invalid transaction makes the whole block invalid; nothing is half
//! applied.
#![forbid(unsafe_code)]

pub mod context;
pub mod error;
mod machine;
mod module;
pub mod modules;
pub mod smt;
pub mod testkit;
pub mod types;

pub use context::{BlockEnv, State};
pub use error::{BlockError, GenesisError, TxError};
pub use machine::{Applied, MODULES, signatures_valid};
pub use module::ModuleInfo;
pub use modules::accounts::account_key;
/// The compute market's types, under the name the rest of the code knows.
pub use modules::market as jobs;
pub use modules::registry::enclave_key;
pub use modules::{accounts, governance, market, registry, rewards};
pub use types::*;

#[cfg(test)]
mod tests;
