//! The `lineage-verify` binary itself: exit codes, text and `--json` output.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Fixture, flip, public, scenario, write};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lineage-verify");
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/vectors");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn audit_exit_codes_and_json() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("export");
    fx.write(&export);
    let vkey = fx.vkey();
    let authority = public(&fx.authority);

    let o = run(&[
        "audit",
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
    ]);
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).ends_with("VERIFIED\n"));
    // Not a terminal: plain progress lines on stderr.
    assert!(String::from_utf8_lossy(&o.stderr).contains("progress: 542/542 entries (100%)"));

    let o = run(&[
        "--json",
        "--quiet",
        "audit",
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
    ]);
    assert_eq!(code(&o), 0);
    let j = json(&o);
    assert_eq!(j["verdict"], "verified");
    assert_eq!(j["authority_source"], "command_line");
    assert_eq!(j["warnings"], serde_json::json!([]));
    assert_eq!(j["summary"]["entries"], 542);
    assert!(o.stderr.is_empty());

    // --since with an older checkpoint kept by the auditor.
    let old = dir.path().join("old.checkpoint");
    std::fs::write(&old, fx.checkpoint(300)).expect("write");
    let o = run(&[
        "audit",
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
        "--since",
        path(&old),
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // The key from a file.
    let vkey_file = dir.path().join("vkey");
    std::fs::write(&vkey_file, format!("{vkey}\n")).expect("write");
    let o = run(&[
        "audit",
        path(&export),
        "--log-key",
        path(&vkey_file),
        "--authority",
        &authority,
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // A tampered tile: exit 1, named in text and JSON.
    flip(&export, "tile/0/001", 40);
    let o = run(&[
        "audit",
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
        "--quiet",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("[index 257] tile_mismatch: tile/0/001"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "--json",
        "audit",
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
        "--quiet",
    ]);
    let j = json(&o);
    assert_eq!(
        (j["verdict"].as_str(), j["exit_code"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(j["violations"][0]["code"], "tile_mismatch");
    assert_eq!(j["violations"][0]["index"], 257);

    // lineage of the last build event.
    flip(&export, "tile/0/001", 40);
    let id = s.build_head.to_string();
    let o = run(&[
        "lineage",
        &id,
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("build#0 workload.start"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "--json",
        "lineage",
        &id,
        path(&export),
        "--log-key",
        &vkey,
        "--authority",
        &authority,
        "--quiet",
    ]);
    assert_eq!(json(&o)["nodes"].as_array().map(Vec::len), Some(8));
}

/// Issue 10 item 5: the export's manifest.json is written by the operator being
/// audited; a compromised host lists its own key there. Without `--authority`,
/// `audit` and `lineage` must not report success: they exit 2, verify nothing,
/// say how to pass the keys, and show the manifest's keys only as NOT trusted.
#[test]
fn audit_and_lineage_without_authority_refuse_to_trust_the_manifest() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("export");
    fx.write(&export);
    let vkey = fx.vkey();
    let listed = public(&fx.authority);
    let id = s.build_head.to_string();
    let audit = ["audit", path(&export), "--log-key", &vkey];
    let lineage = ["lineage", &id, path(&export), "--log-key", &vkey];
    for args in [&audit[..], &lineage[..]] {
        let o = run(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{args:?}: {}{stderr}", stdout(&o));
        assert_eq!(
            stdout(&o),
            "",
            "{args:?}: nothing verified, nothing printed"
        );
        for want in [
            "no --authority given",
            "--authority <B64> (base64 of the 32-byte key; repeatable",
            "NOT trusted",
            &format!("--authority {listed}"),
            "--tree-only",
        ] {
            assert!(stderr.contains(want), "{args:?}: {want:?} in:\n{stderr}");
        }
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let o = run(&with_json);
        assert_eq!(code(&o), 2);
        let j = json(&o);
        assert_eq!(
            (j["verdict"].as_str(), j["exit_code"].as_u64()),
            (Some("error"), Some(2))
        );
        assert!(
            j["error"]
                .as_str()
                .is_some_and(|e| e.contains("--authority <B64>")),
            "{j}"
        );
    }

    // No manifest: the same refusal, without a hint.
    std::fs::remove_file(export.join("manifest.json")).expect("rm");
    let o = run(&audit);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{stderr}");
    assert!(!stderr.contains("NOT trusted"), "{stderr}");

    // --tree-only replays no governance and needs no authority key.
    let o = run(&[
        "audit",
        path(&export),
        "--log-key",
        &vkey,
        "--tree-only",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).ends_with("VERIFIED\n"), "{}", stdout(&o));

    // The help says so.
    for command in ["audit", "lineage"] {
        // Whitespace collapsed: clap wraps long lines.
        let help = stdout(&run(&[command, "--help"]))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains("manifest.json keys are never used"), "{help}");
        assert!(help.contains("exit 2 and verify nothing"), "{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vkey_path = format!("{VECTORS}/vkey");
    for args in [
        vec!["audit"],
        vec!["audit", path(dir.path()), "--log-key", "not a key"],
        // No checkpoint in the directory.
        vec![
            "audit",
            path(dir.path()),
            "--log-key",
            &vkey_path,
            "--tree-only",
        ],
        // No authority key anywhere.
        vec![
            "audit",
            &format!("{VECTORS}/log-300"),
            "--log-key",
            &vkey_path,
        ],
        vec![
            "audit",
            &format!("{VECTORS}/log-300"),
            "--log-key",
            &vkey_path,
            "--authority",
            "AAAA",
        ],
        vec![
            "lineage",
            "xyz",
            &format!("{VECTORS}/log-300"),
            "--log-key",
            &vkey_path,
        ],
        vec!["bundle", "/no/such/receipt.json", "--log-key", &vkey_path],
        vec!["frobnicate"],
    ] {
        let o = run(&args);
        assert_eq!(
            code(&o),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = run(&[
        "--json",
        "audit",
        path(dir.path()),
        "--log-key",
        "not a key",
    ]);
    assert_eq!(code(&o), 2);
    assert_eq!(json(&o)["verdict"], "error");
    let help = stdout(&run(&["--help"]));
    for want in [
        "0  everything verified",
        "1  verification failed",
        "2  usage error",
        "3  fork",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
}

#[test]
fn tree_only_audit_of_the_vectors() {
    let dir = format!("{VECTORS}/log-300");
    let key = format!("{dir}/vkey");
    let o = run(&[
        "--json",
        "audit",
        &dir,
        "--log-key",
        &key,
        "--tree-only",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(json(&o)["summary"]["hashed"], 300);
}

#[test]
fn bundle_and_consistency_exit_codes() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let dir = tempfile::tempdir().expect("tempdir");
    let receipt = dir.path().join("receipt.json");
    write(
        dir.path(),
        "receipt.json",
        fx.receipt(s.build_1_index, fx.size())
            .to_string()
            .as_bytes(),
    );
    let vkey = fx.vkey();
    let runtime = public(&s.keys[0]);
    let o = run(&[
        "bundle",
        path(&receipt),
        "--log-key",
        &vkey,
        "--runtime-key",
        &runtime,
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("workload   build"), "{}", stdout(&o));
    let o = run(&["bundle", path(&receipt), "--log-key", &vkey]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("signer_unknown"), "{}", stdout(&o));
    let o = run(&[
        "--json",
        "bundle",
        path(&receipt),
        "--log-key",
        &vkey,
        "--allow-unknown-signer",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["checks"][5]["status"], "not_checked");

    // Two logs that agree on 300 entries, then diverge: consistency says fork, exit 3.
    let mut other = fx.clone();
    fx.entries.truncate(300);
    other.entries.truncate(300);
    fx.push_raw(b"one way");
    other.push_raw(b"another");
    other.push_raw(b"and more");
    let files = [
        ("old", fx.checkpoint(301)),
        ("new", other.checkpoint(302)),
        ("proof", other.consistency_proof(301, 302).to_string()),
        ("good-old", other.checkpoint(301)),
    ];
    for (name, text) in &files {
        write(dir.path(), name, text.as_bytes());
    }
    let p = |n: &str| dir.path().join(n).to_str().unwrap_or_default().to_owned();
    let o = run(&[
        "consistency",
        &p("old"),
        &p("new"),
        &p("proof"),
        "--log-key",
        &vkey,
    ]);
    assert_eq!(code(&o), 3, "{}", stdout(&o));
    assert!(stdout(&o).contains("evidence: the old checkpoint"));
    let o = run(&[
        "--json",
        "consistency",
        &p("old"),
        &p("new"),
        &p("proof"),
        "--log-key",
        &vkey,
    ]);
    assert_eq!(json(&o)["verdict"], "fork");
    let o = run(&[
        "consistency",
        &p("good-old"),
        &p("new"),
        &p("proof"),
        "--log-key",
        &vkey,
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}
