//! Work-queue throughput, in the same run, for two shapes: 1 producer → 2 workers and the
//! gateway's 4 producers → 2 workers (1,000,000 items per round in all, split between the
//! producers): `TaskQueue` against a hand-rolled crossbeam `bounded(1024)` pool of boxed
//! closures, `WorkQueue<u64>` against a raw crossbeam `bounded(1024)` channel of `u64` drained
//! by the same two workers; for 1 → 2 also the `threadpool` crate and rayon's
//! `ThreadPool::spawn`. Median of per-round ratios (benches/common), then a summary of the
//! four queue goals, each beside its baseline compared with itself in the same run (the
//! noise the goal is read against; `BENCH_PROFILE=noise` measures that noise over many runs).
//!
//! Run: `cargo bench --bench queue` (`BENCH_ROUNDS=9` for more rounds, `BENCH_ITEMS` to change
//! the item count). Each round times from the moment the producer threads are released until
//! every job has run (thread creation excluded); both sides of a row run the same job body.
//!
//! `BENCH_PROFILE=<mode>` runs a driver for `valgrind --tool=callgrind` instead (see
//! [`profile`]).

#![allow(clippy::print_stdout)]
// The shared harness (benches/common) declares `pub` items for every bench that includes it.
#![allow(unreachable_pub)]

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Goal, compare, print_table};
use threadhost::{Deadline, HostBuilder, StopToken, TaskQueue, WorkQueue};

const WORKERS: usize = 2;
const CAPACITY: usize = 1024;

fn items() -> usize {
    std::env::var("BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

type Job = Box<dyn FnOnce() + Send + 'static>;
type TaskFn = Box<dyn FnOnce(&StopToken) -> threadhost::ServiceResult + Send>;

/// Runs `producers` threads that send items `0..n` between them (`send(&sender, i)`), each
/// with its own clone of `sender`. The threads are created first and released together; the
/// returned instant is the release. The caller's clone is dropped before the release.
fn produce<S: Clone + Send + 'static, F: Fn(&S, usize) + Copy + Send + 'static>(
    producers: usize,
    n: usize,
    sender: S,
    send: F,
) -> (Instant, Vec<std::thread::JoinHandle<()>>) {
    let go = Arc::new(Barrier::new(producers + 1));
    let per = n / producers;
    let threads = (0..producers)
        .map(|p| {
            let sender = sender.clone();
            let go = Arc::clone(&go);
            let (from, to) = (p * per, if p + 1 == producers { n } else { (p + 1) * per });
            std::thread::Builder::new()
                .name(format!("bench:producer/{p}"))
                .spawn(move || {
                    go.wait();
                    for i in from..to {
                        send(&sender, i);
                    }
                })
                .unwrap()
        })
        .collect();
    drop(sender);
    go.wait();
    (Instant::now(), threads)
}

fn join(threads: Vec<std::thread::JoinHandle<()>>) {
    for t in threads {
        t.join().unwrap();
    }
}

/// The baseline of `TaskQueue`: a crossbeam `bounded(1024)` channel of boxed closures, two
/// worker threads, `producers` producer threads.
fn hand_rolled(producers: usize, n: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<Job>(CAPACITY);
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("bench:pool/{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })
                .unwrap()
        })
        .collect();
    drop(rx);
    let (t, threads) = produce(producers, n, tx, |tx, i| {
        tx.send(Box::new(move || {
            black_box(i);
        }))
        .unwrap();
    });
    join(threads);
    join(workers);
    t.elapsed()
}

/// `TaskQueue` in a host: `producers` threads send `n` tasks, then a draining stop (joins the
/// workers).
fn task_queue(producers: usize, n: usize) -> Duration {
    let (queue, producer) = TaskQueue::builder("bench")
        .capacity(CAPACITY)
        .workers(WORKERS)
        .build_tasks()
        .unwrap();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    let metrics = producer.clone();
    let (t, threads) = produce(producers, n, producer, |producer, i| {
        let task: TaskFn = Box::new(move |_: &StopToken| {
            black_box(i);
            Ok(())
        });
        if producer.send(task).is_err() {
            panic!("queue closed");
        }
    });
    join(threads);
    let report = host.stop(Deadline::NEVER);
    let elapsed = t.elapsed();
    assert!(report.is_clean());
    assert_eq!(metrics.metrics().completed, n as u64);
    elapsed
}

/// The baseline of `WorkQueue<u64>`: a raw crossbeam `bounded(1024)` channel of `u64`, drained
/// by two worker threads: no box, no queue features.
fn raw_u64(producers: usize, n: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("bench:raw/{i}"))
                .spawn(move || {
                    for x in rx {
                        black_box(x);
                    }
                })
                .unwrap()
        })
        .collect();
    drop(rx);
    let (t, threads) = produce(producers, n, tx, |tx, i| tx.send(i as u64).unwrap());
    join(threads);
    join(workers);
    t.elapsed()
}

