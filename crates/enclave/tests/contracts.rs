//! Contract keys between enclaves: a gatekeeper's root key, handed over only
//! to attested enclaves of the same code; contract keys granted the same
//! way. The host plays every attacker here: it asks for a handover to a key
//! of its own, plants a key of its own, replays a handover to another
//! enclave, and alters one in flight.

use proctor_enclave::contracts::{ContractRequest, ContractResponse, Handover, PeerAttestation};
use proctor_enclave::{Enclave, Request, Response};
use proctor_primitives::{Hash, Keypair};
use proctor_tee::envelope::{self, RecipientKey};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
use std::path::PathBuf;

const CHAIN: Hash = Hash([7; 32]);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("proctor-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn root() -> SimAttestationRoot {
    SimAttestationRoot::from_secret(&[1; 32])
}

fn enclave(name: &str) -> Enclave {
    open(&dir(name))
}

fn open(d: &std::path::Path) -> Enclave {
    Enclave::new(Box::new(SimPlatform::open(d, root()).unwrap())).unwrap()
}

fn ask(e: &mut Enclave, req: ContractRequest) -> Result<ContractResponse, String> {
    match e.handle(Request::Contracts(Box::new(req))) {
        Response::Contracts(r) => Ok(r),
        Response::Error { code, message } => {
            assert_eq!(code, 3009, "{message}");
            Err(message)
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

fn attest(e: &mut Enclave) -> PeerAttestation {
    match ask(e, ContractRequest::Attest { chain: CHAIN }).unwrap() {
        ContractResponse::Attested(a) => a,
        r => panic!("{r:?}"),
    }
}

fn handover(e: &mut Enclave, req: ContractRequest) -> Result<Handover, String> {
    ask(e, req).map(|r| match r {
        ContractResponse::Handover(h) => *h,
        r => panic!("{r:?}"),
    })
}

/// A new root key, bound to [`CHAIN`]: its commitment and sealed blob.
fn bootstrap(e: &mut Enclave) -> (Hash, Vec<u8>) {
    let ContractResponse::Root { commitment, .. } = ask(e, ContractRequest::Bootstrap).unwrap()
    else {
        panic!("no root")
    };
    match ask(e, ContractRequest::Bind { chain: CHAIN }).unwrap() {
        ContractResponse::Root {
            commitment: c,
            sealed,
            chain,
            ..
        } => {
            assert_eq!((c, chain), (commitment, Some(CHAIN)));
            (commitment, sealed)
        }
        r => panic!("{r:?}"),
    }
}

fn public_key(e: &mut Enclave, contract: u64) -> proctor_state::contracts::ContractPublicKey {
    match ask(e, ContractRequest::PublicKey { contract, era: 0 }).unwrap() {
        ContractResponse::PublicKey(k) => k,
        r => panic!("{r:?}"),
    }
}

#[test]
fn the_root_key_moves_only_to_attested_gatekeepers_and_derives_the_same_contract_keys() {
    let mut a = enclave("gk-a");
    let mut b = enclave("gk-b");
    let (commitment, _) = bootstrap(&mut a);
    assert!(
        ask(
            &mut b,
            ContractRequest::PublicKey {
                contract: 1,
                era: 0
            }
        )
        .is_err()
    );
    let to_b = attest(&mut b);
    let h = handover(&mut a, ContractRequest::HandOver { to: to_b }).unwrap();
    match ask(&mut b, ContractRequest::Receive(Box::new(h))).unwrap() {
        ContractResponse::Root {
            era,
            commitment: c,
            chain,
            ..
        } => {
            assert_eq!((era, c, chain), (0, commitment, Some(CHAIN)));
        }
        r => panic!("{r:?}"),
    }
    // Both gatekeepers publish the same contract key, signed.
    let (ka, kb) = (public_key(&mut a, 7), public_key(&mut b, 7));
    assert_eq!(ka.key, kb.key);
    assert_ne!(ka.key, public_key(&mut a, 8).key, "one key per contract");
    for k in [&ka, &kb] {
        k.gatekeeper
            .verify(&k.signing_bytes(), &k.signature)
            .unwrap();
    }
    assert_ne!(ka.gatekeeper, kb.gatekeeper);

    // An executor gets contract 7's key from either one.
    let mut x = enclave("exec");
    let to_x = attest(&mut x);
    let ga = handover(
        &mut a,
        ContractRequest::Grant {
            contract: 7,
            era: 0,
            to: to_x.clone(),
        },
    )
    .unwrap();
    let gb = handover(
        &mut b,
        ContractRequest::Grant {
            contract: 7,
            era: 0,
            to: to_x,
        },
    )
    .unwrap();
    assert_eq!(ga.commitment, gb.commitment);
    assert!(matches!(
        ask(&mut x, ContractRequest::Accept(Box::new(ga.clone()))).unwrap(),
        ContractResponse::Accepted { .. }
    ));
    // A grant is not a root key, and a root handover is not a grant.
    assert!(ask(&mut x, ContractRequest::Receive(Box::new(ga))).is_err());
}

#[test]
fn a_host_cannot_get_the_key_for_itself() {
    let mut a = enclave("host-a");
    bootstrap(&mut a);
    let mut b = enclave("host-b");
    let genuine = attest(&mut b);
    let host = RecipientKey::from_seed(&[3; 32]);
    // B's quote with the host's encryption key: the quote is not for it.
    let swapped = PeerAttestation {
        encryption_key: host.public(),
        ..genuine.clone()
    };
    // A quote from another attestation root (one the host runs).
    let other_root = SimAttestationRoot::from_secret(&[2; 32]);
    let mut rogue = Enclave::new(Box::new(
        SimPlatform::open(&dir("host-rogue"), other_root).unwrap(),
    ))
    .unwrap();
    let rogue = attest(&mut rogue);
    // A genuine enclave of other code (another measurement).
    let mut old = Enclave::new(Box::new(
        SimPlatform::open_with_measurement(&dir("host-old"), root(), Hash([9; 32])).unwrap(),
    ))
    .unwrap();
    let old = attest(&mut old);
    // B's attestation for another chain.
    let mut b2 = enclave("host-b2");
    let other_chain = match ask(
        &mut b2,
        ContractRequest::Attest {
            chain: Hash([8; 32]),
        },
    )
    .unwrap()
    {
        ContractResponse::Attested(a) => a,
        r => panic!("{r:?}"),
    };
    for (to, why) in [
        (swapped, "not for these keys"),
        (rogue, "does not verify"),
        (old, "other code"),
        (other_chain, "not for these keys"),
    ] {
        for req in [
            ContractRequest::HandOver { to: to.clone() },
            ContractRequest::Grant {
                contract: 1,
                era: 0,
                to: to.clone(),
            },
        ] {
            let e = handover(&mut a, req).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
    assert_ne!(sim_measurement(), Hash([9; 32]));
    // The genuine one still works.
    assert!(handover(&mut a, ContractRequest::HandOver { to: genuine }).is_ok());
}

#[test]
fn a_planted_replayed_or_altered_handover_is_refused() {
    let mut a = enclave("plant-a");
    let (commitment, _) = bootstrap(&mut a);
    let mut b = enclave("plant-b");
    let mut c = enclave("plant-c");
    let to_b = attest(&mut b);
    let h = handover(&mut a, ContractRequest::HandOver { to: to_b.clone() }).unwrap();

    // Replayed to C: not for it.
    let e = ask(&mut c, ContractRequest::Receive(Box::new(h.clone()))).unwrap_err();
    assert!(e.contains("another enclave"), "{e}");
    // Readdressed to C: the signature no longer verifies.
    let mut readdressed = h.clone();
    readdressed.to = attest(&mut c).identity;
    let e = ask(&mut c, ContractRequest::Receive(Box::new(readdressed))).unwrap_err();
    assert!(e.contains("signature"), "{e}");
    // A key the host made, sealed to B and claimed to come from A (A's
    // attestation copied), signed by the host: refused.
    let fake = [5u8; 32];
    let mut planted = Handover {
        commitment: proctor_enclave::contracts::root_commitment(0, &fake),
        ..h.clone()
    };
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([6; 32]);
    planted.sealed = envelope::seal_to(&to_b.encryption_key, b"", &fake, &mut rng).unwrap();
    planted.signature = Keypair::from_secret(&[4; 32]).sign(&planted.signing_bytes());
    let e = ask(&mut b, ContractRequest::Receive(Box::new(planted))).unwrap_err();
    assert!(e.contains("signature"), "{e}");
    // A byte of the sealed key flipped (and re-signed by nobody): refused.
    let mut flipped = h.clone();
    *flipped.sealed.last_mut().unwrap() ^= 1;
    assert!(ask(&mut b, ContractRequest::Receive(Box::new(flipped))).is_err());
    // The commitment swapped for another: the signature covers it.
    let mut recommitted = h.clone();
    recommitted.commitment = Hash([1; 32]);
    assert!(ask(&mut b, ContractRequest::Receive(Box::new(recommitted))).is_err());
    // The genuine one opens, with A's commitment.
    assert!(matches!(
        ask(&mut b, ContractRequest::Receive(Box::new(h))).unwrap(),
        ContractResponse::Root { commitment: c, .. } if c == commitment
    ));
}

#[test]
fn a_root_key_restores_from_its_sealed_blob_only_on_its_own_machine() {
    let d = dir("restore");
    let (commitment, sealed, pk) = {
        let mut a = open(&d);
        let (c, s) = bootstrap(&mut a);
        assert!(
            ask(&mut a, ContractRequest::Bootstrap).is_err(),
            "one root key"
        );
        let e = ask(
            &mut a,
            ContractRequest::Bind {
                chain: Hash([8; 32]),
            },
        )
        .unwrap_err();
        assert!(e.contains("serves chain"), "{e}");
        (c, s, public_key(&mut a, 3).key)
    };
    // The same enclave after a restart.
    let mut again = open(&d);
    match ask(
        &mut again,
        ContractRequest::Restore {
            sealed: sealed.clone(),
        },
    )
    .unwrap()
    {
        ContractResponse::Root { commitment: c, .. } => assert_eq!(c, commitment),
        r => panic!("{r:?}"),
    }
    assert_eq!(public_key(&mut again, 3).key, pk);
    // Another machine cannot open it.
    let mut other = enclave("restore-other");
    let r = other.handle(Request::Contracts(Box::new(ContractRequest::Restore {
        sealed,
    })));
    assert!(matches!(r, Response::Error { code: 3004, .. }), "{r:?}");
}

mod executing {
    use super::*;
    use proctor_enclave::contracts::{
        Command, QueryAnswer, SignedQuery, command_info, query_info, query_reply_info, reply_info,
    };
    use proctor_primitives::{Address, EncryptionKey};
    use proctor_state::contracts::{Checkpoint, Receipt};

    const MARKER: &[u8] = b"zqxcontractmarker";

    fn example(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../examples/contracts/{name}.wasm"));
        std::fs::read(p).unwrap()
    }

    fn kv() -> Vec<u8> {
        example("kv")
    }

    /// An executor enclave granted contract `id`'s key by `gk`, with kv loaded.
    fn executor(name: &str, gk: &mut Enclave, id: u64, from: Option<Checkpoint>) -> Enclave {
        running(name, gk, id, kv(), from)
    }

    /// An executor enclave granted contract `id`'s key by `gk`, running
    /// `code` from `from`.
    fn running(
        name: &str,
        gk: &mut Enclave,
        id: u64,
        code: Vec<u8>,
        from: Option<Checkpoint>,
    ) -> Enclave {
        let mut x = enclave(name);
        grant(gk, &mut x, id, 0);
        let load = ContractRequest::Load {
            contract: id,
            code,
            checkpoint: from,
            proof: None,
        };
        ask(&mut x, load).unwrap();
        x
    }

    struct User {
        account: Address,
        reply: RecipientKey,
    }

    fn user(n: u8) -> User {
        User {
            account: Address([n; 20]),
            reply: RecipientKey::from_seed(&[n; 32]),
        }
    }

    fn command(to: &EncryptionKey, id: u64, u: &User, nonce: u64, msg: &[u8]) -> Command {
        let mut rng =
            <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([nonce as u8; 32]);
        Command {
            era: 0,
            sender: u.account,
            nonce,
            height: 5,
            fuel: 10_000_000,
            init: false,
            oracle: false,
            reply_to: u.reply.public(),
            sealed: envelope::seal_to(
                to,
                &command_info(&CHAIN, id, &u.account, nonce),
                msg,
                &mut rng,
            )
            .unwrap(),
        }
    }

    /// Applies `c` on `x`; the receipt, whose signature verifies.
    fn apply(x: &mut Enclave, id: u64, c: Command) -> Receipt {
        let req = ContractRequest::Apply {
            contract: id,
            command: c,
            keys: vec![],
            unknown: vec![],
            proof: None,
        };
        match ask(x, req).unwrap() {
            ContractResponse::Applied { receipt, signature } => {
                let who = x.info().identity;
                assert_eq!(receipt.executor, who);
                who.verify(&receipt.signing_bytes(&CHAIN), &signature)
                    .unwrap();
                receipt
            }
            r => panic!("{r:?}"),
        }
    }

    fn checkpoint(x: &mut Enclave, id: u64) -> Checkpoint {
        match ask(x, ContractRequest::Checkpoint { contract: id }).unwrap() {
            ContractResponse::Checkpoint {
                checkpoint,
                signature,
            } => {
                let who = x.info().identity;
                who.verify(&checkpoint.signing_bytes(&CHAIN), &signature)
                    .unwrap();
                checkpoint
            }
            r => panic!("{r:?}"),
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn an_oracle_datagram_arrives_in_the_clear_from_the_oracle_and_gets_no_reply() {
        use proctor_state::contracts::{oracle_address, oracle_message};
        let mut gk = enclave("feed-gk");
        bootstrap(&mut gk);
        let key = public_key(&mut gk, 1).key;
        let mut x = running("feed-x", &mut gk, 1, example("feed"), None);
        // The chain's message for a delivered request selecting [42.5].
        let r = proctor_state::oracle::OracleRequest {
            datagram: Some(proctor_state::oracle::Datagram {
                request: 9,
                params: Hash::ZERO,
                enclave: x.info().identity,
                roots: Hash::ZERO,
                time_ms: 0,
                body: proctor_state::oracle::Body::Public(
                    proctor_state::oracle::Outcome::Fetched {
                        server_name: "example.org".into(),
                        cert_hash: Hash::ZERO,
                        status: 200,
                        value: proctor_state::oracle::Value::Json("[42.5]".into()),
                    },
                ),
            }),
            ..oracle_request(9)
        };
        let datagram = Command {
            sender: oracle_address(),
            oracle: true,
            sealed: oracle_message(&r).unwrap(),
            ..command(&key, 1, &user(1), 9, b"")
        };
        let receipt = apply(&mut x, 1, datagram.clone());
        assert_eq!((receipt.code, receipt.reply.len()), (0, 0));
        // The same bytes from a user, sealed as a command: refused.
        let forged = command(&key, 1, &user(1), 10, &datagram.sealed);
        assert_eq!(apply(&mut x, 1, forged).code, 1);
        // A host marking a user's sealed command as a datagram changes the
        // command log its receipt names (which the chain checks).
        let mut y = running("feed-y", &mut gk, 1, example("feed"), None);
        let mut marked = command(&key, 1, &user(1), 9, b"x");
        let honest = apply(&mut y, 1, marked.clone()).log;
        marked.oracle = true;
        let mut z = running("feed-z", &mut gk, 1, example("feed"), None);
        assert_ne!(apply(&mut z, 1, marked).log, honest);
    }

    fn oracle_request(id: u64) -> proctor_state::oracle::OracleRequest {
        proctor_state::oracle::OracleRequest {
            id,
            requester: Address([3; 20]),
            query: proctor_state::oracle::Query::Public(proctor_state::oracle::Params {
                url: "https://example.org/p".into(),
                select: Some("/p".into()),
            }),
            callback: None,
            fee: proctor_primitives::Amount(0),
            escrow: proctor_primitives::Amount(0),
            enclave: proctor_primitives::PublicKey([0; 32]),
            created: 0,
            created_ms: 0,
            deadline: 0,
            state: proctor_state::oracle::RequestState::Delivered,
            datagram: None,
            height: None,
            fee_paid: proctor_primitives::Amount(0),
            refunded: proctor_primitives::Amount(0),
            error: None,
        }
    }

    /// Grants `x` contract `id`'s key of `era` from `gk`.
    fn grant(gk: &mut Enclave, x: &mut Enclave, id: u64, era: u64) {
        let to = attest(x);
        let g = handover(
            gk,
            ContractRequest::Grant {
                contract: id,
                era,
                to,
            },
        )
        .unwrap();
        ask(x, ContractRequest::Accept(Box::new(g))).unwrap();
    }

    #[test]
    fn after_a_rotation_commands_open_under_their_eras_key_and_the_state_moves_to_the_new_one() {
        let mut gk = enclave("era-gk");
        bootstrap(&mut gk);
        let key0 = public_key(&mut gk, 1).key;
        let mut x = executor("era-x", &mut gk, 1, None);
        let alice = user(1);
        apply(&mut x, 1, command(&key0, 1, &alice, 1, b"set a 1"));
        ask(&mut gk, ContractRequest::Rotate { era: 1 }).unwrap();
        let key1 = match ask(
            &mut gk,
            ContractRequest::PublicKey {
                contract: 1,
                era: 1,
            },
        )
        .unwrap()
        {
            ContractResponse::PublicKey(k) => k.key,
            r => panic!("{r:?}"),
        };
        // A command of era 1 before the executor holds that key: refused,
        // not recorded as failed (an executor holding it would open it).
        let mut c = command(&key1, 1, &alice, 2, b"set b 2");
        c.era = 1;
        let e = ask(
            &mut x,
            ContractRequest::Apply {
                contract: 1,
                command: c.clone(),
                keys: vec![],
                unknown: vec![],
                proof: None,
            },
        )
        .unwrap_err();
        assert!(e.contains("no key of era 1"), "{e}");
        grant(&mut gk, &mut x, 1, 1);
        // The command as sent opens; the same ciphertext claimed for era 0
        // does not (and the chain's log would show the claim anyway).
        let mut wrong = c.clone();
        wrong.era = 0;
        let mut y = executor("era-y", &mut gk, 1, None);
        apply(&mut y, 1, command(&key0, 1, &alice, 1, b"set a 1"));
        assert_eq!(apply(&mut y, 1, wrong).code, -1);
        let r = apply(&mut x, 1, c);
        assert_eq!(r.code, 0);
        // The re-checkpoint is under era 1's key: a successor with only
        // that key recovers the state.
        let cp = checkpoint(&mut x, 1);
        assert_eq!((cp.era, cp.applied, cp.state_hash), (1, 2, r.state_hash));
        let mut z = enclave("era-z");
        grant(&mut gk, &mut z, 1, 1);
        let load = ContractRequest::Load {
            contract: 1,
            code: kv(),
            checkpoint: Some(cp),
            proof: None,
        };
        match ask(&mut z, load).unwrap() {
            ContractResponse::Loaded {
                applied,
                state_hash,
            } => {
                assert_eq!((applied, state_hash), (2, r.state_hash));
            }
            r => panic!("{r:?}"),
        }
        // Forward secrecy: once checkpointed under era 1, the executor
        // destroys its era-0 key; a command of era 0 no longer opens.
        ask(
            &mut x,
            ContractRequest::ForgetContract {
                contract: 1,
                before: 1,
            },
        )
        .unwrap();
        let old = command(&key0, 1, &alice, 3, b"set c 3");
        let e = ask(
            &mut x,
            ContractRequest::Apply {
                contract: 1,
                command: old,
                keys: vec![],
                unknown: vec![],
                proof: None,
            },
        )
        .unwrap_err();
        assert!(e.contains("no key of era 0"), "{e}");
    }

    #[test]
    fn executors_agree_replays_are_refused_and_a_checkpoint_recovers_the_state() {
        let mut gk = enclave("exec-gk");
        bootstrap(&mut gk);
        let key = public_key(&mut gk, 1).key;
        let mut x = executor("exec-x", &mut gk, 1, None);
        let mut y = executor("exec-y", &mut gk, 1, None);
        let (alice, bob) = (user(1), user(2));
        let secret = [b"set diary ".as_slice(), MARKER].concat();
        let log = [
            command(&key, 1, &alice, 1, &secret),
            command(&key, 1, &bob, 1, b"set diary mine"),
            command(&key, 1, &bob, 2, b"set notes hello"),
        ];
        let mut hashes = vec![];
        for c in &log {
            assert!(!contains(&c.sealed, MARKER));
            let (a, b) = (apply(&mut x, 1, c.clone()), apply(&mut y, 1, c.clone()));
            assert_eq!(a.state_hash, b.state_hash);
            assert_eq!((a.code, a.instructions), (b.code, b.instructions));
            assert!(!contains(&a.reply, MARKER));
            hashes.push(a);
        }
        assert_eq!(hashes[0].code, 0);
        assert_eq!(hashes[1].code, 3, "bob may not take alice's key");
        let reply = bob
            .reply
            .open(&reply_info(&CHAIN, 1, 2), &hashes[1].reply)
            .unwrap();
        assert_eq!(reply, b"not the owner");
        assert!(
            alice
                .reply
                .open(&reply_info(&CHAIN, 1, 2), &hashes[1].reply)
                .is_err()
        );

        // Alice's ciphertext presented as Bob's, or with another nonce, or
        // to another contract: it does not open, nothing changes.
        let before = hashes[2].state_hash;
        let mut as_bob = log[0].clone();
        as_bob.sender = bob.account;
        let mut renonced = log[0].clone();
        renonced.nonce = 9;
        for c in [as_bob, renonced] {
            let a = apply(&mut x, 1, c);
            assert_eq!((a.code, a.state_hash), (-1, before));
        }
        let mut z = executor("exec-z", &mut gk, 2, None);
        let empty = apply(&mut z, 2, log[0].clone());
        assert_eq!(empty.code, -1);

        // A checkpoint holds no plaintext; a new executor resumes from it.
        let cp = checkpoint(&mut x, 1);
        assert_eq!(cp.state_hash, before);
        assert!(!contains(&cp.ciphertext, MARKER));
        let mut w = executor("exec-w", &mut gk, 1, Some(cp.clone()));
        let next = command(&key, 1, &alice, 2, b"set other 1");
        let (mut from_w, mut from_x) = (apply(&mut w, 1, next.clone()), apply(&mut x, 1, next));
        // Replies are sealed with fresh randomness; the rest is equal.
        assert!(
            alice
                .reply
                .open(&reply_info(&CHAIN, 1, from_w.seq), &from_w.reply)
                .is_ok()
        );
        (from_w.reply, from_x.reply) = (vec![], vec![]);
        from_w.executor = from_x.executor;
        assert_eq!(from_w, from_x);

        // A checkpoint altered, or passed off as a later one, is refused.
        let mut flipped = cp.clone();
        *flipped.ciphertext.last_mut().unwrap() ^= 1;
        let mut later = cp.clone();
        later.applied += 1;
        for bad in [flipped, later] {
            let mut v = enclave("exec-v");
            grant(&mut gk, &mut v, 1, 0);
            let e = ask(
                &mut v,
                ContractRequest::Load {
                    contract: 1,
                    code: kv(),
                    checkpoint: Some(bad),
                    proof: None,
                },
            )
            .unwrap_err();
            assert!(e.contains("does not open"), "{e}");
        }
    }

    /// Alice's query, signed by her account key, answerable until `expires`.
    fn query(
        key: &EncryptionKey,
        id: u64,
        who: &Keypair,
        reply: &RecipientKey,
        expires: u64,
        msg: &[u8],
    ) -> SignedQuery {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([9; 32]);
        let caller = who.public();
        let mut q = SignedQuery {
            chain: CHAIN,
            contract: id,
            caller,
            expires_at: expires,
            reply_to: reply.public(),
            sealed: envelope::seal_to(
                key,
                &query_info(&CHAIN, id, &caller, expires),
                msg,
                &mut rng,
            )
            .unwrap(),
            signature: proctor_primitives::Signature([0; 64]),
        };
        q.signature = who.sign(&q.signing_bytes());
        q
    }

    fn ask_query(x: &mut Enclave, q: SignedQuery, height: u64) -> Result<QueryAnswer, String> {
        let req = ContractRequest::Query {
            query: Box::new(q),
            height,
            block_hash: Hash([3; 32]),
        };
        ask(x, req).map(|r| match r {
            ContractResponse::Answer(a) => *a,
            r => panic!("{r:?}"),
        })
    }

    #[test]
    fn queries_are_answered_for_their_signer_only_with_a_signed_statement() {
        let mut gk = enclave("query-gk");
        bootstrap(&mut gk);
        let key = public_key(&mut gk, 1).key;
        let mut x = executor("query-x", &mut gk, 1, None);
        let alice_key = Keypair::from_secret(&[1; 32]);
        let bob_key = Keypair::from_secret(&[2; 32]);
        let alice = User {
            account: alice_key.public().address(),
            reply: RecipientKey::from_seed(&[1; 32]),
        };
        let secret = [b"set diary ".as_slice(), MARKER].concat();
        let applied = apply(&mut x, 1, command(&key, 1, &alice, 1, &secret));
        assert_eq!(applied.code, 0);

        let q = query(&key, 1, &alice_key, &alice.reply, 50, b"get diary");
        let a = ask_query(&mut x, q.clone(), 40).unwrap();
        let st = &a.statement;
        assert_eq!((st.code, st.applied, st.height), (0, 1, 40));
        assert_eq!((st.state_hash, st.query), (applied.state_hash, q.hash()));
        assert_eq!(st.reply, Hash::of(&a.reply));
        // Its commands came without proofs, from a host it has no light
        // client to check: the statement says so (the CLI refuses it).
        assert!(!st.proven);
        x.info()
            .identity
            .verify(&st.signing_bytes(), &a.signature)
            .unwrap();
        let reply = alice
            .reply
            .open(&query_reply_info(&q.hash()), &a.reply)
            .unwrap();
        assert_eq!(reply, MARKER);
        assert!(!contains(&a.reply, MARKER));

        // Bob asks for Alice's key: the contract refuses, and says so.
        let bob_reply = RecipientKey::from_seed(&[2; 32]);
        let qb = query(&key, 1, &bob_key, &bob_reply, 50, b"get diary");
        let b = ask_query(&mut x, qb.clone(), 40).unwrap();
        assert_eq!(b.statement.code, 3);
        let why = bob_reply
            .open(&query_reply_info(&qb.hash()), &b.reply)
            .unwrap();
        assert_eq!(why, b"not the owner");
        // Bob replays Alice's query as his own, or alters it: refused.
        let mut stolen = q.clone();
        stolen.caller = bob_key.public();
        stolen.signature = bob_key.sign(&stolen.signing_bytes());
        let e = ask_query(&mut x, stolen, 40).unwrap_err();
        assert!(e.contains("does not open"), "{e}");
        let mut redirected = q.clone();
        redirected.reply_to = bob_reply.public();
        let e = ask_query(&mut x, redirected, 40).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        // Past its expiry: refused.
        let e = ask_query(&mut x, q, 51).unwrap_err();
        assert!(e.contains("expired"), "{e}");
    }

    /// The receipts name the command log the enclave applied, computed as
    /// the chain computes it: a host that replays a command (or feeds one
    /// the chain does not have) gets receipts over another log, which the
    /// chain refuses.
    #[test]
    fn receipts_name_the_command_log_so_a_replay_by_the_host_shows() {
        use proctor_state::contracts::next_log;
        let mut gk = enclave("log-gk");
        bootstrap(&mut gk);
        let key = public_key(&mut gk, 1).key;
        let mut honest = executor("log-honest", &mut gk, 1, None);
        let mut replayed = executor("log-replayed", &mut gk, 1, None);
        let alice = user(1);
        let log: Vec<Command> = (0..3)
            .map(|n| command(&key, 1, &alice, n, format!("set k{n} v").as_bytes()))
            .collect();
        // The chain's log.
        let mut chain_log = Hash::ZERO;
        let mut expected = vec![];
        for (i, c) in log.iter().enumerate() {
            chain_log = next_log(&chain_log, &c.hash(1, i as u64 + 1));
            expected.push(chain_log);
        }
        for (i, c) in log.iter().enumerate() {
            assert_eq!(apply(&mut honest, 1, c.clone()).log, expected[i]);
        }
        // The host slips command 1 in twice: from there on, every receipt
        // names another log than the chain's.
        apply(&mut replayed, 1, log[0].clone());
        apply(&mut replayed, 1, log[0].clone());
        let r = apply(&mut replayed, 1, log[1].clone());
        assert_ne!(r.log, expected[1]);
        assert_ne!(r.log, expected[2]);
    }

    /// The forwarder example emits to another contract: without the
    /// target's key the enclave asks for it (applying nothing); with a key
    /// a gatekeeper enclave signed (shown by its registration quote) it
    /// seals the message to it; a key signed by the host's own key, or a
    /// signer quoted for other keys, is refused.
    #[test]
    fn egress_is_sealed_only_to_a_key_an_enclave_of_this_code_signed() {
        use proctor_enclave::contracts::TargetKey;
        use proctor_primitives::Address;
        let mut gk = enclave("egress-gk");
        bootstrap(&mut gk);
        let (fkey, kv_key) = (public_key(&mut gk, 1), public_key(&mut gk, 2));
        let mut x = enclave("egress-x");
        grant(&mut gk, &mut x, 1, 0);
        let forward = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/contracts/forward.wasm"),
        )
        .unwrap();
        ask(
            &mut x,
            ContractRequest::Load {
                contract: 1,
                code: forward,
                checkpoint: None,
                proof: None,
            },
        )
        .unwrap();
        let alice = user(1);
        let cmd = command(
            &fkey.key,
            1,
            &alice,
            1,
            format!("to 2 {}", String::from_utf8_lossy(MARKER)).as_bytes(),
        );
        let try_apply = |x: &mut Enclave, keys: Vec<TargetKey>, unknown: Vec<u64>| {
            ask(
                x,
                ContractRequest::Apply {
                    contract: 1,
                    command: cmd.clone(),
                    keys,
                    unknown,
                    proof: None,
                },
            )
        };
        assert!(matches!(
            try_apply(&mut x, vec![], vec![]).unwrap(),
            ContractResponse::NeedKeys { targets } if targets == vec![2]
        ));
        // The gatekeeper's registration quote, as the chain keeps it.
        let (operator, genesis, expires_at) = (Address([5; 20]), Hash([6; 32]), 1_000);
        let Response::Quote(quote) = gk.handle(Request::RegistrationQuote {
            operator,
            genesis,
            expires_at,
        }) else {
            panic!("no quote")
        };
        let info = gk.info();
        let genuine = TargetKey {
            key: kv_key.clone(),
            signer: proctor_enclave::contracts::Registration {
                identity: info.identity,
                encryption_key: info.encryption_key,
                operator,
                genesis,
                expires_at,
                quote: quote.clone(),
            },
        };
        // Signed by the host's own key instead.
        let host = Keypair::from_secret(&[7; 32]);
        let mut forged = genuine.clone();
        forged.key.gatekeeper = host.public();
        forged.key.key = EncryptionKey([9; 32]);
        forged.key.signature = host.sign(&forged.key.signing_bytes());
        let e = try_apply(&mut x, vec![forged.clone()], vec![]).unwrap_err();
        assert!(e.contains("not its gatekeeper"), "{e}");
        // ... and passed off as the gatekeeper's registration: the quote
        // does not bind the host's key.
        forged.signer.identity = host.public();
        let e = try_apply(&mut x, vec![forged], vec![]).unwrap_err();
        assert!(e.contains("not an enclave of this code"), "{e}");
        // The genuine quote, claimed for other keys.
        let mut other = genuine.clone();
        other.signer.expires_at += 1;
        assert!(try_apply(&mut x, vec![other], vec![]).is_err());
        // The genuine key: sealed, bound to the forwarder's address.
        let ContractResponse::Applied { receipt, .. } =
            try_apply(&mut x, vec![genuine], vec![]).unwrap()
        else {
            panic!("not applied")
        };
        assert_eq!(receipt.emits.len(), 1);
        let e = &receipt.emits[0].0;
        assert_eq!(e[..8], 2u64.to_le_bytes());
        assert!(
            !contains(e, MARKER),
            "the message left the enclave in the clear"
        );
        let _ = RecipientKey::from_seed(&[0; 32]);
    }
}

/// The commitment and blob of a [`ContractResponse::Root`].
fn root_of(r: ContractResponse) -> (u64, Hash, Vec<u8>) {
    match r {
        ContractResponse::Root {
            era,
            commitment,
            sealed,
            ..
        } => (era, commitment, sealed),
        r => panic!("{r:?}"),
    }
}

fn key_of(
    e: &mut Enclave,
    contract: u64,
    era: u64,
) -> Result<proctor_primitives::EncryptionKey, String> {
    ask(e, ContractRequest::PublicKey { contract, era }).map(|r| match r {
        ContractResponse::PublicKey(k) => {
            assert_eq!((k.era, k.contract), (era, contract));
            k.key
        }
        r => panic!("{r:?}"),
    })
}

#[test]
fn a_rotation_adds_an_eras_key_that_moves_with_the_past_ones_and_retiring_destroys_them() {
    let d = dir("rot-a");
    let mut a = open(&d);
    let (c0, _) = bootstrap(&mut a);
    // The leader generates era 1's key; asked again, the same one.
    let (era, c1, _) = root_of(ask(&mut a, ContractRequest::Rotate { era: 1 }).unwrap());
    assert_eq!(era, 1);
    assert_ne!(c1, c0);
    let (_, again, sealed) = root_of(ask(&mut a, ContractRequest::Rotate { era: 1 }).unwrap());
    assert_eq!(again, c1);
    // Its past key still derives the same contract keys; the new one others.
    let (k0, k1) = (key_of(&mut a, 7, 0).unwrap(), key_of(&mut a, 7, 1).unwrap());
    assert_ne!(k0, k1);
    assert!(key_of(&mut a, 7, 2).is_err(), "no key of an era to come");
    // A host cannot have it roll back to an era it is past.
    ask(&mut a, ContractRequest::Rotate { era: 3 }).unwrap();
    assert!(ask(&mut a, ContractRequest::Rotate { era: 2 }).is_err());

    // A joining gatekeeper gets every era's key with the newest committed.
    let mut b = enclave("rot-b");
    let to_b = attest(&mut b);
    // Restarted, from the sealed blob: every era's key is back.
    let (_, _, sealed3) = root_of(ask(&mut a, ContractRequest::Rotate { era: 3 }).unwrap());
    assert_ne!(sealed3, sealed);
    let mut a1 = open(&d);
    let restore = ContractRequest::Restore { sealed: sealed3 };
    let (era, restored, _) = root_of(ask(&mut a1, restore).unwrap());
    assert_eq!(era, 3);
    let h = handover(&mut a1, ContractRequest::HandOver { to: to_b }).unwrap();
    assert_eq!((h.era, h.commitment), (3, restored));
    let (era, c, _) = root_of(ask(&mut b, ContractRequest::Receive(Box::new(h.clone()))).unwrap());
    assert_eq!((era, c), (3, restored));
    assert_eq!(key_of(&mut b, 7, 0).unwrap(), k0);
    assert_eq!(key_of(&mut b, 7, 1).unwrap(), k1);
    // A handover whose newest key is not the committed one is refused.
    let mut recommitted = h;
    recommitted.commitment = c1;
    let mut c_ = enclave("rot-c");
    assert!(ask(&mut c_, ContractRequest::Receive(Box::new(recommitted))).is_err());

    // Retired, it holds no root key any more.
    assert!(matches!(
        ask(&mut b, ContractRequest::Retire).unwrap(),
        ContractResponse::Retired
    ));
    assert!(key_of(&mut b, 7, 0).is_err());
    assert!(
        handover(
            &mut b,
            ContractRequest::HandOver {
                to: attest(&mut c_)
            }
        )
        .is_err()
    );
}

#[test]
fn forward_secrecy_destroys_past_eras_keys_but_never_the_newest() {
    let mut a = enclave("fs-a");
    bootstrap(&mut a);
    for era in 1..=2 {
        ask(&mut a, ContractRequest::Rotate { era }).unwrap();
    }
    let k2 = key_of(&mut a, 7, 2).unwrap();
    let (era, _, _) = root_of(ask(&mut a, ContractRequest::Forget { before: 2 }).unwrap());
    assert_eq!(era, 2);
    assert!(key_of(&mut a, 7, 0).is_err() && key_of(&mut a, 7, 1).is_err());
    assert_eq!(key_of(&mut a, 7, 2).unwrap(), k2);
    // Asked to forget everything, it keeps the key in force.
    ask(&mut a, ContractRequest::Forget { before: 9 }).unwrap();
    assert_eq!(key_of(&mut a, 7, 2).unwrap(), k2);
    // A gatekeeper joining now gets only what is left.
    let mut b = enclave("fs-b");
    let to_b = attest(&mut b);
    let h = handover(&mut a, ContractRequest::HandOver { to: to_b }).unwrap();
    ask(&mut b, ContractRequest::Receive(Box::new(h))).unwrap();
    assert!(key_of(&mut b, 7, 1).is_err());
    assert_eq!(key_of(&mut b, 7, 2).unwrap(), k2);
}

#[test]
fn a_heartbeat_is_signed_only_for_the_window_the_light_client_is_in() {
    let keys = proctor_state::testkit::keys(1);
    let mut params = proctor_state::testkit::params(Some(root().public()), sim_measurement());
    params.contracts.era_blocks = 16;
    let g = proctor_state::testkit::genesis(&keys, 1_000, params);
    let chain = g.hash();
    let mut e = enclave("heartbeat");
    let beat = |e: &mut Enclave, era: u64, window: u64| {
        ask(e, ContractRequest::Heartbeat { chain, era, window })
    };
    // Without a light client of this chain it has no idea of the window.
    assert!(beat(&mut e, 0, 0).is_err());
    ask(
        &mut e,
        ContractRequest::LightInit {
            genesis: Box::new(g),
        },
    )
    .unwrap();
    // At the genesis, the next two blocks are in windows 0 and 1 of era
    // 0 (windows of two blocks); not later.
    assert!(matches!(
        beat(&mut e, 0, 0).unwrap(),
        ContractResponse::Heartbeat(_)
    ));
    for (era, window) in [(0, 2), (0, 7), (1, 0)] {
        let why = beat(&mut e, era, window).unwrap_err();
        assert!(why.contains("not the chain's now"), "{why}");
    }
    // Another chain's heartbeat: no light client of it.
    let other = ask(
        &mut e,
        ContractRequest::Heartbeat {
            chain: Hash([9; 32]),
            era: 0,
            window: 0,
        },
    );
    assert!(other.is_err());
}
