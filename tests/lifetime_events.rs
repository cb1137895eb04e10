//! The lifetime events keep their order whoever requests the stop (.NET: "shutdown will block
//! until this event completes"): the `stopping` callbacks have returned before the first
//! service is stopped, `stopped` fires after every service, and its callbacks have returned
//! before `run` (or `join`, or `stop`) returns.
//!
//! The events fire in order (`started`, `stopping`, `stopped`), also when a stop races the
//! start or the stop request, and a panicking callback does not break the sequence.
//!
//! The callbacks below are slow on purpose (`busy`: work that ignores every token), so that
//! a sequence that did not wait for them would overtake them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Action, Events, PATIENCE, Probe, Rec, SECS5, assert_before, busy, eventually, hosted, ms,
    spawn, stop_clean,
};
use threadhost::{Deadline, Host, HostBuilder, HostState, StopReason};

/// Registers on `token` a callback that records `<name>-begin`, works `d`, then records
/// `<name>-end`.
fn slow_callback(token: &threadhost::StopToken, log: &Events, name: &str, d: Duration) {
    let (log, name) = (log.clone(), name.to_owned());
    token
        .on_stop(move |_| {
            log.push(format!("{name}-begin"));
            busy(d);
            log.push(format!("{name}-end"));
        })
        .forget();
}

/// Who asks for the stop.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// `HostHandle::request_stop` from another thread (a signal thread does this).
    Request,
    /// `Host::stop` from another thread while `run` is joining.
    Stop,
    /// A service failing under the default `StopHost` policy, on its own thread.
    Failure,
}

/// The host, and a probe to set once it started (the failing service fails only then).
fn host(log: &Events, trigger: Trigger) -> (Host, Probe) {
    let started = Probe::new();
    let failing = match trigger {
        Trigger::Failure => {
            let started = started.clone();
            Rec::new("failing", log)
                .on(
                    "run",
                    Action::Call(Arc::new(move || started.expect("the host started"))),
                )
                .on("run", Action::Fail)
        }
        _ => Rec::new("failing", log),
    };
    let host = HostBuilder::new()
        .background_service("worker", Rec::new("worker", log))
        .background_service("failing", failing)
        .shutdown_timeout(PATIENCE)
        .build()
        .unwrap();
    let handle = host.handle();
    slow_callback(&handle.stopping(), log, "stopping", ms(300));
    slow_callback(&handle.stopped(), log, "stopped", ms(200));
    (host, started)
}

#[test]
fn stopping_callbacks_finish_before_any_service_stops_and_stopped_before_run_returns() {
    for trigger in [Trigger::Request, Trigger::Stop, Trigger::Failure] {
        let log = Events::new();
        let (host, started) = host(&log, trigger);
        let host = Arc::new(host);
        let requester = {
            let host = Arc::clone(&host);
            spawn("requester", move || {
                assert!(host.handle().started().wait_timeout(PATIENCE));
                match trigger {
                    Trigger::Request => host.handle().request_stop(),
                    Trigger::Stop => {
                        let _report = host.stop(Deadline::NEVER);
                    }
                    Trigger::Failure => {}
                }
            })
        };
        host.start(PATIENCE).unwrap();
        started.set();
        let report = host
            .join(Deadline::NEVER)
            .expect("join(NEVER) returns the report");
        log.push("run-returned");
        requester.join().unwrap();
        let failed = report.host_failure().is_some();
        assert_eq!(
            failed,
            matches!(trigger, Trigger::Failure),
            "{trigger:?}: {report}"
        );
        let names = log.names();
        // (A failing service ends on its own, before anyone asked for a stop.)
        let stopped_by_the_host: &[&str] = match trigger {
            Trigger::Failure => &["worker:exit"],
            _ => &["worker:exit", "failing:exit"],
        };
        for service in stopped_by_the_host {
            assert_before(&names, &"stopping-end".to_owned(), &(*service).to_owned());
        }
        assert_before(
            &names,
            &"worker:exit".to_owned(),
            &"stopped-begin".to_owned(),
        );
        assert_before(
            &names,
            &"stopped-end".to_owned(),
            &"run-returned".to_owned(),
        );
    }
}

#[test]
fn a_stopping_callback_longer_than_the_deadline_does_not_hold_the_stop_past_it() {
    let log = Events::new();
    let host = HostBuilder::new()
        .background_service("worker", Rec::new("worker", &log))
        .build()
        .unwrap();
    let gate = common::Gate::new();
    let held = gate.clone();
    host.handle()
        .stopping()
        .on_stop(move |_| held.wait())
        .forget();
    host.start(PATIENCE).unwrap();
    let requester = {
        let handle = host.handle();
        spawn("requester", move || handle.request_stop())
    };
    let (report, took) = common::timed(|| host.join(Duration::from_millis(300)));
    let report = report.expect("join returns its report by its deadline");
    common::assert_within(took, ms(300) + common::MARGIN, "join with a hung callback");
    // The worker is reached after the deadline, with the late grace only: whether it makes
    // that on a loaded machine is not asserted (as in host_deadlines.rs); that its token
    // fired and it stops is.
    let worker = report
        .service("worker")
        .expect("the worker is in the report");
    assert!(
        matches!(
            worker.outcome,
            threadhost::Outcome::Stopped | threadhost::Outcome::TimedOut
        ),
        "{report}"
    );
    log.wait_for("worker:exit");
    gate.open();
    requester.join().unwrap();
}

