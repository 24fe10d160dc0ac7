//! The rewriting meter against wasmtime's own fuel, an independent count of
//! the same cost table: on hand-written modules that exercise each control
//! construct the rewriter treats specially, and on random structured
//! programs (nested blocks, loops, `if`/`else`, `br_if`, `br_table`, early
//! returns, calls, inlined leaf functions, recursion and byte-compare loops
//! leaving to any label), every completed
//! run must report exactly the fuel wasmtime reports, for every slice size.

use proctor_vm::{Limits, Outcome, Status, Step, TaskSpec, UnmeteredVm, Vm};

/// Runs `wat` with wasmtime's fuel, then with our meter at each slice size,
/// on a budget of `fuel`.
fn runs(wat: &str, fuel: u64, slices: &[u64]) -> (Outcome, Vec<Outcome>) {
    let bytes = wat::parse_str(wat).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    let spec = TaskSpec {
        fuel,
        ..TaskSpec::default()
    };
    let fuel = UnmeteredVm::with_fuel(Limits::default()).unwrap();
    let reference = fuel.run(&fuel.compile(&bytes).unwrap(), &spec);
    let vm = Vm::new(Limits::default()).unwrap();
    let loaded = vm.load(&bytes).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    let ours = slices
        .iter()
        .map(|&slice| vm.run(&loaded, spec.clone(), slice))
        .collect();
    (reference, ours)
}

/// Runs `wat` under both meters and with several slice sizes; returns the
/// count after checking they all agree.
fn agree(wat: &str) -> u64 {
    agree_plus(wat, 0)
}

/// [`agree`], for a module whose `memory.copy` and `memory.fill` operators
/// charge `charge` instructions by size in all (fuel counts them as 1 each;
/// the meter adds `len >> 2`): ours must count exactly fuel plus that.
fn agree_plus(wat: &str, charge: u64) -> u64 {
    let slices = [1, 97, 1_000_000];
    let (reference, ours) = runs(wat, 1 << 40, &slices);
    for (ours, slice) in ours.into_iter().zip(slices) {
        assert_eq!(ours.status, reference.status, "slice {slice}\n{wat}");
        assert_eq!(ours.stdout, reference.stdout, "slice {slice}\n{wat}");
        if reference.status == Status::Exited(0) {
            assert_eq!(
                ours.instructions,
                reference.instructions + charge,
                "slice {slice}\n{wat}"
            );
        }
    }
    reference.instructions
}

/// Runs `wat` under both meters: each must trap out of bounds.
fn traps_out_of_bounds(wat: &str) {
    let (reference, ours) = runs(wat, 1 << 40, &[1, 1_000_000]);
    for outcome in ours.into_iter().chain([reference]) {
        match outcome.status {
            Status::Trapped(e) => assert!(e.contains("out of bounds"), "{e}"),
            other => panic!("expected a trap, got {other:?}"),
        }
    }
}

/// Runs `wat` on a budget of `fuel` under both meters: each must run out of
/// fuel, ours having counted exactly the budget and written what fuel's
/// run wrote, at every slice size.
fn out_of_fuel_at(wat: &str, fuel: u64) {
    let (reference, ours) = runs(wat, fuel, &[1, 97, 1_000_000]);
    assert_eq!(reference.status, Status::OutOfFuel);
    for o in ours {
        assert_eq!(o.status, Status::OutOfFuel);
        assert_eq!(o.instructions, fuel);
        assert_eq!(o.stdout, reference.stdout);
    }
}

const HEAD: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  ;; prints the i32 argument's low byte as one character
  (func $emit (param $v i32)
    (i32.store8 (i32.const 100) (i32.add (i32.const 65) (i32.and (local.get $v) (i32.const 15))))
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 1))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; prints the 8 nibbles of an i32
  (func $print (param $v i32) (local $k i32)
    (loop $l
      (call $emit (i32.shr_u (local.get $v) (i32.mul (local.get $k) (i32.const 4))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $k) (i32.const 8)))))
"#;

fn module(body: &str) -> String {
    format!("(module {HEAD} {body})")
}

#[test]
fn br_table_in_a_loop_counts_exactly() {
    let n = agree(&module(
        r#"(func $f (param $x i32) (result i32) (local $i i32)
             (loop $l
               (block $c (block $b (block $a
                 (br_table $a $b $c (i32.rem_u (local.get $i) (i32.const 3))))
                 (local.set $x (i32.add (local.get $x) (i32.const 1))) (br $c))
                 (local.set $x (i32.mul (local.get $x) (i32.const 3)))
                 (local.set $x (i32.xor (local.get $x) (i32.const 5))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 50))))
             (local.get $x))
           (func (export "_start") (call $emit (call $f (i32.const 7))))"#,
    ));
    assert!(n > 50 * 10, "{n}");
}

/// cJSON's string printer: each byte is copied, unless one of `n + 1`
/// conditions sends it to the escape path (`br_if`s to the end of a block
/// whose own path leaves by a branch; the meter counts them on landing
/// pads, for `n` below and above the pads a block may have).
fn escape_loop(n: u32) -> String {
    let conds: String = (0..n)
        .map(|k| {
            format!(
                "(br_if $esc (i32.eq (local.get $c) (i32.const {})))",
                40 + k
            )
        })
        .collect();
    module(&format!(
        r#"(data (i32.const 1024) "plain text, (escapes) and *+,-./ 0123\n\"\\ end\09!")
           (func $f (result i32) (local $p i32) (local $q i32) (local $c i32)
             (local.set $p (i32.const 1024)) (local.set $q (i32.const 2048))
             (block $done
               (loop $l
                 (local.set $c (i32.load8_u (local.get $p)))
                 (br_if $done (i32.eqz (local.get $c)))
                 (block $next
                   (block $esc
                     (br_if $esc (i32.lt_u (local.get $c) (i32.const 32)))
                     {conds}
                     (i32.store8 (local.get $q) (local.get $c))
                     (local.set $q (i32.add (local.get $q) (i32.const 1)))
                     (br $next))
                   (i32.store8 (local.get $q) (i32.const 92))
                   (i32.store8 offset=1 (local.get $q) (i32.add (local.get $c) (i32.const 1)))
                   (local.set $q (i32.add (local.get $q) (i32.const 2))))
                 (local.set $p (i32.add (local.get $p) (i32.const 1)))
                 (br $l)))
             (i32.xor (i32.sub (local.get $q) (i32.const 2048)) (i32.load (i32.const 2060))))
           (func (export "_start") (call $print (call $f)))"#
    ))
}

#[test]
fn early_exits_on_landing_pads_count_exactly() {
    for n in [2, 12] {
        let count = agree(&escape_loop(n));
        assert!(count > 45 * 15, "{n}: {count}");
    }
    out_of_fuel_at(&escape_loop(3), 400);
}

