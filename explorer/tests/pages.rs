//! Every explorer page, in-process (`tower::ServiceExt::oneshot`), on a
//! ledger with real signed lineage posted through the API router: status
//! and key content, the friendly error pages, and the Proof Viewer's data
//! checked against the ledger's own verifier (the oracle).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use lineage_api::AppState;
use lineage_ledger::checkpoint::verify_checkpoint;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::hash::{Hash, leaf_hash};
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::note::{NoteSigner, NoteVerifier};
use lineage_ledger::rules::{Authorities, KeyRecord};
use lineage_ledger::store::{
    CommitBatch, MemStore, Store, StoreError, StoreMeta, StoredCheckpoint, StoredRow, StoredTally,
};
use lineage_ledger::tree::{TileStratum, verify_consistency, verify_inclusion};
use lineage_log::{Clock, LogConfig, LogService};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;

const ORIGIN: &str = "test.example/explorer";

fn key(label: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(label.bytes()) {
        *s = b;
    }
    SigningKey::from_bytes(&seed)
}

fn at() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("format")
}

/// A store that counts the entries it hands out (to show pages read a
/// bounded number of them, whatever the size of the log).
#[derive(Debug, Default)]
struct Counting {
    inner: MemStore,
    entries: AtomicU64,
}

impl Store for Counting {
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        self.inner.meta()
    }
    fn initialize(&self, m: &StoreMeta, c: &StoredCheckpoint) -> Result<(), StoreError> {
        self.inner.initialize(m, c)
    }
    fn head(&self) -> Result<StoredCheckpoint, StoreError> {
        self.inner.head()
    }
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.inner.entry(index)
    }
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let r = self.inner.entries(start, end)?;
        self.entries.fetch_add(r.len() as u64, Ordering::Relaxed);
        Ok(r)
    }
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.tile(level, index)
    }
    fn stratum(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.stratum(level, index)
    }
    fn strata(&self, level: u8, from: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.inner.strata(level, from, limit)
    }
    fn strata_covered(&self) -> Result<u64, StoreError> {
        self.inner.strata_covered()
    }
    fn put_strata(&self, strata: &[TileStratum], covered: Option<u64>) -> Result<(), StoreError> {
        self.inner.put_strata(strata, covered)
    }
    fn event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        self.inner.event_index(id)
    }
    fn workload_index(&self, w: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        self.inner.workload_index(w, seq)
    }
    fn workload_last(&self, w: &str) -> Result<Option<(u64, u64)>, StoreError> {
        self.inner.workload_last(w)
    }
    fn workload_range(
        &self,
        w: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        self.inner.workload_range(w, from, limit)
    }
    fn children(&self, parent: &EventId, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.inner.children(parent, limit)
    }
    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.checkpoint(size)
    }
    fn checkpoints_before(&self, before: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.inner.checkpoints_before(before, limit)
    }
    fn witnessed(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.witnessed(size)
    }
    fn witnessed_head(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.witnessed_head()
    }
    fn put_witnessed(&self, c: &StoredCheckpoint) -> Result<(), StoreError> {
        self.inner.put_witnessed(c)
    }
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.keys()
    }
    fn runtime_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.runtime_counts()
    }
    fn governance_scan(
        &self,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        self.inner.governance_scan(start, prefix, limit)
    }
    fn tally(&self) -> Result<Option<StoredTally>, StoreError> {
        self.inner.tally()
    }
    fn put_tally(&self, t: &StoredTally) -> Result<(), StoreError> {
        self.inner.put_tally(t)
    }
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }
}

struct Ledger {
    app: Router,
    log: Arc<LogService>,
    store: Arc<Counting>,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger::open(Arc::new(Counting::default()), true)
    }

    /// The ledger over `store` (a restart when the store was used before),
    /// with or without the explorer (without: a ledger of a build before the
    /// explorer saved its index).
    fn open(store: Arc<Counting>, explorer: bool) -> Ledger {
        let log = Arc::new(
            LogService::start(
                store.clone(),
                NoteSigner::new(ORIGIN, key("log-key")).expect("signer"),
                Authorities::new([key("authority").verifying_key()]),
                LogConfig {
                    origin: ORIGIN.into(),
                    ..LogConfig::default()
                },
                Clock::System,
            )
            .expect("start"),
        );
        let state = AppState::new(log.clone());
        let pages = if explorer {
            lineage_explorer::router(state.log.clone())
        } else {
            Router::new()
        };
        let app = lineage_api::app(state.clone(), pages, None);
        Ledger { app, log, store }
    }

    /// Stops the log and drops the pages (and with them the index's follower).
    async fn stop(self) -> Arc<Counting> {
        self.log.shutdown().await;
        self.store
    }

    async fn post(&self, body: Vec<u8>) -> (StatusCode, Value) {
        let req = Request::post("/v1/entries")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn submit(&self, env: &SignedEnvelope) -> Value {
        let (s, v) = self
            .post(serde_json::to_vec(&env.to_wire()).expect("json"))
            .await;
        assert!(s.is_success(), "{s} {v}");
        v
    }

    async fn grant(&self, runtime: &str, k: &SigningKey, action: &str) {
        let p = json!({"action": action, "runtime": runtime,
            "public_key": public_key_base64(&k.verifying_key()), "at": at()});
        let env = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&p).expect("json"),
            &key("authority"),
        );
        self.submit(&env).await;
    }

    async fn get(&self, uri: &str) -> Page {
        let resp = self
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        Page {
            status,
            headers,
            // askama writes `&` in attributes as `&#38;`; read both spellings as one.
            text: String::from_utf8_lossy(&body).replace("&#38;", "&amp;"),
        }
    }
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Page {
    #[track_caller]
    fn ok(self) -> Page {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert!(
            self.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap_or("")
                .starts_with("text/html"),
            "html"
        );
        self
    }

    #[track_caller]
    fn has(self, needles: &[&str]) -> Page {
        for n in needles {
            assert!(self.text.contains(n), "missing {n:?} in:\n{}", self.text);
        }
        self
    }

    #[track_caller]
    fn lacks(self, needles: &[&str]) -> Page {
        for n in needles {
            assert!(
                !self.text.contains(n),
                "unexpected {n:?} in:\n{}",
                self.text
            );
        }
        self
    }

    fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    /// The JSON in `<script id="proof-data">`.
    fn proof_data(&self) -> Value {
        let start = self.text.find("id=\"proof-data\">").expect("proof data") + 16;
        let end = start + self.text[start..].find("</script>").expect("end");
        serde_json::from_str(&self.text[start..end]).expect("json")
    }
}

