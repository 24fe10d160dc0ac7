//! Choosing the TEE backend an enclave runs on: one place that maps a
//! backend's name and files to a [`Platform`], so the node, the worker and
//! the CLI open enclaves the same way.

use crate::sim::{SimAttestationRoot, SimPlatform};
use crate::{Error, Platform};
use std::path::{Path, PathBuf};

/// A TEE backend and where its files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The simulated TEE (INSECURE, development): sealed state under `dir`,
    /// quotes signed by the attestation root key in `root_file`.
    Sim { dir: PathBuf, root_file: PathBuf },
    /// Intel SGX under Gramine: its attestation pseudo-files and the
    /// enclave's sealed state.
    GramineSgx {
        attestation_dir: PathBuf,
        dir: PathBuf,
    },
    /// Intel TDX through configfs-tsm.
    Tsm { report_dir: PathBuf },
}

/// The backend names [`Backend::from_name`] knows.
pub const NAMES: &str = "sim, gramine-sgx or tsm";

impl Backend {
    /// The backend called `name`, with its files: the enclave state `dir`,
    /// the simulated root (sim only), Gramine's attestation directory and
    /// the configfs-tsm report directory.
    pub fn from_name(
        name: &str,
        dir: &Path,
        sim_root: Option<&Path>,
        attestation_dir: &Path,
        tsm_dir: &Path,
    ) -> Result<Backend, Error> {
        Ok(match name {
            "sim" => Backend::Sim {
                dir: dir.to_path_buf(),
                root_file: sim_root
                    .ok_or_else(|| Error::Config("the sim backend needs a simulated attestation root key file (--sim-root FILE)".into()))?
                    .to_path_buf(),
            },
            "gramine-sgx" => Backend::GramineSgx {
                attestation_dir: attestation_dir.to_path_buf(),
                dir: dir.to_path_buf(),
            },
            "tsm" => Backend::Tsm {
                report_dir: tsm_dir.to_path_buf(),
            },
            other => {
                return Err(Error::Config(format!(
                    "unknown backend {other:?}: use {NAMES}"
                )));
            }
        })
    }

    /// Whether this backend is the insecure simulation.
    pub fn is_simulated(&self) -> bool {
        matches!(self, Backend::Sim { .. })
    }

    /// Opens the platform.
    pub fn open(&self) -> Result<Box<dyn Platform>, Error> {
        Ok(match self {
            Backend::Sim { dir, root_file } => {
                let root = SimAttestationRoot::load(root_file)?;
                Box::new(SimPlatform::open(&dir.join("enclave"), root)?)
            }
            Backend::GramineSgx {
                attestation_dir,
                dir,
            } => Box::new(crate::gramine::GraminePlatform::open(attestation_dir, dir)?),
            Backend::Tsm { report_dir } => {
                Box::new(crate::tsm::TsmPlatform::open(report_dir, "proctor")?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_by_name_and_what_they_need() {
        let d = std::env::temp_dir().join(format!("proctor-backend-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (a, t) = (Path::new("/a"), Path::new("/t"));
        let e = Backend::from_name("sgx-please", &d, None, a, t).unwrap_err();
        assert!(e.to_string().contains("unknown backend"), "{e}");
        let e = Backend::from_name("sim", &d, None, a, t).unwrap_err();
        assert!(e.to_string().contains("--sim-root"), "{e}");
        // A sim backend opens with a root key file; its identity survives
        // a reopen (sealed state under the directory).
        let root = d.join("root.key");
        SimAttestationRoot::generate().write(&root).unwrap();
        let b = Backend::from_name("sim", &d, Some(&root), a, t).unwrap();
        assert!(b.is_simulated());
        let first = b.open().unwrap().identity();
        assert_eq!(b.open().unwrap().identity(), first);
        // Hardware backends say what is missing on a machine without them.
        let tsm = Backend::from_name("tsm", &d, None, a, &d.join("no-tsm")).unwrap();
        assert!(!tsm.is_simulated());
        assert!(tsm.open().is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
