//! [`Failure`]: how a service (or a scoped factory) failed, as the reports, snapshots and
//! errors carry it. A leaf: it knows `panic` and nothing else of the crate.

use std::fmt;
use std::sync::Arc;

/// How a service failed: an error it returned, or a panic (with its message).
///
/// Panics are data: a panic in a service is caught on the service's own thread and becomes a
/// `Failure::Panic`; it never crosses to another thread or over the C boundary.
#[derive(Clone, Debug)]
pub enum Failure {
    /// The hook or body returned this error.
    Error(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The hook or body panicked with this message.
    Panic(Arc<str>),
}

impl Failure {
    /// `true` for a panic.
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(self, Failure::Panic(_))
    }

    /// The failure of a panic caught with [`std::panic::catch_unwind`]: a
    /// [`Failure::Panic`] with the payload's message (the payload as `&str` or `String`, else
    /// a placeholder), on one line, as threadhost reports its own caught panics. The payload
    /// is dropped here; a panic in its own `Drop` is swallowed.
    ///
    /// ```
    /// use threadhost::Failure;
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("disk {}", "full")).unwrap_err();
    /// let failure = Failure::from_panic(payload);
    /// assert!(failure.is_panic());
    /// assert_eq!(failure.to_string(), "panicked: disk full");
    /// ```
    #[must_use]
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Failure {
        Failure::Panic(crate::panic::take_message(payload).into())
    }

    pub(crate) fn from_box(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> Failure {
        Failure::Error(Arc::from(error))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A user's `Display`: guarded, as a failure is logged on threadhost threads.
            Failure::Error(e) => write!(f, "{}", crate::panic::Guarded(&**e)),
            Failure::Panic(message) => write!(f, "panicked: {message}"),
        }
    }
}
