//! What every export shares: the panic boundary, this thread's last error,
//! handles checked by a magic number, and the conversions of pointers in and
//! text out. Nothing here knows about sessions or options.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, ErrorKind};

use super::status::bill_status;

/// The value an export returns when a panic was caught, per return type
/// (after rustls-ffi's `ffi_panic_boundary!`).
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for bill_status {
    fn on_panic() -> bill_status {
        record(&Error::new(ErrorKind::Panic, "internal panic caught at the C boundary (please report it)"))
    }
}

impl OnPanic for () {
    fn on_panic() {}
}

impl OnPanic for u64 {
    fn on_panic() -> u64 {
        0
    }
}

/// The one panic boundary: runs `f`, and turns a panic into the return
/// type's fallback. Every export goes through here.
#[inline(always)]
pub(crate) fn boundary<R: OnPanic>(f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| R::on_panic())
}

/// `boundary` for the common shape: a failure becomes this thread's last
/// error and its status; success is BILL_OK and leaves the last error alone.
#[inline(always)]
pub(crate) fn status(f: impl FnOnce() -> Result<(), Error>) -> bill_status {
    boundary(|| match f() {
        Ok(()) => bill_status::BILL_OK,
        Err(e) => record(&e),
    })
}

// ---------------------------------------------------------------------------
// This thread's last error.

#[derive(Default)]
pub(crate) struct LastError {
    pub(crate) status: bill_status,
    pub(crate) code: String,
    pub(crate) text: String,
    pub(crate) retry_after_ms: u64,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError::default());
}

/// Records `e` as this thread's last error and returns its status.
pub(crate) fn record(e: &Error) -> bill_status {
    let status = bill_status::from(e.kind);
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        l.status = status;
        l.code = e.code.clone().unwrap_or_default();
        l.text = e.to_string();
        l.retry_after_ms = e.retry_after.map(|d| d.as_millis() as u64).unwrap_or(0);
    });
    status
}

/// Reads this thread's last error.
pub(crate) fn last<R>(f: impl FnOnce(&LastError) -> R) -> R {
    LAST.with(|l| f(&l.borrow()))
}

// ---------------------------------------------------------------------------
// Handles.

const DEAD_MAGIC: u64 = 0xdead_dead_dead_dead;

/// The inside of every C handle: a magic number that says which type it is
/// and whether it is still live, and the Rust value.
pub(crate) struct Handle<T> {
    magic: u64,
    value: T,
}

/// A C handle type (after rustls-ffi's `Castable`): an opaque struct around a
/// `Handle`, with the magic number and the names used in messages.
pub(crate) trait Castable: Sized + 'static {
    type Inner: 'static;
    const MAGIC: u64;
    /// For messages: "options", "session", "response".
    const WHAT: &'static str;
    /// For messages: the function that makes one.
    const MADE_BY: &'static str;
    fn wrap(h: Handle<Self::Inner>) -> Self;
    fn handle(&self) -> &Handle<Self::Inner>;
    fn handle_mut(&mut self) -> &mut Handle<Self::Inner>;
}

/// Implements `Castable` for a C handle struct `$c(Handle<$inner>)`.
macro_rules! castable {
    ($c:ident, $inner:ty, $magic:expr, $what:expr, $made_by:expr) => {
        impl $crate::ffi::boundary::Castable for $c {
            type Inner = $inner;
            const MAGIC: u64 = $magic;
            const WHAT: &'static str = $what;
            const MADE_BY: &'static str = $made_by;
            fn wrap(h: $crate::ffi::boundary::Handle<$inner>) -> Self {
                $c(h)
            }
            fn handle(&self) -> &$crate::ffi::boundary::Handle<$inner> {
                &self.0
            }
            fn handle_mut(&mut self) -> &mut $crate::ffi::boundary::Handle<$inner> {
                &mut self.0
            }
        }
    };
}
pub(crate) use castable;

fn not_live<C: Castable>() -> Error {
    Error::invalid(format!("{} is not a live handle (freed, or not from {})", C::WHAT, C::MADE_BY))
}

/// Moves `value` into a new handle owned by the caller.
pub(crate) fn into_raw<C: Castable>(value: C::Inner) -> *mut C {
    Box::into_raw(Box::new(C::wrap(Handle { magic: C::MAGIC, value })))
}

