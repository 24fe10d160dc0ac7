//! `proctor bench contracts`: the executor's enclave path for confidential
//! contracts, in one run, on the example key-value store
//! (`examples/contracts/kv.wasm`):
//! - **commands/s**: sealed commands applied by one executor enclave (open
//!   the HPKE envelope, run `handle` metered, seal the reply, sign the
//!   receipt);
//! - **queries/s**: signed queries answered (check the signature, open,
//!   run `query`, seal the reply, sign the statement);
//! - **checkpoint and recovery** for states of 1, 10 and 100 MB: the
//!   executor encrypting its state, and a second executor (granted the key
//!   by the gatekeeper) decrypting, decoding and checking it against its
//!   hash.
//!
//! Everything runs in this process on simulated enclaves; the commands and
//! queries are sealed before the clock starts.

use anyhow::{Result, anyhow, bail};
use proctor_enclave::contracts::{
    Command, ContractRequest, ContractResponse, SignedQuery, command_info, query_info,
};
use proctor_enclave::{Enclave, Request, Response};
use proctor_primitives::{EncryptionKey, Hash, Keypair, Signature};
use proctor_state::contracts::Checkpoint;
use proctor_tee::envelope::{self, RecipientKey};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform};
use serde::Serialize;
use std::time::Instant;

const KV: &[u8] = include_bytes!("../../../examples/contracts/kv.wasm");
const CHAIN: Hash = Hash([0x42; 32]);
/// Bytes of each value when filling a large state (kv takes messages of at
/// most 4 KiB).
const FILL_VALUE: usize = 4000;

#[derive(clap::Args)]
pub struct ContractArgs {
    /// Commands, and queries, per measurement.
    #[arg(long, default_value_t = 5_000)]
    commands: u32,
    /// State sizes to checkpoint and recover, in MB.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    sizes: Vec<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StateRow {
    mb: u64,
    entries: usize,
    checkpoint_bytes: usize,
    checkpoint_ms: f64,
    recovery_ms: f64,
}

#[derive(Serialize)]
struct Report {
    commands: u32,
    commands_per_sec: f64,
    queries_per_sec: f64,
    states: Vec<StateRow>,
}

fn ask(e: &mut Enclave, req: ContractRequest) -> Result<ContractResponse> {
    match e.handle(Request::Contracts(Box::new(req))) {
        Response::Contracts(r) => Ok(r),
        Response::Error { message, .. } => bail!("enclave: {message}"),
        other => bail!("unexpected answer {other:?}"),
    }
}

/// A simulated enclave in a fresh directory under `dir`.
fn enclave(dir: &std::path::Path, name: &str) -> Result<Enclave> {
    let platform = SimPlatform::open(&dir.join(name), SimAttestationRoot::from_secret(&[1; 32]))?;
    Ok(Enclave::new(Box::new(platform))?)
}

/// Grants contract `id`'s key from `gk` to `x` and loads kv there.
fn grant_and_load(
    gk: &mut Enclave,
    x: &mut Enclave,
    id: u64,
    from: Option<Checkpoint>,
) -> Result<()> {
    grant(gk, x, id)?;
    ask(
        x,
        ContractRequest::Load {
            contract: id,
            code: KV.to_vec(),
            checkpoint: from,
            proof: None,
        },
    )?;
    Ok(())
}

/// Grants contract `id`'s key from `gk` to `x`.
fn grant(gk: &mut Enclave, x: &mut Enclave, id: u64) -> Result<()> {
    let ContractResponse::Attested(to) = ask(x, ContractRequest::Attest { chain: CHAIN })? else {
        bail!("no attestation");
    };
    let ContractResponse::Handover(h) = ask(
        gk,
        ContractRequest::Grant {
            contract: id,
            era: 0,
            to,
        },
    )?
    else {
        bail!("no grant");
    };
    ask(x, ContractRequest::Accept(h))?;
    Ok(())
}

struct Sender {
    key: EncryptionKey,
    user: Keypair,
    reply: RecipientKey,
    rng: rand_chacha::ChaCha20Rng,
}

impl Sender {
    fn command(&mut self, id: u64, nonce: u64, msg: &[u8]) -> Result<Command> {
        let sender = self.user.public().address();
        let info = command_info(&CHAIN, id, &sender, nonce);
        Ok(Command {
            era: 0,
            sender,
            nonce,
            height: 1,
            fuel: 100_000_000,
            init: false,
            oracle: false,
            reply_to: self.reply.public(),
            sealed: envelope::seal_to(&self.key, &info, msg, &mut self.rng)
                .map_err(|e| anyhow!("{e}"))?,
        })
    }

    fn query(&mut self, id: u64, msg: &[u8]) -> Result<SignedQuery> {
        let caller = self.user.public();
        let info = query_info(&CHAIN, id, &caller, 100);
        let mut q = SignedQuery {
            chain: CHAIN,
            contract: id,
            caller,
            expires_at: 100,
            reply_to: self.reply.public(),
            sealed: envelope::seal_to(&self.key, &info, msg, &mut self.rng)
                .map_err(|e| anyhow!("{e}"))?,
            signature: Signature([0; 64]),
        };
        q.signature = self.user.sign(&q.signing_bytes());
        Ok(q)
    }
}

