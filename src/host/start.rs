//! The start side of the sequencer: the host's `start`, and the start of a scope (the whole
//! tree, or the nodes a change or a supervisor starts) with its three phases.

use std::sync::Arc;
use std::time::Instant;

use crate::deadline::Deadline;
use crate::error::Error;
use crate::host::control::{
    Activity, Await, Cmd, Ctl, Id, Life, Phase, ROOT, Resolution, Shared, Wait,
};
use crate::host::plan::Scope;
use crate::host::{HostHandle, runner};
use crate::report::StopReport;
use crate::service::Context;
use crate::state::{HostState, ServiceState};
use crate::stop::StopReason;
use crate::sync::MutexGuard;

/// How a scope's start ended.
#[derive(Debug)]
pub(crate) enum Started {
    /// Every service of the scope started.
    All,
    /// A stop request ended it early: the services not yet started were skipped, the
    /// started ones are left for the stop sequence.
    Interrupted,
}

impl Shared {
    pub(crate) fn start(self: &Arc<Self>, deadline: Deadline) -> Result<(), Error> {
        // Invariant 8: token and lifetime callbacks fired by the start run on this thread.
        let _working = crate::thread::work_for(self.id);
        // Listeners run from the first `start` on (also a stop-before-start's last event).
        #[cfg(feature = "listeners")]
        if let Err(source) = self.events.spawn(HostHandle {
            shared: Arc::clone(self),
        }) {
            // Listeners are part of what the program asked for: not a silent loss.
            crate::logging::error!(
                "could not spawn the state-listener thread `th:host-events`: {source}"
            );
        }
        let scope = {
            let mut ctl = self.ctl.lock();
            if ctl.state == HostState::Stopped && ctl.never_started {
                // Stopped before it ever started (a `join` saw the early stop request
                // first): the same outcome as below, start nothing.
                return Ok(());
            }
            if ctl.state != HostState::Created || ctl.activity != Activity::Idle {
                return Err(Error::InvalidState {
                    operation: "start",
                    state: ctl.state,
                });
            }
            if ctl.stop_reason.is_some() {
                // A stop requested before start: start nothing, the host is done.
                self.stop_before_start(&mut ctl);
                drop(ctl);
                crate::logging::info!("Application stopped before it started");
                self.fire_stopped_early(deadline);
                return Ok(());
            }
            ctl.activity = Activity::Starting;
            self.set_state(&mut ctl, HostState::Starting);
            Scope::subtree(&ctl, ROOT)
        };
        crate::logging::debug!("Hosting starting");
        match self.start_scope(&scope, deadline) {
            Ok(started) => {
                let (completed, swept) = {
                    let mut ctl = self.ctl.lock();
                    let completed =
                        ctl.state == HostState::Starting && matches!(started, Started::All);
                    if completed {
                        ctl.reached_running = true;
                        self.set_state(&mut ctl, HostState::Running);
                    }
                    // Services that left the tree during the start (a transient one that
                    // completed) go now.
                    (completed, self.become_idle(&mut ctl))
                };
                drop(swept);
                if completed {
                    crate::logging::debug!("Hosting started");
                    let watched = self.started_event.is_watched();
                    let done = self.fire_lifetime(watched, |shared| {
                        shared.started_event.stop();
                    });
                    // Its callbacks have returned when `start` does, unless they overrun
                    // the start deadline (they go on, on their own thread).
                    let _done = done.wait_until(deadline);
                } else {
                    crate::logging::info!("Start ended early: a stop was requested");
                }
                Ok(())
            }
            Err(error) => {
                // Log first, then transition (and roll back).
                crate::logging::error!("Hosting failed to start: {error}");
                let rollback = {
                    let mut ctl = self.ctl.lock();
                    if ctl.stop_reason.is_none() {
                        ctl.stop_reason = Some(StopReason::Requested);
                    }
                    ctl.activity = Activity::Stopping;
                    self.set_state(&mut ctl, HostState::Stopping);
                    // Invariant 3: a `join` waiting for a stop request sees it.
                    self.cond.notify_all();
                    Deadline::after(self.options.shutdown_timeout)
                };
                self.fire_stopping(false, StopReason::Requested);
                let report = self.stop_sequence(rollback);
                if !report.is_clean() {
                    crate::logging::warn!("rollback after the failed start: {report}");
                }
                let _report = self.finish_sequence(report, HostState::Failed, rollback);
                Err(error)
            }
        }
    }

