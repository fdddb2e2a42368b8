//! The exposure options of the real binary: a read token, per-runtime rate
//! limits, and TLS served directly.

use std::io::{ErrorKind, Read as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use lineage::keyfile::read_key_file;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::public_key_base64;

mod common;

use common::binary::{run, serve};

fn keygen(path: &Path) -> String {
    let (ok, out) = run(&["keygen", "--out", path.to_str().expect("utf8")]);
    assert!(ok, "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("public_key:"))
        .map(|s| s.trim().to_owned())
        .expect("public key")
}

#[test]
fn a_read_token_guards_reads_but_not_ingest_or_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = serve(&data, &["--read-token", "s3cret-token"]);
    let client = reqwest::blocking::Client::new();
    for path in [
        "/v1/log",
        "/checkpoint",
        "/tile/entries/000.p/1",
        "/metrics",
    ] {
        let r = client
            .get(format!("{}{path}", server.url))
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = r.json().expect("problem");
        assert_eq!(body["code"], "unauthorized");
        let r = client
            .get(format!("{}{path}", server.url))
            .bearer_auth("wrong")
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = client
        .get(format!("{}/v1/log", server.url))
        .bearer_auth("s3cret-token")
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        client
            .get(format!("{}/healthz", server.url))
            .send()
            .expect("get")
            .status(),
        200
    );
    // Ingest stays open: it is authenticated by the envelope signature.
    let authority = read_key_file(&data.join("authority.key")).expect("authority key");
    let statement = serde_json::json!({"action": "grant", "runtime": "agent/raw",
        "public_key": public_key_base64(&SigningKey::from_bytes(&[5; 32]).verifying_key()),
        "at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time")});
    let env = SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&statement).expect("json"),
        &authority,
    );
    let r = client
        .post(format!("{}/v1/entries", server.url))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&env.to_wire()).expect("json"))
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    // The CLI checks the receipt it gets, which reads the log key and
    // proofs: it needs the token, and without it says so (the statement may
    // be committed: it does not claim a refusal).
    let agent = dir.path().join("agent.key");
    let public = keygen(&agent);
    let key_path = data.join("authority.key");
    let other = keygen(&dir.path().join("other.key"));
    let grant = |runtime: &str, public: &str, token: Option<&str>| {
        let mut args = vec![
            "grant",
            "--authority-key",
            key_path.to_str().expect("utf8"),
            "--runtime",
            runtime,
            "--public-key",
            public,
            "--server",
            &server.url,
        ];
        if let Some(t) = token {
            args.extend(["--read-token", t]);
        }
        run(&args)
    };
    let (ok, out) = grant("agent/a", &public, None);
    assert!(!ok);
    assert!(out.contains("needs a read token"), "{out}");
    // It was committed all the same: granting it again conflicts.
    let (ok, out) = grant("agent/a", &public, Some("s3cret-token"));
    assert!(!ok && out.contains("key_conflict"), "{out}");
    let (ok, out) = grant("agent/b", &other, Some("s3cret-token"));
    assert!(ok, "{out}");
    let receipt: serde_json::Value = serde_json::from_str(&out).expect("a receipt");
    assert_eq!(receipt["format"], "lineage-bundle/v1");
}

/// Signs an array of workload starts for `runtime`, plus one for `other`.
fn starts(runtime: &str, key: &SigningKey, n: usize) -> Vec<serde_json::Value> {
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    (0..n)
        .map(|w| {
            let p = serde_json::json!({"runtime": runtime, "workload": format!("{runtime}-w{w}"),
                "seq": 0, "kind": "workload.start", "at": at});
            let env = SignedEnvelope::sign(
                PayloadType::Event,
                serde_json::to_vec(&p).expect("json"),
                key,
            );
            serde_json::to_value(env.to_wire()).expect("wire")
        })
        .collect()
}

#[test]
fn a_runtime_over_its_rate_gets_429_and_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // One event per second, bursts of two: within one request (microseconds)
    // the third and fourth events of agent/a are over the budget.
    let server = serve(
        &data,
        &["--rate-limit-per-runtime", "1", "--rate-limit-burst", "2"],
    );
    let authority = data.join("authority.key");
    let a = SigningKey::from_bytes(&[1; 32]);
    let b = SigningKey::from_bytes(&[2; 32]);
    for (runtime, k) in [("agent/a", &a), ("agent/b", &b)] {
        let (ok, out) = run(&[
            "grant",
            "--authority-key",
            authority.to_str().expect("utf8"),
            "--runtime",
            runtime,
            "--public-key",
            &public_key_base64(&k.verifying_key()),
            "--server",
            &server.url,
        ]);
        assert!(ok, "{out}");
    }
    let mut body = starts("agent/a", &a, 4);
    body.extend(starts("agent/b", &b, 1));
    // An envelope with a bad signature naming a's key does not spend a's budget.
    let mut forged = body[0].clone();
    forged["signatures"][0]["sig"] = serde_json::json!(base64_of(&[7u8; 64]));
    body.insert(0, forged);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/entries", server.url))
        .json(&body)
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let items: Vec<serde_json::Value> = r.json().expect("json");
    let codes: Vec<&str> = items
        .iter()
        .map(|i| i["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "bad_signature",
            "ok",
            "ok",
            "rate_limited",
            "rate_limited",
            "ok"
        ],
        "{items:?}"
    );
    assert_eq!(items[3]["status"], 429);
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A private CA (PEM) and a server certificate it issued for `localhost`
/// and 127.0.0.1 (chain and key files): the CA file, the chain, the key.
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Lineage test CA");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("chain.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write ca");
    std::fs::write(&paths.1, cert.pem() + &ca.pem()).expect("write chain");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

