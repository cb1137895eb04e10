//! State-change listeners (`HostBuilder::on_state_change`) and the liveness part of
//! `HostHandle::snapshot` (heartbeats, `Service::liveness`).
#![cfg(feature = "listeners")]
#![allow(clippy::disallowed_methods)] // the liveness tests let real time pass

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Noop, PATIENCE, idle, stop_own_host};
use threadhost::{
    HostBuilder, HostEvent, HostState, Policy, Service, ServiceState, StateChange, StopReason,
};

/// A listener that records every change as text.
fn recorder() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&HostEvent) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mine = Arc::clone(&seen);
    (seen, move |event: &HostEvent| {
        mine.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.change.to_string());
    })
}

/// A recorder whose every event takes `per_event` (a slow listener), for the tests that the
/// host waits for it to catch up.
fn slow_recorder(
    per_event: Duration,
) -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&HostEvent) + Send + Sync + 'static,
) {
    let (seen, record) = recorder();
    (seen, move |event: &HostEvent| {
        std::thread::sleep(per_event);
        record(event);
    })
}

/// Asserts the listener saw the host's final state last.
fn assert_saw_stopped_last(seen: &Mutex<Vec<String>>) {
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.last().map(String::as_str),
        Some("host stopped"),
        "{seen:?}"
    );
}

#[test]
fn smoke_host_and_service_changes_in_order() {
    let (seen, listener) = recorder();
    let result = HostBuilder::new()
        .on_state_change(listener)
        .hosted("svc", Noop)
        .background("stopper", |ctx| {
            ctx.host().started().wait();
            ctx.host().request_stop();
            Ok(())
        })
        .build()
        .unwrap()
        .run();
    assert!(result.is_ok(), "{result:?}");
    // `run` returns only after the listeners saw the final state.
    let seen = seen.lock().unwrap().clone();
    let host: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|s| s.starts_with("host "))
        .collect();
    assert_eq!(
        host,
        [
            "host starting",
            "host running",
            "host stopping (stop requested)",
            "host stopped"
        ]
    );
    let svc: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|s| s.starts_with("service `svc`"))
        .collect();
    assert_eq!(
        svc,
        [
            "service `svc` starting",
            "service `svc` running",
            "service `svc` stopping",
            "service `svc` stopped"
        ]
    );
    // Service changes sit between the host's: started after "starting", stopped before
    // "stopped".
    let pos = |s: &str| seen.iter().position(|x| x == s).unwrap();
    assert!(pos("host starting") < pos("service `svc` starting"));
    assert!(pos("service `svc` running") < pos("host running"));
    assert!(pos("host stopping (stop requested)") < pos("service `svc` stopping"));
    assert!(pos("service `svc` stopped") < pos("host stopped"));
}

#[test]
fn issue_hosted_service_is_running_after_start() {
    // Core fix: the `started` phase set a hosted service back to Starting, where it stayed
    // while the host ran.
    let host = HostBuilder::new().hosted("svc", Noop).build().unwrap();
    host.start(PATIENCE).unwrap();
    let snap = host.handle().snapshot();
    assert_eq!(snap.service("svc").unwrap().state, ServiceState::Running);
    assert!(host.stop(PATIENCE).is_clean());
}

#[test]
fn failure_event_carries_the_error() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .on_state_change(move |event| {
            if let StateChange::Service {
                name, to, error, ..
            } = &event.change
            {
                if *to == ServiceState::Failed {
                    let _ = tx
                        .lock()
                        .unwrap()
                        .send((name.to_string(), error.as_ref().map(|e| e.to_string())));
                }
            }
        })
        .add_service(
            Service::background("flaky", |_ctx| Err("disk full".into())).on_failure(Policy::Ignore),
        )
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let (name, error) = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(name, "flaky");
    assert_eq!(error.as_deref(), Some("disk full"));
    assert!(host.stop(PATIENCE).is_complete());
}

