//! Status codes, the thread-local last error, and copies of strings into caller buffers.

use std::cell::RefCell;
use std::ffi::c_char;

use threadhost::{Error, StopReport};

/// `threadhost_status`: an `int32_t`, `THREADHOST_OK` (0) or one of the codes below.
///
/// Codes are stable and never reused; a retired code stays listed here (and in the header)
/// as a comment.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    pub(crate) const OK: Status = Status(0);
    pub(crate) const NULL_ARGUMENT: Status = Status(1);
    pub(crate) const INVALID_ARGUMENT: Status = Status(2);
    pub(crate) const INVALID_STATE: Status = Status(3);
    pub(crate) const TIMEOUT: Status = Status(4);
    #[cfg_attr(not(feature = "queue"), allow(dead_code))]
    pub(crate) const FULL: Status = Status(5);
    #[cfg_attr(not(feature = "queue"), allow(dead_code))]
    pub(crate) const CLOSED: Status = Status(6);
    pub(crate) const SERVICE_FAILED: Status = Status(7);
    pub(crate) const START_FAILED: Status = Status(8);
    pub(crate) const START_TIMEOUT: Status = Status(9);
    pub(crate) const STOP_TIMEOUT: Status = Status(10);
    pub(crate) const PANIC: Status = Status(11);
    pub(crate) const SPAWN_FAILED: Status = Status(12);
    pub(crate) const STOPPED: Status = Status(13);
    pub(crate) const BUFFER_TOO_SMALL: Status = Status(14);
    pub(crate) const INVALID_CONFIG: Status = Status(15);
    #[cfg_attr(not(feature = "termination"), allow(dead_code))]
    pub(crate) const SIGNAL_FAILED: Status = Status(16);
    pub(crate) const NOT_FOUND: Status = Status(17);
    pub(crate) const STILL_RUNNING: Status = Status(18);
}

/// The codes and their names, in code order (the header lists the same).
const NAMES: [&str; 19] = [
    "THREADHOST_OK\0",
    "THREADHOST_NULL_ARGUMENT\0",
    "THREADHOST_INVALID_ARGUMENT\0",
    "THREADHOST_INVALID_STATE\0",
    "THREADHOST_TIMEOUT\0",
    "THREADHOST_FULL\0",
    "THREADHOST_CLOSED\0",
    "THREADHOST_SERVICE_FAILED\0",
    "THREADHOST_START_FAILED\0",
    "THREADHOST_START_TIMEOUT\0",
    "THREADHOST_STOP_TIMEOUT\0",
    "THREADHOST_PANIC\0",
    "THREADHOST_SPAWN_FAILED\0",
    "THREADHOST_STOPPED\0",
    "THREADHOST_BUFFER_TOO_SMALL\0",
    "THREADHOST_INVALID_CONFIG\0",
    "THREADHOST_SIGNAL_FAILED\0",
    "THREADHOST_NOT_FOUND\0",
    "THREADHOST_STILL_RUNNING\0",
];

/// The NUL-terminated name of `status`.
pub(crate) fn name_c(status: Status) -> &'static str {
    usize::try_from(status.0)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("THREADHOST_UNKNOWN\0")
}

/// The name of `status`, without the NUL.
pub(crate) fn name(status: Status) -> &'static str {
    name_c(status).trim_end_matches('\0')
}

