//! `threadhost_queue` and `threadhost_producer`: a work queue of `void *` items from C (the
//! Rust `WorkQueue<T>`), drained by worker threads that run a C handler; `threadhost_job`:
//! what a job handler (`threadhost_queue_build_jobs`, the Rust `build_jobs`) is lent.

use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::context::status_result;
use super::deadline_ms;
use super::handle::{self, write_out};
use super::service::{DestroyFn, UserData, threadhost_service};
use super::status::{self, Status};
use super::stop::threadhost_token;
use threadhost::{
    Backoff, Failure, FullMode, JobContext, Producer, QueueMetrics, SendTimeoutError, StopToken,
    TrySendError, WorkQueue, WorkQueueBuilder,
};

/// Opaque: a queue being configured, owned by C until `threadhost_queue_build` consumes it.
pub struct threadhost_queue {
    _private: [u8; 0],
}

/// Opaque: a producer of a queue, owned by C (`threadhost_producer_free`).
pub struct threadhost_producer {
    _private: [u8; 0],
}

/// Opaque: a job, lent to a job handler for the call.
pub struct threadhost_job {
    _private: [u8; 0],
}

castable!(threadhost_queue => CQueue, box);
castable!(threadhost_producer => CProducer, box);
castable!(threadhost_job => CJob<'static>, ref);

/// `threadhost_status (*)(void *user, void *item, const threadhost_token *token)`.
pub type ItemFn = unsafe extern "C" fn(
    user: *mut c_void,
    item: *mut c_void,
    token: *const threadhost_token,
) -> Status;

/// `void (*)(void *user, void **items, size_t count)`.
pub type ItemsFn = unsafe extern "C" fn(user: *mut c_void, items: *mut *mut c_void, count: usize);

/// `threadhost_status (*)(void *user, void *item, const threadhost_job *job)`.
pub type JobFn = unsafe extern "C" fn(
    user: *mut c_void,
    item: *mut c_void,
    job: *const threadhost_job,
) -> Status;

/// `void (*)(void *user, void *item, const char *message)`.
pub type DeadLetterFn =
    unsafe extern "C" fn(user: *mut c_void, item: *mut c_void, message: *const c_char);

/// `threadhost_full_mode` values.
const FULL_BLOCK: i32 = 0;
const FULL_DROP_OLDEST: i32 = 1;
const FULL_DROP_NEWEST: i32 = 2;
const FULL_REJECT: i32 = 3;

/// A C item: an opaque pointer the queue carries and hands to exactly one callback.
#[derive(Debug)]
pub(crate) struct CItem(*mut c_void);

// SAFETY: the header requires items to be usable from the worker threads (an item is handed
// to one callback, on one thread at a time); the C caller guarantees it.
unsafe impl Send for CItem {}

/// The callbacks and user data of one queue, shared by its workers (the handler may run on
/// several at once), its producers (dropped items) and its stop (unrun items). `destroy` runs
/// when the last of them is gone.
struct QueueUser {
    unrun: Option<ItemsFn>,
    dropped: Option<ItemsFn>,
    dead_letter: Option<DeadLetterFn>,
    user: UserData,
}

// SAFETY: the header requires `user` to be usable from several threads at once (several
// workers run the handler concurrently); the C caller guarantees it. The fn pointers are
// plain code addresses.
unsafe impl Sync for QueueUser {}

impl QueueUser {
    /// Hands items back to C: `first`, else `second`, else they are forgotten (logged).
    fn hand_back(
        &self,
        first: Option<ItemsFn>,
        second: Option<ItemsFn>,
        items: Vec<CItem>,
        what: &str,
    ) {
        let mut pointers: Vec<*mut c_void> = items.into_iter().map(|i| i.0).collect();
        match first.or(second) {
            // SAFETY: the caller's callback, with its user data and an array of `len` items
            // valid during the call (header contract); no threadhost lock is held here (the
            // queue calls on_drop / on_unrun outside its locks).
            Some(f) => unsafe { f(self.user.as_ptr(), pointers.as_mut_ptr(), pointers.len()) },
            None => crate::boundary::log_quietly(|| {
                log::warn!(
                    "queue: {} {what} item(s) forgotten: no on_unrun / on_dropped callback",
                    pointers.len()
                );
            }),
        }
    }

    /// Gives a dead letter to `on_dead_letter` with the failure's message, else hands it back
    /// as an unrun item (on_unrun, else on_dropped), else forgets it (logged).
    fn dead_letter(&self, item: CItem, failure: &Failure) {
        let Some(f) = self.dead_letter else {
            return self.hand_back(self.unrun, self.dropped, vec![item], "dead-lettered");
        };
        // A message with a NUL byte is cut there (C strings end at the first).
        let text = failure.to_string();
        let text = text.split('\0').next().unwrap_or_default();
        let message = CString::new(text).unwrap_or_default();
        // SAFETY: the caller's callback, with its user data, the item it sent, and a
        // NUL-terminated message valid during the call (header contract); no threadhost lock
        // is held here (the queue calls on_dead_letter outside its locks).
        unsafe { f(self.user.as_ptr(), item.0, message.as_ptr()) };
    }
}

/// A job and the error message its handler may set (`threadhost_job_set_error`), lent to a
/// job handler. Lives on the worker's Rust stack frame.
pub(crate) struct CJob<'a> {
    job: &'a JobContext<'a>,
    /// Written by `threadhost_job_set_error`, read after the handler returned. A mutex (never
    /// held across user code), as a context's.
    error: Mutex<Option<String>>,
}

