//! systemd's notify protocol (`Type=notify`) and watchdog, with std's Unix datagram socket.
//!
//! Built on the host's public state listeners ([`HostBuilder::on_state_change`]): the listener
//! sends `READY=1`, `STOPPING=1` and `STATUS=` lines as the host changes state, and starts a
//! helper thread, `th:systemd`, that sends `WATCHDOG=1` and `EXTEND_TIMEOUT_USEC=` on a
//! schedule until the host has stopped.
//!
//! # Invariants
//!
//! 1. Nothing here blocks the lifecycle: the socket is non-blocking (a datagram that does not
//!    fit is dropped and logged), and every message is sent from the event thread or the
//!    helper thread, never from the sequencer.
//! 2. The helper waits only on the host's `stopped` token, with a deadline (the next ping or
//!    extension): it wakes within microseconds of the stop, and ends then.
//! 3. `WATCHDOG=1` is sent while the host is starting or stopping (each bounded by its own
//!    deadline), and while running only when every critical service is live
//!    ([`HostSnapshot::not_live`](crate::HostSnapshot::not_live) is empty).
//! 4. `EXTEND_TIMEOUT_USEC` is sent only while a start or stop is in progress and before the
//!    host's own deadline for it (`startup_timeout`, `shutdown_timeout`): an extension never
//!    reaches further than that deadline plus one tick. A start without a startup timeout
//!    is not extended (systemd's `TimeoutStartSec=` stays in charge).
//!
//! [`HostBuilder::on_state_change`]: crate::HostBuilder::on_state_change

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::host::{HostEvent, HostHandle, HostState, Listener, ServiceState, StateChange};
use crate::sync::Mutex;

/// The longest interval between two `EXTEND_TIMEOUT_USEC` messages.
const EXTEND_TICK: Duration = Duration::from_secs(1);

/// Where the notify datagrams go: `$NOTIFY_SOCKET`.
#[derive(Debug)]
struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// For log lines.
    name: String,
}

impl Notifier {
    /// Sends one datagram (invariant 1): never blocks; a failure is logged, not fatal.
    fn send(&self, message: &str) {
        log::trace!("systemd notify: {}", message.replace('\n', " "));
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            log::debug!("systemd notify to `{}` failed: {e}", self.name);
        }
    }
}

/// The settings read from the environment.
#[derive(Debug)]
struct Settings {
    notifier: Notifier,
    /// `WATCHDOG_USEC`, when set and meant for this process (`WATCHDOG_PID`).
    watchdog: Option<Duration>,
}

/// The listener that speaks systemd's protocol, or `None` when `NOTIFY_SOCKET` is unset (not
/// run by systemd: a no-op).
pub(crate) fn listener() -> Result<Option<Listener>, Error> {
    listener_with(|name| std::env::var_os(name))
}

