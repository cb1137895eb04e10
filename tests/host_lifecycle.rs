//! Host lifecycle: service threads, start/stop/join/run, failed and interrupted starts, drop,
//! snapshots and builder errors. (Order and dependencies: `dependencies.rs`; lifetime events:
//! `lifetime_events.rs`; deadlines: `host_deadlines.rs`; failure policies: `supervise.rs`.)

mod common;

use std::sync::Arc;

use common::{
    Action, Events, MARGIN, PATIENCE, Probe, Rec, SECS5, clean_stop_report, eventually, hooks_of,
    hosted, idle, ms, outcome_of, reason_seen, spawn, start_host, stop_clean, stop_own_host, who,
    within,
};
use threadhost::{
    Error, Host, HostBuilder, HostHandle, HostState, Outcome, Service, ServiceState, StopReason,
};

#[test]
fn smoke() {
    let host = HostBuilder::new()
        .background("worker", idle)
        .build()
        .unwrap();
    assert_eq!(host.state(), HostState::Created);
    host.start(SECS5).unwrap();
    assert_eq!(host.state(), HostState::Running);
    let report = clean_stop_report(&host);
    assert!(matches!(outcome_of(&report, "worker"), Outcome::Stopped));
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn services_run_on_their_own_named_threads() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .hosted("web", Rec::new("web", &log))
            .background_service("pump", Rec::new("pump", &log))
            .background("closure", {
                let log = log.clone();
                move |ctx| {
                    log.push("closure:run");
                    ctx.token().wait();
                    Ok(())
                }
            }),
    );
    log.wait_for("pump:run");
    log.wait_for("closure:run");
    stop_clean(&host);
    let events = log.all();
    // Every hook, including starting / start / started, and every body.
    for hook in [
        "starting", "start", "started", "stopping", "stop", "stopped",
    ] {
        assert!(log.contains(&format!("web:{hook}")), "web:{hook} missing");
    }
    assert!(log.contains("pump:start") && log.contains("pump:exit"));
    let me = std::thread::current().name().map(str::to_owned);
    for e in events {
        let service = e.what.split(':').next().unwrap();
        assert_eq!(
            e.thread.as_deref(),
            Some(format!("th:{service}").as_str()),
            "{} ran on the wrong thread",
            e.what
        );
        assert_ne!(e.thread, me, "{} ran on the caller's thread", e.what);
    }
}

/// Uses about `kib` KiB of stack, in 64 KiB frames.
fn deep(kib: usize) -> usize {
    let frame = [1u8; 64 * 1024];
    let here = std::hint::black_box(&frame)
        .iter()
        .map(|&b| b as usize)
        .sum::<usize>();
    if kib <= 64 {
        here
    } else {
        here + deep(kib - 64)
    }
}

#[test]
fn stack_size_host_wide_is_applied() {
    // 6 MiB of stack: overflows (and aborts this test binary) on Rust's default 2 MiB
    // thread stack, fits in the 16 MiB asked for.
    let done = Probe::new();
    let d = done.clone();
    let host = start_host(
        HostBuilder::new()
            .stack_size(16 << 20)
            .background("deep", move |ctx| {
                assert!(deep(6 << 10) > 0);
                d.set();
                ctx.token().wait();
                Ok(())
            }),
    );
    done.expect("deep recursion on a 16 MiB stack");
    stop_clean(&host);
}

#[test]
fn stack_size_per_service_is_applied() {
    let done = Probe::new();
    let d = done.clone();
    let host = start_host(
        HostBuilder::new()
            .stack_size(128 * 1024)
            .add_service(
                Service::background("deep", move |ctx| {
                    assert!(deep(6 << 10) > 0);
                    d.set();
                    ctx.token().wait();
                    Ok(())
                })
                .stack_size(16 << 20),
            )
            .background("small", idle),
    );
    done.expect("deep recursion on a per-service 16 MiB stack");
    stop_clean(&host);
}

