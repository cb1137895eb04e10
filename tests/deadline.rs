//! `Deadline`: construction from a `Duration`, an `Instant` or never; overflow; ordering.

mod common;

use std::time::{Duration, Instant};

use common::ms;
use threadhost::Deadline;

#[test]
fn smoke() {
    let d = Deadline::after(Duration::from_secs(60));
    assert!(!d.is_expired());
    assert!(!d.is_never());
    assert!(d.remaining().unwrap() <= Duration::from_secs(60));
    assert!(d.remaining().unwrap() > Duration::from_secs(50));
}

#[test]
fn from_duration_is_counted_from_now() {
    let before = Instant::now();
    let d: Deadline = Duration::from_secs(5).into();
    let after = Instant::now();
    let at = d.instant().expect("a finite deadline");
    assert!(at >= before + Duration::from_secs(5));
    assert!(at <= after + Duration::from_secs(5));
}

#[test]
fn from_instant_is_that_instant() {
    let when = Instant::now() + Duration::from_secs(3);
    let d: Deadline = when.into();
    assert_eq!(d.instant(), Some(when));
    assert_eq!(Deadline::at(when), d);
}

#[test]
fn never_has_no_instant_and_never_expires() {
    let d = Deadline::NEVER;
    assert!(d.is_never());
    assert_eq!(d.instant(), None);
    assert_eq!(d.remaining(), None);
    assert!(!d.is_expired());
    assert_eq!(Deadline::default(), Deadline::NEVER);
    assert_eq!(Deadline::from(None::<Duration>), Deadline::NEVER);
    assert!(!Deadline::from(Some(ms(10))).is_never());
}

#[test]
fn duration_max_overflow_is_never() {
    // `Instant::now() + Duration::MAX` would panic; a deadline must mean "never" instead.
    assert_eq!(Deadline::from(Duration::MAX), Deadline::NEVER);
    assert_eq!(Deadline::after(Duration::MAX), Deadline::NEVER);
    assert_eq!(
        Deadline::from(Duration::new(u64::MAX, 999_999_999)),
        Deadline::NEVER
    );
    assert_eq!(
        Deadline::NEVER.min_after(Some(Duration::MAX)),
        Deadline::NEVER
    );
}

#[test]
fn remaining_saturates_at_zero() {
    let past = Deadline::at(Instant::now());
    common::busy(ms(2));
    assert_eq!(past.remaining(), Some(Duration::ZERO));
    assert!(past.is_expired());
    assert_eq!(
        Deadline::after(Duration::ZERO).remaining(),
        Some(Duration::ZERO)
    );
}

#[test]
fn remaining_decreases() {
    let d = Deadline::after(Duration::from_secs(60));
    let first = d.remaining().unwrap();
    common::busy(ms(5));
    let second = d.remaining().unwrap();
    assert!(second < first, "{second:?} should be less than {first:?}");
}

#[test]
fn is_expired_at_the_deadline_not_before() {
    let d = Deadline::after(ms(30));
    assert!(!d.is_expired());
    common::busy(ms(40));
    assert!(d.is_expired());
}

#[test]
fn ordering_earlier_is_smaller_and_never_is_greatest() {
    let now = Instant::now();
    let a = Deadline::at(now);
    let b = Deadline::at(now + ms(1));
    let far = Deadline::at(now + Duration::from_secs(100 * 365 * 24 * 3600));
    assert!(a < b);
    assert!(b < far);
    assert!(far < Deadline::NEVER);
    assert!(Deadline::NEVER > a);
    assert_eq!(
        Deadline::NEVER.cmp(&Deadline::NEVER),
        std::cmp::Ordering::Equal
    );
    let mut v = vec![Deadline::NEVER, b, a, far];
    v.sort();
    assert_eq!(v, [a, b, far, Deadline::NEVER]);
    assert_eq!(v.iter().max(), Some(&Deadline::NEVER));
}

#[test]
fn min_picks_the_earlier() {
    let now = Instant::now();
    let a = Deadline::at(now);
    let b = Deadline::at(now + ms(10));
    assert_eq!(a.min(b), a);
    assert_eq!(b.min(a), a);
    assert_eq!(a.min(Deadline::NEVER), a);
    assert_eq!(Deadline::NEVER.min(b), b);
    assert_eq!(Deadline::NEVER.min(Deadline::NEVER), Deadline::NEVER);
}

#[test]
fn min_after_only_ever_shortens() {
    let far = Deadline::after(Duration::from_secs(60));
    // A shorter per-step timeout wins.
    let short = far.min_after(Some(ms(100)));
    assert!(short < far);
    assert!(short.remaining().unwrap() <= ms(100));
    // A longer one leaves the deadline unchanged.
    assert_eq!(far.min_after(Some(Duration::from_secs(600))), far);
    // None leaves it unchanged.
    assert_eq!(far.min_after(None), far);
    // Never shortened by a timeout becomes finite.
    assert!(!Deadline::NEVER.min_after(Some(ms(100))).is_never());
}

#[test]
fn debug_shows_never_or_time_left() {
    assert_eq!(format!("{:?}", Deadline::NEVER), "Deadline(never)");
    let s = format!("{:?}", Deadline::after(Duration::from_secs(5)));
    assert!(s.starts_with("Deadline(in "), "{s}");
}

#[test]
fn deadline_is_copy_send_sync() {
    fn assert_traits<T: Copy + Send + Sync + 'static>() {}
    assert_traits::<Deadline>();
}
