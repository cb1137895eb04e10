//! `threadhost_periodic`: a periodic service from C, a tick callback run at a fixed rate on
//! the service's own thread, and an optional stop hook run after the last tick (see the Rust
//! `Periodic` and `PeriodicService`).

use std::ffi::{c_char, c_void};
use std::time::{Duration, Instant};

use super::context::{CContext, threadhost_context};
use super::handle::{self, write_out};
use super::service::{DestroyFn, RunFn, UserData, threadhost_service};
use super::status::{self, Status};
use threadhost::{
    Context, FirstTick, MissedTick, Periodic, PeriodicService, PeriodicStats, ServiceResult, Tick,
    TickFailure,
};

/// Opaque: a periodic schedule being configured, owned by C until
/// `threadhost_periodic_build` consumes it.
pub struct threadhost_periodic {
    _private: [u8; 0],
}

/// Opaque: what a tick callback is told, borrowed for the callback's duration.
pub struct threadhost_tick {
    _private: [u8; 0],
}

/// Opaque: the counters of one periodic service, owned by C.
pub struct threadhost_periodic_stats {
    _private: [u8; 0],
}

castable!(threadhost_periodic => CPeriodic, box);
castable!(threadhost_tick => CTick<'static>, ref);
castable!(threadhost_periodic_stats => PeriodicStats, box);

/// `threadhost_status (*)(void *user, const threadhost_tick *tick)`: a tick.
pub type TickFn = unsafe extern "C" fn(user: *mut c_void, tick: *const threadhost_tick) -> Status;

/// `threadhost_missed_tick` values.
const MISSED_SKIP: i32 = 0;
const MISSED_BURST: i32 = 1;
const MISSED_DELAY: i32 = 2;

/// `threadhost_first_tick` values.
const FIRST_IMMEDIATELY: i32 = 0;
const FIRST_AFTER_PERIOD: i32 = 1;
const FIRST_AFTER_DELAY: i32 = 2;

/// A schedule being configured from C, and the stop hook it will build with (given the same
/// `user` as the tick, which only `threadhost_periodic_build` brings).
pub(crate) struct CPeriodic {
    periodic: Periodic,
    on_stop: Option<RunFn>,
}

/// A tick and the C context of its service, lent to the tick callback.
pub(crate) struct CTick<'a> {
    tick: &'a Tick<'a>,
    ctx: CContext<'a>,
}

/// A C tick callback, its optional stop hook, and their user data.
struct CTickFn {
    tick: TickFn,
    on_stop: Option<RunFn>,
    user: UserData,
}

impl PeriodicService for CTickFn {
    fn tick(&mut self, tick: &Tick<'_>) -> ServiceResult {
        self.call(tick)
    }

    fn stop(&mut self, ctx: &Context) -> ServiceResult {
        let Some(on_stop) = self.on_stop else {
            return Ok(());
        };
        let user = self.user.as_ptr();
        CContext::call(ctx, |c| {
            // SAFETY: `on_stop` is the caller's hook; `user` is its data, usable on this
            // thread (header contract); `c` is valid during the call.
            unsafe { on_stop(user, c) }
        })
    }
}

impl CTickFn {
    fn call(&self, tick: &Tick<'_>) -> ServiceResult {
        let ctick = CTick {
            tick,
            ctx: CContext::new(tick.ctx()),
        };
        // A plain pointer cast erasing the lifetime (`Castable::Rust` says `'static`): the
        // pointer is only used during the callback, while `ctick` lives on this frame.
        let ptr = (&raw const ctick).cast::<threadhost_tick>();
        // SAFETY: `tick` is the caller's callback; `user` is its data, usable on this thread
        // (header contract); `ptr` is valid during the call.
        let status = unsafe { (self.tick)(self.user.as_ptr(), ptr) };
        ctick.ctx.finish(status)
    }
}

/// A new schedule: one tick every `period_ms`, the first at once, missed slots skipped,
/// failing ticks logged and counted. A zero period is reported by `threadhost_periodic_build`.
///
/// # Safety
///
/// `periodic_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_new(
    period_ms: u64,
    periodic_out: *mut *mut threadhost_periodic,
) -> Status {
    ffi_boundary! {
        try_out!(periodic_out);
        let periodic = CPeriodic {
            periodic: Periodic::every(Duration::from_millis(period_ms)),
            on_stop: None,
        };
        let periodic = handle::to_box_ptr::<threadhost_periodic>(periodic);
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(periodic_out, periodic) };
        Status::OK
    }
}

/// Applies a by-value `Periodic` setter.
fn update(periodic: &mut CPeriodic, f: impl FnOnce(Periodic) -> Periodic) {
    periodic.periodic = f(periodic.periodic.clone());
}

