//! The only place handle pointers from C become Rust values again, and where Box-owned
//! handles are made and freed (after rustls-ffi's `Castable`).
//!
//! Each opaque C type (`threadhost_host`, …) is a zero-sized Rust struct that is never
//! instantiated; a `*const threadhost_x` really points to its [`Castable::Rust`] value. Each
//! declares how C holds it with `castable!` (in the file of its C object):
//!
//! - [`BoxCastable`]: C owns a `Box` made by [`to_box_ptr`] and gives it back exactly once
//!   (a `_free` function, or a call documented as consuming it).
//! - [`RefCastable`]: C borrows a value owned by Rust for a documented span (a context
//!   during a callback); C never frees it. [`to_ref_ptr`] makes the pointer for a borrowed
//!   token; a context and a tick live on the callback's stack frame, and
//!   `CContext::as_ptr` (context.rs) and `CTickFn::call` (periodic.rs) cast a reference to
//!   them the same way.
//!
//! | C type | Rust value | ownership | declared in |
//! | --- | --- | --- | --- |
//! | `threadhost_builder` | `Option<HostBuilder>` | Box, until `threadhost_builder_build` consumes it | builder.rs |
//! | `threadhost_service` | `Service` | Box, until `threadhost_builder_add_service` (or a group's or host's `_add_service`) consumes it | service.rs |
//! | `threadhost_group` | `Option<Group>` | Box, until `threadhost_builder_add_group` (or a group's or host's `_add_group`) consumes it | group.rs |
//! | `threadhost_host` | `CHost` | Box | host.rs |
//! | `threadhost_snapshot` | `HostSnapshot` | Box | snapshot.rs |
//! | `threadhost_stop_source` | `StopSource` | Box | stop.rs |
//! | `threadhost_token` | `StopToken` | Box (clones) or borrowed (a context's token, a queue job's token) | stop.rs |
//! | `threadhost_context` | `CContext` | borrowed during a callback | context.rs |
//! | `threadhost_queue` | `CQueue` | Box, until `threadhost_queue_build` consumes it | queue.rs |
//! | `threadhost_producer` | `CProducer` | Box | queue.rs |
//! | `threadhost_periodic` | `CPeriodic` | Box, until `threadhost_periodic_build` consumes it | periodic.rs |
//! | `threadhost_tick` | `CTick` | borrowed during a tick callback | periodic.rs |
//! | `threadhost_periodic_stats` | `PeriodicStats` | Box | periodic.rs |
//!
//! Box-owned handles carry a tag checked on entry (see "the misuse guard" below): a freed or
//! consumed handle (double free, use after free, a builder used after
//! `threadhost_builder_build`) is a status naming its type, not a read of freed memory.

use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// An opaque C type and the Rust value behind its pointers.
pub(crate) trait Castable {
    /// The Rust value a pointer to this C type points to.
    type Rust;
    /// The C type's name, for misuse messages.
    const NAME: &'static str;
    /// Every pointer to it is a [`Shell`] (Box-only types): the tag is checked on every use.
    /// `false` for types C may also borrow (a borrowed value has no tag after it).
    const TAGGED: bool;
}

/// C owns a `Box<Self::Rust>`.
pub(crate) trait BoxCastable: Castable {
    /// This type's pool of freed shells.
    fn pool() -> &'static Pool;
}

/// C borrows a `Self::Rust` owned by Rust.
pub(crate) trait RefCastable: Castable {}

// ---- the misuse guard ---------------------------------------------------------------------
//
// A Box-owned handle lives in a `Shell`: the value, then a tag word. `LIVE` while C owns it;
// taking it back (a `_free`, or a consuming call such as `threadhost_builder_build`) swaps
// the tag to `DEAD` (atomically, so two racing frees cannot both win) and parks the empty
// shell in its type's pool instead of freeing it: the shell's memory stays valid, so a later
// use, double free or builder-used-after-build reads a `DEAD` tag — a status naming the
// handle type, never a read of freed memory. New handles of the type reuse parked shells.
//
// Best effort, documented in the header: once a parked shell is reused, a stale pointer to
// it reaches the new object (as it would with any allocator); a pool holds at most
// `POOL_MAX` shells per type (beyond that, shells are freed and a stale pointer is undefined
// behaviour again); tokens may be borrowed (`threadhost_context_token`), so their uses are
// not checked — only their free is.

/// The tag of a shell whose value C owns ("thlive!!").
const LIVE: u64 = 0x7468_6C69_7665_2121;
/// The tag of a shell whose value was taken back ("thdead!!").
const DEAD: u64 = 0x7468_6465_6164_2121;
/// The most shells a pool keeps per type.
const POOL_MAX: usize = 1024;

/// A Box-owned handle: the value first, at offset 0 (`repr(C)`), so a pointer to the shell is
/// a pointer to the value, as a borrowed pointer is; then the tag.
#[repr(C)]
pub(crate) struct Shell<T> {
    value: MaybeUninit<T>,
    tag: AtomicU64,
}

