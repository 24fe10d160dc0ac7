//! The contract ABI and its engine: confidential contracts are WebAssembly
//! state machines `s_n = f(s_{n-1}, e_n)` (seed 004 §3.1), run on the same
//! metered engine as tasks.
//!
//! A contract imports only from module `"proctor"` ([`signature`] lists the
//! functions and their exact types) and exports `handle() -> i32`,
//! `query() -> i32` and optionally `init() -> i32`; a non-zero result means
//! "refused". Its state is an ordered key-value map ([`State`]) that only the
//! enclave sees. A command runs `handle` over a journal on top of the state:
//! the journal is applied when `handle` returns 0 and dropped otherwise (a
//! refusal, a trap, the budget running out), while the instructions used are
//! charged either way. A query runs `query` over the state as it is, and
//! traps if it tries to write (`set`, `remove`) or to `emit`.
//!
//! Every operator counts as for a task ([`crate::meter`]), and the host
//! functions add one instruction per 4 bytes they move ([`BULK_SHIFT`]), so a
//! command's count, its price, is a function of the contract, the state, the
//! message, the caller and the height only. `docs/contracts.md` is the
//! public description of this ABI.
//!
//! [`BULK_SHIFT`]: crate::meter::BULK_SHIFT

use crate::checker::{self, Abi, Signature};
use crate::runtime::{Features, VmError, base_config};
use crate::wasi::{self, I32, I64, Meter, Metered, OutOfFuel};
use proctor_primitives::{Address, Hash};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use wasmtime::{Caller, Engine, Linker, Module, Store, StoreLimitsBuilder, Trap, Val};

/// The one module a contract imports from.
pub const MODULE: &str = "proctor";

/// The functions a contract may import, with their (parameters, results).
pub fn signature(name: &str) -> Option<Signature> {
    Some(match name {
        "msg_len" => (&[], &[I32]),
        "msg_read" | "caller" => (&[I32], &[]),
        "get" => (&[I32, I32, I32, I32], &[I32]),
        "set" => (&[I32, I32, I32, I32], &[]),
        "remove" | "reply" | "emit" => (&[I32, I32], &[]),
        "height" => (&[], &[I64]),
        _ => return None,
    })
}

impl Abi {
    /// A contract: imports from `proctor` ([`signature`]); exports `handle`
    /// and `query`, and may export `init`.
    pub const CONTRACT: Abi = Abi {
        import_module: MODULE,
        signature,
        required_exports: &["handle", "query"],
        optional_exports: &["init"],
    };
}

/// Bounds on what one contract may hold and do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractLimits {
    /// Module size, memory, tables, globals (as for tasks).
    pub module: checker::Limits,
    /// Longest key, in bytes.
    pub max_key: usize,
    /// Longest value, in bytes.
    pub max_value: usize,
    /// Most bytes of keys and values the state may hold.
    pub max_state_bytes: u64,
    /// Longest reply of one call.
    pub max_reply: usize,
    /// Most egress messages of one command, and the longest one.
    pub max_emits: usize,
    pub max_emit: usize,
}

impl Default for ContractLimits {
    fn default() -> Self {
        ContractLimits {
            module: checker::Limits {
                max_memory_pages: 1024, // 64 MiB
                ..checker::Limits::default()
            },
            max_key: 1024,
            max_value: 1 << 20,
            max_state_bytes: 1 << 30,
            max_reply: 64 << 10,
            max_emits: 16,
            max_emit: 64 << 10,
        }
    }
}

/// A contract's state: an ordered map of byte keys to byte values, with a
/// hash that commits to every entry. Cheap to clone (shared until written).
#[derive(Clone, Default)]
pub struct State(Arc<Entries>);

#[derive(Clone, Default)]
struct Entries {
    /// Key → (value, hash of the entry).
    map: BTreeMap<Vec<u8>, (Vec<u8>, Hash)>,
    /// Bytes of keys and values.
    bytes: u64,
    /// [`State::hash`], computed once per version.
    hash: OnceLock<Hash>,
}

fn entry_hash(key: &[u8], value: &[u8]) -> Hash {
    Hash::tagged(
        "proctor/contract-entry",
        &[&(key.len() as u64).to_le_bytes(), key, value],
    )
}

/// Why stored state bytes do not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("contract state does not decode: {0}")]
pub struct StateError(&'static str);

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "State({} entries, {})", self.len(), self.hash())
    }
}

impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.hash() == other.hash()
    }
}

