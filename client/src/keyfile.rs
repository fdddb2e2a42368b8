//! Key generation and key files: the only place that draws randomness or
//! touches a key on disk. The ledger core stays pure; the binary, its demo
//! and its benches use this.
//!
//! A key file holds one line: the canonical standard base64 of the 32-byte
//! Ed25519 seed, and is created with mode 0600.
//!
//! Known hole: the seed text read from a key file, and the decoded bytes, are
//! not zeroized after use (the [`SigningKey`] itself is, on drop).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;

fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Canonical standard base64 only: padding required, no trailing bits.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(text).ok()?;
    (STANDARD.encode(&bytes) == text).then_some(bytes)
}

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("operating system randomness is unavailable: {0}")]
pub struct RandomnessError(getrandom::Error);

/// A new signing key from operating system randomness.
///
/// # Errors
/// [`RandomnessError`] if the OS random number generator fails.
pub fn generate_signing_key() -> Result<SigningKey, RandomnessError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(RandomnessError)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Why a key file could not be written or read. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file already exists; key files are never overwritten.
    #[error("key file {path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The key file.
        path: PathBuf,
    },
    /// An I/O error.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not one line of canonical standard base64.
    #[error("key file {path} is not one line of canonical standard base64")]
    NotBase64 {
        /// The key file.
        path: PathBuf,
    },
    /// The content decodes to the wrong number of bytes.
    #[error("key file {path} holds {len} bytes, expected a 32-byte Ed25519 seed")]
    WrongLength {
        /// The key file.
        path: PathBuf,
        /// Decoded length.
        len: usize,
    },
}

/// Longest key file content read: a seed line is 45 bytes.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Writes `key`'s seed to a new file at `path`, created with mode 0600 (on unix)
/// so it is never readable by others, not even briefly. The content is the
/// seed's canonical standard base64 and a newline.
///
/// If writing fails after the file was created, the partial file is removed.
/// A crash at that point can leave an incomplete file, which [`read_key_file`]
/// rejects.
///
/// # Errors
/// [`KeyFileError::AlreadyExists`] if `path` exists (it is left untouched);
/// [`KeyFileError::Io`] for any other I/O failure.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            io(e)
        }
    })?;
    let mut line = encode_base64(key.as_bytes());
    line.push('\n');
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // Best effort: the write error is the one worth reporting.
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

/// Reads a signing key from a key file written by [`write_key_file`]: canonical
/// standard base64 of a 32-byte seed, optionally followed by one `\n`.
///
/// This does not check the file's permissions; see [`key_file_is_private`].
///
/// # Errors
/// [`KeyFileError::Io`] if the file cannot be read; [`KeyFileError::NotBase64`]
/// or [`KeyFileError::WrongLength`] if its content is not a seed.
pub fn read_key_file(path: &Path) -> Result<SigningKey, KeyFileError> {
    use std::io::Read as _;
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                KeyFileError::NotBase64 {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let bytes = decode_base64(line).ok_or_else(|| KeyFileError::NotBase64 {
        path: path.to_path_buf(),
    })?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyFileError::WrongLength {
            path: path.to_path_buf(),
            len: bytes.len(),
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Whether the file at `path` grants no permission to group or others (mode
/// `& 0o077 == 0`).
///
/// # Errors
/// [`KeyFileError::Io`] if the file's metadata cannot be read, or, on platforms
/// without unix permissions, always (kind `Unsupported`).
pub fn key_file_is_private(path: &Path) -> Result<bool, KeyFileError> {
    let metadata = std::fs::metadata(path).map_err(|source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        Ok(metadata.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Err(KeyFileError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::Unsupported),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn key_file_round_trip_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("runtime.key");
        let sk = generate_signing_key().expect("randomness");
        write_key_file(&path, &sk).expect("write");
        assert_eq!(
            read_key_file(&path).expect("read").to_bytes(),
            sk.to_bytes()
        );
        let text = std::fs::read_to_string(&path).expect("read text");
        assert_eq!(text, format!("{}\n", encode_base64(&sk.to_bytes())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert!(key_file_is_private(&path).expect("mode"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
            assert!(!key_file_is_private(&path).expect("mode"));
        }
        let other = key(9);
        assert!(matches!(
            write_key_file(&path, &other),
            Err(KeyFileError::AlreadyExists { .. })
        ));
        assert_eq!(
            read_key_file(&path).expect("unchanged").to_bytes(),
            sk.to_bytes()
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate_signing_key().expect("randomness");
        let b = generate_signing_key().expect("randomness");
        assert_ne!(a.to_bytes(), b.to_bytes());
    }

    #[track_caller]
    fn check_key_file(content: &[u8], ok: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, content).expect("write");
        let got = read_key_file(&path);
        assert_eq!(got.is_ok(), ok, "{content:?}: {got:?}");
        if let Err(e) = got {
            // Errors name the file, never its content.
            assert!(e.to_string().contains(&path.display().to_string()));
        }
    }

    #[test]
    fn key_files_are_strict() {
        let seed = encode_base64(&[3; 32]);
        check_key_file(seed.as_bytes(), true);
        check_key_file(format!("{seed}\n").as_bytes(), true);
        check_key_file(format!("{seed}\n\n").as_bytes(), false);
        check_key_file(format!("{seed}\r\n").as_bytes(), false);
        check_key_file(format!(" {seed}\n").as_bytes(), false);
        check_key_file(seed.trim_end_matches('=').as_bytes(), false);
        check_key_file(encode_base64(&[3; 64]).as_bytes(), false);
        check_key_file(b"", false);
        check_key_file(&[0xff, 0xfe], false);
        let missing = read_key_file(Path::new("/nonexistent/lineage/key"));
        assert!(matches!(missing, Err(KeyFileError::Io { .. })));
    }
}
