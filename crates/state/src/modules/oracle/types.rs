//! The oracle's types: its parameters, requests (m1), datagrams (m3) and
//! their outcomes, records, calls, events and errors.

use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Address, Amount, EncryptionKey, Hash, Height, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

/// Longest URL of a request.
pub const MAX_URL: usize = 2048;
/// Longest JSON-pointer selection.
pub const MAX_SELECT: usize = 256;
/// Largest sealed (private) request or sealed outcome.
pub const MAX_SEALED: usize = 8192;
/// Largest selected value, in bytes of JSON text.
pub const MAX_VALUE: usize = 4096;
/// Longest failure detail.
pub const MAX_DETAIL: usize = 256;
/// Longest server name (a DNS name is at most 253 bytes).
pub const MAX_SERVER_NAME: usize = 255;

/// The oracle's parameters, fixed in the genesis (Town Crier's fee model).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct OracleParams {
    /// Smallest fee a request may prepay (what `--fee` defaults to).
    pub min_fee: Amount,
    /// Largest fee a request may prepay.
    pub max_fee: Amount,
    /// Kept from a cancelled request's fee: it pays a delivery that raced
    /// the cancel, or the block's miner when none came.
    pub cancel_fee: Amount,
    /// Blocks a request waits for its datagram when it names no deadline.
    pub default_deadline_blocks: u64,
    /// Most blocks a request may wait.
    pub max_deadline_blocks: u64,
    /// Extra trusted root certificates (PEM), beyond the public web roots
    /// compiled into the enclave. Allowed only on a chain that accepts
    /// simulated quotes (a devnet's `--oracle-root`).
    #[serde(default)]
    pub extra_roots: Vec<String>,
}

impl Default for OracleParams {
    fn default() -> Self {
        OracleParams {
            min_fee: Amount(1_000),
            max_fee: Amount(1_000_000_000),
            cancel_fee: Amount(100),
            default_deadline_blocks: 20,
            max_deadline_blocks: 1_000,
            extra_roots: vec![],
        }
    }
}

impl OracleParams {
    /// What a datagram's `roots` must be: the hash of the extra roots the
    /// enclave trusted besides its compiled-in ones.
    pub fn roots_hash(&self) -> Hash {
        roots_hash(&self.extra_roots)
    }
}

/// Hash of a list of extra root certificates (PEM texts, in order).
pub fn roots_hash(pems: &[String]) -> Hash {
    Hash::of_encoded("proctor/oracle/roots", &pems)
}

/// What a public request asks: fetch `url` (https only) and, with `select`,
/// return the JSON value at that JSON pointer (RFC 6901) instead of the
/// body's hash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Params {
    pub url: String,
    pub select: Option<String>,
}

impl Params {
    /// Checks the URL's shape and the sizes (the enclave checks them again).
    pub fn check(&self) -> Result<Url, Error> {
        if self.select.as_ref().is_some_and(|s| s.len() > MAX_SELECT) {
            return Err(Error::BadRequest(format!(
                "the selection is longer than {MAX_SELECT} bytes"
            )));
        }
        if let Some(s) = &self.select
            && !(s.is_empty() || s.starts_with('/'))
        {
            return Err(Error::BadRequest(format!(
                "the selection {s:?} is not a JSON pointer (empty, or starting with '/')"
            )));
        }
        Url::parse(&self.url)
    }
}

/// An `https://host[:port]/path` URL, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// The path and query, starting with '/'.
    pub path: String,
}

impl Url {
    /// Parses an https URL: a DNS name or IPv4 address, an optional port,
    /// a path of visible ASCII. No user info, no fragment.
    pub fn parse(url: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error::BadRequest(format!("URL {url:?}: {why}"));
        if url.len() > MAX_URL {
            return Err(Error::BadRequest(format!(
                "the URL is longer than {MAX_URL} bytes"
            )));
        }
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// URLs are fetched"))?;
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "only visible ASCII is allowed (percent-encode the rest)",
            ));
        }
        if rest.contains('#') {
            return Err(bad("a fragment is not sent to the server; drop it"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
                (h, port)
            }
            None => (authority, 443),
        };
        let valid_host = !host.is_empty()
            && host.len() <= MAX_SERVER_NAME
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid_host {
            return Err(bad("the host must be a DNS name or an IPv4 address"));
        }
        Ok(Url {
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }
}

/// What a request asks, as stored on chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Query {
    /// Readable by everyone.
    Public(Params),
    /// [`Params`] HPKE-sealed to `enclave`'s registered encryption key with
    /// `info` = [`private_info`] (chain, requester, `reply_key`), so the
    /// ciphertext opens for no other requester or reply key; the outcome is
    /// sealed to `reply_key`.
    Private {
        enclave: PublicKey,
        #[serde(with = "proctor_primitives::codec::hex_bytes")]
        sealed: Vec<u8>,
        reply_key: EncryptionKey,
        /// The same params sealed to `reply_key` (`info` = [`own_info`]),
        /// so the requester can read back what it asked.
        #[serde(with = "proctor_primitives::codec::hex_bytes")]
        own: Vec<u8>,
    },
}

