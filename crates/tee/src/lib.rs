//! Trusted execution environments: the [`Platform`] an enclave runs on, the
//! quotes it produces, and how a chain verifies them.
//!
//! A platform owns three secrets the host must never see: the enclave's
//! identity key (ed25519, signs every attestation), its sealing key (encrypts
//! state the host stores for it) and its RNG state (the PoUW lottery). The
//! trait therefore has no method that returns a secret: callers ask the
//! platform to sign, seal, unseal and draw randomness.
//!
//! A [`Quote`] binds 64 bytes of report data to the enclave's measurement and
//! is signed by an attestation root. Verification ([`verify_quote`]) checks the
//! signature against a root the chain trusts and returns the claims.
//!
//! Backends:
//! - [`sim`]: the simulated TEE used for development and tests. **Insecure**:
//!   the "hardware" secrets are files on the host. It keeps the trust structure
//!   of real hardware (sealed keys, measurement, report data, a separate
//!   attestation root that a genesis must explicitly trust) so every code path
//!   above it is the one real hardware uses.
//! - [`gramine`]: SGX under Gramine (`/dev/attestation` pseudo-files).
//! - [`tsm`]: TDX through Linux's configfs-tsm report interface.
//!
//! Verification ([`verify_quote`]) handles sim quotes and Intel DCAP quotes
//! (SGX and TDX, through `dcap-qvl`) behind one function, at a caller-given
//! time (the block's timestamp on chain).
#![forbid(unsafe_code)]

pub mod envelope;
pub mod gramine;
pub mod quote;
mod sealed;

pub use sealed::{Backend, Keys};
pub mod backend;
pub mod sim;
pub mod tsm;

pub use quote::{
    AttestationVerifier, Claims, DcapPolicy, DcapQuote, INTEL_SGX_ROOT_CA_DER, Quote, QuoteError,
    TeeKind, TrustPolicy, verify_quote,
};

use proctor_primitives::{Address, EncryptionKey, Hash, PublicKey, Signature};

/// Errors from a platform backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sealed data could not be opened (tampered, or sealed by another enclave or machine)")]
    Unseal,
    #[error("platform I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("platform configuration: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What an enclave needs from the trusted hardware beneath it.
pub trait Platform: Send {
    /// Which kind of TEE this is.
    fn kind(&self) -> TeeKind;
    /// The measurement (code identity) of the running enclave.
    fn measurement(&self) -> Hash;
    /// The enclave's identity public key; the secret half never leaves the platform.
    fn identity(&self) -> PublicKey;
    /// The enclave's X25519 public key, for data encrypted to it; the secret
    /// half (derived from the sealed identity seed) never leaves the platform.
    fn encryption_key(&self) -> EncryptionKey;
    /// Signs `msg` with the identity key.
    fn sign(&self, msg: &[u8]) -> Signature;
    /// A quote over `report_data`, verifiable against the platform's attestation root.
    fn quote(&self, report_data: &[u8; 64]) -> Result<Quote>;
    /// Encrypts `plaintext` so only this enclave (same measurement, same machine) can open it.
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8>;
    /// Opens data sealed by [`Platform::seal`].
    fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>>;
    /// Opens an HPKE message sealed to [`Platform::encryption_key`] (see
    /// [`envelope`]); the secret stays inside.
    fn open_envelope(
        &self,
        info: &[u8],
        sealed: &[u8],
    ) -> std::result::Result<Vec<u8>, envelope::EnvelopeError>;
    /// Fills `out` from the enclave's cryptographic RNG.
    fn random(&mut self, out: &mut [u8]);
    /// A uniformly random u128 from the enclave RNG (the PoUW lottery draw).
    fn random_u128(&mut self) -> u128 {
        let mut b = [0u8; 16];
        self.random(&mut b);
        u128::from_le_bytes(b)
    }
}

/// Report data binding a registration to its keys, its operator, its chain
/// and its expiry: the first 64 bytes of BLAKE3-XOF("proctor/registration/v3"
/// || identity || encryption key || operator address || genesis hash ||
/// expiry height), so a quote cannot be replayed for another key, another
/// chain, past the registration it was made for, or by another operator (who
/// would otherwise be paid for, and able to deregister, someone else's enclave).
pub fn registration_report_data(
    identity: &PublicKey,
    encryption_key: &EncryptionKey,
    operator: &Address,
    genesis: &Hash,
    expires_at: u64,
) -> [u8; 64] {
    let mut h = blake3::Hasher::new();
    h.update(b"proctor/registration/v3");
    h.update(&identity.0);
    h.update(&encryption_key.0);
    h.update(&operator.0);
    h.update(&genesis.0);
    h.update(&expires_at.to_le_bytes());
    let mut out = [0u8; 64];
    h.finalize_xof().fill(&mut out);
    out
}
