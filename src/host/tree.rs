//! The supervision tree: groups, paths, changes to a running tree, and supervisors.
//!
//! The host is the root group ([`ROOT`]); every group holds services and groups in an
//! order of its own (`plan`). Nothing here drives a service directly: a change (an add, a
//! remove, a restart, a partial stop) and a supervisor's restart each take the sequencer
//! (`Activity::Changing`, one at a time, never during the host's start or stop) and run the
//! same start and stop of a scope as the host's own start and stop, with the same
//! deadlines, rollback and report.
//!
//! # Invariants
//!
//! 1. A change begins only while the host is `Running` with no stop requested, and never
//!    from a thread the sequencer may be waiting for (a service being started or stopped):
//!    there it is refused with [`Error::InvalidState`]. A change that would stop the very
//!    thread asking for it (a service removing its own group) runs on a thread of its own
//!    and is reported in progress.
//! 2. A stop request ends a change promptly: its waits (replies, exits, token callbacks)
//!    are interrupted, and it ends, leaving what it had not finished (a hook running, a
//!    thread to await, in the tree) to the host's stop, which takes it over under its own
//!    deadline (`stop_scope`); the change reports it incomplete. So a change never spends
//!    the host's stop budget. A `stop` or `join` past its deadline still waits for a change
//!    ending rather than return an incomplete report.
//! 3. A failure reaches a group through its `pending` list; one supervisor thread per group
//!    at a time drains it, counting each failure against the group's intensity. A group past
//!    its intensity stops its children and fails, and its failure reaches its parent the
//!    same way; the root never restarts: a failure reaching it stops the host (a group's,
//!    under the host's `Ignore` policy, is only logged).
//! 4. Records and groups leave the tree only while the sequencer is idle or by the change
//!    that holds it (`sweep`, `detach`): a scope never names a record that is gone.

use std::sync::Arc;
use std::time::Duration;

use crate::deadline::Deadline;
use crate::error::Error;
use crate::failure::Failure;
use crate::group::{Child, Group};
use crate::host::control::{
    Activity, Ctl, EventSender, GroupNode, Id, Life, NodeId, ROOT, Record, Shared, Wait,
};
use crate::host::options::{HostOptions, validate_stack_size};
use crate::host::plan::{Scope, plan_children};
use crate::host::runner::End;
use crate::host::start::Started;
use crate::report::StopReport;
use crate::state::{HostState, ServiceState};
use crate::stop::StopReason;
use crate::supervise::{Policy, RestartTracker, RestartType, Strategy, validate_intensity};
use crate::sync::MutexGuard;

/// What a failure reaching a group leads to, done once `ctl` is released.
#[must_use]
pub(crate) enum Action {
    None,
    /// The failure reached the root: stop the host, naming this node.
    FailHost(Arc<str>, Failure),
    /// Spawn a supervisor for this group (named so).
    Supervise(Id, Arc<str>),
}

/// `parent/name`, or `name` at the top level.
pub(crate) fn join_path(parent: &str, name: &str) -> Arc<str> {
    if parent.is_empty() {
        Arc::from(name)
    } else {
        Arc::from(format!("{parent}/{name}"))
    }
}

/// Checks `children` (to be added under the group at `parent`, whose present children are
/// named `siblings`): names, duplicates, dependencies (on siblings, new or present), policies,
/// stacks and intensities, recursively. Nothing is built before all of it is checked.
pub(crate) fn validate(
    parent: &str,
    siblings: &[Arc<str>],
    sibling_deps: &[Vec<Arc<str>>],
    check_deps: bool,
    children: &[Child],
    runtime: bool,
) -> Result<(), Error> {
    let mut names: Vec<Arc<str>> = siblings.to_vec();
    for (k, child) in children.iter().enumerate() {
        let name = child.name();
        crate::thread::check_name(name).map_err(|reason| {
            let what = match child {
                Child::Service(_) => "service",
                Child::Group(_) => "group",
            };
            // At build time the position tells which one; a runtime add has just the one.
            let which = if runtime {
                format!("name of the {what} added to `{parent}`")
            } else if parent.is_empty() {
                format!("name of {what} #{k}")
            } else {
                format!("name of {what} #{k} in `{parent}`")
            };
            Error::invalid_option(which, name.escape_debug(), reason)
        })?;
        let path = join_path(parent, name);
        if names.contains(name) {
            return Err(Error::DuplicateService { service: path });
        }
        names.push(Arc::clone(name));
        match child {
            Child::Service(s) => {
                validate_stack_size(&format!("stack_size of service `{path}`"), s.stack_size)?;
                if let Some(policy) = &s.policy {
                    policy.validate(&path)?;
                }
            }
            Child::Group(g) => {
                validate_intensity(
                    &format!("restart intensity of group `{path}`"),
                    &g.backoff,
                    g.max_restarts,
                    g.within,
                )?;
                validate(&path, &[], &[], true, &g.children, false)?;
            }
        }
    }
    if !check_deps {
        return Ok(());
    }
    // Dependencies name siblings (present or new); no cycle, whichever closes it.
    let deps: Vec<&[Arc<str>]> = sibling_deps
        .iter()
        .map(Vec::as_slice)
        .chain(children.iter().map(Child::depends_on))
        .collect();
    let paths: Vec<Arc<str>> = names.iter().map(|n| join_path(parent, n)).collect();
    let named: Vec<Arc<str>> = names.clone();
    plan_children(&named, &deps, false).map_err(|e| match e {
        Error::UnknownDependency {
            service,
            dependency,
        } => Error::UnknownDependency {
            service: paths
                .iter()
                .zip(&named)
                .find(|(_, n)| **n == service)
                .map_or(service, |(p, _)| Arc::clone(p)),
            dependency,
        },
        Error::DependencyCycle { services } => Error::DependencyCycle {
            services: services.iter().map(|n| join_path(parent, n)).collect(),
        },
        other => other,
    })?;
    Ok(())
}

