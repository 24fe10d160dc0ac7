//! Block templates: the work a miner is given, and sealing a template
//! with a winning proof.

use super::{Chain, ChainError};
use proctor_consensus::{Parent, next_difficulty, validate_header, validate_pouw};
use proctor_primitives::{Address, Hash, Timestamp};
use proctor_rpc::WorkInfo;
use proctor_state::{
    Applied, Block, BlockEnv, BlockError, Header, PouwProof, SignedTransaction, Template, tx_root,
};
use std::time::{Duration, Instant};

/// Templates kept for late proofs.
const KEPT_TEMPLATES: usize = 32;
/// A template is reused for this long; after that it is rebuilt so that block
/// timestamps track when blocks are won and new transactions get in.
const TEMPLATE_REFRESH: Duration = Duration::from_millis(500);
/// Attempts to drop invalid transactions while building a template.
const MAX_TEMPLATE_RETRIES: usize = 64;

/// A template built for a miner, with its transactions applied.
pub(super) struct PendingTemplate {
    hash: Hash,
    template: Template,
    txs: Vec<SignedTransaction>,
    applied: Applied,
    miner: Address,
    built: Instant,
}

impl Chain {
    /// The work for `miner`: a cached template if still fresh, else a new one.
    pub fn work(&mut self, miner: Address, now_ms: Timestamp) -> Result<WorkInfo, ChainError> {
        let fresh = self.templates.iter().rev().find(|p| {
            p.miner == miner
                && p.template.parent == self.tip_hash
                && p.built.elapsed() < TEMPLATE_REFRESH
        });
        let p = match fresh {
            Some(p) => p,
            None => {
                let p = self.build_template(miner, now_ms)?;
                if self.templates.len() >= KEPT_TEMPLATES {
                    self.templates.pop_front();
                }
                self.templates.push_back(p);
                self.templates
                    .back()
                    .ok_or_else(|| ChainError::Template("no template was kept".into()))?
            }
        };
        Ok(WorkInfo {
            template_hash: p.hash,
            height: p.template.height,
            parent: p.template.parent,
            difficulty: p.template.difficulty,
            timestamp: p.template.timestamp,
            filler_module: self.genesis.params.filler_module,
            template: proctor_rpc::to_hex(&p.template),
        })
    }

    /// A template on the tip with what of the mempool applies. Only a state
    /// in which not even an empty block applies (end-of-block work failing,
    /// which the state machine rules out by design) makes it fail, as an
    /// error for the caller, never a panic.
    fn build_template(
        &mut self,
        miner: Address,
        now_ms: Timestamp,
    ) -> Result<PendingTemplate, ChainError> {
        let t = &self.tip.template;
        let height = t.height + 1;
        let timestamp = now_ms.max(t.timestamp + 1);
        let difficulty = next_difficulty(&self.genesis.params, t.difficulty, self.tip_interval);
        let env = BlockEnv {
            height,
            timestamp,
            miner,
        };
        let mut txs = self.mempool.select(
            self.genesis.params.max_block_txs as usize,
            proctor_state::MAX_BLOCK_BYTES,
        );
        let mut applied = None;
        for _ in 0..MAX_TEMPLATE_RETRIES {
            // Admission to the mempool verified every signature.
            match self.state.apply_verified(&env, &txs) {
                Ok(a) => {
                    applied = Some(a);
                    break;
                }
                Err(BlockError::Tx { index, error, .. }) => {
                    // Stale or invalid: drop it and its sender's later transactions.
                    let bad = &txs[index].tx;
                    tracing::debug!(%error, "dropping transaction from template");
                    let (sender, nonce) = (bad.sender(), bad.nonce);
                    let bad_hash = txs[index].hash();
                    for t in txs
                        .iter()
                        .filter(|t| t.tx.sender() == sender && t.tx.nonce > nonce)
                    {
                        let why = format!(
                            "an earlier transaction of this account ({bad_hash}) was dropped: {error}"
                        );
                        self.record_dropped(t.hash(), error.code(), why);
                    }
                    self.record_dropped(bad_hash, error.code(), error.to_string());
                    self.mempool.drop_from(&sender, nonce);
                    txs.retain(|s| !(s.tx.sender() == sender && s.tx.nonce >= nonce));
                }
                Err(e) => {
                    tracing::warn!(%e, "template without transactions");
                    txs.clear();
                }
            }
        }
        let applied = match applied {
            Some(a) => a,
            None => {
                txs.clear();
                self.state
                    .apply_block(&env, &[])
                    .map_err(|e| ChainError::Template(format!("an empty block fails: {e}")))?
            }
        };
        let template = Template {
            parent: self.tip_hash,
            height,
            timestamp,
            state_root: applied.state.root(),
            tx_root: tx_root(&txs),
            difficulty,
            miner,
        };
        Ok(PendingTemplate {
            hash: template.hash(),
            template,
            txs,
            applied,
            miner,
            built: Instant::now(),
        })
    }

    /// Seals the block of a template with a winning proof and makes it the tip.
    pub fn submit_work(
        &mut self,
        template: Hash,
        proof: PouwProof,
        now_ms: Timestamp,
    ) -> Result<Hash, ChainError> {
        let idx = self
            .templates
            .iter()
            .position(|p| p.hash == template && p.template.parent == self.tip_hash)
            .ok_or(ChainError::StaleTemplate(template))?;
        let p = &self.templates[idx];
        let header = Header {
            template: p.template.clone(),
            pouw: Some(proof),
        };
        let parent = Parent {
            header: &self.tip,
            state: &self.state,
            interval_ms: self.tip_interval,
        };
        validate_header(&parent, &header, Some(now_ms))?;
        validate_pouw(&header, &self.state)?;
        // The template's transactions were applied when it was built; reuse that.
        let p = self.templates.remove(idx).expect("index is valid");
        let block = Block { header, txs: p.txs };
        let started = Instant::now();
        let hash = self.commit(block, p.applied)?;
        self.import_seconds.observe(started.elapsed().as_secs_f64());
        Ok(hash)
    }
}
