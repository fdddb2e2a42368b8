//! The log asks witnesses to cosign its checkpoints (C2SP tlog-witness),
//! off the ingest path, in rounds.
//!
//! A round takes the current head; when the tree grew since the latest
//! witnessed checkpoint, it sends every witness of the policy that has a URL
//! an `add-checkpoint` request: `old <size>` (the size that witness last
//! cosigned, as far as this process knows; 0 at first), the consistency proof
//! from that size, and the signed checkpoint. A `409` carries the witness's
//! size (`text/x.tlog.size`): the request is made again once, with a fresh
//! proof from there (how the log learns witness state after a restart). Every
//! returned cosignature is verified before it is used. When the cosignatures
//! meet the policy's quorum ([`Policy::verify`], the same function the
//! verifier runs), the note with them is stored durably
//! ([`Store::put_witnessed`]) and becomes the witnessed head; otherwise
//! nothing new is published (fail closed) and the failing witnesses, with
//! since when, are kept for `/readyz`, the metrics and the health page.
//!
//! HTTP is not this crate's: the caller gives a [`WitnessTransport`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use lineage_ledger::checkpoint::{VerifiedCheckpoint, verify_checkpoint};
use lineage_ledger::cosignature::CosignerVerifier;
use lineage_ledger::policy::{Policy, PolicyError};
use lineage_ledger::store::StoredCheckpoint;
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, ReturnedCosignature, cosigned_note,
    parse_conflict_body,
};

use crate::core::Core;
use crate::sync::{read, write};

/// A witness's answer to one `add-checkpoint` request.
#[derive(Debug, Clone)]
pub struct WitnessAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Future of one request.
pub type AnswerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WitnessAnswer, String>> + Send + 'a>>;

/// How `add-checkpoint` requests reach witnesses (HTTP, provided by the
/// server; a fake in tests). Connections should be kept alive.
pub trait WitnessTransport: Send + Sync + 'static {
    /// POSTs `body` to `<url>/add-checkpoint`; a transport error (including a
    /// timeout) as text.
    fn add_checkpoint<'a>(&'a self, url: &'a str, body: Vec<u8>) -> AnswerFuture<'a>;
}

/// Why witnessing cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessingError {
    /// The policy names no log with this log's key.
    #[error("the witness policy has no log with this ledger's key {0}")]
    NotOurLog(String),
    /// The policy has no witness that can be asked (none has a URL).
    #[error("no witness of the policy has a URL to ask")]
    NoWitnessUrl,
    /// The store failed reading the witnessed head.
    #[error(transparent)]
    Store(#[from] lineage_ledger::store::StoreError),
}

/// How one witness is doing, as the last round saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessStatus {
    /// The policy's name for it.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The size it last cosigned (or said it holds, in a 409), if known.
    pub size: Option<u64>,
    /// Unix milliseconds of its latest cosignature.
    pub last_cosigned_ms: Option<u64>,
    /// When it started failing (Unix milliseconds) and the latest failure,
    /// or `None` while it answers.
    pub failing: Option<(u64, String)>,
}

/// What the log is witnessing, for `/readyz`, metrics and the health page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessingStatus {
    /// Every askable witness.
    pub witnesses: Vec<WitnessStatus>,
    /// The latest witnessed checkpoint's size and signing time (Unix ms).
    pub witnessed: Option<(u64, u64)>,
    /// Since when (Unix ms) rounds miss the quorum, and why (the unmet
    /// groups), or `None` while they meet it.
    pub quorum_unmet: Option<(u64, String)>,
}

struct Witness {
    name: String,
    url: String,
    verifier: CosignerVerifier,
}

/// The log's witnessing state (shared; rounds run one at a time).
pub struct Witnessing {
    policy: Policy,
    witnesses: Vec<Witness>,
    status: Mutex<WitnessingStatus>,
    latest: RwLock<Option<Arc<StoredCheckpoint>>>,
    round: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Witnessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnessing")
            .field("witnesses", &self.witnesses.len())
            .finish_non_exhaustive()
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// The tree did not grow since the latest witnessed checkpoint.
    Unchanged,
    /// A checkpoint of this size met the quorum and was published.
    Published(u64),
    /// The quorum was missed; nothing was published.
    QuorumUnmet(String),
    /// The witnessed checkpoint could not be stored.
    StoreFailed(String),
}

