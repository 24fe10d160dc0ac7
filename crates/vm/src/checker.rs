//! The module checker (seed 000 §3.4.2: "the checker verifies that the
//! program has one entry point, only calls the allowed ABI, and is properly
//! instrumented").

use crate::wasi;
use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::Hash;
use serde::{Deserialize, Serialize};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures};

/// Resource limits on modules and runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// Largest linear memory, in 64 KiB pages (declared minimum and growth).
    pub max_memory_pages: u64,
    /// Largest table, in elements.
    pub max_table_elements: u64,
    /// Most globals a module may define.
    pub max_globals: u32,
    /// Most bytes a run may write to stdout; a run that writes more fails.
    pub max_output_bytes: usize,
    /// Most bytes of stderr kept; the rest is dropped (the log is advisory).
    pub max_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_module_bytes: 16 << 20,
            max_memory_pages: 4096, // 256 MiB
            max_table_elements: 100_000,
            max_globals: 1_000,
            max_output_bytes: 64 << 20,
            max_log_bytes: 64 << 10,
        }
    }
}

/// The checker's verdict on an accepted module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Verdict {
    /// BLAKE3 of the module bytes.
    pub module: Hash,
    /// Imported functions, as `module.name`.
    pub imports: Vec<String>,
    /// Exports, as `kind name`.
    pub exports: Vec<String>,
    /// Declared initial memory, in pages.
    pub memory_pages: u64,
}

/// Why a module was rejected. Each reason has its own variant and message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    #[error("module is {size} bytes, larger than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed WebAssembly module: {0}")]
    Malformed(String),
    #[error(
        "forbidden import {module}.{name}: only the interface's allowed functions may be imported (for a task, wasi_snapshot_preview1's subset)"
    )]
    ForbiddenImport { module: String, name: String },
    #[error("import {module}.{name} has the wrong signature")]
    ImportSignature { module: String, name: String },
    #[error(
        "module must export its interface's entry points (for a task, exactly one: `_start`); it exports functions {found:?}"
    )]
    EntryPoints { found: Vec<String> },
    #[error("module has a start section, a second entry point")]
    StartSection,
    #[error("module declares {pages} memory pages, more than the limit of {limit}")]
    TooMuchMemory { pages: u64, limit: u64 },
    #[error("module declares more than one memory")]
    TooManyMemories,
    #[error("module declares a table of {elements} elements, more than the limit of {limit}")]
    TableTooLarge { elements: u64, limit: u64 },
    #[error("module defines {count} globals, more than the limit of {limit}")]
    TooManyGlobals { count: u32, limit: u32 },
    #[error("export name {0:?} is reserved for the meter")]
    ReservedExport(String),
}

/// A function's parameter and result types.
pub type Signature = (&'static [ValType], &'static [ValType]);

/// The interface a module runs against: where its imports may come from,
/// with which signatures, and which functions it exports. Tasks are WASI
/// commands ([`Abi::TASK`]); other kinds of module (contracts) bring their
/// own.
#[derive(Clone, Copy, Debug)]
pub struct Abi {
    /// The one module imports may come from.
    pub import_module: &'static str,
    /// The signature (parameters, results) of each function it may import.
    pub signature: fn(&str) -> Option<Signature>,
    /// Functions it must export.
    pub required_exports: &'static [&'static str],
    /// Functions it may export besides.
    pub optional_exports: &'static [&'static str],
}

impl Abi {
    /// A task: a WASI command importing an allowed subset of
    /// `wasi_snapshot_preview1`, with the one entry point `_start`.
    pub const TASK: Abi = Abi {
        import_module: wasi::MODULE,
        signature: wasi::signature,
        required_exports: &["_start"],
        optional_exports: &[],
    };
}

/// WebAssembly 2.0 (SIMD, bulk memory, reference types, multi-value); no
/// threads, relaxed SIMD or other proposals whose results can vary by machine.
pub(crate) fn features() -> WasmFeatures {
    WasmFeatures::WASM2
}

/// Checks `bytes` against the task ABI and `limits`.
pub fn check(bytes: &[u8], limits: &Limits) -> Result<Verdict, CheckError> {
    check_abi(bytes, limits, &Abi::TASK)
}

