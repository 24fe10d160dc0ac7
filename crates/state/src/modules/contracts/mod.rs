//! Confidential contracts on chain (seed 004 §4): the chain is the event
//! log; enclaves hold the keys and the plaintext.
//!
//! - **Deploy**: the code is stored (its hash and size public), the contract
//!   gets an id and an executor: `providers[H(id) mod n]`, the same provider
//!   set as the oracle's (enclaves with a market offer, registered, not
//!   unbonding, not expired). The chain needs a gatekeeper for that
//!   (`params.contracts.gatekeeper`, the genesis node of §4.4).
//! - **Keys**: the gatekeeper's host posts the contract's command key, which
//!   its enclave derived from the root key and signed (`PublishKey`, checked
//!   against the genesis gatekeeper's identity). The executor's operator asks
//!   for the contract key with its enclave's attestation (`RequestKey`), and
//!   the gatekeeper's operator posts it sealed to that enclave (`GrantKey`).
//!   Both are opaque here: the enclaves check them (attestation, signature,
//!   commitment), the chain only who may post them.
//! - **Commands** are transactions: sealed to the contract's key, bound to
//!   chain, contract, sender and the transaction's nonce, numbered in chain
//!   order. The sender pays for `fuel` up front (`escrow` = fuel at
//!   `price_per_million`).
//! - **Receipts**: the executor's enclave signs what each command did (code,
//!   instructions, sealed reply, egress messages, state hash). The chain
//!   accepts the receipt of the next command only, from the assigned enclave
//!   only; it pays the instructions used to the executor's operator and
//!   returns the rest of the escrow. Egress messages to the chain (target 0)
//!   become events.
//! - **Checkpoints**: every `checkpoint_every` commands the executor posts
//!   the state encrypted under the contract's state key, signed; a new
//!   executor resumes from the latest one.
//! - **Key rotation** (§4.7): at each era's first block a leader, picked
//!   from the state root, generates the era's root key and commits to it;
//!   the next set takes it and confirms; then every contract gets its key
//!   of the era and its executor re-checkpoints under it. Contract keys wait
//!   meanwhile; past `rotation_timeout_blocks` whoever held it up is slashed
//!   and it starts over without them.
//! - **Responsiveness** (§4.10): per era, enclaves active in fewer than a
//!   quarter of the busiest one's windows are slashed.
//!
//! Escrows held for commands are counted in [`State::total_supply`].

use crate::TxError;
use crate::context::{Context, Overlay, State, key};
use crate::module::Module;
use crate::types::Transaction;
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Height, PublicKey, Signature};

pub mod types;
pub use types::*;

/// The contracts module.
pub(crate) struct Contracts;

fn contract_key(id: u64) -> Hash {
    key(Contracts::KEY_PREFIX, "contract", &[&id.to_le_bytes()])
}
fn code_key(id: u64) -> Hash {
    key(Contracts::KEY_PREFIX, "code", &[&id.to_le_bytes()])
}
/// The state key of command `seq` of contract `id` (its record, with the
/// command log after it, is what an executor's light client checks).
pub fn command_key(id: u64, seq: u64) -> Hash {
    key(
        Contracts::KEY_PREFIX,
        "command",
        &[&id.to_le_bytes(), &seq.to_le_bytes()],
    )
}
fn checkpoint_key(id: u64) -> Hash {
    key(Contracts::KEY_PREFIX, "checkpoint", &[&id.to_le_bytes()])
}
fn next_key() -> Hash {
    key(Contracts::KEY_PREFIX, "next", &[])
}
fn request_key(id: u64, executor: &PublicKey, era: u64) -> Hash {
    key(
        Contracts::KEY_PREFIX,
        "key-request",
        &[&id.to_le_bytes(), &executor.0, &era.to_le_bytes()],
    )
}
fn grant_key(id: u64, executor: &PublicKey, era: u64) -> Hash {
    key(
        Contracts::KEY_PREFIX,
        "key-grant",
        &[&id.to_le_bytes(), &executor.0, &era.to_le_bytes()],
    )
}
fn key_requests_key() -> Hash {
    key(Contracts::KEY_PREFIX, "key-requests", &[])
}
fn endpoint_key(enclave: &PublicKey) -> Hash {
    key(Contracts::KEY_PREFIX, "endpoint", &[&enclave.0])
}
fn gatekeepers_key() -> Hash {
    key(Contracts::KEY_PREFIX, "gatekeepers", &[])
}
fn root_request_key(enclave: &PublicKey) -> Hash {
    key(Contracts::KEY_PREFIX, "root-request", &[&enclave.0])
}
fn root_grant_key(enclave: &PublicKey) -> Hash {
    key(Contracts::KEY_PREFIX, "root-grant", &[&enclave.0])
}
fn signed_key_key(id: u64) -> Hash {
    key(Contracts::KEY_PREFIX, "signed-key", &[&id.to_le_bytes()])
}
fn activity_key(era: u64) -> Hash {
    key(Contracts::KEY_PREFIX, "activity", &[&era.to_le_bytes()])
}
fn waiting_key() -> Hash {
    key(Contracts::KEY_PREFIX, "waiting", &[])
}
fn awaiting_key() -> Hash {
    key(Contracts::KEY_PREFIX, "awaiting-key", &[])
}

