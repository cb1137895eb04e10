//! `Host::start` when a service thread cannot be created: the error names the service and the
//! start returns promptly, without waiting for the shutdown timeout.
//!
//! `build` refuses stack sizes above 1 GiB, so the spawn failure is provoked with the largest
//! accepted stack in a child process (this binary, re-run through `sh`) whose address space
//! is limited below it (`ulimit -v`): `pthread_create` cannot map the stack.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::idle;
use threadhost::{Error, HostBuilder, HostState, Service, ServiceState};

/// The largest stack `build` accepts (1 GiB), unmappable under `ADDRESS_SPACE_KIB`.
const IMPOSSIBLE_STACK: usize = 1 << 30;
/// The child's address-space limit (900 MiB), below `IMPOSSIBLE_STACK`.
const ADDRESS_SPACE_KIB: u64 = 900 * 1024;
/// Set in the child that runs the scenario.
const CHILD_ENV: &str = "TH_SPAWN_CHILD";

#[test]
fn smoke() {
    let host = HostBuilder::new().background("ok", idle).build().unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    assert!(host.stop(Duration::from_secs(10)).is_clean());
}

/// Regression (fixed in b6f6955): a spawn failure after earlier services' threads existed
/// left those threads waiting for a command that never came, so the rollback waited out the
/// whole shutdown timeout (here 20 s) before `start` returned. The service whose thread could
/// not be created is reported `Failed`, not `Skipped`.
#[test]
fn start_spawn_failure_returns_promptly_and_names_service() {
    if std::env::var_os(CHILD_ENV).is_none() {
        let exe = std::env::current_exe().unwrap();
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
            ))
            .arg(exe)
            .args([
                "start_spawn_failure_returns_promptly_and_names_service",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .expect("run the child under ulimit -v");
        assert!(
            output.status.success(),
            "the child failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The scenario really ran in the child (not filtered out).
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    let host = HostBuilder::new()
        .shutdown_timeout(Duration::from_secs(20))
        .background("first", idle)
        .add_service(Service::background("huge", idle).stack_size(IMPOSSIBLE_STACK))
        .background("last", idle)
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
