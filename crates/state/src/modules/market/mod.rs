//! The compute market in the state machine: jobs from submission to
//! settlement (ARCHITECTURE "Distributed cloud computing", seed 002's
//! scheduler and fees, seed 003's automatic payment and verification).
//!
//! Lifecycle of a job (`JobState`):
//! 1. `SubmitJob` escrows the most the job can cost ([`proctor_market::settle::escrow`]:
//!    fuel × max price × replicas, plus the platform fee) → **Pending**.
//! 2. At the end of every block the WDRF scheduler ([`proctor_market::scheduler`])
//!    places pending jobs on workers with a standing offer, at most
//!    `max_placements_per_block` → **Assigned** (deadline = now + the job's
//!    deadline blocks). Assignment reserves the job's resources on each worker.
//! 3. The requester posts the content key wrapped to each assigned enclave's
//!    registered encryption key (`PostKeys`) → **Running** once all have one.
//! 4. Each worker submits a result report signed by its enclave identity
//!    (`SubmitResult`). With every report in, the job settles in the same
//!    transition: one replica: the attested report suffices; several: the
//!    output commitment held by a strict majority wins, the others are
//!    slashed. Accepted workers are paid instructions × their price (never
//!    above the maximum), the fee is split, the rest refunded → **Settled**
//!    (or **Failed** when no commitment has a majority: refunded minus the
//!    expiry fee).
//! 5. At the deadline: keys never posted → **Expired** (refunded minus the
//!    expiry fee); workers that did not report are slashed a little and
//!    replaced, up to `max_reassignments`; after that the job settles on the
//!    reports it has, or fails. A job no worker takes within its deadline
//!    blocks (at submission or after a reassignment) ends the same way.
//!
//! Fairness between requesters (WDRF) weighs each by its own record: jobs
//! that settle raise a requester's weight, jobs it let expire lower it.
//!
//! Money never appears or vanishes: the escrow is split exactly
//! ([`proctor_market::settle::Settlement::total`]), slashed stake goes to the
//! treasury account.

use crate::error::TxError;
use crate::machine::{Overlay, State};
use crate::types::*;
use borsh::{BorshDeserialize, BorshSerialize};
use proctor_market::scheduler::{self, Resources};
use proctor_market::settle::{self, FeeSplit};
use proctor_market::{SCALE, reputation::Reputation};
use proctor_primitives::{Address, Amount, Hash, Height, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Parameters of the compute market.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct MarketParams {
    /// The platform fee and its split.
    pub fees: FeeSplit,
    /// Jobs placed per block at most.
    pub max_placements_per_block: u32,
    pub max_replicas: u8,
    /// Times a job's silent workers are replaced before it settles on what it has.
    pub max_reassignments: u8,
    pub max_deadline_blocks: u64,
    /// Share of its stake a worker loses for a result outvoted by the majority.
    pub slash_wrong_bps: u32,
    /// Share of its stake a worker loses for not reporting by the deadline.
    pub slash_late_bps: u32,
    /// Kept from the escrow of a job that expires or is cancelled.
    pub expiry_fee: Amount,
}

impl Default for MarketParams {
    fn default() -> Self {
        MarketParams {
            fees: FeeSplit::default(),
            max_placements_per_block: 64,
            max_replicas: 7,
            max_reassignments: 3,
            max_deadline_blocks: 10_000,
            slash_wrong_bps: 1_000,
            slash_late_bps: 100,
            expiry_fee: Amount(10_000),
        }
    }
}

/// What a requester asks for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobSpec {
    /// Blob hash of the task module (WASI command).
    pub module: Hash,
    /// Blob hash of the encrypted input.
    pub input: Hash,
    /// Memory the task may use, in 64 KiB pages.
    pub memory_pages: u64,
    /// Instructions the task may use on each replica.
    pub fuel: u64,
    /// Most the requester pays per instruction.
    pub max_price: Amount,
    /// Workers that run it independently (1 to `max_replicas`).
    pub replicas: u8,
    /// Blocks each assignment has to report.
    pub deadline_blocks: u64,
    /// Blocks the blobs are kept after the job ends.
    pub retention_blocks: u64,
    /// The requester's X25519 key the output is encrypted to (HPKE).
    #[serde(with = "proctor_primitives::codec::hex_array32")]
    pub output_key: [u8; 32],
    /// Program arguments (at most 16, 1 KiB in all).
    pub args: Vec<String>,
}

impl JobSpec {
    /// H(spec): what the requester asked for, every field.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/job-spec", self)
    }
}

/// What binds a run to the job the requester submitted: the job id, the
/// hash of its whole spec and its submission time (the task's clock). The
/// requester wraps the content key with HPKE `info` over it, so the key
/// opens only for this exact job; the enclave signs it into its report and
/// the chain checks it against the job.
pub fn job_binding(job: u64, spec: &JobSpec, submitted_ms: u64) -> Hash {
    Hash::tagged(
        "proctor/job-binding",
        &[
            &job.to_le_bytes(),
            &spec.hash().0,
            &submitted_ms.to_le_bytes(),
        ],
    )
}

