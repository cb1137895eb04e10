//! Hostile checks of reloads in-process: a stop while a hook hangs,
//! hooks that call back into their host (stop, remove their own service, snapshot), hostile
//! errors and panics, a thousand hooks under one deadline, a zero deadline, services added
//! at runtime, removed while their hook runs, or restarting in a group. (Signals and
//! real processes: tests/lifetime_signals.rs; the notify protocol: tests/systemd.rs.)
// The gated hooks really block (on channels the test releases); one test prints its figures.
#![allow(clippy::disallowed_methods, clippy::print_stderr)]

mod common;

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PATIENCE, SECS5, idle, lock_is_free, timed};
use threadhost::{
    BackgroundService, Context, Deadline, HostBuilder, HostState, ReloadOutcome, Service,
    ServiceResult,
};

/// A gate a hook waits on: `began` says it was entered, `release` lets one call go.
struct Gate {
    began: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

/// A service whose reload hook waits at a gate.
fn gated(name: &str) -> (Service, Gate) {
    let (began_tx, began) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let began_tx = Mutex::new(began_tx);
    let service = Service::background(name, idle).on_reload(move |_| {
        let _ = began_tx.lock().unwrap().send(());
        let _ = release_rx.lock().unwrap().recv();
        Ok(())
    });
    (service, Gate { began, release })
}

/// A stop while a hook hangs in a reload that waits for ever (`Deadline::NEVER`, from a
/// thread the test abandons): the stop returns by its deadline, clean, and holds no lock
/// after; once released, the hook ends and the abandoned reload returns its report.
#[test]
fn a_stop_during_a_hung_reload_returns_by_its_deadline() {
    let (hung, gate) = gated("hung");
    let after_calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&after_calls);
    let host = HostBuilder::new()
        .add_service(hung)
        .add_service(Service::background("after", idle).on_reload(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let handle = host.handle();
    let reloader = std::thread::spawn(move || handle.reload(Deadline::NEVER));
    gate.began.recv_timeout(PATIENCE).unwrap();
    let (report, took) = timed(|| host.stop(SECS5));
    assert!(took < PATIENCE, "{took:?}");
    assert!(report.is_clean(), "{report}");
    assert!(lock_is_free(&host.handle()));
    assert_eq!(host.state(), HostState::Stopped);
    gate.release.send(()).unwrap();
    let reload = reloader.join().unwrap().unwrap();
    assert!(matches!(
        reload.service("hung").unwrap().outcome,
        ReloadOutcome::Reloaded
    ));
    // The host stopped while `hung` ran: `after` was not called.
    assert!(
        matches!(
            reload.service("after").unwrap().outcome,
            ReloadOutcome::NotRun("the host is stopping")
        ),
        "{reload}"
    );
    assert_eq!(after_calls.load(Ordering::SeqCst), 0);
}

/// Hooks that call back into their own host from `th:reload`: a snapshot, a stop request,
/// and after it a hook that would remove its own service (not run: the host is stopping). Nothing deadlocks; the reload returns its report and
/// the host stops.
#[test]
fn hooks_calling_back_into_their_host_do_not_deadlock() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .add_service(Service::background("snap", idle).on_reload(|ctx| {
            let n = ctx.host().snapshot().services.len();
            assert_eq!(n, 3);
            Ok(())
        }))
        .add_service(Service::background("stopper", idle).on_reload(move |ctx| {
            ctx.host().request_stop();
            // Asked again from the same hook: the stop is under way, nothing waits.
            ctx.host().request_stop();
            let _ = tx.lock().unwrap().send(ctx.host().stop_reason().is_some());
            Ok(())
        }))
        .add_service(Service::background("remover", idle).on_reload(|ctx| {
            let _ = ctx.host().remove(ctx.path(), SECS5);
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let (report, took) = timed(|| host.handle().reload(PATIENCE).unwrap());
    assert!(took < PATIENCE, "{took:?}");
    assert!(
        rx.recv_timeout(PATIENCE).unwrap(),
        "no stop reason after request_stop"
    );
    assert!(matches!(
        report.service("snap").unwrap().outcome,
        ReloadOutcome::Reloaded
    ));
    assert!(matches!(
        report.service("remover").unwrap().outcome,
        ReloadOutcome::NotRun("the host is stopping")
    ));
    let stopped = host.join(PATIENCE).unwrap();
    assert!(stopped.is_clean(), "{stopped}");
}

/// A hook that removes its own service (from `th:reload`, not a thread of the service): the
/// removal waits for the service's thread only, and the hook returns.
#[test]
fn a_hook_removing_its_own_service() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .background("stays", idle)
        .add_service(Service::background("leaves", idle).on_reload(move |ctx| {
            let report = ctx.host().remove(ctx.path(), SECS5);
            let _ = tx.lock().unwrap().send(report.map(|r| r.is_clean()));
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(PATIENCE).unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(rx.recv_timeout(PATIENCE).unwrap().unwrap());
    let names: Vec<String> = host
        .handle()
        .snapshot()
        .services
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, ["stays"]);
    // A later reload has no hook left to call.
    assert!(host.handle().reload(SECS5).unwrap().services.is_empty());
    assert!(host.stop(SECS5).is_clean());
}

/// An error whose `Display` panics, one whose text carries newlines and escape sequences,
/// and a panic with a payload that is not a string: each is reported `Failed`, the report
/// (and its `Display`) intact, on one line.
#[test]
fn hostile_errors_and_panics_are_reported() {
    #[derive(Debug)]
    struct Bomb;
    impl fmt::Display for Bomb {
        fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
            panic!("Display of a reload error panicked");
        }
    }
    impl std::error::Error for Bomb {}
    let host = HostBuilder::new()
        .add_service(Service::background("bomb", idle).on_reload(|_| Err(Box::new(Bomb))))
        .add_service(
            Service::background("escapes", idle)
                .on_reload(|_| Err("bad\nREADY=1\r\n\x1b[2Jforged log line".into())),
        )
        .add_service(
            Service::background("payload", idle).on_reload(|_| std::panic::panic_any(42_u32)),
        )
        .add_service(Service::background("fine", idle).on_reload(|_| Ok(())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    let names: Vec<&str> = report.services.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["bomb", "escapes", "payload", "fine"], "{report}");
    for name in ["bomb", "escapes", "payload"] {
        assert!(
            matches!(
                report.service(name).unwrap().outcome,
                ReloadOutcome::Failed(_)
            ),
            "{name}: {report}"
        );
    }
    assert!(matches!(
        report.service("fine").unwrap().outcome,
        ReloadOutcome::Reloaded
    ));
    let text = report.to_string();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(host.stop(SECS5).is_clean());
}

/// A thousand services, each hook taking a little while: the reload's one deadline is
/// shared (it returns by it, not by a thousand of them); the hooks after it are not run.
#[test]
fn a_thousand_hooks_share_one_deadline() {
    const N: usize = 1000;
    let ran = Arc::new(AtomicU32::new(0));
    let mut builder = HostBuilder::new().stack_size(64 * 1024);
    for i in 0..N {
        let ran = Arc::clone(&ran);
        builder = builder.add_service(Service::background(&format!("s{i:04}"), idle).on_reload(
            move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            },
        ));
    }
    let host = builder.build().unwrap();
    host.start(PATIENCE).unwrap();
    let (report, took) = timed(|| host.handle().reload(Duration::from_millis(300)).unwrap());
    // 1000 × 5 ms = 5 s if each hook had the whole deadline.
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(report.services.len(), N);
    let reloaded = report
        .services
        .iter()
        .filter(|e| matches!(e.outcome, ReloadOutcome::Reloaded))
        .count();
    let not_run = report
        .services
        .iter()
        .filter(|e| matches!(e.outcome, ReloadOutcome::NotRun(_)))
        .count();
    eprintln!("1000 hooks, 300 ms: {reloaded} reloaded, {not_run} not run, in {took:?}");
    assert!(reloaded < N, "{reloaded}");
    assert!(not_run > 0, "{report}");
    // Start order: the reloaded ones are a prefix.
    assert!(
        report.services[..reloaded]
            .iter()
            .all(|e| matches!(e.outcome, ReloadOutcome::Reloaded))
    );
    let stopped = host.stop(PATIENCE);
    assert!(stopped.is_clean(), "{stopped}");
    // No hook ran after the deadline's NotRun was decided but one at most timed out.
    assert!(ran.load(Ordering::SeqCst) as usize <= reloaded + 1);
}

/// `reload(Duration::ZERO)`: returns at once with every hook accounted for (each one ran,
/// was running at the deadline, or was not run; `th:reload` may get through both hooks
/// before the caller looks); the host goes on, and a later reload runs them all.
#[test]
fn a_zero_deadline_reload_returns_at_once() {
    let host = HostBuilder::new()
        .add_service(Service::background("a", idle).on_reload(|_| Ok(())))
        .add_service(Service::background("b", idle).on_reload(|_| Ok(())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let (report, took) = timed(|| host.handle().reload(Duration::ZERO).unwrap());
    assert!(took < PATIENCE, "{took:?}");
    assert_eq!(report.services.len(), 2, "{report}");
    // Whichever hook the deadline caught (none, `a` or `b`), the report says so.
    assert!(report.is_clean() || report.timed_out(), "{report}");
    assert_eq!(host.state(), HostState::Running);
    let deadline = Instant::now() + PATIENCE;
    let full = loop {
        let r = host.handle().reload(SECS5).unwrap();
        if r.is_clean() || Instant::now() > deadline {
            break r;
        }
        std::thread::yield_now();
    };
    assert!(full.is_clean(), "{full}");
    assert!(host.stop(SECS5).is_clean());
}

/// A service added at runtime with a hook is reloaded, in start order: after the services
/// of its group that started before it, and before a later top-level service.
#[test]
fn a_service_added_at_runtime_is_reloaded_in_start_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let logged = |name: &str| {
        let log = Arc::clone(&log);
        Service::background(name, idle).on_reload(move |ctx| {
            log.lock().unwrap().push(ctx.path().to_owned());
            Ok(())
        })
    };
    let host = HostBuilder::new()
        .group("g", |g| g.add_service(logged("a")))
        .add_service(logged("z"))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    host.handle().add_service("g", logged("b"), SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(report.is_clean(), "{report}");
    let names: Vec<&str> = report.services.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["g/a", "g/b", "z"]);
    assert_eq!(*log.lock().unwrap(), ["g/a", "g/b", "z"]);
    assert!(host.stop(SECS5).is_clean());
}

/// A service removed (by another thread) while its hook runs: the removal does not wait for
/// the hook, nor the hook for the removal; the reload reports the hook's own outcome.
#[test]
fn a_service_removed_while_its_hook_runs() {
    let (gated, gate) = gated("leaving");
    let host = HostBuilder::new()
        .group("g", |g| g.add_service(gated))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let handle = host.handle();
    let reloader = std::thread::spawn(move || handle.reload(PATIENCE));
    gate.began.recv_timeout(PATIENCE).unwrap();
    let (removed, took) = timed(|| host.handle().remove("g/leaving", SECS5).unwrap());
    assert!(took < PATIENCE, "{took:?}");
    assert!(removed.is_clean(), "{removed}");
    gate.release.send(()).unwrap();
    let report = reloader.join().unwrap().unwrap();
    assert!(
        matches!(
            report.service("g/leaving").unwrap().outcome,
            ReloadOutcome::Reloaded
        ),
        "{report}"
    );
    // Gone: a later reload has nothing to call.
    assert!(host.handle().reload(SECS5).unwrap().services.is_empty());
    assert!(host.stop(SECS5).is_clean());
}

/// Fails its first run; its second start hook waits at a gate (the group restarts it).
struct Restarting {
    runs: u32,
    began: mpsc::Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl BackgroundService for Restarting {
    fn start(&mut self, _ctx: &Context) -> ServiceResult {
        if self.runs == 1 {
            let _ = self.began.send(());
            let _ = self.release.lock().unwrap().recv();
        }
        Ok(())
    }
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        self.runs += 1;
        if self.runs == 1 {
            ctx.host().started().wait();
            return Err("fails once".into());
        }
        ctx.token().wait();
        Ok(())
    }
}

/// A reload while a group restarts a child: the child being restarted (not running) is not
/// reloaded and says why; its sibling is; the restart then completes.
#[test]
fn a_reload_while_a_group_restarts_a_child() {
    let (began_tx, began) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let restarting = Restarting {
        runs: 0,
        began: began_tx,
        release: Arc::new(Mutex::new(release_rx)),
    };
    let host = HostBuilder::new()
        .group("g", |g| {
            g.add_service(
                Service::background_service("flaky", restarting).on_reload(|_| {
                    panic!("the hook of a service being restarted was called");
                }),
            )
            .add_service(Service::background("steady", idle).on_reload(|_| Ok(())))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    began.recv_timeout(PATIENCE).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    assert!(
        matches!(
            report.service("g/flaky").unwrap().outcome,
            ReloadOutcome::NotRun("the service is not running")
        ),
        "{report}"
    );
    assert!(matches!(
        report.service("g/steady").unwrap().outcome,
        ReloadOutcome::Reloaded
    ));
    release.send(()).unwrap();
    common::await_state(&host.handle(), "g/flaky", threadhost::ServiceState::Running);
    assert!(host.stop(SECS5).is_clean());
}

/// `reload_timeout` at its extremes, for `request_reload`: zero ends the reload at once
/// (its hook not run, or timed out), `Duration::MAX` (a deadline past what `Instant` holds:
/// never) runs it; either way the reload ends (the listeners see it) and the next one is not
/// refused as still in progress.
#[cfg(feature = "listeners")]
#[test]
fn reload_timeout_zero_and_huge() {
    use threadhost::StateChange;
    for timeout in [Duration::ZERO, Duration::MAX] {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let host = HostBuilder::new()
            .reload_timeout(timeout)
            .on_state_change(move |event| {
                if let StateChange::Reloaded { failed } = &event.change {
                    let _ = tx.lock().unwrap().send(failed.len());
                }
            })
            .add_service(Service::background("cfg", idle).on_reload(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }))
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        host.handle().request_reload().unwrap();
        let failed = rx.recv_timeout(PATIENCE).unwrap();
        if timeout == Duration::MAX {
            assert_eq!(failed, 0);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
        let report = host.handle().reload(SECS5).unwrap();
        assert_eq!(report.services.len(), 1, "{timeout:?}: {report}");
        assert!(host.stop(SECS5).is_clean());
    }
}
