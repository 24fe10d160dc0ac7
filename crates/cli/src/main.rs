//! The `proctor` binary: parses arguments and hands over to the library.
fn main() -> std::process::ExitCode {
    proctor_cli::main()
}
