//! Fork choice across nodes: two chains from one genesis mine competing
//! branches; the lighter one switches to the heavier, keeping receipts, state
//! and mempool consistent, durably; reorganizations past the finality depth
//! are refused.

mod common;

use common::{load, mine};
use proctor_node::chain::{Chain, ChainError, Imported};
use proctor_primitives::Hash;
use proctor_state::testkit::transfer;

/// Two nodes (chains `a` and `b`) of one test chain, and its enclave, loaded.
fn two_nodes(
    mut tc: common::TestChain,
) -> (common::TestChain, proctor_enclave::Enclave, Chain, Chain) {
    let mut enclave = tc.enclave.take().unwrap();
    load(&mut enclave);
    let a = Chain::open(&tc.dir.join("a.redb"), tc.genesis.clone(), 100).unwrap();
    let b = Chain::open(&tc.dir.join("b.redb"), tc.genesis.clone(), 100).unwrap();
    (tc, enclave, a, b)
}

#[test]
fn the_lighter_branch_switches_to_the_heavier_one() {
    let (tc, mut enclave, mut a, mut b) = two_nodes(common::test_chain("reorg"));
    let t0 = tc.genesis.timestamp;
    let (ma, mb) = (tc.keys[0].public().address(), tc.keys[2].public().address());

    // A: one block with a transfer. B: two blocks, a heavier branch.
    let tx = transfer(&tc.genesis.hash(), &tc.keys[1], 0, &tc.keys[2], 777, 3);
    a.submit_tx(tx.clone(), t0 + 1_000).unwrap();
    let a1 = mine(&mut a, &mut enclave, ma, t0 + 1_000);
    assert!(a.store().tx_location(&tx.hash()).unwrap().is_some());
    let b1 = mine(&mut b, &mut enclave, mb, t0 + 1_000);
    let b2 = mine(&mut b, &mut enclave, mb, t0 + 2_000);
    assert_ne!(a1, b1);

    // A learns B's blocks: the first is a tie or lighter, the second wins.
    let first = a
        .import_block(b.store().block(&b1).unwrap().unwrap(), t0 + 3_000)
        .unwrap();
    assert!(
        matches!(first, Imported::Side(_) | Imported::Reorg { .. }),
        "{first:?}"
    );
    let second = a
        .import_block(b.store().block(&b2).unwrap().unwrap(), t0 + 3_000)
        .unwrap();
    if let Imported::Reorg {
        depth, returned, ..
    } = &second
    {
        assert_eq!((*depth, returned.len()), (1, 1));
    } else {
        assert_eq!(second, Imported::Extended(b2), "reorganized at b1 already");
    }
    assert_eq!(a.head(), b.head(), "same tip and state root");
    // The transfer left with a1: no receipt, back in the mempool.
    assert!(a.store().tx_location(&tx.hash()).unwrap().is_none());
    assert!(a.is_pending(&tx.hash()));
    assert_eq!(a.store().hash_at(2).unwrap(), Some(b2));
    assert_eq!(
        a.import_block(b.store().block(&b2).unwrap().unwrap(), t0 + 3_000)
            .unwrap(),
        Imported::Known(b2)
    );

    // The switch is durable: a restart finds the same tip and state root.
    drop(a);
    let mut a = Chain::open(&tc.dir.join("a.redb"), tc.genesis.clone(), 100).unwrap();
    assert_eq!(a.head(), b.head());

    // The returned transfer is mined again on the new branch, and B follows.
    a.submit_tx(tx.clone(), t0 + 3_000).unwrap();
    let a3 = mine(&mut a, &mut enclave, ma, t0 + 3_000);
    assert!(a.store().tx_location(&tx.hash()).unwrap().is_some());
    assert_eq!(
        b.import_block(a.store().block(&a3).unwrap().unwrap(), t0 + 4_000)
            .unwrap(),
        Imported::Extended(a3)
    );
    assert_eq!(a.head(), b.head());
    // Total supply: genesis plus three rewards, whichever branch won.
    let r = tc.genesis.params.block_reward.0;
    let g = tc
        .genesis
        .allocations
        .iter()
        .map(|x| x.amount.0)
        .sum::<u128>();
    assert_eq!(b.state().total_supply(), g + 3 * r);
}

