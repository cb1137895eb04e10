//! The stop side of the sequencer: the host's `stop`, `join` and the sequence they run once,
//! and the stop of a scope (the whole tree, or a subtree a change or a supervisor stops)
//! with its three phases, its shared deadline and its report.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::host::control::{
    Activity, Await, Cmd, Ctl, Id, LATE_GRACE, Life, Phase, ROOT, Resolution, Shared, Wait, late,
};
use crate::host::plan::Scope;
use crate::report::{Outcome, ServiceReport, StopReport};
use crate::state::{HostState, ServiceState};
use crate::stop::{StopReason, StopSource, StopToken};
use crate::sync::MutexGuard;

/// What the one late grace grows by per late service woken at once (see `stop_scope`).
const LATE_PER_SERVICE: Duration = Duration::from_micros(50);

/// Who calls `await_or_run_sequence`: what its deadline bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Caller {
    /// `stop(deadline)`: waits for, or runs, the sequence under `deadline`.
    Stop,
    /// `join(deadline)`: the same, the sequence capped by the shutdown timeout from the
    /// request.
    Join,
    /// `th:host-stop` (invariant 8): waits without a bound for its turn, then runs the
    /// sequence under the self-stop's deadline, capped as `Join`.
    Stopper,
}

/// One stop of a scope in progress (`Shared::stop_scope`): what it stops, under which
/// deadline, in which order, and what it hands over to the host's stop when a stop request
/// cuts it short (a change's stop, `tree` invariant 2).
struct ScopeStop<'a> {
    scope: &'a Scope,
    deadline: Deadline,
    reason: &'a StopReason,
    wait: Wait,
    /// The services of the scope not stopped before (`Life::Done`), in start order.
    mine: Vec<Id>,
    /// The same, in stop order.
    reverse: Vec<Id>,
    /// The stop order in steps: one service each, or a reversed level each
    /// (`stop_concurrently`).
    steps: Vec<Vec<Id>>,
    /// The services left to the host's stop.
    handed: Vec<Id>,
}

impl<'a> ScopeStop<'a> {
    fn new(
        ctl: &Ctl,
        scope: &'a Scope,
        deadline: Deadline,
        reason: &'a StopReason,
        wait: Wait,
        concurrently: bool,
    ) -> ScopeStop<'a> {
        let mine: Vec<Id> = scope
            .order
            .iter()
            .copied()
            .filter(|i| ctl.records.get(i).is_some_and(|r| r.life != Life::Done))
            .collect();
        let reverse: Vec<Id> = mine.iter().rev().copied().collect();
        let steps: Vec<Vec<Id>> = if concurrently {
            scope
                .levels
                .iter()
                .rev()
                .map(|l| l.iter().copied().filter(|i| mine.contains(i)).collect())
                .collect()
        } else {
            reverse.iter().map(|&i| vec![i]).collect()
        };
        ScopeStop {
            scope,
            deadline,
            reason,
            wait,
            mine,
            reverse,
            steps,
            handed: Vec::new(),
        }
    }

    /// Cut short: every service whose thread still runs is the host's stop's to finish, also
    /// those this stop never reached.
    fn hand_over(&mut self, ctl: &mut Ctl) {
        self.handed = self
            .mine
            .iter()
            .copied()
            .filter(|&i| {
                let r = ctl.rec(i);
                r.thread.is_some() && !r.exited && r.life != Life::TimedOut
            })
            .collect();
        for &i in &self.handed {
            // The host's stop fixes its deadline anew, under its own.
            ctl.rec_mut(i).stop_deadline = None;
        }
    }
}

