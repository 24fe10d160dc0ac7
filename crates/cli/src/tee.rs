//! `proctor tee`: inspect attestation quotes.

use anyhow::{Context, Result, anyhow};
use proctor_tee::quote::{DcapPolicy, DcapQuote, INTEL_SGX_ROOT_CA_DER, verify_dcap};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum TeeCmd {
    /// Show the enclave's backend, measurement and identity key (with no
    /// flags: the first worker enclave of the devnet in ./devnet).
    Info {
        #[command(flatten)]
        backend: crate::worker::BackendArgs,
        #[arg(long)]
        json: bool,
    },
    /// Verify an Intel DCAP (SGX or TDX) quote against Intel's root CA and
    /// print what it proves; exits non-zero with the reason if it does not verify.
    VerifyQuote {
        /// The raw quote (binary, or hex text).
        #[arg(long)]
        quote: PathBuf,
        /// Its collateral, as Intel PCS/PCCS JSON.
        #[arg(long)]
        collateral: PathBuf,
        /// Verify as of this Unix time (default: now).
        #[arg(long)]
        at: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

/// Reads a quote file that holds either raw bytes or their hex.
fn read_quote(path: &PathBuf) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading quote {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
    if !text.is_empty()
        && text.len().is_multiple_of(2)
        && text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return hex::decode(text).map_err(|e| anyhow!("{}: bad hex: {e}", path.display()));
    }
    Ok(bytes)
}

pub fn run(cmd: TeeCmd) -> Result<()> {
    match cmd {
        TeeCmd::Info { backend, json } => {
            let info = backend.or_devnet_enclave()?.open()?.info();
            crate::print(json, &info, |i| {
                format!(
                    "backend:        {:?}
measurement:    {}
identity:       {}
encryption key: {}",
                    i.kind, i.measurement, i.identity, i.encryption_key
                )
            })
        }
        TeeCmd::VerifyQuote {
            quote,
            collateral,
            at,
            json,
        } => {
            let q = DcapQuote {
                quote: read_quote(&quote)?,
                collateral: std::fs::read(&collateral)
                    .with_context(|| format!("reading collateral {}", collateral.display()))?,
            };
            let now = at.unwrap_or_else(|| proctor_node::now_ms() / 1000);
            // Inspection: every TCB status and debug mode are reported, not refused.
            let policy = DcapPolicy {
                root_ca_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
                accepted_tcb_statuses: [
                    "UpToDate",
                    "SWHardeningNeeded",
                    "ConfigurationNeeded",
                    "ConfigurationAndSWHardeningNeeded",
                    "OutOfDate",
                    "OutOfDateConfigurationNeeded",
                    "Revoked",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rejected_advisories: vec![],
                allow_debug: true,
            };
            let claims = verify_dcap(&q, &policy, now)
                .map_err(|e| anyhow!("quote does not verify (code {}): {e}", e.code()))?;
            crate::print(json, &claims, |c| {
                format!(
                    "verified {:?} quote\nmeasurement:  {}\ntcb status:   {}\nadvisories:   {}\ndebug:        {}\nreport data:  {}",
                    c.kind,
                    c.measurement,
                    c.tcb_status.as_deref().unwrap_or("-"),
                    if c.advisory_ids.is_empty() {
                        "none".to_string()
                    } else {
                        c.advisory_ids.join(", ")
                    },
                    c.debug,
                    hex::encode(c.report_data)
                )
            })
        }
    }
}
