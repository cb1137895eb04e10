//! `threadhost_builder`: host options and services, then `threadhost_builder_build`.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use super::group::{self, threadhost_group};
use super::handle::{self, write_out};
use super::host::{CHost, threadhost_host};
use super::service::{self, DestroyFn, RunFn, threadhost_service};
use super::status::{self, Status};
use threadhost::HostBuilder;

/// Opaque: a host builder, owned by C until `threadhost_builder_build` consumes it.
pub struct threadhost_builder {
    _private: [u8; 0],
}

// `None` only after a panic in the middle of an update.
castable!(threadhost_builder => Option<HostBuilder>, box);

/// Applies a by-value `HostBuilder` setter.
pub(crate) fn update(
    slot: &mut Option<HostBuilder>,
    f: impl FnOnce(HostBuilder) -> HostBuilder,
) -> Status {
    match slot.take() {
        Some(builder) => {
            *slot = Some(f(builder));
            Status::OK
        }
        None => status::fail(
            Status::INVALID_STATE,
            "this builder was left unusable by an earlier panic; free it",
        ),
    }
}

/// A new builder with the default options and no services, or NULL if the allocation
/// panicked.
#[unsafe(no_mangle)]
pub extern "C" fn threadhost_builder_new() -> *mut threadhost_builder {
    ffi_boundary! {
        handle::to_box_ptr::<threadhost_builder>(Some(HostBuilder::new()))
    }
}

/// Frees a builder that was never built (the services added to it are freed: their
/// `destroy` runs). NULL is a no-op.
///
/// # Safety
///
/// `builder` is NULL or a live builder, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_free(builder: *mut threadhost_builder) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned builder handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(builder) });
    }
}

/// Sets the stop deadline of `run`, of `join` after a stop request, and of freeing a running
/// host. The default is 30 000 ms.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_shutdown_timeout(
    builder: *mut threadhost_builder,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.shutdown_timeout(Duration::from_millis(timeout_ms)))
    }
}

/// Sets the start deadline of `run`. The default is none.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_startup_timeout(
    builder: *mut threadhost_builder,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.startup_timeout(Duration::from_millis(timeout_ms)))
    }
}

/// Sets the deadline of a reload asked for with `threadhost_host_request_reload` or SIGHUP.
/// The default is 30 000 ms.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_reload_timeout(
    builder: *mut threadhost_builder,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.reload_timeout(Duration::from_millis(timeout_ms)))
    }
}

/// Starts services concurrently where no dependency forbids it. The default is `false`.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_start_concurrently(
    builder: *mut threadhost_builder,
    yes: bool,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.start_concurrently(yes))
    }
}

/// Stops services concurrently where no dependency forbids it. The default is `false`.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_stop_concurrently(
    builder: *mut threadhost_builder,
    yes: bool,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.stop_concurrently(yes))
    }
}

/// The failure policy of services that set none (`THREADHOST_POLICY_*`). The default is
/// `THREADHOST_POLICY_STOP_HOST`.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_on_failure(
    builder: *mut threadhost_builder,
    policy: i32,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let Some(policy) = service::policy(policy) else { return service::bad_policy(policy) };
        update(builder, |b| b.on_failure(policy))
    }
}

/// The stack size of every service thread, in bytes (64 KiB to 1 GiB; checked by
/// `threadhost_builder_build`).
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_stack_size(
    builder: *mut threadhost_builder,
    bytes: usize,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.stack_size(bytes))
    }
}

/// Makes `threadhost_host_run` handle SIGINT, SIGTERM, SIGQUIT (a graceful stop; a second one
/// while stopping exits the process with 128 + its number) and SIGHUP (a reload).
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_console_lifetime(
    builder: *mut threadhost_builder,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        #[cfg(feature = "termination")]
        return update(builder, HostBuilder::console_lifetime);
        #[cfg(not(feature = "termination"))]
        return {
            let _ = builder;
            status::without_feature("termination", "no console lifetime")
        };
    }
}

