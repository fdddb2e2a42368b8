//! The health dashboard (`/health`, `/health.json`) and `/readyz`, in
//! process, on a ledger over the memory store with a frozen clock: the
//! figures come from the log's own metrics, a failed commit and a shed
//! request make it degraded for a while and then healthy again, and the
//! ring stays bounded.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use lineage_api::{AppState, HttpLimits};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::public_key_base64;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::{Fault, MemStore};
use lineage_log::{Clock, LogConfig, LogService};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;

fn key(label: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(label.bytes()) {
        *s = b;
    }
    SigningKey::from_bytes(&seed)
}

struct Ledger {
    app: Router,
    log: Arc<LogService>,
    store: Arc<MemStore>,
    clock: Clock,
}

impl Ledger {
    fn new(limits: HttpLimits) -> Ledger {
        let store = Arc::new(MemStore::new());
        // A whole minute, so that the ring's samples per second and per
        // minute are exact.
        let t0 = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .and_then(|t| t.replace_second(0))
            .expect("t0");
        let clock = Clock::fixed(t0);
        let log = Arc::new(
            LogService::start(
                store.clone(),
                NoteSigner::new("test/health", key("log-key")).expect("signer"),
                Authorities::new([key("authority").verifying_key()]),
                LogConfig {
                    origin: "test/health".into(),
                    ..LogConfig::default()
                },
                clock.clone(),
            )
            .expect("start"),
        );
        let state = AppState {
            log: log.clone(),
            limits,
            runtime_limiter: None,
        };
        let app = lineage_api::app(state, lineage_explorer::router(log.clone()), None);
        Ledger {
            app,
            log,
            store,
            clock,
        }
    }

    fn advance(&self, secs: i64) {
        self.clock.set(self.clock.now() + Duration::seconds(secs));
    }

    async fn request(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.request(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    async fn json(&self) -> Value {
        let (s, body) = self.get("/health.json").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        serde_json::from_str(&body).expect("json")
    }

    async fn post(&self, payload_type: PayloadType, payload: &Value, k: &SigningKey) -> StatusCode {
        let env = SignedEnvelope::sign(payload_type, serde_json::to_vec(payload).expect("json"), k);
        let req = Request::post("/v1/entries")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::to_vec(&env.to_wire()).expect("json"),
            ))
            .expect("request");
        self.request(req).await.0
    }

    fn at(&self) -> String {
        self.clock.now().format(&Rfc3339).expect("format")
    }

    async fn grant(&self, runtime: &str, k: &SigningKey) -> StatusCode {
        let p = json!({"action": "grant", "runtime": runtime,
            "public_key": public_key_base64(&k.verifying_key()), "at": self.at()});
        self.post(PayloadType::Governance, &p, &key("authority"))
            .await
    }

    async fn start(&self, workload: &str, k: &SigningKey) -> StatusCode {
        let p = json!({"runtime": "agent/a", "workload": workload, "seq": 0,
            "kind": "workload.start", "at": self.at()});
        self.post(PayloadType::Event, &p, k).await
    }
}

#[tokio::test]
async fn the_page_shows_ingest_rate_and_latency_from_the_metrics() {
    let l = Ledger::new(HttpLimits::default());
    let rk = key("runtime");
    // A first sample with an empty log, then 10 entries in each of two
    // 5 s steps.
    l.log.sample_health(None);
    assert_eq!(l.grant("agent/a", &rk).await, StatusCode::CREATED);
    for i in 0..19 {
        if i == 9 {
            l.advance(5);
            l.log.sample_health(None);
        }
        assert_eq!(l.start(&format!("w{i}"), &rk).await, StatusCode::CREATED);
    }
    l.advance(5);
    // An envelope refused by a rule is counted by code.
    assert!(!l.start("w-x", &key("stranger")).await.is_success());
    let (s, page) = l.get("/health").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    for needle in [
        "Is the ledger keeping up?",
        "<span class=\"status-dot ok\"></span> Healthy",
        "id=\"health-banner\" role=\"alert\" hidden",
        // 20 entries in 10 s.
        "data-figure=\"ingest_minute\" id=\"ingest-minute\">2/s<",
        "data-figure=\"tree_size\">20<",
        "<code class=\"code-name\">unknown_key</code>",
        "data-chart=\"ingest\"><svg class=\"spark chart\"",
        "aria-label=\"Entries appended per second, last 10 minutes: latest 2/s",
        "<polyline class=\"spark-line s1\"",
        "/static/health.js?v=",
        "href=\"/health\" class=\"active\"",
    ] {
        assert!(page.contains(needle), "missing {needle:?} in\n{page}");
    }
    // The commit latency comes from the batches' own distribution.
    let doc = l.json().await;
    assert!(
        doc["values"]["commit_p99_seconds"].as_f64().is_some(),
        "{doc}"
    );
    assert_eq!(doc["values"]["tree_size"], 20);
    assert_eq!(doc["values"]["ingest_minute_per_second"], 2.0);
    assert_eq!(doc["rejections"][0]["code"], "unknown_key");
    assert_eq!(doc["rejections"][0]["minute"], 1);
    // /readyz agrees.
    assert_eq!(l.get("/readyz").await, (StatusCode::OK, "ready\n".into()));
    l.log.shutdown().await;
}

