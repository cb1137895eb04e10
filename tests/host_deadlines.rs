//! Host deadlines: `start`, `stop`, `join`, `run` and drop return by their deadlines whatever a
//! service does, share one deadline among services, honour per-service timeouts, and report
//! the services that overran.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Action, Events, Gate, MARGIN, PATIENCE, Rec, SECS5, hooks_of, idle, ms, outcome_of, spawn,
    start_host, stop_clean, stop_own_host, within,
};
use threadhost::{
    Context, Error, HostBuilder, HostState, HostedService, Outcome, Service, ServiceResult,
    ServiceState, StopReason,
};

/// A background body that ignores its token and blocks until `gate` opens.
fn hung(gate: &Gate) -> impl FnMut(&Context) -> ServiceResult + Send + 'static {
    let gate = gate.clone();
    move |_ctx| {
        gate.wait();
        Ok(())
    }
}

#[test]
fn smoke() {
    let host = start_host(
        HostBuilder::new()
            .background("a", idle)
            .background("b", idle),
    );
    let report = within(MARGIN, "stop of two polite services", || host.stop(SECS5));
    assert!(report.is_clean(), "{report}");
    assert!(report.elapsed() < SECS5);
}

#[test]
fn stop_reports_hung_service() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .background("hung", hung(&gate))
        .background("a", idle)
        .background("b", idle)
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let report = within(ms(300) + MARGIN, "stop(300 ms) with a hung service", || {
        host.stop(ms(300))
    });
    assert!(report.is_complete());
    assert!(!report.is_clean());
    assert_eq!(report.timed_out(), [Arc::<str>::from("hung")]);
    assert!(matches!(outcome_of(&report, "hung"), Outcome::TimedOut));
    assert!(matches!(outcome_of(&report, "a"), Outcome::Stopped));
    assert!(matches!(outcome_of(&report, "b"), Outcome::Stopped));
    assert!(report.to_string().contains("`hung` TIMED OUT"), "{report}");
    assert!(report.service("hung").unwrap().duration >= ms(250));
    assert_eq!(host.state(), HostState::Stopped);
    assert_eq!(
        handle.snapshot().service("hung").unwrap().state,
        ServiceState::TimedOut
    );
    match report.into_result() {
        Err(Error::StopTimeout { services, .. }) => {
            assert_eq!(services, [Arc::<str>::from("hung")]);
        }
        other => panic!("expected StopTimeout, got {other:?}"),
    }
    gate.open();
}

#[test]
fn stop_reports_hung_stop_hook() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(
        HostBuilder::new()
            .hosted(
                "stuck",
                Rec::new("stuck", &log).on("stop", Action::Block(gate.clone())),
            )
            .hosted("a", Rec::new("a", &log)),
    );
    let report = within(
        ms(300) + MARGIN,
        "stop(300 ms) with a hung stop hook",
        || host.stop(ms(300)),
    );
    assert!(
        matches!(outcome_of(&report, "stuck"), Outcome::TimedOut),
        "{report}"
    );
    // `a` went through every stop phase (its `stopped` came after the deadline: whether it
    // made the late grace depends on the machine's load, so its outcome is not asserted
    // here; see `hung_hosted_service_with_stop_timeout_leaves_others_stopped`).
    assert_eq!(hooks_of(&log, "a")[3..], ["stopping", "stop", "stopped"]);
    assert!(!log.contains("stuck:stopped"));
    // Released, the detached thread finishes its own stop hooks.
    gate.open();
    log.wait_for("stuck:stopped");
}