/// `raw_u64` with what a lock-based seal costs by itself: each producer read-locks a
/// parking_lot `RwLock<Option<Sender>>` of its own around each send, as a queue producer
/// does with its slot. Informative: how much of the queue's gap is that lock.
fn raw_u64_locked(producers: usize, n: usize) -> Duration {
    /// A producer's own locked `Sender`: each clone gets a new lock, as a `Producer`'s slot.
    struct Locked(parking_lot::RwLock<Option<crossbeam_channel::Sender<u64>>>);
    impl Clone for Locked {
        fn clone(&self) -> Locked {
            Locked(parking_lot::RwLock::new(self.0.read().clone()))
        }
    }
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("bench:raw/{i}"))
                .spawn(move || {
                    for x in rx {
                        black_box(x);
                    }
                })
                .unwrap()
        })
        .collect();
    drop(rx);
    let sender = Locked(parking_lot::RwLock::new(Some(tx)));
    let (t, threads) = produce(producers, n, sender, |tx, i| {
        let guard = tx.0.read();
        guard.as_ref().unwrap().send(i as u64).unwrap();
    });
    join(threads);
    join(workers);
    t.elapsed()
}

/// `WorkQueue<u64>` in a host: `producers` threads send `n` items, then a draining stop.
fn work_queue_u64(producers: usize, n: usize) -> Duration {
    work_queue_u64_with(producers, n, None)
}

/// [`work_queue_u64`], the queue critical with `liveness` if `Some` (its workers beat).
fn work_queue_u64_with(producers: usize, n: usize, liveness: Option<Duration>) -> Duration {
    let (queue, producer) = WorkQueue::builder("bench")
        .capacity(CAPACITY)
        .workers(WORKERS)
        .build(|x: u64, _| {
            black_box(x);
            Ok(())
        })
        .unwrap();
    let service = match liveness {
        Some(window) => threadhost::Service::from(queue).liveness(window),
        None => queue.into_service(),
    };
    let host = HostBuilder::new().add_service(service).build().unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    let metrics = producer.clone();
    let (t, threads) = produce(producers, n, producer, |producer, i| {
        if producer.send(i as u64).is_err() {
            panic!("queue closed");
        }
    });
    join(threads);
    let report = host.stop(Deadline::NEVER);
    let elapsed = t.elapsed();
    assert!(report.is_clean());
    assert_eq!(metrics.metrics().completed, n as u64);
    elapsed
}

/// A count-down latch for pools that cannot be joined (rayon).
#[derive(Clone)]
struct Latch {
    left: Arc<AtomicUsize>,
    done: mpsc::SyncSender<()>,
}

impl Latch {
    fn new(n: usize) -> (Latch, mpsc::Receiver<()>) {
        let (done, rx) = mpsc::sync_channel(1);
        (
            Latch {
                left: Arc::new(AtomicUsize::new(n)),
                done,
            },
            rx,
        )
    }

    fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.send(()).unwrap();
        }
    }
}

