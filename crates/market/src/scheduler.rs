//! Weighted dominant resource fairness (seed 002, "WDRF"), deterministic.
//!
//! Resources have two dimensions, memory pages and fuel (instructions a job
//! may use). Each worker offers a capacity and a price per instruction; each
//! job asks for a demand per replica, on `replicas` distinct workers.
//!
//! 1. **Filter**: a worker can take a replica if its price is at most the
//!    job's maximum, the demand fits in what it has left (`C + D <= R`), and it
//!    is not already one of the job's workers (nor excluded, e.g. one that
//!    failed the job before).
//! 2. **Prioritize**: among those, the highest `w_price · price_score +
//!    w_rep · reputation`, where `price_score = 1 / log2(price)` (SCALE for
//!    prices up to 2); ties go to the smaller worker id.
//! 3. **Fairness**: the next job placed belongs to the requester with the
//!    lowest weighted dominant share `s_i = max_j(u_ij / r_j) / w_i`, where
//!    `u_i` is what its running jobs use and `r` the capacity of all workers;
//!    ties go to the smaller address. Each requester's jobs go in order; a
//!    job that cannot be placed now holds its requester's later jobs until
//!    the next block.
//!
//! Cost per placement: O(log requesters) to pick the requester plus a walk
//! down the workers in priority order until enough fit (workers without room
//! leave the walk).

use crate::SCALE;
use crate::fixed::{log2, mul};
use proctor_primitives::{Address, PublicKey};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Resources: memory pages (64 KiB) and fuel (instructions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory_pages: u64,
    pub fuel: u64,
}

impl Resources {
    fn fits(&self, used: &Resources, capacity: &Resources) -> bool {
        used.memory_pages.saturating_add(self.memory_pages) <= capacity.memory_pages
            && used.fuel.saturating_add(self.fuel) <= capacity.fuel
    }
    fn add(&mut self, other: &Resources, times: u64) {
        self.memory_pages = self
            .memory_pages
            .saturating_add(other.memory_pages.saturating_mul(times));
        self.fuel = self.fuel.saturating_add(other.fuel.saturating_mul(times));
    }
}

/// A worker as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct Worker {
    pub id: PublicKey,
    /// Price per instruction, in base units.
    pub price: u128,
    pub capacity: Resources,
    /// Used by the jobs it runs now.
    pub used: Resources,
    /// Reputation score, SCALE units.
    pub reputation: u64,
}

/// A job waiting for workers.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: u64,
    pub requester: Address,
    /// Per replica.
    pub demand: Resources,
    pub max_price: u128,
    /// Workers still to find.
    pub replicas: u32,
    /// Workers that may not take it (already on it, or failed it).
    pub exclude: Vec<PublicKey>,
}

/// A requester's running usage and weight.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub used: Resources,
    /// SCALE = 1.0; higher-reputation requesters may get more.
    pub weight: u64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            used: Resources::default(),
            weight: SCALE,
        }
    }
}

/// Weights of the prioritize step (SCALE units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub price: u64,
    pub reputation: u64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            price: SCALE / 2,
            reputation: SCALE / 2,
        }
    }
}

/// A job placed on workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub job: u64,
    pub workers: Vec<PublicKey>,
}

/// `1 / log2(price)` in SCALE units (SCALE for prices up to 2).
pub fn price_score(price: u128) -> u64 {
    let l = log2(price).max(SCALE);
    (SCALE as u128 * SCALE as u128 / l as u128) as u64
}

/// The prioritize step's score of a worker.
pub fn priority(price: u128, reputation: u64, w: &Weights) -> u64 {
    mul(w.price, price_score(price)) + mul(w.reputation, reputation.min(SCALE))
}

/// `max_j(used_j / capacity_j) / weight` in SCALE units.
pub fn dominant_share(used: &Resources, capacity: &Resources, weight: u64) -> u64 {
    let share = |u: u64, r: u64| -> u128 {
        if r == 0 {
            0
        } else {
            u as u128 * SCALE as u128 / r as u128
        }
    };
    let s = share(used.memory_pages, capacity.memory_pages).max(share(used.fuel, capacity.fuel));
    (s * SCALE as u128 / weight.max(1) as u128).min(u64::MAX as u128) as u64
}

