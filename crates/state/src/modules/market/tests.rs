//! The job lifecycle end to end in the state machine, with real simulated
//! enclaves signing reports; every block checks that supply (balances,
//! stakes and open escrows) grows by exactly the block reward.

use crate::jobs::*;
use crate::testkit::{self, keys};
use crate::*;
use crate::{Call, Event};
use proctor_market::SCALE;
use proctor_market::settle::{self, FeeSplit};
use proctor_primitives::{Address, Amount, Hash, Keypair, PublicKey};
use proctor_tee::Platform;
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};

const STAKE: u128 = 1_000_000;
const PRICE: u128 = 10;
/// Workers' speed: 1M instructions a second, 5M in a 5-block deadline.
const SPEED: u64 = 1_000_000;

/// A chain with `workers` registered enclaves offering work at PRICE.
struct Market {
    ks: Vec<Keypair>,
    g: Genesis,
    state: State,
    height: u64,
    nonces: Vec<u64>,
    enclaves: Vec<SimPlatform>,
}

/// Key indices: 0 requester, 1 app owner, 2 miner, 3.. worker operators.
const REQUESTER: usize = 0;
const APP: usize = 1;
const MINER: usize = 2;

impl Market {
    fn new(name: &str, workers: usize) -> Market {
        let ks = keys(3 + workers);
        let root = SimAttestationRoot::from_secret(&[7; 32]);
        let mut params = testkit::params(Some(root.public()), sim_measurement());
        params.market.max_deadline_blocks = 100;
        // Short, so random runs reach withdrawals while jobs are open.
        params.unbonding_blocks = 2;
        let g = testkit::genesis(&ks, 1_000_000_000, params);
        let state = State::genesis(&g).unwrap();
        let enclaves = (0..workers)
            .map(|i| {
                let d = std::env::temp_dir()
                    .join(format!("proctor-jobs-{name}-{i}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&d);
                SimPlatform::open(&d, SimAttestationRoot::from_secret(&[7; 32])).unwrap()
            })
            .collect();
        let mut m = Market {
            nonces: vec![0; ks.len()],
            ks,
            g,
            state,
            height: 0,
            enclaves,
        };
        for i in 0..workers {
            let reg = testkit::register_call(
                &m.enclaves[i],
                &m.ks[3 + i].public().address(),
                &m.g.hash(),
                5_000,
                STAKE,
            );
            m.ok(3 + i, reg);
            let offer = Call::Market(crate::market::Call::SetOffer {
                identity: m.enclaves[i].identity(),
                price: Amount(PRICE),
                memory_pages: 1_000,
                fuel: 1_000_000,
                speed: SPEED,
            });
            m.ok(3 + i, offer);
        }
        m
    }

    /// Applies a block with `who`'s `call` (or none); checks supply.
    fn block(&mut self, tx: Option<(usize, Call)>) -> Result<(Vec<Event>, Vec<Event>), TxError> {
        let txs: Vec<SignedTransaction> = tx
            .iter()
            .map(|(who, call)| {
                Transaction {
                    chain: self.g.hash(),
                    signer: self.ks[*who].public(),
                    nonce: self.nonces[*who],
                    fee: Amount(1),
                    call: call.clone(),
                }
                .sign(&self.ks[*who])
            })
            .collect();
        let env = BlockEnv {
            height: self.height + 1,
            timestamp: 1_700_000_000_000 + (self.height + 1) * 1000,
            miner: self.ks[MINER].public().address(),
        };
        let before = self.state.total_supply();
        match self.state.apply_block(&env, &txs) {
            Ok(a) => {
                assert_eq!(
                    a.state.total_supply(),
                    before + self.g.params.block_reward.0,
                    "supply at height {}",
                    env.height
                );
                if let Some((who, _)) = tx {
                    self.nonces[who] += 1;
                }
                self.height += 1;
                self.state = a.state;
                let receipt = a
                    .receipts
                    .first()
                    .map(|r| r.events.clone())
                    .unwrap_or_default();
                Ok((receipt, a.events))
            }
            Err(BlockError::Tx { error, .. }) => Err(error),
            Err(e) => panic!("{e}"),
        }
    }

    /// Applies an empty block on the current state without keeping it: the
    /// end-of-block work alone (deadlines, settlement, slashing, scheduling).
    fn empty_block(&self) -> Result<Applied, BlockError> {
        let env = BlockEnv {
            height: self.height + 1,
            timestamp: 1_700_000_000_000 + (self.height + 1) * 1000,
            miner: self.ks[MINER].public().address(),
        };
        self.state.apply_block(&env, &[])
    }

    fn ok(&mut self, who: usize, call: Call) -> (Vec<Event>, Vec<Event>) {
        self.block(Some((who, call))).unwrap()
    }

    fn tick(&mut self) -> Vec<Event> {
        self.block(None).unwrap().1
    }

    fn balance(&self, who: usize) -> u128 {
        self.state
            .account(&self.ks[who].public().address())
            .balance
            .0
    }

    fn addr_balance(&self, a: &Address) -> u128 {
        self.state.account(a).balance.0
    }

    fn spec(&self, replicas: u8, fuel: u64) -> JobSpec {
        JobSpec {
            module: Hash::of(b"module"),
            input: Hash::of(b"encrypted input"),
            memory_pages: 100,
            fuel,
            max_price: Amount(20),
            replicas,
            deadline_blocks: 5,
            retention_blocks: 10,
            output_key: [9; 32],
            args: vec![],
        }
    }

    fn submit(&mut self, spec: JobSpec) -> u64 {
        let escrow = escrow_of(&spec, &self.g.params.market.fees);
        let (events, _) = self.ok(
            REQUESTER,
            Call::Market(crate::market::Call::SubmitJob {
                spec,
                escrow: Amount(escrow),
            }),
        );
        match events.last() {
            Some(Event::Market(crate::market::Event::JobSubmitted { job, .. })) => *job,
            other => panic!("{other:?}"),
        }
    }

    fn worker_index(&self, id: &PublicKey) -> usize {
        self.enclaves
            .iter()
            .position(|e| e.identity() == *id)
            .unwrap()
    }

    fn post_keys(&mut self, job: u64) {
        let j = self.state.job(job).unwrap();
        let keys = j
            .assignments
            .iter()
            .filter(|a| a.key.is_none())
            .map(|a| WrappedKey {
                worker: a.worker,
                key: vec![1; 48],
            })
            .collect();
        self.ok(
            REQUESTER,
            Call::Market(crate::market::Call::PostKeys { job, keys }),
        );
    }

    fn report(&self, job: u64, worker: &PublicKey, instructions: u64, output: &[u8]) -> Call {
        let j = self.state.job(job).unwrap();
        let report = ResultReport {
            job,
            worker: *worker,
            binding: j.binding(),
            module: j.spec.module,
            input: j.spec.input,
            output: Hash::of(output),
            instructions,
            commitment: Hash::tagged("commitment", &[b"K", output]),
        };
        let signature = self.enclaves[self.worker_index(worker)].sign(&report.hash().0);
        Call::Market(crate::market::Call::SubmitResult { report, signature })
    }

    fn operator_of(&self, id: &PublicKey) -> usize {
        3 + self.worker_index(id)
    }
}

fn escrow_of(spec: &JobSpec, fees: &FeeSplit) -> u128 {
    settle::escrow(spec.fuel, spec.max_price.0, spec.replicas as u32, fees).unwrap()
}

#[test]
fn one_replica_runs_settles_and_pays_exact_shares() {
    let mut m = Market::new("one", 1);
    m.ok(
        APP,
        Call::Market(crate::market::Call::RegisterModule {
            module: Hash::of(b"module"),
        }),
    );
    let (req0, app0) = (m.balance(REQUESTER), m.balance(APP));
    let spec = m.spec(1, 1_000);
    let escrow = escrow_of(&spec, &m.g.params.market.fees);
    // 1,000 fuel x 20 max price = 20,000, plus 5% = 21,000.
    assert_eq!(escrow, 21_000);
    let job = m.submit(spec);
    // Placed at the end of the same block.
    let j = m.state.job(job).unwrap();
    assert_eq!(j.state, JobState::Assigned);
    let w = j.assignments[0].worker;
    let op0 = m.balance(m.operator_of(&w));
    let treasury0 = m.addr_balance(&treasury());
    m.post_keys(job);
    assert_eq!(m.state.job(job).unwrap().state, JobState::Running);
    let report = m.report(job, &w, 600, b"the output");
    let (events, _) = m.ok(m.operator_of(&w), report);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Market(crate::market::Event::JobEnded {
            state: JobState::Settled,
            ..
        })
    )));
    let j = m.state.job(job).unwrap();
    assert_eq!(
        (j.state, j.paid.0, j.instructions),
        (JobState::Settled, 6_000, 600)
    );
    // By hand: pay 600 x 10 = 6,000; fee 5% = 300: provider 40% = 120,
    // app 20% = 60, treasury 120; refund 21,000 - 6,300 = 14,700.
    assert_eq!(j.refund.0, 14_700);
    assert_eq!(
        m.balance(REQUESTER),
        req0 - 21_000 - 2 + 14_700,
        "escrow, two fees, refund"
    );
    assert_eq!(m.balance(m.operator_of(&w)), op0 - 1 + 6_000 + 120);
    assert_eq!(m.balance(APP), app0 + 60);
    assert_eq!(m.addr_balance(&treasury()), treasury0 + 120);
    // Resources are free again; the worker's reputation rose.
    let offer = m.state.offer(&w).unwrap();
    assert_eq!((offer.used_memory_pages, offer.used_fuel), (0, 0));
    assert_eq!(offer.reputation.completed, 1);
    // The requester's record too: a completed deal raises its fair-share weight.
    let r = m.state.requester(&m.ks[REQUESTER].public().address());
    assert_eq!((r.memory_pages, r.fuel, r.reputation.completed), (0, 0, 1));
    assert!(r.weight() > SCALE, "{}", r.weight());
    assert!(m.state.market_index().active.is_empty());
}

