//! The JSON-RPC server: [`proctor_rpc::ApiServer`] over the chain.

use crate::chain::{Chain, ChainError};
use crate::mempool::AdmitError;
use crate::metrics::{CountRequests, Metrics, Scrape};
use crate::{Error, now_ms};
use jsonrpsee::core::{SubscriptionResult, async_trait};
use jsonrpsee::server::middleware::rpc::{MethodResponse, RpcServiceBuilder, RpcServiceT};
use jsonrpsee::server::{
    BatchRequestConfig, PendingSubscriptionSink, ServerBuilder, ServerConfig, ServerHandle,
    SubscriptionMessage,
};
use jsonrpsee::types::ErrorObjectOwned;
use proctor_primitives::{Address, Hash, PublicKey};
use proctor_rpc::{
    AccountInfo, AdminServer, ApiServer, BannedPeer, BlockInfo, ChainInfo, ContractCode,
    EnclaveQuote, HeadInfo, JOBS_SCAN, JobsPage, NetInfo, PeerInfo, PouwInfo, RootExchange,
    SupplyInfo, TxStatus, WorkInfo, codes, error, error_in, for_input, from_hex,
};
use proctor_state::jobs::{JobRecord, WorkerOffer};
use proctor_state::oracle::OracleRequest;
use proctor_state::{Block, EnclaveRecord, PouwProof, SignedTransaction};

/// The service an RPC middleware of the node wraps: every layer answers
/// plain method responses and can be cloned into each request's future.
pub trait Inner:
    RpcServiceT<
        MethodResponse = MethodResponse,
        BatchResponse = MethodResponse,
        NotificationResponse = MethodResponse,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Inner for S where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

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

/// Entries in one JSON-RPC batch request, at most.
pub const MAX_BATCH: u32 = 1_000;
/// Largest request body (room for a 12 MiB blob as hex).
const MAX_BODY: u32 = 32 << 20;

#[derive(Clone)]
struct Rpc {
    chain: Arc<Mutex<Chain>>,
    heads: broadcast::Sender<HeadInfo>,
    network: Option<proctor_network::Handle>,
    /// BLAKE3 of the admin token: compared without revealing where a guess differs.
    admin: Hash,
}

/// A chain error as RPC: its stable code, and `data` naming `input` (the
/// parameter that failed; a stale template is always `template`).
fn chain_error(e: ChainError, input: &str) -> ErrorObjectOwned {
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
        _ => return error(codes::INTERNAL, e.to_string()),
    };
    let input = match e {
        ChainError::StaleTemplate(_) => "template",
        _ => input,
    };
    error_in(code, e.to_string(), input)
}

fn storage_error(e: proctor_storage::Error) -> ErrorObjectOwned {
    error(codes::INTERNAL, e.to_string())
}

impl Rpc {
    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store and the height an upload's retention counts from, taken
    /// under the chain's lock; blob work (hashing, copying) runs without it.
    fn blob_store(&self) -> (proctor_storage::Store, u64) {
        let c = self.lock();
        (c.store().clone(), c.head().height + UNCLAIMED_BLOB_BLOCKS)
    }

    /// Checks an `admin_*` call's token.
    fn authorize(&self, token: &str) -> Result<(), ErrorObjectOwned> {
        if Hash::of(token.trim().as_bytes()) == self.admin {
            Ok(())
        } else {
            Err(error_in(
                codes::UNAUTHORIZED,
                format!(
                    "wrong admin token: admin_* methods need the token in the node's {}",
                    proctor_rpc::ADMIN_TOKEN_FILE
                ),
                "token",
            ))
        }
    }

