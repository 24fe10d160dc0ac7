//! The `proctor` command-line interface.
//!
//! One binary for every role: `devnet` (a whole local chain in one command),
//! `node`, `worker`, and the client commands (keys, accounts, transfers, chain
//! inspection) that talk to a node over JSON-RPC (`--rpc URL`). Read commands
//! print human-readable text by default and JSON with `--json`. Errors go to
//! stderr with a non-zero exit code and say what was wrong.
#![forbid(unsafe_code)]

mod account;
mod bench;
mod bench_contracts;
mod bench_corpus;
mod bench_net;
pub mod bench_oracle;
mod chain;
mod contract;
mod devnet;
mod enclave;
mod governance;
mod job;
pub mod keys;
mod net;
mod node;
mod oracle;
mod progress;
mod task;
mod tee;
mod worker;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use proctor_primitives::{Address, Amount, Hash};
use proctor_rpc::jsonrpsee::http_client::HttpClient;
use proctor_rpc::{ApiClient, TxStatus};
use proctor_state::{Call, Transaction};
use serde::Serialize;
use std::path::PathBuf;
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
    /// How long-running commands (node, worker, devnet, enclave) log to
    /// stderr: `text` for people, `json` (one object per line) for machines.
    #[arg(
        long,
        global = true,
        env = "PROCTOR_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a local chain: a node and workers, with funded dev accounts.
    Devnet(devnet::DevnetArgs),
    /// Run a full node from its directory.
    Node(node::NodeArgs),
    /// Run a worker (registers its enclave and mines), or manage its registration.
    Worker {
        #[command(flatten)]
        args: worker::WorkerArgs,
        #[command(subcommand)]
        cmd: Option<worker::WorkerCmd>,
    },
    /// Governance transactions (signed by the genesis's governance key).
    Governance {
        #[command(subcommand)]
        cmd: governance::GovernanceCmd,
    },
    /// Run an enclave as its own process, serving a worker over a Unix socket.
    Enclave(enclave::EnclaveArgs),
    /// Create and inspect key files.
    Keys {
        #[command(subcommand)]
        cmd: keys::KeysCmd,
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
        cmd: chain::ChainCmd,
    },
    /// Confidential jobs on the compute market.
    Job {
        #[command(subcommand)]
        cmd: job::JobCmd,
    },
    /// Web data fetched over TLS and signed inside an attested enclave.
    Oracle {
        #[command(subcommand)]
        cmd: oracle::OracleCmd,
    },
    /// Confidential contracts: Wasm state machines run inside enclaves.
    Contract {
        #[command(subcommand)]
        cmd: contract::ContractCmd,
    },
    /// Peers of the node: who is connected, who is banned.
    Net {
        #[command(subcommand)]
        cmd: net::NetCmd,
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
enum BenchCmd {
    /// Transactions per second, block propagation and stale rate of a
    /// multi-node devnet started for the purpose (takes a few minutes).
    Network(bench_net::NetBenchArgs),
    /// The meter on real C programs from Debian source packages
    /// (examples/corpus): PoUW/unmetered and PoUW/native, side by side.
    Corpus(bench_corpus::CorpusArgs),
    /// Metered instructions per second (lottery tickets per second) of the
    /// corpus, the examples and adversarial probes, and their spread.
    Lottery(bench_corpus::LotteryArgs),
    /// Signed oracle datagrams per second through the enclave's TLS path
    /// and through on-chain verification, beside a plain rustls client.
    Oracle(bench_oracle::OracleArgs),
    /// Confidential contracts: commands and queries per second through one
    /// executor enclave, checkpoint and recovery of 1, 10 and 100 MB states.
    Contracts(bench_contracts::ContractArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    let _ = LOG_FORMAT.set(cli.log_format);
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

/// The format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The format chosen on the command line, for [`init_logging`].
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Logs to stderr in the chosen format; `RUST_LOG` overrides the default level.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,jsonrpsee=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match LOG_FORMAT.get().copied().unwrap_or(LogFormat::Text) {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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

/// Prints `items` as JSON, or a line each (`none` when there are none).
fn print_list<T: Serialize>(
    json: bool,
    items: &[T],
    none: &str,
    line: impl Fn(&T) -> String,
) -> Result<()> {
    print(json, &items, |items| match items.is_empty() {
        true => none.to_string(),
        false => items.iter().map(line).collect::<Vec<_>>().join("\n"),
    })
}

/// `proctor ... | head -1`: when the reader of standard output goes away,
/// the next print fails with a broken pipe. Rust ignores SIGPIPE, so that
/// print panics; exit quietly instead, with the status a Unix tool killed by
/// SIGPIPE has (128 + 13), and no message.
fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn parse_address(s: &str) -> Result<Address> {
    s.parse::<Address>().map_err(|e| anyhow!("{e}"))
}

async fn run(cli: Cli) -> Result<()> {
    let url = cli.rpc.as_str();
    match cli.cmd {
        Cmd::Devnet(args) => devnet::run(args).await,
        Cmd::Node(args) => node::run_node(args).await,
        Cmd::Worker { args, cmd: None } => worker::run_worker(args, url).await,
        Cmd::Worker {
            args,
            cmd: Some(cmd),
        } => worker::manage_worker(args, cmd, url).await,
        Cmd::Governance { cmd } => governance::run(cmd, url).await,
        Cmd::Keys { cmd } => keys::run(cmd),
        Cmd::Account { address, json } => account::show(&address, json, url).await,
        Cmd::Transfer {
            key,
            to,
            amount,
            fee,
            wait,
            timeout,
            json,
        } => {
            account::transfer(
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
        Cmd::Chain { cmd } => chain::run(cmd, url).await,
        Cmd::Net { cmd } => net::run(cmd, url).await,
        Cmd::Tx { hash, json } => chain::tx(&hash, json, url).await,
        Cmd::Enclave(args) => {
            tokio::task::spawn_blocking(move || enclave::run_enclave(args)).await?
        }
        Cmd::Job { cmd } => job::run(cmd, url).await,
        Cmd::Oracle { cmd } => oracle::run(cmd, url).await,
        Cmd::Contract { cmd } => contract::run(cmd, url).await,
        Cmd::Task { cmd } => task::run(cmd),
        Cmd::Tee { cmd } => tee::run(cmd),
        Cmd::Bench {
            cmd: Some(BenchCmd::Network(args)),
            ..
        } => bench_net::run(args).await,
        Cmd::Bench {
            cmd: Some(BenchCmd::Corpus(args)),
            ..
        } => bench_corpus::corpus(args),
        Cmd::Bench {
            cmd: Some(BenchCmd::Lottery(args)),
            ..
        } => bench_corpus::lottery(args),
        Cmd::Bench {
            cmd: Some(BenchCmd::Oracle(args)),
            ..
        } => tokio::task::spawn_blocking(move || bench_oracle::run(args)).await?,
        Cmd::Bench {
            cmd: Some(BenchCmd::Contracts(args)),
            ..
        } => tokio::task::spawn_blocking(move || bench_contracts::run(args)).await?,
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
    send_call_with(url, key, |_, _| Ok(call), fee, wait).await
}

/// [`send_call`] of the call `make` builds for the chain's genesis hash and
/// the transaction's nonce (a contract command seals its message to them).
pub(crate) async fn send_call_with(
    url: &str,
    key: &proctor_primitives::Keypair,
    make: impl FnOnce(&Hash, u64) -> Result<Call>,
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
        call: make(&info.genesis_hash, acc.next_nonce)?,
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
