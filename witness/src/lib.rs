//! Lineage as a witness: the witness side of c2sp.org/tlog-witness, so that Lineage
//! ledgers (and any C2SP log) can be cosigned by each other.
//!
//! Layers, one way:
//! - the decision is the pure core's [`lineage_ledger::witness_protocol::decide`]:
//!   nothing here re-implements a check of the protocol;
//! - [`store`]: the witness's own RocksDB state (its identity, the log keys it trusts
//!   per origin, the latest checkpoint it cosigned per origin, and evidence), one
//!   synced write per change; [`codec`]: its on-disk values;
//! - [`Witness`]: read state, decide, store durably, cosign, under one lock per
//!   origin, so two racing requests can never both advance from the same size;
//! - [`http`]: the routes (`POST /add-checkpoint` and the read endpoints). The
//!   accept loop is the caller's (`lineage witness serve` uses the ledger's).
//!
//! What it is not: a log client (the log side, which sends `add-checkpoint`, lives in
//! `lineage-log`), nor a monitor: the monitoring endpoint serves the latest cosigned
//! checkpoint per origin, nothing more.
//!
//! Known holes: one witness key (Ed25519 `cosignature/v1`); no ML-DSA-44 cosignatures.
//! Evidence is deduplicated per signed checkpoint (origin, size, root) but not
//! otherwise bounded: only a holder of a trusted log key can add records.

pub mod codec;
pub mod http;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use ed25519_dalek::{SigningKey, VerifyingKey};
use lineage_ledger::cosignature::{CosignatureError, CosignerSigner, CosignerVerifier};
use lineage_ledger::note::NoteError;
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, Refusal, ResponseError, cosigned_note, decide,
    origin_hash,
};

pub use codec::{CosignedRecord, Evidence, EvidenceKind};
pub use store::{StoreError, WitnessStore};

/// Where a witness's timestamps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock, POSIX seconds.
    System,
    /// A fixed time, for tests.
    Fixed(u64),
}

impl Clock {
    /// Now, in POSIX seconds (at least 1: a cosignature's timestamp is never 0).
    pub fn now(self) -> u64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs().max(1)),
            Clock::Fixed(t) => t,
        }
    }
}

/// Why the witness could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The name is not a valid note key name.
    #[error("witness name {name:?} is not a valid key name: {source}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: NoteError,
    },
    /// The store failed to open, or belongs to another witness.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an `add-checkpoint` request got no cosignature.
#[derive(Debug, thiserror::Error)]
pub enum AddCheckpointError {
    /// The protocol's refusal (400, 403, 404, 409, 422): [`Refusal::status`].
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed: nothing was cosigned (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The witness could not make or check its own cosignature (500; a bug or a
    /// clock outside the cosignature's range).
    #[error("cosigning: {0}")]
    Cosign(#[from] CosignatureError),
    /// The witness's own response failed its check (500; a bug).
    #[error("own cosignature: {0}")]
    Response(#[from] ResponseError),
}

impl AddCheckpointError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            AddCheckpointError::Refused(r) => r.status(),
            AddCheckpointError::Store(_)
            | AddCheckpointError::Cosign(_)
            | AddCheckpointError::Response(_) => 500,
        }
    }
}

/// A witness: its key, its store, its clock, and a lock per origin.
#[derive(Debug)]
pub struct Witness {
    store: WitnessStore,
    signer: CosignerSigner,
    clock: Clock,
    /// One lock per origin that ever reached the critical section (known origins
    /// only: an unknown origin is refused before locking).
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Witness {
    /// Opens (creating when new) the witness store in `dir` as witness `name` with
    /// `key`; a store made under another name or key is refused.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn open(
        dir: &Path,
        name: &str,
        key: SigningKey,
        clock: Clock,
    ) -> Result<Witness, OpenError> {
        Witness::with_store(WitnessStore::open(dir)?, name, key, clock)
    }

