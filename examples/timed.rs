//! Timed background tasks, as in .NET's docs: the `TimedHostedService` (a `Timer` every 5 s
//! that increments an atomic counter) and the `PeriodicTimer` variant (every 1 s), both as
//! periodic services on their own threads, drift-free and never overlapping.
//!
//! Run it with `cargo run --example timed`; stop it with Ctrl-C (SIGINT) or SIGTERM, or pass
//! `--run-for <seconds>` to have it stop itself. It logs "Timed Hosted Service is working.
//! Count: N" every 5 s (the first at once) and "Periodic timer tick N" every second, then exits
//! with code 0 after a graceful stop.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use threadhost::{FirstTick, HostBuilder, MissedTick, Periodic, Tick};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run_for = match common::parse_run_for(std::env::args().skip(1)) {
        Ok(run_for) => run_for,
        Err(message) => {
            log::error!("{message}");
            log::error!("usage: timed [--run-for <seconds>]");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };
    let result = build(run_for).and_then(|host| {
        let handle = host.handle();
        let _running = handle
            .started()
            .on_stop(|_| log::info!("Timed Hosted Service running."));
        let _stopping = handle
            .stopping()
            .on_stop(|_| log::info!("Timed Hosted Service is stopping."));
        host.run()
    });
    common::exit(&result)
}

fn build(run_for: Option<Duration>) -> Result<threadhost::Host, threadhost::Error> {
    // TimedHostedService: `new Timer(DoWork, null, TimeSpan.Zero, TimeSpan.FromSeconds(5))`.
    // Unlike .NET's Timer, ticks never overlap: a slow tick makes the next slots be skipped.
    let count = Arc::new(AtomicU64::new(0));
    let timed = Periodic::every(Duration::from_secs(5))
        .first_tick(FirstTick::Immediately)
        .missed(MissedTick::Skip)
        .build("timed-hosted-service", move |_tick: &Tick<'_>| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            log::info!("Timed Hosted Service is working. Count: {n}");
            Ok(())
        })?;

    // The PeriodicTimer variant: `while (await timer.WaitForNextTickAsync(stoppingToken))`,
    // after doing the work once. A PeriodicTimer coalesces missed ticks and keeps its phase:
    // Skip keeps the phase too and counts what it skipped (Delay would run the late tick at
    // once, then shift the phase).
    let periodic = Periodic::every(Duration::from_secs(1))
        .first_tick(FirstTick::Immediately)
        .missed(MissedTick::Skip)
        .build("periodic-timer", |tick: &Tick<'_>| {
            log::info!(
                "Periodic timer tick {} ({:?} late)",
                tick.index() + 1,
                tick.lateness()
            );
            Ok(())
        })?;

    let mut builder = HostBuilder::new()
        .console_lifetime()
        .shutdown_timeout(Duration::from_secs(10))
        .add_service(timed)
        .add_service(periodic);
    builder = common::with_run_for(builder, run_for);
    builder.build()
}
