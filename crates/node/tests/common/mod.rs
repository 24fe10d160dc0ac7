// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

//! A one-enclave test chain.

use proctor_enclave::{Enclave, MineResult, Request, Response};
use proctor_node::FILLER_WASM;
use proctor_node::chain::Chain;
use proctor_primitives::Address;
use proctor_primitives::{Hash, Keypair};
use proctor_state::testkit;
use proctor_state::{Genesis, GenesisEnclave};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
use proctor_tee::{Platform, registration_report_data};
use std::path::PathBuf;

pub struct TestChain {
    pub dir: PathBuf,
    pub genesis: Genesis,
    pub keys: Vec<Keypair>,
    pub enclave: Option<Enclave>,
}

pub fn test_chain(name: &str) -> TestChain {
    test_chain_with(name, |_| {})
}

/// A test chain whose parameters `tune` adjusts before the genesis is sealed.
pub fn test_chain_with(
    name: &str,
    tune: impl FnOnce(&mut proctor_state::ChainParams),
) -> TestChain {
    let dir = std::env::temp_dir().join(format!("proctor-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = SimAttestationRoot::from_secret(&[5; 32]);
    let root_pk = root.public();
    let platform = SimPlatform::open(&dir.join("enclave"), root).unwrap();
    let keys = testkit::keys(3);
    let mut params = testkit::params(Some(root_pk), sim_measurement());
    params.filler_module = Hash::of(FILLER_WASM);
    params.initial_difficulty = 20_000_000;
    params.min_fee = proctor_primitives::Amount(1);
    tune(&mut params);
    let mut genesis = testkit::genesis(&keys, 1_000_000_000_000, params);
    let (identity, encryption_key) = (platform.identity(), platform.encryption_key());
    let expires_at = genesis.params.registration_blocks;
    let operator = keys[0].public().address();
    let rd = registration_report_data(
        &identity,
        &encryption_key,
        &operator,
        &genesis.base_hash(),
        expires_at,
    );
    let quote = platform.quote(&rd).unwrap();
    genesis.enclaves = vec![GenesisEnclave {
        operator,
        identity,
        encryption_key,
        expires_at,
        quote,
        stake: proctor_primitives::Amount::ZERO,
    }];
    TestChain {
        dir,
        genesis,
        keys,
        enclave: Some(Enclave::new(Box::new(platform)).unwrap()),
    }
}

/// Loads the filler task into `enclave` (long enough for any test).
pub fn load(enclave: &mut Enclave) {
    let Response::Loaded { .. } = enclave.handle(Request::LoadTask {
        module: FILLER_WASM.to_vec(),
        input: proctor_enclave::TaskInput::FromParent,
        args: vec!["100000000".into()],
        clock_ns: 0,
        fuel: u64::MAX / 2,
        slice: 1_000_000,
    }) else {
        panic!("filler did not load")
    };
}

/// Runs the enclave's task until it wins the lottery for the work's template.
pub fn win(enclave: &mut Enclave, work: &proctor_rpc::WorkInfo) -> proctor_state::PouwProof {
    let template = Box::new(work.decode_template().unwrap());
    for _ in 0..100_000 {
        match enclave.handle(Request::Mine {
            template: template.clone(),
            max_slices: 50,
        }) {
            Response::Mined(MineResult::Won(p), _) => return *p,
            Response::Mined(MineResult::NoWin { .. }, _) => {}
            other => panic!("{other:?}"),
        }
    }
    panic!("no win within the bound")
}

/// Mines one block on `chain` at time `now`.
pub fn mine(chain: &mut Chain, enclave: &mut Enclave, miner: Address, now: u64) -> Hash {
    let work = chain.work(miner, now).unwrap();
    let proof = win(enclave, &work);
    chain.submit_work(work.template_hash, proof, now).unwrap()
}

/// A well-formed block off `parent` whose proof `signer`, a key of a peer's
/// own, signs (draw 0 always wins): all a peer without a registered enclave
/// can make. `height` is what the block claims; `salt` makes blocks differ.
pub fn junk_block(
    parent: &proctor_state::Block,
    params: &proctor_state::ChainParams,
    signer: &Keypair,
    height: u64,
    salt: u8,
) -> proctor_state::Block {
    use proctor_state::{Header, PouwProof, Template, checker_message, filler_input};
    let template = Template {
        parent: parent.hash(),
        height,
        timestamp: parent.header.template.timestamp + 100 + salt as u64,
        state_root: Hash([salt; 32]),
        tx_root: proctor_state::tx_root(&[]),
        difficulty: params.initial_difficulty,
        miner: Address([salt; 20]),
    };
    let module = params.filler_module;
    let mut p = PouwProof {
        enclave: signer.public(),
        template: template.hash(),
        module,
        job: None,
        input: Hash::of(&filler_input(&template.parent)),
        slice: 1_000_000,
        counter: 1,
        instructions: 1_000_000,
        draw: 0,
        checker_sig: signer.sign(&checker_message(&module)),
        work_sig: signer.sign(b"replaced below"),
    };
    p.work_sig = signer.sign(&p.work_message(template.difficulty));
    proctor_state::Block {
        header: Header {
            template,
            pouw: Some(p),
        },
        txs: vec![],
    }
}

/// A mining-only worker around the chain's enclave, operated by key 0.
pub fn miner(tc: &mut TestChain, node: &proctor_node::Node) -> proctor_worker::Worker {
    proctor_worker::Worker::new(
        Box::new(tc.enclave.take().expect("the chain's enclave")),
        proctor_worker::WorkerConfig {
            rpc_url: node.rpc_url(),
            operator: tc.keys[0].clone(),
            collateral: None,
            offer: None,
        },
    )
    .unwrap()
}

/// Mines on `node` with the chain's enclave until the head is at least
/// `height` (within 120 s), then stops the worker and returns the height.
pub async fn mine_until(tc: &mut TestChain, node: &proctor_node::Node, height: u64) -> u64 {
    use proctor_rpc::ApiClient;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let client = proctor_rpc::http_client(&node.rpc_url()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut worker = miner(tc, node);
    let flag = stop.clone();
    let mining = tokio::spawn(async move { worker.mine(flag).await });
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.head().await.unwrap().height < height {
        assert!(Instant::now() < deadline, "height {height} within 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), mining)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
    client.head().await.unwrap().height
}
