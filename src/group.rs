//! [`Group`]: a node of the supervision tree, built like a host: services and groups, a
//! restart [`Strategy`], a restart intensity. The tree's machinery (paths, runtime changes,
//! supervision) lives in the host (`host::tree`); this is the value a program builds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ServiceResult;
use crate::service::{BackgroundService, Context, HostedService, Service};
use crate::supervise::{Backoff, RestartType, Strategy};

/// A group of services and groups, supervised together: started in order, stopped in
/// reverse, restarted by its [`Strategy`].
///
/// Add one to a [`HostBuilder`](crate::HostBuilder) with
/// [`group`](crate::HostBuilder::group) or [`add_group`](crate::HostBuilder::add_group),
/// to another group with [`Group::group`] / [`Group::add_group`], or to a running host with
/// [`HostHandle::add_group`](crate::HostHandle::add_group). Its children are named by path:
/// `devices/plc-7/poller` is the service `poller` in the group `plc-7` in the group
/// `devices`.
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, Strategy};
///
/// let host = HostBuilder::new()
///     .group("devices", |devices| {
///         devices.intensity(10, Duration::from_secs(60)).group("plc-7", |plc| {
///             plc.strategy(Strategy::OneForAll)
///                 .background("connection", |ctx| { ctx.token().wait(); Ok(()) })
///                 .background("poller", |ctx| { ctx.token().wait(); Ok(()) })
///         })
///     })
///     .build()?;
/// host.start(Duration::from_secs(5))?;
/// let snapshot = host.handle().snapshot();
/// assert!(snapshot.service("devices/plc-7/poller").is_some());
/// // Stop one subtree; the rest keeps running.
/// let report = host.handle().stop_child("devices/plc-7", Duration::from_secs(5))?;
/// assert!(report.is_clean());
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// # Ok::<(), threadhost::Error>(())
/// ```
#[must_use = "a Group does nothing until added to a host"]
pub struct Group {
    pub(crate) name: Arc<str>,
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) within: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) restart: Option<RestartType>,
    pub(crate) depends_on: Vec<Arc<str>>,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) children: Vec<Child>,
}

/// A child of a group, as built.
pub(crate) enum Child {
    Service(Service),
    Group(Group),
}

impl Child {
    pub(crate) fn name(&self) -> &Arc<str> {
        match self {
            Child::Service(s) => &s.name,
            Child::Group(g) => &g.name,
        }
    }

    pub(crate) fn depends_on(&self) -> &[Arc<str>] {
        match self {
            Child::Service(s) => &s.depends_on,
            Child::Group(g) => &g.depends_on,
        }
    }
}

/// A group's default restart intensity: at most this many restarts...
pub(crate) const DEFAULT_MAX_RESTARTS: u32 = 5;
/// ... within this window (the numbers of [`Policy::restart`](crate::Policy::restart)).
pub(crate) const DEFAULT_WITHIN: Duration = Duration::from_secs(60);

impl Group {
    /// An empty group named `name` (no `/`: it separates the names of a path), with
    /// [`Strategy::OneForOne`], at most 5 restarts within 60 s, and [`Backoff::default`].
    pub fn new(name: &str) -> Group {
        Group {
            name: Arc::from(name),
            strategy: Strategy::default(),
            max_restarts: DEFAULT_MAX_RESTARTS,
            within: DEFAULT_WITHIN,
            backoff: Backoff::default(),
            restart: None,
            depends_on: Vec::new(),
            start_timeout: None,
            stop_timeout: None,
            children: Vec::new(),
        }
    }

    /// How the group restarts its children when one fails.
    pub fn strategy(mut self, strategy: Strategy) -> Group {
        self.strategy = strategy;
        self
    }

    /// The group's restart intensity: more than `max_restarts` restarts within `within` fail
    /// the group (its children are stopped) and hand the failure to its parent. The limits of
    /// [`Policy::Restart`](crate::Policy::Restart) apply, checked when the group is added.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Group {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// The wait before each restart the group makes (at least
    /// [`MIN_BACKOFF`](crate::MIN_BACKOFF)); it grows with consecutive restarts within the
    /// intensity window.
    pub fn backoff(mut self, backoff: Backoff) -> Group {
        self.backoff = backoff;
        self
    }

    /// Whether the group's parent restarts it when it fails (the default:
    /// [`RestartType::Transient`]).
    pub fn restart(mut self, restart: RestartType) -> Group {
        self.restart = Some(restart);
        self
    }

    /// Starts this group only after its sibling `name` (a service or a group in the same
    /// parent) has started, and stops it before. May be called several times.
    pub fn depends_on(mut self, name: &str) -> Group {
        self.depends_on.push(Arc::from(name));
        self
    }

    /// The start budget of the group's own restarts (the start of the children it restarts).
    /// The default: the host's [`startup_timeout`](crate::HostOptions::startup_timeout), or
    /// none.
    pub fn start_timeout(mut self, timeout: Duration) -> Group {
        self.start_timeout = Some(timeout);
        self
    }

    /// The stop budget of the group's own restarts and of its failure (the stop of the
    /// children it restarts or gives up). The default: the host's
    /// [`shutdown_timeout`](crate::HostOptions::shutdown_timeout).
    pub fn stop_timeout(mut self, timeout: Duration) -> Group {
        self.stop_timeout = Some(timeout);
        self
    }

    /// Adds a service (see [`HostBuilder::add_service`](crate::HostBuilder::add_service)).
    pub fn add_service(mut self, service: impl Into<Service>) -> Group {
        self.children.push(Child::Service(service.into()));
        self
    }

    /// Adds a background service whose body is `body`.
    pub fn background<F>(self, name: &str, body: F) -> Group
    where
        F: FnMut(&Context) -> ServiceResult + Send + 'static,
    {
        self.add_service(Service::background(name, body))
    }

    /// Adds a [`BackgroundService`].
    pub fn background_service(self, name: &str, service: impl BackgroundService) -> Group {
        self.add_service(Service::background_service(name, service))
    }

    /// Adds a [`HostedService`].
    pub fn hosted(self, name: &str, service: impl HostedService) -> Group {
        self.add_service(Service::hosted(name, service))
    }

    /// Adds a group named `name`, built by `build`.
    pub fn group(self, name: &str, build: impl FnOnce(Group) -> Group) -> Group {
        self.add_group(build(Group::new(name)))
    }

    /// Adds a group.
    pub fn add_group(mut self, group: Group) -> Group {
        self.children.push(Child::Group(group));
        self
    }

    /// The group's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let children: Vec<&str> = self.children.iter().map(|c| &**c.name()).collect();
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("max_restarts", &self.max_restarts)
            .field("within", &self.within)
            .field("backoff", &self.backoff)
            .field("restart", &self.restart)
            .field("depends_on", &self.depends_on)
            .field("start_timeout", &self.start_timeout)
            .field("stop_timeout", &self.stop_timeout)
            .field("children", &children)
            .finish()
    }
}
