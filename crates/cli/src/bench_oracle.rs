//! `proctor bench oracle`: signed datagrams per second through the whole
//! oracle path, side by side with a plain rustls client on the same server.
//!
//! A local HTTPS server on 127.0.0.1 (a certificate from a CA made for the
//! run, trusted as the chain's extra root) answers a small JSON document.
//! Three measurements, in one run:
//! - **plain client**: the host fetching with rustls itself (session
//!   resumption on, as in the enclave): the physical limit on this box;
//! - **enclave path**: requests made on a chain, relayed through the
//!   enclave (TLS terminated inside, JSON selected, datagram signed);
//! - **on-chain verification**: one block delivering all those datagrams
//!   (transaction signatures, the enclave's signature, every check of m3).

use anyhow::{Context, Result, bail};
use proctor_enclave::Enclave;
use proctor_enclave::oracle::OracleTicket;
use proctor_enclave::wire::Transport;
use proctor_primitives::{Amount, Keypair};
use proctor_state::oracle::{Params, Query};
use proctor_state::{BlockEnv, Call, SignedTransaction, State, Transaction, testkit};
use proctor_tee::sim::{SimAttestationRoot, SimPlatform, sim_measurement};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct OracleArgs {
    /// Requests per measurement.
    #[arg(long, default_value_t = 2_000)]
    requests: u32,
    #[arg(long)]
    json: bool,
}

const BODY: &str = r#"{"pair":"EUR/USD","rate":{"bid":1.0842,"ask":1.0846},"ts":1780272000}"#;
const T0: u64 = 1_780_272_000_000;

