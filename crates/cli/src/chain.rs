//! `proctor chain` and `proctor tx`: reading the chain.

use crate::{client, print, rpc_err};
use anyhow::{Result, anyhow};
use proctor_primitives::Hash;
use proctor_rpc::ApiClient;
use proctor_rpc::TxStatus;

#[derive(clap::Subcommand)]
pub(crate) enum ChainCmd {
    /// The current head.
    Head {
        #[arg(long)]
        json: bool,
    },
    /// A block by height or hash.
    Block {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Chain identity and parameters.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Total supply at the head (balances plus locked stakes).
    Supply {
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(cmd: ChainCmd, url: &str) -> Result<()> {
    match cmd {
        ChainCmd::Head { json } => {
            let h = client(url)?.head().await.map_err(rpc_err(url))?;
            print(json, &h, |h| {
                format!(
                    "height: {}\nhash:   {}\nstate:  {}",
                    h.height, h.hash, h.state_root
                )
            })
        }
        ChainCmd::Block { id, json } => {
            let b = client(url)?.block(id).await.map_err(rpc_err(url))?;
            print(json, &b, |b| {
                let mut s = format!(
                    "height:     {}\nhash:       {}\nparent:     {}\ntimestamp:  {}\nstate root: {}\nminer:      {}\ndifficulty: {}\ntxs:        {}",
                    b.height,
                    b.hash,
                    b.parent,
                    b.timestamp,
                    b.state_root,
                    b.miner,
                    b.difficulty,
                    b.transactions.len()
                );
                if let Some(p) = &b.pouw {
                    s += &format!(
                        "\npouw:       enclave {} module {} instructions {}",
                        p.enclave, p.module, p.instructions
                    );
                }
                s
            })
        }
        ChainCmd::Info { json } => {
            let i = client(url)?.chain_info().await.map_err(rpc_err(url))?;
            print(json, &i, |i| {
                format!(
                    "chain:   {}\ngenesis: {}\nmin fee: {}",
                    i.chain_id, i.genesis_hash, i.min_fee
                )
            })
        }
        ChainCmd::Supply { json } => {
            let s = client(url)?.supply().await.map_err(rpc_err(url))?;
            print(json, &s, |s| {
                format!(
                    "total supply: {} at height {} ({})",
                    s.total_supply.0, s.height, s.hash
                )
            })
        }
    }
}

/// Where a transaction is.
pub(crate) async fn tx(hash: &str, json: bool, url: &str) -> Result<()> {
    let h: Hash = hash.parse().map_err(|e| anyhow!("{e}"))?;
    let s = client(url)?.transaction(h).await.map_err(rpc_err(url))?;
    print(json, &s, |s| match s {
        TxStatus::Included { height, block, .. } => {
            format!("included at height {height} in block {block}")
        }
        TxStatus::Pending { .. } => "pending".into(),
        TxStatus::Dropped { code, reason, .. } => {
            format!("dropped: {reason} (code {code})")
        }
        TxStatus::Unknown { .. } => "unknown to this node".into(),
    })
}
