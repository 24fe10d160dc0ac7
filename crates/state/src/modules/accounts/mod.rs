//! Accounts: balances and nonces, and transfers between them. The core
//! (`machine.rs`) takes fees and bumps nonces through this module's records;
//! other modules pay and charge accounts through `Overlay::account` and
//! `Overlay::set_account`.

use crate::TxError;
use crate::context::{Context, Overlay, State, key, lift};
use crate::module::Module;
use crate::types::Transaction;
use proctor_primitives::{Address, Hash};

pub mod types;
pub use types::*;

/// The accounts module.
pub(crate) struct Accounts;

/// State tree key of an account.
pub fn account_key(a: &Address) -> Hash {
    key(Accounts::KEY_PREFIX, "account", &[&a.0])
}

impl Overlay<'_> {
    pub(crate) fn account(&self, a: &Address) -> Account {
        match self.get(&account_key(a)) {
            Some(crate::Record::Accounts(Record::Account(acc))) => acc,
            _ => Account::default(),
        }
    }
    pub(crate) fn set_account(&mut self, a: &Address, acc: Account) {
        self.put(account_key(a), Record::Account(acc));
    }
    /// Adds `amount` to `a`'s balance.
    pub(crate) fn credit(
        &mut self,
        a: &Address,
        amount: proctor_primitives::Amount,
    ) -> Result<(), TxError> {
        if amount.0 == 0 {
            return Ok(());
        }
        let mut acc = self.account(a);
        acc.balance = acc.balance.checked_add(amount).ok_or(TxError::Overflow)?;
        self.set_account(a, acc);
        Ok(())
    }
}

impl Module for Accounts {
    const NAME: &'static str = "accounts";
    const KEY_PREFIX: &'static str = "proctor/accounts";
    const CODES: std::ops::RangeInclusive<i32> = 1000..=1099;
    type Call = Call;

    /// A transfer: the amount was debited from the sender with the fee.
    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        _tx: &Transaction,
        call: &Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        match call {
            Call::Transfer { to, amount } => {
                cx.o.credit(to, *amount)?;
                Ok(lift(vec![Event::Transfer {
                    from,
                    to: *to,
                    amount: *amount,
                }]))
            }
        }
    }
}

impl State {
    /// The account at `a` (a zero account when it never received anything).
    pub fn account(&self, a: &Address) -> Account {
        self.read().account(a)
    }
}

#[cfg(test)]
mod tests;