/// A report the enclave signed for a spec other than the job's (a host
/// that altered the job it handed over, and got a result for that) is
/// refused by the chain, even though its module and input match.
#[test]
fn a_report_for_another_spec_is_refused() {
    let mut m = Market::new("binding", 1);
    let job = m.submit(m.spec(1, 1_000));
    let w = m.state.job(job).unwrap().assignments[0].worker;
    m.post_keys(job);
    let Call::Market(crate::market::Call::SubmitResult { mut report, .. }) =
        m.report(job, &w, 600, b"out")
    else {
        unreachable!()
    };
    let j = m.state.job(job).unwrap();
    let mut altered = j.spec.clone();
    altered.output_key = [66; 32];
    for binding in [
        job_binding(job, &altered, j.submitted_ms),
        job_binding(job, &j.spec, j.submitted_ms + 1),
        job_binding(job + 1, &j.spec, j.submitted_ms),
    ] {
        report.binding = binding;
        let signature = m.enclaves[m.worker_index(&w)].sign(&report.hash().0);
        let forged = Call::Market(crate::market::Call::SubmitResult {
            report: report.clone(),
            signature,
        });
        let e = m.block(Some((m.operator_of(&w), forged))).unwrap_err();
        assert!(
            matches!(e, TxError::Market(crate::market::Error::BadReport(_))),
            "{e}"
        );
        assert_eq!(e.code(), 1136);
    }
    assert_eq!(m.state.job(job).unwrap().state, JobState::Running);
}

