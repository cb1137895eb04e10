//! [`Host`], [`HostHandle`] and the lifecycle sequencer.
//!
//! The host is the root of a tree of groups and services (`tree`). One sequencer drives it:
//! the start of a scope (`start`) and the stop of a scope (`stop`), where a scope is the
//! whole tree (the host's `start`, `stop`, `join`), or the part a change or a group's
//! supervisor starts or stops (`tree`). The shared control state is `control`; the service
//! threads' side is `runner`; the start order is `plan`.
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
//!    start, a change or the stop sequence) is made under `ctl` and followed by
//!    `cond.notify_all()` before the lock is released; every wait re-checks its predicate
//!    under `ctl` in a loop bounded by its deadline. A command to a service thread is
//!    likewise stored under `ctl` and announced on that service's own condvar
//!    (`Record::cmd_cond`).
//! 4. One sequence at a time (`Ctl::activity`): the host's start, a change to the tree, or
//!    the host's stop; other callers of `stop`/`join` wait on `cond` for the stored report,
//!    and a change waits for its turn (`tree`, invariant 1).
//! 5. A service is stopped only if its `start` hook succeeded and the host did not give up on
//!    it first (`Life::Started`). A service given up on while starting (`Life::Abandoned`)
//!    is told to `Finish`: if its start later succeeds, its own thread runs its stop hooks.
//!    A start hook still running when a stop request ends the start is not given up on: the
//!    stop sequence awaits its reply (within the stop deadline) before the stop phases.
//! 6. A service thread is joined only after it set `Record::exited` (it has nothing left to do
//!    but return), so a join never blocks past a deadline. A thread that has not exited by the
//!    deadline is detached, its service marked `TimedOut`, and named in the report.
//! 7. A deadline is computed once per public call (`start`, `stop`, `join`, `run`, each
//!    change) and passed down; a per-service timeout only ever shortens it. Past the stop
//!    deadline the sequence keeps one grace in total (`LATE_GRACE`), never one per service or
//!    phase: every wait of a stop ends by `deadline + LATE_GRACE`, and once the deadline has
//!    passed the services still to stop are stopped all at once (tokens fired, each runs its
//!    remaining stop hooks on its own thread), not one after another, judged from when their
//!    tokens fired with the grace grown by 50 µs per late service (`stop::stop_the_rest`).
//! 8. A thread that works for the host (`crate::thread`: a service thread, a thread spawned
//!    from one, a thread running a sequence or firing a lifetime event) never waits for the
//!    stop sequence: the sequence may be waiting for it. `stop` there requests the stop,
//!    makes sure a thread runs the sequence (`th:host-stop`, spawned once, if no other caller
//!    is running it), and returns an incomplete report; `join` there is refused.
//! 9. Lifetime events are ordered whoever requested the stop: the `stopping` callbacks have
//!    returned (`Ctl::stopping_done`, or the stop deadline passed) before the first service
//!    stop hook runs, and the `stopped` callbacks have returned before the report is stored
//!    (so before `stop`, `join` or `run` return it to anyone).

mod builder;
pub(crate) mod control;
#[cfg(feature = "listeners")]
mod events;
mod heartbeat;
mod options;
pub(crate) mod plan;
pub(crate) mod reload;
mod runner;
mod start;
mod stop;
pub(crate) mod tree;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use builder::HostBuilder;
#[cfg(feature = "listeners")]
pub use events::{HostEvent, StateChange};
pub use options::HostOptions;
pub use reload::{ReloadEntry, ReloadOutcome, ReloadReport};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::group::{Child, Group};
use crate::report::StopReport;
use crate::service::Service;
use crate::state::{HostSnapshot, HostState};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::sync::{AtomicU8, Condvar, Mutex};
use control::{Activity, Ctl, NodeId, ROOT, Shared};
#[cfg(feature = "listeners")]
use events::Events;
#[cfg(feature = "listeners")]
pub(crate) use events::{Listener, Listeners};
pub(crate) use heartbeat::Heartbeat;

