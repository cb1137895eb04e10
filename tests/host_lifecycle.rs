//! Host lifecycle: service threads, hook order, start/stop/join/run, failed and interrupted
//! starts, lifetime events, drop, snapshots and builder errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Action, Events, Gate, MARGIN, PATIENCE, Probe, Rec, Rendezvous, eventually, hooks_of, ms,
    spawn, within,
};
use threadhost::{
    Error, Host, HostBuilder, HostHandle, HostState, Outcome, Service, ServiceState, StopReason,
};

const SECS5: Duration = Duration::from_secs(5);

/// A background body that waits for its token.
fn idle(ctx: &threadhost::Context) -> threadhost::ServiceResult {
    ctx.token().wait();
    Ok(())
}

fn hosted(names: &[&str], log: &Events) -> HostBuilder {
    names
        .iter()
        .fold(HostBuilder::new(), |b, n| b.hosted(n, Rec::new(n, log)))
}

/// The names in `log` whose hook part is `hook`, e.g. all "…:start".
fn who(log: &Events, hook: &str) -> Vec<String> {
    let suffix = format!(":{hook}");
    log.names()
        .into_iter()
        .filter_map(|w| w.strip_suffix(&suffix).map(str::to_owned))
        .filter(|w| !w.contains(':'))
        .collect()
}

