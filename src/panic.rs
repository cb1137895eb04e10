//! Panics are data: turning a caught panic payload into a message.
//!
//! The one home of `catch_unwind` around user code: [`catch`] (a panic becomes its message),
//! [`log_panic`] (a panic becomes a log line), [`drop_quietly`] (user data whose `Drop` may
//! panic). The host's own boundary (`host::runner::call`) builds a [`Failure`] on [`catch`];
//! [`Failure::from_panic`] is the same for code outside the crate.
//! One site keeps its own `catch_unwind`: the periodic service keeps a tick's payload to
//! re-raise it on escalation, so it reads the message with [`panic_message`]. The C
//! library's entry points catch in their own boundary macro, then go through
//! [`Failure::from_panic`].
//!
//! [`Failure`]: crate::Failure
//! [`Failure::from_panic`]: crate::Failure::from_panic

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f` (user code), catching a panic: `Err` with its message ([`take_message`]: the
/// payload is dropped here, safely).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(take_message)
}

/// Runs `f` (user code whose panic has no one to go to but the log): a panic is logged as
/// an error, `"{what} panicked: {message}"`, and gives `None`.
pub(crate) fn log_panic<R>(what: fmt::Arguments<'_>, f: impl FnOnce() -> R) -> Option<R> {
    match catch(f) {
        Ok(value) => Some(value),
        Err(message) => {
            crate::logging::error!("{what} panicked: {message}");
            None
        }
    }
}

/// Drops `value`, user data whose `Drop` may panic, swallowing such a panic.
#[cfg(any(feature = "queue", feature = "periodic"))]
pub(crate) fn drop_quietly<T>(value: T) {
    let _ = catch(move || drop(value));
}

/// The message of a caught panic: the payload as `&str`, then `String`, else a placeholder;
/// on one line (`crate::text`), as it goes to log lines and reports.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        crate::text::one_line(s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        crate::text::one_line(s)
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// [`panic_message`], then drops the payload where its own panic cannot escape: a payload is
/// user data, and a `Drop` that panics would otherwise unwind out of the boundary that caught
/// the first panic (ending a service, worker or listener thread, or a `stop` call). A panic
/// while dropping is swallowed; its own payload is leaked, not dropped (no regress).
pub(crate) fn take_message(payload: Box<dyn Any + Send>) -> String {
    let message = panic_message(payload.as_ref());
    if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(nested);
    }
    message
}

/// Displays `value` (a user's error: its `Display` is user code) on one line, writing a
/// placeholder instead if it panics, so that logging a failure cannot unwind the thread that
/// logs it.
pub(crate) struct Guarded<'a>(pub(crate) &'a (dyn fmt::Display + 'a));

impl fmt::Display for Guarded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On one line (`crate::text`): the text goes to log lines and reports.
        let write = || {
            use std::fmt::Write;
            write!(crate::text::Escaping(&mut *f), "{}", self.0)
        };
        match catch(write) {
            Ok(result) => result,
            Err(message) => write!(f, "<the error's Display panicked: {message}>"),
        }
    }
}
