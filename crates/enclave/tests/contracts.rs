//! Contract keys between enclaves: a gatekeeper's root key, handed over only
//! to attested enclaves of the same code; contract keys granted the same
//! way. The host plays every attacker here: it asks for a handover to a key
//! of its own, plants a key of its own, replays a handover to another
//! enclave, and alters one in flight.

use proctor_enclave::contracts::{Handover, KeyRequest, KeyResponse, PeerAttestation};
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

fn ask(e: &mut Enclave, req: KeyRequest) -> Result<KeyResponse, String> {
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
    match ask(e, KeyRequest::Attest { chain: CHAIN }).unwrap() {
        KeyResponse::Attested(a) => a,
        r => panic!("{r:?}"),
    }
}

fn handover(e: &mut Enclave, req: KeyRequest) -> Result<Handover, String> {
    ask(e, req).map(|r| match r {
        KeyResponse::Handover(h) => *h,
        r => panic!("{r:?}"),
    })
}

fn bootstrap(e: &mut Enclave) -> (Hash, Vec<u8>) {
    match ask(e, KeyRequest::Bootstrap { chain: CHAIN }).unwrap() {
        KeyResponse::Root {
            commitment, sealed, ..
        } => (commitment, sealed),
        r => panic!("{r:?}"),
    }
}

fn public_key(e: &mut Enclave, contract: u64) -> proctor_enclave::contracts::ContractPublicKey {
    match ask(e, KeyRequest::PublicKey { contract }).unwrap() {
        KeyResponse::PublicKey(k) => k,
        r => panic!("{r:?}"),
    }
}

#[test]
fn the_root_key_moves_only_to_attested_gatekeepers_and_derives_the_same_contract_keys() {
    let mut a = enclave("gk-a");
    let mut b = enclave("gk-b");
    let (commitment, _) = bootstrap(&mut a);
    assert!(ask(&mut b, KeyRequest::PublicKey { contract: 1 }).is_err());
    let to_b = attest(&mut b);
    let h = handover(&mut a, KeyRequest::HandOver { to: to_b }).unwrap();
    match ask(&mut b, KeyRequest::Receive(Box::new(h))).unwrap() {
        KeyResponse::Accepted { era, commitment: c } => {
            assert_eq!((era, c), (0, commitment));
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
        KeyRequest::Grant {
            contract: 7,
            to: to_x.clone(),
        },
    )
    .unwrap();
    let gb = handover(
        &mut b,
        KeyRequest::Grant {
            contract: 7,
            to: to_x,
        },
    )
    .unwrap();
    assert_eq!(ga.commitment, gb.commitment);
    assert!(matches!(
        ask(&mut x, KeyRequest::Accept(Box::new(ga.clone()))).unwrap(),
        KeyResponse::Accepted { .. }
    ));
    // A grant is not a root key, and a root handover is not a grant.
    assert!(ask(&mut x, KeyRequest::Receive(Box::new(ga))).is_err());
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
        KeyRequest::Attest {
            chain: Hash([8; 32]),
        },
    )
    .unwrap()
    {
        KeyResponse::Attested(a) => a,
        r => panic!("{r:?}"),
    };
    for (to, why) in [
        (swapped, "not for these keys"),
        (rogue, "does not verify"),
        (old, "other code"),
        (other_chain, "not for these keys"),
    ] {
        for req in [
            KeyRequest::HandOver { to: to.clone() },
            KeyRequest::Grant {
                contract: 1,
                to: to.clone(),
            },
        ] {
            let e = handover(&mut a, req).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
    assert_ne!(sim_measurement(), Hash([9; 32]));
    // The genuine one still works.
    assert!(handover(&mut a, KeyRequest::HandOver { to: genuine }).is_ok());
}

#[test]
fn a_planted_replayed_or_altered_handover_is_refused() {
    let mut a = enclave("plant-a");
    let (commitment, _) = bootstrap(&mut a);
    let mut b = enclave("plant-b");
    let mut c = enclave("plant-c");
    let to_b = attest(&mut b);
    let h = handover(&mut a, KeyRequest::HandOver { to: to_b.clone() }).unwrap();

    // Replayed to C: not for it.
    let e = ask(&mut c, KeyRequest::Receive(Box::new(h.clone()))).unwrap_err();
    assert!(e.contains("another enclave"), "{e}");
    // Readdressed to C: the signature no longer verifies.
    let mut readdressed = h.clone();
    readdressed.to = attest(&mut c).identity;
    let e = ask(&mut c, KeyRequest::Receive(Box::new(readdressed))).unwrap_err();
    assert!(e.contains("signature"), "{e}");
    // A key the host made, sealed to B and claimed to come from A (A's
    // attestation copied), signed by the host: refused.
    let fake = [5u8; 32];
    let mut planted = Handover {
        commitment: proctor_enclave::contracts::root_commitment(&CHAIN, 0, &fake),
        ..h.clone()
    };
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([6; 32]);
    planted.sealed = envelope::seal_to(&to_b.encryption_key, b"", &fake, &mut rng).unwrap();
    planted.signature = Keypair::from_secret(&[4; 32]).sign(&planted.signing_bytes());
    let e = ask(&mut b, KeyRequest::Receive(Box::new(planted))).unwrap_err();
    assert!(e.contains("signature"), "{e}");
    // A byte of the sealed key flipped (and re-signed by nobody): refused.
    let mut flipped = h.clone();
    *flipped.sealed.last_mut().unwrap() ^= 1;
    assert!(ask(&mut b, KeyRequest::Receive(Box::new(flipped))).is_err());
    // The commitment swapped for another: the signature covers it.
    let mut recommitted = h.clone();
    recommitted.commitment = Hash([1; 32]);
    assert!(ask(&mut b, KeyRequest::Receive(Box::new(recommitted))).is_err());
    // The genuine one opens, with A's commitment.
    assert!(matches!(
        ask(&mut b, KeyRequest::Receive(Box::new(h))).unwrap(),
        KeyResponse::Accepted { commitment: c, .. } if c == commitment
    ));
}

#[test]
fn a_root_key_restores_from_its_sealed_blob_only_on_its_own_machine() {
    let d = dir("restore");
    let (commitment, sealed, pk) = {
        let mut a = open(&d);
        let (c, s) = bootstrap(&mut a);
        assert!(
            ask(&mut a, KeyRequest::Bootstrap { chain: CHAIN }).is_err(),
            "one root key"
        );
        (c, s, public_key(&mut a, 3).key)
    };
    // The same enclave after a restart.
    let mut again = open(&d);
    match ask(
        &mut again,
        KeyRequest::Restore {
            sealed: sealed.clone(),
        },
    )
    .unwrap()
    {
        KeyResponse::Root { commitment: c, .. } => assert_eq!(c, commitment),
        r => panic!("{r:?}"),
    }
    assert_eq!(public_key(&mut again, 3).key, pk);
    // Another machine cannot open it.
    let mut other = enclave("restore-other");
    let r = other.handle(Request::Contracts(Box::new(KeyRequest::Restore { sealed })));
    assert!(matches!(r, Response::Error { code: 3004, .. }), "{r:?}");
}
