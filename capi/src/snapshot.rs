//! `threadhost_snapshot`: a host's state, its services' states, restarts, names, paths and
//! last errors, and its groups' (the supervision tree), read at one moment.

use std::ffi::c_char;

use super::group::strategy_code;
use super::handle::{self, write_out};
use super::status::{self, Status};
use threadhost::{GroupStatus, HostSnapshot, ServiceState, ServiceStatus};

/// Opaque: a snapshot, owned by C until `threadhost_snapshot_free`.
pub struct threadhost_snapshot {
    _private: [u8; 0],
}

castable!(threadhost_snapshot => HostSnapshot, box);

/// `threadhost_service_state` values.
fn service_state_code(state: ServiceState) -> i32 {
    #[allow(unreachable_patterns)] // `ServiceState` may grow; a new state reads as failed
    match state {
        ServiceState::Created => 0,
        ServiceState::Starting => 1,
        ServiceState::Running => 2,
        ServiceState::Restarting => 3,
        ServiceState::Completed => 4,
        ServiceState::Stopping => 5,
        ServiceState::Stopped => 6,
        ServiceState::Failed => 7,
        ServiceState::TimedOut => 8,
        ServiceState::Skipped => 9,
        _ => 7,
    }
}

/// The service at `index`, or `INVALID_ARGUMENT` naming the count.
fn service(snapshot: &HostSnapshot, index: usize) -> Result<&ServiceStatus, Status> {
    snapshot.services.get(index).ok_or_else(|| {
        status::fail(
            Status::INVALID_ARGUMENT,
            format!(
                "`index` {index} is out of range: the snapshot has {} services",
                snapshot.services.len()
            ),
        )
    })
}

/// The group at `index`, or `INVALID_ARGUMENT` naming the count.
fn group(snapshot: &HostSnapshot, index: usize) -> Result<&GroupStatus, Status> {
    snapshot.groups.get(index).ok_or_else(|| {
        status::fail(
            Status::INVALID_ARGUMENT,
            format!(
                "`index` {index} is out of range: the snapshot has {} groups",
                snapshot.groups.len()
            ),
        )
    })
}

/// The last name of a path (`poller` of `devices/plc-7/poller`).
fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The host's state (`THREADHOST_HOST_*`) when the snapshot was taken.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `state_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_host_state(
    snapshot: *const threadhost_snapshot,
    state_out: *mut i32,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(state_out);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(state_out, snapshot.state as u8 as i32) };
        Status::OK
    }
}

/// The number of services (indexes are `0 .. count - 1`, in tree order).
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_count(
    snapshot: *const threadhost_snapshot,
    count_out: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(count_out);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(count_out, snapshot.services.len()) };
        Status::OK
    }
}

/// The state (`THREADHOST_SERVICE_*`) of service `index`.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `state_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_state(
    snapshot: *const threadhost_snapshot,
    index: usize,
    state_out: *mut i32,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(state_out);
        let service = match service(snapshot, index) {
            Ok(s) => s,
            Err(status) => return status,
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(state_out, service_state_code(service.state)) };
        Status::OK
    }
}

/// How often service `index`'s body was restarted.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `restarts_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_restarts(
    snapshot: *const threadhost_snapshot,
    index: usize,
    restarts_out: *mut u32,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(restarts_out);
        let service = match service(snapshot, index) {
            Ok(s) => s,
            Err(status) => return status,
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(restarts_out, service.restarts) };
        Status::OK
    }
}

/// Whether service `index` is live: `true` for a service without a liveness setting; for a
/// critical one (`threadhost_service_liveness`), running with a recent heartbeat.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `live_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_live(
    snapshot: *const threadhost_snapshot,
    index: usize,
    live_out: *mut bool,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(live_out);
        let service = match service(snapshot, index) {
            Ok(s) => s,
            Err(status) => return status,
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(live_out, service.is_live()) };
        Status::OK
    }
}

/// Copies a string into the caller's buffer, recording a truncation as the last error.
///
/// # Safety
///
/// As `status::copy_str`.
unsafe fn copy_field(
    what: &str,
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    // SAFETY: the caller's contract is `copy_str`'s.
    let status = unsafe { status::copy_str(s, buf, len, out_n) };
    if status == Status::BUFFER_TOO_SMALL {
        return status::fail(
            status,
            format!(
                "a buffer of {len} bytes cannot hold the {what} ({} bytes) and its NUL",
                s.len()
            ),
        );
    }
    status
}

/// Copies service `index`'s name (the last part of its path) into `buf` (truncation rules of
/// `threadhost_last_error_message`).
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `buf` is NULL with `len == 0` or points to `len`
/// writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_name(
    snapshot: *const threadhost_snapshot,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let service = match service(snapshot, index) {
            Ok(s) => s,
            Err(status) => return status,
        };
        // SAFETY: the caller's contract on buf/len/out_n is `copy_field`'s.
        unsafe { copy_field("service name", leaf(&service.name), buf, len, out_n) }
    }
}

/// Copies service `index`'s path in the tree (`ServiceStatus::name`) into `buf`.
///
/// # Safety
///
/// As `threadhost_snapshot_service_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_path(
    snapshot: *const threadhost_snapshot,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let service = match service(snapshot, index) {
            Ok(s) => s,
            Err(status) => return status,
        };
        // SAFETY: the caller's contract on buf/len/out_n is `copy_field`'s.
        unsafe { copy_field("service path", &service.name, buf, len, out_n) }
    }
}

