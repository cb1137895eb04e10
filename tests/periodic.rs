//! Periodic services: fixed rate on absolute deadlines, no overlap, missed-tick policies,
//! first-tick modes, failing ticks that never end the schedule, stop that interrupts the wait,
//! and the stop hook of a `PeriodicService` (after the last tick, within the stop deadline).
#![cfg(feature = "periodic")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use common::{
    Events, Gate, MARGIN, PATIENCE, Probe, SECS5, ms, outcome_of, start_host, stop_clean, within,
};
use crossbeam_channel::{Receiver, Sender, unbounded};
use threadhost::{
    Context, Deadline, Error, Failure, FirstTick, Host, HostBuilder, HostState, MissedTick,
    Outcome, Periodic, PeriodicService, Policy, ServiceResult, ServiceState, Tick, TickFailure,
};

/// Runs a host with a `periodic` service whose ticks report themselves after `slow(index)` of
/// work; returns the first `n` ticks, after a clean stop.
fn run_ticks(
    periodic: Periodic,
    slow: impl Fn(u64) -> Duration + Send + 'static,
    n: usize,
) -> Vec<Seen> {
    let (tx, rx) = unbounded();
    let host = host_with(periodic, reporting(tx, slow));
    host.start(SECS5).unwrap();
    let t = take(&rx, n);
    stop_clean(&host);
    t
}

/// What a test learns about one tick.
#[derive(Clone, Debug)]
struct Seen {
    index: u64,
    scheduled: Instant,
    lateness: Duration,
    missed: u64,
    failures: u64,
    thread: ThreadId,
    /// When the tick returned.
    ended: Instant,
}

impl Seen {
    fn started(&self) -> Instant {
        self.scheduled + self.lateness
    }
}

fn seen(tick: &Tick<'_>) -> Seen {
    Seen {
        index: tick.index(),
        scheduled: tick.scheduled(),
        lateness: tick.lateness(),
        missed: tick.missed(),
        failures: tick.failures(),
        thread: std::thread::current().id(),
        ended: Instant::now(),
    }
}

fn host_with(
    periodic: Periodic,
    tick: impl FnMut(&Tick<'_>) -> ServiceResult + Send + 'static,
) -> Host {
    let service = periodic
        .build("timer", tick)
        .expect("valid periodic options");
    HostBuilder::new()
        .add_service(service)
        .build()
        .expect("host builds")
}

/// Receives `n` ticks, each within a generous time.
fn take(rx: &Receiver<Seen>, n: usize) -> Vec<Seen> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("tick {i} of {n} never came"))
        })
        .collect()
}

