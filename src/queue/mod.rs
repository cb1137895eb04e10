//! [`WorkQueue`] / [`TaskQueue`]: a bounded queue drained by a pool of worker threads, run as
//! a hosted service, with backpressure, full modes, drain on stop, and exact accounting.
//!
//! The queue is built only on the public service traits: [`WorkQueue`] is a
//! [`HostedService`] whose `start` hook spawns the workers (`th:<queue>/<n>`) and whose `stop`
//! hook closes the queue, drains it until the stop deadline, cancels what still runs, hands
//! back what never ran, and joins the workers by the deadline.
//!
//! # Why a mutex-guarded ring and not a crossbeam channel
//!
//! The product sketch says "crossbeam bounded channel". The buffer is instead a
//! `parking_lot::Mutex<VecDeque<T>>` with three condition variables, because four contracts
//! each need one critical section that a channel cannot give:
//!
//! 1. *Close with drain.* A crossbeam channel closes for senders only when every `Sender` is
//!    dropped, and the [`Producer`]s are the user's clones; here `closed` refuses new items at
//!    once while the workers keep draining.
//! 2. *Blocked senders wake on close.* A sender blocked in a channel's `send` wakes only for
//!    room or disconnection; here `close` wakes every blocked sender, which gets its item back.
//! 3. *Drop modes.* `DropOldest` / `DropNewest` remove the head / the tail and enqueue the new
//!    item in the same critical section, so the evicted item is exactly the one counted and
//!    handed to `on_drop`. A channel cannot pop its tail, and popping its head from the sender
//!    side races with other senders.
//! 4. *Nothing slips past the sweep.* Cancelling sets `closed`, marks the queue cancelled and
//!    takes every queued item in one critical section, so no item can enter or be started
//!    afterwards: `sent = completed + failed + panicked + dropped + returned` holds exactly.
//!
//! Speed comes from keeping the lock short and the wake-ups rare, not from lock freedom: a
//! push or a pop is one uncontended lock in the common case; a condvar is notified only when a
//! thread actually waits on it (`idle_workers`, `waiting_senders`); a worker that finds items
//! never sleeps. The per-job counters are per worker, on their own cache lines, bumped without
//! a locked instruction; nothing reads a clock per job. See `benches/queue.rs`.
//!
//! # Invariants
//!
//! 1. All queue state lives in `Core::state` (one mutex), held only for short, non-blocking
//!    sections: never across user code (handlers, `on_drop`, `on_unrun`, token callbacks) or
//!    the drop of a user value. Items leave the lock by value before they are run or dropped.
//! 2. Every change another thread may wait for is made under `state` and followed by a notify
//!    of the condvar that thread waits on, before the lock is released: an item pushed →
//!    `not_empty` (if a worker is idle); an item taken → `not_full` (if a sender waits); close
//!    → both, `notify_all`; a worker exited → `exited`. Every wait re-checks its predicate
//!    under the lock, in a loop bounded by its deadline. So no wake-up is ever lost.
//! 3. Once `closed` is set no item is accepted; once `cancelled` is set no item is started.
//!    Taking an item and counting it in `taken` is one critical section, as is cancelling and
//!    sweeping the queue. So every accepted item ends in exactly one of: run by a worker
//!    (completed / failed / panicked), evicted by a drop mode (dropped), swept (returned).
//! 4. `running` counts spawned workers that have not exited; the stop hook joins a worker
//!    only after it marked itself exited, so a join never outlasts a deadline; the others are
//!    detached and counted.
//!
//! # Lock order
//!
//! `state` is never held while another lock is taken; `report` is taken alone.

mod error;
mod pool;

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use error::{SendError, SendTimeoutError, TrySendError};

use crate::deadline::Deadline;
use crate::error::{Error, ServiceResult};
use crate::panic::panic_message;
use crate::service::{Context, HostedService, Service};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::sync::{Arc, Condvar, Mutex};
use pool::WorkerCounters;

/// The handler shared by the workers of a queue.
pub(crate) type Handler<T> = Arc<dyn Fn(T, &StopToken) -> ServiceResult + Send + Sync + 'static>;

type OnDrop<T> = Box<dyn Fn(T) + Send + Sync + 'static>;
type OnUnrun<T> = Box<dyn FnOnce(Vec<T>) + Send + 'static>;

/// The item of a [`TaskQueue`]: a boxed closure that receives the jobs' stop token, as .NET's
/// `Func<CancellationToken, ValueTask>` work items.
///
/// The token fires when the queue's stop gives up draining (the stop deadline is near) or
/// cancels at once ([`WorkQueueBuilder::drain_on_stop`]). Returning an error counts the job
/// as failed; `token.sleep(d)?` after a cancellation is counted as failed too, but logged as a
/// cancellation, not as an error.
pub type Task = Box<dyn FnOnce(&StopToken) -> ServiceResult + Send + 'static>;

