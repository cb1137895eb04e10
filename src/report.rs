//! [`StopReport`]: the outcome of a stop, per service.
//!
//! Data only, as `state`: it knows [`Failure`], not the host that fills it in, nor [`Error`]
//! (whose [`into_result`](StopReport::into_result) lives in `error`).
//!
//! [`Error`]: crate::Error

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::failure::Failure;
use crate::stop::StopReason;

/// How one service came out of a stop.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// It stopped by the deadline, without error.
    Stopped,
    /// It stopped by the deadline, but failed: a stop hook, or its body earlier on.
    Failed(Failure),
    /// It missed the deadline. Its thread was left running, detached; its token has fired.
    TimedOut,
    /// It never started (the start failed or was stopped before it), so it was not stopped;
    /// its thread ended without running a stop hook.
    NotStarted,
}

/// One service's entry in a [`StopReport`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServiceReport {
    /// The service's name.
    pub name: Arc<str>,
    /// How it came out.
    pub outcome: Outcome,
    /// How long its stop took (for a timed-out service: until it was given up on).
    pub duration: Duration,
}

/// The outcome of a stop: one entry per service, in the order they were stopped.
///
/// A value, not an error: a stop always completes by its deadline, and this says what
/// happened. [`is_clean`](StopReport::is_clean) is `true` when every service stopped in time
/// without error; [`into_result`](StopReport::into_result) turns the rest into an
/// [`Error`](crate::Error).
#[derive(Clone, Debug, Default)]
#[must_use = "a StopReport says which services failed or overran"]
pub struct StopReport {
    pub(crate) services: Vec<ServiceReport>,
    pub(crate) elapsed: Duration,
    pub(crate) reason: Option<StopReason>,
    pub(crate) failure: Option<(Arc<str>, Failure)>,
    pub(crate) complete: bool,
    /// Returned to a `stop` on one of the host's own threads, which does not wait.
    pub(crate) in_progress: bool,
}

impl StopReport {
    pub(crate) fn empty() -> StopReport {
        StopReport {
            complete: true,
            ..StopReport::default()
        }
    }

    /// The report of a stop that runs on (a stop from one of the host's own threads).
    pub(crate) fn in_progress(reason: Option<StopReason>) -> StopReport {
        StopReport {
            reason,
            complete: false,
            in_progress: true,
            ..StopReport::default()
        }
    }

    /// One entry per service, in stop order.
    #[must_use]
    pub fn services(&self) -> &[ServiceReport] {
        &self.services
    }

    /// The entry of the service named `name`.
    #[must_use]
    pub fn service(&self, name: &str) -> Option<&ServiceReport> {
        self.services.iter().find(|s| &*s.name == name)
    }

    /// How long the stop took.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Why the host stopped.
    #[must_use]
    pub fn reason(&self) -> Option<&StopReason> {
        self.reason.as_ref()
    }

    /// The names of the services that missed the deadline (threads left running).
    #[must_use]
    pub fn timed_out(&self) -> Vec<Arc<str>> {
        self.services
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::TimedOut))
            .map(|s| Arc::clone(&s.name))
            .collect()
    }

    /// The services that failed, with how.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Failure)> {
        self.services.iter().filter_map(|s| match &s.outcome {
            Outcome::Failed(f) => Some((&*s.name, f)),
            _ => None,
        })
    }

    /// The failure that stopped the host (a service under `Policy::StopHost`), if any.
    #[must_use]
    pub fn host_failure(&self) -> Option<(&str, &Failure)> {
        self.failure.as_ref().map(|(n, f)| (&**n, f))
    }

    /// `false` when this report was returned while the stop sequence was still running: at a
    /// caller's deadline while another thread ran it, or at once to a `stop` called on one of
    /// the host's own threads.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// `true` when this report was returned by a [`Host::stop`](crate::Host::stop) called on
    /// one of the host's own threads (a hook, a body, a queue job, a callback): such a call
    /// requests the stop and returns at once, as the stop may be waiting for its caller. The
    /// stop goes on; [`Host::join`](crate::Host::join) from another thread, or the
    /// [`stopped`](crate::HostHandle::stopped) event, tell its outcome. Such a report is
    /// incomplete, and [`into_result`](StopReport::into_result) is `Ok`: nothing failed yet.
    #[must_use]
    pub fn is_in_progress(&self) -> bool {
        self.in_progress
    }

    /// `true` when the stop completed, every service stopped by the deadline, and none failed.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.complete
            && self
                .services
                .iter()
                .all(|s| matches!(s.outcome, Outcome::Stopped | Outcome::NotStarted))
    }
}

impl fmt::Display for StopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stopped in {:?}", self.elapsed)?;
        if self.in_progress {
            f.write_str(" (in progress: requested from one of the host's own threads)")?;
        } else if !self.complete {
            f.write_str(" (incomplete: the stop sequence is still running)")?;
        }
        for s in &self.services {
            match &s.outcome {
                Outcome::Stopped => write!(f, "; `{}` stopped in {:?}", s.name, s.duration)?,
                Outcome::Failed(e) => write!(f, "; `{}` failed: {e}", s.name)?,
                Outcome::TimedOut => write!(
                    f,
                    "; `{}` TIMED OUT after {:?} (thread left running)",
                    s.name, s.duration
                )?,
                Outcome::NotStarted => write!(f, "; `{}` never started", s.name)?,
            }
        }
        Ok(())
    }
}
