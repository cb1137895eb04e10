//! The console lifetime: which signal does what.
//!
//! | signal | first | second, while the host stops | after every host stopped |
//! | --- | --- | --- | --- |
//! | `SIGINT`, `SIGTERM`, `SIGQUIT` | graceful stop, [`StopReason::Signal`] naming it | exit at once, 128 + its number | exit at once, 128 + its number |
//! | `SIGHUP` | a reload of each running host ([`HostHandle::request_reload`]); while a host starts, logged and ignored (not queued) | logged, ignored | logged, ignored |
//! | Windows: Ctrl-C, Ctrl-Break | graceful stop | exit at once, 130 | exit at once, 130 |
//!
//! On Unix, signal-hook's handler (async-signal-safe: it writes to a self-pipe) wakes one
//! thread, `th:signals`, which reads which signal arrived and acts; on Windows, ctrlc's
//! thread does (it cannot tell Ctrl-C from Ctrl-Break). `SIGQUIT` stops gracefully as
//! .NET's console lifetime does (no core dump). `SIGHUP` never stops the host (systemd's
//! `ExecReload=kill -HUP $MAINPID` and `Type=notify-reload` send it for `systemctl
//! reload`): a running host reloads, also when no service has a reload hook (the log says
//! there is nothing to reload), so that systemd gets its `RELOADING=1` / `READY=1` answer.
//!
//! "Second" means a second terminating signal for a host that a first one already asked to
//! stop: the first signal that arrives while a host stops by itself (a service asked for the
//! stop, or failed under `Policy::StopHost`) is a first one, and the stop goes on gracefully
//! (systemd's `SIGTERM` arriving then must not abandon the stop hooks).
//!
//! The handlers are installed once per process, and the hosts that asked for the console
//! lifetime are kept in a list (weakly: a dropped host leaves it), each with whether a
//! signal asked it to stop. Nothing here runs a hook: a stop or a reload is requested and
//! runs on the host's own threads. The logger is the one piece of user code here: each line
//! is logged with its panic caught, so that the stop, the reload or the exit after it always
//! happens.
//!
//! The forced exit is `128 + the signal's number` (130 for `SIGINT`, 143 for `SIGTERM`, 131
//! for `SIGQUIT`), what a shell reports for a process the signal killed, so a supervisor
//! reading the code can tell which signal forced it; [`EXIT_FORCED`] is the `SIGINT` case.
//! A signal after every registered host stopped exits the same way (nothing is left to stop
//! gracefully, and swallowing it would leave the process unkillable by Ctrl-C).
//!
//! A disposition found at install that is not the default (a handler of the program's own,
//! or `SIG_IGN` inherited from `nohup` or a background job) is named in a warning. `SIG_IGN`
//! is replaced: the program asked for the console lifetime. A handler of the program's own
//! is chained, not replaced: signal-hook calls it first, in the signal handler, then wakes
//! `th:signals`, so the program's handler still runs and the stop (or reload) still happens.

use std::sync::Mutex;

use crate::error::Error;
use crate::host::{HostHandle, WeakHostHandle};
#[cfg(windows)]
use crate::lifetime::EXIT_FORCED;
use crate::state::HostState;
use crate::stop::StopReason;

/// A host that asked for the console lifetime.
struct Entry {
    host: WeakHostHandle,
    /// A terminating signal asked it to stop: the next one forces the exit.
    signalled: bool,
}

/// Hosts that asked for the console lifetime. A std mutex: never contended, and usable from
/// the signal thread. No user code runs under it (a handle that may be a host's last one is
/// dropped after it is released).
static HOSTS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
/// Whether the handlers are installed (once per process).
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Registers `host` with the process's console lifetime, installing the handlers once.
pub(crate) fn install(host: &HostHandle) -> Result<(), Error> {
    {
        let mut hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
        hosts.retain(|e| !e.host.is_gone());
        hosts.push(Entry {
            host: host.downgrade(),
            signalled: false,
        });
    }
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        platform::install()?;
        *installed = true;
    }
    Ok(())
}

/// The registered hosts that still exist.
fn hosts() -> Vec<HostHandle> {
    let hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
    hosts.iter().filter_map(|e| e.host.upgrade()).collect()
}

/// A terminating signal, `name`, arrived; `code` is the forced exit's code.
fn on_terminate(name: &'static str, code: u8) {
    // Declared first, dropped last: after the list's lock is released.
    let mut hosts: Vec<HostHandle> = Vec::new();
    let stopping = {
        let mut entries = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
        let mut stopping = false;
        for e in entries.iter_mut() {
            let Some(h) = e.host.upgrade() else { continue };
            let state = h.state();
            // A second signal for a host a first one asked to stop, still stopping.
            stopping |= e.signalled && !state.is_terminal() && state != HostState::Created;
            // This one asks it (below, or it exits).
            e.signalled = true;
            hosts.push(h);
        }
        stopping
    };
    if stopping {
        crate::logging::warn!(
            "Second termination signal ({name}) while stopping: exiting at once (code \
             {code}); stop hooks still running are abandoned"
        );
        exit(code);
    }
    if hosts.iter().all(|h| h.state().is_terminal()) {
        crate::logging::warn!(
            "Termination signal ({name}) after the host stopped: exiting at once (code \
             {code})"
        );
        exit(code);
    }
    crate::logging::info!("Received {name}: stopping gracefully");
    for h in &hosts {
        h.request_stop_with(StopReason::Signal { name });
    }
}

