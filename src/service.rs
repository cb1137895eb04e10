//! The service traits, the [`Context`] handed to a service, and the [`Service`] descriptor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::error::{Error, ServiceResult};
use crate::host::HostHandle;
use crate::scope::{Registry, Scope};
use crate::stop::{StopToken, Stopped};
use crate::supervise::Policy;

/// A hosted service with lifecycle hooks, as .NET's `IHostedService` +
/// `IHostedLifecycleService`.
///
/// Every hook runs on the service's own thread (`th:<name>`), never on the thread that calls
/// `Host::start` or `Host::stop`. Between `started` and `stopping` that thread idles, blocked
/// until the host needs it. Each phase completes for every service before the next phase
/// begins: all `starting` hooks, then all `start`, then all `started`; on stop, all `stopping`,
/// then all `stop`, then all `stopped`, in reverse order.
///
/// `start` runs under the start deadline ([`Context::deadline`]) and may watch
/// [`Context::token`]: it fires if the host gives up on the start (deadline, stop request).
/// The stop hooks run after the token fired, under the stop deadline.
///
/// A service whose `start` did not succeed is never stopped: its `stopping`, `stop` and
/// `stopped` hooks never run.
///
/// ```
/// use std::time::Duration;
/// use threadhost::{Context, HostBuilder, HostedService, ServiceResult};
///
/// struct Listener { open: bool }
///
/// impl HostedService for Listener {
///     fn start(&mut self, _ctx: &Context) -> ServiceResult {
///         self.open = true;
///         Ok(())
///     }
///     fn stop(&mut self, _ctx: &Context) -> ServiceResult {
///         self.open = false;
///         Ok(())
///     }
/// }
///
/// let host = HostBuilder::new().hosted("listener", Listener { open: false }).build()?;
/// host.start(Duration::from_secs(5))?;
/// let report = host.stop(Duration::from_secs(5));
/// assert!(report.is_clean());
/// # Ok::<(), threadhost::Error>(())
/// ```
#[allow(unused_variables)]
pub trait HostedService: Send + 'static {
    /// Runs before any service's `start`. The default does nothing.
    ///
    /// # Errors
    ///
    /// An error fails the host's start, naming this service.
    fn starting(&mut self, ctx: &Context) -> ServiceResult {
        Ok(())
    }

    /// Starts the service. Must return; long-running work belongs in a [`BackgroundService`].
    ///
    /// # Errors
    ///
    /// An error fails the host's start: the services already started are stopped in reverse
    /// order and `Host::start` returns `Error::StartFailed` naming this service.
    fn start(&mut self, ctx: &Context) -> ServiceResult;

    /// Runs after every service's `start` succeeded. The default does nothing.
    ///
    /// # Errors
    ///
    /// An error fails the host's start, naming this service.
    fn started(&mut self, ctx: &Context) -> ServiceResult {
        Ok(())
    }

    /// Runs when the host begins to stop, before any service's `stop`. The default does
    /// nothing.
    ///
    /// # Errors
    ///
    /// An error is recorded in the `StopReport`; the stop goes on.
    fn stopping(&mut self, ctx: &Context) -> ServiceResult {
        Ok(())
    }

    /// Stops the service, by [`Context::deadline`]. The token has already fired.
    ///
    /// # Errors
    ///
    /// An error is recorded in the `StopReport`; the stop goes on.
    fn stop(&mut self, ctx: &Context) -> ServiceResult;

    /// Runs after every service's `stop`. The default does nothing.
    ///
    /// # Errors
    ///
    /// An error is recorded in the `StopReport`; the stop goes on.
    fn stopped(&mut self, ctx: &Context) -> ServiceResult {
        Ok(())
    }
}

