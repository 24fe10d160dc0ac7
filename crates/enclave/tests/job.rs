//! A confidential job through the enclave's interface, as a worker host
//! drives it: the host handles only ciphertext; the requester's key opens an
//! output equal to a local metered run of the same module and input.

use proctor_enclave::{Enclave, JobTicket, Request, Response};
use proctor_primitives::Hash;
use proctor_state::jobs::{JobSpec, RefusalReason, ResultReport, job_binding};
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
    let spec = JobSpec {
        module: Hash::of(module),
        input: Hash::of(&input),
        memory_pages: 256,
        fuel: 1_000_000_000,
        max_price: proctor_primitives::Amount(1),
        replicas: 1,
        deadline_blocks: 10,
        retention_blocks: 10,
        output_key: requester.public().0,
        args: vec!["1".into()],
    };
    let t = JobTicket {
        job,
        spec,
        submitted_ms: 0,
        module: module.to_vec(),
        input,
        wrapped_key: vec![],
    };
    let t = wrapped(t, to, &k);
    (t, k)
}

/// `t` with the content key wrapped to `to` for exactly `t`'s job, as the
/// requester wraps it.
fn wrapped(mut t: JobTicket, to: &proctor_primitives::EncryptionKey, k: &[u8; 32]) -> JobTicket {
    let info = envelope::key_info(&job_binding(t.job, &t.spec, t.submitted_ms));
    t.wrapped_key = envelope::seal_to(to, &info, k, &mut OsRng).unwrap();
    t
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
            binding: job_binding(42, &t.spec, 0),
            module: Hash::of(WORDFREQ),
            input: t.spec.input,
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
    let tb = wrapped(ta.clone(), &kb, &k);
    let tbad = wrapped(ta.clone(), &kbad, &k);
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
    let identity = e.info().identity;
    let requester = RecipientKey::from_seed(&[9; 32]);
    let (t, k) = ticket(&key, &requester, &input_text());
    let run = |e: &mut Enclave, t: JobTicket| e.handle(Request::RunJob(Box::new(t)));
    // The host swapped the input bytes: its own doing, an unsigned error.
    let mut swapped = t.clone();
    swapped.input[20] ^= 1;
    let Response::Error { code, message } = run(&mut e, swapped) else {
        panic!("a swapped input was not refused")
    };
    assert_eq!(code, 3005);
    assert!(message.contains("input bytes"), "{message}");
    // The requester's doing, on the exact job and key it posted: a refusal
    // signed by the enclave, naming that job and key, with the reason.
    let signed = |resp: Response, t: &JobTicket| match resp {
        Response::Refused { refusal, signature } => {
            identity.verify(&refusal.hash().0, &signature).unwrap();
            assert_eq!(refusal.binding, job_binding(t.job, &t.spec, t.submitted_ms));
            assert_eq!(refusal.key, Hash::of(&t.wrapped_key));
            assert_eq!((refusal.job, refusal.worker), (t.job, identity));
            refusal.reason
        }
        other => panic!("{other:?}"),
    };
    // The key was wrapped for another enclave.
    let (other, other_key) = enclave("other");
    drop(other);
    let (t2, _) = ticket(&other_key, &requester, &input_text());
    assert_eq!(
        signed(run(&mut e, t2.clone()), &t2),
        RefusalReason::KeyDoesNotOpen
    );
    // The input was encrypted under another key than the one wrapped.
    let mut garbled = t.clone();
    garbled.input = envelope::encrypt(&[1; 32], b"other", &mut OsRng);
    garbled.spec.input = Hash::of(&garbled.input);
    let garbled = wrapped(garbled, &key, &k);
    assert_eq!(
        signed(run(&mut e, garbled.clone()), &garbled),
        RefusalReason::InputUndecryptable
    );
    // The module fails the checker.
    let mut bad_module = t.clone();
    bad_module.module = b"\0asm not a module".to_vec();
    bad_module.spec.module = Hash::of(&bad_module.module);
    let bad_module = wrapped(bad_module, &key, &k);
    assert_eq!(
        signed(run(&mut e, bad_module.clone()), &bad_module),
        RefusalReason::ModuleRejected
    );
    // A key that came too late: the enclave signs, the chain checks timing.
    let late = e.handle(Request::RefuseLate(Box::new(t.clone())));
    assert_eq!(signed(late, &t), RefusalReason::TooLittleTime);
}

