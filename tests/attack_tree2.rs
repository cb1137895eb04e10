//! Second hostile round on the supervision tree: the mechanisms added after the first round
//! (a change cut short by the host's stop and handed over to it, failure epochs, incremental
//! plans, the pre-sent first command, the late grace, service values kept for restarts).
//! Each test is a minimal reproduction; the bugs they found are fixed (RELIABILITY.md, "The
//! supervision tree").

#![cfg(all(feature = "listeners", feature = "queue", feature = "periodic"))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{
    Action, DropCounter, Events, Gate, MARGIN, Probe, Rec, SECS5, eventually, hooks_of, idle,
    lock_is_free, ms, poll, spawn, threads_named, timed,
};
use threadhost::{
    BackgroundService, Backoff, Context, Error, Group, HostBuilder, HostHandle, HostedService,
    Outcome, RestartType, Service, ServiceResult, ServiceState, StateChange, StopReport, Strategy,
};

// ---- helpers ----

/// Adds a listener that records every state change in `log` as
/// `<kind> <path> <From>-><To>` (`host` has no path): what the consistency checks read.
fn watched_transitions(builder: HostBuilder, log: &Events) -> HostBuilder {
    let l = log.clone();
    builder.on_state_change(move |e| match &e.change {
        StateChange::Group { path, from, to, .. } => {
            l.push(format!("group {path} {from:?}->{to:?}"));
        }
        StateChange::Service { name, from, to, .. } => {
            l.push(format!("service {name} {from:?}->{to:?}"));
        }
        StateChange::Host { to, .. } => l.push(format!("host {to:?}")),
        _ => {}
    })
}

/// The outcome of `path` in `report` as a word (`Stopped`, `Failed`, `TimedOut`,
/// `NotStarted`), or `None` if the report does not name it.
fn outcome(report: &StopReport, path: &str) -> Option<&'static str> {
    report.service(path).map(|s| match s.outcome {
        Outcome::Stopped => "Stopped",
        Outcome::Failed(_) => "Failed",
        Outcome::TimedOut => "TimedOut",
        Outcome::NotStarted => "NotStarted",
        _ => "other",
    })
}

/// How many threads of this process are named exactly `name`.
fn threads_exactly(name: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.trim_end() == name)
        .count()
}

// ---- 1. a change cut short by the host's stop: the handover ----

/// A remove stops a hosted service that hangs in its `stopping` hook; the host's stop is
/// requested meanwhile. The remove returns an incomplete report at once; the host's stop
/// resumes the service after `stopping`: `stop` and `stopped` run exactly once each, in
/// order, and the host's report names it Stopped.
#[test]
fn handover_mid_stopping_runs_each_hook_once_in_order() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let inside = Probe::new();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.hosted(
                "h",
                Rec::new("h", &log)
                    .on("stopping", Action::Signal(inside.clone()))
                    .on("stopping", Action::Block(gate.clone()))
                    .on("stopping", Action::Done),
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let remover = spawn("remove", move || h.remove("g", SECS5));
    inside.expect("h in its stopping hook");
    host.handle().request_stop();
    let (removed, took) = timed(|| remover.join().unwrap());
    let removed = removed.expect("remove returns a report");
    assert!(took < MARGIN, "the remove was not cut short: {took:?}");
    assert!(!removed.is_complete(), "{removed}");
    assert!(outcome(&removed, "g/h").is_none(), "{removed}");
    // The host's stop takes it over once the hook returns.
    gate.open();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert_eq!(outcome(&report, "g/h"), Some("Stopped"), "{report}");
    assert_eq!(
        hooks_of(&log, "h"),
        [
            "starting",
            "start",
            "started",
            "stopping",
            "stopping:done",
            "stop",
            "stopped"
        ]
    );
}

/// A remove with a short deadline: the first service to stop overruns it (given up), so
/// the other, not reached by the ordered phases, is told to run its stop hooks alone. The
/// host's stop is requested while it does: the remove is cut short and hands it over. The
/// host's stop then sends it phase commands it never reads (its thread is running its hooks
/// alone, then exits): it is reported Failed, "ended without replying", although every
/// hook of it ran once and succeeded.
#[test]
fn handover_of_a_service_stopping_alone_is_not_reported_failed() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let alone = Probe::new();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.hosted(
                "s1",
                Rec::new("s1", &log)
                    .on("stop", Action::Signal(alone.clone()))
                    .on("stop", Action::Block(gate.clone())),
            )
            // Stopped first (reverse order): overruns the remove's deadline.
            .hosted(
                "s2",
                Rec::new("s2", &log).on("stopping", Action::Busy(ms(600))),
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let remover = spawn("remove", move || h.remove("g", ms(150)));
    alone.expect("s1 runs its stop hook alone");
    host.handle().request_stop();
    let removed = remover.join().unwrap().expect("a report");
    assert!(!removed.is_complete(), "{removed}");
    gate.open();
    log.wait_for("s1:stopped");
    let report = host.stop(SECS5);
    assert_eq!(
        hooks_of(&log, "s1"),
        [
            "starting", "start", "started", "stopping", "stop", "stopped"
        ]
    );
    assert_eq!(
        outcome(&report, "g/s1"),
        Some("Stopped"),
        "every hook of s1 returned Ok: {report}"
    );
}

