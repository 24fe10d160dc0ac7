//! Unrolling small innermost loops (4 times, branchy ones 8).

use std::collections::BTreeMap;
use wasmparser::Operator;

/// Copies of an innermost loop's body per trip through its header.
pub(super) const UNROLL: usize = 4;
/// Largest loop body unrolled, in operators.
pub(super) const UNROLL_MAX_BODY: usize = 200;
/// Copies of a branchy loop's body: one with at least
/// [`BRANCHY_MIN_BRANCHES`] conditional branches (`br_if`, `if`, the back
/// edge's included) and at most [`BRANCHY_MAX_BODY`] operators.
pub(super) const UNROLL_BRANCHY: usize = 8;
pub(super) const BRANCHY_MIN_BRANCHES: usize = 3;
pub(super) const BRANCHY_MAX_BODY: usize = 100;

/// How many copies of `body` (an innermost loop's, without `loop` and
/// `end`) [`unroll_loop`] writes.
///
/// A branchy loop (a tokenizer's character loop, a parser's or a state
/// machine's) gets [`UNROLL_BRANCHY`]: besides running the count and its
/// check once per 8 iterations, each copy's branches are branches of their
/// own to the processor's predictor, which then tells apart where in a
/// stretch of iterations it is, as the plain loop's single set of branches
/// cannot. wordfreq's character loop (7 branches, 88 operators) runs in
/// 39.3 ms with 4 copies, 36.7 with 10, 31.6 with 14 and 30-33 with 16-32
/// (120 passes over its text, in-process), which is why this was 16. On
/// the corpus of real programs (`examples/corpus`, side by side in one
/// process, 21 runs each) 16 copies cost more than they give: against 16,
/// 8 copies take zstd from 1.18x to 1.08x of unmetered and pcre2grep from
/// 1.22x to 1.17x, cost brotli 1.14x to 1.15x, leave the rest within
/// noise, and the geometric mean goes from 1.141x to 1.122x (4 copies:
/// 1.133x to 1.125x, brotli 1.26x; no unrolling at all: 1.141x to 1.124x,
/// brotli 1.20x). Short trips through a loop pay for copies they never
/// reach (code size, the landing pads of early exits).
pub(super) fn copies(body: &[Operator<'_>]) -> usize {
    let branches = body
        .iter()
        .filter(|op| matches!(op, Operator::BrIf { .. } | Operator::If { .. }))
        .count();
    if branches >= BRANCHY_MIN_BRANCHES && body.len() <= BRANCHY_MAX_BODY {
        UNROLL_BRANCHY
    } else {
        UNROLL
    }
}

/// Unrolls small innermost loops [`copies`] times (4, or 16 for branchy
/// ones), so that their counting and their check run once per that many
/// iterations (see [`unroll_loop`]). The operators the rewriting adds are
/// marked synthetic and cost nothing, so the count is unchanged. Loops with
/// a block type or a `br_table`, and loops a `br_if` carrying values leaves,
/// are left alone.
pub(super) fn unroll<'a>(ops: Vec<Operator<'a>>, costs: Vec<i64>) -> (Vec<Operator<'a>>, Vec<i64>) {
    // Innermost simple loops, as (loop operator, its end). A frame is (its
    // operator, still a candidate, whether a branch to its label may carry
    // values: any block type other than empty, conservatively for loops).
    let mut loops = BTreeMap::new();
    let mut stack: Vec<(usize, bool, bool)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operator::Loop { blockty } => {
                for f in &mut stack {
                    f.1 = false;
                }
                let empty = *blockty == wasmparser::BlockType::Empty;
                stack.push((i, empty, !empty));
            }
            Operator::Block { blockty } | Operator::If { blockty } => {
                stack.push((usize::MAX, false, *blockty != wasmparser::BlockType::Empty));
            }
            // A conditional exit's landing pads take no values: a loop left
            // by a `br_if` that carries some stays as it is.
            Operator::BrIf { relative_depth } => {
                let target = stack.len().checked_sub(1 + *relative_depth as usize);
                if let Some(t) = target
                    && stack[t].2
                {
                    for f in &mut stack[t + 1..] {
                        f.1 = false;
                    }
                }
            }
            Operator::End => {
                // A loop that costs nothing (`loop nop end`) falls through
                // after one pass: there is no count to spread.
                if let Some((start, true, _)) = stack.pop()
                    && i - start - 1 <= UNROLL_MAX_BODY
                    && costs[start..i].iter().any(|&c| c != 0)
                {
                    loops.insert(start, i);
                }
            }
            Operator::BrTable { .. } => {
                for f in &mut stack {
                    f.1 = false;
                }
            }
            _ => {}
        }
    }
    if loops.is_empty() {
        return (ops, costs);
    }
    let mut out = Vec::with_capacity(ops.len() * 2);
    let mut out_costs = Vec::with_capacity(ops.len() * 2);
    // Unrolling at most triples a function (tiny ones may grow more), so a
    // module of nothing but small loops cannot make compilation 4x longer.
    // (Doubling was not enough for lz's main loops: 1.15x instead of 1.07x.)
    let budget = 3 * ops.len().max(4 * UNROLL_MAX_BODY);
    let mut i = 0;
    while i < ops.len() {
        let Some((end, n)) = loops
            .get(&i)
            .map(|&end| (end, copies(&ops[i + 1..end])))
            .filter(|&(end, n)| out.len() + (ops.len() - i) + (n - 1) * (end - i) <= budget)
        else {
            out.push(ops[i].clone());
            out_costs.push(costs[i]);
            i += 1;
            continue;
        };
        unroll_loop(&ops[i..=end], &costs[i..=end], n, &mut out, &mut out_costs);
        i = end + 1;
    }
    (out, out_costs)
}