/// A worker's enclave refuses a job through the requester's doing: the job
/// ends unpaid, the requester pays the expiry fee, the worker keeps its
/// whole stake and its capacity. A refusal that names another spec or
/// another key (what a host gets by altering the job), one not signed by
/// the enclave, one before the key is posted, or one from a worker not on
/// the job, is refused.
#[test]
fn a_signed_refusal_ends_the_job_unpaid_and_no_one_is_slashed() {
    let mut m = Market::new("refuse", 2);
    let job = m.submit(m.spec(1, 1_000));
    let j = m.state.job(job).unwrap();
    let w = j.assignments[0].worker;
    let other = m
        .enclaves
        .iter()
        .map(|e| e.identity())
        .find(|id| *id != w)
        .unwrap();
    let refusal = |binding, key, worker| JobRefusal {
        job,
        worker,
        binding,
        key,
        reason: RefusalReason::KeyDoesNotOpen,
    };
    let posted = Hash::of(&[1u8; 48]);
    let signed = |m: &Market, r: JobRefusal, by: &PublicKey| {
        Call::Market(crate::market::Call::RefuseJob {
            signature: m.enclaves[m.worker_index(by)].sign(&r.hash().0),
            refusal: r,
        })
    };
    let honest = refusal(j.binding(), posted, w);
    // Before the key is posted there is nothing to refuse.
    let e = m.block(Some((m.operator_of(&w), signed(&m, honest.clone(), &w))));
    assert!(
        matches!(e, Err(TxError::Market(crate::market::Error::BadRefusal(_)))),
        "{e:?}"
    );
    m.post_keys(job);

    let mut altered = j.spec.clone();
    altered.output_key = [66; 32];
    let forged = [
        signed(
            &m,
            refusal(job_binding(job, &altered, j.submitted_ms), posted, w),
            &w,
        ),
        signed(&m, refusal(j.binding(), Hash::of(b"another key"), w), &w),
        signed(&m, honest.clone(), &other),
    ];
    for call in forged {
        let e = m.block(Some((m.operator_of(&w), call))).unwrap_err();
        assert_eq!(e.code(), 1141, "{e}");
    }
    let e = m
        .block(Some((
            m.operator_of(&other),
            signed(&m, refusal(j.binding(), posted, other), &other),
        )))
        .unwrap_err();
    assert_eq!(e, TxError::Market(crate::market::Error::NotAssigned(other)));
    assert_eq!(m.state.job(job).unwrap().state, JobState::Running);

    let (req0, stake0) = (m.balance(REQUESTER), m.state.enclave(&w).unwrap().stake);
    let treasury0 = m.addr_balance(&treasury());
    let (events, _) = m.ok(m.operator_of(&w), signed(&m, honest, &w));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Market(crate::market::Event::JobRefused {
            reason: RefusalReason::KeyDoesNotOpen,
            ..
        })
    )));
    let j = m.state.job(job).unwrap();
    assert_eq!(
        (j.state, j.refusal),
        (JobState::Refused, Some(RefusalReason::KeyDoesNotOpen))
    );
    let fee = m.g.params.market.expiry_fee.0;
    assert_eq!(j.refund.0, j.escrow.0 - fee);
    assert_eq!(m.balance(REQUESTER), req0 + j.escrow.0 - fee);
    assert_eq!(m.addr_balance(&treasury()), treasury0 + fee);
    assert_eq!(m.state.enclave(&w).unwrap().stake, stake0, "not slashed");
    let offer = m.state.offer(&w).unwrap();
    assert_eq!((offer.used_memory_pages, offer.used_fuel), (0, 0));
    assert!(m.state.market_index().active.is_empty());
}