#[test]
fn a_reorg_returns_transactions_ahead_of_the_pending_ones_of_the_same_account() {
    let (tc, mut enclave, mut a, mut b) = two_nodes(common::test_chain("reorg-pending"));
    let t0 = tc.genesis.timestamp;
    let (ma, mb) = (tc.keys[0].public().address(), tc.keys[2].public().address());
    let g = tc.genesis.hash();
    // A mines nonce 0 of keys[1]; nonces 1 and 2 then wait in A's mempool.
    let tx0 = transfer(&g, &tc.keys[1], 0, &tc.keys[2], 10, 3);
    a.submit_tx(tx0.clone(), t0 + 1_000).unwrap();
    mine(&mut a, &mut enclave, ma, t0 + 1_000);
    let later: Vec<_> = (1..=2)
        .map(|n| transfer(&g, &tc.keys[1], n, &tc.keys[2], 10, 3))
        .collect();
    for t in &later {
        a.submit_tx(t.clone(), t0 + 1_500).unwrap();
    }
    // B's heavier branch never saw any of them: A switches, and nonce 0 goes
    // back in front of 1 and 2 instead of being refused as "taken".
    let b1 = mine(&mut b, &mut enclave, mb, t0 + 1_000);
    let b2 = mine(&mut b, &mut enclave, mb, t0 + 2_000);
    for h in [b1, b2] {
        let _ = a.import_block(b.store().block(&h).unwrap().unwrap(), t0 + 3_000);
    }
    assert_eq!(a.head(), b.head());
    for t in std::iter::once(&tx0).chain(&later) {
        assert!(
            a.is_pending(&t.hash()),
            "nonce {} pending again",
            t.tx.nonce
        );
    }
    // And all three are mined, in order, in A's next block.
    mine(&mut a, &mut enclave, ma, t0 + 4_000);
    for t in std::iter::once(&tx0).chain(&later) {
        assert!(a.store().tx_location(&t.hash()).unwrap().is_some());
    }
}

#[test]
fn reorganizations_past_the_finality_depth_are_refused() {
    let (tc, mut enclave, mut a, mut b) =
        two_nodes(common::test_chain_with("deep", |p| p.finality_depth = 1));
    let t0 = tc.genesis.timestamp;
    let (ma, mb) = (tc.keys[0].public().address(), tc.keys[2].public().address());
    for i in 1..=2 {
        mine(&mut a, &mut enclave, ma, t0 + 1_000 * i);
    }
    let branch: Vec<Hash> = (1..=3)
        .map(|i| mine(&mut b, &mut enclave, mb, t0 + 1_000 * i))
        .collect();
    let tip = a.head();
    let mut refused = false;
    for h in branch {
        match a.import_block(b.store().block(&h).unwrap().unwrap(), t0 + 5_000) {
            Ok(Imported::Side(_)) if !refused => {}
            Err(ChainError::ReorgTooDeep { depth: 2, limit: 1 }) if !refused => refused = true,
            // A refused block is not stored, so its descendants have no parent here.
            Err(ChainError::UnknownParent(_)) if refused => {}
            other => panic!("unexpected {other:?} (refused so far: {refused})"),
        }
    }
    assert!(
        refused,
        "the heavier branch needs a 2-block reorg, past the finality depth of 1"
    );
    assert_eq!(a.head(), tip, "the chain did not move");
}

#[test]
fn blocks_before_their_parent_wait_in_the_orphan_pool_then_connect() {
    let (tc, mut enclave, mut a, mut b) = two_nodes(common::test_chain("orphan"));
    let t0 = tc.genesis.timestamp;
    let m = tc.keys[0].public().address();
    let hashes: Vec<Hash> = (1..=3)
        .map(|i| mine(&mut b, &mut enclave, m, t0 + 1_000 * i))
        .collect();
    let block = |h: &Hash| b.store().block(h).unwrap().unwrap();
    // Blocks 3 and 2 arrive first: each is refused with the parent to fetch, and kept.
    for i in [2, 1] {
        let parent = hashes[i - 1];
        assert!(
            matches!(a.import_block(block(&hashes[i]), t0 + 4_000), Err(ChainError::UnknownParent(p)) if p == parent)
        );
    }
    assert_eq!(a.orphan_count(), 2);
    assert_eq!(a.head().height, 0);
    // Block 1 arrives: it and then the waiting blocks connect, in order.
    assert_eq!(
        a.import_block(block(&hashes[0]), t0 + 4_000).unwrap(),
        Imported::Extended(hashes[0])
    );
    let connected = a.connect_orphans(hashes[0], t0 + 4_000);
    assert_eq!(
        connected,
        vec![Imported::Extended(hashes[1]), Imported::Extended(hashes[2])]
    );
    assert_eq!(a.orphan_count(), 0);
    assert_eq!(a.head(), b.head());
}

