//! The oracle's request, delivery and cancel paths, every fee race among
//! them, and the checks a forged or altered datagram meets; every block
//! checks that supply grows by exactly the block reward.

use super::*;
use crate::modules::tests::*;
use crate::{Call, Event};
use proctor_primitives::{Amount, Keypair};
use proctor_tee::Platform;
use proctor_tee::sim::sim_measurement;
use proptest::prelude::*;

const FEE: u128 = 5_000;
impl Chain {
    fn request(&mut self, url: &str, select: Option<&str>) -> u64 {
        let id = self.state.oracle_next_id();
        self.ok(REQUESTER, public(url, select, FEE));
        id
    }
}

fn cancel(id: u64) -> Call {
    Call::Oracle(super::Call::Cancel { id })
}

#[test]
fn a_delivered_datagram_pays_the_relay_and_is_recorded() {
    let mut c = Chain::new("deliver", 2);
    let before = c.balance(REQUESTER);
    let id = c.request("https://example.org/price", Some("/usd"));
    assert_eq!(
        c.balance(REQUESTER),
        before - FEE - 1,
        "fee and tx fee taken"
    );
    let r = c.state.oracle_request(id).unwrap();
    assert_eq!(r.state, RequestState::Pending);
    assert_eq!(c.state.oracle_pending(&r.enclave), vec![id]);
    let op = c.operator_of(id);
    let op_before = c.balance(op);
    let events = c.ok(MINER, c.delivery(id));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Oracle(super::Event::OracleDelivered { id: i, fee_paid, .. })
            if *i == id && fee_paid.0 == FEE
    )));
    assert_eq!(
        c.balance(op),
        op_before + FEE,
        "the operator receives the fee"
    );
    let r = c.state.oracle_request(id).unwrap();
    assert_eq!(r.state, RequestState::Delivered);
    assert_eq!(r.height, Some(c.height));
    assert_eq!(r.fee_paid.0, FEE);
    assert_eq!(r.escrow, Amount::ZERO);
    assert!(c.state.oracle_pending(&r.enclave).is_empty());
    let Some(Datagram {
        body: Body::Public(Outcome::Fetched { value, .. }),
        ..
    }) = r.datagram
    else {
        panic!("no datagram recorded");
    };
    assert_eq!(value, Value::Json("42".into()));
}

#[test]
fn assignment_is_deterministic_and_spreads_over_providers() {
    let mut a = Chain::new("assign-a", 3);
    let mut b = Chain::new("assign-b", 3);
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (x, y) = (
            a.request("https://example.org/", None),
            b.request("https://example.org/", None),
        );
        // The same chain data picks the same slot in the market's list.
        assert_eq!(a.assigned(x), b.assigned(y));
        used.insert(a.assigned(x));
    }
    assert!(used.len() > 1, "every request went to one enclave");
}

#[test]
fn fees_outside_the_chains_range_and_bad_urls_are_refused() {
    let mut c = Chain::new("range", 1);
    let p = c.state.params().oracle.clone();
    let low = p.min_fee.0 - 1;
    assert_eq!(c.err(REQUESTER, public("https://a.org/", None, low)), 1262);
    let high = p.max_fee.0 + 1;
    assert_eq!(c.err(REQUESTER, public("https://a.org/", None, high)), 1262);
    for bad in [
        "http://a.org/",
        "https://",
        "https://user@a.org/",
        "https://a.org:0/",
        "https://a.org:99999/",
        "https://a b.org/",
        "https://a.org/#frag",
    ] {
        assert_eq!(c.err(REQUESTER, public(bad, None, FEE)), 1261, "{bad}");
    }
    assert_eq!(
        c.err(REQUESTER, public("https://a.org/", Some("usd"), FEE)),
        1261
    );
    let mut far = public("https://a.org/", None, FEE);
    if let Call::Oracle(super::Call::Request {
        deadline_blocks, ..
    }) = &mut far
    {
        *deadline_blocks = p.max_deadline_blocks + 1;
    }
    assert_eq!(c.err(REQUESTER, far), 1261);
}

#[test]
fn a_chain_without_providers_refuses_requests() {
    let mut c = Chain::new("none", 0);
    assert_eq!(c.err(REQUESTER, public("https://a.org/", None, FEE)), 1263);
}

