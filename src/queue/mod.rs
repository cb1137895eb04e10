//! [`WorkQueue`] / [`TaskQueue`]: a bounded queue drained by a pool of worker threads, run as
//! a hosted service, with backpressure, full modes, drain on stop, and exact accounting.
//!
//! The queue is built only on the public service traits: [`WorkQueue`] is a
//! [`HostedService`] whose `start` hook spawns the workers (`th:<queue>/<n>`) and whose `stop`
//! hook closes the queue, drains it until the stop deadline, cancels what still runs, hands
//! back what never ran, and joins the workers by the deadline.
//!
//! # A crossbeam bounded channel, and what is built around it
//!
//! The items travel through a crossbeam `bounded(capacity)` channel: its lock-free array keeps
//! the producer and the workers on different cache lines, and its blocking `recv` is what the
//! workers wait on: an idle worker is parked inside `recv` and woken by the next send or by
//! the seal (below); it never polls, sleeps or spins on `try_recv`. A first version used
//! a `Mutex<VecDeque>` with condvars; with one producer and two workers it was 3–4× slower
//! than a plain crossbeam pool (the three threads fought over one lock), so it was replaced.
//!
//! A channel alone cannot give four contracts; each gets one small mechanism:
//!
//! 1. *Close with drain.* A channel closes for receivers only when its last `Sender` drops, and
//!    the [`Producer`]s are the user's clones. So producers never own a `Sender`: the only one
//!    lives in `Core::tx: RwLock<Option<Sender<T>>>`. A send read-locks it just for the
//!    `closed` check and a `try_send` (two uncontended atomic operations with one producer);
//!    the stop write-locks it and drops the `Sender` ("seals"), after which the workers drain
//!    what is queued and their `recv` ends by itself.
//! 2. *Blocked senders wake on close.* A send that must wait clones the `Sender`, leaves the
//!    lock, and blocks in a `Select` on its send and on `close_rx`; closing drops `close_tx`,
//!    which wakes every such sender at once with its item handed back. (A send racing with the
//!    close may still be accepted: it is then drained or handed back like any queued item.)
//!    Before it blocks, the sender retries `try_send` through a bounded backoff (spin hints,
//!    then yields: ten rounds, microseconds, re-checking `closed`), exactly what crossbeam's
//!    own `send` does before it parks. Measured: without it, a full queue costs a `Select`
//!    and a park/unpark per item, and one producer → two workers ran 5–10× slower.
//! 3. *Drop modes.* `DropOldest` pops the head with `try_recv` on the queue's own `Receiver`
//!    (from the sender's side) and retries; `DropNewest` drops the incoming item. Both count
//!    the dropped item and give it to `on_drop` after the lock is released. (.NET's
//!    `DropNewest`, evicting the newest *queued* item, cannot be done on a channel; what we call
//!    `DropNewest` is .NET's `DropWrite`.)
//! 4. *Nothing is lost at cancel.* Cancelling sets `cancelled`, then sweeps the sealed channel
//!    with `try_recv` (bounded: nothing can enter a sealed channel). A worker checks
//!    `cancelled` after each `recv` and hands back, rather than runs, an item it got after the
//!    flag was set. So every accepted item is run, dropped, or handed back, exactly once.
//!
//! Counters: each worker counts what it took and how each job ended on its own cache line,
//! with plain relaxed stores (single writer); drops and hand-backs are rare shared atomics;
//! `sent` is derived (`depth + taken + dropped + returned`), so a send touches no counter. No
//! clock is read per job. See `benches/queue.rs` for the figures.
//!
//! # Invariants
//!
//! 1. No threadhost lock is held across user code (handlers, `on_drop`, `on_unrun`, token
//!    callbacks) or a blocking wait: the `tx` read lock covers only a check, `try_send` /
//!    `try_recv` calls and the bounded backoff; evicted items leave it by value before
//!    `on_drop` runs.
//! 2. Once `closed` is set (under no lock, before `close_tx` drops), no send starts; once the
//!    `Sender` in `tx` is dropped and the blocked senders' clones are gone, no item can enter.
//! 3. `cancelled` is set before the sweep; a worker that received an item checks it before
//!    running the item. So each item is counted once: in a worker's `taken`, in `dropped`, or
//!    in `returned`.
//! 4. `Workers::running` counts spawned workers that have not exited; it changes under
//!    `workers` and is announced on `workers_exited` (`notify_all` under the lock; the stop
//!    hook re-checks it under the lock in a deadline-bounded loop). A worker is joined only
//!    after it marked itself exited, so a join never outlasts a deadline; the others are
//!    detached and counted.
//!
//! # Lock order
//!
//! No two of `tx`, `close_tx`, `workers`, `late`, `report` are ever held together.