#[test]
fn stack_size_too_small_is_invalid_option() {
    let err = HostBuilder::new()
        .stack_size(1024)
        .background("w", idle)
        .build()
        .unwrap_err();
    match &err {
        Error::InvalidOption { name, value, .. } => {
            assert_eq!(name, "stack_size");
            assert_eq!(value, "1024");
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    assert!(err.to_string().contains("stack_size"), "{err}");
    assert!(err.to_string().contains("1024"), "{err}");

    let err = HostBuilder::new()
        .add_service(Service::background("tiny", idle).stack_size(4096))
        .build()
        .unwrap_err();
    match &err {
        Error::InvalidOption { name, value, .. } => {
            assert!(
                name.contains("stack_size") && name.contains("tiny"),
                "{name}"
            );
            assert_eq!(value, "4096");
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

fn assert_rolled_back(log: &Events, host: &Host, handle: &HostHandle) {
    assert_eq!(host.state(), HostState::Failed);
    // The started service was stopped, all three stop phases.
    assert_eq!(
        hooks_of(log, "a"),
        [
            "starting", "start", "started", "stopping", "stop", "stopped"
        ]
        .iter()
        .filter(|h| **h != "started")
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>()
    );
    // The failed one and the never-started one: no stop hook ever ran.
    for name in ["b", "c"] {
        for hook in ["stopping", "stop", "stopped"] {
            assert!(
                !log.contains(&format!("{name}:{hook}")),
                "{name}:{hook} ran"
            );
        }
    }
    assert!(!log.contains("c:start"), "c started after b failed");
    assert!(handle.stopped().is_stopped(), "`stopped` must fire");
    assert!(!handle.started().is_stopped(), "`started` must not fire");
    let snap = handle.snapshot();
    assert_eq!(snap.state, HostState::Failed);
    assert_eq!(snap.service("a").unwrap().state, ServiceState::Stopped);
    assert_eq!(snap.service("b").unwrap().state, ServiceState::Failed);
    assert!(snap.service("b").unwrap().last_error.is_some());
    assert_eq!(snap.service("c").unwrap().state, ServiceState::Skipped);
}

#[test]
fn start_error_stops_started_services_in_reverse() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .hosted("b", Rec::new("b", &log).on("start", Action::Fail))
        .hosted("c", Rec::new("c", &log))
        .build()
        .unwrap();
    let handle = host.handle();
    let err = host.start(SECS5).unwrap_err();
    match &err {
        Error::StartFailed { service, failure } => {
            assert_eq!(&**service, "b");
            assert!(!failure.is_panic());
            assert!(
                failure.to_string().contains("b failed in start"),
                "{failure}"
            );
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("`b`"), "{err}");
    assert_eq!(err.service(), Some("b"));
    assert_rolled_back(&log, &host, &handle);
}

#[test]
fn start_panic_stops_started_services_in_reverse() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .hosted("b", Rec::new("b", &log).on("start", Action::Panic))
        .hosted("c", Rec::new("c", &log))
        .build()
        .unwrap();
    let handle = host.handle();
    let err = host.start(SECS5).unwrap_err();
    match &err {
        Error::StartFailed { service, failure } => {
            assert_eq!(&**service, "b");
            assert!(failure.is_panic());
            assert!(
                failure.to_string().contains("b panicked in start"),
                "{failure}"
            );
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert_rolled_back(&log, &host, &handle);
}

#[test]
fn start_failure_rolls_back_several_in_reverse() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .background_service("b", Rec::new("b", &log))
        .hosted("c", Rec::new("c", &log))
        .hosted("d", Rec::new("d", &log).on("start", Action::Fail))
        .build()
        .unwrap();
    assert!(host.start(SECS5).is_err());
    assert_eq!(who(&log, "stop"), ["c", "a"]);
    assert_eq!(who(&log, "exit"), ["b"]);
    let stop_c = log.position("c:stop").unwrap();
    let exit_b = log.position("b:exit").unwrap();
    let stop_a = log.position("a:stop").unwrap();
    assert!(stop_c < exit_b && exit_b < stop_a, "{:?}", log.names());
}

#[test]
fn background_start_failure_never_runs_the_body() {
    let log = Events::new();
    let host = HostBuilder::new()
        .background_service("a", Rec::new("a", &log))
        .background_service("b", Rec::new("b", &log).on("start", Action::Fail))
        .build()
        .unwrap();
    let err = host.start(SECS5).unwrap_err();
    assert_eq!(err.service(), Some("b"));
    assert!(!log.contains("b:run"));
    assert!(log.contains("a:exit"), "a was started, so it is stopped");
}

#[test]
fn starting_hook_failure_fails_the_start() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .hosted("b", Rec::new("b", &log).on("starting", Action::Fail))
        .build()
        .unwrap();
    let err = host.start(SECS5).unwrap_err();
    assert_eq!(err.service(), Some("b"));
    // Nobody reached `start`, so nobody is stopped.
    assert!(!log.contains("a:start"));
    assert!(!log.contains("a:stop"));
}

#[test]
fn stop_requested_inside_start_hook_skips_later_services() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .hosted("b", Rec::new("b", &log).on("start", Action::RequestStop))
        .hosted("c", Rec::new("c", &log))
        .background_service("d", Rec::new("d", &log))
        .build()
        .unwrap();
    let handle = host.handle();
    within(PATIENCE, "start interrupted by a stop request", || {
        host.start(SECS5)
    })
    .expect("a stop during start is a clean stop, not an error");
    assert!(handle.stopping().wait_timeout(PATIENCE));
    let report = host.join(SECS5).unwrap();
    assert!(report.is_complete());
    assert_eq!(report.reason(), Some(&StopReason::Requested));
    for hook in ["stopping", "stop", "stopped"] {
        assert!(log.contains(&format!("a:{hook}")), "a:{hook} missing");
    }
    // c ran only `starting` (that phase completes for all before any `start`); d nothing.
    assert_eq!(
        hooks_of(&log, "c"),
        ["starting"],
        "c must never start or stop"
    );
    assert!(hooks_of(&log, "d").is_empty(), "d must never start or stop");
    assert!(matches!(outcome_of(&report, "a"), Outcome::Stopped));
    assert!(matches!(outcome_of(&report, "c"), Outcome::NotStarted));
    assert!(!handle.started().is_stopped());
    assert_eq!(host.state(), HostState::Stopped);
    assert_eq!(
        handle.snapshot().service("c").unwrap().state,
        ServiceState::Skipped
    );
}

#[test]
fn request_stop_from_another_thread_during_start_then_join() {
    let log = Events::new();
    let in_start = Probe::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .hosted(
            "b",
            Rec::new("b", &log)
                .on("start", Action::Signal(in_start.clone()))
                .on("start", Action::WaitToken),
        )
        .hosted("c", Rec::new("c", &log))
        .build()
        .unwrap();
    let host = Arc::new(host);
    let starter = {
        let host = Arc::clone(&host);
        spawn("starter", move || host.start(SECS5 * 6))
    };
    in_start.expect("b's start hook running");
    host.handle().request_stop();
    let started = within(PATIENCE, "start after a stop request", || {
        starter.join().unwrap()
    });
    started.expect("a stop during start is a clean stop");
    let report = host.join(SECS5).unwrap();
    assert!(log.contains("a:stop"));
    assert!(!log.contains("c:start"));
    assert!(!log.contains("c:stop"));
    assert!(
        log.contains("b:start:token"),
        "b's token fired when the start ended early"
    );
    // b's start returned Ok (after its token fired): it started, so it is stopped, first.
    assert!(
        matches!(outcome_of(&report, "b"), Outcome::Stopped),
        "{report}"
    );
    assert_eq!(who(&log, "stop"), ["b", "a"]);
    assert!(matches!(outcome_of(&report, "a"), Outcome::Stopped));
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn stop_before_start_is_a_noop() {
    let log = Events::new();
    let host = hosted(&["a"], &log).build().unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_clean());
    assert!(report.services().is_empty());
    assert_eq!(host.state(), HostState::Created);
    assert!(log.names().is_empty());
    // It can still start, and then stops for real.
    host.start(SECS5).unwrap();
    assert_eq!(host.state(), HostState::Running);
    let report = host.stop(SECS5);
    assert!(matches!(outcome_of(&report, "a"), Outcome::Stopped));
    assert!(log.contains("a:stop"));
}

#[test]
fn stop_twice_returns_the_same_report() {
    let log = Events::new();
    let host = hosted(&["a", "b"], &log).build().unwrap();
    host.start(SECS5).unwrap();
    let first = host.stop(SECS5);
    let second = host.stop(SECS5);
    assert_eq!(first.to_string(), second.to_string());
    assert_eq!(first.elapsed(), second.elapsed());
    assert_eq!(who(&log, "stop"), ["b", "a"], "each stop hook ran once");
}

#[test]
fn concurrent_stops_run_one_sequence() {
    let log = Events::new();
    let host = Arc::new(
        hosted(&["a", "b", "c"], &log)
            .background_service("d", Rec::new("d", &log).on("run", Action::WaitToken))
            .build()
            .unwrap(),
    );
    host.start(SECS5).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let stoppers: Vec<_> = (0..4)
        .map(|i| {
            let (host, barrier) = (Arc::clone(&host), Arc::clone(&barrier));
            spawn(&format!("stopper{i}"), move || {
                barrier.wait();
                host.stop(PATIENCE)
            })
        })
        .collect();
    let reports: Vec<String> = stoppers
        .into_iter()
        .map(|h| {
            let report = h.join().unwrap();
            assert!(report.is_clean(), "{report}");
            report.to_string()
        })
        .collect();
    assert!(reports.windows(2).all(|w| w[0] == w[1]), "{reports:?}");
    for hook in ["stopping", "stop", "stopped"] {
        assert_eq!(
            who(&log, hook),
            ["c", "b", "a"],
            "each {hook} hook ran once"
        );
    }
    assert_eq!(who(&log, "exit"), ["d"]);
}

#[test]
fn join_waits_for_request_stop() {
    let log = Events::new();
    let host = Arc::new(hosted(&["a"], &log).build().unwrap());
    host.start(SECS5).unwrap();
    let returned = Probe::new();
    let joiner = {
        let (host, returned) = (Arc::clone(&host), returned.clone());
        spawn("joiner", move || {
            let report = host.join(PATIENCE * 3);
            returned.set();
            report
        })
    };
    assert!(
        !returned.wait(ms(150)),
        "join returned before any stop request"
    );
    assert_eq!(host.state(), HostState::Running);
    host.handle().request_stop();
    returned.expect("join after request_stop");
    let report = joiner.join().unwrap().unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(log.contains("a:stop"));
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn run_returns_ok_for_a_clean_stop() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .background("job", stop_own_host)
        .build()
        .unwrap();
    let result = within(PATIENCE, "run", || host.run());
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_OK);
    let report = result.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(log.contains("a:stop"));
}

#[test]
fn run_returns_the_start_error() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log).on("start", Action::Fail))
        .build()
        .unwrap();
    let result = host.run();
    assert!(matches!(&result, Err(Error::StartFailed { service, .. }) if &**service == "a"));
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
}

