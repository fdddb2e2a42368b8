//! `Runtime`, `Workload`, `Receipt`, `Batcher`, `PendingReceipt`,
//! `Authority`: the Rust client's handles as Python classes.
//!
//! Every method that signs, verifies or reaches the ledger converts its
//! arguments while holding the GIL, then releases it (`Python::detach`) and
//! blocks on the module's tokio runtime; a `Workload`'s lock is taken with
//! the GIL released, so a thread waiting for it never stalls the others.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use lineage_client as lc;
use lineage_schemas::HaltTarget;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::convert;
use crate::errors::{self, LineageError};

/// The module's tokio runtime: two worker threads (the client's work is I/O
/// and short crypto; more threads would only contend with the Python
/// threads), created on first use and never shut down (the process's
/// exit ends it).
///
/// A forked child inherits the runtime without its threads: a call there
/// would wait forever for tasks no thread runs (and reuse the parent's
/// connections). It is refused instead, as is every handle made before the
/// fork: create the `Runtime` after forking (e.g. in a worker's init hook).
fn tokio() -> PyResult<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<(u32, Result<tokio::runtime::Runtime, String>)> = OnceLock::new();
    let (pid, rt) = RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lineage-client")
            .enable_all()
            .build()
            .map_err(|e| e.to_string());
        (std::process::id(), rt)
    });
    if *pid != std::process::id() {
        return Err(LineageError::new_err(
            "the lineage client was started before this process forked: \
             create the Runtime in the child, after the fork",
        ));
    }
    rt.as_ref()
        .map_err(|e| LineageError::new_err(format!("cannot start the client's runtime: {e}")))
}

/// Blocks on `fut` on the module's runtime, with the GIL released.
fn block<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    T: Send,
    F: std::future::Future<Output = Result<T, lc::Error>> + Send,
{
    let rt = tokio()?;
    py.detach(|| rt.block_on(fut))
        .map_err(|e| errors::to_py(py, e))
}

fn seconds(name: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            PyValueError::new_err(format!("{name} must be a positive number of seconds"))
        })
}

/// A `Config` from the keyword arguments `Runtime` and `Authority` share.
#[allow(clippy::too_many_arguments)]
fn config(
    server: String,
    log_key: Option<String>,
    state_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    read_token: Option<String>,
    timeout: f64,
    retry_deadline: f64,
    consistency: &str,
) -> PyResult<lc::Config> {
    let mut c = lc::Config::new(server);
    c.log_key = log_key;
    c.state_file = state_file;
    c.ca_cert = ca_cert;
    c.read_token = read_token;
    c.request_timeout = seconds("timeout", timeout)?;
    c.retry_deadline = seconds("retry_deadline", retry_deadline)?;
    c.consistency = match consistency {
        "strict" => lc::Consistency::Strict,
        "background" => lc::Consistency::Background,
        other => {
            return Err(PyValueError::new_err(format!(
                "consistency is \"strict\" or \"background\", not {other:?}"
            )));
        }
    };
    Ok(c)
}

fn key(key_file: &Path) -> PyResult<lc::SigningKey> {
    // The error names the file, never its content.
    lc::keyfile::read_key_file(key_file).map_err(|e| errors::Invalid::new_err(e.to_string()))
}

/// A runtime identity and its signing key, connected to one ledger.
#[pyclass(frozen, module = "lineage._native")]
#[derive(Debug)]
pub struct Runtime {
    client: lc::Client,
    runtime: lc::Runtime,
}

