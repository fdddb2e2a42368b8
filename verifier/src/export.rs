//! The export: a directory holding a static C2SP tlog-tiles log of one tree
//! size, the auditor's input (`lineage export` writes it).
//!
//! ```text
//! DIR/checkpoint                  the signed checkpoint note (tree size N)
//! DIR/tile/<L>/<N>[.p/<W>]        hash tiles (c2sp.org/tlog-tiles)
//! DIR/tile/entries/<N>[.p/<W>]    entry bundles; each entry a LogEntry encoding
//! DIR/manifest.json               {"format": "lineage-export/v1", "origin", "vkey",
//!                                  "tree_size", "authority_keys": [{"key_id", "public_key"}]}
//! ```
//!
//! Paths are exactly [`TilePath`]'s `Display`. Only the files the checkpoint's
//! tree size calls for ([`lineage_ledger::tile::layout`]) are read: partial
//! tiles left over from earlier exports are ignored. The manifest is optional
//! (a plain tlog-tiles log has none) and is not trusted: see [`crate::trust`].

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use lineage_ledger::keys::{KeyError, KeyId, parse_public_key};
use lineage_schemas::AuthorityKey;
use serde::{Deserialize, Serialize};

use crate::{InputError, Violation};
use lineage_ledger::tile::TilePath;

/// The `format` of the manifest this verifier reads.
pub const MANIFEST_FORMAT: &str = "lineage-export/v1";

/// `DIR/manifest.json`. Unknown fields are ignored (the `format` string is the
/// version); nothing in it is trusted without a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The log's origin (the checkpoint's first line).
    pub origin: String,
    /// The log's note verifier key.
    pub vkey: String,
    /// The tree size of the export (the checkpoint's).
    pub tree_size: u64,
    /// The keys that may sign governance statements.
    pub authority_keys: Vec<AuthorityKey>,
}

/// Why an authority key listed in the manifest is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestKeyError {
    /// The public key does not parse.
    #[error("public_key: {0}")]
    PublicKey(KeyError),
    /// The listed key ID is not BLAKE3 of the key.
    #[error("key_id {listed:?} is not the key's ID {computed}")]
    KeyIdMismatch {
        /// The listed key ID.
        listed: String,
        /// The key's ID.
        computed: KeyId,
    },
}

impl Manifest {
    /// The authority keys, each checked: a strong Ed25519 key whose ID is the listed one.
    ///
    /// # Errors
    /// [`InputError::ManifestKey`] for the first unusable key.
    pub fn authorities(&self, path: &Path) -> Result<Vec<VerifyingKey>, InputError> {
        self.authority_keys
            .iter()
            .enumerate()
            .map(|(position, k)| {
                let err = |reason| InputError::ManifestKey {
                    path: path.to_path_buf(),
                    position,
                    reason,
                };
                let key = parse_public_key(&k.public_key)
                    .map_err(|e| err(ManifestKeyError::PublicKey(e)))?;
                let computed = KeyId::from_public_key(&key);
                if computed.to_string() != k.key_id {
                    return Err(err(ManifestKeyError::KeyIdMismatch {
                        listed: k.key_id.chars().take(80).collect(),
                        computed,
                    }));
                }
                Ok(key)
            })
            .collect()
    }
}

/// An export directory.
#[derive(Debug, Clone)]
pub struct ExportDir {
    root: PathBuf,
}

/// Largest checkpoint note read (the spec allows 100 signature lines).
const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024;
/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Largest tile or bundle read: a full bundle of maximal entries (256 × 65537 bytes).
const MAX_TILE_BYTES: u64 = 256 * (2 + 65535);

/// Reads at most `limit` bytes of `path`; one more means the file is too large.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("larger than the {limit}-byte limit"),
        ));
    }
    Ok(bytes)
}

