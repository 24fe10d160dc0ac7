use crate::fork::{Tip, fork_choice};
use crate::*;
use proctor_primitives::{Address, Amount, Hash, Keypair};
use proctor_state::testkit::{self, keys};
use proctor_state::*;
use proctor_tee::Platform;
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[test]
fn lottery_rule_edges() {
    assert!(lottery_wins(0, 1, 1));
    assert!(lottery_wins(u128::MAX, 1, 1), "n >= D always wins");
    assert!(lottery_wins(u128::MAX, 10, 5));
    assert!(!lottery_wins(u128::MAX, 1, 2));
    // Threshold for n=1, D=2 is 2^127.
    assert!(lottery_wins((1u128 << 127) - 1, 1, 2));
    assert!(!lottery_wins(1u128 << 127, 1, 2));
    assert!(!lottery_wins(1u128 << 126, 1, 1u64 << 62)); // threshold 2^66
    assert!(lottery_wins((1u128 << 66) - 1, 1, 1u64 << 62));
}

/// Wins per instruction match 1/D within a 5-sigma bound, whatever the slice size.
#[test]
fn lottery_rate_is_one_over_d_for_every_slice_size() {
    let d: u64 = 2_000;
    let instructions: u64 = 20_000_000; // 10,000 expected wins
    let expected = instructions as f64 / d as f64;
    let sigma = expected.sqrt();
    let mut rates = Vec::new();
    for (seed, n) in [(1u64, 1u64), (2, 37), (3, 500), (4, 1_999)] {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let slices = instructions / n;
        let mut wins = 0u64;
        for _ in 0..slices {
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            if lottery_wins(u128::from_le_bytes(b), n, d) {
                wins += 1;
            }
        }
        let mean = (slices * n) as f64 / d as f64;
        assert!(
            (wins as f64 - mean).abs() < 5.0 * sigma,
            "slice {n}: {wins} wins, expected {mean:.0} +- {:.0}",
            5.0 * sigma
        );
        rates.push(wins);
    }
    assert!(
        rates
            .iter()
            .all(|&w| (w as f64 - expected).abs() < 5.0 * sigma),
        "{rates:?}"
    );
}

#[test]
fn difficulty_moves_toward_target() {
    let p = testkit::params(None, Hash::ZERO);
    let d = 1_000_000;
    assert_eq!(next_difficulty(&p, d, None), d);
    assert_eq!(next_difficulty(&p, d, Some(p.target_block_ms)), d);
    assert!(
        next_difficulty(&p, d, Some(p.target_block_ms / 2)) > d,
        "fast blocks raise difficulty"
    );
    assert!(
        next_difficulty(&p, d, Some(p.target_block_ms * 3)) < d,
        "slow blocks lower it"
    );
    // Bounded steps even for absurd intervals, and never below the minimum.
    assert!(next_difficulty(&p, d, Some(0)) <= d * 1104 / 1000);
    assert!(next_difficulty(&p, d, Some(u64::MAX)) >= d * 7 / 10);
    assert_eq!(
        next_difficulty(&p, p.min_difficulty, Some(u64::MAX)),
        p.min_difficulty
    );
}

struct Fixture {
    platform: SimPlatform,
    state: State,
    genesis_header: Header,
    miner: Address,
    filler: Hash,
    root: SimAttestationRoot,
}

fn fixture(name: &str) -> Fixture {
    fixture_with(name, |_| {})
}

