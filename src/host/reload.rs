//! Reloads: [`HostHandle::reload`] and [`HostHandle::request_reload`] run the services'
//! reload hooks ([`Service::on_reload`](crate::Service::on_reload)) and report them in a
//! [`ReloadReport`]. With the console lifetime, `SIGHUP` requests one.
//!
//! # Invariants
//!
//! 1. One reload at a time (`Ctl::reload.running`, changed under `ctl`). Requests
//!    coalesce: [`request_reload`](HostHandle::request_reload) during a reload marks one more
//!    as pending, and however many arrive, one more runs after the current one (it sees
//!    every change they asked it to see), unless a stop was requested meanwhile (a stopping
//!    host reloads nothing). [`reload`](HostHandle::reload) during a reload is
//!    refused ([`Error::ReloadInProgress`]): it cannot wait for the reload it may be called
//!    from (a hook), and refusing is what a caller can act on.
//! 2. Hooks are user code: they run on a thread of their own, `th:reload`, one at a time in
//!    the host's start order, with no threadhost lock held and their panics caught; never on
//!    the caller's thread (a signal thread, a service's thread, another hook).
//!    `th:reload` works for the host (`crate::thread`): a hook that calls `join` on its own
//!    host is refused instead of waiting for itself.
//! 3. The caller waits for the hooks until the reload's deadline (computed once), then ends
//!    the reload whatever a hook does: a hook still running is reported `TimedOut` and the
//!    hooks after it are not run (`th:reload` is told, under the progress lock, and checks
//!    before each hook). A hook still running from an earlier reload is never called again
//!    while it runs: the later reload reports it not run.
//! 4. A reload never changes the host's or a service's state, and never stops anything: a
//!    failing hook is logged (its service named, its error on one line) and reported. A
//!    reload begins only while the host is `Running`; once a stop is requested, the hooks
//!    not yet run are not run, and only services `Running` at their turn are reloaded.
//! 5. Listeners see [`StateChange::Reloading`](crate::StateChange::Reloading) when a reload
//!    begins and [`StateChange::Reloaded`](crate::StateChange::Reloaded) when it ends, both
//!    produced under `ctl` (events.rs, invariant 1): each reload's pair is in order and
//!    before the next reload's. A pending reload begins in the critical section that ends
//!    the one before it.
//! 6. A stop does not wait for a reload hook (it cannot interrupt user code): a hook still
//!    running when the host has stopped runs on, on its detached `th:reload` thread, and is
//!    named in a warning after the stop's report. Its context keeps the host's parts alive
//!    (the C hooks' user data included) until it returns.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::failure::Failure;
use crate::host::HostHandle;
use crate::host::control::{NodeId, ROOT, Shared};
use crate::service::{Context, ReloadFn};
use crate::state::{HostState, ServiceState};
use crate::sync::{Condvar, Mutex};

/// A service's reload hook and whether it is running (invariant 3).
pub(crate) struct Hook {
    f: ReloadFn,
    busy: AtomicBool,
}

impl Hook {
    pub(crate) fn new(f: ReloadFn) -> Arc<Hook> {
        Arc::new(Hook {
            f,
            busy: AtomicBool::new(false),
        })
    }
}

/// The reload part of the host's control state (invariant 1).
#[derive(Debug, Default)]
pub(crate) struct ReloadCtl {
    /// A reload is in progress.
    running: bool,
    /// `request_reload` was called during it: one more runs after it.
    pending: bool,
}

/// How one service's reload hook ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The hook returned `Ok(())`.
    Reloaded,
    /// The hook returned an error or panicked; the service and the host go on.
    Failed(Failure),
    /// The hook was still running at the reload's deadline; it runs on, and the hooks after
    /// it were not run.
    TimedOut,
    /// The hook was not run, for the reason given: the deadline passed before its turn, the
    /// host began to stop, the service was not running, or its hook from an earlier reload
    /// still runs.
    NotRun(&'static str),
}

impl fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadOutcome::Reloaded => f.write_str("reloaded"),
            ReloadOutcome::Failed(e) => {
                use fmt::Write as _;
                write!(crate::text::Escaping(&mut *f), "failed: {e}")
            }
            ReloadOutcome::TimedOut => f.write_str("timed out (still running)"),
            ReloadOutcome::NotRun(why) => write!(f, "not run ({why})"),
        }
    }
}

