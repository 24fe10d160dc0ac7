//! Quotes and their verification.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// The kind of TEE that produced a quote.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TeeKind {
    /// The simulated TEE (insecure; devnets only).
    Sim,
}

/// An attestation quote: the platform's signed statement that an enclave with
/// `measurement` produced `report_data`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Quote {
    Sim(SimQuote),
}

/// A quote of the simulated TEE, signed by the simulated attestation root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SimQuote {
    pub measurement: Hash,
    pub report_data: [u8; 64],
    /// The root that signed (verifiers compare it with the one they trust).
    pub root: PublicKey,
    pub signature: Signature,
}

impl SimQuote {
    /// The bytes the simulated root signs.
    pub fn signed_bytes(measurement: &Hash, report_data: &[u8; 64]) -> Vec<u8> {
        let mut m = b"proctor/sim-quote/v1".to_vec();
        m.extend_from_slice(&measurement.0);
        m.extend_from_slice(report_data);
        m
    }
}

/// What a verified quote proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub kind: TeeKind,
    pub measurement: Hash,
    pub report_data: [u8; 64],
}

/// Why a quote was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuoteError {
    #[error("simulated TEE quotes are not accepted by this chain")]
    SimNotAllowed,
    #[error("quote is signed by attestation root {found}, but the chain trusts {trusted}")]
    UntrustedRoot {
        found: PublicKey,
        trusted: PublicKey,
    },
    #[error("quote signature does not verify")]
    BadSignature,
}

/// The roots of trust a verifier accepts.
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    /// The simulated attestation root, if sim quotes are accepted at all.
    pub sim_root: Option<PublicKey>,
}

/// Verifies `quote` under `policy` and returns its claims.
pub fn verify_quote(quote: &Quote, policy: &TrustPolicy) -> Result<Claims, QuoteError> {
    match quote {
        Quote::Sim(q) => {
            let trusted = policy.sim_root.ok_or(QuoteError::SimNotAllowed)?;
            if q.root != trusted {
                return Err(QuoteError::UntrustedRoot {
                    found: q.root,
                    trusted,
                });
            }
            trusted
                .verify(
                    &SimQuote::signed_bytes(&q.measurement, &q.report_data),
                    &q.signature,
                )
                .map_err(|_| QuoteError::BadSignature)?;
            Ok(Claims {
                kind: TeeKind::Sim,
                measurement: q.measurement,
                report_data: q.report_data,
            })
        }
    }
}

impl std::fmt::Display for Quote {
    /// Hex of the borsh encoding (how quotes appear in JSON files).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(proctor_primitives::codec::encode(self)))
    }
}

impl std::str::FromStr for Quote {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|e| format!("quote is not hex: {e}"))?;
        proctor_primitives::codec::decode("quote", &bytes).map_err(|e| e.to_string())
    }
}
proctor_primitives::codec::serde_via_str!(Quote);
