//! `proctor governance`: transactions signed by the genesis's governance key.

use crate::{keys, print, send_call};
use anyhow::{Result, anyhow};
use proctor_primitives::Hash;
use proctor_state::Call;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub(crate) enum GovernanceCmd {
    /// Add or retire enclave measurements on the allowlist.
    Measurements {
        /// The governance key file.
        #[arg(long)]
        key: PathBuf,
        /// A measurement to allow (hex; repeatable).
        #[arg(long)]
        add: Vec<String>,
        /// A measurement to retire (hex; repeatable); registered enclaves keep
        /// working for the chain's grace period.
        #[arg(long)]
        retire: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: GovernanceCmd, url: &str) -> Result<()> {
    match cmd {
        GovernanceCmd::Measurements {
            key,
            add,
            retire,
            json,
        } => {
            let k = keys::read(&key)?;
            let parse = |v: &[String]| -> Result<Vec<Hash>> {
                v.iter()
                    .map(|h| h.parse::<Hash>().map_err(|e| anyhow!("{e}")))
                    .collect()
            };
            let call = Call::Governance(proctor_state::governance::Call::UpdateMeasurements {
                add: parse(&add)?,
                retire: parse(&retire)?,
            });
            let (hash, status) =
                send_call(url, &k, call, None, Some(Duration::from_secs(120))).await?;
            print(json, &crate::account::TxResult { hash, status }, |r| {
                format!("allowlist updated by {}", r.hash)
            })
        }
    }
}