#[test]
fn a_forged_datagram_from_an_unregistered_key_is_refused_with_its_own_code() {
    let mut c = Chain::new("forged", 1);
    let id = c.request("https://example.org/", None);
    let d = c.datagram(id, &c.outsider);
    let forged = c.signed(d, &c.outsider);
    assert_eq!(c.err(MINER, forged), 1267);
    assert_eq!(
        c.state.oracle_request(id).unwrap().state,
        RequestState::Pending
    );
}

#[test]
fn a_datagram_from_a_registered_enclave_not_assigned_is_refused() {
    let mut c = Chain::new("other-enclave", 2);
    let id = c.request("https://example.org/", None);
    let other = &c.enclaves[1 - c.assigned(id)];
    let call = c.signed(c.datagram(id, other), other);
    assert_eq!(c.err(MINER, call), 1268);
}

#[test]
fn an_altered_datagram_fails_its_signature() {
    let mut c = Chain::new("altered", 1);
    let id = c.request("https://example.org/", None);
    let Call::Oracle(super::Call::Deliver {
        mut datagram,
        signature,
    }) = c.delivery(id)
    else {
        unreachable!()
    };
    // The relay swaps the value after the enclave signed.
    datagram.body = Body::Public(Outcome::Fetched {
        server_name: "example.org".into(),
        cert_hash: Hash::of(b"cert"),
        status: 200,
        value: Value::Json("43".into()),
    });
    let call = Call::Oracle(super::Call::Deliver {
        datagram,
        signature,
    });
    assert_eq!(c.err(MINER, call), 1269);
}

#[test]
fn a_datagram_must_match_params_roots_time_and_kind() {
    let mut c = Chain::new("match", 1);
    let id = c.request("https://example.org/a", None);
    type Alter = fn(&mut Datagram);
    let cases: [(Alter, i32); 5] = [
        (|d| d.params = Hash::of(b"other params"), 1270),
        (|d| d.roots = Hash::of(b"host's roots"), 1271),
        // Before the request: the host wound the clock back to pass an
        // expired certificate.
        (|d| d.time_ms = T0, 1272),
        // From the future.
        (|d| d.time_ms += 1_000_000, 1272),
        (
            |d| {
                d.body = Body::Sealed {
                    ciphertext: vec![1; 40],
                }
            },
            1275,
        ),
    ];
    for (alter, code) in cases {
        let mut d = c.datagram(id, &c.enclaves[0]);
        alter(&mut d);
        let call = c.signed(d, &c.enclaves[0]);
        assert_eq!(c.err(MINER, call), code);
    }
    let mut d = c.datagram(id, &c.enclaves[0]);
    d.body = Body::Public(Outcome::Fetched {
        server_name: "example.org".into(),
        cert_hash: Hash::ZERO,
        status: 200,
        value: Value::Json("x".repeat(MAX_VALUE + 1)),
    });
    let call = c.signed(d, &c.enclaves[0]);
    assert_eq!(c.err(MINER, call), 1274);
    c.ok(MINER, c.delivery(id));
}

#[test]
fn deliver_then_cancel_keeps_the_delivery() {
    let mut c = Chain::new("deliver-cancel", 1);
    let id = c.request("https://example.org/", None);
    c.ok(MINER, c.delivery(id));
    let before = c.balance(REQUESTER);
    assert_eq!(c.err(REQUESTER, cancel(id)), 1266);
    assert_eq!(c.balance(REQUESTER), before);
}

#[test]
fn cancel_then_deliver_pays_the_relay_only_the_cancellation_fee() {
    let mut c = Chain::new("cancel-deliver", 1);
    let cancel_fee = c.state.params().oracle.cancel_fee.0;
    let id = c.request("https://example.org/", None);
    let before = c.balance(REQUESTER);
    c.ok(REQUESTER, cancel(id));
    assert_eq!(c.balance(REQUESTER), before + FEE - cancel_fee - 1);
    let r = c.state.oracle_request(id).unwrap();
    assert_eq!(
        (r.state, r.refunded.0, r.escrow.0),
        (RequestState::Cancelled, FEE - cancel_fee, cancel_fee)
    );
    let op = c.operator_of(id);
    let op_before = c.balance(op);
    let events = c.ok(MINER, c.delivery(id));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Oracle(super::Event::OracleLateDelivery { fee_paid, .. }) if fee_paid.0 == cancel_fee
    )));
    assert_eq!(c.balance(op), op_before + cancel_fee);
    let r = c.state.oracle_request(id).unwrap();
    assert_eq!(
        r.state,
        RequestState::Cancelled,
        "a late datagram is not data"
    );
    assert!(r.datagram.is_none());
    // Once.
    assert_eq!(c.err(MINER, c.delivery(id)), 1266);
}