/// One service of a [`ReloadReport`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReloadEntry {
    /// The service's path in the tree (its name at the top level).
    pub name: Arc<str>,
    /// How its hook ended.
    pub outcome: ReloadOutcome,
    /// How long its hook ran (zero if it was not run; until the deadline if it timed out).
    pub duration: Duration,
}

/// What a reload did: one entry per service with a reload hook, in the order the hooks were
/// called (the host's start order).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Every service with a reload hook.
    pub services: Vec<ReloadEntry>,
    /// How long the reload took.
    pub elapsed: Duration,
}

impl ReloadReport {
    /// `true` when every hook returned `Ok(())` (also when there was none).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.services
            .iter()
            .all(|e| matches!(e.outcome, ReloadOutcome::Reloaded))
    }

    /// The entry of the service at `path`.
    #[must_use]
    pub fn service(&self, path: &str) -> Option<&ReloadEntry> {
        self.services.iter().find(|e| &*e.name == path)
    }

    /// `true` when the reload's deadline ended it before every hook had run: a hook was still
    /// running then ([`TimedOut`](ReloadOutcome::TimedOut)), or hooks were left
    /// [not run](ReloadOutcome::NotRun) because the deadline passed before their turn.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.services.iter().any(|e| match e.outcome {
            ReloadOutcome::TimedOut => true,
            ReloadOutcome::NotRun(why) => why == NOT_RUN_DEADLINE,
            _ => false,
        })
    }

    /// The services whose hook did not end `Reloaded`.
    #[must_use]
    pub fn failed(&self) -> Vec<&ReloadEntry> {
        self.services
            .iter()
            .filter(|e| !matches!(e.outcome, ReloadOutcome::Reloaded))
            .collect()
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failed();
        let n = self.services.len();
        write!(
            f,
            "reload: {} of {n} service(s) reloaded in {:?}",
            n - failed.len(),
            self.elapsed
        )?;
        for e in failed {
            use fmt::Write as _;
            write!(
                crate::text::Escaping(&mut *f),
                "; `{}` {}",
                e.name,
                e.outcome
            )?;
        }
        Ok(())
    }
}

/// Why a hook was not run when the reload's deadline passed before its turn.
const NOT_RUN_DEADLINE: &str = "the deadline passed before its turn";

/// One hook to call, with what it is called with.
struct Item {
    id: crate::host::control::Id,
    name: Arc<str>,
    hook: Arc<Hook>,
    ctx: Context,
}

/// What `th:reload` and the caller share (invariant 3).
struct Progress {
    /// The outcome of each item, as it ends.
    results: Vec<Option<(ReloadOutcome, Duration)>>,
    /// The item whose hook runs now, and since when.
    current: Option<(usize, Instant)>,
    /// The caller gave up (the deadline): run no more hooks.
    cancelled: bool,
    /// `th:reload` is done.
    done: bool,
}

struct Run {
    progress: Mutex<Progress>,
    cond: Condvar,
}

impl Shared {
    /// `true` if a service of the host has a reload hook.
    #[cfg(all(unix, feature = "termination"))]
    pub(crate) fn has_reload_hooks(&self) -> bool {
        self.ctl.lock().records.values().any(|r| r.reload.is_some())
    }

    /// Logs the services whose reload hook still runs (invariant 6); called once the host
    /// has stopped.
    pub(crate) fn warn_reload_hooks_running(&self) {
        let running: Vec<String> = {
            let ctl = self.ctl.lock();
            ctl.records
                .values()
                .filter(|r| {
                    r.reload
                        .as_ref()
                        .is_some_and(|h| h.busy.load(Ordering::Acquire))
                })
                .map(|r| format!("`{}`", crate::text::one_line(&r.path)))
                .collect()
        };
        if !running.is_empty() {
            crate::logging::warn!(
                "reload hook(s) still running after the host stopped: {}; left running on \
                 the detached reload thread `th:reload`",
                running.join(", ")
            );
        }
    }

