//! The governance read API over a real socket: workload state (open,
//! closed, halted, derivations), the governance feed (paging, long-poll),
//! the governance event stream (live delivery, resumption, shutdown), the
//! request timeout that must not cut them, and bad parameters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ed25519_dalek::SigningKey;
use lineage_api::HttpLimits;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_log::LogConfig;
use serde_json::{Value, json};

/// How long a test waits for something that should come at once.
const PATIENCE: Duration = Duration::from_secs(20);

/// A halt or resume of `target`, signed by the authority.
fn halt(action: &str, target: Value) -> SignedEnvelope {
    let payload = json!({
        "action": action,
        "target": target,
        "reason": "incident 7",
        "at": rfc3339(now()),
    });
    SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&payload).expect("json"),
        &key("authority"),
    )
}

/// Posts `env`, asserting it was appended; its index.
async fn append(l: &TestLedger, env: &SignedEnvelope) -> u64 {
    let (s, v) = l.post(env).await;
    assert_eq!(s, 201, "{v}");
    v["index"].as_u64().expect("index")
}

/// Appends an event of `agent/a` and returns its envelope.
async fn event(
    l: &TestLedger,
    k: &SigningKey,
    workload: &str,
    seq: u64,
    prev: Option<&SignedEnvelope>,
    parents: &[&SignedEnvelope],
    kind: &str,
) -> SignedEnvelope {
    let prev = prev.map(event_id);
    let parents: Vec<String> = parents.iter().map(|p| event_id(p)).collect();
    let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
    let env = sign_event(
        &event_payload("agent/a", workload, seq, prev.as_deref(), &parents, kind),
        k,
    );
    append(l, &env).await;
    env
}

