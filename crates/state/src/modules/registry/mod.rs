//! The enclave registry: registrations (quote, allowlist, binding, stake),
//! deregistration and unbonding, stake withdrawal.

use crate::TxError;
use crate::context::{Context, Overlay, State, key, lift};
use crate::module::Module;
use crate::types::Transaction;
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Height, PublicKey, Timestamp};
use proctor_tee::{AttestationVerifier, TrustPolicy, registration_report_data};

pub mod types;
pub use types::*;

/// The registry module.
pub(crate) struct Registry;

/// State tree key of an enclave registration.
pub fn enclave_key(id: &PublicKey) -> Hash {
    key(Registry::KEY_PREFIX, "enclave", &[&id.0])
}
fn retired_key(id: &PublicKey) -> Hash {
    key(Registry::KEY_PREFIX, "retired", &[&id.0])
}

impl Overlay<'_> {
    pub(crate) fn enclave(&self, id: &PublicKey) -> Option<EnclaveRecord> {
        match self.get(&enclave_key(id)) {
            Some(crate::Record::Registry(Record::Enclave(e))) => Some(e),
            _ => None,
        }
    }
}

impl Module for Registry {
    const NAME: &'static str = "registry";
    const KEY_PREFIX: &'static str = "proctor/registry";
    const CODES: std::ops::RangeInclusive<i32> = 1100..=1129;
    type Call = Call;

    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        tx: &Transaction,
        call: &Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        let (state, env, guards) = (cx.state, cx.env, cx.stake_guards);
        state
            .apply_registry_call(&mut cx.o, env, guards, from, tx, call)
            .map(lift)
    }
}

impl State {
    /// Registration, deregistration and withdrawal calls.
    fn apply_registry_call(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        stake_guards: &[crate::context::StakeGuard],
        from: Address,
        tx: &Transaction,
        call: &Call,
    ) -> Result<Vec<Event>, TxError> {
        let mut events = Vec::new();
        match call {
            Call::RegisterEnclave {
                identity,
                encryption_key,
                expires_at,
                quote,
                stake,
            } => {
                let keys = (identity, encryption_key, *expires_at);
                events.push(self.register_enclave(
                    o,
                    from,
                    keys,
                    (quote, Some(tx.hash())),
                    *stake,
                    env.height,
                    env.timestamp,
                )?);
            }
            Call::DeregisterEnclave { identity } => {
                let mut rec = o
                    .enclave(identity)
                    .ok_or(Error::EnclaveNotFound(*identity))?;
                if rec.operator != from {
                    return Err(Error::NotOperator.into());
                }
                if rec.unbonding_until.is_some() {
                    return Err(Error::AlreadyUnbonding.into());
                }
                let until = env.height + self.params.unbonding_blocks;
                rec.unbonding_until = Some(until);
                o.put(enclave_key(identity), Record::Enclave(rec));
                events.push(Event::EnclaveDeregistered {
                    identity: *identity,
                    unbonding_until: until,
                });
            }
            Call::WithdrawStake { identity } => {
                let rec = o
                    .enclave(identity)
                    .ok_or(Error::EnclaveNotFound(*identity))?;
                if rec.operator != from {
                    return Err(Error::NotOperator.into());
                }
                match rec.unbonding_until {
                    None => return Err(Error::NotDeregistered.into()),
                    Some(until) if env.height <= until => {
                        return Err(Error::StillUnbonding { until }.into());
                    }
                    Some(_) => {}
                }
                // Modules that still answer for the enclave (the market:
                // settlement pays its operator, a late or wrong result
                // slashes its stake) keep its record alive.
                for guard in stake_guards {
                    guard(o, identity)?;
                }
                let mut acc = o.account(&from);
                acc.balance = acc
                    .balance
                    .checked_add(rec.stake)
                    .ok_or(TxError::Overflow)?;
                o.set_account(&from, acc);
                o.delete(enclave_key(identity));
                o.put(
                    retired_key(identity),
                    Record::Retired(EnclaveRecord {
                        stake: Amount::ZERO,
                        ..rec.clone()
                    }),
                );
                events.push(Event::StakeWithdrawn {
                    identity: *identity,
                    operator: from,
                    amount: rec.stake,
                });
            }
        }
        Ok(events)
    }
}