/// Where a job is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Assigned,
    Running,
    Settled,
    Failed,
    Expired,
    Cancelled,
    /// An assigned worker's enclave refused it, through the requester's
    /// doing (see [`RefusalReason`]).
    Refused,
}

impl JobState {
    /// Assigned or running: workers are on it, and its task is useful work.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Assigned | JobState::Running)
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Settled
                | JobState::Failed
                | JobState::Expired
                | JobState::Cancelled
                | JobState::Refused
        )
    }
}

/// A worker's result, signed by its enclave identity.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ResultReport {
    pub job: u64,
    pub worker: PublicKey,
    /// [`job_binding`] of the job the enclave ran: id, spec and clock.
    pub binding: Hash,
    pub module: Hash,
    pub input: Hash,
    /// Blob hash of the output, encrypted to the requester.
    pub output: Hash,
    pub instructions: u64,
    /// H(K || output): equal for equal outputs, reveals nothing without K.
    pub commitment: Hash,
}

impl ResultReport {
    /// What the enclave signs.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/job-report", self)
    }
}

/// One worker on a job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Assignment {
    pub worker: PublicKey,
    /// Its price per instruction when placed.
    pub price: Amount,
    /// Its offered speed when placed (instructions a second).
    pub speed: u64,
    pub assigned_at: Height,
    /// The content key wrapped to the worker's enclave (HPKE), once posted.
    #[serde(with = "proctor_primitives::codec::hex_opt")]
    pub key: Option<Vec<u8>>,
    /// The height its key was posted at: the worker's time to run the job
    /// starts there.
    pub keyed_at: Option<Height>,
    pub report: Option<ResultReport>,
}

/// A job on chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub requester: Address,
    pub spec: JobSpec,
    pub escrow: Amount,
    pub state: JobState,
    pub submitted_at: Height,
    /// Block timestamp of the submission: what the task's clock reads.
    pub submitted_ms: u64,
    /// Last height at which the current assignments may report.
    pub deadline: Height,
    pub assignments: Vec<Assignment>,
    /// Workers removed from the job (silent or outvoted); never placed on it again.
    pub failed: Vec<PublicKey>,
    pub reassignments: u8,
    /// Paid to workers (without fees), once settled.
    pub paid: Amount,
    /// Instructions of the accepted result.
    pub instructions: u64,
    /// The accepted output blob.
    pub output: Option<Hash>,
    /// Returned to the requester when the job ended.
    pub refund: Amount,
    pub ended_at: Option<Height>,
    /// Why it was refused, when it was.
    pub refusal: Option<RefusalReason>,
}

impl JobRecord {
    /// [`job_binding`] of this job.
    pub fn binding(&self) -> Hash {
        job_binding(self.id, &self.spec, self.submitted_ms)
    }
}

/// A worker's standing offer to run jobs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct WorkerOffer {
    pub identity: PublicKey,
    /// Price per instruction.
    pub price: Amount,
    pub memory_pages: u64,
    pub fuel: u64,
    /// Instructions per second it commits to run a job at: it is placed
    /// only on jobs whose fuel it can run before their deadline.
    pub speed: u64,
    /// Reserved by the jobs it runs now.
    pub used_memory_pages: u64,
    pub used_fuel: u64,
    pub reputation: Reputation,
}

impl WorkerOffer {
    /// Instructions this worker runs in `blocks` blocks of `block_ms`.
    pub fn instructions_in(&self, blocks: u64, block_ms: u64) -> u128 {
        instructions_in(self.speed, blocks, block_ms)
    }
}

/// Instructions run at `speed` a second in `blocks` blocks of `block_ms`.
pub fn instructions_in(speed: u64, blocks: u64, block_ms: u64) -> u128 {
    u128::from(speed) * u128::from(blocks) * u128::from(block_ms) / 1_000
}

/// Why a worker's enclave refuses an assigned job: each is the requester's
/// doing, established by the enclave on the exact job (its binding) and the
/// exact key posted on chain, so a host cannot blame the requester for what
/// it altered.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The module (its bytes hash to the spec's) fails the checker.
    ModuleRejected,
    /// The posted content key does not open for this job in this enclave.
    KeyDoesNotOpen,
    /// The input (its bytes hash to the spec's) does not decrypt with the key.
    InputUndecryptable,
    /// The key came too late: at the worker's offered speed, the fuel cannot
    /// run between the block the key was posted in and the deadline (the
    /// chain checks this itself).
    TooLittleTime,
}

/// An enclave's refusal of a job, signed by its identity.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobRefusal {
    pub job: u64,
    pub worker: PublicKey,
    /// [`job_binding`] of the job the enclave was handed.
    pub binding: Hash,
    /// Hash of the wrapped content key it was handed.
    pub key: Hash,
    pub reason: RefusalReason,
}

