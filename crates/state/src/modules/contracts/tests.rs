//! The contracts module: deploy, the gatekeeper's key, key requests and
//! grants, commands and their escrow, receipts and checkpoints, and what a
//! forger, an outsider enclave or a wrong operator meets at each step;
//! every block checks that supply grows by exactly the block reward.

use super::*;
use crate::Call;
use crate::modules::tests::*;
use proctor_primitives::{Amount, EncryptionKey};
use proctor_tee::Platform;
use proctor_tee::sim::SimPlatform;

const WASM: &[u8] = b"\0asm\x01\0\0\0";
const FUEL: u64 = 2_000_000;

/// A chain of three offering enclaves whose gatekeeper is enclave 0.
fn chain(name: &str) -> Chain {
    chain_with(name, |_| {})
}

/// [`chain`] with the contracts' parameters changed by `tweak`.
fn chain_with(name: &str, tweak: impl FnOnce(&mut ContractParams)) -> Chain {
    Chain::with(name, 3, |p, e| {
        p.contracts.gatekeeper = Some(Gatekeeper {
            identity: e[0].identity(),
            commitment: Hash([1; 32]),
        });
        tweak(&mut p.contracts);
    })
}

fn call(c: super::Call) -> Call {
    Call::Contracts(c)
}

impl Chain {
    /// Deploys [`WASM`] as `who`: the id.
    fn deploy(&mut self, who: usize) -> u64 {
        let id = self.state.contracts_next_id();
        self.ok(
            who,
            call(super::Call::Deploy {
                code: WASM.to_vec(),
            }),
        );
        id
    }

    /// Contract `id`'s key as enclave `by` signs it.
    fn key(&self, id: u64, by: &SimPlatform) -> ContractPublicKey {
        let mut k = ContractPublicKey {
            chain: self.genesis,
            era: 0,
            contract: id,
            key: EncryptionKey([9; 32]),
            gatekeeper: by.identity(),
            signature: proctor_primitives::Signature([0; 64]),
        };
        k.signature = by.sign(&k.signing_bytes());
        k
    }

    /// Index (in `enclaves`) of contract `id`'s executor.
    fn executor(&self, id: u64) -> usize {
        let e = self.state.contract(id).unwrap().executor;
        self.enclaves
            .iter()
            .position(|p| p.identity() == e)
            .unwrap()
    }

    fn command(&self, id: u64, fuel: u64, init: bool) -> Call {
        call(super::Call::Command {
            contract: id,
            fuel,
            escrow: self.state.params().contracts.cost(fuel).unwrap(),
            init,
            reply_to: EncryptionKey([3; 32]),
            sealed: vec![7; 100],
        })
    }

    /// The chain's command log after command `seq` of contract `id`.
    fn log(&self, id: u64, seq: u64) -> Hash {
        self.state
            .contract_command(id, seq)
            .map_or(Hash::ZERO, |c| c.log)
    }

    /// Command `seq`'s receipt, as `by` signs it (over the chain's log).
    fn receipt(&self, id: u64, seq: u64, instructions: u64, by: &SimPlatform) -> Call {
        self.receipt_with_log(id, seq, instructions, by, self.log(id, seq))
    }

    fn receipt_with_log(
        &self,
        id: u64,
        seq: u64,
        instructions: u64,
        by: &SimPlatform,
        log: Hash,
    ) -> Call {
        let r = Receipt {
            contract: id,
            seq,
            code: 0,
            instructions,
            reply: vec![1, 2, 3],
            emits: vec![Emit([&0u64.to_le_bytes()[..], b"hello"].concat())],
            state_hash: Hash([seq as u8; 32]),
            log,
            executor: by.identity(),
        };
        let signature = by.sign(&r.signing_bytes(&self.genesis));
        call(super::Call::Receipt {
            receipt: r,
            signature,
        })
    }

    fn checkpoint(&self, id: u64, applied: u64, by: &SimPlatform) -> Call {
        let cp = Checkpoint {
            contract: id,
            era: 0,
            applied,
            state_hash: Hash([applied as u8; 32]),
            log: self.log(id, applied),
            ciphertext: vec![5; 64],
            parts: None,
        };
        let signature = by.sign(&cp.signing_bytes(&self.genesis));
        call(super::Call::Checkpoint {
            checkpoint: cp,
            executor: by.identity(),
            signature,
        })
    }
}

#[test]
fn without_a_gatekeeper_nothing_deploys() {
    let mut c = Chain::new("contracts-nogk", 1);
    let deploy = call(super::Call::Deploy {
        code: WASM.to_vec(),
    });
    assert_eq!(c.err(REQUESTER, deploy), 1301);
}

#[test]
fn the_gatekeepers_key_is_checked_before_commands_are_taken() {
    let mut c = chain("contracts-key");
    let junk = call(super::Call::Deploy {
        code: b"#!/bin/sh".to_vec(),
    });
    assert_eq!(c.err(REQUESTER, junk), 1302);
    let id = c.deploy(REQUESTER);
    assert_eq!(c.state.contracts_awaiting_key(), vec![id]);
    // No key yet: no command.
    assert_eq!(c.err(REQUESTER, c.command(id, FUEL, true)), 1307);
    // A key from an enclave that is not the gatekeeper, for another chain,
    // or altered after signing.
    let outsider = c.key(id, &c.outsider);
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: outsider })),
        1304
    );
    let not_gk = c.key(id, &c.enclaves[1]);
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: not_gk })),
        1304
    );
    let mut other_chain = c.key(id, &c.enclaves[0]);
    other_chain.chain = Hash([4; 32]);
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: other_chain })),
        1304
    );
    let mut altered = c.key(id, &c.enclaves[0]);
    altered.key = EncryptionKey([8; 32]);
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: altered })),
        1305
    );
    // The gatekeeper's, posted by anyone: accepted once.
    let good = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key: good.clone() }));
    assert_eq!(c.state.contract(id).unwrap().key, Some(good.key));
    assert!(c.state.contracts_awaiting_key().is_empty());
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: good })),
        1306
    );
}

