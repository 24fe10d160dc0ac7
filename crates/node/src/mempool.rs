//! The mempool: pending transactions, bounded, ordered by sender and nonce.
//!
//! Admission checks a transaction against the tip state *plus* the sender's
//! pending transactions: its nonce must be the next one after them (no gaps,
//! no duplicates) and the balance must cover all of them together, so every
//! pending transaction can be included in order.
//!
//! The pool is bounded in count and in bytes ([`MAX_MEMPOOL_BYTES`]): a
//! flood of maximum-size transactions fills it no further than a flood of
//! small ones.

use proctor_primitives::{Address, Amount, Hash};
use proctor_state::{BlockEnv, BlockError, Call, SignedTransaction, State, TxError};
use std::collections::BTreeMap;

/// Why a transaction was not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmitError {
    #[error(transparent)]
    Invalid(#[from] TxError),
    #[error("transaction {0} is already pending")]
    AlreadyPending(Hash),
    #[error(
        "nonce {nonce} is already used by a pending transaction of this account; the next free nonce is {next}"
    )]
    NonceTaken { nonce: u64, next: u64 },
    #[error("mempool is full ({0} transactions); retry later")]
    Full(usize),
    #[error("mempool is full ({0} bytes); retry later")]
    FullBytes(usize),
}

/// Pending transactions.
pub struct Mempool {
    by_sender: BTreeMap<Address, BTreeMap<u64, SignedTransaction>>,
    hashes: BTreeMap<Hash, (Address, u64)>,
    /// What each sender's pending transactions may spend together (amounts and fees).
    spend: BTreeMap<Address, u128>,
    capacity: usize,
    /// Encoded bytes of every pending transaction, and their limit.
    bytes: usize,
    max_bytes: usize,
}

/// Most bytes of pending transactions a node keeps.
pub const MAX_MEMPOOL_BYTES: usize = 64 << 20;