    /// As [`Witness::open`], over a store the caller opened.
    ///
    /// # Errors
    /// [`OpenError`].
    pub fn with_store(
        store: WitnessStore,
        name: &str,
        key: SigningKey,
        clock: Clock,
    ) -> Result<Witness, OpenError> {
        let public = key.verifying_key().to_bytes();
        let signer = CosignerSigner::new(name, key).map_err(|source| OpenError::Name {
            name: name.to_owned(),
            source,
        })?;
        store.init_identity(name, public)?;
        Ok(Witness {
            store,
            signer,
            clock,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The witness's verifier key (`<name>+<key ID>+<base64(0x04 || key)>`), the
    /// `witness` line of a log's tlog-policy.
    pub fn vkey(&self) -> String {
        self.signer.verifier().vkey()
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The store (log keys are added through it).
    pub fn store(&self) -> &WitnessStore {
        &self.store
    }

    fn origin_lock(&self, origin: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(origin.to_owned()).or_default().clone()
    }

    /// Handles one `add-checkpoint` request body (c2sp.org/tlog-witness): under the
    /// origin's lock, reads the latest cosigned checkpoint, runs
    /// [`decide`], and on acceptance cosigns, stores the new state (synced) and only
    /// then returns the response. A refusal that shows the log misbehaving is kept as
    /// [`Evidence`] (synced) before it is returned. Blocking: call it off the async
    /// runtime's workers.
    ///
    /// # Errors
    /// [`AddCheckpointError`]; its [`AddCheckpointError::status`] is the answer.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<AddCheckpointResponse, AddCheckpointError> {
        let request = AddCheckpointRequest::parse(body).map_err(Refusal::Malformed)?;
        let origin = request.origin().to_owned();
        let keys = self.store.log_keys(&origin)?;
        if keys.is_empty() {
            return Err(decide(&request, &keys, None)
                .err()
                .unwrap_or(Refusal::UnknownOrigin { origin })
                .into());
        }
        // What does not depend on the stored state (the body, the origin,
        // the log's signature) is checked before the per-origin lock, so
        // forged or malformed requests cannot queue ahead of the log's.
        if let Err(r) = decide(&request, &keys, None)
            && matches!(r.status(), 400 | 403 | 404)
        {
            return Err(r.into());
        }
        let lock = self.origin_lock(&origin);
        let _serialized = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = self.store.cosigned(&origin)?;
        match decide(&request, &keys, latest.as_ref().map(|r| r.state)) {
            Ok(accepted) => {
                let now = self.clock.now();
                let line = accepted.cosign(&self.signer, now)?;
                let response = AddCheckpointResponse::new(vec![line])?;
                let returned = response.verify(accepted.checkpoint(), &self.signer.verifier())?;
                let record = CosignedRecord {
                    state: accepted.new_state(),
                    cosigned_at: now,
                    note: cosigned_note(accepted.checkpoint(), &returned),
                };
                self.store.put_cosigned(&origin, &record)?;
                Ok(response)
            }
            Err(refusal) => {
                if let Some(latest) = &latest {
                    self.keep_evidence(&origin, body, &refusal, latest)?;
                }
                Err(refusal.into())
            }
        }
    }

    /// Keeps `refusal` as evidence when it shows the log misbehaving against
    /// `latest`: a signed checkpoint of the same size with another root (whatever
    /// check refused it first), or a signed checkpoint whose proof from `latest`
    /// fails.
    fn keep_evidence(
        &self,
        origin: &str,
        body: &[u8],
        refusal: &Refusal,
        latest: &CosignedRecord,
    ) -> Result<(), StoreError> {
        let Some(signed) = refusal.signed_checkpoint() else {
            return Ok(());
        };
        let cp = signed.checkpoint();
        // Only a same-size, other-root checkpoint proves a fork by itself
        // (two log signatures). A failing consistency proof does not: the
        // proof is the requester's, and anyone can pair a public checkpoint
        // with a bad one, so keeping it would let anyone fill the store.
        let kind = if cp.size == latest.state.size && cp.root != latest.state.root {
            EvidenceKind::Fork
        } else {
            return Ok(());
        };
        let now = self.clock.now();
        let kept = self.store.put_evidence(Evidence {
            origin: origin.to_owned(),
            size: cp.size,
            root: cp.root,
            kind,
            status: refusal.status(),
            first_seen: now,
            last_seen: now,
            count: 1,
            request: body.to_vec(),
            witness_note: latest.note.clone(),
        })?;
        tracing::warn!(
            origin,
            size = cp.size,
            root = %cp.root,
            witness_size = latest.state.size,
            witness_root = %latest.state.root,
            kind = ?kind,
            count = kept.count,
            "refused a checkpoint that conflicts with the one this witness cosigned; kept as evidence"
        );
        Ok(())
    }

    /// What the witness knows, for the status endpoint.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn status(&self) -> Result<Status, StoreError> {
        Status::read(&self.store)
    }

    /// The latest cosigned note of the origin whose [`origin_hash`] is `hash`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn cosigned_by_origin_hash(&self, hash: &str) -> Result<Option<String>, StoreError> {
        for (origin, _) in self.store.logs()? {
            if origin_hash(&origin) == hash {
                return Ok(self.store.cosigned(&origin)?.map(|r| r.note));
            }
        }
        Ok(None)
    }
}

/// One log a witness knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogStatus {
    /// Its origin.
    pub origin: String,
    /// SHA-256 of the origin, hex: the monitoring path `/<origin_hash>/checkpoint`.
    pub origin_hash: String,
    /// The log keys trusted for it.
    pub vkeys: Vec<String>,
    /// The size of the latest checkpoint cosigned (absent: none yet).
    pub size: Option<u64>,
    /// Its root, base64.
    pub root: Option<String>,
    /// When it was cosigned, POSIX seconds.
    pub cosigned_at: Option<u64>,
}

/// What a witness knows: its identity, its logs, how much evidence it keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The witness's name.
    pub name: String,
    /// Its verifier key.
    pub vkey: String,
    /// The logs it knows, by origin.
    pub logs: Vec<LogStatus>,
    /// Evidence records kept.
    pub evidence: usize,
}

impl Status {
    /// Reads the status from a store (a read-only one works while the witness runs).
    ///
    /// # Errors
    /// [`StoreError::Uninitialised`] for a store without identity; others.
    pub fn read(store: &WitnessStore) -> Result<Status, StoreError> {
        let (name, key) = store.identity()?.ok_or(StoreError::Uninitialised)?;
        let corrupt = |source| StoreError::Corrupt {
            what: "witness identity",
            source,
        };
        let key =
            VerifyingKey::from_bytes(&key).map_err(|_| corrupt(codec::CodecError::InvalidVkey))?;
        let vkey = CosignerVerifier::new(&name, key)
            .map_err(|_| corrupt(codec::CodecError::InvalidVkey))?
            .vkey();
        let mut logs = Vec::new();
        for (origin, vkeys) in store.logs()? {
            let cosigned = store.cosigned(&origin)?;
            logs.push(LogStatus {
                origin_hash: origin_hash(&origin),
                vkeys,
                size: cosigned.as_ref().map(|c| c.state.size),
                root: cosigned.as_ref().map(|c| c.state.root.to_base64()),
                cosigned_at: cosigned.as_ref().map(|c| c.cosigned_at),
                origin,
            });
        }
        Ok(Status {
            name,
            vkey,
            logs,
            evidence: store.evidence()?.len(),
        })
    }
}