#[test]
fn hung_hosted_service_with_stop_timeout_leaves_others_stopped() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(
        HostBuilder::new()
            .hosted("a", Rec::new("a", &log))
            .add_service(
                Service::hosted(
                    "stuck",
                    Rec::new("stuck", &log).on("stop", Action::Block(gate.clone())),
                )
                .stop_timeout(ms(150)),
            )
            .hosted("c", Rec::new("c", &log)),
    );
    let report = within(
        ms(150) + MARGIN,
        "stop, hung hook with 150 ms timeout",
        || host.stop(Duration::from_secs(10)),
    );
    assert!(
        matches!(outcome_of(&report, "stuck"), Outcome::TimedOut),
        "{report}"
    );
    assert!(
        matches!(outcome_of(&report, "a"), Outcome::Stopped),
        "{report}"
    );
    assert!(
        matches!(outcome_of(&report, "c"), Outcome::Stopped),
        "{report}"
    );
    assert_eq!(report.timed_out(), [Arc::<str>::from("stuck")]);
    gate.open();
}

#[test]
fn stop_reports_hung_stopping_hook() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(HostBuilder::new().hosted("a", Rec::new("a", &log)).hosted(
        "stuck",
        Rec::new("stuck", &log).on("stopping", Action::Block(gate.clone())),
    ));
    let report = within(ms(300) + MARGIN, "stop(300 ms), hung stopping hook", || {
        host.stop(ms(300))
    });
    assert!(matches!(outcome_of(&report, "stuck"), Outcome::TimedOut));
    assert!(report.timed_out().contains(&Arc::<str>::from("stuck")));
    assert!(!log.contains("stuck:stop"));
    gate.open();
}

#[test]
fn per_service_stop_timeout_shortens_its_share() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(
        HostBuilder::new()
            .background("first", idle)
            .add_service(Service::background("slowpoke", hung(&gate)).stop_timeout(ms(150)))
            .background("last", idle),
    );
    // The host's deadline is 10 s; the slow service's own 150 ms is what bounds this stop.
    let report = within(
        ms(150) + MARGIN,
        "stop with a 150 ms per-service timeout",
        || host.stop(Duration::from_secs(10)),
    );
    assert!(matches!(outcome_of(&report, "slowpoke"), Outcome::TimedOut));
    // The service stopped after it still had the rest of the host's deadline.
    assert!(matches!(outcome_of(&report, "first"), Outcome::Stopped));
    assert!(matches!(outcome_of(&report, "last"), Outcome::Stopped));
    gate.open();
}

#[test]
fn per_service_stop_timeout_never_extends_the_host_deadline() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(
        HostBuilder::new()
            .add_service(Service::background("slowpoke", hung(&gate)).stop_timeout(SECS5 * 6)),
    );
    let report = within(
        ms(200) + MARGIN,
        "stop(200 ms), 30 s service timeout",
        || host.stop(ms(200)),
    );
    assert!(matches!(outcome_of(&report, "slowpoke"), Outcome::TimedOut));
    gate.open();
}

