//! Failure policies `StopHost` (the default) and `Ignore`: what a failing or panicking
//! background service does to its host and to the other services. (Restart: another file.)

mod common;

use std::sync::Arc;

use common::{
    Action, Events, PATIENCE, Probe, Rec, SECS5, await_state, eventually, idle, ms, outcome_of,
    reason_seen, spawn, start_host, within,
};
use threadhost::{
    Context, Error, HostBuilder, HostState, Outcome, Policy, Service, ServiceResult, ServiceState,
    StopReason,
};

fn boom(_ctx: &Context) -> ServiceResult {
    Err("boom".into())
}

/// A body that counts its rounds on `beats` every millisecond until stopped.
fn heartbeat(beats: &Probe) -> impl FnMut(&Context) -> ServiceResult + Send + 'static {
    let beats = beats.clone();
    move |ctx| {
        while ctx.sleep(ms(1)).is_ok() {
            beats.set();
        }
        Ok(())
    }
}

fn failure_reason(service: &str) -> StopReason {
    StopReason::Failure {
        service: Arc::from(service),
    }
}

#[test]
fn smoke() {
    let result = HostBuilder::new()
        .background("ok", idle)
        .background("bad", boom)
        .build()
        .unwrap()
        .run();
    assert!(matches!(&result, Err(Error::ServiceFailed { service, .. }) if &**service == "bad"));
}

#[test]
fn stop_host_is_the_default_and_stops_the_host() {
    let log = Events::new();
    let host = HostBuilder::new()
        .background_service("ok", Rec::new("ok", &log))
        .background("bad", boom)
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    assert!(
        handle.stopping().wait_timeout(PATIENCE),
        "the failure must stop the host"
    );
    assert_eq!(handle.stopping().reason(), Some(failure_reason("bad")));
    assert_eq!(handle.stop_reason(), Some(failure_reason("bad")));
    let report = host.join(SECS5).unwrap();
    assert_eq!(report.reason(), Some(&failure_reason("bad")));
    let (name, failure) = report.host_failure().expect("the report names the failure");
    assert_eq!(name, "bad");
    assert_eq!(failure.to_string(), "boom");
    assert!(matches!(outcome_of(&report, "bad"), Outcome::Failed(f) if f.to_string() == "boom"));
    // The other service was stopped gracefully, not failed.
    assert!(matches!(outcome_of(&report, "ok"), Outcome::Stopped));
    assert!(log.contains("ok:exit"));
    assert_eq!(host.state(), HostState::Stopped);
    let snap = handle.snapshot();
    assert_eq!(snap.service("bad").unwrap().state, ServiceState::Failed);
    assert_eq!(snap.service("ok").unwrap().state, ServiceState::Stopped);
}

#[test]
fn other_services_see_the_failure_as_their_stop_reason() {
    let (seen, watcher) = reason_seen();
    let host = start_host(
        HostBuilder::new()
            .background("watcher", watcher)
            .background("bad", boom),
    );
    let _report = host.join(SECS5).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(failure_reason("bad")));
}

#[test]
fn run_returns_service_failed_whose_message_and_source_name_the_failure() {
    let host = HostBuilder::new()
        .background("ok", idle)
        .background("bad", boom)
        .build()
        .unwrap();
    let result = within(PATIENCE, "run with a failing worker", || host.run());
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
    let err = result.unwrap_err();
    assert_eq!(err.service(), Some("bad"));
    assert!(err.to_string().contains("`bad`"), "{err}");
    assert!(err.to_string().contains("boom"), "{err}");
    let source = std::error::Error::source(&err).expect("the service's error is the source");
    assert_eq!(source.to_string(), "boom");
    let report = err.report().expect("ServiceFailed carries the stop report");
    assert!(report.is_complete());
    assert!(matches!(outcome_of(report, "ok"), Outcome::Stopped));
    assert!(matches!(outcome_of(report, "bad"), Outcome::Failed(_)));
}

#[test]
fn panic_in_body_is_a_failure_with_its_message() {
    for (name, message) in [("static", "kaput"), ("formatted", "kaput 42")] {
        let host = HostBuilder::new()
            .background("ok", idle)
            .background(name, move |_ctx| {
                if message == "kaput" {
                    panic!("kaput");
                }
                panic!("kaput {}", 42);
            })
            .build()
            .unwrap();
        match host.run() {
            Err(Error::ServiceFailed {
                service,
                failure,
                report,
            }) => {
                assert_eq!(&*service, name);
                assert!(failure.is_panic());
                assert!(failure.to_string().contains(message), "{failure}");
                assert!(matches!(outcome_of(&report, "ok"), Outcome::Stopped));
            }
            other => panic!("expected ServiceFailed, got {other:?}"),
        }
    }
}