impl Shared {
    pub(crate) fn stop(self: &Arc<Self>, deadline: Deadline) -> StopReport {
        {
            let ctl = self.ctl.lock();
            if ctl.state == HostState::Created && ctl.activity == Activity::Idle {
                // Stop before start is a no-op: the host can still be started.
                return StopReport::empty();
            }
        }
        self.request_stop_by(StopReason::Requested, deadline);
        {
            // Requested before by someone else: this earlier deadline bounds the sequence a
            // `join` or `th:host-stop` runs too.
            let mut ctl = self.ctl.lock();
            ctl.stop_deadline = ctl.stop_deadline.min(deadline);
            self.cond.notify_all();
        }
        if crate::thread::works_for(self.id) {
            return self.stop_from_within(deadline);
        }
        self.await_or_run_sequence(deadline, Caller::Stop)
            .unwrap_or_else(|ctl_report| ctl_report)
    }

    /// `stop` on a thread that works for this host (invariant 8): it must not wait for the
    /// sequence, which may be waiting for this very thread. The stop is requested already;
    /// make sure a thread runs the sequence, and return the report if it is done, else an
    /// incomplete one.
    fn stop_from_within(self: &Arc<Self>, deadline: Deadline) -> StopReport {
        let spawn = {
            let mut ctl = self.ctl.lock();
            if let (true, Some(report)) = (ctl.state.is_terminal(), &ctl.report) {
                return report.clone();
            }
            let spawn = ctl.activity != Activity::Stopping && !ctl.stopper_spawned;
            ctl.stopper_spawned |= spawn;
            spawn
        };
        if spawn {
            let shared = Arc::clone(self);
            // Runs the sequence once it may (a start or change in progress ends promptly
            // once a stop is requested), or waits for whoever got there first.
            let spawned = crate::thread::spawn_named("th:host-stop", None, move || {
                let _report = shared.await_or_run_sequence(deadline, Caller::Stopper);
            });
            if let Err(source) = spawned {
                self.ctl.lock().stopper_spawned = false;
                crate::logging::error!(
                    "could not spawn `th:host-stop` to stop the host: {source}; \
                     the stop runs in the next `stop`, `join`, `run` or drop of the host"
                );
            }
        }
        let reason = self.ctl.lock().stop_reason.clone();
        StopReport::in_progress(reason)
    }

    pub(crate) fn join(self: &Arc<Self>, deadline: Deadline) -> Result<StopReport, Error> {
        if crate::thread::works_for(self.id) {
            // Invariant 8: the stop sequence may be waiting for this thread.
            let ctl = self.ctl.lock();
            if let (true, Some(report)) = (ctl.state.is_terminal(), &ctl.report) {
                return Ok(report.clone());
            }
            return Err(Error::InvalidState {
                operation: "join, from a thread of its own,",
                state: ctl.state,
            });
        }
        match self.await_or_run_sequence(deadline, Caller::Join) {
            Ok(report) => Ok(report),
            Err(_) => Err(Error::JoinTimeout {
                state: self.state(),
            }),
        }
    }

