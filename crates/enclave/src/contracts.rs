//! The key hierarchy of confidential contracts (seed 004 §4.3-4.7), inside
//! the enclave.
//!
//! - **Root key** `k_r(era)`: 32 random bytes a gatekeeper enclave generates
//!   ([`ContractRequest::Bootstrap`], the genesis node of §4.4). Its public
//!   commitment is [`root_commitment`] (a hash: the key is 256 random bits),
//!   which goes into the genesis. The key lives only inside gatekeeper
//!   enclaves and, for restarts, in the platform's sealed storage (the host
//!   keeps the blob; only the same enclave on the same machine opens it).
//! - **Handover** to another gatekeeper ([`ContractRequest::HandOver`]): the
//!   recipient proves it is an enclave of the *same measurement*, attested by
//!   a root this enclave trusts, with a [`PeerAttestation`] (a quote over
//!   [`peer_report_data`]: its identity and encryption key, for this chain).
//!   The key goes HPKE-sealed to that encryption key, `info` binding chain,
//!   era, commitment and recipient, and the sender signs the whole
//!   [`Handover`] with its identity and attaches its own attestation. The
//!   recipient ([`ContractRequest::Receive`]) checks the sender's attestation and
//!   signature, opens the key and checks it against the commitment, so a host
//!   can neither read the key nor plant one of its own.
//! - **Contract keys**: `k_c = KDF(k_r(era), chain, era, contract)`
//!   ([`contract_key`], BLAKE3 `derive_key`, domain-separated). From `k_c`
//!   come the contract's command key (an X25519 key; its public half is
//!   published at deploy, [`ContractRequest::PublicKey`], signed by the
//!   gatekeeper) and its state key (ChaCha20-Poly1305, for checkpoints). An
//!   executor gets `k_c` by the same attested handover ([`ContractRequest::Grant`]
//!   then [`ContractRequest::Accept`]).
//!
//! Whom an enclave trusts as a peer: on a simulated platform, quotes signed by
//! its own platform's attestation root; real hardware needs the vendor's root
//! compiled in, which is not done yet (such peers are refused). In both
//! cases the measurement must equal this enclave's: keys only ever move
//! between enclaves running this very code.

use crate::Error;
pub use crate::light::{CommandProof, Registration};
use crate::light::{LightClient, Synced, verify_registration};
use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{EncryptionKey, Hash, PublicKey, Signature};
use proctor_state::contracts::{Checkpoint, ContractPublicKey, Emit, Receipt};
use proctor_tee::envelope::{self, RecipientKey};
use proctor_tee::{Platform, Quote, TrustPolicy, verify_quote};
use proctor_vm::contract::{Contract, ContractLimits, ContractVm, Ending, Env, State};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// What the host may ask of the enclave's contract keys.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum ContractRequest {
    /// This enclave's attestation as a peer on `chain`.
    Attest { chain: Hash },
    /// Generate the root key of era 0 (the gatekeeper at genesis, before the
    /// chain's hash exists: its commitment goes into the genesis).
    Bootstrap,
    /// Bind the root key to `chain` (once; a root key serves one chain).
    Bind { chain: Hash },
    /// Reload a root key from the blob [`ContractResponse::Root`] returned.
    Restore { sealed: Vec<u8> },
    /// Hand the root keys (every era's held, the newest committed) to the
    /// gatekeeper enclave `to`.
    HandOver { to: PeerAttestation },
    /// Lead the rotation to `era` (seed 004 §4.7): generate its root key,
    /// keeping those of past eras (answered with [`ContractResponse::Root`];
    /// asked again, the same key).
    Rotate { era: u64 },
    /// Destroy every root key: this enclave is no longer a gatekeeper.
    Retire,
    /// Destroy the root keys of eras before `before` (forward secrecy; the
    /// newest is always kept). Answered with the new sealed blob.
    Forget { before: u64 },
    /// Destroy contract `contract`'s keys of eras before `before` (an
    /// executor, once its state is checkpointed under a newer one).
    ForgetContract { contract: u64, before: u64 },
    /// Take a root key handed over by another gatekeeper (answered with
    /// [`ContractResponse::Root`]: the sealed blob to keep).
    Receive(Box<Handover>),
    /// The public command key of `contract` in `era`, signed (a
    /// gatekeeper).
    PublicKey { contract: u64, era: u64 },
    /// Hand `contract`'s key of `era` to the executor enclave `to` (a
    /// gatekeeper).
    Grant {
        contract: u64,
        era: u64,
        to: PeerAttestation,
    },
    /// Take a contract key granted by a gatekeeper (an executor).
    Accept(Box<Handover>),
    /// Start following the chain of `genesis` with a light client (an
    /// executor; [`crate::light`]).
    LightInit {
        genesis: Box<proctor_state::Genesis>,
    },
    /// Follow `headers`, after checking the registrations of their miners
    /// given in `miners` (answered [`ContractResponse::Synced`], or
    /// [`ContractResponse::NeedMiners`]).
    LightSync {
        headers: Vec<proctor_state::Header>,
        miners: Vec<Registration>,
    },
    /// Start executing `contract` (whose key was accepted): its code, and
    /// the checkpoint to resume from (none: the empty state), with the
    /// proof of the command record it was taken at (its log must match).
    Load {
        contract: u64,
        code: Vec<u8>,
        checkpoint: Option<Checkpoint>,
        proof: Option<CommandProof>,
    },
    /// Apply a command to a loaded contract. Its egress messages to other
    /// contracts are sealed to their keys: `keys` are those the host found
    /// on chain (each checked here), `unknown` the targets it found none
    /// for (their messages are dropped). A target in neither gets
    /// [`ContractResponse::NeedKeys`], and nothing is applied.
    /// With `proof`, the command is checked against the light client's
    /// headers (and refused if it does not match); without, the state is
    /// no longer proven (queries say so).
    Apply {
        contract: u64,
        command: Command,
        keys: Vec<TargetKey>,
        unknown: Vec<u64>,
        proof: Option<CommandProof>,
    },
    /// The loaded contract's state, encrypted under its state key.
    Checkpoint { contract: u64 },
    /// Sign that this enclave holds the root key (a new gatekeeper's
    /// readiness, posted on chain).
    Ready,
    /// Sign a heartbeat for `window` of `era` (seed 004 §4.10): only the
    /// window the light client's tip is in (or about to enter).
    Heartbeat { chain: Hash, era: u64, window: u64 },
    /// Answer a query over the loaded state, which the host says is the
    /// state at `height` (block `block_hash`): the statement names both, and
    /// the caller checks them against its own node.
    Query {
        query: Box<SignedQuery>,
        height: u64,
        block_hash: Hash,
    },
}

