//! The Governance Console (`/governance`), in-process
//! (`tower::ServiceExt::oneshot`) on a ledger fed through the API router:
//! the state now, the state "as of index I" (replayed), the history filters,
//! the halted subtree paged, and polite refusals of bad parameters.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use lineage_api::AppState;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::{KeyId, public_key_base64};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::MemStore;
use lineage_log::{Clock, LogConfig, LogService};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;

fn key(label: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(label.bytes()) {
        *s = b;
    }
    SigningKey::from_bytes(&seed)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

fn at() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

struct Ledger {
    app: Router,
    log: Arc<LogService>,
}

impl Ledger {
    fn new() -> Ledger {
        let log = Arc::new(
            LogService::start(
                Arc::new(MemStore::default()),
                NoteSigner::new("test.example/console", key("log-key")).expect("signer"),
                Authorities::new([key("authority").verifying_key()]),
                LogConfig {
                    origin: "test.example/console".into(),
                    ..LogConfig::default()
                },
                Clock::System,
            )
            .expect("start"),
        );
        let state = AppState::new(log.clone());
        let app = lineage_api::app(
            state.clone(),
            lineage_explorer::router(state.log.clone()),
            None,
        );
        Ledger { app, log }
    }

    async fn submit(&self, k: &SigningKey, t: PayloadType, payload: &Value) -> u64 {
        let env = SignedEnvelope::sign(t, serde_json::to_vec(payload).expect("json"), k);
        let req = Request::post("/v1/entries")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::to_vec(&env.to_wire()).expect("json"),
            ))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert!(status.is_success(), "{status} {v}");
        v["index"].as_u64().expect("index")
    }

    async fn govern(&self, statement: Value) -> u64 {
        self.submit(&key("authority"), PayloadType::Governance, &statement)
            .await
    }

    async fn grant(&self, runtime: &str, k: &SigningKey, extra: Value) -> u64 {
        let mut s = json!({"action": "grant", "runtime": runtime,
            "public_key": public_key_base64(&k.verifying_key()), "at": at()});
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        self.govern(s).await
    }

    async fn start(&self, k: &SigningKey, runtime: &str, workload: &str, parent: Option<&str>) {
        let mut p = json!({"runtime": runtime, "workload": workload, "seq": 0,
            "kind": "workload.start", "at": at()});
        if let Some(parent) = parent {
            p["parents"] = json!([parent]);
        }
        self.submit(k, PayloadType::Event, &p).await;
    }

    async fn get(&self, uri: &str) -> (StatusCode, String) {
        let resp = self
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (
            status,
            String::from_utf8_lossy(&body).replace("&#38;", "&amp;"),
        )
    }

    async fn page(&self, uri: &str) -> String {
        let (s, text) = self.get(uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {text}");
        text
    }
}

#[track_caller]
fn has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "missing {n:?} in:\n{text}");
    }
}

#[track_caller]
fn lacks(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(!text.contains(n), "unexpected {n:?} in:\n{text}");
    }
}

/// The rows of the history table: (index, action) in order.
fn history(text: &str) -> Vec<(u64, String)> {
    let Some(start) = text.find("id=\"history-table\"") else {
        return Vec::new();
    };
    let table = &text[start..start + text[start..].find("</table>").expect("end")];
    table
        .split("<tr class=\"gov-")
        .skip(1)
        .map(|row| {
            let action = row[..row.find('"').expect("quote")].to_owned();
            let i = row.find("\">#").expect("index") + 3;
            let n = row[i..i + row[i..].find('<').expect("end")]
                .parse()
                .expect("number");
            (n, action)
        })
        .collect()
}