impl State {
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.0.map.get(key).map(|(v, _)| v.as_slice())
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.0.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.map.is_empty()
    }

    /// Bytes of keys and values.
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }

    /// Commits to every entry: BLAKE3 over the entries' hashes in key order
    /// (each `H(len(key), key, value)`), so it costs 32 bytes of hashing per
    /// entry, not the whole state, and is the same for the same entries
    /// however they were written.
    pub fn hash(&self) -> Hash {
        *self.0.hash.get_or_init(|| {
            let mut h = blake3::Hasher::new();
            h.update(b"proctor/contract-state");
            h.update(&(self.0.map.len() as u64).to_le_bytes());
            for (_, e) in self.0.map.values() {
                h.update(&e.0);
            }
            Hash(*h.finalize().as_bytes())
        })
    }

    /// Applies a journal of writes (`None`: removed).
    /// Applies a command's writes (see [`ContractVm::run_command`]).
    pub fn apply(&mut self, writes: Writes) {
        let writes = writes.0;
        if writes.is_empty() {
            return;
        }
        let e = Arc::make_mut(&mut self.0);
        e.hash = OnceLock::new();
        for (k, v) in writes {
            let old = match v {
                Some(v) => {
                    e.bytes += (k.len() + v.len()) as u64;
                    let h = entry_hash(&k, &v);
                    e.map.insert(k.clone(), (v, h)).map(|(old, _)| (k, old))
                }
                None => e.map.remove_entry(&k).map(|(k, (old, _))| (k, old)),
            };
            if let Some((k, old)) = old {
                e.bytes -= (k.len() + old.len()) as u64;
            }
        }
    }

    /// The canonical encoding (checkpoints): entry count, then each key and
    /// value with u32 little-endian lengths, in key order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.bytes as usize + 8 * self.len() + 8);
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for (k, (v, _)) in &self.0.map {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    /// Decodes [`State::to_bytes`]; keys must be in strictly increasing
    /// order and within `limits`, and nothing may follow.
    pub fn from_bytes(mut b: &[u8], limits: &ContractLimits) -> Result<State, StateError> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], StateError> {
            if b.len() < n {
                return Err(StateError("truncated"));
            }
            let (head, tail) = b.split_at(n);
            *b = tail;
            Ok(head)
        }
        fn len(b: &mut &[u8], max: usize) -> Result<usize, StateError> {
            let n = u32::from_le_bytes(take(b, 4)?.try_into().unwrap()) as usize;
            if n > max {
                return Err(StateError("a key or value is longer than the limit"));
            }
            Ok(n)
        }
        let count = u64::from_le_bytes(take(&mut b, 8)?.try_into().unwrap());
        let mut e = Entries::default();
        let mut last: Option<&[u8]> = None;
        for _ in 0..count {
            let n = len(&mut b, limits.max_key)?;
            let k = take(&mut b, n)?;
            let n = len(&mut b, limits.max_value)?;
            let v = take(&mut b, n)?;
            if last.is_some_and(|l| l >= k) {
                return Err(StateError("keys out of order"));
            }
            last = Some(k);
            e.bytes += (k.len() + v.len()) as u64;
            if e.bytes > limits.max_state_bytes {
                return Err(StateError("larger than the state limit"));
            }
            e.map.insert(k.to_vec(), (v.to_vec(), entry_hash(k, v)));
        }
        if !b.is_empty() {
            return Err(StateError("trailing bytes"));
        }
        Ok(State(Arc::new(e)))
    }
}

/// A command's writes, not applied yet ([`State::apply`]); empty unless the
/// command succeeded.
#[derive(Clone, Debug, Default)]
pub struct Writes(BTreeMap<Vec<u8>, Option<Vec<u8>>>);

/// What a call sees besides the state.
#[derive(Clone, Debug)]
pub struct Env {
    /// The command's or query's sender.
    pub caller: Address,
    /// The block of the command, or of the state a query reads.
    pub height: u64,
    /// The command or query bytes.
    pub msg: Vec<u8>,
    /// Instruction budget.
    pub fuel: u64,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Returned 0: a command's writes and messages take effect.
    Done,
    /// Returned this non-zero code: nothing takes effect.
    Refused(i32),
    /// A WebAssembly trap or a broken rule of the ABI (with why).
    Trapped(String),
    /// The budget ran out.
    OutOfFuel,
}

/// The result of a call.
#[derive(Clone, Debug)]
pub struct Execution {
    pub ending: Ending,
    /// Instructions used, charged whatever the ending.
    pub instructions: u64,
    /// What the contract passed to `reply` (kept on a refusal, to say why).
    pub reply: Vec<u8>,
    /// Egress messages (only when [`Ending::Done`]).
    pub emits: Vec<Vec<u8>>,
}

