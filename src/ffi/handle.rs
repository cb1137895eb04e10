//! The only place raw pointers become Rust values and back (STYLE.md rule 23, after
//! rustls-ffi's `Castable`).
//!
//! Each opaque C type (`threadhost_host`, …) is a zero-sized Rust struct that is never
//! instantiated; a `*const threadhost_x` really points to its [`Castable::Rust`] value. Each
//! declares how C holds it:
//!
//! - [`BoxCastable`]: C owns a `Box` made by [`to_box_ptr`] and gives it back exactly once
//!   (a `_free` function, or a call documented as consuming it).
//! - [`RefCastable`]: C borrows a value owned by Rust for a documented span (a context
//!   during a callback); [`to_ref_ptr`] makes the pointer, and C never frees it.
//!
//! | C type | Rust value | ownership |
//! | --- | --- | --- |
//! | `threadhost_builder` | `Option<HostBuilder>` | Box |
//! | `threadhost_service` | `Service` | Box |
//! | `threadhost_host` | `CHost` | Box |
//! | `threadhost_snapshot` | `HostSnapshot` | Box |
//! | `threadhost_stop_source` | `StopSource` | Box |
//! | `threadhost_token` | `StopToken` | Box (clones) or borrowed (a context's token) |
//! | `threadhost_context` | `CContext` | borrowed during a callback |

/// An opaque C type and the Rust value behind its pointers.
pub(crate) trait Castable {
    /// The Rust value a pointer to this C type points to.
    type Rust;
}

/// C owns a `Box<Self::Rust>`.
pub(crate) trait BoxCastable: Castable {}

/// C borrows a `Self::Rust` owned by Rust.
pub(crate) trait RefCastable: Castable {}

/// Moves `value` into a new `Box` and hands its ownership to C.
pub(crate) fn to_box_ptr<C: BoxCastable>(value: C::Rust) -> *mut C {
    Box::into_raw(Box::new(value)).cast::<C>()
}

/// Lends `value` to C; the pointer is valid while `value` is.
pub(crate) fn to_ref_ptr<C: RefCastable>(value: &C::Rust) -> *const C {
    (value as *const C::Rust).cast::<C>()
}

/// The value behind `ptr`, or `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL, or was made by [`to_box_ptr`] or [`to_ref_ptr`] for this `C` and its value
/// is still live, and nothing mutates it for `'a`.
pub(crate) unsafe fn try_from<'a, C: Castable>(ptr: *const C) -> Option<&'a C::Rust> {
    // SAFETY: NULL or a valid, live, aligned pointer to a `C::Rust`, by this fn's contract.
    unsafe { ptr.cast::<C::Rust>().as_ref() }
}

/// The Box-owned value behind `ptr`, mutably, or `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL, or was made by [`to_box_ptr`] for this `C` and not yet freed, and no one
/// else uses the value for `'a`.
pub(crate) unsafe fn try_from_mut<'a, C: BoxCastable>(ptr: *mut C) -> Option<&'a mut C::Rust> {
    // SAFETY: NULL or a valid, live, unaliased pointer to a `C::Rust`, by this fn's contract.
    unsafe { ptr.cast::<C::Rust>().as_mut() }
}

/// Takes back the `Box` behind `ptr` (ownership returns to Rust), or `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL, or was made by [`to_box_ptr`] for this `C` and not yet taken back; C never
/// uses it again.
pub(crate) unsafe fn try_box_from<C: BoxCastable>(ptr: *mut C) -> Option<Box<C::Rust>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: made by `Box::into_raw` in `to_box_ptr` for this type, and taken back only
    // once, by this fn's contract.
    Some(unsafe { Box::from_raw(ptr.cast::<C::Rust>()) })
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
        impl $crate::ffi::handle::Castable for $c {
            type Rust = $rust;
        }
        impl $crate::ffi::handle::BoxCastable for $c {}
    };
    ($c:ident => $rust:ty, ref) => {
        impl $crate::ffi::handle::Castable for $c {
            type Rust = $rust;
        }
        impl $crate::ffi::handle::RefCastable for $c {}
    };
    ($c:ident => $rust:ty, box + ref) => {
        impl $crate::ffi::handle::Castable for $c {
            type Rust = $rust;
        }
        impl $crate::ffi::handle::BoxCastable for $c {}
        impl $crate::ffi::handle::RefCastable for $c {}
    };
}
