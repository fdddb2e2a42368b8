//! The runtime client (`lineage-client`) against a real ledger over
//! sockets: receipts verified and checkpoints tracked in the state file,
//! refusals that deny the handle, head recovery after a restart, live denial
//! from the governance stream, retries with the identical envelope, a
//! forked ledger caught, and batching.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use lineage_client::{Attrs, BatchConfig, Client, Config, Consistency, Error, Runtime, Workload};
use lineage_schemas::HaltTarget;
use serde_json::{Value, json};

fn attrs(v: Value) -> Attrs {
    v.as_object().cloned().expect("an object")
}

fn config(l: &TestLedger) -> Config {
    Config {
        log_key: Some(l.log.vkey.clone()),
        retry_deadline: Duration::from_secs(5),
        ..Config::new(l.url.clone())
    }
}

/// A client, and a runtime `name` whose key the authority granted.
async fn runtime(l: &TestLedger, config: Config, name: &str) -> (Client, Runtime) {
    let client = Client::new(config).expect("client");
    l.grant(name, &key(name)).await;
    let rt = client.runtime(name, key(name)).expect("runtime");
    (client, rt)
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_records_verified_receipts_and_the_state_file_tracks_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    let state = dir.path().join("client-state.json");
    // Trust on first use: no log key configured, pinned in the state file.
    let cfg = Config {
        log_key: None,
        state_file: Some(state.clone()),
        ..config(&l)
    };
    let (_client, rt) = runtime(&l, cfg, "agent/a").await;
    let mut wl = rt
        .start(
            "task-1",
            "workload.start",
            attrs(json!({"goal": "x"})),
            &[],
            Some("corp"),
        )
        .await
        .expect("start");
    let start = wl.last_receipt().expect("a receipt").clone();
    let r1 = wl
        .record("tool.invoke", attrs(json!({"tool": "search"})))
        .await
        .expect("record");
    assert_eq!(wl.head().expect("head").seq, 1);
    assert_eq!(r1.index, start.index + 1);
    // An auditor checks the receipt the same way, offline.
    let bundle: Value = serde_json::from_str(&r1.to_json()).expect("json");
    check_receipt(&bundle, &l.verifier(), &key("agent/a"));
    let (_, entry) = l.get_json(&format!("/v1/events/{}", r1.event_id)).await;
    assert_eq!(entry["payload"]["prev"], start.event_id.as_str());
    assert_eq!(entry["payload"]["domain"], "corp");

    // The child names the parent's head; the chain is the ledger's.
    let mut child = wl.spawn("task-1/sub", Attrs::new()).await.expect("spawn");
    let (_, c0) = l
        .get_json(&format!(
            "/v1/events/{}",
            child.head().expect("head").event_id
        ))
        .await;
    assert_eq!(c0["payload"]["parents"], json!([r1.event_id]));
    child.end(Attrs::new()).await.expect("end");
    let err = child
        .record("tool.invoke", Attrs::new())
        .await
        .expect_err("closed");
    // The ledger refused it, and the handle says so from now on.
    assert_eq!(err.code(), "workload_closed");
    let size = l.size().await;
    let again = child
        .record("tool.invoke", Attrs::new())
        .await
        .expect_err("denied");
    let d = again.denial().expect("a denial");
    assert!(d.local, "decided without asking the ledger");
    assert_eq!(l.size().await, size);

    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(saved["format"], "lineage-client-state/v1");
    assert_eq!(saved["log_key"], l.log.vkey.as_str());
    let note = saved["checkpoint"].as_str().expect("checkpoint");
    let size = l.size().await;
    assert_eq!(
        note.lines().nth(1),
        Some(size.to_string().as_str()),
        "{note}"
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runtime_recovers_its_head_and_a_halt_denies_the_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    let (client, rt) = runtime(&l, config(&l), "agent/b").await;
    let mut wl = rt
        .start("jobs/7@x:y", "workload.start", Attrs::new(), &[], None)
        .await
        .expect("start");
    for i in 0..3 {
        wl.record("step", attrs(json!({"i": i})))
            .await
            .expect("record");
    }
    let head = wl.head().expect("head");
    drop((wl, rt, client));

    // A new process: a new client, the same key.
    let client = Client::new(config(&l)).expect("client");
    let rt = client.runtime("agent/b", key("agent/b")).expect("runtime");
    let mut wl = rt.open("jobs/7@x:y").await.expect("open");
    assert_eq!(wl.head(), Some(head.clone()));
    let r = wl
        .record("step", attrs(json!({"i": 3})))
        .await
        .expect("continues");
    let (_, e) = l.get_json(&format!("/v1/events/{}", r.event_id)).await;
    assert_eq!(e["payload"]["seq"], 4);
    assert_eq!(e["payload"]["prev"], head.event_id.as_str());
    // Another runtime may not open it.
    l.grant("agent/c", &key("agent/c")).await;
    let other = client.runtime("agent/c", key("agent/c")).expect("runtime");
    assert_eq!(
        other.open("jobs/7@x:y").await.expect_err("not its").code(),
        "invalid"
    );
    // A workload the ledger does not know starts at seq 0.
    let mut fresh = rt.open("job-8").await.expect("open");
    assert_eq!(fresh.head(), None);
    fresh
        .record("workload.start", Attrs::new())
        .await
        .expect("first");

    // A halt: the ledger refuses the next event with the halt's index.
    let authority = client.authority(key("authority"));
    let halt = authority
        .halt(HaltTarget::Workload("jobs/7@x:y".into()), Some("test"))
        .await
        .expect("halt");
    let err = wl.record("step", Attrs::new()).await.expect_err("halted");
    let d = err.denial().expect("denial");
    assert_eq!(
        (d.code.as_str(), d.halt_index, d.local),
        ("halted", Some(halt.index), false)
    );
    // A reopened handle of a halted workload is denied before it sends.
    let reopened = rt.open("jobs/7@x:y").await.expect("open");
    assert_eq!(
        reopened.denied().map(|d| d.halt_index),
        Some(Some(halt.index))
    );
    // After the resume a new handle may go on; the old one stays denied.
    authority
        .resume(HaltTarget::Workload("jobs/7@x:y".into()))
        .await
        .expect("resume");
    assert!(wl.record("step", Attrs::new()).await.is_err());
    let mut wl = rt.open("jobs/7@x:y").await.expect("open");
    wl.record("step", Attrs::new()).await.expect("resumed");
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_governance_stream_denies_handles_before_their_next_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    let (client, rt) = runtime(&l, config(&l), "agent/root").await;
    l.grant("agent/helper", &key("agent/helper")).await;
    let helper = client
        .runtime("agent/helper", key("agent/helper"))
        .expect("rt");
    client.watch_governance().await.expect("watch");
    until("the stream is connected", || client.watching()).await;

    let mut root = rt
        .start("root", "workload.start", Attrs::new(), &[], None)
        .await
        .expect("start");
    let mut child = root.spawn("root/child", Attrs::new()).await.expect("spawn");
    let child_head = child.head().expect("head").event_id;
    // Derives from the child through another runtime.
    let grandchild = helper
        .start(
            "helper-job",
            "workload.start",
            Attrs::new(),
            std::slice::from_ref(&child_head),
            None,
        )
        .await
        .expect("start");
    let bystander = helper
        .start("unrelated", "workload.start", Attrs::new(), &[], None)
        .await
        .expect("start");
    // A workload whose lineage this client does not know: started by
    // another client, from the child's event; the ledger knows.
    let other_client = Client::new(config(&l)).expect("client");
    let stranger_rt = other_client
        .runtime("agent/helper", key("agent/helper"))
        .expect("rt");
    let stranger_handle = stranger_rt
        .start(
            "stranger",
            "workload.start",
            Attrs::new(),
            &[child_head],
            None,
        )
        .await
        .expect("start");
    drop(stranger_handle);
    let stranger = helper.open("stranger").await.expect("open");

    let halt = client
        .authority(key("authority"))
        .halt(HaltTarget::Workload("root".into()), None)
        .await
        .expect("halt");
    for (name, h) in [
        ("root", &root),
        ("child", &child),
        ("grandchild", &grandchild),
        ("stranger", &stranger),
    ] {
        until(&format!("{name} denied"), || h.denied().is_some()).await;
        assert_eq!(
            h.denied().and_then(|d| d.halt_index),
            Some(halt.index),
            "{name}"
        );
    }
    assert!(bystander.denied().is_none());
    let size = l.size().await;
    let err = child
        .record("tool.invoke", Attrs::new())
        .await
        .expect_err("denied");
    assert!(err.denial().expect("denial").local);
    assert_eq!(l.size().await, size, "refused without a round trip");
    assert!(root.record("x", Attrs::new()).await.is_err());

    // A revocation of the helper's key denies its handles at once.
    client
        .authority(key("authority"))
        .revoke("agent/helper", &key("agent/helper").verifying_key())
        .await
        .expect("revoke");
    until("the helper's handles denied", || {
        bystander.denied().is_some()
    })
    .await;
    assert_eq!(bystander.denied().expect("denied").code, "revoked_key");
    l.stop().await;
}

/// A proxy in front of the ledger that answers 503 to the first `fail`
/// submissions (after forwarding them when `commit_first`: the answer is
/// lost, not the event), then forwards.
async fn flaky_proxy(target: String, fail: u32, commit_first: bool) -> (String, Arc<AtomicU32>) {
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    let http = reqwest::Client::new();
    let forward = move |method: axum::http::Method,
                        uri: axum::http::Uri,
                        body: axum::body::Bytes| {
        let (target, http, counter) = (target.clone(), http.clone(), counter.clone());
        async move {
            let is_post = method == axum::http::Method::POST;
            let url = format!("{target}{uri}");
            if is_post && counter.fetch_add(1, Ordering::SeqCst) < fail {
                if commit_first {
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("forward");
                    assert!(r.status().is_success());
                }
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "busy".to_owned().into_bytes(),
                );
            }
            let resp = if is_post {
                http.post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
            } else {
                http.get(url).send().await
            }
            .expect("forward");
            let status = axum::http::StatusCode::from_u16(resp.status().as_u16()).expect("status");
            (status, resp.bytes().await.expect("body").to_vec())
        }
    };
    let app = axum::Router::new().fallback(forward);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_the_identical_envelope_then_fail_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    l.grant("agent/r", &key("agent/r")).await;
    let (proxy, posts) = flaky_proxy(l.url.clone(), 2, false).await;
    let client = Client::new(Config {
        server: proxy,
        ..config(&l)
    })
    .expect("client");
    let rt = client.runtime("agent/r", key("agent/r")).expect("runtime");
    let before = l.size().await;
    let wl = rt
        .start("retried", "workload.start", Attrs::new(), &[], None)
        .await
        .expect("start after two 503s");
    assert_eq!(posts.load(Ordering::SeqCst), 3);
    assert_eq!(l.size().await, before + 1, "one entry, not three");

    // The same envelope again: the ledger answers the original receipt.
    let env = lineage_ledger::dsse::SignedEnvelope::sign(
        lineage_ledger::dsse::PayloadType::Event,
        serde_json::to_vec(&event_payload(
            "agent/r",
            "twice",
            0,
            None,
            &[],
            "workload.start",
        ))
        .expect("json"),
        &key("agent/r"),
    );
    let first = client.submit(&env).await.expect("first");
    let second = client.submit(&env).await.expect("second");
    assert_eq!(first.index, second.index);
    drop(wl);

    // The ledger gone: the call fails closed within the deadline.
    l.stop().await;
    let cfg = Config {
        retry_deadline: Duration::from_millis(600),
        request_timeout: Duration::from_millis(200),
        ..Config::new(client_url_of_closed_port().await)
    };
    let down = Client::new(Config {
        log_key: Some(key_vkey()),
        ..cfg
    })
    .expect("client");
    let rt = down.runtime("agent/r", key("agent/r")).expect("runtime");
    let started = std::time::Instant::now();
    let err = rt
        .start("never", "workload.start", Attrs::new(), &[], None)
        .await
        .expect_err("unavailable");
    let Error::Unavailable { attempts, .. } = err else {
        panic!("{err:?}")
    };
    assert!(attempts >= 2, "{attempts} attempts");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A URL nothing listens on.
async fn client_url_of_closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}

