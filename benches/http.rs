//! The HTTP endpoint's cost (feature `http`), against baselines measured in the same run
//! (benches/common: the two sides alternate, the median of the per-round ratios is the
//! figure).
//!
//! 1. A scrape: `GET /metrics` over loopback (connect, request, the whole response read, the
//!    connection closed) of a running host with 100 idle services and 2 work queues, against
//!    `HostHandle::snapshot()` of the same host (the data the scrape renders). Informative;
//!    the same for `/status` (JSON) and `/livez`. `SCRAPES` requests a measurement.
//! 2. The CPU time of the process (client and server: the same process) per `/metrics`
//!    scrape, from `/proc/self/stat` (Linux; 10 ms ticks, so over `CPU_SCRAPES` scrapes).
//! 3. An idle host's CPU time over `IDLE` with the endpoint and without it (a blocking accept:
//!    nothing should wake while no one connects).
//!
//! Run: `cargo bench --bench http` (about half a minute); `BENCH_ROUNDS=<n>` for more rounds.
//! The process exits 0 whatever the figures.

#![allow(
    clippy::print_stdout,
    clippy::disallowed_methods, // thread::sleep: the idle host is left alone for a while
    missing_docs
)]

#[allow(unreachable_pub)] // the shared harness declares `pub` items for every bench
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Goal, compare, print_table};
use threadhost::{Host, HostBuilder, Service};

const SCRAPES: usize = 50;
const CPU_SCRAPES: usize = 500;
const IDLE: Duration = Duration::from_secs(3);

fn host(services: usize, queues: usize, http: bool) -> Host {
    let mut b = HostBuilder::new();
    if http {
        b = b.http_endpoint("127.0.0.1:0");
    }
    for i in 0..services {
        b = b.add_service(Service::background(&format!("svc-{i}"), |ctx| {
            ctx.token().wait();
            Ok(())
        }));
    }
    for i in 0..queues {
        let (queue, _producer) = threadhost::TaskQueue::builder(&format!("queue-{i}"))
            .build_tasks()
            .unwrap();
        b = b.add_service(queue);
    }
    let host = b.build().unwrap();
    host.start(Duration::from_secs(30)).unwrap();
    host
}

fn get(addr: SocketAddr, path: &str) -> usize {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .unwrap();
    let mut body = Vec::new();
    tcp.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200"), "{path} failed");
    body.len()
}

/// The process's CPU time (user + system), from `/proc/self/stat`; `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let h = host(100, 2, true);
    let handle = h.handle();
    let addr = handle.http_addr().unwrap();
    let bytes = get(addr, "/metrics");
    let json_bytes = get(addr, "/status");
    let snapshot = || {
        common::time(|| {
            for _ in 0..SCRAPES {
                std::hint::black_box(handle.snapshot());
            }
        })
    };
    let scrape = |path: &'static str| {
        move || {
            common::time(|| {
                for _ in 0..SCRAPES {
                    std::hint::black_box(get(addr, path));
                }
            })
        }
    };
    let rows = vec![
        compare(
            &format!("GET /metrics, 100 services + 2 queues ({bytes} bytes)"),
            "snapshot()",
            Goal::None,
            snapshot,
            scrape("/metrics"),
        ),
        compare(
            &format!("GET /status, 100 services + 2 queues ({json_bytes} bytes)"),
            "snapshot()",
            Goal::None,
            snapshot,
            scrape("/status"),
        ),
        compare(
            "GET /livez, 100 services + 2 queues",
            "snapshot()",
            Goal::None,
            snapshot,
            scrape("/livez"),
        ),
    ];
    print_table("A scrape against the snapshot it renders", &rows);
    for r in &rows {
        println!(
            "- {}: {:?} per request ({:?} per snapshot)",
            r.name,
            r.candidate_median / SCRAPES as u32,
            r.baseline_median / SCRAPES as u32
        );
    }

    if let Some(before) = cpu_time() {
        let wall = Instant::now();
        for _ in 0..CPU_SCRAPES {
            get(addr, "/metrics");
        }
        let wall = wall.elapsed();
        let cpu = cpu_time().unwrap() - before;
        println!(
            "\nCPU per /metrics scrape (client and server, {CPU_SCRAPES} scrapes): {:?}; wall {:?} per scrape",
            cpu / CPU_SCRAPES as u32,
            wall / CPU_SCRAPES as u32
        );
    }
    drop(h);

    println!("\nIdle CPU of the whole process over {IDLE:?} (100 idle services):");
    for http in [false, true] {
        let h = host(100, 0, http);
        // Let the start settle.
        std::thread::sleep(Duration::from_millis(200));
        let Some(before) = cpu_time() else {
            println!("- (no /proc/self/stat: not measured)");
            return;
        };
        std::thread::sleep(IDLE);
        let cpu = cpu_time().unwrap() - before;
        println!(
            "- {}: {cpu:?}",
            if http {
                "with the endpoint"
            } else {
                "without the endpoint"
            }
        );
        drop(h);
    }
}