/// An interpreter's dispatch loop: a `br_table` over cases of different
/// costs, and a second `br_table` inside a case that shares the first's
/// targets, goes back to the dispatch, or leaves the function. The tables'
/// edges need different counts (landing pads).
fn interpreter(steps: u32) -> String {
    module(&format!(
        r#"(global $acc (mut i32) (i32.const 0))
           (func $run (param $pc i32) (local $a i32)
             (local.set $a (i32.const 1))
             loop $dispatch
               block $done block $c3 block $c2 block $c1 block $c0
                 (i32.rem_u (i32.load8_u offset=512 (i32.and (local.get $pc) (i32.const 63)))
                            (i32.const 5))
                 br_table $c0 $c1 $c2 $c3 $done
               end
               (local.set $a (i32.add (local.get $a) (i32.const 1)))
               (local.set $pc (i32.add (local.get $pc) (i32.const 1)))
               br $dispatch
               end
               (local.set $a (i32.mul (local.get $a) (i32.const 3)))
               (local.set $pc (i32.add (local.get $pc) (i32.const 2)))
               (i32.and (i32.shr_u (local.get $a) (i32.const 3)) (i32.const 15))
               ;; c2's code, c3's code, the dispatch, done, or (rarely) out
               br_table 0 1 3 2 0 1 3 3 0 1 3 2 0 3 3 4 1
               end
               (local.set $a (i32.xor (local.get $a) (i32.shl (local.get $pc) (i32.const 2))))
               end
               (local.set $a (i32.rotl (local.get $a) (i32.const 5)))
               (local.set $pc (i32.add (local.get $pc) (i32.const 1)))
               (global.set $acc (i32.add (global.get $acc) (local.get $a)))
               (br_if $dispatch (i32.lt_u (local.get $pc) (i32.const {steps})))
               end
               (global.set $acc (i32.add (global.get $acc) (i32.const 1000)))
               (local.set $pc (i32.add (local.get $pc) (i32.const 3)))
               (br_if $dispatch (i32.lt_u (local.get $pc) (i32.const {steps})))
             end)
           (func (export "_start") (local $i i32)
             (loop $fill
               (i32.store8 offset=512 (local.get $i)
                 (i32.mul (local.get $i) (i32.const 167)))
               (br_if $fill (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                      (i32.const 64))))
             (call $run (i32.const 0))
             (call $run (i32.const 7))
             (call $print (global.get $acc)))"#
    ))
}

#[test]
fn an_interpreters_dispatch_tables_count_exactly() {
    let n = agree(&interpreter(400));
    assert!(n > 400 * 5, "{n}");
    // Out of fuel anywhere in the loop, landing pads included.
    for fuel in [n / 3, n / 2 + 1, 2 * n / 3 + 7] {
        out_of_fuel_at(&interpreter(400), fuel);
    }
}

#[test]
fn tables_whose_branches_carry_values_count_exactly() {
    agree(&module(
        r#"(func $f (param $x i32) (result i32) (local $i i32)
             (loop $l
               (local.set $x
                 (block $c (result i32) (block $b (result i32) (block $a (result i32)
                   (local.get $x)
                   (br_table $a $b $c $b (i32.and (local.get $i) (i32.const 3))))
                   (i32.const 1) (i32.add))
                   (i32.const 3) (i32.mul)
                   (local.get $i) (i32.rem_u (i32.const 7)) (br_if $c)
                   (i32.const 5) (i32.xor)))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 50))))
             (local.get $x))
           (func (export "_start") (call $print (call $f (i32.const 7))))"#,
    ));
}

#[test]
fn if_without_else_block_results_and_loop_params() {
    agree(&module(
        r#"(type $pp (func (param i32 i32) (result i32 i32)))
           (func $f (param $n i32) (result i32) (local $s i32)
             (i32.const 0) (local.get $n)
             (loop $l (type $pp)
               ;; stack: acc, k
               (local.set $n)
               (local.set $s (i32.add (local.get $s) (i32.const 1)))
               (if (i32.and (local.get $s) (i32.const 1))
                 (then (local.set $s (i32.add (local.get $s) (i32.const 2)))))
               (block $b (result i32)
                 (br_if $b (i32.const 9) (i32.eqz (i32.and (local.get $s) (i32.const 2))))
                 (drop) (i32.const 4))
               (i32.add)
               (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
               (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
             (drop))
           (func (export "_start") (call $emit (call $f (i32.const 40))))"#,
    ));
}

#[test]
fn inlined_leaf_functions_count_and_behave_as_calls() {
    // `$sum` (a leaf, so inlined) reads its locals before writing them, so
    // every inlined call must start them at 0; it returns from inside a
    // loop and a block; it has i64, f32 and f64 locals. `$first` has no
    // result and leaves through `return` and through a branch to the
    // function's own label.
    agree(&module(
        r#"(global $g (mut i32) (i32.const 0))
           (func $sum (param $n i32) (param $k i64) (result i32)
             (local $acc i32) (local $w i64) (local $x f32) (local $y f64)
             (local.set $acc (i32.add (local.get $acc) (i32.wrap_i64 (local.get $w))))
             (local.set $x (f32.add (local.get $x) (f32.const 1.5)))
             (local.set $y (f64.add (local.get $y) (f64.promote_f32 (local.get $x))))
             (loop $l
               (block $b
                 (br_if $b (i32.and (local.get $n) (i32.const 1)))
                 (if (i32.gt_s (local.get $acc) (i32.const 90))
                   (then (return (i32.add (local.get $acc) (i32.trunc_f64_s (local.get $y)))))))
               (local.set $acc (i32.add (local.get $acc) (local.get $n)))
               (local.set $w (i64.add (local.get $w) (local.get $k)))
               (local.set $n (i32.sub (local.get $n) (i32.const 1)))
               (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
             (i32.add (local.get $acc) (i32.wrap_i64 (local.get $w))))
           (func $first (param $v i32)
             (if (global.get $g) (then (return)))
             (br_if 0 (i32.lt_s (local.get $v) (i32.const 7)))
             (global.set $g (local.get $v)))
           (func (export "_start") (local $i i32)
             (loop $l
               (call $first (local.get $i))
               (call $emit (call $sum (local.get $i) (i64.const 3)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_s (local.get $i) (i32.const 30))))
             (call $emit (global.get $g)))"#,
    ));
}

/// wasi-libc's `memcmp`, operator for operator as Debian's build has it: a
/// hot byte loop of real programs, metered like any other code.
const MEMCMP: &str = r#"(func $memcmp (param i32 i32 i32) (result i32) (local i32 i32 i32)
  i32.const 0 local.set 3
  block
    local.get 2 i32.eqz br_if 0
    block
      loop
        local.get 0 i32.load8_u local.tee 4
        local.get 1 i32.load8_u local.tee 5
        i32.ne br_if 1
        local.get 1 i32.const 1 i32.add local.set 1
        local.get 0 i32.const 1 i32.add local.set 0
        local.get 2 i32.const -1 i32.add local.tee 2 br_if 0
        br 2
      end
    end
    local.get 4 local.get 5 i32.sub local.set 3
  end
  local.get 3)"#;

/// A module with [`MEMCMP`], reachable directly (inlined where it is called
/// in a small loop) and through a table (called), and `body`.
fn memcmp_module(body: &str) -> String {
    module(&format!(
        r#"{MEMCMP}
           (type $cmp (func (param i32 i32 i32) (result i32)))
           (table 1 funcref) (elem (i32.const 0) $memcmp)
           {body}"#
    ))
}

#[test]
fn memcmp_counts_exactly_what_fuel_counts() {
    // Every case of `compare_grid`, inlined and called (through the table).
    agree_plus(
        &memcmp_module(&compare_grid(
            r#"(local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
             (call $memcmp (i32.add (local.get $p) (local.get $s))
                           (i32.add (local.get $q) (local.get $s)) (local.get $n))))
           (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
             (call_indirect (type $cmp) (i32.add (local.get $q) (local.get $s))
                           (i32.add (local.get $p) (local.get $s)) (local.get $n) (i32.const 0))))"#,
            // a long equal run: 3000 bytes
            "(call $print (call $memcmp (i32.const 0) (i32.const 0) (i32.const 3000)))",
        )),
        GRID_COPY_CHARGE,
    );
}

/// `compare_grid` copies 40 bytes once per case: x and y 0-7, s 0 and 3,
/// n 0-20 and m 0-n (so 1 + 2 + ... + 21 = 231 per s), each charged
/// 40 >> 2 = 10 instructions by size.
const GRID_COPY_CHARGE: u64 = 8 * 8 * 2 * 231 * (40 >> 2);

/// `_start` running `compare` (which folds into `$acc`) on every pair of
/// byte strings at `$p + $s` and `$q + $s`: every alignment of both (`$p`
/// and `$q`), starts `$s` 0 and 3, lengths `$n` 0-20, the first difference at
/// every position (upward and downward; bytes at or above 0x80 too) or
/// none, and a difference right after the `$n` bytes (where the compare must
/// stop). It then prints `$acc` and runs `then`.
fn compare_grid(compare: &str, then: &str) -> String {
    format!(
        r#"(func (export "_start")
             (local $x i32) (local $y i32) (local $s i32) (local $n i32) (local $m i32)
             (local $p i32) (local $q i32) (local $acc i32)
             ;; 256 bytes of a pattern at 1024
             (loop $f
               (i32.store8 (i32.add (i32.const 1024) (local.get $m))
                 (i32.add (i32.mul (local.get $m) (i32.const 101)) (i32.const 7)))
               (local.set $m (i32.add (local.get $m) (i32.const 1)))
               (br_if $f (i32.lt_u (local.get $m) (i32.const 256))))
             (loop $lx
               (local.set $y (i32.const 0))
               (loop $ly
                 (local.set $s (i32.const 0))
                 (loop $ls
                   (local.set $n (i32.const 0))
                   (loop $ln
                     (local.set $m (i32.const 0))
                     (loop $lm
                       (local.set $p (i32.add (i32.const 1024) (local.get $x)))
                       (local.set $q (i32.add (i32.const 4096) (local.get $y)))
                       ;; q = a copy of p's bytes, with byte s + m flipped (m < n)
                       ;; and byte s + n
                       (memory.copy (local.get $q) (local.get $p) (i32.const 40))
                       (i32.store8 (i32.add (local.get $q) (i32.add (local.get $s) (local.get $n)))
                                   (i32.const 0xee))
                       (if (i32.lt_u (local.get $m) (local.get $n))
                         (then (i32.store8
                           (i32.add (local.get $q) (i32.add (local.get $s) (local.get $m)))
                           (i32.xor (i32.load8_u (i32.add (local.get $q)
                                      (i32.add (local.get $s) (local.get $m))))
                                    (i32.shl (i32.const 1) (i32.and (local.get $m) (i32.const 7)))))))
                       {compare}
                       (local.set $m (i32.add (local.get $m) (i32.const 1)))
                       (br_if $lm (i32.le_u (local.get $m) (local.get $n))))
                     (local.set $n (i32.add (local.get $n) (i32.const 1)))
                     (br_if $ln (i32.le_u (local.get $n) (i32.const 20))))
                   (local.set $s (i32.add (local.get $s) (i32.const 3)))
                   (br_if $ls (i32.le_u (local.get $s) (i32.const 3))))
                 (local.set $y (i32.add (local.get $y) (i32.const 1)))
                 (br_if $ly (i32.lt_u (local.get $y) (i32.const 8))))
               (local.set $x (i32.add (local.get $x) (i32.const 1)))
               (br_if $lx (i32.lt_u (local.get $x) (i32.const 8))))
             (call $print (local.get $acc))
             {then})"#
    )
}

