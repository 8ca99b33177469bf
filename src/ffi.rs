//! The C ABI. Converts between C and the core; holds no logic of its own.
//!
//! Conventions (after rustls-ffi): every export catches panics; every pointer
//! is checked; outputs are written only on success (the one exception: a too
//! small buffer gets the needed size); a buffer is always followed by its
//! length; text out is NUL-terminated; enums coming in from C are taken as
//! `uint32_t` so that an unknown value is an error, not undefined behaviour.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorKind};
use crate::fork;
use crate::options::{self, ApiVersion, Environment, Event, Options, RefreshMode, SignInKind};
use crate::secret::Secret;
use crate::session::{Session, State};

/// Status of every fallible call. Values are explicit and never reused;
/// new ones are only ever appended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_status {
    /// Success.
    BILL_OK = 0,
    /// A required pointer argument was NULL.
    BILL_ERR_NULL_ARG = 1,
    /// An argument was out of range, malformed, not UTF-8, too long, or an unknown enum value.
    BILL_ERR_INVALID_ARG = 2,
    /// The output buffer is too small (or NULL); `*len` says how many bytes are needed, NUL included.
    BILL_ERR_BUFFER_TOO_SMALL = 3,
    /// BILL refused the credentials, devKey, organization or login
    /// (BDC_1101/1102/1103/1107/1110/1111/1113, and BDC_1123/1129 at sign-in).
    BILL_ERR_AUTH = 4,
    /// The session is no longer valid (BDC_1109, or idle past the timeout).
    BILL_ERR_SESSION_EXPIRED = 5,
    /// The network failed: refused, reset, DNS, closed mid-reply.
    BILL_ERR_NETWORK = 6,
    /// A connect or request timeout passed.
    BILL_ERR_TIMEOUT = 7,
    /// BILL's reply could not be understood (not JSON, wrong shape, wrong content type).
    BILL_ERR_PROTOCOL = 8,
    /// BDC_1144 or BDC_1322, or the client-side sign-in budget is used up.
    /// `bill_last_error_retry_after_ms` says when retrying makes sense.
    BILL_ERR_RATE_LIMITED = 9,
    /// BDC_1361: the operation needs an MFA-trusted session.
    BILL_ERR_MFA_REQUIRED = 10,
    /// Any other BILL error code; see `bill_last_error_code`.
    BILL_ERR_API = 11,
    /// The session was logged out or closed.
    BILL_ERR_CLOSED = 12,
    /// A bug inside libbill was caught at the boundary; the process is unharmed.
    BILL_ERR_PANIC = 13,
    /// The handle was created before fork(); it cannot be used in the child.
    BILL_ERR_FORKED = 14,
    /// TLS failed (for example an untrusted certificate).
    BILL_ERR_TLS = 15,
    /// BILL answered with HTTP 5xx or BDC_1001 (transient).
    BILL_ERR_SERVER = 16,
    /// The reply was larger than the configured limit.
    BILL_ERR_RESPONSE_TOO_LARGE = 17,
    /// A call that may block on the network was made inside an event callback.
    BILL_ERR_IN_CALLBACK = 18,
    /// An internal error that is not a panic.
    BILL_ERR_INTERNAL = 19,
}
use bill_status::*;

/// Session states, as reported by `bill_session_state`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_state {
    /// Signed in; the id is valid.
    BILL_STATE_ACTIVE = 1,
    /// A renewal is due or being retried; the current id is still valid.
    BILL_STATE_RENEWING = 2,
    /// Idle past the timeout with no successful renewal; no id is handed out.
    BILL_STATE_EXPIRED = 3,
    /// Renewal failed permanently (for example BDC_1101); see `bill_session_error`.
    BILL_STATE_FAILED = 4,
    /// Logged out or closed.
    BILL_STATE_CLOSED = 5,
}

/// BILL API versions, for `bill_options_set_api_version`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_api {
    /// v2: form-encoded `POST {base}/Login.json` etc.
    BILL_API_V2 = 2,
    /// v3: JSON `POST {base}/v3/login`, `devKey`/`sessionId` headers (the default).
    BILL_API_V3 = 3,
}

/// Environments, for `bill_options_set_environment`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_environment {
    /// api.bill.com / gateway.prod.bill.com (the default).
    BILL_ENV_PRODUCTION = 0,
    /// api-stage.bill.com / gateway.stage.bill.com.
    BILL_ENV_SANDBOX = 1,
}

/// What happens when a session nears its idle timeout, for `bill_options_set_refresh_mode`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_refresh_mode {
    /// Sign in again at idle timeout minus margin (the default; BILL's documented practice).
    BILL_REFRESH_RELOGIN = 0,
    /// Call GetSessionInfo / GET /v3/login/session, keeping the same id.
    /// Spends request budget (20,000/h), not sign-in budget (200/h).
    BILL_REFRESH_KEEPALIVE = 1,
    /// No background traffic; the next `bill_call` or `bill_renew` after expiry signs in.
    BILL_REFRESH_LAZY = 2,
}

/// How the credentials sign in, for `bill_options_set_sign_in_kind`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_sign_in_kind {
    /// userName and password (the default; idle timeout 35 minutes).
    BILL_SIGN_IN_PASSWORD = 0,
    /// AP & AR sync token: token name as userName, token value as password
    /// (idle timeout 48 hours unless set).
    BILL_SIGN_IN_SYNC_TOKEN = 1,
}

