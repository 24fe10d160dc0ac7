//! Each function's control-flow graph, its spanning tree and chord
//! weights, and the liveness the emitter uses around checks.

use super::*;
use std::collections::BTreeMap;
use wasmparser::Operator;

/// Where counting code goes, relative to operator `i`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    Before(usize),
    After(usize),
    /// The false edge of an `if` without `else`: a synthesized `else` arm.
    SynthElse(usize),
    /// The taken edge of the `br_if` at `i`.
    BrIfTaken(usize),
    /// The fall-through edge of the `br_if` at `i`.
    BrIfFall(usize),
    /// An edge of the `br_table` at `i`.
    Table(usize),
}

impl Place {
    pub(super) fn op(self) -> usize {
        match self {
            Place::Before(i)
            | Place::After(i)
            | Place::SynthElse(i)
            | Place::BrIfTaken(i)
            | Place::BrIfFall(i)
            | Place::Table(i) => i,
        }
    }
}

pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) place: Place,
    pub(super) back: bool,
}

pub(super) struct Node {
    pub(super) cost: i64,
    pub(super) depth: u32,
    /// Where code at the start of this node goes (`None`: function entry).
    pub(super) start: Option<usize>,
}

/// A place where the count must be exact: node, cost of the node's operators
/// up to and including this point.
pub(super) struct Exact {
    pub(super) node: usize,
    pub(super) so_far: i64,
    pub(super) at: Place,
    pub(super) reload: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Func,
    Block,
    Loop,
    If,
}

pub(super) struct Frame {
    pub(super) kind: Kind,
    /// For loops: the index in [`Graph::loops`] and the label's arity.
    pub(super) looping: Option<(usize, u32)>,
    /// Branch target: the end node (block, if) or the header (loop).
    pub(super) label: Option<usize>,
    pub(super) if_from: Option<usize>,
    pub(super) has_else: bool,
    /// How many values a branch to this frame's label carries.
    pub(super) arity: u32,
    /// The operator that opened the frame.
    pub(super) op: usize,
}

/// The control-flow graph of one function body.
#[derive(Default)]
pub(super) struct Graph {
    pub(super) nodes: Vec<Node>,
    /// The node each operator belongs to (`None`: dead code).
    pub(super) owner: Vec<Option<usize>>,
    pub(super) edges: Vec<Edge>,
    pub(super) in_edges: Vec<u32>,
    pub(super) exact: Vec<Exact>,
    pub(super) loops: Vec<Loop>,
    pub(super) calls_others: bool,
    /// Every `br_table`, by operator index.
    pub(super) tables: BTreeMap<usize, Table>,
    /// `br_if`s whose taken edge goes to the end of a `block` without
    /// results (by operator index), with that block's operator: their
    /// count can go on a landing pad inside the block.
    pub(super) paddable: BTreeMap<usize, usize>,
}

/// Landing pads for `br_if`s at most per block (each is one more frame
/// around the block's body).
pub(super) const BR_IF_PADS: usize = 8;
/// A function of more operators than this (after unrolling and inlining)
/// is *large*: in practice an interpreter's dispatch function (Lua's
/// `luaV_execute`, SQLite's `sqlite3VdbeExec`, PCRE2's `match`), where
/// every register is taken and regalloc2 spills most values already. Two
/// rewrites that pay elsewhere cost there, by what they change in its
/// register allocation:
/// - `br_if` landing pads ([`Graph::paddable`]): `luaV_execute` (between
///   10,000 and 20,000 operators) went from 1.112x to 1.131x of its
///   unmetered machine instructions with them; a limit of 10,000 measured
///   the same on the corpus as this one (1.144x);
/// - parking locals around checks' calls (`Rewriter::meter`): without it
///   there, pcre2grep went from 1.168x to 1.146x, Lua from 1.168x to
///   1.156x and SQLite from 1.144x to 1.142x, the rest unchanged.
pub(super) const LARGE_FUNCTION_OPS: usize = 5000;

/// A `br_table` reached by live code.
pub(super) struct Table {
    /// The node each of its entries (the default last) goes to; `None`:
    /// out of the function.
    pub(super) targets: Vec<Option<usize>>,
    /// How many values its branches carry.
    pub(super) arity: u32,
}

/// A loop reached by live code.
pub(super) struct Loop {
    /// The `loop` operator.
    pub(super) op: usize,
    pub(super) header: usize,
    /// Edges back to the header.
    pub(super) back: Vec<usize>,
    /// Every back edge is a `br`, or a `br_if` to a label without values: the
    /// checks can go on the back edges, where they cost no extra jump.
    pub(super) on_back_edges: bool,
    /// The loop's `end`.
    pub(super) end: usize,
}

