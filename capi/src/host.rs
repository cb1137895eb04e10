//! `threadhost_host`: start, stop, join, run, request_stop, state; and the supervision
//! tree's runtime changes (add, remove, stop and restart a child by its path).

use std::ffi::c_char;

use parking_lot::RwLock;

use super::deadline_ms;
use super::group::{self, threadhost_group};
use super::handle::{self, write_out};
use super::service::threadhost_service;
use super::snapshot::threadhost_snapshot;
use super::status::{self, Status};
use super::stop::threadhost_token;
use threadhost::{Host, HostHandle, HostState};

/// Opaque: a built host, owned by C until `threadhost_host_free`.
pub struct threadhost_host {
    _private: [u8; 0],
}

castable!(threadhost_host => CHost, box);

/// The Rust side of `threadhost_host`.
///
/// `Host::run` consumes the host, while C keeps its pointer (to read the state, or request a
/// stop from another thread, during and after `run`). So the host sits in an `Option` that
/// `run` takes, and a `HostHandle` answers state, snapshot and stop requests whatever
/// happened to the host.
pub(crate) struct CHost {
    /// `None` once `threadhost_host_run` took it. Lock discipline: `start`, `stop` and `join`
    /// hold a *recursive* read lock across their blocking call, so they run concurrently
    /// (and a service hook may call them on its own host without deadlocking against a
    /// queued writer: there `stop` returns at once and `join` is refused, host invariant 8,
    /// tested by tests/c/self_stop.c); `run` only `try_write`s to take the host, failing
    /// with `INVALID_STATE` instead of waiting if another call is in progress. So no one
    /// ever blocks on this lock.
    host: RwLock<Option<Host>>,
    pub(crate) handle: HostHandle,
}

impl CHost {
    pub(crate) fn new(host: Host) -> CHost {
        CHost {
            handle: host.handle(),
            host: RwLock::new(Some(host)),
        }
    }

    /// Runs `f` on the host, or fails with `INVALID_STATE` if `run` took it.
    fn with(&self, operation: &str, f: impl FnOnce(&Host) -> Status) -> Status {
        let host = self.host.read_recursive();
        match &*host {
            Some(h) => f(h),
            None => status::fail(
                Status::INVALID_STATE,
                format!(
                    "cannot {operation} a host that threadhost_host_run is running or has run \
                     (it is {}); use threadhost_host_request_stop",
                    self.handle.state()
                ),
            ),
        }
    }
}

/// `threadhost_host_state` values, equal to `HostState`'s discriminants.
fn state_code(state: HostState) -> i32 {
    state as u8 as i32
}

/// Starts every service (see `Host::start`), returning by `timeout_ms`.
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_start(
    host: *const threadhost_host,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        let deadline = deadline_ms(timeout_ms);
        host.with("start", |h| match h.start(deadline) {
            Ok(()) => Status::OK,
            Err(error) => status::from_error(&error),
        })
    }
}

/// Stops the host (see `Host::stop`), returning by `timeout_ms`.
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_stop(
    host: *const threadhost_host,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        let deadline = deadline_ms(timeout_ms);
        host.with("stop", |h| status::from_report(&h.stop(deadline)))
    }
}

/// Waits until a stop was requested and the stop finished (see `Host::join`), returning by
/// `timeout_ms`.
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_join(
    host: *const threadhost_host,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        let deadline = deadline_ms(timeout_ms);
        host.with("join", |h| match h.join(deadline) {
            Ok(report) => status::from_report(&report),
            Err(error) => status::from_error(&error),
        })
    }
}

/// Runs the host to completion (see `Host::run`).
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_run(host: *const threadhost_host) -> Status {
    ffi_boundary! {
        let chost = try_ref!(host);
        let taken = match chost.host.try_write() {
            Some(mut slot) => slot.take(),
            None => {
                return status::fail(
                    Status::INVALID_STATE,
                    "cannot run a host while another thread starts, stops or joins it",
                );
            }
        };
        let Some(h) = taken else {
            return status::fail(
                Status::INVALID_STATE,
                format!("cannot run a host twice (it is {})", chost.handle.state()),
            );
        };
        if h.state() != HostState::Created {
            let state = h.state();
            // Put it back: it stays usable through start/stop/join.
            *chost.host.write() = Some(h);
            return status::fail(
                Status::INVALID_STATE,
                format!("cannot run a host that is {state}"),
            );
        }
        // The Rust result, mapped once (`status::from_result`): a failure under
        // `THREADHOST_POLICY_IGNORE` is `THREADHOST_OK`, as `Host::run` is `Ok`.
        status::from_result(&h.run())
    }
}

