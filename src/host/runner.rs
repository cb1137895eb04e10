//! What runs on each service thread: the hosted-service command loop and the background body
//! loop with its failure policy. Every call into user code is wrapped in `catch_unwind`.

use crate::deadline::Deadline;
use crate::error::ServiceResult;
use crate::failure::Failure;
use crate::host::{Cmd, Phase, ServiceState, Shared};
use crate::service::{BackgroundService, Context, HostedService, Kind};
use crate::stop::Stopped;
use crate::supervise::{Policy, RestartTracker};
use std::sync::Arc;

/// The top frame of a service thread.
pub(crate) fn service_main(
    shared: &Arc<Shared>,
    i: usize,
    kind: Kind,
    ctx: Context,
    policy: &Policy,
) {
    // Whatever happens below (it catches every panic of user code), the host must learn that
    // this thread is done, or a stop would wait for it until its deadline.
    let _exited = scopeguard::guard((), |()| shared.mark_exited(i));
    match kind {
        Kind::Hosted(service) => run_hosted(shared, i, service, ctx),
        Kind::Background(service) => run_background(shared, i, service, ctx, policy),
    }
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
    i: usize,
    mut service: Box<dyn HostedService>,
    mut ctx: Context,
) {
    let mut started = false;
    let mut ran_stop_hooks = Vec::new();
    loop {
        match shared.next_cmd(i) {
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
                    return;
                }
            }
            Cmd::Finish => {
                // The host gave up on this service (a start or stop overran). If it started,
                // release what it holds: run the stop hooks it has not run yet, alone.
                if started {
                    stop_alone(shared, i, service.as_mut(), &mut ctx, &ran_stop_hooks, None);
                }
                return;
            }
            Cmd::StopAlone(deadline) => {
                // The stop deadline passed before this service's turn: its remaining stop
                // hooks run now, beside the other late services' (host invariant 7).
                if started {
                    let d = Some(deadline);
                    stop_alone(shared, i, service.as_mut(), &mut ctx, &ran_stop_hooks, d);
                }
                return;
            }
            Cmd::Exit => return,
        }
    }
}

/// Runs the stop hooks `service` has not run yet, on its own thread. `deadline`: the host
/// still awaits this thread (a late stop), so a failure is recorded for the report; `None`:
/// the host gave up on it, so a failure is only logged.
fn stop_alone(
    shared: &Arc<Shared>,
    i: usize,
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
            log::error!(
                "service `{}` failed in its late {phase:?} hook: {f}",
                ctx.name
            );
            if deadline.is_some() {
                shared.record_failure(i, &f, ServiceState::Failed);
            }
        }
    }
}

fn run_background(
    shared: &Arc<Shared>,
    i: usize,
    mut service: Box<dyn BackgroundService>,
    mut ctx: Context,
    policy: &Policy,
) {
    match shared.next_cmd(i) {
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
                return;
            }
        }
        _ => return,
    }
    ctx.deadline = Deadline::NEVER;
    let mut tracker = RestartTracker::new(seed(i));
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
                log::info!("service `{}` completed", ctx.name);
                shared.set_service_state(i, ServiceState::Completed);
            }
            return;
        };
        if ctx.is_stopped() {
            // Failing on the way out: recorded for the report, no policy applies.
            log::error!("service `{}` failed while stopping: {failure}", ctx.name);
            shared.record_failure(i, &failure, ServiceState::Failed);
            return;
        }
        match policy {
            Policy::Ignore => {
                log::error!(
                    "service `{}` failed: {failure}; ignored (policy Ignore), the host keeps running",
                    ctx.name
                );
                shared.record_failure(i, &failure, ServiceState::Failed);
                return;
            }
            Policy::Restart {
                backoff,
                max_restarts,
                within,
            } => match tracker.next(backoff, *max_restarts, *within) {
                Some(wait) => {
                    log::warn!(
                        "service `{}` failed: {failure}; restart {} of at most {max_restarts} within {within:?}, in {wait:?}",
                        ctx.name,
                        tracker.restarts(),
                    );
                    shared.record_failure(i, &failure, ServiceState::Restarting);
                    if ctx.token.sleep(wait).is_err() {
                        // Stopped during the backoff: no restart happened.
                        return;
                    }
                    shared.record_restart(i);
                }
                None => {
                    log::error!(
                        "service `{}` failed: {failure}; more than {max_restarts} restarts within {within:?}, stopping the host",
                        ctx.name
                    );
                    shared.fail_host(i, failure);
                    return;
                }
            },
            Policy::StopHost => {
                log::error!(
                    "service `{}` failed: {failure}; stopping the host",
                    ctx.name
                );
                shared.fail_host(i, failure);
                return;
            }
        }
    }
}

/// A per-thread seed for restart jitter.
fn seed(i: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ ((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
