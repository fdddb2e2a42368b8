//! In-process router tests over the memory store: a commit that fails is
//! never acknowledged, the log recovers without forking, an entry whose
//! write landed despite the error is found again by its resubmission, and
//! the lineage rules give the same verdicts whether the sequencer's
//! workload heads are cached or read back from the store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use lineage_api::{AppState, HttpLimits};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::{Fault, MemStore};
use lineage_log::{Clock, LogConfig, LogService};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;

/// A deterministic key per label (labels are short and distinct).
fn key(label: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(label.bytes()) {
        *s = b;
    }
    SigningKey::from_bytes(&seed)
}

fn at() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("format")
}

fn grant(runtime: &str, k: &SigningKey) -> SignedEnvelope {
    let p = json!({"action": "grant", "runtime": runtime,
        "public_key": public_key_base64(&k.verifying_key()), "at": at()});
    SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&p).expect("json"),
        &key("authority"),
    )
}

fn start(workload: &str, k: &SigningKey) -> SignedEnvelope {
    let p = json!({"runtime": "agent/a", "workload": workload, "seq": 0,
        "kind": "workload.start", "at": at()});
    SignedEnvelope::sign(PayloadType::Event, serde_json::to_vec(&p).expect("json"), k)
}

async fn post(app: &axum::Router, env: &SignedEnvelope) -> (StatusCode, Value) {
    let req = Request::post("/v1/entries")
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::to_vec(&env.to_wire()).expect("json"),
        ))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).expect("json"))
}

fn step(
    workload: &str,
    seq: u64,
    prev: Option<EventId>,
    kind: &str,
    k: &SigningKey,
) -> SignedEnvelope {
    let mut p = json!({"runtime": "agent/a", "workload": workload, "seq": seq,
        "kind": kind, "at": at()});
    if let Some(prev) = prev {
        p["prev"] = json!(prev.to_string());
    }
    SignedEnvelope::sign(PayloadType::Event, serde_json::to_vec(&p).expect("json"), k)
}

async fn setup() -> (Arc<MemStore>, Arc<LogService>, axum::Router) {
    let store = Arc::new(MemStore::new());
    let (log, app) = open(&store);
    (store, log, app)
}

/// Starts a log service over `store` (fresh in-memory state) and its router.
fn open(store: &Arc<MemStore>) -> (Arc<LogService>, axum::Router) {
    open_at(store, Clock::System)
}

/// [`open`], reading the time from `clock`.
fn open_at(store: &Arc<MemStore>, clock: Clock) -> (Arc<LogService>, axum::Router) {
    let log = Arc::new(
        LogService::start(
            store.clone(),
            NoteSigner::new("test/log", key("log-key")).expect("signer"),
            Authorities::new([key("authority").verifying_key()]),
            LogConfig {
                origin: "test/log".into(),
                ..LogConfig::default()
            },
            clock,
        )
        .expect("start"),
    );
    let app = lineage_api::router(AppState {
        log: log.clone(),
        limits: HttpLimits::default(),
        runtime_limiter: None,
    });
    (log, app)
}

#[tokio::test]
async fn a_lost_write_is_never_acknowledged_and_the_log_recovers() {
    let (store, log, app) = setup().await;
    let rk = key("runtime");
    assert_eq!(
        post(&app, &grant("agent/a", &rk)).await.0,
        StatusCode::CREATED
    );
    store.inject([Fault::LoseWrite]);
    let (s, v) = post(&app, &start("w1", &rk)).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
    );
    assert_eq!(log.head().size, 1);
    // The next batch reloads state and goes on from the durable tree.
    let (s, v) = post(&app, &start("w1", &rk)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["index"], 1);
    assert_eq!(log.head().size, 2);
    log.shutdown().await;
}