fn main() {
    let n = items();
    if let Ok(mode) = std::env::var("BENCH_PROFILE") {
        profile(&mode, n);
        return;
    }
    let mut rows = Vec::new();
    // Each goal's row, and the row of its baseline against itself in the same run (the noise
    // the goal is read against).
    let mut goals = Vec::new();
    for producers in [1, 4] {
        let shape = format!("{producers} producer(s) -> {WORKERS} workers");
        let goal_rows = [
            only(
                &format!("TaskQueue, boxed closures, {shape}"),
                "crossbeam bounded(1024) pool of boxed closures",
                Goal::SpeedupAtLeast(1.0),
                || hand_rolled(producers, n),
                || task_queue(producers, n),
            ),
            only(
                &format!("WorkQueue<u64>, {shape}"),
                "raw crossbeam bounded(1024) of u64",
                Goal::SpeedupAtLeast(0.9),
                || raw_u64(producers, n),
                || work_queue_u64(producers, n),
            ),
        ];
        let floor_rows = [
            only(
                &format!("pool against itself (noise floor), {shape}"),
                "crossbeam bounded(1024) pool of boxed closures",
                Goal::None,
                || hand_rolled(producers, n),
                || hand_rolled(producers, n),
            ),
            only(
                &format!("raw u64 against itself (noise floor), {shape}"),
                "raw crossbeam bounded(1024) of u64",
                Goal::None,
                || raw_u64(producers, n),
                || raw_u64(producers, n),
            ),
        ];
        for (goal, floor) in goal_rows.into_iter().zip(floor_rows) {
            let Some(goal) = goal else { continue };
            rows.push(goal);
            let goal_at = rows.len() - 1;
            let floor_at = floor.map(|row| {
                rows.push(row);
                rows.len() - 1
            });
            goals.push((goal_at, floor_at));
        }
    }

    rows.extend(only(
        "TaskQueue, boxed closures, 1 producer",
        "threadpool 1.8 (2 threads)",
        Goal::SpeedupAtLeast(1.3),
        || {
            let pool = threadpool::ThreadPool::new(WORKERS);
            let t = Instant::now();
            for i in 0..n {
                pool.execute(move || {
                    black_box(i);
                });
            }
            pool.join();
            t.elapsed()
        },
        || task_queue(1, n),
    ));

    rows.extend(only(
        "TaskQueue, boxed closures + latch, 1 producer",
        "rayon ThreadPool::spawn (2 threads)",
        Goal::SpeedupAtLeast(1.7),
        || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(WORKERS)
                .build()
                .unwrap();
            let (latch, done) = Latch::new(n);
            let t = Instant::now();
            for i in 0..n {
                let latch = latch.clone();
                pool.spawn(move || {
                    black_box(i);
                    latch.count_down();
                });
            }
            done.recv().unwrap();
            t.elapsed()
        },
        || {
            let (latch, done) = Latch::new(n);
            let (queue, producer) = TaskQueue::builder("bench")
                .capacity(CAPACITY)
                .workers(WORKERS)
                .build_tasks()
                .unwrap();
            let host = HostBuilder::new()
                .add_service(queue.into_service())
                .build()
                .unwrap();
            host.start(Duration::from_secs(10)).unwrap();
            let t = Instant::now();
            for i in 0..n {
                let latch = latch.clone();
                if producer
                    .send_task(move |_| {
                        black_box(i);
                        latch.count_down();
                        Ok(())
                    })
                    .is_err()
                {
                    panic!("queue closed");
                }
            }
            done.recv().unwrap();
            let elapsed = t.elapsed();
            assert!(host.stop(Deadline::NEVER).is_clean());
            elapsed
        },
    ));

    rows.extend(only(
        "WorkQueue<u64>, no allocation per item, 1 producer",
        "crossbeam bounded(1024) pool of boxed closures",
        Goal::SpeedupAtLeast(2.5),
        || hand_rolled(1, n),
        || work_queue_u64(1, n),
    ));

    // Informative: the cost of a read lock around each send, on the raw channel itself.
    rows.extend(only(
        "raw u64 with a per-producer RwLock read around each send, 1 producer",
        "raw crossbeam bounded(1024) of u64",
        Goal::None,
        || raw_u64(1, n),
        || raw_u64_locked(1, n),
    ));

    println!("queue throughput: {n} items per round, {WORKERS} workers, capacity {CAPACITY}");
    let met = print_table("Work queue", &rows);
    // The four queue goals, on their own.
    println!("\n### Goals (median of {} rounds)\n", common::rounds());
    println!("| comparison | goal | ratio | met | its baseline against itself |");
    println!("| --- | --- | ---: | --- | ---: |");
    let mut goals_met = true;
    for &(i, floor) in &goals {
        let r = &rows[i];
        let Goal::SpeedupAtLeast(goal) = r.goal else {
            unreachable!()
        };
        let ok = r.met() == Some(true);
        goals_met &= ok;
        let floor = floor.map_or_else(
            || "—".to_owned(),
            |f| format!("{:.2}×", 1.0 / rows[f].time_ratio),
        );
        println!(
            "| {} vs {} | ≥ {goal:.1}× | {:.2}× | {} | {floor} |",
            r.name,
            r.baseline,
            1.0 / r.time_ratio,
            if ok { "yes" } else { "NO" }
        );
    }
    println!("\nthe four goals met: {goals_met}; every goal met: {met}");
}

