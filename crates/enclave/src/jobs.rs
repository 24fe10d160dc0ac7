//! Confidential jobs: a ticket checked against the job's binding, the
//! content key opened only for that exact job, the output sealed to the
//! requester and the report signed; refusals signed when the requester's
//! doing stops a job.

use crate::*;

impl Enclave {
    /// Checks a job's blobs, unwraps its key and decrypts its input: what is
    /// needed to run it, with the plaintext only in enclave memory.
    fn open_job(
        &self,
        t: JobTicket,
    ) -> Result<(JobContext, Vm, proctor_vm::Loaded, TaskSpec), Error> {
        let refuse = |m: String| Error::Job(m);
        let spec = &t.spec;
        if Hash::of(&t.module) != spec.module {
            return Err(refuse(
                "module bytes do not match the job's module hash".into(),
            ));
        }
        if Hash::of(&t.input) != spec.input {
            return Err(refuse(
                "input bytes do not match the job's input hash".into(),
            ));
        }
        let binding = job_binding(t.job, spec, t.submitted_ms);
        // From here on, what fails is the requester's doing, on the job the
        // enclave was handed (its binding) and the key it was handed: the
        // enclave signs a refusal, which the chain accepts only if both are
        // the job's and the posted key (a host that altered either gets
        // nothing it can use).
        let signed = |reason| self.refusal(&t, reason);
        let k: [u8; 32] = self
            .platform
            .open_envelope(&envelope::key_info(&binding), &t.wrapped_key)
            .ok()
            .and_then(|key| key.try_into().ok())
            .ok_or_else(|| signed(RefusalReason::KeyDoesNotOpen))?;
        let input = envelope::decrypt(&k, &t.input)
            .map_err(|_| signed(RefusalReason::InputUndecryptable))?;
        let limits = Limits {
            max_memory_pages: spec.memory_pages.min(Limits::default().max_memory_pages),
            ..Limits::default()
        };
        let vm = Vm::new(limits)?;
        let loaded = vm
            .load(&t.module)
            .map_err(|_| signed(RefusalReason::ModuleRejected))?;
        let task = TaskSpec {
            args: spec.args.clone(),
            input,
            fuel: spec.fuel,
            clock_ns: t.submitted_ms.saturating_mul(1_000_000),
            random_seed: TaskSpec::job_seed(t.job),
        };
        let ctx = JobContext {
            job: t.job,
            binding,
            key: k,
            output_key: EncryptionKey(spec.output_key),
            module: spec.module,
            input: spec.input,
        };
        Ok((ctx, vm, loaded, task))
    }

    /// A refusal of the job `t` names (its binding and wrapped key), signed
    /// by this enclave's identity.
    pub(crate) fn refusal(&self, t: &JobTicket, reason: RefusalReason) -> Error {
        let refusal = JobRefusal {
            job: t.job,
            worker: self.platform.identity(),
            binding: job_binding(t.job, &t.spec, t.submitted_ms),
            key: Hash::of(&t.wrapped_key),
            reason,
        };
        let signature = self.platform.sign(&refusal.hash().0);
        Error::Refused {
            reason,
            refusal: Box::new(refusal),
            signature,
        }
    }

    /// Seals a finished job's output to the requester and signs its report.
    pub(crate) fn finish_job(
        &mut self,
        ctx: &JobContext,
        output: Vec<u8>,
        instructions: u64,
    ) -> Result<Response, Error> {
        #[cfg(feature = "test-faults")]
        let output = match self.corrupt_results {
            true => [output, b" (corrupted)".to_vec()].concat(),
            false => output,
        };
        let commitment = envelope::commitment(&ctx.key, &output);
        let mut seed = [0u8; 32];
        self.platform.random(&mut seed);
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
        let sealed = envelope::seal_to(
            &ctx.output_key,
            &envelope::output_info(ctx.job),
            &output,
            &mut rng,
        )
        .map_err(|e| Error::Job(format!("output key: {e}")))?;
        let report = ResultReport {
            job: ctx.job,
            worker: self.platform.identity(),
            binding: ctx.binding,
            module: ctx.module,
            input: ctx.input,
            output: Hash::of(&sealed),
            instructions,
            commitment,
        };
        let signature = self.platform.sign(&report.hash().0);
        Ok(Response::JobDone {
            report,
            signature,
            output: sealed,
        })
    }

    /// Runs a job to completion at once (no lottery).
    pub(crate) fn run_job(&mut self, t: JobTicket) -> Result<Response, Error> {
        let (ctx, vm, loaded, spec) = self.open_job(t)?;
        let fuel = spec.fuel;
        let out = vm.run(&loaded, spec, fuel.max(1));
        self.finish_job(&ctx, out.stdout, out.instructions)
    }

    /// Starts a job as the mining task: [`Request::Mine`] then runs it in
    /// slices with a lottery draw after each, as for the filler task, and
    /// returns [`MineResult::JobDone`] when it finishes. The job is the
    /// useful work that secures the chain.
    pub(crate) fn load_job(&mut self, t: JobTicket, slice: u64) -> Result<Response, Error> {
        if slice == 0 {
            return Err(Error::BadSlice);
        }
        let (ctx, vm, loaded, spec) = self.open_job(t)?;
        let task = vm.start(&loaded, spec, slice);
        let input = ctx.input;
        Ok(self.start_mining(loaded.verdict.module, task, slice, input, Some(ctx)))
    }
}
