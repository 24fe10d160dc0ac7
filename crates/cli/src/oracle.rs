//! `proctor oracle`: ask the chain for web data signed by an attested
//! enclave (`docs/oracle.md`). `request` sends m1 (a private one sealed to a
//! serving enclave's registered key), `get` shows the datagram (opening a
//! private one with the requester's key), `cancel` withdraws an undelivered
//! request, `list` shows requests.

use crate::{client, keys, print, print_list, rpc_err, send_call};
use anyhow::{Result, anyhow, bail};
use proctor_primitives::{Address, Amount, Hash, Keypair, codec};
use proctor_rpc::ApiClient;
use proctor_state::Call;
use proctor_state::oracle::{
    Body, OracleRequest, Outcome, Params, Query, RequestState, Value, own_info, private_info,
    reply_info,
};
use proctor_tee::envelope::{self, RecipientKey};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum OracleCmd {
    /// Ask for the data at an https:// URL (m1).
    Request {
        /// `https://HOST[:PORT]/PATH`.
        #[arg(long)]
        url: String,
        /// A JSON pointer (RFC 6901) into the response: the datagram carries
        /// that value instead of the body's hash.
        #[arg(long)]
        select: Option<String>,
        /// Seal the URL and selection to the serving enclave and the result
        /// to this account: only the requester reads them.
        #[arg(long)]
        private: bool,
        /// Fee prepaid (default: the chain's minimum oracle fee, plus the
        /// callback's fee with `--callback`).
        #[arg(long)]
        fee: Option<u128>,
        /// Deliver the datagram to this confidential contract too, as a
        /// command from the oracle's address (docs/contracts.md).
        #[arg(long)]
        callback: Option<u64>,
        /// The part of the fee that buys the callback command's fuel
        /// (default: what the chain's egress fuel costs).
        #[arg(long, requires = "callback")]
        callback_fee: Option<u128>,
        /// Blocks to wait for the datagram (default: the chain's).
        #[arg(long)]
        deadline: Option<u64>,
        /// The requester's account key file.
        #[arg(long)]
        key: PathBuf,
        /// Wait until the request is delivered or failed, and show it.
        #[arg(long)]
        wait: bool,
        /// Longest wait, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// A request and its datagram.
    Get {
        id: u64,
        /// The requester's key file: opens a private request's result.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an undelivered request (the fee back, less the cancellation fee).
    Cancel {
        id: u64,
        #[arg(long)]
        key: PathBuf,
    },
    /// Recent requests (only the key's account's with `--key`).
    List {
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

/// What `oracle get` shows.
#[derive(Serialize)]
pub struct View {
    id: u64,
    state: RequestState,
    /// The URL (for a private request, only when opened with the requester's key).
    url: Option<String>,
    select: Option<String>,
    /// The selected JSON value as JSON text, or the body's hash.
    value: Option<String>,
    status: Option<u16>,
    server_name: Option<String>,
    cert_hash: Option<Hash>,
    enclave: proctor_primitives::PublicKey,
    height: Option<u64>,
    fee_paid: Amount,
    refunded: Amount,
    error: Option<String>,
    private: bool,
    /// A private datagram's sealed outcome, when it was not opened.
    sealed: Option<String>,
}

/// The key a private request's result is sealed to: derived from the
/// account key file, so the file opens it.
fn reply_key(k: &Keypair) -> RecipientKey {
    RecipientKey::from_seed(&Hash::tagged("proctor/oracle/reply-key", &[&k.secret_bytes()]).0)
}

fn view(r: &OracleRequest, chain: &Hash, key: Option<&Keypair>) -> Result<View> {
    let mine = key.filter(|k| k.public().address() == r.requester);
    let (url, select, private) = match (&r.query, mine) {
        (Query::Public(p), _) => (Some(p.url.clone()), p.select.clone(), false),
        // The requester reads back what it asked; nobody else can.
        (Query::Private { own, .. }, Some(k)) => {
            let plain = reply_key(k)
                .open(&own_info(chain, &r.requester), own)
                .map_err(|e| anyhow!("the sealed params do not open with this key: {e}"))?;
            let p: Params = codec::decode("oracle params", &plain)?;
            (Some(p.url), p.select, true)
        }
        (Query::Private { .. }, None) => (None, None, true),
    };
    let mut v = View {
        id: r.id,
        state: r.state,
        url,
        select,
        value: None,
        status: None,
        server_name: None,
        cert_hash: None,
        enclave: r.enclave,
        height: r.height,
        fee_paid: r.fee_paid,
        refunded: r.refunded,
        error: r.error.clone(),
        private,
        sealed: None,
    };
    let Some(d) = &r.datagram else {
        return Ok(v);
    };
    let outcome = match &d.body {
        Body::Public(o) => Some(o.clone()),
        Body::Sealed { ciphertext } => match key {
            Some(k) if r.requester == k.public().address() => {
                let plain = reply_key(k)
                    .open(&reply_info(chain, r.id), ciphertext)
                    .map_err(|e| anyhow!("the sealed result does not open with this key: {e}"))?;
                Some(codec::decode::<Outcome>("oracle outcome", &plain)?)
            }
            Some(_) => bail!("request {} is not this key's account's", r.id),
            None => {
                v.sealed = Some(hex::encode(ciphertext));
                None
            }
        },
    };
    match outcome {
        Some(Outcome::Fetched {
            server_name,
            cert_hash,
            status,
            value,
        }) => {
            v.value = Some(match value {
                Value::Json(text) => text,
                Value::BodyHash(h) => h.to_string(),
            });
            v.status = Some(status);
            v.server_name = Some(server_name);
            v.cert_hash = Some(cert_hash);
        }
        Some(Outcome::Failed { reason, detail }) => {
            v.state = RequestState::Failed;
            let reason = serde_json::to_value(reason)?;
            v.error = Some(format!("{}: {detail}", reason.as_str().unwrap_or("failed")));
        }
        None => {}
    }
    Ok(v)
}

fn state_name(s: RequestState) -> &'static str {
    match s {
        RequestState::Pending => "pending",
        RequestState::Delivered => "delivered",
        RequestState::Failed => "failed",
        RequestState::Cancelled => "cancelled",
    }
}

fn describe(v: &View) -> String {
    let mut out = format!("oracle request {}: {}", v.id, state_name(v.state));
    if let Some(u) = &v.url {
        out += &format!("\n  url      {u}");
    }
    if let Some(s) = &v.select {
        out += &format!("\n  select   {s}");
    }
    if let Some(x) = &v.value {
        out += &format!("\n  value    {x}");
    }
    if let (Some(s), Some(n), Some(c)) = (v.status, &v.server_name, &v.cert_hash) {
        out += &format!("\n  status   {s} from {n} (certificate {c})");
    }
    if let Some(e) = &v.error {
        out += &format!("\n  error    {e}");
    }
    if v.sealed.is_some() {
        out += "\n  (private: give --key to open the result)";
    }
    out += &format!(
        "\n  enclave  {}\n  fee paid {}, refunded {}",
        v.enclave, v.fee_paid, v.refunded
    );
    out
}

pub async fn run(cmd: OracleCmd, url: &str) -> Result<()> {
    let c = client(url)?;
    match cmd {
        OracleCmd::Request {
            url: target,
            select,
            private,
            fee,
            callback,
            callback_fee,
            deadline,
            key,
            wait,
            timeout,
            json,
        } => {
            let k = keys::read(&key)?;
            let g = c.genesis().await.map_err(rpc_err(url))?;
            let chain = g.hash();
            let params = Params {
                url: target,
                select,
            };
            params.check().map_err(|e| anyhow!("{e}"))?;
            let query = match private {
                false => Query::Public(params),
                true => {
                    let providers = c.oracle_providers().await.map_err(rpc_err(url))?;
                    if providers.is_empty() {
                        bail!("no enclave serves oracle requests on this chain");
                    }
                    let pick = Hash::of(params.url.as_bytes()).0[0] as usize % providers.len();
                    let e = &providers[pick];
                    let requester: Address = k.public().address();
                    let reply = reply_key(&k).public();
                    let mut seed = [0u8; 32];
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
                    let mut rng =
                        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
                    let sealed = envelope::seal_to(
                        &e.encryption_key,
                        &private_info(&chain, &requester, &reply),
                        &codec::encode(&params),
                        &mut rng,
                    )
                    .map_err(|e| anyhow!("sealing to the enclave: {e}"))?;
                    let own = envelope::seal_to(
                        &reply,
                        &own_info(&chain, &requester),
                        &codec::encode(&params),
                        &mut rng,
                    )
                    .map_err(|e| anyhow!("sealing to the reply key: {e}"))?;
                    Query::Private {
                        enclave: e.identity,
                        sealed,
                        reply_key: reply,
                        own,
                    }
                }
            };
            let contracts = &g.params.contracts;
            let callback = match callback {
                None => None,
                Some(contract) => Some(proctor_state::oracle::Callback {
                    contract,
                    fee: match callback_fee {
                        Some(f) => Amount(f),
                        None => contracts
                            .cost(contracts.egress_fuel)
                            .ok_or_else(|| anyhow!("the chain's egress fuel cost overflows"))?,
                    },
                }),
            };
            let cb_fee = callback.as_ref().map_or(0, |c| c.fee.0);
            let fee = fee
                .map(Amount)
                .unwrap_or(Amount(g.params.oracle.min_fee.0.saturating_add(cb_fee)));
            let call = Call::Oracle(proctor_state::oracle::Call::Request {
                query: query.clone(),
                callback,
                fee,
                deadline_blocks: deadline.unwrap_or(0),
            });
            let (tx, status) =
                send_call(url, &k, call, None, Some(Duration::from_secs(timeout))).await?;
            let id = match status {
                proctor_rpc::TxStatus::Included { events, .. } => {
                    events.iter().find_map(|e| match e {
                        proctor_state::Event::Oracle(
                            proctor_state::oracle::Event::OracleRequested { id, .. },
                        ) => Some(*id),
                        _ => None,
                    })
                }
                _ => None,
            }
            .ok_or_else(|| anyhow!("transaction {tx} was included without a request"))?;
            if !wait {
                let sent = serde_json::json!({ "id": id, "tx": tx });
                return print(json, &sent, |_| {
                    format!("oracle request {id} sent (transaction {tx})")
                });
            }
            let end = Instant::now() + Duration::from_secs(timeout);
            loop {
                let r = c.oracle_request(id).await.map_err(rpc_err(url))?;
                if r.state != RequestState::Pending {
                    return print(json, &view(&r, &chain, Some(&k))?, describe);
                }
                if Instant::now() > end {
                    bail!("request {id} is still pending after {timeout} s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        OracleCmd::Get { id, key, json } => {
            let k = key.map(|p| keys::read(&p)).transpose()?;
            let chain = c.chain_info().await.map_err(rpc_err(url))?.genesis_hash;
            let r = c.oracle_request(id).await.map_err(rpc_err(url))?;
            print(json, &view(&r, &chain, k.as_ref())?, describe)
        }
        OracleCmd::Cancel { id, key } => {
            let k = keys::read(&key)?;
            send_call(
                url,
                &k,
                Call::Oracle(proctor_state::oracle::Call::Cancel { id }),
                None,
                Some(Duration::from_secs(120)),
            )
            .await?;
            let r = c.oracle_request(id).await.map_err(rpc_err(url))?;
            println!("oracle request {id} cancelled: {} refunded", r.refunded);
            Ok(())
        }
        OracleCmd::List { key, limit, json } => {
            let k = key.map(|p| keys::read(&p)).transpose()?;
            let who = k.as_ref().map(|k| k.public().address());
            let chain = c.chain_info().await.map_err(rpc_err(url))?.genesis_hash;
            let rs = c
                .oracle_requests(who, Some(limit))
                .await
                .map_err(rpc_err(url))?;
            let views = rs
                .iter()
                .map(|r| {
                    view(
                        r,
                        &chain,
                        k.as_ref().filter(|k| k.public().address() == r.requester),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            print_list(json, &views, "no oracle requests", |v| {
                format!(
                    "request {:>4}  {:<9} {}",
                    v.id,
                    state_name(v.state),
                    v.value
                        .as_deref()
                        .or(v.url.as_deref())
                        .unwrap_or("(private)")
                )
            })
        }
    }
}
