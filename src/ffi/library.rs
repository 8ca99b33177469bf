//! Library-wide exports: version, status texts, this thread's last error, wiping.

use std::ffi::{c_char, c_void};

use zeroize::Zeroize;

use super::boundary::{self, copy_out};
use super::status::bill_status;

/// The library version, "MAJOR.MINOR.PATCH". Static storage; never NULL; do not free.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn bill_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A short English description of `status`. Static storage; never NULL; do not free.
/// Unknown values give "unknown status". Thread-safe.
#[no_mangle]
pub extern "C" fn bill_status_str(status: u32) -> *const c_char {
    struct Fallback(*const c_char);
    impl boundary::OnPanic for Fallback {
        fn on_panic() -> Fallback {
            Fallback(c"unknown status".as_ptr())
        }
    }
    boundary::boundary(|| Fallback(bill_status::c_text(status))).0
}

/// Copies one field of the last error out, without changing the last error.
unsafe fn last_out(
    field: fn(&boundary::LastError) -> &str,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    boundary::boundary(|| {
        // SAFETY: forwarded caller contract of the exports below.
        boundary::last(|l| match unsafe { copy_out(field(l).as_bytes(), buf, cap, len) } {
            Ok(()) => bill_status::BILL_OK,
            Err(_) => bill_status::BILL_ERR_BUFFER_TOO_SMALL,
        })
    })
}

/// Copies this thread's last error detail into `buf`: BILL's code and message
/// when BILL sent one (for example "BDC_1101: User name and/or password do not
/// match our records. (HTTP 400)"), otherwise libbill's own explanation. Never
/// contains a secret. "" when no call on this thread has failed.
///
/// The detail belongs to the most recent failing `bill_*` call on the calling
/// thread; successful calls leave it unchanged. Read it on the same OS thread
/// right after the failure (Go: `runtime.LockOSThread` around the pair).
///
/// `buf` receives NUL-terminated text; `*len` (if `len` is not NULL) receives
/// its length without the NUL. Returns BILL_OK, or BILL_ERR_BUFFER_TOO_SMALL
/// with `*len` set to the size needed (NUL included) when `buf` is NULL or
/// `cap` is too small. Does not change the last error itself.
#[no_mangle]
pub unsafe extern "C" fn bill_last_error(buf: *mut c_char, cap: usize, len: *mut usize) -> bill_status {
    unsafe { last_out(|l| &l.text, buf, cap, len) }
}

/// Copies this thread's last BILL error code (for example "BDC_1109") into
/// `buf`, or "" when the last failure did not come with a BILL code. Only a
/// code of BILL's shape ("BDC_" and digits) is passed on; any other code
/// field is withheld and the detail says so. Buffer rules and statuses as for
/// `bill_last_error`.
#[no_mangle]
pub unsafe extern "C" fn bill_last_error_code(buf: *mut c_char, cap: usize, len: *mut usize) -> bill_status {
    unsafe { last_out(|l| &l.code, buf, cap, len) }
}

/// The status of this thread's most recent failing call, or BILL_OK if none. Thread-safe.
#[no_mangle]
pub extern "C" fn bill_last_error_status() -> bill_status {
    boundary::boundary(|| boundary::last(|l| l.status))
}

/// For BILL_ERR_RATE_LIMITED: milliseconds until retrying makes sense (the
/// next hourly window for BDC_1144). 0 when unknown or not rate limited.
/// Refers to this thread's last failing call. Thread-safe.
#[no_mangle]
pub extern "C" fn bill_last_error_retry_after_ms() -> u64 {
    boundary::boundary(|| boundary::last(|l| l.retry_after_ms))
}

/// Overwrites `len` bytes at `p` with zeros in a way the compiler cannot
/// remove. Use it on buffers that held a session id or a secret. NULL or 0
/// does nothing. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bill_wipe(p: *mut c_void, len: usize) {
    boundary::boundary(|| {
        if p.is_null() || len == 0 {
            return;
        }
        // SAFETY: the caller promises `len` writable bytes at `p`.
        unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) }.zeroize();
    })
}
