//! The native oracle (seed 000 §5): web data fetched over TLS and signed
//! inside attested enclaves, delivered on chain.
//!
//! - **m1** `Request`: the requester prepays a fee between the chain's
//!   minimum and maximum ([`OracleParams`]); the module stores the request,
//!   assigns it an enclave and emits **m2** `OracleRequested`.
//! - Which enclave: the providers are the enclaves with a market offer that
//!   are registered, not unbonding and not expired, in the market's order;
//!   a public request goes to `providers[H(id) mod n]`, a private one to the
//!   enclave its params are sealed to (which must be a provider). Nobody
//!   else's datagram is accepted for it.
//! - **m3** `Deliver`: the datagram must be signed by the assigned enclave's
//!   registered identity (its measurement still allowed), name the request's params hash, the chain's extra
//!   roots, and a certificate time inside the request's window (from the
//!   request's block time to this block's), by the deadline. Then **m4**:
//!   the datagram is recorded and emitted, the delivering enclave's operator
//!   receives the fee less the callback's part. That part stays held until
//!   the end of the block: it buys the contract command that delivers the
//!   datagram to the callback's contract (the contracts module, above this
//!   one, takes it with `take_oracle_callbacks`), or goes to the block.
//! - Fees (Town Crier, CCS 2016): a requester may cancel an undelivered
//!   request and gets the fee back less `cancel_fee`; that part stays held
//!   until the deadline and pays a delivery that raced the cancel, or the
//!   block's miner if none came. A request with no datagram by its deadline
//!   fails and its whole fee goes back. Every path conserves supply: what
//!   the module holds is counted in [`State::total_supply`].

use crate::TxError;
use crate::context::{Context, Overlay, State, key};
use crate::module::Module;
use crate::types::Transaction;
use proctor_primitives::{Address, Amount, Hash, Height, PublicKey, Signature};

pub mod types;
pub use types::*;

/// The oracle module.
pub(crate) struct Oracle;

fn request_key(id: u64) -> Hash {
    key(Oracle::KEY_PREFIX, "request", &[&id.to_le_bytes()])
}
fn next_key() -> Hash {
    key(Oracle::KEY_PREFIX, "next", &[])
}
fn due_key(h: Height) -> Hash {
    key(Oracle::KEY_PREFIX, "due", &[&h.to_le_bytes()])
}
fn pending_key(enclave: &PublicKey) -> Hash {
    key(Oracle::KEY_PREFIX, "pending", &[&enclave.0])
}
fn callbacks_key() -> Hash {
    key(Oracle::KEY_PREFIX, "callbacks", &[])
}

impl Overlay<'_> {
    pub(crate) fn oracle_request(&self, id: u64) -> Option<OracleRequest> {
        match self.get(&request_key(id)) {
            Some(crate::Record::Oracle(Record::Request(r))) => Some(*r),
            _ => None,
        }
    }
    fn set_oracle_request(&mut self, r: &OracleRequest) {
        self.put(request_key(r.id), Record::Request(Box::new(r.clone())));
    }
    fn oracle_ids(&self, k: &Hash) -> Vec<u64> {
        match self.get(k) {
            Some(crate::Record::Oracle(Record::Ids(Ids(v)))) => v,
            _ => vec![],
        }
    }
    fn set_oracle_ids(&mut self, k: Hash, ids: Vec<u64>) {
        if ids.is_empty() {
            self.delete(k);
        } else {
            self.put(k, Record::Ids(Ids(ids)));
        }
    }
    fn oracle_next(&self) -> u64 {
        match self.get(&next_key()) {
            Some(crate::Record::Oracle(Record::Next(n))) => n,
            _ => 0,
        }
    }
    /// The enclaves that serve oracle requests at `height`: those with a
    /// market offer, registered, not unbonding and not expired.
    pub(crate) fn oracle_providers(&self, height: Height) -> Vec<PublicKey> {
        self.market()
            .workers
            .into_iter()
            .filter(|w| {
                self.enclave(w)
                    .is_some_and(|e| e.unbonding_until.is_none() && e.expires_at >= height)
            })
            .collect()
    }
    /// Requests delivered in this block whose callback has yet to run, with
    /// the callback's fee, which each still holds; the list is emptied and
    /// the fees released (the contracts module turns each into a command
    /// at the end of the block, or gives the fee to the block).
    pub(crate) fn take_oracle_callbacks(&mut self) -> Vec<(OracleRequest, Amount)> {
        let ids = self.oracle_ids(&callbacks_key());
        self.delete(callbacks_key());
        let mut out = Vec::new();
        for id in ids {
            if let Some(mut r) = self.oracle_request(id) {
                let held = std::mem::replace(&mut r.escrow, Amount::ZERO);
                self.set_oracle_request(&r);
                out.push((r, held));
            }
        }
        out
    }
    /// Takes `id` off its enclave's pending list.
    fn unpend(&mut self, r: &OracleRequest) {
        let k = pending_key(&r.enclave);
        let mut ids = self.oracle_ids(&k);
        ids.retain(|&i| i != r.id);
        self.set_oracle_ids(k, ids);
    }
}