/// A key posted too late for the fuel at the speed the worker offered when
/// it was placed: the worker's refusal stands (no slash, the requester pays
/// the expiry fee). A key in time, or a worker that slowed its offer down
/// afterwards, does not make a refusal stand.
#[test]
fn a_key_posted_too_late_may_be_refused_one_in_time_may_not() {
    let mut m = Market::new("late", 2);
    for w in 0..2 {
        let id = m.enclaves[w].identity();
        m.ok(
            m.operator_of(&id),
            Call::Market(crate::market::Call::SetOffer {
                identity: id,
                price: Amount(PRICE),
                memory_pages: 1_000,
                fuel: 1_000_000,
                speed: 900_000,
            }),
        );
    }
    // 1M fuel, 5 blocks: 4.5M at 900k a second.
    let late_refusal = |m: &Market, job: u64| {
        let j = m.state.job(job).unwrap();
        let a = &j.assignments[0];
        let refusal = JobRefusal {
            job,
            worker: a.worker,
            binding: j.binding(),
            key: Hash::of(a.key.as_deref().unwrap()),
            reason: RefusalReason::TooLittleTime,
        };
        let signature = m.enclaves[m.worker_index(&a.worker)].sign(&refusal.hash().0);
        (
            m.operator_of(&a.worker),
            Call::Market(crate::market::Call::RefuseJob { refusal, signature }),
        )
    };
    let in_time = m.submit(m.spec(1, 1_000_000));
    m.post_keys(in_time);
    let w = m.state.job(in_time).unwrap().assignments[0].worker;
    // Slowing down after placement changes nothing.
    let offer = |speed| {
        Call::Market(crate::market::Call::SetOffer {
            identity: w,
            price: Amount(PRICE),
            memory_pages: 1_000,
            fuel: 1_000_000,
            speed,
        })
    };
    m.ok(m.operator_of(&w), offer(1));
    let (who, call) = late_refusal(&m, in_time);
    let e = m.block(Some((who, call))).unwrap_err();
    assert!(
        matches!(e, TxError::Market(crate::market::Error::BadRefusal(_))),
        "{e}"
    );
    m.ok(m.operator_of(&w), offer(900_000));

    // The in-time job goes on; the slowed worker is busy with it, and the
    // next job goes to the other one (at 900k).
    let late = m.submit(m.spec(1, 1_000_000));
    assert_ne!(m.state.job(late).unwrap().assignments[0].worker, w);
    let deadline = m.state.job(late).unwrap().deadline;
    while m.height + 2 < deadline {
        m.tick();
    }
    // Posted one block before the deadline: 900k < 1M.
    m.post_keys(late);
    assert_eq!(m.state.job(late).unwrap().state, JobState::Running);
    let (who, call) = late_refusal(&m, late);
    m.ok(who, call);
    let j = m.state.job(late).unwrap();
    assert_eq!(
        (j.state, j.refusal),
        (JobState::Refused, Some(RefusalReason::TooLittleTime))
    );
}

/// A job whose fuel the slowest offered worker cannot run before the
/// deadline is refused at submission; once offered, a job goes only to
/// workers fast enough for it.
#[test]
fn fuel_must_fit_the_deadline_at_the_offered_speed() {
    let mut m = Market::new("speed", 2);
    // One block's deadline: SPEED x 1 s = 1M instructions.
    let spec = |m: &Market, fuel| JobSpec {
        deadline_blocks: 1,
        ..m.spec(1, fuel)
    };
    let submit = |m: &mut Market, fuel| {
        let spec = spec(m, fuel);
        let escrow = Amount(escrow_of(&spec, &m.g.params.market.fees));
        m.block(Some((
            REQUESTER,
            Call::Market(crate::market::Call::SubmitJob { spec, escrow }),
        )))
    };
    let e = submit(&mut m, 1_000_001).unwrap_err();
    assert_eq!(
        e,
        TxError::Market(crate::market::Error::FuelBeyondDeadline {
            fuel: 1_000_001,
            capacity: 1_000_000
        })
    );
    assert_eq!(e.code(), 1140);
    let fits = m.submit(spec(&m, 1_000_000));
    assert_eq!(m.state.job(fits).unwrap().state, JobState::Assigned);
    m.tick();
    m.tick();

    // One worker slows down to half: 800k no longer fits the slowest.
    let slow = m.enclaves[0].identity();
    m.ok(
        m.operator_of(&slow),
        Call::Market(crate::market::Call::SetOffer {
            identity: slow,
            price: Amount(PRICE),
            memory_pages: 1_000,
            fuel: 1_000_000,
            speed: SPEED / 2,
        }),
    );
    let e = submit(&mut m, 800_000).unwrap_err();
    assert!(
        matches!(
            e,
            TxError::Market(crate::market::Error::FuelBeyondDeadline {
                capacity: 500_000,
                ..
            })
        ),
        "{e}"
    );
    // 400k fits both.
    let small = m.submit(spec(&m, 400_000));
    assert_eq!(m.state.job(small).unwrap().state, JobState::Assigned);
}