impl Graph {
    pub(super) fn node(&mut self, depth: u32, start: Option<usize>) -> usize {
        self.nodes.push(Node {
            cost: 0,
            depth,
            start,
        });
        self.in_edges.push(0);
        self.nodes.len() - 1
    }
    pub(super) fn edge(&mut self, from: usize, to: usize, place: Place, back: bool) {
        self.in_edges[to] += 1;
        self.edges.push(Edge {
            from,
            to,
            place,
            back,
        });
    }
    /// Whether a branch to relative depth `rd` goes back to a loop header;
    /// registers the edge about to be added with its loop.
    pub(super) fn back_edge(&mut self, frames: &[Frame], rd: u32, checkable: bool) -> bool {
        let Some((l, _)) = frames[frames.len() - 1 - rd as usize].looping else {
            return false;
        };
        let edge = self.edges.len();
        self.loops[l].back.push(edge);
        self.loops[l].on_back_edges &= checkable;
        true
    }

    pub(super) fn exact(&mut self, node: usize, at: Place, reload: Option<usize>) {
        let so_far = self.nodes[node].cost;
        self.exact.push(Exact {
            node,
            so_far,
            at,
            reload,
        });
    }

    pub(super) fn build(
        ops: &[Operator<'_>],
        costs: &[i64],
        imported_funcs: u32,
        types: &[Signature],
    ) -> Result<Graph, String> {
        let mut g = Graph::default();
        let mut pads_per_block: BTreeMap<usize, usize> = BTreeMap::new();
        let entry = g.node(0, None);
        // Entering a function costs 1 (so does an empty function).
        g.nodes[entry].cost = 1;
        let mut cur = Some(entry);
        let mut depth = 0u32;
        let mut frames = vec![Frame {
            kind: Kind::Func,
            looping: None,
            label: None,
            if_from: None,
            has_else: false,
            arity: u32::MAX,
            op: 0,
        }];
        for (i, op) in ops.iter().enumerate() {
            g.owner.push(cur);
            if let Some(v) = cur {
                g.nodes[v].cost += costs[i];
            }
            let target = |frames: &[Frame], rd: u32| -> Result<Option<usize>, String> {
                let f = frames
                    .len()
                    .checked_sub(1 + rd as usize)
                    .and_then(|k| frames.get(k))
                    .ok_or("branch depth out of range")?;
                Ok(if f.kind == Kind::Func { None } else { f.label })
            };
            // Values a block of type `ty` leaves (u32::MAX: unknown type).
            let results = |ty: &wasmparser::BlockType| match ty {
                wasmparser::BlockType::Empty => 0,
                wasmparser::BlockType::Type(_) => 1,
                wasmparser::BlockType::FuncType(t) => types
                    .get(*t as usize)
                    .map_or(u32::MAX, |s| s.1.len() as u32),
            };
            match op {
                Operator::Block { blockty } => {
                    let end = g.node(depth, None);
                    frames.push(Frame {
                        kind: Kind::Block,
                        looping: None,
                        label: Some(end),
                        if_from: None,
                        has_else: false,
                        arity: results(blockty),
                        op: i,
                    });
                }
                Operator::Loop { blockty } => {
                    depth += 1;
                    let arity = match blockty {
                        wasmparser::BlockType::FuncType(t) => types
                            .get(*t as usize)
                            .map_or(u32::MAX, |s| s.0.len() as u32),
                        _ => 0,
                    };
                    let label = cur.map(|v| {
                        let h = g.node(depth, Some(i));
                        g.edge(v, h, Place::Before(i), false);
                        g.loops.push(Loop {
                            op: i,
                            header: h,
                            back: Vec::new(),
                            on_back_edges: true,
                            end: usize::MAX,
                        });
                        h
                    });
                    cur = label;
                    frames.push(Frame {
                        kind: Kind::Loop,
                        looping: label.map(|_| (g.loops.len() - 1, arity)),
                        label,
                        if_from: None,
                        has_else: false,
                        arity,
                        op: i,
                    });
                }
                Operator::If { blockty } => {
                    let end = g.node(depth, None);
                    frames.push(Frame {
                        kind: Kind::If,
                        looping: None,
                        label: Some(end),
                        if_from: cur,
                        has_else: false,
                        arity: results(blockty),
                        op: i,
                    });
                    cur = cur.map(|v| {
                        let t = g.node(depth, Some(i));
                        g.edge(v, t, Place::After(i), false);
                        t
                    });
                }
                Operator::Else => {
                    let f = frames.last_mut().ok_or("else outside if")?;
                    let (end, from) = (f.label.ok_or("else without if")?, f.if_from);
                    f.has_else = true;
                    if let Some(v) = cur {
                        g.edge(v, end, Place::Before(i), false);
                    }
                    cur = from.map(|a| {
                        let n = g.node(depth, Some(i));
                        g.edge(a, n, Place::After(i), false);
                        n
                    });
                }
                Operator::End => {
                    let f = frames.pop().ok_or("unbalanced end")?;
                    match f.kind {
                        Kind::Func => {
                            if let Some(v) = cur {
                                g.exact(v, Place::Before(i), None);
                            }
                            cur = None;
                        }
                        Kind::Loop => {
                            depth -= 1;
                            if let Some((l, _)) = f.looping {
                                g.loops[l].end = i;
                            }
                        }
                        Kind::Block | Kind::If => {
                            let end = f.label.ok_or("block without end node")?;
                            if let Some(v) = cur {
                                g.edge(v, end, Place::Before(i), false);
                            }
                            if f.kind == Kind::If
                                && !f.has_else
                                && let Some(a) = f.if_from
                            {
                                g.edge(a, end, Place::SynthElse(i), false);
                            }
                            cur = (g.in_edges[end] > 0).then(|| {
                                g.nodes[end].start = Some(i);
                                end
                            });
                        }
                    }
                }
                Operator::Br { relative_depth } => {
                    if let Some(v) = cur {
                        match target(&frames, *relative_depth)? {
                            Some(t) => {
                                let back = g.back_edge(&frames, *relative_depth, true);
                                g.edge(v, t, Place::Before(i), back)
                            }
                            None => g.exact(v, Place::Before(i), None),
                        }
                    }
                    cur = None;
                }
                Operator::BrIf { relative_depth } => {
                    if let Some(v) = cur {
                        match target(&frames, *relative_depth)? {
                            Some(t) => {
                                let f = &frames[frames.len() - 1 - *relative_depth as usize];
                                let simple = f.looping.is_some_and(|(_, arity)| arity == 0);
                                if f.kind == Kind::Block
                                    && f.arity == 0
                                    && ops.len() <= LARGE_FUNCTION_OPS
                                {
                                    let n = pads_per_block.entry(f.op).or_insert(0);
                                    if *n < BR_IF_PADS {
                                        *n += 1;
                                        g.paddable.insert(i, f.op);
                                    }
                                }
                                let back = g.back_edge(&frames, *relative_depth, simple);
                                g.edge(v, t, Place::BrIfTaken(i), back)
                            }
                            None => g.exact(v, Place::Before(i), None),
                        }
                        let n = g.node(depth, Some(i));
                        g.edge(v, n, Place::BrIfFall(i), false);
                        cur = Some(n);
                    }
                }
                Operator::BrTable { targets } => {
                    if let Some(v) = cur {
                        let mut seen = Vec::new();
                        let mut exits = false;
                        let mut table = Table {
                            targets: Vec::new(),
                            arity: 0,
                        };
                        for rd in targets.targets().chain([Ok(targets.default())]) {
                            let rd = rd.map_err(|e| e.to_string())?;
                            let to = target(&frames, rd)?;
                            table.targets.push(to);
                            table.arity = frames[frames.len() - 1 - rd as usize].arity;
                            match to {
                                Some(t) if !seen.contains(&t) => {
                                    seen.push(t);
                                    let back = g.back_edge(&frames, rd, false);
                                    g.edge(v, t, Place::Table(i), back);
                                }
                                Some(_) => {}
                                None => exits = true,
                            }
                        }
                        g.tables.insert(i, table);
                        if exits {
                            g.exact(v, Place::Before(i), None);
                        }
                    }
                    cur = None;
                }
                Operator::Return => {
                    if let Some(v) = cur {
                        g.exact(v, Place::Before(i), None);
                    }
                    cur = None;
                }
                Operator::Unreachable => cur = None,
                Operator::Call { function_index } => {
                    if let Some(v) = cur {
                        g.exact(v, Place::Before(i), Some(i));
                        g.calls_others |= *function_index >= imported_funcs;
                    }
                }
                Operator::CallIndirect { .. } => {
                    if let Some(v) = cur {
                        g.exact(v, Place::Before(i), Some(i));
                        g.calls_others = true;
                    }
                }
                Operator::ReturnCall { .. }
                | Operator::ReturnCallIndirect { .. }
                | Operator::ReturnCallRef { .. }
                | Operator::CallRef { .. }
                | Operator::TryTable { .. }
                | Operator::Throw { .. }
                | Operator::ThrowRef
                | Operator::Try { .. }
                | Operator::Catch { .. }
                | Operator::CatchAll
                | Operator::Rethrow { .. }
                | Operator::Delegate { .. }
                | Operator::BrOnNull { .. }
                | Operator::BrOnNonNull { .. }
                | Operator::BrOnCast { .. }
                | Operator::BrOnCastFail { .. } => {
                    return Err(format!("operator {op:?} is not supported by the meter"));
                }
                _ => {}
            }
        }
        Ok(g)
    }

    /// The locals live at the start of each node (bit sets over `locals`
    /// locals): backward dataflow to a fixed point. `None` for functions too
    /// large to analyse cheaply (the sets would take more than 8 MiB, or the
    /// fixed point more than 32 passes): liveness only guides parking, an
    /// optimization.
    pub(super) fn live_in(&self, ops: &[Operator<'_>], locals: usize) -> Option<Vec<Vec<u64>>> {
        let words = locals.div_ceil(64);
        let n = self.nodes.len();
        if n.saturating_mul(words) > 1 << 20 {
            return None;
        }
        let (mut gen_, mut kill) = (vec![vec![0u64; words]; n], vec![vec![0u64; words]; n]);
        for (op, owner) in ops.iter().zip(&self.owner) {
            let Some(v) = *owner else { continue };
            match op {
                Operator::LocalGet { local_index } => {
                    let (w, b) = (*local_index as usize / 64, local_index % 64);
                    if kill[v][w] >> b & 1 == 0 {
                        gen_[v][w] |= 1 << b;
                    }
                }
                Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                    kill[v][*local_index as usize / 64] |= 1 << (local_index % 64);
                }
                _ => {}
            }
        }
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in &self.edges {
            succ[e.from].push(e.to);
        }
        let mut live = gen_.clone();
        let mut changed = true;
        for _ in 0..32 {
            if !changed {
                return Some(live);
            }
            changed = false;
            for v in (0..n).rev() {
                for w in 0..words {
                    let out = succ[v].iter().fold(0u64, |acc, &s| acc | live[s][w]);
                    let new = gen_[v][w] | (out & !kill[v][w]);
                    if new != live[v][w] {
                        live[v][w] = new;
                        changed = true;
                    }
                }
            }
        }
        (!changed).then_some(live)
    }

    /// Potentials `φ` over a spanning tree chosen by Kruskal, hot edges first;
    /// `None` when some `br_table` would need unequal weights. Among the
    /// edges of one loop depth, a `br_if`'s taken edge goes before its
    /// fall-through, so that the latter carries the count, unless the taken
    /// edge can have a landing pad (`Graph::paddable`): then the
    /// fall-through, the path compilers lay out as the likely one, goes
    /// first and the taken edge's count, if any, goes on the pad.
    pub(super) fn potentials(&self) -> Option<Vec<i64>> {
        let n = self.nodes.len();
        let mut order: Vec<usize> = (0..self.edges.len()).collect();
        let rank = |e: &Edge| -> (u8, std::cmp::Reverse<u32>, u8) {
            let depth = self.nodes[e.from].depth.min(self.nodes[e.to].depth);
            let kind = match e.place {
                Place::Table(_) => return (0, std::cmp::Reverse(0), 0),
                _ if e.back => 3,
                Place::BrIfTaken(i) if self.paddable.contains_key(&i) => 2,
                Place::BrIfFall(i) if self.paddable.contains_key(&i) => 0,
                Place::BrIfTaken(_) => 0,
                Place::BrIfFall(_) => 2,
                _ => 1,
            };
            (1, std::cmp::Reverse(depth), kind)
        };
        order.sort_by_key(|&k| rank(&self.edges[k]));
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let mut adj: Vec<Vec<(usize, bool)>> = vec![Vec::new(); n];
        for k in order {
            let e = &self.edges[k];
            let (a, b) = (find(&mut parent, e.from), find(&mut parent, e.to));
            if a != b {
                parent[a] = b;
                adj[e.from].push((e.to, true));
                adj[e.to].push((e.from, false));
            }
        }
        let mut phi = vec![None; n];
        phi[0] = Some(self.nodes[0].cost);
        let mut stack = vec![0usize];
        while let Some(a) = stack.pop() {
            let pa = phi[a].expect("visited");
            for &(b, forward) in &adj[a] {
                if phi[b].is_none() {
                    // Forward tree edge a -> b: φ(b) = φ(a) + c(b); backward
                    // (b -> a): φ(a) = φ(b) + c(a).
                    phi[b] = Some(if forward {
                        pa + self.nodes[b].cost
                    } else {
                        pa - self.nodes[a].cost
                    });
                    stack.push(b);
                }
            }
        }
        // Nodes never reached (dead code) keep 0; no live edge touches them.
        let phi: Vec<i64> = phi.into_iter().map(|p| p.unwrap_or(0)).collect();
        // A table whose edges need different weights gets landing pads
        // (`Emit::table`), which take no values: one whose branches carry
        // values must have a single weight.
        let mut tables: BTreeMap<usize, i64> = BTreeMap::new();
        for e in &self.edges {
            if let Place::Table(i) = e.place {
                let w = phi[e.from] + self.nodes[e.to].cost - phi[e.to];
                if *tables.entry(i).or_insert(w) != w && self.tables[&i].arity != 0 {
                    return None;
                }
            }
        }
        Some(phi)
    }
}