/// Events delivered to a `bill_event_fn`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum bill_event {
    /// A new id was installed (background renewal, `bill_renew`, or call recovery).
    BILL_EVENT_RENEWED = 1,
    /// A renewal attempt failed; `status` and `detail` say why. Transient
    /// failures are retried with backoff; permanent ones move to FAILED.
    BILL_EVENT_RENEW_FAILED = 2,
    /// The session went idle past its timeout without a renewal.
    BILL_EVENT_EXPIRED = 3,
    /// The session was logged out or freed. Last event for the session.
    BILL_EVENT_CLOSED = 4,
    /// KEEPALIVE mode: BILL's idle timer was reset; the id is unchanged.
    BILL_EVENT_KEPT_ALIVE = 5,
}

/// Session event callback.
///
/// Runs on the thread that caused the event: the library's background thread
/// for scheduled renewals and expiry, or the caller's thread for `bill_renew`,
/// `bill_call` recovery, `bill_logout` and `bill_session_free`. No library lock
/// is held. `detail` is NUL-terminated, free of secrets, and valid only during
/// the call; it is "" when there is no error. The callback may call
/// `bill_session_id`, `bill_touch`, `bill_session_state`, `bill_session_trusted`,
/// `bill_session_error` and the `bill_last_error*` functions. Calls that may
/// block on the network (`bill_login`, `bill_renew`, `bill_call`, `bill_logout`)
/// return BILL_ERR_IN_CALLBACK. Keep it short: it delays every other session's
/// renewals. It must not unwind (throw) into libbill. The BILL_EVENT_CLOSED
/// that `bill_session_free` delivers comes while the handle is being freed:
/// do not pass the handle to libbill from it (the check for a live handle
/// answers BILL_ERR_INVALID_ARG).
pub type bill_event_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: bill_event, status: bill_status, detail: *const c_char)>;

const OPTIONS_MAGIC: u64 = 0x6269_6c6c_6f70_7473;
const SESSION_MAGIC: u64 = 0x6269_6c6c_7365_7373;
const RESPONSE_MAGIC: u64 = 0x6269_6c6c_7265_7370;
const DEAD_MAGIC: u64 = 0xdead_dead_dead_dead;

/// Options for `bill_login`. Create with `bill_options_new`, free with `bill_options_free`.
pub struct bill_options {
    magic: u64,
    opts: Options,
}

/// A signed-in session. Create with `bill_login`, free with `bill_session_free`.
pub struct bill_session {
    magic: u64,
    session: Session,
}

/// The reply to `bill_call`. Free with `bill_response_free`, which wipes it.
pub struct bill_response {
    magic: u64,
    http_status: u16,
    body: Zeroizing<Vec<u8>>,
}

// ---------------------------------------------------------------------------
// Last error (thread-local) and the panic boundary.

#[derive(Default)]
struct LastError {
    status: u32,
    code: String,
    text: String,
    retry_after_ms: u64,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError::default());
}

fn status_of(kind: ErrorKind) -> bill_status {
    match kind {
        ErrorKind::NullArg => BILL_ERR_NULL_ARG,
        ErrorKind::InvalidArg => BILL_ERR_INVALID_ARG,
        ErrorKind::BufferTooSmall => BILL_ERR_BUFFER_TOO_SMALL,
        ErrorKind::Auth => BILL_ERR_AUTH,
        ErrorKind::SessionExpired => BILL_ERR_SESSION_EXPIRED,
        ErrorKind::Network => BILL_ERR_NETWORK,
        ErrorKind::Timeout => BILL_ERR_TIMEOUT,
        ErrorKind::Protocol => BILL_ERR_PROTOCOL,
        ErrorKind::RateLimited => BILL_ERR_RATE_LIMITED,
        ErrorKind::MfaRequired => BILL_ERR_MFA_REQUIRED,
        ErrorKind::Api => BILL_ERR_API,
        ErrorKind::Closed => BILL_ERR_CLOSED,
        ErrorKind::Panic => BILL_ERR_PANIC,
        ErrorKind::Forked => BILL_ERR_FORKED,
        ErrorKind::Tls => BILL_ERR_TLS,
        ErrorKind::Server => BILL_ERR_SERVER,
        ErrorKind::ResponseTooLarge => BILL_ERR_RESPONSE_TOO_LARGE,
        ErrorKind::InCallback => BILL_ERR_IN_CALLBACK,
        ErrorKind::Internal => BILL_ERR_INTERNAL,
    }
}

fn record(e: &Error) -> bill_status {
    let status = status_of(e.kind);
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        l.status = status as u32;
        l.code = e.code.clone().unwrap_or_default();
        l.text = e.to_string();
        l.retry_after_ms = e.retry_after.map(|d| d.as_millis() as u64).unwrap_or(0);
    });
    status
}

/// Runs `f` behind the panic boundary and records any failure as this thread's last error.
fn guard(f: impl FnOnce() -> Result<(), Error>) -> bill_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => BILL_OK,
        Ok(Err(e)) => record(&e),
        Err(_) => record(&Error::new(ErrorKind::Panic, "internal panic caught at the C boundary (please report it)")),
    }
}

fn null(what: &str) -> Error {
    Error::new(ErrorKind::NullArg, format!("{what} is NULL"))
}

unsafe fn options_mut<'a>(o: *mut bill_options) -> Result<&'a mut Options, Error> {
    // SAFETY: the caller passes a pointer from bill_options_new that is not used concurrently.
    let o = unsafe { o.as_mut() }.ok_or_else(|| null("options"))?;
    if o.magic != OPTIONS_MAGIC {
        return Err(Error::invalid("options is not a live bill_options (freed or not from bill_options_new)"));
    }
    Ok(&mut o.opts)
}

unsafe fn options_ref<'a>(o: *const bill_options) -> Result<&'a Options, Error> {
    // SAFETY: as above; shared access only.
    let o = unsafe { o.as_ref() }.ok_or_else(|| null("options"))?;
    if o.magic != OPTIONS_MAGIC {
        return Err(Error::invalid("options is not a live bill_options (freed or not from bill_options_new)"));
    }
    Ok(&o.opts)
}