impl Query {
    /// H(query): what a datagram names as the request it answers.
    pub fn hash(&self) -> Hash {
        Hash::of_encoded("proctor/oracle/query", self)
    }
}

/// HPKE `info` of a private request's params: the chain, the requester and
/// the reply key, so copying the ciphertext into another request (to have
/// its result sealed to another key) makes it unopenable.
pub fn private_info(chain: &Hash, requester: &Address, reply_key: &EncryptionKey) -> Vec<u8> {
    Hash::tagged(
        "proctor/oracle/private/v1",
        &[&chain.0, &requester.0, &reply_key.0],
    )
    .0
    .to_vec()
}

/// HPKE `info` of a private request's params sealed to its own reply key.
pub fn own_info(chain: &Hash, requester: &Address) -> Vec<u8> {
    Hash::tagged("proctor/oracle/own/v1", &[&chain.0, &requester.0])
        .0
        .to_vec()
}

/// HPKE `info` of a private request's sealed outcome.
pub fn reply_info(chain: &Hash, request: u64) -> Vec<u8> {
    Hash::tagged(
        "proctor/oracle/reply/v1",
        &[&chain.0, &request.to_le_bytes()],
    )
    .0
    .to_vec()
}

/// Who is told when the datagram arrives: a confidential contract, which
/// gets it as a command from the oracle's address at the end of the block
/// (`contracts::oracle_message`), and the part of the fee that buys that
/// command's fuel.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Callback {
    pub contract: u64,
    pub fee: Amount,
}

/// What the enclave found.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The server answered over TLS whose certificate chain verified.
    Fetched {
        /// The name the certificate was checked against (the URL's host).
        server_name: String,
        /// H(the server's end-entity certificate, DER).
        cert_hash: Hash,
        /// The HTTP status.
        status: u16,
        value: Value,
    },
    /// No answer worth signing as data, and why.
    Failed { reason: FailReason, detail: String },
}

/// The datagram's data.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// The selected JSON value, as compact JSON text.
    Json(String),
    /// H(body), when the request selected nothing.
    BodyHash(Hash),
}

/// Why a fetch failed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The params do not parse or do not open (private).
    BadRequest,
    /// The host could not connect, or the connection ended early.
    Unreachable,
    /// The server's certificate does not verify (unknown issuer, expired at
    /// the block time, wrong name).
    Certificate,
    /// The TLS session failed (a corrupted byte, a protocol error).
    Tls,
    /// The HTTP response does not parse, or is too large.
    Http,
    /// The body is not JSON, or the pointer selects nothing, or too much.
    Select,
    /// The fetch took longer than the enclave allows.
    Timeout,
}

/// What a datagram carries: the outcome, or (private request) the outcome
/// sealed to the requester's reply key.
/// In JSON: `{"public": OUTCOME}` or `{"sealed": {"ciphertext": HEX}}`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    Public(Outcome),
    Sealed {
        /// HPKE to the request's reply key, `info` = [`reply_info`].
        #[serde(with = "proctor_primitives::codec::hex_bytes")]
        ciphertext: Vec<u8>,
    },
}

/// m3: the enclave's signed answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Datagram {
    pub request: u64,
    /// H(the request's query) ([`Query::hash`]).
    pub params: Hash,
    /// The enclave that fetched and signs.
    pub enclave: PublicKey,
    /// H(the extra roots it trusted) ([`roots_hash`]).
    pub roots: Hash,
    /// The block time certificates were checked at (ms since the epoch):
    /// the "time used" of m3, checked by the chain against the request's
    /// window, so a host cannot wind the clock back to pass an expired one.
    pub time_ms: Timestamp,
    pub body: Body,
}

impl Datagram {
    /// What the enclave signs.
    pub fn signing_bytes(&self, chain: &Hash) -> Vec<u8> {
        Hash::of_encoded("proctor/oracle/datagram/v1", &(chain, self))
            .0
            .to_vec()
    }
}

/// Where a request is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    /// A datagram arrived (for a private request, its sealed outcome may
    /// still say the fetch failed).
    Delivered,
    /// The datagram says the fetch failed, or none came by the deadline.
    Failed,
    Cancelled,
}