/// Builds `child` into the tree under group `parent` (checked by [`validate`]) and returns
/// its node; the parent's plan is left to the caller (`replan`).
pub(crate) fn insert(
    ctl: &mut Ctl,
    parent: Id,
    child: Child,
    options: &HostOptions,
    events: &dyn Fn() -> EventSender,
) -> NodeId {
    let parent_path = Arc::clone(&ctl.group(parent).path);
    let id = ctl.new_id();
    match child {
        Child::Service(s) => {
            let path = join_path(&parent_path, &s.name);
            ctl.records
                .insert(id, Record::build(s, parent, path, options, events));
            NodeId::Service(id)
        }
        Child::Group(mut g) => {
            let children = std::mem::take(&mut g.children);
            let path = join_path(&parent_path, &g.name);
            ctl.groups
                .insert(id, group_node(id, g, path, Some(parent), events));
            for c in children {
                let n = insert(ctl, id, c, options, events);
                attach(ctl, id, n, false);
            }
            replan(ctl, id);
            NodeId::Group(id)
        }
    }
}

/// The node of group `g` (its children not yet in it), with id `id` at `path`.
fn group_node(
    id: Id,
    g: Group,
    path: Arc<str>,
    parent: Option<Id>,
    events: &dyn Fn() -> EventSender,
) -> GroupNode {
    #[cfg(not(feature = "listeners"))]
    let _ = events;
    GroupNode {
        name: g.name,
        path,
        parent,
        children: Vec::new(),
        index: std::collections::HashMap::new(),
        order: Vec::new(),
        levels: Vec::new(),
        strategy: g.strategy,
        max_restarts: g.max_restarts,
        within: g.within,
        backoff: g.backoff,
        restart: g.restart,
        depends_on: g.depends_on,
        start_timeout: g.start_timeout,
        stop_timeout: g.stop_timeout,
        tracker: tracker_for(id),
        state: ServiceState::Created,
        restarts: 0,
        last_error: None,
        pending: Vec::new(),
        epoch: 0,
        supervising: false,
        #[cfg(feature = "listeners")]
        events: events(),
    }
}

/// A fresh restart tracker for group `g` (its jitter seeded by the id).
fn tracker_for(g: Id) -> RestartTracker {
    RestartTracker::new(g.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The root group: the host, which never restarts a child itself (invariant 3): its
/// intensity is 0. Its state changes are the host's, so it sends none of its own.
pub(crate) fn root(options: &HostOptions) -> GroupNode {
    let settings = Group::new("")
        .intensity(0, Duration::from_secs(1))
        .stop_timeout(options.shutdown_timeout);
    let settings = match options.startup_timeout {
        Some(t) => settings.start_timeout(t),
        None => settings,
    };
    #[cfg(feature = "listeners")]
    let events = || None;
    #[cfg(not(feature = "listeners"))]
    let events = || ();
    group_node(ROOT, settings, Arc::from(""), None, &events)
}

/// Recomputes group `g`'s start order and levels from its children's dependencies. A
/// dependency on a sibling removed since is dropped.
pub(crate) fn replan(ctl: &mut Ctl, g: Id) {
    let children = ctl.group(g).children.clone();
    let names: Vec<Arc<str>> = children.iter().map(|&n| node_name(ctl, n)).collect();
    let deps: Vec<Vec<Arc<str>>> = children
        .iter()
        .map(|&n| match n {
            NodeId::Service(i) => ctl.rec(i).depends_on.clone(),
            NodeId::Group(c) => ctl.group(c).depends_on.clone(),
        })
        .collect();
    let refs: Vec<&[Arc<str>]> = deps.iter().map(Vec::as_slice).collect();
    // Checked before anything was built, and a removal cannot make a cycle.
    let (order, levels) = plan_children(&names, &refs, true).unwrap_or_else(|_| {
        let all: Vec<usize> = (0..children.len()).collect();
        (all.clone(), vec![all])
    });
    let group = ctl.group_mut(g);
    group.order = order.iter().map(|&k| children[k]).collect();
    group.levels = levels
        .iter()
        .map(|l| l.iter().map(|&k| children[k]).collect())
        .collect();
}

fn node_name(ctl: &Ctl, n: NodeId) -> Arc<str> {
    match n {
        NodeId::Service(i) => Arc::clone(&ctl.rec(i).name),
        NodeId::Group(g) => Arc::clone(&ctl.group(g).name),
    }
}

fn node_path(ctl: &Ctl, n: NodeId) -> Arc<str> {
    match n {
        NodeId::Service(i) => Arc::clone(&ctl.rec(i).path),
        NodeId::Group(g) => Arc::clone(&ctl.group(g).path),
    }
}

/// The node at `path` and the group it is in; `None` for the root or an unknown path.
fn resolve(ctl: &Ctl, path: &str) -> Option<(Id, NodeId)> {
    let mut group = ROOT;
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        let found = *ctl.group(group).index.get(part)?;
        if parts.peek().is_none() {
            return Some((group, found));
        }
        match found {
            NodeId::Group(g) => group = g,
            NodeId::Service(_) => return None,
        }
    }
    None
}

/// The group at `path` (`""`: the root).
fn resolve_group(ctl: &Ctl, path: &str) -> Result<Id, Error> {
    if path.is_empty() {
        return Ok(ROOT);
    }
    match resolve(ctl, path) {
        Some((_, NodeId::Group(g))) => Ok(g),
        Some((_, NodeId::Service(_))) => Err(Error::invalid_option(
            "group path",
            path.escape_debug(),
            "names a service, not a group",
        )),
        None => Err(Error::UnknownChild {
            path: Arc::from(path),
        }),
    }
}

/// The node at `path`, which must not be the root.
fn resolve_child(ctl: &Ctl, path: &str) -> Result<(Id, NodeId), Error> {
    if path.is_empty() {
        return Err(Error::invalid_option(
            "path",
            "\"\"",
            "names the host itself: stop the host instead",
        ));
    }
    resolve(ctl, path).ok_or_else(|| Error::UnknownChild {
        path: Arc::from(path),
    })
}

/// `true` if service `i` is `node` or under it.
fn within(ctl: &Ctl, i: Id, node: NodeId) -> bool {
    match node {
        NodeId::Service(s) => s == i,
        NodeId::Group(g) => {
            let mut at = ctl.records.get(&i).map(|r| r.parent);
            while let Some(p) = at {
                if p == g {
                    return true;
                }
                at = ctl.groups.get(&p).and_then(|p| p.parent);
            }
            false
        }
    }
}

/// Takes the subtree `node` (child of `parent`) out of the tree; returns what was in it, to
/// be dropped with no lock held (a service value's `Drop` is user code).
fn detach(ctl: &mut Ctl, parent: Id, node: NodeId) -> (Vec<Record>, Vec<GroupNode>) {
    let name = node_name(ctl, node);
    let group = ctl.group_mut(parent);
    group.children.retain(|&n| n != node);
    group.index.remove(&name);
    group.pending.retain(|(n, _, _)| *n != node);
    // What is left keeps its order; a level emptied goes (a sibling that depended on the
    // removed child keeps its place, which still follows its other dependencies).
    group.order.retain(|&n| n != node);
    for level in &mut group.levels {
        level.retain(|&n| n != node);
    }
    group.levels.retain(|l| !l.is_empty());
    let mut records = Vec::new();
    let mut groups = Vec::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        match n {
            NodeId::Service(i) => records.extend(ctl.records.remove(&i)),
            NodeId::Group(g) => {
                if let Some(g) = ctl.groups.remove(&g) {
                    stack.extend(g.children.iter().copied());
                    groups.push(g);
                }
            }
        }
    }
    (records, groups)
}

