//! Real SGX and TDX quotes (see fixtures/README.md) through the chain's
//! verifier: claims read from the quote, and each rejection with its own code.

use proctor_primitives::Hash;
use proctor_tee::quote::{DcapPolicy, DcapQuote, INTEL_SGX_ROOT_CA_DER};
use proctor_tee::{Quote, QuoteError, TeeKind, TrustPolicy, verify_quote};

const SGX: &[u8] = include_bytes!("fixtures/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("fixtures/sgx_quote_collateral.json");
const TDX: &[u8] = include_bytes!("fixtures/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("fixtures/tdx_quote_collateral.json");

/// 2025-07-01T00:00:00Z: inside both collaterals' validity window.
const VALID_AT: u64 = 1_751_328_000;
/// 2025-08-01T00:00:00Z: after the TCB info and QE identity expired.
const EXPIRED_AT: u64 = 1_754_006_400;

fn policy(statuses: &[&str]) -> TrustPolicy {
    TrustPolicy {
        sim_root: None,
        dcap: Some(DcapPolicy {
            root_ca_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
            accepted_tcb_statuses: statuses.iter().map(|s| s.to_string()).collect(),
            rejected_advisories: vec![],
            allow_debug: false,
        }),
    }
}

fn sgx() -> Quote {
    Quote::Dcap(DcapQuote {
        quote: SGX.to_vec(),
        collateral: SGX_COLLATERAL.to_vec(),
    })
}

fn tdx() -> Quote {
    Quote::Dcap(DcapQuote {
        quote: TDX.to_vec(),
        collateral: TDX_COLLATERAL.to_vec(),
    })
}

#[test]
fn real_sgx_quote_verifies_with_its_measurement_and_tcb_status() {
    let claims = verify_quote(
        &sgx(),
        &policy(&["UpToDate", "ConfigurationAndSWHardeningNeeded"]),
        VALID_AT,
    )
    .unwrap();
    assert_eq!(claims.kind, TeeKind::Sgx);
    // Quote v3: 48-byte header, then the report body; MRENCLAVE at body offset 64,
    // report data at body offset 320.
    assert_eq!(claims.measurement, Hash(SGX[112..144].try_into().unwrap()));
    assert_eq!(claims.report_data[..], SGX[368..432]);
    assert_eq!(
        claims.tcb_status.as_deref(),
        Some("ConfigurationAndSWHardeningNeeded")
    );
    assert_eq!(claims.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert!(!claims.debug);
}

#[test]
fn real_tdx_quote_verifies_with_its_measurement_and_tcb_status() {
    let claims = verify_quote(&tdx(), &policy(&["UpToDate"]), VALID_AT).unwrap();
    assert_eq!(claims.kind, TeeKind::Tdx);
    // Quote v4: 48-byte header, then the TD report (Intel TDX DCAP quoting
    // library spec): MRTD at 136, MRCONFIGID 184, MROWNER 232, MROWNERCONFIG
    // 280, RTMR0-3 at 328, 376, 424, 472; 48 bytes each. Read here from the
    // raw bytes, apart from dcap-qvl's parse that the verifier uses.
    let reg = |at: usize| &TDX[48 + at..48 + at + 48];
    let expected = Hash::tagged(
        "proctor/tdx-measurement/v2",
        &[
            reg(136),
            reg(328),
            reg(376),
            reg(424),
            reg(472),
            reg(184),
            reg(232),
            reg(280),
        ],
    );
    assert_eq!(claims.measurement, expected);
    assert_ne!(
        claims.measurement,
        Hash::tagged("proctor/tdx-mrtd", &[reg(136)]),
        "MRTD alone is not the measurement"
    );
    assert_eq!(claims.tcb_status.as_deref(), Some("UpToDate"));
    assert!(claims.advisory_ids.is_empty());
}

#[test]
fn rejections_each_have_their_own_code() {
    let all = policy(&["UpToDate", "ConfigurationAndSWHardeningNeeded"]);
    let mut codes = std::collections::BTreeSet::new();
    let mut reject = |q: &Quote, p: &TrustPolicy, at: u64| {
        let e = verify_quote(q, p, at).unwrap_err();
        assert!(codes.insert(e.code()), "code {} reused by {e}", e.code());
        e
    };

    // One flipped bit in the signed report body.
    let mut flipped = SGX.to_vec();
    flipped[120] ^= 0x01;
    let q = Quote::Dcap(DcapQuote {
        quote: flipped,
        collateral: SGX_COLLATERAL.to_vec(),
    });
    assert!(matches!(
        reject(&q, &all, VALID_AT),
        QuoteError::DcapVerification(_)
    ));

    // Collateral expired at the verification (block) time.
    let e = reject(&sgx(), &all, EXPIRED_AT);
    assert!(matches!(e, QuoteError::CollateralExpired(_)), "{e}");

    // A TCB status the policy does not accept.
    let e = reject(&sgx(), &policy(&["UpToDate"]), VALID_AT);
    assert_eq!(
        e,
        QuoteError::TcbStatusNotAccepted("ConfigurationAndSWHardeningNeeded".into())
    );

    // An advisory the policy rejects.
    let mut strict = all.clone();
    strict.dcap.as_mut().unwrap().rejected_advisories = vec!["INTEL-SA-00615".into()];
    assert_eq!(
        reject(&sgx(), &strict, VALID_AT),
        QuoteError::AdvisoryRejected("INTEL-SA-00615".into())
    );

    // A chain without a DCAP policy.
    assert_eq!(
        reject(&sgx(), &TrustPolicy::default(), VALID_AT),
        QuoteError::DcapNotAllowed
    );

    // Garbage collateral.
    let q = Quote::Dcap(DcapQuote {
        quote: SGX.to_vec(),
        collateral: b"{}".to_vec(),
    });
    assert!(matches!(
        reject(&q, &all, VALID_AT),
        QuoteError::Malformed(_)
    ));

    // Another root CA: the chain does not trust Intel's.
    let mut other_root = all.clone();
    other_root.dcap.as_mut().unwrap().root_ca_der = b"not a certificate".to_vec();
    assert!(matches!(
        verify_quote(&sgx(), &other_root, VALID_AT),
        Err(QuoteError::DcapVerification(_))
    ));
}

#[test]
fn debug_enclaves_are_refused_unless_the_policy_allows_them() {
    use proctor_tee::quote::apply_tcb_policy;
    let mut p = policy(&["UpToDate"]).dcap.unwrap();
    assert_eq!(
        apply_tcb_policy(&p, "UpToDate", &[], true),
        Err(QuoteError::DebugEnclave)
    );
    assert_eq!(QuoteError::DebugEnclave.code(), 1113);
    assert_eq!(apply_tcb_policy(&p, "UpToDate", &[], false), Ok(()));
    p.allow_debug = true;
    assert_eq!(apply_tcb_policy(&p, "UpToDate", &[], true), Ok(()));
    // The debug bit itself is read from the report: both real samples are production enclaves.
    let sgx = verify_quote(
        &sgx(),
        &policy(&["ConfigurationAndSWHardeningNeeded"]),
        VALID_AT,
    )
    .unwrap();
    assert!(!sgx.debug);
    assert_eq!(
        SGX[96] & 0x02,
        0,
        "SGX ATTRIBUTES.DEBUG is clear in the sample"
    );
}

#[test]
fn collateral_attaches_only_to_dcap_quotes_without_it() {
    use proctor_tee::AttestationVerifier;
    let bare = Quote::Dcap(DcapQuote {
        quote: SGX.to_vec(),
        collateral: vec![],
    });
    let p = policy(&["ConfigurationAndSWHardeningNeeded"]);
    assert!(
        matches!(p.verify(&bare, VALID_AT), Err(QuoteError::Malformed(_))),
        "no collateral, no verification"
    );
    let full = bare.with_collateral(Some(SGX_COLLATERAL));
    assert!(p.verify(&full, VALID_AT).is_ok());
    // A quote that already carries collateral keeps it.
    let again = full.clone().with_collateral(Some(b"{}"));
    assert_eq!(again, full);
}
