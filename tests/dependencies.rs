//! Declared dependencies: a service starts after the services it depends on have started and
//! stops before them; independent services keep registration order (or overlap with
//! `start_concurrently`); a cycle or an unknown name is an error at build naming the services.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use threadhost::{
    Context, Error, HostBuilder, HostedService, Outcome, Service, ServiceResult, ServiceState,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, event: String) {
    log.lock().unwrap().push(event);
}

/// A hosted service that logs when each hook begins (`>`) and ends (`<`), from its own
/// thread; its start takes `start_work`.
struct Recorder {
    log: Log,
    start_work: Duration,
    fail_start: bool,
}

impl HostedService for Recorder {
    #[allow(clippy::disallowed_methods)]
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        push(&self.log, format!("start>{}", ctx.name()));
        if !self.start_work.is_zero() {
            // A deliberately slow start (simulated work, not synchronisation).
            std::thread::sleep(self.start_work);
        }
        if self.fail_start {
            return Err("cannot open".into());
        }
        push(&self.log, format!("start<{}", ctx.name()));
        Ok(())
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        push(&self.log, format!("stop>{}", ctx.name()));
        push(&self.log, format!("stop<{}", ctx.name()));
        Ok(())
    }
}

fn recorder(log: &Log, name: &str, start_work: Duration) -> Service {
    Service::hosted(
        name,
        Recorder {
            log: Arc::clone(log),
            start_work,
            fail_start: false,
        },
    )
}

fn position(log: &[String], event: &str) -> usize {
    log.iter()
        .position(|e| e == event)
        .unwrap_or_else(|| panic!("`{event}` missing from {log:?}"))
}

/// Events of one kind (`start>`, `stop>`), in order, as service names.
fn names(log: &[String], prefix: &str) -> Vec<String> {
    log.iter()
        .filter_map(|e| e.strip_prefix(prefix).map(str::to_owned))
        .collect()
}

#[test]
fn smoke() {
    let log = Log::default();
    let host = HostBuilder::new()
        .add_service(recorder(&log, "api", ms(0)).depends_on("db"))
        .add_service(recorder(&log, "db", ms(0)))
        .build()
        .unwrap();
    host.start(Duration::from_secs(5)).unwrap();
    assert!(host.stop(Duration::from_secs(5)).is_clean());
    let log = log.lock().unwrap();
    assert_eq!(names(&log, "start>"), ["db", "api"]);
    assert_eq!(names(&log, "stop>"), ["api", "db"]);
}

#[test]
fn dependent_starts_after_its_dependencies_started_and_stops_before_them() {
    let log = Log::default();
    // Registered before what it depends on; its dependencies start slowly.
    let host = HostBuilder::new()
        .add_service(
            recorder(&log, "api", ms(0))
                .depends_on("db")
                .depends_on("cache"),
        )
        .add_service(recorder(&log, "db", ms(40)))
        .add_service(recorder(&log, "cache", ms(20)))
        .add_service(recorder(&log, "worker", ms(0)))
        .build()
        .unwrap();
    host.start(Duration::from_secs(5)).unwrap();
    let report = host.stop(Duration::from_secs(5));
    assert!(report.is_clean(), "{report}");
    let log = log.lock().unwrap().clone();
    for dep in ["db", "cache"] {
        // Each hook ran on its service's own thread; the order is the one they were called in.
        assert!(
            position(&log, &format!("start<{dep}")) < position(&log, "start>api"),
            "api started before {dep} had started: {log:?}"
        );
        assert!(
            position(&log, "stop<api") < position(&log, &format!("stop>{dep}")),
            "{dep} stopped before api: {log:?}"
        );
    }
    // Ties keep registration order: db, cache, then api (registered first, now ready), worker.
    assert_eq!(names(&log, "start>"), ["db", "cache", "api", "worker"]);
    assert_eq!(names(&log, "stop>"), ["worker", "api", "cache", "db"]);
    let order: Vec<&str> = report.services().iter().map(|s| &*s.name).collect();
    assert_eq!(order, ["worker", "api", "cache", "db"]);
}

#[test]
fn independent_services_keep_registration_order() {
    let log = Log::default();
    let mut builder = HostBuilder::new();
    for name in ["d", "b", "a", "c"] {
        builder = builder.add_service(recorder(&log, name, ms(1)));
    }
    let host = builder.build().unwrap();
    host.start(Duration::from_secs(5)).unwrap();
    assert!(host.stop(Duration::from_secs(5)).is_clean());
    let log = log.lock().unwrap();
    assert_eq!(names(&log, "start>"), ["d", "b", "a", "c"]);
    assert_eq!(names(&log, "stop>"), ["c", "a", "b", "d"]);
}

/// A service whose start announces itself, then waits for `partner` to announce itself too:
/// it can only succeed if both starts run at the same time.
struct Rendezvous {
    log: Log,
    me: Sender<()>,
    partner: Receiver<()>,
    /// How long to wait for the partner.
    patience: Duration,
}

impl HostedService for Rendezvous {
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        push(&self.log, format!("start>{}", ctx.name()));
        let _ = self.me.send(());
        self.partner
            .recv_timeout(self.patience)
            .map_err(|_| format!("`{}` started alone: no overlap", ctx.name()))?;
        push(&self.log, format!("start<{}", ctx.name()));
        Ok(())
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        push(&self.log, format!("stop>{}", ctx.name()));
        let _ = self.me.send(());
        self.partner
            .recv_timeout(self.patience)
            .map_err(|_| format!("`{}` stopped alone: no overlap", ctx.name()))?;
        push(&self.log, format!("stop<{}", ctx.name()));
        Ok(())
    }
}

