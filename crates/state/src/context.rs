//! What a module's handler works on: the state it reads ([`State`]), the
//! block's pending writes over it (`Overlay`), where and when the block is
//! applied ([`BlockEnv`]), and the events and fees the block collects
//! (`Context`). Nothing here knows any module: modules sit above this file
//! and the machine above them.

use crate::smt::Smt;
use crate::types::{ChainParams, Event, Record};
use proctor_primitives::{Address, Amount, Hash, Height, PublicKey, Timestamp, codec};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where and when a block is applied.
#[derive(Clone, Debug)]
pub struct BlockEnv {
    pub height: Height,
    pub timestamp: Timestamp,
    pub miner: Address,
}

/// The chain state. Cloning is O(1); a clone is an independent snapshot.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) genesis_hash: Hash,
    pub(crate) params: Arc<ChainParams>,
    pub(crate) tree: Smt,
}

impl State {
    pub(crate) fn read(&self) -> Overlay<'_> {
        Overlay {
            base: &self.tree,
            writes: BTreeMap::new(),
        }
    }
}

/// A state key: the owning module's key prefix (its domain, so two modules'
/// keys never meet), the kind of record, and the record's id.
pub(crate) fn key(prefix: &'static str, kind: &'static str, id: &[&[u8]]) -> Hash {
    let len = [kind.len() as u8];
    let mut parts: Vec<&[u8]> = Vec::with_capacity(id.len() + 2);
    parts.extend([&len[..], kind.as_bytes()]);
    parts.extend_from_slice(id);
    Hash::tagged(prefix, &parts)
}

/// Reads and writes of one block, on top of a state.
pub(crate) struct Overlay<'a> {
    pub(crate) base: &'a Smt,
    pub(crate) writes: BTreeMap<Hash, Option<Vec<u8>>>,
}

impl Overlay<'_> {
    pub(crate) fn get(&self, key: &Hash) -> Option<Record> {
        let bytes = match self.writes.get(key) {
            Some(v) => v.as_deref(),
            None => self.base.get(key),
        }?;
        Some(
            codec::decode("state record", bytes)
                .expect("state records are written only by this crate"),
        )
    }
    pub(crate) fn put(&mut self, key: Hash, r: impl Into<Record>) {
        self.writes.insert(key, Some(codec::encode(&r.into())));
    }
    pub(crate) fn delete(&mut self, key: Hash) {
        self.writes.insert(key, None);
    }
}

/// A veto on releasing an enclave's stake (a module that still holds it to
/// account says why not).
pub(crate) type StakeGuard = fn(&Overlay<'_>, &PublicKey) -> Result<(), crate::TxError>;

/// One block being applied: the handlers' view of it.
pub(crate) struct Context<'a> {
    pub(crate) state: &'a State,
    pub(crate) env: &'a BlockEnv,
    pub(crate) o: Overlay<'a>,
    /// Fees the block's transactions paid so far (the miner's, at the end).
    pub(crate) fees: Amount,
    /// Every module's veto on releasing stake, in the machine's order.
    pub(crate) stake_guards: &'a [StakeGuard],
}

impl Context<'_> {
    pub(crate) fn params(&self) -> &ChainParams {
        &self.state.params
    }
}

/// Events as the top-level enum.
pub(crate) fn lift<E: Into<Event>>(events: Vec<E>) -> Vec<Event> {
    events.into_iter().map(Into::into).collect()
}
