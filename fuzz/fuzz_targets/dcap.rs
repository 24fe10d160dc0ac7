//! Raw DCAP quote bytes (as a TEE host would hand them over) through the
//! chain's DCAP verifier with real collateral: never a panic.
#![no_main]
use proctor_tee::quote::{DcapPolicy, DcapQuote, INTEL_SGX_ROOT_CA_DER, verify_dcap};

const COLLATERAL: &[u8] = include_bytes!("../../crates/tee/tests/fixtures/sgx_quote_collateral.json");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let policy = DcapPolicy {
        root_ca_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
        accepted_tcb_statuses: vec!["UpToDate".into(), "ConfigurationAndSWHardeningNeeded".into()],
        rejected_advisories: vec![],
        allow_debug: false,
    };
    let q = DcapQuote { quote: data.to_vec(), collateral: COLLATERAL.to_vec() };
    let _ = verify_dcap(&q, &policy, 1_751_328_000);
});
