//! The metered WebAssembly engine that runs useful work.
//!
//! Three parts, each usable alone:
//! - [`check`]: the checker of seed 000 §3.4.2 mapped to WebAssembly. A module
//!   passes if it has exactly one entry point (`_start`, no start section),
//!   imports only functions of the task ABI ([`wasi`]), and stays within
//!   [`Limits`]. WebAssembly code is immutable and cannot jump outside itself,
//!   and metering is injected by the runtime at compile time, so the two other
//!   conditions of the seed hold for every valid module by construction.
//! - [`Vm`]: the metered engine. A module is checked, rewritten by [`meter`]
//!   to count its own instructions, compiled by wasmtime once and cached by
//!   its hash.
//! - [`Task`]: one run of a module over an input, executed in *slices* of
//!   `n` instructions. Between slices control returns to the caller (the
//!   enclave draws the PoUW lottery there) and the run resumes where it
//!   stopped. The rewritten module calls the host when its count reaches a
//!   limit; the host suspends the wasmtime fiber there, and the task is
//!   polled by hand with a no-op waker: no executor, no threads, no clocks.
//!
//! The instruction count of a run is exact and a function of the module and
//! its input only: one per WebAssembly operator executed (with wasmtime's
//! fuel cost table, which tests hold the count against), identical on every
//! run, every machine and for every slice size. [`meter`] explains how it is
//! kept cheap: counts on a spanning tree's chords, checks on loop back edges,
//! small loops unrolled, small leaf functions inlined, no loop value live
//! across the check's call. Nothing runs faster than the count it charges:
//! the count is also the miner's lottery tickets, so a routine recognized
//! and run 8 bytes at a time while charging the byte loop's count would let
//! a miner choose work that mines many times faster (`proctor bench
//! lottery`). The PoUW path runs within about 1.06x of unmetered wasmtime on
//! real C programs (`proctor bench corpus`).
//!
//! - [`contract`]: the contract ABI (imports from `"proctor"`: the message,
//!   the caller, a key-value state, the reply, egress messages) and its
//!   engine, metered the same way: commands run over a journal applied only
//!   when they succeed, queries cannot write (`docs/contracts.md`).
//!
//! Determinism: the task's environment (arguments, input, clock, random bytes)
//! is fully given by [`TaskSpec`]; threads and relaxed SIMD are refused by the
//! checker; the engine compiles for a fixed set of CPU features
//! ([`X86_64_FEATURES`], x86-64-v3), never the host's, so a module's machine
//! code is the same on every x86-64 worker and float results, NaN bits
//! included, are bit-identical (tested under three feature sets in
//! `tests/targets.rs`; NaNs are canonicalized on other architectures, see
//! `base_config`).
// One `unsafe` block, in `runtime`: enabling the pinned CPU features.
#![deny(unsafe_code)]

mod checker;
pub mod contract;
pub mod meter;
mod runtime;
pub mod wasi;

pub use checker::{Abi, CheckError, Limits, Verdict, check, check_abi};
pub use runtime::{
    Features, Loaded, Outcome, Status, Step, Task, TaskSpec, UnmeteredVm, Vm, VmError,
    X86_64_FEATURES,
};
