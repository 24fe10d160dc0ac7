use crate::{Hash, PublicKey};
use bech32::{Bech32m, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::str::FromStr;

/// The human-readable prefix of addresses.
pub const ADDRESS_HRP: &str = "prc";

/// An account address: the first 20 bytes of a tagged BLAKE3 hash of the
/// account's ed25519 public key. Displayed as bech32m, e.g. `prc1...`, whose
/// checksum catches typos before money is sent to a wrong address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 20]);

/// A string that is not a valid proctor address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("invalid address {input:?}: {reason}")]
    Invalid { input: String, reason: String },
}

impl Address {
    /// The address owned by `key`.
    pub fn of(key: &PublicKey) -> Address {
        let h = Hash::tagged("proctor/address", &[&key.0]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&h.0[..20]);
        Address(out)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_HRP);
        let s = bech32::encode::<Bech32m>(hrp, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| AddressError::Invalid {
            input: s.to_string(),
            reason,
        };
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(s)
            .map_err(|e| bad(format!("not a bech32m string ({e})")))?;
        if checked.hrp().as_str() != ADDRESS_HRP {
            return Err(bad(format!(
                "prefix is {:?}, expected {ADDRESS_HRP:?}",
                checked.hrp().as_str()
            )));
        }
        let data: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 20] = data
            .try_into()
            .map_err(|d: Vec<u8>| bad(format!("{} bytes, expected 20", d.len())))?;
        Ok(Address(bytes))
    }
}
crate::codec::serde_via_str!(Address);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    #[test]
    fn roundtrip_and_checksum() {
        let a = Keypair::from_secret(&[1; 32]).public().address();
        let s = a.to_string();
        assert!(s.starts_with("prc1"), "{s}");
        assert_eq!(s.parse::<Address>().unwrap(), a);
        // Flip one character: the checksum must catch it.
        let mut chars: Vec<char> = s.chars().collect();
        let i = chars.len() - 3;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(typo.parse::<Address>().is_err());
        assert!("abc1qqqq".parse::<Address>().is_err());
    }

    #[test]
    fn wrong_prefix_rejected() {
        let a = Address([9; 20]);
        let other = bech32::encode::<Bech32m>(Hrp::parse("xyz").unwrap(), &a.0).unwrap();
        let err = other.parse::<Address>().unwrap_err().to_string();
        assert!(err.contains("prefix"), "{err}");
    }
}