#[test]
fn start_concurrently_overlaps_independent_services_but_dependents_wait() {
    let log = Log::default();
    let (a_tx, a_rx) = unbounded();
    let (b_tx, b_rx) = unbounded();
    let host = HostBuilder::new()
        .start_concurrently(true)
        .stop_concurrently(true)
        .add_service(recorder(&log, "app", ms(0)).depends_on("a").depends_on("b"))
        .add_service(Service::hosted(
            "a",
            Rendezvous {
                log: Arc::clone(&log),
                me: a_tx,
                partner: b_rx,
                patience: Duration::from_secs(5),
            },
        ))
        .add_service(Service::hosted(
            "b",
            Rendezvous {
                log: Arc::clone(&log),
                me: b_tx,
                partner: a_rx,
                patience: Duration::from_secs(5),
            },
        ))
        .build()
        .unwrap();
    // Started one after the other, `a` would wait for `b` in vain and fail.
    host.start(Duration::from_secs(20)).unwrap();
    let report = host.stop(Duration::from_secs(20));
    assert!(report.is_clean(), "{report}");
    let log = log.lock().unwrap().clone();
    for dep in ["a", "b"] {
        assert!(
            position(&log, &format!("start<{dep}")) < position(&log, "start>app"),
            "{log:?}"
        );
        assert!(
            position(&log, "stop<app") < position(&log, &format!("stop>{dep}")),
            "{log:?}"
        );
    }
}

#[test]
fn without_start_concurrently_independent_starts_do_not_overlap() {
    // The same pair one after the other: `a` waits for `b` in vain and its start fails.
    let log = Log::default();
    let (a_tx, a_rx) = unbounded();
    let (b_tx, b_rx) = unbounded();
    let err = HostBuilder::new()
        .add_service(Service::hosted(
            "a",
            Rendezvous {
                log: Arc::clone(&log),
                me: a_tx,
                partner: b_rx,
                patience: ms(200),
            },
        ))
        .add_service(Service::hosted(
            "b",
            Rendezvous {
                log: Arc::clone(&log),
                me: b_tx,
                partner: a_rx,
                patience: ms(200),
            },
        ))
        .build()
        .unwrap()
        .start(Duration::from_secs(20))
        .unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "a"),
        "{err}"
    );
    assert_eq!(names(&log.lock().unwrap(), "start>"), ["a"]);
}

#[test]
fn background_dependent_runs_only_after_its_dependency_started() {
    let log = Log::default();
    let l = Arc::clone(&log);
    let host = HostBuilder::new()
        .add_service(
            Service::background_fn("consumer", move |ctx| {
                push(&l, "body>consumer".to_owned());
                ctx.token().wait();
                push(&l, "body<consumer".to_owned());
                Ok(())
            })
            .depends_on("broker"),
        )
        .add_service(recorder(&log, "broker", ms(30)))
        .build()
        .unwrap();
    host.start(Duration::from_secs(5)).unwrap();
    assert!(host.stop(Duration::from_secs(5)).is_clean());
    let log = log.lock().unwrap().clone();
    assert!(
        position(&log, "start<broker") < position(&log, "body>consumer"),
        "{log:?}"
    );
    assert!(
        position(&log, "body<consumer") < position(&log, "stop>broker"),
        "{log:?}"
    );
}

#[test]
fn a_failed_dependency_start_never_starts_its_dependents() {
    let log = Log::default();
    let host = HostBuilder::new()
        .add_service(recorder(&log, "api", ms(0)).depends_on("db"))
        .add_service(Service::hosted(
            "db",
            Recorder {
                log: Arc::clone(&log),
                start_work: ms(0),
                fail_start: true,
            },
        ))
        .build()
        .unwrap();
    let handle = host.handle();
    let err = host.start(Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "db"),
        "{err}"
    );
    let log = log.lock().unwrap().clone();
    assert!(!log.iter().any(|e| e.ends_with(">api")), "{log:?}");
    let snapshot = handle.snapshot();
    assert_eq!(
        snapshot.service("api").unwrap().state,
        ServiceState::Skipped
    );
}

#[test]
fn unknown_dependency_is_an_error_naming_both_services() {
    let err = HostBuilder::new()
        .add_service(recorder(&Log::default(), "api", ms(0)).depends_on("dbx"))
        .add_service(recorder(&Log::default(), "db", ms(0)))
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
fn cycle_is_an_error_naming_the_services_on_it() {
    let log = Log::default();
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
        .add_service(recorder(&Log::default(), "narcissus", ms(0)).depends_on("narcissus"))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::DependencyCycle { services } if services.iter().all(|s| &**s == "narcissus")),
        "{err}"
    );
}

#[test]
fn a_stopped_report_lists_dependents_first() {
    let log = Log::default();
    let host = HostBuilder::new()
        .add_service(recorder(&log, "db", ms(0)))
        .add_service(recorder(&log, "api", ms(0)).depends_on("db"))
        .build()
        .unwrap();
    host.start(Duration::from_secs(5)).unwrap();
    let report = host.stop(Duration::from_secs(5));
    let outcomes: Vec<(&str, bool)> = report
        .services()
        .iter()
        .map(|s| (&*s.name, matches!(s.outcome, Outcome::Stopped)))
        .collect();
    assert_eq!(outcomes, [("api", true), ("db", true)]);
}
