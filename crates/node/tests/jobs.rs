//! Jobs are useful work: while an enclave runs an assigned job, its lottery
//! draws can win blocks whose proof names the job's module, and the chain
//! accepts them; the same module outside an active job is refused.

mod common;

use common::{load, test_chain_with, win};
use proctor_consensus::ConsensusError;
use proctor_enclave::{JobTicket, MineResult, Request, Response, TaskInput};
use proctor_node::chain::{Chain, ChainError};
use proctor_primitives::{Amount, Hash, Keypair};
use proctor_state::jobs::{JobSpec, JobState, WrappedKey};
use proctor_state::{Call, SignedTransaction, Transaction};
use proctor_tee::envelope::{self, RecipientKey};
use rand_core::{OsRng, RngCore};

const NBODY: &[u8] = include_bytes!("../../../examples/tasks/nbody.wasm");

fn tx(g: &Hash, k: &Keypair, nonce: u64, call: Call) -> SignedTransaction {
    Transaction {
        chain: *g,
        signer: k.public(),
        nonce,
        fee: Amount(1),
        call,
    }
    .sign(k)
}

/// Mines one block with `txs` (the enclave's current task draws the lottery).
fn mine_with(
    chain: &mut Chain,
    enclave: &mut proctor_enclave::Enclave,
    miner: proctor_primitives::Address,
    now: &mut u64,
    txs: Vec<SignedTransaction>,
) -> Hash {
    *now += 1_000;
    for t in txs {
        chain.submit_tx(t, *now).unwrap();
    }
    let work = chain.work(miner, *now).unwrap();
    let proof = win(enclave, &work);
    chain.submit_work(work.template_hash, proof, *now).unwrap()
}

/// Runs NBODY on an input of the miner's choosing and checks that the win
/// is refused: that is not the chain's useful work.
fn mine_on_own_input(
    chain: &mut Chain,
    enclave: &mut proctor_enclave::Enclave,
    miner: proctor_primitives::Address,
    now: &mut u64,
    input: &[u8],
) {
    let loaded = enclave.handle(Request::LoadTask {
        module: NBODY.to_vec(),
        input: TaskInput::Given(input.to_vec()),
        args: vec!["1000000".into()],
        clock_ns: 0,
        fuel: u64::MAX / 2,
        slice: 1_000_000,
    });
    assert!(matches!(loaded, Response::Loaded { .. }));
    *now += 1_000;
    let work = chain.work(miner, *now).unwrap();
    let proof = win(enclave, &work);
    assert!(matches!(
        chain.submit_work(work.template_hash, proof, *now),
        Err(ChainError::Consensus(ConsensusError::ModuleNotAllowed(m))) if m == Hash::of(NBODY)
    ));
}

