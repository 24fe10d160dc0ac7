//! The state machine: `apply(state, block) -> (state', receipts)`.

use crate::context::{BlockEnv, Context, StakeGuard, State};
use crate::error::{BlockError, TxError};
use crate::module::{Module, ModuleInfo, info};
use crate::modules::accounts::{self, Accounts};
use crate::modules::contracts::Contracts;
use crate::modules::governance::Governance;
use crate::modules::market::Market;
use crate::modules::oracle::Oracle;
use crate::modules::registry::Registry;
use crate::modules::rewards::Rewards;
use crate::smt::{Change, SmtProof};
use crate::types::*;
use proctor_primitives::{Address, Amount, Hash, codec, verify_batch};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every module, in dispatch order: name, key domain, error codes.
pub const MODULES: &[ModuleInfo] = &[
    info::<Accounts>(),
    info::<Registry>(),
    info::<Governance>(),
    info::<Rewards>(),
    info::<Market>(),
    info::<Oracle>(),
    info::<Contracts>(),
];

/// Every module's veto on releasing an enclave's stake.
const STAKE_GUARDS: &[StakeGuard] = &[Market::check_stake_release];

/// Every module's end-of-block hook, in the order they run: the market's
/// deadlines and scheduling, the oracle's deadlines, the contracts' executor
/// timeouts, then the miner's reward (which includes every fee of the block).
const END_OF_BLOCK: &[(&str, EndOfBlock)] = &[
    (Market::NAME, Market::end_block),
    (Oracle::NAME, Oracle::end_block),
    (Contracts::NAME, Contracts::end_block),
    (Rewards::NAME, Rewards::end_block),
];
type EndOfBlock = fn(&mut Context<'_>) -> Result<Vec<Event>, TxError>;

/// The result of applying a block.
#[derive(Clone, Debug)]
pub struct Applied {
    pub state: State,
    pub receipts: Vec<Receipt>,
    /// Block-level events (the market's end-of-block work, the reward).
    pub events: Vec<Event>,
    /// Every key the block changed and its new value (`None`: deleted), in key order.
    pub changes: Vec<(Hash, Option<Vec<u8>>)>,
}

impl State {
    pub fn params(&self) -> &ChainParams {
        &self.params
    }
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// A proof of `address`'s account (or its absence) under [`State::root`].
    pub fn prove_account(&self, a: &Address) -> (Option<Vec<u8>>, SmtProof) {
        let key = accounts::account_key(a);
        (
            self.tree.get(&key).map(<[u8]>::to_vec),
            self.tree.prove(&key),
        )
    }

    /// What undoes `changes` on this state: each changed key with its value
    /// here (`None`: absent), in key order.
    pub fn undo_of(&self, changes: &[(Hash, Option<Vec<u8>>)]) -> Vec<(Hash, Option<Vec<u8>>)> {
        let mut undo: Vec<_> = changes
            .iter()
            .map(|(k, _)| (*k, self.tree.get(k).map(<[u8]>::to_vec)))
            .collect();
        undo.sort_by_key(|(k, _)| *k);
        undo.dedup_by_key(|(k, _)| *k);
        undo
    }

    /// This state with `changes` applied (e.g. undo data, to step back a block).
    pub fn with_changes(&self, changes: &[(Hash, Option<Vec<u8>>)]) -> State {
        let mut sorted: BTreeMap<Hash, Option<Arc<[u8]>>> = BTreeMap::new();
        for (k, v) in changes {
            sorted.insert(*k, v.as_deref().map(Arc::from));
        }
        let changes: Vec<Change> = sorted.into_iter().collect();
        let mut tree = self.tree.clone();
        tree.update(&changes);
        State {
            genesis_hash: self.genesis_hash,
            params: self.params.clone(),
            tree,
        }
    }

    /// Every `(key, value)` of the state tree, in key order (for storage).
    pub fn entries(&self) -> Vec<(Hash, Vec<u8>)> {
        self.tree.entries()
    }

    /// Sum of all balances, locked stakes, the escrow of unfinished jobs,
    /// the fees the oracle holds and the escrow of unapplied commands.
    pub fn total_supply(&self) -> u128 {
        self.tree
            .entries()
            .iter()
            .filter_map(|(_, v)| match codec::decode::<Record>("state record", v) {
                Ok(Record::Accounts(accounts::Record::Account(a))) => Some(a.balance.0),
                Ok(Record::Registry(crate::modules::registry::Record::Enclave(e))) => {
                    Some(e.stake.0)
                }
                Ok(Record::Market(crate::modules::market::Record::Job(j)))
                    if !j.state.is_final() =>
                {
                    Some(j.escrow.0)
                }
                Ok(Record::Oracle(crate::modules::oracle::Record::Request(r))) => Some(r.escrow.0),
                Ok(Record::Contracts(crate::modules::contracts::Record::Command(c))) => {
                    Some(c.escrow.0)
                }
                _ => None,
            })
            .sum()
    }

    /// Checks a transaction against this state, allowing its nonce to be up to
    /// `pending` ahead (transactions already queued in the mempool).
    pub fn check_tx(&self, stx: &SignedTransaction, pending: u64) -> Result<(), TxError> {
        stx.tx
            .signer
            .verify(&stx.hash().0, &stx.signature)
            .map_err(|_| TxError::BadSignature)?;
        self.check_tx_verified(stx, pending)
    }

    /// [`State::check_tx`] without the signature check, for a transaction
    /// whose signature the caller verified (see [`signatures_valid`]).
    pub fn check_tx_verified(&self, stx: &SignedTransaction, pending: u64) -> Result<(), TxError> {
        check_tx_size(stx)?;
        let tx = &stx.tx;
        self.check_static(tx)?;
        let acc = self.account(&tx.sender());
        if tx.nonce < acc.nonce {
            return Err(TxError::NonceReplayed {
                expected: acc.nonce,
                got: tx.nonce,
            });
        }
        if tx.nonce > acc.nonce + pending {
            return Err(TxError::NonceGap {
                expected: acc.nonce + pending,
                got: tx.nonce,
            });
        }
        let needed = tx.cost().ok_or(TxError::Overflow)?;
        if acc.balance < needed {
            return Err(TxError::InsufficientBalance {
                needed,
                available: acc.balance,
            });
        }
        Ok(())
    }

    fn check_static(&self, tx: &Transaction) -> Result<(), TxError> {
        if tx.chain != self.genesis_hash {
            return Err(TxError::WrongChain {
                expected: self.genesis_hash,
                got: tx.chain,
            });
        }
        if tx.fee < self.params.min_fee {
            return Err(TxError::FeeTooLow {
                min: self.params.min_fee,
                got: tx.fee,
            });
        }
        Ok(())
    }

    /// Applies a block's transactions and pays the miner. Pure: `self` is unchanged.
    pub fn apply_block(
        &self,
        env: &BlockEnv,
        txs: &[SignedTransaction],
    ) -> Result<Applied, BlockError> {
        self.check_count(txs)?;
        let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
        verify_signatures(txs, &hashes)?;
        self.apply_with_hashes(env, txs, &hashes)
    }

    /// [`State::apply_block`] checking only the signatures of transactions
    /// for which `known` is false: `known` marks transactions whose exact
    /// signed bytes the caller verified before (a node's mempool).
    pub fn apply_block_known(
        &self,
        env: &BlockEnv,
        txs: &[SignedTransaction],
        known: &dyn Fn(&SignedTransaction) -> bool,
    ) -> Result<Applied, BlockError> {
        self.check_count(txs)?;
        let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
        let unknown: Vec<usize> = (0..txs.len()).filter(|&i| !known(&txs[i])).collect();
        verify_some(txs, &hashes, &unknown)?;
        self.apply_with_hashes(env, txs, &hashes)
    }

    /// [`State::apply_block`] for transactions whose signatures the caller
    /// has already verified (a node building a block from its mempool, where
    /// admission checked every signature). Never use it on a block from
    /// elsewhere: it does not check signatures.
    pub fn apply_verified(
        &self,
        env: &BlockEnv,
        txs: &[SignedTransaction],
    ) -> Result<Applied, BlockError> {
        self.apply_block_known(env, txs, &|_| true)
    }

    /// The block's count and byte limits, and each transaction's size,
    /// checked before any signature or state work.
    fn check_count(&self, txs: &[SignedTransaction]) -> Result<(), BlockError> {
        if txs.len() > self.params.max_block_txs as usize {
            return Err(BlockError::TooManyTxs {
                count: txs.len(),
                limit: self.params.max_block_txs,
            });
        }
        let mut size = 0usize;
        for (index, stx) in txs.iter().enumerate() {
            let len = stx.encoded_len();
            if len > MAX_TX_BYTES {
                return Err(BlockError::Tx {
                    index,
                    hash: stx.hash(),
                    error: TxError::TooLarge {
                        size: len,
                        max: MAX_TX_BYTES,
                    },
                });
            }
            size += len;
        }
        if size > MAX_BLOCK_BYTES {
            return Err(BlockError::TooLarge {
                size,
                max: MAX_BLOCK_BYTES,
            });
        }
        Ok(())
    }

    fn apply_with_hashes(
        &self,
        env: &BlockEnv,
        txs: &[SignedTransaction],
        hashes: &[Hash],
    ) -> Result<Applied, BlockError> {
        let mut cx = Context {
            state: self,
            env,
            o: self.read(),
            fees: Amount::ZERO,
            stake_guards: STAKE_GUARDS,
        };
        let mut receipts = Vec::with_capacity(txs.len());
        for (i, (stx, hash)) in txs.iter().zip(hashes).enumerate() {
            let events = self
                .apply_tx(&mut cx, &stx.tx)
                .map_err(|error| BlockError::Tx {
                    index: i,
                    hash: *hash,
                    error,
                })?;
            cx.fees = cx
                .fees
                .checked_add(stx.tx.fee)
                .ok_or(BlockError::RewardOverflow)?;
            receipts.push(Receipt {
                tx: *hash,
                height: env.height,
                index: i as u32,
                fee: stx.tx.fee,
                events,
            });
        }
        let mut events = Vec::new();
        for (module, hook) in END_OF_BLOCK {
            events.extend(hook(&mut cx).map_err(|error| BlockError::EndOfBlock { module, error })?);
        }

        let changes: Vec<(Hash, Option<Vec<u8>>)> = cx.o.writes.into_iter().collect();
        let tree_changes: Vec<Change> = changes
            .iter()
            .map(|(k, v)| (*k, v.as_deref().map(Arc::from)))
            .collect();
        let mut tree = self.tree.clone();
        tree.update(&tree_changes);
        let state = State {
            genesis_hash: self.genesis_hash,
            params: self.params.clone(),
            tree,
        };
        Ok(Applied {
            state,
            receipts,
            events,
            changes,
        })
    }

    /// One transaction: the core's checks (chain, fee, nonce, balance), the
    /// fee and amount debited, the nonce bumped, then the call routed to its
    /// module.
    fn apply_tx(&self, cx: &mut Context<'_>, tx: &Transaction) -> Result<Vec<Event>, TxError> {
        self.check_static(tx)?;
        let from = tx.sender();
        let mut acc = cx.o.account(&from);
        if tx.nonce < acc.nonce {
            return Err(TxError::NonceReplayed {
                expected: acc.nonce,
                got: tx.nonce,
            });
        }
        if tx.nonce > acc.nonce {
            return Err(TxError::NonceGap {
                expected: acc.nonce,
                got: tx.nonce,
            });
        }
        let needed = tx.cost().ok_or(TxError::Overflow)?;
        acc.balance = acc
            .balance
            .checked_sub(needed)
            .ok_or(TxError::InsufficientBalance {
                needed,
                available: acc.balance,
            })?;
        acc.nonce += 1;
        cx.o.set_account(&from, acc);
        let mut events = vec![Event::from(accounts::Event::FeePaid {
            payer: from,
            amount: tx.fee,
        })];
        events.extend(match &tx.call {
            Call::Accounts(c) => Accounts::apply(cx, from, tx, c)?,
            Call::Registry(c) => Registry::apply(cx, from, tx, c)?,
            Call::Governance(c) => Governance::apply(cx, from, tx, c)?,
            Call::Market(c) => Market::apply(cx, from, tx, c)?,
            Call::Oracle(c) => Oracle::apply(cx, from, tx, c)?,
            Call::Contracts(c) => Contracts::apply(cx, from, tx, c)?,
        });
        Ok(events)
    }
}

/// Refuses a transaction larger than [`MAX_TX_BYTES`].
fn check_tx_size(stx: &SignedTransaction) -> Result<(), TxError> {
    let size = stx.encoded_len();
    if size > MAX_TX_BYTES {
        return Err(TxError::TooLarge {
            size,
            max: MAX_TX_BYTES,
        });
    }
    Ok(())
}

/// Batch-verifies all signatures; on failure finds the first bad one.
/// Whether every transaction's signature is valid, checked as one batch
/// (about twice as fast per signature as one by one). False if any is not.
pub fn signatures_valid(txs: &[SignedTransaction]) -> bool {
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    let items: Vec<_> = txs
        .iter()
        .zip(&hashes)
        .map(|(t, h)| (t.tx.signer, &h.0[..], t.signature))
        .collect();
    verify_batch(&items).is_ok()
}

fn verify_signatures(txs: &[SignedTransaction], hashes: &[Hash]) -> Result<(), BlockError> {
    let all: Vec<usize> = (0..txs.len()).collect();
    verify_some(txs, hashes, &all)
}

/// Verifies the signatures of `txs[i]` for `i` in `which` as one batch; if
/// the batch fails, finds the first bad one (reported at its block index).
fn verify_some(
    txs: &[SignedTransaction],
    hashes: &[Hash],
    which: &[usize],
) -> Result<(), BlockError> {
    if which.is_empty() {
        return Ok(());
    }
    let items: Vec<_> = which
        .iter()
        .map(|&i| (txs[i].tx.signer, &hashes[i].0[..], txs[i].signature))
        .collect();
    if verify_batch(&items).is_ok() {
        return Ok(());
    }
    for (&i, (pk, msg, sig)) in which.iter().zip(&items) {
        if pk.verify(msg, sig).is_err() {
            return Err(BlockError::Tx {
                index: i,
                hash: hashes[i],
                error: TxError::BadSignature,
            });
        }
    }
    Ok(())
}
