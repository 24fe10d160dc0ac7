//! `proctor devnet`: a whole local chain (node, workers, funded accounts) in one command.
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
use crate::node::{shutdown_signal, wait_for_rpc};
use anyhow::{Context, Result, bail};
use proctor_enclave::{Enclave, Request, Response};
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
pub(crate) const DEV_ACCOUNTS: usize = 4;
pub(crate) const WORKER_ACCOUNTS: usize = 8;
/// The stake a devnet's gatekeepers lock (ten times the registry's
/// minimum).
const GATEKEEPER_STAKE: u128 = 10_000_000;

/// Balance of each dev account, in base units.
pub(crate) const DEV_BALANCE: u128 = 1_000_000_000_000_000;

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
    /// node` child processes peered to node 0. With `--rpc-port P` /
    /// `--p2p-port Q` node i uses P+i / Q+i; without, each node keeps its
    /// saved ports or gets free ones (all listed in DIR/devnet.json).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Test only: worker I's enclave corrupts its job results (to exercise
    /// replication and slashing).
    #[arg(long, hide = true)]
    corrupt_worker: Option<usize>,
    /// Test only: worker I's host alters the HTTPS responses it relays for
    /// the oracle (to exercise the enclave's TLS check end to end).
    #[arg(long, hide = true)]
    tamper_oracle_worker: Option<usize>,
    /// A root certificate (PEM file) the oracle's enclaves trust besides
    /// the public web roots, e.g. a test CA (repeatable; a new devnet only:
    /// it goes into the genesis).
    #[arg(long = "oracle-root")]
    oracle_roots: Vec<PathBuf>,
    /// Gatekeepers of confidential contracts among the workers' enclaves
    /// (worker 0's generates the root key, whose commitment goes into the
    /// genesis; workers 1..N are elected at genesis and take the root key
    /// from it; a new devnet only). 0 turns contracts off.
    #[arg(long, default_value_t = 1)]
    gatekeepers: usize,
    /// Blocks per era of confidential contracts (a new devnet only): the
    /// root key rotates at each era's first block, and the responsiveness
    /// rule is applied at its end.
    #[arg(long, default_value_t = proctor_state::contracts::ContractParams::default().era_blocks,
          value_parser = clap::value_parser!(u64).range(8..))]
    era_blocks: u64,
}

#[derive(Serialize, Clone)]
pub(crate) struct DevnetNode {
    rpc: String,
    /// Where it listens for peers (a multiaddr), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    p2p: Option<String>,
    dir: PathBuf,
    pid: u32,
}

/// A devnet worker, as `devnet.json` lists it.
#[derive(Serialize)]
pub(crate) struct DevnetWorker {
    /// Its enclave's identity key.
    identity: String,
    /// Its Prometheus metrics (`http://127.0.0.1:PORT/metrics`).
    metrics: String,
    dir: PathBuf,
}

#[derive(Serialize)]
pub(crate) struct DevnetFile {
    rpc: String,
    nodes: Vec<DevnetNode>,
    workers: Vec<DevnetWorker>,
    keys: PathBuf,
}

pub(crate) fn warn_insecure() {
    tracing::warn!(
        "using the SIMULATED TEE: enclave secrets are files on this host and quotes are signed by a local key. INSECURE: for development only"
    );
}

/// A simulated enclave whose sealed state lives under `dir`.
pub(crate) fn open_enclave(dir: &Path, root_file: &Path) -> Result<Enclave> {
    let backend = proctor_tee::backend::Backend::Sim {
        dir: dir.to_path_buf(),
        root_file: root_file.to_path_buf(),
    };
    let platform = backend
        .open()
        .with_context(|| format!("opening the simulated enclave in {}", dir.display()))?;
    Enclave::new(platform).context("starting the enclave")
}

/// Creates a new devnet in `dir`.
pub(crate) fn create(
    dir: &Path,
    block_ms: u64,
    workers: usize,
    oracle_roots: Vec<String>,
    gatekeepers: usize,
    era_blocks: u64,
) -> Result<Genesis> {
    std::fs::create_dir_all(dir.join("keys"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let root = SimAttestationRoot::generate();
    root.write(&dir.join(crate::worker::DEVNET_SIM_ROOT))?;
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
    // The gatekeeper (seed 004 §4.4): worker 0's enclave generates the root
    // key of era 0; the genesis holds its commitment, the worker's directory
    // the key sealed by that enclave.
    // The others are elected at genesis: each takes the root key from a
    // gatekeeper's enclave, by an attested handover posted on chain.
    if gatekeepers > workers.max(1) {
        bail!("--gatekeepers {gatekeepers} is more than the devnet's {workers} workers");
    }
    let gatekeeper = match gatekeepers {
        0 => None,
        _ => Some(bootstrap_gatekeeper(dir)?),
    };
    let elected = (1..gatekeepers)
        .map(|i| {
            let platform = SimPlatform::open(
                &dir.join(format!("workers/w{i}/enclave")),
                SimAttestationRoot::load(&dir.join(crate::worker::DEVNET_SIM_ROOT))?,
            )?;
            Ok(platform.identity())
        })
        .collect::<Result<Vec<_>>>()?;
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
            oracle: proctor_state::oracle::OracleParams {
                extra_roots: oracle_roots,
                ..Default::default()
            },
            contracts: proctor_state::contracts::ContractParams {
                gatekeeper,
                elected,
                era_blocks,
                gatekeeper_stake: Amount(GATEKEEPER_STAKE),
                ..Default::default()
            },
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
            SimAttestationRoot::load(&dir.join(crate::worker::DEVNET_SIM_ROOT))?,
        )?;
        enclaves.push((op.public().address(), platform));
    }
    genesis.enclaves = enclaves
        .iter()
        .enumerate()
        .map(|(i, (op, p))| {
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
                // The gatekeepers' slots lock the larger stake.
                stake: match i < gatekeepers {
                    true => Amount(GATEKEEPER_STAKE),
                    false => genesis.params.min_stake,
                },
            })
        })
        .collect::<Result<_, proctor_tee::Error>>()?;
    write_json(&dir.join("genesis.json"), &genesis)?;
    Ok(genesis)
}

