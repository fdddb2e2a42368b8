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

mod client;
mod commit;
mod convert;
mod errors;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<client::Runtime>()?;
    m.add_class::<client::Authority>()?;
    m.add_class::<client::Workload>()?;
    m.add_class::<client::Receipt>()?;
    m.add_class::<client::Batcher>()?;
    m.add_class::<client::PendingReceipt>()?;
    m.add_function(wrap_pyfunction!(client::keygen, m)?)?;
    m.add_function(wrap_pyfunction!(client::public_key, m)?)?;
    m.add_function(wrap_pyfunction!(commit::commit, m)?)?;
    m.add("COMMIT_SALT_BYTES", commit::SALT_BYTES)?;
    Ok(())
}