/// Checks `bytes` against `abi` and `limits`.
pub fn check_abi(bytes: &[u8], limits: &Limits, abi: &Abi) -> Result<Verdict, CheckError> {
    if bytes.len() > limits.max_module_bytes {
        return Err(CheckError::TooLarge {
            size: bytes.len(),
            limit: limits.max_module_bytes,
        });
    }
    let malformed = |e: wasmparser::BinaryReaderError| CheckError::Malformed(e.to_string());
    Validator::new_with_features(features())
        .validate_all(bytes)
        .map_err(malformed)?;

    let mut types: Vec<wasmparser::FuncType> = Vec::new();
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut entry_points = Vec::new();
    let mut memories = 0u32;
    let mut memory_pages = 0;
    let mut globals = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(r) => {
                for ty in r.into_iter_err_on_gc_types() {
                    types.push(ty.map_err(malformed)?);
                }
            }
            Payload::ImportSection(r) => {
                for imp in r {
                    let imp = imp.map_err(malformed)?;
                    let forbidden = || CheckError::ForbiddenImport {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                    };
                    let TypeRef::Func(idx) = imp.ty else {
                        return Err(forbidden());
                    };
                    if imp.module != abi.import_module {
                        return Err(forbidden());
                    }
                    let Some((params, results)) = (abi.signature)(imp.name) else {
                        return Err(forbidden());
                    };
                    let ty = types
                        .get(idx as usize)
                        .ok_or_else(|| CheckError::Malformed("bad type index".into()))?;
                    if ty.params() != params || ty.results() != results {
                        return Err(CheckError::ImportSignature {
                            module: imp.module.to_string(),
                            name: imp.name.to_string(),
                        });
                    }
                    imports.push(format!("{}.{}", imp.module, imp.name));
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    let m = m.map_err(malformed)?;
                    memories += 1;
                    if memories > 1 {
                        return Err(CheckError::TooManyMemories);
                    }
                    if m.initial > limits.max_memory_pages {
                        return Err(CheckError::TooMuchMemory {
                            pages: m.initial,
                            limit: limits.max_memory_pages,
                        });
                    }
                    memory_pages = m.initial;
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t.map_err(malformed)?;
                    if t.ty.initial > limits.max_table_elements {
                        return Err(CheckError::TableTooLarge {
                            elements: t.ty.initial,
                            limit: limits.max_table_elements,
                        });
                    }
                }
            }
            Payload::GlobalSection(r) => {
                globals += r.count();
                if globals > limits.max_globals {
                    return Err(CheckError::TooManyGlobals {
                        count: globals,
                        limit: limits.max_globals,
                    });
                }
            }
            Payload::StartSection { .. } => return Err(CheckError::StartSection),
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(malformed)?;
                    if e.name == crate::meter::REMAINING {
                        return Err(CheckError::ReservedExport(e.name.to_string()));
                    }
                    let kind = match e.kind {
                        ExternalKind::Func => {
                            entry_points.push(e.name.to_string());
                            "func"
                        }
                        ExternalKind::Memory => "memory",
                        ExternalKind::Table => "table",
                        ExternalKind::Global => "global",
                        _ => "other",
                    };
                    exports.push(format!("{kind} {}", e.name));
                }
            }
            _ => {}
        }
    }
    let allowed = |e: &String| {
        abi.required_exports.contains(&e.as_str()) || abi.optional_exports.contains(&e.as_str())
    };
    let has_all = abi
        .required_exports
        .iter()
        .all(|r| entry_points.iter().any(|e| e == r));
    if !has_all || !entry_points.iter().all(allowed) {
        return Err(CheckError::EntryPoints {
            found: entry_points,
        });
    }
    Ok(Verdict {
        module: Hash::of(bytes),
        imports,
        exports,
        memory_pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(src: &str) -> Vec<u8> {
        wat::parse_str(src).unwrap()
    }

    const OK: &str = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
        (memory (export "memory") 1)
        (func (export "_start")))"#;

    #[test]
    fn accepts_a_minimal_command() {
        let v = check(&wat(OK), &Limits::default()).unwrap();
        assert_eq!(v.imports, vec!["wasi_snapshot_preview1.proc_exit"]);
        assert!(v.exports.contains(&"func _start".to_string()));
        assert_eq!(v.module, Hash::of(&wat(OK)));
    }

    #[test]
    fn rejects_forbidden_import_by_name() {
        let m = wat(r#"(module (import "env" "open_socket" (func)) (func (export "_start")))"#);
        let e = check(&m, &Limits::default()).unwrap_err();
        assert_eq!(
            e,
            CheckError::ForbiddenImport {
                module: "env".into(),
                name: "open_socket".into()
            }
        );
        assert!(e.to_string().contains("env.open_socket"));
        let m = wat(
            r#"(module (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32))) (func (export "_start")))"#,
        );
        assert!(matches!(
            check(&m, &Limits::default()),
            Err(CheckError::ForbiddenImport { .. })
        ));
    }

    #[test]
    fn rejects_wrong_import_signature() {
        let m = wat(
            r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i64))) (func (export "_start")))"#,
        );
        assert!(matches!(
            check(&m, &Limits::default()),
            Err(CheckError::ImportSignature { .. })
        ));
    }

    #[test]
    fn rejects_two_entry_points_and_start_section() {
        let m = wat(r#"(module (func (export "_start")) (func (export "main")))"#);
        assert_eq!(
            check(&m, &Limits::default()),
            Err(CheckError::EntryPoints {
                found: vec!["_start".into(), "main".into()]
            })
        );
        let m = wat(r#"(module (func $s) (start $s) (func (export "_start")))"#);
        assert_eq!(check(&m, &Limits::default()), Err(CheckError::StartSection));
        let m = wat(r#"(module (memory 1))"#);
        assert!(matches!(
            check(&m, &Limits::default()),
            Err(CheckError::EntryPoints { .. })
        ));
    }

    /// The same checker serves another interface: a contract importing from
    /// `proctor` and exporting `handle` and `query` (and `init` if it likes)
    /// passes; the same module is not a task, and a task is not a contract.
    #[test]
    fn another_abi_checks_its_own_imports_and_entry_points() {
        fn sig(name: &str) -> Option<Signature> {
            const LEN: &[ValType] = &[ValType::I32];
            match name {
                "msg_len" => Some((&[], LEN)),
                _ => None,
            }
        }
        let contract = Abi {
            import_module: "proctor",
            signature: sig,
            required_exports: &["handle", "query"],
            optional_exports: &["init"],
        };
        let m = wat(r#"(module (import "proctor" "msg_len" (func (result i32)))
                 (func (export "handle") (result i32) (i32.const 0))
                 (func (export "query") (result i32) (i32.const 0))
                 (func (export "init")))"#);
        let v = check_abi(&m, &Limits::default(), &contract).unwrap();
        assert_eq!(v.imports, vec!["proctor.msg_len"]);
        assert!(matches!(
            check(&m, &Limits::default()),
            Err(CheckError::ForbiddenImport { .. })
        ));
        let no_query = wat(r#"(module (func (export "handle") (result i32) (i32.const 0)))"#);
        assert!(matches!(
            check_abi(&no_query, &Limits::default(), &contract),
            Err(CheckError::EntryPoints { .. })
        ));
        let task = wat(r#"(module (func (export "_start")))"#);
        assert!(check(&task, &Limits::default()).is_ok());
        assert!(matches!(
            check_abi(&task, &Limits::default(), &contract),
            Err(CheckError::EntryPoints { .. })
        ));
    }

    #[test]
    fn rejects_the_meters_export_name() {
        let m = wat(
            r#"(module (global (export "proctor:remaining") i64 (i64.const 0)) (func (export "_start")))"#,
        );
        assert_eq!(
            check(&m, &Limits::default()),
            Err(CheckError::ReservedExport("proctor:remaining".into()))
        );
    }

    #[test]
    fn rejects_too_much_memory() {
        let m = wat(r#"(module (memory 5000) (func (export "_start")))"#);
        assert_eq!(
            check(&m, &Limits::default()),
            Err(CheckError::TooMuchMemory {
                pages: 5000,
                limit: 4096
            })
        );
    }

    #[test]
    fn rejects_malformed_and_oversized() {
        assert!(matches!(
            check(b"\0asm\x01\0\0\0\x01", &Limits::default()),
            Err(CheckError::Malformed(_))
        ));
        assert!(matches!(
            check(b"not wasm", &Limits::default()),
            Err(CheckError::Malformed(_))
        ));
        let limits = Limits {
            max_module_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            check(&wat(OK), &limits),
            Err(CheckError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_threads() {
        let m = wat(r#"(module (memory 1 1 shared) (func (export "_start")))"#);
        assert!(matches!(
            check(&m, &Limits::default()),
            Err(CheckError::Malformed(_))
        ));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const FILLER: &[u8] = include_bytes!("../../../examples/tasks/filler.wasm");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Arbitrary bytes: an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = check(&bytes, &Limits::default());
        }

        /// A real module with a few bytes changed: accepted or rejected, never a panic.
        #[test]
        fn mutated_modules_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut m = FILLER.to_vec();
            for (at, b) in edits {
                let i = at % m.len();
                m[i] = b;
            }
            let _ = check(&m, &Limits::default());
        }
    }
}