impl Witnessing {
    /// Witnessing of `core`'s log under `policy`: the policy must name this
    /// log's key, and at least one witness must have a URL. The latest
    /// witnessed checkpoint is read from the store.
    ///
    /// # Errors
    /// [`WitnessingError`].
    pub fn new(policy: Policy, core: &Core) -> Result<Witnessing, WitnessingError> {
        let ours = core.vkey.clone();
        if !policy.logs().iter().any(|l| l.verifier().vkey() == ours) {
            return Err(WitnessingError::NotOurLog(ours));
        }
        let witnesses: Vec<Witness> = policy
            .witnesses()
            .iter()
            .filter_map(|w| {
                w.url().map(|url| Witness {
                    name: w.name().to_string(),
                    url: url.trim_end_matches('/').to_owned(),
                    verifier: w.verifier().clone(),
                })
            })
            .collect();
        if witnesses.is_empty() {
            return Err(WitnessingError::NoWitnessUrl);
        }
        // A head witnessed under another policy (a witness dropped since,
        // say) is not served as witnessed under this one: the next round
        // publishes again.
        let latest = core
            .store
            .witnessed_head()?
            .filter(|c| policy.verify(c.note.as_bytes()).is_ok())
            .map(Arc::new);
        let status = WitnessingStatus {
            witnesses: witnesses
                .iter()
                .map(|w| WitnessStatus {
                    name: w.name.clone(),
                    url: w.url.clone(),
                    size: None,
                    last_cosigned_ms: None,
                    failing: None,
                })
                .collect(),
            witnessed: latest.as_ref().map(|c| (c.size, c.time_ms)),
            quorum_unmet: None,
        };
        if let Some(c) = &latest {
            core.metrics.witnessed_tree_size.set(gauge(c.size));
        }
        Ok(Witnessing {
            policy,
            witnesses,
            status: Mutex::new(status),
            latest: RwLock::new(latest),
            round: tokio::sync::Mutex::new(()),
        })
    }

    /// The latest checkpoint that met the quorum, with its cosignatures.
    pub fn latest(&self) -> Option<Arc<StoredCheckpoint>> {
        read(&self.latest).clone()
    }