impl Overlay<'_> {
    pub(crate) fn contract(&self, id: u64) -> Option<ContractInfo> {
        match self.get(&contract_key(id)) {
            Some(crate::Record::Contracts(Record::Contract(c))) => Some(*c),
            _ => None,
        }
    }
    fn set_contract(&mut self, c: &ContractInfo) {
        self.put(contract_key(c.id), Record::Contract(Box::new(c.clone())));
    }
    fn contract_command(&self, id: u64, seq: u64) -> Option<CommandRecord> {
        match self.get(&command_key(id, seq)) {
            Some(crate::Record::Contracts(Record::Command(c))) => Some(*c),
            _ => None,
        }
    }
    fn set_contract_command(&mut self, c: &CommandRecord) {
        self.put(
            command_key(c.contract, c.seq),
            Record::Command(Box::new(c.clone())),
        );
    }
    fn contract_blob(&self, k: &Hash) -> Option<Vec<u8>> {
        match self.get(k) {
            Some(crate::Record::Contracts(Record::Blob(b) | Record::Code(b))) => Some(b),
            _ => None,
        }
    }
    fn contract_ids(&self, k: &Hash) -> Vec<u64> {
        match self.get(k) {
            Some(crate::Record::Contracts(Record::Ids(v))) => v,
            _ => vec![],
        }
    }
    fn set_contract_ids(&mut self, k: Hash, ids: Vec<u64>) {
        if ids.is_empty() {
            self.delete(k);
        } else {
            self.put(k, Record::Ids(ids));
        }
    }
    /// Key requests waiting for a grant: (contract, era).
    fn key_requests(&self) -> Vec<(u64, u64)> {
        match self.get(&key_requests_key()) {
            Some(crate::Record::Contracts(Record::KeyRequests(v))) => v,
            _ => vec![],
        }
    }
    fn set_key_requests(&mut self, v: Vec<(u64, u64)>) {
        if v.is_empty() {
            self.delete(key_requests_key());
        } else {
            self.put(key_requests_key(), Record::KeyRequests(v));
        }
    }
    fn contracts_awaiting_key(&self) -> Vec<u64> {
        self.contract_ids(&awaiting_key())
    }
    fn set_contracts_awaiting_key(&mut self, ids: Vec<u64>) {
        self.set_contract_ids(awaiting_key(), ids);
    }
    /// Marks whether contract `c` has commands waiting for a receipt.
    fn set_waiting(&mut self, c: &mut ContractInfo, height: Height) {
        let mut ids = self.contract_ids(&waiting_key());
        ids.retain(|&i| i != c.id);
        if c.applied < c.commands {
            c.waiting_since = Some(height);
            ids.push(c.id);
        } else {
            c.waiting_since = None;
        }
        self.set_contract_ids(waiting_key(), ids);
    }
    fn contracts_next(&self) -> u64 {
        match self.get(&next_key()) {
            Some(crate::Record::Contracts(Record::Next(n))) => n,
            _ => 1,
        }
    }
    /// The gatekeepers: the genesis one and those elected at genesis until
    /// the set is first written.
    fn gatekeepers(&self, p: &ContractParams) -> GatekeeperSet {
        match self.get(&gatekeepers_key()) {
            Some(crate::Record::Contracts(Record::Gatekeepers(g))) => *g,
            _ => GatekeeperSet {
                members: p.gatekeeper.iter().map(|g| g.identity).collect(),
                candidates: p.elected.clone(),
                ..GatekeeperSet::default()
            },
        }
    }
    fn set_gatekeepers(&mut self, g: GatekeeperSet) {
        self.put(gatekeepers_key(), Record::Gatekeepers(Box::new(g)));
    }
    fn activity(&self, era: u64) -> std::collections::BTreeMap<PublicKey, u8> {
        match self.get(&activity_key(era)) {
            Some(crate::Record::Contracts(Record::Activity(a))) => a,
            _ => Default::default(),
        }
    }
    /// Whether `enclave` has at least `bar` of stake locked.
    fn staked_as_gatekeeper(&self, enclave: &PublicKey, bar: Amount) -> bool {
        self.enclave(enclave).is_some_and(|e| e.stake >= bar)
    }
    /// The operator of `enclave` if it is registered and active now.
    fn active_operator(&self, enclave: &PublicKey, height: u64) -> Option<Address> {
        self.enclave(enclave)
            .filter(|e| e.unbonding_until.is_none() && e.expires_at >= height)
            .map(|e| e.operator)
    }
}

impl Module for Contracts {
    const NAME: &'static str = "contracts";
    const KEY_PREFIX: &'static str = "proctor/contracts";
    const CODES: std::ops::RangeInclusive<i32> = 1300..=1349;
    type Call = Call;

    fn apply(
        cx: &mut Context<'_>,
        from: Address,
        tx: &Transaction,
        call: &Call,
    ) -> Result<Vec<crate::Event>, TxError> {
        let events = match call {
            Call::Deploy { code } => vec![deploy(cx, from, code)?],
            Call::PublishKey { key } => vec![publish_key(cx, key)?],
            Call::RequestKey {
                contract,
                era,
                attestation,
            } => vec![request_key_call(cx, from, *contract, *era, attestation)?],
            Call::GrantKey {
                contract,
                era,
                handover,
            } => vec![grant(cx, from, *contract, *era, handover)?],
            Call::Command {
                contract,
                fuel,
                escrow,
                init,
                reply_to,
                sealed,
            } => {
                let c = CommandRecord {
                    contract: *contract,
                    seq: 0,
                    era: 0,
                    sender: from,
                    nonce: tx.nonce,
                    height: cx.env.height,
                    fuel: *fuel,
                    init: *init,
                    oracle: false,
                    reply_to: *reply_to,
                    sealed: sealed.clone(),
                    escrow: *escrow,
                    receipt: None,
                    paid: Amount::ZERO,
                    refunded: Amount::ZERO,
                    log: Hash::ZERO,
                    payer: from,
                };
                vec![command(cx, c)?]
            }
            Call::Receipt { receipt, signature } => receipt_call(cx, receipt, signature)?,
            Call::Checkpoint {
                checkpoint,
                executor,
                signature,
            } => vec![checkpoint_call(cx, checkpoint, executor, signature)?],
            Call::SetEndpoint { enclave, url } => vec![set_endpoint(cx, from, enclave, url)?],
            Call::Heartbeat {
                enclave,
                era,
                window,
                signature,
            } => vec![heartbeat(cx, enclave, *era, *window, signature)?],
            Call::ElectGatekeeper { enclave } => vec![elect(cx, from, enclave)?],
            Call::RequestRoot {
                enclave,
                attestation,
            } => vec![request_root(cx, from, enclave, attestation)?],
            Call::HandOverRoot { to, handover } => vec![hand_over_root(cx, from, to, handover)?],
            Call::ConfirmReady { enclave, signature } => confirm_ready(cx, enclave, signature)?,
            Call::RetireGatekeeper { enclave } => vec![retire(cx, from, enclave)?],
            Call::ForwardSecrecy { on } => vec![forward_secrecy(cx, from, *on)?],
            Call::CommitRotation {
                enclave,
                era,
                commitment,
                signature,
            } => commit_rotation(cx, enclave, *era, commitment, signature)?,
        };
        Ok(crate::context::lift(events))
    }

    /// Contracts whose commands waited past `executor_timeout_blocks` get
    /// another executor (when there is another provider).
    fn end_block(cx: &mut Context<'_>) -> Result<Vec<crate::Event>, TxError> {
        let height = cx.env.height;
        let timeout = cx.params().contracts.executor_timeout_blocks;
        let mut events = oracle_commands(cx)?;
        events.extend(responsiveness(cx)?);
        events.extend(rotation_clock(cx)?);
        for id in cx.o.contract_ids(&waiting_key()) {
            let Some(mut c) = cx.o.contract(id) else {
                continue;
            };
            if c.waiting_since
                .is_none_or(|w| w.saturating_add(timeout) >= height)
            {
                continue;
            }
            let others: Vec<PublicKey> =
                cx.o.oracle_providers(height)
                    .into_iter()
                    .filter(|p| *p != c.executor)
                    .collect();
            if others.is_empty() {
                continue;
            }
            let h = Hash::tagged(
                "proctor/contracts/reassign",
                &[&id.to_le_bytes(), &height.to_le_bytes()],
            );
            let pick = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"));
            let to = others[(pick % others.len() as u64) as usize];
            let from = std::mem::replace(&mut c.executor, to);
            c.waiting_since = Some(height);
            cx.o.set_contract(&c);
            events.push(Event::ContractReassigned { id, from, to });
        }
        Ok(crate::context::lift(events))
    }
}

