//! The worker threads of a queue: spawning them, the loop each one runs (heartbeats, the
//! job, its retries and its item's fate), and the per-worker counters that keep the metrics
//! cheap.

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::BoxError;
use crate::failure::Failure;
use crate::host::Heartbeat;
use crate::queue::{BACKOFF_STEPS, BorrowedFn, Core, Handler, JobContext, OwnedFn, snooze};
use crate::scope::Registry;
use crate::stop::{StopToken, Stopped};
use crate::supervise::{MIN_BACKOFF, jittered};
use crate::sync::{AtomicU64, Ordering};
use crossbeam_channel::{Receiver, RecvTimeoutError, Select, TryRecvError};
use std::sync::Arc;

/// What one worker has taken and finished, on its own cache line, so that workers never
/// contend on a counter and the producer's lock word stays out of their lines.
///
/// Each counter has a single writer, its worker, which bumps it with a relaxed load + store
/// (no locked read-modify-write); readers (`Core::metrics`) sum them with relaxed loads.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerCounters {
    pub(crate) taken: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) panicked: AtomicU64,
    /// Items this worker took and gave to the dead letters.
    pub(crate) dead_lettered: AtomicU64,
    /// Items this worker took and handed back (cancelled, or their retry cancelled).
    pub(crate) returned: AtomicU64,
    /// Failed attempts run again (attempts, not items).
    pub(crate) retried: AtomicU64,
}

/// What the host lends a queue's workers at start: the queue service's heartbeat and
/// liveness window, and the host's service registry (for [`JobContext`]).
pub(crate) struct WorkerEnv {
    pub(crate) heartbeat: Arc<Heartbeat>,
    pub(crate) services: Arc<Registry>,
    /// `Some` for a critical queue ([`Service::liveness`](crate::Service::liveness)): its
    /// workers beat for each job, and every quarter of the window while idle.
    pub(crate) liveness: Option<Duration>,
}

/// Single-writer increment: only the owning worker ever writes this counter.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Spawns worker `index` of the queue, named `th:<queue>/<index>`.
pub(crate) fn spawn_worker<T: Send + 'static>(
    core: &Arc<Core<T>>,
    handler: &Handler<T>,
    env: &Arc<WorkerEnv>,
    index: usize,
    stack_size: Option<usize>,
) -> io::Result<JoinHandle<()>> {
    let name = format!("th:{}/{index}", core.name);
    core.worker_spawned(index);
    let spawned = crate::thread::spawn_named(&name, stack_size, {
        let core = Arc::clone(core);
        let handler = handler.clone();
        let env = Arc::clone(env);
        move || worker_main(&core, &handler, &env, index)
    });
    if spawned.is_err() {
        // The thread never ran: undo its registration so that a stop does not wait for it.
        core.worker_exited(index);
    }
    spawned
}

/// The top frame of a worker thread: take the next item, run it, settle its fate; until the
/// queue is closed and empty, or cancelled.
fn worker_main<T: Send + 'static>(
    core: &Core<T>,
    handler: &Handler<T>,
    env: &WorkerEnv,
    index: usize,
) {
    // Whatever happens below (user code is behind catch_unwind), the stop hook must learn
    // that this worker is done, or it would wait for it until its deadline.
    let _exited = scopeguard::guard((), |()| core.worker_exited(index));
    let token: StopToken = core.jobs.token();
    let rx = core.rx.clone();
    let mut worker = Worker {
        core,
        counters: &core.counters[index],
        env,
        token: &token,
        // xorshift must not start at zero; each worker draws its own jitter.
        seed: (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
    };
    // Only a critical queue's workers read the clock: a beat per job taken, and idle beats.
    let idle_beat = env.liveness.map(|window| (window / 4).max(MIN_BACKOFF));
    // The heartbeat is fixed for the worker's life: decided once, here, so that the common
    // loop (no heartbeat) is a bare `recv` loop, as a hand-written pool's, and the queue's
    // only call of `Receiver::recv` (see `recv`).
    match idle_beat {
        None => {
            while let Some(item) = recv(&rx) {
                if let Some(item) = worker.take(item) {
                    worker.run(handler, item);
                }
            }
        }
        Some(every) => {
            let mut timed = TimedRecv::new(&rx);
            while let Some(item) = next_beating(&mut timed, every, &env.heartbeat) {
                if let Some(item) = worker.take(item) {
                    env.heartbeat.beat();
                    worker.run(handler, item);
                }
            }
        }
    }
}

/// The next item, waiting for it (crossbeam parks the thread); `None` once the stop sealed
/// the channel and it is empty.
///
/// The queue's only call of `Receiver::recv` (the timed waits go through a `Select`,
/// [`TimedRecv`]): crossbeam's receive path then has one caller per item type, which the
/// compiler inlines here, as it does into a hand-written pool's loop.
#[inline(always)]
fn recv<T>(rx: &Receiver<T>) -> Option<T> {
    rx.recv().ok()
}

/// The queue's timed receive (a critical queue's idle worker, the cancel's last sweep),
/// through a `Select` on the channel, so that the workers' `recv` stays crossbeam's receive
/// path's only caller ([`recv`]). Built once per waiter (a `Select` allocates its list).
pub(crate) struct TimedRecv<'a, T> {
    rx: &'a Receiver<T>,
    select: Select<'a>,
}

