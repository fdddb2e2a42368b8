//! The governance reads sit behind the read token like every other read.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use lineage_api::{AppState, HttpLimits};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::MemStore;
use lineage_log::{Clock, LogConfig, LogService};
use tower::ServiceExt as _;

const ORIGIN: &str = "test/log";

/// A deterministic key per label (labels are short and distinct).
fn key(label: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(label.bytes()) {
        *s = b;
    }
    SigningKey::from_bytes(&seed)
}

fn start_log() -> Arc<LogService> {
    Arc::new(
        LogService::start(
            Arc::new(MemStore::new()),
            NoteSigner::new(ORIGIN, key("log")).expect("signer"),
            Authorities::new([key("authority").verifying_key()]),
            LogConfig {
                origin: ORIGIN.into(),
                ..LogConfig::default()
            },
            Clock::System,
        )
        .expect("start"),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

async fn code(r: axum::response::Response) -> String {
    let body = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_waiting_long_polls_are_capped_and_give_their_slot_back() {
    let log = start_log();
    let app = lineage_api::router(AppState {
        limits: HttpLimits {
            max_in_flight: 4,
            ..HttpLimits::default()
        },
        ..AppState::new(log.clone())
    });
    // Four open streams at most (the in-flight cap); the fifth is shed.
    let mut open = vec![];
    for _ in 0..4 {
        let r = app
            .clone()
            .oneshot(get("/v1/governance/stream"))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = app
        .clone()
        .oneshot(get("/v1/governance/stream"))
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(r).await, "overloaded");
    // A closed stream gives its slot back.
    open.pop();
    let r = app
        .clone()
        .oneshot(get("/v1/governance/stream"))
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::OK);
    drop(r);
    drop(open);

    // Two waiting long-polls at most (half the cap); a third is shed, and
    // the answer without a wait is not.
    let waiting: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.clone().oneshot(get("/v1/governance?wait=60"))))
        .collect();
    let waiting_gauge = || log.metrics.governance_waiting.get();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while waiting_gauge() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the polls never waited"
        );
        tokio::task::yield_now().await;
    }
    let r = app
        .clone()
        .oneshot(get("/v1/governance?wait=60"))
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(r).await, "overloaded");
    let r = app
        .clone()
        .oneshot(get("/v1/governance"))
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::OK);
    for w in waiting {
        w.abort();
        let _ = w.await;
    }
    assert_eq!(waiting_gauge(), 0);
    log.shutdown().await;
}

#[tokio::test]
async fn governance_reads_need_the_read_token_when_one_is_set() {
    let log = start_log();
    let app = lineage_api::app(AppState::new(log.clone()), axum::Router::new(), Some("tok"));
    for path in ["/v1/governance", "/v1/governance/stream", "/v1/workloads/w"] {
        let get = |token: Option<&str>| {
            let mut r = Request::get(path);
            if let Some(t) = token {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            r.body(Body::empty()).expect("request")
        };
        let r = app.clone().oneshot(get(None)).await.expect("response");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = app
            .clone()
            .oneshot(get(Some("tok")))
            .await
            .expect("response");
        let want = if path == "/v1/workloads/w" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status(), want, "{path}");
    }
    log.shutdown().await;
}

/// Readers refused at their own caps (open streams, waiting long-polls) do
/// not make the ledger unready: those caps exist so that readers cannot
/// shed ingest, and a `/readyz` at 503 would take the whole ledger out of
/// rotation for any client that opens enough long-polls, every 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_refused_at_their_caps_leave_the_ledger_ready() {
    let log = start_log();
    let app = lineage_api::app(
        AppState {
            limits: HttpLimits {
                max_in_flight: 4,
                ..HttpLimits::default()
            },
            ..AppState::new(log.clone())
        },
        axum::Router::new(),
        None,
    );
    let ready = || async {
        app.clone()
            .oneshot(get("/readyz"))
            .await
            .expect("response")
            .status()
    };
    let waiting: Vec<_> = (0..2)
        .map(|_| tokio::spawn(app.clone().oneshot(get("/v1/governance?wait=60"))))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log.metrics.governance_waiting.get() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the polls never waited"
        );
        tokio::task::yield_now().await;
    }
    let r = app
        .clone()
        .oneshot(get("/v1/governance?wait=60"))
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(r).await, "overloaded");
    assert_eq!(
        ready().await,
        StatusCode::OK,
        "a refused long-poll made /readyz 503"
    );
    for w in waiting {
        w.abort();
        let _ = w.await;
    }
    let mut open = vec![];
    for _ in 0..4 {
        let r = app
            .clone()
            .oneshot(get("/v1/governance/stream"))
            .await
            .expect("response");
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = app
        .clone()
        .oneshot(get("/v1/governance/stream"))
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready().await,
        StatusCode::OK,
        "a refused stream made /readyz 503"
    );
    // Still counted as shed, for Prometheus and the health page.
    assert_eq!(log.metrics.overloaded.get(), 2);
    drop(open);
    log.shutdown().await;
}