/// An event signed by `k` for `runtime`.
fn event(
    k: &SigningKey,
    runtime: &str,
    workload: &str,
    seq: u64,
    (prev, parents): (Option<&str>, &[&str]),
    kind: &str,
    attrs: Value,
) -> SignedEnvelope {
    let mut p = json!({"runtime": runtime, "workload": workload, "seq": seq, "kind": kind,
        "at": at(), "attrs": attrs});
    if let Some(prev) = prev {
        p["prev"] = prev.into();
    }
    if !parents.is_empty() {
        p["parents"] = json!(parents);
    }
    SignedEnvelope::sign(PayloadType::Event, serde_json::to_vec(&p).expect("json"), k)
}

/// The scenario every test reads:
/// 0 grant planner, 1 grant sandbox, 2 task start, 3 tool.invoke, 4 boundary.cross,
/// 5 sandbox start (parent 4), 6 sandbox finish, 7 task merge (parent 6),
/// 8 grant sandbox key 2, 9 revoke sandbox key 1, 10 authz.deny, then a refused
/// sequence gap.
struct Scenario {
    l: Ledger,
    ids: Vec<String>,
}

async fn scenario() -> Scenario {
    let l = Ledger::new();
    let planner = key("planner");
    let sandbox = key("sandbox");
    l.grant("agent/planner", &planner, "grant").await;
    l.grant("tools/sandbox", &sandbox, "grant").await;
    let mut ids = vec![String::new(), String::new()];
    let post = async |e: SignedEnvelope| -> String {
        let v = l.submit(&e).await;
        v["event_id"].as_str().expect("id").to_owned()
    };
    let corp = json!({"trust_domain": "corp"});
    let a = post(event(
        &planner,
        "agent/planner",
        "task-1",
        0,
        (None, &[]),
        "workload.start",
        json!({"goal": "triage", "trust_domain": "corp"}),
    ))
    .await;
    let b = post(event(
        &planner,
        "agent/planner",
        "task-1",
        1,
        (Some(&a), &[]),
        "tool.invoke",
        json!({"tool": "search", "trust_domain": "corp"}),
    ))
    .await;
    let c = post(event(
        &planner,
        "agent/planner",
        "task-1",
        2,
        (Some(&b), &[]),
        "boundary.cross",
        json!({"to": "sandbox", "trust_domain": "corp"}),
    ))
    .await;
    let d = post(event(
        &sandbox,
        "tools/sandbox",
        "task-1/exec",
        0,
        (None, &[&c]),
        "workload.start",
        json!({"trust_domain": "sandbox"}),
    ))
    .await;
    let e = post(event(
        &sandbox,
        "tools/sandbox",
        "task-1/exec",
        1,
        (Some(&d), &[]),
        "workload.finish",
        json!({"status": "ok", "trust_domain": "sandbox"}),
    ))
    .await;
    let f = post(event(
        &planner,
        "agent/planner",
        "task-1",
        3,
        (Some(&c), &[&e]),
        "result.merge",
        corp.clone(),
    ))
    .await;
    ids.extend([a, b, c, d, e, f.clone()]);
    l.grant("tools/sandbox", &key("sandbox-2"), "grant").await;
    l.grant("tools/sandbox", &sandbox, "revoke").await;
    ids.extend([String::new(), String::new()]);
    let g = post(event(
        &planner,
        "agent/planner",
        "task-1",
        4,
        (Some(&f), &[]),
        "authz.deny",
        json!({"action": "secrets:read"}),
    ))
    .await;
    ids.push(g);
    // A refused attempt: seq 9 skips ahead.
    let (s, v) = l
        .post(
            serde_json::to_vec(
                &event(
                    &planner,
                    "agent/planner",
                    "task-1",
                    9,
                    (Some(&ids[10]), &[]),
                    "tool.invoke",
                    json!({}),
                )
                .to_wire(),
            )
            .expect("json"),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("sequence_gap"))
    );
    Scenario { l, ids }
}

