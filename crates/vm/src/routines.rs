//! Known library routines: faster code that charges the same count.
//!
//! The count of a run is defined on the module as submitted (see
//! [`crate::meter`]), not on the machine code that runs it, so the rewriter
//! may run something faster wherever it can charge exactly what the original
//! would have. wasi-libc's `memcmp` compares a byte at a time, 21 operators
//! per byte; lz checks each round trip with a 64 KiB `memcmp`, 4% of its
//! count.
//!
//! A routine is recognized by the exact bytes of its body (their BLAKE3
//! hash), as Debian's wasi-libc builds it, and its signature. The rewriter
//! then gives the function a fast body ([`Routine::fast`]) that does the
//! same work 8 bytes at a time, works out from the result which path the
//! original would have taken (how many loop iterations, which exit) and
//! subtracts the original's count for that path, a closed formula derived
//! below from the original's operators, from the counting local `r` (the
//! fast body's own operators cost nothing). The original body stays in the
//! module as a function of its own, metered as usual, and the fast body
//! calls it whenever it could behave differently: when an operand comes
//! within 8 bytes of the end of memory, where the original may trap. The
//! fast body is metered like any other (its loops are checked, though they
//! are free), and where the rewriter inlines small functions it inlines the
//! fast body: on short strings a call would cost more than the work.
//!
//! Measured (in-process, min of 15): lz 1.07x unmetered without, 1.05-1.06x
//! with; wordfreq (words of about 5 letters) unchanged. `strlen` was tried
//! the same way and left out: wasi-libc's already reads a word at a time,
//! and on short strings the charge's arithmetic cost more than 8-byte
//! words saved (wordfreq 1.10x instead of 1.00x).
//!
//! The formulas are tested against wasmtime's fuel, which runs the original,
//! on every alignment, length and mismatch position up to a few words, near
//! the end of memory, inlined and called (`tests/meter.rs`).

use wasmparser::{BlockType, MemArg, Operator as O, ValType};

/// Stands for the counting local `r` in a fast body until the rewriter has
/// placed it.
pub(crate) const R_LOCAL: u32 = u32::MAX;

/// A recognized routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Routine {
    /// `int memcmp(const void *l, const void *r, size_t n)`.
    Memcmp,
}

/// BLAKE3 of the body (locals and code, as in the code section) of each
/// routine, as built into Debian's wasi-libc (clang 14, `-O2`).
const KNOWN: [(&str, Routine); 1] = [(
    "3a1f635cf561b560a7ac845cbc06266a78481c9a6bbee4c01ab50f5eb9b2dd27",
    Routine::Memcmp,
)];

const I32: ValType = ValType::I32;
const I64: ValType = ValType::I64;

impl Routine {
    /// The routine whose body is `body` (the bytes the code section holds for
    /// it) with parameters `params` and results `results`, if any.
    pub(crate) fn recognize(
        body: &[u8],
        params: &[ValType],
        results: &[ValType],
    ) -> Option<Routine> {
        let hash = blake3::hash(body).to_hex();
        let (_, routine) = KNOWN.iter().find(|(h, _)| *h == hash.as_str())?;
        let want: &[ValType] = match routine {
            Routine::Memcmp => &[I32, I32, I32],
        };
        (params == want && results == [I32]).then_some(*routine)
    }

    /// Locals of the fast body, after the parameters.
    pub(crate) fn locals(self) -> &'static [ValType] {
        match self {
            // k, x, rem
            Routine::Memcmp => &[I32, I64, I32],
        }
    }

    /// The fast body, as a function body (parameters from local 0, then
    /// [`Routine::locals`], `r` as [`R_LOCAL`], ending in `end`). It charges
    /// the original's count less the function entry, which whoever meters
    /// it charges; when it cannot run it calls `original`, the original
    /// body metered (an index of the module before rewriting).
    pub(crate) fn fast(self, original: u32) -> Vec<O<'static>> {
        let (mut ops, params) = match self {
            Routine::Memcmp => (memcmp(), 3),
        };
        // The original charges its own entry.
        ops.extend(charge([O::I64Const { value: -1 }]));
        ops.extend((0..params).map(|local_index| O::LocalGet { local_index }));
        ops.extend([
            O::Call {
                function_index: original,
            },
            O::End,
        ]);
        ops
    }
}

pub(crate) fn mem(align: u8, max_align: u8) -> MemArg {
    MemArg {
        align,
        max_align,
        offset: 0,
        memory: 0,
    }
}

/// 8 bytes at any address; one byte.
fn any() -> MemArg {
    mem(0, 3)
}
fn byte() -> MemArg {
    mem(0, 0)
}

