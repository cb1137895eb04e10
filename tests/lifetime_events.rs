//! The lifetime events keep their order whoever requests the stop (.NET: "shutdown will block
//! until this event completes"): the `stopping` callbacks have returned before the first
//! service is stopped, `stopped` fires after every service, and its callbacks have returned
//! before `run` (or `join`, or `stop`) returns.
//!
//! The callbacks below are slow on purpose (`busy`: work that ignores every token), so that
//! a sequence that did not wait for them would overtake them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Action, Events, PATIENCE, Probe, Rec, assert_before, busy, ms, spawn};
use threadhost::{Deadline, Host, HostBuilder};

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
    let (on_stopping, on_stopped) = (log.clone(), log.clone());
    handle
        .stopping()
        .on_stop(move |_| {
            on_stopping.push("stopping-begin");
            busy(ms(300));
            on_stopping.push("stopping-end");
        })
        .forget();
    handle
        .stopped()
        .on_stop(move |_| {
            on_stopped.push("stopped-begin");
            busy(ms(200));
            on_stopped.push("stopped-end");
        })
        .forget();
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
    assert!(report.is_clean(), "the worker still stops: {report}");
    common::assert_within(took, ms(300) + common::MARGIN, "join with a hung callback");
    gate.open();
    requester.join().unwrap();
}
