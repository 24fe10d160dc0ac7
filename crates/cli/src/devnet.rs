//! `proctor devnet`, `proctor node` and `proctor worker`.
//!
//! A devnet directory holds everything of a local chain, so running the same
//! command again restarts the same chain:
//! ```text
//! DIR/genesis.json                the chain (funded dev accounts, genesis enclaves)
//! DIR/sim-attestation-root.key    the simulated attestation root (INSECURE, devnet only)
//! DIR/keys/dev{0..3}.json         funded accounts for you
//! DIR/keys/worker{0..7}.json      worker operator accounts (fees, rewards)
//! DIR/keys/governance.json        the account that governs the measurement allowlist
//! DIR/node/                       the node's own directory (`proctor node --dir DIR/node`)
//! DIR/workers/w{i}/               each worker's sealed enclave state
//! DIR/devnet.json                 what is running: RPC URL, node directory, process id
//! ```

use crate::keys;
use anyhow::{Context, Result, bail};
use proctor_enclave::Enclave;
use proctor_enclave::wire::{RemoteEnclave, Transport};
use proctor_node::{FILLER_WASM, Node, NodeConfig, init_dir, read_genesis, write_json};
use proctor_primitives::{Amount, Hash, Keypair};
use proctor_state::{Allocation, ChainParams, Genesis, GenesisEnclave};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
use proctor_tee::{Platform, registration_report_data};
use proctor_worker::{MarketOffer, Worker, WorkerConfig};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Dev accounts and worker accounts created in a new devnet.
const DEV_ACCOUNTS: usize = 4;
const WORKER_ACCOUNTS: usize = 8;
/// Balance of each dev account, in base units.
const DEV_BALANCE: u128 = 1_000_000_000_000_000;

#[derive(clap::Args)]
pub struct DevnetArgs {
    /// Directory of the devnet (created on first run, reused after).
    #[arg(long, default_value = "devnet")]
    dir: PathBuf,
    /// Number of workers (mining enclaves), at most 8.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// RPC port on 127.0.0.1 (0: any free port; see DIR/devnet.json). Default: the saved one, or 8645.
    #[arg(long)]
    rpc_port: Option<u16>,
    /// Target block interval of a new devnet, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_ms: u64,
    /// Listen for peers on 127.0.0.1 at this port (other nodes can then join with `--bootnode`).
    #[arg(long)]
    p2p_port: Option<u16>,
    /// Number of nodes: node 0 runs in this process, the others as `proctor
    /// node` child processes on consecutive RPC and p2p ports, peered to node 0.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Test only: worker I's enclave corrupts its job results (to exercise
    /// replication and slashing).
    #[arg(long, hide = true)]
    corrupt_worker: Option<usize>,
}

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
}

/// Which trusted hardware an enclave runs on, and where its files are.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// TEE backend: sim (INSECURE, development), gramine-sgx, or tsm (TDX).
    #[arg(long, default_value = "sim")]
    backend: String,
    /// Directory of the enclave's sealed state.
    #[arg(long)]
    dir: PathBuf,
    /// Simulated attestation root key file (sim backend only).
    #[arg(long)]
    sim_root: Option<PathBuf>,
    /// Gramine's attestation pseudo-file directory (gramine-sgx backend).
    #[arg(long, default_value = proctor_tee::gramine::DEFAULT_ATTESTATION_DIR)]
    attestation_dir: PathBuf,
    /// configfs-tsm report directory (tsm backend).
    #[arg(long, default_value = proctor_tee::tsm::DEFAULT_REPORT_DIR)]
    tsm_dir: PathBuf,
}