#[test]
fn memcmp_near_the_end_of_memory_behaves_like_the_original() {
    // Equal up to the last byte, a difference before the end with `n`
    // reaching past it (the original stops in time), then a compare that
    // runs off the end and traps in both.
    agree(&memcmp_module(
        r#"(func (export "_start")
             (i32.store8 (i32.const 65534) (i32.const 9))
             ;; the last word read ends at the end of memory; then one byte on
             (call $print (call $memcmp (i32.const 65520) (i32.const 65520) (i32.const 9)))
             (call $print (call_indirect (type $cmp) (i32.const 65520) (i32.const 65521) (i32.const 9)
               (i32.const 0)))
             (call $print (call $memcmp (i32.const 65521) (i32.const 65521) (i32.const 9)))
             (call $print (call $memcmp (i32.const 65531) (i32.const 65531) (i32.const 5)))
             (call $print (call_indirect (type $cmp) (i32.const 65530) (i32.const 0) (i32.const 6)
               (i32.const 0)))
             (call $print (call $memcmp (i32.const 65534) (i32.const 100) (i32.const 100)))
             (call $print (call_indirect (type $cmp) (i32.const 65533) (i32.const 65532) (i32.const 1000)
               (i32.const 0))))"#,
    ));
    let trapping = memcmp_module(
        r#"(func (export "_start")
             (call $print (call $memcmp (i32.const 65533) (i32.const 65533) (i32.const 4))))"#,
    );
    traps_out_of_bounds(&trapping);
}

#[test]
fn a_long_memcmp_past_the_budget_runs_out_of_fuel() {
    // A 3000-byte compare (63,008) crosses the budget inside the loop:
    // out of fuel there, for every slice size, before the second emit.
    let wat = memcmp_module(
        r#"(func (export "_start")
             (call $emit (i32.const 1))
             (drop (call $memcmp (i32.const 0) (i32.const 0) (i32.const 3000)))
             (call $emit (i32.const 2))
             (call $exit (i32.const 0)))"#,
    );
    out_of_fuel_at(&wat, 50_000);
}