impl<'a, T> TimedRecv<'a, T> {
    pub(crate) fn new(rx: &'a Receiver<T>) -> TimedRecv<'a, T> {
        let mut select = Select::new();
        select.recv(rx);
        TimedRecv { rx, select }
    }

    /// Receives, waiting until `at` at most (`None`: no limit).
    pub(crate) fn until(&mut self, at: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let oper = match at {
            None => self.select.select(),
            Some(at) => match self.select.select_deadline(at) {
                Ok(oper) => oper,
                Err(_) => return Err(RecvTimeoutError::Timeout),
            },
        };
        oper.recv(self.rx)
            .map_err(|_| RecvTimeoutError::Disconnected)
    }
}

/// A critical queue's next item: as `recv` (`None` once the stop sealed the channel and it
/// is empty), but an idle worker wakes every `every` to beat: waiting for work is not being
/// stuck, so an idle queue stays live; a worker stuck in a job does not beat.
fn next_beating<T>(rx: &mut TimedRecv<'_, T>, every: Duration, heartbeat: &Heartbeat) -> Option<T> {
    // Before it parks, tries through two rounds of the queue's short backoff (microseconds):
    // a `Select` parks at once, where crossbeam's own `recv_timeout` spins first, and one
    // round was slower than that (RELIABILITY.md, "Figures behind design choices"). So a busy
    // critical queue's worker catches the next item without a park and a wake.
    for step in (0..=BACKOFF_STEPS).chain(0..=BACKOFF_STEPS) {
        match rx.rx.try_recv() {
            Ok(item) => return Some(item),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        snooze(step);
    }
    loop {
        heartbeat.beat();
        match rx.until(Some(Instant::now() + every)) {
            Ok(item) => return Some(item),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// A worker's view while it runs jobs.
struct Worker<'a, T> {
    core: &'a Core<T>,
    counters: &'a WorkerCounters,
    env: &'a WorkerEnv,
    token: &'a StopToken,
    seed: u64,
}

/// How one attempt of a job ended.
enum Attempt {
    Completed,
    /// Returned [`Stopped`] after the jobs' token fired.
    Cancelled,
    Failed(Failure),
}

impl<T: Send + 'static> Worker<'_, T> {
    /// An item this worker received: `None` if the queue was cancelled meanwhile (the item is
    /// handed back, never started: invariant 3); otherwise counted as taken.
    #[inline(always)]
    fn take(&self, item: T) -> Option<T> {
        if self.core.is_cancelled() {
            self.hand_back_received(item);
            return None;
        }
        bump(&self.counters.taken);
        Some(item)
    }

    /// An item received after the cancel: handed back, never started (invariant 3). Out of
    /// the worker's loop: it happens at most once per item, during a cancel.
    #[cold]
    #[inline(never)]
    fn hand_back_received(&self, item: T) {
        self.core.hand_back_late(vec![item]);
    }

    /// Runs the job of an item this worker took, and settles the item's fate.
    #[inline(always)]
    fn run(&mut self, handler: &Handler<T>, item: T) {
        match handler {
            Handler::Owned(f) => self.run_owned(f.as_ref(), item),
            Handler::Borrowed(f) => self.run_borrowed(f.as_ref(), item),
        }
    }

    /// A handler that takes the item by value: one attempt, the item is gone.
    #[inline(always)]
    fn run_owned(&self, f: &OwnedFn<T>, item: T) {
        match self.attempt(|| f(item, self.token)) {
            Attempt::Completed => bump(&self.counters.completed),
            Attempt::Cancelled => bump(&self.counters.cancelled),
            Attempt::Failed(failure) => self.count_failure(failure),
        }
    }

    /// A handler that borrows the item: the worker keeps it through every attempt, and
    /// settles its fate (the table of `WorkQueueBuilder::build_jobs`).
    fn run_borrowed(&mut self, f: &BorrowedFn<T>, mut item: T) {
        let core = self.core;
        let max_attempts = core.retry.max_attempts;
        let mut attempt = 1;
        loop {
            let job = JobContext {
                queue: &core.name,
                token: self.token,
                attempt,
                max_attempts,
                heartbeat: &self.env.heartbeat,
                services: &self.env.services,
            };
            let failure = match self.attempt(|| f(&mut item, &job)) {
                Attempt::Completed => {
                    // The item is user data: a panicking `Drop` must not end the worker.
                    crate::panic::drop_quietly(item);
                    bump(&self.counters.completed);
                    return;
                }
                Attempt::Cancelled => return self.hand_back(item),
                Attempt::Failed(failure) => failure,
            };
            if attempt >= max_attempts {
                if core.dead_letters {
                    crate::logging::error!(queue = &*core.name;
                        "queue `{}`: a job failed its last attempt ({attempt} of {max_attempts}): {failure}; its item goes to the dead letters",
                        core.name
                    );
                    core.hand_dead(item, failure);
                    bump(&self.counters.dead_lettered);
                } else {
                    crate::panic::drop_quietly(item);
                    self.count_failure(failure);
                }
                return;
            }
            if self.token.is_stopped() {
                // The stop cancelled: no retry now, and the item has attempts left.
                crate::panic::drop_quietly(failure);
                return self.hand_back(item);
            }
            let wait = self.backoff(attempt);
            crate::logging::warn!(queue = &*core.name;
                "queue `{}`: a job failed (attempt {attempt} of {max_attempts}): {failure}; retrying in {wait:?}",
                core.name
            );
            crate::panic::drop_quietly(failure);
            // On the jobs' token: a stop that cancels ends the wait at once.
            if self.token.sleep(wait).is_err() {
                return self.hand_back(item);
            }
            bump(&self.counters.retried);
            attempt += 1;
            if self.env.liveness.is_some() {
                self.env.heartbeat.beat();
            }
        }
    }

    /// Runs one attempt (user code) behind `catch_unwind`. Logs a cancellation, and a failure
    /// when it is final for sure (no dead letters: no retry); the caller logs the others.
    ///
    /// The job's success is the hot path, inlined into the worker's loop; the rest is out
    /// of line ([`settle_failed`](Self::settle_failed)).
    #[inline(always)]
    fn attempt(&self, run: impl FnOnce() -> crate::ServiceResult) -> Attempt {
        match crate::panic::catch(run) {
            Ok(Ok(())) => Attempt::Completed,
            outcome => self.settle_failed(outcome),
        }
    }

    /// An attempt that returned an error or panicked (`outcome`): a cancellation or a failure.
    #[cold]
    #[inline(never)]
    fn settle_failed(&self, outcome: Result<crate::ServiceResult, String>) -> Attempt {
        let name = &self.core.name;
        match outcome {
            Ok(Ok(())) => Attempt::Completed,
            Ok(Err(error)) => {
                if is_cancellation(&error, self.token) {
                    // The job gave up because the stop cancelled it: expected, not an error.
                    crate::logging::info!(queue = &**name;
                        "queue `{name}`: a job was cancelled by the stop"
                    );
                    // The error is user data: a panicking `Drop` must not end the worker.
                    crate::panic::drop_quietly(error);
                    Attempt::Cancelled
                } else {
                    if !self.core.dead_letters {
                        // The error's `Display` is user code: guarded, so the worker survives it.
                        let shown = crate::panic::Guarded(&*error);
                        crate::logging::error!(
                            queue = &**name;
                            "queue `{name}`: a job failed: {shown}; the worker goes on"
                        );
                    }
                    Attempt::Failed(Failure::from_box(error))
                }
            }
            Err(message) => {
                // The payload (user data) was dropped by `catch`, outside any lock, surviving
                // a panicking drop.
                if !self.core.dead_letters {
                    crate::logging::error!(
                        queue = &**name;
                        "queue `{name}`: a job panicked: {message}; the worker goes on"
                    );
                }
                Attempt::Failed(Failure::Panic(message.into()))
            }
        }
    }

    /// Counts a final failure whose item is gone (no dead letters).
    fn count_failure(&self, failure: Failure) {
        if failure.is_panic() {
            bump(&self.counters.panicked);
        } else {
            bump(&self.counters.failed);
        }
        // The error is user data: a panicking `Drop` must not end the worker.
        crate::panic::drop_quietly(failure);
    }

    /// Hands back an item this worker took (counted in its own `returned`).
    fn hand_back(&self, item: T) {
        crate::logging::info!(queue = &*self.core.name;
            "queue `{}`: the stop cancelled a job (or its retry): its item is handed back",
            self.core.name
        );
        self.core.park_late(vec![item]);
        bump(&self.counters.returned);
    }

    /// The wait before the retry that follows attempt `attempt` (1 for the first): the
    /// backoff's delay, jittered, at least [`MIN_BACKOFF`].
    fn backoff(&mut self, attempt: u32) -> Duration {
        let backoff = &self.core.retry.backoff;
        let wait = backoff.delay(attempt - 1);
        jittered(wait, backoff.jitter, &mut self.seed).max(MIN_BACKOFF)
    }
}

/// A job is *cancelled*, not failed, when it returned [`Stopped`] and the jobs' token had
/// fired by then: it gave up because the stop cancelled it. Any other error is a failure, even
/// after the token fired (a real error during the stop must not be hidden), and so is a
/// `Stopped` while the token has not fired (the job was not cancelled by the queue).
fn is_cancellation(error: &BoxError, token: &StopToken) -> bool {
    error.is::<Stopped>() && token.is_stopped()
}