impl JobRefusal {
    /// What the enclave signs.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/job-refusal", self)
    }
}

/// The market's indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MarketIndex {
    pub next_job: u64,
    /// Jobs waiting for workers, oldest first.
    pub pending: Vec<u64>,
    /// Jobs assigned or running.
    pub active: Vec<u64>,
    /// Workers with an offer.
    pub workers: Vec<PublicKey>,
}

/// Resources a requester's running jobs hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RequesterUsage {
    pub memory_pages: u64,
    pub fuel: u64,
    /// The requester's own record (seed 002's demand side): settled jobs
    /// count as completed deals with the fee paid, jobs left to expire for
    /// want of a key as failed ones.
    pub reputation: Reputation,
}

impl RequesterUsage {
    /// The requester's weight in the fair share (SCALE = 1.0 for a new
    /// requester): 1 + (reputation − a newcomer's reputation), within [0.5, 2].
    pub fn weight(&self) -> u64 {
        let base = Reputation::default().score();
        (SCALE + self.reputation.score())
            .saturating_sub(base)
            .clamp(SCALE / 2, 2 * SCALE)
    }
}

/// A content key wrapped to one assigned enclave.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WrappedKey {
    pub worker: PublicKey,
    pub key: Vec<u8>,
}

/// Largest wrapped key accepted (HPKE encapsulated key + sealed 32 bytes).
pub const MAX_WRAPPED_KEY: usize = 256;

pub(crate) fn job_key(id: u64) -> Hash {
    Hash::tagged("proctor/key/job", &[&id.to_le_bytes()])
}
pub(crate) fn offer_key(id: &PublicKey) -> Hash {
    Hash::tagged("proctor/key/offer", &[&id.0])
}
pub(crate) fn market_key() -> Hash {
    Hash::tagged("proctor/key/market", &[])
}
pub(crate) fn module_key(m: &Hash) -> Hash {
    Hash::tagged("proctor/key/module", &[&m.0])
}
pub(crate) fn usage_key(a: &Address) -> Hash {
    Hash::tagged("proctor/key/usage", &[&a.0])
}

/// The account that receives the treasury's share of fees and slashed stake.
pub fn treasury() -> Address {
    let h = Hash::tagged("proctor/treasury", &[]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    Address(a)
}

fn bps(amount: Amount, bps: u32) -> Amount {
    Amount(
        amount.0 / settle::BPS * bps as u128 + amount.0 % settle::BPS * bps as u128 / settle::BPS,
    )
}

impl Overlay<'_> {
    pub(crate) fn job(&self, id: u64) -> Option<JobRecord> {
        match self.get(&job_key(id)) {
            Some(crate::Record::Job(j)) => Some(j),
            _ => None,
        }
    }
    fn set_job(&mut self, j: &JobRecord) {
        self.put(job_key(j.id), &crate::Record::Job(j.clone()));
    }
    pub(crate) fn offer(&self, id: &PublicKey) -> Option<WorkerOffer> {
        match self.get(&offer_key(id)) {
            Some(crate::Record::Offer(o)) => Some(o),
            _ => None,
        }
    }
    fn set_offer(&mut self, o: &WorkerOffer) {
        self.put(offer_key(&o.identity), &crate::Record::Offer(o.clone()));
    }
    fn market(&self) -> MarketIndex {
        match self.get(&market_key()) {
            Some(crate::Record::Market(m)) => m,
            _ => MarketIndex::default(),
        }
    }
    fn set_market(&mut self, m: &MarketIndex) {
        self.put(market_key(), &crate::Record::Market(m.clone()));
    }
    fn module_owner(&self, m: &Hash) -> Option<Address> {
        match self.get(&module_key(m)) {
            Some(crate::Record::Module(a)) => Some(a),
            _ => None,
        }
    }
    fn usage(&self, a: &Address) -> RequesterUsage {
        match self.get(&usage_key(a)) {
            Some(crate::Record::Usage(u)) => u,
            _ => RequesterUsage::default(),
        }
    }
    fn credit(&mut self, a: &Address, amount: Amount) -> Result<(), TxError> {
        if amount.0 == 0 {
            return Ok(());
        }
        let mut acc = self.account(a);
        acc.balance = acc.balance.checked_add(amount).ok_or(TxError::Overflow)?;
        self.set_account(a, acc);
        Ok(())
    }
}

/// Block-level outcome of the market: events, or an arithmetic overflow
/// (which no valid parameters reach).
type MarketResult = Result<Vec<Event>, TxError>;