#[test]
fn one_deadline_is_shared_by_all_services() {
    // Three services that each need 300 ms to stop after their token fires, stopped one
    // after another under one 500 ms deadline: the first stops, the second overruns, the
    // third begins after the deadline and overruns. Per-service deadlines would take 900 ms.
    let host = ["a", "b", "c"]
        .iter()
        .fold(HostBuilder::new(), |b, n| {
            b.background(n, |ctx| {
                ctx.token().wait();
                common::busy(ms(300));
                Ok(())
            })
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = within(ms(500) + MARGIN, "stop(500 ms) of 3 × 300 ms", || {
        host.stop(ms(500))
    });
    assert!(
        matches!(outcome_of(&report, "c"), Outcome::Stopped),
        "{report}"
    );
    assert!(
        matches!(outcome_of(&report, "b"), Outcome::TimedOut),
        "{report}"
    );
    assert!(
        matches!(outcome_of(&report, "a"), Outcome::TimedOut),
        "{report}"
    );
    assert!(report.elapsed() >= ms(450), "{report}");
}

#[test]
fn one_deadline_is_shared_by_hosted_stop_hooks() {
    // The same with hosted `stop` hooks: bounded by the one deadline, the later ones
    // reported as overrunning.
    let log = Events::new();
    let host = ["a", "b", "c"]
        .iter()
        .fold(HostBuilder::new(), |b, n| {
            b.hosted(n, Rec::new(n, &log).on("stop", Action::Busy(ms(300))))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = within(
        ms(500) + MARGIN,
        "stop(500 ms) of 3 × 300 ms hooks",
        || host.stop(ms(500)),
    );
    let late = report.timed_out();
    assert!(
        late.contains(&Arc::from("b")) && late.contains(&Arc::from("a")),
        "{report}"
    );
}

#[test]
fn stop_hook_sees_the_stop_deadline() {
    /// Records `ctx.deadline().remaining()` in its stop hook.
    struct SeesDeadline(Arc<Mutex<Option<Duration>>>);
    impl HostedService for SeesDeadline {
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            assert!(ctx.deadline().remaining().unwrap() <= SECS5);
            Ok(())
        }
        fn stop(&mut self, ctx: &Context) -> ServiceResult {
            assert!(ctx.is_stopped(), "the token fires before the stop hook");
            *self.0.lock().unwrap() = ctx.deadline().remaining();
            Ok(())
        }
    }
    let seen = Arc::new(Mutex::new(None));
    let host = start_host(HostBuilder::new().add_service(
        Service::hosted("svc", SeesDeadline(Arc::clone(&seen))).stop_timeout(ms(800)),
    ));
    stop_clean(&host);
    let left = seen.lock().unwrap().expect("a finite stop deadline");
    assert!(
        left <= ms(800),
        "the per-service timeout shortens the deadline: {left:?}"
    );
}

#[test]
fn start_deadline_bounds_a_hung_background_start() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .background_service(
            "slow",
            Rec::new("slow", &log).on("start", Action::Block(gate.clone())),
        )
        .build()
        .unwrap();
    let err = within(
        ms(250) + MARGIN,
        "start(250 ms), hung background start",
        || host.start(ms(250)),
    )
    .unwrap_err();
    assert!(matches!(&err, Error::StartTimeout { service } if &**service == "slow"));
    assert!(log.contains("a:stop"));
    gate.open();
    // The late start never runs its body.
    assert!(!log.contains("slow:run"));
}

#[test]
fn start_deadline_fires_the_late_service_token_with_deadline_reason() {
    /// A start hook that waits on its token and records why it fired.
    struct Patient(Arc<Mutex<Option<StopReason>>>);
    impl HostedService for Patient {
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            let _fired = ctx.token().wait_timeout(PATIENCE);
            *self.0.lock().unwrap() = ctx.token().reason();
            Err("gave up".into())
        }
        fn stop(&mut self, _ctx: &Context) -> ServiceResult {
            Ok(())
        }
    }
    let seen = Arc::new(Mutex::new(None));
    let host = HostBuilder::new()
        .hosted("patient", Patient(Arc::clone(&seen)))
        .build()
        .unwrap();
    let err = within(ms(200) + MARGIN, "start(200 ms)", || host.start(ms(200))).unwrap_err();
    assert!(matches!(err, Error::StartTimeout { .. }), "{err:?}");
    common::eventually("the late start saw its token", || {
        seen.lock().unwrap().is_some()
    });
    assert_eq!(*seen.lock().unwrap(), Some(StopReason::Deadline));
}

#[test]
fn per_service_start_timeout_shortens_its_start() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .add_service(
            Service::hosted(
                "slow",
                Rec::new("slow", &log).on("start", Action::Block(gate.clone())),
            )
            .start_timeout(ms(150)),
        )
        .build()
        .unwrap();
    let err = within(
        ms(150) + MARGIN,
        "start with a 150 ms service timeout",
        || host.start(Duration::from_secs(10)),
    )
    .unwrap_err();
    assert!(matches!(&err, Error::StartTimeout { service } if &**service == "slow"));
    assert!(log.contains("a:stop"));
    gate.open();
}

