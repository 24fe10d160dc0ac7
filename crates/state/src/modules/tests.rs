//! A chain for module tests: keys, a genesis with `n` registered enclaves
//! that offer their service on the market, and blocks of one transaction
//! each, checking at every block that supply grows by exactly the reward.

use crate::oracle::{Body, Datagram, Outcome, Params, Query, Value};
use crate::testkit::{self, keys};
use crate::{BlockEnv, Call, Event, SignedTransaction, State, Transaction, TxError};
use proctor_primitives::{Amount, Hash, Keypair};
use proctor_tee::Platform;
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};

/// Key indices: 0 requester, 1 someone else, 2 miner, 3.. operators.
pub(crate) const REQUESTER: usize = 0;
pub(crate) const OTHER: usize = 1;
pub(crate) const MINER: usize = 2;
pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) struct Chain {
    pub(crate) ks: Vec<Keypair>,
    pub(crate) genesis: Hash,
    pub(crate) reward: u128,
    pub(crate) state: State,
    pub(crate) height: u64,
    pub(crate) nonces: Vec<u64>,
    pub(crate) enclaves: Vec<SimPlatform>,
    pub(crate) outsider: SimPlatform,
}

pub(crate) fn platform(name: &str) -> SimPlatform {
    let d = std::env::temp_dir().join(format!("proctor-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    SimPlatform::open(&d, SimAttestationRoot::from_secret(&[7; 32])).unwrap()
}

impl Chain {
    /// A chain with `n` registered enclaves that offer their service.
    pub(crate) fn new(name: &str, n: usize) -> Chain {
        Chain::with(name, n, |_, _| {})
    }

    /// [`Chain::new`] with the parameters changed by `tweak`, which sees
    /// the enclaves.
    pub(crate) fn with(
        name: &str,
        n: usize,
        tweak: impl FnOnce(&mut crate::ChainParams, &[SimPlatform]),
    ) -> Chain {
        let ks = keys(3 + n);
        let root = SimAttestationRoot::from_secret(&[7; 32]);
        let mut params = testkit::params(Some(root.public()), sim_measurement());
        params.oracle.max_fee = Amount(100_000);
        params.governance = Some(ks[OTHER].public().address());
        let enclaves: Vec<SimPlatform> = (0..n).map(|i| platform(&format!("{name}-{i}"))).collect();
        tweak(&mut params, &enclaves);
        let g = testkit::genesis(&ks, 1_000_000_000, params);
        let mut c = Chain {
            genesis: g.hash(),
            reward: g.params.block_reward.0,
            state: State::genesis(&g).unwrap(),
            nonces: vec![0; ks.len()],
            ks,
            height: 0,
            enclaves,
            outsider: platform(&format!("{name}-outsider")),
        };
        for i in 0..n {
            let op = c.ks[3 + i].public().address();
            let reg = testkit::register_call(&c.enclaves[i], &op, &c.genesis, 5_000, 1_000_000);
            c.ok(3 + i, reg);
            let offer = Call::Market(crate::market::Call::SetOffer {
                identity: c.enclaves[i].identity(),
                price: Amount(10),
                memory_pages: 1_000,
                fuel: 1_000_000,
                speed: 1_000_000,
            });
            c.ok(3 + i, offer);
        }
        c
    }

    /// Applies a block with `who`'s `call` (or none): its receipt's events
    /// and the block's; supply grows by exactly the reward.
    pub(crate) fn block(
        &mut self,
        tx: Option<(usize, Call)>,
    ) -> Result<(Vec<Event>, Vec<Event>), TxError> {
        let txs: Vec<SignedTransaction> = tx
            .iter()
            .map(|(who, call)| {
                Transaction {
                    chain: self.genesis,
                    signer: self.ks[*who].public(),
                    nonce: self.nonces[*who],
                    fee: Amount(1),
                    call: call.clone(),
                }
                .sign(&self.ks[*who])
            })
            .collect();
        let env = BlockEnv {
            height: self.height + 1,
            timestamp: self.time(self.height + 1),
            miner: self.ks[MINER].public().address(),
        };
        let before = self.state.total_supply();
        let a = self.state.apply_block(&env, &txs).map_err(|e| match e {
            crate::BlockError::Tx { error, .. } => error,
            e => panic!("block failed outside a transaction: {e}"),
        })?;
        assert_eq!(
            a.state.total_supply(),
            before + self.reward,
            "supply at height {}",
            env.height
        );
        if let Some((who, _)) = tx {
            self.nonces[who] += 1;
        }
        self.height += 1;
        self.state = a.state;
        let receipt = a.receipts.first().map(|r| r.events.clone());
        Ok((receipt.unwrap_or_default(), a.events))
    }

    pub(crate) fn time(&self, height: u64) -> u64 {
        T0 + height * 1000
    }

    pub(crate) fn ok(&mut self, who: usize, call: Call) -> Vec<Event> {
        self.block(Some((who, call))).expect("call applies").0
    }

    pub(crate) fn err(&mut self, who: usize, call: Call) -> i32 {
        self.block(Some((who, call)))
            .expect_err("call is refused")
            .code()
    }

    pub(crate) fn balance(&self, who: usize) -> u128 {
        self.state
            .account(&self.ks[who].public().address())
            .balance
            .0
    }
}

/// The oracle's side: who serves a request, and its datagrams.
impl Chain {
    /// Index (in `enclaves`) of the enclave request `id` is assigned to.
    pub(crate) fn assigned(&self, id: u64) -> usize {
        let e = self.state.oracle_request(id).unwrap().enclave;
        self.enclaves
            .iter()
            .position(|p| p.identity() == e)
            .unwrap()
    }

    /// A datagram for request `id` as enclave `by` would sign it.
    pub(crate) fn datagram(&self, id: u64, by: &SimPlatform) -> Datagram {
        let r = self.state.oracle_request(id).unwrap();
        Datagram {
            request: id,
            params: r.query.hash(),
            enclave: by.identity(),
            roots: self.state.params().oracle.roots_hash(),
            time_ms: self.time(self.height),
            body: Body::Public(Outcome::Fetched {
                server_name: "example.org".into(),
                cert_hash: Hash::of(b"cert"),
                status: 200,
                value: Value::Json("42".into()),
            }),
        }
    }

    pub(crate) fn signed(&self, d: Datagram, by: &SimPlatform) -> Call {
        let signature = by.sign(&d.signing_bytes(&self.genesis));
        Call::Oracle(crate::oracle::Call::Deliver {
            datagram: d,
            signature,
        })
    }

    /// Request `id`'s datagram, signed by its assigned enclave.
    pub(crate) fn delivery(&self, id: u64) -> Call {
        let by = &self.enclaves[self.assigned(id)];
        self.signed(self.datagram(id, by), by)
    }

    pub(crate) fn operator_of(&self, id: u64) -> usize {
        3 + self.assigned(id)
    }
}

pub(crate) fn public(url: &str, select: Option<&str>, fee: u128) -> Call {
    Call::Oracle(crate::oracle::Call::Request {
        query: Query::Public(Params {
            url: url.into(),
            select: select.map(Into::into),
        }),
        callback: None,
        fee: Amount(fee),
        deadline_blocks: 5,
    })
}
