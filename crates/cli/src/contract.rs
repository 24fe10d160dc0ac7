//! `proctor contract`: confidential contracts (`docs/contracts.md`).
//! `deploy` publishes a module (and, with `--init`, runs its `init` once
//! the gatekeeper has published the contract's key), `call` sends a command
//! sealed to the contract's key and bound to the sender and the
//! transaction's nonce (with `--wait`, shows the reply, opened with the
//! sender's key), `info` and `list` show contracts.

use crate::{client, keys, print, print_list, rpc_err, send_call, send_call_with};
use anyhow::{Result, anyhow, bail};
use proctor_enclave::contracts::{command_info, reply_info};
use proctor_primitives::{Amount, Hash, Keypair};
use proctor_rpc::ApiClient;
use proctor_rpc::jsonrpsee::http_client::HttpClient;
use proctor_state::Call;
use proctor_state::contracts::{Call as ContractCall, ContractInfo, Event as ContractEvent};
use proctor_tee::envelope::{self, RecipientKey};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Instructions a command buys when `--fuel` is not given.
const DEFAULT_FUEL: u64 = 10_000_000;

#[derive(clap::Subcommand)]
pub enum ContractCmd {
    /// Publish a contract module (built with `clang --target=wasm32-wasi`).
    Deploy {
        wasm: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The message `init` runs with (a string, or `@FILE`).
        #[arg(long)]
        init: Option<String>,
        /// Instructions `init` may use.
        #[arg(long, default_value_t = DEFAULT_FUEL)]
        fuel: u64,
        /// Longest wait, in seconds (for the gatekeeper to publish the
        /// contract's key, and for `init`).
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Send a command (a transaction; its message sealed to the contract).
    Call {
        id: u64,
        #[arg(long)]
        key: PathBuf,
        /// The command (a string, or `@FILE`).
        #[arg(long)]
        msg: String,
        /// Instructions it may use (paid at the chain's price; the unused
        /// part comes back).
        #[arg(long, default_value_t = DEFAULT_FUEL)]
        fuel: u64,
        /// Wait until it is applied and show the reply.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// A contract: its executor, commands applied, state hash, checkpoint.
    Info {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Recent contracts.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

/// The key replies are sealed to: derived from the account key file.
fn reply_key(k: &Keypair) -> RecipientKey {
    RecipientKey::from_seed(&Hash::tagged("proctor/contracts/reply-key", &[&k.secret_bytes()]).0)
}

/// A message: the text, or the bytes of `@FILE`.
fn message(m: &str) -> Result<Vec<u8>> {
    match m.strip_prefix('@') {
        Some(path) => {
            std::fs::read(path).map_err(|e| anyhow!("reading the message file {path}: {e}"))
        }
        None => Ok(m.as_bytes().to_vec()),
    }
}

/// What `contract info` shows.
#[derive(Serialize)]
struct InfoView {
    id: u64,
    owner: proctor_primitives::Address,
    code_hash: Hash,
    code_len: u64,
    executor: proctor_primitives::PublicKey,
    era: u64,
    /// The contract's command key (null until a gatekeeper published it).
    key: Option<proctor_primitives::EncryptionKey>,
    commands: u64,
    applied: u64,
    state_hash: Hash,
    /// Commands covered by the latest checkpoint, and its height.
    checkpoint_applied: Option<u64>,
    last_checkpoint_height: Option<u64>,
}

fn info_view(c: ContractInfo) -> InfoView {
    InfoView {
        id: c.id,
        owner: c.owner,
        code_hash: c.code_hash,
        code_len: c.code_len,
        executor: c.executor,
        era: c.era,
        key: c.key,
        commands: c.commands,
        applied: c.applied,
        state_hash: c.state_hash,
        checkpoint_applied: c.checkpoint.map(|(a, _)| a),
        last_checkpoint_height: c.checkpoint.map(|(_, h)| h),
    }
}

fn describe_info(v: &InfoView) -> String {
    format!(
        "contract {}\n  owner     {}\n  code      {} ({} bytes)\n  executor  {}\n  era       {}\n  key       {}\n  commands  {} submitted, {} applied\n  state     {}\n  checkpoint {}",
        v.id,
        v.owner,
        v.code_hash,
        v.code_len,
        v.executor,
        v.era,
        v.key
            .map_or("(not published yet)".into(), |k| hex::encode(k.0)),
        v.commands,
        v.applied,
        v.state_hash,
        match (v.checkpoint_applied, v.last_checkpoint_height) {
            (Some(a), Some(h)) => format!("after command {a}, at height {h}"),
            _ => "none yet".into(),
        }
    )
}

/// What `contract call --wait` (and `deploy --init`) shows.
#[derive(Serialize)]
struct Applied {
    id: u64,
    seq: u64,
    /// 0: applied; the contract's refusal code; -1 trapped or unopenable;
    /// -2 out of fuel.
    code: i32,
    instructions: u64,
    paid: Amount,
    refunded: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_hex: Option<String>,
    state_hash: Hash,
}

fn describe_applied(a: &Applied) -> String {
    let reply = a
        .reply
        .clone()
        .or_else(|| a.reply_hex.as_ref().map(|h| format!("(hex) {h}")))
        .unwrap_or_default();
    let what = match a.code {
        0 => "applied".to_string(),
        -1 => "failed (trapped, or the message does not open)".to_string(),
        -2 => "ran out of fuel".to_string(),
        c => format!("refused by the contract (code {c})"),
    };
    format!(
        "contract {} command {}: {what}\n  reply    {reply}\n  {} instructions, paid {}, refunded {}\n  state    {}",
        a.id, a.seq, a.instructions, a.paid, a.refunded, a.state_hash
    )
}

/// Waits until contract `id` has a command key.
async fn wait_for_key(c: &HttpClient, url: &str, id: u64, end: Instant) -> Result<ContractInfo> {
    loop {
        let info = c.contract(id).await.map_err(rpc_err(url))?;
        if info.key.is_some() {
            return Ok(info);
        }
        if Instant::now() > end {
            bail!("contract {id} has no key yet: is a gatekeeper running?");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends command `msg` to contract `info` and returns its number.
async fn send_command(
    url: &str,
    k: &Keypair,
    info: &ContractInfo,
    msg: &[u8],
    fuel: u64,
    init: bool,
    timeout: Duration,
) -> Result<u64> {
    let c = client(url)?;
    let params = c.genesis().await.map_err(rpc_err(url))?.params.contracts;
    let escrow = params
        .cost(fuel)
        .ok_or_else(|| anyhow!("--fuel {fuel} overflows"))?;
    let key = info
        .key
        .ok_or_else(|| anyhow!("contract {} has no key yet", info.id))?;
    let sender = k.public().address();
    let reply_to = reply_key(k).public();
    let id = info.id;
    let make = |chain: &Hash, nonce: u64| {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
        let sealed = envelope::seal_to(
            &key,
            &command_info(chain, id, &sender, nonce),
            msg,
            &mut rng,
        )
        .map_err(|e| anyhow!("sealing the command: {e}"))?;
        Ok(Call::Contracts(ContractCall::Command {
            contract: id,
            fuel,
            escrow,
            init,
            reply_to,
            sealed,
        }))
    };
    let (tx, status) = send_call_with(url, k, make, None, Some(timeout)).await?;
    match status {
        proctor_rpc::TxStatus::Included { events, .. } => events.iter().find_map(|e| match e {
            proctor_state::Event::Contracts(ContractEvent::ContractCommand { seq, .. }) => {
                Some(*seq)
            }
            _ => None,
        }),
        _ => None,
    }
    .ok_or_else(|| anyhow!("transaction {tx} was included without a command"))
}

/// Waits for command `seq`'s receipt and opens its reply with `k`.
async fn wait_applied(url: &str, k: &Keypair, id: u64, seq: u64, end: Instant) -> Result<Applied> {
    let c = client(url)?;
    let chain = c.chain_info().await.map_err(rpc_err(url))?.genesis_hash;
    loop {
        let cmd = c.contract_command(id, seq).await.map_err(rpc_err(url))?;
        if let Some(r) = cmd.receipt {
            let reply = reply_key(k)
                .open(&reply_info(&chain, id, seq), &r.reply)
                .map_err(|e| anyhow!("the reply does not open with this key: {e}"))?;
            let (text, hex) = match String::from_utf8(reply) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(hex::encode(e.into_bytes()))),
            };
            return Ok(Applied {
                id,
                seq,
                code: r.code,
                instructions: r.instructions,
                paid: cmd.paid,
                refunded: cmd.refunded,
                reply: text,
                reply_hex: hex,
                state_hash: r.state_hash,
            });
        }
        if Instant::now() > end {
            bail!("command {seq} of contract {id} is not applied yet: is its executor running?");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints an applied command; a refused or failed one exits non-zero.
fn report(json: bool, a: &Applied) -> Result<()> {
    print(json, a, describe_applied)?;
    match a.code {
        0 => Ok(()),
        c => bail!(
            "the command was not applied (code {c}): {}",
            a.reply.as_deref().unwrap_or("")
        ),
    }
}

pub async fn run(cmd: ContractCmd, url: &str) -> Result<()> {
    let c = client(url)?;
    match cmd {
        ContractCmd::Deploy {
            wasm,
            key,
            init,
            fuel,
            timeout,
            json,
        } => {
            let k = keys::read(&key)?;
            let code =
                std::fs::read(&wasm).map_err(|e| anyhow!("reading {}: {e}", wasm.display()))?;
            let init = init.as_deref().map(message).transpose()?;
            let wait = Duration::from_secs(timeout);
            let call = Call::Contracts(ContractCall::Deploy { code });
            let (tx, status) = send_call(url, &k, call, None, Some(wait)).await?;
            let id = match status {
                proctor_rpc::TxStatus::Included { events, .. } => {
                    events.iter().find_map(|e| match e {
                        proctor_state::Event::Contracts(ContractEvent::ContractDeployed {
                            id,
                            ..
                        }) => Some(*id),
                        _ => None,
                    })
                }
                _ => None,
            }
            .ok_or_else(|| anyhow!("transaction {tx} was included without a contract"))?;
            // Deployed once its gatekeeper published its key: commands can
            // be sealed to it from then on.
            let end = Instant::now() + wait;
            let info = wait_for_key(&c, url, id, end).await?;
            let Some(msg) = init else {
                return print(json, &info_view(info), describe_info);
            };
            let seq = send_command(url, &k, &info, &msg, fuel, true, wait).await?;
            let applied = wait_applied(url, &k, id, seq, end).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "id": id,
                        "tx": tx,
                        "init": applied,
                    }))?
                );
            } else {
                println!("contract {id} deployed (transaction {tx})");
                println!("{}", describe_applied(&applied));
            }
            match applied.code {
                0 => Ok(()),
                code => bail!("init was not applied (code {code})"),
            }
        }
        ContractCmd::Call {
            id,
            key,
            msg,
            fuel,
            wait,
            timeout,
            json,
        } => {
            let k = keys::read(&key)?;
            let msg = message(&msg)?;
            let timeout = Duration::from_secs(timeout);
            // A contract deployed a moment ago gets its key within blocks.
            let info = wait_for_key(&c, url, id, Instant::now() + timeout).await?;
            let seq = send_command(url, &k, &info, &msg, fuel, false, timeout).await?;
            if !wait {
                if json {
                    println!("{}", serde_json::json!({ "id": id, "seq": seq }));
                } else {
                    println!("contract {id}: command {seq} sent");
                }
                return Ok(());
            }
            let applied = wait_applied(url, &k, id, seq, Instant::now() + timeout).await?;
            report(json, &applied)
        }
        ContractCmd::Info { id, json } => {
            let info = c.contract(id).await.map_err(rpc_err(url))?;
            print(json, &info_view(info), describe_info)
        }
        ContractCmd::List { limit, json } => {
            let list: Vec<InfoView> = c
                .contracts(None, Some(limit))
                .await
                .map_err(rpc_err(url))?
                .into_iter()
                .map(info_view)
                .collect();
            print_list(json, &list, "no contracts", |v| {
                format!(
                    "{:>6}  {}  {} commands, {} applied",
                    v.id, v.code_hash, v.commands, v.applied
                )
            })
        }
    }
}