#[inline]
unsafe fn session_ref<'a>(s: *const bill_session) -> Result<&'a Session, Error> {
    // SAFETY: the caller passes a pointer from bill_login that has not been freed.
    let s = unsafe { s.as_ref() }.ok_or_else(|| null("session"))?;
    if s.magic != SESSION_MAGIC {
        return Err(Error::invalid("session is not a live bill_session (freed or not from bill_login)"));
    }
    if !fork::is_current(s.session.epoch()) {
        return Err(Error::new(
            ErrorKind::Forked,
            "this session was created before fork(); sign in again in the child",
        ));
    }
    Ok(&s.session)
}

/// A live session made in this process, or `None` (the slow path explains).
#[inline(always)]
unsafe fn live_session<'a>(s: *const bill_session) -> Option<&'a Session> {
    // SAFETY: as for session_ref.
    let h = unsafe { s.as_ref() }?;
    (h.magic == SESSION_MAGIC && fork::is_current(h.session.epoch())).then_some(&h.session)
}

unsafe fn response_ref<'a>(r: *const bill_response) -> Result<&'a bill_response, Error> {
    // SAFETY: the caller passes a pointer from bill_call that has not been freed.
    let r = unsafe { r.as_ref() }.ok_or_else(|| null("response"))?;
    if r.magic != RESPONSE_MAGIC {
        return Err(Error::invalid("response is not a live bill_response"));
    }
    Ok(r)
}

/// A NUL-terminated UTF-8 string argument of at most `max` bytes.
unsafe fn str_in<'a>(p: *const c_char, what: &str, max: usize) -> Result<&'a str, Error> {
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

/// A (pointer, length) byte argument; NULL is allowed only with length 0.
unsafe fn bytes_in<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: the caller promises `len` readable bytes at `p`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

unsafe fn secret_in(p: *const u8, len: usize, what: &str) -> Result<Secret, Error> {
    if len == 0 {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if len > options::MAX_FIELD_LEN {
        return Err(Error::invalid(format!("{what} is longer than {} bytes", options::MAX_FIELD_LEN)));
    }
    // SAFETY: forwarded caller contract.
    let bytes = unsafe { bytes_in(p, len, what) }?;
    let s = Secret::from_bytes(bytes).ok_or_else(|| Error::invalid(format!("{what} is not valid UTF-8")))?;
    if s.expose().chars().any(char::is_control) {
        return Err(Error::invalid(format!("{what} contains control characters")));
    }
    Ok(s)
}

/// Copies `src` and a NUL into `buf`. On a short or NULL buffer, stores the
/// needed size (NUL included) in `*len` and writes nothing else.
unsafe fn copy_out(src: &[u8], buf: *mut c_char, cap: usize, len: *mut usize) -> Result<(), Error> {
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

unsafe fn out_ptr<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: caller-provided out-pointer.
    unsafe { p.as_mut() }.ok_or_else(|| null(what))
}

// ---------------------------------------------------------------------------
// Library information.

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
    let s: &'static str = match status {
        0 => "ok\0",
        1 => "a required pointer argument was NULL\0",
        2 => "invalid argument\0",
        3 => "buffer too small\0",
        4 => "BILL refused the sign-in (credentials, devKey, organization or login)\0",
        5 => "session expired\0",
        6 => "network error\0",
        7 => "timed out\0",
        8 => "unexpected reply from BILL\0",
        9 => "rate limited\0",
        10 => "MFA-trusted session required\0",
        11 => "BILL API error\0",
        12 => "session closed\0",
        13 => "internal panic (caught)\0",
        14 => "handle used in a fork() child\0",
        15 => "TLS error\0",
        16 => "BILL server error\0",
        17 => "reply too large\0",
        18 => "not allowed inside an event callback\0",
        19 => "internal error\0",
        _ => "unknown status\0",
    };
    s.as_ptr().cast()
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
    catch_unwind(AssertUnwindSafe(|| {
        LAST.with(|l| match unsafe { copy_out(l.borrow().text.as_bytes(), buf, cap, len) } {
            Ok(()) => BILL_OK,
            Err(_) => BILL_ERR_BUFFER_TOO_SMALL,
        })
    }))
    .unwrap_or(BILL_ERR_PANIC)
}

/// Copies this thread's last BILL error code (for example "BDC_1109") into
/// `buf`, or "" when the last failure did not come with a BILL code.
/// Buffer rules and statuses as for `bill_last_error`.
#[no_mangle]
pub unsafe extern "C" fn bill_last_error_code(buf: *mut c_char, cap: usize, len: *mut usize) -> bill_status {
    catch_unwind(AssertUnwindSafe(|| {
        LAST.with(|l| match unsafe { copy_out(l.borrow().code.as_bytes(), buf, cap, len) } {
            Ok(()) => BILL_OK,
            Err(_) => BILL_ERR_BUFFER_TOO_SMALL,
        })
    }))
    .unwrap_or(BILL_ERR_PANIC)
}

/// The status of this thread's most recent failing call, or BILL_OK if none. Thread-safe.
#[no_mangle]
pub extern "C" fn bill_last_error_status() -> bill_status {
    let v = catch_unwind(|| LAST.with(|l| l.borrow().status)).unwrap_or(13);
    status_from_u32(v)
}

