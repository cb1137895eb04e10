//! The supervision tree: each strategy's exact sequence of stops and starts, intensity
//! escalating to the parent and to the host, restart types, runtime changes (add, remove,
//! stop, restart) with their rollback, deadlines and refusals.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Action, Events, Flaky, Gate, MARGIN, PATIENCE, Rec, SECS5, eventually, idle, ms, timed,
};
use threadhost::{
    Backoff, Error, Group, Host, HostBuilder, HostState, Outcome, Policy, RestartType, Service,
    ServiceState, Strategy,
};

/// A group named `name` with `strategy`, restarting after 1 ms, at most `max` restarts a
/// minute.
fn group(name: &str, strategy: Strategy, max: u32) -> Group {
    Group::new(name)
        .strategy(strategy)
        .backoff(Backoff::fixed(ms(1)))
        .intensity(max, Duration::from_secs(60))
}

/// Waits until `log` has `n` events, then returns them.
#[track_caller]
fn events(log: &Events, n: usize) -> Vec<String> {
    eventually(&format!("{n} events"), || log.names().len() >= n);
    log.names()
}

/// Waits until group `path` is in `state` (a restart is complete once its group runs again:
/// the state and the restart count change together).
#[track_caller]
fn await_group(host: &Host, path: &str, state: ServiceState) {
    let handle = host.handle();
    eventually(&format!("group {path} {state}"), || {
        handle.snapshot().group(path).map(|g| g.state) == Some(state)
    });
}

fn start(builder: HostBuilder) -> Host {
    let host = builder.build().expect("build");
    host.start(SECS5).expect("start");
    host
}

/// `a`, `b`, `c` in group `g` with `strategy`; `b` fails its first run.
fn three(strategy: Strategy, log: &Events) -> Host {
    start(
        HostBuilder::new().add_group(
            group("g", strategy, 5)
                .background_service("a", Flaky::failing("a", log, 0))
                .background_service("b", Flaky::failing("b", log, 1))
                .background_service("c", Flaky::failing("c", log, 0)),
        ),
    )
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let log = Events::new();
    let host = three(Strategy::OneForOne, &log);
    let seen = events(&log, 5);
    assert_eq!(seen, ["a:start", "b:start", "c:start", "b:fail", "b:start"]);
    // The start hook ran; the restart is complete once the group is running again.
    await_group(&host, "g", ServiceState::Running);
    let snapshot = host.handle().snapshot();
    assert_eq!(snapshot.group("g").unwrap().restarts, 1);
    assert_eq!(snapshot.service("g/b").unwrap().restarts, 1);
    assert_eq!(snapshot.service("g/a").unwrap().restarts, 0);
    assert_eq!(
        snapshot.service("g/b").unwrap().state,
        ServiceState::Running
    );
    assert!(host.stop(SECS5).is_clean());
    assert_eq!(
        &log.names()[5..],
        ["c:stopped", "b:stopped", "a:stopped"],
        "the host stops the tree in reverse start order"
    );
}

