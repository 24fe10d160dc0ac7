//! The oracle inside the enclave (seed 000 §5): the enclave terminates TLS
//! itself and signs what the server said.
//!
//! The host relays: [`Request::OracleOpen`](crate::Request::OracleOpen)
//! brings the request as on chain ([`OracleTicket`]); the enclave works out
//! the URL (opening a private request's sealed params with its own key), and
//! answers with where to connect (`host:port`, all the host learns of a
//! private request) and the TLS bytes to send. The host moves bytes between
//! the socket and [`Request::OracleData`](crate::Request::OracleData) until
//! the enclave answers with the signed datagram. Inside: a rustls client
//! (ring provider) with the public web roots compiled in (covered by the
//! measurement) plus the chain's extra roots (simulated platforms only),
//! checking the certificate chain and the server name at the **block time**
//! in the ticket, which the chain bounds to the request's window. The GET
//! request, the response, the JSON selection and the signing all happen
//! here; the host sees only ciphertext.
//!
//! The host can drop, delay or corrupt bytes: a corrupted byte fails the
//! TLS record's authentication, a cut stream is not a complete response,
//! and both end in a signed failure datagram saying so. A host that lies
//! about the ticket gets a datagram the chain refuses (params, roots, time
//! and chain are all bound in it).
//!
//! TLS sessions are resumed (TLS 1.3 tickets, keyed by server name) only
//! between fetches checked at the same block time with the same roots:
//! they share one client configuration, and rustls resumes only under the
//! verifier that checked the first handshake. So a resumed session's
//! certificate (which the datagram names) was verified at that very time.

use crate::Error;
use borsh::{BorshDeserialize, BorshSerialize};
use proctor_primitives::{Address, Hash, Signature, codec};
use proctor_state::oracle::{
    Body, Datagram, FailReason, MAX_DETAIL, MAX_VALUE, Outcome, Params, Query, Url, Value,
    private_info, reply_info, roots_hash,
};
use proctor_tee::{Platform, TeeKind, envelope};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

/// Most oracle sessions open at once (a host that opens more and never
/// finishes them gets an error, not unbounded memory).
pub const MAX_SESSIONS: usize = 256;

/// A request as the host hands it over. The enclave trusts none of it: the
/// chain checks what the datagram binds (request, params hash, roots, time,
/// chain), and a private request's params open only for the requester and
/// reply key the requester sealed them for.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct OracleTicket {
    /// The chain's genesis hash.
    pub chain: Hash,
    pub request: u64,
    pub requester: Address,
    pub query: Query,
    /// The block time to check certificates at (ms since the epoch).
    pub time_ms: u64,
    /// The chain's extra roots (PEM), `oracle.extra_roots` of its genesis.
    pub extra_roots: Vec<String>,
}

/// Why the host gives up on a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Abort {
    /// It could not connect, or the connection failed.
    Unreachable,
    /// The server took too long.
    Timeout,
}

/// The enclave's answer in an oracle session.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct OracleIo {
    pub session: u64,
    /// Where to connect (on opening only).
    pub connect: Option<(String, u16)>,
    /// TLS bytes to send to the server.
    pub send: Vec<u8>,
    /// The signed datagram, when the session is over.
    pub done: Option<SignedDatagram>,
}

/// m3, ready for `oracle::Call::Deliver`.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct SignedDatagram {
    pub datagram: Datagram,
    pub signature: Signature,
}

/// One fetch in progress.
struct Session {
    ticket: OracleTicket,
    url: Url,
    select: Option<String>,
    conn: ClientConnection,
    /// Decrypted response bytes so far.
    response: Vec<u8>,
    /// The server closed the TLS session (close_notify).
    closed: bool,
}