thread_local! {
    /// The calling thread's last error message. Read with `try_with`: a
    /// call during thread teardown must not touch a destroyed slot.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Replaces the calling thread's last error message.
pub(crate) fn set_last_error(message: String) {
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// The calling thread's last error message ("" if none).
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|slot| slot.try_borrow().map(|s| s.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// Records `message` as the last error and returns `status`.
pub(crate) fn fail(status: Status, message: impl Into<String>) -> Status {
    let message = message.into();
    crate::boundary::log_quietly(|| log::debug!("threadhost C API: {}: {message}", name(status)));
    set_last_error(message);
    status
}

/// `THREADHOST_INVALID_STATE` from a function whose Cargo feature was left out of this build
/// (see `off.rs`): `what` says what is missing.
#[cold]
#[allow(dead_code)] // unused in the build with every feature on
pub(crate) fn without_feature(feature: &str, what: &str) -> Status {
    fail(
        Status::INVALID_STATE,
        format!("threadhost was built without its `{feature}` feature: {what}"),
    )
}

/// `THREADHOST_NULL_ARGUMENT` naming the parameter.
#[cold]
pub(crate) fn null_argument(parameter: &str) -> Status {
    fail(
        Status::NULL_ARGUMENT,
        format!("`{parameter}` must not be NULL"),
    )
}

/// The status of an [`Error`], its message recorded as the last error.
pub(crate) fn from_error(error: &Error) -> Status {
    #[allow(unreachable_patterns)] // `Error` may grow; a new variant maps to a failure
    let status = match error {
        Error::InvalidOption { .. }
        | Error::DuplicateService { .. }
        | Error::UnknownDependency { .. }
        | Error::DependencyCycle { .. } => Status::INVALID_CONFIG,
        Error::InvalidState { .. } | Error::ReloadInProgress => Status::INVALID_STATE,
        Error::Spawn { .. } => Status::SPAWN_FAILED,
        Error::StartFailed { .. } => Status::START_FAILED,
        Error::StartTimeout { .. } => Status::START_TIMEOUT,
        Error::ServiceFailed { .. } => Status::SERVICE_FAILED,
        Error::StopTimeout { .. } => Status::STOP_TIMEOUT,
        Error::JoinTimeout { .. } | Error::ChangeTimeout { .. } => Status::TIMEOUT,
        Error::UnknownChild { .. } => Status::NOT_FOUND,
        Error::StillRunning { .. } => Status::STILL_RUNNING,
        Error::UnregisteredType { .. } => Status::INVALID_ARGUMENT,
        #[cfg(feature = "termination")]
        Error::Signal(_) => Status::SIGNAL_FAILED,
        _ => Status::SERVICE_FAILED,
    };
    fail(status, error.to_string())
}

/// The status of a `Host::run` result: `OK` for `Ok` (also when a service failed under
/// `Policy::Ignore`, which `run` does not count as a failure), else [`from_error`]. The C
/// API's one mapping of outcomes: `threadhost_exit_code` of it equals
/// [`exit_code`](threadhost::exit_code) of the result (unit test below, and `tests/c_api.rs`
/// `c_parity` across the ABI).
pub(crate) fn from_result(result: &Result<StopReport, Error>) -> Status {
    match result {
        Ok(_) => Status::OK,
        Err(error) => from_error(error),
    }
}

/// The exit code of a status, as `threadhost_exit_code` returns it: the status-side image of
/// [`exit_code`](threadhost::exit_code).
pub(crate) fn exit_code(status: Status) -> u8 {
    match status {
        Status::OK => threadhost::EXIT_OK,
        Status::INVALID_CONFIG => threadhost::EXIT_CONFIG,
        Status::STOP_TIMEOUT => threadhost::EXIT_STOP_TIMEOUT,
        _ => threadhost::EXIT_FAILURE,
    }
}

/// The status of a stop (`threadhost_host_stop`, `_join`): a summary of the report, not
/// `run`'s outcome. `STOP_TIMEOUT` if a service overran (or the report is incomplete),
/// else `SERVICE_FAILED` if a service failed, else `OK`. A non-OK status records the report
/// as the last error.
pub(crate) fn from_report(report: &StopReport) -> Status {
    if report.is_in_progress() {
        // A stop on one of the host's own threads: requested, and going on without its caller.
        return Status::OK;
    }
    if !report.is_complete() || !report.timed_out().is_empty() {
        return fail(Status::STOP_TIMEOUT, report.to_string());
    }
    if let Some((service, failure)) = report.host_failure() {
        return fail(
            Status::SERVICE_FAILED,
            format!("service `{service}` failed: {failure}; {report}"),
        );
    }
    if report.failures().next().is_some() {
        return fail(Status::SERVICE_FAILED, report.to_string());
    }
    Status::OK
}

/// Copies `s` into the caller's buffer, as `snprintf` does: at most `len - 1` bytes (cut at a
/// UTF-8 character boundary) and a NUL; `*out_n` (if not NULL) receives `s.len()`, the full
/// length without the NUL. Returns `OK` if all of `s` fit, `BUFFER_TOO_SMALL` if it was cut
/// (nothing is recorded as the last error, so the last error message itself can be read in
/// pieces), `NULL_ARGUMENT` if `buf` is NULL and `len > 0`.
///
/// `buf == NULL` with `len == 0` asks for the length only.
///
/// # Safety
///
/// `buf` is NULL or points to `len` writable bytes; `out_n` is NULL or points to a writable
/// `size_t`.
pub(crate) unsafe fn copy_str(s: &str, buf: *mut c_char, len: usize, out_n: *mut usize) -> Status {
    if buf.is_null() && len > 0 {
        return null_argument("buf");
    }
    if !out_n.is_null() {
        // SAFETY: not NULL, and writable by this fn's contract.
        unsafe { super::handle::write_out(out_n, s.len()) };
    }
    if len == 0 {
        return if s.is_empty() {
            Status::OK
        } else {
            Status::BUFFER_TOO_SMALL
        };
    }
    let mut n = s.len().min(len - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` has `len > n` writable bytes (contract above); `s` is a distinct Rust
    // string, so the ranges do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), n) };
    // SAFETY: `n < len`, so `buf + n` stays within the caller's buffer.
    let end = unsafe { buf.add(n) };
    // SAFETY: `end` is within the caller's writable buffer (above).
    unsafe { super::handle::write_out(end, 0) };
    if n == s.len() {
        Status::OK
    } else {
        Status::BUFFER_TOO_SMALL
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Status, exit_code, from_result};
    use threadhost::{Error, Failure, HostBuilder, HostState, StopReport};

    /// A complete, clean report: the stop of a host with no service.
    fn clean_report() -> StopReport {
        let host = HostBuilder::new().build().unwrap();
        host.start(std::time::Duration::from_secs(5)).unwrap();
        host.stop(std::time::Duration::from_secs(5))
    }

    /// Every `Error` variant (and `Ok`) maps to the same exit code through the C status as
    /// through Rust's `exit_code`: one mapping, two doors.
    #[test]
    fn status_exit_codes_agree_with_rust_exit_code() {
        let name: Arc<str> = Arc::from("svc");
        let failure = Failure::Panic(Arc::from("boom"));
        let results: Vec<Result<StopReport, Error>> = vec![
            Ok(clean_report()),
            Err(Error::InvalidOption {
                name: "x".to_owned(),
                value: "1".to_owned(),
                reason: "bad".to_owned(),
            }),
            Err(Error::InvalidState {
                operation: "start",
                state: HostState::Running,
            }),
            Err(Error::DuplicateService {
                service: name.clone(),
            }),
            Err(Error::UnknownDependency {
                service: name.clone(),
                dependency: name.clone(),
            }),
            Err(Error::DependencyCycle {
                services: vec![name.clone()],
            }),
            Err(Error::Spawn {
                service: name.clone(),
                source: std::io::Error::other("no"),
            }),
            Err(Error::StartFailed {
                service: name.clone(),
                failure: failure.clone(),
            }),
            Err(Error::StartTimeout {
                service: name.clone(),
            }),
            Err(Error::ServiceFailed {
                service: name.clone(),
                failure: failure.clone(),
                report: Box::new(clean_report()),
            }),
            Err(Error::StopTimeout {
                services: vec![name.clone()],
                report: Box::new(clean_report()),
            }),
            Err(Error::JoinTimeout {
                state: HostState::Running,
            }),
            Err(Error::UnknownChild {
                path: Arc::from("devices/plc-9"),
            }),
            Err(Error::StillRunning {
                service: name.clone(),
            }),
            Err(Error::ChangeTimeout {
                operation: "remove",
                path: name.clone(),
            }),
            Err(Error::UnregisteredType { type_name: "T" }),
            Err(Error::FactoryFailed {
                type_name: "T",
                failure,
            }),
            Err(Error::ScopedType { type_name: "T" }),
        ];
        for result in &results {
            let status = from_result(result);
            assert_eq!(
                exit_code(status),
                threadhost::exit_code(result),
                "{result:?} -> {status:?}"
            );
        }
        assert_eq!(from_result(&Ok(clean_report())), Status::OK);
    }
}