/// A [`WorkQueue`] of boxed closures ([`Task`]s): the seeds' `IBackgroundTaskQueue` with its
/// `QueuedHostedService`. Build it with [`WorkQueueBuilder::build_tasks`] and send with
/// [`Producer::send_task`].
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, TaskQueue};
///
/// let (queue, producer) = TaskQueue::builder("jobs").workers(2).build_tasks()?;
/// let host = HostBuilder::new().add_service(queue.into_service()).build()?;
/// host.start(Duration::from_secs(5))?;
/// producer.send_task(|token| {
///     token.sleep(Duration::from_millis(1))?; // interruptible by the stop
///     Ok(())
/// })?;
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// assert_eq!(producer.metrics().completed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type TaskQueue = WorkQueue<Task>;

/// What a send does when the queue is full, chosen at construction
/// ([`WorkQueueBuilder::full_mode`]). The names follow .NET's `BoundedChannelFullMode`.
///
/// | mode | a send on a full queue | counted as |
/// | --- | --- | --- |
/// | `Block` | waits for room (backpressure); `try_send` returns `Full(item)`; a timed send returns `Timeout(item)` at its deadline | — |
/// | `DropOldest` | evicts the oldest queued item (the head), enqueues the new one, succeeds | evicted item: dropped |
/// | `DropNewest` | evicts the newest queued item (the tail), enqueues the new one, succeeds | evicted item: dropped |
/// | `Reject` | never waits: every send form hands the item back at once (`Full`, `SendError`, `Timeout`) | not sent |
///
/// An evicted item is counted in [`QueueMetrics::dropped`] and passed to the
/// [`on_drop`](WorkQueueBuilder::on_drop) callback if there is one: never silently lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FullMode {
    /// Wait for room (the default).
    #[default]
    Block,
    /// Evict the oldest queued item to make room.
    DropOldest,
    /// Evict the newest queued item to make room.
    DropNewest,
    /// Refuse the new item, handing it back to the sender.
    Reject,
}

/// A snapshot of a queue's figures: [`Producer::metrics`], [`QueueHandle::metrics`].
///
/// Taking one locks the queue once; it reads no clock. While the queue runs,
/// `sent = completed + failed + panicked + dropped + returned + in_flight + depth`; after a
/// stop whose workers all finished, `in_flight` and `depth` are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueMetrics {
    /// Items accepted by a send (including items later evicted by a drop mode).
    pub sent: u64,
    /// Items waiting in the queue.
    pub depth: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// Items taken by a worker and not finished yet.
    pub in_flight: u64,
    /// Jobs that returned `Ok`.
    pub completed: u64,
    /// Jobs that returned an error (including cancelled jobs that returned `Stopped`).
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Items evicted by `DropOldest` / `DropNewest`.
    pub dropped: u64,
    /// Items handed back unrun by a stop (or by dropping a queue that never stopped).
    pub returned: u64,
    /// The number of workers.
    pub workers: usize,
    /// `true` once the queue stopped accepting items.
    pub closed: bool,
}

impl QueueMetrics {
    /// `completed + failed + panicked + dropped + returned`: the items whose fate is settled.
    #[must_use]
    pub fn settled(&self) -> u64 {
        self.completed + self.failed + self.panicked + self.dropped + self.returned
    }

    /// `true` if every item sent is settled, in flight or queued (always, barring a bug).
    #[must_use]
    pub fn is_conserved(&self) -> bool {
        self.sent == self.settled() + self.in_flight + self.depth as u64
    }
}

impl fmt::Display for QueueMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, queued {}/{}, in flight {}, completed {}, failed {}, panicked {}, dropped {}, returned {}",
            self.sent,
            self.depth,
            self.capacity,
            self.in_flight,
            self.completed,
            self.failed,
            self.panicked,
            self.dropped,
            self.returned
        )
    }
}

/// What a queue's stop did, from [`QueueHandle::take_report`].
///
/// `Debug` shows the number of unrun items, not the items.
#[non_exhaustive]
pub struct QueueReport<T> {
    /// The figures when the stop ended.
    pub metrics: QueueMetrics,
    /// The items handed back unrun, in queue order, unless an
    /// [`on_unrun`](WorkQueueBuilder::on_unrun) callback took them (then empty).
    pub unrun: Vec<T>,
    /// `true` if the jobs' token fired: the drain ran out of time, or the queue cancels at once.
    pub cancelled: bool,
    /// Workers still running a job at the stop deadline: left running, detached.
    pub detached_workers: usize,
    /// How long the stop took.
    pub elapsed: Duration,
}