/// A OneForAll group restarts after a failure; a `Temporary` sibling is stopped with the
/// others (and is not to be restarted). Its stop hangs; the host's stop is requested: the
/// supervisor's stop is cut short and hands the sibling over to the host's stop. But the
/// supervisor then takes the temporary sibling out of the tree anyway, so the host's stop
/// neither waits for it nor names it: `stop` returns a clean report while the sibling's
/// thread still runs its stop hook.
#[test]
fn supervisor_cut_short_leaves_a_running_temporary_child_to_the_host_stop() {
    let log = Events::new();
    let trigger = Gate::new();
    let gate = Gate::new();
    let (_t, _g) = (trigger.opener(), gate.opener());
    let inside = Probe::new();
    let t = trigger.clone();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .add_service(Service::background("f", {
                    let runs = AtomicUsize::new(0);
                    move |ctx| {
                        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                            t.wait();
                            return Err("f fails once".into());
                        }
                        ctx.token().wait();
                        Ok(())
                    }
                }))
                .add_service(
                    Service::hosted(
                        "t",
                        Rec::new("t", &log)
                            .on("stop", Action::Signal(inside.clone()))
                            .on("stop", Action::Block(gate.clone()))
                            .on("stop", Action::Done),
                    )
                    .restart(RestartType::Temporary),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    inside.expect("t in its stop hook, stopped for the group's restart");
    let (report, took) = timed(|| host.stop(ms(300)));
    let still_running = !log.contains("t:stop:done");
    gate.open();
    assert!(still_running);
    assert!(took < ms(300) + MARGIN, "took {took:?}");
    assert!(
        report.service("g/t").is_some(),
        "t's thread still ran its stop hook when `stop` returned, unreported: {report}"
    );
    assert!(!report.is_clean(), "{report}");
}