    /// A stop requested before the host started: every service is skipped and the host is
    /// `Stopped` with an empty report. `ctl` is held.
    pub(crate) fn stop_before_start(&self, ctl: &mut Ctl) {
        ctl.never_started = true;
        for r in ctl.records.values_mut() {
            r.set_state(ServiceState::Skipped);
            r.life = Life::Done;
        }
        for g in ctl.groups.values_mut() {
            g.set_state(ServiceState::Skipped);
        }
        ctl.report = Some(StopReport {
            reason: ctl.stop_reason.clone(),
            ..StopReport::empty()
        });
        self.set_state(ctl, HostState::Stopped);
        self.cond.notify_all();
    }

    /// Spawns the threads of `scope`, then runs the three start phases over it, in start
    /// order or by level (`start_concurrently`), each service under `deadline` shortened by
    /// its own start timeout. A stop request ends it early ([`Started::Interrupted`]).
    ///
    /// On an error (a hook failed, panicked or overran; a thread could not be spawned), the
    /// scope's services that started are left `Started` for the caller's rollback (a stop
    /// of the same scope), the others told to exit or given up on.
    pub(crate) fn start_scope(
        self: &Arc<Self>,
        scope: &Scope,
        deadline: Deadline,
    ) -> Result<Started, Error> {
        {
            let mut ctl = self.ctl.lock();
            for &g in &scope.groups {
                ctl.group_mut(g).set_state(ServiceState::Starting);
            }
        }
        // A scope of one service (a runtime add, most restarts): its first command is stored
        // before its thread is spawned, so the thread finds it instead of waiting to be woken
        // for it (one hand-off less). With more services, phases go to all of them in turn.
        let first = match scope.order.as_slice() {
            &[i] => {
                let mut ctl = self.ctl.lock();
                let phase = if ctl.rec(i).hosted {
                    Phase::Starting
                } else {
                    Phase::Start
                };
                if ctl.stop_reason.is_none() && ctl.rec(i).thread.is_none() {
                    let r = ctl.rec_mut(i);
                    r.start_began = Some(Instant::now());
                    r.set_state(ServiceState::Starting);
                    let d = deadline.min_after(r.start_timeout);
                    self.send(&mut ctl, i, Cmd::Phase(phase, d));
                    Some((i, phase, d))
                } else {
                    None
                }
            }
            _ => None,
        };
        for &i in &scope.order {
            if let Err(error) = self.spawn(i) {
                // The threads already spawned wait for a command: tell them to exit.
                let mut ctl = self.ctl.lock();
                // Failed, not `Skipped` (what `abandon_start` makes of a thread-less record).
                ctl.rec_mut(i).set_state(ServiceState::Failed);
                self.abandon_start(&mut ctl, scope, &StopReason::Requested, false);
                return Err(error);
            }
        }
        let steps: Vec<Vec<Id>> = if self.options.start_concurrently {
            scope.levels.clone()
        } else {
            scope.order.iter().map(|&i| vec![i]).collect()
        };
        for phase in [Phase::Starting, Phase::Start, Phase::Started] {
            for step in &steps {
                let mut ctl = self.ctl.lock();
                if let Some(reason) = ctl.stop_reason.clone() {
                    self.abandon_start(&mut ctl, scope, &reason, true);
                    return Ok(Started::Interrupted);
                }
                let mut targets = Vec::new();
                for &i in step {
                    let r = ctl.rec_mut(i);
                    if !r.hosted && phase != Phase::Start {
                        continue;
                    }
                    if r.start_began.is_none() {
                        r.start_began = Some(Instant::now());
                    }
                    // Only from Created: a later phase must not undo `Running`.
                    if r.state == ServiceState::Created {
                        r.set_state(ServiceState::Starting);
                    }
                    let d = match first {
                        // Sent before its thread was spawned, with this deadline.
                        Some((f, p, d)) if f == i && p == phase => d,
                        _ => {
                            let d = deadline.min_after(r.start_timeout);
                            self.send(&mut ctl, i, Cmd::Phase(phase, d));
                            d
                        }
                    };
                    targets.push((i, d, Await::Reply(phase)));
                }
                let results = self.await_all(&mut ctl, &targets, Wait::Start);
                let mut error = None;
                for (i, resolution) in results {
                    let r = ctl.rec_mut(i);
                    match resolution {
                        Resolution::Done(Ok(())) => {
                            // The state became Running in `reply`, atomically with `Started`:
                            // a background body may already have failed and moved it on.
                            if phase == Phase::Started || (phase == Phase::Start && !r.hosted) {
                                r.start_duration = r.start_began.map(|t| t.elapsed());
                            }
                        }
                        Resolution::Done(Err(failure)) => {
                            r.last_error = Some(failure.clone());
                            r.set_state(ServiceState::Failed);
                            error.get_or_insert(Error::StartFailed {
                                service: Arc::clone(&r.path),
                                failure,
                            });
                        }
                        Resolution::TimedOut => {
                            // It missed its deadline: given up on and detached now, so the
                            // rollback does not wait for it (`start` returns by its deadline,
                            // not by the shutdown timeout).
                            r.life = Life::TimedOut;
                            r.set_state(ServiceState::TimedOut);
                            error.get_or_insert(Error::StartTimeout {
                                service: Arc::clone(&r.path),
                            });
                        }
                        Resolution::Interrupted => {}
                    }
                }
                if let Some(error) = error {
                    let reason = if matches!(error, Error::StartTimeout { .. }) {
                        StopReason::Deadline
                    } else {
                        StopReason::Requested
                    };
                    self.abandon_start(&mut ctl, scope, &reason, false);
                    return Err(error);
                }
                if let Some(reason) = ctl.stop_reason.clone() {
                    self.abandon_start(&mut ctl, scope, &reason, true);
                    return Ok(Started::Interrupted);
                }
            }
        }
        let mut ctl = self.ctl.lock();
        for &g in &scope.groups {
            ctl.group_mut(g).set_state(ServiceState::Running);
        }
        Ok(Started::All)
    }