    /// Returns the final report: stored, or made by this caller running the stop sequence, or
    /// (`Err`) an incomplete one at `deadline` (see [`Caller`] for what the deadline bounds).
    /// A host not asked to stop is waited on.
    pub(crate) fn await_or_run_sequence(
        self: &Arc<Self>,
        deadline: Deadline,
        caller: Caller,
    ) -> Result<StopReport, StopReport> {
        let mut ctl = self.ctl.lock();
        loop {
            if let (true, Some(report)) = (ctl.state.is_terminal(), &ctl.report) {
                return Ok(report.clone());
            }
            if ctl.state == HostState::Created
                && ctl.stop_reason.is_some()
                && ctl.activity == Activity::Idle
            {
                // Asked to stop before it ever started: nothing to stop (as in `start`).
                self.stop_before_start(&mut ctl);
                let report = ctl.report.clone().unwrap_or_default();
                drop(ctl);
                self.fire_stopped_early(deadline);
                return Ok(report);
            }
            let may_run = ctl.state == HostState::Stopping
                && ctl.activity == Activity::Idle
                && ctl.report.is_none();
            if may_run {
                ctl.activity = Activity::Stopping;
                let d = match caller {
                    Caller::Stop => deadline,
                    Caller::Join => deadline.min(ctl.stop_deadline),
                    // Nobody waits on this thread; its caller asked for "by `deadline`". One
                    // that has passed by now (the caller asked for at once, or this thread ran
                    // late) counts from now: the services, the caller's among them, still get
                    // their one grace from the moment the sequence can reach them.
                    Caller::Stopper => {
                        let d = deadline.min(ctl.stop_deadline);
                        if d.is_expired() {
                            Deadline::after(Duration::ZERO)
                        } else {
                            d
                        }
                    }
                };
                drop(ctl);
                // Invariant 8: token and lifetime callbacks fired by the sequence run here.
                let _working = crate::thread::work_for(self.id);
                let report = self.stop_sequence(d);
                return Ok(self.finish_sequence(report, HostState::Stopped, d));
            }
            // Invariant 4: someone else is starting, changing or stopping; wait for them.
            // The stopper waits without a bound: it must not leave while a start or change in
            // progress holds the sequence back (they end promptly, as a stop was requested).
            // A change in progress ends at once, once a stop is requested (`tree` invariant
            // 2); the sequence that follows, its deadline passed, ends by the grace
            // (invariant 7).
            let mut wait = match caller {
                Caller::Stopper => Deadline::NEVER,
                Caller::Stop | Caller::Join => late(deadline),
            };
            if ctl.activity == Activity::Changing && wait.is_expired() {
                // A change about to end (see below): wait for it, without spinning.
                wait = Deadline::NEVER;
            }
            let woken = self.wait_until(&mut ctl, wait);
            // The report, not the state: it is stored after the `stopped` callbacks. A change
            // still holding the sequencer at the deadline is about to give it up (`tree`
            // invariant 2): it is waited for, so that the report is complete rather than lost
            // to a thread's wake-up latency.
            if !woken && ctl.report.is_none() && ctl.activity != Activity::Changing {
                let mut report = StopReport::empty();
                report.complete = false;
                report.reason = ctl.stop_reason.clone();
                return Err(report);
            }
        }
    }

    /// Enters `end` (Stopped or Failed), fires `stopped`, then stores the report and wakes
    /// the waiters: no `stop`, `join` or `run` returns before the `stopped` callbacks have
    /// returned (invariant 9), unless they overrun the stop's deadline (+ its grace): the
    /// report is then stored without them. Waiters wait for the report, not the state.
    pub(crate) fn finish_sequence(
        self: &Arc<Self>,
        mut report: StopReport,
        end: HostState,
        deadline: Deadline,
    ) -> StopReport {
        let kept = {
            let mut ctl = self.ctl.lock();
            report.failure = ctl.host_failure.clone();
            self.set_state(&mut ctl, end);
            // Service values kept for a restart (a thread that ended while a restart was
            // still possible): none will run again. Dropped here, with no lock held (a `Drop`
            // is user code), before anyone has the report.
            ctl.records
                .values_mut()
                .filter_map(|r| r.service.take())
                .collect::<Vec<_>>()
        };
        drop(kept);
        crate::logging::info!("Application stopped: {report}");
        // A reload hook is not stopped by a stop: one still running is named (reload.rs,
        // invariant 6).
        self.warn_reload_hooks_running();
        let watched = self.stopped_event.is_watched();
        let done = self.fire_lifetime(watched, |shared| {
            shared.stopped_event.stop();
        });
        if !done.wait_until(late(deadline)) {
            crate::logging::warn!("the `stopped` callbacks did not return by the stop deadline");
        }
        let mut ctl = self.ctl.lock();
        ctl.report = Some(report.clone());
        ctl.activity = Activity::Idle;
        self.cond.notify_all();
        report
    }

    /// A host stopped before it started: fires `stopping` and `stopped`, their callbacks
    /// bounded by `deadline`.
    pub(crate) fn fire_stopped_early(self: &Arc<Self>, deadline: Deadline) {
        let watched = self.stopping_event.is_watched() || self.stopped_event.is_watched();
        let done = self.fire_lifetime(watched, |shared| {
            shared.stopping_event.stop();
            shared.stopped_event.stop();
        });
        let _done = done.wait_until(deadline);
    }

