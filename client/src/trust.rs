//! What this client trusts: the log key (configured, or pinned on first
//! use) and the latest checkpoint it has seen, which every later checkpoint
//! must be consistent with. Both live in the state file, so the guarantee
//! survives restarts:
//!
//! ```json
//! {"format": "lineage-client-state/v1",
//!  "log_key": "<C2SP vkey>",
//!  "checkpoint": "<signed note text of the latest checkpoint seen>",
//!  "fork_evidence": ["<note>", "<note>"]}
//! ```
//!
//! `fork_evidence` appears only once two signed checkpoints were seen that
//! cannot both be true (same size and different roots, or a consistency
//! proof that fails): the pair is kept for an auditor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lineage_ledger::Hash;
use lineage_ledger::checkpoint::{VerifiedCheckpoint, verify_checkpoint};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::tree::verify_consistency;
use lineage_schemas::ConsistencyProofResponse;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use crate::Error;
use crate::http::Transport;
use crate::verify::decode_proof;

const STATE_FORMAT: &str = "lineage-client-state/v1";

/// A checkpoint whose signature verified.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    size: u64,
    root: Hash,
    note: String,
}

impl From<&VerifiedCheckpoint> for Seen {
    fn from(c: &VerifiedCheckpoint) -> Seen {
        Seen {
            size: c.checkpoint().size,
            root: c.checkpoint().root,
            note: c.note_text().to_owned(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: String,
    log_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fork_evidence: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Trust {
    log_key: OnceCell<Arc<NoteVerifier>>,
    state_file: Option<PathBuf>,
    latest: Mutex<Latest>,
    /// The last checkpoint handed to a background check: the receipts of
    /// one batch share it, and one check covers them all.
    queued: std::sync::Mutex<Option<(u64, Hash)>>,
}

#[derive(Debug, Default)]
struct Latest {
    seen: Option<Seen>,
    fork_evidence: Vec<String>,
}

impl Trust {
    pub(crate) fn new(
        configured: Option<&str>,
        state_file: Option<PathBuf>,
    ) -> Result<Trust, Error> {
        let configured = configured
            .map(|vkey| {
                NoteVerifier::from_vkey(vkey.trim())
                    .map_err(|e| Error::Invalid(format!("log key {vkey:?}: {e}")))
            })
            .transpose()?;
        let mut latest = Latest::default();
        let mut pinned = configured;
        if let Some(path) = &state_file
            && let Some(state) = read_state(path)?
        {
            let key = NoteVerifier::from_vkey(&state.log_key)
                .map_err(|e| Error::State(format!("{}: log_key: {e}", path.display())))?;
            if let Some(c) = &pinned
                && c.vkey() != key.vkey()
            {
                return Err(Error::State(format!(
                    "{} was written for the log key {}, not the configured {}; if the log was \
                     replaced on purpose, move the state file away",
                    path.display(),
                    key.vkey(),
                    c.vkey()
                )));
            }
            if let Some(note) = &state.checkpoint {
                let c = verify_checkpoint(note.as_bytes(), &key, key.name()).map_err(|e| {
                    Error::State(format!(
                        "{}: its checkpoint does not verify: {e}",
                        path.display()
                    ))
                })?;
                latest.seen = Some(Seen::from(&c));
            }
            if !state.fork_evidence.is_empty() {
                // A fork seen once stays seen: a restart must not trust the
                // log again because it went back to the branch we kept.
                return Err(Error::State(format!(
                    "{} holds evidence that this log forked (two signed checkpoints that cannot \
                     both be true); the client will not trust it again. Hand the file to an \
                     auditor, then move it away to start over",
                    path.display()
                )));
            }
            pinned = Some(key);
        }
        let log_key = OnceCell::new();
        if let Some(k) = pinned {
            // A new cell takes its first value.
            let _ = log_key.set(Arc::new(k));
        }
        Ok(Trust {
            log_key,
            state_file,
            latest: Mutex::new(latest),
            queued: std::sync::Mutex::new(None),
        })
    }

    /// The trusted log key; on first use without one, the key the ledger
    /// serves, pinned from then on.
    pub(crate) async fn verifier(&self, http: &Transport) -> Result<Arc<NoteVerifier>, Error> {
        self.log_key
            .get_or_try_init(|| async {
                let info: lineage_schemas::LogInfo =
                    http.get_json("/v1/log").await.map_err(|e| match e {
                        Error::Denied(d) => unreadable("the log key", &d),
                        other => other,
                    })?;
                let key = NoteVerifier::from_vkey(&info.vkey).map_err(|e| {
                    Error::Untrusted(format!("the ledger serves an unusable log key: {e}"))
                })?;
                tracing::debug!(vkey = %key.vkey(), "lineage client: pinned the log key on first use");
                let key = Arc::new(key);
                let latest = self.latest.lock().await;
                self.persist(&key, &latest)?;
                Ok(key)
            })
            .await
            .cloned()
    }

    /// Whether `seen` needs a background check: false when it is the same
    /// checkpoint (size and root) as the last one queued.
    pub(crate) fn queue(&self, seen: &Seen) -> bool {
        let mut last = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if *last == Some((seen.size, seen.root)) {
            return false;
        }
        *last = Some((seen.size, seen.root));
        true
    }

    /// Proves `seen` consistent with the latest checkpoint seen before (in
    /// whichever direction), and keeps the larger. Serialized: one proof at
    /// a time.
    pub(crate) async fn observe(&self, http: &Transport, seen: Seen) -> Result<(), Error> {
        let mut latest = self.latest.lock().await;
        let Some(known) = latest.seen.clone() else {
            latest.seen = Some(seen);
            return self.save(&latest);
        };
        let (old, new) = if seen.size <= known.size {
            (&seen, &known)
        } else {
            (&known, &seen)
        };
        let verdict = if old.size == new.size {
            if old.root == new.root {
                return Ok(());
            }
            Err(format!(
                "two signed checkpoints of tree size {} with different roots",
                old.size
            ))
        } else {
            match fetch_proof(http, old.size, new.size).await {
                Ok(proof) => verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
                    .map_err(|e| {
                        format!(
                            "the checkpoints of tree sizes {} and {} are not consistent: {e}",
                            old.size, new.size
                        )
                    }),
                Err(Error::Denied(d)) if d.status == 401 || d.status == 403 => {
                    return Err(unreadable("a consistency proof", &d));
                }
                // A ledger that will not prove its own signed sizes
                // consistent is not trusted, but that is no proof of a
                // fork: no evidence is written.
                Err(Error::Denied(d)) => {
                    return Err(Error::Untrusted(format!(
                        "the ledger will not prove tree size {} consistent with {}: {d}",
                        old.size, new.size
                    )));
                }
                Err(other) => return Err(other),
            }
        };
        match verdict {
            Ok(()) => {
                if seen.size > known.size {
                    latest.seen = Some(seen);
                    self.save(&latest)?;
                }
                Ok(())
            }
            Err(why) => {
                latest.fork_evidence = vec![old.note.clone(), new.note.clone()];
                if let Err(e) = self.save(&latest) {
                    tracing::error!(error = %e, "lineage client: could not keep the fork evidence");
                }
                Err(Error::Untrusted(why))
            }
        }
    }

    fn save(&self, latest: &Latest) -> Result<(), Error> {
        match self.log_key.get() {
            Some(key) => self.persist(key, latest),
            None => Ok(()),
        }
    }

    fn persist(&self, key: &NoteVerifier, latest: &Latest) -> Result<(), Error> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let state = StateFile {
            format: STATE_FORMAT.into(),
            log_key: key.vkey(),
            checkpoint: latest.seen.as_ref().map(|s| s.note.clone()),
            fork_evidence: latest.fork_evidence.clone(),
        };
        write_state(path, &state)
    }
}

/// A read the receipt check needs was refused (a ledger behind a read
/// token, say): the submission's outcome is unknown to the caller, as when
/// the ledger is unreachable, and the ledger is not accused of anything.
fn unreadable(what: &str, d: &crate::Denial) -> Error {
    Error::Unavailable {
        attempts: 1,
        last: format!(
            "the receipt could not be checked: reading {what} was refused ({} {}: {}){}",
            d.status,
            d.code,
            d.detail,
            if d.status == 401 {
                "; this ledger needs a read token"
            } else {
                ""
            }
        ),
    }
}

async fn fetch_proof(http: &Transport, first: u64, second: u64) -> Result<Vec<Hash>, Error> {
    let answer: ConsistencyProofResponse = http
        .get_json(&format!(
            "/v1/proofs/consistency?first={first}&second={second}"
        ))
        .await?;
    if (answer.first, answer.second) != (first, second) {
        return Err(Error::Untrusted(format!(
            "asked for a consistency proof from {first} to {second}, got one from {} to {}",
            answer.first, answer.second
        )));
    }
    decode_proof(&answer.proof).map_err(|e| Error::Untrusted(e.to_string()))
}

fn read_state(path: &Path) -> Result<Option<StateFile>, Error> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::State(format!("{}: {e}", path.display()))),
    };
    let state: StateFile = serde_json::from_slice(&text)
        .map_err(|e| Error::State(format!("{}: {e}", path.display())))?;
    if state.format != STATE_FORMAT {
        return Err(Error::State(format!(
            "{}: format {:?}, not {STATE_FORMAT}",
            path.display(),
            state.format
        )));
    }
    Ok(Some(state))
}

/// Writes the state to a temporary file of its own next to `path`, syncs
/// it, and renames it over: a crash leaves the old state or the new one,
/// never half of one. One client per state file: two clients sharing one
/// would each keep their own latest checkpoint and overwrite the other's.
fn write_state(path: &Path, state: &StateFile) -> Result<(), Error> {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let err = |e: std::io::Error| Error::State(format!("{}: {e}", path.display()));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    let mut text = serde_json::to_vec_pretty(state).map_err(|e| Error::State(e.to_string()))?;
    text.push(b'\n');
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}
