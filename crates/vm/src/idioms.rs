//! Loop idioms: faster code for a known loop shape that charges the same
//! count.
//!
//! Like [`crate::routines`], this relies on the count being defined on the
//! module as submitted: where the rewriter can tell exactly which path the
//! original loop would take, it may run something faster and charge the
//! original's count for that path. The one idiom so far is the *mismatch
//! loop*, the byte loop compilers emit for "how far do these two byte
//! strings agree": the match finder of every LZ77 compressor (zlib's
//! `longest_match`, lz4, ours), string prefix compares, `memcmp`-like loops
//! written by hand. LLVM emits it for `while (l < lim && p[l] == q[l]) l++`
//! (rotated, `l < lim` known on entry) as
//!
//! ```wat
//! loop
//!   local.get $p local.get $l i32.add i32.load8_u offset=P
//!   local.get $q local.get $l i32.add i32.load8_u offset=Q
//!   i32.ne br_if $exit                             ;; c1 = 10 up to here
//!   local.get $lim
//!   local.get $l i32.const 1 i32.add local.tee $l
//!   i32.ne br_if 0                                 ;; c = 17 per iteration
//! end
//! ```
//!
//! also with the additions' operands swapped, `load8_s` on both sides, and
//! the limit tested with `i32.lt_u` (`l + 1 < lim`) or `i32.gt_u` (`lim >
//! l + 1`). From `l = l0 < lim`, the original stops at the first `k` with
//! `p[k] != q[k]` (taking `$exit`, having executed `c (k − l0) + c1`
//! operators) or at `l = lim` (falling through, `c (lim − l0)`).
//!
//! The replacement compares 8 bytes at a time (an `i64` load from each side,
//! xor, `ctz` for the first differing byte), sets `l` to where the original
//! stops, charges that count to the counting local and leaves the same way.
//! It runs only when nothing can differ: `l0 < lim` (otherwise the original
//! counts through the wrap of `l` or stops after one iteration) and both
//! `p + P + lim + 7` and `q + Q + lim + 7` within memory (the word reads go
//! up to 7 bytes past `lim`; the original might trap before its end). Else
//! the original loop runs, metered as usual:
//!
//! ```wat
//! block $after
//!   block $slow
//!     (tests, br_if $slow)  fast path: exits to $exit or $after
//!   end
//!   (the original loop)
//! end
//! ```
//!
//! The fast path's operators cost nothing (like a known routine's fast
//! body, it charges the counting local itself), so its word loop is not
//! unrolled; it is checked like any loop. lz spends 57% of its count in
//! this loop, on matches of 6 bytes on average.

use crate::routines::{block, br_if, charge, get, i64c, memory_bytes, next_word, set};
use wasmparser::{BlockType, MemArg, Operator as O, ValType};

/// A mismatch loop found at some operator index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mismatch {
    /// The locals holding the two bases, the index and the limit.
    p: u32,
    q: u32,
    l: u32,
    lim: u32,
    /// The loads' offsets.
    p_offset: u64,
    q_offset: u64,
    /// The depth of the mismatch exit, inside the loop.
    exit: u32,
    /// Operators up to and including the mismatch exit, and per iteration.
    c1: i64,
    c: i64,
    /// Operators in the loop, `loop` to `end`.
    len: usize,
}

