//! `proctor bench corpus` and `proctor bench lottery`: the meter on programs
//! nobody tuned it for.
//!
//! - `corpus`: every case of `examples/corpus/cases.tsv` (real C programs
//!   from Debian source packages, see its `build.sh`) run through the PoUW
//!   path, wasmtime unmetered and, when `build.sh` left them, the native
//!   builds, alternating in one process ([`crate::task::compare`]); reports
//!   PoUW/unmetered and PoUW/native, medians and fastest, and their geometric
//!   means. Outputs are checked against the native build's.
//! - `lottery`: metered instructions per second of PoUW-path time (a
//!   miner's lottery tickets per second) for the corpus, the example tasks
//!   and adversarial probes (`examples/tasks/probes/`); reports the spread
//!   (max/min), which should stay small so that no choice of work mines much
//!   faster than another, over all of them and without the probes.

use crate::task::{Comparison, compare};
use anyhow::{Context, Result, bail};
use proctor_primitives::Hash;
use proctor_vm::TaskSpec;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct CorpusArgs {
    /// The corpus: cases.tsv, NAME.wasm, inputs/ and expected/.
    #[arg(long, default_value = "examples/corpus")]
    dir: PathBuf,
    /// Native builds of the corpus (NAME), as `build.sh` leaves them; the
    /// native column is left out for a program without one.
    #[arg(long, env = "NATIVE_DIR", default_value = "/tmp/proctor-corpus-native")]
    native_dir: PathBuf,
    /// Repetitions of each side (medians and fastest are reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Only the programs named (repeatable).
    #[arg(long)]
    only: Vec<String>,
    #[arg(long)]
    json: bool,
}

/// One case of a cases table: a module, its input and arguments, and the
/// output it must print.
struct Case {
    name: String,
    module: Vec<u8>,
    spec: TaskSpec,
    expected: Option<Vec<u8>>,
}

/// The cases of `dir/cases.tsv` (`name<TAB>input<TAB>args`, `-` for none),
/// with modules `dir/NAME.wasm` and expected outputs `expected(dir, name,
/// args)` when that file exists.
fn cases(dir: &Path, expected: fn(&str, &str) -> String) -> Result<Vec<Case>> {
    let table = dir.join("cases.tsv");
    let text = std::fs::read_to_string(&table).with_context(|| {
        format!(
            "reading {} (run from the repository's root, or pass --dir)",
            table.display()
        )
    })?;
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, input, args] = cols[..] else {
            bail!("{}: not NAME<TAB>INPUT<TAB>ARGS: {line}", table.display());
        };
        let module_path = dir.join(format!("{name}.wasm"));
        let module = std::fs::read(&module_path)
            .with_context(|| format!("reading {}", module_path.display()))?;
        let input = match input {
            "-" => Vec::new(),
            p => std::fs::read(dir.join(p))
                .with_context(|| format!("reading {}", dir.join(p).display()))?,
        };
        let args: Vec<String> = match args {
            "-" => Vec::new(),
            a => a.split(' ').map(String::from).collect(),
        };
        let random_seed = TaskSpec::task_seed(&Hash::of(&module), &input);
        out.push(Case {
            name: name.to_string(),
            expected: std::fs::read(dir.join(expected(name, &args.join("_")))).ok(),
            spec: TaskSpec {
                args,
                input,
                fuel: u64::MAX / 2,
                clock_ns: 0,
                random_seed,
            },
            module,
        });
    }
    Ok(out)
}

/// Expected outputs of the corpus: `expected/NAME.out`.
fn corpus_expected(name: &str, _args: &str) -> String {
    format!("expected/{name}.out")
}

/// Expected outputs of the example tasks: `expected/NAME.ARGS.out`.
fn examples_expected(name: &str, args: &str) -> String {
    format!("expected/{name}.{args}.out")
}

