//! Unit tests of the restart tracker: intensity limit, backoff growth and reset, jitter range.

use std::time::Duration;

use super::{Backoff, RestartTracker};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn tracker_escalates_past_max_restarts_within_the_window() {
    let mut t = RestartTracker::new(42);
    let b = Backoff::exponential(ms(10), ms(1000));
    let within = Duration::from_secs(60);
    assert_eq!(t.next(&b, 3, within), Some(ms(10)));
    assert_eq!(t.next(&b, 3, within), Some(ms(20)));
    assert_eq!(t.next(&b, 3, within), Some(ms(40)));
    assert_eq!(t.next(&b, 3, within), None);
}

#[test]
fn tracker_with_zero_restarts_escalates_the_first_failure() {
    let mut t = RestartTracker::new(1);
    assert_eq!(t.next(&Backoff::fixed(ms(1)), 0, ms(1000)), None);
}

#[test]
fn jitter_stays_within_its_range_and_varies() {
    let b = Backoff::fixed(ms(100)).with_jitter(0.5);
    let mut t = RestartTracker::new(0xDEAD_BEEF);
    let waits: Vec<Duration> = (0..200)
        .map(|_| {
            let w = t.jitter(ms(100), b.jitter);
            assert!(w >= ms(50) && w <= ms(100), "{w:?} outside [50 ms, 100 ms]");
            w
        })
        .collect();
    assert!(waits.iter().any(|w| *w != waits[0]), "jitter never varied");
    assert!(waits.iter().any(|w| *w < ms(75)) && waits.iter().any(|w| *w > ms(75)));
}

#[test]
fn a_zero_backoff_is_raised_to_the_floor() {
    let mut t = RestartTracker::new(7);
    let b = Backoff::fixed(Duration::ZERO);
    for _ in 0..5 {
        assert_eq!(t.next(&b, 10, ms(60_000)), Some(super::MIN_BACKOFF));
    }
    // Jitter never takes a wait below the floor either.
    let b = Backoff::fixed(super::MIN_BACKOFF).with_jitter(1.0);
    for _ in 0..100 {
        let w = t.next(&b, super::UNLIMITED_RESTARTS, ms(60_000)).unwrap();
        assert!(w >= super::MIN_BACKOFF, "{w:?}");
    }
}

#[test]
fn duration_max_backoff_with_jitter_does_not_overflow() {
    // `Duration::mul_f64` panics when the product rounds to 2^64 s (MAX as f64 rounds up to
    // it, so a factor of 1.0 does); the jitter is now computed with `try_from_secs_f64`.
    let mut t = RestartTracker::new(99);
    let b = Backoff::fixed(Duration::MAX).with_jitter(0.5);
    for _ in 0..50 {
        let w = t.next(&b, 100, Duration::MAX).unwrap();
        assert!(w >= Duration::MAX / 4, "{w:?}");
    }
    let b = Backoff::exponential(Duration::from_secs(u64::MAX / 2), Duration::MAX);
    assert_eq!(b.delay(40), Duration::MAX);
    assert!(b.delay(0) <= Duration::MAX);
}

#[test]
fn unlimited_restarts_never_escalate_and_keep_one_timestamp() {
    let mut t = RestartTracker::new(3);
    let b = Backoff::exponential(ms(1), ms(8));
    let waits: Vec<Duration> = (0..10_000)
        .map(|_| {
            t.next(&b, super::UNLIMITED_RESTARTS, Duration::MAX)
                .unwrap()
        })
        .collect();
    assert_eq!(t.times.len(), 1);
    assert_eq!(t.restarts(), 10_000);
    // The backoff still grows while the window is not clear.
    assert_eq!(&waits[..5], &[ms(1), ms(2), ms(4), ms(8), ms(8)]);
}
