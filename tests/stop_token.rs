//! `StopSource` / `StopToken`: stop, wait, sleep, children, `on_stop` callbacks, reasons,
//! guards, identity, and the no-lost-wake-up stress test.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{DropCounter, Probe, assert_within, ms, spawn, timed};
use threadhost::{Registration, StopGuard, StopReason, StopSource, StopToken, Stopped};

/// A timeout no correct wait ever reaches: returning `true` well before it means "woken".
const LONG: Duration = Duration::from_secs(30);
/// "Well before LONG": a woken waiter returns within this on a loaded machine.
const WOKEN: Duration = Duration::from_secs(5);

/// Runs `f` on its own thread and fails the test if it has not finished within `PATIENCE`
/// (a deadlock shows up as a failure, not as a hung test binary).
fn no_deadlock(what: &str, f: impl FnOnce() + Send + 'static) {
    let done = Probe::new();
    let d = done.clone();
    let handle = spawn(what, move || {
        f();
        d.set();
    });
    done.expect(what);
    handle.join().unwrap();
}

#[test]
fn smoke() {
    let source = StopSource::new();
    let token = source.token();
    assert!(!token.is_stopped());
    assert_eq!(token.reason(), None);
    assert!(source.stop());
    assert!(token.is_stopped());
    assert!(token.wait_timeout(ms(1)));
    assert_eq!(token.reason(), Some(StopReason::Requested));
}

#[test]
fn stop_returns_true_only_the_first_time() {
    let source = StopSource::new();
    assert!(!source.is_stopped());
    assert!(source.stop());
    assert!(!source.stop());
    assert!(!source.stop_with(StopReason::Signal { name: "SIGTERM" }));
    assert!(source.is_stopped());
}

#[test]
fn stop_wakes_waiter() {
    let source = StopSource::new();
    let token = source.token();
    let ready = Probe::new();
    let r = ready.clone();
    let waiter = spawn("waiter", move || {
        r.set();
        timed(|| token.wait())
    });
    ready.expect("waiter ready");
    source.stop();
    let ((), elapsed) = waiter.join().unwrap();
    assert_within(elapsed, WOKEN, "wait() after stop");
}

#[test]
fn stop_wakes_wait_timeout() {
    let source = StopSource::new();
    let token = source.token();
    let ready = Probe::new();
    let r = ready.clone();
    let waiter = spawn("waiter", move || {
        r.set();
        timed(|| token.wait_timeout(LONG))
    });
    ready.expect("waiter ready");
    source.stop();
    let (stopped, elapsed) = waiter.join().unwrap();
    assert!(stopped, "wait_timeout must report the stop");
    assert_within(elapsed, WOKEN, "wait_timeout(30 s) after stop");
}

#[test]
fn stop_wakes_wait_until() {
    let source = StopSource::new();
    let token = source.token();
    let ready = Probe::new();
    let r = ready.clone();
    let waiter = spawn("waiter", move || {
        r.set();
        timed(|| token.wait_until(Instant::now() + LONG))
    });
    ready.expect("waiter ready");
    source.stop();
    let (stopped, elapsed) = waiter.join().unwrap();
    assert!(stopped);
    assert_within(elapsed, WOKEN, "wait_until(now + 30 s) after stop");
}

#[test]
fn stop_wakes_every_waiter() {
    let source = StopSource::new();
    let barrier = Arc::new(Barrier::new(5));
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let token = source.token();
            let barrier = Arc::clone(&barrier);
            spawn(&format!("waiter{i}"), move || {
                barrier.wait();
                token.wait_timeout(LONG)
            })
        })
        .collect();
    barrier.wait();
    let ((), elapsed) = timed(|| {
        source.stop();
        for w in waiters {
            assert!(w.join().unwrap());
        }
    });
    assert_within(elapsed, WOKEN, "four waiters woken");
}

#[test]
fn wait_until_returns_false_at_deadline() {
    let token = StopSource::new().token();
    let deadline = Instant::now() + ms(50);
    let (stopped, elapsed) = timed(|| token.wait_until(deadline));
    assert!(!stopped);
    assert!(Instant::now() >= deadline, "returned before the deadline");
    assert_within(elapsed, ms(50) + common::MARGIN, "wait_until(50 ms)");
}

