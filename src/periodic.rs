//! Periodic (timed) services: a tick closure run at a fixed rate on absolute deadlines.
//!
//! Built only on the public service API: a [`Periodic`] becomes an ordinary
//! [`BackgroundService`] inside a [`Service`], so every per-service setting (failure policy,
//! dependencies, stack size, timeouts) applies to it as to any other service.
//!
//! # Schedule
//!
//! Slot `k` is due at `origin + k·period`, computed by adding the exact period to the previous
//! slot (integer nanoseconds), never by adding the period to the time a tick *ended*: the
//! lateness of one wake-up never shifts the next, so no drift accumulates. The one thread of
//! the service waits for each slot with `token.wait_until(slot)` (a condition variable, never
//! `thread::sleep`), so a stop interrupts the wait at once and ticks can never overlap.
//!
//! # Stop hook
//!
//! A [`PeriodicService`] may have a [`stop`](PeriodicService::stop) hook (a flush of what the
//! ticks hold). It runs in the body, on the same thread as the ticks, so it can never overlap
//! one: the body leaves the schedule (a stop woke the wait, or the tick running when the stop
//! came returned), then calls the hook and returns its result. The host learns nothing new:
//! to it the body is just returning late, so the stop deadline, the one late grace, the
//! detached `TimedOut` thread of an overrun and the `Failed` outcome of an error or a panic
//! are those of any background service. The hook reads the deadline from
//! [`Context::deadline`], which in a body reports the service's stop deadline once the host
//! has set it (before it fires the token). An escalated tick failure also ends the schedule,
//! so the hook runs there too, before the failure goes to the service's policy.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::{Duration, Instant};

use crate::error::{Error, ServiceResult};
use crate::panic::panic_message;
use crate::service::{BackgroundService, Context, Service};
use crate::stop::{StopToken, Stopped};
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a periodic service does with slots that passed while a tick was still running (or
/// while the thread was not scheduled).
///
/// With a period of 10 ms and a first tick that takes 25 ms (slots due at 0, 10, 20, 30 ms):
///
/// | policy | ticks start at | `scheduled` | `missed` |
/// | --- | --- | --- | --- |
/// | `Skip` | 0, 30, 40 | 0, 30, 40 | 0, 2, 0 |
/// | `Burst { max: 8 }` | 0, 25, 25, 30 | 0, 10, 20, 30 | 0, 0, 0, 0 |
/// | `Delay` | 0, 25, 35, 45 | 0, 10, 35, 45 | 0, 1, 0, 0 |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissedTick {
    /// The default. Slots that passed are skipped (and counted in [`Tick::missed`]); the next
    /// tick runs at the first slot still ahead, so the phase (`origin + k·period`) is kept.
    #[default]
    Skip,
    /// Catch up: slots that passed run back-to-back, each with its own
    /// [`scheduled`](Tick::scheduled) time, at most `max` in a row without a wait. If slots
    /// are still overdue after `max` catch-up ticks, they are skipped as by [`Skip`] (and
    /// counted in [`Tick::missed`]), so a tick that is always slower than the period cannot
    /// run the schedule into an endless burst. `max` must be at least 1.
    ///
    /// [`Skip`]: MissedTick::Skip
    Burst {
        /// The most catch-up ticks run in a row without a wait.
        max: u32,
    },
    /// Reschedule from now: the oldest overdue slot runs at once (the others are counted in
    /// [`Tick::missed`]), and the schedule restarts from the moment that late tick began:
    /// later slots are due at `late_start + k·period`. The phase shifts; the rate after a
    /// delay is kept. Lateness that is only wake-up latency (no slot missed) never shifts it.
    Delay,
}

/// When the first tick is due, counted from when the service's body begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FirstTick {
    /// The default: the first tick runs as soon as the body begins (`System.Threading.Timer`
    /// with a due time of zero, tokio's `interval`).
    #[default]
    Immediately,
    /// The first tick runs one period after the body begins (.NET's `PeriodicTimer`).
    AfterPeriod,
    /// The first tick runs at this instant, slot `k` at `instant + k·period`. An instant
    /// already past makes the first tick run at once, late; the [`MissedTick`] policy then
    /// applies to the slots after it that are past too.
    At(Instant),
}

