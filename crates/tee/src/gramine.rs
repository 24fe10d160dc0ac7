//! The `gramine-sgx` backend: an SGX enclave under Gramine, which exposes
//! attestation as pseudo-files under `/dev/attestation`:
//! - `attestation_type`: must read `dcap`;
//! - `user_report_data`: write the 64 bytes to bind;
//! - `quote`: then read the DCAP quote over them;
//! - `keys/_sgx_mrenclave`: the 16-byte sealing key bound to this enclave's
//!   MRENCLAVE on this CPU.
//!
//! The measurement is the MRENCLAVE of a quote the enclave makes of itself at
//! start-up. Quotes leave without collateral: the host attaches it (fetched
//! from a PCCS) before a registration is sent. Untested on real hardware here
//! (no SGX on our machines): the file protocol is tested against a stand-in
//! directory.

use crate::quote::DcapQuote;
use crate::sealed::{self, Backend, Keys, io};
use crate::{Error, Quote, Result, TeeKind};
use proctor_primitives::Hash;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where Gramine mounts its attestation pseudo-files.
pub const DEFAULT_ATTESTATION_DIR: &str = "/dev/attestation";

/// MRENCLAVE's offset in an SGX DCAP quote (v3): 48-byte header + 64.
const MRENCLAVE: std::ops::Range<usize> = 112..144;

pub struct GraminePlatform {
    dev: PathBuf,
    measurement: Hash,
    keys: Keys,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io(path, e))
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|e| io(path, e))
}

impl GraminePlatform {
    /// Opens the platform: `dev` is Gramine's attestation directory, `state`
    /// where the sealed identity is kept (a Gramine-encrypted or plain mount).
    pub fn open(dev: &Path, state: &Path) -> Result<Self> {
        let kind = read(&dev.join("attestation_type"))?;
        let kind = String::from_utf8_lossy(&kind).trim().to_string();
        if kind != "dcap" {
            return Err(Error::Config(format!(
                "Gramine attestation type is {kind:?}; proctor needs \"dcap\" (set sgx.remote_attestation = \"dcap\" in the manifest)"
            )));
        }
        let key16 = read(&dev.join("keys/_sgx_mrenclave"))?;
        if key16.len() != 16 {
            return Err(Error::Config(format!(
                "sealing key has {} bytes, expected 16",
                key16.len()
            )));
        }
        let seal_key = Zeroizing::new(Hash::tagged("proctor/sgx-seal", &[&key16]).0);
        let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Config(e.to_string()))?;
        let identity = sealed::load_or_create_identity(state, &seal_key, &mut rng)?;
        let keys = Keys::new(identity, seal_key, rng);
        let mut p = GraminePlatform {
            dev: dev.to_path_buf(),
            measurement: Hash::ZERO,
            keys,
        };
        let own = p.raw_quote(&[0; 64])?;
        let m = own
            .get(MRENCLAVE)
            .ok_or_else(|| Error::Config("quote too short to hold MRENCLAVE".into()))?;
        p.measurement = Hash(m.try_into().expect("32-byte range"));
        Ok(p)
    }

    fn raw_quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>> {
        write(&self.dev.join("user_report_data"), report_data)?;
        read(&self.dev.join("quote"))
    }
}

impl Backend for GraminePlatform {
    fn tee_kind(&self) -> TeeKind {
        TeeKind::Sgx
    }
    fn measured(&self) -> Hash {
        self.measurement
    }
    fn hardware_quote(&self, report_data: &[u8; 64]) -> Result<Quote> {
        Ok(Quote::Dcap(DcapQuote {
            quote: self.raw_quote(report_data)?,
            collateral: vec![],
        }))
    }
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn keys_mut(&mut self) -> &mut Keys {
        &mut self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform;

    const SGX: &[u8] = include_bytes!("../tests/fixtures/sgx_quote");

    /// A directory standing in for /dev/attestation, answering with a real quote.
    fn stand_in(name: &str, key: [u8; 16]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("proctor-gramine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("keys")).unwrap();
        std::fs::write(d.join("attestation_type"), "dcap\n").unwrap();
        std::fs::write(d.join("quote"), SGX).unwrap();
        std::fs::write(d.join("keys/_sgx_mrenclave"), key).unwrap();
        d
    }

    #[test]
    fn file_protocol_measurement_quote_and_sealing() {
        let dev = stand_in("proto", [3; 16]);
        let mut p = GraminePlatform::open(&dev, &dev.join("state")).unwrap();
        assert_eq!(p.kind(), TeeKind::Sgx);
        assert_eq!(p.measurement(), Hash(SGX[112..144].try_into().unwrap()));
        let Quote::Dcap(q) = p.quote(&[9; 64]).unwrap() else {
            panic!("expected a DCAP quote")
        };
        assert_eq!(q.quote, SGX);
        assert_eq!(
            std::fs::read(dev.join("user_report_data")).unwrap(),
            [9; 64],
            "report data written for the quote"
        );
        let sealed = p.seal(b"secret");
        assert_eq!(p.unseal(&sealed).unwrap(), b"secret");
        // The identity survives a restart on the same enclave and CPU...
        let id = p.identity();
        let again = GraminePlatform::open(&dev, &dev.join("state")).unwrap();
        assert_eq!(again.identity(), id);
        // ...and is unreadable with another MRENCLAVE's sealing key.
        std::fs::write(dev.join("keys/_sgx_mrenclave"), [4u8; 16]).unwrap();
        assert!(matches!(
            GraminePlatform::open(&dev, &dev.join("state")),
            Err(Error::Unseal)
        ));
    }

    #[test]
    fn refuses_non_dcap_attestation() {
        let dev = stand_in("epid", [1; 16]);
        std::fs::write(dev.join("attestation_type"), "epid").unwrap();
        let err = GraminePlatform::open(&dev, &dev.join("state"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("needs \"dcap\""), "{err}");
    }
}
