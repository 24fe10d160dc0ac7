//! Runs one program once, metered (the PoUW engine: checker, metering
//! rewrite, slices) or unmetered (plain wasmtime, same engine settings), and
//! nothing else: the process `examples/corpus/instructions.sh` runs under
//! callgrind to count the machine instructions the compiled code executes
//! each way. That count does not move with the machine's load, as timings
//! on a shared VM do (±10-30% run to run), so it can tell a change to the
//! meter apart by a percent.
//!
//! `run_once metered|unmetered MODULE.wasm INPUT [ARG...]`

use proctor_vm::{Limits, Status, TaskSpec, UnmeteredVm, Vm};

fn main() -> Result<(), String> {
    let usage = "usage: run_once metered|unmetered MODULE.wasm INPUT [ARG...]";
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(module), Some(input)) = (args.next(), args.next(), args.next()) else {
        return Err(usage.into());
    };
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
    let module = read(&module)?;
    let spec = TaskSpec {
        args: args.collect(),
        input: read(&input)?,
        fuel: u64::MAX / 2,
        ..TaskSpec::default()
    };
    let outcome = match mode.as_str() {
        "metered" => {
            let vm = Vm::new(Limits::default()).map_err(|e| e.to_string())?;
            let loaded = vm.load(&module).map_err(|e| e.to_string())?;
            vm.run(&loaded, spec, 1_000_000)
        }
        "unmetered" => {
            let vm = UnmeteredVm::new(Limits::default()).map_err(|e| e.to_string())?;
            let compiled = vm.compile(&module).map_err(|e| e.to_string())?;
            vm.run(&compiled, &spec)
        }
        other => return Err(format!("unknown mode {other:?}; {usage}")),
    };
    if outcome.status != Status::Exited(0) {
        return Err(format!(
            "the program did not exit with 0: {:?}: {}",
            outcome.status,
            String::from_utf8_lossy(&outcome.stderr)
        ));
    }
    eprintln!(
        "{mode}: {} bytes of output, {} instructions counted",
        outcome.stdout.len(),
        outcome.instructions
    );
    Ok(())
}
