//! The Lineage runtime client: a runtime that records its transitions
//! through this crate fails closed by construction.
//!
//! - A [`Runtime`] (a runtime ID and its signing key) opens [`Workload`]
//!   handles. A handle owns its chain (`seq`, `prev`), signs each event with
//!   the ledger's own DSSE and event-ID code, and after a restart recovers
//!   its head from the ledger ([`Runtime::open`]) instead of guessing.
//! - A call returns a [`Receipt`] only after the ledger committed the event,
//!   and only after the receipt verified here: the entry is the envelope we
//!   sent, its inclusion proof leads to a checkpoint signed by the log key
//!   this client trusts, and that checkpoint is consistent with every
//!   checkpoint this client saw before (kept in a small state file, so a
//!   ledger that forks or rewrites history is caught across restarts).
//! - Any refusal by the ledger is [`Error::Denied`] and marks the handle
//!   denied: its next call is refused locally. Transport errors, 429 and 5xx
//!   answers are retried with the identical envelope (the ledger answers an
//!   identical resubmission with the original receipt) until a deadline,
//!   then [`Error::Unavailable`]. Nothing is ever reported as recorded that
//!   was not.
//! - [`Client::watch_governance`] follows the ledger's governance stream and
//!   marks handles denied the moment a halt or revocation that stops them
//!   commits, without waiting for their next round trip.
//! - A [`Batcher`] queues signed events of many handles and submits them as
//!   arrays, for emitters of thousands of events a second.
//!
//! The crate depends on the pure ledger core (no RocksDB) and on
//! `lineage-schemas`, so client and ledger share one implementation of the
//! wire contract.

mod batch;
mod error;
mod http;
pub mod keyfile;
mod trust;
pub mod verify;
mod watch;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use batch::{BatchConfig, Batcher, PendingReceipt};
pub use ed25519_dalek::SigningKey;
pub use error::{Denial, Error};
pub use workload::{Authority, END_KIND, Head, Runtime, START_KIND, Step, Workload};

use lineage_ledger::dsse::SignedEnvelope;

/// An event's free-form attributes.
pub type Attrs = serde_json::Map<String, serde_json::Value>;

/// When a checkpoint seen in a receipt is proven consistent with the ones
/// seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Before the call that saw it returns (one consistency-proof request
    /// per new tree size): a receipt is only ever handed out on a history
    /// this client has proven linear.
    #[default]
    Strict,
    /// In a background task, in the order seen. A failure poisons the client
    /// (every later call fails [`Error::Untrusted`]) a moment after the
    /// receipts of that checkpoint were handed out.
    Background,
}

/// How a [`Client`] reaches and trusts a ledger.
#[derive(Debug, Clone)]
pub struct Config {
    /// The ledger's base URL (`http://` or `https://`).
    pub server: String,
    /// The log's verifier key (C2SP signed-note `vkey`, as `GET /v1/log`
    /// and `lineage serve` print it). `None`: trust on first use, the key the
    /// ledger serves is pinned in the state file (or, without one, for the
    /// life of the client), and a different key later is refused.
    pub log_key: Option<String>,
    /// Where the pinned log key and the latest checkpoint seen are kept
    /// (JSON, rewritten atomically). `None`: in memory only.
    pub state_file: Option<PathBuf>,
    /// PEM certificate authorities for an `https://` ledger, instead of the
    /// built-in public roots.
    pub ca_cert: Option<PathBuf>,
    /// The bearer token of a ledger started with `--read-token`: sent with
    /// every read (the log key, proofs, the governance stream), never with
    /// submissions, and never logged.
    pub read_token: Option<String>,
    /// One HTTP attempt's limit (connect, send, answer).
    pub request_timeout: Duration,
    /// How long a submission is retried (transport errors, 429, 5xx) before
    /// it fails [`Error::Unavailable`].
    pub retry_deadline: Duration,
    /// When checkpoints are proven consistent.
    pub consistency: Consistency,
}

impl Config {
    /// Defaults for `server`: trust on first use, no state file, 10 s per
    /// attempt, retries for 30 s, strict consistency.
    pub fn new(server: impl Into<String>) -> Config {
        Config {
            server: server.into(),
            log_key: None,
            state_file: None,
            ca_cert: None,
            read_token: None,
            request_timeout: Duration::from_secs(10),
            retry_deadline: Duration::from_secs(30),
            consistency: Consistency::Strict,
        }
    }
}

/// A verified receipt: the ledger committed the event, and the proof of it
/// checked out here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The event ID (lowercase hex BLAKE3 of the payload).
    pub event_id: String,
    /// The entry's leaf index.
    pub index: u64,
    /// The size of the checkpoint the inclusion proof is against.
    pub tree_size: u64,
    /// The `lineage-bundle/v1` document, as the ledger served it; checkable
    /// offline with `lineage-verify bundle`.
    pub bundle: lineage_schemas::Receipt,
}

impl Receipt {
    /// The `lineage-bundle/v1` JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(&self.bundle).unwrap_or_default()
    }
}

/// A connection to one ledger, shared by every runtime, handle and batcher
/// made from it (cheap to clone).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: http::Transport,
    trust: trust::Trust,
    registry: watch::Registry,
    consistency: Consistency,
}

