//! The contract ABI and engine: the example contracts of
//! `examples/contracts/` (C, built with `clang --target=wasm32-wasi`), and
//! small modules written here that break the ABI's rules.

use proctor_primitives::Address;
use proctor_vm::contract::{Contract, ContractLimits, ContractVm, Ending, Env, State};
use proctor_vm::{CheckError, VmError};
use std::path::Path;

const FUEL: u64 = 10_000_000;

fn example(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/contracts")
        .join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn vm() -> ContractVm {
    ContractVm::new(ContractLimits::default()).unwrap()
}

fn env(caller: u8, height: u64, msg: &str) -> Env {
    Env {
        caller: Address([caller; 20]),
        height,
        msg: msg.as_bytes().to_vec(),
        fuel: FUEL,
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// Applies `msg` from `caller` and returns (ending, reply).
fn command(
    vm: &ContractVm,
    c: &Contract,
    s: &mut State,
    caller: u8,
    msg: &str,
) -> (Ending, String) {
    let x = vm.handle(c, s, env(caller, 10, msg));
    assert!(x.instructions > 0, "{msg}: nothing charged");
    (x.ending, text(&x.reply).to_string())
}

fn query(vm: &ContractVm, c: &Contract, s: &State, caller: u8, msg: &str) -> (Ending, String) {
    let x = vm.query(c, s, env(caller, 10, msg));
    (x.ending, text(&x.reply).to_string())
}

#[test]
fn the_key_value_store_keeps_keys_to_their_owners() {
    let vm = vm();
    let kv = vm.load(&example("kv")).unwrap();
    let mut s = State::default();
    assert_eq!(
        command(&vm, &kv, &mut s, 1, "set color blue"),
        (Ending::Done, "ok".into())
    );
    assert_eq!(
        query(&vm, &kv, &s, 1, "get color"),
        (Ending::Done, "blue".into())
    );
    // Someone else may not read it, nor take it over.
    assert_eq!(
        query(&vm, &kv, &s, 2, "get color"),
        (Ending::Refused(3), "not the owner".into())
    );
    let before = s.hash();
    assert_eq!(
        command(&vm, &kv, &mut s, 2, "set color red"),
        (Ending::Refused(3), "not the owner".into())
    );
    assert_eq!(s.hash(), before, "a refused command changed the state");
    assert_eq!(
        query(&vm, &kv, &s, 2, "owner color"),
        (Ending::Done, "taken".into())
    );
    // The owner updates and deletes it.
    assert_eq!(
        command(&vm, &kv, &mut s, 1, "set color green").0,
        Ending::Done
    );
    assert_eq!(query(&vm, &kv, &s, 1, "get color").1, "green");
    assert_eq!(command(&vm, &kv, &mut s, 1, "del color").0, Ending::Done);
    assert_eq!(query(&vm, &kv, &s, 2, "owner color").1, "free");
    assert!(s.is_empty(), "{s:?}");
    assert_eq!(s.hash(), State::default().hash());
    assert_eq!(
        command(&vm, &kv, &mut s, 1, "frobnicate").0,
        Ending::Refused(4)
    );
}

#[test]
fn the_sealed_bid_auction_publishes_only_winner_and_price() {
    let vm = vm();
    let a = vm.load(&example("auction")).unwrap();
    let mut s = State::default();
    assert_eq!(
        vm.init(&a, &mut s, env(9, 1, "close 100")).ending,
        Ending::Done
    );
    let bid = |s: &mut State, who: u8, amount: u64, height: u64| {
        vm.handle(&a, s, env(who, height, &format!("bid {amount}")))
    };
    assert_eq!(bid(&mut s, 1, 50, 10).ending, Ending::Done);
    assert_eq!(bid(&mut s, 2, 70, 11).ending, Ending::Done);
    assert_eq!(bid(&mut s, 3, 60, 12).ending, Ending::Done);
    assert_eq!(
        bid(&mut s, 1, 55, 13).ending,
        Ending::Done,
        "a bid is replaced"
    );
    // Nobody learns another's bid, or the result, before the close.
    assert_eq!(query(&vm, &a, &s, 3, "mybid"), (Ending::Done, "60".into()));
    assert_eq!(query(&vm, &a, &s, 4, "mybid").0, Ending::Refused(2));
    assert_eq!(query(&vm, &a, &s, 1, "result").0, Ending::Refused(3));
    let early = vm.handle(&a, &mut s, env(1, 99, "close"));
    assert_eq!(early.ending, Ending::Refused(3));
    assert!(early.emits.is_empty());
    assert_eq!(
        bid(&mut s, 4, 1000, 100).ending,
        Ending::Refused(3),
        "late bid"
    );
    // At the close: the highest bidder wins at the second price.
    let closed = vm.handle(&a, &mut s, env(5, 100, "close"));
    assert_eq!(closed.ending, Ending::Done);
    let expected = format!("winner {} price 60", "02".repeat(20));
    assert_eq!(text(&closed.reply), expected);
    assert_eq!(closed.emits.len(), 1);
    assert_eq!(&closed.emits[0][..8], &[0; 8], "to the chain");
    assert_eq!(text(&closed.emits[0][8..]), expected);
    assert_eq!(query(&vm, &a, &s, 7, "result"), (Ending::Done, expected));
    assert_eq!(
        vm.handle(&a, &mut s, env(5, 101, "close")).ending,
        Ending::Refused(4)
    );
}

#[test]
fn two_engines_given_the_same_log_reach_the_same_state_and_counts() {
    let log: Vec<(u8, String)> = (0..200)
        .map(|i| ((i % 7) as u8, format!("set k{} v{}", i % 13, i * 31)))
        .collect();
    let run = |log: &[(u8, String)]| {
        let vm = vm();
        let kv = vm.load(&example("kv")).unwrap();
        let mut s = State::default();
        let counts: Vec<(Ending, u64)> = log
            .iter()
            .map(|(who, m)| {
                let x = vm.handle(&kv, &mut s, env(*who, 5, m));
                (x.ending, x.instructions)
            })
            .collect();
        (s, counts)
    };
    let (a, ca) = run(&log);
    let (b, cb) = run(&log);
    assert_eq!(a.hash(), b.hash());
    assert_eq!(ca, cb);
    assert!(
        ca.iter().any(|(e, _)| *e != Ending::Done),
        "some were refused"
    );
    // Another order is another history: commands 0 and 13 set the same
    // key from different callers, so the other one owns it.
    let mut other = log.clone();
    other.swap(0, 13);
    assert_ne!(run(&other).0.hash(), a.hash());
    // The checkpoint encoding decodes to the same state.
    let again = State::from_bytes(&a.to_bytes(), &ContractLimits::default()).unwrap();
    assert_eq!(again.hash(), a.hash());
    assert_eq!(again.len(), a.len());
    assert_eq!(again.bytes(), a.bytes());
}

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap()
}

/// A contract whose `handle` sets key "k" to `len` bytes and then returns
/// `ret`; whose `query` does what `query_body` says.
fn writer(len: u32, ret: i32, query_body: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
        (import "proctor" "set" (func $set (param i32 i32 i32 i32)))
        (import "proctor" "emit" (func $emit (param i32 i32)))
        (import "proctor" "reply" (func $reply (param i32 i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "k")
        (func (export "handle") (result i32)
            (call $set (i32.const 0) (i32.const 1) (i32.const 16) (i32.const {len}))
            (call $emit (i32.const 0) (i32.const 9))
            (call $reply (i32.const 0) (i32.const 1))
            (i32.const {ret}))
        (func (export "query") (result i32) {query_body} (i32.const 0)))"#
    ))
}

#[test]
fn a_refused_or_failed_command_reverts_its_writes_and_is_still_charged() {
    let vm = vm();
    let mut s = State::default();
    for (ret, ending) in [(7, Ending::Refused(7)), (0, Ending::Done)] {
        let c = vm.load(&writer(100, ret, "")).unwrap();
        let before = s.hash();
        let x = vm.handle(&c, &mut s, env(1, 1, ""));
        assert_eq!(x.ending, ending);
        assert!(x.instructions > 0);
        assert_eq!(x.reply, b"k", "the reply is kept to say why");
        if ret == 0 {
            assert_eq!(s.get(b"k").map(<[u8]>::len), Some(100));
            assert_eq!(x.emits.len(), 1);
        } else {
            assert_eq!(s.hash(), before);
            assert!(x.emits.is_empty());
        }
    }
    // Out of fuel: reverted, the whole budget charged.
    let c = vm.load(&writer(10, 0, "")).unwrap();
    let mut s = State::default();
    let x = vm.handle(
        &c,
        &mut s,
        Env {
            fuel: 3,
            ..env(1, 1, "")
        },
    );
    assert_eq!(x.ending, Ending::OutOfFuel);
    assert_eq!(x.instructions, 3);
    assert!(s.is_empty());
}

#[test]
fn writes_are_charged_by_the_byte() {
    let vm = vm();
    let count = |len| {
        let c = vm.load(&writer(len, 0, "")).unwrap();
        vm.handle(&c, &mut State::default(), env(1, 1, ""))
            .instructions
    };
    // One instruction per 4 bytes moved, and nothing else differs.
    assert_eq!(count(4000) - count(0), 1000);
}

#[test]
fn a_query_may_not_write_or_emit() {
    let vm = vm();
    let mut s = State::default();
    let honest = vm.load(&writer(8, 0, "")).unwrap();
    assert_eq!(
        vm.handle(&honest, &mut s, env(1, 1, "")).ending,
        Ending::Done
    );
    let before = s.hash();
    for body in [
        "(call $set (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1))",
        "(call $emit (i32.const 0) (i32.const 9))",
    ] {
        let c = vm.load(&writer(8, 0, body)).unwrap();
        let x = vm.query(&c, &s, env(1, 1, ""));
        match &x.ending {
            Ending::Trapped(why) => assert!(why.contains("a query may not"), "{why}"),
            e => panic!("{body}: {e:?}"),
        }
    }
    assert_eq!(s.hash(), before);
}

#[test]
fn modules_outside_the_abi_are_refused() {
    let vm = vm();
    let refused = |src: &str| match vm.load(&wat(src)) {
        Err(VmError::Rejected(e)) => e,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted {src}"),
    };
    // A task import, a wrong signature, the meter's own callback.
    for (import, name) in [
        (
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
            "fd_write",
        ),
        (
            r#"(import "proctor" "get" (func (param i32 i32) (result i32)))"#,
            "get",
        ),
        (r#"(import "proctor" "check" (func))"#, "check"),
    ] {
        let e = refused(&format!(
            r#"(module {import} (func (export "handle") (result i32) (i32.const 0))
                (func (export "query") (result i32) (i32.const 0)))"#
        ));
        assert!(
            matches!(&e, CheckError::ForbiddenImport { name: n, .. } | CheckError::ImportSignature { name: n, .. } if n == name),
            "{e}"
        );
    }
    // No query; an entry point of the wrong type; an extra export.
    for exports in [
        r#"(func (export "handle") (result i32) (i32.const 0))"#,
        r#"(func (export "handle") (result i32) (i32.const 0)) (func (export "query"))"#,
        r#"(func (export "handle") (result i32) (i32.const 0)) (func (export "query") (result i32) (i32.const 0)) (func (export "_start"))"#,
    ] {
        let e = refused(&format!("(module {exports})"));
        assert!(matches!(e, CheckError::EntryPoints { .. }), "{e}");
    }
}

#[test]
fn state_decoding_refuses_malformed_checkpoints() {
    let limits = ContractLimits::default();
    let vm = vm();
    let kv = vm.load(&example("kv")).unwrap();
    let mut s = State::default();
    for i in 0..5 {
        vm.handle(&kv, &mut s, env(1, 1, &format!("set k{i} value{i}")));
    }
    let good = s.to_bytes();
    assert!(State::from_bytes(&good, &limits).is_ok());
    assert!(State::from_bytes(&good[..good.len() - 1], &limits).is_err());
    assert!(State::from_bytes(&[good.clone(), vec![0]].concat(), &limits).is_err());
    // Two entries swapped: out of order.
    let mut two = State::default();
    vm.handle(&kv, &mut two, env(1, 1, "set a 1"));
    let b = two.to_bytes();
    // Entries: "o/a" then "v/a"; rename the second's key to sort first.
    let pos = b.windows(3).position(|w| w == b"v/a").unwrap();
    let mut swapped = b.clone();
    swapped[pos] = b'a';
    assert!(State::from_bytes(&swapped, &limits).is_err());
    let small = ContractLimits {
        max_state_bytes: 10,
        ..ContractLimits::default()
    };
    assert!(State::from_bytes(&good, &small).is_err());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random bytes never panic the state decoder.
        #[test]
        fn state_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = State::from_bytes(&b, &ContractLimits::default());
        }

        /// A contract module with bytes flipped is refused cleanly or, if
        /// still valid, runs within its budget.
        #[test]
        fn mutated_contracts_are_refused_or_run_bounded(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        ) {
            let vm = vm();
            let mut m = example("kv");
            for (i, b) in flips {
                let at = i.index(m.len());
                m[at] ^= b;
            }
            if let Ok(c) = vm.load(&m) {
                let mut s = State::default();
                let x = vm.handle(&c, &mut s, Env { fuel: 100_000, ..env(1, 1, "set a b") });
                prop_assert!(x.instructions <= 100_000);
            }
        }
    }
}
