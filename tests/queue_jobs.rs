//! The job side of a work queue: handlers that borrow their item (`build_jobs`) with a
//! `JobContext`, retries with a backoff, dead letters by value, items of cancelled jobs and
//! cancelled retries handed back, and workers' heartbeats (a queue as a critical service).

#![cfg(feature = "queue")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PATIENCE, SECS5, busy, eventually, flaky, ms, start_host, stop_clean, within};
use threadhost::{
    Backoff, Error, Failure, HostBuilder, JobContext, JobTask, QueueHandle, QueueMetrics, Service,
    Stopped, WorkQueue,
};

/// Asserts the queue's figures `pick` reads, and that every item sent has settled.
#[track_caller]
fn assert_fates<T: Send + 'static, F>(
    handle: &QueueHandle<T>,
    pick: impl Fn(&QueueMetrics) -> F,
    expected: F,
) where
    F: PartialEq + std::fmt::Debug,
{
    let m = handle.metrics();
    assert_eq!(pick(&m), expected, "{m}");
    assert_eq!(m.sent, m.settled(), "{m}");
}

/// Starts a host around `queue`, sends items `0..n`, stops the host cleanly; the queue's
/// handle, for its figures and report.
fn send_and_stop(
    queue: WorkQueue<u64>,
    producer: &threadhost::Producer<u64>,
    n: u64,
) -> QueueHandle<u64> {
    let handle = queue.handle();
    let host = start_host(HostBuilder::new().add_service(queue));
    for item in 0..n {
        producer.send(item).unwrap();
    }
    stop_clean(&host);
    handle
}

/// A generous bound for "promptly" on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

type DeadLetters = Arc<Mutex<Vec<(u64, Failure)>>>;

#[test]
fn a_failed_job_is_retried_after_its_backoff_until_it_succeeds() {
    let (attempts_tx, attempts) = mpsc::channel::<(u32, u32, Instant)>();
    let attempts_tx = Mutex::new(attempts_tx);
    let backoff = Backoff::exponential(ms(40), ms(80));
    let (queue, producer) = WorkQueue::builder("retry")
        .retry(3, backoff)
        .build_jobs(move |_item: &mut u64, job: &JobContext<'_>| {
            let now = Instant::now();
            let info = (job.attempt(), job.max_attempts(), now);
            attempts_tx.lock().unwrap().send(info).unwrap();
            if job.is_last_attempt() {
                Ok(())
            } else {
                Err(format!("attempt {} failed", job.attempt()).into())
            }
        })
        .unwrap();
    let handle = queue.handle();
    let host = start_host(HostBuilder::new().add_service(queue));
    producer.send(7).unwrap();
    let seen: Vec<(u32, u32, Instant)> = (0..3)
        .map(|_| attempts.recv_timeout(PATIENCE).unwrap())
        .collect();
    stop_clean(&host);
    assert_eq!(
        seen.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>(),
        [(1, 3), (2, 3), (3, 3)]
    );
    // The backoff doubles: 40 ms, then 80 ms (no jitter). Lower bounds are exact; upper ones
    // generous.
    let first = seen[1].2 - seen[0].2;
    let second = seen[2].2 - seen[1].2;
    assert!(first >= ms(40) && first < ms(40) + SLACK, "{first:?}");
    assert!(second >= ms(80) && second < ms(80) + SLACK, "{second:?}");
    // (completed, retried, failed, dead-lettered, returned)
    assert_fates(
        &handle,
        |m| {
            (
                m.completed,
                m.retried,
                m.failed,
                m.dead_lettered,
                m.returned,
            )
        },
        (1, 2, 0, 0, 0),
    );
}

