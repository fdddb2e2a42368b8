//! The witness over real sockets (127.0.0.1, ephemeral port): hand-made
//! `add-checkpoint` requests covering every status c2sp.org/tlog-witness assigns,
//! racing requests, a restart, and a fork kept as evidence.

use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use lineage_ledger::checkpoint::{
    Checkpoint, VerifiedCheckpoint, sign_checkpoint, verify_checkpoint,
};
use lineage_ledger::cosignature::CosignerVerifier;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::policy::Policy;
use lineage_ledger::tree::{MemNodes, prove_consistency, root};
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, TLOG_SIZE_CONTENT_TYPE, origin_hash,
    parse_conflict_body,
};
use lineage_ledger::{Hash, leaf_hash};
use lineage_witness::{Clock, OpenError, StoreError, Witness, http};

const ORIGIN: &str = "example.com/witnessed-log";
const WITNESS: &str = "witness.example/lineage";
const T: u64 = 1_700_000_000;

fn log_signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[7; 32])).expect("name")
}

fn witness_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// A tree whose leaf i is `prefix` and i; two prefixes sharing the first `shared`
/// leaves make two histories of one log that diverge there.
fn tree(prefix: &str, shared: u64, size: u64) -> MemNodes {
    MemNodes::new(
        (0..size)
            .map(|i| {
                let p = if i < shared { "a" } else { prefix };
                leaf_hash(format!("{p}{i}").as_bytes())
            })
            .collect(),
    )
}

struct Log {
    nodes: MemNodes,
    signer: NoteSigner,
}

impl Log {
    fn honest() -> Log {
        Log {
            nodes: tree("a", 64, 64),
            signer: log_signer(),
        }
    }

    /// The same log key, another history from leaf `shared` on.
    fn forked(shared: u64) -> Log {
        Log {
            nodes: tree("b", shared, 64),
            signer: log_signer(),
        }
    }

    fn root(&self, size: u64) -> Hash {
        root(size, &self.nodes).expect("root")
    }

    fn note(&self, size: u64) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: self.root(size),
            extensions: vec![],
        };
        sign_checkpoint(&cp, &self.signer).expect("signs")
    }

    fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        if old == 0 {
            return vec![];
        }
        prove_consistency(old, new, &self.nodes).expect("proof")
    }

    fn request(&self, old: u64, new: u64) -> Vec<u8> {
        AddCheckpointRequest::new(old, self.proof(old, new), self.note(new))
            .expect("request")
            .to_bytes()
    }
}

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    witness: std::sync::Weak<Witness>,
    dir: std::path::PathBuf,
}