    /// The host's stop sequence: the `stopping` event (its callbacks returned, invariant 9),
    /// then the stop of the whole tree.
    pub(crate) fn stop_sequence(self: &Arc<Self>, deadline: Deadline) -> StopReport {
        let (reason, scope) = {
            let mut ctl = self.ctl.lock();
            let reason = ctl.stop_reason.clone().unwrap_or(StopReason::Requested);
            let reached_running = ctl.reached_running;
            // The `stopping` event fires before any `stopping` hook. `request_stop` fires it
            // too, but after releasing `ctl`, so a sequence run by another thread (`join`)
            // could otherwise overtake it. Idempotent; its callbacks are user code
            // (invariant 1).
            MutexGuard::unlocked(&mut ctl, || {
                self.fire_stopping(reached_running, reason.clone());
            });
            // Invariant 9: whoever fired `stopping` (this thread, or the one that requested
            // the stop) has run its callbacks before the first service is stopped; they
            // share the stop deadline with the services.
            while !ctl.stopping_done {
                if !self.wait_until(&mut ctl, deadline) {
                    crate::logging::warn!(
                        "the `stopping` callbacks did not return by the stop deadline; \
                         stopping the services anyway"
                    );
                    break;
                }
            }
            (reason, Scope::subtree(&ctl, ROOT))
        };
        self.stop_scope(&scope, deadline, &reason, Wait::Stop)
    }

    /// Stops the services of `scope`: the stopping, stop, stopped phases over the started
    /// ones in reverse start order (or by reversed level), then the threads that never
    /// started; joins what exited, detaches and reports what did not. Every service of the
    /// scope ends `Done`; services already `Done` are not stopped again (the report repeats
    /// their last outcome).
    ///
    /// A change's stop (`Wait::Change`) is cut short by a stop request of the host (`tree`,
    /// invariant 2): the services it has not finished with are left as they are (a hook
    /// running, a token fired, a thread to await) for the host's stop, which takes them over
    /// with its own deadline; the report then covers the others and is incomplete.
    pub(crate) fn stop_scope(
        self: &Arc<Self>,
        scope: &Scope,
        deadline: Deadline,
        reason: &StopReason,
        wait: Wait,
    ) -> StopReport {
        let began = Instant::now();
        let mut ctl = self.ctl.lock();
        let mut run = ScopeStop::new(
            &ctl,
            scope,
            deadline,
            reason,
            wait,
            self.options.stop_concurrently,
        );
        self.enter_stopping(&mut ctl, &run);
        self.await_in_flight(&mut ctl, &mut run);
        self.ordered_phases(&mut ctl, &mut run);
        if run.handed.is_empty() {
            self.stop_the_rest(&mut ctl, &mut run);
        }
        if !run.handed.is_empty() {
            run.hand_over(&mut ctl);
        }
        self.await_callbacks(&mut ctl, &mut run);
        let (mut report, joins, replaced) = self.scope_report(&mut ctl, &run);
        drop(ctl);
        // A replaced outcome may hold the last reference to a user's error (host 1).
        drop(replaced);
        for handle in joins.into_iter().flatten() {
            // The thread set `exited` as its last act; this join only waits for it to return.
            let _ = handle.join();
        }
        report.elapsed = began.elapsed();
        report
    }

    /// The groups of the scope enter `Stopping`.
    fn enter_stopping(&self, ctl: &mut Ctl, run: &ScopeStop<'_>) {
        for &g in &run.scope.groups {
            // A failed group keeps saying so. (A supervisor's own scope never holds its
            // group: only the groups under the children it restarts.)
            if !matches!(
                ctl.group(g).state,
                ServiceState::Failed | ServiceState::Stopped
            ) {
                ctl.group_mut(g).set_state(ServiceState::Stopping);
            }
        }
    }