/// A tick body that reports every tick, sleeping `slow(index)` first (to simulate work).
#[allow(clippy::disallowed_methods)]
fn reporting(
    tx: Sender<Seen>,
    slow: impl Fn(u64) -> Duration + Send + 'static,
) -> impl FnMut(&Tick<'_>) -> ServiceResult + Send + 'static {
    move |tick| {
        let work = slow(tick.index());
        if !work.is_zero() {
            // A deliberately slow tick (not synchronisation).
            std::thread::sleep(work);
        }
        let _ = tx.send(seen(tick));
        Ok(())
    }
}

fn period_between(a: Instant, b: Instant, period: Duration) -> (u128, u128) {
    let d = b.duration_since(a).as_nanos();
    (d / period.as_nanos(), d % period.as_nanos())
}

#[test]
fn smoke() {
    let (tx, rx) = unbounded();
    let host = host_with(Periodic::every(ms(5)), reporting(tx, |_| Duration::ZERO));
    host.start(SECS5).unwrap();
    let ticks = take(&rx, 3);
    assert_eq!(ticks.iter().map(|t| t.index).collect::<Vec<_>>(), [0, 1, 2]);
    stop_clean(&host);
}

#[test]
fn build_rejects_zero_period_naming_the_option() {
    let err = Periodic::every(Duration::ZERO)
        .build("timer", |_: &Tick<'_>| Ok(()))
        .unwrap_err();
    match &err {
        Error::InvalidOption { name, value, .. } => {
            assert!(name.contains("period"), "{name}");
            assert!(name.contains("timer"), "{name}");
            assert_eq!(value, "0s");
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    assert_eq!(threadhost::exit_code(&Err(err)), threadhost::EXIT_CONFIG);
}

#[test]
fn build_rejects_empty_burst_and_escalation() {
    let err = Periodic::every(ms(1))
        .missed(MissedTick::Burst { max: 0 })
        .build("timer", |_: &Tick<'_>| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption { name, .. } if name.contains("Burst")),
        "{err}"
    );
    let err = Periodic::every(ms(1))
        .on_tick_failure(TickFailure::Escalate { consecutive: 0 })
        .build("timer", |_: &Tick<'_>| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption { name, .. } if name.contains("Escalate")),
        "{err}"
    );
}

#[test]
fn schedule_is_absolute_so_slow_ticks_do_not_drift() {
    // Each tick works 6 ms of a 10 ms period. A loop that sleeps a period after each tick
    // would begin tick 50 at >= 50 * 16 ms = 800 ms; on absolute deadlines it begins at
    // 500 ms plus one wake-up's lateness.
    let period = ms(10);
    let ticks = run_ticks(
        Periodic::every(period).missed(MissedTick::Burst { max: 1000 }),
        |_| ms(6),
        51,
    );
    let origin = ticks[0].scheduled;
    for (k, t) in ticks.iter().enumerate() {
        assert_eq!(t.index, k as u64);
        // Exactly on the grid origin + k·period: nothing accumulates.
        assert_eq!(t.scheduled, origin + period * k as u32, "tick {k}");
    }
    let tick50 = ticks[50].started().duration_since(origin);
    assert!(tick50 >= ms(500), "tick 50 began early: {tick50:?}");
    assert!(
        tick50 < ms(700),
        "tick 50 began {tick50:?} after the origin (drift)"
    );
}

#[test]
fn skip_keeps_the_phase_over_a_window() {
    let period = ms(10);
    let ticks = run_ticks(Periodic::every(period), |_| ms(2), 30);
    let origin = ticks[0].scheduled;
    let mut slot = 0u64;
    for t in &ticks {
        slot += t.missed;
        let (n, rest) = period_between(origin, t.scheduled, period);
        assert_eq!(rest, 0, "tick {} is off the grid", t.index);
        assert_eq!(
            n as u64, slot,
            "tick {}: index + missed must be its slot",
            t.index
        );
        slot += 1;
    }
    // 30 ticks, the last at slot >= 29: at most `slot` periods, and not many more.
    let window = ticks[29].started().duration_since(origin);
    assert!(window >= period * 29);
}

#[test]
fn ticks_never_overlap_and_run_on_one_thread() {
    let busy = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicU32::new(0));
    let (tx, rx) = unbounded();
    let (b, o) = (Arc::clone(&busy), Arc::clone(&overlaps));
    // Every tick lasts three periods: a timer that fires on its own thread would overlap.
    let mut report = reporting(tx, |_| ms(15));
    let host = host_with(
        Periodic::every(ms(5)).missed(MissedTick::Burst { max: 4 }),
        move |tick| {
            if b.swap(true, Ordering::SeqCst) {
                o.fetch_add(1, Ordering::SeqCst);
            }
            let r = report(tick);
            b.store(false, Ordering::SeqCst);
            r
        },
    );
    host.start(SECS5).unwrap();
    let ticks = take(&rx, 8);
    stop_clean(&host);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    assert!(ticks.iter().all(|t| t.thread == ticks[0].thread));
    for w in ticks.windows(2) {
        assert!(
            w[1].started() >= w[0].ended,
            "tick {} began before {} ended",
            w[1].index,
            w[0].index
        );
    }
}

#[test]
fn missed_skip_waits_for_the_next_slot_ahead() {
    let period = ms(20);
    // Tick 0 lasts 70 ms: slots 20, 40, 60 pass while it runs.
    let t = run_ticks(
        Periodic::every(period).missed(MissedTick::Skip),
        |i| if i == 0 { ms(70) } else { Duration::ZERO },
        3,
    );
    let origin = t[0].scheduled;
    assert!(t[1].missed >= 3, "{:?}", t[1]);
    let (n, rest) = period_between(origin, t[1].scheduled, period);
    assert_eq!(rest, 0, "phase kept");
    assert_eq!(n as u64, 1 + t[1].missed, "skipped slots are counted");
    // The next slot *ahead* of the end of tick 0, not one already past.
    assert!(t[1].scheduled >= t[0].ended);
    assert_eq!(t[2].scheduled, t[1].scheduled + period);
}

#[test]
fn missed_burst_catches_up_at_most_max_in_a_row() {
    let period = ms(20);
    let t = run_ticks(
        Periodic::every(period).missed(MissedTick::Burst { max: 2 }),
        |i| if i == 0 { ms(70) } else { Duration::ZERO },
        4,
    );
    let origin = t[0].scheduled;
    // Slots 20 and 40 run late, back-to-back, each with its own scheduled time.
    assert_eq!(t[1].scheduled, origin + period);
    assert_eq!(t[2].scheduled, origin + period * 2);
    assert!(t[1].lateness >= ms(40), "{:?}", t[1]);
    assert_eq!((t[1].missed, t[2].missed), (0, 0));
    // The burst is bounded: slot 60 (overdue too) is skipped after two catch-up ticks.
    assert!(t[3].missed >= 1, "{:?}", t[3]);
    let (n, rest) = period_between(origin, t[3].scheduled, period);
    assert_eq!(rest, 0);
    assert_eq!(n as u64, 3 + t[3].missed);
}

#[test]
fn missed_delay_reschedules_from_the_late_tick() {
    let period = ms(20);
    let t = run_ticks(
        Periodic::every(period).missed(MissedTick::Delay),
        |i| if i == 0 { ms(70) } else { Duration::ZERO },
        4,
    );
    let origin = t[0].scheduled;
    // The oldest overdue slot runs at once; the other overdue ones are counted as missed.
    assert_eq!(t[1].scheduled, origin + period);
    assert!(t[1].lateness >= ms(40), "{:?}", t[1]);
    assert!(t[1].missed >= 2, "{:?}", t[1]);
    // Then the schedule counts from when that late tick began.
    assert_eq!(t[2].scheduled, t[1].started() + period);
    assert_eq!(t[3].scheduled, t[2].scheduled + period);
    assert_eq!(t[2].missed, 0);
}

#[test]
fn first_tick_immediately() {
    let (tx, rx) = unbounded();
    let host = host_with(
        Periodic::every(Duration::from_secs(3600)).first_tick(FirstTick::Immediately),
        reporting(tx, |_| Duration::ZERO),
    );
    let before = Instant::now();
    host.start(SECS5).unwrap();
    let t = take(&rx, 1);
    assert!(t[0].scheduled >= before);
    assert!(t[0].scheduled.duration_since(before) < SECS5);
    stop_clean(&host);
}

#[test]
fn first_tick_after_one_period() {
    let period = ms(150);
    let (tx, rx) = unbounded();
    let host = host_with(
        Periodic::every(period).first_tick(FirstTick::AfterPeriod),
        reporting(tx, |_| Duration::ZERO),
    );
    let before = Instant::now();
    host.start(SECS5).unwrap();
    let t = take(&rx, 2);
    assert!(t[0].scheduled >= before + period);
    assert!(t[0].started() >= before + period);
    assert_eq!(t[1].scheduled, t[0].scheduled + period);
    stop_clean(&host);
}

#[test]
fn first_tick_at_an_instant() {
    let (tx, rx) = unbounded();
    let at = Instant::now() + ms(120);
    let host = host_with(
        Periodic::every(Duration::from_secs(3600)).first_tick(FirstTick::At(at)),
        reporting(tx, |_| Duration::ZERO),
    );
    host.start(SECS5).unwrap();
    let t = take(&rx, 1);
    assert_eq!(t[0].scheduled, at);
    assert!(t[0].started() >= at);
    stop_clean(&host);

    // An instant already past: the first tick runs at once, late.
    let (tx, rx) = unbounded();
    let past = Instant::now()
        .checked_sub(ms(500))
        .expect("the clock is past 500 ms");
    let host = host_with(
        Periodic::every(Duration::from_secs(3600)).first_tick(FirstTick::At(past)),
        reporting(tx, |_| Duration::ZERO),
    );
    host.start(SECS5).unwrap();
    let t = take(&rx, 1);
    assert_eq!(t[0].scheduled, past);
    assert!(t[0].lateness >= ms(500), "{:?}", t[0]);
    stop_clean(&host);
}

#[test]
fn failing_and_panicking_ticks_do_not_end_the_schedule() {
    let (tx, rx) = unbounded();
    let periodic = Periodic::every(ms(5));
    let stats = periodic.stats();
    // The host's default policy is StopHost: it must not see tick failures under Continue.
    let host = host_with(periodic, move |tick| {
        let _ = tx.send(seen(tick));
        match tick.index() {
            0 => Err("database unreachable".into()),
            1 => panic!("tick bug"),
            _ => Ok(()),
        }
    });
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let t = take(&rx, 6);
    assert_eq!(t[1].failures, 1);
    assert_eq!(t[5].failures, 2);
    assert_eq!(stats.failures(), 2);
    assert_eq!(stats.panics(), 1);
    // Tick 5 reported from inside itself: it is counted once it returns.
    assert!(stats.ticks() >= 5);
    assert_eq!(handle.state(), HostState::Running);
    let status = handle.snapshot().service("timer").unwrap().clone();
    assert_eq!(status.state, ServiceState::Running);
    assert!(status.last_error.is_none());
    stop_clean(&host);
}

#[test]
fn escalated_tick_failure_stops_the_host_naming_the_service() {
    let periodic = Periodic::every(ms(2)).on_tick_failure(TickFailure::Escalate { consecutive: 3 });
    let stats = periodic.stats();
    let service = periodic
        .build("timer", |tick: &Tick<'_>| {
            if tick.index() == 1 {
                return Ok(()); // resets the count of failures in a row
            }
            Err(format!("tick {} failed", tick.index()).into())
        })
        .unwrap();
    let result = HostBuilder::new()
        .shutdown_timeout(SECS5)
        .add_service(service)
        .build()
        .unwrap()
        .run();
    match &result {
        Err(Error::ServiceFailed {
            service, failure, ..
        }) => {
            assert_eq!(&**service, "timer");
            // Ticks 0 (fail), 1 (ok), 2, 3, 4 (three in a row): the last one escalates.
            assert_eq!(failure.to_string(), "tick 4 failed");
        }
        other => panic!("expected ServiceFailed, got {other:?}"),
    }
    assert_eq!(stats.failures(), 4);
    assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
}

#[test]
fn escalated_panic_keeps_its_message() {
    let service = Periodic::every(ms(2))
        .on_tick_failure(TickFailure::Escalate { consecutive: 1 })
        .build("timer", |_: &Tick<'_>| panic!("sensor exploded"))
        .unwrap();
    let result = HostBuilder::new()
        .add_service(service)
        .build()
        .unwrap()
        .run();
    match &result {
        Err(Error::ServiceFailed {
            failure: Failure::Panic(message),
            ..
        }) => assert_eq!(&**message, "sensor exploded"),
        other => panic!("expected a panic failure, got {other:?}"),
    }
}

#[test]
fn escalation_under_restart_resumes_the_schedule_in_phase() {
    let period = ms(10);
    let (tx, rx) = unbounded();
    let service = Periodic::every(period)
        .on_tick_failure(TickFailure::Escalate { consecutive: 1 })
        .build("timer", move |tick: &Tick<'_>| {
            let _ = tx.send(seen(tick));
            if tick.index() == 1 {
                Err("once".into())
            } else {
                Ok(())
            }
        })
        .unwrap()
        .on_failure(Policy::Restart {
            backoff: threadhost::Backoff::fixed(ms(25)),
            max_restarts: 3,
            within: Duration::from_secs(60),
        });
    let host = HostBuilder::new().add_service(service).build().unwrap();
    let handle = host.handle();
    host.start(SECS5).unwrap();
    let t = take(&rx, 4);
    let status = handle.snapshot().service("timer").unwrap().clone();
    assert_eq!(status.restarts, 1);
    assert_eq!(
        status.last_error.map(|f| f.to_string()).as_deref(),
        Some("once")
    );
    // After the 25 ms backoff the schedule resumed on its grid, counting skipped slots.
    let origin = t[0].scheduled;
    let (n, rest) = period_between(origin, t[2].scheduled, period);
    assert_eq!(rest, 0);
    assert!(t[2].missed >= 2, "{:?}", t[2]);
    assert_eq!(n as u64, 2 + t[2].missed);
    assert_eq!(t[2].index, 2);
    stop_clean(&host);
}

#[test]
fn stop_interrupts_a_long_period_at_once() {
    let (tx, rx) = unbounded();
    let host = host_with(
        Periodic::every(Duration::from_secs(3600)),
        reporting(tx, |_| Duration::ZERO),
    );
    host.start(SECS5).unwrap();
    let _first = take(&rx, 1); // now waiting an hour for the next slot
    let began = Instant::now();
    stop_clean(&host);
    assert!(began.elapsed() < ms(500), "stop took {:?}", began.elapsed());
}

#[test]
fn tick_in_progress_sees_its_token_fire() {
    let (entered_tx, entered_rx) = unbounded();
    let saw_stop = Arc::new(AtomicBool::new(false));
    let saw = Arc::clone(&saw_stop);
    let host = host_with(Periodic::every(ms(5)), move |tick| {
        let _ = entered_tx.send(());
        // A long tick that watches its token.
        if tick.token().wait_timeout(Duration::from_secs(60)) {
            saw.store(true, Ordering::SeqCst);
        }
        Ok(())
    });
    host.start(SECS5).unwrap();
    entered_rx.recv_timeout(PATIENCE).unwrap();
    let began = Instant::now();
    stop_clean(&host);
    assert!(saw_stop.load(Ordering::SeqCst));
    assert!(began.elapsed() < ms(500), "stop took {:?}", began.elapsed());
}

#[test]
fn ticks_keep_a_critical_periodic_service_live() {
    // Liveness 150 ms, ticks every 10 ms: only the ticks' heartbeats can keep it live for
    // the 600 ms the test watches (the host's own beat happens once, at start).
    let (tx, rx) = unbounded();
    let service = Periodic::every(ms(10))
        .build("ticker", move |tick: &Tick<'_>| {
            let _ = tx.send(tick.index());
            Ok(())
        })
        .unwrap()
        .liveness(ms(150));
    let host = start_host(HostBuilder::new().add_service(service));
    let began = Instant::now();
    while began.elapsed() < ms(600) {
        rx.recv_timeout(PATIENCE).unwrap();
    }
    let snapshot = host.handle().snapshot();
    let status = snapshot.service("ticker").unwrap();
    assert!(status.is_live(), "heartbeat age {:?}", status.heartbeat_age);
    stop_clean(&host);
}

// ---- The stop hook (PeriodicService::stop) ----

/// A periodic service that logs each tick's start and end and its stop hook's start and end
/// to `events` (`tick N start`, `tick N end`, `stop start`, `stop end`), with the hook's
/// context seen by `stop`.
struct Logged<T, S> {
    events: Events,
    tick: T,
    stop: S,
}

/// What the stop hook saw.
#[derive(Clone, Debug)]
struct HookSaw {
    deadline: Deadline,
    stopped: bool,
    thread: Option<String>,
}

fn logged<T, S>(events: &Events, tick: T, stop: S) -> Logged<T, S>
where
    T: FnMut(&Tick<'_>) -> ServiceResult + Send + 'static,
    S: FnMut(&Context) -> ServiceResult + Send + 'static,
{
    Logged {
        events: events.clone(),
        tick,
        stop,
    }
}

impl<T, S> PeriodicService for Logged<T, S>
where
    T: FnMut(&Tick<'_>) -> ServiceResult + Send + 'static,
    S: FnMut(&Context) -> ServiceResult + Send + 'static,
{
    fn tick(&mut self, tick: &Tick<'_>) -> ServiceResult {
        self.events.push(format!("tick {} start", tick.index()));
        let result = (self.tick)(tick);
        self.events.push(format!("tick {} end", tick.index()));
        result
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        self.events.push("stop start");
        let result = (self.stop)(ctx);
        self.events.push("stop end");
        result
    }
}

/// A stop hook that records what it saw in `saw`.
fn recording(
    saw: &Arc<std::sync::Mutex<Vec<HookSaw>>>,
) -> impl FnMut(&Context) -> ServiceResult + Send + use<> {
    let saw = Arc::clone(saw);
    move |ctx| {
        saw.lock().unwrap().push(HookSaw {
            deadline: ctx.deadline(),
            stopped: ctx.is_stopped(),
            thread: std::thread::current().name().map(str::to_owned),
        });
        Ok(())
    }
}

fn ok_tick(_: &Tick<'_>) -> ServiceResult {
    Ok(())
}

/// Asserts that every tick in `log` ended before the first `stop start`, that each tick that
/// started ended, and that the hook ran exactly once; returns the number of ticks.
#[track_caller]
fn assert_hook_after_every_tick(log: &[String]) -> usize {
    let hooks: Vec<usize> = (0..log.len()).filter(|&i| log[i] == "stop start").collect();
    assert_eq!(hooks.len(), 1, "the hook should run once: {log:?}");
    let hook = hooks[0];
    assert_eq!(
        log.get(hook + 1).map(String::as_str),
        Some("stop end"),
        "{log:?}"
    );
    let starts = log
        .iter()
        .filter(|w| w.ends_with(" start") && w.starts_with("tick"))
        .count();
    let ends: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].starts_with("tick") && log[i].ends_with(" end"))
        .collect();
    assert_eq!(starts, ends.len(), "every tick that started ended: {log:?}");
    assert!(
        ends.iter().all(|&e| e < hook),
        "a tick ended after the hook began: {log:?}"
    );
    ends.len()
}

#[test]
fn stop_hook_runs_once_after_the_last_tick_with_the_stop_deadline() {
    let events = Events::new();
    let saw = Arc::new(std::sync::Mutex::new(Vec::new()));
    let periodic = Periodic::every(ms(2));
    let stats = periodic.stats();
    let service = periodic
        .build_service("flusher", logged(&events, ok_tick, recording(&saw)))
        .unwrap();
    let host = start_host(HostBuilder::new().add_service(service));
    events.wait_for("tick 3 end");
    let deadline = Instant::now() + SECS5;
    let report = host.stop(deadline);
    assert!(report.is_clean(), "{report}");
    let log = events.names();
    let ticks = assert_hook_after_every_tick(&log);
    assert!(ticks >= 4);
    // Stats count the ticks alone: the hook is not a tick.
    assert_eq!(stats.ticks(), ticks as u64);
    assert_eq!((stats.failures(), stats.panics()), (0, 0));
    let saw = saw.lock().unwrap().clone();
    assert_eq!(saw.len(), 1);
    assert_eq!(saw[0].deadline, Deadline::at(deadline), "{saw:?}");
    assert!(saw[0].stopped, "the token fired before the hook");
    // On the service's own thread, as the ticks.
    assert_eq!(saw[0].thread.as_deref(), Some("th:flusher"));
    assert!(
        events
            .all()
            .iter()
            .all(|e| e.thread.as_deref() == Some("th:flusher"))
    );
}

#[test]
fn stop_hook_deadline_is_shortened_by_the_service_stop_timeout() {
    let saw = Arc::new(std::sync::Mutex::new(Vec::new()));
    let events = Events::new();
    let service = Periodic::every(ms(5))
        .build_service("flusher", logged(&events, ok_tick, recording(&saw)))
        .unwrap()
        .stop_timeout(ms(800));
    let host = start_host(HostBuilder::new().add_service(service));
    events.wait_for("tick 0 end");
    let began = Instant::now();
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    let deadline = saw.lock().unwrap()[0]
        .deadline
        .instant()
        .expect("a stop deadline");
    assert!(deadline >= began + ms(800) && deadline <= Instant::now() + ms(800));
}

#[test]
fn tick_in_progress_finishes_before_the_stop_hook() {
    let events = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let tick_gate = gate.clone();
    let tick_events = events.clone();
    let service = Periodic::every(ms(2))
        .build_service(
            "flusher",
            logged(
                &events,
                move |tick: &Tick<'_>| {
                    if tick.index() == 1 {
                        // In progress when the stop comes: it sees the token, then finishes
                        // its work (held until the test checked the hook has not begun).
                        tick.token().wait();
                        tick_events.push("tick 1 saw the stop");
                        tick_gate.wait();
                    }
                    Ok(())
                },
                |_: &Context| Ok(()),
            ),
        )
        .unwrap();
    let host = start_host(HostBuilder::new().add_service(service));
    events.wait_for("tick 1 start");
    let stopper = common::spawn("stopper", move || host.stop(SECS5));
    events.wait_for("tick 1 saw the stop");
    assert!(!events.contains("stop start"), "{:?}", events.names());
    gate.open();
    let report = stopper.join().unwrap();
    assert!(report.is_clean(), "{report}");
    let log = events.names();
    assert_eq!(assert_hook_after_every_tick(&log), 2, "{log:?}");
    common::assert_before(&log, &"tick 1 end".to_owned(), &"stop start".to_owned());
}