#[test]
fn wait_timeout_returns_false_at_timeout() {
    let token = StopSource::new().token();
    let (stopped, elapsed) = timed(|| token.wait_timeout(ms(30)));
    assert!(!stopped);
    assert!(
        elapsed >= ms(30),
        "returned after {elapsed:?}, before the timeout"
    );
    assert_within(elapsed, ms(30) + common::MARGIN, "wait_timeout(30 ms)");
}

#[test]
fn wait_until_past_deadline_returns_at_once() {
    let token = StopSource::new().token();
    let (stopped, elapsed) = timed(|| token.wait_until(Instant::now()));
    assert!(!stopped);
    assert_within(elapsed, common::MARGIN, "wait_until(now)");
    assert!(!token.wait_timeout(Duration::ZERO));
}

#[test]
fn wait_on_stopped_token_returns_true_at_once() {
    let source = StopSource::new();
    source.stop();
    let token = source.token();
    let (stopped, elapsed) = timed(|| {
        token.wait();
        token.wait_timeout(LONG) && token.wait_until(threadhost::Deadline::NEVER)
    });
    assert!(stopped);
    assert_within(elapsed, common::MARGIN, "waits on a stopped token");
}

#[test]
fn sleep_returns_ok_after_duration() {
    let token = StopSource::new().token();
    let (result, elapsed) = timed(|| token.sleep(ms(20)));
    assert_eq!(result, Ok(()));
    assert!(elapsed >= ms(20), "slept only {elapsed:?}");
}

#[test]
fn sleep_is_interrupted_by_stop() {
    let source = StopSource::new();
    let token = source.token();
    let ready = Probe::new();
    let r = ready.clone();
    let sleeper = spawn("sleeper", move || {
        r.set();
        timed(|| token.sleep(LONG))
    });
    ready.expect("sleeper ready");
    source.stop();
    let (result, elapsed) = sleeper.join().unwrap();
    assert_eq!(result, Err(Stopped));
    assert_within(elapsed, WOKEN, "sleep(30 s) interrupted by stop");
}

#[test]
fn sleep_when_already_stopped_is_err_at_once() {
    let source = StopSource::new();
    source.stop();
    let (result, elapsed) = timed(|| source.token().sleep(LONG));
    assert_eq!(result, Err(Stopped));
    assert_within(elapsed, common::MARGIN, "sleep on a stopped token");
    assert_eq!(
        source.token().sleep_until(Instant::now() + LONG),
        Err(Stopped)
    );
}

#[test]
fn stopped_is_an_error_saying_stopped() {
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(Stopped);
    assert_eq!(e.to_string(), "stopped");
    assert!(e.is::<Stopped>());
}

#[test]
fn never_token_never_stops() {
    let token = StopToken::never();
    assert!(!token.is_stopped());
    assert!(!token.wait_timeout(ms(5)));
    assert_eq!(token.sleep(ms(1)), Ok(()));
    assert_eq!(token.reason(), None);
}

#[test]
fn child_stops_with_parent_with_same_reason() {
    let parent = StopSource::new();
    let child = parent.token().child();
    let grandchild = child.token().child();
    let from_source = parent.child();
    let service = Arc::<str>::from("db");
    parent.stop_with(StopReason::Failure {
        service: Arc::clone(&service),
    });
    let expected = Some(StopReason::Failure { service });
    for t in [&child, &grandchild, &from_source] {
        assert!(t.is_stopped());
        assert_eq!(t.reason(), expected);
    }
}

#[test]
fn parent_stop_wakes_child_waiter() {
    let parent = StopSource::new();
    let child = parent.token().child();
    let token = child.token();
    let ready = Probe::new();
    let r = ready.clone();
    let waiter = spawn("child-waiter", move || {
        r.set();
        timed(|| token.wait_timeout(LONG))
    });
    ready.expect("waiter ready");
    parent.stop_with(StopReason::Signal { name: "SIGTERM" });
    let (stopped, elapsed) = waiter.join().unwrap();
    assert!(stopped);
    assert_within(elapsed, WOKEN, "child waiter woken by the parent's stop");
    assert_eq!(child.reason(), Some(StopReason::Signal { name: "SIGTERM" }));
}

