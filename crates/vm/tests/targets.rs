//! The same machine code everywhere: the engine compiles for a fixed set of
//! CPU features ([`proctor_vm::X86_64_FEATURES`]), not the host's, so
//! replicas on different CPUs agree bit for bit. Here the same modules run
//! under three feature sets (pinned, plain x86-64, and whatever this host
//! has) and must print the same bytes, NaN bits included, with the same
//! instruction counts.

use proctor_vm::{Features, Limits, Status, TaskSpec, UnmeteredVm, Vm};
use std::path::{Path, PathBuf};

fn tasks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks")
}

/// The float probe (`examples/tasks/probes/floats.c`): NaNs from every
/// source, min/max, rounding, conversions, copysign; prints a digest of the
/// raw bits.
fn floats() -> Vec<u8> {
    std::fs::read(tasks_dir().join("probes/floats.wasm")).unwrap()
}

const FEATURES: [Features; 3] = [Features::Pinned, Features::Baseline, Features::Host];

#[test]
fn float_results_and_counts_do_not_depend_on_the_cpu_features() {
    let spec = TaskSpec {
        args: vec!["3000".into()],
        fuel: u64::MAX / 2,
        ..TaskSpec::default()
    };
    let mut outputs = Vec::new();
    for f in FEATURES {
        let vm = Vm::with_features(Limits::default(), f).unwrap();
        let loaded = vm.load(&floats()).unwrap();
        let o = vm.run(&loaded, spec.clone(), 1_000_000);
        assert_eq!(o.status, Status::Exited(0), "{f:?}");
        let u = UnmeteredVm::with_features(Limits::default(), f).unwrap();
        let plain = u.run(&u.compile(&floats()).unwrap(), &spec);
        assert_eq!(
            plain.stdout, o.stdout,
            "{f:?}: metered and unmetered differ"
        );
        outputs.push((f, o.stdout, o.instructions));
    }
    let (_, digest, count) = &outputs[0];
    assert_eq!(digest.len(), 17, "a 64-bit hex digest and a newline");
    for (f, out, n) in &outputs[1..] {
        assert_eq!(
            (String::from_utf8_lossy(out), n),
            (String::from_utf8_lossy(digest), count),
            "{f:?} against pinned"
        );
    }
}

#[test]
fn the_examples_agree_under_every_feature_set() {
    let input = std::fs::read(tasks_dir().join("inputs/text.txt")).unwrap();
    for (name, args) in [("nbody", "2000"), ("lz", "1"), ("sha256", "2")] {
        let module = std::fs::read(tasks_dir().join(format!("{name}.wasm"))).unwrap();
        let spec = TaskSpec {
            args: vec![args.into()],
            input: input.clone(),
            fuel: u64::MAX / 2,
            ..TaskSpec::default()
        };
        let runs: Vec<_> = FEATURES
            .iter()
            .map(|&f| {
                let vm = Vm::with_features(Limits::default(), f).unwrap();
                let o = vm.run(&vm.load(&module).unwrap(), spec.clone(), 250_000);
                assert_eq!(o.status, Status::Exited(0), "{name} {f:?}");
                (o.stdout, o.instructions)
            })
            .collect();
        assert!(runs.windows(2).all(|w| w[0] == w[1]), "{name}");
    }
}
