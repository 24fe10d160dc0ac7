//! ed25519 keys and the one signature rule of the chain.
//!
//! Every signature proctor checks (transactions, attestations, quotes of the
//! simulated TEE) is checked by the rule of ZIP-215, as the `ed25519-consensus`
//! crate implements it: keys and R may be any point encoding (small order and
//! non-canonical ones included), S must be below the group order, and the
//! cofactored equation `[8][S]B = [8]R + [8][k]A` must hold. Batch
//! verification checks exactly the same equation, so a block's validity never
//! depends on whether a node verified a signature alone or in a batch (which
//! differed before: strict single checks beside a cofactored batch).

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_consensus::{SigningKey, VerificationKey, VerificationKeyBytes};
use rand_core::{CryptoRng, RngCore, SeedableRng};
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

impl Drop for Keypair {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.signing);
    }
}

impl Keypair {
    /// A fresh key from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Keypair {
            signing: SigningKey::new(rng),
        }
    }

    /// The key with this 32-byte secret seed.
    pub fn from_secret(seed: &[u8; 32]) -> Self {
        Keypair {
            signing: SigningKey::from(*seed),
        }
    }

    /// The secret seed, for sealing or writing a key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key (what accounts and enclave identities are named by).
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verification_key().to_bytes())
    }

    /// Signs `msg` (deterministic RFC 8032 signing).
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
    /// Checks `sig` over `msg` by the chain's one rule (ZIP-215; see the
    /// module doc): the same verdict as [`verify_batch`] gives for any batch.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), KeyError> {
        let vk =
            VerificationKey::try_from(self.0).map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        vk.verify(&ed25519_consensus::Signature::from(sig.0), msg)
            .map_err(|_| KeyError::VerifyFailed)
    }

    /// The account address of this key.
    pub fn address(&self) -> crate::Address {
        crate::Address::of(self)
    }
}

/// Verifies many `(key, message, signature)` triples at once; about twice as
/// fast per signature as one by one. Ok exactly when [`PublicKey::verify`]
/// accepts every triple (ZIP-215 makes the two agree); on failure callers
/// verify singly to find which one failed.
///
/// The batch's random coefficients are drawn from a ChaCha stream seeded by
/// a hash of the whole batch, so the verdict is a function of the input alone
/// (no OS randomness in consensus) while a forger still cannot predict the
/// coefficients without fixing every signature first.
pub fn verify_batch(items: &[(PublicKey, &[u8], Signature)]) -> Result<(), KeyError> {
    let mut seed = blake3::Hasher::new_derive_key("proctor/ed25519/batch-coefficients");
    let mut batch = ed25519_consensus::batch::Verifier::new();
    for (pk, msg, sig) in items {
        seed.update(&pk.0);
        seed.update(&sig.0);
        seed.update(&(msg.len() as u64).to_le_bytes());
        seed.update(msg);
        batch.queue((
            VerificationKeyBytes::from(pk.0),
            ed25519_consensus::Signature::from(sig.0),
            *msg,
        ));
    }
    let rng = rand_chacha::ChaCha20Rng::from_seed(*seed.finalize().as_bytes());
    batch.verify(rng).map_err(|_| KeyError::VerifyFailed)
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

    /// The 12 edge-case vectors of "Taming the Many EdDSAs" (Chalkias,
    /// Garillot, Nikolaenko 2020; ed25519-speccheck's `cases.txt`): small-order
    /// keys and R, mixed-order points, S >= L, non-canonical R and A.
    /// `(message, public key, signature, valid under ZIP-215)`; the verdicts
    /// are the paper's table for ZIP-215 (its "Zebra" row), not ours.
    const SPECCHECK: [(&str, &str, &str, bool); 12] = [
        (
            "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
            true,
        ),
        (
            "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
            true,
        ),
        (
            "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
            true,
        ),
        (
            "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
            true,
        ),
        (
            "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
            true,
        ),
        (
            "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
            true,
        ),
        (
            "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
            "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
            "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
            false,
        ),
        (
            "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
            "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
            "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
            false,
        ),
        (
            "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
            false,
        ),
        (
            "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
            true,
        ),
        (
            "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
            true,
        ),
        (
            "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
            true,
        ),
    ];

    fn speccheck() -> Vec<(PublicKey, Vec<u8>, Signature, bool)> {
        SPECCHECK
            .iter()
            .map(|(m, k, s, ok)| {
                (
                    k.parse().unwrap(),
                    hex::decode(m).unwrap(),
                    s.parse().unwrap(),
                    *ok,
                )
            })
            .collect()
    }

    #[test]
    fn single_verification_follows_zip215_on_every_edge_case() {
        for (i, (pk, msg, sig, ok)) in speccheck().iter().enumerate() {
            assert_eq!(pk.verify(msg, sig).is_ok(), *ok, "vector {i}");
        }
    }

    /// The consensus split of a strict single check beside a cofactored batch:
    /// every batch of the edge cases (each of the 4096 subsets, with an
    /// honest signature beside them or not) must pass exactly when every
    /// member passes alone.
    #[test]
    fn batches_agree_with_single_verification_in_every_composition() {
        let cases = speccheck();
        let honest = Keypair::from_secret(&[9; 32]);
        let honest_sig = honest.sign(b"honest");
        for subset in 0u32..(1 << cases.len()) {
            let members: Vec<_> = (0..cases.len())
                .filter(|i| subset & (1 << i) != 0)
                .collect();
            let singly = members
                .iter()
                .all(|&i| cases[i].0.verify(&cases[i].1, &cases[i].2).is_ok());
            let mut items: Vec<(PublicKey, &[u8], Signature)> = members
                .iter()
                .map(|&i| (cases[i].0, cases[i].1.as_slice(), cases[i].2))
                .collect();
            assert_eq!(verify_batch(&items).is_ok(), singly, "subset {subset:#x}");
            items.insert(items.len() / 2, (honest.public(), b"honest", honest_sig));
            assert_eq!(
                verify_batch(&items).is_ok(),
                singly,
                "subset {subset:#x} with an honest one"
            );
        }
    }

    #[test]
    fn batch_verdict_is_deterministic() {
        let cases = speccheck();
        let items: Vec<(PublicKey, &[u8], Signature)> =
            cases.iter().map(|c| (c.0, c.1.as_slice(), c.2)).collect();
        let first = verify_batch(&items).is_ok();
        for _ in 0..3 {
            assert_eq!(verify_batch(&items).is_ok(), first);
        }
    }
}
