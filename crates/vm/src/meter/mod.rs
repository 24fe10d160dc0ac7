//! Instruction metering by rewriting the module (seed 000 §3.3: "the enclave
//! counts the instructions the task executes").
//!
//! The count is the number of WebAssembly operators executed, each costing 1
//! except `nop`, `drop`, `block`, `loop`, `unreachable`, `return`, `else` and
//! `end` (0), plus 1 per function entered: the same cost table as wasmtime's
//! fuel, so a completed run counts exactly what `consume_fuel` would (the
//! tests hold the two side by side, on the examples and on random programs).
//! Operators whose cost grows with an operand are charged by size on top:
//! `memory.copy`, `memory.fill` and `memory.init` add `len >> 2` (one per 4
//! bytes, [`BULK_SHIFT`]), `memory.grow` adds [`PAGE_CHARGE`] per page asked
//! for; the host adds one per iovec plus one per 4 bytes moved by
//! `fd_read`/`fd_write` (at most 1,024 iovecs) and six per byte of
//! `random_get`. The rates come from `proctor bench lottery`: at them, bulk
//! work earns lottery tickets at about the rate ordinary code does. The
//! operand is read where the operator runs, so the count stays exact and
//! deterministic; fuel has no such charges, and the tests add them to
//! fuel's count by formula.
//!
//! What differs from fuel is where the counting code goes, which is what
//! makes it cheap: on the example tasks fuel cost 12-41% over unmetered
//! wasmtime (an Intel VM), this -10% to +14% (`proctor task bench`, an AMD
//! VM; the filler, an LZ77 compressor, the most); on the eight real C
//! programs of `examples/corpus` -5% to +14%, 6% in geometric mean on an
//! Intel VM (`proctor bench corpus`, tables in `docs/pouw.md`; 5.6-6.8% on
//! the AMD one), and 14% more machine instructions
//! (`examples/corpus/instructions.sh`; `examples/corpus/functions.sh`
//! tells which functions they are in).
//!
//! ## Counting on a spanning tree's chords
//! Each function's control-flow graph has a node per straight-line segment
//! (cost `c(v)`) and an edge per possible transfer. Counting every segment
//! (what fuel does) puts an addition on every block of every loop. Instead,
//! following Knuth's and Ball–Larus's optimal edge profiling, we pick a
//! spanning tree of the graph, give every node a *potential* `φ` along the
//! tree (`φ(s) = c(s)` at the entry, `φ(b) = φ(a) + c(b)` on a tree edge
//! `a → b`) and put `w = φ(a) + c(b) − φ(b)` on every other edge (a *chord*;
//! many come out 0). Along any path from the entry the sum of chord weights
//! `P` and the true count `T` then differ by `φ` of the node reached, a
//! compile-time constant: at every place the count must be exact (calls,
//! returns, checks) the rewriter adds that constant, so the count seen there
//! is exact although most edges carry no code. The tree is chosen so that hot
//! edges (deep in loops, forward) are tree edges and loop back edges and exits
//! are chords: a loop with a single path costs one subtraction per iteration.
//! A `br_table`'s edges share one place for code, so when they need
//! different weights the weight most of them need goes before the table and
//! the others branch through landing pads (blocks opened around the table,
//! one per target that needs a different count: `r -= Δ; br target`). Only
//! a table whose branches carry values cannot get pads; its function falls
//! back to counting every segment at its start, the placement fuel uses,
//! which is always possible. Before pads, the dispatch functions of pcre2,
//! bzip2, brotli and zstd fell back (pcre2's matcher: 33,000 operators).
//!
//! ## Runtime protocol
//! A mutable global `proctor:remaining` (exported) holds `R = limit − used`
//! wherever the count leaves metered code: at host calls and checks. Inside,
//! the count `r` is a local (a register) that
//! metered code passes along: every defined function gets an internal
//! version with the count as an extra last parameter and an extra last
//! result, and direct calls between defined functions call those, so a
//! call costs no store and load of the global. The function's own index
//! becomes a wrapper of the original type (load `R`, call the internal
//! version, store `R`), so exports and the start function see the module's
//! own functions unchanged. Tables hold the internal versions too, and
//! `call_indirect` passes the count with the internal version of its type
//! (one internal type per type, so the signature check stays exact), when
//! nothing outside metered code can see a table: every function reference
//! names a defined function and no table is imported, exported or
//! initialised by an expression; otherwise tables and `ref.func` keep the
//! wrappers and a table call goes through the global. Every
//! loop back edge (or loop header, for loops with parameters) and the entry
//! of every function whose calls could otherwise run on without bound
//! (recursion, calls through a table, call trees that multiply work: see
//! `calls`) tests `R ≤ 0`, and if so calls the imported `proctor.check`,
//! where the host ends the slice (a fiber yield), stops the run when the
//! budget is spent, and sets the next limit. Every cycle of the graph passes
//! a loop back edge, so a run can never go on unmetered.
//!
//! ## What keeps it fast
//! - Checks on back edges: `br_if (r > ψ) $loop` replaces `br $loop`, so the
//!   check costs a compare and no jump of its own. A back edge with a count
//!   of its own compares before taking it down (`r > ψ + w`) and takes it
//!   down on each path, so that no copy of the count is kept for the
//!   check's path (`emit::Ins::BackBr`).
//! - A `br_if` that leaves a block early (to its end, without values) is
//!   taken to be the unlikely way (compilers lay out the likely path as the
//!   fall-through): its fall-through goes into the spanning tree first, and
//!   if the taken edge is left with a count, that count goes on a landing
//!   pad inside the block (`emit`), so that the path that stays carries
//!   none. Before, each condition passed on such a chain took the count
//!   down (cJSON's string printer, brotli's hash-chain loop:
//!   `if (a || b || c) continue;`). Not in functions of more than 5,000
//!   operators (`graph::LARGE_FUNCTION_OPS`: the interpreters' dispatch).
//! - Small innermost loops are unrolled 4 times, branchy ones 8 times
//!   (`unroll`, `copies`): the count and the check run once per 4 (8)
//!   iterations, and each copy's exits go through landing pads where their
//!   different counts are settled off the hot path. A branchy loop's copies
//!   also give the branch predictor more to tell iterations apart by
//!   (measured on wordfreq when it was written; see `copies`).
//! - Around a check's call, an innermost loop's locals are parked in scratch
//!   globals: no loop value is live across the call, so none has to sit in
//!   a callee-saved register or on the stack for the whole loop. Not in
//!   large functions (`graph::LARGE_FUNCTION_OPS`), where the reloaded
//!   copies are more values for a register file that is full already.
//! - An innermost loop with many live locals (12 or more) is left for its
//!   check's call and re-entered after it (`emit::Hoist`), so that what
//!   Cranelift itself keeps for the loop (the memory's base) need not
//!   survive a call inside it either.
//! - Small leaf functions called in small loops are inlined (`inline`): a
//!   leaf with a loop would otherwise pay for its check's call (a stack
//!   check and callee-saved registers) on every call, and every call pays
//!   for storing and reloading the count.
//! - A long `memory.copy` whose destination is a few bytes above its source
//!   modulo 4 KiB moves 16 bytes at a time in a loop the rewriter writes
//!   (`emit::Emit::copy`), not through wasmtime's call to glibc's
//!   `memmove`, whose `rep movsb` runs such copies 10-12x slower on AMD
//!   EPYC. The count is the operator's as before.
//!
//! ## What it must not do: run faster than it charges
//! The count is the job's price and also the miner's lottery tickets, so
//! code that runs much faster than its count lets a miner choose work that
//! mines faster. Earlier versions recognized wasi-libc's `memcmp` and the
//! byte-compare loop of LZ77 match finders and ran them 8 bytes at a time
//! while charging the byte loop's count: `proctor bench lottery` measured a
//! memcmp probe earning 197,000 M tickets per second against 8,600-35,000
//! for everything else (23x), and the corpus (`proctor bench corpus`) ran
//! no faster with them. Both are gone; every speed-up here is one the
//! engine gets on any code.
mod calls;
mod emit;
mod graph;
mod inline;
mod rewriter;
#[cfg(test)]
mod tests;
mod unroll;

