//! `proctor contract`: confidential contracts (`docs/contracts.md`).
//! `deploy` publishes a module (and, with `--init`, runs its `init` once
//! the gatekeeper has published the contract's key), `call` sends a command
//! sealed to the contract's key and bound to the sender and the
//! transaction's nonce (with `--wait`, shows the reply, opened with the
//! sender's key), `info` and `list` show contracts.

use crate::{client, keys, print, print_list, rpc_err, send_call, send_call_with};
use anyhow::{Result, anyhow, bail};
use proctor_enclave::contracts::{
    QueryAnswer, SignedQuery, command_info, query_info, query_reply_info, reply_info,
};
use proctor_primitives::{Amount, Hash, Keypair, codec};
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
    /// Ask the contract's executor a question (no transaction): the answer
    /// is printed only once its enclave's signed statement checks out
    /// against the chain. Exits non-zero, with the contract's reason, when
    /// the contract refuses.
    Query {
        id: u64,
        #[arg(long)]
        key: PathBuf,
        /// The query (a string, or `@FILE`).
        #[arg(long)]
        msg: String,
        /// Longest wait for the executor to catch up with the chain, in seconds.
        #[arg(long, default_value_t = 60)]
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

/// Blocks a query stays answerable.
const QUERY_TTL_BLOCKS: u64 = 20;

/// What the chain says, for checking an answer's statement.
pub struct Facts {
    pub chain: Hash,
    pub contract: u64,
    /// The contract's executor (its registered identity).
    pub executor: proctor_primitives::PublicKey,
    /// Commands applied (receipts on chain) when the query was sent.
    pub applied_before: u64,
    /// The hash of the block at the statement's height.
    pub block_hash: Option<Hash>,
    /// The state hash the chain recorded after the statement's command count.
    pub state_hash: Option<Hash>,
    /// The height of the command after the statement's count, if any.
    pub next_command_height: Option<u64>,
}

/// Why an answer is not printed.
#[derive(Debug, PartialEq, Eq)]
pub enum Unverified {
    /// The executor has not caught up with the chain yet (try again).
    Stale(String),
    /// The answer is not what the enclave signed, or not about this query,
    /// this contract or this chain.
    Forged(String),
}

/// Checks `a` (the answer to `q`) against the chain's `facts`.
pub fn check_answer(a: &QueryAnswer, q: &SignedQuery, f: &Facts) -> Result<(), Unverified> {
    let st = &a.statement;
    let forged = |why: &str| Err(Unverified::Forged(why.to_string()));
    if st.executor != f.executor {
        return forged("signed by another enclave than the contract's executor");
    }
    if f.executor
        .verify(&st.signing_bytes(), &a.signature)
        .is_err()
    {
        return forged("the executor's signature does not verify");
    }
    if (st.chain, st.contract) != (f.chain, f.contract) {
        return forged("about another chain or contract");
    }
    if st.query != q.hash() || st.reply != Hash::of(&a.reply) {
        return forged("about another query or reply");
    }
    if !st.proven {
        return forged(
            "the enclave did not check its state against headers it verified (its host fed it unproven commands)",
        );
    }
    if f.block_hash != Some(st.block_hash) {
        return forged("names a block the chain does not have at that height");
    }
    if st.applied < f.applied_before || f.next_command_height.is_some_and(|h| h <= st.height) {
        return Err(Unverified::Stale(format!(
            "the executor's state has {} commands; the chain has more by height {}",
            st.applied, st.height
        )));
    }
    let recorded = match st.applied {
        0 => Some(proctor_vm::contract::State::default().hash()),
        _ => f.state_hash,
    };
    if recorded != Some(st.state_hash) {
        return forged("names a state the chain's receipts do not");
    }
    Ok(())
}

/// What `contract query` prints.
#[derive(Serialize)]
struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_hex: Option<String>,
    height: u64,
    block_hash: Hash,
    state_hash: Hash,
    /// Commands the answering state had applied.
    applied: u64,
    enclave: proctor_primitives::PublicKey,
    verified: bool,
}

