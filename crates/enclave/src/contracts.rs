//! The key hierarchy of confidential contracts (seed 004 §4.3-4.7), inside
//! the enclave.
//!
//! - **Root key** `k_r(era)`: 32 random bytes a gatekeeper enclave generates
//!   ([`KeyRequest::Bootstrap`], the genesis node of §4.4). Its public
//!   commitment is [`root_commitment`] (a hash: the key is 256 random bits),
//!   which goes into the genesis. The key lives only inside gatekeeper
//!   enclaves and, for restarts, in the platform's sealed storage (the host
//!   keeps the blob; only the same enclave on the same machine opens it).
//! - **Handover** to another gatekeeper ([`KeyRequest::HandOver`]): the
//!   recipient proves it is an enclave of the *same measurement*, attested by
//!   a root this enclave trusts, with a [`PeerAttestation`] (a quote over
//!   [`peer_report_data`]: its identity and encryption key, for this chain).
//!   The key goes HPKE-sealed to that encryption key, `info` binding chain,
//!   era, commitment and recipient, and the sender signs the whole
//!   [`Handover`] with its identity and attaches its own attestation. The
//!   recipient ([`KeyRequest::Receive`]) checks the sender's attestation and
//!   signature, opens the key and checks it against the commitment, so a host
//!   can neither read the key nor plant one of its own.
//! - **Contract keys**: `k_c = KDF(k_r(era), chain, era, contract)`
//!   ([`contract_key`], BLAKE3 `derive_key`, domain-separated). From `k_c`
//!   come the contract's command key (an X25519 key; its public half is
//!   published at deploy, [`KeyRequest::PublicKey`], signed by the
//!   gatekeeper) and its state key (ChaCha20-Poly1305, for checkpoints). An
//!   executor gets `k_c` by the same attested handover ([`KeyRequest::Grant`]
//!   then [`KeyRequest::Accept`]).
//!
//! Whom an enclave trusts as a peer: on a simulated platform, quotes signed by
//! its own platform's attestation root; real hardware needs the vendor's root
//! compiled in, which is not done yet (such peers are refused). In both
//! cases the measurement must equal this enclave's: keys only ever move
//! between enclaves running this very code.

use crate::Error;
use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{EncryptionKey, Hash, PublicKey, Signature};
use proctor_tee::envelope::{self, RecipientKey};
use proctor_tee::{Platform, Quote, TrustPolicy, verify_quote};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// What the host may ask of the enclave's contract keys.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum KeyRequest {
    /// This enclave's attestation as a peer on `chain`.
    Attest { chain: Hash },
    /// Generate the root key of era 0 for `chain` (a gatekeeper at genesis).
    Bootstrap { chain: Hash },
    /// Reload a root key from the blob [`KeyResponse::Root`] returned.
    Restore { sealed: Vec<u8> },
    /// Hand the root key to the gatekeeper enclave `to`.
    HandOver { to: PeerAttestation },
    /// Take a root key handed over by another gatekeeper.
    Receive(Box<Handover>),
    /// The public command key of `contract`, signed (a gatekeeper).
    PublicKey { contract: u64 },
    /// Hand `contract`'s key to the executor enclave `to` (a gatekeeper).
    Grant { contract: u64, to: PeerAttestation },
    /// Take a contract key granted by a gatekeeper (an executor).
    Accept(Box<Handover>),
}