#[test]
fn only_the_executors_and_gatekeepers_operators_exchange_the_contract_key() {
    let mut c = chain("contracts-grant");
    let id = c.deploy(REQUESTER);
    let x = c.executor(id);
    let (x_op, gk_op) = (3 + x, 3);
    let request = |att: u8| {
        call(super::Call::RequestKey {
            contract: id,
            era: 0,
            attestation: vec![att; 10],
        })
    };
    let grant = |h: u8| {
        call(super::Call::GrantKey {
            contract: id,
            era: 0,
            handover: vec![h; 10],
        })
    };
    assert_eq!(c.err(OTHER, request(1)), 1308);
    c.ok(x_op, request(1));
    let executor = c.enclaves[x].identity();
    assert_eq!(
        c.state.contract_key_request(id, &executor, 0),
        Some(vec![1; 10])
    );
    assert_eq!(c.state.contract_key_requests(), vec![(id, 0)]);
    let not_gk = if x_op == gk_op { 4 } else { x_op };
    assert_eq!(c.err(not_gk, grant(2)), 1308);
    c.ok(gk_op, grant(2));
    assert_eq!(
        c.state.contract_key_grant(id, &executor, 0),
        Some(vec![2; 10])
    );
    assert_eq!(c.state.contract_key_request(id, &executor, 0), None);
    assert_eq!(c.state.contract_key_requests(), vec![]);
    // A key of an era the contract has not reached does not exist.
    let ahead = call(super::Call::RequestKey {
        contract: id,
        era: 1,
        attestation: vec![1; 10],
    });
    assert_eq!(c.err(x_op, ahead), 1309);
}

#[test]
fn commands_are_paid_by_instruction_and_receipts_come_in_order_from_the_executor() {
    let mut c = chain("contracts-run");
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
    let x = c.executor(id);
    let operator = 3 + x;

    // The escrow must be the fuel's cost; init is the owner's first only.
    let mut wrong = c.command(id, FUEL, true);
    if let Call::Contracts(super::Call::Command { escrow, .. }) = &mut wrong {
        *escrow = Amount(escrow.0 + 1);
    }
    assert_eq!(c.err(REQUESTER, wrong), 1309);
    assert_eq!(c.err(OTHER, c.command(id, FUEL, true)), 1309);
    assert_eq!(c.err(OTHER, c.command(id, 0, false)), 1309);
    let before = c.balance(REQUESTER);
    c.ok(REQUESTER, c.command(id, FUEL, true));
    let cost = c.state.params().contracts.cost(FUEL).unwrap().0;
    assert_eq!(before - c.balance(REQUESTER), cost + 1, "escrow and fee");
    assert_eq!(c.err(REQUESTER, c.command(id, FUEL, true)), 1309);
    c.ok(OTHER, c.command(id, FUEL, false));
    assert_eq!(c.state.contract(id).unwrap().commands, 2);
    // The command is bound to its transaction's nonce (the deploy took 0).
    let cmd = c.state.contract_command(id, 1).unwrap();
    assert_eq!(
        (cmd.sender, cmd.nonce),
        (c.ks[REQUESTER].public().address(), 1)
    );

    // Receipts: only the executor, only the next, within the fuel, intact.
    let outsider = c.receipt(id, 1, 10, &c.outsider);
    assert_eq!(c.err(OTHER, outsider), 1310);
    let other = c.receipt(id, 1, 10, &c.enclaves[(x + 1) % 3]);
    assert_eq!(c.err(OTHER, other), 1310);
    assert_eq!(c.err(OTHER, c.receipt(id, 2, 10, &c.enclaves[x])), 1311);
    assert_eq!(
        c.err(OTHER, c.receipt(id, 1, FUEL + 1, &c.enclaves[x])),
        1312
    );
    // A host that fed its enclave another command, or the commands in
    // another order, gets a receipt over another log: refused.
    let fed_other = c.receipt_with_log(id, 1, 10, &c.enclaves[x], c.log(id, 2));
    assert_eq!(c.err(OTHER, fed_other), 1312);
    let fed_nothing = c.receipt_with_log(id, 1, 10, &c.enclaves[x], Hash::ZERO);
    assert_eq!(c.err(OTHER, fed_nothing), 1312);
    let mut altered = c.receipt(id, 1, 10, &c.enclaves[x]);
    if let Call::Contracts(super::Call::Receipt { receipt, .. }) = &mut altered {
        receipt.code = 3;
    }
    assert_eq!(c.err(OTHER, altered), 1305);

    let (op_before, req_before) = (c.balance(operator), c.balance(REQUESTER));
    let used = 1_234_567;
    let events = c.ok(OTHER, c.receipt(id, 1, used, &c.enclaves[x]));
    let paid = c.state.params().contracts.cost(used).unwrap().0;
    assert_eq!(c.balance(operator) - op_before, paid);
    assert_eq!(c.balance(REQUESTER) - req_before, cost - paid);
    assert!(events.iter().any(|e| matches!(
        e,
        crate::Event::Contracts(Event::ContractEmitted { target: 0, payload, .. }) if payload == b"hello"
    )));
    let info = c.state.contract(id).unwrap();
    assert_eq!((info.applied, info.state_hash), (1, Hash([1; 32])));
    assert_eq!(c.err(OTHER, c.receipt(id, 1, used, &c.enclaves[x])), 1311);
    assert_eq!(
        c.state.contract_command(id, 1).unwrap().escrow,
        Amount::ZERO
    );

    // Checkpoints: the executor's, not past the last receipt, each newer.
    assert_eq!(c.err(OTHER, c.checkpoint(id, 2, &c.enclaves[x])), 1313);
    let outsider = c.checkpoint(id, 1, &c.outsider);
    assert_eq!(c.err(OTHER, outsider), 1310);
    c.ok(OTHER, c.checkpoint(id, 1, &c.enclaves[x]));
    assert_eq!(c.state.contract_checkpoint(id).unwrap().applied, 1);
    assert_eq!(c.err(OTHER, c.checkpoint(id, 1, &c.enclaves[x])), 1313);
}

