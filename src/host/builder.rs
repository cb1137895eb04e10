//! [`HostBuilder`]: collects services and options, validates them, builds a [`Host`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BoxError, Error, ServiceResult};
use crate::group::{Child, Group};
use crate::host::options::HostOptions;
use crate::host::{Host, Plan};
#[cfg(feature = "listeners")]
use crate::host::{HostEvent, Listener, Listeners};
use crate::scope::{RegistryBuilder, Scope};
use crate::service::{BackgroundService, Context, HostedService, Service};
use crate::supervise::Policy;

/// Builds a [`Host`]: add services, set options, then [`build`](HostBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, Policy};
///
/// let host = HostBuilder::new()
///     .shutdown_timeout(Duration::from_secs(10))
///     .on_failure(Policy::StopHost)
///     .background("worker", |ctx| {
///         ctx.token().wait();
///         Ok(())
///     })
///     .build()?;
/// host.start(Duration::from_secs(5))?;
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// # Ok::<(), threadhost::Error>(())
/// ```
#[must_use = "a HostBuilder does nothing until `build` is called"]
pub struct HostBuilder {
    options: HostOptions,
    children: Vec<Child>,
    console_lifetime: bool,
    registry: RegistryBuilder,
    #[cfg(feature = "listeners")]
    listeners: Vec<Listener>,
    #[cfg(feature = "systemd")]
    systemd: bool,
    /// The first error of `options_from_env`, returned by `build`.
    #[cfg(feature = "env")]
    env_error: Option<Error>,
    #[cfg(feature = "http")]
    http: Option<crate::http::HttpEndpoint>,
}

impl Default for HostBuilder {
    fn default() -> HostBuilder {
        HostBuilder::new()
    }
}

impl HostBuilder {
    /// A builder with [`HostOptions::default`] and no services.
    pub fn new() -> HostBuilder {
        HostBuilder {
            options: HostOptions::default(),
            children: Vec::new(),
            console_lifetime: false,
            registry: RegistryBuilder::new(),
            #[cfg(feature = "listeners")]
            listeners: Vec::new(),
            #[cfg(feature = "systemd")]
            systemd: false,
            #[cfg(feature = "env")]
            env_error: None,
            #[cfg(feature = "http")]
            http: None,
        }
    }