#[tokio::test]
async fn the_console_shows_state_history_and_the_past() {
    let l = Ledger::new();
    let planner = key("planner");
    let worker = key("worker");
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let g_planner = l.grant("agent/planner", &planner, json!({})).await;
    let g_worker = l
        .grant(
            "tools/worker",
            &worker,
            json!({"not_before": rfc3339(now - day), "not_after": rfc3339(now + day),
                "scope": {"kinds": ["workload.*"]}}),
        )
        .await;
    l.grant(
        "tools/old",
        &key("old"),
        json!({"not_after": rfc3339(now - day)}),
    )
    .await;
    l.start(&planner, "agent/planner", "root", None).await;
    let root0 = {
        let (_, text) = l.get("/v1/workloads/root").await;
        let v: Value = serde_json::from_str(&text).expect("workload json");
        v["head"]["event_id"].as_str().expect("head").to_owned()
    };
    l.start(&worker, "tools/worker", "root/child", Some(&root0))
        .await;
    for n in 0..9 {
        l.start(&planner, "agent/planner", &format!("batch-{n}"), None)
            .await;
    }
    let halt = l
        .govern(json!({"action": "halt", "target": {"workload": "root"},
            "reason": "leaked <credentials>", "at": at()}))
        .await;
    let revoke = l
        .govern(json!({"action": "revoke", "runtime": "tools/worker",
            "public_key": public_key_base64(&worker.verifying_key()), "at": at()}))
        .await;
    let resume = l
        .govern(json!({"action": "resume", "target": {"workload": "root"}, "at": at()}))
        .await;
    let rt_halt = l
        .govern(json!({"action": "halt", "target": {"runtime": "agent/planner"}, "at": at()}))
        .await;
    let size = l.log.core().head().size;
    let authority_id = KeyId::from_public_key(&key("authority").verifying_key()).to_string();
    let worker_id = KeyId::from_public_key(&worker.verifying_key()).to_string();

    // Now: the runtime halt, drawn, with every workload it stops (the
    // planner's ten and the worker's child of root).
    let text = l.page("/governance").await;
    has(
        &text,
        &[
            "<h1>Who may execute what</h1>",
            "<a href=\"/governance\" class=\"active\">Governance</a>",
            &format!("<tr id=\"halt-{rt_halt}\" class=\"halt-row drawn\">"),
            "runtime <a href=\"/runtimes/agent%2Fplanner\">agent/planner</a>",
            "11 workloads",
            &format!("What halt #{rt_halt} stops"),
            "workloads 1–8 of <strong id=\"subtree-total\">11</strong>",
            "<svg class=\"lineage\"",
            &format!("href=\"/proofs/inclusion?index={rt_halt}&amp;tree_size={size}\""),
            "<p class=\"stat-value\" id=\"active-halts\">1</p>",
            "<p class=\"stat-value\" id=\"halted-workloads\">11</p>",
            // Keys: active, revoked (with its entry and proof), expired.
            "<a href=\"/runtimes/agent%2Fplanner\">agent/planner</a></h3>",
            "<span class=\"state ok key-state\">active</span>",
            "<span class=\"state bad key-state\">revoked</span> at <a href=\"/events/",
            &format!("\">#{revoke}</a>"),
            "<span class=\"state bad key-state\">expired</span>",
            "kinds: <code>workload.*</code>",
            &format!("href=\"/proofs/inclusion?index={g_worker}&amp;tree_size={size}\""),
            // The authority and the form, with its warning.
            &authority_id,
            "a compromised server could serve a page that steals a key loaded into it",
            "id=\"console-data\"",
            "/static/console.js?v=",
            "/static/verify.js?v=",
        ],
    );
    lacks(&text, &[&format!("<tr id=\"halt-{halt}\"")]);
    let rows = history(&text);
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(rows[0], (g_planner, "grant".into()));
    assert_eq!(rows[3], (halt, "halt".into()));
    assert_eq!(rows[6], (rt_halt, "halt".into()));
    has(
        &text,
        &["<span class=\"reason\">leaked &lt;credentials&gt;</span>"],
    );

    // The next page of the subtree.
    let more = l
        .page(&format!("/governance?halt={rt_halt}&members=8"))
        .await;
    has(
        &more,
        &[
            "workloads 9–11 of <strong id=\"subtree-total\">11</strong>",
            "← Earlier",
        ],
    );
    lacks(&more, &["id=\"subtree-later\""]);
    // Far past the end (any number a client sends): the last page, read
    // without copying the members before it.
    let past_end = l
        .page(&format!(
            "/governance?halt={rt_halt}&members=18446744073709551615"
        ))
        .await;
    has(
        &past_end,
        &["workloads 9–11 of <strong id=\"subtree-total\">11</strong>"],
    );

    // As of the first halt: it is active, the worker's key not yet revoked,
    // and the history stops there. What it stopped is not kept (resumed).
    let past = l.page(&format!("/governance?as_of={halt}")).await;
    has(
        &past,
        &[
            &format!("<h1>Governance as of index {halt}</h1>"),
            &format!("<tr id=\"halt-{halt}\" class=\"halt-row\">"),
            "workload <a href=\"/workloads/root\">root</a>",
            "<span class=\"reason\">leaked &#60;credentials&#62;</span>",
            "resumed since: not kept",
            "<p class=\"stat-value\" id=\"active-halts\">1</p>",
        ],
    );
    lacks(
        &past,
        &[
            "<span class=\"state bad key-state\">revoked</span>",
            &format!("<tr id=\"halt-{rt_halt}\""),
            "id=\"subtree\"",
        ],
    );
    let rows = history(&past);
    assert_eq!(rows.last(), Some(&(halt, "halt".into())), "{rows:?}");
    assert_eq!(rows.len(), 4);

    // As of the revocation and of the resume.
    has(
        &l.page(&format!("/governance?as_of={revoke}")).await,
        &["<span class=\"state bad key-state\">revoked</span>"],
    );
    let resumed = l.page(&format!("/governance?as_of={resume}")).await;
    has(&resumed, &["No halt is active at this index"]);
    // As of an event before any halt: two grants, one of them expired.
    let early = l.page("/governance?as_of=3").await;
    has(&early, &["No halt is active at this index"]);
    assert_eq!(history(&early).len(), 3);

    // Filters: by action, runtime and key (a prefix), combined with as_of.
    let halts = history(&l.page("/governance?action=halt").await);
    assert_eq!(halts, vec![(halt, "halt".into()), (rt_halt, "halt".into())]);
    let worker_rows = history(&l.page("/governance?runtime=tools%2Fworker").await);
    assert_eq!(
        worker_rows,
        vec![(g_worker, "grant".into()), (revoke, "revoke".into())]
    );
    let by_key = history(
        &l.page(&format!("/governance?key={}", &worker_id[..10]))
            .await,
    );
    assert_eq!(by_key, worker_rows);
    let signed = history(
        &l.page(&format!("/governance?key={}", &authority_id[..12]))
            .await,
    );
    assert_eq!(signed.len(), 7, "the authority signed every statement");
    let none = l
        .page(&format!("/governance?action=revoke&as_of={halt}"))
        .await;
    has(&none, &["id=\"history-empty\""]);

    // Bad parameters are friendly 400 pages.
    for bad in [
        "/governance?as_of=x".to_owned(),
        format!("/governance?as_of={size}"),
        "/governance?action=delete".to_owned(),
        "/governance?members=-1".to_owned(),
    ] {
        let (s, text) = l.get(&bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {text}");
        has(&text, &["Bad request"]);
    }
    l.log.shutdown().await;
}

#[tokio::test]
async fn an_empty_ledger_has_a_console() {
    let l = Ledger::new();
    let text = l.page("/governance").await;
    has(
        &text,
        &[
            "No halt is active",
            "No runtime key is granted",
            "id=\"history-empty\"",
            "id=\"act-form\"",
        ],
    );
    l.log.shutdown().await;
}
