//! Supervision-tree benchmarks, each as a ratio to a baseline measured in the same run
//! (benches/common: the two sides alternate, the median of the per-round ratios is the
//! figure).
//!
//! 1. Adding and removing a running child of a running host: `HostHandle::add_service("", …)`
//!    then `HostHandle::remove(path, …)` of a background service that waits on its token,
//!    against a raw named thread spawn, a stop flag (parking_lot `Mutex<bool>` + `Condvar`)
//!    and a `join` (goal ≤ 1.5×); the same goal for a group of one service added under a
//!    nested path (`devices/plc`) and removed. `CYCLES` adds and removes per measurement; the
//!    figure of record is the median cycle, as a few cycles a round are preempted for
//!    milliseconds on a loaded 2-core machine (raw threads as much as the host's), which
//!    swings a sum from round to round; the sum is printed too. Informative rows: against a
//!    raw spawn that also waits for the thread to run (an add returns once its child has
//!    started), and the top-level add and remove in a host that also holds 1,000 services,
//!    in 100 groups or flat (does the cost grow with the tree?).
//! 2. Starting 100 background services in 10 groups of 10 against the same 100 services flat
//!    (goal ≤ 1.2×): build (not timed), `start` (timed), then, once every body waits on its
//!    token, `stop` (timed, informative); `REPS` hosts summed per round. The same for 1,000
//!    services in 100 groups against 1,000 flat (`BIG_REPS` hosts a round), and `Host::stop`
//!    of the 1,000 in groups against a flag + `notify_all` + 1,000 joins (informative).
//! 3. Stopping 1,000 services in 100 groups by a 2 s deadline, 1 in 100 of them ignoring its
//!    token (it sleeps 2.5 s once stopped): how far past its deadline `stop` returned, against
//!    the bound RELIABILITY.md states for `stop`: the deadline + the one grace for late
//!    services (10 ms, + 50 µs per late service) + the firing of their tokens (their raw
//!    floor below stands for it) + 10 ms of scheduling, judged on the worst round; the elapsed
//!    time as a ratio to the deadline; the report's outcomes (the slow services timed out,
//!    every prompt one stopped); and, as the same-run baseline, the raw floor of what the
//!    stop must do after the deadline: wake and join as many threads as it reaches late. In
//!    the default (sequential) stop and with `stop_concurrently`. Its own table.
//!
//! Run: `cargo bench --bench tree` (about 2 minutes on the project's 2-core machine);
//! `BENCH_ROUNDS=<n>` for more rounds (at least 5: `BENCH_ROUNDS=5` is the short run);
//! `BENCH_ONLY=<text>` runs only the rows whose name contains the text (e.g. `add_group`,
//! `start`, `deadline`). The process exits 0 whatever the figures; the `met` columns say
//! whether each goal held.

#![allow(
    clippy::print_stdout,
    clippy::disallowed_methods, // thread::sleep for the slow services; raw threads are the baseline
    missing_docs
)]

#[allow(unreachable_pub)] // the shared harness declares `pub` items for every bench
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use threadhost::{
    Context, Deadline, Group, Host, HostBuilder, Outcome, Service, ServiceResult, StopReport,
};

use common::{Goal, RawFlag, Row, compare, compare_parts};

/// Adds and removes per measurement of benchmark 1.
const CYCLES: usize = 200;
/// Hosts of 100 services started and stopped per measurement of benchmark 2 (summed).
const REPS: usize = 10;
/// Hosts of 1,000 services started and stopped per measurement of benchmark 2 (summed).
const BIG_REPS: usize = 2;
/// Generous deadline for every host call but benchmark 3's stop (never reached).
const DEADLINE: Duration = Duration::from_secs(30);
/// Benchmark 3: the stop's deadline.
const STOP_DEADLINE: Duration = Duration::from_secs(2);
/// Benchmark 3: how long a slow service sleeps once its token fired, ignoring it.
const SLOW_SLEEP: Duration = Duration::from_millis(2_500);
/// Benchmark 3: one service in this many is slow.
const SLOW_EVERY: usize = 100;
/// The library's one grace for services reached after the deadline (`LATE_GRACE`).
const LATE_GRACE: Duration = Duration::from_millis(10);
/// Scheduling allowance on top of the grace: RELIABILITY.md's bound is the deadline + 20 ms,
/// for a few late services.
const SCHEDULING: Duration = Duration::from_millis(10);
/// What the library's grace grows by per late service (`LATE_PER_SERVICE`).
const LATE_PER_SERVICE: Duration = Duration::from_micros(50);