/// A fixture whose parameters `tune` adjusts.
fn fixture_with(name: &str, tune: impl FnOnce(&mut ChainParams)) -> Fixture {
    let dir = std::env::temp_dir().join(format!("proctor-consensus-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = SimAttestationRoot::from_secret(&[42; 32]);
    let platform = SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[42; 32])).unwrap();
    let ks = keys(2);
    let mut params = testkit::params(Some(root.public()), sim_measurement());
    params.filler_module = Hash::of(b"filler module");
    params.initial_difficulty = 1000;
    params.min_difficulty = 1;
    tune(&mut params);
    let g = testkit::genesis(&ks, 1_000_000, params);
    let genesis = State::genesis(&g).unwrap();
    let reg = Transaction {
        chain: g.hash(),
        signer: ks[0].public(),
        nonce: 0,
        fee: Amount(1),
        call: testkit::register_call(
            &platform,
            &ks[0].public().address(),
            &g.hash(),
            1 + g.params.registration_blocks,
            1_000,
        ),
    }
    .sign(&ks[0]);
    let state = genesis
        .apply_block(
            &BlockEnv {
                height: 1,
                timestamp: g.timestamp + 1,
                miner: ks[1].public().address(),
            },
            &[reg],
        )
        .unwrap()
        .state;
    let genesis_header = Header {
        template: Template {
            parent: Hash::ZERO,
            height: 1,
            timestamp: g.timestamp + 1,
            state_root: state.root(),
            tx_root: Hash::ZERO,
            difficulty: g.params.initial_difficulty,
            miner: ks[1].public().address(),
        },
        pouw: None,
    };
    Fixture {
        platform,
        state,
        genesis_header,
        miner: ks[1].public().address(),
        filler: g.params.filler_module,
        root,
    }
}

impl Fixture {
    fn parent(&self) -> Parent<'_> {
        Parent {
            header: &self.genesis_header,
            state: &self.state,
            interval_ms: None,
        }
    }

    /// A valid block on the fixture's parent, mined by `signer`.
    fn block(
        &self,
        signer: &dyn Fn(&[u8]) -> proctor_primitives::Signature,
        enclave: proctor_primitives::PublicKey,
    ) -> Block {
        self.block_with(signer, enclave, vec![])
    }

    /// A valid block carrying `txs` on the fixture's parent.
    fn block_with(
        &self,
        signer: &dyn Fn(&[u8]) -> proctor_primitives::Signature,
        enclave: proctor_primitives::PublicKey,
        txs: Vec<SignedTransaction>,
    ) -> Block {
        let env = BlockEnv {
            height: 2,
            timestamp: self.genesis_header.template.timestamp + 500,
            miner: self.miner,
        };
        let applied = self.state.apply_block(&env, &txs).unwrap();
        let template = Template {
            parent: self.genesis_header.hash(),
            height: 2,
            timestamp: env.timestamp,
            state_root: applied.state.root(),
            tx_root: tx_root(&txs),
            difficulty: self.genesis_header.template.difficulty,
            miner: self.miner,
        };
        let mut block = sign_block(template, self.filler, signer, enclave);
        block.txs = txs;
        block
    }
}

/// A block whose proof says the filler won, on the input the parent fixes.
fn sign_block(
    template: Template,
    module: Hash,
    signer: &dyn Fn(&[u8]) -> proctor_primitives::Signature,
    enclave: proctor_primitives::PublicKey,
) -> Block {
    let input = Hash::of(&filler_input(&template.parent));
    let pouw = proof_for(&template, module, None, input, signer, enclave);
    Block {
        header: Header {
            template,
            pouw: Some(pouw),
        },
        txs: vec![],
    }
}

/// A winning proof for `template`, signed by `signer`, that claims the task
/// ran `module` for `job` on `input`.
fn proof_for(
    template: &Template,
    module: Hash,
    job: Option<u64>,
    input: Hash,
    signer: &dyn Fn(&[u8]) -> proctor_primitives::Signature,
    enclave: proctor_primitives::PublicKey,
) -> PouwProof {
    let mut p = PouwProof {
        enclave,
        template: template.hash(),
        module,
        job,
        input,
        slice: 100,
        counter: 3,
        instructions: 300,
        draw: 0,
        checker_sig: signer(&checker_message(&module)),
        work_sig: signer(b"replaced below"),
    };
    p.work_sig = signer(&p.work_message(template.difficulty));
    p
}

fn check(f: &Fixture, b: &Block) -> Result<Applied, ConsensusError> {
    validate_block(&f.parent(), b, None)
}

#[test]
fn valid_block_is_accepted() {
    let f = fixture("valid");
    let b = f.block(&|m| f.platform.sign(m), f.platform.identity());
    let applied = check(&f, &b).unwrap();
    assert_eq!(applied.state.root(), b.header.template.state_root);
}

