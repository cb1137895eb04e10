//! The C API from real C and C++ programs, run by plain `cargo test`.
//!
//! Each `tests/c/*.c` is compiled with `$CC` (default `cc`) as C99 with `-Wall -Wextra
//! -Werror`, linked against the `libthreadhost.so` next to this test executable
//! (`current_exe().parent()`, i.e. `target/<profile>/deps`), and run with
//! `LD_LIBRARY_PATH` set explicitly to that directory: cargo puts `target/<profile>` first on
//! the test's library path, where a stale copy from an earlier `cargo build` would otherwise
//! win. Each C program prints `name: ok|FAILED` lines and exits 1 on failure.
//!
//! `cargo test` does not build a library that is only a cdylib and a staticlib for the
//! integration tests (it builds it only when it can link it, as an rlib), so the first use of
//! `deps_dir()` runs `cargo build` of this package with this test's own profile and Cargo
//! features, into the same target directory: the library tested is always this build's, never
//! one left there by a build with other features (cargo rebuilds it when the features differ).
//!
//! With `VALGRIND=1` in the environment, each C test binary runs under
//! `valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite`.
//!
//! Also here: `tests/c/log.c ops <scenario>` run as a process and signalled (`mod ops`: the
//! log lines of SIGTERM, a forced exit, SIGHUP and the systemd watchdog reach a C callback),
//! the C++ header check, the C worker example (built and run for a second, and
//! stopped by SIGINT), a C test linked statically against `libthreadhost.a`, the fuzz driver
//! (compiled only; see tests/fuzz/fuzz_calls.c for the command), and the source checks:
//! header/exports parity, status-code parity, version macros, and the boundary macro on every
//! exported function.

// The Rust side of the parity scenarios uses the library's shared test helpers.
#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where the freshly built `libthreadhost.so` / `.a` are: next to this test executable, after
/// `build_library` (once per test process).
fn deps_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("deps dir").to_path_buf();
            build_library(&deps);
            deps
        })
        .clone()
}

