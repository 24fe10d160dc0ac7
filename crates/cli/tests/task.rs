//! `proctor task check | run | bench` on the example tasks.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_proctor");
/// A task that prints 16 bytes of `random_get`.
const RANDOM_PROBE: &str = include_str!("../../../examples/tasks/probes/random.wat");

fn tasks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run proctor")
}

fn path(p: &str) -> String {
    tasks().join(p).to_str().unwrap().to_string()
}

#[test]
fn check_accepts_examples_and_rejects_bad_modules() {
    for name in ["filler", "sha256", "nbody", "wordfreq", "lz"] {
        let o = run(&["task", "check", &path(&format!("{name}.wasm")), "--json"]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            v["imports"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i.as_str().unwrap().starts_with("wasi_snapshot_preview1."))
        );
    }
    let dir = std::env::temp_dir().join(format!("proctor-task-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0\x01").unwrap();
    let o = run(&["task", "check", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("malformed"));
}

#[test]
fn run_with_a_job_id_draws_that_jobs_random_bytes() {
    let probe = wat::parse_str(RANDOM_PROBE).unwrap();
    let file = std::env::temp_dir().join(format!("proctor-probe-{}.wasm", std::process::id()));
    std::fs::write(&file, &probe).unwrap();
    let draw = |job: Option<&str>| {
        let mut args = vec!["task", "run", file.to_str().unwrap()];
        args.extend(job.map(|j| ["--job", j]).into_iter().flatten());
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout.len(), 16);
        o.stdout
    };
    let (seven, again, eight, none) = (
        draw(Some("7")),
        draw(Some("7")),
        draw(Some("8")),
        draw(None),
    );
    assert_eq!(seven, again);
    assert_ne!(seven, eight);
    assert_ne!(seven, none);
    // Job 7's seed, as the enclave seeds job 7's run.
    let vm = proctor_vm::Vm::new(proctor_vm::Limits::default()).unwrap();
    let local = vm.run(
        &vm.load(&probe).unwrap(),
        proctor_vm::TaskSpec {
            fuel: 1_000_000,
            random_seed: proctor_vm::TaskSpec::job_seed(7),
            ..Default::default()
        },
        1_000_000,
    );
    assert_eq!(local.stdout, seven);
    let o = run(&["task", "run", file.to_str().unwrap(), "--job", "seven"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--job"));
    let _ = std::fs::remove_file(&file);
}

#[test]
fn run_reports_instructions_and_output() {
    let o = run(&[
        "task",
        "run",
        &path("sha256.wasm"),
        "--input",
        &path("inputs/text.txt"),
        "--arg",
        "20",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let expected = std::fs::read_to_string(path("expected/sha256.20.out")).unwrap();
    assert_eq!(v["output"].as_str().unwrap(), expected);
    let instructions = v["instructions"].as_u64().unwrap();
    assert!(instructions > 1_000_000);

    // Plain mode writes the output to stdout or --out; the count is the same.
    let out = std::env::temp_dir().join(format!("proctor-task-out-{}", std::process::id()));
    let o = run(&[
        "task",
        "run",
        &path("sha256.wasm"),
        "--input",
        &path("inputs/text.txt"),
        "--arg",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("{instructions} instructions")));
}

#[test]
fn run_out_of_fuel_fails_with_the_count() {
    let o = run(&[
        "task",
        "run",
        &path("filler.wasm"),
        "--arg",
        "1000000000",
        "--fuel",
        "2000000",
        "--json",
    ]);
    assert!(!o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instructions"], 2_000_000);
    assert!(v["status"].as_str().unwrap().contains("out of fuel"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did not finish"));
}

#[test]
fn bench_reports_a_ratio() {
    let o = run(&[
        "task",
        "bench",
        &path("nbody.wasm"),
        "--arg",
        "20000",
        "--reps",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ratio = v["ratio"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite());
    assert!(v["instructions"].as_u64().unwrap() > 0);
    // The fastest repetitions: no slower than the medians, ratio between them.
    let f = &v["fastest"];
    let ms = |v: &Value, k: &str| v[k].as_f64().unwrap();
    for k in ["unmetered_ms", "pouw_ms"] {
        assert!(ms(f, k) > 0.0 && ms(f, k) <= ms(&v, k), "{k}: {v}");
    }
    let r = ms(f, "pouw_ms") / ms(f, "unmetered_ms");
    assert!((ms(f, "ratio") - r).abs() < 1e-9, "{v}");
    // Piped, progress is one plain line per repetition on stderr.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("benchmarking: run "))
        .collect();
    assert_eq!(
        lines,
        [
            "benchmarking: run 1 of 3",
            "benchmarking: run 2 of 3",
            "benchmarking: run 3 of 3"
        ],
        "{stderr}"
    );
}

/// `proctor ... | head -1`: a reader that closes standard output early ends
/// the command quietly, with SIGPIPE's status (141), not a panic (101).
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = std::env::temp_dir().join(format!("proctor-pipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(["keys", "new", "--json", "--out"])
        .arg(dir.join("k.json"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "not quiet: {stderr}");
    assert_eq!(out.status.code(), Some(141));
    // The command's work was done before the print.
    assert!(dir.join("k.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `proctor bench corpus`: a real program of the corpus, checked against
/// its native output, with its ratio in the report.
#[test]
fn bench_corpus_reports_a_program_of_the_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_proctor"))
        .current_dir(&root)
        .args([
            "bench", "corpus", "--only", "cjson", "--reps", "1", "--json",
        ])
        .env("NATIVE_DIR", "/nonexistent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let programs = v["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 1, "{v}");
    assert_eq!(programs[0]["program"], "cjson");
    assert!(
        programs[0]["instructions"].as_u64().unwrap() > 100_000_000,
        "{v}"
    );
    let ratio = programs[0]["ratio"].as_f64().unwrap();
    assert!(
        ratio > 0.0 && (v["geomean_ratio"].as_f64().unwrap() - ratio).abs() < 1e-9,
        "{v}"
    );
    // An unknown name is an error that says so.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_proctor"))
        .current_dir(&root)
        .args(["bench", "corpus", "--only", "nosuch"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--only"));
}

/// `bench oracle` pushes real requests through a loopback HTTPS server, the
/// enclave's TLS path and a block of deliveries, and reports all three.
#[test]
fn bench_oracle_reports_every_path() {
    let o = run(&["bench", "oracle", "--requests", "20", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["requests"], 20);
    for k in [
        "plain_client_per_s",
        "enclave_path_per_s",
        "onchain_verify_per_s",
    ] {
        let rate = v[k].as_f64().unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{k}: {v}");
    }
}
