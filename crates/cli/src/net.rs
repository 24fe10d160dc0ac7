//! `proctor net`: the node's peers and bans (admin methods take its token).

use crate::{client, print, rpc_err};
use anyhow::{Context, Result};
use proctor_rpc::ApiClient;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub(crate) enum NetCmd {
    /// This node's peer id, connected and banned peers.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Ban a peer (by its peer id) until unbanned: its connections are closed and refused.
    Ban {
        peer: String,
        #[arg(long)]
        reason: Option<String>,
        /// The node's admin token file (`admin.token` in its directory).
        #[arg(long, default_value = "devnet/node/admin.token")]
        admin_token: PathBuf,
    },
    /// Lift a ban.
    Unban {
        peer: String,
        /// The node's admin token file (`admin.token` in its directory).
        #[arg(long, default_value = "devnet/node/admin.token")]
        admin_token: PathBuf,
    },
}

/// Reads a node's admin token file.
fn admin_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the admin token {}: admin commands need the token file from the node's directory (--admin-token)",
            path.display()
        )
    })?;
    Ok(t.trim().to_string())
}

pub(crate) async fn run(cmd: NetCmd, url: &str) -> Result<()> {
    match cmd {
        NetCmd::Info { json } => {
            let n = client(url)?.net_info().await.map_err(rpc_err(url))?;
            print(json, &n, |n| {
                let mut s = format!(
                    "peer id: {}\nlisten:  {}\npeers:   {} connected, {} known, {} orphan blocks",
                    n.peer_id,
                    n.listen.join(" "),
                    n.peers.len(),
                    n.known,
                    n.orphans
                );
                for p in &n.peers {
                    s += &format!(
                        "\n  {} {} ({} points)",
                        p.id,
                        p.address.as_deref().unwrap_or("-"),
                        p.points
                    );
                }
                for b in &n.banned {
                    let until = b
                        .seconds_left
                        .map_or("until unbanned".to_string(), |t| format!("{t} s left"));
                    s += &format!("\n  banned {}: {} ({until})", b.id, b.reason);
                }
                s
            })
        }
        NetCmd::Ban {
            peer,
            reason,
            admin_token: token,
        } => {
            let token = admin_token(&token)?;
            proctor_rpc::AdminClient::ban_peer(&client(url)?, token, peer.clone(), reason)
                .await
                .map_err(rpc_err(url))?;
            println!("banned {peer}");
            Ok(())
        }
        NetCmd::Unban {
            peer,
            admin_token: token,
        } => {
            let token = admin_token(&token)?;
            let was = proctor_rpc::AdminClient::unban_peer(&client(url)?, token, peer.clone())
                .await
                .map_err(rpc_err(url))?;
            println!(
                "{}",
                if was {
                    format!("unbanned {peer}")
                } else {
                    format!("{peer} was not banned")
                }
            );
            Ok(())
        }
    }
}