fn deploy(cx: &mut Context<'_>, from: Address, code: &[u8]) -> Result<Event, Error> {
    let p = &cx.params().contracts;
    if p.gatekeeper.is_none() {
        return Err(Error::NoGatekeeper);
    }
    if code.len() as u64 > p.max_code_bytes {
        return Err(Error::BadCode(format!(
            "{} bytes, more than the chain's {}",
            code.len(),
            p.max_code_bytes
        )));
    }
    if !code.starts_with(b"\0asm") {
        return Err(Error::BadCode("not a WebAssembly module".into()));
    }
    let height = cx.env.height;
    let providers = cx.o.oracle_providers(height);
    if providers.is_empty() {
        return Err(Error::NoExecutor);
    }
    let id = cx.o.contracts_next();
    let h = Hash::tagged("proctor/contracts/assign", &[&id.to_le_bytes()]);
    let pick = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"));
    let executor = providers[(pick % providers.len() as u64) as usize];
    let c = ContractInfo {
        id,
        owner: from,
        code_hash: Hash::of(code),
        code_len: code.len() as u64,
        executor,
        created: height,
        key: None,
        era: 0,
        commands: 0,
        applied: 0,
        state_hash: Hash::ZERO,
        checkpoint: None,
        waiting_since: None,
        log: Hash::ZERO,
    };
    cx.o.set_contract(&c);
    cx.o.put(code_key(id), Record::Code(code.to_vec()));
    cx.o.put(next_key(), Record::Next(id + 1));
    let mut awaiting = cx.o.contracts_awaiting_key();
    awaiting.push(id);
    cx.o.set_contracts_awaiting_key(awaiting);
    Ok(Event::ContractDeployed {
        id,
        owner: from,
        code_hash: c.code_hash,
        executor,
    })
}

fn publish_key(cx: &mut Context<'_>, k: &ContractPublicKey) -> Result<Event, Error> {
    let mut c =
        cx.o.contract(k.contract)
            .ok_or(Error::NotFound(k.contract))?;
    let g = cx.o.gatekeepers(&cx.params().contracts);
    if let Some(r) = &g.rotation {
        return Err(Error::Rotating(r.era));
    }
    if !g.members.contains(&k.gatekeeper) || k.chain != cx.state.genesis_hash || k.era != g.era {
        return Err(Error::NotGatekeeper);
    }
    k.gatekeeper
        .verify(&k.signing_bytes(), &k.signature)
        .map_err(|_| Error::BadSignature)?;
    // Once per era: the first key, then the key of each new era.
    if c.key.is_some() && c.era >= k.era {
        return Err(Error::KeyPublished(k.contract));
    }
    c.key = Some(k.key);
    c.era = k.era;
    cx.o.set_contract(&c);
    cx.o.put(signed_key_key(c.id), Record::SignedKey(Box::new(k.clone())));
    note_activity(cx, &k.gatekeeper);
    let mut awaiting = cx.o.contracts_awaiting_key();
    awaiting.retain(|&i| i != c.id);
    cx.o.set_contracts_awaiting_key(awaiting);
    Ok(Event::ContractKeyPublished {
        id: c.id,
        key: k.key,
    })
}

fn request_key_call(
    cx: &mut Context<'_>,
    from: Address,
    id: u64,
    era: u64,
    attestation: &[u8],
) -> Result<Event, Error> {
    let c = cx.o.contract(id).ok_or(Error::NotFound(id))?;
    if cx.o.active_operator(&c.executor, cx.env.height) != Some(from) {
        return Err(Error::NotOperator(id, "executor"));
    }
    if attestation.len() > MAX_HANDOVER {
        return Err(Error::BadCommand("attestation too large".into()));
    }
    if era > c.era {
        return Err(Error::BadCommand(format!(
            "contract {id}'s key is of era {}: there is none of era {era}",
            c.era
        )));
    }
    if era < c.era && cx.o.gatekeepers(&cx.params().contracts).forward_secrecy {
        return Err(Error::BadCommand(format!(
            "under forward secrecy, keys of past eras ({era}) are destroyed: ask for era {}",
            c.era
        )));
    }
    cx.o.put(
        request_key(id, &c.executor, era),
        Record::Blob(attestation.to_vec()),
    );
    let mut pending = cx.o.key_requests();
    if !pending.contains(&(id, era)) {
        pending.push((id, era));
        cx.o.set_key_requests(pending);
    }
    note_activity(cx, &c.executor);
    Ok(Event::ContractKeyRequested {
        id,
        era,
        executor: c.executor,
    })
}

fn grant(
    cx: &mut Context<'_>,
    from: Address,
    id: u64,
    era: u64,
    handover: &[u8],
) -> Result<Event, Error> {
    let c = cx.o.contract(id).ok_or(Error::NotFound(id))?;
    let height = cx.env.height;
    let g = cx.o.gatekeepers(&cx.params().contracts);
    if let Some(r) = &g.rotation {
        return Err(Error::Rotating(r.era));
    }
    let gk = g
        .members
        .into_iter()
        .find(|m| cx.o.active_operator(m, height) == Some(from))
        .ok_or(Error::NotOperator(id, "gatekeeper"))?;
    if handover.len() > MAX_HANDOVER {
        return Err(Error::BadCommand("handover too large".into()));
    }
    cx.o.delete(request_key(id, &c.executor, era));
    cx.o.put(
        grant_key(id, &c.executor, era),
        Record::Blob(handover.to_vec()),
    );
    let mut pending = cx.o.key_requests();
    pending.retain(|p| *p != (id, era));
    cx.o.set_key_requests(pending);
    note_activity(cx, &gk);
    Ok(Event::ContractKeyGranted { id, era })
}