/// A relay keeps a valid header and swaps a transaction's signature in the
/// body (for a garbage one, or any other bytes): the header must not vouch
/// for the new body. Before the root covered signatures, the same header
/// hash named two bodies, and the block failed later, as the miner's fault.
#[test]
fn a_swapped_signature_breaks_the_transactions_root() {
    let f = fixture("txroot");
    let ks = keys(2);
    let tx = testkit::transfer(&f.state.genesis_hash(), &ks[0], 1, &ks[1], 5, 1);
    let good = f.block_with(&|m| f.platform.sign(m), f.platform.identity(), vec![tx]);
    check(&f, &good).unwrap();

    let mut swapped = good.clone();
    swapped.txs[0].signature = ks[0].sign(b"something else");
    assert_eq!(swapped.hash(), good.hash(), "same header");
    assert_eq!(
        check(&f, &swapped).unwrap_err(),
        ConsensusError::TxRootMismatch
    );
}

#[test]
fn pouw_negatives_each_have_their_own_error() {
    let f = fixture("neg");
    let sign = |m: &[u8]| f.platform.sign(m);
    let id = f.platform.identity();
    let good = f.block(&sign, id);

    // Tampered template hash in the proof.
    let mut b = good.clone();
    b.header.pouw.as_mut().unwrap().template = Hash([9; 32]);
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::TemplateMismatch { .. })
    ));
    // Template changed after signing (the proof's T no longer matches).
    let mut b = good.clone();
    b.header.template.timestamp += 1;
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::TemplateMismatch { .. })
    ));

    // Wrong difficulty (re-signed so that only the difficulty is wrong).
    let mut t = good.header.template.clone();
    t.difficulty += 1;
    let b = sign_block(t, f.filler, &sign, id);
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::WrongDifficulty {
            expected: 1000,
            got: 1001
        })
    ));

    // Unregistered enclave.
    let stranger = Keypair::from_secret(&[77; 32]);
    let b = f.block(&|m| stranger.sign(m), stranger.public());
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::UnregisteredEnclave(_))
    ));

    // Bad signature on the work attestation.
    let mut b = good.clone();
    b.header.pouw.as_mut().unwrap().work_sig = stranger.sign(b"x");
    assert_eq!(check(&f, &b).unwrap_err(), ConsensusError::BadWorkSignature);
    let mut b = good.clone();
    b.header.pouw.as_mut().unwrap().checker_sig = stranger.sign(b"x");
    assert_eq!(
        check(&f, &b).unwrap_err(),
        ConsensusError::BadCheckerSignature
    );

    // Module not allowed.
    let b = sign_block(good.header.template.clone(), Hash([5; 32]), &sign, id);
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::ModuleNotAllowed(_))
    ));

    // A draw that does not win.
    let mut b = good.clone();
    let p = b.header.pouw.as_mut().unwrap();
    p.draw = u128::MAX;
    p.work_sig = sign(&p.work_message(1000));
    assert_eq!(check(&f, &b).unwrap_err(), ConsensusError::LotteryNotWon);

    // Missing proof, bad state root, bad parent.
    let mut b = good.clone();
    b.header.pouw = None;
    assert_eq!(check(&f, &b).unwrap_err(), ConsensusError::MissingProof);
    let mut t = good.header.template.clone();
    t.state_root = Hash([1; 32]);
    let b = sign_block(t, f.filler, &sign, id);
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::StateRootMismatch { .. })
    ));
    let mut t = good.header.template.clone();
    t.parent = Hash([2; 32]);
    let b = sign_block(t, f.filler, &sign, id);
    assert!(matches!(
        check(&f, &b),
        Err(ConsensusError::WrongParent { .. })
    ));

    // Expired registration.
    let mut t = good.header.template.clone();
    t.height = 1 + f.state.params().registration_blocks + 1;
    let far = Header {
        template: Template {
            height: t.height - 1,
            ..f.genesis_header.template.clone()
        },
        pouw: None,
    };
    let b = sign_block(
        Template {
            parent: far.hash(),
            ..t
        },
        f.filler,
        &sign,
        id,
    );
    let parent = Parent {
        header: &far,
        state: &f.state,
        interval_ms: None,
    };
    assert!(matches!(
        validate_block(&parent, &b, None),
        Err(ConsensusError::RegistrationExpired { .. })
    ));

    // Timestamp too far in the future for the validator's clock.
    let now = good.header.template.timestamp - MAX_FUTURE_DRIFT_MS - 1;
    assert!(matches!(
        validate_block(&f.parent(), &good, Some(now)),
        Err(ConsensusError::TimestampInFuture { .. })
    ));
    // The distinct codes really are distinct.
    let _ = &f.root;
}