fn listener_with(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Option<Listener>, Error> {
    let Some(settings) = settings(&lookup)? else {
        return Ok(None);
    };
    if let Some(w) = settings.watchdog {
        log::debug!("systemd watchdog: every {w:?}; pinging every {:?}", w / 2);
    }
    let state = StdArc::new(Link {
        settings,
        progress: Mutex::new(Progress::default()),
    });
    Ok(Some(StdArc::new(move |event: &HostEvent| {
        on_event(&state, event);
    })))
}

fn settings(lookup: &impl Fn(&str) -> Option<OsString>) -> Result<Option<Settings>, Error> {
    let Some(raw) = lookup("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = raw.to_string_lossy().into_owned();
    let addr = socket_addr(&raw).map_err(|e| {
        Error::invalid_option("NOTIFY_SOCKET", &text, format!("not a socket address: {e}"))
    })?;
    let socket = UnixDatagram::unbound()
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .map_err(|e| {
            Error::invalid_option(
                "NOTIFY_SOCKET",
                &text,
                format!("could not create a socket: {e}"),
            )
        })?;
    let watchdog = watchdog(lookup)?;
    Ok(Some(Settings {
        notifier: Notifier {
            socket,
            addr,
            name: text,
        },
        watchdog,
    }))
}

/// `/path` or `@abstract` (Linux).
fn socket_addr(raw: &std::ffi::OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        abstract_addr(name)
    } else {
        SocketAddr::from_pathname(Path::new(raw))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}

/// `WATCHDOG_USEC` (microseconds), unless `WATCHDOG_PID` names another process.
fn watchdog(lookup: &impl Fn(&str) -> Option<OsString>) -> Result<Option<Duration>, Error> {
    let Some(raw) = lookup("WATCHDOG_USEC").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = raw.to_string_lossy();
    let usec: u64 = text.trim().parse().ok().filter(|&u| u > 0).ok_or_else(|| {
        Error::invalid_option("WATCHDOG_USEC", &text, "a positive number of microseconds")
    })?;
    if let Some(pid) = lookup("WATCHDOG_PID").filter(|v| !v.is_empty()) {
        let text = pid.to_string_lossy();
        let pid: u32 = text.trim().parse().map_err(|_| {
            Error::invalid_option("WATCHDOG_PID", &text, "a process id (a positive integer)")
        })?;
        if pid != std::process::id() {
            log::debug!(
                "systemd watchdog is for pid {pid}, not this process ({}): not pinging",
                std::process::id()
            );
            return Ok(None);
        }
    }
    Ok(Some(Duration::from_micros(usec)))
}

/// What the listener and the helper thread share.
#[derive(Debug)]
struct Link {
    settings: Settings,
    progress: Mutex<Progress>,
}

/// The deadlines of the start and stop in progress, written by the listener, read by the
/// helper (invariant 4).
#[derive(Debug, Default)]
struct Progress {
    start_deadline: Option<Instant>,
    stop_deadline: Option<Instant>,
}

/// The listener: runs on the host's event thread, never under a threadhost lock.
fn on_event(link: &StdArc<Link>, event: &HostEvent) {
    let notifier = &link.settings.notifier;
    match &event.change {
        StateChange::Host { to, reason, .. } => match to {
            HostState::Starting => {
                let options = event.host().options();
                link.progress.lock().start_deadline = options
                    .startup_timeout
                    .and_then(|t| event.at.checked_add(t));
                notifier.send("STATUS=starting");
                spawn_helper(link, event.host());
            }
            HostState::Running => {
                let n = event.host().snapshot().services.len();
                let plural = if n == 1 { "" } else { "s" };
                notifier.send(&format!("READY=1\nSTATUS=running ({n} service{plural})"));
            }
            HostState::Stopping => {
                let timeout = event.host().options().shutdown_timeout;
                // Only the listener writes; the helper reads at its next tick.
                link.progress.lock().stop_deadline = event.at.checked_add(timeout);
                let why = reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(": {r}"));
                notifier.send(&format!("STOPPING=1\nSTATUS=stopping{why}"));
            }
            HostState::Stopped => notifier.send("STATUS=stopped"),
            HostState::Failed => notifier.send("STATUS=failed to start"),
            HostState::Created => {}
        },
        StateChange::Service { to, .. } => {
            if matches!(
                to,
                ServiceState::Failed
                    | ServiceState::Restarting
                    | ServiceState::TimedOut
                    | ServiceState::Completed
            ) {
                notifier.send(&format!("STATUS={}", event.change));
            }
        }
    }
}

fn spawn_helper(link: &StdArc<Link>, host: &HostHandle) {
    let link = StdArc::clone(link);
    let host = host.clone();
    let spawned = crate::thread::spawn_named("th:systemd", None, move || helper(&link, &host));
    if let Err(e) = spawned {
        log::error!("could not spawn the systemd watchdog thread `th:systemd`: {e}");
    }
}

/// The helper thread: watchdog pings and timeout extensions, until the host stopped.
fn helper(link: &Link, host: &HostHandle) {
    let notifier = &link.settings.notifier;
    let ping_every = link.settings.watchdog.map(|w| w / 2);
    let extend_every = ping_every.map_or(EXTEND_TICK, |p| p.min(EXTEND_TICK));
    let stopped = host.stopped();
    let began = Instant::now();
    let mut next_ping = ping_every.map(|p| began + p);
    let mut next_extend = began + extend_every;
    let mut withheld = false;
    loop {
        let wake = next_ping.map_or(next_extend, |p| p.min(next_extend));
        // Invariant 2: woken at once by the stop, else at the next scheduled message.
        if stopped.wait_until(Deadline::at(wake)) {
            return;
        }
        let now = Instant::now();
        let state = host.state();
        if let (Some(at), Some(every)) = (next_ping, ping_every) {
            if now >= at {
                next_ping = Some(next_after(at, every, now));
                let not_live: Vec<String> = if state == HostState::Running {
                    let snapshot = host.snapshot();
                    snapshot
                        .not_live()
                        .iter()
                        .map(|s| format!("`{}` ({})", s.name, s.state))
                        .collect()
                } else {
                    Vec::new()
                };
                if not_live.is_empty() {
                    // Invariant 3.
                    notifier.send("WATCHDOG=1");
                    if withheld {
                        withheld = false;
                        log::info!("systemd watchdog: every critical service is live again");
                        notifier.send("STATUS=running");
                    }
                } else if !withheld {
                    withheld = true;
                    let names = not_live.join(", ");
                    log::error!(
                        "systemd watchdog: not pinging, critical service(s) not live: {names}"
                    );
                    notifier.send(&format!("STATUS=watchdog withheld: not live: {names}"));
                }
            }
        }
        if now >= next_extend {
            next_extend = next_after(next_extend, extend_every, now);
            let deadline = {
                // The listener writes these; read a consistent pair.
                let progress = link.progress.lock();
                match state {
                    HostState::Starting => progress.start_deadline,
                    HostState::Stopping => progress.stop_deadline,
                    _ => None,
                }
            };
            // Invariant 4.
            if let Some(deadline) = deadline.filter(|&d| d > now) {
                let window = (3 * extend_every).min(deadline - now + extend_every);
                notifier.send(&format!("EXTEND_TIMEOUT_USEC={}", window.as_micros()));
            }
        }
    }
}

/// The first instant `at + k·every` after `now` (missed ticks are skipped, not bunched).
fn next_after(at: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = at + every;
    if next <= now {
        let behind = (now - next).as_nanos() / every.as_nanos().max(1) + 1;
        next += every * u32::try_from(behind).unwrap_or(u32::MAX);
    }
    next
}
