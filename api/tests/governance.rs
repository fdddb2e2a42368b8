//! The governance reads sit behind the read token like every other read.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use lineage_api::AppState;
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

#[tokio::test]
async fn governance_reads_need_the_read_token_when_one_is_set() {
    let log = Arc::new(
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
    );
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