/// Mismatch loops (the byte loop of an LZ77 match finder), three returning `2 l` where they leave
/// through the mismatch exit and `2 l + 1` where they run to the limit: the
/// shape clang emits (`$ne`); operands swapped, signed loads with offsets
/// and `lt_u` (`$lt`); `gt_u`, the increment's operands swapped and an exit
/// two labels out (`$gt`). In `$back` the exit is an outer loop's back edge.
const MISMATCH: &str = r#"
  (func $ne (param $p i32) (param $q i32) (param $l i32) (param $lim i32) (result i32)
    block $exit
      loop $loop
        local.get $p local.get $l i32.add i32.load8_u
        local.get $q local.get $l i32.add i32.load8_u
        i32.ne br_if $exit
        local.get $lim
        local.get $l i32.const 1 i32.add local.tee $l
        i32.ne br_if $loop
      end
      local.get $l i32.const 2 i32.mul i32.const 1 i32.add return
    end
    local.get $l i32.const 2 i32.mul)
  (func $lt (param $p i32) (param $q i32) (param $l i32) (param $lim i32) (result i32)
    block $exit
      loop $loop
        local.get $l local.get $p i32.add i32.load8_s offset=1
        local.get $l local.get $q i32.add i32.load8_s offset=2
        i32.ne br_if $exit
        local.get $l i32.const 1 i32.add local.tee $l
        local.get $lim
        i32.lt_u br_if $loop
      end
      local.get $l i32.const 2 i32.mul i32.const 1 i32.add return
    end
    local.get $l i32.const 2 i32.mul)
  (func $gt (param $p i32) (param $q i32) (param $l i32) (param $lim i32) (result i32)
    block $exit
      block $inner
        loop $loop
          local.get $p local.get $l i32.add i32.load8_u
          local.get $l local.get $q i32.add i32.load8_u
          i32.ne br_if $exit
          local.get $lim
          i32.const 1 local.get $l i32.add local.tee $l
          i32.gt_u br_if $loop
        end
        local.get $l i32.const 2 i32.mul i32.const 1 i32.add return
      end
      i32.const -1 return
    end
    local.get $l i32.const 2 i32.mul)
  ;; counts the differences from l to lim: the exit is a loop's back edge
  (func $back (param $p i32) (param $q i32) (param $l i32) (param $lim i32) (result i32)
    (local $hits i32)
    local.get $l i32.const 1 i32.sub local.set $l
    block $done
      loop $again
        local.get $hits i32.const 1 i32.add local.set $hits
        local.get $l i32.const 1 i32.add local.tee $l
        local.get $lim i32.ge_u br_if $done
        loop $loop
          local.get $p local.get $l i32.add i32.load8_u
          local.get $q local.get $l i32.add i32.load8_u
          i32.ne br_if $again
          local.get $lim
          local.get $l i32.const 1 i32.add local.tee $l
          i32.ne br_if $loop
        end
      end
    end
    local.get $hits i32.const 256 i32.mul local.get $l i32.add)
  ;; all four from (p, q, l, lim), folded into acc
  (func $all (param $p i32) (param $q i32) (param $l i32) (param $lim i32) (param $acc i32)
    (result i32)
    (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
      (call $ne (local.get $p) (local.get $q) (local.get $l) (local.get $lim))))
    (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
      (call $lt (i32.sub (local.get $p) (i32.const 1)) (i32.sub (local.get $q) (i32.const 2))
        (local.get $l) (local.get $lim))))
    (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
      (call $gt (local.get $p) (local.get $q) (local.get $l) (local.get $lim))))
    (i32.add (i32.mul (local.get $acc) (i32.const 31))
      (call $back (local.get $p) (local.get $q) (local.get $l) (local.get $lim))))
"#;

#[test]
fn mismatch_loops_count_exactly_what_fuel_counts() {
    // Every case of `compare_grid` (bytes at or above 0x80 too, for the
    // signed loads), in the shapes loop unrolling and chords treat apart. A
    // start at or past the limit (the original wraps, or stops after one
    // iteration) and a run to a limit of 3000 as well.
    let grid = compare_grid(
        r#"(local.set $acc (call $all (local.get $p) (local.get $q)
             (local.get $s) (i32.add (local.get $s) (local.get $n)) (local.get $acc)))"#,
        r#";; starts past the limit: different bytes 5 on
           (memory.copy (i32.const 4096) (i32.const 1024) (i32.const 5))
           (call $print (call $all (i32.const 1024) (i32.const 4096) (i32.const 2) (i32.const 1)
             (i32.const 0)))
           (call $print (call $all (i32.const 1024) (i32.const 4096) (i32.const 4) (i32.const 4)
             (i32.const 0)))
           ;; a long equal run
           (call $print (call $all (i32.const 8) (i32.const 8) (i32.const 0) (i32.const 3000)
             (i32.const 0)))"#,
    );
    // (The copy of 5 bytes after the grid is charged 5 >> 2 = 1.)
    agree_plus(&module(&format!("{MISMATCH} {grid}")), GRID_COPY_CHARGE + 1);
}

#[test]
fn mismatch_loops_near_the_end_of_memory_behave_like_the_original() {
    // The last word read ends at the end of memory, then one byte on (the
    // original loop runs); a difference before the end with the limit past
    // it; then a loop that runs off the end and traps in both.
    agree(&module(&format!(
        r#"{MISMATCH}
           (func (export "_start")
             (i32.store8 (i32.const 65534) (i32.const 9))
             (call $print (call $ne (i32.const 65520) (i32.const 65520) (i32.const 0) (i32.const 9)))
             (call $print (call $ne (i32.const 65520) (i32.const 65520) (i32.const 2) (i32.const 9)))
             (call $print (call $ne (i32.const 65521) (i32.const 65521) (i32.const 0) (i32.const 9)))
             (call $print (call $ne (i32.const 65520) (i32.const 65521) (i32.const 0) (i32.const 9)))
             (call $print (call $gt (i32.const 65531) (i32.const 65531) (i32.const 0) (i32.const 5)))
             (call $print (call $lt (i32.const 65529) (i32.const 0) (i32.const 0) (i32.const 6)))
             (call $print (call $ne (i32.const 65534) (i32.const 100) (i32.const 0) (i32.const 100)))
             (call $print (call $ne (i32.const 65530) (i32.const 65530) (i32.const 3) (i32.const 5))))"#
    )));
    let trapping = module(&format!(
        r#"{MISMATCH}
           (func (export "_start")
             (call $print (call $ne (i32.const 65533) (i32.const 65533) (i32.const 0) (i32.const 4))))"#
    ));
    traps_out_of_bounds(&trapping);
}

#[test]
fn a_mismatch_loop_charged_past_the_budget_runs_out_of_fuel() {
    // 3000 equal bytes (51,000) cross the budget inside the loop: out of
    // fuel there, for every slice size.
    let wat = module(&format!(
        r#"{MISMATCH}
           (func (export "_start")
             (call $emit (i32.const 1))
             (drop (call $ne (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 3000)))
             (call $emit (i32.const 2))
             (call $exit (i32.const 0)))"#
    ));
    out_of_fuel_at(&wat, 40_000);
}