/// Makes `node` (built by [`insert`]) the last child of group `g`; with `plan`, places it in
/// the group's start plan too (at the end of the order, in the level after its
/// dependencies; the builder plans each group once, after all its children).
pub(crate) fn attach(ctl: &mut Ctl, g: Id, node: NodeId, plan: bool) {
    let name = node_name(ctl, node);
    let deps = node_deps(ctl, node);
    let named = plan
        && ctl
            .group(g)
            .children
            .iter()
            .any(|&n| node_deps(ctl, n).contains(&name));
    let group = ctl.group_mut(g);
    group.children.push(node);
    group.index.insert(name, node);
    if !plan {
        return;
    }
    if named {
        // A sibling depends on it (a dependency removed and added again): it must start
        // before that sibling, so the whole plan is made again.
        replan(ctl, g);
        return;
    }
    // Its dependencies are siblings started before it (an add never closes a cycle:
    // `check_add`), so the end of the order respects them.
    let on: Vec<NodeId> = deps
        .iter()
        .filter_map(|d| group.index.get(d).copied())
        .collect();
    let level = if on.is_empty() {
        0
    } else {
        group
            .levels
            .iter()
            .rposition(|l| l.iter().any(|n| on.contains(n)))
            .map_or(0, |at| at + 1)
    };
    group.order.push(node);
    if group.levels.len() <= level {
        group.levels.resize_with(level + 1, Vec::new);
    }
    group.levels[level].push(node);
}

/// Checks `child` for an add to group `g` as it is now: names, dependencies (with the
/// present children's), and a group that runs (a stopped or failed group has no supervisor
/// to take its children's failures).
fn check_add(ctl: &Ctl, g: Id, child: &Child) -> Result<(), Error> {
    let group = ctl.group(g);
    // Its name and settings (and, for a group, everything in it).
    validate(
        &group.path,
        &[],
        &[],
        false,
        std::slice::from_ref(child),
        true,
    )?;
    let name = child.name();
    if group.index.contains_key(name) {
        return Err(Error::DuplicateService {
            service: join_path(&group.path, name),
        });
    }
    if let Some(missing) = child
        .depends_on()
        .iter()
        .find(|d| !group.index.contains_key(*d))
    {
        return Err(Error::UnknownDependency {
            service: join_path(&group.path, name),
            dependency: Arc::clone(missing),
        });
    }
    // A cycle needs a sibling that depends on the new name (one left by a removed child):
    // only then is the whole plan checked.
    let named = group
        .children
        .iter()
        .any(|&n| node_deps(ctl, n).iter().any(|d| d == name));
    if named && !child.depends_on().is_empty() {
        let siblings: Vec<Arc<str>> = group.children.iter().map(|&n| node_name(ctl, n)).collect();
        let deps: Vec<Vec<Arc<str>>> = group.children.iter().map(|&n| node_deps(ctl, n)).collect();
        validate(
            &group.path,
            &siblings,
            &deps,
            true,
            std::slice::from_ref(child),
            true,
        )?;
    }
    Ok(())
}

/// The state check of an add to group `g`, once the change holds the sequencer.
fn check_running(ctl: &Ctl, g: Id) -> Result<(), Error> {
    let group = ctl.group(g);
    if g != ROOT
        && matches!(
            group.state,
            ServiceState::Stopping | ServiceState::Stopped | ServiceState::Failed
        )
    {
        return Err(Error::invalid_option(
            "group path",
            &*group.path,
            format!(
                "names a group that is {}: restart it (restart_child) before adding to it",
                group.state
            ),
        ));
    }
    Ok(())
}

fn node_deps(ctl: &Ctl, n: NodeId) -> Vec<Arc<str>> {
    match n {
        NodeId::Service(i) => ctl.rec(i).depends_on.clone(),
        NodeId::Group(g) => ctl.group(g).depends_on.clone(),
    }
}

