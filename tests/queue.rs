//! WorkQueue / TaskQueue contracts: backpressure, send errors, full modes, drain and cancel on
//! stop, hand-back of unrun items, failure counting, worker names, metrics, option bounds,
//! and the regressions of the seal (items lost by blocked senders, workers leaked by a failed
//! seal, stop time under producer pressure).

#![cfg(feature = "queue")]
#![allow(clippy::print_stdout)] // the timing tests print their figures (`--nocapture`)

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    JobGate, PATIENCE, Probe, SECS5, ms, poll, start_host, start_host_around, stop_clean,
};

use threadhost::{
    Deadline, Error, FullMode, HostBuilder, Outcome, Producer, QueueMetrics, SendError,
    SendTimeoutError, StopToken, TaskQueue, TrySendError, WorkQueue,
};

/// A generous bound for "returns promptly" on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(500);

type Seen = Arc<Mutex<Vec<u64>>>;

fn seen() -> Seen {
    Arc::new(Mutex::new(Vec::new()))
}

fn recorder(seen: &Seen) -> impl Fn(u64, &StopToken) -> threadhost::ServiceResult + use<> {
    let seen = Arc::clone(seen);
    move |x, _| {
        seen.lock().unwrap().push(x);
        Ok(())
    }
}

/// A log capture shared by the whole test binary (the logger is global).
mod capture {
    use std::sync::{Mutex, Once};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INIT: Once = Once::new();

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LINES
                .lock()
                .unwrap()
                .push(format!("{} {}", record.level(), record.args()));
        }
        fn flush(&self) {}
    }

    pub(crate) fn install() {
        INIT.call_once(|| {
            log::set_boxed_logger(Box::new(Capture)).unwrap();
            log::set_max_level(log::LevelFilter::Info);
        });
    }

    pub(crate) fn contains(all: &[&str]) -> bool {
        LINES
            .lock()
            .unwrap()
            .iter()
            .any(|line| all.iter().all(|part| line.contains(part)))
    }
}

#[test]
fn smoke() {
    let seen = seen();
    let (queue, producer) = WorkQueue::builder("smoke").build(recorder(&seen)).unwrap();
    let host = start_host_around(queue);
    for i in 0..10 {
        producer.send(i).unwrap();
    }
    stop_clean(&host);
    // One worker: in order.
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    let m = producer.metrics();
    assert_eq!((m.sent, m.completed, m.depth, m.in_flight), (10, 10, 0, 0));
    assert!(m.closed);
}

#[test]
fn items_sent_before_start_run_after_start() {
    let seen = seen();
    let (queue, producer) = WorkQueue::builder("early").build(recorder(&seen)).unwrap();
    producer.send(1).unwrap();
    producer.try_send(2).unwrap();
    producer.send_timeout(3, ms(10)).unwrap();
    assert_eq!(producer.len(), 3);
    assert!(seen.lock().unwrap().is_empty());
    let host = start_host_around(queue);
    stop_clean(&host);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
}

#[test]
fn send_blocks_while_full_and_send_timeout_returns_item() {
    let (gate, handler) = JobGate::new();
    let (queue, producer) = WorkQueue::builder("full")
        .capacity(2)
        .build(handler)
        .unwrap();
    let host = start_host_around(queue);
    producer.send(1).unwrap();
    assert_eq!(gate.started(), 1); // the worker holds item 1
    producer.send(2).unwrap();
    producer.send(3).unwrap(); // the queue is now full

    let t = Instant::now();
    let err = producer.send_timeout(4, ms(100)).unwrap_err();
    assert!(t.elapsed() >= ms(100));
    assert!(err.is_timeout());
    assert_eq!(err.into_inner(), 4);
    assert_eq!(producer.try_send(5), Err(TrySendError::Full(5)));

    // Backpressure: a blocked `send` completes once a worker makes room.
    let p = producer.clone();
    let blocked = std::thread::Builder::new()
        .spawn(move || p.send(6))
        .unwrap();
    gate.release(1); // item 1 done; the worker takes item 2, making room
    assert_eq!(blocked.join().unwrap(), Ok(()));
    gate.release(4);
    stop_clean(&host);
    let m = producer.metrics();
    assert_eq!((m.sent, m.completed), (4, 4), "{m}");
}