#[test]
fn only_an_enclaves_operator_sets_its_query_endpoint() {
    let mut c = chain("contracts-endpoint");
    let enclave = c.enclaves[1].identity();
    let set = |url: &str| {
        call(super::Call::SetEndpoint {
            enclave,
            url: url.into(),
        })
    };
    assert_eq!(c.err(OTHER, set("http://127.0.0.1:9")), 1314);
    assert_eq!(c.err(4, set("ftp://127.0.0.1:9")), 1314);
    assert_eq!(c.err(4, set("http://a b")), 1314);
    assert_eq!(c.err(4, set(&format!("http://{}", "a".repeat(300)))), 1314);
    c.ok(4, set("http://127.0.0.1:9"));
    assert_eq!(
        c.state.enclave_endpoint(&enclave).as_deref(),
        Some("http://127.0.0.1:9")
    );
}

#[test]
fn an_executor_that_leaves_commands_waiting_is_replaced() {
    let mut c = chain_with("contracts-reassign", |p| p.executor_timeout_blocks = 5);
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
    let old = c.executor(id);
    c.ok(REQUESTER, c.command(id, FUEL, false));
    let since = c.state.contract(id).unwrap().waiting_since.unwrap();
    // Within the timeout nothing moves; past it, another executor.
    let mut reassigned = None;
    for _ in 0..8 {
        let (_, block_events) = c.block(None).unwrap();
        if let Some(e) = block_events.iter().find_map(|e| match e {
            crate::Event::Contracts(Event::ContractReassigned { from, to, .. }) => {
                Some((*from, *to))
            }
            _ => None,
        }) {
            reassigned = Some((c.height, e));
            break;
        }
    }
    let (at, (from, to)) = reassigned.expect("reassigned");
    assert_eq!(at, since + 6, "the first block past the timeout");
    assert_eq!(from, c.enclaves[old].identity());
    let new = c.executor(id);
    assert_ne!(new, old);
    assert_eq!(to, c.enclaves[new].identity());
    // The old executor's receipt is refused; the new one's pays.
    assert_eq!(c.err(OTHER, c.receipt(id, 1, 10, &c.enclaves[old])), 1310);
    c.ok(OTHER, c.receipt(id, 1, 10, &c.enclaves[new]));
    assert_eq!(c.state.contract(id).unwrap().waiting_since, None);
}

#[test]
fn an_era_slashes_only_those_active_in_under_a_quarter_of_the_busiest_windows() {
    // Eras of 16 blocks, 8 windows of 2 blocks.
    let mut c = chain_with("contracts-responsive", |p| {
        p.era_blocks = 16;
        p.executor_timeout_blocks = 1_000;
    });
    // Contracts until enclaves 1 and 2 each execute one (all three have duties).
    while (1..c.state.contracts_next_id())
        .map(|id| c.executor(id))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < 3
    {
        c.deploy(REQUESTER);
    }
    // Skip to the start of the next era.
    while !(c.height + 1).is_multiple_of(16) {
        c.block(None).unwrap();
    }
    let era = (c.height + 1) / 16;
    let heartbeat = |c: &Chain, i: usize| {
        let h = c.height + 1;
        let (e, w) = (h / 16, (h % 16) * WINDOWS / 16);
        call(super::Call::Heartbeat {
            enclave: c.enclaves[i].identity(),
            era: e,
            window: w,
            signature: c.enclaves[i].sign(&heartbeat_bytes(&c.genesis, e, w)),
        })
    };
    // A forged, a stale and another chain's heartbeat are refused.
    let mut forged = heartbeat(&c, 1);
    if let Call::Contracts(super::Call::Heartbeat { signature, .. }) = &mut forged {
        *signature = c.outsider.sign(&heartbeat_bytes(&c.genesis, era, 0));
    }
    assert_eq!(c.err(OTHER, forged), 1305);
    let mut stale = heartbeat(&c, 1);
    if let Call::Contracts(super::Call::Heartbeat { window, .. }) = &mut stale {
        *window = 5;
    }
    assert_eq!(c.err(OTHER, stale), 1315);
    // Counts [8, 2, 1]: enclave 0 in every window, 1 in two, 2 in one.
    let mut slashed = vec![];
    for offset in 0..16 {
        let tx = match offset {
            o if o % 2 == 0 => Some(0),
            1 | 3 => Some(1),
            5 => Some(2),
            _ => None,
        };
        let stakes: Vec<u128> = (0..3)
            .map(|i| c.state.enclave(&c.enclaves[i].identity()).unwrap().stake.0)
            .collect();
        let (_, events) = c.block(tx.map(|i| (OTHER, heartbeat(&c, i)))).unwrap();
        for e in events {
            if let crate::Event::Contracts(Event::ContractUnresponsive {
                enclave,
                windows,
                max,
                slashed: amount,
                ..
            }) = e
            {
                let i = (0..3)
                    .find(|&i| c.enclaves[i].identity() == enclave)
                    .unwrap();
                let now = c.state.enclave(&enclave).unwrap().stake.0;
                assert_eq!(stakes[i] - now, amount.0);
                slashed.push((i, windows, max));
            }
        }
    }
    assert_eq!(slashed, vec![(2, 1, 8)], "2 is not strictly below 8/4");
}