/// The value behind a live handle, or NULL_ARG / INVALID_ARG.
///
/// # Safety
/// `p` is NULL or points to memory the caller may read (the best-effort magic
/// check catches some stale or foreign pointers, not all).
pub(crate) unsafe fn get<'a, C: Castable>(p: *const C) -> Result<&'a C::Inner, Error> {
    // SAFETY: forwarded caller contract.
    let h = unsafe { p.as_ref() }.ok_or_else(|| null(C::WHAT))?.handle();
    if h.magic != C::MAGIC {
        return Err(not_live::<C>());
    }
    Ok(&h.value)
}

/// `get` without building an error, for hot paths.
///
/// # Safety
/// As for `get`.
#[inline(always)]
pub(crate) unsafe fn get_fast<'a, C: Castable>(p: *const C) -> Option<&'a C::Inner> {
    // SAFETY: forwarded caller contract.
    let h = unsafe { p.as_ref() }?.handle();
    (h.magic == C::MAGIC).then_some(&h.value)
}

/// Exclusive access to the value behind a live handle.
///
/// # Safety
/// As for `get`, and nobody else uses the handle meanwhile.
pub(crate) unsafe fn get_mut<'a, C: Castable>(p: *mut C) -> Result<&'a mut C::Inner, Error> {
    // SAFETY: forwarded caller contract.
    let h = unsafe { p.as_mut() }.ok_or_else(|| null(C::WHAT))?.handle_mut();
    if h.magic != C::MAGIC {
        return Err(not_live::<C>());
    }
    Ok(&mut h.value)
}

/// Frees a handle (NULL is ignored): marks it dead, then drops the value,
/// which wipes what it holds.
///
/// # Safety
/// `p` is NULL or a handle from `into_raw` that is freed exactly once.
pub(crate) unsafe fn free<C: Castable>(p: *mut C) -> Result<(), Error> {
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: forwarded caller contract; checked live before ownership returns to Rust.
    unsafe { get_mut(p) }?;
    let mut b = unsafe { Box::from_raw(p) };
    b.handle_mut().magic = DEAD_MAGIC;
    drop(b);
    Ok(())
}

// ---------------------------------------------------------------------------
// Arguments in, results out.

pub(crate) fn null(what: &str) -> Error {
    Error::new(ErrorKind::NullArg, format!("{what} is NULL"))
}

/// A NUL-terminated UTF-8 string argument of at most `max` bytes.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
pub(crate) unsafe fn str_in<'a>(p: *const c_char, what: &str, max: usize) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.len() > max {
        return Err(Error::invalid(format!("{what} is longer than {max} bytes")));
    }
    std::str::from_utf8(bytes).map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// `str_in` where NULL means "none".
///
/// # Safety
/// As for `str_in`.
pub(crate) unsafe fn opt_str_in<'a>(p: *const c_char, what: &str, max: usize) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded caller contract.
    unsafe { str_in(p, what, max) }.map(Some)
}

/// A (pointer, length) byte argument of at most `max` bytes; NULL is
/// allowed only with length 0. A length over `max` is refused before the
/// pointer is looked at.
///
/// # Safety
/// `p` points to `len` readable bytes, or `len` is 0.
pub(crate) unsafe fn bytes_in<'a>(p: *const u8, len: usize, what: &str, max: usize) -> Result<&'a [u8], Error> {
    if len > max {
        return Err(Error::invalid(format!("{what} is longer than {max} bytes")));
    }
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller promises `len` readable bytes at `p`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The target of an out-pointer.
///
/// # Safety
/// `p` is NULL or writable.
pub(crate) unsafe fn out_ptr<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: caller-provided out-pointer.
    unsafe { p.as_mut() }.ok_or_else(|| null(what))
}

/// Copies `src` and a NUL into `buf`. On a short or NULL buffer, stores the
/// needed size (NUL included) in `*len` and writes nothing else.
///
/// # Safety
/// `buf` is NULL or has `cap` writable bytes; `len` is NULL or writable.
pub(crate) unsafe fn copy_out(src: &[u8], buf: *mut c_char, cap: usize, len: *mut usize) -> Result<(), Error> {
    let need = src.len() + 1;
    if buf.is_null() || cap < need {
        if !len.is_null() {
            // SAFETY: len is a caller-provided out-pointer.
            unsafe { *len = need };
        }
        return Err(Error::new(
            ErrorKind::BufferTooSmall,
            format!("buffer too small: {need} bytes needed, NUL included"),
        ));
    }
    // SAFETY: buf has at least `need` writable bytes; the regions cannot overlap (ours is Rust-owned).
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf.cast::<u8>(), src.len());
        *buf.add(src.len()) = 0;
        if !len.is_null() {
            *len = src.len();
        }
    }
    Ok(())
}
