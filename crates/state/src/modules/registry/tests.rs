//! Tests of the registry module.

use crate::testkit::{self, keys};
use crate::*;
use proctor_primitives::{Amount, Hash};
use proctor_tee::Platform;
use proctor_tee::sim::{SimPlatform, sim_measurement};

use crate::tests::{env, registration};

#[test]
fn enclave_registration_checks_quote_measurement_and_binding() {
    let ks = keys(2);
    let (platform, root_pk) = registration("reg", [4; 32]);
    let g = testkit::genesis(
        &ks,
        1_000_000,
        testkit::params(Some(root_pk), sim_measurement()),
    );
    let s = State::genesis(&g).unwrap();
    let id = platform.identity();
    let exp = 1 + g.params.registration_blocks;
    let sign = |call: Call| {
        Transaction {
            chain: g.hash(),
            signer: ks[0].public(),
            nonce: 0,
            fee: Amount(1),
            call,
        }
        .sign(&ks[0])
    };
    let apply = |call: Call| s.apply_block(&env(1, ks[1].public().address()), &[sign(call)]);
    let rejected = |call: Call| match apply(call) {
        Err(BlockError::Tx { error, .. }) => error,
        other => panic!("expected a rejection, got {other:?}"),
    };
    let good = testkit::register_call(&platform, &ks[0].public().address(), &g.hash(), exp, 1_000);
    let a = apply(good.clone()).unwrap();
    // Registration conserves supply: fee to the miner, stake locked, only the reward minted.
    assert_eq!(
        a.state.total_supply(),
        s.total_supply() + g.params.block_reward.0
    );
    let rec = a.state.enclave(&id).unwrap();
    assert_eq!(rec.operator, ks[0].public().address());
    assert_eq!(rec.expires_at, exp);
    assert_eq!(rec.encryption_key, platform.encryption_key());

    // A copier who saw the registration in a block replays its quote from
    // its own account: the quote names the first operator, so it is refused
    // (before, the copier could own, earn from and deregister the enclave).
    let copied = Transaction {
        chain: g.hash(),
        signer: ks[1].public(),
        nonce: 0,
        fee: Amount(1),
        call: good.clone(),
    }
    .sign(&ks[1]);
    assert!(matches!(
        s.apply_block(&env(1, ks[1].public().address()), &[copied]),
        Err(BlockError::Tx {
            error: TxError::Registry(crate::registry::Error::ReportDataMismatch),
            ..
        })
    ));

    // The quote binds identity, encryption key, chain and expiry: change any and it is refused.
    let Call::Registry(crate::registry::Call::RegisterEnclave {
        identity,
        encryption_key,
        expires_at,
        quote,
        stake,
    }) = good
    else {
        unreachable!()
    };
    let with = |identity, encryption_key, expires_at| {
        Call::Registry(crate::registry::Call::RegisterEnclave {
            identity,
            encryption_key,
            expires_at,
            quote: quote.clone(),
            stake,
        })
    };
    let other = proctor_primitives::Keypair::from_secret(&[9; 32]).public();
    assert_eq!(
        s.check_tx(&sign(with(other, encryption_key, expires_at)), 0),
        Ok(()),
        "stateless checks pass"
    );
    assert_eq!(
        rejected(with(other, encryption_key, expires_at)),
        TxError::Registry(crate::registry::Error::ReportDataMismatch)
    );
    let other_key = proctor_primitives::EncryptionKey([7; 32]);
    assert_eq!(
        rejected(with(identity, other_key, expires_at)),
        TxError::Registry(crate::registry::Error::ReportDataMismatch)
    );
    assert_eq!(
        rejected(with(identity, encryption_key, expires_at - 1)),
        TxError::Registry(crate::registry::Error::ReportDataMismatch)
    );
    // Expiry out of range, whatever the quote.
    let e = rejected(testkit::register_call(
        &platform,
        &ks[0].public().address(),
        &g.hash(),
        exp + 1,
        1_000,
    ));
    assert!(
        matches!(
            e,
            TxError::Registry(crate::registry::Error::BadExpiry { .. })
        ),
        "{e}"
    );
    assert_eq!(e.code(), 1127);
    assert!(matches!(
        rejected(testkit::register_call(
            &platform,
            &ks[0].public().address(),
            &g.hash(),
            1,
            1_000
        )),
        TxError::Registry(crate::registry::Error::BadExpiry { .. })
    ));
    // Signed by an untrusted root.
    let (rogue, _) = registration("rogue", [5; 32]);
    let e = rejected(testkit::register_call(
        &rogue,
        &ks[0].public().address(),
        &g.hash(),
        exp,
        1_000,
    ));
    assert!(
        matches!(
            e,
            TxError::Registry(crate::registry::Error::QuoteRejected(
                proctor_tee::QuoteError::UntrustedRoot { .. }
            ))
        ),
        "{e}"
    );
    // Measurement not allowed.
    let g2 = testkit::genesis(
        &ks,
        1_000_000,
        testkit::params(Some(root_pk), Hash([1; 32])),
    );
    let err = rejected_registration(&g2, &ks, &platform);
    assert!(
        matches!(
            err,
            TxError::Registry(crate::registry::Error::MeasurementNotAllowed(_))
        ),
        "{err}"
    );
    // Sim quotes on a chain that forbids them.
    let g3 = testkit::genesis(&ks, 1_000_000, testkit::params(None, sim_measurement()));
    let err = rejected_registration(&g3, &ks, &platform);
    assert!(
        matches!(
            err,
            TxError::Registry(crate::registry::Error::QuoteRejected(
                proctor_tee::QuoteError::SimNotAllowed
            ))
        ),
        "{err}"
    );
}

