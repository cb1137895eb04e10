//! Shared helpers for the integration tests: durations, probes, drop counters, gates that
//! hold a "hung" service until the test releases it, an event log, and timing assertions.
//!
//! These helpers use only `std` primitives, never threadhost's own, so that a test of the stop
//! token or the host does not depend on the thing it tests.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use threadhost::{
    BackgroundService, Context, Host, HostBuilder, HostHandle, HostedService, Service,
    ServiceResult, ServiceState, StopReport,
};

/// `Duration::from_millis(n)`.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How long a test waits for something that should happen "at once": generous, for a loaded
/// 2-core machine. Reaching it means the feature is broken, not slow.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// The slack allowed past a deadline on a loaded machine.
pub(crate) const MARGIN: Duration = Duration::from_millis(700);

/// The deadline a test gives a `start` or `stop` of well-behaved services: far more than
/// they need, so reaching it means a bug (it is also the bound some tests check against).
pub(crate) const SECS5: Duration = Duration::from_secs(5);

/// Spawns a named test thread (the library's own threads are `th:`-prefixed; these are not).
#[allow(clippy::disallowed_methods)]
pub(crate) fn spawn<T, F>(name: &str, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("test:{name}"))
        .spawn(f)
        .expect("spawn a test thread")
}

/// Simulates slow work that ignores every token (a badly behaved service).
#[allow(clippy::disallowed_methods)]
pub(crate) fn busy(d: Duration) {
    std::thread::sleep(d);
}

/// Runs `f` and returns its result with the time it took.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let began = Instant::now();
    let r = f();
    (r, began.elapsed())
}

/// Asserts that `elapsed` is at most `limit`, naming `what`.
#[track_caller]
pub(crate) fn assert_within(elapsed: Duration, limit: Duration, what: &str) {
    assert!(
        elapsed <= limit,
        "{what} took {elapsed:?}, more than the allowed {limit:?}"
    );
}

/// Runs `f`, asserts it returned within `limit`, and returns its result.
#[track_caller]
pub(crate) fn within<R>(limit: Duration, what: &str, f: impl FnOnce() -> R) -> R {
    let (r, elapsed) = timed(f);
    assert_within(elapsed, limit, what);
    r
}

/// Checks `pred` every 2 ms until it holds; only for states that no event signals (e.g. a
/// service state in a snapshot, which the host updates just after a reply). Panics after
/// [`PATIENCE`].
#[track_caller]
pub(crate) fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let began = Instant::now();
    while !pred() {
        assert!(
            began.elapsed() < PATIENCE,
            "{what}: not reached within {PATIENCE:?}"
        );
        busy(ms(2));
    }
}

/// Calls `f` every 2 ms until it returns `Some`, and returns that; like [`eventually`], only
/// for what no event signals (e.g. a queue's report, ready once its stop hook returned).
/// Panics after [`PATIENCE`].
#[track_caller]
pub(crate) fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let began = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "{what}: not reached within {PATIENCE:?}"
        );
        busy(ms(2));
    }
}

/// Waits until the host's snapshot shows service `name` in `state` (the host offers no
/// event for a service's state change). Panics after [`PATIENCE`].
#[track_caller]
pub(crate) fn await_state(handle: &HostHandle, name: &str, state: ServiceState) {
    eventually(&format!("{name} becomes {state}"), || {
        handle.snapshot().service(name).map(|s| s.state) == Some(state)
    });
}

/// A settable flag that can be waited on: set by the code under test, awaited by the test.
#[derive(Clone, Default)]
pub(crate) struct Probe {
    inner: Arc<(Mutex<usize>, Condvar)>,
}

impl Probe {
    pub(crate) fn new() -> Probe {
        Probe::default()
    }

    /// Sets the flag (counts the calls) and wakes every waiter.
    pub(crate) fn set(&self) {
        let (lock, cond) = &*self.inner;
        *lock.lock().unwrap() += 1;
        cond.notify_all();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.count() > 0
    }

    /// How many times `set` was called.
    pub(crate) fn count(&self) -> usize {
        *self.inner.0.lock().unwrap()
    }

