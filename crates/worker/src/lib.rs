//! The worker: the untrusted host around one enclave.
//!
//! It never holds enclave keys and never sees a secret; it moves bytes. Its
//! job, in order:
//! 1. **Register** the enclave on chain: ask the enclave for a quote whose
//!    report data binds its identity key to this chain's genesis, wrap it in a
//!    `RegisterEnclave` transaction signed by the operator's account key (who
//!    pays the fee and receives the rewards), and wait until it is included.
//!    Registrations are renewed before they expire.
//! 2. **Mine**: fetch the filler module from the node (checking its hash),
//!    load it into the enclave, and loop: get the current template from the
//!    node, let the enclave run a bounded batch of slices drawing the lottery
//!    for it, submit any winning proof, reload the task when it finishes.
//!
//! 3. **Serve oracle requests** assigned to its enclave: relay each fetch
//!    (the enclave terminates TLS; the host moves ciphertext, [`oracle`])
//!    and submit the signed datagram.
//!
//! The enclave runs on a blocking thread (mining is CPU-bound); the worker
//! talks to it only through [`proctor_enclave::Request`]/[`Response`].
#![forbid(unsafe_code)]

mod contracts;
pub mod metrics;
pub mod oracle;
pub use queries::METHOD as QUERY_METHOD;
mod queries;

use proctor_enclave::wire::Transport;
use proctor_enclave::{EnclaveInfo, MineResult, Request, Response};
use proctor_primitives::{Address, Hash, Keypair};
use proctor_rpc::ApiClient;
use proctor_rpc::jsonrpsee::core::ClientError;
use proctor_rpc::jsonrpsee::http_client::HttpClient;
use proctor_state::{Call, Transaction};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Instructions per lottery slice: the lottery costs one RNG draw per slice,
/// negligible at this size, while a win is reported within about a millisecond.
pub const SLICE: u64 = 1_000_000;
/// Slices per enclave call between template checks (about 0.1 s of work).
pub const SLICES_PER_CALL: u32 = 100;
/// Filler rounds per task run (about 3.4 million instructions each: a run
/// lasts a few seconds, and a new block restarts it sooner).
pub const FILLER_ROUNDS: &str = "10000";

/// Worker errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("node RPC: {0}")]
    Rpc(#[from] proctor_rpc::jsonrpsee::core::ClientError),
    #[error("enclave: {0}")]
    Enclave(String),
    #[error("node served module bytes whose hash is {got}, expected {expected}")]
    ModuleHash { expected: Hash, got: Hash },
    #[error("transaction {0} was not included in time")]
    RegistrationTimeout(Hash),
    #[error("transaction rejected: {0}")]
    RegistrationRejected(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a worker needs.
pub struct WorkerConfig {
    pub rpc_url: String,
    /// The operator's account: pays registration fees, receives rewards.
    pub operator: Keypair,
    /// DCAP collateral (Intel PCS/PCCS JSON) to attach to the enclave's
    /// hardware quotes, which leave the enclave without it.
    pub collateral: Option<Vec<u8>>,
    /// The capacity offered to the compute market (None: mining only).
    pub offer: Option<MarketOffer>,
}

/// What a worker offers the compute market.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketOffer {
    /// Price per instruction, in base units.
    pub price: u128,
    /// Memory for concurrent jobs, in 64 KiB pages.
    pub memory_pages: u64,
    /// Instructions of concurrent jobs.
    pub fuel: u64,
    /// Instructions per second it commits to run a job at.
    pub speed: u64,
}

/// The speed a worker offers unless told otherwise: 100 million metered
/// instructions a second, well under what the engine runs on one core.
pub const DEFAULT_SPEED: u64 = 100_000_000;

impl Default for MarketOffer {
    fn default() -> Self {
        MarketOffer {
            price: 1,
            memory_pages: 16_384,
            fuel: 100_000_000_000,
            speed: DEFAULT_SPEED,
        }
    }
}

/// An enclave's signed refusal of a job.
type Refusal = (
    proctor_state::jobs::JobRefusal,
    proctor_primitives::Signature,
);

/// How often a mining worker looks for jobs assigned to it.
const JOB_POLL: Duration = Duration::from_secs(1);

/// Moves each request to a blocking thread (mining is CPU-bound; a remote
/// enclave blocks on its socket). Shared by the worker's loop and its query
/// server (`queries`): one request at a time, in the order they lock.
#[derive(Clone)]
struct EnclaveHost {
    transport: Arc<tokio::sync::Mutex<Option<Box<dyn Transport>>>>,
}

impl EnclaveHost {
    async fn call(&self, req: Request) -> Result<Response> {
        let resp = self.with(move |t| t.call(req)).await?;
        match resp {
            Response::Error { code, message } => {
                Err(Error::Enclave(format!("{message} (code {code})")))
            }
            r => Ok(r),
        }
    }

    /// Runs `f` with the enclave on a blocking thread (the oracle relay
    /// moves bytes between a socket and the enclave there).
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Transport) -> T + Send + 'static,
    ) -> Result<T> {
        let mut slot = self.transport.clone().lock_owned().await;
        let mut t = slot
            .take()
            .ok_or_else(|| Error::Enclave("enclave lost".into()))?;
        let (t, out) = tokio::task::spawn_blocking(move || {
            let out = f(t.as_mut());
            (t, out)
        })
        .await
        .map_err(|e| Error::Enclave(e.to_string()))?;
        *slot = Some(t);
        Ok(out)
    }
}

