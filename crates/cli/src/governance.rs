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
    /// Elect or retire gatekeepers of confidential contracts, or choose
    /// forward secrecy (docs/contracts.md).
    Gatekeepers {
        /// The governance key file.
        #[arg(long)]
        key: PathBuf,
        /// An enclave to elect (its identity, hex; repeatable): it becomes
        /// a gatekeeper once it holds the root key.
        #[arg(long)]
        elect: Vec<String>,
        /// A gatekeeper to retire (repeatable): it leaves at the next key
        /// rotation.
        #[arg(long)]
        retire: Vec<String>,
        /// Destroy the keys of past eras once no checkpoint needs them.
        #[arg(long, value_parser = ["on", "off"])]
        forward_secrecy: Option<String>,
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
        GovernanceCmd::Gatekeepers {
            key,
            elect,
            retire,
            forward_secrecy,
            json,
        } => {
            use proctor_state::contracts::Call as C;
            let k = keys::read(&key)?;
            let enclave = |s: &String| {
                s.parse::<proctor_primitives::PublicKey>()
                    .map_err(|e| anyhow!("{s:?} is not an enclave identity: {e}"))
            };
            let mut calls = Vec::new();
            for e in &elect {
                calls.push(C::ElectGatekeeper {
                    enclave: enclave(e)?,
                });
            }
            for e in &retire {
                calls.push(C::RetireGatekeeper {
                    enclave: enclave(e)?,
                });
            }
            if let Some(on) = forward_secrecy {
                calls.push(C::ForwardSecrecy { on: on == "on" });
            }
            if calls.is_empty() {
                return Err(anyhow!(
                    "nothing to do: give --elect, --retire or --forward-secrecy"
                ));
            }
            let mut results = Vec::new();
            for call in calls {
                let (hash, status) = send_call(
                    url,
                    &k,
                    Call::Contracts(call),
                    None,
                    Some(Duration::from_secs(120)),
                )
                .await?;
                results.push(crate::account::TxResult { hash, status });
            }
            print(json, &results, |r| {
                r.iter()
                    .map(|r| format!("sent {}", r.hash))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}
