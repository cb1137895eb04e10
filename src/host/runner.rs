//! What runs on each service thread: the hosted-service command loop and the background body
//! loop with its failure policy. Every call into user code is wrapped in `catch_unwind`.

use std::sync::Arc;
use std::time::Instant;

use crate::deadline::Deadline;
use crate::error::ServiceResult;
use crate::failure::Failure;
use crate::host::control::{Cmd, Id, Life, Phase, Shared};
use crate::service::{BackgroundService, Context, HostedService, Kind};
use crate::state::{HostState, ServiceState};
use crate::stop::Stopped;
use crate::supervise::{Policy, RestartTracker, RestartType};
use crate::sync::Condvar;

/// How a background body ended, for its group (`Shared::body_ended`).
#[derive(Debug)]
pub(crate) enum End {
    /// It returned `Ok(())` before it was asked to stop.
    Completed,
    /// It failed; `escalate`: its policy gave it up, so its group decides.
    Failed { failure: Failure, escalate: bool },
}

/// The top frame of a service thread.
pub(crate) fn service_main(
    shared: &Arc<Shared>,
    i: Id,
    kind: Kind,
    ctx: Context,
    policy: &Policy,
    cond: &Condvar,
) {
    // Whatever happens below (it catches every panic of user code), the host must learn that
    // this thread is done, or a stop would wait for it until its deadline. It hands the
    // service value back, for a restart.
    let mut back = scopeguard::guard(None, |kind| shared.mark_exited(i, kind));
    *back = Some(match kind {
        Kind::Hosted(service) => Kind::Hosted(run_hosted(shared, i, service, ctx, cond)),
        Kind::Background(service) => {
            Kind::Background(run_background(shared, i, service, ctx, policy, cond))
        }
    });
}

/// Calls user code, turning an error or a panic into a `Failure`.
pub(crate) fn call(f: impl FnOnce() -> ServiceResult) -> Result<(), Failure> {
    match crate::panic::catch(f) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::from_box(error)),
        Err(message) => Err(Failure::Panic(message.into())),
    }
}

fn hook(service: &mut dyn HostedService, phase: Phase, ctx: &Context) -> Result<(), Failure> {
    call(|| match phase {
        Phase::Starting => service.starting(ctx),
        Phase::Start => service.start(ctx),
        Phase::Started => service.started(ctx),
        Phase::Stopping => service.stopping(ctx),
        Phase::Stop => service.stop(ctx),
        Phase::Stopped => service.stopped(ctx),
    })
}

fn run_hosted(
    shared: &Arc<Shared>,
    i: Id,
    mut service: Box<dyn HostedService>,
    mut ctx: Context,
    cond: &Condvar,
) -> Box<dyn HostedService> {
    let mut started = false;
    let mut ran_stop_hooks = Vec::new();
    loop {
        match shared.next_cmd(i, cond) {
            Cmd::Phase(phase, deadline) => {
                ctx.deadline = deadline;
                let result = hook(service.as_mut(), phase, &ctx);
                if phase == Phase::Start && result.is_ok() {
                    started = true;
                    // Its liveness window starts now (a critical hosted service).
                    ctx.heartbeat();
                }
                if matches!(phase, Phase::Stopping | Phase::Stop | Phase::Stopped) {
                    ran_stop_hooks.push(phase);
                }
                let _abandoned = shared.reply(i, phase, result);
                if phase == Phase::Stopped {
                    return service;
                }
            }
            Cmd::Finish => {
                // The host gave up on this service (a start or stop overran). If it started,
                // release what it holds: run the stop hooks it has not run yet, alone.
                if started {
                    stop_alone(shared, i, service.as_mut(), &mut ctx, &ran_stop_hooks, None);
                }
                return service;
            }
            Cmd::StopAlone(deadline) => {
                // The stop deadline passed before this service's turn: its remaining stop
                // hooks run now, beside the other late services' (host invariant 7).
                if started {
                    let d = Some(deadline);
                    stop_alone(shared, i, service.as_mut(), &mut ctx, &ran_stop_hooks, d);
                }
                return service;
            }
            Cmd::Exit => return service,
        }
    }
}