/// A long-running service: a body that runs on its own thread until its token fires.
///
/// As .NET's `BackgroundService`, but the body runs on a dedicated thread from its first
/// instruction, so a slow body never delays the start of the host or of other services.
/// It counts as started as soon as its thread runs the body; an optional [`start`] hook runs
/// first, under the start deadline, for initialisation whose failure should fail the host's
/// start.
///
/// The body should return soon after [`Context::token`] fires, and by the stop deadline, which
/// [`Context::deadline`] reports from then on (work on the way out, such as a flush, is
/// bounded by it). Returning `Ok(())` early ends
/// the service ("completed") but not the host. Returning an error or panicking is a failure,
/// handled by the service's [`Policy`]. A [`Stopped`] error returned after the token fired is a
/// clean exit, so `ctx.sleep(d)?` is idiomatic.
///
/// Closures `FnMut(&Context) -> ServiceResult` are background services too. One naming rule
/// holds on [`HostBuilder`](crate::HostBuilder) and [`Service`] alike: `background(name,
/// closure)` takes a closure (what most services are), `background_service(name, value)` a
/// type of yours implementing this trait, and `hosted(name, value)` a [`HostedService`]
/// (which has no closure form: it is several hooks).
///
/// [`start`]: BackgroundService::start
///
/// ```
/// use std::time::Duration;
/// use threadhost::HostBuilder;
///
/// let host = HostBuilder::new()
///     .background("heartbeat", |ctx| {
///         while !ctx.is_stopped() {
///             log::info!("beat");
///             ctx.sleep(Duration::from_millis(10))?;
///         }
///         Ok(())
///     })
///     .build()?;
/// host.start(Duration::from_secs(5))?;
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// # Ok::<(), threadhost::Error>(())
/// ```
#[allow(unused_variables)]
pub trait BackgroundService: Send + 'static {
    /// Runs on the service's thread before the body, under the start deadline. The default
    /// does nothing.
    ///
    /// # Errors
    ///
    /// An error fails the host's start, naming this service; the body never runs.
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        Ok(())
    }

    /// The body: runs until the token fires (or until it is done).
    ///
    /// Under a restart policy the body is called again after a failure, on the same thread
    /// and the same value.
    ///
    /// # Errors
    ///
    /// An error is a failure of the service, handled by its [`Policy`].
    fn run(&mut self, ctx: &Context) -> ServiceResult;
}

impl<F> BackgroundService for F
where
    F: FnMut(&Context) -> ServiceResult + Send + 'static,
{
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        self(ctx)
    }
}

/// What a service's thread is given: its name, its stop token, the deadline of the current
/// phase, and a handle to the host.
///
/// One `Context` lives on each service thread for the thread's whole life.
pub struct Context {
    pub(crate) name: Arc<str>,
    /// Its path in the tree (`devices/plc-7/poller`; its name at the top level).
    pub(crate) path: Arc<str>,
    pub(crate) token: StopToken,
    pub(crate) deadline: Deadline,
    pub(crate) host: HostHandle,
    /// The host's service registry (singletons, scoped factories).
    pub(crate) services: Arc<Registry>,
    pub(crate) heartbeat: Arc<crate::host::Heartbeat>,
    /// A background service's stop deadline, set by the host before it fires the token to
    /// stop the service; what [`deadline`](Context::deadline) reports in a body.
    pub(crate) stop_deadline: Arc<StopDeadline>,
    /// The service's [`Service::liveness`] window, if it is critical (a queue's workers beat
    /// only then).
    #[cfg_attr(not(feature = "queue"), allow(dead_code))]
    pub(crate) liveness: Option<Duration>,
}

/// The stop deadline of a background service, shared by the host (which sets it, under
/// `ctl`, before it fires the service's token for a stop) and the service's thread (which
/// reads it in its body). Set before the token fires, so a body woken by the token reads it.
#[derive(Debug, Default)]
pub(crate) struct StopDeadline(crate::sync::Mutex<Option<Deadline>>);

impl StopDeadline {
    pub(crate) fn set(&self, deadline: Deadline) {
        *self.0.lock() = Some(deadline);
    }

    fn get(&self) -> Option<Deadline> {
        *self.0.lock()
    }
}

impl Context {
    /// The service's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service's path in the host's tree: its name, after the names of the
    /// [groups](crate::Group) it is in (`devices/plc-7/poller`); its name at the top level.
    /// What [`HostHandle::remove`] and the other runtime changes take.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The service's stop token: fires when the host stops this service, or gives up on its
    /// start.
    #[must_use]
    pub fn token(&self) -> &StopToken {
        &self.token
    }