#[test]
fn child_stop_does_not_stop_parent() {
    let parent = StopSource::new();
    let child = parent.token().child();
    let sibling = parent.token().child();
    assert!(child.stop());
    assert!(child.is_stopped());
    assert!(!parent.is_stopped());
    assert!(!sibling.is_stopped());
    assert!(!parent.token().wait_timeout(ms(1)));
}

#[test]
fn child_of_stopped_parent_is_born_stopped() {
    let parent = StopSource::new();
    parent.stop_with(StopReason::Deadline);
    let child = parent.token().child();
    assert!(child.is_stopped());
    assert_eq!(child.reason(), Some(StopReason::Deadline));
    assert!(child.token().wait_timeout(ms(1)));
    // And its own children too.
    assert!(child.token().child().is_stopped());
}

#[test]
fn child_has_its_own_reason_when_stopped_first() {
    let parent = StopSource::new();
    let child = parent.child();
    child.stop_with(StopReason::Signal { name: "SIGTERM" });
    parent.stop();
    assert_eq!(child.reason(), Some(StopReason::Signal { name: "SIGTERM" }));
    assert_eq!(parent.reason(), Some(StopReason::Requested));
}

#[test]
fn dropped_child_is_freed() {
    // A dropped child (source and tokens) frees its node, and with it its callbacks: the
    // parent holds no strong reference to it.
    let parent = StopSource::new();
    let drops = DropCounter::new();
    for _ in 0..100 {
        let child = parent.token().child();
        let counted = drops.token();
        child.token().on_stop(move |_| drop(counted)).forget();
    }
    assert_eq!(drops.drops(), 100);
    parent.stop();
}

#[test]
fn on_stop_runs_once_on_stopping_thread() {
    let source = StopSource::new();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&runs);
    let registration = source.token().on_stop(move |reason| {
        r.lock().unwrap().push((
            reason.clone(),
            std::thread::current().name().map(str::to_owned),
        ));
    });
    assert!(runs.lock().unwrap().is_empty(), "ran before the stop");
    let stopper = {
        let source = source.clone();
        spawn("stopper", move || {
            source.stop_with(StopReason::Signal { name: "SIGTERM" });
            source.stop();
        })
    };
    stopper.join().unwrap();
    source.stop();
    let runs = runs.lock().unwrap();
    assert_eq!(
        *runs,
        [(
            StopReason::Signal { name: "SIGTERM" },
            Some("test:stopper".to_owned())
        )]
    );
    drop(registration);
}

#[test]
fn on_stop_runs_at_once_if_already_stopped() {
    let source = StopSource::new();
    source.stop_with(StopReason::Deadline);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&runs);
    let me = std::thread::current().id();
    let registration = source.token().on_stop(move |reason| {
        r.lock()
            .unwrap()
            .push((reason.clone(), std::thread::current().id() == me));
    });
    // It ran during `on_stop`, on this thread, with the stored reason.
    assert_eq!(*runs.lock().unwrap(), [(StopReason::Deadline, true)]);
    drop(registration);
    source.stop();
    assert_eq!(runs.lock().unwrap().len(), 1);
}

#[test]
fn dropping_registration_unregisters() {
    let source = StopSource::new();
    let ran = Probe::new();
    let drops = DropCounter::new();
    let r = ran.clone();
    let counted = drops.token();
    let registration = source.token().on_stop(move |_| {
        let _keep = &counted;
        r.set();
    });
    drop(registration);
    // The closure (and what it owns) is freed at once, not kept until the stop.
    assert_eq!(drops.drops(), 1);
    source.stop();
    assert!(!ran.is_set(), "an unregistered callback ran");
}

