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
//! the seal (below); it never polls or sleeps (a critical queue's idle worker, which must
//! beat, waits with a timeout instead, after a few microseconds of tries as crossbeam's own
//! `recv` makes before it parks: see "Heartbeats"). A first version used
//! a `Mutex<VecDeque>` with condvars; with one producer and two workers it was several times
//! slower than a plain crossbeam pool (the three threads fought over one lock), so it was
//! replaced (the figure is in RELIABILITY.md, "Speed").
//!
//! A channel alone cannot give four contracts; each gets one small mechanism:
//!
//! 1. *Close with drain.* A channel closes for receivers only when its last `Sender` drops, and
//!    the [`Producer`]s are the user's clones, which may live on after the stop. So no producer
//!    owns a `Sender` outright: each [`Producer`] (each clone) has a *slot* of its own,
//!    `Slot::tx: RwLock<Option<Sender<T>>>` on its own cache line, registered (as a `Weak`)
//!    in `Core::senders`, which also holds the core's `Sender`, the source of every slot's
//!    clone. A send read-locks its producer's slot just for the `closed` check and one
//!    `try_send` (two atomic operations on a line no other producer writes); the stop
//!    ("seal") takes the core's `Sender` and the registry under the `senders` lock, then
//!    write-locks each registered slot in turn and drops its `Sender`, after which the
//!    workers drain what is queued and their `recv` ends by itself. A producer made after
//!    that gets an empty slot. The seal never gives up: a read section is a check and a
//!    non-blocking channel call, and parking_lot's writer holds new readers back, so the seal
//!    waits for the sections in progress only. (A seal bounded by the stop deadline once gave
//!    up under producer pressure, and the idle workers waited forever.) One `RwLock` shared
//!    by every producer, as a first version had, moved its line between the producers'
//!    cores on every send (what that cost, and why the benchmark hardly shows it:
//!    RELIABILITY.md, "Speed").
//! 2. *Blocked senders wake on close.* A send that must wait clones its slot's `Sender` (under
//!    the read lock), leaves the lock, and blocks in a `Select` on its send and on `close_rx`; closing
//!    drops `close_tx`, which wakes every such sender at once with its item handed back. (A
//!    send racing with the close may still be accepted: it is then drained or handed back like
//!    any queued item; see 4.) Before it blocks, the sender retries `try_send` through a
//!    bounded backoff (spin hints, then yields: eleven tries, microseconds, re-checking
//!    `closed`), exactly what crossbeam's own `send` does before it parks; the spins and yields
//!    run outside the lock, each retry takes it anew. Without the backoff, a full queue costs
//!    a `Select` and a park/unpark per item, which made one producer → two workers several
//!    times slower (RELIABILITY.md, "Speed").
//! 3. *Drop modes.* `DropOldest` pops the head with `try_recv` on the queue's own `Receiver`
//!    (from the sender's side) and retries; `DropNewest` drops the incoming item. Both count
//!    the dropped item and give it to `on_drop` after the lock is released. (.NET's
//!    `DropNewest`, evicting the newest *queued* item, cannot be done on a channel; what we call
//!    `DropNewest` is .NET's `DropWrite`.)
//! 4. *Nothing is lost at cancel.* Cancelling sets `cancelled`, then sweeps the sealed channel
//!    until it is disconnected (the blocked senders let go of their clones) or a deadline. A
//!    worker checks `cancelled` after each `recv` and hands back, rather than runs, an item it
//!    got after the flag was set; a blocked sender whose send completed checks it too and, if
//!    set, sweeps the channel itself (its send may have landed after the cancel's sweep, when
//!    no worker exists: a queue that never started). So every accepted item is run, dropped,
//!    or handed back, exactly once, in every path: stopped, dropped, never started, failed
//!    start.
//!
//! Counters: each worker counts what it took and how each item it took ended (completed,
//! failed, cancelled — `Stopped` returned after the jobs' token fired —, panicked,
//! dead-lettered, returned) and its retries, on its own cache line, with plain relaxed stores
//! (single writer); drops and hand-backs of items no worker took are rare shared atomics;
//! `sent` is derived (`depth + taken + dropped + returned before a worker took them`), so a
//! send touches no counter. No clock is read per job, except by the workers of a critical
//! queue (one heartbeat per job taken; see below). See `benches/queue.rs` for the figures.
//!
//! # Jobs, retries and dead letters
//!
//! A handler takes its item by value ([`WorkQueueBuilder::build`]: the item is gone once the
//! job ran) or borrows it ([`WorkQueueBuilder::build_jobs`]: `Fn(&mut T, &JobContext)`). A
//! borrowed item stays on the worker's stack through the job, so the queue, not the handler,
//! decides where it goes next, and no handler can forget to give it back:
//!
//! - *Retry.* A failed attempt (an error other than a cancellation, or a panic) with attempts
//!   left ([`WorkQueueBuilder::retry`]) waits its backoff on the jobs' token, on its worker,
//!   then runs again with the next [`JobContext::attempt`]. The wait is `token.sleep`: a stop
//!   that cancels ends it at once, and so never waits for a backoff.
//! - *Dead letters.* A failed last attempt gives the item by value, with that attempt's
//!   [`Failure`](crate::Failure), to `on_dead_letter`, or keeps it for
//!   [`QueueReport::dead_letters`] (through `late`, as the late hand-backs of invariant 3).
//!   Dead letters are on with a retry or an `on_dead_letter`; otherwise a failed item is
//!   dropped and counted failed / panicked, as with a by-value handler.
//! - *Hand-back.* A job that returns [`Stopped`](crate::Stopped) once the jobs' token fired
//!   (cancelled), and an item whose retry the stop cancelled (during its backoff, or failed
//!   with attempts left after the token fired), is handed back like an unrun item
//!   (`on_unrun` or [`QueueReport::unrun`]): it still has to be done. (Decided so: it is not
//!   failed for good, so it is no dead letter.)
//!
//! Heartbeats: a queue added with [`Service::liveness`] is critical. Its workers beat once per
//! job taken and per retry, and, while idle, every quarter of the window (a timed receive
//! instead of a parked one: waiting for work is not being stuck); a job beats from inside with
//! [`JobContext::heartbeat`]. So a busy or idle queue stays live, and one whose workers are all
//! stuck in jobs that do not beat goes not live after one window. A queue that is not critical
//! reads no clock and parks its idle workers.
//!
//! # Conservation
//!
//! Each accepted item is counted exactly once, by its final fate:
//!
//! `sent = completed + failed + cancelled + panicked + dropped + dead_lettered + returned`
//!
//! at rest (plus `in_flight + depth` while it runs). `failed`, `panicked` and `cancelled`
//! count *items* whose job ended so and whose item is gone (a by-value handler's, or a
//! borrowing handler's without dead letters): never attempts. A failed attempt that is retried
//! counts in `retried` (attempts, outside the sum); an item whose last attempt failed counts
//! once, in `dead_lettered` (or in `failed` / `panicked` when dead letters are off). A
//! borrowing handler's cancelled item is `returned`, never `cancelled`. `returned` sums the
//! items handed back before a worker took them (shared counter, outside `taken`) and those a
//! worker took and handed back (its own counter, inside `taken`): `sent` adds only the former
//! to `taken` (invariant 3). `tests/queue_stress.rs` checks the sum, and each item's fate, by
//! a per-item ledger.
//!
//! # Invariants
//!
//! 1. No threadhost lock is held across user code (handlers, `on_drop`, `on_unrun`, token
//!    callbacks) or a blocking wait: a slot's read lock covers only a check and `try_send` /
//!    `try_recv` calls (the backoff's spins and yields run outside it); evicted items leave
//!    it by value before `on_drop` runs.
//! 2. Once `closed` is set (under no lock, before `close_tx` drops), no send starts; the seal
//!    (always after the close) drops every `Sender` the queue made, the blocked senders'
//!    clones excepted: (a) the core's, under the `senders` lock, after which `register` gives
//!    a new producer an empty, unregistered slot (a slot is filled and registered under that
//!    lock, so it is either in the list the seal takes or empty); (b) each registered slot's,
//!    under that slot's write lock, so every send that used it did so before, and no clone of
//!    it is made after (a slot whose producer is gone dropped its `Sender` with it). Once the
//!    blocked senders' clones are gone, the channel is disconnected: no item can enter, and
//!    idle workers exit.
//! 3. `cancelled` is set (SeqCst) and a SeqCst fence passed before the cancel's sweep; a
//!    blocked sender's completed send is followed by a SeqCst fence and a load of `cancelled`
//!    (Dekker: either that load sees the flag and the sender sweeps, or the cancel's sweep sees
//!    the item). A worker that received an item checks `cancelled` before running it. So each
//!    item is counted once: in a worker's `taken`, in `dropped`, or in `returned`; an item a
//!    worker took ends once, in one of that worker's final counters (completed, failed,
//!    cancelled, panicked, dead-lettered, returned), bumped after the item left the worker.
//!    Items handed back (and dead letters kept) after the stop's report go to `on_unrun`, or
//!    into the report (a new one if it was taken).
//! 5. Invariant 1 holds on the job side too: a retry's backoff, `on_dead_letter` and a
//!    hand-back's `on_unrun` run on the worker with no threadhost lock held; a dead letter or
//!    an item handed back goes into `late` by value, under the lock only for the push.
//! 4. `Workers::running` counts spawned workers that have not exited; it changes under
//!    `workers` and is announced on `workers_exited` (`notify_all` under the lock; the stop
//!    hook re-checks it under the lock in a deadline-bounded loop). A worker is joined only
//!    after it marked itself exited, so a join never outlasts a deadline; the others are
//!    detached and counted.
//!
//! # Lock order
//!
//! No two of `senders`, a slot's `tx`, `close_tx`, `workers`, `late`, `report` are ever held
//! together (the seal releases `senders` before it locks the slots).

