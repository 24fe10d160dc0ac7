//! The JSON-RPC server: [`proctor_rpc::ApiServer`] over the chain.

use crate::chain::{Chain, ChainError, block_info};
use crate::mempool::AdmitError;
use crate::{Error, now_ms};
use jsonrpsee::core::{SubscriptionResult, async_trait};
use jsonrpsee::server::{
    PendingSubscriptionSink, ServerBuilder, ServerConfig, ServerHandle, SubscriptionMessage,
};
use jsonrpsee::types::ErrorObjectOwned;
use proctor_primitives::{Address, Hash, PublicKey};
use proctor_rpc::{
    AccountInfo, ApiServer, BannedPeer, BlockInfo, ChainInfo, HeadInfo, NetInfo, PeerInfo,
    SupplyInfo, TxStatus, WorkInfo, codes, error, from_hex,
};
use proctor_state::jobs::{JobRecord, WorkerOffer};
use proctor_state::{EnclaveRecord, PouwProof, SignedTransaction};

/// Largest blob accepted over RPC.
const MAX_BLOB: usize = 12 << 20;
/// Largest blob `composeBlob` makes.
const MAX_COMPOSED: usize = 64 << 20;
/// Blocks an uploaded blob is kept if no job claims it (a job that ends
/// keeps its blobs for its own retention instead).
const UNCLAIMED_BLOB_BLOCKS: u64 = 10_000;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

struct Rpc {
    chain: Arc<Mutex<Chain>>,
    heads: broadcast::Sender<HeadInfo>,
    network: Option<proctor_network::Handle>,
}

fn chain_error(e: ChainError) -> ErrorObjectOwned {
    let code = match &e {
        ChainError::Admit(AdmitError::Invalid(t)) => t.code(),
        ChainError::Admit(AdmitError::AlreadyPending(_) | AdmitError::NonceTaken { .. }) => {
            codes::ALREADY_PENDING
        }
        ChainError::Admit(AdmitError::Full(_) | AdmitError::FullBytes(_)) => codes::MEMPOOL_FULL,
        ChainError::Consensus(c) => c.code(),
        ChainError::StaleTemplate(_) => codes::STALE_TEMPLATE,
        ChainError::UnknownParent(_) => codes::UNKNOWN_PARENT,
        ChainError::ReorgTooDeep { .. } => codes::REORG_TOO_DEEP,
        _ => codes::INTERNAL,
    };
    error(code, e.to_string())
}

fn storage_error(e: proctor_storage::Error) -> ErrorObjectOwned {
    error(codes::INTERNAL, e.to_string())
}

impl Rpc {
    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A blob from this node, or else from its peers (checked against the
    /// hash, then kept here with the unclaimed-blob retention).
    async fn blob_bytes(&self, hash: Hash) -> Result<Vec<u8>, ErrorObjectOwned> {
        let local = self.lock().store().blob(&hash).map_err(storage_error)?;
        if let Some(bytes) = local {
            return Ok(bytes);
        }
        if let Some(net) = &self.network
            && let Ok(Some(bytes)) = net.fetch_blob(hash).await
        {
            let c = self.lock();
            let until = c.head().height + UNCLAIMED_BLOB_BLOCKS;
            c.store()
                .put_blob_until(&bytes, until)
                .map_err(storage_error)?;
            return Ok(bytes);
        }
        Err(error(
            codes::NOT_FOUND,
            format!("no blob {hash} on this node or its peers"),
        ))
    }

    fn network(&self) -> Result<&proctor_network::Handle, ErrorObjectOwned> {
        self.network.as_ref().ok_or_else(|| {
            error(
                codes::NO_NETWORK,
                "this node runs without p2p networking (no p2p_listen in node.json)",
            )
        })
    }
}

fn network_error(e: proctor_network::Error) -> ErrorObjectOwned {
    let code = match e {
        proctor_network::Error::PeerId(..) => codes::INVALID_PARAMS,
        _ => codes::INTERNAL,
    };
    error(code, e.to_string())
}

#[async_trait]
impl ApiServer for Rpc {
    async fn chain_info(&self) -> Result<ChainInfo, ErrorObjectOwned> {
        let c = self.lock();
        let g = c.genesis();
        Ok(ChainInfo {
            chain_id: g.chain_id.clone(),
            genesis_hash: g.hash(),
            min_fee: g.params.min_fee,
            block_reward: g.params.block_reward,
            target_block_ms: g.params.target_block_ms,
            filler_module: g.params.filler_module,
            registration_blocks: g.params.registration_blocks,
            min_stake: g.params.min_stake,
            finality_depth: g.params.finality_depth,
            allow_sim_quotes: g.params.allow_sim_quotes,
            market: g.params.market.clone(),
        })
    }

    async fn head(&self) -> Result<HeadInfo, ErrorObjectOwned> {
        Ok(self.lock().head())
    }