/// [`compare`], unless `BENCH_ONLY` is set and not part of `name` (to rerun one row).
fn only(
    name: &str,
    baseline_name: &str,
    goal: Goal,
    baseline: impl FnMut() -> Duration,
    candidate: impl FnMut() -> Duration,
) -> Option<common::Row> {
    match std::env::var("BENCH_ONLY") {
        Ok(part) if !name.contains(&part) => None,
        _ => Some(compare(name, baseline_name, goal, baseline, candidate)),
    }
}

/// `BENCH_PROFILE=<mode>`: a driver for `valgrind --tool=callgrind` instead of the table
/// (instruction counts hold on a loaded machine, where times do not).
///
/// - `send`: one thread sends `BENCH_ITEMS` u64s into a `WorkQueue` that is not started
///   (capacity 2^20, so no send waits), then as many into a raw crossbeam `bounded(2^20)`:
///   the send path alone, in `profile_queue_sends` and `profile_raw_sends`; also prints the
///   time of a send of each (one thread, nothing contended).
/// - `flow`: one round of each side, 1 producer → 2 workers (valgrind runs one thread at a
///   time: the instruction counts per thread, not the interplay).
/// - `hand`, `task`, `raw`, `u64`: one round of one side (hand-rolled pool, `TaskQueue`, raw
///   u64 channel, `WorkQueue<u64>`), 1 producer → 2 workers: the total instructions per item
///   of each, all threads together; `hand4`, `task4`, `raw4`, `u644`: the same with 4
///   producers → 2 workers.
/// - `noise`: [`noise_study`] (wall clock, not for valgrind).
/// - `crit`: `WorkQueue<u64>` critical (a liveness window: its workers beat) against the same
///   queue not critical, 1 producer → 2 workers, 9 rounds each: medians (wall clock).
fn profile(mode: &str, n: usize) {
    match mode {
        "send" => {
            let (queue, producer) = WorkQueue::builder("profile")
                .capacity(1 << 20)
                .build(|x: u64, _| {
                    black_box(x);
                    Ok(())
                })
                .unwrap();
            let t = Instant::now();
            profile_queue_sends(&producer, n);
            let queue_ns = t.elapsed().as_nanos() as f64 / n as f64;
            drop(queue);
            let (tx, rx) = crossbeam_channel::bounded::<u64>(1 << 20);
            let t = Instant::now();
            profile_raw_sends(&tx, n);
            let raw_ns = t.elapsed().as_nanos() as f64 / n as f64;
            drop(rx);
            println!("a send, one thread, no receiver: queue {queue_ns:.1} ns, raw {raw_ns:.1} ns");
        }
        "flow" => {
            black_box(work_queue_u64(1, n));
            black_box(raw_u64(1, n));
            black_box(task_queue(1, n));
            black_box(hand_rolled(1, n));
        }
        "hand" | "hand4" => drop(black_box(hand_rolled(producers_of(mode), n))),
        "task" | "task4" => drop(black_box(task_queue(producers_of(mode), n))),
        "raw" | "raw4" => drop(black_box(raw_u64(producers_of(mode), n))),
        "u64" | "u644" => drop(black_box(work_queue_u64(producers_of(mode), n))),
        "crit" => {
            // A critical queue's workers (a beat per job; a timed wait when idle), against
            // the same queue not critical: 9 rounds each, alternated, medians printed.
            let (mut plain, mut critical) = (Vec::new(), Vec::new());
            for _ in 0..9 {
                plain.push(work_queue_u64(1, n));
                critical.push(work_queue_u64_with(1, n, Some(Duration::from_secs(5))));
            }
            plain.sort();
            critical.sort();
            println!(
                "WorkQueue<u64>, 1 producer -> 2 workers, median of 9: {:?} plain, {:?} critical",
                plain[4], critical[4]
            );
        }
        "noise" => noise_study(n),
        other => panic!(
            "BENCH_PROFILE={other}: send, flow, crit, noise, hand, task, raw or u64 (1 \
             producer), or hand4, task4, raw4, u644 (4 producers)"
        ),
    }
}