#[test]
fn panicking_listener_does_not_stop_the_others() {
    let (seen, listener) = recorder();
    let result = HostBuilder::new()
        .on_state_change(|_event| panic!("listener bug"))
        .on_state_change(listener)
        .background("one-shot", stop_own_host)
        .build()
        .unwrap()
        .run();
    assert!(result.is_ok(), "{result:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|s| s == "host stopped"), "{seen:?}");
}

#[test]
fn listener_runs_outside_every_lock() {
    // A listener may call back into the host: snapshot, state and stop_reason take the
    // lifecycle lock, request_stop changes state. Under a lock this would deadlock.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .on_state_change(move |event| {
            if let StateChange::Host {
                to: HostState::Running,
                ..
            } = event.change
            {
                let snapshot = event.host().snapshot();
                let _ = event.host().stop_reason();
                event.host().request_stop_with(StopReason::Deadline);
                let _ = tx.lock().unwrap().send(snapshot.services.len());
            }
        })
        .background("worker", idle)
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(1));
    let report = host.join(PATIENCE).unwrap();
    assert_eq!(report.reason(), Some(&StopReason::Deadline));
}

#[test]
fn slow_listener_never_blocks_the_host() {
    // The listener blocks until the test releases it; the host starts and stops meanwhile.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let (seen_tx, seen_rx) = mpsc::channel::<String>();
    let seen_tx = Mutex::new(seen_tx);
    let host = HostBuilder::new()
        .on_state_change(move |event| {
            let _ = release_rx.lock().unwrap().recv_timeout(PATIENCE);
            let _ = seen_tx.lock().unwrap().send(event.change.to_string());
        })
        .background("worker", idle)
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(PATIENCE).unwrap();
    let report = host.stop(PATIENCE);
    assert!(report.is_clean(), "{report}");
    assert_eq!(handle.state(), HostState::Stopped);
    // Nothing delivered yet: the listener is still blocked on its first event.
    assert!(seen_rx.try_recv().is_err());
    drop(release_tx); // every recv in the listener returns at once now
    let first = seen_rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(first, "host starting");
    loop {
        let next = seen_rx
            .recv_timeout(PATIENCE)
            .expect("host stopped delivered");
        if next == "host stopped" {
            break;
        }
    }
}

#[test]
fn a_host_never_started_calls_no_listener() {
    let (seen, listener) = recorder();
    let host = HostBuilder::new()
        .on_state_change(listener)
        .background("worker", |_ctx| Ok(()))
        .build()
        .unwrap();
    drop(host);
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn snapshot_liveness_follows_heartbeats() {
    let (stall_tx, stall_rx) = mpsc::channel::<()>();
    let stall_rx = Mutex::new(stall_rx);
    let host = HostBuilder::new()
        .add_service(
            Service::background("critical", move |ctx| {
                // Beat every 10 ms until told to stall, then hang without beating.
                let stall = stall_rx.lock().unwrap();
                while stall.try_recv().is_err() {
                    ctx.heartbeat();
                    ctx.sleep(Duration::from_millis(10))?;
                }
                ctx.token().wait();
                Ok(())
            })
            .liveness(Duration::from_millis(200)),
        )
        .background("plain", idle)
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(PATIENCE).unwrap();
    let snap = handle.snapshot();
    let critical = snap.service("critical").unwrap();
    assert!(critical.is_critical());
    assert_eq!(critical.liveness, Some(Duration::from_millis(200)));
    assert!(critical.heartbeat_age.is_some());
    assert!(snap.not_live().is_empty(), "{snap:?}");
    assert!(!snap.service("plain").unwrap().is_critical());

    stall_tx.send(()).unwrap();
    // Let the liveness window pass with no heartbeat.
    std::thread::sleep(Duration::from_millis(600));
    let snap = handle.snapshot();
    let not_live: Vec<&str> = snap.not_live().iter().map(|s| &*s.name).collect();
    assert_eq!(not_live, ["critical"]);
    let critical = snap.service("critical").unwrap();
    assert_eq!(critical.state, ServiceState::Running);
    assert!(critical.heartbeat_age.unwrap() >= Duration::from_millis(200));
    assert!(host.stop(PATIENCE).is_clean());
}

#[test]
fn failed_critical_service_is_not_live() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        // Await the failure through a listener instead of sleeping.
        .on_state_change(move |e| {
            if let StateChange::Service {
                to: ServiceState::Failed,
                ..
            } = e.change
            {
                let _ = tx.lock().unwrap().send(());
            }
        })
        .add_service(
            Service::background("critical", |_ctx| Err("boom".into()))
                .liveness(Duration::from_secs(60))
                .on_failure(Policy::Ignore),
        )
        .build()
        .unwrap();
    let handle = host.handle();
    host.start(PATIENCE).unwrap();
    rx.recv_timeout(PATIENCE).unwrap();
    let snap = handle.snapshot();
    let critical = snap.service("critical").unwrap();
    assert_eq!(critical.state, ServiceState::Failed);
    assert!(!critical.is_live());
    assert_eq!(snap.not_live().len(), 1);
    assert!(host.stop(PATIENCE).is_complete());
}

