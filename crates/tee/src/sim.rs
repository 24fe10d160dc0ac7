//! The simulated TEE. **Insecure by design**: it exists so that proctor can be
//! developed and tested on machines without SGX/TDX.
//!
//! It mirrors the real trust structure:
//! - a per-machine *CPU secret* (a file, standing in for fused hardware keys)
//!   from which the sealing key is derived together with the measurement, so
//!   sealed data opens only for the same enclave code on the same machine;
//! - an *identity key* generated inside the platform from its RNG and stored
//!   only sealed; [`SimPlatform`] never hands out the secret;
//! - a *simulated attestation root* (standing in for Intel's provisioning
//!   chain) that signs quotes; a chain accepts them only if its genesis names
//!   that root and allows sim quotes.

use crate::sealed::{self, Backend, Keys, io};
use crate::{Error, Quote, Result, TeeKind, quote::SimQuote};
use proctor_primitives::{Hash, Keypair, PublicKey};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The measurement the sim backend reports: a hash naming the enclave build.
/// Real backends read it from hardware; here it changes with the crate version
/// so that an upgraded enclave is a different measurement, as on SGX.
pub fn sim_measurement() -> Hash {
    Hash::tagged(
        "proctor/sim-measurement",
        &[b"proctor-enclave", env!("CARGO_PKG_VERSION").as_bytes()],
    )
}

/// The simulated attestation authority: signs quotes for sim platforms.
pub struct SimAttestationRoot {
    key: Keypair,
}

impl SimAttestationRoot {
    pub fn generate() -> Self {
        SimAttestationRoot {
            key: Keypair::generate(&mut OsRng),
        }
    }
    pub fn from_secret(seed: &[u8; 32]) -> Self {
        SimAttestationRoot {
            key: Keypair::from_secret(seed),
        }
    }
    /// Loads the root from a file of 64 hex characters (written by `write`).
    pub fn load(path: &Path) -> Result<Self> {
        let seed = read_secret_file(path)?;
        Ok(Self::from_secret(&seed))
    }
    pub fn write(&self, path: &Path) -> Result<()> {
        write_secret_file(path, &self.key.secret_bytes())
    }
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }
    fn sign_quote(&self, measurement: Hash, report_data: [u8; 64]) -> SimQuote {
        let signature = self
            .key
            .sign(&SimQuote::signed_bytes(&measurement, &report_data));
        SimQuote {
            measurement,
            report_data,
            root: self.key.public(),
            signature,
        }
    }
}

/// A simulated enclave platform rooted in a directory on the host.
pub struct SimPlatform {
    measurement: Hash,
    keys: Keys,
    root: SimAttestationRoot,
}

const CPU_SECRET: &str = "sim-cpu.secret";

impl SimPlatform {
    /// Opens (or on first use creates) the simulated platform whose state lives
    /// in `dir`: the machine's CPU secret and the sealed identity key.
    pub fn open(dir: &Path, root: SimAttestationRoot) -> Result<Self> {
        Self::open_with_measurement(dir, root, sim_measurement())
    }

    /// As [`SimPlatform::open`], for an enclave build with another measurement.
    pub fn open_with_measurement(
        dir: &Path,
        root: SimAttestationRoot,
        measurement: Hash,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let cpu_path = dir.join(CPU_SECRET);
        let cpu = if cpu_path.exists() {
            read_secret_file(&cpu_path)?
        } else {
            let mut s = [0u8; 32];
            OsRng.fill_bytes(&mut s);
            write_secret_file(&cpu_path, &s)?;
            s
        };
        let seal_key = Zeroizing::new(Hash::tagged("proctor/sim-seal", &[&cpu, &measurement.0]).0);
        let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Config(e.to_string()))?;
        let identity = sealed::load_or_create_identity(dir, &seal_key, &mut rng)?;
        Ok(SimPlatform {
            measurement,
            keys: Keys::new(identity, seal_key, rng),
            root,
        })
    }
}

impl Backend for SimPlatform {
    fn tee_kind(&self) -> TeeKind {
        TeeKind::Sim
    }
    fn measured(&self) -> Hash {
        self.measurement
    }
    fn hardware_quote(&self, report_data: &[u8; 64]) -> Result<Quote> {
        Ok(Quote::Sim(
            self.root.sign_quote(self.measurement, *report_data),
        ))
    }
    fn keys(&self) -> &Keys {
        &self.keys
    }
    fn keys_mut(&mut self) -> &mut Keys {
        &mut self.keys
    }
}

fn read_secret_file(path: &Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| Error::Config(format!("{}: expected 64 hex characters", path.display())))?;
    Ok(out)
}

fn write_secret_file(path: &Path, secret: &[u8; 32]) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, hex::encode(secret)).map_err(|e| io(&tmp, e))?;
    restrict_permissions(&tmp);
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}
#[cfg(not(unix))]
fn restrict_permissions(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform;
    use crate::quote::{QuoteError, TrustPolicy};
    use crate::verify_quote;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("proctor-tee-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn identity_survives_restart_and_is_stored_only_sealed() {
        let dir = tmpdir("restart");
        let root = SimAttestationRoot::from_secret(&[3; 32]);
        let a = SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[3; 32])).unwrap();
        let id = a.identity();
        drop(a);
        let b = SimPlatform::open(&dir, root).unwrap();
        assert_eq!(b.identity(), id);
        // The sealed file must not contain the identity secret in the clear.
        let sealed = std::fs::read(dir.join(sealed::SEALED_IDENTITY)).unwrap();
        let sig = b.sign(b"x");
        assert!(id.verify(b"x", &sig).is_ok());
        assert!(sealed.len() > 32 + 24);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sealed_data_does_not_open_under_another_measurement() {
        let dir = tmpdir("measure");
        let mut a = SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[1; 32])).unwrap();
        let sealed = a.seal(b"secret");
        assert_eq!(a.unseal(&sealed).unwrap(), b"secret");
        let other_dir = tmpdir("measure2");
        let b = SimPlatform::open_with_measurement(
            &other_dir,
            SimAttestationRoot::from_secret(&[1; 32]),
            Hash([5; 32]),
        )
        .unwrap();
        assert!(matches!(b.unseal(&sealed), Err(Error::Unseal)));
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(matches!(a.unseal(&flipped), Err(Error::Unseal)));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other_dir);
    }

    #[test]
    fn quote_verifies_only_against_trusted_root() {
        let dir = tmpdir("quote");
        let root = SimAttestationRoot::from_secret(&[9; 32]);
        let root_pk = root.public();
        let p = SimPlatform::open(&dir, root).unwrap();
        let q = p.quote(&[7; 64]).unwrap();
        let trusted = TrustPolicy {
            sim_root: Some(root_pk),
            dcap: None,
        };
        let claims = verify_quote(&q, &trusted, 0).unwrap();
        assert_eq!(claims.measurement, sim_measurement());
        assert_eq!(claims.report_data, [7; 64]);
        let other = SimAttestationRoot::from_secret(&[10; 32]).public();
        assert!(matches!(
            verify_quote(
                &q,
                &TrustPolicy {
                    sim_root: Some(other),
                    dcap: None
                },
                0
            ),
            Err(QuoteError::UntrustedRoot { .. })
        ));
        assert_eq!(
            verify_quote(&q, &TrustPolicy::default(), 0),
            Err(QuoteError::SimNotAllowed)
        );
        let Quote::Sim(mut forged) = q else {
            unreachable!("sim platform")
        };
        forged.report_data[0] ^= 1;
        assert_eq!(
            verify_quote(&Quote::Sim(forged), &trusted, 0),
            Err(QuoteError::BadSignature)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
