//! The floor of threadhost's footprint: a cdylib that does the least threadhost's C library
//! does — a named thread, a `parking_lot` `Condvar` wait, items through a crossbeam `bounded`
//! channel, and `catch_unwind` at the C boundary — so that its stripped size is what any
//! Rust cdylib doing that job pays for the standard library (panic machinery with its
//! backtrace printer, formatting), the channel and the condvar.
//!
//! Two functions, so that neither can be folded into a constant by the optimizer.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::bounded;
use parking_lot::{Condvar, Mutex};

/// What a C caller gets back when the Rust side panicked (the panic stops at the boundary).
const FLOOR_PANIC: c_int = -1;
/// A thread could not be spawned.
const FLOOR_SPAWN_FAILED: c_int = -2;

/// Runs `f` behind the panic boundary.
fn boundary(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(FLOOR_PANIC)
}

/// Spawns a named worker thread, passes `items` integers (0, 1, ...) to it through a bounded
/// channel of `capacity` slots, waits on a condvar until the worker reports its sum, and
/// returns the sum modulo 2^31 (or a negative status). `capacity` 0 is a rendezvous channel.
/// A negative `items` panics (before any thread starts) and returns -1.
#[unsafe(no_mangle)]
pub extern "C" fn floor_run(items: c_int, capacity: usize) -> c_int {
    boundary(|| {
        let items = u64::try_from(items)
            .unwrap_or_else(|_| panic!("floor_run: items must not be negative, got {items}"));
        let (tx, rx) = bounded::<u64>(capacity);
        let done = Arc::new((Mutex::new(None::<u64>), Condvar::new()));
        let reported = Arc::clone(&done);
        let worker = thread::Builder::new()
            .name("floor-worker".to_owned())
            .spawn(move || {
                let sum: u64 = rx.iter().sum();
                let (lock, cv) = &*reported;
                *lock.lock() = Some(sum);
                cv.notify_one();
            });
        let Ok(worker) = worker else {
            return FLOOR_SPAWN_FAILED;
        };
        for i in 0..items {
            if tx.send(i).is_err() {
                break;
            }
        }
        drop(tx);
        let (lock, cv) = &*done;
        let mut sum = lock.lock();
        while sum.is_none() {
            cv.wait_for(&mut sum, Duration::from_millis(100));
        }
        let total = sum.take().unwrap_or(0);
        drop(sum);
        if worker.join().is_err() {
            return FLOOR_PANIC;
        }
        c_int::try_from(total % (1 << 31)).unwrap_or(c_int::MAX)
    })
}

/// Panics on purpose behind the boundary and returns -1: the C side sees a status, never an
/// unwind across `extern "C"`.
#[unsafe(no_mangle)]
pub extern "C" fn floor_panic() -> c_int {
    boundary(|| panic!("floor_panic: caught at the boundary"))
}
