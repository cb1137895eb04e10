//! [`Error`], the crate's error type, and [`Failure`], how a service failed.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::host::{HostState, StopReport};

/// The boxed error a service hook or body returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a service hook or body returns: `Ok(())`, or the error that made it fail.
pub type ServiceResult = Result<(), BoxError>;

/// How a service failed: an error it returned, or a panic (with its message).
///
/// Panics are data: a panic in a service is caught on the service's own thread and becomes a
/// `Failure::Panic`; it never crosses to another thread or over the C boundary.
#[derive(Clone, Debug)]
pub enum Failure {
    /// The hook or body returned this error.
    Error(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The hook or body panicked with this message.
    Panic(Arc<str>),
}

impl Failure {
    /// `true` for a panic.
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(self, Failure::Panic(_))
    }

    /// The failure of a panic caught with [`std::panic::catch_unwind`]: a
    /// [`Failure::Panic`] with the payload's message (the payload as `&str` or `String`, else
    /// a placeholder), on one line, as threadhost reports its own caught panics. The payload
    /// is dropped here; a panic in its own `Drop` is swallowed.
    ///
    /// ```
    /// use threadhost::Failure;
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("disk {}", "full")).unwrap_err();
    /// let failure = Failure::from_panic(payload);
    /// assert!(failure.is_panic());
    /// assert_eq!(failure.to_string(), "panicked: disk full");
    /// ```
    #[must_use]
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Failure {
        Failure::Panic(crate::panic::take_message(payload).into())
    }

    pub(crate) fn from_box(error: BoxError) -> Failure {
        Failure::Error(Arc::from(error))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A user's `Display`: guarded, as a failure is logged on threadhost threads.
            Failure::Error(e) => write!(f, "{}", crate::panic::Guarded(&**e)),
            Failure::Panic(message) => write!(f, "panicked: {message}"),
        }
    }
}

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
    /// Two services were registered under one name.
    DuplicateService {
        /// The name used twice.
        service: Arc<str>,
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
    /// Installing the termination-signal handler failed.
    #[cfg(feature = "termination")]
    #[cfg_attr(docsrs, doc(cfg(feature = "termination")))]
    Signal(ctrlc::Error),
}

impl Error {
    /// The service this error is about, if any.
    #[must_use]
    pub fn service(&self) -> Option<&str> {
        match self {
            Error::DuplicateService { service }
            | Error::UnknownDependency { service, .. }
            | Error::Spawn { service, .. }
            | Error::StartFailed { service, .. }
            | Error::StartTimeout { service }
            | Error::ServiceFailed { service, .. } => Some(service),
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

fn join_names(names: &[Arc<str>], sep: &str) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
                write!(f, "two services are named `{service}`")
            }
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
            #[cfg(feature = "termination")]
            Error::Signal(e) => write!(f, "could not install the signal handler: {e}"),
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