/// What a tick that returns an error or panics does to the schedule.
///
/// A failing tick is always logged (with the service's name and the tick's index) and
/// counted ([`PeriodicStats::failures`], [`PeriodicStats::panics`], [`Tick::failures`]); it
/// never silently ends the schedule.
///
/// The service's failure [`Policy`](crate::Policy) (its own, or the host's default) only sees
/// the failures this setting escalates: with the default [`Continue`](TickFailure::Continue)
/// it never applies to tick failures at all. An escalated failure ends the body with the
/// tick's error or panic, and then the policy decides: `StopHost` stops the host (and
/// `Host::run` returns `Error::ServiceFailed` naming the service), `Ignore` ends this service
/// alone, `Restart` resumes the schedule after the backoff — at the next slot still ahead,
/// the phase kept, the skipped slots counted in [`Tick::missed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TickFailure {
    /// The default: log, count, and keep ticking.
    #[default]
    Continue,
    /// After `consecutive` failing ticks in a row (a tick that succeeds resets the count),
    /// escalate the last failure to the service's [`Policy`](crate::Policy). `consecutive`
    /// must be at least 1; `Escalate { consecutive: 1 }` escalates every failure.
    Escalate {
        /// How many failing ticks in a row escalate.
        consecutive: u32,
    },
}

/// The counters of one periodic service, readable from any thread while it runs.
///
/// Cheap to clone (one `Arc`). Get it from [`Periodic::stats`] before building the service.
#[derive(Clone, Debug, Default)]
pub struct PeriodicStats {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    ticks: AtomicU64,
    failures: AtomicU64,
    panics: AtomicU64,
    missed: AtomicU64,
}

impl PeriodicStats {
    /// Ticks run so far (failed ones included).
    #[must_use]
    pub fn ticks(&self) -> u64 {
        self.counters.ticks.load(Ordering::Relaxed)
    }

    /// Ticks that returned an error or panicked.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.counters.failures.load(Ordering::Relaxed)
    }

    /// Ticks that panicked (a subset of [`failures`](PeriodicStats::failures)).
    #[must_use]
    pub fn panics(&self) -> u64 {
        self.counters.panics.load(Ordering::Relaxed)
    }

    /// Slots skipped by the [`MissedTick`] policy (no tick ran for them).
    #[must_use]
    pub fn missed(&self) -> u64 {
        self.counters.missed.load(Ordering::Relaxed)
    }
}

/// What a tick is told: which tick it is, when it was due, how late it runs, what was missed,
/// and the service's [`Context`] (name, stop token, host handle).
///
/// ```
/// use std::time::Duration;
/// use threadhost::{HostBuilder, Periodic, Tick};
///
/// let service = Periodic::every(Duration::from_millis(10)).build("report", |tick: &Tick<'_>| {
///     log::info!(
///         "tick {} due {:?} ago, {} slot(s) missed",
///         tick.index(),
///         tick.lateness(),
///         tick.missed()
///     );
///     Ok(())
/// })?;
/// let host = HostBuilder::new().add_service(service).build()?;
/// host.start(Duration::from_secs(5))?;
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// # Ok::<(), threadhost::Error>(())
/// ```
pub struct Tick<'a> {
    ctx: &'a Context,
    index: u64,
    scheduled: Instant,
    started: Instant,
    missed: u64,
    failures: u64,
}

impl Tick<'_> {
    /// The number of this tick: 0 for the first tick run, then 1, 2, ... (slots skipped by the
    /// missed-tick policy are not numbered).
    #[must_use]
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The instant this tick was due (its slot on the schedule).
    #[must_use]
    pub fn scheduled(&self) -> Instant {
        self.scheduled
    }

    /// How late this tick began: the time from [`scheduled`](Tick::scheduled) to the call.
    #[must_use]
    pub fn lateness(&self) -> Duration {
        self.started.saturating_duration_since(self.scheduled)
    }

    /// How many slots were skipped, by the [`MissedTick`] policy, since the previous tick.
    #[must_use]
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// How many ticks of this service failed (returned an error or panicked) before this one.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The service's context: its name, stop token and host handle.
    #[must_use]
    pub fn ctx(&self) -> &Context {
        self.ctx
    }

    /// The service's stop token (fires when the host stops the service, also while a tick
    /// runs: a long tick should watch it).
    #[must_use]
    pub fn token(&self) -> &StopToken {
        self.ctx.token()
    }

    /// `true` once the service's token fired. One atomic load.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.ctx.is_stopped()
    }
}

impl fmt::Debug for Tick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tick")
            .field("service", &self.ctx.name())
            .field("index", &self.index)
            .field("lateness", &self.lateness())
            .field("missed", &self.missed)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// A periodic service with state: a [`tick`](PeriodicService::tick) run on the schedule, and