/// Registers `platform`'s enclave on the chain of `g` (quote correctly bound)
/// and returns why the block was refused.
fn rejected_registration(
    g: &Genesis,
    ks: &[proctor_primitives::Keypair],
    platform: &SimPlatform,
) -> TxError {
    let call = testkit::register_call(
        platform,
        &ks[0].public().address(),
        &g.hash(),
        1 + g.params.registration_blocks,
        1_000,
    );
    let tx = Transaction {
        chain: g.hash(),
        signer: ks[0].public(),
        nonce: 0,
        fee: Amount(1),
        call,
    }
    .sign(&ks[0]);
    match State::genesis(g)
        .unwrap()
        .apply_block(&env(1, ks[1].public().address()), &[tx])
    {
        Err(BlockError::Tx { error, .. }) => error,
        other => panic!("expected a rejected transaction, got {other:?}"),
    }
}

/// A real SGX quote through the chain's registration path: it verifies up to
/// the binding, which it cannot satisfy (its report data binds another key).
#[test]
fn real_dcap_quote_registration_checks_binding_and_allowlist() {
    use proctor_tee::quote::{DcapPolicy, DcapQuote, INTEL_SGX_ROOT_CA_DER};
    let sgx: &[u8] = include_bytes!("../../../../tee/tests/fixtures/sgx_quote");
    let collateral: &[u8] =
        include_bytes!("../../../../tee/tests/fixtures/sgx_quote_collateral.json");
    let ks = keys(2);
    let mrenclave = Hash(sgx[112..144].try_into().unwrap());
    let mut params = testkit::params(None, mrenclave);
    params.dcap = Some(DcapPolicy {
        root_ca_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
        accepted_tcb_statuses: vec!["ConfigurationAndSWHardeningNeeded".into()],
        rejected_advisories: vec![],
        allow_debug: false,
    });
    let register = |g: &Genesis, at_ms: u64| {
        let tx = Transaction {
            chain: g.hash(),
            signer: ks[0].public(),
            nonce: 0,
            fee: Amount(1),
            call: Call::Registry(crate::registry::Call::RegisterEnclave {
                identity: ks[0].public(),
                encryption_key: proctor_primitives::EncryptionKey([0; 32]),
                expires_at: 100,
                quote: proctor_tee::Quote::Dcap(DcapQuote {
                    quote: sgx.to_vec(),
                    collateral: collateral.to_vec(),
                }),
                stake: Amount(1_000),
            }),
        }
        .sign(&ks[0]);
        let env = BlockEnv {
            height: 1,
            timestamp: at_ms,
            miner: ks[1].public().address(),
        };
        match State::genesis(g).unwrap().apply_block(&env, &[tx]) {
            Err(BlockError::Tx { error, .. }) => error,
            other => panic!("expected a rejection, got {other:?}"),
        }
    };
    // 2025-07-01: the collateral is valid, the quote verifies, the binding does not.
    let g = testkit::genesis(&ks, 1_000_000, params.clone());
    assert_eq!(
        register(&g, 1_751_328_000_000),
        TxError::Registry(crate::registry::Error::ReportDataMismatch)
    );
    // The same quote at a block time after the collateral expired.
    let e = register(&g, 1_754_006_400_000);
    assert!(
        matches!(
            e,
            TxError::Registry(crate::registry::Error::QuoteRejected(
                proctor_tee::QuoteError::CollateralExpired(_)
            ))
        ),
        "{e}"
    );
    assert_eq!(e.code(), 1109);
    // A chain whose allowlist does not hold its MRENCLAVE.
    params.allowed_measurements = vec![Hash([7; 32])];
    let g = testkit::genesis(&ks, 1_000_000, params);
    assert_eq!(
        register(&g, 1_751_328_000_000),
        TxError::Registry(crate::registry::Error::MeasurementNotAllowed(mrenclave))
    );
}

