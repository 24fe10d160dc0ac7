//! Which functions check the count on entry.
//!
//! Every loop checks on its back edges, so the only other way a run could
//! go on without a check is through calls: recursion, or a call tree that
//! multiplies work (a function calling another twice, which calls another
//! twice, ...: 2^depth calls without a loop). A check at the entry of every
//! function that calls another rules out both, but costs small wrappers
//! dearly: the count is compared on every call, and the check's call keeps
//! the parameters alive across it (callee-saved registers, a frame).
//!
//! So the entry check is left out where the call graph bounds the work
//! without it: `f` is unchecked when it is not recursive (in no cycle of
//! direct calls), calls nothing indirectly (`call_indirect` could reach any
//! function of a table, itself included), and its *head*, the most it can
//! execute before reaching a check or returning, is at most [`HEAD_LIMIT`]:
//! `head(f) = cost(f) + Σ head(g)` over its call sites of unchecked
//! functions `g` (a checked callee stops the head at its entry check; a
//! path between checks passes each operator of `f` at most once, since every
//! loop checks). Leaves are unchecked as before. The count stays exact
//! either way; what the bound limits is how far past a slice's end a run can
//! go before the enclave gets control back.

use super::cost;
use wasmparser::{FunctionBody, Operator};

/// The most a function may execute between its entry and its first check
/// (or its return) without a check of its own: 1% of a PoUW slice.
pub(super) const HEAD_LIMIT: u64 = 10_000;

/// What the call graph needs of one defined function.
#[derive(Default)]
pub(super) struct Calls {
    /// Cost of its operators (each counted once).
    pub(super) cost: u64,
    /// Defined functions it calls directly (indices among defined
    /// functions), once per call site.
    pub(super) callees: Vec<u32>,
    /// It calls through a table.
    pub(super) indirect: bool,
    /// It takes a reference (`ref.func`) to an imported function.
    pub(super) refs_import: bool,
}

impl Calls {
    /// Scans a body; `imported` is the number of imported functions.
    pub(super) fn scan(body: &FunctionBody<'_>, imported: u32) -> Result<Calls, String> {
        let mut c = Calls::default();
        for op in body.get_operators_reader().map_err(|e| e.to_string())? {
            let op = op.map_err(|e| e.to_string())?;
            c.cost += cost(&op) as u64;
            match op {
                Operator::Call { function_index } if function_index >= imported => {
                    c.callees.push(function_index - imported)
                }
                Operator::CallIndirect { .. } => c.indirect = true,
                Operator::RefFunc { function_index } if function_index < imported => {
                    c.refs_import = true
                }
                _ => {}
            }
        }
        Ok(c)
    }
}

/// For every defined function, whether it checks the count on entry (see
/// the module doc): those in a cycle of direct calls, those that call
/// indirectly, and those whose head exceeds [`HEAD_LIMIT`].
pub(super) fn entry_checks(funcs: &[Calls]) -> Vec<bool> {
    let n = funcs.len();
    let mut checked = vec![false; n];
    let mut head = vec![0u64; n];
    // Tarjan's strongly connected components (iterative): components come
    // out callees first, so heads are known before their callers need them.
    const NONE: u32 = u32::MAX;
    let mut index = vec![NONE; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut next = 0u32;
    for root in 0..n as u32 {
        if index[root as usize] != NONE {
            continue;
        }
        // (function, next call site to visit)
        let mut work: Vec<(u32, usize)> = vec![(root, 0)];
        while let Some(&(v, site)) = work.last() {
            let vu = v as usize;
            if site == 0 && index[vu] == NONE {
                index[vu] = next;
                low[vu] = next;
                next += 1;
                stack.push(v);
                on_stack[vu] = true;
            }
            if let Some(&w) = funcs[vu].callees.get(site) {
                if let Some(top) = work.last_mut() {
                    top.1 += 1;
                }
                let wu = w as usize;
                if wu >= n {
                    continue;
                }
                if index[wu] == NONE {
                    work.push((w, 0));
                } else if on_stack[wu] {
                    low[vu] = low[vu].min(index[wu]);
                }
                continue;
            }
            work.pop();
            if let Some(&(u, _)) = work.last() {
                low[u as usize] = low[u as usize].min(low[vu]);
            }
            if low[vu] == index[vu] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    component.push(w as usize);
                    if w == v {
                        break;
                    }
                }
                let cyclic = component.len() > 1 || funcs[vu].callees.contains(&v);
                for &f in &component {
                    let calls = &funcs[f];
                    let h = calls.callees.iter().fold(calls.cost, |h, &g| {
                        let g = g as usize;
                        h.saturating_add(if g < n && !checked[g] { head[g] } else { 0 })
                    });
                    checked[f] = cyclic || calls.indirect || h > HEAD_LIMIT;
                    head[f] = if checked[f] { 0 } else { h };
                }
            }
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(cost: u64, callees: &[u32]) -> Calls {
        Calls {
            cost,
            callees: callees.to_vec(),
            ..Calls::default()
        }
    }

    #[test]
    fn recursion_indirect_calls_and_large_heads_are_checked() {
        let funcs = [
            f(10, &[1, 1]), // 0: calls a small leaf twice: unchecked
            f(5, &[]),      // 1: leaf
            f(3, &[2]),     // 2: calls itself
            f(3, &[4]),     // 3 <-> 4: mutual recursion
            f(3, &[3]),     // 4
            Calls {
                indirect: true,
                ..f(3, &[])
            }, // 5: calls through a table
            f(HEAD_LIMIT, &[1]), // 6: its head is over the limit
            f(1, &[2]),     // 7: its only callee is checked: head 1
        ];
        assert_eq!(
            entry_checks(&funcs),
            [false, false, true, true, true, true, true, false]
        );
    }

    #[test]
    fn a_call_tree_that_doubles_at_every_level_gets_checks() {
        // f(k) calls f(k+1) twice: 2^40 calls below f(0) without a loop.
        let mut funcs: Vec<Calls> = (0..40).map(|k| f(4, &[k + 1, k + 1])).collect();
        funcs.push(f(4, &[]));
        let checked = entry_checks(&funcs);
        // Heads double upwards from the leaf until one passes the limit,
        // which is checked; its callers start again from a small head.
        assert!(checked.iter().filter(|&&c| c).count() >= 40 / 12);
        let mut head = 4u64;
        for k in (0..40).rev() {
            head = if checked[k] { 0 } else { 4 + 2 * head };
            assert!(head <= HEAD_LIMIT, "f({k}) runs {head} before a check");
        }
        assert!(!checked[40]);
    }
}