#[test]
fn stop_hook_runs_after_the_token_fired() {
    // Regression: the `stop` command was sent before the token fired, so a quick hook could
    // run with its token not yet stopped. Several rounds and services to meet the race.
    /// Records whether its token had fired when `stopping` and `stop` ran.
    struct TokenSeen(Events);
    impl threadhost::HostedService for TokenSeen {
        fn start(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
            Ok(())
        }
        fn stopping(&mut self, ctx: &threadhost::Context) -> threadhost::ServiceResult {
            self.0.push(format!("stopping:{}", ctx.is_stopped()));
            Ok(())
        }
        fn stop(&mut self, ctx: &threadhost::Context) -> threadhost::ServiceResult {
            self.0.push(format!("stop:{}", ctx.is_stopped()));
            Ok(())
        }
    }
    let log = Events::new();
    for _ in 0..10 {
        let host = (0..4)
            .fold(HostBuilder::new(), |b, i| {
                b.hosted(&format!("s{i}"), TokenSeen(log.clone()))
            })
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        stop_clean(&host);
    }
    let names = log.names();
    assert_eq!(names.len(), 80);
    assert!(names.iter().all(|n| n != "stop:false"), "{names:?}");
    // The token fires between the phases, not before `stopping` (.NET's order).
    assert!(names.iter().all(|n| n != "stopping:true"), "{names:?}");
}

