//! `bill_session`: exported functions only.

use std::ffi::c_char;

use super::boundary::{self, castable, copy_out, get, get_fast, out_ptr, str_in};
use super::call::{bill_call_options, call_options};
use super::options::bill_options;
use super::response::bill_response;
use super::status::bill_status;
use crate::error::{Error, ErrorKind};
use crate::fork;
use crate::options::{Event, MAX_URL_LEN};
use crate::session::{Session, State};

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
    /// BILL's idle timer was reset with a keepalive call (KEEPALIVE mode,
    /// or a RELOGIN renewal without sign-in budget); the id is unchanged.
    BILL_EVENT_KEPT_ALIVE = 5,
    /// Fleet mode: the shared store stopped answering. The session goes on
    /// with its own copy of the id and local limits; `status` is
    /// BILL_ERR_NETWORK and `detail` says why (no secrets). Delivered from
    /// the thread whose store operation failed.
    BILL_EVENT_STORE_DOWN = 6,
    /// Fleet mode: the shared store answers again; the session rejoins the
    /// fleet's session and limits. Delivered from the store's probe thread.
    BILL_EVENT_STORE_UP = 7,
}

pub(crate) fn event_of(ev: Event) -> bill_event {
    match ev {
        Event::Renewed => bill_event::BILL_EVENT_RENEWED,
        Event::RenewFailed => bill_event::BILL_EVENT_RENEW_FAILED,
        Event::Expired => bill_event::BILL_EVENT_EXPIRED,
        Event::Closed => bill_event::BILL_EVENT_CLOSED,
        Event::KeptAlive => bill_event::BILL_EVENT_KEPT_ALIVE,
        Event::StoreDown => bill_event::BILL_EVENT_STORE_DOWN,
        Event::StoreUp => bill_event::BILL_EVENT_STORE_UP,
    }
}

/// A signed-in session. Create with `bill_login`, free with `bill_session_free`.
pub struct bill_session(boundary::Handle<Session>);
castable!(bill_session, Session, 0x6269_6c6c_7365_7373, "session", "bill_login");

/// A live session made in this process.
unsafe fn session<'a>(s: *const bill_session) -> Result<&'a Session, Error> {
    // SAFETY: forwarded caller contract.
    let s = unsafe { get(s) }?;
    if !fork::is_current(s.epoch()) {
        return Err(Error::new(
            ErrorKind::Forked,
            "this session was created before fork(); sign in again in the child",
        ));
    }
    Ok(s)
}

/// `session` without building an error, for the hot paths.
#[inline(always)]
unsafe fn session_fast<'a>(s: *const bill_session) -> Option<&'a Session> {
    // SAFETY: forwarded caller contract.
    unsafe { get_fast(s) }.filter(|s| fork::is_current(s.epoch()))
}

