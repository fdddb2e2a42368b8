//! `lineage._native`: the Python package's native module, a thin binding of
//! the Rust client (`lineage-client`).
//!
//! What it is: the signing, event IDs, receipt verification, checkpoint
//! consistency, retries and fail-closed handle state of the Rust client,
//! exposed as Python classes. What it is not: a second implementation of
//! any of that (STYLE.md 17); the Python package (`python/lineage/`) adds
//! only Python idiom on top (context managers, a decorator, the OpenTelemetry
//! and OpenAI Agents adapters).
//!
//! Threads: every call that reaches the network or does crypto runs with the
//! GIL released (`Python::detach`) on one tokio runtime owned by this module,
//! so other Python threads run meanwhile.

mod commit;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    LineageError,
    pyo3::exceptions::PyException,
    "Base class of every error of the lineage package: nothing was recorded."
);

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LineageError", py.get_type::<LineageError>())?;
    m.add_function(wrap_pyfunction!(commit::commit, m)?)?;
    Ok(())
}