/// Sends `msg` as a query to contract `id`'s executor; the checked answer.
async fn query(url: &str, k: &Keypair, id: u64, msg: &[u8], timeout: Duration) -> Result<Answer> {
    use proctor_rpc::jsonrpsee::core::client::ClientT;
    let c = client(url)?;
    let chain = c.chain_info().await.map_err(rpc_err(url))?.genesis_hash;
    let end = Instant::now() + timeout;
    let info = wait_for_key(&c, url, id, end).await?;
    let key = info.key.expect("waited for it");
    let endpoint = c
        .enclave_endpoint(info.executor)
        .await
        .map_err(rpc_err(url))?
        .ok_or_else(|| anyhow!("contract {id}'s executor has no query endpoint on chain"))?;
    let executor = proctor_rpc::http_client(&endpoint)
        .map_err(|e| anyhow!("the executor's endpoint {endpoint}: {e}"))?;
    let caller = k.public();
    let reply_to = reply_key(k).public();
    loop {
        let head = c.head().await.map_err(rpc_err(url))?;
        let expires_at = head.height + QUERY_TTL_BLOCKS;
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
        let info = query_info(&chain, id, &caller, expires_at);
        let sealed = envelope::seal_to(&key, &info, msg, &mut rng)
            .map_err(|e| anyhow!("sealing the query: {e}"))?;
        let mut q = SignedQuery {
            chain,
            contract: id,
            caller,
            expires_at,
            reply_to,
            sealed,
            signature: proctor_primitives::Signature([0; 64]),
        };
        q.signature = k.sign(&q.signing_bytes());
        let applied_before = c.contract(id).await.map_err(rpc_err(url))?.applied;
        let params = proctor_rpc::jsonrpsee::rpc_params![hex::encode(codec::encode(&q))];
        let hex_answer: String = executor
            .request(proctor_worker::QUERY_METHOD, params)
            .await
            .map_err(|e| anyhow!("the executor at {endpoint} did not answer: {e}"))?;
        let a: QueryAnswer = codec::decode("query answer", &hex::decode(&hex_answer)?)?;
        let st = &a.statement;
        let block_hash = c.block(st.height.to_string()).await.ok().map(|b| b.hash);
        let state_hash = match st.applied {
            0 => None,
            n => c
                .contract_command(id, n)
                .await
                .ok()
                .and_then(|cmd| cmd.receipt)
                .map(|r| r.state_hash),
        };
        let next_command_height = c
            .contract_command(id, st.applied + 1)
            .await
            .ok()
            .map(|cmd| cmd.height);
        let facts = Facts {
            chain,
            contract: id,
            executor: info_executor(&c, url, id).await?,
            applied_before,
            block_hash,
            state_hash,
            next_command_height,
        };
        match check_answer(&a, &q, &facts) {
            Ok(()) => {}
            Err(Unverified::Stale(why)) if Instant::now() < end => {
                tracing::debug!("{why}; asking again");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Err(Unverified::Stale(why) | Unverified::Forged(why)) => {
                bail!("the executor's answer does not verify: {why}")
            }
        }
        let reply = reply_key(k)
            .open(&query_reply_info(&q.hash()), &a.reply)
            .map_err(|e| anyhow!("the reply does not open with this key: {e}"))?;
        let (text, hex) = match String::from_utf8(reply) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(hex::encode(e.into_bytes()))),
        };
        if st.code != 0 {
            bail!(
                "the contract refused the query (code {}): {}",
                st.code,
                text.as_deref().or(hex.as_deref()).unwrap_or("")
            );
        }
        return Ok(Answer {
            reply: text,
            reply_hex: hex,
            height: st.height,
            block_hash: st.block_hash,
            state_hash: st.state_hash,
            applied: st.applied,
            enclave: st.executor,
            verified: true,
        });
    }
}