/// Runs the stop hooks `service` has not run yet, on its own thread. `deadline`: the host
/// still awaits this thread (a late stop), so a failure is recorded for the report; `None`:
/// the host gave up on it, so a failure is only logged.
fn stop_alone(
    shared: &Arc<Shared>,
    i: Id,
    service: &mut dyn HostedService,
    ctx: &mut Context,
    ran: &[Phase],
    deadline: Option<Deadline>,
) {
    ctx.deadline = deadline.unwrap_or(Deadline::NEVER);
    for phase in [Phase::Stopping, Phase::Stop, Phase::Stopped] {
        if ran.contains(&phase) {
            continue;
        }
        if let Err(f) = hook(service, phase, ctx) {
            crate::logging::error!(service = &*ctx.path;
                "service `{}` failed in its late {phase:?} hook: {f}",
                ctx.path
            );
            if deadline.is_some() {
                shared.record_failure(i, &f, ServiceState::Failed);
            }
        }
    }
}

fn run_background(
    shared: &Arc<Shared>,
    i: Id,
    mut service: Box<dyn BackgroundService>,
    mut ctx: Context,
    policy: &Policy,
    cond: &Condvar,
) -> Box<dyn BackgroundService> {
    match shared.next_cmd(i, cond) {
        Cmd::Phase(Phase::Start, deadline) => {
            ctx.deadline = deadline;
            let result = call(|| service.start(&ctx));
            let ok = result.is_ok();
            if ok {
                // Live from the moment it counts as started (the body beats again below).
                ctx.heartbeat();
            }
            let abandoned = shared.reply(i, Phase::Start, result);
            if !ok || abandoned {
                // Failed, or the host gave up on the start before it returned: never run
                // the body.
                return service;
            }
        }
        _ => return service,
    }
    ctx.deadline = Deadline::NEVER;
    let mut tracker = RestartTracker::new(seed(i));
    let temporary = shared.restart_type(i) == Some(RestartType::Temporary);
    loop {
        // Its liveness window starts with each (re)start of the body.
        ctx.heartbeat();
        let result = call(|| service.run(&ctx));
        let failure = match result {
            Ok(()) => None,
            // `ctx.sleep(d)?` after a stop: a clean exit.
            Err(Failure::Error(e)) if e.is::<Stopped>() && ctx.is_stopped() => None,
            Err(f) => Some(f),
        };
        let Some(failure) = failure else {
            if !ctx.is_stopped() {
                crate::logging::info!(service = &*ctx.path; "service `{}` completed", ctx.path);
                shared.body_ended(i, End::Completed);
            }
            return service;
        };
        if ctx.is_stopped() {
            // Failing on the way out: recorded for the report, no policy applies.
            crate::logging::error!(
                service = &*ctx.path;
                "service `{}` failed while stopping: {failure}",
                ctx.path
            );
            shared.record_failure(i, &failure, ServiceState::Failed);
            return service;
        }
        if temporary {
            crate::logging::error!(service = &*ctx.path;
                "service `{}` failed: {failure}; not restarted (a temporary service)",
                ctx.path
            );
            shared.body_ended(
                i,
                End::Failed {
                    failure,
                    escalate: false,
                },
            );
            return service;
        }
        // Given up by its policy (at once, or past its restart intensity): its group decides.
        let why = match policy {
            Policy::Ignore => {
                crate::logging::error!(service = &*ctx.path;
                    "service `{}` failed: {failure}; ignored (policy Ignore), the host keeps running",
                    ctx.path
                );
                shared.body_ended(
                    i,
                    End::Failed {
                        failure,
                        escalate: false,
                    },
                );
                return service;
            }
            Policy::Restart {
                backoff,
                max_restarts,
                within,
            } => match tracker.next(backoff, *max_restarts, *within) {
                Some(wait) => {
                    crate::logging::warn!(service = &*ctx.path;
                        "service `{}` failed: {failure}; restart {} of at most {max_restarts} within {within:?}, in {wait:?}",
                        ctx.path,
                        tracker.restarts(),
                    );
                    shared.record_failure(i, &failure, ServiceState::Restarting);
                    if ctx.token.sleep(wait).is_err() {
                        // Stopped during the backoff: no restart happened.
                        return service;
                    }
                    shared.record_restart(i);
                    continue;
                }
                None => format!("more than {max_restarts} restarts within {within:?}, "),
            },
            Policy::StopHost => String::new(),
        };
        crate::logging::error!(service = &*ctx.path;
            "service `{}` failed: {failure}; {why}{}",
            ctx.path,
            shared.escalation(i),
        );
        shared.body_ended(
            i,
            End::Failed {
                failure,
                escalate: true,
            },
        );
        return service;
    }
}