impl<T> fmt::Debug for QueueReport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueReport")
            .field("metrics", &self.metrics)
            .field("unrun", &self.unrun.len())
            .field("cancelled", &self.cancelled)
            .field("detached_workers", &self.detached_workers)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

/// The state under `Core::state` (invariant 1).
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    cancelled: bool,
    sent: u64,
    dropped: u64,
    returned: u64,
    taken: u64,
    idle_workers: usize,
    waiting_senders: usize,
    running: usize,
    exited: Vec<bool>,
}

/// What producers, workers, handles and the service share.
pub(crate) struct Core<T> {
    pub(crate) name: Arc<str>,
    capacity: usize,
    mode: FullMode,
    state: Mutex<State<T>>,
    /// Invariant 2: workers wait here for an item or the close.
    not_empty: Condvar,
    /// Invariant 2: blocked senders wait here for room or the close.
    not_full: Condvar,
    /// Invariant 2: the stop hook waits here for workers to exit.
    exited: Condvar,
    pub(crate) counters: Box<[WorkerCounters]>,
    /// The jobs' token: fired when the stop gives up draining, or cancels at once.
    pub(crate) jobs: StopSource,
    on_drop: Option<OnDrop<T>>,
    report: Mutex<Option<QueueReport<T>>>,
}

/// How a send failed, before it is shaped into the caller's error type.
enum Refused<T> {
    Full(T),
    Timeout(T),
    Closed(T),
}

