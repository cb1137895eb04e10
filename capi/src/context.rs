//! `threadhost_context`: what a C callback receives, borrowed for the callback's duration.

use std::ffi::c_char;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;

use super::handle;
use super::status::{self, Status};
use super::stop::threadhost_token;
use threadhost::{Context, ServiceResult, Stopped};

/// Opaque: a service's context, lent to a callback.
pub struct threadhost_context {
    _private: [u8; 0],
}

castable!(threadhost_context => CContext<'static>, ref);

/// A [`Context`] plus the error message the callback may set with
/// `threadhost_context_set_error`. Lives on the callback's Rust stack frame.
pub(crate) struct CContext<'a> {
    ctx: &'a Context,
    /// Written by `threadhost_context_set_error`, read after the callback returned. A mutex
    /// (never held across user code) so that a callback passing its context to a helper thread
    /// during the call is still memory-safe.
    error: Mutex<Option<String>>,
}

impl<'a> CContext<'a> {
    pub(crate) fn new(ctx: &'a Context) -> CContext<'a> {
        CContext {
            ctx,
            error: Mutex::new(None),
        }
    }

    /// A C pointer to this context, valid while it lives.
    pub(crate) fn as_ptr(&self) -> *const threadhost_context {
        // A plain pointer cast, erasing the lifetime (`Castable::Rust` says `'static`): the
        // pointer is only handed to a callback while `self` lives on the caller's frame (the
        // header says a context is valid only during the callback).
        (self as *const CContext<'a>).cast::<threadhost_context>()
    }

    /// Turns a callback's status into a result: `OK` is success; `STOPPED` after the token
    /// fired is a clean exit (as `Err(Stopped)` is in Rust); anything else is a failure with
    /// the message set by `threadhost_context_set_error`, or the status's name.
    pub(crate) fn finish(self, status: Status) -> ServiceResult {
        status_result(status, self.error.into_inner())
    }

    /// Calls `f` with a C pointer to a new context for `ctx`, then [`finish`](Self::finish)es.
    pub(crate) fn call(
        ctx: &Context,
        f: impl FnOnce(*const threadhost_context) -> Status,
    ) -> ServiceResult {
        let cctx = CContext::new(ctx);
        let status = f(cctx.as_ptr());
        cctx.finish(status)
    }
}

/// A C callback's status as a result: `OK` is success; `STOPPED` (with no message) is
/// `Err(Stopped)`, a clean exit once the token fired; anything else is a failure with
/// `message`, or the status's name.
pub(crate) fn status_result(status: Status, message: Option<String>) -> ServiceResult {
    match status {
        Status::OK => Ok(()),
        Status::STOPPED if message.is_none() => Err(Box::new(Stopped)),
        _ => Err(Box::new(CallbackError {
            status,
            message: message.unwrap_or_else(|| {
                format!("callback returned {} ({})", status::name(status), status.0)
            }),
        })),
    }
}

/// The error of a C callback that returned a status other than `THREADHOST_OK`.
#[derive(Debug)]
pub(crate) struct CallbackError {
    status: Status,
    message: String,
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.message.is_empty() {
            write!(f, "{}", status::name(self.status))?;
        }
        Ok(())
    }
}

impl std::error::Error for CallbackError {}

/// Milliseconds as a `Duration` (`THREADHOST_NO_DEADLINE` is simply the largest).
pub(crate) fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Copies the service's name into `buf` (truncation rules of
/// `threadhost_last_error_message`).
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback; `buf` is NULL with
/// `len == 0` or points to `len` writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_name(
    ctx: *const threadhost_context,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        // SAFETY: the caller's contract on buf/len/out_n is exactly `copy_str`'s.
        let status = unsafe { status::copy_str(ctx.ctx.name(), buf, len, out_n) };
        if status == Status::BUFFER_TOO_SMALL {
            return status::fail(status, format!("a buffer of {len} bytes cannot hold the service name `{}` and its NUL", ctx.ctx.name()));
        }
        status
    }
}

