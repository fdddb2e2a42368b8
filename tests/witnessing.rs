//! The log asks witnesses to cosign (C2SP tlog-witness), over sockets:
//! three witnesses (each a faithful C2SP witness built on the ledger's own
//! `witness_protocol::decide`, cosigning with its own key) and a 2-of-3
//! policy. Rounds publish cosigned checkpoints at `/checkpoint`, receipts
//! upgrade to them (JSON and tlog-proof), one witness down keeps
//! publishing, two down stops it while ingest goes on, and a restarted
//! log learns a witness's size from its 409.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use ed25519_dalek::SigningKey;
use lineage_ledger::cosignature::CosignerSigner;
use lineage_ledger::entry::LogEntry;
use lineage_ledger::leaf_hash;
use lineage_ledger::policy::Policy;
use lineage_ledger::tlog_proof::TlogProof;
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, CosignedState, conflict_body, decide,
};
use lineage_log::witnessing::{
    AnswerFuture, RoundOutcome, WitnessAnswer, WitnessTransport, Witnessing,
};
use serde_json::Value;

/// A witness: its state for our origin, and a server task.
struct Witness {
    name: String,
    url: String,
    vkey: String,
    state: Arc<Mutex<Option<CosignedState>>>,
    requests: Arc<AtomicU32>,
    server: tokio::task::JoinHandle<()>,
}

