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
//!
//! # Core and modules
//! The core is small: [`context`] (the state, the block's overlay of
//! writes, its environment and the fees it collects), `module.rs` (the
//! `Module` trait: calls, events, records, errors with a code range, a key
//! domain, an end-of-block hook, a veto on releasing stake) and `machine.rs`
//! (verify, take fee and nonce, route each [`Call`] to its module, run the
//! end-of-block hooks in a fixed order). Each on-chain module lives in
//! `modules/<name>/` (`types.rs`: what it stores and says; `mod.rs`:
//! handlers and queries); the top-level [`Call`], [`Event`], [`Record`] and
//! [`TxError`] wrap the modules' own enums. Layers, bottom up (held by
//! `tests/layers.rs`): `smt`, modules' types, top-level types and errors,
//! context, module trait, modules' handlers, machine.
//!
//! Where the seeds' protocol steps live: enclave registration and its quote
//! checks (ARCHITECTURE "Attestation") in [`registry`]; the measurement
//! allowlist in [`governance`]; the block reward and fees in [`rewards`];
//! the compute market's submit, assign, key release, report, settle,
//! refuse and slash steps (seeds 002 and 003) in [`market`]; the native
//! oracle's m1-m4 and its fees (seed 000 §5) in [`oracle`]; the PoUW
//! proof's checks are the `consensus` crate's, not the state machine's.
//!
//! # Adding a module
//! 1. `modules/<name>/types.rs` (its `Call`, `Event`, `Record`, `Error`
//!    with `code()` in a fresh range) and `mod.rs` (a unit struct that
//!    implements `Module`, its handlers and `impl State` queries);
//! 2. `modules/mod.rs`: `pub mod <name>;`;
//! 3. `types.rs`: a variant in `Call`, `Event`, `Record` (each at the end,
//!    so older tags keep their bytes) and in the `from_module!` lists;
//!    `error.rs`: a variant in `TxError` and its `code()` arm;
//! 4. `machine.rs`: its arm in `apply_tx`, its entry in `MODULES` and, if
//!    it has one, its end-of-block hook in `END_OF_BLOCK`;
//! 5. the golden fixtures (`tests/golden.rs`: names and samples), its codes
//!    in `docs/rpc.md`, and its name in `tests/layers.rs`.
#![forbid(unsafe_code)]

pub mod context;
pub mod error;
mod genesis;
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
pub use modules::{accounts, contracts, governance, market, oracle, registry, rewards};
pub use types::*;

#[cfg(test)]
mod tests;