mod fuzz {
    use super::*;
    use proctor_primitives::codec::{decode, encode};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The decoders of what executors, gatekeepers and callers send
        /// never panic, and what decodes encodes back to the same bytes.
        #[test]
        fn command_receipt_and_checkpoint_decoders_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Ok(c) = decode::<super::super::Call>("contracts call", &bytes) {
                prop_assert_eq!(encode(&c), bytes.clone());
            }
            if let Ok(r) = decode::<Receipt>("receipt", &bytes) {
                prop_assert_eq!(encode(&r), bytes.clone());
            }
            if let Ok(cp) = decode::<Checkpoint>("checkpoint", &bytes) {
                prop_assert_eq!(encode(&cp), bytes.clone());
            }
            let _ = decode::<CommandRecord>("command", &bytes);
        }

        /// A command whose bytes were cut or flipped is refused or decodes
        /// to another command, never to the original with other bytes.
        #[test]
        fn a_mutated_command_never_passes_for_the_original(
            sealed in proptest::collection::vec(any::<u8>(), 1..200),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let call = super::super::Call::Command {
                contract: 3,
                fuel: 1_000,
                escrow: Amount(1),
                init: false,
                reply_to: EncryptionKey([5; 32]),
                sealed,
            };
            let mut b = encode(&call);
            let i = at.index(b.len());
            b[i] ^= flip;
            if let Ok(c) = decode::<super::super::Call>("call", &b) {
                prop_assert_ne!(c, call);
            }
        }
    }
}

#[test]
fn an_elected_gatekeeper_joins_once_its_enclave_holds_the_root_key() {
    let mut c = chain("contracts-gatekeepers");
    let (gk, new) = (c.enclaves[0].identity(), c.enclaves[1].identity());
    assert_eq!(c.state.gatekeepers().members, vec![gk]);
    let elect = call(super::Call::ElectGatekeeper { enclave: new });
    // Only governance (OTHER in the test chain) elects.
    assert_eq!(c.err(REQUESTER, elect.clone()), 1316);
    c.ok(OTHER, elect.clone());
    assert_eq!(c.err(OTHER, elect), 1316, "elected twice");
    assert_eq!(c.state.gatekeepers().candidates, vec![new]);
    // The candidate's operator asks; a member's operator hands over.
    let request = call(super::Call::RequestRoot {
        enclave: new,
        attestation: vec![1; 8],
    });
    assert_eq!(c.err(OTHER, request.clone()), 1316);
    c.ok(4, request);
    assert_eq!(c.state.root_exchange(&new).0, Some(vec![1; 8]));
    let hand = call(super::Call::HandOverRoot {
        to: new,
        handover: vec![2; 8],
    });
    assert_eq!(c.err(5, hand.clone()), 1308, "not a gatekeeper's operator");
    c.ok(3, hand);
    assert_eq!(c.state.root_exchange(&new), (None, Some(vec![2; 8])));
    // Readiness: signed by the candidate over the chain's commitment.
    let (commitment, chain_hash) = (Hash([1; 32]), c.genesis);
    let ready = |by: &SimPlatform, commitment: &Hash| {
        call(super::Call::ConfirmReady {
            enclave: new,
            signature: by.sign(&ready_bytes(&chain_hash, 0, commitment)),
        })
    };
    let forged = ready(&c.outsider, &commitment);
    assert_eq!(c.err(OTHER, forged), 1305);
    let other = ready(&c.enclaves[1], &Hash([2; 32]));
    assert_eq!(c.err(OTHER, other), 1305);
    let genuine = ready(&c.enclaves[1], &commitment);
    c.ok(OTHER, genuine);
    let set = c.state.gatekeepers();
    assert_eq!((set.members, set.candidates), (vec![gk, new], vec![]));
    // The new gatekeeper's key postings are accepted.
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[1]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
}

