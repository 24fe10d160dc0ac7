//! The corpus (`examples/corpus/`): real C programs from Debian source
//! packages, none written for proctor. Each passes the checker, prints
//! exactly what its native build printed, and counts exactly what
//! wasmtime's fuel counts (they use no bulk-memory operators, and WASI calls
//! charge both engines alike), at two slice sizes.

use proctor_vm::{Limits, Status, TaskSpec, UnmeteredVm, Vm};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/corpus")
}

#[test]
fn every_corpus_program_matches_its_native_output_and_fuel_count() {
    let dir = corpus();
    let table = std::fs::read_to_string(dir.join("cases.tsv")).unwrap();
    let vm = Vm::new(Limits::default()).unwrap();
    let fuel = UnmeteredVm::with_fuel(Limits::default()).unwrap();
    let mut n = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, input, args) = (cols[0], cols[1], cols[2]);
        let module = std::fs::read(dir.join(format!("{name}.wasm"))).unwrap();
        let spec = TaskSpec {
            args: match args {
                "-" => vec![],
                a => a.split(' ').map(String::from).collect(),
            },
            input: std::fs::read(dir.join(input)).unwrap(),
            fuel: u64::MAX / 2,
            ..TaskSpec::default()
        };
        let expected = std::fs::read(dir.join(format!("expected/{name}.out"))).unwrap();
        let loaded = vm.load(&module).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reference = fuel.run(&fuel.compile(&module).unwrap(), &spec);
        assert_eq!(reference.status, Status::Exited(0), "{name} (fuel)");
        for slice in [1_000_000, 77_777] {
            let o = vm.run(&loaded, spec.clone(), slice);
            assert_eq!(
                o.status,
                Status::Exited(0),
                "{name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(o.stdout == expected, "{name}: output differs from native");
            assert_eq!(
                o.instructions, reference.instructions,
                "{name} slice {slice}"
            );
        }
        n += 1;
    }
    assert!(n >= 5, "the corpus has at least five programs");
}
