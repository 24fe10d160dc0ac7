//! The node's chain: tip state, storage, mempool and pending templates, behind
//! one lock. Synchronous: RPC handlers call it and return.
//!
//! One job per file: this one holds the state and commits blocks;
//! [`templates`] builds work and seals it, [`import`] takes blocks from
//! elsewhere (side branches, reorganizations, orphans), [`blobs`] keeps
//! blob retention after each commit. The rules themselves are `consensus`'s
//! pure functions, which this calls.

use crate::mempool::{AdmitError, Mempool};
use crate::orphans::OrphanPool;
use proctor_consensus::ConsensusError;
use proctor_primitives::{Address, Hash, Timestamp};
use proctor_rpc::HeadInfo;
use proctor_state::{Applied, Block, BlockEnv, Genesis, Header, SignedTransaction, State};
use proctor_storage::Store;
use std::collections::VecDeque;
use std::path::Path;

mod blobs;
mod import;
mod templates;

pub use import::{MAX_SIDE_BLOCKS, MAX_SIDE_BYTES};
use templates::PendingTemplate;

/// Dropped transactions whose reason is remembered for clients.
const KEPT_DROPPED: usize = 10_000;

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
    /// Time each block import took (validation and commit), for `/metrics`.
    pub(crate) import_seconds: prometheus_client::metrics::histogram::Histogram,
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
            import_seconds: crate::metrics::import_buckets(),
        })
    }

    /// The histogram of block import times (shared: clones observe into it).
    pub fn import_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.import_seconds.clone()
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