fn key_vkey() -> String {
    lineage_ledger::note::NoteSigner::new(ORIGIN, key("log"))
        .expect("signer")
        .verifier()
        .vkey()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_forks_its_history_is_caught_and_the_evidence_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    // Two ledgers with the same log key and different histories: what a
    // dishonest operator shows two audiences.
    let a = TestLedger::start(&dir.path().join("a")).await;
    let b = TestLedger::start(&dir.path().join("b")).await;
    for l in [&a, &b] {
        l.grant("agent/f", &key("agent/f")).await;
    }
    b.grant("agent/extra", &key("agent/extra")).await;
    let cfg = |l: &TestLedger| Config {
        state_file: Some(state.clone()),
        ..config(l)
    };
    let client = Client::new(cfg(&a)).expect("client");
    let rt = client.runtime("agent/f", key("agent/f")).expect("rt");
    rt.start("w", "workload.start", Attrs::new(), &[], None)
        .await
        .expect("on a");
    drop((rt, client));

    let client = Client::new(cfg(&b)).expect("client");
    let rt = client.runtime("agent/f", key("agent/f")).expect("rt");
    let err = rt
        .start("w2", "workload.start", Attrs::new(), &[], None)
        .await
        .expect_err("a fork");
    assert_eq!(err.code(), "untrusted", "{err}");
    // Poisoned: nothing more is accepted from this ledger.
    assert_eq!(
        rt.start("w3", "workload.start", Attrs::new(), &[], None)
            .await
            .expect_err("poisoned")
            .code(),
        "untrusted"
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(saved["fork_evidence"].as_array().map(Vec::len), Some(2));
    // A restart does not forget it: the state file is refused until moved away.
    let again = Client::new(cfg(&a)).expect_err("the fork is remembered");
    assert_eq!(again.code(), "state", "{again}");

    // A client that trusts another log key refuses the first receipt.
    let wrong = Client::new(Config {
        log_key: Some(
            lineage_ledger::note::NoteSigner::new(ORIGIN, key("not the log"))
                .expect("signer")
                .verifier()
                .vkey(),
        ),
        ..config(&a)
    })
    .expect("client");
    let rt = wrong.runtime("agent/f", key("agent/f")).expect("rt");
    assert_eq!(
        rt.start("w4", "workload.start", Attrs::new(), &[], None)
            .await
            .expect_err("wrong key")
            .code(),
        "untrusted"
    );
    // And a state file pinned to one log key is not used with another.
    let other = Config {
        log_key: Some(wrong_vkey()),
        state_file: Some(state.clone()),
        ..config(&a)
    };
    assert_eq!(Client::new(other).expect_err("pinned").code(), "state");
    a.stop().await;
    b.stop().await;
}

fn wrong_vkey() -> String {
    lineage_ledger::note::NoteSigner::new(ORIGIN, key("not the log"))
        .expect("signer")
        .verifier()
        .vkey()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_events_of_many_handles_arrive_with_verified_receipts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    let (client, rt) = runtime(
        &l,
        Config {
            consistency: Consistency::Background,
            ..config(&l)
        },
        "agent/batch",
    )
    .await;
    let batcher = client.batcher(BatchConfig::default());
    let mut handles: Vec<Workload> = Vec::new();
    for w in 0..3 {
        handles.push(
            rt.start(&format!("b-{w}"), "workload.start", Attrs::new(), &[], None)
                .await
                .expect("start"),
        );
    }
    let before = l.size().await;
    let mut pending = Vec::new();
    for i in 0..200 {
        for wl in &mut handles {
            pending.push(
                wl.record_batched(&batcher, "tool.invoke", attrs(json!({"i": i})))
                    .expect("queued"),
            );
        }
    }
    batcher.flush().await.expect("flush");
    let mut indices = std::collections::HashSet::new();
    for p in pending {
        let r = p.wait().await.expect("receipt");
        assert!(indices.insert(r.index));
    }
    assert_eq!(l.size().await, before + 600);
    // The chains are intact: each handle goes on where the batch left it.
    for wl in &mut handles {
        assert_eq!(wl.head().expect("head").seq, 200);
        wl.record("tool.result", Attrs::new())
            .await
            .expect("after the batch");
    }
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_submission_leaves_the_handle_to_learn_its_head_from_the_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    l.grant("agent/u", &key("agent/u")).await;
    let direct = Client::new(config(&l)).expect("client");
    let rt = direct.runtime("agent/u", key("agent/u")).expect("runtime");
    let mut wl = rt
        .start("uncertain", "workload.start", Attrs::new(), &[], None)
        .await
        .expect("start");
    // Through a proxy that commits the next submission but loses its
    // answer, with a deadline that leaves no time for a retry.
    let (lossy, _) = flaky_proxy(l.url.clone(), 1, true).await;
    let client = Client::new(Config {
        server: lossy,
        retry_deadline: Duration::from_millis(10),
        ..config(&l)
    })
    .expect("client");
    let rt = client.runtime("agent/u", key("agent/u")).expect("runtime");
    let mut same = rt.open("uncertain").await.expect("open");
    assert_eq!(same.head(), wl.head());
    let err = same
        .record("tool.invoke", attrs(json!({"n": 1})))
        .await
        .expect_err("no answer");
    assert_eq!(err.code(), "unavailable");
    assert!(same.denied().is_none(), "unknown is not denied");
    // It was committed; the handle does not guess: it reads the head and
    // goes on after it.
    let r = same
        .record("tool.invoke", attrs(json!({"n": 2})))
        .await
        .expect("after recovery");
    let (_, e) = l.get_json(&format!("/v1/events/{}", r.event_id)).await;
    assert_eq!(e["payload"]["seq"], 2, "{e}");
    // The first handle, unaware, is refused by the ledger and denied.
    let err = wl
        .record("tool.invoke", Attrs::new())
        .await
        .expect_err("stale");
    assert!(err.denial().is_some_and(|d| !d.local), "{err}");
    l.stop().await;
}
