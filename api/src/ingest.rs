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
use lineage_ledger::tree::InclusionProver;
use rayon::prelude::*;
use serde_json::value::RawValue;

use crate::AppState;
use crate::problem::{ApiError, problem_response};
use crate::receipt_json::ReceiptWriter;
use lineage_log::nodes::ProofNodes;
use lineage_log::{Core, JobReply, Outcome, SubmitError};

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
    let items = split_array(body, max_batch)?;
    Ok(Body::Many(
        items
            .par_iter()
            .map(|raw| prepare(core, raw.get().as_bytes()))
            .collect(),
    ))
}

/// Splits a JSON array into its raw items, refusing it at item
/// `max_batch + 1`: the items are never all collected first, so an array of
/// millions of tiny items costs no more memory than `max_batch` of them.
fn split_array(body: &[u8], max_batch: usize) -> Result<Vec<&RawValue>, ApiError> {
    use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

    struct Items<'f> {
        max: usize,
        too_many: &'f std::cell::Cell<bool>,
    }
    impl<'de> Visitor<'de> for Items<'_> {
        type Value = Vec<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array of envelopes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                if items.len() == self.max {
                    self.too_many.set(true);
                    return Err(A::Error::custom("too many envelopes"));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    impl<'de> DeserializeSeed<'de> for Items<'_> {
        type Value = Vec<&'de RawValue>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    let too_many = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Items {
        max: max_batch,
        too_many: &too_many,
    }
    .deserialize(&mut de)
    .and_then(|items| de.end().map(|()| items));
    parsed.map_err(|e| {
        if too_many.get() {
            ApiError::TooManyEnvelopes { limit: max_batch }
        } else {
            ApiError::BadRequest {
                detail: format!("the body is not a JSON array of envelopes: {e}"),
                field: None,
            }
        }
    })
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
    if single {
        return Ok(answer(&core, slots, reply.as_ref(), true));
    }
    on_cpu(move || answer(&core, slots, reply.as_ref(), false)).await
}

/// Charges a runtime's rate budget, only for envelopes whose signature
/// already verified: nobody can spend another runtime's budget.
fn rate_limit(app: &AppState, c: &Candidate) -> Result<(), ApiError> {
    let Some(limiter) = &app.runtime_limiter else {
        return Ok(());
    };
    if !c.signature_verified() {
        return Ok(());
    }
    match app.log.key(&c.envelope().key_id) {
        Some(k) => limiter.check(k.runtime.as_str()),
        None => Ok(()),
    }
}