#[test]
fn forget_keeps_registration() {
    let source = StopSource::new();
    let ran = Probe::new();
    let r = ran.clone();
    source.token().on_stop(move |_| r.set()).forget();
    source.stop();
    assert_eq!(ran.count(), 1);
}

#[test]
fn registration_dropped_after_stop_is_harmless() {
    let source = StopSource::new();
    let ran = Probe::new();
    let r = ran.clone();
    let registration = source.token().on_stop(move |_| r.set());
    source.stop();
    drop(registration);
    assert_eq!(ran.count(), 1);
}

#[test]
fn registration_outliving_its_token_is_harmless() {
    let registration: Registration;
    {
        let source = StopSource::new();
        registration = source.token().on_stop(|_| {});
    }
    drop(registration);
}

#[test]
fn panicking_callback_does_not_prevent_others_or_stop() {
    let source = StopSource::new();
    let token = source.token();
    let ran = Arc::new(AtomicUsize::new(0));
    let mut registrations = Vec::new();
    for i in 0..5 {
        let ran = Arc::clone(&ran);
        registrations.push(token.on_stop(move |_| {
            assert!(i != 2, "callback {i} panics on purpose");
            ran.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let child = token.child();
    assert!(source.stop(), "stop must complete despite the panic");
    assert!(token.is_stopped());
    assert!(child.is_stopped());
    assert_eq!(
        ran.load(Ordering::SeqCst),
        4,
        "the other callbacks must all run"
    );
    // The token is still usable afterwards.
    assert!(token.wait_timeout(ms(1)));
}

#[test]
fn panicking_callback_on_stopped_token_is_caught() {
    let source = StopSource::new();
    source.stop();
    let registration = source
        .token()
        .on_stop(|_| panic!("late callback panics on purpose"));
    drop(registration);
    assert!(source.is_stopped());
}

#[test]
fn callback_may_use_the_token() {
    // Callbacks run outside every lock: using the token (or its source) inside one must not
    // deadlock.
    no_deadlock("callback uses the token", || {
        let source = StopSource::new();
        let token = source.token();
        let inner = Probe::new();
        let seen = Arc::new(Mutex::new(None));
        let (t, s, i, src) = (
            token.clone(),
            Arc::clone(&seen),
            inner.clone(),
            source.clone(),
        );
        let registration = token.on_stop(move |_| {
            let stopped = t.is_stopped() && t.wait_timeout(ms(1));
            *s.lock().unwrap() = Some((stopped, t.reason(), src.stop()));
            // Registering from inside a callback runs the new one at once.
            let i = i.clone();
            t.on_stop(move |_| i.set()).forget();
            let _child = t.child();
        });
        source.stop();
        assert_eq!(
            *seen.lock().unwrap(),
            Some((true, Some(StopReason::Requested), false))
        );
        assert!(inner.is_set());
        drop(registration);
    });
}

#[test]
fn callback_may_drop_its_own_registration_elsewhere() {
    // A callback that drops another callback's registration (unregistering under a stop)
    // must not deadlock.
    no_deadlock("callback drops a registration", || {
        let source = StopSource::new();
        let token = source.token();
        let other: Arc<Mutex<Option<Registration>>> = Arc::new(Mutex::new(None));
        let o = Arc::clone(&other);
        token
            .on_stop(move |_| drop(o.lock().unwrap().take()))
            .forget();
        *other.lock().unwrap() = Some(token.on_stop(|_| {}));
        source.stop();
    });
}

#[test]
fn waiters_wake_before_callbacks_run() {
    // A callback that waits for a woken waiter: if waiters were only woken after the
    // callbacks (or the callbacks ran under the lock), this would time out.
    let source = StopSource::new();
    let token = source.token();
    let woke = Probe::new();
    let ready = Probe::new();
    let (w, r) = (woke.clone(), ready.clone());
    let waiter = spawn("waiter", move || {
        r.set();
        let stopped = token.wait_timeout(LONG);
        w.set();
        stopped
    });
    ready.expect("waiter ready");
    let seen_in_callback = Arc::new(Mutex::new(false));
    let (w, s) = (woke.clone(), Arc::clone(&seen_in_callback));
    source
        .token()
        .on_stop(move |_| *s.lock().unwrap() = w.wait(common::PATIENCE))
        .forget();
    source.stop();
    assert!(waiter.join().unwrap());
    assert!(
        *seen_in_callback.lock().unwrap(),
        "the waiter was not woken while the callback ran"
    );
}

#[test]
fn child_callbacks_run_when_parent_stops() {
    let parent = StopSource::new();
    let child = parent.token().child();
    let ran = Probe::new();
    let r = ran.clone();
    let registration = child.token().on_stop(move |reason| {
        assert_eq!(*reason, StopReason::Signal { name: "SIGTERM" });
        r.set();
    });
    parent.stop_with(StopReason::Signal { name: "SIGTERM" });
    assert_eq!(ran.count(), 1);
    drop(registration);
}

#[test]
fn concurrent_stops_run_callbacks_once() {
    for _ in 0..50 {
        let source = StopSource::new();
        let ran = Probe::new();
        let r = ran.clone();
        source.token().on_stop(move |_| r.set()).forget();
        let barrier = Arc::new(Barrier::new(4));
        let stoppers: Vec<_> = (0..4)
            .map(|i| {
                let (source, barrier) = (source.clone(), Arc::clone(&barrier));
                spawn(&format!("stopper{i}"), move || {
                    barrier.wait();
                    source.stop()
                })
            })
            .collect();
        let winners = stoppers
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&won| won)
            .count();
        assert_eq!(winners, 1, "exactly one stop() must report that it stopped");
        assert_eq!(ran.count(), 1);
    }
}

#[test]
fn reason_is_none_until_stopped_then_first_reason_wins() {
    let source = StopSource::new();
    assert_eq!(source.reason(), None);
    assert_eq!(source.token().reason(), None);
    source.stop_with(StopReason::Signal { name: "SIGTERM" });
    source.stop_with(StopReason::Deadline);
    assert_eq!(
        source.reason(),
        Some(StopReason::Signal { name: "SIGTERM" })
    );
    assert_eq!(
        source.token().reason(),
        Some(StopReason::Signal { name: "SIGTERM" })
    );
}

#[test]
fn reason_tells_each_cause_apart() {
    let reasons = [
        StopReason::Requested,
        StopReason::Deadline,
        StopReason::Failure {
            service: Arc::from("db"),
        },
        StopReason::Signal { name: "SIGTERM" },
    ];
    let mut texts = Vec::new();
    for reason in reasons {
        let source = StopSource::new();
        source.stop_with(reason.clone());
        assert_eq!(source.token().reason(), Some(reason.clone()));
        texts.push(reason.to_string());
    }
    assert!(texts[2].contains("db"), "{}", texts[2]);
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 4, "each reason displays differently");
}

#[test]
fn drop_guard_stops_on_drop() {
    let source = StopSource::new();
    let token = source.token();
    let guard: StopGuard = source.drop_guard();
    assert!(!token.is_stopped());
    drop(guard);
    assert!(token.is_stopped());
    assert_eq!(token.reason(), Some(StopReason::Requested));
}

#[test]
fn drop_guard_stops_on_panic_unwind() {
    let source = StopSource::new();
    let token = source.token();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = source.drop_guard();
        panic!("unwinding through a guard on purpose");
    }));
    assert!(result.is_err());
    assert!(token.is_stopped());
}

