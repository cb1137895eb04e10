//! loom models of the stop tree: every interleaving of the racing operations is explored.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib stop::loom`.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{StopReason, StopSource};

/// No lost wake-up: a waiter that checks, then waits, never misses a concurrent stop
/// (loom reports a deadlock if the waiter can sleep forever).
#[test]
fn stop_wakes_waiter() {
    loom::model(|| {
        let source = StopSource::new();
        let token = source.token();
        let waiter = thread::spawn(move || token.wait());
        source.stop();
        waiter.join().unwrap();
    });
}

/// A waiter on a child wakes when the parent stops.
#[test]
fn parent_stop_wakes_child_waiter() {
    loom::model(|| {
        let parent = StopSource::new();
        let child = parent.child().token();
        let waiter = thread::spawn(move || child.wait());
        parent.stop();
        waiter.join().unwrap();
    });
}

/// A child created while its parent is being stopped ends up stopped: it is either
/// registered before the stop takes the list, or born stopped.
#[test]
fn child_created_during_stop_is_stopped() {
    loom::model(|| {
        let parent = StopSource::new();
        let token = parent.token();
        let maker = thread::spawn(move || token.child());
        parent.stop();
        let child = maker.join().unwrap();
        assert!(child.is_stopped());
        assert_eq!(child.reason(), Some(StopReason::Requested));
    });
}

/// A callback registered while the token is being stopped runs exactly once: by the stop,
/// or at once by `on_stop` itself.
#[test]
fn on_stop_racing_stop_runs_once() {
    loom::model(|| {
        let source = StopSource::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let token = source.token();
        let counter = Arc::clone(&runs);
        let registrar = thread::spawn(move || {
            token
                .on_stop(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                })
                .forget();
        });
        source.stop();
        registrar.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

/// Unregistering races the stop: the callback runs at most once, nothing deadlocks.
#[test]
fn registration_drop_racing_stop_runs_at_most_once() {
    loom::model(|| {
        let source = StopSource::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let registration = source.token().on_stop(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let dropper = thread::spawn(move || drop(registration));
        source.stop();
        dropper.join().unwrap();
        assert!(runs.load(Ordering::SeqCst) <= 1);
    });
}

/// A child dropped (and unlinked) while the parent stops: no deadlock, no double free.
#[test]
fn child_drop_racing_parent_stop() {
    loom::model(|| {
        let parent = StopSource::new();
        let child = parent.child();
        let dropper = thread::spawn(move || drop(child));
        parent.stop();
        dropper.join().unwrap();
    });
}

/// Two concurrent stops: exactly one reports having stopped it; callbacks run once.
#[test]
fn concurrent_stops_stop_once() {
    loom::model(|| {
        let source = StopSource::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        source
            .token()
            .on_stop(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .forget();
        let other = source.clone();
        let t = thread::spawn(move || other.stop());
        let mine = source.stop();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one stop() stops it");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}
