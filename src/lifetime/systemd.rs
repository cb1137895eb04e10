//! systemd's notify protocol (`Type=notify`) and watchdog, with std's Unix datagram socket.
//!
//! Built on the host's public state listeners ([`HostBuilder::on_state_change`]): the listener
//! sends `READY=1`, `STOPPING=1`, `RELOADING=1` and `STATUS=` lines as the host changes
//! state, and starts a
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
//!    ([`HostSnapshot::not_live`](crate::HostSnapshot::not_live) is empty). Pings withheld
//!    and resumed say so in a `STATUS=` line; resumed by a stop, they say nothing (never
//!    `STATUS=running` after `STOPPING=1`).
//! 4. `EXTEND_TIMEOUT_USEC` is sent only while a start or stop is in progress and before the
//!    host's own deadline for it (`startup_timeout`, `shutdown_timeout`): an extension never
//!    reaches further than that deadline plus one tick. A start without a startup timeout
//!    is not extended (systemd's `TimeoutStartSec=` stays in charge).
//! 5. One message is one datagram of fixed keys, and a value can never add an assignment:
//!    [`Notifier::send`] is the only writer, and it passes every value through [`sanitize`]
//!    (control characters, newlines first, become spaces; at most [`MAX_VALUE_BYTES`]), so
//!    a service name or error text (often built from outside input) cannot inject
//!    `WATCHDOG=1`, `READY=1` or `MAINPID=` — nor defeat the liveness rule of invariant 3.
//! 6. Pings are at least [`MIN_PING_INTERVAL`] apart, whatever `WATCHDOG_USEC` says (a
//!    warning is logged when the floor applies): `WATCHDOG_USEC=1` must not spin a core.
//! 7. A reload speaks `Type=notify-reload`: `RELOADING=1` with `MONOTONIC_USEC=` (the
//!    `CLOCK_MONOTONIC` time it is sent, after the `SIGHUP` systemd sent: what systemd
//!    matches the reload with) when the hooks are about to run, then `READY=1` with a
//!    `STATUS=` when they are done, in that order (the listener gets the host's reload events
//!    in order, `host::reload` invariant 5). A failed hook still ends with `READY=1`: the
//!    reload failed, not the service, which goes on running (the `STATUS=` line names the
//!    services whose hook failed); `ERRNO=` is not sent, as it reports the service failed.
//!    A reload that ends after `STOPPING=1` was sent (a stop began while its hooks ran)
//!    sends nothing: `READY=1` then would tell systemd the stopping service is ready again.
//!
//! [`HostBuilder::on_state_change`]: crate::HostBuilder::on_state_change

use std::ffi::OsString;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::host::{HostEvent, HostHandle, Listener, StateChange};
use crate::state::{HostState, ServiceState};
use crate::sync::Mutex;

/// The longest interval between two `EXTEND_TIMEOUT_USEC` messages.
const EXTEND_TICK: Duration = Duration::from_secs(1);

/// The shortest interval between two watchdog pings (invariant 6). Half of `WATCHDOG_USEC` is
/// the normal interval; below 10 ms (a `WatchdogSec=` under 20 ms) it is raised to this.
/// Why this floor: each ping takes a snapshot and a `sendto`; at this rate they cost a small
/// fraction of a core, while `WATCHDOG_USEC=1` (a ping every half microsecond) kept
/// `th:systemd` busy all the time (both measured in RELIABILITY.md, "Sizes and outside text");
/// and on a loaded machine a thread cannot keep a deadline much finer than the scheduling
/// latency anyway, so a shorter watchdog could not be honoured by pinging faster.
pub(crate) const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);

/// The longest value of one assignment, in bytes (invariant 5): systemd reads a notify
/// datagram into a buffer of `PIPE_BUF` (4096) bytes and drops a longer one whole, and every
/// message here has at most two text values.
pub(crate) const MAX_VALUE_BYTES: usize = 1024;