impl Server {
    async fn start(witness: Witness) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dir = witness.store().path().to_path_buf();
        let witness = Arc::new(witness);
        let weak = Arc::downgrade(&witness);
        let router = http::router(witness, std::time::Duration::from_secs(10));
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Server {
            url,
            stop: Some(stop),
            task,
            witness: weak,
            dir,
        }
    }

    /// Stops the server and waits until the witness (and its store) is dropped.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task");
        // The connection tasks drop their router clones just after the server
        // returns; the store (and its directory lock) goes with the last one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.witness.strong_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the witness was never dropped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // The count reaches zero before the witness's drop (which closes
        // RocksDB and frees the directory lock) has finished, on whichever
        // thread dropped it last: wait until the store opens for writing.
        loop {
            match lineage_witness::WitnessStore::open(&self.dir) {
                Ok(_) => return,
                Err(e) => assert!(
                    std::time::Instant::now() < deadline,
                    "the store stayed locked: {e}"
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

fn open(dir: &Path) -> Witness {
    Witness::open(dir, WITNESS, witness_key(), Clock::Fixed(T)).expect("open")
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Answer {
    let r = client
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .expect("request");
    Answer {
        status: r.status().as_u16(),
        content_type: r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: r.bytes().await.expect("body").to_vec(),
    }
}

fn verified(log: &Log, size: u64) -> VerifiedCheckpoint {
    verify_checkpoint(log.note(size).as_bytes(), &log.signer.verifier(), ORIGIN).expect("verifies")
}

#[track_caller]
fn check_cosigned(answer: &Answer, log: &Log, size: u64, witness: &CosignerVerifier) {
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        answer.content_type.starts_with("text/plain"),
        "{}",
        answer.content_type
    );
    let response = AddCheckpointResponse::parse(&answer.body).expect("response parses");
    let returned = response
        .verify(&verified(log, size), witness)
        .expect("cosignature verifies");
    assert_eq!(returned[0].timestamp(), T);
}

#[track_caller]
fn check_conflict(answer: &Answer, size: u64) {
    assert_eq!(
        answer.status,
        409,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, TLOG_SIZE_CONTENT_TYPE);
    assert_eq!(parse_conflict_body(&answer.body), Ok(size));
}

#[track_caller]
fn check_status(answer: &Answer, status: u16) {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_of_the_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = open(dir.path());
    let vkey = CosignerVerifier::from_vkey(&witness.vkey()).expect("vkey");
    let log = Log::honest();
    let server = Server::start(witness).await;
    let client = reqwest::Client::new();
    let url = &server.url;

    // 404: the origin is unknown (no log key added yet).
    check_status(&post(&client, url, log.request(0, 5)).await, 404);

    // Add the log's key as `lineage witness add-log` does, with the witness stopped
    // (the store is one process's): a restart in passing.
    let server = {
        server.stop().await;
        let witness = open(dir.path());
        assert!(
            witness
                .store()
                .add_log_key(ORIGIN, &log.signer.verifier().vkey())
                .expect("adds")
        );
        Server::start(witness).await
    };
    let url = &server.url;

    // 200 from 0, then from the size the witness holds.
    check_cosigned(&post(&client, url, log.request(0, 5)).await, &log, 5, &vkey);
    // 409: a stale old size; the body says the witness's size.
    check_conflict(&post(&client, url, log.request(0, 8)).await, 5);
    check_conflict(&post(&client, url, log.request(3, 8)).await, 5);
    check_cosigned(&post(&client, url, log.request(5, 8)).await, &log, 8, &vkey);
    // The same checkpoint again: no growth, still consistent, cosigned.
    check_cosigned(&post(&client, url, log.request(8, 8)).await, &log, 8, &vkey);

    // 422: a proof that does not verify from the witness's checkpoint.
    let good = AddCheckpointRequest::parse(&log.request(8, 13)).expect("parses");
    let mut proof = good.proof().to_vec();
    proof[0] = leaf_hash(b"tampered");
    let tampered = AddCheckpointRequest::new(8, proof, good.checkpoint_note().into())
        .expect("request")
        .to_bytes();
    check_status(&post(&client, url, tampered).await, 422);

    // 403: a checkpoint signed by another key under the log's name, and the log's
    // own signature broken.
    let stranger = Log {
        nodes: tree("a", 64, 64),
        signer: NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[8; 32])).expect("name"),
    };
    check_status(&post(&client, url, stranger.request(8, 13)).await, 403);
    let mut broken = log.request(8, 13);
    let at = broken.len() - 10;
    broken[at] = if broken[at] == b'A' { b'B' } else { b'A' };
    check_status(&post(&client, url, broken).await, 403);

    // 400: not a request; an old size above the checkpoint's.
    check_status(&post(&client, url, b"hello\n".to_vec()).await, 400);
    check_status(&post(&client, url, b"old 01\n\nx\n".to_vec()).await, 400);
    let above = AddCheckpointRequest::new(20, vec![], log.note(13))
        .expect("request")
        .to_bytes();
    check_status(&post(&client, url, above).await, 400);

    // Not part of the spec's list, but HTTP: a body over the limit, a GET.
    check_status(
        &post(&client, url, vec![b'x'; http::MAX_REQUEST_BYTES + 1]).await,
        413,
    );
    let get = client
        .get(format!("{url}/add-checkpoint"))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 405);

    // None of the refusals moved the witness: it still holds 8.
    check_conflict(&post(&client, url, log.request(0, 13)).await, 8);
    check_cosigned(
        &post(&client, url, log.request(8, 13)).await,
        &log,
        13,
        &vkey,
    );

    // The monitoring endpoint serves the cosigned checkpoint: a policy that needs
    // this witness accepts it.
    let note = client
        .get(format!("{url}/{}/checkpoint", origin_hash(ORIGIN)))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let policy = Policy::parse(
        format!(
            "log {}\nwitness w {}\nquorum w\n",
            log.signer.verifier().vkey(),
            vkey.vkey()
        )
        .as_bytes(),
    )
    .expect("policy");
    let evaluation = policy.verify(note.as_bytes()).expect("quorum met");
    assert_eq!(evaluation.checkpoint().checkpoint().size, 13);
    let missing = client
        .get(format!("{url}/{}/checkpoint", origin_hash("nope")))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status().as_u16(), 404);

    // Status: the log, its key and size.
    let status: serde_json::Value = client
        .get(format!("{url}/status"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(status["name"], WITNESS);
    assert_eq!(status["vkey"], vkey.vkey());
    assert_eq!(status["logs"][0]["origin"], ORIGIN);
    assert_eq!(status["logs"][0]["size"], 13);
    assert_eq!(status["logs"][0]["cosigned_at"], T);
    // A tampered proof proves nothing about the log (the proof is the
    // requester's): refused, not kept.
    assert_eq!(status["evidence"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_from_one_size_advance_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = open(dir.path());
    let log = Log::honest();
    witness
        .store()
        .add_log_key(ORIGIN, &log.signer.verifier().vkey())
        .expect("adds");
    let vkey = CosignerVerifier::from_vkey(&witness.vkey()).expect("vkey");
    let server = Server::start(witness).await;
    let client = reqwest::Client::new();
    check_cosigned(
        &post(&client, &server.url, log.request(0, 4)).await,
        &log,
        4,
        &vkey,
    );

    for round in 0..5u64 {
        let from = 4 + round * 10;
        // Ten requests from the same size, to ten different sizes, at once.
        let tasks: Vec<_> = (1..=10u64)
            .map(|k| {
                let (client, url, body) = (
                    client.clone(),
                    server.url.clone(),
                    log.request(from, from + k),
                );
                tokio::spawn(async move { post(&client, &url, body).await })
            })
            .collect();
        let mut won = Vec::new();
        let mut conflicts = Vec::new();
        for (k, task) in (1..=10u64).zip(tasks) {
            let answer = task.await.expect("task");
            match answer.status {
                200 => won.push(from + k),
                409 => conflicts.push(parse_conflict_body(&answer.body).expect("size")),
                s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&answer.body)),
            }
        }
        assert_eq!(won.len(), 1, "exactly one request advances: {won:?}");
        assert_eq!(conflicts.len(), 9);
        // Every loser was told the winner's size or the size it raced from, never
        // a size that rolled back.
        assert!(
            conflicts.iter().all(|s| *s == won[0]),
            "{conflicts:?} vs {won:?}"
        );
        // The witness holds the winner's size; advance the next round from there.
        check_conflict(
            &post(&client, &server.url, log.request(0, 63)).await,
            won[0],
        );
        let winner = won[0];
        if winner != from + 10 {
            check_cosigned(
                &post(&client, &server.url, log.request(winner, from + 10)).await,
                &log,
                from + 10,
                &vkey,
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_state_and_the_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::honest();
    let witness = open(dir.path());
    witness
        .store()
        .add_log_key(ORIGIN, &log.signer.verifier().vkey())
        .expect("adds");
    let vkey = CosignerVerifier::from_vkey(&witness.vkey()).expect("vkey");
    let server = Server::start(witness).await;
    let client = reqwest::Client::new();
    check_cosigned(
        &post(&client, &server.url, log.request(0, 9)).await,
        &log,
        9,
        &vkey,
    );
    server.stop().await;

    let server = Server::start(open(dir.path())).await;
    check_conflict(&post(&client, &server.url, log.request(0, 12)).await, 9);
    check_cosigned(
        &post(&client, &server.url, log.request(9, 12)).await,
        &log,
        12,
        &vkey,
    );
    server.stop().await;

    // Another key or name for the same store is refused: the state is this
    // witness's, never re-keyed.
    let other_key = Witness::open(
        dir.path(),
        WITNESS,
        SigningKey::from_bytes(&[1; 32]),
        Clock::System,
    );
    assert!(matches!(
        other_key,
        Err(OpenError::Store(StoreError::IdentityMismatch { .. }))
    ));
    let other_name = Witness::open(
        dir.path(),
        "witness.example/other",
        witness_key(),
        Clock::System,
    );
    assert!(matches!(
        other_name,
        Err(OpenError::Store(StoreError::IdentityMismatch { .. }))
    ));
    // The read-only view sees the stored size.
    let store = lineage_witness::WitnessStore::open_read_only(dir.path()).expect("read-only");
    let status = lineage_witness::Status::read(&store).expect("status");
    assert_eq!(status.logs[0].size, Some(12));
    assert_eq!(status.vkey, vkey.vkey());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_is_refused_and_kept_as_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let honest = Log::honest();
    // Same key; the histories share 3 leaves, then diverge.
    let forked = Log::forked(3);
    assert_ne!(honest.root(6), forked.root(6));
    let witness = open(dir.path());
    witness
        .store()
        .add_log_key(ORIGIN, &honest.signer.verifier().vkey())
        .expect("adds");
    let vkey = CosignerVerifier::from_vkey(&witness.vkey()).expect("vkey");
    let server = Server::start(witness).await;
    let url = &server.url;
    let client = reqwest::Client::new();
    check_cosigned(
        &post(&client, url, honest.request(0, 6)).await,
        &honest,
        6,
        &vkey,
    );

    // The forked view at the witness's size: 422 (tlog-witness v1.1: same size,
    // another root), kept as a fork.
    let same_size = forked.request(6, 6);
    check_status(&post(&client, url, same_size.clone()).await, 422);
    // Sent again (a log retrying): one record, counted twice.
    check_status(&post(&client, url, same_size.clone()).await, 422);
    // From a stale old size: 409 first, but the signed checkpoint still proves the
    // fork, so it is kept too (same record: same origin, size and root).
    check_conflict(&post(&client, url, forked.request(0, 6)).await, 6);
    // The forked view grown, with its own honest-looking proof from 6: 422, and
    // not kept (a failing proof alone proves no fork: anyone could send one).
    check_status(&post(&client, url, forked.request(6, 10)).await, 422);
    // The honest log is still cosigned.
    check_cosigned(
        &post(&client, url, honest.request(6, 10)).await,
        &honest,
        10,
        &vkey,
    );

    let evidence: serde_json::Value = client
        .get(format!("{url}/evidence"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let list = evidence.as_array().expect("array");
    assert_eq!(list.len(), 1, "{evidence:#}");
    let fork = list
        .iter()
        .find(|e| e["kind"] == "fork")
        .expect("a fork record");
    assert_eq!(fork["size"], 6);
    assert_eq!(fork["status"], 422);
    assert_eq!(fork["count"], 3);
    assert_eq!(fork["root"], forked.root(6).to_base64());
    assert_eq!(fork["request"], String::from_utf8(same_size).expect("utf8"));
    // The record proves the fork by itself: two notes signed by the log's key, same
    // size, different roots, one of them cosigned by this witness.
    let request = AddCheckpointRequest::parse(fork["request"].as_str().expect("str").as_bytes())
        .expect("parses");
    let theirs = verify_checkpoint(
        request.checkpoint_note().as_bytes(),
        &honest.signer.verifier(),
        ORIGIN,
    )
    .expect("log-signed");
    let policy = Policy::parse(
        format!(
            "log {}\nwitness w {}\nquorum w\n",
            honest.signer.verifier().vkey(),
            vkey.vkey()
        )
        .as_bytes(),
    )
    .expect("policy");
    let ours = policy
        .verify(fork["witness_note"].as_str().expect("str").as_bytes())
        .expect("cosigned by this witness");
    assert_eq!(
        theirs.checkpoint().size,
        ours.checkpoint().checkpoint().size
    );
    assert_ne!(
        theirs.checkpoint().root,
        ours.checkpoint().checkpoint().root
    );

    server.stop().await;

    // Evidence survives a restart.
    let store = lineage_witness::WitnessStore::open_read_only(dir.path()).expect("read-only");
    assert_eq!(store.evidence().expect("evidence").len(), 1);
}