/// Applies the `THREADHOST_*` environment variables over the options set so far (see the Rust
/// `HostOptions::apply_env`); a bad value is reported by `threadhost_builder_build`.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_options_from_env(
    builder: *mut threadhost_builder,
) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        #[cfg(feature = "env")]
        return update(builder, HostBuilder::options_from_env);
        #[cfg(not(feature = "env"))]
        return {
            let _ = builder;
            status::without_feature("env", "no THREADHOST_* options")
        };
    }
}

/// Speaks systemd's notify protocol when run by systemd (`Type=notify`); a no-op without
/// `NOTIFY_SOCKET`.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_systemd(builder: *mut threadhost_builder) -> Status {
    ffi_boundary! {
        let builder = try_mut!(builder);
        #[cfg(feature = "systemd")]
        return update(builder, HostBuilder::systemd);
        #[cfg(not(feature = "systemd"))]
        return {
            let _ = builder;
            status::without_feature("systemd", "no systemd notify")
        };
    }
}

/// Adds `service`, consuming it (also when this call fails: then it is freed).
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call;
/// `service` is NULL or a live service, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_add_service(
    builder: *mut threadhost_builder,
    service: *mut threadhost_service,
) -> Status {
    ffi_boundary! {
        // Take the service first: it is consumed whatever happens next.
        let service = try_box!(service);
        let builder = try_mut!(builder);
        update(builder, |b| b.add_service(*service))
    }
}

/// Adds `group` (and everything in it) at the top level, consuming it (also when this call
/// fails: then it is freed).
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call; `group`
/// is NULL or a live group, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_add_group(
    builder: *mut threadhost_builder,
    group: *mut threadhost_group,
) -> Status {
    ffi_boundary! {
        // Take the group first: it is consumed whatever happens next.
        let group = try_box!(group);
        let builder = try_mut!(builder);
        let group = match group::take(*group) {
            Ok(g) => g,
            Err(status) => return status,
        };
        update(builder, |b| b.add_group(group))
    }
}

/// Adds a background service named `name` whose body is `run`: shorthand for
/// `threadhost_service_new_background` + `threadhost_builder_add_service`.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used by another thread during the call; `name` is
/// NULL or a NUL-terminated string; `user` and `destroy` follow the header's contract
/// (ownership of `user` passes to threadhost, even when this call fails).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_add_background(
    builder: *mut threadhost_builder,
    name: *const c_char,
    run: Option<RunFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
) -> Status {
    ffi_boundary! {
        let mut svc: *mut threadhost_service = std::ptr::null_mut();
        // SAFETY: `name`, `user` and `destroy` are passed through under the same contract;
        // `svc` is a local.
        let status = unsafe {
            service::threadhost_service_new_background(name, run, user, destroy, &raw mut svc)
        };
        if status != Status::OK {
            return status;
        }
        // SAFETY: `builder` is passed through under the same contract; `svc` was just made.
        unsafe { threadhost_builder_add_service(builder, svc) }
    }
}

/// Validates everything and builds the host into `*host_out`. Consumes `builder` whatever
/// the outcome: on failure its services are freed (their `destroy` runs) and the status is
/// `THREADHOST_INVALID_CONFIG` with a message naming the bad option or service.
///
/// # Safety
///
/// `builder` is NULL or a live builder, never used again; `host_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_builder_build(
    builder: *mut threadhost_builder,
    host_out: *mut *mut threadhost_host,
) -> Status {
    ffi_boundary! {
        let builder = try_box!(builder);
        try_out!(host_out);
        let Some(builder) = *builder else {
            return status::fail(
                Status::INVALID_STATE,
                "this builder was left unusable by an earlier panic",
            );
        };
        match builder.build() {
            Ok(host) => {
                let host = handle::to_box_ptr::<threadhost_host>(CHost::new(host));
                // SAFETY: checked non-NULL above; writable by the caller's contract.
                unsafe { write_out(host_out, host) };
                Status::OK
            }
            Err(error) => status::from_error(&error),
        }
    }
}