#[test]
fn one_for_all_stops_the_others_in_reverse_and_starts_all_in_order() {
    let log = Events::new();
    let host = three(Strategy::OneForAll, &log);
    let seen = events(&log, 9);
    assert_eq!(
        seen,
        [
            "a:start",
            "b:start",
            "c:start",
            "b:fail",
            "c:stopped",
            "a:stopped",
            "a:start",
            "b:start",
            "c:start",
        ]
    );
    await_group(&host, "g", ServiceState::Running);
    let snapshot = host.handle().snapshot();
    assert_eq!(snapshot.group("g").unwrap().restarts, 1);
    assert_eq!(snapshot.group("g").unwrap().state, ServiceState::Running);
    for s in ["g/a", "g/b", "g/c"] {
        assert_eq!(
            snapshot.service(s).unwrap().state,
            ServiceState::Running,
            "{s}"
        );
        assert_eq!(snapshot.service(s).unwrap().restarts, 1, "{s}");
    }
    assert!(host.stop(SECS5).is_clean());
    assert_eq!(log.names().len(), 12);
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let log = Events::new();
    let host = three(Strategy::RestForOne, &log);
    let seen = events(&log, 7);
    assert_eq!(
        seen,
        [
            "a:start",
            "b:start",
            "c:start",
            "b:fail",
            "c:stopped",
            "b:start",
            "c:start"
        ]
    );
    await_group(&host, "g", ServiceState::Running);
    let snapshot = host.handle().snapshot();
    assert_eq!(snapshot.service("g/a").unwrap().restarts, 0);
    assert_eq!(snapshot.service("g/c").unwrap().restarts, 1);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn rest_for_one_follows_the_start_order_that_dependencies_give() {
    // Registered c, b, a; c depends on b, b on a: the start order is a, b, c.
    let log = Events::new();
    let host = start(
        HostBuilder::new().add_group(
            group("g", Strategy::RestForOne, 5)
                .add_service(
                    Service::background_service("c", Flaky::failing("c", &log, 0)).depends_on("b"),
                )
                .add_service(
                    Service::background_service("b", Flaky::failing("b", &log, 1)).depends_on("a"),
                )
                .background_service("a", Flaky::failing("a", &log, 0)),
        ),
    );
    let seen = events(&log, 7);
    assert_eq!(
        seen,
        [
            "a:start",
            "b:start",
            "c:start",
            "b:fail",
            "c:stopped",
            "b:start",
            "c:start"
        ]
    );
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_group_past_its_intensity_fails_and_its_parent_restarts_it_then_the_host_stops() {
    // root ← outer (OneForOne, 1 restart) ← inner (OneForOne, 1 restart) ← s (always fails).
    let log = Events::new();
    let host = start(
        HostBuilder::new().add_group(
            group("outer", Strategy::OneForOne, 1).add_group(
                group("inner", Strategy::OneForOne, 1)
                    .background_service("s", Flaky::failing("s", &log, 100)),
            ),
        ),
    );
    let report = host.join(PATIENCE).expect("the host stops by itself");
    // inner restarts s once; its second failure fails inner; outer restarts inner (whose
    // intensity starts afresh): s, restarted once more by inner, fails twice again; inner
    // fails again, which is outer's second restart: outer fails, and the host stops.
    assert_eq!(
        log.names(),
        [
            "s:start", "s:fail", "s:start", "s:fail", "s:start", "s:fail", "s:start", "s:fail",
        ]
    );
    let err = report.into_result().unwrap_err();
    match &err {
        Error::ServiceFailed { service, .. } => assert_eq!(&**service, "outer"),
        other => panic!("expected ServiceFailed naming `outer`, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("`outer`") && text.contains("`outer/inner`"),
        "{text}"
    );
    let snapshot = host.handle().snapshot();
    assert_eq!(snapshot.group("outer").unwrap().state, ServiceState::Failed);
    assert_eq!(snapshot.group("outer").unwrap().restarts, 1);
    assert_eq!(host.state(), HostState::Stopped);
}

#[test]
fn a_failed_group_under_the_ignore_policy_stays_failed_and_the_host_runs_on() {
    let log = Events::new();
    let host = start(
        HostBuilder::new()
            .on_failure(Policy::Ignore)
            .background("other", idle)
            .add_group(
                group("g", Strategy::OneForOne, 0).add_service(
                    Service::background_service("s", Flaky::failing("s", &log, 1))
                        .on_failure(Policy::StopHost),
                ),
            ),
    );
    let handle = host.handle();
    eventually("g fails", || {
        handle.snapshot().group("g").unwrap().state == ServiceState::Failed
    });
    assert_eq!(log.names(), ["s:start", "s:fail"]);
    assert_eq!(host.state(), HostState::Running);
    assert_eq!(
        handle.snapshot().service("other").unwrap().state,
        ServiceState::Running
    );
    // The host's report names the failed service with its failure.
    let report = host.stop(SECS5);
    assert!(report.timed_out().is_empty(), "{report}");
    assert!(matches!(
        common::outcome_of(&report, "g/s"),
        Outcome::Failed(_)
    ));
}

#[test]
fn a_service_failing_at_the_top_level_still_stops_the_host() {
    let log = Events::new();
    let host = start(HostBuilder::new().background_service("s", Flaky::failing("s", &log, 1)));
    let err = host.join(PATIENCE).unwrap().into_result().unwrap_err();
    assert!(matches!(err, Error::ServiceFailed { ref service, .. } if &**service == "s"));
}

#[test]
fn a_service_restart_policy_is_used_before_its_group_steps_in() {
    // s restarts itself once (its own policy); its second failure goes to the group.
    let log = Events::new();
    let policy = Policy::Restart {
        backoff: Backoff::fixed(ms(1)),
        max_restarts: 1,
        within: Duration::from_secs(60),
    };
    let host = start(
        HostBuilder::new().add_group(
            group("g", Strategy::OneForAll, 5)
                .background_service("a", Flaky::failing("a", &log, 0))
                .add_service(
                    Service::background_service("s", Flaky::failing("s", &log, 2))
                        .on_failure(policy),
                ),
        ),
    );
    let seen = events(&log, 7);
    // The body restarts on its thread without a new start hook.
    assert_eq!(
        seen,
        [
            "a:start",
            "s:start",
            "s:fail",
            "s:fail",
            "a:stopped",
            "a:start",
            "s:start"
        ]
    );
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_permanent_service_that_completes_is_restarted() {
    let log = Events::new();
    let host = start(
        HostBuilder::new().add_group(
            group("g", Strategy::OneForOne, 5).add_service(
                Service::background_service("p", Flaky::completing("p", &log, 2))
                    .restart(RestartType::Permanent),
            ),
        ),
    );
    let seen = events(&log, 5);
    assert_eq!(seen, ["p:start", "p:done", "p:start", "p:done", "p:start"]);
    eventually("2 restarts", || {
        host.handle().snapshot().group("g").unwrap().restarts == 2
    });
    assert!(host.stop(SECS5).is_clean());
    assert_eq!(log.names().last().unwrap(), "p:stopped");
}

#[test]
fn a_transient_service_is_restarted_after_a_failure_and_removed_when_it_completes() {
    let log = Events::new();
    let flaky = Flaky::failing("t", &log, 1);
    let host = start(
        HostBuilder::new().add_group(
            group("g", Strategy::OneForOne, 5)
                .background("keep", idle)
                .add_service(
                    Service::background_service("t", flaky).restart(RestartType::Transient),
                )
                .add_service(
                    Service::background_service("u", Flaky::completing("u", &log, 1))
                        .restart(RestartType::Transient),
                ),
        ),
    );
    let handle = host.handle();
    eventually("u leaves the tree", || {
        handle.snapshot().service("g/u").is_none()
    });
    eventually("t restarted", || {
        handle
            .snapshot()
            .service("g/t")
            .map(|s| (s.restarts, s.state))
            == Some((1, ServiceState::Running))
    });
    assert_eq!(
        handle.snapshot().group("g").unwrap().children,
        [Arc::from("g/keep"), Arc::from("g/t")]
    );
    assert!(log.names().contains(&"u:done".to_owned()));
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_temporary_service_is_never_restarted_and_leaves_the_tree() {
    let log = Events::new();
    let host = start(
        HostBuilder::new().add_group(
            group("g", Strategy::OneForAll, 5)
                .background_service("a", Flaky::failing("a", &log, 0))
                .add_service(
                    Service::background_service("tmp", Flaky::failing("tmp", &log, 1))
                        .restart(RestartType::Temporary),
                ),
        ),
    );
    let handle = host.handle();
    eventually("tmp leaves the tree", || {
        handle.snapshot().service("g/tmp").is_none()
    });
    // Neither it nor its sibling was restarted, and the host runs on.
    assert_eq!(log.names(), ["a:start", "tmp:start", "tmp:fail"]);
    assert_eq!(handle.snapshot().group("g").unwrap().restarts, 0);
    assert_eq!(host.state(), HostState::Running);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn one_for_all_stops_a_temporary_sibling_and_does_not_start_it_again() {
    let log = Events::new();
    let host = start(
        HostBuilder::new().add_group(
            group("g", Strategy::OneForAll, 5)
                .add_service(
                    Service::background_service("tmp", Flaky::failing("tmp", &log, 0))
                        .restart(RestartType::Temporary),
                )
                .background_service("b", Flaky::failing("b", &log, 1)),
        ),
    );
    let seen = events(&log, 5);
    assert_eq!(
        seen,
        ["tmp:start", "b:start", "b:fail", "tmp:stopped", "b:start"]
    );
    let handle = host.handle();
    eventually("tmp leaves the tree", || {
        handle.snapshot().service("g/tmp").is_none()
    });
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn groups_start_in_order_after_their_dependencies_and_stop_in_reverse() {
    let log = Events::new();
    let host = start(
        HostBuilder::new()
            .add_group(
                Group::new("api")
                    .depends_on("db")
                    .hosted("http", Rec::new("http", &log)),
            )
            .add_group(Group::new("db").hosted("pool", Rec::new("pool", &log)))
            .hosted("top", Rec::new("top", &log)),
    );
    assert!(host.stop(SECS5).is_clean());
    let starts = common::who(&log, "start");
    assert_eq!(starts, ["pool", "http", "top"]);
    let stops = common::who(&log, "stop");
    assert_eq!(stops, ["top", "http", "pool"]);
}

#[test]
fn a_runtime_add_whose_start_fails_is_rolled_back_and_returns_the_error() {
    let log = Events::new();
    let host = start(HostBuilder::new().group("devices", |g| g));
    let handle = host.handle();
    let device = Group::new("plc-9")
        .hosted("conn", Rec::new("conn", &log))
        .hosted("poller", Rec::new("poller", &log).on("start", Action::Fail));
    let err = handle.add_group("devices", device, SECS5).unwrap_err();
    assert!(
        matches!(err, Error::StartFailed { ref service, .. } if &**service == "devices/plc-9/poller"),
        "{err}"
    );
    // conn started and was stopped again; poller never started, so never stopped.
    assert_eq!(
        common::hooks_of(&log, "conn"),
        ["starting", "start", "stopping", "stop", "stopped"]
    );
    assert_eq!(common::hooks_of(&log, "poller"), ["starting", "start"]);
    let snapshot = handle.snapshot();
    assert!(snapshot.group("devices/plc-9").is_none());
    assert!(snapshot.services.is_empty(), "{:?}", snapshot.services);
    assert_eq!(host.state(), HostState::Running);
    // The name is free again.
    handle
        .add_group(
            "devices",
            Group::new("plc-9").background("conn", idle),
            SECS5,
        )
        .unwrap();
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_runtime_add_whose_start_hangs_returns_by_its_deadline() {
    let gate = Gate::new();
    let _open = gate.opener();
    let log = Events::new();
    let host = start(HostBuilder::new());
    let slow = Rec::new("slow", &log).on("start", Action::Block(gate.clone()));
    let (result, took) = timed(|| {
        host.handle()
            .add_service("", Service::hosted("slow", slow), ms(200))
    });
    assert!(matches!(result, Err(Error::StartTimeout { ref service }) if &**service == "slow"));
    common::assert_within(took, ms(200) + MARGIN, "the add");
    assert!(host.handle().snapshot().service("slow").is_none());
    drop(_open);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn removing_a_hung_child_returns_by_its_deadline_and_names_it() {
    let gate = Gate::new();
    let _open = gate.opener();
    let log = Events::new();
    // `fine` registered last, so stopped first (before the deadline): a service reached
    // after the deadline has only the late grace, which a loaded machine can miss.
    let host = start(HostBuilder::new().group("g", |g| {
        g.hosted(
            "hung",
            Rec::new("hung", &log).on("stop", Action::Block(gate.clone())),
        )
        .background("fine", idle)
    }));
    let (report, took) = timed(|| host.handle().remove("g", ms(300)).unwrap());
    common::assert_within(took, ms(300) + MARGIN, "the remove");
    assert!(matches!(
        common::outcome_of(&report, "g/hung"),
        Outcome::TimedOut
    ));
    assert!(matches!(
        common::outcome_of(&report, "g/fine"),
        Outcome::Stopped
    ));
    assert!(!report.is_clean());
    assert!(host.handle().snapshot().group("g").is_none());
    assert_eq!(host.state(), HostState::Running);
    drop(_open);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_change_requested_during_a_stop_is_refused() {
    let gate = Gate::new();
    let _open = gate.opener();
    let log = Events::new();
    let host = Arc::new(start(HostBuilder::new().hosted(
        "slow",
        Rec::new("slow", &log).on("stop", Action::Block(gate.clone())),
    )));
    let stopper = {
        let host = Arc::clone(&host);
        common::spawn("stopper", move || host.stop(SECS5))
    };
    log.wait_for("slow:stop");
    let handle = host.handle();
    let refused = [
        handle
            .add_service("", Service::background("late", idle), SECS5)
            .err(),
        handle.remove("slow", SECS5).err(),
        handle.stop_child("slow", SECS5).err(),
        handle.restart_child("slow", SECS5).err(),
    ];
    for err in refused {
        let err = err.expect("refused");
        assert!(
            matches!(
                err,
                Error::InvalidState {
                    state: HostState::Stopping,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("stopping"), "{err}");
    }
    gate.open();
    assert!(stopper.join().unwrap().is_clean());
}

#[test]
fn a_partial_shutdown_stops_one_group_and_the_rest_runs_on_until_it_is_restarted() {
    let log = Events::new();
    let host = start(
        HostBuilder::new()
            .hosted("other", Rec::new("other", &log))
            .group("g", |g| {
                g.hosted("a", Rec::new("a", &log))
                    .hosted("b", Rec::new("b", &log))
            }),
    );
    let handle = host.handle();
    let report = handle.stop_child("g", SECS5).unwrap();
    assert!(report.is_clean(), "{report}");
    let names: Vec<&str> = report.services().iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["g/b", "g/a"]);
    assert_eq!(common::who(&log, "stopped"), ["b", "a"]);
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.group("g").unwrap().state, ServiceState::Stopped);
    assert_eq!(
        snapshot.service("g/a").unwrap().state,
        ServiceState::Stopped
    );
    assert_eq!(
        snapshot.service("other").unwrap().state,
        ServiceState::Running
    );
    assert_eq!(host.state(), HostState::Running);
    handle.restart_child("g", SECS5).unwrap();
    assert_eq!(common::who(&log, "start"), ["other", "a", "b", "a", "b"]);
    assert_eq!(
        handle.snapshot().group("g").unwrap().state,
        ServiceState::Running
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean());
    assert_eq!(report.services().len(), 3);
}

#[test]
fn paths_and_names_are_checked_with_clear_errors() {
    let host = start(HostBuilder::new().group("g", |g| g.background("s", idle)));
    let handle = host.handle();
    let unknown = handle.remove("g/nope", SECS5).unwrap_err();
    assert!(matches!(unknown, Error::UnknownChild { ref path } if &**path == "g/nope"));
    assert!(unknown.to_string().contains("`g/nope`"));
    for bad in ["", "/g", "g/", "g//s", "g/s/x"] {
        assert!(handle.remove(bad, SECS5).is_err(), "{bad:?}");
    }
    let slash = handle
        .add_service("g", Service::background("a/b", idle), SECS5)
        .unwrap_err();
    assert!(slash.to_string().contains('/'), "{slash}");
    let into_service = handle
        .add_service("g/s", Service::background("x", idle), SECS5)
        .unwrap_err();
    assert!(
        into_service.to_string().contains("names a service"),
        "{into_service}"
    );
    let dup = handle
        .add_service("g", Service::background("s", idle), SECS5)
        .unwrap_err();
    assert!(matches!(dup, Error::DuplicateService { ref service } if &**service == "g/s"));
    let bad_group = HostBuilder::new()
        .add_group(Group::new("g").intensity(5, Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(bad_group.to_string().contains("group `g`"), "{bad_group}");
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn changes_before_start_and_after_stop_are_refused() {
    let host = HostBuilder::new().group("g", |g| g).build().unwrap();
    let handle = host.handle();
    let before = handle
        .add_service("g", Service::background("s", idle), SECS5)
        .unwrap_err();
    assert!(matches!(
        before,
        Error::InvalidState {
            state: HostState::Created,
            ..
        }
    ));
    host.start(SECS5).unwrap();
    assert!(host.stop(SECS5).is_clean());
    let after = handle.remove("g", SECS5).unwrap_err();
    assert!(matches!(
        after,
        Error::InvalidState {
            state: HostState::Stopped,
            ..
        }
    ));
}

#[test]
fn a_failure_after_a_change_took_its_group_over_during_a_backoff_is_not_lost() {
    // g's supervisor waits out a long backoff after a's first failure; restart_child takes
    // the group over, then a fails again: that failure must be handled (the group restarts
    // again), not left behind with the group reported running.
    let log = Events::new();
    let host = start(
        HostBuilder::new().add_group(
            Group::new("g")
                .backoff(Backoff::fixed(Duration::from_secs(60)))
                .background_service("a", Flaky::failing("a", &log, 2)),
        ),
    );
    let handle = host.handle();
    await_group(&host, "g", ServiceState::Restarting);
    handle.restart_child("g", SECS5).unwrap();
    eventually("a fails a second time", || {
        log.names().iter().filter(|e| *e == "a:fail").count() == 2
    });
    await_group(&host, "g", ServiceState::Restarting);
    // The host's stop ends the backoff at once.
    let (report, took) = timed(|| host.stop(SECS5));
    assert!(took < SECS5, "{took:?}");
    assert!(report.timed_out().is_empty(), "{report}");
}

#[test]
fn a_transient_service_that_completes_during_the_start_leaves_the_tree() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let done = log.clone();
    let host = Arc::new(
        HostBuilder::new()
            .group("g", |g| {
                g.add_service(
                    Service::background("job", move |_ctx| {
                        done.push("job:done");
                        Ok(())
                    })
                    .restart(RestartType::Transient),
                )
                .hosted(
                    "slow",
                    Rec::new("slow", &log).on("start", Action::Block(gate.clone())),
                )
            })
            .build()
            .unwrap(),
    );
    let starter = {
        let host = Arc::clone(&host);
        common::spawn("starter", move || host.start(SECS5))
    };
    log.wait_for("job:done");
    gate.open();
    starter.join().unwrap().unwrap();
    let handle = host.handle();
    eventually("job leaves the tree", || {
        handle.snapshot().service("g/job").is_none()
    });
    assert!(host.stop(SECS5).is_clean());
}
