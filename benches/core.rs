//! Core benchmarks: stop-token wake, `Host::stop` and `Host::start` of 100 services, each as a
//! ratio to a raw baseline (parking_lot condvar, raw threads) measured in the same run.
//!
//! Run with `cargo bench --bench core` (`BENCH_ROUNDS=<n>` for more rounds). Every row times
//! only the part named in it: building and starting a host is outside the timed region of a
//! stop row, spawning is outside the timed region of a raw stop, and stopping/joining is
//! outside the timed region of a start row. The process exits 0 whatever the figures; the
//! table's `met` column says whether each goal held.
//!
//! Rows with a goal (from issue 2): the wake latency of a stop token (median over 10k
//! ping-pong handoffs, `stop()` to the waiter running) against a `Mutex<bool>` + `Condvar`;
//! `Host::stop` of 100 idle background services against one flag + `notify_all` + 100 joins;
//! `Host::start` of 100 background services against 100 raw spawns. Informative rows: the
//! concurrent modes, and a one-by-one start against its own floor built from raw parts (100
//! spawns, then per thread one command/reply round trip, which an ordered start cannot avoid).

#![allow(
    clippy::print_stdout,
    clippy::disallowed_methods, // thread::sleep to let waiters park; raw threads are the baseline
    missing_docs
)]

#[allow(unreachable_pub)] // the shared harness declares `pub` items for every bench
mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use threadhost::{Host, HostBuilder, StopSource, StopToken};

use common::{Goal, RawFlag, compare};

/// Stop/wake handoffs per ping-pong measurement (two per round trip).
const HANDOFFS: usize = 10_000;
/// Services (threads) per start/stop measurement.
const SERVICES: usize = 100;
/// Start/stop measurements summed per round, to steady the figures.
const REPS: usize = 5;
/// Generous deadline for every host call in the benchmarks (never reached).
const DEADLINE: Duration = Duration::from_secs(30);

fn main() {
    let rows = vec![
        compare(
            "stop-token wake: stop() to waiter running, median of 10k",
            "parking_lot Mutex<bool>+Condvar",
            Goal::TimeAtMost(1.5),
            raw_ping_pong,
            token_ping_pong,
        ),
        compare(
            "Host::stop, 100 idle background services",
            "flag + notify_all + 100 joins",
            Goal::TimeAtMost(1.5),
            || sum_reps(raw_stop),
            || sum_reps(|| host_stop(false)),
        ),
        compare(
            "Host::stop, 100 services, stop_concurrently",
            "flag + notify_all + 100 joins",
            Goal::None,
            || sum_reps(raw_stop),
            || sum_reps(|| host_stop(true)),
        ),
        compare(
            "Host::start, 100 background services",
            "100 raw thread spawns",
            Goal::TimeAtMost(1.5),
            || sum_reps(raw_spawn),
            || sum_reps(|| host_start(false)),
        ),
        compare(
            "Host::start, 100 background services",
            "100 raw spawns + 100 one-by-one handshakes",
            Goal::None,
            || sum_reps(raw_spawn_handshake),
            || sum_reps(|| host_start(false)),
        ),
        compare(
            "Host::start, 100 services, start_concurrently",
            "100 raw thread spawns",
            Goal::None,
            || sum_reps(raw_spawn),
            || sum_reps(|| host_start(true)),
        ),
    ];
    common::print_table("threadhost core", &rows);
    println!(
        "\n(ping-pong: {HANDOFFS} handoffs per measurement; start/stop: {SERVICES} threads, \
         {REPS} measurements summed per round)"
    );
}

fn sum_reps(mut f: impl FnMut() -> Duration) -> Duration {
    (0..REPS).map(|_| f()).sum()
}

// ---- 1. stop-token wake ----------------------------------------------------------------------