/// The enclave's answers about keys.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum KeyResponse {
    Attested(PeerAttestation),
    /// A root key is held: its commitment, and the sealed blob to keep.
    Root {
        chain: Hash,
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
    /// The key, HPKE-sealed to the recipient's encryption key.
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

/// A contract's public command key, signed by the gatekeeper that derived it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
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

/// The public commitment to root key `k` of `era` on `chain`.
pub fn root_commitment(chain: &Hash, era: u64, k: &[u8; 32]) -> Hash {
    Hash::tagged(
        "proctor/contracts/root-commitment",
        &[&chain.0, &era.to_le_bytes(), k],
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

/// The root key an enclave holds.
struct Root {
    chain: Hash,
    era: u64,
    key: Zeroizing<[u8; 32]>,
}

/// The keys an enclave holds: a root key (gatekeepers), contract keys
/// (executors). Never leave the enclave object but sealed.
#[derive(Default)]
pub(crate) struct Keys {
    root: Option<Root>,
    contracts: BTreeMap<u64, (u64, Zeroizing<[u8; 32]>)>,
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
fn trust(p: &dyn Platform) -> TrustPolicy {
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
        req: KeyRequest,
    ) -> Result<KeyResponse, Error> {
        match req {
            KeyRequest::Attest { chain } => Ok(KeyResponse::Attested(attest(p, &chain)?)),
            KeyRequest::Bootstrap { chain } => {
                if self.root.is_some() {
                    return Err(err("this enclave already holds a root key"));
                }
                let mut key = Zeroizing::new([0u8; 32]);
                p.random(key.as_mut());
                self.root = Some(Root { chain, era: 0, key });
                self.root_response(p)
            }
            KeyRequest::Restore { sealed } => {
                let plain = Zeroizing::new(p.unseal(&sealed)?);
                let (chain, era, key) = match plain.len() {
                    72 => (
                        Hash(plain[..32].try_into().unwrap()),
                        u64::from_le_bytes(plain[32..40].try_into().unwrap()),
                        Zeroizing::new(<[u8; 32]>::try_from(&plain[40..72]).unwrap()),
                    ),
                    _ => return Err(err("the sealed root key is malformed")),
                };
                self.root = Some(Root { chain, era, key });
                self.root_response(p)
            }
            KeyRequest::HandOver { to } => {
                let r = self.root()?;
                let (chain, era, key) = (r.chain, r.era, *r.key);
                let commitment = root_commitment(&chain, era, &key);
                Ok(KeyResponse::Handover(Box::new(handover(
                    p, chain, era, 0, commitment, &key, &to,
                )?)))
            }
            KeyRequest::Receive(h) => {
                if h.contract != 0 {
                    return Err(err("this handover is a contract key, not a root key"));
                }
                let key = receive(p, &h)?;
                if root_commitment(&h.chain, h.era, &key) != h.commitment {
                    return Err(err("the root key does not match its commitment"));
                }
                self.root = Some(Root {
                    chain: h.chain,
                    era: h.era,
                    key,
                });
                Ok(KeyResponse::Accepted {
                    era: h.era,
                    commitment: h.commitment,
                })
            }
            KeyRequest::PublicKey { contract } => {
                let r = self.root()?;
                let k_c = Zeroizing::new(contract_key(&r.key, &r.chain, r.era, contract));
                let mut pk = ContractPublicKey {
                    chain: r.chain,
                    era: r.era,
                    contract,
                    key: command_key(&k_c).public(),
                    gatekeeper: p.identity(),
                    signature: Signature([0; 64]),
                };
                pk.signature = p.sign(&pk.signing_bytes());
                Ok(KeyResponse::PublicKey(pk))
            }
            KeyRequest::Grant { contract, to } => {
                if contract == 0 {
                    return Err(err("contract ids start at 1"));
                }
                let r = self.root()?;
                let (chain, era) = (r.chain, r.era);
                let k_c = Zeroizing::new(contract_key(&r.key, &chain, era, contract));
                let commitment = key_commitment(contract, &k_c);
                Ok(KeyResponse::Handover(Box::new(handover(
                    p, chain, era, contract, commitment, &k_c, &to,
                )?)))
            }
            KeyRequest::Accept(h) => {
                if h.contract == 0 {
                    return Err(err("this handover is a root key, not a contract key"));
                }
                let key = receive(p, &h)?;
                if key_commitment(h.contract, &key) != h.commitment {
                    return Err(err("the contract key does not match its commitment"));
                }
                self.contracts.insert(h.contract, (h.era, key));
                Ok(KeyResponse::Accepted {
                    era: h.era,
                    commitment: h.commitment,
                })
            }
        }
    }

    fn root(&self) -> Result<&Root, Error> {
        self.root
            .as_ref()
            .ok_or_else(|| err("this enclave holds no root key (not a gatekeeper)"))
    }

    fn root_response(&self, p: &mut dyn Platform) -> Result<KeyResponse, Error> {
        let r = self.root()?;
        let plain = Zeroizing::new([r.chain.0.as_slice(), &r.era.to_le_bytes(), &*r.key].concat());
        Ok(KeyResponse::Root {
            chain: r.chain,
            era: r.era,
            commitment: root_commitment(&r.chain, r.era, &r.key),
            sealed: p.seal(&plain),
        })
    }
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
    key: &[u8; 32],
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
fn receive(p: &dyn Platform, h: &Handover) -> Result<Zeroizing<[u8; 32]>, Error> {
    if h.to != p.identity() {
        return Err(err("this handover is for another enclave"));
    }
    verify_peer(p, &h.from, &h.chain)?;
    h.from
        .identity
        .verify(&h.signing_bytes(), &h.signature)
        .map_err(|_| err("the handover's signature does not verify"))?;
    let plain = Zeroizing::new(
        p.open_envelope(&h.info(), &h.sealed)
            .map_err(|e| err(format!("the handover does not open: {e}")))?,
    );
    <[u8; 32]>::try_from(plain.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| err("the handed-over key is not 32 bytes"))
}