#[test]
fn disarm_returns_the_source_unstopped() {
    let source = StopSource::new();
    let token = source.token();
    let guard = source.clone().drop_guard();
    let back = guard.disarm();
    assert!(!token.is_stopped(), "a disarmed guard must not stop");
    assert!(back == source, "disarm gives back the same source");
    back.stop();
    assert!(token.is_stopped());
}

#[test]
fn clones_are_the_same_token() {
    let source = StopSource::new();
    let a = source.token();
    let b = a.clone();
    let c = source.token();
    assert!(a == b && a == c);
    assert!(a.same_as(&c));
    let source2 = source.clone();
    assert!(source2 == source);
    source2.stop();
    assert!(a.is_stopped() && source.is_stopped());
}

#[test]
fn child_is_a_new_node() {
    let source = StopSource::new();
    let token = source.token();
    let child = token.child();
    assert!(child.token() != token);
    assert!(!child.token().same_as(&token));
    assert!(child != source);
    assert!(StopSource::new() != StopSource::new());
    assert!(StopToken::never() != StopToken::never());
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StopSource>();
    assert_send_sync::<StopToken>();
    assert_send_sync::<Registration>();
    assert_send_sync::<StopGuard>();
    assert_send_sync::<StopReason>();
    assert_send_sync::<Stopped>();
}

