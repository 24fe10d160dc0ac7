//! The module checker on arbitrary bytes: it must return a verdict or an
//! error, never panic or hang.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = proctor_vm::check(data, &proctor_vm::Limits::default());
});
