//! `lineage demo` as a newcomer runs it: the real binary on a loopback port
//! and a throwaway data directory. Its governance scenes happen, are
//! printed, and leave in the log what they say: a halt that follows the
//! lineage, a resume that lifts only its own halt, a key refused outside
//! its scope and after its window, trust domains crossed, workloads ended.
//! Then SIGTERM, and the demo exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lineage");

/// The demo's child process, killed if the test fails before stopping it.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(url: &str) -> Value {
    let resp = reqwest::blocking::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The kinds of a workload's events, in order.
fn kinds(base: &str, workload: &str) -> Vec<String> {
    let page = get(&format!("{base}/v1/workloads/{}/events", path(workload)));
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// A workload ID as one path segment.
fn path(workload: &str) -> String {
    workload.replace('/', "%2F")
}

/// The number after `key` in `line` (`index 284`, `halt_index 284`).
fn number_after(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number after {key} in {line}"))
}

#[test]
fn the_demo_halts_resumes_and_expires_as_it_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("ledger"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lineage demo");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut demo = Demo(child);
    // Both streams, line by line; the simulator's warning that it stopped
    // (an outcome it did not expect) is on stderr.
    let (tx, rx) = mpsc::channel();
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("demo simulator stopped") && err_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Everything up to the last governance step (the expired key).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("refused key_expired"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("demo simulator stopped") => {
                panic!("{line}\nafter:\n{}", lines.join("\n"))
            }
            Ok(line) => lines.push(line),
            Err(e) => panic!(
                "the demo stopped short ({e}); it printed:\n{}",
                lines.join("\n")
            ),
        }
    }
    let text = lines.join("\n");
    let find = |what: &str| -> &String {
        lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} in:\n{text}"))
    };
    let base = find("lineage: listening on ")
        .trim_start_matches("lineage: listening on ")
        .to_owned();
    let run = find("(run ")
        .split("(run ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("run id")
        .to_owned();
    let incident = format!("incident-{run}");
    let triage = format!("{incident}/triage");
    let exec = format!("{incident}/triage/exec");

    // The scope refusal, printed.
    assert!(
        find("refused out_of_scope").contains("(field kind)"),
        "{text}"
    );
    // The halt, and the three workloads it stopped, each refused with its index.
    let halted = find(&format!("halted {incident} at index"));
    let halt = number_after(halted, "at index");
    for w in [&exec, &triage, &incident] {
        let line = find(&format!("{w}'s next event"));
        assert!(line.contains("refused halted"), "{line}");
        assert_eq!(number_after(line, "halt_index"), halt, "{line}");
    }
    let resumed = find(&format!("resumed {incident}"));
    let resume = number_after(resumed, "at index");
    let own = number_after(resumed, "own halt at index");
    assert!(halt < own && own < resume, "{resumed}");

    // The log holds what the demo printed.
    let entry = get(&format!("{base}/v1/entries/{halt}"));
    assert_eq!(entry["entry_type"], "governance");
    assert_eq!(entry["payload"]["action"], "halt");
    assert_eq!(entry["payload"]["target"]["workload"], incident.as_str());
    assert!(
        entry["payload"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("runaway"))
    );
    let entry = get(&format!("{base}/v1/entries/{resume}"));
    assert_eq!(entry["payload"]["action"], "resume");
    let entry = get(&format!("{base}/v1/entries/{own}"));
    assert_eq!(entry["payload"]["target"]["workload"], exec.as_str());
    // The resumed workloads went on and ended; the one halted in its own
    // right did not.
    for w in [&incident, &triage, &format!("build-{run}-001")] {
        assert_eq!(
            kinds(&base, w).last().map(String::as_str),
            Some("workload.end"),
            "{w}"
        );
    }
    assert_eq!(kinds(&base, &exec), ["workload.start", "tool.invoke"]);
    // Every refusal the demo printed was counted by the ledger.
    let metrics = reqwest::blocking::get(format!("{base}/metrics"))
        .expect("metrics")
        .text()
        .expect("text");
    let count = |code: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("lineage_rejections_total") && l.contains(&format!("code=\"{code}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("halted"), 4, "{metrics}");
    assert_eq!(count("key_expired"), 1);
    assert_eq!(count("out_of_scope"), 1);
    // The sandbox run states its domain and names a parent in another one:
    // a boundary crossing for the explorer to highlight.
    let page = get(&format!("{base}/v1/workloads/{}/events", path(&exec)));
    let start = &page["events"][0];
    let event = get(&format!(
        "{base}/v1/events/{}",
        start["event_id"].as_str().expect("id")
    ));
    assert_eq!(event["payload"]["domain"], "sandbox.exec");
    let parent = event["payload"]["parents"][0].as_str().expect("a parent");
    let parent = get(&format!("{base}/v1/events/{parent}"));
    assert_eq!(parent["payload"]["domain"], "corp.internal");
    assert_eq!(parent["payload"]["workload"], triage.as_str());

    // SIGTERM: the demo stops cleanly.
    let pid = demo.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = demo.0.wait().expect("wait");
    assert!(status.success(), "the demo exited with {status}");
}
