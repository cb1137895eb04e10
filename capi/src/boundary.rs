//! The boundary: `ffi_boundary!` around every exported body, and the argument-checking
//! macros used inside it; and `log_quietly`, around each of the C library's own log lines
//! (a logger is user code; the Rust library does the same in `src/logging.rs`).
//!
//! A panic must never cross an `extern "C"` function (since Rust 1.81 it aborts the process).
//! `ffi_boundary!` runs the body under `catch_unwind`; a caught panic records the entry
//! point's name and the panic message as the thread's last error and returns the return
//! type's [`PanicValue`]: `THREADHOST_PANIC` for a status, NULL for a pointer, `true` for
//! `is_stopped` queries (so a loop polling it ends), `EXIT_FAILURE` for an exit code.
//!
//! `tests/c_api.rs` reads every file of `src/` and fails if an exported function's body
//! does not begin with `ffi_boundary!`.

use std::any::Any;
use std::ffi::c_char;
use std::os::raw::c_int;

use super::status::{self, Status};
use threadhost::{EXIT_FAILURE, Failure};

/// What an entry point returns when its body panicked.
pub(crate) trait PanicValue {
    fn panic_value() -> Self;
}

impl PanicValue for Status {
    fn panic_value() -> Status {
        Status::PANIC
    }
}

impl<T> PanicValue for *const T {
    fn panic_value() -> *const T {
        std::ptr::null()
    }
}

impl<T> PanicValue for *mut T {
    fn panic_value() -> *mut T {
        std::ptr::null_mut()
    }
}

/// `_free` functions: nothing to return.
impl PanicValue for () {
    fn panic_value() {}
}

/// `is_stopped` queries: a panicking query answers "stopped", so a loop that polls it ends.
impl PanicValue for bool {
    fn panic_value() -> bool {
        true
    }
}

/// `threadhost_exit_code`.
impl PanicValue for c_int {
    fn panic_value() -> c_int {
        c_int::from(EXIT_FAILURE)
    }
}

/// Records a caught panic of entry point `function` (a `type_name` path ending in the
/// marker fn's name) as the last error, and returns the fallback value. The message is
/// threadhost's own ([`Failure::from_panic`]), which also drops the payload where a panic in
/// its `Drop` cannot cross the boundary.
#[cold]
pub(crate) fn on_panic<T: PanicValue>(function: &str, payload: Box<dyn Any + Send>) -> T {
    let message = match Failure::from_panic(payload) {
        Failure::Panic(message) => message,
        other => other.to_string().into(),
    };
    let entry = function
        .strip_suffix("::__threadhost_entry")
        .unwrap_or(function);
    let entry = entry.rsplit("::").next().unwrap_or(entry);
    status::set_last_error(format!("panic in {entry}: {message}"));
    T::panic_value()
}

/// Runs `line`, one `log` macro call of the C library's own, swallowing a panic of the
/// logger (user code: the program may have installed a Rust logger of its own) or of a
/// formatted value, so that a log line cannot change an entry point's status or end a
/// callback's thread; the payload is dropped through [`Failure::from_panic`] (a panicking
/// `Drop` of it is swallowed too). Not for the dispatcher in `log.rs`: it is the logger.
pub(crate) fn log_quietly(line: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(line)) {
        drop(Failure::from_panic(payload));
    }
}

/// Wraps an exported function's body: the body runs in a closure under `catch_unwind`, so
/// `return` inside it returns from the entry point. See the module docs.
macro_rules! ffi_boundary {
    ($($body:tt)*) => {{
        // Only its type name is used: it names the entry point in a panic message.
        fn __threadhost_entry() {}
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(payload) => $crate::boundary::on_panic(
                ::std::any::type_name_of_val(&__threadhost_entry),
                payload,
            ),
        }
    }};
}

/// `&T` from a `*const threadhost_x`, or `return THREADHOST_NULL_ARGUMENT` naming the
/// parameter, or `THREADHOST_INVALID_ARGUMENT` for a freed or consumed handle (handle.rs's
/// guard). The pointer must satisfy the entry point's `# Safety` contract.
macro_rules! try_ref {
    ($ptr:ident) => {
        // SAFETY: `$ptr` is NULL or a `threadhost_*` pointer of this type handed out by
        // threadhost (its ownership declared in handle.rs); the entry point's caller
        // guarantees it (its `# Safety` section).
        match unsafe { $crate::handle::checked_ref($ptr) } {
            Ok(value) => value,
            Err(misuse) => {
                return $crate::handle::misuse_of($ptr, stringify!($ptr), &misuse);
            }
        }
    };
}

/// `&mut T` from a `*mut threadhost_x` (a Box-owned object), or `return` a status as
/// `try_ref!`.
macro_rules! try_mut {
    ($ptr:ident) => {
        // SAFETY: `$ptr` is NULL or a Box-owned `threadhost_*` pointer that no other thread
        // uses during this call; the entry point's caller guarantees it.
        match unsafe { $crate::handle::checked_mut($ptr) } {
            Ok(value) => value,
            Err(misuse) => {
                return $crate::handle::misuse_of($ptr.cast_const(), stringify!($ptr), &misuse);
            }
        }
    };
}

/// Takes back the `Box` behind a `*mut threadhost_x` (the call consumes it), or `return` a
/// status as `try_ref!`.
macro_rules! try_box {
    ($ptr:ident) => {
        // SAFETY: `$ptr` is NULL or a Box-owned `threadhost_*` pointer whose ownership the
        // caller hands over with this call; the entry point's caller guarantees it.
        match unsafe { $crate::handle::take_back($ptr) } {
            Ok(value) => value,
            Err(misuse) => {
                return $crate::handle::misuse_of($ptr.cast_const(), stringify!($ptr), &misuse);
            }
        }
    };
}

/// `&str` from a NUL-terminated C string: `return THREADHOST_NULL_ARGUMENT` for NULL,
/// `THREADHOST_INVALID_ARGUMENT` for bytes that are not UTF-8.
macro_rules! try_str {
    ($ptr:ident) => {
        // SAFETY: `$ptr` is NULL or a NUL-terminated string readable for this call; the
        // entry point's caller guarantees it.
        match unsafe { $crate::boundary::c_str($ptr) } {
            None => return $crate::status::null_argument(stringify!($ptr)),
            Some(Err(_)) => {
                return $crate::status::fail(
                    $crate::status::Status::INVALID_ARGUMENT,
                    concat!("`", stringify!($ptr), "` is not valid UTF-8"),
                );
            }
            Some(Ok(s)) => s,
        }
    };
}

/// Checks an output pointer is not NULL (before any work is done), or `return
/// THREADHOST_NULL_ARGUMENT`. Write it with `handle::write_out` on success only.
macro_rules! try_out {
    ($ptr:ident) => {
        if $ptr.is_null() {
            return $crate::status::null_argument(stringify!($ptr));
        }
    };
}

/// A C string as `&str`: `None` for NULL, `Some(Err)` for non-UTF-8.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays readable and unchanged for
/// `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Option<Result<&'a str, std::str::Utf8Error>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: not NULL, and NUL-terminated and live for 'a by this fn's contract.
    let c = unsafe { std::ffi::CStr::from_ptr(ptr) };
    Some(c.to_str())
}