/// A job waiting for a worker is not placed on one too slow for its fuel,
/// though it is free: it waits for a fast one.
#[test]
fn a_pending_job_waits_for_a_worker_fast_enough() {
    let mut m = Market::new("placement", 2);
    let spec = |m: &Market, deadline_blocks| JobSpec {
        deadline_blocks,
        ..m.spec(1, 1_000_000)
    };
    let a = m.submit(spec(&m, 10));
    let b = m.submit(spec(&m, 10));
    let c = m.submit(spec(&m, 20));
    assert_eq!(
        m.state.job(c).unwrap().state,
        JobState::Pending,
        "both busy"
    );
    let y = m.state.job(b).unwrap().assignments[0].worker;
    let x = m.state.job(a).unwrap().assignments[0].worker;
    // Y now runs 10k a second: 200k in C's 20 blocks, short of its 1M.
    m.ok(
        m.operator_of(&y),
        Call::Market(crate::market::Call::SetOffer {
            identity: y,
            price: Amount(PRICE),
            memory_pages: 1_000,
            fuel: 1_000_000,
            speed: 10_000,
        }),
    );
    m.ok(
        REQUESTER,
        Call::Market(crate::market::Call::CancelJob { job: b }),
    );
    assert_eq!(m.state.offer(&y).unwrap().used_fuel, 0, "Y is free");
    assert_eq!(m.state.job(c).unwrap().state, JobState::Pending, "not on Y");
    m.ok(
        REQUESTER,
        Call::Market(crate::market::Call::CancelJob { job: a }),
    );
    let j = m.state.job(c).unwrap();
    assert_eq!(j.state, JobState::Assigned);
    assert_eq!(j.assignments[0].worker, x, "on the fast one");
}

#[test]
fn three_replicas_the_outvoted_worker_is_slashed_the_others_paid() {
    let mut m = Market::new("three", 3);
    let job = m.submit(m.spec(3, 1_000));
    let workers: Vec<PublicKey> = m
        .state
        .job(job)
        .unwrap()
        .assignments
        .iter()
        .map(|a| a.worker)
        .collect();
    assert_eq!(workers.len(), 3);
    let before: Vec<u128> = workers
        .iter()
        .map(|w| m.balance(m.operator_of(w)))
        .collect();
    let treasury0 = m.addr_balance(&treasury());
    m.post_keys(job);
    for (i, w) in workers.iter().enumerate() {
        let output: &[u8] = if i == 1 { b"wrong" } else { b"right" };
        let r = m.report(job, w, 500, output);
        m.ok(m.operator_of(w), r);
    }
    let j = m.state.job(job).unwrap();
    assert_eq!(j.state, JobState::Settled);
    assert_eq!(j.output, Some(Hash::of(b"right")));
    assert_eq!(j.failed, vec![workers[1]]);
    // Honest: 5,000 each plus half the provider fee (10,000 x 5% x 40% / 2 = 100).
    for i in [0, 2] {
        assert_eq!(
            m.balance(m.operator_of(&workers[i])),
            before[i] - 1 + 5_000 + 100
        );
    }
    // Outvoted: its fee only; 10% of its stake goes to the treasury.
    assert_eq!(m.balance(m.operator_of(&workers[1])), before[1] - 1);
    let e = m.state.enclave(&workers[1]).unwrap();
    assert_eq!(e.stake.0, STAKE - STAKE / 10);
    // Treasury: the slash, its fee share (500 x 40% = 200) and, as nobody
    // registered the module, the application share (500 x 20% = 100).
    assert_eq!(m.addr_balance(&treasury()), treasury0 + STAKE / 10 + 300);
    let rep = m.state.offer(&workers[1]).unwrap().reputation;
    assert_eq!((rep.completed, rep.failed), (0, 1));
}

#[test]
fn a_silent_worker_is_slashed_and_replaced_and_the_job_completes() {
    let mut m = Market::new("silent", 2);
    let job = m.submit(m.spec(1, 1_000));
    let first = m.state.job(job).unwrap().assignments[0].worker;
    m.post_keys(job);
    let deadline = m.state.job(job).unwrap().deadline;
    // Nobody reports; after the deadline the job is requeued and placed on
    // the other worker in the same block.
    while m.height <= deadline {
        m.tick();
    }
    let j = m.state.job(job).unwrap();
    assert_eq!(j.failed, vec![first]);
    assert_eq!(j.reassignments, 1);
    assert_eq!(j.state, JobState::Assigned, "the new worker needs its key");
    let second = j.assignments[0].worker;
    assert_ne!(second, first);
    assert_eq!(
        m.state.enclave(&first).unwrap().stake.0,
        STAKE - STAKE / 100
    );
    m.post_keys(job);
    let r = m.report(job, &second, 10, b"out");
    m.ok(m.operator_of(&second), r);
    assert_eq!(m.state.job(job).unwrap().state, JobState::Settled);
    // A report from the replaced worker is refused.
    let late = m.report(job, &first, 10, b"out");
    assert!(m.block(Some((m.operator_of(&first), late))).is_err());
}

