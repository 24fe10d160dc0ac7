//! The contracts module's types: parameters, contracts, commands, receipts,
//! checkpoints, the key postings of gatekeepers, calls, events, records and
//! errors.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Height, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// Most egress messages one receipt may carry, and the longest.
pub const MAX_EMITS: usize = 16;
pub const MAX_EMIT: usize = 64 << 10;
/// Largest sealed reply (a 64 KiB reply plus the HPKE overhead).
pub const MAX_REPLY: usize = (64 << 10) + 64;
/// Largest opaque attestation or handover a gatekeeper exchange carries.
pub const MAX_HANDOVER: usize = 64 << 10;

/// The module's parameters, fixed in the genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ContractParams {
    /// What a command pays per million instructions it runs (to the
    /// executor's operator); its fuel at this price is held until then.
    pub price_per_million: Amount,
    /// Largest contract module (it travels inside a transaction, at most
    /// 64 KiB).
    pub max_code_bytes: u64,
    /// Largest sealed command.
    pub max_command_bytes: u64,
    /// Most instructions one command may buy.
    pub max_fuel: u64,
    /// The executor posts a checkpoint every this many commands.
    pub checkpoint_every: u64,
    /// Largest checkpoint ciphertext (inside a transaction, at most 64 KiB).
    pub max_checkpoint_bytes: u64,
    /// Blocks a command may wait for its receipt: then the contract gets
    /// another executor, which recovers the state from the latest
    /// checkpoint and the commands after it.
    pub executor_timeout_blocks: u64,
    /// Instructions each egress message to another contract buys there;
    /// its cost comes out of the emitting command's unused escrow.
    pub egress_fuel: u64,
    /// Blocks per era: the responsiveness rule (seed 004 §4.10) is applied
    /// at the end of each.
    pub era_blocks: u64,
    /// What an unresponsive gatekeeper or executor loses of its stake, in
    /// basis points (to the treasury).
    pub slash_unresponsive_bps: u32,
    /// The larger stake a gatekeeper locks (seed 004 §4.5): an enclave with
    /// less is not elected, and leaves the set at the next rotation (after
    /// a slash, say). 0: the registry's minimum is enough.
    #[serde(default)]
    pub gatekeeper_stake: Amount,
    /// Blocks a key rotation may take (seed 004 §4.7 step 5): then the
    /// gatekeepers that held it up are slashed and it starts over without
    /// them.
    #[serde(default = "default_rotation_timeout")]
    pub rotation_timeout_blocks: u64,
    /// The gatekeeper of era 0 (the genesis node of seed 004 §4.4): its
    /// enclave identity and the commitment to the root key it generated.
    /// Without one, contracts cannot be deployed.
    #[serde(default)]
    pub gatekeeper: Option<Gatekeeper>,
    /// Enclaves elected gatekeepers at genesis (a devnet's other workers
    /// with `--gatekeepers N`); they become gatekeepers once they hold the
    /// root key. Governance elects more (`ElectGatekeeper`).
    #[serde(default)]
    pub elected: Vec<PublicKey>,
}

impl Default for ContractParams {
    fn default() -> Self {
        ContractParams {
            price_per_million: Amount(1_000),
            max_code_bytes: 48 << 10,
            max_command_bytes: 64 << 10,
            max_fuel: 1_000_000_000,
            checkpoint_every: 16,
            max_checkpoint_bytes: 48 << 10,
            executor_timeout_blocks: 20,
            egress_fuel: 1_000_000,
            era_blocks: 1_000,
            slash_unresponsive_bps: 1_000,
            gatekeeper_stake: Amount::ZERO,
            rotation_timeout_blocks: default_rotation_timeout(),
            gatekeeper: None,
            elected: vec![],
        }
    }
}

fn default_rotation_timeout() -> u64 {
    50
}

impl ContractParams {
    /// What `instructions` cost, rounded up.
    pub fn cost(&self, instructions: u64) -> Option<Amount> {
        let n = (instructions as u128).checked_mul(self.price_per_million.0)?;
        Some(Amount(n.div_ceil(1_000_000)))
    }
}