/// The Rust side of `threadhost_queue`.
pub(crate) struct CQueue {
    /// `None` only after a panic in the middle of an update.
    builder: Option<WorkQueueBuilder<CItem>>,
    /// `threadhost_queue_on_dead_letter`: wired at build, with the build's user data.
    dead_letter: Option<DeadLetterFn>,
}

/// The Rust side of `threadhost_producer`.
pub(crate) struct CProducer {
    producer: Producer<CItem>,
}

/// A new queue named `name` (copied; also its service's name and its workers' thread-name
/// prefix) in `*queue_out`: capacity 100, one worker, blocking when full, draining on stop.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string; `queue_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_new(
    name: *const c_char,
    queue_out: *mut *mut threadhost_queue,
) -> Status {
    ffi_boundary! {
        try_out!(queue_out);
        let name = try_str!(name);
        let queue = CQueue { builder: Some(WorkQueue::<CItem>::builder(name)), dead_letter: None };
        let queue = handle::to_box_ptr::<threadhost_queue>(queue);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(queue_out, queue) };
        Status::OK
    }
}

/// Applies a by-value builder setter.
fn update(
    queue: &mut CQueue,
    f: impl FnOnce(WorkQueueBuilder<CItem>) -> WorkQueueBuilder<CItem>,
) -> Status {
    match queue.builder.take() {
        Some(builder) => {
            queue.builder = Some(f(builder));
            Status::OK
        }
        None => status::fail(
            Status::INVALID_STATE,
            "this queue was left unusable by an earlier panic; free it",
        ),
    }
}

/// The number of items the queue holds: 1 to 2^20 (`THREADHOST_QUEUE_MAX_CAPACITY`, checked at
/// build: `THREADHOST_INVALID_CONFIG` naming `capacity`, never an allocation abort). Default
/// 100.
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_capacity(
    queue: *mut threadhost_queue,
    capacity: usize,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        update(queue, |q| q.capacity(capacity))
    }
}

/// The number of worker threads: 1 to 1024 (`THREADHOST_QUEUE_MAX_WORKERS`, checked at build).
/// Default 1.
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_workers(
    queue: *mut threadhost_queue,
    workers: usize,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        update(queue, |q| q.workers(workers))
    }
}