/// Statistics of a worker run (a snapshot of its [`metrics`]).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub blocks_won: u64,
    pub stale_proofs: u64,
    pub tasks_completed: u64,
    pub jobs_run: u64,
    /// Jobs the enclave refused (signed refusals, and host errors).
    pub jobs_refused: u64,
}

/// A worker bound to one enclave and one node.
pub struct Worker {
    host: EnclaveHost,
    info: EnclaveInfo,
    client: HttpClient,
    operator: Keypair,
    collateral: Option<Vec<u8>>,
    offer: Option<MarketOffer>,
    /// When the offer was last sent (not resent while it may still be pending).
    offer_sent: Option<Instant>,
    /// Jobs whose result this worker already submitted (until the chain stops listing them).
    reported: std::collections::BTreeSet<u64>,
    /// The job the enclave is mining with, if any.
    current_job: Option<u64>,
    /// Oracle requests whose datagram this worker submitted (until the
    /// chain stops listing them as pending).
    oracle_served: std::collections::BTreeSet<u64>,
    /// The chain's genesis hash and extra oracle roots, read once.
    oracle_chain: Option<(Hash, Vec<String>)>,
    /// Confidential contracts: what this worker does as gatekeeper or executor.
    contracts: contracts::Duties,
    metrics: Arc<metrics::Metrics>,
    /// Test-only misbehaviour: how the host alters each job it loads.
    #[cfg(feature = "test-faults")]
    tamper: Option<fn(&mut proctor_enclave::JobTicket)>,
    /// Test-only misbehaviour: the oracle relay flips server bytes.
    #[cfg(feature = "test-faults")]
    tamper_oracle: bool,
}

impl Worker {
    /// A worker around `enclave`: an in-process [`Enclave`] or a
    /// [`RemoteEnclave`](proctor_enclave::wire::RemoteEnclave) in another process.
    pub fn new(mut enclave: Box<dyn Transport>, config: WorkerConfig) -> Result<Worker> {
        let info = match enclave.call(Request::Info) {
            Response::Info(i) => i,
            Response::Error { code, message } => {
                return Err(Error::Enclave(format!("{message} (code {code})")));
            }
            _ => return Err(Error::Enclave("unexpected answer to Info".into())),
        };
        let client = proctor_rpc::http_client(&config.rpc_url)?;
        Ok(Worker {
            host: EnclaveHost {
                transport: Arc::new(tokio::sync::Mutex::new(Some(enclave))),
            },
            client,
            operator: config.operator,
            collateral: config.collateral,
            offer: config.offer,
            offer_sent: None,
            reported: Default::default(),
            current_job: None,
            oracle_served: Default::default(),
            oracle_chain: None,
            contracts: Default::default(),
            metrics: Arc::new(metrics::Metrics::new(&info.identity.to_string())),
            info,
            #[cfg(feature = "test-faults")]
            tamper: None,
            #[cfg(feature = "test-faults")]
            tamper_oracle: false,
        })
    }

    /// Test-only: this host alters every job ticket with `f` before its
    /// enclave sees it, as a malicious host would (to test that the enclave
    /// refuses and the chain pays no one for it). Exists only in builds with
    /// the `test-faults` feature; others refuse.
    pub fn tamper_jobs_for_testing(
        &mut self,
        f: fn(&mut proctor_enclave::JobTicket),
    ) -> Result<()> {
        #[cfg(feature = "test-faults")]
        {
            self.tamper = Some(f);
            Ok(())
        }
        #[cfg(not(feature = "test-faults"))]
        {
            let _ = f;
            Err(Error::Enclave(
                "this build has no test faults (feature `test-faults`)".into(),
            ))
        }
    }