/// The value of one assignment made safe (invariant 5): every control character (`\n`, `\r`,
/// NUL, tab, DEL, the C1 range) and the Unicode line and paragraph separators become a
/// space, and text longer than [`MAX_VALUE_BYTES`] is cut at a character boundary and ends
/// with `…`.
pub(crate) fn sanitize(value: &str) -> String {
    const ELLIPSIS: char = '…';
    let mut out = String::with_capacity(value.len().min(MAX_VALUE_BYTES));
    for c in value.chars() {
        let c = if crate::text::breaks_line(c) { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_VALUE_BYTES - ELLIPSIS.len_utf8() {
            out.push(ELLIPSIS);
            break;
        }
        out.push(c);
    }
    out
}

/// Where the notify datagrams go: `$NOTIFY_SOCKET`.
#[derive(Debug)]
struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// For log lines.
    name: String,
}

impl Notifier {
    /// Sends one datagram of `fields`, `KEY=value` lines (invariant 1): never blocks; a
    /// failure is logged, not fatal. The only writer of the protocol: every value goes
    /// through [`sanitize`] here (invariant 5); keys are constants of this module.
    fn send(&self, fields: &[(&'static str, &str)]) {
        let message = compose(fields);
        crate::logging::trace!("systemd notify: {}", message.replace('\n', " | "));
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            crate::logging::debug!("systemd notify to `{}` failed: {e}", self.name);
        }
    }
}

/// `KEY=value` lines, one per field, each value sanitised.
fn compose(fields: &[(&'static str, &str)]) -> String {
    let mut message = String::new();
    for (key, value) in fields {
        debug_assert!(key.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        if !message.is_empty() {
            message.push('\n');
        }
        message.push_str(key);
        message.push('=');
        message.push_str(&sanitize(value));
    }
    message
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
        let every = ping_interval(w);
        if every > w / 2 {
            crate::logging::warn!(
                "systemd watchdog: WATCHDOG_USEC={} asks for a ping every {:?}; pinging every \
                 {every:?} instead (the floor): systemd may take the service for hung, raise \
                 WatchdogSec= to at least {:?}",
                w.as_micros(),
                w / 2,
                2 * MIN_PING_INTERVAL
            );
        } else {
            crate::logging::debug!("systemd watchdog: every {w:?}; pinging every {every:?}");
        }
    }
    let state = Arc::new(Link {
        settings,
        progress: Mutex::new(Progress::default()),
    });
    Ok(Some(Arc::new(move |event: &HostEvent| {
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
            crate::logging::debug!(
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
    /// `STOPPING=1` was sent: a reload ending after it says nothing (invariant 7).
    stopping: bool,
}

/// The listener: runs on the host's event thread, never under a threadhost lock.
fn on_event(link: &Arc<Link>, event: &HostEvent) {
    let notifier = &link.settings.notifier;
    match &event.change {
        StateChange::Host { to, reason, .. } => match to {
            HostState::Starting => {
                let options = event.host().options();
                link.progress.lock().start_deadline = options
                    .startup_timeout
                    .and_then(|t| event.at.checked_add(t));
                notifier.send(&[("STATUS", "starting")]);
                spawn_helper(link, event.host());
            }
            HostState::Running => {
                let n = event.host().snapshot().services.len();
                let plural = if n == 1 { "" } else { "s" };
                notifier.send(&[
                    ("READY", "1"),
                    ("STATUS", &format!("running ({n} service{plural})")),
                ]);
            }
            HostState::Stopping => {
                let timeout = event.host().options().shutdown_timeout;
                // Only the listener writes; the helper reads at its next tick.
                {
                    let mut progress = link.progress.lock();
                    progress.stop_deadline = event.at.checked_add(timeout);
                    progress.stopping = true;
                }
                let why = reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(": {r}"));
                notifier.send(&[("STOPPING", "1"), ("STATUS", &format!("stopping{why}"))]);
            }
            HostState::Stopped => notifier.send(&[("STATUS", "stopped")]),
            HostState::Failed => notifier.send(&[("STATUS", "failed to start")]),
            HostState::Created => {}
        },
        // Type=notify-reload (invariant 7).
        StateChange::Reloading => {
            let usec = monotonic_usec().to_string();
            notifier.send(&[
                ("RELOADING", "1"),
                ("MONOTONIC_USEC", &usec),
                ("STATUS", "reloading"),
            ]);
        }
        StateChange::Reloaded { failed } => {
            if link.progress.lock().stopping {
                // Invariant 7: never `READY=1` (nor a `STATUS=running`) after `STOPPING=1`.
                crate::logging::debug!("systemd notify: a reload ended while stopping; not sent");
                return;
            }
            let status = if failed.is_empty() {
                "running (reloaded)".to_owned()
            } else {
                let names: Vec<String> = failed.iter().map(|n| format!("`{n}`")).collect();
                format!("running; reload failed: {}", names.join(", "))
            };
            notifier.send(&[("READY", "1"), ("STATUS", &status)]);
        }
        StateChange::Service { to, .. } | StateChange::Group { to, .. } => {
            if matches!(
                to,
                ServiceState::Failed
                    | ServiceState::Restarting
                    | ServiceState::TimedOut
                    | ServiceState::Completed
            ) {
                notifier.send(&[("STATUS", &event.change.to_string())]);
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in microseconds, what `MONOTONIC_USEC=` carries (std's `Instant` is
/// that clock on Linux, but does not say its value).
#[allow(unsafe_code)]
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Unix
    // threadhost builds for, and `clock_gettime` writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let micros = u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

fn spawn_helper(link: &Arc<Link>, host: &HostHandle) {
    let link = Arc::clone(link);
    let host = host.clone();
    let spawned = crate::thread::spawn_named("th:systemd", None, move || helper(&link, &host));
    if let Err(e) = spawned {
        crate::logging::error!("could not spawn the systemd watchdog thread `th:systemd`: {e}");
    }
}

/// The helper thread: watchdog pings and timeout extensions, until the host stopped.
fn helper(link: &Link, host: &HostHandle) {
    let notifier = &link.settings.notifier;
    let ping_every = link.settings.watchdog.map(ping_interval);
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
                    notifier.send(&[("WATCHDOG", "1")]);
                    if withheld {
                        withheld = false;
                        // Only a running host's services were found live again: a stop (or
                        // a start) pings whatever they do, and its own `STATUS=` stands
                        // (never `running` after `STOPPING=1`).
                        if state == HostState::Running {
                            crate::logging::info!(
                                "systemd watchdog: every critical service is live again"
                            );
                            notifier.send(&[("STATUS", "running")]);
                        }
                    }
                } else if !withheld {
                    withheld = true;
                    let names = not_live.join(", ");
                    crate::logging::error!(services = names.as_str();
                        "systemd watchdog: not pinging, critical service(s) not live: {names}"
                    );
                    notifier.send(&[("STATUS", &format!("watchdog withheld: not live: {names}"))]);
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
                let usec = window.as_micros().to_string();
                notifier.send(&[("EXTEND_TIMEOUT_USEC", &usec)]);
            }
        }
    }
}

/// Half the watchdog interval, at least [`MIN_PING_INTERVAL`] (invariant 6).
fn ping_interval(watchdog: Duration) -> Duration {
    (watchdog / 2).max(MIN_PING_INTERVAL)
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

#[cfg(test)]
mod tests {
    use super::{MAX_VALUE_BYTES, compose, sanitize};

    #[test]
    fn a_value_never_adds_an_assignment() {
        for hostile in [
            "boom\nWATCHDOG=1",
            "boom\r\nREADY=1",
            "boom\0MAINPID=1",
            "a\u{85}b\u{2028}c\u{2029}d\u{7f}e\tf",
        ] {
            let message = compose(&[("STATUS", hostile)]);
            assert_eq!(message.lines().count(), 1, "{message:?}");
            assert!(!message.chars().any(|c| c.is_control()), "{message:?}");
            assert!(message.starts_with("STATUS="));
        }
        assert_eq!(sanitize("x\ny"), "x y");
    }

    #[test]
    fn a_long_value_is_cut_at_a_character_boundary() {
        let long = "é".repeat(10 * MAX_VALUE_BYTES);
        let cut = sanitize(&long);
        assert!(cut.len() <= MAX_VALUE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        let short = "x".repeat(MAX_VALUE_BYTES - 3);
        assert_eq!(sanitize(&short), short);
    }
}