#[track_caller]
fn check_problem(status: u16, v: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_info_shows_open_closed_and_halted_workloads_and_their_derivations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let rk = key("runtime-a");
    l.grant("agent/a", &rk).await;

    // An open workload in a trust domain.
    let mut p = event_payload("agent/a", "parent", 0, None, &[], "workload.start");
    p["domain"] = json!("prod.eu-1");
    let parent0 = sign_event(&p, &rk);
    let parent0_index = append(&l, &parent0).await;
    let (s, v) = l.get_json("/v1/workloads/parent").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({
            "workload": "parent",
            "runtime": "agent/a",
            "domain": "prod.eu-1",
            "state": "open",
            "head": {"seq": 0, "event_id": event_id(&parent0), "index": parent0_index},
            "halted_by": null,
            "derives_from": [],
        })
    );

    // A closed one: its latest event is workload.end.
    let done0 = event(&l, &rk, "done", 0, None, &[], "workload.start").await;
    let done1 = event(&l, &rk, "done", 1, Some(&done0), &[], "workload.end").await;
    let (s, v) = l.get_json("/v1/workloads/done").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "closed");
    assert_eq!(v["domain"], Value::Null);
    assert_eq!(v["head"]["seq"], 1);
    assert_eq!(v["head"]["event_id"], event_id(&done1));

    // A workload deriving from two others lists both, sorted.
    event(
        &l,
        &rk,
        "child",
        0,
        None,
        &[&parent0, &done1],
        "workload.start",
    )
    .await;
    let (s, v) = l.get_json("/v1/workloads/child").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["derives_from"], json!(["done", "parent"]));
    assert_eq!(v["state"], "open");

    // Halting the parent halts the child that derives from it.
    let halt_index = append(&l, &halt("halt", json!({"workload": "parent"}))).await;
    for w in ["parent", "child"] {
        let (s, v) = l.get_json(&format!("/v1/workloads/{w}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["state"], "halted", "{w}: {v}");
        assert_eq!(v["halted_by"], halt_index, "{w}: {v}");
    }
    let (_, v) = l.get_json("/v1/workloads/done").await;
    assert_eq!(v["state"], "closed", "{v}");

    // Resumed: open again.
    append(&l, &halt("resume", json!({"workload": "parent"}))).await;
    let (_, v) = l.get_json("/v1/workloads/child").await;
    assert_eq!(v["state"], "open", "{v}");
    assert_eq!(v["halted_by"], Value::Null, "{v}");

    // A runtime halt stops its workloads, closed ones included (halted
    // takes precedence).
    let runtime_halt = append(&l, &halt("halt", json!({"runtime": "agent/a"}))).await;
    let (_, v) = l.get_json("/v1/workloads/done").await;
    assert_eq!(v["state"], "halted", "{v}");
    assert_eq!(v["halted_by"], runtime_halt, "{v}");

    // No events: not found, even when a halt names it already.
    append(&l, &halt("halt", json!({"workload": "ghost"}))).await;
    for w in ["ghost", "never"] {
        let (s, v) = l.get_json(&format!("/v1/workloads/{w}")).await;
        check_problem(s, &v, 404, "not_found", None);
    }
    // Not a workload ID.
    let (s, v) = l.get_json("/v1/workloads/no%20spaces").await;
    check_problem(s, &v, 400, "invalid_request", Some("workload"));
    // The events route beside it still answers.
    let (s, v) = l.get_json("/v1/workloads/done/events").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["events"].as_array().map(Vec::len), Some(2));
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pages_through_governance_entries_in_log_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let (s, v) = l.get_json("/v1/governance").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["entries"], json!([]));
    assert_eq!(v["next_after"], Value::Null);
    assert_eq!(v["size"], 0);

    let rk = key("runtime-a");
    let mut governance = vec![];
    for runtime in ["agent/a", "agent/b", "agent/c"] {
        let k = key(runtime);
        let v = l
            .grant(runtime, if runtime == "agent/a" { &rk } else { &k })
            .await;
        governance.push(v["index"].as_u64().expect("index"));
    }
    // Events between them are not listed.
    event(&l, &rk, "w", 0, None, &[], "workload.start").await;
    let h = halt("halt", json!({"workload": "w"}));
    governance.push(append(&l, &h).await);

    let (s, all) = l.get_json("/v1/governance").await;
    assert_eq!(s, 200, "{all}");
    let indices: Vec<u64> = all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indices, governance);
    assert_eq!(all["size"], l.size().await);
    lineage_ledger::checkpoint::verify_checkpoint(
        all["checkpoint"].as_str().expect("checkpoint").as_bytes(),
        &l.verifier(),
        ORIGIN,
    )
    .expect("the feed's checkpoint verifies");
    // The statement is the signed payload, field for field.
    let last = &all["entries"][3];
    let signed: Value = serde_json::from_slice(&h.payload).expect("payload");
    assert_eq!(last["statement"], signed);
    assert_eq!(last["event_id"], event_id(&h));
    assert_eq!(
        last["key_id"],
        lineage_ledger::keys::KeyId::from_public_key(&key("authority").verifying_key()).to_string()
    );
    assert!(
        last["integrated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{last}"
    );

    // Two by two, following next_after.
    let mut after: Option<u64> = None;
    let mut paged = vec![];
    for _ in 0..4 {
        let path = match after {
            None => "/v1/governance?limit=2".to_owned(),
            Some(a) => format!("/v1/governance?limit=2&after={a}"),
        };
        let (s, page) = l.get_json(&path).await;
        assert_eq!(s, 200, "{page}");
        let entries = page["entries"].as_array().expect("entries").clone();
        assert!(entries.len() <= 2);
        paged.extend(entries);
        after = page["next_after"].as_u64();
    }
    assert_eq!(&Value::Array(paged), &all["entries"]);
    // Past the end: nothing, and next_after stays where it was.
    let (_, v) = l
        .get_json(&format!("/v1/governance?after={}", governance[3]))
        .await;
    assert_eq!(v["entries"], json!([]));
    assert_eq!(v["next_after"], governance[3]);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_a_commit_and_answers_empty_when_its_wait_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A request timeout shorter than the waits: it must not cut them.
    let limits = HttpLimits {
        request_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let l = TestLedger::start_with_limits(dir.path(), LogConfig::default(), limits).await;
    let first = l.grant("agent/a", &key("runtime-a")).await["index"]
        .as_u64()
        .expect("index");

    // Nothing after `first`: an empty answer once the wait ends, not a 408.
    let started = Instant::now();
    let (s, v) = l
        .get_json(&format!("/v1/governance?after={first}&wait=2"))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(v["entries"], json!([]));
    assert_eq!(v["next_after"], first);

    // A waiting poll gets the halt that commits while it waits.
    let url = format!("{}/v1/governance?after={first}&wait=30", l.url);
    let client = l.client.clone();
    let poll = tokio::spawn(async move {
        let r = client.get(url).send().await.expect("get");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    });
    let index = append(&l, &halt("halt", json!({"runtime": "agent/z"}))).await;
    let (s, v) = tokio::time::timeout(PATIENCE, poll)
        .await
        .expect("the poll answers")
        .expect("task");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["entries"][0]["index"], index, "{v}");
    assert_eq!(v["entries"][0]["statement"]["action"], "halt");
    assert_eq!(v["next_after"], index);

    // Bad parameters are problems naming the parameter.
    for (query, field) in [
        ("wait=61", "wait"),
        ("wait=-1", "wait"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=x", "after"),
    ] {
        let (s, v) = l.get_json(&format!("/v1/governance?{query}")).await;
        check_problem(s, &v, 400, "invalid_request", Some(field));
    }
    l.stop().await;
}

/// An open event stream, read chunk by chunk.
struct Stream {
    response: reqwest::Response,
    text: String,
}

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    id: u64,
    event: String,
    data: Value,
}