/// What to do with slots that passed (`THREADHOST_MISSED_*`); `burst_max` is the most
/// catch-up ticks in a row for `THREADHOST_MISSED_BURST` (at least 1, checked at build).
///
/// # Safety
///
/// `periodic` is NULL or a live schedule, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_missed(
    periodic: *mut threadhost_periodic,
    missed: i32,
    burst_max: u32,
) -> Status {
    ffi_boundary! {
        let periodic = try_mut!(periodic);
        let policy = match missed {
            MISSED_SKIP => MissedTick::Skip,
            MISSED_BURST => MissedTick::Burst { max: burst_max },
            MISSED_DELAY => MissedTick::Delay,
            _ => {
                return status::fail(
                    Status::INVALID_ARGUMENT,
                    format!(
                        "`missed` {missed} is not a threadhost_missed_tick (THREADHOST_MISSED_SKIP \
                         0, _BURST 1, _DELAY 2)"
                    ),
                );
            }
        };
        update(periodic, |p| p.missed(policy));
        Status::OK
    }
}

/// When the first tick is due (`THREADHOST_FIRST_TICK_*`); `delay_ms` is the delay from this
/// call for `THREADHOST_FIRST_TICK_AFTER_DELAY` (the schedule is then anchored there).
///
/// # Safety
///
/// `periodic` is NULL or a live schedule, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_first_tick(
    periodic: *mut threadhost_periodic,
    first: i32,
    delay_ms: u64,
) -> Status {
    ffi_boundary! {
        let periodic = try_mut!(periodic);
        let first = match first {
            FIRST_IMMEDIATELY => FirstTick::Immediately,
            FIRST_AFTER_PERIOD => FirstTick::AfterPeriod,
            FIRST_AFTER_DELAY => match Instant::now().checked_add(Duration::from_millis(delay_ms)) {
                Some(at) => FirstTick::At(at),
                None => {
                    return status::fail(
                        Status::INVALID_ARGUMENT,
                        format!("`delay_ms` {delay_ms} is past what the clock can represent"),
                    );
                }
            },
            _ => {
                return status::fail(
                    Status::INVALID_ARGUMENT,
                    format!(
                        "`first` {first} is not a threadhost_first_tick \
                         (THREADHOST_FIRST_TICK_IMMEDIATELY 0, _AFTER_PERIOD 1, _AFTER_DELAY 2)"
                    ),
                );
            }
        };
        update(periodic, |p| p.first_tick(first));
        Status::OK
    }
}

/// What failing ticks do: 0 (the default) logs, counts and keeps ticking; `n > 0` escalates
/// to the service's failure policy after `n` failing ticks in a row.
///
/// # Safety
///
/// `periodic` is NULL or a live schedule, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_escalate_after(
    periodic: *mut threadhost_periodic,
    consecutive: u32,
) -> Status {
    ffi_boundary! {
        let periodic = try_mut!(periodic);
        let policy = match consecutive {
            0 => TickFailure::Continue,
            n => TickFailure::Escalate { consecutive: n },
        };
        update(periodic, |p| p.on_tick_failure(policy));
        Status::OK
    }
}

/// The stop hook of the service this schedule will build: `on_stop(user, ctx)`, with the
/// `user` given to `threadhost_periodic_build`, runs once the schedule ended, after the last
/// tick, on the service's thread: at a stop, under the stop deadline; or after an escalated
/// tick failure (see the Rust `PeriodicService`). NULL removes it.
///
/// # Safety
///
/// `periodic` is NULL or a live schedule, not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_on_stop(
    periodic: *mut threadhost_periodic,
    on_stop: Option<RunFn>,
) -> Status {
    ffi_boundary! {
        let periodic = try_mut!(periodic);
        periodic.on_stop = on_stop;
        Status::OK
    }
}

/// A handle on the counters of the service this schedule will build, in `*stats_out`; read
/// it from any thread with `threadhost_periodic_stats_read`, free it with
/// `threadhost_periodic_stats_free`.
///
/// # Safety
///
/// `periodic` is NULL or a live schedule; `stats_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_get_stats(
    periodic: *const threadhost_periodic,
    stats_out: *mut *mut threadhost_periodic_stats,
) -> Status {
    ffi_boundary! {
        let periodic = try_ref!(periodic);
        try_out!(stats_out);
        let stats = handle::to_box_ptr::<threadhost_periodic_stats>(periodic.periodic.stats());
        // SAFETY: checked non-NULL above; writable by the caller's contract.
        unsafe { write_out(stats_out, stats) };
        Status::OK
    }
}

