//! [`HostOptions`]: the host-wide settings.

use std::time::Duration;

use crate::error::Error;
use crate::supervise::Policy;

/// The smallest thread stack accepted, in bytes.
pub(crate) const MIN_STACK_SIZE: usize = 64 * 1024;

/// Host-wide settings, as .NET's `HostOptions`. Set them through [`HostBuilder`]'s methods or
/// all at once with [`HostBuilder::options`].
///
/// [`HostBuilder`]: crate::HostBuilder
/// [`HostBuilder::options`]: crate::HostBuilder::options
///
/// ```
/// use std::time::Duration;
/// use threadhost::HostOptions;
///
/// let options = HostOptions::default();
/// assert_eq!(options.shutdown_timeout, Duration::from_secs(30));
/// assert_eq!(options.startup_timeout, None);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HostOptions {
    /// The stop deadline used by [`Host::run`](crate::Host::run), `join` after a stop request,
    /// and dropping a running host. Default 30 s, as .NET.
    pub shutdown_timeout: Duration,
    /// The start deadline used by `run`. Default `None`: no deadline, as .NET.
    pub startup_timeout: Option<Duration>,
    /// Start services concurrently where no dependency forbids it. Default `false`.
    pub start_concurrently: bool,
    /// Stop services concurrently where no dependency forbids it. Default `false`.
    pub stop_concurrently: bool,
    /// The failure policy of services that set none. Default [`Policy::StopHost`].
    pub failure_policy: Policy,
    /// The stack size of service threads, in bytes. Default `None`: Rust's default.
    pub stack_size: Option<usize>,
}

impl Default for HostOptions {
    fn default() -> HostOptions {
        HostOptions {
            shutdown_timeout: Duration::from_secs(30),
            startup_timeout: None,
            start_concurrently: false,
            stop_concurrently: false,
            failure_policy: Policy::StopHost,
            stack_size: None,
        }
    }
}

impl HostOptions {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate_stack_size("stack_size", self.stack_size)?;
        self.failure_policy.validate("<host default>")
    }
}

pub(crate) fn validate_stack_size(name: &str, size: Option<usize>) -> Result<(), Error> {
    match size {
        Some(bytes) if bytes < MIN_STACK_SIZE => Err(Error::invalid_option(
            name,
            bytes,
            format!("a thread stack must be at least {MIN_STACK_SIZE} bytes"),
        )),
        _ => Ok(()),
    }
}
