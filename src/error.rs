//! [`Error`], the crate's error type, and what a service returns ([`BoxError`],
//! [`ServiceResult`]).
//!
//! Error knows the data types it carries (`failure`, `state`, `report`), none of which knows
//! it back; the host, which makes errors, is not among them. The one conversion from a data
//! type into an `Error`, [`StopReport::into_result`], is here for that reason.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::failure::Failure;
use crate::report::StopReport;
use crate::state::HostState;

/// The boxed error a service hook or body returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a service hook or body returns: `Ok(())`, or the error that made it fail.
pub type ServiceResult = Result<(), BoxError>;

/// Everything that can go wrong in threadhost.
///
/// Stop outcomes are values, not errors: [`Host::stop`](crate::Host::stop) returns a
/// [`StopReport`]. `Error` is for what prevented an operation: a bad option, a failed or
/// overrunning start, a host used in the wrong state; and, from [`Host::run`](crate::Host::run),
/// a service failure or an overrun stop, carrying the full report.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An option or argument was out of range; names the option and the value.
    InvalidOption {
        /// The option (or environment variable) that was wrong.
        name: String,
        /// The value it was given.
        value: String,
        /// What it must be instead.
        reason: String,
    },
    /// The operation is not valid in the host's current state.
    InvalidState {
        /// The operation attempted.
        operation: &'static str,
        /// The state the host was in.
        state: HostState,
    },
    /// Two services were registered under one name (two children of one group under one
    /// name: service or group).
    DuplicateService {
        /// The name used twice (its path in the tree).
        service: Arc<str>,
    },
    /// A runtime change named a path nothing in the tree has
    /// ([`HostHandle::remove`](crate::HostHandle::remove) and the other changes).
    UnknownChild {
        /// The path asked for.
        path: Arc<str>,
    },
    /// A restart found a service whose thread missed an earlier stop deadline and still
    /// runs: it cannot run twice.
    StillRunning {
        /// The service's path.
        service: Arc<str>,
    },
    /// A runtime change could not begin by its deadline: the host's start or another change
    /// held the tree until then.
    ChangeTimeout {
        /// The change asked for (`add`, `remove`, `stop_child`, `restart_child`).
        operation: &'static str,
        /// The path it was for.
        path: Arc<str>,
    },
    /// A service depends on a name no service has.
    UnknownDependency {
        /// The dependent service.
        service: Arc<str>,
        /// The missing name.
        dependency: Arc<str>,
    },
    /// The declared dependencies form a cycle.
    DependencyCycle {
        /// The services on the cycle, in order.
        services: Vec<Arc<str>>,
    },
    /// The OS refused to create a service's thread.
    Spawn {
        /// The service whose thread could not be created.
        service: Arc<str>,
        /// The OS error.
        source: io::Error,
    },
    /// A service's start hook failed or panicked; the services already started were stopped.
    StartFailed {
        /// The service that failed to start.
        service: Arc<str>,
        /// How it failed.
        failure: Failure,
    },
    /// A service's start did not finish by the start deadline; the services already started
    /// were stopped, and the late one was told to give up (its token fired).
    StartTimeout {
        /// The service still starting when the deadline passed.
        service: Arc<str>,
    },
    /// A service failed under the `StopHost` policy, so the host stopped (from `run`).
    ServiceFailed {
        /// The service that failed.
        service: Arc<str>,
        /// How it failed.
        failure: Failure,
        /// The report of the stop that followed.
        report: Box<StopReport>,
    },
    /// The stop did not finish by its deadline (from `run`); the report names the services
    /// whose threads were left running.
    StopTimeout {
        /// The services that overran.
        services: Vec<Arc<str>>,
        /// The full report.
        report: Box<StopReport>,
    },
    /// `join` returned at its deadline before the host had stopped.
    JoinTimeout {
        /// The host's state when the deadline passed.
        state: HostState,
    },
    /// A scope was asked for a type nobody registered.
    UnregisteredType {
        /// The type asked for.
        type_name: &'static str,
    },
    /// A scoped service's factory returned an error or panicked.
    FactoryFailed {
        /// The type whose factory failed.
        type_name: &'static str,
        /// How it failed.
        failure: Failure,
    },
    /// A scoped type was asked for outside a scope (as a singleton).
    ScopedType {
        /// The scoped type.
        type_name: &'static str,
    },
    /// A reload was asked for with [`HostHandle::reload`](crate::HostHandle::reload) while
    /// another reload runs (or from a reload hook);
    /// [`request_reload`](crate::HostHandle::request_reload) queues one instead.
    ReloadInProgress,
    /// Installing the signal handlers failed.
    #[cfg(feature = "termination")]
    #[cfg_attr(docsrs, doc(cfg(feature = "termination")))]
    Signal(io::Error),
}