/// A checked, metered, compiled contract.
#[derive(Clone)]
pub struct Contract {
    pub verdict: checker::Verdict,
    module: Module,
    has_init: bool,
}

/// The contract engine: checks modules against [`Abi::CONTRACT`], meters
/// them like tasks and runs their entry points. Cheap to clone.
#[derive(Clone)]
pub struct ContractVm {
    engine: Engine,
    linker: Arc<Linker<Ctx>>,
    limits: ContractLimits,
}

/// Which entry point runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    Query,
}

struct Ctx {
    mode: Mode,
    env: Env,
    state: State,
    /// A command's writes, applied only if it succeeds.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Bytes the state would hold with the writes applied.
    bytes: u64,
    reply: Vec<u8>,
    emits: Vec<Vec<u8>>,
    limits: ContractLimits,
    meter: Meter,
    store_limits: wasmtime::StoreLimits,
}

impl Metered for Ctx {
    fn meter(&self) -> &Meter {
        &self.meter
    }
}

/// A broken ABI rule: the call traps with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AbiError(String);

fn abi_err<T>(why: impl Into<String>) -> wasmtime::Result<T> {
    Err(wasmtime::Error::new(AbiError(why.into())))
}

/// The guest's bytes at `ptr..ptr+len`, copied out.
fn read(c: &mut Caller<'_, Ctx>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let Some(mem) = wasi::memory(c) else {
        return abi_err("the contract exports no memory");
    };
    let start = ptr as u32 as usize;
    let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
        return abi_err("a negative or overflowing length");
    };
    match mem.data(&*c).get(start..end) {
        Some(b) => Ok(b.to_vec()),
        None => Err(wasmtime::Error::new(Trap::MemoryOutOfBounds)),
    }
}

/// Copies `bytes` to the guest at `ptr`.
fn write(c: &mut Caller<'_, Ctx>, ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    let Some(mem) = wasi::memory(c) else {
        return abi_err("the contract exports no memory");
    };
    let start = ptr as u32 as usize;
    match mem.data_mut(&mut *c).get_mut(start..start + bytes.len()) {
        Some(b) => {
            b.copy_from_slice(bytes);
            Ok(())
        }
        None => Err(wasmtime::Error::new(Trap::MemoryOutOfBounds)),
    }
}

/// Charges the bytes a host call moves: one instruction per 4.
fn charge(c: &mut Caller<'_, Ctx>, bytes: usize) -> wasmtime::Result<()> {
    wasi::charge(c, (bytes as u64) >> crate::meter::BULK_SHIFT)
}

/// A key from the guest, within the limit.
fn key(c: &mut Caller<'_, Ctx>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    if len as u32 as usize > c.data().limits.max_key {
        return abi_err(format!(
            "a key of {len} bytes is longer than the limit of {}",
            c.data().limits.max_key
        ));
    }
    read(c, ptr, len)
}

fn writable(c: &Caller<'_, Ctx>, what: &str) -> wasmtime::Result<()> {
    match c.data().mode {
        Mode::Command => Ok(()),
        Mode::Query => abi_err(format!("a query may not {what}")),
    }
}

/// The value `key` has as the call sees it (its own writes first).
fn current<'a>(ctx: &'a Ctx, key: &[u8]) -> Option<&'a [u8]> {
    match ctx.writes.get(key) {
        Some(w) => w.as_deref(),
        None => ctx.state.get(key),
    }
}

