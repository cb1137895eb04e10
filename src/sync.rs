//! The one place the locks and atomics of shared state come from.
//!
//! Every concurrent module imports `Mutex`, `Condvar`, `MutexGuard`, `RwLock` and the atomics
//! from here. Normally these are parking_lot's and std's; under `--cfg loom` they are loom's,
//! behind the same (parking_lot-shaped) API, so that the stop tree can be model-checked
//! unchanged (`src/stop/loom.rs`; see ARCHITECTURE.md for the command). A process-wide
//! `static` (a counter, a registry) keeps std's types: loom's exist only inside a model.
//!
//! **`Arc` and `Weak` are not here.** Every module uses `std::sync::Arc` and
//! `std::sync::Weak` directly, under those names (never renamed, never re-exported): loom has
//! no `Weak`, and reference counting is not what the models check, so there is no second
//! `Arc` to choose between.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
// Not modelled under loom (the queue's sender slot; loom has no RwLock worth modelling here).
#[cfg(feature = "queue")]
pub(crate) use parking_lot::RwLock;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use shim::{Condvar, Mutex, MutexGuard};

/// loom's `Mutex`/`Condvar` behind parking_lot's API (guards by `&mut`, no poisoning).
#[cfg(loom)]
mod shim {
    use std::ops::{Deref, DerefMut};
    use std::time::{Duration, Instant};

    pub(crate) struct Mutex<T> {
        inner: loom::sync::Mutex<T>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex {
                inner: loom::sync::Mutex::new(value),
            }
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                mutex: self,
                guard: Some(self.inner.lock().unwrap()),
            }
        }
    }

    impl<T> std::fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Mutex { .. }")
        }
    }

    impl std::fmt::Debug for Condvar {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Condvar { .. }")
        }
    }

    pub(crate) struct MutexGuard<'a, T> {
        mutex: &'a Mutex<T>,
        /// `None` only inside `Condvar::wait*` and `unlocked`.
        guard: Option<loom::sync::MutexGuard<'a, T>>,
    }

    impl<T> MutexGuard<'_, T> {
        pub(crate) fn unlocked<U>(s: &mut Self, f: impl FnOnce() -> U) -> U {
            s.guard = None;
            let out = f();
            s.guard = Some(s.mutex.inner.lock().unwrap());
            out
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.guard.as_ref().unwrap()
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.guard.as_mut().unwrap()
        }
    }

    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    pub(crate) struct Condvar {
        inner: loom::sync::Condvar,
    }

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar {
                inner: loom::sync::Condvar::new(),
            }
        }

        pub(crate) fn wait<T>(&self, g: &mut MutexGuard<'_, T>) {
            let inner = g.guard.take().unwrap();
            g.guard = Some(self.inner.wait(inner).unwrap());
        }

        /// loom has no clock: a timed wait may or may not time out, and loom explores both.
        pub(crate) fn wait_until<T>(
            &self,
            g: &mut MutexGuard<'_, T>,
            _at: Instant,
        ) -> WaitTimeoutResult {
            let inner = g.guard.take().unwrap();
            let (inner, result) = self.inner.wait_timeout(inner, Duration::ZERO).unwrap();
            g.guard = Some(inner);
            WaitTimeoutResult(result.timed_out())
        }

        pub(crate) fn notify_one(&self) {
            self.inner.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.inner.notify_all();
        }
    }
}