/// The executor of contract `id`, if it is a registered enclave.
async fn info_executor(
    c: &HttpClient,
    url: &str,
    id: u64,
) -> Result<proctor_primitives::PublicKey> {
    let e = c.contract(id).await.map_err(rpc_err(url))?.executor;
    c.enclave(e)
        .await
        .map_err(rpc_err(url))?
        .map(|r| r.identity)
        .ok_or_else(|| anyhow!("contract {id}'s executor {e} is not a registered enclave"))
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
                let sent = serde_json::json!({ "id": id, "seq": seq });
                return print(json, &sent, |_| {
                    format!("contract {id}: command {seq} sent")
                });
            }
            let applied = wait_applied(url, &k, id, seq, Instant::now() + timeout).await?;
            report(json, &applied)
        }
        ContractCmd::Query {
            id,
            key,
            msg,
            timeout,
            json,
        } => {
            let k = keys::read(&key)?;
            let msg = message(&msg)?;
            let a = query(url, &k, id, &msg, Duration::from_secs(timeout)).await?;
            print(json, &a, |a| {
                let reply = a
                    .reply
                    .clone()
                    .or_else(|| a.reply_hex.as_ref().map(|h| format!("(hex) {h}")))
                    .unwrap_or_default();
                format!(
                    "{reply}\n  (verified: enclave {} at height {}, block {}, state {} after {} commands)",
                    a.enclave, a.height, a.block_hash, a.state_hash, a.applied
                )
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proctor_enclave::contracts::QueryStatement;

    /// An answer signed by `executor`, and the facts that make it check out.
    fn answer(executor: &Keypair) -> (QueryAnswer, SignedQuery, Facts) {
        let caller = Keypair::from_secret(&[1; 32]);
        let mut q = SignedQuery {
            chain: Hash([1; 32]),
            contract: 7,
            caller: caller.public(),
            expires_at: 50,
            reply_to: proctor_primitives::EncryptionKey([2; 32]),
            sealed: vec![3; 40],
            signature: proctor_primitives::Signature([0; 64]),
        };
        q.signature = caller.sign(&q.signing_bytes());
        let reply = vec![4; 60];
        let statement = QueryStatement {
            chain: q.chain,
            contract: 7,
            applied: 3,
            height: 40,
            block_hash: Hash([5; 32]),
            state_hash: Hash([6; 32]),
            query: q.hash(),
            reply: Hash::of(&reply),
            code: 0,
            executor: executor.public(),
            proven: true,
        };
        let signature = executor.sign(&statement.signing_bytes());
        let facts = Facts {
            chain: q.chain,
            contract: 7,
            executor: executor.public(),
            applied_before: 3,
            block_hash: Some(Hash([5; 32])),
            state_hash: Some(Hash([6; 32])),
            next_command_height: Some(41),
        };
        (
            QueryAnswer {
                statement,
                reply,
                signature,
            },
            q,
            facts,
        )
    }

    fn forged(r: Result<(), Unverified>) -> bool {
        matches!(r, Err(Unverified::Forged(_)))
    }

    #[test]
    fn a_tampered_or_foreign_answer_is_refused_and_a_stale_one_retried() {
        let executor = Keypair::from_secret(&[9; 32]);
        let (a, q, f) = answer(&executor);
        assert_eq!(check_answer(&a, &q, &f), Ok(()));
        // A byte of the sealed reply, the state hash, the height: altered.
        let mut x = a.clone();
        x.reply[0] ^= 1;
        assert!(forged(check_answer(&x, &q, &f)));
        let mut x = a.clone();
        x.statement.state_hash = Hash([7; 32]);
        assert!(forged(check_answer(&x, &q, &f)));
        // Genuinely signed, but from a state the enclave could not check
        // against the chain's headers.
        let mut x = a.clone();
        x.statement.proven = false;
        x.signature = executor.sign(&x.statement.signing_bytes());
        assert!(forged(check_answer(&x, &q, &f)));
        // Re-signed by another key (the host's own).
        let host = Keypair::from_secret(&[8; 32]);
        let mut x = a.clone();
        x.statement.executor = host.public();
        x.signature = host.sign(&x.statement.signing_bytes());
        assert!(forged(check_answer(&x, &q, &f)));
        // Signed, but about another query, block or state than the chain's.
        let mut other = q.clone();
        other.expires_at += 1;
        assert!(forged(check_answer(&a, &other, &f)));
        let wrong_block = Facts {
            block_hash: Some(Hash([0; 32])),
            ..answer(&executor).2
        };
        assert!(forged(check_answer(&a, &q, &wrong_block)));
        let wrong_state = Facts {
            state_hash: Some(Hash([0; 32])),
            ..answer(&executor).2
        };
        assert!(forged(check_answer(&a, &q, &wrong_state)));
        // Behind the chain: a command it has not applied was in a block by
        // the statement's height, or the chain had more receipts.
        let behind = Facts {
            next_command_height: Some(40),
            ..answer(&executor).2
        };
        assert!(matches!(
            check_answer(&a, &q, &behind),
            Err(Unverified::Stale(_))
        ));
        let fewer = Facts {
            applied_before: 4,
            ..answer(&executor).2
        };
        assert!(matches!(
            check_answer(&a, &q, &fewer),
            Err(Unverified::Stale(_))
        ));
    }
}