impl State {
    /// Applies a market call for `from` (its fee and any escrow already debited).
    pub(crate) fn apply_market_call(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        from: Address,
        call: &Call,
    ) -> MarketResult {
        let mp = &self.params().market;
        match call {
            Call::SetOffer {
                identity,
                price,
                memory_pages,
                fuel,
                speed,
            } => {
                if *speed == 0 {
                    return Err(TxError::BadJob("an offer's speed must be positive".into()));
                }
                let e = o
                    .enclave(identity)
                    .ok_or(TxError::EnclaveNotFound(*identity))?;
                if e.operator != from {
                    return Err(TxError::NotOperator);
                }
                if e.unbonding_until.is_some() {
                    return Err(TxError::AlreadyUnbonding);
                }
                let offer = match o.offer(identity) {
                    Some(mut old) => {
                        old.price = *price;
                        old.memory_pages = *memory_pages;
                        old.fuel = *fuel;
                        old.speed = *speed;
                        old
                    }
                    None => {
                        let mut m = o.market();
                        m.workers.push(*identity);
                        o.set_market(&m);
                        WorkerOffer {
                            identity: *identity,
                            price: *price,
                            memory_pages: *memory_pages,
                            fuel: *fuel,
                            speed: *speed,
                            used_memory_pages: 0,
                            used_fuel: 0,
                            reputation: Reputation::default(),
                        }
                    }
                };
                o.set_offer(&offer);
                Ok(vec![Event::OfferSet {
                    identity: *identity,
                    price: *price,
                }])
            }
            Call::RegisterModule { module } => {
                if let Some(owner) = o.module_owner(module) {
                    return Err(TxError::ModuleOwned(owner));
                }
                o.put(module_key(module), &crate::Record::Module(from));
                Ok(vec![Event::ModuleRegistered {
                    module: *module,
                    owner: from,
                }])
            }
            Call::SubmitJob { spec, escrow } => {
                check_spec(spec, mp)?;
                let expected =
                    settle::escrow(spec.fuel, spec.max_price.0, spec.replicas as u32, &mp.fees)
                        .ok_or(TxError::Overflow)?;
                if escrow.0 != expected {
                    return Err(TxError::EscrowMismatch {
                        expected: Amount(expected),
                        got: *escrow,
                    });
                }
                // The job must fit its deadline on every worker offering now.
                let m = o.market();
                let slowest = m
                    .workers
                    .iter()
                    .filter_map(|w| o.offer(w))
                    .map(|w| w.instructions_in(spec.deadline_blocks, self.params().target_block_ms))
                    .min();
                if let Some(capacity) = slowest
                    && u128::from(spec.fuel) > capacity
                {
                    return Err(TxError::FuelBeyondDeadline {
                        fuel: spec.fuel,
                        capacity,
                    });
                }
                let mut m = m;
                let id = m.next_job;
                m.next_job += 1;
                m.pending.push(id);
                o.set_market(&m);
                o.set_job(&JobRecord {
                    id,
                    requester: from,
                    spec: spec.clone(),
                    escrow: *escrow,
                    state: JobState::Pending,
                    submitted_at: env.height,
                    submitted_ms: env.timestamp,
                    // Until placed, the deadline bounds the wait for workers.
                    deadline: env.height + spec.deadline_blocks,
                    assignments: vec![],
                    failed: vec![],
                    reassignments: 0,
                    paid: Amount::ZERO,
                    instructions: 0,
                    output: None,
                    refund: Amount::ZERO,
                    ended_at: None,
                    refusal: None,
                });
                Ok(vec![Event::JobSubmitted {
                    job: id,
                    requester: from,
                    escrow: *escrow,
                }])
            }
            Call::PostKeys { job, keys } => {
                let mut j = o.job(*job).ok_or(TxError::JobNotFound(*job))?;
                if j.requester != from {
                    return Err(TxError::NotRequester);
                }
                if j.state != JobState::Assigned {
                    return Err(TxError::JobState {
                        job: *job,
                        state: j.state,
                    });
                }
                for (i, k) in keys.iter().enumerate() {
                    if keys[..i].iter().any(|earlier| earlier.worker == k.worker) {
                        return Err(TxError::BadJob(format!(
                            "worker {} appears twice in the keys",
                            k.worker
                        )));
                    }
                    if k.key.is_empty() || k.key.len() > MAX_WRAPPED_KEY {
                        return Err(TxError::BadJob(
                            "a wrapped key must be 1 to 256 bytes".into(),
                        ));
                    }
                    let a = j
                        .assignments
                        .iter_mut()
                        .find(|a| a.worker == k.worker)
                        .ok_or(TxError::NotAssigned(k.worker))?;
                    a.key = Some(k.key.clone());
                    a.keyed_at = Some(env.height);
                }
                if j.assignments.iter().all(|a| a.key.is_some()) {
                    j.state = JobState::Running;
                }
                o.set_job(&j);
                Ok(vec![Event::JobKeysPosted {
                    job: *job,
                    running: j.state == JobState::Running,
                }])
            }
            Call::SubmitResult { report, signature } => {
                self.submit_result(o, env, report, signature)
            }
            Call::RefuseJob { refusal, signature } => self.refuse(o, env, refusal, signature),
            Call::CancelJob { job } => {
                let mut j = o.job(*job).ok_or(TxError::JobNotFound(*job))?;
                if j.requester != from {
                    return Err(TxError::NotRequester);
                }
                // Only before any work could start: no key posted yet.
                let started = j.assignments.iter().any(|a| a.key.is_some());
                if !matches!(j.state, JobState::Pending | JobState::Assigned) || started {
                    return Err(TxError::JobState {
                        job: *job,
                        state: j.state,
                    });
                }
                Ok(vec![self.end_unpaid(
                    o,
                    env,
                    &mut j,
                    JobState::Cancelled,
                )?])
            }
            _ => unreachable!("only market calls come here"),
        }
    }