#[test]
fn host_states_seen_from_hooks() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new().hosted(
            "a",
            Rec::new("a", &log)
                .on("start", Action::RecordState)
                .on("started", Action::RecordState)
                .on("stop", Action::RecordState),
        ),
    );
    assert_eq!(host.state(), HostState::Running);
    stop_clean(&host);
    assert!(log.contains("a:start:starting"), "{:?}", log.names());
    assert!(log.contains("a:started:starting"), "{:?}", log.names());
    assert!(log.contains("a:stop:stopping"), "{:?}", log.names());
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn body_returning_ok_early_does_not_stop_the_host() {
    // Several rounds with several one-shot services: a body that returns at once races the
    // host recording its start (regression: the host overwrote `Completed` with `Running`).
    for round in 0..10 {
        let done = Probe::new();
        let builder = (0..4).fold(HostBuilder::new(), |b, i| {
            let d = done.clone();
            b.background(&format!("oneshot{i}"), move |_ctx| {
                d.set();
                Ok(())
            })
        });
        let host = builder.background("w", idle).build().unwrap();
        let handle = host.handle();
        host.start(SECS5).unwrap();
        eventually("every one-shot body completed", || {
            let snap = handle.snapshot();
            snap.services
                .iter()
                .filter(|s| s.name.starts_with("oneshot"))
                .all(|s| s.state == ServiceState::Completed)
        });
        assert_eq!(done.count(), 4, "round {round}");
        assert_eq!(host.state(), HostState::Running);
        assert!(!handle.stopping().is_stopped());
        assert_eq!(
            handle.snapshot().service("w").unwrap().state,
            ServiceState::Running
        );
        stop_clean(&host);
    }
}

