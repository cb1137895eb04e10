//! A minimal benchmark harness shared by every bench in `benches/`: each comparison runs the
//! baseline and the candidate alternately in the same process, for several rounds, and
//! reports the median of the per-round ratios against a stated goal.
//!
//! Ratios, never absolute times, are the figures of record: they hold from machine to machine
//! far better than times do. `BENCH_ROUNDS` overrides the number of rounds (at least 5).

#![allow(dead_code, clippy::print_stdout)]

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// What a comparison must show.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// candidate time / baseline time must be at most this (e.g. 1.5 = "≤ 1.5× the baseline").
    TimeAtMost(f64),
    /// baseline time / candidate time must be at least this (e.g. 1.3 = "≥ 1.3× as fast").
    SpeedupAtLeast(f64),
    /// No goal; the figure is informative.
    None,
}

/// One line of the table.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    pub baseline: String,
    pub candidate_median: Duration,
    pub baseline_median: Duration,
    /// Median over rounds of candidate / baseline.
    pub time_ratio: f64,
    pub goal: Goal,
}

impl Row {
    pub fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::TimeAtMost(x) => Some(self.time_ratio <= x),
            Goal::SpeedupAtLeast(x) => Some(1.0 / self.time_ratio >= x),
            Goal::None => None,
        }
    }
}

/// The number of rounds: `BENCH_ROUNDS`, at least 5 (default 7).
pub fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(5)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times `f` once (it returns the measured duration itself, so setup can be excluded).
pub fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Runs `baseline` and `candidate` alternately for `rounds()` rounds (after one warm-up of
/// each); each closure returns the duration of the part it measures.
pub fn compare(
    name: &str,
    baseline_name: &str,
    goal: Goal,
    mut baseline: impl FnMut() -> Duration,
    mut candidate: impl FnMut() -> Duration,
) -> Row {
    let _ = baseline();
    let _ = candidate();
    let mut ratios = Vec::new();
    let mut b_times = Vec::new();
    let mut c_times = Vec::new();
    for round in 0..rounds() {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let (b, c) = if round % 2 == 0 {
            let b = baseline();
            (b, candidate())
        } else {
            let c = candidate();
            (baseline(), c)
        };
        ratios.push(c.as_secs_f64() / b.as_secs_f64().max(1e-12));
        b_times.push(b.as_secs_f64());
        c_times.push(c.as_secs_f64());
    }
    Row {
        name: name.to_owned(),
        baseline: baseline_name.to_owned(),
        candidate_median: Duration::from_secs_f64(median(c_times)),
        baseline_median: Duration::from_secs_f64(median(b_times)),
        time_ratio: median(ratios),
        goal,
    }
}

/// Prints the table (Markdown) and returns whether every goal was met.
pub fn print_table(title: &str, rows: &[Row]) -> bool {
    println!(
        "\n### {title} ({} rounds, median of per-round ratios)\n",
        rounds()
    );
    println!(
        "| benchmark | baseline | candidate | baseline time | time ratio | speed-up | goal | met |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |");
    let mut all = true;
    for r in rows {
        let goal = match r.goal {
            Goal::TimeAtMost(x) => format!("time ≤ {x}×"),
            Goal::SpeedupAtLeast(x) => format!("speed-up ≥ {x}×"),
            Goal::None => "—".to_owned(),
        };
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => {
                all = false;
                "NO"
            }
            None => "—",
        };
        println!(
            "| {} | {} | {:?} | {:?} | {:.2}× | {:.2}× | {} | {} |",
            r.name,
            r.baseline,
            r.candidate_median,
            r.baseline_median,
            r.time_ratio,
            1.0 / r.time_ratio,
            goal,
            met
        );
    }
    all
}

/// [`compare`] for closures that each time several parts of one run (a start, then the stop
/// that follows it): `parts` names each part and its goal, and each closure returns one
/// duration per part, in that order. One row per part, all from the same rounds (alternated
/// and warmed up as in [`compare`]); each row's ratio is the median of its own per-round
/// ratios.
pub fn compare_parts(
    parts: &[(&str, Goal)],
    baseline_name: &str,
    mut baseline: impl FnMut() -> Vec<Duration>,
    mut candidate: impl FnMut() -> Vec<Duration>,
) -> Vec<Row> {
    let _ = baseline();
    let _ = candidate();
    let n = parts.len();
    let mut ratios = vec![Vec::new(); n];
    let mut b_times = vec![Vec::new(); n];
    let mut c_times = vec![Vec::new(); n];
    for round in 0..rounds() {
        let (b, c) = if round % 2 == 0 {
            let b = baseline();
            (b, candidate())
        } else {
            let c = candidate();
            (baseline(), c)
        };
        assert!(
            b.len() == n && c.len() == n,
            "compare_parts: each closure returns one duration per part"
        );
        for k in 0..n {
            ratios[k].push(c[k].as_secs_f64() / b[k].as_secs_f64().max(1e-12));
            b_times[k].push(b[k].as_secs_f64());
            c_times[k].push(c[k].as_secs_f64());
        }
    }
    parts
        .iter()
        .zip(ratios.into_iter().zip(b_times.into_iter().zip(c_times)))
        .map(|(&(name, goal), (r, (b, c)))| Row {
            name: name.to_owned(),
            baseline: baseline_name.to_owned(),
            candidate_median: Duration::from_secs_f64(median(c)),
            baseline_median: Duration::from_secs_f64(median(b)),
            time_ratio: median(r),
            goal,
        })
        .collect()
}

/// The raw baselines' stop signal (the benches compare threadhost's against it).
/// A one-shot flag as a user would write it with parking_lot: set under the lock, notify all
/// before releasing it; wait re-checks under the lock.
pub(crate) struct RawFlag {
    set: Mutex<bool>,
    cond: Condvar,
}

impl RawFlag {
    pub(crate) fn new() -> RawFlag {
        RawFlag {
            set: Mutex::new(false),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn stop(&self) {
        let mut set = self.set.lock();
        *set = true;
        self.cond.notify_all();
    }

    pub(crate) fn wait(&self) {
        let mut set = self.set.lock();
        while !*set {
            self.cond.wait(&mut set);
        }
    }
}