impl ExportDir {
    /// The export at `root`.
    ///
    /// # Errors
    /// [`InputError::NotADirectory`] when `root` is not a directory.
    pub fn open(root: &Path) -> Result<ExportDir, InputError> {
        if !root.is_dir() {
            return Err(InputError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        Ok(ExportDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The signed checkpoint's bytes.
    ///
    /// # Errors
    /// [`InputError::Io`] when `DIR/checkpoint` cannot be read: without it
    /// there is nothing to verify against.
    pub fn checkpoint(&self) -> Result<Vec<u8>, InputError> {
        let path = self.root.join("checkpoint");
        read_limited(&path, MAX_CHECKPOINT_BYTES).map_err(|source| InputError::Io { path, source })
    }

    /// The manifest, when the export has one.
    ///
    /// # Errors
    /// [`InputError::Io`], [`InputError::ManifestJson`] or
    /// [`InputError::ManifestFormat`] when it exists but is not a
    /// `lineage-export/v1` manifest.
    pub fn manifest(&self) -> Result<Option<Manifest>, InputError> {
        let path = self.manifest_path();
        let bytes = match read_limited(&path, MAX_MANIFEST_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(InputError::Io { path, source }),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|error| InputError::ManifestJson {
                path: path.clone(),
                error,
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(InputError::ManifestFormat {
                path,
                found: manifest.format.chars().take(80).collect(),
            });
        }
        Ok(Some(manifest))
    }

    /// Path of `manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// The bytes of a tile or entry bundle.
    ///
    /// # Errors
    /// [`Violation::MissingFile`] or [`Violation::UnreadableFile`]: the export
    /// lacks a file its tree size requires.
    pub fn tile(&self, tile: &TilePath) -> Result<Vec<u8>, Violation> {
        let rel = tile.to_string();
        match read_limited(&self.root.join(&rel), MAX_TILE_BYTES) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Violation::MissingFile { path: rel }),
            Err(error) => Err(Violation::UnreadableFile { path: rel, error }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use lineage_ledger::keys::public_key_base64;

    fn manifest(keys: Vec<AuthorityKey>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            origin: "o".into(),
            vkey: "v".into(),
            tree_size: 0,
            authority_keys: keys,
        }
    }

    #[test]
    fn manifest_keys_are_checked() {
        let key = SigningKey::from_bytes(&[5; 32]).verifying_key();
        let good = AuthorityKey {
            key_id: KeyId::from_public_key(&key).to_string(),
            public_key: public_key_base64(&key),
        };
        let path = Path::new("manifest.json");
        assert_eq!(
            manifest(vec![good.clone()]).authorities(path).ok(),
            Some(vec![key])
        );
        let wrong_id = AuthorityKey {
            key_id: "00".repeat(32),
            ..good.clone()
        };
        assert!(matches!(
            manifest(vec![good, wrong_id]).authorities(path),
            Err(InputError::ManifestKey {
                position: 1,
                reason: ManifestKeyError::KeyIdMismatch { .. },
                ..
            })
        ));
    }

    #[test]
    fn manifest_is_optional_but_strict_when_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let export = ExportDir::open(dir.path()).expect("dir");
        assert!(matches!(export.manifest(), Ok(None)));
        assert!(matches!(export.checkpoint(), Err(InputError::Io { .. })));
        std::fs::write(export.manifest_path(), "{").expect("write");
        assert!(matches!(
            export.manifest(),
            Err(InputError::ManifestJson { .. })
        ));
        let mut m = manifest(vec![]);
        m.format = "lineage-export/v2".into();
        std::fs::write(
            export.manifest_path(),
            serde_json::to_vec(&m).unwrap_or_default(),
        )
        .expect("write");
        assert!(matches!(
            export.manifest(),
            Err(InputError::ManifestFormat { .. })
        ));
        let missing = export.tile(&TilePath::hash(0, 0, 256).expect("path"));
        assert!(
            matches!(&missing, Err(Violation::MissingFile { path }) if path == "tile/0/000"),
            "{missing:?}"
        );
        assert!(matches!(
            ExportDir::open(&dir.path().join("nope")),
            Err(InputError::NotADirectory { .. })
        ));
    }
}
