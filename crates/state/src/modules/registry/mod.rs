//! The enclave registry: registrations (quote, allowlist, binding, stake),
//! deregistration and unbonding, stake withdrawal.

use crate::TxError;
use crate::machine::{Overlay, Record, State, enclave_key};
use crate::types::*;
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Height, PublicKey, Timestamp};
use proctor_tee::{AttestationVerifier, TrustPolicy, registration_report_data};

impl State {
    /// Registration, deregistration and withdrawal calls.
    pub(crate) fn apply_registry_call(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        from: Address,
        tx: &Transaction,
    ) -> Result<Vec<Event>, TxError> {
        let mut events = Vec::new();
        match &tx.call {
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
                    .ok_or(TxError::EnclaveNotFound(*identity))?;
                if rec.operator != from {
                    return Err(TxError::NotOperator);
                }
                if rec.unbonding_until.is_some() {
                    return Err(TxError::AlreadyUnbonding);
                }
                let until = env.height + self.params.unbonding_blocks;
                rec.unbonding_until = Some(until);
                o.put(enclave_key(identity), &Record::Enclave(rec));
                events.push(Event::EnclaveDeregistered {
                    identity: *identity,
                    unbonding_until: until,
                });
            }
            Call::WithdrawStake { identity } => {
                let rec = o
                    .enclave(identity)
                    .ok_or(TxError::EnclaveNotFound(*identity))?;
                if rec.operator != from {
                    return Err(TxError::NotOperator);
                }
                match rec.unbonding_until {
                    None => return Err(TxError::NotDeregistered),
                    Some(until) if env.height <= until => {
                        return Err(TxError::StillUnbonding { until });
                    }
                    Some(_) => {}
                }
                // Invariant for the end-of-block work: every worker assigned
                // to an open job has its record (settlement pays its operator,
                // a late or wrong result slashes its stake).
                if o.offer(identity)
                    .is_some_and(|f| f.used_fuel > 0 || f.used_memory_pages > 0)
                {
                    return Err(TxError::WorkerBusy(*identity));
                }
                let mut acc = o.account(&from);
                acc.balance = acc
                    .balance
                    .checked_add(rec.stake)
                    .ok_or(TxError::Overflow)?;
                o.set_account(&from, acc);
                o.writes.insert(enclave_key(identity), None);
                events.push(Event::StakeWithdrawn {
                    identity: *identity,
                    operator: from,
                    amount: rec.stake,
                });
            }
            _ => unreachable!("only registry calls come here"),
        }
        Ok(events)
    }
}

impl State {
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
            return Err(TxError::BadExpiry {
                expires_at,
                height,
                max,
            });
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
            .map_err(TxError::QuoteRejected)?;
        // New registrations need a measurement that is listed and not retired.
        if !o
            .measurements()
            .iter()
            .any(|e| e.measurement == claims.measurement && e.retired_at.is_none())
        {
            return Err(TxError::MeasurementNotAllowed(claims.measurement));
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
            return Err(TxError::ReportDataMismatch);
        }
        let existing = o.enclave(identity);
        if let Some(e) = &existing {
            if e.operator != operator {
                return Err(TxError::EnclaveOwnedByOther);
            }
            if e.unbonding_until.is_some() {
                return Err(TxError::AlreadyUnbonding);
            }
        }
        let total = existing
            .as_ref()
            .map_or(Amount::ZERO, |e| e.stake)
            .checked_add(stake)
            .ok_or(TxError::Overflow)?;
        // Genesis enclaves (height 0) bootstrap the chain without a stake.
        if height > 0 && total < self.params.min_stake {
            return Err(TxError::InsufficientStake {
                min: self.params.min_stake,
                got: total,
            });
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
        o.put(enclave_key(identity), &Record::Enclave(rec));
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
    o.put(enclave_key(identity), &Record::Enclave(e));
    Some(taken)
}
