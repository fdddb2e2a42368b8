//! `POST /v1/entries`: one envelope, or a JSON array of envelopes.
//!
//! Stateless checks (size, shape, and the signature when the key is known)
//! run here in parallel on the rayon pool; the stateful rules, the append
//! and the durable commit run in the sequencer; receipts (inclusion proofs)
//! are built here again, off the sequencer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lineage_ledger::dsse::SignedEnvelope;
use lineage_ledger::event::MAX_PAYLOAD_BYTES;
use lineage_ledger::rules::{Candidate, Rejection};
use lineage_schemas::SubmitItem;
use rayon::prelude::*;
use serde_json::value::RawValue;

use crate::AppState;
use crate::problem::{ApiError, problem_response};
use crate::service::{Core, Outcome, SubmitError};

/// Largest envelope JSON accepted: a maximal payload in base64 plus framing.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Runs CPU-bound work on the rayon pool without blocking async threads.
pub(crate) async fn on_cpu<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| ApiError::Internal)
}

/// Size, shape and (if the key is known) signature of one envelope.
fn prepare(core: &Core, bytes: &[u8]) -> Result<Candidate, Rejection> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(Rejection::PayloadTooLarge {
            size: bytes.len(),
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    let envelope = SignedEnvelope::parse(bytes)?;
    if envelope.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Rejection::PayloadTooLarge {
            size: envelope.payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let mut c = Candidate::new(envelope);
    core.precheck(&mut c);
    Ok(c)
}

fn first_byte(b: &[u8]) -> Option<u8> {
    b.iter().copied().find(|c| !c.is_ascii_whitespace())
}

enum Body {
    One(Result<Candidate, Rejection>),
    Many(Vec<Result<Candidate, Rejection>>),
}

fn prepare_body(core: &Core, body: &[u8], max_batch: usize) -> Result<Body, ApiError> {
    if first_byte(body) != Some(b'[') {
        return Ok(Body::One(prepare(core, body)));
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        detail: format!("the body is not a JSON array of envelopes: {e}"),
        field: None,
    })?;
    if items.len() > max_batch {
        return Err(ApiError::TooManyEnvelopes {
            count: items.len(),
            limit: max_batch,
        });
    }
    Ok(Body::Many(
        items
            .par_iter()
            .map(|raw| prepare(core, raw.get().as_bytes()))
            .collect(),
    ))
}

/// The handler.
pub(crate) async fn post_entries(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    ingest(app, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn ingest(app: AppState, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::Rejected(Rejection::PayloadTooLarge {
                size: app.limits.max_body_bytes + 1,
                limit: app.limits.max_body_bytes,
            })
        }
        other => ApiError::BadRequest {
            detail: format!("cannot read the request body: {}", other.body_text()),
            field: None,
        },
    })?;
    let core = app.log.core().clone();
    let max_batch = app.limits.max_batch;
    // One envelope costs one signature check (tens of microseconds): done
    // here, it saves two thread hand-offs; arrays go to the rayon pool.
    let prepared = if first_byte(&body) == Some(b'[') {
        on_cpu(move || prepare_body(&core, &body, max_batch)).await??
    } else {
        prepare_body(&core, &body, max_batch)?
    };
    let (single, results) = match prepared {
        Body::One(r) => (true, vec![r]),
        Body::Many(v) => (false, v),
    };
    // Send only the valid candidates to the sequencer; remember their slots.
    let mut slots: Vec<Result<usize, ApiError>> = Vec::with_capacity(results.len());
    let mut candidates = Vec::new();
    for r in results {
        let admitted = r.map_err(ApiError::from).and_then(|c| {
            rate_limit(&app, &c)?;
            Ok(c)
        });
        match admitted {
            Ok(c) => {
                slots.push(Ok(candidates.len()));
                candidates.push(c);
            }
            Err(e) => {
                app.log.metrics.reject(e.classify().1);
                slots.push(Err(e));
            }
        }
    }
    let reply = if candidates.is_empty() {
        None
    } else {
        Some(app.log.submit(candidates).await.map_err(|e| match e {
            SubmitError::Overloaded => ApiError::Overloaded,
            SubmitError::Stopped => ApiError::Unavailable,
        })?)
    };
    let core = app.log.core().clone();
    let items = if single {
        answer(&core, slots, reply)
    } else {
        on_cpu(move || answer(&core, slots, reply)).await?
    };
    if single {
        let (status, item) = items.into_iter().next().ok_or(ApiError::Internal)?;
        return Ok(match item {
            SubmitItem::Receipt(b) => json_response(status, &b),
            SubmitItem::Problem(p) => problem_response(&p),
        });
    }
    let items: Vec<SubmitItem> = items.into_iter().map(|(_, i)| i).collect();
    Ok(json_response(StatusCode::OK, &items))
}

/// Charges a runtime's rate budget, only for envelopes whose signature
/// already verified: nobody can spend another runtime's budget.
fn rate_limit(app: &AppState, c: &Candidate) -> Result<(), ApiError> {
    let Some(limiter) = &app.runtime_limiter else {
        return Ok(());
    };
    if c.signature_checked != Some(true) {
        return Ok(());
    }
    match app.log.key(&c.envelope.key_id) {
        Some(k) => limiter.check(k.runtime.as_str()),
        None => Ok(()),
    }
}

/// Builds the answer of every slot: receipts share one tile cache.
fn answer(
    core: &Arc<Core>,
    slots: Vec<Result<usize, ApiError>>,
    reply: Option<crate::service::JobReply>,
) -> Vec<(StatusCode, SubmitItem)> {
    let nodes = core.proof_nodes();
    let problem = |e: ApiError| {
        let p = e.to_problem();
        (
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            SubmitItem::Problem(p),
        )
    };
    slots
        .into_iter()
        .map(|slot| {
            let i = match slot {
                Err(e) => return problem(e),
                Ok(i) => i,
            };
            let Some(reply) = &reply else {
                return problem(ApiError::Internal);
            };
            let receipt = |index: u64, entry: Option<&[u8]>| {
                let stored;
                let entry = match entry {
                    Some(e) => e,
                    None => {
                        stored = core.store.entry(index).ok().flatten();
                        stored.as_deref().ok_or(ApiError::Internal)?
                    }
                };
                core.bundle(index, entry, &reply.checkpoint, &nodes)
                    .map_err(|e| {
                        tracing::error!(error = %e, index, "building a receipt");
                        ApiError::Internal
                    })
            };
            match reply.outcomes.get(i) {
                Some(Outcome::Appended { index, entry }) => {
                    match receipt(*index, Some(entry.as_slice())) {
                        Ok(b) => (StatusCode::CREATED, SubmitItem::Receipt(b)),
                        Err(e) => problem(e),
                    }
                }
                Some(Outcome::Identical { index }) => match receipt(*index, None) {
                    Ok(b) => (StatusCode::OK, SubmitItem::Receipt(b)),
                    Err(e) => problem(e),
                },
                Some(Outcome::Rejected(r)) => problem(ApiError::Rejected(r.clone())),
                Some(Outcome::Failed) => problem(ApiError::Unavailable),
                None => problem(ApiError::Internal),
            }
        })
        .collect()
}

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => ApiError::Internal.into_response(),
    }
}
