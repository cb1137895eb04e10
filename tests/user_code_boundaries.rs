//! User code at threadhost's boundaries: a user's error value is dropped, and a failure is
//! logged (the logger and the error's `Display`), with no threadhost lock held; a panic payload
//! whose own `Drop` panics does not escape a service thread, a stop call or the listener
//! thread; an error whose `Display` or `Drop` panics does not end a service thread before its
//! failure policy runs, nor a queue worker.
//!
//! Whether the host's lifecycle lock is held is probed from the user code itself: a helper
//! thread calls `HostHandle::stop_reason` (which takes that lock) and must answer within a
//! bound. If the probing thread held the lock, the helper answers only after it is released,
//! too late; the test then fails instead of deadlocking.

mod common;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{PATIENCE, Probe, ms};
use crossbeam_channel::{Sender, unbounded};
use threadhost::{
    Backoff, Context, HostBuilder, HostHandle, HostedService, Policy, Service, ServiceResult,
    StopReason, StopSource,
};

/// How long the probe's helper may take to get the lifecycle lock when it is free.
const PROBE: Duration = Duration::from_secs(3);

/// `true` if the host's lifecycle lock is free (not held by the calling thread, or by anyone
/// for long).
fn lock_is_free(host: &HostHandle) -> bool {
    let (tx, rx) = unbounded();
    let host = host.clone();
    let _helper = common::spawn("lock-probe", move || {
        let _ = host.stop_reason();
        let _ = tx.send(());
    });
    rx.recv_timeout(PROBE).is_ok()
}

/// A logger that formats every record (so that a failure's `Display` runs).
struct Formatting;

impl log::Log for Formatting {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let _ = format!("{}", record.args());
    }
    fn flush(&self) {}
}

fn install_logger() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        static LOGGER: Formatting = Formatting;
        log::set_logger(&LOGGER).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// An error whose `Drop` reports whether the lifecycle lock was free.
#[derive(Debug)]
struct ProbedDrop {
    host: HostHandle,
    seen: Sender<bool>,
}

impl fmt::Display for ProbedDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error that probes the lock when dropped")
    }
}

impl std::error::Error for ProbedDrop {}

impl Drop for ProbedDrop {
    fn drop(&mut self) {
        let _ = self.seen.send(lock_is_free(&self.host));
    }
}

#[test]
fn a_replaced_failure_is_dropped_with_no_lock_held() {
    // Run 1 fails with a probed error; run 2 fails with another error, which replaces the
    // first as the service's last error: the first one's last reference goes then.
    let (seen_tx, seen) = unbounded();
    let runs = Arc::new(AtomicUsize::new(0));
    let host = HostBuilder::new()
        .add_service(
            Service::background("flaky", move |ctx| {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(Box::new(ProbedDrop {
                        host: ctx.host().clone(),
                        seen: seen_tx.clone(),
                    })),
                    1 => Err("plain failure".into()),
                    _ => {
                        ctx.token().wait();
                        Ok(())
                    }
                }
            })
            .on_failure(Policy::Restart {
                backoff: Backoff::fixed(ms(1)),
                max_restarts: 10,
                within: Duration::from_secs(60),
            }),
        )
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let free = seen
        .recv_timeout(PATIENCE + PROBE)
        .expect("the first error is dropped once replaced");
    assert!(
        free,
        "a user's error value was dropped under the lifecycle lock"
    );
    assert!(host.stop(PATIENCE).is_complete());
}

/// An error whose `Display` reports whether the lifecycle lock was free.
#[derive(Debug)]
struct ProbedDisplay {
    host: HostHandle,
    seen: Sender<bool>,
}

impl fmt::Display for ProbedDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = self.seen.send(lock_is_free(&self.host));
        f.write_str("a stop that failed")
    }
}

impl std::error::Error for ProbedDisplay {}

struct FailingStop {
    seen: Sender<bool>,
}

impl HostedService for FailingStop {
    fn start(&mut self, _: &Context) -> ServiceResult {
        Ok(())
    }
    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        Err(Box::new(ProbedDisplay {
            host: ctx.host().clone(),
            seen: self.seen.clone(),
        }))
    }
}

#[test]
fn a_stop_failure_is_logged_with_no_lock_held() {
    install_logger();
    let (seen_tx, seen) = unbounded();
    let host = HostBuilder::new()
        .hosted("failing-stop", FailingStop { seen: seen_tx })
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let report = host.stop(PATIENCE + PROBE * 4);
    assert!(report.is_complete());
    let probes: Vec<bool> = seen.try_iter().collect();
    assert!(!probes.is_empty(), "the failure was logged");
    assert!(
        probes.iter().all(|&free| free),
        "a failure's Display (through the logger) ran under the lifecycle lock: {probes:?}"
    );
}

/// A panic payload whose `Drop` panics too.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the panic payload panicked when dropped");
        }
    }
}