fn apply(x: &mut Enclave, id: u64, command: Command) -> Result<i32> {
    match ask(
        x,
        ContractRequest::Apply {
            contract: id,
            command,
            keys: vec![],
            unknown: vec![],
            proof: None,
        },
    )? {
        ContractResponse::Applied { receipt, .. } => Ok(receipt.code),
        r => bail!("unexpected {r:?}"),
    }
}

pub fn run(args: ContractArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("proctor-bench-contracts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut gk = enclave(&dir, "gatekeeper")?;
    ask(&mut gk, ContractRequest::Bootstrap)?;
    ask(&mut gk, ContractRequest::Bind { chain: CHAIN })?;
    let key_of = |gk: &mut Enclave, id: u64| -> Result<EncryptionKey> {
        match ask(
            gk,
            ContractRequest::PublicKey {
                contract: id,
                era: 0,
            },
        )? {
            ContractResponse::PublicKey(k) => Ok(k.key),
            r => bail!("unexpected {r:?}"),
        }
    };
    let mut x = enclave(&dir, "executor")?;
    let mut s = Sender {
        key: key_of(&mut gk, 1)?,
        user: Keypair::from_secret(&[7; 32]),
        reply: RecipientKey::from_seed(&[7; 32]),
        rng: <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([3; 32]),
    };
    grant_and_load(&mut gk, &mut x, 1, None)?;

    let n = args.commands;
    let commands: Vec<Command> = (0..n)
        .map(|i| s.command(1, i as u64, format!("set key{i} value{i}").as_bytes()))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    for c in commands {
        if apply(&mut x, 1, c)? != 0 {
            bail!("a command was refused");
        }
    }
    let commands_per_sec = n as f64 / t.elapsed().as_secs_f64();
    let queries: Vec<SignedQuery> = (0..n)
        .map(|i| s.query(1, format!("get key{i}").as_bytes()))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    for q in queries {
        let req = ContractRequest::Query {
            query: Box::new(q),
            height: 2,
            block_hash: Hash([2; 32]),
        };
        match ask(&mut x, req)? {
            ContractResponse::Answer(a) if a.statement.code == 0 => {}
            r => bail!("a query was not answered: {r:?}"),
        }
    }
    let queries_per_sec = n as f64 / t.elapsed().as_secs_f64();

    let mut states = Vec::new();
    for (i, &mb) in args.sizes.iter().enumerate() {
        let id = 2 + i as u64;
        s.key = key_of(&mut gk, id)?;
        grant_and_load(&mut gk, &mut x, id, None)?;
        let value = "v".repeat(FILL_VALUE);
        let entries = (mb << 20).div_ceil(FILL_VALUE as u64);
        for j in 0..entries {
            let c = s.command(id, j, format!("set k{j:08} {value}").as_bytes())?;
            if apply(&mut x, id, c)? != 0 {
                bail!("filling the state: a command was refused");
            }
        }
        let t = Instant::now();
        let ContractResponse::Checkpoint { checkpoint, .. } =
            ask(&mut x, ContractRequest::Checkpoint { contract: id })?
        else {
            bail!("no checkpoint");
        };
        let checkpoint_ms = t.elapsed().as_secs_f64() * 1e3;
        let checkpoint_bytes = checkpoint.ciphertext.len();
        let mut y = enclave(&dir, &format!("recovering-{id}"))?;
        grant(&mut gk, &mut y, id)?;
        let t = Instant::now();
        let ContractResponse::Loaded { applied, .. } = ask(
            &mut y,
            ContractRequest::Load {
                contract: id,
                code: KV.to_vec(),
                checkpoint: Some(checkpoint),
                proof: None,
            },
        )?
        else {
            bail!("not recovered");
        };
        let recovery_ms = t.elapsed().as_secs_f64() * 1e3;
        if applied != entries {
            bail!("recovered {applied} commands of {entries}");
        }
        states.push(StateRow {
            mb,
            entries: 2 * entries as usize,
            checkpoint_bytes,
            checkpoint_ms,
            recovery_ms,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    let r = Report {
        commands: n,
        commands_per_sec,
        queries_per_sec,
        states,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("contracts (examples/contracts/kv.wasm), one executor enclave, {n} of each");
    println!(
        "  commands applied (open, run, seal reply, sign)   {:>9.0} /s",
        r.commands_per_sec
    );
    println!(
        "  queries answered (verify, open, run, seal, sign) {:>9.0} /s",
        r.queries_per_sec
    );
    println!("  state    entries   checkpoint        checkpoint   recovery (another executor)");
    for s in &r.states {
        println!(
            "  {:>4} MB {:>8} {:>12} bytes {:>9.1} ms {:>9.1} ms",
            s.mb, s.entries, s.checkpoint_bytes, s.checkpoint_ms, s.recovery_ms
        );
    }
    Ok(())
}