#[test]
fn lifetime_events_fire_in_order() {
    let log = Events::new();
    let host = hosted(&["a", "b"], &log).build().unwrap();
    let handle = host.handle();
    for (name, token) in [
        ("event:started", handle.started()),
        ("event:stopping", handle.stopping()),
        ("event:stopped", handle.stopped()),
    ] {
        let log = log.clone();
        token.on_stop(move |_| log.push(name)).forget();
    }
    assert!(!handle.started().is_stopped());
    host.start(SECS5).unwrap();
    assert!(handle.started().wait_timeout(PATIENCE));
    assert!(!handle.stopping().is_stopped());
    assert!(!handle.stopped().is_stopped());
    let waiter = {
        let handle = handle.clone();
        spawn("stopped-waiter", move || {
            handle.stopped().wait_timeout(PATIENCE)
        })
    };
    handle.request_stop();
    assert!(handle.stopping().wait_timeout(PATIENCE));
    let report = host.join(SECS5).unwrap();
    assert!(report.is_clean());
    assert!(waiter.join().unwrap(), "a waiter on `stopped` must wake");
    let names = log.names();
    let pos = |w: &str| {
        names
            .iter()
            .position(|n| n == w)
            .unwrap_or_else(|| panic!("{w} missing: {names:?}"))
    };
    assert!(pos("b:started") < pos("event:started"));
    assert!(pos("event:started") < pos("event:stopping"));
    assert!(pos("event:stopping") < pos("b:stopping"));
    assert!(pos("a:stopped") < pos("event:stopped"));
    assert_eq!(handle.stopping().reason(), Some(StopReason::Requested));
}

/// A logger that stalls two test threads at lines the host logs inside race windows, to
/// widen those windows to 300 ms:
/// - `test:stalled-requester` at "shutting down": `request_stop` logs it between the stop
///   request and the firing of the `stopping` event;
/// - `test:stalled-starter` at "Hosting started": `start` logs it between entering
///   `Running` and firing the `started` event.
struct StallingLogger;

impl log::Log for StallingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        let stall = match std::thread::current().name() {
            Some("test:stalled-requester") => message.contains("shutting down"),
            Some("test:stalled-starter") => message.contains("Hosting started"),
            _ => false,
        };
        if stall {
            common::busy(ms(300));
        }
    }
    fn flush(&self) {}
}

/// Installs [`StallingLogger`] once for this test binary.
fn install_stalling_logger() {
    static LOGGER: StallingLogger = StallingLogger;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&LOGGER).expect("only this helper installs a logger");
        log::set_max_level(log::LevelFilter::Debug);
    });
}

#[test]
fn stopping_event_fires_before_stopping_hooks_when_requested_concurrently() {
    // Regression: the stop sequence (run by `join` on another thread) could run the
    // `stopping` hooks before the requesting thread had fired the `stopping` event.
    install_stalling_logger();
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted(
            "a",
            Rec::new("a", &log).on("stopping", Action::RecordStoppingEvent),
        )
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let requester = spawn("stalled-requester", move || handle.request_stop());
    let report = host.join(SECS5).unwrap();
    requester.join().unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(
        log.contains("a:stopping:stopping-event=true"),
        "{:?}",
        log.names()
    );
}

#[test]
fn started_event_fires_before_stopping_when_a_stop_races_the_start() {
    // Regression: a stop requested just as the start completed could fire `stopping` before
    // the starting thread fired `started`.
    install_stalling_logger();
    let log = Events::new();
    let host = Arc::new(hosted(&["a"], &log).build().unwrap());
    let handle = host.handle();
    for (name, token) in [
        ("event:started", handle.started()),
        ("event:stopping", handle.stopping()),
    ] {
        let log = log.clone();
        token.on_stop(move |_| log.push(name)).forget();
    }
    let starter = {
        let host = Arc::clone(&host);
        spawn("stalled-starter", move || host.start(SECS5))
    };
    eventually("host running", || handle.state() == HostState::Running);
    handle.request_stop();
    let report = host.join(SECS5).unwrap();
    starter.join().unwrap().unwrap();
    assert!(report.is_clean(), "{report}");
    let events = log.with_prefix("event:");
    assert_eq!(events, ["event:started", "event:stopping"]);
}

#[test]
fn panicking_lifetime_callback_does_not_break_the_sequence() {
    let log = Events::new();
    let host = hosted(&["a"], &log).build().unwrap();
    let handle = host.handle();
    for token in [handle.started(), handle.stopping(), handle.stopped()] {
        token
            .on_stop(|_| panic!("lifetime callback panics on purpose"))
            .forget();
    }
    let after = Probe::new();
    let a = after.clone();
    handle.stopped().on_stop(move |_| a.set()).forget();
    host.start(SECS5).unwrap();
    assert_eq!(host.state(), HostState::Running);
    stop_clean(&host);
    assert!(log.contains("a:stopped"));
    assert!(after.is_set(), "the other callbacks still ran");
    assert_eq!(host.state(), HostState::Stopped);
}