/// Two threads hand a stop back and forth `HANDOFFS` times; returns the median, over all
/// handoffs, of the time from just before `stop()` on one thread to just after `wait()`
/// returned on the other. Both sides use a fresh one-shot flag per handoff, allocated before
/// the loop, so the figure is the wake path only.
///
/// The median, not the loop's total time: on a loaded 2-core machine the total is dominated
/// by where the scheduler puts the two threads and by preemptions (its ratio swung from 0.5×
/// to 3× between runs), while the median latency is stable to a few percent.
fn ping_pong<T: Send + Sync + 'static>(
    make: impl Fn() -> T,
    stop: fn(&T),
    wait: fn(&T),
) -> Duration {
    let rounds = HANDOFFS / 2;
    let ping: Arc<Vec<T>> = Arc::new((0..rounds).map(|_| make()).collect());
    let pong: Arc<Vec<T>> = Arc::new((0..rounds).map(|_| make()).collect());
    let ready = Arc::new(std::sync::Barrier::new(2));
    // Each side records when it stopped and when it woke, in vectors it owns (no sharing in
    // the timed loop); latencies are paired up after the join.
    let partner = {
        let (ping, pong, ready) = (Arc::clone(&ping), Arc::clone(&pong), Arc::clone(&ready));
        thread::Builder::new()
            .name("bench:pong".into())
            .spawn(move || {
                let mut woke = Vec::with_capacity(rounds);
                let mut stopped = Vec::with_capacity(rounds);
                ready.wait();
                for k in 0..rounds {
                    wait(&ping[k]);
                    woke.push(Instant::now());
                    stopped.push(Instant::now());
                    stop(&pong[k]);
                }
                (woke, stopped)
            })
            .expect("spawn the partner thread")
    };
    let mut woke = Vec::with_capacity(rounds);
    let mut stopped = Vec::with_capacity(rounds);
    ready.wait();
    for k in 0..rounds {
        stopped.push(Instant::now());
        stop(&ping[k]);
        wait(&pong[k]);
        woke.push(Instant::now());
    }
    let (partner_woke, partner_stopped) = partner.join().expect("partner thread");
    let mut latencies: Vec<Duration> = stopped
        .iter()
        .zip(&partner_woke)
        .chain(partner_stopped.iter().zip(&woke))
        .map(|(s, w)| w.saturating_duration_since(*s))
        .collect();
    latencies.sort_unstable();
    latencies[latencies.len() / 2]
}

fn raw_ping_pong() -> Duration {
    ping_pong(RawFlag::new, RawFlag::stop, RawFlag::wait)
}

fn token_ping_pong() -> Duration {
    ping_pong(
        || {
            let source = StopSource::new();
            let token = source.token();
            (source, token)
        },
        |(source, _): &(StopSource, StopToken)| {
            black_box(source.stop());
        },
        |(_, token): &(StopSource, StopToken)| token.wait(),
    )
}

// ---- 2. stop of 100 idle services ------------------------------------------------------------

/// Waits until `count` reached `n`, then gives the last waiters time to park.
fn await_parked(count: &AtomicUsize, n: usize) {
    while count.load(Ordering::Acquire) < n {
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(2));
}

/// `SERVICES` raw threads waiting on one flag; times set + notify_all + every join.
fn raw_stop() -> Duration {
    let flag = Arc::new(RawFlag::new());
    let parked = Arc::new(AtomicUsize::new(0));
    let threads: Vec<JoinHandle<()>> = (0..SERVICES)
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
    await_parked(&parked, SERVICES);
    let began = Instant::now();
    flag.stop();
    for t in threads {
        t.join().expect("raw thread");
    }
    began.elapsed()
}

/// A host of `SERVICES` background services that each wait on their token; `parked` counts
/// the bodies that reached their wait.
fn idle_host(parked: &Arc<AtomicUsize>, start_concurrently: bool, stop_concurrently: bool) -> Host {
    let mut builder = HostBuilder::new()
        .shutdown_timeout(DEADLINE)
        .start_concurrently(start_concurrently)
        .stop_concurrently(stop_concurrently);
    for i in 0..SERVICES {
        let parked = Arc::clone(parked);
        builder = builder.background(&format!("idle-{i}"), move |ctx| {
            parked.fetch_add(1, Ordering::Release);
            ctx.token().wait();
            Ok(())
        });
    }
    builder.build().expect("build the host")
}