#[test]
fn egress_to_another_contract_becomes_its_command_paid_from_the_unused_escrow() {
    let mut c = chain("contracts-egress");
    let (a, b) = (c.deploy(REQUESTER), c.deploy(REQUESTER));
    for id in [a, b] {
        let key = c.key(id, &c.enclaves[0]);
        c.ok(OTHER, call(super::Call::PublishKey { key }));
    }
    let fuel = 40_000_000;
    c.ok(OTHER, c.command(a, fuel, false));
    let x = c.executor(a);
    let p = c.state.params().contracts.clone();
    let before = c.balance(OTHER);
    // Two messages to b, one to a contract that does not exist.
    let mut r = c.receipt(a, 1, 1_000, &c.enclaves[x]);
    if let Call::Contracts(super::Call::Receipt { receipt, signature }) = &mut r {
        receipt.emits = vec![
            Emit([&b.to_le_bytes()[..], b"sealed-1"].concat()),
            Emit([&99u64.to_le_bytes()[..], b"sealed-2"].concat()),
            Emit([&b.to_le_bytes()[..], b"sealed-3"].concat()),
        ];
        *signature = c.enclaves[x].sign(&receipt.signing_bytes(&c.genesis));
    }
    let events = c.ok(OTHER, r);
    let dropped = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                crate::Event::Contracts(Event::ContractEgressDropped { to: 99, .. })
            )
        })
        .count();
    assert_eq!(dropped, 1);
    let info = c.state.contract(b).unwrap();
    assert_eq!((info.commands, info.applied), (2, 0));
    let first = c.state.contract_command(b, 1).unwrap();
    assert_eq!(first.sender, contract_address(a));
    assert_eq!(first.nonce, egress_nonce(1, 0));
    assert_eq!(first.payer, c.ks[OTHER].public().address());
    assert_eq!(
        (first.sealed.as_slice(), first.fuel),
        (&b"sealed-1"[..], p.egress_fuel)
    );
    assert_eq!(
        c.state.contract_command(b, 2).unwrap().nonce,
        egress_nonce(1, 2)
    );
    // The sender paid the instructions and the two deliveries' fuel.
    let cost = |n| p.cost(n).unwrap().0;
    let refunded = c.state.contract_command(a, 1).unwrap().refunded.0;
    assert_eq!(refunded, cost(fuel) - cost(1_000) - 2 * cost(p.egress_fuel));
    assert_eq!(
        c.balance(OTHER) + 1,
        before + refunded,
        "the fee of the receipt's tx"
    );
}

impl Chain {
    /// Empty blocks up to and including `height`: the contracts' events of
    /// their ends.
    fn until(&mut self, height: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while self.height < height {
            for e in self.block(None).unwrap().1 {
                if let crate::Event::Contracts(e) = e {
                    events.push(e);
                }
            }
        }
        events
    }

    fn stake(&self, i: usize) -> Amount {
        self.state
            .enclave(&self.enclaves[i].identity())
            .unwrap()
            .stake
    }

    /// `by` signs that it holds the root key of `era` with `commitment`.
    fn ready(&self, by: usize, era: u64, commitment: &Hash) -> Call {
        let e = &self.enclaves[by];
        call(super::Call::ConfirmReady {
            enclave: e.identity(),
            signature: e.sign(&ready_bytes(&self.genesis, era, commitment)),
        })
    }

    fn commit(&self, by: usize, era: u64, commitment: &Hash) -> Call {
        let e = &self.enclaves[by];
        call(super::Call::CommitRotation {
            enclave: e.identity(),
            era,
            commitment: *commitment,
            signature: e.sign(&ready_bytes(&self.genesis, era, commitment)),
        })
    }

    /// Enclave `to` asks for the rotated key; `from`'s operator hands it.
    fn hand_over(&mut self, from: usize, to: usize) {
        let enclave = self.enclaves[to].identity();
        self.ok(
            3 + to,
            call(super::Call::RequestRoot {
                enclave,
                attestation: vec![to as u8; 8],
            }),
        );
        self.ok(
            3 + from,
            call(super::Call::HandOverRoot {
                to: enclave,
                handover: vec![from as u8; 8],
            }),
        );
    }
}

fn rotation_chain(name: &str) -> Chain {
    rotation_chain_with(name, 4_000)
}

/// [`rotation_chain`] whose gatekeepers lock `stake`.
fn rotation_chain_with(name: &str, stake: u128) -> Chain {
    chain_with(name, |p| {
        p.era_blocks = 40;
        p.rotation_timeout_blocks = 10;
        p.gatekeeper_stake = Amount(stake);
    })
}