impl Module for Oracle {
    const NAME: &'static str = "oracle";
    const KEY_PREFIX: &'static str = "proctor/oracle";
    const CODES: std::ops::RangeInclusive<i32> = 1260..=1299;
    type Call = Call;

    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        _tx: &Transaction,
        call: &Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        let events = match call {
            Call::Request {
                query,
                callback,
                fee,
                deadline_blocks,
            } => vec![request(cx, from, query, callback, *fee, *deadline_blocks)?],
            Call::Deliver {
                datagram,
                signature,
            } => deliver(cx, datagram, signature)?,
            Call::Cancel { id } => vec![cancel(cx, from, *id)?],
        };
        Ok(crate::context::lift(events))
    }

    /// Requests whose deadline is this block: a pending one fails and its
    /// fee goes back; a cancelled one's held cancellation fee goes to the
    /// block's miner.
    fn end_block(cx: &mut Context<'_>) -> Result<Vec<crate::Event>, TxError> {
        let height = cx.env.height;
        let due = cx.o.oracle_ids(&due_key(height));
        let mut events = Vec::new();
        for id in due {
            let Some(mut r) = cx.o.oracle_request(id) else {
                continue;
            };
            match r.state {
                RequestState::Pending => {
                    cx.o.credit(&r.requester, r.escrow)?;
                    r.refunded = r.escrow;
                    r.escrow = Amount::ZERO;
                    r.state = RequestState::Failed;
                    r.height = Some(height);
                    r.error = Some(format!(
                        "no datagram by the deadline (height {})",
                        r.deadline
                    ));
                    cx.o.unpend(&r);
                    events.push(Event::OracleExpired {
                        id,
                        refunded: r.refunded,
                    });
                }
                RequestState::Cancelled => {
                    cx.fees = cx.fees.checked_add(r.escrow).ok_or(TxError::Overflow)?;
                    r.escrow = Amount::ZERO;
                }
                RequestState::Delivered | RequestState::Failed => continue,
            }
            cx.o.set_oracle_request(&r);
        }
        cx.o.delete(due_key(height));
        Ok(crate::context::lift(events))
    }
}