    fn submit_result(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        report: &ResultReport,
        signature: &Signature,
    ) -> MarketResult {
        let mut j = o.job(report.job).ok_or(TxError::JobNotFound(report.job))?;
        if j.state != JobState::Running {
            return Err(TxError::JobState {
                job: j.id,
                state: j.state,
            });
        }
        report
            .worker
            .verify(&report.hash().0, signature)
            .map_err(|_| TxError::BadReport("not signed by the worker's enclave".into()))?;
        if report.binding != j.binding() {
            return Err(TxError::BadReport(
                "the enclave ran another spec than the job's (id, spec or clock differ)".into(),
            ));
        }
        if report.module != j.spec.module || report.input != j.spec.input {
            return Err(TxError::BadReport(
                "module or input differ from the job's".into(),
            ));
        }
        if report.instructions > j.spec.fuel {
            return Err(TxError::BadReport(format!(
                "{} instructions exceed the job's fuel {}",
                report.instructions, j.spec.fuel
            )));
        }
        let a = j
            .assignments
            .iter_mut()
            .find(|a| a.worker == report.worker)
            .ok_or(TxError::NotAssigned(report.worker))?;
        if a.report.is_some() {
            return Err(TxError::AlreadyReported);
        }
        a.report = Some(report.clone());
        let mut events = vec![Event::JobResult {
            job: j.id,
            worker: report.worker,
        }];
        if j.assignments.iter().all(|a| a.report.is_some()) {
            events.extend(self.finalize(o, env, &mut j)?);
        } else {
            o.set_job(&j);
        }
        Ok(events)
    }

    /// An assigned worker's enclave-signed refusal: checked against the job
    /// (its binding) and the key posted for this worker, then the job ends
    /// unpaid, the requester pays the expiry fee, and no one is slashed.
    fn refuse(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        r: &JobRefusal,
        signature: &Signature,
    ) -> MarketResult {
        let bad = |m: &str| TxError::BadRefusal(m.into());
        let mut j = o.job(r.job).ok_or(TxError::JobNotFound(r.job))?;
        if !j.state.is_active() {
            return Err(TxError::JobState {
                job: j.id,
                state: j.state,
            });
        }
        r.worker
            .verify(&r.hash().0, signature)
            .map_err(|_| bad("not signed by the worker's enclave"))?;
        if r.binding != j.binding() {
            return Err(bad("it refuses another spec than the job's"));
        }
        let a = j
            .assignments
            .iter()
            .find(|a| a.worker == r.worker)
            .ok_or(TxError::NotAssigned(r.worker))?;
        if a.report.is_some() {
            return Err(TxError::AlreadyReported);
        }
        let posted = a
            .key
            .as_deref()
            .ok_or_else(|| bad("no key is posted for this worker yet"))?;
        if Hash::of(posted) != r.key {
            return Err(bad("it names another key than the one posted"));
        }
        if r.reason == RefusalReason::TooLittleTime {
            let left = j.deadline.saturating_sub(a.keyed_at.unwrap_or(j.deadline));
            // At the speed it offered when placed: lowering the offer
            // later does not make a job late.
            let runs = instructions_in(a.speed, left, self.params().target_block_ms);
            if runs >= u128::from(j.spec.fuel) {
                return Err(bad(
                    "the key came in time: the fuel fits before the deadline",
                ));
            }
        }
        rate_requester(o, &j.requester, Reputation::record_failed);
        j.refusal = Some(r.reason);
        Ok(vec![
            Event::JobRefused {
                job: j.id,
                worker: r.worker,
                reason: r.reason,
            },
            self.end_unpaid(o, env, &mut j, JobState::Refused)?,
        ])
    }