#[test]
fn fork_choice_prefers_most_work_not_longest() {
    // Synthetic block tree: genesis -> a1 -> a2 -> a3 (light blocks)
    //                               \-> b1 -> b2 (heavy blocks)
    let h = |s: &str| Hash::of(s.as_bytes());
    let mut td = std::collections::BTreeMap::new();
    td.insert("g", 0u128);
    let chain = [
        ("a1", "g", 10u128),
        ("a2", "a1", 10),
        ("a3", "a2", 10),
        ("b1", "g", 16),
        ("b2", "b1", 16),
    ];
    let mut tips = Vec::new();
    for (name, parent, d) in chain {
        let t = td[parent] + d;
        td.insert(name, t);
        tips.push(Tip {
            hash: h(name),
            height: 0,
            total_difficulty: t,
        });
    }
    let best = fork_choice(&tips).unwrap();
    assert_eq!(best.hash, h("b2"), "32 beats 30 although a3 is higher");
    let a3 = tips[2];
    assert!(!a3.better_than(&best));
    // Equal work: the tie-break is deterministic and symmetric.
    let x = Tip {
        hash: Hash([1; 32]),
        height: 5,
        total_difficulty: 100,
    };
    let y = Tip {
        hash: Hash([2; 32]),
        height: 9,
        total_difficulty: 100,
    };
    assert!(x.better_than(&y) && !y.better_than(&x));
    assert_eq!(fork_choice(&[x, y]).unwrap(), fork_choice(&[y, x]).unwrap());
    assert_eq!(fork_choice(&[]), None);
}

#[test]
fn deregistered_enclaves_and_retired_measurements_cannot_mine() {
    let f = fixture("lifecycle");
    let id = f.platform.identity();
    let b = f.block(&|m| f.platform.sign(m), id);
    assert!(validate_pouw(&b.header, &f.state).is_ok());
    let ks = keys(2);
    let g_hash = f.state.genesis_hash();
    let call = |nonce, call| {
        Transaction {
            chain: g_hash,
            signer: ks[0].public(),
            nonce,
            fee: Amount(1),
            call,
        }
        .sign(&ks[0])
    };
    let env = BlockEnv {
        height: 2,
        timestamp: f.genesis_header.template.timestamp + 1,
        miner: f.miner,
    };
    let deregistered = f
        .state
        .apply_block(
            &env,
            &[call(
                1,
                Call::Registry(proctor_state::registry::Call::DeregisterEnclave { identity: id }),
            )],
        )
        .unwrap()
        .state;
    let e = validate_pouw(&b.header, &deregistered).unwrap_err();
    assert_eq!(e, ConsensusError::EnclaveDeregistered);
    assert_eq!(e.code(), 2019);
    // Measurements come from the governed allowlist, with the grace period.
    assert!(deregistered.measurement_allowed(&sim_measurement(), 2));
    assert!(!deregistered.measurement_allowed(&Hash([3; 32]), 2));
}