/// The oracle's state in the enclave: open sessions, the verifiers per set
/// of roots, and the TLS session cache.
pub(crate) struct Oracle {
    sessions: BTreeMap<u64, Session>,
    next: u64,
    verifiers: BTreeMap<Hash, Arc<WebPkiServerVerifier>>,
    /// Client configurations by (roots, block time).
    configs: BTreeMap<(Hash, u64), Arc<ClientConfig>>,
    resumption: Arc<ClientSessionMemoryCache>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle {
            sessions: BTreeMap::new(),
            next: 0,
            verifiers: BTreeMap::new(),
            configs: BTreeMap::new(),
            resumption: Arc::new(ClientSessionMemoryCache::new(256)),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

/// Checks certificates at the block time it was given, whatever the clock.
#[derive(Debug)]
struct AtBlockTime {
    inner: Arc<WebPkiServerVerifier>,
    now: UnixTime,
}

impl ServerCertVerifier for AtBlockTime {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        _clock: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, self.now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A failure outcome, its detail cut to the chain's limit.
fn failed(reason: FailReason, detail: impl std::fmt::Display) -> Outcome {
    let mut detail = detail.to_string();
    if detail.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
    Outcome::Failed { reason, detail }
}

/// What a TLS error means for the requester.
fn tls_failure(e: &rustls::Error) -> Outcome {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            failed(FailReason::Certificate, format!("certificate: {c:?}"))
        }
        e => failed(FailReason::Tls, format!("TLS: {e}")),
    }
}

impl Oracle {
    /// The verifier for the compiled-in roots plus `extra`.
    fn verifier(&mut self, extra: &[String]) -> Result<Arc<WebPkiServerVerifier>, Outcome> {
        let key = roots_hash(extra);
        if let Some(v) = self.verifiers.get(&key) {
            return Ok(v.clone());
        }
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for pem in extra {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert =
                    cert.map_err(|e| failed(FailReason::BadRequest, format!("extra root: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| failed(FailReason::BadRequest, format!("extra root: {e}")))?;
            }
        }
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| failed(FailReason::BadRequest, format!("roots: {e}")))?;
        if self.verifiers.len() >= 8 {
            self.verifiers.clear();
        }
        self.verifiers.insert(key, v.clone());
        Ok(v)
    }

    /// The client configuration for `t`'s roots and block time, shared by
    /// the fetches at that time (so they may resume each other's sessions).
    fn config(&mut self, t: &OracleTicket) -> Result<Arc<ClientConfig>, Outcome> {
        let key = (roots_hash(&t.extra_roots), t.time_ms);
        if let Some(c) = self.configs.get(&key) {
            return Ok(c.clone());
        }
        let verifier = self.verifier(&t.extra_roots)?;
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_millis(t.time_ms));
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(FailReason::Tls, e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AtBlockTime {
                inner: verifier,
                now,
            }))
            .with_no_client_auth();
        config.resumption = Resumption::store(self.resumption.clone());
        let config = Arc::new(config);
        if self.configs.len() >= 16 {
            self.configs.clear();
        }
        self.configs.insert(key, config.clone());
        Ok(config)
    }

    /// The params of `t`: as they are, or opened with the enclave's key.
    fn params(platform: &dyn Platform, t: &OracleTicket) -> Result<Params, Outcome> {
        match &t.query {
            Query::Public(p) => Ok(p.clone()),
            Query::Private {
                enclave,
                sealed,
                reply_key,
                ..
            } => {
                if *enclave != platform.identity() {
                    return Err(failed(
                        FailReason::BadRequest,
                        "the params are sealed to another enclave",
                    ));
                }
                let info = private_info(&t.chain, &t.requester, reply_key);
                let plain = platform
                    .open_envelope(&info, sealed)
                    .map_err(|e| failed(FailReason::BadRequest, format!("sealed params: {e}")))?;
                codec::decode::<Params>("oracle params", &plain)
                    .map_err(|e| failed(FailReason::BadRequest, format!("sealed params: {e}")))
            }
        }
    }

