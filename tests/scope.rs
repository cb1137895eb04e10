//! Scoped services: the typed registry (singletons, scoped factories) and `Scope` lifetimes.

// The memory test prints its VmRSS figures (visible with `--nocapture`).
#![allow(clippy::print_stdout)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SECS5, start_host, stop_clean};
use threadhost::{Error, Failure, HostBuilder, Registry, Scope};

/// Records events ("new A", "drop A") in order; shared by the values under test.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn drops(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.starts_with("drop "))
            .collect()
    }
}

/// A scoped value that journals its creation and drop, with an instance id.
struct Tracked {
    name: &'static str,
    id: usize,
    journal: Journal,
}

impl Tracked {
    fn new(name: &'static str, journal: &Journal) -> Tracked {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        journal.push(format!("new {name}"));
        Tracked {
            name,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            journal: journal.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.journal.push(format!("drop {}", self.name));
    }
}

// Distinct types, registered separately.
struct A(Tracked);
struct B(#[allow(dead_code)] Tracked);
struct C(#[allow(dead_code)] Tracked);

fn registry_abc(journal: &Journal) -> Registry {
    let (ja, jb, jc) = (journal.clone(), journal.clone(), journal.clone());
    Registry::builder()
        .scoped(move |_| Ok(A(Tracked::new("A", &ja))))
        .scoped(move |_| Ok(B(Tracked::new("B", &jb))))
        .scoped(move |_| Ok(C(Tracked::new("C", &jc))))
        .build()
        .unwrap()
}

#[test]
fn smoke() {
    let journal = Journal::default();
    let registry = registry_abc(&journal);
    {
        let scope = registry.create_scope();
        assert!(scope.is_empty());
        assert_eq!(scope.get::<A>().unwrap().0.name, "A");
        assert_eq!(scope.len(), 1);
    }
    assert_eq!(journal.events(), ["new A", "drop A"]);
}

#[test]
fn get_returns_same_instance_within_scope() {
    let journal = Journal::default();
    let registry = registry_abc(&journal);
    let scope = registry.create_scope();
    let first: *const A = scope.get::<A>().unwrap();
    let second: *const A = scope.get::<A>().unwrap();
    assert_eq!(first, second);
    assert_eq!(journal.events(), ["new A"], "the factory ran once");
}

#[test]
fn get_creates_new_instance_in_next_scope() {
    let journal = Journal::default();
    let registry = registry_abc(&journal);
    let first = registry.create_scope().get::<A>().unwrap().0.id;
    let second = registry.create_scope().get::<A>().unwrap().0.id;
    assert_ne!(first, second);
    assert_eq!(journal.events(), ["new A", "drop A", "new A", "drop A"]);
}

#[test]
fn scope_drops_values_in_reverse_creation_order() {
    let journal = Journal::default();
    let registry = registry_abc(&journal);
    {
        let scope = registry.create_scope();
        // Creation order C, A, B: unlike the registration order.
        scope.get::<C>().unwrap();
        scope.get::<A>().unwrap();
        scope.get::<B>().unwrap();
        scope.get::<C>().unwrap(); // already there: does not change the order
        assert!(
            journal.drops().is_empty(),
            "nothing dropped while the scope lives"
        );
    }
    assert_eq!(journal.drops(), ["drop B", "drop A", "drop C"]);
}

#[test]
fn scope_drops_values_on_panic() {
    let journal = Journal::default();
    let registry = registry_abc(&journal);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let scope = registry.create_scope();
        scope.get::<A>().unwrap();
        scope.get::<B>().unwrap();
        panic!("unit of work failed");
    }));
    assert!(result.is_err());
    assert_eq!(journal.drops(), ["drop B", "drop A"]);
}

#[test]
fn scope_drop_survives_a_panicking_drop() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom in drop");
        }
    }
    let journal = Journal::default();
    let (ja, jb) = (journal.clone(), journal.clone());
    let registry = Registry::builder()
        .scoped(move |_| Ok(A(Tracked::new("A", &ja))))
        .scoped(|_| Ok(Bomb))
        .scoped(move |_| Ok(B(Tracked::new("B", &jb))))
        .build()
        .unwrap();
    {
        let scope = registry.create_scope();
        scope.get::<A>().unwrap();
        scope.get::<Bomb>().unwrap();
        scope.get::<B>().unwrap();
    }
    assert_eq!(
        journal.drops(),
        ["drop B", "drop A"],
        "A is dropped after Bomb panicked"
    );
}