/// A target contract's command key as a gatekeeper signed it, with the
/// gatekeeper's registration (its quote), which shows it is an enclave of
/// this very code.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TargetKey {
    pub key: proctor_state::contracts::ContractPublicKey,
    /// The signing gatekeeper's registration.
    pub signer: Registration,
}

/// Instructions one query may use.
pub const QUERY_FUEL: u64 = 100_000_000;

/// A query (seed 004 §4.8 step 3): the message sealed to the contract's
/// command key with `info` = [`query_info`], signed by the caller's account
/// key, answerable until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedQuery {
    pub chain: Hash,
    pub contract: u64,
    pub caller: PublicKey,
    /// The last height whose state may answer it.
    pub expires_at: u64,
    /// Where the reply is sealed to.
    pub reply_to: EncryptionKey,
    pub sealed: Vec<u8>,
    pub signature: Signature,
}

impl SignedQuery {
    /// What the caller signs: every field but the signature.
    pub fn signing_bytes(&self) -> Vec<u8> {
        Hash::tagged(
            "proctor/contracts/query/v1",
            &[
                &self.chain.0,
                &self.contract.to_le_bytes(),
                &self.caller.0,
                &self.expires_at.to_le_bytes(),
                &self.reply_to.0,
                &Hash::of(&self.sealed).0,
            ],
        )
        .0
        .to_vec()
    }

    /// The hash an answer's statement names.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/contracts/query-hash", self)
    }
}

/// `info` of a query's message.
pub fn query_info(chain: &Hash, contract: u64, caller: &PublicKey, expires_at: u64) -> Vec<u8> {
    Hash::tagged(
        "proctor/contracts/query-message",
        &[
            &chain.0,
            &contract.to_le_bytes(),
            &caller.0,
            &expires_at.to_le_bytes(),
        ],
    )
    .0
    .to_vec()
}

/// `info` of the reply to the query whose hash is `query`.
pub fn query_reply_info(query: &Hash) -> Vec<u8> {
    Hash::tagged("proctor/contracts/query-reply", &[&query.0])
        .0
        .to_vec()
}

/// What the executor's enclave signs about a query's answer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct QueryStatement {
    pub chain: Hash,
    pub contract: u64,
    /// Commands applied to the state that answered.
    pub applied: u64,
    pub height: u64,
    pub block_hash: Hash,
    pub state_hash: Hash,
    /// [`SignedQuery::hash`].
    pub query: Hash,
    /// Hash of the sealed reply.
    pub reply: Hash,
    /// 0, or the contract's refusal code.
    pub code: i32,
    pub executor: PublicKey,
    /// Whether every command of this state (and the checkpoint it started
    /// from) was checked against headers the enclave's light client
    /// verified, and the block named is the one it follows at that height.
    pub proven: bool,
}

impl QueryStatement {
    pub fn signing_bytes(&self) -> Vec<u8> {
        Hash::of_encoded("proctor/contracts/query-statement/v1", self)
            .0
            .to_vec()
    }
}

/// An answer: the statement, the reply sealed to the caller, the signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct QueryAnswer {
    pub statement: QueryStatement,
    pub reply: Vec<u8>,
    pub signature: Signature,
}

/// A command as the chain carries it: the message HPKE-sealed to the
/// contract's command key with `info` = [`command_info`] (chain, contract,
/// sender, nonce), so it opens for no other contract and no other sender.
pub use proctor_state::contracts::CommandInput as Command;

/// `info` of a command to `contract` from `sender` with `nonce`.
pub fn command_info(
    chain: &Hash,
    contract: u64,
    sender: &proctor_primitives::Address,
    nonce: u64,
) -> Vec<u8> {
    Hash::tagged(
        "proctor/contracts/command",
        &[
            &chain.0,
            &contract.to_le_bytes(),
            &sender.0,
            &nonce.to_le_bytes(),
        ],
    )
    .0
    .to_vec()
}

/// `info` of the reply to the `applied`-th command of `contract`.
pub fn reply_info(chain: &Hash, contract: u64, applied: u64) -> Vec<u8> {
    Hash::tagged(
        "proctor/contracts/reply",
        &[&chain.0, &contract.to_le_bytes(), &applied.to_le_bytes()],
    )
    .0
    .to_vec()
}

/// The key a checkpoint is encrypted under: the state key bound to the
/// checkpoint's public fields, so a checkpoint cannot be passed off as
/// another contract's, another era's or another point in its history.
fn checkpoint_key(k_c: &[u8; 32], c: &Checkpoint) -> [u8; 32] {
    let mut m = state_key(k_c).to_vec();
    m.extend_from_slice(&c.contract.to_le_bytes());
    m.extend_from_slice(&c.era.to_le_bytes());
    m.extend_from_slice(&c.applied.to_le_bytes());
    m.extend_from_slice(&c.state_hash.0);
    m.extend_from_slice(&c.log.0);
    blake3::derive_key("proctor/contracts v1 checkpoint key", &m)
}

