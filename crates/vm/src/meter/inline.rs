//! Inlining small leaf functions called in small loops.

use super::*;
use std::collections::BTreeMap;
use wasmparser::{FunctionBody, Operator};

/// Largest function inlined, in operators.
pub(super) const INLINE_MAX_OPS: usize = 100;
/// Operators inlining may add to a function: at least this many, at most
/// the function's own size beyond that.
pub(super) const INLINE_MIN_BUDGET: usize = 1000;
/// Calls are inlined where they run often: in a loop of at most this many
/// operators, or outside loops in a function of at most this many.
pub(super) const INLINE_MAX_REGION: usize = 400;

/// A small leaf function whose calls the rewriter replaces by its body (see
/// [`inline`]).
pub(super) struct Inlinee {
    /// The body's bytes and their offset in the module.
    pub(super) bytes: Vec<u8>,
    pub(super) offset: usize,
    pub(super) params: Vec<wasmparser::ValType>,
    /// Declared locals, after the parameters.
    pub(super) locals: Vec<wasmparser::ValType>,
    pub(super) result: Option<wasmparser::ValType>,
}

impl Inlinee {
    /// `Some` for a function that calls nothing, has at most one result,
    /// numeric locals only and at most [`INLINE_MAX_OPS`] operators.
    pub(super) fn new(
        body: &FunctionBody<'_>,
        params: &[wasmparser::ValType],
        results: &[wasmparser::ValType],
    ) -> Option<Inlinee> {
        if results.len() > 1 {
            return None;
        }
        let mut locals = Vec::new();
        for l in body.get_locals_reader().ok()? {
            let (n, t) = l.ok()?;
            if n as usize > INLINE_MAX_OPS - locals.len() {
                return None;
            }
            locals.extend(std::iter::repeat_n(t, n as usize));
        }
        if !params
            .iter()
            .chain(&locals)
            .all(|&t| scratch_kind(t).is_some())
        {
            return None;
        }
        let mut ops = body.get_operators_reader().ok()?;
        for _ in 0..=INLINE_MAX_OPS {
            match ops.read().ok()? {
                Operator::End if ops.eof() => {
                    return Some(Inlinee {
                        bytes: body.as_bytes().to_vec(),
                        offset: body.range().start,
                        params: params.to_vec(),
                        locals,
                        result: results.first().copied(),
                    });
                }
                Operator::Call { .. }
                | Operator::CallIndirect { .. }
                | Operator::CallRef { .. }
                | Operator::ReturnCall { .. }
                | Operator::ReturnCallIndirect { .. }
                | Operator::ReturnCallRef { .. }
                | Operator::TryTable { .. }
                | Operator::Try { .. }
                | Operator::Throw { .. }
                | Operator::ThrowRef
                | Operator::Rethrow { .. }
                | Operator::Delegate { .. } => return None,
                _ => {}
            }
        }
        None
    }

    pub(super) fn operators(&self) -> Result<Vec<Operator<'_>>, String> {
        let body = FunctionBody::new(wasmparser::BinaryReader::new(&self.bytes, self.offset));
        body.get_operators_reader()
            .and_then(|r| r.into_iter().collect())
            .map_err(|e| e.to_string())
    }
}

