//! Fork choice: the heaviest chain (most total difficulty) wins.

use proctor_primitives::{Hash, Height};

/// A chain tip as fork choice sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub hash: Hash,
    pub height: Height,
    /// Sum of the difficulties of all blocks from genesis to this one.
    pub total_difficulty: u128,
}

impl Tip {
    /// Orders tips by preference: more total difficulty, then (deterministic
    /// tie-break, the same on every node) the smaller hash.
    fn key(&self) -> (u128, std::cmp::Reverse<Hash>) {
        (self.total_difficulty, std::cmp::Reverse(self.hash))
    }

    /// Whether `self` should replace `current` as the head.
    pub fn better_than(&self, current: &Tip) -> bool {
        self.key() > current.key()
    }
}

/// The preferred tip among `tips`, or None if there are none.
pub fn fork_choice<'a>(tips: impl IntoIterator<Item = &'a Tip>) -> Option<Tip> {
    tips.into_iter().copied().max_by_key(Tip::key)
}
