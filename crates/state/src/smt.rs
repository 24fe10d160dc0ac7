//! The authenticated state tree: a compressed sparse Merkle tree over 256-bit
//! keys, persistent (nodes are shared through `Arc`, so cloning a state is
//! O(1) and an update copies only the path it changes).
//!
//! Shape: a binary trie on the key bits, where a subtree holding a single key
//! is replaced by that leaf and an empty subtree by nothing. This shape is a
//! function of the key set alone, so the root does not depend on the order of
//! insertions. With n keys the expected depth is about log2(n), so a change
//! costs O(log n) hashes. Updates are applied in sorted batches: a node touched
//! by several keys of one block is rehashed once.
//!
//! Hashes: `leaf = H("smt/leaf", key, H(value))`,
//! `node = H("smt/node", left, right)` with [`Hash::ZERO`] for an empty side.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::Hash;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug)]
enum Node {
    Leaf {
        key: Hash,
        value: Arc<[u8]>,
        hash: Hash,
    },
    Internal {
        left: Option<Arc<Node>>,
        right: Option<Arc<Node>>,
        hash: Hash,
    },
}

impl Node {
    fn hash(&self) -> Hash {
        match self {
            Node::Leaf { hash, .. } | Node::Internal { hash, .. } => *hash,
        }
    }
}

fn leaf_hash(key: &Hash, value: &[u8]) -> Hash {
    Hash::tagged("proctor/smt/leaf", &[&key.0, &Hash::of(value).0])
}

fn node_hash(l: &Hash, r: &Hash) -> Hash {
    Hash::tagged("proctor/smt/node", &[&l.0, &r.0])
}

fn opt_hash(n: &Option<Arc<Node>>) -> Hash {
    n.as_ref().map_or(Hash::ZERO, |n| n.hash())
}

fn leaf(key: Hash, value: Arc<[u8]>) -> Arc<Node> {
    Arc::new(Node::Leaf {
        hash: leaf_hash(&key, &value),
        key,
        value,
    })
}

/// Joins two children into the canonical node: nothing, a lone leaf lifted
/// up, or an internal node.
fn join(left: Option<Arc<Node>>, right: Option<Arc<Node>>) -> Option<Arc<Node>> {
    match (&left, &right) {
        (None, None) => None,
        (Some(n), None) | (None, Some(n)) if matches!(**n, Node::Leaf { .. }) => Some(n.clone()),
        _ => {
            let hash = node_hash(&opt_hash(&left), &opt_hash(&right));
            Some(Arc::new(Node::Internal { left, right, hash }))
        }
    }
}

/// A change to one key: `Some(value)` sets it, `None` deletes it.
pub type Change = (Hash, Option<Arc<[u8]>>);

/// The tree. Cloning is O(1).
#[derive(Clone, Debug, Default)]
pub struct Smt {
    root: Option<Arc<Node>>,
}

/// Proof that a key has a value, or has none, under a root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SmtProof {
    /// Sibling hashes from the root down.
    pub siblings: Vec<Hash>,
    /// Where the path ends: a leaf (its key and value hash) or an empty subtree.
    pub terminal: Option<(Hash, Hash)>,
}

impl Smt {
    pub fn root(&self) -> Hash {
        opt_hash(&self.root)
    }

    pub fn get(&self, key: &Hash) -> Option<&[u8]> {
        let mut node = self.root.as_ref()?;
        let mut depth = 0;
        loop {
            match &**node {
                Node::Leaf { key: k, value, .. } => return (k == key).then_some(&**value),
                Node::Internal { left, right, .. } => {
                    node = if key.bit(depth) {
                        right.as_ref()?
                    } else {
                        left.as_ref()?
                    };
                    depth += 1;
                }
            }
        }
    }

    /// Applies `changes`, which must be sorted by key with no duplicates.
    pub fn update(&mut self, changes: &[Change]) {
        debug_assert!(
            changes.windows(2).all(|w| w[0].0 < w[1].0),
            "changes must be sorted and unique"
        );
        self.root = update(self.root.take(), 0, changes);
    }

    /// Builds a tree from `(key, value)` pairs in any order (last one wins).
    pub fn from_entries(entries: impl IntoIterator<Item = (Hash, Vec<u8>)>) -> Smt {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in entries {
            map.insert(k, Some(Arc::<[u8]>::from(v)));
        }
        let changes: Vec<Change> = map.into_iter().collect();
        let mut t = Smt::default();
        t.update(&changes);
        t
    }