fn command(cx: &mut Context<'_>, cmd: CommandRecord) -> Result<Event, TxError> {
    let id = cmd.contract;
    let c = cx.o.contract(id).ok_or(Error::NotFound(id))?;
    if c.key.is_none() {
        return Err(Error::NoKey(id).into());
    }
    let p = &cx.params().contracts;
    if cmd.sealed.len() as u64 > p.max_command_bytes {
        return Err(Error::BadCommand(format!(
            "{} sealed bytes, more than the chain's {}",
            cmd.sealed.len(),
            p.max_command_bytes
        ))
        .into());
    }
    if cmd.fuel == 0 || cmd.fuel > p.max_fuel {
        return Err(Error::BadCommand(format!(
            "fuel must be between 1 and the chain's {}",
            p.max_fuel
        ))
        .into());
    }
    let cost = p.cost(cmd.fuel).ok_or(TxError::Overflow)?;
    if cmd.escrow != cost {
        return Err(Error::BadCommand(format!(
            "escrow {} does not match the fuel's cost {cost}",
            cmd.escrow
        ))
        .into());
    }
    if cmd.init && (c.commands != 0 || cmd.sender != c.owner) {
        return Err(Error::BadCommand("init is the owner's first command only".into()).into());
    }
    Ok(enqueue(cx, c, cmd))
}

/// Appends `cmd` to contract `c`'s command log.
fn enqueue(cx: &mut Context<'_>, mut c: ContractInfo, mut cmd: CommandRecord) -> Event {
    let id = c.id;
    c.commands += 1;
    cmd.seq = c.commands;
    cmd.era = c.era;
    cmd.log = next_log(&c.log, &cmd.input().hash(id, cmd.seq));
    c.log = cmd.log;
    if c.waiting_since.is_none() {
        cx.o.set_waiting(&mut c, cx.env.height);
    }
    cx.o.set_contract(&c);
    cx.o.set_contract_command(&cmd);
    Event::ContractCommand {
        id,
        seq: cmd.seq,
        sender: cmd.sender,
    }
}

/// Checks that `executor` is `c`'s executor, active, and signed `bytes`.
fn check_executor(
    cx: &Context<'_>,
    c: &ContractInfo,
    executor: &PublicKey,
    bytes: &[u8],
    signature: &Signature,
) -> Result<Address, Error> {
    let operator =
        cx.o.active_operator(executor, cx.env.height)
            .filter(|_| *executor == c.executor)
            .ok_or(Error::NotExecutor(*executor))?;
    executor
        .verify(bytes, signature)
        .map_err(|_| Error::BadSignature)?;
    Ok(operator)
}

fn receipt_call(
    cx: &mut Context<'_>,
    r: &Receipt,
    signature: &Signature,
) -> Result<Vec<Event>, TxError> {
    let id = r.contract;
    let mut c = cx.o.contract(id).ok_or(Error::NotFound(id))?;
    let operator = check_executor(
        cx,
        &c,
        &r.executor,
        &r.signing_bytes(&cx.state.genesis_hash),
        signature,
    )?;
    if r.seq != c.applied + 1 {
        return Err(Error::WrongSeq {
            expected: c.applied + 1,
            got: r.seq,
        }
        .into());
    }
    let mut cmd = cx.o.contract_command(id, r.seq).ok_or(Error::WrongSeq {
        expected: c.applied + 1,
        got: r.seq,
    })?;
    if r.log != cmd.log {
        return Err(Error::BadReceipt(
            "the enclave applied another command log than the chain's (commands fed out of order, twice or forged)".into(),
        )
        .into());
    }
    if r.instructions > cmd.fuel {
        return Err(Error::BadReceipt(format!(
            "{} instructions, more than the command's fuel {}",
            r.instructions, cmd.fuel
        ))
        .into());
    }
    if r.reply.len() > MAX_REPLY
        || r.emits.len() > MAX_EMITS
        || r.emits
            .iter()
            .any(|e| e.0.len() > MAX_EMIT || e.0.len() < 8)
    {
        return Err(Error::BadReceipt("reply or messages over the limits".into()).into());
    }
    if r.code != 0 && !r.emits.is_empty() {
        return Err(Error::BadReceipt("a command that did not apply emits nothing".into()).into());
    }
    let paid = cx
        .params()
        .contracts
        .cost(r.instructions)
        .ok_or(TxError::Overflow)?
        .min(cmd.escrow);
    let mut refund = Amount(cmd.escrow.0 - paid.0);
    cx.o.credit(&operator, paid)?;
    cmd.escrow = Amount::ZERO;
    cmd.paid = paid;
    cmd.receipt = Some(r.clone());
    c.applied = r.seq;
    c.state_hash = r.state_hash;
    // Progress: the executor's clock starts again (or stops, when done).
    cx.o.set_waiting(&mut c, cx.env.height);
    cx.o.set_contract(&c);
    note_activity(cx, &r.executor);
    let mut events = vec![Event::ContractApplied {
        id,
        seq: r.seq,
        code: r.code,
        instructions: r.instructions,
        paid,
        state_hash: r.state_hash,
    }];
    let egress_fuel = cx.params().contracts.egress_fuel;
    let egress_cost = cx
        .params()
        .contracts
        .cost(egress_fuel)
        .ok_or(TxError::Overflow)?;
    for (i, e) in r.emits.iter().enumerate() {
        let target = u64::from_le_bytes(e.0[..8].try_into().expect("8 bytes"));
        let payload = e.0[8..].to_vec();
        if target == 0 {
            events.push(Event::ContractEmitted {
                id,
                seq: r.seq,
                target,
                payload,
            });
            continue;
        }
        // To another contract: sealed to its key inside the emitting
        // enclave, delivered as its command, paid from this command's
        // unused escrow.
        let max = cx.params().contracts.max_command_bytes;
        let delivery = match cx.o.contract(target).filter(|t| t.key.is_some()) {
            None => Err("no such contract, or it has no key yet".to_string()),
            Some(_) if refund < egress_cost => Err(format!(
                "the unused escrow {refund} does not cover {egress_cost}"
            )),
            Some(_) if payload.len() as u64 > max => Err("larger than a command".to_string()),
            Some(t) => Ok(t),
        };
        match delivery {
            Err(reason) => events.push(Event::ContractEgressDropped {
                id,
                seq: r.seq,
                to: target,
                reason,
            }),
            Ok(t) => {
                refund = Amount(refund.0 - egress_cost.0);
                let egress = CommandRecord {
                    contract: target,
                    seq: 0,
                    era: 0,
                    sender: contract_address(id),
                    nonce: egress_nonce(r.seq, i),
                    height: cx.env.height,
                    fuel: egress_fuel,
                    init: false,
                    oracle: false,
                    reply_to: cmd.reply_to,
                    sealed: payload,
                    escrow: egress_cost,
                    receipt: None,
                    paid: Amount::ZERO,
                    refunded: Amount::ZERO,
                    log: Hash::ZERO,
                    payer: cmd.payer,
                };
                events.push(enqueue(cx, t, egress));
            }
        }
    }
    cx.o.credit(&cmd.payer, refund)?;
    cmd.refunded = refund;
    cx.o.set_contract_command(&cmd);
    Ok(events)
}