/// Matches `ops` (starting at a `loop`) against the mismatch loop, `costs`
/// being the cost of each operator (a loop some fast body already counts
/// by itself is left alone).
fn mismatch(ops: &[O<'_>], costs: &[i64]) -> Option<Mismatch> {
    let mut at = 0usize;
    let mut next = || {
        let op = ops.get(at);
        at += 1;
        op
    };
    if !matches!(
        next()?,
        O::Loop {
            blockty: BlockType::Empty
        }
    ) {
        return None;
    }
    // `local.get $base local.get $l i32.add`, either way round.
    let address = |a: &O<'_>, b: &O<'_>, add: &O<'_>| match (a, b, add) {
        (O::LocalGet { local_index: x }, O::LocalGet { local_index: y }, O::I32Add) => {
            Some((*x, *y))
        }
        _ => None,
    };
    let (x1, y1) = address(next()?, next()?, next()?)?;
    let load1 = next()?;
    let (x2, y2) = address(next()?, next()?, next()?)?;
    let load2 = next()?;
    let ((p_offset, p_signed), (q_offset, q_signed)) = (load8(load1)?, load8(load2)?);
    if p_signed != q_signed {
        return None;
    }
    // The index is the local both addresses share.
    let (p, q, l) = if y1 == y2 {
        (x1, x2, y1)
    } else if y1 == x2 {
        (x1, y2, y1)
    } else if x1 == y2 {
        (y1, x2, x1)
    } else if x1 == x2 {
        (y1, y2, x1)
    } else {
        return None;
    };
    let (
        O::I32Ne,
        O::BrIf {
            relative_depth: exit,
        },
    ) = (next()?, next()?)
    else {
        return None;
    };
    let (exit, c1_end) = (*exit, at);
    if exit == 0 {
        return None;
    }
    // `local.get $l i32.const 1 i32.add local.tee $l`, either way round.
    let increment = |ops: &[O<'_>]| match ops {
        [
            O::LocalGet { local_index: a },
            O::I32Const { value: 1 },
            O::I32Add,
            O::LocalTee { local_index: b },
        ]
        | [
            O::I32Const { value: 1 },
            O::LocalGet { local_index: a },
            O::I32Add,
            O::LocalTee { local_index: b },
        ] if a == b && *a == l => Some(()),
        _ => None,
    };
    let rest = ops.get(at..at + 7)?;
    let lim = match rest {
        // lim, l + 1, ne or gt_u
        [
            O::LocalGet { local_index },
            inc @ ..,
            O::I32Ne | O::I32GtU,
            _,
        ] if increment(inc).is_some() => *local_index,
        // l + 1, lim, ne or lt_u
        [
            inc @ ..,
            O::LocalGet { local_index },
            O::I32Ne | O::I32LtU,
            _,
        ] if increment(&inc[..4]).is_some() && inc.len() == 4 => *local_index,
        _ => return None,
    };
    let len = at + 7 + 1;
    if !matches!(rest[6], O::BrIf { relative_depth: 0 })
        || !matches!(ops.get(at + 7)?, O::End)
        || [p, q, lim].contains(&l)
    {
        return None;
    }
    let counted = |range: std::ops::Range<usize>| {
        ops[range.clone()]
            .iter()
            .zip(&costs[range])
            .map(|(op, &c)| (c == crate::meter::cost(op)).then_some(c))
            .sum::<Option<i64>>()
    };
    Some(Mismatch {
        p,
        q,
        l,
        lim,
        p_offset,
        q_offset,
        exit,
        c1: counted(0..c1_end)?,
        c: counted(0..len)?,
        len,
    })
}

/// The offset of a one-byte load from memory 0, and whether it is signed.
fn load8(op: &O<'_>) -> Option<(u64, bool)> {
    match op {
        O::I32Load8U { memarg } if memarg.memory == 0 => Some((memarg.offset, false)),
        O::I32Load8S { memarg } if memarg.memory == 0 => Some((memarg.offset, true)),
        _ => None,
    }
}

/// A body after [`rewrite`].
pub(crate) struct Rewritten<'a> {
    pub(crate) ops: Vec<O<'a>>,
    pub(crate) costs: Vec<i64>,
    /// Types of the locals added.
    pub(crate) locals: Vec<ValType>,
}

