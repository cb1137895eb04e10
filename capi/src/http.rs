//! `threadhost_builder_http_endpoint`: the health and metrics endpoint (the Rust
//! `HostBuilder::http_endpoint`), with the Cargo feature `http` (off by default). Without it,
//! the function is still exported and returns `THREADHOST_INVALID_STATE` naming the feature.

use std::ffi::c_char;

use super::builder::threadhost_builder;
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