#[test]
fn keys_never_posted_expire_the_job_refunded_minus_the_fee() {
    let mut m = Market::new("expire", 1);
    let req0 = m.balance(REQUESTER);
    let job = m.submit(m.spec(1, 1_000));
    let deadline = m.state.job(job).unwrap().deadline;
    while m.height <= deadline {
        m.tick();
    }
    let j = m.state.job(job).unwrap();
    assert_eq!(j.state, JobState::Expired);
    let fee = m.g.params.market.expiry_fee.0;
    assert_eq!(m.balance(REQUESTER), req0 - 1 - fee);
    let w = &m.enclaves[0].identity();
    assert_eq!(
        m.state.enclave(w).unwrap().stake.0,
        STAKE,
        "not the worker's fault"
    );
    // But the requester's: its weight in the fair share drops below 1.
    let r = m.state.requester(&m.ks[REQUESTER].public().address());
    assert_eq!(r.reputation.failed, 1);
    assert!(r.weight() < SCALE);
}

#[test]
fn cancel_before_keys_only() {
    let mut m = Market::new("cancel", 1);
    let req0 = m.balance(REQUESTER);
    let job = m.submit(m.spec(1, 1_000));
    m.ok(
        REQUESTER,
        Call::Market(crate::market::Call::CancelJob { job }),
    );
    assert_eq!(m.state.job(job).unwrap().state, JobState::Cancelled);
    let fee = m.g.params.market.expiry_fee.0;
    assert_eq!(m.balance(REQUESTER), req0 - 2 - fee);
    // Once keys are out, the work may be under way: no cancelling.
    let job = m.submit(m.spec(1, 1_000));
    m.post_keys(job);
    let e = m
        .block(Some((
            REQUESTER,
            Call::Market(crate::market::Call::CancelJob { job }),
        )))
        .unwrap_err();
    assert_eq!(e.code(), 1134);
    // Nor by anyone else.
    let other = m.submit(m.spec(1, 1_000));
    let e = m
        .block(Some((
            APP,
            Call::Market(crate::market::Call::CancelJob { job: other }),
        )))
        .unwrap_err();
    assert_eq!(e, TxError::Market(crate::market::Error::NotRequester));
}

#[test]
fn bad_submissions_and_reports_each_have_their_own_error() {
    let mut m = Market::new("errors", 2);
    let spec = m.spec(1, 1_000);
    let e = m
        .block(Some((
            REQUESTER,
            Call::Market(crate::market::Call::SubmitJob {
                spec: spec.clone(),
                escrow: Amount(5),
            }),
        )))
        .unwrap_err();
    assert!(
        matches!(
            e,
            TxError::Market(crate::market::Error::EscrowMismatch { .. })
        ),
        "{e}"
    );
    for bad in [m.spec(0, 1_000), m.spec(8, 1_000), m.spec(1, 0)] {
        let escrow = Amount(escrow_of(&bad, &m.g.params.market.fees));
        let e = m
            .block(Some((
                REQUESTER,
                Call::Market(crate::market::Call::SubmitJob { spec: bad, escrow }),
            )))
            .unwrap_err();
        assert_eq!(e.code(), 1132, "{e}");
    }
    let job = m.submit(spec);
    let w = m.state.job(job).unwrap().assignments[0].worker;
    let idle = m
        .enclaves
        .iter()
        .map(|e| e.identity())
        .find(|i| *i != w)
        .unwrap();
    // Before the keys: not running.
    let r = m.report(job, &w, 10, b"x");
    assert_eq!(m.block(Some((3, r))).unwrap_err().code(), 1134);
    m.post_keys(job);
    // Signed by another enclave.
    let Call::Market(crate::market::Call::SubmitResult { report, .. }) =
        m.report(job, &w, 10, b"x")
    else {
        unreachable!()
    };
    let forged = Call::Market(crate::market::Call::SubmitResult {
        signature: m.enclaves[m.worker_index(&idle)].sign(&report.hash().0),
        report: report.clone(),
    });
    assert_eq!(m.block(Some((3, forged))).unwrap_err().code(), 1136);
    // More instructions than the fuel.
    let r = m.report(job, &w, 1_001, b"x");
    assert_eq!(m.block(Some((3, r))).unwrap_err().code(), 1136);
    // A worker not on the job.
    let r = m.report(job, &idle, 10, b"x");
    assert_eq!(
        m.block(Some((3, r))).unwrap_err(),
        TxError::Market(crate::market::Error::NotAssigned(idle))
    );
    // Keys for a worker not on the job.
    let e = m
        .block(Some((
            REQUESTER,
            Call::Market(crate::market::Call::PostKeys {
                job,
                keys: vec![WrappedKey {
                    worker: idle,
                    key: vec![1],
                }],
            }),
        )))
        .unwrap_err();
    assert_eq!(e.code(), 1134, "already running: keys are in");
    // Module ownership is first come.
    m.ok(
        APP,
        Call::Market(crate::market::Call::RegisterModule {
            module: Hash::of(b"m"),
        }),
    );
    let e = m
        .block(Some((
            REQUESTER,
            Call::Market(crate::market::Call::RegisterModule {
                module: Hash::of(b"m"),
            }),
        )))
        .unwrap_err();
    assert_eq!(e.code(), 1138);
}