#[tokio::test]
async fn a_write_that_landed_despite_an_error_is_found_by_resubmission() {
    let (store, log, app) = setup().await;
    let rk = key("runtime");
    assert_eq!(
        post(&app, &grant("agent/a", &rk)).await.0,
        StatusCode::CREATED
    );
    store.inject([Fault::ApplyThenFail]);
    let e = start("w1", &rk);
    let (s, _) = post(&app, &e).await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "no receipt for an unconfirmed write"
    );
    // The retry is answered with the receipt of the entry that did land.
    let (s, v) = post(&app, &e).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["index"], 1);
    // And the tree did not fork: the next entry extends it.
    let next = start("w2", &rk);
    let (s, v) = post(&app, &next).await;
    assert_eq!((s, v["index"].as_u64()), (StatusCode::CREATED, Some(2)));
    let (s, v) = post(&app, &next).await;
    assert_eq!((s, v["index"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(log.head().size, 3);
    log.shutdown().await;
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_are_shed_with_503() {
    let (_store, log, _) = setup().await;
    let app = lineage_api::router(AppState {
        log: log.clone(),
        limits: HttpLimits {
            max_in_flight: 1,
            ..HttpLimits::default()
        },
        runtime_limiter: None,
    });
    // A request whose body never ends holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    let body =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let slow = Request::post("/v1/entries")
        .body(Body::from_stream(body))
        .expect("request");
    let held = tokio::spawn(app.clone().oneshot(slow));
    let health = || {
        Request::get("/healthz")
            .body(Body::empty())
            .expect("request")
    };
    let mut shed = None;
    for _ in 0..10_000 {
        tokio::task::yield_now().await;
        let r = app.clone().oneshot(health()).await.expect("response");
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(r);
            break;
        }
    }
    let shed = shed.expect("a second request is shed while the first holds the slot");
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = axum::body::to_bytes(shed.into_body(), 1 << 16)
        .await
        .expect("body");
    let problem: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(problem["code"], "overloaded");
    // Once the first request ends, the slot is free again.
    drop(tx);
    let first = held.await.expect("task").expect("response");
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let r = app.clone().oneshot(health()).await.expect("response");
    assert_eq!(r.status(), StatusCode::OK);
    log.shutdown().await;
}

#[tokio::test]
async fn workload_rules_give_the_same_verdicts_from_cache_and_from_store() {
    let (store, log, app) = setup().await;
    let rk = key("runtime");
    assert_eq!(
        post(&app, &grant("agent/a", &rk)).await.0,
        StatusCode::CREATED
    );
    // Four events of one workload, one batch each.
    let mut ids: Vec<EventId> = Vec::new();
    for seq in 0..4 {
        let env = step("wl", seq, ids.last().copied(), "step", &rk);
        let (s, v) = post(&app, &env).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(env.event_id());
    }
    let ghost = step("other", 0, None, "ghost", &rk).event_id();
    let cases = [
        // Below the head: the position is read from the store.
        (
            step("wl", 1, Some(ids[0]), "again", &rk),
            "equivocation",
            Some(ids[1]),
        ),
        // At the head.
        (
            step("wl", 3, Some(ids[2]), "again", &rk),
            "equivocation",
            Some(ids[3]),
        ),
        (
            step("wl", 5, Some(ids[3]), "skip", &rk),
            "sequence_gap",
            None,
        ),
        (
            step("wl", 4, Some(ghost), "fork", &rk),
            "prev_mismatch",
            None,
        ),
    ];
    let verdicts = |app: axum::Router| {
        let cases = cases.clone();
        async move {
            let mut out = Vec::new();
            for (env, code, existing) in cases {
                let (s, v) = post(&app, &env).await;
                assert!(s.is_client_error(), "{v}");
                assert_eq!(v["code"], code, "{v}");
                if let Some(existing) = existing {
                    assert!(v.to_string().contains(&existing.to_string()), "{v}");
                }
                out.push(v["code"].clone());
            }
            out
        }
    };
    let cached = verdicts(app.clone()).await;
    log.shutdown().await;

    // A restart starts with no cached heads: everything comes from the store.
    let (log, app) = open(&store);
    assert_eq!(log.head().size, 5);
    assert_eq!(cached, verdicts(app.clone()).await);
    // The workload goes on after all those refusals.
    let next = step("wl", 4, Some(ids[3]), "step", &rk);
    let (s, v) = post(&app, &next).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["index"], 5);
    log.shutdown().await;
}

/// The sequencer runs on a thread of its own: readers that fill the blocking
/// pool (explorer scans, store reads) cannot starve ingest. With a pool of
/// one thread held busy, an event is still appended and acknowledged.
#[test]
fn ingest_is_not_starved_by_a_full_blocking_pool() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (_store, log, app) = setup().await;
        let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || {
            let _ = held_tx.send(());
            let _ = release_rx.recv();
        });
        held_rx
            .await
            .expect("the blocking pool's only thread is held");
        let posted = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            post(&app, &grant("agent/a", &key("runtime"))),
        )
        .await;
        let _ = release_tx.send(());
        blocker.await.expect("blocker");
        let (status, v) = posted.expect("ingest waited for the blocking pool");
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(log.head().size, 1);
        log.shutdown().await;
    });
}

