//! The witness's state in RocksDB, in its own data directory: who the witness is, the
//! log keys it trusts per origin, the latest checkpoint it cosigned per origin, and
//! the evidence of refused requests that show a log misbehaving.
//!
//! Column families (every value begins with a codec version byte, [`codec`]):
//!
//! | family | key | value |
//! |---|---|---|
//! | `meta` | `format`, `name`, `public_key` | store format, the witness's name and Ed25519 public key |
//! | `logs` | origin | the log's vkeys, one per line |
//! | `state` | origin | [`CosignedRecord`]: size, root, time, the cosigned note |
//! | `evidence` | SHA-256(origin) ‖ size ‖ root | [`Evidence`] |
//!
//! **API boundary:** every write is one synced `WriteBatch`: once a method returns
//! `Ok`, what it wrote survives a crash. The store does not serialize callers; the
//! witness ([`crate::Witness`]) holds a lock per origin around read, decide and write.
//!
//! A store records its name and public key at creation and refuses to open under
//! another ([`StoreError::IdentityMismatch`]): a witness is never silently
//! re-keyed, since its cosignatures would then vouch for nothing it remembers.

use std::path::Path;

use lineage_ledger::Hash;
use lineage_ledger::cosignature::VerifierKey;
use lineage_ledger::note::{ED25519_SIGNATURE_TYPE, NoteVerifier};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::codec::{self, CodecError, CosignedRecord, Evidence};

/// The store format this code reads and writes.
pub const FORMAT: u8 = 1;

const META: &str = "meta";
const LOGS: &str = "logs";
const STATE: &str = "state";
const EVIDENCE: &str = "evidence";
const FAMILIES: [&str; 4] = [META, LOGS, STATE, EVIDENCE];