#[test]
fn ignore_an_error_keeps_the_host_running() {
    let beats = Probe::new();
    let host = HostBuilder::new()
        .background("beat", heartbeat(&beats))
        .add_service(Service::background("bad", boom).on_failure(Policy::Ignore))
        .build()
        .unwrap();
    let handle = host.handle();
    let runner = spawn("runner", move || host.run());
    await_state(&handle, "bad", ServiceState::Failed);
    // Still running, the other service still beating after the failure.
    let before = beats.count();
    eventually("beat goes on", || beats.count() > before + 3);
    assert_eq!(handle.state(), HostState::Running);
    assert!(!handle.stopping().is_stopped());
    let snap = handle.snapshot();
    let bad = snap.service("bad").unwrap();
    assert_eq!(
        bad.last_error.as_ref().map(ToString::to_string).as_deref(),
        Some("boom")
    );
    assert_eq!(snap.service("beat").unwrap().state, ServiceState::Running);
    handle.request_stop();
    let report = runner
        .join()
        .unwrap()
        .expect("an ignored failure does not fail run");
    assert!(report.host_failure().is_none());
    assert!(matches!(outcome_of(&report, "beat"), Outcome::Stopped));
    assert!(matches!(outcome_of(&report, "bad"), Outcome::Failed(_)));
}

#[test]
fn ignore_a_panic_keeps_the_host_running() {
    let beats = Probe::new();
    let host = HostBuilder::new()
        .on_failure(Policy::Ignore)
        .background("beat", heartbeat(&beats))
        .background("bad", |_ctx| panic!("ignored panic"))
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    await_state(&handle, "bad", ServiceState::Failed);
    let snap = handle.snapshot();
    let failure = snap.service("bad").unwrap().last_error.clone().unwrap();
    assert!(failure.is_panic());
    assert!(failure.to_string().contains("ignored panic"));
    let before = beats.count();
    eventually("beat goes on", || beats.count() > before + 3);
    assert_eq!(host.state(), HostState::Running);
    let report = host.stop(SECS5);
    assert!(matches!(outcome_of(&report, "beat"), Outcome::Stopped));
}

#[test]
fn host_default_policy_applies_unless_the_service_overrides_it() {
    // Host-wide Ignore, one service overriding with StopHost: only that one stops the host.
    let host = HostBuilder::new()
        .on_failure(Policy::Ignore)
        .background("ignored", boom)
        .add_service(
            Service::background("strict", |ctx| {
                // Fail only after `ignored` has failed and been ignored.
                let me = ctx.host().clone();
                let wait_for_ignored = || {
                    me.snapshot()
                        .service("ignored")
                        .is_some_and(|s| s.state == ServiceState::Failed)
                };
                while !wait_for_ignored() {
                    ctx.sleep(ms(1))?;
                }
                assert_eq!(
                    me.state(),
                    HostState::Running,
                    "the ignored failure stopped the host"
                );
                Err("strict failure".into())
            })
            .on_failure(Policy::StopHost),
        )
        .build()
        .unwrap();
    let result = within(PATIENCE, "run", || host.run());
    assert!(
        matches!(&result, Err(Error::ServiceFailed { service, .. }) if &**service == "strict"),
        "{result:?}"
    );
}

#[test]
fn failing_service_never_takes_down_another() {
    // A panic on one service thread does not unwind into another: the other service keeps
    // its state and is stopped gracefully by the policy, with its own hooks.
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("hooks", Rec::new("hooks", &log))
        .background_service("body", Rec::new("body", &log))
        .background("bad", |_ctx| panic!("only me"))
        .build()
        .unwrap();
    let result = host.run();
    let report = match result {
        Err(Error::ServiceFailed { report, .. }) => report,
        other => panic!("expected ServiceFailed, got {other:?}"),
    };
    assert!(matches!(outcome_of(&report, "hooks"), Outcome::Stopped));
    assert!(matches!(outcome_of(&report, "body"), Outcome::Stopped));
    assert_eq!(report.failures().count(), 1, "{report}");
    for hook in ["stopping", "stop", "stopped"] {
        assert!(log.contains(&format!("hooks:{hook}")));
    }
    assert!(log.contains("body:exit"));
}