fn status_from_u32(v: u32) -> bill_status {
    const ALL: [bill_status; 20] = [
        BILL_OK,
        BILL_ERR_NULL_ARG,
        BILL_ERR_INVALID_ARG,
        BILL_ERR_BUFFER_TOO_SMALL,
        BILL_ERR_AUTH,
        BILL_ERR_SESSION_EXPIRED,
        BILL_ERR_NETWORK,
        BILL_ERR_TIMEOUT,
        BILL_ERR_PROTOCOL,
        BILL_ERR_RATE_LIMITED,
        BILL_ERR_MFA_REQUIRED,
        BILL_ERR_API,
        BILL_ERR_CLOSED,
        BILL_ERR_PANIC,
        BILL_ERR_FORKED,
        BILL_ERR_TLS,
        BILL_ERR_SERVER,
        BILL_ERR_RESPONSE_TOO_LARGE,
        BILL_ERR_IN_CALLBACK,
        BILL_ERR_INTERNAL,
    ];
    ALL.get(v as usize).copied().unwrap_or(BILL_ERR_INTERNAL)
}

/// For BILL_ERR_RATE_LIMITED: milliseconds until retrying makes sense (the
/// next hourly window for BDC_1144). 0 when unknown or not rate limited.
/// Refers to this thread's last failing call. Thread-safe.
#[no_mangle]
pub extern "C" fn bill_last_error_retry_after_ms() -> u64 {
    catch_unwind(|| LAST.with(|l| l.borrow().retry_after_ms)).unwrap_or(0)
}

/// Overwrites `len` bytes at `p` with zeros in a way the compiler cannot
/// remove. Use it on buffers that held a session id or a secret. NULL or 0
/// does nothing. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bill_wipe(p: *mut c_void, len: usize) {
    if p.is_null() || len == 0 {
        return;
    }
    // SAFETY: the caller promises `len` writable bytes at `p`.
    let bytes = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
    bytes.zeroize();
}

// ---------------------------------------------------------------------------
// Options.

/// Creates options with BILL's defaults: API v3, production, idle timeout 35
/// minutes, renewal margin 1 minute, connect timeout 10 s, request timeout
/// 30 s, RELOGIN refresh, Mozilla's root certificates, 16 MiB reply limit,
/// 200 sign-ins per devKey per hour, 3 requests in flight.
///
/// On success `*out` receives a new object owned by the caller; free it with
/// `bill_options_free`. An options object must not be modified from two
/// threads at once; `bill_login` only reads it, so several threads may sign
/// in with the same options while nobody changes them.
///
/// Returns BILL_OK or BILL_ERR_NULL_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_new(out: *mut *mut bill_options) -> bill_status {
    guard(|| {
        let out = unsafe { out_ptr(out, "out") }?;
        *out = Box::into_raw(Box::new(bill_options { magic: OPTIONS_MAGIC, opts: Options::default() }));
        Ok(())
    })
}

/// Wipes the secrets in `opts` and frees it. NULL is ignored. Sessions made
/// from these options keep their own copy and are unaffected. Using `opts`
/// afterwards is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn bill_options_free(opts: *mut bill_options) {
    let _ = guard(|| {
        if opts.is_null() {
            return Ok(());
        }
        unsafe { options_mut(opts) }?;
        // SAFETY: checked live above; ownership returns to Rust exactly once.
        let mut b = unsafe { Box::from_raw(opts) };
        b.magic = DEAD_MAGIC;
        drop(b);
        Ok(())
    });
}

unsafe fn set_secret(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
    what: &str,
    pick: fn(&mut Options) -> &mut Secret,
) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        // Assigning drops (and wipes) the previous value.
        *pick(o) = unsafe { secret_in(value, len, what) }?;
        Ok(())
    })
}

/// Sets the BILL userName (or the sync token's name). `value` is `len` bytes
/// of UTF-8, not NUL-terminated, 1 to 4096 bytes, no control characters. The
/// bytes are copied into wiped storage; the caller may wipe its copy (see
/// `bill_wipe`) right after. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_user_name(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
) -> bill_status {
    unsafe { set_secret(opts, value, len, "userName", |o| &mut o.user_name) }
}

/// Sets the password (or the sync token's value). Same rules as
/// `bill_options_set_user_name`.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_password(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
) -> bill_status {
    unsafe { set_secret(opts, value, len, "password", |o| &mut o.password) }
}

/// Sets the developer key (devKey). Same rules as `bill_options_set_user_name`.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_dev_key(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
) -> bill_status {
    unsafe { set_secret(opts, value, len, "devKey", |o| &mut o.dev_key) }
}

/// Sets the organization id (v2 `orgId`, v3 `organizationId`): a
/// NUL-terminated UTF-8 string of 1 to 4096 bytes. Copied. Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_org_id(opts: *mut bill_options, org_id: *const c_char) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        let v = unsafe { str_in(org_id, "orgId", options::MAX_FIELD_LEN) }?;
        options::check_field("orgId", v)?;
        o.org_id = v.to_owned();
        Ok(())
    })
}

/// Chooses the API: BILL_API_V2 or BILL_API_V3 (`bill_api`). Also picks the
/// default base URL unless one was set. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG (unknown value).
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_api_version(opts: *mut bill_options, version: u32) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.api = match version {
            2 => ApiVersion::V2,
            3 => ApiVersion::V3,
            _ => return Err(Error::invalid(format!("unknown API version {version} (use BILL_API_V2 or BILL_API_V3)"))),
        };
        Ok(())
    })
}

/// Chooses production or sandbox (`bill_environment`) for the default base
/// URL. Ignored once a base URL is set. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_environment(opts: *mut bill_options, env: u32) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.environment = match env {
            0 => Environment::Production,
            1 => Environment::Sandbox,
            _ => return Err(Error::invalid(format!("unknown environment {env}"))),
        };
        Ok(())
    })
}

