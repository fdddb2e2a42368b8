//! Failures as friendly HTML pages: a status, a title and a reason written
//! for people. Store and tree errors are logged and shown as a generic
//! message; their text never reaches a page.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lineage_ledger::store::StoreError;
use lineage_log::ReadError;

use crate::view::Layout;

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Nothing there; the text says what was looked for.
    #[error("{0}")]
    NotFound(String),
    /// A malformed request; the text says which parameter and why.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed (logged); retry later.
    #[error("the ledger's storage is unavailable")]
    Unavailable,
    /// A bug or damage (logged).
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        tracing::error!(error = %e, "explorer store read failed");
        PageError::Unavailable
    }
}

impl From<ReadError> for PageError {
    fn from(e: ReadError) -> PageError {
        match e {
            ReadError::NotFound => PageError::NotFound("There is no such entry.".into()),
            ReadError::OutOfRange => PageError::BadRequest(
                "The indices or tree sizes are outside the current tree.".into(),
            ),
            ReadError::Store(e) => e.into(),
            e @ (ReadError::Tree(_) | ReadError::Entry { .. }) => {
                tracing::error!(error = %e, "explorer tree read failed");
                PageError::Internal
            }
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    reason: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, reason) = match &self {
            PageError::NotFound(s) => (StatusCode::NOT_FOUND, "Not found", s.clone()),
            PageError::BadRequest(s) => (StatusCode::BAD_REQUEST, "Bad request", s.clone()),
            PageError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Storage unavailable",
                "The ledger could not read its storage just now. Nothing was changed; \
                 try again in a moment."
                    .to_owned(),
            ),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The explorer hit an unexpected state. The details are in the server log."
                    .to_owned(),
            ),
        };
        let page = ErrorPage {
            layout: Layout::new(heading, ""),
            status: status.as_u16(),
            heading,
            reason,
        };
        let mut r = (status, page).into_response();
        r.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        r
    }
}