    /// `true` once the service's token has fired. One atomic load.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.token.is_stopped()
    }

    /// Sleeps for `duration`, or until the token fires.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the token fired first.
    pub fn sleep(&self, duration: Duration) -> Result<(), Stopped> {
        self.token.sleep(duration)
    }

    /// The deadline of the current phase: the start deadline inside start hooks, the stop
    /// deadline inside stop hooks, the reload's deadline inside a
    /// [reload hook](crate::Service::on_reload). In a background service's body, [`Deadline::NEVER`] until
    /// the host stops the service, then (once [`token`](Context::token) fired for the stop)
    /// the service's stop deadline: the host waits for the body to return until then, after
    /// which it detaches the thread and reports the service
    /// [`TimedOut`](crate::Outcome::TimedOut). A body that flushes what it holds on its way
    /// out bounds that work by this deadline.
    #[must_use]
    pub fn deadline(&self) -> Deadline {
        if self.deadline.is_never() {
            self.stop_deadline.get().unwrap_or(Deadline::NEVER)
        } else {
            self.deadline
        }
    }

    /// A handle to the host, e.g. to [`request_stop`](HostHandle::request_stop) it.
    #[must_use]
    pub fn host(&self) -> &HostHandle {
        &self.host
    }

    /// A new [`Scope`] for one unit of work, over the host's registry
    /// ([`HostBuilder::scoped`](crate::HostBuilder::scoped),
    /// [`HostBuilder::singleton`](crate::HostBuilder::singleton)): scoped values are created
    /// on first use and dropped, in reverse creation order, when the scope is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::HostBuilder;
    ///
    /// struct Transaction;
    ///
    /// let host = HostBuilder::new()
    ///     .scoped(|_scope| Ok(Transaction))
    ///     .background("worker", |ctx| {
    ///         while !ctx.is_stopped() {
    ///             let scope = ctx.create_scope();
    ///             let _tx = scope.get::<Transaction>()?;
    ///             // ... one unit of work ...
    ///             drop(scope); // the transaction is dropped here
    ///             ctx.sleep(Duration::from_millis(10))?;
    ///         }
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    #[must_use]
    pub fn create_scope(&self) -> Scope<'_> {
        self.services.create_scope()
    }

    /// The singleton of type `T` registered with
    /// [`HostBuilder::singleton`](crate::HostBuilder::singleton).
    ///
    /// # Errors
    ///
    /// [`Error::UnregisteredType`] naming `T` if none is registered; [`Error::ScopedType`] if
    /// `T` is scoped (get it from [`create_scope`](Context::create_scope)).
    pub fn singleton<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        self.services.singleton::<T>()
    }

    /// The host's service registry.
    #[must_use]
    pub fn services(&self) -> &Registry {
        &self.services
    }

    /// Says "this service is alive and making progress": one atomic store. A critical
    /// service (one with [`Service::liveness`]) must beat at least once per liveness window,
    /// or the host counts it as stuck: [`HostHandle::snapshot`] shows it not live and the
    /// systemd watchdog stops pinging, so systemd restarts the process.
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Service};
    ///
    /// let host = HostBuilder::new()
    ///     .add_service(
    ///         Service::background("poller", |ctx| {
    ///             while ctx.sleep(Duration::from_millis(10)).is_ok() {
    ///                 ctx.heartbeat(); // one round of work done
    ///             }
    ///             Ok(())
    ///         })
    ///         .liveness(Duration::from_secs(5)),
    ///     )
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// assert!(host.handle().snapshot().not_live().is_empty());
    /// # drop(host);
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn heartbeat(&self) {
        self.heartbeat.beat();
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The two kinds of service a host runs.
pub(crate) enum Kind {
    Hosted(Box<dyn HostedService>),
    Background(Box<dyn BackgroundService>),
}

/// A service and its settings, ready to be added to a host with
/// [`HostBuilder::add_service`](crate::HostBuilder::add_service).
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, Policy, Service};
///
/// let host = HostBuilder::new()
///     .add_service(Service::background("db", |ctx| {
///         ctx.token().wait();
///         Ok(())
///     }))
///     .add_service(
///         Service::background("api", |ctx| {
///             ctx.token().wait();
///             Ok(())
///         })
///         .depends_on("db")
///         .on_failure(Policy::Ignore)
///         .stop_timeout(Duration::from_secs(2))
///         .stack_size(256 * 1024),
///     )
///     .build()?;
/// # drop(host);
/// # Ok::<(), threadhost::Error>(())
/// ```
#[must_use = "a Service does nothing until added to a HostBuilder"]
pub struct Service {
    pub(crate) name: Arc<str>,
    pub(crate) kind: Kind,
    pub(crate) policy: Option<Policy>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) depends_on: Vec<Arc<str>>,
    pub(crate) liveness: Option<Duration>,
    pub(crate) metrics: Option<MetricsFn>,
    pub(crate) restart: Option<crate::supervise::RestartType>,
    pub(crate) reload: Option<ReloadFn>,
}