/// Overrides the base URL, for example "https://api-stage.bill.com/api/v2"
/// (v2) or "https://gateway.stage.bill.com/connect" (v3; calls go to
/// `{base}/v3/...`). Must be https://, except http:// to a loopback host
/// (localhost, 127.0.0.0/8, ::1); no user info, query or fragment. NULL
/// restores the default. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_base_url(opts: *mut bill_options, url: *const c_char) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        if url.is_null() {
            o.base_url = None;
            return Ok(());
        }
        let v = unsafe { str_in(url, "base URL", options::MAX_URL_LEN) }?;
        options::BaseUrl::parse(v)?;
        o.base_url = Some(v.to_owned());
        Ok(())
    })
}

fn ms_in_range(v: u64, what: &str, min: u64, max: u64) -> Result<Duration, Error> {
    if !(min..=max).contains(&v) {
        return Err(Error::invalid(format!("{what} must be between {min} and {max} ms")));
    }
    Ok(Duration::from_millis(v))
}

const MAX_MS: u64 = 30 * 24 * 3600 * 1000;

/// Sets how long BILL keeps an unused session (default 35 minutes; 48 hours
/// for sync-token sign-in). 0 restores the default. Otherwise 100 ms to 30
/// days. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_idle_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.idle_timeout = if ms == 0 { None } else { Some(ms_in_range(ms, "idle timeout", 100, MAX_MS)?) };
        Ok(())
    })
}

/// Sets how long before the idle timeout a renewal happens (default 60,000
/// ms, so renewal at 34 minutes idle). 0 to 30 days; must be shorter than the
/// idle timeout (checked by `bill_login`). Returns BILL_OK, BILL_ERR_NULL_ARG
/// or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_renew_margin_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.renew_margin = ms_in_range(ms, "renewal margin", 0, MAX_MS)?;
        Ok(())
    })
}

/// Sets the TCP/TLS connect timeout (default 10,000 ms; 1 ms to 30 days).
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_connect_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.connect_timeout = ms_in_range(ms, "connect timeout", 1, MAX_MS)?;
        Ok(())
    })
}

/// Sets the limit for one whole request, connect to last byte, including
/// waiting for a free request slot (default 30,000 ms; 1 ms to 30 days).
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_request_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.request_timeout = ms_in_range(ms, "request timeout", 1, MAX_MS)?;
        Ok(())
    })
}

/// Trusts only the PEM certificates in the file at `path` (NUL-terminated
/// UTF-8, 1 to 4096 bytes) instead of the built-in Mozilla roots. The file is
/// read at `bill_login`, which fails with BILL_ERR_INVALID_ARG if it cannot
/// be read or holds no certificate. NULL restores the built-in roots.
/// Returns BILL_OK, BILL_ERR_NULL_ARG (options) or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_ca_file(opts: *mut bill_options, path: *const c_char) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        if path.is_null() {
            o.ca_file = None;
            return Ok(());
        }
        let v = unsafe { str_in(path, "CA file path", 4096) }?;
        if v.is_empty() {
            return Err(Error::invalid("CA file path is empty"));
        }
        o.ca_file = Some(PathBuf::from(v));
        Ok(())
    })
}

/// Chooses the refresh mode (`bill_refresh_mode`). Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_refresh_mode(opts: *mut bill_options, mode: u32) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.refresh = match mode {
            0 => RefreshMode::Relogin,
            1 => RefreshMode::KeepAlive,
            2 => RefreshMode::Lazy,
            _ => return Err(Error::invalid(format!("unknown refresh mode {mode}"))),
        };
        Ok(())
    })
}

/// Chooses password or sync-token sign-in (`bill_sign_in_kind`). Returns
/// BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_sign_in_kind(opts: *mut bill_options, kind: u32) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.sign_in = match kind {
            0 => SignInKind::Password,
            1 => SignInKind::SyncToken,
            _ => return Err(Error::invalid(format!("unknown sign-in kind {kind}"))),
        };
        Ok(())
    })
}

/// Signs in as an MFA-trusted device: v2 sends `mfaId` + `deviceId`, v3
/// `rememberMeId` + `device`. `remember_id` is `len` bytes (treated as a
/// secret, wiped; same rules as `bill_options_set_user_name`); `device` is
/// NUL-terminated UTF-8, 1 to 4096 bytes, no control characters.
/// `remember_id` NULL with `len` 0 clears both (`device` is then ignored).
/// Whether BILL accepted the trust is reported by `bill_session_trusted`.
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_mfa_trust(
    opts: *mut bill_options,
    remember_id: *const u8,
    len: usize,
    device: *const c_char,
) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        if remember_id.is_null() && len == 0 {
            o.mfa_remember_id = None;
            o.mfa_device = None;
            return Ok(());
        }
        let id = unsafe { secret_in(remember_id, len, "MFA remember id") }?;
        let dev = unsafe { str_in(device, "device", options::MAX_FIELD_LEN) }?;
        options::check_field("device", dev)?;
        o.mfa_remember_id = Some(id);
        o.mfa_device = Some(dev.to_owned());
        Ok(())
    })
}

/// Sets the largest reply body accepted (default 16 MiB; 1 KiB to 1 GiB).
/// Larger replies fail with BILL_ERR_RESPONSE_TOO_LARGE. Also caps request
/// bodies. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_max_response_bytes(opts: *mut bill_options, bytes: usize) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        if !(1024..=(1 << 30)).contains(&bytes) {
            return Err(Error::invalid("max response bytes must be between 1 KiB and 1 GiB"));
        }
        o.max_response_bytes = bytes;
        Ok(())
    })
}

