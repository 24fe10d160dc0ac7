//! `proctor account` and `proctor transfer`.

use crate::{client, keys, parse_address, print, rpc_err, send_call};
use anyhow::Result;
use proctor_primitives::{Amount, Hash};
use proctor_rpc::{ApiClient, TxStatus};
use proctor_state::Call;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// An account's balance and nonce.
pub(crate) async fn show(address: &str, json: bool, url: &str) -> Result<()> {
    let a = parse_address(address)?;
    let info = client(url)?.account(a).await.map_err(rpc_err(url))?;
    print(json, &info, |i| {
        format!(
            "address: {}\nbalance: {}\nnonce:   {}",
            i.address, i.balance, i.nonce
        )
    })
}

/// A submitted transaction and where it is.
#[derive(Serialize)]
pub(crate) struct TxResult {
    pub(crate) hash: Hash,
    pub(crate) status: TxStatus,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn transfer(
    url: &str,
    key: PathBuf,
    to: &str,
    amount: u128,
    fee: Option<u128>,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> Result<()> {
    let k = keys::read(&key)?;
    let call = Call::Accounts(proctor_state::accounts::Call::Transfer {
        to: parse_address(to)?,
        amount: Amount(amount),
    });
    let (hash, status) = send_call(url, &k, call, fee.map(Amount), wait.then_some(timeout)).await?;
    print(json, &TxResult { hash, status }, |r| match &r.status {
        TxStatus::Included { height, .. } => {
            format!("transfer {} included at height {height}", r.hash)
        }
        _ => format!("transfer {} submitted", r.hash),
    })
}