/// a [`stop`](PeriodicService::stop) hook run once the schedule ended, e.g. to flush what
/// the ticks gathered. Both run on the service's own thread, never at the same time, and
/// share `&mut self`. Build one with [`Periodic::build_service`]; a closure
/// `FnMut(&Tick<'_>) -> ServiceResult` is a `PeriodicService` with no stop hook
/// ([`Periodic::build`]).
///
/// # When the stop hook runs
///
/// - **At a stop** (the host stops, or the service is stopped): after the last tick. A tick
///   running when the stop came finishes first (it can watch [`Tick::token`] to return
///   early); then the hook runs, with the stop deadline in [`Context::deadline`], by which it
///   must return: the host waits for it until that deadline (plus the host's one late grace)
///   like for any background service, then detaches the thread and reports the service
///   [`TimedOut`](crate::Outcome::TimedOut). The token has already fired, so waits on it
///   return at once: bound the hook's work by the deadline, not by the token. An error or a
///   panic is logged and is the service's [`Failed`](crate::Outcome::Failed) outcome in the
///   [`StopReport`](crate::StopReport) (an `Err(Stopped)` too: here it cannot mean a clean
///   exit, as the token fired before the hook began).
/// - **When an escalated tick failure ends the schedule** ([`TickFailure::Escalate`]): after
///   the failing tick, before the failure goes to the service's [`Policy`](crate::Policy),
///   so what the service holds is flushed whether the policy then ends the service, stops
///   the host, or restarts the body (then the hook runs again when the restarted schedule
///   ends). No stop is underway: [`Context::deadline`] is [`Deadline::NEVER`] (and the token
///   has not fired) unless a stop begins meanwhile. The tick's failure is what the policy
///   sees; an error or a panic of the hook there is only logged.
/// - **Never** for a service that never started (its start failed or never came: the body,
///   hence the schedule, never began), nor during a restart backoff. It runs also for a
///   service stopped before its first tick.
///
/// [`Deadline::NEVER`]: crate::Deadline::NEVER
///
/// ```
/// use std::time::Duration;
/// use threadhost::{Context, HostBuilder, Periodic, PeriodicService, ServiceResult, Tick};
///
/// /// Gathers a reading each tick; uploads the batch every 10 readings and on the way out.
/// struct Uploader {
///     batch: Vec<u64>,
///     uploaded: std::sync::mpsc::Sender<Vec<u64>>,
/// }
///
/// impl Uploader {
///     fn upload(&mut self) {
///         let _ = self.uploaded.send(std::mem::take(&mut self.batch));
///     }
/// }
///
/// impl PeriodicService for Uploader {
///     fn tick(&mut self, tick: &Tick<'_>) -> ServiceResult {
///         self.batch.push(tick.index());
///         if self.batch.len() == 10 {
///             self.upload();
///         }
///         Ok(())
///     }
///
///     fn stop(&mut self, ctx: &Context) -> ServiceResult {
///         // After the last tick, by the stop deadline.
///         assert!(ctx.deadline().remaining().is_some());
///         self.upload();
///         Ok(())
///     }
/// }
///
/// let (uploaded, batches) = std::sync::mpsc::channel();
/// let uploader = Uploader { batch: Vec::new(), uploaded };
/// let service = Periodic::every(Duration::from_millis(5)).build_service("uploader", uploader)?;
/// let host = HostBuilder::new().add_service(service).build()?;
/// host.start(Duration::from_secs(5))?;
/// assert_eq!(batches.recv().unwrap(), (0..10).collect::<Vec<_>>());
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// // The stop hook flushed the rest: every reading was uploaded, in order, exactly once.
/// let all: Vec<u64> = std::iter::once((0..10).collect()).chain(batches.iter()).flatten().collect();
/// assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());
/// # Ok::<(), threadhost::Error>(())
/// ```
pub trait PeriodicService: Send + 'static {
    /// One tick, at its slot on the schedule.
    ///
    /// # Errors
    ///
    /// An error (or a panic) is logged and counted, and handled by the [`TickFailure`]
    /// setting. `Err(Stopped)` after the token fired (`tick.token().sleep(d)?`) is a clean
    /// end of the schedule.
    fn tick(&mut self, tick: &Tick<'_>) -> ServiceResult;

    /// Runs once the schedule ended, after the last tick: at a stop, under the stop deadline
    /// ([`Context::deadline`]), or after an escalated tick failure (see the [trait
    /// docs](PeriodicService#when-the-stop-hook-runs)). The default does nothing.
    ///
    /// # Errors
    ///
    /// At a stop, an error or a panic is the service's failure in the `StopReport`; after an
    /// escalated tick failure, it is logged.
    #[allow(unused_variables)]
    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        Ok(())
    }
}

