//! The node's chain: tip state, storage, mempool and pending templates, behind
//! one lock. Synchronous: RPC handlers call it and return.

use crate::mempool::{AdmitError, Mempool};
use crate::orphans::OrphanPool;
use proctor_consensus::Tip;
use proctor_consensus::{
    ConsensusError, Parent, check_attestations, next_difficulty, validate_block_known,
    validate_header, validate_pouw,
};
use proctor_primitives::{Address, Hash, Timestamp};
use proctor_rpc::{BlockInfo, HeadInfo, PouwInfo, WorkInfo};
use proctor_state::{
    Applied, Block, BlockEnv, BlockError, Genesis, Header, PouwProof, SignedTransaction, State,
    Template, tx_root,
};
use proctor_storage::Store;
use proctor_storage::{NewBlock, Switch};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

/// Templates kept for late proofs.
const KEPT_TEMPLATES: usize = 32;
/// A template is reused for this long; after that it is rebuilt so that block
/// timestamps track when blocks are won and new transactions get in.
const TEMPLATE_REFRESH: Duration = Duration::from_millis(500);
/// Dropped transactions whose reason is remembered for clients.
const KEPT_DROPPED: usize = 10_000;
/// Side blocks (off the canonical chain, validated) kept at most.
pub const MAX_SIDE_BLOCKS: usize = 1_024;
/// Bytes of side blocks kept at most.
pub const MAX_SIDE_BYTES: u64 = 256 << 20;
/// Attempts to drop invalid transactions while building a template.
const MAX_TEMPLATE_RETRIES: usize = 64;

/// Errors of chain operations.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Storage(#[from] proctor_storage::Error),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error(transparent)]
    Admit(#[from] AdmitError),
    #[error("template {0} is unknown or stale: a new block arrived, fetch new work")]
    StaleTemplate(Hash),
    #[error(
        "stored state root {computed} does not match the tip's header {header}: the database is corrupt"
    )]
    CorruptState { header: Hash, computed: Hash },
    #[error("{0}")]
    Genesis(String),
    #[error("block's parent {0} is unknown: fetch it first")]
    UnknownParent(Hash),
    #[error("a reorganization {depth} blocks deep exceeds the finality depth {limit}")]
    ReorgTooDeep { depth: u64, limit: u64 },
    #[error("no block template can be built: {0}")]
    Template(String),
}

/// What importing a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// The block extends the tip.
    Extended(Hash),
    /// The block is stored on a branch lighter than the canonical chain.
    Side(Hash),
    /// The block's branch is heavier: the chain switched to it, reverting
    /// `depth` blocks and returning the `returned` transactions of the
    /// abandoned blocks to the mempool (the node gossips them again).
    Reorg {
        tip: Hash,
        depth: u64,
        returned: Vec<SignedTransaction>,
    },
    /// The block was already stored.
    Known(Hash),
}

struct PendingTemplate {
    hash: Hash,
    template: Template,
    txs: Vec<SignedTransaction>,
    applied: Applied,
    miner: Address,
    built: Instant,
}

/// A validated block of a branch: receipts, undo data, total difficulty.
type StagedBlock = (
    Block,
    Vec<proctor_state::Receipt>,
    Vec<(Hash, Option<Vec<u8>>)>,
    u128,
);

/// A branch validated from its fork point, ready to switch to.
struct Staged {
    fork_height: u64,
    /// Canonical blocks above the fork point, lowest first.
    reverted: Vec<Block>,
    /// The branch's blocks with their receipts, undo data and total difficulty.
    blocks: Vec<StagedBlock>,
    /// The state after the branch's last block.
    state: State,
    /// Net state changes from the tip's state to `state`.
    net: BTreeMap<Hash, Option<Vec<u8>>>,
    /// The branch's last header, and the interval it took after its parent.
    header: Header,
    interval: Option<u64>,
}

/// The chain as one node sees it.
pub struct Chain {
    store: Store,
    genesis: Genesis,
    state: State,
    tip: Header,
    tip_hash: Hash,
    total_difficulty: u128,
    /// Time the tip took after its parent (None when the tip is genesis).
    tip_interval: Option<u64>,
    pub(crate) mempool: Mempool,
    templates: VecDeque<PendingTemplate>,
    /// Recently dropped transactions: hash, error code, reason.
    dropped: VecDeque<(Hash, i32, String)>,
    /// Blocks whose parent is unknown, waiting for it.
    orphans: OrphanPool<Block>,
}