#[test]
fn recursion_and_exits_from_deep_inside() {
    // fib without loops (only the entry checks bound it), then exit(0) from
    // three calls deep: the count must include everything up to the call.
    let n = agree(&module(
        r#"(func $fib (param $n i32) (result i32)
             (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
               (then (local.get $n))
               (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                              (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
           (func $deep (param $d i32)
             (if (local.get $d) (then (call $deep (i32.sub (local.get $d) (i32.const 1))) (return)))
             (call $exit (i32.const 0)))
           (func (export "_start") (call $emit (call $fib (i32.const 18))) (call $deep (i32.const 3)))"#,
    ));
    assert!(n > 10_000, "{n}");
}

#[test]
fn the_count_passes_through_calls_of_every_shape() {
    // Metered functions pass the count to each other as an extra parameter
    // and result: several results, a branch to the function's label with
    // values, an early `return`, code after it that no path reaches, the
    // same function called directly, through a table and as a loop's
    // body, and a host call deep inside. Tables hold the internal versions,
    // or, when the table is exported (the host could call its entries), the
    // wrappers.
    for table in ["(table 2 funcref)", r#"(table (export "t") 2 funcref)"#] {
        let n = agree(&module(&format!(
            r#"(type $pair_t (func (param i32) (result i32 i64)))
           {table} (elem (i32.const 0) $pair $leaf)
           (func $leaf (param $x i32) (result i32 i64)
             (i32.mul (local.get $x) (i32.const 3)) (i64.extend_i32_u (local.get $x)))
           (func $pair (param $x i32) (result i32 i64) (local $t i32)
             (block $b
               (br_if $b (i32.and (local.get $x) (i32.const 1)))
               (if (i32.eq (local.get $x) (i32.const 4))
                 (then (call $emit (local.get $x))
                       (return (i32.const 40) (i64.const 4))))
               (local.set $t (i32.add (local.get $x) (i32.const 7)))
               (br 1 (local.get $t) (i64.const 2))
               (drop) (i32.const 0) (i64.const 0) (return))
             (call $leaf (local.get $x)))
           (func $sum (param $n i32) (result i32) (local $i i32) (local $s i32) (local $w i64)
             (loop $l
               (call $pair (local.get $i))
               local.set $w local.get $s i32.add local.set $s
               (call_indirect (type $pair_t) (local.get $i) (i32.and (local.get $i) (i32.const 1)))
               i32.wrap_i64 local.get $s i32.add local.set $s
               local.get $s i32.add local.set $s
               (local.set $s (i32.add (local.get $s) (i32.wrap_i64 (local.get $w))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                   (local.get $n))))
             (local.get $s))
           (func (export "_start") (call $print (call $sum (i32.const 300))))"#,
        )));
        assert!(n > 300 * 20, "{n}");
    }
}

#[test]
fn tables_holding_imports_keep_the_original_calls() {
    // A table entry the host provides (here `proc_exit`, in a segment or
    // taken by `ref.func`) cannot take the count: its table calls go
    // through the global and must still reach the import, not trap on
    // the signature check.
    for refs in [
        "(elem (i32.const 0) $exit)",
        "(elem declare func $exit) (func $put (table.set (i32.const 0) (ref.func $exit)))",
    ] {
        let put = if refs.contains("$put") {
            "(call $put)"
        } else {
            ""
        };
        let n = agree(&module(&format!(
            r#"(table 1 funcref) {refs}
               (func (export "_start") {put} (call $emit (i32.const 3))
                 (call_indirect (param i32) (i32.const 0) (i32.const 0))
                 (call $emit (i32.const 4)))"#
        )));
        assert!(n > 5, "{n}");
    }
}

#[test]
fn unrolled_loops_with_exits_to_several_labels() {
    agree(&module(
        r#"(func $f (param $n i32) (result i32) (local $i i32) (local $s i32)
             (block $out (block $skip
               (loop $l
                 (br_if $out (i32.eq (local.get $s) (i32.const 1000003)))
                 (br_if $skip (i32.eq (local.get $i) (local.get $n)))
                 (local.set $s (i32.add (local.get $s) (local.get $i)))
                 (if (i32.eq (local.get $i) (i32.const 77)) (then (br $out)))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br $l)))
               (local.set $s (i32.add (local.get $s) (i32.const 1))))
             (local.get $s))
           ;; every exit of $skip from each of the 16 copies (a branchy
           ;; loop's), around the loop twice and more, and $out at 77
           (func (export "_start") (local $n i32)
             (loop $each
               (call $emit (call $f (local.get $n)))
               (local.set $n (i32.add (local.get $n) (i32.const 1)))
               (br_if $each (i32.lt_u (local.get $n) (i32.const 40))))
             (call $emit (call $f (i32.const 200))))"#,
    ));
}

/// A `br_if` out of a small loop that carries a value to its label: the
/// unrolled form's landing pads take no values, so such a loop stays as it
/// is (unrolled, the module failed to compile: a valid program that would
/// not load).
#[test]
fn loops_left_by_a_br_if_carrying_values_load_and_count_exactly() {
    agree(&module(
        r#"(func $plain (param $n i32) (result i32) (local $i i32)
             (block $found (result i32)
               (loop $l
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $found (i32.mul (local.get $i) (i32.const 3))
                   (i32.ge_u (local.get $i) (local.get $n)))
                 (br $l))
               (i32.const 0)))
           (func $branchy (param $n i32) (result i32) (local $i i32)
             (block $outer (result i32)
               (drop (block $inner (result i32)
                 (loop $l
                   (br_if $inner (i32.const 5) (i32.eq (local.get $i) (i32.const 1000)))
                   (br_if $outer (local.get $i) (i32.eq (local.get $i) (local.get $n)))
                   ;; $i runs through 0, 1, 4, 5, 8, ...: reaches 1000, skips
                   ;; half the $n
                   (if (i32.and (local.get $i) (i32.const 1))
                     (then (local.set $i (i32.add (local.get $i) (i32.const 3))))
                     (else (local.set $i (i32.add (local.get $i) (i32.const 1)))))
                   (br $l))
                 (i32.const 9)))
               (i32.const 7)))
           (func (export "_start") (local $n i32)
             (loop $each
               (call $emit (call $plain (local.get $n)))
               (call $emit (call $branchy (local.get $n)))
               (local.set $n (i32.add (local.get $n) (i32.const 1)))
               (br_if $each (i32.lt_u (local.get $n) (i32.const 40)))))"#,
    ));
}

/// Loops with many live locals, whose check's call the meter places
/// outside them (left for it and re-entered after): a loop with a result,
/// left by a table to two outer labels (one an outer loop's back edge), by a
/// `br_if` carrying a value out of the function's block, re-entered by a
/// plain `br` and a `br_if`; and one that never ends, which must stop at
/// its budget exactly.
fn many_live_locals(body: &str) -> String {
    const X: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "k", "m", "o", "t"];
    let locals: String = X.iter().map(|x| format!("(local ${x} i32)")).collect();
    let init: String = (X.iter().enumerate())
        .map(|(k, x)| format!("(local.set ${x} (i32.add (local.get $n) (i32.const {k})))"))
        .collect();
    // Each local takes in the next one: all of them are live at the header.
    let update: String = (X.iter().zip(X.iter().cycle().skip(1)))
        .map(|(x, y)| {
            format!("(local.set ${x} (i32.add (local.get ${x}) (i32.xor (local.get ${y}) (local.get $i))))")
        })
        .collect();
    let all = X.iter().fold("(i32.const 0)".to_string(), |acc, x| {
        format!("(i32.xor {acc} (local.get ${x}))")
    });
    module(&format!(
        r#"(func $work (param $n i32) (result i32) (local $i i32) (local $j i32) (local $s i32)
             {locals} {init}
             (block $out (result i32)
               (loop $outer
                 (local.set $j (i32.add (local.get $j) (i32.const 1)))
                 (drop (br_if $out (local.get $s) (i32.gt_u (local.get $j) (local.get $n))))
                 (local.set $i (i32.const 0))
                 (block $skip
                   (local.set $s (i32.add (local.get $s)
                     (loop $inner (result i32)
                       {update}
                       (local.set $i (i32.add (local.get $i) (i32.const 1)))
                       (block $cont
                         (br_table $cont $skip $outer $cont
                           (i32.rem_u (local.get $a) (i32.const 37))))
                       (drop (br_if $out (local.get $o)
                         (i32.eq (i32.and (local.get $b) (i32.const 65535)) (i32.const 7))))
                       (if (i32.and (local.get $i) (i32.const 1)) (then (br $inner)))
                       (br_if $inner (i32.lt_u (local.get $i) (local.get $n)))
                       (local.get $m)))))
                 (br $outer))
               (local.get $s))
             (i32.add {all}))
           (func $forever (local $i i32) {locals}
             (loop $l {update} (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))
           {body}"#
    ))
}

