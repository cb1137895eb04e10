//! [`Host`], [`HostHandle`] and the lifecycle sequencer.
//!
//! # Invariants
//!
//! 1. All lifecycle state lives in `Shared::ctl` (one mutex). It is held only for short,
//!    non-blocking critical sections: never across a wait (condvar waits release it), a
//!    thread join, or user code (hooks, bodies, lifetime callbacks, token callbacks, the
//!    logger, and a user error's `Display` or `Drop`: a replaced `last_error` may hold the
//!    last reference to one, so it is dropped after the guard).
//! 2. `Ctl::state` changes only under `ctl`, and every change is mirrored into
//!    `Shared::state` (Release) in the same critical section, so `HostHandle::state()` is one
//!    atomic load that never runs ahead of the lifecycle.
//! 3. Every change a waiter may wait for (a reply, a thread exit, a stop request, the end of a
//!    start or of the stop sequence) is made under `ctl` and followed by `cond.notify_all()`
//!    before the lock is released; every wait re-checks its predicate under `ctl` in a loop
//!    bounded by its deadline. A command to a service thread is likewise stored under `ctl`
//!    and announced on that service's own condvar `cmd_conds[i]`.
//! 4. At most one thread runs the start sequence (`start_active`) and at most one runs the
//!    stop sequence (`sequence_active`); never both at once. Other callers of `stop`/`join`
//!    wait on `cond` for the stored report.
//! 5. A service is stopped only if its `start` hook succeeded (`Record::started`) and the host
//!    did not give up on it first (`Record::abandoned`). A service given up on while starting
//!    is told to `Finish`: if its start later succeeds, its own thread runs its stop hooks.
//!    A start hook still running when a stop request ends the start is not given up on: the
//!    stop sequence awaits its reply (within the stop deadline) before the stop phases.
//! 6. A service thread is joined only after it set `Record::exited` (it has nothing left to do
//!    but return), so a join never blocks past a deadline. A thread that has not exited by the
//!    deadline is detached, its service marked `TimedOut`, and named in the report.
//! 7. A deadline is computed once per public call (`start`, `stop`, `join`, `run`) and passed
//!    down; a per-service timeout only ever shortens it. Past the stop deadline the sequence
//!    keeps one grace in total (`LATE_GRACE`), never one per service or phase: every wait of
//!    a stop ends by `deadline + LATE_GRACE`, and once the deadline has passed the services
//!    still to stop are stopped all at once (tokens fired, each runs its remaining stop hooks
//!    on its own thread), not one after another.
//! 8. A thread that works for the host (`crate::thread`: a service thread, a thread spawned
//!    from one, a thread running the start or stop sequence or firing a lifetime event) never
//!    waits for the stop sequence: the sequence may be waiting for it. `stop` there requests
//!    the stop, makes sure a thread runs the sequence (`th:host-stop`, spawned once, if no
//!    other caller is running it), and returns an incomplete report; `join` there is refused.
//! 9. Lifetime events are ordered whoever requested the stop: the `stopping` callbacks have
//!    returned (`Ctl::stopping_done`, or the stop deadline passed) before the first service
//!    stop hook runs, and the `stopped` callbacks have returned before the report is stored
//!    (so before `stop`, `join` or `run` return it to anyone).

mod builder;
#[cfg(feature = "listeners")]
mod events;
mod heartbeat;
mod options;
mod runner;

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use builder::HostBuilder;
#[cfg(feature = "listeners")]
pub use events::{HostEvent, StateChange};
pub use options::HostOptions;

use crate::deadline::Deadline;
use crate::error::Error;
use crate::failure::Failure;
use crate::report::{Outcome, ServiceReport, StopReport};
use crate::service::{Context, Kind, Service};
use crate::state::{HostSnapshot, HostState, ServiceState, ServiceStatus};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::supervise::Policy;
use crate::sync::{AtomicU8, Condvar, Mutex, MutexGuard, Ordering};
#[cfg(feature = "listeners")]
use events::Events;
#[cfg(feature = "listeners")]
pub(crate) use events::{Listener, Listeners};
pub(crate) use heartbeat::Heartbeat;

/// A lifecycle phase; the first three start a service, the last three stop it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Starting,
    Start,
    Started,
    Stopping,
    Stop,
    Stopped,
}

/// The one grace a stop keeps past its deadline (invariant 7): a service whose stop step
/// begins after its deadline passed (others used up the shared time) still gets until its
/// deadline + this before it is reported as timed out, so that a service that stops in
/// microseconds is not. The deadline is fixed when the service's stop begins, so this is
/// a bound, never an extension per phase; `stop` returns by its deadline + this + scheduling.
pub(crate) const LATE_GRACE: Duration = Duration::from_millis(10);

/// What the host tells a service thread to do next.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cmd {
    /// Run this phase's hook under this deadline, then reply.
    Phase(Phase, Deadline),
    /// The host gave up on you: if your start succeeded, run your remaining stop hooks on
    /// your own; then exit.
    Finish,
    /// The stop deadline passed before your turn: run your remaining stop hooks now, on your
    /// own and under this deadline, recording a failure; then exit (invariant 7).
    StopAlone(Deadline),
    /// Exit without running another hook.
    Exit,
}

/// The start order and dependency levels, computed by the builder.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) order: Vec<usize>,
    pub(crate) levels: Vec<Vec<usize>>,
    pub(crate) console_lifetime: bool,
    /// The typed service registry, shared with every service's `Context`.
    pub(crate) services: Arc<crate::scope::Registry>,
    #[cfg(feature = "listeners")]
    pub(crate) listeners: Listeners,
}

/// One service's lifecycle record, in `Ctl::records` (registration order).
struct Record {
    name: Arc<str>,
    hosted: bool,
    /// The service value until its thread is spawned (then the thread owns it).
    service: Option<Kind>,
    policy: Policy,
    stack_size: Option<usize>,
    start_timeout: Option<Duration>,
    stop_timeout: Option<Duration>,
    token: StopSource,
    state: ServiceState,
    /// Host → thread; taken by the thread.
    cmd: Option<Cmd>,
    /// The phase the host awaits a reply for.
    awaiting: Option<Phase>,
    /// Thread → host: the last reply.
    reply: Option<(Phase, Result<(), Failure>)>,
    started: bool,
    abandoned: bool,
    exited: bool,
    timed_out: bool,
    thread: Option<JoinHandle<()>>,
    last_error: Option<Failure>,
    restarts: u32,
    start_began: Option<Instant>,
    start_duration: Option<Duration>,
    stop_began: Option<Instant>,
    stop_duration: Option<Duration>,
    stop_deadline: Option<Deadline>,
    /// How stale its heartbeat may be for it to count as live (a critical service).
    liveness: Option<Duration>,
    heartbeat: Arc<Heartbeat>,
    /// When it last replied or exited: a concurrent stop's phase is a barrier, and the time a
    /// service then waits for slower ones does not count against its own stop timeout.
    done_at: Option<Instant>,
    /// Fires when the `on_stop` callbacks of its token, run on a thread of their own, have
    /// returned (`Shared::fire_tokens`); awaited before the report.
    callbacks: Option<StopToken>,
    /// A background service's stop deadline as its body reads it (`Context::deadline`): set
    /// before its token fires for a stop.
    body_deadline: Arc<crate::service::StopDeadline>,
    /// State changes go to the listeners (events.rs, invariant 1).
    #[cfg(feature = "listeners")]
    events: Option<crossbeam_channel::Sender<(StateChange, Instant)>>,
    metrics: Option<crate::service::MetricsFn>,
}

struct Ctl {
    state: HostState,
    start_active: bool,
    sequence_active: bool,
    stop_reason: Option<StopReason>,
    /// Set at the first stop request: then + `shutdown_timeout`.
    stop_deadline: Deadline,
    report: Option<StopReport>,
    host_failure: Option<(Arc<str>, Failure)>,
    /// The start completed (the host was `Running`): the `started` event is due, and must
    /// fire before `stopping` whichever thread gets there first.
    reached_running: bool,
    /// Invariant 9: the thread that fired `stopping` has run its callbacks.
    stopping_done: bool,
    /// Invariant 9: a thread claimed the firing of `stopping` (it logs, fires, then sets
    /// `stopping_done`).
    stopping_claimed: bool,
    /// Invariant 8: a `th:host-stop` thread was spawned to run the stop sequence.
    stopper_spawned: bool,
    records: Vec<Record>,
}

