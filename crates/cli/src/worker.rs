//! `proctor worker`: a worker (registers its enclave and mines), its
//! registration, and the choice of TEE backend.

use crate::devnet::{open_enclave, warn_insecure};
use crate::keys;
use crate::node::shutdown_signal;
use anyhow::{Context, Result, bail};
use proctor_enclave::Enclave;
use proctor_enclave::wire::{RemoteEnclave, Transport};
use proctor_worker::{MarketOffer, Worker, WorkerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Operator key file: pays the registration fee, receives rewards.
    #[arg(long)]
    key: PathBuf,
    /// Use the enclave served on this Unix socket by `proctor enclave`.
    #[arg(long, conflicts_with_all = ["dir", "sim_root"])]
    enclave_socket: Option<PathBuf>,
    /// Run an in-process simulated enclave whose sealed state lives here.
    #[arg(long, requires = "sim_root")]
    dir: Option<PathBuf>,
    /// Simulated attestation root key file (simulated TEE only; INSECURE).
    #[arg(long, requires = "dir")]
    sim_root: Option<PathBuf>,
    /// DCAP collateral (Intel PCS/PCCS JSON, fetched by the operator) to
    /// attach to the hardware enclave's registration quotes.
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// Price per instruction offered to the compute market, in base units.
    #[arg(long, default_value_t = 1)]
    price: u128,
    /// Instructions per second this worker commits to run jobs at: it is
    /// placed only on jobs whose fuel it runs before their deadline.
    #[arg(long, default_value_t = proctor_worker::DEFAULT_SPEED)]
    speed: u64,
    /// Mine only: make no offer to the compute market.
    #[arg(long)]
    no_market: bool,
    /// Serve this worker's Prometheus metrics at http://ADDR/metrics
    /// (for example 127.0.0.1:9101; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Serve queries to the contracts this worker's enclave executes at
    /// http://ADDR (registered on chain as its endpoint; port 0 picks a
    /// free one).
    #[arg(long, value_name = "ADDR")]
    query: Option<std::net::SocketAddr>,
    /// Where this worker keeps its gatekeeper enclave's root key, sealed
    /// (a devnet's `workers/wN/root-key.sealed`): read if it exists,
    /// written when the enclave receives the key.
    #[arg(long, value_name = "FILE")]
    root_key: Option<PathBuf>,
}

/// Which trusted hardware an enclave runs on, and where its files are.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// TEE backend: sim (INSECURE, development), gramine-sgx, or tsm (TDX).
    #[arg(long, default_value = "sim")]
    backend: String,
    /// Directory of the enclave's sealed state.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Simulated attestation root key file (sim backend only; default: the
    /// devnet's, when `--dir` is a devnet's `workers/wN`).
    #[arg(long)]
    sim_root: Option<PathBuf>,
    /// Gramine's attestation pseudo-file directory (gramine-sgx backend).
    #[arg(long, default_value = proctor_tee::gramine::DEFAULT_ATTESTATION_DIR)]
    attestation_dir: PathBuf,
    /// configfs-tsm report directory (tsm backend).
    #[arg(long, default_value = proctor_tee::tsm::DEFAULT_REPORT_DIR)]
    tsm_dir: PathBuf,
}

/// A devnet's simulated attestation root key, in its directory.
pub const DEVNET_SIM_ROOT: &str = "sim-attestation-root.key";

impl BackendArgs {
    /// With no `--dir`, the first worker enclave of the devnet in `./devnet`
    /// (for commands that only inspect an enclave, like `tee info`), saying
    /// so on stderr.
    pub fn or_devnet_enclave(mut self) -> Result<Self> {
        if self.dir.is_none() {
            let w0 = Path::new("devnet/workers/w0");
            if !w0.is_dir() {
                bail!(
                    "which enclave? pass --dir DIR (the enclave's sealed state directory; for a devnet, DEVNET/workers/wN); there is no devnet in ./devnet to default to"
                );
            }
            eprintln!("using the devnet enclave in {}", w0.display());
            self.dir = Some(w0.to_path_buf());
        }
        Ok(self)
    }

    /// Opens the enclave on the chosen backend ([`proctor_tee::backend`]).
    pub fn open(&self) -> Result<Enclave> {
        let Some(dir) = &self.dir else {
            bail!(
                "--dir DIR is required: the directory of the enclave's sealed state (a devnet's are DEVNET/workers/wN)"
            );
        };
        // A devnet's worker directory: its simulated root is two levels up.
        let devnet_root = dir
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join(DEVNET_SIM_ROOT))
            .filter(|f| f.is_file());
        let sim_root = self.sim_root.clone().or(devnet_root);
        let backend = proctor_tee::backend::Backend::from_name(
            &self.backend,
            dir,
            sim_root.as_deref(),
            &self.attestation_dir,
            &self.tsm_dir,
        )?;
        if backend.is_simulated() {
            warn_insecure();
        }
        Enclave::new(backend.open()?).context("starting the enclave")
    }
}

