//! `lineage witness` as a user runs it: the real binary, 127.0.0.1 on an ephemeral
//! port; add-log, serve, status, a crash (kill -9) after a cosignature, a restart
//! under another identity refused. And our witness against an independent client
//! (aics-witness's, Python) when `LINEAGE_AICS_WITNESS` names the `aics-witness`
//! executable of a virtual environment (`.ci/run` sets it; the client runs with that
//! environment's `python`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ed25519_dalek::SigningKey;
use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint, verify_checkpoint};
use lineage_ledger::cosignature::CosignerVerifier;
use lineage_ledger::leaf_hash;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::policy::Policy;
use lineage_ledger::tree::{MemNodes, prove_consistency, root};
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, parse_conflict_body,
};

mod common;

use common::binary::{BIN, Killed, run, witnessed};

const ORIGIN: &str = "example.com/cli-log";
const NAME: &str = "witness.example/cli";

struct WitnessProcess {
    child: Child,
    url: String,
    vkey: String,
    policy_line: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, name: &str) -> WitnessProcess {
    let mut child = Command::new(BIN)
        .args([
            "witness",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--origin",
            name,
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lineage witness serve");
    let stdout = child.stdout.take().expect("stdout");
    let (mut vkey, mut policy_line, mut url) = (None, None, None);
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(v) = line.strip_prefix("lineage witness: vkey ") {
            vkey = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("lineage witness: policy line: ") {
            policy_line = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("lineage witness: listening on ") {
            url = Some(v.to_owned());
            break;
        }
    }
    WitnessProcess {
        child,
        url: url.expect("the witness printed its address"),
        vkey: vkey.expect("the witness printed its vkey"),
        policy_line: policy_line.expect("the witness printed its policy line"),
    }
}

fn log_seed() -> [u8; 32] {
    [42; 32]
}

fn log_signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&log_seed())).expect("name")
}

fn nodes() -> MemNodes {
    MemNodes::new((0..32u64).map(|i| leaf_hash(&i.to_be_bytes())).collect())
}

fn note(size: u64) -> String {
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: root(size, &nodes()).expect("root"),
        extensions: vec![],
    };
    sign_checkpoint(&cp, &log_signer()).expect("signs")
}

fn request(old: u64, new: u64) -> Vec<u8> {
    let proof = if old == 0 {
        vec![]
    } else {
        prove_consistency(old, new, &nodes()).expect("proof")
    };
    AddCheckpointRequest::new(old, proof, note(new))
        .expect("request")
        .to_bytes()
}

