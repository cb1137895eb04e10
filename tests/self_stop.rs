//! A host stopped from one of its own threads: a start hook, a background body, a queue job,
//! a service token's `on_stop` callback, the lifetime events' callbacks, the last `Host`
//! dropped by a service. Such a `stop` cannot wait for the stop sequence (which may be
//! waiting for its caller): it requests the stop, makes sure it runs, and returns at once with
//! a report in progress. The host then stops completely: `stopped` fires, the host ends
//! `Stopped`, and the calling service is reported stopped, never timed out, unless the
//! deadline it gave had passed when the sequence ran: then every service, the caller
//! included, is reached late with the late grace only, which a loaded machine can miss, and
//! what is checked is that the stop runs and the caller runs its stop hooks. `join` on such
//! a thread is refused.
//!
//! In every case no other thread stops or joins the host until `stopped` has fired, so a
//! stop that waited for its caller, or that nobody ran, fails the test.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{Action, Events, PATIENCE, Probe, Rec, idle, outcome_of, within};
#[cfg(feature = "queue")]
use threadhost::TaskQueue;
use threadhost::{Deadline, Error, Host, HostBuilder, HostHandle, HostState, Outcome, StopReport};

/// The host, reachable from its own services.
type Slot = Arc<OnceLock<Host>>;

/// `stop` on the host in `slot`, as its own service would; records the report it returned.
fn stop_own(slot: &Slot, deadline: Deadline, returned: &Arc<Mutex<Option<StopReport>>>) {
    let host = slot.get().expect("the test sets the slot before start");
    let report = host.stop(deadline);
    *returned.lock().unwrap() = Some(report);
}

/// What a self-stop case checks once the host is built: start it, wait (only) for `stopped`,
/// and check the report the caller got and the final one.
struct Case {
    slot: Slot,
    returned: Arc<Mutex<Option<StopReport>>>,
}

impl Case {
    fn new() -> Case {
        Case {
            slot: Arc::new(OnceLock::new()),
            returned: Arc::new(Mutex::new(None)),
        }
    }

    /// A closure for a service: stop the host with `deadline`, as that service.
    fn stopper(&self, deadline: Deadline) -> impl Fn() + Send + Sync + 'static {
        let (slot, returned) = (Arc::clone(&self.slot), Arc::clone(&self.returned));
        move || stop_own(&slot, deadline, &returned)
    }

    /// Installs `host` and starts it.
    #[track_caller]
    fn start(&self, host: Host) -> (HostHandle, &Host) {
        let handle = self.install(host);
        let host = self.slot.get().unwrap();
        host.start(PATIENCE).unwrap();
        (handle, host)
    }

    /// Installs `host`, starts it, and waits for the whole stop (`finish_late`). The
    /// services named in `late` are reached after the stop's deadline passed, with the late
    /// grace only (10 ms), which a loaded machine can miss: they may be reported timed out.
    #[track_caller]
    fn run(&self, host: Host, late: &[&str]) -> StopReport {
        let (handle, _host) = self.start(host);
        self.finish_late(&handle, late)
    }

    fn install(&self, host: Host) -> HostHandle {
        let handle = host.handle();
        assert!(self.slot.set(host).is_ok());
        handle
    }

    /// Waits for the whole stop; returns the final report. The caller's report must be
    /// incomplete (it did not wait) or the final one.
    #[track_caller]
    fn finish(&self, handle: &HostHandle) -> StopReport {
        self.finish_late(handle, &[])
    }

    /// As `finish`; the services in `late` may be reported timed out (see `run`).
    #[track_caller]
    fn finish_late(&self, handle: &HostHandle, late: &[&str]) -> StopReport {
        assert!(
            handle.stopped().wait_timeout(PATIENCE),
            "`stopped` never fired after a stop from the host's own thread (state {})",
            handle.state()
        );
        assert_eq!(handle.state(), HostState::Stopped);
        let host = self.slot.get().unwrap();
        let report = host.join(PATIENCE).expect("the report is stored");
        assert!(report.is_complete(), "{report}");
        assert!(
            report.timed_out().iter().all(|s| late.contains(&&**s)),
            "nobody overran: {report}"
        );
        let returned = self.returned.lock().unwrap().take();
        let returned = returned.expect("the service's `stop` call returned");
        assert!(
            returned.is_in_progress() && !returned.is_complete(),
            "a stop on the host's own thread returns at once, in progress: {returned}"
        );
        assert!(returned.timed_out().is_empty(), "{returned}");
        assert!(returned.into_result().is_ok(), "nothing failed yet");
        report
    }
}