/// A service's reload hook (see [`Service::on_reload`]).
pub(crate) type ReloadFn = Arc<dyn Fn(&Context) -> ServiceResult + Send + Sync + 'static>;

/// A service's metrics callback (see [`Service::metrics`]).
pub(crate) type MetricsFn = Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static>;

impl Service {
    fn new(name: &str, kind: Kind) -> Service {
        Service {
            name: Arc::from(name),
            kind,
            policy: None,
            stack_size: None,
            start_timeout: None,
            stop_timeout: None,
            depends_on: Vec::new(),
            liveness: None,
            metrics: None,
            restart: None,
            reload: None,
        }
    }

    /// A hosted service (lifecycle hooks, no body).
    pub fn hosted(name: &str, service: impl HostedService) -> Service {
        Service::new(name, Kind::Hosted(Box::new(service)))
    }

    /// A background service whose body is the closure `body` (the same as
    /// [`HostBuilder::background`](crate::HostBuilder::background), with per-service
    /// settings).
    pub fn background<F>(name: &str, body: F) -> Service
    where
        F: FnMut(&Context) -> ServiceResult + Send + 'static,
    {
        Service::background_service(name, body)
    }

    /// A [`BackgroundService`] (a body that runs until stopped): a type of yours, where
    /// [`background`](Service::background) takes a closure.
    pub fn background_service(name: &str, service: impl BackgroundService) -> Service {
        Service::new(name, Kind::Background(Box::new(service)))
    }

    /// What happens when the body fails. The default is the host's
    /// [`HostBuilder::on_failure`](crate::HostBuilder::on_failure), itself
    /// [`Policy::StopHost`] by default.
    pub fn on_failure(mut self, policy: Policy) -> Service {
        self.policy = Some(policy);
        self
    }

    /// The stack size of this service's thread, in bytes. The default is the host's
    /// [`HostBuilder::stack_size`](crate::HostBuilder::stack_size), itself Rust's default.
    pub fn stack_size(mut self, bytes: usize) -> Service {
        self.stack_size = Some(bytes);
        self
    }

    /// A start budget for this service alone, within the host's start deadline. The default
    /// is none (only the host's start deadline applies).
    pub fn start_timeout(mut self, timeout: Duration) -> Service {
        self.start_timeout = Some(timeout);
        self
    }

    /// A stop budget for this service alone, counted from when its stop begins, within the
    /// host's stop deadline. The default is none (only the host's stop deadline applies).
    pub fn stop_timeout(mut self, timeout: Duration) -> Service {
        self.stop_timeout = Some(timeout);
        self
    }

    /// Starts this service only after `service` has started, and stops it before `service`.
    /// May be called several times. An unknown name or a cycle is an error from
    /// [`HostBuilder::build`](crate::HostBuilder::build). In a [`Group`](crate::Group), it
    /// names a sibling (a service or a group).
    ///
    /// "Started" means its start hooks returned: for a background service, its
    /// [`start`](BackgroundService::start) hook, not its body. What a dependent needs ready
    /// (a connection, a listening socket) belongs in that hook.
    pub fn depends_on(mut self, service: &str) -> Service {
        self.depends_on.push(Arc::from(service));
        self
    }