/// The datagrams the oracle delivered in this block to requests with a
/// callback become commands of the callback's contract (seed 004 §4.8:
/// "oracle datagrams can target a contract"), from [`oracle_address`],
/// the message [`oracle_message`] in the clear. The callback's fee buys
/// the fuel at the chain's price (up to `max_fuel`); what it does not use
/// goes back to the requester with the receipt, and the rounding to the
/// block. A callback that cannot be delivered gives its fee to the block.
fn oracle_commands(cx: &mut Context<'_>) -> Result<Vec<Event>, TxError> {
    let mut events = Vec::new();
    for (r, held) in cx.o.take_oracle_callbacks() {
        let Some(cb) = r.callback.clone() else {
            cx.fees = cx.fees.checked_add(held).ok_or(TxError::Overflow)?;
            continue;
        };
        let p = cx.params().contracts.clone();
        let fuel = (held.0.saturating_mul(1_000_000) / p.price_per_million.0.max(1))
            .min(p.max_fuel as u128) as u64;
        let escrow = p.cost(fuel).ok_or(TxError::Overflow)?;
        let msg = oracle_message(&r).unwrap_or_default();
        let target = cx.o.contract(cb.contract).filter(|c| c.key.is_some());
        let refused = match &target {
            None => Some("no such contract, or it has no key yet".to_string()),
            Some(_) if fuel == 0 => Some(format!("a callback fee of {held} buys no fuel")),
            Some(_) if msg.len() as u64 > p.max_command_bytes => {
                Some("the datagram is larger than a command".to_string())
            }
            Some(_) => None,
        };
        let (Some(c), None) = (target, refused.clone()) else {
            cx.fees = cx.fees.checked_add(held).ok_or(TxError::Overflow)?;
            events.push(Event::ContractOracleDropped {
                request: r.id,
                contract: cb.contract,
                reason: refused.unwrap_or_default(),
            });
            continue;
        };
        cx.fees = cx
            .fees
            .checked_add(Amount(held.0 - escrow.0))
            .ok_or(TxError::Overflow)?;
        let cmd = CommandRecord {
            contract: c.id,
            seq: 0,
            era: 0,
            sender: oracle_address(),
            nonce: r.id,
            height: cx.env.height,
            fuel,
            init: false,
            oracle: true,
            reply_to: EncryptionKey([0; 32]),
            sealed: msg,
            escrow,
            receipt: None,
            paid: Amount::ZERO,
            refunded: Amount::ZERO,
            log: Hash::ZERO,
            payer: r.requester,
        };
        events.push(enqueue(cx, c, cmd));
    }
    Ok(events)
}

fn checkpoint_call(
    cx: &mut Context<'_>,
    cp: &Checkpoint,
    executor: &PublicKey,
    signature: &Signature,
) -> Result<Event, Error> {
    let id = cp.contract;
    let mut c = cx.o.contract(id).ok_or(Error::NotFound(id))?;
    check_executor(
        cx,
        &c,
        executor,
        &cp.signing_bytes(&cx.state.genesis_hash),
        signature,
    )?;
    match &cp.parts {
        None if cp.ciphertext.len() as u64 > cx.params().contracts.max_checkpoint_bytes => {
            return Err(Error::BadCheckpoint(format!(
                "larger than the chain's {} bytes inline: send it as blobs (parts)",
                cx.params().contracts.max_checkpoint_bytes
            )));
        }
        Some(p)
            if !cp.ciphertext.is_empty()
                || p.blobs.is_empty()
                || p.blobs.len() > MAX_PARTS
                || p.len > MAX_PARTS_BYTES =>
        {
            return Err(Error::BadCheckpoint(format!(
                "parts: 1 to {MAX_PARTS} blobs of at most {MAX_PARTS_BYTES} bytes in all, and no inline ciphertext"
            )));
        }
        _ => {}
    }
    // After the last one, or at the same command under a newer era's key
    // (the re-checkpoint after a key rotation).
    let last = match cx.o.get(&checkpoint_key(id)) {
        Some(crate::Record::Contracts(Record::Checkpoint(last))) => Some(last),
        _ => None,
    };
    let fresh = last.as_ref().is_none_or(|last| {
        cp.applied > last.applied || (cp.applied == last.applied && cp.era > last.era)
    });
    if cp.applied > c.applied || !fresh || cp.era != c.era {
        return Err(Error::BadCheckpoint(format!(
            "at command {} of era {}: not after the last checkpoint, past the last receipt ({}), or not under the contract's key of era {}",
            cp.applied, cp.era, c.applied, c.era
        )));
    }
    let log = match cp.applied {
        0 => Hash::ZERO,
        n => cx.o.contract_command(id, n).map_or(Hash::ZERO, |c| c.log),
    };
    if cp.log != log {
        return Err(Error::BadCheckpoint(
            "its command log is not the chain's".into(),
        ));
    }
    c.checkpoint = Some((cp.applied, cx.env.height));
    cx.o.set_contract(&c);
    note_activity(cx, executor);
    cx.o.put(checkpoint_key(id), Record::Checkpoint(Box::new(cp.clone())));
    let blobs = |c: &Checkpoint| c.parts.as_ref().map_or(vec![], |p| p.blobs.clone());
    Ok(Event::ContractCheckpointed {
        id,
        applied: cp.applied,
        state_hash: cp.state_hash,
        parts: blobs(cp),
        replaced: last.map_or(vec![], |l| blobs(&l)),
    })
}

fn elect(cx: &mut Context<'_>, from: Address, enclave: &PublicKey) -> Result<Event, Error> {
    if cx.params().governance != Some(from) {
        return Err(Error::Gatekeepers(
            "only the governance account elects gatekeepers".into(),
        ));
    }
    if cx.params().contracts.gatekeeper.is_none() {
        return Err(Error::NoGatekeeper);
    }
    if cx.o.active_operator(enclave, cx.env.height).is_none() {
        return Err(Error::Gatekeepers(format!(
            "{enclave} is not a registered, active enclave"
        )));
    }
    let bar = cx.params().contracts.gatekeeper_stake;
    if !cx.o.staked_as_gatekeeper(enclave, bar) {
        return Err(Error::Gatekeepers(format!(
            "{enclave} has less stake locked than a gatekeeper's {bar}"
        )));
    }
    let mut g = cx.o.gatekeepers(&cx.params().contracts);
    if g.members.contains(enclave) || g.candidates.contains(enclave) {
        return Err(Error::Gatekeepers(format!("{enclave} is already elected")));
    }
    g.candidates.push(*enclave);
    cx.o.set_gatekeepers(g);
    Ok(Event::GatekeeperElected { enclave: *enclave })
}