#[test]
fn keys_rotate_across_two_eras_as_a_gatekeeper_joins_and_one_leaves() {
    let mut c = rotation_chain("contracts-rotation");
    let ids: Vec<PublicKey> = c.enclaves.iter().map(|e| e.identity()).collect();
    // Era 0: a contract under the genesis key; enclave 1 is elected.
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
    c.ok(
        OTHER,
        call(super::Call::ElectGatekeeper { enclave: ids[1] }),
    );
    c.ok(REQUESTER, c.command(id, FUEL, false));
    assert_eq!(c.state.contract_command(id, 1).unwrap().era, 0);
    let x = c.executor(id);
    c.ok(OTHER, c.receipt(id, 1, 10, &c.enclaves[x]));
    c.ok(OTHER, c.checkpoint(id, 1, &c.enclaves[x]));

    // Era 1 starts: enclave 0 (the only holder) leads; 1 joins.
    let events = c.until(40);
    let started = events.iter().find_map(|e| match e {
        Event::KeyRotationStarted {
            era, leader, next, ..
        } => Some((*era, *leader, next.clone())),
        _ => None,
    });
    assert_eq!(started, Some((1, ids[0], vec![ids[0], ids[1]])));
    // Meanwhile contract keys wait, and nobody else leads.
    let second = c.deploy(REQUESTER);
    let key = c.key(second, &c.enclaves[0]);
    assert_eq!(c.err(OTHER, call(super::Call::PublishKey { key })), 1317);
    let grant = call(super::Call::GrantKey {
        contract: id,
        era: 0,
        handover: vec![1],
    });
    assert_eq!(c.err(3, grant), 1317);
    let k1 = Hash([11; 32]);
    assert_eq!(c.err(OTHER, c.commit(1, 1, &k1)), 1316, "not the leader");
    let forged = call(super::Call::CommitRotation {
        enclave: ids[0],
        era: 1,
        commitment: k1,
        signature: c.outsider.sign(&ready_bytes(&c.genesis, 1, &k1)),
    });
    assert_eq!(c.err(OTHER, forged), 1305);
    // The leader hands over only after committing, and only the leader.
    c.ok(
        4,
        call(super::Call::RequestRoot {
            enclave: ids[1],
            attestation: vec![1; 8],
        }),
    );
    let hand = call(super::Call::HandOverRoot {
        to: ids[1],
        handover: vec![0; 8],
    });
    assert_eq!(c.err(3, hand.clone()), 1316, "before the commitment");
    c.ok(OTHER, c.commit(0, 1, &k1));
    assert_eq!(c.err(5, hand.clone()), 1308, "not the leader's operator");
    c.ok(3, hand);
    assert_eq!(c.err(OTHER, c.ready(1, 1, &Hash([12; 32]))), 1305);
    assert_eq!(c.err(OTHER, c.ready(1, 0, &k1)), 1305, "another era");
    let events = c.ok(OTHER, c.ready(1, 1, &k1));
    assert!(
        events.contains(&crate::Event::Contracts(Event::KeyRotationReady {
            era: 1,
            commitment: k1,
            members: vec![ids[0], ids[1]],
        }))
    );
    let set = c.state.gatekeepers();
    assert_eq!((set.era, set.commitment, set.rotation), (1, Some(k1), None));

    // Both contracts wait for their era-1 keys; an era-0 key is refused.
    let mut awaiting = c.state.contracts_awaiting_key();
    awaiting.sort();
    assert_eq!(awaiting, vec![id, second]);
    let stale = c.key(id, &c.enclaves[1]);
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: stale })),
        1304
    );
    let mut fresh = c.key(id, &c.enclaves[1]);
    fresh.era = 1;
    fresh.signature = c.enclaves[1].sign(&fresh.signing_bytes());
    c.ok(OTHER, call(super::Call::PublishKey { key: fresh.clone() }));
    assert_eq!(
        c.err(OTHER, call(super::Call::PublishKey { key: fresh })),
        1306
    );
    assert_eq!(c.state.contract(id).unwrap().era, 1);
    c.ok(REQUESTER, c.command(id, FUEL, false));
    assert_eq!(c.state.contract_command(id, 2).unwrap().era, 1);
    // The executor re-checkpoints the same command under the era-1 key,
    // once; the old era's checkpoint is no longer taken.
    let recheckpoint = |c: &Chain, era: u64| {
        let mut cp = Checkpoint {
            contract: id,
            era,
            applied: 1,
            state_hash: Hash([1; 32]),
            log: c.log(id, 1),
            ciphertext: vec![5; 64],
            parts: None,
        };
        cp.ciphertext[0] = era as u8;
        let signature = c.enclaves[x].sign(&cp.signing_bytes(&c.genesis));
        call(super::Call::Checkpoint {
            checkpoint: cp,
            executor: ids[x],
            signature,
        })
    };
    assert_eq!(c.err(OTHER, recheckpoint(&c, 0)), 1313);
    c.ok(OTHER, recheckpoint(&c, 1));
    assert_eq!(c.err(OTHER, recheckpoint(&c, 1)), 1313);

    // Governance retires enclave 0; at era 2 enclave 1 alone rotates.
    let retire = call(super::Call::RetireGatekeeper { enclave: ids[0] });
    assert_eq!(c.err(REQUESTER, retire.clone()), 1316);
    c.ok(OTHER, retire.clone());
    assert_eq!(c.err(OTHER, retire), 1316, "already leaving");
    let events = c.until(80);
    assert!(events.iter().any(|e| matches!(e,
        Event::KeyRotationStarted { era: 2, leader, next, .. }
            if *leader == ids[1] && *next == vec![ids[1]])));
    let k2 = Hash([22; 32]);
    let events = c.ok(OTHER, c.commit(1, 2, &k2));
    assert!(events.iter().any(|e| matches!(e,
        crate::Event::Contracts(Event::KeyRotationReady { era: 2, members, .. })
            if *members == vec![ids[1]])));
    let set = c.state.gatekeepers();
    assert_eq!((set.members, set.leaving), (vec![ids[1]], vec![]));
    // The retired enclave's key postings are refused from now on.
    let mut k = c.key(second, &c.enclaves[0]);
    k.era = 2;
    k.signature = c.enclaves[0].sign(&k.signing_bytes());
    assert_eq!(c.err(OTHER, call(super::Call::PublishKey { key: k })), 1304);
}