fn epoch(ctl: &Ctl, n: NodeId) -> Option<u64> {
    match n {
        NodeId::Service(i) => ctl.records.get(&i).map(|r| r.epoch),
        NodeId::Group(g) => ctl.groups.get(&g).map(|g| g.epoch),
    }
}

/// A change or a restart takes over `n` and everything under it: failures queued before
/// are stale, and a supervisor waiting out a backoff for them leaves them alone.
fn bump(ctl: &mut Ctl, n: NodeId) {
    match n {
        NodeId::Service(i) => {
            if let Some(r) = ctl.records.get_mut(&i) {
                r.epoch += 1;
            }
        }
        NodeId::Group(g) => {
            let Some(group) = ctl.groups.get_mut(&g) else {
                return;
            };
            group.epoch += 1;
            for c in group.children.clone() {
                bump(ctl, c);
            }
        }
    }
}

impl Shared {
    /// How a failure of service `i` that its policy gives up goes on, for its log line.
    pub(crate) fn escalation(&self, i: Id) -> String {
        let ctl = self.ctl.lock();
        match ctl.records.get(&i).map(|r| r.parent) {
            Some(ROOT) | None => "stopping the host".to_owned(),
            Some(g) => format!("handing it to its group `{}`", ctl.group(g).path),
        }
    }

    /// A background body ended before it was stopped (runner.rs): record it, and take it to
    /// its group if it is to be restarted or removed.
    pub(crate) fn body_ended(self: &Arc<Self>, i: Id, end: End) {
        let mut ctl = self.ctl.lock();
        let Some(r) = ctl.records.get_mut(&i) else {
            return;
        };
        let parent = r.parent;
        let mut old = None;
        let failure = match end {
            End::Completed => {
                r.set_state(ServiceState::Completed);
                match r.restart {
                    Some(RestartType::Permanent) => Some(Failure::from_box(
                        "it completed, and is a permanent service".into(),
                    )),
                    Some(RestartType::Transient | RestartType::Temporary) => {
                        r.remove_on_exit = true;
                        ctl.leaving.push(i);
                        None
                    }
                    None => None,
                }
            }
            End::Failed { failure, escalate } => {
                old = r.last_error.replace(failure.clone());
                r.set_state(ServiceState::Failed);
                if r.restart == Some(RestartType::Temporary) {
                    r.remove_on_exit = true;
                    ctl.leaving.push(i);
                }
                escalate.then_some(failure)
            }
        };
        let action = match failure {
            Some(f) => self.child_failed(&mut ctl, parent, NodeId::Service(i), f),
            None => Action::None,
        };
        drop(ctl);
        drop(old);
        self.act(action);
    }

    /// A child of group `g` failed (or a permanent one ended): queue it for the group's
    /// supervisor (invariant 3), or, at the root, stop the host.
    fn child_failed(&self, ctl: &mut Ctl, g: Id, child: NodeId, failure: Failure) -> Action {
        if g == ROOT {
            let path = node_path(ctl, child);
            return match child {
                NodeId::Group(_) if self.options.failure_policy == Policy::Ignore => Action::None,
                _ => Action::FailHost(path, failure),
            };
        }
        let group = ctl.group_mut(g);
        if matches!(
            group.state,
            ServiceState::Stopping | ServiceState::Stopped | ServiceState::Failed
        ) {
            return Action::None;
        }
        let name = Arc::clone(&group.name);
        let at = epoch(ctl, child).unwrap_or(0);
        let group = ctl.group_mut(g);
        group.pending.push((child, at, failure));
        if std::mem::replace(&mut group.supervising, true) {
            Action::None
        } else {
            Action::Supervise(g, name)
        }
    }

    fn act(self: &Arc<Self>, action: Action) {
        match action {
            Action::None => {}
            Action::FailHost(path, failure) => self.fail_host(path, failure),
            Action::Supervise(g, name) => {
                let shared = Arc::clone(self);
                let id = self.id;
                crate::thread::spawn_or_run(&format!("th:{name}:supervisor"), move || {
                    let _working = crate::thread::work_for(id);
                    let _serving = crate::thread::serve_none(id);
                    shared.supervise(g);
                });
            }
        }
    }

    /// A failure reached the root: remember the first one, then request the stop.
    pub(crate) fn fail_host(self: &Arc<Self>, path: Arc<str>, failure: Failure) {
        {
            let mut ctl = self.ctl.lock();
            if ctl.host_failure.is_none() {
                ctl.host_failure = Some((Arc::clone(&path), failure));
            }
        }
        self.request_stop(StopReason::Failure { service: path });
    }

    /// Removes the records that asked to leave the tree once their thread exited (a
    /// transient service that completed, a temporary one that ended), if no sequence runs
    /// (invariant 4). Returns them, for [`Swept`]'s drop with no lock held.
    pub(crate) fn sweep(&self, ctl: &mut Ctl) -> Swept {
        let mut out = Swept(Vec::new());
        if ctl.activity != Activity::Idle || ctl.state != HostState::Running {
            return out;
        }
        let mut gone: Vec<(Id, Id)> = Vec::new();
        ctl.leaving.retain(|&i| match ctl.records.get(&i) {
            Some(r) if r.remove_on_exit && r.exited => {
                gone.push((i, r.parent));
                false
            }
            Some(_) => true,
            None => false,
        });
        for (i, parent) in gone {
            let (records, _) = detach(ctl, parent, NodeId::Service(i));
            out.0.extend(records);
        }
        out
    }

    /// The sequencer is free again (a start, a change, a supervisor's backoff): records that
    /// asked to leave the tree leave it (returned, to be dropped with no lock held), and the
    /// waiters are woken.
    pub(crate) fn become_idle(&self, ctl: &mut Ctl) -> Swept {
        ctl.activity = Activity::Idle;
        let swept = self.sweep(ctl);
        self.cond.notify_all();
        swept
    }

    // ---- changes ----