/// What a send does when the queue is full (`THREADHOST_FULL_*`). Default `_BLOCK`.
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_full_mode(
    queue: *mut threadhost_queue,
    mode: i32,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        let mode = match mode {
            FULL_BLOCK => FullMode::Block,
            FULL_DROP_OLDEST => FullMode::DropOldest,
            FULL_DROP_NEWEST => FullMode::DropNewest,
            FULL_REJECT => FullMode::Reject,
            _ => {
                return status::fail(
                    Status::INVALID_ARGUMENT,
                    format!(
                        "`mode` {mode} is not a threadhost_full_mode (THREADHOST_FULL_BLOCK 0, \
                         _DROP_OLDEST 1, _DROP_NEWEST 2, _REJECT 3)"
                    ),
                );
            }
        };
        update(queue, |q| q.full_mode(mode))
    }
}

/// `true` (the default): a stop drains the queue until shortly before its deadline, then
/// cancels; `false`: a stop cancels at once, handing back everything queued.
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_drain_on_stop(
    queue: *mut threadhost_queue,
    drain: bool,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        update(queue, |q| q.drain_on_stop(drain))
    }
}

/// How long before the stop deadline the drain gives up and the jobs' token fires. Default:
/// a fifth of the stop budget, at most 1 s. A grace at least as long as the budget (up to
/// `UINT64_MAX`) cancels at once.
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_cancel_grace(
    queue: *mut threadhost_queue,
    grace_ms: u64,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        update(queue, |q| q.cancel_grace(Duration::from_millis(grace_ms)))
    }
}

/// The stack size of each worker thread, in bytes: 64 KiB to 1 GiB (checked at build).
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_stack_size(
    queue: *mut threadhost_queue,
    bytes: usize,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        update(queue, |q| q.stack_size(bytes))
    }
}

/// The handler a C queue runs.
enum CHandler {
    /// `threadhost_queue_build`: the item is the handler's.
    Item(ItemFn),
    /// `threadhost_queue_build_jobs`: the item stays the queue's unless the job succeeds.
    Job(JobFn),
}

/// Retries a failed job (`THREADHOST_OK` not returned, not a cancellation) up to
/// `max_attempts` runs in all (1: no retry, the default; at most 1000, checked at build),
/// waiting a backoff that doubles from `initial_backoff_ms` up to `max_backoff_ms` (at least
/// 1 ms) on the jobs' token. Needs `threadhost_queue_build_jobs`.
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_retry(
    queue: *mut threadhost_queue,
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        let backoff = Backoff::exponential(
            Duration::from_millis(initial_backoff_ms),
            Duration::from_millis(max_backoff_ms),
        );
        update(queue, |q| q.retry(max_attempts, backoff))
    }
}

/// Receives each dead letter (an item whose last attempt failed) with the failure's message;
/// wired at build with the build's `user`. Needs `threadhost_queue_build_jobs`. NULL: the
/// dead letters go to on_unrun (else on_dropped).
///
/// # Safety
///
/// `queue` is NULL or a live queue, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_on_dead_letter(
    queue: *mut threadhost_queue,
    on_dead_letter: Option<DeadLetterFn>,
) -> Status {
    ffi_boundary! {
        let queue = try_mut!(queue);
        queue.dead_letter = on_dead_letter;
        Status::OK
    }
}

/// Builds the queue: its service in `*service_out` (add it to a builder) and a first
/// producer in `*producer_out`. Consumes `queue` whatever the result; ownership of `user`
/// passes to threadhost whatever the result.
///
/// # Safety
///
/// `queue` is NULL or a live queue, never used again; the outputs are NULL or writable;
/// `user`, `destroy` and the callbacks follow the header's contract.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature: object, callbacks, user, outputs
pub unsafe extern "C" fn threadhost_queue_build(
    queue: *mut threadhost_queue,
    handler: Option<ItemFn>,
    on_unrun: Option<ItemsFn>,
    on_dropped: Option<ItemsFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
    service_out: *mut *mut threadhost_service,
    producer_out: *mut *mut threadhost_producer,
) -> Status {
    ffi_boundary! {
        let user = UserData::new(user, destroy);
        let queue = try_box!(queue);
        let Some(handler) = handler else { return status::null_argument("handler") };
        build(*queue, CHandler::Item(handler), on_unrun, on_dropped, user, service_out, producer_out)
    }
}

