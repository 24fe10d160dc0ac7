//! The consensus types: transactions, blocks, genesis, receipts, records.
//! Every type here is borsh-encoded on the wire and in storage; the encoding
//! is locked by fixture tests.

use crate::modules::market::types as market;
use crate::modules::{
    accounts::types as accounts, contracts::types as contracts, governance::types as governance,
    oracle::types as oracle, registry::types as registry, rewards::types as rewards,
};
pub use accounts::Account;
use borsh::{BorshDeserialize, BorshSerialize};
pub use governance::MeasurementEntry;
use proctor_primitives::{
    Address, Amount, EncryptionKey, Hash, Height, Keypair, PublicKey, Signature, Timestamp, merkle,
};
use proctor_tee::Quote;
pub use registry::EnclaveRecord;
use serde::{Deserialize, Serialize};

/// Chain parameters, fixed in the genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChainParams {
    /// Target time between blocks, in milliseconds.
    pub target_block_ms: u64,
    /// Difficulty of the first block: expected instructions per block.
    pub initial_difficulty: u64,
    /// Difficulty never retargets below this.
    pub min_difficulty: u64,
    /// Newly minted tokens paid to the miner of each block.
    pub block_reward: Amount,
    /// Smallest fee a transaction may pay.
    pub min_fee: Amount,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Whether quotes of the simulated TEE are accepted (devnets only).
    pub allow_sim_quotes: bool,
    /// The simulated attestation root trusted when `allow_sim_quotes`.
    pub sim_attestation_root: Option<PublicKey>,
    /// Policy for Intel DCAP (SGX/TDX) quotes; None refuses them.
    #[serde(default)]
    pub dcap: Option<proctor_tee::DcapPolicy>,
    /// Enclave measurements allowed to register.
    pub allowed_measurements: Vec<Hash>,
    /// Module hash of the filler task run when there are no jobs.
    pub filler_module: Hash,
    /// Blocks an enclave registration stays valid.
    pub registration_blocks: u64,
    /// Smallest stake an enclave registration must lock.
    #[serde(default)]
    pub min_stake: Amount,
    /// Blocks a deregistered enclave's stake stays locked before it can be withdrawn.
    #[serde(default)]
    pub unbonding_blocks: u64,
    /// Blocks a retired measurement stays valid for enclaves already registered with it.
    #[serde(default)]
    pub measurement_grace_blocks: u64,
    /// The account that may change the measurement allowlist (None: nobody).
    #[serde(default)]
    pub governance: Option<Address>,
    /// Confirmations after which a block is final.
    pub finality_depth: u64,
    /// The compute market's fees, limits and penalties.
    #[serde(default)]
    pub market: market::MarketParams,
    /// The oracle's fees, deadlines and extra roots.
    #[serde(default)]
    pub oracle: oracle::OracleParams,
    /// Confidential contracts: prices, limits and the gatekeeper.
    #[serde(default)]
    pub contracts: contracts::ContractParams,
}

/// An initial balance.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Allocation {
    pub address: Address,
    pub amount: Amount,
}

/// The genesis file: chain identity, parameters and initial balances.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    /// Timestamp of the genesis block, in ms since the Unix epoch.
    pub timestamp: Timestamp,
    pub params: ChainParams,
    pub allocations: Vec<Allocation>,
    /// Enclaves registered from the start (a new chain needs at least one to
    /// produce its first block). Their quotes are verified like any registration.
    #[serde(default)]
    pub enclaves: Vec<GenesisEnclave>,
}

/// An enclave registered in the genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct GenesisEnclave {
    pub operator: Address,
    pub identity: PublicKey,
    pub encryption_key: EncryptionKey,
    pub expires_at: Height,
    pub quote: Quote,
    /// Stake locked from the start (part of the initial supply), so the
    /// market can slash a genesis worker like any other.
    #[serde(default)]
    pub stake: Amount,
}

impl Genesis {
    /// What the quotes of the genesis enclaves bind (they cannot bind the
    /// full hash, which covers them): chain id, time, parameters, allocations.
    pub fn base_hash(&self) -> Hash {
        Hash::of_encoded(
            "proctor/genesis",
            &(
                &self.chain_id,
                self.timestamp,
                &self.params,
                &self.allocations,
            ),
        )
    }

