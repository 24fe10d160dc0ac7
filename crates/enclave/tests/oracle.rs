//! The enclave's oracle against real HTTPS servers on loopback (rustls, with
//! certificates from a CA made here by rcgen), relayed by a host played by
//! this test: honest, and one that corrupts a byte or cuts the stream.

use proctor_enclave::oracle::{Abort, OracleIo, OracleTicket, SignedDatagram};
use proctor_enclave::{Enclave, Request, Response};
use proctor_primitives::{Address, EncryptionKey, Hash, codec};
use proctor_state::oracle::{
    Body, FailReason, Outcome, Params, Query, Value, private_info, reply_info,
};
use proctor_tee::envelope::{self, RecipientKey};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const CHAIN: Hash = Hash([5; 32]);
/// 2026-06-01, inside every test certificate's validity but the expired one.
const NOW_MS: u64 = 1_780_272_000_000;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let key = KeyPair::generate().unwrap();
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A server certificate for `name` from `ca`, valid until `until` (a year).
fn leaf(ca: &Ca, name: &str, until: i32) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(until, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// An HTTPS server on 127.0.0.1 answering every connection with `body`
/// (Content-Length, then close_notify); returns its port.
fn serve(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>, body: &'static str) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

fn enclave(name: &str) -> Enclave {
    let dir = std::env::temp_dir().join(format!("proctor-oracle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Enclave::new(Box::new(
        SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[1; 32])).unwrap(),
    ))
    .unwrap()
}

fn io(r: Response) -> OracleIo {
    match r {
        Response::OracleIo(io) => io,
        other => panic!("not an oracle answer: {other:?}"),
    }
}

/// How the test's host treats the server's bytes.
#[derive(Clone, Copy, PartialEq)]
enum Host {
    Honest,
    /// Flips a bit in the first application-data record from the server.
    CorruptsAByte,
    /// Passes the handshake, then reports the socket closed.
    CutsTheStream,
}

/// Relays one request through the enclave as a host does; the datagram.
fn relay(e: &mut Enclave, ticket: OracleTicket, host: Host) -> SignedDatagram {
    let mut step = io(e.handle(Request::OracleOpen(Box::new(ticket))));
    let Some((name, port)) = step.connect.clone() else {
        return step.done.expect("no connection and no datagram");
    };
    let session = step.session;
    let Ok(mut tcp) = TcpStream::connect((name.as_str(), port)) else {
        let r = e.handle(Request::OracleAbort {
            session,
            why: Abort::Unreachable,
        });
        return io(r).done.unwrap();
    };
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut records = 0;
    for _ in 0..1_000 {
        if let Some(d) = step.done {
            return d;
        }
        tcp.write_all(&step.send).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let n = tcp.read(&mut buf).unwrap_or(0);
        buf.truncate(n);
        records += 1;
        let mut eof = n == 0;
        // The server's first flight is the handshake; the response comes
        // after the client's second flight.
        if records >= 2 && n > 0 {
            match host {
                Host::Honest => {}
                Host::CorruptsAByte => {
                    let last = buf.len() - 1;
                    buf[last] ^= 1;
                }
                Host::CutsTheStream => {
                    buf.clear();
                    eof = true;
                }
            }
        }
        step = io(e.handle(Request::OracleData {
            session,
            data: buf,
            eof,
        }));
    }
    panic!("the session never ended");
}

fn ticket(url: String, select: Option<&str>, roots: &[String]) -> OracleTicket {
    OracleTicket {
        chain: CHAIN,
        request: 7,
        requester: Address([2; 20]),
        query: Query::Public(Params {
            url,
            select: select.map(Into::into),
        }),
        time_ms: NOW_MS,
        extra_roots: roots.to_vec(),
    }
}

fn outcome(d: &SignedDatagram) -> &Outcome {
    match &d.datagram.body {
        Body::Public(o) => o,
        Body::Sealed { .. } => panic!("sealed"),
    }
}

