//! The enclave's light client of the chain: a host that makes up headers,
//! forges a miner, replays an expired registration, offers a lighter branch
//! or a command the state does not hold is refused; the genuine chain, a
//! heavier branch and proven records are followed.

use proctor_consensus::next_difficulty;
use proctor_enclave::light::{CommandProof, LightClient, Registration, Synced};
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, codec};
use proctor_state::contracts::{CommandRecord, command_key};
use proctor_state::smt::Smt;
use proctor_state::{
    Genesis, Header, PouwProof, Record, Template, checker_message, testkit, tx_root,
};
use proctor_tee::Platform;
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};

/// The simulated attestation root the chain trusts, and another.
const TRUSTED: [u8; 32] = [1; 32];
const ROGUE: [u8; 32] = [2; 32];

/// A simulated enclave attested by the root made from `root`.
fn platform(name: &str, root: [u8; 32]) -> SimPlatform {
    let d = std::env::temp_dir().join(format!("proctor-light-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    SimPlatform::open(&d, SimAttestationRoot::from_secret(&root)).unwrap()
}

fn genesis() -> Genesis {
    let trusted = SimAttestationRoot::from_secret(&TRUSTED).public();
    let params = testkit::params(Some(trusted), sim_measurement());
    testkit::genesis(&testkit::keys(1), 1_000, params)
}

/// `m`'s registration on `g`'s chain until `expires_at`.
fn registration(m: &SimPlatform, g: &Genesis, expires_at: u64) -> Registration {
    let operator = Address([4; 20]);
    let report = proctor_tee::registration_report_data(
        &m.identity(),
        &m.encryption_key(),
        &operator,
        &g.hash(),
        expires_at,
    );
    Registration {
        identity: m.identity(),
        encryption_key: m.encryption_key(),
        operator,
        genesis: g.hash(),
        expires_at,
        quote: m.quote(&report).unwrap(),
    }
}

/// A chain being built: the last header, its interval, the params.
struct Builder {
    g: Genesis,
    last: Header,
    interval: Option<u64>,
}

impl Builder {
    fn new(g: &Genesis) -> Builder {
        let state = proctor_state::State::genesis(g).unwrap();
        Builder {
            last: state.genesis_block(g).header,
            g: g.clone(),
            interval: None,
        }
    }

    /// The next header, `gap` ms later, mined by `m` over `state_root`.
    fn next(&mut self, m: &SimPlatform, gap: u64, state_root: Hash) -> Header {
        let p = &self.last.template;
        let template = Template {
            parent: self.last.hash(),
            height: p.height + 1,
            timestamp: p.timestamp + gap,
            state_root,
            tx_root: tx_root(&[]),
            difficulty: next_difficulty(&self.g.params, p.difficulty, self.interval),
            miner: Address([5; 20]),
        };
        let mut pouw = PouwProof {
            enclave: m.identity(),
            template: template.hash(),
            module: Hash([6; 32]),
            job: None,
            input: Hash([7; 32]),
            slice: 1,
            counter: 0,
            instructions: 1,
            // r = 0 wins at any difficulty.
            draw: 0,
            checker_sig: m.sign(&checker_message(&Hash([6; 32]))),
            work_sig: proctor_primitives::Signature([0; 64]),
        };
        pouw.work_sig = m.sign(&pouw.work_message(template.difficulty));
        let h = Header {
            template,
            pouw: Some(pouw),
        };
        self.interval = Some(gap);
        self.last = h.clone();
        h
    }
}

fn tip(s: Synced) -> u64 {
    match s {
        Synced::Tip { height, .. } => height,
        s => panic!("{s:?}"),
    }
}

#[test]
fn the_light_client_follows_genuine_headers_only() {
    let g = genesis();
    let miner = platform("miner", TRUSTED);
    let mut chain = Builder::new(&g);
    let headers: Vec<Header> = (0..6)
        .map(|i| chain.next(&miner, 1_000, Hash([i; 32])))
        .collect();
    let mut light = LightClient::new(&g).unwrap();
    assert_eq!(light.chain(), g.hash());
    // Miners are checked once, by their registration quote.
    assert_eq!(
        light.sync(&headers[..3]).unwrap(),
        Synced::NeedMiners(vec![miner.identity()])
    );
    light
        .add_miners(&miner, &[registration(&miner, &g, 1_000)])
        .unwrap();
    assert_eq!(tip(light.sync(&headers[..3]).unwrap()), 3);

    // Made-up headers: not linked, a work signature altered, a difficulty
    // off the rule, a time not later than the parent's.
    let mut unlinked = headers[3].clone();
    unlinked.template.parent = Hash([9; 32]);
    let mut resigned = headers[3].clone();
    resigned.pouw.as_mut().unwrap().work_sig.0[0] ^= 1;
    let mut easy = headers[3].clone();
    easy.template.difficulty = 1;
    let mut early = headers[3].clone();
    early.template.timestamp = headers[2].template.timestamp;
    for (bad, why) in [
        (unlinked, "does not follow"),
        (resigned, "signature"),
        (easy, "difficulty"),
        (early, "not later"),
    ] {
        let e = light.sync(std::slice::from_ref(&bad)).unwrap_err();
        assert!(e.contains(why), "{why}: {e}");
    }
    assert_eq!(light.tip().0, 3, "nothing refused was followed");

    // A miner the host made up: its quote is of an untrusted root, or of
    // another chain; one whose registration expired.
    let rogue = platform("rogue", ROGUE);
    assert!(
        light
            .add_miners(&miner, &[registration(&rogue, &g, 1_000)])
            .is_err()
    );
    let mut elsewhere = registration(&miner, &g, 1_000);
    elsewhere.genesis = Hash([3; 32]);
    assert!(light.add_miners(&miner, &[elsewhere]).is_err());
    let short = platform("short", TRUSTED);
    light
        .add_miners(&miner, &[registration(&short, &g, 3)])
        .unwrap();
    let mut fork = Builder {
        g: g.clone(),
        last: headers[2].clone(),
        interval: Some(1_000),
    };
    let late = fork.next(&short, 1_000, Hash([8; 32]));
    let e = light.sync(&[late]).unwrap_err();
    assert!(e.contains("not registered then"), "{e}");

    // The rest of the chain; then a branch from height 4: lighter refused,
    // heavier (more blocks) followed.
    assert_eq!(tip(light.sync(&headers[3..]).unwrap()), 6);
    let mut branch = Builder {
        g: g.clone(),
        last: headers[3].clone(),
        interval: Some(1_000),
    };
    let two: Vec<Header> = (0..2)
        .map(|i| branch.next(&miner, 1_000, Hash([20 + i; 32])))
        .collect();
    let e = light.sync(&two).unwrap_err();
    assert!(e.contains("no more total difficulty"), "{e}");
    let third = branch.next(&miner, 1_000, Hash([22; 32]));
    let heavier = [two, vec![third.clone()]].concat();
    assert_eq!(tip(light.sync(&heavier).unwrap()), 7);
    assert_eq!(light.hash_at(7), Some(third.hash()));
    assert_eq!(light.hash_at(5), Some(heavier[0].hash()));
}

fn command(contract: u64, seq: u64) -> CommandRecord {
    CommandRecord {
        contract,
        seq,
        era: 0,
        sender: Address([1; 20]),
        nonce: 2,
        height: 3,
        fuel: 4,
        init: false,
        oracle: false,
        reply_to: EncryptionKey([5; 32]),
        sealed: vec![6; 40],
        escrow: Amount(7),
        receipt: None,
        paid: Amount(0),
        refunded: Amount(0),
        log: Hash([8; 32]),
        payer: Address([1; 20]),
    }
}

#[test]
fn a_command_is_taken_only_with_a_proof_under_a_followed_header() {
    let g = genesis();
    let miner = platform("miner2", TRUSTED);
    let record = |c: &CommandRecord| {
        codec::encode(&Record::from(proctor_state::contracts::Record::Command(
            Box::new(c.clone()),
        )))
    };
    let genuine = command(1, 1);
    let smt = Smt::from_entries([
        (command_key(1, 1), record(&genuine)),
        (command_key(1, 2), record(&command(1, 2))),
    ]);
    let mut chain = Builder::new(&g);
    let h1 = chain.next(&miner, 1_000, smt.root());
    let mut light = LightClient::new(&g).unwrap();
    light
        .add_miners(&miner, &[registration(&miner, &g, 1_000)])
        .unwrap();
    light.sync(&[h1]).unwrap();
    let proof = |seq: u64| CommandProof {
        height: 1,
        record: record(&command(1, seq)),
        proof: smt.prove(&command_key(1, seq)),
    };
    assert_eq!(light.command(1, 1, &proof(1)).unwrap(), genuine);
    // Another command's record and proof, for position 1; a record
    // altered (another ciphertext); a header not followed.
    assert!(light.command(1, 1, &proof(2)).is_err());
    let mut altered = proof(1);
    let mut forged = genuine.clone();
    forged.sealed[0] ^= 1;
    altered.record = record(&forged);
    assert!(light.command(1, 1, &altered).is_err());
    let mut elsewhere = proof(1);
    elsewhere.height = 9;
    assert!(light.command(1, 1, &elsewhere).is_err());
}