fn exit(code: u8) -> ! {
    // The logger is user code: its panic must not cost the exit (its log lines are caught
    // alike, `crate::logging`, so none costs the stop, the reload or the exit that follows).
    crate::logging::guarded(|| log::logger().flush());
    std::process::exit(i32::from(code));
}

/// `SIGHUP` arrived: a reload of every running host.
#[cfg(unix)]
fn on_hangup() {
    let running: Vec<HostHandle> = hosts()
        .into_iter()
        .filter(|h| h.state() == HostState::Running && h.stop_reason().is_none())
        .collect();
    if running.is_empty() {
        crate::logging::warn!("Received SIGHUP: no host is running; ignored");
        return;
    }
    if running.iter().any(HostHandle::has_reload_hooks) {
        crate::logging::info!("Received SIGHUP: reloading");
    } else {
        crate::logging::info!(
            "Received SIGHUP: no reload hook registered; nothing to reload (the host \
             keeps running)"
        );
    }
    for h in running {
        if let Err(e) = h.request_reload() {
            crate::logging::warn!("SIGHUP: {e}");
        }
    }
}

#[cfg(unix)]
mod platform {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook::iterator::Signals;

    use crate::error::Error;

    /// The signals the console lifetime takes over.
    const SIGNALS: [libc::c_int; 4] = [SIGINT, SIGTERM, SIGQUIT, SIGHUP];

    pub(super) fn install() -> Result<(), Error> {
        let found = non_default();
        let mut signals = Signals::new(SIGNALS).map_err(Error::Signal)?;
        if !found.is_empty() {
            crate::logging::warn!(
                "console lifetime: {} already had a handler or was ignored (the program's own \
                 handler, or SIG_IGN from nohup or a background shell): SIGINT, SIGTERM and \
                 SIGQUIT now request a graceful stop, SIGHUP a reload (a handler of the \
                 program's own is still called, first)",
                found.join(", ")
            );
        }
        crate::thread::spawn_named("th:signals", None, move || {
            for signal in signals.forever() {
                // The handler only wakes this thread; a panic in a logger must not end it.
                crate::panic::log_panic(format_args!("the signal thread"), || dispatch(signal));
            }
        })
        .map_err(Error::Signal)?;
        Ok(())
    }

    fn dispatch(signal: libc::c_int) {
        let name = signal_hook::low_level::signal_name(signal).unwrap_or("a signal");
        if signal == SIGHUP {
            super::on_hangup();
        } else {
            // 128 + the number: 130, 143, 131 for SIGINT, SIGTERM, SIGQUIT.
            let code = u8::try_from(128 + signal).unwrap_or(crate::lifetime::EXIT_FORCED);
            super::on_terminate(name, code);
        }
    }

    /// The signals whose disposition is not the default (`SIG_IGN` or a handler), each with
    /// what it is, before signal-hook replaces them.
    fn non_default() -> Vec<String> {
        SIGNALS
            .iter()
            .filter_map(|&signal| {
                let handler = disposition(signal)?;
                let name = signal_hook::low_level::signal_name(signal).unwrap_or("?");
                if handler == libc::SIG_DFL {
                    None
                } else if handler == libc::SIG_IGN {
                    Some(format!("{name} (ignored)"))
                } else {
                    Some(format!("{name} (a handler)"))
                }
            })
            .collect()
    }

    /// The current handler of `signal` (`sa_sigaction`), or `None` if it cannot be read.
    #[allow(unsafe_code)]
    fn disposition(signal: libc::c_int) -> Option<libc::sighandler_t> {
        // SAFETY: `sigaction` is a plain C struct, for which all-zero bytes are a valid value.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `old`, a valid,
        // writable `sigaction`; nothing is changed.
        let rc = unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) };
        (rc == 0).then_some(old.sa_sigaction)
    }
}

#[cfg(windows)]
mod platform {
    use crate::error::Error;

    pub(super) fn install() -> Result<(), Error> {
        let handler = || super::on_terminate("Ctrl-C or Ctrl-Break", super::EXIT_FORCED);
        match ctrlc::try_set_handler(handler) {
            Ok(()) => Ok(()),
            Err(ctrlc::Error::MultipleHandlers) => {
                ctrlc::set_handler(handler).map_err(|e| Error::Signal(std::io::Error::other(e)))?;
                crate::logging::warn!(
                    "console lifetime: Ctrl-C already had a handler; replaced: it now requests \
                     a graceful stop"
                );
                Ok(())
            }
            Err(e) => Err(Error::Signal(std::io::Error::other(e))),
        }
    }
}
