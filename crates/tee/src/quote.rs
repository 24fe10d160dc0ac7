//! Quotes and their verification: the one `verify_quote` the chain uses for
//! every kind of TEE.
//!
//! - Simulated quotes verify against the simulated attestation root named in
//!   the genesis, and only when the genesis allows them.
//! - SGX and TDX quotes (Intel DCAP) verify with `dcap-qvl` against the root CA
//!   the genesis names (Intel's in production), using collateral (PCK CRL, TCB
//!   info, QE identity) that travels with the quote, checked at the time the
//!   caller gives: the block's timestamp, never the wall clock, so every node
//!   reaches the same verdict. The chain's TCB policy then decides which TCB
//!   statuses and advisories it accepts and whether debug enclaves may join.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// Intel's SGX/TDX root CA certificate (DER), the DCAP root of trust in production.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("intel-sgx-root-ca.der");

/// The kind of TEE that produced a quote.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TeeKind {
    /// The simulated TEE (insecure; devnets only).
    Sim,
    /// An Intel SGX enclave, DCAP attestation.
    Sgx,
    /// An Intel TDX trust domain, DCAP attestation.
    Tdx,
}

/// An attestation quote: the platform's signed statement that an enclave with
/// a measurement produced some report data.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Quote {
    Sim(SimQuote),
    /// An Intel DCAP quote (SGX or TDX) with the collateral to verify it.
    Dcap(DcapQuote),
}

/// A quote of the simulated TEE, signed by the simulated attestation root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SimQuote {
    pub measurement: Hash,
    pub report_data: [u8; 64],
    /// The root that signed (verifiers compare it with the one they trust).
    pub root: PublicKey,
    pub signature: Signature,
}

impl SimQuote {
    /// The bytes the simulated root signs.
    pub fn signed_bytes(measurement: &Hash, report_data: &[u8; 64]) -> Vec<u8> {
        let mut m = b"proctor/sim-quote/v1".to_vec();
        m.extend_from_slice(&measurement.0);
        m.extend_from_slice(report_data);
        m
    }
}

/// An Intel DCAP quote and its collateral.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DcapQuote {
    /// The raw quote (v3 for SGX, v4/v5 for TDX).
    pub quote: Vec<u8>,
    /// The collateral as Intel's PCS/PCCS JSON (`QuoteCollateralV3`).
    pub collateral: Vec<u8>,
}

/// What a verified quote proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub kind: TeeKind,
    /// The code identity: MRENCLAVE for SGX; for TDX the tagged BLAKE3 of
    /// MRTD, RTMR0-3 and the owner registers ([`TdxRegisters::measurement`]);
    /// the sim measurement for sim.
    pub measurement: Hash,
    #[serde(with = "hex_64")]
    pub report_data: [u8; 64],
    /// Intel's TCB status of the platform (DCAP only), e.g. "UpToDate".
    pub tcb_status: Option<String>,
    /// Intel security advisories that apply to the platform (DCAP only).
    pub advisory_ids: Vec<String>,
    /// Whether the enclave runs in debug mode (its memory is readable by the host).
    pub debug: bool,
}

mod hex_64 {
    pub fn serialize<S: serde::Serializer>(b: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

/// The registers of a TDX report that together name what a trust domain
/// runs: MRTD (the initial image, i.e. the firmware), RTMR0-3 (extended at
/// boot: firmware configuration, kernel and command line, and whatever the OS
/// measures), and MRCONFIGID, MROWNER, MROWNERCONFIG (set by the host at
/// launch; all zeros when unset). MRTD alone would let any kernel and root
/// file system booted by an allowed firmware pass as allowed code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxRegisters {
    pub mr_td: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub mr_owner: [u8; 48],
    pub mr_owner_config: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
}

impl TdxRegisters {
    /// Reads the registers from a raw TDX quote: version 4 (the TD report
    /// follows the 48-byte header) or 5 (a 6-byte body descriptor comes
    /// first). None if the bytes are too short or another version.
    pub fn from_quote(quote: &[u8]) -> Option<Self> {
        let version = u16::from_le_bytes(quote.get(..2)?.try_into().ok()?);
        let body = match version {
            4 => 48,
            5 => 48 + 6,
            _ => return None,
        };
        // TD report 1.0: TEE_TCB_SVN(16) MRSEAM(48) MRSIGNERSEAM(48)
        // SEAMATTRIBUTES(8) TDATTRIBUTES(8) XFAM(8), then the registers.
        let reg = |i: usize| -> Option<[u8; 48]> {
            let at = body + 136 + 48 * i;
            quote.get(at..at + 48)?.try_into().ok()
        };
        Some(TdxRegisters {
            mr_td: reg(0)?,
            mr_config_id: reg(1)?,
            mr_owner: reg(2)?,
            mr_owner_config: reg(3)?,
            rtmr: [reg(4)?, reg(5)?, reg(6)?, reg(7)?],
        })
    }