impl State {
    /// The registration of enclave `id`, if any.
    pub fn enclave(&self, id: &PublicKey) -> Option<EnclaveRecord> {
        self.read().enclave(id)
    }

    /// The last registration of enclave `id` if its stake was withdrawn
    /// (stake 0): its quote can still be checked.
    pub fn retired_enclave(&self, id: &PublicKey) -> Option<EnclaveRecord> {
        match self.read().get(&retired_key(id)) {
            Some(crate::Record::Registry(Record::Retired(e))) => Some(e),
            _ => None,
        }
    }

    /// Verifies a registration (quote, allowlist, binding, stake) and records
    /// it; on an existing registration by the same operator, renews it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register_enclave(
        &self,
        o: &mut Overlay<'_>,
        operator: Address,
        (identity, encryption_key, expires_at): (&PublicKey, &EncryptionKey, Height),
        (quote, registration_tx): (&proctor_tee::Quote, Option<Hash>),
        stake: Amount,
        height: Height,
        now_ms: Timestamp,
    ) -> Result<Event, TxError> {
        let max = height + self.params.registration_blocks;
        if expires_at <= height || expires_at > max {
            return Err(Error::BadExpiry {
                expires_at,
                height,
                max,
            }
            .into());
        }
        let policy = TrustPolicy {
            sim_root: if self.params.allow_sim_quotes {
                self.params.sim_attestation_root
            } else {
                None
            },
            dcap: self.params.dcap.clone(),
        };
        // Verified at the block's time, never the wall clock.
        let claims = policy
            .verify(quote, now_ms / 1000)
            .map_err(Error::QuoteRejected)?;
        // New registrations need a measurement that is listed and not retired.
        if !o
            .measurements()
            .iter()
            .any(|e| e.measurement == claims.measurement && e.retired_at.is_none())
        {
            return Err(Error::MeasurementNotAllowed(claims.measurement).into());
        }
        if claims.report_data
            != registration_report_data(
                identity,
                encryption_key,
                &operator,
                &self.genesis_hash,
                expires_at,
            )
        {
            return Err(Error::ReportDataMismatch.into());
        }
        let existing = o.enclave(identity);
        if let Some(e) = &existing {
            if e.operator != operator {
                return Err(Error::EnclaveOwnedByOther.into());
            }
            if e.unbonding_until.is_some() {
                return Err(Error::AlreadyUnbonding.into());
            }
        }
        let total = existing
            .as_ref()
            .map_or(Amount::ZERO, |e| e.stake)
            .checked_add(stake)
            .ok_or(TxError::Overflow)?;
        // Genesis enclaves (height 0) bootstrap the chain without a stake.
        if height > 0 && total < self.params.min_stake {
            return Err(Error::InsufficientStake {
                min: self.params.min_stake,
                got: total,
            }
            .into());
        }
        let rec = EnclaveRecord {
            identity: *identity,
            encryption_key: *encryption_key,
            operator,
            measurement: claims.measurement,
            registered_at: existing.as_ref().map_or(height, |e| e.registered_at),
            expires_at,
            stake: total,
            unbonding_until: None,
            registration_tx,
        };
        o.put(enclave_key(identity), Record::Enclave(rec));
        Ok(Event::EnclaveRegistered {
            identity: *identity,
            operator,
            expires_at,
            stake: total,
        })
    }
}

/// Takes `amount` (at most the whole stake) from enclave `identity`'s stake
/// and returns what was taken, None when it has no registration. The one
/// way another module changes a registration: the market slashes through
/// this, never by writing the record itself.
pub(crate) fn take_stake(
    o: &mut Overlay<'_>,
    identity: &PublicKey,
    amount: impl FnOnce(Amount) -> Amount,
) -> Option<Amount> {
    let mut e = o.enclave(identity)?;
    let taken = amount(e.stake).min(e.stake);
    e.stake = Amount(e.stake.0 - taken.0);
    o.put(enclave_key(identity), Record::Enclave(e));
    Some(taken)
}

#[cfg(test)]
mod tests;