    async fn block(&self, id: String) -> Result<BlockInfo, ErrorObjectOwned> {
        let c = self.lock();
        let block = if let Ok(h) = id.parse::<u64>() {
            c.store().block_at(h).map_err(storage_error)?
        } else if let Ok(hash) = id.parse::<Hash>() {
            c.store().block(&hash).map_err(storage_error)?
        } else {
            return Err(error(
                codes::INVALID_PARAMS,
                format!("{id:?} is neither a height nor a block hash"),
            ));
        };
        block
            .as_ref()
            .map(block_info)
            .ok_or_else(|| error(codes::NOT_FOUND, format!("no block {id}")))
    }

    async fn account(&self, address: Address) -> Result<AccountInfo, ErrorObjectOwned> {
        let c = self.lock();
        let acc = c.state().account(&address);
        let next_nonce = c.mempool.next_nonce(c.state(), &address);
        Ok(AccountInfo {
            address,
            balance: acc.balance,
            nonce: acc.nonce,
            next_nonce,
        })
    }

    async fn send_transaction(&self, tx: String) -> Result<Hash, ErrorObjectOwned> {
        let stx: SignedTransaction = from_hex("signed transaction", &tx)?;
        let hash = self
            .lock()
            .submit_tx(stx.clone(), now_ms())
            .map_err(chain_error)?;
        if let Some(n) = &self.network {
            n.publish_tx(proctor_primitives::codec::encode(&stx));
        }
        Ok(hash)
    }

    async fn transaction(&self, hash: Hash) -> Result<TxStatus, ErrorObjectOwned> {
        let c = self.lock();
        if let Some(loc) = c.store().tx_location(&hash).map_err(storage_error)? {
            return Ok(TxStatus::from_receipt(loc.block, loc.receipt));
        }
        Ok(if c.mempool.contains(&hash) {
            TxStatus::Pending { hash }
        } else {
            TxStatus::Unknown { hash }
        })
    }

    async fn enclave(
        &self,
        identity: PublicKey,
    ) -> Result<Option<EnclaveRecord>, ErrorObjectOwned> {
        Ok(self.lock().state().enclave(&identity))
    }

    async fn blob(&self, hash: Hash) -> Result<String, ErrorObjectOwned> {
        self.blob_bytes(hash).await.map(hex::encode)
    }

    async fn put_blob(&self, data: String) -> Result<Hash, ErrorObjectOwned> {
        let bytes = hex::decode(&data)
            .map_err(|e| error(codes::INVALID_PARAMS, format!("blob is not valid hex: {e}")))?;
        if bytes.len() > MAX_BLOB {
            return Err(error(
                codes::TOO_LARGE,
                format!(
                    "blob of {} bytes exceeds the limit of {MAX_BLOB}",
                    bytes.len()
                ),
            ));
        }
        let c = self.lock();
        let until = c.head().height + UNCLAIMED_BLOB_BLOCKS;
        c.store()
            .put_blob_until(&bytes, until)
            .map_err(storage_error)
    }

    async fn compose_blob(&self, chunks: Vec<Hash>) -> Result<Hash, ErrorObjectOwned> {
        let c = self.lock();
        let mut whole = Vec::new();
        for h in &chunks {
            let part =
                c.store().blob(h).map_err(storage_error)?.ok_or_else(|| {
                    error(codes::NOT_FOUND, format!("no chunk {h}: upload it first"))
                })?;
            if whole.len() + part.len() > MAX_COMPOSED {
                return Err(error(
                    codes::TOO_LARGE,
                    format!("the joined blob would exceed the limit of {MAX_COMPOSED} bytes"),
                ));
            }
            whole.extend_from_slice(&part);
        }
        let until = c.head().height + UNCLAIMED_BLOB_BLOCKS;
        c.store()
            .put_blob_until(&whole, until)
            .map_err(storage_error)
    }

    async fn blob_size(&self, hash: Hash) -> Result<u64, ErrorObjectOwned> {
        Ok(self.blob_bytes(hash).await?.len() as u64)
    }

    async fn blob_range(
        &self,
        hash: Hash,
        offset: u64,
        len: u64,
    ) -> Result<String, ErrorObjectOwned> {
        let bytes = self.blob_bytes(hash).await?;
        let start = (offset as usize).min(bytes.len());
        let len = (len as usize).min(proctor_rpc::BLOB_CHUNK);
        let end = start.saturating_add(len).min(bytes.len());
        Ok(hex::encode(&bytes[start..end]))
    }

    async fn job(&self, id: u64) -> Result<JobRecord, ErrorObjectOwned> {
        self.lock()
            .state()
            .job(id)
            .ok_or_else(|| error(codes::NOT_FOUND, format!("no job {id}")))
    }

