//! Read endpoints: the JSON API under `/v1`, the C2SP tlog-tiles endpoints,
//! health and metrics. Store reads block, so each runs on the blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lineage_ledger::TILE_WIDTH;
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_ledger::event::{Scope, WorkloadId, parse_event};
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::store::GovernanceReads as _;
use lineage_ledger::store::children_of;
use lineage_ledger::tile::{TileKind, TilePath, encode_bundle};
use lineage_schemas::{
    AuthorityKey, EntryResponse, LogInfo, RuntimeInfo, RuntimeKey, WorkloadEvent, WorkloadEvents,
    WorkloadHeadInfo, WorkloadInfo, WorkloadState,
};
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::ingest::{json_body, json_response};
use crate::problem::ApiError;
use crate::receipt_json::proof_body;
use lineage_log::{Core, ReadError};

/// Default and largest page of workload events.
const WORKLOAD_PAGE: usize = 100;
const WORKLOAD_PAGE_MAX: usize = 1000;
/// Children listed per event.
const CHILDREN_MAX: usize = 1000;

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> ApiError {
        match e {
            ReadError::NotFound => ApiError::NotFound("no such entry".into()),
            ReadError::OutOfRange => ApiError::BadRequest {
                detail: "indices or tree sizes outside the current tree".into(),
                field: None,
            },
            ReadError::Store(e) => {
                tracing::error!(error = %e, "store read failed");
                ApiError::Unavailable
            }
            e @ (ReadError::Tree(_) | ReadError::Entry { .. }) => {
                tracing::error!(error = %e, "tree read failed");
                ApiError::Internal
            }
        }
    }
}

/// Runs a blocking read against the core.
pub(crate) async fn blocking<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&Core) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let core: Arc<Core> = app.log.core().clone();
    tokio::task::spawn_blocking(move || f(&core))
        .await
        .map_err(|_| ApiError::Internal)?
}

fn path_error(e: PathRejection) -> ApiError {
    ApiError::BadRequest {
        detail: format!("bad path parameter: {}", e.body_text()),
        field: None,
    }
}

pub(crate) fn query_u64(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    param_u64(name, q.get(name).map(String::as_str))
}

/// The query parameter `name`'s `value`, if given, as an unsigned integer.
fn param_u64(name: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("{name} must be an unsigned integer"), name)
            })
        })
        .transpose()
}

/// A parameter that must be given.
fn must_be_given(name: &str, value: Option<u64>) -> Result<u64, ApiError> {
    value.ok_or_else(|| ApiError::bad_request(format!("{name} is required"), name))
}

fn required(q: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    must_be_given(name, query_u64(q, name)?)
}

/// [`required`] over a raw query string.
fn required_raw(q: Option<&str>, name: &str) -> Result<u64, ApiError> {
    let value = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == name)
        .last()
        .map(|(_, v)| v);
    must_be_given(name, param_u64(name, value.as_deref())?)
}

pub(crate) fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::BadRequest {
        detail: format!("bad query string: {}", e.body_text()),
        field: None,
    })
}

pub(crate) fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn decode_entry(index: u64, bytes: &[u8]) -> Result<LogEntry, ApiError> {
    LogEntry::decode(bytes).map_err(|e| {
        tracing::error!(error = %e, index, "stored entry does not decode");
        ApiError::Internal
    })
}

