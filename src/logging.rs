//! The crate's log lines, each one caught: a logger is user code.
//!
//! The rule: the crate never calls the `log` macros directly; it calls `error!`,
//! `warn!`, `info!`, `debug!` and `trace!` of this module
//! (`crate::logging::info!(...)`), which take exactly the `log` macro's tokens (key-values
//! included: `service = &*path; "..."`) and run it under `catch_unwind`. The program's
//! logger (`log::Log`), and the `Display` of whatever a line formats (a user's error), is
//! user code: a panic there is swallowed with its line, its payload dropped where its own
//! `Drop` cannot unwind ([`crate::panic::catch`]). So no logger can end a queue worker with
//! an item in hand, a stop hook before its report, the host's stop sequence, a supervisor's
//! restart, a reload or a signal. A line that cannot be written is lost; nothing else is.
//!
//! No `log_enabled!` check first: the `log` macros compare the level with the static maximum
//! before formatting or calling the logger, and `catch_unwind` costs nothing when nothing
//! unwinds. The one exception is the C library's dispatcher (`capi/src/log.rs`), which *is*
//! a logger; the C library guards its own few log lines the same way.

/// Runs `line` (one `log` macro call), swallowing a panic of the logger or of a formatted
/// value.
#[inline]
pub(crate) fn guarded(line: impl FnOnce()) {
    let _ = crate::panic::catch(line);
}

/// `log::error!`, caught (module docs).
macro_rules! log_error {
    ($($t:tt)*) => {
        $crate::logging::guarded(|| ::log::error!($($t)*))
    };
}

/// `log::warn!`, caught (module docs).
macro_rules! log_warn {
    ($($t:tt)*) => {
        $crate::logging::guarded(|| ::log::warn!($($t)*))
    };
}

/// `log::info!`, caught (module docs).
macro_rules! log_info {
    ($($t:tt)*) => {
        $crate::logging::guarded(|| ::log::info!($($t)*))
    };
}

/// `log::debug!`, caught (module docs).
macro_rules! log_debug {
    ($($t:tt)*) => {
        $crate::logging::guarded(|| ::log::debug!($($t)*))
    };
}

/// `log::trace!`, caught (module docs).
// Used by the `systemd` feature only.
#[allow(unused_macros)]
macro_rules! log_trace {
    ($($t:tt)*) => {
        $crate::logging::guarded(|| ::log::trace!($($t)*))
    };
}

// Defined as `log_*` and exported under the `log` names: a `macro_rules! warn` could not be
// imported by its own name (it would be ambiguous with the built-in `#[warn]` attribute).
#[allow(unused_imports)]
pub(crate) use {
    log_debug as debug, log_error as error, log_info as info, log_trace as trace, log_warn as warn,
};