/// Asks the host to stop; returns at once.
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_request_stop(host: *const threadhost_host) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        host.handle.request_stop();
        Status::OK
    }
}

/// Reloads the host (see `HostHandle::reload`): calls every service's reload hook, returning
/// by `timeout_ms`. `OK` when every hook returned `OK`; `TIMEOUT` when the deadline ended
/// the reload (a hook still running then, or hooks whose turn never came); otherwise
/// `SERVICE_FAILED` (a hook failed or crashed, or was not run); for both, the last error
/// message names each service that did not reload, and why; `INVALID_STATE` when the host is not
/// running or another reload runs.
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_reload(
    host: *const threadhost_host,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        match host.handle.reload(deadline_ms(timeout_ms)) {
            Ok(report) if report.is_clean() => Status::OK,
            Ok(report) => {
                // The deadline ended it (a hook still running, or hooks whose turn never
                // came): a timeout, whatever else the report holds.
                let status = if report.timed_out() {
                    Status::TIMEOUT
                } else {
                    Status::SERVICE_FAILED
                };
                status::fail(status, report.to_string())
            }
            Err(error) => status::from_error(&error),
        }
    }
}

/// Asks the host to reload (see `HostHandle::request_reload`); returns at once.
/// `INVALID_STATE` when the host is not running.
///
/// # Safety
///
/// `host` is NULL or a live host.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_request_reload(host: *const threadhost_host) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        match host.handle.request_reload() {
            Ok(()) => Status::OK,
            Err(error) => status::from_error(&error),
        }
    }
}

/// The host's state (`THREADHOST_HOST_*`) in `*state_out`.
///
/// # Safety
///
/// `host` is NULL or a live host; `state_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_get_state(
    host: *const threadhost_host,
    state_out: *mut i32,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        try_out!(state_out);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(state_out, state_code(host.handle.state())) };
        Status::OK
    }
}

/// A snapshot of the host and its services in `*snapshot_out`; free it with
/// `threadhost_snapshot_free`.
///
/// # Safety
///
/// `host` is NULL or a live host; `snapshot_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_snapshot(
    host: *const threadhost_host,
    snapshot_out: *mut *mut threadhost_snapshot,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        try_out!(snapshot_out);
        let snapshot = handle::to_box_ptr::<threadhost_snapshot>(host.handle.snapshot());
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(snapshot_out, snapshot) };
        Status::OK
    }
}

/// `threadhost_event` values.
const EVENT_STARTED: i32 = 0;
const EVENT_STOPPING: i32 = 1;
const EVENT_STOPPED: i32 = 2;

/// An owned token of a lifetime event (`THREADHOST_EVENT_*`: started, stopping, stopped) in
/// `*token_out`, to wait on from any thread; free it with `threadhost_token_free`.
///
/// # Safety
///
/// `host` is NULL or a live host; `token_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_event_token(
    host: *const threadhost_host,
    event: i32,
    token_out: *mut *mut threadhost_token,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        try_out!(token_out);
        let token = match event {
            EVENT_STARTED => host.handle.started(),
            EVENT_STOPPING => host.handle.stopping(),
            EVENT_STOPPED => host.handle.stopped(),
            _ => {
                return status::fail(
                    Status::INVALID_ARGUMENT,
                    format!(
                        "`event` {event} is not a threadhost_event (THREADHOST_EVENT_STARTED 0, \
                         _STOPPING 1, _STOPPED 2)"
                    ),
                );
            }
        };
        let token = handle::to_box_ptr::<threadhost_token>(token);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(token_out, token) };
        Status::OK
    }
}