#[pymethods]
impl Runtime {
    #[new]
    #[pyo3(signature = (server, runtime, key_file, *, log_key=None, state_file=None, ca_cert=None, read_token=None, timeout=10.0, retry_deadline=30.0, consistency="strict"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        server: String,
        runtime: &str,
        key_file: PathBuf,
        log_key: Option<String>,
        state_file: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
        read_token: Option<String>,
        timeout: f64,
        retry_deadline: f64,
        consistency: &str,
    ) -> PyResult<Self> {
        let config = config(
            server,
            log_key,
            state_file,
            ca_cert,
            read_token,
            timeout,
            retry_deadline,
            consistency,
        )?;
        let signing = key(&key_file)?;
        let client = lc::Client::new(config).map_err(|e| errors::to_py(py, e))?;
        let runtime = client
            .runtime(runtime, signing)
            .map_err(|e| errors::to_py(py, e))?;
        Ok(Runtime { client, runtime })
    }

    /// The runtime ID.
    #[getter]
    fn id(&self) -> &str {
        self.runtime.id()
    }

    #[pyo3(signature = (workload, kind="workload.start", attrs=None, parents=Vec::new(), domain=None))]
    fn start(
        &self,
        py: Python<'_>,
        workload: &str,
        kind: &str,
        attrs: Option<&Bound<'_, PyAny>>,
        parents: Vec<String>,
        domain: Option<&str>,
    ) -> PyResult<Workload> {
        let attrs = convert::attrs(attrs)?;
        let rt = &self.runtime;
        let wl = block(py, rt.start(workload, kind, attrs, &parents, domain))?;
        Ok(Workload::new(wl))
    }

    fn open(&self, py: Python<'_>, workload: &str) -> PyResult<Workload> {
        let rt = &self.runtime;
        let wl = block(py, rt.open(workload))?;
        Ok(Workload::new(wl))
    }

    /// Follows the ledger's governance stream in the background: a halt or
    /// revocation that stops a live handle denies it as soon as it commits.
    fn watch_governance(&self, py: Python<'_>) -> PyResult<()> {
        let client = &self.client;
        block(py, client.watch_governance())
    }

    /// Whether the governance stream is followed and connected.
    #[getter]
    fn watching(&self) -> bool {
        self.client.watching()
    }

    #[pyo3(signature = (*, max_batch=None, linger=None, queue=None))]
    fn batcher(
        &self,
        max_batch: Option<usize>,
        linger: Option<f64>,
        queue: Option<usize>,
    ) -> PyResult<Batcher> {
        let mut config = lc::BatchConfig::default();
        if let Some(n) = max_batch {
            config.max_batch = n;
        }
        if let Some(s) = linger {
            config.linger = Duration::try_from_secs_f64(s)
                .map_err(|_| PyValueError::new_err("linger must be a number of seconds >= 0"))?;
        }
        if let Some(n) = queue {
            config.queue = n;
        }
        let _guard = tokio()?.enter();
        Ok(Batcher {
            inner: self.client.batcher(config),
        })
    }

    fn __repr__(&self) -> String {
        format!("<lineage.Runtime {:?}>", self.runtime.id())
    }
}

/// One workload's writer: owns its chain (`seq`, `prev`).
#[pyclass(frozen, module = "lineage._native")]
#[derive(Debug)]
pub struct Workload {
    id: String,
    inner: Mutex<lc::Workload>,
}

impl Workload {
    fn new(wl: lc::Workload) -> Workload {
        Workload {
            id: wl.id().to_owned(),
            inner: Mutex::new(wl),
        }
    }

    /// The handle, locked. A panic while it was held (a bug) leaves the
    /// chain in an unknown state, so the handle is refused from then on.
    fn lock(&self) -> PyResult<MutexGuard<'_, lc::Workload>> {
        self.inner.lock().map_err(|_| {
            PyRuntimeError::new_err("this workload handle is poisoned by an earlier panic")
        })
    }

    /// Locks with the GIL released, then runs `f` (which blocks on the
    /// runtime) on the handle.
    fn with<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(&mut lc::Workload, &tokio::runtime::Runtime) -> Result<T, lc::Error> + Send,
    {
        let rt = tokio()?;
        let out = py.detach(|| -> PyResult<Result<T, lc::Error>> {
            let mut wl = self.lock()?;
            Ok(f(&mut wl, rt))
        })?;
        out.map_err(|e| errors::to_py(py, e))
    }

    /// Reads the handle (with the GIL released while waiting for it).
    fn read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&lc::Workload) -> T + Send,
    ) -> PyResult<T> {
        py.detach(|| self.lock().map(|wl| f(&wl)))
    }
}

#[pymethods]
impl Workload {
    /// The workload ID.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// `(seq, event_id)` of the latest event, or `None` before the first.
    #[getter]
    fn head(&self, py: Python<'_>) -> PyResult<Option<(u64, String)>> {
        self.read(py, |wl| wl.head().map(|h| (h.seq, h.event_id)))
    }

    /// The receipt of the latest event recorded through this handle.
    #[getter]
    fn last_receipt(&self, py: Python<'_>) -> PyResult<Option<Receipt>> {
        Ok(self
            .read(py, |wl| wl.last_receipt().cloned())?
            .map(Receipt::from))
    }