/// As `threadhost_queue_build`, with a job handler: the item stays the queue's unless the job
/// returns `THREADHOST_OK` (retried, dead-lettered or handed back otherwise).
///
/// # Safety
///
/// As `threadhost_queue_build`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature: object, callbacks, user, outputs
pub unsafe extern "C" fn threadhost_queue_build_jobs(
    queue: *mut threadhost_queue,
    handler: Option<JobFn>,
    on_unrun: Option<ItemsFn>,
    on_dropped: Option<ItemsFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
    service_out: *mut *mut threadhost_service,
    producer_out: *mut *mut threadhost_producer,
) -> Status {
    ffi_boundary! {
        let user = UserData::new(user, destroy);
        let queue = try_box!(queue);
        let Some(handler) = handler else { return status::null_argument("handler") };
        build(*queue, CHandler::Job(handler), on_unrun, on_dropped, user, service_out, producer_out)
    }
}

/// The two builds' common part, after their arguments were checked.
fn build(
    queue: CQueue,
    handler: CHandler,
    on_unrun: Option<ItemsFn>,
    on_dropped: Option<ItemsFn>,
    user: UserData,
    service_out: *mut *mut threadhost_service,
    producer_out: *mut *mut threadhost_producer,
) -> Status {
    try_out!(service_out);
    try_out!(producer_out);
    let CQueue {
        builder,
        dead_letter,
    } = queue;
    let Some(builder) = builder else {
        return status::fail(
            Status::INVALID_STATE,
            "this queue was left unusable by an earlier panic",
        );
    };
    let shared = Arc::new(QueueUser {
        unrun: on_unrun,
        dropped: on_dropped,
        dead_letter,
        user,
    });
    let (for_drop, for_unrun) = (Arc::clone(&shared), Arc::clone(&shared));
    let builder = builder
        .on_drop(move |item: CItem| {
            for_drop.hand_back(for_drop.dropped, for_drop.unrun, vec![item], "dropped");
        })
        .on_unrun(move |items: Vec<CItem>| {
            for_unrun.hand_back(for_unrun.unrun, for_unrun.dropped, items, "unrun");
        });
    let built = match handler {
        CHandler::Item(handler) => {
            // Passed on so that the Rust build refuses it (a by-value handler keeps no item).
            let builder = if dead_letter.is_some() {
                builder.on_dead_letter(|_: CItem, _| ())
            } else {
                builder
            };
            builder.build(move |item: CItem, token: &StopToken| {
                let token = handle::to_ref_ptr::<threadhost_token>(token);
                // SAFETY: the caller's handler, with its user data (usable from any worker,
                // header contract), the item it sent, and the jobs' token valid during the call.
                let status = unsafe { handler(shared.user.as_ptr(), item.0, token) };
                status_result(status, None)
            })
        }
        CHandler::Job(handler) => {
            // A failed C job's item stays the queue's: dead letters are always on, so that it
            // reaches a C callback.
            let for_dead = Arc::clone(&shared);
            builder
                .on_dead_letter(move |item: CItem, failure: Failure| {
                    for_dead.dead_letter(item, &failure);
                })
                .build_jobs(move |item: &mut CItem, job: &JobContext<'_>| {
                    let cjob = CJob {
                        job,
                        error: Mutex::new(None),
                    };
                    // A plain pointer cast erasing the lifetime (`Castable::Rust` says
                    // `'static`): the pointer is only used during the call, while `cjob` lives
                    // on this frame.
                    let ptr = (&raw const cjob).cast::<threadhost_job>();
                    // SAFETY: the caller's handler, with its user data (usable from any
                    // worker, header contract), the item it sent, and the job valid during
                    // the call.
                    let status = unsafe { handler(shared.user.as_ptr(), item.0, ptr) };
                    status_result(status, cjob.error.into_inner())
                })
        }
    };
    match built {
        Ok((queue, producer)) => {
            let service = handle::to_box_ptr::<threadhost_service>(queue.into_service());
            let producer = handle::to_box_ptr::<threadhost_producer>(CProducer { producer });
            // SAFETY: checked non-NULL above; writable by the caller's contract.
            unsafe { write_out(service_out, service) };
            // SAFETY: checked non-NULL above; writable by the caller's contract.
            unsafe { write_out(producer_out, producer) };
            Status::OK
        }
        Err(error) => status::from_error(&error),
    }
}

