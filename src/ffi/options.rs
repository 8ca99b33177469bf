//! `bill_options`: exported functions only. Each converts its C arguments
//! and calls the validated setter in `crate::options`, which owns the rules.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use strum::FromRepr;

use super::boundary::{self, castable, get_mut, opt_str_in, str_in};
use super::session::{bill_event, event_of};
use super::status::bill_status;
use crate::error::Error;
use crate::options::{
    self, ApiVersion, Environment, Event, EventSink, Options, RefreshMode, SignInKind, MAX_FIELD_LEN, MAX_URL_LEN,
};

/// BILL API versions, for `bill_options_set_api_version`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromRepr)]
pub enum bill_api {
    /// v2: form-encoded `POST {base}/Login.json` etc.
    BILL_API_V2 = 2,
    /// v3: JSON `POST {base}/v3/login`, `devKey`/`sessionId` headers (the default).
    BILL_API_V3 = 3,
}

/// Environments, for `bill_options_set_environment`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromRepr)]
pub enum bill_environment {
    /// api.bill.com / gateway.prod.bill.com (the default).
    BILL_ENV_PRODUCTION = 0,
    /// api-stage.bill.com / gateway.stage.bill.com.
    BILL_ENV_SANDBOX = 1,
}

/// What happens when a session nears its idle timeout, for `bill_options_set_refresh_mode`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromRepr)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromRepr)]
pub enum bill_sign_in_kind {
    /// userName and password (the default; idle timeout 35 minutes).
    BILL_SIGN_IN_PASSWORD = 0,
    /// AP & AR sync token: token name as userName, token value as password
    /// (idle timeout 48 hours unless set).
    BILL_SIGN_IN_SYNC_TOKEN = 1,
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

/// Options for `bill_login`. Create with `bill_options_new`, free with `bill_options_free`.
pub struct bill_options(boundary::Handle<Options>);
castable!(bill_options, Options, 0x6269_6c6c_6f70_7473, "options", "bill_options_new");

/// An unknown enum value from C.
fn unknown(what: &str, v: u32) -> Error {
    Error::invalid(format!("unknown {what} {v}"))
}

/// Runs `f` on the live options behind `opts`.
fn with_opts(opts: *mut bill_options, f: impl FnOnce(&mut Options) -> Result<(), Error>) -> bill_status {
    // SAFETY: the header requires a live handle not modified concurrently.
    boundary::status(|| f(unsafe { get_mut(opts) }?))
}

fn millis(v: u64) -> Duration {
    Duration::from_millis(v)
}

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
    boundary::status(|| {
        // The out-pointer first: a handle made before a NULL check would leak.
        let out = unsafe { boundary::out_ptr(out, "out") }?;
        *out = boundary::into_raw(Options::default());
        Ok(())
    })
}

/// Wipes the secrets in `opts` and frees it. NULL is ignored. Sessions made
/// from these options keep their own copy and are unaffected. Using `opts`
/// afterwards is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn bill_options_free(opts: *mut bill_options) {
    let _ = boundary::status(|| unsafe { boundary::free(opts) });
}

/// Sets the BILL userName (or the sync token's name). `value` is `len` bytes
/// of UTF-8, not NUL-terminated, 1 to 4096 bytes, no control characters. The
/// bytes are copied into wiped storage; the caller may wipe its copy (see
/// `bill_wipe`) right after. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG (also for a handle that is not live, here and in
/// every other options function).
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_user_name(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
) -> bill_status {
    with_opts(opts, |o| o.set_user_name(unsafe { boundary::bytes_in(value, len, "userName", MAX_FIELD_LEN) }?))
}

/// Sets the password (or the sync token's value). Same rules as
/// `bill_options_set_user_name`.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_password(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
) -> bill_status {
    with_opts(opts, |o| o.set_password(unsafe { boundary::bytes_in(value, len, "password", MAX_FIELD_LEN) }?))
}

/// Sets the developer key (devKey). Same rules as `bill_options_set_user_name`.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_dev_key(
    opts: *mut bill_options,
    value: *const u8,
    len: usize,
) -> bill_status {
    with_opts(opts, |o| o.set_dev_key(unsafe { boundary::bytes_in(value, len, "devKey", MAX_FIELD_LEN) }?))
}

/// Sets the organization id (v2 `orgId`, v3 `organizationId`): a
/// NUL-terminated UTF-8 string of 1 to 4096 bytes. Copied. Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_org_id(opts: *mut bill_options, org_id: *const c_char) -> bill_status {
    with_opts(opts, |o| o.set_org_id(unsafe { str_in(org_id, "orgId", MAX_FIELD_LEN) }?))
}

/// Chooses the API: BILL_API_V2 or BILL_API_V3 (`bill_api`). Also picks the
/// default base URL unless one was set. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG (unknown value).
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_api_version(opts: *mut bill_options, version: u32) -> bill_status {
    with_opts(opts, |o| {
        o.api = match bill_api::from_repr(version) {
            Some(bill_api::BILL_API_V2) => ApiVersion::V2,
            Some(bill_api::BILL_API_V3) => ApiVersion::V3,
            None => return Err(unknown("API version (use BILL_API_V2 or BILL_API_V3)", version)),
        };
        Ok(())
    })
}