    /// Settles a job on the reports it has: the commitment held by a strict
    /// majority of the requested replicas wins; no majority fails the job.
    fn finalize(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
    ) -> MarketResult {
        let mp = &self.params().market;
        // Each commitment's voters: assignment index and report.
        let mut votes: BTreeMap<Hash, Vec<(usize, ResultReport)>> = BTreeMap::new();
        for (i, a) in j.assignments.iter().enumerate() {
            if let Some(r) = &a.report {
                votes.entry(r.commitment).or_default().push((i, r.clone()));
            }
        }
        let winner = votes
            .iter()
            .find(|(_, v)| v.len() * 2 > j.spec.replicas as usize)
            .map(|(c, v)| (*c, v.clone()));
        let Some((commitment, accepted)) = winner else {
            return Ok(vec![self.end_unpaid(o, env, j, JobState::Failed)?]);
        };
        let mut events = Vec::new();
        // The outvoted are slashed and lose reputation.
        for a in j.assignments.clone() {
            if a.report
                .as_ref()
                .is_some_and(|r| r.commitment != commitment)
            {
                events.extend(self.slash(o, &a.worker, mp.slash_wrong_bps, "result outvoted")?);
                j.failed.push(a.worker);
            }
        }
        let paid_to: Vec<(u64, u128)> = accepted
            .iter()
            .map(|(i, r)| (r.instructions, j.assignments[*i].price.0))
            .collect();
        let s = settle::settle(j.escrow.0, &paid_to, j.spec.max_price.0, &mp.fees)
            .map_err(|_| TxError::Overflow)?;
        let window = j
            .deadline
            .saturating_sub(j.assignments[accepted[0].0].assigned_at)
            .max(1);
        let service =
            (j.deadline.saturating_sub(env.height) as u128 * SCALE as u128 / window as u128) as u64;
        let mut paid = 0u128;
        for ((i, _), &(pay, fee_share)) in accepted.iter().zip(&s.workers) {
            let a = &j.assignments[*i];
            // A worker cannot withdraw while assigned (`WorkerBusy`), so its
            // record is here; were it gone, the pay goes to the treasury
            // rather than failing the block.
            let operator = o.enclave(&a.worker).map_or_else(treasury, |e| e.operator);
            o.credit(&operator, Amount(pay + fee_share))?;
            events.push(Event::JobPaid {
                job: j.id,
                worker: a.worker,
                operator,
                pay: Amount(pay),
                fee_share: Amount(fee_share),
            });
            if let Some(mut offer) = o.offer(&a.worker) {
                offer.reputation.record_completed(pay, service);
                o.set_offer(&offer);
            }
            paid += pay;
        }
        let app = o.module_owner(&j.spec.module).unwrap_or_else(treasury);
        o.credit(&app, Amount(s.app_fee))?;
        o.credit(&treasury(), Amount(s.treasury))?;
        events.push(Event::JobFees {
            job: j.id,
            app,
            app_fee: Amount(s.app_fee),
            treasury: Amount(s.treasury),
        });
        o.credit(&j.requester, Amount(s.refund))?;
        let spent = j.escrow.0 - s.refund;
        rate_requester(o, &j.requester, |r| r.record_completed(spent, SCALE));
        let report = &accepted[0].1;
        j.paid = Amount(paid);
        j.instructions = report.instructions;
        j.output = Some(report.output);
        j.refund = Amount(s.refund);
        self.close(o, env, j, JobState::Settled);
        events.push(Event::JobEnded {
            job: j.id,
            state: JobState::Settled,
            paid: Amount(paid),
            refund: Amount(s.refund),
        });
        Ok(events)
    }

    /// Ends a job without paying workers: the escrow minus the expiry fee
    /// (to the treasury) goes back to the requester. Returns the end event.
    fn end_unpaid(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
        state: JobState,
    ) -> Result<Event, TxError> {
        let fee = self.params().market.expiry_fee.0.min(j.escrow.0);
        let refund = Amount(j.escrow.0 - fee);
        o.credit(&treasury(), Amount(fee))?;
        o.credit(&j.requester, refund)?;
        j.refund = refund;
        self.close(o, env, j, state);
        Ok(Event::JobEnded {
            job: j.id,
            state,
            paid: Amount::ZERO,
            refund,
        })
    }

    /// Frees what the job holds on its workers and its requester, takes it
    /// off the market's lists and stores it in its final `state`.
    fn close(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
        state: JobState,
    ) {
        for a in &j.assignments {
            release(o, &a.worker, &j.spec);
        }
        reserve(o, &j.requester, &j.spec, -(j.assignments.len() as i64));
        let mut m = o.market();
        m.pending.retain(|x| *x != j.id);
        m.active.retain(|x| *x != j.id);
        o.set_market(&m);
        j.state = state;
        j.ended_at = Some(env.height);
        o.set_job(j);
    }

    /// Takes `bps` of a worker's stake to the treasury and records the failure.
    fn slash(
        &self,
        o: &mut Overlay<'_>,
        worker: &PublicKey,
        bp: u32,
        reason: &str,
    ) -> MarketResult {
        let mut events = Vec::new();
        if let Some(amount) =
            crate::modules::registry::take_stake(o, worker, |stake| bps(stake, bp))
        {
            o.credit(&treasury(), amount)?;
            events.push(Event::WorkerSlashed {
                identity: *worker,
                amount,
                reason: reason.to_string(),
            });
        }
        if let Some(mut offer) = o.offer(worker) {
            offer.reputation.record_failed();
            o.set_offer(&offer);
        }
        Ok(events)
    }

