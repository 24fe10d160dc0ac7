//! Persistent storage of a node: blocks, the canonical chain, receipts, the
//! state tree's records, and content-addressed blobs (task modules), in one
//! redb database.
//!
//! Crash safety comes from one rule: everything a block changes (the block,
//! its height index, its receipts, its state records and the new tip) is
//! written in **one** redb write transaction with immediate durability. redb
//! commits are atomic (copy-on-write B-trees with a checksummed commit slot),
//! so a process killed at any moment restarts at its last committed block and
//! rebuilds exactly that block's state root from the stored records.
//!
//! The state tree is rebuilt in memory at start-up from the stored records
//! (O(n log n) once); afterwards each block only writes the records it
//! changed.

#![forbid(unsafe_code)]

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Hash, Height, codec};
use proctor_state::{Block, Genesis, Receipt};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const BLOCKS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("blocks");
const HEIGHTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("heights");
const RECEIPTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("receipts");
const STATE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const BLOBS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("blobs");
/// Total difficulty of every stored block, canonical or not.
const TOTALS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("totals");
/// Undo data of canonical blocks: the previous value of every key they changed.
const UNDO: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("undo");
/// Blocks stored off the canonical chain: big-endian height ++ hash -> size
/// in bytes (side blocks, and canonical blocks a reorganization reverted).
const SIDE: TableDefinition<'_, &[u8], u64> = TableDefinition::new("side_blocks");
/// Height after which a blob is deleted (blobs without an entry are kept).
const BLOB_EXPIRY: TableDefinition<'_, &[u8], u64> = TableDefinition::new("blob_expiry");
/// The same, ordered by height: big-endian height ++ blob hash.
const EXPIRY_INDEX: TableDefinition<'_, &[u8], ()> = TableDefinition::new("expiry_index");

/// State changes: each key with its new value (`None`: deleted).
pub type Changes = Vec<(Hash, Option<Vec<u8>>)>;

/// A block joining the canonical chain.
pub struct NewBlock<'a> {
    pub block: &'a Block,
    pub receipts: &'a [Receipt],
    /// The previous values of the keys the block changes (to revert it).
    pub undo: &'a [(Hash, Option<Vec<u8>>)],
    pub total_difficulty: u128,
}

/// A change of the canonical chain, written in one transaction: blocks from
/// the tip down to `fork_height` leave it, `applied` join it on top.
pub struct Switch<'a> {
    /// Height of the last block both chains share (the tip's height when extending).
    pub fork_height: Height,
    /// Canonical blocks above the fork point, leaving the chain.
    pub reverted: &'a [Block],
    /// Blocks joining the chain above the fork point, in order.
    pub applied: &'a [NewBlock<'a>],
    /// Net state change from the old tip's state to the new tip's.
    pub state: &'a [(Hash, Option<Vec<u8>>)],
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database belongs to chain {stored}, not {expected}: use another directory")]
    WrongChain { stored: Hash, expected: Hash },
    #[error("block {0} is not the child of the current tip")]
    NotChildOfTip(Hash),
}

pub type Result<T> = std::result::Result<T, Error>;

macro_rules! db {
    ($e:expr) => {
        $e.map_err(|e| Error::Db(e.into()))
    };
}

/// The head of the stored canonical chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredTip {
    pub hash: Hash,
    pub height: Height,
    pub total_difficulty: u128,
}

/// Where a transaction was included, with its receipt.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    pub block: Hash,
    pub receipt: Receipt,
}

/// The node's database. Cloning gives another handle on the same database
/// (redb serializes writers), so callers can work on blobs without holding
/// the chain's lock.
#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<Database>,
}

