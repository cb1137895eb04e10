//! The worker threads of a queue: spawning them, the loop each one runs, and the per-worker
//! counters that keep the metrics cheap.

use std::io;
use std::thread::JoinHandle;

use crate::error::BoxError;
use crate::queue::{Core, Handler};
use crate::stop::{StopToken, Stopped};
use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// What one worker has taken and finished, on its own cache line, so that workers never
/// contend on a counter and the producer's lock word stays out of their lines.
///
/// Each counter has a single writer, its worker, which bumps it with a relaxed load + store
/// (no locked read-modify-write); readers (`Core::metrics`) sum them with relaxed loads.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerCounters {
    pub(crate) taken: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) panicked: AtomicU64,
}

/// Single-writer increment: only the owning worker ever writes this counter.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Spawns worker `index` of the queue, named `th:<queue>/<index>`.
pub(crate) fn spawn_worker<T: Send + 'static>(
    core: &Arc<Core<T>>,
    handler: &Handler<T>,
    index: usize,
    stack_size: Option<usize>,
) -> io::Result<JoinHandle<()>> {
    let name = format!("th:{}/{index}", core.name);
    core.worker_spawned(index);
    let spawned = crate::thread::spawn_named(&name, stack_size, {
        let core = Arc::clone(core);
        let handler = Arc::clone(handler);
        move || worker_main(&core, &handler, index)
    });
    if spawned.is_err() {
        // The thread never ran: undo its registration so that a stop does not wait for it.
        core.worker_exited(index);
    }
    spawned
}

/// The top frame of a worker thread: take the next item, run it, count the outcome; until
/// the queue is closed and empty, or cancelled.
fn worker_main<T: Send + 'static>(core: &Core<T>, handler: &Handler<T>, index: usize) {
    // Whatever happens below (user code is behind catch_unwind), the stop hook must learn
    // that this worker is done, or it would wait for it until its deadline.
    let _exited = scopeguard::guard((), |()| core.worker_exited(index));
    let counters = &core.counters[index];
    let token: StopToken = core.jobs.token();
    let rx = core.rx.clone();
    // `recv` blocks (crossbeam parks the thread) until an item arrives, and ends once the
    // stop sealed the channel and it is empty.
    for item in rx.iter() {
        if core.is_cancelled() {
            // Received after the cancel: hand it back, never start it (invariant 3).
            core.hand_back_late(vec![item]);
            continue;
        }
        bump(&counters.taken);
        match crate::panic::catch(|| handler(item, &token)) {
            Ok(Ok(())) => bump(&counters.completed),
            Ok(Err(error)) => {
                if is_cancellation(&error, &token) {
                    // The job gave up because the stop cancelled it: expected, not an error.
                    log::info!("queue `{}`: a job was cancelled by the stop", core.name);
                    bump(&counters.cancelled);
                } else {
                    // The error's `Display` is user code: guarded, so the worker survives it.
                    let shown = crate::panic::Guarded(&*error);
                    log::error!(
                        "queue `{}`: a job failed: {shown}; the worker goes on",
                        core.name
                    );
                    bump(&counters.failed);
                }
                // The error is user data: a panicking `Drop` must not end the worker.
                crate::panic::drop_quietly(error);
            }
            Err(message) => {
                // The payload (user data) was dropped by `catch`, outside any lock, surviving
                // a panicking drop.
                log::error!(
                    "queue `{}`: a job panicked: {message}; the worker goes on",
                    core.name,
                );
                bump(&counters.panicked);
            }
        }
    }
}

/// A job is *cancelled*, not failed, when it returned [`Stopped`] and the jobs' token had
/// fired by then: it gave up because the stop cancelled it. Any other error is a failure, even
/// after the token fired (a real error during the stop must not be hidden), and so is a
/// `Stopped` while the token has not fired (the job was not cancelled by the queue).
fn is_cancellation(error: &BoxError, token: &StopToken) -> bool {
    error.is::<Stopped>() && token.is_stopped()
}
