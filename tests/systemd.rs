//! systemd notify and watchdog, with real parts: this test binds a real Unix datagram socket,
//! re-runs its own binary as a child process (a `HostBuilder::systemd()` host) with
//! `NOTIFY_SOCKET` pointing at it, and reads what the child sends.
//!
//! The child is the `child` test of this binary, selected by `TH_SYSTEMD_CHILD=<mode>`; run
//! normally, it does nothing.
#![cfg(all(unix, feature = "systemd", feature = "termination"))]
// Plain threads drain the child's stderr and wait for its exit; the slow hooks really sleep;
// the child prints to stderr.
#![allow(clippy::disallowed_methods, clippy::print_stderr)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::idle;
use threadhost::{Context, HostBuilder, Policy, Service, ServiceResult};

const CHILD_ENV: &str = "TH_SYSTEMD_CHILD";
/// WATCHDOG_USEC given to the children: pings every 100 ms.
const WATCHDOG_USEC: &str = "200000";
/// Generous bound for anything the child must do (a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(30);

// ---- the child side ----

/// Beats every 20 ms for `span` (a critical service's healthy phase), then returns; `Err` if
/// the stop came first.
fn beat_for(ctx: &Context, span: Duration) -> ServiceResult {
    let until = Instant::now() + span;
    while Instant::now() < until {
        ctx.heartbeat();
        ctx.sleep(Duration::from_millis(20))?;
    }
    Ok(())
}

/// The child process's entry point (a no-op unless `TH_SYSTEMD_CHILD` is set).
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .is_test(false)
        .try_init();
    let ms = Duration::from_millis;
    if mode == "noop" {
        // No NOTIFY_SOCKET: `.systemd()` must add nothing, not even a thread.
        let host = HostBuilder::new()
            .systemd()
            .background("worker", idle)
            .build()
            .unwrap();
        host.start(Duration::from_secs(10)).unwrap();
        let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect();
        names.sort();
        eprintln!("THREADS: {}", names.join(","));
        let _ = host.stop(Duration::from_secs(10));
        std::process::exit(0);
    }
    let mut builder = HostBuilder::new()
        .systemd()
        .console_lifetime()
        .shutdown_timeout(Duration::from_secs(10));
    builder = match mode.as_str() {
        // A critical service that beats every 20 ms, and a plain one.
        "normal" => builder
            .add_service(
                Service::background("critical", |ctx| {
                    while ctx.sleep(Duration::from_millis(20)).is_ok() {
                        ctx.heartbeat();
                    }
                    Ok(())
                })
                // Generous: a loaded machine must not make it look stuck.
                .liveness(ms(3000)),
            )
            .background("plain", idle),
        // Beats for 400 ms, then hangs: still running, no more heartbeats.
        "hang" => builder.add_service(
            Service::background("critical", |ctx| {
                beat_for(ctx, Duration::from_millis(400))?;
                ctx.token().wait();
                Ok(())
            })
            .liveness(ms(300)),
        ),
        // As `hang`, with a stop hook of 700 ms: the stop outlasts several ping ticks.
        "hang-slow-stop" => builder
            .add_service(
                Service::background("critical", |ctx| {
                    beat_for(ctx, Duration::from_millis(400))?;
                    ctx.token().wait();
                    Ok(())
                })
                .liveness(ms(300)),
            )
            .hosted("slow", Slow),
        // Beats for 400 ms, then fails; the host ignores it and goes on.
        "fail" => builder.add_service(
            Service::background("critical", |ctx| {
                beat_for(ctx, Duration::from_millis(400))?;
                Err("boom".into())
            })
            .liveness(ms(300))
            .on_failure(Policy::Ignore),
        ),
        // Hostile texts: a critical service whose error text carries newlines, `\r`,
        // NUL and assignments of their own (and 10 KB of padding); it beats for 400 ms, then
        // fails (ignored), so pings must stay withheld.
        "hostile" => builder
            .add_service(
                Service::background(HOSTILE_NAME, |ctx| {
                    beat_for(ctx, Duration::from_millis(400))?;
                    Err(hostile_error().into())
                })
                .liveness(ms(300))
                .on_failure(Policy::Ignore),
            )
            .background("plain", idle),
        // Two reload hooks (start order: `first`, `second`); `second` fails on its second call.
        "reload" => builder
            .add_service(common::reloading_service("first"))
            .add_service(common::failing_on_second_reload(
                "second",
                "bad config\nREADY=1",
            )),
        // Stops by itself once started.
        "oneshot" => builder.background("once", common::stop_own_host),
        // A reload hook of 20 ms.
        "storm" => builder.add_service(Service::background("cfg", idle).on_reload(|_| {
            std::thread::sleep(Duration::from_millis(20));
            Ok(())
        })),
        // A reload that ends while the host stops: the hook waits for the stop to begin,
        // and the stop hook of `holder` waits for the hook to return.
        "reload-stop" => {
            let (returned, hook_returned) = std::sync::mpsc::channel::<()>();
            let returned = std::sync::Mutex::new(returned);
            builder
                .add_service(Service::background("cfg", idle).on_reload(move |ctx| {
                    eprintln!("hook: reload began");
                    // Tells the parent on the notify socket itself, so that its SIGTERM comes
                    // after the hook began (a SIGTERM before would skip the hook).
                    let to = std::env::var("NOTIFY_SOCKET").unwrap();
                    let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
                    sock.send_to(b"X_TEST_HOOK=began", to).unwrap();
                    let _stopping = ctx.host().stopping().wait_until(Instant::now() + PATIENCE);
                    let _ = returned.lock().unwrap().send(());
                    Ok(())
                }))
                .hosted("holder", Holder(std::sync::Mutex::new(hook_returned)))
        }
        // A start and a stop of 700 ms each, within a startup timeout.
        "slow" => builder
            .startup_timeout(Duration::from_secs(20))
            .hosted("slow", Slow),
        other => panic!("unknown child mode {other}"),
    };
    let result = builder.build().and_then(|host| host.run());
    if let Err(e) = &result {
        log::error!("child: {e}");
    }
    std::process::exit(i32::from(threadhost::exit_code(&result)));
}

