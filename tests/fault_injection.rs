//! Fault injection: hosts mixing services that hang (ignore their token), stop slowly, panic in
//! start / body / stop / callbacks, or fail repeatedly, in every start and stop mode. Whatever
//! the services do, `start` and `stop` return by their deadlines, every overrun is named in the
//! report or the error, and no panic escapes.
//!
//! CI runs 30 trials with roomy deadlines and generous bounds. The measured run — 300 trials in release, worst
//! overrun of `stop` past its deadline reported and held to 20 ms — is
//! `cargo test --release --test fault_injection -- --ignored --nocapture`.

// The measured run reports its figures on stderr.
#![allow(clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::{Rng, idle};
use threadhost::{
    Backoff, Context, Error, Group, HostBuilder, HostedService, Outcome, Policy, Service,
    ServiceResult, StopSource, StopToken, Strategy,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    HangBody,
    SlowStop,
    PanicBody,
    PanicStart,
    HangStart,
    PanicStopHook,
    HangStopHook,
    PanicCallback,
    FailRepeatedly,
    /// Hangs in its `stopping` hook (so every service stopped after it is reached late).
    HangStopping,
    /// Works 1 ms in each stop hook, ignoring its token.
    SlowHooks,
}

const FAULTS: [Fault; 12] = [
    Fault::None,
    Fault::HangBody,
    Fault::SlowStop,
    Fault::PanicBody,
    Fault::PanicStart,
    Fault::HangStart,
    Fault::PanicStopHook,
    Fault::HangStopHook,
    Fault::PanicCallback,
    Fault::FailRepeatedly,
    Fault::HangStopping,
    Fault::SlowHooks,
];

/// The deadlines of one run: roomy in CI (a starved machine must not make a well-behaved
/// service miss them), tight in the measured run.
#[derive(Clone, Copy)]
struct Deadlines {
    start: Duration,
    stop: Duration,
}

const CI: Deadlines = Deadlines {
    start: Duration::from_millis(400),
    stop: Duration::from_millis(250),
};
const MEASURED: Deadlines = Deadlines {
    start: Duration::from_millis(150),
    stop: Duration::from_millis(100),
};

/// A hosted service whose hooks misbehave as told; `release` ends every hang.
struct Faulty {
    fault: Fault,
    release: StopToken,
}

impl HostedService for Faulty {
    fn start(&mut self, _ctx: &Context) -> ServiceResult {
        match self.fault {
            Fault::PanicStart => panic!("injected panic in start"),
            Fault::HangStart => {
                self.release.wait();
                Ok(())
            }
            _ => Ok(()),
        }
    }
    fn stopping(&mut self, _ctx: &Context) -> ServiceResult {
        match self.fault {
            Fault::HangStopping => {
                self.release.wait();
                Ok(())
            }
            Fault::SlowHooks => slow_hook(),
            _ => Ok(()),
        }
    }
    fn stop(&mut self, _ctx: &Context) -> ServiceResult {
        match self.fault {
            Fault::PanicStopHook => panic!("injected panic in stop"),
            Fault::HangStopHook => {
                self.release.wait();
                Ok(())
            }
            Fault::SlowHooks => slow_hook(),
            _ => Ok(()),
        }
    }
    fn stopped(&mut self, _ctx: &Context) -> ServiceResult {
        match self.fault {
            Fault::SlowHooks => slow_hook(),
            _ => Ok(()),
        }
    }
}

/// 1 ms of work that ignores every token.
fn slow_hook() -> ServiceResult {
    common::busy(Duration::from_millis(1));
    Ok(())
}

fn service(i: usize, fault: Fault, release: &StopToken) -> Service {
    let name = format!("s{i}-{fault:?}");
    let release = release.clone();
    match fault {
        Fault::PanicStart
        | Fault::HangStart
        | Fault::PanicStopHook
        | Fault::HangStopHook
        | Fault::HangStopping
        | Fault::SlowHooks => Service::hosted(&name, Faulty { fault, release }),
        Fault::None => Service::background(&name, idle),
        Fault::HangBody => Service::background(&name, move |_ctx| {
            release.wait();
            Ok(())
        }),
        Fault::SlowStop => Service::background(&name, move |ctx| {
            ctx.token().wait();
            // Cleanup that takes 30 ms (a timed wait on a token that only the test fires).
            let _ = release.wait_timeout(Duration::from_millis(30));
            Ok(())
        }),
        Fault::PanicBody => Service::background(&name, |_ctx| panic!("injected panic in body")),
        Fault::PanicCallback => Service::background(&name, |ctx| {
            ctx.token()
                .on_stop(|_| panic!("injected panic in an on_stop callback"))
                .forget();
            ctx.token().wait();
            Ok(())
        }),
        Fault::FailRepeatedly => Service::background(&name, |_ctx| Err("injected failure".into()))
            .on_failure(Policy::Restart {
                backoff: Backoff::fixed(Duration::from_millis(1)),
                max_restarts: 3,
                within: Duration::from_secs(60),
            }),
    }
}