/// One program's row.
#[derive(Serialize)]
pub struct Row {
    pub program: String,
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// The corpus report.
#[derive(Serialize)]
pub struct CorpusReport {
    pub programs: Vec<Row>,
    /// Geometric means of PoUW/unmetered (medians, fastest) and PoUW/native
    /// (medians, fastest; over the programs with a native build).
    pub geomean_ratio: f64,
    pub geomean_ratio_fastest: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geomean_ratio_native: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geomean_ratio_native_fastest: Option<f64>,
}

fn geomean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0u32);
    for x in v {
        sum += x.ln();
        n += 1;
    }
    (n > 0).then(|| (sum / f64::from(n)).exp())
}

/// Runs one case side by side; checks its output first.
fn measure(c: &Case, reps: usize, native: Option<&Path>) -> Result<Comparison> {
    let run = proctor_vm::UnmeteredVm::new(proctor_vm::Limits::default())?;
    let out = run.run(&run.compile(&c.module)?, &c.spec);
    if let Some(expected) = &c.expected
        && &out.stdout != expected
    {
        bail!("{}: its output differs from the native build's", c.name);
    }
    eprintln!("{}:", c.name);
    compare(&c.module, &c.spec, reps, native)
}

/// `proctor bench corpus`.
pub fn corpus(args: CorpusArgs) -> Result<()> {
    let mut rows = Vec::new();
    for c in cases(&args.dir, corpus_expected)? {
        if !args.only.is_empty() && !args.only.contains(&c.name) {
            continue;
        }
        let native = args.native_dir.join(&c.name);
        let native = native.is_file().then_some(native);
        let comparison = measure(&c, args.reps, native.as_deref())?;
        rows.push(Row {
            program: c.name,
            comparison,
        });
    }
    if rows.is_empty() {
        bail!("no program of the corpus matched --only");
    }
    let report = CorpusReport {
        geomean_ratio: geomean(rows.iter().map(|r| r.comparison.median.ratio)).unwrap_or(1.0),
        geomean_ratio_fastest: geomean(rows.iter().map(|r| r.comparison.fastest.ratio))
            .unwrap_or(1.0),
        geomean_ratio_native: geomean(rows.iter().filter_map(|r| r.comparison.median.ratio_native)),
        geomean_ratio_native_fastest: geomean(
            rows.iter()
                .filter_map(|r| r.comparison.fastest.ratio_native),
        ),
        programs: rows,
    };
    crate::print(args.json, &report, corpus_table)
}

/// The corpus report as a Markdown table (what `docs/pouw.md` shows).
fn corpus_table(r: &CorpusReport) -> String {
    let x = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}x"));
    let mut s = String::from(
        "| program | instructions | unmetered ms | PoUW ms | PoUW/unmetered (median) | (fastest) | native ms | PoUW/native (median) | (fastest) | unmetered/native |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in &r.programs {
        let (m, f) = (&row.comparison.median, &row.comparison.fastest);
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.3}x | {:.3}x | {} | {} | {} | {} |\n",
            row.program,
            row.comparison.instructions,
            m.unmetered_ms,
            m.pouw_ms,
            m.ratio,
            f.ratio,
            m.native_ms.map_or("-".into(), |n| format!("{n:.1}")),
            x(m.ratio_native),
            x(f.ratio_native),
            x(m.native_ms.map(|n| m.unmetered_ms / n)),
        );
    }
    s += &format!(
        "| **geometric mean** | | | | **{:.3}x** | {:.3}x | | **{}** | {} | |",
        r.geomean_ratio,
        r.geomean_ratio_fastest,
        x(r.geomean_ratio_native),
        x(r.geomean_ratio_native_fastest)
    );
    s
}

#[derive(clap::Args)]
pub struct LotteryArgs {
    /// The corpus directory.
    #[arg(long, default_value = "examples/corpus")]
    corpus: PathBuf,
    /// The example tasks' directory (its probes/ too).
    #[arg(long, default_value = "examples/tasks")]
    examples: PathBuf,
    /// Repetitions of each program (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long)]
    json: bool,
}

