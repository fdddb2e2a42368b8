//! Lineage Explorer and Proof Viewer: server-rendered pages over a running
//! ledger, mounted by `lineage serve` next to the JSON API on the same port.
//!
//! **What it is.** axum handlers and askama templates that read the log
//! through the same [`LogService`] as the API (the store, the key registry,
//! the head checkpoint, the metrics): a dashboard, the entries list
//! (cursor paging by index), event, workload and runtime pages (with their
//! governance: halts, what they stop, key windows and scopes), a lineage
//! graph drawn as server-side SVG ([`graph`]), the checkpoint history, and the
//! Proof Viewer, whose "Verify in this browser" button re-checks an RFC 6962
//! inclusion proof (RFC 9162 §2.1.3.2) or consistency proof (§2.1.4.2) with
//! WebCrypto SHA-256 and the checkpoint's C2SP signed-note Ed25519 signature
//! with WebCrypto Ed25519, in `static/verify.js`. The Governance Console
//! (`console.rs`) shows who may execute what, now or as of any index, and
//! signs governance statements in the browser (`static/console.js`).
//!
//! **What it is not.** It never writes to the log (the console's script
//! posts a browser-signed envelope to the API's `POST /v1/entries`, like any
//! client; the server holds no authority key for it) and holds no Merkle or
//! signature logic of its own beyond drawing: proofs come from the ledger's
//! pure core, exactly as the API serves them. It is not a single-page app:
//! HTML, one stylesheet and small plain scripts, embedded in the binary.
//!
//! **Cost.** Every page is bounded: point reads and short range reads by
//! index, binary searches over the (monotone) integration time, and bounded
//! scans for the filters the store has no index for (a page says when it
//! stopped scanning). What needs a pass over the whole log (the event,
//! statement and workload counts, the event kinds) comes from a small
//! [`index`] that a background task fills from the store, in chunks, and
//! saves in the store, so a restart goes on from the saved counts instead of
//! reading the log again; pages top it up (boundedly) before they read it.
//! The checkpoint history is the store's own reverse listing.

mod assets;
mod checkpoints;
mod console;
mod dashboard;
mod entries;
mod event;
mod governance;
pub mod graph;
mod health;
mod index;
mod page;
mod proofs;
mod reader;
mod runtime;
pub mod sparkline;
mod view;
mod witnesses;
mod workload;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use lineage_log::{Core, LogService};

pub use page::PageError;

/// What every explorer handler gets: the log plus the explorer's index.
#[derive(Clone, Debug)]
struct Explorer {
    log: Arc<LogService>,
    index: Arc<index::Index>,
}

impl Explorer {
    fn core(&self) -> &Arc<Core> {
        self.log.core()
    }
}

/// The explorer's pages and static files, to be merged with the API's routes
/// and put behind the same guards (`lineage_api::app`; the API owns the
/// fallback: this router has none).
///
/// When called inside a tokio runtime it also starts the background task that
/// keeps the explorer's [`index`] in step with the log (restoring the counts
/// it saved in the store, then saving them as it goes); the task ends when
/// the router is dropped. Nothing here reads the store: the router is ready
/// at once, whatever the size of the log.
pub fn router(log: Arc<LogService>) -> Router {
    let index = Arc::new(index::Index::default());
    if tokio::runtime::Handle::try_current().is_ok() {
        index::spawn_follower(Arc::downgrade(&index), Arc::downgrade(log.core()));
    }
    let ex = Explorer { log, index };
    Router::new()
        .route("/", get(dashboard::page))
        .route("/entries", get(entries::page))
        .route("/entries/{index}", get(entries::by_index))
        .route("/search", get(entries::search))
        .route("/events/{id}", get(event::page))
        .route("/events/{id}/receipt", get(event::receipt))
        .route("/workloads/{id}", get(workload::page))
        .route("/runtimes", get(runtime::list))
        .route("/runtimes/{id}", get(runtime::page))
        .route("/checkpoints", get(checkpoints::page))
        .route("/governance", get(console::page))
        .route("/proofs/inclusion", get(proofs::inclusion))
        .route("/proofs/consistency", get(proofs::consistency))
        .route("/health", get(health::page))
        .route("/health.json", get(health::json))
        .route("/static/{file}", get(static_file))
        .with_state(ex)
}

/// `/static/{file}`: an embedded asset, or the 404 page.
async fn static_file(Path(file): Path<String>) -> Result<Response, PageError> {
    assets::response(&file)
        .ok_or_else(|| PageError::NotFound(format!("There is no static file named {file:?}.")))
}

/// Runs a blocking read against the core on the blocking pool.
async fn blocking<T: Send + 'static>(
    ex: &Explorer,
    f: impl FnOnce(&Core) -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    let core = ex.core().clone();
    tokio::task::spawn_blocking(move || f(&core))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "explorer read task failed");
            PageError::Internal
        })?
}
