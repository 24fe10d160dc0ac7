//! Tests of the accounts module.

use crate::testkit::transfer;
use crate::*;
use proctor_primitives::Amount;

use crate::tests::{chain, env};

#[test]
fn transfer_moves_funds_and_pays_miner() {
    let (ks, g, s) = chain(3);
    let miner = ks[2].public().address();
    let tx = transfer(&g.hash(), &ks[0], 0, &ks[1], 500, 10);
    let a = s.apply_block(&env(1, miner), &[tx]).unwrap();
    assert_eq!(
        a.state.account(&ks[0].public().address()),
        Account {
            balance: Amount(1_000_000 - 510),
            nonce: 1
        }
    );
    assert_eq!(
        a.state.account(&ks[1].public().address()).balance,
        Amount(1_000_500)
    );
    assert_eq!(
        a.state.account(&miner).balance,
        Amount(1_000_000 + 50_000_000 + 10)
    );
    assert_eq!(a.receipts.len(), 1);
    assert!(
        a.receipts[0]
            .events
            .contains(&Event::Accounts(crate::accounts::Event::Transfer {
                from: ks[0].public().address(),
                to: ks[1].public().address(),
                amount: Amount(500)
            }))
    );
    // The original state is untouched (pure).
    assert_eq!(s.account(&ks[0].public().address()).nonce, 0);
    assert_ne!(s.root(), a.state.root());
}

#[test]
fn insufficient_balance_has_clear_error() {
    let (ks, g, s) = chain(2);
    let tx = transfer(&g.hash(), &ks[0], 0, &ks[1], 1_000_000, 1);
    let e = s.check_tx(&tx, 0).unwrap_err();
    assert_eq!(
        e,
        TxError::InsufficientBalance {
            needed: Amount(1_000_001),
            available: Amount(1_000_000)
        }
    );
    assert!(e.to_string().contains("needs 1000001"), "{e}");
    assert!(
        s.apply_block(&env(1, ks[1].public().address()), &[tx])
            .is_err()
    );
}