impl<T: Send + 'static> Core<T> {
    /// Pushes `item`; waits for room until `deadline` if `wait` (Block mode only).
    fn send(&self, item: T, wait: bool, deadline: Deadline) -> Result<(), Refused<T>> {
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return Err(Refused::Closed(item));
            }
            if st.items.len() < self.capacity {
                st.items.push_back(item);
                st.sent += 1;
                if st.idle_workers > 0 {
                    // Invariant 2: the item is queued under the lock; a worker that is about
                    // to wait has registered as idle under the same lock, so it cannot miss
                    // this notification.
                    self.not_empty.notify_one();
                }
                return Ok(());
            }
            let evicted = match self.mode {
                FullMode::Block if wait => {
                    if deadline.is_expired() {
                        return Err(Refused::Timeout(item));
                    }
                    st.waiting_senders += 1;
                    // Invariant 2: a worker that takes an item, or a close, notifies
                    // `not_full` under the lock after we registered; we re-check room and
                    // `closed` after every wake-up.
                    match deadline.instant() {
                        None => self.not_full.wait(&mut st),
                        Some(at) => {
                            let _ = self.not_full.wait_until(&mut st, at);
                        }
                    }
                    st.waiting_senders -= 1;
                    continue;
                }
                FullMode::Block | FullMode::Reject => return Err(Refused::Full(item)),
                FullMode::DropOldest => st.items.pop_front(),
                FullMode::DropNewest => st.items.pop_back(),
            };
            st.items.push_back(item);
            st.sent += 1;
            st.dropped += 1;
            drop(st);
            // Invariant 1: the evicted item (user data) and the callback, outside the lock.
            if let Some(evicted) = evicted {
                self.hand_dropped(evicted);
            }
            return Ok(());
        }
    }

    fn hand_dropped(&self, item: T) {
        let result = catch_unwind(AssertUnwindSafe(|| match &self.on_drop {
            Some(on_drop) => on_drop(item),
            None => drop(item),
        }));
        if let Err(payload) = result {
            log::error!(
                "queue `{}`: the on_drop callback panicked: {}",
                self.name,
                panic_message(payload.as_ref())
            );
        }
    }

    /// A worker's next item; `None` once the queue is closed and empty, or cancelled.
    pub(crate) fn next_item(&self) -> Option<T> {
        let mut st = self.state.lock();
        loop {
            if !st.cancelled {
                if let Some(item) = st.items.pop_front() {
                    // Invariant 3: taken and counted in one critical section.
                    st.taken += 1;
                    if st.waiting_senders > 0 {
                        // Invariant 2: room made under the lock; the waiting sender
                        // registered under it.
                        self.not_full.notify_one();
                    }
                    return Some(item);
                }
            }
            if st.closed {
                return None;
            }
            st.idle_workers += 1;
            // Invariant 2: a send or a close notifies `not_empty` under the lock after we
            // registered as idle; the predicate is re-checked after every wake-up.
            self.not_empty.wait(&mut st);
            st.idle_workers -= 1;
        }
    }

    /// Stops accepting items; wakes blocked senders (they get `Closed(item)`) and idle
    /// workers (they exit once the queue is empty).
    fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        // Invariant 2: `closed` set under the lock, then every waiter woken to re-check it.
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Closes, marks the queue cancelled and takes every queued item (invariant 3). The
    /// caller fires the jobs' token and hands the items back, outside the lock.
    fn cancel(&self) -> Vec<T> {
        let mut st = self.state.lock();
        st.closed = true;
        st.cancelled = true;
        let items: Vec<T> = st.items.drain(..).collect();
        st.returned += items.len() as u64;
        // Invariant 2: as `close`; idle workers now find the queue cancelled and exit.
        self.not_empty.notify_all();
        self.not_full.notify_all();
        items
    }

    pub(crate) fn worker_spawned(&self, index: usize) {
        let mut st = self.state.lock();
        st.running += 1;
        st.exited[index] = false;
    }

    /// A worker's last act (invariant 4).
    pub(crate) fn worker_exited(&self, index: usize) {
        let mut st = self.state.lock();
        if !st.exited[index] {
            st.exited[index] = true;
            st.running -= 1;
        }
        // Invariant 2: the stop hook re-checks `running` under the lock.
        self.exited.notify_all();
    }

    /// Waits until every worker exited or `deadline` passed; `true` if they all exited.
    fn await_workers(&self, deadline: Deadline) -> bool {
        let mut st = self.state.lock();
        while st.running > 0 {
            match deadline.instant() {
                None => self.exited.wait(&mut st),
                Some(at) => {
                    // Invariant 2: `worker_exited` notifies under the lock.
                    if self.exited.wait_until(&mut st, at).timed_out() {
                        return st.running == 0;
                    }
                }
            }
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    fn metrics(&self) -> QueueMetrics {
        let st = self.state.lock();
        let mut m = QueueMetrics {
            sent: st.sent,
            depth: st.items.len(),
            capacity: self.capacity,
            dropped: st.dropped,
            returned: st.returned,
            workers: self.counters.len(),
            closed: st.closed,
            ..QueueMetrics::default()
        };
        // Read under the lock, after `taken`: a job counted finished was taken before, and
        // `taken` cannot move while we hold the lock, so `in_flight` never underflows.
        for c in self.counters.iter() {
            m.completed += c.completed.load(crate::sync::Ordering::Relaxed);
            m.failed += c.failed.load(crate::sync::Ordering::Relaxed);
            m.panicked += c.panicked.load(crate::sync::Ordering::Relaxed);
        }
        let finished: u64 = self.counters.iter().map(WorkerCounters::finished).sum();
        m.in_flight = st.taken.saturating_sub(finished);
        m
    }

    fn store_report(&self, report: QueueReport<T>) {
        let old = self.report.lock().replace(report);
        // Invariant 1: a previous report's items are dropped outside the lock.
        drop(old);
    }
}

/// Builds a [`WorkQueue`] and its first [`Producer`]. Made by [`WorkQueue::builder`].
///
/// Defaults: capacity 100 (.NET's `QueueCapacity`), one worker, [`FullMode::Block`], drain on
/// stop, no callbacks.
#[must_use = "a WorkQueueBuilder does nothing until `build` is called"]
pub struct WorkQueueBuilder<T> {
    name: String,
    capacity: usize,
    workers: usize,
    mode: FullMode,
    drain_on_stop: bool,
    cancel_grace: Option<Duration>,
    stack_size: Option<usize>,
    on_drop: Option<OnDrop<T>>,
    on_unrun: Option<OnUnrun<T>>,
}

/// The smallest worker stack accepted, in bytes (as the host's services).
const MIN_STACK_SIZE: usize = 64 * 1024;

/// The cap of the default cancel grace (a fifth of the stop budget, at most this).
const MAX_DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// Time kept between the end of the workers' join and the stop deadline, so that the stop
/// hook's reply reaches the host before the host's own deadline check.
const REPLY_MARGIN: Duration = Duration::from_millis(2);

impl<T: Send + 'static> WorkQueueBuilder<T> {
    /// The number of items the queue holds (at least 1). The default is 100.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The number of worker threads (at least 1). The default is 1: items run one at a
    /// time, in order, as .NET's `QueuedHostedService`.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// What a send does when the queue is full. The default is [`FullMode::Block`].
    pub fn full_mode(mut self, mode: FullMode) -> Self {
        self.mode = mode;
        self
    }

    /// Receives each item evicted by [`FullMode::DropOldest`] / [`FullMode::DropNewest`], on
    /// the sending thread, outside the queue's lock. A panic in it is caught and logged.
    pub fn on_drop(mut self, f: impl Fn(T) + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(f));
        self
    }

    /// Receives the items a stop hands back unrun (never started), in queue order, so the
    /// program can persist them; called once, only if there are such items, on the queue's
    /// service thread, outside the queue's lock, within the stop (keep it short: it counts
    /// against the stop deadline). A panic in it is caught and logged. Without it, the items
    /// are in [`QueueReport::unrun`].
    pub fn on_unrun(mut self, f: impl FnOnce(Vec<T>) + Send + 'static) -> Self {
        self.on_unrun = Some(Box::new(f));
        self
    }

    /// `true` (the default): a stop drains the queue until shortly before the stop deadline
    /// (see [`cancel_grace`](Self::cancel_grace)), then cancels. `false`: a stop cancels at
    /// once — it fires the jobs' token and hands back everything queued.
    pub fn drain_on_stop(mut self, drain: bool) -> Self {
        self.drain_on_stop = drain;
        self
    }

    /// How long before the stop deadline the drain gives up: then the jobs' token fires,
    /// the queued items are handed back, and running jobs have this long to return before
    /// their workers are detached. The default is a fifth of the stop budget, at most 1 s.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = Some(grace);
        self
    }

    /// The stack size of each worker thread, in bytes (at least 64 KiB). The default is
    /// Rust's default.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Builds the queue, whose workers run `handler(item, token)` for each item; `token` is
    /// the jobs' token (see [`drain_on_stop`](Self::drain_on_stop)). Returns the service to
    /// add to a host and a first producer (clone it for more).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option: a capacity or a worker count of 0, an
    /// empty name or one with a NUL byte, a stack smaller than 64 KiB.
    pub fn build<F>(self, handler: F) -> Result<(WorkQueue<T>, Producer<T>), Error>
    where
        F: Fn(T, &StopToken) -> ServiceResult + Send + Sync + 'static,
    {
        let name = &self.name;
        if name.is_empty() || name.contains('\0') {
            return Err(Error::invalid_option(
                "name of a queue",
                name.escape_debug(),
                "a queue name must be non-empty and contain no NUL byte",
            ));
        }
        if self.capacity == 0 {
            return Err(Error::invalid_option(
                format!("capacity of queue `{name}`"),
                0,
                "a queue must hold at least one item",
            ));
        }
        if self.workers == 0 {
            return Err(Error::invalid_option(
                format!("workers of queue `{name}`"),
                0,
                "a queue needs at least one worker",
            ));
        }
        if let Some(bytes) = self.stack_size.filter(|&b| b < MIN_STACK_SIZE) {
            return Err(Error::invalid_option(
                format!("stack_size of queue `{name}`"),
                bytes,
                format!("a thread stack must be at least {MIN_STACK_SIZE} bytes"),
            ));
        }
        let core = Arc::new(Core {
            name: Arc::from(self.name.as_str()),
            capacity: self.capacity,
            mode: self.mode,
            state: Mutex::new(State {
                items: VecDeque::with_capacity(self.capacity.min(4096)),
                closed: false,
                cancelled: false,
                sent: 0,
                dropped: 0,
                returned: 0,
                taken: 0,
                idle_workers: 0,
                waiting_senders: 0,
                running: 0,
                exited: vec![true; self.workers],
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            exited: Condvar::new(),
            counters: (0..self.workers)
                .map(|_| WorkerCounters::default())
                .collect(),
            jobs: StopSource::new(),
            on_drop: self.on_drop,
            report: Mutex::new(None),
        });
        let queue = WorkQueue {
            core: Arc::clone(&core),
            handler: Arc::new(handler),
            threads: Vec::new(),
            stack_size: self.stack_size,
            drain_on_stop: self.drain_on_stop,
            cancel_grace: self.cancel_grace,
            on_unrun: self.on_unrun,
            unrun: Vec::new(),
            finished: false,
        };
        Ok((queue, Producer { core }))
    }
}

impl WorkQueueBuilder<Task> {
    /// Builds a [`TaskQueue`]: each item is a closure run with the jobs' token.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_tasks(self) -> Result<(TaskQueue, Producer<Task>), Error> {
        self.build(|task: Task, token: &StopToken| task(token))
    }
}