    /// Claims the reload (invariant 1) and tells the listeners, or says why not.
    fn begin_reload(&self, coalesce: bool) -> Result<bool, Error> {
        let mut ctl = self.ctl.lock();
        if ctl.state != HostState::Running || ctl.stop_reason.is_some() {
            let state = if ctl.stop_reason.is_some() && !ctl.state.is_terminal() {
                HostState::Stopping
            } else {
                ctl.state
            };
            return Err(Error::InvalidState {
                operation: "reload",
                state,
            });
        }
        if ctl.reload.running {
            if coalesce {
                ctl.reload.pending = true;
                return Ok(false);
            }
            return Err(Error::ReloadInProgress);
        }
        ctl.reload.running = true;
        #[cfg(feature = "listeners")]
        self.events.emit(crate::host::StateChange::Reloading);
        Ok(true)
    }

    /// `HostHandle::reload`.
    pub(crate) fn reload(self: &Arc<Self>, deadline: Deadline) -> Result<ReloadReport, Error> {
        self.begin_reload(false)?;
        Ok(self.run_reload(deadline))
    }

    /// `HostHandle::request_reload`.
    pub(crate) fn request_reload(self: &Arc<Self>) -> Result<(), Error> {
        if self.begin_reload(true)? {
            self.spawn_reload();
        }
        Ok(())
    }

    /// Runs a claimed reload on a thread of its own, under the default reload timeout.
    fn spawn_reload(self: &Arc<Self>) {
        let shared = Arc::clone(self);
        // `spawn_or_run`: the reload is claimed, so it must run (here if no thread can be had).
        crate::thread::spawn_or_run("th:reload-wait", move || {
            let _ = shared.run_reload(Deadline::after(shared.options.reload_timeout));
        });
    }

    /// Runs a claimed reload (invariant 3) and ends it (invariant 5); starts the pending one.
    fn run_reload(self: &Arc<Self>, deadline: Deadline) -> ReloadReport {
        // A logger is user code: its panic must neither leave the reload claimed for ever
        // (the end runs whatever happens) nor cost the hooks their run or the caller and the
        // listeners their report: each log line is caught on its own (`crate::logging`).
        let began = Instant::now();
        crate::logging::info!("Reloading...");
        let report = crate::panic::catch(|| self.reload_hooks(deadline, began)).unwrap_or_default();
        log_report(&report);
        self.end_reload(&report);
        report
    }

    /// The hooks: what they did.
    fn reload_hooks(self: &Arc<Self>, deadline: Deadline, began: Instant) -> ReloadReport {
        let items = self.reload_items(deadline);
        let names: Vec<Arc<str>> = items.iter().map(|i| Arc::clone(&i.name)).collect();
        let results = if items.is_empty() {
            Vec::new()
        } else {
            self.run_hooks(items, deadline)
        };
        ReloadReport {
            services: names
                .into_iter()
                .zip(results)
                .map(|(name, (outcome, duration))| ReloadEntry {
                    name,
                    outcome,
                    duration,
                })
                .collect(),
            elapsed: began.elapsed(),
        }
    }

    /// Ends the reload under `ctl` (invariant 5) and starts the pending one, if any.
    #[cfg_attr(not(feature = "listeners"), allow(unused_variables))]
    fn end_reload(self: &Arc<Self>, report: &ReloadReport) {
        let again = {
            let mut ctl = self.ctl.lock();
            #[cfg(feature = "listeners")]
            self.events.emit(crate::host::StateChange::Reloaded {
                failed: report
                    .failed()
                    .iter()
                    .map(|e| Arc::clone(&e.name))
                    .collect(),
            });
            let again = std::mem::take(&mut ctl.reload.pending)
                && ctl.state == HostState::Running
                && ctl.stop_reason.is_none();
            ctl.reload.running = again;
            #[cfg(feature = "listeners")]
            if again {
                self.events.emit(crate::host::StateChange::Reloading);
            }
            again
        };
        if again {
            self.spawn_reload();
        }
    }

    /// The hooks to call, in start order, each with its context (under `ctl`; no user code).
    fn reload_items(self: &Arc<Self>, deadline: Deadline) -> Vec<Item> {
        let ctl = self.ctl.lock();
        let mut ids = Vec::new();
        start_order(&ctl, ROOT, &mut ids);
        ids.into_iter()
            .filter_map(|id| {
                let r = ctl.rec(id);
                let hook = r.reload.as_ref()?;
                Some(Item {
                    id,
                    name: Arc::clone(&r.path),
                    hook: Arc::clone(hook),
                    ctx: Context {
                        name: Arc::clone(&r.name),
                        path: Arc::clone(&r.path),
                        token: r.token.token(),
                        deadline,
                        host: HostHandle {
                            shared: Arc::clone(self),
                        },
                        services: Arc::clone(&self.plan.services),
                        heartbeat: Arc::clone(&r.heartbeat),
                        stop_deadline: Arc::clone(&r.body_deadline),
                        liveness: r.liveness,
                    },
                })
            })
            .collect()
    }