/// Frees a queue never built. NULL is a no-op.
///
/// # Safety
///
/// `queue` is NULL or live, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_queue_free(queue: *mut threadhost_queue) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned queue handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(queue) });
    }
}

/// The status of a refused send (`CLOSED`, `FULL` or `TIMEOUT`, as the Rust error says);
/// `item` stays the caller's.
fn refused(p: &CProducer, refusal: Status, timeout_ms: u64) -> Status {
    let name = p.producer.name();
    let message = match refusal {
        Status::CLOSED => format!("queue `{name}` is closed (stopped): the item was not sent"),
        Status::TIMEOUT => {
            format!("queue `{name}` stayed full for {timeout_ms} ms: the item was not sent")
        }
        _ => format!("queue `{name}` is full: the item was not sent"),
    };
    status::fail(refusal, message)
}

/// Sends `item`, waiting up to `timeout_ms` for room (`THREADHOST_NO_DEADLINE`: as long as it
/// takes). On success the queue owns `item`; otherwise the caller keeps it.
///
/// # Safety
///
/// `producer` is NULL or a live producer; `item` follows the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_producer_send(
    producer: *const threadhost_producer,
    item: *mut c_void,
    timeout_ms: u64,
) -> Status {
    ffi_boundary! {
        let p = try_ref!(producer);
        match p.producer.send_deadline(CItem(item), deadline_ms(timeout_ms)) {
            Ok(()) => Status::OK,
            Err(SendTimeoutError::Timeout(_)) => refused(p, Status::TIMEOUT, timeout_ms),
            Err(SendTimeoutError::Full(_)) => refused(p, Status::FULL, timeout_ms),
            Err(SendTimeoutError::Closed(_)) => refused(p, Status::CLOSED, timeout_ms),
        }
    }
}

/// Sends `item` if there is room now: `THREADHOST_FULL` / `THREADHOST_CLOSED` otherwise (the
/// caller keeps the item).
///
/// # Safety
///
/// `producer` is NULL or a live producer; `item` follows the header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_producer_try_send(
    producer: *const threadhost_producer,
    item: *mut c_void,
) -> Status {
    ffi_boundary! {
        let p = try_ref!(producer);
        match p.producer.try_send(CItem(item)) {
            Ok(()) => Status::OK,
            Err(TrySendError::Full(_)) => refused(p, Status::FULL, 0),
            Err(TrySendError::Closed(_)) => refused(p, Status::CLOSED, 0),
        }
    }
}

/// `threadhost_queue_metrics`: a snapshot of a queue's figures (a plain C struct).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CQueueMetrics {
    sent: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    panicked: u64,
    dropped: u64,
    returned: u64,
    in_flight: u64,
    depth: u64,
    capacity: u64,
    workers: u64,
    closed: bool,
    dead_lettered: u64,
    retried: u64,
}

impl From<QueueMetrics> for CQueueMetrics {
    fn from(m: QueueMetrics) -> CQueueMetrics {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        CQueueMetrics {
            sent: m.sent,
            completed: m.completed,
            failed: m.failed,
            cancelled: m.cancelled,
            panicked: m.panicked,
            dropped: m.dropped,
            returned: m.returned,
            in_flight: m.in_flight,
            depth: wide(m.depth),
            capacity: wide(m.capacity),
            workers: wide(m.workers),
            closed: m.closed,
            dead_lettered: m.dead_lettered,
            retried: m.retried,
        }
    }
}

/// The queue's figures in `*metrics_out`.
///
/// # Safety
///
/// `producer` is NULL or a live producer; `metrics_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_producer_metrics(
    producer: *const threadhost_producer,
    metrics_out: *mut CQueueMetrics,
) -> Status {
    ffi_boundary! {
        let p = try_ref!(producer);
        try_out!(metrics_out);
        let metrics = CQueueMetrics::from(p.producer.metrics());
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(metrics_out, metrics) };
        Status::OK
    }
}

