//! Hosted services on OS threads, with a graceful, deadline-bounded lifecycle.
//!
//! threadhost gives programs without an async executor — plain `fn main` Rust programs, C and
//! C++ applications, small industrial gateways under systemd — what .NET's Generic Host gives
//! C# programs: hosted services with a clean lifecycle, background workers, and a graceful
//! shutdown that returns by its deadline whatever a service does, and says what overran.
//!
//! # Hello, host
//!
//! ```
//! use std::time::Duration;
//! use threadhost::HostBuilder;
//!
//! let host = HostBuilder::new()
//!     .background("worker", |ctx| {
//!         let mut n = 0u64;
//!         // `sleep` returns Err(Stopped) as soon as the host stops this service.
//!         while ctx.sleep(Duration::from_millis(5)).is_ok() {
//!             n += 1;
//!         }
//!         log::info!("worker ran {n} rounds");
//!         Ok(())
//!     })
//!     .build()?;
//!
//! host.start(Duration::from_secs(5))?;
//! // ... the program does its own thing; a signal or a service may request a stop ...
//! let report = host.stop(Duration::from_secs(5));
//! assert!(report.is_clean(), "{report}");
//! # Ok::<(), threadhost::Error>(())
//! ```
//!
//! A real program lets [`Host::run`] do all of it — start, wait for Ctrl-C / SIGTERM, stop —
//! and turns the result into its exit code with [`exit_code`] (see
//! [Console lifetime and exit codes](#console-lifetime-and-exit-codes); the console lifetime
//! needs the `termination` feature, on by default). threadhost logs
//! through the `log` facade: install a logger (here `env_logger`, which prints only errors
//! unless run with `RUST_LOG=info`), or the program prints nothing.
//!
#![cfg_attr(feature = "termination", doc = "```no_run")]
#![cfg_attr(not(feature = "termination"), doc = "```ignore")]
//! use std::process::ExitCode;
//! use threadhost::HostBuilder;
//!
//! fn main() -> ExitCode {
//!     env_logger::init();
//!     let result = HostBuilder::new()
//!         .console_lifetime()
//!         .background("worker", |ctx| { ctx.token().wait(); Ok(()) })
//!         .build()
//!         .and_then(|host| host.run());
//!     ExitCode::from(threadhost::exit_code(&result))
//! }
//! ```
//!
//! # Lifecycle
//!
//! ```text
//!  Created ──start()──▶ Starting ──all started──▶ Running ──stop requested──▶ Stopping ──▶ Stopped
//!                          │                                                    ▲
//!                          ├── a start failed or overran: rollback ─▶ Failed    │
//!                          └── stop requested during start ─────────────────────┘
//! ```
//!
//! - Every service runs on its own named thread, `th:<name>`, from its first instruction:
//!   even its `start` hook. So [`Host::start`] returns by its deadline even when a start
//!   hangs, and a slow service never delays another's thread.
//! - Services start in registration order (after the services they
//!   [depend on](Service::depends_on)) and stop in reverse. Each phase — starting, start,
//!   started; stopping, stop, stopped — completes for all services before the next.
//! - A start that fails, panics or overruns stops exactly the services that had started, in
//!   reverse, and the error names the service. A service that never started is never stopped.
//! - [`Host::stop`] shares one deadline among all services and returns by it with a
//!   [`StopReport`]: each service stopped, failed, or timed out (its thread left running,
//!   detached, and named — never silently forgotten).
//! - [`HostHandle`] requests a stop from anywhere and exposes the lifetime events
//!   [`started`](HostHandle::started), [`stopping`](HostHandle::stopping) and
//!   [`stopped`](HostHandle::stopped), plus a [`snapshot`](HostHandle::snapshot).
//!
//! ```
//! use std::time::Duration;
//! use threadhost::{HostBuilder, HostState};
//!
//! let host = HostBuilder::new()
//!     .background("db", |ctx| { ctx.token().wait(); Ok(()) })
//!     .background("api", |ctx| { ctx.token().wait(); Ok(()) })
//!     .build()?;
//! let handle = host.handle();
//! host.start(Duration::from_secs(5))?;
//! assert_eq!(handle.state(), HostState::Running);
//! handle.request_stop(); // e.g. from another thread
//! let report = host.join(Duration::from_secs(5))?;
//! let order: Vec<&str> = report.services().iter().map(|s| &*s.name).collect();
//! assert_eq!(order, ["api", "db"]); // reverse start order
//! # Ok::<(), threadhost::Error>(())
//! ```
//!
//! # Stop tokens
//!
//! [`StopSource`] / [`StopToken`] are the cancellation primitive, usable on their own:
//! [`is_stopped`](StopToken::is_stopped) is one atomic load; [`wait`](StopToken::wait),
//! [`wait_timeout`](StopToken::wait_timeout), [`wait_until`](StopToken::wait_until) and
//! [`sleep`](StopToken::sleep) block on a condition variable and wake within microseconds of
//! the stop; [`child`](StopToken::child) tokens stop with their parent;
//! [`on_stop`](StopToken::on_stop) registers callbacks; [`reason`](StopToken::reason) says why.
//!
//! ```
//! use std::time::Duration;
//! use threadhost::{StopReason, StopSource};
//!
//! let source = StopSource::new();
//! let token = source.token();
//! let waiter = std::thread::spawn(move || token.wait_timeout(Duration::from_secs(10)));
//! source.stop_with(StopReason::Signal { name: "SIGTERM" });
//! assert!(waiter.join().unwrap()); // woken, not timed out
//! assert_eq!(source.reason(), Some(StopReason::Signal { name: "SIGTERM" }));
//! ```
//!
//! # Deadlines
//!
//! Every blocking verb takes `impl Into<`[`Deadline`]`>`: a [`Duration`](std::time::Duration)
//! counted from the call, an [`Instant`](std::time::Instant), or [`Deadline::NEVER`]. The
//! deadline is computed once, at the call, and shared by every step beneath it.
//!
//! # Work queue
//!
//! [`WorkQueue`] carries typed items to a handler run by N worker threads (`th:<queue>/<n>`);
//! it is a hosted service like any other, built on the same public traits, that starts and
//! stops with the host. [`TaskQueue`] is the case of boxed closures ([`Task`]), the .NET
//! documentation samples' `IBackgroundTaskQueue`. Producers ([`Producer`]:
//! `Clone + Send + Sync`, usable before the host starts) `send` (waits while full:
//! backpressure), `send_timeout`, `send_deadline` or `try_send`; every failure hands the item
//! back. A full queue blocks, drops the oldest or the newest item, or rejects
//! ([`FullMode`]); a dropped item is counted and given to a callback. On stop the queue stops
//! accepting, drains until shortly before the stop deadline, then cancels the running jobs
//! (their token fires) and hands back the items that never started, so the program can
//! persist them:
//! `sent = completed + failed + cancelled + panicked + dropped + dead_lettered + returned`,
//! exactly, each item counted once by its final fate (a job that returns [`Stopped`] once its
//! token fired is [cancelled](QueueMetrics::cancelled), not failed).
//!
//! A handler that borrows its item ([`WorkQueueBuilder::build_jobs`]) gets a [`JobContext`]
//! (the queue's name, the jobs' token, the attempt number, a heartbeat, a scope per job), and
//! the queue keeps the item: a failed job is [retried](WorkQueueBuilder::retry) with a
//! [`Backoff`] that a stop interrupts, then given back by value as a
//! [dead letter](WorkQueueBuilder::on_dead_letter); a cancelled job's item is handed back. A
//! queue added with [`Service::liveness`] is a critical service: its workers beat per job and
//! while idle.
//!
#![cfg_attr(feature = "queue", doc = "```")]
#![cfg_attr(not(feature = "queue"), doc = "```ignore")]
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use threadhost::{FullMode, HostBuilder, WorkQueue};
//!
//! let unrun = Arc::new(Mutex::new(Vec::new()));
//! let keep = Arc::clone(&unrun);
//! let (queue, producer) = WorkQueue::builder("ingest")
//!     .capacity(100)
//!     .workers(2)
//!     .full_mode(FullMode::Block)
//!     .on_unrun(move |items: Vec<String>| keep.lock().unwrap().extend(items))
//!     .build(|line: String, token| {
//!         // A long job watches the jobs' token, which fires when the stop gives up draining.
//!         token.sleep(Duration::from_millis(1))?;
//!         log::info!("stored {line}");
//!         Ok(())
//!     })?;
//! let metrics = queue.handle();
//! let host = HostBuilder::new().add_service(queue).build()?;
//! host.start(Duration::from_secs(5))?;
//! for i in 0..10 {
//!     producer.send(format!("reading {i}"))?; // blocks while the queue is full
//! }
//! assert!(host.stop(Duration::from_secs(5)).is_clean()); // drains what is queued
//! let m = metrics.metrics();
//! assert_eq!(m.sent, m.completed + m.failed + m.cancelled + m.panicked + m.dropped + m.returned);
//! assert_eq!((m.completed, unrun.lock().unwrap().len()), (10, 0));
//! assert!(producer.send("too late".into()).is_err()); // closed: the item comes back
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Periodic services
//!
//! [`Periodic`] builds a timed service — .NET's `TimedHostedService` or `PeriodicTimer` loop,
//! done so that the usual traps cannot happen:
//!
//! - Fixed rate on absolute deadlines `origin + k·period`: a late wake-up never delays the
//!   next slot, so no drift accumulates.
//! - One thread: ticks never overlap. Slots that pass during a slow tick follow the
//!   [`MissedTick`] policy: [`Skip`](MissedTick::Skip) (the default: the next slot ahead,
//!   phase kept), [`Burst`](MissedTick::Burst) (catch up, at most `max` in a row) or
//!   [`Delay`](MissedTick::Delay) (run late once, then count from then).
//! - The first tick runs at once, after one period, or at an instant ([`FirstTick`]).
//! - A tick that returns an error or panics is logged and counted and the schedule goes on;
//!   [`TickFailure::Escalate`] hands it to the service's [`Policy`] instead.
//! - The wait is `token.wait_until(next_slot)`: a stop interrupts it at once, and a tick in
//!   progress sees its token fire.
//! - A final flush: a [`PeriodicService`] (a type with `tick` and `stop`, built with
//!   [`Periodic::build_service`]) has a stop hook that runs after the last tick, on the same
//!   thread, within the stop deadline ([`Context::deadline`]); an error, a panic or an
//!   overrun is reported like any service's.
//!
//! The [`Tick`] tells each call its index, the time it was due, its lateness, and how many
//! slots were missed before it.
//!
#![cfg_attr(feature = "periodic", doc = "```")]
#![cfg_attr(not(feature = "periodic"), doc = "```ignore")]
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use threadhost::{HostBuilder, MissedTick, Periodic, Tick};
//!
//! let count = Arc::new(AtomicU64::new(0));
//! let (ticked, ticks) = std::sync::mpsc::channel();
//! let counter = Arc::clone(&count);
//! let timer = Periodic::every(Duration::from_millis(10))
//!     .missed(MissedTick::Skip)
//!     .build("timed", move |tick: &Tick<'_>| {
//!         let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
//!         log::info!("Timed Hosted Service is working. Count: {n} ({:?} late)", tick.lateness());
//!         let _ = ticked.send(tick.scheduled());
//!         Ok(())
//!     })?;
//! let host = HostBuilder::new().add_service(timer).build()?;
//! host.start(Duration::from_secs(5))?;
//! let first = ticks.recv().unwrap();
//! let second = ticks.recv().unwrap();
//! // On the grid: a whole number of periods apart (one, unless a slot was skipped).
//! assert_eq!((second - first).as_nanos() % 10_000_000, 0);
//! assert!(host.stop(Duration::from_secs(5)).is_clean());
//!
//! // A zero period is an error naming the option.
//! let err = Periodic::every(Duration::ZERO).build("timed", |_: &Tick<'_>| Ok(())).unwrap_err();
//! assert!(err.to_string().contains("period of periodic service `timed`"));
//! # Ok::<(), threadhost::Error>(())
//! ```
//!
//! # Scoped services
//!
//! A host carries a typed registry: singletons ([`HostBuilder::singleton`], one `Arc<T>`
//! shared by every service and thread) and scoped factories ([`HostBuilder::scoped`]). A
//! service calls [`Context::create_scope`] for each unit of work — .NET's
//! `IServiceScopeFactory.CreateScope()` — and [`Scope::get`] creates a scoped value on first
//! use, returns the same instance for the rest of the scope, and drops every value, in reverse
//! creation order, when the scope ends (also on panic). A factory may get other services from
//! the scope. The returned references borrow the scope, so the compiler refuses a scoped value
//! that would outlive it. An unregistered type is [`Error::UnregisteredType`] naming the
//! type; a factory that needs its own type (directly or through others) is
//! [`Error::DependencyCycle`] naming the chain, never a deadlock.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use threadhost::{HostBuilder, StopSource};
//!
//! struct Database { opened: AtomicU32 }               // a singleton
//! struct Connection { id: u32 }                        // scoped: one per unit of work
//! struct Repository { connection_id: u32 }             // scoped, built on a Connection
//!
//! let db = Arc::new(Database { opened: AtomicU32::new(0) });
//! let done = StopSource::new();
//! let done_token = done.token();
//! let host = HostBuilder::new()
//!     .singleton(Arc::clone(&db))
//!     .scoped(|scope| {
//!         let db = scope.get::<Database>()?;
//!         Ok(Connection { id: db.opened.fetch_add(1, Ordering::SeqCst) })
//!     })
//!     .scoped(|scope| Ok(Repository { connection_id: scope.get::<Connection>()?.id }))
//!     .background("orders", move |ctx| {
//!         for unit in 0..3 {
//!             let scope = ctx.create_scope();
//!             let repository = scope.get::<Repository>()?;
//!             // The repository shares the scope's connection; each unit gets a new one.
//!             assert_eq!(repository.connection_id, scope.get::<Connection>()?.id);
//!             assert_eq!(repository.connection_id, unit);
//!         } // each scope ends here: Repository dropped, then Connection
//!         done.stop();
//!         ctx.token().wait();
//!         Ok(())
//!     })
//!     .build()?;
//! host.start(Duration::from_secs(5))?;
//! assert!(done_token.wait_timeout(Duration::from_secs(5)));
//! assert!(host.stop(Duration::from_secs(5)).is_clean());
//! assert_eq!(db.opened.load(Ordering::SeqCst), 3);
//! # Ok::<(), threadhost::Error>(())
//! ```
//!
//! A [`Registry`] can also be built on its own ([`Registry::builder`]) to test a service's
//! dependencies without a host.
//!
//! # Failure policy
//!
//! A background service that returns an error or panics is handled by its [`Policy`]:
//! [`StopHost`](Policy::StopHost) (the default, as .NET 6+: the host stops and
//! [`Host::run`] returns [`Error::ServiceFailed`]), [`Ignore`](Policy::Ignore), or
//! [`Restart`](Policy::Restart) with exponential backoff and a restart-intensity limit.
//! A panic is a failure like an error, with its message; it never takes down another service.
//! In a [group](#supervision-tree), a failure the policy gives up goes to the group.
//!
//! ```
//! use std::time::Duration;
//! use threadhost::{Error, HostBuilder};
//!
//! let result = HostBuilder::new()
//!     .shutdown_timeout(Duration::from_secs(5))
//!     .background("flaky", |_ctx| Err("disk full".into()))
//!     .build()?
//!     .run();
//! assert!(matches!(result, Err(Error::ServiceFailed { ref service, .. }) if &**service == "flaky"));
//! assert_eq!(threadhost::exit_code(&result), threadhost::EXIT_FAILURE);
//! # Ok::<(), threadhost::Error>(())
//! ```
//!
//! # Supervision tree
//!
//! A host is the root of a tree: [`Group`]s hold services and groups, start them in order,
//! stop them in reverse, and restart them by a [`Strategy`] — the failed child
//! ([`OneForOne`](Strategy::OneForOne), the default), all children
//! ([`OneForAll`](Strategy::OneForAll): a connection and the services that use it), or the
//! failed child and those started after it ([`RestForOne`](Strategy::RestForOne)) — at most
//! so many times within a window ([`Group::intensity`]); past it the group fails and its
//! parent's strategy applies, up to the host, which stops. Children are named by path
//! (`devices/plc-7/poller`) and can be added, stopped, restarted and removed while the host
//! runs, each change under a deadline and with the rollback and report of a host start or
//! stop; [`RestartType`]s say which children are restarted at all.
//!
//! ```
//! use std::time::Duration;
//! use threadhost::{Group, HostBuilder, Strategy};
//!
//! fn device(name: &str) -> Group {
//!     Group::new(name)
//!         .strategy(Strategy::OneForAll)
//!         .background("connection", |ctx| { ctx.token().wait(); Ok(()) })
//!         .background("poller", |ctx| { ctx.token().wait(); Ok(()) })
//! }
//!
//! let host = HostBuilder::new()
//!     .group("devices", |devices| {
//!         devices
//!             .intensity(10, Duration::from_secs(60))
//!             .add_group(device("plc-7"))
//!     })
//!     .build()?;
//! host.start(Duration::from_secs(5))?;
//!
//! // A device appears in the configuration, another goes away.
//! let handle = host.handle();
//! handle.add_group("devices", device("plc-9"), Duration::from_secs(5))?;
//! let report = handle.remove("devices/plc-7", Duration::from_secs(5))?;
//! assert!(report.is_clean(), "{report}");
//!
//! let snapshot = handle.snapshot();
//! assert_eq!(&*snapshot.group("devices").unwrap().children[0], "devices/plc-9");
//! assert!(snapshot.service("devices/plc-9/poller").unwrap().is_live());
//! assert!(host.stop(Duration::from_secs(5)).is_clean());
//! # Ok::<(), threadhost::Error>(())
//! ```
//!
//! # Console lifetime and exit codes
//!
//! [`HostBuilder::console_lifetime`] (opt-in; feature `termination`, on by default) makes
//! [`Host::run`] handle SIGINT, SIGTERM, SIGQUIT and SIGHUP (on Unix through signal-hook,
//! which tells them apart): SIGINT, SIGTERM and SIGQUIT request a graceful stop
//! ([`StopReason::Signal`], naming the signal); a second one while the host is stopping exits
//! the process at once with 128 + its number ([`EXIT_FORCED`], 130, for SIGINT; 143 for
//! SIGTERM), as does one after the host stopped. SIGHUP never stops: it requests a reload
//! ([`HostHandle::request_reload`], the services' [`Service::on_reload`] hooks). The console
//! lifetime takes these signals over even if the program had a disposition for one (a
//! warning names it); a program with its own signal handling leaves it off and calls
//! [`HostHandle::request_stop`] and [`HostHandle::request_reload`].
//!
//! [`exit_code`] maps what [`Host::run`] returned to the process exit code:
//!
//! | code | constant | when |
//! | --- | --- | --- |
//! | 0 | [`EXIT_OK`] | a graceful stop (also after a signal) |
//! | 1 | [`EXIT_FAILURE`] | a start failed, or a service failed under [`Policy::StopHost`] |
//! | 2 | [`EXIT_CONFIG`] | the host could not be built: a bad option, a duplicate name, a dependency error |
//! | 3 | [`EXIT_STOP_TIMEOUT`] | the stop overran its deadline ([`Error::StopTimeout`] names the services) |
//! | 130, 143, 131 | [`EXIT_FORCED`] (130) | a second SIGINT, SIGTERM, SIGQUIT: 128 + its number (the console lifetime exits by itself) |
//!
#![cfg_attr(feature = "termination", doc = "```no_run")]
#![cfg_attr(not(feature = "termination"), doc = "```ignore")]
//! use std::process::ExitCode;
//! use std::time::Duration;
//! use threadhost::HostBuilder;
//!
//! fn main() -> ExitCode {
//!     env_logger::init();
//!     let result = HostBuilder::new()
//!         .console_lifetime() // Ctrl-C, SIGTERM, SIGQUIT: a graceful stop; SIGHUP: a reload
//!         .shutdown_timeout(Duration::from_secs(10))
//!         .background("worker", |ctx| {
//!             while ctx.sleep(Duration::from_secs(1)).is_ok() {
//!                 log::info!("working");
//!             }
//!             Ok(())
//!         })
//!         .build()
//!         .and_then(|host| host.run()); // blocks until a signal, then stops
//!     ExitCode::from(threadhost::exit_code(&result))
//! }
//! ```
//!
//! The same mapping without signals:
//!
//! ```
//! use threadhost::{EXIT_CONFIG, EXIT_OK, HostBuilder};
//!
//! // A service stops its own host: a graceful stop.
//! let result = HostBuilder::new()
//!     .background("once", |ctx| { ctx.host().request_stop(); Ok(()) })
//!     .build()
//!     .and_then(|host| host.run());
//! assert_eq!(threadhost::exit_code(&result), EXIT_OK);
//!
//! // Two services with one name: the host cannot be built.
//! let result = HostBuilder::new()
//!     .background("twin", |_ctx| Ok(()))
//!     .background("twin", |_ctx| Ok(()))
//!     .build()
//!     .and_then(|host| host.run());
//! assert_eq!(threadhost::exit_code(&result), EXIT_CONFIG);
//! ```
//!
//! # Configuration from the environment
//!
//! Every [`HostOptions`] field can come from a `THREADHOST_*` variable
//! (`THREADHOST_SHUTDOWN_TIMEOUT=15s`, `THREADHOST_STARTUP_TIMEOUT`,
//! `THREADHOST_START_CONCURRENTLY`, `THREADHOST_STOP_CONCURRENTLY`, `THREADHOST_STACK_SIZE`,
//! `THREADHOST_FAILURE_POLICY`; [`HostOptions::apply_env`] lists the values).
//! [`HostBuilder::options_from_env`] applies the variables that are set over the options set
//! before it; options set after it win. Call it last to let operators override the code.
//! Without it the environment is never read. A bad value makes [`build`](HostBuilder::build)
//! fail with [`Error::InvalidOption`] naming the variable and the value ([`EXIT_CONFIG`]).
//! [`HostOptions::from_env`] and [`HostOptions::apply_env_with`] (your own lookup) do the
//! same on plain options.
//!
#![cfg_attr(feature = "env", doc = "```")]
#![cfg_attr(not(feature = "env"), doc = "```ignore")]
//! use std::time::Duration;
//! use threadhost::{Error, HostBuilder, HostOptions};
//!
//! let host = HostBuilder::new()
//!     .shutdown_timeout(Duration::from_secs(10)) // the code's default
//!     .options_from_env() // last: THREADHOST_SHUTDOWN_TIMEOUT, if set, wins
//!     .build()?;
//! # drop(host);
//!
//! // The same rules, reading from a closure instead of the process environment:
//! let var = "THREADHOST_SHUTDOWN_TIMEOUT";
//! let mut options = HostOptions::default();
//! options.apply_env_with(|name| (name == var).then(|| "15s".into()))?;
//! assert_eq!(options.shutdown_timeout, Duration::from_secs(15));
//! let err = options.apply_env_with(|name| (name == var).then(|| "15".into())).unwrap_err();
//! assert!(matches!(err, Error::InvalidOption { ref name, .. } if name == var)); // no unit
//! # Ok::<(), Error>(())
//! ```
//!
//! # Running under systemd
//!
//! [`HostBuilder::systemd`] (opt-in) speaks systemd's notify protocol for `Type=notify`
//! units: `READY=1` once every service started, `STOPPING=1` and `STATUS=` lines as the host
//! changes state, `EXTEND_TIMEOUT_USEC=` while a start or stop is within its own deadline,
//! and, with `WatchdogSec=`, `WATCHDOG=1` pings only while every *critical* service is live.
//! A service becomes critical with [`Service::liveness`] and proves it is live with
//! [`Context::heartbeat`]; [`HostSnapshot::not_live`] names the ones that are not. It is a
//! no-op when `NOTIFY_SOCKET` is unset (or off Unix), so the same binary runs anywhere. It is
//! built on the public state listeners ([`HostBuilder::on_state_change`]).
//!
#![cfg_attr(feature = "systemd", doc = "```no_run")]
#![cfg_attr(not(feature = "systemd"), doc = "```ignore")]
//! use std::process::ExitCode;
//! use std::time::Duration;
//! use threadhost::{HostBuilder, Service};
//!
//! fn main() -> ExitCode {
//!     env_logger::init();
//!     let worker = Service::background("worker", |ctx| {
//!         while ctx.sleep(Duration::from_secs(1)).is_ok() {
//!             ctx.heartbeat(); // live: the watchdog pings go on
//!         }
//!         Ok(())
//!     })
//!     .liveness(Duration::from_secs(10)); // critical: no beat for 10 s withholds the pings
//!     let result = HostBuilder::new()
//!         .console_lifetime() // systemd stops the unit with SIGTERM
//!         .systemd()
//!         .add_service(worker)
//!         .options_from_env() // e.g. Environment=THREADHOST_SHUTDOWN_TIMEOUT=15s
//!         .build()
//!         .and_then(|host| host.run());
//!     ExitCode::from(threadhost::exit_code(&result))
//! }
//! ```
//!
//! The README's "Running under systemd" has a unit file and a way to watch the messages
//! without systemd.
//!
//! # C API
//!
//! The library is also built as a cdylib and a staticlib with a hand-written header,
//! `include/threadhost.h`: the same host, services (C callbacks with a `void *user` and an
//! optional `destroy` called exactly once), periodic services, work queues of `void *` items,
//! stop tokens, snapshots and exit codes. Every entry point returns a `threadhost_status`
//! (`THREADHOST_OK` = 0), checks every pointer, catches every panic (`THREADHOST_PANIC`, never
//! an abort), and leaves a message for `threadhost_last_error_message`. The README's "Using
//! threadhost from C" has a complete program and its build line; `cargo test` compiles and runs
//! the C and C++ tests against the freshly built library.
//!
//! ```c
//! threadhost_builder *b = threadhost_builder_new();
//! threadhost_builder_add_background(b, "worker", run, &state, NULL);
//! threadhost_host *host = NULL;
//! if (threadhost_builder_build(b, &host) == THREADHOST_OK) {
//!     int code = threadhost_exit_code(threadhost_host_run(host));
//!     threadhost_host_free(host);
//! }
//! ```
//!
//! # Differences from .NET's Generic Host
//!
//! - Threads, not tasks: each service owns an OS thread; a start hook cannot block the host.
//! - Deadlines, not tokens with timeouts; a stop that overruns is reported per service, and
//!   the overrunning thread is detached and counted instead of awaited forever.
//! - A failed start rolls back the services that started; .NET stops nothing.
//! - A stop requested during start skips the services not yet started and is a clean stop.
//! - A worker failure under `StopHost` makes [`Host::run`] an error (as .NET 11 finally does).
//! - Restart policies and declared dependencies exist; .NET has neither.
//! - The `stopping` event fires when a stop is requested, before any `stopping` hook, on
//!   every path (in .NET the order depends on who triggered the stop).
//!
//! # Cargo features
//!
//! Every feature but `http` is on by default. `default-features = false` keeps the core — [`Host`],
//! [`HostBuilder`], stop tokens, [`Deadline`]s, hosted and background services, failure
//! policies and restarts, the scoped services registry, snapshots and heartbeats, exit codes —
//! and each feature named adds back one part:
//!
//! | feature | what it adds | default |
//! | --- | --- | --- |
//! | `termination` | [`HostBuilder::console_lifetime`]: SIGINT, SIGTERM, SIGHUP handled by [`Host::run`] (the `ctrlc` dependency) | on |
//! | `systemd` | [`HostBuilder::systemd`]: systemd's notify protocol and watchdog (turns on `listeners`) | on |
//! | `env` | the `THREADHOST_*` variables: [`HostOptions::from_env`], [`apply_env`](HostOptions::apply_env), [`apply_env_with`](HostOptions::apply_env_with), [`HostBuilder::options_from_env`] | on |
//! | `listeners` | [`HostBuilder::on_state_change`], [`HostEvent`], [`StateChange`] and the listeners' thread (the `crossbeam-channel` dependency) | on |
//! | `queue` | [`WorkQueue`], [`TaskQueue`], [`Producer`] and the rest of the work queue (the `crossbeam-channel` dependency) | on |
//! | `periodic` | [`Periodic`], [`Tick`], [`MissedTick`] and the rest of the periodic services | on |
//! | `http` | `HostBuilder::http_endpoint` (with `HttpEndpoint` and `HostHandle::http_addr`): `/livez`, `/readyz`, `/metrics` (Prometheus), `/status` (JSON) over HTTP, a service of the host (the `httparse`, `prometheus-client` and `serde_json` dependencies) | off |
//!
//! The C library (`threadhost-capi`) has the same features but `listeners` (no C function
//! uses it; `systemd` turns it on); its functions exist in every build, and one whose feature
//! was left out returns `THREADHOST_INVALID_STATE`, saying which feature it needs.