/// The enclave's answers about contract keys and execution.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum ContractResponse {
    Attested(PeerAttestation),
    /// A root key is held: its commitment, and the sealed blob to keep.
    Root {
        chain: Option<Hash>,
        era: u64,
        commitment: Hash,
        sealed: Vec<u8>,
    },
    Handover(Box<Handover>),
    PublicKey(ContractPublicKey),
    /// A handover was accepted.
    Accepted {
        era: u64,
        commitment: Hash,
    },
    /// A contract is loaded, at this state.
    Loaded {
        applied: u64,
        state_hash: Hash,
    },
    /// The light client follows this tip.
    Synced {
        height: u64,
        hash: Hash,
    },
    /// The light client needs these miners' registrations first.
    NeedMiners {
        miners: Vec<PublicKey>,
    },
    /// The command emits to these contracts, whose keys the host must give.
    NeedKeys {
        targets: Vec<u64>,
    },
    /// A command was applied: the receipt, signed by this enclave.
    Applied {
        receipt: Receipt,
        signature: Signature,
    },
    /// The root keys were destroyed.
    Retired,
    /// The state, encrypted; signed by this enclave.
    Checkpoint {
        checkpoint: Checkpoint,
        signature: Signature,
    },
    Answer(Box<QueryAnswer>),
    Heartbeat(Signature),
    Ready(Signature),
}

/// An enclave's claim to be a peer: its keys and a quote binding them.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PeerAttestation {
    pub identity: PublicKey,
    pub encryption_key: EncryptionKey,
    pub quote: Quote,
}

/// A key sealed from one enclave to another.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Handover {
    pub chain: Hash,
    pub era: u64,
    /// 0 for the root key, else the contract whose key this is.
    pub contract: u64,
    /// Commitment to the key ([`root_commitment`] or [`key_commitment`]).
    pub commitment: Hash,
    pub to: PublicKey,
    /// The key, HPKE-sealed to the recipient's encryption key (for the root
    /// key: every era's held, as count (u32 LE) then era (u64 LE) and key,
    /// the commitment naming the newest).
    pub sealed: Vec<u8>,
    pub from: PeerAttestation,
    /// The sender's identity signature over [`Handover::signing_bytes`].
    pub signature: Signature,
}

impl Handover {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut m = b"proctor/contracts/handover/v1".to_vec();
        m.extend_from_slice(&self.chain.0);
        m.extend_from_slice(&self.era.to_le_bytes());
        m.extend_from_slice(&self.contract.to_le_bytes());
        m.extend_from_slice(&self.commitment.0);
        m.extend_from_slice(&self.to.0);
        m.extend_from_slice(Hash::of(&self.sealed).0.as_slice());
        m
    }

    fn info(&self) -> Vec<u8> {
        Hash::tagged(
            "proctor/contracts/handover-info",
            &[
                &self.chain.0,
                &self.era.to_le_bytes(),
                &self.contract.to_le_bytes(),
                &self.commitment.0,
                &self.to.0,
            ],
        )
        .0
        .to_vec()
    }
}

/// The report data of a peer attestation: BLAKE3-XOF over the identity, the
/// encryption key and the chain, so a quote vouches for exactly these keys
/// on exactly this chain.
pub fn peer_report_data(identity: &PublicKey, key: &EncryptionKey, chain: &Hash) -> [u8; 64] {
    let mut h = blake3::Hasher::new();
    h.update(b"proctor/contracts/peer/v1");
    h.update(&identity.0);
    h.update(&key.0);
    h.update(&chain.0);
    let mut out = [0u8; 64];
    h.finalize_xof().fill(&mut out);
    out
}

/// The public commitment to root key `k` of `era` (the genesis holds
/// era 0's, so it cannot name the chain's hash).
pub fn root_commitment(era: u64, k: &[u8; 32]) -> Hash {
    Hash::tagged(
        "proctor/contracts/root-commitment",
        &[&era.to_le_bytes(), k],
    )
}

/// The commitment to contract key `k` (in a grant).
pub fn key_commitment(contract: u64, k: &[u8; 32]) -> Hash {
    Hash::tagged(
        "proctor/contracts/key-commitment",
        &[&contract.to_le_bytes(), k],
    )
}

/// `k_c`: contract `contract`'s key under root key `root` of `era` on
/// `chain` (BLAKE3 `derive_key`, context "proctor/contracts v1 contract
/// key").
pub fn contract_key(root: &[u8; 32], chain: &Hash, era: u64, contract: u64) -> [u8; 32] {
    let mut m = Vec::with_capacity(80);
    m.extend_from_slice(root);
    m.extend_from_slice(&chain.0);
    m.extend_from_slice(&era.to_le_bytes());
    m.extend_from_slice(&contract.to_le_bytes());
    blake3::derive_key("proctor/contracts v1 contract key", &m)
}

/// The contract's command key pair (commands are HPKE-sealed to its public
/// half), from `k_c`.
pub fn command_key(k_c: &[u8; 32]) -> RecipientKey {
    RecipientKey::from_seed(&blake3::derive_key("proctor/contracts v1 command key", k_c))
}

/// The contract's state key (checkpoints), from `k_c`.
pub fn state_key(k_c: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("proctor/contracts v1 state key", k_c)
}

/// The root keys an enclave holds, by era (the newest is the one in
/// force; past ones keep history readable).
struct Root {
    /// The chain they serve, once bound.
    chain: Option<Hash>,
    keys: BTreeMap<u64, Zeroizing<[u8; 32]>>,
}