/// A gatekeeper: an enclave holding the root key of an era.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Gatekeeper {
    pub identity: PublicKey,
    /// `H("proctor/contracts/root-commitment", chain, era, k_r)`.
    pub commitment: Hash,
}

/// The gatekeepers: those holding the root key, and those elected who do
/// not yet.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct GatekeeperSet {
    pub members: Vec<PublicKey>,
    pub candidates: Vec<PublicKey>,
    /// The era of the root key in force (contract keys are derived from
    /// it): the last era whose rotation was ready.
    pub era: u64,
    /// The commitment to that root key (none: the genesis gatekeeper's).
    pub commitment: Option<Hash>,
    /// Members governance retired: they leave at the next rotation.
    pub leaving: Vec<PublicKey>,
    /// The key rotation under way, if any.
    pub rotation: Option<Rotation>,
    /// Governance's choice (seed 004 §4.7): gatekeepers and executors
    /// destroy the keys of past eras once no contract's latest checkpoint
    /// needs them, so a key stolen later does not open the past.
    pub forward_secrecy: bool,
}

/// A key rotation (seed 004 §4.7): at an era's first block the chain picks
/// a leader among the next era's gatekeepers from its state root; the
/// leader's enclave generates the era's root key and posts its commitment
/// (`CommitRotation`), hands the key to each other member (the handovers
/// of `RequestRoot`/`HandOverRoot`), and each confirms it holds the key
/// (`ConfirmReady`). When all have, the rotation is ready: they are the
/// gatekeepers, and the era's keys are in force. Until then no contract
/// key is published or granted. Past `deadline`, those who held it up are
/// slashed and it starts over without them.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Rotation {
    pub era: u64,
    /// 1, then one more at each restart.
    pub attempt: u32,
    pub leader: PublicKey,
    /// The next era's gatekeepers (the leader among them).
    pub next: Vec<PublicKey>,
    /// The leader's commitment to the new root key, once posted.
    pub commitment: Option<Hash>,
    /// Members of `next` that confirmed holding it.
    pub confirmed: Vec<PublicKey>,
    pub deadline: Height,
}

/// What a gatekeeper enclave signs when it holds the root key.
pub fn ready_bytes(chain: &Hash, era: u64, commitment: &Hash) -> Vec<u8> {
    Hash::tagged(
        "proctor/contracts/gatekeeper-ready/v1",
        &[&chain.0, &era.to_le_bytes(), &commitment.0],
    )
    .0
    .to_vec()
}

/// A contract's public command key, derived and signed by a gatekeeper.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ContractPublicKey {
    pub chain: Hash,
    pub era: u64,
    pub contract: u64,
    pub key: EncryptionKey,
    pub gatekeeper: PublicKey,
    pub signature: Signature,
}

impl ContractPublicKey {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut m = b"proctor/contracts/public-key/v1".to_vec();
        m.extend_from_slice(&self.chain.0);
        m.extend_from_slice(&self.era.to_le_bytes());
        m.extend_from_slice(&self.contract.to_le_bytes());
        m.extend_from_slice(&self.key.0);
        m
    }
}

/// What an executor is given for one command: everything that decides its
/// effect. The chain and the enclave hash it the same way
/// ([`CommandInput::hash`]) and chain the hashes into the contract's
/// command log ([`next_log`]), which receipts and checkpoints name: a host
/// that feeds its enclave a command the chain does not have, in another
/// order, or twice, gets receipts the chain refuses.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommandInput {
    /// The era of the contract key it is sealed to (its key when it was
    /// sent).
    pub era: u64,
    pub sender: Address,
    pub nonce: u64,
    pub height: Height,
    pub fuel: u64,
    /// `init` instead of `handle` (the deploy's message).
    pub init: bool,
    /// An oracle datagram delivered by the chain ([`oracle_message`], from
    /// [`oracle_address`]): `sealed` is then the message in the clear (the
    /// datagram is public on chain), and there is no reply.
    pub oracle: bool,
    /// Where the reply is sealed to.
    pub reply_to: EncryptionKey,
    pub sealed: Vec<u8>,
}

