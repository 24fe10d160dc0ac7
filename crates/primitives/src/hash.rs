use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::str::FromStr;

/// A 32-byte BLAKE3 digest.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

/// A string that is not 64 hex characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid hash {0:?}: expected 64 hex characters")]
pub struct HashError(pub String);

impl Hash {
    /// The all-zero hash, used as "nothing" (the parent of genesis, an empty tree).
    pub const ZERO: Hash = Hash([0; 32]);

    /// Plain BLAKE3 of `data` (content addressing: modules, blobs).
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// BLAKE3 of `data` under a domain tag, so that hashes of different kinds
    /// of objects (headers, transactions, tree nodes) never collide.
    pub fn tagged(tag: &str, parts: &[&[u8]]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&(tag.len() as u32).to_le_bytes());
        h.update(tag.as_bytes());
        for p in parts {
            h.update(p);
        }
        Hash(*h.finalize().as_bytes())
    }

    /// Tagged hash of the borsh encoding of `value`.
    pub fn of_encoded<T: BorshSerialize>(tag: &str, value: &T) -> Hash {
        Hash::tagged(tag, &[&crate::codec::encode(value)])
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Bit `i` (0 = most significant bit of byte 0), used to walk binary tries.
    pub fn bit(&self, i: usize) -> bool {
        (self.0[i / 8] >> (7 - (i % 8))) & 1 == 1
    }
}

impl FromStr for Hash {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s2 = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s2, &mut out).map_err(|_| HashError(s.to_string()))?;
        Ok(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}

crate::codec::serde_via_str!(Hash);