/// A request on chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct OracleRequest {
    pub id: u64,
    pub requester: Address,
    pub query: Query,
    pub callback: Option<Callback>,
    /// The fee prepaid.
    pub fee: Amount,
    /// What of the fee the module still holds.
    pub escrow: Amount,
    /// The enclave assigned to serve it.
    pub enclave: PublicKey,
    pub created: Height,
    /// The block time of the request: a datagram's `time_ms` is not earlier.
    pub created_ms: Timestamp,
    /// The last height a datagram is accepted at.
    pub deadline: Height,
    pub state: RequestState,
    /// The datagram, once delivered.
    pub datagram: Option<Datagram>,
    /// The height of delivery (or of the failure at the deadline).
    pub height: Option<Height>,
    /// Paid to the delivering enclave's operator.
    pub fee_paid: Amount,
    /// Returned to the requester.
    pub refunded: Amount,
    /// Why it failed without a datagram (the deadline passed).
    pub error: Option<String>,
}

/// The oracle's calls.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Call {
    /// m1: ask for a datagram, prepaying `fee` (between the chain's minimum
    /// and maximum); `deadline_blocks` 0 takes the chain's default.
    Request {
        query: Query,
        callback: Option<Callback>,
        fee: Amount,
        deadline_blocks: u64,
    },
    /// m3: a relay submits its enclave's signed datagram.
    Deliver {
        datagram: Datagram,
        signature: proctor_primitives::Signature,
    },
    /// The requester withdraws an undelivered request: the fee comes back
    /// less the cancellation fee.
    Cancel { id: u64 },
}

/// The oracle's events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// m2: a request for its assigned enclave.
    OracleRequested {
        id: u64,
        requester: Address,
        enclave: PublicKey,
        query: Query,
        deadline: Height,
        fee: Amount,
    },
    /// m4: the datagram, delivered.
    OracleDelivered {
        id: u64,
        enclave: PublicKey,
        state: RequestState,
        body: Body,
        fee_paid: Amount,
    },
    /// The callback a contract consumes (the reserved fee goes to the block).
    OracleCallback {
        id: u64,
        contract: u64,
        fee: Amount,
    },
    OracleCancelled {
        id: u64,
        refunded: Amount,
    },
    /// A delivery that came after a cancel: it receives the cancellation fee.
    OracleLateDelivery {
        id: u64,
        enclave: PublicKey,
        fee_paid: Amount,
    },
    /// No datagram by the deadline: the fee went back.
    OracleExpired {
        id: u64,
        refunded: Amount,
    },
}

/// Ids of the requests whose deadline is one height, or pending on one enclave.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Ids(pub Vec<u64>);

/// The oracle's records.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    Request(Box<OracleRequest>),
    /// The next request id.
    Next(u64),
    Ids(Ids),
}

/// The oracle's errors: codes 1260-1299.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("oracle request {0} does not exist")]
    NotFound(u64),
    #[error("invalid oracle request: {0}")]
    BadRequest(String),
    #[error("the oracle fee is outside the chain's range {min} to {max}")]
    FeeOutOfRange { min: Amount, max: Amount },
    #[error("no registered enclave serves oracle requests")]
    NoProvider,
    #[error("enclave {0} does not serve oracle requests")]
    NotProvider(PublicKey),
    #[error("only the requester may cancel request {0}")]
    NotRequester(u64),
    #[error("oracle request {id} is {state:?}, which does not allow this")]
    WrongState { id: u64, state: RequestState },
    #[error("datagram signed by {0}, which is not a registered, active enclave")]
    UnknownEnclave(PublicKey),
    #[error("datagram from {0}, which is not the enclave the request is assigned to")]
    NotAssigned(PublicKey),
    #[error("the datagram's signature does not verify")]
    BadSignature,
    #[error("the datagram answers other params than the request's")]
    ParamsMismatch,
    #[error("the datagram trusted other root certificates than the chain's")]
    RootsMismatch,
    #[error("the datagram's time {got} ms is outside the request's window {from} to {to}")]
    BadTime { from: u64, to: u64, got: u64 },
    #[error("the request's deadline {deadline} has passed")]
    Expired { deadline: Height },
    #[error("invalid datagram: {0}")]
    BadDatagram(String),
    #[error("the datagram's kind does not match the request's (public or private)")]
    KindMismatch,
    #[error("enclave {0}'s measurement is retired from the allowlist")]
    MeasurementRetired(PublicKey),
}

impl Error {
    /// Stable numeric code.
    pub fn code(&self) -> i32 {
        match self {
            Error::NotFound(_) => 1260,
            Error::BadRequest(_) => 1261,
            Error::FeeOutOfRange { .. } => 1262,
            Error::NoProvider => 1263,
            Error::NotProvider(_) => 1264,
            Error::NotRequester(_) => 1265,
            Error::WrongState { .. } => 1266,
            Error::UnknownEnclave(_) => 1267,
            Error::NotAssigned(_) => 1268,
            Error::BadSignature => 1269,
            Error::ParamsMismatch => 1270,
            Error::RootsMismatch => 1271,
            Error::BadTime { .. } => 1272,
            Error::Expired { .. } => 1273,
            Error::BadDatagram(_) => 1274,
            Error::KindMismatch => 1275,
            Error::MeasurementRetired(_) => 1276,
        }
    }
}
