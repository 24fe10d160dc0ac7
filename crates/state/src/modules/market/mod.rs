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

use crate::TxError;
use crate::context::{Context, Overlay, State, key, lift};
use crate::module::Module;
use crate::modules::registry;
use proctor_market::reputation::Reputation;
use proctor_market::settle::{self};
use proctor_primitives::{Address, Amount, Hash, PublicKey, Signature};

mod schedule;
mod settlement;
pub mod types;
pub use types::*;

/// Largest wrapped key accepted (HPKE encapsulated key + sealed 32 bytes).
pub const MAX_WRAPPED_KEY: usize = 256;

/// The market module.
pub(crate) struct Market;

fn job_key(id: u64) -> Hash {
    key(Market::KEY_PREFIX, "job", &[&id.to_le_bytes()])
}
fn offer_key(id: &PublicKey) -> Hash {
    key(Market::KEY_PREFIX, "offer", &[&id.0])
}
fn index_key() -> Hash {
    key(Market::KEY_PREFIX, "index", &[])
}
fn module_key(m: &Hash) -> Hash {
    key(Market::KEY_PREFIX, "module", &[&m.0])
}
fn usage_key(a: &Address) -> Hash {
    key(Market::KEY_PREFIX, "usage", &[&a.0])
}

impl Module for Market {
    const NAME: &'static str = "market";
    const KEY_PREFIX: &'static str = "proctor/market";
    const CODES: std::ops::RangeInclusive<i32> = 1130..=1199;
    type Call = Call;

    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        _tx: &crate::Transaction,
        call: &Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        let (state, env) = (cx.state, cx.env);
        state
            .apply_market_call(&mut cx.o, env, from, call)
            .map(lift)
    }

    /// Deadlines, then scheduling.
    fn end_block(cx: &mut Context<'_>) -> Result<Vec<crate::Event>, TxError> {
        let (state, env) = (cx.state, cx.env);
        state.process_market(&mut cx.o, env).map(lift)
    }

    /// Invariant for the end-of-block work: every worker assigned to an open
    /// job keeps its registration (settlement pays its operator, a late or
    /// wrong result slashes its stake).
    fn check_stake_release(o: &Overlay<'_>, identity: &PublicKey) -> Result<(), TxError> {
        if o.offer(identity)
            .is_some_and(|f| f.used_fuel > 0 || f.used_memory_pages > 0)
        {
            return Err(Error::WorkerBusy(*identity).into());
        }
        Ok(())
    }
}

