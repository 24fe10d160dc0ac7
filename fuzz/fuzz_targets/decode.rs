//! Decoders of network and RPC bytes: transactions (with their quotes and
//! registration calls), blocks, proofs, quotes, oracle datagrams, outcomes,
//! sealed params and URLs, contract receipts, checkpoints (and the state
//! they hold), queries, answers, handovers and attestations; a decoded DCAP quote also
//! goes through the verifier, which must fail cleanly on garbage.
#![no_main]
use proctor_primitives::codec::decode;
use proctor_state::{Block, Call, PouwProof, SignedTransaction};
use proctor_tee::{Quote, TrustPolicy, verify_quote};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = decode::<SignedTransaction>("tx", data);
    let _ = decode::<Block>("block", data);
    let _ = decode::<PouwProof>("proof", data);
    let _ = decode::<Call>("call", data);
    let _ = decode::<proctor_state::oracle::Datagram>("datagram", data);
    let _ = decode::<proctor_state::oracle::Outcome>("outcome", data);
    let _ = decode::<proctor_state::oracle::Params>("params", data);
    let _ = decode::<proctor_state::contracts::Receipt>("receipt", data);
    let _ = decode::<proctor_state::contracts::Checkpoint>("checkpoint", data);
    let _ = decode::<proctor_enclave::contracts::SignedQuery>("query", data);
    let _ = decode::<proctor_enclave::contracts::QueryAnswer>("answer", data);
    let _ = decode::<proctor_enclave::contracts::Handover>("handover", data);
    let _ = decode::<proctor_enclave::contracts::PeerAttestation>("attestation", data);
    if let Ok(s) = proctor_vm::contract::State::from_bytes(data, &Default::default()) {
        let _ = s.hash();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = proctor_state::oracle::Url::parse(s);
    }
    if let Ok(q) = decode::<Quote>("quote", data) {
        let _ = verify_quote(&q, &TrustPolicy::default(), 0);
    }
});
