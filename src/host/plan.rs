//! The start plan: in what order a group's children start (its dependencies first, then
//! registration order), by which dependency levels they start concurrently, and how a set
//! of nodes of the tree flattens into the services a sequence drives.
//!
//! A sequence (start or stop, of the host or of a subtree) sees a [`Scope`]: its services in
//! start order, and the same services by level. Both are derived from the groups' own plans,
//! each computed when the group is built or changed, so a scope follows the tree as it is
//! now.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::error::Error;
use crate::host::control::{Ctl, Id, NodeId};

/// The services a sequence drives, in start order and by level.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scope {
    /// Every service of the scope, in start order (stop order is the reverse).
    pub(crate) order: Vec<Id>,
    /// The same services by start level: each level starts once the ones before started
    /// (`start_concurrently`); a group's levels follow on from the level it sits in.
    pub(crate) levels: Vec<Vec<Id>>,
    /// The groups of the scope (whose state follows the sequence), parents first.
    pub(crate) groups: Vec<Id>,
}

impl Scope {
    /// The scope of `nodes`, children of group `parent`, in the parent's start order.
    pub(crate) fn of(ctl: &Ctl, parent: Id, nodes: &[NodeId]) -> Scope {
        let mut scope = Scope::default();
        let g = ctl.group(parent);
        for node in g.order.iter().filter(|n| nodes.contains(n)) {
            scope.push_order(ctl, *node);
        }
        let mut at = 0;
        for level in &g.levels {
            let mut height = 0;
            for node in level.iter().filter(|n| nodes.contains(n)) {
                height = height.max(scope.push_levels(ctl, *node, at));
            }
            at += height;
        }
        scope
    }

    /// The scope of the whole subtree under group `g` (all its children).
    pub(crate) fn subtree(ctl: &Ctl, g: Id) -> Scope {
        let children = ctl.group(g).children.clone();
        let mut scope = Scope::of(ctl, g, &children);
        scope.groups.insert(0, g);
        scope
    }

    /// The scope of one node, child of `parent`.
    pub(crate) fn node(ctl: &Ctl, parent: Id, node: NodeId) -> Scope {
        Scope::of(ctl, parent, &[node])
    }

    fn push_order(&mut self, ctl: &Ctl, node: NodeId) {
        match node {
            NodeId::Service(i) => self.order.push(i),
            NodeId::Group(g) => {
                self.groups.push(g);
                for &child in &ctl.group(g).order {
                    self.push_order(ctl, child);
                }
            }
        }
    }

    /// Places `node` from level `at` on; returns how many levels it spans.
    fn push_levels(&mut self, ctl: &Ctl, node: NodeId, at: usize) -> usize {
        match node {
            NodeId::Service(i) => {
                if self.levels.len() <= at {
                    self.levels.resize_with(at + 1, Vec::new);
                }
                self.levels[at].push(i);
                1
            }
            NodeId::Group(g) => {
                let mut next = at;
                for level in &ctl.group(g).levels {
                    let mut height = 0;
                    for &child in level {
                        height = height.max(self.push_levels(ctl, child, next));
                    }
                    next += height;
                }
                next - at
            }
        }
    }
}

/// The start order of a group's children and their levels, as positions into `names`.
pub(crate) fn plan_children(
    names: &[Arc<str>],
    depends_on: &[&[Arc<str>]],
    lenient: bool,
) -> Result<(Vec<usize>, Vec<Vec<usize>>), Error> {
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(names.len());
    for (i, ds) in depends_on.iter().enumerate() {
        let mut mine = Vec::new();
        for d in *ds {
            match names.iter().position(|n| n == d) {
                Some(j) => mine.push(j),
                // A sibling removed at runtime: the dependency went with it.
                None if lenient => {}
                None => {
                    return Err(Error::UnknownDependency {
                        service: Arc::clone(&names[i]),
                        dependency: Arc::clone(d),
                    });
                }
            }
        }
        deps.push(mine);
    }
    plan_order(names, &deps)
}

/// The start order (topological, ties broken by registration order) and the dependency
/// levels (services whose dependencies all sit in earlier levels), or the cycle.
fn plan_order(
    names: &[Arc<str>],
    deps: &[Vec<usize>],
) -> Result<(Vec<usize>, Vec<Vec<usize>>), Error> {
    let n = names.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut level = vec![0usize; n];
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            level[j] = level[j].max(level[i] + 1);
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() < n {
        return Err(Error::DependencyCycle {
            services: find_cycle(names, deps, &indegree),
        });
    }
    let depth = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut levels = vec![Vec::new(); depth];
    for &i in &order {
        levels[level[i]].push(i);
    }
    Ok((order, levels))
}

/// A cycle among the services left with a positive in-degree, as names, closing on its start.
fn find_cycle(names: &[Arc<str>], deps: &[Vec<usize>], indegree: &[usize]) -> Vec<Arc<str>> {
    let Some(start) = (0..names.len()).find(|&i| indegree[i] > 0) else {
        return Vec::new();
    };
    // Every node left has a dependency also left, so following them must revisit a node.
    let mut path = vec![start];
    let mut at = start;
    while let Some(&next) = deps[at].iter().find(|&&d| indegree[d] > 0) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<Arc<str>> =
                path[pos..].iter().map(|&i| Arc::clone(&names[i])).collect();
            cycle.push(Arc::clone(&names[next]));
            return cycle;
        }
        path.push(next);
        at = next;
    }
    path.iter().map(|&i| Arc::clone(&names[i])).collect()
}