    /// A blob from this node, or else from its peers (checked against the
    /// hash, then kept here with the unclaimed-blob retention).
    async fn blob_bytes(&self, hash: Hash) -> Result<Vec<u8>, ErrorObjectOwned> {
        let (store, until) = self.blob_store();
        if let Some(bytes) = store.blob(&hash).map_err(storage_error)? {
            return Ok(bytes);
        }
        if let Some(net) = &self.network
            && let Ok(Some(bytes)) = net.fetch_blob(hash).await
        {
            store.put_blob_until(&bytes, until).map_err(storage_error)?;
            return Ok(bytes);
        }
        Err(error_in(
            codes::NOT_FOUND,
            format!("no blob {hash} on this node or its peers"),
            "hash",
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
            return Err(error_in(
                codes::INVALID_PARAMS,
                format!("{id:?} is neither a height nor a block hash"),
                "id",
            ));
        };
        block
            .as_ref()
            .map(block_info)
            .ok_or_else(|| error_in(codes::NOT_FOUND, format!("no block {id}"), "id"))
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
        let stx: SignedTransaction =
            from_hex("signed transaction", &tx).map_err(|e| for_input(e, "tx"))?;
        let hash = self
            .lock()
            .submit_tx(stx.clone(), now_ms())
            .map_err(|e| chain_error(e, "tx"))?;
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

    async fn enclave_quote(&self, identity: PublicKey) -> Result<EnclaveQuote, ErrorObjectOwned> {
        let c = self.lock();
        // A withdrawn registration's quote too: old blocks it mined are
        // checked against it.
        let rec = c
            .state()
            .enclave(&identity)
            .or_else(|| c.state().retired_enclave(&identity))
            .ok_or_else(|| {
                error_in(
                    codes::NOT_FOUND,
                    format!("enclave {identity} is not registered"),
                    "identity",
                )
            })?;
        let (quote, quoted_at_ms) = match rec.registration_tx {
            None => {
                let g = c.genesis();
                let e = g
                    .enclaves
                    .iter()
                    .find(|e| e.identity == identity)
                    .ok_or_else(|| {
                        error(
                            codes::INTERNAL,
                            format!("genesis enclave {identity} not in the genesis"),
                        )
                    })?;
                (e.quote.clone(), g.timestamp)
            }
            Some(tx) => {
                let missing = || {
                    error_in(
                        codes::NOT_FOUND,
                        format!(
                            "the registration transaction {tx} of {identity} is not stored here"
                        ),
                        "identity",
                    )
                };
                let loc = c
                    .store()
                    .tx_location(&tx)
                    .map_err(storage_error)?
                    .ok_or_else(missing)?;
                let block = c
                    .store()
                    .block(&loc.block)
                    .map_err(storage_error)?
                    .ok_or_else(missing)?;
                let quote = block
                    .txs
                    .iter()
                    .find(|t| t.hash() == tx)
                    .and_then(|t| match &t.tx.call {
                        proctor_state::Call::Registry(
                            proctor_state::registry::Call::RegisterEnclave { quote, .. },
                        ) => Some(quote.clone()),
                        _ => None,
                    })
                    .ok_or_else(missing)?;
                (quote, block.header.template.timestamp)
            }
        };
        Ok(EnclaveQuote {
            identity,
            encryption_key: rec.encryption_key,
            operator: rec.operator,
            expires_at: rec.expires_at,
            quote: proctor_rpc::to_hex(&quote),
            quoted_at_ms,
            in_genesis: rec.registration_tx.is_none(),
        })
    }

    async fn genesis(&self) -> Result<proctor_state::Genesis, ErrorObjectOwned> {
        Ok(self.lock().genesis().clone())
    }

    async fn blob(&self, hash: Hash) -> Result<String, ErrorObjectOwned> {
        self.blob_bytes(hash).await.map(hex::encode)
    }

    async fn put_blob(&self, data: String) -> Result<Hash, ErrorObjectOwned> {
        let bytes = hex::decode(&data).map_err(|e| {
            error_in(
                codes::INVALID_PARAMS,
                format!("blob is not valid hex: {e}"),
                "data",
            )
        })?;
        if bytes.len() > MAX_BLOB {
            return Err(error_in(
                codes::TOO_LARGE,
                format!(
                    "blob of {} bytes exceeds the limit of {MAX_BLOB}",
                    bytes.len()
                ),
                "data",
            ));
        }
        let (store, until) = self.blob_store();
        store.put_blob_until(&bytes, until).map_err(storage_error)
    }

    async fn compose_blob(&self, chunks: Vec<Hash>) -> Result<Hash, ErrorObjectOwned> {
        // Each chunk is an upload of at most one chunk's size, used once: so
        // the joined blob is never larger than the bytes actually uploaded
        // (a list naming one chunk many times, or joined blobs as chunks,
        // would multiply storage for free).
        let mut seen = std::collections::BTreeSet::new();
        if let Some(h) = chunks.iter().find(|h| !seen.insert(**h)) {
            return Err(error_in(
                codes::INVALID_PARAMS,
                format!("chunk {h} is named twice: each chunk may be joined once"),
                "chunks",
            ));
        }
        if chunks.len() > MAX_COMPOSED.div_ceil(proctor_rpc::BLOB_CHUNK / 2) {
            return Err(error_in(
                codes::TOO_LARGE,
                format!("{} chunks are more than a joined blob holds", chunks.len()),
                "chunks",
            ));
        }
        let (store, until) = self.blob_store();
        tokio::task::spawn_blocking(move || {
            let mut whole = Vec::new();
            for h in &chunks {
                let part = store.blob(h).map_err(storage_error)?.ok_or_else(|| {
                    error_in(
                        codes::NOT_FOUND,
                        format!("no chunk {h}: upload it first"),
                        "chunks",
                    )
                })?;
                if part.len() > proctor_rpc::BLOB_CHUNK {
                    return Err(error_in(
                        codes::TOO_LARGE,
                        format!(
                            "chunk {h} has {} bytes: chunks are at most {}",
                            part.len(),
                            proctor_rpc::BLOB_CHUNK
                        ),
                        "chunks",
                    ));
                }
                if whole.len() + part.len() > MAX_COMPOSED {
                    return Err(error_in(
                        codes::TOO_LARGE,
                        format!("the joined blob would exceed the limit of {MAX_COMPOSED} bytes"),
                        "chunks",
                    ));
                }
                whole.extend_from_slice(&part);
            }
            store.put_blob_until(&whole, until).map_err(storage_error)
        })
        .await
        .map_err(|e| error(codes::INTERNAL, format!("composing the blob failed: {e}")))?
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
            .ok_or_else(|| error_in(codes::NOT_FOUND, format!("no job {id}"), "id"))
    }

    async fn jobs(
        &self,
        requester: Address,
        limit: Option<u32>,
        before: Option<u64>,
    ) -> Result<JobsPage, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let limit = limit.unwrap_or(100).clamp(1, 1_000) as usize;
        let end = before.unwrap_or(u64::MAX).min(s.market_index().next_job);
        let floor = end.saturating_sub(JOBS_SCAN);
        let mut jobs = Vec::new();
        let mut id = end;
        while id > floor && jobs.len() < limit {
            id -= 1;
            if let Some(j) = s.job(id).filter(|j| j.requester == requester) {
                jobs.push(j);
            }
        }
        Ok(JobsPage {
            jobs,
            next: (id > 0).then_some(id),
        })
    }

    async fn open_jobs(&self) -> Result<Vec<JobRecord>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let index = s.market_index();
        Ok(index
            .pending
            .iter()
            .chain(&index.active)
            .take(proctor_rpc::OPEN_JOBS)
            .filter_map(|id| s.job(*id))
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

    async fn oracle_request(&self, id: u64) -> Result<OracleRequest, ErrorObjectOwned> {
        self.lock()
            .state()
            .oracle_request(id)
            .ok_or_else(|| error_in(codes::NOT_FOUND, format!("no oracle request {id}"), "id"))
    }

    async fn oracle_requests(
        &self,
        requester: Option<Address>,
        limit: Option<u32>,
    ) -> Result<Vec<OracleRequest>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let limit = limit.unwrap_or(100).clamp(1, 1_000) as usize;
        let end = s.oracle_next_id();
        let floor = end.saturating_sub(JOBS_SCAN);
        Ok((floor..end)
            .rev()
            .filter_map(|id| s.oracle_request(id))
            .filter(|r| requester.is_none_or(|a| r.requester == a))
            .take(limit)
            .collect())
    }

    async fn oracle_pending(
        &self,
        identity: PublicKey,
    ) -> Result<Vec<OracleRequest>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        Ok(s.oracle_pending(&identity)
            .into_iter()
            .filter_map(|id| s.oracle_request(id))
            .collect())
    }

