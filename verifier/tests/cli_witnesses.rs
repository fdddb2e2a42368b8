//! The `lineage-verify` binary with `--policy` and `--max-age`: exit codes,
//! what it prints, how `--log-key` and the policy's `log` line combine, and
//! tlog-proof input. `--max-age` reads the real clock here, so cosignatures
//! are dated relative to it with margins of minutes to hours.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Fixture, cosign, policy_text, public, scenario, witness};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lineage-verify");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

struct Files {
    fx: Fixture,
    runtime_key: String,
    index: u64,
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let mut fx = Fixture::new();
        let s = scenario(&mut fx);
        Files {
            runtime_key: public(&s.keys[0]),
            index: s.build_1_index,
            fx,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        path(&p).to_owned()
    }

    /// The 2-of-3 policy over w1..w3, with or without the log's line.
    fn policy(&self, with_log: bool) -> String {
        let vkey = self.fx.vkey();
        self.write(
            if with_log { "policy" } else { "policy-no-log" },
            &policy_text(
                with_log.then_some(vkey.as_str()),
                &[&witness(1), &witness(2), &witness(3)],
                "group g 2 w1 w2 w3\nquorum g\n",
            ),
        )
    }

    /// The checkpoint of the whole log cosigned by w<n> at time t.
    fn note(&self, by: &[(u8, u64)]) -> String {
        let ws: Vec<_> = by.iter().map(|(n, t)| (witness(*n), *t)).collect();
        let refs: Vec<_> = ws.iter().map(|(w, t)| (w, *t)).collect();
        cosign(&self.fx.checkpoint(self.fx.size()), &refs)
    }

    fn bundle(&self, name: &str, note: &str) -> String {
        let mut r = self.fx.receipt(self.index, self.fx.size());
        r["checkpoint"] = note.into();
        self.write(name, &r.to_string())
    }

    fn tlog_proof(&self, name: &str, note: &str) -> String {
        self.write(name, &self.fx.tlog_proof(self.index, self.fx.size(), note))
    }
}