    /// Ends a start early: services awaited mid-hook get their token fired and, on a failed
    /// start (`!stop_requested`), are given up on (told to `Finish`); on a stop request they
    /// are left pending for the stop sequence, which waits for their hook to decide whether
    /// they started. Services not started are told to `Exit`. Started ones are left for the
    /// stop sequence (invariant 5).
    fn abandon_start(
        &self,
        ctl: &mut MutexGuard<'_, Ctl>,
        scope: &Scope,
        reason: &StopReason,
        stop_requested: bool,
    ) {
        let mut fire = Vec::new();
        for &i in &scope.order {
            let r = ctl.rec_mut(i);
            if r.thread.is_none() || r.exited {
                if r.life != Life::Started && r.state == ServiceState::Created {
                    r.set_state(ServiceState::Skipped);
                }
                continue;
            }
            let waiting = r.awaiting.is_some() && r.life == Life::Pending;
            if waiting && stop_requested {
                fire.push(i);
            } else if waiting {
                r.life = Life::Abandoned;
                fire.push(i);
                self.send(ctl, i, Cmd::Finish);
            } else if r.life == Life::TimedOut {
                fire.push(i);
                self.send(ctl, i, Cmd::Finish);
            } else if r.life != Life::Started {
                if r.state != ServiceState::Failed {
                    r.set_state(ServiceState::Skipped);
                }
                self.send(ctl, i, Cmd::Exit);
            }
        }
        self.fire_tokens(ctl, &fire, reason);
    }

    /// Spawns the thread of service `i` if it has none; it waits for its first command.
    fn spawn(self: &Arc<Self>, i: Id) -> Result<(), Error> {
        let (ctx, kind, stack, policy, cond, path) = {
            let mut ctl = self.ctl.lock();
            let r = ctl.rec_mut(i);
            if r.thread.is_some() {
                return Ok(());
            }
            let Some(kind) = r.service.take() else {
                return Ok(());
            };
            r.life = Life::Pending;
            let ctx = Context {
                heartbeat: Arc::clone(&r.heartbeat),
                stop_deadline: Arc::clone(&r.body_deadline),
                liveness: r.liveness,
                name: Arc::clone(&r.name),
                path: Arc::clone(&r.path),
                token: r.token.token(),
                deadline: Deadline::NEVER,
                host: HostHandle {
                    shared: Arc::clone(self),
                },
                services: Arc::clone(&self.plan.services),
            };
            (
                ctx,
                kind,
                r.stack_size,
                r.policy.clone(),
                Arc::clone(&r.cmd_cond),
                Arc::clone(&r.path),
            )
        };
        let shared = Arc::clone(self);
        let name = format!("th:{}", ctx.name);
        // The value comes back if the spawn fails (its closure is dropped unrun).
        let slot = Arc::new(parking_lot::Mutex::new(Some((kind, ctx))));
        let theirs = Arc::clone(&slot);
        let id = self.id;
        let spawned = crate::thread::spawn_named(&name, stack, move || {
            let Some((kind, ctx)) = theirs.lock().take() else {
                return;
            };
            let _serving = crate::thread::serve(id, i);
            runner::service_main(&shared, i, kind, ctx, &policy, &cond);
        });
        match spawned {
            Ok(handle) => {
                self.ctl.lock().rec_mut(i).thread = Some(handle);
                Ok(())
            }
            Err(source) => {
                let back = slot.lock().take();
                let mut ctl = self.ctl.lock();
                let r = ctl.rec_mut(i);
                r.life = Life::Idle;
                r.service = back.map(|(kind, _)| kind);
                Err(Error::Spawn {
                    service: path,
                    source,
                })
            }
        }
    }
}
