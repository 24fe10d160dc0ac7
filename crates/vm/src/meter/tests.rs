use super::*;
use proptest::prelude::*;

const EXAMPLES: [&[u8]; 5] = [
    include_bytes!("../../../../examples/tasks/filler.wasm"),
    include_bytes!("../../../../examples/tasks/sha256.wasm"),
    include_bytes!("../../../../examples/tasks/nbody.wasm"),
    include_bytes!("../../../../examples/tasks/wordfreq.wasm"),
    include_bytes!("../../../../examples/tasks/lz.wasm"),
];

fn valid(bytes: &[u8]) -> bool {
    wasmparser::Validator::new_with_features(crate::checker::features())
        .validate_all(bytes)
        .map_err(|e| eprintln!("invalid module: {e}"))
        .is_ok()
}

#[test]
fn every_example_rewrites_to_a_valid_module_with_the_meter_interface() {
    for m in EXAMPLES {
        let out = instrument(m).unwrap();
        assert!(valid(&out));
        let mut imports = Vec::new();
        let mut exports = Vec::new();
        for p in Parser::new(0).parse_all(&out) {
            match p.unwrap() {
                wasmparser::Payload::ImportSection(s) => imports.extend(s.into_iter().map(|i| {
                    let i = i.unwrap();
                    format!("{}.{}", i.module, i.name)
                })),
                wasmparser::Payload::ExportSection(s) => {
                    exports.extend(s.into_iter().map(|e| e.unwrap().name.to_string()))
                }
                _ => {}
            }
        }
        assert_eq!(imports.last().unwrap(), "proctor.check");
        assert!(exports.contains(&REMAINING.to_string()));
        assert!(exports.contains(&"_start".to_string()));
    }
}

#[test]
fn a_module_without_imports_or_globals_gets_both_sections() {
    let m = wat::parse_str(
        r#"(module (memory 1) (func (export "_start") (loop $l (br_if $l (i32.const 0)))))"#,
    )
    .unwrap();
    assert!(valid(&instrument(&m).unwrap()));
}

/// Rewritten size over original size of the code section.
fn growth(wat_src: &str) -> f64 {
    let m = wat::parse_str(wat_src).unwrap();
    let out = instrument(&m).unwrap();
    assert!(valid(&out));
    let code = |bytes: &[u8]| {
        Parser::new(0)
            .parse_all(bytes)
            .find_map(|p| match p.unwrap() {
                wasmparser::Payload::CodeSectionStart { size, .. } => Some(size),
                _ => None,
            })
            .unwrap() as f64
    };
    code(&out) / code(&m)
}

