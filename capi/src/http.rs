//! `threadhost_builder_http_endpoint`: the health and metrics endpoint (the Rust
//! `HostBuilder::http_endpoint`), and `threadhost_host_http_addr`, where it listens (the Rust
//! `HostHandle::http_addr`), with the Cargo feature `http` (off by default). Without it,
//! the functions are still exported and return `THREADHOST_INVALID_STATE` naming the feature.

use std::ffi::c_char;

use super::builder::threadhost_builder;
use super::host::threadhost_host;
#[cfg(not(feature = "http"))]
use super::status;
use super::status::Status;

/// Serves `GET /livez`, `/readyz`, `/metrics` and `/status` over HTTP on `addr` (e.g.
/// `"0.0.0.0:9090"`), as a service named `http`, from the host's start to the end of its stop.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call; `addr`
/// is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_http_endpoint(
    builder: *mut threadhost_builder,
    addr: *const c_char,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        #[cfg(feature = "http")]
        return {
            let addr = try_str!(addr);
            super::builder::update(builder, |b| b.http_endpoint(addr))
        };
        #[cfg(not(feature = "http"))]
        return {
            let _ = (builder, addr);
            status::without_feature("http", "no HTTP endpoint")
        };
    }
}

/// Copies the address the host's endpoint listens on (`127.0.0.1:43521`, `[::1]:9090`; the
/// port the system picked for port 0) into `buf` (the header's string rules).
/// `THREADHOST_INVALID_STATE` while it is not listening: no endpoint, or the host not
/// started yet, stopped, or its start failed.
///
/// # Safety
///
/// `host` is NULL or a live host; `buf` is NULL with `len == 0` or points to `len` writable
/// bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_host_http_addr(
    host: *const threadhost_host,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        #[cfg(feature = "http")]
        return {
            let host = try_ref!(host);
            let Some(addr) = host.handle.http_addr() else {
                return super::status::fail(
                    Status::INVALID_STATE,
                    format!(
                        "the host's HTTP endpoint is not listening (the host is {}; \
                         an endpoint listens from the start of the host to the end of its \
                         stop, if threadhost_builder_http_endpoint added one)",
                        host.handle.state()
                    ),
                );
            };
            let addr = addr.to_string();
            // SAFETY: the caller's contract on buf/len/out_n is exactly `copy_str`'s.
            let status = unsafe { super::status::copy_str(&addr, buf, len, out_n) };
            if status == Status::BUFFER_TOO_SMALL {
                return super::status::fail(
                    status,
                    format!("a buffer of {len} bytes cannot hold the address `{addr}` and its NUL"),
                );
            }
            status
        };
        #[cfg(not(feature = "http"))]
        return {
            let _ = (host, buf, len, out_n);
            status::without_feature("http", "no HTTP endpoint")
        };
    }
}
