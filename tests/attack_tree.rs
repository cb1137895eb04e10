//! Hostile probes of the supervision tree (groups, strategies, runtime changes by path):
//! calls from the library's own threads, every path a change can take, many at once, sizes
//! at their maximum, outside text. Each test is a minimal reproduction; the bugs they found
//! are fixed (RELIABILITY.md, "The supervision tree").

#![cfg(all(feature = "listeners", feature = "queue", feature = "periodic"))]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Action, Events, Gate, MARGIN, PATIENCE, Probe, Rec, SECS5, busy, eventually, idle,
    lock_is_free, ms, spawn, threads_named, timed,
};
use threadhost::{
    Backoff, Context, Error, Group, HostBuilder, HostHandle, HostState, Outcome, RestartType,
    Service, ServiceResult, ServiceState, StateChange, Strategy,
};

// ---- helpers ----

/// Adds a listener that records every state change in `log` as `group <path> <State>`,
/// `service <path> <State>` or `host <State>`: the events a test awaits.
fn watched(builder: HostBuilder, log: &Events) -> HostBuilder {
    let l = log.clone();
    builder.on_state_change(move |e| match &e.change {
        StateChange::Group { path, to, .. } => l.push(format!("group {path} {to:?}")),
        StateChange::Service { name, to, .. } => l.push(format!("service {name} {to:?}")),
        StateChange::Host { to, .. } => l.push(format!("host {to:?}")),
        _ => {}
    })
}

fn group_state(h: &HostHandle, path: &str) -> Option<ServiceState> {
    h.snapshot().group(path).map(|g| g.state)
}

fn service_state(h: &HostHandle, path: &str) -> Option<ServiceState> {
    h.snapshot().service(path).map(|s| s.state)
}

/// A background body that records `<name>:run<n>` (n counts its runs from 0) and then runs
/// `then(n, ctx)`.
fn counted(
    name: &str,
    log: &Events,
    then: impl Fn(usize, &Context) -> ServiceResult + Send + 'static,
) -> Service {
    let runs = AtomicUsize::new(0);
    let log = log.clone();
    let label = name.to_owned();
    Service::background(name, move |ctx| {
        let n = runs.fetch_add(1, Ordering::SeqCst);
        log.push(format!("{label}:run{n}"));
        then(n, ctx)
    })
}

/// A [`counted`] service whose first run fails once `trigger` opens ("<name> fails"); later
/// runs wait for the token.
fn fails_once(name: &str, log: &Events, trigger: &Gate) -> Service {
    let t = trigger.clone();
    let what = format!("{name} fails");
    counted(name, log, move |n, ctx| {
        if n == 0 {
            t.wait();
            return Err(what.clone().into());
        }
        ctx.token().wait();
        Ok(())
    })
}

/// `then` for [`counted`]: the first run fails at once, later runs wait for the token.
fn fail_first(n: usize, ctx: &Context) -> ServiceResult {
    if n == 0 {
        return Err("first run fails".into());
    }
    ctx.token().wait();
    Ok(())
}

// ---- 1. calls from the library's own threads ----