    /// Waits up to `timeout` for the flag; `true` if set.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let (guard, _) = cond
            .wait_timeout_while(guard, timeout, |n| *n == 0)
            .unwrap();
        *guard > 0
    }

    /// Waits up to [`PATIENCE`] and panics naming `what` if the flag was not set.
    #[track_caller]
    pub(crate) fn expect(&self, what: &str) {
        assert!(
            self.wait(PATIENCE),
            "{what}: probe not set within {PATIENCE:?}"
        );
    }

    /// A value that sets this probe when it is dropped: captured by a closure, it tells when
    /// the last owner of the closure (e.g. the last worker thread of a queue) let go of it.
    pub(crate) fn set_on_drop(&self) -> SetOnDrop {
        SetOnDrop(self.clone())
    }
}

/// Sets its [`Probe`] on drop.
pub(crate) struct SetOnDrop(Probe);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A gate that holds threads until the test opens it: a "hung" service blocks on it, ignoring
/// its stop token, and the test opens it at the end so no thread outlives the test for long.
#[derive(Clone, Default)]
pub(crate) struct Gate {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate::default()
    }

    /// Blocks until the gate is opened (ignores every stop token: that is the point).
    pub(crate) fn wait(&self) {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let _open = cond.wait_while(guard, |open| !*open).unwrap();
    }

    pub(crate) fn open(&self) {
        let (lock, cond) = &*self.inner;
        *lock.lock().unwrap() = true;
        cond.notify_all();
    }

    /// A guard that opens the gate when dropped, also when the test panics.
    pub(crate) fn opener(&self) -> GateOpener {
        GateOpener(self.clone())
    }
}

/// Opens its [`Gate`] on drop.
pub(crate) struct GateOpener(Gate);

impl Drop for GateOpener {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Counts drops of the values it hands out.
#[derive(Clone, Default)]
pub(crate) struct DropCounter {
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    pub(crate) fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A value whose drop is counted.
    pub(crate) fn token(&self) -> Counted {
        Counted(Arc::clone(&self.drops))
    }

    pub(crate) fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

/// Increments its [`DropCounter`] when dropped.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One recorded event: what happened, and the name of the thread it happened on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) what: String,
    pub(crate) thread: Option<String>,
}

/// A log of events recorded from any thread, in the order they happened (one mutex).
#[derive(Clone, Default)]
pub(crate) struct Events {
    inner: Arc<(Mutex<Vec<Event>>, Condvar)>,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events::default()
    }

    /// Records `what` with the current thread's name.
    pub(crate) fn push(&self, what: impl Into<String>) {
        let event = Event {
            what: what.into(),
            thread: std::thread::current().name().map(str::to_owned),
        };
        let (lock, cond) = &*self.inner;
        lock.lock().unwrap().push(event);
        cond.notify_all();
    }

    /// Every event so far.
    pub(crate) fn all(&self) -> Vec<Event> {
        self.inner.0.lock().unwrap().clone()
    }

    /// The `what` of every event so far.
    pub(crate) fn names(&self) -> Vec<String> {
        self.all().into_iter().map(|e| e.what).collect()
    }

    /// The `what` of every event starting with `prefix`.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|w| w.starts_with(prefix))
            .collect()
    }

    pub(crate) fn contains(&self, what: &str) -> bool {
        self.names().iter().any(|w| w == what)
    }

    /// Position of the first event equal to `what`.
    pub(crate) fn position(&self, what: &str) -> Option<usize> {
        self.names().iter().position(|w| w == what)
    }

    /// Waits up to `timeout` for an event equal to `what`; `true` if it came. For "this does
    /// not happen within that time" as much as for "it does".
    pub(crate) fn seen_within(&self, what: &str, timeout: Duration) -> bool {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let (_guard, waited) = cond
            .wait_timeout_while(guard, timeout, |v| !v.iter().any(|e| e.what == what))
            .unwrap();
        !waited.timed_out()
    }

    /// Waits until an event equal to `what` is recorded; panics after [`PATIENCE`].
    #[track_caller]
    pub(crate) fn wait_for(&self, what: &str) {
        let (lock, cond) = &*self.inner;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = cond
            .wait_timeout_while(guard, PATIENCE, |v| !v.iter().any(|e| e.what == what))
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "event `{what}` not seen within {PATIENCE:?}; got {:?}",
            guard.iter().map(|e| &e.what).collect::<Vec<_>>()
        );
    }
}

