//! Tests of the governance module.

use crate::testkit::{self, keys};
use crate::*;
use proctor_primitives::{Amount, Hash};
use proctor_tee::Platform;
use proctor_tee::sim::sim_measurement;

use crate::tests::{env, registration};

/// The measurement allowlist is governed: only the governance account changes
/// it; retired measurements refuse new registrations at once and stop mining
/// after the grace period.
#[test]
fn measurement_allowlist_is_governed_with_a_grace_period() {
    let ks = keys(3);
    let (platform, root_pk) = registration("gov", [9; 32]);
    let mut params = testkit::params(Some(root_pk), Hash([1; 32]));
    params.governance = Some(ks[1].public().address());
    let g = testkit::genesis(&ks, 1_000_000, params);
    let grace = g.params.measurement_grace_blocks;
    let id = platform.identity();
    let m = sim_measurement();
    let tx = |who: usize, nonce: u64, call: Call| {
        Transaction {
            chain: g.hash(),
            signer: ks[who].public(),
            nonce,
            fee: Amount(1),
            call,
        }
        .sign(&ks[who])
    };
    let apply = |s: &State, h: u64, t: SignedTransaction| {
        s.apply_block(&env(h, ks[2].public().address()), &[t])
    };
    let s0 = State::genesis(&g).unwrap();
    let reg = testkit::register_call(&platform, &ks[0].public().address(), &g.hash(), 500, 1_000);
    assert!(matches!(
        apply(&s0, 1, tx(0, 0, reg.clone())),
        Err(BlockError::Tx {
            error: TxError::Registry(crate::registry::Error::MeasurementNotAllowed(_)),
            ..
        })
    ));

    let add = Call::Governance(crate::governance::Call::UpdateMeasurements {
        add: vec![m],
        retire: vec![],
    });
    assert!(matches!(
        apply(&s0, 1, tx(0, 0, add.clone())),
        Err(BlockError::Tx {
            error: TxError::Governance(crate::governance::Error::NotGovernance),
            ..
        })
    ));
    let s1 = apply(&s0, 1, tx(1, 0, add)).unwrap().state;
    assert!(s1.measurement_allowed(&m, 1));
    let s2 = apply(&s1, 2, tx(0, 0, reg.clone())).unwrap().state;
    assert!(s2.enclave(&id).is_some());

    let retire = Call::Governance(crate::governance::Call::UpdateMeasurements {
        add: vec![],
        retire: vec![m],
    });
    let s3 = apply(&s2, 3, tx(1, 1, retire)).unwrap().state;
    assert!(
        s3.measurement_allowed(&m, 3 + grace),
        "still valid within the grace period"
    );
    assert!(!s3.measurement_allowed(&m, 3 + grace + 1), "not after it");
    // New registrations with a retired measurement are refused at once.
    assert!(matches!(
        apply(&s3, 4, tx(0, 1, reg)),
        Err(BlockError::Tx {
            error: TxError::Registry(crate::registry::Error::MeasurementNotAllowed(_)),
            ..
        })
    ));
}