impl CommandInput {
    /// The hash of command `seq` of `contract`.
    pub fn hash(&self, contract: u64, seq: u64) -> Hash {
        Hash::of_encoded("proctor/contracts/command-input", &(contract, seq, self))
    }
}

/// The command log after a command whose hash is `command`.
pub fn next_log(prev: &Hash, command: &Hash) -> Hash {
    Hash::tagged("proctor/contracts/log", &[&prev.0, &command.0])
}

/// What the executor's enclave reports for one command, signed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Receipt {
    pub contract: u64,
    /// The command's position (1, 2, ...).
    pub seq: u64,
    /// 0: applied; the contract's refusal code; -1: it trapped or the
    /// command does not open for this contract and sender; -2: out of fuel.
    pub code: i32,
    pub instructions: u64,
    /// The reply, HPKE-sealed to the command's `reply_to`.
    #[serde(with = "proctor_primitives::codec::hex_bytes")]
    pub reply: Vec<u8>,
    /// Egress messages: the first 8 bytes name the target (0: the chain).
    pub emits: Vec<Emit>,
    /// The contract's state hash after the command.
    pub state_hash: Hash,
    /// The command log the enclave applied, up to this command.
    pub log: Hash,
    pub executor: PublicKey,
}

/// An egress message.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Emit(#[serde(with = "proctor_primitives::codec::hex_bytes")] pub Vec<u8>);

impl Receipt {
    pub fn signing_bytes(&self, chain: &Hash) -> Vec<u8> {
        Hash::of_encoded("proctor/contracts/receipt/v1", &(chain, self))
            .0
            .to_vec()
    }
}

/// A contract's state encrypted under its state key (opaque to the chain).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Checkpoint {
    pub contract: u64,
    pub era: u64,
    /// Commands applied when it was taken.
    pub applied: u64,
    pub state_hash: Hash,
    /// The command log up to `applied`.
    pub log: Hash,
    /// The state, encrypted: inline (at most `max_checkpoint_bytes`), or
    /// empty when it travels as blobs (`parts`).
    #[serde(with = "proctor_primitives::codec::hex_bytes")]
    pub ciphertext: Vec<u8>,
    /// A ciphertext larger than a transaction: stored as blobs.
    pub parts: Option<Parts>,
}

/// A checkpoint's ciphertext as blobs in the node's blob store, in order.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Parts {
    pub blobs: Vec<Hash>,
    /// Hash and length of the whole ciphertext (what the enclave signed).
    pub hash: Hash,
    pub len: u64,
}

/// Most blobs one checkpoint is split into, and the longest ciphertext.
pub const MAX_PARTS: usize = 64;
pub const MAX_PARTS_BYTES: u64 = 2 << 30;

impl Checkpoint {
    /// The hash of the ciphertext, inline or in parts.
    pub fn ciphertext_hash(&self) -> Hash {
        match &self.parts {
            Some(p) => p.hash,
            None => Hash::of(&self.ciphertext),
        }
    }

    pub fn signing_bytes(&self, chain: &Hash) -> Vec<u8> {
        Hash::tagged(
            "proctor/contracts/checkpoint/v1",
            &[
                &chain.0,
                &self.contract.to_le_bytes(),
                &self.era.to_le_bytes(),
                &self.applied.to_le_bytes(),
                &self.state_hash.0,
                &self.log.0,
                &self.ciphertext_hash().0,
            ],
        )
        .0
        .to_vec()
    }
}

/// A contract on chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ContractInfo {
    pub id: u64,
    pub owner: Address,
    pub code_hash: Hash,
    pub code_len: u64,
    /// The enclave that executes it.
    pub executor: PublicKey,
    pub created: Height,
    /// Its command key, once a gatekeeper published it.
    pub key: Option<EncryptionKey>,
    pub era: u64,
    /// Commands submitted.
    pub commands: u64,
    /// Commands applied (receipts accepted).
    pub applied: u64,
    /// The state hash after the last applied command.
    pub state_hash: Hash,
    /// The latest checkpoint's position and height.
    pub checkpoint: Option<(u64, Height)>,
    /// Since when commands have waited for a receipt (none waiting: null).
    pub waiting_since: Option<Height>,
    /// The command log after the last submitted command.
    pub log: Hash,
}

