//! The Lineage log service: the running log between the store and its
//! readers.
//!
//! **What it is.** The one task that appends (the [`sequencer`]: group
//! commit on a thread of its own), the batch it decides against the
//! committed log ([`batch`], the ledger's own `BatchState` over the store),
//! the shared read state and its reads ([`service`]: heads, keys, receipts,
//! proofs), proof nodes read from the stored tiles ([`nodes`]), bounded
//! caches ([`cache`]), metrics ([`metrics`]) and their recent history
//! ([`health`]), each commit's counts for the explorer ([`counts`]), the clock ([`clock`]) and the
//! tunables ([`config`]).
//!
//! **What it is not.** It knows nothing of HTTP (status codes, routing,
//! problem bodies): `lineage-api` and `lineage-explorer` serve it. It holds
//! no rule and no Merkle math: those are `lineage-ledger`'s pure core.

pub mod batch;
pub mod cache;
pub mod clock;
pub mod config;
pub mod core;
pub mod counts;
pub mod governance;
pub mod health;
pub mod job;
pub mod metrics;
pub mod nodes;
pub mod sequencer;
pub mod service;
mod sync;
pub mod witnessing;

pub use clock::Clock;
pub use config::LogConfig;
pub use core::{Core, GovernancePage, ReadError, StartError};
pub use counts::{CommitCounts, CountsBuilder};
pub use job::{JobReply, Outcome};
pub use service::{LogService, SubmitError};