#[test]
fn one_start_deadline_is_shared_by_all_services() {
    let log = Events::new();
    let host = ["a", "b", "c"]
        .iter()
        .fold(HostBuilder::new(), |b, n| {
            b.hosted(n, Rec::new(n, &log).on("start", Action::Busy(ms(200))))
        })
        .build()
        .unwrap();
    let err = within(ms(300) + MARGIN, "start(300 ms) of 3 × 200 ms", || {
        host.start(ms(300))
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::StartTimeout { service } if &**service == "b"),
        "{err}"
    );
    assert!(!log.contains("c:start"));
    assert!(log.contains("a:stop"), "a started, so it is stopped");
}

#[test]
fn join_deadline_is_capped_by_shutdown_timeout() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(
        HostBuilder::new()
            .shutdown_timeout(ms(200))
            .background("hung", hung(&gate))
            .background("ok", idle),
    );
    host.handle().request_stop();
    let report = within(
        ms(200) + MARGIN,
        "join(NEVER), 200 ms shutdown timeout",
        || host.join(threadhost::Deadline::NEVER),
    )
    .unwrap();
    assert!(matches!(outcome_of(&report, "hung"), Outcome::TimedOut));
    assert!(matches!(outcome_of(&report, "ok"), Outcome::Stopped));
    gate.open();
}

#[test]
fn join_deadline_bounds_the_stop_it_runs() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = start_host(HostBuilder::new().background("hung", hung(&gate)));
    host.handle().request_stop();
    // The 30 s shutdown timeout is longer: the join's own deadline bounds the stop.
    let report = within(ms(200) + MARGIN, "join(200 ms)", || host.join(ms(200))).unwrap();
    assert!(matches!(outcome_of(&report, "hung"), Outcome::TimedOut));
    gate.open();
}

#[test]
fn run_returns_stop_timeout_when_a_service_overruns() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .shutdown_timeout(ms(200))
        .background("hung", hung(&gate))
        .background("job", stop_own_host)
        .build()
        .unwrap();
    let result = within(PATIENCE, "run with a hung service", || host.run());
    assert_eq!(
        threadhost::exit_code(&result),
        threadhost::EXIT_STOP_TIMEOUT
    );
    match result {
        Err(Error::StopTimeout { services, report }) => {
            assert_eq!(services, [Arc::<str>::from("hung")]);
            assert!(report.elapsed() < ms(200) + MARGIN, "{report}");
        }
        other => panic!("expected StopTimeout, got {other:?}"),
    }
    gate.open();
}

#[test]
fn run_start_is_bounded_by_startup_timeout() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .startup_timeout(ms(200))
        .hosted(
            "slow",
            Rec::new("slow", &log).on("start", Action::Block(gate.clone())),
        )
        .build()
        .unwrap();
    let result = within(ms(200) + MARGIN, "run with a hung start", || host.run());
    assert!(matches!(&result, Err(Error::StartTimeout { service }) if &**service == "slow"));
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
    gate.open();
}

#[test]
fn drop_of_running_host_is_bounded_by_shutdown_timeout() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .shutdown_timeout(ms(200))
        .background("hung", hung(&gate))
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    within(ms(200) + MARGIN, "drop with a hung service", || drop(host));
    assert_eq!(handle.state(), HostState::Stopped);
    assert_eq!(
        handle.snapshot().service("hung").unwrap().state,
        ServiceState::TimedOut
    );
    gate.open();
}

#[test]
fn second_stop_caller_returns_by_its_own_deadline() {
    let gate = Gate::new();
    let _release = gate.opener();
    let host = Arc::new(
        HostBuilder::new()
            .background("hung", hung(&gate))
            .build()
            .unwrap(),
    );
    host.start(SECS5).unwrap();
    let first = {
        let host = Arc::clone(&host);
        spawn("first-stopper", move || host.stop(PATIENCE))
    };
    // Let the first caller take the sequence; then a second caller with a short deadline.
    common::eventually("the first stop began", || {
        host.state() == HostState::Stopping
    });
    let report = within(ms(150) + MARGIN, "second stop(150 ms)", || {
        host.stop(ms(150))
    });
    assert!(
        !report.is_complete(),
        "the sequence is still running: {report}"
    );
    assert!(report.to_string().contains("incomplete"), "{report}");
    gate.open();
    let full = first.join().unwrap();
    assert!(full.is_complete());
    assert!(matches!(outcome_of(&full, "hung"), Outcome::Stopped));
}