fn entry_response(core: &Core, index: u64) -> Result<EntryResponse, ApiError> {
    let receipt = core.receipt_at_head(index)?;
    let bytes = STANDARD
        .decode(&receipt.entry)
        .map_err(|_| ApiError::Internal)?;
    let entry = decode_entry(index, &bytes)?;
    let event_id = entry.event_id();
    // An event's position, for the workload's next event (its `prev` child).
    let event = match entry.entry_type {
        EntryType::Event => parse_event(&entry.payload).ok(),
        EntryType::Governance => None,
    };
    let position = event.as_ref().map(|e| (e.workload.as_str(), e.seq));
    let mut children = Vec::new();
    for child in children_of(core.store.as_ref(), &event_id, position, CHILDREN_MAX)
        .map_err(ReadError::from)?
    {
        let e = core
            .store
            .entry(child)
            .map_err(ReadError::from)?
            .ok_or(ApiError::Internal)?;
        children.push(decode_entry(child, &e)?.event_id().to_string());
    }
    Ok(EntryResponse {
        index,
        event_id: event_id.to_string(),
        entry_type: match entry.entry_type {
            EntryType::Event => "event".into(),
            EntryType::Governance => "governance".into(),
        },
        integrated_at: rfc3339_ms(entry.integrated_at_ms),
        envelope: entry.to_envelope().to_wire(),
        payload: serde_json::from_slice(&entry.payload).unwrap_or(serde_json::Value::Null),
        children,
        receipt,
    })
}

pub(crate) async fn get_entry(
    State(app): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(index) = index.map_err(path_error)?;
    let r = blocking(&app, move |core| entry_response(core, index)).await?;
    Ok(json_response(StatusCode::OK, &r))
}

pub(crate) async fn get_event(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    let id: EventId = id
        .parse()
        .map_err(|_| ApiError::bad_request("an event ID is 64 lowercase hex digits", "id"))?;
    let r = blocking(&app, move |core| {
        let index = core
            .store
            .event_index(&id)
            .map_err(ReadError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
        entry_response(core, index)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &r))
}

pub(crate) async fn get_log(State(app): State<AppState>) -> Response {
    let head = app.log.head();
    let root = lineage_ledger::checkpoint::Checkpoint::parse(
        head.note
            .split("\n\n")
            .next()
            .map(|b| format!("{b}\n"))
            .as_deref()
            .unwrap_or(""),
    )
    .map(|c| c.root.to_base64())
    .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &LogInfo {
            origin: app.log.config.origin.clone(),
            vkey: app.log.vkey.clone(),
            tree_size: head.size,
            root,
            checkpoint: head.note.clone(),
            authority_keys: app
                .log
                .authorities
                .iter()
                .map(|(id, k)| AuthorityKey {
                    key_id: id.to_string(),
                    public_key: public_key_base64(k),
                })
                .collect(),
        },
    )
}

pub(crate) async fn get_inclusion(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    // The hot read (a proof per audited entry): its two numbers are read
    // from the raw query string, without the map of owned strings that
    // `Query<HashMap<..>>` builds (the same values: the last of each name,
    // percent-decoded).
    let index = required_raw(q.as_deref(), "index")?;
    let tree_size = required_raw(q.as_deref(), "tree_size")?;
    // Computed on the async worker: one tile and one stratum read per tile
    // level (block cache or OS page cache) and a few dozen hashes. A
    // blocking-pool hop per request cost more than that in thread
    // switches (docs/PERFORMANCE.md).
    let proof = app.log.core().inclusion_proof(index, tree_size)?;
    Ok(json_body(
        StatusCode::OK,
        proof_body(("index", index), ("tree_size", tree_size), &proof),
    ))
}

pub(crate) async fn get_consistency(
    State(app): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let first = required(&q, "first")?;
    let second = required(&q, "second")?;
    let proof = blocking(&app, move |core| Ok(core.consistency_proof(first, second)?)).await?;
    Ok(json_body(
        StatusCode::OK,
        proof_body(("first", first), ("second", second), &proof),
    ))
}