/// Sets the client-side sign-in budget per devKey: `count` sign-ins per
/// window of `window_ms` (default 200 per 3,600,000 ms, BILL's limit).
/// Windows are aligned to the Unix epoch, like BILL's clock hours. Background
/// renewals may use 90% of it; the rest stays for `bill_login` and
/// `bill_renew`. After BDC_1144 nothing signs in for that devKey until the
/// next window. Shared by all sessions with the same devKey in the process.
/// `count` at least 1; `window_ms` 100 ms to 30 days. Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_sign_in_budget(
    opts: *mut bill_options,
    count: u32,
    window_ms: u64,
) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        if count == 0 {
            return Err(Error::invalid("sign-in budget must be at least 1"));
        }
        o.rate_window = ms_in_range(window_ms, "rate window", 100, MAX_MS)?;
        o.sign_in_budget = count;
        Ok(())
    })
}

/// Sets the most requests in flight per (devKey, organization) in this
/// process (default 3, BILL's limit; 1 to 64). Further requests queue in
/// arrival order. The first session for a (devKey, organization) fixes the
/// value. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_max_in_flight(opts: *mut bill_options, max: u32) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        if !(1..=64).contains(&max) {
            return Err(Error::invalid("max in flight must be between 1 and 64"));
        }
        o.max_in_flight = max;
        Ok(())
    })
}

/// Allows v2's `apiEndPoint` to point at `host` (NUL-terminated, over HTTPS
/// only). Without this, `apiEndPoint` is used only on the base URL's own
/// scheme, host and port, so the session never reaches a host the caller did
/// not configure. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_allow_api_endpoint_host(
    opts: *mut bill_options,
    host: *const c_char,
) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        let h = unsafe { str_in(host, "host", 255) }?;
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(Error::invalid("host must be a DNS name"));
        }
        o.api_endpoint_allow.push(h.to_ascii_lowercase());
        Ok(())
    })
}

