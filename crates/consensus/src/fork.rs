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

/// Why a branch has no usable fork point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkError<E> {
    /// A block of the branch has a parent that is not stored.
    #[error("block's parent {0} is unknown: fetch it first")]
    UnknownParent(Hash),
    /// Switching to the branch would revert more than the finality depth.
    #[error("a reorganization {depth} blocks deep exceeds the finality depth {limit}")]
    TooDeep { depth: u64, limit: u64 },
    /// Reading the stored blocks failed.
    #[error(transparent)]
    Lookup(E),
}

/// Where the branch ending in `block` leaves the canonical chain: walks back
/// through stored blocks (`lookup`) to the first one that is canonical
/// (`is_canonical(height, hash)`) and returns it with the branch above it,
/// lowest first. Depth is judged on the stored, validated blocks' heights
/// against the tip's height, never on a height a block claims; a branch
/// forking more than `limit` blocks below the tip is refused as soon as
/// the walk passes that depth. A pure function of what it is given, so the
/// node's import and (later) finality votes share it.
pub fn fork_point<E>(
    block: proctor_state::Block,
    tip_height: Height,
    limit: u64,
    mut lookup: impl FnMut(&Hash) -> Result<Option<proctor_state::Block>, E>,
    mut is_canonical: impl FnMut(Height, &Hash) -> Result<bool, E>,
) -> Result<(proctor_state::Block, Vec<proctor_state::Block>), ForkError<E>> {
    let mut cursor = block.header.template.parent;
    let mut branch = vec![block];
    let fork = loop {
        let b = lookup(&cursor)
            .map_err(ForkError::Lookup)?
            .ok_or(ForkError::UnknownParent(cursor))?;
        let height = b.header.height();
        if is_canonical(height, &cursor).map_err(ForkError::Lookup)? {
            break b;
        }
        let depth = tip_height.saturating_sub(height);
        if depth > limit {
            return Err(ForkError::TooDeep { depth, limit });
        }
        cursor = b.header.template.parent;
        branch.push(b);
    };
    let depth = tip_height.saturating_sub(fork.header.height());
    if depth > limit {
        return Err(ForkError::TooDeep { depth, limit });
    }
    branch.reverse();
    Ok((fork, branch))
}
