use crate::testkit::{self, keys, transfer};
use crate::*;
use proctor_primitives::{Address, Amount, Hash, codec};
use proctor_tee::Platform;
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
use proptest::prelude::*;

pub(crate) fn env(height: u64, miner: Address) -> BlockEnv {
    BlockEnv {
        height,
        timestamp: 1_700_000_000_000 + height * 1000,
        miner,
    }
}

pub(crate) fn chain(n: usize) -> (Vec<proctor_primitives::Keypair>, Genesis, State) {
    let ks = keys(n);
    let g = testkit::genesis(&ks, 1_000_000, testkit::params(None, sim_measurement()));
    let s = State::genesis(&g).unwrap();
    (ks, g, s)
}

#[test]
fn replayed_and_out_of_order_nonces_rejected() {
    let (ks, g, s) = chain(2);
    let m = ks[1].public().address();
    let t0 = transfer(&g.hash(), &ks[0], 0, &ks[1], 1, 1);
    let a = s
        .apply_block(&env(1, m), std::slice::from_ref(&t0))
        .unwrap();
    let err = a
        .state
        .apply_block(&env(2, m), std::slice::from_ref(&t0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            BlockError::Tx {
                error: TxError::NonceReplayed {
                    expected: 1,
                    got: 0
                },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(a.state.check_tx(&t0, 0).unwrap_err().code(), 1003);
    let t2 = transfer(&g.hash(), &ks[0], 2, &ks[1], 1, 1);
    let err = a
        .state
        .apply_block(&env(2, m), std::slice::from_ref(&t2))
        .unwrap_err();
    assert!(matches!(
        err,
        BlockError::Tx {
            error: TxError::NonceGap { .. },
            ..
        }
    ));
    // In the mempool a nonce one ahead is fine when one is pending.
    assert!(a.state.check_tx(&t2, 1).is_ok());
    // Same tx twice in one block: the second is a replay.
    let err = s.apply_block(&env(1, m), &[t0.clone(), t0]).unwrap_err();
    assert!(matches!(
        err,
        BlockError::Tx {
            index: 1,
            error: TxError::NonceReplayed { .. },
            ..
        }
    ));
}

#[test]
fn apply_verified_equals_apply_block_and_only_skips_signatures() {
    let (ks, g, s) = chain(3);
    let m = ks[2].public().address();
    let txs = vec![
        transfer(&g.hash(), &ks[0], 0, &ks[1], 5, 1),
        transfer(&g.hash(), &ks[0], 1, &ks[2], 7, 1),
        transfer(&g.hash(), &ks[1], 0, &ks[0], 9, 1),
    ];
    let checked = s.apply_block(&env(1, m), &txs).unwrap();
    let trusted = s.apply_verified(&env(1, m), &txs).unwrap();
    assert_eq!(checked.state.root(), trusted.state.root());
    assert_eq!(checked.receipts, trusted.receipts);
    assert_eq!(checked.changes, trusted.changes);
    // Every other rule still holds: a replayed nonce fails the same way.
    let replay = [txs[0].clone(), txs[0].clone()];
    assert_eq!(
        s.apply_verified(&env(1, m), &replay).unwrap_err(),
        s.apply_block(&env(1, m), &replay).unwrap_err()
    );
    // A forged signature is the one thing it does not see.
    let mut forged = txs[0].clone();
    forged.tx.fee = Amount(2);
    assert!(
        s.apply_block(&env(1, m), std::slice::from_ref(&forged))
            .is_err()
    );
    assert!(s.apply_verified(&env(1, m), &[forged]).is_ok());
}

#[test]
fn bad_signature_wrong_chain_and_low_fee_rejected() {
    let (ks, g, s) = chain(2);
    let mut tx = transfer(&g.hash(), &ks[0], 0, &ks[1], 5, 1);
    tx.tx.fee = Amount(2); // signature no longer matches
    assert_eq!(s.check_tx(&tx, 0), Err(TxError::BadSignature));
    let err = s
        .apply_block(&env(1, ks[1].public().address()), &[tx])
        .unwrap_err();
    assert!(matches!(
        err,
        BlockError::Tx {
            error: TxError::BadSignature,
            ..
        }
    ));
    let other = transfer(&Hash([1; 32]), &ks[0], 0, &ks[1], 5, 1);
    assert!(matches!(
        s.check_tx(&other, 0),
        Err(TxError::WrongChain { .. })
    ));
    let cheap = transfer(&g.hash(), &ks[0], 0, &ks[1], 5, 0);
    assert!(matches!(
        s.check_tx(&cheap, 0),
        Err(TxError::FeeTooLow { .. })
    ));
}

#[test]
fn account_proofs_verify_against_root() {
    let (ks, _, s) = chain(5);
    let (value, proof) = s.prove_account(&ks[3].public().address());
    assert!(proof.verify(
        &s.root(),
        &account_key(&ks[3].public().address()),
        value.as_deref()
    ));
    let nobody = Address([7; 20]);
    let (value, proof) = s.prove_account(&nobody);
    assert!(value.is_none());
    assert!(proof.verify(&s.root(), &account_key(&nobody), None));
}

#[test]
fn state_rebuilt_from_changes_has_same_root() {
    let (ks, g, s) = chain(4);
    let m = ks[3].public().address();
    let a = s
        .apply_block(&env(1, m), &[transfer(&g.hash(), &ks[0], 0, &ks[1], 5, 1)])
        .unwrap();
    let mut entries: std::collections::BTreeMap<Hash, Vec<u8>> = s_entries(&s);
    for (k, v) in &a.changes {
        match v {
            Some(v) => entries.insert(*k, v.clone()),
            None => entries.remove(k),
        };
    }
    assert_eq!(State::from_entries(&g, entries).root(), a.state.root());
}

fn s_entries(s: &State) -> std::collections::BTreeMap<Hash, Vec<u8>> {
    s.entries().into_iter().collect()
}

/// Wire-format lock: these encodings must change only deliberately.
#[test]
fn encoding_fixtures() {
    let ks = keys(2);
    let tx = transfer(&Hash([3; 32]), &ks[0], 7, &ks[1], 1000, 2);
    let bytes = codec::encode(&tx.tx);
    // chain(32) signer(32) nonce(8) fee(16) module(1) call(1) to(20) amount(16)
    assert_eq!(bytes.len(), 32 + 32 + 8 + 16 + 1 + 1 + 20 + 16);
    assert_eq!(&bytes[..32], &[3; 32]);
    assert_eq!(&bytes[64..72], &7u64.to_le_bytes());
    assert_eq!(bytes[88], 0, "accounts is module 0");
    assert_eq!(bytes[89], 0, "Transfer is the accounts' call 0");
    let t = Template {
        parent: Hash([1; 32]),
        height: 2,
        timestamp: 3,
        state_root: Hash([4; 32]),
        tx_root: Hash([5; 32]),
        difficulty: 6,
        miner: Address([7; 20]),
    };
    let tb = codec::encode(&t);
    assert_eq!(tb.len(), 32 + 8 + 8 + 32 + 32 + 8 + 20);
    assert_eq!(&tb[32..40], &2u64.to_le_bytes());
}

/// Round trip of the remaining wire and storage types.
#[test]
fn wire_types_roundtrip() {
    fn rt<T: borsh::BorshSerialize + borsh::BorshDeserialize + PartialEq + std::fmt::Debug>(v: &T) {
        let back: T = codec::decode("value", &codec::encode(v)).unwrap();
        assert_eq!(&back, v);
    }
    let (platform, root_pk) = registration("rt", [6; 32]);
    let ks = keys(1);
    let g = testkit::genesis(&ks, 5, testkit::params(Some(root_pk), sim_measurement()));
    let quote = platform.quote(&[1; 64]).unwrap();
    rt(&quote);
    let mut g2 = g.clone();
    g2.enclaves.push(GenesisEnclave {
        operator: ks[0].public().address(),
        identity: platform.identity(),
        encryption_key: platform.encryption_key(),
        expires_at: 9,
        quote: quote.clone(),
        stake: Amount(5),
    });
    rt(&g2);
    assert_eq!(g2.base_hash(), g.base_hash());
    assert_ne!(g2.hash(), g.hash(), "the chain id covers genesis enclaves");
    let mut g3 = g2.clone();
    g3.enclaves[0].stake = Amount(6);
    assert_ne!(g3.hash(), g2.hash(), "and their stakes");
    let json: Genesis = serde_json::from_str(&serde_json::to_string(&g2).unwrap()).unwrap();
    assert_eq!(json, g2);
    rt(&Account {
        balance: Amount(3),
        nonce: 4,
    });
    rt(&EnclaveRecord {
        identity: platform.identity(),
        encryption_key: platform.encryption_key(),
        operator: Address([1; 20]),
        measurement: Hash([2; 32]),
        registered_at: 3,
        expires_at: 4,
        stake: Amount(5),
        unbonding_until: Some(9),
        registration_tx: Some(Hash([6; 32])),
    });
    let p = PouwProof {
        enclave: platform.identity(),
        template: Hash([1; 32]),
        module: Hash([2; 32]),
        job: Some(7),
        input: Hash([8; 32]),
        slice: 3,
        counter: 4,
        instructions: 12,
        draw: u128::MAX,
        checker_sig: platform.sign(b"a"),
        work_sig: platform.sign(b"b"),
    };
    rt(&p);
    rt(&Header {
        template: Template {
            parent: Hash::ZERO,
            height: 1,
            timestamp: 2,
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            difficulty: 3,
            miner: Address([0; 20]),
        },
        pouw: Some(p),
    });
    rt(&Record::Params(Box::new(g.params.clone())));
}

fn arb_tx_batch() -> impl Strategy<Value = Vec<(usize, usize, u128, u128)>> {
    proptest::collection::vec((0usize..4, 0usize..4, 0u128..400_000, 1u128..50), 0..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every transaction kind conserves total supply; only the block reward mints.
    #[test]
    fn supply_is_conserved(batch in arb_tx_batch()) {
        let (ks, g, s) = chain(4);
        let miner = ks[0].public().address();
        let before = s.total_supply();
        let mut nonces = [0u64; 4];
        let mut state = s;
        let mut height = 1;
        for (from, to, amount, fee) in batch {
            let tx = transfer(&g.hash(), &ks[from], nonces[from], &ks[to], amount, fee);
            match state.apply_block(&env(height, miner), &[tx]) {
                Ok(a) => {
                    nonces[from] += 1;
                    state = a.state;
                    height += 1;
                }
                Err(BlockError::Tx { error: TxError::InsufficientBalance { .. }, .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
        let minted = (height as u128 - 1) * g.params.block_reward.0;
        prop_assert_eq!(state.total_supply(), before + minted);
    }

    #[test]
    fn transaction_roundtrip(nonce in any::<u64>(), fee in any::<u128>(), amount in any::<u128>(), to in any::<[u8; 20]>()) {
        let ks = keys(1);
        let stx = Transaction { chain: Hash([9; 32]), signer: ks[0].public(), nonce, fee: Amount(fee), call: Call::Accounts(crate::accounts::Call::Transfer { to: Address(to), amount: Amount(amount) }) }.sign(&ks[0]);
        let back: SignedTransaction = codec::decode("tx", &codec::encode(&stx)).unwrap();
        prop_assert_eq!(&back, &stx);
        let block = Block { header: Header { template: Template { parent: Hash([1; 32]), height: nonce, timestamp: nonce, state_root: Hash::ZERO, tx_root: tx_root(std::slice::from_ref(&stx)), difficulty: 5, miner: Address(to) }, pouw: None }, txs: vec![stx] };
        let back: Block = codec::decode("block", &codec::encode(&block)).unwrap();
        prop_assert_eq!(back.hash(), block.hash());
        let r = Receipt { tx: Hash([2; 32]), height: nonce, index: 3, fee: Amount(fee), events: vec![Event::Accounts(crate::accounts::Event::Transfer { from: Address(to), to: Address(to), amount: Amount(amount) })] };
        let back: Receipt = codec::decode("receipt", &codec::encode(&r)).unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = codec::decode::<SignedTransaction>("tx", &bytes);
        let _ = codec::decode::<Block>("block", &bytes);
    }
}

/// A transaction padded past [`MAX_TX_BYTES`] is refused by size before any
/// other check, alone (mempool) and in a block; a block of transactions each
/// under the limit but over [`MAX_BLOCK_BYTES`] in all is refused whole.
#[test]
fn byte_limits_on_transactions_and_blocks() {
    let ks = keys(2);
    let g = testkit::genesis(&ks, 1_000_000, testkit::params(None, sim_measurement()));
    let s = State::genesis(&g).unwrap();
    let padded = |hashes: usize, nonce: u64| {
        Transaction {
            chain: g.hash(),
            signer: ks[0].public(),
            nonce,
            fee: Amount(1),
            call: Call::Governance(crate::governance::Call::UpdateMeasurements {
                add: vec![Hash([1; 32]); hashes],
                retire: vec![],
            }),
        }
        .sign(&ks[0])
    };
    let big = padded(MAX_TX_BYTES / 32 + 1, 0);
    assert!(big.encoded_len() > MAX_TX_BYTES);
    let e = s.check_tx(&big, 0).unwrap_err();
    assert_eq!(
        e,
        TxError::TooLarge {
            size: big.encoded_len(),
            max: MAX_TX_BYTES
        }
    );
    assert_eq!(e.code(), 1008);
    let e = s
        .apply_block(&env(1, ks[1].public().address()), &[big])
        .unwrap_err();
    assert!(
        matches!(
            e,
            BlockError::Tx {
                index: 0,
                error: TxError::TooLarge { .. },
                ..
            }
        ),
        "{e}"
    );

    let near = MAX_TX_BYTES / 32 - 16;
    let many: Vec<_> = (0..(MAX_BLOCK_BYTES / MAX_TX_BYTES + 2) as u64)
        .map(|n| padded(near, n))
        .collect();
    assert!(many.iter().all(|t| t.encoded_len() <= MAX_TX_BYTES));
    let e = s
        .apply_block(&env(1, ks[1].public().address()), &many)
        .unwrap_err();
    assert!(
        matches!(
            e,
            BlockError::TooLarge {
                max: MAX_BLOCK_BYTES,
                ..
            }
        ),
        "{e}"
    );
}

/// A genesis whose parameters would break a later block is refused up
/// front, each with the reason: fee shares over 100%, a slash over the
/// stake, zero-length periods and limits.
#[test]
fn genesis_parameters_are_checked_for_range() {
    let ks = keys(1);
    let base = testkit::params(None, sim_measurement());
    assert!(State::genesis(&testkit::genesis(&ks, 5, base.clone())).is_ok());
    type Breaker = fn(&mut ChainParams);
    let cases: [(Breaker, &str); 13] = [
        (|p| p.market.fees.fee_bps = 10_001, "fee_bps"),
        (
            |p| {
                p.market.fees.provider_bps = 6_000;
                p.market.fees.app_bps = 5_000
            },
            "provider_bps + app_bps",
        ),
        (|p| p.market.slash_wrong_bps = 10_001, "slash_wrong_bps"),
        (|p| p.market.slash_late_bps = u32::MAX, "slash_late_bps"),
        (|p| p.market.max_replicas = 0, "max_replicas"),
        (|p| p.max_block_txs = 0, "max_block_txs"),
        (|p| p.registration_blocks = 0, "registration_blocks"),
        (
            |p| p.min_difficulty = p.initial_difficulty + 1,
            "min_difficulty",
        ),
        (|p| p.target_block_ms = 0, "target_block_ms"),
        (|p| p.unbonding_blocks = u64::MAX, "unbonding_blocks"),
        (|p| p.contracts.era_blocks = 0, "era_blocks"),
        (
            |p| p.contracts.rotation_timeout_blocks = 0,
            "rotation_timeout_blocks",
        ),
        (
            |p| p.contracts.slash_unresponsive_bps = 10_001,
            "slash_unresponsive_bps",
        ),
    ];
    for (breaker, name) in cases {
        let mut p = base.clone();
        breaker(&mut p);
        match State::genesis(&testkit::genesis(&ks, 5, p)) {
            Err(GenesisError::BadParam(why)) => assert!(why.contains(name), "{name}: {why}"),
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
}

pub(crate) fn registration(
    dir: &str,
    root: [u8; 32],
) -> (SimPlatform, proctor_primitives::PublicKey) {
    let d = std::env::temp_dir().join(format!("proctor-state-{dir}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let p = SimPlatform::open(&d, SimAttestationRoot::from_secret(&root)).unwrap();
    let pk = SimAttestationRoot::from_secret(&root).public();
    (p, pk)
}
