//! Start and stop order: hooks run phase by phase, services start in registration order
//! and stop in reverse; a service starts after the services it depends on have started and
//! stops before them; `start_concurrently` / `stop_concurrently` overlap independent services
//! (dependents still wait); a cycle or an unknown name is an error at build naming the services.

mod common;

use std::time::Duration;

use common::{
    Action, Events, PATIENCE, Rec, Rendezvous, SECS5, assert_before, background, clean_stop_report,
    hosted, idle, ms, outcome_of, start_host, stop_clean, who, within,
};
use threadhost::{Error, HostBuilder, Outcome, Service, ServiceState};

/// A hosted service recording the beginning (`<name>:start`) and the end (`<name>:start:done`)
/// of its start and stop hooks; its start takes `start_work`.
fn recorder(log: &Events, name: &str, start_work: Duration) -> Service {
    let mut rec = Rec::new(name, log);
    if !start_work.is_zero() {
        // A deliberately slow start (simulated work, not synchronisation).
        rec = rec.on("start", Action::Busy(start_work));
    }
    Service::hosted(name, rec.on("start", Action::Done).on("stop", Action::Done))
}

/// A hosted service whose start and stop each wait (up to `patience`) for its partner's: it
/// can only succeed if both run at the same time.
fn partner(
    log: &Events,
    name: &str,
    start: &Rendezvous,
    stop: &Rendezvous,
    patience: Duration,
) -> Service {
    Service::hosted(
        name,
        Rec::new(name, log)
            .on("start", Action::Meet(start.clone(), patience))
            .on("start", Action::Done)
            .on("stop", Action::Meet(stop.clone(), patience))
            .on("stop", Action::Done),
    )
}

/// `log`'s events, asserting that `a` was recorded before `b`.
#[track_caller]
fn assert_in_order(log: &Events, a: &str, b: &str) {
    assert_before(&log.names(), &a.to_owned(), &b.to_owned());
}

#[test]
fn smoke() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .add_service(recorder(&log, "api", ms(0)).depends_on("db"))
            .add_service(recorder(&log, "db", ms(0))),
    );
    stop_clean(&host);
    assert_eq!(who(&log, "start"), ["db", "api"]);
    assert_eq!(who(&log, "stop"), ["api", "db"]);
}

#[test]
fn dependent_starts_after_its_dependencies_started_and_stops_before_them() {
    let log = Events::new();
    // Registered before what it depends on; its dependencies start slowly.
    let host = start_host(
        HostBuilder::new()
            .add_service(
                recorder(&log, "api", ms(0))
                    .depends_on("db")
                    .depends_on("cache"),
            )
            .add_service(recorder(&log, "db", ms(40)))
            .add_service(recorder(&log, "cache", ms(20)))
            .add_service(recorder(&log, "worker", ms(0))),
    );
    let report = clean_stop_report(&host);
    for dep in ["db", "cache"] {
        // Each hook ran on its service's own thread; the order is the one they were called in.
        assert_in_order(&log, &format!("{dep}:start:done"), "api:start");
        assert_in_order(&log, "api:stop:done", &format!("{dep}:stop"));
    }
    // Ties keep registration order: db, cache, then api (registered first, now ready), worker.
    assert_eq!(who(&log, "start"), ["db", "cache", "api", "worker"]);
    assert_eq!(who(&log, "stop"), ["worker", "api", "cache", "db"]);
    let order: Vec<&str> = report.services().iter().map(|s| &*s.name).collect();
    assert_eq!(order, ["worker", "api", "cache", "db"]);
}

#[test]
fn independent_services_keep_registration_order() {
    let log = Events::new();
    let mut builder = HostBuilder::new();
    for name in ["d", "b", "a", "c"] {
        builder = builder.add_service(recorder(&log, name, ms(1)));
    }
    let host = builder.build().unwrap();
    host.start(SECS5).unwrap();
    stop_clean(&host);
    assert_eq!(who(&log, "start"), ["d", "b", "a", "c"]);
    assert_eq!(who(&log, "stop"), ["c", "a", "b", "d"]);
}

