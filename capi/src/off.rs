//! The exports of `queue.rs` and `periodic.rs` in a build without that Cargo feature.
//!
//! The header is one file for every build, so every function it declares is exported whatever
//! the features: here each one only records a message naming the missing feature and returns
//! `THREADHOST_INVALID_STATE` (a pointer-returning one returns NULL, a `_free` does nothing:
//! no such object can exist, since its `_new` failed). No argument is read, no output is
//! written; a call that takes ownership of `user` still runs `destroy(user)` at once, as the
//! header promises for a registering call that fails. Handles and callbacks are typed as
//! plain pointers here: the ABI is the same, and none is ever dereferenced or called.

#[cfg(not(feature = "queue"))]
mod queue {
    use std::ffi::{c_char, c_void};

    use crate::service::{DestroyFn, UserData};
    use crate::status::{self, Status};

    /// A callback of the real signature; never called here.
    type Callback = unsafe extern "C" fn();

    fn off() -> Status {
        status::without_feature("queue", "no work queues")
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_new(
        _name: *const c_char,
        _queue_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_capacity(_queue: *mut c_void, _n: usize) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_workers(_queue: *mut c_void, _n: usize) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_full_mode(_queue: *mut c_void, _mode: i32) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_drain_on_stop(
        _queue: *mut c_void,
        _drain: bool,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_cancel_grace(
        _queue: *mut c_void,
        _grace_ms: u64,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_stack_size(
        _queue: *mut c_void,
        _bytes: usize,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: runs `destroy(user)`, then `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// `destroy` is NULL or may be called with `user` (the header's contract).
    #[unsafe(no_mangle)]
    #[allow(clippy::too_many_arguments)] // the C signature
    pub unsafe extern "C" fn threadhost_queue_build(
        _queue: *mut c_void,
        _handler: Option<Callback>,
        _on_unrun: Option<Callback>,
        _on_dropped: Option<Callback>,
        user: *mut c_void,
        destroy: Option<DestroyFn>,
        _service_out: *mut *mut c_void,
        _producer_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! {
            drop(UserData::new(user, destroy));
            off()
        }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_retry(
        _queue: *mut c_void,
        _max_attempts: u32,
        _initial_backoff_ms: u64,
        _max_backoff_ms: u64,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_on_dead_letter(
        _queue: *mut c_void,
        _on_dead_letter: Option<Callback>,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: runs `destroy(user)`, then `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// `destroy` is NULL or may be called with `user` (the header's contract).
    #[unsafe(no_mangle)]
    #[allow(clippy::too_many_arguments)] // the C signature
    pub unsafe extern "C" fn threadhost_queue_build_jobs(
        _queue: *mut c_void,
        _handler: Option<Callback>,
        _on_unrun: Option<Callback>,
        _on_dropped: Option<Callback>,
        user: *mut c_void,
        destroy: Option<DestroyFn>,
        _service_out: *mut *mut c_void,
        _producer_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! {
            drop(UserData::new(user, destroy));
            off()
        }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_job_name(
        _job: *const c_void,
        _buf: *mut c_char,
        _len: usize,
        _out_n: *mut usize,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: NULL.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_job_token(_job: *const c_void) -> *const c_void {
        ffi_boundary! {
            off();
            std::ptr::null()
        }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_job_attempt(
        _job: *const c_void,
        _attempt_out: *mut u32,
        _max_attempts_out: *mut u32,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_job_heartbeat(_job: *const c_void) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_job_set_error(
        _job: *const c_void,
        _message: *const c_char,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: nothing to free.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_queue_free(_queue: *mut c_void) {
        ffi_boundary! {}
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_producer_send(
        _producer: *const c_void,
        _item: *mut c_void,
        _timeout_ms: u64,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_producer_try_send(
        _producer: *const c_void,
        _item: *mut c_void,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_producer_metrics(
        _producer: *const c_void,
        _metrics_out: *mut c_void,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_producer_clone(
        _producer: *const c_void,
        _producer_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `queue`: nothing to free.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_producer_free(_producer: *mut c_void) {
        ffi_boundary! {}
    }
}

#[cfg(not(feature = "periodic"))]
mod periodic {
    use std::ffi::{c_char, c_void};

    use crate::service::{DestroyFn, UserData};
    use crate::status::{self, Status};

    /// A callback of the real signature; never called here.
    type Callback = unsafe extern "C" fn();

    fn off() -> Status {
        status::without_feature("periodic", "no periodic services")
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_new(
        _period_ms: u64,
        _periodic_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_missed(
        _periodic: *mut c_void,
        _missed: i32,
        _burst_max: u32,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_first_tick(
        _periodic: *mut c_void,
        _first: i32,
        _delay_ms: u64,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_escalate_after(
        _periodic: *mut c_void,
        _consecutive: u32,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_on_stop(
        _periodic: *mut c_void,
        _on_stop: Option<Callback>,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_get_stats(
        _periodic: *const c_void,
        _stats_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_stats_read(
        _stats: *const c_void,
        _ticks_out: *mut u64,
        _failures_out: *mut u64,
        _panics_out: *mut u64,
        _missed_out: *mut u64,
    ) -> Status {
        ffi_boundary! { off() }
    }

    /// Without `periodic`: nothing to free.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_stats_free(_stats: *mut c_void) {
        ffi_boundary! {}
    }

    /// Without `periodic`: runs `destroy(user)`, then `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// `destroy` is NULL or may be called with `user` (the header's contract).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_build(
        _periodic: *mut c_void,
        _name: *const c_char,
        _tick: Option<Callback>,
        user: *mut c_void,
        destroy: Option<DestroyFn>,
        _service_out: *mut *mut c_void,
    ) -> Status {
        ffi_boundary! {
            drop(UserData::new(user, destroy));
            off()
        }
    }

    /// Without `periodic`: nothing to free.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_periodic_free(_periodic: *mut c_void) {
        ffi_boundary! {}
    }

    /// Without `periodic`: NULL (no tick can exist).
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_tick_context(_tick: *const c_void) -> *const c_void {
        ffi_boundary! {
            off();
            std::ptr::null()
        }
    }

    /// Without `periodic`: `THREADHOST_INVALID_STATE`.
    ///
    /// # Safety
    ///
    /// None needed: no argument is read.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn threadhost_tick_info(
        _tick: *const c_void,
        _index_out: *mut u64,
        _lateness_us_out: *mut u64,
        _missed_out: *mut u64,
        _failures_out: *mut u64,
    ) -> Status {
        ffi_boundary! { off() }
    }
}
