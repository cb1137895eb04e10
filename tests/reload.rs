//! Reloads in-process: `Service::on_reload`, `HostHandle::reload` and `request_reload` —
//! the hook order, failing, panicking and hung hooks, the states a reload is refused in,
//! reloads from a hook and from a service's own thread, concurrent requests, and what the
//! state listeners see. (Real SIGHUP: tests/lifetime_signals.rs; the notify protocol:
//! tests/systemd.rs.)
// The hung hook really blocks (on a channel the test releases).
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PATIENCE, SECS5, idle};
use threadhost::{Error, HostBuilder, HostState, ReloadOutcome, Service};

/// A service whose reload hook appends its name to `log`.
fn logged(name: &str, log: &Arc<Mutex<Vec<String>>>) -> Service {
    let log = Arc::clone(log);
    Service::background(name, idle).on_reload(move |ctx| {
        log.lock().unwrap().push(ctx.path().to_owned());
        Ok(())
    })
}

#[test]
fn hooks_run_in_start_order_with_the_reload_deadline() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let deadline_seen = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&deadline_seen);
    let host = HostBuilder::new()
        .add_service(logged("api", &log).depends_on("db"))
        .add_service(logged("db", &log))
        .group("devices", |g| g.add_service(logged("plc", &log)))
        .add_service(Service::background("plain", idle))
        .add_service(Service::background("last", idle).on_reload(move |ctx| {
            *seen.lock().unwrap() = ctx.deadline().instant();
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let deadline = Instant::now() + SECS5;
    let report = host.handle().reload(deadline).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(*log.lock().unwrap(), ["db", "api", "devices/plc"]);
    let names: Vec<&str> = report.services.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["db", "api", "devices/plc", "last"]);
    assert_eq!(*deadline_seen.lock().unwrap(), Some(deadline));
    assert_eq!(host.state(), HostState::Running);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn no_hook_is_an_empty_clean_reload() {
    let host = HostBuilder::new().background("w", idle).build().unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(report.services.is_empty() && report.is_clean());
    host.handle().request_reload().unwrap();
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn failing_and_panicking_hooks_are_reported_and_stop_nothing() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let host = HostBuilder::new()
        .add_service(
            Service::background("bad", idle).on_reload(|_| Err("bad value\nSTATUS=x".into())),
        )
        .add_service(Service::background("boom", idle).on_reload(|_| panic!("reload boom")))
        .add_service(logged("after", &log))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(!report.is_clean());
    assert!(!report.timed_out(), "{report}");
    let bad = &report.service("bad").unwrap().outcome;
    assert!(
        matches!(bad, ReloadOutcome::Failed(f) if !f.is_panic()),
        "{bad:?}"
    );
    let boom = &report.service("boom").unwrap().outcome;
    assert!(
        matches!(boom, ReloadOutcome::Failed(f) if f.is_panic()),
        "{boom:?}"
    );
    assert!(boom.to_string().contains("reload boom"), "{boom}");
    // The hooks after a failure still run.
    assert!(matches!(
        report.service("after").unwrap().outcome,
        ReloadOutcome::Reloaded
    ));
    assert_eq!(*log.lock().unwrap(), ["after"]);
    // The report's text is one line (the error's newline escaped).
    assert_eq!(report.to_string().lines().count(), 1, "{report}");
    // Nothing stopped: the host and every service run, and a later reload works.
    assert_eq!(host.state(), HostState::Running);
    let snapshot = host.handle().snapshot();
    assert!(
        snapshot
            .services
            .iter()
            .all(|s| s.state == threadhost::ServiceState::Running),
        "{snapshot:?}"
    );
    assert_eq!(host.handle().reload(SECS5).unwrap().failed().len(), 2);
    assert!(host.stop(SECS5).is_clean());
}

/// A hook that blocks until the test releases it (and says when it began).
fn hanging(name: &str) -> (Service, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (began_tx, began) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let service = Service::background(name, idle).on_reload(move |_| {
        let _ = began_tx.send(());
        let _ = release_rx.lock().unwrap().recv();
        Ok(())
    });
    (service, began, release)
}

#[test]
fn a_hung_hook_does_not_hold_the_reload_past_its_deadline() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (hung, began, release) = hanging("hung");
    let host = HostBuilder::new()
        .add_service(hung)
        .add_service(logged("after", &log))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let handle = host.handle();
    let asked = Instant::now();
    let report = handle.reload(Duration::from_millis(200)).unwrap();
    let took = asked.elapsed();
    assert!(took < PATIENCE, "{took:?}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(report.timed_out(), "{report}");
    assert!(matches!(
        report.service("hung").unwrap().outcome,
        ReloadOutcome::TimedOut
    ));
    assert!(matches!(
        report.service("after").unwrap().outcome,
        ReloadOutcome::NotRun(_)
    ));
    assert!(
        log.lock().unwrap().is_empty(),
        "a hook after the hung one ran"
    );
    began.recv_timeout(PATIENCE).unwrap();
    // The next reload does not call the hung hook again while it runs, and runs the rest.
    let report = handle.reload(SECS5).unwrap();
    assert!(
        matches!(report.service("hung").unwrap().outcome, ReloadOutcome::NotRun(why) if why.contains("still runs")),
        "{report}"
    );
    assert!(!report.timed_out(), "{report}");
    assert!(matches!(
        report.service("after").unwrap().outcome,
        ReloadOutcome::Reloaded
    ));
    // Released (one release for the call that hung, one for the next), it is called again
    // once its thread has cleared its busy flag, right after the hook returned: a reload
    // made just before that still reports it running.
    release.send(()).unwrap();
    release.send(()).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let outcome = loop {
        let report = handle.reload(SECS5).unwrap();
        let outcome = report.service("hung").unwrap().outcome.clone();
        if !matches!(outcome, ReloadOutcome::NotRun(_)) || Instant::now() > deadline {
            break outcome;
        }
        std::thread::yield_now();
    };
    assert!(matches!(outcome, ReloadOutcome::Reloaded), "{outcome}");
    drop(release);
    assert!(host.stop(SECS5).is_clean());
}

/// A zero deadline ends the reload before its hooks had their turn (or while the first one
/// runs): the report says it timed out, whichever of the two it was.
#[test]
fn a_zero_deadline_reload_is_reported_timed_out() {
    let (hung, _began, release) = hanging("hung");
    let log = Arc::new(Mutex::new(Vec::new()));
    let host = HostBuilder::new()
        .add_service(hung)
        .add_service(logged("after", &log))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(Duration::ZERO).unwrap();
    assert!(report.timed_out(), "{report}");
    assert!(matches!(
        report.service("hung").unwrap().outcome,
        ReloadOutcome::TimedOut | ReloadOutcome::NotRun(_)
    ));
    assert!(log.lock().unwrap().is_empty(), "{report}");
    drop(release);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn reload_is_refused_unless_running() {
    let host = HostBuilder::new()
        .add_service(Service::background("w", idle).on_reload(|_| Ok(())))
        .build()
        .unwrap();
    let handle = host.handle();
    for err in [
        handle.reload(SECS5).unwrap_err(),
        handle.request_reload().unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::InvalidState {
                    state: HostState::Created,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "cannot reload a host that is created");
    }
    host.start(SECS5).unwrap();
    assert!(host.stop(SECS5).is_clean());
    for err in [
        handle.reload(SECS5).unwrap_err(),
        handle.request_reload().unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::InvalidState {
                    state: HostState::Stopped,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn reload_is_refused_while_stopping() {
    let (stop_began, began) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let host = HostBuilder::new()
        .add_service(
            Service::background("slow", move |ctx| {
                ctx.token().wait();
                let _ = stop_began.send(());
                let _ = released.lock().unwrap().recv();
                Ok(())
            })
            .on_reload(|_| Ok(())),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let handle = host.handle();
    // The stop sequence runs on another thread; its stop waits in the body.
    let stopper = std::thread::spawn(move || host.stop(PATIENCE));
    began.recv_timeout(PATIENCE).unwrap();
    let err = handle.reload(SECS5).unwrap_err();
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
    assert!(handle.request_reload().is_err());
    release.send(()).unwrap();
    assert!(stopper.join().unwrap().is_clean());
}

/// A hook that reloads its own host: `reload` is refused (it cannot wait for itself),
/// `request_reload` queues one more reload, which runs after this one.
#[test]
fn a_hook_reloading_its_own_host_does_not_deadlock() {
    let calls = Arc::new(AtomicU32::new(0));
    let (results_tx, results) = mpsc::channel();
    let counter = Arc::clone(&calls);
    let host = HostBuilder::new()
        .add_service(Service::background("self", idle).on_reload(move |ctx| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                let sync = ctx.host().reload(SECS5).map(|_| ());
                let queued = ctx.host().request_reload();
                let _ = results_tx.send((sync, queued));
            } else {
                let _ = results_tx.send((Ok(()), Ok(())));
            }
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(report.is_clean(), "{report}");
    let (sync, queued) = results.recv_timeout(PATIENCE).unwrap();
    assert!(matches!(sync, Err(Error::ReloadInProgress)), "{sync:?}");
    assert!(queued.is_ok(), "{queued:?}");
    // The queued reload runs after: its hook is called a second time.
    let _second = results.recv_timeout(PATIENCE).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(host.stop(SECS5).is_clean());
}

/// A background body (a service's own thread) reloads its host and gets the report.
#[test]
fn a_service_thread_reloads_its_host() {
    let (tx, rx) = mpsc::channel();
    let host = HostBuilder::new()
        .add_service(Service::background("cfg", idle).on_reload(|_| Ok(())))
        .background("admin", move |ctx| {
            ctx.host().started().wait();
            let _ = tx.send(ctx.host().reload(SECS5).map(|r| r.services.len()));
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap().unwrap(), 1);
    assert!(host.stop(SECS5).is_clean());
}

/// Many requests during one reload coalesce into exactly one more; a synchronous reload
/// then is refused.
#[test]
fn concurrent_requests_coalesce_into_one_more_reload() {
    let (hung, began, release) = hanging("gate");
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let (done_tx, done) = mpsc::channel();
    let host = HostBuilder::new()
        .add_service(hung)
        .add_service(Service::background("count", idle).on_reload(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = done_tx.send(());
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let handle = host.handle();
    handle.request_reload().unwrap();
    began.recv_timeout(PATIENCE).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let h = handle.clone();
            std::thread::spawn(move || h.request_reload())
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert!(matches!(handle.reload(SECS5), Err(Error::ReloadInProgress)));
    release.send(()).unwrap(); // the first reload's gate
    release.send(()).unwrap(); // the one more reload's gate
    release.send(()).unwrap(); // the check's gate, below
    done.recv_timeout(PATIENCE).unwrap();
    done.recv_timeout(PATIENCE).unwrap();
    // Exactly two reloads ran: a third `count` call would be a request lost in reverse.
    let report = handle_reload_when_idle(&handle);
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "2 coalesced reloads + this one"
    );
    drop(release);
    assert!(host.stop(SECS5).is_clean());
}

/// `reload`, retried while the coalesced reload still finishes.
fn handle_reload_when_idle(handle: &threadhost::HostHandle) -> threadhost::ReloadReport {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match handle.reload(SECS5) {
            Err(Error::ReloadInProgress) if Instant::now() < deadline => {
                std::thread::yield_now();
            }
            other => return other.unwrap(),
        }
    }
}

/// A stop requested during a reload: the hooks not yet run are not run.
#[test]
fn a_stop_during_a_reload_skips_the_hooks_not_yet_run() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let host = HostBuilder::new()
        .add_service(Service::background("stopper", idle).on_reload(|ctx| {
            ctx.host().request_stop();
            Ok(())
        }))
        .add_service(logged("after", &log))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(matches!(
        report.service("after").unwrap().outcome,
        ReloadOutcome::NotRun("the host is stopping")
    ));
    assert!(log.lock().unwrap().is_empty());
    assert!(host.join(SECS5).unwrap().is_clean());
}

/// Listeners see each reload begin and end, in order, and which service failed.
#[cfg(feature = "listeners")]
#[test]
fn listeners_see_reloading_then_reloaded() {
    use threadhost::StateChange;
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .on_state_change(move |event| {
            if matches!(
                event.change,
                StateChange::Reloading | StateChange::Reloaded { .. }
            ) {
                let _ = tx.lock().unwrap().send(event.change.to_string());
            }
        })
        .add_service(Service::background("bad", idle).on_reload(|_| Err("no".into())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    host.handle().reload(SECS5).unwrap();
    let got: Vec<String> = (0..2).map(|_| rx.recv_timeout(PATIENCE).unwrap()).collect();
    assert_eq!(
        got,
        ["host reloading", "host reloaded; reload failed: `bad`"]
    );
    assert!(host.stop(SECS5).is_clean());
}

/// A service that is not running (its body failed, ignored) is not reloaded, and says why.
#[cfg(feature = "listeners")]
#[test]
fn a_service_that_is_not_running_is_not_reloaded() {
    use threadhost::{ServiceState, StateChange};
    let (failed_tx, failed) = mpsc::channel();
    let failed_tx = Mutex::new(failed_tx);
    let host = HostBuilder::new()
        .on_failure(threadhost::Policy::Ignore)
        .on_state_change(move |event| {
            if let StateChange::Service {
                to: ServiceState::Failed,
                ..
            } = event.change
            {
                let _ = failed_tx.lock().unwrap().send(());
            }
        })
        .add_service(
            Service::background("gone", |_| Err("broken".into()))
                .on_reload(|_| panic!("a service that is not running was reloaded")),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    // The listener runs after the change was made: the service is `Failed` by then.
    failed.recv_timeout(PATIENCE).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(
        matches!(
            report.service("gone").unwrap().outcome,
            ReloadOutcome::NotRun("the service is not running")
        ),
        "{report}"
    );
    drop(host);
}

/// Reload hooks get the host's stack size, as service threads do: a hook that needs 4 MiB
/// of stack runs under `stack_size(16 MiB)` (Rust's default for a thread is 2 MiB: on it,
/// this hook overflows and aborts the process).
#[test]
fn hooks_run_with_the_hosts_stack_size() {
    let host = HostBuilder::new()
        .stack_size(16 << 20)
        .add_service(Service::background("deep", idle).on_reload(|_ctx| {
            let buf = [1u8; 4 << 20];
            assert_eq!(std::hint::black_box(&buf)[(4 << 20) - 1], 1);
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(PATIENCE).unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(host.stop(SECS5).is_clean());
}
