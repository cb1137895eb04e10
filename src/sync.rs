//! The one place concurrency primitives come from.
//!
//! Every concurrent module imports `Mutex`, `Condvar`, `Arc` and the atomics from here, so that a
//! model checker can be substituted in one place (loom models of the stop token are planned under
//! `cfg(loom)`; see ARCHITECTURE.md). Today this re-exports parking_lot and std.

pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
pub(crate) use std::sync::{Arc, Weak};