#[test]
fn start_concurrently_overlaps_independent_services_but_dependents_wait() {
    let log = Events::new();
    let (start, stop) = (Rendezvous::new(2), Rendezvous::new(2));
    let host = HostBuilder::new()
        .start_concurrently(true)
        .stop_concurrently(true)
        .add_service(recorder(&log, "app", ms(0)).depends_on("a").depends_on("b"))
        .add_service(partner(&log, "a", &start, &stop, SECS5))
        .add_service(partner(&log, "b", &start, &stop, SECS5))
        .build()
        .unwrap();
    // Started one after the other, `a` would wait for `b` in vain and fail.
    host.start(Duration::from_secs(20)).unwrap();
    let report = host.stop(Duration::from_secs(20));
    assert!(report.is_clean(), "{report}");
    for dep in ["a", "b"] {
        assert_in_order(&log, &format!("{dep}:start:done"), "app:start");
        assert_in_order(&log, "app:stop:done", &format!("{dep}:stop"));
    }
}

#[test]
fn without_start_concurrently_independent_starts_do_not_overlap() {
    // The same pair one after the other: `a` waits for `b` in vain and its start fails.
    let log = Events::new();
    let (start, stop) = (Rendezvous::new(2), Rendezvous::new(2));
    let err = HostBuilder::new()
        .add_service(partner(&log, "a", &start, &stop, ms(200)))
        .add_service(partner(&log, "b", &start, &stop, ms(200)))
        .build()
        .unwrap()
        .start(Duration::from_secs(20))
        .unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "a"),
        "{err}"
    );
    assert_eq!(who(&log, "start"), ["a"]);
}

#[test]
fn background_dependent_runs_only_after_its_dependency_started() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .add_service(
                Service::background_service("consumer", Rec::new("consumer", &log))
                    .depends_on("broker"),
            )
            .add_service(recorder(&log, "broker", ms(30))),
    );
    stop_clean(&host);
    assert_in_order(&log, "broker:start:done", "consumer:run");
    assert_in_order(&log, "consumer:exit", "broker:stop");
}

#[test]
fn a_failed_dependency_start_never_starts_its_dependents() {
    let log = Events::new();
    let host = HostBuilder::new()
        .add_service(recorder(&log, "api", ms(0)).depends_on("db"))
        .add_service(Service::hosted(
            "db",
            Rec::new("db", &log).on("start", Action::Fail),
        ))
        .build()
        .unwrap();
    let handle = host.handle();
    let err = host.start(SECS5).unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "db"),
        "{err}"
    );
    assert!(
        !log.contains("api:start") && !log.contains("api:stop"),
        "{:?}",
        log.names()
    );
    let snapshot = handle.snapshot();
    assert_eq!(
        snapshot.service("api").unwrap().state,
        ServiceState::Skipped
    );
}

#[test]
fn misspelt_dependency_is_an_error_naming_both_services() {
    let log = Events::new();
    let err = HostBuilder::new()
        .add_service(recorder(&log, "api", ms(0)).depends_on("dbx"))
        .add_service(recorder(&log, "db", ms(0)))
        .build()
        .unwrap_err();
    match &err {
        Error::UnknownDependency {
            service,
            dependency,
        } => {
            assert_eq!(&**service, "api");
            assert_eq!(&**dependency, "dbx");
        }
        other => panic!("expected UnknownDependency, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("`api`") && text.contains("`dbx`"), "{text}");
    assert_eq!(threadhost::exit_code(&Err(err)), threadhost::EXIT_CONFIG);
}

#[test]
fn dependency_cycle_message_names_every_service_on_it() {
    let log = Events::new();
    let err = HostBuilder::new()
        .add_service(recorder(&log, "free", ms(0)))
        .add_service(recorder(&log, "a", ms(0)).depends_on("b"))
        .add_service(recorder(&log, "b", ms(0)).depends_on("c"))
        .add_service(recorder(&log, "c", ms(0)).depends_on("a"))
        .build()
        .unwrap_err();
    match &err {
        Error::DependencyCycle { services } => {
            let mut on_cycle: Vec<&str> = services.iter().map(|s| &**s).collect();
            // Closed: the first name is repeated at the end.
            assert_eq!(on_cycle.first(), on_cycle.last(), "{on_cycle:?}");
            on_cycle.pop();
            on_cycle.sort_unstable();
            assert_eq!(on_cycle, ["a", "b", "c"]);
        }
        other => panic!("expected DependencyCycle, got {other:?}"),
    }
    let text = err.to_string();
    for name in ["`a`", "`b`", "`c`"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(!text.contains("`free`"), "{text}");
    assert_eq!(threadhost::exit_code(&Err(err)), threadhost::EXIT_CONFIG);
}

#[test]
fn self_dependency_is_a_cycle() {
    let err = HostBuilder::new()
        .add_service(recorder(&Events::new(), "narcissus", ms(0)).depends_on("narcissus"))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::DependencyCycle { services } if services.iter().all(|s| &**s == "narcissus")),
        "{err}"
    );
}

#[test]
fn a_stopped_report_lists_dependents_first() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .add_service(recorder(&log, "db", ms(0)))
            .add_service(recorder(&log, "api", ms(0)).depends_on("db")),
    );
    let report = host.stop(SECS5);
    let outcomes: Vec<(&str, bool)> = report
        .services()
        .iter()
        .map(|s| (&*s.name, matches!(s.outcome, Outcome::Stopped)))
        .collect();
    assert_eq!(outcomes, [("api", true), ("db", true)]);
}