/// Copies the service's path in the host's tree (`devices/plc-7/poller`; its name at the top
/// level) into `buf` (truncation rules of `threadhost_last_error_message`).
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback; `buf` is NULL with
/// `len == 0` or points to `len` writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_path(
    ctx: *const threadhost_context,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let path = ctx.ctx.path();
        // SAFETY: the caller's contract on buf/len/out_n is exactly `copy_str`'s.
        let status = unsafe { status::copy_str(path, buf, len, out_n) };
        if status == Status::BUFFER_TOO_SMALL {
            return status::fail(
                status,
                format!("a buffer of {len} bytes cannot hold the service path `{path}` and its NUL"),
            );
        }
        status
    }
}

/// The service's stop token, borrowed from `ctx` (valid during the callback; NULL if `ctx`
/// is NULL).
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_token(
    ctx: *const threadhost_context,
) -> *const threadhost_token {
    ffi_boundary! {
        // SAFETY: NULL or the live context of the running callback (caller's contract).
        match unsafe { handle::try_from(ctx) } {
            Some(ctx) => handle::to_ref_ptr::<threadhost_token>(ctx.ctx.token()),
            None => {
                status::null_argument("ctx");
                std::ptr::null()
            }
        }
    }
}

/// `true` once the service's token fired. NULL `ctx`: `true` (so a polling loop ends) and a
/// last error.
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_is_stopped(ctx: *const threadhost_context) -> bool {
    ffi_boundary! {
        // SAFETY: NULL or the live context of the running callback (caller's contract).
        match unsafe { handle::try_from(ctx) } {
            Some(ctx) => ctx.ctx.is_stopped(),
            None => {
                status::null_argument("ctx");
                true
            }
        }
    }
}

/// Sleeps `timeout_ms` or until the service's token fires: `OK` after the full sleep,
/// `STOPPED` if the token fired first.
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_sleep(
    ctx: *const threadhost_context,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        super::stop::sleep_status(ctx.ctx.token(), timeout_ms)
    }
}

/// Asks the host running this service to stop (returns at once).
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_request_host_stop(
    ctx: *const threadhost_context,
) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        ctx.ctx.host().request_stop();
        Status::OK
    }
}

/// The time left, in whole milliseconds (0 once passed), until the deadline of the current
/// phase: the start deadline in a start hook, the stop deadline in a stop hook, and in a body
/// (a periodic service's stop hook included) the service's stop deadline once its stop began;
/// `THREADHOST_NO_DEADLINE` when there is none (a body before any stop).
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback; `remaining_ms_out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_remaining_ms(
    ctx: *const threadhost_context,
    remaining_ms_out: *mut u64,
) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        try_out!(remaining_ms_out);
        let remaining = match ctx.ctx.deadline().remaining() {
            None => crate::NO_DEADLINE,
            // A real deadline stays distinct from "none", however far.
            Some(d) => u64::try_from(d.as_millis()).map_or(crate::NO_DEADLINE - 1, |n| {
                n.min(crate::NO_DEADLINE - 1)
            }),
        };
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { handle::write_out(remaining_ms_out, remaining) };
        Status::OK
    }
}

/// Says "this service is alive and making progress" (one atomic store): see
/// `threadhost_service_liveness`.
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_heartbeat(ctx: *const threadhost_context) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        ctx.ctx.heartbeat();
        Status::OK
    }
}

/// Sets the message of this callback's failure: if the callback then returns a status other
/// than `OK`, the service fails with this message (it appears in reports, snapshots and
/// `threadhost_last_error_message` after `run`). The string is copied.
///
/// # Safety
///
/// `ctx` is NULL or the context passed to the running callback; `message` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_context_set_error(
    ctx: *const threadhost_context,
    message: *const c_char,
) -> Status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let message = try_str!(message);
        *ctx.error.lock() = Some(message.to_owned());
        Status::OK
    }
}
