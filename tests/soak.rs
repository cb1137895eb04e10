//! Soak: many start/stop cycles of a host with mixed services leave no thread, descriptor or
//! memory behind. CI runs a short version; the full 10,000 cycles run with
//! `cargo test --release --test soak -- --ignored`.

#![cfg(target_os = "linux")]
// The soak reports its figures on stderr (shown with --nocapture).
#![allow(clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::idle;
use threadhost::{Backoff, Context, HostBuilder, HostedService, Policy, Service, ServiceResult};

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, Iterator::count)
}

fn threads() -> usize {
    count_dir("/proc/self/task")
}

fn fds() -> usize {
    count_dir("/proc/self/fd")
}

/// `read()` once it is at most `limit`, or its last value after about a second: a thread that
/// was just joined can stay listed in `/proc/self/task` until the kernel has reaped it, and
/// there is no event to wait for that.
#[allow(clippy::disallowed_methods)]
fn settled(limit: usize, read: impl Fn() -> usize) -> usize {
    for _ in 0..200 {
        let v = read();
        if v <= limit {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    read()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Hooks(Arc<AtomicUsize>);

impl HostedService for Hooks {
    fn start(&mut self, _ctx: &Context) -> ServiceResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn stop(&mut self, _ctx: &Context) -> ServiceResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// One cycle: build, start, stop a host of five mixed services; every stop must be clean.
fn cycle(hooks: &Arc<AtomicUsize>, concurrent: bool) {
    let mut failed_once = false;
    let (restarted_tx, restarted_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let host = HostBuilder::new()
        .start_concurrently(concurrent)
        .stop_concurrently(concurrent)
        .hosted("hooks", Hooks(Arc::clone(hooks)))
        .background("waiter", idle)
        .background("sleeper", |ctx| {
            while ctx.sleep(Duration::from_micros(50)).is_ok() {}
            Ok(())
        })
        .background("one-shot", |_ctx| Ok(()))
        .add_service(
            Service::background("flaky", move |ctx| {
                if !failed_once {
                    failed_once = true;
                    return Err("first run fails".into());
                }
                let _ = restarted_tx.try_send(());
                ctx.token().wait();
                Ok(())
            })
            .on_failure(Policy::Restart {
                backoff: Backoff::fixed(Duration::ZERO),
                max_restarts: 3,
                within: Duration::from_secs(60),
            }),
        )
        .build()
        .expect("valid host");
    host.start(Duration::from_secs(10)).expect("starts");
    // Stop only once the restart happened: a failure racing the stop would (rightly) be
    // reported as a failure during the stop.
    restarted_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the flaky service restarts");
    let report = host.stop(Duration::from_secs(10));
    assert!(report.is_clean(), "{report}");
}

fn soak(cycles: usize) {
    let hooks = Arc::new(AtomicUsize::new(0));
    // Warm up: let the allocator, the logger and lazily-created statics settle.
    for i in 0..20 {
        cycle(&hooks, i % 2 == 0);
    }
    let (threads0, fds0, rss0) = (threads(), fds(), rss_kib());
    for i in 0..cycles {
        cycle(&hooks, i % 2 == 0);
    }
    let (threads1, fds1, rss1) = (settled(threads0, threads), settled(fds0, fds), rss_kib());
    assert_eq!(hooks.load(Ordering::Relaxed), 2 * (cycles + 20));
    // At most the baseline: the baseline itself may still count a thread being reaped.
    assert!(
        threads1 <= threads0,
        "threads grew from {threads0} to {threads1} over {cycles} cycles"
    );
    assert!(
        fds1 <= fds0,
        "open descriptors grew from {fds0} to {fds1} over {cycles} cycles"
    );
    // RSS: flat within 4 MiB (allocator caches and arenas may grow a little, a leak of even
    // one small allocation per cycle would grow without bound).
    // Under valgrind (`SOAK_NO_RSS=1`, see RELIABILITY.md) RSS measures valgrind's shadow
    // memory, not ours: memcheck's leak report is the check there.
    assert!(
        std::env::var_os("SOAK_NO_RSS").is_some() || rss1 <= rss0 + 4 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB over {cycles} cycles"
    );
    eprintln!(
        "soak: {cycles} cycles; threads {threads0}->{threads1}, fds {fds0}->{fds1}, RSS {rss0}->{rss1} KiB"
    );
}

#[test]
fn smoke() {
    soak(300);
}

#[test]
#[ignore = "long: 10,000 cycles; run with --release -- --ignored"]
fn soak_10000_cycles() {
    soak(10_000);
}

/// `cycles` rounds of the gateway's churn on one running host: a device group (a connection
/// and a poller, one-for-all) added, restarted and removed; threads, descriptors, the tree
/// and memory come back to where they were.
fn tree_soak(cycles: usize) {
    use threadhost::{Group, Strategy};
    let device = |n: usize| {
        Group::new(&format!("dev-{n}"))
            .strategy(Strategy::OneForAll)
            .background("connection", idle)
            .add_service(Service::background("poller", idle).depends_on("connection"))
    };
    let host = HostBuilder::new()
        .group("devices", |g| g.add_group(device(0)))
        .build()
        .unwrap();
    host.start(Duration::from_secs(10)).unwrap();
    let handle = host.handle();
    let round = |i: usize| {
        let d = Duration::from_secs(10);
        handle.add_group("devices", device(i + 1), d).unwrap();
        handle
            .restart_child(&format!("devices/dev-{}", i + 1), d)
            .unwrap();
        let report = handle.remove(&format!("devices/dev-{}", i + 1), d).unwrap();
        assert!(report.is_clean(), "{report}");
    };
    for i in 0..20 {
        round(i);
    }
    let (threads0, fds0, rss0) = (threads(), fds(), rss_kib());
    for i in 20..20 + cycles {
        round(i);
    }
    let (threads1, fds1, rss1) = (settled(threads0, threads), settled(fds0, fds), rss_kib());
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.services.len(), 2, "{:?}", snapshot.services);
    assert_eq!(snapshot.groups.len(), 2);
    assert!(
        threads1 <= threads0,
        "threads grew from {threads0} to {threads1}"
    );
    assert!(fds1 <= fds0, "descriptors grew from {fds0} to {fds1}");
    assert!(
        std::env::var_os("SOAK_NO_RSS").is_some() || rss1 <= rss0 + 4 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB over {cycles} cycles"
    );
    assert!(host.stop(Duration::from_secs(10)).is_clean());
    eprintln!(
        "tree soak: {cycles} add + restart + remove cycles; threads {threads0}->{threads1}, fds {fds0}->{fds1}, RSS {rss0}->{rss1} KiB"
    );
}

#[test]
fn tree_smoke() {
    tree_soak(200);
}

#[test]
#[ignore = "long: 10,000 cycles; run with --release -- --ignored"]
fn tree_soak_10000_cycles() {
    tree_soak(10_000);
}
