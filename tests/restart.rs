//! Restart supervision: `Policy::Restart` restarts a failed body on its thread after a backoff,
//! escalates to StopHost past the intensity limit, and a stop during the backoff returns at once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Noop, PATIENCE, SECS5, await_state, idle, ms, outcome_of, start_host, stop_clean};
use crossbeam_channel::{Receiver, unbounded};
use threadhost::{
    Backoff, Error, Failure, HostBuilder, HostState, Outcome, Policy, Service, ServiceState,
};

fn restart(backoff: Backoff, max_restarts: u32, within: Duration) -> Policy {
    Policy::Restart {
        backoff,
        max_restarts,
        within,
    }
}

/// What the body reports: it began (attempt, when), or it is about to fail (attempt, when).
#[derive(Debug)]
enum Event {
    Began(u32, Instant),
    Failing(u32, Instant),
}

fn recv(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(PATIENCE)
        .expect("the service reports within PATIENCE")
}

/// A body that fails (error) on its first `failures` runs, then waits for its token.
fn flaky(failures: u32, tx: crossbeam_channel::Sender<Event>) -> Service {
    let attempts = AtomicU32::new(0);
    Service::background("flaky", move |ctx| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(Event::Began(attempt, Instant::now()));
        if attempt < failures {
            let _ = tx.send(Event::Failing(attempt, Instant::now()));
            return Err(format!("failure {}", attempt + 1).into());
        }
        ctx.token().wait();
        Ok(())
    })
}

#[test]
fn smoke() {
    let (tx, rx) = unbounded();
    let host = start_host(
        HostBuilder::new().add_service(flaky(1, tx).on_failure(restart(
            Backoff::fixed(ms(1)),
            3,
            ms(60_000),
        ))),
    );
    assert!(matches!(recv(&rx), Event::Began(0, _)));
    assert!(matches!(recv(&rx), Event::Failing(0, _)));
    assert!(matches!(recv(&rx), Event::Began(1, _)));
    stop_clean(&host);
}

#[test]
fn fails_twice_then_runs_after_exactly_two_restarts_with_backoff_respected() {
    let (tx, rx) = unbounded();
    let backoff = Backoff::exponential(ms(60), Duration::from_secs(5));
    let host = HostBuilder::new()
        .add_service(flaky(2, tx).on_failure(restart(backoff, 5, Duration::from_secs(60))))
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let mut began = Vec::new();
    let mut failed = Vec::new();
    while began.len() < 3 {
        match recv(&rx) {
            Event::Began(_, at) => began.push(at),
            Event::Failing(_, at) => failed.push(at),
        }
    }
    // Backoff 60 ms, then 120 ms (doubling): the gap from each failure to the next run.
    let gap1 = began[1].duration_since(failed[0]);
    let gap2 = began[2].duration_since(failed[1]);
    assert!(gap1 >= ms(60), "first restart after {gap1:?}");
    assert!(gap2 >= ms(120), "second restart after {gap2:?}");
    let status = handle.snapshot().service("flaky").unwrap().clone();
    assert_eq!(status.state, ServiceState::Running);
    assert_eq!(status.restarts, 2);
    assert_eq!(
        status.last_error.map(|f| f.to_string()).as_deref(),
        Some("failure 2")
    );
    assert_eq!(handle.state(), HostState::Running);
    stop_clean(&host);
    assert!(rx.try_recv().is_err(), "no further run after the stop");
}

#[test]
fn always_failing_service_escalates_to_stop_host() {
    let runs = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&runs);
    let host = HostBuilder::new()
        .shutdown_timeout(SECS5)
        .background("steady", idle)
        .add_service(
            Service::background("doomed", move |_ctx| {
                r.fetch_add(1, Ordering::SeqCst);
                Err("cannot connect".into())
            })
            .on_failure(restart(Backoff::fixed(ms(5)), 2, Duration::from_secs(60))),
        )
        .build()
        .unwrap();
    let handle = host.handle();
    let result = host.run();
    match &result {
        Err(Error::ServiceFailed {
            service,
            failure,
            report,
        }) => {
            assert_eq!(&**service, "doomed");
            assert_eq!(failure.to_string(), "cannot connect");
            assert!(matches!(outcome_of(report, "steady"), Outcome::Stopped));
        }
        other => panic!("expected ServiceFailed, got {other:?}"),
    }
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
    // The first run and two restarts; the third failure escalated.
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let status = handle.snapshot().service("doomed").unwrap().clone();
    assert_eq!(status.restarts, 2);
    assert_eq!(status.state, ServiceState::Failed);
}

#[test]
fn failures_spread_beyond_the_window_never_escalate() {
    // One restart allowed per 40 ms window, and each backoff is longer than the window: the
    // previous restart has always left the window when the next failure comes.
    let (tx, rx) = unbounded();
    let host = HostBuilder::new()
        .add_service(flaky(4, tx).on_failure(restart(Backoff::fixed(ms(60)), 1, ms(40))))
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    loop {
        if let Event::Began(4, _) = recv(&rx) {
            break;
        }
    }
    let status = handle.snapshot().service("flaky").unwrap().clone();
    assert_eq!(status.restarts, 4);
    assert_eq!(status.state, ServiceState::Running);
    assert_eq!(handle.state(), HostState::Running);
    stop_clean(&host);
}