// ---- the supervision tree at runtime -------------------------------------------------------
//
// Through the host's `HostHandle`, not the `Host`: they work during and after
// `threadhost_host_run` too, and from the host's own threads (a service's body or hook holding
// the host's pointer), where the Rust side decides what may wait (tree invariant 1).

/// A stop report's status (`remove`, `stop_child`), or the error's.
fn report_status(result: &Result<threadhost::StopReport, threadhost::Error>) -> Status {
    match result {
        Ok(report) => status::from_report(report),
        Err(error) => status::from_error(error),
    }
}

/// Adds `service` to the running group at `group_path` (`""`: the top level) and starts it,
/// by `timeout_ms` (see `HostHandle::add_service`). Consumes `service` whatever the outcome.
///
/// # Safety
///
/// `host` is NULL or a live host; `group_path` is NULL or a NUL-terminated string; `service`
/// is NULL or a live service, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_add_service(
    host: *const threadhost_host,
    group_path: *const c_char,
    service: *mut threadhost_service,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        // Take the service first: it is consumed whatever happens next.
        let service = try_box!(service);
        let host = try_ref!(host);
        let group_path = try_str!(group_path);
        let deadline = deadline_ms(timeout_ms);
        match host.handle.add_service(group_path, *service, deadline) {
            Ok(()) => Status::OK,
            Err(error) => status::from_error(&error),
        }
    }
}

/// Adds `group` (and everything in it) to the running group at `parent_path` (`""`: the top
/// level) and starts it, by `timeout_ms` (see `HostHandle::add_group`). Consumes `group`
/// whatever the outcome.
///
/// # Safety
///
/// `host` is NULL or a live host; `parent_path` is NULL or a NUL-terminated string; `group`
/// is NULL or a live group, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_add_group(
    host: *const threadhost_host,
    parent_path: *const c_char,
    group: *mut threadhost_group,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        // Take the group first: it is consumed whatever happens next.
        let group = try_box!(group);
        let host = try_ref!(host);
        let parent_path = try_str!(parent_path);
        let group = match group::take(*group) {
            Ok(g) => g,
            Err(status) => return status,
        };
        let deadline = deadline_ms(timeout_ms);
        match host.handle.add_group(parent_path, group, deadline) {
            Ok(()) => Status::OK,
            Err(error) => status::from_error(&error),
        }
    }
}

/// Stops the child at `path` and removes it from the tree, by `timeout_ms` (see
/// `HostHandle::remove`); the status summarises the stop's report as `threadhost_host_stop`'s
/// does.
///
/// # Safety
///
/// `host` is NULL or a live host; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_remove(
    host: *const threadhost_host,
    path: *const c_char,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        let path = try_str!(path);
        let deadline = deadline_ms(timeout_ms);
        report_status(&host.handle.remove(path, deadline))
    }
}

/// Stops the child at `path`, leaving it in the tree, stopped, by `timeout_ms` (see
/// `HostHandle::stop_child`); the status as `threadhost_host_remove`'s.
///
/// # Safety
///
/// `host` is NULL or a live host; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_stop_child(
    host: *const threadhost_host,
    path: *const c_char,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        let path = try_str!(path);
        let deadline = deadline_ms(timeout_ms);
        report_status(&host.handle.stop_child(path, deadline))
    }
}

/// Stops the child at `path` (if it runs) and starts it again, by `timeout_ms` (see
/// `HostHandle::restart_child`).
///
/// # Safety
///
/// `host` is NULL or a live host; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_restart_child(
    host: *const threadhost_host,
    path: *const c_char,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let host = try_ref!(host);
        let path = try_str!(path);
        let deadline = deadline_ms(timeout_ms);
        match host.handle.restart_child(path, deadline) {
            Ok(()) => Status::OK,
            Err(error) => status::from_error(&error),
        }
    }
}

/// Frees the host; a running host is stopped first, waiting at most its shutdown timeout.
/// NULL is a no-op.
///
/// # Safety
///
/// `host` is NULL or a live host, not in use by another thread, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_free(host: *mut threadhost_host) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned host handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(host) });
    }
}