    /// Every `(key, value)`, in key order.
    pub fn entries(&self) -> Vec<(Hash, Vec<u8>)> {
        fn walk(n: &Option<Arc<Node>>, out: &mut Vec<(Hash, Vec<u8>)>) {
            match n.as_deref() {
                None => {}
                Some(Node::Leaf { key, value, .. }) => out.push((*key, value.to_vec())),
                Some(Node::Internal { left, right, .. }) => {
                    walk(left, out);
                    walk(right, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// The proof for `key` (of its value, or of its absence).
    pub fn prove(&self, key: &Hash) -> SmtProof {
        let mut siblings = Vec::new();
        let mut node = self.root.as_ref();
        let mut depth = 0;
        loop {
            match node.map(|n| &**n) {
                None => {
                    return SmtProof {
                        siblings,
                        terminal: None,
                    };
                }
                Some(Node::Leaf { key: k, value, .. }) => {
                    return SmtProof {
                        siblings,
                        terminal: Some((*k, Hash::of(value))),
                    };
                }
                Some(Node::Internal { left, right, .. }) => {
                    if key.bit(depth) {
                        siblings.push(opt_hash(left));
                        node = right.as_ref();
                    } else {
                        siblings.push(opt_hash(right));
                        node = left.as_ref();
                    }
                    depth += 1;
                }
            }
        }
    }
}

impl SmtProof {
    /// Checks that under `root`, `key` has `value` (`Some`) or no value (`None`).
    pub fn verify(&self, root: &Hash, key: &Hash, value: Option<&[u8]>) -> bool {
        let mut h = match (&self.terminal, value) {
            (Some((k, vh)), Some(v)) => {
                if k != key || *vh != Hash::of(v) {
                    return false;
                }
                leaf_hash(k, v)
            }
            // Absence: the path ends empty, or at a leaf of another key.
            (None, None) => Hash::ZERO,
            (Some((k, vh)), None) => {
                if k == key {
                    return false;
                }
                Hash::tagged("proctor/smt/leaf", &[&k.0, &vh.0])
            }
            (None, Some(_)) => return false,
        };
        if let Some((k, _)) = &self.terminal {
            // The other leaf must lie on the key's path.
            if (0..self.siblings.len()).any(|d| k.bit(d) != key.bit(d)) {
                return false;
            }
        }
        for (d, sib) in self.siblings.iter().enumerate().rev() {
            h = if key.bit(d) {
                node_hash(sib, &h)
            } else {
                node_hash(&h, sib)
            };
        }
        h == *root
    }
}

fn update(node: Option<Arc<Node>>, depth: usize, changes: &[Change]) -> Option<Arc<Node>> {
    if changes.is_empty() {
        return node;
    }
    match node.as_deref() {
        Some(Node::Internal { left, right, .. }) => {
            let split = changes.partition_point(|(k, _)| !k.bit(depth));
            let l = update(left.clone(), depth + 1, &changes[..split]);
            let r = update(right.clone(), depth + 1, &changes[split..]);
            join(l, r)
        }
        Some(Node::Leaf { key, value, .. }) => {
            // Merge the existing leaf into the batch unless the batch overwrites it.
            let mut merged: Vec<Change> = Vec::with_capacity(changes.len() + 1);
            let pos = changes.partition_point(|(k, _)| k < key);
            merged.extend_from_slice(&changes[..pos]);
            if changes.get(pos).map(|(k, _)| k) != Some(key) {
                merged.push((*key, Some(value.clone())));
            }
            merged.extend_from_slice(&changes[pos..]);
            build(depth, &merged)
        }
        None => build(depth, changes),
    }
}

/// A subtree at `depth` from sorted changes (deletions dropped).
fn build(depth: usize, changes: &[Change]) -> Option<Arc<Node>> {
    let mut live = changes.iter().filter(|(_, v)| v.is_some());
    match (live.next(), live.next()) {
        (None, _) => None,
        (Some((k, Some(v))), None) => Some(leaf(*k, v.clone())),
        _ => {
            let split = changes.partition_point(|(k, _)| !k.bit(depth));
            join(
                build(depth + 1, &changes[..split]),
                build(depth + 1, &changes[split..]),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(i: u32) -> Hash {
        Hash::of(&i.to_le_bytes())
    }

    fn set(t: &mut Smt, key: Hash, v: &[u8]) {
        t.update(&[(key, Some(Arc::from(v)))]);
    }

    #[test]
    fn get_set_delete_and_proofs() {
        let mut t = Smt::default();
        assert_eq!(t.root(), Hash::ZERO);
        for i in 0..200 {
            set(&mut t, k(i), &i.to_le_bytes());
        }
        for i in 0..200 {
            assert_eq!(t.get(&k(i)), Some(&i.to_le_bytes()[..]));
            let p = t.prove(&k(i));
            assert!(p.verify(&t.root(), &k(i), Some(&i.to_le_bytes())));
            assert!(!p.verify(&t.root(), &k(i), Some(b"wrong")));
            assert!(!p.verify(&t.root(), &k(i), None));
        }
        let absent = k(1000);
        assert_eq!(t.get(&absent), None);
        let p = t.prove(&absent);
        assert!(p.verify(&t.root(), &absent, None));
        assert!(!p.verify(&t.root(), &absent, Some(b"x")));
        // Deleting everything but one key gives the one-key tree's root.
        let root_before = t.root();
        let mut dels: Vec<Change> = (1..200).map(|i| (k(i), None)).collect();
        dels.sort_by_key(|a| a.0);
        let mut t2 = t.clone();
        t2.update(&dels);
        let mut single = Smt::default();
        set(&mut single, k(0), &0u32.to_le_bytes());
        assert_eq!(t2.root(), single.root());
        assert_eq!(t.root(), root_before, "clone must be unaffected");
    }

    #[test]
    fn depth_is_logarithmic() {
        let t = Smt::from_entries((0..4096u32).map(|i| (k(i), vec![1])));
        let max = (0..4096)
            .map(|i| t.prove(&k(i)).siblings.len())
            .max()
            .unwrap();
        assert!(max < 40, "max depth {max} for 4096 keys");
    }

    proptest! {
        #[test]
        fn root_is_independent_of_insertion_order(keys in proptest::collection::btree_set(0u32..10_000, 1..60), seed in any::<u64>()) {
            let keys: Vec<u32> = keys.into_iter().collect();
            let batch = Smt::from_entries(keys.iter().map(|&i| (k(i), i.to_be_bytes().to_vec())));
            let mut shuffled = keys.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut one_by_one = Smt::default();
            for &i in &shuffled {
                set(&mut one_by_one, k(i), &i.to_be_bytes());
            }
            prop_assert_eq!(batch.root(), one_by_one.root());
            prop_assert_eq!(batch.entries().len(), keys.len());
        }
    }
}