pub(crate) fn get(local_index: u32) -> O<'static> {
    O::LocalGet { local_index }
}
pub(crate) fn set(local_index: u32) -> O<'static> {
    O::LocalSet { local_index }
}
pub(crate) fn tee(local_index: u32) -> O<'static> {
    O::LocalTee { local_index }
}
pub(crate) fn i32c(value: i32) -> O<'static> {
    O::I32Const { value }
}
pub(crate) fn i64c(value: i64) -> O<'static> {
    O::I64Const { value }
}
pub(crate) fn br_if(relative_depth: u32) -> O<'static> {
    O::BrIf { relative_depth }
}
pub(crate) fn block() -> O<'static> {
    O::Block {
        blockty: BlockType::Empty,
    }
}

/// `r -= count`, `count` being operators that push an i64.
pub(crate) fn charge<const N: usize>(count: [O<'static>; N]) -> Vec<O<'static>> {
    let mut ops = vec![get(R_LOCAL)];
    ops.extend(count);
    ops.extend([O::I64Sub, set(R_LOCAL)]);
    ops
}

/// The memory's size in bytes, as an i64.
pub(crate) fn memory_bytes() -> [O<'static>; 4] {
    [
        O::MemorySize { mem: 0 },
        O::I64ExtendI32U,
        i64c(16),
        O::I64Shl,
    ]
}

/// The rest of a loop comparing two byte strings a word at a time, inside
/// `block $eq block $ne loop`, once the `i64` local `x` holds the xor of the
/// 8 bytes at `k` and `rem` (at least 1) the bytes left: only those count.
/// On a difference it leaves to `$ne` and sets `k` to the first differing
/// byte, `k + ctz(x) / 8`; when none is left, to `$eq`; else it goes on 8
/// bytes further. It ends after `$ne`'s `end`.
pub(crate) fn next_word(k: u32, x: u32, rem: u32) -> [O<'static>; 39] {
    [
        // fewer than 8 left: only their bytes count
        get(rem),
        i32c(8),
        O::I32LtU,
        O::If {
            blockty: BlockType::Empty,
        },
        get(x),
        i64c(1),
        get(rem),
        O::I64ExtendI32U,
        i64c(3),
        O::I64Shl,
        O::I64Shl,
        i64c(1),
        O::I64Sub,
        O::I64And,
        set(x),
        O::End,
        get(x),
        O::I64Eqz,
        O::I32Eqz,
        br_if(1), // $ne
        get(rem),
        i32c(8),
        O::I32LeU,
        br_if(2), // $eq
        get(k),
        i32c(8),
        O::I32Add,
        set(k),
        O::Br { relative_depth: 0 },
        O::End, // loop
        O::End, // $ne
        get(k),
        get(x),
        O::I64Ctz,
        O::I32WrapI64,
        i32c(3),
        O::I32ShrU,
        O::I32Add,
        set(k),
    ]
}

/// `memcmp(l, r, n)`, locals 0-2, with k (3), x (4) and rem (5).
///
/// The original (entry 1, then costs per operator):
/// ```wat
/// (local i32 i32 i32)
/// i32.const 0 local.set 3                                  ;; 2
/// block  local.get 2 i32.eqz br_if 0                       ;; 3: n = 0
///   block  loop
///     local.get 0 i32.load8_u local.tee 4
///     local.get 1 i32.load8_u local.tee 5 i32.ne br_if 1   ;; 8: mismatch
///     local.get 1 i32.const 1 i32.add local.set 1          ;; 4
///     local.get 0 i32.const 1 i32.add local.set 0          ;; 4
///     local.get 2 i32.const -1 i32.add local.tee 2 br_if 0 ;; 5
///     br 2                                                 ;; 1: all equal
///   end end
///   local.get 4 local.get 5 i32.sub local.set 3            ;; 4
/// end
/// local.get 3                                              ;; 1
/// ```
/// so `n = 0` costs 7, a first mismatch at byte k costs `19 + 21k`, and `n`
/// equal bytes cost `8 + 21n`. It reads `l[0..=k]` and `r[0..=k]`; the fast
/// path reads 8-byte words from `k < n`, up to 7 bytes past `n`, so it runs
/// only when `max(l, r) + n + 7` is within memory.
fn memcmp() -> Vec<O<'static>> {
    let (l, r, n, k, x, rem) = (0, 1, 2, 3, 4, 5);
    let mut ops = vec![
        get(l),
        get(r),
        get(l),
        get(r),
        O::I32GtU,
        O::Select,
        O::I64ExtendI32U,
        get(n),
        O::I64ExtendI32U,
        O::I64Add,
        i64c(7),
        O::I64Add,
    ];
    ops.extend(memory_bytes());
    ops.extend([
        O::I64LeU,
        O::If {
            blockty: BlockType::Empty,
        },
        block(), // $eq
        block(), // $ne
        O::Loop {
            blockty: BlockType::Empty,
        },
        // rem = n - k; none left: equal
        get(n),
        get(k),
        O::I32Sub,
        tee(rem),
        O::I32Eqz,
        br_if(2),
        // x = l[k..k+8] ^ r[k..k+8]
        get(l),
        get(k),
        O::I32Add,
        O::I64Load { memarg: any() },
        get(r),
        get(k),
        O::I32Add,
        O::I64Load { memarg: any() },
        O::I64Xor,
        set(x),
    ]);
    ops.extend(next_word(k, x, rem));
    // 19 + 21k, less the entry
    ops.extend(charge([
        get(k),
        O::I64ExtendI32U,
        i64c(21),
        O::I64Mul,
        i64c(18),
        O::I64Add,
    ]));
    ops.extend([
        get(l),
        get(k),
        O::I32Add,
        O::I32Load8U { memarg: byte() },
        get(r),
        get(k),
        O::I32Add,
        O::I32Load8U { memarg: byte() },
        O::I32Sub,
        O::Return,
        O::End, // $eq: n = 0 costs 7, else 8 + 21n; less the entry
    ]);
    ops.extend(charge([
        i64c(6),
        get(n),
        O::I64ExtendI32U,
        i64c(21),
        O::I64Mul,
        i64c(7),
        O::I64Add,
        get(n),
        O::I32Eqz,
        O::Select,
    ]));
    ops.extend([i32c(0), O::Return, O::End]);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    /// The routines recognized among a module's bodies, and the body of
    /// the first (empty if none).
    fn recognized(bytes: &[u8]) -> (Vec<Routine>, Vec<u8>) {
        let (mut sigs, mut funcs, mut bodies) = (vec![], vec![], vec![]);
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.unwrap() {
                Payload::TypeSection(s) => {
                    for ty in s.into_iter_err_on_gc_types() {
                        let ty = ty.unwrap();
                        sigs.push((ty.params().to_vec(), ty.results().to_vec()));
                    }
                }
                Payload::FunctionSection(s) => funcs.extend(s.into_iter().map(|f| f.unwrap())),
                Payload::CodeSectionEntry(body) => bodies.push(body.as_bytes().to_vec()),
                _ => {}
            }
        }
        let (mut found, mut first) = (vec![], vec![]);
        for (body, ty) in bodies.into_iter().zip(funcs) {
            let (params, results) = &sigs[ty as usize];
            if let Some(r) = Routine::recognize(&body, params, results) {
                if found.is_empty() {
                    first = body;
                }
                found.push(r);
            }
        }
        (found, first)
    }

    #[test]
    fn every_copy_of_a_known_routine_gets_a_fast_body_and_keeps_its_original() {
        let memcmp = recognized(include_bytes!("../../../examples/tasks/lz.wasm")).1;
        let copies = 1000;
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function(
            [wasm_encoder::ValType::I32; 3],
            [wasm_encoder::ValType::I32],
        );
        let mut funcs = wasm_encoder::FunctionSection::new();
        let mut code = wasm_encoder::CodeSection::new();
        for _ in 0..copies {
            funcs.function(0);
            code.raw(&memcmp);
        }
        let mut memory = wasm_encoder::MemorySection::new();
        memory.memory(wasm_encoder::MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut module = wasm_encoder::Module::new();
        module
            .section(&types)
            .section(&funcs)
            .section(&memory)
            .section(&code);
        let module = module.finish();
        assert_eq!(recognized(&module).0.len(), copies);

        let metered = crate::meter::instrument(&module).unwrap();
        wasmparser::Validator::new_with_features(crate::checker::features())
            .validate_all(&metered)
            .unwrap();
        // The fast bodies, the check function, then the originals, which
        // are no longer recognized where they stand (they are metered).
        let bodies = Parser::new(0)
            .parse_all(&metered)
            .filter(|p| matches!(p, Ok(Payload::CodeSectionEntry(_))))
            .count();
        assert_eq!(bodies, 2 * copies + 1);
        assert_eq!(recognized(&metered).0, []);
    }

    #[test]
    fn debian_wasi_libc_memcmp_is_recognized_and_nothing_else() {
        let lz = include_bytes!("../../../examples/tasks/lz.wasm");
        let wordfreq = include_bytes!("../../../examples/tasks/wordfreq.wasm");
        let nbody = include_bytes!("../../../examples/tasks/nbody.wasm");
        assert_eq!(recognized(lz).0, [Routine::Memcmp]);
        assert_eq!(recognized(wordfreq).0, [Routine::Memcmp]);
        assert_eq!(recognized(nbody).0, []);
        // Only that body, with that signature.
        let mut body = recognized(lz).1;
        assert!(Routine::recognize(&body, &[I32, I32], &[I32]).is_none());
        assert!(Routine::recognize(&body, &[I32, I32, I32], &[]).is_none());
        let last = body.len() - 2;
        body[last] ^= 1;
        assert!(Routine::recognize(&body, &[I32, I32, I32], &[I32]).is_none());
    }
}
