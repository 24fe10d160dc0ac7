//! The metering rewriter on every module the checker accepts: it must
//! succeed and produce a valid module (wasmtime compiles only valid ones),
//! never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if proctor_vm::check(data, &proctor_vm::Limits::default()).is_ok() {
        let metered = proctor_vm::meter::instrument(data).expect("accepted modules can be metered");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::WASM2)
            .validate_all(&metered)
            .expect("the metered module is valid");
    }
});
