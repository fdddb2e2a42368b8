//! The explorer with witnessing on (`serve --witness-policy`), in process:
//! three witnesses that decide with the ledger's own C2SP tlog-witness
//! logic (`witness_protocol::decide`) behind an in-memory transport, and a
//! 2-of-3 policy. The checkpoint and proof pages show the cosignatures and
//! hand the policy's keys to `verify.js`; the health page has a Witnesses
//! section whose unmet quorum never makes the ledger degraded. Without a
//! policy the pages are as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use lineage_api::{AppState, HttpLimits};
use lineage_ledger::cosignature::CosignerSigner;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::public_key_base64;
use lineage_ledger::note::{NoteSigner, NoteVerifier};
use lineage_ledger::policy::Policy;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::MemStore;
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, CosignedState, conflict_body, decide,
};
use lineage_log::witnessing::{
    AnswerFuture, RoundOutcome, WitnessAnswer, WitnessTransport, Witnessing,
};
use lineage_log::{Clock, LogConfig, LogService};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;

const ORIGIN: &str = "test.example/witnessed";
/// Every cosignature's timestamp: 2023-11-14T22:13:20Z.
const COSIGNED_AT: u64 = 1_700_000_000;

fn key(label: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(label.bytes()) {
        *s = b;
    }
    SigningKey::from_bytes(&seed)
}

/// A C2SP witness for one log, in memory; `up` false makes it unreachable.
struct FakeWitness {
    signer: CosignerSigner,
    log: NoteVerifier,
    state: Mutex<Option<CosignedState>>,
    up: AtomicBool,
}

impl FakeWitness {
    fn answer(&self, body: &[u8]) -> Result<WitnessAnswer, String> {
        if !self.up.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        let request = AddCheckpointRequest::parse(body).map_err(|e| e.to_string())?;
        let mut state = self.state.lock().expect("state");
        Ok(
            match decide(&request, std::slice::from_ref(&self.log), *state) {
                Ok(accepted) => {
                    *state = Some(accepted.new_state());
                    let line = accepted.cosign(&self.signer, COSIGNED_AT).expect("cosign");
                    WitnessAnswer {
                        status: 200,
                        body: AddCheckpointResponse::new(vec![line])
                            .expect("response")
                            .to_bytes(),
                    }
                }
                Err(refusal) => match refusal.conflict_size() {
                    Some(size) => WitnessAnswer {
                        status: 409,
                        body: conflict_body(size).into_bytes(),
                    },
                    None => WitnessAnswer {
                        status: refusal.status(),
                        body: refusal.to_string().into_bytes(),
                    },
                },
            },
        )
    }
}

/// Witnesses by URL.
struct Witnesses(HashMap<String, Arc<FakeWitness>>);

impl WitnessTransport for Witnesses {
    fn add_checkpoint<'a>(&'a self, url: &'a str, body: Vec<u8>) -> AnswerFuture<'a> {
        Box::pin(async move {
            self.0
                .get(url)
                .ok_or_else(|| format!("no witness at {url}"))?
                .answer(&body)
        })
    }
}

struct Ledger {
    app: Router,
    log: Arc<LogService>,
    clock: Clock,
    witnesses: Witnesses,
    witnessing: Option<Arc<Witnessing>>,
    policy: Option<Policy>,
}

impl Ledger {
    fn new(witnessed: bool) -> Ledger {
        let clock = Clock::fixed(time::OffsetDateTime::now_utc());
        let signer = NoteSigner::new(ORIGIN, key("log-key")).expect("signer");
        let vkey = signer.verifier().vkey();
        let log = Arc::new(
            LogService::start(
                Arc::new(MemStore::new()),
                signer,
                Authorities::new([key("authority").verifying_key()]),
                LogConfig {
                    origin: ORIGIN.into(),
                    ..LogConfig::default()
                },
                clock.clone(),
            )
            .expect("start"),
        );
        let mut witnesses = HashMap::new();
        let mut text = format!("log {vkey}\n");
        for name in ["w1", "w2", "w3"] {
            let signer = CosignerSigner::new(&format!("{name}.example/witness"), key(name))
                .expect("cosigner");
            let url = format!("http://{name}.invalid");
            text.push_str(&format!(
                "witness {name} {} {url}\n",
                signer.verifier().vkey()
            ));
            witnesses.insert(
                url,
                Arc::new(FakeWitness {
                    signer,
                    log: NoteVerifier::from_vkey(&vkey).expect("log vkey"),
                    state: Mutex::new(None),
                    up: AtomicBool::new(true),
                }),
            );
        }
        text.push_str("group main 2 w1 w2 w3\nquorum main\n");
        let (witnessing, policy) = if witnessed {
            let policy = Policy::parse(text.as_bytes()).expect("policy");
            let w = Arc::new(Witnessing::new(policy.clone(), log.core()).expect("witnessing"));
            log.set_witnessing(w.clone()).expect("once");
            (Some(w), Some(policy))
        } else {
            (None, None)
        };
        let state = AppState {
            log: log.clone(),
            limits: HttpLimits::default(),
            runtime_limiter: None,
        };
        let app = lineage_api::app(state, lineage_explorer::router(log.clone()), None);
        Ledger {
            app,
            log,
            clock,
            witnesses: Witnesses(witnesses),
            witnessing,
            policy,
        }
    }