/// Replaces calls to small leaf functions by their bodies (a body that does
/// not parse is left as a call, for the compiler to reject).
///
/// A leaf function with a loop has to check the count in it, and the
/// check's call makes it a non-leaf: a stack-limit check and callee-saved
/// registers saved and restored on every call, which for `memcmp` on short
/// words costs more than the loop (wordfreq: 1.65x the time in `memcmp`).
/// Inlined into its caller, which calls anyway, it costs nothing of that;
/// nor does the call's count synchronisation.
///
/// `call $f` becomes: the arguments set into fresh locals, the declared
/// locals zeroed, and `block (result)` body `end`, where `return` is a `br`
/// to that block (the function's own label is the block's: other branches
/// keep their depths). The block costs 2, what `call` and entering `$f`
/// cost; the added operators cost nothing, so the count is unchanged.
/// Sites share one set of locals per callee. The inlined code adds at most
/// the function's own size, or [`INLINE_MIN_BUDGET`] operators, and all of
/// it no more operators than the module's code has bytes (`module_budget`).
pub(super) fn inline<'a>(
    ops: Vec<Operator<'a>>,
    inlinees: &'a BTreeMap<u32, Inlinee>,
    first_local: u32,
    module_budget: &mut usize,
) -> Inlined<'a> {
    let callee = |op: &Operator<'_>| match op {
        Operator::Call { function_index } => {
            inlinees.get(function_index).map(|i| (*function_index, i))
        }
        _ => None,
    };
    if !ops.iter().any(|op| callee(op).is_some()) {
        let costs = ops.iter().map(cost).collect();
        return Inlined {
            ops,
            costs,
            locals: Vec::new(),
        };
    }
    let mut budget = ops.len().max(INLINE_MIN_BUDGET).min(*module_budget);
    let region = regions(&ops);
    // Per callee: its operators and its first local here.
    type Body<'a> = (Result<Vec<Operator<'a>>, String>, u32);
    let mut bodies: BTreeMap<u32, Body<'a>> = BTreeMap::new();
    let mut extra = Vec::new();
    let mut out = Vec::with_capacity(ops.len());
    let mut costs = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let Some((f, inl)) = callee(&op).filter(|_| region[i] <= INLINE_MAX_REGION) else {
            costs.push(cost(&op));
            out.push(op);
            continue;
        };
        let site = match bodies.entry(f) {
            std::collections::btree_map::Entry::Occupied(e) => Some(&*e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                let base = first_local + extra.len() as u32;
                (base as usize + inl.params.len() + inl.locals.len() < MAX_LOCALS).then(|| {
                    extra.extend(inl.params.iter().chain(&inl.locals));
                    &*e.insert((inl.operators(), base))
                })
            }
        };
        let size = 2 * (inl.params.len() + inl.locals.len());
        let Some((Ok(body), base)) =
            site.filter(|(b, _)| b.as_ref().is_ok_and(|b| b.len() + size <= budget))
        else {
            costs.push(cost(&op));
            out.push(op);
            continue;
        };
        let (base, size) = (*base, body.len() + size);
        budget -= size;
        *module_budget -= size;
        let mut push = |op: Operator<'a>, c: i64| {
            out.push(op);
            costs.push(c);
        };
        for k in (0..inl.params.len() as u32).rev() {
            push(
                Operator::LocalSet {
                    local_index: base + k,
                },
                0,
            );
        }
        for (k, t) in inl.locals.iter().enumerate() {
            push(zero(*t), 0);
            let local_index = base + (inl.params.len() + k) as u32;
            push(Operator::LocalSet { local_index }, 0);
        }
        let blockty = inl
            .result
            .map_or(wasmparser::BlockType::Empty, wasmparser::BlockType::Type);
        push(Operator::Block { blockty }, 2);
        let mut nesting = 0u32;
        for op in body {
            let op = match *op {
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                    nesting += 1;
                    op.clone()
                }
                Operator::End => {
                    nesting = nesting.saturating_sub(1);
                    op.clone()
                }
                Operator::Return => {
                    push(
                        Operator::Br {
                            relative_depth: nesting,
                        },
                        0,
                    );
                    continue;
                }
                ref other => renumber_locals(other.clone(), |l| base + l),
            };
            let c = cost(&op);
            push(op, c);
        }
    }
    Inlined {
        ops: out,
        costs,
        locals: extra,
    }
}

/// `op` with the local it reads or writes renumbered by `f`.
pub(super) fn renumber_locals<'a>(op: Operator<'a>, f: impl Fn(u32) -> u32) -> Operator<'a> {
    match op {
        Operator::LocalGet { local_index } => Operator::LocalGet {
            local_index: f(local_index),
        },
        Operator::LocalSet { local_index } => Operator::LocalSet {
            local_index: f(local_index),
        },
        Operator::LocalTee { local_index } => Operator::LocalTee {
            local_index: f(local_index),
        },
        op => op,
    }
}

/// For each operator: the size of the innermost loop around it, or of the
/// function outside loops.
pub(super) fn regions(ops: &[Operator<'_>]) -> Vec<usize> {
    let mut loop_end = BTreeMap::new();
    let mut open = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operator::Block { .. } | Operator::If { .. } | Operator::Loop { .. } => open.push(i),
            Operator::End => {
                if let Some(start) = open.pop()
                    && matches!(ops[start], Operator::Loop { .. })
                {
                    loop_end.insert(start, i);
                }
            }
            _ => {}
        }
    }
    let mut region = Vec::with_capacity(ops.len());
    let mut sizes = vec![(ops.len(), usize::MAX)];
    for i in 0..ops.len() {
        if let Some(&end) = loop_end.get(&i) {
            sizes.push((end - i, end));
        }
        region.push(sizes.last().map_or(ops.len(), |s| s.0));
        if sizes.last().is_some_and(|s| s.1 == i) {
            sizes.pop();
        }
    }
    region
}

/// A function body after [`inline`].
pub(super) struct Inlined<'a> {
    pub(super) ops: Vec<Operator<'a>>,
    /// The cost of each operator.
    pub(super) costs: Vec<i64>,
    /// Types of the locals added.
    pub(super) locals: Vec<wasmparser::ValType>,
}

/// Locals a function may have (wasmparser's limit).
pub(super) const MAX_LOCALS: usize = 50_000;

/// `T.const 0` for a numeric type.
pub(super) fn zero<'a>(t: wasmparser::ValType) -> Operator<'a> {
    match t {
        wasmparser::ValType::I64 => Operator::I64Const { value: 0 },
        wasmparser::ValType::F32 => Operator::F32Const {
            value: 0.0f32.into(),
        },
        wasmparser::ValType::F64 => Operator::F64Const {
            value: 0.0f64.into(),
        },
        _ => Operator::I32Const { value: 0 },
    }
}
