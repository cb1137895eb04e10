//! `Host::start` when a service thread cannot be created: the error names the service and the
//! start returns promptly, without waiting for the shutdown timeout.

use std::time::{Duration, Instant};

use threadhost::{Error, HostBuilder, HostState, Service, ServiceState};

/// A stack no machine can map: `pthread_create` fails, so `spawn` returns an error.
const IMPOSSIBLE_STACK: usize = 1 << 50;

#[test]
fn smoke() {
    let host = HostBuilder::new()
        .background("ok", |ctx| {
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    assert!(host.stop(Duration::from_secs(10)).is_clean());
}

/// Regression (fixed in b6f6955): a spawn failure after earlier services' threads existed
/// left those threads waiting for a command that never came, so the rollback waited out the
/// whole shutdown timeout (here 20 s) before `start` returned. The service whose thread could
/// not be created is reported `Failed`, not `Skipped`.
#[test]
fn start_spawn_failure_returns_promptly_and_names_service() {
    let host = HostBuilder::new()
        .shutdown_timeout(Duration::from_secs(20))
        .background("first", |ctx| {
            ctx.token().wait();
            Ok(())
        })
        .add_service(
            Service::background_fn("huge", |ctx| {
                ctx.token().wait();
                Ok(())
            })
            .stack_size(IMPOSSIBLE_STACK),
        )
        .background("last", |ctx| {
            ctx.token().wait();
            Ok(())
        })
        .build()
        .unwrap();
    let began = Instant::now();
    let err = host.start(Duration::from_secs(20)).unwrap_err();
    let elapsed = began.elapsed();
    assert!(
        matches!(err, Error::Spawn { ref service, .. } if &**service == "huge"),
        "unexpected error: {err}"
    );
    assert_eq!(host.state(), HostState::Failed);
    assert!(
        elapsed < Duration::from_secs(5),
        "start took {elapsed:?} (the shutdown timeout is 20 s)"
    );
    let snapshot = host.handle().snapshot();
    let huge = snapshot
        .services
        .iter()
        .find(|s| &*s.name == "huge")
        .unwrap();
    assert_eq!(huge.state, ServiceState::Failed);
    let first = snapshot
        .services
        .iter()
        .find(|s| &*s.name == "first")
        .unwrap();
    assert!(
        matches!(first.state, ServiceState::Skipped | ServiceState::Stopped),
        "`first` is {}",
        first.state
    );
}