struct CCallback {
    f: unsafe extern "C" fn(*mut c_void, bill_event, bill_status, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: the header requires the callback and user_data to be usable from any thread.
unsafe impl Send for CCallback {}
unsafe impl Sync for CCallback {}

impl CCallback {
    fn call(&self, ev: Event, err: Option<&Error>) {
        let event = match ev {
            Event::Renewed => bill_event::BILL_EVENT_RENEWED,
            Event::RenewFailed => bill_event::BILL_EVENT_RENEW_FAILED,
            Event::Expired => bill_event::BILL_EVENT_EXPIRED,
            Event::Closed => bill_event::BILL_EVENT_CLOSED,
            Event::KeptAlive => bill_event::BILL_EVENT_KEPT_ALIVE,
        };
        let status = err.map(|e| status_of(e.kind)).unwrap_or(BILL_OK);
        let detail = CString::new(err.map(|e| e.to_string()).unwrap_or_default().replace('\0', "")).unwrap_or_default();
        // SAFETY: the caller registered a valid function for this user_data.
        unsafe { (self.f)(self.user_data, event, status, detail.as_ptr()) };
    }
}

/// Registers `cb` to receive session events for sessions created from these
/// options (see `bill_event_fn` for the thread it runs on and what it may
/// call). `user_data` is passed back unchanged; it must stay valid until the
/// BILL_EVENT_CLOSED event of every such session. `cb` NULL removes the
/// callback. Returns BILL_OK or BILL_ERR_NULL_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_event_callback(
    opts: *mut bill_options,
    cb: bill_event_fn,
    user_data: *mut c_void,
) -> bill_status {
    guard(|| {
        let o = unsafe { options_mut(opts) }?;
        o.events = cb.map(|f| {
            let c = CCallback { f, user_data };
            Arc::new(move |ev: Event, err: Option<&Error>| c.call(ev, err)) as options::EventSink
        });
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Sessions.

/// Signs in synchronously with `opts` and starts keeping the session alive
/// on the library's single background thread (started with the first
/// session, stopped when the last one is freed).
///
/// On success `*out` receives a new session owned by the caller; free it
/// with `bill_session_free`. `opts` is only read and may be freed right
/// after. Thread-safe (the options must not be modified meanwhile).
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG; BILL_ERR_INVALID_ARG (missing
/// credentials, bad URL, unreadable CA file, margin not below idle timeout);
/// BILL_ERR_AUTH; BILL_ERR_RATE_LIMITED; BILL_ERR_NETWORK; BILL_ERR_TIMEOUT;
/// BILL_ERR_TLS; BILL_ERR_PROTOCOL; BILL_ERR_SERVER; BILL_ERR_API;
/// BILL_ERR_IN_CALLBACK. Details: `bill_last_error`.
#[no_mangle]
pub unsafe extern "C" fn bill_login(opts: *const bill_options, out: *mut *mut bill_session) -> bill_status {
    guard(|| {
        let o = unsafe { options_ref(opts) }?;
        let out = unsafe { out_ptr(out, "out") }?;
        let session = Session::login(o)?;
        *out = Box::into_raw(Box::new(bill_session { magic: SESSION_MAGIC, session }));
        Ok(())
    })
}

/// Copies the current session id into `buf` as NUL-terminated text and, if
/// `len` is not NULL, its length (without the NUL) into `*len`. Never waits
/// on the network or on a renewal: during a renewal it returns the old id,
/// which stays valid until the new one is installed. Never returns an id the
/// library knows is dead: it stops handing out an id shortly before the idle
/// timeout (1/8 of it, at most 1 s), since the library's record of the last
/// use can lag BILL's by a call's duration. Thread-safe; lock-free.
///
/// The id is a secret: wipe `buf` when done (`bill_wipe`).
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG (session); BILL_ERR_BUFFER_TOO_SMALL
/// with `*len` set to the size needed, NUL included (when `buf` is NULL or
/// `cap` is too small; nothing is written to `buf`); BILL_ERR_SESSION_EXPIRED
/// (idle past the timeout; `bill_renew` or `bill_call` signs in again);
/// BILL_ERR_CLOSED; BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_id(
    s: *const bill_session,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    // Hot path: a live session whose id fits. Anything else takes the slow path.
    let fast = catch_unwind(AssertUnwindSafe(|| {
        let sess = unsafe { live_session(s) }?;
        if buf.is_null() {
            return None;
        }
        sess.with_id_fast(|id| id.len() < cap && unsafe { copy_out(id.as_bytes(), buf, cap, len) }.is_ok())
    }));
    if matches!(fast, Ok(Some(true))) {
        return BILL_OK;
    }
    session_id_slow(s, buf, cap, len)
}

#[cold]
#[inline(never)]
fn session_id_slow(s: *const bill_session, buf: *mut c_char, cap: usize, len: *mut usize) -> bill_status {
    guard(|| {
        let s = unsafe { session_ref(s) }?;
        s.with_id(|id| unsafe { copy_out(id.as_bytes(), buf, cap, len) })?
    })
}

/// Records that the caller just used the session (for example after its own
/// HTTP call to BILL with this id), postponing renewal. O(1), lock-free,
/// allocation-free, no system call; safe from any thread at any rate.
///
/// Returns BILL_OK; BILL_ERR_SESSION_EXPIRED (the session was already idle
/// past the point where `bill_session_id` stops handing out its id: a touch
/// cannot revive it); BILL_ERR_NULL_ARG;
/// BILL_ERR_CLOSED; BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_touch(s: *mut bill_session) -> bill_status {
    // The hot path returns before any error value is built; every failure
    // goes through the slow path, which reports it.
    let fast = catch_unwind(AssertUnwindSafe(|| unsafe { live_session(s) }.is_some_and(Session::touch_fast)));
    if matches!(fast, Ok(true)) {
        return BILL_OK;
    }
    touch_slow(s)
}

#[cold]
#[inline(never)]
fn touch_slow(s: *mut bill_session) -> bill_status {
    guard(|| unsafe { session_ref(s) }?.touch())
}

/// Signs in again now and installs the new id, for callers whose own HTTP
/// call got BDC_1109. Single flight: threads calling at the same moment (and
/// `bill_call` recoveries) share one sign-in. Also the way out of the
/// EXPIRED and FAILED states. Blocks for at most about the request timeout.
/// Thread-safe.
///
/// Returns BILL_OK or the statuses of `bill_login`, plus BILL_ERR_CLOSED and
/// BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_renew(s: *mut bill_session) -> bill_status {
    guard(|| unsafe { session_ref(s) }?.renew())
}

/// Makes an authenticated BILL call with the session and returns BILL's reply.
///
/// v2: `method` NULL or "POST"; `path` the endpoint, such as "List/Vendor"
/// or "Crud/Read/Bill.json" (sent to `{base}/{path}.json` with the form
/// fields devKey, sessionId and data); `body` the `data` JSON (`body_len` 0
/// sends "{}"). v3: `method` GET, POST, PUT, PATCH or DELETE (NULL is
/// BILL_ERR_INVALID_ARG); `path` below `{base}/v3/`, such as
/// "vendors?max=20" or "/v3/vendors"; `body` JSON or empty; devKey and
/// sessionId go in headers. `path` is printable ASCII without spaces, '#',
/// backslashes, ".." or "://"; `body` is UTF-8, at most the reply limit
/// (`bill_options_set_max_response_bytes`); `body` may be NULL when
/// `body_len` is 0.
///
/// Waits in line when 3 requests are already in flight for the devKey and
/// organization; retries BDC_1322 with jittered backoff; on BDC_1109 (v3:
/// HTTP 401) signs in again (single flight) and retries once. A successful
/// call counts as use of the session. Non-idempotent calls are never retried
/// after a network failure or timeout.
///
/// On success `*out` receives the reply (HTTP status and body, owned by the
/// caller; free with `bill_response_free`). On a BILL error nothing is
/// written to `*out`; the status classifies it and `bill_last_error_code` /
/// `bill_last_error` carry BILL's code and message unchanged. Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG; BILL_ERR_INVALID_ARG (method, path or
/// body); BILL_ERR_SESSION_EXPIRED (still invalid after one renewal);
/// BILL_ERR_AUTH; BILL_ERR_MFA_REQUIRED; BILL_ERR_RATE_LIMITED; BILL_ERR_API;
/// BILL_ERR_NETWORK; BILL_ERR_TIMEOUT; BILL_ERR_TLS; BILL_ERR_PROTOCOL;
/// BILL_ERR_SERVER; BILL_ERR_RESPONSE_TOO_LARGE; BILL_ERR_CLOSED;
/// BILL_ERR_FORKED; BILL_ERR_IN_CALLBACK.
#[no_mangle]
pub unsafe extern "C" fn bill_call(
    s: *mut bill_session,
    method: *const c_char,
    path: *const c_char,
    body: *const u8,
    body_len: usize,
    out: *mut *mut bill_response,
) -> bill_status {
    guard(|| {
        let s = unsafe { session_ref(s) }?;
        let method = if method.is_null() { "" } else { unsafe { str_in(method, "method", 16) }? };
        let path = unsafe { str_in(path, "path", options::MAX_URL_LEN) }?;
        let body = unsafe { bytes_in(body, body_len, "body") }?;
        let out = unsafe { out_ptr(out, "out") }?;
        let r = s.call(method, path, body)?;
        *out =
            Box::into_raw(Box::new(bill_response { magic: RESPONSE_MAGIC, http_status: r.http_status, body: r.body }));
        Ok(())
    })
}

/// Signs out on the server (v2 Logout.json, v3 POST /v3/logout), stops
/// renewals and wipes the id. The session is closed afterwards even when the
/// server cannot be reached (the status says so); further calls return
/// BILL_ERR_CLOSED. Still free it with `bill_session_free`. Waits for a
/// renewal in progress. Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG; BILL_ERR_CLOSED (already closed);
/// BILL_ERR_NETWORK / BILL_ERR_TIMEOUT / BILL_ERR_TLS / BILL_ERR_SERVER /
/// BILL_ERR_PROTOCOL / BILL_ERR_API (the server did not confirm);
/// BILL_ERR_FORKED; BILL_ERR_IN_CALLBACK.
#[no_mangle]
pub unsafe extern "C" fn bill_logout(s: *mut bill_session) -> bill_status {
    guard(|| unsafe { session_ref(s) }?.logout())
}

/// Stops renewals, wipes the session's secrets and frees it, without
/// contacting BILL (the server-side session then idles out). NULL is ignored.
/// Must be called exactly once, after every other call on the session has
/// returned; using the session afterwards is undefined behaviour. If this was
/// the last session, waits for the background thread to exit (at most about
/// one request timeout), so the library can be unloaded. In a fork() child,
/// an inherited session is leaked instead (its parent's locks may be held).
#[no_mangle]
pub unsafe extern "C" fn bill_session_free(s: *mut bill_session) {
    let _ = guard(|| {
        if s.is_null() {
            return Ok(());
        }
        // SAFETY: the caller passes a live session exactly once.
        let live = unsafe { (*s).magic } == SESSION_MAGIC;
        if !live {
            return Err(Error::invalid("session is not a live bill_session (double free?)"));
        }
        let mut b = unsafe { Box::from_raw(s) };
        b.magic = DEAD_MAGIC;
        drop(b);
        Ok(())
    });
}

/// Writes the session's state (`bill_state`) to `*out`. Never blocks.
/// Thread-safe. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_state(s: *const bill_session, out: *mut bill_state) -> bill_status {
    guard(|| {
        let s = unsafe { session_ref(s) }?;
        let out = unsafe { out_ptr(out, "out") }?;
        *out = match s.state() {
            State::Active => bill_state::BILL_STATE_ACTIVE,
            State::Renewing => bill_state::BILL_STATE_RENEWING,
            State::Expired => bill_state::BILL_STATE_EXPIRED,
            State::Failed => bill_state::BILL_STATE_FAILED,
            State::Closed => bill_state::BILL_STATE_CLOSED,
        };
        Ok(())
    })
}

/// Writes whether BILL reported the current session as MFA-trusted (v3
/// `trusted`; v2 MFAStatus after signing in with `mfaId`/`deviceId`).
/// Thread-safe. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_trusted(s: *const bill_session, out: *mut bool) -> bill_status {
    guard(|| {
        let s = unsafe { session_ref(s) }?;
        let out = unsafe { out_ptr(out, "out") }?;
        *out = s.trusted();
        Ok(())
    })
}