/// Places up to `limit` jobs (FIFO per requester, in `jobs` order) on
/// `workers`, updating their `used` and the requesters' `usage`.
pub fn schedule(
    workers: &mut [Worker],
    jobs: Vec<Job>,
    usage: &mut BTreeMap<Address, Usage>,
    weights: &Weights,
    limit: usize,
) -> Vec<Placement> {
    let mut total = Resources::default();
    for w in workers.iter() {
        total.add(&w.capacity, 1);
    }
    // Workers in priority order; only those with room stay in `open`.
    let mut open: BTreeSet<(Reverse<u64>, PublicKey, usize)> = workers
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            w.used.memory_pages < w.capacity.memory_pages && w.used.fuel < w.capacity.fuel
        })
        .map(|(i, w)| (Reverse(priority(w.price, w.reputation, weights)), w.id, i))
        .collect();
    let mut queues: BTreeMap<Address, VecDeque<Job>> = BTreeMap::new();
    for j in jobs {
        queues.entry(j.requester).or_default().push_back(j);
    }
    let share_of = |usage: &BTreeMap<Address, Usage>, r: &Address| {
        let u = usage.get(r).copied().unwrap_or_default();
        dominant_share(&u.used, &total, u.weight)
    };
    let mut turn: BTreeSet<(u64, Address)> =
        queues.keys().map(|r| (share_of(usage, r), *r)).collect();
    let mut placed = Vec::new();
    while placed.len() < limit {
        let Some((_, requester)) = turn.pop_first() else {
            break;
        };
        let queue = queues.get_mut(&requester).expect("queued requester");
        let job = queue.front().expect("requesters in turn have jobs");
        // Filter and prioritize: the best workers that can hold a replica.
        let mut chosen: Vec<usize> = Vec::with_capacity(job.replicas as usize);
        for &(_, id, i) in open.iter() {
            if chosen.len() == job.replicas as usize {
                break;
            }
            let w = &workers[i];
            if w.price <= job.max_price
                && job.demand.fits(&w.used, &w.capacity)
                && !job.exclude.contains(&id)
            {
                chosen.push(i);
            }
        }
        if chosen.len() < job.replicas as usize {
            // Not enough room for this job now: its requester waits.
            continue;
        }
        let job = queue.pop_front().expect("front exists");
        for &i in &chosen {
            let w = &mut workers[i];
            let key = (Reverse(priority(w.price, w.reputation, weights)), w.id, i);
            w.used.add(&job.demand, 1);
            if w.used.memory_pages >= w.capacity.memory_pages || w.used.fuel >= w.capacity.fuel {
                open.remove(&key);
            }
        }
        usage
            .entry(requester)
            .or_default()
            .used
            .add(&job.demand, job.replicas as u64);
        placed.push(Placement {
            job: job.id,
            workers: chosen.iter().map(|&i| workers[i].id).collect(),
        });
        if !queue.is_empty() {
            turn.insert((share_of(usage, &requester), requester));
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }
    fn addr(i: u8) -> Address {
        Address([i; 20])
    }
    fn res(fuel: u64, memory_pages: u64) -> Resources {
        Resources { memory_pages, fuel }
    }
    fn worker(i: u8, price: u128, capacity: Resources, reputation: u64) -> Worker {
        Worker {
            id: key(i),
            price,
            capacity,
            used: Resources::default(),
            reputation,
        }
    }
    fn job(id: u64, requester: u8, demand: Resources, replicas: u32) -> Job {
        Job {
            id,
            requester: addr(requester),
            demand,
            max_price: u128::MAX,
            replicas,
            exclude: vec![],
        }
    }

    #[test]
    fn price_score_and_priority_by_hand() {
        assert_eq!(price_score(1), SCALE);
        assert_eq!(price_score(256), SCALE / 8); // 1 / log2(256)
        assert_eq!(price_score(65_536), SCALE / 16);
        let w = Weights::default();
        // 0.5 * 0.125 + 0.5 * 0.5 = 0.3125; 0.5 * 0.0625 + 0.5 * 0.9 = 0.48125
        assert_eq!(priority(256, 500_000, &w), 312_500);
        assert_eq!(priority(65_536, 900_000, &w), 481_250);
    }

    #[test]
    fn dominant_share_by_hand() {
        // <1 fuel, 4 pages> of <9, 18>: max(1/9, 4/18) = 0.2222
        assert_eq!(dominant_share(&res(1, 4), &res(9, 18), SCALE), 222_222);
        // <3, 1>: max(3/9, 1/18) = 0.3333; weight 2 halves it.
        assert_eq!(dominant_share(&res(3, 1), &res(9, 18), SCALE), 333_333);
        assert_eq!(dominant_share(&res(3, 1), &res(9, 18), 2 * SCALE), 166_666);
    }

    /// The classic DRF example (Ghodsi et al.): 9 CPUs and 18 GB; A's tasks
    /// need <1 CPU, 4 GB>, B's <3 CPU, 1 GB>. DRF gives A three tasks and B
    /// two, equalizing dominant shares at 2/3. Fuel plays CPU, pages GB.
    #[test]
    fn the_drf_paper_example_gives_three_and_two() {
        let mut workers = vec![worker(1, 1, res(9, 18), 0)];
        let mut jobs = Vec::new();
        for i in 0..10 {
            jobs.push(job(i, 1, res(1, 4), 1));
            jobs.push(job(100 + i, 2, res(3, 1), 1));
        }
        let mut usage = BTreeMap::new();
        let placed = schedule(&mut workers, jobs, &mut usage, &Weights::default(), 100);
        let a = placed.iter().filter(|p| p.job < 100).count();
        let b = placed.len() - a;
        assert_eq!((a, b), (3, 2), "{placed:?}");
        assert_eq!(usage[&addr(1)].used, res(3, 12));
        assert_eq!(usage[&addr(2)].used, res(6, 2));
        assert_eq!(workers[0].used, res(9, 14));
        // Order: A, B, A, B, A (A wins the first tie by address).
        let order: Vec<bool> = placed.iter().map(|p| p.job < 100).collect();
        assert_eq!(order, vec![true, false, true, false, true]);
    }

    #[test]
    fn a_heavier_weight_gets_a_larger_share() {
        // Same demands; B weighs 2: B is served while its share/2 is lower.
        let mut workers = vec![worker(1, 1, res(12, 12), 0)];
        let jobs: Vec<Job> = (0..12)
            .flat_map(|i| [job(i, 1, res(1, 1), 1), job(100 + i, 2, res(1, 1), 1)])
            .collect();
        let mut usage = BTreeMap::new();
        usage.insert(
            addr(2),
            Usage {
                used: Resources::default(),
                weight: 2 * SCALE,
            },
        );
        let placed = schedule(&mut workers, jobs, &mut usage, &Weights::default(), 100);
        let a = placed.iter().filter(|p| p.job < 100).count();
        assert_eq!((a, placed.len() - a), (4, 8));
    }

    #[test]
    fn filter_and_prioritize_choose_distinct_fitting_workers() {
        let mut workers = vec![
            worker(1, 65_536, res(100, 100), 900_000), // 0.48125
            worker(2, 256, res(100, 100), 500_000),    // 0.3125
            worker(3, 2, res(100, 100), 0),            // 0.5
            worker(4, 2, res(100, 1), SCALE),          // best, but too little memory
        ];
        let mut j = job(1, 1, res(10, 10), 2);
        j.max_price = 100_000;
        let mut usage = BTreeMap::new();
        let placed = schedule(&mut workers, vec![j], &mut usage, &Weights::default(), 10);
        assert_eq!(
            placed,
            vec![Placement {
                job: 1,
                workers: vec![key(3), key(1)]
            }]
        );
        // A maximum price below worker 1's leaves worker 3 and worker 2.
        let mut j = job(2, 1, res(10, 10), 2);
        j.max_price = 1_000;
        let placed = schedule(&mut workers, vec![j], &mut usage, &Weights::default(), 10);
        assert_eq!(placed[0].workers, vec![key(3), key(2)]);
        // Excluded workers are skipped.
        let mut j = job(3, 1, res(10, 10), 1);
        j.exclude = vec![key(3)];
        let placed = schedule(&mut workers, vec![j], &mut usage, &Weights::default(), 10);
        assert_eq!(placed[0].workers, vec![key(1)]);
    }

    #[test]
    fn a_job_that_does_not_fit_waits_with_its_requesters_later_jobs() {
        let mut workers = vec![worker(1, 1, res(10, 10), 0), worker(2, 1, res(10, 10), 0)];
        let jobs = vec![
            job(1, 1, res(5, 5), 3), // three replicas, two workers
            job(2, 1, res(1, 1), 1), // behind it
            job(3, 2, res(1, 1), 1),
        ];
        let mut usage = BTreeMap::new();
        let placed = schedule(&mut workers, jobs, &mut usage, &Weights::default(), 10);
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].job, 3);
    }

    #[test]
    fn the_limit_bounds_placements_and_the_result_is_deterministic() {
        let make = || -> Vec<Worker> {
            (0..50u8)
                .map(|i| {
                    worker(
                        i,
                        1 + i as u128 * 7,
                        res(1000, 1000),
                        (i as u64 * 13_337) % SCALE,
                    )
                })
                .collect()
        };
        let jobs: Vec<Job> = (0..500)
            .map(|i| job(i, (i % 7) as u8, res(10, 10), 1 + (i % 3) as u32))
            .collect();
        let (mut w1, mut w2) = (make(), make());
        let (mut u1, mut u2) = (BTreeMap::new(), BTreeMap::new());
        let p1 = schedule(&mut w1, jobs.clone(), &mut u1, &Weights::default(), 120);
        let p2 = schedule(&mut w2, jobs, &mut u2, &Weights::default(), 120);
        assert_eq!(p1.len(), 120);
        assert_eq!(p1, p2);
        for p in &p1 {
            let distinct: BTreeSet<_> = p.workers.iter().collect();
            assert_eq!(distinct.len(), p.workers.len());
        }
    }
}