/// A service removes its own group from its body: in progress at once, the group goes, the
/// host stops cleanly.
#[test]
fn body_removes_its_own_group() {
    let result = Arc::new(Mutex::new(None));
    let r = Arc::clone(&result);
    let gone = Probe::new();
    let g2 = gone.clone();
    let host = HostBuilder::new()
        .background("other", idle)
        .group("g", |g| {
            g.add_service(Service::background("self", move |ctx| {
                let (report, took) = timed(|| ctx.host().remove("g", SECS5));
                *r.lock().unwrap() = Some((report.map(|r| r.is_in_progress()), took));
                g2.set();
                ctx.token().wait();
                Ok(())
            }))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    gone.expect("remove returned");
    let (in_progress, took) = result.lock().unwrap().take().unwrap();
    assert!(in_progress.unwrap());
    assert!(took < ms(500), "took {took:?}");
    let h = host.handle();
    eventually("g leaves the tree", || h.snapshot().group("g").is_none());
    assert!(h.snapshot().service("g/self").is_none());
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A service restarts itself from its body: Ok at once, it runs again.
#[test]
fn body_restarts_itself() {
    let log = Events::new();
    let l = log.clone();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.add_service(counted("me", &log, move |n, ctx| {
                if n == 0 {
                    let r = ctx.host().restart_child(ctx.path(), SECS5);
                    l.push(format!("restart:{}", r.is_ok()));
                }
                ctx.token().wait();
                Ok(())
            }))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("restart:true");
    log.wait_for("me:run1");
    let h = host.handle();
    eventually("me running again", || {
        service_state(&h, "g/me") == Some(ServiceState::Running)
    });
    assert_eq!(h.snapshot().service("g/me").unwrap().restarts, 1);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A start hook (during the host's start) stops its own group: the change waits for the
/// start, then runs; the host stays up and stops cleanly.
#[test]
fn start_hook_stops_its_own_group_during_host_start() {
    let log = Events::new();
    struct StopsGroup(Events);
    impl threadhost::HostedService for StopsGroup {
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            let (r, took) = timed(|| ctx.host().stop_child("g", SECS5));
            self.0.push(format!(
                "start:stop_child:{}:{}",
                r.as_ref().is_ok_and(threadhost::StopReport::is_in_progress),
                took < ms(500)
            ));
            Ok(())
        }
        fn stop(&mut self, _: &Context) -> ServiceResult {
            Ok(())
        }
    }
    let host = HostBuilder::new()
        .group("g", |g| g.hosted("h", StopsGroup(log.clone())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("start:stop_child:true:true");
    let h = host.handle();
    eventually("g stopped", || {
        group_state(&h, "g") == Some(ServiceState::Stopped)
    });
    assert_eq!(host.state(), HostState::Running);
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

/// A start hook asks to remove a sibling (another path) while its own start is awaited:
/// refused at once with InvalidState (the sequencer waits for this very thread).
#[test]
fn start_hook_changing_another_path_is_refused_at_once() {
    let log = Events::new();
    struct Asks(Events);
    impl threadhost::HostedService for Asks {
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            let (r, took) = timed(|| ctx.host().remove("other", SECS5));
            self.0.push(format!(
                "refused:{}:{}",
                matches!(r, Err(Error::InvalidState { .. })),
                took < ms(500)
            ));
            Ok(())
        }
        fn stop(&mut self, _: &Context) -> ServiceResult {
            Ok(())
        }
    }
    let host = HostBuilder::new()
        .background("other", idle)
        .hosted("asks", Asks(log.clone()))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("refused:true:true");
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A stop hook (during a `stop_child` of its group) restarts and removes its own group: the
/// stop does not wait for itself; the host stops cleanly afterwards.
#[test]
fn stop_hook_changes_its_own_group_during_stop_child() {
    let log = Events::new();
    struct InStop(Events);
    impl threadhost::HostedService for InStop {
        fn start(&mut self, _: &Context) -> ServiceResult {
            Ok(())
        }
        fn stop(&mut self, ctx: &Context) -> ServiceResult {
            let (r, took) = timed(|| ctx.host().remove("g", SECS5));
            self.0.push(format!(
                "stop:remove:{:?}:{}",
                r.map(|r| r.is_in_progress()).map_err(|e| e.to_string()),
                took < ms(500)
            ));
            Ok(())
        }
    }
    let host = HostBuilder::new()
        .group("g", |g| g.hosted("s", InStop(log.clone())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let (report, took) = timed(|| h.stop_child("g", SECS5).unwrap());
    assert!(took < Duration::from_secs(2), "stop_child took {took:?}");
    assert!(report.is_clean(), "{report}");
    log.wait_for("stop:remove:Ok(true):true");
    eventually("g removed afterwards", || h.snapshot().group("g").is_none());
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A stop hook of a service asks for a change during the host's stop: refused (the host is
/// stopping), at once; the stop is clean.
#[test]
fn stop_hook_change_during_host_stop_is_refused() {
    let log = Events::new();
    struct InStop(Events);
    impl threadhost::HostedService for InStop {
        fn start(&mut self, _: &Context) -> ServiceResult {
            Ok(())
        }
        fn stop(&mut self, ctx: &Context) -> ServiceResult {
            let (r, took) = timed(|| {
                ctx.host()
                    .add_service("g", Service::background("late", idle), SECS5)
            });
            self.0.push(format!(
                "add:{}:{}",
                matches!(r, Err(Error::InvalidState { .. })),
                took < ms(500)
            ));
            let (r, took) = timed(|| ctx.host().restart_child("g", SECS5));
            self.0.push(format!(
                "restart:{}:{}",
                r.is_ok() || matches!(r, Err(Error::InvalidState { .. })),
                took < ms(500)
            ));
            Ok(())
        }
    }
    let host = HostBuilder::new()
        .group("g", |g| g.hosted("s", InStop(log.clone())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let (report, took) = timed(|| host.stop(SECS5));
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    assert!(report.is_clean(), "{report}");
    assert!(log.contains("add:true:true"), "{:?}", log.names());
    assert!(log.contains("restart:true:true"), "{:?}", log.names());
    assert!(host.handle().snapshot().service("g/late").is_none());
}

/// A token `on_stop` callback of service `a` removes its sibling `b` while `a` is being
/// removed. The callback runs on a thread the change awaits, so a change from there must not
/// wait for the change in progress.
#[test]
fn on_stop_callback_removing_a_sibling_does_not_hold_the_change() {
    let log = Events::new();
    let l = log.clone();
    let host = HostBuilder::new()
        .background("b", idle)
        .add_service(Service::background("a", move |ctx| {
            let h = ctx.host().clone();
            let l2 = l.clone();
            let _reg = ctx.token().on_stop(move |_| {
                let (r, took) = timed(|| h.remove("b", SECS5));
                l2.push(format!(
                    "callback:{:?}:{took:?}",
                    r.map(|r| r.is_clean()).map_err(|e| e.to_string())
                ));
            });
            l.push("registered");
            ctx.token().wait();
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("registered");
    let h = host.handle();
    let (report, took) = timed(|| h.remove("a", SECS5).unwrap());
    let callback = log.with_prefix("callback:");
    assert!(
        took < Duration::from_secs(2),
        "remove(a) took {took:?}: {report}; callback: {callback:?}"
    );
    assert!(report.is_clean(), "{report}; callback: {callback:?}");
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

/// While a change awaits a hung token callback (a remove with a long deadline), the host's
/// stop with a short deadline must still stop the tree by its deadline (tree invariant 2:
/// "its stop waits end by the host's stop deadline, and the host's stop runs after it").
#[test]
fn host_stop_is_not_held_by_a_change_awaiting_a_hung_callback() {
    let gate = Gate::new();
    let _open = gate.opener();
    let in_callback = Probe::new();
    let (g, p) = (gate.clone(), in_callback.clone());
    let b_exited = Probe::new();
    let b_exit = b_exited.clone();
    let host = HostBuilder::new()
        .background("b", move |ctx| {
            ctx.token().wait();
            b_exit.set();
            Ok(())
        })
        .add_service(Service::background("a", move |ctx| {
            let (g, p) = (g.clone(), p.clone());
            let _reg = ctx.token().on_stop(move |_| {
                p.set();
                g.wait();
            });
            ctx.token().wait();
            Ok(())
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let remover = spawn("remover", move || h.remove("a", Duration::from_secs(30)));
    in_callback.expect("a's on_stop callback runs");
    let (report, took) = timed(|| host.stop(Duration::from_secs(1)));
    assert!(
        took <= Duration::from_secs(1) + MARGIN,
        "host.stop(1s) took {took:?}"
    );
    assert!(report.is_complete(), "host.stop(1s) gave up: {report}");
    // The host's stop runs once the change's waits ended, at the deadline: `b` is reached
    // late, with the late grace only, which a loaded machine can miss. Its outcome is named,
    // and its token fired (it exits); whether it made the grace is not asserted.
    assert!(
        matches!(
            report.service("b").map(|s| &s.outcome),
            Some(Outcome::Stopped | Outcome::TimedOut)
        ),
        "{report}"
    );
    b_exited.expect("b's token fired and it exits");
    gate.open();
    let _ = remover.join();
}

// ---- supervision ----

/// A child of a group that fails while the host is still starting (a connection refused at
/// boot: what supervisors are for) must be restarted by its group once the host runs.
#[test]
fn a_child_that_failed_during_the_host_start_can_be_restarted() {
    let log = Events::new();
    let host = watched(HostBuilder::new(), &log)
        .group("g", |g| {
            g.backoff(Backoff::fixed(ms(10)))
                .add_service(counted("flaky", &log, fail_first))
        })
        .add_service(Service::background_service(
            "slow",
            SlowStart(Duration::from_millis(300)),
        ))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let ok = log.seen_within("flaky:run1", Duration::from_secs(5));
    let snap = h.snapshot();
    assert!(
        ok,
        "flaky never ran again; host {:?}, group {:?}, flaky {:?}, stop reason {:?}",
        snap.state,
        snap.group("g")
            .map(|g| (g.state, g.last_error.as_ref().map(ToString::to_string))),
        snap.service("g/flaky").map(|s| s.state),
        h.stop_reason()
    );
    assert_eq!(host.state(), HostState::Running);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A background service whose start hook takes a while (keeps the host `Starting`).
struct SlowStart(Duration);
impl threadhost::BackgroundService for SlowStart {
    fn start(&mut self, _: &Context) -> ServiceResult {
        busy(self.0);
        Ok(())
    }
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        ctx.token().wait();
        Ok(())
    }
}

/// A group with one child that fails once (when `trigger` opens) and a long backoff.
fn backoff_group_named(name: &str, log: &Events, trigger: &Gate, backoff: Duration) -> HostBuilder {
    watched(HostBuilder::new(), log)
        .background("other", idle)
        .group(name, |g| {
            g.backoff(Backoff::fixed(backoff))
                .add_service(fails_once("f", log, trigger))
        })
}

/// A started host whose group `name` (see [`backoff_group_named`]) is waiting out a backoff
/// of `backoff` after its child's failure; with the event log.
fn in_backoff(name: &str, backoff: Duration) -> (Events, threadhost::Host) {
    let log = Events::new();
    let trigger = Gate::new();
    let host = backoff_group_named(name, &log, &trigger, backoff)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    log.wait_for(&format!("group {name} Restarting"));
    (log, host)
}

/// The host stops while a group waits out its backoff: the stop is prompt, and after it
/// nothing is left `Restarting`, and the report names every service.
#[test]
fn host_stop_during_a_group_backoff_leaves_nothing_restarting() {
    let (_log, host) = in_backoff("g", Duration::from_secs(60));
    let h = host.handle();
    let (report, took) = timed(|| host.stop(SECS5));
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let snap = h.snapshot();
    let g = snap.group("g").unwrap().state;
    let f = snap.service("g/f").unwrap().state;
    assert!(
        report.service("g/f").is_some()
            && g != ServiceState::Restarting
            && f != ServiceState::Restarting,
        "after the host stopped: group g {g:?}, g/f {f:?}; report: {report}"
    );
}

/// A group removed during its backoff: its supervisor thread ends (it does not wait out the
/// backoff, holding the host).
#[test]
fn removing_a_group_in_backoff_ends_its_supervisor() {
    let (_log, host) = in_backoff("rmg", Duration::from_secs(60));
    let h = host.handle();
    assert_eq!(threads_named("th:rmg:supervi"), 1);
    let (report, took) = timed(|| h.remove("rmg", SECS5).unwrap());
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(report.is_complete(), "{report}");
    assert!(h.snapshot().group("rmg").is_none());
    let began = Instant::now();
    while threads_named("th:rmg:supervi") > 0 && began.elapsed() < Duration::from_secs(3) {
        busy(ms(10));
    }
    assert_eq!(
        threads_named("th:rmg:supervi"),
        0,
        "the supervisor of the removed group still runs {:?} after the remove",
        began.elapsed()
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// `stop_child` of a group during its backoff: a partial shutdown. The group must stay
/// stopped; its supervisor must not start it again when the backoff ends.
#[test]
fn stop_child_during_backoff_is_not_undone_by_the_supervisor() {
    let (log, host) = in_backoff("g", ms(300));
    let h = host.handle();
    let report = h.stop_child("g", SECS5).unwrap();
    assert!(report.is_complete(), "{report}");
    let state_after = group_state(&h, "g");
    let revived = log.seen_within("f:run1", Duration::from_secs(3));
    let snap = h.snapshot();
    assert!(
        !revived && state_after == Some(ServiceState::Stopped),
        "group state right after stop_child: {state_after:?}; f revived: {revived}; now: group {:?}, f {:?}",
        snap.group("g").map(|g| g.state),
        snap.service("g/f").map(|s| s.state)
    );
    // The host's report names every service; f's last run failed, and says so.
    let report = host.stop(SECS5);
    assert!(report.timed_out().is_empty(), "{report}");
    assert!(
        matches!(
            report.service("g/f").map(|s| &s.outcome),
            Some(Outcome::Failed(_))
        ),
        "{report}"
    );
}

/// `restart_child` of a group during its backoff: the group runs again at once. When the
/// backoff ends, the supervisor must not fail on it (StillRunning) nor restart it a second
/// time.
#[test]
fn restart_child_during_backoff_is_not_followed_by_a_stale_restart() {
    let (log, host) = in_backoff("g", ms(300));
    let h = host.handle();
    h.restart_child("g", SECS5).unwrap();
    log.wait_for("f:run1");
    let again = log.seen_within("f:run2", Duration::from_secs(3));
    let snap = h.snapshot();
    let g = snap.group("g").unwrap();
    assert!(
        !again,
        "f was restarted again by the stale supervisor; group {:?} restarts {} last error {:?}",
        g.state,
        g.restarts,
        g.last_error.as_ref().map(ToString::to_string)
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// 20 children of a OneForAll group fail at the same moment: one restart of the group,
/// counted once, not 20 failures against an intensity of 5.
#[test]
fn simultaneous_failures_in_one_for_all_restart_once() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let mut group = Group::new("all")
        .strategy(Strategy::OneForAll)
        .backoff(Backoff::fixed(ms(10)));
    for k in 0..20 {
        let g = gate.clone();
        group = group.add_service(counted(&format!("c{k}"), &log, move |n, ctx| {
            if n == 0 {
                g.wait();
                return Err("all fail together".into());
            }
            ctx.token().wait();
            Ok(())
        }));
    }
    let host = watched(HostBuilder::new(), &log)
        .add_group(group)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    gate.open();
    for k in 0..20 {
        let what = format!("c{k}:run1");
        if !log.seen_within(&what, Duration::from_secs(5)) {
            let snap = host.handle().snapshot();
            let g = snap.group("all").unwrap();
            panic!(
                "{what} never came; host {:?}, group {:?} restarts {}, last error {:?}",
                snap.state,
                g.state,
                g.restarts,
                g.last_error.as_ref().map(ToString::to_string)
            );
        }
    }
    let h = host.handle();
    let began = Instant::now();
    while group_state(&h, "all") != Some(ServiceState::Running) {
        if began.elapsed() > Duration::from_secs(5) {
            let snap = h.snapshot();
            let g = snap.group("all").unwrap();
            panic!(
                "the group never ran again: host {:?}, group {:?} restarts {}, last error {:?}; events: {:?}",
                snap.state,
                g.state,
                g.restarts,
                g.last_error.as_ref().map(ToString::to_string),
                log.with_prefix("group")
            );
        }
        busy(ms(5));
    }
    // Give a stale second restart the chance to show.
    let twice = log.seen_within("c0:run2", ms(500));
    assert_eq!(host.state(), HostState::Running);
    assert!(!twice, "the group restarted its children twice");
    assert_eq!(h.snapshot().group("all").unwrap().restarts, 1);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- the logger is user code (host invariant 1) ----

/// Captures every log line; for lines containing the needle of [`LOCK_PROBE`], asks a
/// snapshot of that host from another thread and records the line if the snapshot could not
/// get the lifecycle lock within 2 s (the line was logged with `ctl` held).
struct Capture;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOCK_PROBE: Mutex<Vec<(String, HostHandle)>> = Mutex::new(Vec::new());
static LOGGED_UNDER_LOCK: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        let probes: Vec<HostHandle> = LOCK_PROBE
            .lock()
            .unwrap()
            .iter()
            .filter(|(needle, _)| line.contains(needle.as_str()))
            .map(|(_, h)| h.clone())
            .collect();
        for h in probes {
            let (tx, rx) = std::sync::mpsc::channel();
            spawn("lock-probe", move || {
                let _ = h.snapshot();
                let _ = tx.send(());
            });
            if rx.recv_timeout(Duration::from_secs(2)).is_err() {
                LOGGED_UNDER_LOCK.lock().unwrap().push(line.clone());
            }
        }
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

fn install_logger() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        static LOGGER: Capture = Capture;
        log::set_logger(&LOGGER).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn probe_lock_on(needle: &str, h: &HostHandle) {
    LOCK_PROBE
        .lock()
        .unwrap()
        .push((needle.to_owned(), h.clone()));
}

fn under_lock(needle: &str) -> Vec<String> {
    LOGGED_UNDER_LOCK
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

fn lines_with(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// The supervisor's "a child failed ... restarting" line is logged with `ctl` held (a
/// temporary guard in the macro's arguments): a logger that reads the host deadlocks it.
#[test]
fn supervisor_logs_without_the_lifecycle_lock() {
    install_logger();
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let host = backoff_group_named("lockw", &log, &trigger, ms(10))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    probe_lock_on("group `lockw` (", &host.handle());
    trigger.open();
    log.wait_for("f:run1");
    assert!(!lines_with("group `lockw` (").is_empty());
    let held = under_lock("group `lockw` (");
    assert!(
        held.is_empty(),
        "logged with the lifecycle lock held: {held:?}"
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// "service `...` ended and left the tree" is logged inside `sweep`, under `ctl`.
#[test]
fn sweep_logs_without_the_lifecycle_lock() {
    install_logger();
    let gate = Gate::new();
    let _open = gate.opener();
    let g = gate.clone();
    let host = HostBuilder::new()
        .group("locks", |grp| {
            grp.add_service(
                Service::background("t", move |_| {
                    g.wait();
                    Ok(())
                })
                .restart(RestartType::Transient),
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    probe_lock_on("`locks/t` ended", &h);
    gate.open();
    eventually("t leaves the tree", || {
        h.snapshot().service("locks/t").is_none()
    });
    eventually("the line is logged", || {
        !lines_with("`locks/t` ended").is_empty()
    });
    let held = under_lock("`locks/t` ended");
    assert!(
        held.is_empty(),
        "logged with the lifecycle lock held: {held:?}"
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// Failure text with line breaks, through a group's restart and failure: every log line and
/// every error display stays on one line.
#[test]
fn failure_text_with_newlines_stays_on_one_line() {
    install_logger();
    let host = HostBuilder::new()
        .on_failure(threadhost::Policy::Ignore)
        .group("nl", |g| {
            g.intensity(1, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1)))
                .add_service(
                    Service::background("x", |ctx| {
                        ctx.host().started().wait();
                        Err("line1\nFORGED line2\r\n".into())
                    })
                    .on_failure(threadhost::Policy::StopHost),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    eventually("nl fails", || {
        group_state(&h, "nl") == Some(ServiceState::Failed)
    });
    let lines = lines_with("FORGED");
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            !l.contains('\n') && !l.contains('\r'),
            "raw line break in {l:?}"
        );
    }
    let g = h
        .snapshot()
        .group("nl")
        .unwrap()
        .last_error
        .clone()
        .unwrap();
    assert!(!g.to_string().contains('\n'), "{g}");
    let report = host.stop(SECS5);
    assert!(!report.to_string().contains('\n'), "{report}");
}

// ---- escalation ----

fn chain(log: &Events) -> HostBuilder {
    let c = Group::new("C")
        .intensity(1, Duration::from_secs(60))
        .backoff(Backoff::fixed(ms(1)))
        .add_service(counted("s", log, |_, ctx| {
            // After the host's start (see `a_child_that_failed_during_the_host_start...`).
            ctx.host().started().wait();
            Err("s always fails".into())
        }));
    let b = Group::new("B")
        .intensity(1, Duration::from_secs(60))
        .backoff(Backoff::fixed(ms(1)))
        .add_group(c);
    let a = Group::new("A")
        .intensity(1, Duration::from_secs(60))
        .backoff(Backoff::fixed(ms(1)))
        .add_group(b);
    watched(HostBuilder::new(), log).add_group(a)
}

/// root ← A ← B ← C: C exceeds, B restarts it, ... A exceeds: the host stops with a failure
/// naming `A`.
#[test]
fn escalation_chain_stops_the_host_naming_the_top_group() {
    let log = Events::new();
    let host = chain(&log).build().unwrap();
    let result = within(Duration::from_secs(20), "the escalation", || host.run());
    match result {
        Err(Error::ServiceFailed {
            service, failure, ..
        }) => {
            assert_eq!(&*service, "A");
            let text = failure.to_string();
            assert!(text.contains("group `A` exceeded"), "{text}");
        }
        other => panic!("expected ServiceFailed naming A, got {other:?}"),
    }
}

use common::within;

/// In the chain, each restart of a group by its parent should give the restarted group a
/// fresh restart history (OTP: a restarted supervisor is a new process): 2 runs of `s` per
/// incarnation of C, 2 of C per B, 2 of B per A: 8 runs. A group that keeps its exhausted
/// history fails at the first failure after its restart.
#[test]
fn a_restarted_group_gets_a_fresh_restart_history() {
    let log = Events::new();
    let host = chain(&log).build().unwrap();
    let _ = within(Duration::from_secs(20), "the escalation", || host.run());
    let runs = log.with_prefix("s:run").len();
    assert_eq!(runs, 8, "s ran {runs} times");
}

// ---- 2. every path ----

/// The body of a service started early adds a service while the host is still starting: the
/// add waits for the start, then succeeds. (The body waits until the start has moved on to
/// `slow`: right after its own start reply it may be refused, see
/// `add_from_a_fresh_body_during_the_host_start_is_never_refused`.)
#[test]
fn add_from_a_body_during_the_host_start() {
    let log = Events::new();
    let l = log.clone();
    let slow_starts = Probe::new();
    let p = slow_starts.clone();
    let host = HostBuilder::new()
        .background("early", move |ctx| {
            p.expect("slow's start hook runs");
            let r = ctx
                .host()
                .add_service("", Service::background("added", idle), SECS5);
            l.push(format!("add:{:?}", r.map_err(|e| e.to_string())));
            ctx.token().wait();
            Ok(())
        })
        .add_service(Service::hosted(
            "slow",
            Rec::new("slow", &log)
                .on("start", Action::Signal(slow_starts.clone()))
                .on("start", Action::Busy(ms(300))),
        ))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("add:Ok(())");
    assert_eq!(
        service_state(&host.handle(), "added"),
        Some(ServiceState::Running)
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert!(report.service("added").is_some(), "{report}");
}

/// Adds and removes while the host's stop runs (held by a slow stop hook) are refused at
/// once with InvalidState (Stopping).
#[test]
fn changes_during_the_host_stop_are_refused() {
    let gate = Gate::new();
    let _open = gate.opener();
    let in_stop = Probe::new();
    let log = Events::new();
    let host = HostBuilder::new()
        .group("g", |g| g.background("a", idle))
        .hosted(
            "slow",
            Rec::new("slow", &log)
                .on("stop", Action::Signal(in_stop.clone()))
                .on("stop", Action::Block(gate.clone())),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let stopper = spawn("stopper", move || host.stop(SECS5));
    in_stop.expect("the stop reaches slow");
    let (r, took) = timed(|| h.add_service("g", Service::background("b", idle), SECS5));
    assert!(
        matches!(
            r,
            Err(Error::InvalidState {
                state: HostState::Stopping,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(took < ms(500), "{took:?}");
    let (r, took) = timed(|| h.remove("g/a", SECS5));
    assert!(matches!(r, Err(Error::InvalidState { .. })), "{r:?}");
    assert!(took < ms(500), "{took:?}");
    let (r, _) = timed(|| h.add_group("", Group::new("late"), SECS5));
    assert!(matches!(r, Err(Error::InvalidState { .. })), "{r:?}");
    let text = h.restart_child("g", SECS5).unwrap_err().to_string();
    assert!(text.contains("stopping"), "{text}");
    gate.open();
    let report = stopper.join().unwrap();
    assert!(report.is_clean(), "{report}");
    // After the stop: refused too.
    let r = h.add_service("", Service::background("after", idle), SECS5);
    assert!(
        matches!(
            r,
            Err(Error::InvalidState {
                state: HostState::Stopped,
                ..
            })
        ),
        "{r:?}"
    );
}

/// An add to a group whose supervisor is waiting out its backoff: it runs; the restart that
/// follows still happens; everything runs and stops cleanly.
#[test]
fn add_to_a_group_in_backoff() {
    let (log, host) = in_backoff("g", ms(300));
    let h = host.handle();
    h.add_service(
        "g",
        counted("new", &log, |_, ctx| {
            ctx.token().wait();
            Ok(())
        }),
        SECS5,
    )
    .unwrap();
    log.wait_for("f:run1");
    log.wait_for("group g Running");
    let snap = h.snapshot();
    assert_eq!(snap.service("g/new").unwrap().state, ServiceState::Running);
    assert_eq!(log.with_prefix("new:run").len(), 1, "new was restarted");
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A hosted service whose stop hook blocks on `gate` (ignores its token).
fn hangs_in_stop(name: &str, log: &Events, gate: &Gate) -> Rec {
    Rec::new(name, log).on("stop", Action::Block(gate.clone()))
}

/// A child hung in its stop hook, removed with a short deadline: returns by the deadline
/// (+ the one grace + scheduling), names it TimedOut, and it leaves the tree. Restart of a
/// child whose thread still runs: StillRunning. Once the thread ends, everything is clean.
#[test]
fn hung_child_removed_by_deadline_and_restart_refused_while_it_runs() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.hosted("hung", hangs_in_stop("hung", &log, &gate))
                .hosted("h2", hangs_in_stop("h2", &log, &gate))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    // stop_child leaves it in the tree, timed out: a restart is refused while it runs.
    let (report, took) = timed(|| h.stop_child("g/h2", ms(200)).unwrap());
    assert_within(took, ms(200) + MARGIN, "stop_child");
    assert!(
        matches!(report.service("g/h2").unwrap().outcome, Outcome::TimedOut),
        "{report}"
    );
    let err = h.restart_child("g/h2", SECS5).unwrap_err();
    assert!(
        matches!(&err, Error::StillRunning { service } if &**service == "g/h2"),
        "{err:?}"
    );
    let (report, took) = timed(|| h.remove("g/hung", ms(200)).unwrap());
    assert_within(took, ms(200) + MARGIN, "remove");
    assert!(
        matches!(report.service("g/hung").unwrap().outcome, Outcome::TimedOut),
        "{report}"
    );
    assert!(h.snapshot().service("g/hung").is_none());
    gate.open();
    // Its thread ended: the restart now works.
    let began = Instant::now();
    loop {
        match h.restart_child("g/h2", SECS5) {
            Ok(()) => break,
            Err(Error::StillRunning { .. }) if began.elapsed() < PATIENCE => busy(ms(10)),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(service_state(&h, "g/h2"), Some(ServiceState::Running));
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

use common::assert_within;

/// A hosted service whose start hook does `what`.
fn start_does(name: &str, log: &Events, what: Action) -> Service {
    Service::hosted(name, Rec::new(name, log).on("start", what))
}

/// An add whose start hook fails, panics, or hangs past the add's deadline: rolled back, the
/// error names the service by path, nothing is left in the snapshot, and the name is free
/// again.
#[test]
fn failed_adds_are_rolled_back() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let host = HostBuilder::new()
        .group("g", |g| g.background("keep", idle))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let err = h
        .add_service("g", start_does("x", &log, Action::Fail), SECS5)
        .unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "g/x"),
        "{err:?}"
    );
    let err = h
        .add_service("g", start_does("x", &log, Action::Panic), SECS5)
        .unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, failure } if &**service == "g/x" && failure.is_panic()),
        "{err:?}"
    );
    let (r, took) = timed(|| {
        h.add_service(
            "g",
            start_does("x", &log, Action::Block(gate.clone())),
            ms(300),
        )
    });
    assert_within(took, ms(300) + MARGIN, "add with a hung start");
    let err = r.unwrap_err();
    assert!(
        matches!(&err, Error::StartTimeout { service } if &**service == "g/x"),
        "{err:?}"
    );
    // A group whose second child fails: the first is stopped again, the group goes.
    let err = h
        .add_group(
            "g",
            Group::new("sub")
                .add_service(start_does("ok", &log, Action::Done))
                .add_service(start_does("bad", &log, Action::Fail)),
            SECS5,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { service, .. } if &**service == "g/sub/bad"),
        "{err:?}"
    );
    assert!(
        log.contains("ok:stop"),
        "the started child was not stopped: {:?}",
        log.names()
    );
    let snap = h.snapshot();
    assert!(
        snap.service("g/x").is_none() && snap.group("g/sub").is_none(),
        "{snap:?}"
    );
    assert_eq!(snap.group("g").unwrap().children.len(), 1, "{snap:?}");
    gate.open();
    h.add_service("g", Service::background("x", idle), SECS5)
        .unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// The host stops while a runtime add's start hook hangs (ignoring its token), the add
/// having no deadline: the stop returns by its own deadline (+ grace), the add returns
/// InvalidState promptly.
#[test]
fn host_stop_while_an_added_start_hook_hangs() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let in_start = Probe::new();
    let host = HostBuilder::new().background("a", idle).build().unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let svc = Service::hosted(
        "x",
        Rec::new("x", &log)
            .on("start", Action::Signal(in_start.clone()))
            .on("start", Action::Block(gate.clone())),
    );
    let adder = spawn("adder", move || {
        timed(|| h.add_service("", svc, threadhost::Deadline::NEVER))
    });
    in_start.expect("x starts");
    let (report, took) = timed(|| host.stop(ms(500)));
    assert_within(took, ms(500) + MARGIN, "host.stop");
    assert!(report.is_complete(), "{report}");
    let (r, took) = adder.join().unwrap();
    assert!(matches!(r, Err(Error::InvalidState { .. })), "{r:?}");
    assert!(took < ms(500) + MARGIN, "add returned after {took:?}");
}

/// The host is dropped while a supervisor restarts a child (its start hook on the restart
/// waits on its token): the drop returns promptly.
#[test]
fn host_dropped_while_a_supervisor_restarts() {
    let log = Events::new();
    struct SlowRestart(Events, AtomicUsize);
    impl threadhost::BackgroundService for SlowRestart {
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            if self.1.load(Ordering::SeqCst) > 0 {
                self.0.push("restart:start");
                let _ = ctx.token().wait_timeout(PATIENCE);
            }
            Ok(())
        }
        fn run(&mut self, ctx: &Context) -> ServiceResult {
            ctx.host().started().wait();
            if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err("fail once".into());
            }
            ctx.token().wait();
            Ok(())
        }
    }
    let host = HostBuilder::new()
        .shutdown_timeout(Duration::from_secs(3))
        .group("g", |g| {
            g.backoff(Backoff::fixed(ms(1)))
                .background_service("r", SlowRestart(log.clone(), AtomicUsize::new(0)))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    log.wait_for("restart:start");
    let ((), took) = timed(|| drop(host));
    assert!(took < Duration::from_secs(2), "drop took {took:?}");
}

// ---- 3. N at once ----

/// 50 threads each add and remove children of their own, concurrently, 10 rounds each: all
/// succeed, nothing is left, no thread is left.
#[test]
fn fifty_threads_add_and_remove_concurrently() {
    let host = HostBuilder::new().group("many", |g| g).build().unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let deadline = Duration::from_secs(60);
    let workers: Vec<_> = (0..50)
        .map(|t| {
            let h = h.clone();
            spawn("adder", move || {
                for round in 0..10 {
                    let name = format!("w{t}-{round}");
                    if t % 2 == 0 {
                        h.add_service("many", Service::background(&name, idle), deadline)
                            .map_err(|e| format!("add {name}: {e}"))?;
                        let r = h
                            .remove(&format!("many/{name}"), deadline)
                            .map_err(|e| format!("remove {name}: {e}"))?;
                        if !r.is_clean() {
                            return Err(format!("remove {name}: {r}"));
                        }
                    } else {
                        let g = Group::new(&name).background("s", idle);
                        h.add_group("many", g, deadline)
                            .map_err(|e| format!("add group {name}: {e}"))?;
                        let r = h
                            .remove(&format!("many/{name}"), deadline)
                            .map_err(|e| format!("remove group {name}: {e}"))?;
                        if !r.is_clean() {
                            return Err(format!("remove group {name}: {r}"));
                        }
                    }
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap().unwrap();
    }
    let snap = h.snapshot();
    assert_eq!(snap.services.len(), 0, "{:?}", snap.services);
    assert_eq!(snap.group("many").unwrap().children.len(), 0);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// Start and stop order with nested groups and `depends_on` between groups, concurrently
/// and not: dependencies first, then stopped in reverse.
#[test]
fn nested_groups_with_dependencies_start_and_stop_in_order() {
    for (start_c, stop_c) in [(false, false), (true, true), (true, false), (false, true)] {
        let log = Events::new();
        let host = HostBuilder::new()
            .start_concurrently(start_c)
            .stop_concurrently(stop_c)
            .hosted("web", Rec::new("web", &log))
            .add_service(Service::hosted("web2", Rec::new("web2", &log)).depends_on("api"))
            .group("api", |g| {
                g.depends_on("db")
                    .hosted("x", Rec::new("x", &log))
                    .group("inner", |i| {
                        i.hosted("y", Rec::new("y", &log))
                            .add_service(Service::hosted("z", Rec::new("z", &log)).depends_on("y"))
                    })
            })
            .group("db", |g| {
                g.add_service(Service::hosted("b", Rec::new("b", &log)).depends_on("a"))
                    .hosted("a", Rec::new("a", &log))
            })
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        let report = host.stop(SECS5);
        assert!(report.is_clean(), "{report}");
        let names = log.names();
        let at = |w: &str| {
            names
                .iter()
                .position(|n| n == w)
                .unwrap_or_else(|| panic!("{w} missing: {names:?}"))
        };
        let mode = format!("start_concurrently {start_c}, stop_concurrently {stop_c}: {names:?}");
        // db before api, inside db a before b, inside inner y before z, api before web2;
        // in each start phase, and in reverse in each stop phase.
        let before = [
            ("a", "b"),
            ("b", "x"),
            ("b", "y"),
            ("y", "z"),
            ("x", "web2"),
            ("z", "web2"),
        ];
        for phase in ["starting", "start", "started"] {
            for (first, then) in before {
                let (f, t) = (format!("{first}:{phase}"), format!("{then}:{phase}"));
                assert!(at(&f) < at(&t), "{f} after {t}; {mode}");
            }
        }
        for phase in ["stopping", "stop", "stopped"] {
            for (first, then) in before {
                let (f, t) = (format!("{then}:{phase}"), format!("{first}:{phase}"));
                assert!(at(&f) < at(&t), "{f} after {t}; {mode}");
            }
        }
    }
}

// ---- 4. sizes at max ----

#[test]
fn names_of_256_bytes_and_257() {
    let long_g = "g".repeat(256);
    let long_s = "s".repeat(256);
    let host = HostBuilder::new()
        .group(&long_g, |g| g.background(&long_s, idle))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let path = format!("{long_g}/{long_s}");
    assert_eq!(service_state(&h, &path), Some(ServiceState::Running));
    h.restart_child(&path, SECS5).unwrap();
    let report = h.remove(&path, SECS5).unwrap();
    assert!(report.is_clean(), "{report}");
    let err = h
        .add_service(&long_g, Service::background(&"t".repeat(257), idle), SECS5)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
    assert!(err.to_string().contains("256"), "{err}");
    let err = HostBuilder::new()
        .group(&"g".repeat(257), |g| g)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// 50 nested groups of 256-byte names, a service at the bottom: paths of 12 KiB work.
#[test]
fn fifty_nested_groups() {
    let mut g = Group::new(&"n".repeat(256)).background("leaf", idle);
    for k in 0..49 {
        g = Group::new(&format!("{k:0>256}")).add_group(g);
    }
    let host = HostBuilder::new().add_group(g).build().unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let snap = h.snapshot();
    assert_eq!(snap.groups.len(), 50);
    let leaf = snap.services[0].name.clone();
    assert_eq!(leaf.split('/').count(), 51);
    h.restart_child(&leaf, SECS5).unwrap();
    let mid: String = leaf.split('/').take(25).collect::<Vec<_>>().join("/");
    let _ = h.stop_child(&mid, SECS5).unwrap();
    assert_eq!(service_state(&h, &leaf), Some(ServiceState::Stopped));
    h.restart_child(&mid, SECS5).unwrap();
    assert_eq!(service_state(&h, &leaf), Some(ServiceState::Running));
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// 1,000 services in 100 groups start, and stop by a 10 s deadline.
#[test]
fn thousand_services_in_a_hundred_groups() {
    let mut b = HostBuilder::new().stop_concurrently(true);
    for g in 0..100 {
        b = b.group(&format!("g{g}"), |mut grp| {
            for s in 0..10 {
                grp = grp.background(&format!("s{s}"), idle);
            }
            grp
        });
    }
    let host = b.build().unwrap();
    host.start(Duration::from_secs(60)).unwrap();
    assert_eq!(host.handle().snapshot().services.len(), 1000);
    let (report, took) = timed(|| host.stop(Duration::from_secs(10)));
    assert_within(took, Duration::from_secs(10) + MARGIN, "stop");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.services().len(), 1000);
}

/// Intensity at its limits and `Duration::MAX` budgets on a group.
#[test]
fn intensity_limits_and_duration_max() {
    use threadhost::{MAX_RESTARTS, UNLIMITED_RESTARTS};
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let (t1, t2) = (trigger.clone(), trigger.clone());
    let host = watched(HostBuilder::new(), &log)
        .group("unl", |g| {
            g.intensity(UNLIMITED_RESTARTS, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1)))
                .start_timeout(Duration::MAX)
                .stop_timeout(Duration::MAX)
                .add_service(counted("f", &log, move |n, ctx| {
                    t1.wait();
                    if n < 30 {
                        return Err("again".into());
                    }
                    ctx.token().wait();
                    Ok(())
                }))
        })
        .group("max", |g| {
            g.intensity(MAX_RESTARTS, Duration::MAX)
                .backoff(Backoff::fixed(Duration::MAX))
                .add_service(counted("m", &log, move |n, ctx| {
                    t2.wait();
                    if n == 0 {
                        return Err("once, then wait for ever".into());
                    }
                    ctx.token().wait();
                    Ok(())
                }))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    log.wait_for("f:run30");
    log.wait_for("group max Restarting");
    let h = host.handle();
    eventually("unl runs", || {
        group_state(&h, "unl") == Some(ServiceState::Running)
    });
    assert_eq!(h.snapshot().group("unl").unwrap().restarts, 30);
    let (report, took) = timed(|| host.stop(SECS5));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(report.is_complete(), "{report}");
    let err = HostBuilder::new()
        .group("x", |g| {
            g.group("y", |g| {
                g.intensity(MAX_RESTARTS + 1, Duration::from_secs(1))
            })
        })
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("x/y"), "{err}");
    let err = HostBuilder::new()
        .group("x", |g| g.intensity(1, Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`x`"), "{err}");
}

// ---- 5. outside text ----

/// Bad names at build time and at runtime: InvalidOption naming the child, the Display on
/// one line.
#[test]
fn bad_names_are_refused_clearly() {
    for bad in ["a/b", "", "x\ny", "nul\0", "tab\t", "/", "sep\u{2028}"] {
        let err = HostBuilder::new()
            .group("g", |g| g.background(bad, idle))
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::InvalidOption { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(text.contains("in `g`"), "{bad:?}: {text}");
        assert!(
            !text.contains(['\n', '\0', '\t', '\u{2028}']),
            "{bad:?}: {text:?}"
        );
        let err = HostBuilder::new().group(bad, |g| g).build().unwrap_err();
        assert!(
            matches!(err, Error::InvalidOption { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(
            !err.to_string().contains(['\n', '\0', '\t', '\u{2028}']),
            "{err:?}"
        );
    }
    let host = HostBuilder::new()
        .group("g", |g| g)
        .background("svc", idle)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    for bad in ["a/b", "", "x\ny"] {
        let err = h
            .add_service("g", Service::background(bad, idle), SECS5)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidOption { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(!err.to_string().contains('\n'), "{err:?}");
        let err = h.add_group("g", Group::new(bad), SECS5).unwrap_err();
        assert!(
            matches!(err, Error::InvalidOption { .. }),
            "{bad:?}: {err:?}"
        );
    }
    assert!(h.snapshot().group("g").unwrap().children.is_empty());
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// Bad paths: each a clear error naming the path, on one line.
#[test]
fn bad_paths_are_refused_clearly() {
    let host = HostBuilder::new()
        .group("g", |g| g.background("s", idle))
        .background("svc", idle)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    for path in [
        "g/", "g//s", "/g", "//", "nope", "g/nope", "svc/x", "g/s/x", "x\ny", "g/s/",
    ] {
        for (op, r) in [
            ("remove", h.remove(path, SECS5).map(|_| ())),
            ("stop_child", h.stop_child(path, SECS5).map(|_| ())),
            ("restart_child", h.restart_child(path, SECS5)),
            (
                "add_service",
                h.add_service(path, Service::background("n", idle), SECS5),
            ),
        ] {
            let err = r.expect_err(&format!("{op}({path:?})"));
            let text = err.to_string();
            assert!(
                matches!(
                    err,
                    Error::UnknownChild { .. } | Error::InvalidOption { .. }
                ),
                "{op}({path:?}): {err:?}"
            );
            assert!(!text.contains('\n'), "{op}({path:?}): {text:?}");
            assert!(
                text.contains(&path.escape_debug().to_string()) || text.contains(path),
                "{op}({path:?}) does not name the path: {text}"
            );
        }
    }
    // A group path that names a service, and the root.
    let err = h
        .add_service("svc", Service::background("n", idle), SECS5)
        .unwrap_err();
    assert!(err.to_string().contains("names a service"), "{err}");
    let err = h.remove("", SECS5).unwrap_err();
    assert!(err.to_string().contains("host itself"), "{err}");
    let snap = h.snapshot();
    assert_eq!(snap.services.len(), 2, "{:?}", snap.services);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- 6. leaks ----

/// 1,000 add + remove cycles (services and groups): no record, group or thread is left.
#[test]
fn thousand_add_remove_cycles_leave_nothing() {
    let host = HostBuilder::new()
        .group("lk", |g| g.background("keep", idle))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let base_threads = threads_named("th:leak");
    for k in 0..1000 {
        if k % 2 == 0 {
            h.add_service("lk", Service::background("leak", idle), SECS5)
                .unwrap();
            let r = h.remove("lk/leak", SECS5).unwrap();
            assert!(r.is_clean(), "{r}");
        } else {
            let g = Group::new("leakg").background("leaks", idle);
            h.add_group("lk", g, SECS5).unwrap();
            h.restart_child("lk/leakg", SECS5).unwrap();
            let r = h.remove("lk/leakg", SECS5).unwrap();
            assert!(r.is_clean(), "{r}");
        }
    }
    let snap = h.snapshot();
    assert_eq!(snap.services.len(), 1);
    assert_eq!(snap.groups.len(), 1);
    // A joined thread can still be listed by the kernel for a moment after the join.
    eventually("the removed services' threads to be gone", || {
        threads_named("th:leak") == base_threads
    });
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A group that fails and restarts 300 times (unlimited intensity): no supervisor or
/// service thread is left behind.
#[test]
fn many_group_restarts_leave_no_thread() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let t = trigger.clone();
    let host = watched(HostBuilder::new(), &log)
        .group("rs", |g| {
            g.intensity(threadhost::UNLIMITED_RESTARTS, Duration::from_secs(1))
                .backoff(Backoff::fixed(ms(1)))
                .add_service(counted("rsf", &log, move |n, ctx| {
                    t.wait();
                    if n < 300 {
                        return Err("again".into());
                    }
                    ctx.token().wait();
                    Ok(())
                }))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    log.wait_for("rsf:run300");
    let h = host.handle();
    eventually("rs runs", || {
        group_state(&h, "rs") == Some(ServiceState::Running)
    });
    eventually("no supervisor left", || {
        threads_named("th:rs:supervis") == 0
    });
    assert_eq!(threads_named("th:rsf"), 1);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- 7. listeners ----

/// A group's state changes reach the listeners: start, restart, partial stop, restart by
/// hand, failure past its intensity.
#[test]
fn group_state_changes_reach_listeners() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let t = trigger.clone();
    let host = watched(HostBuilder::new(), &log)
        .on_failure(threadhost::Policy::Ignore)
        .group("lis", |g| {
            g.intensity(1, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1)))
                .add_service(
                    counted("lf", &log, move |n, ctx| {
                        t.wait();
                        if n == 0 || n >= 2 {
                            return Err("fails".into());
                        }
                        ctx.token().wait();
                        Ok(())
                    })
                    .on_failure(threadhost::Policy::StopHost),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    trigger.open();
    log.wait_for("lf:run1");
    log.wait_for("group lis Running");
    let _ = h.stop_child("lis", SECS5).unwrap();
    h.restart_child("lis", SECS5).unwrap();
    // run2 fails, run3 fails: past the intensity of 1.
    log.wait_for("group lis Failed");
    let seq: Vec<String> = log
        .with_prefix("group lis ")
        .into_iter()
        .map(|s| s.trim_start_matches("group lis ").to_owned())
        .collect();
    // In order (a restart of the stopped group adds a spurious Stopping/Stopped: see
    // `restarting_a_stopped_group_does_not_report_it_stopping_again`).
    let expected = [
        "Starting",
        "Running",
        "Restarting",
        "Running",
        "Stopping",
        "Stopped",
        "Starting",
        "Running",
        "Failed",
    ];
    let mut at = 0;
    for e in expected {
        at += seq[at..]
            .iter()
            .position(|s| s == e)
            .unwrap_or_else(|| panic!("{e} missing after #{at}: {seq:?}"))
            + 1;
    }
    assert_eq!(seq.last().map(String::as_str), Some("Failed"), "{seq:?}");
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

// ---- more calls from the library's own threads ----

/// A queue job inside a group removes the group: in progress at once; the queue stops (the
/// job that asked finishes), the group goes; a second job restarting the group meanwhile
/// gets a sensible answer; the host stops cleanly.
#[test]
fn queue_job_removes_its_own_group() {
    let handle: Arc<Mutex<Option<HostHandle>>> = Arc::new(Mutex::new(None));
    let seen = Events::new();
    let (hs, s2) = (Arc::clone(&handle), seen.clone());
    let (queue, producer) = threadhost::WorkQueue::<u32>::builder("jobs")
        .workers(2)
        .build(move |item, _token| {
            let h = hs.lock().unwrap().clone().unwrap();
            let (r, took) = if item == 0 {
                timed(|| h.remove("qg", SECS5).map(|r| r.is_in_progress()))
            } else {
                timed(|| h.restart_child("qg", SECS5).map(|()| true))
            };
            s2.push(format!(
                "job{item}:{:?}:{}",
                r.map_err(|e| e.to_string()),
                took < ms(500)
            ));
            Ok(())
        })
        .unwrap();
    let host = HostBuilder::new()
        .background("other", idle)
        .group("qg", |g| g.add_service(queue))
        .build()
        .unwrap();
    *handle.lock().unwrap() = Some(host.handle());
    host.start(SECS5).unwrap();
    producer.send(0).unwrap();
    seen.wait_for("job0:Ok(true):true");
    let h = host.handle();
    eventually("qg removed", || h.snapshot().group("qg").is_none());
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A `started` lifetime callback removes a group; a `stopping` one tries an add (refused).
#[test]
fn lifetime_callbacks_change_the_tree() {
    let log = Events::new();
    let host = HostBuilder::new()
        .group("lg", |g| g.background("s", idle))
        .background("other", idle)
        .build()
        .unwrap();
    let h = host.handle();
    let (h1, l1) = (h.clone(), log.clone());
    let _r1 = h.started().on_stop(move |_| {
        let (r, took) = timed(|| h1.remove("lg", SECS5));
        l1.push(format!(
            "started:{:?}:{}",
            r.map(|r| r.is_clean()).map_err(|e| e.to_string()),
            took < ms(500)
        ));
    });
    let (h2, l2) = (h.clone(), log.clone());
    let _r2 = h.stopping().on_stop(move |_| {
        let (r, took) = timed(|| h2.add_service("", Service::background("late", idle), SECS5));
        l2.push(format!(
            "stopping:{}:{}",
            matches!(r, Err(Error::InvalidState { .. })),
            took < ms(500)
        ));
    });
    let ((), took) = timed(|| host.start(SECS5).unwrap());
    assert!(took < Duration::from_secs(2), "{took:?}");
    log.wait_for("started:Ok(true):true");
    assert!(h.snapshot().group("lg").is_none());
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    log.wait_for("stopping:true:true");
}

/// `restart_child` of a group stopped by `stop_child`: the listeners see it start again, not
/// stop a second time (Stopped → Stopping → Stopped → Starting → Running).
#[test]
fn restarting_a_stopped_group_does_not_report_it_stopping_again() {
    let log = Events::new();
    let host = watched(HostBuilder::new(), &log)
        .group("rsg", |g| g.background("s", idle))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let _ = h.stop_child("rsg", SECS5).unwrap();
    h.restart_child("rsg", SECS5).unwrap();
    log.wait_for("group rsg Running");
    eventually("the second Running", || {
        log.with_prefix("group rsg Running").len() == 2
    });
    let seq = log.with_prefix("group rsg ");
    assert_eq!(
        seq,
        [
            "group rsg Starting",
            "group rsg Running",
            "group rsg Stopping",
            "group rsg Stopped",
            "group rsg Starting",
            "group rsg Running"
        ],
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- more hostile cases ----

/// A body asks for a change while another change holds the sequencer, and that change then
/// stops this very service: firing its token must end its wait for the sequencer (the
/// sequencer now waits for its thread), not leave both waiting until the deadline.
#[test]
fn a_body_waiting_for_the_sequencer_is_released_when_its_own_stop_begins() {
    // Whether the body re-checks before or after its token fires is a race (the last
    // notification it sees is `slow`'s reply): 5 rounds, each bounded by a 1.5 s deadline.
    let deadline = ms(1500);
    let mut bad = Vec::new();
    for round in 0..5 {
        let log = Events::new();
        let slow_in_stop = Probe::new();
        let (p, l) = (slow_in_stop.clone(), log.clone());
        let host = HostBuilder::new()
            .background("b", idle)
            .group("g", |g| {
                g.add_service(Service::background("a", move |ctx| {
                    p.expect("slow's stop hook runs");
                    let (r, took) = timed(|| ctx.host().remove("b", deadline));
                    l.push(format!(
                        "a:remove:{:?}:{took:?}",
                        r.map(|r| r.is_clean()).map_err(|e| e.to_string())
                    ));
                    ctx.token().wait();
                    Ok(())
                }))
                .hosted(
                    "slow",
                    Rec::new("slow", &log)
                        .on("stop", Action::Signal(slow_in_stop.clone()))
                        .on("stop", Action::Busy(ms(100))),
                )
            })
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        let h = host.handle();
        let (report, took) = timed(|| h.remove("g", deadline).unwrap());
        if took >= ms(1400) || !report.is_clean() {
            bad.push(format!(
                "round {round}: remove(g) took {took:?}: {report}; {:?}",
                log.with_prefix("a:")
            ));
        }
        let report = host.stop(SECS5);
        assert!(report.is_complete(), "{report}");
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// An add whose new dependency closes a cycle with a present sibling must be refused, as
/// `build` refuses it: here `y` depends on `x`; `x` is removed and added back depending on
/// `y`.
#[test]
fn an_add_that_closes_a_dependency_cycle_is_refused() {
    let host = HostBuilder::new()
        .background("x", idle)
        .add_service(Service::background("y", idle).depends_on("x"))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let _ = h.remove("x", SECS5).unwrap();
    let r = h.add_service("", Service::background("x", idle).depends_on("y"), SECS5);
    assert!(
        matches!(r, Err(Error::DependencyCycle { .. })),
        "a cycle x -> y -> x was accepted: {r:?}"
    );
    let _ = host.stop(SECS5);
}

/// A service added to a group stopped by `stop_child` (a partial shutdown): the add must not
/// leave a running child in a `Stopped` group whose failures nobody handles (the group
/// ignores failures while stopped: the child's StopHost failure vanishes).
#[test]
fn an_add_to_a_stopped_group_does_not_run_an_unsupervised_child() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let t = trigger.clone();
    let host = watched(HostBuilder::new(), &log)
        .group("sg", |g| g.background("s", idle))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let _ = h.stop_child("sg", SECS5).unwrap();
    let r = h.add_service(
        "sg",
        Service::background("n", move |_| {
            t.wait();
            Err("n fails".into())
        }),
        SECS5,
    );
    if r.is_err() {
        return; // refused: fine
    }
    trigger.open();
    log.wait_for("service sg/n Failed");
    let handled = log.seen_within("host Stopping", ms(500))
        || log.seen_within("group sg Restarting", ms(500));
    let snap = h.snapshot();
    assert!(
        handled,
        "the add ran `n` in the stopped group (group {:?}); its failure reached nobody (host {:?})",
        snap.group("sg").map(|g| g.state),
        snap.state
    );
}

/// Strategies and restart types, as documented: RestForOne restarts the failed child and
/// those after it; a Temporary sibling in a OneForAll restart is stopped and leaves; a
/// Transient child that completes leaves; a Permanent one that completes is restarted.
#[test]
fn strategies_and_restart_types() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let (t1, t2, t3, t4) = (
        trigger.clone(),
        trigger.clone(),
        trigger.clone(),
        trigger.clone(),
    );
    let waits = |n: usize, ctx: &Context| -> ServiceResult {
        let _ = n;
        ctx.token().wait();
        Ok(())
    };
    let host = watched(HostBuilder::new(), &log)
        .group("rfo", |g| {
            g.strategy(Strategy::RestForOne)
                .backoff(Backoff::fixed(ms(1)))
                .add_service(counted("r1", &log, waits))
                .add_service(counted("r2", &log, move |n, ctx| {
                    if n == 0 {
                        t1.wait();
                        return Err("r2 fails".into());
                    }
                    ctx.token().wait();
                    Ok(())
                }))
                .add_service(counted("r3", &log, waits))
        })
        .group("ofa", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .add_service(counted("tmp", &log, waits).restart(RestartType::Temporary))
                .add_service(counted("o2", &log, move |n, ctx| {
                    if n == 0 {
                        t2.wait();
                        return Err("o2 fails".into());
                    }
                    ctx.token().wait();
                    Ok(())
                }))
        })
        .group("types", |g| {
            g.backoff(Backoff::fixed(ms(1)))
                .add_service(
                    counted("tr", &log, move |_, _| {
                        t3.wait();
                        Ok(())
                    })
                    .restart(RestartType::Transient),
                )
                .add_service(
                    counted("pe", &log, move |n, ctx| {
                        t4.wait();
                        if n == 0 {
                            return Ok(());
                        }
                        ctx.token().wait();
                        Ok(())
                    })
                    .restart(RestartType::Permanent),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    log.wait_for("r2:run1");
    log.wait_for("r3:run1");
    log.wait_for("o2:run1");
    log.wait_for("pe:run1");
    let h = host.handle();
    eventually("tr and tmp leave", || {
        let s = h.snapshot();
        s.service("types/tr").is_none() && s.service("ofa/tmp").is_none()
    });
    assert!(!log.contains("r1:run1"), "RestForOne restarted r1");
    assert!(!log.contains("tmp:run1"), "a temporary child was restarted");
    assert!(
        !log.contains("tr:run1"),
        "a transient child that completed was restarted"
    );
    eventually("all run", || {
        ["rfo", "ofa", "types"]
            .iter()
            .all(|g| group_state(&h, g) == Some(ServiceState::Running))
    });
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A group with unlimited intensity whose child failed while the host started: instead of
/// restarting it, the supervisor loops on StillRunning for ever (every backoff), with an
/// error line each time.
#[test]
fn unlimited_group_with_a_child_failed_during_start_does_not_spin() {
    let log = Events::new();
    let host = watched(HostBuilder::new(), &log)
        .group("spin", |g| {
            g.intensity(threadhost::UNLIMITED_RESTARTS, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1)))
                .add_service(counted("sf", &log, fail_first))
        })
        .add_service(Service::background_service("slow", SlowStart(ms(300))))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let ok = log.seen_within("sf:run1", Duration::from_secs(3));
    let snap = host.handle().snapshot();
    let g = snap.group("spin").unwrap();
    assert!(
        ok,
        "sf never ran again; group {:?}, restarts {}, last error {:?}",
        g.state,
        g.restarts,
        g.last_error.as_ref().map(ToString::to_string)
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- systemd STATUS for groups (a child process with a real socket) ----

const SD_CHILD: &str = "TH_TREE_SYSTEMD_CHILD";

/// The child side: a no-op unless `TH_TREE_SYSTEMD_CHILD` is set.
#[test]
fn systemd_child() {
    if std::env::var(SD_CHILD).is_err() {
        return;
    }
    // `run` flushes the listeners (the last STATUS lines) before it returns; a listener
    // requests the stop once the group failed.
    let result = HostBuilder::new()
        .systemd()
        .on_failure(threadhost::Policy::Ignore)
        .on_state_change(|e| {
            if let StateChange::Group {
                to: ServiceState::Failed,
                ..
            } = e.change
            {
                e.host().request_stop();
            }
        })
        .group("sd", |g| {
            g.intensity(1, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1)))
                .add_service(
                    Service::background("x", |ctx| {
                        ctx.host().started().wait();
                        Err("x fails".into())
                    })
                    .on_failure(threadhost::Policy::StopHost),
                )
        })
        .build()
        .unwrap()
        .run();
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

#[test]
fn systemd_status_names_group_restarts_and_failure() {
    use std::os::unix::net::UnixDatagram;
    let path = std::env::temp_dir().join(format!("th-tree-sd-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(ms(200))).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "systemd_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SD_CHILD, "1")
        .env("NOTIFY_SOCKET", &path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    let began = Instant::now();
    let mut buf = [0u8; 4096];
    while began.elapsed() < PATIENCE {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m.contains("STATUS=stopped");
                messages.push(m);
                if done {
                    break;
                }
            }
            Err(_) => {
                // Exited, and nothing more came for a read timeout: all is read.
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
            }
        }
    }
    let status = child.wait().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(status.success(), "{status:?}: {messages:?}");
    let all = messages.join("|");
    assert!(
        all.contains("STATUS=group `sd` restarting: x fails"),
        "{all}"
    );
    assert!(all.contains("STATUS=group `sd` failed: x fails"), "{all}");
    assert!(all.contains("READY=1"), "{all}");
}

// ---- a user's error value: its Drop and Display are user code (host invariant 1) ----

/// An error whose `Drop` (and, with `on_display`, `Display`) reports whether the lifecycle
/// lock was free.
#[derive(Debug)]
struct Probed {
    host: HostHandle,
    seen: std::sync::mpsc::Sender<(&'static str, bool)>,
    on_display: bool,
}

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.on_display {
            let _ = self.seen.send(("display", lock_is_free(&self.host)));
        }
        f.write_str("a probed error")
    }
}

impl std::error::Error for Probed {}

impl Drop for Probed {
    fn drop(&mut self) {
        if !self.on_display {
            let _ = self.seen.send(("drop", lock_is_free(&self.host)));
        }
    }
}

/// A child fails with a probed error, is restarted by its group, and fails again with a
/// plain one: the group's last error, replaced by the supervisor, held the last reference
/// to the first error, and dropped it under `ctl`.
#[test]
fn a_group_drops_a_replaced_failure_outside_the_lock() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .group("pd", |g| {
            g.backoff(Backoff::fixed(ms(1)))
                .add_service(Service::background("f", {
                    let runs = AtomicUsize::new(0);
                    move |ctx| {
                        ctx.host().started().wait();
                        match runs.fetch_add(1, Ordering::SeqCst) {
                            0 => Err(Box::new(Probed {
                                host: ctx.host().clone(),
                                seen: tx.lock().unwrap().clone(),
                                on_display: false,
                            })),
                            1 => Err("plain".into()),
                            _ => {
                                ctx.token().wait();
                                Ok(())
                            }
                        }
                    }
                }))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let (what, free) = rx
        .recv_timeout(PATIENCE)
        .expect("the first error is dropped");
    assert_eq!(what, "drop");
    assert!(free, "a user's error was dropped under the lifecycle lock");
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

/// A group past its intensity formats its child's failure (a user's `Display`) into its own
/// failure under `ctl`.
#[test]
fn a_failing_group_formats_the_failure_outside_the_lock() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .on_failure(threadhost::Policy::Ignore)
        .group("pf", |g| {
            g.intensity(0, Duration::from_secs(60)).add_service(
                Service::background("f", move |ctx| {
                    ctx.host().started().wait();
                    Err(Box::new(Probed {
                        host: ctx.host().clone(),
                        seen: tx.lock().unwrap().clone(),
                        on_display: true,
                    }))
                })
                .on_failure(threadhost::Policy::StopHost),
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    eventually("pf fails", || {
        group_state(&h, "pf") == Some(ServiceState::Failed)
    });
    let seen: Vec<_> = rx.try_iter().collect();
    assert!(
        seen.iter().all(|&(_, free)| free),
        "a user's Display ran under the lifecycle lock: {seen:?}"
    );
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

/// A supervisor's restart fails (the start hook returns a probed error): the supervisor
/// formats the error (`error.to_string()`) under `ctl`.
#[test]
fn a_failed_group_restart_formats_the_error_outside_the_lock() {
    let (tx, rx) = std::sync::mpsc::channel();
    struct FailsRestart {
        runs: usize,
        seen: Mutex<std::sync::mpsc::Sender<(&'static str, bool)>>,
    }
    impl threadhost::BackgroundService for FailsRestart {
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            if self.runs == 1 {
                return Err(Box::new(Probed {
                    host: ctx.host().clone(),
                    seen: self.seen.lock().unwrap().clone(),
                    on_display: true,
                }));
            }
            Ok(())
        }
        fn run(&mut self, ctx: &Context) -> ServiceResult {
            self.runs += 1;
            ctx.host().started().wait();
            if self.runs == 1 {
                return Err("fails once".into());
            }
            ctx.token().wait();
            Ok(())
        }
    }
    let host = HostBuilder::new()
        .on_failure(threadhost::Policy::Ignore)
        .group("pr", |g| {
            g.intensity(1, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1)))
                .add_service(
                    Service::background_service(
                        "f",
                        FailsRestart {
                            runs: 0,
                            seen: Mutex::new(tx),
                        },
                    )
                    .on_failure(threadhost::Policy::StopHost),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    eventually("pr fails", || {
        group_state(&h, "pr") == Some(ServiceState::Failed)
    });
    let seen: Vec<_> = rx.try_iter().collect();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|&(_, free)| free),
        "a user's Display ran under the lifecycle lock: {seen:?}"
    );
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

/// The body of a service that has just started calls `add_service` while the host's start
/// goes on: the change must wait for the start (the sequencer no longer waits for this
/// thread). But `begin_change` refuses while `Record::awaiting` is still set, and the
/// sequencer clears it only when it wakes to read the reply: a body that runs first gets
/// `InvalidState` (Starting). Tried on 150 hosts with two CPU hogs, to make the race show.
#[test]
fn add_from_a_fresh_body_during_the_host_start_is_never_refused() {
    let stop_hogs = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop_hogs);
            spawn("hog", move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut refused = Vec::new();
    for round in 0..150 {
        let log = Events::new();
        let l = log.clone();
        let host = HostBuilder::new()
            .background("early", move |ctx| {
                let r = ctx
                    .host()
                    .add_service("", Service::background("added", idle), SECS5);
                l.push(format!("add:{:?}", r.map_err(|e| e.to_string())));
                ctx.token().wait();
                Ok(())
            })
            .add_service(Service::background_service("slow", SlowStart(ms(20))))
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        eventually("the add returned", || !log.with_prefix("add:").is_empty());
        let r = log.with_prefix("add:").remove(0);
        if r != "add:Ok(())" {
            refused.push(format!("round {round}: {r}"));
        }
        let _ = host.stop(SECS5);
    }
    stop_hogs.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    assert!(
        refused.is_empty(),
        "{} of 150 refused: {refused:?}",
        refused.len()
    );
}

/// A Temporary group ("never restarted: removed from the tree when it ends") that fails past
/// its intensity must leave the tree, as a temporary service does.
#[test]
fn a_failed_temporary_group_leaves_the_tree() {
    let host = HostBuilder::new()
        .add_group(
            Group::new("tg")
                .restart(RestartType::Temporary)
                .intensity(0, Duration::from_secs(60))
                .add_service(Service::background("x", |ctx| {
                    ctx.host().started().wait();
                    Err("x fails".into())
                })),
        )
        .background("other", idle)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let began = Instant::now();
    while h.snapshot().group("tg").is_some() && began.elapsed() < Duration::from_secs(3) {
        busy(ms(5));
    }
    let snap = h.snapshot();
    assert!(
        snap.group("tg").is_none(),
        "the temporary group is still in the tree: {:?}; host {:?}",
        snap.group("tg").map(|g| (g.state, g.children.clone())),
        snap.state
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

/// A Temporary child group of a OneForAll group, when a sibling fails: its services are
/// stopped and leave the tree; the group node must leave too, not stay behind empty.
#[test]
fn a_temporary_child_group_leaves_with_its_services() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let host = watched(HostBuilder::new(), &log)
        .group("ofa2", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .add_group(
                    Group::new("tg")
                        .restart(RestartType::Temporary)
                        .background("inner", idle),
                )
                .add_service(fails_once("f", &log, &trigger))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    log.wait_for("f:run1");
    let h = host.handle();
    eventually("inner leaves", || {
        h.snapshot().service("ofa2/tg/inner").is_none()
    });
    let snap = h.snapshot();
    assert!(
        snap.group("ofa2/tg").is_none(),
        "an empty temporary group is left: {:?}; ofa2's children {:?}",
        snap.group("ofa2/tg").map(|g| g.state),
        snap.group("ofa2").map(|g| g.children.clone())
    );
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- a group removed between a failure and its supervisor ----

static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Records every panic (thread name, message) in [`PANICS`], then runs the default hook.
fn record_panics() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if let Ok(mut p) = PANICS.lock() {
                p.push((thread, format!("{message} at {:?}", info.location())));
            }
            previous(info);
        }));
    });
}

/// An error whose `Drop` says it began, then blocks until `release` opens.
struct SlowDrop {
    began: Probe,
    release: Gate,
}
impl std::fmt::Display for SlowDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an error slow to drop")
    }
}
impl std::fmt::Debug for SlowDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlowDrop")
    }
}
impl std::error::Error for SlowDrop {}
impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.began.set();
        self.release.wait();
    }
}

/// A service gives up (its own restart policy exceeded) and hands its failure to its group;
/// between `body_ended` releasing `ctl` and spawning the supervisor (`act`), the group is
/// removed (here while a user's error value is dropped, which `body_ended` does in that
/// window). `act` then indexes the removed group and panics on the service's thread.
#[test]
fn a_group_removed_before_its_supervisor_spawns_does_not_panic_the_library() {
    record_panics();
    let began = Probe::new();
    let release = Gate::new();
    let _open = release.opener();
    let (b, r) = (began.clone(), release.clone());
    let host = HostBuilder::new()
        .background("other", idle)
        .group("gone", |g| {
            g.add_service(
                Service::background("pnc", {
                    let runs = AtomicUsize::new(0);
                    move |ctx| {
                        ctx.host().started().wait();
                        match runs.fetch_add(1, Ordering::SeqCst) {
                            // Kept as the record's last error, replaced by the next failure.
                            0 => Err(Box::new(SlowDrop {
                                began: b.clone(),
                                release: r.clone(),
                            })),
                            _ => Err("gives up".into()),
                        }
                    }
                })
                .on_failure(threadhost::Policy::Restart {
                    backoff: Backoff::fixed(ms(1)),
                    max_restarts: 1,
                    within: Duration::from_secs(60),
                }),
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    began.expect("the replaced error's drop begins (in body_ended, before act)");
    let h = host.handle();
    let report = h.remove("gone", ms(200)).unwrap();
    assert!(h.snapshot().group("gone").is_none(), "{report}");
    release.open();
    // The service thread now runs `act` for the removed group.
    let began_wait = Instant::now();
    let panicked = loop {
        let p: Vec<_> = PANICS
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.starts_with("th:pnc"))
            .cloned()
            .collect();
        if !p.is_empty() || began_wait.elapsed() > Duration::from_secs(2) {
            break p;
        }
        busy(ms(10));
    };
    assert!(panicked.is_empty(), "the library panicked: {panicked:?}");
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

/// A OneForAll group holding a work queue and a service that fails: the restart stops and
/// starts the queue again (the same `WorkQueue` value: `start` after `stop`, which no host
/// did before groups). Items sent after the restart must run, and the group must keep
/// running. Seen: the restarted queue is closed (`send` fails), and its next stop hook panics
/// in `join_workers` (index out of bounds, queue/mod.rs:1375).
#[test]
fn a_group_restart_refuses_to_restart_its_work_queue_clearly() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let done = Events::new();
    let d = done.clone();
    let (queue, producer) = threadhost::WorkQueue::<u32>::builder("wq")
        .workers(1)
        .build(move |item, _| {
            d.push(format!("job{item}"));
            Ok(())
        })
        .unwrap();
    let host = watched(HostBuilder::new(), &log)
        .on_failure(threadhost::Policy::Ignore)
        .group("qr", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .intensity(2, Duration::from_secs(60))
                .add_service(queue)
                .add_service(
                    fails_once("qf", &log, &trigger)
                        // Its failure goes to the group (the host's policy is Ignore).
                        .on_failure(threadhost::Policy::StopHost),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    producer.send(1).unwrap();
    done.wait_for("job1");
    trigger.open();
    let h = host.handle();
    // The queue's start refuses, naming why; past the intensity the group fails (the host's
    // Ignore policy keeps it running); no panic anywhere.
    common::eventually("the group fails", || {
        group_state(&h, "qr") == Some(ServiceState::Failed)
    });
    let snap = h.snapshot();
    let why = snap
        .group("qr")
        .unwrap()
        .last_error
        .as_ref()
        .unwrap()
        .to_string();
    assert!(why.contains("cannot start again"), "{why}");
    assert!(producer.send(2).is_err());
    let report = host.stop(SECS5);
    assert!(report.timed_out().is_empty(), "{report}");
}

/// The same for a periodic service: ticks go on after its group restarted it.
#[test]
fn a_group_restart_restarts_a_periodic_service() {
    let log = Events::new();
    let trigger = Gate::new();
    let _open = trigger.opener();
    let ticks = Arc::new(AtomicUsize::new(0));
    let k = Arc::clone(&ticks);
    let periodic = threadhost::Periodic::every(ms(5))
        .build("tick", move |_| {
            k.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let host = watched(HostBuilder::new(), &log)
        .group("pr2", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .add_service(periodic)
                .add_service(fails_once("pf", &log, &trigger))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    log.wait_for("pf:run1");
    let h = host.handle();
    eventually("pr2 runs", || {
        group_state(&h, "pr2") == Some(ServiceState::Running)
    });
    let before = ticks.load(Ordering::SeqCst);
    eventually("ticks go on", || ticks.load(Ordering::SeqCst) > before + 3);
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}