/// Where a gatekeeper worker keeps its root key, sealed by its enclave.
pub(crate) const ROOT_KEY_FILE: &str = "root-key.sealed";

/// Worker 0's enclave generates the root key: its identity and commitment.
fn bootstrap_gatekeeper(dir: &Path) -> Result<proctor_state::contracts::Gatekeeper> {
    use proctor_enclave::contracts::{ContractRequest, ContractResponse};
    let wdir = dir.join("workers/w0");
    let mut enclave = open_enclave(&wdir, &dir.join(crate::worker::DEVNET_SIM_ROOT))?;
    match enclave.handle(Request::Contracts(Box::new(ContractRequest::Bootstrap))) {
        Response::Contracts(ContractResponse::Root {
            commitment, sealed, ..
        }) => {
            std::fs::write(wdir.join(ROOT_KEY_FILE), sealed)
                .with_context(|| format!("writing {}", wdir.join(ROOT_KEY_FILE).display()))?;
            Ok(proctor_state::contracts::Gatekeeper {
                identity: enclave.info().identity,
                commitment,
            })
        }
        other => bail!("the gatekeeper's enclave did not generate a root key: {other:?}"),
    }
}

/// The initial difficulty at which `workers` workers on this machine find a
/// block every `block_ms` on average: the lottery draws once per slice with
/// probability instructions/difficulty, so the difficulty is the number of
/// instructions the workers run in one block interval. Measured by running
/// the filler task for a moment (workers beyond the CPU count add nothing).
/// Retargeting corrects the rest; without this a new devnet starts far too
/// fast or too slow and takes dozens of blocks to settle.
pub(crate) fn calibrated_difficulty(block_ms: u64, workers: usize) -> u64 {
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
    let mut oracle_roots = Vec::new();
    for p in &args.oracle_roots {
        let pem = std::fs::read_to_string(p)
            .with_context(|| format!("reading the oracle root {}", p.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            bail!("{} is not a PEM certificate", p.display());
        }
        oracle_roots.push(pem);
    }
    let genesis = if gpath.exists() {
        let g = read_genesis(&gpath)?;
        if !oracle_roots.is_empty() && g.params.oracle.extra_roots != oracle_roots {
            bail!(
                "the devnet in {} has other oracle roots in its genesis; --oracle-root applies to a new devnet (use another --dir)",
                dir.display()
            );
        }
        g
    } else {
        tracing::info!(dir = %dir.display(), "creating a new devnet");
        create(
            dir,
            args.block_ms,
            args.workers,
            oracle_roots,
            args.gatekeepers,
            args.era_blocks,
        )?
    };
    let ndir = proctor_node::node_dir(dir);
    let ports = Ports::choose(dir, &ndir, &args)?;
    let config = NodeConfig {
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], ports.rpc[0])),
        p2p_listen: ports.p2p[0].map(listen_addr),
        bootnodes: vec![],
        rpc_rate: None,
        explorer: true,
    };
    init_dir(&ndir, &genesis, &config)?;
    let node = Node::start(&ndir).await?;
    let url = node.rpc_url();
    let mut nodes = vec![DevnetNode {
        rpc: url.clone(),
        p2p: ports.p2p[0].map(listen_addr),
        dir: ndir.clone(),
        pid: std::process::id(),
    }];
    let mut children = Vec::new();
    for i in 1..args.nodes {
        let p2p = ports.p2p[i].expect("every node of a multi-node devnet listens");
        let boot = ports.p2p[0].expect("node 0 of a multi-node devnet listens");
        let (child, info) = spawn_node(dir, &genesis, i, ports.rpc[i], p2p, boot)?;
        children.push((i, child));
        nodes.push(info);
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

    let mut workers = Vec::new();
    let mut listed = Vec::new();
    let mut metrics_servers = Vec::new();
    for i in 0..args.workers {
        let wdir = dir.join(format!("workers/w{i}"));
        let mut enclave = open_enclave(&wdir, &dir.join(crate::worker::DEVNET_SIM_ROOT))?;
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
        // A gatekeeper's root key, sealed by its enclave (at creation, or
        // when it received the key).
        worker
            .set_root_key_file(wdir.join(ROOT_KEY_FILE))
            .context("reading the sealed root key")?;
        if args.tamper_oracle_worker == Some(i) {
            tracing::warn!(
                worker = i,
                "TEST MODE: this worker's host alters the oracle responses it relays"
            );
            worker
                .tamper_oracle_for_testing()
                .context("--tamper-oracle-worker")?;
        }
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr, server) = proctor_worker::metrics::serve(any_port, worker.metrics())
            .await
            .context("serving a worker's metrics")?;
        metrics_servers.push(server);
        // Its query port, for callers of the contracts its enclave executes.
        let (qaddr, qserver) = worker
            .serve_queries(any_port)
            .await
            .context("serving a worker's contract queries")?;
        worker.set_query_endpoint(format!("http://{qaddr}"));
        metrics_servers.push(qserver);
        listed.push(DevnetWorker {
            identity: worker.info().identity.to_string(),
            metrics: format!("http://{addr}/metrics"),
            dir: wdir,
        });
        workers.push(worker);
    }
    let file = DevnetFile {
        rpc: url.clone(),
        nodes: nodes.clone(),
        workers: listed,
        keys: dir.join("keys"),
    };
    write_json(&dir.join("devnet.json"), &file)?;
    println!(
        "proctor devnet running\n  RPC:  {url}\n  explorer: {url}/ (open it in a browser)\n  metrics:  {url}/metrics\n  keys: {}\n  try:  proctor --rpc {url} chain head",
        dir.join("keys").display()
    );
    for n in &nodes[1..] {
        println!("  node: {} ({})", n.rpc, n.dir.display());
    }
    for (i, w) in file.workers.iter().enumerate() {
        println!("  worker w{i} metrics: {}", w.metrics);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, mut worker) in workers.into_iter().enumerate() {
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
    for server in metrics_servers {
        let _ = server.stop();
    }
    node.stop().await;
    Ok(())
}