#[test]
fn first_failure_is_the_one_reported() {
    let first = Probe::new();
    let f = first.clone();
    let host = HostBuilder::new()
        .background("first", move |_ctx| {
            f.set();
            Err("first".into())
        })
        .background("second", {
            let first = first.clone();
            move |ctx| {
                // Fails once the host is already stopping because of `first`.
                first.expect("first failed");
                ctx.host().stopping().wait();
                Err("second".into())
            }
        })
        .build()
        .unwrap();
    match host.run() {
        Err(Error::ServiceFailed {
            service, report, ..
        }) => {
            assert_eq!(&*service, "first");
            assert_eq!(report.reason(), Some(&failure_reason("first")));
        }
        other => panic!("expected ServiceFailed, got {other:?}"),
    }
}

#[test]
fn failure_during_start_skips_later_services() {
    // `bad` fails at once while `slow` is still starting: the start ends early, `late` never
    // starts, and run reports the failure.
    let log = Events::new();
    let host = HostBuilder::new()
        .background("bad", boom)
        .hosted(
            "slow",
            Rec::new("slow", &log).on("start", Action::WaitToken),
        )
        .hosted("late", Rec::new("late", &log))
        .build()
        .unwrap();
    let result = within(PATIENCE, "run", || host.run());
    assert!(
        matches!(&result, Err(Error::ServiceFailed { service, .. }) if &**service == "bad"),
        "{result:?}"
    );
    assert!(!log.contains("late:start"));
    assert!(!log.contains("late:stop"));
}

#[test]
fn body_failure_while_stopping_is_recorded_not_escalated() {
    // An error returned after the token fired (not `Stopped`) is reported, but no policy
    // applies: the stop reason stays the request, and run does not turn it into
    // ServiceFailed (documented: "failing on the way out").
    let host = HostBuilder::new()
        .background("sloppy", |ctx| {
            ctx.token().wait();
            Err("flush failed".into())
        })
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let report = host.stop(SECS5);
    assert!(!report.is_clean());
    assert_eq!(report.reason(), Some(&StopReason::Requested));
    assert!(report.host_failure().is_none());
    let failures: Vec<String> = report
        .failures()
        .map(|(n, f)| format!("{n}: {f}"))
        .collect();
    assert_eq!(failures, ["sloppy: flush failed"]);
    assert_eq!(
        handle.snapshot().service("sloppy").unwrap().state,
        ServiceState::Failed
    );
}

#[test]
fn run_returns_service_failed_carrying_the_failure() {
    let host = HostBuilder::new()
        .background("ok", idle)
        .background("bad", |_ctx| Err("boom".into()))
        .build()
        .unwrap();
    let result = within(PATIENCE, "run", || host.run());
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
    match result {
        Err(Error::ServiceFailed {
            service,
            failure,
            report,
        }) => {
            assert_eq!(&*service, "bad");
            assert_eq!(failure.to_string(), "boom");
            assert!(matches!(outcome_of(&report, "ok"), Outcome::Stopped));
        }
        other => panic!("expected ServiceFailed, got {other:?}"),
    }
}

#[test]
fn failing_stop_hooks_are_reported_and_the_stop_goes_on() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .hosted("a", Rec::new("a", &log).on("stop", Action::Fail))
            .hosted("b", Rec::new("b", &log).on("stopping", Action::Panic))
            .hosted("c", Rec::new("c", &log)),
    );
    let report = host.stop(SECS5);
    assert!(report.is_complete());
    assert!(!report.is_clean());
    let failures: Vec<(String, bool)> = report
        .failures()
        .map(|(n, f)| (n.to_owned(), f.is_panic()))
        .collect();
    assert_eq!(failures, [("b".to_owned(), true), ("a".to_owned(), false)]);
    assert!(matches!(outcome_of(&report, "c"), Outcome::Stopped));
    // Every later phase still ran, for the failed services too.
    for name in ["a", "b", "c"] {
        assert!(
            log.contains(&format!("{name}:stopped")),
            "{name}:stopped missing"
        );
    }
    assert!(log.contains("b:stop"));
    assert_eq!(host.state(), HostState::Stopped);
    let snap = host.handle().snapshot();
    assert_eq!(snap.service("a").unwrap().state, ServiceState::Failed);
}