/// The failure an honest relay of a GET of `port`'s root ends in.
fn fetch_fails(e: &mut Enclave, port: u16, roots: &[String]) -> SignedDatagram {
    let d = relay(
        e,
        ticket(format!("https://localhost:{port}/"), None, roots),
        Host::Honest,
    );
    assert!(matches!(outcome(&d), Outcome::Failed { .. }), "{d:?}");
    d
}

fn failure(d: &SignedDatagram) -> FailReason {
    match outcome(d) {
        Outcome::Failed { reason, .. } => *reason,
        o => panic!("not a failure: {o:?}"),
    }
}

#[test]
fn a_selection_returns_exactly_the_served_value_signed() {
    let ca = new_ca();
    let (cert, key) = leaf(&ca, "localhost", 2029);
    let cert_hash = Hash::of(cert.as_ref());
    let port = serve(cert, key, r#"{"usd":{"rate":[1.25, "x"]},"other":1}"#);
    let mut e = enclave("select");
    let roots = vec![ca.cert.pem()];
    let url = format!("https://localhost:{port}/rates?base=eur");
    let t = ticket(url, Some("/usd/rate"), &roots);
    let d = relay(&mut e, t.clone(), Host::Honest);
    assert_eq!(
        outcome(&d),
        &Outcome::Fetched {
            server_name: "localhost".into(),
            cert_hash,
            status: 200,
            value: Value::Json(r#"[1.25,"x"]"#.into()),
        }
    );
    let info = e.info();
    assert_eq!(d.datagram.enclave, info.identity);
    assert_eq!(d.datagram.params, t.query.hash());
    assert_eq!(d.datagram.time_ms, NOW_MS);
    assert_eq!(d.datagram.roots, proctor_state::oracle::roots_hash(&roots));
    info.identity
        .verify(&d.datagram.signing_bytes(&CHAIN), &d.signature)
        .expect("the enclave's signature verifies");
    // Without a selection: the body's hash. A second fetch resumes the
    // TLS session and still names the same certificate.
    let t = ticket(format!("https://localhost:{port}/"), None, &roots);
    let d = relay(&mut e, t, Host::Honest);
    let Outcome::Fetched {
        value,
        cert_hash: c,
        ..
    } = outcome(&d)
    else {
        panic!("{d:?}")
    };
    assert_eq!(
        value,
        &Value::BodyHash(Hash::of(br#"{"usd":{"rate":[1.25, "x"]},"other":1}"#))
    );
    assert_eq!(*c, cert_hash);
}

#[test]
fn unknown_ca_expired_certificate_and_wrong_name_fail_with_their_reason() {
    let ca = new_ca();
    let other = new_ca();
    let roots = vec![ca.cert.pem()];
    let mut e = enclave("certs");
    let (cert, key) = leaf(&other, "localhost", 2029);
    let port = serve(cert, key, "{}");
    let d = fetch_fails(&mut e, port, &roots);
    assert_eq!(failure(&d), FailReason::Certificate, "{d:?}");
    // Expired at the block time (2026-06-01), though valid until 2026-01-01.
    let (cert, key) = leaf(&ca, "localhost", 2026);
    let port = serve(cert, key, "{}");
    let d = fetch_fails(&mut e, port, &roots);
    assert_eq!(failure(&d), FailReason::Certificate, "{d:?}");
    let Outcome::Failed { detail, .. } = outcome(&d) else {
        unreachable!()
    };
    assert!(detail.contains("Expired"), "{detail}");
    // The same certificate passes at a block time when it was valid: the
    // enclave checks at the time it was given, not its clock.
    let mut early = ticket(format!("https://localhost:{port}/"), None, &roots);
    early.time_ms = 1_751_328_000_000; // 2025-07-01
    assert!(matches!(
        outcome(&relay(&mut e, early, Host::Honest)),
        Outcome::Fetched { .. }
    ));
    // That fetch left a resumable TLS session; at the later block time it
    // is not resumed past the expiry: still refused.
    let d = fetch_fails(&mut e, port, &roots);
    assert_eq!(failure(&d), FailReason::Certificate, "{d:?}");
    let (cert, key) = leaf(&ca, "other.example", 2029);
    let port = serve(cert, key, "{}");
    let d = fetch_fails(&mut e, port, &roots);
    assert_eq!(failure(&d), FailReason::Certificate, "{d:?}");
}

#[test]
fn a_host_that_corrupts_or_cuts_the_response_gets_a_signed_failure() {
    let ca = new_ca();
    let (cert, key) = leaf(&ca, "localhost", 2029);
    let port = serve(cert, key, r#"{"v":1}"#);
    let roots = vec![ca.cert.pem()];
    let mut e = enclave("tamper");
    let url = format!("https://localhost:{port}/");
    let d = relay(
        &mut e,
        ticket(url.clone(), None, &roots),
        Host::CorruptsAByte,
    );
    assert_eq!(failure(&d), FailReason::Tls, "{d:?}");
    let d = relay(
        &mut e,
        ticket(url.clone(), None, &roots),
        Host::CutsTheStream,
    );
    assert_eq!(failure(&d), FailReason::Unreachable, "{d:?}");
    // Nothing listens here.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let d = fetch_fails(&mut e, port, &roots);
    assert_eq!(failure(&d), FailReason::Unreachable, "{d:?}");
    let d = relay(&mut e, ticket(url, Some("/missing"), &roots), Host::Honest);
    assert_eq!(failure(&d), FailReason::Select, "{d:?}");
}

#[test]
fn a_private_request_opens_only_inside_and_its_outcome_only_for_the_requester() {
    let ca = new_ca();
    let (cert, key) = leaf(&ca, "localhost", 2029);
    let port = serve(cert, key, r#"{"secret":"marker-42"}"#);
    let roots = vec![ca.cert.pem()];
    let mut e = enclave("private");
    let info = e.info();
    let reply = RecipientKey::from_seed(&[9; 32]);
    let requester = Address([2; 20]);
    let params = Params {
        url: format!("https://localhost:{port}/private-path"),
        select: Some("/secret".into()),
    };
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([4; 32]);
    let sealed = envelope::seal_to(
        &info.encryption_key,
        &private_info(&CHAIN, &requester, &reply.public()),
        &codec::encode(&params),
        &mut rng,
    )
    .unwrap();
    let private = |reply_key: EncryptionKey| OracleTicket {
        chain: CHAIN,
        request: 7,
        requester,
        query: Query::Private {
            enclave: info.identity,
            sealed: sealed.clone(),
            reply_key,
            own: vec![],
        },
        time_ms: NOW_MS,
        extra_roots: roots.clone(),
    };
    let d = relay(&mut e, private(reply.public()), Host::Honest);
    let Body::Sealed { ciphertext } = &d.datagram.body else {
        panic!("a private outcome in the clear")
    };
    assert!(!String::from_utf8_lossy(ciphertext).contains("marker-42"));
    let plain = reply
        .open(&reply_info(&CHAIN, 7), ciphertext)
        .expect("the requester opens it");
    let o: Outcome = codec::decode("outcome", &plain).unwrap();
    assert!(matches!(o, Outcome::Fetched { value: Value::Json(v), .. } if v == "\"marker-42\""));
    // Someone who copies the sealed params with their own reply key gets
    // nothing fetched: the params do not open for them.
    let thief = RecipientKey::from_seed(&[10; 32]);
    let d = relay(&mut e, private(thief.public()), Host::Honest);
    let Body::Sealed { ciphertext } = &d.datagram.body else {
        panic!()
    };
    let o: Outcome = codec::decode(
        "outcome",
        &thief.open(&reply_info(&CHAIN, 7), ciphertext).unwrap(),
    )
    .unwrap();
    assert!(
        matches!(
            o,
            Outcome::Failed {
                reason: FailReason::BadRequest,
                ..
            }
        ),
        "{o:?}"
    );
}