/// Like the one above, for a temporary group past its intensity: `fail_group` stops its
/// subtree (cut short by the host's stop) and then takes the whole group out of the tree,
/// children still stopping included.
#[test]
fn failing_temporary_group_cut_short_leaves_its_children_to_the_host_stop() {
    let log = Events::new();
    let trigger = Gate::new();
    let gate = Gate::new();
    let (_t, _g) = (trigger.opener(), gate.opener());
    let inside = Probe::new();
    let t = trigger.clone();
    let host = HostBuilder::new()
        .add_group(
            Group::new("tg")
                .restart(RestartType::Temporary)
                .intensity(0, Duration::from_secs(60))
                .add_service(Service::background("f", move |_ctx| {
                    t.wait();
                    Err("f fails".into())
                }))
                .hosted(
                    "h",
                    Rec::new("h", &log)
                        .on("stop", Action::Signal(inside.clone()))
                        .on("stop", Action::Block(gate.clone()))
                        .on("stop", Action::Done),
                ),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    inside.expect("h in its stop hook, stopped for the failed group");
    let (report, took) = timed(|| host.stop(ms(300)));
    let still_running = !log.contains("h:stop:done");
    gate.open();
    assert!(still_running);
    assert!(took < ms(300) + MARGIN, "took {took:?}");
    assert!(
        report.service("tg/h").is_some(),
        "h's thread still ran its stop hook when `stop` returned, unreported: {report}"
    );
}

/// A remove waits for a service's token callbacks (hung); the host has a `stopping` lifetime
/// callback that is slow. The change's wait is woken by a callback it registers on the
/// `stopping` token, which runs only after the user's slow one: the change holds the
/// sequencer, and `stop(300 ms)` waits for it past its deadline, until the user's callback
/// returns.
#[test]
fn host_stop_is_not_held_by_a_change_behind_a_slow_stopping_callback() {
    let cb_gate = Gate::new();
    let _a = cb_gate.opener();
    let in_cb = Probe::new();
    let ready = Probe::new();
    let (g, p, r) = (cb_gate.clone(), in_cb.clone(), ready.clone());
    let host = HostBuilder::new()
        .shutdown_timeout(Duration::from_secs(30))
        .background("other", idle)
        .background("s", move |ctx| {
            let (g, p) = (g.clone(), p.clone());
            ctx.token()
                .on_stop(move |_| {
                    p.set();
                    g.wait();
                })
                .forget();
            r.set();
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    host.handle()
        .stopping()
        .on_stop(move |_| {
            // Slow, not hung.
            let began = std::time::Instant::now();
            while began.elapsed() < Duration::from_secs(4) {
                common::busy(ms(20));
            }
        })
        .forget();
    host.start(SECS5).unwrap();
    ready.expect("s registered its callback");
    let h = host.handle();
    let remover = spawn("remove", move || h.remove("s", Duration::from_secs(30)));
    in_cb.expect("s's on_stop callback runs");
    // The remove waits for s's thread, then for the callbacks (registering its wake-up on
    // the `stopping` token): no event tells that it got there, so after the thread ended,
    // a little time (the change needs microseconds).
    eventually("s's thread ended", || threads_exactly("th:s") == 0);
    common::busy(ms(100));
    let (report, took) = timed(|| host.stop(ms(300)));
    cb_gate.open();
    let _ = remover.join();
    assert!(
        took < ms(300) + MARGIN,
        "stop(300 ms) took {took:?}: {report}"
    );
}

/// The handover keeps the change's own deadline: a remove with 300 ms is cut short by the
/// host's stop (5 s) while the service's `stopping` hook works for 900 ms. "The host's stop
/// takes it over under its own deadline" (ARCHITECTURE.md, the tree): it should stop
/// cleanly, not time out at the change's 300 ms.
#[test]
fn handover_uses_the_host_stop_deadline() {
    let log = Events::new();
    let inside = Probe::new();
    let host = HostBuilder::new()
        .hosted("other", Rec::new("other", &log))
        .hosted(
            "s",
            Rec::new("s", &log)
                .on("stopping", Action::Signal(inside.clone()))
                .on("stopping", Action::Busy(ms(900))),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let remover = spawn("remove", move || h.remove("s", ms(300)));
    inside.expect("s in its stopping hook");
    let report = host.stop(SECS5);
    let removed = remover.join().unwrap().unwrap();
    assert!(!removed.is_complete(), "{removed}");
    assert_eq!(
        outcome(&report, "s"),
        Some("Stopped"),
        "handed over with the host's 5 s: {report}"
    );
}

/// Host stop during a remove of a group of hosted and background children under
/// `stop_concurrently` (levels): every hook runs once, in order, dependants before their
/// dependencies; the host's report names them all.
#[test]
fn handover_of_a_concurrent_group_stop() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let inside = Probe::new();
    let changes = Events::new();
    let host = watched_transitions(HostBuilder::new(), &changes)
        .stop_concurrently(true)
        .start_concurrently(true)
        .group("g", |g| {
            g.hosted("a", Rec::new("a", &log))
                .background_service("b", Rec::new("b", &log))
                .add_service(
                    Service::hosted(
                        "c",
                        Rec::new("c", &log)
                            .on("stopping", Action::Signal(inside.clone()))
                            .on("stopping", Action::Block(gate.clone())),
                    )
                    .depends_on("a"),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let remover = spawn("remove", move || h.remove("g", SECS5));
    inside.expect("c in its stopping hook");
    host.handle().request_stop();
    let removed = remover.join().unwrap().unwrap();
    assert!(!removed.is_complete(), "{removed}");
    gate.open();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    for p in ["g/a", "g/b", "g/c"] {
        assert_eq!(outcome(&report, p), Some("Stopped"), "{p}: {report}");
    }
    let hosted = [
        "starting", "start", "started", "stopping", "stop", "stopped",
    ];
    assert_eq!(hooks_of(&log, "a"), hosted);
    assert_eq!(hooks_of(&log, "c"), hosted);
    assert_eq!(hooks_of(&log, "b"), ["start", "run", "exit"]);
    let names = log.names();
    let pos = |w: &str| names.iter().position(|n| n == w).unwrap();
    assert!(pos("c:stop") < pos("a:stop"), "{names:?}");
    assert!(pos("c:stopped") < pos("a:stopped"), "{names:?}");
    changes.wait_for("host Stopped");
    check_transitions(&changes);
}

/// A supervisor's restart is cut short by the host's stop while a permanent child's stop
/// hook runs; `join` from another thread runs the host's stop: it resumes that child (each
/// hook once), its report is complete and names it, and nothing is left `Restarting`.
#[test]
fn join_takes_over_a_supervisor_cut_short() {
    let log = Events::new();
    let changes = Events::new();
    let trigger = Gate::new();
    let gate = Gate::new();
    let (_t, _g) = (trigger.opener(), gate.opener());
    let inside = Probe::new();
    let t = trigger.clone();
    let host = watched_transitions(HostBuilder::new(), &changes)
        .group("g", |g| {
            g.strategy(Strategy::OneForAll)
                .backoff(Backoff::fixed(ms(1)))
                .add_service(Service::background("f", {
                    let runs = AtomicUsize::new(0);
                    move |ctx| {
                        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                            t.wait();
                            return Err("f fails once".into());
                        }
                        ctx.token().wait();
                        Ok(())
                    }
                }))
                .hosted(
                    "h",
                    Rec::new("h", &log)
                        .on("stop", Action::Signal(inside.clone()))
                        .on("stop", Action::Block(gate.clone())),
                )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    trigger.open();
    inside.expect("h stopped for the restart");
    host.handle().request_stop();
    let host = Arc::new(host);
    let joiner = {
        let host = Arc::clone(&host);
        spawn("join", move || host.join(SECS5))
    };
    gate.open();
    let report = joiner.join().unwrap().expect("join returns the report");
    assert!(report.is_complete(), "{report}");
    assert_eq!(outcome(&report, "g/h"), Some("Stopped"), "{report}");
    assert!(report.service("g/f").is_some(), "{report}");
    assert_eq!(
        hooks_of(&log, "h"),
        [
            "starting", "start", "started", "stopping", "stop", "stopped"
        ]
    );
    let snap = host.handle().snapshot();
    assert!(
        snap.services
            .iter()
            .all(|s| s.state != ServiceState::Restarting),
        "{:?}",
        snap.services
    );
    assert_ne!(snap.group("g").unwrap().state, ServiceState::Restarting);
    changes.wait_for("host Stopped");
    check_transitions(&changes);
}

/// A hosted service that signals when its `stop` hook runs, then waits for a gate; its
/// value's drop is counted.
struct Blocker {
    inside: Probe,
    gate: Gate,
    _counted: common::Counted,
}

impl HostedService for Blocker {
    fn start(&mut self, _: &Context) -> ServiceResult {
        Ok(())
    }
    fn stop(&mut self, _: &Context) -> ServiceResult {
        self.inside.set();
        self.gate.wait();
        Ok(())
    }
}

/// A remove is cut short when the host is dropped: the drop returns by the shutdown
/// timeout, the remove returns an incomplete report, and the service value is dropped
/// exactly once when its thread ends.
#[test]
fn change_cut_short_then_host_dropped() {
    let gate = Gate::new();
    let _open = gate.opener();
    let inside = Probe::new();
    let drops = DropCounter::new();
    let host = HostBuilder::new()
        .shutdown_timeout(ms(400))
        .background("other", idle)
        .hosted(
            "s",
            Blocker {
                inside: inside.clone(),
                gate: gate.clone(),
                _counted: drops.token(),
            },
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let remover = spawn("remove", move || h.remove("s", SECS5));
    inside.expect("s in its stop hook");
    let ((), took) = timed(|| drop(host));
    assert!(took < ms(400) + MARGIN, "drop took {took:?}");
    let removed = remover.join().unwrap().expect("a report");
    assert!(!removed.is_complete(), "{removed}");
    assert_eq!(drops.drops(), 0, "dropped while its thread still runs");
    gate.open();
    eventually("the value is dropped", || drops.drops() == 1);
    busy_check_stays(|| drops.drops() == 1);
}

/// Checks `pred` a few times over 100 ms: something that must not change.
fn busy_check_stays(pred: impl Fn() -> bool) {
    for _ in 0..10 {
        assert!(pred());
        common::busy(ms(10));
    }
}

/// `restart_child` of a group is cut short by a stop request while a child's stop hook
/// hangs: the restart returns an error saying the host is stopping, and the host's stop
/// resumes the child (each hook once); nothing is started again.
#[test]
fn restart_child_cut_short_by_a_stop() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let inside = Probe::new();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.background_service("b", Rec::new("b", &log)).hosted(
                "a",
                Rec::new("a", &log)
                    .on("stop", Action::Signal(inside.clone()))
                    .on("stop", Action::Block(gate.clone())),
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let restarter = spawn("restart", move || h.restart_child("g", SECS5));
    inside.expect("a in its stop hook");
    host.handle().request_stop();
    let (result, took) = timed(|| restarter.join().unwrap());
    assert!(took < MARGIN, "not cut short: {took:?}");
    gate.open();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        hooks_of(&log, "a"),
        [
            "starting", "start", "started", "stopping", "stop", "stopped"
        ]
    );
    assert_eq!(hooks_of(&log, "b"), ["start", "run", "exit"]);
    match result {
        Err(Error::InvalidState { .. }) => {}
        other => panic!("a restart cut short by the host's stop: {other:?}"),
    }
}

// ---- 2. epochs ----

/// One child fails and its group waits out a backoff; meanwhile a sibling fails too (queued
/// for the supervisor) and is restarted by `restart_child`. The queued failure is stale:
/// the supervisor drops it, the restart counts once, and a group of intensity 1 does not
/// fail.
#[test]
fn a_failure_made_stale_by_restart_child_is_not_counted() {
    let log = Events::new();
    let (ta, tb) = (Gate::new(), Gate::new());
    let (_a, _b) = (ta.opener(), tb.opener());
    let fails_once = |name: &'static str, gate: &Gate| {
        let gate = gate.clone();
        let log = log.clone();
        let runs = AtomicUsize::new(0);
        Service::background(name, move |ctx| {
            let n = runs.fetch_add(1, Ordering::SeqCst);
            log.push(format!("{name}:run{n}"));
            if n == 0 {
                gate.wait();
                return Err(format!("{name} fails once").into());
            }
            ctx.token().wait();
            Ok(())
        })
    };
    let host = watched_transitions(HostBuilder::new(), &log)
        .group("g", |g| {
            g.intensity(1, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(600)))
                .add_service(fails_once("a", &ta))
                .add_service(fails_once("b", &tb))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    ta.open();
    log.wait_for("group g Running->Restarting");
    tb.open();
    log.wait_for("service g/b Running->Failed");
    host.handle().restart_child("g/b", SECS5).unwrap();
    log.wait_for("b:run1");
    log.wait_for("a:run1");
    let h = host.handle();
    eventually("g running again", || {
        h.snapshot().group("g").map(|g| g.state) == Some(ServiceState::Running)
    });
    // Long enough for a stale failure to be handled, if it were.
    common::busy(ms(100));
    let snap = h.snapshot();
    assert_eq!(snap.group("g").unwrap().state, ServiceState::Running);
    assert!(!log.contains("b:run2"), "{:?}", log.names());
    assert!(!log.contains("a:run2"), "{:?}", log.names());
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
}

// ---- 3. incremental plans ----

/// `b` depends on `a`; `a` is removed and a new `a` added: `b`'s dependency names it again
/// (an add that would close a cycle through it is refused), so `b` must stop before it.
#[test]
fn a_readded_dependency_stops_after_its_dependant() {
    let log = Events::new();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.hosted("a", Rec::new("a1", &log))
                .add_service(Service::hosted("b", Rec::new("b", &log)).depends_on("a"))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    assert!(h.remove("g/a", SECS5).unwrap().is_clean());
    h.add_service("g", Service::hosted("a", Rec::new("a2", &log)), SECS5)
        .unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    let names = log.names();
    let pos = |w: &str| names.iter().position(|n| n == w).unwrap();
    assert!(
        pos("b:stop") < pos("a2:stop"),
        "the dependency stopped before its dependant: {names:?}"
    );
}

/// The same after a restart of the group: the re-added dependency must start first.
#[test]
fn a_readded_dependency_starts_first_when_its_group_restarts() {
    let log = Events::new();
    let host = HostBuilder::new()
        .group("g", |g| {
            g.hosted("a", Rec::new("a1", &log))
                .add_service(Service::hosted("b", Rec::new("b", &log)).depends_on("a"))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    assert!(h.remove("g/a", SECS5).unwrap().is_clean());
    h.add_service("g", Service::hosted("a", Rec::new("a2", &log)), SECS5)
        .unwrap();
    h.restart_child("g", SECS5).unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    let names = log.names();
    // The second `starting` of each: the group's restart.
    let nth = |w: &str, n: usize| {
        names
            .iter()
            .enumerate()
            .filter(|(_, x)| *x == w)
            .nth(n)
            .map(|(k, _)| k)
            .unwrap()
    };
    assert!(
        nth("a2:start", 1) < nth("b:start", 1),
        "the dependant started before its dependency: {names:?}"
    );
}

/// Cycles closed through a name that was removed and added again are refused, for
/// services and groups; a re-add without the cycle is accepted.
#[test]
fn cycles_through_a_readded_name_are_refused() {
    let host = HostBuilder::new()
        .group("g", |g| {
            g.background("a", idle)
                .add_service(Service::background("b", idle).depends_on("a"))
                .add_service(Service::background("c", idle).depends_on("b"))
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    assert!(h.remove("g/a", SECS5).unwrap().is_clean());
    let e = h
        .add_service("g", Service::background("a", idle).depends_on("c"), SECS5)
        .unwrap_err();
    assert!(matches!(e, Error::DependencyCycle { .. }), "{e}");
    let e = h
        .add_group("g", Group::new("a").depends_on("b"), SECS5)
        .unwrap_err();
    assert!(matches!(e, Error::DependencyCycle { .. }), "{e}");
    // Refused adds leave nothing behind.
    assert!(h.snapshot().service("g/a").is_none());
    assert!(h.snapshot().group("g/a").is_none());
    h.add_group("g", Group::new("a"), SECS5).unwrap();
    assert!(h.remove("g/a", SECS5).unwrap().is_clean());
    h.add_service("g", Service::background("a", idle), SECS5)
        .unwrap();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
}

// ---- 4. many failures racing a change ----

/// A OneForAll group whose four children fail 200 times in all, as fast as the group
/// restarts them, while the group is removed: the remove succeeds and is complete, every
/// service value is dropped exactly once by the time it returns, no supervisor or service
/// thread is left, and the host stops cleanly.
#[test]
fn rapid_one_for_all_failures_racing_remove() {
    for round in 0..3 {
        let drops = DropCounter::new();
        let failures = Arc::new(AtomicUsize::new(0));
        let group = (0..4).fold(
            Group::new("rg")
                .strategy(Strategy::OneForAll)
                .intensity(100_000, Duration::from_secs(60))
                .backoff(Backoff::fixed(ms(1))),
            |g, k| {
                let counted = drops.token();
                let failures = Arc::clone(&failures);
                g.add_service(Service::background(&format!("w{k}"), move |ctx| {
                    let _keep = &counted;
                    ctx.host().started().wait();
                    if failures.fetch_add(1, Ordering::SeqCst) < 200 {
                        return Err("fails fast".into());
                    }
                    ctx.token().wait();
                    Ok(())
                }))
            },
        );
        let host = HostBuilder::new()
            .background("other", idle)
            .add_group(group)
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        let h = host.handle();
        let at = 20 + round * 60;
        eventually("failures happen", || failures.load(Ordering::SeqCst) >= at);
        let report = h.remove("rg", SECS5).expect("remove");
        // Children that had failed and await their restart are reported Failed.
        assert!(report.is_complete(), "round {round}: {report}");
        assert!(report.timed_out().is_empty(), "round {round}: {report}");
        assert_eq!(report.services().len(), 4, "round {round}: {report}");
        assert_eq!(
            drops.drops(),
            4,
            "round {round}: values dropped by the remove"
        );
        assert!(h.snapshot().group("rg").is_none());
        eventually("no supervisor left", || threads_named("th:rg:sup") == 0);
        eventually("no service thread left", || threads_named("th:w") == 0);
        let report = host.stop(SECS5);
        assert!(report.is_clean(), "round {round}: {report}");
        assert_eq!(drops.drops(), 4, "round {round}");
    }
}

// ---- 5. a detached thread, then a restart ----

/// `stop_child` gives up on a service whose `stop` hook hangs (detached, TimedOut); a
/// restart is refused while its thread runs, and accepted once it ended: the service runs
/// again from its value, each hook in order, and its value is dropped once, at the end.
#[test]
fn stop_child_timed_out_then_restart_after_its_thread_ends() {
    let log = Events::new();
    let gate = Gate::new();
    let _open = gate.opener();
    let inside = Probe::new();
    let drops = DropCounter::new();
    struct Slow {
        rec: Rec,
        _counted: common::Counted,
    }
    impl HostedService for Slow {
        fn starting(&mut self, ctx: &Context) -> ServiceResult {
            HostedService::starting(&mut self.rec, ctx)
        }
        fn start(&mut self, ctx: &Context) -> ServiceResult {
            HostedService::start(&mut self.rec, ctx)
        }
        fn started(&mut self, ctx: &Context) -> ServiceResult {
            HostedService::started(&mut self.rec, ctx)
        }
        fn stopping(&mut self, ctx: &Context) -> ServiceResult {
            HostedService::stopping(&mut self.rec, ctx)
        }
        fn stop(&mut self, ctx: &Context) -> ServiceResult {
            HostedService::stop(&mut self.rec, ctx)
        }
        fn stopped(&mut self, ctx: &Context) -> ServiceResult {
            HostedService::stopped(&mut self.rec, ctx)
        }
    }
    let host = HostBuilder::new()
        .background("other", idle)
        .group("g", |g| {
            g.hosted(
                "s",
                Slow {
                    rec: Rec::new("s", &log)
                        .on("stop", Action::Signal(inside.clone()))
                        .on("stop", Action::Block(gate.clone())),
                    _counted: drops.token(),
                },
            )
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let h = host.handle();
    let report = h.stop_child("g/s", ms(200)).unwrap();
    assert_eq!(outcome(&report, "g/s"), Some("TimedOut"), "{report}");
    let e = h.restart_child("g/s", SECS5).unwrap_err();
    assert!(matches!(e, Error::StillRunning { .. }), "{e}");
    // A second stop_child repeats its outcome.
    let again = h.stop_child("g/s", SECS5).unwrap();
    assert_eq!(outcome(&again, "g/s"), Some("TimedOut"), "{again}");
    assert_eq!(drops.drops(), 0);
    gate.open();
    log.wait_for("s:stopped");
    poll(
        "the restart is accepted once the thread ended",
        || match h.restart_child("g/s", SECS5) {
            Ok(()) => Some(()),
            Err(Error::StillRunning { .. }) => None,
            Err(e) => panic!("{e}"),
        },
    );
    assert_eq!(
        hooks_of(&log, "s"),
        [
            "starting", "start", "started", "stopping", "stop", "stopped", "starting", "start",
            "started"
        ]
    );
    assert_eq!(
        h.snapshot().service("g/s").map(|s| s.state),
        Some(ServiceState::Running)
    );
    assert_eq!(drops.drops(), 0, "the value is needed by the restart");
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    assert_eq!(drops.drops(), 1);
}

// ---- 6. service values: dropped once, outside the lock; listeners consistent ----

/// Where each service value was dropped: its name, and whether the lifecycle lock was free.
#[derive(Clone, Default)]
struct DropLog {
    host: Arc<OnceLock<HostHandle>>,
    drops: Arc<Mutex<Vec<(String, bool)>>>,
}

impl DropLog {
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .drops
            .lock()
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }
}

/// A service value (hosted or background) whose drop is logged in a [`DropLog`]. As a
/// background service it fails its first `fails` runs (after the host started), or
/// completes at once with `completes`.
struct Tracked {
    name: String,
    log: DropLog,
    fails: usize,
    completes: bool,
}

impl Tracked {
    fn new(name: &str, log: &DropLog) -> Tracked {
        Tracked {
            name: name.to_owned(),
            log: log.clone(),
            fails: 0,
            completes: false,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let free = self.log.host.get().is_none_or(lock_is_free);
        self.log
            .drops
            .lock()
            .unwrap()
            .push((self.name.clone(), free));
    }
}

impl HostedService for Tracked {
    fn start(&mut self, _: &Context) -> ServiceResult {
        Ok(())
    }
    fn stop(&mut self, _: &Context) -> ServiceResult {
        Ok(())
    }
}

impl BackgroundService for Tracked {
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        ctx.host().started().wait();
        if self.fails > 0 {
            self.fails -= 1;
            return Err(format!("{} fails", self.name).into());
        }
        if self.completes {
            return Ok(());
        }
        ctx.token().wait();
        Ok(())
    }
}

/// Checks the listener log of [`watched`]: for each service and group, each change starts
/// from the state the previous one ended in (the first from `Created`), and `Running` is
/// entered only from `Starting` or `Restarting`.
fn check_transitions(log: &Events) {
    let mut last: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for line in log.names() {
        let mut parts = line.splitn(3, ' ');
        let (Some(kind), Some(path), Some(change)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if kind == "host" {
            continue;
        }
        let Some((from, to)) = change.split_once("->") else {
            continue;
        };
        let key = format!("{kind} {path}");
        let before = last.get(&key).map_or("Created", String::as_str);
        assert_eq!(
            from,
            before,
            "{key}: a change from {from} after one to {before}: {:?}",
            log.names()
        );
        if to == "Running" {
            assert!(
                matches!(from, "Starting" | "Restarting"),
                "{key}: Running entered from {from}: {:?}",
                log.names()
            );
        }
        last.insert(key, to.to_owned());
    }
}

/// Every service value, across adds, restarts (by a change and by the group), partial
/// stops, removes, a transient completion and the host's stop, is dropped exactly once,
/// never with the lifecycle lock held, and a removed one by the time its remove returns.
/// The listeners see a consistent history of every service and group.
#[test]
fn every_service_value_is_dropped_once_outside_the_lock() {
    let drops = DropLog::default();
    let events = Events::new();
    let mut failing = Tracked::new("f", &drops);
    failing.fails = 1;
    let host = watched_transitions(HostBuilder::new(), &events)
        .group("g", |g| {
            g.backoff(Backoff::fixed(ms(1)))
                .background_service("a", Tracked::new("a", &drops))
                .hosted("h", Tracked::new("h", &drops))
                .background_service("f", failing)
        })
        .build()
        .unwrap();
    assert!(drops.host.set(host.handle()).is_ok());
    host.start(SECS5).unwrap();
    let h = host.handle();
    eventually("the group restarted f", || {
        h.snapshot()
            .group("g")
            .is_some_and(|g| g.restarts == 1 && g.state == ServiceState::Running)
    });
    h.add_service(
        "g",
        Service::background_service("c", Tracked::new("c", &drops)),
        SECS5,
    )
    .unwrap();
    h.add_group(
        "",
        Group::new("x")
            .hosted("d", Tracked::new("d", &drops))
            .background_service("e", Tracked::new("e", &drops)),
        SECS5,
    )
    .unwrap();
    h.restart_child("g/a", SECS5).unwrap();
    assert!(h.stop_child("g/h", SECS5).unwrap().is_clean());
    h.restart_child("g/h", SECS5).unwrap();
    assert!(h.stop_child("g/a", SECS5).unwrap().is_clean());
    assert!(h.stop_child("x", SECS5).unwrap().is_clean());
    assert!(drops.names().is_empty(), "{:?}", drops.names());
    assert!(h.remove("g/c", SECS5).unwrap().is_clean());
    assert_eq!(drops.names(), ["c"]);
    assert!(h.remove("x", SECS5).unwrap().is_clean());
    assert_eq!(drops.names(), ["c", "d", "e"]);
    let mut t = Tracked::new("t", &drops);
    t.completes = true;
    h.add_service(
        "g",
        Service::background_service("t", t).restart(RestartType::Transient),
        SECS5,
    )
    .unwrap();
    eventually("t completed and was dropped", || {
        drops.names().contains(&"t".to_owned())
    });
    assert!(h.snapshot().service("g/t").is_none());
    let report = host.stop(SECS5);
    assert!(report.is_complete(), "{report}");
    events.wait_for("host Stopped");
    assert_eq!(drops.names(), ["a", "c", "d", "e", "f", "h", "t"]);
    let all = drops.drops.lock().unwrap().clone();
    assert!(all.iter().all(|(_, free)| *free), "{all:?}");
    check_transitions(&events);
}

// ---- 7. the late grace ----

/// 400 prompt hosted services in 8 groups, stopped with a deadline already passed: each
/// runs its stop hooks alone at once and answers within the late grace (10 ms + 50 µs per
/// late service): none is reported timed out.
#[test]
fn many_late_hosted_services_are_not_timed_out() {
    let mut builder = HostBuilder::new();
    for g in 0..8 {
        builder = builder.group(&format!("g{g}"), |mut grp| {
            for s in 0..50 {
                grp = grp.hosted(&format!("s{s}"), common::Noop);
            }
            grp
        });
    }
    let host = builder.build().unwrap();
    host.start(Duration::from_secs(30)).unwrap();
    let report = host.stop(Duration::ZERO);
    assert!(report.is_complete(), "{report}");
    let late = report.timed_out();
    assert!(
        late.is_empty(),
        "{} of 400 prompt services timed out: {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
}

/// The same with 400 prompt background services (the case the late grace was sized for).
#[test]
fn many_late_background_services_are_not_timed_out() {
    let mut builder = HostBuilder::new();
    for g in 0..8 {
        builder = builder.group(&format!("g{g}"), |mut grp| {
            for s in 0..50 {
                grp = grp.background(&format!("s{s}"), idle);
            }
            grp
        });
    }
    let host = builder.build().unwrap();
    host.start(Duration::from_secs(30)).unwrap();
    let report = host.stop(Duration::ZERO);
    assert!(report.is_complete(), "{report}");
    let late = report.timed_out();
    assert!(
        late.is_empty(),
        "{} of 400 prompt services timed out: {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
}

// ---- 8. the pre-sent first command ----

/// A one-service add races a stop request, 40 times at varying moments: the service's hooks
/// are always a consistent history: nothing, `starting` alone (its start was given up), or
/// a start that succeeded followed by each stop hook exactly once.
#[test]
fn a_one_service_add_racing_a_stop_request() {
    for round in 0..40u64 {
        let log = Events::new();
        let host = HostBuilder::new()
            .background("other", idle)
            .build()
            .unwrap();
        host.start(SECS5).unwrap();
        let h = host.handle();
        let l = log.clone();
        let adder = spawn("add", move || {
            h.add_service("", Service::hosted("n", Rec::new("n", &l)), SECS5)
        });
        // A spin of varying length, to land the request at different points of the add.
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_micros(round * 25) {
            std::hint::spin_loop();
        }
        host.handle().request_stop();
        let added = adder.join().unwrap();
        let report = host.stop(SECS5);
        assert!(report.is_complete(), "round {round}: {report}");
        let hooks = hooks_of(&log, "n");
        let ok = matches!(
            hooks.iter().map(String::as_str).collect::<Vec<_>>()[..],
            [] | ["starting"]
                | ["starting", "start", "stopping", "stop", "stopped"]
                | [
                    "starting", "start", "started", "stopping", "stop", "stopped"
                ]
        );
        assert!(ok, "round {round}: {hooks:?} (add: {added:?}; {report})");
        if hooks.len() > 1 {
            assert_eq!(
                outcome(&report, "n"),
                Some("Stopped"),
                "round {round}: {report}"
            );
        }
    }
}