#[track_caller]
fn assert_stopped(report: &StopReport, name: &str) {
    let entry = report
        .service(name)
        .unwrap_or_else(|| panic!("{name} in {report}"));
    assert!(
        matches!(entry.outcome, Outcome::Stopped),
        "`{name}` should be reported stopped: {report}"
    );
}

/// `stop(NEVER)` from the test thread, whose sequence fires callbacks that stop the host
/// again (`what`): it returns, cleanly.
#[track_caller]
fn stop_from_here(host: &Host, what: &str) {
    let report = within(PATIENCE, "stop from the test thread", || {
        host.stop(Deadline::NEVER)
    });
    assert!(report.is_clean(), "{what}: {report}");
}

/// A host of an idle service and `quitter`, whose body stops the host with `deadline` and
/// returns; the final report.
fn body_stops_its_host(deadline: Deadline, late: &[&str]) -> StopReport {
    let case = Case::new();
    let stop = case.stopper(deadline);
    let host = HostBuilder::new()
        .background("other", idle)
        .background("quitter", move |_| {
            stop();
            Ok(())
        })
        .build()
        .unwrap();
    case.run(host, late)
}

#[test]
fn a_background_body_stops_its_own_host_with_no_deadline() {
    let report = body_stops_its_host(Deadline::NEVER, &[]);
    assert_stopped(&report, "other");
    assert_stopped(&report, "quitter");
}

#[test]
fn a_finite_deadline_returns_at_once_and_never_reports_the_caller_timed_out() {
    // A 60 s deadline: a `stop` that waited for the sequence would take until the caller's
    // service gave up on itself.
    let case = Case::new();
    let stop = case.stopper(Deadline::after(Duration::from_secs(60)));
    let probe = Probe::new();
    let returned = probe.clone();
    let host = HostBuilder::new()
        .background("quitter", move |_| {
            within(Duration::from_secs(5), "stop on its own thread", &stop);
            returned.set();
            Ok(())
        })
        .build()
        .unwrap();
    let handle = case.install(host);
    case.slot.get().unwrap().start(PATIENCE).unwrap();
    probe.expect("the body's stop call returned");
    let report = case.finish(&handle);
    assert_stopped(&report, "quitter");
}

#[test]
fn a_start_hook_stops_its_own_host() {
    let case = Case::new();
    let stop = case.stopper(Deadline::NEVER);
    let host = HostBuilder::new()
        .background("first", idle)
        .hosted(
            "starter",
            Rec::new("starter", &Events::new()).on("start", Action::Call(Arc::new(stop))),
        )
        .background("never", |_| Ok(()))
        .build()
        .unwrap();
    let handle = case.install(host);
    // A stop during start ends the start early and cleanly.
    case.slot.get().unwrap().start(PATIENCE).unwrap();
    let report = case.finish(&handle);
    assert_stopped(&report, "first");
    assert_stopped(&report, "starter");
    assert!(matches!(outcome_of(&report, "never"), Outcome::NotStarted));
}

#[test]
fn hooks_stopping_with_a_deadline_already_passed_still_stop_the_host() {
    // `stop(0)` from a start hook runs while the start is still active: the stop cannot run
    // yet, and its deadline has passed when it can. It must still run (once the start ends),
    // and the caller must not be reported as an overrun. From the `started` hook too.
    for hook in ["start", "started"] {
        for round in 0..20 {
            let case = Case::new();
            let stop = case.stopper(Deadline::after(Duration::ZERO));
            let log = Events::new();
            let host = HostBuilder::new()
                .background("other", idle)
                .hosted(
                    "caller",
                    Rec::new("caller", &log).on(hook, Action::Call(Arc::new(stop))),
                )
                .build()
                .unwrap();
            // The deadline has passed when the sequence runs: every service, the caller
            // included (its stop hooks run after its `start`/`started` returned), has the late
            // grace only, which a loaded machine can miss. What must hold: the stop runs, and
            // the caller runs its stop hooks.
            let report = case.run(host, &["other", "caller"]);
            assert!(
                report.host_failure().is_none(),
                "{hook}, round {round}: {report}"
            );
            log.wait_for("caller:stopped");
        }
    }
}

#[test]
fn a_body_stopping_at_once_is_never_reported_as_an_overrun() {
    // `stop(0)`: the sequence runs on `th:host-stop`, maybe well after the call; its deadline
    // counts from when it runs, so the caller, returning at once, is reported stopped.
    for round in 0..20 {
        // Every service is reached late: `other` has the late grace only; the caller, which
        // returned at once, is stopped.
        let report = body_stops_its_host(Deadline::after(Duration::ZERO), &["other"]);
        assert_stopped(&report, "quitter");
        assert!(report.host_failure().is_none(), "round {round}: {report}");
    }
}

