//! The shared control state of a host: the tree of records under one lock, and the waits,
//! commands and events every sequence uses. The invariants this state keeps are in the
//! module header of `host`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::failure::Failure;
use crate::host::options::HostOptions;
use crate::host::{Heartbeat, Plan};
#[cfg(feature = "listeners")]
use crate::host::{StateChange, events, events::Events};
use crate::report::Outcome;
use crate::service::Kind;
use crate::state::{GroupStatus, HostState, ServiceState, ServiceStatus};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::supervise::{Backoff, Policy, RestartTracker, RestartType, Strategy};
use crate::sync::{AtomicU8, Condvar, Mutex, MutexGuard, Ordering};

/// The id of a record or a group: unique for the life of the host, never reused, so a
/// detached thread of a removed service can never touch the record of a later one.
pub(crate) type Id = u64;

/// The root group: the host itself.
pub(crate) const ROOT: Id = 0;

/// Where a record or group sends its state changes (the listeners' channel).
#[cfg(feature = "listeners")]
pub(crate) type EventSender = Option<crossbeam_channel::Sender<(StateChange, Instant)>>;
#[cfg(not(feature = "listeners"))]
pub(crate) type EventSender = ();

/// A node of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeId {
    Service(Id),
    Group(Id),
}

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

/// Where a service is in its lifecycle, as the sequences see it. The legal moves:
///
/// ```text
/// Idle ──spawn──▶ Pending ──start hook Ok──▶ Started ──a deadline missed──▶ TimedOut
///  ▲                 │ │                                (a start or stop hook, a `started`
///  └──spawn failed───┘ │                                 hook, token callbacks)
///                      ├──start overran, or given up at a stop's deadline──▶ TimedOut
///                      └──given up while starting (a failed start)──▶ Abandoned ──▶ TimedOut
/// every state ──its stop sequence reported it──▶ Done ──reset for a restart──▶ Idle
/// ```
///
/// Whether its thread has returned is `Record::exited`, set by the thread itself as its
/// last act (invariant 6): a `Started` background service whose body completed has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    /// No thread: never started, or reset for a restart.
    Idle,
    /// Its thread runs; its start has not succeeded (yet).
    Pending,
    /// Its start succeeded: the stop phases are for it (invariant 5).
    Started,
    /// Given up on while starting (told to `Finish`): never stopped by the host.
    Abandoned,
    /// Missed a deadline: its thread is detached, and the service reported timed out.
    TimedOut,
    /// A stop sequence reported it; its thread was joined or detached. Only a restart
    /// (which needs its service value back) brings it back to `Idle`.
    Done,
}

