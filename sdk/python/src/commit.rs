//! Salted BLAKE3 commitments: how tool arguments and results are recorded
//! without their content.
//!
//! A commitment is BLAKE3 in keyed mode with the 32-byte salt as the key
//! (a PRF): without the salt, a short or guessable value (a file name, a
//! yes/no answer) cannot be found by hashing candidates; with the salt and
//! the value, anyone can recompute it and so check what was committed.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Salt length in bytes (BLAKE3's key length).
pub const SALT_BYTES: usize = blake3::KEY_LEN;

/// `commit(salt, data) -> str`: the keyed BLAKE3 of `data` under the
/// 32-byte `salt`, as 64 lowercase hex digits.
#[pyfunction]
pub fn commit(salt: &[u8], data: &[u8]) -> PyResult<String> {
    let key: [u8; SALT_BYTES] = salt.try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "a commitment salt is {SALT_BYTES} bytes, not {}",
            salt.len()
        ))
    })?;
    Ok(blake3::keyed_hash(&key, data).to_hex().to_string())
}