/// Signs in synchronously with `opts` and starts keeping the session alive
/// on the library's single background thread (started with the first
/// session, stopped when the last one is freed).
///
/// On success `*out` receives a new session owned by the caller; free it
/// with `bill_session_free`. `opts` is only read and may be freed right
/// after. Thread-safe (the options must not be modified meanwhile).
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG; BILL_ERR_INVALID_ARG (missing
/// credentials, bad URL, a CA file that is not a readable regular file of
/// at most 1 MiB with certificates, margin not below idle timeout, options
/// handle not live); BILL_ERR_AUTH (refused credentials, devKey or
/// organization; also BDC_1109 or HTTP 401 at sign-in);
/// BILL_ERR_MFA_REQUIRED (BDC_1361); BILL_ERR_RATE_LIMITED;
/// BILL_ERR_NETWORK; BILL_ERR_TIMEOUT; BILL_ERR_TLS; BILL_ERR_PROTOCOL;
/// BILL_ERR_SERVER; BILL_ERR_RESPONSE_TOO_LARGE; BILL_ERR_API;
/// BILL_ERR_IN_CALLBACK. Details: `bill_last_error`.
#[no_mangle]
pub unsafe extern "C" fn bill_login(opts: *const bill_options, out: *mut *mut bill_session) -> bill_status {
    unsafe { bill_login_with(opts, std::ptr::null(), out) }
}

/// Copies the current session id into `buf` as NUL-terminated text and, if
/// `len` is not NULL, its length (without the NUL) into `*len`. Up to 7
/// bytes after the NUL (never beyond `cap`) may be zeroed too. Never waits
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
/// `cap` is too small; no part of the id is written to `buf`); BILL_ERR_SESSION_EXPIRED
/// (idle past the timeout; `bill_renew` or `bill_call` signs in again);
/// BILL_ERR_CLOSED; BILL_ERR_FORKED; BILL_ERR_INVALID_ARG (a handle that is
/// not live).
#[no_mangle]
pub unsafe extern "C" fn bill_session_id(
    s: *const bill_session,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    boundary::status(|| {
        // Hot path: a live session whose id fits; it builds no error value.
        if let Some(sess) = unsafe { session_fast(s) }.filter(|_| !buf.is_null()) {
            // SAFETY: buf is non-null and the caller promises cap writable bytes.
            if let Some(n) = unsafe { sess.copy_id_fast(buf.cast(), cap) } {
                if !len.is_null() {
                    // SAFETY: caller-provided out-pointer.
                    unsafe { *len = n };
                }
                return Ok(());
            }
        }
        unsafe { session(s) }?.with_id(|id| unsafe { copy_out(id.as_bytes(), buf, cap, len) })?
    })
}

/// Records that the caller used the session (after its own HTTP call to
/// BILL with this id), postponing renewal. O(1), lock-free, allocation-free,
/// no system call; safe from any thread at any rate.
///
/// BILL starts its idle timer when it receives a request, so the use is
/// counted from this thread's previous `bill_session_id`,
/// `bill_session_auth_headers` or `bill_touch` of this session, which came
/// before the request it reports: however slow your call was, the library's
/// record is never later than BILL's. Read the id (or touch) on the thread
/// that sends, right before sending; when another thread sent the request,
/// use `bill_touch_sent` instead (without an earlier read on this thread the
/// use counts from now).
///
/// Returns BILL_OK; BILL_ERR_SESSION_EXPIRED (the session was already idle
/// past the point where `bill_session_id` stops handing out its id: a touch
/// cannot revive it); BILL_ERR_NULL_ARG; BILL_ERR_CLOSED; BILL_ERR_FORKED;
/// BILL_ERR_INVALID_ARG (a handle that is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_touch(s: *mut bill_session) -> bill_status {
    boundary::status(|| {
        // The hot path returns before any error value is built.
        if unsafe { session_fast(s) }.is_some_and(Session::touch_fast) {
            return Ok(());
        }
        unsafe { session(s) }?.touch()
    })
}

/// Records a use of the session whose request was sent `ago_ms`
/// milliseconds ago, for requests sent from another thread than the one
/// that read the id (`bill_touch` counts from this thread's last id read or
/// touch, which such a request does not follow). O(1), lock-free,
/// allocation-free. Thread-safe.
///
/// Returns the statuses of `bill_touch`.
#[no_mangle]
pub unsafe extern "C" fn bill_touch_sent(s: *mut bill_session, ago_ms: u32) -> bill_status {
    boundary::status(|| unsafe { session(s) }?.touch_sent(std::time::Duration::from_millis(ago_ms.into())))
}

/// Copies the headers a v3 request of the caller's own needs into `buf`:
/// "devKey: <devKey>\r\nsessionId: <id>\r\n", NUL-terminated, and its length
/// (without the NUL) into `*len` if `len` is not NULL. For an HTTP client of
/// your own, so that you need not keep the devKey. Same rules as
/// `bill_session_id`: never waits on the network, never returns an id the
/// library knows is dead, and counts as an id read for `bill_touch`.
/// Thread-safe; lock-free.
///
/// The text is secret material (the devKey and the session id): wipe `buf`
/// when done (`bill_wipe`), and never log it.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG (session); BILL_ERR_BUFFER_TOO_SMALL
/// with `*len` set to the size needed, NUL included (nothing is written to
/// `buf`); BILL_ERR_INVALID_ARG (a v2 session, whose devKey and sessionId go
/// in the form body; or a handle that is not live); BILL_ERR_SESSION_EXPIRED;
/// BILL_ERR_CLOSED; BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_auth_headers(
    s: *const bill_session,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    boundary::status(|| {
        unsafe { session(s) }?.with_auth_headers(|dev_key, id| {
            let mut text = zeroize::Zeroizing::new(String::with_capacity(dev_key.len() + id.len() + 24));
            text.push_str("devKey: ");
            text.push_str(dev_key);
            text.push_str("\r\nsessionId: ");
            text.push_str(id);
            text.push_str("\r\n");
            unsafe { copy_out(text.as_bytes(), buf, cap, len) }
        })?
    })
}