    /// The measurement proctor allows or refuses for a trust domain: a tagged
    /// BLAKE3 over every register above, so changing any one of them (another
    /// kernel, another owner) is another measurement.
    pub fn measurement(&self) -> Hash {
        Hash::tagged(
            "proctor/tdx-measurement/v2",
            &[
                &self.mr_td,
                &self.rtmr[0],
                &self.rtmr[1],
                &self.rtmr[2],
                &self.rtmr[3],
                &self.mr_config_id,
                &self.mr_owner,
                &self.mr_owner_config,
            ],
        )
    }
}

/// Why a quote was refused. Each reason has its own variant and code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QuoteError {
    #[error("simulated TEE quotes are not accepted by this chain")]
    SimNotAllowed,
    #[error("quote is signed by attestation root {found}, but the chain trusts {trusted}")]
    UntrustedRoot {
        found: PublicKey,
        trusted: PublicKey,
    },
    #[error("quote signature does not verify")]
    BadSignature,
    #[error("DCAP (SGX/TDX) quotes are not accepted by this chain")]
    DcapNotAllowed,
    #[error("malformed quote or collateral: {0}")]
    Malformed(String),
    #[error("collateral is expired or not yet valid at the verification time: {0}")]
    CollateralExpired(String),
    #[error("DCAP verification failed: {0}")]
    DcapVerification(String),
    #[error("TCB status {0} is not accepted by the chain's policy")]
    TcbStatusNotAccepted(String),
    #[error("platform is affected by advisory {0}, which the chain's policy rejects")]
    AdvisoryRejected(String),
    #[error("debug enclaves are not accepted by the chain's policy")]
    DebugEnclave,
}

impl QuoteError {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            QuoteError::BadSignature => 1101,
            QuoteError::SimNotAllowed => 1105,
            QuoteError::UntrustedRoot { .. } => 1106,
            QuoteError::DcapNotAllowed => 1107,
            QuoteError::Malformed(_) => 1108,
            QuoteError::CollateralExpired(_) => 1109,
            QuoteError::DcapVerification(_) => 1110,
            QuoteError::TcbStatusNotAccepted(_) => 1111,
            QuoteError::AdvisoryRejected(_) => 1112,
            QuoteError::DebugEnclave => 1113,
        }
    }
}

/// The chain's policy for DCAP quotes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct DcapPolicy {
    /// DER of the root CA (Intel's in production).
    #[serde(with = "proctor_primitives::codec::hex_bytes")]
    pub root_ca_der: Vec<u8>,
    /// TCB statuses accepted, e.g. ["UpToDate", "SWHardeningNeeded"].
    pub accepted_tcb_statuses: Vec<String>,
    /// Advisory IDs that disqualify a platform, e.g. ["INTEL-SA-00615"].
    pub rejected_advisories: Vec<String>,
    /// Whether debug enclaves are accepted (never on a production chain).
    pub allow_debug: bool,
}

/// The roots of trust a verifier accepts.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    /// The simulated attestation root, if sim quotes are accepted at all.
    pub sim_root: Option<PublicKey>,
    /// The DCAP policy, if SGX/TDX quotes are accepted.
    pub dcap: Option<DcapPolicy>,
}

/// Verifies attestation quotes: the one interface the chain uses for every
/// kind of TEE.
pub trait AttestationVerifier {
    /// The claims of `quote` if it verifies at `now_secs` (Unix seconds; on
    /// chain, the block's timestamp, never the wall clock).
    fn verify(&self, quote: &Quote, now_secs: u64) -> Result<Claims, QuoteError>;
}

impl AttestationVerifier for TrustPolicy {
    fn verify(&self, quote: &Quote, now_secs: u64) -> Result<Claims, QuoteError> {
        verify_quote(quote, self, now_secs)
    }
}