/// A per-thread seed for restart jitter.
fn seed(i: Id) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ ((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

// ---- the service thread's side of the control state ----

impl Shared {
    /// Blocks the service thread until the host sends it a command. A record gone from the
    /// tree (removed while this thread was detached) has nothing more to say: `Exit`.
    pub(crate) fn next_cmd(&self, i: Id, cond: &Condvar) -> Cmd {
        let mut ctl = self.ctl.lock();
        loop {
            let Some(r) = ctl.records.get_mut(&i) else {
                return Cmd::Exit;
            };
            if let Some(cmd) = r.cmd.take() {
                return cmd;
            }
            cond.wait(&mut ctl);
        }
    }

    /// Records a phase's result (invariant 3). A start that succeeds after the host gave up
    /// does not count as started (invariant 5).
    ///
    /// Returns whether the host had given up on this service (`Life::Abandoned` or
    /// `TimedOut`), read in the same critical section: it cannot change afterwards for a
    /// service that replied, as the host abandons only services it still awaits
    /// (`abandon_start`). This spares the background runner a second lock of `ctl` right
    /// after it woke the host, where it often contended with the host (the futex count is in
    /// RELIABILITY.md, "Speed").
    pub(crate) fn reply(&self, i: Id, phase: Phase, result: Result<(), Failure>) -> bool {
        let mut ctl = self.ctl.lock();
        let Some(r) = ctl.records.get_mut(&i) else {
            drop(ctl);
            drop(result);
            return true;
        };
        if phase == Phase::Start && result.is_ok() && r.life == Life::Pending {
            // Together, under the lock: from here a background body runs and may change the
            // state itself (fail, complete); the sequencer must not overwrite it later.
            r.life = Life::Started;
            r.set_state(ServiceState::Running);
        }
        // The values replaced may hold the last reference to a user's error: dropped after
        // the lock is released (invariant 1: a `Drop` is user code).
        let old_error = match &result {
            Err(f) => r.last_error.replace(f.clone()),
            Ok(()) => None,
        };
        let old_reply = r.reply.replace((phase, result));
        r.done_at = Some(Instant::now());
        // Given up on: abandoned, timed out, or already reported (`Done`: the stop that gave
        // up on it has ended) — never `Pending` or `Started`.
        let abandoned = !matches!(r.life, Life::Pending | Life::Started);
        self.cond.notify_all();
        drop(ctl);
        drop((old_error, old_reply));
        abandoned
    }

    /// The service thread is done; its last act (invariant 6). It hands back its service
    /// value, kept for a restart while the host runs (dropped here, with no lock held,
    /// otherwise: the value's `Drop` is user code).
    pub(crate) fn mark_exited(&self, i: Id, kind: Option<Kind>) {
        let mut ctl = self.ctl.lock();
        let keep = matches!(ctl.state, HostState::Starting | HostState::Running)
            && ctl.stop_reason.is_none();
        let unused = match ctl.records.get_mut(&i) {
            Some(r) => {
                r.exited = true;
                r.done_at = Some(Instant::now());
                if keep {
                    r.service = kind;
                    None
                } else {
                    kind
                }
            }
            None => kind,
        };
        let swept = self.sweep(&mut ctl);
        self.cond.notify_all();
        drop(ctl);
        drop(unused);
        drop(swept);
    }

    /// Its restart type.
    pub(crate) fn restart_type(&self, i: Id) -> Option<RestartType> {
        self.ctl.lock().records.get(&i).and_then(|r| r.restart)
    }

    /// A body failure: record it (the restart, if any, is counted when it happens).
    pub(crate) fn record_failure(&self, i: Id, failure: &Failure, state: ServiceState) {
        let old = {
            let mut ctl = self.ctl.lock();
            ctl.records.get_mut(&i).and_then(|r| {
                let old = r.last_error.replace(failure.clone());
                r.set_state(state);
                old
            })
        };
        // Invariant 1: the previous failure may hold the last reference to a user's error,
        // whose `Drop` is user code: dropped with no lock held.
        drop(old);
    }

    /// The backoff is over and the body runs again: count the restart. The state goes back to
    /// `Running` only from `Restarting`, so a stop that began meanwhile (state `Stopping`) is
    /// not overwritten.
    pub(crate) fn record_restart(&self, i: Id) {
        let mut ctl = self.ctl.lock();
        if let Some(r) = ctl.records.get_mut(&i) {
            r.restarts = r.restarts.saturating_add(1);
            if r.state == ServiceState::Restarting {
                r.set_state(ServiceState::Running);
            }
        }
    }
}