    /// Invariant 1: takes the sequencer for a change, waiting (until `deadline`) for a start
    /// or another change to end.
    fn begin_change(
        &self,
        ctl: &mut MutexGuard<'_, Ctl>,
        operation: &'static str,
        path: &str,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let me = crate::thread::serving(self.id);
        loop {
            let refused = ctl.stop_reason.is_some()
                || !matches!(ctl.state, HostState::Starting | HostState::Running);
            if refused {
                let state = if ctl.stop_reason.is_some() && !ctl.state.is_terminal() {
                    HostState::Stopping
                } else {
                    ctl.state
                };
                return Err(Error::InvalidState { operation, state });
            }
            if ctl.activity == Activity::Idle && ctl.state == HostState::Running {
                ctl.activity = Activity::Changing;
                return Ok(());
            }
            // The sequencer is busy. If it may be waiting for this very thread (a start hook
            // it awaits, a service it stops), waiting here would hold it to its deadline.
            if let Some(r) = me.and_then(|i| ctl.records.get(&i)) {
                // A hook the sequencer awaits (it has not replied yet), or a service (its
                // body, its token's callbacks) being stopped.
                if (r.awaiting.is_some() && r.reply.is_none()) || r.token.is_stopped() {
                    return Err(Error::InvalidState {
                        operation,
                        state: ctl.state,
                    });
                }
            }
            if !self.wait_until(ctl, deadline) {
                return Err(Error::ChangeTimeout {
                    operation,
                    path: Arc::from(path),
                });
            }
        }
    }

    /// Gives the sequencer back, removes what asked to leave, wakes the waiters.
    fn end_change(&self, mut ctl: MutexGuard<'_, Ctl>) {
        let swept = self.become_idle(&mut ctl);
        drop(ctl);
        drop(swept);
    }

    /// `HostHandle::add_service` / `add_group`.
    pub(crate) fn add_child(
        self: &Arc<Self>,
        parent_path: &str,
        child: Child,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let _working = crate::thread::work_for(self.id);
        let (scope, parent, node) = {
            let mut ctl = self.ctl.lock();
            let parent = resolve_group(&ctl, parent_path)?;
            let parent_path = Arc::clone(&ctl.group(parent).path);
            check_add(&ctl, parent, &child)?;
            self.begin_change(&mut ctl, "add", parent_path.as_ref(), deadline)?;
            // The wait may have let another change remove the parent or add a sibling.
            let again = resolve_group(&ctl, &parent_path).and_then(|p| {
                check_add(&ctl, p, &child)?;
                check_running(&ctl, p)?;
                Ok(p)
            });
            let parent = match again {
                Ok(p) => p,
                Err(e) => {
                    self.end_change(ctl);
                    return Err(e);
                }
            };
            let events = || self.event_sender();
            let node = insert(&mut ctl, parent, child, &self.options, &events);
            attach(&mut ctl, parent, node, true);
            (Scope::node(&ctl, parent, node), parent, node)
        };
        let path = node_path(&self.ctl.lock(), node);
        match self.start_scope(&scope, deadline) {
            Ok(Started::All) => {
                crate::logging::info!(service = &*path; "`{path}` added");
                self.end_change(self.ctl.lock());
                Ok(())
            }
            Ok(Started::Interrupted) => {
                // The host is stopping: what started is stopped with the rest of the tree.
                self.end_change(self.ctl.lock());
                Err(Error::InvalidState {
                    operation: "add",
                    state: HostState::Stopping,
                })
            }
            Err(error) => {
                crate::logging::error!(service = &*path;
                    "adding `{path}` failed: {error}; rolling it back"
                );
                let rollback = Deadline::after(self.options.shutdown_timeout);
                let report =
                    self.stop_scope(&scope, rollback, &StopReason::Requested, Wait::Change);
                if !report.is_clean() {
                    crate::logging::warn!(service = &*path; "rollback of `{path}`: {report}");
                }
                let mut ctl = self.ctl.lock();
                // Cut short by the host's stop: the host stops what is left.
                let gone = report.is_complete().then(|| detach(&mut ctl, parent, node));
                self.end_change(ctl);
                drop(gone);
                Err(error)
            }
        }
    }

    /// A change that stops `node`'s subtree, asked for from a thread of that subtree
    /// (invariant 1): run it on a thread of its own.
    fn asked_from_within(&self, path: &str) -> Option<bool> {
        let me = crate::thread::serving(self.id)?;
        let ctl = self.ctl.lock();
        let (_, node) = resolve(&ctl, path)?;
        Some(within(&ctl, me, node))
    }

    fn detached(self: &Arc<Self>, what: &str, path: &str, deadline: Deadline, op: Op) {
        let shared = Arc::clone(self);
        let owned = path.to_owned();
        let id = self.id;
        let leaf = path.rsplit('/').next().unwrap_or(path).to_owned();
        crate::thread::spawn_or_run(&format!("th:{leaf}:{what}"), move || {
            let _working = crate::thread::work_for(id);
            let _serving = crate::thread::serve_none(id);
            let result = match op {
                Op::Remove => shared.remove(&owned, deadline).map(|_| ()),
                Op::Stop => shared.stop_child(&owned, deadline).map(|_| ()),
                Op::Restart => shared.restart_child(&owned, deadline),
            };
            if let Err(e) = result {
                crate::logging::error!("{e}");
            }
        });
    }

    /// `HostHandle::remove`.
    pub(crate) fn remove(
        self: &Arc<Self>,
        path: &str,
        deadline: Deadline,
    ) -> Result<StopReport, Error> {
        self.stop_node(path, deadline, Op::Remove)
    }

    /// `HostHandle::stop_child`.
    pub(crate) fn stop_child(
        self: &Arc<Self>,
        path: &str,
        deadline: Deadline,
    ) -> Result<StopReport, Error> {
        self.stop_node(path, deadline, Op::Stop)
    }