impl Root {
    /// The newest era's key.
    fn newest(&self) -> (u64, [u8; 32]) {
        let (era, k) = self.keys.last_key_value().expect("a root holds a key");
        (*era, **k)
    }

    /// The keys as bytes: count (u32 LE), then each era (u64 LE) and key.
    fn keyring(&self) -> Zeroizing<Vec<u8>> {
        let mut b = Zeroizing::new((self.keys.len() as u32).to_le_bytes().to_vec());
        for (era, k) in &self.keys {
            b.extend_from_slice(&era.to_le_bytes());
            b.extend_from_slice(&**k);
        }
        b
    }

    fn from_keyring(b: &[u8]) -> Option<BTreeMap<u64, Zeroizing<[u8; 32]>>> {
        let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
        if n == 0 || b.len() != 4 + n * 40 {
            return None;
        }
        let mut keys = BTreeMap::new();
        for e in b[4..].chunks_exact(40) {
            let era = u64::from_le_bytes(e[..8].try_into().ok()?);
            let key = Zeroizing::new(<[u8; 32]>::try_from(&e[8..]).ok()?);
            if keys.insert(era, key).is_some() {
                return None;
            }
        }
        Some(keys)
    }
}

/// A 32-byte key, wiped when dropped.
type Secret = Zeroizing<[u8; 32]>;

/// The keys an enclave holds: a root key (gatekeepers), contract keys
/// (executors). Never leave the enclave object but sealed.
#[derive(Default)]
pub(crate) struct Keys {
    root: Option<Root>,
    /// (contract, era) → (chain, k_c).
    contracts: BTreeMap<(u64, u64), (Hash, Secret)>,
    running: BTreeMap<u64, Running>,
    vm: Option<ContractVm>,
    light: Option<LightClient>,
}

/// A contract this enclave executes: its code and plaintext state, which
/// exist only here.
struct Running {
    code: Contract,
    state: State,
    applied: u64,
    /// The command log applied (the chain checks it in every receipt).
    log: Hash,
    /// Whether everything applied was checked against the light client.
    proven: bool,
}

fn err(why: impl Into<String>) -> Error {
    Error::Contracts(why.into())
}

fn rng(p: &mut dyn Platform) -> rand_chacha::ChaCha20Rng {
    let mut seed = [0u8; 32];
    p.random(&mut seed);
    <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed)
}

/// The roots this enclave trusts for peers' quotes: its own simulated
/// attestation root on a simulated platform; none yet on real hardware.
pub(crate) fn trust(p: &dyn Platform) -> TrustPolicy {
    match p.quote(&[0; 64]) {
        Ok(Quote::Sim(q)) => TrustPolicy {
            sim_root: Some(q.root),
            dcap: None,
        },
        _ => TrustPolicy::default(),
    }
}

/// Checks that `peer` is an enclave running this code, attested for
/// `chain`.
fn verify_peer(p: &dyn Platform, peer: &PeerAttestation, chain: &Hash) -> Result<(), Error> {
    // Quotes of the simulated root carry no time; DCAP ones would be checked
    // against collateral, which real-hardware support will bring.
    let claims = verify_quote(&peer.quote, &trust(p), 0)
        .map_err(|e| err(format!("the peer's attestation does not verify: {e}")))?;
    if claims.measurement != p.measurement() {
        return Err(err(format!(
            "the peer runs other code (measurement {}, this enclave's is {})",
            claims.measurement,
            p.measurement()
        )));
    }
    if claims.report_data != peer_report_data(&peer.identity, &peer.encryption_key, chain) {
        return Err(err("the peer's quote is not for these keys on this chain"));
    }
    Ok(())
}