/// One service's lifecycle record.
pub(crate) struct Record {
    /// Its own name (unique among its siblings).
    pub(crate) name: Arc<str>,
    /// Its path in the tree: what logs, reports and the snapshot name it by.
    pub(crate) path: Arc<str>,
    /// The group it is in.
    pub(crate) parent: Id,
    pub(crate) hosted: bool,
    /// The service value: until its thread is spawned, and again once the thread exited
    /// and handed it back (what a restart needs).
    pub(crate) service: Option<Kind>,
    pub(crate) policy: Policy,
    pub(crate) restart: Option<RestartType>,
    pub(crate) depends_on: Vec<Arc<str>>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) token: StopSource,
    /// Invariant 3: its thread waits here for commands.
    pub(crate) cmd_cond: Arc<Condvar>,
    pub(crate) state: ServiceState,
    pub(crate) life: Life,
    pub(crate) exited: bool,
    /// It leaves the tree once its thread exited (a transient service that completed, a
    /// temporary one that ended): `tree::sweep`.
    pub(crate) remove_on_exit: bool,
    /// Bumped each time a change or a restart takes the service over: a failure queued for
    /// its group before that is stale (`tree`, invariant 3).
    pub(crate) epoch: u64,
    /// How its last stop ended (outcome, duration): what a later report of a scope it is in
    /// repeats once it is `Done`.
    pub(crate) last: Option<(Outcome, Duration)>,
    /// The last stop phase its hooks returned from (hosted services): a stop that takes
    /// over from a change cut short goes on from the next one.
    pub(crate) stopped_through: Option<Phase>,
    /// Host → thread; taken by the thread.
    pub(crate) cmd: Option<Cmd>,
    /// The phase the host awaits a reply for.
    pub(crate) awaiting: Option<Phase>,
    /// Thread → host: the last reply.
    pub(crate) reply: Option<(Phase, Result<(), Failure>)>,
    pub(crate) thread: Option<JoinHandle<()>>,
    pub(crate) last_error: Option<Failure>,
    pub(crate) restarts: u32,
    pub(crate) start_began: Option<Instant>,
    pub(crate) start_duration: Option<Duration>,
    pub(crate) stop_began: Option<Instant>,
    pub(crate) stop_duration: Option<Duration>,
    pub(crate) stop_deadline: Option<Deadline>,
    /// How stale its heartbeat may be for it to count as live (a critical service).
    pub(crate) liveness: Option<Duration>,
    pub(crate) heartbeat: Arc<Heartbeat>,
    /// When it last replied or exited: a concurrent stop's phase is a barrier, and the time a
    /// service then waits for slower ones does not count against its own stop timeout.
    pub(crate) done_at: Option<Instant>,
    /// Fires when the `on_stop` callbacks of its token, run on a thread of their own, have
    /// returned (`Shared::fire_tokens`); awaited before the report.
    pub(crate) callbacks: Option<StopToken>,
    /// A background service's stop deadline as its body reads it (`Context::deadline`): set
    /// before its token fires for a stop.
    pub(crate) body_deadline: Arc<crate::service::StopDeadline>,
    /// State changes go to the listeners (events.rs, invariant 1).
    #[cfg(feature = "listeners")]
    pub(crate) events: EventSender,
    pub(crate) metrics: Option<crate::service::MetricsFn>,
    /// Its reload hook (`host::reload`).
    pub(crate) reload: Option<Arc<crate::host::reload::Hook>>,
}

/// What a record held of its last run (its last reply, its last outcome), taken by a reset.
#[allow(dead_code)] // Held only to be dropped later.
pub(crate) struct LastRun(
    Option<(Phase, Result<(), Failure>)>,
    Option<(Outcome, Duration)>,
);

/// One group of the tree (the root, `ROOT`, is the host itself).
pub(crate) struct GroupNode {
    pub(crate) name: Arc<str>,
    /// `""` for the root.
    pub(crate) path: Arc<str>,
    pub(crate) parent: Option<Id>,
    /// Its children, in registration order.
    pub(crate) children: Vec<NodeId>,
    /// Its children by name (`tree::attach`, `tree::detach` keep it).
    pub(crate) index: std::collections::HashMap<Arc<str>, NodeId>,
    /// Its children in start order, and by level (`plan`).
    pub(crate) order: Vec<NodeId>,
    pub(crate) levels: Vec<Vec<NodeId>>,
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) within: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) restart: Option<RestartType>,
    pub(crate) depends_on: Vec<Arc<str>>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) tracker: RestartTracker,
    pub(crate) state: ServiceState,
    pub(crate) restarts: u32,
    pub(crate) last_error: Option<Failure>,
    /// Failures waiting for its supervisor (`tree.rs`): the failed child, its epoch then,
    /// and how it failed.
    pub(crate) pending: Vec<(NodeId, u64, Failure)>,
    /// Bumped each time a change or its parent's restart takes the group over.
    pub(crate) epoch: u64,
    /// A supervisor thread runs for this group (it drains `pending`).
    pub(crate) supervising: bool,
    #[cfg(feature = "listeners")]
    pub(crate) events: EventSender,
}