    fn down(&self, name: &str) {
        self.witnesses.0[&format!("http://{name}.invalid")]
            .up
            .store(false, Ordering::SeqCst);
    }

    async fn round(&self) -> RoundOutcome {
        self.witnessing
            .as_ref()
            .expect("witnessing")
            .round(self.log.core(), &self.witnesses, Duration::from_secs(2))
            .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, String) {
        let resp = self
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn post(&self, payload_type: PayloadType, payload: &Value, k: &SigningKey) {
        let env = SignedEnvelope::sign(payload_type, serde_json::to_vec(payload).expect("json"), k);
        let req = Request::post("/v1/entries")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::to_vec(&env.to_wire()).expect("json"),
            ))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    fn at(&self) -> String {
        self.clock.now().format(&Rfc3339).expect("format")
    }

    async fn grant(&self) {
        let p = json!({"action": "grant", "runtime": "agent/a",
            "public_key": public_key_base64(&key("runtime").verifying_key()), "at": self.at()});
        self.post(PayloadType::Governance, &p, &key("authority"))
            .await;
    }

    async fn event(&self, workload: &str) {
        let p = json!({"runtime": "agent/a", "workload": workload, "seq": 0,
            "kind": "workload.start", "at": self.at()});
        self.post(PayloadType::Event, &p, &key("runtime")).await;
    }

    fn size(&self) -> u64 {
        self.log.core().head().size
    }

    async fn health(&self) -> Value {
        let (s, body) = self.get("/health.json").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        serde_json::from_str(&body).expect("json")
    }
}

/// The JSON verify.js reads from a proof page.
fn proof_data(page: &str) -> Value {
    let start = page
        .find("<script type=\"application/json\" id=\"proof-data\">")
        .expect("proof data")
        + "<script type=\"application/json\" id=\"proof-data\">".len();
    let end = start + page[start..].find("</script>").expect("end");
    serde_json::from_str(&page[start..end]).expect("json")
}

