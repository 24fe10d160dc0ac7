//! Blocks from elsewhere: extending the tip, side branches (validated in
//! full before they are stored), reorganizations to a heavier branch, and
//! orphans waiting for their parent.

use super::{Chain, ChainError, Imported};
use proctor_consensus::{
    ForkError, Parent, Tip, check_attestations, fork_point, validate_block_known, validate_header,
};
use proctor_primitives::{Address, Hash, Timestamp};
use proctor_state::{Block, BlockEnv, Header, SignedTransaction, State};
use proctor_storage::{NewBlock, Switch};
use std::collections::{BTreeMap, BTreeSet};

/// Side blocks (off the canonical chain, validated) kept at most.
pub const MAX_SIDE_BLOCKS: usize = 1_024;
/// Bytes of side blocks kept at most.
pub const MAX_SIDE_BYTES: u64 = 256 << 20;

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

impl Chain {
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
        let started = std::time::Instant::now();
        let result = self.import(block, now_ms);
        if matches!(
            result,
            Ok(Imported::Extended(_) | Imported::Side(_) | Imported::Reorg { .. })
        ) {
            self.import_seconds.observe(started.elapsed().as_secs_f64());
        }
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
    pub(super) fn prune_side_blocks(&self) {
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
    /// Transactions waiting in the mempool, and their bytes.
    pub fn mempool_size(&self) -> (usize, usize) {
        (self.mempool.len(), self.mempool.bytes())
    }

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
        let (fork, branch) = fork_point(
            block,
            tip_height,
            limit,
            |h| self.store.block(h),
            |height, h| Ok(self.store.hash_at(height)? == Some(*h)),
        )
        .map_err(|e| match e {
            ForkError::UnknownParent(p) => ChainError::UnknownParent(p),
            ForkError::TooDeep { depth, limit } => ChainError::ReorgTooDeep { depth, limit },
            ForkError::Lookup(e) => ChainError::Storage(e),
        })?;
        let fork_height = fork.header.height();
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
}
