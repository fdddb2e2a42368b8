//! What a request hands the sequencer, and what it gets back.

use std::sync::Arc;

use lineage_ledger::keys::EventId;
use lineage_ledger::rules::{Candidate, Rejection};
use lineage_ledger::store::StoredCheckpoint;
use tokio::sync::oneshot;

/// The outcome of one submitted envelope.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Newly appended at `index`; `entry` is the encoded log entry.
    Appended {
        /// Its index.
        index: u64,
        /// The encoded entry.
        entry: Arc<Vec<u8>>,
        /// Its event ID (the BLAKE3 of its payload, known since parsing).
        event_id: EventId,
    },
    /// Identical to the entry already at `index`.
    Identical {
        /// Its index.
        index: u64,
        /// Its event ID (the candidate's: an identical envelope has the
        /// same payload).
        event_id: EventId,
    },
    /// Refused by a rule.
    Rejected(Rejection),
    /// Not appended because the store failed.
    Failed,
}

/// The sequencer's answer to one request.
#[derive(Debug)]
pub struct JobReply {
    /// One outcome per candidate, in order.
    pub outcomes: Vec<Outcome>,
    /// The checkpoint of the batch (covers every `Appended` entry).
    pub checkpoint: Arc<StoredCheckpoint>,
}

pub(crate) struct Job {
    pub(crate) items: Vec<Candidate>,
    pub(crate) reply: oneshot::Sender<JobReply>,
}
