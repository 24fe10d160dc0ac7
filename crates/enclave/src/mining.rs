//! Mining: the task whose slices draw the PoUW lottery, the filler's input
//! fixed by the template's parent, and the two attestations of a win.

use crate::*;

impl Enclave {
    /// Makes `task` (module `m`, passed by the checker) the mining task and
    /// signs the checker attestation.
    pub(crate) fn start_mining(
        &mut self,
        m: Hash,
        task: Task,
        slice: u64,
        input: Hash,
        job: Option<JobContext>,
    ) -> Response {
        let checker_sig = self.platform.sign(&checker_message(&m));
        self.running = Some(Running {
            module: m,
            task,
            slice,
            counter: 0,
            checker_sig,
            input,
            job,
            filler: None,
        });
        Response::Loaded {
            module: m,
            checker_sig,
        }
    }

    pub(crate) fn load_task(
        &mut self,
        module: &[u8],
        input: TaskInput,
        args: Vec<String>,
        clock_ns: u64,
        fuel: u64,
        slice: u64,
    ) -> Result<Response, Error> {
        if slice == 0 {
            return Err(Error::BadSlice);
        }
        let loaded = self.vm.load(module)?;
        let m = loaded.verdict.module;
        let mut spec = TaskSpec {
            args,
            input: Vec::new(),
            fuel,
            clock_ns,
            random_seed: Hash::ZERO,
        };
        let (bytes, follows_parent) = match input {
            TaskInput::Given(bytes) => (bytes, false),
            // Replaced by the first template's input before any slice runs.
            TaskInput::FromParent => (filler_input(&Hash::ZERO).to_vec(), true),
        };
        let input_hash = Hash::of(&bytes);
        // Not a job: the random stream is keyed by module and input.
        spec.random_seed = TaskSpec::task_seed(&m, &bytes);
        spec.input = bytes;
        let task = self.vm.start(&loaded, spec.clone(), slice);
        let response = self.start_mining(m, task, slice, input_hash, None);
        if follows_parent && let Some(run) = self.running.as_mut() {
            run.filler = Some(Filler {
                loaded,
                spec,
                parent: None,
            });
        }
        Ok(response)
    }

    /// Points a parent-following filler at `parent`: restarts it on that
    /// parent's input if it runs on another's.
    fn follow_parent(vm: &Vm, run: &mut Running, parent: Hash) {
        let Some(f) = run.filler.as_mut() else {
            return;
        };
        if f.parent == Some(parent) {
            return;
        }
        let bytes = filler_input(&parent).to_vec();
        let mut spec = f.spec.clone();
        spec.random_seed = TaskSpec::task_seed(&run.module, &bytes);
        run.input = Hash::of(&bytes);
        spec.input = bytes;
        run.task = vm.start(&f.loaded, spec, run.slice);
        run.counter = 0;
        f.parent = Some(parent);
    }

    pub(crate) fn mine(
        &mut self,
        template: &Template,
        max_slices: u32,
    ) -> Result<(MineResult, Ran), Error> {
        let run = self.running.as_mut().ok_or(Error::NoTask)?;
        let mut ran = Ran::default();
        Self::follow_parent(&self.vm, run, template.parent);
        let (t, difficulty) = (template.hash(), template.difficulty);
        for _ in 0..max_slices {
            match run.task.step() {
                Step::Slice => {
                    run.counter += 1;
                    ran.slices += 1;
                    ran.instructions += run.slice;
                    // Seed 000 §3.3: one draw per slice of n instructions.
                    let r = self.platform.random_u128();
                    if lottery_wins(r, run.slice, difficulty) {
                        let mut proof = PouwProof {
                            enclave: self.platform.identity(),
                            template: t,
                            module: run.module,
                            job: run.job.as_ref().map(|j| j.job),
                            input: run.input,
                            slice: run.slice,
                            counter: run.counter,
                            instructions: run.counter * run.slice,
                            draw: r,
                            checker_sig: run.checker_sig,
                            work_sig: run.checker_sig,
                        };
                        proof.work_sig = self.platform.sign(&proof.work_message(difficulty));
                        return Ok((MineResult::Won(Box::new(proof)), ran));
                    }
                }
                Step::Done(outcome) => {
                    ran.instructions += outcome
                        .instructions
                        .saturating_sub(run.counter.saturating_mul(run.slice));
                    let finished = self.running.take().ok_or(Error::NoTask)?;
                    if let Some(ctx) = finished.job {
                        let done = self.finish_job(&ctx, outcome.stdout, outcome.instructions)?;
                        let Response::JobDone {
                            report,
                            signature,
                            output,
                        } = done
                        else {
                            unreachable!("finish_job answers JobDone")
                        };
                        let done = JobResult {
                            report,
                            signature,
                            output,
                        };
                        return Ok((MineResult::JobDone(Box::new(done)), ran));
                    }
                    let exit_code = match outcome.status {
                        Status::Exited(c) => Some(c),
                        _ => None,
                    };
                    let done = MineResult::TaskDone {
                        instructions: outcome.instructions,
                        exit_code,
                        output_hash: Hash::of(&outcome.stdout),
                    };
                    return Ok((done, ran));
                }
            }
        }
        Ok((MineResult::NoWin { slices: max_slices }, ran))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform};

    const FILLER: &[u8] = include_bytes!("../../../examples/tasks/filler.wasm");