#[test]
fn stop_during_a_long_backoff_returns_at_once() {
    let (tx, rx) = unbounded();
    let host = HostBuilder::new()
        .add_service(flaky(1, tx).on_failure(restart(
            Backoff::fixed(Duration::from_secs(3600)),
            3,
            Duration::from_secs(60),
        )))
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    assert!(matches!(recv(&rx), Event::Began(0, _)));
    await_state(&handle, "flaky", ServiceState::Restarting);
    let status = handle.snapshot().service("flaky").unwrap().clone();
    assert_eq!(
        status.last_error.map(|f| f.to_string()).as_deref(),
        Some("failure 1")
    );
    // No restart happened yet: the body is waiting out its backoff.
    assert_eq!(status.restarts, 0);
    let began = Instant::now();
    let report = host.stop(SECS5);
    assert!(began.elapsed() < ms(500), "stop took {:?}", began.elapsed());
    assert!(report.is_clean(), "{report}");
    assert!(matches!(recv(&rx), Event::Failing(0, _)));
    assert!(
        rx.try_recv().is_err(),
        "the body must not run again after the stop"
    );
    assert_eq!(handle.snapshot().service("flaky").unwrap().restarts, 0);
}

#[test]
fn panics_count_as_failures() {
    let (tx, rx) = unbounded();
    let attempts = AtomicU32::new(0);
    let host = HostBuilder::new()
        .add_service(
            Service::background("panicky", move |ctx| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(Event::Began(attempt, Instant::now()));
                if attempt == 0 {
                    panic!("index out of bounds");
                }
                ctx.token().wait();
                Ok(())
            })
            .on_failure(restart(Backoff::fixed(ms(1)), 1, Duration::from_secs(60))),
        )
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    assert!(matches!(recv(&rx), Event::Began(0, _)));
    assert!(matches!(recv(&rx), Event::Began(1, _)));
    let status = handle.snapshot().service("panicky").unwrap().clone();
    assert_eq!(status.restarts, 1);
    assert_eq!(status.state, ServiceState::Running);
    match status.last_error {
        Some(Failure::Panic(message)) => assert_eq!(&*message, "index out of bounds"),
        other => panic!("expected a panic failure, got {other:?}"),
    }
    stop_clean(&host);
}

#[test]
fn panics_escalate_past_the_limit() {
    let result = HostBuilder::new()
        .add_service(
            Service::background("panicky", |_ctx| panic!("always")).on_failure(restart(
                Backoff::fixed(ms(1)),
                1,
                Duration::from_secs(60),
            )),
        )
        .build()
        .unwrap()
        .run();
    match &result {
        Err(Error::ServiceFailed {
            service,
            failure: Failure::Panic(message),
            ..
        }) => {
            assert_eq!(&**service, "panicky");
            assert_eq!(&**message, "always");
        }
        other => panic!("expected ServiceFailed with a panic, got {other:?}"),
    }
}

#[test]
fn backoff_grows_by_the_multiplier_up_to_the_max() {
    let b = Backoff::exponential(ms(100), ms(1000));
    assert_eq!(b.delay(0), ms(100));
    assert_eq!(b.delay(1), ms(200));
    assert_eq!(b.delay(3), ms(800));
    assert_eq!(b.delay(4), ms(1000));
    assert_eq!(b.delay(u32::MAX), ms(1000));
    assert_eq!(Backoff::fixed(ms(7)).delay(9), ms(7));
}

#[test]
fn jittered_backoff_stays_within_its_range() {
    // Jitter 0.5 on a fixed 80 ms backoff: each wait is in [40 ms, 80 ms].
    let (tx, rx) = unbounded();
    let host = start_host(
        HostBuilder::new().add_service(flaky(3, tx).on_failure(restart(
            Backoff::fixed(ms(80)).with_jitter(0.5),
            5,
            Duration::from_secs(60),
        ))),
    );
    let mut failed = None;
    let mut gaps = Vec::new();
    while gaps.len() < 3 {
        match recv(&rx) {
            Event::Failing(_, at) => failed = Some(at),
            Event::Began(_, at) => {
                if let Some(f) = failed.take() {
                    gaps.push(at.duration_since(f));
                }
            }
        }
    }
    stop_clean(&host);
    for gap in gaps {
        assert!(
            gap >= ms(40),
            "a jittered wait of {gap:?} is below w·(1−jitter)"
        );
    }
}

#[test]
fn restart_policy_out_of_range_is_an_invalid_option() {
    let bad = Backoff {
        jitter: 1.5,
        ..Backoff::fixed(ms(1))
    };
    let err = HostBuilder::new()
        .add_service(Service::background("svc", |_| Ok(())).on_failure(restart(
            bad,
            1,
            Duration::from_secs(1),
        )))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption { name, .. } if name.contains("`svc`") && name.contains("jitter")),
        "{err}"
    );
}