impl Stream {
    async fn open(l: &TestLedger, last_event_id: Option<u64>) -> Stream {
        let mut req = l.client.get(format!("{}/v1/governance/stream", l.url));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.expect("get");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Stream {
            response,
            text: String::new(),
        }
    }

    /// The next event (comments skipped), within [`PATIENCE`].
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(end) = self.text.find("\n\n") {
                    let block: String = self.text.drain(..end + 2).collect();
                    let mut id = None;
                    let mut event = String::new();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id: ") {
                            id = Some(v.parse::<u64>().expect("numeric id"));
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            event = v.to_owned();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data.push_str(v);
                        }
                    }
                    if let Some(id) = id {
                        return Sse {
                            id,
                            event,
                            data: serde_json::from_str(&data).expect("data is JSON"),
                        };
                    }
                    continue;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .expect("read")
                    .expect("the stream ended");
                self.text
                    .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
            }
        })
        .await
        .expect("an event within the test's patience")
    }

    /// Whether the stream ends (the server closed it) within [`PATIENCE`].
    async fn ends(mut self) -> bool {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.response.chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return true,
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

async fn metric(l: &TestLedger, name: &str) -> f64 {
    let (_, text) = l.get("/metrics").await;
    let text = String::from_utf8(text).expect("utf-8");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_replays_then_delivers_live_and_resumes_after_the_last_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A request timeout far shorter than the stream's life: it must not cut it.
    let limits = HttpLimits {
        request_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let l = TestLedger::start_with_limits(dir.path(), LogConfig::default(), limits).await;
    let rk = key("runtime-a");
    let grant = l.grant("agent/a", &rk).await["index"]
        .as_u64()
        .expect("index");
    event(&l, &rk, "w", 0, None, &[], "workload.start").await;

    let mut stream = Stream::open(&l, None).await;
    let replayed = stream.next().await;
    assert_eq!(replayed.id, grant);
    assert_eq!(replayed.event, "governance");
    assert_eq!(replayed.data["index"], grant);
    assert_eq!(replayed.data["statement"]["action"], "grant");
    assert_eq!(metric(&l, "lineage_governance_subscribers").await, 1.0);

    // Longer than the request timeout, then a halt: it arrives live.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = halt("halt", json!({"workload": "w"}));
    let halt_index = append(&l, &h).await;
    let live = stream.next().await;
    assert_eq!(live.id, halt_index);
    assert_eq!(live.data["event_id"], event_id(&h));
    assert_eq!(live.data["statement"]["target"], json!({"workload": "w"}));
    assert!(metric(&l, "lineage_governance_delivery_seconds_count").await >= 1.0);

    // Resumed after the grant: only what came later.
    let resume = append(&l, &halt("resume", json!({"workload": "w"}))).await;
    let mut resumed = Stream::open(&l, Some(grant)).await;
    assert_eq!(resumed.next().await.id, halt_index);
    assert_eq!(resumed.next().await.id, resume);
    assert_eq!(stream.next().await.id, resume);
    assert_eq!(metric(&l, "lineage_governance_subscribers").await, 2.0);
    drop(resumed);
    // `?after=` resumes too.
    let (s, _) = l.get("/v1/governance/stream?after=x").await;
    assert_eq!(s, 400);
    let r = l
        .client
        .get(format!("{}/v1/governance/stream", l.url))
        .header("last-event-id", "nope")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    check_problem(400, &v, 400, "invalid_request", Some("Last-Event-ID"));
    let mut after = Stream::open_after(&l, halt_index).await;
    assert_eq!(after.next().await.id, resume);
    drop(after);
    drop(stream);
    l.stop().await;
}

impl Stream {
    async fn open_after(l: &TestLedger, after: u64) -> Stream {
        let response = l
            .client
            .get(format!("{}/v1/governance/stream?after={after}", l.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        Stream {
            response,
            text: String::new(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutdown_ends_open_streams_and_long_polls_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let grant = l.grant("agent/a", &key("runtime-a")).await["index"]
        .as_u64()
        .expect("index");
    let mut stream = Stream::open(&l, None).await;
    assert_eq!(stream.next().await.id, grant);
    let url = format!("{}/v1/governance?after={grant}&wait=60", l.url);
    let client = l.client.clone();
    let poll = tokio::spawn(async move {
        let r = client.get(url).send().await.expect("get");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    });
    // The poll is waiting once the gauge says so.
    let deadline = Instant::now() + PATIENCE;
    while metric(&l, "lineage_governance_waiting").await < 1.0 {
        assert!(Instant::now() < deadline, "the long-poll never waited");
        tokio::task::yield_now().await;
    }
    // The default close grace is 30 s: a shutdown that waited for the
    // stream or the poll would take that long.
    let started = Instant::now();
    l.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(stream.ends().await, "the stream was not closed");
    let (s, v) = poll.await.expect("task");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["entries"], json!([]));
}