#[test]
fn debug_shows_the_reason() {
    let source = StopSource::new();
    source.stop_with(StopReason::Signal { name: "SIGTERM" });
    let s = format!("{:?} {:?}", source, source.token());
    assert!(s.contains("Signal"), "{s}");
}

/// Spins until `pred` holds, yielding now and then so that a loaded machine still makes
/// progress; gives up (returns `false`) when `abort` is set.
fn spin_until(pred: impl Fn() -> bool, abort: &AtomicBool) -> bool {
    let mut n = 0u32;
    while !pred() {
        if abort.load(Ordering::Acquire) {
            return false;
        }
        n = n.wrapping_add(1);
        if n % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    true
}

/// Busy-waits `n` spin-loop hints: a few tens of nanoseconds each.
fn spin(n: usize) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// The lost-wake-up race, `iterations` times, on long-lived threads: each waiter announces it
/// is about to wait (an atomic, so the stopper sees it within nanoseconds, unlike a
/// condvar-based barrier), then both sides spin a varying number of steps, so that over the
/// iterations the `stop()` sweeps across every point of the waiter's check-then-wait window.
/// The waiters use every wait flavour in turn. A lost wake-up makes a waiter sleep its full
/// 10 s; it is counted, and the test then fails instead of hanging.
fn lost_wakeup_stress(iterations: usize, waiters: usize) {
    let sources: Arc<Vec<StopSource>> =
        Arc::new((0..iterations).map(|_| StopSource::new()).collect());
    let ready: Arc<Vec<AtomicUsize>> =
        Arc::new((0..waiters).map(|_| AtomicUsize::new(0)).collect());
    let failed = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let mut handles = Vec::new();
    for w in 0..waiters {
        let (sources, ready, failed, slowest) = (
            Arc::clone(&sources),
            Arc::clone(&ready),
            Arc::clone(&failed),
            Arc::clone(&slowest),
        );
        handles.push(spawn(&format!("waiter{w}"), move || {
            for (i, source) in sources.iter().enumerate() {
                let token = source.token();
                let child = token.child().token();
                ready[w].store(i + 1, Ordering::Release);
                spin((i * 7 + w * 13) % 61);
                let began = Instant::now();
                let woke = match (i + w) % 4 {
                    0 => token.wait_timeout(Duration::from_secs(10)),
                    1 => token.wait_until(Instant::now() + Duration::from_secs(10)),
                    2 => token.sleep(Duration::from_secs(10)).is_err(),
                    _ => child.wait_timeout(Duration::from_secs(10)),
                };
                let elapsed = began.elapsed();
                if !woke || elapsed >= WOKEN {
                    failed.store(true, Ordering::Release);
                    return Some(format!(
                        "iteration {i}: waiter {w} woke={woke} after {elapsed:?}: lost wake-up"
                    ));
                }
                let mut s = slowest.lock().unwrap();
                *s = (*s).max(elapsed);
            }
            None
        }));
    }
    for (i, source) in sources.iter().enumerate() {
        let all_ready = || ready.iter().all(|r| r.load(Ordering::Acquire) > i);
        if !spin_until(all_ready, &failed) {
            break;
        }
        spin((i * 11) % 67);
        source.stop();
    }
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(sources.iter().all(StopSource::is_stopped));
    #[allow(clippy::print_stderr)]
    let () = eprintln!(
        "lost_wakeup_stress: {iterations} iterations x {waiters} waiters, slowest wake-up {:?}",
        *slowest.lock().unwrap()
    );
}

#[test]
fn no_lost_wakeup_when_stop_races_the_wait() {
    let iterations = if cfg!(miri) { 50 } else { 10_000 };
    lost_wakeup_stress(iterations, 1);
}

#[test]
fn no_lost_wakeup_with_several_waiters() {
    let iterations = if cfg!(miri) { 20 } else { 3_000 };
    lost_wakeup_stress(iterations, 3);
}

#[test]
#[ignore = "long stress: cargo test --release --test stop_token -- --ignored"]
fn no_lost_wakeup_long() {
    lost_wakeup_stress(500_000, 1);
    lost_wakeup_stress(100_000, 3);
}

/// Runs `a` and `b` on two threads released together (within nanoseconds, each after a
/// varying spin), `iterations` times; `setup` makes the shared state of one iteration and
/// `check` inspects it afterwards.
fn race<S: Send + Sync + 'static>(
    iterations: usize,
    setup: impl Fn() -> S,
    a: impl Fn(&S) + Send + Sync + 'static,
    b: impl Fn(&S) + Send + Sync + 'static,
    check: impl Fn(&S),
) {
    let states: Arc<Vec<S>> = Arc::new((0..iterations).map(|_| setup()).collect());
    // The racer announces each iteration; the main side says when it finished one.
    let racer_at = Arc::new(AtomicUsize::new(0));
    let main_done = Arc::new(AtomicUsize::new(0));
    let never = Arc::new(AtomicBool::new(false));
    let other = {
        let (states, racer_at, main_done, never) = (
            Arc::clone(&states),
            Arc::clone(&racer_at),
            Arc::clone(&main_done),
            Arc::clone(&never),
        );
        spawn("racer", move || {
            for (i, s) in states.iter().enumerate() {
                racer_at.store(i + 1, Ordering::Release);
                spin(i % 37);
                b(s);
                spin_until(|| main_done.load(Ordering::Acquire) > i, &never);
            }
        })
    };
    for (i, s) in states.iter().enumerate() {
        spin_until(|| racer_at.load(Ordering::Acquire) > i, &never);
        spin((i * 5) % 41);
        a(s);
        main_done.store(i + 1, Ordering::Release);
    }
    other.join().unwrap();
    for s in states.iter() {
        check(s);
    }
}