/// `cargo build --lib -p threadhost-capi` with this test's profile, target and features, into
/// the target directory `deps` is in (`<target>/[<triple>/]<profile>/deps`).
fn build_library(deps: &Path) {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir");
    let below: Vec<String> = deps
        .strip_prefix(target_dir)
        .expect("deps dir inside the target dir")
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--lib", "-p", "threadhost-capi", "--target-dir"])
        .arg(target_dir);
    match below.as_slice() {
        [triple, profile, _deps] => {
            cmd.args(["--target", triple]);
            cmd.args(["--profile", profile_name(profile)]);
        }
        [profile, _deps] => {
            cmd.args(["--profile", profile_name(profile)]);
        }
        other => panic!("unexpected deps dir layout {other:?}"),
    }
    let features: Vec<&str> = [
        ("termination", cfg!(feature = "termination")),
        ("systemd", cfg!(feature = "systemd")),
        ("env", cfg!(feature = "env")),
        ("queue", cfg!(feature = "queue")),
        ("periodic", cfg!(feature = "periodic")),
        ("http", cfg!(feature = "http")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    cmd.arg("--no-default-features");
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let output = cmd.current_dir(root()).output().expect("run cargo build");
    assert!(
        output.status.success(),
        "building libthreadhost failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The profile whose output directory is `dir` (`debug` is the `dev` profile's).
fn profile_name(dir: &str) -> &str {
    if dir == "debug" { "dev" } else { dir }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory for the compiled programs.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_api");
    std::fs::create_dir_all(&dir).expect("create out dir");
    dir
}

fn compiler(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Compiles `source` into `out_dir()/name` and returns the binary's path. `link` is the
/// linker tail (the library and system libraries).
fn compile(cc: &str, std: &str, source: &Path, name: &str, link: &[String]) -> PathBuf {
    let bin = out_dir().join(name);
    let output = Command::new(cc)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(&bin)
        .args(link)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cc}`: {e}"));
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    bin
}

/// Links against the shared library in `deps_dir()`.
fn shared_link() -> Vec<String> {
    vec![
        format!("-L{}", deps_dir().display()),
        "-lthreadhost".to_owned(),
        "-lpthread".to_owned(),
    ]
}

/// A command for `bin` that finds the fresh shared library first.
fn command(bin: &Path, valgrind: bool) -> Command {
    let mut cmd = if valgrind && std::env::var_os("VALGRIND").is_some_and(|v| v != "0") {
        let mut c = Command::new("valgrind");
        c.args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ]);
        c.arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let deps = deps_dir();
    cmd.env("LD_LIBRARY_PATH", &deps);
    cmd.env("DYLD_LIBRARY_PATH", &deps);
    cmd
}

/// Asserts a C test program passed: exit 0, at least one `: ok` line, no `FAILED`.
#[allow(clippy::print_stderr)] // the valgrind summary is for the person running the tests
fn assert_passed(what: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let oks = stdout.lines().filter(|l| l.ends_with(": ok")).count();
    assert!(
        output.status.success() && oks > 0 && !stdout.contains("FAILED"),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    if std::env::var_os("VALGRIND").is_some() {
        // Show valgrind's summary in `cargo test -- --nocapture`.
        for line in stderr.lines().filter(|l| {
            l.contains("ERROR SUMMARY")
                || l.contains("definitely lost")
                || l.contains("in use at exit")
        }) {
            eprintln!("{what}: {line}");
        }
    }
}

fn c_sources(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("read tests/c")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    files.sort();
    files
}

fn run_c_test(stem: &str) -> Output {
    let source = root().join("tests/c").join(format!("{stem}.c"));
    let bin = compile(&compiler("CC", "cc"), "c99", &source, stem, &shared_link());
    let output = command(&bin, true).output().expect("run C test");
    assert_passed(stem, &output);
    output
}

#[test]
fn smoke() {
    run_c_test("token");
}

#[test]
fn c_host() {
    run_c_test("host");
}

#[test]
fn c_bad_input() {
    run_c_test("bad_input");
}

#[test]
fn c_periodic() {
    run_c_test("periodic");
}

#[test]
fn c_queue() {
    run_c_test("queue");
}

/// The supervision tree: groups, strategies, restart types, runtime changes by path.
#[test]
fn c_tree() {
    run_c_test("tree");
}

/// The library's log records in C: tests/c/log.c's callback tests, then the same program as
/// `log stderr` (`threadhost_log_init_stderr`), whose stderr is read here: with `RUST_LOG`
/// unset the info lines are there, one line each with the service's key-value; with
/// `RUST_LOG=error` the info lines are filtered out and the error line stays.
#[test]
fn c_log() {
    run_c_test("log");
    let bin = out_dir().join("log");
    for rust_log in [None, Some("error")] {
        let mut cmd = command(&bin, true);
        cmd.arg("stderr");
        match rust_log {
            None => cmd.env_remove("RUST_LOG"),
            Some(filter) => cmd.env("RUST_LOG", filter),
        };
        let output = cmd.output().expect("run log stderr");
        assert_passed("log stderr", &output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let failed = stderr
            .lines()
            .find(|l| l.contains("service `plc` failed"))
            .unwrap_or_else(|| panic!("RUST_LOG={rust_log:?}: no failure line in:\n{stderr}"));
        assert!(
            failed.starts_with("[ERROR threadhost::host")
                && failed.contains("disk full\\nFAKE: forged line\\u{1b}[2J; ignored")
                && failed.ends_with(" service=plc"),
            "RUST_LOG={rust_log:?}: {failed}"
        );
        assert!(
            !stderr.lines().any(|l| l.starts_with("FAKE")) && !stderr.contains('\u{1b}'),
            "a forged line or a raw escape reached stderr:\n{stderr}"
        );
        let started = stderr.contains("] Application started.");
        assert_eq!(
            started,
            rust_log.is_none(),
            "RUST_LOG={rust_log:?}:\n{stderr}"
        );
    }
}

/// The operational lines a C program's log callback gets from a real process under the console
/// lifetime, signalled from here (the console lifetime needs the `termination` feature).
#[cfg(feature = "termination")]
mod ops {
    use super::{BufRead, BufReader, Command, Duration, Stdio, common, mpsc};
    use super::{command, compile, compiler, root, shared_link};

    /// A run of `tests/c/log.c ops <scenario>`: a C program under the console lifetime whose log
    /// callback writes each record to stdout as `LOG <level> <target>: <message>` with write(2)
    /// before it returns (so a line seen here is a callback call that happened, also before a
    /// forced exit), and its own steps as `OPS <what>`. Its stdout is read line by line as it
    /// comes; every wait is bounded by [`OPS_PATIENCE`].
    struct Ops {
        child: std::process::Child,
        lines: mpsc::Receiver<String>,
        seen: Vec<String>,
        stdout: Option<std::thread::JoinHandle<()>>,
        stderr: Option<std::thread::JoinHandle<String>>,
    }

    /// Generous bound for anything the C program must do (a loaded 2-core machine, valgrind).
    const OPS_PATIENCE: Duration = Duration::from_secs(60);

    impl Ops {
        /// Compiles tests/c/log.c as `log_ops_<scenario>` (one binary per test: they run in
        /// parallel) and starts it with `env` added (no systemd variables otherwise).
        fn spawn(scenario: &str, env: &[(&str, &str)]) -> Ops {
            let name = format!("log_ops_{scenario}");
            let bin = compile(
                &compiler("CC", "cc"),
                "c99",
                &root().join("tests/c/log.c"),
                &name,
                &shared_link(),
            );
            let mut cmd = command(&bin, true);
            cmd.args(["ops", scenario])
                .env_remove("NOTIFY_SOCKET")
                .env_remove("WATCHDOG_USEC")
                .env_remove("WATCHDOG_PID")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn tests/c/log.c ops");
            let out = child.stdout.take().expect("stdout");
            let (tx, lines) = mpsc::channel();
            let stdout = common::spawn("ops-stdout", move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let mut err = child.stderr.take().expect("stderr");
            let stderr = common::spawn("ops-stderr", move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut err, &mut s);
                s
            });
            Ops {
                child,
                lines,
                seen: Vec::new(),
                stdout: Some(stdout),
                stderr: Some(stderr),
            }
        }

        /// Waits for a line containing `needle` (one seen before included) and returns it.
        fn wait_for(&mut self, needle: &str) -> String {
            let deadline = std::time::Instant::now() + OPS_PATIENCE;
            let mut from = 0;
            loop {
                if let Some(line) = self.seen[from..].iter().find(|l| l.contains(needle)) {
                    return line.clone();
                }
                from = self.seen.len();
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) => self.seen.push(line),
                    Err(_) => panic!(
                        "no line with `{needle}` within {OPS_PATIENCE:?} (or stdout closed); \
                         stdout so far:\n{}",
                        self.seen.join("\n")
                    ),
                }
            }
        }

        fn signal(&self, sig: &str) {
            common::kill(self.child.id(), sig);
        }

        /// Whether the program has not exited.
        fn is_running(&mut self) -> bool {
            self.child.try_wait().expect("try_wait").is_none()
        }

        /// [`finish`](Self::finish), asserting the exit code is `code` (the lines and stderr
        /// shown if not); returns the lines.
        fn finish_with(self, code: i32) -> Vec<String> {
            let (status, lines, stderr) = self.finish();
            assert_eq!(
                status.code(),
                Some(code),
                "{status}\n{}\n{stderr}",
                lines.join("\n")
            );
            lines
        }

        /// Waits for the exit (SIGKILL after [`OPS_PATIENCE`]); returns its status, every stdout
        /// line, and stderr.
        fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
            let pid = self.child.id();
            let mut child = self.child;
            let (tx, rx) = mpsc::channel();
            let waiter = common::spawn("ops-wait", move || {
                let status = child.wait();
                let _ = tx.send(());
                status
            });
            if rx.recv_timeout(OPS_PATIENCE).is_err() {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", &pid.to_string()])
                    .status();
            }
            let status = waiter.join().unwrap().expect("wait for the C program");
            self.stdout.take().unwrap().join().unwrap();
            self.seen.extend(self.lines.try_iter());
            let stderr = self.stderr.take().unwrap().join().unwrap();
            (status, self.seen, stderr)
        }
    }

    /// The index of the first line containing `needle`, or a panic showing them all.
    fn line_index(lines: &[String], needle: &str) -> usize {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{}", lines.join("\n")))
    }

    /// Asserts the needles are on lines in this order (each on a later line than the one before).
    fn assert_lines_in_order(lines: &[String], needles: &[&str]) {
        let at: Vec<usize> = needles.iter().map(|n| line_index(lines, n)).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{needles:?} at lines {at:?}, not in order:\n{}",
            lines.join("\n")
        );
    }

    /// A C program's callback gets the console lifetime's lines: SIGTERM to a running
    /// `threadhost_host_run` gives `Received SIGTERM: stopping gracefully`, the shutting-down and
    /// stopped lines, in order, and exit code 0.
    #[test]
    fn c_log_sigterm_lines() {
        let mut ops = Ops::spawn("term", &[]);
        ops.wait_for("LOG 3 threadhost::host: Application started. Press Ctrl+C to shut down.");
        ops.signal("TERM");
        let lines = ops.finish_with(0);
        assert_lines_in_order(
            &lines,
            &[
                "Application started.",
                "LOG 3 threadhost::lifetime::console: Received SIGTERM: stopping gracefully",
                "LOG 3 threadhost::host::control: Application is shutting down... (SIGTERM)",
                "LOG 3 threadhost::host::stop: Application stopped",
                "OPS run returned THREADHOST_OK",
            ],
        );
    }

    /// The forced exit: a stop hook hangs, a second SIGTERM exits with 143, and the callback was
    /// called with the `Second termination signal (SIGTERM) while stopping` line before the
    /// process ended (its write(2) is on the pipe; `threadhost_host_run` never returned).
    #[test]
    fn c_log_forced_exit_line_precedes_the_exit() {
        let mut ops = Ops::spawn("forced", &[]);
        ops.wait_for("Application started.");
        ops.signal("TERM");
        ops.wait_for("Application is shutting down... (SIGTERM)");
        ops.wait_for("OPS stop hook: hanging");
        ops.signal("TERM");
        let lines = ops.finish_with(143);
        let forced = &lines[line_index(&lines, "Second termination signal")];
        assert_eq!(
            forced,
            "LOG 2 threadhost::lifetime::console: Second termination signal (SIGTERM) while \
             stopping: exiting at once (code 143); stop hooks still running are abandoned"
        );
        assert_lines_in_order(
            &lines,
            &[
                "Received SIGTERM: stopping gracefully",
                "OPS stop hook: hanging",
                "Second termination signal",
            ],
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("run returned") || l.contains("Application stopped")),
            "the host stopped instead of the process exiting:\n{}",
            lines.join("\n")
        );
    }

    /// SIGHUP to a C program with a reload hook: the callback gets the reload lines around the
    /// hook's call, the program keeps running, and SIGTERM then ends it with 0.
    #[test]
    fn c_log_sighup_reload_lines() {
        let mut ops = Ops::spawn("reload", &[]);
        ops.wait_for("Application started.");
        ops.signal("HUP");
        ops.wait_for("Reloaded (");
        assert!(ops.is_running(), "the program exited after SIGHUP");
        ops.signal("TERM");
        let lines = ops.finish_with(0);
        assert_lines_in_order(
            &lines,
            &[
                "LOG 3 threadhost::lifetime::console: Received SIGHUP: reloading",
                "LOG 3 threadhost::host::reload: Reloading...",
                "OPS reload hook: called",
                "LOG 3 threadhost::host::reload: Reloaded (1 service(s))",
                "Received SIGTERM: stopping gracefully",
                "OPS run returned THREADHOST_OK",
            ],
        );
    }

    /// `threadhost_builder_systemd` with `NOTIFY_SOCKET` (a datagram socket bound here) and
    /// `WATCHDOG_USEC`: a critical service that stops beating gives the callback the watchdog's
    /// error with the `services=` key-value, and once it beats again (it waits for that line in
    /// its own callback) the live-again line; SIGTERM ends it with 0. The socket got `READY=1`,
    /// pings, and the withheld status.
    #[test]
    #[cfg(feature = "systemd")]
    fn c_log_watchdog_lines() {
        // In the temporary directory: a socket path has at most 107 bytes.
        let path = std::env::temp_dir().join(format!("th-capi-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
        // Removes the socket's file however the test ends.
        struct Unlink<'a>(&'a std::path::Path);
        impl Drop for Unlink<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(self.0);
            }
        }
        let _unlink = Unlink(&path);
        let name = path.to_str().expect("a UTF-8 path").to_owned();
        // Read as the datagrams come (the kernel queues only `net.unix.max_dgram_qlen` of
        // them, 10 by default, and the sender drops the rest), until the test's own `END`.
        let reader = common::spawn("notify-socket", move || {
            let mut received = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text == END {
                    break;
                }
                received.extend(text.lines().map(str::to_owned));
            }
            received
        });
        const END: &str = "END (from the test)";
        let mut ops = Ops::spawn(
            "watchdog",
            &[
                ("NOTIFY_SOCKET", name.as_str()),
                ("WATCHDOG_USEC", "200000"),
            ],
        );
        ops.wait_for("Application started.");
        ops.wait_for("OPS critical: stops beating");
        let withheld = ops.wait_for("systemd watchdog: not pinging");
        ops.wait_for("every critical service is live again");
        ops.signal("TERM");
        let lines = ops.finish_with(0);
        assert!(
            withheld.starts_with(
                "LOG 1 threadhost::lifetime::systemd: systemd watchdog: not pinging, \
                 critical service(s) not live: `critical` (running)"
            ) && withheld.ends_with(" services=`critical` (running)"),
            "{withheld}"
        );
        assert_lines_in_order(
            &lines,
            &[
                "OPS critical: stops beating",
                "systemd watchdog: not pinging",
                "OPS critical: beats again",
                "LOG 3 threadhost::lifetime::systemd: systemd watchdog: every critical service is live again",
            ],
        );
        std::os::unix::net::UnixDatagram::unbound()
            .and_then(|end| end.send_to(END.as_bytes(), &path))
            .expect("end the socket's reader");
        let received = reader.join().unwrap();
        for expected in [
            "READY=1",
            "WATCHDOG=1",
            "STOPPING=1",
            "STATUS=watchdog withheld: not live: `critical` (running)",
        ] {
            assert!(
                received.iter().any(|l| l == expected),
                "no `{expected}` on NOTIFY_SOCKET: {received:?}"
            );
        }
    }
}

/// `threadhost_builder_http_endpoint`, in the build this test was compiled for: the C
/// program reports the feature it saw, which must be this test's (`cargo test -p
/// threadhost-capi --features http` for the endpoint; plain `cargo test` for the stub).
#[test]
fn c_http() {
    let output = run_c_test("http");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = if cfg!(feature = "http") {
        "http feature: on"
    } else {
        "http feature: off"
    };
    assert!(stdout.contains(expected), "{stdout}");
    // threadhost_host_http_addr: the bound address, or the stub's status.
    assert!(stdout.contains("the_bound_address: ok"), "{stdout}");
}

/// `threadhost_host_stop` / `_join` called on one of the host's own threads.
#[test]
fn c_self_stop() {
    run_c_test("self_stop");
}

/// Reload hooks, `threadhost_host_reload` / `_request_reload`, and a real SIGHUP under the
/// console lifetime.
#[test]
fn c_reload() {
    run_c_test("reload");
}

/// One mapping of outcomes to exit codes across the ABI: every scenario of tests/c/parity.c
/// (run through `threadhost_host_run` and `threadhost_exit_code`) gives the exit code that
/// `threadhost::exit_code` gives for the same scenario run with Rust's `Host::run`.
#[test]
fn c_parity() {
    let output = run_c_test("parity");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let c: BTreeMap<String, (String, u8)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("parity: "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let scenario = parts.next().unwrap().to_owned();
            let status = parts
                .next()
                .unwrap()
                .strip_prefix("status=")
                .unwrap()
                .to_owned();
            let exit = parts
                .next()
                .unwrap()
                .strip_prefix("exit=")
                .unwrap()
                .parse()
                .unwrap();
            (scenario, (status, exit))
        })
        .collect();
    let rust = parity::rust_outcomes();
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        rust.keys().collect::<Vec<_>>(),
        "the C and Rust scenarios differ"
    );
    for (scenario, (rust_result, rust_exit)) in &rust {
        let (status, c_exit) = &c[scenario];
        assert_eq!(
            c_exit, rust_exit,
            "{scenario}: C {status} exits {c_exit}, Rust {rust_result} exits {rust_exit}"
        );
    }
}

/// The Rust side of `c_parity`: the scenarios of tests/c/parity.c with `Host::run`.
mod parity {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::common::{Action, Events, Gate, Probe, Rec, ms, spawn};
    use threadhost::{Backoff, Error, HostBuilder, Policy, Service, ServiceState, StopReport};

    /// What `run` returned (for messages) and its exit code, per scenario.
    pub(super) fn rust_outcomes() -> BTreeMap<String, (String, u8)> {
        let mut out = BTreeMap::new();
        let mut record = |name: &str, result: Result<StopReport, Error>| {
            let shown = match &result {
                Ok(_) => "Ok".to_owned(),
                Err(e) => format!("Err({e})"),
            };
            out.insert(name.to_owned(), (shown, threadhost::exit_code(&result)));
        };
        record(
            "clean",
            HostBuilder::new()
                .background("one-shot", |ctx| {
                    ctx.host().request_stop();
                    Ok(())
                })
                .build()
                .and_then(threadhost::Host::run),
        );
        record(
            "failure_stop_host",
            HostBuilder::new()
                .background("bad", |_| Err("disk full".into()))
                .build()
                .and_then(threadhost::Host::run),
        );
        record("failure_ignore", failure_ignore());
        record(
            "restart_intensity_exceeded",
            HostBuilder::new()
                .add_service(
                    Service::background("flaky", |_| Err("disk full".into())).on_failure(
                        Policy::Restart {
                            backoff: Backoff::fixed(ms(1)),
                            max_restarts: 2,
                            within: Duration::from_secs(60),
                        },
                    ),
                )
                .build()
                .and_then(threadhost::Host::run),
        );
        let events = Events::new();
        record(
            "start_failed",
            HostBuilder::new()
                .hosted("db", Rec::new("db", &events).on("start", Action::Fail))
                .build()
                .and_then(threadhost::Host::run),
        );
        let gate = Gate::new();
        let opener = gate.opener();
        record(
            "start_timeout",
            HostBuilder::new()
                .startup_timeout(ms(100))
                .shutdown_timeout(ms(200))
                .hosted(
                    "slow",
                    Rec::new("slow", &events).on("start", Action::Block(gate)),
                )
                .build()
                .and_then(threadhost::Host::run),
        );
        drop(opener);
        record("stop_overrun", stop_overrun(&events));
        record(
            "config_error",
            HostBuilder::new()
                .background("twin", |_| Ok(()))
                .background("twin", |_| Ok(()))
                .build()
                .and_then(threadhost::Host::run),
        );
        out
    }

    fn failure_ignore() -> Result<StopReport, Error> {
        let host = HostBuilder::new()
            .on_failure(Policy::Ignore)
            .background("bad", |_| Err("disk full".into()))
            .background("good", |ctx| {
                ctx.token().wait();
                Ok(())
            })
            .build()?;
        let handle = host.handle();
        let stopper = spawn("stop-once-failed", move || {
            super::common::eventually("`bad` failed", || {
                handle.snapshot().service("bad").map(|s| s.state) == Some(ServiceState::Failed)
            });
            handle.request_stop();
        });
        let result = host.run();
        stopper.join().unwrap();
        result
    }

    fn stop_overrun(events: &Events) -> Result<StopReport, Error> {
        let gate = Gate::new();
        let _opener = gate.opener();
        let running = Probe::new();
        let host = HostBuilder::new()
            .shutdown_timeout(ms(100))
            .background_service(
                "stuck",
                Rec::new("stuck", events)
                    .on("run", Action::Signal(running.clone()))
                    .on("run", Action::Block(gate.clone())),
            )
            .build()?;
        let handle = host.handle();
        let stopper = spawn("stop-once-running", move || {
            running.expect("the stuck body runs");
            handle.request_stop();
        });
        let result = host.run();
        stopper.join().unwrap();
        result
    }
}

/// Every `tests/c/*.c` has its `#[test]` above (a new file cannot be silently skipped).
#[test]
fn every_c_test_file_is_run() {
    let this = std::fs::read_to_string(root().join("tests/c_api.rs")).expect("read c_api.rs");
    for source in c_sources("tests/c") {
        let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            this.contains(&format!("run_c_test(\"{stem}\")")),
            "tests/c/{stem}.c has no `run_c_test(\"{stem}\")` in tests/c_api.rs"
        );
    }
}

#[test]
fn cpp_header_compiles_and_runs() {
    let source = root().join("tests/cpp/header.cpp");
    let bin = compile(
        &compiler("CXX", "c++"),
        "c++11",
        &source,
        "header_cpp",
        &shared_link(),
    );
    let output = command(&bin, true).output().expect("run C++ test");
    assert_passed("tests/cpp/header.cpp", &output);
}

/// The C test linked statically: `cc … tests/c/token.c <deps>/libthreadhost.a -lpthread -ldl
/// -lm`, run with an empty library path, so it cannot be using the shared library.
#[test]
fn c_static_link() {
    let source = root().join("tests/c/token.c");
    let link = vec![
        deps_dir().join("libthreadhost.a").display().to_string(),
        "-lpthread".to_owned(),
        "-ldl".to_owned(),
        "-lm".to_owned(),
    ];
    let bin = compile(&compiler("CC", "cc"), "c99", &source, "token_static", &link);
    let output = Command::new(&bin)
        .env("LD_LIBRARY_PATH", "")
        .env("DYLD_LIBRARY_PATH", "")
        .output()
        .expect("run statically linked C test");
    assert_passed("token.c (static)", &output);
}

/// Ignoring a status the caller must look at is a compiler warning (`THREADHOST_MUST_USE`),
/// and `THREADHOST_NO_MUST_USE` turns it off.
#[test]
fn ignoring_a_status_warns() {
    let source = out_dir().join("ignores_status.c");
    std::fs::write(
        &source,
        "#include \"threadhost.h\"\n\
         void f(const threadhost_host *host) { threadhost_host_start(host, 10); }\n",
    )
    .unwrap();
    let compile = |extra: &[&str]| {
        Command::new(compiler("CC", "cc"))
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-c",
                "-o",
                "/dev/null",
            ])
            .args(extra)
            .arg("-I")
            .arg(root().join("include"))
            .arg(&source)
            .output()
            .expect("run the C compiler")
    };
    let warned = compile(&[]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        !warned.status.success(),
        "an ignored status compiled cleanly"
    );
    assert!(stderr.contains("threadhost_host_start"), "{stderr}");
    let quiet = compile(&["-DTHREADHOST_NO_MUST_USE"]);
    assert!(
        quiet.status.success(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}

/// The fuzz driver builds (it is run by hand; see its header comment).
#[test]
fn fuzz_driver_compiles() {
    for source in c_sources("tests/fuzz") {
        let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
        compile(&compiler("CC", "cc"), "c99", &source, &stem, &shared_link());
    }
}

/// Builds examples/c/worker.c as `name` (one name per test: tests run in parallel).
fn worker_example(name: &str) -> PathBuf {
    compile(
        &compiler("CC", "cc"),
        "c99",
        &root().join("examples/c/worker.c"),
        name,
        &shared_link(),
    )
}

#[test]
fn c_worker_example_runs_for_one_second() {
    let bin = worker_example("worker_run_for");
    let output = command(&bin, true)
        .args(["--run-for", "1"])
        .output()
        .expect("run examples/c/worker.c");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "worker.c exited with {}:\n{stderr}",
        output.status
    );
    for expected in [
        "worker: round 1",
        "requesting a stop",
        "heartbeat: stopping",
        "graceful stop",
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in:\n{stderr}");
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // plain threads to read the child's output and await it
fn c_worker_example_stops_on_sigint() {
    let bin = worker_example("worker_sigint");
    let mut child = command(&bin, false)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn examples/c/worker.c");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Wait for the host to be running (the first worker round), then send SIGINT.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("worker.c never reported its first round");
        if line.contains("worker: round 1") {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = done_tx.send(());
        status
    });
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("worker.c did not exit within 30 s of SIGINT");
    let status = waiter.join().unwrap().expect("wait");
    let log = reader.join().unwrap();
    assert!(status.success(), "worker.c exited with {status}:\n{log}");
    assert!(log.contains("graceful stop"), "{log}");
}

/// The README's complete program is `examples/c/hello.c`, and it builds and runs.
#[test]
fn c_hello_example_from_readme() {
    let hello = std::fs::read_to_string(root().join("examples/c/hello.c")).expect("hello.c");
    let readme =
        std::fs::read_to_string(root().join("../README.md")).expect("the repository's README.md");
    let section = readme
        .split("## Using threadhost from C")
        .nth(1)
        .expect("README section `Using threadhost from C`");
    let block = section
        .split("```c\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```c block");
    assert_eq!(
        block, hello,
        "README's C program differs from examples/c/hello.c"
    );
    let bin = compile(
        &compiler("CC", "cc"),
        "c99",
        &root().join("examples/c/hello.c"),
        "hello_c",
        &shared_link(),
    );
    let output = command(&bin, true).output().expect("run hello.c");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "hello.c: {}", output.status);
    assert_eq!(stdout, "tick 1\ntick 2\ntick 3\n");
}

/// `capi/install.sh` (the install steps of the README for machines without cargo-c) puts the
/// freshly built library, the header and a generated `threadhost.pc` into a scratch prefix;
/// pkg-config's flags from that `.pc` build `examples/c/hello.c`, which runs against the
/// installed library. pkg-config is part of the machine image this project builds on.
#[test]
fn install_script_gives_a_working_pkg_config_file() {
    let prefix = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let lib = prefix.join("lib");
    let install = Command::new("sh")
        .arg(root().join("install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(deps_dir())
        .output()
        .expect("run capi/install.sh");
    assert!(
        install.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    for file in [
        lib.join("libthreadhost.so"),
        lib.join("libthreadhost.a"),
        lib.join("pkgconfig/threadhost.pc"),
        prefix.join("include/threadhost.h"),
    ] {
        assert!(file.is_file(), "{} not installed", file.display());
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "threadhost"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .output()
        .expect("pkg-config (Debian package pkg-config) is needed by this test");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags: Vec<String> = String::from_utf8_lossy(&flags.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let version = Command::new("pkg-config")
        .args(["--modversion", "threadhost"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .output()
        .expect("pkg-config");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
    let bin = out_dir().join("hello_pc");
    let status = Command::new(compiler("CC", "cc"))
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror"])
        .arg(root().join("examples/c/hello.c"))
        .args(&flags)
        .arg("-o")
        .arg(&bin)
        .status()
        .expect("cc");
    assert!(status.success());
    let output = Command::new(&bin)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("run hello_pc");
    assert!(output.status.success());
}

// ---- source checks ------------------------------------------------------------------------

/// `src/*.rs` of this crate concatenated with file names, in a stable order.
fn ffi_sources() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("src"))
        .expect("read capi/src")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read ffi source");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// One exported function: its name, everything from the export attribute to the body's
/// opening brace, and the body's first characters.
struct Export {
    file: String,
    name: String,
    docs: String,
    signature: String,
    body_start: String,
}

fn exports() -> Vec<Export> {
    let mut out = Vec::new();
    for (file, text) in ffi_sources() {
        // Attribute lines only (the module docs mention the attribute in prose too).
        let mut starts = Vec::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line.trim() == "#[unsafe(no_mangle)]" {
                starts.push(offset);
            }
            offset += line.len();
        }
        for at in starts {
            let docs: Vec<&str> = text[..at]
                .lines()
                .rev()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| l.starts_with("///"))
                .collect();
            let docs = docs.into_iter().rev().collect::<Vec<_>>().join("\n");
            let rest = &text[at..];
            let fn_at = rest.find("fn ").expect("fn after no_mangle");
            let name: String = rest[fn_at + 3..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let brace = rest.find('{').expect("body");
            let signature = rest[..brace].to_owned();
            let body_start: String = rest[brace + 1..].trim_start().chars().take(40).collect();
            out.push(Export {
                file: file.clone(),
                name,
                docs,
                signature,
                body_start,
            });
        }
    }
    out
}

/// Removes `/* … */` and `// …` comments.
fn strip_c_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                let end = rest[b..].find("*/").expect("unterminated comment");
                rest = &rest[b + end + 2..];
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |n| &rest[l + n..]);
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

fn header() -> String {
    std::fs::read_to_string(root().join("include/threadhost.h")).expect("read threadhost.h")
}

/// The test-only declarations (`tests/c/internal.h`): exported, but not public.
fn internal_header() -> String {
    std::fs::read_to_string(root().join("tests/c/internal.h")).expect("read internal.h")
}

/// Function names the public header and the tests' internal header declare: `threadhost_x(`
/// outside comments.
fn header_functions() -> BTreeSet<String> {
    let code = strip_c_comments(&(header() + &internal_header()));
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("threadhost_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest[at + name.len()..].trim_start();
        let before = rest[..at].trim_end();
        // Not a function-pointer typedef `(*threadhost_x_fn)(` nor a return type
        // `threadhost_status (*…`.
        if after.starts_with('(') && !after.starts_with("(*") && !before.ends_with("(*") {
            names.insert(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    names
}

#[test]
fn header_matches_exports() {
    let exported: BTreeSet<String> = exports().into_iter().map(|e| e.name).collect();
    let declared = header_functions();
    let missing: Vec<_> = exported.difference(&declared).collect();
    let extra: Vec<_> = declared.difference(&exported).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "exported but not in threadhost.h: {missing:?}; in threadhost.h but not exported: {extra:?}"
    );
    assert!(exported.len() > 40, "only {} exports found", exported.len());
}

/// Every prototype in the header is preceded by its comment (ownership, lifetime, threads).
#[test]
fn header_documents_every_function() {
    let header = header();
    let lines: Vec<&str> = header.lines().collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let is_prototype = !line.starts_with(' ')
            && !line.starts_with("typedef")
            && !line.starts_with('#')
            && !line.starts_with("/*")
            && line.contains("threadhost_")
            && line.contains('(');
        if is_prototype && i > 0 && !lines[i - 1].trim_end().ends_with("*/") {
            undocumented.push(*line);
        }
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
}

#[test]
fn header_status_codes_match_rust() {
    let mut rust = BTreeSet::new();
    for (_, text) in ffi_sources() {
        for line in text.lines() {
            // `pub(crate) const NAME: Status = Status(n);`
            if let Some(rest) = line.trim().strip_prefix("pub(crate) const ") {
                if let Some((name, value)) = rest.split_once(": Status = Status(") {
                    let value = value.trim_end_matches(");");
                    rust.insert((format!("THREADHOST_{name}"), value.to_owned()));
                }
            }
        }
    }
    let mut c = BTreeSet::new();
    let header = header();
    let codes = header
        .split("typedef int32_t threadhost_status;")
        .nth(1)
        .expect("threadhost_status typedef")
        .split("threadhost_status_name")
        .next()
        .unwrap();
    for line in codes.lines() {
        if let Some(rest) = line.strip_prefix("#define ") {
            let mut parts = rest.split_whitespace();
            c.insert((
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(
        rust, c,
        "status codes differ between capi/src and threadhost.h"
    );
    assert!(c.contains(&("THREADHOST_OK".to_owned(), "0".to_owned())));
}

#[test]
fn header_version_matches_cargo_version() {
    let header = header();
    let macro_value = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        header
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in threadhost.h"))
            .trim()
            .to_owned()
    };
    let version = format!(
        "{}.{}.{}",
        macro_value("THREADHOST_VERSION_MAJOR"),
        macro_value("THREADHOST_VERSION_MINOR"),
        macro_value("THREADHOST_VERSION_PATCH")
    );
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

/// rustls-ffi#27: every exported function's body is one `ffi_boundary!`, and every export
/// that takes a raw pointer is an `unsafe fn` (so `# Safety` docs apply).
#[test]
fn every_export_is_wrapped_in_ffi_boundary() {
    let exports = exports();
    assert!(!exports.is_empty());
    for e in &exports {
        assert!(
            e.body_start.starts_with("ffi_boundary!"),
            "{}: `{}` does not start its body with ffi_boundary! (starts with `{}`)",
            e.file,
            e.name,
            e.body_start
        );
        assert!(
            e.signature.contains("pub ") && e.signature.contains("extern \"C\" fn"),
            "{}: `{}` is not `pub extern \"C\"`",
            e.file,
            e.name
        );
        let params = e.signature.split("fn ").nth(1).unwrap();
        let params = params.split("->").next().unwrap();
        if params.contains("*const") || params.contains("*mut") {
            assert!(
                e.signature.contains("pub unsafe extern \"C\" fn"),
                "{}: `{}` takes a raw pointer but is not `unsafe`",
                e.file,
                e.name
            );
            assert!(
                e.docs.contains("# Safety"),
                "{}: `{}` lacks a `# Safety` section",
                e.file,
                e.name
            );
        }
    }
}