#[tokio::test]
async fn witnessed_checkpoints_show_their_cosignatures_and_proof_pages_carry_the_policy() {
    let l = Ledger::new(true);
    let policy = l.policy.clone().expect("policy");

    // Before any round.
    let (s, page) = l.get("/checkpoints").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("No checkpoint has met the witness policy"),
        "{page}"
    );
    let (s, page) = l.get("/proofs/inclusion?index=0&witnessed=true").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{page}");
    let doc = l.health().await;
    assert_eq!(doc["witnessing"]["quorum"], "pending", "{doc}");
    assert_eq!(doc["witnessing"]["witnesses"][0]["state"], "unknown");

    l.grant().await;
    l.event("w-1").await;
    let first = l.size();
    assert_eq!(l.round().await, RoundOutcome::Published(first));

    // The checkpoint history: the witnessed size with its three
    // cosignatures (policy name, key ID, UTC time) and the verdict.
    let (s, page) = l.get("/checkpoints").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<th>Witnesses</th>"), "{page}");
    assert!(page.contains("data-quorum=\"met\""), "{page}");
    for w in policy.witnesses() {
        let id = format!("{:08x}", w.verifier().key_id());
        assert!(
            page.contains(&format!(
                "<li data-witness=\"{}\"><strong>{}</strong> <code class=\"mono small\" title=\"key ID\">{id}</code> cosigned <time datetime=\"2023-11-14T22:13:20Z\"",
                w.name(),
                w.name()
            )),
            "{} in {page}",
            w.name()
        );
    }

    // The inclusion page against the latest witnessed checkpoint: the
    // witnessed note, the policy's keys and groups for verify.js.
    l.event("w-2").await;
    let (s, page) = l.get("/proofs/inclusion?index=1&witnessed=true").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let d = proof_data(&page);
    assert_eq!(d["tree_size"], first);
    assert_eq!(d["witnessed"], true);
    let note = d["checkpoint"].as_str().expect("note");
    assert_eq!(
        policy
            .verify(note.as_bytes())
            .expect("the quorum")
            .cosignatures()
            .len(),
        3
    );
    let vkeys: Vec<String> = policy
        .witnesses()
        .iter()
        .map(|w| w.verifier().vkey())
        .collect();
    assert_eq!(
        d["policy"]["witnesses"],
        json!([
            {"name": "w1", "vkey": vkeys[0]},
            {"name": "w2", "vkey": vkeys[1]},
            {"name": "w3", "vkey": vkeys[2]},
        ])
    );
    assert_eq!(
        d["policy"]["groups"],
        json!([{"name": "main", "required": 2,
            "members": [["witness", "w1"], ["witness", "w2"], ["witness", "w3"]]}])
    );
    assert_eq!(d["policy"]["quorum"], json!(["group", "main"]));
    assert!(page.contains("data-quorum=\"met\""), "{page}");
    // The latest (not witnessed) size: the log's note, a link to the
    // witnessed one.
    let (s, page) = l.get("/proofs/inclusion?index=1").await;
    assert_eq!(s, StatusCode::OK);
    let d = proof_data(&page);
    assert_eq!(d["witnessed"], false);
    assert!(d["policy"].is_object());
    assert!(page.contains("id=\"not-witnessed\""), "{page}");
    assert!(
        page.contains("href=\"/proofs/inclusion?index=1&amp;witnessed=true\""),
        "{page}"
    );
    // Entry #2 is not covered by a witnessed checkpoint yet.
    let (s, _) = l.get("/proofs/inclusion?index=2&witnessed=true").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = l.get("/proofs/inclusion?index=1&witnessed=maybe").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A second witnessed size: the consistency page between the two has
    // both witnessed notes.
    let second = l.size();
    assert_eq!(l.round().await, RoundOutcome::Published(second));
    let (s, page) = l
        .get(&format!(
            "/proofs/consistency?first={first}&second={second}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let d = proof_data(&page);
    assert_eq!(
        (d["first_witnessed"].clone(), d["second_witnessed"].clone()),
        (json!(true), json!(true))
    );
    for side in ["first_checkpoint", "second_checkpoint"] {
        policy
            .verify(d[side].as_str().expect("note").as_bytes())
            .expect("witnessed");
    }
    assert_eq!(page.matches("data-quorum=\"met\"").count(), 2, "{page}");
    l.log.shutdown().await;
}

#[tokio::test]
async fn the_health_page_shows_witnesses_and_an_unmet_quorum_without_degrading() {
    let l = Ledger::new(true);
    l.grant().await;
    let first = l.size();
    assert_eq!(l.round().await, RoundOutcome::Published(first));
    let doc = l.health().await;
    let w = &doc["witnessing"];
    assert_eq!(w["quorum"], "met", "{doc}");
    assert_eq!(w["witnessed_size"], first);
    for r in w["witnesses"].as_array().expect("witnesses") {
        assert_eq!(r["state"], "up", "{r}");
        assert_eq!(r["size"], first);
    }

    // Two of three down: the round misses the quorum.
    l.down("w2");
    l.down("w3");
    l.event("w-1").await;
    assert!(matches!(l.round().await, RoundOutcome::QuorumUnmet(_)));
    let doc = l.health().await;
    assert_eq!(doc["degraded"], false, "witnessing never degrades: {doc}");
    let w = &doc["witnessing"];
    assert_eq!(w["quorum"], "unmet");
    assert!(
        w["quorum_detail"]
            .as_str()
            .expect("detail")
            .contains("main has 1 of 2"),
        "{w}"
    );
    assert_eq!(w["witnessed_size"], first, "the last witnessed size stays");
    let states: Vec<&str> = w["witnesses"]
        .as_array()
        .expect("witnesses")
        .iter()
        .map(|r| r["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, ["up", "failing", "failing"]);
    assert_eq!(w["witnesses"][1]["last_error"], "connection refused");
    assert!(w["witnesses"][1]["failing_since"].is_string());

    let (s, page) = l.get("/health").await;
    assert_eq!(s, StatusCode::OK);
    for needle in [
        "id=\"health-banner\" role=\"alert\" hidden",
        "<span class=\"status-dot ok\"></span> Healthy",
        "id=\"witnesses\" aria-labelledby=\"h-witnesses\" data-quorum=\"unmet\"",
        "<div class=\"quorum-alert\" id=\"quorum-alert\" role=\"alert\">",
        "main has 1 of 2",
        "<tr data-witness=\"w2\" data-state=\"failing\">",
        "connection refused",
    ] {
        assert!(page.contains(needle), "missing {needle:?} in\n{page}");
    }
    let (s, ready) = l.get("/readyz").await;
    assert_eq!(s, StatusCode::OK, "{ready}");
    assert!(ready.contains("witness_quorum_unmet"), "{ready}");
    l.log.shutdown().await;
}

#[tokio::test]
async fn without_a_witness_policy_the_pages_are_as_before() {
    let l = Ledger::new(false);
    l.grant().await;
    l.event("w-1").await;
    let (_, page) = l.get("/checkpoints").await;
    assert!(!page.contains("Witness"), "{page}");
    let (s, page) = l.get("/proofs/inclusion?index=0").await;
    assert_eq!(s, StatusCode::OK);
    let d = proof_data(&page);
    assert!(d.get("policy").is_none(), "{d}");
    assert!(!page.contains("Witnesses"), "{page}");
    let (s, _) = l.get("/proofs/inclusion?index=0&witnessed=true").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let doc = l.health().await;
    assert!(doc.get("witnessing").is_none(), "{doc}");
    let (_, page) = l.get("/health").await;
    assert!(!page.contains("id=\"witnesses\""));
    l.log.shutdown().await;
}
