//! Consuming a scoped service from a background service, as .NET's
//! `ConsumeScopedServiceHostedService` sample: once a second the worker creates a scope, gets a
//! `ScopedProcessingService` from it (created on first use, logging "created #n"), calls
//! `do_work`, and ends the scope, which drops the service (logging "dropped #n"). A singleton
//! `Stats` is shared by every scope.
//!
//! Run it with `cargo run --example scoped`; stop it with Ctrl-C (SIGINT) or SIGTERM, or pass
//! `--run-for <seconds>` to have it stop itself. Each unit of work logs one creation, one
//! "working" line and one drop, with the same instance id; the program exits with code 0
//! after a graceful stop.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use threadhost::{BoxError, Context, HostBuilder, Scope, StopToken};

/// A singleton: one instance for the whole host, shared by every scope and thread.
#[derive(Default)]
struct Stats {
    instances: AtomicU64,
    units: AtomicU64,
}

/// The scoped service: one instance per unit of work.
struct ScopedProcessingService {
    id: u64,
    stats: Arc<Stats>,
}

impl ScopedProcessingService {
    /// The factory registered with `HostBuilder::scoped`: gets its dependencies from the scope.
    fn create(scope: &Scope<'_>) -> Result<ScopedProcessingService, BoxError> {
        let stats = scope.singleton::<Stats>()?;
        let id = stats.instances.fetch_add(1, Ordering::Relaxed) + 1;
        log::info!("ScopedProcessingService #{id} created");
        Ok(ScopedProcessingService { id, stats })
    }

    fn do_work(&self, token: &StopToken) -> Result<(), BoxError> {
        let units = self.stats.units.fetch_add(1, Ordering::Relaxed) + 1;
        log::info!(
            "ScopedProcessingService #{} is working. Units so far: {units}",
            self.id
        );
        // Stand-in for real work that should give up when the host stops.
        token.sleep(Duration::from_millis(50))?;
        Ok(())
    }
}

impl Drop for ScopedProcessingService {
    fn drop(&mut self) {
        log::info!("ScopedProcessingService #{} dropped", self.id);
    }
}

/// The background service: one scope per unit of work, every second, until stopped.
fn consume_scoped_service(ctx: &Context) -> Result<(), BoxError> {
    log::info!("Consume Scoped Service Hosted Service running.");
    loop {
        {
            let scope = ctx.create_scope();
            let service = scope.get::<ScopedProcessingService>()?;
            service.do_work(ctx.token())?;
        } // the scope ends: the service is dropped here, on this thread
        ctx.sleep(Duration::from_secs(1))?;
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run_for = match common::parse_run_for(std::env::args().skip(1)) {
        Ok(run_for) => run_for,
        Err(message) => {
            log::error!("{message}");
            log::error!("usage: scoped [--run-for <seconds>]");
            return ExitCode::from(threadhost::EXIT_CONFIG);
        }
    };

    let mut builder = HostBuilder::new()
        .console_lifetime()
        .shutdown_timeout(Duration::from_secs(10))
        .singleton(Arc::new(Stats::default()))
        .scoped(ScopedProcessingService::create)
        .background("consume-scoped", consume_scoped_service);
    builder = common::with_run_for(builder, run_for);

    let result = builder.build().and_then(|host| host.run());
    common::exit(&result)
}
