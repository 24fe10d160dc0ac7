//! What every backend does the same way once it has a sealing key: encrypt
//! with XChaCha20-Poly1305 under a key only this enclave on this machine can
//! derive, and keep the identity key on disk only in sealed form.

use crate::{Error, Platform, Quote, Result, TeeKind};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use proctor_primitives::{EncryptionKey, Hash, Keypair, PublicKey, Signature};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use std::path::Path;
use zeroize::Zeroizing;

/// Name of the sealed identity file in a platform's state directory.
pub(crate) const SEALED_IDENTITY: &str = "identity.sealed";

pub(crate) fn seal(key: &[u8; 32], rng: &mut ChaCha20Rng, plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), plaintext)
        .expect("in-memory encryption cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

pub(crate) fn unseal(key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 24 {
        return Err(Error::Unseal);
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(&sealed[..24]), &sealed[24..])
        .map_err(|_| Error::Unseal)
}

/// Loads the identity sealed in `dir`, or creates one from `rng` and seals it there.
pub(crate) fn load_or_create_identity(
    dir: &Path,
    key: &[u8; 32],
    rng: &mut ChaCha20Rng,
) -> Result<Keypair> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(SEALED_IDENTITY);
    if path.exists() {
        let sealed = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let seed = Zeroizing::new(unseal(key, &sealed)?);
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| Error::Unseal)?;
        return Ok(Keypair::from_secret(&seed));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    let sealed = seal(key, rng, seed.as_ref());
    std::fs::write(&path, sealed).map_err(|e| io(&path, e))?;
    Ok(Keypair::from_secret(&seed))
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The enclave's X25519 secret, derived from its identity seed (so it is
/// sealed with it and needs no file of its own).
pub(crate) fn encryption_secret(identity: &Keypair) -> x25519_dalek::StaticSecret {
    let seed = Zeroizing::new(identity.secret_bytes());
    x25519_dalek::StaticSecret::from(
        proctor_primitives::Hash::tagged("proctor/x25519", &[seed.as_ref()]).0,
    )
}

/// The public half of [`encryption_secret`].
pub(crate) fn encryption_public(
    secret: &x25519_dalek::StaticSecret,
) -> proctor_primitives::EncryptionKey {
    proctor_primitives::EncryptionKey(x25519_dalek::PublicKey::from(secret).to_bytes())
}

/// An enclave's secrets, which every backend handles the same way: the
/// identity key, the encryption key derived from it, the sealing key and the RNG.
pub struct Keys {
    identity: Keypair,
    encryption: x25519_dalek::StaticSecret,
    seal_key: Zeroizing<[u8; 32]>,
    rng: ChaCha20Rng,
}

impl Keys {
    pub(crate) fn new(identity: Keypair, seal_key: Zeroizing<[u8; 32]>, rng: ChaCha20Rng) -> Keys {
        let encryption = encryption_secret(&identity);
        Keys {
            identity,
            encryption,
            seal_key,
            rng,
        }
    }
}

/// What a TEE backend provides itself; [`Platform`] follows from it, with the
/// secrets handled by [`Keys`].
pub trait Backend: Send {
    /// Which TEE this is.
    fn tee_kind(&self) -> TeeKind;
    /// The measurement of the running enclave, as the hardware reports it.
    fn measured(&self) -> Hash;
    /// The hardware's quote over `report_data`.
    fn hardware_quote(&self, report_data: &[u8; 64]) -> Result<Quote>;
    fn keys(&self) -> &Keys;
    fn keys_mut(&mut self) -> &mut Keys;
}

impl<B: Backend> Platform for B {
    fn kind(&self) -> TeeKind {
        self.tee_kind()
    }
    fn measurement(&self) -> Hash {
        self.measured()
    }
    fn identity(&self) -> PublicKey {
        self.keys().identity.public()
    }
    fn encryption_key(&self) -> EncryptionKey {
        encryption_public(&self.keys().encryption)
    }
    fn sign(&self, msg: &[u8]) -> Signature {
        self.keys().identity.sign(msg)
    }
    fn quote(&self, report_data: &[u8; 64]) -> Result<Quote> {
        self.hardware_quote(report_data)
    }
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let k = self.keys_mut();
        seal(&k.seal_key, &mut k.rng, plaintext)
    }
    fn unseal(&self, data: &[u8]) -> Result<Vec<u8>> {
        unseal(&self.keys().seal_key, data)
    }
    fn open_envelope(
        &self,
        info: &[u8],
        sealed: &[u8],
    ) -> std::result::Result<Vec<u8>, crate::envelope::EnvelopeError> {
        crate::envelope::open_with(&self.keys().encryption, info, sealed)
    }
    fn random(&mut self, out: &mut [u8]) {
        self.keys_mut().rng.fill_bytes(out);
    }
}
