//! [`HostOptions`]: the host-wide settings, and (the `env` feature) their `THREADHOST_*`
//! environment variables.

#[cfg(feature = "env")]
use std::ffi::OsString;
use std::time::Duration;

use crate::error::Error;
use crate::supervise::Policy;

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
    /// The stack size of service threads (and of the thread that runs the reload hooks), in
    /// bytes: from 64 KiB to 1 GiB, checked by [`HostBuilder::build`](crate::HostBuilder::build).
    /// Default `None`: Rust's default.
    pub stack_size: Option<usize>,
    /// The deadline of a reload requested with
    /// [`HostHandle::request_reload`](crate::HostHandle::request_reload) (and so of one
    /// requested by `SIGHUP` under the console lifetime). Default 30 s.
    pub reload_timeout: Duration,
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
            reload_timeout: Duration::from_secs(30),
        }
    }
}

/// The environment variables [`HostOptions::apply_env`] reads, one per field.
#[cfg(feature = "env")]
pub(crate) const ENV_VARS: [&str; 7] = [
    "THREADHOST_SHUTDOWN_TIMEOUT",
    "THREADHOST_STARTUP_TIMEOUT",
    "THREADHOST_START_CONCURRENTLY",
    "THREADHOST_STOP_CONCURRENTLY",
    "THREADHOST_STACK_SIZE",
    "THREADHOST_FAILURE_POLICY",
    "THREADHOST_RELOAD_TIMEOUT",
];

impl HostOptions {
    /// The default options with the environment applied over them
    /// ([`apply_env`](HostOptions::apply_env)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable and its value.
    #[cfg(feature = "env")]
    #[cfg_attr(docsrs, doc(cfg(feature = "env")))]
    pub fn from_env() -> Result<HostOptions, Error> {
        let mut options = HostOptions::default();
        options.apply_env()?;
        Ok(options)
    }