/// A command on chain: sealed to the contract's key with `info` binding
/// chain, contract, sender and the transaction's nonce.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommandRecord {
    pub contract: u64,
    pub seq: u64,
    /// The era of the contract's key when it was sent (it is sealed to
    /// that key).
    pub era: u64,
    pub sender: Address,
    /// The sending transaction's nonce (bound into the ciphertext).
    pub nonce: u64,
    pub height: Height,
    pub fuel: u64,
    pub init: bool,
    /// An oracle datagram delivered by the chain: `sealed` is the message
    /// in the clear.
    pub oracle: bool,
    pub reply_to: EncryptionKey,
    #[serde(with = "proctor_primitives::codec::hex_bytes")]
    pub sealed: Vec<u8>,
    /// Held for the fuel until the receipt.
    pub escrow: Amount,
    pub receipt: Option<Receipt>,
    /// Paid to the executor's operator, and returned to the sender.
    pub paid: Amount,
    pub refunded: Amount,
    /// The contract's command log after this command.
    pub log: Hash,
    /// Who paid the escrow (the sender, or for an egress message the
    /// sender of the command that emitted it): the unused part goes back
    /// to it.
    pub payer: Address,
}

/// The account a contract sends its egress messages as (what `caller()`
/// shows the target): the first 20 bytes of `H("proctor/contract-address",
/// id)`.
pub fn contract_address(id: u64) -> Address {
    hashed_address(Hash::tagged(
        "proctor/contract-address",
        &[&id.to_le_bytes()],
    ))
}

/// An account no key controls: the first 20 bytes of a hash.
fn hashed_address(h: Hash) -> Address {
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    Address(a)
}

/// The account oracle datagrams come from (what `caller()` shows a
/// contract for them): the first 20 bytes of `H("proctor/oracle-address")`.
/// No key controls it.
pub fn oracle_address() -> Address {
    hashed_address(Hash::tagged("proctor/oracle-address", &[]))
}

/// The message a contract gets for oracle request `r`'s datagram (all
/// integers little-endian):
/// - request id (u64), requester (20 bytes);
/// - URL and JSON pointer, each as a u16 length and its bytes (empty for a
///   private request);
/// - kind (u8): 0 the selected JSON value, 1 the body's hash (nothing was
///   selected), 2 failed, 3 sealed (a private request's outcome, sealed to
///   its reply key);
/// - HTTP status (u16; 0 unless fetched);
/// - the rest: the JSON text, the 32-byte hash, the failure's reason (u8,
///   in the order of `oracle::FailReason`) then its detail text, or the
///   ciphertext.
///
/// `None` when the request has no datagram.
pub fn oracle_message(r: &crate::modules::oracle::types::OracleRequest) -> Option<Vec<u8>> {
    use crate::modules::oracle::types::{Body, Outcome, Query, Value};
    let d = r.datagram.as_ref()?;
    let mut m = r.id.to_le_bytes().to_vec();
    m.extend_from_slice(&r.requester.0);
    let (url, select) = match &r.query {
        Query::Public(p) => (p.url.as_str(), p.select.as_deref().unwrap_or("")),
        Query::Private { .. } => ("", ""),
    };
    for s in [url, select] {
        let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        m.extend_from_slice(&(b.len() as u16).to_le_bytes());
        m.extend_from_slice(b);
    }
    let (kind, status, rest): (u8, u16, Vec<u8>) = match &d.body {
        Body::Public(Outcome::Fetched { status, value, .. }) => match value {
            Value::Json(j) => (0, *status, j.as_bytes().to_vec()),
            Value::BodyHash(h) => (1, *status, h.0.to_vec()),
        },
        Body::Public(Outcome::Failed { reason, detail }) => {
            (2, 0, [&[*reason as u8][..], detail.as_bytes()].concat())
        }
        Body::Sealed { ciphertext } => (3, 0, ciphertext.clone()),
    };
    m.push(kind);
    m.extend_from_slice(&status.to_le_bytes());
    m.extend_from_slice(&rest);
    Some(m)
}

