//! [`Deadline`]: a point in time by which an operation returns, or never.

use std::cmp::Ordering;
use std::fmt;
use std::time::{Duration, Instant};

/// A point in time by which a blocking operation returns, or *never*.
///
/// Every blocking verb of threadhost takes `impl Into<Deadline>`, so a [`Duration`] (counted
/// from now), an [`Instant`] or [`Deadline::NEVER`] all read naturally:
///
/// ```
/// use std::time::{Duration, Instant};
/// use threadhost::Deadline;
///
/// let soon: Deadline = Duration::from_millis(50).into();
/// let at: Deadline = (Instant::now() + Duration::from_secs(1)).into();
/// assert!(soon < at);
/// assert!(at < Deadline::NEVER);
/// // `Ord`: `min` is the earlier of two deadlines.
/// assert_eq!(soon.min(Deadline::NEVER), soon);
/// assert_eq!(Deadline::NEVER.remaining(), None);
/// // A duration too large to add to `now` means never, not a panic.
/// assert_eq!(Deadline::from(Duration::MAX), Deadline::NEVER);
/// ```
///
/// # Deadline, not timeout
///
/// A deadline is computed **once**, at the public entry point, and passed down to every step
/// beneath it: stopping ten services with `stop(Duration::from_secs(5))` gives all ten one
/// shared five-second budget, never five seconds each.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// The deadline that never passes.
    pub const NEVER: Deadline = Deadline(None);

    /// The deadline at `instant`.
    #[must_use]
    pub fn at(instant: Instant) -> Deadline {
        Deadline(Some(instant))
    }

    /// The deadline `timeout` from now; [`Deadline::NEVER`] if that overflows [`Instant`].
    #[must_use]
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// The instant of this deadline, or `None` for [`Deadline::NEVER`].
    #[must_use]
    pub fn instant(self) -> Option<Instant> {
        self.0
    }

    /// `true` for [`Deadline::NEVER`].
    #[must_use]
    pub fn is_never(self) -> bool {
        self.0.is_none()
    }

    /// Time left until the deadline, saturating at zero; `None` for [`Deadline::NEVER`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use threadhost::Deadline;
    ///
    /// let past = Deadline::at(Instant::now());
    /// assert_eq!(past.remaining(), Some(Duration::ZERO));
    /// ```
    #[must_use]
    pub fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// `true` once the deadline has passed (never for [`Deadline::NEVER`]).
    #[must_use]
    pub fn is_expired(self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// This deadline, or `timeout` from now if that is earlier; `None` leaves it unchanged.
    ///
    /// This is how a per-service stop timeout is combined with the host's shared deadline.
    #[must_use]
    pub fn min_after(self, timeout: Option<Duration>) -> Deadline {
        match timeout {
            Some(t) => self.min(Deadline::after(t)),
            None => self,
        }
    }
}

impl Default for Deadline {
    /// [`Deadline::NEVER`].
    fn default() -> Deadline {
        Deadline::NEVER
    }
}

impl Ord for Deadline {
    /// Earlier deadlines are smaller; [`Deadline::NEVER`] is the greatest.
    fn cmp(&self, other: &Deadline) -> Ordering {
        match (self.0, other.0) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        }
    }
}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Deadline) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Duration> for Deadline {
    /// `timeout` from now; overflow means never.
    fn from(timeout: Duration) -> Deadline {
        Deadline::after(timeout)
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Deadline {
        Deadline::at(instant)
    }
}

impl From<Option<Duration>> for Deadline {
    /// `Some(timeout)` from now, `None` never.
    fn from(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.remaining() {
            None => f.write_str("Deadline(never)"),
            Some(left) => write!(f, "Deadline(in {left:?})"),
        }
    }
}