/// The hostile service's name (a name with a newline is refused by `build`:
/// tests/config.rs, `names_are_one_line_and_bounded`).
const HOSTILE_NAME: &str = "evil";

/// An error text (as built from outside input) that tries every injection, and is long.
fn hostile_error() -> String {
    let pad = "A".repeat(10_000);
    format!("boom\nWATCHDOG=1\nREADY=1\r\nMAINPID=1\0STATUS=forged\u{85}X=1\u{2028}{pad}")
}

struct Slow;

impl threadhost::HostedService for Slow {
    // A deliberately slow start.
    fn start(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
        std::thread::sleep(Duration::from_millis(700));
        Ok(())
    }
    // A deliberately slow stop.
    fn stop(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
        std::thread::sleep(Duration::from_millis(700));
        Ok(())
    }
}

/// Its stop hook waits for the reload hook to return.
struct Holder(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl threadhost::HostedService for Holder {
    fn start(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
        Ok(())
    }
    fn stop(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
        let _ = self.0.lock().unwrap().recv_timeout(PATIENCE);
        Ok(())
    }
}

// ---- the parent side ----

/// A bound notify socket and what was received on it.
struct Socket {
    sock: UnixDatagram,
    /// The `NOTIFY_SOCKET` value.
    name: String,
    path: Option<PathBuf>,
    /// Every line received, with the time its datagram arrived.
    lines: Vec<(Instant, String)>,
    /// Every datagram received, whole.
    datagrams: Vec<Vec<u8>>,
}

impl Socket {
    fn path(tag: &str) -> Socket {
        let path = std::env::temp_dir().join(format!("th-sd-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        Socket {
            sock,
            name: path.to_str().unwrap().to_owned(),
            path: Some(path),
            lines: Vec::new(),
            datagrams: Vec::new(),
        }
    }

    #[cfg(target_os = "linux")]
    fn abstract_name(tag: &str) -> Socket {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("th-sd-{}-{tag}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        Socket {
            sock,
            name: format!("@{name}"),
            path: None,
            lines: Vec::new(),
            datagrams: Vec::new(),
        }
    }

    /// Receives one datagram by `deadline`; `false` if none came.
    fn recv_until(&mut self, deadline: Instant) -> bool {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        self.sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        // Larger than any datagram threadhost may send, so an oversized one shows whole.
        let mut buf = vec![0u8; 64 * 1024];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                let at = Instant::now();
                self.datagrams.push(buf[..n].to_vec());
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.lines
                    .extend(text.lines().map(|line| (at, line.to_owned())));
                true
            }
            Err(_) => false,
        }
    }

    /// Receives until a line equal to `line` arrived (returns its time), or panics after
    /// `PATIENCE`.
    fn wait_for(&mut self, line: &str) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = 0;
        loop {
            if let Some((at, _)) = self.lines[seen..].iter().find(|(_, l)| l == line) {
                return *at;
            }
            seen = self.lines.len();
            assert!(
                self.recv_until(deadline),
                "no `{line}` within {PATIENCE:?}; got {:?}",
                self.texts()
            );
        }
    }

    /// Receives until a line starting with `prefix` arrived (returns its time), or panics
    /// after `PATIENCE`.
    fn wait_for_prefix(&mut self, prefix: &str) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = 0;
        loop {
            if let Some((at, _)) = self.lines[seen..]
                .iter()
                .find(|(_, l)| l.starts_with(prefix))
            {
                return *at;
            }
            seen = self.lines.len();
            assert!(
                self.recv_until(deadline),
                "no line starting with `{prefix}` within {PATIENCE:?}; got {:?}",
                self.texts()
            );
        }
    }

    /// Receives everything that arrives until `deadline`.
    fn drain_until(&mut self, deadline: Instant) {
        while self.recv_until(deadline) {}
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|(_, l)| l.as_str()).collect()
    }

    /// The lines without the periodic ones (`WATCHDOG=1`, `EXTEND_TIMEOUT_USEC=`).
    fn events(&self) -> Vec<&str> {
        self.texts()
            .into_iter()
            .filter(|l| *l != "WATCHDOG=1" && !l.starts_with("EXTEND_TIMEOUT_USEC="))
            .collect()
    }

    /// Prints what was received, with times relative to the first datagram (shown with
    /// `--nocapture`; the final report quotes it).
    fn print(&self, title: &str) {
        let Some(&(first, _)) = self.lines.first() else {
            return;
        };
        eprintln!("--- {title}: what the child sent to NOTIFY_SOCKET");
        for (at, line) in &self.lines {
            eprintln!("{:>8.3}s  {line}", (*at - first).as_secs_f64());
        }
    }

    fn count_between(&self, what: &str, from: Instant, to: Instant) -> usize {
        self.lines
            .iter()
            .filter(|(at, l)| l == what && *at >= from && *at <= to)
            .count()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct Proc {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

fn spawn_child(mode: &str, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the child");
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Proc {
        child,
        stderr: Some(stderr),
    }
}

impl Proc {
    fn signal(&self, sig: &str) {
        common::kill(self.child.id(), sig);
    }

    /// Waits for the exit (killing the child after `PATIENCE`); returns the status and stderr.
    fn finish(self) -> (ExitStatus, String) {
        let Proc { mut child, stderr } = self;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        if rx.recv_timeout(PATIENCE).is_err() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
        }
        let status = waiter.join().unwrap().expect("wait for the child");
        let stderr = stderr.unwrap().join().unwrap();
        (status, stderr)
    }
}

fn watchdog_env(sock: &Socket) -> Vec<(&str, &str)> {
    vec![
        ("NOTIFY_SOCKET", sock.name.as_str()),
        ("WATCHDOG_USEC", WATCHDOG_USEC),
    ]
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd reads `MONOTONIC_USEC=`.
#[allow(unsafe_code)]
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000 + u64::try_from(ts.tv_nsec).unwrap() / 1000
}

/// `Type=notify-reload`: SIGHUP gives `RELOADING=1` with a `MONOTONIC_USEC=` taken after the
/// signal was sent, then (after the hooks) `READY=1`, in order, in one datagram each; a
/// failing hook still ends with `READY=1`, its (hostile) error never an assignment; the
/// process keeps running until SIGTERM.
#[test]
fn sighup_speaks_notify_reload_in_order() {
    let mut sock = Socket::path("reload");
    let child = spawn_child("reload", &[("NOTIFY_SOCKET", sock.name.as_str())]);
    sock.wait_for("READY=1");
    let before = monotonic_usec();
    child.signal("HUP");
    sock.wait_for("STATUS=running (reloaded)");
    let after = monotonic_usec();
    child.signal("HUP");
    sock.wait_for_prefix("STATUS=running; reload failed");
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    sock.print("reload");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let events: Vec<&str> = sock
        .events()
        .into_iter()
        .map(|l| {
            if l.starts_with("MONOTONIC_USEC=") {
                "MONOTONIC_USEC="
            } else {
                l
            }
        })
        .collect();
    assert_eq!(
        events,
        [
            "STATUS=starting",
            "READY=1",
            "STATUS=running (2 services)",
            "RELOADING=1",
            "MONOTONIC_USEC=",
            "STATUS=reloading",
            "READY=1",
            "STATUS=running (reloaded)",
            "RELOADING=1",
            "MONOTONIC_USEC=",
            "STATUS=reloading",
            "READY=1",
            "STATUS=running; reload failed: `second`",
            "STOPPING=1",
            "STATUS=stopping: SIGTERM",
            "STATUS=stopped",
        ],
        "child stderr:\n{stderr}"
    );
    // RELOADING=1 and MONOTONIC_USEC= travel in one datagram, the time taken after the
    // signal was sent (what systemd checks) and before the reload was answered.
    let first = sock
        .datagrams
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .find(|d| d.starts_with("RELOADING=1\n"))
        .expect("a RELOADING=1 datagram");
    let usec: u64 = first
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC= with RELOADING=1")
        .parse()
        .expect("MONOTONIC_USEC= is a number");
    assert!(
        before <= usec && usec <= after,
        "{before} <= {usec} <= {after}"
    );
    // Start order; the process kept running between the reloads.
    let order: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hook: reload "))
        .collect();
    assert_eq!(
        order,
        [
            "hook: reload first ran",
            "hook: reload second ran (1)",
            "hook: reload first ran",
            "hook: reload second ran (2)",
        ],
        "{stderr}"
    );
}

#[test]
fn smoke_ready_then_stopping_in_order() {
    let mut sock = Socket::path("smoke");
    let child = spawn_child("normal", &[("NOTIFY_SOCKET", sock.name.as_str())]);
    sock.wait_for("READY=1");
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        sock.events(),
        [
            "STATUS=starting",
            "READY=1",
            "STATUS=running (2 services)",
            "STOPPING=1",
            "STATUS=stopping: SIGTERM",
            "STATUS=stopped",
        ],
        "child stderr:\n{stderr}"
    );
    // No watchdog without WATCHDOG_USEC.
    assert!(!sock.texts().contains(&"WATCHDOG=1"), "{:?}", sock.texts());
}

