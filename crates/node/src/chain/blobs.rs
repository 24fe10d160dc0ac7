//! Blob retention (seed 000 §6.2), a step after each commit.

use super::Chain;
use proctor_primitives::Hash;

/// Blocks a replaced checkpoint's blobs are kept.
const REPLACED_CHECKPOINT_BLOCKS: u64 = 1_000;

impl Chain {
    /// Blob retention (seed 000 §6.2, "short-time storage, self-destruct"):
    /// a job holds its module and input from submission (however long it
    /// waits), and when it ends they and its output are kept for the job's
    /// retention, then deleted with everything else whose time has come.
    /// Failures are logged, never fatal: blobs are not consensus data.
    pub(super) fn retain_and_expire_blobs(&self, events: &[&proctor_state::Event], height: u64) {
        self.retain_checkpoints(events, height);
        for e in events {
            let (job, ended) = match e {
                proctor_state::Event::Market(proctor_state::market::Event::JobSubmitted {
                    job,
                    ..
                }) => (*job, false),
                proctor_state::Event::Market(proctor_state::market::Event::JobEnded {
                    job,
                    ..
                }) => (*job, true),
                _ => continue,
            };
            let Some(j) = self.state.job(job) else {
                continue;
            };
            let done = if ended {
                let until = height + j.spec.retention_blocks;
                // Input and output belong to this job alone: exactly its
                // retention. The module stays held while another job uses it.
                let mut done = Vec::new();
                if !self.module_in_use(&j.spec.module) {
                    done.push(self.store.expire_blob_after(&j.spec.module, until));
                }
                for h in [Some(j.spec.input), j.output].into_iter().flatten() {
                    done.push(self.store.expire_blob_after(&h, until));
                }
                done
            } else {
                vec![
                    self.store.hold_blob(&j.spec.module),
                    self.store.hold_blob(&j.spec.input),
                ]
            };
            if let Some(Err(err)) = done.into_iter().find(Result::is_err) {
                tracing::warn!(job, "blob retention not recorded: {err}");
            }
        }
        match self.store.expire_blobs(height) {
            Ok(0) => {}
            Ok(n) => tracing::info!(n, height, "deleted blobs past their retention"),
            Err(err) => tracing::warn!("blob expiry failed: {err}"),
        }
    }

    /// A contract's latest checkpoint in blobs is kept as long as it is the
    /// latest; the one it replaced a while more, for a recovery that began
    /// from it.
    fn retain_checkpoints(&self, events: &[&proctor_state::Event], height: u64) {
        for e in events {
            let proctor_state::Event::Contracts(
                proctor_state::contracts::Event::ContractCheckpointed {
                    id,
                    parts,
                    replaced,
                    ..
                },
            ) = e
            else {
                continue;
            };
            let held = parts.iter().map(|h| self.store.hold_blob(h));
            let released = replaced.iter().map(|h| {
                self.store
                    .expire_blob_after(h, height + REPLACED_CHECKPOINT_BLOCKS)
            });
            if let Some(Err(err)) = held.chain(released).find(Result::is_err) {
                tracing::warn!(
                    contract = id,
                    "checkpoint blob retention not recorded: {err}"
                );
            }
        }
    }

    /// Whether a pending or active job runs module `m`.
    fn module_in_use(&self, m: &Hash) -> bool {
        let index = self.state.market_index();
        index
            .pending
            .iter()
            .chain(&index.active)
            .any(|id| self.state.job(*id).is_some_and(|j| j.spec.module == *m))
    }
}