#[test]
fn on_stop_racing_stop_runs_exactly_once() {
    race(
        2_000,
        || (StopSource::new(), Arc::new(AtomicUsize::new(0))),
        |(source, runs)| {
            let runs = Arc::clone(runs);
            source
                .token()
                .on_stop(move |_| {
                    runs.fetch_add(1, Ordering::SeqCst);
                })
                .forget();
        },
        |(source, _)| {
            source.stop();
        },
        |(_, runs)| assert_eq!(runs.load(Ordering::SeqCst), 1),
    );
}

#[test]
fn registration_drop_racing_stop_runs_at_most_once() {
    race(
        2_000,
        || {
            let source = StopSource::new();
            let runs = Arc::new(AtomicUsize::new(0));
            let r = Arc::clone(&runs);
            let registration = source.token().on_stop(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            });
            (source, runs, Mutex::new(Some(registration)))
        },
        |(_, _, registration)| drop(registration.lock().unwrap().take()),
        |(source, _, _)| {
            source.stop();
        },
        |(_, runs, _)| assert!(runs.load(Ordering::SeqCst) <= 1),
    );
}

#[test]
fn child_created_racing_parent_stop_is_stopped() {
    race(
        2_000,
        || (StopSource::new(), Mutex::new(None::<StopSource>)),
        |(parent, child)| *child.lock().unwrap() = Some(parent.token().child()),
        |(parent, _)| {
            parent.stop_with(StopReason::Signal { name: "SIGTERM" });
        },
        |(_, child)| {
            let child = child.lock().unwrap();
            let child = child.as_ref().unwrap();
            assert!(
                child.is_stopped(),
                "a child made while its parent stopped missed it"
            );
            assert_eq!(child.reason(), Some(StopReason::Signal { name: "SIGTERM" }));
        },
    );
}
