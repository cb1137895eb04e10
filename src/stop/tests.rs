//! Unit tests of the stop tree's private invariants.

use super::*;

#[test]
fn dropped_children_unlink_from_parent() {
    let parent = StopSource::new();
    for _ in 0..10_000 {
        let child = parent.token().child();
        let grandchild = child.token().child();
        drop(child);
        drop(grandchild);
    }
    assert_eq!(tree::child_count(&parent.node), 0);
}

#[test]
fn live_children_are_counted_and_taken_by_stop() {
    let parent = StopSource::new();
    let mut kids: Vec<StopSource> = (0..100).map(|_| parent.child()).collect();
    assert_eq!(tree::child_count(&parent.node), 100);
    let kept = kids.split_off(60);
    drop(kids);
    assert_eq!(tree::child_count(&parent.node), 40);
    parent.stop();
    assert_eq!(tree::child_count(&parent.node), 0);
    assert!(kept.iter().all(StopSource::is_stopped));
}

#[test]
fn child_kept_alive_by_grandchild_still_stops() {
    let root = StopSource::new();
    let child = root.child();
    let grandchild = child.token().child().token();
    drop(child);
    root.stop();
    assert!(grandchild.is_stopped());
}