    /// Starts a fetch: where to connect and the first TLS bytes, or at once
    /// a signed failure (params that do not parse or open).
    pub(crate) fn open(
        &mut self,
        platform: &mut dyn Platform,
        ticket: OracleTicket,
    ) -> Result<OracleIo, Error> {
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(Error::Oracle(format!(
                "{MAX_SESSIONS} oracle sessions are open; finish or abort one first"
            )));
        }
        if !ticket.extra_roots.is_empty() && platform.kind() != TeeKind::Sim {
            return Err(Error::Oracle(
                "extra roots are honoured only by simulated enclaves (devnets)".into(),
            ));
        }
        let session = self.next;
        self.next += 1;
        let started = (|| {
            let params = Self::params(platform, &ticket)?;
            let url = params
                .check()
                .map_err(|e| failed(FailReason::BadRequest, e))?;
            let config = self.config(&ticket)?;
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| failed(FailReason::BadRequest, format!("server name: {e}")))?;
            let mut conn =
                ClientConnection::new(config, name).map_err(|e| failed(FailReason::Tls, e))?;
            conn.writer()
                .write_all(&crate::http::get_request(&url.host, url.port, &url.path))
                .map_err(|e| failed(FailReason::Tls, e))?;
            Ok((url, params.select, conn))
        })();
        match started {
            Ok((url, select, conn)) => {
                let connect = Some((url.host.clone(), url.port));
                let mut s = Session {
                    ticket,
                    url,
                    select,
                    conn,
                    response: Vec::new(),
                    closed: false,
                };
                let send = outgoing(&mut s.conn);
                self.sessions.insert(session, s);
                Ok(OracleIo {
                    session,
                    connect,
                    send,
                    done: None,
                })
            }
            Err(outcome) => Ok(OracleIo {
                session,
                connect: None,
                send: vec![],
                done: Some(sign(platform, &ticket, outcome)?),
            }),
        }
    }

    /// Bytes from the server (`eof`: the host's socket closed).
    pub(crate) fn data(
        &mut self,
        platform: &mut dyn Platform,
        session: u64,
        data: &[u8],
        eof: bool,
    ) -> Result<OracleIo, Error> {
        let mut s = self
            .sessions
            .remove(&session)
            .ok_or_else(|| Error::Oracle(format!("no oracle session {session}")))?;
        let outcome = match feed(&mut s, data, eof) {
            Ok(None) => {
                let send = outgoing(&mut s.conn);
                self.sessions.insert(session, s);
                return Ok(OracleIo {
                    session,
                    connect: None,
                    send,
                    done: None,
                });
            }
            Ok(Some(outcome)) => outcome,
            Err(outcome) => outcome,
        };
        // A final alert (bad certificate) is still worth sending.
        let send = outgoing(&mut s.conn);
        Ok(OracleIo {
            session,
            connect: None,
            send,
            done: Some(sign(platform, &s.ticket, outcome)?),
        })
    }

    /// The host gives up: a signed failure saying what it reported.
    pub(crate) fn abort(
        &mut self,
        platform: &mut dyn Platform,
        session: u64,
        why: Abort,
    ) -> Result<OracleIo, Error> {
        let s = self
            .sessions
            .remove(&session)
            .ok_or_else(|| Error::Oracle(format!("no oracle session {session}")))?;
        let outcome = match why {
            Abort::Unreachable => failed(
                FailReason::Unreachable,
                format!(
                    "the relay could not reach {}:{} or lost the connection",
                    s.url.host, s.url.port
                ),
            ),
            Abort::Timeout => failed(
                FailReason::Timeout,
                format!("{}:{} did not answer in time", s.url.host, s.url.port),
            ),
        };
        Ok(OracleIo {
            session,
            connect: None,
            send: vec![],
            done: Some(sign(platform, &s.ticket, outcome)?),
        })
    }
}