impl<T> fmt::Debug for WorkQueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueueBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("workers", &self.workers)
            .field("mode", &self.mode)
            .field("drain_on_stop", &self.drain_on_stop)
            .field("cancel_grace", &self.cancel_grace)
            .field("stack_size", &self.stack_size)
            .field("on_drop", &self.on_drop.is_some())
            .field("on_unrun", &self.on_unrun.is_some())
            .finish()
    }
}

/// A bounded work queue run as a hosted service: typed items, sent through [`Producer`]s,
/// delivered to a handler run by N worker threads (`th:<queue>/<n>`).
///
/// Add it to a host with [`into_service`](WorkQueue::into_service) (or
/// [`HostBuilder::hosted`](crate::HostBuilder::hosted)); it starts and stops with the host:
///
/// - **start** spawns the workers; items sent before start are queued and run then.
/// - **stop** stops accepting (blocked senders get their item back as `Closed`), drains the
///   queue until shortly before the stop deadline ([`Context::deadline`]), then fires the
///   jobs' token, hands back the items never started ([`on_unrun`](WorkQueueBuilder::on_unrun)
///   or [`QueueReport::unrun`]), and joins the workers by the deadline. A worker still running
///   then is detached, counted in the report, and the stop hook returns an error naming it.
/// - A job that returns an error or panics is counted and logged with the queue's name; its
///   worker goes on with the next item.
/// - Dropping a queue that never stopped (its host never started, or failed to start) closes
///   it and hands back everything queued.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use threadhost::{FullMode, HostBuilder, WorkQueue};
///
/// let total = Arc::new(AtomicU64::new(0));
/// let sum = Arc::clone(&total);
/// let (queue, producer) = WorkQueue::builder("ingest")
///     .capacity(100)
///     .workers(2)
///     .full_mode(FullMode::Block)
///     .build(move |reading: u64, _token| {
///         sum.fetch_add(reading, Ordering::Relaxed);
///         Ok(())
///     })?;
/// let handle = queue.handle();
/// let host = HostBuilder::new().add_service(queue.into_service()).build()?;
/// producer.send(1)?; // before start: queued, run after start
/// host.start(Duration::from_secs(5))?;
/// for reading in 2..=10 {
///     producer.send(reading)?;
/// }
/// assert!(host.stop(Duration::from_secs(5)).is_clean()); // drains
/// assert_eq!(total.load(Ordering::Relaxed), 55);
/// assert!(producer.send(11).is_err()); // closed
/// let report = handle.take_report().unwrap();
/// assert_eq!(report.metrics.completed, 10);
/// assert!(report.unrun.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WorkQueue<T: Send + 'static> {
    core: Arc<Core<T>>,
    handler: Handler<T>,
    threads: Vec<Option<JoinHandle<()>>>,
    stack_size: Option<usize>,
    drain_on_stop: bool,
    cancel_grace: Option<Duration>,
    on_unrun: Option<OnUnrun<T>>,
    /// Items swept and not yet handed back.
    unrun: Vec<T>,
    /// The stop hook (or a failed start's cleanup) ran: nothing is left for `Drop`.
    finished: bool,
}

