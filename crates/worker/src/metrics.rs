//! A worker's Prometheus metrics, served at `GET /metrics` of its own
//! address (`proctor worker --metrics ADDR`; a devnet gives each worker
//! one). The names are listed in `docs/metrics.md`.
//!
//! Everything here is counted by the host from what its enclave answers
//! (each `Mine` call says how many slices and instructions it ran): useful
//! for an operator, trusted by no one else.

use proctor_rpc::jsonrpsee::server::{ServerBuilder, ServerHandle};
use proctor_rpc::pages::{PROMETHEUS_TEXT, PagesLayer, page};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The window over which instructions per second is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A worker's metrics.
pub struct Metrics {
    registry: Registry,
    pub(crate) slices: Counter,
    pub(crate) draws: Counter,
    pub(crate) instructions: Counter,
    instructions_per_second: Gauge,
    pub(crate) proofs: Counter,
    pub(crate) blocks_won: Counter,
    pub(crate) stale_proofs: Counter,
    pub(crate) tasks_completed: Counter,
    pub(crate) jobs_run: Counter,
    pub(crate) jobs_refused: Counter,
    /// Instructions and enclave time since the rate was last set.
    window: Mutex<(u64, Duration)>,
}

impl Metrics {
    /// Registers every series; `identity` labels `proctor_worker_info`.
    pub fn new(identity: &str) -> Metrics {
        let mut registry = Registry::with_prefix("proctor_worker");
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let slices = counter("slices", "Lottery slices the enclave ran");
        let draws = counter(
            "lottery_draws",
            "Lottery draws (one per slice, so equal to slices by design)",
        );
        let instructions = counter("instructions", "Metered instructions the enclave ran");
        let proofs = counter("lottery_wins", "Winning draws: PoUW proofs found");
        let blocks_won = counter("blocks_won", "Proofs the node accepted as new blocks");
        let stale_proofs = counter(
            "stale_proofs",
            "Proofs the node refused (a block at that height came first)",
        );
        let tasks_completed = counter("tasks_completed", "Filler task runs that finished");
        let jobs_run = counter("jobs_run", "Market jobs run and their results submitted");
        let jobs_refused = counter(
            "jobs_refused",
            "Market jobs not run (signed refusals and host errors)",
        );
        let instructions_per_second = Gauge::default();
        registry.register(
            "instructions_per_second",
            "Metered instructions per second of enclave time, over about the last second",
            instructions_per_second.clone(),
        );
        let info = Family::<Vec<(&'static str, String)>, Gauge>::default();
        info.get_or_create(&vec![("identity", identity.to_string())])
            .set(1);
        registry.register("info", "The worker's enclave identity (value 1)", info);
        Metrics {
            registry,
            slices,
            draws,
            instructions,
            instructions_per_second,
            proofs,
            blocks_won,
            stale_proofs,
            tasks_completed,
            jobs_run,
            jobs_refused,
            window: Mutex::new((0, Duration::ZERO)),
        }
    }

    /// Counts one `Mine` call that ran `ran` in `took`.
    pub(crate) fn observe_mine(&self, ran: proctor_enclave::Ran, took: Duration) {
        self.slices.inc_by(ran.slices.into());
        self.draws.inc_by(ran.slices.into());
        self.instructions.inc_by(ran.instructions);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.0 += ran.instructions;
        w.1 += took;
        if w.1 >= RATE_WINDOW {
            let rate = u128::from(w.0) * 1_000_000 / w.1.as_micros().max(1);
            self.instructions_per_second
                .set(i64::try_from(rate).unwrap_or(i64::MAX));
            *w = (0, Duration::ZERO);
        }
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Serves `metrics` at `GET /metrics` of `addr` (port 0: a free one).
/// Returns the address bound and the server's handle (stop it with
/// [`ServerHandle::stop`]).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let pages = PagesLayer::new(move |path| {
        (path == "/metrics").then(|| {
            let text = metrics.render();
            Box::pin(async move { page(text, PROMETHEUS_TEXT) }) as _
        })
    });
    let server = ServerBuilder::default()
        .set_http_middleware(tower::ServiceBuilder::new().layer(pages))
        .build(addr)
        .await?;
    let local = server.local_addr()?;
    let handle = server.start(proctor_rpc::jsonrpsee::RpcModule::new(()));
    Ok((local, handle))
}