#[test]
fn watchdog_pings_at_half_the_interval_while_live() {
    let mut sock = Socket::path("rate");
    let child = spawn_child("normal", &watchdog_env(&sock));
    let ready = sock.wait_for("READY=1");
    let window = Duration::from_millis(1500);
    sock.drain_until(ready + window);
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    sock.print("watchdog rate");
    assert_eq!(status.code(), Some(0), "{stderr}");
    // WATCHDOG_USEC = 200 ms: a ping every 100 ms, so ~15 in 1.5 s. Generous bounds.
    let pings = sock.count_between("WATCHDOG=1", ready, ready + window);
    assert!(
        (6..=25).contains(&pings),
        "{pings} pings in {window:?}; {:?}",
        sock.texts()
    );
    assert_eq!(
        sock.events(),
        [
            "STATUS=starting",
            "READY=1",
            "STATUS=running (2 services)",
            "STOPPING=1",
            "STATUS=stopping: SIGTERM",
            "STATUS=stopped",
        ]
    );
}

#[test]
fn watchdog_stops_when_a_critical_service_hangs() {
    let mut sock = Socket::path("hang");
    let child = spawn_child("hang", &watchdog_env(&sock));
    let ready = sock.wait_for("READY=1");
    let withheld = sock.wait_for("STATUS=watchdog withheld: not live: `critical` (running)");
    // Pings went out while it beat; none for the next second while it hangs.
    let quiet = Duration::from_secs(1);
    sock.drain_until(withheld + quiet);
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    sock.print("critical service hangs");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        sock.count_between("WATCHDOG=1", ready, withheld) >= 1,
        "{:?}",
        sock.texts()
    );
    assert_eq!(
        sock.count_between("WATCHDOG=1", withheld, withheld + quiet),
        0,
        "{:?}",
        sock.texts()
    );
    assert!(
        stderr.contains("systemd watchdog: not pinging, critical service(s) not live"),
        "{stderr}"
    );
}