fn post(url: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .expect("post");
    (r.status().as_u16(), r.bytes().expect("body").to_vec())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn witness_cli_adds_logs_serves_survives_a_crash_and_keeps_its_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("w");
    let log_vkey = log_signer().verifier().vkey();

    // A bad key is refused before anything is created.
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&data),
        "--origin",
        ORIGIN,
        "--vkey",
        "nope",
    ]);
    assert!(!ok, "{out}");
    assert!(!data.exists());
    let other_name = NoteSigner::new("example.com/other", SigningKey::from_bytes(&log_seed()))
        .expect("name")
        .verifier()
        .vkey();
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&data),
        "--origin",
        ORIGIN,
        "--vkey",
        &other_name,
    ]);
    assert!(!ok && out.contains("not the origin"), "{out}");

    // Before the first start, and again (idempotent).
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&data),
        "--origin",
        ORIGIN,
        "--vkey",
        &log_vkey,
    ]);
    assert!(ok && out.contains("added log"), "{out}");
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&data),
        "--origin",
        ORIGIN,
        "--vkey",
        &log_vkey,
    ]);
    assert!(ok && out.contains("already trusts"), "{out}");

    let witness = serve(&data, NAME);
    let verifier = CosignerVerifier::from_vkey(&witness.vkey).expect("vkey");
    assert_eq!(verifier.name(), NAME);
    assert_eq!(
        witness.policy_line,
        format!("witness {NAME} {} {}", witness.vkey, witness.url)
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(data.join("witness.key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // add-log needs the witness stopped, and says so; status works while it runs.
    let x_vkey = NoteSigner::new("example.com/x", SigningKey::from_bytes(&log_seed()))
        .expect("name")
        .verifier()
        .vkey();
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&data),
        "--origin",
        "example.com/x",
        "--vkey",
        &x_vkey,
    ]);
    assert!(!ok && out.contains("in use"), "{out}");
    let (ok, out) = run(&["witness", "status", "--data-dir", s(&data)]);
    assert!(
        ok && out.contains(&format!("log {ORIGIN} (nothing cosigned yet)")),
        "{out}"
    );

    let (status, body) = post(&witness.url, request(0, 7));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let cp = verify_checkpoint(note(7).as_bytes(), &log_signer().verifier(), ORIGIN).expect("cp");
    AddCheckpointResponse::parse(&body)
        .expect("parses")
        .verify(&cp, &verifier)
        .expect("verifies");
    let (ok, out) = run(&["witness", "status", "--data-dir", s(&data), "--json"]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["logs"][0]["size"], 7);

    // Killed right after answering: the cosigned size was on disk before the answer.
    let vkey = witness.vkey.clone();
    drop(witness);
    let witness = serve(&data, NAME);
    assert_eq!(witness.vkey, vkey);
    let (status, body) = post(&witness.url, request(0, 9));
    assert_eq!((status, parse_conflict_body(&body)), (409, Ok(7)));
    drop(witness);

    // Another name for this store, or its key gone: refused, nothing changed.
    let refused = Command::new(BIN)
        .args([
            "witness",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--origin",
            "witness.example/other",
            "--data-dir",
            s(&data),
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("belongs to another witness"),
        "{err}"
    );
    std::fs::rename(data.join("witness.key"), dir.path().join("moved.key")).expect("move key");
    let refused = Command::new(BIN)
        .args([
            "witness",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--origin",
            NAME,
            "--data-dir",
            s(&data),
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("is missing"),
        "{err}"
    );
    assert!(!data.join("witness.key").exists());
}

/// Our witness against aics-witness's client (c2sp.org/tlog-witness, independent
/// Python implementation): cosign, 409 and retry, a fork refused, 404 and 400.
/// Needs `LINEAGE_AICS_WITNESS`, the `aics-witness` executable of a venv (`.ci/run`
/// sets it, as for `tests/interop_aics.rs`); the script runs with that venv's
/// `python`. Without it the test says so and checks nothing.
#[test]
fn aics_witness_client_is_cosigned_by_our_witness() {
    let Some(exe) = std::env::var_os("LINEAGE_AICS_WITNESS") else {
        eprintln!(
            "LINEAGE_AICS_WITNESS is not set: the aics-witness client interop test is skipped"
        );
        return;
    };
    let python = Path::new(&exe)
        .parent()
        .expect("the executable's directory")
        .join("python");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("w");
    let log_vkey = log_signer().verifier().vkey();
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&data),
        "--origin",
        ORIGIN,
        "--vkey",
        &log_vkey,
    ]);
    assert!(ok, "{out}");
    let witness = serve(&data, NAME);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/witness_interop/aics_client.py");
    let state = dir.path().join("client-state");
    std::fs::create_dir_all(&state).expect("state dir");
    let out = Command::new(&python)
        .arg(&script)
        .args([
            &witness.url,
            &witness.vkey,
            ORIGIN,
            &hex(&log_seed()),
            s(&state),
        ])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        4,
        "{stdout}"
    );

    // The fork the client sent is kept as evidence; the witness holds 14.
    let (ok, out) = run(&["witness", "status", "--data-dir", s(&data), "--json"]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["logs"][0]["size"], 14);
    assert_eq!(json["evidence"], 1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn submit_event(ledger: &common::binary::Server, key: &Path, dir: &Path, workload: &str) -> u64 {
    let event = dir.join(format!("{workload}.json"));
    std::fs::write(
        &event,
        format!(
            r#"{{"runtime":"agent/w","workload":"{workload}","seq":0,"kind":"workload.start"}}"#
        ),
    )
    .expect("write");
    let (ok, out) = run(&[
        "submit",
        "--key",
        s(key),
        "--server",
        &ledger.url,
        s(&event),
    ]);
    assert!(ok, "{out}");
    let receipt: serde_json::Value = serde_json::from_str(&out).expect("a receipt");
    receipt["index"].as_u64().expect("index")
}

/// Our log witnessed by our witness, both the real binary: `lineage serve
/// --witness-policy` names a `lineage witness serve`; the published checkpoint
/// meets the policy; the witness killed (-9) and restarted from its store keeps
/// cosigning, from the size it had stored.
#[test]
fn our_log_is_witnessed_by_our_witness_across_a_witness_crash() {
    const LOG_ORIGIN: &str = "lineage.local/log";
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let log_key = d.join("log.key");
    let (ok, out) = run(&["keygen", "--out", s(&log_key)]);
    assert!(ok, "{out}");
    let log_vkey = NoteSigner::new(
        LOG_ORIGIN,
        lineage::keyfile::read_key_file(&log_key).expect("log key"),
    )
    .expect("signer")
    .verifier()
    .vkey();
    let wdata = d.join("witness");
    let (ok, out) = run(&[
        "witness",
        "add-log",
        "--data-dir",
        s(&wdata),
        "--origin",
        LOG_ORIGIN,
        "--vkey",
        &log_vkey,
    ]);
    assert!(ok, "{out}");
    let witness = serve(&wdata, NAME);
    // The witness's own policy line, pasted as printed.
    let policy_text = format!("log {log_vkey}\n{}\nquorum {NAME}\n", witness.policy_line);
    std::fs::write(d.join("policy"), &policy_text).expect("write policy");
    let policy = Policy::parse(policy_text.as_bytes()).expect("policy");

    let data = d.join("ledger");
    let ledger = common::binary::serve(
        &data,
        &[
            "--log-key",
            s(&log_key),
            "--witness-policy",
            s(&d.join("policy")),
            "--witness-interval-ms",
            "100",
        ],
    );
    let agent = d.join("agent.key");
    let (ok, out) = run(&["keygen", "--out", s(&agent)]);
    assert!(ok, "{out}");
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public_key:"))
        .map(|p| p.trim().to_owned())
        .expect("public key");
    let (ok, out) = run(&[
        "grant",
        "--authority-key",
        s(&data.join("authority.key")),
        "--runtime",
        "agent/w",
        "--public-key",
        &public,
        "--server",
        &ledger.url,
    ]);
    assert!(ok, "{out}");
    let index = submit_event(&ledger, &agent, d, "w-1");
    witnessed(&ledger, &policy, index + 1);

    // Killed and restarted on another port would change the policy's URL: restart
    // on the same one.
    let url = witness.url.clone();
    drop(witness);
    let listen = url.trim_start_matches("http://").to_owned();
    let mut child = Command::new(BIN)
        .args([
            "witness",
            "serve",
            "--listen",
            &listen,
            "--origin",
            NAME,
            "--data-dir",
            s(&wdata),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart the witness");
    let stdout = child.stdout.take().expect("stdout");
    let restarted = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("lineage witness: listening on "));
    let _restarted_witness = Killed(child);
    assert!(restarted, "the witness restarted on {listen}");
    let index = submit_event(&ledger, &agent, d, "w-2");
    let note = witnessed(&ledger, &policy, index + 1);
    let size = policy
        .verify(note.as_bytes())
        .expect("verifies")
        .checkpoint()
        .checkpoint()
        .size;
    let (ok, out) = run(&["witness", "status", "--data-dir", s(&wdata), "--json"]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(json["logs"][0]["size"].as_u64() >= Some(size), "{json}");
    assert_eq!(json["evidence"], 0);
}