impl Keys {
    pub(crate) fn handle(
        &mut self,
        p: &mut dyn Platform,
        req: ContractRequest,
    ) -> Result<ContractResponse, Error> {
        match req {
            ContractRequest::Attest { chain } => Ok(ContractResponse::Attested(attest(p, &chain)?)),
            ContractRequest::Bootstrap => {
                if self.root.is_some() {
                    return Err(err("this enclave already holds a root key"));
                }
                let mut key = Zeroizing::new([0u8; 32]);
                p.random(key.as_mut());
                self.root = Some(Root {
                    chain: None,
                    keys: [(0, key)].into(),
                });
                self.root_response(p)
            }
            ContractRequest::Bind { chain } => {
                let r = self
                    .root
                    .as_mut()
                    .ok_or_else(|| err("this enclave holds no root key (not a gatekeeper)"))?;
                match r.chain {
                    Some(c) if c != chain => {
                        return Err(err(format!("the root key serves chain {c}, not {chain}")));
                    }
                    _ => r.chain = Some(chain),
                }
                self.root_response(p)
            }
            ContractRequest::Restore { sealed } => {
                let plain = Zeroizing::new(p.unseal(&sealed)?);
                let keys = (plain.len() > 33)
                    .then(|| Root::from_keyring(&plain[33..]))
                    .flatten()
                    .ok_or_else(|| err("the sealed root key is malformed"))?;
                let chain = (plain[0] == 1).then(|| Hash(plain[1..33].try_into().unwrap()));
                self.root = Some(Root { chain, keys });
                self.root_response(p)
            }
            ContractRequest::HandOver { to } => {
                let (chain, era, key) = self.bound_root(None)?;
                let commitment = root_commitment(era, &key);
                let ring = self.root.as_ref().expect("bound above").keyring();
                Ok(ContractResponse::Handover(Box::new(handover(
                    p, chain, era, 0, commitment, &ring, &to,
                )?)))
            }
            ContractRequest::Receive(h) => {
                if h.contract != 0 {
                    return Err(err("this handover is a contract key, not a root key"));
                }
                let ring = receive(p, &h)?;
                let keys = Root::from_keyring(&ring)
                    .ok_or_else(|| err("the handed-over root keys are malformed"))?;
                if keys
                    .get(&h.era)
                    .is_none_or(|k| root_commitment(h.era, k) != h.commitment)
                {
                    return Err(err("the root key does not match its commitment"));
                }
                // Past eras' keys join those held; the newest replaces an
                // earlier attempt's key of its era.
                let root = self.root.get_or_insert_with(|| Root {
                    chain: Some(h.chain),
                    keys: BTreeMap::new(),
                });
                if root.chain.is_some_and(|c| c != h.chain) {
                    return Err(err("these root keys serve another chain"));
                }
                root.chain = Some(h.chain);
                root.keys.extend(keys);
                // Sealed for the host to keep: a restart restores it.
                self.root_response(p)
            }
            ContractRequest::Rotate { era } => {
                let (_, newest, _) = self.bound_root(None)?;
                let root = self.root.as_mut().expect("bound above");
                if let std::collections::btree_map::Entry::Vacant(slot) = root.keys.entry(era) {
                    if era <= newest {
                        return Err(err(format!(
                            "era {era} is past: the newest root key is of era {newest}"
                        )));
                    }
                    let mut key = Zeroizing::new([0u8; 32]);
                    p.random(key.as_mut());
                    slot.insert(key);
                }
                self.root_response(p)
            }
            ContractRequest::Retire => {
                self.root = None;
                Ok(ContractResponse::Retired)
            }
            ContractRequest::Forget { before } => {
                let root = self
                    .root
                    .as_mut()
                    .ok_or_else(|| err("this enclave holds no root key (not a gatekeeper)"))?;
                let newest = root.newest().0;
                root.keys.retain(|era, _| *era >= before.min(newest));
                self.root_response(p)
            }
            ContractRequest::ForgetContract { contract, before } => {
                let newest = self.key(contract, None)?.1;
                self.contracts
                    .retain(|(c, era), _| *c != contract || *era >= before.min(newest));
                Ok(ContractResponse::Retired)
            }
            ContractRequest::PublicKey { contract, era } => {
                let (chain, era, root) = self.bound_root(Some(era))?;
                let k_c = Zeroizing::new(contract_key(&root, &chain, era, contract));
                let mut pk = ContractPublicKey {
                    chain,
                    era,
                    contract,
                    key: command_key(&k_c).public(),
                    gatekeeper: p.identity(),
                    signature: Signature([0; 64]),
                };
                pk.signature = p.sign(&pk.signing_bytes());
                Ok(ContractResponse::PublicKey(pk))
            }
            ContractRequest::Grant { contract, era, to } => {
                if contract == 0 {
                    return Err(err("contract ids start at 1"));
                }
                let (chain, era, root) = self.bound_root(Some(era))?;
                let k_c = Zeroizing::new(contract_key(&root, &chain, era, contract));
                let commitment = key_commitment(contract, &k_c);
                Ok(ContractResponse::Handover(Box::new(handover(
                    p,
                    chain,
                    era,
                    contract,
                    commitment,
                    k_c.as_slice(),
                    &to,
                )?)))
            }
            ContractRequest::Accept(h) => {
                if h.contract == 0 {
                    return Err(err("this handover is a root key, not a contract key"));
                }
                let key = receive(p, &h)?;
                let key = <[u8; 32]>::try_from(key.as_slice())
                    .map(Zeroizing::new)
                    .map_err(|_| err("the granted key is not 32 bytes"))?;
                if key_commitment(h.contract, &key) != h.commitment {
                    return Err(err("the contract key does not match its commitment"));
                }
                self.contracts.insert((h.contract, h.era), (h.chain, key));
                Ok(ContractResponse::Accepted {
                    era: h.era,
                    commitment: h.commitment,
                })
            }
            ContractRequest::LightInit { genesis } => {
                let light = LightClient::new(&genesis).map_err(err)?;
                let (height, hash) = light.tip();
                self.light = Some(light);
                Ok(ContractResponse::Synced { height, hash })
            }
            ContractRequest::LightSync { headers, miners } => {
                let light = self
                    .light
                    .as_mut()
                    .ok_or_else(|| err("no light client yet (LightInit)"))?;
                light.add_miners(p, &miners).map_err(err)?;
                match light.sync(&headers).map_err(err)? {
                    Synced::Tip { height, hash } => Ok(ContractResponse::Synced { height, hash }),
                    Synced::NeedMiners(miners) => Ok(ContractResponse::NeedMiners { miners }),
                }
            }
            ContractRequest::Load {
                contract,
                code,
                checkpoint,
                proof,
            } => self.load(contract, &code, checkpoint, proof.as_ref()),
            ContractRequest::Apply {
                contract,
                command,
                keys,
                unknown,
                proof,
            } => match self.apply(p, contract, command, &keys, &unknown, proof.as_ref())? {
                Err(targets) => Ok(ContractResponse::NeedKeys { targets }),
                Ok(receipt) => {
                    let chain = self.key(contract, None)?.0;
                    let signature = p.sign(&receipt.signing_bytes(&chain));
                    Ok(ContractResponse::Applied { receipt, signature })
                }
            },
            ContractRequest::Ready => {
                let (chain, era, key) = self.bound_root(None)?;
                let commitment = root_commitment(era, &key);
                Ok(ContractResponse::Ready(p.sign(
                    &proctor_state::contracts::ready_bytes(&chain, era, &commitment),
                )))
            }
            ContractRequest::Heartbeat { chain, era, window } => {
                // Only for the window the chain is in by the light client
                // (the next block's, or the one after): a host cannot
                // collect heartbeats ahead of time.
                let light = self.light(&chain)?;
                let tip = light.tip().0;
                if ![tip + 1, tip + 2]
                    .iter()
                    .any(|h| light.era_window(*h) == (era, window))
                {
                    return Err(err(format!(
                        "window {window} of era {era} is not the chain's now (its tip is at {tip})"
                    )));
                }
                Ok(ContractResponse::Heartbeat(p.sign(
                    &proctor_state::contracts::heartbeat_bytes(&chain, era, window),
                )))
            }
            ContractRequest::Query {
                query,
                height,
                block_hash,
            } => self
                .query(p, *query, height, block_hash)
                .map(|a| ContractResponse::Answer(Box::new(a))),
            ContractRequest::Checkpoint { contract } => {
                let checkpoint = self.checkpoint(p, contract)?;
                let chain = self.key(contract, None)?.0;
                let signature = p.sign(&checkpoint.signing_bytes(&chain));
                Ok(ContractResponse::Checkpoint {
                    checkpoint,
                    signature,
                })
            }
        }
    }