#[test]
fn a_job_loaded_for_mining_wins_blocks_with_its_module_then_finishes() {
    let (mut e, key) = enclave("mine");
    let requester = RecipientKey::from_seed(&[9; 32]);
    let plaintext = input_text();
    let (t, k) = ticket(&key, &requester, &plaintext);
    let input_hash = t.spec.input;
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
            Response::Mined(proctor_enclave::MineResult::Won(p), _) => {
                // The attestation names the job and the input it runs on.
                assert_eq!(p.module, Hash::of(WORDFREQ));
                assert_eq!((p.job, p.input), (Some(42), input_hash));
                wins += 1;
            }
            Response::Mined(proctor_enclave::MineResult::JobDone(r), _) => break r,
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

/// One change a malicious host makes to a ticket.
type Alteration<'a> = Box<dyn Fn(&mut JobTicket) + 'a>;

/// A malicious host alters the job it hands the enclave, one field at a
/// time, keeping the ticket self-consistent where it can (a swapped module
/// or input comes with its own hash in the spec): an echo module to read
/// the input, its own output key, other arguments, more fuel, another
/// clock, another job id. Each time the content key does not open (it was
/// wrapped for the exact job), the enclave refuses, and nothing the host
/// sees carries the plaintext. Before the binding, the same tickets ran.
#[test]
fn a_host_that_alters_any_field_of_the_job_gets_a_refusal_and_no_plaintext() {
    let echo = wat::parse_str(include_str!("../../../examples/tasks/probes/echo.wat")).unwrap();
    let (mut e, key) = enclave("tamper");
    let requester = RecipientKey::from_seed(&[9; 32]);
    let host_key = RecipientKey::from_seed(&[66; 32]);
    let (t, _) = ticket(&key, &requester, &input_text());
    let honest_binding = job_binding(t.job, &t.spec, t.submitted_ms);
    // The honest ticket runs.
    assert!(matches!(
        e.handle(Request::RunJob(Box::new(t.clone()))),
        Response::JobDone { .. }
    ));
    // The echo module, untouched, really would print the input.
    let (echoed, _) = job_ticket(42, &echo, &key, &requester, &input_text());
    let Response::JobDone { output, .. } = e.handle(Request::RunJob(Box::new(echoed))) else {
        panic!("the echo probe did not run")
    };
    let opened = requester.open(&envelope::output_info(42), &output).unwrap();
    assert!(String::from_utf8_lossy(&opened).contains(MARKER));

    let alterations: Vec<(&str, Alteration<'_>)> = vec![
        (
            "module",
            Box::new(|t| {
                t.module = echo.clone();
                t.spec.module = Hash::of(&echo);
            }),
        ),
        (
            "output key",
            Box::new(|t| t.spec.output_key = host_key.public().0),
        ),
        ("args", Box::new(|t| t.spec.args = vec!["1000".into()])),
        ("fuel", Box::new(|t| t.spec.fuel += 1)),
        ("memory", Box::new(|t| t.spec.memory_pages -= 1)),
        ("replicas", Box::new(|t| t.spec.replicas = 2)),
        ("deadline", Box::new(|t| t.spec.deadline_blocks += 1)),
        ("retention", Box::new(|t| t.spec.retention_blocks += 1)),
        ("price", Box::new(|t| t.spec.max_price.0 += 1)),
        (
            "input",
            Box::new(|t| {
                t.input = envelope::encrypt(&[7; 32], b"host input", &mut OsRng);
                t.spec.input = Hash::of(&t.input);
            }),
        ),
        ("clock", Box::new(|t| t.submitted_ms += 1)),
        ("job id", Box::new(|t| t.job += 1)),
    ];
    for (what, alter) in alterations {
        let mut bad = t.clone();
        alter(&mut bad);
        let request = Request::RunJob(Box::new(bad));
        let request_bytes = borsh::to_vec(&request).unwrap();
        let resp = e.handle(request);
        let response_bytes = borsh::to_vec(&resp).unwrap();
        // The content key does not open: the enclave refuses, and what it
        // signs names the altered job, which the chain does not take (the
        // job's own binding differs), so the host cannot blame the requester.
        let Response::Refused { refusal, .. } = resp else {
            panic!("an altered {what} was run: {resp:?}")
        };
        assert_eq!(refusal.reason, RefusalReason::KeyDoesNotOpen, "{what}");
        assert_ne!(refusal.binding, honest_binding, "{what}");
        for bytes in [&request_bytes, &response_bytes] {
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "{what}: the plaintext reached the host"
            );
        }
    }
}
