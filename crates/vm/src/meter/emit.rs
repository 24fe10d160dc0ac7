//! Emitting the counting code: chord charges, checks on back edges, and
//! the exact count at calls and exits.

use super::*;
use std::collections::BTreeMap;
use wasm_encoder::reencode::Reencode;
use wasm_encoder::{BlockType, Function, Instruction, ValType};
use wasmparser::{FunctionBody, Operator};

/// Counting code inserted around an operator.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ins {
    /// `r -= w`.
    Dec(i64),
    /// `else` then `r -= w`.
    Else(i64),
    /// `R = r - ψ`.
    Sync(i64),
    /// `r = R + ψ`.
    Reload(i64),
    /// Pushes `r - ψ`: the count passed to a metered callee or returned.
    Pass(i64),
    /// `r = v + ψ` for `v` the count a metered callee returned.
    Take(i64),
    /// `if r <= ψ { R = r - ψ; check(); r = R + ψ }`, parking the locals of
    /// the given save list around the call.
    Check(i64, usize),
    /// In place of `br L` back to a loop, the edge's own count `w` with it
    /// (ψ is after it): for `w = 0`, `br_if (r > ψ) L; R = r - ψ; check();
    /// r = R + ψ; br L` (the check costs no jump of its own), parking the
    /// locals of the given save list; or, for a loop whose check's call is
    /// outside it (`None`, see `Hoist`), `br_if (r > ψ) L; br (L + 1)`, to
    /// the block around the loop that the call follows. For `w ≠ 0` the
    /// count is compared before it goes down, and goes down on each path:
    /// `if (r <= ψ + w) { r -= w; the check as above } r -= w; br L`.
    /// Decrementing first (`r -= w; br_if (r > ψ) L`) costs a copy per
    /// iteration: Cranelift rematerializes `r - w` on the check's path from
    /// the count before the decrement, which keeps that value live past it,
    /// so the count after it needs a register of its own and a move back
    /// on the back edge (1.180x to 1.159x of unmetered machine instructions
    /// on the corpus; see [`Emit::minus`] for the same cause).
    BackBr(i64, i64, u32, Option<usize>),
    /// In place of `br_if L` back to a loop: `if`, what [`Ins::BackBr`]
    /// does (one frame deeper), `end`.
    BackBrIf(i64, i64, u32, Option<usize>),
}

/// A loop whose check's call is placed outside it:
///
/// ```text
/// block $done (loop $resume (block $x (loop L ...) br $done) check; br $resume)
/// ```
///
/// A back edge that finds the count spent leaves L for `$x`'s end, where
/// the call is, then re-enters L through `$resume`; branches from inside L
/// to labels outside it cross the three added frames. The call still costs
/// nothing on the hot path, but a value Cranelift keeps for L (the linear
/// memory's base, a hoisted address) no longer has to survive a call inside
/// L: regalloc2 can keep it in a caller-saved register there and move it
/// only where L is left. Only innermost loops with at least [`HOIST_LIVE`]
/// locals live at the header get this: where fewer are live the values fit
/// in callee-saved registers anyway, and the extra loop level only shifts
/// regalloc2's weights (on the corpus: 1.229x to 1.218x of unmetered
/// machine instructions in geometric mean, 1.105-1.110x to 1.097-1.099x in
/// time over two batches; every innermost loop instead of those: 1.219x,
/// every loop: 1.242x).
#[derive(Clone, Copy, Debug)]
struct Hoist {
    /// The loop's result type (`$done`'s and `$resume`'s), if any.
    result: Option<wasmparser::ValType>,
    /// ψ at the loop's header and the save list of its check.
    p: i64,
    save: usize,
}

/// Locals live at an innermost loop's header from which its check's call
/// goes outside it ([`Hoist`]).
pub(super) const HOIST_LIVE: u32 = 12;

impl Rewriter {
    pub(super) fn rewrite_body(
        &mut self,
        body: &FunctionBody<'_>,
        ty: u32,
    ) -> Result<Function, String> {
        let err = |e: wasmparser::BinaryReaderError| e.to_string();
        let mut locals = Vec::new();
        let params = self.type_sigs[ty as usize].0.clone();
        let mut local_count = params.len() as u32;
        let mut kinds: Vec<_> = params.iter().map(|&t| scratch_kind(t)).collect();
        for l in body.get_locals_reader().map_err(err)? {
            let (n, ty) = l.map_err(err)?;
            local_count = local_count.checked_add(n).ok_or("too many locals")?;
            kinds.extend(std::iter::repeat_n(scratch_kind(ty), n as usize));
            locals.push((n, self.val_type(ty).map_err(|e| e.to_string())?));
        }
        let ops = body
            .get_operators_reader()
            .map_err(err)?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let inlinees = self.inlinees.clone();
        let Inlined {
            ops,
            costs,
            locals: extra,
        } = inline(ops, &inlinees, local_count, &mut self.inline_left);
        for t in extra {
            kinds.push(scratch_kind(t));
            locals.push((1, self.val_type(t).map_err(|e| e.to_string())?));
        }
        let exit = self.internal[&ty].1;
        let (ops, costs) = pass_count(ops, costs, params.len() as u32, exit);
        kinds.insert(params.len(), scratch_kind(wasmparser::ValType::I64));
        self.meter(ty, locals, kinds, ops, costs)
    }

