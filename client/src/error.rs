//! What a call can fail with. Every variant fails closed: none of them
//! means "recorded".

use lineage_schemas::Problem;

/// Why a call did not return a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The ledger refused the event (any problem answer other than 429 and
    /// 5xx), or the handle was already denied (an earlier refusal, or a halt
    /// or revocation seen on the governance stream). The handle stays
    /// denied; after a `resume`, [`crate::Runtime::open`] makes a new one.
    #[error("denied: {0}")]
    Denied(Box<Denial>),
    /// The ledger could not be reached, or answered 429 or 5xx, on every
    /// attempt until the retry deadline. The event may or may not have been
    /// committed; submitting the same envelope again is safe (a resubmission
    /// returns the original receipt).
    #[error("the ledger is unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// What the last one failed with.
        last: String,
    },
    /// The ledger answered something that does not verify: a receipt for
    /// another entry, a bad inclusion proof or checkpoint signature, a
    /// checkpoint inconsistent with one seen before (a fork). The client is
    /// poisoned: every later call fails the same way.
    #[error("the ledger is not trusted: {0}")]
    Untrusted(String),
    /// The caller's input, refused before anything was signed or sent.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The state file could not be read or written, or belongs to another log.
    #[error("state file: {0}")]
    State(String),
}

impl Error {
    /// A stable machine-readable code: the ledger's problem code for
    /// [`Error::Denied`] (e.g. `halted`, `revoked_key`), otherwise
    /// `unavailable`, `untrusted`, `invalid` or `state`.
    pub fn code(&self) -> &str {
        match self {
            Error::Denied(d) => &d.code,
            Error::Unavailable { .. } => "unavailable",
            Error::Untrusted(_) => "untrusted",
            Error::Invalid(_) => "invalid",
            Error::State(_) => "state",
        }
    }

    /// The denial, when this is one.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Error::Denied(d) => Some(d),
            _ => None,
        }
    }
}

/// A refusal: the ledger's problem, or the local decision that mirrors one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {detail}")]
pub struct Denial {
    /// The ledger's problem code (`halted`, `revoked_key`, `key_expired`,
    /// `out_of_scope`, `workload_closed`, `seq_conflict`, ...).
    pub code: String,
    /// The HTTP status it came with (or would have: 403 for a live halt).
    pub status: u16,
    /// The problem's short title (`Halted`, `Key expired`, ...).
    pub title: String,
    /// The ledger's explanation.
    pub detail: String,
    /// The offending field, when the ledger named one.
    pub field: Option<String>,
    /// For `halted`: the log index of the halt statement.
    pub halt_index: Option<u64>,
    /// The log index of the governance entry that decided it, when known
    /// (the halt, or the revocation seen on the governance stream).
    pub governing_index: Option<u64>,
    /// True when decided here (the handle was already denied, or a
    /// governance entry on the stream stops it) without asking the ledger.
    pub local: bool,
}

impl From<Problem> for Denial {
    fn from(p: Problem) -> Denial {
        Denial {
            code: p.code,
            status: p.status,
            title: p.title,
            detail: p.detail,
            field: p.field,
            halt_index: p.halt_index,
            governing_index: p.halt_index,
            local: false,
        }
    }
}

impl Denial {
    /// The refusal as the ledger's problem document (RFC 9457).
    pub fn to_problem(&self) -> Problem {
        Problem {
            field: self.field.clone(),
            halt_index: self.halt_index,
            ..Problem::new(
                self.status,
                self.code.clone(),
                self.title.clone(),
                self.detail.clone(),
            )
        }
    }

    /// A refusal decided here, mirroring the ledger's problem `code`.
    pub(crate) fn local(code: &str, status: u16, title: &str, detail: String) -> Denial {
        Denial {
            code: code.to_owned(),
            status,
            title: title.to_owned(),
            detail,
            field: None,
            halt_index: None,
            governing_index: None,
            local: true,
        }
    }

    /// A local `halted` refusal by the halt at `index`.
    pub(crate) fn halted(detail: String, index: Option<u64>) -> Denial {
        Denial {
            halt_index: index,
            governing_index: index,
            ..Denial::local("halted", 403, "Halted", detail)
        }
    }

    /// The same refusal, now decided locally (a later call of a denied handle).
    pub(crate) fn again(&self) -> Denial {
        Denial {
            local: true,
            ..self.clone()
        }
    }
}