mod error;
mod job;
mod pool;

use std::fmt;
use std::sync::atomic::fence;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use error::{SendError, SendTimeoutError, TrySendError};
pub use job::{JobContext, JobTask};

use crate::deadline::Deadline;
use crate::error::{Error, ServiceResult};
use crate::failure::Failure;
use crate::service::{Context, HostedService, Service};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, Ordering, RwLock};
use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, TrySendError as ChannelError};
use pool::WorkerCounters;

/// The handler shared by the workers of a queue: it takes each item by value
/// ([`WorkQueueBuilder::build`]) or borrows it ([`WorkQueueBuilder::build_jobs`]: the queue
/// keeps the item, to retry it, dead-letter it or hand it back).
pub(crate) enum Handler<T> {
    Owned(Arc<OwnedFn<T>>),
    Borrowed(Arc<BorrowedFn<T>>),
}

/// A handler that takes its item by value.
pub(crate) type OwnedFn<T> = dyn Fn(T, &StopToken) -> ServiceResult + Send + Sync + 'static;
/// A handler that borrows its item, with the job's context.
pub(crate) type BorrowedFn<T> =
    dyn Fn(&mut T, &JobContext<'_>) -> ServiceResult + Send + Sync + 'static;

impl<T> Clone for Handler<T> {
    fn clone(&self) -> Handler<T> {
        match self {
            Handler::Owned(f) => Handler::Owned(Arc::clone(f)),
            Handler::Borrowed(f) => Handler::Borrowed(Arc::clone(f)),
        }
    }
}

type OnDrop<T> = Box<dyn Fn(T) + Send + Sync + 'static>;
type OnUnrun<T> = Box<dyn Fn(Vec<T>) + Send + Sync + 'static>;
pub(crate) type OnDeadLetter<T> = Box<dyn Fn(T, Failure) + Send + Sync + 'static>;

/// The item of a [`TaskQueue`]: a boxed closure that receives the jobs' stop token, as .NET's
/// `Func<CancellationToken, ValueTask>` work items.
///
/// The token fires when the queue's stop gives up draining (the stop deadline is near) or
/// cancels at once ([`WorkQueueBuilder::drain_on_stop`]). Returning an error counts the job
/// as failed; returning [`Stopped`](crate::Stopped) once the token fired (what
/// `token.sleep(d)?` does after a cancellation) counts it as
/// [cancelled](QueueMetrics::cancelled), logged as a cancellation, not as an error.
pub type Task = Box<dyn FnOnce(&StopToken) -> ServiceResult + Send + 'static>;

/// A [`WorkQueue`] of boxed closures ([`Task`]s): the .NET documentation samples'
/// `IBackgroundTaskQueue` with its `QueuedHostedService`. Build it with [`WorkQueueBuilder::build_tasks`] and send with
/// [`Producer::send_task`].
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, TaskQueue};
///
/// let (queue, producer) = TaskQueue::builder("jobs").workers(2).build_tasks()?;
/// let host = HostBuilder::new().add_service(queue).build()?; // or `queue.into_service()`
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
/// | `Reject` | never waits: every send form hands the item back at once (`TrySendError::Full`, `SendTimeoutError::Full`, `SendError`) | not sent |
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
/// exact, and `sent = completed + failed + cancelled + panicked + dropped + dead_lettered +
/// returned` ([`settled`](QueueMetrics::settled)): each item counted once, by its final fate
/// (`retried` counts attempts, outside the sum).
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
    /// Items whose job returned `Ok` (on its last run).
    pub completed: u64,
    /// Items whose job returned an error, other than the cancelled ones, and that are gone
    /// (no dead letters): counted once per item, not per attempt.
    pub failed: u64,
    /// Jobs cancelled by the stop: they returned [`Stopped`](crate::Stopped) (e.g. from
    /// `token.sleep(d)?`) after the jobs' token fired. A job that returns another error, or
    /// `Stopped` while the token has not fired, is [`failed`](QueueMetrics::failed); one that
    /// returns `Ok` after the token fired is [`completed`](QueueMetrics::completed).
    pub cancelled: u64,
    /// Items whose job panicked, and that are gone (no dead letters).
    pub panicked: u64,
    /// Items dropped by `DropOldest` / `DropNewest`.
    pub dropped: u64,
    /// Items handed back unrun by a stop (or by dropping a queue that never stopped), and
    /// items of a borrowing handler ([`WorkQueueBuilder::build_jobs`]) whose job the stop
    /// cancelled, or whose retry the stop cancelled.
    pub returned: u64,
    /// Items whose last attempt failed, given to the dead letters
    /// ([`WorkQueueBuilder::on_dead_letter`] or [`QueueReport::dead_letters`]).
    pub dead_lettered: u64,
    /// Retries: failed attempts that were run again ([`WorkQueueBuilder::retry`]). Counts
    /// attempts, not items: not part of [`settled`](QueueMetrics::settled).
    pub retried: u64,
    /// The number of workers.
    pub workers: usize,
    /// `true` once the queue stopped accepting items.
    pub closed: bool,
}