#[test]
fn snapshot_shows_a_started_hosted_service_running() {
    // Regression: the `started` phase put a hosted service back to `Starting` for good.
    let host = HostBuilder::new().hosted("listener", Noop).build().unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let status = handle.snapshot().service("listener").unwrap().clone();
    assert_eq!(status.state, ServiceState::Running);
    stop_clean(&host);
    let status = handle.snapshot().service("listener").unwrap().clone();
    assert_eq!(status.state, ServiceState::Stopped);
}

#[test]
fn a_body_failing_at_once_is_not_reported_running() {
    // Regression: a body that failed before the start sequencer had read its start reply was
    // overwritten to `Running`, so an ignored failure was reported as a clean stop (and a
    // service in its restart backoff as running). A race: repeat it.
    for round in 0..200 {
        let host = HostBuilder::new()
            .add_service(
                Service::background("brittle", |_ctx| Err("bad config".into()))
                    .on_failure(Policy::Ignore),
            )
            .build()
            .unwrap();
        let handle = host.handle();
        host.start(SECS5).unwrap();
        let report = host.stop(SECS5);
        let status = handle.snapshot().service("brittle").unwrap().clone();
        assert_eq!(status.state, ServiceState::Failed, "round {round}");
        assert!(
            matches!(outcome_of(&report, "brittle"), Outcome::Failed(_)),
            "round {round}: {report}"
        );
    }
}

/// A body that fails at once, under a zero backoff and unlimited restarts, is restarted at
/// most once per `MIN_BACKOFF` (1 ms): before the floor it spun a core (556,176 restarts in
/// 500 ms measured here).
#[test]
#[allow(clippy::print_stderr)] // the figure, for `--nocapture` and NOTES
fn zero_backoff_with_unlimited_restarts_is_floored() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let host = start_host(
        HostBuilder::new().add_service(
            Service::background("spinner", move |_ctx| {
                counted.fetch_add(1, Ordering::Relaxed);
                Err("fails at once".into())
            })
            .on_failure(restart(
                Backoff::fixed(Duration::ZERO),
                threadhost::UNLIMITED_RESTARTS,
                Duration::from_secs(1),
            )),
        ),
    );
    let window = ms(500);
    let began = Instant::now();
    let at_start = runs.load(Ordering::Relaxed);
    // A measurement window, not synchronisation: count what happens in it.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(window);
    let counted = runs.load(Ordering::Relaxed) - at_start;
    let elapsed = began.elapsed();
    assert!(host.stop(SECS5).timed_out().is_empty());
    eprintln!("{counted} restarts in {elapsed:?} with a zero backoff");
    // At most one per millisecond (plus slack for the window's edges); still restarting.
    let bound = u32::try_from(elapsed.as_millis()).unwrap() + 10;
    assert!(
        counted <= bound,
        "{counted} restarts in {elapsed:?}: the 1 ms floor allows {bound}"
    );
    assert!(counted >= 5, "only {counted} restarts in {elapsed:?}");
}

#[test]
fn max_restarts_is_bounded_unless_unlimited() {
    let build = |max_restarts: u32| {
        HostBuilder::new()
            .add_service(Service::background("svc", |_| Ok(())).on_failure(restart(
                Backoff::fixed(ms(1)),
                max_restarts,
                Duration::from_secs(1),
            )))
            .build()
    };
    for bad in [threadhost::MAX_RESTARTS + 1, u32::MAX - 1] {
        let err = build(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidOption { name, value, .. }
                if name.contains("`svc`") && name.contains("max_restarts") && *value == bad.to_string()),
            "{err}"
        );
    }
    for good in [
        0,
        1,
        threadhost::MAX_RESTARTS,
        threadhost::UNLIMITED_RESTARTS,
    ] {
        let _host = build(good).unwrap();
    }
}

/// `Duration::MAX` means "never" for every duration option: no overflow, no panic, and a
/// stop still ends a `Duration::MAX` backoff wait at once.
#[test]
fn duration_max_everywhere_means_never() {
    let (tx, rx) = unbounded();
    let max = Duration::MAX;
    let host = HostBuilder::new()
        .shutdown_timeout(max)
        .startup_timeout(max)
        .add_service(
            flaky(1, tx)
                .start_timeout(max)
                .stop_timeout(max)
                .liveness(max)
                .on_failure(restart(
                    Backoff::exponential(max, max).with_jitter(0.5),
                    threadhost::MAX_RESTARTS,
                    max,
                )),
        )
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(max).unwrap();
    assert!(matches!(recv(&rx), Event::Began(0, _)));
    await_state(&handle, "flaky", ServiceState::Restarting);
    let began = Instant::now();
    let report = host.stop(max);
    assert!(report.timed_out().is_empty(), "{report}");
    assert!(began.elapsed() < SECS5, "{:?}", began.elapsed());
    // The failure before the restart is the service's only one: no panic from an overflow.
    let snapshot = handle.snapshot();
    let svc = snapshot.service("flaky").unwrap();
    let last = svc.last_error.as_ref().map(ToString::to_string);
    assert_eq!(last.as_deref(), Some("failure 1"), "{svc:?}");
}