#![doc(test(no_crate_inject, attr(deny(warnings))))]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod deadline;
mod error;
mod failure;
mod group;
mod host;
#[cfg(feature = "http")]
mod http;
mod lifetime;
mod logging;
mod panic;
#[cfg(feature = "periodic")]
mod periodic;
#[cfg(feature = "queue")]
mod queue;
mod report;
mod scope;
mod service;
mod state;
mod stop;
mod supervise;
mod sync;
mod text;
mod thread;

/// The guides' Rust blocks as doctests, so that their code keeps up with the API. They use
/// every feature, so they are compiled only with every feature on.
#[cfg(all(
    doctest,
    feature = "termination",
    feature = "systemd",
    feature = "env",
    feature = "listeners",
    feature = "queue",
    feature = "periodic"
))]
mod guides {
    /// Every Rust block of PORTING.md (the .NET porting guide), compiled and run.
    #[doc = include_str!("../PORTING.md")]
    pub struct PortingGuide;

    /// Every Rust block of README.md (`no_run`: they run until Ctrl-C), compiled.
    #[doc = include_str!("../README.md")]
    pub struct Readme;
}

pub use deadline::Deadline;
pub use error::{BoxError, Error, ServiceResult};
pub use failure::Failure;
pub use group::Group;
pub use host::{Host, HostBuilder, HostHandle, HostOptions};
#[cfg(feature = "listeners")]
#[cfg_attr(docsrs, doc(cfg(feature = "listeners")))]
pub use host::{HostEvent, StateChange};
pub use host::{ReloadEntry, ReloadOutcome, ReloadReport};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::HttpEndpoint;
pub use lifetime::{EXIT_CONFIG, EXIT_FAILURE, EXIT_FORCED, EXIT_OK, EXIT_STOP_TIMEOUT, exit_code};
#[cfg(feature = "periodic")]
#[cfg_attr(docsrs, doc(cfg(feature = "periodic")))]
pub use periodic::{
    FirstTick, MissedTick, Periodic, PeriodicService, PeriodicStats, Tick, TickFailure,
};
#[cfg(feature = "queue")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue")))]
pub use queue::{
    FullMode, JobContext, JobTask, Producer, QueueHandle, QueueMetrics, QueueReport, SendError,
    SendTimeoutError, Task, TaskQueue, TrySendError, WorkQueue, WorkQueueBuilder,
};
pub use report::{Outcome, ServiceReport, StopReport};
pub use scope::{Registry, RegistryBuilder, Scope};
pub use service::{BackgroundService, Context, HostedService, Service};
pub use state::{GroupStatus, HostSnapshot, HostState, ServiceState, ServiceStatus};
pub use stop::{Registration, StopGuard, StopReason, StopSource, StopToken, Stopped};
pub use supervise::{
    Backoff, MAX_RESTARTS, MIN_BACKOFF, Policy, RestartType, Strategy, UNLIMITED_RESTARTS,
};