impl Chain {
    /// Opens the chain stored at `db_path`, creating it from `genesis` if new.
    /// Verifies that the stored state matches the tip's state root.
    pub fn open(
        db_path: &Path,
        genesis: Genesis,
        mempool_capacity: usize,
    ) -> Result<Chain, ChainError> {
        let store = Store::open(db_path)?;
        let g_state = State::genesis(&genesis).map_err(|e| ChainError::Genesis(e.to_string()))?;
        store.init_genesis(
            &genesis,
            &g_state.genesis_block(&genesis),
            &g_state.entries(),
        )?;
        let tip_info = store
            .tip()?
            .ok_or_else(|| ChainError::Genesis("database has no tip".into()))?;
        let tip_block = store
            .block(&tip_info.hash)?
            .ok_or_else(|| proctor_storage::Error::Corrupt("tip block missing".into()))?;
        let state = State::from_entries(&genesis, store.state_entries()?);
        if state.root() != tip_block.header.template.state_root {
            return Err(ChainError::CorruptState {
                header: tip_block.header.template.state_root,
                computed: state.root(),
            });
        }
        let tip_interval = if tip_info.height == 0 {
            None
        } else {
            let parent = store
                .block(&tip_block.header.template.parent)?
                .ok_or_else(|| proctor_storage::Error::Corrupt("tip's parent missing".into()))?;
            Some(tip_block.header.template.timestamp - parent.header.template.timestamp)
        };
        Ok(Chain {
            store,
            genesis,
            state,
            tip: tip_block.header,
            tip_hash: tip_info.hash,
            total_difficulty: tip_info.total_difficulty,
            tip_interval,
            mempool: Mempool::new(mempool_capacity),
            templates: VecDeque::new(),
            dropped: VecDeque::new(),
            orphans: OrphanPool::default(),
        })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn head(&self) -> HeadInfo {
        let t = &self.tip.template;
        HeadInfo {
            height: t.height,
            hash: self.tip_hash,
            parent: t.parent,
            timestamp: t.timestamp,
            // The root of the state the node holds (rebuilt from storage at
            // start-up), not the header's claim: clients can compare the two.
            state_root: self.state.root(),
            difficulty: t.difficulty,
            total_difficulty: self.total_difficulty.to_string(),
        }
    }

    /// Admits a transaction to the mempool.
    pub fn submit_tx(
        &mut self,
        stx: SignedTransaction,
        now_ms: Timestamp,
    ) -> Result<Hash, ChainError> {
        let t = &self.tip.template;
        let env = BlockEnv {
            height: t.height + 1,
            timestamp: now_ms.max(t.timestamp + 1),
            miner: Address([0; 20]),
        };
        Ok(self.mempool.add(&self.state, &env, stx)?)
    }

    /// Admits transactions whose signatures the caller verified as a batch
    /// ([`proctor_state::signatures_valid`]); one result per transaction.
    pub fn submit_verified_txs(
        &mut self,
        txs: Vec<SignedTransaction>,
        now_ms: Timestamp,
    ) -> Vec<Result<Hash, ChainError>> {
        let t = &self.tip.template;
        let env = BlockEnv {
            height: t.height + 1,
            timestamp: now_ms.max(t.timestamp + 1),
            miner: Address([0; 20]),
        };
        txs.into_iter()
            .map(|stx| Ok(self.mempool.add_verified(&self.state, &env, stx)?))
            .collect()
    }

    /// Whether transaction `hash` is pending in the mempool.
    pub fn is_pending(&self, hash: &Hash) -> bool {
        self.mempool.contains(hash)
    }

    /// Why transaction `hash` was dropped from the mempool, if it was recently.
    pub fn dropped(&self, hash: &Hash) -> Option<(i32, String)> {
        self.dropped
            .iter()
            .rev()
            .find(|(h, _, _)| h == hash)
            .map(|(_, c, r)| (*c, r.clone()))
    }

    fn record_dropped(&mut self, hash: Hash, code: i32, reason: String) {
        if self.dropped.len() >= KEPT_DROPPED {
            self.dropped.pop_front();
        }
        self.dropped.push_back((hash, code, reason));
    }

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
        self.commit(block, p.applied)
    }