fn decode<T: BorshDeserialize>(what: &'static str, bytes: &[u8]) -> Result<T> {
    codec::decode(what, bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

impl Store {
    /// Opens or creates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let db = db!(Database::create(path))?;
        let tx = db!(db.begin_write())?;
        for t in [BLOCKS, RECEIPTS, STATE, BLOBS, TOTALS, UNDO] {
            db!(tx.open_table(t))?;
        }
        db!(tx.open_table(SIDE))?;
        db!(tx.open_table(HEIGHTS))?;
        db!(tx.open_table(META))?;
        db!(tx.commit())?;
        Ok(Store {
            db: std::sync::Arc::new(db),
        })
    }

    /// Stores the genesis block and state on a new database, or checks that
    /// an existing database belongs to this genesis.
    pub fn init_genesis(
        &self,
        genesis: &Genesis,
        block: &Block,
        state: &[(Hash, Vec<u8>)],
    ) -> Result<()> {
        let gh = genesis.hash();
        if let Some(stored) = self.meta("genesis")? {
            let stored: Hash = decode("genesis hash", &stored)?;
            return if stored == gh {
                Ok(())
            } else {
                Err(Error::WrongChain {
                    stored,
                    expected: gh,
                })
            };
        }
        let tip = StoredTip {
            hash: block.hash(),
            height: 0,
            total_difficulty: 0,
        };
        let tx = db!(self.db.begin_write())?;
        {
            db!(db!(tx.open_table(BLOCKS))?.insert(&tip.hash.0[..], &codec::encode(block)[..]))?;
            db!(db!(tx.open_table(HEIGHTS))?.insert(0, &tip.hash.0[..]))?;
            db!(db!(tx.open_table(TOTALS))?.insert(&tip.hash.0[..], &0u128.to_le_bytes()[..]))?;
            let mut st = db!(tx.open_table(STATE))?;
            for (k, v) in state {
                db!(st.insert(&k.0[..], &v[..]))?;
            }
            let mut meta = db!(tx.open_table(META))?;
            db!(meta.insert("genesis", &codec::encode(&gh)[..]))?;
            db!(meta.insert("genesis_file", &codec::encode(genesis)[..]))?;
            db!(meta.insert("tip", &codec::encode(&tip)[..]))?;
        }
        db!(tx.commit())?;
        Ok(())
    }

    /// Appends `block` to the canonical chain, atomically with its receipts,
    /// its state changes, its undo data and the new tip.
    pub fn commit_block(
        &self,
        block: &Block,
        receipts: &[Receipt],
        changes: &[(Hash, Option<Vec<u8>>)],
        undo: &[(Hash, Option<Vec<u8>>)],
        total_difficulty: u128,
    ) -> Result<StoredTip> {
        let height = block.header.height();
        let new = NewBlock {
            block,
            receipts,
            undo,
            total_difficulty,
        };
        self.switch(&Switch {
            fork_height: height.saturating_sub(1),
            reverted: &[],
            applied: &[new],
            state: changes,
        })
    }

    /// Stores a block that is not (yet) on the canonical chain. The caller
    /// has validated it; [`Store::prune_side_blocks`] bounds how many stay.
    pub fn store_side_block(&self, block: &Block, total_difficulty: u128) -> Result<()> {
        let hash = block.hash();
        let bytes = codec::encode(block);
        let tx = db!(self.db.begin_write())?;
        db!(db!(tx.open_table(BLOCKS))?.insert(&hash.0[..], &bytes[..]))?;
        db!(db!(tx.open_table(TOTALS))?.insert(&hash.0[..], &total_difficulty.to_le_bytes()[..]))?;
        db!(db!(tx.open_table(SIDE))?.insert(&side_key(block)[..], bytes.len() as u64))?;
        db!(tx.commit())?;
        Ok(())
    }

    /// Blocks stored off the canonical chain, and their bytes.
    pub fn side_blocks(&self) -> Result<(usize, u64)> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(SIDE))?;
        let (mut n, mut bytes) = (0, 0);
        for item in db!(t.iter())? {
            let (_, v) = db!(item)?;
            n += 1;
            bytes += v.value();
        }
        Ok((n, bytes))
    }

    /// Deletes the side blocks below height `below` (too deep to reorganize
    /// to), then the lowest ones until at most `max_count` blocks and
    /// `max_bytes` bytes remain. Returns how many went.
    pub fn prune_side_blocks(&self, below: u64, max_count: usize, max_bytes: u64) -> Result<usize> {
        let mut entries = Vec::new();
        {
            let r = db!(self.db.begin_read())?;
            let t = db!(r.open_table(SIDE))?;
            for item in db!(t.iter())? {
                let (k, v) = db!(item)?;
                entries.push((k.value().to_vec(), v.value()));
            }
        }
        let (mut count, mut bytes) = (entries.len(), entries.iter().map(|(_, b)| b).sum::<u64>());
        let mut doomed = Vec::new();
        // Keys sort by height: the lowest (oldest) go first.
        for (k, size) in entries {
            let height = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            if height >= below && count <= max_count && bytes <= max_bytes {
                break;
            }
            count -= 1;
            bytes -= size;
            doomed.push(k);
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let tx = db!(self.db.begin_write())?;
        {
            let mut side = db!(tx.open_table(SIDE))?;
            let mut blocks = db!(tx.open_table(BLOCKS))?;
            let mut totals = db!(tx.open_table(TOTALS))?;
            for k in &doomed {
                db!(side.remove(&k[..]))?;
                db!(blocks.remove(&k[8..]))?;
                db!(totals.remove(&k[8..]))?;
            }
        }
        db!(tx.commit())?;
        Ok(doomed.len())
    }

    /// Changes the canonical chain as `sw` says, atomically: receipts of
    /// reverted blocks go, those of applied blocks come, heights above the
    /// new tip are cleared, the state moves by `sw.state`, the tip is the last
    /// applied block.
    pub fn switch(&self, sw: &Switch<'_>) -> Result<StoredTip> {
        let last = sw
            .applied
            .last()
            .ok_or_else(|| Error::Corrupt("a switch must apply a block".into()))?;
        let tip = StoredTip {
            hash: last.block.hash(),
            height: last.block.header.height(),
            total_difficulty: last.total_difficulty,
        };
        let tx = db!(self.db.begin_write())?;
        {
            let mut meta = db!(tx.open_table(META))?;
            let current: StoredTip = match db!(meta.get("tip"))? {
                Some(v) => decode("tip", v.value())?,
                None => return Err(Error::Corrupt("no tip: genesis not initialised".into())),
            };
            let mut heights = db!(tx.open_table(HEIGHTS))?;
            let first = sw.applied[0].block;
            let fork_hash = db!(heights.get(sw.fork_height))?.map(|v| v.value().to_vec());
            if fork_hash.as_deref() != Some(&first.header.template.parent.0[..])
                || first.header.height() != sw.fork_height + 1
                || current.height != sw.fork_height + sw.reverted.len() as u64
            {
                return Err(Error::NotChildOfTip(first.hash()));
            }
            let mut blocks = db!(tx.open_table(BLOCKS))?;
            let mut totals = db!(tx.open_table(TOTALS))?;
            let mut receipts = db!(tx.open_table(RECEIPTS))?;
            let mut undo = db!(tx.open_table(UNDO))?;
            let mut side = db!(tx.open_table(SIDE))?;
            for b in sw.reverted {
                for t in &b.txs {
                    db!(receipts.remove(&t.hash().0[..]))?;
                }
                db!(undo.remove(&b.hash().0[..]))?;
                // Still stored, now off the canonical chain.
                let size = codec::encode(b).len() as u64;
                db!(side.insert(&side_key(b)[..], size))?;
            }
            for h in tip.height + 1..=current.height {
                db!(heights.remove(h))?;
            }
            for nb in sw.applied {
                let hash = nb.block.hash();
                db!(blocks.insert(&hash.0[..], &codec::encode(nb.block)[..]))?;
                db!(totals.insert(&hash.0[..], &nb.total_difficulty.to_le_bytes()[..]))?;
                db!(heights.insert(nb.block.header.height(), &hash.0[..]))?;
                db!(side.remove(&side_key(nb.block)[..]))?;
                db!(undo.insert(&hash.0[..], &codec::encode(&nb.undo.to_vec())[..]))?;
                for r in nb.receipts {
                    let loc = TxLocation {
                        block: hash,
                        receipt: r.clone(),
                    };
                    db!(receipts.insert(&r.tx.0[..], &codec::encode(&loc)[..]))?;
                }
            }
            let mut st = db!(tx.open_table(STATE))?;
            for (k, v) in sw.state {
                match v {
                    Some(v) => db!(st.insert(&k.0[..], &v[..]))?,
                    None => db!(st.remove(&k.0[..]))?,
                };
            }
            db!(meta.insert("tip", &codec::encode(&tip)[..]))?;
        }
        db!(tx.commit())?;
        Ok(tip)
    }

    /// Total difficulty of a stored block.
    pub fn total_difficulty(&self, hash: &Hash) -> Result<Option<u128>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(TOTALS))?;
        db!(t.get(&hash.0[..]))?
            .map(|v| decode::<u128>("total difficulty", v.value()))
            .transpose()
    }

    /// Undo data of a canonical block.
    pub fn undo(&self, hash: &Hash) -> Result<Option<Changes>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(UNDO))?;
        db!(t.get(&hash.0[..]))?
            .map(|v| decode("undo", v.value()))
            .transpose()
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(META))?;
        Ok(db!(t.get(key))?.map(|v| v.value().to_vec()))
    }

    /// The stored genesis, if initialised.
    pub fn genesis(&self) -> Result<Option<Genesis>> {
        self.meta("genesis_file")?
            .map(|b| decode("genesis", &b))
            .transpose()
    }

    /// The canonical tip.
    pub fn tip(&self) -> Result<Option<StoredTip>> {
        self.meta("tip")?.map(|b| decode("tip", &b)).transpose()
    }

    pub fn block(&self, hash: &Hash) -> Result<Option<Block>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(BLOCKS))?;
        db!(t.get(&hash.0[..]))?
            .map(|v| decode("block", v.value()))
            .transpose()
    }

    /// Hash of the canonical block at `height`.
    pub fn hash_at(&self, height: Height) -> Result<Option<Hash>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(HEIGHTS))?;
        db!(t.get(height))?
            .map(|v| decode::<[u8; 32]>("hash", v.value()).map(Hash))
            .transpose()
    }

    pub fn block_at(&self, height: Height) -> Result<Option<Block>> {
        match self.hash_at(height)? {
            Some(h) => self.block(&h),
            None => Ok(None),
        }
    }

    /// Where transaction `tx` was included, if it was.
    pub fn tx_location(&self, tx: &Hash) -> Result<Option<TxLocation>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(RECEIPTS))?;
        db!(t.get(&tx.0[..]))?
            .map(|v| decode("receipt", v.value()))
            .transpose()
    }

    /// All state records, in key order.
    pub fn state_entries(&self) -> Result<Vec<(Hash, Vec<u8>)>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(STATE))?;
        let mut out = Vec::new();
        for item in db!(t.iter())? {
            let (k, v) = db!(item)?;
            let key: [u8; 32] = k
                .value()
                .try_into()
                .map_err(|_| Error::Corrupt("state key length".into()))?;
            out.push((Hash(key), v.value().to_vec()));
        }
        Ok(out)
    }

    /// How many blobs are stored, and their bytes.
    pub fn blob_stats(&self) -> Result<(usize, u64)> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(BLOBS))?;
        let (mut n, mut bytes) = (0, 0u64);
        for item in db!(t.iter())? {
            let (_, v) = db!(item)?;
            n += 1;
            bytes += v.value().len() as u64;
        }
        Ok((n, bytes))
    }

    /// Stores a content-addressed blob; returns its hash.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Hash> {
        let h = Hash::of(bytes);
        let tx = db!(self.db.begin_write())?;
        db!(db!(tx.open_table(BLOBS))?.insert(&h.0[..], bytes))?;
        db!(tx.commit())?;
        Ok(h)
    }

    /// Stores a blob that is deleted after height `until` unless something
    /// extends it ([`Store::retain_blob`]). Storing it again never shortens
    /// its retention, and a blob stored before without an expiry stays
    /// permanent: an upload cannot make anyone else's blob expire sooner.
    pub fn put_blob_until(&self, bytes: &[u8], until: u64) -> Result<Hash> {
        let h = Hash::of(bytes);
        let tx = db!(self.db.begin_write())?;
        let existed = {
            let mut blobs = db!(tx.open_table(BLOBS))?;
            let existed = db!(blobs.get(&h.0[..]))?.is_some();
            if !existed {
                db!(blobs.insert(&h.0[..], bytes))?;
            }
            existed
        };
        let current = db!(db!(tx.open_table(BLOB_EXPIRY))?.get(&h.0[..]))?.map(|v| v.value());
        match (existed, current) {
            (true, None) => {}
            (true, Some(c)) if c >= until => {}
            _ => set_expiry(&tx, &h, until)?,
        }
        db!(tx.commit())?;
        Ok(h)
    }

    /// Keeps blob `hash` (if stored and not permanent) until something sets
    /// its expiry again ([`Store::expire_blob_after`]): a job holds its blobs
    /// from submission to its end, however long it waits in the queue.
    pub fn hold_blob(&self, hash: &Hash) -> Result<()> {
        self.retain_blob(hash, u64::MAX)
    }

    /// Keeps blob `hash` (if stored and not permanent) at least until after height `until`.
    pub fn retain_blob(&self, hash: &Hash, until: u64) -> Result<()> {
        let tx = db!(self.db.begin_write())?;
        let current = db!(db!(tx.open_table(BLOB_EXPIRY))?.get(&hash.0[..]))?.map(|v| v.value());
        if let Some(c) = current
            && c < until
        {
            set_expiry(&tx, hash, until)?;
        }
        db!(tx.commit())?;
        Ok(())
    }

    /// Sets blob `hash` (if stored and not permanent) to expire after height
    /// `until`, shorter or longer than before.
    pub fn expire_blob_after(&self, hash: &Hash, until: u64) -> Result<()> {
        let tx = db!(self.db.begin_write())?;
        let has_expiry = db!(db!(tx.open_table(BLOB_EXPIRY))?.get(&hash.0[..]))?.is_some();
        if has_expiry {
            set_expiry(&tx, hash, until)?;
        }
        db!(tx.commit())?;
        Ok(())
    }

    /// Deletes the blobs whose retention ended at or before `height`; returns how many.
    pub fn expire_blobs(&self, height: u64) -> Result<usize> {
        // Look first with a read transaction: most blocks expire nothing.
        let mut due = Vec::new();
        {
            let r = db!(self.db.begin_read())?;
            let index = match r.open_table(EXPIRY_INDEX) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
                Err(e) => return Err(Error::Db(e.into())),
            };
            let end = [&(height + 1).to_be_bytes()[..], &[0u8; 32]].concat();
            for item in db!(index.range(..&end[..]))? {
                let (k, _) = db!(item)?;
                due.push(k.value().to_vec());
            }
        }
        if due.is_empty() {
            return Ok(0);
        }
        let tx = db!(self.db.begin_write())?;
        {
            let mut index = db!(tx.open_table(EXPIRY_INDEX))?;
            let mut expiry = db!(tx.open_table(BLOB_EXPIRY))?;
            let mut blobs = db!(tx.open_table(BLOBS))?;
            for k in &due {
                db!(index.remove(&k[..]))?;
                db!(expiry.remove(&k[8..]))?;
                db!(blobs.remove(&k[8..]))?;
            }
        }
        db!(tx.commit())?;
        Ok(due.len())
    }

    pub fn blob(&self, hash: &Hash) -> Result<Option<Vec<u8>>> {
        let r = db!(self.db.begin_read())?;
        let t = db!(r.open_table(BLOBS))?;
        Ok(db!(t.get(&hash.0[..]))?.map(|v| v.value().to_vec()))
    }
}