#[test]
fn factory_gets_other_services() {
    struct Config {
        prefix: &'static str,
    }
    struct Repository {
        a_id: usize,
        label: String,
    }
    let journal = Journal::default();
    let ja = journal.clone();
    let registry = Registry::builder()
        .singleton(Arc::new(Config { prefix: "db" }))
        .scoped(move |_| Ok(A(Tracked::new("A", &ja))))
        .scoped(|scope: &Scope<'_>| {
            let a = scope.get::<A>()?; // scoped
            let config = scope.get::<Config>()?; // singleton
            Ok(Repository {
                a_id: a.0.id,
                label: format!("{}-{}", config.prefix, a.0.name),
            })
        })
        .build()
        .unwrap();
    let scope = registry.create_scope();
    let repository = scope.get::<Repository>().unwrap();
    assert_eq!(repository.label, "db-A");
    // The factory's A is the scope's A, not a private copy.
    assert_eq!(repository.a_id, scope.get::<A>().unwrap().0.id);
    assert_eq!(journal.events(), ["new A"]);
}

#[test]
fn get_unregistered_type_names_the_type() {
    struct Missing;
    let registry = Registry::builder().build().unwrap();
    let scope = registry.create_scope();
    let error = scope.get::<Missing>().err().unwrap();
    match &error {
        Error::UnregisteredType { type_name } => assert!(type_name.ends_with("Missing")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.to_string().contains("Missing"), "{error}");
    assert!(matches!(
        registry.singleton::<Missing>(),
        Err(Error::UnregisteredType { .. })
    ));
}

#[test]
fn get_unregistered_type_from_a_factory_names_the_missing_type() {
    struct Missing;
    struct NeedsMissing;
    let registry = Registry::builder()
        .scoped(|scope| {
            scope.get::<Missing>()?;
            Ok(NeedsMissing)
        })
        .build()
        .unwrap();
    let scope = registry.create_scope();
    match scope.get::<NeedsMissing>() {
        Err(Error::UnregisteredType { type_name }) => assert!(type_name.ends_with("::Missing")),
        other => panic!("unexpected {:?}", other.err()),
    }
    assert!(scope.is_empty());
}

#[test]
fn get_self_dependency_is_a_cycle_error() {
    struct Narcissus;
    let registry = Registry::builder()
        .scoped(|scope| {
            scope.get::<Narcissus>()?;
            Ok(Narcissus)
        })
        .build()
        .unwrap();
    let scope = registry.create_scope();
    match scope.get::<Narcissus>() {
        Err(Error::DependencyCycle { services }) => {
            assert_eq!(services.len(), 2, "{services:?}");
            assert!(
                services.iter().all(|s| s.ends_with("Narcissus")),
                "{services:?}"
            );
        }
        other => panic!("unexpected {:?}", other.err()),
    }
}

#[test]
fn get_mutual_dependency_is_a_cycle_error_and_the_scope_stays_usable() {
    struct Ping;
    struct Pong;
    let journal = Journal::default();
    let ja = journal.clone();
    let registry = Registry::builder()
        .scoped(|scope| {
            scope.get::<Pong>()?;
            Ok(Ping)
        })
        .scoped(|scope| {
            scope.get::<Ping>()?;
            Ok(Pong)
        })
        .scoped(move |_| Ok(A(Tracked::new("A", &ja))))
        .build()
        .unwrap();
    {
        let scope = registry.create_scope();
        let error = scope.get::<Ping>().err().unwrap();
        match &error {
            Error::DependencyCycle { services } => {
                let short: Vec<&str> = services
                    .iter()
                    .map(|s| s.rsplit("::").next().unwrap())
                    .collect();
                assert_eq!(short, ["Ping", "Pong", "Ping"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(error.to_string().contains("Ping"), "{error}");
        // Nothing half-built was stored; the scope still works, and the cycle is reported
        // again (not a stale "being created" state).
        assert!(scope.is_empty());
        assert!(matches!(
            scope.get::<Pong>(),
            Err(Error::DependencyCycle { .. })
        ));
        scope.get::<A>().unwrap();
    }
    assert_eq!(journal.events(), ["new A", "drop A"]);
}

#[test]
fn get_factory_error_and_panic_name_the_type() {
    #[derive(Debug)]
    struct Flaky;
    #[derive(Debug)]
    struct Panicky;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let registry = Registry::builder()
        .scoped(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Err("database unreachable".into())
            } else {
                Ok(Flaky)
            }
        })
        .scoped(|_| -> Result<Panicky, threadhost::BoxError> { panic!("factory bug") })
        .build()
        .unwrap();
    let scope = registry.create_scope();
    match scope.get::<Flaky>() {
        Err(Error::FactoryFailed {
            type_name,
            failure: Failure::Error(e),
        }) => {
            assert!(type_name.ends_with("Flaky"));
            assert_eq!(e.to_string(), "database unreachable");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing stored: the next get runs the factory again.
    scope.get::<Flaky>().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let error = scope.get::<Panicky>().unwrap_err();
    match &error {
        Error::FactoryFailed {
            type_name,
            failure: Failure::Panic(message),
        } => {
            assert!(type_name.ends_with("Panicky"));
            assert_eq!(&**message, "factory bug");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.to_string().contains("Panicky"), "{error}");
}

#[test]
fn build_rejects_a_type_registered_twice() {
    struct Twice;
    let error = Registry::builder()
        .singleton(Arc::new(Twice))
        .scoped(|_| Ok(Twice))
        .build()
        .unwrap_err();
    match error {
        Error::DuplicateService { service } => assert!(service.ends_with("Twice")),
        other => panic!("unexpected {other:?}"),
    }
    let error = HostBuilder::new()
        .scoped(|_| Ok(Twice))
        .scoped(|_| Ok(Twice))
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::DuplicateService { .. }), "{error}");
}

#[test]
fn singleton_is_shared_across_services_and_threads() {
    struct Counter(AtomicUsize);
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    // Each service reports the address of the instance it saw, and its thread.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut builder = HostBuilder::new().singleton(Arc::clone(&counter));
    for name in ["one", "two", "three"] {
        let tx = tx.clone();
        builder = builder.background(name, move |ctx| {
            let mine = ctx.singleton::<Counter>()?;
            let scope = ctx.create_scope();
            let borrowed: *const Counter = scope.get::<Counter>()?;
            assert_eq!(Arc::as_ptr(&mine), borrowed, "scope and context agree");
            mine.0.fetch_add(1, Ordering::SeqCst);
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            let _ = tx.send((Arc::as_ptr(&mine) as usize, thread));
            ctx.token().wait();
            Ok(())
        });
    }
    let host = builder.build().unwrap();
    host.start(SECS5).unwrap();
    let mut threads = Vec::new();
    for _ in 0..3 {
        let (address, thread) = rx.recv_timeout(SECS5).expect("a service never ran");
        assert_eq!(address, Arc::as_ptr(&counter) as usize);
        threads.push(thread);
    }
    threads.sort();
    assert_eq!(threads, ["th:one", "th:three", "th:two"]);
    stop_clean(&host);
    assert_eq!(counter.0.load(Ordering::SeqCst), 3);
}

#[test]
fn host_services_resolve_outside_the_services() {
    struct Config(u32);
    struct PerCall(u32);
    let host = HostBuilder::new()
        .singleton(Arc::new(Config(7)))
        .scoped(|scope| Ok(PerCall(scope.get::<Config>()?.0 + 1)))
        .build()
        .unwrap();
    // Before start, as .NET's `host.Services.GetRequiredService<T>()`.
    assert_eq!(host.services().singleton::<Config>().unwrap().0, 7);
    let scope = host.services().create_scope();
    assert_eq!(scope.get::<PerCall>().unwrap().0, 8);
    assert!(host.services().contains::<PerCall>());
    assert!(!host.services().contains::<String>());
}

#[test]
fn singleton_of_a_scoped_type_is_an_error() {
    struct PerRequest;
    let registry = Registry::builder()
        .scoped(|_| Ok(PerRequest))
        .build()
        .unwrap();
    match registry.singleton::<PerRequest>() {
        Err(Error::ScopedType { type_name }) => assert!(type_name.ends_with("PerRequest")),
        other => panic!("unexpected {:?}", other.err()),
    }
}

#[test]
fn create_scope_values_live_on_the_service_thread() {
    struct OnThread {
        journal: Journal,
    }
    impl Drop for OnThread {
        fn drop(&mut self) {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            self.journal.push(format!("drop on {name}"));
        }
    }
    let journal = Journal::default();
    let j = journal.clone();
    let done = threadhost::StopSource::new();
    let done_token = done.token();
    let host = start_host(
        HostBuilder::new()
            .scoped(move |_| {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                j.push(format!("new on {name}"));
                Ok(OnThread { journal: j.clone() })
            })
            .background("unit", move |ctx| {
                for _ in 0..2 {
                    let scope = ctx.create_scope();
                    scope.get::<OnThread>()?;
                }
                done.stop();
                ctx.token().wait();
                Ok(())
            }),
    );
    assert!(done_token.wait_timeout(SECS5));
    stop_clean(&host);
    assert_eq!(
        journal.events(),
        [
            "new on th:unit",
            "drop on th:unit",
            "new on th:unit",
            "drop on th:unit"
        ]
    );
}

/// Resident set size in KiB, from /proc/self/status (Linux only).
fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Set in the child process that runs the memory test alone.
const RSS_CHILD: &str = "THREADHOST_SCOPE_TEST_RSS_CHILD";

#[test]
fn create_scope_10000_times_leaves_memory_flat_and_drops_every_value() {
    // VmRSS is process-wide: the other tests of this binary run concurrently (and resolving a
    // panic backtrace alone loads megabytes of debug info). So the measurement runs in a child
    // process running only this test.
    if std::env::var_os(RSS_CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "create_scope_10000_times_leaves_memory_flat_and_drops_every_value",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(RSS_CHILD, "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "the child ran no test"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        if let Some(at) = stdout.find("VmRSS") {
            println!("{}", stdout[at..].lines().next().unwrap_or(""));
        }
        return;
    }
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static CREATED: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    /// A value with a heap payload large enough that a leak shows in the RSS.
    struct Payload {
        _bytes: Vec<u8>,
    }
    impl Payload {
        fn new() -> Payload {
            LIVE.fetch_add(1, Ordering::SeqCst);
            CREATED.fetch_add(1, Ordering::SeqCst);
            Payload {
                _bytes: vec![1u8; 4096],
            }
        }
    }
    impl Drop for Payload {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
            DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
    struct Inner(#[allow(dead_code)] Payload);
    struct Outer(#[allow(dead_code)] Payload);

    const SCOPES: usize = if cfg!(miri) { 100 } else { 10_000 };
    type Measured = Result<(Option<u64>, Option<u64>), String>;
    let result: Arc<Mutex<Option<Measured>>> = Arc::default();
    let r = Arc::clone(&result);
    let host = start_host(
        HostBuilder::new()
            .scoped(|_| Ok(Inner(Payload::new())))
            .scoped(|scope| {
                scope.get::<Inner>()?;
                Ok(Outer(Payload::new()))
            })
            .background("units", move |ctx| {
                let check = || -> Measured {
                    // Warm up the allocator so the "before" figure is representative.
                    for _ in 0..100 {
                        ctx.create_scope()
                            .get::<Outer>()
                            .map_err(|e| e.to_string())?;
                    }
                    let before = vm_rss_kib();
                    for n in 0..SCOPES {
                        {
                            let scope = ctx.create_scope();
                            scope.get::<Outer>().map_err(|e| e.to_string())?;
                            if LIVE.load(Ordering::SeqCst) != 2 {
                                return Err(format!(
                                    "scope {n}: {} live inside",
                                    LIVE.load(Ordering::SeqCst)
                                ));
                            }
                        }
                        if LIVE.load(Ordering::SeqCst) != 0 {
                            return Err(format!(
                                "scope {n}: {} live after",
                                LIVE.load(Ordering::SeqCst)
                            ));
                        }
                    }
                    Ok((before, vm_rss_kib()))
                };
                *r.lock().unwrap() = Some(check());
                ctx.host().request_stop();
                Ok(())
            }),
    );
    let report = host.join(Duration::from_secs(120)).unwrap();
    assert!(report.is_clean(), "{report}");
    let (before, after) = result.lock().unwrap().take().unwrap().unwrap();
    assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    let expected = 2 * (SCOPES + 100);
    assert_eq!(CREATED.load(Ordering::SeqCst), expected);
    assert_eq!(DROPPED.load(Ordering::SeqCst), expected);
    if let (Some(before), Some(after)) = (before, after) {
        // A leak of every value would be 2 × 10,000 × 4 KiB ≈ 80 MiB; allow 8 MiB of noise.
        let grown = after.saturating_sub(before);
        println!("VmRSS {before} KiB -> {after} KiB after {SCOPES} scopes");
        assert!(
            grown < 8 * 1024,
            "VmRSS grew by {grown} KiB ({before} → {after})"
        );
    }
}
