//! [`StopSource`] / [`StopToken`]: the cancellation primitive.
//!
//! The tree logic and its invariants live in `stop/tree.rs`; these are thin handles.

mod tree;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::deadline::Deadline;

#[cfg(all(test, loom))]
mod loom;
#[cfg(all(test, not(loom)))]
mod tests;

/// Why a [`StopToken`] was stopped.
///
/// A service reads it with [`StopToken::reason`] to tell an orderly shutdown from a start that
/// ran out of time, or from a stop caused by another service's failure.
///
/// ```
/// use threadhost::{StopReason, StopSource};
///
/// let source = StopSource::new();
/// source.stop_with(StopReason::Deadline);
/// assert_eq!(source.token().reason(), Some(StopReason::Deadline));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// A stop was asked for: [`StopSource::stop`], `Host::stop`, `HostHandle::request_stop`.
    Requested,
    /// A deadline passed: a service's start overran the start deadline, or a stop ran out of
    /// time and the remaining services are being abandoned.
    Deadline,
    /// Another service failed under the `StopHost` policy.
    Failure {
        /// The service that failed.
        service: Arc<str>,
    },
    /// The process received a termination signal: the console lifetime names it (`SIGINT`,
    /// `SIGTERM`, `SIGQUIT`; on Windows `Ctrl-C or Ctrl-Break`).
    Signal {
        /// The signal's name, e.g. `"SIGTERM"`.
        name: &'static str,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Requested => f.write_str("stop requested"),
            StopReason::Deadline => f.write_str("deadline passed"),
            // The name may come from outside (`request_stop_with`): on one line.
            StopReason::Failure { service } => {
                use fmt::Write as _;
                write!(crate::text::Escaping(&mut *f), "service `{service}` failed")
            }
            StopReason::Signal { name } => write!(f, "{name}"),
        }
    }
}

/// The error of an interrupted [`StopToken::sleep`]: the token was stopped.
///
/// A service body may return it with `?`; the host treats a `Stopped` error returned after the
/// service's token fired as a clean exit, not a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stopped {}

/// The owner's side of a stop signal: it can stop, and it hands out [`StopToken`]s.
///
/// A clone is the *same* source (stopping either stops both); [`child`](StopSource::child) makes
/// a new node that stops with its parent or on its own. Equality is by identity.
///
/// ```
/// use std::time::Duration;
/// use threadhost::StopSource;
///
/// let source = StopSource::new();
/// let token = source.token();
/// let worker = std::thread::spawn(move || {
///     let mut rounds = 0;
///     while token.sleep(Duration::from_millis(1)).is_ok() {
///         rounds += 1;
///     }
///     rounds
/// });
/// source.stop();
/// let _rounds = worker.join().unwrap();
/// ```
#[derive(Clone)]
pub struct StopSource {
    node: Arc<tree::Node>,
}

/// The observer's side of a stop signal: check it, wait on it, register callbacks.
///
/// Cheap to clone (one reference count); a clone is the same token. Equality is by identity.
///
/// # Thread safety
///
/// `Send + Sync`; every method may be called from any thread.
#[derive(Clone)]
pub struct StopToken {
    node: Arc<tree::Node>,
}

impl StopSource {
    /// A new, unstopped source with no parent.
    #[must_use]
    pub fn new() -> StopSource {
        StopSource {
            node: tree::new_root(),
        }
    }

    /// A token observing this source.
    #[must_use]
    pub fn token(&self) -> StopToken {
        StopToken {
            node: Arc::clone(&self.node),
        }
    }

    /// Stops this source and every descendant, with [`StopReason::Requested`].
    ///
    /// Returns `true` if this call stopped it, `false` if it was already stopped. See
    /// [`stop_with`](StopSource::stop_with).
    pub fn stop(&self) -> bool {
        self.stop_with(StopReason::Requested)
    }

    /// Stops this source and every descendant with `reason`; `false` if already stopped.
    ///
    /// Wakes every waiter, then runs the registered [`on_stop`](StopToken::on_stop) callbacks on
    /// this thread, outside any lock. A panicking callback is logged and the others still run.
    ///
    /// When this returns, the whole subtree is stopped — though not atomically: a thread
    /// observing two nodes during the call may see one stopped and the other not yet.
    pub fn stop_with(&self, reason: StopReason) -> bool {
        tree::stop_tree(&self.node, reason)
    }

