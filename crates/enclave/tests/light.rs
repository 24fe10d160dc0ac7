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

mod executor {
    //! The light client inside an executor enclave: the host plays every
    //! attacker (commands out of order, forged, unproven).
    use super::*;
    use proctor_enclave::contracts::{
        Command, ContractRequest, ContractResponse, SignedQuery, command_info, query_info,
    };
    use proctor_enclave::{Enclave, Request, Response};
    use proctor_primitives::Keypair;
    use proctor_state::contracts::next_log;
    use proctor_tee::envelope::{self, RecipientKey};

    fn enclave(name: &str) -> Enclave {
        Enclave::new(Box::new(platform(name, TRUSTED))).unwrap()
    }

    fn ask(e: &mut Enclave, req: ContractRequest) -> Result<ContractResponse, String> {
        match e.handle(Request::Contracts(Box::new(req))) {
            Response::Contracts(r) => Ok(r),
            Response::Error { message, .. } => Err(message),
            other => panic!("unexpected answer {other:?}"),
        }
    }

    fn rng(seed: u8) -> rand_chacha::ChaCha20Rng {
        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([seed; 32])
    }

    /// A command of `user` to contract 1 of `chain`, sealed to `key`.
    fn command(
        chain: &Hash,
        key: &EncryptionKey,
        user: &Keypair,
        nonce: u64,
        msg: &[u8],
    ) -> Command {
        let sender = user.public().address();
        Command {
            era: 0,
            sender,
            nonce,
            height: 1,
            fuel: 10_000_000,
            init: false,
            oracle: false,
            reply_to: RecipientKey::from_seed(&[4; 32]).public(),
            sealed: envelope::seal_to(
                key,
                &command_info(chain, 1, &sender, nonce),
                msg,
                &mut rng(nonce as u8),
            )
            .unwrap(),
        }
    }

