//! State-change listeners ([`HostEvent`], [`StateChange`]): the `listeners` feature.
//!
//! # Invariants
//!
//! 1. An event is produced under the lifecycle lock `Shared::ctl`, at the very change it
//!    describes, by a non-blocking send on an unbounded channel: producers never wait and never
//!    run user code, and the channel keeps the order in which the changes were made.
//! 2. Listeners run only on the host's event thread (`th:host-events`), which holds no
//!    threadhost lock while it calls them; a panic in a listener is caught and logged, and the
//!    next listener and event go on.
//! 3. The event thread ends after delivering the host's terminal state (`Stopped` or `Failed`);
//!    a change made after that (a detached, timed-out thread finishing late) is not delivered.
//! 4. Events carry no handle to the host (a queued event must not keep the host alive); the
//!    event thread owns one handle and lends it to each event it delivers.
//! 5. `Events::progress` counts delivered events and records the thread's end; it changes
//!    under its mutex followed by `notify_all`, so `flush` (which re-checks it under the
//!    mutex) never misses the end.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::failure::Failure;
use crate::host::HostHandle;
use crate::state::{HostState, ServiceState};
use crate::stop::StopReason;
use crate::sync::{Condvar, Mutex};

/// A state listener, as registered with
/// [`HostBuilder::on_state_change`](crate::HostBuilder::on_state_change).
pub(crate) type Listener = Arc<dyn Fn(&HostEvent) + Send + Sync + 'static>;

/// The listeners a builder collected (a newtype for `Debug`).
#[derive(Default)]
pub(crate) struct Listeners(pub(crate) Vec<Listener>);

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} listener(s)", self.0.len())
    }
}

/// How long `run`, after the host stopped, waits for the listeners to deliver one more event
/// before it gives up on them (a listener that is slow but progressing is waited for; a stuck
/// one is not).
pub(crate) const FLUSH_STALL: Duration = Duration::from_secs(1);

/// What changed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StateChange {
    /// The host moved from one [`HostState`] to another.
    Host {
        /// The state before.
        from: HostState,
        /// The state after.
        to: HostState,
        /// Why the host is stopping, once a stop was requested.
        reason: Option<StopReason>,
    },
    /// A service moved from one [`ServiceState`] to another.
    Service {
        /// The service's name.
        name: Arc<str>,
        /// The state before.
        from: ServiceState,
        /// The state after.
        to: ServiceState,
        /// The service's last failure, when it entered `Failed`, `Restarting` or `TimedOut`.
        error: Option<Failure>,
    },
    /// A [group](crate::Group) moved from one state to another (see
    /// [`GroupStatus::state`](crate::GroupStatus::state)).
    Group {
        /// The group's path.
        path: Arc<str>,
        /// The state before.
        from: ServiceState,
        /// The state after.
        to: ServiceState,
        /// The failure it handled, when it entered `Restarting` or `Failed`.
        error: Option<Failure>,
    },
    /// A reload began ([`HostHandle::reload`], [`HostHandle::request_reload`], `SIGHUP`): the
    /// reload hooks are about to run. The host stays `Running`.
    Reloading,
    /// A reload ended; the host goes on running whatever its hooks did.
    Reloaded {
        /// The services (paths) whose hook failed, panicked, timed out or was not run.
        failed: Vec<Arc<str>>,
    },
}

impl fmt::Display for StateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateChange::Host { to, reason, .. } => {
                write!(f, "host {to}")?;
                match (to, reason) {
                    (HostState::Stopping, Some(reason)) => write!(f, " ({reason})"),
                    _ => Ok(()),
                }
            }
            StateChange::Service {
                name, to, error, ..
            } => {
                write!(f, "service `{name}` {to}")?;
                match error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            StateChange::Group {
                path, to, error, ..
            } => {
                write!(f, "group `{path}` {to}")?;
                match error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            StateChange::Reloading => f.write_str("host reloading"),
            StateChange::Reloaded { failed } if failed.is_empty() => f.write_str("host reloaded"),
            StateChange::Reloaded { failed } => {
                use fmt::Write as _;
                let names: Vec<String> = failed.iter().map(|n| format!("`{n}`")).collect();
                write!(
                    crate::text::Escaping(&mut *f),
                    "host reloaded; reload failed: {}",
                    names.join(", ")
                )
            }
        }
    }
}

/// One state change, as handed to a listener: what changed, when, and on which host.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HostEvent {
    /// What changed.
    pub change: StateChange,
    /// When it changed (listeners run a little later, on the host's event thread).
    pub at: Instant,
    host: HostHandle,
}

impl HostEvent {
    /// The host this event is about: read its [`snapshot`](HostHandle::snapshot) or
    /// [`options`](HostHandle::options), wait for its lifetime events, request a stop.
    #[must_use]
    pub fn host(&self) -> &HostHandle {
        &self.host
    }

    /// `true` for the host's own state changes (not a service's).
    #[must_use]
    pub fn is_host_change(&self) -> bool {
        matches!(self.change, StateChange::Host { .. })
    }
}