#[test]
fn dead_letters_get_the_exact_items_by_value_with_their_failure() {
    let dead: DeadLetters = Arc::default();
    let keep = Arc::clone(&dead);
    let (queue, producer) = WorkQueue::builder("dead")
        .workers(2)
        .retry(3, Backoff::fixed(ms(1)))
        .on_dead_letter(move |item: u64, failure| keep.lock().unwrap().push((item, failure)))
        .build_jobs(flaky)
        .unwrap();
    let handle = send_and_stop(queue, &producer, 30);
    let mut dead = std::mem::take(&mut *dead.lock().unwrap());
    dead.sort_by_key(|(item, _)| *item);
    let items: Vec<u64> = dead.iter().map(|(item, _)| *item).collect();
    let expected: Vec<u64> = (0..30).filter(|i| i % 3 != 0).collect();
    assert_eq!(items, expected);
    for (item, failure) in &dead {
        if item % 3 == 1 {
            assert!(!failure.is_panic());
            assert_eq!(failure.to_string(), format!("item {item} refused"));
        } else {
            assert!(failure.is_panic());
            assert_eq!(
                failure.to_string(),
                format!("panicked: item {item} panicked")
            );
        }
    }
    // Counted once per item by its fate; `retried` counts attempts: 2 per dead letter.
    // (completed, dead-lettered, failed, panicked, retried)
    assert_fates(
        &handle,
        |m| {
            (
                m.completed,
                m.dead_lettered,
                m.failed,
                m.panicked,
                m.retried,
            )
        },
        (10, 20, 0, 0, 40),
    );
    assert!(handle.take_report().unwrap().dead_letters.is_empty());
}

#[test]
fn without_a_callback_dead_letters_are_in_the_report() {
    let (queue, producer) = WorkQueue::builder("report")
        .retry(2, Backoff::fixed(ms(1)))
        .build_jobs(flaky)
        .unwrap();
    let handle = send_and_stop(queue, &producer, 6);
    let report = handle.take_report().unwrap();
    let items: Vec<u64> = report.dead_letters.iter().map(|(item, _)| *item).collect();
    assert_eq!(items, [1, 2, 4, 5]); // one worker: in order
    assert_eq!(report.metrics.dead_lettered, 4);
    assert_eq!(report.metrics.sent, report.metrics.settled());
}

#[test]
fn without_retry_or_callback_a_borrowing_handler_counts_failures() {
    let (queue, producer) = WorkQueue::builder("plain").build_jobs(flaky).unwrap();
    let handle = send_and_stop(queue, &producer, 6);
    let report = handle.take_report().unwrap();
    assert!(report.dead_letters.is_empty());
    let m = report.metrics;
    assert_eq!(
        (m.completed, m.failed, m.panicked, m.dead_lettered),
        (2, 2, 2, 0)
    );
}

#[test]
fn a_stop_during_the_backoff_hands_the_item_back_at_once() {
    let (failed_tx, failed) = mpsc::channel::<u64>();
    let failed_tx = Mutex::new(failed_tx);
    let unrun = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&unrun);
    let dead: DeadLetters = Arc::default();
    let keep_dead = Arc::clone(&dead);
    let (queue, producer) = WorkQueue::builder("backoff")
        // A minute's backoff: only the stop can end it.
        .retry(5, Backoff::fixed(Duration::from_secs(60)))
        .cancel_grace(ms(200))
        .on_unrun(move |items: Vec<u64>| keep.lock().unwrap().extend(items))
        .on_dead_letter(move |item, failure| keep_dead.lock().unwrap().push((item, failure)))
        .build_jobs(move |item: &mut u64, _job: &JobContext<'_>| {
            failed_tx.lock().unwrap().send(*item).unwrap();
            Err("down".into())
        })
        .unwrap();
    let handle = queue.handle();
    let host = start_host(HostBuilder::new().add_service(queue));
    producer.send(42).unwrap();
    assert_eq!(failed.recv_timeout(PATIENCE).unwrap(), 42);
    // The drain waits for the worker (in its backoff) until the grace, then cancels: the wait
    // ends at once and the item, with attempts left, is handed back.
    let report = within(SECS5 / 2 + SLACK, "a stop during a 60 s backoff", || {
        host.stop(SECS5 / 2)
    });
    assert!(report.is_clean(), "{report}");
    assert_eq!(*unrun.lock().unwrap(), [42]);
    assert!(dead.lock().unwrap().is_empty());
    let m = handle.metrics();
    assert_eq!(
        (m.returned, m.retried, m.dead_lettered, m.failed),
        (1, 0, 0, 0),
        "{m}"
    );
    assert_eq!(m.sent, m.settled(), "{m}");
    assert!(failed.try_recv().is_err(), "the item ran again");
}