pub(crate) struct Shared {
    /// Invariant 8: who works for this host (`crate::thread::works_for`).
    id: u64,
    options: HostOptions,
    plan: Plan,
    /// Invariant 2: mirror of `Ctl::state`.
    state: AtomicU8,
    ctl: Mutex<Ctl>,
    /// Invariant 3: replies, exits, stop requests, end of start / stop.
    cond: Condvar,
    /// Invariant 3: one per service, for commands.
    cmd_conds: Vec<Condvar>,
    started_event: StopSource,
    stopping_event: StopSource,
    stopped_event: StopSource,
    #[cfg(feature = "listeners")]
    events: Arc<Events>,
}

/// A set of hosted services with one lifecycle. Made by [`HostBuilder::build`].
///
/// `start`, `stop` and `join` each take a deadline (`impl Into<Deadline>`: a `Duration` from
/// now, an `Instant`, or [`Deadline::NEVER`]) and return by it whatever a service does.
///
/// Dropping a running host stops it, waiting at most
/// [`HostOptions::shutdown_timeout`]; a host that was never started is dropped at once.
///
/// # Thread safety
///
/// `Host` is `Send + Sync`: `stop` and `join` may be called from several threads at once;
/// the first runs the stop sequence, the others wait for its report.
///
/// A service may stop its own host. Called on one of the host's own threads (a hook, a body,
/// a queue job, a token or lifetime callback, any thread threadhost spawned for the host),
/// `stop` cannot wait for the stop, which may be waiting for that very thread: it requests
/// the stop, makes sure it runs (on a thread `th:host-stop` if no other caller is running
/// it), and returns at once a report [in progress](StopReport::is_in_progress); the
/// caller's service then stops like the others, when it returns. `join` there returns
/// [`Error::InvalidState`]. Most services just call [`HostHandle::request_stop`] through
/// [`Context::host`].
#[must_use = "a Host does nothing until started; dropping it stops its services"]
pub struct Host {
    shared: Arc<Shared>,
}

/// A cloneable handle to a host: request a stop, read its state, wait for lifetime events.
///
/// `Clone + Send + Sync`; usable from any thread, also from a service's own thread, and after
/// the [`Host`] is gone.
#[derive(Clone)]
pub struct HostHandle {
    shared: Arc<Shared>,
}

impl Host {
    // `plan` gives its listeners to the event thread (`listeners` feature).
    #[cfg_attr(not(feature = "listeners"), allow(unused_mut))]
    pub(crate) fn new(options: HostOptions, services: Vec<Service>, mut plan: Plan) -> Host {
        #[cfg(feature = "listeners")]
        let events = Arc::new(Events::new(std::mem::take(&mut plan.listeners.0)));
        let records: Vec<Record> = services
            .into_iter()
            .map(|s| Record {
                hosted: matches!(s.kind, Kind::Hosted(_)),
                policy: s.policy.unwrap_or_else(|| options.failure_policy.clone()),
                stack_size: s.stack_size.or(options.stack_size),
                start_timeout: s.start_timeout,
                stop_timeout: s.stop_timeout,
                name: s.name,
                service: Some(s.kind),
                token: StopSource::new(),
                state: ServiceState::Created,
                cmd: None,
                awaiting: None,
                reply: None,
                started: false,
                abandoned: false,
                exited: false,
                timed_out: false,
                thread: None,
                last_error: None,
                restarts: 0,
                start_began: None,
                start_duration: None,
                stop_began: None,
                stop_duration: None,
                stop_deadline: None,
                liveness: s.liveness,
                metrics: s.metrics,
                heartbeat: Arc::new(Heartbeat::new()),
                done_at: None,
                callbacks: None,
                body_deadline: Arc::default(),
                #[cfg(feature = "listeners")]
                events: events.sender(),
            })
            .collect();
        let cmd_conds = records.iter().map(|_| Condvar::new()).collect();
        Host {
            shared: Arc::new(Shared {
                id: crate::thread::new_host_id(),
                options,
                plan,
                state: AtomicU8::new(HostState::Created as u8),
                ctl: Mutex::new(Ctl {
                    state: HostState::Created,
                    start_active: false,
                    sequence_active: false,
                    stop_reason: None,
                    stop_deadline: Deadline::NEVER,
                    report: None,
                    host_failure: None,
                    reached_running: false,
                    stopping_done: false,
                    stopping_claimed: false,
                    stopper_spawned: false,
                    records,
                }),
                cond: Condvar::new(),
                cmd_conds,
                started_event: StopSource::new(),
                stopping_event: StopSource::new(),
                stopped_event: StopSource::new(),
                #[cfg(feature = "listeners")]
                events,
            }),
        }
    }