/// The run's CA and the server's certificate for "localhost".
fn certificates() -> Result<(String, CertificateDer<'static>, PrivateKeyDer<'static>)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = rcgen::date_time_ymd(2025, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.not_before = rcgen::date_time_ymd(2025, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca, &ca_key)?;
    Ok((
        ca.pem(),
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS server on 127.0.0.1 with certificate `cert`: a thread per
/// connection, answering each GET with `body` (Content-Length, then
/// close_notify). Returns its port. (The oracle's end-to-end tests use it
/// too.)
pub fn serve(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    body: String,
) -> Result<u16> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (config, body) = (config.clone(), body.clone());
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.ends_with(b"\r\n\r\n") && req.len() < 16 << 10 {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    Ok(port)
}

/// One GET with a plain rustls client (the same request the enclave sends).
fn plain_fetch(config: &Arc<rustls::ClientConfig>, port: u16) -> Result<usize> {
    let conn = rustls::ClientConnection::new(config.clone(), ServerName::try_from("localhost")?)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_nodelay(true)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        format!(
            "GET /rates HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: proctor-oracle/1\r\n\
             Accept: application/json, */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    if !out.ends_with(BODY.as_bytes()) {
        bail!("the plain client got an incomplete response");
    }
    Ok(out.len())
}

pub fn run(args: OracleArgs) -> Result<()> {
    let n = args.requests.max(1) as usize;
    let (ca_pem, cert, key) = certificates()?;
    let port = serve(cert, key, BODY.to_string())?;

    // The plain client.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(
        rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .context("the run's CA")?,
    )?;
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    plain_fetch(&client, port)?;
    let began = Instant::now();
    for _ in 0..n {
        plain_fetch(&client, port)?;
    }
    let plain = began.elapsed();

    // A chain with one enclave, and n requests on it.
    let dir = std::env::temp_dir().join(format!("proctor-bench-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = SimAttestationRoot::from_secret(&[7; 32]);
    let platform = SimPlatform::open(&dir, SimAttestationRoot::from_secret(&[7; 32]))?;
    let ks = testkit::keys(2);
    let mut params = testkit::params(Some(root.public()), sim_measurement());
    params.oracle.extra_roots = vec![ca_pem.clone()];
    let mut g = testkit::genesis(&ks, u128::MAX / 4, params);
    g.timestamp = T0;
    let state = State::genesis(&g)?;
    let chain = g.hash();
    let operator = ks[1].public().address();
    let register = testkit::register_call(&platform, &operator, &chain, 5_000, 1_000_000);
    let identity = proctor_tee::Platform::identity(&platform);
    let offer = Call::Market(proctor_state::market::Call::SetOffer {
        identity,
        price: Amount(10),
        memory_pages: 1_000,
        fuel: 1_000_000,
        speed: 1_000_000,
    });
    let mut nonces = [0u64; 2];
    let mut sign = |who: usize, call: Call| -> SignedTransaction {
        let tx = Transaction {
            chain,
            signer: ks[who].public(),
            nonce: nonces[who],
            fee: Amount(1),
            call,
        }
        .sign(&ks[who]);
        nonces[who] += 1;
        tx
    };
    let env = |height: u64, miner: &Keypair| BlockEnv {
        height,
        timestamp: T0 + height * 1000,
        miner: miner.public().address(),
    };
    let txs = vec![sign(1, register), sign(1, offer)];
    let state = state.apply_block(&env(1, &ks[0]), &txs)?.state;
    let url = format!("https://localhost:{port}/rates");
    let fee = state.params().oracle.min_fee;
    let requests: Vec<SignedTransaction> = (0..n)
        .map(|_| {
            sign(
                0,
                Call::Oracle(proctor_state::oracle::Call::Request {
                    query: Query::Public(Params {
                        url: url.clone(),
                        select: Some("/rate/bid".into()),
                    }),
                    callback: None,
                    fee,
                    deadline_blocks: 0,
                }),
            )
        })
        .collect();
    let state = state.apply_block(&env(2, &ks[0]), &requests)?.state;

    // The enclave path, over the same server.
    let mut enclave = Enclave::new(Box::new(platform))?;
    let first = state.oracle_next_id() - n as u64;
    let mut datagrams = Vec::with_capacity(n);
    let began = Instant::now();
    for id in first..first + n as u64 {
        let r = state
            .oracle_request(id)
            .context("a request the bench made")?;
        let ticket = OracleTicket {
            chain,
            request: id,
            requester: r.requester,
            query: r.query,
            time_ms: T0 + 2000,
            extra_roots: vec![ca_pem.clone()],
        };
        let d = proctor_worker::oracle::relay(
            &mut enclave as &mut dyn Transport,
            ticket,
            Duration::from_secs(10),
        )
        .map_err(anyhow::Error::msg)?;
        datagrams.push(d);
    }
    let through_enclave = began.elapsed();
    if let Some(d) = datagrams.first() {
        match &d.datagram.body {
            proctor_state::oracle::Body::Public(proctor_state::oracle::Outcome::Fetched {
                value: proctor_state::oracle::Value::Json(v),
                ..
            }) if v == "1.0842" => {}
            other => bail!("the enclave path did not fetch the value: {other:?}"),
        }
    }

    // On-chain verification: one block delivering every datagram.
    let deliveries: Vec<SignedTransaction> = datagrams
        .into_iter()
        .map(|d| {
            sign(
                1,
                Call::Oracle(proctor_state::oracle::Call::Deliver {
                    datagram: d.datagram,
                    signature: d.signature,
                }),
            )
        })
        .collect();
    let began = Instant::now();
    let applied = state.apply_block(&env(3, &ks[0]), &deliveries)?;
    let verify = began.elapsed();
    let delivered = (first..first + n as u64)
        .filter(|&id| {
            applied.state.oracle_request(id).map(|r| r.state)
                == Some(proctor_state::oracle::RequestState::Delivered)
        })
        .count();
    if delivered != n {
        bail!("only {delivered} of {n} datagrams were delivered on chain");
    }
    let _ = std::fs::remove_dir_all(&dir);

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let (p, e, v) = (rate(plain), rate(through_enclave), rate(verify));
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "requests": n,
                "plain_client_per_s": p,
                "enclave_path_per_s": e,
                "onchain_verify_per_s": v,
                "enclave_vs_plain": p / e,
            })
        );
    } else {
        println!(
            "oracle, {n} requests to https://localhost:{port}/rates (TLS 1.3, sessions resumed)"
        );
        println!("  plain rustls client, from the host       {p:>8.0} fetches/s");
        println!("  enclave path: TLS inside, select, sign   {e:>8.0} signed datagrams/s");
        println!("  on-chain verification of m3 (one block)  {v:>8.0} datagrams/s");
        println!(
            "  enclave path / plain client              {:>8.2}x the time (goal: at most 1.5x)",
            p / e
        );
    }
    Ok(())
}