    fn stop_node(
        self: &Arc<Self>,
        path: &str,
        deadline: Deadline,
        op: Op,
    ) -> Result<StopReport, Error> {
        let operation = match op {
            Op::Remove => "remove",
            _ => "stop_child",
        };
        if self.asked_from_within(path) == Some(true) {
            self.detached(operation, path, deadline, op);
            return Ok(StopReport::in_progress(None));
        }
        let _working = crate::thread::work_for(self.id);
        let (scope, parent, node) = {
            let mut ctl = self.ctl.lock();
            resolve_child(&ctl, path)?;
            self.begin_change(&mut ctl, operation, path, deadline)?;
            match resolve_child(&ctl, path) {
                Ok((parent, node)) => {
                    bump(&mut ctl, node);
                    (Scope::node(&ctl, parent, node), parent, node)
                }
                Err(e) => {
                    self.end_change(ctl);
                    return Err(e);
                }
            }
        };
        let report = self.stop_scope(&scope, deadline, &StopReason::Requested, Wait::Change);
        let mut ctl = self.ctl.lock();
        // Cut short by the host's stop (incomplete): what is left is the host's to stop, and
        // stays in the tree for its report.
        let gone = if matches!(op, Op::Remove) && report.is_complete() {
            Some(detach(&mut ctl, parent, node))
        } else {
            None
        };
        self.end_change(ctl);
        drop(gone);
        crate::logging::info!(service = path;
            "`{path}` {}: {report}",
            if matches!(op, Op::Remove) {
                "removed"
            } else {
                "stopped"
            }
        );
        Ok(report)
    }

    /// `HostHandle::restart_child`.
    pub(crate) fn restart_child(
        self: &Arc<Self>,
        path: &str,
        deadline: Deadline,
    ) -> Result<(), Error> {
        if self.asked_from_within(path) == Some(true) {
            self.detached("restart", path, deadline, Op::Restart);
            return Ok(());
        }
        let _working = crate::thread::work_for(self.id);
        let scope = {
            let mut ctl = self.ctl.lock();
            resolve_child(&ctl, path)?;
            self.begin_change(&mut ctl, "restart_child", path, deadline)?;
            match resolve_child(&ctl, path) {
                Ok((parent, node)) => {
                    bump(&mut ctl, node);
                    Scope::node(&ctl, parent, node)
                }
                Err(e) => {
                    self.end_change(ctl);
                    return Err(e);
                }
            }
        };
        let report = self.stop_scope(&scope, deadline, &StopReason::Requested, Wait::Change);
        if !report.is_complete() {
            // Cut short by the host's stop, which finishes what is left.
            self.end_change(self.ctl.lock());
            return Err(Error::InvalidState {
                operation: "restart_child",
                state: HostState::Stopping,
            });
        }
        if !report.is_clean() {
            crate::logging::warn!(service = path; "restarting `{path}`: {report}");
        }
        let result = self.restart_scope(&scope, deadline);
        self.end_change(self.ctl.lock());
        result
    }

    /// Resets the stopped services of `scope` and starts them again; on a failure, stops what
    /// started. The caller holds the sequencer.
    fn restart_scope(self: &Arc<Self>, scope: &Scope, deadline: Deadline) -> Result<(), Error> {
        let mut old = Vec::new();
        let mut dropped = Vec::new();
        {
            let mut ctl = self.ctl.lock();
            // A group started again starts afresh: its intensity counts from now (OTP).
            for &g in &scope.groups {
                let group = ctl.group_mut(g);
                group.tracker = tracker_for(g);
                dropped.extend(std::mem::take(&mut group.pending));
            }
            // Restarted, they stay in the tree (a transient one that completed and is started
            // again is no longer leaving it).
            ctl.leaving.retain(|i| !scope.order.contains(i));
            // All or none: a service whose thread still runs cannot run twice.
            if let Some(r) = scope
                .order
                .iter()
                .map(|&i| ctl.rec(i))
                .find(|r| r.service.is_none() || r.thread.is_some())
            {
                return Err(Error::StillRunning {
                    service: Arc::clone(&r.path),
                });
            }
            for &i in &scope.order {
                let r = ctl.rec_mut(i);
                old.push(r.reset());
                r.restarts = r.restarts.saturating_add(1);
                r.epoch += 1;
            }
            for &g in &scope.groups {
                ctl.group_mut(g).epoch += 1;
            }
        }
        // The last reply and outcome, and failures queued, may hold a user's error: dropped
        // with no lock held.
        drop((old, dropped));
        match self.start_scope(scope, deadline) {
            Ok(Started::All) => Ok(()),
            Ok(Started::Interrupted) => Err(Error::InvalidState {
                operation: "restart",
                state: HostState::Stopping,
            }),
            Err(error) => {
                let rollback = Deadline::after(self.options.shutdown_timeout);
                let _report =
                    self.stop_scope(scope, rollback, &StopReason::Requested, Wait::Change);
                let mut ctl = self.ctl.lock();
                for &g in &scope.groups {
                    ctl.group_mut(g).set_state(ServiceState::Failed);
                }
                Err(error)
            }
        }
    }

    // ---- supervision ----

