//! Prometheus metrics of a node, served as text at `GET /metrics` of the
//! RPC address (the names are listed in `docs/metrics.md`).
//!
//! Most series are gauges read from the chain when scraped (heights,
//! mempool, orphans, jobs, blobs, peers), so they cost nothing between
//! scrapes. Counters and the import-time histogram are updated where the
//! thing happens: the RPC middleware counts every request by method and
//! result code, and the chain times every block import. Labels are bounded:
//! a method the node does not serve is counted as `unknown`, so a caller
//! cannot grow the series without limit.

use crate::chain::Chain;
use jsonrpsee::server::middleware::rpc::{
    Batch, MethodResponse, Notification, Request, RpcServiceT,
};
use proctor_rpc::pages::{PROMETHEUS_TEXT, PagesLayer, page};
use proctor_state::jobs::JobState;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

type Labels = Vec<(&'static str, String)>;

/// Buckets of the block import time, in seconds: 1 ms to about 33 s.
pub fn import_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    head_height: Gauge,
    finalized_height: Gauge,
    mempool_transactions: Gauge,
    mempool_bytes: Gauge,
    orphans: Gauge,
    side_blocks: Gauge,
    jobs: Family<Labels, Gauge>,
    blobs: Gauge,
    blob_bytes: Gauge,
    peers: Gauge,
    banned_peers: Gauge,
    rpc_requests: Family<Labels, Counter>,
    /// The methods the node serves (anything else is `unknown`).
    methods: BTreeSet<String>,
}

impl Metrics {
    /// Registers every series; `import` is the chain's import-time histogram.
    pub fn new(import: Histogram, methods: impl IntoIterator<Item = String>) -> Metrics {
        let mut registry = Registry::with_prefix("proctor");
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let head_height = gauge("head_height", "Height of the chain's tip");
        let finalized_height = gauge(
            "finalized_height",
            "Height of the last final block (tip minus the finality depth)",
        );
        let mempool_transactions = gauge("mempool_transactions", "Transactions in the mempool");
        let mempool_bytes = gauge(
            "mempool_bytes",
            "Encoded bytes of the mempool's transactions",
        );
        let orphans = gauge("orphan_blocks", "Blocks waiting for their parent");
        let side_blocks = gauge(
            "side_blocks",
            "Validated blocks stored off the canonical chain",
        );
        let blobs = gauge("blobs", "Blobs in the blob store");
        let blob_bytes = gauge("blob_bytes", "Bytes in the blob store");
        let peers = gauge("peers", "Connected p2p peers");
        let banned_peers = gauge("banned_peers", "Peers currently banned");
        let jobs = Family::<Labels, Gauge>::default();
        registry.register("jobs", "Open jobs on the market by state", jobs.clone());
        let rpc_requests = Family::<Labels, Counter>::default();
        registry.register(
            "rpc_requests",
            "JSON-RPC requests by method and result code (0: success; batch entries: code batch)",
            rpc_requests.clone(),
        );
        registry.register(
            "block_import_seconds",
            "Time to validate and commit a block",
            import,
        );
        Metrics {
            registry,
            head_height,
            finalized_height,
            mempool_transactions,
            mempool_bytes,
            orphans,
            side_blocks,
            jobs,
            blobs,
            blob_bytes,
            peers,
            banned_peers,
            rpc_requests,
            methods: methods.into_iter().collect(),
        }
    }

    /// Counts one request to `method` answered with `code` (0: success).
    pub fn count_request(&self, method: &str, code: &str) {
        let method = if self.methods.contains(method) {
            method.to_string()
        } else {
            "unknown".to_string()
        };
        self.rpc_requests
            .get_or_create(&vec![("method", method), ("code", code.to_string())])
            .inc();
    }

    /// Reads the chain's gauges.
    pub fn observe_chain(&self, chain: &Chain) {
        let head = chain.head();
        let depth = chain.genesis().params.finality_depth;
        self.head_height.set(head.height as i64);
        self.finalized_height
            .set(head.height.saturating_sub(depth) as i64);
        let (n, bytes) = chain.mempool_size();
        self.mempool_transactions.set(n as i64);
        self.mempool_bytes.set(bytes as i64);
        self.orphans.set(chain.orphan_count() as i64);
        if let Ok((n, _)) = chain.store().side_blocks() {
            self.side_blocks.set(n as i64);
        }
        if let Ok((n, bytes)) = chain.store().blob_stats() {
            self.blobs.set(n as i64);
            self.blob_bytes.set(bytes as i64);
        }
        let state = chain.state();
        let index = state.market_index();
        let mut by_state = [(JobState::Pending, index.pending.len() as i64)].to_vec();
        for s in [JobState::Assigned, JobState::Running] {
            let n = index
                .active
                .iter()
                .filter(|id| state.job(**id).is_some_and(|j| j.state == s))
                .count();
            by_state.push((s, n as i64));
        }
        for (s, n) in by_state {
            let label = format!("{s:?}").to_lowercase();
            self.jobs.get_or_create(&vec![("state", label)]).set(n);
        }
    }

    /// Sets the p2p gauges.
    pub fn observe_network(&self, peers: usize, banned: usize) {
        self.peers.set(peers as i64);
        self.banned_peers.set(banned as i64);
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// What a scrape reads: the chain, the network, and the metrics to fill.
#[derive(Clone)]
pub struct Scrape {
    pub metrics: Arc<Metrics>,
    pub chain: Arc<Mutex<Chain>>,
    pub network: Option<proctor_network::Handle>,
}

impl Scrape {
    /// Fills the gauges and renders the text.
    pub async fn render(&self) -> String {
        if let Some(net) = &self.network
            && let Ok(s) = net.status().await
        {
            self.metrics
                .observe_network(s.connected.len(), s.banned.len());
        }
        {
            let chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
            self.metrics.observe_chain(&chain);
        }
        self.metrics.render()
    }
}

/// The node's pages in front of JSON-RPC: `GET /metrics` answers with the
/// metrics, `GET /` and the explorer's files with the explorer (when on).
pub fn pages(explorer: bool, scrape: Scrape) -> PagesLayer {
    PagesLayer::new(move |path| {
        if path == "/metrics" {
            let scrape = scrape.clone();
            return Some(Box::pin(async move {
                page(scrape.render().await, PROMETHEUS_TEXT)
            }));
        }
        let (body, kind) = explorer.then(|| crate::explorer::file(path)).flatten()?;
        Some(Box::pin(async move { page(body, kind) }))
    })
}

/// JSON-RPC middleware that counts requests by method and result code.
#[derive(Clone)]
pub struct CountRequests<S> {
    pub service: S,
    pub metrics: Arc<Metrics>,
}

impl<S> RpcServiceT for CountRequests<S>
where
    S: crate::rpc::Inner,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let method = req.method_name().to_string();
        let (service, metrics) = (self.service.clone(), self.metrics.clone());
        async move {
            let res = service.call(req).await;
            let code = res.as_error_code().unwrap_or(0);
            metrics.count_request(&method, &code.to_string());
            res
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        for entry in batch.iter().flatten() {
            if let jsonrpsee::server::middleware::rpc::BatchEntry::Call(req) = entry {
                self.metrics.count_request(req.method_name(), "batch");
            }
        }
        self.service.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.notification(n)
    }
}
