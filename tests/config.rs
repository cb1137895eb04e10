//! Configuration from the environment: `HostOptions::apply_env_with` (pure parsing, every
//! variable and every kind of bad value), and the real environment in child processes
//! (`HostOptions::from_env`, and the order rule of `HostBuilder::options_from_env`).
//!
//! The environment is process-global, so this process never changes its own: the real-env
//! tests re-run this binary's `child` test with the variables set on the child only.
#![cfg(feature = "env")]
#![allow(clippy::print_stderr)]

mod common;

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{child_env, idle};
use threadhost::{Error, HostBuilder, HostOptions, Policy};

const CHILD_ENV: &str = "TH_CONFIG_CHILD";

/// Options from the default with `vars` as the only environment.
fn with(vars: &[(&str, &str)]) -> Result<HostOptions, Error> {
    let mut options = HostOptions::default();
    options.apply_env_with(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(v))
    })?;
    Ok(options)
}

/// Asserts that `value` for `var` is rejected, naming both.
fn rejected(var: &str, value: &str) {
    match with(&[(var, value)]) {
        Err(Error::InvalidOption {
            name,
            value: v,
            reason,
        }) => {
            assert_eq!(name, var);
            assert_eq!(v, value.trim());
            assert!(!reason.is_empty());
        }
        other => panic!("{var}={value:?}: expected InvalidOption, got {other:?}"),
    }
}

#[test]
fn smoke_no_variables_keeps_the_options() {
    assert_eq!(with(&[]).unwrap(), HostOptions::default());
    let mut custom = HostOptions::default();
    custom.shutdown_timeout = Duration::from_secs(7);
    custom.apply_env_with(|_| None).unwrap();
    assert_eq!(custom.shutdown_timeout, Duration::from_secs(7));
}