    /// Adds a service (see [`Service`] for per-service settings). Services start in the order
    /// they are added, after the services they [depend on](Service::depends_on).
    ///
    /// Takes anything that converts into a [`Service`]: a `Service`, or a
    /// [`WorkQueue`](crate::WorkQueue) / [`TaskQueue`](crate::TaskQueue) directly (the same as
    /// its [`into_service`](crate::WorkQueue::into_service); call that instead to set a
    /// per-service option on it first). A [`Periodic`](crate::Periodic) service's `build`
    /// already returns a `Service`.
    ///
    #[cfg_attr(feature = "queue", doc = "```")]
    #[cfg_attr(not(feature = "queue"), doc = "```ignore")]
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Service, TaskQueue};
    ///
    /// let (queue, producer) = TaskQueue::builder("jobs").build_tasks()?;
    /// let host = HostBuilder::new()
    ///     .add_service(queue) // a queue, as is
    ///     .add_service(Service::background("idle", |ctx| { ctx.token().wait(); Ok(()) }))
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// producer.send_task(|_token| Ok(()))?;
    /// assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// assert_eq!(producer.metrics().completed, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_service(mut self, service: impl Into<Service>) -> HostBuilder {
        self.children.push(Child::Service(service.into()));
        self
    }

    /// Adds a background service whose body is the closure `body`, with default settings.
    pub fn background<F>(self, name: &str, body: F) -> HostBuilder
    where
        F: FnMut(&Context) -> ServiceResult + Send + 'static,
    {
        self.add_service(Service::background(name, body))
    }

    /// Adds a group named `name`, built by `build` (see [`Group`]). Groups and services start
    /// in the order they are added, after the siblings they depend on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, Strategy};
    ///
    /// let host = HostBuilder::new()
    ///     .group("plc-7", |g| {
    ///         g.strategy(Strategy::OneForAll)
    ///             .background("connection", |ctx| { ctx.token().wait(); Ok(()) })
    ///             .background("poller", |ctx| { ctx.token().wait(); Ok(()) })
    ///     })
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// assert_eq!(host.handle().snapshot().group("plc-7").unwrap().children.len(), 2);
    /// # assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    pub fn group(self, name: &str, build: impl FnOnce(Group) -> Group) -> HostBuilder {
        self.add_group(build(Group::new(name)))
    }

    /// Adds a [`Group`] built beforehand.
    pub fn add_group(mut self, group: Group) -> HostBuilder {
        self.children.push(Child::Group(group));
        self
    }

    /// Adds a [`BackgroundService`] with default settings.
    pub fn background_service(self, name: &str, service: impl BackgroundService) -> HostBuilder {
        self.add_service(Service::background_service(name, service))
    }

    /// Adds a hosted service (lifecycle hooks) with default settings.
    pub fn hosted(self, name: &str, service: impl HostedService) -> HostBuilder {
        self.add_service(Service::hosted(name, service))
    }

    /// Registers `value` as the host's one instance of `T`, shared by every service and
    /// thread: [`Context::singleton`] clones the `Arc`; a [`Scope`] lends it to factories.
    pub fn singleton<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> HostBuilder {
        self.registry = self.registry.singleton(value);
        self
    }

    /// Registers a scoped factory for `T`: called at most once per scope
    /// ([`Context::create_scope`]), on the scope's thread, when the scope is first asked for
    /// a `T`; the value is dropped when the scope ends. The factory may get other services,
    /// singletons and scoped, from the scope it is given. See [`Scope`].
    pub fn scoped<T, F>(mut self, factory: F) -> HostBuilder
    where
        T: 'static,
        F: Fn(&Scope<'_>) -> Result<T, BoxError> + Send + Sync + 'static,
    {
        self.registry = self.registry.scoped(factory);
        self
    }

    /// Replaces every option at once.
    pub fn options(mut self, options: HostOptions) -> HostBuilder {
        self.options = options;
        self
    }

    /// The stop deadline of `run`, of `join` after a stop request, and of dropping a running
    /// host. The default is 30 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> HostBuilder {
        self.options.shutdown_timeout = timeout;
        self
    }

    /// The deadline of a reload requested with
    /// [`HostHandle::request_reload`](crate::HostHandle::request_reload) or `SIGHUP`. The
    /// default is 30 s.
    pub fn reload_timeout(mut self, timeout: Duration) -> HostBuilder {
        self.options.reload_timeout = timeout;
        self
    }

    /// The start deadline of `run`. The default is none.
    pub fn startup_timeout(mut self, timeout: Duration) -> HostBuilder {
        self.options.startup_timeout = Some(timeout);
        self
    }

    /// Starts services concurrently where no dependency forbids it. The default is `false`
    /// (one after another).
    pub fn start_concurrently(mut self, yes: bool) -> HostBuilder {
        self.options.start_concurrently = yes;
        self
    }

    /// Stops services concurrently where no dependency forbids it. The default is `false`
    /// (one after another, in reverse start order).
    pub fn stop_concurrently(mut self, yes: bool) -> HostBuilder {
        self.options.stop_concurrently = yes;
        self
    }

    /// The failure policy of services that set none. The default is [`Policy::StopHost`].
    pub fn on_failure(mut self, policy: Policy) -> HostBuilder {
        self.options.failure_policy = policy;
        self
    }

    /// The stack size of every service thread, in bytes: from 64 KiB to 1 GiB (checked by
    /// [`build`](HostBuilder::build)). The default is Rust's default; a service may override
    /// it with [`Service::stack_size`], within the same bounds.
    pub fn stack_size(mut self, bytes: usize) -> HostBuilder {
        self.options.stack_size = Some(bytes);
        self
    }

    /// Makes [`Host::run`] handle SIGINT (Ctrl-C), SIGTERM and SIGQUIT, which request a
    /// graceful stop, and SIGHUP, which requests a reload
    /// ([`HostHandle::request_reload`](crate::HostHandle::request_reload)). A second
    /// terminating signal while the stop it asked for runs exits the process at once with
    /// 128 + the signal's number ([`EXIT_FORCED`](crate::EXIT_FORCED) for SIGINT), and so does
    /// one after the host stopped (the handlers stay installed for the life of the process).
    /// On Windows, Ctrl-C and Ctrl-Break stop. Off by default: the library never installs a
    /// signal handler unless asked. A program with its own signal handling calls
    /// [`HostHandle::request_stop`](crate::HostHandle::request_stop) instead.
    ///
    /// A disposition the program set before [`Host::run`] for any of the four signals is
    /// detected (with `sigaction`) and named in a warning: an inherited `SIG_IGN` (`nohup`, a
    /// background job) is replaced; a handler of the program's own is chained (signal-hook
    /// calls it first, then the console lifetime acts). The table of what each signal does
    /// is in the console lifetime's module documentation (`src/lifetime/console.rs`).
    ///
    /// Needs the `termination` feature (on by default).
    #[cfg(feature = "termination")]
    #[cfg_attr(docsrs, doc(cfg(feature = "termination")))]
    pub fn console_lifetime(mut self) -> HostBuilder {
        self.console_lifetime = true;
        self
    }

    /// Applies the `THREADHOST_*` environment variables over the options set so far (see
    /// [`HostOptions::apply_env`] for the variables and their values). Order decides: options
    /// set after this call override the environment, options set before are overridden by
    /// it. Call it last to let operators override what the code sets.
    ///
    /// A bad value is reported by [`build`](HostBuilder::build) as
    /// [`Error::InvalidOption`] naming the variable and the value.
    #[cfg(feature = "env")]
    #[cfg_attr(docsrs, doc(cfg(feature = "env")))]
    pub fn options_from_env(mut self) -> HostBuilder {
        if self.env_error.is_none() {
            if let Err(error) = self.options.apply_env() {
                self.env_error = Some(error);
            }
        }
        self
    }

    /// Registers `listener` to be called on every state change of the host and of each
    /// service ([`HostEvent`]), in the order the changes happened.
    ///
    /// Listeners run on the host's own event thread, `th:host-events`, spawned by the first
    /// [`Host::start`] (so a host that is never started calls none), and never under a
    /// threadhost lock: a listener may call any [`HostHandle`](crate::HostHandle) method. A
    /// listener that panics is logged and the next one goes on. A slow listener delays only
    /// the listeners, never the host. [`Host::run`] waits for the listeners to see
    /// the last change before it returns, unless they make no progress for a second.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use threadhost::{HostBuilder, HostState, StateChange};
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let host = HostBuilder::new()
    ///     .on_state_change(move |event| {
    ///         if let StateChange::Host { to, .. } = event.change {
    ///             tx.lock().unwrap().send(to).unwrap();
    ///         }
    ///     })
    ///     .background("worker", |ctx| { ctx.token().wait(); Ok(()) })
    ///     .build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let _report = host.stop(Duration::from_secs(5));
    /// let seen: Vec<HostState> = rx.iter().take(4).collect();
    /// use HostState::*;
    /// assert_eq!(seen, [Starting, Running, Stopping, Stopped]);
    /// # Ok::<(), threadhost::Error>(())
    /// ```
    #[cfg(feature = "listeners")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listeners")))]
    pub fn on_state_change<F>(mut self, listener: F) -> HostBuilder
    where
        F: Fn(&HostEvent) + Send + Sync + 'static,
    {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Speaks systemd's notify protocol when run by systemd (`Type=notify`): `READY=1` once
    /// started, `STOPPING=1` when stopping, `STATUS=` lines on state changes,
    /// `EXTEND_TIMEOUT_USEC=` while a start or stop is still within its own deadline, and, with
    /// `WatchdogSec=`, `WATCHDOG=1` at half the interval while every critical service
    /// ([`Service::liveness`]) is live. A no-op when `NOTIFY_SOCKET` is unset or not on Unix.
    ///
    /// Opt-in, as the console lifetime: the library never talks to a service manager unless
    /// asked. Built on [`on_state_change`](HostBuilder::on_state_change). The variables are
    /// read by [`build`](HostBuilder::build), and left in the environment.
    #[cfg(feature = "systemd")]
    #[cfg_attr(docsrs, doc(cfg(feature = "systemd")))]
    pub fn systemd(mut self) -> HostBuilder {
        self.systemd = true;
        self
    }

    /// Serves the host's health and metrics over HTTP on `addr` (`"0.0.0.0:9090"`;
    /// `"127.0.0.1:0"`: a port the system picks, then [`HostHandle::http_addr`]):
    /// `GET /livez`, `/readyz`, `/metrics` (Prometheus), `/status` (JSON), with the default
    /// bounds of [`HttpEndpoint`](crate::HttpEndpoint). The endpoint is a service of the host,
    /// named `http`, not critical, added before every other: it listens from the host's start
    /// (a bind error fails the start, naming the address) until the end of its stop. What
    /// each path answers in each host state, and the bounds, are in the `http` module's
    /// header (and README.md, "Health and metrics over HTTP").
    ///
    /// Needs the `http` feature (off by default).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
    /// use threadhost::HostBuilder;
    ///
    /// let host = HostBuilder::new().http_endpoint("127.0.0.1:0").build()?;
    /// host.start(Duration::from_secs(5))?;
    /// let mut tcp = std::net::TcpStream::connect(host.handle().http_addr().unwrap())?;
    /// tcp.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")?;
    /// let mut response = String::new();
    /// tcp.read_to_string(&mut response)?;
    /// assert!(response.starts_with("HTTP/1.1 200"));
    /// # assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`HostHandle::http_addr`]: crate::HostHandle::http_addr
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http_endpoint(self, addr: &str) -> HostBuilder {
        self.http(crate::http::HttpEndpoint::new(addr))
    }

    /// [`http_endpoint`](HostBuilder::http_endpoint) with other bounds or service name
    /// ([`HttpEndpoint`](crate::HttpEndpoint)). A second call replaces the first.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http(mut self, endpoint: crate::http::HttpEndpoint) -> HostBuilder {
        self.http = Some(endpoint);
        self
    }

    /// Validates everything and builds the host. No thread starts until
    /// [`Host::start`] or [`Host::run`].
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidOption`]: an empty service name, one over 256 bytes or with a
    ///   control character (a newline, a NUL), a stack
    ///   (host-wide or a service's) outside 64 KiB to 1 GiB, a restart policy out of range
    ///   (see [`Policy::Restart`]).
    /// - [`Error::InvalidOption`] naming a `THREADHOST_*` variable and its value
    ///   (`options_from_env`, feature `env`), or `NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    ///   `WATCHDOG_PID` (`systemd`, feature `systemd`).
    /// - [`Error::DuplicateService`]: two services with one name, or a type registered twice
    ///   with [`singleton`](HostBuilder::singleton) / [`scoped`](HostBuilder::scoped).
    /// - [`Error::UnknownDependency`], [`Error::DependencyCycle`]: bad `depends_on`.
    /// - [`Error::InvalidOption`] naming an `HttpEndpoint` option out
    ///   of range (feature `http`); [`Error::DuplicateService`]: a service of yours has the
    ///   endpoint's service name.
    // `mut`: `build` takes the environment's error and adds the systemd listener.
    #[cfg_attr(
        not(any(feature = "env", feature = "systemd", feature = "http")),
        allow(unused_mut)
    )]
    pub fn build(mut self) -> Result<Host, Error> {
        #[cfg(feature = "env")]
        if let Some(error) = self.env_error.take() {
            return Err(error);
        }
        self.options.validate()?;
        #[cfg(feature = "systemd")]
        if self.systemd {
            if let Some(listener) = crate::lifetime::systemd_listener()? {
                self.listeners.push(listener);
            }
        }
        #[cfg(feature = "http")]
        let http = match self.http.take() {
            Some(endpoint) => {
                endpoint.validate()?;
                let bound = Arc::new(crate::http::Bound::default());
                // First: it starts before the others and stops after them.
                self.children.insert(
                    0,
                    Child::Service(crate::http::service(endpoint, Arc::clone(&bound))),
                );
                Some(bound)
            }
            None => None,
        };
        crate::host::tree::validate("", &[], &[], true, &self.children, false)?;
        let plan = Plan {
            console_lifetime: self.console_lifetime,
            services: Arc::new(self.registry.build()?),
            #[cfg(feature = "listeners")]
            listeners: Listeners(self.listeners),
            #[cfg(feature = "http")]
            http,
        };
        Ok(Host::new(self.options, self.children, plan))
    }
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("HostBuilder");
        f.field("options", &self.options)
            .field(
                "children",
                &self
                    .children
                    .iter()
                    .map(|c| &**c.name())
                    .collect::<Vec<_>>(),
            )
            .field("console_lifetime", &self.console_lifetime)
            .field("registry", &self.registry);
        #[cfg(feature = "listeners")]
        f.field("listeners", &self.listeners.len());
        #[cfg(feature = "systemd")]
        f.field("systemd", &self.systemd);
        #[cfg(feature = "http")]
        f.field("http", &self.http);
        f.finish()
    }
}