    /// Applies the process environment over these options: each variable that is set and not
    /// empty replaces its field; the others leave it as it is.
    ///
    /// | variable | field | values |
    /// | --- | --- | --- |
    /// | `THREADHOST_SHUTDOWN_TIMEOUT` | `shutdown_timeout` | a duration: `30s`, `500ms`, `2m`, `1h`, `1.5s` |
    /// | `THREADHOST_STARTUP_TIMEOUT` | `startup_timeout` | a duration, or `none` |
    /// | `THREADHOST_START_CONCURRENTLY` | `start_concurrently` | `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` |
    /// | `THREADHOST_STOP_CONCURRENTLY` | `stop_concurrently` | as above |
    /// | `THREADHOST_STACK_SIZE` | `stack_size` | bytes, optionally `k`/`KiB`, `m`/`MiB`, `g`/`GiB`; 64 KiB to 1 GiB |
    /// | `THREADHOST_FAILURE_POLICY` | `failure_policy` | `stop-host` or `ignore` |
    /// | `THREADHOST_RELOAD_TIMEOUT` | `reload_timeout` | a duration |
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable and its value (also for a value that is
    /// not UTF-8). On error, the fields applied before the bad one keep their new values.
    #[cfg(feature = "env")]
    #[cfg_attr(docsrs, doc(cfg(feature = "env")))]
    pub fn apply_env(&mut self) -> Result<(), Error> {
        self.apply_env_with(|name| std::env::var_os(name))
    }

    /// [`apply_env`](HostOptions::apply_env) with the variables read through `lookup`
    /// instead of the process environment: for tests, or a configuration source of your own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable and its value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{Error, HostOptions};
    ///
    /// let mut options = HostOptions::default();
    /// options.apply_env_with(|name| match name {
    ///     "THREADHOST_SHUTDOWN_TIMEOUT" => Some("500ms".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(options.shutdown_timeout, Duration::from_millis(500));
    ///
    /// let err = options
    ///     .apply_env_with(|name| (name == "THREADHOST_STACK_SIZE").then(|| "huge".into()))
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { ref name, ref value, .. }
    ///     if name == "THREADHOST_STACK_SIZE" && value == "huge"));
    /// # Ok::<(), Error>(())
    /// ```
    #[cfg(feature = "env")]
    #[cfg_attr(docsrs, doc(cfg(feature = "env")))]
    pub fn apply_env_with(
        &mut self,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<(), Error> {
        let get = |name: &str| -> Result<Option<String>, Error> {
            match lookup(name) {
                None => Ok(None),
                Some(raw) => match raw.into_string() {
                    Ok(text) if text.trim().is_empty() => Ok(None),
                    Ok(text) => Ok(Some(text.trim().to_owned())),
                    Err(raw) => Err(Error::invalid_option(
                        name,
                        raw.to_string_lossy(),
                        "the value is not valid UTF-8",
                    )),
                },
            }
        };
        let [
            shutdown,
            startup,
            start_conc,
            stop_conc,
            stack,
            policy,
            reload,
        ] = ENV_VARS;
        if let Some(v) = get(shutdown)? {
            self.shutdown_timeout = parse_duration(shutdown, &v)?;
        }
        if let Some(v) = get(startup)? {
            self.startup_timeout = if v.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(parse_duration(startup, &v)?)
            };
        }
        if let Some(v) = get(start_conc)? {
            self.start_concurrently = parse_bool(start_conc, &v)?;
        }
        if let Some(v) = get(stop_conc)? {
            self.stop_concurrently = parse_bool(stop_conc, &v)?;
        }
        if let Some(v) = get(stack)? {
            let bytes = parse_size(stack, &v)?;
            crate::thread::check_stack_size(bytes)
                .map_err(|reason| Error::invalid_option(stack, &v, reason))?;
            self.stack_size = Some(bytes);
        }
        if let Some(v) = get(policy)? {
            self.failure_policy = match v.to_ascii_lowercase().as_str() {
                "stop-host" | "stophost" | "stop_host" => Policy::StopHost,
                "ignore" => Policy::Ignore,
                _ => {
                    return Err(Error::invalid_option(
                        policy,
                        v,
                        "`stop-host` or `ignore` (a restart policy is set in code)",
                    ));
                }
            };
        }
        if let Some(v) = get(reload)? {
            self.reload_timeout = parse_duration(reload, &v)?;
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate_stack_size("stack_size", self.stack_size)?;
        self.failure_policy.validate("<host default>")
    }
}

/// Checks a stack size option named `name` (`None`: Rust's default, always fine).
pub(crate) fn validate_stack_size(name: &str, size: Option<usize>) -> Result<(), Error> {
    match size {
        Some(bytes) => crate::thread::check_stack_size(bytes)
            .map_err(|reason| Error::invalid_option(name, bytes, reason)),
        None => Ok(()),
    }
}

/// A duration with a unit: `500ms`, `30s`, `2m`, `1h`; a decimal number is allowed (`1.5s`).
#[cfg(feature = "env")]
fn parse_duration(name: &str, value: &str) -> Result<Duration, Error> {
    let bad = |reason: &str| Error::invalid_option(name, value, reason);
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad("a duration needs a unit: `ms`, `s`, `m` or `h` (e.g. `30s`)"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| bad("a duration is a number and a unit, e.g. `30s`, `500ms`, `2m`"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad("the unit must be `ms`, `s`, `m` or `h`")),
    };
    Duration::try_from_secs_f64(number * scale).map_err(|_| bad("the duration is out of range"))
}

#[cfg(feature = "env")]
fn parse_bool(name: &str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid_option(
            name,
            value,
            "`true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)",
        )),
    }
}

/// Bytes, with an optional binary suffix: `262144`, `256k`, `256KiB`, `1m`, `1MiB`, `1g`.
#[cfg(feature = "env")]
fn parse_size(name: &str, value: &str) -> Result<usize, Error> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => {
            return Err(Error::invalid_option(
                name,
                value,
                "a size in bytes, optionally with `k`/`KiB` or `m`/`MiB` (e.g. `256k`)",
            ));
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| {
            Error::invalid_option(
                name,
                value,
                "a size in bytes, optionally with `k`/`KiB` or `m`/`MiB` (e.g. `256k`)",
            )
        })
}
