//! Work-queue throughput, 1 producer → 2 workers, 1,000,000 items per round, in the same run:
//! `TaskQueue` against a hand-rolled crossbeam `bounded(1024)` pool of boxed closures, the
//! `threadpool` crate and rayon's `ThreadPool::spawn`; `WorkQueue<u64>` against the same
//! hand-rolled pool. Median of per-round ratios (benches/common).
//!
//! Run: `cargo bench --bench queue` (`BENCH_ROUNDS=9` for more rounds, `BENCH_ITEMS` to change
//! the item count). Each round times from the first send until every job has run (thread
//! creation excluded); both sides of a row run the same job body.

#![allow(clippy::print_stdout)]
// The shared harness (benches/common) declares `pub` items for every bench that includes it.
#![allow(unreachable_pub)]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
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

/// The baseline: a crossbeam `bounded(1024)` channel of boxed closures, two worker threads.
fn hand_rolled(n: usize, job: impl Fn(usize) -> Job) -> Duration {
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
    let t = Instant::now();
    for i in 0..n {
        tx.send(job(i)).unwrap();
    }
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
    t.elapsed()
}

/// `TaskQueue` in a host: sends `n` tasks, then a draining stop (joins the workers).
fn task_queue(
    n: usize,
    task: impl Fn(usize) -> Box<dyn FnOnce(&StopToken) -> threadhost::ServiceResult + Send>,
) -> Duration {
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
        if producer.send(task(i)).is_err() {
            panic!("queue closed");
        }
    }
    let report = host.stop(Deadline::NEVER);
    let elapsed = t.elapsed();
    assert!(report.is_clean());
    assert_eq!(producer.metrics().completed, n as u64);
    elapsed
}

/// The same crossbeam pool carrying plain `u64`s: no box, no queue features.
fn raw_u64(n: usize) -> Duration {
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
    let t = Instant::now();
    for i in 0..n as u64 {
        tx.send(i).unwrap();
    }
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
    t.elapsed()
}

/// `WorkQueue<u64>` in a host: sends `n` items, then a draining stop.
fn work_queue_u64(n: usize) -> Duration {
    let (queue, producer) = WorkQueue::builder("bench")
        .capacity(CAPACITY)
        .workers(WORKERS)
        .build(|x: u64, _| {
            black_box(x);
            Ok(())
        })
        .unwrap();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    for i in 0..n as u64 {
        if producer.send(i).is_err() {
            panic!("queue closed");
        }
    }
    let report = host.stop(Deadline::NEVER);
    let elapsed = t.elapsed();
    assert!(report.is_clean());
    assert_eq!(producer.metrics().completed, n as u64);
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
    println!("queue throughput: 1 producer -> {WORKERS} workers, {n} items per round");
    let mut rows = Vec::new();

    rows.push(compare(
        "TaskQueue, boxed closures",
        "crossbeam bounded(1024) pool",
        Goal::SpeedupAtLeast(1.0),
        || {
            hand_rolled(n, |i| {
                Box::new(move || {
                    black_box(i);
                })
            })
        },
        || {
            task_queue(n, |i| {
                Box::new(move |_: &StopToken| {
                    black_box(i);
                    Ok(())
                })
            })
        },
    ));

    rows.push(compare(
        "TaskQueue, boxed closures",
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
        || {
            task_queue(n, |i| {
                Box::new(move |_: &StopToken| {
                    black_box(i);
                    Ok(())
                })
            })
        },
    ));

    rows.push(compare(
        "TaskQueue, boxed closures + latch",
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

    rows.push(compare(
        "WorkQueue<u64>, no allocation per item",
        "crossbeam bounded(1024) pool",
        Goal::SpeedupAtLeast(2.5),
        || {
            hand_rolled(n, |i| {
                Box::new(move || {
                    black_box(i);
                })
            })
        },
        || work_queue_u64(n),
    ));

    // Informative: the same crossbeam pool carrying plain `u64`s (no box, no queue features):
    // the ceiling any u64 queue can reach over the boxed pool on this machine.
    rows.push(compare(
        "raw crossbeam bounded(1024) of u64 (ceiling, no goal)",
        "crossbeam bounded(1024) pool",
        Goal::None,
        || {
            hand_rolled(n, |i| {
                Box::new(move || {
                    black_box(i);
                })
            })
        },
        || raw_u64(n),
    ));

    // Informative: what the queue's features cost over the raw channel, both carrying u64.
    rows.push(compare(
        "WorkQueue<u64> (overhead, no goal)",
        "raw crossbeam bounded(1024) of u64",
        Goal::None,
        || raw_u64(n),
        || work_queue_u64(n),
    ));

    let met = print_table("Work queue", &rows);
    println!("\nall goals met: {met}");
}
