//! Queued background tasks, as the .NET sample's `MonitorLoop` + `QueuedHostedService`: each
//! `w` line on standard input enqueues a work item of three interruptible 5-second steps, run
//! by a `TaskQueue` of two workers.
//!
//! Run it with `cargo run --release --example queued` and type `w` + Enter, or pipe the
//! lines: `printf 'w\nw\n' | cargo run --release --example queued` runs both items (about
//! 15 s) and exits with code 0.
//!
//! - The queue's capacity comes from the `QueueCapacity` environment variable (default 100); a
//!   bad value is reported and the program exits with code 2.
//! - End of input: waits until every queued item has run, then stops gracefully (exit 0).
//! - Ctrl-C (SIGINT) or SIGTERM: stops gracefully at once: the queue drains until shortly
//!   before the 10-second shutdown deadline, then the running items are cancelled and the
//!   items that never started are handed back (counted; a real program would persist them).
//!   Exit code 0. A second Ctrl-C exits at once with code 130.
//! - `--run-for <seconds>`: stops by itself after that long.
//!
//! The last line logs what was completed, cancelled (by the stop), failed and handed back.

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use threadhost::{HostBuilder, HostHandle, Producer, StopToken, Stopped, Task, TaskQueue};

const STEP: Duration = Duration::from_secs(5);
const WORKERS: usize = 2;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run_for = match common::parse_run_for(std::env::args().skip(1)) {
        Ok(run_for) => run_for,
        Err(message) => {
            log::error!("{message}");
            log::error!("usage: queued [--run-for <seconds>]");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    let capacity = match std::env::var("QueueCapacity") {
        Err(std::env::VarError::NotPresent) => 100,
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                log::error!(
                    "invalid QueueCapacity `{value}`: expected a whole number of items (at least 1)"
                );
                return ExitCode::from(threadhost::EXIT_CONFIG);
            }
        },
        Err(e) => {
            log::error!("invalid QueueCapacity: {e}");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };

    let (queue, producer) = match TaskQueue::builder("queue")
        .capacity(capacity)
        .workers(WORKERS)
        .build_tasks()
    {
        Ok(built) => built,
        Err(error) => {
            log::error!("{error}");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    let queue_handle = queue.handle();
    let mut builder = HostBuilder::new()
        .console_lifetime()
        .shutdown_timeout(Duration::from_secs(10))
        .add_service(queue);
    builder = common::with_run_for(builder, run_for);
    let host = match builder.build() {
        Ok(host) => host,
        Err(error) => return common::exit(&Err(error)),
    };
    start_monitor_loop(producer, host.handle());

    let result = host.run();
    if let Some(q) = queue_handle.take_report() {
        let m = q.metrics;
        log::info!(
            "work items: {} completed, {} cancelled, {} failed, {} handed back (never started)",
            m.completed,
            m.cancelled,
            m.failed + m.panicked,
            m.returned
        );
    }
    common::exit(&result)
}

/// The work items not finished yet, so that end of input can wait for them.
#[derive(Default)]
struct Outstanding {
    count: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Outstanding {
    fn add(&self) {
        self.count.lock().unwrap().0 += 1;
    }

    fn done(&self) {
        self.count.lock().unwrap().0 -= 1;
        self.changed.notify_all();
    }

    fn stopping(&self) {
        self.count.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Waits until every item is done or the host is stopping.
    fn wait(&self) {
        let mut state = self.count.lock().unwrap();
        while state.0 > 0 && !state.1 {
            state = self.changed.wait(state).unwrap();
        }
    }
}

/// Decrements `Outstanding` when the work item is dropped: run, cancelled or handed back.
struct DoneGuard(Arc<Outstanding>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// The .NET documentation sample's `MonitorLoop`: reads lines from standard input on a plain
/// named thread (a read cannot be interrupted, so it is not a hosted service the host would
/// wait for).
fn start_monitor_loop(producer: Producer<Task>, host: HostHandle) {
    let outstanding = Arc::new(Outstanding::default());
    let o = Arc::clone(&outstanding);
    // The host's `stopping` event ends the wait for outstanding work.
    let registration = host.stopping().on_stop(move |_| o.stopping());
    std::thread::Builder::new()
        .name("monitor-loop".into())
        .spawn(move || {
            let _registration = registration;
            log::info!("MonitorLoop is starting. Type `w` + Enter to add a work item; end of input or Ctrl-C stops.");
            let next_id = AtomicU64::new(1);
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                match line.trim() {
                    "w" | "W" => {
                        let id = format!("{:08x}", work_item_id(next_id.fetch_add(1, Ordering::Relaxed)));
                        outstanding.add();
                        let guard = DoneGuard(Arc::clone(&outstanding));
                        let item = move |token: &StopToken| {
                            let _guard = guard;
                            build_work_item(&id, token)
                        };
                        // Blocks while the queue is full: backpressure.
                        if producer.send_task(item).is_err() {
                            log::warn!("the queue is closed; work item not queued");
                        }
                    }
                    "" => {}
                    other => log::info!("unknown command `{other}`; type `w` to add a work item"),
                }
            }
            log::info!("end of input: waiting for the queued work items, then stopping");
            outstanding.wait();
            host.request_stop();
        })
        .expect("spawn the monitor-loop thread");
}

/// The .NET documentation sample's `BuildWorkItemAsync`: three 5-second steps, each
/// interrupted by the jobs' token.
fn build_work_item(id: &str, token: &StopToken) -> threadhost::ServiceResult {
    log::info!("Queued work item {id} is starting.");
    let mut delay_loop = 0;
    while !token.is_stopped() && delay_loop < 3 {
        // Returns early (Err) when the stop cancels the job; go on to log, as the .NET sample.
        let _ = token.sleep(STEP);
        delay_loop += 1;
        log::info!("Queued work item {id} is running. {delay_loop}/3");
    }
    if delay_loop == 3 && !token.is_stopped() {
        log::info!("Queued Background Task {id} is complete.");
        Ok(())
    } else {
        log::info!("Queued Background Task {id} was cancelled.");
        Err(Stopped.into())
    }
}

/// A GUID-like tag for the logs: the sequence number mixed with the clock.
fn work_item_id(n: u64) -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    ((n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t.wrapping_mul(0xBF58_476D_1CE4_E5B9)) >> 32) as u32
}
