//! A hostile check of the library's logging against its locks: a logger is user code, and
//! logging is synchronous (`log` calls the logger on the thread that logs), so a record
//! logged under a threadhost lock would let a slow logger hold that lock, and a logger that
//! blocks would hang whoever needs it — the host's stop first.
//!
//! This binary installs its own `log::Log`. In one test it probes, for every record of the
//! library, whether the host's lifecycle lock is free (a helper thread must get it within a
//! bound) through a lifecycle that logs on most paths: a start, failures and restarts in a
//! group, a change at run time, a queue's jobs failing, the endpoint, a stop that overruns.
//! In the other it blocks every record logged on a thread other than the one stopping the
//! host: the stop still returns by its deadline.
//!
//! What does not hold, by design: a logger that blocks on the stopping thread's own record
//! delays that stop (the stop logs its progress synchronously, on its caller's thread).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use threadhost::{
    Backoff, HostBuilder, HostHandle, Policy, RestartType, Service, StopReason, Strategy,
};

/// One test at a time: both use the one logger of this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// The logger's mode and what it saw.
struct Probing {
    /// Probe the lock of this host for every record of the library.
    host: Mutex<Option<HostHandle>>,
    /// Records logged while the lock was not free (their messages).
    held: Mutex<Vec<String>>,
    /// Records seen in all.
    seen: AtomicUsize,
    /// The messages seen (to show which paths were covered).
    messages: Mutex<Vec<String>>,
    /// Block records of every thread but the one named here until `release` opens.
    block_except: Mutex<Option<String>>,
    release: Gate,
    blocked: AtomicUsize,
}

fn logger() -> &'static Probing {
    static LOGGER: OnceLock<Probing> = OnceLock::new();
    let probing = LOGGER.get_or_init(|| Probing {
        host: Mutex::new(None),
        held: Mutex::new(Vec::new()),
        seen: AtomicUsize::new(0),
        messages: Mutex::new(Vec::new()),
        block_except: Mutex::new(None),
        release: Gate::new(),
        blocked: AtomicUsize::new(0),
    });
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        struct Facade;
        impl log::Log for Facade {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                true
            }
            fn log(&self, record: &log::Record<'_>) {
                logger().record(record);
            }
            fn flush(&self) {}
        }
        static FACADE: Facade = Facade;
        log::set_logger(&FACADE).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    }
    probing
}

impl Probing {
    fn record(&self, record: &log::Record<'_>) {
        if !record.target().starts_with("threadhost") {
            return;
        }
        let text = format!("{}", record.args());
        self.seen.fetch_add(1, Ordering::SeqCst);
        self.messages.lock().unwrap().push(text.clone());
        let host = self.host.lock().unwrap().clone();
        if let Some(host) = host
            && !lock_is_free(&host)
        {
            self.held.lock().unwrap().push(text.clone());
        }
        let except = self.block_except.lock().unwrap().clone();
        if let Some(except) = except {
            let me = std::thread::current().name().unwrap_or("").to_owned();
            if !me.ends_with(&except) {
                self.blocked.fetch_add(1, Ordering::SeqCst);
                self.release.wait();
            }
        }
    }
}

