//! [`Deadline`]: the timeout of a call, whose clock starts only once the call has to wait.

use std::time::{Duration, Instant};

/// A deadline whose clock starts the first time it is consulted: reading the clock costs as
/// much as sending a small message, so calls that finish at once never read it (a timeout
/// then counts from the first moment the call had to wait).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    timeout: Duration,
    at: Option<Instant>,
}

/// The longest timeout a deadline counts (a century): `Duration::MAX` as a timeout means no
/// bound, and adding it to an `Instant` would overflow.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Deadline {
    pub(super) fn after(timeout: Duration) -> Deadline {
        Deadline {
            timeout: timeout.min(FOREVER),
            at: None,
        }
    }

    pub(super) fn at(at: Instant) -> Deadline {
        Deadline {
            timeout: Duration::ZERO,
            at: Some(at),
        }
    }

    pub(super) fn instant(&mut self) -> Instant {
        let timeout = self.timeout;
        *self.at.get_or_insert_with(|| Instant::now() + timeout)
    }

    pub(super) fn passed(&mut self) -> bool {
        self.passed_at(Instant::now())
    }

    /// [`passed`](Self::passed) with the clock read by the caller.
    pub(super) fn passed_at(&mut self, now: Instant) -> bool {
        let timeout = self.timeout;
        now >= *self.at.get_or_insert(now + timeout)
    }
}