/// Why the witness store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (I/O, corruption it detected, the directory locked by another
    /// process).
    #[error("witness store: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value does not decode.
    #[error("witness store: {what}: {source}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it does not decode.
        #[source]
        source: CodecError,
    },
    /// The store was written by another format of this code.
    #[error("witness store has format {found}, this build reads format {FORMAT}")]
    FormatMismatch {
        /// The stored format.
        found: u8,
    },
    /// The store belongs to another witness name or key.
    #[error(
        "witness store belongs to witness {stored_name:?} (public key {stored_key}), \
         not {name:?} (public key {key})"
    )]
    IdentityMismatch {
        /// The stored name.
        stored_name: String,
        /// The stored public key, hex.
        stored_key: String,
        /// The name given.
        name: String,
        /// The public key given, hex.
        key: String,
    },
    /// The store has no identity yet and was opened read-only.
    #[error("witness store is not initialised (no witness name and key)")]
    Uninitialised,
    /// A log vkey that is not an Ed25519 note key (type 0x01) whose name is the origin.
    #[error("log vkey for {origin:?}: {reason}")]
    InvalidLogKey {
        /// The origin.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The witness's RocksDB store.
#[derive(Debug)]
pub struct WitnessStore {
    db: DB,
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    // The families are created at open (create_missing_column_families), and a
    // read-only open lists them all; a missing one is a bug, not input.
    #[allow(clippy::expect_used)]
    db.cf_handle(name).expect("column family opened")
}

fn synced() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

fn corrupt(what: &'static str) -> impl FnOnce(CodecError) -> StoreError {
    move |source| StoreError::Corrupt { what, source }
}

/// The evidence key: SHA-256(origin) ‖ size ‖ root.
fn evidence_key(origin: &str, size: u64, root: &Hash) -> Vec<u8> {
    let mut key =
        hex::decode(lineage_ledger::witness_protocol::origin_hash(origin)).unwrap_or_default();
    key.extend_from_slice(&size.to_be_bytes());
    key.extend_from_slice(root.as_bytes());
    key
}

impl WitnessStore {
    /// Opens (creating when missing) the store at `path` for writing. RocksDB locks
    /// the directory: one process at a time.
    ///
    /// # Errors
    /// [`StoreError::Rocks`] (including "locked by another process");
    /// [`StoreError::FormatMismatch`].
    pub fn open(path: &Path) -> Result<WitnessStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let families = FAMILIES
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, families)?;
        let store = WitnessStore { db };
        store.check_format(true)?;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Opens the store read-only, as a snapshot: works while a witness serves from it.
    ///
    /// # Errors
    /// As [`WitnessStore::open`]; a missing store is [`StoreError::Rocks`].
    pub fn open_read_only(path: &Path) -> Result<WitnessStore, StoreError> {
        let db = DB::open_cf_for_read_only(&Options::default(), path, FAMILIES, false)?;
        let store = WitnessStore { db };
        store.check_format(false)?;
        Ok(store)
    }

    fn check_format(&self, write: bool) -> Result<(), StoreError> {
        match self.db.get_cf(cf(&self.db, META), b"format")? {
            Some(v) if v.as_slice() == [FORMAT] => Ok(()),
            Some(v) => Err(StoreError::FormatMismatch {
                found: v.first().copied().unwrap_or(0),
            }),
            None if write => {
                self.db
                    .put_cf_opt(cf(&self.db, META), b"format", [FORMAT], &synced())?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The witness's stored name and public key, if initialised.
    ///
    /// # Errors
    /// [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn identity(&self) -> Result<Option<(String, [u8; 32])>, StoreError> {
        let meta = cf(&self.db, META);
        let (Some(name), Some(key)) = (
            self.db.get_cf(meta, b"name")?,
            self.db.get_cf(meta, b"public_key")?,
        ) else {
            return Ok(None);
        };
        let name = String::from_utf8(name).map_err(|_| StoreError::Corrupt {
            what: "witness name",
            source: CodecError::NotUtf8,
        })?;
        let key: [u8; 32] = key.try_into().map_err(|k: Vec<u8>| StoreError::Corrupt {
            what: "witness public key",
            source: CodecError::Length { len: k.len() },
        })?;
        Ok(Some((name, key)))
    }

    /// Records `name` and `public_key` in a new store, or checks a store's.
    ///
    /// # Errors
    /// [`StoreError::IdentityMismatch`] when the store belongs to another witness.
    pub fn init_identity(&self, name: &str, public_key: [u8; 32]) -> Result<(), StoreError> {
        match self.identity()? {
            Some((stored_name, stored_key)) if stored_name == name && stored_key == public_key => {
                Ok(())
            }
            Some((stored_name, stored_key)) => Err(StoreError::IdentityMismatch {
                stored_name,
                stored_key: hex::encode(stored_key),
                name: name.to_owned(),
                key: hex::encode(public_key),
            }),
            None => {
                let meta = cf(&self.db, META);
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, b"name", name.as_bytes());
                batch.put_cf(meta, b"public_key", public_key);
                self.db.write_opt(batch, &synced())?;
                Ok(())
            }
        }
    }

    /// The vkeys trusted for `origin`, in the order added (empty: unknown origin).
    ///
    /// # Errors
    /// [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn log_vkeys(&self, origin: &str) -> Result<Vec<String>, StoreError> {
        match self.db.get_cf(cf(&self.db, LOGS), origin.as_bytes())? {
            None => Ok(Vec::new()),
            Some(v) => codec::decode_vkeys(&v).map_err(corrupt("log vkeys")),
        }
    }

    /// The verifiers of the keys trusted for `origin`.
    ///
    /// # Errors
    /// As [`WitnessStore::log_vkeys`]; a stored vkey that no longer parses is corrupt.
    pub fn log_keys(&self, origin: &str) -> Result<Vec<NoteVerifier>, StoreError> {
        self.log_vkeys(origin)?
            .iter()
            .map(|v| {
                NoteVerifier::from_vkey(v).map_err(|_| StoreError::Corrupt {
                    what: "log vkey",
                    source: CodecError::InvalidVkey,
                })
            })
            .collect()
    }

    /// Adds `vkey` to the keys trusted for `origin`. Returns `false` when it was
    /// already there. The key must be an Ed25519 note key (type 0x01) whose name is
    /// the origin, as c2sp.org/tlog-policy requires of a log's key.
    ///
    /// # Errors
    /// [`StoreError::InvalidLogKey`]; [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn add_log_key(&self, origin: &str, vkey: &str) -> Result<bool, StoreError> {
        let canonical = check_log_vkey(origin, vkey)?;
        let mut vkeys = self.log_vkeys(origin)?;
        if vkeys.contains(&canonical) {
            return Ok(false);
        }
        vkeys.push(canonical);
        self.db.put_cf_opt(
            cf(&self.db, LOGS),
            origin.as_bytes(),
            codec::encode_vkeys(&vkeys),
            &synced(),
        )?;
        Ok(true)
    }

    /// Every known origin with its vkeys, sorted by origin.
    ///
    /// # Errors
    /// [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn logs(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf(&self.db, LOGS), IteratorMode::Start) {
            let (k, v) = item?;
            let origin = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                what: "log origin",
                source: CodecError::NotUtf8,
            })?;
            out.push((
                origin,
                codec::decode_vkeys(&v).map_err(corrupt("log vkeys"))?,
            ));
        }
        Ok(out)
    }

    /// The latest checkpoint cosigned for `origin`.
    ///
    /// # Errors
    /// [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn cosigned(&self, origin: &str) -> Result<Option<CosignedRecord>, StoreError> {
        self.db
            .get_cf(cf(&self.db, STATE), origin.as_bytes())?
            .map(|v| codec::decode_cosigned(&v).map_err(corrupt("cosigned state")))
            .transpose()
    }

    /// Stores `record` as the latest checkpoint cosigned for `origin`, synced.
    /// The caller has checked, under its per-origin lock, that it extends the
    /// stored one ([`lineage_ledger::witness_protocol::decide`]).
    ///
    /// # Errors
    /// [`StoreError::Rocks`]: the state may or may not be written; the caller must
    /// not answer with a cosignature.
    pub fn put_cosigned(&self, origin: &str, record: &CosignedRecord) -> Result<(), StoreError> {
        self.db.put_cf_opt(
            cf(&self.db, STATE),
            origin.as_bytes(),
            codec::encode_cosigned(record),
            &synced(),
        )?;
        Ok(())
    }

    /// Keeps `evidence`, synced; when a record of the same (origin, size, root)
    /// exists, only its `last_seen` and `count` change. Returns the stored record.
    ///
    /// # Errors
    /// [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn put_evidence(&self, evidence: Evidence) -> Result<Evidence, StoreError> {
        let key = evidence_key(&evidence.origin, evidence.size, &evidence.root);
        let family = cf(&self.db, EVIDENCE);
        let record = match self.db.get_cf(family, &key)? {
            Some(v) => {
                let mut old = codec::decode_evidence(&v).map_err(corrupt("evidence"))?;
                old.last_seen = old.last_seen.max(evidence.last_seen);
                old.count = old.count.saturating_add(1);
                old
            }
            None => evidence,
        };
        self.db
            .put_cf_opt(family, &key, codec::encode_evidence(&record), &synced())?;
        Ok(record)
    }

    /// Every evidence record, by origin hash, size and root.
    ///
    /// # Errors
    /// [`StoreError::Rocks`], [`StoreError::Corrupt`].
    pub fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf(&self.db, EVIDENCE), IteratorMode::Start)
        {
            let (_, v) = item?;
            out.push(codec::decode_evidence(&v).map_err(corrupt("evidence"))?);
        }
        Ok(out)
    }
}

/// Checks that `vkey` is a log key for `origin`: an Ed25519 note key (type 0x01)
/// whose name is the origin. Returns it in canonical form.
///
/// # Errors
/// [`StoreError::InvalidLogKey`].
pub fn check_log_vkey(origin: &str, vkey: &str) -> Result<String, StoreError> {
    let invalid = |reason: String| StoreError::InvalidLogKey {
        origin: origin.to_owned(),
        reason,
    };
    let key = VerifierKey::parse(vkey).map_err(|e| invalid(e.to_string()))?;
    if key.signature_type() != ED25519_SIGNATURE_TYPE {
        return Err(invalid(format!(
            "type 0x{:02x} is not a log key (0x01, Ed25519 note key)",
            key.signature_type()
        )));
    }
    if key.name() != origin {
        return Err(invalid(format!(
            "the key's name {:?} is not the origin",
            key.name()
        )));
    }
    Ok(key.vkey())
}
