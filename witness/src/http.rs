//! The witness's HTTP routes (c2sp.org/tlog-witness), submission and monitoring
//! prefix both `/`:
//!
//! | route | answer |
//! |---|---|
//! | `POST /add-checkpoint` | `200` cosignature line(s), `text/plain; charset=utf-8`; `409` the witness's size, `text/x.tlog.size`; `400`, `403`, `404`, `422` a one-line reason, `text/plain`; `413` a body over [`MAX_REQUEST_BYTES`]; `500` a store failure (nothing cosigned) |
//! | `GET /{origin hash}/checkpoint` | the latest checkpoint cosigned for the origin, with the witness's cosignature (`404` when none) |
//! | `GET /status` | JSON [`crate::Status`]: name, vkey, every log with its keys and latest cosigned size and root, the evidence count |
//! | `GET /evidence` | JSON list of [`crate::Evidence`]: the refused requests that conflict with what the witness cosigned, each with the witness's own note |
//! | `GET /` | a plain-text summary: the vkey and the logs |
//!
//! The spec gives the request no content type, so none is required. Keep-alive is the
//! server's (hyper's) default; every answer has a length.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lineage_ledger::witness_protocol::{TLOG_SIZE_CONTENT_TYPE, conflict_body};

use crate::{AddCheckpointError, Evidence, Witness};

/// Largest `add-checkpoint` body accepted: 63 proof lines (45 bytes each) and a note
/// of up to 100 signature lines fit well below it.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

const TEXT: &str = "text/plain; charset=utf-8";

/// The witness's router; each request, body included, must be answered within
/// `request_timeout` (else `408`; an accepted checkpoint stays stored, and the log's
/// retry gets `409` with that size, then the cosignature).
pub fn router(witness: Arc<Witness>, request_timeout: Duration) -> Router {
    Router::new()
        .route(
            "/add-checkpoint",
            post(add_checkpoint).layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
        )
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .route("/status", get(status))
        .route("/evidence", get(evidence))
        .route("/", get(index))
        .with_state(witness)
        .layer(middleware::from_fn_with_state(request_timeout, bounded))
}

async fn bounded(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => text(
            StatusCode::REQUEST_TIMEOUT,
            TEXT,
            "request not completed in time\n".into(),
        ),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn internal(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "witness request failed");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        TEXT,
        "internal error: nothing was cosigned\n".into(),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(&e))
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let outcome = match blocking(move || w.add_checkpoint(&body)).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match outcome {
        Ok(response) => text(StatusCode::OK, TEXT, response.to_string()),
        Err(AddCheckpointError::Refused(refusal)) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            match refusal.conflict_size() {
                Some(size) => text(status, TLOG_SIZE_CONTENT_TYPE, conflict_body(size)),
                None => text(status, TEXT, format!("{refusal}\n")),
            }
        }
        Err(e) => internal(&e),
    }
}

async fn checkpoint(State(w): State<Arc<Witness>>, Path(hash): Path<String>) -> Response {
    match blocking(move || w.cosigned_by_origin_hash(&hash)).await {
        Ok(Ok(Some(note))) => text(StatusCode::OK, TEXT, note),
        Ok(Ok(None)) => text(
            StatusCode::NOT_FOUND,
            TEXT,
            "no checkpoint cosigned for this origin\n".into(),
        ),
        Ok(Err(e)) => internal(&e),
        Err(r) => r,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(body) => text(StatusCode::OK, "application/json", body + "\n"),
        Err(e) => internal(&e),
    }
}

async fn status(State(w): State<Arc<Witness>>) -> Response {
    match blocking(move || w.status()).await {
        Ok(Ok(s)) => json(&s),
        Ok(Err(e)) => internal(&e),
        Err(r) => r,
    }
}

/// An evidence record as JSON: hashes in base64, the request as text (it parsed as
/// UTF-8 when received).
#[derive(Debug, serde::Serialize)]
pub struct EvidenceView {
    /// The checkpoint's origin.
    pub origin: String,
    /// The refused checkpoint's size.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
    /// `fork` (the only kind kept).
    pub kind: crate::EvidenceKind,
    /// The status answered.
    pub status: u16,
    /// First received, POSIX seconds.
    pub first_seen: u64,
    /// Last received, POSIX seconds.
    pub last_seen: u64,
    /// Times received.
    pub count: u64,
    /// The request body.
    pub request: String,
    /// The witness's cosigned note it conflicts with.
    pub witness_note: String,
}

impl From<Evidence> for EvidenceView {
    fn from(e: Evidence) -> EvidenceView {
        EvidenceView {
            origin: e.origin,
            size: e.size,
            root: e.root.to_base64(),
            kind: e.kind,
            status: e.status,
            first_seen: e.first_seen,
            last_seen: e.last_seen,
            count: e.count,
            request: String::from_utf8_lossy(&e.request).into_owned(),
            witness_note: e.witness_note,
        }
    }
}

async fn evidence(State(w): State<Arc<Witness>>) -> Response {
    match blocking(move || w.store().evidence()).await {
        Ok(Ok(list)) => json(&list.into_iter().map(EvidenceView::from).collect::<Vec<_>>()),
        Ok(Err(e)) => internal(&e),
        Err(r) => r,
    }
}

async fn index(State(w): State<Arc<Witness>>) -> Response {
    match blocking(move || w.status()).await {
        Ok(Ok(s)) => {
            let mut body = format!(
                "Lineage witness {}\nvkey {}\n(c2sp.org/tlog-witness: POST /add-checkpoint; \
                 GET /status, /evidence, /<origin hash>/checkpoint)\n\n",
                s.name, s.vkey
            );
            for log in &s.logs {
                body.push_str(&format!(
                    "log {} size {}\n",
                    log.origin,
                    log.size.map_or_else(|| "-".into(), |n| n.to_string())
                ));
            }
            body.push_str(&format!("evidence records: {}\n", s.evidence));
            text(StatusCode::OK, TEXT, body)
        }
        Ok(Err(e)) => internal(&e),
        Err(r) => r,
    }
}