#[test]
fn loops_with_many_live_locals_check_outside_the_loop_and_count_exactly() {
    let mut total = 0;
    for n in [0, 1, 5, 40, 200] {
        total += agree(&many_live_locals(&format!(
            r#"(func (export "_start") (call $print (call $work (i32.const {n}))))"#
        )));
    }
    assert!(total > 100_000, "too little work: {total} instructions");
    let forever =
        many_live_locals(r#"(func (export "_start") (call $emit (i32.const 1)) (call $forever))"#);
    for fuel in [500, 10_007] {
        out_of_fuel_at(&forever, fuel);
    }
}

#[test]
fn slices_are_handed_out_one_per_slice_and_budgets_bind_in_recursion() {
    let wat = module(
        r#"(func $fib (param $n i32) (result i32)
             (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
               (then (local.get $n))
               (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                              (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
           (func (export "_start") (call $emit (call $fib (i32.const 25))))"#,
    );
    let bytes = wat::parse_str(&wat).unwrap();
    let vm = Vm::new(Limits::default()).unwrap();
    let loaded = vm.load(&bytes).unwrap();
    let spec = |fuel| TaskSpec {
        fuel,
        ..TaskSpec::default()
    };
    let mut task = vm.start(&loaded, spec(1 << 40), 10_000);
    let mut steps = 0;
    let outcome = loop {
        match task.step() {
            Step::Slice => steps += 1,
            Step::Done(o) => break o,
        }
    };
    assert!(outcome.success());
    assert_eq!(steps, outcome.instructions / 10_000);
    assert_eq!(task.slices(), steps);
    // Recursion with no loop at all still stops at the budget.
    let o = vm.run(&loaded, spec(50_000), 1_000_000);
    assert_eq!(o.status, Status::OutOfFuel);
    assert_eq!(o.instructions, 50_000);
}

#[test]
fn a_call_tree_without_loops_or_recursion_stops_at_its_budget() {
    // $f0 calls $f1 twice, which calls $f2 twice, ...: 2^40 calls and no
    // loop or recursion, so no check a loop or a recursive function would
    // place. Functions whose calls could run that long check on entry;
    // without them the run would go on for hours past its budget.
    let levels = 40;
    let funcs: String = (0..levels)
        .map(|k| {
            format!(
                "(func $f{k} (param $x i32) (result i32) \
                 (i32.add (call $f{n} (local.get $x)) (call $f{n} (i32.add (local.get $x) (i32.const 1)))))",
                n = k + 1
            )
        })
        .collect();
    let wat = module(&format!(
        r#"{funcs}
           (func $f{levels} (param $x i32) (result i32) (i32.mul (local.get $x) (i32.const 3)))
           (func (export "_start") (call $emit (call $f0 (i32.const 1))))"#
    ));
    let bytes = wat::parse_str(&wat).unwrap();
    let vm = Vm::new(Limits::default()).unwrap();
    let loaded = vm.load(&bytes).unwrap();
    for slice in [1, 1_000_000] {
        let spec = TaskSpec {
            fuel: 50_000,
            ..TaskSpec::default()
        };
        let o = vm.run(&loaded, spec, slice);
        assert_eq!(o.status, Status::OutOfFuel);
        assert_eq!(o.instructions, 50_000);
    }
}

/// A tiny deterministic generator of structured programs that always end:
/// every loop spends a shared step counter and leaves when it runs out, and
/// calls go down a depth argument.
struct Gen {
    state: u64,
    out: String,
    labels: Vec<String>,
    /// Labels of blocks with an `i32` result (branches to them carry one).
    valued: Vec<String>,
    next: usize,
    /// Generating `$h`, which calls nothing (the rewriter inlines such
    /// functions when they are small).
    leaf: bool,
}

impl Gen {
    fn rand(&mut self, n: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % n
    }

    fn expr(&mut self) -> String {
        let l = ["$a", "$b", "$c"][self.rand(3) as usize];
        let k = self.rand(7) as i32 - 3;
        match self.rand(4) {
            0 => format!("(i32.add (local.get {l}) (i32.const {k}))"),
            1 => format!("(i32.and (local.get {l}) (i32.const {}))", self.rand(4)),
            2 => format!("(i32.gt_s (local.get {l}) (i32.const {k}))"),
            _ => format!("(i32.xor (local.get $a) (local.get {l}))"),
        }
    }

    fn stmt(&mut self, depth: u32) {
        let choice = if depth == 0 {
            self.rand(3)
        } else {
            self.rand(13)
        };
        let l = ["$a", "$b", "$c"][self.rand(3) as usize];
        match choice {
            0 | 1 => {
                let e = self.expr();
                self.out.push_str(&format!("(local.set {l} {e})"));
            }
            2 => {
                if let Some(t) = self.pick(false) {
                    let e = self.expr();
                    self.out.push_str(&format!("(br_if {t} {e})"));
                }
            }
            3 => {
                let name = self.label();
                self.out.push_str(&format!("(block {name}"));
                self.labels.push(name);
                self.body(depth - 1);
                self.labels.pop();
                self.out.push(')');
            }
            4 | 5 => {
                let name = self.label();
                self.out.push_str(&format!(
                    "(loop {name} (br_if $fn (i32.eqz (global.get $steps))) \
                     (global.set $steps (i32.sub (global.get $steps) (i32.const 1)))"
                ));
                self.labels.push(name.clone());
                self.body(depth - 1);
                self.labels.pop();
                let e = self.expr();
                self.out.push_str(&format!("(br_if {name} {e}))"));
            }
            6 => {
                let e = self.expr();
                self.out.push_str(&format!("(if {e} (then"));
                self.body(depth - 1);
                self.out.push(')');
                if self.rand(2) == 0 {
                    self.out.push_str("(else");
                    self.body(depth - 1);
                    self.out.push(')');
                }
                self.out.push(')');
            }
            7 => {
                if self.labels.len() >= 2 {
                    let n = self.labels.len() as u64;
                    let mut targets = Vec::new();
                    for _ in 0..3 {
                        let k = self.rand(n) as usize;
                        targets.push(self.labels[k].clone());
                    }
                    let e = self.expr();
                    self.out.push_str(&format!(
                        "(block $bt{0} (br_table $bt{0} {1} (i32.and {e} (i32.const 3))))",
                        self.next,
                        targets.join(" ")
                    ));
                    self.next += 1;
                }
            }
            8 if self.leaf => {}
            8 => {
                let e = self.expr();
                let call = if self.rand(2) == 0 {
                    format!("(call $h {e})")
                } else {
                    format!("(call $g (i32.sub (local.get $d) (i32.const 1)) {e})")
                };
                self.out
                    .push_str(&format!("(local.set {l} (i32.add (local.get {l}) {call}))"));
            }
            9 => {
                // A mismatch loop (an LZ77 match finder's) over the data at 1024,
                // from `$c` (0-7) to a limit 1-32 further, leaving to any
                // label on a difference (an outer loop's: a back edge).
                let k = self.rand(self.labels.len() as u64 + 1) as usize;
                let exit = self.labels.get(k).map_or("$fn", |l| l.as_str()).to_string();
                let name = self.label();
                self.out.push_str(&format!(
                    "(local.set $c (i32.and (local.get $c) (i32.const 7)))
                     (local.set $p (i32.add (i32.const 1024) (i32.and (local.get $a) (i32.const 7))))
                     (local.set $q (i32.add (i32.const 1032) (i32.and (local.get $b) (i32.const 7))))
                     (local.set $n (i32.add (local.get $c)
                       (i32.add (i32.const 1) (i32.and (local.get $a) (i32.const 31)))))
                     loop {name}
                       local.get $p local.get $c i32.add i32.load8_u
                       local.get $q local.get $c i32.add i32.load8_u
                       i32.ne br_if {exit}
                       local.get $n local.get $c i32.const 1 i32.add local.tee $c
                       i32.ne br_if {name}
                     end"
                ));
            }
            11 => {
                // A block with a result, which branches from inside loops
                // leave with a value.
                let name = self.label();
                self.out
                    .push_str(&format!("(local.set {l} (block {name} (result i32)"));
                self.valued.push(name);
                self.body(depth - 1);
                self.valued.pop();
                let e = self.expr();
                self.out.push_str(&format!("{e}))"));
            }
            12 => {
                if let Some(t) = self.pick(true) {
                    let (v, e) = (self.expr(), self.expr());
                    self.out.push_str(&format!("(drop (br_if {t} {v} {e}))"));
                }
            }
            _ => {
                let e = self.expr();
                self.out
                    .push_str(&format!("(if {e} (then (return (local.get $b))))"));
            }
        }
    }

    /// A random label in scope: of a block with a result (`valued`), or one
    /// whose branches carry nothing.
    fn pick(&mut self, valued: bool) -> Option<String> {
        let n = if valued {
            self.valued.len()
        } else {
            self.labels.len()
        };
        if n == 0 {
            return None;
        }
        let k = self.rand(n as u64) as usize;
        Some(if valued { &self.valued } else { &self.labels }[k].clone())
    }

    fn label(&mut self) -> String {
        self.next += 1;
        format!("$l{}", self.next)
    }

    fn body(&mut self, depth: u32) {
        for _ in 0..1 + self.rand(4) {
            self.stmt(depth);
        }
    }

    fn program(seed: u64) -> String {
        let mut g = Gen {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            out: String::new(),
            labels: Vec::new(),
            valued: Vec::new(),
            next: 0,
            leaf: true,
        };
        g.body(3);
        let leaf = std::mem::take(&mut g.out);
        g.leaf = false;
        g.body(4);
        let body = std::mem::take(&mut g.out);
        // `$g` keeps ten more locals live through its body, so that its
        // innermost loops have their check's call outside them (the meter
        // does that where 12 or more locals are live); `$h`'s loops keep it
        // inside.
        let keep: String = (0..10).map(|k| format!("(local $k{k} i32)")).collect();
        let keep_set: String = (0..10)
            .map(|k| format!("(local.set $k{k} (i32.add (local.get $a) (i32.const {k})))"))
            .collect();
        let keep_sum = (1..10).fold("(local.get $k0)".to_string(), |acc, k| {
            format!("(i32.xor {acc} (local.get $k{k}))")
        });
        // `$h` reads its locals before it writes them: they must start at 0
        // on every call, inlined or not.
        module(&format!(
            r#"(global $steps (mut i32) (i32.const 3000))
               (data (i32.const 1024) "abababababababababababababababababababab")
               (data (i32.const 1064) "abcabcabcabcabcabcabcabcthe quick brown fox jumps over the")
               (func $h (param $a i32) (result i32) (local $b i32) (local $c i32)
                 (local $p i32) (local $q i32) (local $n i32)
                 (block $fn {leaf})
                 (i32.add (local.get $a) (i32.add (local.get $b) (local.get $c))))
               (func $g (param $d i32) (param $a i32) (result i32) (local $b i32) (local $c i32)
                 (local $p i32) (local $q i32) (local $n i32) {keep}
                 (if (i32.le_s (local.get $d) (i32.const 0)) (then (return (local.get $a))))
                 (local.set $b (i32.const 1)) (local.set $c (i32.const 2))
                 {keep_set}
                 (block $fn {body})
                 (i32.add (i32.add (local.get $a) (local.get $b)) {keep_sum}))
               (func (export "_start") (call $emit (call $g (i32.const 3) (i32.const 5))))"#
        ))
    }
}

#[test]
fn random_structured_programs_count_exactly_what_fuel_counts() {
    let mut total = 0;
    for seed in 1..=150 {
        total += agree(&Gen::program(seed));
    }
    assert!(
        total > 150 * 50,
        "programs too trivial: {total} instructions"
    );
}

/// A module that fills `fill` bytes 10 times, copies `copy` bytes 10 times
/// and grows memory by `grow` pages, then prints the last byte filled.
fn bulk(fill: u32, copy: u32, grow: u32) -> String {
    module(&format!(
        r#"(func (export "_start") (local $i i32)
             (drop (memory.grow (i32.const {grow})))
             (loop $l
               (memory.fill (i32.const 1024) (i32.add (i32.const 7) (local.get $i)) (i32.const {fill}))
               (memory.copy (i32.const 20000) (i32.const 1024) (i32.const {copy}))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
             (call $print (i32.load8_u (i32.const 20000))))"#
    ))
}

#[test]
fn bulk_memory_is_charged_by_size() {
    // Against fuel: 10 fills and 10 copies, each len >> 2 on top of fuel's
    // 1; the grown pages are in the reference's count already.
    let small = agree_plus(&bulk(64, 64, 0), 10 * 16 + 10 * 16);
    let large = agree_plus(&bulk(32_000, 25_600, 0), 10 * 8000 + 10 * 6400);
    let grown = agree_plus(&bulk(64, 64, 3), 10 * 16 + 10 * 16);
    // Ours alone: the difference is exactly the size charge.
    let ours = |wat: &str| {
        let vm = Vm::new(Limits::default()).unwrap();
        let spec = TaskSpec {
            fuel: 1 << 40,
            ..TaskSpec::default()
        };
        let o = vm.run(&vm.load(&wat::parse_str(wat).unwrap()).unwrap(), spec, 1000);
        assert_eq!(o.status, Status::Exited(0));
        o.instructions
    };
    assert_eq!(
        ours(&bulk(32_000, 25_600, 0)) - ours(&bulk(64, 64, 0)),
        10 * (8000 - 16) + 10 * (6400 - 16)
    );
    assert_eq!(ours(&bulk(64, 64, 3)) - ours(&bulk(64, 64, 0)), 3 * 16384);
    // Fuel counts an operator as 1 whatever its size; the reference adds
    // the pages grown.
    assert_eq!((large, grown), (small, small + 3 * 16384));
}

/// `memory.copy` of `(dst, src, len)` after filling bytes 1,024 on of one
/// page with a pattern; prints a checksum of those bytes after each copy.
fn copies(cases: &[(u32, u32, u32)]) -> String {
    let calls: String = cases
        .iter()
        .map(|(d, s, n)| format!("(call $copy (i32.const {d}) (i32.const {s}) (i32.const {n}))\n"))
        .collect();
    module(&format!(
        r#"(func $sum (result i32) (local $i i32) (local $h i32)
             (local.set $i (i32.const 1024))
             (loop $l
               (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31))
                 (i32.load8_u (local.get $i))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                 (i32.const 65536))))
             (local.get $h))
           (func $copy (param $d i32) (param $s i32) (param $n i32)
             (memory.copy (local.get $d) (local.get $s) (local.get $n))
             (call $print (call $sum)))
           (func (export "_start") (local $i i32)
             (local.set $i (i32.const 1024))
             (loop $l
               (i32.store8 (local.get $i) (i32.xor (i32.mul (local.get $i) (i32.const 7))
                 (i32.shr_u (local.get $i) (i32.const 8))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                 (i32.const 65536))))
             {calls})"#
    ))
}

