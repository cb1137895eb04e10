//! Panics are data: turning a caught panic payload into a message.

use std::any::Any;

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
    if let Err(nested) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        drop(payload);
    })) {
        std::mem::forget(nested);
    }
    message
}

/// Displays `value` (a user's error: its `Display` is user code) on one line, writing a
/// placeholder instead if it panics, so that logging a failure cannot unwind the thread that
/// logs it.
pub(crate) struct Guarded<'a>(pub(crate) &'a (dyn std::fmt::Display + 'a));

impl std::fmt::Display for Guarded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // On one line (`crate::text`): the text goes to log lines and reports.
        let write = || {
            use std::fmt::Write;
            write!(crate::text::Escaping(&mut *f), "{}", self.0)
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(write)) {
            Ok(result) => result,
            Err(payload) => {
                let message = take_message(payload);
                write!(f, "<the error's Display panicked: {message}>")
            }
        }
    }
}