    /// Meters a body of type `ty` whose operators cost `costs`: `kinds` has
    /// the scratch kind of every local (parameters first), `locals` the
    /// declared ones.
    pub(super) fn meter(
        &mut self,
        ty: u32,
        mut locals: Vec<(u32, ValType)>,
        kinds: Vec<Option<usize>>,
        ops: Vec<Operator<'_>>,
        costs: Vec<i64>,
    ) -> Result<Function, String> {
        // The count is the parameter after the function's own.
        let params = self.type_sigs[ty as usize].0.len() as u32;
        let r = params;
        let (ops, costs) = unroll(ops, costs);
        let g = Graph::build(&ops, &costs, self.imported_funcs, &self.type_sigs)?;
        let phi = g.potentials();
        let chords = phi.is_some();
        self.per_segment += usize::from(!chords);
        let phi = phi.unwrap_or_else(|| vec![0; g.nodes.len()]);

        // Counting code around operators, by operator index (sparse).
        let mut before: BTreeMap<usize, Vec<Ins>> = BTreeMap::new();
        let mut after: BTreeMap<usize, Vec<Ins>> = BTreeMap::new();
        // Locals parked in scratch globals around each check's call: at the
        // entry the parameters, in a loop the locals it uses.
        let mut saves: Vec<Vec<(u32, u32)>> = Vec::new();
        // Parking code is 4 operators per local and check site: its total is
        // kept within the function's own size. A large function parks
        // nothing (see `LARGE_FUNCTION_OPS`): in an interpreter's dispatch
        // the reloaded copies after each call are more values for a full
        // register file, which cost the hot paths more than the calls do.
        let large = ops.len() > LARGE_FUNCTION_OPS;
        let mut parked_budget = ops.len() / 4;
        // `sites`: how many places emit the list (one per checked back edge).
        let mut park = |sites: usize, locals: &mut dyn Iterator<Item = u32>| -> usize {
            let mut used = [0usize; 4];
            let mut list = Vec::new();
            for l in locals {
                let Some(kind) = kinds.get(l as usize).copied().flatten() else {
                    continue;
                };
                if !large
                    && used[kind] < SCRATCH
                    && parked_budget >= sites
                    && !list.iter().any(|&(x, _)| x == l)
                {
                    parked_budget -= sites;
                    list.push((l, self.scratch_global(kind, used[kind])));
                    used[kind] += 1;
                }
            }
            saves.push(list);
            saves.len() - 1
        };
        let mut prologue = Vec::new();
        let entry_checked = self
            .next_body
            .checked_sub(1)
            .and_then(|k| self.entry_checked.get(k))
            .is_none_or(|&c| c);
        if g.calls_others && entry_checked {
            prologue.push(Ins::Check(0, park(1, &mut (0..params))));
        }
        // A loop parks the locals it uses that are live at its header (where
        // the check's call returns to): parking a dead one would make it live
        // across the loop (lz: 1.07x with liveness, 1.11x without).
        let live = if g.loops.is_empty() {
            None
        } else {
            g.live_in(&ops, kinds.len())
        };
        let is_live = |node: usize, local: u32| {
            live.as_ref()
                .is_some_and(|l| l[node][local as usize / 64] >> (local % 64) & 1 == 1)
        };
        let loop_saves: Vec<usize> = g
            .loops
            .iter()
            .map(|l| {
                let body = &ops[l.op..l.end.min(ops.len())];
                // Only innermost loops: parking for outer loops as well
                // measured worse (lz 1.11x instead of 1.07x).
                if body[1..]
                    .iter()
                    .any(|op| matches!(op, Operator::Loop { .. }))
                {
                    return park(0, &mut std::iter::empty());
                }
                let sites = if l.on_back_edges { l.back.len() } else { 1 };
                park(
                    sites,
                    &mut body.iter().filter_map(|op| match op {
                        Operator::LocalGet { local_index }
                        | Operator::LocalSet { local_index }
                        | Operator::LocalTee { local_index }
                            if is_live(l.header, *local_index) =>
                        {
                            Some(*local_index)
                        }
                        _ => None,
                    }),
                )
            })
            .collect();
        // ψ at an exact point: T − P there.
        let psi = |node: usize, so_far: i64| phi[node] - g.nodes[node].cost + so_far;
        for x in &g.exact {
            let p = psi(x.node, x.so_far);
            let Place::Before(i) = x.at else {
                unreachable!("exact points are before operators")
            };
            // Metered callees take the count and give it back; the host,
            // tables and the caller of the function's own index (its
            // wrapper) read it from the global.
            let passed = match ops[i] {
                Operator::Call { function_index } => function_index >= self.imported_funcs,
                Operator::CallIndirect { .. } => self.tables_pass,
                Operator::Return | Operator::End => true,
                _ => false,
            };
            before
                .entry(i)
                .or_default()
                .push(if passed { Ins::Pass(p) } else { Ins::Sync(p) });
            if let Some(i) = x.reload {
                after.entry(i).or_default().push(if passed {
                    Ins::Take(p)
                } else {
                    Ins::Reload(p)
                });
            }
        }
        // Loops whose checks go on their back edges, by back edge.
        let mut checked_back: BTreeMap<usize, usize> = BTreeMap::new();
        for (k, l) in g.loops.iter().enumerate() {
            if l.on_back_edges {
                checked_back.extend(l.back.iter().map(|&e| (e, loop_saves[k])));
            }
        }
        // A checked `br_if` back edge becomes `if (w, check, br) end`.
        let mut replace: BTreeMap<usize, Ins> = BTreeMap::new();
        let weight = |e: &Edge| {
            if chords {
                phi[e.from] + g.nodes[e.to].cost - phi[e.to]
            } else {
                0
            }
        };
        for (k, e) in g.edges.iter().enumerate() {
            let Some(&save) = checked_back.get(&k) else {
                continue;
            };
            let w = weight(e);
            // T − P at the end of the edge, after its own count.
            let p = phi[e.from] - w;
            let depth = match ops[e.place.op()] {
                Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => {
                    relative_depth
                }
                _ => unreachable!("checked back edges are br or br_if"),
            };
            let ins = match e.place {
                Place::BrIfTaken(i) => (i, Ins::BackBrIf(w, p, depth, Some(save))),
                Place::Before(i) => (i, Ins::BackBr(w, p, depth, Some(save))),
                _ => unreachable!("checked back edges are br or br_if"),
            };
            replace.insert(ins.0, ins.1);
        }
        // Innermost loops with many live locals get their check's call
        // outside them (see `Hoist`).
        let mut hoisted: BTreeMap<usize, Hoist> = BTreeMap::new();
        let mut hoisted_ends: BTreeMap<usize, Hoist> = BTreeMap::new();
        for (k, l) in g.loops.iter().enumerate() {
            let live_at_header: u32 = live
                .as_ref()
                .map_or(0, |lv| lv[l.header].iter().map(|w| w.count_ones()).sum());
            if !l.on_back_edges
                || l.back.is_empty()
                || l.end >= ops.len()
                || live_at_header < HOIST_LIVE
                || ops[l.op + 1..l.end]
                    .iter()
                    .any(|op| matches!(op, Operator::Loop { .. }))
            {
                continue;
            }
            let result = match ops[l.op] {
                Operator::Loop {
                    blockty: wasmparser::BlockType::Empty,
                } => None,
                Operator::Loop {
                    blockty: wasmparser::BlockType::Type(t),
                } => Some(t),
                _ => continue,
            };
            let ps: Vec<i64> = l
                .back
                .iter()
                .map(|&e| phi[g.edges[e].from] - weight(&g.edges[e]))
                .collect();
            if ps.iter().any(|&p| p != ps[0]) {
                continue;
            }
            let h = Hoist {
                result,
                p: ps[0],
                save: loop_saves[k],
            };
            hoisted.insert(l.op, h);
            hoisted_ends.insert(l.end, h);
            for &e in &l.back {
                let i = g.edges[e].place.op();
                if let Some(ins) = replace.get_mut(&i) {
                    *ins = match *ins {
                        Ins::BackBr(w, p, d, _) => Ins::BackBr(w, p, d, None),
                        Ins::BackBrIf(w, p, d, _) => Ins::BackBrIf(w, p, d, None),
                        other => other,
                    };
                }
            }
        }
        // Tables whose edges need different weights: the weight most of
        // them need goes before the table, the others' differences on
        // landing pads (see `Emit::table`), by target node.
        let mut pads: BTreeMap<usize, Vec<(usize, i64)>> = BTreeMap::new();
        if chords {
            let mut by_table: BTreeMap<usize, Vec<(usize, i64)>> = BTreeMap::new();
            for e in &g.edges {
                if let Place::Table(i) = e.place {
                    by_table.entry(i).or_default().push((e.to, weight(e)));
                }
            }
            for (i, mut targets) in by_table {
                let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
                for &(_, w) in &targets {
                    *counts.entry(w).or_default() += 1;
                }
                // The most common weight (0 among equals: no code at all).
                let common = counts
                    .iter()
                    .max_by_key(|&(&w, &n)| (n, w == 0))
                    .map_or(0, |(&w, _)| w);
                if common != 0 {
                    before.entry(i).or_default().push(Ins::Dec(common));
                }
                targets.retain(|&(_, w)| w != common);
                if !targets.is_empty() {
                    pads.insert(
                        i,
                        targets.into_iter().map(|(t, w)| (t, w - common)).collect(),
                    );
                }
            }
        }
        // `br_if`s whose taken edge's count goes on a landing pad inside
        // the block it leaves, so that the path that stays carries no
        // count for it (see `Graph::potentials` for why the taken edge is
        // the chord there). A block with k pads gets k frames around its
        // body, the first pad innermost, closed before its `end`:
        //
        //   block L (block P0 ... (block Pk-1 <body; br_if P_j> br k) end
        //     r -= w0; br k-1 ... end r -= wk-1) end
        //
        // The body's own path to L's end jumps over the pads; an LLVM body
        // whose `br_if`s leave early mostly ends in a branch anyway.
        // By block operator, the pads' counts; by `br_if`, its block and
        // its pad's place in that list.
        let mut block_pads: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        let mut br_pad: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        if chords {
            for e in &g.edges {
                if let Place::BrIfTaken(i) = e.place
                    && let Some(&b) = g.paddable.get(&i)
                    && !replace.contains_key(&i)
                {
                    let w = weight(e);
                    if w != 0 {
                        let list = block_pads.entry(b).or_default();
                        br_pad.insert(i, (b, list.len()));
                        list.push(w);
                    }
                }
            }
        }
        if chords {
            let mut taken: BTreeMap<usize, i64> = BTreeMap::new();
            for e in &g.edges {
                if let Place::BrIfTaken(i) = e.place
                    && !replace.contains_key(&i)
                    && !br_pad.contains_key(&i)
                {
                    taken.insert(i, weight(e));
                }
            }
            for e in &g.edges {
                let w = weight(e);
                match e.place {
                    Place::Before(i) if w != 0 && !replace.contains_key(&i) => {
                        before.entry(i).or_default().push(Ins::Dec(w))
                    }
                    Place::After(i) if w != 0 => after.entry(i).or_default().push(Ins::Dec(w)),
                    Place::SynthElse(i) if w != 0 => {
                        before.entry(i).or_default().push(Ins::Else(w))
                    }
                    Place::BrIfTaken(i)
                        if w != 0 && !replace.contains_key(&i) && !br_pad.contains_key(&i) =>
                    {
                        before.entry(i).or_default().push(Ins::Dec(w))
                    }
                    Place::BrIfFall(i) => {
                        let d = w - taken.get(&i).copied().unwrap_or(0);
                        if d != 0 {
                            after.entry(i).or_default().push(Ins::Dec(d));
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let mut live = vec![false; g.nodes.len()];
            live[0] = true;
            for e in &g.edges {
                live[e.to] = true;
            }
            for (v, node) in g.nodes.iter().enumerate() {
                if !live[v] || node.cost == 0 {
                    continue;
                }
                match node.start {
                    None => prologue.push(Ins::Dec(node.cost)),
                    Some(i) => after.entry(i).or_default().push(Ins::Dec(node.cost)),
                }
            }
        }
        // Header checks come after the header's own count (node mode), which
        // `psi(header, 0)` assumes.
        for (k, l) in g.loops.iter().enumerate() {
            if !l.on_back_edges {
                after
                    .entry(l.op)
                    .or_default()
                    .push(Ins::Check(psi(l.header, 0), loop_saves[k]));
            }
        }

        // A scratch local for the size operand of operators charged by size
        // and the index of tables with pads.
        let sized = !pads.is_empty()
            || ops.iter().any(|op| {
                super::size_charge(op).is_some()
                    || (self.tables_pass && matches!(op, Operator::CallIndirect { .. }))
            });
        let size_local = kinds.len() as u32;
        if sized {
            locals.push((1, ValType::I32));
        }
        // Five more for long copies (`Emit::copy`).
        let copy_locals = size_local + 1;
        if ops
            .iter()
            .any(|op| matches!(op, Operator::MemoryCopy { .. }))
        {
            locals.push((5, ValType::I32));
        }
        let mut f = Function::new(locals);
        let global = self.remaining_global();
        let check = self.check_func();
        let emitter = Emit {
            r,
            global,
            check,
            saves: &saves,
        };
        let emit = |f: &mut Function, ins: &Ins| emitter.ins(f, ins);
        for ins in &prologue {
            emit(&mut f, ins);
        }
        let last = ops.len() - 1;
        // Open frames of the original code, with the frames added around
        // them (3 for a hoisted loop: a branch out of it crosses them) and
        // the counts of the landing pads inside them (a block's: a branch
        // to the block or past it crosses their frames).
        let mut frames: Vec<(u32, &[i64])> = vec![(0, &[])];
        let adjust = |frames: &[(u32, &[i64])], d: u32| -> u32 {
            let crossed = &frames[frames.len().saturating_sub(d as usize)..];
            let reached = &frames[frames.len().saturating_sub(d as usize + 1)..];
            let around: u32 = crossed.iter().map(|f| f.0).sum();
            let pads: usize = reached.iter().map(|f| f.1.len()).sum();
            d + around + pads as u32
        };
        for (i, op) in ops.into_iter().enumerate() {
            let passes = before
                .get(&i)
                .is_some_and(|v| v.iter().any(|x| matches!(x, Ins::Pass(_))));
            // The count goes under a table call's index: the index waits in
            // the scratch local.
            let indirect = passes && matches!(op, Operator::CallIndirect { .. });
            if indirect {
                f.instruction(&Instruction::LocalSet(size_local));
            }
            for ins in before.get(&i).into_iter().flatten() {
                emit(&mut f, ins);
            }
            if indirect {
                f.instruction(&Instruction::LocalGet(size_local));
            }
            // Code no path reaches still validates: a `return` or the final
            // `end` there is given the stack of one that could not be
            // reached (nothing passes the count), and a call the wrapper.
            if !passes && (i == last || matches!(op, Operator::Return)) {
                f.instruction(&Instruction::Unreachable);
            }
            if let Some(charge) = super::size_charge(&op) {
                emitter.charge_size(&mut f, charge, size_local);
            }
            let hoist = hoisted.get(&i);
            if let Some(h) = hoist {
                let bt = h.result.map_or(BlockType::Empty, |t| {
                    BlockType::Result(self.val_type(t).expect("a checked value type"))
                });
                f.instruction(&Instruction::Block(bt));
                f.instruction(&Instruction::Loop(bt));
                f.instruction(&Instruction::Block(BlockType::Empty));
            }
            let frame = match op {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::TryTable { .. } => Some(true),
                Operator::End => Some(false),
                _ => None,
            };
            if matches!(op, Operator::End)
                && let Some(&(_, ws)) = frames.last()
                && !ws.is_empty()
            {
                // The block's own path goes past its pads; each pad takes
                // its count down and goes on to the block's end.
                let k = ws.len() as u32;
                f.instruction(&Instruction::Br(k));
                for (j, &w) in (0..).zip(ws) {
                    f.instruction(&Instruction::End);
                    emitter.dec(&mut f, w);
                    if j + 1 < k {
                        f.instruction(&Instruction::Br(k - 1 - j));
                    }
                }
            }
            match (replace.get(&i), pads.get(&i), &op) {
                (Some(ins), _, _) => {
                    let ins = match *ins {
                        Ins::BackBr(w, p, d, s) => Ins::BackBr(w, p, adjust(&frames, d), s),
                        Ins::BackBrIf(w, p, d, s) => Ins::BackBrIf(w, p, adjust(&frames, d), s),
                        other => other,
                    };
                    emit(&mut f, &ins)
                }
                (None, pads, Operator::BrTable { targets }) => {
                    let rds = targets
                        .targets()
                        .chain([Ok(targets.default())])
                        .map(|d| d.map(|d| adjust(&frames, d)))
                        .collect::<Result<Vec<u32>, _>>()
                        .map_err(|e| e.to_string())?;
                    match pads {
                        Some(pads) => {
                            emitter.table(&mut f, &rds, &g.tables[&i].targets, pads, size_local)
                        }
                        None => {
                            let (default, entries) = rds.split_last().expect("a default");
                            f.instruction(&Instruction::BrTable(entries.into(), *default));
                        }
                    }
                }
                (None, None, &Operator::Br { relative_depth }) => {
                    f.instruction(&Instruction::Br(adjust(&frames, relative_depth)));
                }
                (None, None, &Operator::BrIf { relative_depth }) => {
                    let d = adjust(&frames, relative_depth);
                    let d = match br_pad.get(&i) {
                        Some(&(b, j)) => d - block_pads[&b].len() as u32 + j as u32,
                        None => d,
                    };
                    f.instruction(&Instruction::BrIf(d));
                }
                (None, None, &Operator::Call { function_index })
                    if passes && function_index >= self.imported_funcs =>
                {
                    f.instruction(&Instruction::Call(self.internal_func(function_index)));
                }
                (
                    None,
                    None,
                    &Operator::CallIndirect {
                        type_index,
                        table_index,
                    },
                ) if passes && self.tables_pass => {
                    f.instruction(&Instruction::CallIndirect {
                        type_index: self.internal[&type_index].0,
                        table_index,
                    });
                }
                (None, None, &Operator::RefFunc { function_index })
                    if self.tables_pass && function_index >= self.imported_funcs =>
                {
                    f.instruction(&Instruction::RefFunc(self.internal_func(function_index)));
                }
                (None, None, &Operator::MemoryCopy { dst_mem, src_mem }) => {
                    emitter.copy(&mut f, dst_mem, src_mem, size_local, copy_locals);
                }
                _ => {
                    let inst = self.instruction(op).map_err(|e| e.to_string())?;
                    f.instruction(&inst);
                }
            }
            match frame {
                Some(true) => {
                    let ws = block_pads.get(&i).map_or(&[][..], |w| &w[..]);
                    for _ in ws {
                        f.instruction(&Instruction::Block(BlockType::Empty));
                    }
                    frames.push((if hoist.is_some() { 3 } else { 0 }, ws));
                }
                Some(false) => {
                    frames.pop();
                }
                None => {}
            }
            for ins in after.get(&i).into_iter().flatten() {
                emit(&mut f, ins);
            }
            if let Some(h) = hoisted_ends.get(&i) {
                // L fell through: on past `$done`.
                f.instruction(&Instruction::Br(2));
                f.instruction(&Instruction::End);
                emitter.call_check(&mut f, h.p, h.save);
                f.instruction(&Instruction::Br(0));
                f.instruction(&Instruction::End);
                f.instruction(&Instruction::End);
            }
        }
        Ok(f)
    }
}

/// Encodes [`Ins`] for one function: `r` is its counting local, `global` the
/// remaining-count global, `check` the function that calls the host.
pub(super) struct Emit<'s> {
    pub(super) r: u32,
    pub(super) global: u32,
    pub(super) check: u32,
    /// Locals and the scratch globals they are parked in, per save list.
    pub(super) saves: &'s [Vec<(u32, u32)>],
}

impl Emit<'_> {
    pub(super) fn dec(&self, f: &mut Function, w: i64) {
        f.instruction(&Instruction::LocalGet(self.r));
        self.minus(f, w);
        f.instruction(&Instruction::LocalSet(self.r));
    }

    /// Subtracts the constant `w` from the count on the stack, as an
    /// addition of `-w`: Cranelift lowers an addition of a constant to a
    /// three-operand `lea` but a subtraction to a two-operand `sub`, which
    /// needs a copy first wherever the count before it stays live (and it
    /// does: Cranelift recomputes `r - w` from it in every other block that
    /// uses the result, the check's cold path among them).
    pub(super) fn minus(&self, f: &mut Function, w: i64) {
        f.instruction(&Instruction::I64Const(w.wrapping_neg()));
        f.instruction(&Instruction::I64Add);
    }

    /// `r -= charge(operand)`, the operand (on top of the stack) left in place.
    pub(super) fn charge_size(&self, f: &mut Function, charge: super::SizeCharge, t: u32) {
        f.instruction(&Instruction::LocalTee(t));
        f.instruction(&Instruction::LocalGet(self.r));
        f.instruction(&Instruction::LocalGet(t));
        f.instruction(&Instruction::I64ExtendI32U);
        match charge {
            super::SizeCharge::Bytes => {
                f.instruction(&Instruction::I64Const(super::BULK_SHIFT.into()));
                f.instruction(&Instruction::I64ShrU);
            }
            super::SizeCharge::Pages => {
                f.instruction(&Instruction::I64Const(super::PAGE_CHARGE));
                f.instruction(&Instruction::I64Mul);
            }
        }
        f.instruction(&Instruction::I64Sub);
        f.instruction(&Instruction::LocalSet(self.r));
    }

    /// `memory.copy` (its operands on the stack, the length also in local
    /// `n`). A copy longer than [`COPY_LOOP_MIN`] bytes whose destination is
    /// 1 to [`COPY_WINDOW`] bytes above its source modulo 4 KiB moves 64
    /// bytes a turn in 16-byte loads and stores: the bytes up to where the
    /// destination is aligned to 64, the aligned middle, then the rest, in
    /// that order when
    /// the destination is at or below the source and in the reverse order
    /// (each part back to front) when above, so that an overlapping copy
    /// moves what `memory.copy` moves. Every other copy, and one that would
    /// go out of bounds (it traps before writing anything, as the original
    /// does), is the operator itself.
    ///
    /// This is for the CPU, not the count (charged for the whole length
    /// before, as always): wasmtime calls glibc's `memmove` for
    /// `memory.copy`, which copies 2 KiB to 1 MiB with `rep movsb`, and on
    /// AMD EPYC (Zen) that runs 10-12x slower when the destination is a few
    /// bytes above the source modulo 4 KiB, as two buffers `malloc` placed
    /// one after the other often are (the `bulk` probe of `proctor bench
    /// lottery`: 1.7 G instructions/s against 8-37 for everything else).
    /// The loop runs such a copy at about the speed `rep movsb` has
    /// elsewhere (1.1-1.4x of its time), so it is kept to the window where
    /// `rep movsb` is slow: 1 to 15 bytes, measured on that CPU (16 and
    /// more ran at the usual speed). `t` is the first of five scratch
    /// locals: destination, source, offset, end of the aligned middle, its
    /// start.
    pub(super) fn copy(&self, f: &mut Function, dst_mem: u32, src_mem: u32, n: u32, t: u32) {
        use Instruction as I;
        let (d, s, i, m, h) = (t, t + 1, t + 2, t + 3, t + 4);
        let put = |f: &mut Function, code: &[I<'_>]| {
            for ins in code {
                f.instruction(ins);
            }
        };
        let copy = I::MemoryCopy { dst_mem, src_mem };
        // Whether the `n` bytes from local `at` run past the end of `mem`.
        let past_end = |at: u32, mem: u32| {
            [
                I::LocalGet(at),
                I::I64ExtendI32U,
                I::LocalGet(n),
                I::I64ExtendI32U,
                I::I64Add,
                I::MemorySize(mem),
                I::I64ExtendI32U,
                I::I64Const(16),
                I::I64Shl,
                I::I64GtU,
            ]
        };
        // The bytes before offset `h`, and those from offset `m` on.
        let head = [I::LocalGet(d), I::LocalGet(s), I::LocalGet(h), copy.clone()];
        let rest = [
            I::LocalGet(d),
            I::LocalGet(m),
            I::I32Add,
            I::LocalGet(s),
            I::LocalGet(m),
            I::I32Add,
            I::LocalGet(n),
            I::LocalGet(m),
            I::I32Sub,
            copy.clone(),
        ];
        // The 16 bytes at `s + i + 16k` to `d + i + 16k`.
        let vector = |f: &mut Function, k: u64| {
            let at = |memory_index| wasm_encoder::MemArg {
                offset: 16 * k,
                align: 0,
                memory_index,
            };
            put(
                f,
                &[
                    I::LocalGet(d),
                    I::LocalGet(i),
                    I::I32Add,
                    I::LocalGet(s),
                    I::LocalGet(i),
                    I::I32Add,
                    I::V128Load(at(src_mem)),
                    I::V128Store(at(dst_mem)),
                ],
            );
        };
        put(f, &[I::LocalSet(n), I::LocalSet(s), I::LocalSet(d)]);
        put(f, &[I::Block(BlockType::Empty), I::Block(BlockType::Empty)]);
        // One copy if short, outside the window, or out of bounds.
        put(
            f,
            &[
                I::LocalGet(n),
                I::I32Const(COPY_LOOP_MIN as i32),
                I::I32LeU,
                I::BrIf(0),
                I::LocalGet(d),
                I::LocalGet(s),
                I::I32Sub,
                I::I32Const(4095),
                I::I32And,
                I::I32Const(-1),
                I::I32Add,
                I::I32Const(COPY_WINDOW as i32),
                I::I32GeU,
                I::BrIf(0),
            ],
        );
        put(f, &past_end(d, dst_mem));
        f.instruction(&I::BrIf(0));
        put(f, &past_end(s, src_mem));
        f.instruction(&I::BrIf(0));
        // The head up to h (the destination aligned to 64), the middle in
        // turns of 64 bytes up to m, and the rest up to n.
        put(
            f,
            &[
                I::I32Const(0),
                I::LocalGet(d),
                I::I32Sub,
                I::I32Const(63),
                I::I32And,
                I::LocalTee(h),
                I::LocalGet(n),
                I::LocalGet(h),
                I::I32Sub,
                I::I32Const(-64),
                I::I32And,
                I::I32Add,
                I::LocalSet(m),
            ],
        );
        // Front to back when the destination is at or below the source.
        put(f, &[I::LocalGet(d), I::LocalGet(s), I::I32LeU]);
        f.instruction(&I::If(BlockType::Empty));
        put(f, &head);
        put(
            f,
            &[I::LocalGet(h), I::LocalSet(i), I::Loop(BlockType::Empty)],
        );
        for k in 0..4 {
            vector(f, k);
        }
        put(
            f,
            &[
                I::LocalGet(i),
                I::I32Const(64),
                I::I32Add,
                I::LocalTee(i),
                I::LocalGet(m),
                I::I32LtU,
                I::BrIf(0),
                I::End,
            ],
        );
        put(f, &rest);
        // Back to front otherwise.
        f.instruction(&I::Else);
        put(f, &rest);
        put(
            f,
            &[I::LocalGet(m), I::LocalSet(i), I::Loop(BlockType::Empty)],
        );
        put(
            f,
            &[I::LocalGet(i), I::I32Const(-64), I::I32Add, I::LocalSet(i)],
        );
        for k in (0..4).rev() {
            vector(f, k);
        }
        put(
            f,
            &[
                I::LocalGet(i),
                I::LocalGet(h),
                I::I32GtU,
                I::BrIf(0),
                I::End,
            ],
        );
        put(f, &head);
        put(f, &[I::End, I::Br(1), I::End]);
        put(
            f,
            &[I::LocalGet(d), I::LocalGet(s), I::LocalGet(n), copy, I::End],
        );
    }

    /// Stores the exact remaining count, `r − ψ`.
    pub(super) fn sync(&self, f: &mut Function, p: i64) {
        f.instruction(&Instruction::LocalGet(self.r));
        if p != 0 {
            self.minus(f, p);
        }
        f.instruction(&Instruction::GlobalSet(self.global));
    }

    pub(super) fn reload(&self, f: &mut Function, p: i64) {
        f.instruction(&Instruction::GlobalGet(self.global));
        if p != 0 {
            f.instruction(&Instruction::I64Const(p));
            f.instruction(&Instruction::I64Add);
        }
        f.instruction(&Instruction::LocalSet(self.r));
    }

    pub(super) fn call_check(&self, f: &mut Function, p: i64, save: usize) {
        let parked = &self.saves[save];
        for &(l, g) in parked {
            f.instruction(&Instruction::LocalGet(l));
            f.instruction(&Instruction::GlobalSet(g));
        }
        self.sync(f, p);
        f.instruction(&Instruction::Call(self.check));
        self.reload(f, p);
        for &(l, g) in parked {
            f.instruction(&Instruction::GlobalGet(g));
            f.instruction(&Instruction::LocalSet(l));
        }
    }

    /// The cold end of a back edge to the loop at depth `l` whose check
    /// found the count spent: the check's call, or for a loop whose call is
    /// outside it, the branch there.
    fn spent(&self, f: &mut Function, p: i64, l: u32, save: Option<usize>) {
        match save {
            Some(save) => {
                self.call_check(f, p, save);
                f.instruction(&Instruction::Br(l));
            }
            None => {
                f.instruction(&Instruction::Br(l + 1));
            }
        }
    }

    /// A `br_table` whose entries `rds` (the default last; going to nodes
    /// `to`) need different counts: the entries going to a node of `pads`
    /// branch to a landing pad that counts the pad's weight and branches on
    /// to the entry's label; the others go straight there. Pads are blocks
    /// opened around the table, the first innermost; only tables whose
    /// branches carry no values get them. The index waits in local `index`
    /// while the blocks open.
    pub(super) fn table(
        &self,
        f: &mut Function,
        rds: &[u32],
        to: &[Option<usize>],
        pads: &[(usize, i64)],
        index: u32,
    ) {
        let k = pads.len() as u32;
        f.instruction(&Instruction::LocalSet(index));
        for _ in 0..k {
            f.instruction(&Instruction::Block(BlockType::Empty));
        }
        f.instruction(&Instruction::LocalGet(index));
        let pad = |node: Option<usize>| pads.iter().position(|&(n, _)| Some(n) == node);
        let mapped: Vec<u32> = rds
            .iter()
            .zip(to)
            .map(|(&rd, &node)| pad(node).map_or(rd + k, |p| p as u32))
            .collect();
        let (default, entries) = mapped.split_last().expect("a table has a default");
        f.instruction(&Instruction::BrTable(entries.into(), *default));
        for (p, &(node, w)) in pads.iter().enumerate() {
            f.instruction(&Instruction::End);
            self.dec(f, w);
            let rd = rds
                .iter()
                .zip(to)
                .find_map(|(&rd, &n)| (n == Some(node)).then_some(rd))
                .expect("a pad's node is an entry's");
            f.instruction(&Instruction::Br(rd + k - 1 - p as u32));
        }
    }

    pub(super) fn ins(&self, f: &mut Function, ins: &Ins) {
        match *ins {
            Ins::Dec(w) => self.dec(f, w),
            Ins::Else(w) => {
                f.instruction(&Instruction::Else);
                self.dec(f, w);
            }
            Ins::Sync(p) => self.sync(f, p),
            Ins::Reload(p) => self.reload(f, p),
            Ins::Pass(p) => {
                f.instruction(&Instruction::LocalGet(self.r));
                if p != 0 {
                    self.minus(f, p);
                }
            }
            Ins::Take(p) => {
                if p != 0 {
                    f.instruction(&Instruction::I64Const(p));
                    f.instruction(&Instruction::I64Add);
                }
                f.instruction(&Instruction::LocalSet(self.r));
            }
            Ins::BackBr(0, p, l, save) => {
                f.instruction(&Instruction::LocalGet(self.r));
                f.instruction(&Instruction::I64Const(p));
                f.instruction(&Instruction::I64GtS);
                f.instruction(&Instruction::BrIf(l));
                self.spent(f, p, l, save);
            }
            Ins::BackBr(w, p, l, save) => {
                f.instruction(&Instruction::LocalGet(self.r));
                f.instruction(&Instruction::I64Const(p.wrapping_add(w)));
                f.instruction(&Instruction::I64LeS);
                f.instruction(&Instruction::If(BlockType::Empty));
                self.dec(f, w);
                self.spent(f, p, l + 1, save);
                f.instruction(&Instruction::End);
                self.dec(f, w);
                f.instruction(&Instruction::Br(l));
            }
            Ins::BackBrIf(w, p, l, save) => {
                f.instruction(&Instruction::If(BlockType::Empty));
                self.ins(f, &Ins::BackBr(w, p, l + 1, save));
                f.instruction(&Instruction::End);
            }
            Ins::Check(p, save) => {
                f.instruction(&Instruction::LocalGet(self.r));
                f.instruction(&Instruction::I64Const(p));
                f.instruction(&Instruction::I64LeS);
                f.instruction(&Instruction::If(BlockType::Empty));
                self.call_check(f, p, save);
                f.instruction(&Instruction::End);
            }
        }
    }
}

/// Turns a body into its internal version's: the count arrives as the
/// parameter after the function's own (`params`), so the locals declared
/// after them move up by one; and the body is wrapped in an exit block of
/// the function's result type, so that every branch that left the function
/// lands on the block's end instead, and the only exits left, `return` and
/// the final `end`, can give the count back as the last result. The
/// added operators cost nothing.
fn pass_count<'a>(
    ops: Vec<Operator<'a>>,
    costs: Vec<i64>,
    params: u32,
    exit: ExitBlock,
) -> (Vec<Operator<'a>>, Vec<i64>) {
    let shift = |l: u32| if l >= params { l + 1 } else { l };
    let blockty = match exit {
        ExitBlock::Empty => wasmparser::BlockType::Empty,
        ExitBlock::Value(t) => wasmparser::BlockType::Type(t),
        ExitBlock::Type(t) => wasmparser::BlockType::FuncType(t),
    };
    let n = ops.len();
    let mut out = Vec::with_capacity(n + 2);
    let mut out_costs = Vec::with_capacity(n + 2);
    out.push(Operator::Block { blockty });
    out_costs.push(0);
    for (i, (op, c)) in ops.into_iter().zip(costs).enumerate() {
        if i + 1 == n {
            // The function's own `end`: the exit block closes first.
            out.push(Operator::End);
            out_costs.push(0);
        }
        out.push(super::inline::renumber_locals(op, shift));
        out_costs.push(c);
    }
    (out, out_costs)
}
