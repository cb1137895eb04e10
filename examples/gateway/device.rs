//! A fake device: its group holds a `connection` service, which opens a session and keeps it,
//! and a `poller` service (depending on it) that reads the device and queues each reading
//! for the uploader. Both fail now and then, deterministically, as the devices file says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use threadhost::{
    BackgroundService, Backoff, Context, Group, Producer, Service, ServiceResult, Strategy,
};

use crate::config::DeviceSpec;

/// One reading of one device, on its way to the uploader.
#[derive(Debug)]
pub(crate) struct Reading {
    pub(crate) device: Arc<str>,
    /// The device's poll number (counted across restarts).
    pub(crate) seq: u64,
    pub(crate) value: f64,
}

/// A device group's restart intensity: more than this many restarts within the window and
/// the group gives up and fails to its parent, `devices`.
const MAX_RESTARTS: u32 = 30;
const WITHIN: Duration = Duration::from_secs(60);
/// The wait before the group starts its services again.
const RESTART_BACKOFF: Duration = Duration::from_millis(200);

/// What the two services of a device share. It lives as long as the group, across restarts.
struct Device {
    spec: DeviceSpec,
    name: Arc<str>,
    /// The current session's number while connected, 0 while not.
    session: AtomicU64,
    sessions: AtomicU64,
    /// Polls in the current session.
    session_polls: AtomicU64,
    /// Every poll, across sessions and restarts: a failure every `fail_every` stays
    /// deterministic.
    polls: AtomicU64,
}

/// The group of the device `spec` (named after it): `connection` and `poller`, one for all.
pub(crate) fn group(spec: &DeviceSpec, readings: Producer<Reading>) -> Group {
    let device = Arc::new(Device {
        spec: spec.clone(),
        name: Arc::from(spec.name.as_str()),
        session: AtomicU64::new(0),
        sessions: AtomicU64::new(0),
        session_polls: AtomicU64::new(0),
        polls: AtomicU64::new(0),
    });
    Group::new(&spec.name)
        .strategy(Strategy::OneForAll)
        .intensity(MAX_RESTARTS, WITHIN)
        .backoff(Backoff::fixed(RESTART_BACKOFF))
        .background_service("connection", Connection(Arc::clone(&device)))
        // Started once the connection's `start` (which opens the session) has returned.
        .add_service(
            Service::background("poller", move |ctx| device.poll(ctx, &readings))
                .depends_on("connection"),
        )
}

/// The `connection` service: its `start` hook opens a session (so that the poller, which
/// depends on it, starts with the session open), its body keeps it until stopped or until
/// the link drops (`drop_every`), and closes it.
struct Connection(Arc<Device>);

impl BackgroundService for Connection {
    fn start(&mut self, ctx: &Context) -> ServiceResult {
        let device = &self.0;
        let session = device.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        device.session_polls.store(0, Ordering::Relaxed);
        device.session.store(session, Ordering::Release);
        log::info!("{}: connected (session {session})", ctx.path());
        Ok(())
    }

    fn run(&mut self, ctx: &Context) -> ServiceResult {
        let device = &self.0;
        let _open = Session(device);
        let session = device.session.load(Ordering::Acquire);
        loop {
            ctx.sleep(device.spec.poll)?;
            let polls = device.session_polls.load(Ordering::Relaxed);
            if device.spec.drop_every > 0 && polls >= device.spec.drop_every {
                return Err(format!("link lost after {polls} polls of session {session}").into());
            }
        }
    }
}

/// Marks the session closed when the connection's body ends, however it ends.
struct Session<'a>(&'a Device);

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.0.session.store(0, Ordering::Release);
    }
}

impl Device {
    /// The `poller` service's body: a poll per interval while the session is open, each
    /// reading queued for the uploader; every `fail_every`-th poll fails.
    fn poll(&self, ctx: &Context, readings: &Producer<Reading>) -> ServiceResult {
        log::info!("{}: polling every {:?}", ctx.path(), self.spec.poll);
        loop {
            ctx.sleep(self.spec.poll)?;
            if self.session.load(Ordering::Acquire) == 0 {
                // The link just dropped: the group is about to restart both services.
                log::debug!("{}: no session, poll skipped", ctx.path());
                continue;
            }
            let seq = self.polls.fetch_add(1, Ordering::Relaxed) + 1;
            self.session_polls.fetch_add(1, Ordering::Relaxed);
            if self.spec.fail_every > 0 && seq % self.spec.fail_every == 0 {
                return Err(format!("poll {seq}: the device answered garbage").into());
            }
            let reading = Reading {
                device: Arc::clone(&self.name),
                seq,
                value: 20.0 + (seq * 7 % 50) as f64 / 10.0,
            };
            // Backpressure with a bound: an uploader that lags loses readings, not polls.
            if let Err(e) = readings.send_timeout(reading, self.spec.poll) {
                log::warn!("{}: reading {seq} not queued: {e}", ctx.path());
            }
            ctx.heartbeat();
        }
    }
}