fn add_to_linker(l: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    l.func_wrap(MODULE, "msg_len", |c: Caller<'_, Ctx>| {
        c.data().env.msg.len() as i32
    })?;
    l.func_wrap(MODULE, "msg_read", |mut c: Caller<'_, Ctx>, ptr: i32| {
        let msg = std::mem::take(&mut c.data_mut().env.msg);
        let r = charge(&mut c, msg.len()).and_then(|()| write(&mut c, ptr, &msg));
        c.data_mut().env.msg = msg;
        r
    })?;
    l.func_wrap(MODULE, "caller", |mut c: Caller<'_, Ctx>, ptr: i32| {
        let a = c.data().env.caller.0;
        write(&mut c, ptr, &a)
    })?;
    l.func_wrap(MODULE, "height", |c: Caller<'_, Ctx>| {
        c.data().env.height as i64
    })?;
    l.func_wrap(
        MODULE,
        "get",
        |mut c: Caller<'_, Ctx>, kp: i32, kl: i32, vp: i32, cap: i32| {
            let k = key(&mut c, kp, kl)?;
            let Some(v) = current(c.data(), &k).map(<[u8]>::to_vec) else {
                charge(&mut c, k.len())?;
                return Ok(-1);
            };
            let n = v.len().min(cap.max(0) as usize);
            charge(&mut c, k.len() + n)?;
            write(&mut c, vp, &v[..n])?;
            Ok(v.len() as i32)
        },
    )?;
    l.func_wrap(
        MODULE,
        "set",
        |mut c: Caller<'_, Ctx>, kp: i32, kl: i32, vp: i32, vl: i32| {
            writable(&c, "set")?;
            let k = key(&mut c, kp, kl)?;
            let max = c.data().limits.max_value;
            if vl as u32 as usize > max {
                return abi_err(format!(
                    "a value of {vl} bytes is longer than the limit of {max}"
                ));
            }
            charge(&mut c, k.len() + vl as usize)?;
            let v = read(&mut c, vp, vl)?;
            let ctx = c.data_mut();
            let old = current(ctx, &k).map_or(0, |o| (k.len() + o.len()) as u64);
            let bytes = ctx.bytes - old + (k.len() + v.len()) as u64;
            if bytes > ctx.limits.max_state_bytes {
                return abi_err(format!(
                    "the state would hold {bytes} bytes, more than the limit of {}",
                    ctx.limits.max_state_bytes
                ));
            }
            ctx.bytes = bytes;
            ctx.writes.insert(k, Some(v));
            Ok(())
        },
    )?;
    l.func_wrap(
        MODULE,
        "remove",
        |mut c: Caller<'_, Ctx>, kp: i32, kl: i32| {
            writable(&c, "remove")?;
            let k = key(&mut c, kp, kl)?;
            charge(&mut c, k.len())?;
            let ctx = c.data_mut();
            if let Some(o) = current(ctx, &k) {
                ctx.bytes -= (k.len() + o.len()) as u64;
                ctx.writes.insert(k, None);
            }
            Ok(())
        },
    )?;
    l.func_wrap(MODULE, "reply", |mut c: Caller<'_, Ctx>, p: i32, n: i32| {
        let b = read(&mut c, p, n)?;
        charge(&mut c, b.len())?;
        let ctx = c.data_mut();
        if ctx.reply.len() + b.len() > ctx.limits.max_reply {
            return abi_err(format!(
                "the reply is longer than the limit of {} bytes",
                ctx.limits.max_reply
            ));
        }
        ctx.reply.extend_from_slice(&b);
        Ok(())
    })?;
    l.func_wrap(MODULE, "emit", |mut c: Caller<'_, Ctx>, p: i32, n: i32| {
        writable(&c, "emit")?;
        let b = read(&mut c, p, n)?;
        charge(&mut c, b.len())?;
        let ctx = c.data_mut();
        if ctx.emits.len() >= ctx.limits.max_emits || b.len() > ctx.limits.max_emit {
            return abi_err(format!(
                "at most {} messages of at most {} bytes each",
                ctx.limits.max_emits, ctx.limits.max_emit
            ));
        }
        ctx.emits.push(b);
        Ok(())
    })?;
    // The meter's callback: one budget, no slices (no lottery here).
    let (module, name) = crate::meter::CHECK;
    l.func_wrap(module, name, |mut c: Caller<'_, Ctx>| {
        let Some((g, used)) = wasi::count(&mut c) else {
            return abi_err("metering global missing");
        };
        let m = &mut c.data_mut().meter;
        if used > m.budget {
            return Err(wasmtime::Error::new(OutOfFuel));
        }
        let remaining = m.set_limit(used);
        g.set(&mut c, Val::I64(remaining))
    })?;
    Ok(())
}

impl ContractVm {
    /// An engine compiling for the pinned CPU features, as tasks are.
    pub fn new(limits: ContractLimits) -> Result<ContractVm, VmError> {
        let config = base_config(Features::Pinned)?;
        let engine = Engine::new(&config).map_err(|e| VmError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).map_err(|e| VmError::Engine(e.to_string()))?;
        Ok(ContractVm {
            engine,
            linker: Arc::new(linker),
            limits,
        })
    }

    pub fn limits(&self) -> &ContractLimits {
        &self.limits
    }