async fn witness(name: &str, log_vkey: &str) -> Witness {
    let signer = Arc::new(
        CosignerSigner::new(&format!("{name}.example/witness"), key(name)).expect("cosigner"),
    );
    let vkey = signer.verifier().vkey();
    let log = lineage_ledger::note::NoteVerifier::from_vkey(log_vkey).expect("log vkey");
    let state: Arc<Mutex<Option<CosignedState>>> = Arc::default();
    let requests = Arc::new(AtomicU32::new(0));
    let (st, rq) = (state.clone(), requests.clone());
    let add = move |body: axum::body::Bytes| {
        let (signer, log, st, rq) = (signer.clone(), log.clone(), st.clone(), rq.clone());
        async move {
            rq.fetch_add(1, Ordering::SeqCst);
            let request = match AddCheckpointRequest::parse(&body) {
                Ok(r) => r,
                Err(e) => return (400, "text/plain", e.to_string().into_bytes()),
            };
            let mut state = st.lock().expect("state");
            match decide(&request, std::slice::from_ref(&log), *state) {
                Ok(accepted) => {
                    *state = Some(accepted.new_state());
                    let line = accepted.cosign(&signer, 1_700_000_000).expect("cosign");
                    let r = AddCheckpointResponse::new(vec![line]).expect("response");
                    (200, "text/plain", r.to_bytes())
                }
                Err(refusal) => match refusal.conflict_size() {
                    Some(size) => (409, "text/x.tlog.size", conflict_body(size).into_bytes()),
                    None => (
                        refusal.status(),
                        "text/plain",
                        refusal.to_string().into_bytes(),
                    ),
                },
            }
        }
    };
    let app = axum::Router::new().route(
        "/add-checkpoint",
        axum::routing::post(move |body| {
            let add = add.clone();
            async move {
                let (status, ct, body) = add(body).await;
                (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    [(axum::http::header::CONTENT_TYPE, ct)],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Witness {
        name: name.to_owned(),
        url,
        vkey,
        state,
        requests,
        server,
    }
}

struct Http(reqwest::Client);

impl WitnessTransport for Http {
    fn add_checkpoint<'a>(&'a self, url: &'a str, body: Vec<u8>) -> AnswerFuture<'a> {
        Box::pin(async move {
            let r = self
                .0
                .post(format!("{url}/add-checkpoint"))
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            Ok(WitnessAnswer {
                status,
                body: r.bytes().await.map_err(|e| e.to_string())?.to_vec(),
            })
        })
    }
}

fn policy(log_vkey: &str, ws: &[&Witness]) -> Policy {
    let mut text = format!("log {log_vkey}\n");
    for w in ws {
        text.push_str(&format!("witness {} {} {}\n", w.name, w.vkey, w.url));
    }
    let names: Vec<&str> = ws.iter().map(|w| w.name.as_str()).collect();
    text.push_str(&format!("group main 2 {}\nquorum main\n", names.join(" ")));
    Policy::parse(text.as_bytes()).expect("policy")
}

async fn event(l: &TestLedger, rt: &str, workload: &str) -> String {
    let env = sign_event(
        &event_payload(rt, workload, 0, None, &[], "workload.start"),
        &key(rt),
    );
    let (s, v) = l.post(&env).await;
    assert_eq!(s, 201, "{v}");
    v["event_id"].as_str().expect("id").to_owned()
}

async fn get(l: &TestLedger, path: &str, accept: Option<&str>) -> (u16, Option<String>, String) {
    let mut r = l.client.get(format!("{}{path}", l.url));
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    let r = r.send().await.expect("get");
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (r.status().as_u16(), retry, r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_publish_cosigned_checkpoints_and_a_quorum_loss_stops_only_that() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    let vkey = l.log.vkey.clone();
    let ws = [
        witness("w1", &vkey).await,
        witness("w2", &vkey).await,
        witness("w3", &vkey).await,
    ];
    let policy_of = || policy(&vkey, &[&ws[0], &ws[1], &ws[2]]);
    let core = l.log.core().clone();
    let w = Arc::new(Witnessing::new(policy_of(), &core).expect("witnessing"));
    l.log.set_witnessing(w.clone()).expect("once");
    let http = Http(reqwest::Client::new());
    let timeout = Duration::from_secs(2);

    // Nothing witnessed yet: /checkpoint says when to come back.
    let (status, retry, _) = get(&l, "/checkpoint", None).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    // The empty tree is witnessed too (a new log has a witnessed head at once).
    assert_eq!(
        w.round(&core, &http, timeout).await,
        RoundOutcome::Published(0)
    );
    l.grant("agent/w", &key("agent/w")).await;
    let first = event(&l, "agent/w", "w-1").await;
    let (status, retry, _) = get(
        &l,
        &format!("/v1/events/{first}/receipt?witnessed=true"),
        None,
    )
    .await;
    assert_eq!((status, retry.as_deref()), (202, Some("1")));

    let size = l.size().await;
    assert_eq!(
        w.round(&core, &http, timeout).await,
        RoundOutcome::Published(size)
    );
    assert_eq!(
        w.round(&core, &http, timeout).await,
        RoundOutcome::Unchanged
    );
    let (status, _, note) = get(&l, "/checkpoint", None).await;
    assert_eq!(status, 200);
    let evaluation = policy_of()
        .verify(note.as_bytes())
        .expect("meets the quorum");
    assert_eq!(evaluation.cosignatures().len(), 3);
    let (_, _, at_size) = get(&l, &format!("/v1/checkpoints/{size}"), None).await;
    assert_eq!(at_size, note);

    // The receipt, upgraded: JSON and tlog-proof.
    let (status, _, body) = get(
        &l,
        &format!("/v1/events/{first}/receipt?witnessed=true"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let receipt: Value = serde_json::from_str(&body).expect("json");
    check_receipt(&receipt, &l.verifier(), &key("agent/w"));
    policy_of()
        .verify(receipt["checkpoint"].as_str().expect("cp").as_bytes())
        .expect("the receipt's checkpoint is witnessed");
    let (status, _, text) = get(
        &l,
        &format!("/v1/events/{first}/receipt?witnessed=true"),
        Some("text/x.tlog.proof"),
    )
    .await;
    assert_eq!(status, 200);
    let proof = TlogProof::parse(text.as_bytes()).expect("a tlog-proof");
    let entry = proof.extra().expect("the entry").to_vec();
    assert_eq!(
        STANDARD.encode(&entry),
        receipt["entry"].as_str().expect("entry")
    );
    LogEntry::decode(&entry).expect("a log entry");
    proof
        .verify_with_policy(&leaf_hash(&entry), &policy_of())
        .expect("verifies under the policy");
    // The auditor's verifier agrees, on both forms, and a quorum it does
    // not meet fails it.
    let policy = lineage_verify::witnesses::WitnessPolicy {
        policy: policy_of(),
        freshness: None,
    };
    let log_key = l.verifier();
    let runtime_keys = [key("agent/w").verifying_key()];
    let opts = lineage_verify::receipt::ReceiptOptions {
        log_key: &log_key,
        runtime_keys: &runtime_keys,
        authorities: &[],
        allow_unknown_signer: false,
        witnesses: Some(&policy),
    };
    for form in [body.as_bytes(), text.as_bytes()] {
        let report = lineage_verify::receipt::verify_receipt(form, &opts);
        assert_eq!(
            report.verdict(),
            lineage_verify::report::Verdict::Verified,
            "{:?}",
            report.checks
        );
    }
    let strict = lineage_verify::witnesses::WitnessPolicy {
        policy: Policy::parse(
            format!(
                "log {vkey}\nwitness w1 {} {}\nwitness x {} \ngroup all2 all w1 x\nquorum all2\n",
                ws[0].vkey,
                ws[0].url,
                CosignerSigner::new("x.example/witness", key("x"))
                    .expect("cosigner")
                    .verifier()
                    .vkey()
            )
            .as_bytes(),
        )
        .expect("policy"),
        freshness: None,
    };
    let report = lineage_verify::receipt::verify_receipt(
        text.as_bytes(),
        &lineage_verify::receipt::ReceiptOptions {
            witnesses: Some(&strict),
            ..opts
        },
    );
    assert_ne!(report.verdict(), lineage_verify::report::Verdict::Verified);

    // One witness down: 2 of 3 still publish.
    ws[2].server.abort();
    let second = event(&l, "agent/w", "w-2").await;
    let size2 = l.size().await;
    assert_eq!(
        w.round(&core, &http, timeout).await,
        RoundOutcome::Published(size2)
    );
    // Two down: nothing new is published; ingest goes on.
    ws[1].server.abort();
    let third = event(&l, "agent/w", "w-3").await;
    let outcome = w.round(&core, &http, timeout).await;
    assert!(
        matches!(&outcome, RoundOutcome::QuorumUnmet(why) if why.contains("main has 1 of 2")),
        "{outcome:?}"
    );
    let (_, _, note) = get(&l, "/checkpoint", None).await;
    assert_eq!(
        policy_of()
            .verify(note.as_bytes())
            .expect("quorum")
            .checkpoint()
            .checkpoint()
            .size,
        size2
    );
    let (status, retry, _) = get(
        &l,
        &format!("/v1/events/{third}/receipt?witnessed=true"),
        None,
    )
    .await;
    assert_eq!((status, retry.as_deref()), (202, Some("1")));
    let (status, _, _) = get(
        &l,
        &format!("/v1/events/{second}/receipt?witnessed=true"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, ready) = get(&l, "/readyz", None).await;
    assert_eq!(status, 200, "ingest is unaffected: {ready}");
    assert!(
        ready.contains("witness_quorum_unmet since") && ready.contains("witness_failing: w2"),
        "{ready}"
    );
    let (_, _, metrics) = get(&l, "/metrics", None).await;
    assert!(
        metrics.contains("lineage_witness_up{witness=\"w2\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("lineage_witnessed_tree_size {size2}")),
        "{metrics}"
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_log_learns_each_witness_size_from_its_409() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(&dir.path().join("ledger")).await;
    let vkey = l.log.vkey.clone();
    let ws = [witness("a", &vkey).await, witness("b", &vkey).await];
    let text = format!(
        "log {vkey}\nwitness a {} {}\nwitness b {} {}\ngroup both all a b\nquorum both\n",
        ws[0].vkey, ws[0].url, ws[1].vkey, ws[1].url
    );
    let core = l.log.core().clone();
    let http = Http(reqwest::Client::new());
    let timeout = Duration::from_secs(2);
    l.grant("agent/r", &key("agent/r")).await;
    let first = Witnessing::new(Policy::parse(text.as_bytes()).expect("policy"), &core).expect("w");
    let size = l.size().await;
    assert_eq!(
        first.round(&core, &http, timeout).await,
        RoundOutcome::Published(size)
    );
    event(&l, "agent/r", "r-1").await;
    // A new process: it knows no witness size, so it sends `old 0`; each
    // witness answers 409 with its size and the retry carries a proof.
    let again = Witnessing::new(Policy::parse(text.as_bytes()).expect("policy"), &core).expect("w");
    assert_eq!(
        again.latest().map(|c| c.size),
        Some(size),
        "the witnessed head was stored"
    );
    let before: Vec<u32> = ws
        .iter()
        .map(|w| w.requests.load(Ordering::SeqCst))
        .collect();
    let size2 = l.size().await;
    assert_eq!(
        again.round(&core, &http, timeout).await,
        RoundOutcome::Published(size2)
    );
    for (w, b) in ws.iter().zip(before) {
        assert_eq!(
            w.requests.load(Ordering::SeqCst) - b,
            2,
            "a 409, then the retry"
        );
        assert_eq!(w.state.lock().expect("state").map(|s| s.size), Some(size2));
    }
    // A stored witnessed head that the policy now in force does not accept
    // (a witness replaced) is not served as witnessed: the next round
    // publishes again.
    let third = witness("c", &vkey).await;
    let replaced = format!(
        "log {vkey}\nwitness a {} {}\nwitness c {} {}\ngroup both all a c\nquorum both\n",
        ws[0].vkey, ws[0].url, third.vkey, third.url
    );
    let under_new =
        Witnessing::new(Policy::parse(replaced.as_bytes()).expect("policy"), &core).expect("w");
    assert_eq!(under_new.latest(), None);
    assert_eq!(
        under_new.round(&core, &http, timeout).await,
        RoundOutcome::Published(size2)
    );
    // A policy that does not name this log is refused at start.
    let other = SigningKey::from_bytes(&[7; 32]);
    let stranger = lineage_ledger::note::NoteSigner::new(ORIGIN, other)
        .expect("signer")
        .verifier()
        .vkey();
    let wrong = text.replace(&vkey, &stranger);
    assert!(Witnessing::new(Policy::parse(wrong.as_bytes()).expect("policy"), &core).is_err());
    l.stop().await;
}