/// Replaces every mismatch loop of a body whose operators cost `costs` by
/// the fast path and the original (see the module doc); locals it adds are
/// numbered from `first_local`.
pub(crate) fn rewrite<'a>(ops: Vec<O<'a>>, costs: Vec<i64>, first_local: u32) -> Rewritten<'a> {
    let found: Vec<(usize, Mismatch)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, O::Loop { .. }))
        .filter_map(|(i, _)| Some((i, mismatch(&ops[i..], &costs[i..])?)))
        .collect();
    // Three locals here and the counting local must stay within the limit.
    if found.is_empty() || first_local as usize + 4 > crate::meter::MAX_LOCALS {
        return Rewritten {
            ops,
            costs,
            locals: Vec::new(),
        };
    }
    // l0, lim − l, the xor of two words: shared by every site.
    let (start, rem, x) = (first_local, first_local + 1, first_local + 2);
    let mut out = Vec::with_capacity(ops.len() + found.len() * 120);
    let mut out_costs = Vec::with_capacity(out.capacity());
    let mut sites = found.into_iter().peekable();
    // While copying a replaced loop: the index of its `end`.
    let mut loop_end = None;
    for (i, (op, c)) in ops.into_iter().zip(costs).enumerate() {
        if let Some((_, m)) = sites.next_if(|(at, _)| *at == i) {
            let fast = fast(&m, start, rem, x);
            out_costs.extend(std::iter::repeat_n(0, fast.len()));
            out.extend(fast);
            loop_end = Some(i + m.len - 1);
        }
        let Some(end) = loop_end else {
            out.push(op);
            out_costs.push(c);
            continue;
        };
        // The original loop, one block (`$after`) deeper.
        out.push(match op {
            O::BrIf { relative_depth } if relative_depth > 0 => O::BrIf {
                relative_depth: relative_depth + 1,
            },
            op => op,
        });
        out_costs.push(c);
        if i == end {
            out.push(O::End);
            out_costs.push(0);
            loop_end = None;
        }
    }
    Rewritten {
        ops: out,
        costs: out_costs,
        locals: vec![ValType::I32, ValType::I32, ValType::I64],
    }
}

