//! The job side of a queue: [`JobContext`] (what a borrowing handler gets), retries with a
//! [`Backoff`], dead letters, and [`JobTask`]s.
//!
//! See the module header of `queue` ("Jobs, retries and dead letters") for the contracts.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ServiceResult};
use crate::failure::Failure;
use crate::host::Heartbeat;
use crate::queue::{Handler, OnDeadLetter, Producer, SendError, WorkQueue, WorkQueueBuilder};
use crate::scope::{Registry, Scope};
use crate::stop::{StopToken, Stopped};
use crate::supervise::Backoff;

/// The largest [`retry`](WorkQueueBuilder::retry) `max_attempts`: 1000. A job retried more
/// often is better parked elsewhere (its worker waits through every backoff).
pub(crate) const MAX_ATTEMPTS: u32 = 1000;

/// What a job of a queue built with [`WorkQueueBuilder::build_jobs`] is given with its item:
/// the queue's name, the jobs' stop token, the attempt number, a heartbeat, and the host's
/// service registry for a [`Scope`] per job (as a service's [`Context`](crate::Context)).
///
/// Lent for the job's duration only.
pub struct JobContext<'a> {
    pub(crate) queue: &'a str,
    pub(crate) token: &'a StopToken,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) heartbeat: &'a Heartbeat,
    pub(crate) services: &'a Registry,
}

impl<'a> JobContext<'a> {
    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &'a str {
        self.queue
    }

    /// The jobs' token: fires when the queue's stop gives up draining (or cancels at once).
    /// A job that returns [`Stopped`] once it fired is cancelled: its item is handed back
    /// (see [`WorkQueueBuilder::build_jobs`]).
    #[must_use]
    pub fn token(&self) -> &'a StopToken {
        self.token
    }

    /// `true` once the jobs' token fired. One atomic load.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.token.is_stopped()
    }

    /// Sleeps for `duration`, or until the jobs' token fires.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the token fired first.
    pub fn sleep(&self, duration: std::time::Duration) -> Result<(), Stopped> {
        self.token.sleep(duration)
    }

    /// This attempt's number: 1 for the first run of the item, 2 for its first retry, … up
    /// to [`max_attempts`](Self::max_attempts).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The queue's [`retry`](WorkQueueBuilder::retry) `max_attempts` (1 without retries).
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// `true` if a failure of this attempt is final: the item then goes to the dead letters
    /// (or, without them, is counted failed).
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Says "this queue is alive and making progress" (one atomic store), from inside a long
    /// job: a worker beats by itself for each job it takes (when the queue is a critical
    /// service, [`Service::liveness`](crate::Service::liveness)), so a job longer than the
    /// liveness window must beat, or the queue goes not live while it runs.
    pub fn heartbeat(&self) {
        self.heartbeat.beat();
    }

    /// A new [`Scope`] over the host's registry, for this job (as
    /// [`Context::create_scope`](crate::Context::create_scope)): scoped values are created
    /// on first use and dropped, in reverse creation order, when the scope is dropped.
    #[must_use]
    pub fn create_scope(&self) -> Scope<'a> {
        self.services.create_scope()
    }

    /// The singleton of type `T` registered with
    /// [`HostBuilder::singleton`](crate::HostBuilder::singleton).
    ///
    /// # Errors
    ///
    /// As [`Context::singleton`](crate::Context::singleton).
    pub fn singleton<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        self.services.singleton::<T>()
    }

    /// The host's service registry.
    #[must_use]
    pub fn services(&self) -> &'a Registry {
        self.services
    }
}

impl fmt::Debug for JobContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("queue", &self.queue)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("token", self.token)
            .finish_non_exhaustive()
    }
}