pub(crate) async fn get_workload_events(
    State(app): State<AppState>,
    workload: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(workload) = workload.map_err(path_error)?;
    let q = query(q)?;
    let from_seq = query_u64(&q, "from_seq")?.unwrap_or(0);
    let limit = match query_u64(&q, "limit")? {
        None => WORKLOAD_PAGE,
        Some(l) if l >= 1 && l <= WORKLOAD_PAGE_MAX as u64 => l as usize,
        Some(_) => {
            return Err(ApiError::bad_request(
                format!("limit must be between 1 and {WORKLOAD_PAGE_MAX}"),
                "limit",
            ));
        }
    };
    let w = workload.clone();
    let events = blocking(&app, move |core| {
        let rows = core
            .store
            .workload_range(&w, from_seq, limit + 1)
            .map_err(ReadError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for (seq, index) in rows {
            let bytes = core
                .store
                .entry(index)
                .map_err(ReadError::from)?
                .ok_or(ApiError::Internal)?;
            let entry = decode_entry(index, &bytes)?;
            let event = parse_event(&entry.payload).map_err(|_| ApiError::Internal)?;
            out.push(WorkloadEvent {
                seq,
                event_id: entry.event_id().to_string(),
                index,
                kind: event.kind.clone(),
                at: event
                    .at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                runtime: event.runtime.as_str().to_owned(),
                prev: event.prev.map(|p| p.to_string()),
                parents: event.parents.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(out)
    })
    .await?;
    let mut events = events;
    let next_from_seq = if events.len() > limit {
        events.pop().map(|e| e.seq)
    } else {
        None
    };
    if events.is_empty() && from_seq == 0 {
        return Err(ApiError::NotFound(format!("no workload {workload}")));
    }
    Ok(json_response(
        StatusCode::OK,
        &WorkloadEvents {
            workload,
            events,
            next_from_seq,
        },
    ))
}

/// `GET /v1/workloads/{workload}`: who owns it, its latest event, whether a
/// halt stops it or `workload.end` closed it, and what it derives from.
pub(crate) async fn get_workload(
    State(app): State<AppState>,
    workload: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(workload) = workload.map_err(path_error)?;
    let w = WorkloadId::new(&workload)
        .map_err(|e| ApiError::bad_request(format!("not a workload ID: {e}"), "workload"))?;
    let info = blocking(&app, move |core| {
        // A workload halted (as part of a runtime, or by name) before its
        // first event has no owner or head to show: it is not found here.
        let Some((seq, index, entry)) = core.workload_head(w.as_str())? else {
            return Ok(None);
        };
        let event = parse_event(&entry.payload).map_err(|e| {
            tracing::error!(error = %e, index, "stored event does not parse");
            ApiError::Internal
        })?;
        let halted_by = core.halted_by(&w, Some(event.runtime.as_str()));
        let state = match (halted_by, event.closes_workload()) {
            (Some(_), _) => WorkloadState::Halted,
            (None, true) => WorkloadState::Closed,
            (None, false) => WorkloadState::Open,
        };
        let max = lineage_schemas::MAX_DERIVES_FROM;
        let mut derives_from = core
            .store
            .derives_from(w.as_str(), max + 1)
            .map_err(ReadError::from)?;
        let derives_from_truncated = derives_from.len() > max;
        derives_from.truncate(max);
        Ok(Some(WorkloadInfo {
            workload: w.as_str().to_owned(),
            runtime: event.runtime.as_str().to_owned(),
            domain: event.domain.as_ref().map(|d| d.as_str().to_owned()),
            state,
            head: WorkloadHeadInfo {
                seq,
                event_id: entry.event_id().to_string(),
                index,
            },
            halted_by,
            derives_from,
            derives_from_truncated,
        }))
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no workload {workload}")))?;
    Ok(json_response(StatusCode::OK, &info))
}

pub(crate) async fn get_runtime(
    State(app): State<AppState>,
    runtime: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(runtime) = runtime.map_err(path_error)?;
    let keys = app.log.runtime_keys(&runtime);
    if keys.is_empty() {
        return Err(ApiError::NotFound(format!("no runtime {runtime}")));
    }
    let event_count = app.log.runtime_count(&runtime);
    Ok(json_response(
        StatusCode::OK,
        &RuntimeInfo {
            runtime,
            keys: keys
                .iter()
                .map(|k| RuntimeKey {
                    key_id: k.key_id.to_string(),
                    public_key: public_key_base64(&k.public_key),
                    granted_index: k.granted_index,
                    revoked_index: k.revoked_index,
                    not_before: k.not_before.and_then(|t| t.format(&Rfc3339).ok()),
                    not_after: k.not_after.and_then(|t| t.format(&Rfc3339).ok()),
                    scope: k.scope.as_ref().map(Scope::to_wire),
                })
                .collect(),
            event_count,
        },
    ))
}

/// `GET /tile/...`: hash tiles and entry bundles, per C2SP tlog-tiles.
pub(crate) async fn get_tile(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(rest) = path.map_err(path_error)?;
    let full = format!("tile/{rest}");
    let tile = TilePath::parse(&full)
        .map_err(|e| ApiError::bad_request(format!("not a tile path: {e}"), "path"))?;
    let size = app.log.head().size;
    let width = u64::from(tile.width);
    let body = blocking(&app, move |core| {
        let not_found = || ApiError::NotFound(format!("{full} is beyond the tree"));
        match tile.kind {
            TileKind::Entries => {
                let start = tile.index.checked_mul(TILE_WIDTH).ok_or_else(not_found)?;
                let end = start.checked_add(width).ok_or_else(not_found)?;
                if end > size {
                    return Err(not_found());
                }
                let entries = core.store.entries(start, end).map_err(ReadError::from)?;
                if entries.len() as u64 != width {
                    return Err(ApiError::Internal);
                }
                encode_bundle(entries.iter().map(Vec::as_slice)).map_err(|_| ApiError::Internal)
            }
            TileKind::Hash { level } => {
                // Stored rows only ever grow, and only hold hashes of complete
                // subtrees within the current tree: a prefix is the tile of an
                // older tree size.
                let stored = core
                    .store
                    .tile(level, tile.index)
                    .map_err(ReadError::from)?
                    .ok_or_else(not_found)?;
                let want = tile.width as usize * 32;
                if stored.len() < want {
                    return Err(not_found());
                }
                Ok(stored[..want].to_vec())
            }
        }
    })
    .await?;
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if tile.width as u64 == TILE_WIDTH {
            "public, max-age=31536000, immutable"
        } else {
            "public, max-age=60"
        }),
    );
    Ok(r)
}

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz`: 200 `ready`, or 503 with one line per reason the ledger is
/// degraded (`lineage_log::health::Status`): the store is recovering from
/// a failed commit, a commit failed in the last 30 s, or a request was
/// shed with `503 overloaded` in the last 10 s. It recovers by itself, with
/// no request needed, once the reasons are older than that.
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    let status = app.log.health_status();
    // Witnessing runs beside ingest: a missed quorum is reported here, but
    // the ledger stays ready (it still admits events and issues receipts).
    let witnessing = app.log.witnessing().map(|w| witnessing_lines(&w.status()));
    if !status.is_degraded() {
        return format!("ready\n{}", witnessing.unwrap_or_default()).into_response();
    }
    let mut text = String::new();
    for r in &status.reasons {
        text.push_str(&format!("degraded: {}: {r}\n", r.code()));
    }
    text.push_str(&witnessing.unwrap_or_default());
    (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
}

/// `/readyz` lines about witnessing: the witnessed size, an unmet quorum
/// and each failing witness, with since when.
fn witnessing_lines(s: &lineage_log::witnessing::WitnessingStatus) -> String {
    let mut text = match s.witnessed {
        Some((size, ms)) => format!("witnessed: tree size {size}, signed {}\n", rfc3339_ms(ms)),
        None => "witnessed: none yet\n".to_owned(),
    };
    if let Some((since, why)) = &s.quorum_unmet {
        text.push_str(&format!(
            "witness_quorum_unmet since {}: {why}\n",
            rfc3339_ms(*since)
        ));
    }
    for w in &s.witnesses {
        if let Some((since, why)) = &w.failing {
            text.push_str(&format!(
                "witness_failing: {} ({}) since {}: {why}\n",
                w.name,
                w.url,
                rfc3339_ms(*since)
            ));
        }
    }
    text
}

pub(crate) async fn metrics(State(app): State<AppState>) -> Response {
    // Exposition only: the counters are the log service's.
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, app.log.metrics.registry());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}
