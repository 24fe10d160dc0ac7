//! Helpers to build chains in tests and benchmarks (not used by the node).

use crate::types::*;
use proctor_primitives::{Address, Amount, Hash, Keypair, PublicKey};
use proctor_tee::{Platform, registration_report_data};

/// Parameters for a local test chain.
pub fn params(sim_root: Option<PublicKey>, measurement: Hash) -> ChainParams {
    ChainParams {
        target_block_ms: 1_000,
        initial_difficulty: 1_000_000,
        min_difficulty: 1_000,
        block_reward: Amount(50_000_000),
        min_fee: Amount(1),
        max_block_txs: 20_000,
        allow_sim_quotes: sim_root.is_some(),
        sim_attestation_root: sim_root,
        dcap: None,
        allowed_measurements: vec![measurement],
        filler_module: Hash::ZERO,
        registration_blocks: 10_000,
        min_stake: Amount(1_000),
        unbonding_blocks: 10,
        measurement_grace_blocks: 10,
        governance: None,
        finality_depth: 6,
        market: Default::default(),
        oracle: Default::default(),
        contracts: Default::default(),
    }
}

/// A genesis funding each key with `amount`.
pub fn genesis(keys: &[Keypair], amount: u128, params: ChainParams) -> Genesis {
    Genesis {
        chain_id: "proctor-test".into(),
        timestamp: 1_700_000_000_000,
        params,
        allocations: keys
            .iter()
            .map(|k| Allocation {
                address: k.public().address(),
                amount: Amount(amount),
            })
            .collect(),
        enclaves: vec![],
    }
}

/// A signed transfer.
pub fn transfer(
    g: &Hash,
    from: &Keypair,
    nonce: u64,
    to: &Keypair,
    amount: u128,
    fee: u128,
) -> SignedTransaction {
    Transaction {
        chain: *g,
        signer: from.public(),
        nonce,
        fee: Amount(fee),
        call: Call::Accounts(crate::accounts::Call::Transfer {
            to: to.public().address(),
            amount: Amount(amount),
        }),
    }
    .sign(from)
}

/// Deterministic keys for tests.
pub fn keys(n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            Keypair::from_secret(&seed)
        })
        .collect()
}

/// A registration of `platform`'s enclave on the chain `genesis`, valid until
/// `expires_at`, with its quote correctly bound.
pub fn register_call(
    platform: &dyn Platform,
    operator: &Address,
    genesis: &Hash,
    expires_at: u64,
    stake: u128,
) -> Call {
    let (identity, encryption_key) = (platform.identity(), platform.encryption_key());
    let rd = registration_report_data(&identity, &encryption_key, operator, genesis, expires_at);
    let quote = platform.quote(&rd).expect("the platform quotes");
    Call::Registry(crate::registry::Call::RegisterEnclave {
        identity,
        encryption_key,
        expires_at,
        quote,
        stake: Amount(stake),
    })
}