fn main() {
    let mut rows: Vec<Row> = Vec::new();

    // ---- 1. add + remove a running child ----
    let cycle_parts = |what: &str, goal: Goal| {
        [
            (format!("{what}: median cycle"), goal),
            (format!("{what}: all {CYCLES} cycles"), Goal::None),
        ]
    };
    rows.extend(only_parts(
        &cycle_parts(
            "add_service + remove, 1 service at the top level",
            Goal::TimeAtMost(1.5),
        ),
        "spawn + stop flag + join",
        || raw_cycles(false),
        || host_cycles(Child::Service, Extra::None),
    ));
    rows.extend(only_parts(
        &cycle_parts(
            "add_service + remove, 1 service at the top level",
            Goal::None,
        ),
        "spawn + wait until running + stop flag + join",
        || raw_cycles(true),
        || host_cycles(Child::Service, Extra::None),
    ));
    rows.extend(only_parts(
        &cycle_parts(
            "add_group + remove, a group of 1 service under `devices/plc`",
            Goal::TimeAtMost(1.5),
        ),
        "spawn + stop flag + join",
        || raw_cycles(false),
        || host_cycles(Child::NestedGroup, Extra::None),
    ));
    rows.extend(only_parts(
        &cycle_parts(
            "add_service + remove at the top level, beside 1,000 services in 100 groups",
            Goal::None,
        ),
        "spawn + stop flag + join",
        || raw_cycles(false),
        || host_cycles(Child::Service, Extra::Groups(100)),
    ));
    rows.extend(only_parts(
        &cycle_parts(
            "add_service + remove at the top level, beside 1,000 flat services",
            Goal::None,
        ),
        "spawn + stop flag + join",
        || raw_cycles(false),
        || host_cycles(Child::Service, Extra::Flat(1_000)),
    ));

    // ---- 2. start 100 services in 10 groups vs flat ----
    rows.extend(only_parts(
        &[
            (
                "start, 100 services in 10 groups of 10".into(),
                Goal::TimeAtMost(1.2),
            ),
            ("stop, 100 services in 10 groups of 10".into(), Goal::None),
        ],
        "the same 100 services flat",
        || start_stop(None, 100, REPS),
        || start_stop(Some(10), 100, REPS),
    ));
    rows.extend(only_parts(
        &[
            (
                "start, 1,000 services in 100 groups of 10".into(),
                Goal::None,
            ),
            (
                "stop, 1,000 services in 100 groups of 10".into(),
                Goal::None,
            ),
        ],
        "the same 1,000 services flat",
        || start_stop(None, 1_000, BIG_REPS),
        || start_stop(Some(100), 1_000, BIG_REPS),
    ));
    rows.extend(only(
        "stop, 1,000 idle services in 100 groups of 10",
        "flag + notify_all + 1,000 joins",
        Goal::None,
        || raw_stop(1_000),
        || host_stop(100, 1_000),
    ));

    common::print_table("threadhost supervision tree", &rows);
    println!(
        "\n(add + remove: {CYCLES} cycles per measurement; start / stop: {REPS} hosts of 100, \
         {BIG_REPS} of 1,000, summed per round)"
    );

    // ---- 3. stop of 1,000 services by a deadline ----
    if std::env::var("BENCH_ONLY").is_ok_and(|part| !"stop by a deadline".contains(&part)) {
        return;
    }
    deadline_table();
}

/// [`compare`], unless `BENCH_ONLY` is set and not part of `name` (to rerun one row).
fn only(
    name: &str,
    baseline_name: &str,
    goal: Goal,
    baseline: impl FnMut() -> Duration,
    candidate: impl FnMut() -> Duration,
) -> Option<Row> {
    match std::env::var("BENCH_ONLY") {
        Ok(part) if !name.contains(&part) => None,
        _ => Some(compare(name, baseline_name, goal, baseline, candidate)),
    }
}

/// [`compare_parts`], unless `BENCH_ONLY` is set and part of no part's name.
fn only_parts(
    parts: &[(String, Goal)],
    baseline_name: &str,
    baseline: impl FnMut() -> Vec<Duration>,
    candidate: impl FnMut() -> Vec<Duration>,
) -> Vec<Row> {
    match std::env::var("BENCH_ONLY") {
        Ok(part) if !parts.iter().any(|(name, _)| name.contains(&part)) => Vec::new(),
        _ => {
            let parts: Vec<(&str, Goal)> = parts.iter().map(|(n, g)| (n.as_str(), *g)).collect();
            compare_parts(&parts, baseline_name, baseline, candidate)
        }
    }
}