#[test]
fn blocked_sender_wakes_on_close_with_its_item() {
    let (gate, handler) = JobGate::new();
    let (queue, producer) = WorkQueue::builder("closing")
        .capacity(1)
        .build(handler)
        .unwrap();
    let host = start_host_around(queue);
    producer.send(1).unwrap();
    assert_eq!(gate.started(), 1);
    producer.send(2).unwrap(); // full
    let p = producer.clone();
    let (entered_tx, entered) = mpsc::channel();
    let blocked = std::thread::Builder::new()
        .spawn(move || {
            entered_tx.send(()).unwrap();
            p.send(3)
        })
        .unwrap();
    entered.recv().unwrap();
    // Stop from another thread: the queue closes at once, the blocked sender wakes.
    let stopper = std::thread::Builder::new()
        .spawn(move || host.stop(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    assert_eq!(blocked.join().unwrap(), Err(SendError(3)));
    assert!(t.elapsed() < SLACK + SLACK, "{:?}", t.elapsed());
    gate.release(2);
    assert!(stopper.join().unwrap().is_clean());
    let m = producer.metrics();
    assert_eq!((m.sent, m.completed, m.returned), (2, 2, 0), "{m}");
    assert_eq!(
        producer.send_deadline(4, ms(10)),
        Err(SendTimeoutError::Closed(4))
    );
    assert_eq!(producer.try_send(5), Err(TrySendError::Closed(5)));
}

fn drop_mode_case(mode: FullMode) -> (Vec<u64>, Vec<u64>, QueueMetrics) {
    let seen = seen();
    let dropped = seen_vec();
    let d = Arc::clone(&dropped);
    let (queue, producer) = WorkQueue::builder("drops")
        .capacity(2)
        .full_mode(mode)
        .on_drop(move |x| d.lock().unwrap().push(x))
        .build(recorder(&seen))
        .unwrap();
    // Not started: the items stay queued, so the queue is deterministically full.
    for i in 1..=4 {
        producer.send(i).unwrap();
    }
    let host = start_host_around(queue);
    stop_clean(&host);
    let ran = seen.lock().unwrap().clone();
    let dropped = dropped.lock().unwrap().clone();
    (ran, dropped, producer.metrics())
}

fn seen_vec() -> Seen {
    seen()
}

#[test]
fn drop_oldest_evicts_the_head_and_counts_it() {
    let (ran, dropped, m) = drop_mode_case(FullMode::DropOldest);
    assert_eq!(dropped, [1, 2]);
    assert_eq!(ran, [3, 4]);
    assert_eq!((m.sent, m.dropped, m.completed), (4, 2, 2));
}

#[test]
fn drop_newest_drops_the_new_item_and_counts_it() {
    let (ran, dropped, m) = drop_mode_case(FullMode::DropNewest);
    assert_eq!(dropped, [3, 4]);
    assert_eq!(ran, [1, 2]);
    assert_eq!((m.sent, m.dropped, m.completed), (4, 2, 2));
}

#[test]
fn drop_modes_without_callback_still_count() {
    let (queue, producer) = WorkQueue::builder("silent")
        .capacity(1)
        .full_mode(FullMode::DropOldest)
        .build(|_: u64, _| Ok(()))
        .unwrap();
    producer.send(1).unwrap();
    producer.send(2).unwrap();
    assert_eq!(producer.metrics().dropped, 1);
    drop(queue);
}

#[test]
fn reject_hands_the_item_back_at_once() {
    let (queue, producer) = WorkQueue::builder("reject")
        .capacity(1)
        .full_mode(FullMode::Reject)
        .build(|_: u64, _| Ok(()))
        .unwrap();
    producer.send(1).unwrap();
    assert_eq!(producer.try_send(2), Err(TrySendError::Full(2)));
    let t = Instant::now();
    assert_eq!(producer.send(3), Err(SendError(3)));
    assert_eq!(
        producer.send_timeout(4, Duration::from_secs(10)),
        Err(SendTimeoutError::Full(4))
    );
    assert!(
        producer
            .send_deadline(5, Deadline::NEVER)
            .unwrap_err()
            .is_full()
    );
    assert!(t.elapsed() < SLACK);
    let m = producer.metrics();
    assert_eq!((m.sent, m.dropped, m.depth), (1, 0, 1));
    drop(queue);
}

#[test]
fn capacity_zero_is_an_invalid_option() {
    let err = WorkQueue::builder("zero")
        .capacity(0)
        .build(|_: u64, _| Ok(()))
        .unwrap_err();
    match &err {
        Error::InvalidOption { name, value, .. } => {
            assert!(name.contains("capacity") && name.contains("zero"), "{name}");
            assert_eq!(value, "0");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = WorkQueue::builder("nobody")
        .workers(0)
        .build(|_: u64, _| Ok(()))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption { ref name, .. } if name.contains("workers")));
}

#[test]
fn failing_and_panicking_jobs_are_counted_and_logged_worker_survives() {
    capture::install();
    let seen = seen();
    let s = Arc::clone(&seen);
    let (queue, producer) = WorkQueue::builder("flaky")
        .build(move |x: u64, _| {
            let worker = std::thread::current().name().unwrap().to_owned();
            assert_eq!(worker, "th:flaky/0");
            match x {
                1 => Err("bad reading".into()),
                2 => panic!("job {x} exploded"),
                _ => {
                    s.lock().unwrap().push(x);
                    Ok(())
                }
            }
        })
        .unwrap();
    let host = start_host_around(queue);
    for x in [0, 1, 2, 3] {
        producer.send(x).unwrap();
    }
    stop_clean(&host);
    // The single worker survived the error and the panic and ran item 3.
    assert_eq!(*seen.lock().unwrap(), [0, 3]);
    let m = producer.metrics();
    assert_eq!((m.completed, m.failed, m.panicked), (2, 1, 1), "{m}");
    assert!(capture::contains(&[
        "ERROR",
        "queue `flaky`",
        "bad reading"
    ]));
    assert!(capture::contains(&[
        "ERROR",
        "queue `flaky`",
        "panicked",
        "job 2 exploded"
    ]));
}

/// A job is cancelled (not failed) when it returns `Stopped` after the jobs' token fired;
/// another error after the token fired is still a failure (logged as an error), and `Ok` after
/// it is a completion. Each is its own outcome in the metrics, and the invariant holds.
#[test]
fn a_job_cancelled_by_the_stop_is_counted_as_cancelled_not_failed() {
    capture::install();
    let (started_tx, started) = mpsc::channel::<u64>();
    let started_tx = Mutex::new(started_tx);
    let (queue, producer) = WorkQueue::builder("cancel-outcomes")
        .workers(3)
        .drain_on_stop(false)
        .build(move |x: u64, token: &StopToken| {
            started_tx.lock().unwrap().send(x).unwrap();
            token.wait(); // until the stop cancels the jobs
            match x {
                0 => Err(threadhost::Stopped.into()),
                1 => Err("disk full while stopping".into()),
                _ => Ok(()),
            }
        })
        .unwrap();
    let handle = queue.handle();
    let host = HostBuilder::new().add_service(queue).build().unwrap();
    host.start(PATIENCE).unwrap();
    for x in 0..3 {
        producer.send(x).unwrap();
    }
    // All three jobs run (one per worker) before the stop.
    let mut running: Vec<u64> = (0..3).map(|_| started.recv().unwrap()).collect();
    running.sort_unstable();
    assert_eq!(running, [0, 1, 2]);
    assert!(host.stop(PATIENCE).is_clean());
    let q = handle.take_report().unwrap();
    assert!(q.cancelled);
    let m = q.metrics;
    assert_eq!(
        (m.completed, m.failed, m.cancelled, m.panicked, m.returned),
        (1, 1, 1, 0, 0),
        "{m}"
    );
    assert_eq!(m.sent, m.settled(), "{m}");
    assert_eq!(
        m.sent,
        m.completed + m.failed + m.cancelled + m.panicked + m.dropped + m.returned
    );
    assert!(m.to_string().contains("failed 1, cancelled 1,"), "{m}");
    assert!(capture::contains(&[
        "INFO",
        "queue `cancel-outcomes`: a job was cancelled by the stop"
    ]));
    assert!(capture::contains(&[
        "ERROR",
        "queue `cancel-outcomes`: a job failed: disk full while stopping"
    ]));
}

/// `Stopped` returned while the jobs' token has not fired (the queue did not cancel the job:
/// e.g. a token of the job's own) is a failure.
#[test]
fn stopped_returned_without_a_cancellation_is_a_failure() {
    let (queue, producer) = WorkQueue::builder("own-token")
        .build(|x: u64, _: &StopToken| match x {
            0 => Err(threadhost::Stopped.into()),
            _ => Ok(()),
        })
        .unwrap();
    let handle = queue.handle();
    let host = HostBuilder::new().add_service(queue).build().unwrap();
    host.start(PATIENCE).unwrap();
    producer.send(0).unwrap();
    producer.send(1).unwrap();
    assert!(host.stop(PATIENCE).is_clean()); // drains both: the token never fires
    let q = handle.take_report().unwrap();
    assert!(!q.cancelled);
    let m = q.metrics;
    assert_eq!((m.completed, m.failed, m.cancelled), (1, 1, 0), "{m}");
    assert_eq!(m.sent, m.settled(), "{m}");
}

#[test]
fn worker_threads_are_named_after_the_queue() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let n = Arc::clone(&names);
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let b = Arc::clone(&barrier);
    let (queue, producer) = WorkQueue::builder("named")
        .workers(3)
        .build(move |_: u64, _| {
            n.lock()
                .unwrap()
                .push(std::thread::current().name().unwrap().to_owned());
            b.wait(); // each of the 3 jobs on a different worker
            Ok(())
        })
        .unwrap();
    let host = start_host_around(queue);
    for i in 0..3 {
        producer.send(i).unwrap();
    }
    assert!(host.stop(Duration::from_secs(10)).is_clean());
    let mut names = names.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["th:named/0", "th:named/1", "th:named/2"]);
}