/// Asserts that `a` appears before `b` in `log`.
#[track_caller]
pub(crate) fn assert_before<T: PartialEq + Debug>(log: &[T], a: &T, b: &T) {
    let pa = log.iter().position(|x| x == a);
    let pb = log.iter().position(|x| x == b);
    match (pa, pb) {
        (Some(pa), Some(pb)) => assert!(pa < pb, "{a:?} should come before {b:?} in {log:?}"),
        _ => panic!("{a:?} or {b:?} missing from {log:?}"),
    }
}

/// `n` parties meet: each `arrive` waits (up to a timeout) until all `n` arrived. Proves that
/// hooks run concurrently: run one after another, the first times out.
#[derive(Clone)]
pub(crate) struct Rendezvous {
    inner: Arc<(Mutex<usize>, Condvar)>,
    n: usize,
}

impl Rendezvous {
    pub(crate) fn new(n: usize) -> Rendezvous {
        Rendezvous {
            inner: Arc::new((Mutex::new(0), Condvar::new())),
            n,
        }
    }

    /// `true` if all parties arrived within `timeout`.
    pub(crate) fn arrive(&self, timeout: Duration) -> bool {
        let (lock, cond) = &*self.inner;
        let mut count = lock.lock().unwrap();
        *count += 1;
        cond.notify_all();
        let (count, _) = cond
            .wait_timeout_while(count, timeout, |c| *c < self.n)
            .unwrap();
        *count >= self.n
    }
}

/// What a [`Rec`] hook does after recording itself.
#[derive(Clone)]
pub(crate) enum Action {
    /// Return an error.
    Fail,
    /// Panic.
    Panic,
    /// `ctx.host().request_stop()`, then go on.
    RequestStop,
    /// Block on the gate, ignoring the stop token (a hung hook).
    Block(Gate),
    /// Work this long, ignoring the stop token (a slow hook).
    Busy(Duration),
    /// Wait on the service's token (up to `PATIENCE`); record `<name>:<hook>:token`.
    WaitToken,
    /// Meet the others; fail if they do not come within the duration.
    Meet(Rendezvous, Duration),
    /// Set the probe.
    Signal(Probe),
    /// Record `<name>:<hook>:<host state>`.
    RecordState,
    /// Record `<name>:<hook>:stopping-event=<fired>`: whether the host's `stopping` lifetime
    /// event had fired when the hook ran.
    RecordStoppingEvent,
    /// Call this (e.g. stop the host from its own thread).
    Call(Arc<dyn Fn() + Send + Sync>),
    /// Record `<name>:<hook>:done`: the actions before it have finished (a hook's end).
    Done,
}

/// A recording service: every hook (hosted or background) records `<name>:<hook>` in the
/// event log, with its thread's name, then performs the actions registered for that hook.
/// As a background service, its body records `<name>:run`, performs the `run` actions (or,
/// with none, waits for its token), then records `<name>:exit`.
pub(crate) struct Rec {
    name: String,
    events: Events,
    actions: Vec<(&'static str, Action)>,
}

impl Rec {
    pub(crate) fn new(name: &str, events: &Events) -> Rec {
        Rec {
            name: name.to_owned(),
            events: events.clone(),
            actions: Vec::new(),
        }
    }

    /// Adds `action` to `hook` ("starting", "start", …, "run").
    pub(crate) fn on(mut self, hook: &'static str, action: Action) -> Rec {
        self.actions.push((hook, action));
        self
    }

    fn hook(&mut self, hook: &'static str, ctx: &Context) -> ServiceResult {
        self.events.push(format!("{}:{hook}", self.name));
        self.act(hook, ctx)
    }

