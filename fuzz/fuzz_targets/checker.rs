//! The module checkers on arbitrary bytes (the task ABI, and the contract
//! ABI with its loader: entry points' types, metering, compiling): each
//! must return a verdict or an error, never panic or hang.
#![no_main]
use proctor_vm::contract::{ContractLimits, ContractVm};
use std::sync::LazyLock;

static CONTRACTS: LazyLock<ContractVm> =
    LazyLock::new(|| ContractVm::new(ContractLimits::default()).expect("engine"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = proctor_vm::check(data, &proctor_vm::Limits::default());
    let _ = CONTRACTS.load(data);
});