#[tokio::test]
async fn the_dashboard_shows_the_log_at_a_glance() {
    let s = scenario().await;
    s.l.get("/")
        .await
        .ok()
        .has(&[
            ORIGIN,
            "<p class=\"stat-value\" id=\"tree-size\">11</p>",
            "Latest checkpoint",
            &s.l.log.vkey,
            "Rejections by code",
            "sequence_gap",
            "Most recent entries",
            "authz.deny",
            "<svg class=\"spark\"",
            "Healthy",
            "/proofs/inclusion?index=10&amp;tree_size=11",
        ])
        .has(&["<p class=\"stat-value\">2</p>"]); // two workloads, two runtimes
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn entries_are_newest_first_and_paged_by_cursor() {
    let s = scenario().await;
    let p = s.l.get("/entries").await.ok();
    let first = p.text.find("#10<").expect("newest");
    let last = p.text.find(">#0<").expect("oldest");
    assert!(first < last, "newest first");
    s.l.get("/entries?before=3")
        .await
        .ok()
        .has(&[">#2<", ">#0<"])
        .lacks(&[">#3<", ">#10<"]);
    s.l.get("/entries?runtime=tools%2Fsandbox")
        .await
        .ok()
        .has(&[">#5<", ">#6<", ">#1<"])
        .lacks(&[">#2<", ">#7<"]);
    s.l.get("/entries?kind=tool.invoke")
        .await
        .ok()
        .has(&[">#3<"])
        .lacks(&[">#2<", ">#4<"]);
    s.l.get("/entries?workload=task-1&kind=result.merge")
        .await
        .ok()
        .has(&[">#7<"])
        .lacks(&[">#3<", ">#5<"]);
    s.l.get("/entries?workload=task-1/exec")
        .await
        .ok()
        .has(&[">#5<", ">#6<"])
        .lacks(&[">#7<"]);
    s.l.get("/entries?from=2999-01-01T00:00")
        .await
        .ok()
        .has(&["No entries match."]);
    s.l.get("/entries?until=2000-01-01T00:00:00Z")
        .await
        .ok()
        .has(&["No entries match."]);
    s.l.get("/entries?from=2000-01-01T00:00")
        .await
        .ok()
        .has(&[">#0<", ">#10<"]);
    let bad = s.l.get("/entries?before=abc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = bad.has(&["Bad request", "must be a log index"]);
    assert!(
        bad.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    let bad = s.l.get("/entries?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn search_goes_to_the_right_page() {
    let s = scenario().await;
    let go = async |q: &str| s.l.get(&format!("/search?q={q}")).await;
    let p = go(&s.ids[3]).await;
    assert!(p.status.is_redirection());
    assert_eq!(p.location(), format!("/events/{}", s.ids[3]));
    assert_eq!(go("4").await.location(), "/entries/4");
    assert_eq!(
        go("task-1%2Fexec").await.location(),
        "/workloads/task-1%2Fexec"
    );
    assert_eq!(
        go("agent%2Fplanner").await.location(),
        "/runtimes/agent%2Fplanner"
    );
    assert_eq!(
        go("authz.deny").await.location(),
        "/entries?kind=authz.deny"
    );
    let key_id =
        lineage_ledger::keys::KeyId::from_public_key(&key("planner").verifying_key()).to_string();
    assert!(
        go(&key_id)
            .await
            .location()
            .starts_with("/runtimes/agent%2Fplanner#key-")
    );
    let miss = go("no-such-thing").await;
    assert_eq!(miss.status, StatusCode::NOT_FOUND);
    miss.has(&["Nothing in this log matches"]);
    let by_index = s.l.get("/entries/5").await;
    assert_eq!(by_index.location(), format!("/events/{}", s.ids[5]));
    assert_eq!(s.l.get("/entries/99").await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.l.get("/entries/x").await.status, StatusCode::BAD_REQUEST);
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn the_event_page_shows_fields_signer_lineage_and_receipt() {
    let s = scenario().await;
    let id = &s.ids[5]; // sandbox start, parent: the boundary crossing
    let p = s.l.get(&format!("/events/{id}")).await.ok().has(&[
        "workload.start",
        "task-1/exec",
        "/runtimes/tools%2Fsandbox",
        "runtime key",
        // Signed by the sandbox's first key, revoked later, at index 9.
        "granted at this index; revoked later",
        "revoked at <a href=\"/entries/9\">#9</a>",
        "first event of the workload",
        &format!("/events/{}", s.ids[6]), // next in the workload
        &format!("/events/{}", s.ids[4]), // parent
        "<svg class=\"lineage\"",
        "edge parent cross", // corp -> sandbox
        "node k-life focus",
        "task-1", // the parent's lane
        &format!("/events/{id}/receipt"),
        "/proofs/inclusion?index=5&amp;tree_size=11",
        "SHA-256(0x00‖entry)",
    ]);
    // Every graph node links to its event.
    assert!(
        p.text.matches("class=\"node-link\"").count() >= 5,
        "{}",
        p.text
    );
    let shallow = s.l.get(&format!("/events/{}?depth=1", s.ids[7])).await.ok();
    let deep = s.l.get(&format!("/events/{}?depth=6", s.ids[7])).await.ok();
    assert!(
        shallow.text.matches("class=\"node-link\"").count()
            < deep.text.matches("class=\"node-link\"").count()
    );
    // The receipt is the lineage-bundle/v1 document.
    let r = s.l.get(&format!("/events/{id}/receipt")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap_or("")
            .contains("lineage-receipt-5.json")
    );
    let receipt: lineage_schemas::Receipt = serde_json::from_str(&r.text).expect("receipt");
    assert_eq!((receipt.index, receipt.event_id.as_str()), (5, id.as_str()));
    // Governance entries have a page too.
    s.l.get("/entries/9").await;
    let gov = s.l.get("/search?q=9").await.location();
    assert_eq!(gov, "/entries/9");
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn event_errors_are_friendly_pages() {
    let s = scenario().await;
    let p = s.l.get("/events/not-hex").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    p.has(&["is not an event ID", "64 lowercase hex"])
        .lacks(&["Rejection", "Error {", "panicked"]);
    let missing = "ab".repeat(32);
    let p = s.l.get(&format!("/events/{missing}")).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    p.has(&["No event with ID", "<h1>Not found</h1>"]);
    let p = s.l.get(&format!("/events/{}?depth=99", s.ids[2])).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.l.get(&format!("/events/{missing}/receipt")).await.status,
        StatusCode::NOT_FOUND
    );
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn the_workload_page_is_a_timeline_with_refusals_and_a_graph() {
    let s = scenario().await;
    s.l.get("/workloads/task-1").await.ok().has(&[
        "owned by <a href=\"/runtimes/agent%2Fplanner\">agent/planner</a>",
        "seq 0",
        "seq 4",
        "boundary.cross",
        "authz.deny",
        "Refused attempts",
        "sequence_gap",
        "expects seq 5, got 9",
        "<svg class=\"lineage\"",
        "task-1/exec", // the child workload's lane
    ]);
    s.l.get("/workloads/task-1%2Fexec")
        .await
        .ok()
        .has(&["tools/sandbox", "pill domain", "edge parent cross"])
        .lacks(&["expects seq"]);
    let p = s.l.get("/workloads/nope").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    p.has(&["No workload named"]);
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn runtimes_list_keys_and_their_history() {
    let s = scenario().await;
    s.l.get("/runtimes").await.ok().has(&[
        "agent/planner",
        "tools/sandbox",
        "Authority keys",
        "/entries/0",
    ]);
    let sandbox1 = lineage_ledger::keys::KeyId::from_public_key(&key("sandbox").verifying_key());
    s.l.get("/runtimes/tools%2Fsandbox").await.ok().has(&[
        &format!("id=\"key-{sandbox1}\""),
        "revoked at <a href=\"/entries/9\">#9</a>",
        "active",
        ">#1<",
        ">#8<",
        ">#9<",
        "revoke",
        "/entries?runtime=tools%2Fsandbox",
    ]);
    assert_eq!(
        s.l.get("/runtimes/ghost").await.status,
        StatusCode::NOT_FOUND
    );
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn checkpoints_link_to_consistency_with_the_latest() {
    let s = scenario().await;
    s.l.get("/checkpoints").await.ok().has(&[
        "Checkpoints",
        "/proofs/consistency?first=10&amp;second=11",
        "/proofs/consistency?first=0&amp;second=11",
        "<span class=\"pill\">latest</span>",
        ORIGIN,
    ]);
    let p = s.l.get("/checkpoints?before=3").await.ok();
    assert!(p.text.contains("first=2&amp;") && !p.text.contains("first=5&amp;"));
    assert_eq!(
        s.l.get("/checkpoints?before=x").await.status,
        StatusCode::BAD_REQUEST
    );
    s.l.log.shutdown().await;
}

fn note_verifier(l: &Ledger) -> NoteVerifier {
    NoteVerifier::from_vkey(&l.log.vkey).expect("vkey")
}

#[tokio::test]
async fn the_inclusion_viewer_carries_exactly_what_the_browser_verifies() {
    let s = scenario().await;
    let p =
        s.l.get("/proofs/inclusion?index=5&tree_size=11")
            .await
            .ok()
            .has(&[
                "Verify in this browser",
                "id=\"verify-btn\"",
                "Checked here, in your browser",
                "Taken from this server",
                "root (recomputed)",
                "/static/verify.js?v=",
            ]);
    let d = p.proof_data();
    assert_eq!(
        (
            d["kind"].as_str(),
            d["index"].as_u64(),
            d["tree_size"].as_u64()
        ),
        (Some("inclusion"), Some(5), Some(11))
    );
    // The oracle: the ledger's verifier accepts the page's inputs.
    let cp = verify_checkpoint(
        d["checkpoint"].as_str().expect("note").as_bytes(),
        &note_verifier(&s.l),
        ORIGIN,
    )
    .expect("signed");
    assert_eq!(d["vkey"], s.l.log.vkey.as_str());
    let entry = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        d["entry"].as_str().expect("entry"),
    )
    .expect("b64");
    let proof: Vec<Hash> = d["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().expect("str")).expect("hash"))
        .collect();
    verify_inclusion(
        &lineage_ledger::leaf_hash(&entry),
        5,
        11,
        &proof,
        &cp.checkpoint().root,
    )
    .expect("included");
    // The drawn steps end at that root.
    let steps = d["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), proof.len());
    assert_eq!(
        steps.last().expect("last")["result"],
        cp.checkpoint().root.to_base64().as_str()
    );
    // An older tree size works when a checkpoint was signed there.
    s.l.get("/proofs/inclusion?index=2&tree_size=3").await.ok();
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn the_inclusion_viewer_refuses_bad_requests_politely() {
    let s = scenario().await;
    let p = s.l.get("/proofs/inclusion").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    p.has(&["needs “index”"]);
    assert_eq!(
        s.l.get("/proofs/inclusion?index=11&tree_size=11")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.l.get("/proofs/inclusion?index=1&tree_size=99")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.l.get("/proofs/inclusion?index=x").await.status,
        StatusCode::BAD_REQUEST
    );
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn the_consistency_viewer_carries_both_signed_checkpoints() {
    let s = scenario().await;
    let p =
        s.l.get("/proofs/consistency?first=3&second=11")
            .await
            .ok()
            .has(&[
                "The tree of size 11 extends the tree of size 3",
                "Older: size 3",
                "Newer: size 11",
                "Verify in this browser",
            ]);
    let d = p.proof_data();
    let v = note_verifier(&s.l);
    let c1 = verify_checkpoint(
        d["first_checkpoint"].as_str().expect("note").as_bytes(),
        &v,
        ORIGIN,
    )
    .expect("first");
    let c2 = verify_checkpoint(
        d["second_checkpoint"].as_str().expect("note").as_bytes(),
        &v,
        ORIGIN,
    )
    .expect("second");
    let proof: Vec<Hash> = d["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().expect("str")).expect("hash"))
        .collect();
    verify_consistency(3, 11, &c1.checkpoint().root, &c2.checkpoint().root, &proof)
        .expect("consistent");
    s.l.get("/proofs/consistency?first=0&second=11")
        .await
        .ok()
        .has(&["Every tree extends the empty tree"]);
    s.l.get("/proofs/consistency?first=11&second=11")
        .await
        .ok()
        .has(&["Both sizes are equal"]);
    assert_eq!(
        s.l.get("/proofs/consistency?first=5&second=3").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.l.get("/proofs/consistency").await.status,
        StatusCode::BAD_REQUEST
    );
    s.l.log.shutdown().await;
}

#[tokio::test]
async fn static_files_are_embedded_and_cached_for_a_year() {
    let s = scenario().await;
    for (f, ty) in [
        ("style.css", "text/css"),
        ("explorer.js", "text/javascript"),
        ("verify.js", "text/javascript"),
    ] {
        let r = s.l.get(&format!("/static/{f}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap_or("")
                .starts_with(ty)
        );
        assert!(
            r.headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap_or("")
                .contains("immutable")
        );
    }
    s.l.get("/")
        .await
        .ok()
        .has(&["/static/style.css?v=", "/static/explorer.js?v="]);
    assert_eq!(
        s.l.get("/static/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
    // The API keeps its own (JSON) fallback for unknown paths.
    let r = s.l.get("/no/such/path").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .contains("json")
    );
    s.l.log.shutdown().await;
}

/// Pages read a bounded number of entries, whatever the log size: run every
/// page on a log of 12,000 entries and count the entries the store hands out.
#[tokio::test]
async fn pages_read_a_bounded_number_of_entries_on_a_big_log() {
    let s = scenario().await;
    let planner = key("planner");
    let mut prev = s.ids[10].clone();
    let mut seq = 5;
    while s.l.log.head().size < 12_000 {
        let mut batch = Vec::new();
        for _ in 0..1000 {
            let e = event(
                &planner,
                "agent/planner",
                "task-1",
                seq,
                (Some(&prev), &[]),
                "tool.invoke",
                json!({"n": seq}),
            );
            prev = e.event_id().to_string();
            seq += 1;
            batch.push(e.to_wire());
        }
        let (st, v) = s.l.post(serde_json::to_vec(&batch).expect("json")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let size = s.l.log.head().size;
    // Let the index catch up (the follower and the pages share it), then measure.
    while s.l.get("/").await.ok().text.contains("counting (") {}
    let pages = [
        "/".to_owned(),
        "/entries".to_owned(),
        format!("/entries?before={}", size / 2),
        "/entries?workload=task-1".to_owned(),
        "/entries?from=2000-01-01T00:00&until=2999-01-01T00:00".to_owned(),
        format!("/events/{}", prev),
        format!("/events/{}", s.ids[5]),
        "/workloads/task-1".to_owned(),
        "/runtimes".to_owned(),
        "/runtimes/agent%2Fplanner".to_owned(),
        "/checkpoints".to_owned(),
        format!("/proofs/inclusion?index=7&tree_size={size}"),
        format!("/proofs/consistency?first=3&second={size}"),
    ];
    for page in &pages {
        let before = s.l.store.entries.load(Ordering::Relaxed);
        s.l.get(page).await.ok();
        let read = s.l.store.entries.load(Ordering::Relaxed) - before;
        assert!(read <= 1_000, "{page} read {read} entries of {size}");
    }
    // Filters without an index stop at their scan budget.
    let before = s.l.store.entries.load(Ordering::Relaxed);
    s.l.get("/entries?kind=authz.deny")
        .await
        .ok()
        .has(&["Scanned entries"]);
    let read = s.l.store.entries.load(Ordering::Relaxed) - before;
    assert!(read <= 5_000, "kind filter read {read}");
    s.l.log.shutdown().await;
}

/// An envelope of any payload, signed by `k`.
fn signed(k: &SigningKey, payload_type: PayloadType, payload: &Value) -> SignedEnvelope {
    SignedEnvelope::sign(payload_type, serde_json::to_vec(payload).expect("json"), k)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

impl Ledger {
    /// Posts an authority statement; returns (index, event ID).
    async fn govern(&self, statement: Value) -> (u64, String) {
        let v = self
            .submit(&signed(
                &key("authority"),
                PayloadType::Governance,
                &statement,
            ))
            .await;
        (
            v["index"].as_u64().expect("index"),
            v["event_id"].as_str().expect("id").to_owned(),
        )
    }

    /// Posts an event payload; returns its event ID.
    async fn emit(&self, k: &SigningKey, payload: Value) -> String {
        let v = self.submit(&signed(k, PayloadType::Event, &payload)).await;
        v["event_id"].as_str().expect("id").to_owned()
    }
}

/// A grant with a window and a scope, an expired grant, a three-workload
/// spawn tree across two runtimes and two trust domains, then a halt of the
/// root with a reason, a refused event, its resume, a runtime halt and its
/// resume, and the root's end.
#[tokio::test]
async fn halts_show_what_they_stop_until_they_are_lifted() {
    let l = Ledger::new();
    let planner = key("planner");
    let worker = key("worker");
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    l.grant("agent/planner", &planner, "grant").await; // 0
    let (granted, grant_id) = l
        .govern(json!({"action": "grant", "runtime": "tools/worker",
            "public_key": public_key_base64(&worker.verifying_key()), "at": at(),
            "not_before": rfc3339(now - day), "not_after": rfc3339(now + day),
            "scope": {"kinds": ["workload.*", "tool.*"]}}))
        .await; // 1
    assert_eq!(granted, 1);
    l.govern(json!({"action": "grant", "runtime": "tools/old",
        "public_key": public_key_base64(&key("old").verifying_key()), "at": at(),
        "not_after": rfc3339(now - day)}))
        .await; // 2
    let root0 = l
        .emit(
            &planner,
            json!({"runtime": "agent/planner", "workload": "root", "seq": 0,
            "kind": "workload.start", "at": at(), "domain": "corp"}),
        )
        .await; // 3
    let child0 = l
        .emit(
            &worker,
            json!({"runtime": "tools/worker", "workload": "root/child", "seq": 0,
            "kind": "workload.start", "at": at(), "domain": "sandbox", "parents": [root0]}),
        )
        .await; // 4
    let grand0 = l
        .emit(
            &planner,
            json!({"runtime": "agent/planner", "workload": "root/child/grand",
            "seq": 0, "kind": "workload.start", "at": at(), "domain": "corp",
            "parents": [child0]}),
        )
        .await; // 5
    let (halt, halt_id) = l
        .govern(json!({"action": "halt", "target": {"workload": "root"},
            "reason": "leaked credentials <script>", "at": at()}))
        .await;
    assert_eq!(halt, 6);

    // The descendant two steps down: halted by the root's halt.
    l.get("/workloads/root%2Fchild%2Fgrand").await.ok().has(&[
        "<span class=\"badge wl-state halted\" id=\"workload-state\" title=\"governance state\">halted</span>",
        "id=\"halt-banner\"",
        &format!("Halted by <a id=\"halt-link\" href=\"/events/{halt_id}\">the halt entry</a> at index 6: <span class=\"reason\">leaked credentials &#60;script&#62;</span>"),
        "workload <a href=\"/workloads/root\">root</a>, which this workload derives from",
        "href=\"/proofs/inclusion?index=6&amp;tree_size=7\"",
        "Derives from",
        "<a href=\"/workloads/root%2Fchild\">root/child</a>",
    ]);
    l.get("/workloads/root")
        .await
        .ok()
        .has(&["this workload itself"]);

    // A refused event of the halted workload shows with its code.
    let (st, v) = l
        .post(
            serde_json::to_vec(
                &signed(
                    &planner,
                    PayloadType::Event,
                    &json!({"runtime": "agent/planner",
                    "workload": "root/child/grand", "seq": 1, "kind": "tool.invoke",
                    "at": at(), "prev": grand0}),
                )
                .to_wire(),
            )
            .expect("json"),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("halted"))
    );
    l.get("/workloads/root%2Fchild%2Fgrand")
        .await
        .ok()
        .has(&["<code class=\"code-name\">halted</code>", "halt at index 6"]);

    // The halt's page lists what it stops.
    l.get(&format!("/events/{halt_id}")).await.ok().has(&[
        "What it stopped",
        "<strong id=\"halt-count\">3</strong> workloads",
        "<a href=\"/workloads/root\">root</a>",
        "<a href=\"/workloads/root%2Fchild\">root/child</a>",
        "<a href=\"/workloads/root%2Fchild%2Fgrand\">root/child/grand</a>",
        "leaked credentials &#60;script&#62;",
    ]);

    // Boundary crossings on the event page.
    l.get(&format!("/events/{child0}")).await.ok().has(&[
        "<dt>domain</dt><dd><span class=\"pill domain\">sandbox</span></dd>",
        "crosses from <span class=\"pill domain\">corp</span> to <span class=\"pill domain\">sandbox</span>",
    ]);
    l.get(&format!("/events/{root0}"))
        .await
        .ok()
        .lacks(&["crosses from"]);

    // Keys: windows, scopes and states.
    l.get(&format!("/events/{grant_id}")).await.ok().has(&[
        "<dt>validity</dt><dd>from <time",
        "kinds: <code>workload.*</code>, <code>tool.*</code>",
        "any workload",
        "<dt>key now</dt><dd><span class=\"state ok\">active</span>",
    ]);
    l.get("/runtimes/tools%2Fworker").await.ok().has(&[
        "<th>Valid</th>",
        "kinds: <code>workload.*</code>",
        "<span class=\"state ok\">active</span>",
    ]);
    l.get("/runtimes/tools%2Fold")
        .await
        .ok()
        .has(&["<span class=\"state bad\">expired</span>", "until <time"])
        .lacks(&["halt-banner"]);

    // The resume clears the banner, and each names the other.
    let (resume, resume_id) = l
        .govern(json!({"action": "resume", "target": {"workload": "root"}, "at": at()}))
        .await;
    l.get("/workloads/root%2Fchild%2Fgrand")
        .await
        .ok()
        .has(&["<span class=\"badge wl-state open\""])
        .lacks(&["halt-banner", "Halted by"]);
    l.get(&format!("/events/{halt_id}"))
        .await
        .ok()
        .has(&[&format!(
            "lifted by <a href=\"/events/{resume_id}\">the resume at index {resume}</a>"
        )])
        .lacks(&["halt-count"]);
    l.get(&format!("/events/{resume_id}")).await.ok().has(&[
        "What it lifted",
        &format!("Lifted <a href=\"/events/{halt_id}\">the halt at index 6</a>"),
    ]);

    // A runtime halt: on the runtime's page and on the workloads it stops.
    let (rt_halt, rt_halt_id) = l
        .govern(
            json!({"action": "halt", "target": {"runtime": "tools/worker"},
            "reason": "key compromise", "at": at()}),
        )
        .await;
    l.get("/runtimes/tools%2Fworker").await.ok().has(&[
        &format!("<a id=\"halt-link\" href=\"/events/{rt_halt_id}\">the halt entry</a> at index {rt_halt}: <span class=\"reason\">key compromise</span>"),
        "stops 2 workloads",
    ]);
    l.get("/workloads/root%2Fchild")
        .await
        .ok()
        .has(&["its runtime <a href=\"/runtimes/tools%2Fworker\">tools/worker</a>"]);
    l.get("/workloads/root%2Fchild%2Fgrand").await.ok().has(&[
        "runtime <a href=\"/runtimes/tools%2Fworker\">tools/worker</a>, which started a workload this one derives from",
    ]);
    l.get("/workloads/root").await.ok().lacks(&["halt-banner"]);
    l.govern(json!({"action": "resume", "target": {"runtime": "tools/worker"}, "at": at()}))
        .await;
    l.get("/runtimes/tools%2Fworker")
        .await
        .ok()
        .lacks(&["halt-banner"]);

    // The root ends: closed.
    l.emit(
        &planner,
        json!({"runtime": "agent/planner", "workload": "root", "seq": 1,
        "kind": "workload.end", "at": at(), "domain": "corp", "prev": root0}),
    )
    .await;
    l.get("/workloads/root").await.ok().has(&[
        "<span class=\"badge wl-state closed\"",
        "id=\"closed-notice\"",
    ]);
    l.log.shutdown().await;
}

/// The event page judges its signer's key at the entry's integration time,
/// window included: an event admitted inside a short grant still reads as
/// valid at its index once the grant has expired, and says so.
#[tokio::test]
async fn an_event_signed_before_its_grant_expired_says_so_after_it_has() {
    let l = Ledger::new();
    let brief = key("brief");
    let now = time::OffsetDateTime::now_utc();
    l.govern(json!({"action": "grant", "runtime": "tools/brief",
        "public_key": public_key_base64(&brief.verifying_key()), "at": at(),
        "not_after": rfc3339(now + time::Duration::milliseconds(1500))}))
        .await;
    let id = l
        .emit(
            &brief,
            json!({"runtime": "tools/brief", "workload": "short", "seq": 0,
            "kind": "workload.start", "at": at()}),
        )
        .await;
    l.get(&format!("/events/{id}"))
        .await
        .ok()
        .has(&["granted, active"]);
    // Past not_after (the ledger's clock is the system clock here).
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    l.get(&format!("/events/{id}"))
        .await
        .ok()
        .has(&["valid at this index; the grant has expired since"])
        .lacks(&["granted, active", "not valid at this index"]);
}

/// Appends workloads `from..from + n` of agent/planner (granted), ten events
/// each: `workload.start`, eight steps of three kinds, `workload.end`; 500
/// events a request.
async fn grow(l: &Ledger, from: usize, n: usize) {
    let planner = key("planner");
    let mut batch = Vec::new();
    for w in from..from + n {
        let mut prev: Option<String> = None;
        for seq in 0..10u64 {
            let kind = match seq {
                0 => "workload.start".to_owned(),
                9 => "workload.end".to_owned(),
                s => format!("step.{}", s % 3),
            };
            let e = event(
                &planner,
                "agent/planner",
                &format!("bulk-{w}"),
                seq,
                (prev.as_deref(), &[]),
                &kind,
                json!({}),
            );
            prev = Some(e.event_id().to_string());
            batch.push(e.to_wire());
        }
        if batch.len() >= 500 || w + 1 == from + n {
            let (st, v) = l.post(serde_json::to_vec(&batch).expect("json")).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            batch.clear();
        }
    }
}

/// The text of `page` between `start` and the next `end`.
fn between(page: &str, start: &str, end: &str) -> String {
    let from = page.find(start).expect("start") + start.len();
    let to = from + page[from..].find(end).expect("end");
    page[from..to].to_owned()
}

/// What the pages show of the index: the dashboard's counters and the kinds
/// the entries filter suggests.
async fn counts(l: &Ledger) -> (String, String) {
    let dashboard = l.get("/").await.ok().lacks(&["counting ("]).text;
    let entries = l.get("/entries").await.ok().text;
    (
        between(&dashboard, "<section class=\"stats\">", "</section>"),
        between(&entries, "<datalist id=\"kinds\">", "</datalist>"),
    )
}

/// Waits until the index has saved a tally of the whole log (it has caught
/// up, then), and returns [`counts`].
async fn settled(l: &Ledger) -> (String, String) {
    let head = l.log.head().size;
    let last = head
        .checked_sub(1)
        .and_then(|i| l.store.inner.entry(i).expect("entry"))
        .expect("a log with entries");
    let of_log = |t: StoredTally| t.covers == head && t.last_leaf == leaf_hash(&last);
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !l.store.inner.tally().ok().flatten().is_some_and(of_log) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the index saves a tally covering the log");
    counts(l).await
}

fn reads(store: &Counting) -> u64 {
    store.entries.load(Ordering::Relaxed)
}

/// The explorer's counts survive a restart without a pass over the log:
/// restored from the saved tally (one entry read, to check it is this log's),
/// topped up when saves were lost, and counted again from entry 0 when the
/// tally is damaged or names another log; the pages show the same counts
/// every time.
#[tokio::test]
async fn a_restart_goes_on_from_the_saved_index_instead_of_reading_the_log_again() {
    let s = scenario().await;
    grow(&s.l, 0, 200).await;
    settled(&s.l).await;
    let older = s.l.store.inner.tally().expect("tally").expect("saved");
    grow(&s.l, 200, 100).await;
    let live = settled(&s.l).await;
    assert!(live.0.contains("3,007 events"), "{}", live.0);
    let size = s.l.log.head().size;
    let full = s.l.store.inner.tally().expect("tally").expect("saved");
    assert_eq!((full.covers, size - older.covers), (size, 1000));
    let store = s.l.stop().await;

    // Restored: one entry read, the last the tally covers.
    let l = Ledger::open(store.clone(), true);
    let before = reads(&store);
    let found = l.get("/search?q=step.2").await;
    assert_eq!(found.location(), "/entries?kind=step.2");
    assert_eq!(reads(&store) - before, 1, "restart read the log");
    assert_eq!(counts(&l).await, live);
    let store = l.stop().await;

    // Saves lost (a crash): the older tally is topped up with what it lacks.
    store.inner.put_tally(&older).expect("put");
    let l = Ledger::open(store.clone(), true);
    let before = reads(&store);
    let found = l.get("/search?q=step.2").await;
    assert_eq!(found.location(), "/entries?kind=step.2");
    assert_eq!(reads(&store) - before, 1 + 1000);
    assert_eq!(settled(&l).await, live);
    let store = l.stop().await;

    // Damaged, or of another log: counted from entry 0, then saved again.
    let foreign = StoredTally {
        last_leaf: Hash::from_bytes([7; 32]),
        ..full.clone()
    };
    for plant in [b"\x01damaged".to_vec(), foreign.to_bytes()] {
        store.inner.put_tally_bytes(&plant);
        let l = Ledger::open(store.clone(), true);
        let before = reads(&store);
        assert_eq!(settled(&l).await, live);
        assert!(reads(&store) - before >= size, "counted from entry 0");
        assert_eq!(store.inner.tally().expect("tally"), Some(full.clone()));
        l.stop().await;
    }
}

/// A store written before the explorer saved its index has no tally: the
/// first start counts it from entry 0 (as every start used to) and saves one.
#[tokio::test]
async fn a_store_without_a_saved_index_is_counted_from_the_first_entry() {
    let l = Ledger::open(Arc::new(Counting::default()), false);
    l.grant("agent/planner", &key("planner"), "grant").await;
    grow(&l, 0, 300).await;
    let store = l.stop().await;
    assert_eq!(store.inner.tally().expect("tally"), None);
    let l = Ledger::open(store, true);
    let (stats, kinds) = settled(&l).await;
    for n in [
        "<p class=\"stat-value\">300</p><p class=\"stat-sub\">3,000 events</p>",
        "<p class=\"stat-value\">1</p><p class=\"stat-sub\">key grants",
    ] {
        assert!(stats.contains(n), "{n:?} not in {stats}");
    }
    assert_eq!(
        kinds,
        [
            "step.0",
            "step.1",
            "step.2",
            "workload.end",
            "workload.start"
        ]
        .map(|k| format!("<option value=\"{k}\">"))
        .concat()
    );
    l.get("/governance")
        .await
        .ok()
        .has(&["id=\"closed-workloads\">300</p>"]);
    l.stop().await;
}

/// The checkpoint history comes from the store's reverse listing: paging
/// down from the newest reaches every checkpoint once, down to size 0.
#[tokio::test]
async fn the_checkpoint_history_pages_through_every_checkpoint_newest_first() {
    let s = scenario().await;
    let planner = key("planner");
    let mut prev = s.ids[10].clone();
    for seq in 5..35 {
        let e = event(
            &planner,
            "agent/planner",
            "task-1",
            seq,
            (Some(&prev), &[]),
            "tool.invoke",
            json!({}),
        );
        prev = s.l.submit(&e).await["event_id"]
            .as_str()
            .expect("id")
            .to_owned();
    }
    let head = s.l.log.head().size;
    let mut sizes = Vec::new();
    let mut next = Some("/checkpoints".to_owned());
    while let Some(uri) = next {
        let p = s.l.get(&uri).await.ok();
        let rows = between(&p.text, "<tbody>", "</tbody>");
        for cell in rows.split("<td class=\"num\">").skip(1) {
            let text = &cell[..cell.find("</td>").expect("cell")];
            sizes.push(text.replace(',', "").parse::<u64>().expect("size"));
        }
        next = p
            .text
            .split("href=\"")
            .filter_map(|h| h.split('"').next())
            .find(|h| h.starts_with("/checkpoints?before="))
            .map(str::to_owned);
    }
    // One checkpoint per commit: the genesis, then one per accepted post.
    assert_eq!(sizes, (0..=head).rev().collect::<Vec<_>>());
    s.l.log.shutdown().await;
}
