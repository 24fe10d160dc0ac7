//! Writes the machine code a module compiles to, metered (the PoUW engine:
//! checker, metering rewrite) or unmetered (plain wasmtime, same engine
//! settings), as the ELF image wasmtime precompiles: the file `objdump -d`
//! reads for `examples/corpus/functions.sh --classes`. The code is the same
//! as what `run_once` runs, function for function and byte for byte.
//!
//! `machine_code metered|unmetered MODULE.wasm OUT.elf`

use proctor_vm::{Limits, UnmeteredVm, Vm};

fn main() -> Result<(), String> {
    let usage = "usage: machine_code metered|unmetered MODULE.wasm OUT.elf";
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(module), Some(out)) = (args.next(), args.next(), args.next()) else {
        return Err(usage.into());
    };
    let bytes = std::fs::read(&module).map_err(|e| format!("{module}: {e}"))?;
    let code = match mode.as_str() {
        "metered" => Vm::new(Limits::default()).and_then(|vm| vm.machine_code(&bytes)),
        "unmetered" => UnmeteredVm::new(Limits::default()).and_then(|vm| vm.machine_code(&bytes)),
        other => return Err(format!("unknown mode {other:?}; {usage}")),
    }
    .map_err(|e| e.to_string())?;
    std::fs::write(&out, code).map_err(|e| format!("{out}: {e}"))
}