#[cfg(feature = "queue")]
#[test]
fn a_queue_job_stops_its_own_host() {
    let case = Case::new();
    let stop = case.stopper(Deadline::NEVER);
    let (queue, producer) = TaskQueue::builder("jobs").workers(2).build_tasks().unwrap();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    let handle = case.install(host);
    case.slot.get().unwrap().start(PATIENCE).unwrap();
    producer
        .send_task(move |_| {
            stop();
            Ok(())
        })
        .unwrap();
    let report = case.finish(&handle);
    assert_stopped(&report, "jobs");
}

#[test]
fn a_token_callback_fired_by_the_stop_sequence_stops_the_host_again() {
    // The sequence runs on the test thread and fires the token there: the callback's `stop`
    // must not wait for the very sequence it runs in.
    let case = Case::new();
    let stop = Arc::new(case.stopper(Deadline::NEVER));
    let host = HostBuilder::new()
        .background("watcher", move |ctx| {
            let stop = Arc::clone(&stop);
            let _registration = ctx.token().on_stop(move |_| stop());
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    let (handle, host) = case.start(host);
    stop_from_here(host, "a token callback");
    let report = case.finish(&handle);
    assert_stopped(&report, "watcher");
}

#[test]
fn lifetime_callbacks_stop_their_own_host() {
    for event in ["started", "stopping", "stopped"] {
        let case = Case::new();
        let stop = case.stopper(Deadline::NEVER);
        let host = HostBuilder::new()
            .background("worker", idle)
            .build()
            .unwrap();
        let handle = case.install(host);
        let token = match event {
            "started" => handle.started(),
            "stopping" => handle.stopping(),
            _ => handle.stopped(),
        };
        let _registration = token.on_stop(move |_| stop());
        let host = case.slot.get().unwrap();
        host.start(PATIENCE).unwrap();
        match event {
            // Nobody asks for the stop but the callback, and nobody joins: it must still run
            // to the end.
            "started" => {}
            // Requested from another thread, and nobody joins: the same.
            "stopping" => handle.request_stop(),
            // The sequence that fires `stopped` runs on this thread: the callback's `stop`
            // must not wait for it.
            _ => stop_from_here(host, event),
        }
        let report = case.finish(&handle);
        assert_stopped(&report, "worker");
    }
}

#[test]
fn the_last_host_dropped_by_its_own_service_still_stops_completely() {
    let slot: Arc<Mutex<Option<Host>>> = Arc::new(Mutex::new(None));
    let taken = Arc::clone(&slot);
    let handed_over = Probe::new();
    let ready = handed_over.clone();
    let host = HostBuilder::new()
        .background("owner", move |_| {
            ready.expect("the test hands the host over");
            let host = taken.lock().unwrap().take();
            within(Duration::from_secs(5), "drop on its own thread", || {
                drop(host)
            });
            Ok(())
        })
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(PATIENCE).unwrap();
    *slot.lock().unwrap() = Some(host);
    handed_over.set();
    assert!(
        handle.stopped().wait_timeout(PATIENCE),
        "`stopped` never fired after the host was dropped on its own thread (state {})",
        handle.state()
    );
    assert_eq!(handle.state(), HostState::Stopped);
}

#[test]
fn join_on_the_hosts_own_thread_is_refused() {
    let case = Case::new();
    let slot = Arc::clone(&case.slot);
    let outcome: Arc<Mutex<Option<Result<StopReport, Error>>>> = Arc::default();
    let seen = Arc::clone(&outcome);
    let host = HostBuilder::new()
        .background("joiner", move |ctx| {
            let result = slot.get().unwrap().join(Deadline::NEVER);
            *seen.lock().unwrap() = Some(result);
            ctx.host().request_stop();
            Ok(())
        })
        .build()
        .unwrap();
    let (handle, host) = case.start(host);
    let report = host.join(PATIENCE).unwrap();
    assert!(report.is_clean(), "{report}");
    let result = outcome.lock().unwrap().take().expect("the body ran");
    let err = result.expect_err("join on the host's own thread is refused");
    assert!(matches!(err, Error::InvalidState { .. }), "{err}");
    assert!(err.to_string().contains("thread of its own"), "{err}");
    assert_eq!(handle.state(), HostState::Stopped);
}