fn request_root(
    cx: &mut Context<'_>,
    from: Address,
    enclave: &PublicKey,
    attestation: &[u8],
) -> Result<Event, Error> {
    let g = cx.o.gatekeepers(&cx.params().contracts);
    let rotating = g
        .rotation
        .as_ref()
        .is_some_and(|r| r.next.contains(enclave) && r.leader != *enclave);
    if !g.candidates.contains(enclave) && !rotating {
        return Err(Error::Gatekeepers(format!(
            "{enclave} is not an elected gatekeeper, nor one to receive a rotated key"
        )));
    }
    if cx.o.active_operator(enclave, cx.env.height) != Some(from)
        || attestation.len() > MAX_HANDOVER
    {
        return Err(Error::Gatekeepers(
            "only the enclave's operator asks, with an attestation of at most 64 KiB".into(),
        ));
    }
    cx.o.put(
        root_request_key(enclave),
        Record::Blob(attestation.to_vec()),
    );
    Ok(Event::GatekeeperRootRequested { enclave: *enclave })
}

fn hand_over_root(
    cx: &mut Context<'_>,
    from: Address,
    to: &PublicKey,
    handover: &[u8],
) -> Result<Event, Error> {
    let g = cx.o.gatekeepers(&cx.params().contracts);
    let height = cx.env.height;
    let member = match &g.rotation {
        // During a rotation: the leader hands the new key to the next
        // era's members, once it committed to it.
        Some(r) => {
            if !r.next.contains(to) || r.leader == *to {
                return Err(Error::Rotating(r.era));
            }
            if cx.o.active_operator(&r.leader, height) != Some(from) {
                return Err(Error::NotOperator(0, "rotation leader"));
            }
            if r.commitment.is_none() {
                return Err(Error::Gatekeepers(
                    "the leader commits to the new key before handing it over".into(),
                ));
            }
            r.leader
        }
        None => {
            if !g.candidates.contains(to) {
                return Err(Error::Gatekeepers(format!(
                    "{to} is not an elected gatekeeper"
                )));
            }
            g.members
                .iter()
                .find(|m| cx.o.active_operator(m, height) == Some(from))
                .copied()
                .ok_or(Error::NotOperator(0, "gatekeeper"))?
        }
    };
    if handover.len() > MAX_HANDOVER {
        return Err(Error::Gatekeepers("handover too large".into()));
    }
    cx.o.delete(root_request_key(to));
    cx.o.put(root_grant_key(to), Record::Blob(handover.to_vec()));
    note_activity(cx, &member);
    Ok(Event::GatekeeperRootHandedOver {
        to: *to,
        from: member,
    })
}

/// The commitment to the root key in force.
fn commitment_in_force(g: &GatekeeperSet, p: &ContractParams) -> Option<Hash> {
    g.commitment
        .or_else(|| p.gatekeeper.as_ref().map(|k| k.commitment))
}

fn confirm_ready(
    cx: &mut Context<'_>,
    enclave: &PublicKey,
    signature: &Signature,
) -> Result<Vec<Event>, Error> {
    let mut g = cx.o.gatekeepers(&cx.params().contracts);
    let chain = cx.state.genesis_hash;
    if let Some(r) = g.rotation.as_mut()
        && r.next.contains(enclave)
    {
        let commitment = r.commitment.ok_or_else(|| {
            Error::Gatekeepers("the rotation's leader has not committed to a key yet".into())
        })?;
        if r.confirmed.contains(enclave) {
            return Err(Error::Gatekeepers(format!("{enclave} already confirmed")));
        }
        enclave
            .verify(&ready_bytes(&chain, r.era, &commitment), signature)
            .map_err(|_| Error::BadSignature)?;
        r.confirmed.push(*enclave);
        cx.o.delete(root_grant_key(enclave));
        note_activity(cx, enclave);
        let mut events = vec![Event::GatekeeperReady { enclave: *enclave }];
        events.extend(finish_rotation(cx, g));
        return Ok(events);
    }
    if !g.candidates.contains(enclave) {
        return Err(Error::Gatekeepers(format!(
            "{enclave} is not an elected gatekeeper"
        )));
    }
    let commitment = commitment_in_force(&g, &cx.params().contracts).ok_or(Error::NoGatekeeper)?;
    enclave
        .verify(&ready_bytes(&chain, g.era, &commitment), signature)
        .map_err(|_| Error::BadSignature)?;
    g.candidates.retain(|c| c != enclave);
    g.members.push(*enclave);
    cx.o.set_gatekeepers(g);
    cx.o.delete(root_grant_key(enclave));
    note_activity(cx, enclave);
    Ok(vec![Event::GatekeeperReady { enclave: *enclave }])
}

fn forward_secrecy(cx: &mut Context<'_>, from: Address, on: bool) -> Result<Event, Error> {
    if cx.params().governance != Some(from) {
        return Err(Error::Gatekeepers(
            "only the governance account chooses forward secrecy".into(),
        ));
    }
    let mut g = cx.o.gatekeepers(&cx.params().contracts);
    g.forward_secrecy = on;
    cx.o.set_gatekeepers(g);
    Ok(Event::ForwardSecrecy { on })
}

fn retire(cx: &mut Context<'_>, from: Address, enclave: &PublicKey) -> Result<Event, Error> {
    if cx.params().governance != Some(from) {
        return Err(Error::Gatekeepers(
            "only the governance account retires gatekeepers".into(),
        ));
    }
    let mut g = cx.o.gatekeepers(&cx.params().contracts);
    if g.candidates.contains(enclave) {
        g.candidates.retain(|c| c != enclave);
    } else if g.members.contains(enclave) && !g.leaving.contains(enclave) {
        g.leaving.push(*enclave);
    } else {
        return Err(Error::Gatekeepers(format!(
            "{enclave} is not a gatekeeper, or already leaving"
        )));
    }
    cx.o.set_gatekeepers(g);
    Ok(Event::GatekeeperRetired { enclave: *enclave })
}

fn commit_rotation(
    cx: &mut Context<'_>,
    enclave: &PublicKey,
    era: u64,
    commitment: &Hash,
    signature: &Signature,
) -> Result<Vec<Event>, Error> {
    let mut g = cx.o.gatekeepers(&cx.params().contracts);
    let Some(r) = g.rotation.as_mut() else {
        return Err(Error::Gatekeepers("no key rotation is under way".into()));
    };
    if r.era != era || r.leader != *enclave || r.commitment.is_some() {
        return Err(Error::Gatekeepers(format!(
            "the rotation to era {} is led by {}, which committed {}",
            r.era,
            r.leader,
            if r.commitment.is_some() {
                "already"
            } else {
                "nothing yet"
            }
        )));
    }
    enclave
        .verify(
            &ready_bytes(&cx.state.genesis_hash, era, commitment),
            signature,
        )
        .map_err(|_| Error::BadSignature)?;
    r.commitment = Some(*commitment);
    r.confirmed.push(*enclave);
    note_activity(cx, enclave);
    let mut events = vec![Event::KeyRotationCommitted {
        era,
        commitment: *commitment,
    }];
    events.extend(finish_rotation(cx, g));
    Ok(events)
}