use wasm_encoder::reencode::Reencode;
use wasmparser::{Operator, Parser};
use {calls::*, graph::*, inline::*, rewriter::*, unroll::*};

/// Export name of the global holding the remaining instructions before the
/// next check.
pub(crate) const REMAINING: &str = "proctor:remaining";
/// Import module and name of the host's check function.
pub(crate) const CHECK: (&str, &str) = ("proctor", "check");

/// Bytes per instruction charged on top of an operator's cost for bulk
/// memory (`memory.copy`, `memory.fill`, `memory.init`) and for the bytes a
/// host call moves (`fd_read`, `fd_write`): `len >> BULK_SHIFT`, so moving 4
/// bytes counts as one instruction: about the time the engine takes for one
/// instruction of ordinary code (`proctor bench lottery`).
pub const BULK_SHIFT: u32 = 2;
/// `memory.copy` of more bytes than this, with the destination 1 to
/// [`COPY_WINDOW`] bytes above the source modulo 4 KiB, runs as a loop of
/// 16-byte loads and stores instead of wasmtime's call to `memmove`
/// (`emit::Emit::copy`).
pub(crate) const COPY_LOOP_MIN: u32 = 2048;
/// See [`COPY_LOOP_MIN`].
pub(crate) const COPY_WINDOW: u32 = 15;
/// Instructions charged per 64 KiB page a `memory.grow` asks for (zeroing
/// the page costs about as much as filling it: 65,536 >> [`BULK_SHIFT`]).
pub const PAGE_CHARGE: i64 = 65_536 >> BULK_SHIFT;
/// Instructions per byte of `random_get`: generating a byte (BLAKE3's XOF)
/// costs a few instructions' time, not a fraction of one as copying does.
/// At 4 the `entropy` probe (`proctor bench lottery`) earned 8.7 G
/// tickets/s on an Intel VM and 7.1 on an AMD one, below every corpus
/// program on both (9.0-15.6 and 11.0-22.5); at 6 it earns within the
/// corpus's range on both.
pub const RANDOM_PER_BYTE: u64 = 6;