/// Verifies `quote` under `policy` at `now_secs` (Unix seconds; the block's
/// timestamp on chain) and returns its claims.
pub fn verify_quote(
    quote: &Quote,
    policy: &TrustPolicy,
    now_secs: u64,
) -> Result<Claims, QuoteError> {
    match quote {
        Quote::Sim(q) => {
            let trusted = policy.sim_root.ok_or(QuoteError::SimNotAllowed)?;
            if q.root != trusted {
                return Err(QuoteError::UntrustedRoot {
                    found: q.root,
                    trusted,
                });
            }
            trusted
                .verify(
                    &SimQuote::signed_bytes(&q.measurement, &q.report_data),
                    &q.signature,
                )
                .map_err(|_| QuoteError::BadSignature)?;
            Ok(Claims {
                kind: TeeKind::Sim,
                measurement: q.measurement,
                report_data: q.report_data,
                tcb_status: None,
                advisory_ids: vec![],
                debug: false,
            })
        }
        Quote::Dcap(q) => verify_dcap(
            q,
            policy.dcap.as_ref().ok_or(QuoteError::DcapNotAllowed)?,
            now_secs,
        ),
    }
}

/// Verifies a DCAP quote's signatures and collateral, then applies the TCB policy.
pub fn verify_dcap(
    q: &DcapQuote,
    policy: &DcapPolicy,
    now_secs: u64,
) -> Result<Claims, QuoteError> {
    use dcap_qvl::quote::Report;
    let collateral: dcap_qvl::QuoteCollateralV3 = serde_json::from_slice(&q.collateral)
        .map_err(|e| QuoteError::Malformed(format!("collateral: {e}")))?;
    // Debug mode is judged by this policy below, with its own error.
    let verified = dcap_qvl::verify::QuoteVerifier::new(policy.root_ca_der.clone())
        .allow_debug(true)
        .verify(&q.quote, &collateral, now_secs)
        .map_err(|e| {
            let msg = format!("{e:#}");
            if msg.contains("expired") || msg.contains("not yet valid") || msg.contains("Expired") {
                QuoteError::CollateralExpired(msg)
            } else if msg.contains("decode")
                || msg.contains("Failed to parse")
                || msg.contains("nsupported")
            {
                QuoteError::Malformed(msg)
            } else {
                QuoteError::DcapVerification(msg)
            }
        })?;
    let (kind, measurement, report_data, debug) = match &verified.report {
        Report::SgxEnclave(r) => (
            TeeKind::Sgx,
            Hash(r.mr_enclave),
            r.report_data,
            r.attributes[0] & 0x02 != 0,
        ),
        other => {
            let td = other
                .as_td10()
                .ok_or_else(|| QuoteError::Malformed("unknown report type".into()))?;
            let registers = TdxRegisters {
                mr_td: td.mr_td,
                mr_config_id: td.mr_config_id,
                mr_owner: td.mr_owner,
                mr_owner_config: td.mr_owner_config,
                rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
            };
            (
                TeeKind::Tdx,
                registers.measurement(),
                td.report_data,
                td.td_attributes[0] & 0x01 != 0,
            )
        }
    };
    apply_tcb_policy(policy, &verified.status, &verified.advisory_ids, debug)?;
    Ok(Claims {
        kind,
        measurement,
        report_data,
        tcb_status: Some(verified.status),
        advisory_ids: verified.advisory_ids,
        debug,
    })
}

/// The chain's TCB policy on a verified platform: accepted status, no
/// rejected advisory, debug only if allowed.
pub fn apply_tcb_policy(
    policy: &DcapPolicy,
    status: &str,
    advisories: &[String],
    debug: bool,
) -> Result<(), QuoteError> {
    if !policy.accepted_tcb_statuses.iter().any(|s| s == status) {
        return Err(QuoteError::TcbStatusNotAccepted(status.to_string()));
    }
    if let Some(a) = advisories
        .iter()
        .find(|a| policy.rejected_advisories.contains(a))
    {
        return Err(QuoteError::AdvisoryRejected(a.clone()));
    }
    if debug && !policy.allow_debug {
        return Err(QuoteError::DebugEnclave);
    }
    Ok(())
}

impl std::fmt::Display for Quote {
    /// Hex of the borsh encoding (how quotes appear in JSON files).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(proctor_primitives::codec::encode(self)))
    }
}

impl std::str::FromStr for Quote {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|e| format!("quote is not hex: {e}"))?;
        proctor_primitives::codec::decode("quote", &bytes).map_err(|e| e.to_string())
    }
}
proctor_primitives::codec::serde_via_str!(Quote);

impl Quote {
    /// Attaches DCAP collateral to a quote that left the hardware without it
    /// (the host fetches collateral from a PCCS); other quotes are unchanged.
    pub fn with_collateral(self, collateral: Option<&[u8]>) -> Quote {
        match (self, collateral) {
            (Quote::Dcap(mut q), Some(c)) if q.collateral.is_empty() => {
                q.collateral = c.to_vec();
                Quote::Dcap(q)
            }
            (q, _) => q,
        }
    }
}