    /// Stops this source and its subtree like [`stop_with`](StopSource::stop_with), waking
    /// every waiter before it returns, but hands the callbacks back instead of running them:
    /// the caller runs them (`PendingCallbacks::run`) where their time cannot hold it up.
    /// `None` if it was already stopped.
    pub(crate) fn stop_deferred(&self, reason: StopReason) -> Option<PendingCallbacks> {
        let callbacks = tree::mark_tree(&self.node, &reason)?;
        Some(PendingCallbacks { callbacks, reason })
    }

    /// Whether a stop now would run user code (callbacks, here or in a child).
    pub(crate) fn is_watched(&self) -> bool {
        tree::is_watched(&self.node)
    }

    /// `true` once stopped. One atomic load.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        tree::is_stopped(&self.node)
    }

    /// Why it was stopped, or `None` while it is not.
    #[must_use]
    pub fn reason(&self) -> Option<StopReason> {
        tree::reason(&self.node)
    }

    /// A new child source: stopped when this one stops, or on its own. See
    /// [`StopToken::child`].
    #[must_use]
    pub fn child(&self) -> StopSource {
        StopSource {
            node: tree::new_child(&self.node),
        }
    }

    /// A guard that stops this source when dropped, unless [`disarm`](StopGuard::disarm)ed.
    ///
    /// ```
    /// use threadhost::StopSource;
    ///
    /// let source = StopSource::new();
    /// let token = source.token();
    /// {
    ///     let _guard = source.drop_guard();
    /// }
    /// assert!(token.is_stopped());
    /// ```
    #[must_use = "the guard stops the source as soon as it is dropped"]
    pub fn drop_guard(self) -> StopGuard {
        StopGuard {
            source: self,
            armed: true,
        }
    }
}

impl Default for StopSource {
    fn default() -> StopSource {
        StopSource::new()
    }
}

impl StopToken {
    /// A token that is never stopped (it has no source).
    #[must_use]
    pub fn never() -> StopToken {
        StopToken {
            node: tree::new_root(),
        }
    }

    /// `true` once stopped. One atomic (Acquire) load: cheap enough for a hot loop.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        tree::is_stopped(&self.node)
    }

    /// Why it was stopped, or `None` while it is not.
    #[must_use]
    pub fn reason(&self) -> Option<StopReason> {
        tree::reason(&self.node)
    }

    /// Blocks until stopped.
    ///
    /// Blocks on a condition variable, not by polling; wakes within microseconds of the stop.
    pub fn wait(&self) {
        let _stopped = tree::wait_until(&self.node, Deadline::NEVER);
    }

    /// Returns `true` if the token is stopped, blocking up to `timeout` for it.
    ///
    /// Forwards to [`wait_until`](StopToken::wait_until).
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::StopSource;
    ///
    /// let source = StopSource::new();
    /// assert!(!source.token().wait_timeout(Duration::from_millis(1)));
    /// source.stop();
    /// assert!(source.token().wait_timeout(Duration::from_secs(1)));
    /// ```
    #[must_use = "`true` means stopped, `false` means the timeout passed"]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(timeout)
    }

    /// Returns `true` if the token is stopped, blocking until then or until `deadline` passes.
    ///
    /// Blocks on a condition variable, never polling; returns by the deadline. A stop that
    /// races with the deadline is reported if it happened before the return.
    #[must_use = "`true` means stopped, `false` means the deadline passed"]
    pub fn wait_until(&self, deadline: impl Into<Deadline>) -> bool {
        tree::wait_until(&self.node, deadline.into())
    }

    /// Sleeps for `duration`, or until stopped.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the token was stopped before the sleep ended (at once if it already was).
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{StopSource, Stopped};
    ///
    /// let source = StopSource::new();
    /// assert_eq!(source.token().sleep(Duration::from_millis(1)), Ok(()));
    /// source.stop();
    /// assert_eq!(source.token().sleep(Duration::from_secs(60)), Err(Stopped));
    /// ```
    pub fn sleep(&self, duration: Duration) -> Result<(), Stopped> {
        self.sleep_until(duration)
    }

    /// Sleeps until `deadline`, or until stopped.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the token was stopped before the deadline.
    pub fn sleep_until(&self, deadline: impl Into<Deadline>) -> Result<(), Stopped> {
        if self.wait_until(deadline) {
            Err(Stopped)
        } else {
            Ok(())
        }
    }

    /// A new child source: stopped when this token stops (with the same reason), or on its own.
    ///
    /// A child of a stopped token is born stopped. A child that is dropped (with all its
    /// tokens) unlinks itself, so a long-lived parent's list of children never grows without
    /// bound.
    ///
    /// ```
    /// use threadhost::StopSource;
    ///
    /// let parent = StopSource::new();
    /// let child = parent.token().child();
    /// child.stop(); // stopping the child leaves the parent running
    /// assert!(!parent.is_stopped());
    /// let other = parent.token().child();
    /// parent.stop();
    /// assert!(other.is_stopped());
    /// ```
    #[must_use]
    pub fn child(&self) -> StopSource {
        StopSource {
            node: tree::new_child(&self.node),
        }
    }

    /// Runs `f` once when the token stops, on the stopping thread; at once, on this thread, if
    /// it is already stopped.
    ///
    /// Dropping the returned [`Registration`] unregisters `f` (if it has not run yet);
    /// [`Registration::forget`] keeps it registered for the token's life. Callbacks run after
    /// every waiter was woken and outside any lock, so `f` may use the token; a panic in `f` is
    /// caught and logged, and the other callbacks still run. Callbacks should be short: they
    /// run on whichever thread calls `stop` (a service's token, fired by its host: on a thread
    /// of their own, awaited within the service's stop deadline).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use threadhost::StopSource;
    ///
    /// let source = StopSource::new();
    /// let flag = Arc::new(AtomicBool::new(false));
    /// let seen = Arc::clone(&flag);
    /// let registration = source.token().on_stop(move |reason| {
    ///     seen.store(true, Ordering::SeqCst);
    ///     println!("stopping: {reason}");
    /// });
    /// source.stop();
    /// assert!(flag.load(Ordering::SeqCst));
    /// drop(registration);
    /// ```
    #[must_use = "dropping the Registration unregisters the callback at once"]
    pub fn on_stop<F>(&self, f: F) -> Registration
    where
        F: FnOnce(&StopReason) + Send + 'static,
    {
        match tree::register(&self.node, Box::new(f)) {
            Ok(id) => Registration {
                node: Arc::downgrade(&self.node),
                id: Some(id),
            },
            Err((cb, reason)) => {
                tree::run_callback(cb, &reason);
                Registration {
                    node: Weak::new(),
                    id: None,
                }
            }
        }
    }

    /// Whether two tokens observe the same node.
    #[must_use]
    pub fn same_as(&self, other: &StopToken) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }
}

