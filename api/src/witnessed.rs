//! What witnessing changes at the API: the checkpoints served, receipts
//! upgraded to the latest cosigned checkpoint, and receipts in the C2SP
//! tlog-proof text form.
//!
//! - `GET /checkpoint`: with a witness policy, the latest checkpoint that met
//!   its quorum, with the cosignatures (C2SP: clients fetch the witnessed
//!   checkpoint there); `503` with `Retry-After` until the first round met
//!   it. Without a policy, the log's latest checkpoint, as before.
//! - `GET /v1/checkpoints/{size}`: the witnessed note when that size was
//!   witnessed, else the log's own.
//! - `GET /v1/events/{id}/receipt[?witnessed=true]`: the event's receipt
//!   (`lineage-bundle/v1`) against the latest checkpoint, or, with
//!   `witnessed=true`, against the latest witnessed one (its cosignatures in
//!   the checkpoint note); `202` with `Retry-After` while no witnessed
//!   checkpoint covers the entry yet. With `Accept: text/x.tlog.proof` the
//!   same receipt as a C2SP tlog-proof, whose `extra` line is the log entry
//!   (base64), so a verifier can still check the payload and its signature.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lineage_ledger::Hash;
use lineage_ledger::store::StoredCheckpoint;
use lineage_ledger::tlog_proof::TlogProof;
use lineage_log::ReadError;
use lineage_log::core::Core;

use crate::AppState;
use crate::ingest::json_response;
use crate::problem::ApiError;
use crate::read::{blocking, query};

/// The media type of a C2SP tlog-proof.
pub const TLOG_PROOF_MEDIA_TYPE: &str = "text/x.tlog.proof";

/// Seconds a client waits before asking again for what a round will cover.
const RETRY_AFTER_SECS: &str = "1";

fn note_response(note: String, cache: &'static str) -> Response {
    let mut r = note.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

fn retry_later(status: StatusCode, detail: String) -> Response {
    let mut r = (
        status,
        axum::Json(serde_json::json!({"status": status.as_u16(), "detail": detail})),
    )
        .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /checkpoint`.
pub(crate) async fn get_checkpoint(State(app): State<AppState>) -> Response {
    match app.log.witnessing() {
        None => note_response(app.log.head().note.clone(), "no-store"),
        Some(w) => match w.latest() {
            Some(cp) => note_response(cp.note.clone(), "no-store"),
            None => retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "no checkpoint has met the witness policy's quorum yet".into(),
            ),
        },
    }
}

/// `GET /v1/checkpoints/{size}`.
pub(crate) async fn get_checkpoint_at(
    State(app): State<AppState>,
    size: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(size) = size.map_err(|e| ApiError::BadRequest {
        detail: format!("bad path parameter: {}", e.body_text()),
        field: None,
    })?;
    let witnessing = app.log.witnessing().is_some();
    let (cp, witnessed) = blocking(&app, move |core| {
        if witnessing && let Some(w) = core.store.witnessed(size).map_err(ReadError::from)? {
            return Ok((w, true));
        }
        core.store
            .checkpoint(size)
            .map_err(ReadError::from)?
            .map(|c| (c, false))
            .ok_or_else(|| ApiError::NotFound(format!("no checkpoint was issued at size {size}")))
    })
    .await?;
    // With witnessing on, the log-only note at a size may later be served
    // with its cosignatures: only that final form is immutable.
    let cache = if witnessing && !witnessed {
        "no-store"
    } else {
        "public, max-age=31536000, immutable"
    };
    Ok(note_response(cp.note, cache))
}

fn wants_tlog_proof(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().map(str::trim) == Some(TLOG_PROOF_MEDIA_TYPE))
}

/// `GET /v1/events/{id}/receipt`.
pub(crate) async fn get_receipt(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest {
        detail: format!("bad path parameter: {}", e.body_text()),
        field: None,
    })?;
    let q = query(q)?;
    let witnessed = match q.get("witnessed").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "witnessed is true or false",
                "witnessed",
            ));
        }
    };
    let id: lineage_ledger::keys::EventId = id
        .parse()
        .map_err(|_| ApiError::bad_request("an event ID is 64 lowercase hex digits", "id"))?;
    let checkpoint: Arc<StoredCheckpoint> = if witnessed {
        let Some(w) = app.log.witnessing() else {
            return Err(ApiError::bad_request(
                "this ledger has no witness policy: its receipts are signed by the log key only",
                "witnessed",
            ));
        };
        match w.latest() {
            Some(cp) => cp,
            None => {
                return Ok(retry_later(
                    StatusCode::ACCEPTED,
                    "no checkpoint has met the witness policy's quorum yet".into(),
                ));
            }
        }
    } else {
        app.log.head()
    };
    let cp = checkpoint.clone();
    let found = blocking(&app, move |core: &Core| {
        let index = core
            .store
            .event_index(&id)
            .map_err(ReadError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
        if index >= cp.size {
            return Ok(None);
        }
        let entry = core
            .store
            .entry(index)
            .map_err(ReadError::from)?
            .ok_or(ApiError::Internal)?;
        let receipt = core.receipt(index, &entry, &cp, &core.proof_nodes())?;
        Ok(Some((receipt, entry)))
    })
    .await?;
    let Some((receipt, entry)) = found else {
        return Ok(retry_later(
            StatusCode::ACCEPTED,
            format!(
                "the latest witnessed checkpoint (size {}) does not cover this entry yet",
                checkpoint.size
            ),
        ));
    };
    if wants_tlog_proof(&headers) {
        // The receipt's own audit path, not a second computation of it.
        let proof = receipt
            .inclusion_proof
            .iter()
            .map(|h| Hash::from_base64(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ApiError::Internal)?;
        let p = TlogProof::new(Some(entry), receipt.index, proof, checkpoint.note.clone())
            .map_err(|_| ApiError::Internal)?;
        let mut r = p.to_bytes().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(TLOG_PROOF_MEDIA_TYPE),
        );
        return Ok(r);
    }
    Ok(json_response(StatusCode::OK, &receipt))
}
