//! `threadhost_service`: a C background or hosted service and its settings, before it is
//! added to a builder.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use super::context::{CContext, ms, threadhost_context};
use super::handle::{self, write_out};
use super::status::{self, Status};
use threadhost::{
    BackgroundService, Backoff, Context, HostedService, Policy, Service, ServiceResult,
};

/// Opaque: a service not yet added to a builder.
pub struct threadhost_service {
    _private: [u8; 0],
}

castable!(threadhost_service => Service, box);

/// `threadhost_status (*)(void *user, const threadhost_context *ctx)`: a service body or
/// hook.
pub type RunFn = unsafe extern "C" fn(user: *mut c_void, ctx: *const threadhost_context) -> Status;

/// `void (*)(void *user)`: releases `user`, called exactly once.
pub type DestroyFn = unsafe extern "C" fn(user: *mut c_void);

/// `threadhost_policy` values.
pub(crate) const POLICY_STOP_HOST: i32 = 0;
pub(crate) const POLICY_IGNORE: i32 = 1;
pub(crate) const POLICY_RESTART: i32 = 2;

/// The C user data of a service, and its destructor, run exactly once: when this value is
/// dropped — on the service's thread when it ends, or wherever the builder, service or host
/// holding it is freed, or when the call that received it fails.
pub(crate) struct UserData {
    user: *mut c_void,
    destroy: Option<DestroyFn>,
}

// SAFETY: the header requires `user` to be usable from any thread (service callbacks run on
// the service's own thread, `destroy` on whichever thread drops the service); the C caller
// guarantees it.
unsafe impl Send for UserData {}

impl UserData {
    pub(crate) fn new(user: *mut c_void, destroy: Option<DestroyFn>) -> UserData {
        UserData { user, destroy }
    }

    /// The C pointer, for callbacks.
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.user
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(destroy) = self.destroy.take() {
            // SAFETY: `destroy` is the caller's destructor for `user`; it runs once, here
            // (taken out of the Option), with no threadhost lock held.
            unsafe { destroy(self.user) };
        }
    }
}

/// A C background service: `run` is its body.
struct CBackground {
    run: RunFn,
    user: UserData,
}

impl BackgroundService for CBackground {
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        let run = self.run;
        let user = self.user.as_ptr();
        CContext::call(ctx, |c| {
            // SAFETY: `run` is the caller's body; `user` is its data, usable on this thread
            // (header contract); `c` is valid during the call.
            unsafe { run(user, c) }
        })
    }
}

/// A C hosted service: optional `start` and `stop` hooks.
struct CHosted {
    start: Option<RunFn>,
    stop: Option<RunFn>,
    user: UserData,
}

impl CHosted {
    fn hook(&self, hook: Option<RunFn>, ctx: &Context) -> ServiceResult {
        let Some(hook) = hook else { return Ok(()) };
        let user = self.user.as_ptr();
        CContext::call(ctx, |c| {
            // SAFETY: `hook` is the caller's hook; `user` is its data, usable on this thread
            // (header contract); `c` is valid during the call.
            unsafe { hook(user, c) }
        })
    }
}

impl HostedService for CHosted {
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        self.hook(self.start, ctx)
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        self.hook(self.stop, ctx)
    }
}

/// A policy from its C value; `None` for an unknown value.
pub(crate) fn policy(value: i32) -> Option<Policy> {
    match value {
        POLICY_STOP_HOST => Some(Policy::StopHost),
        POLICY_IGNORE => Some(Policy::Ignore),
        // The header's comment on THREADHOST_POLICY_RESTART states its values.
        POLICY_RESTART => Some(Policy::restart()),
        _ => None,
    }
}

/// `THREADHOST_INVALID_ARGUMENT` for an unknown policy value.
pub(crate) fn bad_policy(value: i32) -> Status {
    status::fail(
        Status::INVALID_ARGUMENT,
        format!(
            "`policy` {value} is not a threadhost_policy (THREADHOST_POLICY_STOP_HOST 0, _IGNORE 1, _RESTART 2)"
        ),
    )
}

