//! Governance: the measurement allowlist, changed only by the genesis's
//! governance account, and the chain parameters it answers for.

use crate::TxError;
use crate::context::{Context, Overlay, State, key, lift};
use crate::module::Module;
use crate::types::Transaction;
use proctor_primitives::{Address, Hash, Height};

pub mod types;
pub use types::*;

/// The governance module.
pub(crate) struct Governance;

pub(crate) fn measurements_key() -> Hash {
    key(Governance::KEY_PREFIX, "measurements", &[])
}

impl Overlay<'_> {
    pub(crate) fn measurements(&self) -> Vec<MeasurementEntry> {
        match self.get(&measurements_key()) {
            Some(crate::Record::Governance(Record::Measurements(m))) => m,
            _ => vec![],
        }
    }
}

impl Module for Governance {
    const NAME: &'static str = "governance";
    const KEY_PREFIX: &'static str = "proctor/governance";
    const CODES: std::ops::RangeInclusive<i32> = 1200..=1249;
    type Call = Call;

    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        _tx: &Transaction,
        call: &Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        match call {
            Call::UpdateMeasurements { add, retire } => {
                if cx.params().governance != Some(from) {
                    return Err(Error::NotGovernance.into());
                }
                let mut list = cx.o.measurements();
                for m in add {
                    match list.iter_mut().find(|e| e.measurement == *m) {
                        Some(e) => e.retired_at = None,
                        None => list.push(MeasurementEntry {
                            measurement: *m,
                            retired_at: None,
                        }),
                    }
                }
                for m in retire {
                    if let Some(e) = list
                        .iter_mut()
                        .find(|e| e.measurement == *m && e.retired_at.is_none())
                    {
                        e.retired_at = Some(cx.env.height);
                    }
                }
                cx.o.put(measurements_key(), Record::Measurements(list));
                Ok(lift(vec![Event::MeasurementsUpdated {
                    added: add.clone(),
                    retired: retire.clone(),
                }]))
            }
        }
    }
}

impl State {
    /// The governed measurement allowlist.
    pub fn measurements(&self) -> Vec<MeasurementEntry> {
        self.read().measurements()
    }

    /// Whether an enclave with measurement `m` may work at `height`: listed
    /// and not retired, or retired less than the grace period ago.
    pub fn measurement_allowed(&self, m: &Hash, height: Height) -> bool {
        self.measurements().iter().any(|e| {
            e.measurement == *m
                && e.retired_at.is_none_or(|r| {
                    height <= r.saturating_add(self.params.measurement_grace_blocks)
                })
        })
    }
}

#[cfg(test)]
mod tests;
