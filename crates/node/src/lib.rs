//! A proctor full node: chain state, storage, mempool, block templates for
//! workers, block validation and import, and the JSON-RPC server.
//!
//! A node lives in one directory, which holds everything it needs to restart
//! as the same node:
//! - `genesis.json`: the chain it follows;
//! - `node.json`: its configuration (RPC address);
//! - `chain.redb`: blocks, receipts, state records and blobs.
//!
//! [`chain::Chain`] is the synchronous core (one lock); [`rpc`] adapts it to
//! JSON-RPC and publishes new heads to WebSocket subscribers.
#![forbid(unsafe_code)]

pub mod chain;
pub mod explorer;
pub mod mempool;
pub mod metrics;
pub mod orphans;
mod p2p;
pub mod rpc;
mod rpc_inputs;
mod rpc_limit;

use proctor_state::Genesis;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The genesis filler task (examples/tasks/filler.c), which every node serves
/// to workers so that the chain never stalls while workers exist.
pub const FILLER_WASM: &[u8] = include_bytes!("../../../examples/tasks/filler.wasm");

/// Largest number of pending transactions.
pub const MEMPOOL_CAPACITY: usize = 100_000;

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Chain(#[from] chain::ChainError),
    #[error("cannot serve RPC on {addr}: {message}")]
    Rpc { addr: SocketAddr, message: String },
    #[error("p2p: {0}")]
    Network(String),
}

/// The node's persisted configuration (`node.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Where JSON-RPC (HTTP and WebSocket) is served.
    pub rpc_addr: SocketAddr,
    /// Where to listen for peers (a multiaddr, e.g. `/ip4/127.0.0.1/tcp/7000`); None: no networking.
    #[serde(default)]
    pub p2p_listen: Option<String>,
    /// Peers to connect to at start-up (multiaddrs).
    #[serde(default)]
    pub bootnodes: Vec<String>,
    /// JSON-RPC requests served per second on each connection (a batch
    /// counts each entry); None: [`rpc::DEFAULT_RATE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_rate: Option<u32>,
    /// Serve the block explorer at `/` of the RPC address.
    #[serde(default)]
    pub explorer: bool,
}

fn file_err(path: &Path, message: impl ToString) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads a genesis file.
pub fn read_genesis(path: &Path) -> Result<Genesis, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("not a valid genesis: {e}")))
}

/// Writes `value` as pretty JSON, atomically (write then rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| file_err(path, e))?;
    std::fs::write(&tmp, text).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

/// Prepares a node directory for `genesis`: writes `genesis.json` and `node.json`.
pub fn init_dir(dir: &Path, genesis: &Genesis, config: &NodeConfig) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let gpath = dir.join("genesis.json");
    if !gpath.exists() {
        write_json(&gpath, genesis)?;
    }
    write_json(&dir.join("node.json"), config)
}

/// Loads `node.json` from a node directory.
pub fn read_config(dir: &Path) -> Result<NodeConfig, Error> {
    let path = dir.join("node.json");
    let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| file_err(&path, format!("not a valid node config: {e}")))
}

/// A running node.
pub struct Node {
    pub rpc_addr: SocketAddr,
    pub chain: Arc<Mutex<chain::Chain>>,
    server: jsonrpsee::server::ServerHandle,
}

impl Node {
    /// Opens the node in `dir` and starts serving RPC.
    pub async fn start(dir: &Path) -> Result<Node, Error> {
        let genesis = read_genesis(&dir.join("genesis.json"))?;
        let config = read_config(dir)?;
        let chain = chain::Chain::open(&dir.join("chain.redb"), genesis, MEMPOOL_CAPACITY)?;
        if proctor_primitives::Hash::of(FILLER_WASM) == chain.genesis().params.filler_module {
            chain
                .store()
                .put_blob(FILLER_WASM)
                .map_err(chain::ChainError::from)?;
        }
        let head = chain.head();
        tracing::info!(height = head.height, hash = %head.hash, "chain opened");
        let chain = Arc::new(Mutex::new(chain));
        let (heads, _) = tokio::sync::broadcast::channel(64);
        let network = match &config.p2p_listen {
            Some(listen) => Some(p2p::start(
                dir,
                listen,
                &config.bootnodes,
                chain.clone(),
                heads.clone(),
            )?),
            None => None,
        };
        let admin = admin_token(dir)?;
        let (server, rpc_addr) = rpc::serve(
            config.rpc_addr,
            rpc::Options {
                admin_token: admin,
                rate: config.rpc_rate.unwrap_or(rpc::DEFAULT_RATE),
                explorer: config.explorer,
            },
            chain.clone(),
            heads,
            network,
        )
        .await?;
        tracing::info!(%rpc_addr, "JSON-RPC listening");
        Ok(Node {
            rpc_addr,
            chain,
            server,
        })
    }

    /// The RPC URL (HTTP; the same port serves WebSocket).
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(self) {
        let _ = self.server.stop();
        self.server.stopped().await;
    }
}

/// The node's admin token (`admin.token` in its directory): read, or made
/// from 32 random bytes on first start, readable only by the node's user.
pub fn admin_token(dir: &Path) -> Result<String, Error> {
    let path = dir.join(proctor_rpc::ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err(&path, e)),
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let token = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&path).map_err(|e| file_err(&path, e))?;
    std::io::Write::write_all(&mut f, token.as_bytes()).map_err(|e| file_err(&path, e))?;
    Ok(token)
}

/// Milliseconds since the Unix epoch (the node's clock; never used by consensus rules).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The default directory layout of a node under a devnet directory.
pub fn node_dir(devnet: &Path) -> PathBuf {
    devnet.join("node")
}