fn tls_flags<'a>(cert: &'a Path, key: &'a Path) -> [&'a str; 4] {
    [
        "--tls-cert",
        cert.to_str().expect("utf8"),
        "--tls-key",
        key.to_str().expect("utf8"),
    ]
}

#[test]
fn tls_is_served_directly_with_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = private_ca(dir.path());
    let data = dir.path().join("data");
    let server = serve(&data, &tls_flags(&cert, &key));
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let ca_cert =
        reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("read ca")).expect("ca pem");
    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca_cert)
        .build()
        .expect("client");
    let log: serde_json::Value = client
        .get(format!("{}/v1/log", server.url))
        .send()
        .expect("https get")
        .json()
        .expect("json");
    assert_eq!(log["tree_size"], 0);
    // Half a configuration is refused at start, and so is a key that does
    // not match the certificate.
    let (ok, out) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("utf8"),
        "--data-dir",
        data.to_str().expect("utf8"),
    ]);
    assert!(!ok);
    assert!(out.contains("tls_cert and tls_key"), "{out}");
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let (_, _, other_key) = private_ca(&other);
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf8"),
    ];
    args.extend(tls_flags(&cert, &other_key));
    let (ok, out) = run(&args);
    assert!(!ok);
    assert!(out.contains("not usable together"), "{out}");
}

/// `grant` and `submit` reach an `https://` ledger whose certificate a
/// private CA issued, given that CA with `--ca-cert`; without it the
/// certificate is refused.
#[test]
fn the_cli_reaches_a_tls_ledger_with_ca_cert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = private_ca(dir.path());
    let data = dir.path().join("data");
    let server = serve(&data, &tls_flags(&cert, &key));
    let ca = ca.to_str().expect("utf8");
    let agent = dir.path().join("agent.key");
    let public = keygen(&agent);
    let (ok, out) = run(&[
        "grant",
        "--authority-key",
        data.join("authority.key").to_str().expect("utf8"),
        "--runtime",
        "agent/a",
        "--public-key",
        &public,
        "--server",
        &server.url,
        "--ca-cert",
        ca,
    ]);
    assert!(ok, "{out}");
    let event = dir.path().join("start.json");
    std::fs::write(
        &event,
        r#"{"runtime":"agent/a","workload":"w-1","seq":0,"kind":"workload.start"}"#,
    )
    .expect("write");
    let submit = |extra: &[&str]| {
        let mut args = vec![
            "submit",
            "--key",
            agent.to_str().expect("utf8"),
            "--server",
            &server.url,
        ];
        args.extend(extra);
        args.push(event.to_str().expect("utf8"));
        run(&args)
    };
    // Without the CA: refused by the client, nothing sent.
    let (ok, out) = submit(&[]);
    assert!(!ok);
    assert!(out.contains("certificate"), "{out}");
    let (ok, out) = submit(&["--ca-cert", ca]);
    assert!(ok, "{out}");
    let receipt: serde_json::Value = serde_json::from_str(&out).expect("receipt json");
    assert_eq!(receipt["index"], 1);
    assert_eq!(receipt["format"], "lineage-bundle/v1");
    // A file that holds no certificate is an error, not "trust nothing".
    let (ok, out) = submit(&["--ca-cert", event.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(out.contains("--ca-cert"), "{out}");
}

/// The binary serves TLS through the bounded accept loop: a client that
/// connects and never completes the handshake is dropped after the request
/// timeout (the bounds themselves are tested in `api/tests/tls.rs`).
#[test]
fn the_binary_closes_a_tls_connection_that_never_handshakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cert, key) = private_ca(dir.path());
    let mut flags = tls_flags(&cert, &key).to_vec();
    flags.extend(["--request-timeout-secs", "1"]);
    let server = serve(&dir.path().join("data"), &flags);
    let addr = server.url.trim_start_matches("https://");
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let closed = loop {
        if started.elapsed() > Duration::from_secs(5) {
            break None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break Some(started.elapsed()),
        }
    };
    let closed = closed.expect("a connection without a handshake was still open after 5 s");
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );
}