impl QueueMetrics {
    /// `completed + failed + cancelled + panicked + dropped + dead_lettered + returned`: the
    /// items whose fate is settled.
    #[must_use]
    pub fn settled(&self) -> u64 {
        self.completed
            + self.failed
            + self.cancelled
            + self.panicked
            + self.dropped
            + self.dead_lettered
            + self.returned
    }
}

impl fmt::Display for QueueMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, queued {}/{}, in flight {}, completed {}, failed {}, cancelled {}, panicked {}, dropped {}, dead-lettered {}, returned {}, retried {}",
            self.sent,
            self.depth,
            self.capacity,
            self.in_flight,
            self.completed,
            self.failed,
            self.cancelled,
            self.panicked,
            self.dropped,
            self.dead_lettered,
            self.returned,
            self.retried
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
    /// The dead letters, by value, with the failure of their last attempt, unless an
    /// [`on_dead_letter`](WorkQueueBuilder::on_dead_letter) callback took them (then empty).
    pub dead_letters: Vec<(T, Failure)>,
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
            .field("dead_letters", &self.dead_letters.len())
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

/// Items handed back by workers, and dead letters kept for the report, until the stop's
/// report is made (`finalized`).
struct Late<T> {
    items: Vec<T>,
    dead: Vec<(T, Failure)>,
    finalized: bool,
}

/// A flag on its own cache line: read by every worker for every item, written once.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Flag(AtomicBool);

/// One [`Producer`]'s own clone of the channel's `Sender`, `None` once sealed (invariant 2),
/// on its own cache line: a send read-locks its producer's slot only, so producers on
/// different threads never write a line they share (the channel's own excepted).
#[repr(align(128))]
struct Slot<T> {
    tx: RwLock<Option<Sender<T>>>,
}

/// Under `Core::senders`: the core's `Sender` and the registry of the producers' slots.
struct Senders<T> {
    /// Cloned into each new producer's slot; `None` once sealed.
    tx: Option<Sender<T>>,
    /// Every live producer's slot (and some dead ones, pruned as the list grows).
    slots: Vec<Weak<Slot<T>>>,
    /// `slots` is pruned of dead entries when it reaches this length.
    prune_at: usize,
}

/// What producers, workers, handles and the service share.
pub(crate) struct Core<T> {
    pub(crate) name: Arc<str>,
    capacity: usize,
    mode: FullMode,
    /// The core's own `Sender` (the source of each producer's clone) and the producers'
    /// slots, which the seal walks (invariant 2).
    senders: Mutex<Senders<T>>,
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
    /// The retry settings ([`WorkQueueBuilder::retry`]).
    pub(crate) retry: job::Retry,
    /// Dead letters are on: a retry, or `on_dead_letter`.
    pub(crate) dead_letters: bool,
    on_dead_letter: Option<OnDeadLetter<T>>,
}

/// How a send failed, before it is shaped into the caller's error type.
enum Refused<T> {
    /// Full and not waiting: `try_send`, or any send in Reject mode.
    Full(T),
    /// Full until the deadline (Block mode).
    Timeout(T),
    Closed(T),
}

impl<T> Core<T> {
    /// A new producer's slot, registered for the seal (invariant 2): a clone of the core's
    /// `Sender`, or `None` once sealed (then not registered: the seal already ran).
    fn register(&self) -> Arc<Slot<T>> {
        let mut senders = self.senders.lock();
        let slot = Arc::new(Slot {
            tx: RwLock::new(senders.tx.clone()),
        });
        if senders.tx.is_some() {
            if senders.slots.len() >= senders.prune_at {
                // Amortised: the list at most doubles between two prunings.
                senders.slots.retain(|slot| slot.strong_count() > 0);
                senders.prune_at = (2 * senders.slots.len()).max(PRUNE_AT);
            }
            senders.slots.push(Arc::downgrade(&slot));
        }
        slot
    }
}