    /// A handle to this host.
    #[must_use]
    pub fn handle(&self) -> HostHandle {
        HostHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The host's state. One atomic load.
    #[must_use]
    pub fn state(&self) -> HostState {
        self.shared.state()
    }

    /// The host's service registry (.NET's `host.Services`): its singletons and scoped
    /// factories, for code outside the services, e.g. `host.services().create_scope()`.
    #[must_use]
    pub fn services(&self) -> &crate::scope::Registry {
        &self.shared.plan.services
    }

    /// Starts every service: all `starting` hooks, then all `start` hooks (background
    /// services: their optional start hook, then their body begins), then all `started`
    /// hooks; in start order (registration order after dependencies), or concurrently by
    /// dependency level with [`HostBuilder::start_concurrently`].
    ///
    /// Blocks until every service started, one failed, a stop was requested, or the
    /// deadline passed; returns by the deadline whatever a service does, because each start
    /// hook runs on its service's own thread.
    ///
    /// If a start hook fails, panics or overruns, the services already started are stopped in
    /// reverse order (within [`HostOptions::shutdown_timeout`]), a service that never started
    /// is never stopped, the host ends `Failed`, and the error names the service. A stop
    /// requested during start ends the start early: services not yet started are skipped,
    /// and `start` returns `Ok(())`; the started ones are stopped by the `stop`, `join` or
    /// `run` that follows. A stop requested before `start` makes `start` start nothing.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidState`]: the host was already started.
    /// - [`Error::Spawn`]: a service thread could not be created.
    /// - [`Error::StartFailed`]: a start hook returned an error or panicked.
    /// - [`Error::StartTimeout`]: a start hook did not return by the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{Error, HostBuilder, HostState};
    ///
    /// let host = HostBuilder::new()
    ///     .background("ok", |ctx| { ctx.token().wait(); Ok(()) })
    ///     .background_service("bad", BadStart)
    ///     .build()?;
    /// let err = host.start(Duration::from_secs(5)).unwrap_err();
    /// assert!(matches!(err, Error::StartFailed { ref service, .. } if &**service == "bad"));
    /// assert_eq!(host.state(), HostState::Failed);
    ///
    /// struct BadStart;
    /// impl threadhost::BackgroundService for BadStart {
    ///     fn start(&mut self, _: &threadhost::Context) -> threadhost::ServiceResult {
    ///         Err("no database".into())
    ///     }
    ///     fn run(&mut self, _: &threadhost::Context) -> threadhost::ServiceResult { Ok(()) }
    /// }
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn start(&self, deadline: impl Into<Deadline>) -> Result<(), Error> {
        self.shared.start(deadline.into())
    }

    /// Stops the host: fires the `stopping` event, then runs every started service's
    /// `stopping` hooks, fires each token and runs the `stop` hooks (background services:
    /// waits for the body to return), then the `stopped` hooks; in reverse start order, or
    /// concurrently by dependency level with [`HostBuilder::stop_concurrently`].
    ///
    /// Blocks until every service stopped or the deadline passed, and returns by the deadline
    /// (plus scheduling latency) whatever a service does. One deadline is shared by all
    /// services; a service's [`stop_timeout`](crate::Service::stop_timeout) only shortens its
    /// own share. A service that overruns is left running on its detached thread and named in
    /// the report as timed out — never silently forgotten.
    ///
    /// Stop before start is a no-op (the host can still be started). Stop is idempotent and
    /// thread-safe: the first caller runs the sequence; the others wait for its report (or
    /// return at their own deadline with an incomplete report).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Outcome};
    ///
    /// let host = HostBuilder::new()
    ///     .background("polite", |ctx| { ctx.token().wait(); Ok(()) })
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let report = host.stop(Duration::from_secs(5));
    /// assert!(matches!(report.service("polite").unwrap().outcome, Outcome::Stopped));
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn stop(&self, deadline: impl Into<Deadline>) -> StopReport {
        self.shared.stop(deadline.into())
    }

    /// Waits until a stop is requested ([`HostHandle::request_stop`], a service failing
    /// under `StopHost`, a signal) and the stop sequence it triggers has finished; returns the
    /// report. If no one else is running the stop sequence, this caller runs it, under the
    /// earlier of `deadline` and the stop request's time plus
    /// [`HostOptions::shutdown_timeout`].
    ///
    /// Blocks until then or until `deadline` passes.
    ///
    /// # Errors
    ///
    /// [`Error::JoinTimeout`] if `deadline` passed first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::HostBuilder;
    ///
    /// let host = HostBuilder::new()
    ///     .background("one-shot", |ctx| {
    ///         ctx.host().request_stop(); // work done: stop the host
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let report = host.join(Duration::from_secs(5))?;
    /// assert!(report.is_clean());
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn join(&self, deadline: impl Into<Deadline>) -> Result<StopReport, Error> {
        self.shared.join(deadline.into())
    }

    /// Runs the host to completion: installs the console lifetime if the builder asked for it
    /// (`HostBuilder::console_lifetime`, which needs the `termination` feature), starts (under
    /// [`HostOptions::startup_timeout`]), waits for a stop request, and stops (under
    /// [`HostOptions::shutdown_timeout`], counted from the request). Without the console
    /// lifetime, something else requests the stop: a service, or a [`HostHandle`].
    ///
    /// Blocks until the host has stopped.
    ///
    /// # Errors
    ///
    /// - Any error of [`start`](Host::start), and `Error::Signal` (feature `termination`) if
    ///   the signal handler could not be installed.
    /// - [`Error::ServiceFailed`]: a service failed under [`Policy::StopHost`] (with the
    ///   stop report).
    /// - [`Error::StopTimeout`]: a service did not stop by the deadline (with the report).
    ///
    /// [`exit_code`](crate::exit_code) maps the result to a process exit code.
    ///
    /// # Examples
    ///
    /// ```
    /// use threadhost::HostBuilder;
    ///
    /// let result = HostBuilder::new()
    ///     .background("job", |ctx| {
    ///         // ... do the work, then end the program:
    ///         ctx.host().request_stop();
    ///         Ok(())
    ///     })
    ///     .build()?
    ///     .run();
    /// assert_eq!(threadhost::exit_code(&result), 0);
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn run(self) -> Result<StopReport, Error> {
        #[cfg(feature = "termination")]
        if self.shared.plan.console_lifetime {
            crate::lifetime::install(&self.handle())?;
        }
        let result = self
            .start(Deadline::from(self.shared.options.startup_timeout))
            .and_then(|()| {
                if self.shared.plan.console_lifetime {
                    log::info!("Application started. Press Ctrl+C to shut down.");
                } else {
                    log::info!("Application started.");
                }
                self.join(Deadline::NEVER)
            });
        // The last state change reaches the listeners (e.g. systemd's STATUS) before the
        // program goes on to exit.
        #[cfg(feature = "listeners")]
        self.shared.events.flush();
        result?.into_result()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let state = self.state();
        if state == HostState::Created || state.is_terminal() {
            // Created: no thread exists yet (threads are spawned by `start`).
            return;
        }
        let report = self.stop(self.shared.options.shutdown_timeout);
        // Incomplete: dropped on a thread of its own (invariant 8), or another caller runs
        // the stop and reports it.
        if report.is_complete() && !report.is_clean() {
            log::warn!("host dropped while running; {report}");
        }
    }
}

impl HostHandle {
    /// Asks the host to stop: fires the `stopping` event and wakes `join`/`run`, which run the
    /// stop sequence. Returns at once; idempotent. Before `start`, it makes `start` start
    /// nothing.
    pub fn request_stop(&self) {
        self.shared.request_stop(StopReason::Requested);
    }

    /// [`request_stop`](HostHandle::request_stop) with a reason (kept if the host was not
    /// already asked to stop).
    pub fn request_stop_with(&self, reason: StopReason) {
        self.shared.request_stop(reason);
    }

    /// The host's state. One atomic load.
    #[must_use]
    pub fn state(&self) -> HostState {
        self.shared.state()
    }

    /// Why the host was asked to stop, if it was.
    #[must_use]
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.shared.ctl.lock().stop_reason.clone()
    }

    /// The options the host was built with.
    #[must_use]
    pub fn options(&self) -> &HostOptions {
        &self.shared.options
    }

    /// Every service's state, restarts, last error, start/stop durations and liveness.
    ///
    /// Takes the lifecycle lock briefly (it is never held across a wait or user code);
    /// the services' [metrics](Service::metrics) callbacks run after it is released.
    #[must_use]
    pub fn snapshot(&self) -> HostSnapshot {
        let (mut snapshot, metrics) = {
            let ctl = self.shared.ctl.lock();
            let snapshot = HostSnapshot {
                state: ctl.state,
                services: ctl.records.iter().map(Record::status).collect(),
            };
            let metrics: Vec<_> = ctl.records.iter().map(|r| r.metrics.clone()).collect();
            (snapshot, metrics)
        };
        // Invariant 1: metrics callbacks are user code, called with no lock held.
        for (status, f) in snapshot.services.iter_mut().zip(metrics) {
            let Some(f) = f else { continue };
            let what = format_args!("the metrics callback of service `{}`", status.name);
            if let Some(figures) = crate::panic::log_panic(what, || f()) {
                status.metrics = figures;
            }
        }
        snapshot
    }

    /// Fires once every service has started (.NET's `ApplicationStarted`). Wait on it or
    /// register callbacks with [`StopToken::on_stop`].
    #[must_use]
    pub fn started(&self) -> StopToken {
        self.shared.started_event.token()
    }

    /// Fires when a stop is requested, before any service is stopped (.NET's
    /// `ApplicationStopping`).
    #[must_use]
    pub fn stopping(&self) -> StopToken {
        self.shared.stopping_event.token()
    }

    /// Fires when the stop sequence has finished (.NET's `ApplicationStopped`), also after a
    /// failed start's rollback.
    #[must_use]
    pub fn stopped(&self) -> StopToken {
        self.shared.stopped_event.token()
    }
}

impl Record {
    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            name: Arc::clone(&self.name),
            state: self.state,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            start_duration: self.start_duration,
            stop_duration: self.stop_duration,
            liveness: self.liveness,
            heartbeat_age: self.heartbeat.age(),
            metrics: Vec::new(),
        }
    }

    /// Changes the service's state and tells the listeners (events.rs, invariant 1).
    fn set_state(&mut self, to: ServiceState) {
        #[cfg(feature = "listeners")]
        let from = self.state;
        self.state = to;
        #[cfg(feature = "listeners")]
        if from != to {
            let error = match to {
                ServiceState::Failed | ServiceState::Restarting | ServiceState::TimedOut => {
                    self.last_error.clone()
                }
                _ => None,
            };
            let change = StateChange::Service {
                name: Arc::clone(&self.name),
                from,
                to,
                error,
            };
            events::emit(self.events.as_ref(), change);
        }
    }

    /// The stop deadline of this service, computed once when its stop begins: the host's
    /// deadline, shortened by the service's own stop timeout.
    fn stop_deadline(&mut self, host: Deadline) -> Deadline {
        if self.stop_began.is_none() {
            self.stop_began = Some(Instant::now());
        }
        let stop_timeout = self.stop_timeout;
        *self
            .stop_deadline
            .get_or_insert_with(|| host.min_after(stop_timeout))
    }

    /// Invariant 5: a service the stop phases are for: started, and not given up on.
    fn is_live(&self) -> bool {
        self.started && !self.abandoned && !self.timed_out
    }

    /// Its stop begins (a body that already failed or completed keeps that state).
    fn enter_stopping(&mut self) {
        if !matches!(self.state, ServiceState::Failed | ServiceState::Completed) {
            self.set_state(ServiceState::Stopping);
        }
    }
}