mod error;
mod pool;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use error::{SendError, SendTimeoutError, TrySendError};

use crate::deadline::Deadline;
use crate::error::{Error, ServiceResult};
use crate::panic::take_message;
use crate::service::{Context, HostedService, Service};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::sync::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, RwLock};
use crossbeam_channel::{Receiver, Select, Sender, TrySendError as ChannelError};
use pool::WorkerCounters;

/// The handler shared by the workers of a queue.
pub(crate) type Handler<T> = Arc<dyn Fn(T, &StopToken) -> ServiceResult + Send + Sync + 'static>;

type OnDrop<T> = Box<dyn Fn(T) + Send + Sync + 'static>;
type OnUnrun<T> = Box<dyn Fn(Vec<T>) + Send + Sync + 'static>;

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
/// | `DropNewest` | drops the new item itself (.NET's `DropWrite`), succeeds | new item: dropped |
/// | `Reject` | never waits: every send form hands the item back at once (`Full`, `SendError`, `Timeout`) | not sent |
///
/// A dropped item is counted in [`QueueMetrics::dropped`] and passed to the
/// [`on_drop`](WorkQueueBuilder::on_drop) callback if there is one: never silently lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FullMode {
    /// Wait for room (the default).
    #[default]
    Block,
    /// Evict the oldest queued item to make room.
    DropOldest,
    /// Drop the new item (the newest), keeping what is queued. (.NET's `DropNewest` evicts
    /// the newest *queued* item, which a channel cannot do; this is .NET's `DropWrite`.)
    DropNewest,
    /// Refuse the new item, handing it back to the sender.
    Reject,
}

/// A snapshot of a queue's figures: [`Producer::metrics`], [`QueueHandle::metrics`].
///
/// Taking one reads a few atomics per worker; no lock, no clock. The figures are read one
/// after another, so while items move they may disagree by the few items in motion; at rest
/// (e.g. after a stop whose workers all finished: `in_flight` and `depth` are 0) they are
/// exact, and `sent = completed + failed + panicked + dropped + returned`.
///
/// `sent` is derived (`depth` + items taken by workers + `dropped` + `returned`), so that a
/// send touches no shared counter; `tests/queue_stress.rs` checks it against what the
/// producers counted themselves.
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
    /// Items dropped by `DropOldest` / `DropNewest`.
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
    /// The items handed back unrun, unless an [`on_unrun`](WorkQueueBuilder::on_unrun)
    /// callback took them (then empty). Normally in queue order; under a heavy race, an item a
    /// worker received at the very moment of the cancel can come after the others (each item
    /// is still here exactly once).
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

/// The worker registry, under `Core::workers` (invariant 4).
struct Workers {
    running: usize,
    exited: Vec<bool>,
}

/// Items handed back by workers, until the stop's report is made (`finalized`).
struct Late<T> {
    items: Vec<T>,
    finalized: bool,
}

/// A flag on its own cache line: read by every worker for every item, written once.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Flag(AtomicBool);