    /// A group's supervisor (invariant 3): drains its pending failures, restarting the
    /// children its strategy names, until none is left, the group fails, or the host stops.
    fn supervise(self: &Arc<Self>, g: Id) {
        loop {
            // Failures dropped here may hold the last reference to a user's error: declared
            // before the guard, so dropped after it (invariant 1 of `host`).
            let mut dropped: Vec<(NodeId, u64, Failure)> = Vec::new();
            let mut ctl = self.ctl.lock();
            let path = match ctl.groups.get(&g) {
                Some(group) => Arc::clone(&group.path),
                None => return,
            };
            if self
                .begin_change(&mut ctl, "supervise", &path, Deadline::NEVER)
                .is_err()
            {
                // The host is stopping: its stop takes care of the children.
                if let Some(group) = ctl.groups.get_mut(&g) {
                    group.supervising = false;
                    dropped = std::mem::take(&mut group.pending);
                }
                drop(ctl);
                drop(dropped);
                return;
            }
            let Some(group) = ctl.groups.get_mut(&g) else {
                self.end_change(ctl);
                return;
            };
            let queued = std::mem::take(&mut group.pending);
            // A failure of a child a change or a restart took over since is stale.
            let (current, stale): (Vec<_>, Vec<_>) = queued
                .into_iter()
                .partition(|&(n, at, _)| epoch(&ctl, n) == Some(at));
            dropped = stale;
            let batch: Vec<(NodeId, Failure)> =
                current.into_iter().map(|(n, _, f)| (n, f)).collect();
            let group = ctl.group_mut(g);
            if batch.is_empty() {
                group.supervising = false;
                self.end_change(ctl);
                return;
            }
            // One restart counts once against the intensity, whatever it restarts (OTP).
            let (backoff, max, window) = (group.backoff.clone(), group.max_restarts, group.within);
            let wait = group.tracker.next(&backoff, max, window);
            let stop_budget =
                Deadline::after(group.stop_timeout.unwrap_or(self.options.shutdown_timeout));
            let failure = batch[0].1.clone();
            let Some(wait) = wait else {
                drop(ctl);
                self.fail_group(g, &path, failure, stop_budget);
                return;
            };
            // Which children restart, in the group's start order.
            let order = group.order.clone();
            let mut affected: Vec<NodeId> = Vec::new();
            for (child, _) in &batch {
                let Some(at) = order.iter().position(|n| n == child) else {
                    continue;
                };
                let named: &[NodeId] = match group.strategy {
                    Strategy::OneForOne => &order[at..=at],
                    Strategy::OneForAll => &order[..],
                    Strategy::RestForOne => &order[at..],
                };
                for n in named {
                    if !affected.contains(n) {
                        affected.push(*n);
                    }
                }
            }
            let strategy = group.strategy;
            let old = group.last_error.replace(failure.clone());
            group.set_state(ServiceState::Restarting);
            let group_epoch = group.epoch;
            // Temporary children are stopped with the others but not started again.
            let (restart, stop_only): (Vec<NodeId>, Vec<NodeId>) = affected
                .iter()
                .partition(|&&n| node_restart(&ctl, n) != Some(RestartType::Temporary));
            let epochs: Vec<Option<u64>> = restart.iter().map(|&n| epoch(&ctl, n)).collect();
            let scope = Scope::of(&ctl, g, &affected);
            for &i in &scope.order {
                let r = ctl.rec_mut(i);
                if r.state != ServiceState::Failed {
                    r.set_state(ServiceState::Restarting);
                }
            }
            let names: Vec<String> = affected
                .iter()
                .map(|&n| node_path(&ctl, n).to_string())
                .collect();
            drop(ctl);
            drop(old);
            crate::logging::warn!(service = &*path;
                "group `{path}` ({strategy:?}): a child failed: {failure}; restarting {} in {wait:?}",
                names.join(", "),
            );
            let report = self.stop_scope(&scope, stop_budget, &StopReason::Requested, Wait::Change);
            if report.timed_out().is_empty() {
                crate::logging::debug!(service = &*path;
                    "group `{path}`: stopped for the restart: {report}"
                );
            } else {
                crate::logging::warn!(service = &*path;
                    "group `{path}`: stopping for the restart: {report}"
                );
            }
            // The backoff: the sequencer is free meanwhile; a stop request, or a change that
            // removes the group, ends it.
            let mut ctl = self.ctl.lock();
            // Cut short by the host's stop, they stay for it to finish and report.
            let gone: Vec<_> = if report.is_complete() {
                stop_only.iter().map(|&n| detach(&mut ctl, g, n)).collect()
            } else {
                Vec::new()
            };
            let swept = self.become_idle(&mut ctl);
            let until = Deadline::after(wait);
            let current = |ctl: &Ctl| {
                ctl.groups
                    .get(&g)
                    .is_some_and(|group| group.epoch == group_epoch)
            };
            while ctl.stop_reason.is_none() && current(&ctl) && self.wait_until(&mut ctl, until) {}
            let stopping = ctl.stop_reason.is_some();
            let taken_over = !current(&ctl);
            let refused = !stopping
                && !taken_over
                && self
                    .begin_change(&mut ctl, "supervise", &path, Deadline::NEVER)
                    .is_err();
            // Taken over while this waited for its turn (its parent restarted it)?
            let held = !stopping && !taken_over && !refused;
            if held && !current(&ctl) {
                let (stale, more) = self.abandon_restart(&mut ctl, g, &scope, false);
                self.end_change(ctl);
                drop((stale, gone, swept));
                if more {
                    continue;
                }
                return;
            }
            if !held {
                // The host is stopping, or a change took the group over (removed, stopped or
                // restarted it): no restart here. Failures queued since, for children the
                // change did not take over, are still to handle.
                let (stale, more) = self.abandon_restart(&mut ctl, g, &scope, stopping || refused);
                drop(ctl);
                drop((stale, gone, swept));
                if more {
                    continue;
                }
                return;
            }
            // Other changes ran during the backoff: restart what is still there and was not
            // taken over by one of them.
            let present: Vec<NodeId> = restart
                .iter()
                .zip(&epochs)
                .filter(|&(n, at)| ctl.group(g).children.contains(n) && epoch(&ctl, *n) == *at)
                .map(|(n, _)| *n)
                .collect();
            if present.is_empty() {
                // Every child it was to restart was taken over (removed, restarted) meanwhile:
                // no restart happened.
                ctl.group_mut(g).set_state(ServiceState::Running);
                self.end_change(ctl);
                continue;
            }
            let scope = Scope::of(&ctl, g, &present);
            let start_budget =
                Deadline::from(ctl.group(g).start_timeout.or(self.options.startup_timeout));
            drop(ctl);
            drop(gone);
            match self.restart_scope(&scope, start_budget) {
                Ok(()) => {
                    let mut ctl = self.ctl.lock();
                    let group = ctl.group_mut(g);
                    group.restarts = group.restarts.saturating_add(1);
                    group.set_state(ServiceState::Running);
                    self.end_change(ctl);
                    crate::logging::info!(service = &*path;
                        "group `{path}` restarted {}", names.join(", ")
                    );
                }
                Err(Error::InvalidState {
                    state: HostState::Stopping,
                    ..
                }) => {
                    // The host's stop cut the restart short: it takes the children over.
                    let mut ctl = self.ctl.lock();
                    let (stale, _) = self.abandon_restart(&mut ctl, g, &scope, true);
                    self.end_change(ctl);
                    drop(stale);
                    return;
                }
                Err(error) => {
                    // Another failure of the same child, counted like the first.
                    crate::logging::error!(service = &*path;
                        "group `{path}`: the restart failed: {error}"
                    );
                    let failure = Failure::from_box(error.to_string().into());
                    let mut ctl = self.ctl.lock();
                    let child = batch[0].0;
                    let at = epoch(&ctl, child).unwrap_or(0);
                    if let Some(group) = ctl.groups.get_mut(&g) {
                        group.set_state(ServiceState::Restarting);
                        group.pending.push((child, at, failure));
                    }
                    self.end_change(ctl);
                }
            }
        }
    }