/// What the host's sequencer is doing; at most one of these runs at a time (invariant 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activity {
    Idle,
    /// `start` runs the start sequence.
    Starting,
    /// A change to the running tree (an add, a remove, a restart, a group's supervisor).
    Changing,
    /// The host's stop sequence runs (or a failed start's rollback).
    Stopping,
}

pub(crate) struct Ctl {
    pub(crate) state: HostState,
    pub(crate) activity: Activity,
    pub(crate) stop_reason: Option<StopReason>,
    /// Set at the first stop request: then + `shutdown_timeout`, or the deadline of the `stop`
    /// that requested it if earlier; a later `stop` with an earlier deadline lowers it. It
    /// bounds the sequence a `join` or `th:host-stop` runs.
    pub(crate) stop_deadline: Deadline,
    pub(crate) report: Option<crate::report::StopReport>,
    pub(crate) host_failure: Option<(Arc<str>, Failure)>,
    /// The start completed (the host was `Running`): the `started` event is due, and must
    /// fire before `stopping` whichever thread gets there first.
    pub(crate) reached_running: bool,
    /// Invariant 9: the thread that fired `stopping` has run its callbacks.
    pub(crate) stopping_done: bool,
    /// Invariant 9: a thread claimed the firing of `stopping` (it logs, fires, then sets
    /// `stopping_done`).
    pub(crate) stopping_claimed: bool,
    /// Invariant 8: a `th:host-stop` thread was spawned to run the stop sequence.
    pub(crate) stopper_spawned: bool,
    /// Asked to stop before it started: stopped without starting anything.
    pub(crate) never_started: bool,
    pub(crate) records: BTreeMap<Id, Record>,
    pub(crate) groups: BTreeMap<Id, GroupNode>,
    /// Records that asked to leave the tree once their thread exited (`tree::sweep`).
    pub(crate) leaving: Vec<Id>,
    pub(crate) next_id: Id,
    /// The reload in progress, if any (`host::reload`, invariant 1).
    pub(crate) reload: crate::host::reload::ReloadCtl,
}

impl Ctl {
    pub(crate) fn rec(&self, i: Id) -> &Record {
        &self.records[&i]
    }

    pub(crate) fn rec_mut(&mut self, i: Id) -> &mut Record {
        self.records
            .get_mut(&i)
            .expect("a record in a scope is in the tree")
    }

    pub(crate) fn group(&self, g: Id) -> &GroupNode {
        &self.groups[&g]
    }

    pub(crate) fn group_mut(&mut self, g: Id) -> &mut GroupNode {
        self.groups
            .get_mut(&g)
            .expect("a group in a scope is in the tree")
    }

    pub(crate) fn new_id(&mut self) -> Id {
        self.next_id += 1;
        self.next_id
    }

    /// Every service, in tree order (depth first, children in registration order).
    pub(crate) fn tree_order(&self) -> Vec<Id> {
        let mut out = Vec::with_capacity(self.records.len());
        self.walk(ROOT, &mut |node| {
            if let NodeId::Service(i) = node {
                out.push(i);
            }
        });
        out
    }

    /// Calls `f` on every node under group `g`, depth first.
    pub(crate) fn walk(&self, g: Id, f: &mut impl FnMut(NodeId)) {
        for &child in &self.group(g).children {
            f(child);
            if let NodeId::Group(c) = child {
                self.walk(c, f);
            }
        }
    }
}

pub(crate) struct Shared {
    /// Invariant 8: who works for this host (`crate::thread::works_for`).
    pub(crate) id: u64,
    pub(crate) options: HostOptions,
    pub(crate) plan: Plan,
    /// Invariant 2: mirror of `Ctl::state`.
    pub(crate) state: AtomicU8,
    pub(crate) ctl: Mutex<Ctl>,
    /// Invariant 3: replies, exits, stop requests, the end of a start, stop or change.
    pub(crate) cond: Condvar,
    pub(crate) started_event: StopSource,
    pub(crate) stopping_event: StopSource,
    /// Fired at the stop request itself, before the `stopping` event and with no user
    /// callback on it: what a change's wait for token callbacks watches (`tree` invariant 2),
    /// so that a slow `stopping` callback cannot delay it.
    pub(crate) stop_requested: StopSource,
    pub(crate) stopped_event: StopSource,
    #[cfg(feature = "listeners")]
    pub(crate) events: Arc<Events>,
}