/// What producers, workers, handles and the service share.
pub(crate) struct Core<T> {
    pub(crate) name: Arc<str>,
    capacity: usize,
    mode: FullMode,
    /// The only `Sender` of the channel; `None` once sealed (invariant 2).
    tx: RwLock<Option<Sender<T>>>,
    pub(crate) rx: Receiver<T>,
    closed: AtomicBool,
    /// Dropped on close: wakes the senders blocked in a `Select` on `close_rx`.
    close_tx: Mutex<Option<Sender<()>>>,
    close_rx: Receiver<()>,
    cancelled: Flag,
    dropped: AtomicU64,
    returned: AtomicU64,
    pub(crate) counters: Box<[WorkerCounters]>,
    /// The jobs' token: fired when the stop gives up draining, or cancels at once.
    pub(crate) jobs: StopSource,
    on_drop: Option<OnDrop<T>>,
    workers: Mutex<Workers>,
    /// Invariant 4: the stop hook waits here for workers to exit.
    workers_exited: Condvar,
    /// Items a worker received after the cancel and handed back (invariant 3).
    late: Mutex<Late<T>>,
    on_unrun: Option<OnUnrun<T>>,
    report: Mutex<Option<QueueReport<T>>>,
}

/// How a send failed, before it is shaped into the caller's error type.
enum Refused<T> {
    Full(T),
    Timeout(T),
    Closed(T),
}

/// What a send does after the read-locked section.
enum Then<T> {
    Done,
    /// Wait for room with this clone of the `Sender` (Block mode).
    Wait(Sender<T>, T),
}