/// `BENCH_PROFILE=noise`: how often code exactly as fast as a goal's baseline meets the goal.
/// Each goal's baseline is compared with itself `NOISE_RUNS` times (default 10), each a whole
/// row of `rounds()` rounds as in the table; printed per goal: the spread of the runs' median
/// speed-ups, the share of runs that meet the goal, that share to the fifth power (the
/// chance of five consecutive runs meeting it, runs taken as independent), and the goal
/// divided by the lowest run: roughly the true speed-up a candidate needs for the five.
fn noise_study(n: usize) {
    let runs: usize = std::env::var("NOISE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    println!(
        "\n### Each goal's baseline against itself ({runs} runs of {} rounds)\n",
        common::rounds()
    );
    println!(
        "| baseline, shape | goal | lowest | median | highest | runs meeting it | five in a row | needed |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    type Side = fn(usize, usize) -> Duration;
    let sides: [(&str, f64, Side); 2] = [
        ("boxed pool", 1.0, hand_rolled),
        ("raw u64 channel", 0.9, raw_u64),
    ];
    for producers in [1, 4] {
        for (name, goal, side) in sides {
            let mut speedups: Vec<f64> = (0..runs)
                .map(|_| {
                    let row = compare(
                        name,
                        name,
                        Goal::None,
                        || side(producers, n),
                        || side(producers, n),
                    );
                    1.0 / row.time_ratio
                })
                .collect();
            speedups.sort_by(f64::total_cmp);
            let share = speedups.iter().filter(|&&s| s >= goal).count() as f64 / runs as f64;
            println!(
                "| {name}, {producers} -> {WORKERS} | ≥ {goal:.1}× | {:.2}× | {:.2}× | {:.2}× | {:.0} % | {:.1} % | {:.2}× |",
                speedups[0],
                speedups[runs / 2],
                speedups[runs - 1],
                share * 100.0,
                share.powi(5) * 100.0,
                goal / speedups[0],
            );
        }
    }
}

/// The producer count of a `BENCH_PROFILE` mode: 4 for the `…4` modes, else 1.
fn producers_of(mode: &str) -> usize {
    if mode.len() > 3 && mode.ends_with('4') {
        4
    } else {
        1
    }
}

#[inline(never)]
fn profile_queue_sends(producer: &threadhost::Producer<u64>, n: usize) {
    for i in 0..n as u64 {
        producer.send(i).unwrap();
    }
}

#[inline(never)]
fn profile_raw_sends(tx: &crossbeam_channel::Sender<u64>, n: usize) {
    for i in 0..n as u64 {
        tx.send(i).unwrap();
    }
}