    /// The root key of `era` (none: the newest) with the chain it is
    /// bound to.
    fn bound_root(&self, era: Option<u64>) -> Result<(Hash, u64, [u8; 32]), Error> {
        let r = self
            .root
            .as_ref()
            .ok_or_else(|| err("this enclave holds no root key (not a gatekeeper)"))?;
        let chain = r
            .chain
            .ok_or_else(|| err("the root key is not bound to a chain yet (Bind)"))?;
        match era {
            None => {
                let (era, k) = r.newest();
                Ok((chain, era, k))
            }
            Some(era) => r
                .keys
                .get(&era)
                .map(|k| (chain, era, **k))
                .ok_or_else(|| err(format!("this enclave holds no root key of era {era}"))),
        }
    }

    fn root_response(&self, p: &mut dyn Platform) -> Result<ContractResponse, Error> {
        let r = self
            .root
            .as_ref()
            .ok_or_else(|| err("this enclave holds no root key (not a gatekeeper)"))?;
        let mut plain = Zeroizing::new(vec![u8::from(r.chain.is_some())]);
        plain.extend_from_slice(&r.chain.unwrap_or(Hash::ZERO).0);
        plain.extend_from_slice(&r.keyring());
        let (era, key) = r.newest();
        let key = Zeroizing::new(key);
        Ok(ContractResponse::Root {
            chain: r.chain,
            era,
            commitment: root_commitment(era, &key),
            sealed: p.seal(&plain),
        })
    }

    /// Contract `contract`'s key of `era` (none: the newest held), with
    /// its chain.
    fn key(&self, contract: u64, era: Option<u64>) -> Result<(Hash, u64, [u8; 32]), Error> {
        let found = match era {
            Some(era) => self.contracts.get_key_value(&(contract, era)),
            None => self
                .contracts
                .range((contract, 0)..=(contract, u64::MAX))
                .next_back(),
        };
        found
            .map(|((_, era), (chain, k))| (*chain, *era, **k))
            .ok_or_else(|| match era {
                Some(era) => err(format!(
                    "no key of era {era} for contract {contract}: none was granted"
                )),
                None => err(format!("no key for contract {contract}: none was granted")),
            })
    }

    /// The light client, if it follows `chain`.
    fn light(&self, chain: &Hash) -> Result<&LightClient, Error> {
        self.light
            .as_ref()
            .filter(|l| l.chain() == *chain)
            .ok_or_else(|| err("no light client of this contract's chain (LightInit)"))
    }

    fn load(
        &mut self,
        contract: u64,
        code: &[u8],
        checkpoint: Option<Checkpoint>,
        proof: Option<&CommandProof>,
    ) -> Result<ContractResponse, Error> {
        // Proven: from the empty state, or from a checkpoint whose command
        // log is the chain's at its position.
        let proven = match (&checkpoint, proof) {
            (None, _) => true,
            (Some(c), Some(p)) => {
                let chain = self.key(contract, Some(c.era))?.0;
                let record = self
                    .light(&chain)?
                    .command(contract, c.applied, p)
                    .map_err(err)?;
                if record.log != c.log {
                    return Err(err("the checkpoint's command log is not the chain's"));
                }
                true
            }
            (Some(_), None) => false,
        };
        let era = checkpoint.as_ref().map(|c| c.era);
        let (_, era, k_c) = self.key(contract, era)?;
        let k_c = Zeroizing::new(k_c);
        if self.vm.is_none() {
            self.vm = Some(ContractVm::new(ContractLimits::default())?);
        }
        let vm = self.vm.as_ref().expect("set above");
        let code = vm.load(code)?;
        let (state, applied, log) = match checkpoint {
            None => (State::default(), 0, Hash::ZERO),
            Some(c) => {
                if c.contract != contract || c.era != era {
                    return Err(err("the checkpoint is another contract's or another era's"));
                }
                let k = Zeroizing::new(checkpoint_key(&k_c, &c));
                let plain = Zeroizing::new(envelope::decrypt(&k, &c.ciphertext).map_err(|_| {
                    err("the checkpoint does not open (tampered, or not this contract's)")
                })?);
                let state =
                    State::from_bytes(&plain, vm.limits()).map_err(|e| err(e.to_string()))?;
                if state.hash() != c.state_hash {
                    return Err(err("the checkpoint's state does not match its hash"));
                }
                (state, c.applied, c.log)
            }
        };
        let state_hash = state.hash();
        self.running.insert(
            contract,
            Running {
                code,
                state,
                applied,
                log,
                proven,
            },
        );
        Ok(ContractResponse::Loaded {
            applied,
            state_hash,
        })
    }