    /// Fully validates a block from elsewhere. A child of the tip extends the
    /// chain; a block on another branch is stored, and if its branch carries
    /// more total difficulty the chain switches to it (fork choice), after
    /// validating every block of the branch from the fork point. A block
    /// whose parent is unknown waits in the bounded orphan pool (see
    /// [`Chain::connect_orphans`]) and the error says which parent to fetch.
    pub fn import_block(
        &mut self,
        block: Block,
        now_ms: Timestamp,
    ) -> Result<Imported, ChainError> {
        let hash = block.hash();
        let result = self.import(block, now_ms);
        if let Err(ChainError::Consensus(_) | ChainError::ReorgTooDeep { .. }) = &result {
            // Whatever waits for a refused block would be refused too.
            let mut doomed = vec![hash];
            while let Some(h) = doomed.pop() {
                doomed.extend(self.orphans.take_children(&h).into_iter().map(|(c, _)| c));
            }
        }
        result
    }

    fn import(&mut self, block: Block, now_ms: Timestamp) -> Result<Imported, ChainError> {
        let hash = block.hash();
        if self.store.total_difficulty(&hash)?.is_some() {
            return Ok(Imported::Known(hash));
        }
        let parent = block.header.template.parent;
        if parent == self.tip_hash {
            let p = Parent {
                header: &self.tip,
                state: &self.state,
                interval_ms: self.tip_interval,
            };
            // Transactions already in the mempool had their signatures checked.
            let known = |t: &SignedTransaction| self.mempool.holds(t);
            let applied = validate_block_known(&p, &block, Some(now_ms), &known)?;
            return self.commit(block, applied).map(Imported::Extended);
        }
        let Some(parent_td) = self.store.total_difficulty(&parent)? else {
            let size = proctor_primitives::codec::encode(&block).len();
            self.orphans.insert(parent, hash, size, block);
            return Err(ChainError::UnknownParent(parent));
        };
        // Off the tip: first what needs no state (header against the stored
        // parent, the proof's own signatures and draw), then the branch in
        // full. Nothing is stored, kept or relayed before it is valid.
        self.precheck_side(&block, now_ms)?;
        let td = parent_td + block.header.template.difficulty as u128;
        let candidate = Tip {
            hash,
            height: block.header.height(),
            total_difficulty: td,
        };
        let current = Tip {
            hash: self.tip_hash,
            height: self.tip.height(),
            total_difficulty: self.total_difficulty,
        };
        if !candidate.better_than(&current) {
            let staged = self.stage_branch(block, now_ms)?;
            if let Some((b, _, _, td)) = staged.blocks.last() {
                self.store.store_side_block(b, *td)?;
            }
            self.prune_side_blocks();
            return Ok(Imported::Side(hash));
        }
        self.reorg_to(block, now_ms)
    }

    /// The checks of a block off the tip that need no state: its header
    /// against its stored (validated) parent, and its proof's attestations.
    fn precheck_side(&self, block: &Block, now_ms: Timestamp) -> Result<(), ChainError> {
        let t = &block.header.template;
        let parent = self
            .store
            .block(&t.parent)?
            .ok_or(ChainError::UnknownParent(t.parent))?;
        let pt = &parent.header.template;
        let interval_ms = match pt.height {
            0 => None,
            _ => self
                .store
                .block(&pt.parent)?
                .map(|g| pt.timestamp - g.header.template.timestamp),
        };
        let p = Parent {
            header: &parent.header,
            state: &self.state,
            interval_ms,
        };
        validate_header(&p, &block.header, Some(now_ms))?;
        check_attestations(&block.header)?;
        Ok(())
    }

