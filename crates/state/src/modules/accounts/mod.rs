//! Accounts: balances and nonces, and transfers between them. (Fees and
//! nonces are the core's, `machine.rs`; this module moves tokens.)

use crate::TxError;
use crate::machine::{Overlay, State};
use crate::types::{Call, Event};
use proctor_primitives::Address;

impl State {
    /// A transfer: the amount was debited from the sender with the fee.
    pub(crate) fn apply_accounts_call(
        &self,
        o: &mut Overlay<'_>,
        from: Address,
        call: &Call,
    ) -> Result<Vec<Event>, TxError> {
        let mut events = Vec::new();
        match call {
            Call::Transfer { to, amount } => {
                let mut dest = o.account(to);
                dest.balance = dest.balance.checked_add(*amount).ok_or(TxError::Overflow)?;
                o.set_account(to, dest);
                events.push(Event::Transfer {
                    from,
                    to: *to,
                    amount: *amount,
                });
            }
            _ => unreachable!("only account calls come here"),
        }
        Ok(events)
    }
}
