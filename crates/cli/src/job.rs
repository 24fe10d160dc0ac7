//! `proctor job`: confidential jobs on the compute market, from the
//! requester's side.
//!
//! `job run` does the whole lifecycle: check the module locally, upload it,
//! encrypt the input under a fresh content key K and upload the ciphertext,
//! submit the job with its escrow, wrap K (HPKE) to each assigned enclave's
//! registered encryption key once the chain has placed the job, follow it to
//! settlement, then download the output and open it with the requester's
//! output key. The output key is derived from the account key file, so the
//! same file opens results later (`job result`). The node and the workers
//! only ever hold ciphertext.

use crate::{client, keys, print, print_list, rpc_err, send_call};
use anyhow::{Context, Result, anyhow, bail};
use proctor_primitives::{Address, Amount, Hash, Keypair};
use proctor_rpc::{ApiClient, TxStatus};
use proctor_state::jobs::{JobRecord, JobSpec, JobState, WrappedKey};
use proctor_state::{Call, Event};
use proctor_tee::envelope::{self, RecipientKey};
use rand_core::{OsRng, RngCore};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum JobCmd {
    /// Run a task confidentially on the market and fetch its output.
    Run {
        /// The task: a WASI command module (.wasm).
        task: PathBuf,
        /// The input (stdin of the task); encrypted before it leaves this machine.
        #[arg(long)]
        input: PathBuf,
        /// Key file of the paying account (also opens the output).
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        spec: RunSpec,
        /// Where to write the output (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Follow the job to the end and fetch the output (otherwise return
        /// once the key is released; fetch later with `job result`).
        #[arg(long)]
        watch: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// The chain's genesis.json: enclave quotes are checked against its
        /// trust policy before the content key is wrapped to them (default:
        /// the node's genesis, checked against the node's genesis hash).
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    /// A job's state, instructions and payment.
    Status {
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Jobs of an account (newest first).
    List {
        /// Key file of the account (or give --address).
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        address: Option<String>,
        /// Newest jobs shown, at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Download and open a settled job's output.
    Result {
        id: u64,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Cancel a job before its key was released (refunded minus the expiry fee).
    Cancel {
        id: u64,
        #[arg(long)]
        key: PathBuf,
    },
}

/// The output key of an account key file.
fn output_key(k: &Keypair) -> RecipientKey {
    RecipientKey::from_seed(&k.secret_bytes())
}

pub async fn run(cmd: JobCmd, url: &str) -> Result<()> {
    match cmd {
        JobCmd::Run {
            task,
            input,
            key,
            spec,
            out,
            watch,
            timeout,
            genesis,
        } => {
            let trust = trusted_genesis(url, genesis.as_deref()).await?;
            run_job(
                url,
                &task,
                &input,
                &key,
                spec,
                out.as_deref(),
                (watch, timeout),
                &trust,
            )
            .await
        }
        JobCmd::Status { id, json } => {
            let j = client(url)?.job(id).await.map_err(rpc_err(url))?;
            print(json, &j, describe)
        }
        JobCmd::List {
            key,
            address,
            limit,
            json,
        } => {
            let who: Address = match (key, address) {
                (Some(k), _) => keys::read(&k)?.public().address(),
                (None, Some(a)) => a.parse().map_err(|e| anyhow!("{e}"))?,
                (None, None) => bail!("give --key FILE or --address ADDRESS"),
            };
            let c = client(url)?;
            let (mut jobs, mut before) = (Vec::new(), None);
            while jobs.len() < limit {
                let want = (limit - jobs.len()).min(1_000) as u32;
                let page = c
                    .jobs(who, Some(want), before)
                    .await
                    .map_err(rpc_err(url))?;
                jobs.extend(page.jobs);
                match page.next {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            print_list(json, &jobs, "no jobs", |j| {
                format!(
                    "job {:>4}  {:<9} instructions {:>12}  paid {}",
                    j.id,
                    state_name(j.state),
                    j.instructions,
                    j.paid
                )
            })
        }
        JobCmd::Result { id, key, out } => {
            let k = keys::read(&key)?;
            let c = client(url)?;
            let j = c.job(id).await.map_err(rpc_err(url))?;
            let output = fetch_output(url, &j, &k).await?;
            write_output(out.as_deref(), &output)
        }
        JobCmd::Cancel { id, key } => {
            let k = keys::read(&key)?;
            send_call(
                url,
                &k,
                Call::Market(proctor_state::market::Call::CancelJob { job: id }),
                None,
                Some(Duration::from_secs(120)),
            )
            .await?;
            let j = client(url)?.job(id).await.map_err(rpc_err(url))?;
            println!("job {id} cancelled: {} refunded", j.refund);
            Ok(())
        }
    }
}

/// What a job asks for (the `job run` flags that become its on-chain spec).
#[derive(clap::Args)]
pub struct RunSpec {
    /// Independent workers; more than one compares their outputs.
    #[arg(long, default_value_t = 1)]
    replicas: u8,
    /// Most to pay per instruction, in base units.
    #[arg(long, default_value_t = 10)]
    max_price: u128,
    /// Instructions the task may use on each worker.
    #[arg(long, default_value_t = 1_000_000_000)]
    fuel: u64,
    /// Memory the task may use, in 64 KiB pages.
    #[arg(long, default_value_t = 256)]
    memory_pages: u64,
    /// Blocks each worker has to report.
    #[arg(long, default_value_t = 20)]
    deadline: u64,
    /// Blocks the job's data is kept after it ends.
    #[arg(long, default_value_t = 100)]
    retention: u64,
    /// A program argument (repeatable).
    #[arg(long = "arg")]
    args: Vec<String>,
}

/// What a refusal reason means for the requester.
fn refusal_text(r: proctor_state::jobs::RefusalReason) -> &'static str {
    use proctor_state::jobs::RefusalReason::*;
    match r {
        ModuleRejected => "the module fails the enclave's checker",
        KeyDoesNotOpen => "the content key posted for it does not open in the enclave",
        InputUndecryptable => "the input does not decrypt with the content key",
        TooLittleTime => "its key came too late to run the fuel before the deadline",
    }
}

fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "submitted",
        JobState::Assigned => "assigned",
        JobState::Running => "running",
        JobState::Settled => "settled",
        JobState::Failed => "failed",
        JobState::Expired => "expired",
        JobState::Cancelled => "cancelled",
        JobState::Refused => "refused",
    }
}

fn describe(j: &JobRecord) -> String {
    let mut s = format!(
        "job {}: {}\n  module {}\n  replicas {}  fuel {}  max price {}\n  escrow {}",
        j.id,
        state_name(j.state),
        j.spec.module,
        j.spec.replicas,
        j.spec.fuel,
        j.spec.max_price,
        j.escrow
    );
    for a in &j.assignments {
        let st = match (&a.key, &a.report) {
            (_, Some(_)) => "reported",
            (Some(_), None) => "running",
            (None, None) => "waiting for the key",
        };
        s += &format!("\n  worker {} at price {}: {st}", a.worker, a.price);
    }
    if j.state.is_final() {
        s += &format!(
            "\n  instructions {}  paid {}  refunded {}",
            j.instructions, j.paid, j.refund
        );
    }
    s
}

/// Uploads a blob (in 1 MiB chunks when large, showing progress), checked
/// against its hash.
async fn upload(url: &str, what: &'static str, bytes: &[u8]) -> Result<Hash> {
    let mut progress = crate::progress::Progress::bytes(what, bytes.len() as u64);
    proctor_rpc::upload_blob_with(&client(url)?, bytes, &mut |d, t| progress.update(d, t))
        .await
        .map_err(rpc_err(url))
}

#[allow(clippy::too_many_arguments)]
async fn run_job(
    url: &str,
    task: &Path,
    input: &Path,
    key: &Path,
    r: RunSpec,
    out: Option<&Path>,
    (watch, timeout): (bool, u64),
    trust: &proctor_state::Genesis,
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(timeout);
    let k = keys::read(key)?;
    let module =
        std::fs::read(task).with_context(|| format!("reading the task {}", task.display()))?;
    proctor_vm::check(&module, &proctor_vm::Limits::default())
        .map_err(|e| anyhow!("{}: not a valid task: {e}", task.display()))?;
    let plaintext =
        std::fs::read(input).with_context(|| format!("reading the input {}", input.display()))?;
    let c = client(url)?;
    let info = c.chain_info().await.map_err(rpc_err(url))?;

    // Upload the module and the encrypted input.
    let module_hash = upload(url, "uploading the task", &module).await?;
    let mut content_key = [0u8; 32];
    OsRng.fill_bytes(&mut content_key);
    let input_hash = upload(
        url,
        "uploading the encrypted input",
        &envelope::encrypt(&content_key, &plaintext, &mut OsRng),
    )
    .await?;

    let spec = JobSpec {
        module: module_hash,
        input: input_hash,
        memory_pages: r.memory_pages,
        fuel: r.fuel,
        max_price: Amount(r.max_price),
        replicas: r.replicas,
        deadline_blocks: r.deadline,
        retention_blocks: r.retention,
        output_key: output_key(&k).public().0,
        args: r.args,
    };
    let escrow = proctor_market::settle::escrow(
        spec.fuel,
        spec.max_price.0,
        spec.replicas as u32,
        &info.market.fees,
    )
    .ok_or_else(|| anyhow!("the job's maximum cost overflows: lower --fuel or --max-price"))?;
    let (_, status) = send_call(
        url,
        &k,
        Call::Market(proctor_state::market::Call::SubmitJob {
            spec,
            escrow: Amount(escrow),
        }),
        None,
        Some(Duration::from_secs(120)),
    )
    .await?;
    let id = match &status {
        TxStatus::Included { events, .. } => events.iter().find_map(|e| match e {
            Event::Market(proctor_state::market::Event::JobSubmitted { job, .. }) => Some(*job),
            _ => None,
        }),
        _ => None,
    }
    .ok_or_else(|| anyhow!("the submission's receipt names no job"))?;
    let progress = |what: &str| {
        eprintln!(
            "[{:>6.1} s] job {id}: {what}",
            started.elapsed().as_secs_f64()
        );
    };
    progress(&format!("submitted, {escrow} escrowed"));

    // Release the key to each enclave the chain assigns, then follow.
    let mut last = JobState::Pending;
    loop {
        let j = c.job(id).await.map_err(rpc_err(url))?;
        if j.state != last {
            last = j.state;
            progress(state_name(j.state));
        }
        match j.state {
            JobState::Assigned => {
                release_key(url, &k, &j, &content_key, trust).await?;
                if !watch {
                    println!(
                        "job {id} submitted; its key is released. Fetch the output with `proctor job result {id} --key {}`",
                        key.display()
                    );
                    return Ok(());
                }
            }
            JobState::Settled => {
                progress(&format!(
                    "verified: {} instructions, {} paid, {} refunded",
                    j.instructions, j.paid, j.refund
                ));
                let output = fetch_output(url, &j, &k).await?;
                return write_output(out, &output);
            }
            JobState::Failed => bail!(
                "job {id} failed: its workers' results disagreed with no majority ({} refunded)",
                j.refund
            ),
            JobState::Expired => bail!(
                "job {id} expired: no result by the deadline ({} refunded)",
                j.refund
            ),
            JobState::Cancelled => bail!("job {id} was cancelled ({} refunded)", j.refund),
            JobState::Refused => bail!(
                "job {id} was refused by its worker's enclave: {} ({} refunded)",
                j.refusal.map_or("no reason given", refusal_text),
                j.refund
            ),
            JobState::Pending | JobState::Running => {}
        }
        if Instant::now() > deadline {
            bail!(
                "job {id} still {} after {timeout} s; follow it with `proctor job status {id}`",
                state_name(j.state)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The genesis whose trust policy enclave quotes are checked against: the
/// file the user gave (it must be the node's chain), or else the node's own,
/// checked against the genesis hash the node reports.
async fn trusted_genesis(url: &str, file: Option<&Path>) -> Result<proctor_state::Genesis> {
    let c = client(url)?;
    let info = c.chain_info().await.map_err(rpc_err(url))?;
    let (g, from) = match file {
        Some(path) => (
            proctor_node::read_genesis(path)?,
            path.display().to_string(),
        ),
        None => (
            c.genesis().await.map_err(rpc_err(url))?,
            format!("the node at {url}"),
        ),
    };
    if g.hash() != info.genesis_hash {
        bail!(
            "the genesis from {from} hashes to {}, but the node at {url} serves chain {}",
            g.hash(),
            info.genesis_hash
        );
    }
    Ok(g)
}

/// Wraps the content key to every assigned enclave still without it, each
/// to the encryption key its own registration quote vouches for (checked
/// here against the genesis trust policy, not taken from the node).
async fn release_key(
    url: &str,
    k: &Keypair,
    j: &JobRecord,
    content_key: &[u8; 32],
    trust: &proctor_state::Genesis,
) -> Result<()> {
    let c = client(url)?;
    let mut keys = Vec::new();
    for a in j.assignments.iter().filter(|a| a.key.is_none()) {
        let q = c.enclave_quote(a.worker).await.map_err(rpc_err(url))?;
        if q.identity != a.worker {
            bail!(
                "the node answered with enclave {} for {}",
                q.identity,
                a.worker
            );
        }
        let encryption_key =
            proctor_rpc::verify_enclave_quote(trust, &q).map_err(|e| anyhow!("{e}"))?;
        let wrapped = envelope::seal_to(
            &encryption_key,
            &envelope::key_info(&j.binding()),
            content_key,
            &mut OsRng,
        )?;
        keys.push(WrappedKey {
            worker: a.worker,
            key: wrapped,
        });
    }
    if keys.is_empty() {
        return Ok(());
    }
    send_call(
        url,
        k,
        Call::Market(proctor_state::market::Call::PostKeys { job: j.id, keys }),
        None,
        Some(Duration::from_secs(120)),
    )
    .await?;
    Ok(())
}

async fn fetch_output(url: &str, j: &JobRecord, k: &Keypair) -> Result<Vec<u8>> {
    if j.requester != k.public().address() {
        bail!("job {} belongs to {}, not to this key", j.id, j.requester);
    }
    let Some(h) = j.output else {
        bail!("job {} has no output (it is {})", j.id, state_name(j.state));
    };
    let mut progress = crate::progress::Progress::bytes("downloading the output", 0);
    let sealed =
        proctor_rpc::download_blob_with(&client(url)?, h, &mut |d, t| progress.update(d, t))
            .await
            .map_err(rpc_err(url))?;
    output_key(k)
        .open(&envelope::output_info(j.id), &sealed)
        .map_err(|e| anyhow!("the output does not open with this key: {e}"))
}

fn write_output(out: Option<&Path>, output: &[u8]) -> Result<()> {
    match out {
        Some(p) => {
            std::fs::write(p, output).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("output: {} bytes written to {}", output.len(), p.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(output)?;
        }
    }
    Ok(())
}