impl<T: Send + 'static> WorkQueue<T> {
    /// A builder for a queue named `name` (also its service name and the prefix of its
    /// worker threads' names).
    pub fn builder(name: &str) -> WorkQueueBuilder<T> {
        WorkQueueBuilder {
            name: name.to_owned(),
            capacity: 100,
            workers: 1,
            mode: FullMode::Block,
            drain_on_stop: true,
            cancel_grace: None,
            stack_size: None,
            on_drop: None,
            on_unrun: None,
        }
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Another producer.
    #[must_use]
    pub fn producer(&self) -> Producer<T> {
        Producer {
            core: Arc::clone(&self.core),
        }
    }

    /// A handle for metrics and the stop report, usable after the queue moved into a host.
    #[must_use]
    pub fn handle(&self) -> QueueHandle<T> {
        QueueHandle {
            core: Arc::clone(&self.core),
        }
    }

    /// The queue as a [`Service`] named after it, ready for
    /// [`HostBuilder::add_service`](crate::HostBuilder::add_service) (set a
    /// [`stop_timeout`](Service::stop_timeout) or [`depends_on`](Service::depends_on) on it
    /// as for any service).
    pub fn into_service(self) -> Service {
        let name = Arc::clone(&self.core.name);
        Service::hosted(&name, self)
    }

    /// Cancels what is queued, fires the jobs' token, and keeps the items to hand back.
    fn cancel(&mut self, reason: StopReason) {
        let items = self.core.cancel();
        if !items.is_empty() {
            log::info!(
                "queue `{}`: handing back {} item(s) that never ran",
                self.core.name,
                items.len()
            );
        }
        self.unrun.extend(items);
        // The token's callbacks are user code: fired outside every lock (invariant 1).
        self.core.jobs.stop_with(reason);
    }

    /// Joins the workers that exited (invariant 4); detaches and counts the others.
    fn join_workers(&mut self) -> usize {
        let exited: Vec<bool> = self.core.state.lock().exited.clone();
        let mut detached = 0;
        for (i, slot) in self.threads.iter_mut().enumerate() {
            let Some(handle) = slot.take() else { continue };
            if exited[i] {
                // It marked itself exited as its last act: this join only waits for it to
                // return.
                let _ = handle.join();
            } else {
                log::warn!(
                    "queue `{}`: worker th:{}/{i} still runs a job at the stop deadline; it is left running, detached",
                    self.core.name,
                    self.core.name
                );
                detached += 1;
            }
        }
        detached
    }

    /// Hands the swept items to `on_unrun` (outside every lock), or returns them for the
    /// report.
    fn hand_back(&mut self) -> Vec<T> {
        let items = std::mem::take(&mut self.unrun);
        if items.is_empty() {
            return items;
        }
        let Some(on_unrun) = self.on_unrun.take() else {
            return items;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || on_unrun(items))) {
            log::error!(
                "queue `{}`: the on_unrun callback panicked: {}",
                self.core.name,
                panic_message(payload.as_ref())
            );
        }
        Vec::new()
    }

    fn finish(&mut self, began: Instant, detached: usize) {
        let cancelled = self.core.jobs.is_stopped();
        let unrun = self.hand_back();
        let metrics = self.core.metrics();
        log::info!(
            "queue `{}` stopped in {:?}: {metrics}",
            self.core.name,
            began.elapsed()
        );
        self.core.store_report(QueueReport {
            metrics,
            unrun,
            cancelled,
            detached_workers: detached,
            elapsed: began.elapsed(),
        });
    }
}