/// A peer's junk branch off an old block: no proof, a proof from an enclave
/// that was never registered, a claimed height far ahead, and a long chain
/// of descendants. Each is refused with its own consensus error before
/// anything is stored (before, a block lighter than the tip was stored as a
/// side block unchecked, and its claimed height judged reorg depth); what
/// waits on a refused block is dropped, and the orphan pool stays bounded.
/// An honest side block is still stored, and side blocks too deep to
/// reorganize to are pruned.
#[test]
fn a_junk_side_chain_is_refused_whole_and_nothing_of_it_is_stored() {
    use proctor_consensus::ConsensusError;
    use proctor_node::orphans::MAX_ORPHANS;
    use proctor_primitives::Keypair;
    use proctor_state::Block;

    let (tc, mut enclave, mut a, mut b) =
        two_nodes(common::test_chain_with("junk", |p| p.finality_depth = 4));
    let t0 = tc.genesis.timestamp;
    let (ma, mb) = (tc.keys[0].public().address(), tc.keys[2].public().address());
    let honest_side = mine(&mut b, &mut enclave, mb, t0 + 500);
    for i in 1..=3 {
        mine(&mut a, &mut enclave, ma, t0 + 1_000 * i);
    }
    let tip = a.head();
    let genesis = a.store().block_at(0).unwrap().unwrap();

    let stranger = Keypair::from_secret(&[66; 32]);
    let params = tc.genesis.params.clone();
    let junk = |parent: &Block, height: u64, with_proof: bool| -> Block {
        let mut b = common::junk_block(parent, &params, &stranger, height, 1);
        if !with_proof {
            b.header.pouw = None;
        }
        b
    };
    let consensus = |r: Result<Imported, ChainError>| match r {
        Err(ChainError::Consensus(e)) => e,
        other => panic!("expected a consensus error, got {other:?}"),
    };
    let mut refused = Vec::new();

    let no_proof = junk(&genesis, 1, false);
    let e = consensus(a.import_block(no_proof.clone(), t0 + 5_000));
    assert_eq!(e, ConsensusError::MissingProof);
    refused.push(no_proof.hash());

    let far = junk(&genesis, 1_000, true);
    let e = consensus(a.import_block(far.clone(), t0 + 5_000));
    assert!(
        matches!(
            e,
            ConsensusError::WrongHeight {
                expected: 1,
                got: 1_000
            }
        ),
        "{e}"
    );
    refused.push(far.hash());

    // The long chain arrives children first: they wait as orphans.
    let mut chain = vec![junk(&genesis, 1, true)];
    for h in 2..=600 {
        let next = junk(chain.last().unwrap(), h, true);
        chain.push(next);
    }
    for blk in chain[1..].iter().rev() {
        assert!(matches!(
            a.import_block(blk.clone(), t0 + 5_000),
            Err(ChainError::UnknownParent(_))
        ));
        assert!(
            a.orphan_count() <= MAX_ORPHANS,
            "the orphan pool grew past its bound"
        );
    }
    assert_eq!(a.orphan_count(), MAX_ORPHANS);
    // Its root is refused: an enclave that was never registered cannot mine,
    // and the descendants waiting on it go with it.
    let e = consensus(a.import_block(chain[0].clone(), t0 + 5_000));
    assert_eq!(e, ConsensusError::UnregisteredEnclave(stranger.public()));
    assert_eq!(a.orphan_count(), 0, "orphans of a refused block were kept");
    refused.extend(chain.iter().map(Block::hash));

    for h in &refused {
        assert!(
            a.store().block(h).unwrap().is_none(),
            "junk block {h} was stored"
        );
        assert!(a.store().total_difficulty(h).unwrap().is_none());
    }
    assert_eq!(a.store().side_blocks().unwrap(), (0, 0));
    assert_eq!(a.head(), tip, "the chain did not move");

    // An honest block off the tip is validated and kept as a side block ...
    let honest = b.store().block(&honest_side).unwrap().unwrap();
    assert_eq!(
        a.import_block(honest, t0 + 5_000).unwrap(),
        Imported::Side(honest_side)
    );
    assert_eq!(a.store().side_blocks().unwrap().0, 1);
    // ... until it is deeper than any reorganization may reach.
    for i in 4..=6 {
        mine(&mut a, &mut enclave, ma, t0 + 1_000 * i);
    }
    assert_eq!(a.store().side_blocks().unwrap(), (0, 0));
    assert!(a.store().block(&honest_side).unwrap().is_none());
}
