//! The Rust client's errors as Python exceptions.
//!
//! One class per `lineage_client::Error` variant, all under
//! `LineageError`; every instance carries `code` (the client's stable
//! code: the ledger's problem code for a denial, otherwise `unavailable`,
//! `untrusted`, `invalid` or `state`). A denial also carries the problem's
//! fields, so a caller can act on the governing entry without parsing text.

use lineage_client::{Denial, Error};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    lineage,
    LineageError,
    PyException,
    "Base class of the lineage package's errors: nothing was recorded."
);
pyo3::create_exception!(
    lineage,
    Denied,
    LineageError,
    "The ledger refused the transition (or the handle was already denied): the action must not run."
);
pyo3::create_exception!(
    lineage,
    Unavailable,
    LineageError,
    "The ledger could not be reached (or answered 429/5xx) until the retry deadline."
);
pyo3::create_exception!(
    lineage,
    Untrusted,
    LineageError,
    "The ledger answered something that does not verify (a bad receipt, a forked log): the client is poisoned."
);
pyo3::create_exception!(
    lineage,
    Invalid,
    LineageError,
    "The caller's input was refused before anything was signed or sent."
);
pyo3::create_exception!(
    lineage,
    StateError,
    LineageError,
    "The client's state file could not be read or written, or pins another log."
);

/// The Python exception for a client error.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let err = match &e {
        Error::Denied(d) => return denied(py, d),
        Error::Unavailable { attempts, last } => {
            let err = Unavailable::new_err(e.to_string());
            set(py, &err, "attempts", *attempts);
            set(py, &err, "last", last.as_str());
            err
        }
        Error::Untrusted(_) => Untrusted::new_err(e.to_string()),
        Error::Invalid(_) => Invalid::new_err(e.to_string()),
        Error::State(_) => StateError::new_err(e.to_string()),
    };
    set(py, &err, "code", e.code());
    err
}

/// A `Denied` exception carrying the denial's fields.
pub fn denied(py: Python<'_>, d: &Denial) -> PyErr {
    let err = Denied::new_err(d.to_string());
    set(py, &err, "code", d.code.as_str());
    set(py, &err, "status", d.status);
    set(py, &err, "title", d.title.as_str());
    set(py, &err, "detail", d.detail.as_str());
    set(py, &err, "field", d.field.as_deref());
    set(py, &err, "halt_index", d.halt_index);
    set(py, &err, "governing_index", d.governing_index);
    set(py, &err, "local", d.local);
    err
}

fn set<'py, V: IntoPyObject<'py>>(py: Python<'py>, err: &PyErr, name: &str, value: V) {
    // Setting an attribute on a fresh exception instance cannot fail short
    // of memory exhaustion; the exception is raised either way.
    let _ = err.value(py).setattr(name, value);
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LineageError", py.get_type::<LineageError>())?;
    m.add("Denied", py.get_type::<Denied>())?;
    m.add("Unavailable", py.get_type::<Unavailable>())?;
    m.add("Untrusted", py.get_type::<Untrusted>())?;
    m.add("Invalid", py.get_type::<Invalid>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    Ok(())
}
