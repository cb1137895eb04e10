//! The send errors of a [`Producer`](crate::Producer): every failure hands the item back.
//!
//! Shaped like crossbeam-channel's: `SendError<T>(pub T)`, `TrySendError<T>`,
//! `SendTimeoutError<T>`, with `into_inner`, `is_*` predicates and `From` conversions. `Debug`
//! never prints the payload (an item may be large, or secret), so `T` needs no `Debug`.

use std::error::Error;
use std::fmt;

/// [`Producer::send`](crate::Producer::send) failed: the queue is closed (it is stopping or
/// stopped), or, in [`FullMode::Reject`](crate::FullMode::Reject) only, full. The item is
/// handed back.
///
/// ```
/// use threadhost::SendError;
///
/// let e = SendError(vec![1u8; 1024]);
/// assert_eq!(format!("{e:?}"), "SendError(..)");
/// assert_eq!(e.into_inner().len(), 1024);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// [`Producer::try_send`](crate::Producer::try_send) failed; the item is handed back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The queue is full (in [`FullMode::Block`](crate::FullMode::Block) or
    /// [`FullMode::Reject`](crate::FullMode::Reject)).
    Full(T),
    /// The queue is closed: it is stopping or stopped.
    Closed(T),
}

/// [`Producer::send_timeout`](crate::Producer::send_timeout) or
/// [`Producer::send_deadline`](crate::Producer::send_deadline) failed; the item is handed back.
///
/// ```
/// use std::time::Duration;
/// use threadhost::{FullMode, SendTimeoutError, WorkQueue};
///
/// let (_queue, producer) = WorkQueue::builder("reject")
///     .capacity(1)
///     .full_mode(FullMode::Reject)
///     .build(|_: u32, _| Ok(()))?;
/// producer.send(1)?;
/// let refused = producer.send_timeout(2, Duration::from_secs(10)); // returns at once
/// assert_eq!(refused, Err(SendTimeoutError::Full(2)));
/// assert!(refused.unwrap_err().is_full());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The deadline passed while the queue was full ([`FullMode::Block`](crate::FullMode::Block)).
    Timeout(T),
    /// The queue was full and the send does not wait:
    /// [`FullMode::Reject`](crate::FullMode::Reject), refused at once whatever the deadline.
    Full(T),
    /// The queue is closed: it is stopping or stopped.
    Closed(T),
}

impl<T> SendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(item) | TrySendError::Closed(item) => item,
        }
    }

    /// `true` if the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// `true` if the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(item)
            | SendTimeoutError::Full(item)
            | SendTimeoutError::Closed(item) => item,
        }
    }

    /// `true` if the deadline passed while the queue was full.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// `true` if the queue was full and the send did not wait (Reject mode).
    pub fn is_full(&self) -> bool {
        matches!(self, SendTimeoutError::Full(_))
    }

    /// `true` if the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, SendTimeoutError::Closed(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(SendError(item): SendError<T>) -> TrySendError<T> {
        TrySendError::Closed(item)
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(SendError(item): SendError<T>) -> SendTimeoutError<T> {
        SendTimeoutError::Closed(item)
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Full(_) => f.write_str("Full(..)"),
            SendTimeoutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed (or, in Reject mode, full) queue")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full queue"),
            TrySendError::Closed(_) => f.write_str("sending on a closed queue"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out sending on a full queue"),
            SendTimeoutError::Full(_) => f.write_str("sending on a full queue"),
            SendTimeoutError::Closed(_) => f.write_str("sending on a closed queue"),
        }
    }
}

impl<T: Send> Error for SendError<T> {}
impl<T: Send> Error for TrySendError<T> {}
impl<T: Send> Error for SendTimeoutError<T> {}