/// A stop while the pings are withheld: they resume (invariant 3: a stop is bounded by its
/// own deadline), but nothing says the critical service is live again, and no
/// `STATUS=running` follows `STOPPING=1`.
#[test]
fn a_stop_while_the_watchdog_is_withheld_sends_no_running_status() {
    let mut sock = Socket::path("hang-stop");
    let child = spawn_child("hang-slow-stop", &watchdog_env(&sock));
    sock.wait_for("READY=1");
    sock.wait_for("STATUS=watchdog withheld: not live: `critical` (running)");
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    sock.print("a stop while withheld");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let events = sock.events();
    let stopping = events.iter().position(|l| *l == "STOPPING=1").unwrap();
    assert!(
        !events[stopping..]
            .iter()
            .any(|l| l.starts_with("STATUS=running")),
        "{events:?}"
    );
    assert!(!stderr.contains("live again"), "{stderr}");
}

#[test]
fn watchdog_stops_when_a_critical_service_failed() {
    let mut sock = Socket::path("fail");
    let child = spawn_child("fail", &watchdog_env(&sock));
    sock.wait_for("READY=1");
    sock.wait_for("STATUS=service `critical` failed: boom");
    let withheld = sock.wait_for("STATUS=watchdog withheld: not live: `critical` (failed)");
    let quiet = Duration::from_secs(1);
    sock.drain_until(withheld + quiet);
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    // Policy::Ignore: the host went on and stopped gracefully.
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        sock.count_between("WATCHDOG=1", withheld, withheld + quiet),
        0,
        "{:?}",
        sock.texts()
    );
}

