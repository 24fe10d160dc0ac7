//! The genesis: the state at height 0 (parameters checked, allowlist,
//! allocations, genesis enclaves registered through the registry like any
//! other) and the genesis block.

use crate::context::State;
use crate::error::GenesisError;
use crate::modules::accounts;
use crate::modules::governance::measurements_key;
use crate::smt::{Change, Smt};
use crate::types::*;
use proctor_primitives::{Address, Hash, codec};
use std::collections::BTreeMap;
use std::sync::Arc;

/// State tree key of the chain parameters (the core's one record).
fn params_key() -> Hash {
    crate::context::key("proctor/core", "params", &[])
}

impl State {
    /// The state at height 0.
    pub fn genesis(g: &Genesis) -> Result<State, GenesisError> {
        let p = &g.params;
        validate_params(p)?;
        let mut entries = BTreeMap::new();
        entries.insert(
            params_key(),
            codec::encode(&Record::Params(Box::new(p.clone()))),
        );
        let allowlist = p.allowed_measurements.iter().map(|m| MeasurementEntry {
            measurement: *m,
            retired_at: None,
        });
        entries.insert(
            measurements_key(),
            codec::encode(&Record::from(
                crate::modules::governance::Record::Measurements(allowlist.collect()),
            )),
        );
        for a in &g.allocations {
            let key = accounts::account_key(&a.address);
            let rec = Record::from(accounts::Record::Account(Account {
                balance: a.amount,
                nonce: 0,
            }));
            if entries.insert(key, codec::encode(&rec)).is_some() {
                return Err(GenesisError::DuplicateAllocation(a.address));
            }
        }
        // The genesis enclaves' quotes bind the base hash (the full one covers
        // them); every later registration binds the full hash.
        let mut state = State {
            genesis_hash: g.base_hash(),
            params: Arc::new(p.clone()),
            tree: Smt::from_entries(entries),
        };
        if !g.enclaves.is_empty() {
            let mut o = state.read();
            for (i, e) in g.enclaves.iter().enumerate() {
                if g.enclaves[..i].iter().any(|x| x.identity == e.identity) {
                    return Err(GenesisError::Enclave {
                        identity: e.identity,
                        reason: "listed twice".into(),
                    });
                }
                state
                    .register_enclave(
                        &mut o,
                        e.operator,
                        (&e.identity, &e.encryption_key, e.expires_at),
                        (&e.quote, None),
                        e.stake,
                        0,
                        g.timestamp,
                    )
                    .map_err(|err| GenesisError::Enclave {
                        identity: e.identity,
                        reason: err.to_string(),
                    })?;
            }
            let changes: Vec<Change> = o
                .writes
                .into_iter()
                .map(|(k, v)| (k, v.map(Arc::from)))
                .collect();
            state.tree.update(&changes);
        }
        state.genesis_hash = g.hash();
        Ok(state)
    }

    /// Rebuilds a state from stored tree entries (as saved from [`Applied::changes`]).
    pub fn from_entries(g: &Genesis, entries: impl IntoIterator<Item = (Hash, Vec<u8>)>) -> State {
        State {
            genesis_hash: g.hash(),
            params: Arc::new(g.params.clone()),
            tree: Smt::from_entries(entries),
        }
    }

    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The genesis block of `g`, whose state root is this (genesis) state's.
    pub fn genesis_block(&self, g: &Genesis) -> Block {
        Block {
            header: Header {
                template: Template {
                    parent: Hash::ZERO,
                    height: 0,
                    timestamp: g.timestamp,
                    state_root: self.root(),
                    tx_root: tx_root(&[]),
                    difficulty: g.params.initial_difficulty,
                    miner: Address([0; 20]),
                },
                pouw: None,
            },
            txs: vec![],
        }
    }
}

/// Every parameter in its range, so no later block can fail on a parameter
/// the genesis let through (a fee split over 100%, a slash over the stake).
fn validate_params(p: &ChainParams) -> Result<(), GenesisError> {
    let m = &p.market;
    let bps = |v: u32| u128::from(v) <= proctor_market::settle::BPS;
    let o = &p.oracle;
    let c = &p.contracts;
    let rules: [(bool, &'static str); 23] = [
        (p.target_block_ms > 0, "target_block_ms must be positive"),
        (
            p.initial_difficulty > 0 && p.min_difficulty > 0,
            "difficulty must be positive",
        ),
        (
            p.min_difficulty <= p.initial_difficulty,
            "min_difficulty must not exceed initial_difficulty",
        ),
        (
            p.max_block_txs > 0 && p.max_block_txs <= 1_000_000,
            "max_block_txs must be 1 to 1,000,000",
        ),
        (
            !p.allow_sim_quotes || p.sim_attestation_root.is_some(),
            "allow_sim_quotes needs sim_attestation_root",
        ),
        (
            p.registration_blocks > 0,
            "registration_blocks must be positive",
        ),
        (p.finality_depth > 0, "finality_depth must be positive"),
        (
            m.fees.is_valid(),
            "market.fees: fee_bps at most 10000 and provider_bps + app_bps at most 10000",
        ),
        (
            bps(m.slash_wrong_bps),
            "market.slash_wrong_bps must be at most 10000",
        ),
        (
            bps(m.slash_late_bps),
            "market.slash_late_bps must be at most 10000",
        ),
        (m.max_replicas > 0, "market.max_replicas must be positive"),
        (
            m.max_placements_per_block > 0,
            "market.max_placements_per_block must be positive",
        ),
        (
            m.max_deadline_blocks > 0,
            "market.max_deadline_blocks must be positive",
        ),
        (
            p.measurement_grace_blocks <= u64::MAX / 2 && p.unbonding_blocks <= u64::MAX / 2,
            "measurement_grace_blocks and unbonding_blocks must be below 2^63",
        ),
        (
            o.min_fee <= o.max_fee && o.cancel_fee <= o.min_fee,
            "oracle fees: min_fee at most max_fee, cancel_fee at most min_fee",
        ),
        (
            o.default_deadline_blocks > 0 && o.default_deadline_blocks <= o.max_deadline_blocks,
            "oracle.default_deadline_blocks must be 1 to max_deadline_blocks",
        ),
        (
            o.max_deadline_blocks <= u64::MAX / 2,
            "oracle.max_deadline_blocks must be below 2^63",
        ),
        (
            o.extra_roots.is_empty() || p.allow_sim_quotes,
            "oracle.extra_roots are honoured only on a chain that allows simulated quotes",
        ),
        (
            c.checkpoint_every > 0 && c.max_fuel > 0,
            "contracts.checkpoint_every and contracts.max_fuel must be positive",
        ),
        (
            c.max_code_bytes <= crate::types::MAX_TX_BYTES as u64
                && c.max_command_bytes <= crate::types::MAX_TX_BYTES as u64
                && c.max_checkpoint_bytes <= crate::types::MAX_TX_BYTES as u64,
            "contracts: code, command and checkpoint limits must fit in a transaction (64 KiB)",
        ),
        (
            c.cost(c.max_fuel).is_some(),
            "contracts.price_per_million times max_fuel overflows",
        ),
        (
            c.era_blocks >= crate::contracts::WINDOWS && c.rotation_timeout_blocks > 0,
            "contracts.era_blocks must be at least 8 (its windows) and rotation_timeout_blocks positive",
        ),
        (
            c.slash_unresponsive_bps <= 10_000,
            "contracts.slash_unresponsive_bps must be at most 10000",
        ),
    ];
    match rules.iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(GenesisError::BadParam(why)),
        None => Ok(()),
    }
}