/// Managing a worker's on-chain registration.
#[derive(clap::Subcommand)]
pub enum WorkerCmd {
    /// Register the enclave (locks the chain's minimum stake).
    Register,
    /// Renew the registration with a fresh quote before it expires.
    Renew,
    /// Show the enclave's on-chain registration.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop the enclave: it no longer mines; its stake starts unbonding.
    Deregister,
    /// Take the stake back after the unbonding period.
    Withdraw,
}

/// `proctor worker register | renew | status | deregister | withdraw`.
pub async fn manage_worker(args: WorkerArgs, cmd: WorkerCmd, url: &str) -> Result<()> {
    if args.metrics.is_some() {
        bail!(
            "--metrics serves a running worker's metrics: use it with `proctor worker`, not with a subcommand"
        );
    }
    let mut worker = connect_worker(&args, url)?;
    let id = worker.info().identity;
    let stop = AtomicBool::new(false);
    let existing = worker.registration().await?;
    match cmd {
        WorkerCmd::Register | WorkerCmd::Renew => {
            match (&cmd, &existing) {
                (WorkerCmd::Renew, None) => {
                    bail!("enclave {id} is not registered: use `worker register`")
                }
                (WorkerCmd::Register, Some(r)) => {
                    bail!(
                        "enclave {id} is already registered (until height {}): use `worker renew`",
                        r.expires_at
                    )
                }
                _ => {}
            }
            let height = worker.register(&stop).await?;
            let rec = worker
                .registration()
                .await?
                .context("registration not found after inclusion")?;
            println!(
                "enclave {id} registered at height {height}, valid until {}, stake {}",
                rec.expires_at, rec.stake
            );
        }
        WorkerCmd::Status { json } => {
            crate::print(json, &existing, |r| match r {
                None => format!("enclave {id} is not registered"),
                Some(r) => format!(
                    "enclave:     {id}\noperator:    {}\nmeasurement: {}\nregistered:  height {}\nexpires:     height {}\nstake:       {}\nstatus:      {}",
                    r.operator,
                    r.measurement,
                    r.registered_at,
                    r.expires_at,
                    r.stake,
                    match r.unbonding_until {
                        Some(u) => format!("deregistered, unbonding until height {u}"),
                        None => "active".into(),
                    }
                ),
            })?;
        }
        WorkerCmd::Deregister | WorkerCmd::Withdraw => {
            let call = if matches!(cmd, WorkerCmd::Deregister) {
                proctor_state::Call::Registry(proctor_state::registry::Call::DeregisterEnclave {
                    identity: id,
                })
            } else {
                proctor_state::Call::Registry(proctor_state::registry::Call::WithdrawStake {
                    identity: id,
                })
            };
            let hash = worker.send_call(call).await?;
            let height = worker.wait_included(hash, &stop).await?;
            println!("transaction {hash} included at height {height}");
        }
    }
    Ok(())
}

pub(crate) fn connect_worker(args: &WorkerArgs, url: &str) -> Result<Worker> {
    let transport: Box<dyn Transport> = match (&args.enclave_socket, &args.dir, &args.sim_root) {
        (Some(sock), _, _) => Box::new(
            RemoteEnclave::connect(sock)
                .with_context(|| format!("connecting to the enclave at {}", sock.display()))?,
        ),
        (None, Some(dir), Some(root)) => {
            warn_insecure();
            Box::new(open_enclave(dir, root)?)
        }
        _ => bail!(
            "give either --enclave-socket PATH, or --dir DIR and --sim-root FILE for an in-process simulated enclave"
        ),
    };
    let operator = keys::read(&args.key)?;
    let collateral = match &args.collateral {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading collateral {}", p.display()))?)
        }
        None => None,
    };
    Ok(Worker::new(
        transport,
        WorkerConfig {
            rpc_url: url.to_string(),
            operator,
            collateral,
            offer: (!args.no_market).then(|| MarketOffer {
                price: args.price,
                speed: args.speed,
                ..MarketOffer::default()
            }),
        },
    )?)
}

/// `proctor worker`.
pub async fn run_worker(args: WorkerArgs, url: &str) -> Result<()> {
    crate::init_logging();
    let mut worker = connect_worker(&args, url)?;
    println!("proctor worker: enclave {}", worker.info().identity);
    let _metrics = match args.metrics {
        Some(addr) => {
            let (addr, handle) = proctor_worker::metrics::serve(addr, worker.metrics())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            println!("  metrics: http://{addr}/metrics");
            Some(handle)
        }
        None => None,
    };
    let _queries = match args.query {
        Some(addr) => {
            let (addr, handle) = worker
                .serve_queries(addr)
                .await
                .with_context(|| format!("serving contract queries on {addr}"))?;
            worker.set_query_endpoint(format!("http://{addr}"));
            println!("  queries: http://{addr}");
            Some(handle)
        }
        None => None,
    };
    if let Some(f) = &args.root_key {
        worker
            .set_root_key_file(f.clone())
            .with_context(|| format!("reading the root key {}", f.display()))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        s2.store(true, Ordering::Relaxed);
    });
    worker.ensure_registered(&stop).await?;
    worker.mine(stop).await?;
    Ok(())
}
