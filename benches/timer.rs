//! Timer benchmark: lateness and drift of a periodic service over 1000 ticks at 1 ms and
//! 10 ms, against a raw parking_lot `Condvar::wait_until` loop on absolute deadlines and the
//! naive `thread::sleep(period)` loop, run alternately in the same process.
//!
//! `cargo bench --bench timer` (`BENCH_ROUNDS=n` for more rounds, `BENCH_TICKS=n` to change
//! the 1000 ticks). Lateness is how long after its slot a tick begins; drift is how far tick N
//! begins from `origin + N·period`. Lateness is not the run time of a closure, so this bench
//! prints its own rows in the table format of `benches/common`.
//! Goals: median lateness ≤ 1.2× the raw loop's; drift ≤ 2× the median lateness.

#![allow(clippy::print_stdout, clippy::disallowed_methods)]

#[allow(unreachable_pub)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Goal, Row};
use crossbeam_channel::bounded;
use parking_lot::{Condvar, Mutex};
use threadhost::{HostBuilder, MissedTick, Periodic, Tick};

/// One run: every tick's lateness, and the drift of the last tick.
struct Run {
    lateness: Vec<Duration>,
    drift: Duration,
}

impl Run {
    fn median_lateness(&self) -> Duration {
        let mut v = self.lateness.clone();
        v.sort();
        v[v.len() / 2]
    }
}

fn ticks() -> usize {
    std::env::var("BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// threadhost: a periodic service (catching up like the raw loop, so that both run every slot).
fn periodic(period: Duration, n: usize) -> Run {
    let (tx, rx) = bounded(1);
    let mut lateness = Vec::with_capacity(n + 1);
    let service = Periodic::every(period)
        .missed(MissedTick::Burst { max: u32::MAX })
        .build("bench-timer", move |tick: &Tick<'_>| {
            lateness.push(tick.lateness());
            if lateness.len() == n + 1 {
                let _ = tx.send((std::mem::take(&mut lateness), tick.index()));
            }
            Ok(())
        })
        .expect("valid options");
    let host = HostBuilder::new()
        .add_service(service)
        .build()
        .expect("host");
    host.start(Duration::from_secs(5)).expect("start");
    let (mut lateness, last) = rx.recv().expect("ticks");
    assert_eq!(last as usize, n);
    let _report = host.stop(Duration::from_secs(5));
    // Absolute slots: tick N's lateness is its distance from origin + N·period.
    let drift = lateness[n];
    lateness.remove(0); // tick 0 is "immediately": no wait before it
    Run { lateness, drift }
}

/// Runs `f` on a new thread, as the periodic service runs on its own: every contender starts
/// from a fresh thread, so the scheduler treats them alike.
fn on_new_thread(f: impl FnOnce() -> Run + Send + 'static) -> Run {
    std::thread::Builder::new()
        .name("bench-loop".to_owned())
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the loop does not panic")
}

/// The raw loop: a parking_lot condvar waiting until `origin + k·period`.
fn raw_condvar(period: Duration, n: usize) -> Run {
    on_new_thread(move || raw_condvar_here(period, n))
}

fn raw_condvar_here(period: Duration, n: usize) -> Run {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let origin = Instant::now();
    let mut lateness = Vec::with_capacity(n);
    let mut drift = Duration::ZERO;
    let (stop, cond) = &*pair;
    for k in 1..=n {
        let deadline = origin + period * k as u32;
        let mut stopped = stop.lock();
        while !*stopped {
            if cond.wait_until(&mut stopped, deadline).timed_out() {
                break;
            }
        }
        drop(stopped);
        let late = Instant::now().saturating_duration_since(deadline);
        lateness.push(late);
        drift = late;
    }
    Run { lateness, drift }
}

/// The naive loop: sleep one period after each tick.
fn naive_sleep(period: Duration, n: usize) -> Run {
    on_new_thread(move || naive_sleep_here(period, n))
}

fn naive_sleep_here(period: Duration, n: usize) -> Run {
    let origin = Instant::now();
    let mut previous = origin;
    let mut lateness = Vec::with_capacity(n);
    let mut drift = Duration::ZERO;
    for k in 1..=n {
        std::thread::sleep(period);
        let now = Instant::now();
        lateness.push(now.saturating_duration_since(previous + period));
        drift = now.saturating_duration_since(origin + period * k as u32);
        previous = now;
    }
    Run { lateness, drift }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_d(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn row(name: &str, baseline: &str, c: &[Duration], b: &[Duration], goal: Goal) -> Row {
    let ratios = c
        .iter()
        .zip(b)
        .map(|(c, b)| c.as_secs_f64() / b.as_secs_f64().max(1e-12))
        .collect();
    Row {
        name: name.to_owned(),
        baseline: baseline.to_owned(),
        candidate_median: median_d(c),
        baseline_median: median_d(b),
        time_ratio: median(ratios),
        goal,
    }
}

fn main() {
    let n = ticks();
    let mut rows = Vec::new();
    for period in [Duration::from_millis(1), Duration::from_millis(10)] {
        let label = format!("{period:?}");
        // Warm-up.
        let _ = periodic(period, 20);
        let _ = raw_condvar(period, 20);
        let (mut th_late, mut raw_late, mut naive_late) = (vec![], vec![], vec![]);
        let (mut th_drift, mut raw_drift, mut naive_drift) = (vec![], vec![], vec![]);
        for round in 0..common::rounds() {
            // Alternate the order, so neither always runs on a warmer machine.
            let (th, raw) = if round % 2 == 0 {
                let th = periodic(period, n);
                (th, raw_condvar(period, n))
            } else {
                let raw = raw_condvar(period, n);
                (periodic(period, n), raw)
            };
            let naive = naive_sleep(period, n);
            th_late.push(th.median_lateness());
            raw_late.push(raw.median_lateness());
            naive_late.push(naive.median_lateness());
            th_drift.push(th.drift);
            raw_drift.push(raw.drift);
            naive_drift.push(naive.drift);
        }
        rows.push(row(
            &format!("median lateness @{label}"),
            "raw Condvar::wait_until loop",
            &th_late,
            &raw_late,
            Goal::TimeAtMost(1.2),
        ));
        rows.push(row(
            &format!("drift after {n} ticks @{label}"),
            "threadhost median lateness",
            &th_drift,
            &th_late,
            Goal::TimeAtMost(2.0),
        ));
        rows.push(row(
            &format!("raw loop drift after {n} ticks @{label}"),
            "raw loop median lateness",
            &raw_drift,
            &raw_late,
            Goal::None,
        ));
        rows.push(row(
            &format!("naive sleep(period) drift after {n} ticks @{label}"),
            "threadhost drift",
            &naive_drift,
            &th_drift,
            Goal::None,
        ));
        rows.push(row(
            &format!("naive sleep(period) median lateness per tick @{label}"),
            "threadhost median lateness",
            &naive_late,
            &th_late,
            Goal::None,
        ));
    }
    let met = common::print_table("Periodic timer: lateness and drift", &rows);
    println!(
        "\n(candidate / baseline columns are the median over rounds of the named quantity; \
         {n} ticks per run)"
    );
    if !met {
        println!("\nSome goals were NOT met.");
    }
}