#[test]
fn stop_during_a_hung_start_reports_it_timed_out() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let in_start = common::Probe::new();
    let host = Arc::new(
        HostBuilder::new()
            .hosted("a", Rec::new("a", &log))
            .add_service(
                Service::hosted(
                    "b",
                    Rec::new("b", &log)
                        .on("start", Action::Signal(in_start.clone()))
                        .on("start", Action::Block(gate.clone())),
                )
                .stop_timeout(ms(200)),
            )
            .hosted("c", Rec::new("c", &log))
            .build()
            .unwrap(),
    );
    let starter = {
        let host = Arc::clone(&host);
        spawn("starter", move || host.start(PATIENCE * 3))
    };
    in_start.expect("b's start hook running");
    host.handle().request_stop();
    within(MARGIN, "start after a stop request", || {
        starter.join().unwrap()
    })
    .expect("a stop during start is a clean stop");
    // b's 200 ms stop timeout bounds the wait for its hung start; `a` keeps the rest of
    // the 10 s deadline.
    let report = within(ms(200) + MARGIN, "stop with a hung start", || {
        host.stop(Duration::from_secs(10))
    });
    assert!(
        matches!(outcome_of(&report, "b"), Outcome::TimedOut),
        "{report}"
    );
    assert!(
        matches!(outcome_of(&report, "a"), Outcome::Stopped),
        "{report}"
    );
    assert!(
        matches!(outcome_of(&report, "c"), Outcome::NotStarted),
        "{report}"
    );
    assert!(!log.contains("c:start"));
    gate.open();
}

#[test]
fn huge_deadlines_mean_never() {
    let host = HostBuilder::new().background("w", idle).build().unwrap();
    host.start(Duration::MAX).unwrap();
    host.handle().request_stop();
    let report = host.join(Duration::MAX).unwrap();
    assert!(report.is_clean());
    assert!(host.stop(Duration::MAX).is_clean());
}

#[test]
fn start_deadline_bounds_a_hung_hosted_start_and_names_it() {
    let log = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .hosted(
            "slow",
            Rec::new("slow", &log).on("start", Action::Block(gate.clone())),
        )
        .hosted("c", Rec::new("c", &log))
        .build()
        .unwrap();
    let handle = host.handle();
    // The default 30 s shutdown timeout must not stretch the start's 300 ms deadline.
    let err = within(ms(300) + MARGIN, "start(300 ms) with a hung start", || {
        host.start(ms(300))
    })
    .unwrap_err();
    match &err {
        Error::StartTimeout { service } => assert_eq!(&**service, "slow"),
        other => panic!("expected StartTimeout, got {other:?}"),
    }
    assert!(err.to_string().contains("`slow`"), "{err}");
    assert_eq!(host.state(), HostState::Failed);
    assert!(log.contains("a:stop"), "the started service is stopped");
    assert!(!log.contains("c:start"));
    assert!(handle.stopped().is_stopped());
    let snap = handle.snapshot();
    assert_eq!(snap.service("slow").unwrap().state, ServiceState::TimedOut);
    assert_eq!(snap.service("a").unwrap().state, ServiceState::Stopped);
    gate.open();
}

