//! `threadhost_group`: a group of the supervision tree (services and groups under a restart
//! strategy and intensity) before it is added to a builder, another group, or a running host
//! (`threadhost_host_add_group`, in host.rs with the tree's other runtime changes).

use std::ffi::c_char;
use std::time::Duration;

use super::context::ms;
use super::handle::{self, write_out};
use super::service::threadhost_service;
use super::status::{self, Status};
use threadhost::{Backoff, Group, RestartType, Strategy};

/// Opaque: a group not yet added to a builder, a group or a host.
pub struct threadhost_group {
    _private: [u8; 0],
}

// `None` only after a panic in the middle of an update.
castable!(threadhost_group => Option<Group>, box);

/// `threadhost_strategy` values.
pub(crate) const STRATEGY_ONE_FOR_ONE: i32 = 0;
pub(crate) const STRATEGY_ONE_FOR_ALL: i32 = 1;
pub(crate) const STRATEGY_REST_FOR_ONE: i32 = 2;

/// `threadhost_restart_type` values.
const RESTART_PERMANENT: i32 = 0;
const RESTART_TRANSIENT: i32 = 1;
const RESTART_TEMPORARY: i32 = 2;

/// A strategy from its C value, or `INVALID_ARGUMENT` naming the values.
fn strategy(value: i32) -> Result<Strategy, Status> {
    match value {
        STRATEGY_ONE_FOR_ONE => Ok(Strategy::OneForOne),
        STRATEGY_ONE_FOR_ALL => Ok(Strategy::OneForAll),
        STRATEGY_REST_FOR_ONE => Ok(Strategy::RestForOne),
        _ => Err(status::fail(
            Status::INVALID_ARGUMENT,
            format!(
                "`strategy` {value} is not a threadhost_strategy (THREADHOST_STRATEGY_ONE_FOR_ONE \
                 0, _ONE_FOR_ALL 1, _REST_FOR_ONE 2)"
            ),
        )),
    }
}

/// The C value of a strategy (for snapshots).
pub(crate) fn strategy_code(strategy: Strategy) -> i32 {
    #[allow(unreachable_patterns)] // `Strategy` may grow; a new one reads as one-for-one
    match strategy {
        Strategy::OneForAll => STRATEGY_ONE_FOR_ALL,
        Strategy::RestForOne => STRATEGY_REST_FOR_ONE,
        _ => STRATEGY_ONE_FOR_ONE,
    }
}

/// A restart type from its C value, or `INVALID_ARGUMENT` naming the values.
pub(crate) fn restart_type(value: i32) -> Result<RestartType, Status> {
    match value {
        RESTART_PERMANENT => Ok(RestartType::Permanent),
        RESTART_TRANSIENT => Ok(RestartType::Transient),
        RESTART_TEMPORARY => Ok(RestartType::Temporary),
        _ => Err(status::fail(
            Status::INVALID_ARGUMENT,
            format!(
                "`restart_type` {value} is not a threadhost_restart_type \
                 (THREADHOST_RESTART_PERMANENT 0, _TRANSIENT 1, _TEMPORARY 2)"
            ),
        )),
    }
}

/// Applies a by-value `Group` setter.
fn update(slot: &mut Option<Group>, f: impl FnOnce(Group) -> Group) -> Status {
    match slot.take() {
        Some(group) => {
            *slot = Some(f(group));
            Status::OK
        }
        None => status::fail(
            Status::INVALID_STATE,
            "this group was left unusable by an earlier panic; free it",
        ),
    }
}

/// Takes the group out of a handle C gave back (a consuming call), or `INVALID_STATE` for one
/// left empty by a panic.
pub(crate) fn take(group: Option<Group>) -> Result<Group, Status> {
    group.ok_or_else(|| {
        status::fail(
            Status::INVALID_STATE,
            "this group was left unusable by an earlier panic",
        )
    })
}

