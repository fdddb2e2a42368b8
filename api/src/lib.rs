//! The Lineage HTTP API.
//!
//! **What it is.** The imperative shell around `lineage-ledger`: the ingest
//! endpoint (parallel signature checks, then the single sequencer with group
//! commit, in `lineage-log`), the read API (entries, events, proofs,
//! checkpoints, workloads, runtimes, the governance feed and its event
//! stream), the C2SP tlog-tiles read endpoints
//! (`/checkpoint`, `/tile/...`), health and Prometheus metrics, and the
//! accept loop that serves them over cleartext HTTP/1.1 or TLS with bounded
//! connection lifetimes ([`mod@serve`]).
//!
//! **What it is not.** It holds no rule and no Merkle math: every check and
//! every hash comes from the ledger crate's pure core. It does not parse
//! command lines or read config files (the `lineage` binary does).
//!
//! Errors leave as `application/problem+json` (RFC 9457) with a stable
//! `code`; see [`problem`].

pub mod access;
mod governance;
mod guards;
mod ingest;
pub mod problem;
mod read;
mod receipt_json;
pub mod serve;
mod witnessed;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use lineage_log::LogService;

/// Request-level limits.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body, in bytes (a full array of envelopes must fit).
    pub max_body_bytes: usize,
    /// Most envelopes in one array.
    pub max_batch: usize,
    /// Time allowed for a request until its response starts, request body
    /// included (defeats slow bodies); a long-poll of the governance feed
    /// gets its `wait` (at most 60 s) on top. A response body (the
    /// governance event stream) is not bounded by it.
    pub request_timeout: Duration,
    /// Requests handled at once; beyond it requests are shed with `503
    /// overloaded` instead of queueing without bound. Also caps the open
    /// governance event streams, and half of it the waiting long-polls.
    pub max_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 64 * 1024 * 1024,
            max_batch: 1000,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 1024,
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
    /// Per-runtime ingest rate limits, if configured.
    pub runtime_limiter: Option<Arc<access::RuntimeLimiter>>,
}

impl AppState {
    /// State with default limits and no rate limit.
    pub fn new(log: Arc<LogService>) -> AppState {
        AppState {
            log,
            limits: HttpLimits::default(),
            runtime_limiter: None,
        }
    }
}

/// The API routes (ingest, reads, tiles, health and metrics) **without** the
/// guards: merge other routes (the explorer's pages) into it, then pass the
/// whole router to [`guard`] once. [`app`] does both.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/entries", post(ingest::post_entries))
        .route("/v1/entries/{index}", get(read::get_entry))
        .route("/v1/events/{id}", get(read::get_event))
        .route("/v1/events/{id}/receipt", get(witnessed::get_receipt))
        .route("/v1/log", get(read::get_log))
        .route("/v1/proofs/inclusion", get(read::get_inclusion))
        .route("/v1/proofs/consistency", get(read::get_consistency))
        .route("/v1/checkpoints/{size}", get(witnessed::get_checkpoint_at))
        .route("/v1/workloads/{workload}", get(read::get_workload))
        .route(
            "/v1/workloads/{workload}/events",
            get(read::get_workload_events),
        )
        .route("/v1/runtimes/{runtime}", get(read::get_runtime))
        .route(governance::FEED_PATH, get(governance::get_feed))
        .route("/v1/governance/stream", get(governance::get_stream))
        .route("/checkpoint", get(witnessed::get_checkpoint))
        .route("/tile/{*path}", get(read::get_tile))
        .route("/healthz", get(read::healthz))
        .route("/readyz", get(read::readyz))
        .route("/metrics", get(read::metrics))
        .fallback(read::not_found)
        .with_state(state)
}

/// Puts every route of `router` behind the same guards: the body limit, one
/// in-flight cap for all routes with load shedding (`503 overloaded`), the
/// request timeout (`408`; see [`HttpLimits::request_timeout`]), a panic
/// caught as `500 internal` (tower-http), and, when `read_token` is set,
/// `Authorization: Bearer` on every read (ingest, `/healthz` and `/readyz`
/// stay open): the private `guards` module, and the panic catcher inside it.
///
/// **Apply it last, to the whole application:** a route merged in after it
/// would sit outside every guard.
pub fn guard(router: Router, limits: HttpLimits, read_token: Option<&str>) -> Router {
    guarded(router, limits, read_token, None)
}

/// [`guard`], counting shed requests into `log`'s metrics when given.
fn guarded(
    router: Router,
    limits: HttpLimits,
    read_token: Option<&str>,
    log: Option<Arc<LogService>>,
) -> Router {
    router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // A handler that panics (a bug: input never should) answers a
        // `500 internal` problem instead of dropping the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(problem::ApiError::Internal)
            },
        ))
        .layer(guards::GuardLayer::new(
            limits.max_in_flight,
            limits.request_timeout,
            read_token,
            log,
        ))
}

/// The whole HTTP application: the API routes and `pages` (the explorer's
/// router, or `Router::new()`), behind one [`guard`] that also counts every
/// `503 overloaded` answer (the queue, the in-flight cap, the stream and
/// long-poll caps) into the log's metrics; the health page and `/readyz`
/// report the ledger degraded for the first two only.
pub fn app(state: AppState, pages: Router, read_token: Option<&str>) -> Router {
    let limits = state.limits;
    let log = state.log.clone();
    guarded(routes(state).merge(pages), limits, read_token, Some(log))
}

/// The API alone behind the guards (for tests and tools that serve no pages).
pub fn router(state: AppState) -> Router {
    app(state, Router::new(), None)
}

/// Serves `router` on `listener` (cleartext HTTP/1.1) until `shutdown`
/// resolves, then lets open connections finish, with every connection bound
/// derived from the default request timeout (see [`serve_with`]).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        router,
        HttpLimits::default().request_timeout,
        shutdown,
    )
    .await
}

/// Serves `router` on `listener` (cleartext HTTP/1.1) until `shutdown`
/// resolves, then lets open connections finish. A client that does not send
/// its request headers within `timeout`, or leaves the connection without a
/// request in flight for as long, is disconnected: the `TimeoutLayer` of
/// [`router`] only starts once headers are in, so this closes the
/// slow-header and idle variants of slow-loris. For TLS and finer control,
/// see [`serve::serve_connections`].
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve::serve_connections(
        listener,
        router,
        serve::ServeOptions::new(timeout),
        shutdown,
    )
    .await
}
