//! Blocks that arrived before their parent, waiting for it.
//!
//! Bounded in count and bytes; when full, the oldest orphan goes first. An
//! orphan cannot be validated (its parent state is unknown), so the pool
//! never grows past its bounds whatever peers send.

use proctor_primitives::Hash;
use std::collections::{BTreeMap, VecDeque};

/// Most orphans kept.
pub const MAX_ORPHANS: usize = 256;
/// Most bytes of orphans kept.
pub const MAX_ORPHAN_BYTES: usize = 64 << 20;

/// A bounded pool of items (blocks) keyed by their parent's hash.
#[derive(Debug)]
pub struct OrphanPool<T> {
    by_parent: BTreeMap<Hash, Vec<(Hash, usize, T)>>,
    /// Arrival order: (parent, hash), oldest first.
    order: VecDeque<(Hash, Hash)>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl<T> Default for OrphanPool<T> {
    fn default() -> Self {
        OrphanPool::new(MAX_ORPHANS, MAX_ORPHAN_BYTES)
    }
}

impl<T> OrphanPool<T> {
    pub fn new(max_count: usize, max_bytes: usize) -> Self {
        OrphanPool {
            by_parent: BTreeMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    /// Number of orphans held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Keeps `item` (block `hash` of `size` bytes, child of `parent`) until its
    /// parent arrives, evicting the oldest orphans to make room. Returns false
    /// if it was already held or is larger than the whole pool.
    pub fn insert(&mut self, parent: Hash, hash: Hash, size: usize, item: T) -> bool {
        if size > self.max_bytes || self.order.iter().any(|(_, h)| *h == hash) {
            return false;
        }
        while self.order.len() >= self.max_count || self.bytes + size > self.max_bytes {
            let Some((p, h)) = self.order.pop_front() else {
                break;
            };
            self.remove(&p, &h);
        }
        self.by_parent
            .entry(parent)
            .or_default()
            .push((hash, size, item));
        self.order.push_back((parent, hash));
        self.bytes += size;
        true
    }

    fn remove(&mut self, parent: &Hash, hash: &Hash) {
        if let Some(v) = self.by_parent.get_mut(parent) {
            if let Some(i) = v.iter().position(|(h, ..)| h == hash) {
                let (_, size, _) = v.swap_remove(i);
                self.bytes -= size;
            }
            if v.is_empty() {
                self.by_parent.remove(parent);
            }
        }
    }

    /// Takes the orphans whose parent is `parent`, oldest first.
    pub fn take_children(&mut self, parent: &Hash) -> Vec<(Hash, T)> {
        let Some(children) = self.by_parent.remove(parent) else {
            return Vec::new();
        };
        self.order.retain(|(p, _)| p != parent);
        children
            .into_iter()
            .map(|(h, size, item)| {
                self.bytes -= size;
                (h, item)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Hash {
        Hash([i; 32])
    }

    #[test]
    fn children_wait_for_their_parent() {
        let mut pool = OrphanPool::new(10, 1000);
        assert!(pool.insert(h(1), h(2), 10, "b2"));
        assert!(pool.insert(h(1), h(3), 10, "b2'"));
        assert!(pool.insert(h(2), h(4), 10, "b3"));
        assert!(!pool.insert(h(1), h(2), 10, "b2"), "held once");
        assert!(pool.take_children(&h(9)).is_empty());
        let kids = pool.take_children(&h(1));
        assert_eq!(kids, vec![(h(2), "b2"), (h(3), "b2'")]);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take_children(&h(2)), vec![(h(4), "b3")]);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes, 0);
    }

    #[test]
    fn bounded_in_count_and_bytes_oldest_evicted_first() {
        let mut pool = OrphanPool::new(3, 100);
        for i in 0..5u8 {
            assert!(pool.insert(h(100 + i), h(i), 10, i));
        }
        assert_eq!(pool.len(), 3);
        assert!(pool.take_children(&h(100)).is_empty(), "oldest evicted");
        assert_eq!(pool.take_children(&h(104)), vec![(h(4), 4)]);

        let mut pool = OrphanPool::new(100, 100);
        assert!(pool.insert(h(50), h(1), 60, 1));
        assert!(pool.insert(h(51), h(2), 60, 2), "evicts the first to fit");
        assert_eq!(pool.len(), 1);
        assert!(pool.bytes <= 100);
        assert!(!pool.insert(h(52), h(3), 101, 3), "larger than the pool");
        assert_eq!(pool.take_children(&h(51)), vec![(h(2), 2)]);
    }
}
