//! A reload whose log lines panic in the logger (a logger is user code): the reload still
//! returns its real report and tells the listeners which hook failed, and it does not stay
//! claimed. Its own test binary, as it installs a process-wide logger that panics.
#![cfg(feature = "listeners")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use common::{PATIENCE, SECS5, idle};
use threadhost::{HostBuilder, ReloadOutcome, Service, StateChange};

/// Panics on every record of the reload's outcome while `ARMED`.
struct PanickingLogger;

static ARMED: AtomicBool = AtomicBool::new(true);

impl log::Log for PanickingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string();
        if ARMED.load(Ordering::SeqCst) && (text.starts_with("reload") || text.contains("Reload")) {
            panic!("a logger that panics on `{text}`");
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_panicking_logger_loses_no_reload_report() {
    static LOGGER: PanickingLogger = PanickingLogger;
    log::set_logger(&LOGGER).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Trace);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let host = HostBuilder::new()
        .on_state_change(move |event| {
            if let StateChange::Reloaded { failed } = &event.change {
                let names: Vec<String> = failed.iter().map(|n| n.to_string()).collect();
                let _ = tx.lock().unwrap().send(names);
            }
        })
        .add_service(Service::background("bad", idle).on_reload(|_| Err("bad value".into())))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let report = host.handle().reload(SECS5).unwrap();
    // The caller gets what the hook did, not an empty (clean) report.
    assert!(
        matches!(
            report.service("bad").map(|e| &e.outcome),
            Some(ReloadOutcome::Failed(_))
        ),
        "{report:?}"
    );
    // So do the listeners (e.g. systemd's STATUS line).
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), ["bad"]);
    // Not left claimed: the next reload runs.
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(host.handle().reload(SECS5).unwrap().failed().len(), 1);
    assert!(host.stop(SECS5).is_clean());
}
