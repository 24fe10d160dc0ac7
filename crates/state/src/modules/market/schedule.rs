//! End-of-block market work: deadlines (silent workers slashed and
//! replaced, jobs settled or expired), then placing pending jobs with the
//! WDRF scheduler.

use crate::context::{Overlay, State};
use proctor_market::reputation::Reputation;
use proctor_market::scheduler::{self, Resources};
use proctor_primitives::{Amount, PublicKey};
use std::collections::BTreeMap;

use super::*;

impl State {
    /// End of block: deadlines, then scheduling.
    pub(crate) fn process_market(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
    ) -> MarketResult {
        let mut events = Vec::new();
        let m = o.market();
        for id in m.active.clone() {
            let Some(mut j) = o.job(id) else { continue };
            if j.deadline < env.height {
                events.extend(self.on_deadline(o, env, &mut j)?);
            }
        }
        // Jobs no worker could take in time: they end on the reports they
        // have (from before a reassignment), or are refunded.
        for id in m.pending.clone() {
            let Some(mut j) = o.job(id) else { continue };
            if j.deadline < env.height {
                if j.assignments.iter().any(|a| a.report.is_some()) {
                    events.extend(self.finalize(o, env, &mut j)?);
                } else {
                    events.push(self.end_unpaid(o, env, &mut j, JobState::Expired)?);
                }
            }
        }
        events.extend(self.schedule(o, env));
        Ok(events)
    }

    fn on_deadline(
        &self,
        o: &mut Overlay<'_>,
        env: &crate::BlockEnv,
        j: &mut JobRecord,
    ) -> MarketResult {
        let mp = &self.params().market;
        if j.state == JobState::Assigned && j.assignments.iter().any(|a| a.key.is_none()) {
            // The requester never released the key to every worker.
            rate_requester(o, &j.requester, Reputation::record_failed);
            return Ok(vec![self.end_unpaid(o, env, j, JobState::Expired)?]);
        }
        // Running: slash and drop the silent workers.
        let mut events = Vec::new();
        let silent: Vec<PublicKey> = j
            .assignments
            .iter()
            .filter(|a| a.report.is_none())
            .map(|a| a.worker)
            .collect();
        for w in &silent {
            events.extend(self.slash(o, w, mp.slash_late_bps, "no result by the deadline")?);
            release(o, w, &j.spec);
            j.failed.push(*w);
        }
        reserve(o, &j.requester, &j.spec, -(silent.len() as i64));
        j.assignments.retain(|a| a.report.is_some());
        if j.reassignments < mp.max_reassignments {
            // Replace them: back in the queue for the missing replicas.
            j.reassignments += 1;
            j.state = JobState::Pending;
            j.deadline = env.height + j.spec.deadline_blocks;
            let mut m = o.market();
            m.active.retain(|x| *x != j.id);
            m.pending.push(j.id);
            o.set_market(&m);
            o.set_job(j);
            events.push(Event::JobRequeued {
                job: j.id,
                missing: silent.len() as u8,
            });
            return Ok(events);
        }
        events.extend(self.finalize(o, env, j)?);
        Ok(events)
    }

    /// Places pending jobs with the WDRF scheduler.
    fn schedule(&self, o: &mut Overlay<'_>, env: &crate::BlockEnv) -> Vec<Event> {
        let mp = &self.params().market;
        let mut m = o.market();
        if m.pending.is_empty() || m.workers.is_empty() {
            return vec![];
        }
        // Workers that can take work now and until the longest deadline.
        let horizon = env.height.saturating_add(mp.max_deadline_blocks);
        let mut workers = Vec::new();
        for id in &m.workers {
            let (Some(offer), Some(e)) = (o.offer(id), o.enclave(id)) else {
                continue;
            };
            if e.unbonding_until.is_some()
                || e.expires_at < horizon
                || !self.measurement_allowed(&e.measurement, env.height)
            {
                continue;
            }
            workers.push(scheduler::Worker {
                id: *id,
                price: offer.price.0,
                capacity: Resources {
                    memory_pages: offer.memory_pages,
                    fuel: offer.fuel,
                },
                used: Resources {
                    memory_pages: offer.used_memory_pages,
                    fuel: offer.used_fuel,
                },
                reputation: offer.reputation.score(),
            });
        }
        let mut jobs = Vec::new();
        let mut usage = BTreeMap::new();
        let mut records = BTreeMap::new();
        for id in &m.pending {
            let Some(j) = o.job(*id) else { continue };
            let u = o.usage(&j.requester);
            usage.insert(
                j.requester,
                scheduler::Usage {
                    used: Resources {
                        memory_pages: u.memory_pages,
                        fuel: u.fuel,
                    },
                    weight: u.weight(),
                },
            );
            let mut exclude = j.failed.clone();
            exclude.extend(j.assignments.iter().map(|a| a.worker));
            // Too slow to run the fuel before the deadline.
            let block_ms = self.params().target_block_ms;
            exclude.extend(m.workers.iter().filter(|w| {
                o.offer(w).is_some_and(|offer| {
                    offer.instructions_in(j.spec.deadline_blocks, block_ms)
                        < u128::from(j.spec.fuel)
                })
            }));
            jobs.push(scheduler::Job {
                id: j.id,
                requester: j.requester,
                demand: Resources {
                    memory_pages: j.spec.memory_pages,
                    fuel: j.spec.fuel,
                },
                max_price: j.spec.max_price.0,
                replicas: (j.spec.replicas as usize - j.assignments.len()) as u32,
                exclude,
            });
            records.insert(j.id, j);
        }
        let placed = scheduler::schedule(
            &mut workers,
            jobs,
            &mut usage,
            &scheduler::Weights::default(),
            mp.max_placements_per_block as usize,
        );
        let prices: BTreeMap<PublicKey, u128> = workers.iter().map(|w| (w.id, w.price)).collect();
        let speeds: BTreeMap<PublicKey, u64> = m
            .workers
            .iter()
            .filter_map(|w| o.offer(w).map(|offer| (*w, offer.speed)))
            .collect();
        let mut events = Vec::new();
        for p in placed {
            // The scheduler places only the pending jobs it was given.
            let Some(mut j) = records.remove(&p.job) else {
                continue;
            };
            for w in &p.workers {
                j.assignments.push(Assignment {
                    worker: *w,
                    price: Amount(prices[w]),
                    speed: speeds.get(w).copied().unwrap_or(0),
                    assigned_at: env.height,
                    key: None,
                    keyed_at: None,
                    report: None,
                });
                if let Some(mut offer) = o.offer(w) {
                    offer.used_memory_pages += j.spec.memory_pages;
                    offer.used_fuel = offer.used_fuel.saturating_add(j.spec.fuel);
                    o.set_offer(&offer);
                }
            }
            reserve(o, &j.requester, &j.spec, p.workers.len() as i64);
            // Workers that kept their reports keep their keys; new ones need theirs.
            j.state = if j.assignments.iter().all(|a| a.key.is_some()) {
                JobState::Running
            } else {
                JobState::Assigned
            };
            j.deadline = env.height + j.spec.deadline_blocks;
            m.pending.retain(|x| *x != j.id);
            m.active.push(j.id);
            o.set_job(&j);
            events.push(Event::JobAssigned {
                job: j.id,
                workers: p.workers,
                deadline: j.deadline,
            });
        }
        o.set_market(&m);
        events
    }
}
