//! The governance module's allowlist entry, call, events, record and errors.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Hash, Height};
use serde::{Deserialize, Serialize};

/// An entry of the governed measurement allowlist.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct MeasurementEntry {
    pub measurement: Hash,
    /// When governance retired it; enclaves already registered with it keep
    /// working for `measurement_grace_blocks` after this height.
    pub retired_at: Option<Height>,
}

/// The governance module's calls.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// Change the measurement allowlist.
    UpdateMeasurements { add: Vec<Hash>, retire: Vec<Hash> },
}

/// The governance module's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    MeasurementsUpdated {
        added: Vec<Hash>,
        retired: Vec<Hash>,
    },
}

/// The governance module's records.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Measurements(Vec<MeasurementEntry>),
}

/// The governance module's errors: codes 1200-1249.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("only the governance account may change the measurement allowlist")]
    NotGovernance,
}

impl Error {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            Error::NotGovernance => 1200,
        }
    }
}