    /// Calls the hooks on `th:reload` and waits for them until `deadline` (invariants 2, 3).
    fn run_hooks(
        self: &Arc<Self>,
        items: Vec<Item>,
        deadline: Deadline,
    ) -> Vec<(ReloadOutcome, Duration)> {
        let n = items.len();
        let run = Arc::new(Run {
            progress: Mutex::new(Progress {
                results: vec![None; n],
                current: None,
                cancelled: false,
                done: false,
            }),
            cond: Condvar::new(),
        });
        let theirs = Arc::clone(&run);
        let shared = Arc::clone(self);
        // The hooks are user code, as a service's: they get the stack size service threads get.
        let spawned = crate::thread::spawn_named("th:reload", self.options.stack_size, move || {
            let _member = crate::thread::work_for(shared.id);
            // Done is told last (whatever happens), after this thread let go of the host
            // and of the hooks' contexts: a caller that saw it holds no stale reference.
            let _done = scopeguard::guard(Arc::clone(&theirs), |run| {
                run.progress.lock().done = true;
                run.cond.notify_all();
            });
            call_hooks(&shared, &theirs, items);
            drop(shared);
        });
        if let Err(e) = spawned {
            // Caught (`crate::logging`): a panicking logger must not cost the report.
            crate::logging::error!("could not spawn the reload thread `th:reload`: {e}");
            return (0..n)
                .map(|_| (ReloadOutcome::NotRun("no thread to run it"), Duration::ZERO))
                .collect();
        }
        let mut progress = run.progress.lock();
        while !progress.done {
            let Some(at) = deadline.instant() else {
                run.cond.wait(&mut progress);
                continue;
            };
            if run.cond.wait_until(&mut progress, at).timed_out() && !progress.done {
                // Invariant 3: give up; `th:reload` runs no further hook.
                progress.cancelled = true;
                let current = progress.current;
                if let Some((i, since)) = current {
                    if progress.results[i].is_none() {
                        progress.results[i] = Some((ReloadOutcome::TimedOut, since.elapsed()));
                    }
                }
                break;
            }
        }
        progress
            .results
            .iter_mut()
            .map(|r| {
                r.take()
                    .unwrap_or((ReloadOutcome::NotRun(NOT_RUN_DEADLINE), Duration::ZERO))
            })
            .collect()
    }
}

/// The log lines of a reload's outcome.
fn log_report(report: &ReloadReport) {
    for e in report.failed() {
        match &e.outcome {
            ReloadOutcome::NotRun(_) => crate::logging::warn!("{}", Line(e)),
            _ => crate::logging::error!("{}", Line(e)),
        }
    }
    if report.services.is_empty() {
        crate::logging::info!("Reloaded (no service has a reload hook)");
    } else if report.is_clean() {
        crate::logging::info!("Reloaded ({} service(s))", report.services.len());
    } else {
        // Each failure was logged above: the count only.
        let n = report.services.len();
        crate::logging::warn!(
            "Reload: {} of {n} service(s) reloaded; the host keeps running",
            n - report.failed().len()
        );
    }
}