/// Saves `g`; when every member of its rotation holds the new key, the
/// rotation is ready: they are the gatekeepers of its era, and every
/// contract waits for its key of that era.
fn finish_rotation(cx: &mut Context<'_>, mut g: GatekeeperSet) -> Vec<Event> {
    let done = g
        .rotation
        .as_ref()
        .is_some_and(|r| r.next.iter().all(|m| r.confirmed.contains(m)));
    if !done {
        cx.o.set_gatekeepers(g);
        return vec![];
    }
    let r = g.rotation.take().expect("checked above");
    let commitment = r.commitment.expect("the leader confirmed");
    g.members = r.next;
    g.era = r.era;
    g.commitment = Some(commitment);
    let members = g.members.clone();
    g.leaving.retain(|l| members.contains(l));
    cx.o.set_gatekeepers(g);
    let mut awaiting = cx.o.contracts_awaiting_key();
    for id in 1..cx.o.contracts_next() {
        if cx
            .o
            .contract(id)
            .is_some_and(|c| c.key.is_some() && c.era < r.era && !awaiting.contains(&id))
        {
            awaiting.push(id);
        }
    }
    cx.o.set_contracts_awaiting_key(awaiting);
    vec![Event::KeyRotationReady {
        era: r.era,
        commitment,
        members,
    }]
}

/// At an era's first block, a rotation to it starts; past a rotation's
/// deadline, those who held it up are slashed and it starts over.
fn rotation_clock(cx: &mut Context<'_>) -> Result<Vec<Event>, TxError> {
    let height = cx.env.height;
    let p = cx.params().contracts.clone();
    if p.gatekeeper.is_none() {
        return Ok(vec![]);
    }
    if height > 0 && height.is_multiple_of(p.era_blocks) {
        return Ok(start_rotation(cx, height / p.era_blocks, 1));
    }
    let mut g = cx.o.gatekeepers(&p);
    let Some(r) = g.rotation.clone() else {
        return Ok(vec![]);
    };
    if height < r.deadline {
        return Ok(vec![]);
    }
    // Who held it up: the leader, if it never committed or left a member
    // that asked without the key; a member that never asked, or never
    // confirmed the key it was handed.
    let mut blamed = Vec::new();
    for m in r.next.iter().filter(|m| !r.confirmed.contains(m)) {
        let asked = cx.o.contract_blob(&root_request_key(m)).is_some();
        let handed = cx.o.contract_blob(&root_grant_key(m)).is_some();
        let who = if r.commitment.is_some() && (handed || !asked) {
            *m
        } else {
            r.leader
        };
        if !blamed.contains(&who) {
            blamed.push(who);
        }
    }
    if r.commitment.is_none() && !blamed.contains(&r.leader) {
        blamed.push(r.leader);
    }
    let mut events = Vec::new();
    for e in &blamed {
        let slashed = crate::modules::registry::take_stake(&mut cx.o, e, |stake| {
            crate::modules::market::bps(stake, p.slash_unresponsive_bps)
        })
        .unwrap_or(Amount::ZERO);
        cx.o.credit(&crate::modules::market::treasury(), slashed)?;
    }
    g.members.retain(|m| !blamed.contains(m));
    g.candidates.retain(|m| !blamed.contains(m));
    // Those it left out stay candidates for the next attempt.
    for m in r.next.iter().filter(|m| !blamed.contains(m)) {
        if !g.members.contains(m) && !g.candidates.contains(m) {
            g.candidates.push(*m);
        }
    }
    g.rotation = None;
    cx.o.set_gatekeepers(g);
    events.push(Event::KeyRotationTimedOut {
        era: r.era,
        attempt: r.attempt,
        slashed: blamed,
    });
    events.extend(start_rotation(cx, r.era, r.attempt + 1));
    Ok(events)
}

/// Starts attempt `attempt` of the rotation to `era`: the next era's set
/// is the members not leaving and the elected, registered and active; the
/// leader is picked from the state root among those holding the current
/// key (so the key history goes on), else among all of them.
fn start_rotation(cx: &mut Context<'_>, era: u64, attempt: u32) -> Vec<Event> {
    let height = cx.env.height;
    let p = cx.params().contracts.clone();
    let mut g = cx.o.gatekeepers(&p);
    let mut next: Vec<PublicKey> = Vec::new();
    for m in g
        .members
        .iter()
        .filter(|m| !g.leaving.contains(m))
        .chain(&g.candidates)
    {
        if cx.o.active_operator(m, height).is_some()
            && cx.o.staked_as_gatekeeper(m, p.gatekeeper_stake)
            && !next.contains(m)
        {
            next.push(*m);
        }
    }
    let holders: Vec<PublicKey> = next
        .iter()
        .filter(|m| g.members.contains(m))
        .copied()
        .collect();
    let pool = if holders.is_empty() { &next } else { &holders };
    if pool.is_empty() {
        // Nobody to hold the key: the current one stays in force.
        g.rotation = None;
        cx.o.set_gatekeepers(g);
        return vec![];
    }
    let h = Hash::tagged(
        "proctor/contracts/rotation-leader",
        &[
            &cx.state.tree.root().0,
            &era.to_le_bytes(),
            &attempt.to_le_bytes(),
        ],
    );
    let pick = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"));
    let leader = pool[(pick % pool.len() as u64) as usize];
    g.candidates.retain(|c| !next.contains(c));
    // A key handed over in an earlier attempt is void.
    for m in &next {
        cx.o.delete(root_grant_key(m));
    }
    g.rotation = Some(Rotation {
        era,
        attempt,
        leader,
        next: next.clone(),
        commitment: None,
        confirmed: vec![],
        deadline: height + p.rotation_timeout_blocks,
    });
    cx.o.set_gatekeepers(g);
    vec![Event::KeyRotationStarted {
        era,
        attempt,
        leader,
        next,
    }]
}

/// The era and window of `height`.
fn era_window(cx: &Context<'_>, height: Height) -> (u64, u64) {
    let e = cx.params().contracts.era_blocks;
    (height / e, (height % e) * WINDOWS / e)
}

/// Counts a side effect of `enclave` in this block's window.
fn note_activity(cx: &mut Context<'_>, enclave: &PublicKey) {
    let (era, window) = era_window(cx, cx.env.height);
    let mut a = cx.o.activity(era);
    *a.entry(*enclave).or_default() |= 1 << window;
    cx.o.put(activity_key(era), Record::Activity(a));
}