/// The item of a queue built with [`WorkQueueBuilder::build_job_tasks`]: a boxed closure run
/// with the [`JobContext`]. `FnMut`, not `FnOnce` as a [`Task`](crate::Task), so that a failed
/// task can be run again ([`retry`](WorkQueueBuilder::retry)); a task that must consume what it
/// captured can `Option::take` it.
///
/// ```
/// use std::time::Duration;
/// use threadhost::{Backoff, HostBuilder, JobTask, WorkQueue};
///
/// let (queue, producer) = WorkQueue::<JobTask>::builder("jobs")
///     .retry(3, Backoff::fixed(Duration::from_millis(1)))
///     .build_job_tasks()?;
/// let handle = queue.handle();
/// let host = HostBuilder::new().add_service(queue).build()?;
/// host.start(Duration::from_secs(5))?;
/// producer.send_job(|job| {
///     if job.attempt() < 3 {
///         return Err("flaky".into()); // run again after the backoff
///     }
///     Ok(())
/// })?;
/// assert!(host.stop(Duration::from_secs(5)).is_clean());
/// let m = handle.metrics();
/// assert_eq!((m.completed, m.retried, m.dead_lettered), (1, 2, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type JobTask = Box<dyn FnMut(&JobContext<'_>) -> ServiceResult + Send + 'static>;

/// A queue's retry settings ([`WorkQueueBuilder::retry`]).
#[derive(Clone, Debug)]
pub(crate) struct Retry {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            max_attempts: 1,
            backoff: Backoff::default(),
        }
    }
}