/// Reports the most recent failure of a renewal (background or caller) on
/// this session: its status into `*status` and its detail (BILL code and
/// message, no secrets) into `buf` as for `bill_last_error`. BILL_OK and ""
/// when there was none. `status` may be NULL. Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG (session); BILL_ERR_BUFFER_TOO_SMALL
/// (with `*len` set; `*status` is still written); BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_error(
    s: *const bill_session,
    status: *mut bill_status,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    guard(|| {
        let s = unsafe { session_ref(s) }?;
        let e = s.last_error();
        if let Some(st) = unsafe { status.as_mut() } {
            *st = e.as_ref().map(|e| status_of(e.kind)).unwrap_or(BILL_OK);
        }
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        unsafe { copy_out(text.as_bytes(), buf, cap, len) }
    })
}

/// Copies the BILL code of the session's most recent renewal failure (for
/// example "BDC_1110") into `buf`, or "" when there was none or it came with
/// no BILL code. Buffer rules as for `bill_last_error`. Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG (session); BILL_ERR_BUFFER_TOO_SMALL
/// (with `*len` set); BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_error_code(
    s: *const bill_session,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    guard(|| {
        let s = unsafe { session_ref(s) }?;
        let code = s.last_error().and_then(|e| e.code).unwrap_or_default();
        unsafe { copy_out(code.as_bytes(), buf, cap, len) }
    })
}

// ---------------------------------------------------------------------------
// Responses.

/// Points `*data` at the reply body and writes its length to `*len`. The
/// bytes belong to `r` and stay valid until `bill_response_free(r)`. The
/// body is BILL's reply unchanged (v2: the whole envelope), not
/// NUL-terminated. Thread-safe for concurrent readers. Returns BILL_OK or
/// BILL_ERR_NULL_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_response_body(
    r: *const bill_response,
    data: *mut *const u8,
    len: *mut usize,
) -> bill_status {
    guard(|| {
        let r = unsafe { response_ref(r) }?;
        let data = unsafe { out_ptr(data, "data") }?;
        let len = unsafe { out_ptr(len, "len") }?;
        *data = r.body.as_ptr();
        *len = r.body.len();
        Ok(())
    })
}

/// Writes the reply's HTTP status to `*out`. Returns BILL_OK or BILL_ERR_NULL_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_response_http_status(r: *const bill_response, out: *mut u16) -> bill_status {
    guard(|| {
        let r = unsafe { response_ref(r) }?;
        *unsafe { out_ptr(out, "out") }? = r.http_status;
        Ok(())
    })
}

/// Wipes and frees a reply. NULL is ignored. Using `r` or its body afterwards
/// is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn bill_response_free(r: *mut bill_response) {
    let _ = guard(|| {
        if r.is_null() {
            return Ok(());
        }
        unsafe { response_ref(r) }?;
        // SAFETY: checked live; ownership returns to Rust exactly once.
        let mut b = unsafe { Box::from_raw(r) };
        b.magic = DEAD_MAGIC;
        drop(b);
        Ok(())
    });
}