    /// The `Denied` error that stops this handle, or `None` while it may
    /// still record.
    #[getter]
    fn denied(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self
            .read(py, |wl| wl.denied())?
            .map(|d| errors::denied(py, &d).into_value(py).into_any()))
    }

    #[pyo3(signature = (kind, attrs=None, parents=Vec::new(), domain=None))]
    fn record(
        &self,
        py: Python<'_>,
        kind: String,
        attrs: Option<&Bound<'_, PyAny>>,
        parents: Vec<String>,
        domain: Option<String>,
    ) -> PyResult<Receipt> {
        let attrs = convert::attrs(attrs)?;
        let r = if parents.is_empty() && domain.is_none() {
            self.with(py, |wl, rt| rt.block_on(wl.record(&kind, attrs)))?
        } else {
            let step = lc::Step {
                kind,
                attrs,
                parents,
                domain,
            };
            self.with(py, |wl, rt| rt.block_on(wl.record_step(step)))?
        };
        Ok(Receipt::from(r))
    }

    #[pyo3(signature = (child, attrs=None))]
    fn spawn(
        &self,
        py: Python<'_>,
        child: String,
        attrs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Workload> {
        let attrs = convert::attrs(attrs)?;
        let wl = self.with(py, |wl, rt| rt.block_on(wl.spawn(&child, attrs)))?;
        Ok(Workload::new(wl))
    }

    #[pyo3(signature = (attrs=None))]
    fn end(&self, py: Python<'_>, attrs: Option<&Bound<'_, PyAny>>) -> PyResult<Receipt> {
        let attrs = convert::attrs(attrs)?;
        Ok(Receipt::from(
            self.with(py, |wl, rt| rt.block_on(wl.end(attrs)))?,
        ))
    }

    /// Signs the event now (advancing the chain) and queues it on
    /// `batcher`; the receipt comes from the returned `PendingReceipt`.
    #[pyo3(signature = (batcher, kind, attrs=None))]
    fn record_batched(
        &self,
        py: Python<'_>,
        batcher: &Batcher,
        kind: String,
        attrs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PendingReceipt> {
        let attrs = convert::attrs(attrs)?;
        let pending = self.with(py, |wl, rt| {
            let _guard = rt.enter();
            wl.record_batched(&batcher.inner, &kind, attrs)
        })?;
        Ok(PendingReceipt {
            inner: Mutex::new(Some(pending)),
        })
    }

    fn __repr__(&self) -> String {
        format!("<lineage.Workload {:?}>", self.id)
    }
}

/// A verified receipt: the ledger committed the event and its proof checked
/// out against the trusted log key.
#[pyclass(frozen, module = "lineage._native")]
#[derive(Debug)]
pub struct Receipt {
    inner: lc::Receipt,
    json: OnceLock<String>,
}

impl From<lc::Receipt> for Receipt {
    fn from(inner: lc::Receipt) -> Receipt {
        Receipt {
            inner,
            json: OnceLock::new(),
        }
    }
}

#[pymethods]
impl Receipt {
    #[getter]
    fn event_id(&self) -> &str {
        &self.inner.event_id
    }
    #[getter]
    fn index(&self) -> u64 {
        self.inner.index
    }
    #[getter]
    fn tree_size(&self) -> u64 {
        self.inner.tree_size
    }
    /// The `lineage-bundle/v1` document (checkable offline with
    /// `lineage-verify bundle`).
    #[getter]
    fn json(&self) -> &str {
        self.json.get_or_init(|| self.inner.to_json())
    }
    fn __repr__(&self) -> String {
        format!(
            "<lineage.Receipt index={} event_id={}>",
            self.inner.index, self.inner.event_id
        )
    }
}

/// Queues signed events of many workloads and submits them as arrays.
#[pyclass(frozen, module = "lineage._native")]
#[derive(Debug)]
pub struct Batcher {
    inner: lc::Batcher,
}

#[pymethods]
impl Batcher {
    /// Waits until every event queued before the call has its receipt (or
    /// its error, reported by its `PendingReceipt`).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let b = &self.inner;
        block(py, b.flush())
    }
}

/// The receipt of a batched event, once the ledger answered.
#[pyclass(frozen, module = "lineage._native")]
#[derive(Debug)]
pub struct PendingReceipt {
    inner: Mutex<Option<lc::PendingReceipt>>,
}

#[pymethods]
impl PendingReceipt {
    /// Blocks until the event's batch was answered; once only.
    fn wait(&self, py: Python<'_>) -> PyResult<Receipt> {
        let pending = self
            .inner
            .lock()
            .map_err(|_| PyRuntimeError::new_err("poisoned"))?
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this receipt was already waited for"))?;
        let r = block(py, pending.wait())?;
        Ok(Receipt::from(r))
    }
}

