//! Process lifetime: exit codes, the console lifetime (signals, the `termination` feature:
//! `SIGINT`, `SIGTERM`, `SIGQUIT` stop gracefully, `SIGHUP` reloads, a second terminating
//! signal exits at once with 128 + its number), and systemd's notify protocol and watchdog
//! (the `systemd` feature, `Type=notify` and `Type=notify-reload`).

#[cfg(feature = "termination")]
mod console;
#[cfg(all(unix, feature = "systemd"))]
mod systemd;

#[cfg(feature = "termination")]
pub(crate) use console::install;

/// The systemd notify listener, or `None` when not run by systemd (`NOTIFY_SOCKET` unset) or
/// not on Unix.
///
/// # Errors
///
/// [`Error::InvalidOption`] naming `NOTIFY_SOCKET`, `WATCHDOG_USEC` or `WATCHDOG_PID` when one
/// is set to something unusable.
#[cfg(feature = "systemd")]
pub(crate) fn systemd_listener() -> Result<Option<crate::host::Listener>, Error> {
    #[cfg(unix)]
    return systemd::listener();
    #[cfg(not(unix))]
    return Ok(None);
}

use crate::error::Error;
use crate::report::StopReport;

/// Exit code of a graceful stop.
pub const EXIT_OK: u8 = 0;
/// Exit code when a start failed, or a service failed under `Policy::StopHost`.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code when the host could not be built or configured (a bad option, a duplicate
/// name, a dependency error).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when the stop overran its deadline (services were left running).
pub const EXIT_STOP_TIMEOUT: u8 = 3;
/// Exit code of the console lifetime when a second `SIGINT` arrives while the stop a first
/// terminating signal asked for runs (a stop the host began by itself does not count), or
/// one arrives after every console-lifetime host stopped: the process exits at
/// once with 128 + the signal's number, as a shell reports a process a signal killed. This is
/// the `SIGINT` case (130, Ctrl-C); `SIGTERM` gives 143 and `SIGQUIT` 131. On Windows,
/// Ctrl-C and Ctrl-Break both give 130.
pub const EXIT_FORCED: u8 = 130;

/// Maps the result of [`Host::run`](crate::Host::run) to a process exit code:
/// [`EXIT_OK`], [`EXIT_FAILURE`], [`EXIT_CONFIG`] or [`EXIT_STOP_TIMEOUT`].
///
/// The example needs the `termination` feature (on by default), for the console lifetime:
///
#[cfg_attr(feature = "termination", doc = "```no_run")]
#[cfg_attr(not(feature = "termination"), doc = "```ignore")]
/// use std::process::ExitCode;
/// use threadhost::HostBuilder;
///
/// fn main() -> ExitCode {
///     let result = HostBuilder::new()
///         .console_lifetime()
///         .background("worker", |ctx| { ctx.token().wait(); Ok(()) })
///         .build()
///         .and_then(|host| host.run());
///     ExitCode::from(threadhost::exit_code(&result))
/// }
/// ```
#[must_use]
pub fn exit_code(result: &Result<StopReport, Error>) -> u8 {
    match result {
        Ok(_) => EXIT_OK,
        Err(Error::StopTimeout { .. }) => EXIT_STOP_TIMEOUT,
        Err(
            Error::InvalidOption { .. }
            | Error::DuplicateService { .. }
            | Error::UnknownDependency { .. }
            | Error::DependencyCycle { .. },
        ) => EXIT_CONFIG,
        Err(_) => EXIT_FAILURE,
    }
}