/// What the builder hands the host besides its tree.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) console_lifetime: bool,
    /// The typed service registry, shared with every service's `Context`.
    pub(crate) services: Arc<crate::scope::Registry>,
    #[cfg(feature = "listeners")]
    pub(crate) listeners: Listeners,
    /// Where the HTTP endpoint listens, if it has one (`HostHandle::http_addr`).
    #[cfg(feature = "http")]
    pub(crate) http: Option<Arc<crate::http::Bound>>,
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
/// [`Context::host`](crate::Context::host).
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
    pub(crate) fn new(options: HostOptions, children: Vec<Child>, mut plan: Plan) -> Host {
        #[cfg(feature = "listeners")]
        let events = Arc::new(Events::new(std::mem::take(&mut plan.listeners.0)));
        #[cfg(feature = "listeners")]
        let sender = || events.sender();
        #[cfg(not(feature = "listeners"))]
        let sender = || ();
        let mut ctl = Ctl {
            state: HostState::Created,
            activity: Activity::Idle,
            stop_reason: None,
            stop_deadline: Deadline::NEVER,
            report: None,
            host_failure: None,
            reached_running: false,
            stopping_done: false,
            stopping_claimed: false,
            stopper_spawned: false,
            never_started: false,
            records: BTreeMap::new(),
            groups: BTreeMap::from([(ROOT, tree::root(&options))]),
            leaving: Vec::new(),
            next_id: ROOT,
            reload: reload::ReloadCtl::default(),
        };
        for child in children {
            let node = tree::insert(&mut ctl, ROOT, child, &options, &sender);
            tree::attach(&mut ctl, ROOT, node, false);
        }
        tree::replan(&mut ctl, ROOT);
        Host {
            shared: Arc::new(Shared {
                id: crate::thread::new_host_id(),
                options,
                plan,
                state: AtomicU8::new(HostState::Created as u8),
                ctl: Mutex::new(ctl),
                cond: Condvar::new(),
                started_event: StopSource::new(),
                stopping_event: StopSource::new(),
                stop_requested: StopSource::new(),
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
    /// the report as timed out — never silently forgotten. With state listeners
    /// ([`HostBuilder::on_state_change`](crate::HostBuilder::on_state_change)), it then waits,
    /// within the same deadline, until they have seen the host's final state, so that a
    /// program exiting right after `stop` does not lose its last systemd `STATUS=` line (a
    /// listener that makes no progress for a second is not waited for, as with
    /// [`run`](Host::run); nor are the listeners when `stop` is called from one of the host's
    /// own threads, whose report is in progress).
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
        let deadline = deadline.into();
        let report = self.shared.stop(deadline);
        // The last state change reaches the listeners (e.g. systemd's STATUS) before the
        // program goes on to exit, within what is left of the deadline. Not on a thread that
        // works for the host (its report is in progress): the event thread may be this one.
        #[cfg(feature = "listeners")]
        if !report.is_in_progress() {
            self.shared.events.flush(deadline);
        }
        report
    }

    /// Waits until a stop is requested ([`HostHandle::request_stop`], a service failing
    /// under `StopHost`, a signal) and the stop sequence it triggers has finished; returns the
    /// report. If no one else is running the stop sequence, this caller runs it, under the
    /// earlier of `deadline` and the stop request's time plus
    /// [`HostOptions::shutdown_timeout`].
    ///
    /// Blocks until then or until `deadline` passes. With state listeners, it then waits,
    /// within the same deadline, until they have seen the host's final state (as
    /// [`stop`](Host::stop) does).
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
        let deadline = deadline.into();
        let result = self.shared.join(deadline);
        // As `stop`: the listeners see the final state before the program goes on, within
        // the deadline; never on the host's own threads (the event thread may be this one).
        #[cfg(feature = "listeners")]
        if result.is_ok() && !crate::thread::works_for(self.shared.id) {
            self.shared.events.flush(deadline);
        }
        result
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
    /// - [`Error::ServiceFailed`]: a service failed under [`Policy::StopHost`](crate::Policy::StopHost) (with the
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
                    crate::logging::info!("Application started. Press Ctrl+C to shut down.");
                } else {
                    crate::logging::info!("Application started.");
                }
                self.join(Deadline::NEVER)
            });
        // The last state change reaches the listeners (e.g. systemd's STATUS) before the
        // program goes on to exit.
        #[cfg(feature = "listeners")]
        self.shared.events.flush(Deadline::NEVER);
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
            crate::logging::warn!("host dropped while running; {report}");
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

    /// The address the [HTTP endpoint](crate::HostBuilder::http_endpoint) listens on: `Some`
    /// from its service's start (the first of the host's) until its stop (the last), `None`
    /// otherwise and for a host without one. With a port of 0, the port the system picked.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[must_use]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.plan.http.as_ref().and_then(|b| b.get())
    }

    /// Every service's state, restarts, last error, start/stop durations and liveness, in
    /// tree order (depth first, children in the order they were added), each named by its
    /// path; and every group's state, restarts and children.
    ///
    /// Takes the lifecycle lock briefly (it is never held across a wait or user code);
    /// the services' [metrics](Service::metrics) callbacks run after it is released.
    #[must_use]
    pub fn snapshot(&self) -> HostSnapshot {
        let (mut snapshot, metrics) = {
            let ctl = self.shared.ctl.lock();
            let order = ctl.tree_order();
            let mut groups = Vec::new();
            ctl.walk(ROOT, &mut |node| {
                if let NodeId::Group(g) = node {
                    let group = ctl.group(g);
                    let mut status = group.status();
                    status.children = group
                        .children
                        .iter()
                        .map(|&c| match c {
                            NodeId::Service(i) => Arc::clone(&ctl.rec(i).path),
                            NodeId::Group(c) => Arc::clone(&ctl.group(c).path),
                        })
                        .collect();
                    groups.push(status);
                }
            });
            let snapshot = HostSnapshot {
                state: ctl.state,
                services: order.iter().map(|&i| ctl.rec(i).status()).collect(),
                groups,
            };
            let metrics: Vec<_> = order.iter().map(|&i| ctl.rec(i).metrics.clone()).collect();
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

    /// Adds `service` to the running group at `group` (`""`: the top level) and starts it
    /// under `deadline`, after the siblings it [depends on](Service::depends_on). Returns
    /// once it started; if its start fails, panics or overruns, it is stopped again (within
    /// [`HostOptions::shutdown_timeout`]), removed, and the error returned.
    ///
    /// A change to the tree waits for the host's start, or another change, to finish (until
    /// `deadline`); it is refused once a stop was requested.
    ///
    /// # Errors
    ///
    /// - [`Error::UnknownChild`]: no group at `group`; [`Error::InvalidOption`]: `group`
    ///   names a service, or the service's name or settings are invalid.
    /// - [`Error::DuplicateService`]: the group has a child of that name.
    /// - [`Error::UnknownDependency`]: it depends on a name no sibling has.
    /// - [`Error::InvalidState`]: the host is not running (not started yet, stopping,
    ///   stopped), or this is a service the host is starting or stopping, asking it to wait
    ///   for itself.
    /// - [`Error::ChangeTimeout`]: another change held the tree until `deadline`.
    /// - [`Error::StartFailed`], [`Error::StartTimeout`], [`Error::Spawn`]: its start failed
    ///   (rolled back).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Service};
    ///
    /// let host = HostBuilder::new()
    ///     .group("devices", |g| g)
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let handle = host.handle();
    /// let poller = Service::background("plc-9", |ctx| { ctx.token().wait(); Ok(()) });
    /// handle.add_service("devices", poller, Duration::from_secs(5))?;
    /// let report = handle.remove("devices/plc-9", Duration::from_secs(5))?;
    /// assert!(report.is_clean());
    /// # assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn add_service(
        &self,
        group: &str,
        service: impl Into<Service>,
        deadline: impl Into<Deadline>,
    ) -> Result<(), Error> {
        self.shared
            .add_child(group, Child::Service(service.into()), deadline.into())
    }

    /// Adds `group` (and everything in it) to the running group at `parent` (`""`: the top
    /// level) and starts it under `deadline`, as [`add_service`](HostHandle::add_service)
    /// does: on a failed start, what started is stopped, the group removed, and the error
    /// returned.
    ///
    /// # Errors
    ///
    /// Those of [`add_service`](HostHandle::add_service), for any service in the group.
    pub fn add_group(
        &self,
        parent: &str,
        group: Group,
        deadline: impl Into<Deadline>,
    ) -> Result<(), Error> {
        self.shared
            .add_child(parent, Child::Group(group), deadline.into())
    }

    /// Stops the child at `path` (a service, or a group and everything in it: in reverse
    /// start order, sharing `deadline`, as a host stop) and removes it from the tree.
    /// Returns by `deadline` (plus the one grace of a stop) whatever a service does; a
    /// service that overran is left running, detached, and named in the report.
    ///
    /// Called from a thread of the subtree it removes (a service removing itself or its own
    /// group), it cannot wait for its own thread: it runs on a thread of its own and
    /// returns at once a report [in progress](StopReport::is_in_progress).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownChild`], [`Error::InvalidOption`] (`""`: the host itself),
    /// [`Error::InvalidState`], [`Error::ChangeTimeout`], as for
    /// [`add_service`](HostHandle::add_service).
    pub fn remove(&self, path: &str, deadline: impl Into<Deadline>) -> Result<StopReport, Error> {
        self.shared.remove(path, deadline.into())
    }

    /// Stops the child at `path` as [`remove`](HostHandle::remove) does, but leaves it in the
    /// tree, stopped: a partial shutdown. [`restart_child`](HostHandle::restart_child)
    /// starts it again.
    ///
    /// # Errors
    ///
    /// Those of [`remove`](HostHandle::remove).
    pub fn stop_child(
        &self,
        path: &str,
        deadline: impl Into<Deadline>,
    ) -> Result<StopReport, Error> {
        self.shared.stop_child(path, deadline.into())
    }

    /// Stops the child at `path` (if it runs) and starts it again, both under `deadline`. On a
    /// failed start what started is stopped again (within
    /// [`HostOptions::shutdown_timeout`]), and the child is left stopped, `Failed`.
    ///
    /// Called from a thread of that child, it runs on a thread of its own and returns
    /// `Ok(())` at once.
    ///
    /// # Errors
    ///
    /// Those of [`remove`](HostHandle::remove); the start errors of
    /// [`add_service`](HostHandle::add_service); [`Error::StillRunning`]: a service of the
    /// child missed a stop deadline earlier and its thread still runs.
    pub fn restart_child(&self, path: &str, deadline: impl Into<Deadline>) -> Result<(), Error> {
        self.shared.restart_child(path, deadline.into())
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
#[cfg(any(feature = "termination", feature = "http"))]
#[derive(Clone, Debug)]
pub(crate) struct WeakHostHandle(std::sync::Weak<Shared>);

#[cfg(any(feature = "termination", feature = "http"))]
impl HostHandle {
    pub(crate) fn downgrade(&self) -> WeakHostHandle {
        WeakHostHandle(Arc::downgrade(&self.shared))
    }
}

#[cfg(any(feature = "termination", feature = "http"))]
impl WeakHostHandle {
    /// The handle, if the host still exists.
    pub(crate) fn upgrade(&self) -> Option<HostHandle> {
        self.0.upgrade().map(|shared| HostHandle { shared })
    }

    /// `true` once the host is gone.
    #[cfg_attr(not(feature = "termination"), allow(dead_code))]
    pub(crate) fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}