/// How long to wait for a stop step that ends at a service's deadline `d`: `d`, or
/// `d +` [`LATE_GRACE`] once `d` has passed (invariant 7). As `d` never moves, this bounds
/// every step of that service, and of the whole stop, by the deadline + one grace.
fn late(d: Deadline) -> Deadline {
    match d.instant() {
        Some(at) if d.is_expired() => at
            .checked_add(LATE_GRACE)
            .map_or(Deadline::NEVER, Deadline::at),
        _ => d,
    }
}

/// How a wait for one service ended.
#[derive(Debug)]
enum Resolution {
    Done(Result<(), Failure>),
    TimedOut,
    Interrupted,
}

/// Who calls `await_or_run_sequence`: what its deadline bounds.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// `stop(deadline)`: waits for, or runs, the sequence under `deadline`.
    Stop,
    /// `join(deadline)`: the same, the sequence capped by the shutdown timeout from the
    /// request.
    Join,
    /// `th:host-stop` (invariant 8): waits without a bound for its turn, then runs the
    /// sequence under the self-stop's deadline, capped as `Join`.
    Stopper,
}

/// What to wait for from one service.
#[derive(Clone, Copy, Debug)]
enum Await {
    Reply(Phase),
    Exit,
}

impl Shared {
    fn state(&self) -> HostState {
        HostState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Invariant 2.
    fn set_state(&self, ctl: &mut Ctl, state: HostState) {
        #[cfg(feature = "listeners")]
        let from = ctl.state;
        ctl.state = state;
        self.state.store(state as u8, Ordering::Release);
        #[cfg(feature = "listeners")]
        if from != state {
            // Under `ctl`, so listeners see host and service changes in the order made.
            self.events.emit(StateChange::Host {
                from,
                to: state,
                reason: ctl.stop_reason.clone(),
            });
        }
    }

    /// Invariant 3: store the command, then wake that service's thread.
    fn send(&self, ctl: &mut Ctl, i: usize, cmd: Cmd) {
        let r = &mut ctl.records[i];
        r.cmd = Some(cmd);
        if let Cmd::Phase(p, _) = cmd {
            r.awaiting = Some(p);
            r.reply = None;
        } else {
            r.awaiting = None;
        }
        self.cmd_conds[i].notify_one();
    }

    pub(crate) fn request_stop(self: &Arc<Self>, reason: StopReason) {
        let fire = {
            let mut ctl = self.ctl.lock();
            if ctl.stop_reason.is_some() || ctl.state.is_terminal() {
                return;
            }
            ctl.stop_reason = Some(reason.clone());
            ctl.stop_deadline = Deadline::after(self.options.shutdown_timeout);
            let fire = matches!(ctl.state, HostState::Starting | HostState::Running);
            if fire {
                self.set_state(&mut ctl, HostState::Stopping);
            }
            // Invariant 3: wake the start sequencer and any join waiting for a request.
            self.cond.notify_all();
            fire.then_some(ctl.reached_running)
        };
        if let Some(reached_running) = fire {
            // Lifetime callbacks are user code: run with no lock held (invariant 1).
            self.fire_stopping(reached_running, reason);
        }
    }

    /// Fires `stopping` (idempotent), after `started` if the host reached `Running`: `start`
    /// fires `started` after releasing `ctl`, so a stop requested at that moment could
    /// otherwise fire `stopping` first. The call that fires `stopping` records when its
    /// callbacks have returned (invariant 9). Returns at once (`fire_lifetime`).
    fn fire_stopping(self: &Arc<Self>, reached_running: bool, reason: StopReason) {
        let watched = self.stopping_event.is_watched()
            || (reached_running && self.started_event.is_watched());
        let _done = self.fire_lifetime(watched, move |shared| {
            if reached_running {
                shared.started_event.stop();
            }
            // One caller claims the firing; it logs, then runs the callbacks, then lets the
            // sequence go on (`stopping_done`): the line always precedes the first stop hook
            // (and the end of the process), whichever thread runs the sequence.
            if std::mem::replace(&mut shared.ctl.lock().stopping_claimed, true) {
                return;
            }
            log::info!("Application is shutting down... ({reason})");
            shared.stopping_event.stop_with(reason);
            let mut ctl = shared.ctl.lock();
            ctl.stopping_done = true;
            shared.cond.notify_all();
        });
    }

    /// Runs `fire`, which fires lifetime events, and returns a token stopped once it returned.
    ///
    /// The events' callbacks are user code that may be slow or hang, and the threads that
    /// fire events are bound by a deadline (`start`, `stop`, `join`) or promised to return
    /// at once (`request_stop`): so if any callback is `watched`, `fire` runs on a thread of
    /// its own, `th:lifetime`, and the caller waits for the token as long as its deadline
    /// allows. Unwatched, or if that thread cannot be spawned, `fire` runs here. Either way
    /// it runs with no lock held (invariant 1), working for the host (invariant 8).
    fn fire_lifetime(
        self: &Arc<Self>,
        watched: bool,
        fire: impl FnOnce(&Shared) + Send + 'static,
    ) -> StopToken {
        let done = StopSource::new();
        let token = done.token();
        let shared = Arc::clone(self);
        let run = move || {
            let _working = crate::thread::work_for(shared.id);
            fire(&shared);
            done.stop();
        };
        if watched {
            crate::thread::spawn_or_run("th:lifetime", run);
        } else {
            run();
        }
        token
    }

    /// Fires the tokens of services `targets` with `reason` (invariant 1: `ctl` is released
    /// meanwhile). Each token is stopped, and its waiters woken, before this returns, so a
    /// hook sent afterwards sees it stopped; its `on_stop` callbacks, user code that may be
    /// slow or hang, run on a thread of their own (`th:<service>:on-stop`) when there are
    /// any, so that they never hold up the sequence nor add up across services. Their end is
    /// recorded (`Record::callbacks`) and awaited, within the service's stop deadline, before
    /// the report: a service whose callbacks overrun is reported timed out.
    fn fire_tokens(&self, ctl: &mut MutexGuard<'_, Ctl>, targets: &[usize], reason: &StopReason) {
        let tokens: Vec<(usize, StopSource, Arc<str>)> = targets
            .iter()
            .map(|&i| {
                let r = &ctl.records[i];
                (i, r.token.clone(), Arc::clone(&r.name))
            })
            .collect();
        let running = MutexGuard::unlocked(ctl, || {
            let mut running = Vec::new();
            for (i, token, name) in tokens {
                let Some(pending) = token.stop_deferred(reason.clone()) else {
                    continue;
                };
                if pending.is_empty() {
                    continue;
                }
                let done = StopSource::new();
                running.push((i, done.token()));
                let id = self.id;
                crate::thread::spawn_or_run(&format!("th:{name}:on-stop"), move || {
                    let _working = crate::thread::work_for(id);
                    pending.run();
                    done.stop();
                });
            }
            running
        });
        for (i, done) in running {
            ctl.records[i].callbacks = Some(done);
        }
    }

    fn start(self: &Arc<Self>, deadline: Deadline) -> Result<(), Error> {
        // Invariant 8: token and lifetime callbacks fired by the start run on this thread.
        let _working = crate::thread::work_for(self.id);
        // Listeners run from the first `start` on (also a stop-before-start's last event).
        #[cfg(feature = "listeners")]
        if let Err(source) = self.events.spawn(HostHandle {
            shared: Arc::clone(self),
        }) {
            // Listeners are part of what the program asked for: not a silent loss.
            log::error!("could not spawn the state-listener thread `th:host-events`: {source}");
        }
        {
            let mut ctl = self.ctl.lock();
            if ctl.state == HostState::Stopped && ctl.records.iter().all(|r| r.service.is_some()) {
                // Stopped before it ever started (a `join` saw the early stop request
                // first): the same outcome as below, start nothing.
                return Ok(());
            }
            if ctl.state != HostState::Created || ctl.start_active {
                return Err(Error::InvalidState {
                    operation: "start",
                    state: ctl.state,
                });
            }
            if ctl.stop_reason.is_some() {
                // A stop requested before start: start nothing, the host is done.
                for r in &mut ctl.records {
                    r.set_state(ServiceState::Skipped);
                }
                ctl.report = Some(StopReport {
                    reason: ctl.stop_reason.clone(),
                    ..StopReport::empty()
                });
                self.set_state(&mut ctl, HostState::Stopped);
                self.cond.notify_all();
                drop(ctl);
                log::info!("Application stopped before it started");
                self.fire_stopped_early(deadline);
                return Ok(());
            }
            ctl.start_active = true;
            self.set_state(&mut ctl, HostState::Starting);
        }
        log::debug!("Hosting starting");
        match self.start_sequence(deadline) {
            Ok(()) => {
                let completed = {
                    let mut ctl = self.ctl.lock();
                    ctl.start_active = false;
                    let completed = ctl.state == HostState::Starting;
                    if completed {
                        ctl.reached_running = true;
                        self.set_state(&mut ctl, HostState::Running);
                    }
                    self.cond.notify_all();
                    completed
                };
                if completed {
                    log::debug!("Hosting started");
                    let watched = self.started_event.is_watched();
                    let done = self.fire_lifetime(watched, |shared| {
                        shared.started_event.stop();
                    });
                    // Its callbacks have returned when `start` does, unless they overrun
                    // the start deadline (they go on, on their own thread).
                    let _done = done.wait_until(deadline);
                } else {
                    log::info!("Start ended early: a stop was requested");
                }
                Ok(())
            }
            Err(error) => {
                // Log first, then transition (and roll back).
                log::error!("Hosting failed to start: {error}");
                let rollback = {
                    let mut ctl = self.ctl.lock();
                    if ctl.stop_reason.is_none() {
                        ctl.stop_reason = Some(StopReason::Requested);
                    }
                    ctl.sequence_active = true;
                    self.set_state(&mut ctl, HostState::Stopping);
                    Deadline::after(self.options.shutdown_timeout)
                };
                self.fire_stopping(false, StopReason::Requested);
                let report = self.stop_sequence(rollback);
                if !report.is_clean() {
                    log::warn!("rollback after the failed start: {report}");
                }
                let _report = self.finish_sequence(report, HostState::Failed, rollback);
                Err(error)
            }
        }
    }

    /// Spawns every thread, then runs the three start phases. `Ok` also when interrupted by
    /// a stop request.
    fn start_sequence(self: &Arc<Self>, deadline: Deadline) -> Result<(), Error> {
        for &i in &self.plan.order {
            if let Err(error) = self.spawn(i) {
                // The threads already spawned wait for a command: tell them to exit.
                let mut ctl = self.ctl.lock();
                // Failed, not `Skipped` (what `abandon_start` makes of a thread-less record).
                ctl.records[i].set_state(ServiceState::Failed);
                self.abandon_start(&mut ctl, StopReason::Requested, false);
                return Err(error);
            }
        }
        let groups: Vec<Vec<usize>> = if self.options.start_concurrently {
            self.plan.levels.clone()
        } else {
            self.plan.order.iter().map(|&i| vec![i]).collect()
        };
        for phase in [Phase::Starting, Phase::Start, Phase::Started] {
            for group in &groups {
                let mut ctl = self.ctl.lock();
                if let Some(reason) = ctl.stop_reason.clone() {
                    self.abandon_start(&mut ctl, reason, true);
                    return Ok(());
                }
                let mut targets = Vec::new();
                for &i in group {
                    let r = &mut ctl.records[i];
                    if !r.hosted && phase != Phase::Start {
                        continue;
                    }
                    if r.start_began.is_none() {
                        r.start_began = Some(Instant::now());
                    }
                    // Only from Created: a later phase must not undo `Running`.
                    if r.state == ServiceState::Created {
                        r.set_state(ServiceState::Starting);
                    }
                    let d = deadline.min_after(r.start_timeout);
                    self.send(&mut ctl, i, Cmd::Phase(phase, d));
                    targets.push((i, d, Await::Reply(phase)));
                }
                let results = self.await_all(&mut ctl, &targets, true);
                let mut error = None;
                for (i, resolution) in results {
                    let r = &mut ctl.records[i];
                    match resolution {
                        Resolution::Done(Ok(())) => {
                            // The state became Running in `reply`, atomically with `started`:
                            // a background body may already have failed and moved it on.
                            if phase == Phase::Started || (phase == Phase::Start && !r.hosted) {
                                r.start_duration = r.start_began.map(|t| t.elapsed());
                            }
                        }
                        Resolution::Done(Err(failure)) => {
                            r.last_error = Some(failure.clone());
                            r.set_state(ServiceState::Failed);
                            error.get_or_insert(Error::StartFailed {
                                service: Arc::clone(&r.name),
                                failure,
                            });
                        }
                        Resolution::TimedOut => {
                            // It missed its deadline: given up on and detached now, so the
                            // rollback does not wait for it (`start` returns by its deadline,
                            // not by the shutdown timeout).
                            r.timed_out = true;
                            r.set_state(ServiceState::TimedOut);
                            error.get_or_insert(Error::StartTimeout {
                                service: Arc::clone(&r.name),
                            });
                        }
                        Resolution::Interrupted => {}
                    }
                }
                if let Some(error) = error {
                    let reason = if matches!(error, Error::StartTimeout { .. }) {
                        StopReason::Deadline
                    } else {
                        StopReason::Requested
                    };
                    self.abandon_start(&mut ctl, reason, false);
                    return Err(error);
                }
                if let Some(reason) = ctl.stop_reason.clone() {
                    self.abandon_start(&mut ctl, reason, true);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Ends a start early: services awaited mid-hook get their token fired and, on a failed
    /// start (`!stop_requested`), are given up on (told to `Finish`); on a stop request they
    /// are left pending for the stop sequence, which waits for their hook to decide whether
    /// they started. Services not started are told to `Exit`. Started ones are left for the
    /// stop sequence (invariant 5).
    fn abandon_start(
        &self,
        ctl: &mut MutexGuard<'_, Ctl>,
        reason: StopReason,
        stop_requested: bool,
    ) {
        let mut fire = Vec::new();
        for i in 0..ctl.records.len() {
            let r = &mut ctl.records[i];
            if r.thread.is_none() || r.exited {
                if !r.started && r.state == ServiceState::Created {
                    r.set_state(ServiceState::Skipped);
                }
                continue;
            }
            if r.awaiting.is_some() && !r.started && stop_requested {
                fire.push(i);
            } else if r.awaiting.is_some() && !r.started {
                r.abandoned = true;
                fire.push(i);
                self.send(ctl, i, Cmd::Finish);
            } else if !r.started {
                if r.state != ServiceState::Failed {
                    r.set_state(ServiceState::Skipped);
                }
                self.send(ctl, i, Cmd::Exit);
            }
        }
        self.fire_tokens(ctl, &fire, &reason);
    }

    fn spawn(self: &Arc<Self>, i: usize) -> Result<(), Error> {
        let (name, kind, stack, token, policy) = {
            let mut ctl = self.ctl.lock();
            let r = &mut ctl.records[i];
            let Some(kind) = r.service.take() else {
                return Ok(());
            };
            (
                Arc::clone(&r.name),
                kind,
                r.stack_size,
                r.token.token(),
                r.policy.clone(),
            )
        };
        let (heartbeat, stop_deadline, liveness) = {
            let ctl = self.ctl.lock();
            let r = &ctl.records[i];
            (
                Arc::clone(&r.heartbeat),
                Arc::clone(&r.body_deadline),
                r.liveness,
            )
        };
        let ctx = Context {
            heartbeat,
            stop_deadline,
            liveness,
            name: Arc::clone(&name),
            token,
            deadline: Deadline::NEVER,
            host: HostHandle {
                shared: Arc::clone(self),
            },
            services: Arc::clone(&self.plan.services),
        };
        let shared = Arc::clone(self);
        let spawned = crate::thread::spawn_named(&format!("th:{name}"), stack, move || {
            runner::service_main(&shared, i, kind, ctx, &policy);
        });
        match spawned {
            Ok(handle) => {
                self.ctl.lock().records[i].thread = Some(handle);
                Ok(())
            }
            Err(source) => Err(Error::Spawn {
                service: name,
                source,
            }),
        }
    }

    /// Waits until every target resolved: replied, exited, passed its deadline, or (if
    /// `interruptible`) a stop was requested. Invariant 3: the predicate is re-checked under
    /// the lock after every wake-up; the wait is bounded by the earliest pending deadline.
    fn await_all(
        &self,
        ctl: &mut MutexGuard<'_, Ctl>,
        targets: &[(usize, Deadline, Await)],
        interruptible: bool,
    ) -> Vec<(usize, Resolution)> {
        let mut pending: Vec<(usize, Deadline, Await)> = targets.to_vec();
        let mut out = Vec::with_capacity(targets.len());
        loop {
            pending.retain(|&(i, d, what)| {
                let r = &mut ctl.records[i];
                let done = match what {
                    Await::Reply(p) => match &r.reply {
                        Some((q, result)) if *q == p => Some(result.clone()),
                        // A thread that exited without replying (the protocol and the
                        // panic guards rule it out): never count a dead service as having
                        // started or stopped cleanly.
                        _ if r.exited => Some(Err(Failure::from_box(
                            format!("the thread of service `{}` ended without replying", r.name)
                                .into(),
                        ))),
                        _ => None,
                    },
                    Await::Exit => r.exited.then_some(Ok(())),
                };
                if let Some(result) = done {
                    if matches!(what, Await::Reply(_)) {
                        r.awaiting = None;
                    }
                    out.push((i, Resolution::Done(result)));
                    return false;
                }
                if d.is_expired() {
                    out.push((i, Resolution::TimedOut));
                    return false;
                }
                true
            });
            if pending.is_empty() {
                return out;
            }
            if interruptible && ctl.stop_reason.is_some() {
                out.extend(
                    pending
                        .iter()
                        .map(|&(i, _, _)| (i, Resolution::Interrupted)),
                );
                return out;
            }
            let earliest = pending
                .iter()
                .map(|&(_, d, _)| d)
                .min()
                .unwrap_or(Deadline::NEVER);
            match earliest.instant() {
                None => self.cond.wait(ctl),
                Some(at) => {
                    let _ = self.cond.wait_until(ctl, at);
                }
            }
        }
    }

    fn stop(self: &Arc<Self>, deadline: Deadline) -> StopReport {
        {
            let ctl = self.ctl.lock();
            if ctl.state == HostState::Created && !ctl.start_active {
                // Stop before start is a no-op: the host can still be started.
                return StopReport::empty();
            }
        }
        self.request_stop(StopReason::Requested);
        if crate::thread::works_for(self.id) {
            return self.stop_from_within(deadline);
        }
        self.await_or_run_sequence(deadline, Caller::Stop)
            .unwrap_or_else(|ctl_report| ctl_report)
    }

    /// `stop` on a thread that works for this host (invariant 8): it must not wait for the
    /// sequence, which may be waiting for this very thread. The stop is requested already;
    /// make sure a thread runs the sequence, and return the report if it is done, else an
    /// incomplete one.
    fn stop_from_within(self: &Arc<Self>, deadline: Deadline) -> StopReport {
        let spawn = {
            let mut ctl = self.ctl.lock();
            if let (true, Some(report)) = (ctl.state.is_terminal(), &ctl.report) {
                return report.clone();
            }
            let spawn = !ctl.sequence_active && !ctl.stopper_spawned;
            ctl.stopper_spawned |= spawn;
            spawn
        };
        if spawn {
            let shared = Arc::clone(self);
            // Runs the sequence once it may (a start in progress ends promptly once a stop is
            // requested), or waits for whoever got there first.
            let spawned = crate::thread::spawn_named("th:host-stop", None, move || {
                let _report = shared.await_or_run_sequence(deadline, Caller::Stopper);
            });
            if let Err(source) = spawned {
                self.ctl.lock().stopper_spawned = false;
                log::error!(
                    "could not spawn `th:host-stop` to stop the host: {source}; \
                     the stop runs in the next `stop`, `join`, `run` or drop of the host"
                );
            }
        }
        let reason = self.ctl.lock().stop_reason.clone();
        StopReport {
            reason,
            complete: false,
            in_progress: true,
            ..StopReport::default()
        }
    }

    fn join(self: &Arc<Self>, deadline: Deadline) -> Result<StopReport, Error> {
        if crate::thread::works_for(self.id) {
            // Invariant 8: the stop sequence may be waiting for this thread.
            let ctl = self.ctl.lock();
            if let (true, Some(report)) = (ctl.state.is_terminal(), &ctl.report) {
                return Ok(report.clone());
            }
            return Err(Error::InvalidState {
                operation: "join, from a thread of its own,",
                state: ctl.state,
            });
        }
        match self.await_or_run_sequence(deadline, Caller::Join) {
            Ok(report) => Ok(report),
            Err(_) => Err(Error::JoinTimeout {
                state: self.state(),
            }),
        }
    }

    /// Returns the final report: stored, or made by this caller running the stop sequence, or
    /// (`Err`) an incomplete one at `deadline` (see [`Caller`] for what the deadline bounds).
    /// A host not asked to stop is waited on.
    fn await_or_run_sequence(
        self: &Arc<Self>,
        deadline: Deadline,
        caller: Caller,
    ) -> Result<StopReport, StopReport> {
        let mut ctl = self.ctl.lock();
        loop {
            if let (true, Some(report)) = (ctl.state.is_terminal(), &ctl.report) {
                return Ok(report.clone());
            }
            if ctl.state == HostState::Created && ctl.stop_reason.is_some() && !ctl.start_active {
                // Asked to stop before it ever started: nothing to stop (as in `start`).
                let report = StopReport {
                    reason: ctl.stop_reason.clone(),
                    ..StopReport::empty()
                };
                for r in &mut ctl.records {
                    r.set_state(ServiceState::Skipped);
                }
                ctl.report = Some(report.clone());
                self.set_state(&mut ctl, HostState::Stopped);
                self.cond.notify_all();
                drop(ctl);
                self.fire_stopped_early(deadline);
                return Ok(report);
            }
            let may_run = ctl.state == HostState::Stopping
                && !ctl.start_active
                && !ctl.sequence_active
                && ctl.report.is_none();
            if may_run {
                ctl.sequence_active = true;
                let d = match caller {
                    Caller::Stop => deadline,
                    Caller::Join => deadline.min(ctl.stop_deadline),
                    // Nobody waits on this thread; its caller asked for "by `deadline`". One
                    // that has passed by now (the caller asked for at once, or this thread ran
                    // late) counts from now: the services, the caller's among them, still get
                    // their one grace from the moment the sequence can reach them.
                    Caller::Stopper => {
                        let d = deadline.min(ctl.stop_deadline);
                        if d.is_expired() {
                            Deadline::after(Duration::ZERO)
                        } else {
                            d
                        }
                    }
                };
                drop(ctl);
                // Invariant 8: token and lifetime callbacks fired by the sequence run here.
                let _working = crate::thread::work_for(self.id);
                let report = self.stop_sequence(d);
                return Ok(self.finish_sequence(report, HostState::Stopped, d));
            }
            // Invariant 4: someone else is starting or stopping; wait for them. The stopper
            // waits without a bound: it must not leave while a start in progress holds the
            // sequence back (that start ends promptly, as a stop was requested).
            let wait = match caller {
                Caller::Stopper => Deadline::NEVER,
                Caller::Stop | Caller::Join => deadline,
            };
            let timed_out = match wait.instant() {
                None => {
                    self.cond.wait(&mut ctl);
                    false
                }
                Some(at) => self.cond.wait_until(&mut ctl, at).timed_out(),
            };
            // The report, not the state: it is stored after the `stopped` callbacks.
            if timed_out && ctl.report.is_none() {
                let mut report = StopReport::empty();
                report.complete = false;
                report.reason = ctl.stop_reason.clone();
                return Err(report);
            }
        }
    }

    /// Enters `end` (Stopped or Failed), fires `stopped`, then stores the report and wakes
    /// the waiters: no `stop`, `join` or `run` returns before the `stopped` callbacks have
    /// returned (invariant 9), unless they overrun the stop's deadline (+ its grace): the
    /// report is then stored without them. Waiters wait for the report, not the state.
    fn finish_sequence(
        self: &Arc<Self>,
        mut report: StopReport,
        end: HostState,
        deadline: Deadline,
    ) -> StopReport {
        {
            let mut ctl = self.ctl.lock();
            report.failure = ctl.host_failure.clone();
            self.set_state(&mut ctl, end);
        }
        log::info!("Application stopped: {report}");
        let watched = self.stopped_event.is_watched();
        let done = self.fire_lifetime(watched, |shared| {
            shared.stopped_event.stop();
        });
        if !done.wait_until(late(deadline)) {
            log::warn!("the `stopped` callbacks did not return by the stop deadline");
        }
        let mut ctl = self.ctl.lock();
        ctl.report = Some(report.clone());
        ctl.sequence_active = false;
        ctl.start_active = false;
        self.cond.notify_all();
        report
    }

    /// A host stopped before it started: fires `stopping` and `stopped`, their callbacks
    /// bounded by `deadline`.
    fn fire_stopped_early(self: &Arc<Self>, deadline: Deadline) {
        let watched = self.stopping_event.is_watched() || self.stopped_event.is_watched();
        let done = self.fire_lifetime(watched, |shared| {
            shared.stopping_event.stop();
            shared.stopped_event.stop();
        });
        let _done = done.wait_until(deadline);
    }

    /// The stop sequence: stopping, stop, stopped phases over the started services in
    /// reverse start order (or by reversed level), then the threads that never started; join
    /// what exited, detach and report what did not.
    fn stop_sequence(self: &Arc<Self>, deadline: Deadline) -> StopReport {
        let began = Instant::now();
        let reverse: Vec<usize> = self.plan.order.iter().rev().copied().collect();
        let groups: Vec<Vec<usize>> = if self.options.stop_concurrently {
            self.plan.levels.iter().rev().cloned().collect()
        } else {
            reverse.iter().map(|&i| vec![i]).collect()
        };
        let mut ctl = self.ctl.lock();
        let reason = ctl.stop_reason.clone().unwrap_or(StopReason::Requested);
        let reached_running = ctl.reached_running;
        // The `stopping` event fires before any `stopping` hook. `request_stop` fires it too,
        // but after releasing `ctl`, so a sequence run by another thread (`join`) could
        // otherwise overtake it. Idempotent; its callbacks are user code (invariant 1).
        MutexGuard::unlocked(&mut ctl, || {
            self.fire_stopping(reached_running, reason.clone());
        });
        // Invariant 9: whoever fired `stopping` (this thread, or the one that requested the
        // stop) has run its callbacks before the first service is stopped; they share the
        // stop deadline with the services.
        while !ctl.stopping_done {
            match deadline.instant() {
                None => self.cond.wait(&mut ctl),
                Some(at) => {
                    if self.cond.wait_until(&mut ctl, at).timed_out() {
                        log::warn!(
                            "the `stopping` callbacks did not return by the stop deadline; \
                             stopping the services anyway"
                        );
                        break;
                    }
                }
            }
        }
        // A start hook still running when a stop request ended the start decides here,
        // within the stop deadline, whether its service started (invariant 5): if it
        // succeeded, the service is stopped in order with the others; if not, it just exits.
        // Its token has fired, so a hook that watches it returns at once.
        let mut pending = Vec::new();
        for i in 0..ctl.records.len() {
            let r = &mut ctl.records[i];
            if let Some(p @ (Phase::Starting | Phase::Start)) = r.awaiting {
                if !r.started && !r.abandoned && !r.timed_out {
                    pending.push((i, late(r.stop_deadline(deadline)), Await::Reply(p)));
                }
            }
        }
        for (i, resolution) in self.await_all(&mut ctl, &pending, false) {
            let r = &mut ctl.records[i];
            match resolution {
                Resolution::Done(Ok(())) if r.started => r.set_state(ServiceState::Running),
                Resolution::Done(result) => {
                    r.set_state(if result.is_err() {
                        ServiceState::Failed
                    } else {
                        ServiceState::Skipped
                    });
                    self.send(&mut ctl, i, Cmd::Exit);
                }
                Resolution::TimedOut | Resolution::Interrupted => {
                    r.abandoned = true;
                    self.give_up(&mut ctl, i);
                }
            }
        }
        // In order while the deadline holds; once it has passed, what is left is stopped all
        // at once below, under one shared grace (invariant 7).
        'ordered: for phase in [Phase::Stopping, Phase::Stop, Phase::Stopped] {
            for group in &groups {
                if deadline.is_expired() {
                    break 'ordered;
                }
                let mut targets = Vec::new();
                let mut fire = Vec::new();
                for &i in group {
                    let r = &mut ctl.records[i];
                    if !r.is_live() {
                        continue;
                    }
                    if !r.hosted && (phase != Phase::Stop || r.exited) {
                        continue;
                    }
                    let d = late(r.stop_deadline(deadline));
                    r.enter_stopping();
                    if phase == Phase::Stop {
                        if !r.hosted {
                            // What its body reads from `Context::deadline`, before the token
                            // fires (so a body woken by the token reads it).
                            r.body_deadline.set(d);
                        }
                        fire.push(i);
                    }
                    if r.hosted {
                        targets.push((i, d, Await::Reply(phase)));
                    } else {
                        targets.push((i, d, Await::Exit));
                    }
                }
                if targets.is_empty() {
                    continue;
                }
                self.fire_tokens(&mut ctl, &fire, &reason);
                // Commands go out after the tokens fired: a `stop` hook always sees its
                // token stopped.
                for &(i, d, what) in &targets {
                    if let Await::Reply(phase) = what {
                        self.send(&mut ctl, i, Cmd::Phase(phase, d));
                    }
                }
                let results = self.await_all(&mut ctl, &targets, false);
                if targets.len() > 1 {
                    // A phase is a barrier across its group (`stop_concurrently`): what a
                    // service waited there for slower ones moves its own deadline (never past
                    // the host's), so a prompt service with a short `stop_timeout` is not
                    // reported timed out because its level had a slow one.
                    let end = Instant::now();
                    for (i, resolution) in &results {
                        let r = &mut ctl.records[*i];
                        if let (Resolution::Done(_), Some(at), Some(own)) =
                            (resolution, r.done_at, r.stop_deadline)
                        {
                            if let Some(own_at) = own.instant() {
                                let waited = end.saturating_duration_since(at);
                                let moved =
                                    own_at.checked_add(waited).map_or(deadline, Deadline::at);
                                r.stop_deadline = Some(moved.min(deadline));
                            }
                        }
                    }
                }
                self.settle(&mut ctl, results);
            }
        }
        // Everything else that has a thread: services left by a deadline that passed (they
        // run their remaining stop hooks on their own threads, all at once), started-and-done,
        // skipped, abandoned, failed starts. Their tokens fire so that an abandoned start can
        // give up; then await exits.
        let mut fire = Vec::new();
        let mut targets = Vec::new();
        let mut alone = Vec::new();
        for &i in &reverse {
            let r = &mut ctl.records[i];
            if r.thread.is_some() && !r.exited && !r.timed_out {
                let d = late(r.stop_deadline(deadline));
                if !r.hosted {
                    // As in the ordered phases: set before the token fires.
                    r.body_deadline.set(d);
                }
                fire.push(i);
                if r.is_live() {
                    r.enter_stopping();
                    if r.hosted {
                        alone.push((i, d));
                    }
                }
                targets.push((i, d, Await::Exit));
            }
        }
        self.fire_tokens(&mut ctl, &fire, &reason);
        // After the tokens fired, as above. A hosted service that already ran its `stopped`
        // hook has returned and never reads this.
        for (i, d) in alone {
            self.send(&mut ctl, i, Cmd::StopAlone(d));
        }
        let results = self.await_all(&mut ctl, &targets, false);
        self.settle(&mut ctl, results);
        // The tokens' `on_stop` callbacks (`fire_tokens`) are part of each service's stop:
        // awaited within its stop deadline (+ the grace once it passed), with `ctl` released;
        // a service whose callbacks still run then is reported timed out.
        let callbacks: Vec<(usize, StopToken, Deadline)> = ctl
            .records
            .iter_mut()
            .enumerate()
            .filter_map(|(i, r)| {
                let done = r.callbacks.take()?;
                let d = late(r.stop_deadline(deadline));
                (!r.timed_out).then_some((i, done, d))
            })
            .collect();
        if !callbacks.is_empty() {
            let overran: Vec<usize> = MutexGuard::unlocked(&mut ctl, || {
                callbacks
                    .into_iter()
                    .filter(|(_, done, d)| !done.wait_until(*d))
                    .map(|(i, _, _)| i)
                    .collect()
            });
            for i in overran {
                let r = &mut ctl.records[i];
                r.timed_out = true;
                r.set_state(ServiceState::TimedOut);
                let name = Arc::clone(&r.name);
                MutexGuard::unlocked(&mut ctl, || {
                    log::warn!(
                        "the on_stop callbacks of service `{name}` did not return by the deadline; \
                         they are left running"
                    );
                });
            }
        }
        // Invariant 6: join exited threads (they only have to return), detach the rest.
        let mut joins = Vec::new();
        let mut report = StopReport {
            reason: Some(reason),
            complete: true,
            ..StopReport::default()
        };
        for &i in &reverse {
            let r = &mut ctl.records[i];
            if r.exited {
                joins.push(r.thread.take());
            } else if r.thread.is_some() {
                // Detached: dropping the handle lets the thread run on; it is reported.
                drop(r.thread.take());
            }
            let outcome = if r.timed_out || (r.abandoned && !r.exited) {
                Outcome::TimedOut
            } else if !r.started {
                Outcome::NotStarted
            } else if let (ServiceState::Failed, Some(f)) = (r.state, &r.last_error) {
                Outcome::Failed(f.clone())
            } else {
                Outcome::Stopped
            };
            if r.started && !r.timed_out && !matches!(r.state, ServiceState::Failed) {
                r.set_state(ServiceState::Stopped);
            }
            let duration = r
                .stop_began
                .map_or(Duration::ZERO, |t| r.stop_duration.unwrap_or(t.elapsed()));
            report.services.push(ServiceReport {
                name: Arc::clone(&r.name),
                outcome,
                duration,
            });
        }
        drop(ctl);
        for handle in joins.into_iter().flatten() {
            // The thread set `exited` as its last act; this join only waits for it to return.
            let _ = handle.join();
        }
        report.elapsed = began.elapsed();
        report
    }

    /// Records how each awaited stop step ended: its duration, a failed hook, or a service
    /// given up on.
    fn settle(&self, ctl: &mut MutexGuard<'_, Ctl>, results: Vec<(usize, Resolution)>) {
        for (i, resolution) in results {
            match resolution {
                Resolution::Done(result) => {
                    // The last step to finish sets the final figure.
                    let r = &mut ctl.records[i];
                    r.stop_duration = r.stop_began.map(|t| t.elapsed());
                    if let Err(failure) = result {
                        let name = Arc::clone(&r.name);
                        let old = r.last_error.replace(failure.clone());
                        r.set_state(ServiceState::Failed);
                        // Invariant 1: the logger and the error's `Display` and `Drop` are
                        // user code.
                        MutexGuard::unlocked(ctl, || {
                            log::error!("service `{name}` failed to stop: {failure}");
                            drop(old);
                        });
                    }
                }
                Resolution::TimedOut | Resolution::Interrupted => self.give_up(ctl, i),
            }
        }
    }

    /// A service missed its deadline: fire its token, tell it to finish alone, detach it.
    fn give_up(&self, ctl: &mut MutexGuard<'_, Ctl>, i: usize) {
        let name = {
            let r = &mut ctl.records[i];
            r.timed_out = true;
            r.set_state(ServiceState::TimedOut);
            r.stop_duration = r.stop_began.map(|t| t.elapsed());
            Arc::clone(&r.name)
        };
        self.send(ctl, i, Cmd::Finish);
        // Invariant 1: the logger is user code.
        MutexGuard::unlocked(ctl, || {
            log::warn!("service `{name}` did not stop by the deadline; its thread is left running");
        });
        self.fire_tokens(ctl, &[i], &StopReason::Deadline);
    }

    // ---- called from service threads (runner.rs) ----

    /// Blocks the service thread until the host sends it a command.
    pub(crate) fn next_cmd(&self, i: usize) -> Cmd {
        let mut ctl = self.ctl.lock();
        loop {
            if let Some(cmd) = ctl.records[i].cmd.take() {
                return cmd;
            }
            self.cmd_conds[i].wait(&mut ctl);
        }
    }

    /// Records a phase's result (invariant 3). A start that succeeds after the host gave up
    /// does not count as started (invariant 5).
    ///
    /// Returns whether the host had given up on this service (`Record::abandoned`), read in
    /// the same critical section: it cannot change afterwards for a service that replied, as
    /// the host abandons only services it still awaits (`abandon_start`). This spares the
    /// background runner a second lock of `ctl` right after it woke the host, where it often
    /// contended with the host (the futex count is in RELIABILITY.md, "Speed").
    pub(crate) fn reply(&self, i: usize, phase: Phase, result: Result<(), Failure>) -> bool {
        let mut ctl = self.ctl.lock();
        let r = &mut ctl.records[i];
        if phase == Phase::Start && result.is_ok() && !r.abandoned {
            // Together, under the lock: from here a background body runs and may change the
            // state itself (fail, complete); the sequencer must not overwrite it later.
            r.started = true;
            r.set_state(ServiceState::Running);
        }
        // The values replaced may hold the last reference to a user's error: dropped after
        // the lock is released (invariant 1: a `Drop` is user code).
        let old_error = match &result {
            Err(f) => r.last_error.replace(f.clone()),
            Ok(()) => None,
        };
        let old_reply = r.reply.replace((phase, result));
        r.done_at = Some(Instant::now());
        let abandoned = r.abandoned;
        self.cond.notify_all();
        drop(ctl);
        drop((old_error, old_reply));
        abandoned
    }

    /// The service thread is done; its last act (invariant 6).
    pub(crate) fn mark_exited(&self, i: usize) {
        let mut ctl = self.ctl.lock();
        ctl.records[i].exited = true;
        ctl.records[i].done_at = Some(Instant::now());
        self.cond.notify_all();
    }

    pub(crate) fn set_service_state(&self, i: usize, state: ServiceState) {
        self.ctl.lock().records[i].set_state(state);
    }

    /// A body failure: record it (the restart, if any, is counted when it happens).
    pub(crate) fn record_failure(&self, i: usize, failure: &Failure, state: ServiceState) {
        let old = {
            let mut ctl = self.ctl.lock();
            let r = &mut ctl.records[i];
            let old = r.last_error.replace(failure.clone());
            r.set_state(state);
            old
        };
        // Invariant 1: the previous failure may hold the last reference to a user's error,
        // whose `Drop` is user code: dropped with no lock held.
        drop(old);
    }

    /// The backoff is over and the body runs again: count the restart. The state goes back to
    /// `Running` only from `Restarting`, so a stop that began meanwhile (state `Stopping`) is
    /// not overwritten.
    pub(crate) fn record_restart(&self, i: usize) {
        let mut ctl = self.ctl.lock();
        let r = &mut ctl.records[i];
        r.restarts = r.restarts.saturating_add(1);
        if r.state == ServiceState::Restarting {
            r.set_state(ServiceState::Running);
        }
    }

    /// A failure under `StopHost`: remember the first one, then request the stop.
    pub(crate) fn fail_host(self: &Arc<Self>, i: usize, failure: Failure) {
        let (name, old) = {
            let mut ctl = self.ctl.lock();
            let name = Arc::clone(&ctl.records[i].name);
            let old = ctl.records[i].last_error.replace(failure.clone());
            ctl.records[i].set_state(ServiceState::Failed);
            if ctl.host_failure.is_none() {
                ctl.host_failure = Some((Arc::clone(&name), failure));
            }
            (name, old)
        };
        // Invariant 1: a user's error value is dropped with no lock held.
        drop(old);
        self.request_stop(StopReason::Failure { service: name });
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostHandle")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// A [`HostHandle`] that does not keep the host alive: what the console lifetime keeps for
/// each host that asked for it, so that it never reaches into `Shared`.
#[cfg(feature = "termination")]
#[derive(Clone, Debug)]
pub(crate) struct WeakHostHandle(std::sync::Weak<Shared>);

#[cfg(feature = "termination")]
impl HostHandle {
    pub(crate) fn downgrade(&self) -> WeakHostHandle {
        WeakHostHandle(Arc::downgrade(&self.shared))
    }
}

#[cfg(feature = "termination")]
impl WeakHostHandle {
    /// The handle, if the host still exists.
    pub(crate) fn upgrade(&self) -> Option<HostHandle> {
        self.0.upgrade().map(|shared| HostHandle { shared })
    }

    /// `true` once the host is gone.
    pub(crate) fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}