/// Chooses production or sandbox (`bill_environment`) for the default base
/// URL. Ignored once a base URL is set. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_environment(opts: *mut bill_options, env: u32) -> bill_status {
    with_opts(opts, |o| {
        o.environment = match bill_environment::from_repr(env) {
            Some(bill_environment::BILL_ENV_PRODUCTION) => Environment::Production,
            Some(bill_environment::BILL_ENV_SANDBOX) => Environment::Sandbox,
            None => return Err(unknown("environment", env)),
        };
        Ok(())
    })
}

/// Overrides the base URL, for example "https://api-stage.bill.com/api/v2"
/// (v2) or "https://gateway.stage.bill.com/connect" (v3; calls go to
/// `{base}/v3/...`). Must be a valid URL to a strict (WHATWG) parser, with
/// https://, except http:// to a loopback host (localhost, 127.0.0.0/8,
/// ::1); a port, if any, from 1 to 65535; no user info, query or fragment.
/// NULL restores the default. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_base_url(opts: *mut bill_options, url: *const c_char) -> bill_status {
    with_opts(opts, |o| o.set_base_url(unsafe { opt_str_in(url, "base URL", MAX_URL_LEN) }?))
}

/// Sets how long BILL keeps an unused session (default 35 minutes; 48 hours
/// for sync-token sign-in). 0 restores the default. Otherwise 100 ms to 30
/// days. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_idle_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    with_opts(opts, |o| o.set_idle_timeout((ms != 0).then(|| millis(ms))))
}

/// Sets how long before the idle timeout a renewal happens (default 60,000
/// ms, so renewal at 34 minutes idle). 0 to 30 days; must be shorter than the
/// idle timeout (checked by `bill_login`). Returns BILL_OK, BILL_ERR_NULL_ARG
/// or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_renew_margin_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    with_opts(opts, |o| o.set_renew_margin(millis(ms)))
}

/// Sets the TCP/TLS connect timeout (default 10,000 ms; 1 ms to 30 days).
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_connect_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    with_opts(opts, |o| o.set_connect_timeout(millis(ms)))
}

/// Sets the limit for one whole request, connect to last byte, including
/// waiting for a free request slot (default 30,000 ms; 1 ms to 30 days).
/// Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_request_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    with_opts(opts, |o| o.set_request_timeout(millis(ms)))
}

/// Trusts only the PEM certificates in the file at `path` (NUL-terminated
/// UTF-8, 1 to 4096 bytes) instead of the built-in Mozilla roots. The file is
/// read at `bill_login`, which fails with BILL_ERR_INVALID_ARG if it is not a
/// regular file, is larger than 1 MiB, cannot be read or holds no
/// certificate. NULL restores the built-in roots. Returns BILL_OK,
/// BILL_ERR_NULL_ARG (options) or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_ca_file(opts: *mut bill_options, path: *const c_char) -> bill_status {
    with_opts(opts, |o| o.set_ca_file(unsafe { opt_str_in(path, "CA file path", options::MAX_PATH_LEN) }?))
}

/// Fleet mode: every process (on any host) whose options name the same
/// Redis and the same identity (base URL, API version, devKey, organization
/// and userName) shares one BILL session and BILL's limits: one sign-in for
/// the fleet, renewal only when the whole fleet left the session idle, at
/// most the in-flight limit of requests across the fleet, one sign-in
/// budget and one BDC_1144 pause per devKey. See the README, "Many processes
/// and hosts".
///
/// `url` (NUL-terminated, at most 2048 bytes) is
/// `redis://[user:password@]host:port[/db]`, `rediss://...` for TLS (which
/// trusts the CA file set with `bill_options_set_ca_file`, else the
/// built-in roots), or `unix:///path/to/redis.sock`. The URL is a secret:
/// it is copied, wiped when the options are freed, and never appears in
/// error text. Only the syntax is checked here; Redis is first contacted by
/// `bill_login`, and a Redis that cannot be reached never fails a sign-in
/// (the session falls back to local limits and reports BILL_EVENT_STORE_DOWN).
/// NULL turns fleet mode off (the default). Thread-compatible like every
/// options setter. Returns BILL_OK, BILL_ERR_NULL_ARG (options) or
/// BILL_ERR_INVALID_ARG (a malformed URL; the message names the part, never
/// quotes the URL).
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_shared_store(opts: *mut bill_options, url: *const c_char) -> bill_status {
    with_opts(opts, |o| {
        let url = unsafe { opt_str_in(url, "shared store URL", MAX_URL_LEN) }?;
        o.set_shared_store(url.map(str::as_bytes))
    })
}

/// Sets the prefix of every Redis key and channel fleet mode uses (default
/// "bill:"), so several applications can share one Redis: 1 to 64
/// printable ASCII characters without spaces or braces. NULL restores the
/// default. Returns BILL_OK, BILL_ERR_NULL_ARG (options) or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_store_key_prefix(
    opts: *mut bill_options,
    prefix: *const c_char,
) -> bill_status {
    with_opts(opts, |o| o.set_store_key_prefix(unsafe { opt_str_in(prefix, "store key prefix", 64) }?))
}