#[test]
fn body_returning_stopped_after_stop_is_clean() {
    let host = HostBuilder::new()
        .background("sleeper", |ctx| {
            loop {
                ctx.sleep(ms(1))?;
            }
        })
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let report = clean_stop_report(&host);
    assert!(matches!(outcome_of(&report, "sleeper"), Outcome::Stopped));
    assert_eq!(report.failures().count(), 0);
    let status = handle.snapshot();
    let s = status.service("sleeper").unwrap();
    assert_eq!(s.state, ServiceState::Stopped);
    assert!(s.last_error.is_none());
}

#[test]
fn dropping_a_running_host_stops_it() {
    let log = Events::new();
    let host = hosted(&["a"], &log)
        .shutdown_timeout(SECS5)
        .background_service("b", Rec::new("b", &log))
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    within(SECS5 + MARGIN, "drop of a running host", || drop(host));
    assert!(log.contains("a:stop"));
    assert!(log.contains("b:exit"));
    assert_eq!(handle.state(), HostState::Stopped);
    assert!(handle.stopped().is_stopped());
}

#[test]
fn dropping_a_created_host_starts_nothing() {
    let log = Events::new();
    let host = hosted(&["a"], &log).build().unwrap();
    drop(host);
    assert!(log.names().is_empty());
}

#[test]
fn request_stop_before_start_starts_nothing() {
    let log = Events::new();
    let host = hosted(&["a", "b"], &log).build().unwrap();
    let handle = host.handle();
    handle.request_stop();
    host.start(SECS5).unwrap();
    assert!(log.names().is_empty(), "{:?}", log.names());
    assert_eq!(host.state(), HostState::Stopped);
    let report = within(MARGIN, "join after an early stop", || host.join(SECS5)).unwrap();
    assert!(report.is_clean());
    assert!(handle.stopped().is_stopped());
    assert!(!handle.started().is_stopped());
    let snap = handle.snapshot();
    assert!(
        snap.services
            .iter()
            .all(|s| s.state == ServiceState::Skipped)
    );
}