    async fn jobs(
        &self,
        requester: Address,
        limit: Option<u32>,
    ) -> Result<Vec<JobRecord>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let limit = limit.unwrap_or(100).min(1_000) as usize;
        let next = s.market_index().next_job;
        Ok((0..next)
            .rev()
            .filter_map(|id| s.job(id))
            .filter(|j| j.requester == requester)
            .take(limit)
            .collect())
    }

    async fn worker_jobs(&self, identity: PublicKey) -> Result<Vec<JobRecord>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        Ok(s.market_index()
            .active
            .iter()
            .filter_map(|id| s.job(*id))
            .filter(|j| {
                j.assignments
                    .iter()
                    .any(|a| a.worker == identity && a.key.is_some() && a.report.is_none())
            })
            .collect())
    }

    async fn offer(&self, identity: PublicKey) -> Result<Option<WorkerOffer>, ErrorObjectOwned> {
        Ok(self.lock().state().offer(&identity))
    }

    async fn get_work(&self, miner: Address) -> Result<WorkInfo, ErrorObjectOwned> {
        Ok(self.lock().work(miner, now_ms()))
    }

    async fn submit_work(&self, template: Hash, proof: String) -> Result<Hash, ErrorObjectOwned> {
        let proof: PouwProof = from_hex("pouw proof", &proof)?;
        let (hash, head) = {
            let mut c = self.lock();
            let hash = c
                .submit_work(template, proof, now_ms())
                .map_err(chain_error)?;
            (hash, c.head())
        };
        tracing::info!(height = head.height, %hash, "sealed block");
        let _ = self.heads.send(head);
        if let Some(n) = &self.network {
            let block = self.lock().store().block(&hash).map_err(storage_error)?;
            if let Some(b) = block {
                n.publish_block(proctor_primitives::codec::encode(&b));
            }
        }
        Ok(hash)
    }

    async fn supply(&self) -> Result<SupplyInfo, ErrorObjectOwned> {
        let c = self.lock();
        let head = c.head();
        Ok(SupplyInfo {
            height: head.height,
            hash: head.hash,
            total_supply: proctor_primitives::Amount(c.state().total_supply()),
        })
    }

    async fn net_info(&self) -> Result<NetInfo, ErrorObjectOwned> {
        let s = self.network()?.status().await.map_err(network_error)?;
        Ok(NetInfo {
            peer_id: s.local.to_string(),
            listen: s.listen.iter().map(ToString::to_string).collect(),
            peers: s
                .connected
                .into_iter()
                .map(|p| PeerInfo {
                    id: p.id.to_string(),
                    address: p.address.map(|a| a.to_string()),
                    points: p.points,
                })
                .collect(),
            banned: s
                .banned
                .into_iter()
                .map(|b| BannedPeer {
                    id: b.id.to_string(),
                    reason: b.reason,
                    seconds_left: b.seconds_left,
                })
                .collect(),
            known: s.known,
            orphans: self.lock().orphan_count(),
        })
    }

    async fn ban_peer(&self, peer: String, reason: Option<String>) -> Result<(), ErrorObjectOwned> {
        let net = self.network()?;
        let id = proctor_network::parse_peer(&peer).map_err(network_error)?;
        if id == net.peer_id {
            return Err(error(codes::INVALID_PARAMS, "a node cannot ban itself"));
        }
        let reason = reason.unwrap_or_else(|| "banned by the operator".into());
        net.ban(id, reason).await.map_err(network_error)
    }

    async fn unban_peer(&self, peer: String) -> Result<bool, ErrorObjectOwned> {
        let net = self.network()?;
        let id = proctor_network::parse_peer(&peer).map_err(network_error)?;
        net.unban(id).await.map_err(network_error)
    }

    async fn subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut rx = self.heads.subscribe();
        let sink = pending.accept().await?;
        loop {
            match rx.recv().await {
                Ok(head) => {
                    let msg = SubscriptionMessage::from(serde_json::value::to_raw_value(&head)?);
                    if sink.send(msg).await.is_err() {
                        return Ok(());
                    }
                }
                // A slow subscriber skips heads rather than holding memory.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}

/// Starts the RPC server on `addr`.
pub async fn serve(
    addr: SocketAddr,
    chain: Arc<Mutex<Chain>>,
    heads: broadcast::Sender<HeadInfo>,
    network: Option<proctor_network::Handle>,
) -> Result<(ServerHandle, SocketAddr), Error> {
    let config = ServerConfig::builder()
        .max_request_body_size(32 << 20)
        .max_connections(256)
        .build();
    let server = ServerBuilder::with_config(config)
        .build(addr)
        .await
        .map_err(|e| Error::Rpc {
            addr,
            message: e.to_string(),
        })?;
    let local = server.local_addr().map_err(|e| Error::Rpc {
        addr,
        message: e.to_string(),
    })?;
    let handle = server.start(
        Rpc {
            chain,
            heads,
            network,
        }
        .into_rpc(),
    );
    Ok((handle, local))
}