fn restart(initial_ms: u64, max_ms: u64, max_restarts: u32, within_ms: u64) -> Policy {
    Policy::Restart {
        backoff: Backoff::exponential(ms(initial_ms), ms(max_ms)),
        max_restarts,
        within: ms(within_ms),
    }
}

/// Builds a service from a validated name; on a bad name, `user` (inside `make`'s capture)
/// is destroyed by the early return.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `service_out` is NULL or writable.
unsafe fn new_service(
    name: *const c_char,
    service_out: *mut *mut threadhost_service,
    make: impl FnOnce(&str) -> Service,
) -> Status {
    try_out!(service_out);
    let name = try_str!(name);
    let service = handle::to_box_ptr::<threadhost_service>(make(name));
    // SAFETY: checked non-NULL above; writable by the caller's contract.
    unsafe { write_out(service_out, service) };
    Status::OK
}

/// A background service named `name` whose body is `run`, in `*service_out`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `service_out` is NULL or writable; `user` and
/// `destroy` follow the header's contract (ownership of `user` passes to threadhost, even
/// when this call fails).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_new_background(
    name: *const c_char,
    run: Option<RunFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
    service_out: *mut *mut threadhost_service,
) -> Status {
    ffi_boundary! {
        // Owns `user` from here: any early return destroys it.
        let user = UserData::new(user, destroy);
        let Some(run) = run else { return status::null_argument("run") };
        // SAFETY: the caller's contract on `name` and `service_out` is `new_service`'s.
        unsafe {
            new_service(name, service_out, |name| {
                Service::background_service(name, CBackground { run, user })
            })
        }
    }
}

/// A hosted service named `name` with optional `start` and `stop` hooks, in `*service_out`.
///
/// # Safety
///
/// As [`threadhost_service_new_background`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_new_hosted(
    name: *const c_char,
    start: Option<RunFn>,
    stop: Option<RunFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
    service_out: *mut *mut threadhost_service,
) -> Status {
    ffi_boundary! {
        let user = UserData::new(user, destroy);
        // SAFETY: the caller's contract on `name` and `service_out` is `new_service`'s.
        unsafe {
            new_service(name, service_out, |name| {
                Service::hosted(name, CHosted { start, stop, user })
            })
        }
    }
}

/// Applies a by-value `Service` setter to the Box behind `service`.
fn update(service: &mut Service, f: impl FnOnce(Service) -> Service) {
    // `Service` setters consume and return it; swap a placeholder in for the call.
    let placeholder = Service::background("\0placeholder", |_| Ok(()));
    let taken = std::mem::replace(service, placeholder);
    *service = f(taken);
}

/// Sets the service's failure policy (`THREADHOST_POLICY_*`; `_RESTART` restarts with a
/// backoff doubling from 100 ms to 30 s, at most 5 restarts within 60 s).
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_on_failure(
    service: *mut threadhost_service,
    policy: i32,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        let Some(policy) = self::policy(policy) else { return bad_policy(policy) };
        update(service, |s| s.on_failure(policy));
        Status::OK
    }
}

/// Restarts the service's body after a failure, with a backoff doubling from
/// `initial_backoff_ms` up to `max_backoff_ms`; more than `max_restarts` restarts within
/// `within_ms` stop the host. Checked by `threadhost_builder_build` (see `Policy::Restart`:
/// `max_restarts` at most 100 000 or `u32::MAX` for unlimited; every wait at least 1 ms).
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_restart(
    service: *mut threadhost_service,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    max_restarts: u32,
    within_ms: u64,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        let policy = restart(initial_backoff_ms, max_backoff_ms, max_restarts, within_ms);
        update(service, |s| s.on_failure(policy));
        Status::OK
    }
}

/// A stop budget for this service alone, within the host's stop deadline.
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_stop_timeout(
    service: *mut threadhost_service,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        update(service, |s| s.stop_timeout(Duration::from_millis(timeout_ms)));
        Status::OK
    }
}