    fn act(&mut self, hook: &'static str, ctx: &Context) -> ServiceResult {
        for (h, action) in &self.actions {
            if *h != hook {
                continue;
            }
            match action {
                Action::Fail => {
                    return Err(format!("{} failed in {hook} on purpose", self.name).into());
                }
                Action::Panic => panic!("{} panicked in {hook} on purpose", self.name),
                Action::RequestStop => ctx.host().request_stop(),
                Action::Block(gate) => gate.wait(),
                Action::Busy(d) => busy(*d),
                Action::WaitToken => {
                    if ctx.token().wait_timeout(PATIENCE) {
                        self.events.push(format!("{}:{hook}:token", self.name));
                    }
                }
                Action::Meet(r, timeout) => {
                    if !r.arrive(*timeout) {
                        return Err(format!("{}: nobody met me in {hook}", self.name).into());
                    }
                }
                Action::Signal(p) => p.set(),
                Action::RecordState => {
                    self.events
                        .push(format!("{}:{hook}:{}", self.name, ctx.host().state()))
                }
                Action::Call(f) => f(),
                Action::Done => self.events.push(format!("{}:{hook}:done", self.name)),
                Action::RecordStoppingEvent => self.events.push(format!(
                    "{}:{hook}:stopping-event={}",
                    self.name,
                    ctx.host().stopping().is_stopped()
                )),
            }
        }
        Ok(())
    }
}

impl HostedService for Rec {
    fn starting(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("starting", ctx)
    }
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("start", ctx)
    }
    fn started(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("started", ctx)
    }
    fn stopping(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("stopping", ctx)
    }
    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("stop", ctx)
    }
    fn stopped(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("stopped", ctx)
    }
}

impl BackgroundService for Rec {
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        self.hook("start", ctx)
    }
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        self.events.push(format!("{}:run", self.name));
        let result = if self.actions.iter().any(|(h, _)| *h == "run") {
            self.act("run", ctx)
        } else {
            ctx.token().wait();
            Ok(())
        };
        self.events.push(format!("{}:exit", self.name));
        result
    }
}

/// The events of `log` that belong to service `name`, without the prefix.
pub(crate) fn hooks_of(log: &Events, name: &str) -> Vec<String> {
    let prefix = format!("{name}:");
    log.names()
        .into_iter()
        .filter_map(|w| w.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// The text of a documentation file at the root of the repository (`README.md`, ...).
pub(crate) fn doc_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every quote in `text` that begins with `start` and ends at the next `end`, with `start`
/// kept and `end` left out, and each run of whitespace (a line break in Markdown prose) made
/// one space: what a reader sees.
pub(crate) fn doc_quotes(text: &str, start: &str, end: &str) -> Vec<String> {
    let mut quotes = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(start) {
        let from = &rest[at..];
        let len = from[start.len()..]
            .find(end)
            .unwrap_or_else(|| panic!("a quote `{start}...` is not closed by `{end}`"))
            + start.len();
        quotes.push(from[..len].split_whitespace().collect::<Vec<_>>().join(" "));
        rest = &from[len + end.len()..];
    }
    quotes
}

/// A background body that waits for its token, then returns `Ok`: a well-behaved service.
pub(crate) fn idle(ctx: &Context) -> ServiceResult {
    ctx.token().wait();
    Ok(())
}

/// A background service named `name` whose body is [`idle`].
pub(crate) fn idle_service(name: &str) -> Service {
    Service::background(name, idle)
}

/// An [`idle_service`] whose reload hook prints `hook: reload <name> ran` to stderr (for the
/// real-process tests, which read the child's stderr).
#[allow(clippy::print_stderr)] // the child's stderr is what its parent reads
pub(crate) fn reloading_service(name: &str) -> Service {
    idle_service(name).on_reload(|ctx| {
        eprintln!("hook: reload {} ran", ctx.name());
        Ok(())
    })
}

/// An [`idle_service`] whose reload hook prints `hook: reload <name> ran (<n>)` for its n-th
/// call, and fails with `error` on its second.
#[allow(clippy::print_stderr)] // the child's stderr is what its parent reads
pub(crate) fn failing_on_second_reload(name: &str, error: &'static str) -> Service {
    let calls = AtomicUsize::new(0);
    idle_service(name).on_reload(move |ctx| {
        let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!("hook: reload {} ran ({n})", ctx.name());
        if n == 2 {
            return Err(error.into());
        }
        Ok(())
    })
}

/// A hosted service whose hooks all succeed at once.
pub(crate) struct Noop;

impl HostedService for Noop {
    fn start(&mut self, _ctx: &Context) -> ServiceResult {
        Ok(())
    }
    fn stop(&mut self, _ctx: &Context) -> ServiceResult {
        Ok(())
    }
}

/// Builds `builder` and starts the host (deadline [`SECS5`]); panics if either fails.
#[track_caller]
pub(crate) fn start_host(builder: HostBuilder) -> Host {
    let host = builder.build().expect("build the host");
    host.start(SECS5).expect("start the host");
    host
}

/// A started host around one service (e.g. a queue: `start_host_around(queue)`).
#[track_caller]
pub(crate) fn start_host_around(service: impl Into<Service>) -> Host {
    start_host(HostBuilder::new().add_service(service))
}

/// Stops `host` (deadline [`SECS5`]) and asserts the stop was clean.
#[track_caller]
pub(crate) fn stop_clean(host: &Host) {
    let _report = clean_stop_report(host);
}

/// Stops `host` (deadline [`SECS5`]), asserts the stop was clean, and returns the report.
#[track_caller]
pub(crate) fn clean_stop_report(host: &Host) -> StopReport {
    let report = host.stop(SECS5);
    assert!(report.is_clean(), "{report}");
    report
}

/// The outcome of service `name` in `report`; panics naming it if it is missing.
#[track_caller]
pub(crate) fn outcome_of<'a>(report: &'a StopReport, name: &str) -> &'a threadhost::Outcome {
    &report
        .service(name)
        .unwrap_or_else(|| panic!("{name} missing from {report}"))
        .outcome
}

