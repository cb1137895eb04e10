//! The stop tree: nodes, their invariants, and the free functions that change them.
//!
//! [`StopSource`](super::StopSource) and [`StopToken`](super::StopToken) are thin handles over an
//! `Arc<Node>`; all of the logic lives here.
//!
//! # Invariants
//!
//! 1. `Node::stopped` is stored `true` (Release) only while holding `Node::inner`, in the same
//!    critical section that sets `Inner::reason`; it never goes back to `false`. So
//!    `is_stopped()` is a single Acquire load, and a thread that saw `true` also sees the reason.
//! 2. A waiter checks `stopped` under `inner` and only then waits on `cond`; `stop` sets the flag
//!    under `inner` and calls `notify_all` before releasing it. A stop can therefore never fall
//!    between a waiter's check and its wait (no lost wake-up).
//! 3. `Inner::children` holds a `Weak` to every live, not-yet-stopped child; a child holds a
//!    strong `Arc` to its parent. A child of a stopped parent is born stopped and is never
//!    registered. When a child node is freed, its `Drop` removes its entry, so the list never
//!    outgrows the number of live children (and shrinks when it is a quarter full).
//! 4. Once stopped, a node has no children and no callbacks: `stop` takes both lists.
//! 5. No user code (an `on_stop` callback, or the drop of one) runs while any node's lock is
//!    held. Callbacks are collected under the lock and run after the whole subtree is stopped.
//!
//! # Lock order
//!
//! A thread holds at most one node lock at a time: `stop` walks the tree iteratively, taking
//! and releasing each node's lock in turn, and a child's `Drop` takes only its parent's lock.
//! An `Arc<Node>` is never dropped while a node lock is held, because dropping the last one
//! runs `Drop`, which locks the parent (see `stop_tree`, where upgraded children are dropped
//! only after the lock is released).

use std::collections::HashMap;

use crate::deadline::Deadline;
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering};
use std::sync::{Arc, Weak};

use super::StopReason;

/// A callback registered with `on_stop`.
pub(crate) type Callback = Box<dyn FnOnce(&StopReason) + Send + 'static>;

/// One node of the stop tree: a source, its tokens and its registrations share it.
pub(crate) struct Node {
    /// Invariant 1: set under `inner`, read lock-free.
    stopped: AtomicBool,
    inner: Mutex<Inner>,
    cond: Condvar,
    /// Immutable after creation; keeps the parent alive while this child lives (invariant 3).
    parent: Option<Arc<Node>>,
    /// This node's key in its parent's `children` map.
    id: u64,
}

#[derive(Default)]
struct Inner {
    reason: Option<StopReason>,
    children: HashMap<u64, Weak<Node>>,
    callbacks: Vec<(u64, Callback)>,
}

/// Keys for children and callbacks; unique for the life of the process. (A plain std atomic
/// even under loom: a static cannot hold a loom atomic, and key allocation is not modelled.)
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A new root node.
pub(crate) fn new_root() -> Arc<Node> {
    Arc::new(Node {
        stopped: AtomicBool::new(false),
        inner: Mutex::new(Inner::default()),
        cond: Condvar::new(),
        parent: None,
        id: next_id(),
    })
}

/// A new child of `parent`: registered, or born stopped with the parent's reason.
pub(crate) fn new_child(parent: &Arc<Node>) -> Arc<Node> {
    let id = next_id();
    // Invariant 3: decide under the parent's lock, so that a concurrent `stop` of the parent
    // either sees this child in its list or this child sees the parent stopped.
    let mut guard = parent.inner.lock();
    let born_stopped = guard.reason.clone();
    let child = Arc::new(Node {
        stopped: AtomicBool::new(born_stopped.is_some()),
        inner: Mutex::new(Inner {
            reason: born_stopped.clone(),
            ..Inner::default()
        }),
        cond: Condvar::new(),
        parent: if born_stopped.is_some() {
            None
        } else {
            Some(Arc::clone(parent))
        },
        id,
    });
    if born_stopped.is_none() {
        guard.children.insert(id, Arc::downgrade(&child));
    }
    drop(guard);
    child
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(parent) = &self.parent {
            // Invariant 3: unlink. The parent may have stopped meanwhile and taken its list;
            // removing an absent key is then a no-op.
            let mut guard = parent.inner.lock();
            guard.children.remove(&self.id);
            let cap = guard.children.capacity();
            if cap > 16 && guard.children.len() < cap / 4 {
                let len = guard.children.len();
                guard.children.shrink_to(len * 2);
            }
        }
    }
}

/// Invariant 1: one Acquire load.
pub(crate) fn is_stopped(node: &Node) -> bool {
    node.stopped.load(Ordering::Acquire)
}

pub(crate) fn reason(node: &Node) -> Option<StopReason> {
    if !is_stopped(node) {
        return None;
    }
    node.inner.lock().reason.clone()
}