/// Builds the response: one receipt or problem for a single envelope, a
/// JSON array of them (in the order of the request) for an array. The
/// receipts share one node source, so each tile row their audit paths read
/// is read and hashed once, and they are written straight into the body
/// ([`ReceiptWriter`]).
fn answer(
    core: &Arc<Core>,
    slots: Vec<Result<usize, ApiError>>,
    reply: Option<&JobReply>,
    single: bool,
) -> Response {
    let nodes = core.proof_nodes();
    let mut prover = reply.map(|r| {
        (
            InclusionProver::new(r.checkpoint.size, &nodes),
            ReceiptWriter::for_checkpoint(&r.checkpoint),
        )
    });
    // Sized to the receipts, so that the body is never copied as it grows
    // (problems and receipts of identical entries: about 1.5 KiB each).
    let size_hint = match (reply, &prover) {
        (Some(r), Some((_, writer))) => {
            let depth = (u64::BITS - r.checkpoint.size.saturating_sub(1).leading_zeros()) as usize;
            r.outcomes
                .iter()
                .map(|o| match o {
                    Outcome::Appended { entry, .. } => writer.size_hint(entry.len(), depth),
                    _ => 1536,
                })
                .sum::<usize>()
                .saturating_add(slots.len().saturating_mul(512))
        }
        _ => slots.len().saturating_mul(1536),
    };
    let mut body = Vec::with_capacity(size_hint.min(1 << 24));
    if !single {
        body.push(b'[');
    }
    let mut status = StatusCode::OK;
    for (n, slot) in slots.into_iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        let written = match (slot, reply, prover.as_mut()) {
            (Err(e), _, _) => Err(e),
            (Ok(i), Some(reply), Some((prover, writer))) => {
                write_receipt(core, prover, reply, i, writer, &mut body)
            }
            (Ok(_), _, _) => Err(ApiError::Internal),
        };
        match written {
            Ok(s) => status = s,
            Err(e) => {
                let p = e.to_problem();
                if single {
                    return problem_response(&p);
                }
                if serde_json::to_writer(&mut body, &p).is_err() {
                    return ApiError::Internal.into_response();
                }
            }
        }
    }
    if !single {
        body.push(b']');
        status = StatusCode::OK;
    }
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Writes the receipt of the candidate in slot `i` of `reply` into `body`
/// and returns its status (201 appended, 200 already in the log), or the
/// problem that refused it; nothing is written on an error.
fn write_receipt(
    core: &Core,
    prover: &mut InclusionProver<'_, ProofNodes<'_>>,
    reply: &JobReply,
    i: usize,
    writer: &ReceiptWriter,
    body: &mut Vec<u8>,
) -> Result<StatusCode, ApiError> {
    let mut proof = |index: u64| {
        prover.prove(index).map_err(|e| {
            tracing::error!(error = %e, index, "building a receipt");
            ApiError::Internal
        })
    };
    match reply.outcomes.get(i) {
        Some(Outcome::Appended {
            index,
            entry,
            event_id,
        }) => {
            let path = proof(*index)?;
            writer.write(body, event_id, *index, entry, &path);
            Ok(StatusCode::CREATED)
        }
        Some(Outcome::Identical { index, event_id }) => {
            // The entry as the log holds it (with its first integration time).
            let entry = core
                .store
                .entry(*index)
                .ok()
                .flatten()
                .ok_or(ApiError::Internal)?;
            let path = proof(*index)?;
            writer.write(body, event_id, *index, &entry, &path);
            Ok(StatusCode::OK)
        }
        Some(Outcome::Rejected(r)) => Err(ApiError::Rejected(r.clone())),
        Some(Outcome::Failed) => Err(ApiError::Unavailable),
        None => Err(ApiError::Internal),
    }
}

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_body(status, body),
        Err(_) => ApiError::Internal.into_response(),
    }
}

/// A JSON answer whose body is already written.
pub(crate) fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str, max: usize) -> Result<Vec<String>, String> {
        split_array(body.as_bytes(), max)
            .map(|v| v.iter().map(|r| r.get().to_owned()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_array_splits_into_its_raw_items() {
        assert_eq!(
            split(r#" [ {"a":1}, [2], "x" ] "#, 3),
            Ok(vec![r#"{"a":1}"#.into(), "[2]".into(), r#""x""#.into()])
        );
        assert_eq!(split("[]", 3), Ok(vec![]));
    }

    #[test]
    fn an_array_is_refused_at_the_item_past_the_limit() {
        assert_eq!(split("[1,2,3]", 3).map(|v| v.len()), Ok(3));
        let over = split("[1,2,3,4]", 3).expect_err("over the limit");
        assert!(over.starts_with("more than 3 envelopes"), "{over}");
        // What follows the item past the limit is never read: not even a
        // syntax error there changes the answer.
        let over = split("[1,2,3,4,5,!!!", 3).expect_err("over the limit");
        assert!(over.starts_with("more than 3 envelopes"), "{over}");
        let million = format!("[{}1]", "1,".repeat(1_000_000));
        let over = split(&million, 1000).expect_err("over the limit");
        assert!(over.starts_with("more than 1000 envelopes"), "{over}");
    }

    #[test]
    fn malformed_arrays_are_bad_requests() {
        for body in ["[1,2", "[1,]", "[1] x", "[1}"] {
            let e = split(body, 10).expect_err(body);
            assert!(e.starts_with("the body is not a JSON array"), "{body}: {e}");
        }
    }
}