#[test]
fn stop_drains_what_is_queued() {
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let (queue, producer) = WorkQueue::builder("drain")
        .capacity(100)
        .build(move |_: u64, token: &StopToken| {
            token.sleep(ms(2))?;
            c.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let handle = queue.handle();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    for i in 0..50 {
        producer.send(i).unwrap();
    }
    host.start(SECS5).unwrap();
    assert!(host.stop(Duration::from_secs(20)).is_clean());
    assert_eq!(count.load(Ordering::Relaxed), 50);
    let report = handle.take_report().unwrap();
    assert!(!report.cancelled);
    assert!(report.unrun.is_empty());
    assert_eq!((report.metrics.completed, report.metrics.returned), (50, 0));
    assert!(handle.take_report().is_none(), "taken once");
}

#[test]
fn stop_cancels_at_the_deadline_and_hands_back_unrun_items() {
    let unrun = seen();
    let u = Arc::clone(&unrun);
    let (started_tx, started) = mpsc::channel::<u64>();
    let started_tx = Mutex::new(started_tx);
    let (queue, producer) = WorkQueue::builder("deadline")
        .on_unrun(move |items| u.lock().unwrap().extend(items))
        .build(move |x: u64, token: &StopToken| {
            started_tx.lock().unwrap().send(x).unwrap();
            token.wait(); // runs until the jobs' token fires
            Err(threadhost::Stopped.into())
        })
        .unwrap();
    let handle = queue.handle();
    let host = start_host_around(queue);
    for i in 1..=5 {
        producer.send(i).unwrap();
    }
    assert_eq!(started.recv().unwrap(), 1);
    let t = Instant::now();
    let report = host.stop(ms(600));
    assert!(t.elapsed() < ms(600) + SLACK, "{:?}", t.elapsed());
    assert!(report.is_clean(), "{report}");
    assert_eq!(*unrun.lock().unwrap(), [2, 3, 4, 5]);
    let q = handle.take_report().unwrap();
    assert!(q.cancelled);
    assert_eq!(q.detached_workers, 0);
    assert!(q.unrun.is_empty(), "on_unrun took them");
    let m = q.metrics;
    // The job returned `Stopped` after the token fired: cancelled, not failed.
    assert_eq!(
        (m.sent, m.failed, m.cancelled, m.returned),
        (5, 0, 1, 4),
        "{m}"
    );
    assert_eq!(m.sent, m.settled());
}

#[test]
fn drain_on_stop_false_cancels_at_once() {
    let (queue, producer) = WorkQueue::builder("abort")
        .drain_on_stop(false)
        .build(|_: u64, token: &StopToken| {
            token.wait();
            Ok(())
        })
        .unwrap();
    let handle = queue.handle();
    let host = start_host_around(queue);
    for i in 0..10 {
        producer.send(i).unwrap();
    }
    let t = Instant::now();
    assert!(host.stop(Duration::from_secs(30)).is_clean());
    assert!(t.elapsed() < SLACK * 2, "{:?}", t.elapsed());
    let q = handle.take_report().unwrap();
    assert!(q.cancelled);
    // Without on_unrun, the items are in the report, in queue order.
    let m = q.metrics;
    assert_eq!(m.sent, 10);
    assert_eq!(m.completed + m.returned, 10, "{m}");
    assert_eq!(q.unrun.len() as u64, m.returned);
    // Exactly the items that never started: the tail of the queue. Their order is normally
    // queue order, but an item a worker received at the moment of the cancel can come last
    // under heavy load (seen once in 373 loaded runs; see `QueueReport::unrun`).
    let first = 10 - q.unrun.len() as u64;
    let mut unrun = q.unrun.clone();
    unrun.sort_unstable();
    assert_eq!(unrun, (first..10).collect::<Vec<_>>());
}

#[test]
fn stop_detaches_and_counts_a_worker_that_ignores_its_token() {
    let (gate, handler) = JobGate::new();
    let (queue, producer) = WorkQueue::builder("stuck").build(handler).unwrap();
    let handle = queue.handle();
    let host = start_host_around(queue);
    producer.send(1).unwrap();
    producer.send(2).unwrap();
    assert_eq!(gate.started(), 1);
    let t = Instant::now();
    let report = host.stop(ms(400));
    assert!(t.elapsed() < ms(400) + SLACK, "{:?}", t.elapsed());
    let queue_outcome = &report.services()[0].outcome;
    // Normally the queue's stop hook detaches the stuck worker just before the deadline and
    // fails naming it. On a starved machine the hook may reply after the host's deadline:
    // then the host reports the whole queue timed out, and the queue's own report follows
    // as soon as its hook returns (there is no event to wait on; poll, bounded).
    let late = matches!(queue_outcome, Outcome::TimedOut);
    assert!(
        late || matches!(queue_outcome, Outcome::Failed(f) if f.to_string().contains("detached")),
        "{report}"
    );
    let q = if late {
        poll("the queue's report", || handle.take_report())
    } else {
        handle.take_report().unwrap()
    };
    assert_eq!(q.detached_workers, 1);
    assert_eq!(q.unrun, [2]);
    assert_eq!(q.metrics.in_flight, 1);
    gate.release(1); // let the detached worker finish
}

#[test]
fn idle_workers_wake_on_stop() {
    let (queue, _producer) = WorkQueue::builder("idle")
        .workers(4)
        .build(|_: u64, _| Ok(()))
        .unwrap();
    let handle = queue.handle();
    let host = start_host_around(queue);
    let t = Instant::now();
    assert!(host.stop(Duration::from_secs(30)).is_clean());
    // Well before any drain deadline or cancel grace: the idle workers were woken.
    assert!(t.elapsed() < SLACK, "{:?}", t.elapsed());
    let q = handle.take_report().unwrap();
    assert!(!q.cancelled);
    assert_eq!(q.detached_workers, 0);
}

#[test]
fn metrics_show_depth_and_in_flight() {
    let (gate, handler) = JobGate::new();
    let (queue, producer) = WorkQueue::builder("metrics")
        .capacity(8)
        .build(handler)
        .unwrap();
    let host = start_host_around(queue);
    for i in 0..4 {
        producer.send(i).unwrap();
    }
    gate.started();
    let m = producer.metrics();
    assert_eq!(
        (m.sent, m.depth, m.capacity, m.in_flight, m.workers),
        (4, 3, 8, 1, 1),
        "{m}"
    );
    gate.release(4);
    stop_clean(&host);
    let m = producer.metrics();
    assert_eq!((m.depth, m.in_flight, m.completed), (0, 0, 4));
}

#[test]
fn dropping_a_queue_that_never_started_hands_back_and_wakes_senders() {
    let unrun = seen();
    let u = Arc::clone(&unrun);
    let (queue, producer) = WorkQueue::builder("never")
        .capacity(2)
        .on_unrun(move |items| u.lock().unwrap().extend(items))
        .build(|_: u64, _| Ok(()))
        .unwrap();
    producer.send(1).unwrap();
    producer.send(2).unwrap();
    let p = producer.clone();
    let (entered_tx, entered) = mpsc::channel();
    let blocked = std::thread::Builder::new()
        .spawn(move || {
            entered_tx.send(()).unwrap();
            p.send(3)
        })
        .unwrap();
    entered.recv().unwrap();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    drop(host); // never started
    assert_eq!(blocked.join().unwrap(), Err(SendError(3)));
    assert_eq!(*unrun.lock().unwrap(), [1, 2]);
    let m = producer.metrics();
    assert_eq!((m.sent, m.returned), (2, 2));
    assert!(producer.is_closed());
}

#[test]
fn task_queue_runs_closures_with_the_jobs_token() {
    let (queue, producer) = TaskQueue::builder("tasks")
        .workers(2)
        .cancel_grace(ms(300))
        .build_tasks()
        .unwrap();
    let host = start_host_around(queue);
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..10 {
        let d = Arc::clone(&done);
        producer
            .send_task(move |_token| {
                d.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
    }
    // A task that runs until cancelled: the stop drains the rest, then cancels it.
    let (tx, rx) = mpsc::channel();
    producer
        .send_task(move |token| {
            tx.send(()).unwrap();
            token.wait();
            Ok(())
        })
        .unwrap();
    rx.recv().unwrap();
    let t = Instant::now();
    assert!(host.stop(Duration::from_secs(1)).is_clean());
    assert!(t.elapsed() < Duration::from_secs(1) + SLACK);
    assert_eq!(done.load(Ordering::Relaxed), 10);
    assert_eq!(producer.metrics().completed, 11);
}

#[test]
fn producer_is_clone_send_sync_and_errors_hide_payloads() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Producer<u64>>();
    assert_traits::<Producer<threadhost::Task>>();
    assert_traits::<threadhost::QueueHandle<Vec<u8>>>();

    struct Secret;
    assert_eq!(format!("{:?}", SendError(Secret)), "SendError(..)");
    assert_eq!(format!("{:?}", TrySendError::Full(Secret)), "Full(..)");
    assert_eq!(format!("{:?}", TrySendError::Closed(Secret)), "Closed(..)");
    assert_eq!(
        format!("{:?}", SendTimeoutError::Timeout(Secret)),
        "Timeout(..)"
    );
    assert_eq!(format!("{:?}", SendTimeoutError::Full(Secret)), "Full(..)");
    let e: TrySendError<u8> = SendError(7).into();
    assert!(e.is_closed() && !e.is_full());
    let e: SendTimeoutError<u8> = SendError(8).into();
    assert!(e.is_closed() && !e.is_timeout() && !e.is_full());
    assert_eq!(e.into_inner(), 8);
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(TrySendError::Full(1u8));
    assert_eq!(boxed.to_string(), "sending on a full queue");
}

#[test]
fn jobs_token_is_not_the_service_token() {
    // During the drain the host has already fired the queue service's token; the jobs' token
    // must not fire while the drain has time left.
    let stopping = Arc::new(Mutex::new(None::<StopToken>));
    let s = Arc::clone(&stopping);
    let fired_during_job = Arc::new(AtomicU64::new(0));
    let f = Arc::clone(&fired_during_job);
    let (queue, producer) = WorkQueue::builder("tokens")
        .build(move |x: u64, token: &StopToken| {
            if x == 0 {
                // Hold the worker until the host's stop has begun.
                let stopping = s.lock().unwrap().clone().unwrap();
                stopping.wait();
            }
            if token.is_stopped() {
                f.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let host = HostBuilder::new()
        .add_service(queue.into_service())
        .build()
        .unwrap();
    *stopping.lock().unwrap() = Some(host.handle().stopping());
    for i in 0..20 {
        producer.send(i).unwrap();
    }
    host.start(SECS5).unwrap();
    stop_clean(&host);
    assert_eq!(fired_during_job.load(Ordering::Relaxed), 0);
    assert_eq!(producer.metrics().completed, 20);
}

/// Regression (defect: an accepted item lost). Senders wait on a full queue that never started
/// (timed sends, retried: each pass clones the channel's sender and waits on it); the queue is
/// dropped (directly, or with the host that holds it). A send whose wait resolved after the
/// drop's sweep had made room used to leave its item in a channel nobody received from: the
/// send returned `Ok`, and the item was neither run nor handed back (metrics "sent 2, queued
/// 1/1, returned 1"). Every accepted item must come back through `on_unrun`.
#[test]
fn dropping_a_queue_that_never_started_hands_back_what_blocked_senders_got_in() {
    const ROUNDS: u64 = 600;
    const CAPACITY: u64 = 1;
    const SENDERS: u64 = 3;
    for round in 0..ROUNDS {
        let unrun = seen();
        let u = Arc::clone(&unrun);
        let (queue, producer) = WorkQueue::builder("blocked")
            .capacity(CAPACITY as usize)
            .on_unrun(move |items| u.lock().unwrap().extend(items))
            .build(|_: u64, _| Ok(()))
            .unwrap();
        for i in 0..CAPACITY {
            producer.send(i).unwrap(); // full
        }
        let (entered_tx, entered) = mpsc::channel();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let p = producer.clone();
                let entered_tx = entered_tx.clone();
                common::spawn("blocked-sender", move || {
                    let mut accepted = Vec::new();
                    let mut next = (s + 1) << 32;
                    loop {
                        match p.send_timeout(next, Duration::from_micros(20)) {
                            Ok(()) => {
                                accepted.push(next);
                                next += 1;
                            }
                            // Waited on the full queue (at least once: tell the test).
                            Err(SendTimeoutError::Timeout(_)) => {
                                let _ = entered_tx.send(());
                            }
                            Err(SendTimeoutError::Closed(_)) => return accepted,
                            Err(SendTimeoutError::Full(_)) => unreachable!("Block mode waits"),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..SENDERS {
            entered.recv().unwrap(); // each sender has waited on the full queue at least once
        }
        if round % 2 == 0 {
            drop(queue);
        } else {
            let host = HostBuilder::new()
                .add_service(queue.into_service())
                .build()
                .unwrap();
            drop(host); // never started
        }
        let mut accepted: Vec<u64> = senders
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        accepted.extend(0..CAPACITY);
        accepted.sort_unstable();
        // The senders are joined: whatever they got in was handed back by now.
        let mut back = unrun.lock().unwrap().clone();
        back.sort_unstable();
        let m = producer.metrics();
        assert_eq!(back, accepted, "round {round}: {m}");
        let n = back.len() as u64;
        assert_eq!(
            (m.sent, m.returned, m.depth),
            (n, n, 0),
            "round {round}: {m}"
        );
    }
}

/// Regression (defect: workers leaked by a failed seal). Producers hammer the queue (ignoring
/// `Closed`) while a stop with a deadline of a few milliseconds, or already passed when the
/// queue's stop hook runs (`stop_timeout(0)`), runs; the seal used to give up when a send held
/// the queue's lock at the deadline, leaving the channel open: the idle workers then waited
/// for items forever (reported as "still runs a job ... detached"), and the queue leaked. Every
/// worker must exit: the handler (held by the queue and its workers only) is dropped once the
/// last one did.
#[test]
fn a_tiny_stop_under_producer_pressure_releases_every_worker() {
    const ROUNDS: u64 = 80;
    for round in 0..ROUNDS {
        let mode = [FullMode::Block, FullMode::DropOldest][round as usize % 2];
        let released = Probe::new();
        let held = released.set_on_drop();
        let (queue, producer) = WorkQueue::builder("pressure")
            .capacity(4)
            .workers(2)
            .full_mode(mode)
            .build(move |_: u64, _| {
                let _held = &held;
                // A little work, so that the queue stays full and the producers busy.
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(20) {
                    std::hint::spin_loop();
                }
                Ok(())
            })
            .unwrap();
        let mut service = queue.into_service();
        if round % 4 < 2 {
            // The queue's stop hook runs with its deadline already passed.
            service = service.stop_timeout(Duration::ZERO);
        }
        let host = start_host(HostBuilder::new().add_service(service));
        let (quit, producers) = hammer(&producer, 6);
        let deadline = Duration::from_micros(1_000 + 500 * (round % 8));
        let report = host.stop(deadline);
        quit.store(true, Ordering::Relaxed);
        for t in producers {
            t.join().unwrap();
        }
        drop(host);
        drop(producer);
        assert!(
            released.wait(PATIENCE),
            "round {round} ({mode:?}, stop {deadline:?}): a worker outlived its stopped queue; {report}"
        );
    }
}

/// The seal walks every producer's slot (each clone sends through a `Sender` of its own): a
/// producer cloned, used or dropped while the queue stops never keeps the channel open. The
/// stop is clean (a missed `Sender` would leave the idle workers waiting in `recv`, detached
/// at the deadline), a clone made after it is closed, and every accepted item is completed.
#[test]
fn producers_cloned_while_the_queue_stops_never_keep_it_open() {
    for round in 0..60u64 {
        let (queue, producer) = WorkQueue::builder("clones")
            .capacity(8)
            .workers(2)
            .build(|_: u64, _| Ok(()))
            .unwrap();
        let host = start_host(HostBuilder::new().add_service(queue.into_service()));
        let quit = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let p = producer.clone();
                let quit = Arc::clone(&quit);
                let accepted = Arc::clone(&accepted);
                common::spawn("cloner", move || {
                    // Some clones stay alive, idle, across the stop; the others are dropped.
                    let mut kept = Vec::new();
                    let mut i = 0u64;
                    while !quit.load(Ordering::Relaxed) {
                        let clone = p.clone();
                        if clone.try_send(i).is_ok() {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        if i % 3 == 0 && kept.len() < 1_000 {
                            kept.push(clone);
                        }
                        i += 1;
                    }
                    kept
                })
            })
            .collect();
        #[allow(clippy::disallowed_methods)] // a random stop point; nothing awaits it
        std::thread::sleep(Duration::from_micros(100 * (round % 10)));
        let report = host.stop(SECS5);
        assert!(report.is_clean(), "round {round}: {report}");
        assert!(matches!(
            producer.clone().try_send(0),
            Err(TrySendError::Closed(0))
        ));
        quit.store(true, Ordering::Relaxed);
        let kept: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let m = producer.metrics();
        let accepted = accepted.load(Ordering::Relaxed);
        assert_eq!(m.sent, accepted, "round {round}: {m}");
        assert_eq!(m.completed, accepted, "round {round}: {m}");
        drop(kept);
    }
}

/// `n` producer threads that send (`try_send` and `send` in turn) as fast as they can, ignoring
/// every refusal, until the returned flag is set; returns once each sent 1,000 items.
fn hammer(
    producer: &Producer<u64>,
    n: usize,
) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
    let quit = Arc::new(AtomicBool::new(false));
    let (running_tx, running) = mpsc::channel();
    let threads = (0..n)
        .map(|_| {
            let p = producer.clone();
            let quit = Arc::clone(&quit);
            let running_tx = running_tx.clone();
            common::spawn("hammer", move || {
                let mut i = 0u64;
                while !quit.load(Ordering::Relaxed) {
                    let _ = if i % 2 == 0 {
                        p.try_send(i).is_ok()
                    } else {
                        p.send(i).is_ok()
                    };
                    if i == 1000 {
                        let _ = running_tx.send(());
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for _ in 0..n {
        running.recv().unwrap();
    }
    (quit, threads)
}

#[test]
fn option_bounds_are_checked_by_build() {
    fn invalid<T: Send + 'static>(
        what: &str,
        b: threadhost::WorkQueueBuilder<T>,
    ) -> (String, String, String) {
        match b.build(|_: T, _| Ok(())) {
            Err(Error::InvalidOption {
                name,
                value,
                reason,
            }) => {
                assert!(name.contains(what), "{name} should name {what}");
                (name, value, reason)
            }
            Err(other) => panic!("{what}: unexpected {other:?}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
    let max = WorkQueue::<u64>::MAX_CAPACITY;
    assert_eq!(max, 1 << 20);
    // The maximum itself is fine (2^20 slots of 16 bytes: 16 MiB).
    let (queue, producer) = WorkQueue::builder("big")
        .capacity(max)
        .build(|_: u64, _| Ok(()))
        .unwrap();
    assert_eq!(producer.capacity(), max);
    drop((queue, producer));
    for capacity in [max + 1, 1 << 28, 1 << 40, usize::MAX] {
        let (_, value, reason) = invalid(
            "capacity",
            WorkQueue::<u64>::builder("q").capacity(capacity),
        );
        assert_eq!(value, capacity.to_string());
        assert!(reason.contains("1048576"), "{reason}");
    }
    // Big items: the slots' memory is bounded too (2^20 slots of 4 KiB would be 4 GiB).
    let (_, _, reason) = invalid(
        "capacity",
        WorkQueue::<[u8; 4096]>::builder("q").capacity(max),
    );
    assert!(reason.contains("bytes"), "{reason}");
    let max = WorkQueue::<u64>::MAX_WORKERS;
    assert_eq!(max, 1024);
    let (queue, _producer) = WorkQueue::builder("many")
        .workers(max)
        .build(|_: u64, _| Ok(()))
        .unwrap();
    assert_eq!(queue.handle().metrics().workers, max);
    for workers in [max + 1, usize::MAX] {
        let (_, value, _) = invalid("workers", WorkQueue::<u64>::builder("q").workers(workers));
        assert_eq!(value, workers.to_string());
    }
    for bytes in [64 * 1024, 1 << 30] {
        WorkQueue::builder("stack")
            .stack_size(bytes)
            .build(|_: u64, _| Ok(()))
            .unwrap();
    }
    for bytes in [0, 64 * 1024 - 1, (1 << 30) + 1, usize::MAX] {
        let (_, value, _) = invalid(
            "stack_size",
            WorkQueue::<u64>::builder("q").stack_size(bytes),
        );
        assert_eq!(value, bytes.to_string());
    }
}

/// Regression: `cancel_grace(Duration::MAX)` (a grace longer than the stop budget) must cancel
/// at once; the deadline arithmetic used to overflow into "drain until the full deadline".
#[test]
fn a_cancel_grace_longer_than_the_budget_cancels_at_once() {
    for grace in [
        Duration::MAX,
        Duration::from_secs(3600 * 24 * 365 * 100),
        ms(1_500),
    ] {
        let (started_tx, started) = mpsc::channel::<u64>();
        let started_tx = Mutex::new(started_tx);
        let (queue, producer) = WorkQueue::builder("grace")
            .cancel_grace(grace)
            .build(move |x: u64, token: &StopToken| {
                started_tx.lock().unwrap().send(x).unwrap();
                token.wait(); // until the jobs' token fires
                Err(threadhost::Stopped.into())
            })
            .unwrap();
        let handle = queue.handle();
        let host = start_host_around(queue);
        for i in 0..3 {
            producer.send(i).unwrap();
        }
        assert_eq!(started.recv().unwrap(), 0);
        let t = Instant::now();
        let report = host.stop(Duration::from_secs(1));
        let took = t.elapsed();
        assert!(report.is_clean(), "{grace:?}: {report}");
        assert!(
            took < SLACK,
            "{grace:?}: the stop took {took:?}: it drained instead of cancelling"
        );
        let q = handle.take_report().unwrap();
        assert!(q.cancelled);
        assert_eq!(q.unrun, [1, 2]);
        let m = q.metrics;
        assert_eq!((m.failed, m.cancelled, m.returned), (0, 1, 2), "{m}");
    }
}

/// A stop with a 5 ms deadline while two producers saturate both cores returns within the
/// deadline plus a bound generous for a loaded machine; prints the figures (`--nocapture`).
#[test]
fn a_short_stop_under_producer_pressure_returns_by_its_deadline() {
    const ROUNDS: usize = 12;
    let deadline = ms(5);
    let mut took = Vec::new();
    let mut hook = Vec::new();
    for round in 0..ROUNDS {
        let mode = [
            FullMode::Block,
            FullMode::DropOldest,
            FullMode::DropNewest,
            FullMode::Reject,
        ][round % 4];
        let (queue, producer) = WorkQueue::builder("busy")
            .capacity(16)
            .workers(2)
            .full_mode(mode)
            .build(|_: u64, _| Ok(()))
            .unwrap();
        let handle = queue.handle();
        let host = start_host_around(queue);
        let (quit, producers) = hammer(&producer, 2);
        let t = Instant::now();
        let report = host.stop(deadline);
        let elapsed = t.elapsed();
        quit.store(true, Ordering::Relaxed);
        for p in producers {
            p.join().unwrap();
        }
        assert!(
            elapsed < deadline + SLACK,
            "round {round} ({mode:?}): stop({deadline:?}) took {elapsed:?}; {report}"
        );
        took.push(elapsed);
        // The queue's own stop hook (it may finish after the host gave up on it).
        let q = poll("the queue's report", || handle.take_report());
        hook.push(q.elapsed);
    }
    took.sort_unstable();
    hook.sort_unstable();
    println!(
        "stop({deadline:?}) under producer pressure, {ROUNDS} rounds: host stop median {:?}, max {:?}; queue stop hook median {:?}, max {:?}",
        took[ROUNDS / 2],
        took[ROUNDS - 1],
        hook[ROUNDS / 2],
        hook[ROUNDS - 1]
    );
}