#[test]
fn smoke() {
    let host = HostBuilder::new()
        .background("worker", idle)
        .build()
        .unwrap();
    assert_eq!(host.state(), HostState::Created);
    host.start(SECS5).unwrap();
    assert_eq!(host.state(), HostState::Running);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert!(matches!(
        report.service("worker").unwrap().outcome,
        Outcome::Stopped
    ));
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn services_run_on_their_own_named_threads() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("web", Rec::new("web", &log))
        .background_service("pump", Rec::new("pump", &log))
        .background("closure", {
            let log = log.clone();
            move |ctx| {
                log.push("closure:run");
                ctx.token().wait();
                Ok(())
            }
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("pump:run");
    log.wait_for("closure:run");
    assert!(host.stop(SECS5).is_clean());
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
    let host = HostBuilder::new()
        .stack_size(16 << 20)
        .background("deep", move |ctx| {
            assert!(deep(6 << 10) > 0);
            d.set();
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    done.expect("deep recursion on a 16 MiB stack");
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn stack_size_per_service_is_applied() {
    let done = Probe::new();
    let d = done.clone();
    let host = HostBuilder::new()
        .stack_size(128 * 1024)
        .add_service(
            Service::background_fn("deep", move |ctx| {
                assert!(deep(6 << 10) > 0);
                d.set();
                ctx.token().wait();
                Ok(())
            })
            .stack_size(16 << 20),
        )
        .background("small", idle)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    done.expect("deep recursion on a per-service 16 MiB stack");
    assert!(host.stop(SECS5).is_clean());
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
        .add_service(Service::background_fn("tiny", idle).stack_size(4096))
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

#[test]
fn hook_phases_complete_across_services_in_order() {
    let log = Events::new();
    let host = hosted(&["a", "b", "c"], &log).build().unwrap();
    host.start(SECS5).unwrap();
    assert!(host.stop(SECS5).is_clean());
    let expected: Vec<String> = [
        "a:starting",
        "b:starting",
        "c:starting", //
        "a:start",
        "b:start",
        "c:start", //
        "a:started",
        "b:started",
        "c:started", //
        "c:stopping",
        "b:stopping",
        "a:stopping", //
        "c:stop",
        "b:stop",
        "a:stop", //
        "c:stopped",
        "b:stopped",
        "a:stopped",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(log.names(), expected);
}

#[test]
fn background_services_start_in_order_and_stop_in_reverse() {
    let log = Events::new();
    let host = ["a", "b", "c"]
        .iter()
        .fold(HostBuilder::new(), |b, n| {
            b.background_service(n, Rec::new(n, &log))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(who(&log, "start"), ["a", "b", "c"]);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert_eq!(who(&log, "exit"), ["c", "b", "a"]);
    let order: Vec<&str> = report.services().iter().map(|s| &*s.name).collect();
    assert_eq!(order, ["c", "b", "a"]);
}

#[test]
fn depends_on_starts_dependencies_first() {
    let log = Events::new();
    let host = HostBuilder::new()
        .add_service(Service::hosted("api", Rec::new("api", &log)).depends_on("db"))
        .hosted("db", Rec::new("db", &log))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert!(host.stop(SECS5).is_clean());
    assert_eq!(who(&log, "start"), ["db", "api"]);
    assert_eq!(who(&log, "stop"), ["api", "db"]);
}

#[test]
fn start_concurrently_overlaps_starts() {
    // Each start waits for the other: succeeds only if both run at once.
    let log = Events::new();
    let meet = Rendezvous::new(2);
    let host = HostBuilder::new()
        .start_concurrently(true)
        .hosted(
            "a",
            Rec::new("a", &log).on("start", Action::Meet(meet.clone(), PATIENCE)),
        )
        .hosted(
            "b",
            Rec::new("b", &log).on("start", Action::Meet(meet, PATIENCE)),
        )
        .build()
        .unwrap();
    within(PATIENCE, "concurrent start", || host.start(PATIENCE)).unwrap();
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn start_without_concurrency_is_sequential() {
    // The control for the test above: without the option the same rendezvous fails.
    let log = Events::new();
    let meet = Rendezvous::new(2);
    let host = HostBuilder::new()
        .hosted(
            "a",
            Rec::new("a", &log).on("start", Action::Meet(meet.clone(), ms(200))),
        )
        .hosted(
            "b",
            Rec::new("b", &log).on("start", Action::Meet(meet, ms(200))),
        )
        .build()
        .unwrap();
    let err = host.start(SECS5).unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "a"),
        "{err}"
    );
    assert!(!log.contains("b:start"));
}

#[test]
fn stop_concurrently_overlaps_stops() {
    let log = Events::new();
    let meet = Rendezvous::new(2);
    let host = HostBuilder::new()
        .stop_concurrently(true)
        .hosted(
            "a",
            Rec::new("a", &log).on("stop", Action::Meet(meet.clone(), PATIENCE)),
        )
        .hosted(
            "b",
            Rec::new("b", &log).on("stop", Action::Meet(meet, PATIENCE)),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = within(PATIENCE, "concurrent stop", || host.stop(PATIENCE));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn stop_without_concurrency_is_sequential() {
    let log = Events::new();
    let meet = Rendezvous::new(2);
    let host = HostBuilder::new()
        .hosted(
            "a",
            Rec::new("a", &log).on("stop", Action::Meet(meet.clone(), ms(200))),
        )
        .hosted(
            "b",
            Rec::new("b", &log).on("stop", Action::Meet(meet, ms(200))),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.stop(SECS5);
    assert!(!report.is_clean(), "sequential stops cannot meet: {report}");
    assert!(matches!(
        report.service("b").unwrap().outcome,
        Outcome::Failed(_)
    ));
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
fn start_overrun_returns_by_deadline_with_start_timeout() {
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
    assert!(matches!(
        report.service("a").unwrap().outcome,
        Outcome::Stopped
    ));
    assert!(matches!(
        report.service("c").unwrap().outcome,
        Outcome::NotStarted
    ));
    assert!(!handle.started().is_stopped());
    assert_eq!(host.state(), HostState::Stopped);
    assert_eq!(
        handle.snapshot().service("c").unwrap().state,
        ServiceState::Skipped
    );
}

#[test]
fn stop_requested_from_another_thread_during_start() {
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
        matches!(report.service("b").unwrap().outcome, Outcome::Stopped),
        "{report}"
    );
    assert_eq!(who(&log, "stop"), ["b", "a"]);
    assert!(matches!(
        report.service("a").unwrap().outcome,
        Outcome::Stopped
    ));
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
    assert!(matches!(
        report.service("a").unwrap().outcome,
        Outcome::Stopped
    ));
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
fn join_with_deadline_times_out_when_nobody_stops() {
    let host = HostBuilder::new().background("w", idle).build().unwrap();
    host.start(SECS5).unwrap();
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
    assert!(host.stop(SECS5).is_clean());
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
fn run_returns_ok_for_a_clean_stop() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log))
        .background("job", |ctx| {
            ctx.host().request_stop();
            Ok(())
        })
        .build()
        .unwrap();
    let result = within(PATIENCE, "run", || host.run());
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_OK);
    let report = result.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(log.contains("a:stop"));
}

#[test]
fn run_returns_service_failed_when_a_worker_fails() {
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
            assert!(matches!(
                report.service("ok").unwrap().outcome,
                Outcome::Stopped
            ));
        }
        other => panic!("expected ServiceFailed, got {other:?}"),
    }
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
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert!(log.contains("a:stopped"));
    assert!(after.is_set(), "the other callbacks still ran");
    assert_eq!(host.state(), HostState::Stopped);
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
        assert!(host.stop(SECS5).is_clean());
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
    let host = HostBuilder::new()
        .hosted(
            "a",
            Rec::new("a", &log)
                .on("start", Action::RecordState)
                .on("started", Action::RecordState)
                .on("stop", Action::RecordState),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(host.state(), HostState::Running);
    assert!(host.stop(SECS5).is_clean());
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
        let report = host.stop(SECS5);
        assert!(report.is_clean(), "{report}");
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
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert!(matches!(
        report.service("sleeper").unwrap().outcome,
        Outcome::Stopped
    ));
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
    let host = HostBuilder::new().background("w", idle).build().unwrap();
    host.start(SECS5).unwrap();
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
    assert!(host.stop(SECS5).is_clean());
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
    assert!(host.stop(SECS5).is_clean());
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
fn unknown_dependency_is_an_error() {
    let err = HostBuilder::new()
        .add_service(Service::background_fn("api", idle).depends_on("db"))
        .build()
        .unwrap_err();
    match &err {
        Error::UnknownDependency {
            service,
            dependency,
        } => {
            assert_eq!((&**service, &**dependency), ("api", "db"));
        }
        other => panic!("expected UnknownDependency, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("`api`") && text.contains("`db`"), "{text}");
}

#[test]
fn dependency_cycle_is_an_error_naming_the_services() {
    let err = HostBuilder::new()
        .background("free", idle)
        .add_service(Service::background_fn("a", idle).depends_on("b"))
        .add_service(Service::background_fn("b", idle).depends_on("c"))
        .add_service(Service::background_fn("c", idle).depends_on("a"))
        .build()
        .unwrap_err();
    match &err {
        Error::DependencyCycle { services } => {
            let names: Vec<&str> = services.iter().map(|s| &**s).collect();
            for n in ["a", "b", "c"] {
                assert!(names.contains(&n), "{names:?}");
            }
            assert!(!names.contains(&"free"), "{names:?}");
            assert_eq!(names.first(), names.last(), "the cycle closes: {names:?}");
        }
        other => panic!("expected DependencyCycle, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("cycle") && text.contains("`a`"), "{text}");
    assert_eq!(threadhost::exit_code(&Err(err)), threadhost::EXIT_CONFIG);
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
fn service_requesting_stop_in_its_start_is_started_and_stopped_in_order() {
    // Its start returned Ok, so it counts as started: it is stopped with the others, in
    // reverse order and phase by phase, and reported as stopped — whatever the timing of
    // the request and the reply.
    for round in 0..20 {
        let log = Events::new();
        let host = HostBuilder::new()
            .hosted("a", Rec::new("a", &log))
            .hosted("b", Rec::new("b", &log).on("start", Action::RequestStop))
            .hosted("c", Rec::new("c", &log))
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        let report = host.join(SECS5).unwrap();
        assert!(
            matches!(report.service("b").unwrap().outcome, Outcome::Stopped),
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
fn start_concurrently_still_waits_for_dependencies() {
    // `api` depends on `db`: even with concurrent starts, db's start completes first.
    let log = Events::new();
    let host = HostBuilder::new()
        .start_concurrently(true)
        .stop_concurrently(true)
        .add_service(Service::hosted("api", Rec::new("api", &log)).depends_on("db"))
        .hosted(
            "db",
            Rec::new("db", &log)
                .on("start", Action::Busy(ms(100)))
                .on("start", Action::RecordState)
                .on("stop", Action::Busy(ms(100)))
                .on("stop", Action::RecordState),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert!(host.stop(SECS5).is_clean());
    let names = log.names();
    common::assert_before(
        &names,
        &"db:start:starting".to_owned(),
        &"api:start".to_owned(),
    );
    common::assert_before(&names, &"api:stop".to_owned(), &"db:stop".to_owned());
}

#[test]
fn stop_from_another_thread_during_start() {
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
    let host = HostBuilder::new()
        .hosted("h", Rec::new("h", &log).on("stopped", Action::Busy(ms(50))))
        .background("body", {
            let log = log.clone();
            move |ctx| {
                ctx.token().wait();
                common::busy(ms(50));
                log.push("body:cleaned-up");
                Ok(())
            }
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
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
    /// How many of this process's threads have `comm` equal to `name`.
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }
    let host = HostBuilder::new()
        .background("leakchk1", idle)
        .hosted("leakchk2", Rec::new("leakchk2", &Events::new()))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(threads_named("th:leakchk1"), 1);
    assert_eq!(threads_named("th:leakchk2"), 1);
    assert!(host.stop(SECS5).is_clean());
    // Joined threads are gone (the kernel may take a moment to drop the task entry).
    eventually("service threads gone", || {
        threads_named("th:leakchk1") == 0 && threads_named("th:leakchk2") == 0
    });
}

#[test]
fn failing_stop_hooks_are_reported_and_the_stop_goes_on() {
    let log = Events::new();
    let host = HostBuilder::new()
        .hosted("a", Rec::new("a", &log).on("stop", Action::Fail))
        .hosted("b", Rec::new("b", &log).on("stopping", Action::Panic))
        .hosted("c", Rec::new("c", &log))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_complete());
    assert!(!report.is_clean());
    let failures: Vec<(String, bool)> = report
        .failures()
        .map(|(n, f)| (n.to_owned(), f.is_panic()))
        .collect();
    assert_eq!(failures, [("b".to_owned(), true), ("a".to_owned(), false)]);
    assert!(matches!(
        report.service("c").unwrap().outcome,
        Outcome::Stopped
    ));
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

#[test]
fn request_stop_with_reason_reaches_services_and_report() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = Arc::clone(&seen);
    let host = HostBuilder::new()
        .background("w", move |ctx| {
            ctx.token().wait();
            *s.lock().unwrap() = ctx.token().reason();
            Ok(())
        })
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    handle.request_stop_with(StopReason::Signal);
    handle.request_stop(); // a second request does not change the reason
    let report = host.join(SECS5).unwrap();
    assert_eq!(report.reason(), Some(&StopReason::Signal));
    assert_eq!(handle.stop_reason(), Some(StopReason::Signal));
    assert_eq!(handle.stopping().reason(), Some(StopReason::Signal));
    assert_eq!(*seen.lock().unwrap(), Some(StopReason::Signal));
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
    let host = HostBuilder::new()
        .hosted("h", Owns(drops.token()))
        .background("b", {
            let owned = drops.token();
            move |ctx| {
                let _keep = &owned;
                ctx.token().wait();
                Ok(())
            }
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(drops.drops(), 0);
    assert!(host.stop(SECS5).is_clean());
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
    let host = HostBuilder::new()
        .background_service("checker", Checks(ran.clone()))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    ran.expect("body checked its context");
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}