/// A hosted service whose stop waits for the gate (if any), then returns the result.
struct Hooks(Option<Gate>, Result<(), &'static str>);

impl threadhost::HostedService for Hooks {
    fn start(&mut self, _: &threadhost::Context) -> threadhost::ServiceResult {
        Ok(())
    }
    fn stop(&mut self, _: &threadhost::Context) -> threadhost::ServiceResult {
        if let Some(gate) = &self.0 {
            gate.wait();
        }
        self.1.map_err(Into::into)
    }
}

/// Every record the library logs through a busy lifecycle is logged with the host's
/// lifecycle lock free.
#[test]
fn no_record_is_logged_under_the_lifecycle_lock() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let log = logger();
    let runs = Arc::new(AtomicUsize::new(0));
    let theirs = Arc::clone(&runs);
    let gate = Gate::new();
    let _opener = gate.opener();
    let held = gate.clone();
    let builder = HostBuilder::new()
        .group("g", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .intensity(50, Duration::from_secs(60))
                .add_service(
                    Service::background("flaky", move |ctx| {
                        if theirs.fetch_add(1, Ordering::SeqCst) < 3 {
                            return Err("flaky fails".into());
                        }
                        ctx.token().wait();
                        Ok(())
                    })
                    .restart(RestartType::Permanent),
                )
                .add_service(idle_service("sibling").restart(RestartType::Permanent))
        })
        .add_service(
            Service::background("panics", |_| panic!("a body panics")).on_failure(Policy::Ignore),
        )
        .add_service(
            Service::hosted("hangs-stop", Hooks(Some(held), Ok(()))).stop_timeout(ms(300)),
        );
    #[cfg(feature = "queue")]
    let (builder, producer) = {
        let (queue, producer) = threadhost::WorkQueue::builder("jobs")
            .build(|n: u32, _: &threadhost::StopToken| {
                if n % 2 == 0 {
                    panic!("job {n} panics");
                }
                Err(format!("job {n} fails").into())
            })
            .unwrap();
        (builder.add_service(queue.into_service()), producer)
    };
    #[cfg(feature = "http")]
    let builder = builder.http_endpoint("127.0.0.1:0");
    let host = builder.build().unwrap();
    *log.host.lock().unwrap() = Some(host.handle());
    host.start(SECS5).unwrap();
    #[cfg(feature = "queue")]
    for n in 0..6 {
        producer.send(n).unwrap();
    }
    eventually("the group's restarts", || runs.load(Ordering::SeqCst) >= 4);
    let handle = host.handle();
    handle
        .add_service("g", idle_service("late"), SECS5)
        .unwrap();
    handle.restart_child("g/late", SECS5).unwrap();
    let _ = handle.remove("g/late", SECS5).unwrap();
    let err = handle.add_service("nope", idle_service("x"), SECS5);
    assert!(err.is_err());
    #[cfg(feature = "http")]
    {
        let addr = handle.http_addr().unwrap();
        let _ = http_get(addr, "/metrics");
    }
    handle.request_stop_with(StopReason::Requested);
    let report = host.join(Duration::from_secs(3)).unwrap();
    assert!(!report.is_clean(), "`hangs-stop` overran its stop timeout");
    gate.open();
    *log.host.lock().unwrap() = None;
    let held = log.held.lock().unwrap().clone();
    let seen = log.seen.load(Ordering::SeqCst);
    let messages: HashSet<String> = log.messages.lock().unwrap().iter().cloned().collect();
    assert!(
        seen >= 10,
        "the lifecycle logged {seen} records: {messages:#?}"
    );
    assert!(
        held.is_empty(),
        "records logged under the lifecycle lock: {held:#?}"
    );
}

/// A logger that blocks every record logged on another thread than the one stopping the
/// host (services failing on their stop, the queue's report, the endpoint's threads, the
/// event thread): the stop returns by its deadline all the same, because no thread logs
/// while holding a lock the stop needs.
#[test]
fn a_logger_blocked_on_other_threads_does_not_hold_the_stop() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let log = logger();
    let builder = HostBuilder::new()
        .add_service(Service::background("fails-on-stop", |ctx| {
            ctx.token().wait();
            Err("failed while stopping".into())
        }))
        .add_service(Service::hosted(
            "stop-errs",
            Hooks(None, Err("stop hook failed")),
        ))
        .group("g", |g| g.add_service(idle_service("child")));
    #[cfg(feature = "queue")]
    let (builder, producer) = {
        let (queue, producer) = threadhost::WorkQueue::builder("stopq")
            .build(|_: u32, token: &threadhost::StopToken| {
                token.wait();
                Err("cancelled job".into())
            })
            .unwrap();
        (builder.add_service(queue.into_service()), producer)
    };
    #[cfg(feature = "http")]
    let builder = builder.http_endpoint("127.0.0.1:0");
    let host = builder.build().unwrap();
    host.start(SECS5).unwrap();
    #[cfg(feature = "queue")]
    for n in 0..4 {
        producer.send(n).unwrap();
    }
    let stopper = "the-stopper";
    *log.block_except.lock().unwrap() = Some(stopper.to_owned());
    let host = Arc::new(host);
    let theirs = Arc::clone(&host);
    let deadline = Duration::from_secs(2);
    let (report, took) = spawn(stopper, move || timed(|| theirs.stop(deadline)))
        .join()
        .unwrap();
    *log.block_except.lock().unwrap() = None;
    let blocked = log.blocked.load(Ordering::SeqCst);
    log.release.open();
    assert_within(took, deadline + MARGIN, "the stop with a blocked logger");
    assert!(
        blocked > 0,
        "some record was blocked (the test tests something)"
    );
    assert!(!report.is_in_progress(), "{report}");
}
