//! The health and metrics endpoint (feature `http`), over real HTTP on loopback: what each
//! path answers in each host state, the queue's figures without user code, outside text
//! escaped, and the bounds (connection limit, oversize head, read and request timeouts, a
//! slow client or a hung metrics callback during the host's stop).
#![cfg(feature = "http")]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use threadhost::{Error, HostBuilder, HostState, HttpEndpoint, Service, ServiceState};

/// The value of the sample `line_start` (name and labels, exactly) in a `/metrics` body.
fn sample(body: &str, line_start: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(line_start)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

/// A queue's figures are in the snapshot, and so in `/metrics`, without user code.
#[cfg(feature = "queue")]
#[test]
fn queue_figures_need_no_user_code() {
    let (queue, producer) = threadhost::TaskQueue::builder("jobs")
        .capacity(8)
        .workers(2)
        .build_tasks()
        .unwrap();
    let host = HostBuilder::new()
        .http_endpoint("127.0.0.1:0")
        .add_service(queue)
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    for _ in 0..3 {
        producer.send_task(|_| Ok(())).unwrap();
    }
    producer.send_task(|_| Err("no".into())).unwrap();
    eventually("the jobs to settle", || producer.metrics().settled() == 4);

    let snapshot = host.handle().snapshot();
    let jobs = snapshot.service("jobs").unwrap();
    let figure = |name: &str| jobs.metrics.iter().find(|(n, _)| *n == name).map(|f| f.1);
    assert_eq!(figure("sent"), Some(4));
    assert_eq!(figure("completed"), Some(3));
    assert_eq!(figure("failed"), Some(1));
    assert_eq!(figure("capacity"), Some(8));
    assert_eq!(figure("workers"), Some(2));
    assert_eq!(figure("depth"), Some(0));
    assert_eq!(jobs.metrics.len(), 13, "{:?}", jobs.metrics);

    let m = http_get(addr, "/metrics").body;
    let q = |line: &str| sample(&m, line);
    assert_eq!(q(r#"threadhost_queue_capacity{queue="jobs"}"#), Some(8.0));
    assert_eq!(q(r#"threadhost_queue_depth{queue="jobs"}"#), Some(0.0));
    assert_eq!(q(r#"threadhost_queue_workers{queue="jobs"}"#), Some(2.0));
    assert_eq!(q(r#"threadhost_queue_in_flight{queue="jobs"}"#), Some(0.0));
    assert_eq!(q(r#"threadhost_queue_sent_total{queue="jobs"}"#), Some(4.0));
    let outcome = |o: &str| {
        q(&format!(
            r#"threadhost_queue_items_total{{queue="jobs",outcome="{o}"}}"#
        ))
    };
    assert_eq!(outcome("completed"), Some(3.0));
    assert_eq!(outcome("failed"), Some(1.0));
    assert_eq!(outcome("dropped"), Some(0.0));
    assert_eq!(outcome("retried"), Some(0.0));
    // A queue's figures are not repeated as a service's own.
    assert!(
        !m.contains(r#"threadhost_service_figure{service="jobs""#),
        "{m}"
    );
    let json: serde_json::Value = serde_json::from_str(&http_get(addr, "/status").body).unwrap();
    assert_eq!(json["services"][1]["metrics"]["completed"], 3);
    assert!(host.stop(SECS5).is_clean());
    // The figures stay readable after the stop (the queue is still in the host's tree).
    let after = host.handle().snapshot();
    assert_eq!(after.service("jobs").unwrap().metrics.len(), 13);
}

#[test]
fn every_path_answers_while_running() {
    let host = HostBuilder::new()
        .http_endpoint("127.0.0.1:0")
        .add_service(idle_service("worker"))
        .add_service(idle_service("counts").metrics(|| vec![("widgets", 7)]))
        .group("devices", |g| g.add_service(idle_service("plc")))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());

    let r = http_get(addr, "/livez");
    assert_eq!((r.status, r.body.as_str()), (200, "live\n"));
    let r = http_get(addr, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert!(r.head.contains("Connection: close"), "{}", r.head);

    let r = http_get(addr, "/metrics?x=1");
    assert_eq!(r.status, 200);
    assert!(
        r.head.contains("application/openmetrics-text"),
        "{}",
        r.head
    );
    let m = &r.body;
    assert_eq!(
        sample(m, r#"threadhost_host_state{state="running"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(m, r#"threadhost_host_state{state="starting"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            m,
            r#"threadhost_service_state{service="worker",state="running"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(m, r#"threadhost_service_restarts_total{service="worker"}"#),
        Some(0.0)
    );
    assert!(
        sample(
            m,
            r#"threadhost_service_start_duration_seconds{service="worker"}"#
        )
        .is_some()
    );
    assert!(
        sample(
            m,
            r#"threadhost_service_heartbeat_age_seconds{service="worker"}"#
        )
        .is_some()
    );
    assert_eq!(
        sample(
            m,
            r#"threadhost_service_figure{service="counts",name="widgets"}"#
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(
            m,
            r#"threadhost_group_state{group="devices",state="running"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(m, r#"threadhost_group_restarts_total{group="devices"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(m, r#"threadhost_service_live{service="devices/plc"}"#),
        Some(1.0)
    );
    // The endpoint is a service of the host, not critical.
    assert_eq!(
        sample(m, r#"threadhost_service_critical{service="http"}"#),
        Some(0.0)
    );
    assert!(m.ends_with("# EOF\n"), "{m}");

    let r = http_get(addr, "/status");
    assert_eq!(r.status, 200);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["state"], "running");
    assert_eq!(json["ready"], true);
    assert_eq!(json["live"], true);
    let names: Vec<&str> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "worker", "counts", "devices/plc"]);
    assert_eq!(json["groups"][0]["path"], "devices");
    assert_eq!(json["groups"][0]["children"][0], "devices/plc");
    assert_eq!(json["services"][2]["metrics"]["widgets"], 7);

    assert_eq!(http_get(addr, "/nope").status, 404);
    assert_eq!(http_get(addr, "/livez/").status, 404);
    let r = http_raw(
        addr,
        b"POST /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET, HEAD"), "{}", r.head);
    let r = http_raw(addr, b"GET /livez HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(r.status, 413);
    let r = http_raw(addr, b"HEAD /readyz HTTP/1.1\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert!(r.head.contains("Content-Length: 6"), "{}", r.head);
    let r = http_raw(addr, b"\x01\x02 garbage\r\n\r\n");
    assert_eq!(r.status, 400);

    assert!(host.stop(SECS5).is_clean());
    assert_eq!(host.handle().http_addr(), None);
    let refused = TcpStream::connect_timeout(&addr, PATIENCE);
    assert!(refused.is_err(), "the port is closed after the stop");
}

#[test]
fn while_starting_ready_fails_and_live_holds() {
    let gate = Gate::new();
    let _opener = gate.opener();
    let held = gate.clone();
    let host = Arc::new(
        HostBuilder::new()
            .http_endpoint("127.0.0.1:0")
            .add_service(
                Service::hosted(
                    "slow",
                    Rec::new("slow", &Events::new()).on("start", Action::Block(held)),
                )
                .liveness(Duration::from_secs(60)),
            )
            .build()
            .unwrap(),
    );
    let starter = {
        let host = Arc::clone(&host);
        spawn("starter", move || host.start(PATIENCE))
    };
    let addr = http_addr_of(&host.handle());
    await_state(&host.handle(), "slow", ServiceState::Starting);
    assert_eq!(host.state(), HostState::Starting);
    let r = http_get(addr, "/readyz");
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready: the host is starting\n")
    );
    // A critical service not started yet is not held against the host's liveness.
    let r = http_get(addr, "/livez");
    assert_eq!(r.status, 200, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&http_get(addr, "/status").body).unwrap();
    assert_eq!(json["state"], "starting");
    assert_eq!(json["ready"], false);
    gate.open();
    starter.join().unwrap().unwrap();
    assert_eq!(http_get(addr, "/readyz").status, 200);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_stale_critical_service_fails_liveness_by_name_escaped() {
    // Outside text: quotes and a backslash in a name (names refuse control characters).
    let name = r#"pl"c\7"#;
    let host = HostBuilder::new()
        .http_endpoint("127.0.0.1:0")
        .add_service(idle_service(name).liveness(ms(50)))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    let handle = host.handle();
    eventually("the heartbeat to go stale", || {
        !handle.snapshot().not_live().is_empty()
    });
    let r = http_get(addr, "/livez");
    assert_eq!(r.status, 503);
    assert!(
        r.body
            .starts_with("not live:\npl\"c\\7: running, last heartbeat "),
        "{:?}",
        r.body
    );
    assert_eq!(http_get(addr, "/readyz").status, 200, "ready is not live");

    let m = http_get(addr, "/metrics").body;
    assert_eq!(
        sample(&m, r#"threadhost_service_live{service="pl\"c\\7"}"#),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"threadhost_service_critical{service="pl\"c\\7"}"#),
        Some(1.0)
    );
    let json: serde_json::Value = serde_json::from_str(&http_get(addr, "/status").body).unwrap();
    assert_eq!(json["live"], false);
    assert_eq!(json["services"][1]["name"], name);
    assert_eq!(json["services"][1]["live"], false);
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn a_failed_service_error_reaches_status_as_valid_json() {
    let host = HostBuilder::new()
        .http_endpoint("127.0.0.1:0")
        .add_service(
            Service::background("bad", |_ctx| Err("line one\nline \"two\"\t\u{0}end".into()))
                .on_failure(threadhost::Policy::Ignore)
                .liveness(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    await_state(&host.handle(), "bad", ServiceState::Failed);
    let r = http_get(addr, "/status");
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let error = json["services"][1]["last_error"].as_str().unwrap();
    assert!(error.contains("line \"two\""), "{error:?}");
    let r = http_get(addr, "/livez");
    assert_eq!(r.status, 503);
    // One line per service: the error's newline does not break the reason's format.
    assert_eq!(r.body.lines().count(), 2, "{:?}", r.body);
    assert!(r.body.contains("bad: failed"), "{:?}", r.body);
    let _ = host.stop(SECS5);
}

/// During a hung stop the endpoint still answers; the stop returns by its deadline although a
/// slowloris client and idle connections are open; then the port is closed.
#[test]
fn a_hung_stop_is_observable_and_slow_clients_do_not_delay_it() {
    let gate = Gate::new();
    let _opener = gate.opener();
    let events = Events::new();
    let host = Arc::new(
        HostBuilder::new()
            .http(HttpEndpoint::new("127.0.0.1:0").read_timeout(Duration::from_secs(60)))
            // `stuck` overruns a budget of its own, so that the endpoint is stopped while the
            // host's deadline still holds: its outcome never rests on the late grace.
            .add_service(
                Service::hosted(
                    "stuck",
                    Rec::new("stuck", &events).on("stop", Action::Block(gate.clone())),
                )
                .stop_timeout(Duration::from_millis(1500)),
            )
            .add_service(idle_service("crit").liveness(Duration::from_secs(60)))
            .build()
            .unwrap(),
    );
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    // A slowloris: half a request line, never finished.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    // Idle connections: connected, nothing sent.
    let idle_conns: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();

    let deadline = Duration::from_millis(1500);
    let stopper = {
        let host = Arc::clone(&host);
        spawn("stopper", move || {
            timed(|| host.stop(Duration::from_secs(30)))
        })
    };
    events.wait_for("stuck:stop");
    assert_eq!(host.state(), HostState::Stopping);
    let r = http_get(addr, "/readyz");
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready: the host is stopping\n")
    );
    // `crit` was stopped first (reverse order) and is excused; nothing else is held against
    // the host: a liveness probe passes during a graceful stop.
    let r = http_get(addr, "/livez");
    assert_eq!(r.status, 200, "{}", r.body);

    let (report, took) = stopper.join().unwrap();
    assert_within(
        took,
        deadline + MARGIN,
        "the stop with slow clients connected",
    );
    assert!(!report.is_clean(), "`stuck` timed out");
    let http = report
        .service("http")
        .expect("the endpoint is in the report");
    assert!(
        matches!(http.outcome, threadhost::Outcome::Stopped),
        "{:?}",
        http.outcome
    );
    assert!(port_closed(addr), "closed");
    drop(idle_conns);
    drop(slow);
}

#[test]
fn a_hung_metrics_callback_does_not_delay_the_stop() {
    let gate = Gate::new();
    let _opener = gate.opener();
    let entered = Probe::new();
    let (held, signal) = (gate.clone(), entered.clone());
    let host = HostBuilder::new()
        .http(HttpEndpoint::new("127.0.0.1:0").service_name("hung"))
        .add_service(idle_service("hangs").metrics(move || {
            signal.set();
            held.wait();
            vec![("x", 1)]
        }))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    let client = spawn("scraper", move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut tcp, &mut rest).ok();
        rest
    });
    entered.expect("the metrics callback to be called");
    let (report, took) = timed(|| host.stop(ms(800)));
    assert_within(
        took,
        ms(800) + MARGIN,
        "the stop with a scrape hung in user code",
    );
    // The endpoint's stop did its part; its connection thread is left detached (logged).
    assert!(report.service("hung").is_some());
    assert_eq!(threads_named("th:hung/conn"), 1, "the stuck one, detached");
    gate.open();
    // The stuck scrape's connection was shut down by the stop: the client sees it closed.
    let _ = client.join().unwrap();
    // Once the callback returns, the detached thread ends: nothing of the endpoint is left.
    eventually("the detached connection thread to end", || {
        threads_named("th:hung") == 0
    });
}

#[test]
fn the_connection_limit_answers_503_and_frees_up() {
    let host = HostBuilder::new()
        .http(HttpEndpoint::new("127.0.0.1:0").max_connections(2))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    let first = TcpStream::connect(addr).unwrap();
    let _second = TcpStream::connect(addr).unwrap();
    // Accepted in order: the third finds two open. Answered without being read.
    let mut third = TcpStream::connect(addr).unwrap();
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    let r = http_read(&mut third);
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "busy: 2 connections open\n");
    // Closing one frees a slot (once its thread saw the close).
    drop(first);
    let r = poll("a slot to free up", || {
        let r = http_get(addr, "/readyz");
        (r.status == 200).then_some(r)
    });
    assert_eq!(r.body, "ready\n");
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn an_oversize_head_gets_431_and_a_slow_one_408() {
    let host = HostBuilder::new()
        .http(
            HttpEndpoint::new("127.0.0.1:0")
                .max_request_bytes(1024)
                .read_timeout(ms(200))
                .request_timeout(ms(600)),
        )
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    let big = format!("GET /livez HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    let r = http_raw(addr, big.as_bytes());
    assert_eq!(r.status, 431);
    let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = http_raw(
        addr,
        format!("GET /livez HTTP/1.1\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 431);

    // Half a request, then silence: the read timeout closes it.
    let (r, took) = timed(|| http_raw(addr, b"GET /livez HT"));
    assert_eq!(r.status, 408);
    assert_within(took, ms(200) + MARGIN, "the read timeout");

    // A byte every 100 ms never trips the read timeout; the request deadline ends it.
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let trickle = {
        let mut tcp = tcp.try_clone().unwrap();
        spawn("trickle", move || {
            for b in b"GET /livez HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if tcp.write_all(&[*b]).is_err() {
                    return;
                }
                // The slow client's pace, not a synchronisation.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(ms(100));
            }
        })
    };
    let (r, took) = timed(|| http_read(&mut tcp));
    assert_eq!(r.status, 408);
    assert_within(took, ms(600) + MARGIN, "the request deadline");
    trickle.join().unwrap();
    assert!(host.stop(SECS5).is_clean());
}

#[test]
fn bad_options_and_a_taken_port_are_clear_errors() {
    let err = HostBuilder::new()
        .http(HttpEndpoint::new("127.0.0.1:0").max_connections(0))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption { name, .. } if name == "HttpEndpoint::max_connections"),
        "{err}"
    );
    let err = HostBuilder::new()
        .http(HttpEndpoint::new("127.0.0.1:0").max_request_bytes(10))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_request_bytes"), "{err}");
    let err = HostBuilder::new().http_endpoint("").build().unwrap_err();
    assert!(err.to_string().contains("http endpoint address"), "{err}");
    // The endpoint's service name clashes with one of the program's.
    let err = HostBuilder::new()
        .http_endpoint("127.0.0.1:0")
        .add_service(idle_service("http"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateService { .. }), "{err}");
    let host = HostBuilder::new()
        .http(HttpEndpoint::new("127.0.0.1:0").service_name("ops"))
        .add_service(idle_service("http"))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    assert_eq!(host.handle().snapshot().services[0].name.as_ref(), "ops");
    assert!(host.stop(SECS5).is_clean());

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let host = HostBuilder::new()
        .http_endpoint(&addr)
        .add_service(idle_service("worker"))
        .build()
        .unwrap();
    let err = host.start(SECS5).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot listen on `{addr}`")),
        "{text}"
    );
    assert_eq!(host.state(), HostState::Failed);
}

#[test]
fn many_scrapes_at_once_all_answer_or_are_turned_away() {
    let host = HostBuilder::new()
        .http(HttpEndpoint::new("127.0.0.1:0").max_connections(4))
        .add_service(idle_service("worker"))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    let clients: Vec<_> = (0..16)
        .map(|i| {
            spawn(&format!("client-{i}"), move || {
                http_get(addr, "/metrics").status
            })
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(host.stop(SECS5).is_clean());
}

/// With a deadline far off, slow and idle clients are cut off at once by the stop: it
/// returns long before either the deadline or the clients' timeouts, and clean.
#[test]
fn slow_clients_never_hold_a_clean_stop() {
    let host = HostBuilder::new()
        .http(patient_endpoint("http"))
        .build()
        .unwrap();
    host.start(SECS5).unwrap();
    let addr = http_addr_of(&host.handle());
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nX-Slow: a").unwrap();
    let idle_conns: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Every connection is admitted (a probe behind them answers) before the stop.
    assert_eq!(http_get(addr, "/livez").status, 200);
    let (report, took) = timed(|| host.stop(Duration::from_secs(30)));
    assert!(report.is_clean(), "{report}");
    assert_within(took, PATIENCE, "a stop with slow clients, 30 s deadline");
    // The slow client's connection was shut down: it reads the end, not a response.
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut slow, &mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    drop(idle_conns);
}

/// A start that fails after the endpoint started rolls it back: the port closes.
#[test]
fn a_failed_start_closes_the_port() {
    struct Fails(Arc<std::sync::Mutex<Option<SocketAddr>>>);
    impl threadhost::HostedService for Fails {
        fn start(&mut self, ctx: &threadhost::Context) -> threadhost::ServiceResult {
            *self.0.lock().unwrap() = ctx.host().http_addr();
            Err("no".into())
        }
        fn stop(&mut self, _ctx: &threadhost::Context) -> threadhost::ServiceResult {
            Ok(())
        }
    }
    let seen = Arc::new(std::sync::Mutex::new(None));
    let host = HostBuilder::new()
        .http_endpoint("127.0.0.1:0")
        .hosted("fails", Fails(Arc::clone(&seen)))
        .build()
        .unwrap();
    assert!(host.start(SECS5).is_err());
    let addr = seen
        .lock()
        .unwrap()
        .expect("the endpoint listened during the start");
    assert_eq!(host.handle().http_addr(), None);
    assert!(port_closed(addr), "closed");
}