/// A requester lists one worker twice in `PostKeys` (and leaves the other
/// replica out): refused as a whole, nothing posted.
#[test]
fn post_keys_naming_a_worker_twice_is_refused() {
    let mut m = Market::new("dupkeys", 2);
    let spec = m.spec(2, 1_000);
    let job = m.submit(spec);
    let j = m.state.job(job).unwrap();
    assert_eq!(j.state, JobState::Assigned);
    let w = j.assignments[0].worker;
    let key = |b: u8| WrappedKey {
        worker: w,
        key: vec![b; 48],
    };
    let e = m
        .block(Some((
            REQUESTER,
            Call::Market(crate::market::Call::PostKeys {
                job,
                keys: vec![key(1), key(2)],
            }),
        )))
        .unwrap_err();
    assert_eq!(e.code(), 1132, "{e}");
    let j = m.state.job(job).unwrap();
    assert!(j.assignments.iter().all(|a| a.key.is_none()));
    m.post_keys(job);
    assert_eq!(m.state.job(job).unwrap().state, JobState::Running);
}

#[test]
fn the_scheduler_spreads_jobs_and_respects_capacity() {
    let mut m = Market::new("spread", 2);
    // Each worker offers 1,000 pages; jobs take 400: two per worker fit.
    let mut spec = m.spec(1, 1_000);
    spec.memory_pages = 400;
    let jobs: Vec<u64> = (0..5).map(|_| m.submit(spec.clone())).collect();
    let assigned: Vec<u64> = jobs
        .iter()
        .copied()
        .filter(|j| m.state.job(*j).unwrap().state == JobState::Assigned)
        .collect();
    assert_eq!(assigned.len(), 4);
    assert_eq!(m.state.market_index().pending, vec![jobs[4]]);
    for w in m.enclaves.iter().map(|e| e.identity()) {
        assert_eq!(m.state.offer(&w).unwrap().used_memory_pages, 800);
    }
    // One finishes (cancelled): the waiting job gets its place.
    m.ok(
        REQUESTER,
        Call::Market(crate::market::Call::CancelJob { job: jobs[0] }),
    );
    assert_eq!(m.state.job(jobs[4]).unwrap().state, JobState::Assigned);
}