#[test]
fn start_twice_is_invalid_state() {
    let host = start_host(HostBuilder::new().background("w", idle));
    let err = host.start(SECS5).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidState {
                operation: "start",
                state: HostState::Running
            }
        ),
        "{err:?}"
    );
    stop_clean(&host);
    assert!(matches!(host.start(SECS5), Err(Error::InvalidState { .. })));
}

#[test]
fn snapshot_shows_states_and_durations() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted(
            "slow",
            Rec::new("slow", &log).on("start", Action::Busy(ms(30))),
        )
        .background("w", idle)
        .build()
        .unwrap();
    let handle = host.handle();
    let snap = handle.snapshot();
    assert_eq!(snap.state, HostState::Created);
    let names: Vec<&str> = snap.services.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["slow", "w"], "registration order");
    assert!(
        snap.services
            .iter()
            .all(|s| s.state == ServiceState::Created)
    );
    host.start(SECS5).unwrap();
    let snap = handle.snapshot();
    assert_eq!(snap.state, HostState::Running);
    for s in &snap.services {
        assert_eq!(s.state, ServiceState::Running, "{}", s.name);
        assert!(
            s.start_duration.is_some(),
            "{} has no start duration",
            s.name
        );
        assert!(s.stop_duration.is_none());
        assert_eq!(s.restarts, 0);
    }
    assert!(snap.service("slow").unwrap().start_duration.unwrap() >= ms(30));
    stop_clean(&host);
    let snap = handle.snapshot();
    assert_eq!(snap.state, HostState::Stopped);
    for s in &snap.services {
        assert_eq!(s.state, ServiceState::Stopped, "{}", s.name);
        assert!(s.stop_duration.is_some(), "{} has no stop duration", s.name);
    }
}

#[test]
fn empty_service_name_is_invalid_option() {
    let err = HostBuilder::new().background("", idle).build().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption { name, .. } if name.contains("name")),
        "{err:?}"
    );
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn duplicate_service_name_is_an_error() {
    let err = HostBuilder::new()
        .background("twin", idle)
        .background("twin", idle)
        .build()
        .unwrap_err();
    assert!(matches!(&err, Error::DuplicateService { service } if &**service == "twin"));
    assert!(err.to_string().contains("`twin`"), "{err}");
}

#[test]
fn host_and_handle_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_clone<T: Clone>() {}
    assert_send_sync::<Host>();
    assert_send_sync::<HostHandle>();
    assert_clone::<HostHandle>();
    assert_send_sync::<threadhost::StopReport>();
    assert_send_sync::<Error>();
}

#[test]
fn stop_requested_inside_start_hook_stops_the_requester_first_phase_by_phase() {
    // Its start returned Ok, so it counts as started: it is stopped with the others, in
    // reverse order and phase by phase, and reported as stopped — whatever the timing of
    // the request and the reply.
    for round in 0..20 {
        let log = Events::new();
        let host = start_host(
            HostBuilder::new()
                .hosted("a", Rec::new("a", &log))
                .hosted("b", Rec::new("b", &log).on("start", Action::RequestStop))
                .hosted("c", Rec::new("c", &log)),
        );
        let report = host.join(SECS5).unwrap();
        assert!(
            matches!(outcome_of(&report, "b"), Outcome::Stopped),
            "round {round}: {report}"
        );
        let stops: Vec<String> = log
            .names()
            .into_iter()
            .filter(|n| n.ends_with(":stopping") || n.ends_with(":stop") || n.ends_with(":stopped"))
            .collect();
        assert_eq!(
            stops,
            [
                "b:stopping",
                "a:stopping",
                "b:stop",
                "a:stop",
                "b:stopped",
                "a:stopped"
            ],
            "round {round}"
        );
    }
}