impl<T: Send + 'static> Core<T> {
    /// Sends `item`; waits for room until `deadline` if `wait` (Block mode only).
    fn send(&self, item: T, wait: bool, deadline: Deadline) -> Result<(), Refused<T>> {
        let mut evicted: Option<T> = None;
        let mut evicted_more: Vec<T> = Vec::new();
        let then = {
            // Invariant 1: held for the check and non-blocking channel calls only; the
            // stop's seal write-locks it, so no send can use the `Sender` after the seal.
            let guard = self.tx.read();
            let tx = match guard.as_ref() {
                Some(tx) if !self.closed.load(Ordering::Acquire) => tx,
                _ => return Err(Refused::Closed(item)),
            };
            match tx.try_send(item) {
                Ok(()) => Then::Done,
                // The core holds a receiver: cannot happen, but never lose the item.
                Err(ChannelError::Disconnected(item)) => return Err(Refused::Closed(item)),
                Err(ChannelError::Full(item)) => match self.mode {
                    FullMode::Block if wait => match self.backoff(tx, item) {
                        Ok(()) => Then::Done,
                        Err(Refused::Full(item)) => Then::Wait(tx.clone(), item),
                        Err(refused) => return Err(refused),
                    },
                    FullMode::Block | FullMode::Reject => return Err(Refused::Full(item)),
                    FullMode::DropNewest => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        evicted = Some(item);
                        Then::Done
                    }
                    FullMode::DropOldest => {
                        let mut item = item;
                        loop {
                            if let Ok(old) = self.rx.try_recv() {
                                self.dropped.fetch_add(1, Ordering::Relaxed);
                                match evicted {
                                    None => evicted = Some(old),
                                    Some(_) => evicted_more.push(old),
                                }
                            }
                            match tx.try_send(item) {
                                Ok(()) => break Then::Done,
                                Err(ChannelError::Full(back)) => item = back,
                                Err(ChannelError::Disconnected(back)) => {
                                    return Err(Refused::Closed(back));
                                }
                            }
                        }
                    }
                },
            }
        };
        // Invariant 1: the evicted items (user data) and the callback, outside the lock.
        if let Some(old) = evicted {
            self.hand_dropped(old);
        }
        for old in evicted_more {
            self.hand_dropped(old);
        }
        match then {
            Then::Done => Ok(()),
            Then::Wait(tx, item) => self.send_blocking(&tx, item, deadline),
        }
    }

    /// A short, bounded backoff on a full queue, as crossbeam's own `send` does before it
    /// parks: spin hints, then yields, re-trying `try_send` and re-checking `closed`. A
    /// worker usually frees a slot within microseconds; without this, a full queue costs a
    /// `Select` and a park/unpark per item. Runs under the `tx` read lock: bounded (ten
    /// rounds), never a blocking wait, so a seal waits for it at most microseconds.
    fn backoff(&self, tx: &Sender<T>, item: T) -> Result<(), Refused<T>> {
        let mut item = item;
        for step in 0..BACKOFF_STEPS {
            if step < SPIN_STEPS {
                for _ in 0..1u32 << step {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(Refused::Closed(item));
            }
            match tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(ChannelError::Full(back)) => item = back,
                Err(ChannelError::Disconnected(back)) => return Err(Refused::Closed(back)),
            }
        }
        Err(Refused::Full(item))
    }

    /// Waits for room, or for the close (invariant 2: `close_tx` drops after `closed` is
    /// set, so a sender that saw the queue open is woken by the close).
    fn send_blocking(&self, tx: &Sender<T>, item: T, deadline: Deadline) -> Result<(), Refused<T>> {
        let mut select = Select::new();
        let send = select.send(tx);
        select.recv(&self.close_rx);
        let oper = match deadline.instant() {
            None => select.select(),
            Some(at) => match select.select_deadline(at) {
                Ok(oper) => oper,
                Err(_) => return Err(Refused::Timeout(item)),
            },
        };
        if oper.index() == send {
            oper.send(tx, item)
                .map_err(|e| Refused::Closed(e.into_inner()))
        } else {
            let _ = oper.recv(&self.close_rx);
            Err(Refused::Closed(item))
        }
    }

    fn hand_dropped(&self, item: T) {
        let result = catch_unwind(AssertUnwindSafe(|| match &self.on_drop {
            Some(on_drop) => on_drop(item),
            None => drop(item),
        }));
        if let Err(payload) = result {
            let message = take_message(payload);
            log::error!(
                "queue `{}`: the on_drop callback panicked: {message}",
                self.name,
            );
        }
    }

    /// `true` once the queue is cancelled: a worker hands back what it receives then.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.0.load(Ordering::Relaxed)
    }

    /// A worker received `item` after the cancel: hand it back (invariant 3).
    pub(crate) fn hand_back_late(&self, item: T) {
        self.returned.fetch_add(1, Ordering::Relaxed);
        // `finalized` and the pushed item change together under `late`, so the stop's final
        // collection (which sets `finalized` under it) either takes this item or we see the
        // flag and hand it back ourselves: never both, never neither.
        let mut late = self.late.lock();
        if !late.finalized {
            late.items.push(item);
            return;
        }
        drop(late);
        // The stop has already reported (this worker was preempted past the stop deadline):
        // hand the item back on its own, outside every lock (invariant 1).
        log::warn!(
            "queue `{}`: an item is handed back after the stop's report",
            self.name
        );
        let rest = self.hand_unrun(vec![item]);
        // The report is stored before `finalized` is set, so it is there unless taken.
        if let Some(report) = self.report.lock().as_mut() {
            report.unrun.extend(rest);
            return;
        }
        // Reached only if the report was already taken: the item can go nowhere.
        log::error!("queue `{}`: a late unrun item was dropped", self.name);
    }

    /// Gives unrun items to `on_unrun`; without it, returns them.
    fn hand_unrun(&self, items: Vec<T>) -> Vec<T> {
        let Some(on_unrun) = &self.on_unrun else {
            return items;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| on_unrun(items))) {
            let message = take_message(payload);
            log::error!(
                "queue `{}`: the on_unrun callback panicked: {message}",
                self.name,
            );
        }
        Vec::new()
    }

    /// Stops accepting items; wakes blocked senders (they get `Closed(item)`).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Invariant 2: `closed` first, then the wake-up of the blocked senders.
        let close_tx = self.close_tx.lock().take();
        drop(close_tx);
    }

    /// Drops the channel's `Sender` once no send is using it (invariant 2): the workers then
    /// drain what is queued and exit. `false` if a send held the lock past `deadline`.
    fn seal(&self, deadline: Deadline) -> bool {
        // Invariant 2: the write lock waits out every send inside its read section, so after
        // this no send can use the `Sender`; senders blocked on a clone were woken by `close`.
        let guard = match deadline.instant() {
            None => Some(self.tx.write()),
            Some(at) => self.tx.try_write_until(at),
        };
        let Some(mut guard) = guard else {
            return false;
        };
        let tx = guard.take();
        drop(guard);
        drop(tx);
        true
    }

    /// Marks the queue cancelled and takes every queued item (invariant 3). The caller fires
    /// the jobs' token and hands the items back, outside every lock.
    fn cancel(&self) -> Vec<T> {
        self.cancelled.0.store(true, Ordering::SeqCst);
        let mut items = Vec::new();
        while let Ok(item) = self.rx.try_recv() {
            items.push(item);
        }
        self.returned
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        items
    }

    pub(crate) fn worker_spawned(&self, index: usize) {
        // Invariant 4: registered before the thread exists, so a stop never misses it.
        let mut w = self.workers.lock();
        w.running += 1;
        w.exited[index] = false;
    }

    /// A worker's last act (invariant 4).
    pub(crate) fn worker_exited(&self, index: usize) {
        let mut w = self.workers.lock();
        if !w.exited[index] {
            w.exited[index] = true;
            w.running -= 1;
        }
        // Invariant 4: changed under the lock, announced before it is released.
        self.workers_exited.notify_all();
    }

    /// Waits until every worker exited or `deadline` passed; `true` if they all exited.
    fn await_workers(&self, deadline: Deadline) -> bool {
        let mut w = self.workers.lock();
        while w.running > 0 {
            match deadline.instant() {
                None => self.workers_exited.wait(&mut w),
                Some(at) => {
                    // Invariant 4: `worker_exited` notifies under the lock; re-checked here.
                    if self.workers_exited.wait_until(&mut w, at).timed_out() {
                        return w.running == 0;
                    }
                }
            }
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn len(&self) -> usize {
        self.rx.len()
    }

    fn metrics(&self) -> QueueMetrics {
        let mut m = QueueMetrics {
            depth: self.rx.len(),
            capacity: self.capacity,
            dropped: self.dropped.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            workers: self.counters.len(),
            closed: self.is_closed(),
            ..QueueMetrics::default()
        };
        let mut taken = 0;
        for c in self.counters.iter() {
            // `finished` before `taken`: a worker bumps `taken` before it runs the job.
            m.completed += c.completed.load(Ordering::Relaxed);
            m.failed += c.failed.load(Ordering::Relaxed);
            m.panicked += c.panicked.load(Ordering::Relaxed);
            taken += c.taken.load(Ordering::Relaxed);
        }
        m.in_flight = taken.saturating_sub(m.completed + m.failed + m.panicked);
        m.sent = m.depth as u64 + taken + m.dropped + m.returned;
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

/// Backoff of a sender on a full queue before it blocks: `SPIN_STEPS` rounds of
/// 1, 2, 4, … spin hints, then yields, `BACKOFF_STEPS` rounds in all (crossbeam's `Backoff`).
const SPIN_STEPS: u32 = 6;
const BACKOFF_STEPS: u32 = 10;

/// The cap of the default cancel grace (a fifth of the stop budget, at most this).
const MAX_DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// Time kept between the end of the workers' join and the stop deadline (at most a tenth of
/// the stop budget), so that the stop hook's reply reaches the host before the host's own
/// deadline check.
const REPLY_MARGIN: Duration = Duration::from_millis(20);

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

    /// Receives each item dropped by [`FullMode::DropOldest`] / [`FullMode::DropNewest`], on
    /// the sending thread, outside the queue's lock. A panic in it is caught and logged.
    pub fn on_drop(mut self, f: impl Fn(T) + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(f));
        self
    }

    /// Receives the items a stop hands back unrun (never started), normally in queue order
    /// (see [`QueueReport::unrun`]), so the
    /// program can persist them; called once, only if there are such items, on the queue's
    /// service thread, outside the queue's lock, within the stop (keep it short: it counts
    /// against the stop deadline). A panic in it is caught and logged. Without it, the items
    /// are in [`QueueReport::unrun`].
    pub fn on_unrun(mut self, f: impl Fn(Vec<T>) + Send + Sync + 'static) -> Self {
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
        let (tx, rx) = crossbeam_channel::bounded(self.capacity);
        let (close_tx, close_rx) = crossbeam_channel::bounded(0);
        let core = Arc::new(Core {
            name: Arc::from(self.name.as_str()),
            capacity: self.capacity,
            mode: self.mode,
            tx: RwLock::new(Some(tx)),
            rx,
            closed: AtomicBool::new(false),
            close_tx: Mutex::new(Some(close_tx)),
            close_rx,
            cancelled: Flag::default(),
            dropped: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            counters: (0..self.workers)
                .map(|_| WorkerCounters::default())
                .collect(),
            jobs: StopSource::new(),
            on_drop: self.on_drop,
            workers: Mutex::new(Workers {
                running: 0,
                exited: vec![true; self.workers],
            }),
            workers_exited: Condvar::new(),
            late: Mutex::new(Late {
                items: Vec::new(),
                finalized: false,
            }),
            on_unrun: self.on_unrun,
            report: Mutex::new(None),
        });
        let queue = WorkQueue {
            core: Arc::clone(&core),
            handler: Arc::new(handler),
            threads: Vec::new(),
            stack_size: self.stack_size,
            drain_on_stop: self.drain_on_stop,
            cancel_grace: self.cancel_grace,
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
/// - A handler that sends to its own queue should use `try_send` (or a timed send): with
///   every worker blocked in `send` on a full queue, nobody would make room until the stop.
/// - Jobs run in queue order with one worker; with several, in queue order of *start*.
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

    /// Refuses new items, wakes blocked senders, and seals the channel so that the workers
    /// exit once it is empty (invariant 2).
    fn close_and_seal(&self, deadline: Deadline) {
        self.core.close();
        if !self.core.seal(deadline) {
            log::warn!(
                "queue `{}`: a send still held the queue at the deadline; not sealed",
                self.core.name
            );
        }
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
        // Invariant 4: a worker marked exited only has to return; the others may be running.
        let exited: Vec<bool> = self.core.workers.lock().exited.clone();
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
        self.core.hand_unrun(items)
    }

    fn finish(&mut self, began: Instant, detached: usize) {
        let cancelled = self.core.jobs.is_stopped();
        // Items a worker received just before the cancel came first in the queue.
        // Items handed back by workers so far (the rest, if any, are collected below).
        let late = std::mem::take(&mut self.core.late.lock().items);
        if !late.is_empty() {
            let swept = std::mem::replace(&mut self.unrun, late);
            self.unrun.extend(swept);
        }
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
        // From now on a late hand-back goes straight to `on_unrun` or the stored report;
        // collect what arrived in between.
        let between = {
            // See `hand_back_late`: the flag and the take under one lock.
            let mut late = self.core.late.lock();
            late.finalized = true;
            std::mem::take(&mut late.items)
        };
        if !between.is_empty() {
            let rest = self.core.hand_unrun(between);
            if let Some(report) = self.core.report.lock().as_mut() {
                report.unrun.extend(rest);
            }
        }
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
                    self.close_and_seal(ctx.deadline());
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
        self.close_and_seal(deadline);
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
        // Anything still queued (only if the seal failed) is handed back rather than lost.
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
        self.close_and_seal(Deadline::after(Duration::from_secs(1)));
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
        // Taken whole: the items leave the lock by value.
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