impl Record {
    pub(crate) fn build(
        s: crate::service::Service,
        parent: Id,
        path: Arc<str>,
        options: &HostOptions,
        events: &dyn Fn() -> EventSender,
    ) -> Record {
        #[cfg(not(feature = "listeners"))]
        let _ = events;
        Record {
            hosted: matches!(s.kind, Kind::Hosted(_)),
            policy: s.policy.unwrap_or_else(|| options.failure_policy.clone()),
            restart: s.restart,
            depends_on: s.depends_on,
            stack_size: s.stack_size.or(options.stack_size),
            start_timeout: s.start_timeout,
            stop_timeout: s.stop_timeout,
            name: s.name,
            path,
            parent,
            service: Some(s.kind),
            token: StopSource::new(),
            cmd_cond: Arc::new(Condvar::new()),
            state: ServiceState::Created,
            life: Life::Idle,
            exited: false,
            remove_on_exit: false,
            epoch: 0,
            last: None,
            stopped_through: None,
            cmd: None,
            awaiting: None,
            reply: None,
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
            reload: s.reload.map(crate::host::reload::Hook::new),
            heartbeat: Arc::new(Heartbeat::new()),
            done_at: None,
            callbacks: None,
            body_deadline: Arc::default(),
            #[cfg(feature = "listeners")]
            events: events(),
        }
    }

    pub(crate) fn status(&self) -> ServiceStatus {
        ServiceStatus {
            name: Arc::clone(&self.path),
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
    pub(crate) fn set_state(&mut self, to: ServiceState) {
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
                name: Arc::clone(&self.path),
                from,
                to,
                error,
            };
            events::emit(self.events.as_ref(), change);
        }
    }

    /// The stop deadline of this service, computed once when its stop begins: the
    /// sequence's deadline, shortened by the service's own stop timeout.
    pub(crate) fn stop_deadline(&mut self, host: Deadline) -> Deadline {
        if self.stop_began.is_none() {
            self.stop_began = Some(Instant::now());
        }
        let stop_timeout = self.stop_timeout;
        // A stop that takes over from a change cut short only ever shortens the deadline.
        let d = match self.stop_deadline {
            Some(d) => d.min(host),
            None => host.min_after(stop_timeout),
        };
        self.stop_deadline = Some(d);
        d
    }

    /// Invariant 5: a service the stop phases are for: started, and not given up on.
    pub(crate) fn is_live(&self) -> bool {
        self.life == Life::Started
    }

    /// Its stop begins (a body that already failed or completed keeps that state).
    pub(crate) fn enter_stopping(&mut self) {
        if !matches!(self.state, ServiceState::Failed | ServiceState::Completed) {
            self.set_state(ServiceState::Stopping);
        }
    }

    /// How it came out of the stop that is reporting it.
    pub(crate) fn outcome(&self) -> Outcome {
        match self.life {
            Life::TimedOut => Outcome::TimedOut,
            Life::Abandoned if !self.exited => Outcome::TimedOut,
            Life::Idle | Life::Pending | Life::Abandoned => Outcome::NotStarted,
            Life::Started | Life::Done => match (self.state, &self.last_error) {
                (ServiceState::Failed, Some(f)) => Outcome::Failed(f.clone()),
                _ => Outcome::Stopped,
            },
        }
    }

