//! The C library of threadhost: `libthreadhost.so` / `libthreadhost.a` and
//! `include/threadhost.h`, the hand-written header, over the Rust library `threadhost`.
//!
//! C and C++ programs include `threadhost.h` and link `-lthreadhost` (pkg-config name
//! `threadhost`); Rust programs depend on the `threadhost` crate, not on this one. The header
//! is the documentation of every function: ownership, threads, statuses.
//!
//! Layout, one file per C object or family of objects:
//!
//! - `boundary.rs`: the `ffi_boundary!` macro every exported function body starts with (it
//!   catches unwinds and returns `THREADHOST_PANIC` or the type's fallback value), and the
//!   pointer-checking macros `try_ref!`, `try_mut!`, `try_box!`, `try_str!`, `try_out!`.
//! - `handle.rs`: the only place handle pointers from C become `Box`es or references again,
//!   and where Box-owned handles are made and freed; its `castable!` macro, used in the file
//!   of each C object, declares whether C owns a `Box` of it or borrows it (the table is in
//!   `handle.rs`), and owned handles carry a tag that catches the common misuses (use after
//!   free, double free).
//! - `status.rs`: the status codes, the thread-local last error, string copies into caller
//!   buffers, and the one mapping of Rust outcomes to statuses and exit codes.
//! - `builder.rs` (`threadhost_builder`), `service.rs` (`threadhost_service`), `group.rs`
//!   (`threadhost_group`), `host.rs` (`threadhost_host`, and the supervision tree's runtime
//!   changes by path), `context.rs` (`threadhost_context`), `snapshot.rs`
//!   (`threadhost_snapshot`), `stop.rs` (`threadhost_stop_source`, `threadhost_token`),
//!   `queue.rs` (`threadhost_queue`, `threadhost_producer`), `periodic.rs`
//!   (`threadhost_periodic`, `threadhost_tick`, `threadhost_periodic_stats`).
//! - `log.rs`: the library's log records for C (`threadhost_log_set_callback`,
//!   `threadhost_log_init_stderr`): one `log::Log` dispatching to a callback or to stderr.
//! - `lib.rs` (this file): the version, the last error message, status names, exit codes,
//!   `threadhost_test_panic`, and millisecond timeouts as deadlines.
//! - `off.rs`: the same exports as `queue.rs` / `periodic.rs` in a build without that Cargo
//!   feature, each returning `THREADHOST_INVALID_STATE` (so the header is one file for every
//!   build). The builder's feature-gated setters do the same in `builder.rs`.
//! - `http.rs`: `threadhost_builder_http_endpoint` and `threadhost_host_http_addr` (feature
//!   `http`, off by default; without it, the same exports return `THREADHOST_INVALID_STATE`).
//!
//! Only the public Rust API of `threadhost` is used here. Every exported function is
//! `#[unsafe(no_mangle)] pub [unsafe] extern "C" fn` and its body is one `ffi_boundary!`;
//! `tests/c_api.rs` checks both, and that the header declares exactly the exported names.

// The exported functions are reached through the C ABI, not through Rust paths.
#![allow(unreachable_pub)]
// The C names are the C API's names (`threadhost_host`, …), not Rust's CamelCase.
#![allow(non_camel_case_types)]

#[macro_use]
mod boundary;
#[macro_use]
mod handle;
mod builder;
mod context;
mod group;
mod host;
mod http;
mod log;
#[cfg(not(all(feature = "queue", feature = "periodic")))]
mod off;
#[cfg(feature = "periodic")]
mod periodic;
#[cfg(feature = "queue")]
mod queue;
mod service;
mod snapshot;
mod status;
mod stop;

use std::ffi::c_char;
use std::os::raw::c_int;
use std::time::Duration;

use status::Status;
use threadhost::Deadline;

/// The crate version as a NUL-terminated C string (static storage).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, e.g. `"0.1.0"`: a static NUL-terminated string, never freed.
/// May be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn threadhost_version() -> *const c_char {
    ffi_boundary! {
        VERSION.as_ptr().cast::<c_char>()
    }
}

/// Copies the calling thread's last error message into `buf` (see `status::copy_str` for the
/// truncation rules); `*out_n` receives the message's full length.
///
/// # Safety
///
/// `buf` is NULL with `len == 0`, or points to `len` writable bytes; `out_n` is NULL or points
/// to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let message = status::last_error();
        // SAFETY: the caller's contract above is exactly `copy_str`'s.
        unsafe { status::copy_str(&message, buf, len, out_n) }
    }
}

/// The name of a status code, e.g. `"THREADHOST_TIMEOUT"`; `"THREADHOST_UNKNOWN"` for a
/// value that is not a status code. A static string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn threadhost_status_name(status: Status) -> *const c_char {
    ffi_boundary! {
        status::name_c(status).as_ptr().cast::<c_char>()
    }
}

/// The process exit code for the status returned by `threadhost_host_run` (or by a failed
/// `threadhost_builder_build`): the same table as Rust's `threadhost::exit_code`.
#[unsafe(no_mangle)]
pub extern "C" fn threadhost_exit_code(status: Status) -> c_int {
    ffi_boundary! {
        c_int::from(status::exit_code(status))
    }
}

/// Test-only: panics inside the boundary, which must turn the panic into `THREADHOST_PANIC`
/// and a last error message instead of aborting the process. Always exported (so that plain
/// `cargo test` exercises it without a feature); it has no other effect.
#[unsafe(no_mangle)]
pub extern "C" fn threadhost_test_panic() -> Status {
    ffi_boundary! {
        panic!("threadhost_test_panic: a deliberate panic at the C boundary")
    }
}

/// `THREADHOST_NO_DEADLINE`: a timeout that never expires.
pub(crate) const NO_DEADLINE: u64 = u64::MAX;

/// The deadline `timeout_ms` from now; `NO_DEADLINE` (or a sum past the clock's range) is
/// never. Computed once per entry point and passed down.
pub(crate) fn deadline_ms(timeout_ms: u64) -> Deadline {
    if timeout_ms == NO_DEADLINE {
        Deadline::NEVER
    } else {
        Deadline::after(Duration::from_millis(timeout_ms))
    }
}