    /// Test-only: this host's oracle relay flips a bit in what the server
    /// sends after its first flight, as a host forging a response would (to
    /// test that the enclave's TLS catches it and the chain records a `tls`
    /// failure, not the altered data). Only in builds with `test-faults`.
    pub fn tamper_oracle_for_testing(&mut self) -> Result<()> {
        #[cfg(feature = "test-faults")]
        {
            self.tamper_oracle = true;
            Ok(())
        }
        #[cfg(not(feature = "test-faults"))]
        Err(Error::Enclave(
            "this build has no test faults (feature `test-faults`)".into(),
        ))
    }

    /// The worker's metrics (serve them with [`metrics::serve`]).
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        self.metrics.clone()
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> Stats {
        let m = &self.metrics;
        Stats {
            blocks_won: m.blocks_won.get(),
            stale_proofs: m.stale_proofs.get(),
            tasks_completed: m.tasks_completed.get(),
            jobs_run: m.jobs_run.get(),
            jobs_refused: m.jobs_refused.get(),
        }
    }

    pub fn info(&self) -> &EnclaveInfo {
        &self.info
    }

    fn miner(&self) -> Address {
        self.operator.public().address()
    }

    /// Registers the enclave unless a registration valid for a while exists.
    pub async fn ensure_registered(&mut self, stop: &AtomicBool) -> Result<()> {
        let chain = self.client.chain_info().await?;
        let head = self.client.head().await?;
        if let Some(rec) = self.client.enclave(self.info.identity).await? {
            if rec.unbonding_until.is_some() {
                return Err(Error::RegistrationRejected(
                    "the enclave was deregistered; it cannot mine again".into(),
                ));
            }
            let margin = (chain.registration_blocks / 10).max(1);
            if rec.expires_at > head.height + margin {
                return Ok(());
            }
        }
        self.register(stop).await.map(|_| ())
    }

    /// Registers the enclave, or renews its registration, and waits for
    /// inclusion; returns the height. A new registration locks the chain's
    /// minimum stake; a renewal adds none.
    pub async fn register(&mut self, stop: &AtomicBool) -> Result<u64> {
        let chain = self.client.chain_info().await?;
        let existing = self.client.enclave(self.info.identity).await?;
        let stake = if existing.is_some() {
            proctor_primitives::Amount::ZERO
        } else {
            chain.min_stake
        };
        // Valid for the longest period the chain allows from now (the
        // transaction lands later, so this stays within the limit).
        let expires_at = self.client.head().await?.height + chain.registration_blocks;
        let Response::Quote(quote) = self
            .host
            .call(Request::RegistrationQuote {
                operator: self.operator.public().address(),
                genesis: chain.genesis_hash,
                expires_at,
            })
            .await?
        else {
            return Err(Error::Enclave(
                "unexpected answer to a quote request".into(),
            ));
        };
        let quote = quote.with_collateral(self.collateral.as_deref());
        let hash = self
            .send_call(Call::Registry(
                proctor_state::registry::Call::RegisterEnclave {
                    identity: self.info.identity,
                    encryption_key: self.info.encryption_key,
                    expires_at,
                    quote,
                    stake,
                },
            ))
            .await?;
        tracing::info!(identity = %self.info.identity, tx = %hash, "registration sent");
        let height = self.wait_included(hash, stop).await?;
        tracing::info!(height, "enclave registered");
        Ok(height)
    }

    /// Signs `call` with the operator's key and submits it; returns its hash.
    pub async fn send_call(&self, call: Call) -> Result<Hash> {
        let chain = self.client.chain_info().await?;
        let acc = self.client.account(self.miner()).await?;
        let tx = Transaction {
            chain: chain.genesis_hash,
            signer: self.operator.public(),
            nonce: acc.next_nonce,
            fee: chain.min_fee,
            call,
        }
        .sign(&self.operator);
        self.client
            .send_transaction(proctor_rpc::to_hex(&tx))
            .await
            .map_err(|e| match e {
                ClientError::Call(obj) => {
                    Error::RegistrationRejected(format!("{} (code {})", obj.message(), obj.code()))
                }
                other => Error::Rpc(other),
            })
    }

