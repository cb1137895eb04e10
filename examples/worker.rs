//! The Worker Service template, on threads: a background worker that logs every second and
//! hands each round's reading to a work queue (two workers, `th:readings/<n>`), and a
//! heartbeat that waits on its stop token, run by `Host::run` with the console lifetime. On
//! stop the worker stops first, then the queue drains what it holds.
//!
//! Run it with `cargo run --release --example worker`; stop it with Ctrl-C (SIGINT) or
//! SIGTERM, or pass `--run-for <seconds>` to have it stop itself. It logs each step and exits
//! with code 0 after a graceful stop (see `threadhost::exit_code` for the others). A second
//! Ctrl-C while it is stopping exits at once with code 130 (143 for a second SIGTERM).
//!
//! SIGHUP (`systemctl reload`) reloads: the worker's reload hook re-reads its round interval
//! (milliseconds) from the file named by `WORKER_INTERVAL_FILE`, if set, and logs it; a bad
//! value is logged as a failed reload, and the worker keeps its interval and runs on.
//!
//! Under systemd (`examples/systemd/worker.service`, `Type=notify-reload`) it reports
//! `READY=1`, `STOPPING=1`, `RELOADING=1` and `STATUS=` lines, and pings the watchdog while
//! its critical `worker` service keeps beating. `THREADHOST_SHUTDOWN_TIMEOUT` and the other `THREADHOST_*`
//! variables override its options (a bad value exits with code 2).

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use threadhost::{HostBuilder, Service, WorkQueue};

/// How stale the worker's heartbeat may get before the systemd watchdog stops pinging.
const WORKER_LIVENESS: Duration = Duration::from_secs(10);

/// The longest round interval: half the liveness window, so that the worker, which beats
/// once a round, stays live between rounds (a longer interval would stop the watchdog pings,
/// and systemd would kill a healthy worker).
const MAX_INTERVAL_MS: u64 = WORKER_LIVENESS.as_millis() as u64 / 2;

/// The worker's round interval in milliseconds, from the file `WORKER_INTERVAL_FILE` names:
/// `Ok(None)` when the variable is unset.
fn read_interval() -> Result<Option<u64>, String> {
    let Some(path) = std::env::var_os("WORKER_INTERVAL_FILE") else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.to_string_lossy()))?;
    match text.trim().parse::<u64>() {
        Ok(ms) if (10..=MAX_INTERVAL_MS).contains(&ms) => Ok(Some(ms)),
        _ => Err(format!(
            "{}: `{}` is not an interval from 10 to {MAX_INTERVAL_MS} ms (half the worker's \
             liveness window)",
            path.to_string_lossy(),
            text.trim()
        )),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run_for = match common::parse_run_for(std::env::args().skip(1)) {
        Ok(run_for) => run_for,
        Err(message) => {
            log::error!("{message}");
            log::error!("usage: worker [--run-for <seconds>]");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };

    // A queue of readings, registered before its producer so that it stops after it.
    let (readings, producer) = match WorkQueue::builder("readings")
        .capacity(64)
        .workers(2)
        .build(|round: u64, _token| {
            log::info!("reading of round {round} stored");
            Ok(())
        }) {
        Ok(built) => built,
        Err(error) => {
            log::error!("{error}");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };

    // The round interval, read at start and again by each reload.
    let interval_ms = match read_interval() {
        Ok(ms) => Arc::new(AtomicU64::new(ms.unwrap_or(1000))),
        Err(message) => {
            log::error!("{message}");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    let reloaded = Arc::clone(&interval_ms);

    let mut builder = HostBuilder::new()
        .console_lifetime()
        .systemd() // a no-op unless run by systemd (NOTIFY_SOCKET set)
        .shutdown_timeout(Duration::from_secs(10))
        .add_service(readings)
        // The template's Worker: do a unit of work, then wait a second (or the interval its
        // reload hook read), until stopped. It is critical: each round beats, and a worker
        // stuck for 10 s stops the watchdog pings.
        .add_service(
            Service::background("worker", move |ctx| {
                let began = Instant::now();
                let mut rounds = 0u64;
                loop {
                    rounds += 1;
                    log::info!("Worker running: round {rounds}, up {:?}", began.elapsed());
                    // Backpressure with a bound: never wait more than a second for room.
                    if let Err(e) = producer.send_timeout(rounds, Duration::from_secs(1)) {
                        log::warn!("reading of round {} not queued: {e}", e.into_inner());
                    }
                    ctx.heartbeat();
                    ctx.sleep(Duration::from_millis(interval_ms.load(Ordering::Relaxed)))?;
                }
            })
            .liveness(WORKER_LIVENESS)
            // SIGHUP: re-read the interval. An error is logged as a failed reload; the
            // worker keeps its interval and runs on.
            .on_reload(move |_ctx| {
                match read_interval()? {
                    Some(ms) => {
                        reloaded.store(ms, Ordering::Relaxed);
                        log::info!("worker: round interval now {ms} ms");
                    }
                    None => log::info!("worker: WORKER_INTERVAL_FILE unset; nothing to re-read"),
                }
                Ok(())
            }),
        )
        // A heartbeat that blocks on its stop token, waking every 5 s to log.
        .background("heartbeat", |ctx| {
            let mut beats = 0u64;
            while !ctx.token().wait_timeout(Duration::from_secs(5)) {
                beats += 1;
                log::info!("heartbeat {beats}");
            }
            log::info!(
                "heartbeat stopping ({})",
                ctx.token()
                    .reason()
                    .map_or_else(String::new, |r| r.to_string())
            );
            Ok(())
        });
    builder = common::with_run_for(builder, run_for);

    // Last, so that the environment overrides the options set in code.
    builder = builder.options_from_env();
    let result = builder.build().and_then(|host| host.run());
    common::exit(&result)
}