    /// The chain's identity: transactions and later registrations are bound
    /// to it. It covers everything in the file, the genesis enclaves (keys,
    /// operators, stakes, quotes) included, so two chains that differ only in
    /// who mines first are two chains.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/genesis/v2", &(self.base_hash(), &self.enclaves))
    }
}

/// What a transaction does: a call to one module.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    Accounts(accounts::Call),
    Registry(registry::Call),
    Governance(governance::Call),
    Market(market::Call),
    Oracle(oracle::Call),
    Contracts(contracts::Call),
}

impl Call {
    /// What the call itself takes from the sender's balance, beyond the fee
    /// (an amount moved, a stake locked, an escrow).
    pub fn debit(&self) -> Amount {
        match self {
            Call::Accounts(accounts::Call::Transfer { amount, .. }) => *amount,
            Call::Registry(registry::Call::RegisterEnclave { stake, .. }) => *stake,
            Call::Market(market::Call::SubmitJob { escrow, .. }) => *escrow,
            Call::Oracle(oracle::Call::Request { fee, .. }) => *fee,
            Call::Contracts(contracts::Call::Command { escrow, .. }) => *escrow,
            Call::Registry(_)
            | Call::Governance(_)
            | Call::Market(_)
            | Call::Oracle(_)
            | Call::Contracts(_) => Amount::ZERO,
        }
    }
}

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// Genesis hash of the chain this transaction is for (no cross-chain replay).
    pub chain: Hash,
    pub signer: PublicKey,
    pub nonce: u64,
    pub fee: Amount,
    pub call: Call,
}

impl Transaction {
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/tx", self)
    }

    pub fn sender(&self) -> Address {
        self.signer.address()
    }

    /// What the transaction debits from its sender: fee plus any amount moved.
    pub fn cost(&self) -> Option<Amount> {
        self.fee.checked_add(self.call.debit())
    }

    /// Signs with `key`, which must be the key named in `signer`.
    pub fn sign(self, key: &Keypair) -> SignedTransaction {
        let signature = key.sign(&self.hash().0);
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// Most bytes one signed transaction may take (borsh-encoded). The largest
/// honest one is a registration carrying a DCAP quote and its collateral
/// (about 25 KiB).
pub const MAX_TX_BYTES: usize = 64 << 10;

/// Most bytes the transactions of one block may take in all. Far below the
/// network's gossip and sync message limits (which the network crate checks
/// at compile time), so every valid block can propagate.
pub const MAX_BLOCK_BYTES: usize = 2 << 20;

/// A transaction with its signature over [`Transaction::hash`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: Signature,
}

impl SignedTransaction {
    /// The body's hash: what the signature signs and receipts are keyed by.
    pub fn hash(&self) -> Hash {
        self.tx.hash()
    }

    /// Its borsh-encoded size, what [`MAX_TX_BYTES`] and [`MAX_BLOCK_BYTES`] limit.
    pub fn encoded_len(&self) -> usize {
        borsh::object_length(self).expect("encoding into a counter cannot fail")
    }

    /// The leaf of the transactions root: the body's hash and the exact
    /// signature bytes, so a block header fixes its signatures too (a relay
    /// cannot swap in another signature under the same header).
    pub fn leaf(&self) -> Hash {
        Hash::tagged("proctor/tx/leaf", &[&self.hash().0, &self.signature.0])
    }
}

/// The header without its proof: what the lottery is drawn for.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Template {
    pub parent: Hash,
    pub height: Height,
    pub timestamp: Timestamp,
    /// State root after this block.
    pub state_root: Hash,
    /// Merkle root of the block's signed transactions ([`tx_root`]).
    pub tx_root: Hash,
    /// Expected instructions per block (1/D chance per instruction).
    pub difficulty: u64,
    /// Who receives the reward and the fees.
    pub miner: Address,
}

impl Template {
    /// T = H(header without proof).
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/template", self)
    }
}

