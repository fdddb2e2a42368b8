//! Shared harness for the end-to-end tests: a real ledger (RocksDB in a
//! temporary directory) served on 127.0.0.1 on an ephemeral port, stopped by
//! the test itself, and a tiny signing client.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use lineage_api::{AppState, HttpLimits};
use lineage_ledger::checkpoint::verify_checkpoint;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::note::{NoteSigner, NoteVerifier};
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::RocksStore;
use lineage_ledger::tree::verify_inclusion;
use lineage_ledger::{Hash, leaf_hash};
use lineage_log::{Clock, LogConfig, LogService};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

pub mod binary;

pub const ORIGIN: &str = "test.lineage/log";

/// A deterministic key from a label.
pub fn key(label: &str) -> SigningKey {
    SigningKey::from_bytes(blake3::hash(label.as_bytes()).as_bytes())
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

pub struct TestLedger {
    pub url: String,
    pub log: Arc<LogService>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestLedger {
    pub async fn start(dir: &Path) -> TestLedger {
        TestLedger::start_with(dir, LogConfig::default()).await
    }

    pub async fn start_with(dir: &Path, config: LogConfig) -> TestLedger {
        TestLedger::start_with_limits(dir, config, HttpLimits::default()).await
    }

    /// Stops the server and the sequencer, releasing the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("server task");
        }
        self.log.shutdown().await;
        // The explorer's index follower holds the log only while it reads a
        // chunk: wait until nothing but this handle holds it, so that the
        // store is released when `stop` returns.
        for _ in 0..1000 {
            if Arc::strong_count(self.log.core()) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::from_vkey(&self.log.vkey).expect("vkey")
    }

    /// POSTs `body` to `/v1/entries` as JSON.
    pub async fn send(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/entries", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post")
    }

    pub async fn post_raw(&self, body: Vec<u8>) -> (u16, Value) {
        let r = self.send(body).await;
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let v: Value = r.json().await.expect("json body");
        if status >= 400 {
            assert_eq!(ct, "application/problem+json", "{v}");
        }
        (status, v)
    }

    pub async fn post(&self, env: &SignedEnvelope) -> (u16, Value) {
        self.post_raw(serde_json::to_vec(&env.to_wire()).expect("json"))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .get(format!("{}{}", self.url, path))
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (s, b) = self.get(path).await;
        (s, serde_json::from_slice(&b).expect("json"))
    }

    pub async fn size(&self) -> u64 {
        self.log.head().size
    }

    /// Grants `runtime` the key, asserting success.
    pub async fn grant(&self, runtime: &str, k: &SigningKey) -> Value {
        let (s, v) = self
            .post(&governance("grant", runtime, k, &key("authority")))
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }
}

pub fn governance(
    action: &str,
    runtime: &str,
    k: &SigningKey,
    signer: &SigningKey,
) -> SignedEnvelope {
    let payload = json!({
        "action": action,
        "runtime": runtime,
        "public_key": public_key_base64(&k.verifying_key()),
        "at": rfc3339(now()),
    });
    SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&payload).expect("json"),
        signer,
    )
}

/// An event payload.
pub fn event_payload(
    runtime: &str,
    workload: &str,
    seq: u64,
    prev: Option<&str>,
    parents: &[&str],
    kind: &str,
) -> Value {
    let mut v = json!({
        "runtime": runtime,
        "workload": workload,
        "seq": seq,
        "parents": parents,
        "kind": kind,
        "at": rfc3339(now()),
    });
    if let Some(p) = prev {
        v["prev"] = json!(p);
    }
    v
}

pub fn sign_event(payload: &Value, k: &SigningKey) -> SignedEnvelope {
    SignedEnvelope::sign(
        PayloadType::Event,
        serde_json::to_vec(payload).expect("json"),
        k,
    )
}

pub fn event_id(env: &SignedEnvelope) -> String {
    EventId::of_payload(&env.payload).to_string()
}

/// Checks a receipt the way an offline auditor would: the checkpoint's
/// signature, the inclusion proof against its root, and the envelope's
/// signature with `key`.
#[track_caller]
pub fn check_receipt(receipt: &Value, verifier: &NoteVerifier, k: &SigningKey) -> u64 {
    assert_eq!(receipt["format"], "lineage-bundle/v1");
    let cp = verify_checkpoint(
        receipt["checkpoint"]
            .as_str()
            .expect("checkpoint")
            .as_bytes(),
        verifier,
        ORIGIN,
    )
    .expect("checkpoint verifies");
    let entry = STANDARD
        .decode(receipt["entry"].as_str().expect("entry"))
        .expect("base64");
    let proof: Vec<Hash> = receipt["inclusion_proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().expect("str")).expect("hash"))
        .collect();
    let index = receipt["index"].as_u64().expect("index");
    let c = cp.checkpoint();
    verify_inclusion(&leaf_hash(&entry), index, c.size, &proof, &c.root).expect("inclusion");
    let decoded = LogEntry::decode(&entry).expect("entry decodes");
    let env = decoded.to_envelope();
    env.verify(&k.verifying_key()).expect("envelope signature");
    assert_eq!(receipt["event_id"], event_id(&env));
    index
}

impl TestLedger {
    /// Like [`TestLedger::start_with`], with the HTTP limits given (small
    /// bodies, short request timeouts) instead of the defaults.
    pub async fn start_with_limits(
        dir: &Path,
        config: LogConfig,
        limits: HttpLimits,
    ) -> TestLedger {
        TestLedger::start_with_connection_bounds(dir, config, limits, limits.request_timeout).await
    }

    /// Like [`TestLedger::start_with_limits`], with the connection bounds
    /// (idle, headers, close grace) at `connection_bounds` instead of the
    /// request timeout: a test of the idle bound then does not also race the
    /// request timeout on a loaded machine.
    pub async fn start_with_connection_bounds(
        dir: &Path,
        config: LogConfig,
        limits: HttpLimits,
        connection_bounds: Duration,
    ) -> TestLedger {
        let store = RocksStore::open(dir).expect("open store");
        let signer = NoteSigner::new(ORIGIN, key("log")).expect("signer");
        let log = LogService::start(
            Arc::new(store),
            signer,
            Authorities::new([key("authority").verifying_key()]),
            LogConfig {
                origin: ORIGIN.into(),
                ..config
            },
            Clock::System,
        )
        .expect("start log");
        let log = Arc::new(log);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let mut state = AppState::new(log.clone());
        state.limits = limits;
        // The binary's own composition: API and explorer behind one set of guards.
        let router = lineage::app(state, None);
        let server = tokio::spawn(async move {
            lineage_api::serve_with(listener, router, connection_bounds, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestLedger {
            url,
            log,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }
}