#[test]
fn watchdog_pid_of_another_process_disables_pings() {
    let mut sock = Socket::path("pid");
    let mut env = watchdog_env(&sock);
    env.push(("WATCHDOG_PID", "1"));
    let child = spawn_child("normal", &env);
    let ready = sock.wait_for("READY=1");
    sock.drain_until(ready + Duration::from_millis(800));
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!sock.texts().contains(&"WATCHDOG=1"), "{:?}", sock.texts());
}

#[test]
fn extend_timeout_during_slow_start_and_stop() {
    let mut sock = Socket::path("slow");
    let child = spawn_child("slow", &watchdog_env(&sock));
    let ready = sock.wait_for("READY=1");
    child.signal("TERM");
    let stopping = sock.wait_for("STOPPING=1");
    let stopped = sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    sock.print("slow start and stop");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let extends = |from: Instant, to: Instant| -> Vec<u64> {
        sock.lines
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .filter_map(|(_, l)| l.strip_prefix("EXTEND_TIMEOUT_USEC="))
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let first = sock.lines[0].0;
    let during_start = extends(first, ready);
    let during_stop = extends(stopping, stopped);
    // 700 ms start and stop, a tick of 100 ms (half the watchdog interval).
    assert!(!during_start.is_empty(), "{:?}", sock.texts());
    assert!(!during_stop.is_empty(), "{:?}", sock.texts());
    // Each extension is at most three ticks.
    for usec in during_start.iter().chain(&during_stop) {
        assert!((1..=300_000).contains(usec), "{usec}");
    }
    assert_eq!(
        sock.events(),
        [
            "STATUS=starting",
            "READY=1",
            "STATUS=running (1 service)",
            "STOPPING=1",
            "STATUS=stopping: SIGTERM",
            "STATUS=stopped",
        ]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn abstract_socket_name() {
    let mut sock = Socket::abstract_name("abstract");
    let child = spawn_child("normal", &[("NOTIFY_SOCKET", sock.name.as_str())]);
    sock.wait_for("READY=1");
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        sock.events(),
        [
            "STATUS=starting",
            "READY=1",
            "STATUS=running (2 services)",
            "STOPPING=1",
            "STATUS=stopping: SIGTERM",
            "STATUS=stopped",
        ]
    );
}

#[test]
fn bad_watchdog_usec_is_a_config_error() {
    let sock = Socket::path("bad");
    let child = spawn_child(
        "normal",
        &[
            ("NOTIFY_SOCKET", sock.name.as_str()),
            ("WATCHDOG_USEC", "soon"),
        ],
    );
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(i32::from(threadhost::EXIT_CONFIG)));
    assert!(
        stderr.contains("invalid value `soon` for WATCHDOG_USEC"),
        "{stderr}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn without_notify_socket_systemd_is_a_no_op() {
    let (status, stderr) = spawn_child("noop", &[]).finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let threads = stderr
        .lines()
        .find_map(|l| l.strip_prefix("THREADS: "))
        .unwrap_or_else(|| panic!("no THREADS line: {stderr}"));
    let threads: Vec<&str> = threads.split(',').collect();
    assert!(threads.contains(&"th:worker"), "{threads:?}");
    assert!(!threads.contains(&"th:systemd"), "{threads:?}");
    assert!(!threads.contains(&"th:host-events"), "{threads:?}");
}

/// Invariant 5 of src/lifetime/systemd.rs, on a real socket: a hostile error text (newline +
/// `WATCHDOG=1`, `\r`, NUL, `READY=1`, `MAINPID=`, 10 KB) never adds an assignment, and pings
/// stay withheld while the critical service is not live. (The failure's text reaches the
/// notify writer already on one line, escaped as in the log; the writer's own sanitising is
/// the second line of defence, tested on its own in src/lifetime/systemd.rs.)
#[test]
fn hostile_texts_never_become_assignments() {
    let mut sock = Socket::path("hostile");
    let child = spawn_child("hostile", &watchdog_env(&sock));
    sock.wait_for("READY=1");
    sock.wait_for_prefix(
        "STATUS=service `evil` failed: boom\\nWATCHDOG=1\\nREADY=1\\r\\nMAINPID=1\\u{0}STATUS=forged",
    );
    let withheld = sock.wait_for("STATUS=watchdog withheld: not live: `evil` (failed)");
    let quiet = Duration::from_secs(1);
    sock.drain_until(withheld + quiet);
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Every line of every datagram is one of threadhost's own assignments.
    for datagram in &sock.datagrams {
        let text = String::from_utf8(datagram.clone()).expect("UTF-8 datagram");
        assert!(
            datagram.len() <= 4096,
            "a {}-byte datagram (systemd drops those over 4096)",
            datagram.len()
        );
        assert!(!text.contains(['\r', '\0']), "{text:?}");
        for line in text.split('\n') {
            let own = ["READY=1", "STOPPING=1", "WATCHDOG=1"].contains(&line)
                || line.starts_with("STATUS=")
                || line.starts_with("EXTEND_TIMEOUT_USEC=");
            assert!(own, "an injected line {line:?} in datagram {text:?}");
        }
    }
    let texts = sock.texts();
    assert_eq!(
        texts.iter().filter(|l| **l == "READY=1").count(),
        1,
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|l| l.starts_with("MAINPID=")),
        "{texts:?}"
    );
    // The long error text was cut, not sent whole.
    let failed = texts
        .iter()
        .find(|l| l.starts_with("STATUS=service `evil"))
        .unwrap();
    assert!(
        failed.ends_with('…') && failed.len() < 1100,
        "{} bytes",
        failed.len()
    );
    assert_eq!(
        sock.count_between("WATCHDOG=1", withheld, withheld + quiet),
        0,
        "{texts:?}"
    );
}

/// Invariant 6: `WATCHDOG_USEC=1` asks for a ping every 0.5 µs; pings are floored at 10 ms
/// apart (about 100 a second), with a warning, instead of spinning `th:systemd`.
#[test]
fn a_tiny_watchdog_interval_is_floored() {
    let mut sock = Socket::path("tiny");
    let child = spawn_child(
        "normal",
        &[
            ("NOTIFY_SOCKET", sock.name.as_str()),
            ("WATCHDOG_USEC", "1"),
        ],
    );
    let ready = sock.wait_for("READY=1");
    let window = Duration::from_secs(1);
    sock.drain_until(ready + window);
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let pings = sock.count_between("WATCHDOG=1", ready, ready + window);
    eprintln!("WATCHDOG_USEC=1: {pings} pings in {window:?}");
    // 100 a second at the floor; generous bounds for a loaded machine.
    assert!((10..=150).contains(&pings), "{pings} pings in {window:?}");
    assert!(
        stderr.contains("WATCHDOG_USEC=1 asks for a ping every") && stderr.contains("(the floor)"),
        "{stderr}"
    );
}

// ---- hostile cases: signals and reloads ----

/// 100 SIGHUPs in 5 bursts of 20 while a 20 ms hook runs: every `RELOADING=1` comes with its
/// `MONOTONIC_USEC=` (in one datagram, never decreasing), and the reloads are paired and
/// never interleaved: `READY=1` of reload n before `RELOADING=1` of n + 1.
#[test]
fn a_sighup_storm_keeps_reloading_and_ready_paired() {
    let mut sock = Socket::path("storm");
    let child = spawn_child("storm", &[("NOTIFY_SOCKET", sock.name.as_str())]);
    sock.wait_for("READY=1");
    let pid = child.child.id().to_string();
    for burst in 1..=5 {
        let status = Command::new("kill")
            .args(["-s", "HUP"])
            .args(std::iter::repeat_n(pid.as_str(), 20))
            .status()
            .expect("run kill");
        assert!(status.success());
        // At least one more reload begins after each burst.
        let deadline = Instant::now() + PATIENCE;
        while sock.texts().iter().filter(|l| **l == "RELOADING=1").count() < burst {
            assert!(sock.recv_until(deadline), "{:?}", sock.texts());
        }
    }
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let mut last_usec = 0;
    let mut open = false;
    let mut reloads = 0;
    for d in &sock.datagrams {
        let d = String::from_utf8_lossy(d);
        if d.starts_with("RELOADING=1\n") {
            assert!(
                !open,
                "RELOADING=1 before the previous READY=1: {:?}",
                sock.texts()
            );
            open = true;
            reloads += 1;
            let usec: u64 = d
                .lines()
                .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
                .expect("MONOTONIC_USEC= with every RELOADING=1")
                .parse()
                .unwrap();
            assert!(usec >= last_usec, "{usec} < {last_usec}");
            last_usec = usec;
        } else if d.starts_with("READY=1") && reloads > 0 {
            assert!(open, "READY=1 without a reload: {:?}", sock.texts());
            open = false;
        } else if d.starts_with("STOPPING=1") {
            break;
        }
    }
    assert!((5..100).contains(&reloads), "{reloads}: {:?}", sock.texts());
}

/// A reload that ends while the host stops does not send `READY=1` after `STOPPING=1`
/// (systemd would take the stopping service for ready again).
#[test]
fn a_reload_ending_during_the_stop_sends_no_ready() {
    let mut sock = Socket::path("reload-stop");
    let child = spawn_child("reload-stop", &[("NOTIFY_SOCKET", sock.name.as_str())]);
    sock.wait_for("READY=1");
    child.signal("HUP");
    sock.wait_for("X_TEST_HOOK=began");
    child.signal("TERM");
    sock.wait_for("STATUS=stopped");
    let (status, stderr) = child.finish();
    sock.print("reload-stop");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let events = sock.events();
    let stopping = events.iter().position(|l| *l == "STOPPING=1").unwrap();
    assert!(
        !events[stopping..].contains(&"READY=1"),
        "READY=1 after STOPPING=1: {events:?}\n{stderr}"
    );
    assert!(
        !events[stopping..]
            .iter()
            .any(|l| l.starts_with("STATUS=running")),
        "{events:?}"
    );
}

/// `NOTIFY_SOCKET` naming a path where no socket listens: the host starts, runs and stops
/// (it stops itself) normally: a notification that cannot be sent is logged, never fatal.
#[test]
fn a_notify_socket_that_does_not_exist_is_not_fatal() {
    let path = std::env::temp_dir().join(format!("th-sd-{}-missing.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let child = spawn_child("oneshot", &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let (status, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Application stopped"), "{stderr}");
}

/// A `NOTIFY_SOCKET` path too long for a socket address: a configuration error naming the
/// variable.
#[test]
fn a_notify_socket_too_long_is_a_config_error() {
    let long = format!("/tmp/{}", "x".repeat(200));
    let (status, stderr) = spawn_child("normal", &[("NOTIFY_SOCKET", long.as_str())]).finish();
    assert_eq!(
        status.code(),
        Some(i32::from(threadhost::EXIT_CONFIG)),
        "{stderr}"
    );
    assert!(stderr.contains("for NOTIFY_SOCKET"), "{stderr}");
}
