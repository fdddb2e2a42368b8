//! The exposure options of the real binary: a read token, per-runtime rate
//! limits, and TLS served directly.

use std::path::Path;
use std::process::{Command, Stdio};

use ed25519_dalek::SigningKey;
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
    ]);
    assert!(ok, "{out}");
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

#[test]
fn tls_is_served_directly_with_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (installed by .ci/run)");
    assert!(ok.success());
    let data = dir.path().join("data");
    let server = serve(
        &data,
        &[
            "--tls-cert",
            cert.to_str().expect("utf8"),
            "--tls-key",
            key.to_str().expect("utf8"),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg("--resolve")
        .arg(format!(
            "localhost:{}:127.0.0.1",
            server.url.rsplit(':').next().expect("port")
        ))
        .arg(server.url.replace("127.0.0.1", "localhost") + "/v1/log")
        .output()
        .expect("curl (installed by .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(log["tree_size"], 0);
    // Half a configuration is refused at start.
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
}