#[test]
fn a_second_delivery_is_refused() {
    let mut c = Chain::new("twice", 1);
    let id = c.request("https://example.org/", None);
    let d = c.delivery(id);
    c.ok(MINER, d.clone());
    let op = c.operator_of(id);
    let op_before = c.balance(op);
    assert_eq!(c.err(MINER, d), 1266);
    assert_eq!(c.balance(op), op_before);
}

#[test]
fn no_delivery_by_the_deadline_refunds_and_a_late_one_is_refused() {
    let mut c = Chain::new("deadline", 1);
    let id = c.request("https://example.org/", None);
    let late = c.delivery(id);
    let before = c.balance(REQUESTER);
    let deadline = c.state.oracle_request(id).unwrap().deadline;
    let mut expired = false;
    while c.height < deadline {
        let (_, events) = c.block(None).unwrap();
        expired |= events.iter().any(|e| {
            matches!(e, Event::Oracle(super::Event::OracleExpired { refunded, .. }) if refunded.0 == FEE)
        });
    }
    assert!(expired, "no expiry event at the deadline");
    assert_eq!(c.balance(REQUESTER), before + FEE);
    let r = c.state.oracle_request(id).unwrap();
    assert_eq!(r.state, RequestState::Failed);
    assert!(r.error.unwrap().contains("deadline"));
    assert_eq!(c.err(MINER, late), 1273);
}

#[test]
fn a_cancelled_request_nobody_delivered_pays_its_cancellation_fee_to_the_miner() {
    let mut c = Chain::new("cancel-expire", 1);
    let cancel_fee = c.state.params().oracle.cancel_fee.0;
    let id = c.request("https://example.org/", None);
    c.ok(REQUESTER, cancel(id));
    let deadline = c.state.oracle_request(id).unwrap().deadline;
    let mut paid = 0;
    while c.height < deadline {
        let (_, events) = c.block(None).unwrap();
        for e in events {
            if let Event::Rewards(crate::rewards::Event::BlockReward { fees, .. }) = e {
                paid = fees.0;
            }
        }
    }
    assert_eq!(paid, cancel_fee, "the last block's fees are the held fee");
    assert_eq!(c.state.oracle_request(id).unwrap().escrow, Amount::ZERO);
}

#[test]
fn an_enclave_whose_measurement_was_retired_cannot_deliver_after_the_grace() {
    let mut c = Chain::new("retired", 1);
    let id = c.state.oracle_next_id();
    let mut call = public("https://example.org/", None, FEE);
    if let Call::Oracle(super::Call::Request {
        deadline_blocks, ..
    }) = &mut call
    {
        *deadline_blocks = 100;
    }
    c.ok(REQUESTER, call);
    let retire = Call::Governance(crate::governance::Call::UpdateMeasurements {
        add: vec![],
        retire: vec![sim_measurement()],
    });
    c.ok(OTHER, retire);
    let grace = c.state.params().measurement_grace_blocks;
    for _ in 0..grace {
        c.block(None).unwrap();
    }
    assert_eq!(c.err(MINER, c.delivery(id)), 1276);
}

#[test]
fn only_the_requester_may_cancel() {
    let mut c = Chain::new("cancel-other", 1);
    let id = c.request("https://example.org/", None);
    assert_eq!(c.err(OTHER, cancel(id)), 1265);
    assert_eq!(c.err(OTHER, cancel(id + 9)), 1260);
}

#[test]
fn a_callback_takes_its_part_of_the_fee_for_the_block() {
    let mut c = Chain::new("callback", 1);
    let id = c.state.oracle_next_id();
    let cb = Callback {
        contract: 7,
        fee: Amount(1_000),
    };
    let mut call = public("https://example.org/", None, FEE);
    if let Call::Oracle(super::Call::Request { callback, .. }) = &mut call {
        *callback = Some(cb.clone());
    }
    c.ok(REQUESTER, call);
    let op = c.operator_of(id);
    let op_before = c.balance(op);
    let events = c.ok(MINER, c.delivery(id));
    assert!(
        events.contains(&Event::Oracle(super::Event::OracleCallback {
            id,
            contract: 7,
            fee: cb.fee,
        }))
    );
    assert_eq!(c.balance(op), op_before + FEE - 1_000);
    let mut greedy = public("https://example.org/", None, FEE);
    if let Call::Oracle(super::Call::Request { callback, .. }) = &mut greedy {
        *callback = Some(Callback {
            contract: 7,
            fee: Amount(FEE + 1),
        });
    }
    assert_eq!(c.err(REQUESTER, greedy), 1261);
}

