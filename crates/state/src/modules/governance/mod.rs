//! Governance: the measurement allowlist, changed only by the genesis's
//! governance account.

use crate::TxError;
use crate::machine::{Overlay, Record, State, measurements_key};
use crate::types::*;
use proctor_primitives::Address;

impl State {
    /// `UpdateMeasurements`.
    pub(crate) fn apply_governance_call(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        from: Address,
        call: &Call,
    ) -> Result<Vec<Event>, TxError> {
        let mut events = Vec::new();
        match call {
            Call::UpdateMeasurements { add, retire } => {
                if self.params.governance != Some(from) {
                    return Err(TxError::NotGovernance);
                }
                let mut list = o.measurements();
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
                        e.retired_at = Some(env.height);
                    }
                }
                o.put(measurements_key(), &Record::Measurements(list));
                events.push(Event::MeasurementsUpdated {
                    added: add.clone(),
                    retired: retire.clone(),
                });
            }
            _ => unreachable!("only governance calls come here"),
        }
        Ok(events)
    }
}