/// An empty group named `name` in `*group_out`: one-for-one, at most 5 restarts within 60 s,
/// a backoff doubling from 100 ms to 30 s, transient. The name is checked where the group is
/// added.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `group_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_new(
    name: *const c_char,
    group_out: *mut *mut threadhost_group,
) -> Status {
    ffi_boundary! {
        try_out!(group_out);
        let name = try_str!(name);
        let group = handle::to_box_ptr::<threadhost_group>(Some(Group::new(name)));
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(group_out, group) };
        Status::OK
    }
}

/// Sets how the group restarts its children when one fails (`THREADHOST_STRATEGY_*`).
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_strategy(
    group: *mut threadhost_group,
    strategy: i32,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        let strategy = match self::strategy(strategy) {
            Ok(s) => s,
            Err(status) => return status,
        };
        update(group, |g| g.strategy(strategy))
    }
}

/// Sets the group's restart intensity: more than `max_restarts` restarts within `within_ms`
/// fail the group. Checked where the group is added.
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_intensity(
    group: *mut threadhost_group,
    max_restarts: u32,
    within_ms: u64,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        update(group, |g| g.intensity(max_restarts, ms(within_ms)))
    }
}

/// Sets the wait before each restart the group makes: doubling from `initial_backoff_ms` up
/// to `max_backoff_ms` (as `threadhost_service_restart`). Checked where the group is added.
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_backoff(
    group: *mut threadhost_group,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        let backoff = Backoff::exponential(ms(initial_backoff_ms), ms(max_backoff_ms));
        update(group, |g| g.backoff(backoff))
    }
}

/// Sets when the group's parent restarts it (`THREADHOST_RESTART_*`).
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_restart_type(
    group: *mut threadhost_group,
    restart_type: i32,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        let restart = match self::restart_type(restart_type) {
            Ok(r) => r,
            Err(status) => return status,
        };
        update(group, |g| g.restart(restart))
    }
}

/// Starts the group after its sibling named `sibling` (copied), and stops it before.
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call; `sibling` is
/// NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_depends_on(
    group: *mut threadhost_group,
    sibling: *const c_char,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        let sibling = try_str!(sibling);
        update(group, |g| g.depends_on(sibling))
    }
}

/// The start budget of the group's own restarts.
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_start_timeout(
    group: *mut threadhost_group,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        update(group, |g| g.start_timeout(Duration::from_millis(timeout_ms)))
    }
}

/// The stop budget of the group's own restarts and of its failure.
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_stop_timeout(
    group: *mut threadhost_group,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let group = try_mut!(group);
        update(group, |g| g.stop_timeout(Duration::from_millis(timeout_ms)))
    }
}

/// Adds `service` to the group, consuming it (also when this call fails: then it is freed).
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call; `service` is
/// NULL or a live service, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_add_service(
    group: *mut threadhost_group,
    service: *mut threadhost_service,
) -> Status {
    ffi_boundary! {
        // Take the service first: it is consumed whatever happens next.
        let service = try_box!(service);
        let group = try_mut!(group);
        update(group, |g| g.add_service(*service))
    }
}

/// Adds the group `child` to `group`, consuming `child` (also when this call fails: then it
/// and everything in it are freed).
///
/// # Safety
///
/// `group` is NULL or a live group, not used by another thread during the call; `child` is
/// NULL or a live group, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_add_group(
    group: *mut threadhost_group,
    child: *mut threadhost_group,
) -> Status {
    ffi_boundary! {
        // Take the child first: it is consumed whatever happens next (`group == child` then
        // finds a consumed group).
        let child = try_box!(child);
        let group = try_mut!(group);
        let child = match take(*child) {
            Ok(c) => c,
            Err(status) => return status,
        };
        update(group, |g| g.add_group(child))
    }
}

/// Frees a group never added anywhere (its services' `destroy` runs). NULL is a no-op.
///
/// # Safety
///
/// `group` is NULL or a live group, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_group_free(group: *mut threadhost_group) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned group handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(group) });
    }
}