#[test]
fn snapshot_metrics_run_outside_the_lock() {
    let handle_slot: Arc<Mutex<Option<threadhost::HostHandle>>> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&handle_slot);
    let host = HostBuilder::new()
        .add_service(Service::background("queue", idle).metrics(move || {
            // Takes the lifecycle lock: would deadlock if called under it.
            let reason = slot.lock().unwrap().as_ref().map(|h| h.stop_reason());
            vec![
                ("sent", 7),
                ("stopping", u64::from(reason.flatten().is_some())),
            ]
        }))
        .add_service(Service::background("broken", idle).metrics(|| panic!("metrics bug")))
        .build()
        .unwrap();
    *handle_slot.lock().unwrap() = Some(host.handle());
    host.start(PATIENCE).unwrap();
    let snap = host.handle().snapshot();
    assert_eq!(
        snap.service("queue").unwrap().metrics,
        [("sent", 7), ("stopping", 0)]
    );
    assert!(snap.service("broken").unwrap().metrics.is_empty());
    assert!(host.stop(PATIENCE).is_clean());
    handle_slot.lock().unwrap().take();
}

#[test]
fn run_waits_for_a_slow_listener_to_catch_up() {
    // Each event takes 200 ms; there are about ten. `run` waits for all of them, because the
    // listener keeps making progress.
    let (seen, listener) = slow_recorder(Duration::from_millis(200));
    let result = HostBuilder::new()
        .on_state_change(listener)
        .hosted("svc", Noop)
        .background("one-shot", |ctx| {
            ctx.host().started().wait();
            ctx.host().request_stop();
            Ok(())
        })
        .build()
        .unwrap()
        .run();
    assert!(result.is_ok(), "{result:?}");
    assert_saw_stopped_last(&seen);
}

#[test]
fn run_does_not_wait_for_a_stuck_listener() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let began = std::time::Instant::now();
    let result = HostBuilder::new()
        .on_state_change(move |event| {
            if let StateChange::Host {
                to: HostState::Stopping,
                ..
            } = event.change
            {
                // Stuck until the test releases it (or 60 s pass).
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(60));
            }
        })
        .background("one-shot", stop_own_host)
        .build()
        .unwrap()
        .run();
    let took = began.elapsed();
    drop(release_tx);
    assert!(result.is_ok(), "{result:?}");
    // One second without progress, then `run` returns: far from the listener's 60 s.
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn stop_waits_for_a_slow_listener_to_catch_up() {
    // Each event takes 100 ms. `stop` returns only once the listener has seen the final
    // state: a program that exits right after `stop` loses no STATUS line.
    let (seen, listener) = slow_recorder(Duration::from_millis(100));
    let host = HostBuilder::new()
        .on_state_change(listener)
        .hosted("svc", Noop)
        .background("worker", idle)
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let report = host.stop(PATIENCE);
    assert!(report.is_clean(), "{report}");
    assert_saw_stopped_last(&seen);
}

#[test]
fn stop_flushes_listeners_only_within_its_deadline() {
    // A listener stuck on the `Stopping` event: `stop(100 ms)` still returns by its deadline
    // (plus the late grace and scheduling), not after the listener or the flush's stall time.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let host = HostBuilder::new()
        .on_state_change(move |event| {
            if let StateChange::Host {
                to: HostState::Stopping,
                ..
            } = event.change
            {
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(60));
            }
        })
        .background("worker", idle)
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let began = std::time::Instant::now();
    let report = host.stop(Duration::from_millis(100));
    let took = began.elapsed();
    drop(release_tx);
    assert!(report.is_clean(), "{report}");
    // The flush's own stall limit is 1 s: well under it shows the deadline ended the wait.
    assert!(took < Duration::from_millis(900), "{took:?}");
}

#[test]
fn join_waits_for_a_slow_listener_to_catch_up() {
    // As `stop`: once `join` returns, the listener has seen the final state.
    let (seen, listener) = slow_recorder(Duration::from_millis(100));
    let host = HostBuilder::new()
        .on_state_change(listener)
        .hosted("svc", Noop)
        .background("one-shot", stop_own_host)
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let report = host.join(PATIENCE).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_saw_stopped_last(&seen);
}