/// Another producer of the same queue in `*producer_out` (e.g. for another thread).
///
/// # Safety
///
/// `producer` is NULL or a live producer; `producer_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_producer_clone(
    producer: *const threadhost_producer,
    producer_out: *mut *mut threadhost_producer,
) -> Status {
    ffi_boundary! {
        let p = try_ref!(producer);
        try_out!(producer_out);
        let clone = CProducer { producer: p.producer.clone() };
        let clone = handle::to_box_ptr::<threadhost_producer>(clone);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(producer_out, clone) };
        Status::OK
    }
}

/// Frees a producer. NULL is a no-op. The queue's user data is destroyed once its service
/// and every producer are freed.
///
/// # Safety
///
/// `producer` is NULL or live, not in use by another thread, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_producer_free(producer: *mut threadhost_producer) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned producer handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(producer) });
    }
}

/// Copies the queue's name into `buf` (truncation rules of `threadhost_last_error_message`).
///
/// # Safety
///
/// `job` is NULL or the job passed to the running handler; `buf` is NULL with `len == 0` or
/// points to `len` writable bytes; `out_n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_job_name(
    job: *const threadhost_job,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Status {
    ffi_boundary! {
        let job = try_ref!(job);
        let name = job.job.name();
        // SAFETY: the caller's contract on buf/len/out_n is exactly `copy_str`'s.
        let status = unsafe { status::copy_str(name, buf, len, out_n) };
        if status == Status::BUFFER_TOO_SMALL {
            return status::fail(status, format!("a buffer of {len} bytes cannot hold the queue name `{name}` and its NUL"));
        }
        status
    }
}

/// The jobs' token, borrowed from `job` (valid during the call; NULL if `job` is NULL).
///
/// # Safety
///
/// `job` is NULL or the job passed to the running handler.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_job_token(
    job: *const threadhost_job,
) -> *const threadhost_token {
    ffi_boundary! {
        // SAFETY: NULL or the live job of the running handler (caller's contract).
        match unsafe { handle::try_from(job) } {
            Some(job) => handle::to_ref_ptr::<threadhost_token>(job.job.token()),
            None => {
                status::null_argument("job");
                std::ptr::null()
            }
        }
    }
}

/// This attempt's number (1 for the first run, 2 for the first retry…) and the queue's
/// `max_attempts` (1 without retries). Each output may be NULL (not wanted).
///
/// # Safety
///
/// `job` is NULL or the job passed to the running handler; each output is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_job_attempt(
    job: *const threadhost_job,
    attempt_out: *mut u32,
    max_attempts_out: *mut u32,
) -> Status {
    ffi_boundary! {
        let job = try_ref!(job);
        for (out, value) in [(attempt_out, job.job.attempt()), (max_attempts_out, job.job.max_attempts())] {
            if !out.is_null() {
                // SAFETY: not NULL, and writable by the caller's contract.
                unsafe { write_out(out, value) };
            }
        }
        Status::OK
    }
}

/// Says "this queue is alive and making progress" from inside a long job (one atomic store):
/// see `threadhost_service_liveness`.
///
/// # Safety
///
/// `job` is NULL or the job passed to the running handler.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_job_heartbeat(job: *const threadhost_job) -> Status {
    ffi_boundary! {
        let job = try_ref!(job);
        job.job.heartbeat();
        Status::OK
    }
}

/// Sets the message of this job's failure: if the handler then returns a status other than
/// `OK`, the attempt fails with this message (logged; given to on_dead_letter after the last
/// attempt). The string is copied.
///
/// # Safety
///
/// `job` is NULL or the job passed to the running handler; `message` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_job_set_error(
    job: *const threadhost_job,
    message: *const c_char,
) -> Status {
    ffi_boundary! {
        let job = try_ref!(job);
        let message = try_str!(message);
        *job.error.lock() = Some(message.to_owned());
        Status::OK
    }
}