/// `th:reload`: each hook in turn, until done or cancelled (invariants 2, 3, 4).
fn call_hooks(shared: &Shared, run: &Run, items: Vec<Item>) {
    for (i, item) in items.into_iter().enumerate() {
        let skip = {
            let ctl = shared.ctl.lock();
            if ctl.stop_reason.is_some() || ctl.state != HostState::Running {
                Some("the host is stopping")
            } else if ctl
                .records
                .get(&item.id)
                .is_none_or(|r| r.state != ServiceState::Running)
            {
                Some("the service is not running")
            } else {
                None
            }
        };
        let skip = skip.or_else(|| {
            item.hook
                .busy
                .swap(true, Ordering::AcqRel)
                .then_some("its hook from an earlier reload still runs")
        });
        {
            let mut progress = run.progress.lock();
            if progress.cancelled {
                if skip.is_none() {
                    item.hook.busy.store(false, Ordering::Release);
                }
                return;
            }
            if let Some(why) = skip {
                progress.results[i] = Some((ReloadOutcome::NotRun(why), Duration::ZERO));
                run.cond.notify_all();
                continue;
            }
            progress.current = Some((i, Instant::now()));
        }
        let began = Instant::now();
        let result = crate::panic::catch(|| (item.hook.f)(&item.ctx));
        item.hook.busy.store(false, Ordering::Release);
        let outcome = match result {
            Ok(Ok(())) => ReloadOutcome::Reloaded,
            Ok(Err(e)) => ReloadOutcome::Failed(Failure::from_box(e)),
            Err(message) => ReloadOutcome::Failed(Failure::Panic(message.into())),
        };
        let mut progress = run.progress.lock();
        progress.current = None;
        if progress.cancelled {
            // Reported timed out already; said once more, now that it is known.
            drop(progress);
            crate::logging::warn!(
                "reload: the hook of service `{}` returned after the reload's deadline: {}",
                crate::text::one_line(&item.name),
                outcome
            );
            // The outcome (maybe a user error) is dropped with no lock held.
            return;
        }
        progress.results[i] = Some((outcome, began.elapsed()));
        run.cond.notify_all();
    }
}

/// The services under group `g`, in start order (each group's `order`, depth first).
fn start_order(ctl: &crate::host::control::Ctl, g: crate::host::control::Id, out: &mut Vec<u64>) {
    for &node in &ctl.group(g).order {
        match node {
            NodeId::Service(i) => out.push(i),
            NodeId::Group(c) => start_order(ctl, c, out),
        }
    }
}

/// The log line of an entry that did not reload.
struct Line<'a>(&'a ReloadEntry);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        write!(
            crate::text::Escaping(&mut *f),
            "reload: service `{}` {}",
            self.0.name,
            self.0.outcome
        )
    }
}

impl HostHandle {
    /// Reloads the host: calls every service's reload hook
    /// ([`Service::on_reload`](crate::Service::on_reload)), one at a time in the host's start
    /// order, on the reload thread `th:reload`, and returns what each did. Blocks until every
    /// hook returned or `deadline` passed, and returns by `deadline` whatever a hook does: a
    /// hook still running then is reported [`TimedOut`](ReloadOutcome::TimedOut) and the
    /// hooks after it are not run. A failing hook is logged and reported; it stops nothing.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidState`]: the host is not running (not started yet, starting,
    ///   stopping, stopped).
    /// - [`Error::ReloadInProgress`]: another reload is running (also: this is called from
    ///   a reload hook). [`request_reload`](HostHandle::request_reload) queues one instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, ReloadOutcome, Service};
    ///
    /// let host = HostBuilder::new()
    ///     .add_service(
    ///         Service::background("cache", |ctx| { ctx.token().wait(); Ok(()) })
    ///             .on_reload(|_ctx| Err("config.toml: line 3: bad value".into())),
    ///     )
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let report = host.handle().reload(Duration::from_secs(5))?;
    /// assert!(matches!(report.service("cache").unwrap().outcome, ReloadOutcome::Failed(_)));
    /// assert_eq!(host.state(), threadhost::HostState::Running); // a failed reload stops nothing
    /// # assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn reload(&self, deadline: impl Into<Deadline>) -> Result<ReloadReport, Error> {
        self.shared.reload(deadline.into())
    }

    /// Asks for a reload and returns at once: the hooks run on the reload thread under
    /// [`HostOptions::reload_timeout`](crate::HostOptions::reload_timeout), and the outcome
    /// is logged (and told to the state listeners, e.g. systemd). A request made while a
    /// reload runs is not lost: requests made during a reload coalesce into one more reload
    /// after it (not run if the host has begun to stop by then). What `SIGHUP` does under
    /// the console lifetime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`]: the host is not running (not started yet, starting, stopping,
    /// stopped).
    pub fn request_reload(&self) -> Result<(), Error> {
        self.shared.request_reload()
    }

    /// `true` if a service of the host has a reload hook.
    #[cfg(all(unix, feature = "termination"))]
    pub(crate) fn has_reload_hooks(&self) -> bool {
        self.shared.has_reload_hooks()
    }
}
