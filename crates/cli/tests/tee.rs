//! `proctor tee verify-quote` on real SGX and TDX quotes.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_proctor");

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tee/tests/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn verify(quote: &str, collateral: &str, at: &str) -> Output {
    Command::new(BIN)
        .args([
            "tee",
            "verify-quote",
            "--quote",
            quote,
            "--collateral",
            collateral,
            "--at",
            at,
            "--json",
        ])
        .output()
        .unwrap()
}

#[test]
fn verify_quote_prints_the_claims_of_real_quotes() {
    let o = verify(
        &fixture("sgx_quote"),
        &fixture("sgx_quote_collateral.json"),
        "1751328000",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let raw = std::fs::read(fixture("sgx_quote")).unwrap();
    assert_eq!(v["kind"], "sgx");
    assert_eq!(
        v["measurement"].as_str().unwrap(),
        hex::encode(&raw[112..144])
    );
    assert_eq!(v["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(v["advisory_ids"][1], "INTEL-SA-00615");
    assert_eq!(
        v["report_data"].as_str().unwrap(),
        hex::encode(&raw[368..432])
    );

    let o = verify(
        &fixture("tdx_quote"),
        &fixture("tdx_quote_collateral.json"),
        "1751328000",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "tdx");
    assert_eq!(v["tcb_status"], "UpToDate");
}

#[test]
fn verify_quote_fails_with_the_reason() {
    // Expired collateral at the given time.
    let o = verify(
        &fixture("sgx_quote"),
        &fixture("sgx_quote_collateral.json"),
        "1754006400",
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("code 1109"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A flipped bit.
    let dir = std::env::temp_dir().join(format!("proctor-tee-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut q = std::fs::read(fixture("sgx_quote")).unwrap();
    q[200] ^= 0x10;
    let bad = dir.join("flipped");
    std::fs::write(&bad, &q).unwrap();
    let o = verify(
        bad.to_str().unwrap(),
        &fixture("sgx_quote_collateral.json"),
        "1751328000",
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not verify"));
}

#[test]
fn tee_info_for_sim_and_a_gramine_stand_in() {
    let dir = std::env::temp_dir().join(format!("proctor-tee-info-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root.key");
    std::fs::write(&root, "07".repeat(32)).unwrap();
    let info = |args: &[&str]| -> Value {
        let o = Command::new(BIN)
            .args(["tee", "info", "--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let d = dir.join("sim");
    let a = info(&[
        "--dir",
        d.to_str().unwrap(),
        "--sim-root",
        root.to_str().unwrap(),
    ]);
    let b = info(&[
        "--dir",
        d.to_str().unwrap(),
        "--sim-root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(a["kind"], "sim");
    assert_eq!(
        a["identity"], b["identity"],
        "the sealed identity survives restarts"
    );

    // Gramine's /dev/attestation, stood in by a directory answering with a real quote.
    let dev = dir.join("attestation");
    std::fs::create_dir_all(dev.join("keys")).unwrap();
    std::fs::write(dev.join("attestation_type"), "dcap").unwrap();
    let quote = std::fs::read(fixture("sgx_quote")).unwrap();
    std::fs::write(dev.join("quote"), &quote).unwrap();
    std::fs::write(dev.join("keys/_sgx_mrenclave"), [1u8; 16]).unwrap();
    let g = info(&[
        "--backend",
        "gramine-sgx",
        "--attestation-dir",
        dev.to_str().unwrap(),
        "--dir",
        dir.join("sgx").to_str().unwrap(),
    ]);
    assert_eq!(g["kind"], "sgx");
    assert_eq!(
        g["measurement"].as_str().unwrap(),
        hex::encode(&quote[112..144])
    );

    let o = Command::new(BIN)
        .args(["tee", "info", "--backend", "nitro", "--dir", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown backend"));
}

/// `proctor tee info` with no flags inspects the devnet's first worker
/// enclave, and outside a devnet says which flag it needs and why.
#[test]
fn tee_info_needs_no_flags_in_a_devnet() {
    let dir = std::env::temp_dir().join(format!("proctor-tee-devnet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let devnet = dir.join("devnet");
    std::fs::create_dir_all(devnet.join("workers/w0")).unwrap();
    std::fs::write(devnet.join("sim-attestation-root.key"), "09".repeat(32)).unwrap();
    let bare = Command::new(BIN)
        .args(["tee", "info", "--json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        bare.status.success(),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    let bare: Value = serde_json::from_slice(&bare.stdout).unwrap();
    // The same enclave as named in full.
    let w0 = devnet.join("workers/w0");
    let root = devnet.join("sim-attestation-root.key");
    let full = Command::new(BIN)
        .args(["tee", "info", "--json", "--dir", w0.to_str().unwrap()])
        .args(["--sim-root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(full.status.success());
    let full: Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(bare["identity"], full["identity"]);
    assert_eq!(bare["kind"], "sim");

    // Elsewhere: a clear refusal naming the flag.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = Command::new(BIN)
        .args(["tee", "info"])
        .current_dir(&empty)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--dir DIR") && err.contains("no devnet"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