#[test]
fn a_private_request_goes_to_the_enclave_it_is_sealed_to() {
    let mut c = Chain::new("private", 2);
    let reply_key = proctor_tee::envelope::RecipientKey::from_seed(&[3; 32]).public();
    let private = |enclave| {
        Call::Oracle(super::Call::Request {
            query: Query::Private {
                enclave,
                sealed: vec![9; 64],
                reply_key,
                own: vec![8; 64],
            },
            callback: None,
            fee: Amount(FEE),
            deadline_blocks: 0,
        })
    };
    assert_eq!(c.err(REQUESTER, private(c.outsider.identity())), 1264);
    let id = c.state.oracle_next_id();
    c.ok(REQUESTER, private(c.enclaves[1].identity()));
    assert_eq!(c.assigned(id), 1);
    let mut d = c.datagram(id, &c.enclaves[1]);
    let public_body = c.signed(d.clone(), &c.enclaves[1]);
    assert_eq!(c.err(MINER, public_body), 1275);
    d.body = Body::Sealed {
        ciphertext: vec![5; 80],
    };
    c.ok(MINER, c.signed(d, &c.enclaves[1]));
    assert_eq!(
        c.state.oracle_request(id).unwrap().state,
        RequestState::Delivered
    );
}

#[derive(Clone, Debug)]
enum Op {
    Request,
    Cancel { who: usize, id: u64 },
    Deliver { id: u64 },
    Idle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Request),
        (0usize..2, 0u64..6).prop_map(|(who, id)| Op::Cancel { who, id }),
        (0u64..6).prop_map(|id| Op::Deliver { id }),
        Just(Op::Idle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any interleaving of requests, cancels (by anyone), deliveries and
    /// idle blocks past deadlines conserves supply (`block` checks it), and
    /// a request ends with nothing held once its deadline is past.
    #[test]
    fn every_race_conserves_supply(ops in proptest::collection::vec(op(), 1..24)) {
        let mut c = Chain::new("races", 2);
        for op in ops {
            let _ = match op {
                Op::Request => c.block(Some((REQUESTER, public("https://example.org/", None, FEE)))),
                Op::Cancel { who, id } => c.block(Some((who, cancel(id)))),
                Op::Deliver { id } if c.state.oracle_request(id).is_some() => {
                    let d = c.delivery(id);
                    c.block(Some((MINER, d)))
                }
                Op::Deliver { .. } | Op::Idle => c.block(None),
            };
        }
        for id in 0..c.state.oracle_next_id() {
            let r = c.state.oracle_request(id).unwrap();
            if c.height > r.deadline {
                prop_assert_eq!(r.escrow, Amount::ZERO);
                prop_assert!(r.state != RequestState::Pending);
            }
            prop_assert!(r.fee_paid.0 + r.refunded.0 + r.escrow.0 <= r.fee.0);
        }
    }

    /// The decoders of what a relay or requester sends never panic.
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = proctor_primitives::codec::decode::<super::Call>("oracle call", &bytes);
        let _ = proctor_primitives::codec::decode::<Datagram>("datagram", &bytes);
        let _ = proctor_primitives::codec::decode::<Outcome>("outcome", &bytes);
    }

    /// Every event and record serializes to JSON and back (the RPC's form).
    #[test]
    fn json_round_trips(value in "[a-z0-9\"\\[\\],]{0,20}", failed: bool) {
        let outcome = match failed {
            false => Outcome::Fetched {
                server_name: "a.org".into(),
                cert_hash: Hash::ZERO,
                status: 200,
                value: Value::Json(value),
            },
            true => Outcome::Failed { reason: FailReason::Tls, detail: value },
        };
        for body in [Body::Public(outcome), Body::Sealed { ciphertext: vec![1, 2] }] {
            let e = crate::Event::Oracle(super::Event::OracleDelivered {
                id: 1,
                enclave: Keypair::from_secret(&[1; 32]).public(),
                state: RequestState::Delivered,
                body,
                fee_paid: Amount(2),
            });
            let text = serde_json::to_string(&e).unwrap();
            let back: crate::Event = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, e);
        }
    }

    #[test]
    fn url_parsing_never_panics(s in "\\PC{0,80}") {
        let _ = Url::parse(&s);
        let _ = Url::parse(&format!("https://{s}"));
    }
}
