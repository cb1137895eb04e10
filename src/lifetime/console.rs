//! The console lifetime: SIGINT / SIGTERM / SIGHUP through ctrlc's `termination` feature.
//!
//! ctrlc allows one handler per process, so threadhost installs one, once, and keeps a list of
//! the hosts that asked for it. The handler runs on ctrlc's own thread (the signal handler
//! itself only wakes that thread) and does nothing but request a stop — or exit the process
//! with `EXIT_FORCED`: for a second signal while a host is stopping, and for a signal when
//! every registered host has stopped (nothing is left to stop gracefully).

use std::sync::Mutex;

use crate::error::Error;
use crate::host::{HostHandle, WeakHostHandle};
use crate::lifetime::EXIT_FORCED;
use crate::state::HostState;
use crate::stop::StopReason;

/// Hosts that asked for the console lifetime. A std mutex: never contended, and usable from
/// the signal thread.
static HOSTS: Mutex<Vec<WeakHostHandle>> = Mutex::new(Vec::new());
/// Whether ctrlc's handler is installed (ctrlc takes one per process).
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Registers `host` with the process's console lifetime, installing the handler once.
pub(crate) fn install(host: &HostHandle) -> Result<(), Error> {
    {
        let mut hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
        hosts.retain(|w| !w.is_gone());
        hosts.push(host.downgrade());
    }
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        // First ask politely: `try_set_handler` refuses (and restores what was there) when
        // SIGINT, SIGTERM or SIGHUP does not have its default disposition — a handler the
        // program installed itself (sigaction, signal, another library), or SIG_IGN
        // inherited from `nohup` or a background job of a non-interactive shell. ctrlc does
        // not say which, and threadhost has no `libc` to ask: say both, loudly, then replace
        // it (the program asked for the console lifetime). `set_handler` fails with
        // `MultipleHandlers` only if the program installed its own ctrlc handler.
        match ctrlc::try_set_handler(on_signal) {
            Ok(()) => {}
            Err(ctrlc::Error::MultipleHandlers) => {
                ctrlc::set_handler(on_signal).map_err(Error::Signal)?;
                log::warn!(
                    "console lifetime: {SIGNALS} already had a handler or was ignored (the \
                     program's own handler, or SIG_IGN from nohup or a background shell); \
                     it was replaced: these signals now request a graceful stop"
                );
            }
            Err(e) => return Err(Error::Signal(e)),
        }
        *installed = true;
    }
    Ok(())
}

/// The signals that reach the handler: ctrlc's `termination` feature on Unix (on Windows,
/// Ctrl-C and Ctrl-Break).
const SIGNALS: &str = "SIGINT, SIGTERM or SIGHUP";

fn on_signal() {
    let hosts: Vec<HostHandle> = {
        let hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
        hosts.iter().filter_map(WeakHostHandle::upgrade).collect()
    };
    let stopping = hosts.iter().any(|h| {
        h.stop_reason().is_some() && !h.state().is_terminal() && h.state() != HostState::Created
    });
    // ctrlc's handler does not say which of the three signals arrived (its signal handler
    // only posts a semaphore), so the log line names all three rather than guess.
    if stopping {
        log::warn!(
            "Second termination signal ({SIGNALS}) while stopping: exiting at once \
             (code {EXIT_FORCED}); stop hooks still running are abandoned"
        );
        log::logger().flush();
        std::process::exit(i32::from(EXIT_FORCED));
    }
    if hosts.iter().all(|h| h.state().is_terminal()) {
        // Every host that asked for the console lifetime is done (or gone): nothing is left
        // to stop gracefully, and swallowing the signal would leave the process unkillable
        // by Ctrl-C. Behave as the default disposition would, with a documented code.
        log::warn!(
            "Termination signal ({SIGNALS}) after the host stopped: exiting at once \
             (code {EXIT_FORCED})"
        );
        log::logger().flush();
        std::process::exit(i32::from(EXIT_FORCED));
    }
    log::info!("Termination signal ({SIGNALS}) received; requesting a graceful stop");
    for h in hosts {
        h.request_stop_with(StopReason::Signal);
    }
}