    /// Checks `bytes` against the contract ABI (imports, and the entry
    /// points' types `() -> i32`), meters and compiles it.
    pub fn load(&self, bytes: &[u8]) -> Result<Contract, VmError> {
        let verdict = checker::check_abi(bytes, &self.limits.module, &Abi::CONTRACT)?;
        let metered = crate::meter::instrument(bytes)?;
        let module =
            Module::new(&self.engine, &metered).map_err(|e| VmError::Compile(e.to_string()))?;
        let mut has_init = false;
        for e in module.exports() {
            if let wasmtime::ExternType::Func(f) = e.ty() {
                let ok = f.params().len() == 0
                    && f.results().len() == 1
                    && f.results().all(|r| matches!(r, wasmtime::ValType::I32));
                if !ok {
                    return Err(VmError::Rejected(checker::CheckError::EntryPoints {
                        found: vec![format!("{} (must be () -> i32)", e.name())],
                    }));
                }
                has_init |= e.name() == "init";
            }
        }
        Ok(Contract {
            verdict,
            module,
            has_init,
        })
    }

    /// Runs `init` (when the contract has one) as a command at deploy.
    pub fn init(&self, c: &Contract, state: &mut State, env: Env) -> Execution {
        if !c.has_init {
            return Execution {
                ending: Ending::Done,
                instructions: 0,
                reply: vec![],
                emits: vec![],
            };
        }
        self.command(c, "init", state, env)
    }

    /// Applies a command: `handle`, whose writes reach `state` only if it
    /// returns 0.
    pub fn handle(&self, c: &Contract, state: &mut State, env: Env) -> Execution {
        self.command(c, "handle", state, env)
    }

    /// Answers a query: `query` over `state`, which it cannot change.
    pub fn query(&self, c: &Contract, state: &State, env: Env) -> Execution {
        let (x, _) = self.call(c, "query", Mode::Query, state, env);
        x
    }

    fn command(&self, c: &Contract, entry: &str, state: &mut State, env: Env) -> Execution {
        let (x, writes) = self.run_command(c, state, env, entry == "init");
        state.apply(writes);
        x
    }

    /// Runs a command (`init` or `handle`) over `state` without applying
    /// it: its execution and writes, to [`State::apply`] once the caller
    /// decides to (the enclave first seals its egress messages).
    pub fn run_command(
        &self,
        c: &Contract,
        state: &State,
        env: Env,
        init: bool,
    ) -> (Execution, Writes) {
        if init && !c.has_init {
            let x = Execution {
                ending: Ending::Done,
                instructions: 0,
                reply: vec![],
                emits: vec![],
            };
            return (x, Writes::default());
        }
        let entry = if init { "init" } else { "handle" };
        let (x, writes) = self.call(c, entry, Mode::Command, state, env);
        (x, Writes(writes))
    }

    fn call(
        &self,
        c: &Contract,
        entry: &str,
        mode: Mode,
        state: &State,
        env: Env,
    ) -> (Execution, BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        let fuel = env.fuel;
        let ctx = Ctx {
            mode,
            env,
            state: state.clone(),
            writes: BTreeMap::new(),
            bytes: state.bytes(),
            reply: vec![],
            emits: vec![],
            limits: self.limits.clone(),
            meter: Meter::new(fuel, fuel),
            store_limits: StoreLimitsBuilder::new()
                .memory_size((self.limits.module.max_memory_pages as usize) << 16)
                .table_elements(self.limits.module.max_table_elements as usize)
                .instances(1)
                .build(),
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.store_limits);
        let mut remaining = None;
        let res = (|| {
            let instance = self.linker.instantiate(&mut store, &c.module)?;
            let global = instance
                .get_global(&mut store, crate::meter::REMAINING)
                .ok_or_else(|| wasmtime::Error::msg("metering global missing"))?;
            remaining = Some(global);
            let r = store.data_mut().meter.set_limit(0);
            global.set(&mut store, Val::I64(r))?;
            let f = instance.get_typed_func::<(), i32>(&mut store, entry)?;
            f.call(&mut store, ())
        })();
        let r = remaining.map(|g| g.get(&mut store).unwrap_i64());
        let ctx = store.into_data();
        let used = ctx.meter.used(r);
        let ending = match res {
            _ if used > fuel => Ending::OutOfFuel,
            Ok(0) => Ending::Done,
            Ok(code) => Ending::Refused(code),
            Err(e) if e.downcast_ref::<OutOfFuel>().is_some() => Ending::OutOfFuel,
            Err(e) => Ending::Trapped(format!("{e:#}")),
        };
        let done = ending == Ending::Done;
        let kept_reply = matches!(ending, Ending::Done | Ending::Refused(_));
        let x = Execution {
            ending,
            instructions: used.min(fuel),
            reply: if kept_reply { ctx.reply } else { vec![] },
            emits: if done { ctx.emits } else { vec![] },
        };
        (x, if done { ctx.writes } else { BTreeMap::new() })
    }
}
