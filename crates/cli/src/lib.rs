//! The `proctor` command-line interface.
//!
//! One binary for every role: `devnet` (a whole local chain in one command),
//! `node`, `worker`, and the client commands (keys, accounts, transfers, chain
//! inspection) that talk to a node over JSON-RPC (`--rpc URL`). Read commands
//! print human-readable text by default and JSON with `--json`. Errors go to
//! stderr with a non-zero exit code and say what was wrong.
#![forbid(unsafe_code)]

mod bench;
mod bench_net;
mod devnet;
mod job;
pub mod keys;
mod task;
mod tee;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use proctor_primitives::{Address, Amount, Hash};
use proctor_rpc::jsonrpsee::http_client::HttpClient;
use proctor_rpc::{ApiClient, TxStatus};
use proctor_state::{Call, Transaction};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Default RPC endpoint (a local devnet).
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8645";

#[derive(Parser)]
#[command(
    name = "proctor",
    version,
    about = "proctor: a decentralized cloud on trusted hardware, secured by Proof of Useful Work"
)]
struct Cli {
    /// JSON-RPC endpoint of a node.
    #[arg(long, global = true, env = "PROCTOR_RPC", default_value = DEFAULT_RPC)]
    rpc: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a local chain: a node and workers, with funded dev accounts.
    Devnet(devnet::DevnetArgs),
    /// Run a full node from its directory.
    Node(devnet::NodeArgs),
    /// Run a worker (registers its enclave and mines), or manage its registration.
    Worker {
        #[command(flatten)]
        args: devnet::WorkerArgs,
        #[command(subcommand)]
        cmd: Option<devnet::WorkerCmd>,
    },
    /// Governance transactions (signed by the genesis's governance key).
    Governance {
        #[command(subcommand)]
        cmd: GovernanceCmd,
    },
    /// Run an enclave as its own process, serving a worker over a Unix socket.
    Enclave(devnet::EnclaveArgs),
    /// Create and inspect key files.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Show an account's balance and nonce.
    Account {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Send tokens.
    Transfer {
        /// Key file of the sender.
        #[arg(long)]
        key: PathBuf,
        /// Recipient address (prc1...).
        #[arg(long)]
        to: String,
        /// Amount in base units.
        #[arg(long)]
        amount: u128,
        /// Fee in base units (default: the chain's minimum fee).
        #[arg(long)]
        fee: Option<u128>,
        /// Wait until the transfer is in a block.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Inspect the chain.
    Chain {
        #[command(subcommand)]
        cmd: ChainCmd,
    },
    /// Confidential jobs on the compute market.
    Job {
        #[command(subcommand)]
        cmd: job::JobCmd,
    },
    /// Peers of the node: who is connected, who is banned.
    Net {
        #[command(subcommand)]
        cmd: NetCmd,
    },
    /// Show where a transaction is.
    Tx {
        hash: String,
        #[arg(long)]
        json: bool,
    },
    /// Check, dry-run and benchmark WebAssembly tasks locally.
    Task {
        #[command(subcommand)]
        cmd: task::TaskCmd,
    },
    /// Inspect trusted-hardware attestation.
    Tee {
        #[command(subcommand)]
        cmd: tee::TeeCmd,
    },
    /// Benchmarks: PoUW overhead, state-machine throughput, quote
    /// verification; `bench network` loads a multi-node devnet.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        cmd: Option<BenchCmd>,
        #[command(flatten)]
        args: bench::BenchArgs,
    },
}

#[derive(Subcommand)]
enum GovernanceCmd {
    /// Add or retire enclave measurements on the allowlist.
    Measurements {
        /// The governance key file.
        #[arg(long)]
        key: PathBuf,
        /// A measurement to allow (hex; repeatable).
        #[arg(long)]
        add: Vec<String>,
        /// A measurement to retire (hex; repeatable); registered enclaves keep
        /// working for the chain's grace period.
        #[arg(long)]
        retire: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Transactions per second, block propagation and stale rate of a
    /// multi-node devnet started for the purpose (takes a few minutes).
    Network(bench_net::NetBenchArgs),
}

#[derive(Subcommand)]
enum NetCmd {
    /// This node's peer id, connected and banned peers.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Ban a peer (by its peer id) until unbanned: its connections are closed and refused.
    Ban {
        peer: String,
        #[arg(long)]
        reason: Option<String>,
        /// The node's admin token file (`admin.token` in its directory).
        #[arg(long, default_value = "devnet/node/admin.token")]
        admin_token: PathBuf,
    },
    /// Lift a ban.
    Unban {
        peer: String,
        /// The node's admin token file (`admin.token` in its directory).
        #[arg(long, default_value = "devnet/node/admin.token")]
        admin_token: PathBuf,
    },
}

/// Reads a node's admin token file.
fn admin_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the admin token {}: admin commands need the token file from the node's directory (--admin-token)",
            path.display()
        )
    })?;
    Ok(t.trim().to_string())
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Generate a new key file.
    New {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show a key file's address and public key (never the secret).
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ChainCmd {
    /// The current head.
    Head {
        #[arg(long)]
        json: bool,
    },
    /// A block by height or hash.
    Block {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Chain identity and parameters.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Total supply at the head (balances plus locked stakes).
    Supply {
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default level.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,jsonrpsee=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn client(url: &str) -> Result<HttpClient> {
    proctor_rpc::http_client(url).with_context(|| format!("invalid RPC URL {url:?}"))
}

/// Makes RPC failures say which node could not be reached.
fn rpc_err(url: &str) -> impl Fn(proctor_rpc::jsonrpsee::core::ClientError) -> anyhow::Error + '_ {
    move |e| match e {
        proctor_rpc::jsonrpsee::core::ClientError::Call(obj) => {
            anyhow!("{} (code {})", obj.message(), obj.code())
        }
        other => anyhow!("cannot talk to the node at {url}: {other} (is it running? see --rpc)"),
    }
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human(value));
    }
    Ok(())
}

fn parse_address(s: &str) -> Result<Address> {
    s.parse::<Address>().map_err(|e| anyhow!("{e}"))
}

async fn run(cli: Cli) -> Result<()> {
    let url = cli.rpc.as_str();
    match cli.cmd {
        Cmd::Devnet(args) => devnet::run(args).await,
        Cmd::Node(args) => devnet::run_node(args).await,
        Cmd::Worker { args, cmd: None } => devnet::run_worker(args, url).await,
        Cmd::Worker {
            args,
            cmd: Some(cmd),
        } => devnet::manage_worker(args, cmd, url).await,
        Cmd::Governance {
            cmd:
                GovernanceCmd::Measurements {
                    key,
                    add,
                    retire,
                    json,
                },
        } => {
            let k = keys::read(&key)?;
            let parse = |v: &[String]| -> Result<Vec<Hash>> {
                v.iter()
                    .map(|h| h.parse::<Hash>().map_err(|e| anyhow!("{e}")))
                    .collect()
            };
            let call = Call::UpdateMeasurements {
                add: parse(&add)?,
                retire: parse(&retire)?,
            };
            let (hash, status) =
                send_call(url, &k, call, None, Some(Duration::from_secs(120))).await?;
            print(json, &TransferResult { hash, status }, |r| {
                format!("allowlist updated by {}", r.hash)
            })
        }
        Cmd::Enclave(args) => {
            tokio::task::spawn_blocking(move || devnet::run_enclave(args)).await?
        }
        Cmd::Keys {
            cmd: KeysCmd::New { out, json },
        } => {
            let k = proctor_primitives::Keypair::generate(&mut rand_core::OsRng);
            keys::write(&out, &k)?;
            print(json, &keys::info(&k), |i| {
                format!("wrote {}\naddress: {}", out.display(), i.address)
            })
        }
        Cmd::Keys {
            cmd: KeysCmd::Show { file, json },
        } => {
            let k = keys::read(&file)?;
            print(json, &keys::info(&k), |i| {
                format!("address:    {}\npublic key: {}", i.address, i.public_key)
            })
        }
        Cmd::Account { address, json } => {
            let a = parse_address(&address)?;
            let info = client(url)?.account(a).await.map_err(rpc_err(url))?;
            print(json, &info, |i| {
                format!(
                    "address: {}\nbalance: {}\nnonce:   {}",
                    i.address, i.balance, i.nonce
                )
            })
        }
        Cmd::Transfer {
            key,
            to,
            amount,
            fee,
            wait,
            timeout,
            json,
        } => {
            transfer(
                url,
                key,
                &to,
                amount,
                fee,
                wait,
                Duration::from_secs(timeout),
                json,
            )
            .await
        }
        Cmd::Chain {
            cmd: ChainCmd::Head { json },
        } => {
            let h = client(url)?.head().await.map_err(rpc_err(url))?;
            print(json, &h, |h| {
                format!(
                    "height: {}\nhash:   {}\nstate:  {}",
                    h.height, h.hash, h.state_root
                )
            })
        }
        Cmd::Chain {
            cmd: ChainCmd::Block { id, json },
        } => {
            let b = client(url)?.block(id).await.map_err(rpc_err(url))?;
            print(json, &b, |b| {
                let mut s = format!(
                    "height:     {}\nhash:       {}\nparent:     {}\ntimestamp:  {}\nstate root: {}\nminer:      {}\ndifficulty: {}\ntxs:        {}",
                    b.height,
                    b.hash,
                    b.parent,
                    b.timestamp,
                    b.state_root,
                    b.miner,
                    b.difficulty,
                    b.transactions.len()
                );
                if let Some(p) = &b.pouw {
                    s += &format!(
                        "\npouw:       enclave {} module {} instructions {}",
                        p.enclave, p.module, p.instructions
                    );
                }
                s
            })
        }
        Cmd::Chain {
            cmd: ChainCmd::Info { json },
        } => {
            let i = client(url)?.chain_info().await.map_err(rpc_err(url))?;
            print(json, &i, |i| {
                format!(
                    "chain:   {}\ngenesis: {}\nmin fee: {}",
                    i.chain_id, i.genesis_hash, i.min_fee
                )
            })
        }
        Cmd::Chain {
            cmd: ChainCmd::Supply { json },
        } => {
            let s = client(url)?.supply().await.map_err(rpc_err(url))?;
            print(json, &s, |s| {
                format!(
                    "total supply: {} at height {} ({})",
                    s.total_supply.0, s.height, s.hash
                )
            })
        }
        Cmd::Net {
            cmd: NetCmd::Info { json },
        } => {
            let n = client(url)?.net_info().await.map_err(rpc_err(url))?;
            print(json, &n, |n| {
                let mut s = format!(
                    "peer id: {}\nlisten:  {}\npeers:   {} connected, {} known, {} orphan blocks",
                    n.peer_id,
                    n.listen.join(" "),
                    n.peers.len(),
                    n.known,
                    n.orphans
                );
                for p in &n.peers {
                    s += &format!(
                        "\n  {} {} ({} points)",
                        p.id,
                        p.address.as_deref().unwrap_or("-"),
                        p.points
                    );
                }
                for b in &n.banned {
                    let until = b
                        .seconds_left
                        .map_or("until unbanned".to_string(), |t| format!("{t} s left"));
                    s += &format!("\n  banned {}: {} ({until})", b.id, b.reason);
                }
                s
            })
        }
        Cmd::Net {
            cmd:
                NetCmd::Ban {
                    peer,
                    reason,
                    admin_token: token,
                },
        } => {
            let token = admin_token(&token)?;
            proctor_rpc::AdminClient::ban_peer(&client(url)?, token, peer.clone(), reason)
                .await
                .map_err(rpc_err(url))?;
            println!("banned {peer}");
            Ok(())
        }
        Cmd::Net {
            cmd:
                NetCmd::Unban {
                    peer,
                    admin_token: token,
                },
        } => {
            let token = admin_token(&token)?;
            let was = proctor_rpc::AdminClient::unban_peer(&client(url)?, token, peer.clone())
                .await
                .map_err(rpc_err(url))?;
            println!(
                "{}",
                if was {
                    format!("unbanned {peer}")
                } else {
                    format!("{peer} was not banned")
                }
            );
            Ok(())
        }
        Cmd::Tx { hash, json } => {
            let h: Hash = hash.parse().map_err(|e| anyhow!("{e}"))?;
            let s = client(url)?.transaction(h).await.map_err(rpc_err(url))?;
            print(json, &s, |s| match s {
                TxStatus::Included { height, block, .. } => {
                    format!("included at height {height} in block {block}")
                }
                TxStatus::Pending { .. } => "pending".into(),
                TxStatus::Dropped { code, reason, .. } => {
                    format!("dropped: {reason} (code {code})")
                }
                TxStatus::Unknown { .. } => "unknown to this node".into(),
            })
        }
        Cmd::Job { cmd } => job::run(cmd, url).await,
        Cmd::Task { cmd } => task::run(cmd),
        Cmd::Tee { cmd } => tee::run(cmd),
        Cmd::Bench {
            cmd: Some(BenchCmd::Network(args)),
            ..
        } => bench_net::run(args).await,
        Cmd::Bench { cmd: None, args } => bench::run(args),
    }
}

/// Signs `call` with `key`, submits it (with `fee`, or the chain's minimum),
/// and with `wait` polls until it is in a block or the wait runs out.
pub(crate) async fn send_call(
    url: &str,
    key: &proctor_primitives::Keypair,
    call: Call,
    fee: Option<Amount>,
    wait: Option<Duration>,
) -> Result<(Hash, TxStatus)> {
    let c = client(url)?;
    let info = c.chain_info().await.map_err(rpc_err(url))?;
    let acc = c
        .account(key.public().address())
        .await
        .map_err(rpc_err(url))?;
    let fee = fee.unwrap_or(info.min_fee);
    let tx = Transaction {
        chain: info.genesis_hash,
        signer: key.public(),
        nonce: acc.next_nonce,
        fee,
        call,
    }
    .sign(key);
    if let Some(needed) = tx.tx.cost()
        && acc.balance < needed
    {
        bail!(
            "insufficient balance: {} has {}, the transaction needs {needed} (fee {fee} included)",
            acc.address,
            acc.balance
        );
    }
    let hash = c
        .send_transaction(proctor_rpc::to_hex(&tx))
        .await
        .map_err(rpc_err(url))?;
    let Some(timeout) = wait else {
        return Ok((hash, TxStatus::Pending { hash }));
    };
    let deadline = Instant::now() + timeout;
    loop {
        let status = c.transaction(hash).await.map_err(rpc_err(url))?;
        match status {
            TxStatus::Included { .. } => return Ok((hash, status)),
            TxStatus::Dropped { code, reason, .. } => {
                bail!("transaction {hash} was dropped: {reason} (code {code})")
            }
            TxStatus::Unknown { .. } => bail!("transaction {hash} is unknown to the node"),
            TxStatus::Pending { .. } if Instant::now() >= deadline => {
                bail!(
                    "transaction {hash} still pending after {} s (are workers mining?)",
                    timeout.as_secs()
                )
            }
            TxStatus::Pending { .. } => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[derive(Serialize)]
struct TransferResult {
    hash: Hash,
    status: TxStatus,
}

#[allow(clippy::too_many_arguments)]
async fn transfer(
    url: &str,
    key: PathBuf,
    to: &str,
    amount: u128,
    fee: Option<u128>,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> Result<()> {
    let k = keys::read(&key)?;
    let call = Call::Transfer {
        to: parse_address(to)?,
        amount: Amount(amount),
    };
    let (hash, status) = send_call(url, &k, call, fee.map(Amount), wait.then_some(timeout)).await?;
    print(json, &TransferResult { hash, status }, |r| {
        match &r.status {
            TxStatus::Included { height, .. } => {
                format!("transfer {} included at height {height}", r.hash)
            }
            _ => format!("transfer {} submitted", r.hash),
        }
    })
}