    /// The chain's records of `commands` (positions 1, 2, ...), each with
    /// the command log after it.
    fn records(commands: &[Command]) -> Vec<CommandRecord> {
        let mut log = Hash::ZERO;
        commands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let seq = i as u64 + 1;
                log = next_log(&log, &c.hash(1, seq));
                CommandRecord {
                    contract: 1,
                    seq,
                    era: c.era,
                    sender: c.sender,
                    nonce: c.nonce,
                    height: c.height,
                    fuel: c.fuel,
                    init: c.init,
                    oracle: c.oracle,
                    reply_to: c.reply_to,
                    sealed: c.sealed.clone(),
                    escrow: Amount(0),
                    receipt: None,
                    paid: Amount(0),
                    refunded: Amount(0),
                    log,
                    payer: c.sender,
                }
            })
            .collect()
    }

    fn encoded(r: &CommandRecord) -> Vec<u8> {
        codec::encode(&Record::from(proctor_state::contracts::Record::Command(
            Box::new(r.clone()),
        )))
    }

    #[test]
    fn an_executor_takes_only_the_commands_the_chain_it_follows_holds() {
        let g = genesis();
        let chain = g.hash();
        // The gatekeeper's root key for this chain; the executor's grant.
        let mut gk = enclave("exec-gk");
        ask(&mut gk, ContractRequest::Bootstrap).unwrap();
        ask(&mut gk, ContractRequest::Bind { chain }).unwrap();
        let ContractResponse::PublicKey(pk) = ask(
            &mut gk,
            ContractRequest::PublicKey {
                contract: 1,
                era: 0,
            },
        )
        .unwrap() else {
            panic!("no key")
        };
        let mut x = enclave("exec-x");
        let ContractResponse::Attested(to) =
            ask(&mut x, ContractRequest::Attest { chain }).unwrap()
        else {
            panic!("no attestation")
        };
        let ContractResponse::Handover(h) = ask(
            &mut gk,
            ContractRequest::Grant {
                contract: 1,
                era: 0,
                to,
            },
        )
        .unwrap() else {
            panic!("no grant")
        };
        ask(&mut x, ContractRequest::Accept(h)).unwrap();

        // The chain holds two commands; a block commits to them.
        let user = Keypair::from_secret(&[3; 32]);
        let chain_cmds = [
            command(&chain, &pk.key, &user, 1, b"set a 1"),
            command(&chain, &pk.key, &user, 2, b"set b 2"),
        ];
        let recs = records(&chain_cmds);
        let smt = Smt::from_entries(recs.iter().map(|r| (command_key(1, r.seq), encoded(r))));
        let miner = platform("exec-miner", TRUSTED);
        let mut b = Builder::new(&g);
        let h1 = b.next(&miner, 1_000, smt.root());
        let proof = |seq: u64| CommandProof {
            height: 1,
            record: encoded(&recs[seq as usize - 1]),
            proof: smt.prove(&command_key(1, seq)),
        };
        ask(
            &mut x,
            ContractRequest::LightInit {
                genesis: Box::new(g.clone()),
            },
        )
        .unwrap();
        let sync = ContractRequest::LightSync {
            headers: vec![h1.clone()],
            miners: vec![registration(&miner, &g, 1_000)],
        };
        assert!(matches!(
            ask(&mut x, sync).unwrap(),
            ContractResponse::Synced { height: 1, .. }
        ));
        let kv = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/contracts/kv.wasm"),
        )
        .unwrap();
        let load = ContractRequest::Load {
            contract: 1,
            code: kv,
            checkpoint: None,
            proof: None,
        };
        ask(&mut x, load).unwrap();
        let apply = |x: &mut Enclave, c: &Command, proof: Option<CommandProof>| {
            ask(
                x,
                ContractRequest::Apply {
                    contract: 1,
                    command: c.clone(),
                    keys: vec![],
                    unknown: vec![],
                    proof,
                },
            )
        };
        // Out of order: command 2 with its own proof, then with command
        // 1's; a forged command (anyone can seal one) with command 1's.
        for (c, p) in [
            (&chain_cmds[1], proof(2)),
            (&chain_cmds[1], proof(1)),
            (&command(&chain, &pk.key, &user, 1, b"set a 666"), proof(1)),
        ] {
            let e = apply(&mut x, c, Some(p)).unwrap_err();
            assert!(
                e.contains("does not verify") || e.contains("not the one the chain has"),
                "{e}"
            );
        }
        // The chain's commands in order, proven: applied.
        for (i, c) in chain_cmds.iter().enumerate() {
            let r = apply(&mut x, c, Some(proof(i as u64 + 1))).unwrap();
            assert!(matches!(r, ContractResponse::Applied { .. }), "{r:?}");
        }
        // A query answered from it names the block followed, proven.
        let caller = Keypair::from_secret(&[3; 32]);
        let mut q = SignedQuery {
            chain,
            contract: 1,
            caller: caller.public(),
            expires_at: 10,
            reply_to: RecipientKey::from_seed(&[5; 32]).public(),
            sealed: envelope::seal_to(
                &pk.key,
                &query_info(&chain, 1, &caller.public(), 10),
                b"get a",
                &mut rng(9),
            )
            .unwrap(),
            signature: proctor_primitives::Signature([0; 64]),
        };
        q.signature = caller.sign(&q.signing_bytes());
        let query = |x: &mut Enclave, block_hash: Hash| {
            ask(
                x,
                ContractRequest::Query {
                    query: Box::new(q.clone()),
                    height: 1,
                    block_hash,
                },
            )
        };
        let ContractResponse::Answer(a) = query(&mut x, h1.hash()).unwrap() else {
            panic!("no answer")
        };
        assert!(a.statement.proven);
        assert_eq!((a.statement.height, a.statement.block_hash), (1, h1.hash()));
        // A host naming another block at that height is refused.
        assert!(query(&mut x, Hash([9; 32])).is_err());
        // A command the host slips in without a proof: applied, but the
        // state is no longer proven, and the chain's next command shows
        // the divergence.
        let slipped = command(&chain, &pk.key, &user, 3, b"set c 3");
        apply(&mut x, &slipped, None).unwrap();
        let ContractResponse::Answer(a) = query(&mut x, h1.hash()).unwrap() else {
            panic!("no answer")
        };
        assert!(!a.statement.proven);
        let later = [
            chain_cmds[0].clone(),
            chain_cmds[1].clone(),
            command(&chain, &pk.key, &user, 3, b"set c the chain's"),
            command(&chain, &pk.key, &user, 4, b"set d 4"),
        ];
        let recs = records(&later);
        let smt = Smt::from_entries(recs.iter().map(|r| (command_key(1, r.seq), encoded(r))));
        let h2 = b.next(&miner, 1_000, smt.root());
        let sync = ContractRequest::LightSync {
            headers: vec![h2],
            miners: vec![],
        };
        ask(&mut x, sync).unwrap();
        let fourth = CommandProof {
            height: 2,
            record: encoded(&recs[3]),
            proof: smt.prove(&command_key(1, 4)),
        };
        let e = apply(&mut x, &later[3], Some(fourth)).unwrap_err();
        assert!(e.contains("diverged"), "{e}");
    }
}