    /// The witness policy the rounds work under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How the witnesses are doing.
    pub fn status(&self) -> WitnessingStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One round (see the module docs). Rounds are serialized.
    pub async fn round(
        &self,
        core: &Arc<Core>,
        transport: &dyn WitnessTransport,
        timeout: Duration,
    ) -> RoundOutcome {
        let _one = self.round.lock().await;
        let head = core.head();
        // The first round witnesses whatever the head is, even the empty
        // tree; later ones only a tree that grew.
        if self.latest().is_some_and(|c| c.size >= head.size) {
            return RoundOutcome::Unchanged;
        }
        let verified = match verify_checkpoint(
            head.note.as_bytes(),
            &core.signer.verifier(),
            &core.config.origin,
        ) {
            Ok(v) => v,
            // Our own head always verifies; refuse to go on if it does not.
            Err(e) => return RoundOutcome::StoreFailed(format!("the head does not verify: {e}")),
        };
        let olds: Vec<Option<u64>> = self.status().witnesses.iter().map(|w| w.size).collect();
        let mut asks = Vec::new();
        for (i, w) in self.witnesses.iter().enumerate() {
            let old = olds
                .get(i)
                .copied()
                .flatten()
                .filter(|s| *s <= head.size)
                .unwrap_or(0);
            asks.push(ask(core, transport, w, &verified, &head, old, timeout));
        }
        let answers = join_all(asks).await;
        let now = crate::clock::unix_ms(core.clock.now());
        let mut cosignatures: Vec<ReturnedCosignature> = Vec::new();
        {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            for (i, (result, size)) in answers.into_iter().enumerate() {
                let Some(s) = status.witnesses.get_mut(i) else {
                    continue;
                };
                if size.is_some() {
                    s.size = size;
                }
                let label = s.name.clone();
                match result {
                    Ok(mut cs) => {
                        cosignatures.append(&mut cs);
                        s.last_cosigned_ms = Some(now);
                        s.failing = None;
                        core.metrics.witness_up(&label, true);
                    }
                    Err(why) => {
                        tracing::warn!(witness = %label, %why, "witness did not cosign");
                        let since = s.failing.as_ref().map_or(now, |(t, _)| *t);
                        s.failing = Some((since, why));
                        core.metrics.witness_up(&label, false);
                    }
                }
            }
        }
        let note = cosigned_note(&verified, &cosignatures);
        match self.policy.verify(note.as_bytes()) {
            Ok(_) => {
                let cp = StoredCheckpoint {
                    size: head.size,
                    time_ms: head.time_ms,
                    note,
                };
                let store = core.store.clone();
                let stored = cp.clone();
                match tokio::task::spawn_blocking(move || store.put_witnessed(&stored)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return RoundOutcome::StoreFailed(e.to_string()),
                    Err(e) => return RoundOutcome::StoreFailed(e.to_string()),
                }
                let size = cp.size;
                let time_ms = cp.time_ms;
                *write(&self.latest) = Some(Arc::new(cp));
                let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                status.witnessed = Some((size, time_ms));
                status.quorum_unmet = None;
                core.metrics.witnessed_tree_size.set(gauge(size));
                core.metrics.witness_rounds_published.inc();
                RoundOutcome::Published(size)
            }
            Err(e) => {
                let why = match &e {
                    PolicyError::QuorumUnmet(u) => u.to_string(),
                    other => other.to_string(),
                };
                let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                let since = status.quorum_unmet.as_ref().map_or(now, |(t, _)| *t);
                status.quorum_unmet = Some((since, why.clone()));
                core.metrics.witness_rounds_unmet.inc();
                RoundOutcome::QuorumUnmet(why)
            }
        }
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Runs every future to completion, concurrently on the current task.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// One witness's exchange: the cosignatures it returned (verified), or why
/// not; and the size it holds, when learnt.
async fn ask(
    core: &Arc<Core>,
    transport: &dyn WitnessTransport,
    w: &Witness,
    verified: &VerifiedCheckpoint,
    head: &StoredCheckpoint,
    mut old: u64,
    timeout: Duration,
) -> (Result<Vec<ReturnedCosignature>, String>, Option<u64>) {
    let mut learnt = None;
    for _attempt in 0..2 {
        let proof = if old == 0 || old == head.size {
            Vec::new()
        } else {
            let (c, size) = (core.clone(), head.size);
            match tokio::task::spawn_blocking(move || c.consistency_proof(old, size)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    return (Err(format!("consistency proof {old}..{size}: {e}")), learnt);
                }
                Err(e) => return (Err(e.to_string()), learnt),
            }
        };
        let body = match AddCheckpointRequest::new(old, proof, head.note.clone()) {
            Ok(r) => r.to_bytes(),
            Err(e) => return (Err(format!("building the request: {e}")), learnt),
        };
        let answer =
            match tokio::time::timeout(timeout, transport.add_checkpoint(&w.url, body)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => return (Err(e), learnt),
                Err(_) => return (Err(format!("no answer within {timeout:?}")), learnt),
            };
        match answer.status {
            200 => {
                let checked = AddCheckpointResponse::parse(&answer.body)
                    .map_err(|e| format!("malformed cosignature response: {e}"))
                    .and_then(|r| {
                        r.verify(verified, &w.verifier)
                            .map_err(|e| format!("cosignature does not verify: {e}"))
                    });
                if checked.is_ok() {
                    learnt = Some(head.size);
                }
                return (checked, learnt);
            }
            409 => {
                let size = match parse_conflict_body(&answer.body) {
                    Ok(s) => s,
                    Err(e) => return (Err(format!("409 without a valid size: {e}")), learnt),
                };
                learnt = Some(size);
                if size > head.size {
                    return (
                        Err(format!(
                            "the witness holds tree size {size}, larger than this log's {}: a \
                             fork or a rollback",
                            head.size
                        )),
                        learnt,
                    );
                }
                old = size;
            }
            status => {
                let text = String::from_utf8_lossy(&answer.body);
                let text: String = text.trim().chars().take(200).collect();
                return (Err(format!("HTTP {status}: {text}")), learnt);
            }
        }
    }
    (
        Err("409 twice: the witness's size moved during the round".into()),
        learnt,
    )
}

/// Runs rounds every `interval` until `stop` fires.
pub async fn run(
    witnessing: Arc<Witnessing>,
    core: Arc<Core>,
    transport: Arc<dyn WitnessTransport>,
    interval: Duration,
    timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let outcome = witnessing.round(&core, transport.as_ref(), timeout).await;
        if let RoundOutcome::QuorumUnmet(why) | RoundOutcome::StoreFailed(why) = &outcome {
            tracing::warn!(%why, "witnessing round published nothing");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
