//! What goes into the shipped binary: test-only faults never do.

use std::process::Command;

/// The features cargo turns on for `krate` when the workspace is built with
/// these dependency edges (`normal,build` for `cargo build`).
fn features_of(krate: &str, edges: &str) -> String {
    let o = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "--workspace", "-e", edges, "-i", krate])
        .output()
        .expect("cargo tree runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A malicious-enclave switch (corrupted results) or a malicious-host one
/// (altered jobs) in a release build would let an operator misbehave at
/// will; only test builds (dev-dependencies) enable them.
#[test]
fn the_corrupting_enclave_and_tampering_host_exist_only_in_test_builds() {
    for krate in ["proctor-enclave", "proctor-worker"] {
        let release = features_of(krate, "normal,build,features");
        assert!(release.contains(krate), "{release}");
        assert!(
            !release.contains("test-faults"),
            "a normal build enables {krate}'s test-faults:\n{release}"
        );
        let tests = features_of(krate, "normal,build,dev,features");
        assert!(tests.contains("test-faults"), "{krate}: {tests}");
    }
}