/// Creates an Ed25519 key file (mode 0600, refuses to overwrite) and returns
/// its public key (standard base64, as `lineage grant --public-key` takes it).
#[pyfunction]
pub fn keygen(path: PathBuf) -> PyResult<String> {
    let signing = lc::keyfile::generate_signing_key()
        .map_err(|e| LineageError::new_err(format!("no randomness: {e}")))?;
    lc::keyfile::write_key_file(&path, &signing)
        .map_err(|e| errors::Invalid::new_err(e.to_string()))?;
    Ok(public_key_of(&signing))
}

/// The public key (standard base64) of a key file.
#[pyfunction]
pub fn public_key(key_file: PathBuf) -> PyResult<String> {
    Ok(public_key_of(&key(&key_file)?))
}

fn public_key_of(k: &lc::SigningKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(k.verifying_key().as_bytes())
}

/// An authority key of the ledger: signs governance statements (grant,
/// revoke, halt, resume). For operators and tests; a runtime never holds one.
#[pyclass(frozen, module = "lineage._native")]
#[derive(Debug)]
pub struct Authority {
    inner: lc::Authority,
}

fn verifying_key(public_key: &str) -> PyResult<ed25519_dalek::VerifyingKey> {
    use base64::Engine as _;
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| errors::Invalid::new_err("public_key is standard base64 of 32 bytes"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| errors::Invalid::new_err("public_key is not an Ed25519 point"))
}

fn target(workload: Option<String>, runtime: Option<String>) -> PyResult<HaltTarget> {
    match (workload, runtime) {
        (Some(w), None) => Ok(HaltTarget::Workload(w)),
        (None, Some(r)) => Ok(HaltTarget::Runtime(r)),
        _ => Err(PyValueError::new_err(
            "name exactly one of workload= or runtime=",
        )),
    }
}

#[pymethods]
impl Authority {
    #[new]
    #[pyo3(signature = (server, key_file, *, log_key=None, state_file=None, ca_cert=None, read_token=None, timeout=10.0, retry_deadline=30.0))]
    // One parameter per Python keyword argument.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        server: String,
        key_file: PathBuf,
        log_key: Option<String>,
        state_file: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
        read_token: Option<String>,
        timeout: f64,
        retry_deadline: f64,
    ) -> PyResult<Self> {
        let config = config(
            server,
            log_key,
            state_file,
            ca_cert,
            read_token,
            timeout,
            retry_deadline,
            "strict",
        )?;
        let signing = key(&key_file)?;
        let client = lc::Client::new(config).map_err(|e| errors::to_py(py, e))?;
        Ok(Authority {
            inner: client.authority(signing),
        })
    }

    /// Grants `public_key` (standard base64) to `runtime`, now.
    fn grant(&self, py: Python<'_>, runtime: &str, public_key: &str) -> PyResult<Receipt> {
        let k = verifying_key(public_key)?;
        let a = &self.inner;
        Ok(Receipt::from(block(py, a.grant(runtime, &k))?))
    }

    /// Revokes `public_key` of `runtime`, now.
    fn revoke(&self, py: Python<'_>, runtime: &str, public_key: &str) -> PyResult<Receipt> {
        let k = verifying_key(public_key)?;
        let a = &self.inner;
        Ok(Receipt::from(block(py, a.revoke(runtime, &k))?))
    }

    /// Halts a workload or a runtime (and everything deriving from it).
    #[pyo3(signature = (*, workload=None, runtime=None, reason=None))]
    fn halt(
        &self,
        py: Python<'_>,
        workload: Option<String>,
        runtime: Option<String>,
        reason: Option<String>,
    ) -> PyResult<Receipt> {
        let t = target(workload, runtime)?;
        let a = &self.inner;
        Ok(Receipt::from(block(py, a.halt(t, reason.as_deref()))?))
    }

    /// Lifts the halt of a workload or a runtime.
    #[pyo3(signature = (*, workload=None, runtime=None))]
    fn resume(
        &self,
        py: Python<'_>,
        workload: Option<String>,
        runtime: Option<String>,
    ) -> PyResult<Receipt> {
        let t = target(workload, runtime)?;
        let a = &self.inner;
        Ok(Receipt::from(block(py, a.resume(t))?))
    }
}