/// The multiaddr of a p2p port on 127.0.0.1.
fn listen_addr(port: u16) -> String {
    format!("/ip4/127.0.0.1/tcp/{port}")
}

/// A TCP port on 127.0.0.1 that is free now (the OS's pick).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// The port of a saved p2p multiaddr `/ip4/.../tcp/PORT`.
fn saved_p2p_port(listen: &str) -> Option<u16> {
    listen.rsplit('/').next()?.parse().ok()
}

/// Every node's RPC and p2p ports: from the flags (`--rpc-port P`: node i
/// on P+i; 0: free ports), else what each node saved, else 8645 for node 0's
/// RPC and free ports for the rest. A single-node devnet listens for peers
/// only when asked (`--p2p-port`) or saved.
struct Ports {
    rpc: Vec<u16>,
    p2p: Vec<Option<u16>>,
}

impl Ports {
    fn choose(dir: &Path, ndir: &Path, args: &DevnetArgs) -> Result<Ports> {
        let saved = |i: usize| {
            let d = if i == 0 {
                ndir.to_path_buf()
            } else {
                dir.join(format!("node{i}"))
            };
            proctor_node::read_config(&d).ok()
        };
        let mut ports = Ports {
            rpc: Vec::new(),
            p2p: Vec::new(),
        };
        for i in 0..args.nodes {
            let offset = u16::try_from(i)?;
            let rpc = match (args.rpc_port, saved(i)) {
                (Some(0), _) => free_port()?,
                (Some(p), _) => p
                    .checked_add(offset)
                    .context("--rpc-port plus the node count passes 65535")?,
                (None, Some(c)) if c.rpc_addr.port() != 0 => c.rpc_addr.port(),
                (None, _) if i == 0 => 8645,
                (None, _) => free_port()?,
            };
            let p2p = match (args.p2p_port, saved(i)) {
                (Some(q), _) => Some(
                    q.checked_add(offset)
                        .context("--p2p-port plus the node count passes 65535")?,
                ),
                (None, Some(c)) if c.p2p_listen.is_some() => {
                    c.p2p_listen.as_deref().and_then(saved_p2p_port)
                }
                (None, _) if args.nodes > 1 => Some(free_port()?),
                (None, _) => None,
            };
            ports.rpc.push(rpc);
            ports.p2p.push(p2p);
        }
        Ok(ports)
    }
}

/// Starts node `i` of a devnet as a child process peered to node 0.
pub(crate) fn spawn_node(
    dir: &Path,
    genesis: &Genesis,
    i: usize,
    rpc_port: u16,
    p2p_port: u16,
    boot_port: u16,
) -> Result<(std::process::Child, DevnetNode)> {
    let ndir = dir.join(format!("node{i}"));
    let rpc = SocketAddr::from(([127, 0, 0, 1], rpc_port));
    let config = NodeConfig {
        rpc_addr: rpc,
        p2p_listen: Some(listen_addr(p2p_port)),
        bootnodes: vec![listen_addr(boot_port)],
        rpc_rate: None,
        explorer: true,
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
        p2p: Some(listen_addr(p2p_port)),
        dir: ndir,
        pid: child.id(),
    };
    Ok((child, info))
}