    /// A restart that will not happen (the host stops, a change took the group over): the
    /// services stopped for it that no one took over are `Stopped` (the group's state is the
    /// change's or the host's stop's to set). With `all` (the host stops), every queued failure
    /// goes; otherwise only the stale ones, and `true` says failures of the current children
    /// are left, for this supervisor to handle. Returns the failures dropped, to be dropped
    /// with no lock held.
    fn abandon_restart(
        &self,
        ctl: &mut Ctl,
        g: Id,
        scope: &Scope,
        all: bool,
    ) -> (Vec<(NodeId, u64, Failure)>, bool) {
        for &i in &scope.order {
            if let Some(r) = ctl.records.get_mut(&i) {
                // Those the host's stop took over are its to report.
                if r.state == ServiceState::Restarting && r.life == Life::Done {
                    r.set_state(ServiceState::Stopped);
                }
            }
        }
        let queued = match ctl.groups.get_mut(&g) {
            Some(group) => std::mem::take(&mut group.pending),
            None => Vec::new(),
        };
        let (current, stale): (Vec<_>, Vec<_>) = if all {
            (Vec::new(), queued)
        } else {
            queued
                .into_iter()
                .partition(|&(n, at, _)| epoch(ctl, n) == Some(at))
        };
        let more = !current.is_empty();
        if let Some(group) = ctl.groups.get_mut(&g) {
            group.pending = current;
            group.supervising = more;
        }
        self.cond.notify_all();
        (stale, more)
    }

    /// Group `g` exceeded its intensity: stop all its children, mark it failed, and hand the
    /// failure to its parent (a temporary group leaves the tree instead). Called holding the
    /// sequencer; gives it back.
    fn fail_group(self: &Arc<Self>, g: Id, path: &Arc<str>, failure: Failure, budget: Deadline) {
        crate::logging::error!(service = &**path;
            "group `{path}` failed: more restarts than its intensity allows; last failure: {failure}"
        );
        let scope = {
            let ctl = self.ctl.lock();
            Scope::subtree(&ctl, g)
        };
        let report = self.stop_scope(&scope, budget, &StopReason::Requested, Wait::Change);
        if !report.is_clean() {
            crate::logging::warn!(service = &**path;
                "group `{path}`: stopping the failed group: {report}"
            );
        }
        // Formatted before the lock: a failure's `Display` is user code.
        let up = Failure::from_box(
            format!("group `{path}` exceeded its restart intensity: {failure}").into(),
        );
        let mut dropped = Vec::new();
        let mut ctl = self.ctl.lock();
        let mut old = None;
        let mut gone = None;
        let action = match ctl.groups.get_mut(&g) {
            Some(group) => {
                group.supervising = false;
                dropped = std::mem::take(&mut group.pending);
                old = group.last_error.replace(failure);
                group.set_state(ServiceState::Failed);
                let parent = group.parent.unwrap_or(ROOT);
                if group.restart == Some(RestartType::Temporary) {
                    // Unless the host's stop cut this short: it finishes and reports them.
                    if report.is_complete() {
                        gone = Some(detach(&mut ctl, parent, NodeId::Group(g)));
                    }
                    Action::None
                } else {
                    self.child_failed(&mut ctl, parent, NodeId::Group(g), up)
                }
            }
            None => Action::None,
        };
        self.end_change(ctl);
        drop((old, gone, dropped));
        self.act(action);
    }
}

/// Records taken out of the tree by `sweep`: logged and dropped (their service values'
/// `Drop` is user code) once the lock is released.
#[must_use]
pub(crate) struct Swept(Vec<Record>);

impl Drop for Swept {
    fn drop(&mut self) {
        for mut r in self.0.drain(..) {
            crate::logging::info!(service = &*r.path;
                "service `{}` ended and left the tree", r.path
            );
            // Its thread has nothing left to do but return: detached.
            drop(r.thread.take());
        }
    }
}

/// A change run on a thread of its own (invariant 1).
#[derive(Clone, Copy, Debug)]
enum Op {
    Remove,
    Stop,
    Restart,
}

fn node_restart(ctl: &Ctl, n: NodeId) -> Option<RestartType> {
    match n {
        NodeId::Service(i) => ctl.rec(i).restart,
        NodeId::Group(g) => ctl.group(g).restart,
    }
}
