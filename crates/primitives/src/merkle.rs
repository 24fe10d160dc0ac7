//! A binary Merkle tree over a list of leaves, with inclusion proofs.
//!
//! Leaves and inner nodes are hashed under different tags (no second-preimage
//! trick turning an inner node into a leaf). A level with an odd number of
//! nodes promotes the last one unchanged rather than duplicating it, so two
//! different lists never share a root (the duplication flaw of Bitcoin's tree).

use crate::Hash;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

fn leaf_hash(leaf: &[u8]) -> Hash {
    Hash::tagged("proctor/merkle/leaf", &[leaf])
}

fn node_hash(l: &Hash, r: &Hash) -> Hash {
    Hash::tagged("proctor/merkle/node", &[&l.0, &r.0])
}

/// The next level up: pairs hashed, an odd last node promoted.
fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|c| {
            if c.len() == 2 {
                node_hash(&c[0], &c[1])
            } else {
                c[0]
            }
        })
        .collect()
}

/// The root of `leaves`; [`Hash::ZERO`] for an empty list.
pub fn root<L: AsRef<[u8]>>(leaves: &[L]) -> Hash {
    let mut level: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    if level.is_empty() {
        return Hash::ZERO;
    }
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// Proof that a leaf is at `index` in a tree of `len` leaves.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Proof {
    pub index: u64,
    pub len: u64,
    /// Sibling hashes from the leaf level up; levels where the node was promoted have none.
    pub siblings: Vec<Hash>,
}

/// The inclusion proof of leaf `index`, or `None` if out of range.
pub fn prove<L: AsRef<[u8]>>(leaves: &[L], index: usize) -> Option<Proof> {
    if index >= leaves.len() {
        return None;
    }
    let mut level: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    let mut siblings = Vec::new();
    let mut i = index;
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            siblings.push(level[sib]);
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(Proof {
        index: index as u64,
        len: leaves.len() as u64,
        siblings,
    })
}

/// Checks that `leaf` is in the tree with `root` at the proof's index.
pub fn verify(root: &Hash, leaf: &[u8], proof: &Proof) -> bool {
    if proof.index >= proof.len {
        return false;
    }
    let mut h = leaf_hash(leaf);
    let (mut i, mut n) = (proof.index, proof.len);
    let mut sibs = proof.siblings.iter();
    while n > 1 {
        let sib = i ^ 1;
        if sib < n {
            let Some(s) = sibs.next() else { return false };
            h = if i % 2 == 0 {
                node_hash(&h, s)
            } else {
                node_hash(s, &h)
            };
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    sibs.next().is_none() && h == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_proves_and_wrong_leaf_fails() {
        for n in 1..20usize {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 3]).collect();
            let r = root(&leaves);
            for i in 0..n {
                let p = prove(&leaves, i).unwrap();
                assert!(verify(&r, &leaves[i], &p), "n={n} i={i}");
                assert!(!verify(&r, b"other", &p));
            }
            assert!(prove(&leaves, n).is_none());
        }
    }

    #[test]
    fn no_duplication_collision() {
        let a = root(&[b"x".to_vec(), b"y".to_vec(), b"z".to_vec()]);
        let b = root(&[b"x".to_vec(), b"y".to_vec(), b"z".to_vec(), b"z".to_vec()]);
        assert_ne!(a, b);
        assert_eq!(root::<Vec<u8>>(&[]), Hash::ZERO);
    }
}