#[test]
fn bundle_with_a_policy_prints_the_witnesses_and_names_the_unmet_group() {
    let f = Files::new();
    let t = now() - 30;
    let policy = f.policy(true);
    let good = f.bundle("good.json", &f.note(&[(1, t), (3, t)]));
    let o = run(&[
        "bundle",
        &good,
        "--policy",
        &policy,
        "--runtime-key",
        &f.runtime_key,
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    for want in [
        "  ok           witnesses   quorum g met, cosigned by w1, w3\n",
        "witnesses (policy quorum g):\n",
        "  w2           witness.test/w2 (",
        ")  not signed\n",
        "VERIFIED\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    let o = run(&[
        "--json",
        "bundle",
        &good,
        "--policy",
        &policy,
        "--runtime-key",
        &f.runtime_key,
    ]);
    let j = json(&o);
    assert_eq!(j["verdict"], "verified");
    let signed: Vec<(&str, bool, Option<u64>)> = j["witnesses"]["witnesses"]
        .as_array()
        .expect("array")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap_or_default(),
                w["signed"] == true,
                w["timestamp"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        signed,
        [
            ("w1", true, Some(t)),
            ("w2", false, None),
            ("w3", true, Some(t))
        ]
    );

    let one = f.bundle("one.json", &f.note(&[(2, t)]));
    let o = run(&[
        "bundle",
        &one,
        "--policy",
        &policy,
        "--runtime-key",
        &f.runtime_key,
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains(
            "  FAILED       witnesses   quorum_unmet: checkpoint: quorum g is not met: g has 1 of 2\n"
        ),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "--json",
        "bundle",
        &one,
        "--policy",
        &policy,
        "--runtime-key",
        &f.runtime_key,
    ]);
    let j = json(&o);
    assert_eq!(j["exit_code"], 1);
    assert_eq!(j["witnesses"]["unmet"][0]["group"], "g");
    // Without --policy the log key alone still decides, as before.
    let o = run(&[
        "bundle",
        &one,
        "--log-key",
        &f.fx.vkey(),
        "--runtime-key",
        &f.runtime_key,
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn log_key_and_policy_must_agree() {
    let f = Files::new();
    let t = now();
    let good = f.bundle("good.json", &f.note(&[(1, t), (2, t)]));
    let with_log = f.policy(true);
    let no_log = f.policy(false);
    let rk = f.runtime_key.clone();
    let vkey = f.fx.vkey();
    // Both, agreeing; a policy without a log line and --log-key.
    for args in [
        vec!["--policy", &with_log, "--log-key", &vkey],
        vec!["--policy", &no_log, "--log-key", &vkey],
    ] {
        let mut a = vec!["bundle", &good, "--runtime-key", &rk];
        a.extend(args);
        let o = run(&a);
        assert_eq!(code(&o), 0, "{a:?}: {}{}", stdout(&o), stderr(&o));
    }
    // Another log key than the policy's: exit 2, saying which.
    let other = lineage_ledger::note::NoteSigner::new(common::ORIGIN, common::key(201))
        .expect("key")
        .verifier()
        .vkey();
    let o = run(&[
        "bundle",
        &good,
        "--policy",
        &with_log,
        "--log-key",
        &other,
        "--runtime-key",
        &rk,
    ]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!(
            "--log-key {other} is not a log of --policy, which names: {vkey}"
        )),
        "{}",
        stderr(&o)
    );
    // Neither a log key nor a log line.
    let o = run(&["bundle", &good, "--policy", &no_log, "--runtime-key", &rk]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no log key"), "{}", stderr(&o));
    let o = run(&["bundle", &good, "--runtime-key", &rk]);
    assert_eq!(code(&o), 2);
    // A policy that does not parse names its line.
    let bad = f.write("bad-policy", "quorum none\nwitness x\n");
    let o = run(&["bundle", &good, "--policy", &bad]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("policy line 2:"), "{}", stderr(&o));
    // --max-age without --policy, and a bad duration.
    let o = run(&["bundle", &good, "--log-key", &vkey, "--max-age", "10m"]);
    assert_eq!(code(&o), 2);
    let o = run(&[
        "bundle",
        &good,
        "--policy",
        &with_log,
        "--max-age",
        "10 minutes",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is not a duration"), "{}", stderr(&o));
}

#[test]
fn max_age_drops_old_cosignatures_by_the_clock() {
    let f = Files::new();
    let now = now();
    let policy = f.policy(true);
    let note = f.note(&[(1, now - 2 * 3600), (2, now - 60), (3, now + 3600)]);
    let receipt = f.tlog_proof("receipt.tlog-proof", &note);
    let verify = |max_age: Option<&str>| {
        let mut a = vec![
            "bundle",
            &receipt,
            "--policy",
            &policy,
            "--runtime-key",
            &f.runtime_key,
        ];
        if let Some(m) = max_age {
            a.extend(["--max-age", m]);
        }
        run(&a)
    };
    // No bound: all three count. 3h: w1 and w2 (w3 is from the future).
    assert_eq!(code(&verify(None)), 0);
    let o = verify(Some("3h"));
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // (about 3600s: the test read the clock a moment before the binary did)
    assert!(
        stdout(&o).contains("s ahead of this machine's clock (more than 60s)"),
        "{}",
        stdout(&o)
    );
    // 10m: only w2 counts.
    let o = verify(Some("10m"));
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains(
            "quorum g is not met: g has 1 of 2 (2 valid cosignatures not counted under --max-age)"
        ) && text.contains("DROPPED, older than --max-age"),
        "{text}"
    );
}

#[test]
fn tlog_proof_input_and_consistency_and_audit_with_a_policy() {
    let f = Files::new();
    let t = now() - 5;
    let policy = f.policy(true);
    let note = f.note(&[(1, t), (2, t)]);
    let proof = f.tlog_proof("p.tlog-proof", &note);
    let o = run(&[
        "--json",
        "bundle",
        &proof,
        "--policy",
        &policy,
        "--runtime-key",
        &f.runtime_key,
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert_eq!(json(&o)["form"], "c2sp.org/tlog-proof@v1");
    // One byte of the entry in the extra line changed.
    let text = std::fs::read_to_string(&proof).expect("read");
    let extra_at = text.find("extra ").expect("extra") + 20;
    let mut bytes = text.into_bytes();
    bytes[extra_at] = if bytes[extra_at] == b'A' { b'B' } else { b'A' };
    let tampered = f.write("t.tlog-proof", &String::from_utf8(bytes).expect("utf-8"));
    let o = run(&[
        "bundle",
        &tampered,
        "--policy",
        &policy,
        "--runtime-key",
        &f.runtime_key,
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));

    // consistency: the old checkpoint is a day old, --max-age 1h applies to the new one.
    let old = f.write(
        "old",
        &cosign(
            &f.fx.checkpoint(300),
            &[(&witness(2), t - 86_400), (&witness(3), t - 86_400)],
        ),
    );
    let new = f.write("new", &note);
    let cproof = f.write(
        "proof.json",
        &f.fx.consistency_proof(300, f.fx.size()).to_string(),
    );
    let o = run(&[
        "consistency",
        &old,
        &new,
        &cproof,
        "--policy",
        &policy,
        "--max-age",
        "1h",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("old checkpoint witnesses (policy quorum g):")
            && stdout(&o).contains("new checkpoint witnesses (policy quorum g, --max-age 3600s"),
        "{}",
        stdout(&o)
    );
    let bare_new = f.write("bare-new", &f.fx.checkpoint(f.fx.size()));
    let o = run(&[
        "--json",
        "consistency",
        &old,
        &bare_new,
        &cproof,
        "--policy",
        &policy,
    ]);
    assert_eq!(code(&o), 1);
    assert_eq!(json(&o)["violations"][0]["code"], "quorum_unmet");

    // audit: the export's checkpoint cosigned by one witness only.
    let export = f.dir.path().join("export");
    f.fx.write(&export);
    std::fs::write(export.join("checkpoint"), f.note(&[(3, t)])).expect("write");
    let o = run(&[
        "--json",
        "--quiet",
        "audit",
        path(&export),
        "--policy",
        &policy,
        "--authority",
        &public(&f.fx.authority),
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let j = json(&o);
    assert_eq!(j["violations"][0]["code"], "quorum_unmet");
    assert_eq!(j["witnesses"]["witnesses"][2]["timestamp"], t);
    assert_eq!(j["summary"]["entries"], f.fx.size());
}
