//! `proctor node`: a full node from its directory.

use anyhow::{Result, bail};
use proctor_node::{Node, NodeConfig, init_dir, read_genesis, write_json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Serve the block explorer at `/` of the RPC address (saved for restarts;
    /// a devnet's nodes have it on).
    #[arg(long)]
    explorer: bool,
    /// Exit when the process with this id is gone (set by `proctor devnet` for its nodes).
    #[arg(long, hide = true)]
    parent_pid: Option<u32>,
}

impl NodeArgs {
    /// The configuration these arguments give on top of the saved one.
    fn config(&self, saved: Option<NodeConfig>) -> NodeConfig {
        let saved_addr = saved.as_ref().map(|c| c.rpc_addr);
        let rpc_rate = saved.as_ref().and_then(|c| c.rpc_rate);
        let explorer = self.explorer || saved.as_ref().is_some_and(|c| c.explorer);
        NodeConfig {
            rpc_rate,
            explorer,
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
pub(crate) async fn parent_gone(pid: Option<u32>) {
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

/// Waits (at most a minute) until the node at `url` answers.
pub(crate) async fn wait_for_rpc(url: &str) -> Result<()> {
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

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