impl Client {
    /// A client for `config`. Reads the state file (if any) but makes no
    /// request.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad URL, log key or CA file;
    /// [`Error::State`] for an unreadable state file, or one that pins
    /// another log key than `config.log_key`.
    pub fn new(config: Config) -> Result<Client, Error> {
        let http = http::Transport::new(&config)?;
        let trust = trust::Trust::new(config.log_key.as_deref(), config.state_file.clone())?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                trust,
                registry: watch::Registry::default(),
                consistency: config.consistency,
            }),
        })
    }

    /// A runtime that signs with `key`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `runtime` is not a runtime ID.
    pub fn runtime(&self, runtime: &str, key: SigningKey) -> Result<Runtime, Error> {
        Runtime::new(self.clone(), runtime, key)
    }

    /// An authority that signs governance statements with `key`.
    pub fn authority(&self, key: SigningKey) -> Authority {
        Authority::new(self.clone(), key)
    }

    /// The log's identity and latest checkpoint, unverified (as served).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the ledger cannot be reached in time.
    pub async fn log_info(&self) -> Result<lineage_schemas::LogInfo, Error> {
        self.inner.http.get_json("/v1/log").await
    }

    /// Submits one signed envelope and returns its verified receipt. The
    /// low-level path under [`Workload`]: no handle is marked.
    ///
    /// # Errors
    /// As [`Workload::record`].
    pub async fn submit(&self, envelope: &SignedEnvelope) -> Result<Receipt, Error> {
        self.check_trusted()?;
        let body = http::envelope_body(envelope);
        let answer = self.inner.http.submit(body).await?;
        let bundle: lineage_schemas::Receipt = answer.json()?;
        self.accept(&bundle, envelope).await
    }

    /// Submits signed envelopes as one array; one result per envelope, in
    /// order. A refusal of the whole request (or the ledger unreachable)
    /// fails every item the same way.
    ///
    /// # Errors
    /// Per item, as [`Client::submit`].
    pub async fn submit_many(&self, envelopes: &[SignedEnvelope]) -> Vec<Result<Receipt, Error>> {
        if let Err(e) = self.check_trusted() {
            return envelopes.iter().map(|_| Err(e.clone())).collect();
        }
        let body = http::array_body(envelopes);
        let items: Vec<lineage_schemas::SubmitItem> =
            match self.inner.http.submit(body).await.and_then(|a| a.json()) {
                Ok(items) => items,
                Err(e) => return envelopes.iter().map(|_| Err(e.clone())).collect(),
            };
        if items.len() != envelopes.len() {
            let e = self.poison(format!(
                "the ledger answered {} items for {} envelopes",
                items.len(),
                envelopes.len()
            ));
            return envelopes.iter().map(|_| Err(e.clone())).collect();
        }
        let mut out = Vec::with_capacity(items.len());
        for (item, env) in items.into_iter().zip(envelopes) {
            out.push(match item {
                lineage_schemas::SubmitItem::Receipt(bundle) => self.accept(&bundle, env).await,
                lineage_schemas::SubmitItem::Problem(p) => {
                    Err(Error::Denied(Box::new(Denial::from(p))))
                }
            });
        }
        out
    }

    /// Starts following the ledger's governance stream (once per client;
    /// later calls do nothing): a halt or revocation that stops a live
    /// handle marks it denied as soon as it commits. The task runs on the
    /// current tokio runtime until the last clone of this client is dropped,
    /// and reconnects where it left off when the stream breaks.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the ledger cannot be reached to learn
    /// where the stream starts.
    pub async fn watch_governance(&self) -> Result<(), Error> {
        watch::start(self).await
    }

    /// Whether the governance stream is followed and currently connected.
    pub fn watching(&self) -> bool {
        self.inner.registry.connected()
    }

    /// A batcher submitting queued events as arrays (see [`Batcher`]). Its
    /// worker runs on the current tokio runtime.
    pub fn batcher(&self, config: BatchConfig) -> Batcher {
        Batcher::new(self.clone(), config)
    }

    /// Verifies a receipt for `envelope` and proves its checkpoint
    /// consistent with the ones seen before.
    async fn accept(
        &self,
        bundle: &lineage_schemas::Receipt,
        envelope: &SignedEnvelope,
    ) -> Result<Receipt, Error> {
        let verifier = self.inner.trust.verifier(&self.inner.http).await?;
        let checked = match verify::verify_receipt(bundle, envelope, &verifier) {
            Ok(c) => c,
            Err(e) => return Err(self.poison(format!("a receipt did not verify: {e}"))),
        };
        let seen = trust::Seen::from(&checked.checkpoint);
        match self.inner.consistency {
            Consistency::Strict => {
                if let Err(e) = self.inner.trust.observe(&self.inner.http, seen).await {
                    return Err(self.fail(e));
                }
            }
            Consistency::Background if self.inner.trust.queue(&seen) => {
                let client = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.inner.trust.observe(&client.inner.http, seen).await {
                        client.fail(e);
                    }
                });
            }
            Consistency::Background => {}
        }
        Ok(Receipt {
            event_id: bundle.event_id.clone(),
            index: bundle.index,
            tree_size: checked.checkpoint.checkpoint().size,
            bundle: bundle.clone(),
        })
    }

    /// An error from proving consistency: an untrusted ledger poisons the
    /// client; an unreachable one does not (the receipt is withheld).
    fn fail(&self, e: Error) -> Error {
        match e {
            Error::Untrusted(why) => self.poison(why),
            other => other,
        }
    }

    /// Marks the ledger untrusted for the life of this client: every later
    /// call fails with the same error.
    fn poison(&self, why: String) -> Error {
        tracing::error!(%why, "lineage client: the ledger is not trusted any more");
        self.inner.registry.poison(&why);
        Error::Untrusted(why)
    }

    fn check_trusted(&self) -> Result<(), Error> {
        match self.inner.registry.poisoned() {
            Some(why) => Err(Error::Untrusted(why)),
            None => Ok(()),
        }
    }
}