/// Worst overruns seen: of `start` past its deadline (plus the rollback's), of `stop` past its.
#[derive(Default)]
struct Worst {
    start: Duration,
    stop: Duration,
}

fn trial(seed: u64, d: Deadlines, worst: &mut Worst, margin: Duration) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 1 + rng.index(5);
    let faults: Vec<Fault> = (0..n).map(|_| FAULTS[rng.index(FAULTS.len())]).collect();
    let start_concurrently = rng.index(2) == 0;
    let stop_concurrently = rng.index(2) == 0;
    // Half the trials put the services in a group (one of the three strategies) nested in
    // another: the tree keeps the same deadlines. Its intensity is 0, so a failure fails the
    // group and reaches the host as a flat service's would.
    let grouped = [
        None,
        Some(Strategy::OneForOne),
        Some(Strategy::OneForAll),
        Some(Strategy::RestForOne),
    ][rng.index(4)];
    let context = format!(
        "seed {seed}: {faults:?}, start_concurrently {start_concurrently}, stop_concurrently {stop_concurrently}, grouped {grouped:?}"
    );

    let release = StopSource::new();
    let mut builder = HostBuilder::new()
        .shutdown_timeout(d.stop)
        .start_concurrently(start_concurrently)
        .stop_concurrently(stop_concurrently);
    let services = faults
        .iter()
        .enumerate()
        .map(|(i, &fault)| service(i, fault, &release.token()));
    let prefix = match grouped {
        None => {
            for s in services {
                builder = builder.add_service(s);
            }
            ""
        }
        Some(strategy) => {
            let inner = services.fold(
                Group::new("inner")
                    .strategy(strategy)
                    .intensity(0, Duration::from_secs(60)),
                Group::add_service,
            );
            builder = builder.group("outer", |g| {
                g.intensity(0, Duration::from_secs(60)).add_group(inner)
            });
            "outer/inner/"
        }
    };
    let host = builder.build().expect("valid host");

    let began = Instant::now();
    let started = host.start(d.start);
    // A failed start also rolls back under the shutdown timeout.
    let start_over = began.elapsed().saturating_sub(d.start + d.stop);
    worst.start = worst.start.max(start_over);
    assert!(
        start_over <= margin,
        "{context}: start overran by {start_over:?}"
    );
    match &started {
        Ok(()) => {}
        Err(Error::StartTimeout { service }) => {
            assert!(
                service.contains("HangStart"),
                "{context}: {service} timed out"
            );
        }
        Err(Error::StartFailed { service, failure }) => {
            assert!(
                service.contains("PanicStart"),
                "{context}: {service}: {failure}"
            );
            assert!(failure.is_panic(), "{context}: {failure}");
        }
        Err(other) => panic!("{context}: unexpected start error {other}"),
    }

    let began = Instant::now();
    let report = host.stop(d.stop);
    let stop_over = began.elapsed().saturating_sub(d.stop);
    if started.is_ok() {
        worst.stop = worst.stop.max(stop_over);
    }
    assert!(
        stop_over <= margin,
        "{context}: stop overran by {stop_over:?}: {report}"
    );

    // Every service that hangs in its body or its stop hook, if it started, is named.
    if started.is_ok() {
        for (i, &fault) in faults.iter().enumerate() {
            let name = format!("{prefix}s{i}-{fault:?}");
            let entry = report
                .service(&name)
                .unwrap_or_else(|| panic!("{context}: {name} missing from {report}"));
            if matches!(entry.outcome, Outcome::NotStarted) {
                // A failing service stopped the host during start: the rest never started.
                assert!(report.host_failure().is_some(), "{context}: {report}");
                continue;
            }
            match fault {
                Fault::HangBody | Fault::HangStopHook | Fault::HangStopping => assert!(
                    matches!(entry.outcome, Outcome::TimedOut),
                    "{context}: {name} not reported as timed out: {report}"
                ),
                Fault::PanicStopHook => assert!(
                    matches!(entry.outcome, Outcome::Failed(ref f) if f.is_panic())
                        || matches!(entry.outcome, Outcome::TimedOut),
                    "{context}: {name}: {report}"
                ),
                _ => {}
            }
        }
        assert!(
            report.timed_out().len()
                <= faults
                    .iter()
                    .filter(|f| matches!(
                        f,
                        Fault::HangBody
                            | Fault::HangStopHook
                            | Fault::HangStopping
                            | Fault::SlowStop
                    ))
                    .count()
                    + faults.len(), // services reached after the deadline may be late too
            "{context}: {report}"
        );
    }
    // End every hang; the detached threads finish on their own.
    release.stop();
}

fn run_trials(count: u64, d: Deadlines, margin: Duration) -> Worst {
    // Injected panics are caught by the host; printing each one (with a backtrace when
    // RUST_BACKTRACE is set, slow in a debug build) would only eat into the deadlines under
    // test. The test binary may own the hook; the library never installs one.
    std::panic::set_hook(Box::new(|_| {}));
    let mut worst = Worst::default();
    for seed in 0..count {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            trial(seed, d, &mut worst, margin);
        }));
        if let Err(payload) = result {
            // The silent hook hid the trial's own assertion: say it, then fail.
            let _ = std::panic::take_hook();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("trial {seed} failed: {message}");
        }
    }
    worst
}