/// The producer side, one per host (invariant 1).
pub(crate) struct Events {
    /// `None` when no listener was registered: then nothing is sent and no thread runs.
    tx: Option<Sender<(StateChange, Instant)>>,
    /// Taken by the event thread when `start` spawns it.
    rx: Mutex<Option<Receiver<(StateChange, Instant)>>>,
    listeners: Arc<[Listener]>,
    /// The event thread's progress, for `flush` (invariant 5).
    progress: Mutex<Progress>,
    /// Signalled on every change of `progress`.
    progress_cond: Condvar,
}

/// How far the event thread got.
#[derive(Debug, Default)]
struct Progress {
    delivered: u64,
    /// The thread ended (or could not be spawned): nothing more will be delivered.
    finished: bool,
}

impl Events {
    pub(crate) fn new(listeners: Vec<Listener>) -> Events {
        let (tx, rx) = if listeners.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = crossbeam_channel::unbounded();
            (Some(tx), Some(rx))
        };
        Events {
            tx,
            rx: Mutex::new(rx),
            listeners: listeners.into(),
            progress: Mutex::new(Progress::default()),
            progress_cond: Condvar::new(),
        }
    }

    /// A producer for one service record.
    pub(crate) fn sender(&self) -> Option<Sender<(StateChange, Instant)>> {
        self.tx.clone()
    }

    /// Sends `change` to the listeners; never blocks (invariant 1).
    pub(crate) fn emit(&self, change: StateChange) {
        emit(self.tx.as_ref(), change);
    }

    /// Starts the event thread, once, if there are listeners.
    pub(crate) fn spawn(self: &Arc<Self>, host: HostHandle) -> std::io::Result<()> {
        // Taken once: a second `start` (an error anyway) does not spawn a second thread.
        let Some(rx) = self.rx.lock().take() else {
            return Ok(());
        };
        let events = Arc::clone(self);
        let spawned = crate::thread::spawn_named("th:host-events", None, move || {
            // Invariant 5: whatever happens, a flush waiting for this thread is released.
            let _finished = scopeguard::guard((), |()| events.advance(true));
            deliver(&rx, &events.listeners, &host, || events.advance(false));
        });
        if spawned.is_err() {
            // No thread will deliver anything: a flush must not wait for it.
            self.advance(true);
        }
        spawned.map(drop)
    }

    /// Records one delivered event, or the end of the thread, and wakes `flush`.
    fn advance(&self, finished: bool) {
        // Invariant 5: changed under the lock, then notified, so a flush that just checked
        // cannot miss it.
        let mut progress = self.progress.lock();
        if finished {
            progress.finished = true;
        } else {
            progress.delivered += 1;
        }
        self.progress_cond.notify_all();
    }

    /// Waits until the event thread delivered the terminal state and ended, until it
    /// delivered nothing for [`FLUSH_STALL`] (a stuck listener), or until `until` passes,
    /// whichever comes first. A no-op without listeners or before the thread was spawned.
    pub(crate) fn flush(&self, until: crate::deadline::Deadline) {
        // `rx` is taken (under its lock) by `spawn` only: `None` here means the thread was
        // started (or could not be, and `finished` is already set).
        let spawned = self.tx.is_some() && self.rx.lock().is_none();
        if !spawned {
            return;
        }
        let stalled = {
            // Invariant 5: the predicate is re-checked under the lock after every wake-up.
            let mut progress = self.progress.lock();
            let mut seen = progress.delivered;
            let mut deadline = Instant::now() + FLUSH_STALL;
            loop {
                // The caller's deadline ends the wait as quietly as the thread's end: a stop
                // returns by its deadline, flushed or not.
                if progress.finished || until.is_expired() {
                    break false;
                }
                let wake = until
                    .instant()
                    .map_or(deadline, |until| until.min(deadline));
                self.progress_cond.wait_until(&mut progress, wake);
                if progress.delivered != seen {
                    seen = progress.delivered;
                    deadline = Instant::now() + FLUSH_STALL;
                } else if !progress.finished && Instant::now() >= deadline {
                    break true;
                }
            }
        };
        if stalled {
            // Logged after the lock is released: a logger is user code.
            crate::logging::warn!(
                "a state listener made no progress for {FLUSH_STALL:?}: not waiting for it"
            );
        }
    }
}

/// Sends on an optional producer; a send after the event thread ended is dropped
/// (invariant 3).
pub(crate) fn emit(tx: Option<&Sender<(StateChange, Instant)>>, change: StateChange) {
    if let Some(tx) = tx {
        let _ = tx.send((change, Instant::now()));
    }
}

/// The event thread's loop (invariants 2 and 3).
fn deliver(
    rx: &Receiver<(StateChange, Instant)>,
    listeners: &[Listener],
    host: &HostHandle,
    delivered: impl Fn(),
) {
    // `recv` blocks on the channel; it ends when the host (every sender) is gone.
    while let Ok((change, at)) = rx.recv() {
        let terminal = matches!(change, StateChange::Host { to, .. } if to.is_terminal());
        let event = HostEvent {
            change,
            at,
            host: host.clone(),
        };
        for listener in listeners {
            crate::panic::log_panic(
                format_args!("a state listener on `{}`", event.change),
                || listener(&event),
            );
        }
        delivered();
        if terminal {
            return;
        }
    }
}
