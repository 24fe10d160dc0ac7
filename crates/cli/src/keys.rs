//! Key files: JSON with the address, the public key and the secret seed,
//! readable only by their owner.

use anyhow::{Context, Result, bail};
use proctor_primitives::{Address, Keypair, PublicKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    address: Address,
    public_key: PublicKey,
    secret_key: String,
}

/// Public facts about a key, as `keys show` prints them.
#[derive(Serialize)]
pub struct KeyInfo {
    pub address: Address,
    pub public_key: PublicKey,
}

pub fn info(k: &Keypair) -> KeyInfo {
    KeyInfo {
        address: k.public().address(),
        public_key: k.public(),
    }
}

/// Writes a new key file; refuses to overwrite an existing one (that would lose funds).
pub fn write(path: &Path, k: &Keypair) -> Result<()> {
    if path.exists() {
        bail!(
            "{} already exists: refusing to overwrite a key file",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = KeyFile {
        address: k.public().address(),
        public_key: k.public(),
        secret_key: hex::encode(k.secret_bytes()),
    };
    let text = serde_json::to_string_pretty(&file)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a key file and checks that its parts agree.
pub fn read(path: &Path) -> Result<Keypair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proctor key file", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(&file.secret_key, &mut seed)
        .with_context(|| format!("{}: secret_key must be 64 hex characters", path.display()))?;
    let k = Keypair::from_secret(&seed);
    if k.public() != file.public_key || k.public().address() != file.address {
        bail!(
            "{}: the public key or address does not match the secret key (file damaged?)",
            path.display()
        );
    }
    Ok(k)
}

#[derive(clap::Subcommand)]
pub(crate) enum KeysCmd {
    /// Generate a new key file.
    New {
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show a key file's address and public key (never the secret).
    Show {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::New { out, json } => {
            let k = proctor_primitives::Keypair::generate(&mut rand_core::OsRng);
            write(&out, &k)?;
            crate::print(json, &info(&k), |i| {
                format!("wrote {}\naddress: {}", out.display(), i.address)
            })
        }
        KeysCmd::Show { file, json } => {
            let k = read(&file)?;
            crate::print(json, &info(&k), |i| {
                format!("address:    {}\npublic key: {}", i.address, i.public_key)
            })
        }
    }
}