#[test]
fn long_copies_move_what_memory_copy_moves() {
    // Copies longer than 2,048 bytes with the destination 1 to 15 bytes
    // above the source modulo 4 KiB run as a loop of 16-byte moves (see
    // `proctor_vm::meter`): each direction, overlapping or not, with an
    // unaligned head and a tail, up to the end of memory; and the copies
    // beside them that stay one `memory.copy` (a short one, one outside
    // the window). Fuel's run is plain wasmtime: the same bytes after
    // every copy, and the same count plus `len >> 2` a copy.
    let cases = [
        (17416, 1025, 20000),  // 7 above, after the source
        (31813, 40000, 20000), // 5 above modulo 4 KiB, below the source, overlapping
        (2015, 2000, 30001),   // 15 above, overlapping
        (5001, 5000, 2049),    // 1 above, just long enough
        (5002, 5000, 2048),    // too short: one copy
        (25919, 30000, 9999),  // 15 above modulo 4 KiB, below the source
        (9216, 1024, 10000),   // a multiple of 4 KiB apart: one copy
        (3016, 3000, 12345),   // 16 above: one copy
        (40489, 20000, 25047), // 9 above, ending at the end of memory
    ];
    let charge = cases.iter().map(|&(_, _, n)| u64::from(n >> 2)).sum();
    agree_plus(&copies(&cases), charge);
    // One byte more runs past the end of memory: a trap in both.
    traps_out_of_bounds(&copies(&[(40489, 20000, 25048)]));
    traps_out_of_bounds(&copies(&[(20018, 40489, 25048)]));
}