    /// Back to `Idle` with a fresh token, for a restart (its service value is back: the
    /// caller checked). Returns what it held of the last run, to be dropped with no lock
    /// held (it may hold the last reference to a user's error).
    pub(crate) fn reset(&mut self) -> LastRun {
        let old = LastRun(self.reply.take(), self.last.take());
        self.life = Life::Idle;
        self.exited = false;
        self.remove_on_exit = false;
        self.token = StopSource::new();
        self.cmd = None;
        self.awaiting = None;
        self.stopped_through = None;
        self.start_began = None;
        self.stop_began = None;
        self.stop_deadline = None;
        self.done_at = None;
        self.callbacks = None;
        self.body_deadline = Arc::default();
        self.set_state(ServiceState::Created);
        old
    }
}

impl GroupNode {
    pub(crate) fn status(&self) -> GroupStatus {
        GroupStatus {
            path: Arc::clone(&self.path),
            state: self.state,
            restarts: self.restarts,
            strategy: self.strategy,
            last_error: self.last_error.clone(),
            children: Vec::new(),
        }
    }

    /// Changes the group's state and tells the listeners.
    pub(crate) fn set_state(&mut self, to: ServiceState) {
        #[cfg(feature = "listeners")]
        let from = self.state;
        self.state = to;
        #[cfg(feature = "listeners")]
        if from != to && self.parent.is_some() {
            let error = match to {
                ServiceState::Failed | ServiceState::Restarting => self.last_error.clone(),
                _ => None,
            };
            let change = StateChange::Group {
                path: Arc::clone(&self.path),
                from,
                to,
                error,
            };
            events::emit(self.events.as_ref(), change);
        }
    }
}

/// How long to wait for a stop step that ends at a service's deadline `d`: `d`, or
/// `d +` [`LATE_GRACE`] once `d` has passed (invariant 7). As `d` never moves, this bounds
/// every step of that service, and of the whole stop, by the deadline + one grace.
pub(crate) fn late(d: Deadline) -> Deadline {
    match d.instant() {
        Some(at) if d.is_expired() => at
            .checked_add(LATE_GRACE)
            .map_or(Deadline::NEVER, Deadline::at),
        _ => d,
    }
}

/// How a wait for one service ended.
#[derive(Debug)]
pub(crate) enum Resolution {
    Done(Result<(), Failure>),
    TimedOut,
    Interrupted,
}

/// What to wait for from one service.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Await {
    Reply(Phase),
    Exit,
}

/// How a stop request bears on a wait (`await_all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// A start's wait: a stop request ends it (`Interrupted`).
    Start,
    /// The host's stop sequence: only the deadlines end it.
    Stop,
    /// A change's stop: a stop request ends it too (`Interrupted`), and the host's stop
    /// takes over what it was waiting for (`stop_scope`).
    Change,
}

