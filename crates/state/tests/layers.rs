//! The state crate's layering, checked on its sources: no file refers to a
//! file above it. From the bottom: the Merkle tree (`smt.rs`); each module's
//! `types.rs`; the top-level enums (`types.rs`, `error.rs`); `context.rs`;
//! `module.rs`; the modules' handlers (`modules/<name>/`, in the order
//! accounts, governance, registry, rewards, market, oracle, contracts: a module may use the
//! ones before it); `machine.rs`; then `testkit.rs` and `lib.rs`. Tests are
//! exempt. A refactor that adds an upward reference (a module calling the
//! machine, a module's types reaching the top-level enums) fails here.

use std::path::{Path, PathBuf};

const MODULES: [&str; 7] = [
    "accounts",
    "governance",
    "registry",
    "rewards",
    "market",
    "oracle",
    "contracts",
];

/// Rank of a file or a `crate::` path target (higher is above).
fn rank(target: &str) -> Option<u32> {
    if let Some(rest) = target.strip_prefix("modules/") {
        let (name, file) = rest.split_once('/').unwrap_or((rest, "mod"));
        let i = MODULES.iter().position(|m| *m == name)? as u32;
        return Some(if file == "types" { 100 + i } else { 500 + i });
    }
    Some(match target {
        "smt" => 0,
        "types" => 200,
        "error" => 250,
        "context" => 300,
        "module" => 400,
        "machine" | "genesis" => 600,
        "testkit" => 700,
        "lib" => 800,
        _ => return None,
    })
}

/// What `crate::<first>...` points at: a file of the crate.
fn target(first: &str, second: &str) -> String {
    match first {
        "modules" => {
            let (name, rest) = second.split_once("::").unwrap_or((second, ""));
            if rest.starts_with("types") {
                format!("modules/{name}/types")
            } else {
                format!("modules/{name}")
            }
        }
        "jobs" => "modules/market".into(),
        m if MODULES.contains(&m) => format!("modules/{m}"),
        "TxError" | "BlockError" | "GenesisError" => "error".into(),
        "BlockEnv" | "State" => "context".into(),
        "Applied" | "MODULES" | "signatures_valid" => "machine".into(),
        "ModuleInfo" => "module".into(),
        "account_key" => "modules/accounts".into(),
        "enclave_key" => "modules/registry".into(),
        "smt" | "types" | "error" | "context" | "module" | "machine" | "genesis" | "testkit" => {
            first.into()
        }
        // Everything else at the root is `types.rs`'s (`pub use types::*`).
        _ => "types".into(),
    }
}

/// Every file a source text refers to through `crate::`, with braces of a
/// `use crate::modules::{a::types as x, b}` expanded one level.
fn references(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let first: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[first.len()..];
        if first == "modules" {
            let after = after.trim_start_matches("::");
            if let Some(list) = after.strip_prefix('{') {
                let list = &list[..list.find('}').unwrap_or(list.len())];
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    out.push(target("modules", item));
                }
            } else {
                let path: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                out.push(target("modules", &path));
            }
        } else if !first.is_empty() {
            out.push(target(&first, ""));
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_file_of_the_state_machine_refers_to_a_file_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut checked = 0;
    let mut upward = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let rel = rel.to_str().unwrap().replace('\\', "/");
        if rel == "tests" || rel.ends_with("/tests") {
            continue;
        }
        // A module's other files (`market/schedule.rs`) rank as its handlers.
        let me = match rel.strip_prefix("modules/") {
            Some(r) => match r.split_once('/') {
                Some((m, "types")) => format!("modules/{m}/types"),
                Some((m, _)) => format!("modules/{m}"),
                None => rel.clone(),
            },
            None => rel.clone(),
        };
        if me == "modules/mod" {
            continue; // the list of modules
        }
        let my_rank = rank(&me).unwrap_or_else(|| panic!("{rel} has no layer: add it here"));
        for t in references(&std::fs::read_to_string(f).unwrap()) {
            let r = rank(&t).unwrap_or_else(|| panic!("{rel} refers to unknown {t}"));
            if t != me && r >= my_rank {
                upward.push(format!("{rel} -> {t}"));
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "the scan found the references ({checked})");
    assert!(upward.is_empty(), "references upward: {upward:#?}");
}

#[test]
fn the_scan_sees_an_upward_reference() {
    // A module's handler calling into the machine, and a module's types
    // naming the top-level enums, are both found.
    let refs = references("use crate::machine::MODULES;\nfn f(e: crate::Event) {}");
    assert_eq!(refs, ["machine", "types"]);
    let refs = references("use crate::modules::{market::types as m, registry};");
    assert_eq!(refs, ["modules/market/types", "modules/registry"]);
    assert!(rank("machine") > rank("modules/market"));
    assert!(rank("types") > rank("modules/market/types"));
}
