//! How confidential job data travels.
//!
//! - **Key wrapping and outputs**: HPKE (RFC 9180) base mode with
//!   DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305. A sealed
//!   message is `enc (32 bytes) || ciphertext`; `info` names the purpose and
//!   the job (for a content key: the job's id, whole spec and clock), so a
//!   key wrapped for one job cannot be replayed into another or into an
//!   altered copy of it.
//!   The requester wraps the content key K to each assigned enclave's
//!   registered encryption key; the enclave seals the output to the
//!   requester's key.
//! - **Content**: inputs are encrypted under K with ChaCha20-Poly1305:
//!   `nonce (12 bytes) || ciphertext`.
//! - **Commitment**: `H(K || output)` lets replicas' outputs be compared on
//!   chain without revealing them (K is secret, so the output cannot be guessed
//!   from it).

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use proctor_primitives::{EncryptionKey, Hash};
use rand_core::{CryptoRng, RngCore};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Cipher = hpke::aead::ChaCha20Poly1305;

/// Length of the encapsulated key in front of an HPKE ciphertext.
pub const ENC_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Why a message could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("sealed message is too short")]
    Short,
    #[error("message does not open with this key (wrong key, wrong job, or tampered)")]
    Open,
    #[error("invalid public key")]
    Key,
}

/// `info` of a content key wrapped for the job whose binding (job id, hash
/// of its whole spec, submission time) is `binding`: the key opens only for
/// exactly that job, so a host that alters any field of it gets nothing.
pub fn key_info(binding: &Hash) -> Vec<u8> {
    [b"proctor/job-key/v2/".as_slice(), &binding.0].concat()
}

/// `info` of job `job`'s output.
pub fn output_info(job: u64) -> Vec<u8> {
    [b"proctor/job-output/".as_slice(), &job.to_le_bytes()].concat()
}

/// HPKE-seals `plaintext` to `recipient`.
pub fn seal_to<R: RngCore + CryptoRng>(
    recipient: &EncryptionKey,
    info: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, EnvelopeError> {
    let pk =
        <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.0).map_err(|_| EnvelopeError::Key)?;
    let (enc, ct) = hpke::single_shot_seal::<Cipher, Kdf, Kem, _>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        &[],
        rng,
    )
    .map_err(|_| EnvelopeError::Key)?;
    Ok([enc.to_bytes().as_slice(), &ct].concat())
}

/// Opens an HPKE message sealed to the public half of `secret`.
pub fn open_with(
    secret: &x25519_dalek::StaticSecret,
    info: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < ENC_LEN {
        return Err(EnvelopeError::Short);
    }
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&secret.to_bytes())
        .map_err(|_| EnvelopeError::Key)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[..ENC_LEN])
        .map_err(|_| EnvelopeError::Open)?;
    hpke::single_shot_open::<Cipher, Kdf, Kem>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        &sealed[ENC_LEN..],
        &[],
    )
    .map_err(|_| EnvelopeError::Open)
}

/// A requester's output key pair, derived from 32 secret bytes (the CLI
/// derives them from the account key file, so one file opens both).
pub struct RecipientKey(x25519_dalek::StaticSecret);

impl RecipientKey {
    pub fn from_seed(seed: &[u8; 32]) -> RecipientKey {
        let h = Hash::tagged("proctor/output-key", &[seed]);
        RecipientKey(x25519_dalek::StaticSecret::from(h.0))
    }
    pub fn public(&self) -> EncryptionKey {
        EncryptionKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }
    pub fn open(&self, info: &[u8], sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        open_with(&self.0, info, sealed)
    }
}

/// Encrypts content under key `k`.
pub fn encrypt<R: RngCore + CryptoRng>(k: &[u8; 32], plaintext: &[u8], rng: &mut R) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ct = ChaCha20Poly1305::new(k.into())
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("in-memory encryption cannot fail");
    [nonce.as_slice(), &ct].concat()
}

/// Decrypts content encrypted by [`encrypt`].
pub fn decrypt(k: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    if data.len() < NONCE_LEN {
        return Err(EnvelopeError::Short);
    }
    ChaCha20Poly1305::new(k.into())
        .decrypt(Nonce::from_slice(&data[..NONCE_LEN]), &data[NONCE_LEN..])
        .map_err(|_| EnvelopeError::Open)
}

/// The output commitment `H(K || output)`.
pub fn commitment(k: &[u8; 32], output: &[u8]) -> Hash {
    Hash::tagged("proctor/job-commitment", &[k, output])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn sealed_messages_open_only_with_the_key_and_the_info() {
        let alice = RecipientKey::from_seed(&[1; 32]);
        let eve = RecipientKey::from_seed(&[2; 32]);
        let sealed = seal_to(
            &alice.public(),
            &key_info(&Hash([7; 32])),
            b"content key",
            &mut OsRng,
        )
        .unwrap();
        assert_eq!(
            alice.open(&key_info(&Hash([7; 32])), &sealed).unwrap(),
            b"content key"
        );
        assert_eq!(
            eve.open(&key_info(&Hash([7; 32])), &sealed),
            Err(EnvelopeError::Open)
        );
        assert_eq!(
            alice.open(&key_info(&Hash([8; 32])), &sealed),
            Err(EnvelopeError::Open),
            "another job"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            alice.open(&key_info(&Hash([7; 32])), &tampered),
            Err(EnvelopeError::Open)
        );
        assert_eq!(
            alice.open(&key_info(&Hash([7; 32])), &sealed[..10]),
            Err(EnvelopeError::Short)
        );
        // Randomized: the same message seals differently every time.
        let again = seal_to(
            &alice.public(),
            &key_info(&Hash([7; 32])),
            b"content key",
            &mut OsRng,
        )
        .unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn content_round_trips_and_hides_the_plaintext() {
        let k = [5u8; 32];
        let secret = b"MARKER-plaintext-MARKER";
        let ct = encrypt(&k, secret, &mut OsRng);
        assert!(!ct.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(decrypt(&k, &ct).unwrap(), secret);
        assert_eq!(decrypt(&[6; 32], &ct), Err(EnvelopeError::Open));
        assert_eq!(commitment(&k, b"x"), commitment(&k, b"x"));
        assert_ne!(commitment(&k, b"x"), commitment(&[6; 32], b"x"));
    }
}