/// Sets the most one Redis operation may take (connect, read or write;
/// default 250 ms, 1 ms to 60,000 ms). A `bill_call` waits about this long
/// for an unresponsive Redis (at most twice it, when a new connection must
/// be made: once to connect, once for the reply) before it falls back to
/// local limits;
/// waiting for a fleet-wide request slot that other processes hold is
/// bounded by the call's own timeout instead. `bill_session_id` and
/// `bill_touch` never wait on Redis. Returns BILL_OK, BILL_ERR_NULL_ARG or
/// BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_store_timeout_ms(opts: *mut bill_options, ms: u64) -> bill_status {
    with_opts(opts, |o| o.set_store_timeout(millis(ms)))
}

/// Chooses the refresh mode (`bill_refresh_mode`). Returns BILL_OK,
/// BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_refresh_mode(opts: *mut bill_options, mode: u32) -> bill_status {
    with_opts(opts, |o| {
        o.refresh = match bill_refresh_mode::from_repr(mode) {
            Some(bill_refresh_mode::BILL_REFRESH_RELOGIN) => RefreshMode::Relogin,
            Some(bill_refresh_mode::BILL_REFRESH_KEEPALIVE) => RefreshMode::KeepAlive,
            Some(bill_refresh_mode::BILL_REFRESH_LAZY) => RefreshMode::Lazy,
            None => return Err(unknown("refresh mode", mode)),
        };
        Ok(())
    })
}

/// Chooses password or sync-token sign-in (`bill_sign_in_kind`). Returns
/// BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_sign_in_kind(opts: *mut bill_options, kind: u32) -> bill_status {
    with_opts(opts, |o| {
        o.sign_in = match bill_sign_in_kind::from_repr(kind) {
            Some(bill_sign_in_kind::BILL_SIGN_IN_PASSWORD) => SignInKind::Password,
            Some(bill_sign_in_kind::BILL_SIGN_IN_SYNC_TOKEN) => SignInKind::SyncToken,
            None => return Err(unknown("sign-in kind", kind)),
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
    with_opts(opts, |o| {
        if remember_id.is_null() && len == 0 {
            return o.set_mfa_trust(None);
        }
        // The id is checked before the device, so a bad id is reported first.
        let id = options::secret_from("MFA remember id", unsafe {
            boundary::bytes_in(remember_id, len, "MFA remember id", MAX_FIELD_LEN)
        }?)?;
        let dev = unsafe { str_in(device, "device", MAX_FIELD_LEN) }?;
        o.set_mfa_trust(Some((id.expose().as_bytes(), dev)))
    })
}

/// Sets the largest reply body accepted (default 16 MiB; 1 KiB to 1 GiB).
/// Larger replies fail with BILL_ERR_RESPONSE_TOO_LARGE. Also caps request
/// bodies. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_max_response_bytes(opts: *mut bill_options, bytes: usize) -> bill_status {
    with_opts(opts, |o| o.set_max_response_bytes(bytes))
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
    with_opts(opts, |o| o.set_sign_in_budget(count, millis(window_ms)))
}

/// Sets the most requests in flight per (devKey, organization) in this
/// process (default 3, BILL's limit; 1 to 64). Further requests queue in
/// arrival order. The first session for a (devKey, organization) fixes the
/// value. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG.
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_max_in_flight(opts: *mut bill_options, max: u32) -> bill_status {
    with_opts(opts, |o| o.set_max_in_flight(max))
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
    with_opts(opts, |o| o.allow_api_endpoint_host(unsafe { str_in(host, "host", options::MAX_HOST_LEN) }?))
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
        let status = err.map_or(bill_status::BILL_OK, |e| bill_status::from(e.kind));
        let detail = std::ffi::CString::new(err.map(|e| e.to_string()).unwrap_or_default().replace('\0', ""))
            .unwrap_or_default();
        // SAFETY: the caller registered a valid function for this user_data.
        unsafe { (self.f)(self.user_data, event_of(ev), status, detail.as_ptr()) };
    }
}

/// Registers `cb` to receive session events for sessions created from these
/// options (see `bill_event_fn` for the thread it runs on and what it may
/// call). `user_data` is passed back unchanged; it must stay valid until the
/// BILL_EVENT_CLOSED event of every such session. `cb` NULL removes the
/// callback. Returns BILL_OK, BILL_ERR_NULL_ARG or BILL_ERR_INVALID_ARG (a
/// handle that is not live).
#[no_mangle]
pub unsafe extern "C" fn bill_options_set_event_callback(
    opts: *mut bill_options,
    cb: bill_event_fn,
    user_data: *mut c_void,
) -> bill_status {
    with_opts(opts, |o| {
        o.events = cb.map(|f| {
            let c = CCallback { f, user_data };
            Arc::new(move |ev: Event, err: Option<&Error>| c.call(ev, err)) as EventSink
        });
        Ok(())
    })
}