/// One program's lottery rate.
#[derive(Serialize)]
pub struct Rate {
    pub program: String,
    /// Where it comes from: corpus, example or probe.
    pub kind: &'static str,
    pub instructions: u64,
    pub pouw_ms: f64,
    /// Metered instructions per second of PoUW-path time, in millions.
    pub minstr_per_s: f64,
}

#[derive(Serialize)]
pub struct LotteryReport {
    pub programs: Vec<Rate>,
    /// Fastest over slowest rate.
    pub spread: f64,
    /// The same over the corpus and the example tasks only (work a user
    /// would submit, and the filler), leaving out the probes written to
    /// find the extremes.
    pub spread_without_probes: f64,
}

/// Fastest over slowest of `rates` (1 for none).
fn spread(rates: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = rates.clone().fold(f64::MIN, f64::max);
    let min = rates.fold(f64::MAX, f64::min);
    if min > 0.0 && max >= min {
        max / min
    } else {
        1.0
    }
}

/// The adversarial probes of `examples/tasks/probes/` and their arguments.
const PROBES: &[(&str, &str)] = &[
    ("memcmp", "200"),
    ("locals", "3000000"),
    ("bulk", "2000"),
    ("calls", "3000000"),
    ("floats", "100000"),
    ("entropy", "100000"),
];

/// `proctor bench lottery`.
pub fn lottery(args: LotteryArgs) -> Result<()> {
    let mut all: Vec<(&'static str, Case)> = Vec::new();
    for c in cases(&args.corpus, corpus_expected)? {
        all.push(("corpus", c));
    }
    for c in cases(&args.examples, examples_expected)? {
        all.push(("example", c));
    }
    for (name, arg) in PROBES {
        let path = args.examples.join(format!("probes/{name}.wasm"));
        let module = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let random_seed = TaskSpec::task_seed(&Hash::of(&module), &[]);
        all.push((
            "probe",
            Case {
                name: (*name).to_string(),
                module,
                spec: TaskSpec {
                    args: vec![(*arg).to_string()],
                    fuel: u64::MAX / 2,
                    random_seed,
                    ..TaskSpec::default()
                },
                expected: None,
            },
        ));
    }
    let mut programs = Vec::new();
    for (kind, c) in &all {
        let m = measure(c, args.reps, None)?;
        let label = if c.spec.args.is_empty() {
            c.name.clone()
        } else {
            format!("{} {}", c.name, c.spec.args.join(" "))
        };
        programs.push(Rate {
            program: label,
            kind,
            instructions: m.instructions,
            pouw_ms: m.median.pouw_ms,
            minstr_per_s: m.instructions as f64 / m.median.pouw_ms / 1000.0,
        });
    }
    let report = LotteryReport {
        spread: spread(programs.iter().map(|p| p.minstr_per_s)),
        spread_without_probes: spread(
            programs
                .iter()
                .filter(|p| p.kind != "probe")
                .map(|p| p.minstr_per_s),
        ),
        programs,
    };
    crate::print(args.json, &report, |r| {
        let mut s = String::from(
            "| program | kind | instructions | PoUW ms | M instructions/s |\n|---|---|---:|---:|---:|\n",
        );
        for p in &r.programs {
            // A program's arguments may hold a `|` (a regex): escaped, so
            // the table keeps its columns.
            s += &format!(
                "| {} | {} | {} | {:.1} | {:.0} |\n",
                p.program.replace('|', "\\|"),
                p.kind,
                p.instructions,
                p.pouw_ms,
                p.minstr_per_s
            );
        }
        s += &format!(
            "spread (fastest / slowest): {:.2}x; without the probes: {:.2}x",
            r.spread, r.spread_without_probes
        );
        s
    })
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_is_fastest_over_slowest_and_one_for_nothing() {
        assert_eq!(spread([2.0, 8.0, 4.0].into_iter()), 4.0);
        assert_eq!(spread([5.0].into_iter()), 1.0);
        assert_eq!(spread(std::iter::empty()), 1.0);
    }
}
