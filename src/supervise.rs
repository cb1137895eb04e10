//! Failure policy: what happens when a service body fails or panics.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::Error;

#[cfg(test)]
mod tests;

/// What the host does when a background service's body returns an error or panics.
///
/// A start failure always fails the host's start, whatever the policy; the policy is about
/// failures after start.
///
/// ```
/// use std::time::Duration;
/// use threadhost::{Backoff, Policy};
///
/// let policy = Policy::Restart {
///     backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)),
///     max_restarts: 5,
///     within: Duration::from_secs(60),
/// };
/// # let _ = policy;
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Log the failure with the service's name and stop the host; `Host::run` then returns
    /// `Error::ServiceFailed` (a non-zero exit code). The default, as in .NET 6+. In a
    /// [`Group`](crate::Group), the failure goes to the group instead, whose [`Strategy`]
    /// restarts it (or, past the group's intensity, fails the group and so on up the tree,
    /// to the host).
    #[default]
    StopHost,
    /// Log the failure and keep the host running; the service stays failed.
    Ignore,
    /// Restart the body on its thread after a backoff; more than `max_restarts` failures
    /// within `within` escalate to [`Policy::StopHost`] (Erlang/OTP's restart intensity):
    /// the host stops, or the service's group takes the failure.
    /// A stop during the backoff wait ends it at once.
    ///
    /// Checked by [`HostBuilder::build`](crate::HostBuilder::build) (else
    /// [`Error::InvalidOption`] naming the field): `max_restarts` at most
    /// [`MAX_RESTARTS`] or exactly [`UNLIMITED_RESTARTS`]; `within` not zero; the backoff's
    /// `initial` not above its `max`, `multiplier` at least 1.0, `jitter` within 0.0 to 1.0.
    /// Every wait, jitter included, is at least [`MIN_BACKOFF`] (1 ms): a zero backoff is
    /// raised to it, so a body that fails at once is restarted at most 1000 times a second
    /// instead of spinning a core. `Duration::MAX` (for `backoff.max`, `backoff.initial` or
    /// `within`) means "never": no overflow, no panic.
    Restart {
        /// The wait before each restart (at least [`MIN_BACKOFF`]).
        backoff: Backoff,
        /// How many restarts are allowed within `within`: at most [`MAX_RESTARTS`], or
        /// [`UNLIMITED_RESTARTS`] (`u32::MAX`) to never escalate.
        max_restarts: u32,
        /// The sliding window over which restarts are counted (not zero).
        within: Duration,
    },
}

/// How a [`Group`](crate::Group) restarts its children when one of them fails (Erlang/OTP's
/// supervisor strategies).
///
/// A failure reaches its group when the service's own [`Policy`] gives it up:
/// [`Policy::StopHost`] at once, [`Policy::Restart`] once its restart intensity is exceeded
/// ([`Policy::Ignore`] keeps it to the service). A failing child group reaches its parent the
/// same way. The group then restarts the children its strategy names, each restart counted
/// against the group's [intensity](crate::Group::intensity); past it the group fails, and
/// its parent's strategy applies to it. The host itself is a group that never restarts: a
/// failure reaching it stops the host ([`Policy::Ignore`] as the host's policy keeps it
/// running instead).
///
/// ```
/// use threadhost::{Group, Strategy};
///
/// // A connection and the poller that uses it: restarted together.
/// let device = Group::new("plc-7")
///     .strategy(Strategy::OneForAll)
///     .background("connection", |ctx| { ctx.token().wait(); Ok(()) })
///     .background("poller", |ctx| { ctx.token().wait(); Ok(()) });
/// # drop(device);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that failed. The default.
    #[default]
    OneForOne,
    /// Stop every other child (in reverse start order), then start all of them again, in
    /// order.
    OneForAll,
    /// Restart the child that failed and every child started after it (in start order:
    /// what [`depends_on`](crate::Service::depends_on) implies), stopping them in reverse.
    RestForOne,
}

