use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use std::fmt;
use std::str::FromStr;

/// A key or signature that is malformed or does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("invalid public key: {0}")]
    BadPublicKey(String),
    #[error("invalid signature encoding: {0}")]
    BadSignature(String),
    #[error("signature does not verify")]
    VerifyFailed,
}

/// An ed25519 public key (32 bytes, compressed Edwards point).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// An X25519 public key: what users encrypt to when data is for an enclave.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct EncryptionKey(pub [u8; 32]);

impl FromStr for EncryptionKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| KeyError::BadPublicKey(format!("{s:?}: {e}")))?;
        Ok(EncryptionKey(out))
    }
}
impl fmt::Display for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}..)", &hex::encode(self.0)[..16])
    }
}
crate::codec::serde_via_str!(EncryptionKey);

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// An ed25519 signing key with its public key. Zeroized on drop; never serialized
/// except explicitly through [`Keypair::secret_bytes`].
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh key from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Keypair {
            signing: SigningKey::generate(rng),
        }
    }

    /// The key with this 32-byte secret seed.
    pub fn from_secret(seed: &[u8; 32]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The secret seed, for sealing or writing a key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.signing.sign(msg).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public())
    }
}

impl PublicKey {
    fn verifying(&self) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_bytes(&self.0).map_err(|e| KeyError::BadPublicKey(e.to_string()))
    }

    /// Checks `sig` over `msg` (strict verification: rejects small-order keys
    /// and non-canonical signatures, so validity is the same on every node).
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), KeyError> {
        let vk = self.verifying()?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        vk.verify_strict(msg, &sig)
            .map_err(|_| KeyError::VerifyFailed)
    }

    /// The account address of this key.
    pub fn address(&self) -> crate::Address {
        crate::Address::of(self)
    }
}

/// Verifies many `(key, message, signature)` triples at once; about 3x faster
/// than one by one. Fails if any one fails (callers then verify singly to
/// find which).
pub fn verify_batch(items: &[(PublicKey, &[u8], Signature)]) -> Result<(), KeyError> {
    let mut keys = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut msgs = Vec::with_capacity(items.len());
    for (pk, msg, sig) in items {
        keys.push(pk.verifying()?);
        sigs.push(ed25519_dalek::Signature::from_bytes(&sig.0));
        msgs.push(*msg);
    }
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).map_err(|_| KeyError::VerifyFailed)
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| KeyError::BadPublicKey(format!("{s:?}: {e}")))?;
        Ok(PublicKey(out))
    }
}

impl FromStr for Signature {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).map_err(|e| KeyError::BadSignature(format!("{e}")))?;
        Ok(Signature(out))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &hex::encode(self.0)[..16])
    }
}
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", &hex::encode(self.0)[..16])
    }
}
crate::codec::serde_via_str!(PublicKey);
crate::codec::serde_via_str!(Signature);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_tampering() {
        let kp = Keypair::from_secret(&[7; 32]);
        let sig = kp.sign(b"hello");
        assert!(kp.public().verify(b"hello", &sig).is_ok());
        assert_eq!(
            kp.public().verify(b"hellp", &sig),
            Err(KeyError::VerifyFailed)
        );
        let other = Keypair::from_secret(&[8; 32]);
        assert_eq!(
            other.public().verify(b"hello", &sig),
            Err(KeyError::VerifyFailed)
        );
    }

    #[test]
    fn batch_verification_catches_one_bad_signature() {
        let kps: Vec<Keypair> = (0..8u8).map(|i| Keypair::from_secret(&[i; 32])).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut items: Vec<(PublicKey, &[u8], Signature)> = kps
            .iter()
            .zip(&msgs)
            .map(|(k, m)| (k.public(), m.as_slice(), k.sign(m)))
            .collect();
        assert!(verify_batch(&items).is_ok());
        items[3].2 = kps[4].sign(&msgs[3]);
        assert!(verify_batch(&items).is_err());
    }
}