#[test]
fn shutdown_timeout_durations() {
    for (text, expected) in [
        ("30s", Duration::from_secs(30)),
        ("500ms", Duration::from_millis(500)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", Duration::from_millis(1500)),
        (" 10s ", Duration::from_secs(10)),
        ("0s", Duration::ZERO),
    ] {
        let options = with(&[("THREADHOST_SHUTDOWN_TIMEOUT", text)]).unwrap();
        assert_eq!(options.shutdown_timeout, expected, "{text:?}");
    }
}

#[test]
fn startup_timeout_duration_or_none() {
    let options = with(&[("THREADHOST_STARTUP_TIMEOUT", "45s")]).unwrap();
    assert_eq!(options.startup_timeout, Some(Duration::from_secs(45)));
    let mut options = options;
    options
        .apply_env_with(|n| (n == "THREADHOST_STARTUP_TIMEOUT").then(|| "none".into()))
        .unwrap();
    assert_eq!(options.startup_timeout, None);
}

#[test]
fn concurrency_flags() {
    for (text, expected) in [
        ("true", true),
        ("1", true),
        ("yes", true),
        ("ON", true),
        ("false", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        let options = with(&[
            ("THREADHOST_START_CONCURRENTLY", text),
            ("THREADHOST_STOP_CONCURRENTLY", text),
        ])
        .unwrap();
        assert_eq!(options.start_concurrently, expected, "{text}");
        assert_eq!(options.stop_concurrently, expected, "{text}");
    }
}

#[test]
fn stack_sizes() {
    for (text, expected) in [
        ("262144", 262_144),
        ("256k", 262_144),
        ("256KiB", 262_144),
        ("1m", 1 << 20),
        ("2MiB", 2 << 20),
        // The bounds themselves are accepted.
        ("64k", 64 << 10),
        ("1g", 1 << 30),
        ("1073741824", 1 << 30),
    ] {
        let options = with(&[("THREADHOST_STACK_SIZE", text)]).unwrap();
        assert_eq!(options.stack_size, Some(expected), "{text}");
    }
}

/// Asserts that `build` rejects the builder with `InvalidOption` whose name contains `name`
/// and whose value is `value`.
#[track_caller]
fn build_rejects(builder: HostBuilder, name: &str, value: usize) {
    match builder.build() {
        Err(Error::InvalidOption {
            name: n,
            value: v,
            reason,
        }) => {
            assert!(n.contains(name), "{n} lacks {name}");
            assert_eq!(v, value.to_string());
            assert!(
                reason.contains("65536") || reason.contains("1073741824"),
                "{reason}"
            );
        }
        Err(other) => panic!("{name}={value}: expected InvalidOption, got {other}"),
        Ok(_) => panic!("{name}={value}: expected InvalidOption, got a host"),
    }
}

/// Service and queue names are one line and bounded: a name is in every log line, report and
/// systemd status about its service, and a newline in it would forge lines there.
#[test]
fn names_are_one_line_and_bounded() {
    let long = "n".repeat(257);
    for bad in [
        "",
        "evil\nWATCHDOG=1",
        "cr\r",
        "nul\0",
        "esc\u{1b}[2J",
        "ls\u{2028}",
        &long,
    ] {
        let reason = match HostBuilder::new().background(bad, idle).build() {
            Err(Error::InvalidOption {
                name,
                value,
                reason,
            }) => {
                assert_eq!(name, "name of service #0");
                assert_eq!(value, bad.escape_debug().to_string());
                assert!(!value.contains('\n'), "{value}");
                reason
            }
            Err(other) => panic!("{bad:?}: expected InvalidOption, got {other}"),
            Ok(_) => panic!("{bad:?}: expected InvalidOption, got a host"),
        };
        assert!(reason.contains("name must"), "{reason}");
        #[cfg(feature = "queue")]
        {
            let queue = threadhost::TaskQueue::builder(bad).build_tasks();
            assert!(
                matches!(queue, Err(Error::InvalidOption { ref name, .. }) if name == "name of a queue"),
                "{bad:?}: {:?}",
                queue.err()
            );
        }
    }
    let longest = "n".repeat(256);
    let host = HostBuilder::new()
        .background(&longest, idle)
        .background("ünïcode names are fine", idle)
        .build()
        .expect("a 256-byte name is accepted");
    drop(host);
}

/// A failure's text reaches log lines and reports on one line, whatever the error (or panic)
/// message holds: control characters are escaped.
#[test]
fn failure_texts_are_one_line() {
    let host = HostBuilder::new()
        .on_failure(Policy::Ignore)
        .background("err", |_| Err("peer said: ok\nINFO forged line\r".into()))
        .background("panics", |_| panic!("boom\nforged"))
        .build()
        .unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    let report = host.stop(Duration::from_secs(10));
    let text = report.to_string();
    assert!(!text.contains(['\n', '\r']), "{text:?}");
    assert!(
        text.contains("peer said: ok\\nINFO forged line\\r"),
        "{text}"
    );
    assert!(text.contains("boom\\nforged"), "{text}");
}

/// Text from outside in errors and stop reasons stays on one line: an environment value, a
/// dependency's name, a stop reason's service name.
#[test]
fn outside_text_in_errors_and_reasons_is_one_line() {
    let bad_env = HostOptions::default()
        .apply_env_with(|var| {
            (var == "THREADHOST_SHUTDOWN_TIMEOUT").then(|| OsString::from("5x\nERROR forged line"))
        })
        .unwrap_err();
    let bad_dependency = HostBuilder::new()
        .add_service(threadhost::Service::background("a", idle).depends_on("b\nERROR forged"))
        .build()
        .unwrap_err();
    let reason = threadhost::StopReason::Failure {
        service: "x\nERROR forged line".into(),
    };
    for text in [
        bad_env.to_string(),
        bad_dependency.to_string(),
        reason.to_string(),
    ] {
        assert!(!text.contains(['\n', '\r']), "{text:?}");
        assert!(text.contains("\\nERROR forged"), "{text}");
    }
}

/// Stack sizes are bounded (64 KiB to 1 GiB) by `build`, host-wide and per service, instead of
/// failing at spawn (`usize::MAX`: EINVAL from the OS, far from the line that set it).
#[test]
fn stack_size_bounds_are_checked_by_build() {
    use threadhost::Service;
    for bad in [0, 1, 16 * 1024, 64 * 1024 - 1, (1 << 30) + 1, usize::MAX] {
        build_rejects(
            HostBuilder::new().stack_size(bad).background("a", idle),
            "stack_size",
            bad,
        );
        build_rejects(
            HostBuilder::new().add_service(Service::background("svc", idle).stack_size(bad)),
            "stack_size of service `svc`",
            bad,
        );
    }
    let mut options = HostOptions::default();
    options.stack_size = Some(usize::MAX);
    build_rejects(
        HostBuilder::new().options(options),
        "stack_size",
        usize::MAX,
    );
    // The minimum really runs: threadhost's own code on the service thread (start, body,
    // a failure and a caught panic with their log lines, the stop) fits in 64 KiB. (At 16 KiB
    // and 24 KiB the panicking service overflowed its stack and aborted the process.)
    let _ = env_logger::builder()
        .is_test(true)
        .filter_level(log::LevelFilter::Trace)
        .try_init();
    let host = HostBuilder::new()
        .stack_size(64 * 1024)
        .on_failure(Policy::Ignore)
        .background("min", idle)
        .background("min-fails", |_ctx| Err("fails at once".into()))
        .background("min-panics", |_ctx| panic!("panics at once"))
        .build()
        .unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    let report = host.stop(Duration::from_secs(10));
    assert_eq!(
        report.timed_out(),
        Vec::<std::sync::Arc<str>>::new(),
        "{report}"
    );
}

#[test]
fn failure_policies() {
    let options = with(&[("THREADHOST_FAILURE_POLICY", "ignore")]).unwrap();
    assert!(matches!(options.failure_policy, Policy::Ignore));
    let mut options = options;
    options
        .apply_env_with(|n| (n == "THREADHOST_FAILURE_POLICY").then(|| "stop-host".into()))
        .unwrap();
    assert!(matches!(options.failure_policy, Policy::StopHost));
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    for (var, value) in [
        ("THREADHOST_SHUTDOWN_TIMEOUT", "banana"),
        ("THREADHOST_SHUTDOWN_TIMEOUT", "30"), // no unit
        ("THREADHOST_SHUTDOWN_TIMEOUT", "30 parsecs"),
        ("THREADHOST_SHUTDOWN_TIMEOUT", "-1s"),
        ("THREADHOST_SHUTDOWN_TIMEOUT", "1e999s"),
        ("THREADHOST_STARTUP_TIMEOUT", "soon"),
        ("THREADHOST_START_CONCURRENTLY", "maybe"),
        ("THREADHOST_STOP_CONCURRENTLY", "2"),
        ("THREADHOST_STACK_SIZE", "huge"),
        ("THREADHOST_STACK_SIZE", "1k"), // below the 64 KiB minimum
        ("THREADHOST_STACK_SIZE", "65535"),
        ("THREADHOST_STACK_SIZE", "2g"), // above the 1 GiB maximum
        ("THREADHOST_STACK_SIZE", "18446744073709551615"),
        ("THREADHOST_STACK_SIZE", "99999999999999999999"),
        ("THREADHOST_FAILURE_POLICY", "restart"),
    ] {
        rejected(var, value);
    }
    let err = with(&[("THREADHOST_SHUTDOWN_TIMEOUT", "banana")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid value `banana` for THREADHOST_SHUTDOWN_TIMEOUT"),
        "{err}"
    );
}

#[test]
fn empty_value_counts_as_unset() {
    let options = with(&[
        ("THREADHOST_SHUTDOWN_TIMEOUT", ""),
        ("THREADHOST_STACK_SIZE", " "),
    ])
    .unwrap();
    assert_eq!(options, HostOptions::default());
}

#[cfg(unix)]
#[test]
fn non_utf8_value_is_rejected() {
    use std::os::unix::ffi::OsStringExt;
    let mut options = HostOptions::default();
    let err = options
        .apply_env_with(|n| {
            (n == "THREADHOST_FAILURE_POLICY").then(|| OsString::from_vec(vec![0x66, 0xff]))
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { ref name, .. } if name == "THREADHOST_FAILURE_POLICY")
    );
}

#[test]
fn handle_options_are_the_built_options() {
    let host = HostBuilder::new()
        .shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(
        host.handle().options().shutdown_timeout,
        Duration::from_secs(3)
    );
}

// ---- the real environment, in child processes ----

/// The child process's entry point (a no-op unless `TH_CONFIG_CHILD` is set): prints what
/// the real environment produced.
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let ms = |d: Duration| d.as_millis();
    match mode.as_str() {
        "from_env" => match HostOptions::from_env() {
            Ok(o) => eprintln!(
                "RESULT shutdown={} startup={:?} start_conc={} stop_conc={} stack={:?} policy={:?}",
                ms(o.shutdown_timeout),
                o.startup_timeout.map(ms),
                o.start_concurrently,
                o.stop_concurrently,
                o.stack_size,
                o.failure_policy
            ),
            Err(e) => eprintln!("RESULT error {e}"),
        },
        "order" => {
            let env_last = HostBuilder::new()
                .shutdown_timeout(Duration::from_secs(1))
                .options_from_env()
                .build()
                .unwrap();
            let code_last = HostBuilder::new()
                .options_from_env()
                .shutdown_timeout(Duration::from_secs(1))
                .build()
                .unwrap();
            eprintln!(
                "RESULT env_last={} code_last={}",
                ms(env_last.handle().options().shutdown_timeout),
                ms(code_last.handle().options().shutdown_timeout)
            );
        }
        "build_error" => match HostBuilder::new().options_from_env().build() {
            Ok(_) => eprintln!("RESULT built"),
            Err(e) => eprintln!("RESULT error {e}"),
        },
        other => panic!("unknown child mode {other}"),
    }
}

/// Runs the child with `vars` as its only `THREADHOST_*` variables; returns its RESULT line.
fn run_child(mode: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    child_env(&mut cmd, vars);
    let out = cmd.output().expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stderr}"))
}

#[test]
fn from_env_reads_the_real_environment() {
    let result = run_child(
        "from_env",
        &[
            ("THREADHOST_SHUTDOWN_TIMEOUT", "2m"),
            ("THREADHOST_STARTUP_TIMEOUT", "500ms"),
            ("THREADHOST_START_CONCURRENTLY", "true"),
            ("THREADHOST_STOP_CONCURRENTLY", "yes"),
            ("THREADHOST_STACK_SIZE", "256k"),
            ("THREADHOST_FAILURE_POLICY", "ignore"),
        ],
    );
    assert_eq!(
        result,
        "shutdown=120000 startup=Some(500) start_conc=true stop_conc=true stack=Some(262144) policy=Ignore"
    );
    let defaults = run_child("from_env", &[]);
    assert_eq!(
        defaults,
        "shutdown=30000 startup=None start_conc=false stop_conc=false stack=None policy=StopHost"
    );
}

#[test]
fn options_from_env_order_of_calls_decides() {
    let result = run_child("order", &[("THREADHOST_SHUTDOWN_TIMEOUT", "7s")]);
    assert_eq!(result, "env_last=7000 code_last=1000");
}

#[test]
fn options_from_env_bad_value_fails_build() {
    let result = run_child("build_error", &[("THREADHOST_STACK_SIZE", "lots")]);
    assert!(
        result.starts_with("error invalid value `lots` for THREADHOST_STACK_SIZE"),
        "{result}"
    );
}

#[test]
fn reload_timeout_from_the_environment() {
    assert_eq!(
        HostOptions::default().reload_timeout,
        Duration::from_secs(30)
    );
    let options = with(&[("THREADHOST_RELOAD_TIMEOUT", "1.5s")]).unwrap();
    assert_eq!(options.reload_timeout, Duration::from_millis(1500));
    let err = with(&[("THREADHOST_RELOAD_TIMEOUT", "soon")]).unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { ref name, ref value, .. }
            if name == "THREADHOST_RELOAD_TIMEOUT" && value == "soon"),
        "{err}"
    );
}