/// Writes the unrolled form of `lp` (`loop`, body, `end`), with `n` copies
/// of the body:
///
/// ```text
/// block $exit
///   block $Y(J-1) ... block $Y0          landing pads
///     loop $L
///       block body' br $exit end         n - 1 of them
///       body
///     end
///     br $exit
///   end  br $target(Y0)                  ... one per pad
/// end
/// ```
///
/// In a copy `body'` a branch back to `$L` lands on the `end` of its block,
/// the start of the next copy (same relative depth); falling off a copy
/// leaves the loop, as falling off `body` does. A conditional exit of copy
/// `k` to an outer label goes to its own landing pad, which branches on to
/// the label: each copy reaches an exit with a different count, and the pad
/// is where the meter can settle the difference without touching the hot
/// path. Other branches out skip the added labels.
pub(super) fn unroll_loop<'a>(
    lp: &[Operator<'a>],
    lp_costs: &[i64],
    n: usize,
    out: &mut Vec<Operator<'a>>,
    costs: &mut Vec<i64>,
) {
    let body = &lp[1..lp.len() - 1];
    let body_costs = &lp_costs[1..lp.len() - 1];
    // Outer distances (1 = the label around the loop) of conditional exits.
    let mut dists: Vec<u32> = Vec::new();
    let mut nesting = 0u32;
    for op in body {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => nesting += 1,
            Operator::End => nesting -= 1,
            Operator::BrIf { relative_depth } if *relative_depth > nesting => {
                let d = relative_depth - nesting;
                if !dists.contains(&d) {
                    dists.push(d);
                }
            }
            _ => {}
        }
    }
    let pads = (n * dists.len()) as u32;
    let pad = |copy: usize, d: u32| -> u32 {
        (copy * dists.len() + dists.iter().position(|&x| x == d).expect("collected")) as u32
    };
    // Synthetic operators cost nothing; copies cost what the original does.
    let mut push = |op: Operator<'a>, cost: Option<i64>| {
        out.push(op);
        costs.push(cost.unwrap_or(0));
    };
    let block = || Operator::Block {
        blockty: wasmparser::BlockType::Empty,
    };
    push(block(), None); // $exit
    for _ in 0..pads {
        push(block(), None);
    }
    push(lp[0].clone(), Some(lp_costs[0]));
    for copy in 0..n {
        let last = copy + 1 == n;
        if !last {
            push(block(), None);
        }
        // Labels between the copy's body and the first pad: its own block
        // (not in the last copy) and the loop.
        let inner = if last { 1 } else { 2 };
        let mut nesting = 0u32;
        for (op, &c) in body.iter().zip(body_costs) {
            let op = match op {
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                    nesting += 1;
                    op.clone()
                }
                Operator::End => {
                    nesting -= 1;
                    op.clone()
                }
                Operator::BrIf { relative_depth } if *relative_depth > nesting => Operator::BrIf {
                    relative_depth: nesting + inner + pad(copy, relative_depth - nesting),
                },
                Operator::Br { relative_depth } if *relative_depth > nesting => Operator::Br {
                    relative_depth: relative_depth + inner - 1 + pads + 1,
                },
                other => other.clone(),
            };
            push(op, Some(c));
        }
        if !last {
            push(
                Operator::Br {
                    relative_depth: 1 + pads + 1,
                },
                None,
            );
            push(Operator::End, None);
        }
    }
    push(lp[lp.len() - 1].clone(), Some(lp_costs[lp.len() - 1]));
    push(
        Operator::Br {
            relative_depth: pads,
        },
        None,
    );
    for (j, _) in (0..pads).enumerate() {
        push(Operator::End, None);
        let d = dists[j % dists.len()];
        // Pads still open outside this one, then $exit, then the target.
        push(
            Operator::Br {
                relative_depth: pads - 1 - j as u32 + d,
            },
            None,
        );
    }
    push(Operator::End, None);
}