/// The nonce of the `index`-th egress message of command `seq` (bound into
/// its ciphertext, like a transaction's nonce).
pub fn egress_nonce(seq: u64, index: usize) -> u64 {
    seq.saturating_mul(MAX_EMITS as u64)
        .saturating_add(index as u64)
}

impl CommandRecord {
    /// What the executor is given for it.
    pub fn input(&self) -> CommandInput {
        CommandInput {
            era: self.era,
            sender: self.sender,
            nonce: self.nonce,
            height: self.height,
            fuel: self.fuel,
            init: self.init,
            oracle: self.oracle,
            reply_to: self.reply_to,
            sealed: self.sealed.clone(),
        }
    }
}

/// The module's calls.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// Publish a contract; an executor is assigned and a gatekeeper then
    /// publishes its command key.
    Deploy { code: Vec<u8> },
    /// A gatekeeper's host posts a contract's command key.
    PublishKey { key: ContractPublicKey },
    /// The executor's operator asks for the contract key of `era` (the
    /// current one, or a past one to replay commands sealed under it), with
    /// its enclave's attestation (opaque to the chain; the gatekeeper's
    /// enclave checks it).
    RequestKey {
        contract: u64,
        era: u64,
        attestation: Vec<u8>,
    },
    /// The gatekeeper's operator posts the key of `era`, sealed to the
    /// executor's enclave (opaque to the chain; that enclave checks it).
    GrantKey {
        contract: u64,
        era: u64,
        handover: Vec<u8>,
    },
    /// A command: `sealed` to the contract's key; `fuel` is bought at the
    /// chain's price and held until the receipt. `init` runs the contract's
    /// `init` instead of `handle` (the owner's first command only).
    Command {
        contract: u64,
        fuel: u64,
        /// What the fuel costs at the chain's price, taken from the sender
        /// (it must match).
        escrow: Amount,
        init: bool,
        reply_to: EncryptionKey,
        sealed: Vec<u8>,
    },
    /// The executor's host posts its enclave's signed receipt.
    Receipt {
        receipt: Receipt,
        signature: Signature,
    },
    /// The executor's host posts its enclave's signed checkpoint.
    Checkpoint {
        checkpoint: Checkpoint,
        executor: PublicKey,
        signature: Signature,
    },
    /// An enclave's operator says where its query port listens
    /// (`http://HOST:PORT`), for callers of the contracts it executes.
    SetEndpoint { enclave: PublicKey, url: String },
    /// Governance elects an enclave gatekeeper (it becomes one when it
    /// holds the root key).
    ElectGatekeeper { enclave: PublicKey },
    /// An elected enclave's operator asks for the root key with its
    /// attestation (opaque here; a gatekeeper's enclave checks it).
    RequestRoot {
        enclave: PublicKey,
        attestation: Vec<u8>,
    },
    /// A gatekeeper's operator posts the root key sealed to `to`.
    HandOverRoot { to: PublicKey, handover: Vec<u8> },
    /// The elected enclave signs that it holds the root key of the
    /// chain's commitment: from then on it is a gatekeeper. During a
    /// rotation, a member of the next era's set signs it holds the new
    /// era's key.
    ConfirmReady {
        enclave: PublicKey,
        signature: Signature,
    },
    /// Governance retires a gatekeeper: it leaves at the next rotation.
    RetireGatekeeper { enclave: PublicKey },
    /// Governance turns forward secrecy on or off.
    ForwardSecrecy { on: bool },
    /// The rotation's leader posts the commitment to the new era's root
    /// key, signed by its enclave over [`ready_bytes`].
    CommitRotation {
        enclave: PublicKey,
        era: u64,
        commitment: Hash,
        signature: Signature,
    },
    /// An enclave says it is alive in `window` of `era` (signed by its
    /// identity over [`heartbeat_bytes`]); any side effect counts the same.
    Heartbeat {
        enclave: PublicKey,
        era: u64,
        window: u64,
        signature: Signature,
    },
}