    async fn oracle_providers(&self) -> Result<Vec<EnclaveRecord>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let next = c.head().height + 1;
        Ok(s.oracle_providers(next)
            .iter()
            .filter_map(|id| s.enclave(id))
            .collect())
    }

    async fn contract(
        &self,
        id: u64,
    ) -> Result<proctor_state::contracts::ContractInfo, ErrorObjectOwned> {
        self.lock()
            .state()
            .contract(id)
            .ok_or_else(|| error_in(codes::NOT_FOUND, format!("no contract {id}"), "id"))
    }

    async fn contracts(
        &self,
        executor: Option<PublicKey>,
        limit: Option<u32>,
    ) -> Result<Vec<proctor_state::contracts::ContractInfo>, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let limit = limit.unwrap_or(100).clamp(1, 1_000) as usize;
        let end = s.contracts_next_id();
        let floor = end.saturating_sub(JOBS_SCAN).max(1);
        Ok((floor..end)
            .rev()
            .filter_map(|id| s.contract(id))
            .filter(|k| executor.is_none_or(|e| k.executor == e))
            .take(limit)
            .collect())
    }

    async fn contract_code(
        &self,
        id: u64,
        era: Option<u64>,
    ) -> Result<ContractCode, ErrorObjectOwned> {
        let c = self.lock();
        let s = c.state();
        let info = s
            .contract(id)
            .ok_or_else(|| error_in(codes::NOT_FOUND, format!("no contract {id}"), "id"))?;
        Ok(ContractCode {
            code: s.contract_code(id).unwrap_or_default(),
            key_request: s.contract_key_request(id, &info.executor, era.unwrap_or(info.era)),
            key_grant: s.contract_key_grant(id, &info.executor, era.unwrap_or(info.era)),
            signed_key: s.contract_signed_key(id),
        })
    }

    async fn contract_command(
        &self,
        id: u64,
        seq: u64,
    ) -> Result<proctor_state::contracts::CommandRecord, ErrorObjectOwned> {
        self.lock()
            .state()
            .contract_command(id, seq)
            .ok_or_else(|| {
                error_in(
                    codes::NOT_FOUND,
                    format!("contract {id} has no command {seq}"),
                    "seq",
                )
            })
    }

    async fn contract_checkpoint(
        &self,
        id: u64,
    ) -> Result<Option<proctor_state::contracts::Checkpoint>, ErrorObjectOwned> {
        Ok(self.lock().state().contract_checkpoint(id))
    }

    async fn enclave_endpoint(
        &self,
        identity: PublicKey,
    ) -> Result<Option<String>, ErrorObjectOwned> {
        Ok(self.lock().state().enclave_endpoint(&identity))
    }

    async fn gatekeepers(
        &self,
    ) -> Result<proctor_state::contracts::GatekeeperSet, ErrorObjectOwned> {
        Ok(self.lock().state().gatekeepers())
    }

    async fn root_exchange(&self, enclave: PublicKey) -> Result<RootExchange, ErrorObjectOwned> {
        let (request, grant) = self.lock().state().root_exchange(&enclave);
        Ok(RootExchange { request, grant })
    }

    async fn headers(&self, from: u64, count: u32) -> Result<Vec<String>, ErrorObjectOwned> {
        let c = self.lock();
        let mut out = Vec::new();
        for h in from..from.saturating_add(u64::from(count.min(512))) {
            match c.store().block_at(h).map_err(storage_error)? {
                Some(b) => out.push(proctor_rpc::to_hex(&b.header)),
                None => break,
            }
        }
        Ok(out)
    }

    async fn contract_command_proof(
        &self,
        id: u64,
        seq: u64,
    ) -> Result<proctor_rpc::CommandProofInfo, ErrorObjectOwned> {
        let c = self.lock();
        let (record, proof) = c.state().prove_contract_command(id, seq);
        let record = record.ok_or_else(|| {
            error_in(
                codes::NOT_FOUND,
                format!("contract {id} has no command {seq}"),
                "seq",
            )
        })?;
        Ok(proctor_rpc::CommandProofInfo {
            height: c.head().height,
            record,
            proof,
        })
    }

    async fn contract_key_requests(&self) -> Result<Vec<(u64, u64)>, ErrorObjectOwned> {
        Ok(self.lock().state().contract_key_requests())
    }

    async fn contracts_awaiting_key(&self) -> Result<Vec<u64>, ErrorObjectOwned> {
        Ok(self.lock().state().contracts_awaiting_key())
    }

    async fn offer(&self, identity: PublicKey) -> Result<Option<WorkerOffer>, ErrorObjectOwned> {
        Ok(self.lock().state().offer(&identity))
    }

    async fn get_work(&self, miner: Address) -> Result<WorkInfo, ErrorObjectOwned> {
        self.lock()
            .work(miner, now_ms())
            .map_err(|e| chain_error(e, "miner"))
    }

    async fn submit_work(&self, template: Hash, proof: String) -> Result<Hash, ErrorObjectOwned> {
        let proof: PouwProof = from_hex("pouw proof", &proof).map_err(|e| for_input(e, "proof"))?;
        let (hash, head) = {
            let mut c = self.lock();
            let hash = c
                .submit_work(template, proof, now_ms())
                .map_err(|e| chain_error(e, "proof"))?;
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

#[async_trait]
impl AdminServer for Rpc {
    async fn ban_peer(
        &self,
        token: String,
        peer: String,
        reason: Option<String>,
    ) -> Result<(), ErrorObjectOwned> {
        self.authorize(&token)?;
        let net = self.network()?;
        let id = proctor_network::parse_peer(&peer).map_err(network_error)?;
        if id == net.peer_id {
            return Err(error_in(
                codes::INVALID_PARAMS,
                "a node cannot ban itself",
                "peer",
            ));
        }
        let reason = reason.unwrap_or_else(|| "banned by the operator".into());
        net.ban(id, reason).await.map_err(network_error)
    }

    async fn unban_peer(&self, token: String, peer: String) -> Result<bool, ErrorObjectOwned> {
        self.authorize(&token)?;
        let net = self.network()?;
        let id = proctor_network::parse_peer(&peer).map_err(network_error)?;
        net.unban(id).await.map_err(network_error)
    }
}

/// Requests per second per connection when `node.json` does not say.
pub const DEFAULT_RATE: u32 = 10_000;

/// How the RPC server guards itself.
pub struct Options {
    /// The token `admin_*` methods need.
    pub admin_token: String,
    /// Requests per second per connection.
    pub rate: u32,
    /// Serve the block explorer at `/`.
    pub explorer: bool,
}

/// Starts the RPC server on `addr`: `proctor_*` and `admin_*` methods,
/// Prometheus metrics at `GET /metrics` ([`crate::metrics`]),
/// batches of at most [`MAX_BATCH`], bodies of at most 32 MiB, and each
/// connection held to `options.rate` requests per second.
pub async fn serve(
    addr: SocketAddr,
    options: Options,
    chain: Arc<Mutex<Chain>>,
    heads: broadcast::Sender<HeadInfo>,
    network: Option<proctor_network::Handle>,
) -> Result<(ServerHandle, SocketAddr), Error> {
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_BODY)
        .max_response_body_size(MAX_BODY)
        .max_connections(256)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .build();
    let rpc = Rpc {
        chain: chain.clone(),
        heads,
        network: network.clone(),
        admin: Hash::of(options.admin_token.trim().as_bytes()),
    };
    let mut methods = ApiServer::into_rpc(rpc.clone());
    methods
        .merge(AdminServer::into_rpc(rpc))
        .map_err(|e| Error::Rpc {
            addr,
            message: e.to_string(),
        })?;
    // `rpc.discover`: the OpenRPC document generated from the method table,
    // which must name exactly the methods served.
    let discovery = proctor_rpc::openrpc::document();
    let documented: std::collections::BTreeSet<String> = discovery["methods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    let served: std::collections::BTreeSet<String> =
        methods.method_names().map(str::to_string).collect();
    if documented != served {
        return Err(Error::Rpc {
            addr,
            message: format!(
                "the OpenRPC document and the served methods differ: undocumented {:?}, not served {:?}",
                served.difference(&documented).collect::<Vec<_>>(),
                documented.difference(&served).collect::<Vec<_>>()
            ),
        });
    }
    methods
        .register_method("rpc.discover", move |_, _, _| discovery.clone())
        .map_err(|e| Error::Rpc {
            addr,
            message: e.to_string(),
        })?;
    let import = chain
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .import_histogram();
    let metrics = Arc::new(Metrics::new(
        import,
        methods.method_names().map(str::to_string),
    ));
    let rate = options.rate;
    let counted = metrics.clone();
    let inputs = crate::rpc_inputs::method_table();
    let middleware = RpcServiceBuilder::new()
        .layer_fn(move |service| CountRequests {
            service,
            metrics: counted.clone(),
        })
        .layer_fn(move |service| crate::rpc_limit::RateLimit::new(service, rate))
        .layer_fn(move |service| crate::rpc_inputs::NameInputs {
            service,
            methods: inputs.clone(),
        });
    let pages = crate::metrics::pages(
        options.explorer,
        Scrape {
            metrics,
            chain,
            network,
        },
    );
    let server = ServerBuilder::with_config(config)
        .set_rpc_middleware(middleware)
        .set_http_middleware(tower::ServiceBuilder::new().layer(pages))
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
    Ok((server.start(methods), local))
}

/// A block as shown over RPC.
pub fn block_info(b: &Block) -> BlockInfo {
    let t = &b.header.template;
    BlockInfo {
        height: t.height,
        hash: b.hash(),
        parent: t.parent,
        timestamp: t.timestamp,
        state_root: t.state_root,
        tx_root: t.tx_root,
        difficulty: t.difficulty,
        miner: t.miner,
        transactions: b.txs.iter().map(SignedTransaction::hash).collect(),
        pouw: b.header.pouw.as_ref().map(|p| PouwInfo {
            enclave: p.enclave,
            module: p.module,
            difficulty: t.difficulty,
            instructions: p.instructions,
            slice: p.slice,
            counter: p.counter,
        }),
    }
}
