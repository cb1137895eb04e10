//! `threadhost_stop_source` and `threadhost_token`: the stop token from C.

use super::deadline_ms;
use super::handle::{self, write_out};
use super::status::{self, Status};
use threadhost::{StopSource, StopToken};

/// Opaque: a stop source (`StopSource`), owned by C.
pub struct threadhost_stop_source {
    _private: [u8; 0],
}

/// Opaque: a stop token (`StopToken`): owned by C when made by `threadhost_token_clone` or
/// `threadhost_stop_source_token`, borrowed when returned by `threadhost_context_token`.
pub struct threadhost_token {
    _private: [u8; 0],
}

castable!(threadhost_stop_source => StopSource, box);
castable!(threadhost_token => StopToken, box + ref);

/// `OK` after sleeping until `timeout_ms` passed, `STOPPED` if `token` fired first.
pub(crate) fn sleep_status(token: &StopToken, timeout_ms: u64) -> Status {
    match token.sleep_until(deadline_ms(timeout_ms)) {
        Ok(()) => Status::OK,
        Err(_) => Status::STOPPED,
    }
}

/// A new stop source, not stopped, in `*source_out`.
///
/// # Safety
///
/// `source_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_stop_source_new(
    source_out: *mut *mut threadhost_stop_source,
) -> Status {
    ffi_boundary! {
        try_out!(source_out);
        let source = handle::to_box_ptr::<threadhost_stop_source>(StopSource::new());
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(source_out, source) };
        Status::OK
    }
}

/// Stops `source`: every token of it fires and every waiter wakes. Idempotent.
///
/// # Safety
///
/// `source` is NULL or a live stop source.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_stop_source_stop(
    source: *const threadhost_stop_source,
) -> Status {
    ffi_boundary! {
        let source = try_ref!(source);
        source.stop();
        Status::OK
    }
}

/// A new owned token of `source` in `*token_out`; free it with `threadhost_token_free`.
///
/// # Safety
///
/// `source` is NULL or a live stop source; `token_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_stop_source_token(
    source: *const threadhost_stop_source,
    token_out: *mut *mut threadhost_token,
) -> Status {
    ffi_boundary! {
        let source = try_ref!(source);
        try_out!(token_out);
        let token = handle::to_box_ptr::<threadhost_token>(source.token());
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(token_out, token) };
        Status::OK
    }
}

/// Frees a stop source (its tokens stay valid, and are never stopped by it again). NULL is
/// a no-op.
///
/// # Safety
///
/// `source` is NULL or a live stop source, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_stop_source_free(source: *mut threadhost_stop_source) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned source handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(source) });
    }
}

/// An owned clone of `token` (the same token) in `*token_out`, e.g. to use a context's token
/// after the callback or on another thread; free it with `threadhost_token_free`.
///
/// # Safety
///
/// `token` is NULL or a live token; `token_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_token_clone(
    token: *const threadhost_token,
    token_out: *mut *mut threadhost_token,
) -> Status {
    ffi_boundary! {
        let token = try_ref!(token);
        try_out!(token_out);
        let clone = handle::to_box_ptr::<threadhost_token>(token.clone());
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(token_out, clone) };
        Status::OK
    }
}

/// `true` once the token fired. One atomic load. NULL: `true` (so a polling loop ends) and
/// a last error.
///
/// # Safety
///
/// `token` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_token_is_stopped(token: *const threadhost_token) -> bool {
    ffi_boundary! {
        // SAFETY: NULL or a live token (caller's contract).
        match unsafe { handle::try_from(token) } {
            Some(token) => token.is_stopped(),
            None => {
                status::null_argument("token");
                true
            }
        }
    }
}

/// Blocks until the token fires (`OK`) or `timeout_ms` passed (`TIMEOUT`);
/// `THREADHOST_NO_DEADLINE` waits without a deadline. Wakes within microseconds of the stop.
///
/// # Safety
///
/// `token` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_token_wait(
    token: *const threadhost_token,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let token = try_ref!(token);
        if token.wait_until(deadline_ms(timeout_ms)) {
            Status::OK
        } else {
            status::fail(
                Status::TIMEOUT,
                format!("the token did not fire within {timeout_ms} ms"),
            )
        }
    }
}

/// Sleeps `timeout_ms`, or until the token fires: `OK` after the full sleep, `STOPPED` if the
/// token fired first (at once if it already had).
///
/// # Safety
///
/// `token` is NULL or a live token.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_token_sleep(
    token: *const threadhost_token,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let token = try_ref!(token);
        sleep_status(token, timeout_ms)
    }
}

/// Frees a token made by `threadhost_token_clone` or `threadhost_stop_source_token`. NULL is a
/// no-op. Never free a token borrowed from a context.
///
/// # Safety
///
/// `token` is NULL or an owned live token, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_token_free(token: *mut threadhost_token) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned token handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(token) });
    }
}
