//! Decoders of network and RPC bytes: transactions, blocks, proofs.
#![no_main]
use proctor_primitives::codec::decode;
use proctor_state::{Block, PouwProof, SignedTransaction};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = decode::<SignedTransaction>("tx", data);
    let _ = decode::<Block>("block", data);
    let _ = decode::<PouwProof>("proof", data);
});