/// After a failed commit the ledger reloads its state without waiting for
/// more work: `/readyz` answers 503 at first (the store is recovering, then
/// for 30 s a commit failed recently) and then 200 again, with no other
/// request. (An orchestrator that takes an unready ledger out of rotation
/// sends it nothing, so a recovery that waited for a write would never
/// come.)
#[tokio::test]
async fn readiness_recovers_after_a_failed_commit_without_more_writes() {
    let clock = Clock::fixed(time::OffsetDateTime::now_utc());
    let store = Arc::new(MemStore::new());
    let (log, app) = open_at(&store, clock.clone());
    let rk = key("runtime");
    assert_eq!(
        post(&app, &grant("agent/a", &rk)).await.0,
        StatusCode::CREATED
    );
    store.inject([Fault::LoseWrite]);
    let (s, _) = post(&app, &start("w1", &rk)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let ready = |app: axum::Router| async move {
        let req = Request::get("/readyz")
            .body(Body::empty())
            .expect("request");
        app.oneshot(req).await.expect("response").status()
    };
    assert_eq!(ready(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    // The sequencer reloads by itself; the failure keeps /readyz at 503
    // for its window, measured on the ledger's clock.
    for _ in 0..500 {
        if log.is_healthy() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        log.is_healthy(),
        "the state was not reloaded without a write"
    );
    assert_eq!(ready(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    let window = lineage_log::health::COMMIT_FAILURE_WINDOW_MS;
    clock.set(clock.now() + time::Duration::milliseconds(window as i64));
    assert_eq!(
        ready(app.clone()).await,
        StatusCode::OK,
        "/readyz stayed 503 with no further write"
    );
    assert_eq!(log.head().size, 1);
    log.shutdown().await;
}

/// A handler that panics (a bug; input never should make one) answers a
/// `500 internal` problem, and the next request is served as usual.
#[tokio::test]
async fn a_panicking_handler_answers_an_internal_problem() {
    let app = lineage_api::guard(
        axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("a bug in a handler");
                    }
                    ""
                }),
            )
            .route("/fine", axum::routing::get(|| async { "fine" })),
        HttpLimits::default(),
        None,
    );
    let get = |path: &str| {
        Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request")
    };
    let resp = app.clone().oneshot(get("/boom")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .expect("body");
    let problem: Value = serde_json::from_slice(&body).expect("problem json");
    assert_eq!(problem["code"], "internal");
    assert!(
        !problem.to_string().contains("a bug in a handler"),
        "the panic message stays inside: {problem}"
    );
    let resp = app.oneshot(get("/fine")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A halt whose write landed despite the store's error is in the log once
/// the ledger has reloaded: a long-poll waiting for governance entries gets
/// it then, not at the next governance commit (which may never come).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_that_landed_despite_an_error_reaches_a_waiting_long_poll() {
    let (store, log, app) = setup().await;
    let rk = key("runtime");
    assert_eq!(
        post(&app, &grant("agent/a", &rk)).await.0,
        StatusCode::CREATED
    );
    let poll = tokio::spawn(
        app.clone().oneshot(
            Request::get("/v1/governance?after=0&wait=5")
                .body(Body::empty())
                .expect("request"),
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.metrics.governance_waiting.get() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the poll never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store.inject([Fault::ApplyThenFail]);
    let halt = SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&json!({"action": "halt",
            "target": {"runtime": "agent/a"}, "at": at()}))
        .expect("json"),
        &key("authority"),
    );
    assert_eq!(post(&app, &halt).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let resp = poll.await.expect("join").expect("response");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let feed: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(log.head().size, 2, "the halt is in the log");
    assert_eq!(
        feed["entries"][0]["index"].as_u64(),
        Some(1),
        "the waiting poll was not told of the halt: {feed}"
    );
    log.shutdown().await;
}