    fn enclave(name: &str) -> Enclave {
        let dir =
            std::env::temp_dir().join(format!("proctor-enclave-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Enclave::new(Box::new(
            SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[1; 32])).unwrap(),
        ))
        .unwrap()
    }

    fn template(parent: u8, difficulty: u64) -> Box<Template> {
        Box::new(Template {
            parent: Hash([parent; 32]),
            height: 5,
            timestamp: 6,
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            difficulty,
            miner: Address([1; 20]),
        })
    }

    fn load(e: &mut Enclave, rounds: &str, slice: u64) -> Hash {
        load_on(e, rounds, slice, TaskInput::Given(b"seed".to_vec()))
    }

    fn load_on(e: &mut Enclave, rounds: &str, slice: u64, input: TaskInput) -> Hash {
        match e.handle(Request::LoadTask {
            module: FILLER.to_vec(),
            input,
            args: vec![rounds.into()],
            clock_ns: 0,
            fuel: u64::MAX / 4,
            slice,
        }) {
            Response::Loaded {
                module,
                checker_sig,
            } => {
                assert!(
                    e.info()
                        .identity
                        .verify(&checker_message(&module), &checker_sig)
                        .is_ok()
                );
                module
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wins_carry_valid_attestations() {
        let mut e = enclave("win");
        let m = load(&mut e, "250", 10_000);
        assert_eq!(m, Hash::of(FILLER));
        // Difficulty = slice: every slice wins.
        let Response::Mined(MineResult::Won(p), _) = e.handle(Request::Mine {
            template: template(7, 10_000),
            max_slices: 10,
        }) else {
            panic!("expected a win")
        };
        let id = e.info().identity;
        assert_eq!(p.enclave, id);
        assert_eq!(p.template, template(7, 10_000).hash());
        assert_eq!(p.counter, 1);
        assert_eq!((p.job, p.input), (None, Hash::of(b"seed")));
        assert!(id.verify(&p.work_message(10_000), &p.work_sig).is_ok());
        // A proof altered in any field the attestation covers fails it.
        for alter in [
            (|p: &mut PouwProof| p.input = Hash([1; 32])) as fn(&mut PouwProof),
            |p| p.job = Some(0),
            |p| p.module = Hash([2; 32]),
            |p| p.instructions += 1,
        ] {
            let mut forged = (*p).clone();
            alter(&mut forged);
            assert!(
                id.verify(&forged.work_message(10_000), &p.work_sig)
                    .is_err()
            );
        }
        let t = template(7, u64::MAX);
        // Impossible difficulty: no win, and the task eventually finishes with its exact count.
        let mut total_slices = 0u64;
        // What each call says it ran adds up to the task's exact count.
        let mut ran_total = p.instructions;
        loop {
            match e.handle(Request::Mine {
                template: t.clone(),
                max_slices: 1000,
            }) {
                Response::Mined(MineResult::NoWin { slices }, ran) => {
                    assert_eq!(ran.slices, slices);
                    total_slices += slices as u64;
                    ran_total += ran.instructions;
                }
                Response::Mined(
                    MineResult::TaskDone {
                        instructions,
                        exit_code,
                        ..
                    },
                    ran,
                ) => {
                    assert_eq!(exit_code, Some(0));
                    assert_eq!(ran_total + ran.instructions, instructions);
                    // 250 rounds of 16 KiB generated and compressed.
                    assert!(instructions > 250 * 16384 * 10, "{instructions}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(total_slices > 0);
        assert!(matches!(
            e.handle(Request::Mine {
                template: template(7, 1),
                max_slices: 1
            }),
            Response::Error { code: 3002, .. }
        ));
    }

    /// The host cannot pick the filler's input: it is derived from the
    /// template's parent, and a new parent restarts the task on its input.
    #[test]
    fn the_filler_runs_on_the_input_the_parent_fixes() {
        let mut e = enclave("parent");
        load_on(&mut e, "100000", 10_000, TaskInput::FromParent);
        let win = |e: &mut Enclave, parent: u8| match e.handle(Request::Mine {
            template: template(parent, 10_000),
            max_slices: 1,
        }) {
            Response::Mined(MineResult::Won(p), _) => p,
            other => panic!("{other:?}"),
        };
        let expect = |parent: u8| Hash::of(&filler_input(&Hash([parent; 32])));
        let a = win(&mut e, 1);
        assert_eq!((a.input, a.counter), (expect(1), 1));
        let a2 = win(&mut e, 1);
        assert_eq!((a2.input, a2.counter), (expect(1), 2));
        // A new block: the task starts again on the new parent's input.
        let b = win(&mut e, 2);
        assert_eq!((b.input, b.counter), (expect(2), 1));
        assert_ne!(expect(1), expect(2));
    }

    #[test]
    fn rejected_module_gets_no_checker_attestation() {
        let mut e = enclave("reject");
        let r = e.handle(Request::LoadTask {
            module: b"\0asm garbage".to_vec(),
            input: TaskInput::Given(vec![]),
            args: vec![],
            clock_ns: 0,
            fuel: 1,
            slice: 1,
        });
        assert!(matches!(r, Response::Error { code: 3001, .. }), "{r:?}");
    }

    #[test]
    fn filler_output_matches_its_native_build() {
        // 10 rounds over "hello", computed natively by the C build
        // (examples/tasks/build.sh) and recorded in examples/tasks/expected/.
        let expected = include_str!("../../../examples/tasks/expected/filler.10.out").trim();
        let vm = Vm::new(Limits::default()).unwrap();
        let l = vm.load(FILLER).unwrap();
        let o = vm.run(
            &l,
            TaskSpec {
                args: vec!["10".into()],
                input: b"hello".to_vec(),
                fuel: u64::MAX / 4,
                ..TaskSpec::default()
            },
            100_000,
        );
        assert!(
            o.success(),
            "{:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), expected);
    }
}
