//! Errors at the HTTP boundary: every failure becomes an
//! `application/problem+json` body (RFC 9457) with a stable `code`.
//!
//! The mapping from library errors to status and code is one exhaustive
//! `match` per error type (no catch-all arm), so a new variant cannot reach
//! a client without a deliberate code. `Debug` text never reaches a response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lineage_ledger::rules::{Rejection, RejectionClass};
use lineage_schemas::Problem;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The envelope was refused by a rule.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The sequencer queue is full.
    #[error("the ledger is overloaded; retry shortly")]
    Overloaded,
    /// A reader cap (open governance streams, waiting long-polls) is
    /// reached: answered like [`ApiError::Overloaded`], but the ledger is
    /// not degraded by it (those caps keep readers from shedding ingest).
    #[error("the ledger is overloaded; retry shortly")]
    ReadersFull,
    /// The store failed; nothing from this request was acknowledged.
    #[error("the ledger's storage failed; nothing was appended; retry shortly")]
    Unavailable,
    /// A resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A malformed request (path, query or body framing).
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// The parameter at fault, if one is.
        field: Option<String>,
    },
    /// More envelopes in one array than allowed.
    #[error("more than {limit} envelopes in one request")]
    TooManyEnvelopes {
        /// The limit (the array is not read past its item `limit + 1`).
        limit: usize,
    },
    /// The runtime sent more than its configured rate.
    #[error("runtime {runtime} is over its ingest rate limit; retry shortly")]
    RateLimited {
        /// The runtime.
        runtime: String,
    },
    /// A read without the configured bearer token.
    #[error("this ledger requires a bearer token for reads")]
    Unauthorized,
    /// A bug or an unexpected state; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A 400 with a field.
    pub fn bad_request(detail: impl Into<String>, field: &str) -> ApiError {
        ApiError::BadRequest {
            detail: detail.into(),
            field: Some(field.to_owned()),
        }
    }

    /// The status, stable code and title.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Rejected(r) => classify_rejection(r),
            ApiError::Overloaded | ApiError::ReadersFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Ledger overloaded",
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "Storage unavailable",
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
            ),
            ApiError::TooManyEnvelopes { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Too many envelopes",
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Rate limited",
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem body.
    pub fn to_problem(&self) -> Problem {
        let (status, code, title) = self.classify();
        let field = match self {
            ApiError::Rejected(r) => rejection_field(r),
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        Problem {
            r#type: lineage_schemas::problem_type(code),
            title: title.to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail: self.to_string(),
            field,
            halt_index: match self {
                ApiError::Rejected(Rejection::Halted { halt_index, .. }) => Some(*halt_index),
                _ => None,
            },
        }
    }
}

/// Status, code and title of each rule failure: the code and its class come
/// from the rules ([`Rejection::code`], [`Rejection::class`]); this maps the
/// class to an HTTP status and names the title.
pub fn classify_rejection(r: &Rejection) -> (StatusCode, &'static str, &'static str) {
    let status = match r.class() {
        RejectionClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectionClass::Malformed => StatusCode::BAD_REQUEST,
        RejectionClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        RejectionClass::Forbidden => StatusCode::FORBIDDEN,
        RejectionClass::Conflict => StatusCode::CONFLICT,
        RejectionClass::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let title = match r {
        Rejection::PayloadTooLarge { .. } => "Payload too large",
        Rejection::InvalidEnvelope(_) => "Invalid envelope",
        Rejection::UnknownKey { .. } => "Unknown key",
        Rejection::BadSignature { .. } => "Bad signature",
        Rejection::RevokedKey { .. } => "Revoked key",
        Rejection::KeyNotYetValid { .. } => "Key not yet valid",
        Rejection::KeyExpired { .. } => "Key expired",
        Rejection::OutOfScope { .. } => "Out of scope",
        Rejection::WorkloadClosed { .. } => "Workload closed",
        Rejection::Halted { .. } => "Halted",
        Rejection::GovernanceConflict { .. } => "Governance conflict",
        Rejection::InvalidPayload(_) => "Invalid payload",
        Rejection::RuntimeMismatch { .. } => "Runtime mismatch",
        Rejection::ClockSkew { .. } => "Timestamp out of range",
        Rejection::KeyConflict { .. } => "Key conflict",
        Rejection::DuplicateEvent { .. } => "Duplicate event",
        Rejection::Equivocation { .. } => "Equivocation",
        Rejection::SequenceGap { .. } => "Sequence gap",
        Rejection::PrevMismatch { .. } => "Prev mismatch",
        Rejection::UnknownParent { .. } => "Unknown parent",
    };
    (status, r.code(), title)
}

fn rejection_field(r: &Rejection) -> Option<String> {
    match r {
        Rejection::InvalidEnvelope(e) => Some(e.field().to_owned()),
        Rejection::InvalidPayload(e) => Some(e.field().to_owned()),
        Rejection::RuntimeMismatch { .. } => Some("runtime".into()),
        Rejection::ClockSkew { .. } => Some("at".into()),
        Rejection::SequenceGap { .. } | Rejection::Equivocation { .. } => Some("seq".into()),
        Rejection::PrevMismatch { .. } => Some("prev".into()),
        Rejection::UnknownParent { position, .. } => Some(format!("parents[{position}]")),
        Rejection::OutOfScope { field, .. } => Some((*field).to_owned()),
        Rejection::WorkloadClosed { .. } | Rejection::Halted { .. } => Some("workload".into()),
        Rejection::GovernanceConflict { .. } => Some("target".into()),
        Rejection::UnknownKey { .. }
        | Rejection::BadSignature { .. }
        | Rejection::RevokedKey { .. }
        | Rejection::KeyNotYetValid { .. }
        | Rejection::KeyExpired { .. } => Some("signatures[0].keyid".into()),
        Rejection::KeyConflict { .. } => Some("public_key".into()),
        Rejection::PayloadTooLarge { .. } | Rejection::DuplicateEvent { .. } => None,
    }
}

/// `application/problem+json`.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Builds the HTTP response for a problem.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut resp = (status, body).into_response();
    if problem.code == "overloaded" {
        // Seen by the layer that counts shed requests (`crate::app`).
        resp.extensions_mut().insert(Shed::Load);
    }
    let h = resp.headers_mut();
    if status == StatusCode::UNAUTHORIZED && problem.code == "unauthorized" {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Marks a response that shed a request (`503 overloaded`), for the layer
/// of [`crate::app`] that counts them into the log's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shed {
    /// The ledger shed load (queue full, in-flight cap): it is degraded.
    Load,
    /// A reader was refused at its own cap: counted, not degraded.
    ReaderCap,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = problem_response(&self.to_problem());
        if matches!(self, ApiError::ReadersFull) {
            resp.extensions_mut().insert(Shed::ReaderCap);
        }
        resp
    }
}