    /// Awaits the hooks already running: services a change left to this stop, and start
    /// hooks still running when a stop request ended the start.
    fn await_in_flight(&self, ctl: &mut MutexGuard<'_, Ctl>, run: &mut ScopeStop<'_>) {
        // Services a change left to this stop (see above) and start hooks still running when
        // a stop request ended the start: their hook's reply is awaited first, within the
        // stop deadline. A start that succeeded is stopped in order with the others; one
        // that did not just exits (invariant 5). A stop phase that returned is not run again.
        // Their tokens have fired, so a hook that watches them returns at once.
        let mut pending = Vec::new();
        for &i in &run.mine {
            let r = ctl.rec_mut(i);
            match r.awaiting {
                Some(p @ (Phase::Starting | Phase::Start)) if r.life == Life::Pending => {
                    pending.push((i, late(r.stop_deadline(run.deadline)), Await::Reply(p)));
                }
                Some(p @ (Phase::Stopping | Phase::Stop | Phase::Stopped))
                    if r.life == Life::Started =>
                {
                    pending.push((i, late(r.stop_deadline(run.deadline)), Await::Reply(p)));
                }
                _ => {}
            }
        }
        for (i, resolution) in self.await_all(ctl, &pending, run.wait) {
            let r = ctl.rec_mut(i);
            let stopping = matches!(
                r.awaiting.or(r.reply.as_ref().map(|(p, _)| *p)),
                Some(Phase::Stopping | Phase::Stop | Phase::Stopped)
            );
            match resolution {
                Resolution::Interrupted if run.wait == Wait::Change => run.handed.push(i),
                Resolution::Done(result) if stopping => {
                    r.stopped_through = r.reply.as_ref().map(|(p, _)| *p);
                    self.settle(ctl, vec![(i, Resolution::Done(result))]);
                }
                Resolution::Done(Ok(())) if r.life == Life::Started => {
                    r.set_state(ServiceState::Running);
                }
                Resolution::Done(result) => {
                    r.set_state(if result.is_err() {
                        ServiceState::Failed
                    } else {
                        ServiceState::Skipped
                    });
                    self.send(ctl, i, Cmd::Exit);
                }
                // Given up on (`TimedOut`) at its deadline. (A stop's wait is interrupted only
                // for a change, above.)
                Resolution::TimedOut | Resolution::Interrupted => self.give_up(ctl, i),
            }
        }
    }