impl Mempool {
    /// A pool of at most `capacity` transactions and [`MAX_MEMPOOL_BYTES`].
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, MAX_MEMPOOL_BYTES)
    }

    /// A pool of at most `capacity` transactions and `max_bytes` bytes.
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        Mempool {
            by_sender: BTreeMap::new(),
            hashes: BTreeMap::new(),
            spend: BTreeMap::new(),
            capacity,
            bytes: 0,
            max_bytes,
        }
    }

    /// Encoded bytes of the pending transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn contains(&self, h: &Hash) -> bool {
        self.hashes.contains_key(h)
    }

    /// Whether exactly this signed transaction (same body and signature) is
    /// pending, i.e. its signature was verified on admission.
    pub fn holds(&self, stx: &SignedTransaction) -> bool {
        self.hashes.get(&stx.hash()).is_some_and(|(sender, nonce)| {
            self.by_sender
                .get(sender)
                .and_then(|m| m.get(nonce))
                .is_some_and(|t| t.signature == stx.signature)
        })
    }

    /// The nonce a new transaction of `a` should carry.
    pub fn next_nonce(&self, state: &State, a: &Address) -> u64 {
        state.account(a).nonce + self.by_sender.get(a).map_or(0, |m| m.len() as u64)
    }

    /// Admits `stx` if it is valid after the sender's pending transactions.
    ///
    /// Calls other than transfers (registrations, stake, governance) are also
    /// dry-run on top of the sender's pending transactions in `env` (the next
    /// block), so an invalid one is refused now, with its reason, instead of
    /// being dropped later when a block is built.
    pub fn add(
        &mut self,
        state: &State,
        env: &BlockEnv,
        stx: SignedTransaction,
    ) -> Result<Hash, AdmitError> {
        self.admit(state, env, stx, false)
    }

    /// [`Mempool::add`] for a transaction whose signature the caller has
    /// verified (in a batch with others).
    pub fn add_verified(
        &mut self,
        state: &State,
        env: &BlockEnv,
        stx: SignedTransaction,
    ) -> Result<Hash, AdmitError> {
        self.admit(state, env, stx, true)
    }

    fn admit(
        &mut self,
        state: &State,
        env: &BlockEnv,
        stx: SignedTransaction,
        sig_verified: bool,
    ) -> Result<Hash, AdmitError> {
        let hash = stx.hash();
        if self.hashes.contains_key(&hash) {
            return Err(AdmitError::AlreadyPending(hash));
        }
        if self.hashes.len() >= self.capacity {
            return Err(AdmitError::Full(self.capacity));
        }
        let size = stx.encoded_len();
        if self.bytes + size > self.max_bytes {
            return Err(AdmitError::FullBytes(self.max_bytes));
        }
        let sender = stx.tx.sender();
        let pending = self.by_sender.get(&sender);
        let n_pending = pending.map_or(0, |m| m.len() as u64);
        let acc = state.account(&sender);
        if stx.tx.nonce >= acc.nonce && stx.tx.nonce < acc.nonce + n_pending {
            return Err(AdmitError::NonceTaken {
                nonce: stx.tx.nonce,
                next: acc.nonce + n_pending,
            });
        }
        if sig_verified {
            state.check_tx_verified(&stx, n_pending)?;
        } else {
            state.check_tx(&stx, n_pending)?;
        }
        if stx.tx.nonce != acc.nonce + n_pending {
            return Err(TxError::NonceGap {
                expected: acc.nonce + n_pending,
                got: stx.tx.nonce,
            }
            .into());
        }
        let committed = self.spend.get(&sender).copied().unwrap_or(0);
        let needed = stx.tx.cost().ok_or(TxError::Overflow)?;
        if committed.saturating_add(needed.0) > acc.balance.0 {
            return Err(TxError::InsufficientBalance {
                needed: Amount(committed.saturating_add(needed.0)),
                available: acc.balance,
            }
            .into());
        }
        if !matches!(
            stx.tx.call,
            Call::Accounts(proctor_state::accounts::Call::Transfer { .. })
        ) {
            let mut run: Vec<SignedTransaction> = pending
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            run.push(stx.clone());
            let last = run.len() - 1;
            match state.apply_block(env, &run) {
                Err(BlockError::Tx { index, error, .. }) if index == last => {
                    return Err(error.into());
                }
                _ => {}
            }
        }
        self.hashes.insert(hash, (sender, stx.tx.nonce));
        self.bytes += size;
        *self.spend.entry(sender).or_default() += needed.0;
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(stx.tx.nonce, stx);
        Ok(hash)
    }

    /// Up to `max` transactions of at most `max_bytes` in all, in
    /// includable order: each sender's in nonce order, and a sender whose
    /// next transaction does not fit contributes nothing after it.
    pub fn select(&self, max: usize, max_bytes: usize) -> Vec<SignedTransaction> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for m in self.by_sender.values() {
            for t in m.values() {
                if out.len() == max {
                    return out;
                }
                let size = t.encoded_len();
                if bytes + size > max_bytes {
                    break;
                }
                bytes += size;
                out.push(t.clone());
            }
        }
        out
    }

    /// Forgets a transaction taken out of `by_sender`.
    fn forget(&mut self, t: &SignedTransaction) {
        self.hashes.remove(&t.hash());
        self.bytes -= t.encoded_len();
    }

    /// Drops `sender`'s transactions from `nonce` on (they can no longer be included in order).
    pub fn drop_from(&mut self, sender: &Address, nonce: u64) {
        if let Some(m) = self.by_sender.get_mut(sender) {
            let dropped = m.split_off(&nonce);
            for t in dropped.values() {
                self.forget(t);
            }
        }
        self.recount(sender);
    }

    /// Recomputes what `sender`'s remaining pending transactions spend.
    fn recount(&mut self, sender: &Address) {
        match self.by_sender.get(sender) {
            Some(m) if !m.is_empty() => {
                let total = m.values().filter_map(|t| t.tx.cost()).map(|a| a.0).sum();
                self.spend.insert(*sender, total);
            }
            _ => {
                self.by_sender.remove(sender);
                self.spend.remove(sender);
            }
        }
    }

    /// Empties the pool, returning every transaction in includable order.
    pub fn take_all(&mut self) -> Vec<SignedTransaction> {
        self.hashes.clear();
        self.spend.clear();
        self.bytes = 0;
        std::mem::take(&mut self.by_sender)
            .into_values()
            .flat_map(BTreeMap::into_values)
            .collect()
    }

    /// Drops transactions the new `state` has made stale (nonces already used).
    pub fn prune(&mut self, state: &State, senders: impl IntoIterator<Item = Address>) {
        for s in senders {
            let Some(m) = self.by_sender.get_mut(&s) else {
                continue;
            };
            let next = state.account(&s).nonce;
            let keep = m.split_off(&next);
            let stale = std::mem::replace(m, keep);
            for t in stale.values() {
                self.forget(t);
            }
            self.recount(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_state::testkit::{self, keys, transfer};

    /// `n` funded keys, their genesis and state, and the next block's environment.
    fn setup(
        n: usize,
    ) -> (
        Vec<proctor_primitives::Keypair>,
        proctor_state::Genesis,
        State,
        BlockEnv,
    ) {
        let ks = keys(n);
        let g = testkit::genesis(&ks, 1_000, testkit::params(None, Hash::ZERO));
        let s = State::genesis(&g).unwrap();
        let env = BlockEnv {
            height: 1,
            timestamp: g.timestamp + 1,
            miner: ks[1].public().address(),
        };
        (ks, g, s, env)
    }

    #[test]
    fn admission_orders_nonces_and_counts_pending_spend() {
        let (ks, g, s, env) = setup(2);
        let mut mp = Mempool::new(10);
        let gh = g.hash();
        mp.add(&s, &env, transfer(&gh, &ks[0], 0, &ks[1], 400, 1))
            .unwrap();
        let dup = transfer(&gh, &ks[0], 0, &ks[1], 400, 1);
        assert!(matches!(
            mp.add(&s, &env, dup),
            Err(AdmitError::AlreadyPending(_))
        ));
        let same_nonce = transfer(&gh, &ks[0], 0, &ks[1], 300, 1);
        assert_eq!(
            mp.add(&s, &env, same_nonce),
            Err(AdmitError::NonceTaken { nonce: 0, next: 1 })
        );
        let gap = transfer(&gh, &ks[0], 5, &ks[1], 1, 1);
        assert!(matches!(
            mp.add(&s, &env, gap),
            Err(AdmitError::Invalid(TxError::NonceGap { .. }))
        ));
        mp.add(&s, &env, transfer(&gh, &ks[0], 1, &ks[1], 400, 1))
            .unwrap();
        // 802 pending + 401 > 1000.
        let over = transfer(&gh, &ks[0], 2, &ks[1], 400, 1);
        assert!(matches!(
            mp.add(&s, &env, over),
            Err(AdmitError::Invalid(TxError::InsufficientBalance { .. }))
        ));
        assert_eq!(mp.next_nonce(&s, &ks[0].public().address()), 2);
        let sel = mp.select(10, usize::MAX);
        assert_eq!(
            sel.iter().map(|t| t.tx.nonce).collect::<Vec<_>>(),
            vec![0, 1]
        );
        mp.drop_from(&ks[0].public().address(), 1);
        assert_eq!(mp.len(), 1);
    }

    #[test]
    fn holds_means_the_same_body_and_signature() {
        let (ks, g, s, env) = setup(2);
        let mut mp = Mempool::new(10);
        let t = transfer(&g.hash(), &ks[0], 0, &ks[1], 5, 1);
        assert!(!mp.holds(&t));
        mp.add(&s, &env, t.clone()).unwrap();
        assert!(mp.holds(&t));
        let mut resigned = t.clone();
        resigned.signature = transfer(&g.hash(), &ks[0], 1, &ks[1], 5, 1).signature;
        assert_eq!(resigned.hash(), t.hash(), "same body");
        assert!(!mp.holds(&resigned), "another signature is not vouched for");
    }

    #[test]
    fn capacity_is_bounded() {
        let (ks, g, s, env) = setup(3);
        let mut mp = Mempool::new(2);
        mp.add(&s, &env, transfer(&g.hash(), &ks[0], 0, &ks[1], 1, 1))
            .unwrap();
        mp.add(&s, &env, transfer(&g.hash(), &ks[1], 0, &ks[0], 1, 1))
            .unwrap();
        assert_eq!(
            mp.add(&s, &env, transfer(&g.hash(), &ks[2], 0, &ks[0], 1, 1)),
            Err(AdmitError::Full(2))
        );
    }

    /// A flood that stays under the count limit still cannot grow the pool
    /// past its bytes; what leaves the pool gives its bytes back, and
    /// selection for a block stops at the block's byte budget, keeping each
    /// sender's nonce order.
    #[test]
    fn bytes_are_bounded_and_accounted() {
        let (ks, g, s, env) = setup(2);
        let gh = g.hash();
        let one = transfer(&gh, &ks[0], 0, &ks[1], 5, 1).encoded_len();
        let mut mp = Mempool::with_limits(100, 3 * one);
        for n in 0..3 {
            mp.add(&s, &env, transfer(&gh, &ks[0], n, &ks[1], 5, 1))
                .unwrap();
        }
        assert_eq!(mp.bytes(), 3 * one);
        assert_eq!(
            mp.add(&s, &env, transfer(&gh, &ks[0], 3, &ks[1], 5, 1)),
            Err(AdmitError::FullBytes(3 * one))
        );
        let picked = mp.select(100, 2 * one + one / 2);
        assert_eq!(
            picked.iter().map(|t| t.tx.nonce).collect::<Vec<_>>(),
            vec![0, 1]
        );
        mp.drop_from(&ks[0].public().address(), 1);
        assert_eq!(mp.bytes(), one);
        mp.take_all();
        assert_eq!(mp.bytes(), 0);
    }
}