#[test]
fn stop_from_another_thread_during_start_returns_a_clean_report() {
    let log = Events::new();
    let in_start = Probe::new();
    let host = Arc::new(
        HostBuilder::new()
            .hosted("a", Rec::new("a", &log))
            .hosted(
                "b",
                Rec::new("b", &log)
                    .on("start", Action::Signal(in_start.clone()))
                    .on("start", Action::WaitToken),
            )
            .hosted("c", Rec::new("c", &log))
            .build()
            .unwrap(),
    );
    let starter = {
        let host = Arc::clone(&host);
        spawn("starter", move || host.start(PATIENCE))
    };
    in_start.expect("b's start hook running");
    let report = within(PATIENCE, "stop during start", || host.stop(SECS5));
    assert!(report.is_clean(), "{report}");
    starter
        .join()
        .unwrap()
        .expect("a stop during start is clean");
    assert_eq!(who(&log, "stop"), ["b", "a"]);
    assert!(!log.contains("c:start"));
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn join_started_before_start_returns_after_the_stop() {
    let log = Events::new();
    let host = Arc::new(hosted(&["a"], &log).build().unwrap());
    let joiner = {
        let host = Arc::clone(&host);
        spawn("early-joiner", move || host.join(PATIENCE))
    };
    host.start(SECS5).unwrap();
    host.handle().request_stop();
    let report = joiner.join().unwrap().unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(log.contains("a:stop"));
}

#[test]
fn drop_after_request_stop_runs_the_stop() {
    let log = Events::new();
    let host = hosted(&["a"], &log).build().unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    handle.request_stop();
    assert_eq!(handle.state(), HostState::Stopping);
    drop(host);
    assert!(log.contains("a:stopped"));
    assert_eq!(handle.state(), HostState::Stopped);
}

#[test]
fn handle_outlives_the_host() {
    let host = HostBuilder::new().background("w", idle).build().unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    drop(host);
    // Still usable: no-ops and reads.
    handle.request_stop();
    assert_eq!(handle.state(), HostState::Stopped);
    assert!(handle.stopped().is_stopped());
    assert_eq!(handle.snapshot().services.len(), 1);
}

#[test]
fn request_stop_before_start_with_a_waiting_join_starts_nothing() {
    // Regression: a `join` waiting when the early stop request came marked the host
    // Stopped, and the `start` that followed failed with InvalidState instead of starting
    // nothing (the outcome depended on which thread ran first).
    let log = Events::new();
    let host = Arc::new(hosted(&["a"], &log).build().unwrap());
    let handle = host.handle();
    let joiner = {
        let host = Arc::clone(&host);
        spawn("early-joiner", move || host.join(PATIENCE))
    };
    handle.request_stop();
    let report = joiner.join().unwrap().unwrap();
    assert!(report.is_clean());
    assert_eq!(handle.state(), HostState::Stopped);
    host.start(SECS5)
        .expect("start after an early stop starts nothing");
    assert!(log.names().is_empty(), "{:?}", log.names());
    assert!(handle.stopping().is_stopped() && handle.stopped().is_stopped());
    assert!(
        handle
            .snapshot()
            .services
            .iter()
            .all(|s| s.state == ServiceState::Skipped)
    );
}

#[test]
fn stop_waits_for_bodies_and_hooks_to_return() {
    // The stop is over only when the service code is: a body's clean-up after its token
    // fired, and every stop hook, have finished when `stop` returns.
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .hosted("h", Rec::new("h", &log).on("stopped", Action::Busy(ms(50))))
            .background("body", {
                let log = log.clone();
                move |ctx| {
                    ctx.token().wait();
                    common::busy(ms(50));
                    log.push("body:cleaned-up");
                    Ok(())
                }
            }),
    );
    let report = clean_stop_report(&host);
    assert!(log.contains("body:cleaned-up"));
    assert!(log.contains("h:stopped"));
    assert!(
        report.service("body").unwrap().duration >= ms(50),
        "{report}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn no_service_thread_outlives_a_clean_stop() {
    let host = start_host(
        HostBuilder::new()
            .background("leakchk1", idle)
            .hosted("leakchk2", Rec::new("leakchk2", &Events::new())),
    );
    assert_eq!(common::threads_named("th:leakchk1"), 1);
    assert_eq!(common::threads_named("th:leakchk2"), 1);
    stop_clean(&host);
    // Joined threads are gone (the kernel may take a moment to drop the task entry).
    eventually("service threads gone", || {
        common::threads_named("th:leakchk1") == 0 && common::threads_named("th:leakchk2") == 0
    });
}

#[test]
fn request_stop_with_reason_reaches_services_and_report() {
    let (seen, body) = reason_seen();
    let host = HostBuilder::new().background("w", body).build().unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    handle.request_stop_with(StopReason::Signal { name: "SIGTERM" });
    handle.request_stop(); // a second request does not change the reason
    let report = host.join(SECS5).unwrap();
    assert_eq!(
        report.reason(),
        Some(&StopReason::Signal { name: "SIGTERM" })
    );
    assert_eq!(
        handle.stop_reason(),
        Some(StopReason::Signal { name: "SIGTERM" })
    );
    assert_eq!(
        handle.stopping().reason(),
        Some(StopReason::Signal { name: "SIGTERM" })
    );
    assert_eq!(
        *seen.lock().unwrap(),
        Some(StopReason::Signal { name: "SIGTERM" })
    );
}

/// A hosted service owning a counted value.
struct Owns(#[allow(dead_code)] common::Counted);

impl threadhost::HostedService for Owns {
    fn start(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
        Ok(())
    }
    fn stop(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
        Ok(())
    }
}

#[test]
fn service_values_are_dropped_by_the_stop() {
    let drops = common::DropCounter::new();
    let host = start_host(
        HostBuilder::new()
            .hosted("h", Owns(drops.token()))
            .background("b", {
                let owned = drops.token();
                move |ctx| {
                    let _keep = &owned;
                    ctx.token().wait();
                    Ok(())
                }
            }),
    );
    assert_eq!(drops.drops(), 0);
    stop_clean(&host);
    // Dropped on their threads before the stop returned, not when the host goes away.
    assert_eq!(drops.drops(), 2);
}

#[test]
fn service_values_are_dropped_after_a_failed_start() {
    let drops = common::DropCounter::new();
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("ok", Owns(drops.token()))
        .hosted("bad", Rec::new("bad", &log).on("start", Action::Fail))
        .hosted("never", Owns(drops.token()))
        .build()
        .unwrap();
    assert!(host.start(SECS5).is_err());
    assert_eq!(
        drops.drops(),
        2,
        "started and never-started services are both freed"
    );
}

#[test]
fn service_values_of_a_never_started_host_are_dropped_with_it() {
    let drops = common::DropCounter::new();
    let host = HostBuilder::new()
        .hosted("h", Owns(drops.token()))
        .build()
        .unwrap();
    let handle = host.handle();
    drop(host);
    drop(handle);
    assert_eq!(drops.drops(), 1);
}

#[test]
fn context_names_the_service_and_the_phase_deadline() {
    /// Checks its context in its start hook and its body.
    struct Checks(Probe);
    impl threadhost::BackgroundService for Checks {
        fn start(&mut self, ctx: &threadhost::Context) -> threadhost::ServiceResult {
            assert_eq!(ctx.name(), "checker");
            let left = ctx
                .deadline()
                .remaining()
                .expect("start runs under the start deadline");
            assert!(left <= SECS5);
            assert!(!ctx.is_stopped());
            Ok(())
        }
        fn run(&mut self, ctx: &threadhost::Context) -> threadhost::ServiceResult {
            assert_eq!(ctx.name(), "checker");
            assert!(ctx.deadline().is_never(), "a body has no deadline");
            self.0.set();
            ctx.token().wait();
            Ok(())
        }
    }
    let ran = Probe::new();
    let host = start_host(HostBuilder::new().background_service("checker", Checks(ran.clone())));
    ran.expect("body checked its context");
    stop_clean(&host);
}
