//! `bill_cancel` and `bill_call_options`: exported functions only.

use std::time::Duration;

use super::boundary::{self, castable, get, get_mut, out_ptr};
use super::status::bill_status;
use crate::cancel::Cancel;
use crate::session::CallOptions;

/// A cancellation handle. Create with `bill_cancel_new`, attach to calls with
/// `bill_call_options_set_cancel`, trigger from any thread with
/// `bill_cancel_trigger`, free with `bill_cancel_free`.
pub struct bill_cancel(boundary::Handle<Cancel>);
castable!(bill_cancel, Cancel, 0x6269_6c6c_6361_6e63, "cancel handle", "bill_cancel_new");

/// Per-call settings for `bill_call_with`, `bill_renew_with` and
/// `bill_login_with`. Create with `bill_call_options_new`, free with
/// `bill_call_options_free`.
pub struct bill_call_options(boundary::Handle<CallOptions>);
castable!(bill_call_options, CallOptions, 0x6269_6c6c_636f_7074, "call options", "bill_call_options_new");

/// Creates a cancellation handle that is not triggered. On success `*out`
/// receives a new handle owned by the caller; free it with
/// `bill_cancel_free`. Thread-safe.
///
/// Returns BILL_OK or BILL_ERR_NULL_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_cancel_new(out: *mut *mut bill_cancel) -> bill_status {
    boundary::status(|| {
        let out = unsafe { out_ptr(out, "out") }?;
        *out = boundary::into_raw(Cancel::new());
        Ok(())
    })
}

/// Cancels every call made with this handle: those in progress stop waiting
/// (for a request slot, for a sign-in in flight, for a retry) and abandon
/// their HTTP exchange within about 20 ms, closing its connection rather
/// than leaving a half-read reply in the pool, and return
/// BILL_ERR_CANCELLED; later calls with it return BILL_ERR_CANCELLED at once.
/// A session whose call was cancelled stays usable. Idempotent; safe from any
/// thread, including while calls use the handle (not from a signal handler).
///
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG (a handle that
/// is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_cancel_trigger(c: *const bill_cancel) -> bill_status {
    boundary::status(|| {
        unsafe { get(c) }?.trigger();
        Ok(())
    })
}

/// Writes whether the handle was triggered to `*out`. Thread-safe.
///
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_cancel_is_triggered(c: *const bill_cancel, out: *mut bool) -> bill_status {
    boundary::status(|| {
        let triggered = unsafe { get(c) }?.is_triggered();
        *unsafe { out_ptr(out, "out") }? = triggered;
        Ok(())
    })
}

/// Frees a cancellation handle. NULL is ignored. Call options it was attached
/// to keep working (they hold their own reference), and calls still using it
/// are unaffected; using `c` itself afterwards is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn bill_cancel_free(c: *mut bill_cancel) {
    let _ = boundary::status(|| unsafe { boundary::free(c) });
}

/// Creates per-call options: the session's request timeout, no cancellation
/// handle. On success `*out` receives a new object owned by the caller; free
/// it with `bill_call_options_free`. Calls only read it, so one object may be
/// used by several threads at once while nobody changes it.
///
/// Returns BILL_OK or BILL_ERR_NULL_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_call_options_new(out: *mut *mut bill_call_options) -> bill_status {
    boundary::status(|| {
        let out = unsafe { out_ptr(out, "out") }?;
        *out = boundary::into_raw(CallOptions::default());
        Ok(())
    })
}

/// Frees per-call options. NULL is ignored. Using `o` afterwards is undefined
/// behaviour.
#[no_mangle]
pub unsafe extern "C" fn bill_call_options_free(o: *mut bill_call_options) {
    let _ = boundary::status(|| unsafe { boundary::free(o) });
}

/// Sets the call's deadline: `ms` milliseconds for the whole call (every
/// wait, attempt and retry inside it). It can only shorten the session's
/// request timeout; 0 means the session's request timeout. Not thread-safe
/// against calls using `o`.
///
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG (a handle that
/// is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_call_options_set_timeout_ms(o: *mut bill_call_options, ms: u32) -> bill_status {
    boundary::status(|| {
        unsafe { get_mut(o) }?.timeout = (ms != 0).then(|| Duration::from_millis(ms.into()));
        Ok(())
    })
}

/// Attaches a cancellation handle (NULL detaches). The options keep their own
/// reference, so `c` may be freed while they are in use. Not thread-safe
/// against calls using `o`.
///
/// Returns BILL_OK, BILL_ERR_NULL_ARG (options) or BILL_ERR_INVALID_ARG (a
/// handle that is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_call_options_set_cancel(o: *mut bill_call_options, c: *const bill_cancel) -> bill_status {
    boundary::status(|| {
        let cancel = if c.is_null() { None } else { Some(unsafe { get(c) }?.clone()) };
        unsafe { get_mut(o) }?.cancel = cancel;
        Ok(())
    })
}

/// The call options behind `o`, or the defaults for NULL.
pub(crate) unsafe fn call_options<'a>(o: *const bill_call_options) -> Result<&'a CallOptions, crate::Error> {
    static DEFAULT: std::sync::OnceLock<CallOptions> = std::sync::OnceLock::new();
    if o.is_null() {
        return Ok(DEFAULT.get_or_init(CallOptions::default));
    }
    unsafe { get(o) }
}