    /// The three stop phases over the live services, in reverse order (or by reversed
    /// level), while the deadline holds.
    fn ordered_phases(&self, ctl: &mut MutexGuard<'_, Ctl>, run: &mut ScopeStop<'_>) {
        // In order while the deadline holds; once it has passed, what is left is stopped all
        // at once below, under one shared grace (invariant 7).
        'ordered: for phase in [Phase::Stopping, Phase::Stop, Phase::Stopped] {
            for step in &run.steps {
                if run.deadline.is_expired() || !run.handed.is_empty() {
                    break 'ordered;
                }
                let mut targets = Vec::new();
                let mut fire = Vec::new();
                for &i in step {
                    let r = ctl.rec_mut(i);
                    if !r.is_live() || r.stopped_through.is_some_and(|p| p as u8 >= phase as u8) {
                        continue;
                    }
                    if !r.hosted && (phase != Phase::Stop || r.exited) {
                        continue;
                    }
                    let d = late(r.stop_deadline(run.deadline));
                    r.enter_stopping();
                    if phase == Phase::Stop {
                        if !r.hosted {
                            // What its body reads from `Context::deadline`, before the token
                            // fires (so a body woken by the token reads it).
                            r.body_deadline.set(d);
                        }
                        fire.push(i);
                    }
                    if r.hosted {
                        targets.push((i, d, Await::Reply(phase)));
                    } else {
                        targets.push((i, d, Await::Exit));
                    }
                }
                if targets.is_empty() {
                    continue;
                }
                self.fire_tokens(ctl, &fire, run.reason);
                // Commands go out after the tokens fired: a `stop` hook always sees its
                // token stopped.
                for &(i, d, what) in &targets {
                    if let Await::Reply(phase) = what {
                        self.send(ctl, i, Cmd::Phase(phase, d));
                    }
                }
                let results = self.await_all(ctl, &targets, run.wait);
                if targets.len() > 1 {
                    // A phase is a barrier across its level (`stop_concurrently`): what a
                    // service waited there for slower ones moves its own deadline (never past
                    // the sequence's), so a prompt service with a short `stop_timeout` is not
                    // reported timed out because its level had a slow one.
                    let end = Instant::now();
                    for (i, resolution) in &results {
                        let r = ctl.rec_mut(*i);
                        if let (Resolution::Done(_), Some(at), Some(own)) =
                            (resolution, r.done_at, r.stop_deadline)
                        {
                            if let Some(own_at) = own.instant() {
                                let waited = end.saturating_duration_since(at);
                                let moved = own_at
                                    .checked_add(waited)
                                    .map_or(run.deadline, Deadline::at);
                                r.stop_deadline = Some(moved.min(run.deadline));
                            }
                        }
                    }
                }
                let mut settled = Vec::with_capacity(results.len());
                for (i, resolution) in results {
                    match resolution {
                        Resolution::Interrupted if run.wait == Wait::Change => run.handed.push(i),
                        Resolution::Done(_) => {
                            let r = ctl.rec_mut(i);
                            if r.hosted {
                                r.stopped_through = Some(phase);
                            }
                            settled.push((i, resolution));
                        }
                        _ => settled.push((i, resolution)),
                    }
                }
                self.settle(ctl, settled);
            }
        }
    }

    /// Everything that still has a thread, all at once, under the one late grace.
    fn stop_the_rest(&self, ctl: &mut MutexGuard<'_, Ctl>, run: &mut ScopeStop<'_>) {
        // Everything else that has a thread: services left by a deadline that passed
        // (they run their remaining stop hooks on their own threads, all at once),
        // started-and-done, skipped, abandoned, failed starts. Their tokens fire so that
        // an abandoned start can give up; then await exits.
        let mut fire = Vec::new();
        let mut targets = Vec::new();
        let mut alone = Vec::new();
        // Which are late: their own stop deadline (before the grace) has passed.
        let mut late_ones = 0u32;
        let mut late_flags = Vec::new();
        for &i in &run.reverse {
            let r = ctl.rec_mut(i);
            if r.thread.is_some() && !r.exited && r.life != Life::TimedOut {
                let own = r.stop_deadline(run.deadline);
                let is_late = own.is_expired();
                if is_late {
                    late_ones = late_ones.saturating_add(1);
                }
                late_flags.push(is_late);
                let d = late(own);
                if !r.hosted {
                    // As in the ordered phases: set before the token fires.
                    r.body_deadline.set(d);
                }
                fire.push(i);
                if r.is_live() {
                    r.enter_stopping();
                    if r.hosted && r.stopped_through != Some(Phase::Stopped) {
                        alone.push((i, d));
                    }
                }
                targets.push((i, d, Await::Exit));
            }
        }
        self.fire_tokens(ctl, &fire, run.reason);
        // A late service is judged from when its token fired, not from when the sequence
        // began firing: with hundreds of late services the firing itself (tens of µs
        // each) outlasts the grace, and the last ones would be given up on before they
        // could answer. So `stop` returns by its deadline + the firing + one grace.
        // Each late thread must also be scheduled to answer: the grace grows by a
        // little per late service (a raw thread woken and joined costs about 50 µs on
        // a loaded 2-core machine), so that a thousand prompt services woken at once are
        // not reported timed out while they wait for a core.
        let allowance = LATE_PER_SERVICE.saturating_mul(late_ones);
        let floor = Deadline::at(Instant::now() + LATE_GRACE + allowance);
        for ((_, d, _), &is_late) in targets.iter_mut().zip(&late_flags) {
            if is_late {
                *d = (*d).max(floor);
            }
        }
        // After the tokens fired, as above. A hosted service that already ran its
        // `stopped` hook has returned and never reads this. From here its thread runs its
        // remaining hooks alone: no phase command is for it any more (a later stop taking
        // it over only awaits its exit).
        for (i, d) in alone {
            ctl.rec_mut(i).stopped_through = Some(Phase::Stopped);
            self.send(ctl, i, Cmd::StopAlone(d.max(floor)));
        }
        let results = self.await_all(ctl, &targets, run.wait);
        let mut settled = Vec::with_capacity(results.len());
        for (i, resolution) in results {
            match resolution {
                Resolution::Interrupted if run.wait == Wait::Change => run.handed.push(i),
                _ => settled.push((i, resolution)),
            }
        }
        self.settle(ctl, settled);
    }

    /// Awaits the tokens' `on_stop` callbacks of the services stopped.
    fn await_callbacks(&self, ctl: &mut MutexGuard<'_, Ctl>, run: &mut ScopeStop<'_>) {
        // The tokens' `on_stop` callbacks (`fire_tokens`) are part of each service's stop:
        // awaited within its stop deadline (+ the grace once it passed), with `ctl` released;
        // a service whose callbacks still run then is reported timed out.
        let callbacks: Vec<(Id, StopToken, Deadline)> = run
            .mine
            .iter()
            .filter(|i| !run.handed.contains(i))
            .filter_map(|&i| {
                let r = ctl.rec_mut(i);
                let done = r.callbacks.take()?;
                let d = late(r.stop_deadline(run.deadline));
                (r.life != Life::TimedOut).then_some((i, done, d))
            })
            .collect();
        if !callbacks.is_empty() {
            let outcomes: Vec<(Id, StopToken, Option<bool>)> = MutexGuard::unlocked(ctl, || {
                callbacks
                    .into_iter()
                    .map(|(i, done, d)| {
                        let returned = self.wait_callbacks(&done, d, run.wait);
                        (i, done, returned)
                    })
                    .collect()
            });
            for (i, done, returned) in outcomes {
                match returned {
                    Some(true) => {}
                    None => {
                        // The host's stop takes them over.
                        ctl.rec_mut(i).callbacks = Some(done);
                        run.handed.push(i);
                    }
                    Some(false) => {
                        let r = ctl.rec_mut(i);
                        r.life = Life::TimedOut;
                        r.set_state(ServiceState::TimedOut);
                        let path = Arc::clone(&r.path);
                        MutexGuard::unlocked(ctl, || {
                            crate::logging::warn!(service = &*path;
                                "the on_stop callbacks of service `{path}` did not return by the deadline; \
                                 they are left running"
                            );
                        });
                    }
                }
            }
        }
    }

    /// The report of the scope; every service it stopped ends `Done`. Returns the threads
    /// to join and the replaced outcomes to drop, once `ctl` is released.
    #[allow(clippy::type_complexity)]
    fn scope_report(
        &self,
        ctl: &mut Ctl,
        run: &ScopeStop<'_>,
    ) -> (
        StopReport,
        Vec<Option<JoinHandle<()>>>,
        Vec<Option<(Outcome, Duration)>>,
    ) {
        // Invariant 6: join exited threads (they only have to return), detach the rest.
        let mut joins = Vec::new();
        let mut replaced = Vec::new();
        let mut report = StopReport {
            reason: Some(run.reason.clone()),
            complete: run.handed.is_empty(),
            ..StopReport::default()
        };
        for &i in run.scope.order.iter().rev() {
            if run.handed.contains(&i) {
                continue;
            }
            let Some(r) = ctl.records.get_mut(&i) else {
                continue;
            };
            if !run.mine.contains(&i) {
                // Stopped earlier (a partial stop, a restart the host's stop overtook): its
                // last outcome, so that the report names every service of the scope.
                if let Some((outcome, duration)) = r.last.clone() {
                    report.services.push(ServiceReport {
                        name: Arc::clone(&r.path),
                        outcome,
                        duration,
                    });
                }
                continue;
            }
            if r.exited {
                joins.push(r.thread.take());
            } else if r.thread.is_some() {
                // Detached: dropping the handle lets the thread run on; it is reported.
                drop(r.thread.take());
            }
            let outcome = r.outcome();
            if r.life == Life::Started && !matches!(r.state, ServiceState::Failed) {
                r.set_state(ServiceState::Stopped);
            }
            let duration = r
                .stop_began
                .map_or(Duration::ZERO, |t| r.stop_duration.unwrap_or(t.elapsed()));
            r.life = Life::Done;
            replaced.push(r.last.replace((outcome.clone(), duration)));
            report.services.push(ServiceReport {
                name: Arc::clone(&r.path),
                outcome,
                duration,
            });
        }
        if run.handed.is_empty() {
            for &g in run.scope.groups.iter().rev() {
                if ctl.group(g).state == ServiceState::Stopping {
                    ctl.group_mut(g).set_state(ServiceState::Stopped);
                }
            }
        }
        (report, joins, replaced)
    }

    /// Waits (with `ctl` released) for a service's token callbacks to return, until `d`:
    /// `Some(true)` if they did, `Some(false)` if not. A change's wait is cut short by a stop
    /// request of the host (`None`: the host's stop takes them over, `tree` invariant 2).
    fn wait_callbacks(&self, done: &StopToken, d: Deadline, wait: Wait) -> Option<bool> {
        if wait != Wait::Change {
            return Some(done.wait_until(d));
        }
        // Woken by whichever comes first: the callbacks' end or the host's stop request.
        let wake = StopSource::new();
        let (w1, w2) = (wake.clone(), wake.clone());
        let _done = done.on_stop(move |_| {
            w1.stop();
        });
        let _stopping = self.stop_requested.token().on_stop(move |_| {
            w2.stop();
        });
        let _woken = wake.token().wait_until(d);
        if done.is_stopped() {
            Some(true)
        } else if self.ctl.lock().stop_reason.is_some() {
            None
        } else {
            Some(false)
        }
    }

    /// Records how each awaited stop step ended: its duration, a failed hook, or a service
    /// given up on.
    fn settle(&self, ctl: &mut MutexGuard<'_, Ctl>, results: Vec<(Id, Resolution)>) {
        for (i, resolution) in results {
            match resolution {
                Resolution::Done(result) => {
                    // The last step to finish sets the final figure.
                    let r = ctl.rec_mut(i);
                    r.stop_duration = r.stop_began.map(|t| t.elapsed());
                    if let Err(failure) = result {
                        let path = Arc::clone(&r.path);
                        let old = r.last_error.replace(failure.clone());
                        r.set_state(ServiceState::Failed);
                        // Invariant 1: the logger and the error's `Display` and `Drop` are
                        // user code.
                        MutexGuard::unlocked(ctl, || {
                            crate::logging::error!(
                                service = &*path;
                                "service `{path}` failed to stop: {failure}"
                            );
                            drop(old);
                        });
                    }
                }
                Resolution::TimedOut | Resolution::Interrupted => self.give_up(ctl, i),
            }
        }
    }

    /// A service missed its deadline: fire its token, tell it to finish alone, detach it.
    fn give_up(&self, ctl: &mut MutexGuard<'_, Ctl>, i: Id) {
        let path = {
            let r = ctl.rec_mut(i);
            r.life = Life::TimedOut;
            r.set_state(ServiceState::TimedOut);
            r.stop_duration = r.stop_began.map(|t| t.elapsed());
            Arc::clone(&r.path)
        };
        self.send(ctl, i, Cmd::Finish);
        // Invariant 1: the logger is user code.
        MutexGuard::unlocked(ctl, || {
            crate::logging::warn!(
                service = &*path;
                "service `{path}` did not stop by the deadline; its thread is left running"
            );
        });
        self.fire_tokens(ctl, &[i], &StopReason::Deadline);
    }
}
