//! What an on-chain module is. A module owns a slice of the state (its
//! records, under its own key prefix), a set of calls with their handlers,
//! its events, its errors (one stable code range), an optional end-of-block
//! hook and its queries (methods on [`State`](crate::State) in its own
//! `mod.rs`). The machine knows modules only through this trait, the
//! top-level enums in `types.rs` and `error.rs`, and its lists in
//! `machine.rs`.

use crate::TxError;
use crate::context::{Context, Overlay};
use crate::types::{Event, Transaction};
use proctor_primitives::{Address, PublicKey};
use std::ops::RangeInclusive;

/// An on-chain module.
pub(crate) trait Module {
    /// Its name, in errors and documents.
    const NAME: &'static str;
    /// The domain of its state keys ([`crate::context::key`]).
    const KEY_PREFIX: &'static str;
    /// The codes of its errors (the core's are 1000-1099).
    const CODES: RangeInclusive<i32>;
    /// Its calls.
    type Call;

    /// Runs one of its calls. The core has checked the signature, taken the
    /// fee and bumped the nonce; an error makes the block invalid.
    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        tx: &Transaction,
        call: &Self::Call,
    ) -> Result<Vec<Event>, TxError>;

    /// Work at the end of every block, after all transactions, in the
    /// machine's fixed module order.
    fn end_block(_cx: &mut Context<'_>) -> Result<Vec<Event>, TxError> {
        Ok(vec![])
    }

    /// Whether the enclave `identity`'s stake may be released: a module that
    /// still needs it (to pay or slash) refuses with its error.
    fn check_stake_release(_o: &Overlay<'_>, _identity: &PublicKey) -> Result<(), TxError> {
        Ok(())
    }
}

/// What the outside may know of a module: its name, key domain and codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    pub name: &'static str,
    pub key_prefix: &'static str,
    pub codes: RangeInclusive<i32>,
}

/// `M`'s [`ModuleInfo`].
pub(crate) const fn info<M: Module>() -> ModuleInfo {
    ModuleInfo {
        name: M::NAME,
        key_prefix: M::KEY_PREFIX,
        codes: M::CODES,
    }
}