/// Direct calls to function `f` in the rewritten form of `wat_src`: to its
/// index (a wrapper, if `f` is defined) or to the internal version the
/// wrapper calls, not counting the wrapper's own call.
fn calls_to(wat_src: &str, f: u32) -> usize {
    let out = instrument(&wat::parse_str(wat_src).unwrap()).unwrap();
    assert!(valid(&out));
    let mut imported = 0;
    let mut calls: Vec<Vec<u32>> = Vec::new();
    for p in Parser::new(0).parse_all(&out) {
        match p.unwrap() {
            wasmparser::Payload::ImportSection(s) => {
                imported += s
                    .into_iter()
                    .filter(|i| matches!(i.as_ref().unwrap().ty, wasmparser::TypeRef::Func(_)))
                    .count() as u32
            }
            wasmparser::Payload::CodeSectionEntry(body) => calls.push(
                body.get_operators_reader()
                    .unwrap()
                    .into_iter()
                    .filter_map(|op| match op.unwrap() {
                        Operator::Call { function_index } => Some(function_index),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => {}
        }
    }
    let wrapper = f
        .checked_sub(imported)
        .and_then(|k| calls.get(k as usize))
        .filter(|c| c.len() == 1)
        .map(|c| c[0]);
    let all = calls.iter().flatten();
    all.filter(|&&c| c == f || Some(c) == wrapper).count() - wrapper.is_some() as usize
}

#[test]
fn branchy_loops_get_eight_copies_and_plain_ones_four() {
    // $g calls, so it is never inlined: the calls left in `_start` are
    // the copies of its loop (function 1 once the check is imported).
    let wrap = |body: &str| {
        format!(
            "(module (memory 1) (func $g (call $h)) (func $h) \
             (func (export \"_start\") (local $x i32) (loop $l {body} \
             (br_if $l (local.get $x)))))"
        )
    };
    let call = "(call $g)";
    assert_eq!(calls_to(&wrap(call), 1), UNROLL);
    let branchy = format!(
        "(if (local.get $x) (then {call})) \
         (br_if 1 (i32.eq (local.get $x) (i32.const 3)))"
    );
    assert_eq!(calls_to(&wrap(&branchy), 1), UNROLL_BRANCHY);
    // Branchy but longer than a branchy loop may be: 4 copies.
    let filler = "(local.set $x (i32.xor (local.get $x) (i32.const 7)))".repeat(30);
    assert_eq!(calls_to(&wrap(&format!("{branchy} {filler}")), 1), UNROLL);
}

#[test]
fn small_leaf_functions_are_inlined_where_called_often() {
    // $leaf is function 0, 1 once the check is imported.
    let leaf = "(func $leaf (param $p i32) (result i32) (local $i i32) \
                (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) \
                (br_if $l (i32.lt_u (local.get $i) (local.get $p)))) (local.get $i))";
    let wrap = |body: &str| {
        format!("(module (memory 1) {leaf} (func (export \"_start\") (local $x i32) {body}))")
    };
    let call = "(local.set $x (i32.add (local.get $x) (call $leaf (local.get $x))))";
    // In a small loop: inlined.
    let small = wrap(&format!("(loop $l {call} (br_if $l (local.get $x)))"));
    assert_eq!(calls_to(&small, 1), 0);
    // In a loop far larger than the call: the call stays.
    let filler = "(local.set $x (i32.xor (local.get $x) (i32.const 7)))".repeat(150);
    let large = wrap(&format!(
        "(loop $l {call} {filler} (br_if $l (local.get $x)))"
    ));
    assert_eq!(calls_to(&large, 1), 1);
    // A callee that calls is not inlined (the loop, 4 copies, keeps 4).
    let nonleaf = small.replace("(local.get $i))", "(call $nop) (local.get $i)) (func $nop)");
    assert_eq!(calls_to(&nonleaf, 1), 4);
}

#[test]
fn inlining_grows_a_module_of_many_small_functions_boundedly() {
    // 300 functions of 9 operators, each calling the leaf 8 times: each
    // function's own allowance would let it grow 30-fold (28x the code,
    // all calls inlined); the module's allowance keeps the total near
    // the 4.3x that counting alone costs such call-dense code.
    let calls = "(drop (call $leaf (i32.const 1)))".repeat(8);
    let funcs: String = (0..300).map(|_| format!("(func {calls})")).collect();
    let m = format!(
        "(module (memory 1) {} {funcs} (func (export \"_start\")))",
        leaf_82()
    );
    let g = growth(&m);
    assert!(g < 6.5, "growth {g}");
    let left = calls_to(&m, 1);
    assert!(left > 2000 && left < 300 * 8, "{left} calls left");
}

/// A leaf of 82 operators: 84 with its argument's `local.set`s.
fn leaf_82() -> String {
    let body: String = (0..20)
        .map(|_| "(local.set $p (i32.mul (local.get $p) (i32.const 3)))")
        .collect();
    format!("(func $leaf (param $p i32) (result i32) {body} (local.get $p))")
}

#[test]
fn inlining_stays_within_a_functions_allowance() {
    // 70 sites in a function of 350 operators: its allowance (1000
    // operators, more than its size) takes 11 of them, not all 70. (The
    // other function makes the module's allowance larger.)
    let site = "(local.set $x (i32.add (local.get $x) (call $leaf (local.get $x))))";
    let other = "(local.set $x (i32.add (local.get $x) (i32.const 1)))".repeat(1000);
    let m = format!(
        "(module (memory 1) {} (func (export \"_start\") (local $x i32) {}) \
         (func (local $x i32) {other}))",
        leaf_82(),
        site.repeat(70)
    );
    assert_eq!(calls_to(&m, 1), 70 - 1000 / 84);
}

#[test]
fn the_corpus_is_counted_on_chords_in_every_function() {
    // Interpreters and decoders dispatch through `br_table`s whose edges
    // need different counts (pcre2's matcher, brotli's and bzip2's
    // decoders, zstd's; Lua's and SQLite's virtual machines): landing pads
    // keep them on chords instead of counting every segment of the
    // function.
    for (name, m) in [
        (
            "minigzip",
            &include_bytes!("../../../../examples/corpus/minigzip.wasm")[..],
        ),
        (
            "bzip2",
            include_bytes!("../../../../examples/corpus/bzip2.wasm"),
        ),
        (
            "brotli",
            include_bytes!("../../../../examples/corpus/brotli.wasm"),
        ),
        (
            "zstd",
            include_bytes!("../../../../examples/corpus/zstd.wasm"),
        ),
        (
            "pcre2grep",
            include_bytes!("../../../../examples/corpus/pcre2grep.wasm"),
        ),
        (
            "cjson",
            include_bytes!("../../../../examples/corpus/cjson.wasm"),
        ),
        (
            "lua",
            include_bytes!("../../../../examples/corpus/lua.wasm"),
        ),
        (
            "sqlite",
            include_bytes!("../../../../examples/corpus/sqlite.wasm"),
        ),
    ] {
        let (out, per_segment) = instrument_counting(m).unwrap();
        assert!(valid(&out), "{name}");
        assert_eq!(per_segment, 0, "{name}");
    }
}

#[test]
fn many_small_loops_grow_the_code_boundedly() {
    let loops: String = (0..500)
        .map(|_| {
            "(local.set $i (i32.const 0)) (loop $l (local.set $i (i32.add (local.get $i) \
             (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (local.get $n))))"
        })
        .collect();
    let g = growth(&format!(
        "(module (memory 1) (func $f (param $n i32) (local $i i32) {loops}) \
         (func (export \"_start\") (call $f (i32.const 3))))"
    ));
    // Unrolling may triple the function; the counting code adds the rest
    // (6.6x; 6.1x before each back edge counted on both of its paths, see
    // `Ins::BackBr`; 7.4x then without the unrolling budget).
    assert!(g < 7.0, "grew {g:.1}x");
}

#[test]
fn a_loop_with_many_back_edges_parks_boundedly() {
    // 300 `continue`s in one loop that uses 64 locals: parking the locals
    // at every back edge would be 300 x 64 x 4 operators.
    let locals: String = (0..64).map(|k| format!("(local $v{k} i32)")).collect();
    let uses: String = (0..64)
        .map(|k| format!("(local.set $v{k} (i32.add (local.get $v{k}) (i32.const 1)))"))
        .collect();
    let continues: String = (0..300)
        .map(|k| {
            format!(
                "(br_if $l (i32.eq (local.get $v{}) (i32.const {k})))",
                k % 64
            )
        })
        .collect();
    let g = growth(&format!(
        "(module (memory 1) (func $f (param $n i32) {locals} \
         (loop $l {uses} {continues} (br_if $l (local.get $n)))) \
         (func (export \"_start\") (call $f (i32.const 0))))"
    ));
    // Without the parking budget: 32x.
    assert!(g < 6.0, "grew {g:.1}x");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any module the checker accepts can be metered, and the result is
    /// valid; nothing panics.
    #[test]
    fn accepted_mutants_rewrite_to_valid_modules(
        which in 0..EXAMPLES.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut m = EXAMPLES[which].to_vec();
        for (at, b) in edits {
            let i = at % m.len();
            m[i] = b;
        }
        if crate::check(&m, &crate::Limits::default()).is_ok() {
            let out = instrument(&m).expect("accepted modules can be metered");
            prop_assert!(valid(&out));
        }
    }
}

/// For each innermost loop of the rewritten `bytes`, in the order they
/// end, whether it has a call in it (in the loops of
/// [`loop_with_live_locals`], only the check's can be).
fn innermost_loop_calls(bytes: &[u8]) -> Vec<bool> {
    let mut found = Vec::new();
    for p in Parser::new(0).parse_all(bytes) {
        let wasmparser::Payload::CodeSectionEntry(body) = p.unwrap() else {
            continue;
        };
        // Per open frame: (is a loop, has a nested loop, has a call).
        let mut frames: Vec<(bool, bool, bool)> = vec![(false, false, false)];
        for op in body.get_operators_reader().unwrap() {
            match op.unwrap() {
                Operator::Block { .. } | Operator::If { .. } => frames.push((false, false, false)),
                Operator::Loop { .. } => {
                    for f in frames.iter_mut() {
                        f.1 = true;
                    }
                    frames.push((true, false, false));
                }
                Operator::Call { .. } => {
                    for f in frames.iter_mut() {
                        f.2 = true;
                    }
                }
                Operator::End => {
                    if let Some((true, false, call)) = frames.pop() {
                        found.push(call);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// A module whose one function has a loop over `live` locals, each read
/// and written on every iteration, after `nops` `nop`s.
fn loop_with_live_locals(live: u32, nops: usize) -> Vec<u8> {
    let nops = "(nop)".repeat(nops);
    let locals: String = (0..live).map(|k| format!("(local $x{k} i32)")).collect();
    let body: String = (0..live)
        .map(|k| {
            format!(
                "(local.set $x{k} (i32.add (local.get $x{k}) (i32.xor (local.get $x{}) (i32.load (local.get $x{k})))))",
                (k + 1) % live
            )
        })
        .collect();
    wat::parse_str(format!(
        r#"(module (memory 1) (func (export "_start") {locals} {nops}
             (loop $l {body} (br_if $l (i32.and (local.get $x0) (i32.const 1))))))"#
    ))
    .unwrap()
}

#[test]
fn the_check_of_a_loop_with_many_live_locals_is_called_outside_it() {
    // Few live locals: the check's call stays on the back edge, inside.
    let few = instrument(&loop_with_live_locals(4, 0)).unwrap();
    assert!(valid(&few));
    assert_eq!(innermost_loop_calls(&few), vec![true]);
    // Many: the loop is left for the call and re-entered after it (the
    // outer `$resume` loop of `Hoist` holds the call; the loop has none).
    let many = instrument(&loop_with_live_locals(emit::HOIST_LIVE + 2, 0)).unwrap();
    assert!(valid(&many));
    assert_eq!(innermost_loop_calls(&many), vec![false]);
}

/// The globals the rewritten `bytes` set: the count's and, where locals
/// are parked around a check's call, the scratch globals.
fn globals_set(bytes: &[u8]) -> std::collections::BTreeSet<u32> {
    bodies(bytes)
        .iter()
        .flatten()
        .filter_map(|op| match op {
            Operator::GlobalSet { global_index } => Some(*global_index),
            _ => None,
        })
        .collect()
}

#[test]
fn a_large_function_parks_no_locals() {
    // A small function parks its loop's locals around the check's call:
    // the count's global and four scratch ones are set.
    let small = instrument(&loop_with_live_locals(4, 0)).unwrap();
    assert!(valid(&small));
    assert_eq!(globals_set(&small).len(), 5);
    // The same loop in a large function (an interpreter's dispatch) parks
    // nothing: only the count's global is set.
    let large = instrument(&loop_with_live_locals(4, graph::LARGE_FUNCTION_OPS)).unwrap();
    assert!(valid(&large));
    assert_eq!(globals_set(&large).len(), 1);
}

/// A module whose function leaves a block early by `n` `br_if`s (the shape
/// of cJSON's string printer, which sends a byte to its escape path when
/// any of several conditions holds), after `nops` `nop`s.
fn early_exits(n: u32, nops: usize) -> Vec<u8> {
    let conds: String = (1..n)
        .map(|k| format!("(br_if $e (i32.eq (local.get $c) (i32.const {})))", 32 + k))
        .collect();
    let nops = "(nop)".repeat(nops);
    wat::parse_str(format!(
        r#"(module (func (export "f") (param $c i32) (result i32)
             {nops}
             (block $e
               (br_if $e (i32.lt_u (local.get $c) (i32.const 32)))
               {conds}
               (return (i32.mul (local.get $c) (i32.const 3))))
             (i32.const 2)))"#
    ))
    .unwrap()
}

/// Every function's operators, by function.
fn bodies(bytes: &[u8]) -> Vec<Vec<Operator<'_>>> {
    Parser::new(0)
        .parse_all(bytes)
        .filter_map(|p| match p.unwrap() {
            wasmparser::Payload::CodeSectionEntry(body) => Some(
                body.get_operators_reader()
                    .unwrap()
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
            ),
            _ => None,
        })
        .collect()
}

/// The blocks of the function with `br_if`s (the internal version) and
/// whether the count changes between its first `br_if` and its last.
fn blocks_and_counting_between_br_ifs(bytes: &[u8]) -> (usize, bool) {
    let bodies = bodies(bytes);
    let ops = bodies
        .iter()
        .find(|ops| ops.iter().any(|op| matches!(op, Operator::BrIf { .. })))
        .expect("a function with br_if");
    let blocks = ops
        .iter()
        .filter(|op| matches!(op, Operator::Block { .. }))
        .count();
    let first = ops
        .iter()
        .position(|op| matches!(op, Operator::BrIf { .. }));
    let last = ops
        .iter()
        .rposition(|op| matches!(op, Operator::BrIf { .. }));
    let counting = ops[first.unwrap()..last.unwrap()]
        .iter()
        .any(|op| matches!(op, Operator::I64Add | Operator::I64Sub));
    (blocks, counting)
}

#[test]
fn early_exits_from_a_block_count_on_landing_pads() {
    // A function too large for pads: the exits' counts go on the path that
    // stays. Its blocks are the original's and the internal version's.
    let large = instrument(&early_exits(3, graph::LARGE_FUNCTION_OPS)).unwrap();
    assert!(valid(&large));
    let (blocks, counting) = blocks_and_counting_between_br_ifs(&large);
    assert!(counting);
    // Three exits: the first is the tree edge into the block's end, the
    // other two count on pads (a block each), and the path that stays
    // counts nothing between them.
    let three = instrument(&early_exits(3, 0)).unwrap();
    assert!(valid(&three));
    assert_eq!(
        blocks_and_counting_between_br_ifs(&three),
        (blocks + 2, false)
    );
    // More exits than a block may have pads: at most BR_IF_PADS of them
    // get one, the rest count on the path as before.
    let many = instrument(&early_exits(graph::BR_IF_PADS as u32 + 4, 0)).unwrap();
    assert!(valid(&many));
    let (with_pads, _) = blocks_and_counting_between_br_ifs(&many);
    assert!(
        (blocks + 1..=blocks + graph::BR_IF_PADS).contains(&with_pads),
        "{with_pads}"
    );
}

#[test]
fn a_copy_gets_a_loop_of_vector_moves_for_the_aliasing_window() {
    // Each `memory.copy` keeps its own operator (short copies and those
    // outside the window) beside a loop of 16-byte loads and stores each
    // way, behind the test of length and distance; a function without one
    // gets neither.
    let m = wat::parse_str(
        r#"(module (memory 1)
             (func (export "_start")
               (memory.copy (i32.const 9000) (i32.const 0) (i32.const 5000))
               (memory.fill (i32.const 0) (i32.const 1) (i32.const 5000))))"#,
    )
    .unwrap();
    let out = instrument(&m).unwrap();
    assert!(valid(&out));
    let count = |body: &[Operator<'_>], f: fn(&Operator<'_>) -> bool| {
        body.iter().filter(|op| f(op)).count()
    };
    let bodies = bodies(&out);
    let with_copy: Vec<_> = bodies
        .iter()
        .filter(|b| count(b, |op| matches!(op, Operator::MemoryCopy { .. })) > 0)
        .collect();
    assert_eq!(with_copy.len(), 1);
    let body = with_copy[0];
    assert_eq!(count(body, |op| matches!(op, Operator::V128Load { .. })), 8);
    assert_eq!(
        count(body, |op| matches!(op, Operator::V128Store { .. })),
        8
    );
    assert_eq!(
        count(body, |op| matches!(op, Operator::MemoryFill { .. })),
        1
    );
    assert!(bodies.iter().all(
        |b| count(b, |op| matches!(op, Operator::V128Load { .. })) == 0 || std::ptr::eq(b, body)
    ));
}