/// The index of the service at `path` in `*index_out`, or `NOT_FOUND`.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `path` is NULL or a NUL-terminated string;
/// `index_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_find_service(
    snapshot: *const threadhost_snapshot,
    path: *const c_char,
    index_out: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let path = try_str!(path);
        try_out!(index_out);
        let found = snapshot.services.iter().position(|s| &*s.name == path);
        // SAFETY: `index_out` was checked non-NULL above; writable by the caller's contract.
        unsafe { write_found(index_out, found, "service", path) }
    }
}

/// Copies service `index`'s last error message into `buf` ("" if it never failed).
///
/// # Safety
///
/// As `threadhost_snapshot_service_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_service_last_error(
    snapshot: *const threadhost_snapshot,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let service = match service(snapshot, index) {
            Ok(s) => s,
            Err(status) => return status,
        };
        let message = service.last_error.as_ref().map(ToString::to_string).unwrap_or_default();
        // SAFETY: the caller's contract on buf/len/out_n is `copy_field`'s.
        unsafe { copy_field("last error", &message, buf, len, out_n) }
    }
}

/// The number of groups (indexes are `0 .. count - 1`, in tree order; the host itself, the
/// root, is not one).
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_group_count(
    snapshot: *const threadhost_snapshot,
    count_out: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(count_out);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(count_out, snapshot.groups.len()) };
        Status::OK
    }
}

/// The index of the group at `path` in `*index_out`, or `NOT_FOUND`.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `path` is NULL or a NUL-terminated string;
/// `index_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_find_group(
    snapshot: *const threadhost_snapshot,
    path: *const c_char,
    index_out: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let path = try_str!(path);
        try_out!(index_out);
        let found = snapshot.groups.iter().position(|g| &*g.path == path);
        // SAFETY: `index_out` was checked non-NULL above; writable by the caller's contract.
        unsafe { write_found(index_out, found, "group", path) }
    }
}

/// Copies group `index`'s path into `buf`.
///
/// # Safety
///
/// As `threadhost_snapshot_service_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_group_path(
    snapshot: *const threadhost_snapshot,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let group = match group(snapshot, index) {
            Ok(g) => g,
            Err(status) => return status,
        };
        // SAFETY: the caller's contract on buf/len/out_n is `copy_field`'s.
        unsafe { copy_field("group path", &group.path, buf, len, out_n) }
    }
}

/// The state (`THREADHOST_SERVICE_*`) of group `index`.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `state_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_group_state(
    snapshot: *const threadhost_snapshot,
    index: usize,
    state_out: *mut i32,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(state_out);
        let group = match group(snapshot, index) {
            Ok(g) => g,
            Err(status) => return status,
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(state_out, service_state_code(group.state)) };
        Status::OK
    }
}

/// How often group `index` restarted children.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `restarts_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_group_restarts(
    snapshot: *const threadhost_snapshot,
    index: usize,
    restarts_out: *mut u32,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(restarts_out);
        let group = match group(snapshot, index) {
            Ok(g) => g,
            Err(status) => return status,
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(restarts_out, group.restarts) };
        Status::OK
    }
}

/// The strategy (`THREADHOST_STRATEGY_*`) of group `index`.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot; `strategy_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_group_strategy(
    snapshot: *const threadhost_snapshot,
    index: usize,
    strategy_out: *mut i32,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        try_out!(strategy_out);
        let group = match group(snapshot, index) {
            Ok(g) => g,
            Err(status) => return status,
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(strategy_out, strategy_code(group.strategy)) };
        Status::OK
    }
}

/// Copies the message of the last failure group `index` handled into `buf` ("" if none).
///
/// # Safety
///
/// As `threadhost_snapshot_service_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_group_last_error(
    snapshot: *const threadhost_snapshot,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let snapshot = try_ref!(snapshot);
        let group = match group(snapshot, index) {
            Ok(g) => g,
            Err(status) => return status,
        };
        let message = group.last_error.as_ref().map(ToString::to_string).unwrap_or_default();
        // SAFETY: the caller's contract on buf/len/out_n is `copy_field`'s.
        unsafe { copy_field("last error", &message, buf, len, out_n) }
    }
}

/// Frees a snapshot. NULL is a no-op.
///
/// # Safety
///
/// `snapshot` is NULL or a live snapshot, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_snapshot_free(snapshot: *mut threadhost_snapshot) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned snapshot handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(snapshot) });
    }
}

/// Writes `found`, the index of the entry at `path`, to `index_out`; or fails with
/// `THREADHOST_NOT_FOUND` naming the `what` (service, group) that is not there.
///
/// # Safety
///
/// `index_out` is non-NULL and writable.
unsafe fn write_found(
    index_out: *mut usize,
    found: Option<usize>,
    what: &str,
    path: &str,
) -> Status {
    match found {
        Some(index) => {
            // SAFETY: the caller's contract.
            unsafe { write_out(index_out, index) };
            Status::OK
        }
        None => status::fail(
            Status::NOT_FOUND,
            format!("the snapshot has no {what} at `{path}`"),
        ),
    }
}
