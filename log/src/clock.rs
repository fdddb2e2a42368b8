//! Time as a value, so that tests can freeze it.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

/// Where the ledger reads the time from.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that only moves when told to (tests).
    Fixed(Arc<Mutex<OffsetDateTime>>),
}

impl Clock {
    /// A frozen clock set to `at`.
    pub fn fixed(at: OffsetDateTime) -> Clock {
        Clock::Fixed(Arc::new(Mutex::new(at)))
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Fixed(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a fixed clock to `at`; no effect on the system clock.
    pub fn set(&self, at: OffsetDateTime) {
        if let Clock::Fixed(t) = self {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }
}

/// Unix milliseconds of a time, rounded down (0 before the epoch): the
/// ledger core's [`integration_ms`](lineage_ledger::rules::integration_ms).
pub fn unix_ms(t: OffsetDateTime) -> u64 {
    lineage_ledger::rules::integration_ms(t)
}