#[test]
fn a_rotation_held_up_times_out_slashes_and_starts_over() {
    let mut c = rotation_chain("contracts-rotation-timeout");
    let ids: Vec<PublicKey> = c.enclaves.iter().map(|e| e.identity()).collect();
    for e in [ids[1], ids[2]] {
        c.ok(OTHER, call(super::Call::ElectGatekeeper { enclave: e }));
    }
    let before: Vec<Amount> = (0..3).map(|i| c.stake(i)).collect();
    c.until(40);
    let r = c.state.gatekeepers().rotation.unwrap();
    assert_eq!((r.attempt, r.leader), (1, ids[0]));
    assert_eq!(r.deadline, 50);
    // The leader commits and hands over to 1, which confirms; 2 never asks.
    let k1 = Hash([11; 32]);
    c.ok(OTHER, c.commit(0, 1, &k1));
    c.hand_over(0, 1);
    c.ok(OTHER, c.ready(1, 1, &k1));
    let events = c.until(50);
    assert!(events.contains(&Event::KeyRotationTimedOut {
        era: 1,
        attempt: 1,
        slashed: vec![ids[2]],
    }));
    assert!(c.stake(2) < before[2], "the silent member is slashed");
    assert_eq!(c.stake(1), before[1]);
    let r = c.state.gatekeepers().rotation.unwrap();
    assert_eq!((r.attempt, r.leader), (2, ids[0]));
    assert_eq!(r.next, vec![ids[0], ids[1]], "without the slashed one");
    assert_eq!((r.commitment, r.confirmed), (None, vec![]));
    // The key handed over in the first attempt is void.
    assert_eq!(c.state.root_exchange(&ids[1]).1, None);
    // Attempt 2: the leader is silent this time.
    let events = c.until(60);
    assert!(events.contains(&Event::KeyRotationTimedOut {
        era: 1,
        attempt: 2,
        slashed: vec![ids[0]],
    }));
    assert!(c.stake(0) < before[0], "the silent leader is slashed");
    // Attempt 3: nobody holding the old key is left; 1 leads and is alone.
    let r = c.state.gatekeepers().rotation.unwrap();
    assert_eq!((r.attempt, r.leader, r.next), (3, ids[1], vec![ids[1]]));
    let k3 = Hash([33; 32]);
    c.ok(OTHER, c.commit(1, 1, &k3));
    let set = c.state.gatekeepers();
    assert_eq!(
        (set.members, set.era, set.commitment),
        (vec![ids[1]], 1, Some(k3))
    );
    assert_eq!(set.candidates, vec![]);
}

#[test]
fn an_oracle_datagram_becomes_a_command_of_its_callback_contract() {
    let mut c = chain("contracts-oracle");
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
    let price = c.state.params().contracts.price_per_million.0;
    // A fee of 5,000 with 3,000 for the callback: 3 million instructions.
    let request = |contract: u64, cb_fee: u128| {
        let mut r = public("https://example.org/price", Some("/usd"), 5_000);
        if let Call::Oracle(crate::oracle::Call::Request { callback, .. }) = &mut r {
            *callback = Some(crate::oracle::Callback {
                contract,
                fee: Amount(cb_fee),
            });
        }
        r
    };
    let rid = c.state.oracle_next_id();
    c.ok(OTHER, request(id, 3_000));
    let payer = c.balance(OTHER);
    let (receipt, block) = c.block(Some((MINER, c.delivery(rid)))).unwrap();
    assert!(receipt.iter().any(|e| matches!(e,
        crate::Event::Oracle(crate::oracle::Event::OracleCallback { contract, .. }) if *contract == id)));
    assert!(
        block.contains(&crate::Event::Contracts(Event::ContractCommand {
            id,
            seq: 1,
            sender: oracle_address(),
        }))
    );
    let cmd = c.state.contract_command(id, 1).unwrap();
    assert!(cmd.oracle && !cmd.init);
    assert_eq!(
        (cmd.nonce, cmd.payer),
        (rid, c.ks[OTHER].public().address())
    );
    assert_eq!(cmd.fuel, 3_000 * 1_000_000 / price as u64);
    assert_eq!(cmd.escrow, Amount(3_000));
    // The message: id, requester, URL, pointer, kind, status, value.
    let m = &cmd.sealed;
    assert_eq!(&m[..8], &rid.to_le_bytes());
    assert_eq!(&m[8..28], &c.ks[OTHER].public().address().0);
    let url = b"https://example.org/price";
    assert_eq!(&m[28..30], &(url.len() as u16).to_le_bytes());
    assert_eq!(&m[30..30 + url.len()], url);
    let rest = &m[30 + url.len()..];
    assert_eq!(rest, [&[4, 0][..], b"/usd", &[0, 200, 0], b"42"].concat());
    // Its receipt pays the executor and refunds the requester the rest.
    let x = c.executor(id);
    c.ok(MINER, c.receipt(id, 1, 1_000_000, &c.enclaves[x]));
    let cmd = c.state.contract_command(id, 1).unwrap();
    assert_eq!(cmd.paid, Amount(1_000_000 * price / 1_000_000));
    assert_eq!(c.balance(OTHER), payer + 3_000 - cmd.paid.0);

    // To a contract that does not exist, or with a fee that buys nothing:
    // dropped, the fee to the block.
    for (target, fee, why) in [(99, 3_000, "no such contract"), (id, 0, "buys no fuel")] {
        let rid = c.state.oracle_next_id();
        c.ok(OTHER, request(target, fee));
        let (_, block) = c.block(Some((MINER, c.delivery(rid)))).unwrap();
        assert!(
            block.iter().any(|e| matches!(e,
            crate::Event::Contracts(Event::ContractOracleDropped { request, reason, .. })
                if *request == rid && reason.contains(why))),
            "{why}: {block:?}"
        );
    }
    assert_eq!(c.state.contract(id).unwrap().commands, 1);
}

