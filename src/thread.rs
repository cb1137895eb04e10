//! The named-thread helper, and which hosts the current thread works for.
//!
//! Every thread threadhost creates goes through [`spawn_named`].
//!
//! # Host membership
//!
//! A thread *works for* a host while it runs code on that host's behalf: a service thread for
//! its whole life, any thread threadhost spawns from it (queue workers: the membership is
//! inherited at spawn), and a caller's thread while it runs the host's start or
//! stop sequence or fires its lifetime events (token and lifetime callbacks run there). Such a
//! thread must never wait for the host's stop to finish: the stop may be waiting for it.
//! `Host::stop` and `Host::join` ask [`works_for`] and, on such a thread, request the stop and
//! return at once instead of waiting (the host module header, invariant 8).
//!
//! Hosts are told apart by an id unique for the life of the process (never an address, which
//! a later host could reuse while a detached thread of an earlier one still runs).

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{Builder, JoinHandle};

thread_local! {
    /// The ids of the hosts this thread works for, innermost last.
    static HOSTS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The service this thread runs for, per host (innermost last; `None`: none, on a thread
    /// spawned from a service's thread that does not belong to the service).
    static SERVING: RefCell<Vec<(u64, Option<u64>)>> = const { RefCell::new(Vec::new()) };
}

/// The smallest thread stack accepted, in bytes: 64 KiB. A service that panics runs the panic
/// machinery and the failure's log line on its own thread: on too small a stack it overflows
/// and aborts the whole process (tests/config.rs, `stack_size_bounds_are_checked_by_build`;
/// the sizes tried are in RELIABILITY.md, "Sizes and outside text"). This floor keeps twice
/// the smallest stack that passed.
pub(crate) const MIN_STACK_SIZE: usize = 64 * 1024;
/// The largest thread stack accepted, in bytes (1 GiB). A bigger request is a mistake (a
/// count of kilobytes passed as bytes times 1024, `usize::MAX` as "unlimited"): the OS would
/// refuse it at spawn, far from the line that set it, or reserve an absurd mapping.
pub(crate) const MAX_STACK_SIZE: usize = 1024 * 1024 * 1024;

/// `Err(reason)` when `bytes` is outside `MIN_STACK_SIZE..=MAX_STACK_SIZE`.
pub(crate) fn check_stack_size(bytes: usize) -> Result<(), String> {
    if bytes < MIN_STACK_SIZE {
        Err(format!(
            "a thread stack must be at least {MIN_STACK_SIZE} bytes (64 KiB)"
        ))
    } else if bytes > MAX_STACK_SIZE {
        Err(format!(
            "a thread stack must be at most {MAX_STACK_SIZE} bytes (1 GiB)"
        ))
    } else {
        Ok(())
    }
}

/// The longest service or queue name accepted, in bytes. A name is in every log line, report
/// entry and status message about its service; a longer one is a mistake (a file's content
/// passed as a name).
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// `Err(reason)` unless `name` is fit to name a service, group or queue (and its thread
/// `th:<name>`): not empty, at most [`MAX_NAME_BYTES`], on one line (no control character: a
/// newline in a name would forge log lines; a NUL cannot name a thread), and without `/`
/// (it separates the names of a path in the tree).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a name must not be empty".to_owned())
    } else if name.len() > MAX_NAME_BYTES {
        Err(format!(
            "a name must be at most {MAX_NAME_BYTES} bytes (it is {})",
            name.len()
        ))
    } else if name.contains(crate::text::breaks_line) {
        Err("a name must not contain control characters (newline, NUL, ...)".to_owned())
    } else if name.contains('/') {
        Err("a name must not contain `/` (it separates the names of a path)".to_owned())
    } else {
        Ok(())
    }
}

/// A new host id, unique for the life of the process.
pub(crate) fn new_host_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whether the current thread works for host `id`.
pub(crate) fn works_for(id: u64) -> bool {
    HOSTS.with(|hosts| hosts.borrow().contains(&id))
}

/// Marks the current thread as working for host `id` until the guard is dropped.
pub(crate) fn work_for(id: u64) -> impl Drop {
    HOSTS.with(|hosts| hosts.borrow_mut().push(id));
    scopeguard::guard((), move |()| {
        HOSTS.with(|hosts| {
            let mut hosts = hosts.borrow_mut();
            if let Some(at) = hosts.iter().rposition(|&h| h == id) {
                hosts.remove(at);
            }
        });
    })
}

/// Marks the current thread as running for service `service` of host `host` (its own
/// thread, and the threads it spawns: a queue's workers) until the guard is dropped. A
/// change to the tree asks it (`serving`) so as never to wait for its own thread.
pub(crate) fn serve(host: u64, service: u64) -> impl Drop {
    push_serving(host, Some(service))
}

/// Marks the current thread as running for no service of host `host` (a thread a service's
/// thread spawned for the host itself: a supervisor, a change run on its own).
pub(crate) fn serve_none(host: u64) -> impl Drop {
    push_serving(host, None)
}

fn push_serving(host: u64, service: Option<u64>) -> impl Drop {
    SERVING.with(|s| s.borrow_mut().push((host, service)));
    scopeguard::guard((), move |()| {
        SERVING.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(at) = s.iter().rposition(|&e| e == (host, service)) {
                s.remove(at);
            }
        });
    })
}

/// The service of host `host` the current thread runs for, if any.
pub(crate) fn serving(host: u64) -> Option<u64> {
    SERVING.with(|s| {
        s.borrow()
            .iter()
            .rev()
            .find(|&&(h, _)| h == host)
            .and_then(|&(_, service)| service)
    })
}

/// Runs `f` on a new thread named `name`, or, if that thread cannot be spawned, on this one
/// (after logging why). For user code that must not hold up the caller but must run.
pub(crate) fn spawn_or_run<F>(name: &str, f: F)
where
    F: FnOnce() + Send + 'static,
{
    // Taken by whichever thread runs it: a failed spawn drops its closure, not `f`.
    let slot = Arc::new(parking_lot::Mutex::new(Some(f)));
    let theirs = Arc::clone(&slot);
    let spawned = spawn_named(name, None, move || {
        let f = theirs.lock().take();
        if let Some(f) = f {
            f();
        }
    });
    if let Err(source) = spawned {
        crate::logging::error!(
            "could not spawn `{name}` ({source}); running its work on this thread"
        );
        let f = slot.lock().take();
        if let Some(f) = f {
            f();
        }
    }
}

/// Spawns a thread named `name`, with `stack_size` bytes of stack if given. The new thread
/// works for the hosts the current thread works for.
pub(crate) fn spawn_named<F>(
    name: &str,
    stack_size: Option<usize>,
    f: F,
) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let mut builder = Builder::new().name(name.to_owned());
    if let Some(bytes) = stack_size {
        builder = builder.stack_size(bytes);
    }
    let inherited = HOSTS.with(|hosts| hosts.borrow().clone());
    let serving = SERVING.with(|s| s.borrow().clone());
    builder.spawn(move || {
        HOSTS.with(|hosts| *hosts.borrow_mut() = inherited);
        SERVING.with(|s| *s.borrow_mut() = serving);
        f();
    })
}
