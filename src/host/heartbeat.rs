//! Service heartbeats: what [`HostSnapshot`](crate::HostSnapshot)'s liveness (and, with the
//! `systemd` feature, the watchdog) reads. Core, whatever the features: a snapshot says
//! whether each critical service is live.
//!
//! # Invariants
//!
//! 1. A beat is one atomic store of a lone timestamp (`Relaxed`): no other data hangs on it,
//!    so a beat never blocks and never takes a lock.

use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// A service's heartbeat: the time of its last [`Context::heartbeat`](crate::Context::heartbeat),
/// one atomic store per beat, read by [`HostHandle::snapshot`](crate::HostHandle::snapshot).
#[derive(Debug)]
pub(crate) struct Heartbeat {
    epoch: Instant,
    /// Nanoseconds since `epoch` of the last beat, plus one; 0 = never.
    last: AtomicU64,
}

impl Heartbeat {
    pub(crate) fn new() -> Heartbeat {
        Heartbeat {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    pub(crate) fn beat(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        // Relaxed: a lone timestamp, read only to compare ages; no other data hangs on it.
        self.last.store(nanos + 1, Ordering::Relaxed);
    }

    /// The time since the last beat, or `None` if it never beat.
    pub(crate) fn age(&self) -> Option<Duration> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            n => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(n - 1)),
            ),
        }
    }
}