    /// End of block: deadlines, then scheduling.
    pub(crate) fn process_market(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
    ) -> MarketResult {
        let mut events = Vec::new();
        let m = o.market();
        for id in m.active.clone() {
            let Some(mut j) = o.job(id) else { continue };
            if j.deadline < env.height {
                events.extend(self.on_deadline(o, env, &mut j)?);
            }
        }
        // Jobs no worker could take in time: they end on the reports they
        // have (from before a reassignment), or are refunded.
        for id in m.pending.clone() {
            let Some(mut j) = o.job(id) else { continue };
            if j.deadline < env.height {
                if j.assignments.iter().any(|a| a.report.is_some()) {
                    events.extend(self.finalize(o, env, &mut j)?);
                } else {
                    events.push(self.end_unpaid(o, env, &mut j, JobState::Expired)?);
                }
            }
        }
        events.extend(self.schedule(o, env));
        Ok(events)
    }

    fn on_deadline(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
    ) -> MarketResult {
        let mp = &self.params().market;
        if j.state == JobState::Assigned && j.assignments.iter().any(|a| a.key.is_none()) {
            // The requester never released the key to every worker.
            rate_requester(o, &j.requester, Reputation::record_failed);
            return Ok(vec![self.end_unpaid(o, env, j, JobState::Expired)?]);
        }
        // Running: slash and drop the silent workers.
        let mut events = Vec::new();
        let silent: Vec<PublicKey> = j
            .assignments
            .iter()
            .filter(|a| a.report.is_none())
            .map(|a| a.worker)
            .collect();
        for w in &silent {
            events.extend(self.slash(o, w, mp.slash_late_bps, "no result by the deadline")?);
            release(o, w, &j.spec);
            j.failed.push(*w);
        }
        reserve(o, &j.requester, &j.spec, -(silent.len() as i64));
        j.assignments.retain(|a| a.report.is_some());
        if j.reassignments < mp.max_reassignments {
            // Replace them: back in the queue for the missing replicas.
            j.reassignments += 1;
            j.state = JobState::Pending;
            j.deadline = env.height + j.spec.deadline_blocks;
            let mut m = o.market();
            m.active.retain(|x| *x != j.id);
            m.pending.push(j.id);
            o.set_market(&m);
            o.set_job(j);
            events.push(Event::JobRequeued {
                job: j.id,
                missing: silent.len() as u8,
            });
            return Ok(events);
        }
        events.extend(self.finalize(o, env, j)?);
        Ok(events)
    }

    /// Places pending jobs with the WDRF scheduler.
    fn schedule(&self, o: &mut Overlay<'_>, env: &crate::BlockEnv) -> Vec<Event> {
        let mp = &self.params().market;
        let mut m = o.market();
        if m.pending.is_empty() || m.workers.is_empty() {
            return vec![];
        }
        // Workers that can take work now and until the longest deadline.
        let horizon = env.height.saturating_add(mp.max_deadline_blocks);
        let mut workers = Vec::new();
        for id in &m.workers {
            let (Some(offer), Some(e)) = (o.offer(id), o.enclave(id)) else {
                continue;
            };
            if e.unbonding_until.is_some()
                || e.expires_at < horizon
                || !self.measurement_allowed(&e.measurement, env.height)
            {
                continue;
            }
            workers.push(scheduler::Worker {
                id: *id,
                price: offer.price.0,
                capacity: Resources {
                    memory_pages: offer.memory_pages,
                    fuel: offer.fuel,
                },
                used: Resources {
                    memory_pages: offer.used_memory_pages,
                    fuel: offer.used_fuel,
                },
                reputation: offer.reputation.score(),
            });
        }
        let mut jobs = Vec::new();
        let mut usage = BTreeMap::new();
        let mut records = BTreeMap::new();
        for id in &m.pending {
            let Some(j) = o.job(*id) else { continue };
            let u = o.usage(&j.requester);
            usage.insert(
                j.requester,
                scheduler::Usage {
                    used: Resources {
                        memory_pages: u.memory_pages,
                        fuel: u.fuel,
                    },
                    weight: u.weight(),
                },
            );
            let mut exclude = j.failed.clone();
            exclude.extend(j.assignments.iter().map(|a| a.worker));
            // Too slow to run the fuel before the deadline.
            let block_ms = self.params().target_block_ms;
            exclude.extend(m.workers.iter().filter(|w| {
                o.offer(w).is_some_and(|offer| {
                    offer.instructions_in(j.spec.deadline_blocks, block_ms)
                        < u128::from(j.spec.fuel)
                })
            }));
            jobs.push(scheduler::Job {
                id: j.id,
                requester: j.requester,
                demand: Resources {
                    memory_pages: j.spec.memory_pages,
                    fuel: j.spec.fuel,
                },
                max_price: j.spec.max_price.0,
                replicas: (j.spec.replicas as usize - j.assignments.len()) as u32,
                exclude,
            });
            records.insert(j.id, j);
        }
        let placed = scheduler::schedule(
            &mut workers,
            jobs,
            &mut usage,
            &scheduler::Weights::default(),
            mp.max_placements_per_block as usize,
        );
        let prices: BTreeMap<PublicKey, u128> = workers.iter().map(|w| (w.id, w.price)).collect();
        let speeds: BTreeMap<PublicKey, u64> = m
            .workers
            .iter()
            .filter_map(|w| o.offer(w).map(|offer| (*w, offer.speed)))
            .collect();
        let mut events = Vec::new();
        for p in placed {
            // The scheduler places only the pending jobs it was given.
            let Some(mut j) = records.remove(&p.job) else {
                continue;
            };
            for w in &p.workers {
                j.assignments.push(Assignment {
                    worker: *w,
                    price: Amount(prices[w]),
                    speed: speeds.get(w).copied().unwrap_or(0),
                    assigned_at: env.height,
                    key: None,
                    keyed_at: None,
                    report: None,
                });
                if let Some(mut offer) = o.offer(w) {
                    offer.used_memory_pages += j.spec.memory_pages;
                    offer.used_fuel = offer.used_fuel.saturating_add(j.spec.fuel);
                    o.set_offer(&offer);
                }
            }
            reserve(o, &j.requester, &j.spec, p.workers.len() as i64);
            // Workers that kept their reports keep their keys; new ones need theirs.
            j.state = if j.assignments.iter().all(|a| a.key.is_some()) {
                JobState::Running
            } else {
                JobState::Assigned
            };
            j.deadline = env.height + j.spec.deadline_blocks;
            m.pending.retain(|x| *x != j.id);
            m.active.push(j.id);
            o.set_job(&j);
            events.push(Event::JobAssigned {
                job: j.id,
                workers: p.workers,
                deadline: j.deadline,
            });
        }
        o.set_market(&m);
        events
    }
}