#[tokio::test]
async fn the_json_has_figures_values_charts_and_a_bounded_sample_count() {
    let l = Ledger::new(HttpLimits::default());
    // Far more seconds than the per-second ring holds.
    for _ in 0..(lineage_log::health::FINE_CAPACITY + 150) {
        l.log.sample_health(None);
        l.advance(1);
    }
    let doc = l.json().await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&doc),
        [
            "at",
            "charts",
            "degraded",
            "figures",
            "reasons",
            "rejections",
            "samples",
            "values"
        ]
    );
    assert_eq!(
        doc["samples"],
        json!([lineage_log::health::FINE_CAPACITY, 13])
    );
    for chart in [
        "ingest",
        "ingest_hour",
        "latency",
        "queue",
        "batch",
        "rejections",
        "checkpoint_age",
        "delivery",
        "rss",
        "connections",
    ] {
        let svg = doc["charts"][chart].as_str().expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>"),
            "{chart}"
        );
    }
    for figure in [
        "ingest_minute",
        "ingest_hour",
        "commit_p50",
        "commit_p99",
        "queue_depth",
        "tree_size",
        "checkpoint_age",
        "bytes_per_entry",
        "subscribers",
        "delivery_p99",
        "uptime",
        "rss",
        "connections",
    ] {
        assert!(doc["figures"][figure].is_string(), "{figure}: {doc}");
    }
    assert_eq!(doc["figures"]["uptime"], "12 min 30 s");
    assert_eq!(doc["values"]["uptime_seconds"], 750);
    assert_eq!(doc["degraded"], false);
    let (_, headers) = {
        let resp = l
            .app
            .clone()
            .oneshot(
                Request::get("/health.json")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        (resp.status(), resp.headers().clone())
    };
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("application/json")
    );
    l.log.shutdown().await;
}

#[tokio::test]
async fn a_failed_commit_is_degraded_on_the_page_and_at_readyz_then_passes() {
    let l = Ledger::new(HttpLimits::default());
    let rk = key("runtime");
    assert_eq!(l.grant("agent/a", &rk).await, StatusCode::CREATED);
    l.store.inject([Fault::LoseWrite]);
    assert_eq!(l.start("w1", &rk).await, StatusCode::SERVICE_UNAVAILABLE);
    let (s, page) = l.get("/health").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("<span class=\"status-dot bad\"></span> Degraded"),
        "{page}"
    );
    assert!(
        page.contains("id=\"health-banner\" role=\"alert\">"),
        "{page}"
    );
    assert!(
        page.contains("<li data-code=\"commit_failed\">a commit failed 0 s ago</li>"),
        "{page}"
    );
    let (s, text) = l.get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        text.contains("degraded: commit_failed: a commit failed 0 s ago"),
        "{text}"
    );
    let doc = l.json().await;
    assert_eq!(doc["degraded"], true);
    assert_eq!(doc["values"]["commit_failures"], 1);
    // The store works again: after the window, healthy without more writes
    // (the sequencer reloads by itself).
    for _ in 0..500 {
        if l.log.is_healthy() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    l.advance(29);
    assert_eq!(l.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    l.advance(1);
    assert_eq!(l.get("/readyz").await.0, StatusCode::OK);
    let (_, page) = l.get("/health").await;
    assert!(
        page.contains("id=\"health-banner\" role=\"alert\" hidden"),
        "{page}"
    );
    assert_eq!(l.json().await["degraded"], false);
    l.log.shutdown().await;
}

#[tokio::test]
async fn shed_load_is_degraded_on_the_page_and_at_readyz_then_passes() {
    // One request in flight at a time: a waiting long-poll holds it.
    let l = Ledger::new(HttpLimits {
        max_in_flight: 1,
        ..HttpLimits::default()
    });
    let poll = tokio::spawn(
        l.app.clone().oneshot(
            Request::get("/v1/governance?wait=60")
                .body(Body::empty())
                .expect("request"),
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while l.log.metrics.governance_waiting.get() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the poll never waited"
        );
        tokio::task::yield_now().await;
    }
    // Every other request is shed now, this dashboard's too.
    let (s, body) = l.get("/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"code\":\"overloaded\""), "{body}");
    poll.abort();
    let _ = poll.await;
    while l.log.metrics.governance_waiting.get() > 0 {
        tokio::task::yield_now().await;
    }
    l.advance(3);
    let (s, page) = l.get("/health").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(
        page.contains(
            "<li data-code=\"overloaded\">requests were shed with 503 overloaded 3 s ago</li>"
        ),
        "{page}"
    );
    assert!(page.contains("data-figure=\"overloaded\">1<"), "{page}");
    let (s, text) = l.get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.starts_with("degraded: overloaded:"), "{text}");
    let (_, metrics) = l.get("/metrics").await;
    assert!(metrics.contains("lineage_overloaded_total 1"), "{metrics}");
    l.advance(7);
    assert_eq!(l.get("/readyz").await.0, StatusCode::OK);
    assert_eq!(l.json().await["degraded"], false);
    l.log.shutdown().await;
}
