//! The consensus codec: borsh, with strict decoding (no trailing bytes).

use borsh::{BorshDeserialize, BorshSerialize};

/// A byte string that does not decode as the expected type.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

/// Canonical bytes of `value`.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

/// Decode `bytes` as a `T`, rejecting trailing bytes; `what` names the type in errors.
pub fn decode<T: BorshDeserialize>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    borsh::from_slice(bytes).map_err(|e| DecodeError {
        what,
        reason: e.to_string(),
    })
}

/// Implements serde `Serialize`/`Deserialize` through `Display`/`FromStr`.
#[macro_export]
#[doc(hidden)]
macro_rules! serde_via_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub use serde_via_str;

/// Serde for `Vec<u8>` fields as lowercase hex strings.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}

/// Serde for `[u8; 32]` fields as lowercase hex strings.
pub mod hex_array32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let v = hex::decode(s.as_ref()).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))
    }
}

/// Serde for `Option<Vec<u8>>` fields as an optional lowercase hex string.
pub mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