/// Parked shells of one type (addresses of `Shell<T>` for that type's `T`).
#[derive(Debug)]
pub(crate) struct Pool(Mutex<Vec<usize>>);

impl Pool {
    pub(crate) const fn new() -> Pool {
        Pool(Mutex::new(Vec::new()))
    }

    fn take(&self) -> Option<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Parks `shell`; `false` if the pool is full (the caller frees it).
    fn park(&self, shell: usize) -> bool {
        let mut shells = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if shells.len() >= POOL_MAX {
            return false;
        }
        shells.push(shell);
        true
    }
}

/// How a pointer failed the guard.
#[derive(Debug)]
pub(crate) enum Misuse {
    /// NULL.
    Null,
    /// Not a live handle of this type: freed, or consumed by an earlier call.
    Dead,
}

/// Records the misuse of parameter `param` (a `C::NAME` handle) and returns its status.
#[cold]
pub(crate) fn misuse<C: Castable>(param: &str, misuse: &Misuse) -> super::status::Status {
    match misuse {
        Misuse::Null => super::status::null_argument(param),
        Misuse::Dead => {
            let message = dead_message::<C>(param);
            crate::boundary::log_quietly(|| log::error!("threadhost C API misuse: {message}"));
            super::status::fail(super::status::Status::INVALID_ARGUMENT, message)
        }
    }
}

/// [`misuse`] with the type taken from the pointer (for the macros).
#[cold]
pub(crate) fn misuse_of<C: Castable>(
    _ptr: *const C,
    param: &str,
    what: &Misuse,
) -> super::status::Status {
    misuse::<C>(param, what)
}

fn dead_message<C: Castable>(param: &str) -> String {
    format!(
        "`{param}` is not a live {}: it was already freed, or consumed by an earlier call (e.g. \
         threadhost_builder_build consumes its builder); using it again is a bug in the caller",
        C::NAME
    )
}

/// Moves `value` into a shell (a parked one if any) and hands its ownership to C.
pub(crate) fn to_box_ptr<C: BoxCastable>(value: C::Rust) -> *mut C {
    let shell = match C::pool().take() {
        Some(addr) => addr as *mut Shell<C::Rust>,
        None => Box::into_raw(Box::new(Shell {
            value: MaybeUninit::uninit(),
            tag: AtomicU64::new(DEAD),
        })),
    };
    // SAFETY: `shell` is a live `Shell<C::Rust>` (new, or parked by `take_back` for this
    // type: never freed while parked) whose value slot is empty (DEAD); no one else writes
    // it (a stale pointer only reads the tag, which is DEAD until the store below).
    unsafe { shell.cast::<C::Rust>().write(value) };
    // SAFETY: as above; the tag is an atomic, shared reads race with nothing else.
    let tag = unsafe { &(*shell).tag };
    tag.store(LIVE, Ordering::Release);
    shell.cast::<C>()
}

/// Lends `value` to C; the pointer is valid while `value` is.
pub(crate) fn to_ref_ptr<C: RefCastable>(value: &C::Rust) -> *const C {
    (value as *const C::Rust).cast::<C>()
}

/// `Ok` if `ptr` (not NULL) is a live handle, when its type is tagged.
///
/// # Safety
///
/// `ptr` was made by [`to_box_ptr`] (or, for an untagged type, [`to_ref_ptr`]) for this `C`,
/// and its shell was not freed (see the pool's limits above).
unsafe fn check<C: Castable>(ptr: *const C) -> Result<(), Misuse> {
    if !C::TAGGED {
        return Ok(());
    }
    // SAFETY: a tagged `C` is only ever made by `to_box_ptr`: `ptr` is a `Shell<C::Rust>`,
    // whose memory stays valid after a free (parked), by this fn's contract.
    let tag = unsafe { &(*ptr.cast::<Shell<C::Rust>>()).tag };
    if tag.load(Ordering::Acquire) == LIVE {
        Ok(())
    } else {
        Err(Misuse::Dead)
    }
}

/// The value behind `ptr`: `Err(Null)` for NULL, `Err(Dead)` for a freed or consumed handle.
///
/// # Safety
///
/// `ptr` is NULL, or was made by [`to_box_ptr`] or [`to_ref_ptr`] for this `C`; if live,
/// nothing mutates its value for `'a`.
pub(crate) unsafe fn checked_ref<'a, C: Castable>(ptr: *const C) -> Result<&'a C::Rust, Misuse> {
    if ptr.is_null() {
        return Err(Misuse::Null);
    }
    // SAFETY: by this fn's contract.
    unsafe { check(ptr)? };
    // SAFETY: not NULL, and a live, aligned `C::Rust` (tag checked, or a borrowed value the
    // caller vouches for), by this fn's contract.
    Ok(unsafe { &*ptr.cast::<C::Rust>() })
}