fn heartbeat(
    cx: &mut Context<'_>,
    enclave: &PublicKey,
    era: u64,
    window: u64,
    signature: &Signature,
) -> Result<Event, Error> {
    if cx.o.active_operator(enclave, cx.env.height).is_none() {
        return Err(Error::BadHeartbeat(format!(
            "{enclave} is not a registered, active enclave"
        )));
    }
    if (era, window) != era_window(cx, cx.env.height) {
        return Err(Error::BadHeartbeat(format!(
            "for era {era} window {window}, not this block's"
        )));
    }
    enclave
        .verify(
            &heartbeat_bytes(&cx.state.genesis_hash, era, window),
            signature,
        )
        .map_err(|_| Error::BadSignature)?;
    note_activity(cx, enclave);
    Ok(Event::ContractHeartbeat {
        enclave: *enclave,
        era,
        window,
    })
}

/// At the last block of an era, the responsiveness rule (seed 004 §4.10):
/// among the gatekeeper and the contracts' executors, one active in `c`
/// windows with `4·c < max c` loses `slash_unresponsive_bps` of its stake.
fn responsiveness(cx: &mut Context<'_>) -> Result<Vec<Event>, TxError> {
    let height = cx.env.height;
    let p = cx.params().contracts.clone();
    if !(height + 1).is_multiple_of(p.era_blocks) {
        return Ok(vec![]);
    }
    let era = height / p.era_blocks;
    let activity = cx.o.activity(era);
    cx.o.delete(activity_key(era));
    let mut duty: std::collections::BTreeSet<PublicKey> =
        cx.o.gatekeepers(&cx.params().contracts)
            .members
            .into_iter()
            .collect();
    for id in 1..cx.o.contracts_next() {
        if let Some(c) = cx.o.contract(id) {
            duty.insert(c.executor);
        }
    }
    let count = |e: &PublicKey| activity.get(e).map_or(0, |m| m.count_ones() as u64);
    let max = duty.iter().map(count).max().unwrap_or(0);
    let mut events = Vec::new();
    for e in duty.iter().filter(|e| 4 * count(e) < max) {
        let bp = p.slash_unresponsive_bps;
        let slashed = crate::modules::registry::take_stake(&mut cx.o, e, |stake| {
            crate::modules::market::bps(stake, bp)
        })
        .unwrap_or(Amount::ZERO);
        cx.o.credit(&crate::modules::market::treasury(), slashed)?;
        events.push(Event::ContractUnresponsive {
            enclave: *e,
            era,
            windows: count(e),
            max,
            slashed,
        });
    }
    Ok(events)
}

fn set_endpoint(
    cx: &mut Context<'_>,
    from: Address,
    enclave: &PublicKey,
    url: &str,
) -> Result<Event, Error> {
    if cx.o.active_operator(enclave, cx.env.height) != Some(from) {
        return Err(Error::BadEndpoint(format!(
            "only the operator of enclave {enclave}, registered and active, may set its endpoint"
        )));
    }
    let shape = url.len() <= MAX_ENDPOINT
        && (url.starts_with("http://") || url.starts_with("https://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !shape {
        return Err(Error::BadEndpoint(format!(
            "{url:?} is not an http(s) URL of at most {MAX_ENDPOINT} bytes"
        )));
    }
    cx.o.put(endpoint_key(enclave), Record::Endpoint(url.to_string()));
    Ok(Event::ContractEndpoint {
        enclave: *enclave,
        url: url.to_string(),
    })
}

impl State {
    /// The gatekeepers and the elected enclaves that do not hold the root
    /// key yet.
    pub fn gatekeepers(&self) -> GatekeeperSet {
        self.read().gatekeepers(&self.params().contracts)
    }
    /// An elected enclave's request for the root key, and the key handed
    /// over to it.
    pub fn root_exchange(&self, enclave: &PublicKey) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let o = self.read();
        (
            o.contract_blob(&root_request_key(enclave)),
            o.contract_blob(&root_grant_key(enclave)),
        )
    }
    /// Where `enclave`'s query port listens, if its operator said.
    pub fn enclave_endpoint(&self, enclave: &PublicKey) -> Option<String> {
        match self.read().get(&endpoint_key(enclave)) {
            Some(crate::Record::Contracts(Record::Endpoint(u))) => Some(u),
            _ => None,
        }
    }
    /// Contract `id`, if any.
    pub fn contract(&self, id: u64) -> Option<ContractInfo> {
        self.read().contract(id)
    }
    /// The id the next contract will get.
    pub fn contracts_next_id(&self) -> u64 {
        self.read().contracts_next()
    }
    /// Contract `id`'s command key as its gatekeeper signed it.
    pub fn contract_signed_key(&self, id: u64) -> Option<ContractPublicKey> {
        match self.read().get(&signed_key_key(id)) {
            Some(crate::Record::Contracts(Record::SignedKey(k))) => Some(*k),
            _ => None,
        }
    }
    /// Contract `id`'s code.
    pub fn contract_code(&self, id: u64) -> Option<Vec<u8>> {
        self.read().contract_blob(&code_key(id))
    }
    /// Command `seq` of contract `id`.
    pub fn contract_command(&self, id: u64, seq: u64) -> Option<CommandRecord> {
        self.read().contract_command(id, seq)
    }
    /// Command `seq` of contract `id` as stored (the encoded state record)
    /// and its proof under [`State::root`] (of its absence if none).
    pub fn prove_contract_command(
        &self,
        id: u64,
        seq: u64,
    ) -> (Option<Vec<u8>>, crate::smt::SmtProof) {
        let k = command_key(id, seq);
        (self.tree.get(&k).map(<[u8]>::to_vec), self.tree.prove(&k))
    }
    /// Contract `id`'s latest checkpoint.
    pub fn contract_checkpoint(&self, id: u64) -> Option<Checkpoint> {
        match self.read().get(&checkpoint_key(id)) {
            Some(crate::Record::Contracts(Record::Checkpoint(c))) => Some(*c),
            _ => None,
        }
    }
    /// Contracts whose command key no gatekeeper has published yet.
    pub fn contracts_awaiting_key(&self) -> Vec<u64> {
        self.read().contracts_awaiting_key()
    }
    /// The executor's attestation, when it asked for contract `id`'s key
    /// of `era`.
    pub fn contract_key_request(&self, id: u64, executor: &PublicKey, era: u64) -> Option<Vec<u8>> {
        self.read().contract_blob(&request_key(id, executor, era))
    }
    /// The key of `era` a gatekeeper granted `executor` for contract `id`.
    pub fn contract_key_grant(&self, id: u64, executor: &PublicKey, era: u64) -> Option<Vec<u8>> {
        self.read().contract_blob(&grant_key(id, executor, era))
    }
    /// Key requests waiting for a grant: (contract, era).
    pub fn contract_key_requests(&self) -> Vec<(u64, u64)> {
        self.read().key_requests()
    }
}

#[cfg(test)]
mod tests;
