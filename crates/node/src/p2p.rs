//! The node's side of the network: its persistent p2p identity and the
//! [`ChainAccess`] the network uses to read and extend the chain.

use crate::chain::{Chain, ChainError, Imported};
use crate::mempool::AdmitError;
use crate::{Error, now_ms};
use proctor_network::{ChainAccess, Handle, NetworkConfig, Verdict, libp2p_identity, parse_addr};
use proctor_primitives::codec;
use proctor_rpc::HeadInfo;
use proctor_state::{Block, SignedTransaction, TxError, signatures_valid};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::broadcast;

/// File of the node's p2p key (its peer id survives restarts).
const P2P_KEY: &str = "p2p.key";
/// File of the node's peer book (addresses of peers it has seen).
const PEERS_FILE: &str = "peers.txt";

struct NetChain {
    chain: Arc<Mutex<Chain>>,
    heads: broadcast::Sender<HeadInfo>,
    /// The network, to gossip again the transactions a reorg returned.
    network: OnceLock<Handle>,
}

impl NetChain {
    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChainAccess for NetChain {
    fn height(&self) -> u64 {
        self.lock().head().height
    }

    fn blocks_from(&self, from: u64, count: u64, max_bytes: usize) -> Vec<Vec<u8>> {
        let c = self.lock();
        let mut total = 0;
        (from..from.saturating_add(count))
            .map_while(|h| c.store().block_at(h).ok().flatten())
            .map(|b| codec::encode(&b))
            .take_while(|b| {
                let first = total == 0;
                total += b.len();
                first || total <= max_bytes
            })
            .collect()
    }

    fn import(&self, bytes: &[u8]) -> Verdict {
        let Ok(block) = codec::decode::<Block>("block", bytes) else {
            return Verdict::Reject;
        };
        let hash = block.hash();
        let now = now_ms();
        let mut c = self.lock();
        let first = c.import_block(block, now);
        if let Ok(imported) = &first {
            // Blocks that were waiting for this one.
            let mut all = vec![imported.clone()];
            all.extend(c.connect_orphans(hash, now));
            let mut moved = false;
            for imported in all {
                match imported {
                    Imported::Extended(_) => moved = true,
                    Imported::Reorg { returned, .. } => {
                        moved = true;
                        if let Some(n) = self.network.get() {
                            returned.iter().for_each(|t| n.publish_tx(codec::encode(t)));
                        }
                    }
                    Imported::Side(_) | Imported::Known(_) => {}
                }
            }
            if moved {
                let _ = self.heads.send(c.head());
            }
        }
        match first {
            Ok(_) => Verdict::Accept,
            Err(ChainError::UnknownParent(_)) => Verdict::UnknownParent,
            Err(ChainError::Consensus(e)) => {
                tracing::debug!("invalid block from the network: {e}");
                Verdict::Reject
            }
            Err(e) => {
                tracing::warn!("block from the network not imported: {e}");
                Verdict::Ignore
            }
        }
    }

    fn blob(&self, hash: &proctor_primitives::Hash) -> Option<Vec<u8>> {
        self.lock().store().blob(hash).ok().flatten()
    }

    fn add_txs(&self, txs: &[Vec<u8>]) -> Vec<Verdict> {
        let decoded: Vec<Option<SignedTransaction>> = txs
            .iter()
            .map(|b| codec::decode::<SignedTransaction>("transaction", b).ok())
            .collect();
        let valid: Vec<SignedTransaction> = decoded.iter().flatten().cloned().collect();
        let now = now_ms();
        // One batch signature check outside the chain lock; only if some
        // signature is bad are they checked one by one to find it.
        if signatures_valid(&valid) {
            let mut results = self.lock().submit_verified_txs(valid, now).into_iter();
            decoded
                .iter()
                .map(|d| match d {
                    None => Verdict::Reject,
                    Some(_) => tx_verdict(results.next().expect("one result per transaction")),
                })
                .collect()
        } else {
            decoded
                .into_iter()
                .map(|d| match d {
                    None => Verdict::Reject,
                    Some(stx) => tx_verdict(self.lock().submit_tx(stx, now)),
                })
                .collect()
        }
    }
}

fn tx_verdict(r: Result<proctor_primitives::Hash, ChainError>) -> Verdict {
    match r {
        Ok(_) => Verdict::Accept,
        // Forged or for another chain: the sender's fault.
        Err(ChainError::Admit(AdmitError::Invalid(
            TxError::BadSignature | TxError::WrongChain { .. },
        ))) => Verdict::Reject,
        // Already seen, stale, or not yet valid here: just do not forward.
        Err(_) => Verdict::Ignore,
    }
}

/// Loads (or creates) the node's p2p key and starts the network.
pub(crate) fn start(
    dir: &Path,
    listen: &str,
    bootnodes: &[String],
    chain: Arc<Mutex<Chain>>,
    heads: broadcast::Sender<HeadInfo>,
) -> Result<Handle, Error> {
    let keypair = load_or_create_key(&dir.join(P2P_KEY))?;
    let config = NetworkConfig {
        keypair,
        listen: parse_addr(listen).map_err(|e| Error::Network(e.to_string()))?,
        bootnodes: bootnodes
            .iter()
            .map(|b| parse_addr(b))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Network(e.to_string()))?,
        peers_file: Some(dir.join(PEERS_FILE)),
    };
    let access = Arc::new(NetChain {
        chain,
        heads,
        network: OnceLock::new(),
    });
    let handle = proctor_network::start(config, access.clone())
        .map_err(|e| Error::Network(e.to_string()))?;
    let _ = access.network.set(handle.clone());
    tracing::info!(peer_id = %handle.peer_id, "p2p started");
    Ok(handle)
}

fn load_or_create_key(path: &Path) -> Result<libp2p_identity::Keypair, Error> {
    let bad = |m: String| Error::File {
        path: path.display().to_string(),
        message: m,
    };
    let mut secret = if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        hex::decode(text.trim()).map_err(|e| bad(format!("not a hex key: {e}")))?
    } else {
        let k = libp2p_identity::Keypair::generate_ed25519();
        let bytes = k
            .try_into_ed25519()
            .map_err(|e| bad(e.to_string()))?
            .secret()
            .as_ref()
            .to_vec();
        std::fs::write(path, hex::encode(&bytes)).map_err(|e| bad(e.to_string()))?;
        bytes
    };
    libp2p_identity::Keypair::ed25519_from_bytes(&mut secret).map_err(|e| bad(e.to_string()))
}