impl<T: Send + 'static> HostedService for WorkQueue<T> {
    /// Spawns the workers.
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        for i in 0..self.core.counters.len() {
            match pool::spawn_worker(&self.core, &self.handler, i, self.stack_size) {
                Ok(handle) => self.threads.push(Some(handle)),
                Err(source) => {
                    // The host will not stop a service whose start failed: release the
                    // workers already running and hand back what is queued now.
                    self.finished = true;
                    self.cancel(StopReason::Requested);
                    let detached = self.join_workers_by(ctx.deadline());
                    self.finish(Instant::now(), detached);
                    return Err(Box::new(Error::Spawn {
                        service: Arc::clone(&self.core.name),
                        source,
                    }));
                }
            }
        }
        Ok(())
    }

    /// Stops accepting, drains until shortly before [`Context::deadline`], cancels, hands
    /// back what never ran, joins the workers by the deadline.
    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        let began = Instant::now();
        let deadline = ctx.deadline();
        self.finished = true;
        self.core.close();
        if self.drain_on_stop {
            let depth = self.core.len();
            log::info!(
                "queue `{}` stopping: draining {depth} queued item(s)",
                self.core.name
            );
            let drain_until = match (deadline.instant(), deadline.remaining()) {
                (Some(at), Some(budget)) => {
                    let grace = self
                        .cancel_grace
                        .unwrap_or_else(|| (budget / 5).min(MAX_DEFAULT_GRACE));
                    Deadline::at(at.checked_sub(grace).unwrap_or(at))
                }
                _ => Deadline::NEVER,
            };
            if !self.core.await_workers(drain_until) {
                log::info!(
                    "queue `{}`: the drain ran out of time; cancelling the running jobs",
                    self.core.name
                );
                self.cancel(StopReason::Deadline);
            }
        } else {
            log::info!("queue `{}` stopping: cancelling at once", self.core.name);
            self.cancel(StopReason::Requested);
        }
        let join_by = match (deadline.instant(), deadline.remaining()) {
            (Some(at), Some(budget)) => {
                Deadline::at(at.checked_sub(REPLY_MARGIN.min(budget / 10)).unwrap_or(at))
            }
            _ => Deadline::NEVER,
        };
        let detached = self.join_workers_by(join_by);
        // Anything still queued (only if workers are gone early, which cannot happen) is
        // handed back rather than lost.
        let rest = self.core.cancel();
        self.unrun.extend(rest);
        self.finish(began, detached);
        if detached > 0 {
            return Err(format!(
                "queue `{}`: {detached} worker(s) still ran a job at the stop deadline and were detached",
                self.core.name
            )
            .into());
        }
        Ok(())
    }
}

impl<T: Send + 'static> WorkQueue<T> {
    fn join_workers_by(&mut self, deadline: Deadline) -> usize {
        self.core.await_workers(deadline);
        self.join_workers()
    }
}

impl<T: Send + 'static> Drop for WorkQueue<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Never stopped (the host never started, or dropped us after an aborted start):
        // refuse new items, wake blocked senders, hand back everything queued.
        let began = Instant::now();
        self.cancel(StopReason::Requested);
        let detached = self.threads.iter().filter(|t| t.is_some()).count();
        // Dropping the handles detaches workers that may still finish a job; never block in
        // a drop.
        self.threads.clear();
        self.finish(began, detached);
    }
}

impl<T: Send + 'static> fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.core.name)
            .field("metrics", &self.core.metrics())
            .finish_non_exhaustive()
    }
}

