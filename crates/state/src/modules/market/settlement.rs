//! Settling a job: the majority's commitment wins, workers are paid or
//! slashed, and a job that ends unpaid refunds its requester.

use crate::TxError;
use crate::context::{Overlay, State};
use proctor_market::SCALE;
use proctor_market::settle::{self};
use proctor_primitives::{Amount, Hash, PublicKey};
use std::collections::BTreeMap;

use super::*;

impl State {
    /// Settles a job on the reports it has: the commitment held by a strict
    /// majority of the requested replicas wins; no majority fails the job.
    pub(super) fn finalize(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
    ) -> MarketResult {
        let mp = &self.params().market;
        // Each commitment's voters: assignment index and report.
        let mut votes: BTreeMap<Hash, Vec<(usize, ResultReport)>> = BTreeMap::new();
        for (i, a) in j.assignments.iter().enumerate() {
            if let Some(r) = &a.report {
                votes.entry(r.commitment).or_default().push((i, r.clone()));
            }
        }
        let winner = votes
            .iter()
            .find(|(_, v)| v.len() * 2 > j.spec.replicas as usize)
            .map(|(c, v)| (*c, v.clone()));
        let Some((commitment, accepted)) = winner else {
            return Ok(vec![self.end_unpaid(o, env, j, JobState::Failed)?]);
        };
        let mut events = Vec::new();
        // The outvoted are slashed and lose reputation.
        for a in j.assignments.clone() {
            if a.report
                .as_ref()
                .is_some_and(|r| r.commitment != commitment)
            {
                events.extend(self.slash(o, &a.worker, mp.slash_wrong_bps, "result outvoted")?);
                j.failed.push(a.worker);
            }
        }
        let paid_to: Vec<(u64, u128)> = accepted
            .iter()
            .map(|(i, r)| (r.instructions, j.assignments[*i].price.0))
            .collect();
        let s = settle::settle(j.escrow.0, &paid_to, j.spec.max_price.0, &mp.fees)
            .map_err(|_| TxError::Overflow)?;
        let window = j
            .deadline
            .saturating_sub(j.assignments[accepted[0].0].assigned_at)
            .max(1);
        let service =
            (j.deadline.saturating_sub(env.height) as u128 * SCALE as u128 / window as u128) as u64;
        let mut paid = 0u128;
        for ((i, _), &(pay, fee_share)) in accepted.iter().zip(&s.workers) {
            let a = &j.assignments[*i];
            // A worker cannot withdraw while assigned (`WorkerBusy`), so its
            // record is here; were it gone, the pay goes to the treasury
            // rather than failing the block.
            let operator = o.enclave(&a.worker).map_or_else(treasury, |e| e.operator);
            o.credit(&operator, Amount(pay + fee_share))?;
            events.push(Event::JobPaid {
                job: j.id,
                worker: a.worker,
                operator,
                pay: Amount(pay),
                fee_share: Amount(fee_share),
            });
            if let Some(mut offer) = o.offer(&a.worker) {
                offer.reputation.record_completed(pay, service);
                o.set_offer(&offer);
            }
            paid += pay;
        }
        let app = o.module_owner(&j.spec.module).unwrap_or_else(treasury);
        o.credit(&app, Amount(s.app_fee))?;
        o.credit(&treasury(), Amount(s.treasury))?;
        events.push(Event::JobFees {
            job: j.id,
            app,
            app_fee: Amount(s.app_fee),
            treasury: Amount(s.treasury),
        });
        o.credit(&j.requester, Amount(s.refund))?;
        let spent = j.escrow.0 - s.refund;
        rate_requester(o, &j.requester, |r| r.record_completed(spent, SCALE));
        let report = &accepted[0].1;
        j.paid = Amount(paid);
        j.instructions = report.instructions;
        j.output = Some(report.output);
        j.refund = Amount(s.refund);
        self.close(o, env, j, JobState::Settled);
        events.push(Event::JobEnded {
            job: j.id,
            state: JobState::Settled,
            paid: Amount(paid),
            refund: Amount(s.refund),
        });
        Ok(events)
    }

    /// Ends a job without paying workers: the escrow minus the expiry fee
    /// (to the treasury) goes back to the requester. Returns the end event.
    pub(super) fn end_unpaid(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
        state: JobState,
    ) -> Result<Event, TxError> {
        let fee = self.params().market.expiry_fee.0.min(j.escrow.0);
        let refund = Amount(j.escrow.0 - fee);
        o.credit(&treasury(), Amount(fee))?;
        o.credit(&j.requester, refund)?;
        j.refund = refund;
        self.close(o, env, j, state);
        Ok(Event::JobEnded {
            job: j.id,
            state,
            paid: Amount::ZERO,
            refund,
        })
    }

    /// Frees what the job holds on its workers and its requester, takes it
    /// off the market's lists and stores it in its final `state`.
    pub(super) fn close(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
        state: JobState,
    ) {
        for a in &j.assignments {
            release(o, &a.worker, &j.spec);
        }
        reserve(o, &j.requester, &j.spec, -(j.assignments.len() as i64));
        let mut m = o.market();
        m.pending.retain(|x| *x != j.id);
        m.active.retain(|x| *x != j.id);
        o.set_market(&m);
        j.state = state;
        j.ended_at = Some(env.height);
        o.set_job(j);
    }

    /// Takes `bps` of a worker's stake to the treasury and records the failure.
    pub(super) fn slash(
        &self,
        o: &mut Overlay<'_>,
        worker: &PublicKey,
        bp: u32,
        reason: &str,
    ) -> MarketResult {
        let mut events = Vec::new();
        if let Some(amount) =
            crate::modules::registry::take_stake(o, worker, |stake| bps(stake, bp))
        {
            o.credit(&treasury(), amount)?;
            events.push(Event::WorkerSlashed {
                identity: *worker,
                amount,
                reason: reason.to_string(),
            });
        }
        if let Some(mut offer) = o.offer(worker) {
            offer.reputation.record_failed();
            o.set_offer(&offer);
        }
        Ok(events)
    }
}