impl<T: Send + 'static> Core<T> {
    /// Sends `item`, waiting for room until `deadline` in Block mode; the other modes never
    /// wait (Reject refuses with `Full`, the drop modes make room). The fast path, one
    /// [`attempt`](Self::attempt), is inlined into the caller (always: left to itself the
    /// compiler kept `Producer::send` a call, 163 instructions a send against 143 inlined,
    /// crossbeam's own `send` 124; callgrind, `BENCH_PROFILE=send`); the rest is out of line.
    #[inline(always)]
    fn send(&self, slot: &Slot<T>, item: T, deadline: Deadline) -> Result<(), Refused<T>> {
        match self.attempt(slot, item) {
            Ok(()) => Ok(()),
            Err(refused) => self.after_attempt(slot, refused, Some(deadline)),
        }
    }

    /// Sends `item` if there is room now (a drop mode makes room); never waits.
    #[inline]
    fn try_send(&self, slot: &Slot<T>, item: T) -> Result<(), Refused<T>> {
        match self.attempt(slot, item) {
            Ok(()) => Ok(()),
            Err(refused) => self.after_attempt(slot, refused, None),
        }
    }

    /// A first attempt refused `item`: on a full queue, a drop mode makes room, Block mode
    /// waits until `deadline` (`None`: `try_send`, no wait), Reject refuses.
    #[cold]
    #[inline(never)]
    fn after_attempt(
        &self,
        slot: &Slot<T>,
        refused: Refused<T>,
        deadline: Option<Deadline>,
    ) -> Result<(), Refused<T>> {
        let Refused::Full(item) = refused else {
            return Err(refused);
        };
        match (self.mode, deadline) {
            (FullMode::DropOldest | FullMode::DropNewest, _) => self.make_room(slot, item),
            (FullMode::Block, Some(deadline)) => self.send_waiting(slot, item, deadline),
            (FullMode::Block | FullMode::Reject, _) => Err(Refused::Full(item)),
        }
    }

    /// One attempt under the producer's slot read lock (invariant 1: a check and one
    /// non-blocking channel call): `Full(item)` if the queue is full, whatever the mode.
    #[inline(always)]
    fn attempt(&self, slot: &Slot<T>, item: T) -> Result<(), Refused<T>> {
        // The seal write-locks every slot (invariant 2): no send can use a `Sender` after it.
        let guard = slot.tx.read();
        match guard.as_ref() {
            Some(tx) if !self.closed.load(Ordering::Acquire) => match tx.try_send(item) {
                Ok(()) => Ok(()),
                Err(ChannelError::Full(item)) => Err(Refused::Full(item)),
                // The core holds a receiver: cannot happen, but never lose the item.
                Err(ChannelError::Disconnected(item)) => Err(Refused::Closed(item)),
            },
            _ => Err(Refused::Closed(item)),
        }
    }

    /// A drop mode on a full queue: evicts the head and retries (`DropOldest`) or drops
    /// `item` (`DropNewest`) under the slot's read lock; the evicted items go to `on_drop`
    /// after the lock is released (invariant 1).
    fn make_room(&self, slot: &Slot<T>, item: T) -> Result<(), Refused<T>> {
        let mut evicted: Option<T> = None;
        let mut evicted_more: Vec<T> = Vec::new();
        let result = self.evict(slot, item, &mut evicted, &mut evicted_more);
        if let Some(old) = evicted {
            self.hand_dropped(old);
        }
        for old in evicted_more {
            self.hand_dropped(old);
        }
        result
    }

    /// Under the slot's read lock: sends `item`, evicting the head first (`DropOldest`) or
    /// dropping `item` (`DropNewest`) while the queue is full; the evicted items are counted
    /// and kept for `make_room` to hand out.
    fn evict(
        &self,
        slot: &Slot<T>,
        item: T,
        evicted: &mut Option<T>,
        evicted_more: &mut Vec<T>,
    ) -> Result<(), Refused<T>> {
        let guard = slot.tx.read();
        let tx = match guard.as_ref() {
            Some(tx) if !self.closed.load(Ordering::Acquire) => tx,
            _ => return Err(Refused::Closed(item)),
        };
        let mut item = item;
        loop {
            match tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(ChannelError::Full(back)) => item = back,
                Err(ChannelError::Disconnected(back)) => return Err(Refused::Closed(back)),
            }
            let old = match self.mode {
                FullMode::DropNewest => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    *evicted = Some(item);
                    return Ok(());
                }
                FullMode::DropOldest => match self.rx.try_recv() {
                    Ok(old) => old,
                    Err(_) => continue,
                },
                FullMode::Block | FullMode::Reject => return Err(Refused::Full(item)),
            };
            self.dropped.fetch_add(1, Ordering::Relaxed);
            match evicted {
                None => *evicted = Some(old),
                Some(_) => evicted_more.push(old),
            }
        }
    }

    /// Block mode, full queue: a short, bounded backoff, as crossbeam's own `send` does before
    /// it parks (spin hints, then yields, re-trying), then a blocking wait. A worker usually
    /// frees a slot within microseconds; without the backoff, a full queue costs a `Select` and
    /// a park/unpark per item. The spins and yields run outside the slot's lock, so that a
    /// seal waits for one check and one `try_send` at most (invariant 2).
    fn send_waiting(&self, slot: &Slot<T>, item: T, deadline: Deadline) -> Result<(), Refused<T>> {
        let mut item = item;
        for step in 0..=BACKOFF_STEPS {
            snooze(step);
            let guard = slot.tx.read();
            let tx = match guard.as_ref() {
                Some(tx) if !self.closed.load(Ordering::Acquire) => tx,
                _ => return Err(Refused::Closed(item)),
            };
            match tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(ChannelError::Full(back)) => item = back,
                Err(ChannelError::Disconnected(back)) => return Err(Refused::Closed(back)),
            }
            if step == BACKOFF_STEPS {
                // Cloned under the lock: once sealed, no new clone can appear (invariant 2).
                let tx = tx.clone();
                drop(guard);
                return self.send_blocking(&tx, item, deadline);
            }
        }
        unreachable!("the last backoff step waits")
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
                .map_err(|e| Refused::Closed(e.into_inner()))?;
            // Invariant 3: this send may have landed after a cancel's sweep (woken by the
            // close, it found the room the sweep made): then nobody else may ever receive it.
            self.reclaim_if_cancelled();
            Ok(())
        } else {
            let _ = oper.recv(&self.close_rx);
            Err(Refused::Closed(item))
        }
    }

    /// Called by a sender whose blocking send completed: if the queue was cancelled, hands
    /// back what is queued now (its item among them, unless the sweep or a worker took it).
    fn reclaim_if_cancelled(&self) {
        // Invariant 3, with `cancel`: the flag store, a fence, the sweep there; the send, a
        // fence, this load here. Either this load sees the flag, or that sweep sees the item.
        fence(Ordering::SeqCst);
        if !self.is_cancelled() {
            return;
        }
        let mut items = Vec::new();
        while let Ok(item) = self.rx.try_recv() {
            items.push(item);
        }
        if !items.is_empty() {
            self.hand_back_late(items);
        }
    }

    fn hand_dropped(&self, item: T) {
        let what = format_args!("queue `{}`: the on_drop callback", self.name);
        crate::panic::log_panic(what, || match &self.on_drop {
            Some(on_drop) => on_drop(item),
            None => drop(item),
        });
    }

    /// `true` once the queue is cancelled: a worker hands back what it receives then.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.0.load(Ordering::Relaxed)
    }

    /// Items received after the cancel (by a worker, or by a sender whose send landed after
    /// the sweep): hand them back (invariant 3).
    pub(crate) fn hand_back_late(&self, items: Vec<T>) {
        self.returned
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        self.park_late(items);
    }

    /// Hands back items counted already (by the caller: a worker counts the items it took
    /// and hands back in its own `returned`), through `late` (invariant 3).
    pub(crate) fn park_late(&self, items: Vec<T>) {
        // `finalized` and the pushed items change together under `late`, so the stop's final
        // collection (which sets `finalized` under it) either takes these items or we see the
        // flag and hand them back ourselves: never both, never neither.
        let mut late = self.late.lock();
        if !late.finalized {
            late.items.extend(items);
            return;
        }
        drop(late);
        // The stop has already reported (this thread was preempted past the stop deadline):
        // hand the items back on their own, outside every lock (invariant 1).
        crate::logging::warn!(queue = &*self.name;
            "queue `{}`: {} item(s) handed back after the stop's report",
            self.name,
            items.len()
        );
        let rest = self.hand_unrun(items);
        if !rest.is_empty() {
            self.report_late(rest, Vec::new());
        }
    }

    /// Gives a dead letter (counted by the caller) to `on_dead_letter` (outside every lock),
    /// or keeps it for the report: through `late` until the report is made, then in it.
    pub(crate) fn hand_dead(&self, item: T, failure: Failure) {
        if let Some(on_dead_letter) = &self.on_dead_letter {
            let what = format_args!("queue `{}`: the on_dead_letter callback", self.name);
            crate::panic::log_panic(what, || on_dead_letter(item, failure));
            return;
        }
        // As `park_late`: the flag and the push under one lock.
        let mut late = self.late.lock();
        if !late.finalized {
            late.dead.push((item, failure));
            return;
        }
        drop(late);
        self.report_late(Vec::new(), vec![(item, failure)]);
    }

    /// Adds items handed back after the stop's report to that report, or, if it was already
    /// taken, to a new one (so that [`QueueHandle::take_report`] still returns them).
    fn report_late(&self, rest: Vec<T>, dead: Vec<(T, Failure)>) {
        let metrics = self.metrics();
        let cancelled = self.jobs.is_stopped();
        let mut report = self.report.lock();
        match report.as_mut() {
            Some(report) => {
                report.unrun.extend(rest);
                report.dead_letters.extend(dead);
            }
            None => {
                *report = Some(QueueReport {
                    metrics,
                    unrun: rest,
                    dead_letters: dead,
                    cancelled,
                    detached_workers: 0,
                    elapsed: Duration::ZERO,
                });
            }
        }
    }

    /// Gives unrun items to `on_unrun`; without it, returns them.
    fn hand_unrun(&self, items: Vec<T>) -> Vec<T> {
        let Some(on_unrun) = &self.on_unrun else {
            return items;
        };
        let what = format_args!("queue `{}`: the on_unrun callback", self.name);
        crate::panic::log_panic(what, || on_unrun(items));
        Vec::new()
    }

    /// Stops accepting items; wakes blocked senders (they get `Closed(item)`).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Invariant 2: `closed` first, then the wake-up of the blocked senders.
        let close_tx = self.close_tx.lock().take();
        drop(close_tx);
    }

    /// Drops the core's `Sender` and every producer's (invariant 2): the workers then drain
    /// what is queued and exit once the blocked senders' clones are gone too (woken by
    /// `close`, they return at once). Called after `close`. Never fails: each slot's write
    /// lock waits out the read sections in progress on that slot, each a check and one
    /// non-blocking channel call (a send seeing `closed` leaves at once; new readers queue
    /// behind the writer), so it is held up only while such a sender is descheduled. Giving up
    /// instead (as a deadline-bounded seal once did) would leave the channel open: idle
    /// workers would wait for items forever.
    fn seal(&self) {
        let (tx, slots) = {
            let mut senders = self.senders.lock();
            (senders.tx.take(), std::mem::take(&mut senders.slots))
        };
        drop(tx);
        // From here on a new producer's slot is `None`. Each registered slot in turn (the
        // `senders` lock released: no two locks held together).
        for slot in slots.iter().filter_map(Weak::upgrade) {
            let tx = slot.tx.write().take();
            drop(tx);
        }
    }

    /// Marks the queue cancelled and takes every queued item (invariant 3), waiting until
    /// `until` for the senders still holding a clone of the `Sender` (woken by the close) to
    /// let go of it, so that an item they got in is taken too. Called after the seal. The
    /// caller fires the jobs' token and hands the items back, outside every lock.
    fn cancel(&self, until: Deadline) -> Vec<T> {
        self.cancelled.0.store(true, Ordering::SeqCst);
        // Invariant 3: pairs with the fence of `reclaim_if_cancelled`.
        fence(Ordering::SeqCst);
        let mut items = Vec::new();
        let mut timed = pool::TimedRecv::new(&self.rx);
        loop {
            match self.rx.try_recv() {
                Ok(item) => items.push(item),
                Err(TryRecvError::Disconnected) => break,
                // Empty, but a blocked sender still holds a clone: its send may land.
                Err(TryRecvError::Empty) => {
                    // A timed receive through a `Select` (`pool::TimedRecv`), so that the
                    // workers' `recv` stays crossbeam's receive path's only caller.
                    let next = timed.until(until.instant()).ok();
                    match next {
                        Some(item) => items.push(item),
                        None => break,
                    }
                }
            }
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
        let mut returned_taken = 0;
        for c in self.counters.iter() {
            // `finished` before `taken`: a worker bumps `taken` before it runs the job.
            m.completed += c.completed.load(Ordering::Relaxed);
            m.failed += c.failed.load(Ordering::Relaxed);
            m.cancelled += c.cancelled.load(Ordering::Relaxed);
            m.panicked += c.panicked.load(Ordering::Relaxed);
            m.dead_lettered += c.dead_lettered.load(Ordering::Relaxed);
            returned_taken += c.returned.load(Ordering::Relaxed);
            m.retried += c.retried.load(Ordering::Relaxed);
            taken += c.taken.load(Ordering::Relaxed);
        }
        let finished =
            m.completed + m.failed + m.cancelled + m.panicked + m.dead_lettered + returned_taken;
        m.in_flight = taken.saturating_sub(finished);
        // `returned` (shared) counts the items handed back before a worker took them; the
        // workers' own count the items they took and handed back: those are in `taken`.
        m.sent = m.depth as u64 + taken + m.dropped + m.returned;
        m.returned += returned_taken;
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
    retry: job::Retry,
    on_dead_letter: Option<OnDeadLetter<T>>,
}

/// The largest capacity accepted: 2^20 items. crossbeam's bounded channel allocates every
/// slot up front (a stamp word and room for one item: 16 bytes for a pointer-sized item, 16 MiB
/// at this maximum), and an allocation failure aborts the process, past every panic boundary.
/// A queue that must hold more than a million items in memory is better served by a queue on
/// disk; see also [`MAX_CHANNEL_BYTES`].
const MAX_CAPACITY: usize = 1 << 20;

/// The largest memory the channel's slots may take, in bytes (1 GiB): with items bigger than
/// about 1 KiB, this bounds the capacity below [`MAX_CAPACITY`].
const MAX_CHANNEL_BYTES: usize = 1 << 30;

/// The largest worker count accepted: 1024. Each worker is an OS thread (2 MiB of reserved
/// stack by default: 2 GiB of address space at this maximum) and a 128-byte counter line; far
/// more threads than cores only adds contention, and the OS refuses threads long before
/// `usize::MAX` (the counters alone would not fit in memory).
const MAX_WORKERS: usize = 1024;

/// Backoff of a sender on a full queue, and of a critical queue's idle worker, before it
/// blocks: `SPIN_STEPS` rounds of 1, 2, 4, … spin hints, then yields, `BACKOFF_STEPS` rounds
/// in all (crossbeam's `Backoff`).
const SPIN_STEPS: u32 = 6;
pub(crate) const BACKOFF_STEPS: u32 = 10;

/// Step `step` of that backoff: `1 << step` spin hints, or, from `SPIN_STEPS` on, a yield.
pub(crate) fn snooze(step: u32) {
    if step < SPIN_STEPS {
        for _ in 0..1u32 << step {
            std::hint::spin_loop();
        }
    } else {
        std::thread::yield_now();
    }
}

/// The producers' registry is pruned of dropped producers' slots when it grows to this many
/// entries (then to twice the live ones).
const PRUNE_AT: usize = 16;

/// The cap of the default cancel grace (a fifth of the stop budget, at most this).
const MAX_DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// How long dropping a queue that never stopped waits for the senders woken by its close to
/// let go of the channel (they return at once: this bounds a descheduled one).
const DROP_WAIT: Duration = Duration::from_secs(1);

/// `deadline` moved earlier by `by(budget)` (`budget`: the time left until it), saturating:
/// a shift at least as long as the budget (up to `Duration::MAX`) gives a deadline that has
/// already passed, never an overflow or a later one. [`Deadline::NEVER`] stays never.
fn earlier_by(deadline: Deadline, by: impl FnOnce(Duration) -> Duration) -> Deadline {
    let (Some(at), Some(budget)) = (deadline.instant(), deadline.remaining()) else {
        return Deadline::NEVER;
    };
    let shift = by(budget);
    if shift >= budget {
        return Deadline::at(at.min(Instant::now()));
    }
    Deadline::at(at.checked_sub(shift).unwrap_or(at))
}

/// Time kept between the end of the workers' join and the stop deadline (at most a tenth of
/// the stop budget), so that the stop hook's reply reaches the host before the host's own
/// deadline check.
const REPLY_MARGIN: Duration = Duration::from_millis(20);

impl<T: Send + 'static> WorkQueueBuilder<T> {
    /// The number of items the queue holds: from 1 to [`WorkQueue::MAX_CAPACITY`] (2^20),
    /// and at most 1 GiB of slots (a slot is a word plus the item; checked by
    /// [`build`](Self::build)). The default is 100.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The number of worker threads: from 1 to [`WorkQueue::MAX_WORKERS`] (1024; checked by
    /// [`build`](Self::build)). The default is 1: items run one at a time, in order, as .NET's
    /// `QueuedHostedService`.
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
    /// (see [`QueueReport::unrun`]), so the program can persist them; called only if there are
    /// such items, outside the queue's lock: once on the queue's service thread (or the thread
    /// dropping a queue that never stopped), within the stop (keep it short: it counts against
    /// the stop deadline), and again, rarely, for an item handed back after the stop's report
    /// (on the worker or the sender that took it back after the cancel). A panic in it is
    /// caught and logged. Without it, the items are in [`QueueReport::unrun`].
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
    /// their workers are detached. The default is a fifth of the stop budget, at most 1 s. A
    /// grace at least as long as the stop budget (up to `Duration::MAX`) cancels at once, as
    /// [`drain_on_stop(false)`](Self::drain_on_stop) does; without a stop deadline the drain
    /// has no end to be early for, and runs until the queue is empty.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = Some(grace);
        self
    }

    /// The stack size of each worker thread, in bytes: from 64 KiB to 1 GiB (checked by
    /// [`build`](Self::build)), the host's rule for its service threads. The default is
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
    /// [`Error::InvalidOption`] naming the option, its value and the rule: a capacity or a
    /// worker count of 0, a capacity above [`WorkQueue::MAX_CAPACITY`] or whose slots would
    /// take more than 1 GiB, more than [`WorkQueue::MAX_WORKERS`] workers, an empty name, one
    /// over 256 bytes or with a control character, a stack outside 64 KiB..=1 GiB. Never a
    /// panic.
    pub fn build<F>(self, handler: F) -> Result<(WorkQueue<T>, Producer<T>), Error>
    where
        F: Fn(T, &StopToken) -> ServiceResult + Send + Sync + 'static,
    {
        self.build_with(Handler::Owned(Arc::new(handler)))
    }

    /// [`build`](Self::build) and [`build_jobs`](Self::build_jobs).
    fn build_with(self, handler: Handler<T>) -> Result<(WorkQueue<T>, Producer<T>), Error> {
        let name = &self.name;
        crate::thread::check_name(name).map_err(|reason| {
            Error::invalid_option("name of a queue", name.escape_debug(), reason)
        })?;
        if self.capacity == 0 {
            return Err(Error::invalid_option(
                format!("capacity of queue `{name}`"),
                0,
                "a queue must hold at least one item",
            ));
        }
        if self.capacity > MAX_CAPACITY {
            return Err(Error::invalid_option(
                format!("capacity of queue `{name}`"),
                self.capacity,
                format!(
                    "a queue holds at most {MAX_CAPACITY} items (its slots are allocated up front)"
                ),
            ));
        }
        // crossbeam's slot: a stamp word and the item (the same layout as this pair).
        let slot = std::mem::size_of::<(usize, T)>();
        if self.capacity.saturating_mul(slot) > MAX_CHANNEL_BYTES {
            return Err(Error::invalid_option(
                format!("capacity of queue `{name}`"),
                self.capacity,
                format!(
                    "{} slots of {slot} bytes would take more than {MAX_CHANNEL_BYTES} bytes \
                     (allocated up front); at most {} items of this size",
                    self.capacity,
                    MAX_CHANNEL_BYTES / slot
                ),
            ));
        }
        if self.workers == 0 {
            return Err(Error::invalid_option(
                format!("workers of queue `{name}`"),
                0,
                "a queue needs at least one worker",
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(Error::invalid_option(
                format!("workers of queue `{name}`"),
                self.workers,
                format!("a queue has at most {MAX_WORKERS} worker threads"),
            ));
        }
        if let Some(bytes) = self.stack_size {
            // The host's rule for every thread threadhost spawns.
            crate::thread::check_stack_size(bytes).map_err(|reason| {
                Error::invalid_option(format!("stack_size of queue `{name}`"), bytes, reason)
            })?;
        }
        self.check_jobs(matches!(handler, Handler::Borrowed(_)))?;
        let dead_letters = job::dead_letters_on(&self.retry, self.on_dead_letter.as_ref());
        let (tx, rx) = crossbeam_channel::bounded(self.capacity);
        let (close_tx, close_rx) = crossbeam_channel::bounded(0);
        let core = Arc::new(Core {
            name: Arc::from(self.name.as_str()),
            capacity: self.capacity,
            mode: self.mode,
            senders: Mutex::new(Senders {
                tx: Some(tx),
                slots: Vec::new(),
                prune_at: PRUNE_AT,
            }),
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
                dead: Vec::new(),
                finalized: false,
            }),
            on_unrun: self.on_unrun,
            report: Mutex::new(None),
            retry: self.retry,
            dead_letters,
            on_dead_letter: self.on_dead_letter,
        });
        let queue = WorkQueue {
            core: Arc::clone(&core),
            handler,
            threads: Vec::new(),
            stack_size: self.stack_size,
            drain_on_stop: self.drain_on_stop,
            cancel_grace: self.cancel_grace,
            unrun: Vec::new(),
            finished: false,
        };
        Ok((queue, Producer::new(core)))
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
            .field("retry", &self.retry)
            .field("on_dead_letter", &self.on_dead_letter.is_some())
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
    /// The largest [`capacity`](WorkQueueBuilder::capacity): 2^20 items. The channel's slots
    /// are allocated up front (16 bytes each for a pointer-sized item: 16 MiB at this
    /// maximum), and the slots of one queue may take at most 1 GiB, which bounds the capacity
    /// lower for items bigger than about 1 KiB.
    pub const MAX_CAPACITY: usize = MAX_CAPACITY;

    /// The largest number of [`workers`](WorkQueueBuilder::workers): 1024 threads.
    pub const MAX_WORKERS: usize = MAX_WORKERS;

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
            retry: job::Retry::default(),
            on_dead_letter: None,
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
        Producer::new(Arc::clone(&self.core))
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
    /// as for any service). Without such a setting, `add_service(queue)` does the same
    /// (`Service: From<WorkQueue<T>>`).
    ///
    /// The service reports the queue's [`QueueMetrics`] in every
    /// [snapshot](crate::HostHandle::snapshot) (its [`metrics`](Service::metrics) callback,
    /// which a later `.metrics(...)` replaces): `sent`, `depth`, `capacity`, `in_flight`,
    /// `completed`, `failed`, `cancelled`, `panicked`, `dropped`, `returned`,
    /// `dead_lettered`, `retried`, `workers`.
    pub fn into_service(self) -> Service {
        let name = Arc::clone(&self.core.name);
        let core = Arc::clone(&self.core);
        Service::hosted(&name, self).metrics(move || {
            let m = core.metrics();
            let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            vec![
                ("sent", m.sent),
                ("depth", wide(m.depth)),
                ("capacity", wide(m.capacity)),
                ("in_flight", m.in_flight),
                ("completed", m.completed),
                ("failed", m.failed),
                ("cancelled", m.cancelled),
                ("panicked", m.panicked),
                ("dropped", m.dropped),
                ("returned", m.returned),
                ("dead_lettered", m.dead_lettered),
                ("retried", m.retried),
                ("workers", wide(m.workers)),
            ]
        })
    }

    /// Refuses new items, wakes blocked senders, and seals the channel so that the workers
    /// exit once it is empty (invariant 2).
    fn close_and_seal(&self) {
        self.core.close();
        self.core.seal();
    }

    /// Cancels what is queued (waiting until `until` for the senders woken by the close),
    /// fires the jobs' token, and keeps the items to hand back.
    fn cancel(&mut self, reason: StopReason, until: Deadline) {
        let items = self.core.cancel(until);
        if !items.is_empty() {
            crate::logging::info!(queue = &*self.core.name;
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
                crate::logging::warn!(queue = &*self.core.name;
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
        let (late, dead_letters) = {
            let mut late = self.core.late.lock();
            (
                std::mem::take(&mut late.items),
                std::mem::take(&mut late.dead),
            )
        };
        if !late.is_empty() {
            let swept = std::mem::replace(&mut self.unrun, late);
            self.unrun.extend(swept);
        }
        let unrun = self.hand_back();
        let metrics = self.core.metrics();
        crate::logging::info!(queue = &*self.core.name;
            "queue `{}` stopped in {:?}: {metrics}",
            self.core.name,
            began.elapsed()
        );
        self.core.store_report(QueueReport {
            metrics,
            unrun,
            dead_letters,
            cancelled,
            detached_workers: detached,
            elapsed: began.elapsed(),
        });
        // From now on a late hand-back goes straight to `on_unrun` or the stored report;
        // collect what arrived in between.
        let (between, dead_between) = {
            // See `park_late`: the flag and the take under one lock.
            let mut late = self.core.late.lock();
            late.finalized = true;
            (
                std::mem::take(&mut late.items),
                std::mem::take(&mut late.dead),
            )
        };
        if !between.is_empty() || !dead_between.is_empty() {
            let rest = self.core.hand_unrun(between);
            if let Some(report) = self.core.report.lock().as_mut() {
                report.unrun.extend(rest);
                report.dead_letters.extend(dead_between);
            }
        }
    }
}

/// [`WorkQueue::into_service`], so that a queue (or a [`TaskQueue`]) can be given to
/// [`HostBuilder::add_service`](crate::HostBuilder::add_service) as is.
impl<T: Send + 'static> From<WorkQueue<T>> for Service {
    fn from(queue: WorkQueue<T>) -> Service {
        queue.into_service()
    }
}

impl<T: Send + 'static> HostedService for WorkQueue<T> {
    /// Spawns the workers.
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        if self.finished {
            // Its stop sealed the channel and closed every producer: a restart (its group's,
            // or `restart_child`) cannot reopen them.
            return Err(format!(
                "queue `{}` was stopped and cannot start again: its producers are closed; \
                 add a new queue instead (a group restart cannot restart a work queue)",
                self.core.name
            )
            .into());
        }
        let env = Arc::new(pool::WorkerEnv {
            heartbeat: Arc::clone(&ctx.heartbeat),
            services: Arc::clone(&ctx.services),
            liveness: ctx.liveness,
        });
        for i in 0..self.core.counters.len() {
            match pool::spawn_worker(&self.core, &self.handler, &env, i, self.stack_size) {
                Ok(handle) => self.threads.push(Some(handle)),
                Err(source) => {
                    // The host will not stop a service whose start failed: release the
                    // workers already running and hand back what is queued now.
                    self.finished = true;
                    self.close_and_seal();
                    self.cancel(StopReason::Requested, ctx.deadline());
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
        self.close_and_seal();
        // Computed once from the stop deadline: the end of the workers' join leaves the host a
        // margin for the reply (a tenth of the budget, at most `REPLY_MARGIN`).
        let join_by = earlier_by(deadline, |budget| REPLY_MARGIN.min(budget / 10));
        if self.drain_on_stop {
            let depth = self.core.len();
            crate::logging::info!(queue = &*self.core.name;
                "queue `{}` stopping: draining {depth} queued item(s)",
                self.core.name
            );
            // A grace longer than the budget (up to `Duration::MAX`) cancels at once.
            let grace = self.cancel_grace;
            let drain_until = earlier_by(deadline, |budget| {
                grace.unwrap_or_else(|| (budget / 5).min(MAX_DEFAULT_GRACE))
            });
            if !self.core.await_workers(drain_until) {
                crate::logging::info!(queue = &*self.core.name;
                    "queue `{}`: the drain ran out of time; cancelling the running jobs",
                    self.core.name
                );
                self.cancel(StopReason::Deadline, join_by);
            }
        } else {
            crate::logging::info!(
                queue = &*self.core.name;
                "queue `{}` stopping: cancelling at once",
                self.core.name
            );
            self.cancel(StopReason::Requested, join_by);
        }
        let detached = self.join_workers_by(join_by);
        // Nothing is left queued unless a worker is detached or a sender was late: sweep again
        // (without waiting) so that it is handed back now rather than later.
        if detached > 0 || self.core.is_cancelled() {
            let rest = self.core.cancel(Deadline::at(Instant::now()));
            self.unrun.extend(rest);
        }
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
        self.close_and_seal();
        self.cancel(StopReason::Requested, Deadline::after(DROP_WAIT));
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
/// | [`send_timeout`](Producer::send_timeout) / [`send_deadline`](Producer::send_deadline) | waits until the deadline, then `Timeout(item)` (`Full(item)` at once in `Reject`) | `Closed(item)` |
/// | [`try_send`](Producer::try_send) | `Full(item)` | `Closed(item)` |
///
/// A sender blocked on a full queue wakes when the queue closes and gets its item back.
///
/// Give each producing thread its own clone rather than one shared producer: each clone
/// sends through a `Sender` of its own, under a lock no other clone touches, so that
/// producers on different threads never contend on the queue's side (a clone costs a small
/// allocation and a registration under a lock; make clones up front, not per item).
pub struct Producer<T> {
    core: Arc<Core<T>>,
    /// This producer's own `Sender` (invariant 2); a clone gets a slot of its own.
    slot: Arc<Slot<T>>,
}

impl<T> Producer<T> {
    fn new(core: Arc<Core<T>>) -> Producer<T> {
        let slot = core.register();
        Producer { core, slot }
    }
}

impl<T> Clone for Producer<T> {
    /// Another producer, with a slot (a `Sender`) of its own: give each producing thread its
    /// own clone, rather than sharing one, so that their sends share no lock.
    fn clone(&self) -> Producer<T> {
        Producer::new(Arc::clone(&self.core))
    }
}

impl<T: Send + 'static> Producer<T> {
    /// Sends `item`, waiting while the queue is full (backpressure, in [`FullMode::Block`]).
    ///
    /// # Errors
    ///
    /// [`SendError`] with the item: the queue is closed, or (in [`FullMode::Reject`]) full.
    /// `SendError` has one form, as crossbeam's; in Reject mode, where `send` never waits,
    /// [`try_send`](Producer::try_send) or [`send_deadline`](Producer::send_deadline) tell
    /// the two apart.
    #[inline(always)]
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.core
            .send(&self.slot, item, Deadline::NEVER)
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
    /// ([`FullMode::Block`]); [`SendTimeoutError::Full`] at once if the queue is full in
    /// [`FullMode::Reject`]; [`SendTimeoutError::Closed`] if the queue is closed.
    #[inline]
    pub fn send_deadline(
        &self,
        item: T,
        deadline: impl Into<Deadline>,
    ) -> Result<(), SendTimeoutError<T>> {
        self.core
            .send(&self.slot, item, deadline.into())
            .map_err(|refused| match refused {
                Refused::Full(item) => SendTimeoutError::Full(item),
                Refused::Timeout(item) => SendTimeoutError::Timeout(item),
                Refused::Closed(item) => SendTimeoutError::Closed(item),
            })
    }

    /// Sends `item` if there is room now (or a drop mode makes room).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] with the item if the queue is full (in [`FullMode::Block`] or
    /// [`FullMode::Reject`]); [`TrySendError::Closed`] if it is closed.
    #[inline]
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.core
            .try_send(&self.slot, item)
            .map_err(|refused| match refused {
                // `Timeout` cannot happen: `try_send` never waits.
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