/// A side block's key: big-endian height, then hash (sorted lowest first).
fn side_key(b: &Block) -> Vec<u8> {
    [&b.header.height().to_be_bytes()[..], &b.hash().0[..]].concat()
}

/// Sets a blob's expiry, replacing its index entry.
fn set_expiry(tx: &redb::WriteTransaction, h: &Hash, until: u64) -> Result<()> {
    let mut expiry = db!(tx.open_table(BLOB_EXPIRY))?;
    let mut index = db!(tx.open_table(EXPIRY_INDEX))?;
    if let Some(old) = db!(expiry.get(&h.0[..]))?.map(|v| v.value()) {
        db!(index.remove(&[&old.to_be_bytes()[..], &h.0[..]].concat()[..]))?;
    }
    db!(expiry.insert(&h.0[..], until))?;
    db!(index.insert(&[&until.to_be_bytes()[..], &h.0[..]].concat()[..], ()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_state::testkit::{self, keys, transfer};
    use proctor_state::{BlockEnv, Header, State, Template, tx_root};

    #[test]
    fn blobs_expire_after_their_retention_unless_permanent() {
        let dir = std::env::temp_dir().join(format!("proctor-store-blobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.redb")).unwrap();
        let permanent = store.put_blob(b"filler").unwrap();
        let a = store.put_blob_until(b"input", 10).unwrap();
        let b = store.put_blob_until(b"output", 10).unwrap();
        // Someone uploading the same bytes again with a shorter retention
        // does not make them expire sooner.
        store.put_blob_until(b"output", 2).unwrap();
        // A job holds its blob from submission, past any upload retention,
        // until its end sets the job's own retention.
        let held = store.put_blob_until(b"held input", 1).unwrap();
        store.hold_blob(&held).unwrap();
        store.put_blob_until(b"held input", 1).unwrap();
        // Uploading a permanent blob again does not give it an expiry.
        store.put_blob_until(b"filler", 5).unwrap();
        store.expire_blob_after(&permanent, 5).unwrap();
        // A job's own blob gets exactly its retention, even if shorter.
        let c = store.put_blob_until(b"claimed", 10_000).unwrap();
        store.expire_blob_after(&c, 3).unwrap();
        // A job that used `b` ended: it is kept longer; shortening is ignored.
        store.retain_blob(&b, 20).unwrap();
        store.retain_blob(&b, 15).unwrap();
        assert_eq!(store.expire_blobs(3).unwrap(), 1);
        assert!(store.blob(&c).unwrap().is_none());
        assert_eq!(store.expire_blobs(9).unwrap(), 0);
        assert_eq!(store.expire_blobs(10).unwrap(), 1);
        assert!(store.blob(&a).unwrap().is_none());
        assert!(store.blob(&b).unwrap().is_some());
        assert_eq!(store.expire_blobs(19).unwrap(), 0);
        assert_eq!(store.expire_blobs(20).unwrap(), 1);
        assert!(store.blob(&b).unwrap().is_none());
        assert_eq!(store.expire_blobs(1_000_000).unwrap(), 0);
        assert!(store.blob(&held).unwrap().is_some());
        store.expire_blob_after(&held, 1_000_001).unwrap();
        assert_eq!(store.expire_blobs(1_000_001).unwrap(), 1);
        assert!(store.blob(&held).unwrap().is_none());
        assert_eq!(
            store.blob(&permanent).unwrap().as_deref(),
            Some(&b"filler"[..])
        );
    }

    #[test]
    fn blocks_and_state_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("proctor-storage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.redb");
        let ks = keys(3);
        let g = testkit::genesis(&ks, 1_000, testkit::params(None, Hash::ZERO));
        let s0 = State::genesis(&g).unwrap();
        let gb = s0.genesis_block(&g);
        let tx = transfer(&g.hash(), &ks[0], 0, &ks[1], 10, 1);
        let env = BlockEnv {
            height: 1,
            timestamp: g.timestamp + 1,
            miner: ks[2].public().address(),
        };
        let a = s0.apply_block(&env, std::slice::from_ref(&tx)).unwrap();
        let b1 = Block {
            header: Header {
                template: Template {
                    parent: gb.hash(),
                    height: 1,
                    timestamp: env.timestamp,
                    state_root: a.state.root(),
                    tx_root: tx_root(std::slice::from_ref(&tx)),
                    difficulty: 1,
                    miner: env.miner,
                },
                pouw: None,
            },
            txs: vec![tx.clone()],
        };
        {
            let store = Store::open(&path).unwrap();
            store.init_genesis(&g, &gb, &s0.entries()).unwrap();
            store
                .commit_block(&b1, &a.receipts, &a.changes, &[], 1)
                .unwrap();
            // Committing a block that is not the tip's child is refused.
            assert!(matches!(
                store.commit_block(&b1, &a.receipts, &a.changes, &[], 2),
                Err(Error::NotChildOfTip(_))
            ));
            let h = store.put_blob(b"module bytes").unwrap();
            assert_eq!(store.blob(&h).unwrap().unwrap(), b"module bytes");
        }
        let store = Store::open(&path).unwrap();
        store.init_genesis(&g, &gb, &s0.entries()).unwrap(); // idempotent
        let tip = store.tip().unwrap().unwrap();
        assert_eq!((tip.hash, tip.height), (b1.hash(), 1));
        assert_eq!(store.block_at(1).unwrap().unwrap(), b1);
        let loc = store.tx_location(&tx.hash()).unwrap().unwrap();
        assert_eq!(loc.block, b1.hash());
        let rebuilt = State::from_entries(&g, store.state_entries().unwrap());
        assert_eq!(rebuilt.root(), a.state.root());
        assert_eq!(store.genesis().unwrap().unwrap(), g);
        // Another chain's genesis is refused.
        let mut other = g.clone();
        other.chain_id = "other".into();
        assert!(matches!(
            store.init_genesis(&other, &gb, &[]),
            Err(Error::WrongChain { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Side blocks are bounded in count and bytes: the lowest go first, and
    /// none stays below the height a reorganization could reach.
    #[test]
    fn side_blocks_are_bounded_lowest_first() {
        let dir = std::env::temp_dir().join(format!("proctor-store-side-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.redb")).unwrap();
        let side = |height: u64| Block {
            header: Header {
                template: Template {
                    parent: Hash([height as u8; 32]),
                    height,
                    timestamp: height,
                    state_root: Hash::ZERO,
                    tx_root: Hash::ZERO,
                    difficulty: 1,
                    miner: proctor_primitives::Address([0; 20]),
                },
                pouw: None,
            },
            txs: vec![],
        };
        let blocks: Vec<Block> = (1..=6).map(side).collect();
        for b in &blocks {
            store.store_side_block(b, 1).unwrap();
        }
        let size = codec::encode(&blocks[0]).len() as u64;
        assert_eq!(store.side_blocks().unwrap(), (6, 6 * size));
        // Nothing to do within the bounds.
        assert_eq!(store.prune_side_blocks(1, 6, 6 * size).unwrap(), 0);
        // Below height 2: block 1 goes. At most 4 blocks: block 2 too. At
        // most 3 blocks' bytes: block 3 too.
        assert_eq!(store.prune_side_blocks(2, 4, 3 * size).unwrap(), 3);
        assert_eq!(store.side_blocks().unwrap(), (3, 3 * size));
        for (i, b) in blocks.iter().enumerate() {
            let kept = i >= 3;
            assert_eq!(
                store.block(&b.hash()).unwrap().is_some(),
                kept,
                "block {}",
                i + 1
            );
            assert_eq!(store.total_difficulty(&b.hash()).unwrap().is_some(), kept);
        }
    }
}
