//! A logger that panics on every record (a logger is user code) breaks no promise: a work
//! queue counts every item and reports, a host with a restarting service stops with a
//! complete report by its deadline, a group still restarts, a periodic service ticks and
//! stops; and no line of `src/` calls the `log` macros but through `crate::logging`. Its
//! own test binary, as it installs a process-wide logger that panics.
#![cfg(all(feature = "queue", feature = "periodic"))]

mod common;

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    Events, Flaky, MARGIN, SECS5, eventually, flaky, idle, ms, outcome_of, start_host, within,
};
use threadhost::{
    Backoff, Group, HostBuilder, Outcome, Periodic, Policy, Service, ServiceState, Strategy,
    WorkQueue,
};

/// Panics on every record it is given, counting them first; every other panic's payload
/// panics again when dropped.
struct PanickingLogger;

/// A panic payload whose `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("a logger's panic payload that panics when dropped");
    }
}

/// The records the logger was given (and panicked on).
static RECORDS: AtomicU64 = AtomicU64::new(0);

impl log::Log for PanickingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if RECORDS.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            panic!("a logger that panics on `{}`", record.args());
        }
        std::panic::panic_any(Bomb);
    }
    fn flush(&self) {
        panic!("a logger that panics on flush");
    }
}

/// Installs the panicking logger, once per test binary, every level enabled.
fn install() {
    static ONCE: Once = Once::new();
    static LOGGER: PanickingLogger = PanickingLogger;
    ONCE.call_once(|| {
        log::set_logger(&LOGGER).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

#[test]
fn a_work_queue_counts_every_item_and_reports() {
    install();
    let before = RECORDS.load(Ordering::SeqCst);
    let (queue, producer) = WorkQueue::builder("jobs")
        .workers(2)
        .retry(2, Backoff::fixed(ms(1)))
        .build_jobs(flaky)
        .unwrap();
    let handle = queue.handle();
    let host = start_host(HostBuilder::new().add_service(queue));
    for item in 0..30 {
        producer.send(item).unwrap();
    }
    let report = within(SECS5 + MARGIN, "the stop", || host.stop(SECS5));
    assert!(report.is_complete(), "{report}");
    assert!(
        matches!(outcome_of(&report, "jobs"), Outcome::Stopped),
        "{report}"
    );
    let queue = handle.take_report().expect("the queue's report arrives");
    let m = queue.metrics;
    assert_eq!(m.sent, 30, "{m}");
    assert_eq!(
        m.completed
            + m.failed
            + m.cancelled
            + m.panicked
            + m.dropped
            + m.dead_lettered
            + m.returned,
        m.sent,
        "{m}"
    );
    // No retry was lost to the logger either: every failing item was retried, then
    // dead-lettered with the failure of its last attempt.
    assert_eq!(
        (m.completed, m.dead_lettered, m.retried),
        (10, 20, 20),
        "{m}"
    );
    assert_eq!(queue.dead_letters.len(), 20);
    assert_eq!(queue.detached_workers, 0);
    // The logger was called (and panicked) along the way.
    assert!(RECORDS.load(Ordering::SeqCst) > before);
}

#[test]
fn a_host_with_a_restarting_service_stops_with_a_complete_report() {
    install();
    let policy = Policy::Restart {
        backoff: Backoff::fixed(ms(1)),
        max_restarts: 1000,
        within: Duration::from_secs(60),
    };
    let host = start_host(
        HostBuilder::new()
            .add_service(Service::background("a", idle))
            .add_service(Service::background("bad", |_ctx| Err("down".into())).on_failure(policy))
            .add_service(Service::background("c", idle))
            .add_service(Service::background("done", |_ctx| Ok(()))),
    );
    let handle = host.handle();
    eventually("three restarts of `bad`", || {
        handle
            .snapshot()
            .service("bad")
            .is_some_and(|s| s.restarts >= 3)
    });
    let report = within(SECS5 + MARGIN, "the stop", || host.stop(SECS5));
    assert!(report.is_complete(), "{report}");
    assert!(report.timed_out().is_empty(), "{report}");
    for name in ["a", "c", "done"] {
        assert!(
            matches!(outcome_of(&report, name), Outcome::Stopped),
            "{name}: {report}"
        );
    }
    // `bad` is accounted for, whatever it was doing when the stop came.
    let _ = outcome_of(&report, "bad");
    assert_eq!(report.services().len(), 4, "{report}");
}

#[test]
fn a_group_still_restarts() {
    install();
    let log = Events::new();
    let host = start_host(
        HostBuilder::new().add_group(
            Group::new("g")
                .strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .intensity(5, Duration::from_secs(60))
                .background_service("a", Flaky::failing("a", &log, 0))
                .background_service("b", Flaky::failing("b", &log, 1))
                .background_service("c", Flaky::failing("c", &log, 0)),
        ),
    );
    let handle = host.handle();
    eventually("the group restarted and running", || {
        handle
            .snapshot()
            .group("g")
            .is_some_and(|g| g.restarts == 1 && g.state == ServiceState::Running)
    });
    // All three were started again (one-for-all).
    eventually("each child started twice", || {
        ["a", "b", "c"].iter().all(|n| {
            let start = format!("{n}:start");
            log.names().iter().filter(|e| **e == start).count() == 2
        })
    });
    let report = within(SECS5 + MARGIN, "the stop", || host.stop(SECS5));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_periodic_service_ticks_and_stops() {
    install();
    let ticks = std::sync::Arc::new(AtomicU64::new(0));
    let seen = std::sync::Arc::clone(&ticks);
    let service = Periodic::every(ms(5))
        .build("timer", move |tick| {
            seen.fetch_add(1, Ordering::SeqCst);
            // Every other tick fails: its failure is logged.
            if tick.index() % 2 == 1 {
                Err("a failing tick".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    let host = start_host(HostBuilder::new().add_service(service));
    eventually("six ticks", || ticks.load(Ordering::SeqCst) >= 6);
    let report = within(SECS5 + MARGIN, "the stop", || host.stop(SECS5));
    assert!(report.is_clean(), "{report}");
    assert!(
        matches!(outcome_of(&report, "timer"), Outcome::Stopped),
        "{report}"
    );
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The rule holds by construction only if no line calls the `log` macros directly: every
/// line of `src/` (outside doc comments and `src/logging.rs`) goes through
/// `crate::logging`.
#[test]
fn no_log_line_of_the_crate_calls_the_logger_uncaught() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "{files:?}");
    let mut raw = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("logging.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for level in ["error", "warn", "info", "debug", "trace", "log"] {
                let call = format!("log::{level}!");
                let guarded = format!("crate::logging::{level}!");
                if line.replace(&guarded, "").contains(&call) {
                    raw.push(format!("{}:{}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(raw.is_empty(), "uncaught log lines:\n{}", raw.join("\n"));
}