impl PartialEq for StopSource {
    fn eq(&self, other: &StopSource) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }
}
impl Eq for StopSource {}

impl PartialEq for StopToken {
    fn eq(&self, other: &StopToken) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }
}
impl Eq for StopToken {}

impl fmt::Debug for StopSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSource")
            .field("reason", &self.reason())
            .finish()
    }
}

impl fmt::Debug for StopToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopToken")
            .field("reason", &self.reason())
            .finish()
    }
}

/// Keeps an [`on_stop`](StopToken::on_stop) callback registered; dropping it unregisters.
///
/// Dropping does not wait for a callback that is already running on another thread.
#[must_use = "dropping the Registration unregisters the callback at once"]
pub struct Registration {
    node: Weak<tree::Node>,
    id: Option<u64>,
}

impl Registration {
    /// Keeps the callback registered for as long as the token lives.
    pub fn forget(mut self) {
        self.id = None;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let (Some(id), Some(node)) = (self.id, self.node.upgrade()) {
            tree::unregister(&node, id);
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("armed", &self.id.is_some())
            .finish()
    }
}

/// Stops its source when dropped, unless disarmed. Made by [`StopSource::drop_guard`].
#[must_use = "the guard stops the source as soon as it is dropped"]
pub struct StopGuard {
    source: StopSource,
    armed: bool,
}

impl StopGuard {
    /// Gives the source back without stopping it.
    pub fn disarm(mut self) -> StopSource {
        self.armed = false;
        self.source.clone()
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        if self.armed {
            self.source.stop();
        }
    }
}

impl fmt::Debug for StopGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopGuard")
            .field("armed", &self.armed)
            .finish()
    }
}

/// The callbacks of a stop made with [`StopSource::stop_deferred`], still to run.
pub(crate) struct PendingCallbacks {
    callbacks: Vec<tree::Callback>,
    reason: StopReason,
}

impl PendingCallbacks {
    /// Whether there is anything to run.
    pub(crate) fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    /// Runs the callbacks (a panicking one is logged and the others still run).
    pub(crate) fn run(self) {
        tree::run_callbacks(self.callbacks, &self.reason);
    }
}