/// The sending side of a [`WorkQueue`]: `Clone + Send + Sync`, usable from any thread,
/// before the queue starts (items wait for the workers) and after it stops (sends fail with
/// the item handed back).
///
/// The four send forms, as crossbeam's `Sender` (they differ only when the queue is full,
/// in [`FullMode::Block`]; see [`FullMode`] for the others):
///
/// | method | full queue | closed queue |
/// | --- | --- | --- |
/// | [`send`](Producer::send) | waits for room | `SendError(item)` |
/// | [`send_timeout`](Producer::send_timeout) / [`send_deadline`](Producer::send_deadline) | waits until the deadline, then `Timeout(item)` | `Closed(item)` |
/// | [`try_send`](Producer::try_send) | `Full(item)` | `Closed(item)` |
///
/// A sender blocked on a full queue wakes when the queue closes and gets its item back.
pub struct Producer<T> {
    core: Arc<Core<T>>,
}

impl<T> Clone for Producer<T> {
    fn clone(&self) -> Producer<T> {
        Producer {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Send + 'static> Producer<T> {
    /// Sends `item`, waiting while the queue is full (backpressure, in [`FullMode::Block`]).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the item: the queue is closed, or (in [`FullMode::Reject`]) full.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.core
            .send(item, true, Deadline::NEVER)
            .map_err(|refused| match refused {
                Refused::Full(item) | Refused::Timeout(item) | Refused::Closed(item) => {
                    SendError(item)
                }
            })
    }

    /// Sends `item`, waiting at most `timeout` while the queue is full. Forwards to
    /// [`send_deadline`](Producer::send_deadline).
    ///
    /// # Errors
    ///
    /// As [`send_deadline`](Producer::send_deadline).
    pub fn send_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(item, Deadline::after(timeout))
    }

    /// Sends `item`, waiting until `deadline` while the queue is full.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] with the item if the deadline passed with the queue full
    /// (at once in [`FullMode::Reject`]); [`SendTimeoutError::Closed`] if the queue is closed.
    pub fn send_deadline(
        &self,
        item: T,
        deadline: impl Into<Deadline>,
    ) -> Result<(), SendTimeoutError<T>> {
        self.core
            .send(item, true, deadline.into())
            .map_err(|refused| match refused {
                Refused::Full(item) | Refused::Timeout(item) => SendTimeoutError::Timeout(item),
                Refused::Closed(item) => SendTimeoutError::Closed(item),
            })
    }

    /// Sends `item` if there is room now (or a drop mode makes room).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] with the item if the queue is full (in [`FullMode::Block`] or
    /// [`FullMode::Reject`]); [`TrySendError::Closed`] if it is closed.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.core
            .send(item, false, Deadline::NEVER)
            .map_err(|refused| match refused {
                Refused::Full(item) | Refused::Timeout(item) => TrySendError::Full(item),
                Refused::Closed(item) => TrySendError::Closed(item),
            })
    }

    /// The number of items waiting in the queue.
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// `true` if no item waits in the queue.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's capacity.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// `true` once the queue stopped accepting items.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// A snapshot of the queue's figures.
    #[must_use]
    pub fn metrics(&self) -> QueueMetrics {
        self.core.metrics()
    }
}

impl Producer<Task> {
    /// Sends a closure to a [`TaskQueue`], waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Producer::send); the error holds the boxed closure.
    pub fn send_task<F>(&self, f: F) -> Result<(), SendError<Task>>
    where
        F: FnOnce(&StopToken) -> ServiceResult + Send + 'static,
    {
        self.send(Box::new(f))
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.core.name)
            .finish_non_exhaustive()
    }
}

/// A handle on a [`WorkQueue`] that stays usable after the queue moved into a host:
/// metrics, and the report of its stop. `Clone + Send + Sync`.
pub struct QueueHandle<T> {
    core: Arc<Core<T>>,
}

impl<T> Clone for QueueHandle<T> {
    fn clone(&self) -> QueueHandle<T> {
        QueueHandle {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Send + 'static> QueueHandle<T> {
    /// A snapshot of the queue's figures.
    #[must_use]
    pub fn metrics(&self) -> QueueMetrics {
        self.core.metrics()
    }

    /// The report of the queue's stop (with the unrun items), once; `None` before the stop
    /// ended or after it was taken.
    #[must_use]
    pub fn take_report(&self) -> Option<QueueReport<T>> {
        self.core.report.lock().take()
    }

    /// `true` once the queue stopped accepting items.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.name
    }
}

impl<T> fmt::Debug for QueueHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueHandle")
            .field("queue", &self.core.name)
            .finish_non_exhaustive()
    }
}