/// Times `Host::stop` of started, parked services (build and start are not timed).
fn host_stop(concurrently: bool) -> Duration {
    let parked = Arc::new(AtomicUsize::new(0));
    let host = idle_host(&parked, false, concurrently);
    host.start(DEADLINE).expect("start the host");
    await_parked(&parked, SERVICES);
    let began = Instant::now();
    let report = host.stop(DEADLINE);
    let elapsed = began.elapsed();
    assert!(report.is_clean(), "unclean stop in the benchmark: {report}");
    elapsed
}

// ---- 3. start of 100 services ----------------------------------------------------------------

/// Times `SERVICES` named raw spawns of threads that block until released; the release and
/// the joins are not timed.
fn raw_spawn() -> Duration {
    let flag = Arc::new(RawFlag::new());
    let began = Instant::now();
    let threads: Vec<JoinHandle<()>> = (0..SERVICES)
        .map(|i| {
            let flag = Arc::clone(&flag);
            thread::Builder::new()
                .name(format!("raw:{i}"))
                .spawn(move || flag.wait())
                .expect("spawn a raw thread")
        })
        .collect();
    let elapsed = began.elapsed();
    flag.stop();
    for t in threads {
        t.join().expect("raw thread");
    }
    elapsed
}

/// What a one-by-one start costs at least, built from raw parts shaped like the host's: one
/// mutex over every thread's command and reply flags, a condvar per thread for its command,
/// one for replies. Times `SERVICES` spawns, then, thread by thread, "go" and the wait for its
/// "done" — the round trip an ordered start needs, since a service's start must have returned
/// before the next one begins.
fn raw_spawn_handshake() -> Duration {
    struct Shared {
        state: Mutex<(Vec<bool>, Vec<bool>)>,
        cmd_conds: Vec<Condvar>,
        reply: Condvar,
    }
    let shared = Arc::new(Shared {
        state: Mutex::new((vec![false; SERVICES], vec![false; SERVICES])),
        cmd_conds: (0..SERVICES).map(|_| Condvar::new()).collect(),
        reply: Condvar::new(),
    });
    let release = Arc::new(RawFlag::new());
    let began = Instant::now();
    let threads: Vec<JoinHandle<()>> = (0..SERVICES)
        .map(|i| {
            let (shared, release) = (Arc::clone(&shared), Arc::clone(&release));
            thread::Builder::new()
                .name(format!("raw:{i}"))
                .spawn(move || {
                    {
                        let mut state = shared.state.lock();
                        while !state.0[i] {
                            shared.cmd_conds[i].wait(&mut state);
                        }
                        state.1[i] = true;
                        shared.reply.notify_all();
                    }
                    release.wait();
                })
                .expect("spawn a raw thread")
        })
        .collect();
    for i in 0..SERVICES {
        let mut state = shared.state.lock();
        state.0[i] = true;
        shared.cmd_conds[i].notify_one();
        while !state.1[i] {
            shared.reply.wait(&mut state);
        }
    }
    let elapsed = began.elapsed();
    release.stop();
    for t in threads {
        t.join().expect("raw thread");
    }
    elapsed
}

/// Times `Host::start` (build is not timed; the stop is not timed).
fn host_start(concurrently: bool) -> Duration {
    let parked = Arc::new(AtomicUsize::new(0));
    let host = idle_host(&parked, concurrently, true);
    let began = Instant::now();
    host.start(DEADLINE).expect("start the host");
    let elapsed = began.elapsed();
    let report = host.stop(DEADLINE);
    assert!(report.is_clean(), "unclean stop in the benchmark: {report}");
    elapsed
}