/// The charge an operator adds to its cost from its operand on top of the
/// stack (a length or a page count), as an expression of that operand, if
/// it is one of the operators charged by size.
pub(crate) fn size_charge(op: &Operator<'_>) -> Option<SizeCharge> {
    match op {
        Operator::MemoryCopy { .. } | Operator::MemoryFill { .. } | Operator::MemoryInit { .. } => {
            Some(SizeCharge::Bytes)
        }
        Operator::MemoryGrow { .. } => Some(SizeCharge::Pages),
        _ => None,
    }
}

/// How an operator's size operand is charged (see [`size_charge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SizeCharge {
    /// `len >> BULK_SHIFT` (the operand is an unsigned 32-bit length).
    Bytes,
    /// `pages * PAGE_CHARGE` (the operand is an unsigned 32-bit page count).
    Pages,
}

/// The cost of one operator; wasmtime's fuel table.
pub(crate) fn cost(op: &Operator<'_>) -> i64 {
    match op {
        Operator::Nop
        | Operator::Drop
        | Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::Unreachable
        | Operator::Return
        | Operator::Else
        | Operator::End => 0,
        _ => 1,
    }
}

/// Why a module could not be metered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    /// The module does not parse (the checker should have refused it).
    #[error("the module does not parse: {0}")]
    Parse(String),
    /// The module exports the name the meter's own global uses.
    #[error("the export name {REMAINING} is reserved")]
    ReservedExport,
    /// A function body could not be rewritten.
    #[error("a function could not be rewritten: {0}")]
    Body(String),
}

/// Rewrites a checked module so that it meters itself (see the module doc).
pub fn instrument(bytes: &[u8]) -> Result<Vec<u8>, MeterError> {
    instrument_counting(bytes).map(|(out, _)| out)
}

/// [`instrument`], also returning how many functions had to be counted per
/// segment (see "Counting on a spanning tree's chords").
pub(crate) fn instrument_counting(bytes: &[u8]) -> Result<(Vec<u8>, usize), MeterError> {
    let mut m = Rewriter::scan(bytes)?;
    let mut out = wasm_encoder::Module::new();
    m.parse_core_module(&mut out, Parser::new(0), bytes)
        .map_err(|e| MeterError::Parse(e.to_string()))?;
    if let Some(e) = m.failure.take() {
        return Err(MeterError::Body(e));
    }
    Ok((out.finish(), m.per_segment))
}
