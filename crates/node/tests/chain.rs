//! Block import: a block sealed by one node is fully validated and accepted by
//! another, and tampered copies are refused.

mod common;

use proctor_node::chain::{Chain, ChainError};
use proctor_primitives::Hash;
use proctor_state::testkit::transfer;

#[test]
fn a_block_sealed_by_one_node_imports_on_another() {
    let mut tc = common::test_chain("import");
    let mut enclave = tc.enclave.take().unwrap();
    let mut a = Chain::open(&tc.dir.join("a.redb"), tc.genesis.clone(), 100).unwrap();
    let mut b = Chain::open(&tc.dir.join("b.redb"), tc.genesis.clone(), 100).unwrap();
    assert_eq!(a.head(), b.head());

    let gh = tc.genesis.hash();
    let now = tc.genesis.timestamp + 1_000;
    a.submit_tx(transfer(&gh, &tc.keys[1], 0, &tc.keys[2], 777, 3), now)
        .unwrap();
    let work = a.work(tc.keys[0].public().address(), now).unwrap();
    common::load(&mut enclave);
    let proof = common::win(&mut enclave, &work);
    let hash = a
        .submit_work(work.template_hash, proof.clone(), now)
        .unwrap();
    // The same proof cannot seal a second block.
    assert!(matches!(
        a.submit_work(work.template_hash, proof, now),
        Err(ChainError::StaleTemplate(_))
    ));

    let block = a.store().block(&hash).unwrap().unwrap();
    assert_eq!(block.txs.len(), 1);

    // Tampered copies fail full validation on the other node.
    let mut forged = block.clone();
    forged.txs[0] = transfer(&gh, &tc.keys[1], 0, &tc.keys[2], 778, 3);
    assert!(matches!(
        b.import_block(forged, now),
        Err(ChainError::Consensus(_))
    ));
    let mut forged = block.clone();
    forged.header.template.miner = tc.keys[2].public().address();
    assert!(matches!(
        b.import_block(forged, now),
        Err(ChainError::Consensus(_))
    ));

    b.import_block(block, now).unwrap();
    assert_eq!(a.head(), b.head());
    let recipient = tc.keys[2].public().address();
    assert_eq!(
        b.state().account(&recipient).balance.0,
        1_000_000_000_000 + 777
    );
    assert_ne!(a.head().hash, Hash::ZERO);
}

#[test]
fn a_transaction_invalidated_by_another_is_dropped_with_its_reason() {
    use proctor_primitives::Amount;
    use proctor_state::Transaction;
    use proctor_tee::sim::{SimAttestationRoot, SimPlatform};

    let tc = common::test_chain("dropped");
    let mut chain = Chain::open(&tc.dir.join("c.redb"), tc.genesis.clone(), 100).unwrap();
    let gh = tc.genesis.hash();
    let p = SimPlatform::open(
        &tc.dir.join("new"),
        SimAttestationRoot::from_secret(&[5; 32]),
    )
    .unwrap();
    // Two operators race to register the same enclave (it quoted for each):
    // each is valid alone.
    let reg = |who: usize| {
        let operator = tc.keys[who].public().address();
        Transaction {
            chain: gh,
            signer: tc.keys[who].public(),
            nonce: 0,
            fee: Amount(1),
            call: proctor_state::testkit::register_call(&p, &operator, &gh, 100, 1_000),
        }
        .sign(&tc.keys[who])
    };
    let now = tc.genesis.timestamp + 1_000;
    let (first, second) = (reg(1), reg(2));
    chain.submit_tx(first.clone(), now).unwrap();
    chain.submit_tx(second.clone(), now).unwrap();
    // Building the next block keeps one and drops the other, remembering why.
    chain.work(tc.keys[0].public().address(), now).unwrap();
    let (kept, lost) = if chain.dropped(&second.hash()).is_some() {
        (first, second)
    } else {
        (second, first)
    };
    let (code, reason) = chain.dropped(&lost.hash()).expect("the loser is dropped");
    assert_eq!(code, 1104);
    assert!(reason.contains("another operator"), "{reason}");
    assert!(chain.dropped(&kept.hash()).is_none());
}