    fn running(&mut self, contract: u64) -> Result<&mut Running, Error> {
        self.running
            .get_mut(&contract)
            .ok_or_else(|| err(format!("contract {contract} is not loaded")))
    }

    /// The receipt, or the targets whose keys are missing.
    fn apply(
        &mut self,
        p: &mut dyn Platform,
        contract: u64,
        c: Command,
        keys: &[TargetKey],
        unknown: &[u64],
        proof: Option<&CommandProof>,
    ) -> Result<Result<Receipt, Vec<u64>>, Error> {
        // An oracle datagram comes in the clear (it is public on chain);
        // any other command opens with the key of the era it was sealed
        // under: without that key nothing is applied (another executor
        // would open it).
        let chain = self.key(contract, None)?.0;
        // Checked against the chain before anything runs: the record the
        // light client proves is this very command, at the next position.
        let record = match proof {
            None => None,
            Some(p) => {
                let running = self.running(contract)?;
                let seq = running.applied + 1;
                let after =
                    proctor_state::contracts::next_log(&running.log, &c.hash(contract, seq));
                let r = self.light(&chain)?.command(contract, seq, p).map_err(err)?;
                if r.input() != c {
                    return Err(err(format!(
                        "command {seq} is not the one the chain has at that position"
                    )));
                }
                if r.log != after {
                    return Err(err(format!(
                        "the state has diverged from the chain's before command {seq} (its command log differs)"
                    )));
                }
                Some(r)
            }
        };
        let opened = if c.oracle {
            Ok(c.sealed.clone())
        } else {
            let k_c = Zeroizing::new(self.key(contract, Some(c.era))?.2);
            let info = command_info(&chain, contract, &c.sender, c.nonce);
            command_key(&k_c).open(&info, &c.sealed)
        };
        let vm = self
            .vm
            .clone()
            .ok_or_else(|| err("no contract is loaded"))?;
        let r = self.running(contract)?;
        let (code, instructions, reply, emits) = match opened {
            Err(_) => (
                -1,
                0,
                b"the command does not open for this contract and sender".to_vec(),
                vec![],
            ),
            Ok(msg) => {
                let env = Env {
                    caller: c.sender,
                    height: c.height,
                    msg,
                    fuel: c.fuel,
                };
                // Nothing is applied until every target's key is at hand.
                let (x, writes) = vm.run_command(&r.code, &r.state, env, c.init);
                let targets: Vec<u64> = x
                    .emits
                    .iter()
                    .map(|e| target_of(e))
                    .filter(|&t| t != 0 && !unknown.contains(&t))
                    .filter(|t| !keys.iter().any(|k| k.key.contract == *t))
                    .collect();
                if !targets.is_empty() {
                    return Ok(Err(targets));
                }
                r.state.apply(writes);
                let code = match x.ending {
                    Ending::Done => 0,
                    Ending::Refused(c) => c,
                    Ending::Trapped(_) => -1,
                    Ending::OutOfFuel => -2,
                };
                (code, x.instructions, x.reply, x.emits)
            }
        };
        r.applied += 1;
        let seq = r.applied;
        r.log = proctor_state::contracts::next_log(&r.log, &c.hash(contract, seq));
        r.proven &= record.is_some();
        // Egress: to the chain as published; to a contract sealed to its
        // checked key, bound to this contract's address and the position.
        let me = proctor_state::contracts::contract_address(contract);
        let mut sealed_emits = Vec::new();
        for (i, e) in emits.into_iter().enumerate() {
            let t = target_of(&e);
            if t == 0 {
                sealed_emits.push(e);
                continue;
            }
            let Some(k) = keys.iter().find(|k| k.key.contract == t) else {
                continue; // the host found no key for it: dropped
            };
            check_target_key(p, k, &chain)?;
            let nonce = proctor_state::contracts::egress_nonce(seq, i);
            let info = command_info(&chain, t, &me, nonce);
            let sealed = envelope::seal_to(&k.key.key, &info, &e[8..], &mut rng(p))
                .map_err(|e| err(format!("cannot seal an egress message: {e}")))?;
            sealed_emits.push([&e[..8], &sealed].concat());
        }
        let emits = sealed_emits;
        // Nobody reads the reply to an oracle datagram: it is dropped, so
        // nothing of the state leaks through it.
        let reply = match c.oracle {
            true => vec![],
            false => envelope::seal_to(
                &c.reply_to,
                &reply_info(&chain, contract, seq),
                &reply,
                &mut rng(p),
            )
            .map_err(|e| err(format!("cannot seal the reply: {e}")))?,
        };
        Ok(Ok(Receipt {
            contract,
            seq,
            code,
            instructions,
            reply,
            emits: emits.into_iter().map(Emit).collect(),
            state_hash: r.state.hash(),
            log: r.log,
            executor: p.identity(),
        }))
    }