/// `block $after block $slow` (tests) (word loop) (exits) `end`: what goes
/// before the original loop.
fn fast(m: &Mismatch, start: u32, rem: u32, x: u32) -> Vec<O<'static>> {
    let word = |offset: u64| O::I64Load {
        memarg: MemArg {
            align: 0,
            max_align: 3,
            offset,
            memory: 0,
        },
    };
    // `base + offset + lim + 7 > memory size`: the slow path.
    let beyond = |base: u32, offset: u64| {
        let mut ops = vec![
            get(base),
            O::I64ExtendI32U,
            get(m.lim),
            O::I64ExtendI32U,
            O::I64Add,
            i64c(offset as i64 + 7),
            O::I64Add,
        ];
        ops.extend(memory_bytes());
        ops.extend([O::I64GtU, br_if(0)]);
        ops
    };
    let mut ops = vec![block(), block()];
    // l0 < lim, both ranges within memory
    ops.extend([get(m.l), get(m.lim), O::I32GeU, br_if(0)]);
    ops.extend(beyond(m.p, m.p_offset));
    ops.extend(beyond(m.q, m.q_offset));
    ops.extend([get(m.l), set(start)]);
    ops.extend([
        block(), // $eq
        block(), // $ne
        O::Loop {
            blockty: BlockType::Empty,
        },
        // rem = lim − l ≥ 1; x = p[l..l+8] ^ q[l..l+8]
        get(m.lim),
        get(m.l),
        O::I32Sub,
        set(rem),
        get(m.p),
        get(m.l),
        O::I32Add,
        word(m.p_offset),
        get(m.q),
        get(m.l),
        O::I32Add,
        word(m.q_offset),
        O::I64Xor,
        set(x),
    ]);
    ops.extend(next_word(m.l, x, rem));
    // r -= c (l − l0) + c1
    let charge_from_start = |c1: i64| {
        charge([
            get(m.l),
            get(start),
            O::I32Sub,
            O::I64ExtendI32U,
            i64c(m.c),
            O::I64Mul,
            i64c(c1),
            O::I64Add,
        ])
    };
    // out to the exit, from inside $eq, $slow and $after
    ops.extend(charge_from_start(m.c1));
    ops.extend([
        O::Br {
            relative_depth: m.exit - 1 + 3,
        },
        O::End, // $eq: l = lim, c (lim − l0)
        get(m.lim),
        set(m.l),
    ]);
    ops.extend(charge_from_start(0));
    ops.extend([
        O::Br { relative_depth: 1 }, // $after
        O::End,                      // $slow
    ]);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    /// The operators of each function body of `bytes`.
    fn bodies(bytes: &[u8]) -> Vec<Vec<O<'_>>> {
        Parser::new(0)
            .parse_all(bytes)
            .filter_map(|p| match p.unwrap() {
                Payload::CodeSectionEntry(body) => Some(
                    body.get_operators_reader()
                        .unwrap()
                        .into_iter()
                        .collect::<Result<_, _>>()
                        .unwrap(),
                ),
                _ => None,
            })
            .collect()
    }

    /// The mismatch loops found in `bytes`, with every operator costing
    /// `cost` (`None`: its own cost).
    fn found(bytes: &[u8], cost: Option<i64>) -> Vec<Mismatch> {
        let mut all = Vec::new();
        for ops in bodies(bytes) {
            let costs: Vec<i64> = ops
                .iter()
                .map(|op| cost.unwrap_or_else(|| crate::meter::cost(op)))
                .collect();
            all.extend((0..ops.len()).filter_map(|i| mismatch(&ops[i..], &costs[i..])));
        }
        all
    }

    /// The loops found in a function `(param $p i32 $q i32 $l i32 $lim
    /// i32)` whose body is `body`, around a `block $exit`.
    fn found_in(body: &str, cost: Option<i64>) -> Vec<Mismatch> {
        let wat = format!(
            "(module (memory 1)
               (func (param $p i32) (param $q i32) (param $l i32) (param $lim i32)
                 block $exit {body} end))"
        );
        found(&wat::parse_str(&wat).unwrap(), cost)
    }

    const CLANG: &str = "loop $loop
        local.get $p local.get $l i32.add i32.load8_u
        local.get $q local.get $l i32.add i32.load8_u
        i32.ne br_if $exit
        local.get $lim local.get $l i32.const 1 i32.add local.tee $l
        i32.ne br_if $loop
      end";

    #[test]
    fn the_match_finder_of_lz_is_a_mismatch_loop() {
        let lz = found(include_bytes!("../../../examples/tasks/lz.wasm"), None);
        assert_eq!(lz.len(), 1);
        assert_eq!((lz[0].exit, lz[0].c1, lz[0].c, lz[0].len), (1, 10, 17, 19));
        for other in ["sha256", "nbody", "filler", "wordfreq"] {
            let path = format!(
                "{}/../../examples/tasks/{other}.wasm",
                env!("CARGO_MANIFEST_DIR")
            );
            assert_eq!(found(&std::fs::read(path).unwrap(), None), [], "{other}");
        }
        let m = found_in(CLANG, None);
        assert_eq!(
            (
                m[0].p,
                m[0].q,
                m[0].l,
                m[0].lim,
                m[0].p_offset,
                m[0].q_offset
            ),
            (0, 1, 2, 3, 0, 0)
        );
    }

    #[test]
    fn loops_that_only_look_like_mismatch_loops_are_left_alone() {
        // Each changes the loop's meaning: the index is a base, or the
        // limit; the loads differ in sign; the exit is the loop itself;
        // the step is not 1; the compare is not a limit test; a different
        // local is incremented.
        for (from, to) in [
            ("local.get $p local.get $l", "local.get $l local.get $l"),
            ("local.get $lim local.get $l", "local.get $l local.get $l"),
            (
                "local.get $q local.get $l i32.add i32.load8_u",
                "local.get $q local.get $l i32.add i32.load8_s",
            ),
            ("br_if $exit", "br_if $loop"),
            ("i32.const 1 i32.add", "i32.const 2 i32.add"),
            ("i32.ne br_if $loop", "i32.lt_u br_if $loop"),
            ("local.tee $l", "local.tee $q"),
        ] {
            assert_eq!(CLANG.matches(from).count(), 1, "{from}");
            let changed = CLANG.replace(from, to);
            assert_eq!(found_in(&changed, None), [], "{changed}");
        }
        // Operators some fast body already counts are not counted twice.
        assert_eq!(found_in(CLANG, None).len(), 1);
        assert_eq!(found_in(CLANG, Some(0)), []);
    }
}