/// Signs in again now and installs the new id, for callers whose own HTTP
/// call got BDC_1109. Single flight: threads calling at the same moment (and
/// `bill_call` recoveries) share one sign-in. Also the way out of the
/// EXPIRED and FAILED states. Blocks for at most about the request timeout.
/// Thread-safe.
///
/// Returns BILL_OK or the statuses of `bill_login` (BILL_ERR_MFA_REQUIRED
/// included), plus BILL_ERR_CLOSED and BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_renew(s: *mut bill_session) -> bill_status {
    unsafe { bill_renew_with(s, std::ptr::null()) }
}

/// `bill_renew` with per-call options `o` (NULL: the defaults): a shorter
/// deadline and a cancellation handle. Returns the statuses of `bill_renew`,
/// plus BILL_ERR_CANCELLED and BILL_ERR_INVALID_ARG for options that are not
/// live.
#[no_mangle]
pub unsafe extern "C" fn bill_renew_with(s: *mut bill_session, o: *const bill_call_options) -> bill_status {
    boundary::status(|| unsafe { session(s) }?.renew_with(unsafe { call_options(o) }?))
}

/// `bill_login` with per-call options `o` (NULL: the defaults): a shorter
/// deadline and a cancellation handle. Returns the statuses of
/// `bill_login`, plus BILL_ERR_CANCELLED.
#[no_mangle]
pub unsafe extern "C" fn bill_login_with(
    opts: *const bill_options,
    o: *const bill_call_options,
    out: *mut *mut bill_session,
) -> bill_status {
    boundary::status(|| {
        let opts = unsafe { get(opts) }?;
        let call = unsafe { call_options(o) }?;
        let out = unsafe { out_ptr(out, "out") }?;
        *out = boundary::into_raw(Session::login_with(opts, call)?);
        Ok(())
    })
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
/// `bill_last_error` carry BILL's code and message, with secrets redacted.
/// Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG; BILL_ERR_INVALID_ARG (method, path,
/// body, or a handle that is not live); BILL_ERR_SESSION_EXPIRED (still
/// invalid after one renewal); BILL_ERR_AUTH; BILL_ERR_MFA_REQUIRED;
/// BILL_ERR_RATE_LIMITED; BILL_ERR_API; BILL_ERR_NETWORK; BILL_ERR_TIMEOUT;
/// BILL_ERR_TLS; BILL_ERR_PROTOCOL; BILL_ERR_SERVER;
/// BILL_ERR_RESPONSE_TOO_LARGE; BILL_ERR_CLOSED; BILL_ERR_FORKED;
/// BILL_ERR_IN_CALLBACK.
#[no_mangle]
pub unsafe extern "C" fn bill_call(
    s: *mut bill_session,
    method: *const c_char,
    path: *const c_char,
    body: *const u8,
    body_len: usize,
    out: *mut *mut bill_response,
) -> bill_status {
    unsafe { bill_call_with(s, method, path, body, body_len, std::ptr::null(), out) }
}

/// `bill_call` with per-call options `o` (NULL: the defaults): a deadline
/// for the whole call that can only shorten the session's request timeout,
/// and a cancellation handle that aborts it from any thread
/// (`bill_cancel_trigger`). Everything else as for `bill_call`. Thread-safe.
///
/// Returns the statuses of `bill_call`, plus BILL_ERR_CANCELLED (the handle
/// was triggered; the session is unharmed) and BILL_ERR_INVALID_ARG for
/// options that are not live.
#[no_mangle]
pub unsafe extern "C" fn bill_call_with(
    s: *mut bill_session,
    method: *const c_char,
    path: *const c_char,
    body: *const u8,
    body_len: usize,
    o: *const bill_call_options,
    out: *mut *mut bill_response,
) -> bill_status {
    boundary::status(|| {
        let s = unsafe { session(s) }?;
        let call = unsafe { call_options(o) }?;
        let method = unsafe { boundary::opt_str_in(method, "method", 16) }?.unwrap_or("");
        let path = unsafe { str_in(path, "path", MAX_URL_LEN) }?;
        let body = unsafe { boundary::bytes_in(body, body_len, "body", usize::MAX) }?;
        let out = unsafe { out_ptr(out, "out") }?;
        *out = boundary::into_raw(s.call_with(method, path, body, call)?);
        Ok(())
    })
}

/// Signs out on the server (v2 Logout.json, v3 POST /v3/logout), stops
/// renewals and wipes the id. The session is closed afterwards even when the
/// server cannot be reached (the status says so); further calls return
/// BILL_ERR_CLOSED. Still free it with `bill_session_free`. Waits for a
/// renewal in progress. Thread-safe.
///
/// Returns BILL_OK (also when BILL says the session had already ended);
/// BILL_ERR_NULL_ARG; BILL_ERR_INVALID_ARG (a handle that is not live);
/// BILL_ERR_CLOSED (already closed); BILL_ERR_NETWORK / BILL_ERR_TIMEOUT /
/// BILL_ERR_TLS / BILL_ERR_SERVER / BILL_ERR_PROTOCOL /
/// BILL_ERR_RESPONSE_TOO_LARGE / BILL_ERR_RATE_LIMITED / BILL_ERR_AUTH /
/// BILL_ERR_MFA_REQUIRED / BILL_ERR_API (the server did not confirm);
/// BILL_ERR_FORKED; BILL_ERR_IN_CALLBACK.
#[no_mangle]
pub unsafe extern "C" fn bill_logout(s: *mut bill_session) -> bill_status {
    boundary::status(|| unsafe { session(s) }?.logout())
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
    let _ = boundary::status(|| unsafe { boundary::free(s) });
}

/// Writes the session's state (`bill_state`) to `*out`. Never blocks.
/// Thread-safe. Returns BILL_OK, BILL_ERR_NULL_ARG, BILL_ERR_INVALID_ARG (a
/// handle that is not live) or BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_state(s: *const bill_session, out: *mut bill_state) -> bill_status {
    boundary::status(|| {
        let s = unsafe { session(s) }?;
        *unsafe { out_ptr(out, "out") }? = match s.state() {
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
/// Thread-safe. Returns BILL_OK, BILL_ERR_NULL_ARG, BILL_ERR_INVALID_ARG (a
/// handle that is not live) or BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_trusted(s: *const bill_session, out: *mut bool) -> bill_status {
    boundary::status(|| {
        let s = unsafe { session(s) }?;
        *unsafe { out_ptr(out, "out") }? = s.trusted();
        Ok(())
    })
}

/// Reports the most recent failure of a renewal (background or caller) on
/// this session: its status into `*status` and its detail (BILL code and
/// message, no secrets) into `buf` as for `bill_last_error`. BILL_OK and ""
/// when there was none. `status` may be NULL. Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG (session); BILL_ERR_INVALID_ARG (a
/// handle that is not live); BILL_ERR_BUFFER_TOO_SMALL (with `*len` set;
/// `*status` is still written); BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_error(
    s: *const bill_session,
    status: *mut bill_status,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    boundary::status(|| {
        let e = unsafe { session(s) }?.last_error();
        if let Some(st) = unsafe { status.as_mut() } {
            *st = e.as_ref().map_or(bill_status::BILL_OK, |e| bill_status::from(e.kind));
        }
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        unsafe { copy_out(text.as_bytes(), buf, cap, len) }
    })
}

/// Copies the BILL code of the session's most recent renewal failure (for
/// example "BDC_1110") into `buf`, or "" when there was none or it came with
/// no BILL code (codes not of BILL's shape are withheld). Buffer rules as
/// for `bill_last_error`. Thread-safe.
///
/// Returns BILL_OK; BILL_ERR_NULL_ARG (session); BILL_ERR_INVALID_ARG (a
/// handle that is not live); BILL_ERR_BUFFER_TOO_SMALL (with `*len` set);
/// BILL_ERR_FORKED.
#[no_mangle]
pub unsafe extern "C" fn bill_session_error_code(
    s: *const bill_session,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> bill_status {
    boundary::status(|| {
        let code = unsafe { session(s) }?.last_error().and_then(|e| e.code).unwrap_or_default();
        unsafe { copy_out(code.as_bytes(), buf, cap, len) }
    })
}