#[test]
fn join_with_deadline_times_out_when_nobody_stops() {
    let host = start_host(HostBuilder::new().background("w", idle));
    let err = within(ms(100) + MARGIN, "join(100 ms)", || host.join(ms(100))).unwrap_err();
    assert!(
        matches!(
            err,
            Error::JoinTimeout {
                state: HostState::Running
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        host.state(),
        HostState::Running,
        "join's timeout does not stop"
    );
    stop_clean(&host);
}

#[test]
fn join_on_never_started_host_times_out() {
    let host = HostBuilder::new().background("w", idle).build().unwrap();
    let err = host.join(ms(50)).unwrap_err();
    assert!(matches!(
        err,
        Error::JoinTimeout {
            state: HostState::Created
        }
    ));
}

#[test]
fn a_background_body_reads_its_stop_deadline_once_stopped() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let running = common::Probe::new();
    let ran = running.clone();
    let host = start_host(
        HostBuilder::new().add_service(
            Service::background("flusher", move |ctx: &Context| {
                record.lock().unwrap().push(ctx.deadline());
                ran.set();
                ctx.token().wait();
                // On its way out: the stop deadline, shortened by the service's stop timeout.
                record.lock().unwrap().push(ctx.deadline());
                Ok(())
            })
            .stop_timeout(SECS5),
        ),
    );
    running.expect("the body runs");
    let began = std::time::Instant::now();
    let report = host.stop(Duration::from_secs(60));
    assert!(report.is_clean(), "{report}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].is_never(), "no stop underway: {seen:?}");
    let at = seen[1].instant().expect("the stop deadline");
    assert!(
        at >= began + SECS5 && at <= std::time::Instant::now() + SECS5,
        "{seen:?}"
    );
}

/// A service token's `on_stop` callback is user code: a hung one holds neither the stop past
/// its deadline nor the report's honesty (the service is named as timed out).
#[test]
fn a_hung_on_stop_callback_neither_holds_the_stop_nor_hides() {
    let gate = Gate::new();
    let _opener = gate.opener();
    let held = gate.clone();
    let host = start_host(HostBuilder::new().background("cb", move |ctx| {
        let held = held.clone();
        let _registration = ctx.token().on_stop(move |_| held.wait());
        ctx.token().wait();
        Ok(())
    }));
    let report = within(
        ms(200) + MARGIN,
        "stop with a hung on_stop callback",
        || host.stop(ms(200)),
    );
    assert!(
        matches!(outcome_of(&report, "cb"), Outcome::TimedOut),
        "{report}"
    );
}

/// Slow `on_stop` callbacks of many services reached late run side by side, not one after
/// another on the stopping thread (20 × 30 ms would be 600 ms past the deadline).
#[test]
fn slow_on_stop_callbacks_of_late_services_do_not_add_up() {
    let gate = Gate::new();
    let _opener = gate.opener();
    let mut builder = HostBuilder::new();
    for i in 0..20 {
        builder = builder.background(&format!("slow-cb-{i}"), |ctx| {
            let _registration = ctx.token().on_stop(|_| common::busy(ms(30)));
            ctx.token().wait();
            Ok(())
        });
    }
    let held = gate.clone();
    let host = start_host(builder.hosted(
        "hung",
        Rec::new("hung", &Events::new()).on("stopping", Action::Block(held)),
    ));
    let (report, took) = common::timed(|| host.stop(ms(100)));
    common::assert_within(took, ms(100) + ms(300), "stop with 20 slow late callbacks");
    assert!(
        matches!(outcome_of(&report, "hung"), Outcome::TimedOut),
        "{report}"
    );
}

/// With `stop_concurrently`, a phase is a barrier across a dependency level: a prompt service
/// with a short `stop_timeout` waiting there for a slow sibling is not reported timed out.
#[test]
fn a_prompt_service_with_a_short_stop_timeout_is_not_late_because_of_a_slow_sibling() {
    let host = start_host(
        HostBuilder::new()
            .stop_concurrently(true)
            .add_service(Service::hosted("prompt", common::Noop).stop_timeout(ms(20)))
            .hosted(
                "slow-but-fine",
                Rec::new("slow", &Events::new()).on("stopping", Action::Busy(ms(100))),
            ),
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}