#[test]
fn overrunning_stop_hook_is_timed_out_by_the_deadline() {
    let events = Events::new();
    let gate = Gate::new();
    let _release = gate.opener();
    let hook_gate = gate.clone();
    let service = Periodic::every(ms(5))
        .build_service(
            "flusher",
            logged(&events, ok_tick, move |_: &Context| {
                // Ignores the deadline and the token: a hung upload.
                hook_gate.wait();
                Ok(())
            }),
        )
        .unwrap();
    // `other` registered last, so stopped first, before the deadline (reached after it, it
    // would have only the late grace).
    let host = HostBuilder::new()
        .add_service(service)
        .background("other", |ctx: &Context| {
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    events.wait_for("tick 0 end");
    let report = within(
        ms(300) + MARGIN,
        "stop(300 ms) with a hung stop hook",
        || host.stop(ms(300)),
    );
    assert!(report.is_complete());
    assert_eq!(report.timed_out(), [Arc::<str>::from("flusher")]);
    assert!(matches!(outcome_of(&report, "flusher"), Outcome::TimedOut));
    assert!(matches!(outcome_of(&report, "other"), Outcome::Stopped));
    assert!(
        report.to_string().contains("`flusher` TIMED OUT"),
        "{report}"
    );
    assert!(events.contains("stop start"));
    assert!(!events.contains("stop end"));
    // Released, the detached thread finishes its hook.
    gate.open();
    events.wait_for("stop end");
}

#[test]
fn failing_or_panicking_stop_hook_is_the_service_failure() {
    let events = Events::new();
    let build = |name: &str, hook: fn(&Context) -> ServiceResult| {
        Periodic::every(ms(5))
            .build_service(name, logged(&events, ok_tick, hook))
            .unwrap()
    };
    let host = HostBuilder::new()
        .add_service(build("errs", |_| Err("upload failed".into())))
        .add_service(build("panics", |_| panic!("flush exploded")))
        // `ctx.sleep(d)?` in a hook returns at once (the token fired): not a clean exit.
        .add_service(build("sleeps", |ctx| Ok(ctx.sleep(ms(10))?)))
        .add_service(build("clean", |_| Ok(())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = within(SECS5, "stop with failing stop hooks", || host.stop(SECS5));
    assert!(report.is_complete());
    assert!(!report.is_clean());
    assert!(report.timed_out().is_empty());
    match outcome_of(&report, "errs") {
        Outcome::Failed(f) => assert_eq!(f.to_string(), "upload failed"),
        other => panic!("expected Failed, got {other:?}"),
    }
    match outcome_of(&report, "panics") {
        Outcome::Failed(Failure::Panic(message)) => assert_eq!(&**message, "flush exploded"),
        other => panic!("expected a panic, got {other:?}"),
    }
    match outcome_of(&report, "sleeps") {
        Outcome::Failed(f) => assert!(f.to_string().contains("stop hook returned"), "{f}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(matches!(outcome_of(&report, "clean"), Outcome::Stopped));
    assert_eq!(
        events.with_prefix("stop end").len(),
        3,
        "the panicking hook never ended"
    );
}

#[test]
fn no_stop_hook_for_a_service_that_never_started() {
    let events = Events::new();
    let service = Periodic::every(ms(5))
        .build_service("flusher", logged(&events, ok_tick, |_: &Context| Ok(())))
        .unwrap()
        .depends_on("broken");
    let other = Events::new();
    let host = HostBuilder::new()
        .hosted(
            "broken",
            common::Rec::new("broken", &other).on("start", common::Action::Fail),
        )
        .add_service(service)
        .build()
        .unwrap();
    assert!(host.start(SECS5).is_err());
    let report = host.stop(SECS5);
    assert!(matches!(
        outcome_of(&report, "flusher"),
        Outcome::NotStarted
    ));
    drop(host);
    assert!(events.names().is_empty(), "{:?}", events.names());
}

#[test]
fn stop_hook_runs_for_a_service_stopped_before_its_first_tick() {
    let events = Events::new();
    let service = Periodic::every(Duration::from_secs(3600))
        .first_tick(FirstTick::AfterPeriod)
        .build_service("flusher", logged(&events, ok_tick, |_: &Context| Ok(())))
        .unwrap();
    let host = start_host(HostBuilder::new().add_service(service));
    let report = within(MARGIN, "stop during the first wait", || host.stop(SECS5));
    assert!(report.is_clean(), "{report}");
    assert_eq!(events.names(), ["stop start", "stop end"]);
}

#[test]
fn escalated_failure_runs_the_stop_hook_before_the_policy() {
    let events = Events::new();
    let saw = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ended = Probe::new();
    let policy_saw = ended.clone();
    let service = Periodic::every(ms(2))
        .on_tick_failure(TickFailure::Escalate { consecutive: 1 })
        .build_service(
            "flusher",
            logged(
                &events,
                |tick: &Tick<'_>| match tick.index() {
                    2 => Err("sensor gone".into()),
                    _ => Ok(()),
                },
                {
                    let mut record = recording(&saw);
                    move |ctx: &Context| {
                        record(ctx)?;
                        policy_saw.set();
                        Err("upload failed too".into())
                    }
                },
            ),
        )
        .unwrap()
        .on_failure(Policy::Ignore);
    let host = start_host(HostBuilder::new().add_service(service));
    let handle = host.handle();
    ended.expect("the stop hook after the escalated failure");
    common::await_state(&handle, "flusher", ServiceState::Failed);
    let status = handle.snapshot().service("flusher").unwrap().clone();
    // The policy saw the tick's failure, not the hook's.
    assert_eq!(
        status.last_error.map(|f| f.to_string()).as_deref(),
        Some("sensor gone")
    );
    assert_eq!(handle.state(), HostState::Running);
    let saw_then = saw.lock().unwrap().clone();
    assert_eq!(saw_then.len(), 1);
    assert!(!saw_then[0].stopped);
    assert!(
        saw_then[0].deadline.is_never(),
        "no stop underway: {saw_then:?}"
    );
    let report = host.stop(SECS5);
    match outcome_of(&report, "flusher") {
        Outcome::Failed(f) => assert_eq!(f.to_string(), "sensor gone"),
        other => panic!("expected Failed, got {other:?}"),
    }
    // Ended already: the stop runs no second hook.
    let log = events.names();
    assert_eq!(assert_hook_after_every_tick(&log), 3, "{log:?}");
}