#[test]
fn the_oracle_address_is_the_one_contracts_compare_with() {
    // examples/contracts/feed.c hard-codes it; computed apart from this
    // code (Python's blake3 over the tag's length and the tag).
    let hex = "54d6541b19bf79d0792fc2cf1b7ef142dea14af7";
    let bytes: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(oracle_address().0.to_vec(), bytes);
}

#[test]
fn a_checkpoint_larger_than_a_transaction_travels_as_blobs() {
    let mut c = chain("contracts-parts");
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
    let x = c.executor(id);
    for seq in 1..=2 {
        c.ok(REQUESTER, c.command(id, FUEL, false));
        c.ok(OTHER, c.receipt(id, seq, 10, &c.enclaves[x]));
    }
    let big = vec![7u8; 60_000];
    let post = |c: &Chain, applied: u64, ciphertext: Vec<u8>, parts: Option<Parts>| {
        let cp = Checkpoint {
            contract: id,
            era: 0,
            applied,
            state_hash: Hash([applied as u8; 32]),
            log: c.log(id, applied),
            ciphertext,
            parts,
        };
        let signature = c.enclaves[x].sign(&cp.signing_bytes(&c.genesis));
        call(super::Call::Checkpoint {
            checkpoint: cp,
            executor: c.enclaves[x].identity(),
            signature,
        })
    };
    let parts = |n: usize| Parts {
        blobs: (0..n).map(|i| Hash([i as u8 + 1; 32])).collect(),
        hash: Hash::of(&big),
        len: big.len() as u64,
    };
    // Inline it does not fit; as parts it must not be inline too, nor in
    // no or too many blobs.
    assert_eq!(c.err(OTHER, post(&c, 1, big.clone(), None)), 1313);
    assert_eq!(c.err(OTHER, post(&c, 1, big.clone(), Some(parts(2)))), 1313);
    assert_eq!(c.err(OTHER, post(&c, 1, vec![], Some(parts(0)))), 1313);
    assert_eq!(
        c.err(OTHER, post(&c, 1, vec![], Some(parts(MAX_PARTS + 1)))),
        1313
    );
    // The enclave signed the whole ciphertext's hash: parts that claim
    // another do not verify.
    let mut other = parts(2);
    other.hash = Hash([9; 32]);
    let mut forged = post(&c, 1, vec![], Some(parts(2)));
    if let Call::Contracts(super::Call::Checkpoint { checkpoint, .. }) = &mut forged {
        checkpoint.parts = Some(other);
    }
    assert_eq!(c.err(OTHER, forged), 1305);
    let events = c.ok(OTHER, post(&c, 1, vec![], Some(parts(2))));
    assert!(
        events.contains(&crate::Event::Contracts(Event::ContractCheckpointed {
            id,
            applied: 1,
            state_hash: Hash([1; 32]),
            parts: parts(2).blobs,
            replaced: vec![],
        }))
    );
    // The next one says which blobs it replaces.
    let old = parts(2).blobs;
    let events = c.ok(OTHER, post(&c, 2, vec![1, 2, 3], None));
    assert!(events.iter().any(|e| matches!(e,
        crate::Event::Contracts(Event::ContractCheckpointed { parts: now, replaced, .. })
            if now.is_empty() && *replaced == old)));
}

#[test]
fn under_forward_secrecy_past_eras_keys_are_not_asked_for() {
    let mut c = rotation_chain("contracts-forward-secrecy");
    let id = c.deploy(REQUESTER);
    let key = c.key(id, &c.enclaves[0]);
    c.ok(OTHER, call(super::Call::PublishKey { key }));
    let choose = call(super::Call::ForwardSecrecy { on: true });
    assert_eq!(c.err(REQUESTER, choose.clone()), 1316, "governance only");
    c.ok(OTHER, choose);
    assert!(c.state.gatekeepers().forward_secrecy);
    // Era 1: the genesis gatekeeper alone rotates; the contract's key moves.
    c.until(40);
    c.ok(OTHER, c.commit(0, 1, &Hash([11; 32])));
    let mut k = c.key(id, &c.enclaves[0]);
    k.era = 1;
    k.signature = c.enclaves[0].sign(&k.signing_bytes());
    c.ok(OTHER, call(super::Call::PublishKey { key: k }));
    let x = c.executor(id);
    let request = |era: u64| {
        call(super::Call::RequestKey {
            contract: id,
            era,
            attestation: vec![1; 8],
        })
    };
    assert_eq!(c.err(3 + x, request(0)), 1309, "era 0's key is destroyed");
    c.ok(3 + x, request(1));
}

#[test]
fn a_gatekeeper_locks_the_larger_stake() {
    // The test chain's enclaves lock 1,000,000.
    let mut c = rotation_chain_with("contracts-stake", 1_000_001);
    let ids: Vec<PublicKey> = c.enclaves.iter().map(|e| e.identity()).collect();
    let elect = call(super::Call::ElectGatekeeper { enclave: ids[1] });
    assert_eq!(c.err(OTHER, elect), 1316, "less than a gatekeeper's stake");
    // The genesis gatekeeper itself falls short: at the next era nobody
    // qualifies, and the key in force stays.
    c.until(40);
    let set = c.state.gatekeepers();
    assert_eq!((set.era, set.rotation), (0, None));
    let mut c = rotation_chain_with("contracts-stake-ok", 1_000_000);
    c.ok(
        OTHER,
        call(super::Call::ElectGatekeeper {
            enclave: c.enclaves[1].identity(),
        }),
    );
}
