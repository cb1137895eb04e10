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