/// TLS bytes the connection wants sent.
fn outgoing(conn: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.wants_write() {
        match conn.write_tls(&mut out) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// Feeds server bytes through TLS and HTTP: `Ok(None)` while the response
/// is incomplete, else the outcome.
fn feed(s: &mut Session, data: &[u8], eof: bool) -> Result<Option<Outcome>, Outcome> {
    let mut rd = data;
    loop {
        if !rd.is_empty() {
            s.conn
                .read_tls(&mut rd)
                .map_err(|e| failed(FailReason::Tls, e))?;
        }
        s.conn.process_new_packets().map_err(|e| tls_failure(&e))?;
        let mut buf = [0u8; 16 << 10];
        loop {
            match s.conn.reader().read(&mut buf) {
                Ok(0) => {
                    s.closed = true;
                    break;
                }
                Ok(n) => {
                    s.response.extend_from_slice(&buf[..n]);
                    if s.response.len() > crate::http::MAX_HEAD + crate::http::MAX_BODY + 64 {
                        return Err(failed(FailReason::Http, "response too large"));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The peer ended without close_notify: the bytes so far are
                // all there is, and a close-delimited body is not trusted.
                Err(_) => break,
            }
        }
        if rd.is_empty() {
            break;
        }
    }
    if !s.response.is_empty() || s.closed {
        match crate::http::parse(&s.response, s.closed) {
            Ok(Some(r)) => return Ok(Some(fetched(s, r))),
            Ok(None) => {}
            Err(e) => return Err(failed(FailReason::Http, e)),
        }
    }
    if eof || s.closed {
        let stage = match s.conn.is_handshaking() {
            true => "during the TLS handshake",
            false => "before the response was complete",
        };
        return Err(failed(
            FailReason::Unreachable,
            format!("the connection ended {stage}"),
        ));
    }
    Ok(None)
}

/// The outcome of a complete response: the selection, or the body's hash.
fn fetched(s: &Session, r: crate::http::Response) -> Outcome {
    let cert_hash = match s.conn.peer_certificates().and_then(|c| c.first()) {
        Some(c) => Hash::of(c.as_ref()),
        None => return failed(FailReason::Certificate, "the server sent no certificate"),
    };
    let value = match &s.select {
        None => Value::BodyHash(Hash::of(&r.body)),
        Some(pointer) => {
            let json: serde_json::Value = match serde_json::from_slice(&r.body) {
                Ok(j) => j,
                Err(e) => {
                    return failed(
                        FailReason::Select,
                        format!("HTTP {}: the body is not JSON: {e}", r.status),
                    );
                }
            };
            let Some(v) = json.pointer(pointer) else {
                return failed(
                    FailReason::Select,
                    format!("HTTP {}: nothing at {pointer}", r.status),
                );
            };
            let text = v.to_string();
            if text.len() > MAX_VALUE {
                return failed(
                    FailReason::Select,
                    format!(
                        "the value at {pointer} is {} bytes, more than {MAX_VALUE}",
                        text.len()
                    ),
                );
            }
            Value::Json(text)
        }
    };
    Outcome::Fetched {
        server_name: s.url.host.clone(),
        cert_hash,
        status: r.status,
        value,
    }
}

/// The datagram for `outcome` (sealed to the requester for a private
/// request), signed by the enclave identity.
fn sign(
    platform: &mut dyn Platform,
    t: &OracleTicket,
    outcome: Outcome,
) -> Result<SignedDatagram, Error> {
    let body = match &t.query {
        Query::Public(_) => Body::Public(outcome),
        Query::Private { reply_key, .. } => {
            let mut seed = [0u8; 32];
            platform.random(&mut seed);
            let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
            let ciphertext = envelope::seal_to(
                reply_key,
                &reply_info(&t.chain, t.request),
                &codec::encode(&outcome),
                &mut rng,
            )
            .map_err(|e| Error::Oracle(format!("reply key: {e}")))?;
            Body::Sealed { ciphertext }
        }
    };
    let datagram = Datagram {
        request: t.request,
        params: t.query.hash(),
        enclave: platform.identity(),
        roots: roots_hash(&t.extra_roots),
        time_ms: t.time_ms,
        body,
    };
    let signature = platform.sign(&datagram.signing_bytes(&t.chain));
    Ok(SignedDatagram {
        datagram,
        signature,
    })
}
