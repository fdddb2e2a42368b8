//! The library half of the `lineage` binary: what its tests and benches
//! call directly. Everything else of the binary lives in `main.rs` and its
//! private modules.

pub mod export;
pub use lineage_client::keyfile;

use axum::Router;
use lineage_api::AppState;

/// The ledger's whole HTTP application, exactly as `lineage serve` serves
/// it: the API and the explorer's pages, every route behind the same guards
/// ([`lineage_api::guard`], applied once, last).
pub fn app(state: AppState, read_token: Option<&str>) -> Router {
    let pages = lineage_explorer::router(state.log.clone());
    lineage_api::app(state, pages, read_token)
}