#[test]
fn hook_phases_complete_across_services_in_order() {
    let log = Events::new();
    let host = hosted(&["a", "b", "c"], &log).build().unwrap();
    host.start(SECS5).unwrap();
    stop_clean(&host);
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
    let host = background(&["a", "b", "c"], &log).build().unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(who(&log, "start"), ["a", "b", "c"]);
    let report = clean_stop_report(&host);
    assert_eq!(who(&log, "exit"), ["c", "b", "a"]);
    let order: Vec<&str> = report.services().iter().map(|s| &*s.name).collect();
    assert_eq!(order, ["c", "b", "a"]);
}

#[test]
fn depends_on_starts_dependencies_first() {
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
            .add_service(Service::hosted("api", Rec::new("api", &log)).depends_on("db"))
            .hosted("db", Rec::new("db", &log)),
    );
    stop_clean(&host);
    assert_eq!(who(&log, "start"), ["db", "api"]);
    assert_eq!(who(&log, "stop"), ["api", "db"]);
}

#[test]
fn start_concurrently_overlaps_two_independent_starts() {
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
    stop_clean(&host);
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
    let host = start_host(
        HostBuilder::new()
            .stop_concurrently(true)
            .hosted(
                "a",
                Rec::new("a", &log).on("stop", Action::Meet(meet.clone(), PATIENCE)),
            )
            .hosted(
                "b",
                Rec::new("b", &log).on("stop", Action::Meet(meet, PATIENCE)),
            ),
    );
    let report = within(PATIENCE, "concurrent stop", || host.stop(PATIENCE));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn stop_without_concurrency_is_sequential() {
    let log = Events::new();
    let meet = Rendezvous::new(2);
    let host = start_host(
        HostBuilder::new()
            .hosted(
                "a",
                Rec::new("a", &log).on("stop", Action::Meet(meet.clone(), ms(200))),
            )
            .hosted(
                "b",
                Rec::new("b", &log).on("stop", Action::Meet(meet, ms(200))),
            ),
    );
    let report = host.stop(SECS5);
    assert!(!report.is_clean(), "sequential stops cannot meet: {report}");
    assert!(matches!(outcome_of(&report, "b"), Outcome::Failed(_)));
}

#[test]
fn start_and_stop_concurrently_keep_a_slow_dependency_first() {
    // `api` depends on `db`: even with concurrent starts, db's start completes first.
    let log = Events::new();
    let host = start_host(
        HostBuilder::new()
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
            ),
    );
    stop_clean(&host);
    let names = log.names();
    common::assert_before(
        &names,
        &"db:start:starting".to_owned(),
        &"api:start".to_owned(),
    );
    common::assert_before(&names, &"api:stop".to_owned(), &"db:stop".to_owned());
}

#[test]
fn unknown_dependency_of_a_background_service_is_an_error() {
    let err = HostBuilder::new()
        .add_service(Service::background("api", idle).depends_on("db"))
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
fn dependency_cycle_error_is_closed_and_leaves_out_the_free_service() {
    let err = HostBuilder::new()
        .background("free", idle)
        .add_service(Service::background("a", idle).depends_on("b"))
        .add_service(Service::background("b", idle).depends_on("c"))
        .add_service(Service::background("c", idle).depends_on("a"))
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