/// Windows per era: an enclave's activity count `c_n` is the number of
/// windows in which the chain accepted a side effect of it (a receipt, a
/// checkpoint, a key posting, a heartbeat), so it is at most this many and
/// nobody raises the bar by flooding.
pub const WINDOWS: u64 = 8;

/// What an enclave signs for a heartbeat.
pub fn heartbeat_bytes(chain: &Hash, era: u64, window: u64) -> Vec<u8> {
    Hash::tagged(
        "proctor/contracts/heartbeat/v1",
        &[&chain.0, &era.to_le_bytes(), &window.to_le_bytes()],
    )
    .0
    .to_vec()
}

/// Longest query endpoint URL.
pub const MAX_ENDPOINT: usize = 256;

/// The module's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    ContractDeployed {
        id: u64,
        owner: Address,
        code_hash: Hash,
        executor: PublicKey,
    },
    ContractKeyPublished {
        id: u64,
        key: EncryptionKey,
    },
    ContractKeyRequested {
        id: u64,
        era: u64,
        executor: PublicKey,
    },
    ContractKeyGranted {
        id: u64,
        era: u64,
    },
    ContractCommand {
        id: u64,
        seq: u64,
        sender: Address,
    },
    ContractApplied {
        id: u64,
        seq: u64,
        code: i32,
        instructions: u64,
        paid: Amount,
        state_hash: Hash,
    },
    /// An egress message to contract `to` that could not be delivered (no
    /// such contract, no key yet, or the emitting command's escrow did not
    /// cover its fuel).
    ContractEgressDropped {
        id: u64,
        seq: u64,
        to: u64,
        reason: String,
    },
    /// An egress message of an applied command (target 0: to the chain).
    ContractEmitted {
        id: u64,
        seq: u64,
        target: u64,
        #[serde(with = "proctor_primitives::codec::hex_bytes")]
        payload: Vec<u8>,
    },
    ContractCheckpointed {
        id: u64,
        applied: u64,
        state_hash: Hash,
        /// Its blobs (a checkpoint larger than a transaction), and those of
        /// the checkpoint it replaces: nodes keep the former, let the
        /// latter go.
        parts: Vec<Hash>,
        replaced: Vec<Hash>,
    },
    ContractEndpoint {
        enclave: PublicKey,
        url: String,
    },
    /// The executor left commands waiting too long (or left): another one
    /// takes over from the latest checkpoint.
    ContractReassigned {
        id: u64,
        from: PublicKey,
        to: PublicKey,
    },
    ContractHeartbeat {
        enclave: PublicKey,
        era: u64,
        window: u64,
    },
    GatekeeperElected {
        enclave: PublicKey,
    },
    GatekeeperRootRequested {
        enclave: PublicKey,
    },
    GatekeeperRootHandedOver {
        to: PublicKey,
        from: PublicKey,
    },
    GatekeeperReady {
        enclave: PublicKey,
    },
    GatekeeperRetired {
        enclave: PublicKey,
    },
    ForwardSecrecy {
        on: bool,
    },
    /// A key rotation to `era` started (or started over): `leader`
    /// generates the key, `next` are to hold it.
    KeyRotationStarted {
        era: u64,
        attempt: u32,
        leader: PublicKey,
        next: Vec<PublicKey>,
    },
    KeyRotationCommitted {
        era: u64,
        commitment: Hash,
    },
    /// "Key rotation ready": the era's gatekeepers hold its root key.
    KeyRotationReady {
        era: u64,
        commitment: Hash,
        members: Vec<PublicKey>,
    },
    /// The rotation passed its deadline: `slashed` held it up, lost
    /// `slash_unresponsive_bps` of their stake, and are left out of the
    /// attempt that follows.
    KeyRotationTimedOut {
        era: u64,
        attempt: u32,
        slashed: Vec<PublicKey>,
    },
    /// Oracle request `request`'s datagram was not delivered to contract
    /// `contract` (no such contract, no key yet, too large, or a callback
    /// fee that buys no fuel); the fee went to the block.
    ContractOracleDropped {
        request: u64,
        contract: u64,
        reason: String,
    },
    /// At an era's end: a gatekeeper or executor active in `windows` of the
    /// era's windows, fewer than a quarter of the most active's `max`, lost
    /// `slashed` of its stake.
    ContractUnresponsive {
        enclave: PublicKey,
        era: u64,
        windows: u64,
        max: u64,
        slashed: Amount,
    },
}