/// Stops `root` and its whole subtree with `reason`; `false` if `root` was already stopped.
///
/// Walks the tree iteratively. Every node is marked and its waiters woken before any callback
/// runs, so a slow callback never delays the wake-up of another node's waiters. A node with no
/// children and no callbacks — the common case — is stopped without allocating.
pub(crate) fn stop_tree(root: &Arc<Node>, reason: StopReason) -> bool {
    match mark_tree(root, &reason) {
        Some(callbacks) => {
            run_callbacks(callbacks, &reason);
            true
        }
        None => false,
    }
}

/// The first half of [`stop_tree`]: marks `root` and its subtree stopped and wakes every
/// waiter, and returns the callbacks to run (`None` if `root` was already stopped). The caller
/// runs them with [`run_callbacks`], on this thread or another (invariant 5 either way).
pub(crate) fn mark_tree(root: &Arc<Node>, reason: &StopReason) -> Option<Vec<Callback>> {
    let mut callbacks: Vec<Callback> = Vec::new();
    let mut pending = stop_node(root, reason, &mut callbacks)?;
    while let Some(node) = pending.pop() {
        if let Some(children) = stop_node(&node, reason, &mut callbacks) {
            pending.extend(children);
        }
        // Lock order: `node` (a strong reference) is dropped here, with no lock held; if it
        // was the last one, its `Drop` locks its parent — safe now.
    }
    Some(callbacks)
}

/// The second half of [`stop_tree`]. Invariant 5: user code runs with no lock held. A
/// panicking callback is logged and the others still run.
pub(crate) fn run_callbacks(callbacks: Vec<Callback>, reason: &StopReason) {
    for cb in callbacks {
        run_callback(cb, reason);
    }
}

/// Stops one node: `None` if it was already stopped (by a concurrent stop of it or of an
/// ancestor, whose job its subtree then is); otherwise its live children, to stop next.
fn stop_node(
    node: &Node,
    reason: &StopReason,
    callbacks: &mut Vec<Callback>,
) -> Option<Vec<Arc<Node>>> {
    let children = {
        let mut guard = node.inner.lock();
        if guard.reason.is_some() {
            return None;
        }
        // Invariants 1 and 2: flag and reason under the lock, notify before releasing it.
        guard.reason = Some(reason.clone());
        node.stopped.store(true, Ordering::Release);
        node.cond.notify_all();
        // Invariant 4: take both lists (neither allocates when empty).
        callbacks.extend(guard.callbacks.drain(..).map(|(_, cb)| cb));
        std::mem::take(&mut guard.children)
    };
    // Upgrading and dropping the `Weak`s needs no lock; the strong references returned are
    // dropped by the caller with no lock held (lock order).
    Some(children.into_values().filter_map(|w| w.upgrade()).collect())
}

/// Runs one callback, catching and logging a panic.
pub(crate) fn run_callback(cb: Callback, reason: &StopReason) {
    crate::panic::log_panic(format_args!("an on_stop callback"), || cb(reason));
}

/// Whether stopping `node` would run user code: it has callbacks, or children (whose
/// callbacks a stop runs too). A snapshot: a callback may be registered right after.
pub(crate) fn is_watched(node: &Node) -> bool {
    let guard = node.inner.lock();
    !guard.callbacks.is_empty() || !guard.children.is_empty()
}

/// Blocks until `node` is stopped or `deadline` passes; `true` = stopped.
pub(crate) fn wait_until(node: &Node, deadline: Deadline) -> bool {
    if is_stopped(node) {
        return true;
    }
    let mut guard = node.inner.lock();
    // Invariant 2: the predicate is checked under the lock before every wait, in a loop bounded
    // by the deadline (parking_lot has no spurious wake-ups, but the loop costs nothing and
    // keeps the code correct under any condvar).
    loop {
        if guard.reason.is_some() {
            return true;
        }
        match deadline.instant() {
            None => node.cond.wait(&mut guard),
            Some(at) => {
                if node.cond.wait_until(&mut guard, at).timed_out() {
                    return guard.reason.is_some();
                }
            }
        }
    }
}

/// Registers `cb` on `node`; returns its key, or hands `cb` back if the node is stopped.
pub(crate) fn register(node: &Node, cb: Callback) -> Result<u64, (Callback, StopReason)> {
    let mut guard = node.inner.lock();
    if let Some(reason) = &guard.reason {
        // Invariant 4: a stopped node takes no callbacks; the caller runs it at once.
        let reason = reason.clone();
        drop(guard);
        return Err((cb, reason));
    }
    let id = next_id();
    guard.callbacks.push((id, cb));
    Ok(id)
}

/// Removes callback `id` from `node`, if it has not run yet. The closure is dropped after the
/// lock is released (invariant 5: dropping it may run user code).
pub(crate) fn unregister(node: &Node, id: u64) {
    let removed = {
        let mut guard = node.inner.lock();
        guard
            .callbacks
            .iter()
            .position(|(key, _)| *key == id)
            .map(|at| guard.callbacks.remove(at))
    };
    drop(removed);
}

/// The number of live registered children (for tests of invariant 3).
#[cfg(all(test, not(loom)))]
pub(crate) fn child_count(node: &Node) -> usize {
    node.inner.lock().children.len()
}