    /// Keeps side blocks within [`MAX_SIDE_BLOCKS`] and [`MAX_SIDE_BYTES`],
    /// and none deeper than the finality depth (no reorganization can reach
    /// them). Failures are logged: side blocks are not needed to go on.
    fn prune_side_blocks(&self) {
        let below = self
            .tip
            .height()
            .saturating_sub(self.genesis.params.finality_depth);
        match self
            .store
            .prune_side_blocks(below, MAX_SIDE_BLOCKS, MAX_SIDE_BYTES)
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "pruned side blocks"),
            Err(e) => tracing::warn!("side blocks not pruned: {e}"),
        }
    }

    /// Imports the orphans descending from `parent` (a block just imported),
    /// recursively; returns what each import did. Orphans that fail are dropped.
    pub fn connect_orphans(&mut self, parent: Hash, now_ms: Timestamp) -> Vec<Imported> {
        let mut done = Vec::new();
        let mut queue = vec![parent];
        while let Some(p) = queue.pop() {
            for (hash, block) in self.orphans.take_children(&p) {
                match self.import_block(block, now_ms) {
                    Ok(i) => {
                        queue.push(hash);
                        done.push(i);
                    }
                    Err(e) => tracing::debug!(%hash, "orphan not imported: {e}"),
                }
            }
        }
        done
    }

    /// Number of blocks waiting for their parent.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Validates the branch ending in `block` in full: the state at the fork
    /// point (the canonical state with the blocks above it undone), then
    /// every block of the branch from there, as if it extended the tip. Its
    /// depth is judged on stored blocks, which were all validated before
    /// they were stored: no claimed height counts. Nothing is stored.
    fn stage_branch(&self, block: Block, now_ms: Timestamp) -> Result<Staged, ChainError> {
        let limit = self.genesis.params.finality_depth;
        let tip_height = self.tip.height();
        // The branch back to the first block that is canonical (the fork point).
        let mut branch = vec![block];
        let fork = loop {
            let cursor = branch.last().expect("not empty").header.template.parent;
            let b = self
                .store
                .block(&cursor)?
                .ok_or(ChainError::UnknownParent(cursor))?;
            if self.store.hash_at(b.header.height())? == Some(cursor) {
                break b;
            }
            if tip_height.saturating_sub(b.header.height()) > limit {
                return Err(ChainError::ReorgTooDeep {
                    depth: tip_height - b.header.height(),
                    limit,
                });
            }
            branch.push(b);
        };
        branch.reverse();
        let fork_height = fork.header.height();
        let depth = tip_height - fork_height;
        if depth > limit {
            return Err(ChainError::ReorgTooDeep { depth, limit });
        }
        // The state at the fork point: undo the canonical blocks above it.
        let mut state = self.state.clone();
        let mut net: BTreeMap<Hash, Option<Vec<u8>>> = BTreeMap::new();
        let mut reverted = Vec::new();
        for h in (fork_height + 1..=tip_height).rev() {
            let corrupt = || {
                proctor_storage::Error::Corrupt(format!(
                    "canonical block {h} or its undo data missing"
                ))
            };
            let bh = self.store.hash_at(h)?.ok_or_else(corrupt)?;
            let b = self.store.block(&bh)?.ok_or_else(corrupt)?;
            let undo = self.store.undo(&bh)?.ok_or_else(corrupt)?;
            state = state.with_changes(&undo);
            net.extend(undo);
            reverted.push(b);
        }
        reverted.reverse();
        // Validate the branch block by block from the fork point.
        let mut interval = match fork_height {
            0 => None,
            _ => {
                let pp = self.store.block(&fork.header.template.parent)?;
                pp.map(|p| fork.header.template.timestamp - p.header.template.timestamp)
            }
        };
        let mut td = self.store.total_difficulty(&fork.hash())?.unwrap_or(0);
        let mut header = fork.header;
        let mut staged = Vec::with_capacity(branch.len());
        for b in branch {
            let p = Parent {
                header: &header,
                state: &state,
                interval_ms: interval,
            };
            let known = |t: &SignedTransaction| self.mempool.holds(t);
            let applied = validate_block_known(&p, &b, Some(now_ms), &known)?;
            let undo = state.undo_of(&applied.changes);
            net.extend(applied.changes.iter().cloned());
            td += b.header.template.difficulty as u128;
            interval = Some(b.header.template.timestamp - header.template.timestamp);
            header = b.header.clone();
            state = applied.state;
            staged.push((b, applied.receipts, undo, td));
        }
        Ok(Staged {
            fork_height,
            reverted,
            blocks: staged,
            state,
            net,
            header,
            interval,
        })
    }

    /// Switches to the branch ending in `block` (heavier than the tip).
    fn reorg_to(&mut self, block: Block, now_ms: Timestamp) -> Result<Imported, ChainError> {
        let Staged {
            fork_height,
            reverted,
            blocks: staged,
            state,
            net,
            header,
            interval,
        } = self.stage_branch(block, now_ms)?;
        let depth = self.tip.height() - fork_height;
        let news: Vec<NewBlock<'_>> = staged
            .iter()
            .map(|(b, r, u, td)| NewBlock {
                block: b,
                receipts: r,
                undo: u,
                total_difficulty: *td,
            })
            .collect();
        let net: Vec<(Hash, Option<Vec<u8>>)> = net.into_iter().collect();
        let tip = self.store.switch(&Switch {
            fork_height,
            reverted: &reverted,
            applied: &news,
            state: &net,
        })?;
        self.state = state;
        self.tip = header;
        self.tip_hash = tip.hash;
        self.total_difficulty = tip.total_difficulty;
        self.tip_interval = interval;
        self.templates.clear();
        // Transactions of the abandoned blocks go back to the mempool, in order.
        let kept: BTreeSet<Hash> = staged
            .iter()
            .flat_map(|(b, ..)| b.txs.iter().map(SignedTransaction::hash))
            .collect();
        // The mempool is rebuilt on the new state: first the abandoned
        // blocks' transactions (they come before any pending ones of the same
        // account), then what was pending; whatever the new branch made stale
        // falls out. Every signature was verified before (block validation or
        // admission), so none is checked again.
        let env = BlockEnv {
            height: tip.height + 1,
            timestamp: now_ms.max(self.tip.template.timestamp + 1),
            miner: Address([0; 20]),
        };
        let pending = self.mempool.take_all();
        let mut returned = Vec::new();
        for t in reverted.iter().flat_map(|b| b.txs.iter()) {
            if !kept.contains(&t.hash())
                && self
                    .mempool
                    .add_verified(&self.state, &env, t.clone())
                    .is_ok()
            {
                returned.push(t.clone());
            }
        }
        for t in pending {
            let _ = self.mempool.add_verified(&self.state, &env, t);
        }
        // Jobs submitted or ended by the new branch's transactions hold or
        // release their blobs (ends at a deadline, in block-level events,
        // are not replayed: those blobs stay held until re-uploaded).
        let ended: Vec<&proctor_state::Event> = staged
            .iter()
            .flat_map(|(_, receipts, ..)| receipts.iter().flat_map(|r| r.events.iter()))
            .collect();
        self.retain_and_expire_blobs(&ended, tip.height);
        self.prune_side_blocks();
        tracing::info!(depth, returned = returned.len(), tip = %tip.hash, "reorganized to a heavier branch");
        Ok(Imported::Reorg {
            tip: tip.hash,
            depth,
            returned,
        })
    }

    /// Blob retention (seed 000 §6.2, "short-time storage, self-destruct"):
    /// a job holds its module and input from submission (however long it
    /// waits), and when it ends they and its output are kept for the job's
    /// retention, then deleted with everything else whose time has come.
    /// Failures are logged, never fatal: blobs are not consensus data.
    fn retain_and_expire_blobs(&self, events: &[&proctor_state::Event], height: u64) {
        for e in events {
            let (job, ended) = match e {
                proctor_state::Event::JobSubmitted { job, .. } => (*job, false),
                proctor_state::Event::JobEnded { job, .. } => (*job, true),
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

    /// Whether a pending or active job runs module `m`.
    fn module_in_use(&self, m: &Hash) -> bool {
        let index = self.state.market_index();
        index
            .pending
            .iter()
            .chain(&index.active)
            .any(|id| self.state.job(*id).is_some_and(|j| j.spec.module == *m))
    }

    fn commit(&mut self, block: Block, applied: Applied) -> Result<Hash, ChainError> {
        let td = self.total_difficulty + block.header.template.difficulty as u128;
        let undo = self.state.undo_of(&applied.changes);
        let tip =
            self.store
                .commit_block(&block, &applied.receipts, &applied.changes, &undo, td)?;
        let senders: Vec<Address> = block.txs.iter().map(|t| t.tx.sender()).collect();
        self.tip_interval = Some(block.header.template.timestamp - self.tip.template.timestamp);
        self.state = applied.state;
        self.tip = block.header;
        self.tip_hash = tip.hash;
        self.total_difficulty = td;
        self.mempool.prune(&self.state, senders);
        self.templates.clear();
        let events: Vec<&proctor_state::Event> = applied
            .receipts
            .iter()
            .flat_map(|r| r.events.iter())
            .chain(applied.events.iter())
            .collect();
        self.retain_and_expire_blobs(&events, tip.height);
        self.prune_side_blocks();
        Ok(tip.hash)
    }
}

/// A block as shown over RPC.
pub fn block_info(b: &Block) -> BlockInfo {
    let t = &b.header.template;
    BlockInfo {
        height: t.height,
        hash: b.hash(),
        parent: t.parent,
        timestamp: t.timestamp,
        state_root: t.state_root,
        tx_root: t.tx_root,
        difficulty: t.difficulty,
        miner: t.miner,
        transactions: b.txs.iter().map(SignedTransaction::hash).collect(),
        pouw: b.header.pouw.as_ref().map(|p| PouwInfo {
            enclave: p.enclave,
            module: p.module,
            difficulty: t.difficulty,
            instructions: p.instructions,
            slice: p.slice,
            counter: p.counter,
        }),
    }
}
