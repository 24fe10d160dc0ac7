//! A confidential job through the enclave's interface, as a worker host
//! drives it: the host handles only ciphertext; the requester's key opens an
//! output equal to a local metered run of the same module and input.

use proctor_enclave::{Enclave, JobTicket, Request, Response};
use proctor_primitives::Hash;
use proctor_state::jobs::ResultReport;
use proctor_tee::Platform;
use proctor_tee::envelope::{self, RecipientKey};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform};
use proctor_vm::{Limits, TaskSpec, Vm};
use rand_core::OsRng;

const WORDFREQ: &[u8] = include_bytes!("../../../examples/tasks/wordfreq.wasm");
const MARKER: &str = "zqxmarkerword";
/// A task that prints 16 bytes of `random_get`.
const RANDOM_PROBE: &str = include_str!("../../../examples/tasks/probes/random.wat");

fn enclave(name: &str) -> (Enclave, proctor_primitives::EncryptionKey) {
    let d = std::env::temp_dir().join(format!("proctor-enclave-job-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let p = SimPlatform::open(&d, SimAttestationRoot::from_secret(&[3; 32])).unwrap();
    let key = p.encryption_key();
    (Enclave::new(Box::new(p)).unwrap(), key)
}

/// A requester's ticket for job 42 running wordfreq: input encrypted under a
/// fresh K, K wrapped to `to`.
fn ticket(
    to: &proctor_primitives::EncryptionKey,
    requester: &RecipientKey,
    plaintext: &[u8],
) -> (JobTicket, [u8; 32]) {
    job_ticket(42, WORDFREQ, to, requester, plaintext)
}

fn job_ticket(
    job: u64,
    module: &[u8],
    to: &proctor_primitives::EncryptionKey,
    requester: &RecipientKey,
    plaintext: &[u8],
) -> (JobTicket, [u8; 32]) {
    let mut k = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut k);
    let input = envelope::encrypt(&k, plaintext, &mut OsRng);
    let wrapped_key = envelope::seal_to(to, &envelope::key_info(job), &k, &mut OsRng).unwrap();
    let t = JobTicket {
        job,
        module: module.to_vec(),
        module_hash: Hash::of(module),
        input_hash: Hash::of(&input),
        input,
        wrapped_key,
        fuel: 1_000_000_000,
        memory_pages: 256,
        output_key: requester.public(),
        args: vec!["1".into()],
        clock_ns: 0,
    };
    (t, k)
}

fn input_text() -> Vec<u8> {
    format!("the {MARKER} and the quick {MARKER} fox\nthe end\n").into_bytes()
}

#[test]
fn a_job_runs_confidentially_and_its_report_verifies() {
    let (mut e, key) = enclave("ok");
    let requester = RecipientKey::from_seed(&[9; 32]);
    let plaintext = input_text();
    let (t, k) = ticket(&key, &requester, &plaintext);
    let identity = e.info().identity;
    let request = Request::RunJob(Box::new(t.clone()));
    let request_bytes = borsh::to_vec(&request).unwrap();
    let resp = e.handle(request);
    let response_bytes = borsh::to_vec(&resp).unwrap();
    let Response::JobDone {
        report,
        signature,
        output,
    } = resp
    else {
        panic!("{resp:?}")
    };
    // What the host saw, both ways, never holds the plaintext.
    for bytes in [&request_bytes, &response_bytes] {
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    }
    // The requester opens the output: it equals a local metered run.
    let opened = requester.open(&envelope::output_info(42), &output).unwrap();
    let vm = Vm::new(Limits::default()).unwrap();
    let local = vm.run(
        &vm.load(WORDFREQ).unwrap(),
        TaskSpec {
            args: vec!["1".into()],
            input: plaintext.clone(),
            fuel: 1_000_000_000,
            clock_ns: 0,
            random_seed: TaskSpec::job_seed(42),
        },
        1_000_000_000,
    );
    assert_eq!(opened, local.stdout);
    assert!(
        String::from_utf8_lossy(&opened).contains(MARKER),
        "the task saw the input"
    );
    // The report: signed by the enclave identity, the exact count, the commitment.
    identity.verify(&report.hash().0, &signature).unwrap();
    assert_eq!(
        report,
        ResultReport {
            job: 42,
            worker: identity,
            module: Hash::of(WORDFREQ),
            input: t.input_hash,
            output: Hash::of(&output),
            instructions: local.instructions,
            commitment: envelope::commitment(&k, &local.stdout),
        }
    );
}

#[test]
fn a_jobs_random_bytes_are_keyed_by_its_id() {
    let probe = wat::parse_str(RANDOM_PROBE).unwrap();
    let requester = RecipientKey::from_seed(&[9; 32]);
    let (mut e, key) = enclave("random");
    let mut run = |job: u64| {
        let (t, _) = job_ticket(job, &probe, &key, &requester, b"same input");
        match e.handle(Request::RunJob(Box::new(t))) {
            Response::JobDone { output, .. } => requester
                .open(&envelope::output_info(job), &output)
                .unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let (a, again, b) = (run(7), run(7), run(8));
    assert_eq!(a.len(), 16);
    assert_eq!(a, again, "the same job draws the same bytes");
    assert_ne!(
        a, b,
        "another job, other bytes, though module and input are the same"
    );
    // Anyone with the id reproduces them (what `proctor task run --job 7` does).
    let vm = Vm::new(Limits::default()).unwrap();
    let local = vm.run(
        &vm.load(&probe).unwrap(),
        TaskSpec {
            input: b"same input".to_vec(),
            fuel: 1_000_000,
            random_seed: TaskSpec::job_seed(7),
            ..TaskSpec::default()
        },
        1_000_000,
    );
    assert_eq!(local.stdout, a);
}

#[test]
fn replicas_agree_on_the_commitment_and_a_corrupted_one_does_not() {
    let requester = RecipientKey::from_seed(&[9; 32]);
    let (mut a, ka) = enclave("a");
    let (mut b, kb) = enclave("b");
    let (mut bad, kbad) = enclave("bad");
    bad.corrupt_results_for_testing(true).unwrap();
    let plaintext = input_text();
    let (ta, k) = ticket(&ka, &requester, &plaintext);
    // Same job, same K and input: only the key wrapping differs per enclave.
    let wrap = |to| envelope::seal_to(to, &envelope::key_info(42), &k, &mut OsRng).unwrap();
    let tb = JobTicket {
        wrapped_key: wrap(&kb),
        ..ta.clone()
    };
    let tbad = JobTicket {
        wrapped_key: wrap(&kbad),
        ..ta.clone()
    };
    let commit = |e: &mut Enclave, t: JobTicket| match e.handle(Request::RunJob(Box::new(t))) {
        Response::JobDone { report, .. } => report.commitment,
        other => panic!("{other:?}"),
    };
    let (ca, cb, cbad) = (
        commit(&mut a, ta),
        commit(&mut b, tb),
        commit(&mut bad, tbad),
    );
    assert_eq!(ca, cb);
    assert_ne!(ca, cbad);
}

#[test]
fn a_job_is_refused_with_the_reason() {
    let (mut e, key) = enclave("refuse");
    let requester = RecipientKey::from_seed(&[9; 32]);
    let (t, _) = ticket(&key, &requester, &input_text());
    let refused = |e: &mut Enclave, t: JobTicket| match e.handle(Request::RunJob(Box::new(t))) {
        Response::Error { code, message } => (code, message),
        other => panic!("{other:?}"),
    };
    // The host swapped the input.
    let mut swapped = t.clone();
    swapped.input[20] ^= 1;
    let (code, msg) = refused(&mut e, swapped);
    assert_eq!(code, 3005);
    assert!(msg.contains("input bytes"), "{msg}");
    // The key was wrapped for another enclave.
    let (other, other_key) = enclave("other");
    drop(other);
    let (t2, _) = ticket(&other_key, &requester, &input_text());
    let (_, msg) = refused(&mut e, t2);
    assert!(msg.contains("content key"), "{msg}");
    // The key was wrapped for another job.
    let mut replay = t.clone();
    replay.job = 43;
    let (_, msg) = refused(&mut e, replay);
    assert!(msg.contains("content key"), "{msg}");
}

#[test]
fn a_job_loaded_for_mining_wins_blocks_with_its_module_then_finishes() {
    let (mut e, key) = enclave("mine");
    let requester = RecipientKey::from_seed(&[9; 32]);
    let plaintext = input_text();
    let (t, k) = ticket(&key, &requester, &plaintext);
    let input_hash = t.input_hash;
    let loaded = e.handle(Request::LoadJob {
        ticket: Box::new(t),
        slice: 10_000,
    });
    assert!(matches!(loaded, Response::Loaded { module, .. } if module == Hash::of(WORDFREQ)));
    // Difficulty 1: every slice wins. The proofs name the job's module.
    let mut wins = 0;
    let done = loop {
        match e.handle(Request::Mine {
            template: Box::new(proctor_state::Template {
                parent: Hash::of(b"parent"),
                height: 7,
                timestamp: 1,
                state_root: Hash::ZERO,
                tx_root: Hash::ZERO,
                difficulty: 1,
                miner: proctor_primitives::Address([3; 20]),
            }),
            max_slices: 5,
        }) {
            Response::Mined(proctor_enclave::MineResult::Won(p)) => {
                // The attestation names the job and the input it runs on.
                assert_eq!(p.module, Hash::of(WORDFREQ));
                assert_eq!((p.job, p.input), (Some(42), input_hash));
                wins += 1;
            }
            Response::Mined(proctor_enclave::MineResult::JobDone(r)) => break r,
            other => panic!("{other:?}"),
        }
        assert!(wins < 1_000, "the job never finished");
    };
    assert!(wins > 0);
    // Its result is the same as running it at once.
    let opened = requester
        .open(&envelope::output_info(42), &done.output)
        .unwrap();
    let (mut again, key2) = enclave("mine-again");
    let (t2, _) = ticket(&key2, &requester, &plaintext);
    let Response::JobDone { report, .. } = again.handle(Request::RunJob(Box::new(t2))) else {
        panic!()
    };
    assert_eq!(done.report.instructions, report.instructions);
    assert_eq!(done.report.commitment, envelope::commitment(&k, &opened));
    assert!(String::from_utf8_lossy(&opened).contains(MARKER));
}