/// When a child of a group is restarted (Erlang/OTP's restart types). Set with
/// [`Service::restart`](crate::Service::restart) or [`Group::restart`](crate::Group::restart).
///
/// Without one, a service keeps the behaviour it has outside groups: a failure is handled
/// by its [`Policy`] and then its group, and a body that returns `Ok(())` before it is
/// stopped stays in the tree as [`Completed`](crate::ServiceState::Completed). A group
/// without one is [`Transient`](RestartType::Transient).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RestartType {
    /// Always restarted: after a failure, and after its body returns `Ok(())` before it was
    /// asked to stop (each restart counted against its group's intensity).
    Permanent,
    /// Restarted only after a failure; removed from the tree when its body returns `Ok(())`.
    Transient,
    /// Never restarted: removed from the tree when it ends, whether it failed or not (a
    /// failure is logged, and goes no further).
    Temporary,
}

/// The shortest wait before a restart: a smaller backoff (zero included) is raised to it.
///
/// 1 ms bounds a body that fails at once to 1000 restarts a second (each logs a line and
/// updates the host's state); without the floor a zero backoff spun a core on restarts
/// (RELIABILITY.md, "Sizes and outside text"). It is small enough not to delay a deliberate
/// quick retry noticeably.
pub const MIN_BACKOFF: Duration = Duration::from_millis(1);

/// The largest finite `max_restarts` of [`Policy::Restart`]: the restart intensity keeps one
/// timestamp per restart within the window, so this bounds that memory (about 1.6 MB).
pub const MAX_RESTARTS: u32 = 100_000;

/// `max_restarts` of [`Policy::Restart`] that never escalates: restart for ever (with the
/// backoff, at least [`MIN_BACKOFF`]); no timestamps are kept.
pub const UNLIMITED_RESTARTS: u32 = u32::MAX;

impl Policy {
    /// The default restart policy: [`Backoff::default`] (doubling from 100 ms to 30 s), at
    /// most 5 restarts within 60 s, then [`Policy::StopHost`]. (`THREADHOST_POLICY_RESTART`
    /// in C.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use threadhost::{Backoff, Policy};
    ///
    /// assert_eq!(
    ///     Policy::restart(),
    ///     Policy::Restart {
    ///         backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30)),
    ///         max_restarts: 5,
    ///         within: Duration::from_secs(60),
    ///     }
    /// );
    /// ```
    #[must_use]
    pub fn restart() -> Policy {
        Policy::Restart {
            backoff: Backoff::default(),
            max_restarts: 5,
            within: Duration::from_secs(60),
        }
    }

    pub(crate) fn validate(&self, service: &str) -> Result<(), Error> {
        if let Policy::Restart {
            backoff,
            within,
            max_restarts,
        } = self
        {
            let name = format!("restart policy of service `{service}`");
            validate_intensity(&name, backoff, *max_restarts, *within)?;
        }
        Ok(())
    }
}

/// Checks a restart intensity and its backoff (a service's [`Policy::Restart`], a group's
/// [`intensity`](crate::Group::intensity)); errors name `name: field`.
pub(crate) fn validate_intensity(
    name: &str,
    backoff: &Backoff,
    max_restarts: u32,
    within: Duration,
) -> Result<(), Error> {
    if max_restarts > MAX_RESTARTS && max_restarts != UNLIMITED_RESTARTS {
        return Err(Error::invalid_option(
            format!("{name}: max_restarts"),
            max_restarts,
            format!(
                "must be at most {MAX_RESTARTS} (one timestamp is kept per restart in \
                 the window), or u32::MAX ({UNLIMITED_RESTARTS}) for unlimited restarts"
            ),
        ));
    }
    backoff.validate(name)?;
    if within.is_zero() {
        return Err(Error::invalid_option(
            format!("{name}: within"),
            "0s",
            "must be a positive duration",
        ));
    }
    Ok(())
}

/// The wait before a restart: `initial · multiplier^n`, capped at `max`, with optional jitter.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// The growth factor per consecutive restart (≥ 1.0).
    pub multiplier: f64,
    /// The fraction (0.0 to 1.0) of each wait that is randomised: a wait `w` becomes a
    /// uniform value in `[w·(1−jitter), w]`.
    pub jitter: f64,
}

impl Default for Backoff {
    /// Doubling from 100 ms up to 30 s, no jitter (the backoff of [`Policy::restart`]).
    fn default() -> Backoff {
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Doubling from `initial` up to `max`, no jitter.
    #[must_use]
    pub fn exponential(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.0,
        }
    }

    /// The same wait every time.
    #[must_use]
    pub fn fixed(wait: Duration) -> Backoff {
        Backoff {
            initial: wait,
            max: wait,
            multiplier: 1.0,
            jitter: 0.0,
        }
    }