#[test]
fn a_body_panic_with_a_panicking_payload_is_recorded() {
    let host = HostBuilder::new()
        .background("bomb", |_ctx| std::panic::panic_any(Bomb))
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    // The panic is recorded and the host stops (StopHost), rather than the thread dying
    // unannounced and the host running on.
    let report = host
        .join(PATIENCE)
        .expect("the failure stops the host under StopHost");
    assert!(
        matches!(report.reason(), Some(StopReason::Failure { service }) if &**service == "bomb"),
        "{report:?}"
    );
}

#[test]
fn an_on_stop_callback_panic_with_a_panicking_payload_stays_inside_stop() {
    let source = StopSource::new();
    source
        .token()
        .on_stop(|_| std::panic::panic_any(Bomb))
        .forget();
    let ran = Probe::new();
    let after = ran.clone();
    source.token().on_stop(move |_| after.set()).forget();
    let result = catch_unwind(AssertUnwindSafe(|| source.stop()));
    assert!(result.is_ok(), "a callback's panic escaped `stop`");
    assert_eq!(ran.count(), 1, "the other callback ran");
}

#[cfg(feature = "listeners")]
#[test]
fn a_listener_panic_with_a_panicking_payload_keeps_the_listener_thread() {
    let (tx, rx) = unbounded();
    let tx = std::sync::Mutex::new(tx);
    let host = HostBuilder::new()
        .on_state_change(|_| std::panic::panic_any(Bomb))
        .on_state_change(move |event| {
            let _ = tx.lock().unwrap().send(event.change.clone());
        })
        .background("quiet", common::idle)
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    assert!(host.stop(PATIENCE).is_clean());
    // Bounded: without the fix the listener thread is gone and nothing more arrives.
    let mut changes = std::iter::from_fn(|| rx.recv_timeout(PATIENCE).ok());
    let delivered_stop = changes.any(|change| {
        matches!(
            change,
            threadhost::StateChange::Host {
                to: threadhost::HostState::Stopped,
                ..
            }
        )
    });
    assert!(delivered_stop, "the last event was not delivered");
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct PanickyDisplay;

impl fmt::Display for PanickyDisplay {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("the error's Display panicked");
    }
}

impl std::error::Error for PanickyDisplay {}

/// An error whose `Drop` panics (used by the queue's test).
#[derive(Debug)]
#[cfg_attr(not(feature = "queue"), allow(dead_code))]
struct PanickyDrop;

impl fmt::Display for PanickyDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error that panics when dropped")
    }
}

impl std::error::Error for PanickyDrop {}

impl Drop for PanickyDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the error panicked when dropped");
        }
    }
}

#[test]
fn a_failure_whose_display_panics_is_still_handled() {
    // Logging the failure (with a logger that formats it) must not unwind the service
    // thread before the failure policy runs.
    install_logger();
    let host = HostBuilder::new()
        .background("bad-display", |_ctx| Err(Box::new(PanickyDisplay)))
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let report = host
        .join(PATIENCE)
        .expect("the failure stops the host under StopHost");
    assert!(
        matches!(report.reason(), Some(StopReason::Failure { service }) if &**service == "bad-display"),
        "{report:?}"
    );
}

#[cfg(feature = "queue")]
#[test]
fn a_queue_worker_survives_a_job_error_that_panics_in_display_or_drop() {
    install_logger();
    let (queue, producer) = threadhost::TaskQueue::builder("jobs")
        .workers(1)
        .build_tasks()
        .unwrap();
    producer
        .send_task(|_| Err(Box::new(PanickyDisplay)))
        .unwrap();
    producer.send_task(|_| Err(Box::new(PanickyDrop))).unwrap();
    producer.send_task(|_| Ok(())).unwrap();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let report = host.stop(PATIENCE);
    assert!(report.is_complete());
    let m = producer.metrics();
    assert_eq!(
        (m.failed, m.completed, m.returned),
        (2, 1, 0),
        "the single worker ran every job: {m}"
    );
}

#[cfg(feature = "periodic")]
#[test]
fn a_periodic_tick_panic_with_a_panicking_payload_does_not_end_the_schedule() {
    // TickFailure::Continue (the default): the schedule goes on after a panicking tick, even
    // when dropping the panic's payload panics too.
    let (tx, rx) = unbounded();
    let periodic = threadhost::Periodic::every(ms(5));
    let stats = periodic.stats();
    let service = periodic
        .build("ticker", move |tick| {
            if tick.index() == 0 {
                std::panic::panic_any(Bomb);
            }
            let _ = tx.send(tick.index());
            Ok(())
        })
        .unwrap();
    let host = HostBuilder::new().add_service(service).build().unwrap();
    host.start(PATIENCE).unwrap();
    let later = rx
        .recv_timeout(PATIENCE)
        .expect("the schedule went on after the panicking tick");
    assert!(later >= 1);
    assert_eq!(stats.panics(), 1);
    assert_eq!(host.state(), threadhost::HostState::Running);
    assert!(host.stop(PATIENCE).is_clean());
}