/// The Box-owned value behind `ptr`, mutably (errors as [`checked_ref`]).
///
/// # Safety
///
/// `ptr` is NULL, or was made by [`to_box_ptr`] for this `C`; if live, no one else uses the
/// value for `'a`.
pub(crate) unsafe fn checked_mut<'a, C: BoxCastable>(
    ptr: *mut C,
) -> Result<&'a mut C::Rust, Misuse> {
    if ptr.is_null() {
        return Err(Misuse::Null);
    }
    // SAFETY: by this fn's contract.
    unsafe { check(ptr.cast_const())? };
    // SAFETY: not NULL, live (tag checked), unaliased by this fn's contract.
    Ok(unsafe { &mut *ptr.cast::<C::Rust>() })
}

/// Takes back the value behind `ptr` (ownership returns to Rust; the shell is parked):
/// errors as [`checked_ref`]. The tag is checked for every Box type, tokens included.
///
/// # Safety
///
/// `ptr` is NULL, or was made by [`to_box_ptr`] for this `C`.
pub(crate) unsafe fn take_back<C: BoxCastable>(ptr: *mut C) -> Result<Box<C::Rust>, Misuse> {
    if ptr.is_null() {
        return Err(Misuse::Null);
    }
    let shell = ptr.cast::<Shell<C::Rust>>();
    // SAFETY: a shell made by `to_box_ptr`, its memory valid (parked after a free), by this
    // fn's contract.
    let tag = unsafe { &(*shell).tag };
    // One winner among racing frees: only it moves the value out.
    if tag
        .compare_exchange(LIVE, DEAD, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(Misuse::Dead);
    }
    // SAFETY: the tag was LIVE, so the value slot is initialised, and this call alone
    // switched it to DEAD: the value is moved out exactly once.
    let value = unsafe { shell.cast::<C::Rust>().read() };
    if !C::pool().park(shell as usize) {
        // SAFETY: made by `Box::into_raw` in `to_box_ptr`; its value was moved out above and
        // `MaybeUninit` drops nothing; not parked, so no one reuses it.
        drop(unsafe { Box::from_raw(shell) });
    }
    Ok(Box::new(value))
}

/// The value behind `ptr`, or `None` for NULL or a dead handle (the misuse is recorded as the
/// last error). For entry points that return something other than a status.
///
/// # Safety
///
/// As [`checked_ref`].
pub(crate) unsafe fn try_from<'a, C: Castable>(ptr: *const C) -> Option<&'a C::Rust> {
    // SAFETY: the same contract.
    match unsafe { checked_ref(ptr) } {
        Ok(value) => Some(value),
        Err(Misuse::Null) => None,
        Err(Misuse::Dead) => {
            misuse::<C>("handle", &Misuse::Dead);
            None
        }
    }
}

/// Takes back the `Box` behind `ptr`, or `None` for NULL or a dead handle: a double free is
/// recorded as the last error and logged, and does nothing else. For `_free` functions.
///
/// # Safety
///
/// As [`take_back`].
pub(crate) unsafe fn try_box_from<C: BoxCastable>(ptr: *mut C) -> Option<Box<C::Rust>> {
    // SAFETY: the same contract.
    match unsafe { take_back(ptr) } {
        Ok(value) => Some(value),
        Err(Misuse::Null) => None,
        Err(Misuse::Dead) => {
            misuse::<C>("handle", &Misuse::Dead);
            None
        }
    }
}

/// Writes `value` to the caller's output pointer (checked non-NULL by `try_out!`).
///
/// # Safety
///
/// `out` is not NULL, aligned, and writable for one `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: non-NULL, aligned and writable by this fn's contract; `T` is a plain C value
    // (integer, bool or pointer), so nothing is dropped by overwriting it.
    unsafe { out.write(value) }
}

/// Declares the ownership of an opaque C type (see the table in the module docs).
macro_rules! castable {
    ($c:ident => $rust:ty, box) => {
        impl $crate::handle::Castable for $c {
            type Rust = $rust;
            const NAME: &'static str = stringify!($c);
            const TAGGED: bool = true;
        }
        impl $crate::handle::BoxCastable for $c {
            fn pool() -> &'static $crate::handle::Pool {
                static POOL: $crate::handle::Pool = $crate::handle::Pool::new();
                &POOL
            }
        }
    };
    ($c:ident => $rust:ty, ref) => {
        impl $crate::handle::Castable for $c {
            type Rust = $rust;
            const NAME: &'static str = stringify!($c);
            const TAGGED: bool = false;
        }
        impl $crate::handle::RefCastable for $c {}
    };
    ($c:ident => $rust:ty, box + ref) => {
        impl $crate::handle::Castable for $c {
            type Rust = $rust;
            const NAME: &'static str = stringify!($c);
            const TAGGED: bool = false;
        }
        impl $crate::handle::BoxCastable for $c {
            fn pool() -> &'static $crate::handle::Pool {
                static POOL: $crate::handle::Pool = $crate::handle::Pool::new();
                &POOL
            }
        }
        impl $crate::handle::RefCastable for $c {}
    };
}