impl Error {
    /// The service this error is about (its path in the tree), if any: for
    /// [`UnknownChild`](Error::UnknownChild) and [`ChangeTimeout`](Error::ChangeTimeout),
    /// the path asked for.
    #[must_use]
    pub fn service(&self) -> Option<&str> {
        match self {
            Error::DuplicateService { service }
            | Error::UnknownDependency { service, .. }
            | Error::Spawn { service, .. }
            | Error::StartFailed { service, .. }
            | Error::StartTimeout { service }
            | Error::StillRunning { service }
            | Error::ServiceFailed { service, .. } => Some(service),
            Error::UnknownChild { path } | Error::ChangeTimeout { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The stop report this error carries (`ServiceFailed`, `StopTimeout`).
    #[must_use]
    pub fn report(&self) -> Option<&StopReport> {
        match self {
            Error::ServiceFailed { report, .. } | Error::StopTimeout { report, .. } => Some(report),
            _ => None,
        }
    }

    pub(crate) fn invalid_option(
        name: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Error {
        Error::InvalidOption {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl StopReport {
    /// `Err` when a service failed under `Policy::StopHost` (`Error::ServiceFailed`) or the
    /// stop overran (`Error::StopTimeout`); `Ok` otherwise (also while
    /// [in progress](StopReport::is_in_progress)), with the report.
    ///
    /// # Errors
    ///
    /// [`Error::ServiceFailed`](Error::ServiceFailed) first, then
    /// [`Error::StopTimeout`](Error::StopTimeout).
    pub fn into_result(self) -> Result<StopReport, Error> {
        if let Some((service, failure)) = self.failure.clone() {
            return Err(Error::ServiceFailed {
                service,
                failure,
                report: Box::new(self),
            });
        }
        if self.in_progress {
            return Ok(self);
        }
        let late = self.timed_out();
        if !late.is_empty() || !self.complete {
            return Err(Error::StopTimeout {
                services: late,
                report: Box::new(self),
            });
        }
        Ok(self)
    }
}

fn join_names(names: &[Arc<str>], sep: &str) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

impl fmt::Display for Error {
    /// One line: names and values that came from outside (an environment variable's value, a
    /// dependency's name, a stop reason) have their control characters escaped
    /// (`crate::text`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_line(&mut crate::text::Escaping(f))
    }
}

impl Error {
    fn write_line(&self, f: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Error::InvalidOption {
                name,
                value,
                reason,
            } => write!(f, "invalid value `{value}` for {name}: {reason}"),
            Error::InvalidState { operation, state } => {
                write!(f, "cannot {operation} a host that is {state}")
            }
            Error::DuplicateService { service } => {
                write!(f, "two services (or groups) are named `{service}`")
            }
            Error::UnknownChild { path } => {
                write!(f, "nothing in the host's tree is at `{path}`")
            }
            Error::StillRunning { service } => write!(
                f,
                "cannot restart service `{service}`: its thread missed a stop deadline and still runs"
            ),
            Error::ChangeTimeout { operation, path } => write!(
                f,
                "could not {operation} `{path}` by its deadline: the host's start or another change held the tree"
            ),
            Error::UnknownDependency {
                service,
                dependency,
            } => write!(
                f,
                "service `{service}` depends on `{dependency}`, which is not registered"
            ),
            Error::DependencyCycle { services } => write!(
                f,
                "service dependencies form a cycle: {}",
                join_names(services, " -> ")
            ),
            Error::Spawn { service, source } => {
                write!(
                    f,
                    "could not spawn the thread of service `{service}`: {source}"
                )
            }
            Error::StartFailed { service, failure } => {
                write!(f, "service `{service}` failed to start: {failure}")
            }
            Error::StartTimeout { service } => {
                write!(f, "service `{service}` did not start by the start deadline")
            }
            Error::ServiceFailed {
                service, failure, ..
            } => write!(f, "service `{service}` failed: {failure}"),
            Error::StopTimeout { services, .. } => write!(
                f,
                "the stop deadline passed with {} still running",
                join_names(services, ", ")
            ),
            Error::JoinTimeout { state } => {
                write!(f, "join deadline passed while the host was {state}")
            }
            Error::UnregisteredType { type_name } => {
                write!(f, "no service of type `{type_name}` is registered")
            }
            Error::FactoryFailed { type_name, failure } => {
                write!(f, "the factory of scoped `{type_name}` failed: {failure}")
            }
            Error::ScopedType { type_name } => write!(
                f,
                "`{type_name}` is a scoped service: get it from a scope, not as a singleton"
            ),
            Error::ReloadInProgress => f.write_str("cannot reload: another reload is running"),
            #[cfg(feature = "termination")]
            Error::Signal(e) => write!(f, "could not install the signal handlers: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } => Some(source),
            Error::StartFailed {
                failure: Failure::Error(e),
                ..
            }
            | Error::ServiceFailed {
                failure: Failure::Error(e),
                ..
            }
            | Error::FactoryFailed {
                failure: Failure::Error(e),
                ..
            } => Some(e.as_ref()),
            #[cfg(feature = "termination")]
            Error::Signal(e) => Some(e),
            _ => None,
        }
    }
}