/// The proof of useful work: the two attestations of seed 000 §3.4.3, signed
/// by the enclave's registered identity key.
///
/// The useful-work attestation binds what was run, not only which module:
/// for a job, the job id and the job's input blob; for the filler task, an
/// input the enclave derives from the template's parent ([`filler_input`]),
/// so a miner cannot pick an input of its own.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PouwProof {
    /// The enclave identity that won.
    pub enclave: PublicKey,
    /// The template hash T the enclave drew the lottery for.
    pub template: Hash,
    /// Hash of the module whose execution won.
    pub module: Hash,
    /// The job whose task won; None for the filler task.
    pub job: Option<u64>,
    /// Hash of the input the task ran on: the job's input blob, or
    /// `H(filler_input(parent))` for the filler.
    pub input: Hash,
    /// Slice length n in instructions.
    pub slice: u64,
    /// Index of the winning slice within the task run.
    pub counter: u64,
    /// Instructions the task had executed when it won.
    pub instructions: u64,
    /// The lottery draw r (wins iff r * D < n * 2^128).
    pub draw: u128,
    /// Checker attestation: module passed the checker.
    pub checker_sig: Signature,
    /// Useful-work attestation: over [`PouwProof::work_message`].
    pub work_sig: Signature,
}

impl PouwProof {
    /// The bytes of the useful-work attestation: T, D, M, the job and input,
    /// n, counter, instructions and r (every field but the signatures).
    pub fn work_message(&self, difficulty: u64) -> Vec<u8> {
        let job = match self.job {
            Some(j) => [&[1u8][..], &j.to_le_bytes()].concat(),
            None => vec![0u8],
        };
        Hash::tagged(
            "proctor/attest/work/v2",
            &[
                &self.template.0,
                &difficulty.to_le_bytes(),
                &self.module.0,
                &job,
                &self.input.0,
                &self.slice.to_le_bytes(),
                &self.counter.to_le_bytes(),
                &self.instructions.to_le_bytes(),
                &self.draw.to_le_bytes(),
            ],
        )
        .0
        .to_vec()
    }
}

/// The bytes of the checker attestation for `module`.
pub fn checker_message(module: &Hash) -> Vec<u8> {
    Hash::tagged("proctor/attest/checker", &[&module.0, b"accepted"])
        .0
        .to_vec()
}

/// The filler task's input while mining on top of block `parent`: fixed by
/// the chain, so no miner chooses what its filler runs on. The enclave
/// restarts the filler on this input whenever the parent changes.
pub fn filler_input(parent: &Hash) -> [u8; 32] {
    Hash::tagged("proctor/filler/input", &[&parent.0]).0
}

/// A block header: the template and its proof (absent only in genesis).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Header {
    pub template: Template,
    pub pouw: Option<PouwProof>,
}

impl Header {
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/header", self)
    }
    pub fn height(&self) -> Height {
        self.template.height
    }
}

/// A block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<SignedTransaction>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// Merkle root of the signed transactions: each leaf is
/// [`SignedTransaction::leaf`], covering body and signature.
pub fn tx_root(txs: &[SignedTransaction]) -> Hash {
    let leaves: Vec<[u8; 32]> = txs.iter().map(|t| t.leaf().0).collect();
    merkle::root(&leaves)
}

/// Something that happened, recorded in receipts: one module's event. In
/// JSON an event is its module's event as is (each has a distinct `kind`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    Accounts(accounts::Event),
    Registry(registry::Event),
    Governance(governance::Event),
    Rewards(rewards::Event),
    Market(market::Event),
    Oracle(oracle::Event),
    Contracts(contracts::Event),
}

/// A value stored in the state tree: the chain parameters, or one module's
/// record. The variant tag keeps modules apart.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Params(Box<ChainParams>),
    Accounts(accounts::Record),
    Registry(registry::Record),
    Governance(governance::Record),
    Market(market::Record),
    Oracle(oracle::Record),
    Contracts(contracts::Record),
}

/// `From` each module's call, event and record into the top-level one.
macro_rules! from_module {
    ($top:ident: $($variant:ident => $module:ident),*) => {$(
        impl From<$module::$top> for $top {
            fn from(x: $module::$top) -> $top {
                $top::$variant(x)
            }
        }
    )*};
}
from_module!(Call: Accounts => accounts, Registry => registry, Governance => governance, Market => market, Oracle => oracle, Contracts => contracts);
from_module!(Event: Accounts => accounts, Registry => registry, Governance => governance, Rewards => rewards, Market => market, Oracle => oracle, Contracts => contracts);
from_module!(Record: Accounts => accounts, Registry => registry, Governance => governance, Market => market, Oracle => oracle, Contracts => contracts);

/// The result of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Receipt {
    pub tx: Hash,
    pub height: Height,
    pub index: u32,
    pub fee: Amount,
    pub events: Vec<Event>,
}
