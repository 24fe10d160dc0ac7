//! The oracle end to end on a devnet: real HTTPS servers on 127.0.0.1 with
//! certificates from a CA made here (rcgen), trusted through
//! `proctor devnet --oracle-root`; requests from the CLI, served by the
//! devnet's worker (its enclave terminates TLS), delivered on chain.

mod common;
use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const MARKER: &str = "zqxoraclemarker";

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn new_ca() -> Ca {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let key = KeyPair::generate().unwrap();
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// An HTTPS server for `name`, certified by `ca`, answering `body`; its
/// port and the hash of its certificate.
fn serve(ca: &Ca, name: &str, body: String) -> (u16, String) {
    serve_until(ca, name, body, 2035)
}

/// [`serve`] with a certificate valid until the start of `until`.
fn serve_until(ca: &Ca, name: &str, body: String, until: i32) -> (u16, String) {
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(until, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    let hash = proctor_primitives::Hash::of(der.as_ref()).to_string();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let port = proctor_cli::bench_oracle::serve(der, key, body).unwrap();
    (port, hash)
}

/// A one-worker devnet in a new directory `name` whose genesis trusts a new
/// CA: the directory (removed when dropped, so it is returned first and
/// dropped last), its chain directory, the CA, the devnet and its RPC
/// address.
fn devnet_trusting_a_ca(
    name: &str,
    extra: &[&str],
) -> (TmpDir, std::path::PathBuf, Ca, Proc, String) {
    let dir = tmp(name);
    let chain = dir.join("chain");
    let ca = new_ca();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let args = [&["--oracle-root", ca_file.to_str().unwrap()], extra].concat();
    let (devnet, url) = start_devnet_with(&chain, 1, &args);
    (dir, chain, ca, devnet, url)
}

#[test]
fn oracle_requests_are_served_checked_and_private_ones_stay_private() {
    let (_dir, chain, ca, _devnet, url) = devnet_trusting_a_ca("oracle", &[]);
    wait_for("a few blocks", 120, || height(&url).filter(|&h| h >= 2));
    // The worker's market offer makes it a provider.
    wait_for("an oracle provider", 120, || {
        let dev1 = chain.join("keys/dev1.json");
        let o = run(&request(
            &url,
            dev1.to_str().unwrap(),
            "https://a.invalid/",
            &[],
        ));
        o.status.success().then_some(())
    });
    let key = chain.join("keys/dev0.json");
    let key = key.to_str().unwrap();

    // A selection returns exactly the served value, with its certificate.
    let (port, cert_hash) = serve(&ca, "localhost", r#"{"price":{"usd":[42.5,"x"]}}"#.into());
    let feed = format!("https://localhost:{port}/feed");
    let v = ok_json(&request(
        &url,
        key,
        &feed,
        &["--select", "/price/usd", "--wait"],
    ));
    assert_eq!(v["state"], "delivered", "{v}");
    assert_eq!(v["value"], r#"[42.5,"x"]"#);
    assert_eq!(v["status"], 200);
    assert_eq!(v["server_name"], "localhost");
    assert_eq!(v["cert_hash"], cert_hash.as_str());
    assert!(v["height"].as_u64().unwrap() > 0);
    assert!(v["fee_paid"].as_u64().unwrap() > 0);
    let id = v["id"].as_u64().unwrap().to_string();
    let got = ok_json(&["--rpc", &url, "oracle", "get", &id, "--json"]);
    assert_eq!(got["value"], v["value"]);

    // A forged m3 from a key no enclave registered, sent by an account
    // through RPC: dropped with its own code.
    forge_datagram(
        &url,
        &chain.join("keys/dev1.json"),
        v["id"].as_u64().unwrap(),
    );

    // A certificate for another name, one from another CA, and one expired
    // at the block's time (the devnet's blocks are stamped now): failed,
    // with the reason.
    let (wrong_name, _) = serve(&ca, "other.example", "{}".into());
    let (other_ca, _) = serve(&new_ca(), "localhost", "{}".into());
    let (expired, _) = serve_until(&ca, "localhost", "{}".into(), 2026);
    for port in [wrong_name, other_ca, expired] {
        let target = format!("https://localhost:{port}/");
        let v = ok_json(&request(&url, key, &target, &["--wait"]));
        assert_eq!(v["state"], "failed", "{v}");
        assert!(
            v["error"].as_str().unwrap().starts_with("certificate"),
            "{v}"
        );
    }

    // A private request: the marker in the path and in the body.
    let (port, _) = serve(&ca, "localhost", format!(r#"{{"secret":"{MARKER}-body"}}"#));
    let secret = format!("https://localhost:{port}/{MARKER}-path");
    let v = ok_json(&request(
        &url,
        key,
        &secret,
        &["--select", "/secret", "--private", "--wait"],
    ));
    assert_eq!(v["value"], format!("\"{MARKER}-body\""), "{v}");
    let id = v["id"].as_u64().unwrap().to_string();
    // With the key, the requester reads back its URL.
    let mine = ok_json(&["--rpc", &url, "oracle", "get", &id, "--key", key, "--json"]);
    assert_eq!(mine["url"], secret.as_str(), "{mine}");
    assert_eq!(mine["value"], v["value"]);
    // Without the key: ciphertext only.
    let public = ok_json(&["--rpc", &url, "oracle", "get", &id, "--json"]);
    assert!(
        public["value"].is_null() && public["sealed"].is_string(),
        "{public}"
    );
    let listed = run(&["--rpc", &url, "oracle", "list", "--json"]);
    for answer in [public.to_string().into_bytes(), listed.stdout] {
        assert!(!contains(&answer, MARKER), "an RPC answer holds the marker");
    }
    // Nowhere on disk or in the logs.
    let scanned = assert_nowhere_on_disk(&chain, MARKER);
    assert!(scanned > 10_000, "scanned only {scanned} bytes");
}

/// A host that alters a byte of the server's response as it relays it: the
/// enclave's TLS catches it, and the chain records a signed `tls` failure,
/// never the altered data.
#[test]
fn a_relay_that_alters_the_response_gets_a_tls_failure_on_chain() {
    let (_dir, chain, ca, _devnet, url) =
        devnet_trusting_a_ca("oracle-tamper", &["--tamper-oracle-worker", "0"]);
    let (port, _) = serve(&ca, "localhost", r#"{"v":"genuine"}"#.into());
    let key = chain.join("keys/dev0.json");
    let target = format!("https://localhost:{port}/");
    // Until the worker's offer is on chain there is no provider to ask.
    let v = wait_for("a provider to take the request", 120, || {
        let o = run(&request(
            &url,
            key.to_str().unwrap(),
            &target,
            &["--select", "/v", "--wait"],
        ));
        o.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap())
    });
    assert_eq!(v["state"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("tls"), "{v}");
    assert!(v["value"].is_null(), "{v}");
    assert!(v["height"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn a_datagram_reaches_a_confidential_contract_through_its_callback() {
    let (_dir, chain, ca, _devnet, url) = devnet_trusting_a_ca("oracle-feed", &[]);
    let key = chain.join("keys/dev0.json");
    let key = key.to_str().unwrap();
    let feed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/contracts/feed.wasm");
    // Once the worker's market offer makes it a provider.
    let v = wait_for("the feed deployed", 120, || {
        let o = run(&[
            "--rpc",
            &url,
            "contract",
            "deploy",
            feed.to_str().unwrap(),
            "--key",
            key,
            "--json",
        ]);
        o.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap())
    });
    let id = v["id"].as_u64().unwrap();
    let (port, _) = serve(&ca, "localhost", r#"{"price":{"usd":[42.5,"x"]}}"#.into());
    let target = format!("https://localhost:{port}/feed");
    let id_arg = id.to_string();
    let v = ok_json(&request(
        &url,
        key,
        &target,
        &["--select", "/price/usd", "--callback", &id_arg, "--wait"],
    ));
    assert_eq!(v["state"], "delivered", "{v}");
    // The chain makes it the contract's command from the oracle's address;
    // the executor applies it.
    let info = wait_for("the datagram applied", 120, || {
        let c = rpc(&url, "proctor_contract", serde_json::json!([id]));
        (c["applied"] == 1).then_some(c)
    });
    assert_eq!(info["commands"], 1, "{info}");
    let cmd = rpc(&url, "proctor_contractCommand", serde_json::json!([id, 1]));
    assert_eq!(cmd["oracle"], true, "{cmd}");
    assert_eq!(cmd["receipt"]["code"], 0, "{cmd}");
    let q = |msg: &str| {
        run(&[
            "--rpc", &url, "contract", "query", &id_arg, "--key", key, "--msg", msg, "--json",
        ])
    };
    let o = q("latest");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (a["reply"].as_str(), a["verified"].as_bool()),
        (Some(r#"[42.5,"x"]"#), Some(true))
    );
    let o = q("request");
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(a["reply"], v["id"].as_u64().unwrap().to_string());
    // A user's command is not a datagram: the feed refuses it.
    let o = run(&[
        "--rpc", &url, "contract", "call", &id_arg, "--key", key, "--msg", "latest", "--wait",
        "--json",
    ]);
    assert!(!o.status.success());
}

/// The arguments of `proctor --rpc URL oracle request --url TARGET --key
/// KEY --json MORE..`.
fn request<'a>(url: &'a str, key: &'a str, target: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let args = [
        "--rpc", url, "oracle", "request", "--url", target, "--key", key, "--json",
    ];
    [&args[..], more].concat()
}

/// Sends a datagram for request `id` signed by a fresh key: refused with
/// code 1267.
fn forge_datagram(url: &str, sender: &std::path::Path, id: u64) {
    use proctor_state::oracle::{Body, Datagram, Outcome, Value};
    let k = proctor_cli::keys::read(sender).unwrap();
    let forger = proctor_primitives::Keypair::from_secret(&[77; 32]);
    let r: proctor_state::oracle::OracleRequest =
        serde_json::from_value(rpc(url, "proctor_oracleRequest", serde_json::json!([id]))).unwrap();
    let info = ok_json(&["--rpc", url, "chain", "info", "--json"]);
    let chain: proctor_primitives::Hash = info["genesis_hash"].as_str().unwrap().parse().unwrap();
    let genesis: proctor_state::Genesis =
        serde_json::from_value(rpc(url, "proctor_genesis", serde_json::json!([]))).unwrap();
    let d = Datagram {
        request: id,
        params: r.query.hash(),
        enclave: forger.public(),
        roots: genesis.params.oracle.roots_hash(),
        time_ms: r.created_ms,
        body: Body::Public(Outcome::Fetched {
            server_name: "localhost".into(),
            cert_hash: proctor_primitives::Hash::ZERO,
            status: 200,
            value: Value::Json("\"forged\"".into()),
        }),
    };
    let signature = forger.sign(&d.signing_bytes(&chain));
    let account = ok_json(&[
        "--rpc",
        url,
        "account",
        &k.public().address().to_string(),
        "--json",
    ]);
    let tx = proctor_state::Transaction {
        chain,
        signer: k.public(),
        nonce: account["next_nonce"].as_u64().unwrap(),
        fee: proctor_primitives::Amount(info["min_fee"].as_u64().unwrap() as u128),
        call: proctor_state::Call::Oracle(proctor_state::oracle::Call::Deliver {
            datagram: d,
            signature,
        }),
    }
    .sign(&k);
    // The node tries a transaction against its state on admission: the
    // forgery is refused there, with the oracle's code for it.
    let answer = rpc(
        url,
        "proctor_sendTransaction",
        serde_json::json!([proctor_rpc::to_hex(&tx)]),
    );
    assert_eq!(answer["code"], 1267, "{answer}");
}
