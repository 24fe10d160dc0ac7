//! `proctor enclave`: an enclave as its own process, serving a worker over
//! a Unix socket.

use crate::worker::BackendArgs;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EnclaveArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Serve the enclave API on this Unix socket.
    #[arg(long)]
    socket: PathBuf,
}

/// `proctor enclave`: the enclave as its own process, serving its API on a
/// Unix socket (what runs under Gramine on SGX; here with the simulated TEE).
pub fn run_enclave(args: EnclaveArgs) -> Result<()> {
    crate::init_logging();
    let enclave = args.backend.open()?;
    if args.socket.exists() {
        // A stale socket from a previous run; refuse anything that is not a socket.
        use std::os::unix::fs::FileTypeExt;
        if !std::fs::metadata(&args.socket)?.file_type().is_socket() {
            bail!("{} exists and is not a socket", args.socket.display());
        }
        std::fs::remove_file(&args.socket)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(&args.socket)
        .with_context(|| format!("binding {}", args.socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o600))?;
    }
    let info = enclave.info();
    println!(
        "proctor enclave {}\n  measurement: {}\n  socket:      {}",
        info.identity,
        info.measurement,
        args.socket.display()
    );
    proctor_enclave::wire::serve(&listener, enclave)?;
    Ok(())
}
