//! Our log cosigned by an independent C2SP tlog-witness implementation:
//! `aics-witness` from PyPI (Python >= 3.12). `.ci/run` installs it in a
//! virtual environment and sets `LINEAGE_AICS_WITNESS` to its executable;
//! without that variable the test says so and passes vacuously (it needs
//! a Python this machine may not have).
//!
//! The real `lineage serve --witness-policy` asks the real witness; the
//! witnessed checkpoint meets the policy, and the auditor's verifier
//! accepts a witnessed receipt with the witness's cosignature. Restarting
//! the log forgets the witness's size: its first request then says
//! `old 0`, the witness answers 409 with its size, and the retry is
//! cosigned.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{Killed, Server, get, run, serve, witnessed};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::policy::Policy;

const ORIGIN: &str = "lineage.local/log";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn aics(exe: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(exe)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run aics-witness");
    assert!(
        out.status.success(),
        "aics-witness {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn submit(server: &Server, key: &Path, dir: &Path, workload: &str) -> serde_json::Value {
    let event = dir.join(format!("{workload}.json"));
    std::fs::write(
        &event,
        format!(
            r#"{{"runtime":"agent/aics","workload":"{workload}","seq":0,"kind":"workload.start"}}"#
        ),
    )
    .expect("write");
    let (ok, out) = run(&[
        "submit",
        "--key",
        key.to_str().expect("utf8"),
        "--server",
        &server.url,
        event.to_str().expect("utf8"),
    ]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).expect("a receipt")
}

#[test]
fn our_log_is_cosigned_by_aics_witness_and_a_restart_recovers_through_409() {
    let Ok(exe) = std::env::var("LINEAGE_AICS_WITNESS") else {
        eprintln!("LINEAGE_AICS_WITNESS is not set: the aics-witness interop test is skipped");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The log's key first: the witness must know its vkey.
    let log_key = d.join("log.key");
    let (ok, out) = run(&["keygen", "--out", log_key.to_str().expect("utf8")]);
    assert!(ok, "{out}");
    let log_vkey = NoteSigner::new(
        ORIGIN,
        lineage::keyfile::read_key_file(&log_key).expect("log key"),
    )
    .expect("signer")
    .verifier()
    .vkey();

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let out = aics(
        &exe,
        d,
        &[
            "init",
            "--config",
            "witness.json",
            "--name",
            "aics.test/w1",
            "--listen",
            &listen,
        ],
    );
    let witness_vkey = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("aics.test/w1+"))
        .unwrap_or_else(|| panic!("no vkey in {out}"))
        .to_owned();
    aics(
        &exe,
        d,
        &[
            "add-log",
            "--config",
            "witness.json",
            "--origin",
            ORIGIN,
            "--vkey",
            &log_vkey,
        ],
    );
    let mut witness = Command::new(&exe)
        .args(["serve", "--config", "witness.json"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aics-witness serve");
    let stderr = witness.stderr.take().expect("stderr");
    let witness = Killed(witness);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("aics-witness: {line}");
        }
    });
    let start = Instant::now();
    while get(&format!("http://{listen}/healthz")).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "aics-witness did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let policy_text =
        format!("log {log_vkey}\nwitness aics {witness_vkey} http://{listen}\nquorum aics\n");
    std::fs::write(d.join("policy"), &policy_text).expect("write policy");
    let policy = Policy::parse(policy_text.as_bytes()).expect("policy");
    let data = d.join("ledger");
    let policy_path = d.join("policy");
    let args = [
        "--log-key",
        log_key.to_str().expect("utf8"),
        "--witness-policy",
        policy_path.to_str().expect("utf8"),
        "--witness-interval-ms",
        "100",
    ];
    let server = serve(&data, &args);
    let agent = d.join("agent.key");
    let (ok, out) = run(&["keygen", "--out", agent.to_str().expect("utf8")]);
    assert!(ok, "{out}");
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public_key:"))
        .map(|s| s.trim().to_owned())
        .expect("public key");
    let (ok, out) = run(&[
        "grant",
        "--authority-key",
        data.join("authority.key").to_str().expect("utf8"),
        "--runtime",
        "agent/aics",
        "--public-key",
        &public,
        "--server",
        &server.url,
    ]);
    assert!(ok, "{out}");
    let receipt = submit(&server, &agent, d, "w-1");
    let index = receipt["index"].as_u64().expect("index");
    witnessed(&server, &policy, index + 1);

    // The auditor's verifier accepts the witnessed receipt, cosigned by aics.
    let event_id = receipt["event_id"].as_str().expect("id");
    let (status, body) = get(&format!(
        "{}/v1/events/{event_id}/receipt?witnessed=true",
        server.url
    ));
    assert_eq!(status, 200, "{body}");
    let witness_policy = lineage_verify::witnesses::WitnessPolicy {
        policy: policy.clone(),
        freshness: Some(lineage_verify::witnesses::Freshness {
            max_age: 3600,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }),
    };
    let log_verifier = lineage_ledger::note::NoteVerifier::from_vkey(&log_vkey).expect("vkey");
    let runtime_keys = [lineage::keyfile::read_key_file(&agent)
        .expect("agent key")
        .verifying_key()];
    let report = lineage_verify::receipt::verify_receipt(
        body.as_bytes(),
        &lineage_verify::receipt::ReceiptOptions {
            log_key: &log_verifier,
            runtime_keys: &runtime_keys,
            authorities: &[],
            allow_unknown_signer: false,
            witnesses: Some(&witness_policy),
        },
    );
    assert_eq!(
        report.verdict(),
        lineage_verify::report::Verdict::Verified,
        "{:?}",
        report.checks
    );

    // A restart forgets the witness's size: 409, then a cosigned retry.
    drop(server);
    let server = serve(&data, &args);
    let receipt = submit(&server, &agent, d, "w-2");
    witnessed(
        &server,
        &policy,
        receipt["index"].as_u64().expect("index") + 1,
    );
    drop(server);
    drop(witness);
}