/// A start budget for this service alone, within the host's start deadline.
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_start_timeout(
    service: *mut threadhost_service,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        update(service, |s| s.start_timeout(Duration::from_millis(timeout_ms)));
        Status::OK
    }
}

/// The stack size of this service's thread, in bytes (64 KiB to 1 GiB; checked by
/// `threadhost_builder_build`).
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_stack_size(
    service: *mut threadhost_service,
    bytes: usize,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        update(service, |s| s.stack_size(bytes));
        Status::OK
    }
}

/// Starts this service after the service named `dependency` (and stops it before). Unknown
/// names and cycles are reported by `threadhost_builder_build`. The string is copied.
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder; `dependency` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_depends_on(
    service: *mut threadhost_service,
    dependency: *const c_char,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        let dependency = try_str!(dependency);
        update(service, |s| s.depends_on(dependency));
        Status::OK
    }
}

/// Makes this a critical service: live only while it runs and calls
/// `threadhost_context_heartbeat` at least every `timeout_ms` (systemd's watchdog pings only
/// while every critical service is live).
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_liveness(
    service: *mut threadhost_service,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        update(service, |s| s.liveness(Duration::from_millis(timeout_ms)));
        Status::OK
    }
}

/// Sets when the service's group restarts it (`THREADHOST_RESTART_*`). Without it, a service
/// behaves as outside groups: see the header.
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_restart_type(
    service: *mut threadhost_service,
    restart_type: i32,
) -> Status {
    ffi_boundary! {
        let service = try_mut!(service);
        let restart = match super::group::restart_type(restart_type) {
            Ok(r) => r,
            Err(status) => return status,
        };
        update(service, |s| s.restart(restart));
        Status::OK
    }
}

/// The C user data of a reload hook. `Sync` as well as `Send`: the hook is a `Fn` that
/// threadhost calls from its reload thread, never twice at once (one reload at a time, and a
/// hook still running from an earlier reload is not called again until it returned).
struct ReloadData {
    reload: RunFn,
    user: UserData,
}

// SAFETY: the header requires `user` to be usable from any thread; threadhost never calls the
// hook concurrently with itself (above), so sharing `&ReloadData` between threads only ever
// reads the two pointers.
unsafe impl Sync for ReloadData {}

/// Gives the service a reload hook (see `Service::on_reload`): `reload(user, ctx)` is called
/// by each reload of the host (`threadhost_host_reload`, `threadhost_host_request_reload`,
/// SIGHUP under the console lifetime) on the host's reload thread. A second call replaces the
/// first hook (whose `destroy` runs).
///
/// # Safety
///
/// `service` is NULL or a live service not yet added to a builder; `user` and `destroy`
/// follow the header's contract (ownership of `user` passes to threadhost, even when this
/// call fails).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_on_reload(
    service: *mut threadhost_service,
    reload: Option<RunFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
) -> Status {
    ffi_boundary! {
        // Owns `user` from here: any early return destroys it.
        let user = UserData::new(user, destroy);
        let service = try_mut!(service);
        let Some(reload) = reload else { return status::null_argument("reload") };
        let data = ReloadData { reload, user };
        update(service, move |s| {
            s.on_reload(move |ctx| {
                // The whole `data` (`Sync`) is captured, not its fields.
                let data: &ReloadData = &data;
                let (reload, user) = (data.reload, data.user.as_ptr());
                CContext::call(ctx, |c| {
                    // SAFETY: `reload` is the caller's hook; `user` is its data, usable on
                    // this thread (header contract); `c` is valid during the call.
                    unsafe { reload(user, c) }
                })
            })
        });
        Status::OK
    }
}

/// Frees a service never added to a builder (its `destroy` runs). NULL is a no-op.
///
/// # Safety
///
/// `service` is NULL or a live service, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_service_free(service: *mut threadhost_service) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned service handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(service) });
    }
}
