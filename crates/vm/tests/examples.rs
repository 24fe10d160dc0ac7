//! The example tasks of `examples/tasks/`, unmodified C programs built with
//! `clang --target=wasm32-wasi`: each output equals the native (gcc) build's
//! output recorded by `build.sh`, and instruction counts are identical across
//! runs and slice sizes.

use proctor_vm::{Limits, Status, TaskSpec, UnmeteredVm, Vm};
use std::path::{Path, PathBuf};

struct Case {
    name: String,
    input: Vec<u8>,
    args: Vec<String>,
    expected: String,
}

fn tasks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks")
}

fn cases() -> Vec<Case> {
    let dir = tasks_dir();
    let table = std::fs::read_to_string(dir.join("cases.tsv")).unwrap();
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let (name, input, args) = (cols[0], cols[1], cols[2]);
            let input = if input == "-" {
                vec![]
            } else {
                std::fs::read(dir.join(input)).unwrap()
            };
            let expected_file = dir.join(format!("expected/{name}.{}.out", args.replace(' ', "_")));
            Case {
                name: name.to_string(),
                input,
                args: args.split(' ').map(String::from).collect(),
                expected: std::fs::read_to_string(expected_file).unwrap(),
            }
        })
        .collect()
}

fn module(name: &str) -> Vec<u8> {
    std::fs::read(tasks_dir().join(format!("{name}.wasm"))).unwrap()
}

fn spec(c: &Case, fuel: u64) -> TaskSpec {
    TaskSpec {
        args: c.args.clone(),
        input: c.input.clone(),
        fuel,
        ..TaskSpec::default()
    }
}

#[test]
fn every_example_matches_its_native_output_with_identical_counts() {
    let vm = Vm::new(Limits::default()).unwrap();
    let cases = cases();
    assert!(cases.len() >= 5, "cases.tsv lists the examples");
    for c in &cases {
        let loaded = vm.load(&module(&c.name)).unwrap();
        let first = vm.run(&loaded, spec(c, u64::MAX / 2), 1_000_000);
        assert_eq!(
            first.status,
            Status::Exited(0),
            "{} {:?}: {}",
            c.name,
            c.args,
            String::from_utf8_lossy(&first.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&first.stdout),
            c.expected,
            "{} {:?}",
            c.name,
            c.args
        );
        assert!(
            first.instructions > 10_000,
            "{}: {} instructions",
            c.name,
            first.instructions
        );
        // Same count on a rerun and for three other slice sizes.
        for slice in [1_000_000, 9_973, 250_000, u64::MAX / 4] {
            let o = vm.run(&loaded, spec(c, u64::MAX / 2), slice);
            assert_eq!(
                o.instructions, first.instructions,
                "{} slice {slice}",
                c.name
            );
            assert_eq!(o.stdout, first.stdout);
        }
    }
}

#[test]
fn unmetered_runs_agree() {
    let u = UnmeteredVm::new(Limits::default()).unwrap();
    for c in cases() {
        let m = u.compile(&module(&c.name)).unwrap();
        let o = u.run(&m, &spec(&c, 0));
        assert_eq!(String::from_utf8_lossy(&o.stdout), c.expected, "{}", c.name);
    }
}

#[test]
fn a_long_program_stops_at_its_budget_with_the_count_reported() {
    let vm = Vm::new(Limits::default()).unwrap();
    let loaded = vm.load(&module("filler")).unwrap();
    let s = TaskSpec {
        args: vec!["1000000000".into()],
        input: b"x".to_vec(),
        fuel: 5_000_000,
        ..TaskSpec::default()
    };
    let o = vm.run(&loaded, s, 100_000);
    assert_eq!(o.status, Status::OutOfFuel);
    assert_eq!(o.instructions, 5_000_000);
    assert!(
        o.stdout.is_empty(),
        "no partial output from an unfinished run"
    );
}

#[test]
fn clock_and_random_come_from_the_spec() {
    // wordfreq does not read them; check through a WAT probe that both are
    // the spec's and identical across runs.
    let probe = wat::parse_str(
        r#"(module
        (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
            (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 16)))
            (drop (call $rand (i32.const 24) (i32.const 8)))
            (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 16))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    let vm = Vm::new(Limits::default()).unwrap();
    let loaded = vm.load(&probe).unwrap();
    let s = |seed: u8| TaskSpec {
        fuel: 1_000_000,
        clock_ns: 1_700_000_000_123_456_789,
        random_seed: proctor_primitives::Hash([seed; 32]),
        ..TaskSpec::default()
    };
    let a = vm.run(&loaded, s(1), 1000);
    let b = vm.run(&loaded, s(1), 1000);
    let c = vm.run(&loaded, s(2), 1000);
    assert_eq!(&a.stdout[..8], &1_700_000_000_123_456_789u64.to_le_bytes());
    assert_eq!(a.stdout, b.stdout, "same seed, same bytes");
    assert_ne!(a.stdout[8..], c.stdout[8..], "another seed, other bytes");
}

#[test]
fn nan_producing_floats_are_deterministic() {
    // 0/0, sqrt(-1) and inf-inf produce NaNs; their bits are written out.
    let probe = wat::parse_str(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func $nan (param f64 f64) (result f64) (f64.div (local.get 0) (local.get 1)))
        (func (export "_start")
            (i64.store (i32.const 16) (i64.reinterpret_f64 (call $nan (f64.const 0) (f64.const 0))))
            (i64.store (i32.const 24) (i64.reinterpret_f64 (f64.sqrt (f64.const -1))))
            (i64.store (i32.const 32) (i64.reinterpret_f64 (f64.sub (f64.const inf) (f64.const inf))))
            (i32.store (i32.const 40) (i32.reinterpret_f32 (f32.mul (f32.const inf) (f32.const 0))))
            (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 28))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    let vm = Vm::new(Limits::default()).unwrap();
    let u = UnmeteredVm::new(Limits::default()).unwrap();
    let loaded = vm.load(&probe).unwrap();
    let s = TaskSpec {
        fuel: 1_000_000,
        ..TaskSpec::default()
    };
    let a = vm.run(&loaded, s.clone(), 3);
    let b = vm.run(&loaded, s.clone(), 1_000);
    let c = u.run(&u.compile(&probe).unwrap(), &s);
    assert_eq!(a.stdout.len(), 28);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(
        a.stdout, c.stdout,
        "metered and unmetered engines agree bit for bit"
    );
    assert_eq!(a.instructions, b.instructions);
    // Every value is a NaN.
    for i in 0..3 {
        let bits = u64::from_le_bytes(a.stdout[i * 8..i * 8 + 8].try_into().unwrap());
        assert!(f64::from_bits(bits).is_nan());
    }
}

#[test]
fn counts_equal_wasmtime_fuel() {
    let vm = Vm::new(Limits::default()).unwrap();
    let fuel = UnmeteredVm::with_fuel(Limits::default()).unwrap();
    for c in cases() {
        let bytes = module(&c.name);
        let ours = vm.run(&vm.load(&bytes).unwrap(), spec(&c, u64::MAX / 2), 1_000_000);
        let reference = fuel.run(&fuel.compile(&bytes).unwrap(), &spec(&c, u64::MAX / 2));
        assert!(ours.success() && reference.success(), "{}", c.name);
        assert_eq!(ours.stdout, reference.stdout, "{}", c.name);
        assert_eq!(
            ours.instructions, reference.instructions,
            "{} {:?}",
            c.name, c.args
        );
    }
}
