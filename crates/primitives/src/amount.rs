use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

/// A token amount in base units. Arithmetic is checked: overflow is an error,
/// never a wrap.
///
/// In JSON an amount is a number when it fits in 64 bits (every practical
/// balance) and a decimal string beyond that, since many JSON stacks cannot
/// hold 128-bit numbers; both forms are accepted on input.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Amount(pub u128);

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(self.0) {
            Ok(v) => s.serialize_u64(v),
            Err(_) => s.collect_str(&self.0),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer amount (number or decimal string)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(v as u128))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Amount, E> {
                Ok(Amount(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                u128::try_from(v)
                    .map(Amount)
                    .map_err(|_| E::custom("amount must not be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse::<u128>()
                    .map(Amount)
                    .map_err(|_| E::custom(format!("invalid amount {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn checked_add(self, o: Amount) -> Option<Amount> {
        self.0.checked_add(o.0).map(Amount)
    }
    pub fn checked_sub(self, o: Amount) -> Option<Amount> {
        self.0.checked_sub(o.0).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        assert_eq!(serde_json::to_string(&Amount(5)).unwrap(), "5");
        let big = Amount(u64::MAX as u128 + 1);
        assert_eq!(
            serde_json::to_string(&big).unwrap(),
            "\"18446744073709551616\""
        );
        for text in ["5", "\"5\""] {
            assert_eq!(serde_json::from_str::<Amount>(text).unwrap(), Amount(5));
        }
        assert_eq!(
            serde_json::from_str::<Amount>("\"18446744073709551616\"").unwrap(),
            big
        );
        let v: serde_json::Value = serde_json::to_value(big).unwrap();
        assert_eq!(serde_json::from_value::<Amount>(v).unwrap(), big);
        assert!(serde_json::from_str::<Amount>("-1").is_err());
        assert!(serde_json::from_str::<Amount>("\"abc\"").is_err());
    }
}