#[test]
fn a_block_won_while_running_a_job_names_the_job_module_and_is_accepted() {
    let mut tc = test_chain_with("jobwork", |p| p.market.max_deadline_blocks = 100);
    let mut enclave = tc.enclave.take().unwrap();
    let mut chain = Chain::open(&tc.dir.join("c.redb"), tc.genesis.clone(), 100).unwrap();
    let (g, op, requester) = (tc.genesis.hash(), &tc.keys[0], &tc.keys[1]);
    let miner = op.public().address();
    let t0 = tc.genesis.timestamp;
    let mut now = t0;
    let module = Hash::of(NBODY);
    let info = match enclave.handle(Request::Info) {
        Response::Info(i) => i,
        other => panic!("{other:?}"),
    };

    // Outside any job the module is not useful work: the proof is refused.
    mine_on_own_input(&mut chain, &mut enclave, miner, &mut now, b"");

    // The filler mines the market's transactions: an offer, a job, its key.
    load(&mut enclave);
    let offer = Call::Market(proctor_state::market::Call::SetOffer {
        identity: info.identity,
        price: Amount(1),
        memory_pages: 1_000,
        fuel: 10_000_000_000,
        speed: 100_000_000,
    });
    mine_with(
        &mut chain,
        &mut enclave,
        miner,
        &mut now,
        vec![tx(&g, op, 0, offer)],
    );
    let out_key = RecipientKey::from_seed(&[4; 32]);
    let mut k = [0u8; 32];
    OsRng.fill_bytes(&mut k);
    let input = envelope::encrypt(&k, b"", &mut OsRng);
    let spec = JobSpec {
        module,
        input: Hash::of(&input),
        memory_pages: 64,
        fuel: 2_000_000_000,
        max_price: Amount(2),
        replicas: 1,
        deadline_blocks: 50,
        retention_blocks: 10,
        output_key: out_key.public().0,
        args: vec!["300000".into()],
    };
    let escrow =
        proctor_market::settle::escrow(spec.fuel, 2, 1, &tc.genesis.params.market.fees).unwrap();
    let submit = Call::Market(proctor_state::market::Call::SubmitJob {
        spec: spec.clone(),
        escrow: Amount(escrow),
    });
    mine_with(
        &mut chain,
        &mut enclave,
        miner,
        &mut now,
        vec![tx(&g, requester, 0, submit)],
    );
    assert_eq!(chain.state().job(0).unwrap().state, JobState::Assigned);
    let wrapped = envelope::seal_to(
        &info.encryption_key,
        &envelope::key_info(&chain.state().job(0).unwrap().binding()),
        &k,
        &mut OsRng,
    )
    .unwrap();
    let keys = Call::Market(proctor_state::market::Call::PostKeys {
        job: 0,
        keys: vec![WrappedKey {
            worker: info.identity,
            key: wrapped.clone(),
        }],
    });
    mine_with(
        &mut chain,
        &mut enclave,
        miner,
        &mut now,
        vec![tx(&g, requester, 1, keys)],
    );
    assert_eq!(chain.state().job(0).unwrap().state, JobState::Running);

    // The job's module on an input of the miner's choosing is not the job:
    // while the job runs, such a win is still refused.
    mine_on_own_input(&mut chain, &mut enclave, miner, &mut now, b"my own input");

    // The job becomes the mining task; a win names its module and is a block.
    let ticket = JobTicket {
        job: 0,
        spec: spec.clone(),
        submitted_ms: chain.state().job(0).unwrap().submitted_ms,
        module: NBODY.to_vec(),
        input,
        wrapped_key: wrapped,
    };
    assert!(matches!(
        enclave.handle(Request::LoadJob {
            ticket: Box::new(ticket),
            slice: 1_000_000
        }),
        Response::Loaded { .. }
    ));
    now += 1_000;
    let work = chain.work(miner, now).unwrap();
    // Low enough that some slice of the job wins before it ends.
    let template = work.decode_template().unwrap();
    let mut proof = None;
    let mut result = None;
    for _ in 0..10_000 {
        match enclave.handle(Request::Mine {
            template: Box::new(template.clone()),
            max_slices: 10,
        }) {
            Response::Mined(MineResult::Won(p), _) if proof.is_none() => proof = Some(*p),
            Response::Mined(MineResult::Won(_) | MineResult::NoWin { .. }, _) => {}
            Response::Mined(MineResult::JobDone(r), _) => {
                result = Some(r);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let proof = proof.expect("the job won a slice (about 23 expected at this difficulty)");
    assert_eq!(proof.module, module);
    assert_eq!((proof.job, proof.input), (Some(0), spec.input));
    let block = chain.submit_work(work.template_hash, proof, now).unwrap();
    let b = chain.store().block(&block).unwrap().unwrap();
    assert_eq!(b.header.pouw.unwrap().module, module);

    // And the job's own result settles it.
    let r = result.expect("the job finished");
    let submit = Call::Market(proctor_state::market::Call::SubmitResult {
        report: r.report,
        signature: r.signature,
    });
    load(&mut enclave);
    mine_with(
        &mut chain,
        &mut enclave,
        miner,
        &mut now,
        vec![tx(&g, op, 1, submit)],
    );
    assert_eq!(chain.state().job(0).unwrap().state, JobState::Settled);
}

/// The key a malicious host would like job outputs sealed to.
fn host_key() -> RecipientKey {
    RecipientKey::from_seed(&[66; 32])
}

/// Every byte between a worker host and its enclave, searched for a marker.
struct Recording {
    inner: proctor_enclave::Enclave,
    marker: &'static [u8],
    leaked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set when the enclave answers with a signed refusal.
    refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl proctor_enclave::wire::Transport for Recording {
    fn call(&mut self, req: Request) -> Response {
        let mut seen = borsh::to_vec(&req).unwrap();
        let resp = self.inner.handle(req);
        seen.extend(borsh::to_vec(&resp).unwrap());
        if let Response::Refused { .. } = &resp {
            self.refused
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // And whatever the host's own key opens of a job's output.
        if let Response::Mined(MineResult::JobDone(r), _) = &resp
            && let Ok(opened) = host_key().open(&envelope::output_info(r.report.job), &r.output)
        {
            seen.extend(opened);
        }
        if seen.windows(self.marker.len()).any(|w| w == self.marker) {
            self.leaked.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        resp
    }
}

/// A real worker whose host points each job's output at its own key before
/// handing it to the enclave (the test-only `test-faults` behaviour). The
/// content key does not open for the altered job, so the enclave runs
/// nothing; its signed refusal names the altered job, so the chain refuses
/// it and the requester is not blamed; the job stays the worker's until the
/// deadline, when the worker is marked failed. No byte the host sees holds
/// the input's plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_alters_a_job_gets_no_plaintext_and_cannot_blame_the_requester() {
    use proctor_rpc::ApiClient;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    const WORDFREQ: &[u8] = include_bytes!("../../../examples/tasks/wordfreq.wasm");
    const MARKER: &[u8] = b"zqxmarkerword";
    let mut tc = test_chain_with("tamper", |p| p.market.max_deadline_blocks = 100);
    let ndir = tc.dir.join("node");
    proctor_node::init_dir(
        &ndir,
        &tc.genesis,
        &proctor_node::NodeConfig {
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            p2p_listen: None,
            bootnodes: vec![],
            rpc_rate: None,
            explorer: false,
        },
    )
    .unwrap();
    let node = proctor_node::Node::start(&ndir).await.unwrap();
    let http = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let (leaked, refused) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let transport = Recording {
        inner: tc.enclave.take().unwrap(),
        marker: MARKER,
        leaked: leaked.clone(),
        refused: refused.clone(),
    };
    let mut worker = proctor_worker::Worker::new(
        Box::new(transport),
        proctor_worker::WorkerConfig {
            rpc_url: node.rpc_url(),
            operator: tc.keys[0].clone(),
            collateral: None,
            offer: Some(proctor_worker::MarketOffer::default()),
        },
    )
    .unwrap();
    let identity = worker.info().identity;
    worker
        .tamper_jobs_for_testing(|t| t.spec.output_key = host_key().public().0)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let mining = tokio::spawn(async move {
        let r = worker.mine(s).await;
        (worker, r)
    });
    let until = async |what: &str, f: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // The worker's offer on chain, then the requester's job.
    let job_of = |id| {
        let c = node.chain.lock().unwrap();
        c.state().job(id)
    };
    until("the worker's offer", &mut || {
        node.chain
            .lock()
            .unwrap()
            .state()
            .offer(&identity)
            .is_some()
    })
    .await;
    let (g, requester) = (tc.genesis.hash(), &tc.keys[1]);
    let mut k = [0u8; 32];
    OsRng.fill_bytes(&mut k);
    let plaintext = [b"the ".as_slice(), MARKER, b" and the ", MARKER, b"\n"].concat();
    let input = envelope::encrypt(&k, &plaintext, &mut OsRng);
    let module = proctor_rpc::upload_blob(&http, WORDFREQ).await.unwrap();
    let input_hash = proctor_rpc::upload_blob(&http, &input).await.unwrap();
    let spec = JobSpec {
        module,
        input: input_hash,
        memory_pages: 256,
        fuel: 100_000_000,
        max_price: Amount(1),
        replicas: 1,
        deadline_blocks: 100,
        retention_blocks: 10,
        output_key: RecipientKey::from_seed(&[4; 32]).public().0,
        args: vec!["1".into()],
    };
    let escrow =
        proctor_market::settle::escrow(spec.fuel, 1, 1, &tc.genesis.params.market.fees).unwrap();
    let submit = tx(
        &g,
        requester,
        0,
        Call::Market(proctor_state::market::Call::SubmitJob {
            spec,
            escrow: Amount(escrow),
        }),
    );
    http.send_transaction(proctor_rpc::to_hex(&submit))
        .await
        .unwrap();
    until("the job's assignment", &mut || {
        job_of(0).is_some_and(|j| j.state == JobState::Assigned)
    })
    .await;
    // The requester wraps the key to the key the enclave's quote vouches for.
    let q = http.enclave_quote(identity).await.unwrap();
    let to = proctor_rpc::verify_enclave_quote(&tc.genesis, &q).unwrap();
    let j = job_of(0).unwrap();
    let wrapped =
        envelope::seal_to(&to, &envelope::key_info(&j.binding()), &k, &mut OsRng).unwrap();
    let keys = Call::Market(proctor_state::market::Call::PostKeys {
        job: 0,
        keys: vec![WrappedKey {
            worker: identity,
            key: wrapped,
        }],
    });
    http.send_transaction(proctor_rpc::to_hex(&tx(&g, requester, 1, keys)))
        .await
        .unwrap();
    // The enclave refuses the altered job; the refusal names the altered
    // job, so the chain does not take it (the worker's RefuseJob is refused).
    until("the enclave's refusal", &mut || {
        refused.load(Ordering::SeqCst)
    })
    .await;
    let seen_at = node.chain.lock().unwrap().head().height;
    until("a few blocks for its refusal to land", &mut || {
        node.chain.lock().unwrap().head().height > seen_at + 3
    })
    .await;
    let j = job_of(0).unwrap();
    assert_eq!(j.state, JobState::Running, "the host blamed the requester");
    assert!(j.output.is_none());
    stop.store(true, Ordering::SeqCst);
    let (worker, r) = tokio::time::timeout(Duration::from_secs(60), mining)
        .await
        .expect("the worker stops")
        .unwrap();
    r.unwrap();
    assert!(
        worker.stats().jobs_refused >= 1,
        "the enclave refused the altered job"
    );
    assert_eq!(worker.stats().jobs_run, 0);
    assert!(
        !leaked.load(Ordering::SeqCst),
        "the plaintext reached the host"
    );
    node.stop().await;
}