impl Shared {
    pub(crate) fn state(&self) -> HostState {
        HostState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Invariant 2.
    pub(crate) fn set_state(&self, ctl: &mut Ctl, state: HostState) {
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
    pub(crate) fn send(&self, ctl: &mut Ctl, i: Id, cmd: Cmd) {
        let r = ctl.rec_mut(i);
        r.cmd = Some(cmd);
        if let Cmd::Phase(p, _) = cmd {
            r.awaiting = Some(p);
            r.reply = None;
        } else {
            r.awaiting = None;
        }
        r.cmd_cond.notify_one();
    }

    pub(crate) fn request_stop(self: &Arc<Self>, reason: StopReason) {
        self.request_stop_by(reason, Deadline::NEVER);
    }

    /// `request_stop` by a caller that wants the stop done by `by` (`Host::stop`): the stop
    /// deadline is the earlier of `by` and now + the shutdown timeout, set in the same
    /// critical section as the request, so a change cut short by it sees it at once.
    pub(crate) fn request_stop_by(self: &Arc<Self>, reason: StopReason, by: Deadline) {
        let fire = {
            let mut ctl = self.ctl.lock();
            if ctl.stop_reason.is_some() || ctl.state.is_terminal() {
                return;
            }
            ctl.stop_reason = Some(reason.clone());
            ctl.stop_deadline = Deadline::after(self.options.shutdown_timeout).min(by);
            let fire = matches!(ctl.state, HostState::Starting | HostState::Running);
            if fire {
                self.set_state(&mut ctl, HostState::Stopping);
            }
            // Invariant 3: wake the start sequencer, a change, and any join waiting for a
            // request.
            self.cond.notify_all();
            fire.then_some(ctl.reached_running)
        };
        self.stop_requested.stop();
        if let Some(reached_running) = fire {
            // Lifetime callbacks are user code: run with no lock held (invariant 1).
            self.fire_stopping(reached_running, reason);
        }
    }

    /// Fires `stopping` (idempotent), after `started` if the host reached `Running`: `start`
    /// fires `started` after releasing `ctl`, so a stop requested at that moment could
    /// otherwise fire `stopping` first. The call that fires `stopping` records when its
    /// callbacks have returned (invariant 9). Returns at once (`fire_lifetime`).
    pub(crate) fn fire_stopping(self: &Arc<Self>, reached_running: bool, reason: StopReason) {
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
            crate::logging::info!("Application is shutting down... ({reason})");
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
    pub(crate) fn fire_lifetime(
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
    pub(crate) fn fire_tokens(
        &self,
        ctl: &mut MutexGuard<'_, Ctl>,
        targets: &[Id],
        reason: &StopReason,
    ) {
        let tokens: Vec<(Id, StopSource, Arc<str>)> = targets
            .iter()
            .map(|&i| {
                let r = ctl.rec(i);
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
                    // Its callbacks run for the service being stopped: a change they ask for
                    // must not wait for the sequence that waits for them (`tree`, inv. 1).
                    let _serving = crate::thread::serve(id, i);
                    pending.run();
                    done.stop();
                });
            }
            running
        });
        for (i, done) in running {
            if let Some(r) = ctl.records.get_mut(&i) {
                r.callbacks = Some(done);
            }
        }
        // A change waiting for its turn re-checks whether its own service is being stopped
        // (`tree`, invariant 1).
        self.cond.notify_all();
    }

    /// Waits until every target resolved: replied, exited, passed its deadline, or (see
    /// [`Wait`]) was cut short by a stop request. Invariant 3: the predicate is re-checked
    /// under the lock after every wake-up; the wait is bounded by the earliest pending
    /// deadline.
    pub(crate) fn await_all(
        &self,
        ctl: &mut MutexGuard<'_, Ctl>,
        targets: &[(Id, Deadline, Await)],
        wait: Wait,
    ) -> Vec<(Id, Resolution)> {
        let mut pending: Vec<(Id, Deadline, Await)> = targets.to_vec();
        let mut out = Vec::with_capacity(targets.len());
        loop {
            pending.retain(|&(i, d, what)| {
                let r = ctl.rec_mut(i);
                let done = match what {
                    Await::Reply(p) => match &r.reply {
                        Some((q, result)) if *q == p => Some(result.clone()),
                        // A thread that exited without replying (the protocol and the
                        // panic guards rule it out): never count a dead service as having
                        // started or stopped cleanly.
                        _ if r.exited => Some(Err(Failure::from_box(
                            format!("the thread of service `{}` ended without replying", r.path)
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
            if wait != Wait::Stop && ctl.stop_reason.is_some() {
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

    /// A sender for a new record's or group's state changes.
    pub(crate) fn event_sender(&self) -> EventSender {
        #[cfg(feature = "listeners")]
        return self.events.sender();
    }

    /// Waits on `cond` until `deadline`; `false` if it passed.
    pub(crate) fn wait_until(&self, ctl: &mut MutexGuard<'_, Ctl>, deadline: Deadline) -> bool {
        match deadline.instant() {
            None => {
                self.cond.wait(ctl);
                true
            }
            Some(at) => !self.cond.wait_until(ctl, at).timed_out(),
        }
    }
}