/// A background body that requests the stop of its host and returns: a one-shot job that
/// ends the host.
pub(crate) fn stop_own_host(ctx: &Context) -> ServiceResult {
    ctx.host().request_stop();
    Ok(())
}

/// A background body that waits for its token, then stores the token's stop reason in the
/// returned slot.
pub(crate) fn reason_seen() -> (
    Arc<Mutex<Option<threadhost::StopReason>>>,
    impl FnMut(&Context) -> ServiceResult + Send + 'static,
) {
    let seen = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&seen);
    let body = move |ctx: &Context| {
        ctx.token().wait();
        *slot.lock().unwrap() = ctx.token().reason();
        Ok(())
    };
    (seen, body)
}

/// A builder with one recording background service ([`Rec`]) per name, in order.
pub(crate) fn background(names: &[&str], log: &Events) -> HostBuilder {
    names.iter().fold(HostBuilder::new(), |b, n| {
        b.background_service(n, Rec::new(n, log))
    })
}

/// Prepares the command of a child process: none of [`ENV_VARS`] but those in `vars`.
pub(crate) fn child_env(cmd: &mut std::process::Command, vars: &[(&str, &str)]) {
    for var in ENV_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
}

/// A builder with one recording hosted service ([`Rec`]) per name, in order.
pub(crate) fn hosted(names: &[&str], log: &Events) -> HostBuilder {
    names
        .iter()
        .fold(HostBuilder::new(), |b, n| b.hosted(n, Rec::new(n, log)))
}

/// The services in `log` that recorded `hook` (e.g. every `…:start`), in order.
pub(crate) fn who(log: &Events, hook: &str) -> Vec<String> {
    let suffix = format!(":{hook}");
    log.names()
        .into_iter()
        .filter_map(|w| w.strip_suffix(&suffix).map(str::to_owned))
        .filter(|w| !w.contains(':'))
        .collect()
}

/// A tiny deterministic PRNG (xorshift64*), so that a failing trial can be replayed from its
/// seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index in `0..len`.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

/// Every environment variable `HostOptions::from_env` reads: a child process is spawned
/// without them unless the test sets them.
pub(crate) const ENV_VARS: [&str; 7] = [
    "THREADHOST_SHUTDOWN_TIMEOUT",
    "THREADHOST_STARTUP_TIMEOUT",
    "THREADHOST_START_CONCURRENTLY",
    "THREADHOST_STOP_CONCURRENTLY",
    "THREADHOST_STACK_SIZE",
    "THREADHOST_FAILURE_POLICY",
    "THREADHOST_RELOAD_TIMEOUT",
];