fn request(
    cx: &mut Context<'_>,
    from: Address,
    query: &Query,
    callback: &Option<Callback>,
    fee: Amount,
    deadline_blocks: u64,
) -> Result<Event, Error> {
    let p = &cx.params().oracle;
    if fee < p.min_fee || fee > p.max_fee {
        return Err(Error::FeeOutOfRange {
            min: p.min_fee,
            max: p.max_fee,
        });
    }
    if callback.as_ref().is_some_and(|c| c.fee > fee) {
        return Err(Error::BadRequest(
            "the callback's fee is more than the request's".into(),
        ));
    }
    let blocks = match deadline_blocks {
        0 => p.default_deadline_blocks,
        b if b > p.max_deadline_blocks => {
            return Err(Error::BadRequest(format!(
                "deadline of {b} blocks is more than the chain's {}",
                p.max_deadline_blocks
            )));
        }
        b => b,
    };
    let height = cx.env.height;
    let id = cx.o.oracle_next();
    let providers = cx.o.oracle_providers(height);
    let enclave = match query {
        Query::Public(params) => {
            params.check()?;
            if providers.is_empty() {
                return Err(Error::NoProvider);
            }
            let h = Hash::tagged("proctor/oracle/assign", &[&id.to_le_bytes()]);
            let pick = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"));
            providers[(pick % providers.len() as u64) as usize]
        }
        Query::Private {
            enclave,
            sealed,
            own,
            ..
        } => {
            if sealed.len() > MAX_SEALED || own.len() > MAX_SEALED {
                return Err(Error::BadRequest(format!(
                    "sealed params are larger than {MAX_SEALED} bytes"
                )));
            }
            if !providers.contains(enclave) {
                return Err(Error::NotProvider(*enclave));
            }
            *enclave
        }
    };
    let deadline = height + blocks;
    let r = OracleRequest {
        id,
        requester: from,
        query: query.clone(),
        callback: callback.clone(),
        fee,
        escrow: fee,
        enclave,
        created: height,
        created_ms: cx.env.timestamp,
        deadline,
        state: RequestState::Pending,
        datagram: None,
        height: None,
        fee_paid: Amount::ZERO,
        refunded: Amount::ZERO,
        error: None,
    };
    cx.o.set_oracle_request(&r);
    cx.o.put(next_key(), Record::Next(id + 1));
    let mut due = cx.o.oracle_ids(&due_key(deadline));
    due.push(id);
    cx.o.set_oracle_ids(due_key(deadline), due);
    let mut pending = cx.o.oracle_ids(&pending_key(&enclave));
    pending.push(id);
    cx.o.set_oracle_ids(pending_key(&enclave), pending);
    Ok(Event::OracleRequested {
        id,
        requester: from,
        enclave,
        query: query.clone(),
        deadline,
        fee,
    })
}

/// Checks a datagram against its request: the enclave's registration and
/// signature, the params, roots, time, size and kind.
fn check_datagram(
    cx: &Context<'_>,
    r: &OracleRequest,
    d: &Datagram,
    signature: &Signature,
) -> Result<(), Error> {
    let e =
        cx.o.enclave(&d.enclave)
            .filter(|e| e.unbonding_until.is_none() && e.expires_at >= cx.env.height)
            .ok_or(Error::UnknownEnclave(d.enclave))?;
    d.enclave
        .verify(&d.signing_bytes(&cx.state.genesis_hash), signature)
        .map_err(|_| Error::BadSignature)?;
    let (height, grace) = (cx.env.height, cx.params().measurement_grace_blocks);
    let allowed = cx.o.measurements().iter().any(|m| {
        m.measurement == e.measurement
            && m.retired_at
                .is_none_or(|r| height <= r.saturating_add(grace))
    });
    if !allowed {
        return Err(Error::MeasurementRetired(d.enclave));
    }
    if e.identity != r.enclave {
        return Err(Error::NotAssigned(d.enclave));
    }
    if d.params != r.query.hash() {
        return Err(Error::ParamsMismatch);
    }
    if d.roots != cx.params().oracle.roots_hash() {
        return Err(Error::RootsMismatch);
    }
    if d.time_ms < r.created_ms || d.time_ms > cx.env.timestamp {
        return Err(Error::BadTime {
            from: r.created_ms,
            to: cx.env.timestamp,
            got: d.time_ms,
        });
    }
    match (&r.query, &d.body) {
        (Query::Public(_), Body::Public(o)) => check_outcome(o),
        (Query::Private { .. }, Body::Sealed { ciphertext }) if ciphertext.len() <= MAX_SEALED => {
            Ok(())
        }
        (Query::Private { .. }, Body::Sealed { .. }) => Err(Error::BadDatagram(format!(
            "sealed outcome larger than {MAX_SEALED} bytes"
        ))),
        _ => Err(Error::KindMismatch),
    }
}

/// The size limits of an outcome.
pub fn check_outcome(o: &Outcome) -> Result<(), Error> {
    match o {
        Outcome::Fetched {
            server_name, value, ..
        } => {
            if server_name.len() > MAX_SERVER_NAME {
                return Err(Error::BadDatagram("server name too long".into()));
            }
            if matches!(value, Value::Json(v) if v.len() > MAX_VALUE) {
                return Err(Error::BadDatagram(format!(
                    "value larger than {MAX_VALUE} bytes"
                )));
            }
            Ok(())
        }
        Outcome::Failed { detail, .. } if detail.len() > MAX_DETAIL => Err(Error::BadDatagram(
            format!("failure detail longer than {MAX_DETAIL} bytes"),
        )),
        Outcome::Failed { .. } => Ok(()),
    }
}