    /// Makes this a critical service: it counts as live only while it is running and its
    /// last [`Context::heartbeat`] is at most `max_age` old (the host beats once for it when
    /// its start succeeds and each time its body restarts). Under systemd the watchdog pings only
    /// while every critical service is live. The default is none: not critical.
    pub fn liveness(mut self, max_age: Duration) -> Service {
        self.liveness = Some(max_age);
        self
    }

    /// Reports this service's own figures (a queue's sent, completed, dropped…) in
    /// [`HostHandle::snapshot`]: `metrics` is called by each snapshot, on the caller's thread,
    /// outside every threadhost lock; a panic in it is logged and yields no figures.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Service};
    ///
    /// let done = Arc::new(AtomicU64::new(0));
    /// let counter = Arc::clone(&done);
    /// let host = HostBuilder::new()
    ///     .add_service(
    ///         Service::background("jobs", move |ctx| {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///             ctx.token().wait();
    ///             Ok(())
    ///         })
    ///         .metrics(move || vec![("completed", done.load(Ordering::Relaxed))]),
    ///     )
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let snapshot = host.handle().snapshot();
    /// assert_eq!(snapshot.service("jobs").unwrap().metrics.len(), 1);
    /// # drop(host);
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn metrics<F>(mut self, metrics: F) -> Service
    where
        F: Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    {
        self.metrics = Some(Arc::new(metrics));
        self
    }

    /// When its group restarts it (see [`RestartType`](crate::RestartType)). The default:
    /// none, the behaviour of a service outside groups.
    pub fn restart(mut self, restart: crate::supervise::RestartType) -> Service {
        self.restart = Some(restart);
        self
    }

    /// Gives this service a reload hook: what [`HostHandle::reload`] and
    /// [`HostHandle::request_reload`] (and, with the console lifetime, `SIGHUP`) call, in the
    /// host's start order, one service at a time, to re-read configuration, reopen log files,
    /// rotate credentials. .NET has no equivalent.
    ///
    /// `reload` runs on the host's reload thread `th:reload`, never on the service's own
    /// thread (a background service's thread is busy in its body), never on the caller's,
    /// and with no threadhost lock held: it may run while the service's body or hooks run on
    /// their thread, so it shares state with them through what it captures (an `Arc`, an
    /// atomic, a mutex). Its [`Context`] carries the service's name and path, its token, and
    /// the reload's deadline as [`Context::deadline`]; a hook still running at that deadline
    /// is reported [timed out](crate::ReloadOutcome::TimedOut) and the hooks after it are not
    /// run. An error or a panic is logged and reported in the
    /// [`ReloadReport`](crate::ReloadReport); it never stops the service or the host.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Service};
    ///
    /// let generation = Arc::new(AtomicU32::new(0));
    /// let seen = Arc::clone(&generation);
    /// let host = HostBuilder::new()
    ///     .add_service(
    ///         Service::background("worker", |ctx| { ctx.token().wait(); Ok(()) })
    ///             .on_reload(move |_ctx| {
    ///                 seen.fetch_add(1, Ordering::Relaxed); // e.g. re-read the config file
    ///                 Ok(())
    ///             }),
    ///     )
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let report = host.handle().reload(Duration::from_secs(5))?;
    /// assert!(report.is_clean());
    /// assert_eq!(generation.load(Ordering::Relaxed), 1);
    /// # assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    ///
    /// [`HostHandle::reload`]: crate::HostHandle::reload
    /// [`HostHandle::request_reload`]: crate::HostHandle::request_reload
    pub fn on_reload<F>(mut self, reload: F) -> Service
    where
        F: Fn(&Context) -> ServiceResult + Send + Sync + 'static,
    {
        self.reload = Some(Arc::new(reload));
        self
    }

    /// The service's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field(
                "kind",
                &match self.kind {
                    Kind::Hosted(_) => "hosted",
                    Kind::Background(_) => "background",
                },
            )
            .field("policy", &self.policy)
            .field("stack_size", &self.stack_size)
            .field("start_timeout", &self.start_timeout)
            .field("stop_timeout", &self.stop_timeout)
            .field("depends_on", &self.depends_on)
            .field("liveness", &self.liveness)
            .field("metrics", &self.metrics.is_some())
            .field("restart", &self.restart)
            .field("reload", &self.reload.is_some())
            .finish()
    }
}