impl<T: Send + 'static> WorkQueueBuilder<T> {
    /// Runs a failed job again: an item whose job returns an error (other than a
    /// cancellation) or panics is retried after `backoff.delay(n)` (`n`: 0 before the first
    /// retry; jittered; at least [`MIN_BACKOFF`](crate::MIN_BACKOFF)), up to `max_attempts`
    /// runs in all; after the last one the item goes to the dead letters
    /// ([`on_dead_letter`](Self::on_dead_letter), or [`QueueReport::dead_letters`](crate::QueueReport::dead_letters)).
    /// The default is 1 attempt: no retry. Needs a handler that borrows its item
    /// ([`build_jobs`](Self::build_jobs)).
    ///
    /// The backoff is a wait on the jobs' token, on the item's worker (which takes no other
    /// item meanwhile): a stop that cancels wakes it at once, and the item, not failed for
    /// good, is handed back unrun ([`on_unrun`](Self::on_unrun), counted returned). While the
    /// stop drains, retries go on.
    ///
    /// Checked by the build ([`Error::InvalidOption`] naming the field): `max_attempts` from
    /// 1 to 1000; the backoff as a restart policy's (`multiplier` at least 1.0, `jitter`
    /// within 0.0 to 1.0, `initial` not above `max`).
    pub fn retry(mut self, max_attempts: u32, backoff: Backoff) -> Self {
        self.retry = Retry {
            max_attempts,
            backoff,
        };
        self
    }

    /// Receives each dead letter by value: an item whose last attempt failed, with that
    /// attempt's [`Failure`], on the item's worker, outside the queue's locks (a panic in it is
    /// caught and logged). Turns dead letters on (with [`retry`](Self::retry), they are on
    /// anyway: without this callback they are kept for [`QueueReport::dead_letters`](crate::QueueReport::dead_letters), in
    /// memory until the stop's report is taken). Needs [`build_jobs`](Self::build_jobs).
    pub fn on_dead_letter(mut self, f: impl Fn(T, Failure) + Send + Sync + 'static) -> Self {
        self.on_dead_letter = Some(Box::new(f));
        self
    }

    /// Builds the queue with a handler that *borrows* each item: `handler(&mut item, job)`.
    /// The queue keeps the item through the job, so it can run it again
    /// ([`retry`](Self::retry)), give it to the dead letters by value after the last attempt,
    /// or hand it back if the job was cancelled. [`build`](Self::build) is the handler that
    /// takes the item by value (which can be none of these).
    ///
    /// How a job ends, for its item (each item is counted once, by its final fate):
    ///
    /// | the job returns | the item is | counted |
    /// | --- | --- | --- |
    /// | `Ok(())` | dropped by the worker | completed |
    /// | [`Stopped`] after the jobs' token fired | handed back ([`on_unrun`](Self::on_unrun)) | returned |
    /// | an error or a panic, attempts left, token not fired | run again after the backoff | (retried) |
    /// | an error or a panic, attempts left, token fired | handed back | returned |
    /// | an error or a panic, last attempt, dead letters on | to [`on_dead_letter`](Self::on_dead_letter) or the report | dead_lettered |
    /// | an error or a panic, last attempt, dead letters off | dropped | failed / panicked |
    ///
    /// Dead letters are on with a retry of 2 attempts or more, or an `on_dead_letter`
    /// callback.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use threadhost::{Backoff, HostBuilder, WorkQueue};
    ///
    /// let dead = Arc::new(Mutex::new(Vec::new()));
    /// let keep = Arc::clone(&dead);
    /// let (queue, producer) = WorkQueue::builder("upload")
    ///     .retry(3, Backoff::exponential(Duration::from_millis(1), Duration::from_millis(4)))
    ///     .on_dead_letter(move |reading: String, failure| {
    ///         keep.lock().unwrap().push((reading, failure.to_string()));
    ///     })
    ///     .build_jobs(|reading: &mut String, job| {
    ///         job.heartbeat(); // a long job beats from inside
    ///         if reading.starts_with("bad") {
    ///             return Err(format!("server refused {reading} (attempt {})", job.attempt()).into());
    ///         }
    ///         Ok(())
    ///     })?;
    /// let host = HostBuilder::new().add_service(queue).build()?;
    /// host.start(Duration::from_secs(5))?;
    /// producer.send("good 1".to_owned())?;
    /// producer.send("bad 2".to_owned())?;
    /// assert!(host.stop(Duration::from_secs(5)).is_clean());
    /// let dead = dead.lock().unwrap();
    /// assert_eq!(dead[0], ("bad 2".to_owned(), "server refused bad 2 (attempt 3)".to_owned()));
    /// assert_eq!(producer.metrics().dead_lettered, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and the [`retry`](Self::retry) checks.
    pub fn build_jobs<F>(self, handler: F) -> Result<(WorkQueue<T>, Producer<T>), Error>
    where
        F: Fn(&mut T, &JobContext<'_>) -> ServiceResult + Send + Sync + 'static,
    {
        self.build_with(Handler::Borrowed(Arc::new(handler)))
    }

    /// Checks the retry settings for a handler that borrows its item (`borrowed`), or takes
    /// it by value.
    pub(crate) fn check_jobs(&self, borrowed: bool) -> Result<(), Error> {
        let name = &self.name;
        let Retry {
            max_attempts,
            backoff,
        } = &self.retry;
        if !(1..=MAX_ATTEMPTS).contains(max_attempts) {
            return Err(Error::invalid_option(
                format!("retry of queue `{name}`: max_attempts"),
                max_attempts,
                format!("must be from 1 (no retry) to {MAX_ATTEMPTS}"),
            ));
        }
        backoff.validate(&format!("retry of queue `{name}`"))?;
        if !borrowed && *max_attempts > 1 {
            return Err(Error::invalid_option(
                format!("retry of queue `{name}`: max_attempts"),
                max_attempts,
                "a handler that takes its item by value (`build`) cannot run it again: \
                 build with `build_jobs`, whose handler borrows the item",
            ));
        }
        if !borrowed && self.on_dead_letter.is_some() {
            return Err(Error::invalid_option(
                format!("on_dead_letter of queue `{name}`"),
                "set",
                "a handler that takes its item by value (`build`) keeps no item to give: \
                 build with `build_jobs`, whose handler borrows the item",
            ));
        }
        Ok(())
    }
}

impl WorkQueueBuilder<JobTask> {
    /// Builds a queue of [`JobTask`]s: each item is a closure run with the [`JobContext`],
    /// and run again on failure if the queue [retries](Self::retry).
    ///
    /// # Errors
    ///
    /// As [`build_jobs`](Self::build_jobs).
    pub fn build_job_tasks(self) -> Result<(WorkQueue<JobTask>, Producer<JobTask>), Error> {
        self.build_jobs(|task: &mut JobTask, job: &JobContext<'_>| task(job))
    }
}

impl Producer<JobTask> {
    /// Sends a closure to a queue of [`JobTask`]s, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Producer::send); the error holds the boxed closure.
    pub fn send_job<F>(&self, f: F) -> Result<(), SendError<JobTask>>
    where
        F: FnMut(&JobContext<'_>) -> ServiceResult + Send + 'static,
    {
        self.send(Box::new(f))
    }
}

/// Whether a queue keeps dead letters: with retries or a callback.
pub(crate) fn dead_letters_on<T>(retry: &Retry, on_dead_letter: Option<&OnDeadLetter<T>>) -> bool {
    retry.max_attempts > 1 || on_dead_letter.is_some()
}
