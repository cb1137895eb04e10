//! `threadhost_queue` and `threadhost_producer`: a work queue of `void *` items from C (the
//! Rust `WorkQueue<T>`), drained by worker threads that run a C handler.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::context::status_result;
use super::deadline_ms;
use super::handle::{self, write_out};
use super::service::{DestroyFn, UserData, threadhost_service};
use super::status::{self, Status};
use super::stop::threadhost_token;
use threadhost::{
    FullMode, Producer, QueueMetrics, SendTimeoutError, StopToken, TrySendError, WorkQueue,
    WorkQueueBuilder,
};

/// Opaque: a queue being configured, owned by C until `threadhost_queue_build` consumes it.
pub struct threadhost_queue {
    _private: [u8; 0],
}

/// Opaque: a producer of a queue, owned by C (`threadhost_producer_free`).
pub struct threadhost_producer {
    _private: [u8; 0],
}

castable!(threadhost_queue => CQueue, box);
castable!(threadhost_producer => CProducer, box);

/// `threadhost_status (*)(void *user, void *item, const threadhost_token *token)`.
pub type ItemFn = unsafe extern "C" fn(
    user: *mut c_void,
    item: *mut c_void,
    token: *const threadhost_token,
) -> Status;

/// `void (*)(void *user, void **items, size_t count)`.
pub type ItemsFn = unsafe extern "C" fn(user: *mut c_void, items: *mut *mut c_void, count: usize);

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
    handler: ItemFn,
    unrun: Option<ItemsFn>,
    dropped: Option<ItemsFn>,
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
            None => log::warn!(
                "queue: {} {what} item(s) forgotten: no on_unrun / on_dropped callback",
                pointers.len()
            ),
        }
    }
}

/// The Rust side of `threadhost_queue`.
pub(crate) struct CQueue {
    /// `None` only after a panic in the middle of an update.
    builder: Option<WorkQueueBuilder<CItem>>,
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
        let queue = CQueue { builder: Some(WorkQueue::<CItem>::builder(name)) };
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
        try_out!(service_out);
        try_out!(producer_out);
        let CQueue { builder } = *queue;
        let Some(builder) = builder else {
            return status::fail(Status::INVALID_STATE, "this queue was left unusable by an earlier panic");
        };
        let shared = Arc::new(QueueUser { handler, unrun: on_unrun, dropped: on_dropped, user });
        let (for_drop, for_unrun) = (Arc::clone(&shared), Arc::clone(&shared));
        let built = builder
            .on_drop(move |item: CItem| {
                for_drop.hand_back(for_drop.dropped, for_drop.unrun, vec![item], "dropped");
            })
            .on_unrun(move |items: Vec<CItem>| {
                for_unrun.hand_back(for_unrun.unrun, for_unrun.dropped, items, "unrun");
            })
            .build(move |item: CItem, token: &StopToken| {
                let token = handle::to_ref_ptr::<threadhost_token>(token);
                // SAFETY: the caller's handler, with its user data (usable from any worker,
                // header contract), the item it sent, and the jobs' token valid during the call.
                let status = unsafe { (shared.handler)(shared.user.as_ptr(), item.0, token) };
                status_result(status, None)
            });
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
