//! Shared helpers for the integration tests: durations, probes, drop counters, gates that
//! hold a "hung" service until the test releases it, an event log, and timing assertions.
//!
//! These helpers use only `std` primitives, never threadhost's own, so that a test of the stop
//! token or the host does not depend on the thing it tests.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `Duration::from_millis(n)`.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How long a test waits for something that should happen "at once": generous, for a loaded
/// 2-core machine. Reaching it means the feature is broken, not slow.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// The slack allowed past a deadline on a loaded machine.
pub(crate) const MARGIN: Duration = Duration::from_millis(700);

/// Spawns a named test thread (the library's own threads are `th:`-prefixed; these are not).
#[allow(clippy::disallowed_methods)]
pub(crate) fn spawn<T, F>(name: &str, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("test:{name}"))
        .spawn(f)
        .expect("spawn a test thread")
}

/// Simulates slow work that ignores every token (a badly behaved service).
#[allow(clippy::disallowed_methods)]
pub(crate) fn busy(d: Duration) {
    std::thread::sleep(d);
}

/// Runs `f` and returns its result with the time it took.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let began = Instant::now();
    let r = f();
    (r, began.elapsed())
}

/// Asserts that `elapsed` is at most `limit`, naming `what`.
#[track_caller]
pub(crate) fn assert_within(elapsed: Duration, limit: Duration, what: &str) {
    assert!(
        elapsed <= limit,
        "{what} took {elapsed:?}, more than the allowed {limit:?}"
    );
}

/// Runs `f`, asserts it returned within `limit`, and returns its result.
#[track_caller]
pub(crate) fn within<R>(limit: Duration, what: &str, f: impl FnOnce() -> R) -> R {
    let (r, elapsed) = timed(f);
    assert_within(elapsed, limit, what);
    r
}

/// Checks `pred` every 2 ms until it holds; only for states that no event signals (e.g. a
/// service state in a snapshot, which the host updates just after a reply). Panics after
/// [`PATIENCE`].
#[track_caller]
pub(crate) fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let began = Instant::now();
    while !pred() {
        assert!(
            began.elapsed() < PATIENCE,
            "{what}: not reached within {PATIENCE:?}"
        );
        busy(ms(2));
    }
}

/// A settable flag that can be waited on: set by the code under test, awaited by the test.
#[derive(Clone, Default)]
pub(crate) struct Probe {
    inner: Arc<(Mutex<usize>, Condvar)>,
}

impl Probe {
    pub(crate) fn new() -> Probe {
        Probe::default()
    }

    /// Sets the flag (counts the calls) and wakes every waiter.
    pub(crate) fn set(&self) {
        let (lock, cond) = &*self.inner;
        *lock.lock().unwrap() += 1;
        cond.notify_all();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.count() > 0
    }

    /// How many times `set` was called.
    pub(crate) fn count(&self) -> usize {
        *self.inner.0.lock().unwrap()
    }

    /// Waits up to `timeout` for the flag; `true` if set.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let (guard, _) = cond
            .wait_timeout_while(guard, timeout, |n| *n == 0)
            .unwrap();
        *guard > 0
    }

    /// Waits up to [`PATIENCE`] and panics naming `what` if the flag was not set.
    #[track_caller]
    pub(crate) fn expect(&self, what: &str) {
        assert!(
            self.wait(PATIENCE),
            "{what}: probe not set within {PATIENCE:?}"
        );
    }
}

/// A gate that holds threads until the test opens it: a "hung" service blocks on it, ignoring
/// its stop token, and the test opens it at the end so no thread outlives the test for long.
#[derive(Clone, Default)]
pub(crate) struct Gate {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate::default()
    }

    /// Blocks until the gate is opened (ignores every stop token: that is the point).
    pub(crate) fn wait(&self) {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let _open = cond.wait_while(guard, |open| !*open).unwrap();
    }

    pub(crate) fn open(&self) {
        let (lock, cond) = &*self.inner;
        *lock.lock().unwrap() = true;
        cond.notify_all();
    }

    /// A guard that opens the gate when dropped, also when the test panics.
    pub(crate) fn opener(&self) -> GateOpener {
        GateOpener(self.clone())
    }
}

/// Opens its [`Gate`] on drop.
pub(crate) struct GateOpener(Gate);

impl Drop for GateOpener {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Counts drops of the values it hands out.
#[derive(Clone, Default)]
pub(crate) struct DropCounter {
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    pub(crate) fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A value whose drop is counted.
    pub(crate) fn token(&self) -> Counted {
        Counted(Arc::clone(&self.drops))
    }

    pub(crate) fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

/// Increments its [`DropCounter`] when dropped.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One recorded event: what happened, and the name of the thread it happened on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) what: String,
    pub(crate) thread: Option<String>,
}

/// A log of events recorded from any thread, in the order they happened (one mutex).
#[derive(Clone, Default)]
pub(crate) struct Events {
    inner: Arc<(Mutex<Vec<Event>>, Condvar)>,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events::default()
    }

    /// Records `what` with the current thread's name.
    pub(crate) fn push(&self, what: impl Into<String>) {
        let event = Event {
            what: what.into(),
            thread: std::thread::current().name().map(str::to_owned),
        };
        let (lock, cond) = &*self.inner;
        lock.lock().unwrap().push(event);
        cond.notify_all();
    }

    /// Every event so far.
    pub(crate) fn all(&self) -> Vec<Event> {
        self.inner.0.lock().unwrap().clone()
    }

    /// The `what` of every event so far.
    pub(crate) fn names(&self) -> Vec<String> {
        self.all().into_iter().map(|e| e.what).collect()
    }

    /// The `what` of every event starting with `prefix`.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|w| w.starts_with(prefix))
            .collect()
    }

    pub(crate) fn contains(&self, what: &str) -> bool {
        self.names().iter().any(|w| w == what)
    }

    /// Position of the first event equal to `what`.
    pub(crate) fn position(&self, what: &str) -> Option<usize> {
        self.names().iter().position(|w| w == what)
    }

    /// Waits until an event equal to `what` is recorded; panics after [`PATIENCE`].
    #[track_caller]
    pub(crate) fn wait_for(&self, what: &str) {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = cond
            .wait_timeout_while(guard, PATIENCE, |v| !v.iter().any(|e| e.what == what))
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "event `{what}` not seen within {PATIENCE:?}; got {:?}",
            guard.iter().map(|e| &e.what).collect::<Vec<_>>()
        );
    }
}

/// Asserts that `a` appears before `b` in `log`.
#[track_caller]
pub(crate) fn assert_before<T: PartialEq + Debug>(log: &[T], a: &T, b: &T) {
    let pa = log.iter().position(|x| x == a);
    let pb = log.iter().position(|x| x == b);
    match (pa, pb) {
        (Some(pa), Some(pb)) => assert!(pa < pb, "{a:?} should come before {b:?} in {log:?}"),
        _ => panic!("{a:?} or {b:?} missing from {log:?}"),
    }
}