/// Adds (or, negative, removes) `replicas` × the job's demand to what the
/// requester's running jobs hold (its share in the scheduler's fairness).
fn reserve(o: &mut Overlay<'_>, requester: &Address, spec: &JobSpec, replicas: i64) {
    let mut u = o.usage(requester);
    let (mem, fuel) = (
        spec.memory_pages.saturating_mul(replicas.unsigned_abs()),
        spec.fuel.saturating_mul(replicas.unsigned_abs()),
    );
    if replicas >= 0 {
        u.memory_pages = u.memory_pages.saturating_add(mem);
        u.fuel = u.fuel.saturating_add(fuel);
    } else {
        u.memory_pages = u.memory_pages.saturating_sub(mem);
        u.fuel = u.fuel.saturating_sub(fuel);
    }
    o.put(usage_key(requester), &crate::Record::Usage(u));
}

/// Updates a requester's reputation.
fn rate_requester(o: &mut Overlay<'_>, requester: &Address, f: impl FnOnce(&mut Reputation)) {
    let mut u = o.usage(requester);
    f(&mut u.reputation);
    o.put(usage_key(requester), &crate::Record::Usage(u));
}

/// Frees a job's reservation on a worker.
fn release(o: &mut Overlay<'_>, worker: &PublicKey, spec: &JobSpec) {
    if let Some(mut offer) = o.offer(worker) {
        offer.used_memory_pages = offer.used_memory_pages.saturating_sub(spec.memory_pages);
        offer.used_fuel = offer.used_fuel.saturating_sub(spec.fuel);
        o.set_offer(&offer);
    }
}

fn check_spec(s: &JobSpec, mp: &MarketParams) -> Result<(), TxError> {
    let bad = |m: &str| Err(TxError::BadJob(m.into()));
    if s.replicas == 0 || s.replicas > mp.max_replicas {
        return bad(&format!("replicas must be 1 to {}", mp.max_replicas));
    }
    if s.fuel == 0 {
        return bad("fuel must be positive");
    }
    if s.memory_pages == 0 || s.memory_pages > 65_536 {
        return bad("memory must be 1 to 65536 pages");
    }
    if s.deadline_blocks == 0 || s.deadline_blocks > mp.max_deadline_blocks {
        return bad(&format!(
            "deadline must be 1 to {} blocks",
            mp.max_deadline_blocks
        ));
    }
    if s.args.len() > 16 || s.args.iter().map(String::len).sum::<usize>() > 1024 {
        return bad("at most 16 arguments, 1 KiB in all");
    }
    Ok(())
}

impl State {
    /// A job by id.
    pub fn job(&self, id: u64) -> Option<JobRecord> {
        self.read().job(id)
    }
    /// A worker's market offer.
    pub fn offer(&self, id: &PublicKey) -> Option<WorkerOffer> {
        self.read().offer(id)
    }
    /// What a requester's running jobs hold, and its reputation.
    pub fn requester(&self, a: &Address) -> RequesterUsage {
        self.read().usage(a)
    }
    /// Pending and active job ids and the workers with offers.
    pub fn market_index(&self) -> MarketIndex {
        self.read().market()
    }
}

#[cfg(test)]
mod tests;