mod conservation {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Submit {
            replicas: u8,
            fuel: u64,
        },
        PostKeys,
        Report {
            worker: usize,
            instructions: u64,
            wrong: bool,
        },
        Cancel,
        Wait,
        /// The worker's operator deregisters its enclave (it unbonds).
        Deregister(usize),
        /// ... withdraws its stake (the enclave record goes).
        Withdraw(usize),
        /// ... registers it again.
        Register(usize),
        /// ... changes its offer.
        Offer(usize, u64),
        /// The worker's enclave refuses the last job (signed, honest).
        Refuse(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u8..=3, 1u64..5_000).prop_map(|(replicas, fuel)| Step::Submit { replicas, fuel }),
            Just(Step::PostKeys),
            (0usize..3, 0u64..5_000, any::<bool>()).prop_map(|(worker, instructions, wrong)| {
                Step::Report {
                    worker,
                    instructions,
                    wrong,
                }
            }),
            Just(Step::Cancel),
            Just(Step::Wait),
            (0usize..3).prop_map(Step::Deregister),
            (0usize..3).prop_map(Step::Withdraw),
            (0usize..3).prop_map(Step::Register),
            (0usize..3, 1u64..2_000_000).prop_map(|(w, fuel)| Step::Offer(w, fuel)),
            (0usize..3).prop_map(Step::Refuse),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random interleavings of every job path (success, outvoted, silent,
        /// expiry, cancel, invalid calls) with workers deregistering,
        /// withdrawing, registering again and changing offers while their
        /// jobs are open: after every step an empty block applies (the
        /// end-of-block work never fails), every block conserves supply, and
        /// when all jobs have ended no escrow is left.
        #[test]
        fn escrow_and_supply_are_conserved_on_every_path(steps in proptest::collection::vec(step(), 1..40)) {
            let mut m = Market::new("prop", 3);
            let mut last = None;
            for s in steps {
                let step_taken = s.clone();
                // Invalid calls may fail; supply is checked either way.
                let _ = match s {
                    Step::Submit { replicas, fuel } => {
                        let spec = m.spec(replicas, fuel);
                        let escrow = Amount(escrow_of(&spec, &m.g.params.market.fees));
                        let r = m.block(Some((REQUESTER, Call::Market(crate::market::Call::SubmitJob { spec, escrow }))));
                        if let Ok((ev, _)) = &r
                            && let Some(Event::Market(crate::market::Event::JobSubmitted { job, .. })) = ev.last()
                        {
                            last = Some(*job);
                        }
                        r.map(|_| ())
                    }
                    Step::PostKeys => match last {
                        Some(job) if m.state.job(job).unwrap().state == JobState::Assigned => {
                            m.post_keys(job);
                            Ok(())
                        }
                        _ => Ok(()),
                    },
                    Step::Report { worker, instructions, wrong } => match last {
                        Some(job) => {
                            let w = m.enclaves[worker].identity();
                            let out: &[u8] = if wrong { b"wrong" } else { b"right" };
                            let r = m.report(job, &w, instructions, out);
                            m.block(Some((3 + worker, r))).map(|_| ())
                        }
                        None => Ok(()),
                    },
                    Step::Cancel => match last {
                        Some(job) => m.block(Some((REQUESTER, Call::Market(crate::market::Call::CancelJob { job })))).map(|_| ()),
                        None => Ok(()),
                    },
                    Step::Wait => {
                        m.tick();
                        Ok(())
                    }
                    Step::Refuse(w) => match last.and_then(|job| m.state.job(job)) {
                        Some(j) => {
                            let worker = m.enclaves[w].identity();
                            let key = j
                                .assignments
                                .iter()
                                .find(|a| a.worker == worker)
                                .and_then(|a| a.key.as_deref())
                                .map_or(Hash::ZERO, Hash::of);
                            let refusal = JobRefusal {
                                job: j.id,
                                worker,
                                binding: j.binding(),
                                key,
                                reason: RefusalReason::InputUndecryptable,
                            };
                            let signature = m.enclaves[w].sign(&refusal.hash().0);
                            let call = Call::Market(crate::market::Call::RefuseJob { refusal, signature });
                            m.block(Some((3 + w, call))).map(|_| ())
                        }
                        None => Ok(()),
                    },
                    Step::Deregister(w) => {
                        let identity = m.enclaves[w].identity();
                        m.block(Some((3 + w, Call::Registry(crate::registry::Call::DeregisterEnclave { identity })))).map(|_| ())
                    }
                    Step::Withdraw(w) => {
                        let identity = m.enclaves[w].identity();
                        m.block(Some((3 + w, Call::Registry(crate::registry::Call::WithdrawStake { identity })))).map(|_| ())
                    }
                    Step::Register(w) => {
                        let operator = m.ks[3 + w].public().address();
                        let call = testkit::register_call(
                            &m.enclaves[w],
                            &operator,
                            &m.g.hash(),
                            m.height + 100,
                            STAKE,
                        );
                        m.block(Some((3 + w, call))).map(|_| ())
                    }
                    Step::Offer(w, fuel) => {
                        let offer = Call::Market(crate::market::Call::SetOffer {
                            identity: m.enclaves[w].identity(),
                            price: Amount(PRICE),
                            memory_pages: 1_000,
                            fuel,
                            speed: SPEED,
                        });
                        m.block(Some((3 + w, offer))).map(|_| ())
                    }
                };
                if let Err(e) = m.empty_block() {
                    prop_assert!(false, "an empty block fails after {step_taken:?}: {e}");
                }
            }
            // Run out every deadline: all jobs end, and their escrow is gone.
            for _ in 0..40 {
                m.tick();
            }
            let idx = m.state.market_index();
            prop_assert!(idx.pending.is_empty() && idx.active.is_empty(), "{idx:?}");
            for id in 0..idx.next_job {
                prop_assert!(m.state.job(id).unwrap().state.is_final());
            }
            for w in &m.enclaves {
                if let Some(o) = m.state.offer(&w.identity()) {
                    prop_assert_eq!((o.used_memory_pages, o.used_fuel), (0, 0));
                }
            }
        }
    }
}

/// A worker on a running job deregisters and, once unbonded, tries to
/// withdraw its stake before the job ends: refused while it is assigned (its
/// stake answers for the job), so settlement always finds its record and
/// every later block applies. After the job ends it withdraws.
#[test]
fn a_worker_cannot_withdraw_while_assigned_and_blocks_keep_applying() {
    let mut m = Market::new("withdraw", 1);
    let spec = m.spec(1, 1_000);
    let job = m.submit(spec);
    m.post_keys(job);
    let w = m.state.job(job).unwrap().assignments[0].worker;
    let op = m.operator_of(&w);
    m.ok(
        op,
        Call::Registry(crate::registry::Call::DeregisterEnclave { identity: w }),
    );
    for _ in 0..3 {
        m.tick();
    }
    let e = m
        .block(Some((
            op,
            Call::Registry(crate::registry::Call::WithdrawStake { identity: w }),
        )))
        .unwrap_err();
    assert_eq!(
        e,
        TxError::Market(crate::market::Error::WorkerBusy(w)),
        "{e}"
    );
    assert_eq!(e.code(), 1139);
    let r = m.report(job, &w, 500, b"out");
    m.ok(op, r);
    for _ in 0..120 {
        m.empty_block().expect("end-of-block work never fails");
        m.tick();
    }
    assert!(m.state.job(job).unwrap().state.is_final());
    m.ok(
        op,
        Call::Registry(crate::registry::Call::WithdrawStake { identity: w }),
    );
    assert!(m.state.enclave(&w).is_none());
}