/// Sends signal `sig` (a name: `TERM`, `INT`, …) to process `pid` with `kill -s`.
#[track_caller]
pub(crate) fn kill(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {sig} {pid} failed");
}

/// A handler for a `WorkQueue<u64>` that holds each job until the test lets one go:
/// [`JobGate::started`] tells which job began, [`JobGate::release`] ends one job (those not
/// yet begun included: releases are counted). Jobs ignore their token.
pub(crate) struct JobGate {
    release: std::sync::mpsc::SyncSender<()>,
    started: std::sync::mpsc::Receiver<u64>,
}

impl JobGate {
    /// The gate and the handler to build the queue with.
    pub(crate) fn new() -> (
        JobGate,
        impl Fn(u64, &threadhost::StopToken) -> ServiceResult,
    ) {
        let (release, released) = std::sync::mpsc::sync_channel::<()>(1000);
        let released = Mutex::new(released);
        let (started_tx, started) = std::sync::mpsc::channel::<u64>();
        let started_tx = Mutex::new(started_tx);
        let handler = move |x: u64, _token: &threadhost::StopToken| {
            started_tx.lock().unwrap().send(x).unwrap();
            released.lock().unwrap().recv().unwrap();
            Ok(())
        };
        (JobGate { release, started }, handler)
    }

    /// Waits for the next job to begin and returns its item.
    pub(crate) fn started(&self) -> u64 {
        self.started
            .recv_timeout(PATIENCE)
            .expect("a job begins within PATIENCE")
    }

    /// Lets `n` jobs finish.
    pub(crate) fn release(&self, n: usize) {
        for _ in 0..n {
            self.release.send(()).unwrap();
        }
    }
}

/// A background service for supervision tests. It records `<name>:start` each time it is
/// started, then runs: once the host has started, it fails (`<name>:fail`) or completes
/// (`<name>:done`) as long as it has such endings left, else it waits for its token and
/// records `<name>:stopped`.
pub(crate) struct Flaky {
    name: String,
    events: Events,
    /// What its next runs do: `false` fails, `true` completes; empty: wait for the token.
    endings: std::collections::VecDeque<bool>,
}

impl Flaky {
    /// A service that fails its first `fails` runs.
    pub(crate) fn failing(name: &str, events: &Events, fails: usize) -> Flaky {
        Flaky {
            name: name.to_owned(),
            events: events.clone(),
            endings: std::iter::repeat_n(false, fails).collect(),
        }
    }

    /// A service that completes (`Ok` before being stopped) its first `done` runs.
    pub(crate) fn completing(name: &str, events: &Events, done: usize) -> Flaky {
        Flaky {
            name: name.to_owned(),
            events: events.clone(),
            endings: std::iter::repeat_n(true, done).collect(),
        }
    }
}

impl BackgroundService for Flaky {
    fn start(&mut self, _ctx: &Context) -> ServiceResult {
        self.events.push(format!("{}:start", self.name));
        Ok(())
    }

    fn run(&mut self, ctx: &Context) -> ServiceResult {
        // Every start hook of the host's start has returned before a run ends.
        ctx.host().started().wait();
        match self.endings.pop_front() {
            Some(false) => {
                self.events.push(format!("{}:fail", self.name));
                Err(format!("{} failed on purpose", self.name).into())
            }
            Some(true) => {
                self.events.push(format!("{}:done", self.name));
                Ok(())
            }
            None => {
                ctx.token().wait();
                self.events.push(format!("{}:stopped", self.name));
                Ok(())
            }
        }
    }
}

/// `true` if `host`'s lifecycle lock is free (not held, by this thread or for long): a helper
/// thread reads the stop reason, which takes the lock. Probes that user code (a `Drop`, a
/// `Display`, a logger) never runs under it.
pub(crate) fn lock_is_free(host: &HostHandle) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let host = host.clone();
    let _helper = spawn("lock-probe", move || {
        let _ = host.stop_reason();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(3)).is_ok()
}

