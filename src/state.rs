//! Lifecycle states and the snapshot of a host.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::failure::Failure;

/// The lifecycle state of a host.
///
/// ```text
///            start()              all started
///  Created ───────────▶ Starting ─────────────▶ Running
///     │                    │ │                     │
///     │ request_stop()     │ │ stop requested      │ stop requested
///     │ then start()       │ └──────────┐          │
///     │                    │ a start    ▼          ▼
///     │                    │ failed   Stopping ◀───┘
///     │                    ▼            │
///     │                  Failed         │ stop sequence done
///     └──────────────────────────────▶ Stopped
/// ```
///
/// A transition A→B implies A < B; `Stopped` and `Failed` are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum HostState {
    /// Built, not started.
    Created = 0,
    /// `start` is running the start phases.
    Starting = 1,
    /// Every service started.
    Running = 2,
    /// A stop was requested or is running.
    Stopping = 3,
    /// The stop sequence finished.
    Stopped = 4,
    /// A start failed; the services that had started were stopped.
    Failed = 5,
}

impl HostState {
    /// `true` for `Stopped` and `Failed`: no transition leaves them.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, HostState::Stopped | HostState::Failed)
    }

    pub(crate) fn from_u8(v: u8) -> HostState {
        match v {
            0 => HostState::Created,
            1 => HostState::Starting,
            2 => HostState::Running,
            3 => HostState::Stopping,
            4 => HostState::Stopped,
            _ => HostState::Failed,
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostState::Created => "created",
            HostState::Starting => "starting",
            HostState::Running => "running",
            HostState::Stopping => "stopping",
            HostState::Stopped => "stopped",
            HostState::Failed => "failed",
        })
    }
}

/// The state of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceState {
    /// Not started yet.
    Created,
    /// Its start hooks are running.
    Starting,
    /// Started (a background service: its body is running).
    Running,
    /// Waiting out a restart backoff.
    Restarting,
    /// A background body returned `Ok(())` before being stopped; the host goes on.
    Completed,
    /// Its stop hooks are running, or its body was told to stop.
    Stopping,
    /// Stopped in time.
    Stopped,
    /// Failed (see its last error); not running.
    Failed,
    /// Missed its deadline: its thread was left running, detached, and is reported.
    TimedOut,
    /// Never started because the host's start stopped before reaching it.
    Skipped,
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::Created => "created",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Restarting => "restarting",
            ServiceState::Completed => "completed",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
            ServiceState::Failed => "failed",
            ServiceState::TimedOut => "timed out",
            ServiceState::Skipped => "skipped",
        })
    }
}

/// One service's line in a [`HostSnapshot`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServiceStatus {
    /// The service's path in the tree: its name, after the names of the
    /// [groups](crate::Group) it is in (`devices/plc-7/poller`); its name at the top level.
    pub name: Arc<str>,
    /// Its state.
    pub state: ServiceState,
    /// How often its body was restarted.
    pub restarts: u32,
    /// Its last failure, if any.
    pub last_error: Option<Failure>,
    /// How long its start took (all start phases), once started.
    pub start_duration: Option<Duration>,
    /// How long its stop took (all stop phases), once stopped.
    pub stop_duration: Option<Duration>,
    /// How stale its heartbeat may be: set for a critical service with
    /// [`Service::liveness`](crate::Service::liveness).
    pub liveness: Option<Duration>,
    /// The time since its last [`Context::heartbeat`](crate::Context::heartbeat) (the host
    /// beats once for it when its start succeeds and each time its body restarts), or `None` if never.
    pub heartbeat_age: Option<Duration>,
    /// The service's own figures, from its [`Service::metrics`](crate::Service::metrics)
    /// callback (empty without one).
    pub metrics: Vec<(&'static str, u64)>,
}

impl ServiceStatus {
    /// `true` if the service is doing its job: it is `Running` and, for a critical service
    /// (one with [`liveness`](ServiceStatus::liveness)), its last heartbeat is at most that
    /// old. A service that failed, completed, is restarting, stopping or stuck is not live.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.state == ServiceState::Running
            && match self.liveness {
                None => true,
                Some(max) => self.heartbeat_age.is_some_and(|age| age <= max),
            }
    }

    /// `true` for a service that declared [`Service::liveness`](crate::Service::liveness).
    #[must_use]
    pub fn is_critical(&self) -> bool {
        self.liveness.is_some()
    }
}

/// One group's line in a [`HostSnapshot`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The group's path in the tree (`devices/plc-7`).
    pub path: Arc<str>,
    /// Its state: `Created`, `Starting`, `Running`, `Restarting` (its supervisor is
    /// restarting children), `Stopping`, `Stopped`, `Failed` (past its restart intensity),
    /// or `Skipped`.
    pub state: ServiceState,
    /// How often it restarted children (one restart may restart several).
    pub restarts: u32,
    /// Its restart strategy.
    pub strategy: crate::supervise::Strategy,
    /// The last failure it handled, if any.
    pub last_error: Option<Failure>,
    /// The paths of its children (services and groups), in the order they were added.
    pub children: Vec<Arc<str>>,
}

/// A consistent picture of a host: its state, every service's status and every group's, in
/// tree order (depth first, children in the order they were added).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HostSnapshot {
    /// The host's state.
    pub state: HostState,
    /// One entry per service, in tree order.
    pub services: Vec<ServiceStatus>,
    /// One entry per group, in tree order.
    pub groups: Vec<GroupStatus>,
}

impl HostSnapshot {
    /// The status of the service at `path` (its name, at the top level).
    #[must_use]
    pub fn service(&self, path: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| &*s.name == path)
    }

    /// The status of the group at `path`.
    #[must_use]
    pub fn group(&self, path: &str) -> Option<&GroupStatus> {
        self.groups.iter().find(|g| &*g.path == path)
    }

    /// The critical services (those with [`Service::liveness`](crate::Service::liveness))
    /// that are not [live](ServiceStatus::is_live). Empty when all are; the systemd watchdog
    /// pings only then.
    #[must_use]
    pub fn not_live(&self) -> Vec<&ServiceStatus> {
        self.services
            .iter()
            .filter(|s| s.is_critical() && !s.is_live())
            .collect()
    }
}