#[test]
fn random_long_copies_in_the_window_move_what_memory_copy_moves() {
    // 40 copies of 2,049 to 20,000 bytes between random places of the
    // page, 1 to 15 bytes above modulo 4 KiB (now and then 16 or 0: one
    // copy), either way round and overlapping or not, each checked against
    // plain wasmtime as above.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |k: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % k
    };
    let mut cases = Vec::new();
    while cases.len() < 40 {
        let n = 2049 + next(18_000) as u32;
        let s = 1024 + next(u64::from(65_536 - 1024 - n)) as u32;
        let delta = [1, 2, 7, 8, 15, 16, 0][next(7) as usize];
        let d = i64::from(s) + (next(9) as i64 - 4) * 4096 + delta;
        if d >= 1024 && d + i64::from(n) <= 65_536 {
            cases.push((d as u32, s, n));
        }
    }
    let charge = cases.iter().map(|&(_, _, n)| u64::from(n >> 2)).sum();
    agree_plus(&copies(&cases), charge);
}

/// A module that writes `write` bytes in `iovecs` buffers, draws `random`
/// random bytes and reads up to `read` bytes of input; prints fd_write's
/// errno.
fn io(write: u32, iovecs: u32, random: u32, read: u32) -> String {
    format!(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
             (memory (export "memory") 2)
             (func (export "_start") (local $k i32) (local $e i32)
               ;; iovecs at 0: the first has all the bytes (at 65536), the others none
               (i32.store (i32.const 0) (i32.const 65536))
               (i32.store (i32.const 4) (i32.const {write}))
               (local.set $e (call $write (i32.const 2) (i32.const 0) (i32.const {iovecs}) (i32.const 60000)))
               (drop (call $random (i32.const 70000) (i32.const {random})))
               (i32.store (i32.const 8) (i32.const 80000))
               (i32.store (i32.const 12) (i32.const {read}))
               (drop (call $read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 60000)))
               ;; errno of the write, as a byte on stdout
               (i32.store8 (i32.const 61000) (i32.add (i32.const 48) (local.get $e)))
               (i32.store (i32.const 16) (i32.const 61000))
               (i32.store (i32.const 20) (i32.const 1))
               (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 60000)))))"#
    )
}

#[test]
fn wasi_calls_are_charged_by_the_bytes_they_move() {
    let input = vec![7u8; 5000];
    let run = |wat: &str| {
        let bytes = wat::parse_str(wat).unwrap();
        let spec = TaskSpec {
            fuel: 1 << 40,
            input: input.clone(),
            ..TaskSpec::default()
        };
        let fuel = UnmeteredVm::with_fuel(Limits::default()).unwrap();
        let reference = fuel.run(&fuel.compile(&bytes).unwrap(), &spec);
        let vm = Vm::new(Limits::default()).unwrap();
        let o = vm.run(&vm.load(&bytes).unwrap(), spec, 997);
        // Both engines charge WASI calls alike.
        assert_eq!(
            (o.instructions, &o.stdout),
            (reference.instructions, &reference.stdout)
        );
        (o.instructions, String::from_utf8(o.stdout).unwrap())
    };
    let (base, ok) = run(&io(16, 1, 4, 16));
    assert_eq!(ok, "0");
    // Writing 4,016 bytes: 1,000 more (one per 4); in 8 buffers: 7 more.
    assert_eq!(run(&io(4016, 1, 4, 16)).0 - base, 1000);
    assert_eq!(run(&io(16, 8, 4, 16)).0 - base, 7);
    // 404 random bytes: 2,400 more (six per byte).
    assert_eq!(run(&io(16, 1, 404, 16)).0 - base, 2400);
    // Reading 4,016 bytes of the 5,000: 1,000 more; asking for 9,999
    // delivers 5,000 and is charged for those.
    assert_eq!(run(&io(16, 1, 4, 4016)).0 - base, 1000);
    assert_eq!(run(&io(16, 1, 4, 9999)).0 - base, (5000 - 16) >> 2);
    // More than 1,024 iovecs: EINVAL (28, printed as '0' + 28), nothing written.
    let (_, einval) = run(&io(16, 1025, 4, 16));
    assert_eq!(einval, "L");
}

#[test]
fn a_trapped_run_counts_up_to_its_last_check_never_past_the_trap() {
    // The count is exact at checks and host calls, not at every operator:
    // a run that traps reports the count of its last such point, which
    // the slice size decides (the worker's host picks it, so replicas may
    // differ, each paid by its own report). Never more than what ran (a
    // user is not charged past the trap, whatever the slice), never less
    // than what ran
    // before the last yield (the guest yields every 16 slices, and the
    // limit it runs to is the next yield), less what runs between two
    // checks (here four unrolled iterations and the exit, under 100), and
    // the same on every run.
    let wat = module(
        r#"(func (export "_start") (local $i i32)
             (loop $l
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
             (unreachable))"#,
    );
    let slices = [1, 97, 1000, 10_000];
    let (reference, ours) = runs(&wat, 1 << 40, &slices);
    let (_, again) = runs(&wat, 1 << 40, &slices);
    assert!(matches!(reference.status, Status::Trapped(_)));
    for ((o, a), slice) in ours.iter().zip(&again).zip(slices) {
        assert!(matches!(o.status, Status::Trapped(_)), "slice {slice}");
        assert_eq!(o.instructions, a.instructions, "slice {slice}");
        assert!(o.instructions <= reference.instructions, "slice {slice}");
        assert!(
            o.instructions + 16 * slice + 100 >= reference.instructions,
            "slice {slice}: {} of {}",
            o.instructions,
            reference.instructions
        );
    }
}