#[test]
fn smoke() {
    // Generous bound: CI machines are loaded; the tight figure is the measured run's.
    let _ = run_trials(30, CI, Duration::from_millis(500));
}

#[test]
#[ignore = "measured run: cargo test --release --test fault_injection -- --ignored --nocapture"]
fn stop_returns_by_deadline_plus_20ms_over_300_trials() {
    let worst = run_trials(300, MEASURED, Duration::from_millis(500));
    eprintln!(
        "fault injection: 300 trials; worst overrun of stop past its deadline {:?}; of start past its deadline + rollback {:?}",
        worst.stop, worst.start
    );
    assert!(
        worst.stop <= Duration::from_millis(20),
        "worst stop overrun {:?} exceeds 20 ms",
        worst.stop
    );
}

/// Many services reached after the deadline: one hosted service hangs in `stopping` and is
/// stopped first, so every other one is reached late. They share one grace in total (host
/// invariant 7), however many they are; a prompt one is reported stopped, not timed out.
/// Returns the overrun of `stop` past its deadline and how many prompt services were
/// reported timed out.
fn late_trial(seed: u64, deadline: Duration) -> (Duration, usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 5 + rng.index(26);
    let release = StopSource::new();
    let mut builder = HostBuilder::new()
        .shutdown_timeout(deadline)
        .stop_concurrently(rng.index(2) == 0);
    let mut prompt = Vec::new();
    for i in 0..n {
        let fault = [Fault::None, Fault::SlowHooks, Fault::SlowStop][rng.index(3)];
        let name = format!("s{i}-{fault:?}");
        builder = builder.add_service(if fault == Fault::None && rng.index(2) == 0 {
            // A prompt hosted service (no hooks at all).
            prompt.push(name.clone());
            Service::hosted(
                &name,
                Faulty {
                    fault,
                    release: release.token(),
                },
            )
        } else {
            if fault == Fault::None {
                prompt.push(name.clone());
            }
            service(i, fault, &release.token())
        });
    }
    // Registered last, stopped first.
    builder = builder.add_service(service(n, Fault::HangStopping, &release.token()));
    let host = builder.build().expect("valid host");
    host.start(PATIENCE).expect("every service starts");
    let (report, took) = common::timed(|| host.stop(deadline));
    release.stop();
    let over = took.saturating_sub(deadline);
    let hung = format!("s{n}-HangStopping");
    assert!(
        matches!(report.service(&hung).unwrap().outcome, Outcome::TimedOut),
        "seed {seed}: {report}"
    );
    let misreported = prompt
        .iter()
        .filter(|name| matches!(report.service(name).unwrap().outcome, Outcome::TimedOut))
        .count();
    (over, misreported)
}

const PATIENCE: Duration = common::PATIENCE;

#[test]
fn many_late_services_share_one_grace() {
    std::panic::set_hook(Box::new(|_| {}));
    for seed in 0..10 {
        let (over, _misreported) = late_trial(seed, Duration::from_millis(100));
        // Roomy for a loaded machine; before the shared grace, 30 late services alone took
        // 30 graces one after another (and 3 each with their phases).
        common::assert_within(
            over,
            common::MARGIN,
            "the overrun of stop with many late services",
        );
    }
}

#[test]
fn late_slow_services_do_not_add_up() {
    // 80 services of 3 ms of stop hooks, all reached late: one after another they would
    // overrun by 240 ms at least; sharing one grace, by about one service's hooks.
    let release = StopSource::new();
    let mut builder = HostBuilder::new();
    for i in 0..80 {
        builder = builder.add_service(service(i, Fault::SlowHooks, &release.token()));
    }
    let host = builder
        .add_service(service(80, Fault::HangStopping, &release.token()))
        .build()
        .unwrap();
    host.start(PATIENCE).unwrap();
    let deadline = Duration::from_millis(100);
    let (report, took) = common::timed(|| host.stop(deadline));
    release.stop();
    assert!(
        report
            .timed_out()
            .iter()
            .any(|s| &**s == "s80-HangStopping"),
        "{report}"
    );
    common::assert_within(
        took.saturating_sub(deadline),
        Duration::from_millis(150),
        "the overrun of stop with 80 slow late services",
    );
}

#[test]
#[ignore = "measured run: cargo test --release --test fault_injection -- --ignored --nocapture"]
fn many_late_services_overrun_at_most_20ms_over_200_trials() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut worst = Duration::ZERO;
    let mut misreported = 0;
    for seed in 0..200 {
        let (over, wrong) = late_trial(seed, Duration::from_millis(50));
        worst = worst.max(over);
        misreported += wrong;
    }
    eprintln!(
        "late services: 200 trials of 5-30 services behind one hung in `stopping`; worst overrun of stop past its deadline {worst:?}; prompt services reported timed out: {misreported}"
    );
    assert!(
        worst <= Duration::from_millis(20),
        "worst overrun {worst:?}"
    );
    assert_eq!(misreported, 0, "prompt late services reported timed out");
}