/// The module's records.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Contract(Box<ContractInfo>),
    Code(Vec<u8>),
    Command(Box<CommandRecord>),
    Checkpoint(Box<Checkpoint>),
    /// The next contract id.
    Next(u64),
    /// An opaque attestation or handover.
    Blob(Vec<u8>),
    /// Ids of contracts (those awaiting a key).
    Ids(Vec<u64>),
    /// An enclave's query endpoint.
    Endpoint(String),
    Gatekeepers(Box<GatekeeperSet>),
    /// A contract's command key as its gatekeeper signed it.
    SignedKey(Box<ContractPublicKey>),
    /// An era's activity: enclave → bit `w` set when it was active in window `w`.
    Activity(std::collections::BTreeMap<PublicKey, u8>),
    /// Key requests waiting for a grant: (contract, era).
    KeyRequests(Vec<(u64, u64)>),
}

/// The contracts module's errors: codes 1300-1349.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("contract {0} does not exist")]
    NotFound(u64),
    #[error(
        "this chain has no gatekeeper (genesis `contracts.gatekeeper`): contracts cannot be deployed"
    )]
    NoGatekeeper,
    #[error("invalid contract: {0}")]
    BadCode(String),
    #[error("no registered enclave executes contracts")]
    NoExecutor,
    #[error("the key is not signed by a gatekeeper of this chain's current era")]
    NotGatekeeper,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("contract {0}'s key is already published")]
    KeyPublished(u64),
    #[error("contract {0} has no key yet: wait for a gatekeeper to publish it")]
    NoKey(u64),
    #[error("only the operator of contract {0}'s {1} may do this")]
    NotOperator(u64, &'static str),
    #[error("invalid command: {0}")]
    BadCommand(String),
    #[error("receipt from {0}, which is not contract's executor or not an active enclave")]
    NotExecutor(PublicKey),
    #[error("receipt for command {got}; the next to apply is {expected}")]
    WrongSeq { expected: u64, got: u64 },
    #[error("invalid receipt: {0}")]
    BadReceipt(String),
    #[error("invalid checkpoint: {0}")]
    BadCheckpoint(String),
    #[error("invalid query endpoint: {0}")]
    BadEndpoint(String),
    #[error("invalid heartbeat: {0}")]
    BadHeartbeat(String),
    #[error("gatekeepers: {0}")]
    Gatekeepers(String),
    #[error(
        "the key rotation to era {0} is under way: contract keys are published and granted once it is ready"
    )]
    Rotating(u64),
}

impl Error {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            Error::NotFound(_) => 1300,
            Error::NoGatekeeper => 1301,
            Error::BadCode(_) => 1302,
            Error::NoExecutor => 1303,
            Error::NotGatekeeper => 1304,
            Error::BadSignature => 1305,
            Error::KeyPublished(_) => 1306,
            Error::NoKey(_) => 1307,
            Error::NotOperator(..) => 1308,
            Error::BadCommand(_) => 1309,
            Error::NotExecutor(_) => 1310,
            Error::WrongSeq { .. } => 1311,
            Error::BadReceipt(_) => 1312,
            Error::BadCheckpoint(_) => 1313,
            Error::BadEndpoint(_) => 1314,
            Error::BadHeartbeat(_) => 1315,
            Error::Gatekeepers(_) => 1316,
            Error::Rotating(_) => 1317,
        }
    }
}
