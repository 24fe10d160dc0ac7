//! The `tsm` backend: Linux's configfs-tsm report interface, which serves
//! Intel TDX (and AMD SEV-SNP) guests:
//! `mkdir /sys/kernel/config/tsm/report/<entry>`, write 64 bytes to `inblob`,
//! read the quote from `outblob`; `provider` names the TEE and `generation`
//! counts writes, so a concurrent writer is detected (generation changed
//! between our write and our read) instead of returning another's quote.
//!
//! configfs-tsm has no sealing interface, so the identity key of this backend
//! lives for the process only: sealed data does not survive a restart and the
//! enclave registers again. Only TDX quotes are verifiable on chain today;
//! `sev_guest` is refused at start-up with that reason. Untested on real
//! hardware here: the file protocol is tested against a stand-in directory.

use crate::quote::{DcapQuote, TdxRegisters};
use crate::sealed::{Backend, Keys, io};
use crate::{Error, Quote, Result, TeeKind};
use proctor_primitives::{Hash, Keypair};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where configfs-tsm report entries live.
pub const DEFAULT_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

pub struct TsmPlatform {
    entry: PathBuf,
    measurement: Hash,
    keys: Keys,
}

fn read_text(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| io(path, e))?
        .trim()
        .to_string())
}

impl TsmPlatform {
    /// Opens (creating if needed) report entry `name` under `report_dir`.
    pub fn open(report_dir: &Path, name: &str) -> Result<Self> {
        let entry = report_dir.join(name);
        if !entry.exists() {
            std::fs::create_dir(&entry).map_err(|e| io(&entry, e))?;
        }
        let provider = read_text(&entry.join("provider"))?;
        if provider != "tdx_guest" {
            return Err(Error::Config(format!(
                "TSM provider {provider:?}: only TDX (tdx_guest) quotes can be verified on chain so far"
            )));
        }
        let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Config(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let identity = Keypair::from_secret(&seed);
        let keys = Keys::new(identity, key, rng);
        let mut p = TsmPlatform {
            entry,
            measurement: Hash::ZERO,
            keys,
        };
        let own = p.raw_quote(&[0; 64])?;
        p.measurement = TdxRegisters::from_quote(&own)
            .ok_or_else(|| {
                Error::Config("the TSM returned no TDX v4/v5 quote with a TD report".into())
            })?
            .measurement();
        Ok(p)
    }

    fn raw_quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>> {
        let inblob = self.entry.join("inblob");
        std::fs::write(&inblob, report_data).map_err(|e| io(&inblob, e))?;
        let generation = read_text(&self.entry.join("generation"))?;
        let outblob = self.entry.join("outblob");
        let quote = std::fs::read(&outblob).map_err(|e| io(&outblob, e))?;
        if read_text(&self.entry.join("generation"))? != generation {
            return Err(Error::Config(
                "another process wrote the TSM report entry concurrently; retry".into(),
            ));
        }
        Ok(quote)
    }
}

impl Backend for TsmPlatform {
    fn tee_kind(&self) -> TeeKind {
        TeeKind::Tdx
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

    const TDX: &[u8] = include_bytes!("../tests/fixtures/tdx_quote");

    fn stand_in(name: &str, provider: &str) -> PathBuf {
        stand_in_quoting(name, provider, TDX)
    }

    /// A configfs-tsm directory whose report entry returns `quote`.
    fn stand_in_quoting(name: &str, provider: &str, quote: &[u8]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("proctor-tsm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let e = d.join("proctor");
        std::fs::create_dir_all(&e).unwrap();
        std::fs::write(e.join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(e.join("generation"), "1\n").unwrap();
        std::fs::write(e.join("outblob"), quote).unwrap();
        d
    }

    #[test]
    fn file_protocol_measurement_and_quote() {
        let dir = stand_in("proto", "tdx_guest");
        let mut p = TsmPlatform::open(&dir, "proctor").unwrap();
        assert_eq!(p.kind(), TeeKind::Tdx);
        assert_eq!(
            p.measurement(),
            TdxRegisters::from_quote(TDX).unwrap().measurement()
        );
        let Quote::Dcap(q) = p.quote(&[5; 64]).unwrap() else {
            panic!("expected a DCAP quote")
        };
        assert_eq!(q.quote, TDX);
        assert_eq!(std::fs::read(dir.join("proctor/inblob")).unwrap(), [5; 64]);
        let sealed = p.seal(b"x");
        assert_eq!(p.unseal(&sealed).unwrap(), b"x");
    }

    /// A host boots another kernel (or root file system) under the same
    /// firmware: MRTD is unchanged, an RTMR differs. That is other code, and
    /// must be another measurement (it was the same when only MRTD counted).
    #[test]
    fn another_kernel_under_the_same_firmware_is_another_measurement() {
        let honest = TsmPlatform::open(&stand_in("rtmr-a", "tdx_guest"), "proctor").unwrap();
        for (i, at) in [
            ("rtmr0", 48 + 328),
            ("rtmr2", 48 + 424),
            ("owner", 48 + 232),
        ] {
            let mut other = TDX.to_vec();
            other[at] ^= 0x5a;
            let dir = stand_in_quoting(&format!("rtmr-{i}"), "tdx_guest", &other);
            let p = TsmPlatform::open(&dir, "proctor").unwrap();
            assert_eq!(other[184..232], TDX[184..232], "same MRTD");
            assert_ne!(p.measurement(), honest.measurement(), "{i} changed");
        }
        let mut short = TDX.to_vec();
        short.truncate(48 + 500);
        let dir = stand_in_quoting("rtmr-short", "tdx_guest", &short);
        assert!(TsmPlatform::open(&dir, "proctor").is_err());
    }

    #[test]
    fn refuses_sev_snp_for_now() {
        let dir = stand_in("snp", "sev_guest");
        let err = TsmPlatform::open(&dir, "proctor")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("only TDX"), "{err}");
    }
}