/// Register with a stake, renew, deregister, unbond, withdraw: each step's
/// rules, and supply (balances plus stakes) conserved throughout.
#[test]
fn registration_lifecycle_with_stake_and_unbonding() {
    let ks = keys(3);
    let (platform, root_pk) = registration("life", [8; 32]);
    let g = testkit::genesis(
        &ks,
        1_000_000,
        testkit::params(Some(root_pk), sim_measurement()),
    );
    let p = &g.params;
    let id = platform.identity();
    let miner = ks[2].public().address();
    let op = ks[0].public().address();
    let mut state = State::genesis(&g).unwrap();
    let height = std::cell::Cell::new(0u64);
    let mut nonces = [0u64; 3];
    let mut step = |state: &mut State, who: usize, call: Call| -> Result<Vec<Event>, TxError> {
        height.set(height.get() + 1);
        let height = height.get();
        let tx = Transaction {
            chain: g.hash(),
            signer: ks[who].public(),
            nonce: nonces[who],
            fee: Amount(1),
            call,
        }
        .sign(&ks[who]);
        let before = state.total_supply();
        match state.apply_block(&env(height, miner), &[tx]) {
            Ok(a) => {
                assert_eq!(
                    a.state.total_supply(),
                    before + p.block_reward.0,
                    "supply conserved at height {height}"
                );
                nonces[who] += 1;
                *state = a.state;
                Ok(a.receipts[0].events.clone())
            }
            Err(BlockError::Tx { error, .. }) => Err(error),
            Err(e) => panic!("{e}"),
        }
    };
    // First registration valid until 5,000, the renewal until 6,000.
    let reg = |stake: u128| {
        testkit::register_call(
            &platform,
            &ks[0].public().address(),
            &g.hash(),
            5_000,
            stake,
        )
    };
    let renew = testkit::register_call(&platform, &ks[0].public().address(), &g.hash(), 6_000, 0);

    let e = step(&mut state, 0, reg(p.min_stake.0 - 1)).unwrap_err();
    assert_eq!(
        e,
        TxError::Registry(crate::registry::Error::InsufficientStake {
            min: p.min_stake,
            got: Amount(p.min_stake.0 - 1)
        })
    );
    assert_eq!(e.code(), 1120);
    step(&mut state, 0, reg(p.min_stake.0)).unwrap();
    let rec = state.enclave(&id).unwrap();
    assert_eq!(rec.stake, p.min_stake);
    assert_eq!(
        state.account(&op).balance.0,
        1_000_000 - 1 - p.min_stake.0,
        "stake and fee left the balance"
    );

    // Renewal: same operator, no extra stake needed, expiry moves on.
    step(&mut state, 0, renew.clone()).unwrap();
    let renewed = state.enclave(&id).unwrap();
    assert_eq!(renewed.registered_at, rec.registered_at);
    assert!(renewed.expires_at > rec.expires_at);
    // Another operator, even with a quote the enclave made for it, cannot
    // take the registration over.
    let for_other = testkit::register_call(
        &platform,
        &ks[1].public().address(),
        &g.hash(),
        5_000,
        p.min_stake.0,
    );
    assert_eq!(
        step(&mut state, 1, for_other).unwrap_err(),
        TxError::Registry(crate::registry::Error::EnclaveOwnedByOther)
    );

    // Withdrawing while bonded, deregistering someone else's enclave: refused.
    assert_eq!(
        step(
            &mut state,
            0,
            Call::Registry(crate::registry::Call::WithdrawStake { identity: id })
        )
        .unwrap_err(),
        TxError::Registry(crate::registry::Error::NotDeregistered)
    );
    assert_eq!(
        step(
            &mut state,
            1,
            Call::Registry(crate::registry::Call::DeregisterEnclave { identity: id })
        )
        .unwrap_err(),
        TxError::Registry(crate::registry::Error::NotOperator)
    );
    let events = step(
        &mut state,
        0,
        Call::Registry(crate::registry::Call::DeregisterEnclave { identity: id }),
    )
    .unwrap();
    let until = state.enclave(&id).unwrap().unbonding_until.unwrap();
    assert!(events.contains(&Event::Registry(
        crate::registry::Event::EnclaveDeregistered {
            identity: id,
            unbonding_until: until
        }
    )));
    assert_eq!(
        step(
            &mut state,
            0,
            Call::Registry(crate::registry::Call::DeregisterEnclave { identity: id })
        )
        .unwrap_err(),
        TxError::Registry(crate::registry::Error::AlreadyUnbonding)
    );
    assert_eq!(
        step(&mut state, 0, reg(0)).unwrap_err(),
        TxError::Registry(crate::registry::Error::AlreadyUnbonding)
    );
    assert_eq!(
        step(
            &mut state,
            0,
            Call::Registry(crate::registry::Call::WithdrawStake { identity: id })
        )
        .unwrap_err(),
        TxError::Registry(crate::registry::Error::StillUnbonding { until })
    );

    // After the unbonding period the stake comes back and the record is gone.
    while height.get() <= until {
        step(
            &mut state,
            1,
            Call::Accounts(crate::accounts::Call::Transfer {
                to: miner,
                amount: Amount(1),
            }),
        )
        .unwrap();
    }
    let balance = state.account(&op).balance.0;
    step(
        &mut state,
        0,
        Call::Registry(crate::registry::Call::WithdrawStake { identity: id }),
    )
    .unwrap();
    assert_eq!(state.account(&op).balance.0, balance - 1 + p.min_stake.0);
    assert!(state.enclave(&id).is_none());
    // Its registration stays readable, without stake, for its quote.
    let retired = state.retired_enclave(&id).unwrap();
    assert_eq!((retired.identity, retired.stake), (id, Amount::ZERO));
    assert_eq!(
        step(
            &mut state,
            0,
            Call::Registry(crate::registry::Call::WithdrawStake { identity: id })
        )
        .unwrap_err(),
        TxError::Registry(crate::registry::Error::EnclaveNotFound(id))
    );
}