    /// Waits (at most two minutes) until transaction `hash` is in a block;
    /// returns the block's height.
    pub async fn wait_included(&self, hash: Hash, stop: &AtomicBool) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            match self.client.transaction(hash).await? {
                proctor_rpc::TxStatus::Included { height, .. } => return Ok(height),
                proctor_rpc::TxStatus::Dropped { code, reason, .. } => {
                    return Err(Error::RegistrationRejected(format!(
                        "{reason} (code {code})"
                    )));
                }
                proctor_rpc::TxStatus::Unknown { .. } => {
                    return Err(Error::RegistrationRejected(
                        "the node no longer knows the transaction".into(),
                    ));
                }
                proctor_rpc::TxStatus::Pending { .. } => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
            }
        }
        Err(Error::RegistrationTimeout(hash))
    }

    /// Publishes (or updates) the market offer, if one is configured and the
    /// chain does not have it. Does not wait for inclusion (a lone worker
    /// has to mine the block that includes it); mining calls it again
    /// periodically until the chain shows the offer.
    pub async fn ensure_offer(&mut self) -> Result<()> {
        let Some(offer) = self.offer else {
            return Ok(());
        };
        let current = self.client.offer(self.info.identity).await?;
        let same = current.is_some_and(|c| {
            (c.price.0, c.memory_pages, c.fuel, c.speed)
                == (offer.price, offer.memory_pages, offer.fuel, offer.speed)
        });
        let recently = self
            .offer_sent
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        if same || recently {
            return Ok(());
        }
        let hash = self
            .send_call(Call::Market(proctor_state::market::Call::SetOffer {
                identity: self.info.identity,
                price: proctor_primitives::Amount(offer.price),
                memory_pages: offer.memory_pages,
                fuel: offer.fuel,
                speed: offer.speed,
            }))
            .await;
        match hash {
            Ok(tx) => {
                self.offer_sent = Some(Instant::now());
                tracing::info!(price = offer.price, %tx, "market offer sent");
            }
            // Already pending from an earlier call: nothing to do.
            Err(Error::RegistrationRejected(m)) if m.contains("already") => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Looks for work on the market: if the job being mined is no longer
    /// this enclave's, drops it; if none is running, loads the next one
    /// assigned to this enclave with its key posted. Returns whether the
    /// enclave's task changed (the filler must then be reloaded later).
    async fn check_jobs(&mut self) -> Result<bool> {
        let jobs = self.client.worker_jobs(self.info.identity).await?;
        let listed: std::collections::BTreeSet<u64> = jobs.iter().map(|j| j.id).collect();
        self.reported.retain(|id| listed.contains(id));
        if let Some(id) = self.current_job
            && !listed.contains(&id)
        {
            tracing::info!(job = id, "job no longer assigned here; dropping it");
            self.current_job = None;
            return Ok(true);
        }
        if self.current_job.is_some() {
            return Ok(false);
        }
        let Some(j) = jobs.into_iter().find(|j| !self.reported.contains(&j.id)) else {
            return Ok(false);
        };
        match self.load_job(&j).await {
            Ok(None) => {
                tracing::info!(job = j.id, "job loaded: mining with it");
                self.current_job = Some(j.id);
                Ok(true)
            }
            Ok(Some((refusal, signature))) => {
                self.metrics.jobs_refused.inc();
                // The requester's doing, signed by the enclave: the chain
                // ends the job without slashing this worker.
                tracing::warn!(job = j.id, reason = ?refusal.reason, "the enclave refused the job");
                self.reported.insert(j.id);
                let tx = self
                    .send_call(Call::Market(proctor_state::market::Call::RefuseJob {
                        refusal,
                        signature,
                    }))
                    .await?;
                tracing::info!(job = j.id, %tx, "refusal submitted");
                Ok(false)
            }
            Err(e) => {
                self.metrics.jobs_refused.inc();
                // Not retried until the chain changes its mind about it.
                tracing::warn!(job = j.id, "job not run: {e}");
                self.reported.insert(j.id);
                Ok(false)
            }
        }
    }

    /// Serves the oracle requests assigned to this enclave (seed 000 §5):
    /// relays each through the enclave (which terminates TLS and signs) and
    /// submits its datagram. The certificate time is the request's block
    /// time, inside the window the chain accepts.
    async fn serve_oracle(&mut self) -> Result<()> {
        let pending = self.client.oracle_pending(self.info.identity).await?;
        let listed: std::collections::BTreeSet<u64> = pending.iter().map(|r| r.id).collect();
        self.oracle_served.retain(|id| listed.contains(id));
        let (chain, roots) = match &self.oracle_chain {
            Some(c) => c.clone(),
            None => {
                let g = self.client.genesis().await?;
                let c = (g.hash(), g.params.oracle.extra_roots.clone());
                self.oracle_chain = Some(c.clone());
                c
            }
        };
        let todo: Vec<_> = pending
            .into_iter()
            .filter(|r| !self.oracle_served.contains(&r.id))
            .take(16)
            .collect();
        for r in todo {
            let id = r.id;
            let ticket = proctor_enclave::oracle::OracleTicket {
                chain,
                request: id,
                requester: r.requester,
                query: r.query,
                time_ms: r.created_ms,
                extra_roots: roots.clone(),
            };
            #[allow(unused_mut)]
            let mut alter: fn(usize, &mut Vec<u8>) = |_, _| {};
            #[cfg(feature = "test-faults")]
            if self.tamper_oracle {
                alter = |n, data| {
                    if let (1.., Some(b)) = (n, data.last_mut()) {
                        *b ^= 1;
                    }
                };
            }
            let d = self
                .host
                .with(move |t| oracle::relay_altering(t, ticket, Duration::from_secs(10), alter))
                .await?
                .map_err(Error::Enclave)?;
            self.oracle_served.insert(id);
            let tx = self
                .send_call(Call::Oracle(proctor_state::oracle::Call::Deliver {
                    datagram: d.datagram,
                    signature: d.signature,
                }))
                .await?;
            tracing::info!(request = id, %tx, "oracle datagram submitted");
        }
        Ok(())
    }

    /// Makes job `j` the enclave's mining task (blobs fetched as ciphertext),
    /// or returns the enclave's signed refusal of it.
    async fn load_job(&mut self, j: &proctor_state::jobs::JobRecord) -> Result<Option<Refusal>> {
        let mine = j
            .assignments
            .iter()
            .find(|a| a.worker == self.info.identity)
            .ok_or_else(|| Error::Enclave("not assigned to this worker".into()))?;
        let wrapped_key = mine
            .key
            .clone()
            .ok_or_else(|| Error::Enclave("no key posted for this worker".into()))?;
        // A key posted too late for the fuel at this worker's offered speed:
        // refused, not run (the chain checks the same from the key's block).
        let left = j
            .deadline
            .saturating_sub(mine.keyed_at.unwrap_or(j.deadline));
        let block_ms = self.client.chain_info().await?.target_block_ms;
        let runs = proctor_state::jobs::instructions_in(mine.speed, left, block_ms);
        let late = runs < u128::from(j.spec.fuel);
        // A refusal needs the job, not its blobs.
        let (module, input) = if late {
            (Vec::new(), Vec::new())
        } else {
            (
                self.fetch_blob(j.spec.module).await?,
                self.fetch_blob(j.spec.input).await?,
            )
        };
        #[allow(unused_mut)]
        let mut ticket = proctor_enclave::JobTicket {
            job: j.id,
            spec: j.spec.clone(),
            submitted_ms: j.submitted_ms,
            module,
            input,
            wrapped_key,
        };
        #[cfg(feature = "test-faults")]
        if let Some(f) = self.tamper {
            f(&mut ticket);
        }
        let request = if late {
            Request::RefuseLate(Box::new(ticket))
        } else {
            Request::LoadJob {
                ticket: Box::new(ticket),
                slice: SLICE,
            }
        };
        match self.host.call(request).await? {
            Response::Loaded { .. } => Ok(None),
            Response::Refused { refusal, signature } => Ok(Some((refusal, signature))),
            Response::Error { message, .. } => Err(Error::Enclave(message)),
            _ => Err(Error::Enclave("unexpected answer to LoadJob".into())),
        }
    }

    /// Publishes a finished job's output and submits its signed report.
    async fn submit_job(&mut self, r: proctor_enclave::JobResult) -> Result<Hash> {
        let job = r.report.job;
        self.reported.insert(job);
        self.current_job = None;
        proctor_rpc::upload_blob(&self.client, &r.output).await?;
        let tx = self
            .send_call(Call::Market(proctor_state::market::Call::SubmitResult {
                report: r.report,
                signature: r.signature,
            }))
            .await?;
        self.metrics.jobs_run.inc();
        tracing::info!(job, %tx, "job result submitted");
        Ok(tx)
    }

    async fn fetch_blob(&self, h: Hash) -> Result<Vec<u8>> {
        Ok(proctor_rpc::download_blob(&self.client, h).await?)
    }

    /// The enclave's on-chain registration, if any.
    pub async fn registration(&self) -> Result<Option<proctor_state::EnclaveRecord>> {
        Ok(self.client.enclave(self.info.identity).await?)
    }

    /// Loads the filler on the input the chain derives from each template's
    /// parent (the enclave restarts it when the parent changes).
    async fn load_filler(&mut self, module: &[u8], timestamp_ms: u64) -> Result<()> {
        let resp = self
            .host
            .call(Request::LoadTask {
                module: module.to_vec(),
                input: proctor_enclave::TaskInput::FromParent,
                args: vec![FILLER_ROUNDS.into()],
                clock_ns: timestamp_ms.saturating_mul(1_000_000),
                fuel: u64::MAX / 2,
                slice: SLICE,
            })
            .await?;
        match resp {
            Response::Loaded { .. } => Ok(()),
            _ => Err(Error::Enclave("unexpected answer to LoadTask".into())),
        }
    }

    /// Mines until `stop` is set. Mining blocks that are already taken (a new
    /// head arrived) counts as stale, not as an error.
    pub async fn mine(&mut self, stop: Arc<AtomicBool>) -> Result<()> {
        let chain = self.client.chain_info().await?;
        let module = hex::decode(self.client.blob(chain.filler_module).await?)
            .map_err(|e| Error::Enclave(format!("blob is not hex: {e}")))?;
        let got = Hash::of(&module);
        if got != chain.filler_module {
            return Err(Error::ModuleHash {
                expected: chain.filler_module,
                got,
            });
        }
        let mut loaded = false;
        let mut last_registration_check = Instant::now();
        let mut last_job_check = Instant::now();
        let mut last_offer_check = Instant::now();
        if let Err(e) = self.ensure_offer().await {
            tracing::warn!("market offer not sent: {e}");
        }
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            // A node that restarts or is briefly unreachable is waited for,
            // not fatal: the enclave keeps its task and resumes.
            let work = match self.client.get_work(self.miner()).await {
                Ok(w) => {
                    backoff = Duration::from_millis(100);
                    w
                }
                Err(e) => {
                    tracing::warn!("cannot get work from the node ({e}); retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if !loaded {
                self.load_filler(&module, work.timestamp).await?;
                loaded = true;
            }
            let template = work.decode_template().map_err(Error::Enclave)?;
            let req = Request::Mine {
                template: Box::new(template),
                max_slices: SLICES_PER_CALL,
            };
            let began = Instant::now();
            let Response::Mined(result, ran) = self.host.call(req).await? else {
                return Err(Error::Enclave("unexpected answer to Mine".into()));
            };
            self.metrics.observe_mine(ran, began.elapsed());
            match result {
                MineResult::Won(proof) => {
                    self.metrics.proofs.inc();
                    let proof = proctor_rpc::to_hex(&proof);
                    match self.client.submit_work(work.template_hash, proof).await {
                        Ok(hash) => {
                            self.metrics.blocks_won.inc();
                            tracing::info!(height = work.height, %hash, "won block");
                        }
                        Err(e) => {
                            self.metrics.stale_proofs.inc();
                            tracing::debug!(%e, "proof not accepted");
                        }
                    }
                }
                MineResult::NoWin { .. } => {}
                MineResult::JobDone(r) => {
                    loaded = false;
                    if let Err(e) = self.submit_job(*r).await {
                        tracing::warn!("job result not submitted: {e}");
                    }
                }
                MineResult::TaskDone { instructions, .. } => {
                    self.metrics.tasks_completed.inc();
                    tracing::debug!(instructions, "filler task finished; loading the next");
                    loaded = false;
                }
            }
            if last_offer_check.elapsed() > Duration::from_secs(10) {
                last_offer_check = Instant::now();
                if let Err(e) = self.ensure_offer().await {
                    tracing::warn!("market offer not sent: {e}");
                }
            }
            if last_job_check.elapsed() > JOB_POLL {
                last_job_check = Instant::now();
                match self.check_jobs().await {
                    // A job replaced the filler (or was dropped): the filler
                    // is loaded again when no job is running.
                    Ok(true) => loaded = self.current_job.is_some(),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("cannot check for jobs: {e}"),
                }
                if let Err(e) = self.serve_oracle().await {
                    tracing::warn!("cannot serve oracle requests: {e}");
                }
                if let Err(e) = self.serve_contracts().await {
                    tracing::warn!("cannot serve contracts: {e}");
                }
            }
            if last_registration_check.elapsed() > Duration::from_secs(30) {
                last_registration_check = Instant::now();
                self.ensure_registered(&stop).await?;
            }
        }
        Ok(())
    }
}