// ---- shared parts --------------------------------------------------------------------------

/// A background body that counts itself in `parked`, then waits on its token.
fn idle(parked: &Arc<AtomicUsize>) -> impl FnMut(&Context) -> ServiceResult + Send + 'static {
    let parked = Arc::clone(parked);
    move |ctx| {
        parked.fetch_add(1, Ordering::Release);
        ctx.token().wait();
        Ok(())
    }
}

/// A background body that waits on its token like [`idle`], then ignores it: it sleeps
/// [`SLOW_SLEEP`] before returning, and counts itself in `done`.
fn slow(
    parked: &Arc<AtomicUsize>,
    done: &Arc<AtomicUsize>,
) -> impl FnMut(&Context) -> ServiceResult + Send + 'static {
    let (parked, done) = (Arc::clone(parked), Arc::clone(done));
    move |ctx| {
        parked.fetch_add(1, Ordering::Release);
        ctx.token().wait();
        thread::sleep(SLOW_SLEEP);
        done.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

/// Waits until `count` reached `n`, then gives the last waiters time to park.
fn await_count(count: &AtomicUsize, n: usize) {
    while count.load(Ordering::Acquire) < n {
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(2));
}

/// A host of `services` background services: flat, or in `groups` top-level groups
/// (`g<k>`, services `s<i>` spread evenly). Service `i` is built by `body(i)`.
fn tree_host<F>(groups: Option<usize>, services: usize, mut body: impl FnMut(usize) -> F) -> Host
where
    F: FnMut(&Context) -> ServiceResult + Send + 'static,
{
    let mut builder = HostBuilder::new().shutdown_timeout(DEADLINE);
    match groups {
        None => {
            for i in 0..services {
                builder = builder.background(&format!("s{i}"), body(i));
            }
        }
        Some(groups) => {
            let per = services / groups;
            for k in 0..groups {
                let mut group = Group::new(&format!("g{k}"));
                for i in k * per..(k + 1) * per {
                    group = group.background(&format!("s{i}"), body(i));
                }
                builder = builder.add_group(group);
            }
        }
    }
    builder.build().expect("build the host")
}

// ---- 1. add + remove a running child ---------------------------------------------------------

/// The median and the sum of per-cycle times.
fn median_and_total(mut cycles: Vec<Duration>) -> Vec<Duration> {
    let total = cycles.iter().sum();
    cycles.sort_unstable();
    vec![cycles[cycles.len() / 2], total]
}

/// `CYCLES` times: a named raw thread that waits on a fresh flag is spawned, (with
/// `handshake`, the spawner waits until the thread runs,) the flag is set and the thread
/// joined. Returns the median cycle and the total.
fn raw_cycles(handshake: bool) -> Vec<Duration> {
    let mut cycles = Vec::with_capacity(CYCLES);
    for _ in 0..CYCLES {
        let began = Instant::now();
        let stop = Arc::new(RawFlag::new());
        let running = Arc::new(RawFlag::new());
        let thread: JoinHandle<()> = {
            let (stop, running) = (Arc::clone(&stop), Arc::clone(&running));
            thread::Builder::new()
                .name("raw:child".into())
                .spawn(move || {
                    running.stop();
                    stop.wait();
                })
                .expect("spawn a raw thread")
        };
        if handshake {
            running.wait();
        }
        stop.stop();
        thread.join().expect("raw thread");
        cycles.push(began.elapsed());
    }
    median_and_total(cycles)
}

#[derive(Clone, Copy)]
enum Child {
    /// A background service at the top level (`""`), removed as `child`.
    Service,
    /// A group `child` of one background service, added under `devices/plc`, removed as
    /// `devices/plc/child`.
    NestedGroup,
}

/// What else the host of [`host_cycles`] holds, besides its three fixed nodes.
#[derive(Clone, Copy)]
enum Extra {
    None,
    /// This many top-level groups of 10 idle services.
    Groups(usize),
    /// This many idle services at the top level.
    Flat(usize),
}

/// A running host (one idle service at the top level, `devices/plc/conn` in two nested
/// groups, and `extra`); times `CYCLES` adds and removes of a running `child`, each add
/// returning once the child started. Returns the median cycle and the total. Building,
/// starting and stopping the host are not timed.
fn host_cycles(child: Child, extra: Extra) -> Vec<Duration> {
    let parked = Arc::new(AtomicUsize::new(0));
    let mut builder = HostBuilder::new()
        .shutdown_timeout(DEADLINE)
        .background("anchor", idle(&parked))
        .group("devices", |g| {
            g.group("plc", |p| p.background("conn", idle(&parked)))
        });
    let services = 2 + match extra {
        Extra::None => 0,
        Extra::Groups(groups) => {
            for k in 0..groups {
                let mut group = Group::new(&format!("x{k}"));
                for i in 0..10 {
                    group = group.background(&format!("s{i}"), idle(&parked));
                }
                builder = builder.add_group(group);
            }
            10 * groups
        }
        Extra::Flat(n) => {
            for i in 0..n {
                builder = builder.background(&format!("x{i}"), idle(&parked));
            }
            n
        }
    };
    let host = builder.build().expect("build the host");
    host.start(DEADLINE).expect("start the host");
    await_count(&parked, services);
    let handle = host.handle();
    let mut cycles = Vec::with_capacity(CYCLES);
    for _ in 0..CYCLES {
        let began = Instant::now();
        let report = match child {
            Child::Service => {
                handle
                    .add_service(
                        "",
                        Service::background("child", |ctx| {
                            ctx.token().wait();
                            Ok(())
                        }),
                        DEADLINE,
                    )
                    .expect("add the child");
                handle.remove("child", DEADLINE).expect("remove the child")
            }
            Child::NestedGroup => {
                handle
                    .add_group(
                        "devices/plc",
                        Group::new("child").background("svc", |ctx| {
                            ctx.token().wait();
                            Ok(())
                        }),
                        DEADLINE,
                    )
                    .expect("add the child group");
                handle
                    .remove("devices/plc/child", DEADLINE)
                    .expect("remove the child group")
            }
        };
        cycles.push(began.elapsed());
        assert_clean(&report);
    }
    assert_clean(&host.stop(DEADLINE));
    median_and_total(cycles)
}

fn assert_clean(report: &StopReport) {
    assert!(report.is_clean(), "unclean stop in the benchmark: {report}");
}

// ---- 2. start (and stop) in groups vs flat ---------------------------------------------------

/// `reps` times: builds a host of `services` idle services (flat, or in `groups` groups), then
/// times `start`, waits until every body waits on its token, and times `stop`. Returns the
/// summed start and stop times.
fn start_stop(groups: Option<usize>, services: usize, reps: usize) -> Vec<Duration> {
    let (mut start, mut stop) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..reps {
        let parked = Arc::new(AtomicUsize::new(0));
        let host = tree_host(groups, services, |_| idle(&parked));
        let began = Instant::now();
        host.start(DEADLINE).expect("start the host");
        start += began.elapsed();
        await_count(&parked, services);
        let began = Instant::now();
        let report = host.stop(DEADLINE);
        stop += began.elapsed();
        assert_clean(&report);
    }
    vec![start, stop]
}

/// `services` raw threads waiting on one flag; times set + `notify_all` + every join.
fn raw_stop(services: usize) -> Duration {
    let flag = Arc::new(RawFlag::new());
    let parked = Arc::new(AtomicUsize::new(0));
    let threads: Vec<JoinHandle<()>> = (0..services)
        .map(|i| {
            let (flag, parked) = (Arc::clone(&flag), Arc::clone(&parked));
            thread::Builder::new()
                .name(format!("raw:{i}"))
                .spawn(move || {
                    parked.fetch_add(1, Ordering::Release);
                    flag.wait();
                })
                .expect("spawn a raw thread")
        })
        .collect();
    await_count(&parked, services);
    let began = Instant::now();
    flag.stop();
    for t in threads {
        t.join().expect("raw thread");
    }
    began.elapsed()
}

/// Times `Host::stop` of `services` started, parked services in `groups` groups.
fn host_stop(groups: usize, services: usize) -> Duration {
    let parked = Arc::new(AtomicUsize::new(0));
    let host = tree_host(Some(groups), services, |_| idle(&parked));
    host.start(DEADLINE).expect("start the host");
    await_count(&parked, services);
    let began = Instant::now();
    let report = host.stop(DEADLINE);
    let elapsed = began.elapsed();
    assert_clean(&report);
    elapsed
}

// ---- 3. stop by a deadline, some services slow -----------------------------------------------

/// Benchmark 3's host: this many services …
const BIG: usize = 1_000;
/// … in this many groups.
const BIG_GROUPS: usize = 100;

/// Whether service `s<i>` of benchmark 3 is slow: the 50th of every hundred, spread over the
/// tree, so that most of a sequential stop comes after the first slow one.
fn is_slow(i: usize) -> bool {
    i % SLOW_EVERY == SLOW_EVERY / 2
}

/// How many services a sequential stop reaches only after the deadline: it stops in reverse
/// order, and waits out the deadline on the last slow service; everything before it is late.
fn late_in_sequence() -> usize {
    (0..BIG).rev().find(|&i| is_slow(i)).unwrap_or(0)
}

/// One stop of benchmark 3.
struct DeadlineRun {
    /// From the call to the return.
    elapsed: Duration,
    /// Return time minus the deadline, in milliseconds (negative: returned before it).
    overrun_ms: f64,
    timed_out: usize,
    stopped: usize,
    other: usize,
    /// Whether every service reported timed out is a slow one.
    only_slow_timed_out: bool,
}

/// Builds and starts [`BIG`] services in [`BIG_GROUPS`] groups, one in [`SLOW_EVERY`] slow
/// ([`is_slow`]), and stops the host by `STOP_DEADLINE`. Then waits for the slow threads to
/// end, so that they do not load what runs next.
fn deadline_stop(stop_concurrently: bool) -> DeadlineRun {
    let slow_count = (0..BIG).filter(|&i| is_slow(i)).count();
    let parked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let per = BIG / BIG_GROUPS;
    let mut builder = HostBuilder::new()
        .shutdown_timeout(DEADLINE)
        .stop_concurrently(stop_concurrently);
    for k in 0..BIG_GROUPS {
        let mut group = Group::new(&format!("g{k}"));
        for i in k * per..(k + 1) * per {
            group = if is_slow(i) {
                group.background(&format!("s{i}"), slow(&parked, &done))
            } else {
                group.background(&format!("s{i}"), idle(&parked))
            };
        }
        builder = builder.add_group(group);
    }
    let host = builder.build().expect("build the host");
    host.start(DEADLINE).expect("start the host");
    await_count(&parked, BIG);

    let began = Instant::now();
    let deadline = began + STOP_DEADLINE;
    let report = host.stop(Deadline::at(deadline));
    let returned = Instant::now();

    let overrun_ms = if returned >= deadline {
        (returned - deadline).as_secs_f64() * 1e3
    } else {
        -((deadline - returned).as_secs_f64() * 1e3)
    };
    let mut run = DeadlineRun {
        elapsed: returned - began,
        overrun_ms,
        timed_out: 0,
        stopped: 0,
        other: 0,
        only_slow_timed_out: true,
    };
    for service in report.services() {
        match service.outcome {
            Outcome::TimedOut => {
                run.timed_out += 1;
                let index: Option<usize> = service
                    .name
                    .rsplit('/')
                    .next()
                    .and_then(|leaf| leaf.strip_prefix('s'))
                    .and_then(|i| i.parse().ok());
                run.only_slow_timed_out &= index.is_some_and(is_slow);
            }
            Outcome::Stopped => run.stopped += 1,
            _ => run.other += 1,
        }
    }
    drop(report);
    drop(host);
    let wait_until = Instant::now() + SLOW_SLEEP + Duration::from_secs(5);
    while done.load(Ordering::Acquire) < slow_count && Instant::now() < wait_until {
        thread::sleep(Duration::from_millis(10));
    }
    run
}

/// The floor under the late part of a sequential stop, from raw parts: `n` named threads,
/// each waiting on a flag of its own (as each service waits on its own token), the flags set
/// one by one, then every thread joined. Times the sets and the joins.
fn raw_late_floor(n: usize) -> Duration {
    let parked = Arc::new(AtomicUsize::new(0));
    let flags: Vec<Arc<RawFlag>> = (0..n).map(|_| Arc::new(RawFlag::new())).collect();
    let threads: Vec<JoinHandle<()>> = flags
        .iter()
        .enumerate()
        .map(|(i, flag)| {
            let (flag, parked) = (Arc::clone(flag), Arc::clone(&parked));
            thread::Builder::new()
                .name(format!("raw:{i}"))
                .spawn(move || {
                    parked.fetch_add(1, Ordering::Release);
                    flag.wait();
                })
                .expect("spawn a raw thread")
        })
        .collect();
    await_count(&parked, n);
    let began = Instant::now();
    for flag in &flags {
        flag.stop();
    }
    for t in threads {
        t.join().expect("raw thread");
    }
    began.elapsed()
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn deadline_table() {
    let bound_ms = (LATE_GRACE + SCHEDULING).as_secs_f64() * 1e3;
    let slow_count = (0..BIG).filter(|&i| is_slow(i)).count();
    let late = late_in_sequence();
    println!(
        "\n### stop of {BIG} services in {BIG_GROUPS} groups by a {STOP_DEADLINE:?} deadline, \
         1 in {SLOW_EVERY} ignoring its token ({} rounds)\n",
        common::rounds()
    );
    println!(
        "| stop mode | elapsed (median) | × deadline (median) | overrun past the deadline \
         (median / worst) | bound | met | late services | their raw floor (median) | overrun \
         / floor (median) | timed out | stopped | other |"
    );
    println!("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (mode, concurrently) in [("sequential (default)", false), ("stop_concurrently", true)] {
        let _warm_up = deadline_stop(concurrently);
        let mut runs = Vec::new();
        let mut floors = Vec::new();
        for _ in 0..common::rounds() {
            runs.push(deadline_stop(concurrently));
            if !concurrently {
                floors.push(raw_late_floor(late).as_secs_f64() * 1e3);
            }
        }
        let elapsed = median_of(runs.iter().map(|r| r.elapsed.as_secs_f64()).collect());
        // The bound the library states: the grace grows by 50 µs per late service, and the
        // tokens of the late services are fired after the deadline (their raw floor, from
        // this run, stands for that work).
        let late_now = if concurrently { slow_count } else { late };
        let firing_ms = if concurrently {
            0.0
        } else {
            median_of(floors.clone())
        };
        let bound_ms = bound_ms
            + (LATE_PER_SERVICE * u32::try_from(late_now).unwrap_or(u32::MAX)).as_secs_f64() * 1e3
            + firing_ms;
        let overruns: Vec<f64> = runs.iter().map(|r| r.overrun_ms).collect();
        let worst = overruns.iter().copied().fold(f64::MIN, f64::max);
        let (late_col, floor_col, ratio_col) = if concurrently {
            // Every token fired at the start: only the slow services are left at the deadline.
            (format!("{slow_count}"), "—".to_owned(), "—".to_owned())
        } else {
            let ratios: Vec<f64> = runs
                .iter()
                .zip(&floors)
                .map(|(r, f)| r.overrun_ms / f)
                .collect();
            (
                format!("{late}"),
                format!("{:.1} ms", median_of(floors.clone())),
                format!("{:.2}×", median_of(ratios)),
            )
        };
        let as_expected = runs.iter().all(|r| {
            r.timed_out == slow_count && r.stopped == BIG - slow_count && r.only_slow_timed_out
        });
        let range = |f: fn(&DeadlineRun) -> usize| {
            let min = runs.iter().map(f).min().unwrap_or(0);
            let max = runs.iter().map(f).max().unwrap_or(0);
            if min == max {
                format!("{min}")
            } else {
                format!("{min}–{max}")
            }
        };
        println!(
            "| {mode} | {:.1} ms | {:.4}× | {:+.1} ms / {worst:+.1} ms | ≤ +{bound_ms:.0} ms \
             (grace {} ms + 50 µs × {late_now} late + their raw floor + {} ms scheduling) | {} \
             | {late_col} | {floor_col} | {ratio_col} | {}{} | {} | {} |",
            elapsed * 1e3,
            elapsed / STOP_DEADLINE.as_secs_f64(),
            median_of(overruns.clone()),
            LATE_GRACE.as_millis(),
            SCHEDULING.as_millis(),
            if worst <= bound_ms { "yes" } else { "NO" },
            range(|r| r.timed_out),
            if as_expected {
                ""
            } else {
                " (NO: expected the slow ones only)"
            },
            range(|r| r.stopped),
            range(|r| r.other),
        );
    }
    println!(
        "\n(overrun: when `stop` returned minus its deadline; `met`: the worst round within the \
         bound. Expected outcomes: the {slow_count} slow services timed out, the other {} \
         stopped. Late services: those the stop reaches only after the deadline, stopped all at \
         once under the one grace; their raw floor: as many raw threads on flags of their own, \
         set one by one and joined, measured after each round)",
        BIG - slow_count
    );
}