/// The account that receives the treasury's share of fees and slashed stake.
pub fn treasury() -> Address {
    let h = Hash::tagged("proctor/treasury", &[]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    Address(a)
}

pub(crate) fn bps(amount: Amount, bps: u32) -> Amount {
    Amount(
        amount.0 / settle::BPS * bps as u128 + amount.0 % settle::BPS * bps as u128 / settle::BPS,
    )
}

impl Overlay<'_> {
    pub(crate) fn job(&self, id: u64) -> Option<JobRecord> {
        match self.get(&job_key(id)) {
            Some(crate::Record::Market(Record::Job(j))) => Some(j),
            _ => None,
        }
    }
    fn set_job(&mut self, j: &JobRecord) {
        self.put(job_key(j.id), Record::Job(j.clone()));
    }
    pub(crate) fn offer(&self, id: &PublicKey) -> Option<WorkerOffer> {
        match self.get(&offer_key(id)) {
            Some(crate::Record::Market(Record::Offer(o))) => Some(o),
            _ => None,
        }
    }
    fn set_offer(&mut self, o: &WorkerOffer) {
        self.put(offer_key(&o.identity), Record::Offer(o.clone()));
    }
    pub(crate) fn market(&self) -> MarketIndex {
        match self.get(&index_key()) {
            Some(crate::Record::Market(Record::Index(m))) => m,
            _ => MarketIndex::default(),
        }
    }
    fn set_market(&mut self, m: &MarketIndex) {
        self.put(index_key(), Record::Index(m.clone()));
    }
    fn module_owner(&self, m: &Hash) -> Option<Address> {
        match self.get(&module_key(m)) {
            Some(crate::Record::Market(Record::Module(a))) => Some(a),
            _ => None,
        }
    }
    fn usage(&self, a: &Address) -> RequesterUsage {
        match self.get(&usage_key(a)) {
            Some(crate::Record::Market(Record::Usage(u))) => u,
            _ => RequesterUsage::default(),
        }
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
                    return Err(Error::BadJob("an offer's speed must be positive".into()).into());
                }
                let e = o.enclave(identity).ok_or(TxError::Registry(
                    registry::Error::EnclaveNotFound(*identity),
                ))?;
                if e.operator != from {
                    return Err(TxError::Registry(registry::Error::NotOperator));
                }
                if e.unbonding_until.is_some() {
                    return Err(TxError::Registry(registry::Error::AlreadyUnbonding));
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
                    return Err(Error::ModuleOwned(owner).into());
                }
                o.put(module_key(module), Record::Module(from));
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
                    return Err(Error::EscrowMismatch {
                        expected: Amount(expected),
                        got: *escrow,
                    }
                    .into());
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
                    return Err(Error::FuelBeyondDeadline {
                        fuel: spec.fuel,
                        capacity,
                    }
                    .into());
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
                let mut j = o.job(*job).ok_or(Error::JobNotFound(*job))?;
                if j.requester != from {
                    return Err(Error::NotRequester.into());
                }
                if j.state != JobState::Assigned {
                    return Err(Error::JobState {
                        job: *job,
                        state: j.state,
                    }
                    .into());
                }
                for (i, k) in keys.iter().enumerate() {
                    if keys[..i].iter().any(|earlier| earlier.worker == k.worker) {
                        return Err(Error::BadJob(format!(
                            "worker {} appears twice in the keys",
                            k.worker
                        ))
                        .into());
                    }
                    if k.key.is_empty() || k.key.len() > MAX_WRAPPED_KEY {
                        return Err(
                            Error::BadJob("a wrapped key must be 1 to 256 bytes".into()).into()
                        );
                    }
                    let a = j
                        .assignments
                        .iter_mut()
                        .find(|a| a.worker == k.worker)
                        .ok_or(Error::NotAssigned(k.worker))?;
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
                let mut j = o.job(*job).ok_or(Error::JobNotFound(*job))?;
                if j.requester != from {
                    return Err(Error::NotRequester.into());
                }
                // Only before any work could start: no key posted yet.
                let started = j.assignments.iter().any(|a| a.key.is_some());
                if !matches!(j.state, JobState::Pending | JobState::Assigned) || started {
                    return Err(Error::JobState {
                        job: *job,
                        state: j.state,
                    }
                    .into());
                }
                Ok(vec![self.end_unpaid(
                    o,
                    env,
                    &mut j,
                    JobState::Cancelled,
                )?])
            }
        }
    }

    fn submit_result(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        report: &ResultReport,
        signature: &Signature,
    ) -> MarketResult {
        let mut j = o.job(report.job).ok_or(Error::JobNotFound(report.job))?;
        if j.state != JobState::Running {
            return Err(Error::JobState {
                job: j.id,
                state: j.state,
            }
            .into());
        }
        report
            .worker
            .verify(&report.hash().0, signature)
            .map_err(|_| Error::BadReport("not signed by the worker's enclave".into()))?;
        if report.binding != j.binding() {
            return Err(Error::BadReport(
                "the enclave ran another spec than the job's (id, spec or clock differ)".into(),
            )
            .into());
        }
        if report.module != j.spec.module || report.input != j.spec.input {
            return Err(Error::BadReport("module or input differ from the job's".into()).into());
        }
        if report.instructions > j.spec.fuel {
            return Err(Error::BadReport(format!(
                "{} instructions exceed the job's fuel {}",
                report.instructions, j.spec.fuel
            ))
            .into());
        }
        let a = j
            .assignments
            .iter_mut()
            .find(|a| a.worker == report.worker)
            .ok_or(Error::NotAssigned(report.worker))?;
        if a.report.is_some() {
            return Err(Error::AlreadyReported.into());
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
        let bad = |m: &str| TxError::from(Error::BadRefusal(m.into()));
        let mut j = o.job(r.job).ok_or(Error::JobNotFound(r.job))?;
        if !j.state.is_active() {
            return Err(Error::JobState {
                job: j.id,
                state: j.state,
            }
            .into());
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
            .ok_or(Error::NotAssigned(r.worker))?;
        if a.report.is_some() {
            return Err(Error::AlreadyReported.into());
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
    o.put(usage_key(requester), Record::Usage(u));
}

/// Updates a requester's reputation.
fn rate_requester(o: &mut Overlay<'_>, requester: &Address, f: impl FnOnce(&mut Reputation)) {
    let mut u = o.usage(requester);
    f(&mut u.reputation);
    o.put(usage_key(requester), Record::Usage(u));
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
    let bad = |m: &str| Err(Error::BadJob(m.into()).into());
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