fn deliver(
    cx: &mut Context<'_>,
    d: &Datagram,
    signature: &Signature,
) -> Result<Vec<Event>, TxError> {
    let id = d.request;
    let mut r = cx.o.oracle_request(id).ok_or(Error::NotFound(id))?;
    // Who signed comes first: a forged datagram is refused as forged,
    // whatever the request's state.
    check_datagram(cx, &r, d, signature)?;
    let height = cx.env.height;
    if height > r.deadline {
        return Err(Error::Expired {
            deadline: r.deadline,
        }
        .into());
    }
    match r.state {
        RequestState::Pending => {}
        // Raced a cancel: the relay did the work and gets the held
        // cancellation fee, once.
        RequestState::Cancelled if r.escrow > Amount::ZERO => {}
        state => return Err(Error::WrongState { id, state }.into()),
    }
    let operator =
        cx.o.enclave(&d.enclave)
            .map(|e| e.operator)
            .ok_or(Error::UnknownEnclave(d.enclave))?;
    if r.state == RequestState::Cancelled {
        let paid = r.escrow;
        cx.o.credit(&operator, paid)?;
        r.fee_paid = paid;
        r.escrow = Amount::ZERO;
        cx.o.set_oracle_request(&r);
        return Ok(vec![Event::OracleLateDelivery {
            id,
            enclave: d.enclave,
            fee_paid: paid,
        }]);
    }
    // The callback's part stays held until the end of the block, when it
    // buys the contract command that delivers the datagram.
    let callback_fee = r.callback.as_ref().map_or(Amount::ZERO, |c| c.fee);
    let paid = Amount(r.escrow.0 - callback_fee.0);
    cx.o.credit(&operator, paid)?;
    r.fee_paid = paid;
    r.escrow = callback_fee;
    if r.callback.is_some() {
        let mut ids = cx.o.oracle_ids(&callbacks_key());
        ids.push(id);
        cx.o.set_oracle_ids(callbacks_key(), ids);
    }
    r.state = match &d.body {
        Body::Public(Outcome::Failed { .. }) => RequestState::Failed,
        _ => RequestState::Delivered,
    };
    r.height = Some(height);
    r.datagram = Some(d.clone());
    cx.o.unpend(&r);
    cx.o.set_oracle_request(&r);
    let mut events = vec![Event::OracleDelivered {
        id,
        enclave: d.enclave,
        state: r.state,
        body: d.body.clone(),
        fee_paid: paid,
    }];
    if let Some(c) = &r.callback {
        events.push(Event::OracleCallback {
            id,
            contract: c.contract,
            fee: c.fee,
        });
    }
    Ok(events)
}

fn cancel(cx: &mut Context<'_>, from: Address, id: u64) -> Result<Event, TxError> {
    let mut r = cx.o.oracle_request(id).ok_or(Error::NotFound(id))?;
    if r.requester != from {
        return Err(Error::NotRequester(id).into());
    }
    if r.state != RequestState::Pending {
        return Err(Error::WrongState { id, state: r.state }.into());
    }
    let kept = r.escrow.min(cx.params().oracle.cancel_fee);
    let refund = Amount(r.escrow.0 - kept.0);
    cx.o.credit(&from, refund)?;
    r.escrow = kept;
    r.refunded = refund;
    r.state = RequestState::Cancelled;
    r.height = Some(cx.env.height);
    cx.o.unpend(&r);
    cx.o.set_oracle_request(&r);
    Ok(Event::OracleCancelled {
        id,
        refunded: refund,
    })
}

impl State {
    /// Oracle request `id`, if any.
    pub fn oracle_request(&self, id: u64) -> Option<OracleRequest> {
        self.read().oracle_request(id)
    }
    /// The id the next oracle request will get.
    pub fn oracle_next_id(&self) -> u64 {
        self.read().oracle_next()
    }
    /// Ids of the requests pending on `enclave`, oldest first.
    pub fn oracle_pending(&self, enclave: &PublicKey) -> Vec<u64> {
        self.read().oracle_ids(&pending_key(enclave))
    }
    /// The enclaves that would serve a request made in the next block.
    pub fn oracle_providers(&self, height: Height) -> Vec<PublicKey> {
        self.read().oracle_providers(height)
    }
}

#[cfg(test)]
mod tests;