#[test]
fn a_cancelled_job_hands_its_item_back() {
    let (began_tx, began) = mpsc::channel::<()>();
    let began_tx = Mutex::new(began_tx);
    let unrun = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&unrun);
    let (queue, producer) = WorkQueue::builder("cancel")
        .drain_on_stop(false)
        .on_unrun(move |items: Vec<String>| keep.lock().unwrap().extend(items))
        .build_jobs(move |_item: &mut String, job: &JobContext<'_>| {
            began_tx.lock().unwrap().send(()).unwrap();
            job.token().wait();
            Err(Stopped.into())
        })
        .unwrap();
    let handle = queue.handle();
    let host = start_host(HostBuilder::new().add_service(queue));
    producer.send("reading 1".to_owned()).unwrap();
    producer.send("reading 2".to_owned()).unwrap();
    began.recv_timeout(PATIENCE).unwrap();
    stop_clean(&host);
    let mut unrun = unrun.lock().unwrap().clone();
    unrun.sort();
    // The running job's item (given back by its job) and the queued one (never run).
    assert_eq!(unrun, ["reading 1", "reading 2"]);
    let m = handle.metrics();
    assert_eq!((m.returned, m.cancelled, m.completed), (2, 0, 0), "{m}");
    assert_eq!(m.sent, m.settled(), "{m}");
}