    fn query(
        &mut self,
        p: &mut dyn Platform,
        q: SignedQuery,
        height: u64,
        block_hash: Hash,
    ) -> Result<QueryAnswer, Error> {
        let (chain, _, _) = self.key(q.contract, None)?;
        if q.chain != chain {
            return Err(err("the query is for another chain"));
        }
        q.caller
            .verify(&q.signing_bytes(), &q.signature)
            .map_err(|_| err("the query's signature does not verify"))?;
        // The block the answer names: the host's, if the light client
        // follows it there; the light client's tip, if the host's is past
        // it; the host's word (unproven) without a light client.
        let (height, block_hash, followed) = match self.light(&chain).ok() {
            None => (height, block_hash, false),
            Some(l) => match l.hash_at(height) {
                Some(h) if h == block_hash => (height, block_hash, true),
                Some(_) => {
                    return Err(err(format!(
                        "block {block_hash} is not the one followed at height {height}"
                    )));
                }
                None if l.tip().0 < height => {
                    let (h, b) = l.tip();
                    (h, b, true)
                }
                None => (height, block_hash, false),
            },
        };
        if height > q.expires_at {
            return Err(err(format!(
                "the query expired at height {} (the state is at {height})",
                q.expires_at
            )));
        }
        let info = query_info(&chain, q.contract, &q.caller, q.expires_at);
        // Sealed to the contract's key of the newest era, or of an earlier
        // one when the caller read it before the rotation.
        let msg = self
            .contracts
            .range((q.contract, 0)..=(q.contract, u64::MAX))
            .rev()
            .find_map(|(_, (_, k_c))| command_key(k_c).open(&info, &q.sealed).ok())
            .ok_or_else(|| err("the query does not open for this contract and caller"))?;
        let vm = self
            .vm
            .clone()
            .ok_or_else(|| err("no contract is loaded"))?;
        let r = self.running(q.contract)?;
        let env = Env {
            caller: q.caller.address(),
            height,
            msg,
            fuel: QUERY_FUEL,
        };
        let x = vm.query(&r.code, &r.state, env);
        let code = match x.ending {
            Ending::Done => 0,
            Ending::Refused(c) => c,
            Ending::Trapped(why) => return Err(err(format!("the query trapped: {why}"))),
            Ending::OutOfFuel => {
                return Err(err(format!(
                    "the query used more than {QUERY_FUEL} instructions"
                )));
            }
        };
        let (applied, state_hash, proven) = (r.applied, r.state.hash(), r.proven);
        let query = q.hash();
        let reply = envelope::seal_to(
            &q.reply_to,
            &query_reply_info(&query),
            &x.reply,
            &mut rng(p),
        )
        .map_err(|e| err(format!("cannot seal the reply: {e}")))?;
        let statement = QueryStatement {
            chain,
            contract: q.contract,
            applied,
            height,
            block_hash,
            state_hash,
            query,
            reply: Hash::of(&reply),
            code,
            executor: p.identity(),
            proven: proven && followed,
        };
        let signature = p.sign(&statement.signing_bytes());
        Ok(QueryAnswer {
            statement,
            reply,
            signature,
        })
    }

    fn checkpoint(&mut self, p: &mut dyn Platform, contract: u64) -> Result<Checkpoint, Error> {
        let (_, era, k_c) = self.key(contract, None)?;
        let k_c = Zeroizing::new(k_c);
        let r = self.running(contract)?;
        let plain = Zeroizing::new(r.state.to_bytes());
        let mut cp = Checkpoint {
            contract,
            era,
            applied: r.applied,
            state_hash: r.state.hash(),
            log: r.log,
            ciphertext: vec![],
            parts: None,
        };
        let k = Zeroizing::new(checkpoint_key(&k_c, &cp));
        cp.ciphertext = envelope::encrypt(&k, &plain, &mut rng(p));
        Ok(cp)
    }
}

/// The target of an egress message (its first 8 bytes, little-endian).
fn target_of(e: &[u8]) -> u64 {
    e.get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Checks that `k` was signed, for `chain`, by an enclave of this code:
/// the gatekeeper's signature, and its registration quote (trusted root,
/// same measurement, report data binding that identity).
fn check_target_key(p: &dyn Platform, k: &TargetKey, chain: &Hash) -> Result<(), Error> {
    let key = &k.key;
    if key.chain != *chain {
        return Err(err("a target's key is for another chain"));
    }
    key.gatekeeper
        .verify(&key.signing_bytes(), &key.signature)
        .map_err(|_| err("a target's key is not signed by its gatekeeper"))?;
    if k.signer.identity != key.gatekeeper {
        return Err(err("the target key's signer is not its gatekeeper"));
    }
    verify_registration(p, &k.signer, &[p.measurement()]).map_err(|e| {
        err(format!(
            "the target key's signer is not an enclave of this code: {e}"
        ))
    })
}

fn attest(p: &dyn Platform, chain: &Hash) -> Result<PeerAttestation, Error> {
    let (identity, encryption_key) = (p.identity(), p.encryption_key());
    Ok(PeerAttestation {
        quote: p.quote(&peer_report_data(&identity, &encryption_key, chain))?,
        identity,
        encryption_key,
    })
}

/// Seals `key` to the attested peer `to` and signs the handover.
fn handover(
    p: &mut dyn Platform,
    chain: Hash,
    era: u64,
    contract: u64,
    commitment: Hash,
    key: &[u8],
    to: &PeerAttestation,
) -> Result<Handover, Error> {
    verify_peer(p, to, &chain)?;
    let mut h = Handover {
        chain,
        era,
        contract,
        commitment,
        to: to.identity,
        sealed: vec![],
        from: attest(p, &chain)?,
        signature: Signature([0; 64]),
    };
    h.sealed = envelope::seal_to(&to.encryption_key, &h.info(), key, &mut rng(p))
        .map_err(|e| err(format!("cannot seal to the peer: {e}")))?;
    h.signature = p.sign(&h.signing_bytes());
    Ok(h)
}

/// Checks a handover's sender and opens its key (for this enclave only).
fn receive(p: &dyn Platform, h: &Handover) -> Result<Zeroizing<Vec<u8>>, Error> {
    if h.to != p.identity() {
        return Err(err("this handover is for another enclave"));
    }
    verify_peer(p, &h.from, &h.chain)?;
    h.from
        .identity
        .verify(&h.signing_bytes(), &h.signature)
        .map_err(|_| err("the handover's signature does not verify"))?;
    Ok(Zeroizing::new(
        p.open_envelope(&h.info(), &h.sealed)
            .map_err(|e| err(format!("the handover does not open: {e}")))?,
    ))
}