impl BackendArgs {
    /// Opens the enclave on the chosen backend.
    pub fn open(&self) -> Result<Enclave> {
        let platform: Box<dyn proctor_tee::Platform> = match self.backend.as_str() {
            "sim" => {
                warn_insecure();
                let root = self
                    .sim_root
                    .as_ref()
                    .context("the sim backend needs --sim-root FILE")?;
                Box::new(sim_platform(&self.dir, root)?)
            }
            "gramine-sgx" => Box::new(proctor_tee::gramine::GraminePlatform::open(
                &self.attestation_dir,
                &self.dir,
            )?),
            "tsm" => Box::new(proctor_tee::tsm::TsmPlatform::open(
                &self.tsm_dir,
                "proctor",
            )?),
            other => bail!("unknown backend {other:?}: use sim, gramine-sgx or tsm"),
        };
        Enclave::new(platform).context("starting the enclave")
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

#[derive(clap::Args)]
pub struct EnclaveArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Serve the enclave API on this Unix socket.
    #[arg(long)]
    socket: PathBuf,
}

#[derive(Serialize, Clone)]
struct DevnetNode {
    rpc: String,
    dir: PathBuf,
    pid: u32,
}

#[derive(Serialize)]
struct DevnetFile {
    rpc: String,
    nodes: Vec<DevnetNode>,
    keys: PathBuf,
}

fn warn_insecure() {
    tracing::warn!(
        "using the SIMULATED TEE: enclave secrets are files on this host and quotes are signed by a local key. INSECURE: for development only"
    );
}

fn sim_platform(dir: &Path, root_file: &Path) -> Result<SimPlatform> {
    let root = SimAttestationRoot::load(root_file)
        .with_context(|| format!("loading {}", root_file.display()))?;
    SimPlatform::open(&dir.join("enclave"), root).context("opening the simulated enclave platform")
}

fn open_enclave(dir: &Path, root_file: &Path) -> Result<Enclave> {
    Enclave::new(Box::new(sim_platform(dir, root_file)?)).context("starting the enclave")
}

/// Creates a new devnet in `dir`.
fn create(dir: &Path, block_ms: u64, workers: usize) -> Result<Genesis> {
    std::fs::create_dir_all(dir.join("keys"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let root = SimAttestationRoot::generate();
    root.write(&dir.join("sim-attestation-root.key"))?;
    let mut allocations = Vec::new();
    for i in 0..DEV_ACCOUNTS {
        let k = Keypair::generate(&mut rand_core::OsRng);
        keys::write(&dir.join(format!("keys/dev{i}.json")), &k)?;
        allocations.push(Allocation {
            address: k.public().address(),
            amount: Amount(DEV_BALANCE),
        });
    }
    // The devnet's governance account: it alone may change the measurement allowlist.
    let governance = Keypair::generate(&mut rand_core::OsRng);
    keys::write(&dir.join("keys/governance.json"), &governance)?;
    allocations.push(Allocation {
        address: governance.public().address(),
        amount: Amount(DEV_BALANCE / 1000),
    });
    let mut operators = Vec::new();
    for i in 0..WORKER_ACCOUNTS {
        let k = Keypair::generate(&mut rand_core::OsRng);
        keys::write(&dir.join(format!("keys/worker{i}.json")), &k)?;
        allocations.push(Allocation {
            address: k.public().address(),
            amount: Amount(DEV_BALANCE / 1000),
        });
        operators.push(k);
    }
    let mut genesis = Genesis {
        chain_id: "proctor-devnet".into(),
        timestamp: proctor_node::now_ms(),
        params: ChainParams {
            target_block_ms: block_ms,
            initial_difficulty: calibrated_difficulty(block_ms, workers),
            min_difficulty: 1_000_000,
            block_reward: Amount(1_000_000_000),
            min_fee: Amount(1_000),
            max_block_txs: 20_000,
            allow_sim_quotes: true,
            sim_attestation_root: Some(root.public()),
            dcap: None,
            allowed_measurements: vec![sim_measurement()],
            filler_module: Hash::of(FILLER_WASM),
            registration_blocks: 1_000_000,
            min_stake: Amount(1_000_000),
            unbonding_blocks: 100,
            measurement_grace_blocks: 100,
            governance: Some(governance.public().address()),
            finality_depth: 6,
            market: Default::default(),
        },
        allocations,
        enclaves: vec![],
    };
    // Genesis enclaves: every worker slot is registered from the start, so the
    // chain can produce its first block (their quotes bind the genesis hash,
    // which does not cover the enclave list itself).
    let mut enclaves = Vec::new();
    for (i, op) in operators.iter().enumerate() {
        let wdir = dir.join(format!("workers/w{i}"));
        let platform = SimPlatform::open(
            &wdir.join("enclave"),
            SimAttestationRoot::load(&dir.join("sim-attestation-root.key"))?,
        )?;
        enclaves.push((op.public().address(), platform));
    }
    genesis.enclaves = enclaves
        .iter()
        .map(|(op, p)| {
            let (identity, encryption_key) = (p.identity(), p.encryption_key());
            let expires_at = genesis.params.registration_blocks;
            let rd = registration_report_data(
                &identity,
                &encryption_key,
                op,
                &genesis.base_hash(),
                expires_at,
            );
            Ok(GenesisEnclave {
                operator: *op,
                identity,
                encryption_key,
                expires_at,
                quote: p.quote(&rd)?,
                stake: genesis.params.min_stake,
            })
        })
        .collect::<Result<_, proctor_tee::Error>>()?;
    write_json(&dir.join("genesis.json"), &genesis)?;
    Ok(genesis)
}

/// The initial difficulty at which `workers` workers on this machine find a
/// block every `block_ms` on average: the lottery draws once per slice with
/// probability instructions/difficulty, so the difficulty is the number of
/// instructions the workers run in one block interval. Measured by running
/// the filler task for a moment (workers beyond the CPU count add nothing).
/// Retargeting corrects the rest; without this a new devnet starts far too
/// fast or too slow and takes dozens of blocks to settle.
fn calibrated_difficulty(block_ms: u64, workers: usize) -> u64 {
    const FALLBACK: u64 = 1_000_000_000;
    let measure = || -> Option<u64> {
        let vm = proctor_vm::Vm::new(proctor_vm::Limits::default()).ok()?;
        let loaded = vm.load(FILLER_WASM).ok()?;
        let spec = proctor_vm::TaskSpec {
            fuel: 300_000_000,
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let out = vm.run(&loaded, spec, 10_000_000);
        let ns = t.elapsed().as_nanos().max(1);
        Some((out.instructions as u128 * 1_000_000_000 / ns) as u64)
    };
    let Some(per_sec) = measure() else {
        return FALLBACK;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let miners = workers.clamp(1, cores) as u64;
    let d = per_sec.saturating_mul(miners).saturating_mul(block_ms) / 1000;
    tracing::info!(
        instructions_per_sec = per_sec,
        difficulty = d,
        "calibrated the initial difficulty"
    );
    d.max(1_000_000)
}

/// `proctor devnet`.
pub async fn run(args: DevnetArgs) -> Result<()> {
    crate::init_logging();
    warn_insecure();
    if args.workers > WORKER_ACCOUNTS {
        bail!(
            "--workers {} is more than this devnet's {WORKER_ACCOUNTS} worker accounts",
            args.workers
        );
    }
    let dir = &args.dir;
    let gpath = dir.join("genesis.json");
    let genesis = if gpath.exists() {
        read_genesis(&gpath)?
    } else {
        tracing::info!(dir = %dir.display(), "creating a new devnet");
        create(dir, args.block_ms, args.workers)?
    };
    let ndir = proctor_node::node_dir(dir);
    let port = match (args.rpc_port, proctor_node::read_config(&ndir)) {
        (Some(p), _) => p,
        (None, Ok(c)) => c.rpc_addr.port(),
        (None, Err(_)) => 8645,
    };
    if args.nodes > 1 && (port == 0 || args.p2p_port.is_none()) {
        bail!(
            "--nodes {} needs --rpc-port P and --p2p-port Q (node i uses P+i and Q+i)",
            args.nodes
        );
    }
    let saved = proctor_node::read_config(&ndir).ok();
    let p2p_listen = match args.p2p_port {
        Some(p) => Some(format!("/ip4/127.0.0.1/tcp/{p}")),
        None => saved.and_then(|c| c.p2p_listen),
    };
    let config = NodeConfig {
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        p2p_listen,
        bootnodes: vec![],
        rpc_rate: None,
    };
    init_dir(&ndir, &genesis, &config)?;
    let node = Node::start(&ndir).await?;
    let url = node.rpc_url();
    let mut nodes = vec![DevnetNode {
        rpc: url.clone(),
        dir: ndir.clone(),
        pid: std::process::id(),
    }];
    let mut children = Vec::new();
    for i in 1..args.nodes {
        let (child, info) = spawn_node(dir, &genesis, i, port, args.p2p_port.unwrap_or(0))?;
        children.push((i, child));
        nodes.push(info);
    }
    write_json(
        &dir.join("devnet.json"),
        &DevnetFile {
            rpc: url.clone(),
            nodes: nodes.clone(),
            keys: dir.join("keys"),
        },
    )?;
    println!(
        "proctor devnet running\n  RPC:  {url}\n  keys: {}\n  try:  proctor --rpc {url} chain head",
        dir.join("keys").display()
    );
    for n in &nodes[1..] {
        println!("  node: {} ({})", n.rpc, n.dir.display());
    }
    // A node that dies is reported, not restarted; the others keep running.
    let watched = std::sync::Arc::new(std::sync::Mutex::new(children));
    let watch = watched.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let mut kids = watch.lock().unwrap_or_else(|p| p.into_inner());
            kids.retain_mut(|(i, c)| match c.try_wait() {
                Ok(Some(status)) => {
                    tracing::error!(node = *i, %status, "node exited; the devnet keeps the others running");
                    false
                }
                _ => true,
            });
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..args.workers {
        let wdir = dir.join(format!("workers/w{i}"));
        let mut enclave = open_enclave(&wdir, &dir.join("sim-attestation-root.key"))?;
        if args.corrupt_worker == Some(i) {
            tracing::warn!(
                worker = i,
                "TEST MODE: this worker's enclave corrupts its job results"
            );
            enclave
                .corrupt_results_for_testing(true)
                .context("--corrupt-worker")?;
        }
        let operator = keys::read(&dir.join(format!("keys/worker{i}.json")))?;
        // Workers spread over the nodes, so blocks are mined on more than one.
        let rpc_url = nodes[i % nodes.len()].rpc.clone();
        wait_for_rpc(&rpc_url).await?;
        let mut worker = Worker::new(
            Box::new(enclave),
            WorkerConfig {
                rpc_url,
                operator,
                collateral: None,
                offer: Some(MarketOffer::default()),
            },
        )?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let r = async {
                worker.ensure_registered(&stop).await?;
                worker.mine(stop.clone()).await
            }
            .await;
            if let Err(e) = &r {
                tracing::error!(worker = i, "worker stopped: {e}");
            }
            r
        }));
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    for (_, mut c) in watched.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = std::process::Command::new("kill")
            .arg(c.id().to_string())
            .status();
        let _ = c.wait();
    }
    node.stop().await;
    Ok(())
}

/// Starts node `i` of a devnet as a child process peered to node 0.
fn spawn_node(
    dir: &Path,
    genesis: &Genesis,
    i: usize,
    rpc_base: u16,
    p2p_base: u16,
) -> Result<(std::process::Child, DevnetNode)> {
    let ndir = dir.join(format!("node{i}"));
    let rpc = SocketAddr::from(([127, 0, 0, 1], rpc_base + i as u16));
    let config = NodeConfig {
        rpc_addr: rpc,
        p2p_listen: Some(format!("/ip4/127.0.0.1/tcp/{}", p2p_base + i as u16)),
        bootnodes: vec![format!("/ip4/127.0.0.1/tcp/{p2p_base}")],
        rpc_rate: None,
    };
    init_dir(&ndir, genesis, &config)?;
    // Restarting a devnet keeps each node's saved configuration.
    write_json(&ndir.join("node.json"), &config)?;
    let log = std::fs::File::create(ndir.join("node.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "node",
            "--parent-pid",
            &std::process::id().to_string(),
            "--dir",
        ])
        .arg(&ndir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting node {i}"))?;
    let info = DevnetNode {
        rpc: format!("http://{rpc}"),
        dir: ndir,
        pid: child.id(),
    };
    Ok((child, info))
}

/// Waits (at most a minute) until the node at `url` answers.
async fn wait_for_rpc(url: &str) -> Result<()> {
    use proctor_rpc::ApiClient;
    let client = proctor_rpc::http_client(url)?;
    for _ in 0..600 {
        if client.head().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("node at {url} did not come up within a minute")
}

/// `proctor node`.
pub async fn run_node(args: NodeArgs) -> Result<()> {
    crate::init_logging();
    let dir = &args.dir;
    let gpath = dir.join("genesis.json");
    let saved = proctor_node::read_config(dir).ok();
    if !gpath.exists() {
        let Some(g) = &args.genesis else {
            bail!(
                "{} not found: pass --genesis FILE for a new node directory, or use a directory made by `proctor devnet`",
                gpath.display()
            );
        };
        let g = read_genesis(g)?;
        init_dir(dir, &g, &args.config(None))?;
    } else if args.rpc_addr.is_some() || args.p2p_listen.is_some() || !args.bootnode.is_empty() {
        write_json(&dir.join("node.json"), &args.config(saved))?;
    }
    let node = Node::start(dir).await?;
    println!("proctor node running\n  RPC: {}", node.rpc_url());
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = parent_gone(args.parent_pid) => tracing::info!("the devnet that started this node is gone; stopping"),
    }
    node.stop().await;
    Ok(())
}

/// Resolves once process `pid` no longer exists (never, without a pid or /proc).
async fn parent_gone(pid: Option<u32>) {
    let proc_dir = pid
        .map(|p| PathBuf::from(format!("/proc/{p}")))
        .filter(|_| Path::new("/proc/self").exists());
    let Some(proc_dir) = proc_dir else {
        return std::future::pending().await;
    };
    while proc_dir.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `proctor node` arguments.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// Node directory (genesis.json, node.json, chain.redb).
    #[arg(long)]
    dir: PathBuf,
    /// Serve JSON-RPC here instead of the address in node.json (saved for restarts).
    #[arg(long)]
    rpc_addr: Option<SocketAddr>,
    /// Genesis file for a new node directory.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Listen for peers on this multiaddr, e.g. /ip4/127.0.0.1/tcp/7000 (saved for restarts).
    #[arg(long)]
    p2p_listen: Option<String>,
    /// A peer to connect to at start-up (multiaddr; repeatable; saved for restarts).
    #[arg(long)]
    bootnode: Vec<String>,
    /// Exit when the process with this id is gone (set by `proctor devnet` for its nodes).
    #[arg(long, hide = true)]
    parent_pid: Option<u32>,
}

impl NodeArgs {
    /// The configuration these arguments give on top of the saved one.
    fn config(&self, saved: Option<NodeConfig>) -> NodeConfig {
        let saved_addr = saved.as_ref().map(|c| c.rpc_addr);
        let rpc_rate = saved.as_ref().and_then(|c| c.rpc_rate);
        NodeConfig {
            rpc_rate,
            rpc_addr: self
                .rpc_addr
                .or(saved_addr)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8645))),
            p2p_listen: self
                .p2p_listen
                .clone()
                .or_else(|| saved.as_ref().and_then(|c| c.p2p_listen.clone())),
            bootnodes: if self.bootnode.is_empty() {
                saved.map(|c| c.bootnodes).unwrap_or_default()
            } else {
                self.bootnode.clone()
            },
        }
    }
}

/// `proctor worker register | renew | status | deregister | withdraw`.
pub async fn manage_worker(args: WorkerArgs, cmd: WorkerCmd, url: &str) -> Result<()> {
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
                proctor_state::Call::DeregisterEnclave { identity: id }
            } else {
                proctor_state::Call::WithdrawStake { identity: id }
            };
            let hash = worker.send_call(call).await?;
            let height = worker.wait_included(hash, &stop).await?;
            println!("transaction {hash} included at height {height}");
        }
    }
    Ok(())
}

fn connect_worker(args: &WorkerArgs, url: &str) -> Result<Worker> {
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

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
