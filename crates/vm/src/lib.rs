//! The metered WebAssembly engine that runs useful work.
//!
//! Three parts, each usable alone:
//! - [`check`]: the checker of seed 000 §3.4.2 mapped to WebAssembly. A module
//!   passes if it has exactly one entry point (`_start`, no start section),
//!   imports only functions of the task ABI ([`wasi`]), and stays within
//!   [`Limits`]. WebAssembly code is immutable and cannot jump outside itself,
//!   and metering is injected by the runtime at compile time, so the two other
//!   conditions of the seed hold for every valid module by construction.
//! - [`Vm`]: wasmtime with fuel metering. A module is checked and compiled once
//!   and cached by its hash.
//! - [`Task`]: one run of a module over an input, executed in *slices* of
//!   `n` instructions. Between slices control returns to the caller (the
//!   enclave draws the PoUW lottery there) and the run resumes where it
//!   stopped. Slicing uses wasmtime's fuel-based async yields, polled by hand
//!   with a no-op waker: no executor, no threads, no clocks.
//!
//! The instruction count of a run is the fuel it consumed: wasmtime charges
//! fuel per WebAssembly operator at compile time, so the count is a function of
//! the module and its input only, identical on every run, every machine and
//! for every slice size (fuel left over in one slice carries into the next).
//!
//! Determinism: the task's environment (arguments, input, clock, random bytes)
//! is fully given by [`TaskSpec`]; threads and relaxed SIMD are refused by the
//! checker; float results are bit-identical across x86-64 machines running the
//! same enclave build (NaNs are canonicalized on other architectures, see
//! `base_config`).
#![forbid(unsafe_code)]

mod checker;
pub mod meter;
mod runtime;
pub mod wasi;

pub use checker::{CheckError, Limits, Verdict, check};
pub use runtime::{Loaded, Outcome, Status, Step, Task, TaskSpec, UnmeteredVm, Vm, VmError};
