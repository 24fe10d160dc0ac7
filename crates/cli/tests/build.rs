//! What goes into the shipped binary: test-only faults never do.

use std::process::Command;

/// The features cargo turns on for `proctor-enclave` when the workspace is
/// built with these dependency edges (`normal,build` for `cargo build`).
fn enclave_features(edges: &str) -> String {
    let o = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--workspace",
            "-e",
            edges,
            "-i",
            "proctor-enclave",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A malicious-enclave switch in a release build would let an operator
/// corrupt results at will; only test builds (dev-dependencies) enable it.
#[test]
fn the_corrupting_enclave_exists_only_in_test_builds() {
    let release = enclave_features("normal,build,features");
    assert!(release.contains("proctor-enclave"), "{release}");
    assert!(
        !release.contains("test-faults"),
        "a normal build enables test-faults:\n{release}"
    );
    let tests = enclave_features("normal,build,dev,features");
    assert!(tests.contains("test-faults"), "{tests}");
}