/// How many threads of this process have a name (comm, at most 15 bytes) starting with
/// `prefix` (Linux; 0 elsewhere).
pub(crate) fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|c| c.trim_end().starts_with(prefix))
        .count()
}

/// An HTTP response as a test client saw it: the status, the head (status line and
/// headers) and the body.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

/// Sends `raw` to `addr` over a new connection and reads the response until the server
/// closes it (every read bounded by [`PATIENCE`]). Panics if the connection fails or the
/// response is not HTTP.
pub(crate) fn http_raw(addr: std::net::SocketAddr, raw: &[u8]) -> HttpResponse {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, PATIENCE)
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(raw).unwrap();
    http_read(&mut tcp)
}

/// Reads a whole response from `tcp`, until the server closes it.
pub(crate) fn http_read(tcp: &mut std::net::TcpStream) -> HttpResponse {
    use std::io::Read;
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("reading a response: {e} (read so far: {bytes:?})"));
    let text = String::from_utf8(bytes).expect("a UTF-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// What a client got from [`http_fetch`].
#[derive(Debug)]
pub(crate) enum Fetched {
    /// A whole response: its status and body, as long as its `Content-Length` says.
    Whole(u16, String),
    /// The connection was refused.
    Refused,
    /// Nothing, then a close or a reset.
    Closed,
    /// Some bytes, then the end, short of what the head promised (or no head at all).
    Partial(String),
    /// No end within [`PATIENCE`].
    Hung,
}

/// `GET path` on `addr`, telling apart every way the exchange can end (where
/// [`http_get`] panics on all but a whole response): for a server that may be stopping.
pub(crate) fn http_fetch(addr: std::net::SocketAddr, path: &str) -> Fetched {
    use std::io::{ErrorKind, Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect_timeout(&addr, PATIENCE) else {
        return Fetched::Refused;
    };
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    if tcp.write_all(request.as_bytes()).is_err() {
        return Fetched::Closed;
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Fetched::Hung;
            }
            Err(_) => break, // a reset ends what was read
        }
    }
    if bytes.is_empty() {
        return Fetched::Closed;
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Fetched::Partial(format!("no end of head in {} bytes", bytes.len()));
    };
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: Option<usize> = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    });
    match length {
        Some(n) if n == body.len() => Fetched::Whole(status, body.to_owned()),
        Some(n) => Fetched::Partial(format!("status {status}: {} of {n} body bytes", body.len())),
        None => Fetched::Partial(format!("no Content-Length in {head:?}")),
    }
}

/// `true` if nothing listens on `addr` any more (a connection is refused).
pub(crate) fn port_closed(addr: std::net::SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, PATIENCE).is_err()
}

/// An endpoint on a free loopback port, named `name`, whose read and request timeouts (a
/// minute) outlast any test: a slow client is cut off only by the host's stop.
/// A borrowing job handler (`WorkQueueBuilder::build_jobs`) whose items ≡ 1 (mod 3) always
/// fail, ≡ 2 always panic, and the others complete: every fate in one queue.
#[cfg(feature = "queue")]
pub(crate) fn flaky(item: &mut u64, _job: &threadhost::JobContext<'_>) -> ServiceResult {
    match *item % 3 {
        1 => Err(format!("item {item} refused").into()),
        2 => panic!("item {item} panicked"),
        _ => Ok(()),
    }
}

#[cfg(feature = "http")]
pub(crate) fn patient_endpoint(name: &str) -> threadhost::HttpEndpoint {
    let minute = Duration::from_secs(60);
    threadhost::HttpEndpoint::new("127.0.0.1:0")
        .service_name(name)
        .read_timeout(minute)
        .request_timeout(minute)
}

/// The HTTP endpoint's address, once its service started.
#[cfg(feature = "http")]
pub(crate) fn http_addr_of(handle: &HostHandle) -> std::net::SocketAddr {
    poll("the endpoint to listen", || handle.http_addr())
}

/// `GET path` on `addr`.
pub(crate) fn http_get(addr: std::net::SocketAddr, path: &str) -> HttpResponse {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}