#[test]
fn job_context_names_the_queue_and_gives_scopes_and_singletons() {
    struct Config(&'static str);
    struct Connection(u32);
    let opened = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&opened);
    let (seen_tx, seen) = mpsc::channel::<(String, &'static str, u32)>();
    let seen_tx = Mutex::new(seen_tx);
    let (queue, producer) = WorkQueue::builder("scoped-jobs")
        .build_jobs(move |_item: &mut u64, job: &JobContext<'_>| {
            let scope = job.create_scope();
            let connection = scope.get::<Connection>()?;
            let config = job.singleton::<Config>()?;
            let row = (job.name().to_owned(), config.0, connection.0);
            seen_tx.lock().unwrap().send(row).unwrap();
            Ok(())
        })
        .unwrap();
    let host = start_host(
        HostBuilder::new()
            .singleton(Arc::new(Config("db://")))
            .scoped(move |_| Ok(Connection(counter.fetch_add(1, Ordering::SeqCst))))
            .add_service(queue),
    );
    producer.send(1).unwrap();
    producer.send(2).unwrap();
    let rows: Vec<_> = (0..2)
        .map(|_| seen.recv_timeout(PATIENCE).unwrap())
        .collect();
    stop_clean(&host);
    // One scope (one connection) per job.
    assert_eq!(
        rows,
        [
            ("scoped-jobs".to_owned(), "db://", 0),
            ("scoped-jobs".to_owned(), "db://", 1)
        ]
    );
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[test]
fn job_tasks_are_retried() {
    let runs = Arc::new(AtomicU32::new(0));
    let (queue, producer) = WorkQueue::<JobTask>::builder("job-tasks")
        .retry(4, Backoff::fixed(ms(1)))
        .build_job_tasks()
        .unwrap();
    let handle = queue.handle();
    let host = start_host(HostBuilder::new().add_service(queue));
    let counter = Arc::clone(&runs);
    producer
        .send_job(move |job| {
            counter.fetch_add(1, Ordering::SeqCst);
            if job.attempt() < 3 {
                Err("not yet".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    stop_clean(&host);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let m = handle.metrics();
    assert_eq!((m.completed, m.retried), (1, 2), "{m}");
}

#[test]
fn build_checks_the_retry_options() {
    let rule = |result: Result<_, Error>| match result {
        Err(Error::InvalidOption { name, .. }) => name,
        Err(other) => panic!("not an InvalidOption: {other}"),
        Ok(_) => panic!("accepted"),
    };
    let jobs = |_: &mut u64, _: &JobContext<'_>| Ok(());
    let by_value = |_: u64, _: &threadhost::StopToken| Ok(());
    let fixed = || Backoff::fixed(ms(1));
    let q = || WorkQueue::<u64>::builder("q");
    assert_eq!(
        rule(q().retry(0, fixed()).build_jobs(jobs)),
        "retry of queue `q`: max_attempts"
    );
    assert_eq!(
        rule(q().retry(1001, fixed()).build_jobs(jobs)),
        "retry of queue `q`: max_attempts"
    );
    assert_eq!(
        rule(q().retry(2, fixed().with_jitter(2.0)).build_jobs(jobs)),
        "retry of queue `q`: jitter"
    );
    let backwards = Backoff::exponential(ms(10), ms(1));
    assert_eq!(
        rule(q().retry(2, backwards).build_jobs(jobs)),
        "retry of queue `q`: initial backoff"
    );
    // A handler that consumes its item can be neither retried nor dead-lettered.
    assert_eq!(
        rule(q().retry(2, fixed()).build(by_value)),
        "retry of queue `q`: max_attempts"
    );
    assert_eq!(
        rule(q().on_dead_letter(|_, _| ()).build(by_value)),
        "on_dead_letter of queue `q`"
    );
    assert!(q().retry(1000, fixed()).build_jobs(jobs).is_ok());
    assert!(q().retry(1, fixed()).build(by_value).is_ok());
}

/// The liveness window of the critical queues below.
const LIVENESS: Duration = Duration::from_millis(300);

fn is_live(host: &threadhost::Host) -> bool {
    host.handle().snapshot().not_live().is_empty()
}

#[test]
fn a_critical_queue_stays_live_busy_or_idle_and_goes_not_live_when_its_workers_hang() {
    // Items below 1000 are 30 ms of work; 1000 and above hang until released.
    let (release_tx, release) = mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release));
    let (hung_tx, hung) = mpsc::channel::<u64>();
    let hung_tx = Mutex::new(hung_tx);
    let (queue, producer) = WorkQueue::builder("critical")
        .workers(2)
        .build_jobs(move |item: &mut u64, _job: &JobContext<'_>| {
            if *item < 1000 {
                busy(ms(30));
            } else {
                hung_tx.lock().unwrap().send(*item).unwrap();
                // Hangs, ignoring the token and never beating; `recv` under the lock: the
                // second hung job waits for the lock, hung as well.
                let _ = release.lock().unwrap().recv();
            }
            Ok(())
        })
        .unwrap();
    let host = start_host(HostBuilder::new().add_service(Service::from(queue).liveness(LIVENESS)));
    // Steady work for about five windows (50 items of 30 ms on 2 workers: 750 ms); the
    // snapshot is sampled all along.
    let feeder = {
        let producer = producer.clone();
        common::spawn("feeder", move || {
            for item in 0..50 {
                producer.send(item).unwrap();
            }
        })
    };
    let began = Instant::now();
    while began.elapsed() < LIVENESS * 5 / 2 {
        assert!(
            is_live(&host),
            "busy queue not live: {:?}",
            host.handle().snapshot()
        );
        busy(ms(10));
    }
    feeder.join().unwrap();
    eventually("the work done", || producer.metrics().completed == 50);
    // Idle for three windows: waiting for work is not being stuck.
    let idle = Instant::now();
    while idle.elapsed() < LIVENESS * 3 {
        assert!(
            is_live(&host),
            "idle queue not live: {:?}",
            host.handle().snapshot()
        );
        busy(ms(10));
    }
    // Both workers hang: no beat any more.
    producer.send(1000).unwrap();
    producer.send(1001).unwrap();
    hung.recv_timeout(PATIENCE).unwrap();
    let hung_at = Instant::now();
    eventually("the hung queue not live", || !is_live(&host));
    let after = hung_at.elapsed();
    assert!(after >= LIVENESS - ms(50), "not live after only {after:?}");
    // Release the hung jobs (the second one may not have begun: two releases).
    drop(release_tx);
    stop_clean(&host);
}

#[test]
fn a_long_job_that_beats_keeps_its_queue_live() {
    let (began_tx, began) = mpsc::channel::<()>();
    let began_tx = Mutex::new(began_tx);
    let (queue, producer) = WorkQueue::builder("long")
        .build_jobs(move |_item: &mut u64, job: &JobContext<'_>| {
            began_tx.lock().unwrap().send(()).unwrap();
            // Four windows of work, beating every 20 ms, until the stop.
            while job.sleep(ms(20)).is_ok() {
                job.heartbeat();
            }
            Err(Stopped.into())
        })
        .unwrap();
    let host = start_host(HostBuilder::new().add_service(Service::from(queue).liveness(LIVENESS)));
    producer.send(1).unwrap();
    began.recv_timeout(PATIENCE).unwrap();
    let t = Instant::now();
    while t.elapsed() < LIVENESS * 4 {
        assert!(is_live(&host), "{:?}", host.handle().snapshot());
        busy(ms(10));
    }
    stop_clean(&host);
}
