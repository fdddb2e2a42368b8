//! The Lineage HTTP API.
//!
//! **What it is.** The imperative shell around `lineage-ledger`: the ingest
//! endpoint (parallel signature checks, then the single sequencer with group
//! commit, see [`service`]), the read API (entries, events, proofs,
//! checkpoints, workloads, runtimes), the C2SP tlog-tiles read endpoints
//! (`/checkpoint`, `/tile/...`), health and Prometheus metrics.
//!
//! **What it is not.** It holds no rule and no Merkle math: every check and
//! every hash comes from the ledger crate's pure core. It does not parse
//! command lines or read config files (the `lineage` binary does).
//!
//! Errors leave as `application/problem+json` (RFC 9457) with a stable
//! `code`; see [`problem`].

pub mod clock;
mod ingest;
pub mod metrics;
pub mod problem;
mod read;
pub mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use clock::Clock;
pub use service::{LogConfig, LogService, StartError};

/// Request-level limits.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body, in bytes (a full array of envelopes must fit).
    pub max_body_bytes: usize,
    /// Most envelopes in one array.
    pub max_batch: usize,
    /// Time allowed for a whole request, body included (defeats slow bodies).
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 64 * 1024 * 1024,
            max_batch: 1000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler gets.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The log.
    pub log: Arc<LogService>,
    /// Limits.
    pub limits: HttpLimits,
}

/// The API router: ingest, reads, tiles, health and metrics.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    Router::new()
        .route("/v1/entries", post(ingest::post_entries))
        .route("/v1/entries/{index}", get(read::get_entry))
        .route("/v1/events/{id}", get(read::get_event))
        .route("/v1/log", get(read::get_log))
        .route("/v1/proofs/inclusion", get(read::get_inclusion))
        .route("/v1/proofs/consistency", get(read::get_consistency))
        .route("/v1/checkpoints/{size}", get(read::get_checkpoint_at))
        .route(
            "/v1/workloads/{workload}/events",
            get(read::get_workload_events),
        )
        .route("/v1/runtimes/{runtime}", get(read::get_runtime))
        .route("/checkpoint", get(read::get_checkpoint))
        .route("/tile/{*path}", get(read::get_tile))
        .route("/healthz", get(read::healthz))
        .route("/readyz", get(read::readyz))
        .route("/metrics", get(read::metrics))
        .fallback(read::not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// in-flight requests.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