impl<F> PeriodicService for F
where
    F: FnMut(&Tick<'_>) -> ServiceResult + Send + 'static,
{
    fn tick(&mut self, tick: &Tick<'_>) -> ServiceResult {
        self(tick)
    }
}

/// Builds a periodic service: a tick closure (or a [`PeriodicService`]) run at a fixed rate,
/// on one thread.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use threadhost::{FirstTick, HostBuilder, MissedTick, Periodic, ServiceResult, Tick};
///
/// let count = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&count);
/// let (ticked, ticks) = std::sync::mpsc::channel();
/// let timer = Periodic::every(Duration::from_millis(5))
///     .missed(MissedTick::Skip)
///     .first_tick(FirstTick::Immediately)
///     .build("timer", move |tick: &Tick<'_>| -> ServiceResult {
///         counter.fetch_add(1, Ordering::Relaxed);
///         let _ = ticked.send(tick.index());
///         Ok(())
///     })?;
/// let host = HostBuilder::new().add_service(timer).build()?;
/// host.start(Duration::from_secs(5))?;
/// assert_eq!(ticks.recv().unwrap(), 0);
/// assert_eq!(ticks.recv().unwrap(), 1);
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// assert!(count.load(Ordering::Relaxed) >= 2);
/// # Ok::<(), threadhost::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a Periodic does nothing until built and added to a host"]
pub struct Periodic {
    period: Duration,
    missed: MissedTick,
    first: FirstTick,
    on_failure: TickFailure,
    stats: PeriodicStats,
}

impl Periodic {
    /// A schedule with one tick every `period`, the first at once, missed slots skipped,
    /// failing ticks logged and counted. A zero period is an error from
    /// [`build`](Periodic::build).
    pub fn every(period: Duration) -> Periodic {
        Periodic {
            period,
            missed: MissedTick::Skip,
            first: FirstTick::Immediately,
            on_failure: TickFailure::Continue,
            stats: PeriodicStats::default(),
        }
    }

    /// What to do with slots that passed (default [`MissedTick::Skip`]).
    pub fn missed(mut self, policy: MissedTick) -> Periodic {
        self.missed = policy;
        self
    }

    /// When the first tick is due (default [`FirstTick::Immediately`]).
    pub fn first_tick(mut self, first: FirstTick) -> Periodic {
        self.first = first;
        self
    }

    /// What a failing tick does to the schedule (default [`TickFailure::Continue`]).
    pub fn on_tick_failure(mut self, policy: TickFailure) -> Periodic {
        self.on_failure = policy;
        self
    }

    /// A handle on the service's counters (ticks, failures, panics, missed slots).
    #[must_use]
    pub fn stats(&self) -> PeriodicStats {
        self.stats.clone()
    }

    /// Builds the service named `name`, which runs `tick` on the schedule until stopped. Add
    /// it with [`HostBuilder::add_service`](crate::HostBuilder::add_service); chain
    /// [`Service`] settings (`on_failure`, `depends_on`, ...) first if needed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the option: a zero `period`, `MissedTick::Burst` with
    /// `max: 0`, or `TickFailure::Escalate` with `consecutive: 0`.
    pub fn build<F>(self, name: &str, tick: F) -> Result<Service, Error>
    where
        F: FnMut(&Tick<'_>) -> ServiceResult + Send + 'static,
    {
        self.build_service(name, tick)
    }

    /// Builds the service named `name`, which runs `service`'s [`tick`](PeriodicService::tick)
    /// on the schedule until stopped, then its [`stop`](PeriodicService::stop) hook (a final
    /// flush). As [`build`](Periodic::build) otherwise.
    ///
    /// # Errors
    ///
    /// As [`build`](Periodic::build).
    pub fn build_service(
        self,
        name: &str,
        service: impl PeriodicService,
    ) -> Result<Service, Error> {
        let option = |what: &str| format!("{what} of periodic service `{name}`");
        if self.period.is_zero() {
            return Err(Error::invalid_option(
                option("period"),
                "0s",
                "must be a positive duration",
            ));
        }
        if let MissedTick::Burst { max: 0 } = self.missed {
            return Err(Error::invalid_option(
                option("MissedTick::Burst max"),
                0,
                "must be at least 1 (a burst of no tick is MissedTick::Skip)",
            ));
        }
        if let TickFailure::Escalate { consecutive: 0 } = self.on_failure {
            return Err(Error::invalid_option(
                option("TickFailure::Escalate consecutive"),
                0,
                "must be at least 1",
            ));
        }
        Ok(Service::background_service(
            name,
            Schedule {
                config: self,
                service,
                resume: None,
                index: 0,
                failures: 0,
            },
        ))
    }
}

/// The background service a [`Periodic`] builds.
struct Schedule<S> {
    config: Periodic,
    service: S,
    /// The last slot that ran, kept across a restart of the body so the phase is kept.
    resume: Option<Instant>,
    index: u64,
    failures: u64,
}

/// `from + n·period`, or `None` past what an `Instant` can hold.
fn advance(from: Instant, period: Duration, n: u128) -> Option<Instant> {
    let nanos = period.as_nanos().checked_mul(n)?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    // The remainder is below 10^9: it fits in u32.
    let d = Duration::new(secs, (nanos % 1_000_000_000) as u32);
    from.checked_add(d)
}

/// How many slots `first, first + period, ...` are at or before `now` (`first <= now`).
fn slots_through(first: Instant, now: Instant, period: Duration) -> u128 {
    now.duration_since(first).as_nanos() / period.as_nanos() + 1
}

impl<S: PeriodicService> Schedule<S> {
    /// The first slot after `now` that is `last + k·period` (k ≥ 1), and how many
    /// slots before it are past.
    fn skip_to_ahead(&self, last: Instant, now: Instant) -> (Option<Instant>, u64) {
        let period = self.config.period;
        let Some(following) = last.checked_add(period) else {
            return (None, 0);
        };
        if following > now {
            return (Some(following), 0);
        }
        let n = slots_through(following, now, period);
        (
            advance(following, period, n),
            u64::try_from(n).unwrap_or(u64::MAX),
        )
    }

    /// The schedule ended by a stop, after the last tick: the stop hook, whose result is the
    /// body's (a panic goes on to the host's boundary, which records it).
    fn stopped(&mut self, ctx: &Context) -> ServiceResult {
        match self.service.stop(ctx) {
            // The runner would take it for a clean exit (`ctx.sleep(d)?`), but the token
            // fired before the hook began: a wait on it cut the flush short.
            Err(e) if e.is::<Stopped>() => Err(format!(
                "the stop hook returned `{e}`: the token had fired before the hook ran, so \
                 waits on it return at once (bound the hook's work by ctx.deadline())"
            )
            .into()),
            other => other,
        }
    }

    /// The schedule ended by an escalated tick failure: the stop hook, whose failure is only
    /// logged (the tick's failure is what goes to the service's policy).
    fn escalated(&mut self, ctx: &Context) {
        let service = &mut self.service;
        let message = match catch_unwind(AssertUnwindSafe(|| service.stop(ctx))) {
            Ok(Ok(())) => return,
            // The error's `Display` is user code: guarded.
            Ok(Err(e)) => crate::panic::Guarded(&*e).to_string(),
            Err(payload) => {
                let message = format!("panicked: {}", panic_message(payload.as_ref()));
                crate::panic::drop_quietly(payload);
                message
            }
        };
        crate::logging::error!(
            "periodic service `{}`: the stop hook failed after the escalated tick failure: \
             {message}",
            ctx.name()
        );
    }
}

impl<S: PeriodicService> BackgroundService for Schedule<S> {
    fn run(&mut self, ctx: &Context) -> ServiceResult {
        let period = self.config.period;
        let counters = Arc::clone(&self.config.stats.counters);
        let token = ctx.token();
        // The slot due next (`None`: past what an Instant holds, i.e. never), and the slots
        // skipped before it.
        let (mut due, mut missed) = match self.resume {
            // A restart of the body (restart policy): resume at the next slot ahead.
            Some(last) => self.skip_to_ahead(last, Instant::now()),
            None => match self.config.first {
                FirstTick::Immediately => (Some(Instant::now()), 0),
                FirstTick::AfterPeriod => (Instant::now().checked_add(period), 0),
                FirstTick::At(at) => (Some(at), 0),
            },
        };
        let mut consecutive_failures = 0u32;
        let mut burst = 0u32;
        // Delay: the next slot counts from when the late tick began, not from its slot.
        let mut rebase = false;
        loop {
            let Some(slot) = due else {
                // The schedule ran past what an Instant can hold: no tick is ever due again.
                token.wait();
                return self.stopped(ctx);
            };
            // The only wait: a condition variable wait on the stop token, until an absolute
            // deadline. A stop wakes it at once; a due slot makes it return at once.
            if token.wait_until(slot) {
                return self.stopped(ctx);
            }
            let started = Instant::now();
            let tick = Tick {
                ctx,
                index: self.index,
                scheduled: slot,
                started,
                missed,
                failures: self.failures,
            };
            let service = &mut self.service;
            let outcome = catch_unwind(AssertUnwindSafe(|| service.tick(&tick)));
            if matches!(outcome, Ok(Ok(()))) {
                // A periodic service is live while it ticks: each successful tick is a
                // heartbeat (the systemd watchdog and `HostSnapshot::not_live` read it).
                ctx.heartbeat();
            }
            let index = self.index;
            self.index += 1;
            self.resume = Some(slot);
            counters.ticks.fetch_add(1, Ordering::Relaxed);
            counters.missed.fetch_add(missed, Ordering::Relaxed);
            let failed = match outcome {
                Ok(Ok(())) => None,
                // `tick.token().sleep(d)?` interrupted by the stop: a clean end.
                Ok(Err(e)) if e.is::<Stopped>() && token.is_stopped() => {
                    return self.stopped(ctx);
                }
                Ok(Err(e)) => {
                    // The error's `Display` is user code: guarded.
                    let message = crate::panic::Guarded(&*e).to_string();
                    Some((Ok(e), message))
                }
                Err(payload) => {
                    counters.panics.fetch_add(1, Ordering::Relaxed);
                    let message = format!("panicked: {}", panic_message(payload.as_ref()));
                    Some((Err(payload), message))
                }
            };
            match failed {
                None => consecutive_failures = 0,
                Some((failure, message)) => {
                    self.failures += 1;
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    let escalate = match self.config.on_failure {
                        TickFailure::Continue => false,
                        TickFailure::Escalate { consecutive } => {
                            consecutive_failures >= consecutive
                        }
                    };
                    if escalate && !token.is_stopped() {
                        crate::logging::error!(
                            "periodic service `{}`: tick {index} failed: {message}; \
                             {consecutive_failures} failure(s) in a row, escalating to the \
                             service's failure policy",
                            ctx.name()
                        );
                        // The schedule ends here: what the service holds is flushed before the
                        // policy decides (it may end the service, stop the host, or restart).
                        self.escalated(ctx);
                        match failure {
                            Ok(error) => return Err(error),
                            // The host's own boundary catches it again and records the
                            // panic with its message.
                            Err(payload) => resume_unwind(payload),
                        }
                    }
                    // The schedule goes on: a panic payload is user data whose `Drop` may
                    // panic; dropped under `catch_unwind`, it cannot end the schedule.
                    if let Err(payload) = failure {
                        crate::panic::drop_quietly(payload);
                    }
                    crate::logging::error!(
                        "periodic service `{}`: tick {index} failed: {message}; {} failure(s) \
                         so far, the schedule goes on",
                        ctx.name(),
                        self.failures
                    );
                }
            }
            // The next slot, from the slot just run (absolute: no drift), or from when a late
            // tick began (Delay after a miss).
            let base = if std::mem::take(&mut rebase) {
                started
            } else {
                slot
            };
            let now = Instant::now();
            let following = base.checked_add(period);
            missed = 0;
            due = match following {
                Some(next) if next <= now => match self.config.missed {
                    MissedTick::Skip => {
                        let (ahead, skipped) = self.skip_to_ahead(base, now);
                        missed = skipped;
                        ahead
                    }
                    MissedTick::Burst { max } if burst < max => {
                        burst += 1;
                        Some(next)
                    }
                    MissedTick::Burst { .. } => {
                        burst = 0;
                        let (ahead, skipped) = self.skip_to_ahead(base, now);
                        missed = skipped;
                        ahead
                    }
                    MissedTick::Delay => {
                        rebase = true;
                        missed =
                            u64::try_from(slots_through(next, now, period) - 1).unwrap_or(u64::MAX);
                        Some(next)
                    }
                },
                other => {
                    burst = 0;
                    other
                }
            };
        }
    }
}