/// Reads the counters: ticks run, failing ticks, panicking ticks, missed slots. Each output
/// may be NULL (not wanted).
///
/// # Safety
///
/// `stats` is NULL or live; each output is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_stats_read(
    stats: *const threadhost_periodic_stats,
    ticks_out: *mut u64,
    failures_out: *mut u64,
    panics_out: *mut u64,
    missed_out: *mut u64,
) -> Status {
    ffi_boundary! {
        let stats = try_ref!(stats);
        for (out, value) in [
            (ticks_out, stats.ticks()),
            (failures_out, stats.failures()),
            (panics_out, stats.panics()),
            (missed_out, stats.missed()),
        ] {
            if !out.is_null() {
                // SAFETY: not NULL, and writable by the caller's contract.
                unsafe { write_out(out, value) };
            }
        }
        Status::OK
    }
}

/// Frees a stats handle. NULL is a no-op.
///
/// # Safety
///
/// `stats` is NULL or live, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_stats_free(stats: *mut threadhost_periodic_stats) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned stats handle handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(stats) });
    }
}

/// Builds the periodic service named `name` running `tick` on the schedule (and the stop
/// hook set by `threadhost_periodic_on_stop`, with the same `user`), in `*service_out` (configure it like any service, then `threadhost_builder_add_service`).
/// Consumes `periodic` whatever the result. `THREADHOST_INVALID_CONFIG`: a zero period, a
/// burst of 0, an empty name. Ownership of `user` passes to threadhost whatever the result.
///
/// # Safety
///
/// `periodic` is NULL or a live schedule, never used again; `name` is NULL or a
/// NUL-terminated string; `service_out` is NULL or writable; `user`/`destroy` follow the
/// header's contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_build(
    periodic: *mut threadhost_periodic,
    name: *const c_char,
    tick: Option<TickFn>,
    user: *mut c_void,
    destroy: Option<DestroyFn>,
    service_out: *mut *mut threadhost_service,
) -> Status {
    ffi_boundary! {
        let user = UserData::new(user, destroy);
        let periodic = try_box!(periodic);
        let Some(tick) = tick else { return status::null_argument("tick") };
        try_out!(service_out);
        let name = try_str!(name);
        let CPeriodic { periodic, on_stop } = *periodic;
        let callback = CTickFn { tick, on_stop, user };
        match periodic.build_service(name, callback) {
            Ok(service) => {
                let service = handle::to_box_ptr::<threadhost_service>(service);
                // SAFETY: checked non-NULL above; writable by the caller's contract.
                unsafe { write_out(service_out, service) };
                Status::OK
            }
            Err(error) => status::from_error(&error),
        }
    }
}

/// Frees a schedule never built. NULL is a no-op.
///
/// # Safety
///
/// `periodic` is NULL or live, never used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_periodic_free(periodic: *mut threadhost_periodic) {
    ffi_boundary! {
        // SAFETY: NULL or a live Box-owned schedule handed back once (caller's contract).
        drop(unsafe { handle::try_box_from(periodic) });
    }
}

/// The tick's context (name, token, host stop, error message), borrowed for the callback.
/// NULL if `tick` is NULL.
///
/// # Safety
///
/// `tick` is NULL or the tick passed to the running callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_tick_context(
    tick: *const threadhost_tick,
) -> *const threadhost_context {
    ffi_boundary! {
        // SAFETY: NULL or the live tick of the running callback (caller's contract).
        match unsafe { handle::try_from(tick) } {
            Some(tick) => tick.ctx.as_ptr(),
            None => {
                status::null_argument("tick");
                std::ptr::null()
            }
        }
    }
}

/// The tick's numbers: its index (0 for the first tick run), how late it began in
/// microseconds, the slots skipped since the previous tick, and the failing ticks before it.
/// Each output may be NULL (not wanted).
///
/// # Safety
///
/// `tick` is NULL or the tick passed to the running callback; each output is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn threadhost_tick_info(
    tick: *const threadhost_tick,
    index_out: *mut u64,
    lateness_us_out: *mut u64,
    missed_out: *mut u64,
    failures_out: *mut u64,
) -> Status {
    ffi_boundary! {
        let tick = try_ref!(tick);
        let t = tick.tick;
        let lateness = u64::try_from(t.lateness().as_micros()).unwrap_or(u64::MAX);
        for (out, value) in [
            (index_out, t.index()),
            (lateness_us_out, lateness),
            (missed_out, t.missed()),
            (failures_out, t.failures()),
        ] {
            if !out.is_null() {
                // SAFETY: not NULL, and writable by the caller's contract.
                unsafe { write_out(out, value) };
            }
        }
        Status::OK
    }
}