    /// This backoff with `jitter` (0.0 to 1.0).
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// Checks the backoff's fields (else [`Error::InvalidOption`] naming `name: field`):
    /// `multiplier` at least 1.0, `jitter` within 0.0 to 1.0, `initial` not above `max`.
    pub(crate) fn validate(&self, name: &str) -> Result<(), Error> {
        if self.multiplier.is_nan() || self.multiplier < 1.0 {
            return Err(Error::invalid_option(
                format!("{name}: multiplier"),
                self.multiplier,
                "must be at least 1.0",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::invalid_option(
                format!("{name}: jitter"),
                self.jitter,
                "must be between 0.0 and 1.0",
            ));
        }
        if self.initial > self.max {
            return Err(Error::invalid_option(
                format!("{name}: initial backoff"),
                format!("{:?}", self.initial),
                format!("must not exceed the maximum backoff {:?}", self.max),
            ));
        }
        Ok(())
    }

    /// The wait before restart number `attempt` (0 for the first), before jitter and before
    /// the [`MIN_BACKOFF`] floor the host applies.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.min(1024) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::try_from_secs_f64(secs).map_or(self.max, |d| d.min(self.max))
        }
    }
}

/// Tracks the restarts of one service: the intensity window and the backoff attempt.
#[derive(Debug)]
pub(crate) struct RestartTracker {
    /// The restarts within the window (only the last one under `UNLIMITED_RESTARTS`).
    times: VecDeque<Instant>,
    /// Restarts since the window was last clear (what `restarts` reports when unlimited).
    streak: usize,
    /// The last `next` was under `UNLIMITED_RESTARTS`.
    unlimited: bool,
    attempt: u32,
    seed: u64,
}

impl RestartTracker {
    pub(crate) fn new(seed: u64) -> RestartTracker {
        RestartTracker {
            times: VecDeque::new(),
            streak: 0,
            unlimited: false,
            attempt: 0,
            // xorshift must not start at zero.
            seed: seed | 1,
        }
    }

    /// Records a failure now; returns the wait before the restart (at least
    /// [`MIN_BACKOFF`]), or `None` when the restart intensity is exceeded (escalate).
    pub(crate) fn next(
        &mut self,
        backoff: &Backoff,
        max_restarts: u32,
        within: Duration,
    ) -> Option<Duration> {
        let now = Instant::now();
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > within)
        {
            self.times.pop_front();
        }
        let unlimited = max_restarts == UNLIMITED_RESTARTS;
        self.unlimited = unlimited;
        if !unlimited && self.times.len() >= max_restarts as usize {
            return None;
        }
        let window_clear = self.times.is_empty();
        if unlimited {
            // Nothing is counted: the last restart alone decides whether the window is clear.
            self.times.clear();
        }
        self.times.push_back(now);
        // The backoff grows with consecutive failures inside the window and resets once the
        // window is clear.
        if window_clear {
            self.attempt = 0;
            self.streak = 1;
        } else {
            self.attempt = self.attempt.saturating_add(1);
            self.streak = self.streak.saturating_add(1);
        }
        let wait = backoff.delay(self.attempt);
        Some(self.jitter(wait, backoff.jitter).max(MIN_BACKOFF))
    }

    fn jitter(&mut self, wait: Duration, jitter: f64) -> Duration {
        jittered(wait, jitter, &mut self.seed)
    }

    /// The restarts counted now: within the window, or (unlimited) since it was last clear.
    pub(crate) fn restarts(&self) -> usize {
        if self.unlimited {
            self.streak
        } else {
            self.times.len()
        }
    }
}

/// `wait` with `jitter` (0.0 to 1.0) applied: a uniform value in `[wait·(1−jitter), wait]`,
/// drawn from the xorshift state `seed` (not zero).
pub(crate) fn jittered(wait: Duration, jitter: f64, seed: &mut u64) -> Duration {
    if jitter <= 0.0 {
        return wait;
    }
    // xorshift64: no dependency for a few random numbers.
    let mut x = *seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *seed = x;
    let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
    // Not `mul_f64`: it panics when the product rounds past `Duration::MAX` (a
    // `Duration::MAX` backoff with jitter did).
    Duration::try_from_secs_f64(wait.as_secs_f64() * (1.0 - jitter * unit))
        .map_or(wait, |w| w.min(wait))
}