/// PoUW mines only with the useful work the proof names: the filler on the
/// input its parent fixes, or an active job's module and input run by an
/// enclave assigned to it (key posted, result not yet in). Each way to
/// cheat has its own error code. Before, any proof naming an active job's
/// module passed, whoever ran it on whatever input.
#[test]
fn a_proof_must_name_useful_work_the_chain_assigned() {
    // Jobs go to enclaves registered past the longest deadline.
    let f = fixture_with("jobsource", |p| p.market.max_deadline_blocks = 100);
    let sign = |m: &[u8]| f.platform.sign(m);
    let id = f.platform.identity();
    let good = f.block(&sign, id);
    let t = good.header.template.clone();
    let ks = keys(2);
    let g = f.state.genesis_hash();
    let other_dir =
        std::env::temp_dir().join(format!("proctor-consensus-other-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other_dir);
    let other = SimPlatform::open(&other_dir, SimAttestationRoot::from_secret(&[42; 32])).unwrap();

    // A second enclave, an offer from the first, and a job placed on it.
    let spec = proctor_state::jobs::JobSpec {
        module: Hash::of(b"job module"),
        input: Hash::of(b"job input"),
        memory_pages: 10,
        fuel: 1_000,
        max_price: Amount(1),
        replicas: 1,
        deadline_blocks: 50,
        retention_blocks: 5,
        output_key: [3; 32],
        args: vec![],
    };
    let escrow =
        proctor_market::settle::escrow(spec.fuel, 1, 1, &f.state.params().market.fees).unwrap();
    let tx = |k: &Keypair, nonce, call| {
        Transaction {
            chain: g,
            signer: k.public(),
            nonce,
            fee: Amount(1),
            call,
        }
        .sign(k)
    };
    let mut state = f.state.clone();
    let mut height = 1;
    let mut apply = |state: &mut State, txs: Vec<SignedTransaction>| {
        height += 1;
        let env = BlockEnv {
            height,
            timestamp: f.genesis_header.template.timestamp + height * 1000,
            miner: f.miner,
        };
        *state = state.apply_block(&env, &txs).unwrap().state;
    };
    let expires = f.state.params().registration_blocks;
    apply(
        &mut state,
        vec![
            tx(
                &ks[0],
                1,
                Call::Market(proctor_state::market::Call::SetOffer {
                    identity: id,
                    price: Amount(1),
                    memory_pages: 100,
                    fuel: 1_000_000,
                    speed: 1_000_000,
                }),
            ),
            tx(
                &ks[1],
                0,
                testkit::register_call(&other, &ks[1].public().address(), &g, expires, 1_000),
            ),
        ],
    );
    apply(
        &mut state,
        vec![tx(
            &ks[1],
            1,
            Call::Market(proctor_state::market::Call::SubmitJob {
                spec: spec.clone(),
                escrow: Amount(escrow),
            }),
        )],
    );
    let job = state.job(0).unwrap();
    assert_eq!(job.assignments.len(), 1);
    assert_eq!(job.assignments[0].worker, id);
    let check = |state: &State, p: PouwProof| {
        let h = Header {
            template: t.clone(),
            pouw: Some(p),
        };
        validate_pouw(&h, state)
    };
    let for_job = |job, input, signer: &dyn Fn(&[u8]) -> proctor_primitives::Signature, who| {
        proof_for(&t, spec.module, job, input, signer, who)
    };

    // Assigned, but its key not yet posted: the enclave cannot be running it.
    let e = check(&state, for_job(Some(0), spec.input, &sign, id)).unwrap_err();
    assert!(
        matches!(e, ConsensusError::NotAssignedToJob { job: 0, .. }),
        "{e}"
    );
    apply(
        &mut state,
        vec![tx(
            &ks[1],
            2,
            Call::Market(proctor_state::market::Call::PostKeys {
                job: 0,
                keys: vec![proctor_state::jobs::WrappedKey {
                    worker: id,
                    key: vec![1; 48],
                }],
            }),
        )],
    );
    // The assigned enclave, on the job's input: useful work.
    check(&state, for_job(Some(0), spec.input, &sign, id)).unwrap();
    // The job's module on another input.
    let e = check(&state, for_job(Some(0), Hash::of(b"mine"), &sign, id)).unwrap_err();
    assert!(matches!(e, ConsensusError::WorkInputMismatch { .. }), "{e}");
    assert_eq!(e.code(), 2022);
    // An enclave the job is not assigned to.
    let e = check(
        &state,
        for_job(Some(0), spec.input, &|m| other.sign(m), other.identity()),
    )
    .unwrap_err();
    assert!(
        matches!(e, ConsensusError::NotAssignedToJob { job: 0, .. }),
        "{e}"
    );
    assert_eq!(e.code(), 2021);
    // A job that does not exist, and the job's module passed off as no job.
    let e = check(&state, for_job(Some(9), spec.input, &sign, id)).unwrap_err();
    assert_eq!(e, ConsensusError::JobNotActive(9));
    assert_eq!(e.code(), 2020);
    let e = check(&state, for_job(None, spec.input, &sign, id)).unwrap_err();
    assert_eq!(e, ConsensusError::ModuleNotAllowed(spec.module));
    // The filler on an input of the miner's choosing.
    let e = check(
        &state,
        proof_for(&t, f.filler, None, Hash::of(b"seed"), &sign, id),
    )
    .unwrap_err();
    assert!(matches!(e, ConsensusError::WorkInputMismatch { .. }), "{e}");
    // Once the enclave has reported, the job is no longer its work, and
    // once the job settles, no one's.
    let report = proctor_state::jobs::ResultReport {
        job: 0,
        worker: id,
        binding: state.job(0).unwrap().binding(),
        module: spec.module,
        input: spec.input,
        output: Hash::of(b"sealed output"),
        instructions: 500,
        commitment: Hash::of(b"commitment"),
    };
    let signature = f.platform.sign(&report.hash().0);
    apply(
        &mut state,
        vec![tx(
            &ks[0],
            2,
            Call::Market(proctor_state::market::Call::SubmitResult { report, signature }),
        )],
    );
    let e = check(&state, for_job(Some(0), spec.input, &sign, id)).unwrap_err();
    assert!(
        matches!(
            e,
            ConsensusError::JobNotActive(0) | ConsensusError::NotAssignedToJob { job: 0, .. }
        ),
        "{e}"
    );
    assert!(
        !state.job(0).unwrap().state.is_active(),
        "one replica reported: settled"
    );
}

/// The fork point of a branch, found through stored blocks only: the first
/// canonical ancestor, the branch above it in order, refusals for a parent
/// that is not stored and for a fork deeper than the limit, and depth judged
/// on stored heights whatever height a block claims.
#[test]
fn the_fork_point_is_found_on_stored_blocks() {
    use std::collections::BTreeMap;
    let mk = |parent: Hash, height: u64, salt: u8| Block {
        header: Header {
            template: Template {
                parent,
                height,
                timestamp: height,
                state_root: Hash([salt; 32]),
                tx_root: Hash::ZERO,
                difficulty: 1,
                miner: Address([salt; 20]),
            },
            pouw: None,
        },
        txs: vec![],
    };
    let mut stored = BTreeMap::new();
    let mut canonical = vec![mk(Hash::ZERO, 0, 0)];
    for h in 1..=4 {
        let b = mk(canonical[h - 1].hash(), h as u64, 0);
        canonical.push(b);
    }
    let s3 = mk(canonical[2].hash(), 3, 1);
    let s4 = mk(s3.hash(), 4, 1);
    let s5 = mk(s4.hash(), 5, 1);
    for b in canonical.iter().chain([&s3, &s4]) {
        stored.insert(b.hash(), b.clone());
    }
    let lookup = |h: &Hash| Ok::<_, ()>(stored.get(h).cloned());
    let is_canonical = |height: u64, h: &Hash| {
        Ok::<_, ()>(
            canonical
                .get(height as usize)
                .is_some_and(|b| b.hash() == *h),
        )
    };
    let (fork, branch) = fork_point(s5.clone(), 4, 10, lookup, is_canonical).unwrap();
    assert_eq!(fork.hash(), canonical[2].hash());
    let hashes: Vec<Hash> = branch.iter().map(Block::hash).collect();
    assert_eq!(hashes, vec![s3.hash(), s4.hash(), s5.hash()]);
    assert_eq!(
        fork_point(s5.clone(), 4, 1, lookup, is_canonical).unwrap_err(),
        ForkError::TooDeep { depth: 2, limit: 1 }
    );
    let orphan = mk(Hash([9; 32]), 7, 2);
    assert_eq!(
        fork_point(orphan, 4, 10, lookup, is_canonical).unwrap_err(),
        ForkError::UnknownParent(Hash([9; 32]))
    );
    // Claiming height 1,000 off block 2 changes nothing: depth is 4 - 2.
    let liar = mk(canonical[2].hash(), 1_000, 3);
    assert_eq!(
        fork_point(liar, 4, 1, lookup, is_canonical).unwrap_err(),
        ForkError::TooDeep { depth: 2, limit: 1 }
    );
}
