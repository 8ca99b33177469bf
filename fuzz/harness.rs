//! Checks shared by the cargo-fuzz targets (fuzz/fuzz_targets/*.rs) and the
//! bounded property run in `make test` (tests/fuzz_props.rs includes this file
//! with `#[path]`). Every function takes raw bytes, runs them through libbill
//! and panics when an invariant breaks; libFuzzer and proptest both report a
//! panic as a finding.
//!
//! Reply parsers: no panic, and the outcome agrees with what BILL's formats
//! and the header promise (status classes, error kinds, bounded printable
//! messages, a well-formed session id on success).
//!
//! Option setters: every C setter is driven with arbitrary bytes, lengths,
//! NULLs and enum values and must return exactly what a reference model of
//! the documented rules (include/bill.h) says, never BILL_ERR_PANIC.

#![allow(dead_code)]

use std::ffi::{c_char, c_void};

use bill::error::ErrorKind;
use bill::ffi::*;
use bill::wire::{v2, v3, MAX_SESSION_ID};
use bill::Error;

/// Content types a reply may carry (index chosen by the input).
pub const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json;charset=UTF-8"),
    Some("application/json"),
    Some("text/html"),
    None,
    Some("APPLICATION/JSON; charset=utf-8"),
    Some("text/plain"),
];

/// HTTP statuses tried on every body: BILL's usual ones and odd ones.
pub const STATUSES: [u16; 13] = [200, 201, 204, 299, 300, 400, 401, 403, 404, 429, 500, 503, 999];

/// Longest error message a parser may produce. BILL's own messages are cut
/// to 512 characters; libbill's wrappers add a little.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Two defects in src/wire/v2.rs `open()` found by this harness and reported
/// (src/wire is not ours to change); while this is true, exactly those two
/// checks are skipped, nothing else. The regression tests
/// `v2_non_200_error_keeps_http_status` and `v2_envelope_error_message_is_bounded`
/// in tests/fuzz_props.rs are `#[ignore]`d until the fix; when it lands, set
/// this to false and remove those ignores.
///
/// 1. HTTP != 200 with an envelope whose `response_status` is not 0 but whose
///    `response_data` has no usable error (e.g. body `[1]` or
///    `{"response_status":1}` with HTTP 404): `envelope_error(..)?` returns the
///    Protocol error early, without `.with_http_status(status)`.
/// 2. HTTP 200 with a body that is not an envelope: the message embeds serde's
///    error, which quotes the server's text without a bound
///    (`invalid type: string "zzz…"`), so a reply can make an error message of
///    any size (up to the 16 MiB reply limit).
pub const WAIVE_REPORTED_V2_DEFECTS: bool = false;

/// The Protocol messages of v2 `envelope_error` (defect 1 above).
fn is_envelope_error_message(m: &str) -> bool {
    m.starts_with("v2 error reply has ")
}

fn is_json_ct(ct: Option<&str>) -> bool {
    ct.is_some_and(|c| c.to_ascii_lowercase().contains("json"))
}

/// What every error out of a reply parser must look like.
fn check_error(what: &str, e: &Error, status: u16) {
    use ErrorKind::*;
    assert!(
        matches!(e.kind, Protocol | Server | Auth | SessionExpired | RateLimited | MfaRequired | Api),
        "{what}: unexpected kind {:?} for HTTP {status}",
        e.kind
    );
    assert!(!e.message.chars().any(char::is_control), "{what}: control character in message {:?}", e.message);
    let waived = WAIVE_REPORTED_V2_DEFECTS && e.message.starts_with("v2 reply is not a BILL envelope: ");
    assert!(
        waived || e.message.len() <= MAX_MESSAGE_BYTES,
        "{what}: error message of {} bytes for HTTP {status} (server text must be bounded)",
        e.message.len()
    );
    if let Some(code) = &e.code {
        assert!(!code.is_empty(), "{what}: empty BILL code");
        assert!(code.chars().count() <= 32 && !code.chars().any(char::is_control), "{what}: bad code {code:?}");
        assert!(e.kind != Protocol, "{what}: a BILL code ({code}) classified as a protocol error");
    }
    // Display must not panic either.
    let _ = e.to_string();
}

fn check_id(what: &str, id: &str) {
    assert!(!id.is_empty() && id.len() <= MAX_SESSION_ID, "{what}: session id of {} bytes", id.len());
    assert!(!id.chars().any(char::is_control), "{what}: control character in session id");
}

/// v2 `Login.json` and the reply check of every other v2 call, on one body.
pub fn v2_reply(status: u16, ct: Option<&str>, body: &[u8]) {
    let login = v2::parse_login(status, ct, body);
    let reply = v2::check_reply(status, ct, body);
    match &login {
        Ok(r) => {
            assert_eq!(status, 200, "v2 login accepted HTTP {status}");
            assert!(is_json_ct(ct), "v2 login accepted content type {ct:?}");
            check_id("v2 login", r.session_id.expose());
            assert!(reply.is_ok(), "v2: a login success is not a call success");
        }
        Err(e) => check_error("v2 login", e, status),
    }
    match &reply {
        Ok(()) => {
            assert_eq!(status, 200, "v2 call accepted HTTP {status}");
            assert!(is_json_ct(ct), "v2 call accepted content type {ct:?}");
        }
        Err(e) => {
            check_error("v2 call", e, status);
            if status >= 500 {
                assert_eq!(e.kind, ErrorKind::Server, "v2 HTTP {status} is a server error");
                assert_eq!(e.http_status, Some(status));
            }
            if status != 200 && !(WAIVE_REPORTED_V2_DEFECTS && is_envelope_error_message(&e.message)) {
                assert_eq!(e.http_status, Some(status), "v2 error for HTTP {status} lost the status");
            }
        }
    }
    // Both see the same envelope: a BILL error code means the same thing to both,
    // except for the context-dependent sign-in codes.
    if let (Err(a), Err(b)) = (&login, &reply) {
        if a.code.is_some() && b.code.is_some() {
            assert_eq!(a.code, b.code, "v2: login and call read different codes");
        }
    }
}

/// v3 `POST /v3/login`, the reply check of every call, and the keepalive check.
pub fn v3_reply(status: u16, ct: Option<&str>, body: &[u8]) {
    let two_xx = (200..300).contains(&status);
    match v3::parse_login(status, ct, body) {
        Ok(r) => {
            assert!(two_xx, "v3 login accepted HTTP {status}");
            assert!(is_json_ct(ct), "v3 login accepted content type {ct:?}");
            check_id("v3 login", r.session_id.expose());
        }
        Err(e) => {
            check_error("v3 login", &e, status);
            if !two_xx {
                assert_eq!(e.http_status, Some(status), "v3 login error lost HTTP {status}");
            }
        }
    }
    let reply = v3::check_reply(status, body);
    assert_eq!(reply.is_ok(), two_xx, "v3 call: HTTP {status} success must be exactly 2xx");
    if let Err(e) = &reply {
        check_error("v3 call", e, status);
        assert_eq!(e.http_status, Some(status));
        if e.code.is_none() {
            let want = match status {
                401 => ErrorKind::SessionExpired,
                429 => ErrorKind::RateLimited,
                s if s >= 500 => ErrorKind::Server,
                _ => ErrorKind::Protocol,
            };
            assert_eq!(e.kind, want, "v3 call: HTTP {status} without a BILL code");
        }
    }
    match v3::check_json_reply(status, ct, body) {
        Ok(()) => {
            assert!(two_xx && is_json_ct(ct), "v3 keepalive accepted HTTP {status} {ct:?}");
            assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
                "v3 keepalive accepted a non-JSON body"
            );
        }
        Err(e) => check_error("v3 keepalive", &e, status),
    }
}

/// libFuzzer entry for the v2 parsers: the whole input is the body, tried with
/// every status and content type (so corpus files are plain envelopes).
pub fn v2_all(body: &[u8]) {
    for &status in &STATUSES {
        for &ct in &CONTENT_TYPES {
            v2_reply(status, ct, body);
        }
    }
}

/// libFuzzer entry for the v3 parsers, as `v2_all`.
pub fn v3_all(body: &[u8]) {
    for &status in &STATUSES {
        for &ct in &CONTENT_TYPES {
            v3_reply(status, ct, body);
        }
    }
}

// ---------------------------------------------------------------------------
// Option setters through the C ABI.

/// Reads the fuzzer's bytes as a script of setter calls.
struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let s = self.take(4);
        b[..s.len()].copy_from_slice(s);
        u32::from_le_bytes(b)
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let s = self.take(8);
        b[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(b)
    }
    /// A number near the documented boundaries most of the time.
    fn number(&mut self) -> u64 {
        const EDGES: [u64; 20] = [
            0,
            1,
            2,
            63,
            64,
            65,
            99,
            100,
            101,
            255,
            1023,
            1024,
            1025,
            1 << 30,
            (1 << 30) + 1,
            MAX_MS - 1,
            MAX_MS,
            MAX_MS + 1,
            u32::MAX as u64,
            u64::MAX,
        ];
        match self.byte().unwrap_or(0) % 4 {
            0 => EDGES[self.byte().unwrap_or(0) as usize % EDGES.len()],
            1 => self.u64(),
            2 => self.byte().unwrap_or(0) as u64,
            _ => self.u32() as u64 % 10_000,
        }
    }
    /// Some bytes: a length, then that many bytes (repeated when the input runs out,
    /// so lengths beyond 4096 are reachable).
    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.byte().unwrap_or(0) {
            250 => 4096,
            251 => 4097,
            252 => 255,
            253 => 256,
            254 => 5000,
            n => n as usize % 64,
        };
        let src = self.take(len);
        if src.is_empty() {
            return vec![b'a'; len];
        }
        src.iter().copied().cycle().take(len).collect()
    }
}

pub const MAX_MS: u64 = 30 * 24 * 3600 * 1000;

fn utf8_no_control(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// Expected status of a (pointer, length) secret setter.
fn model_secret(null_ptr: bool, b: &[u8]) -> bill_status {
    use bill_status::*;
    if b.is_empty() || b.len() > 4096 {
        BILL_ERR_INVALID_ARG
    } else if null_ptr {
        BILL_ERR_NULL_ARG
    } else if utf8_no_control(b) {
        BILL_OK
    } else {
        BILL_ERR_INVALID_ARG
    }
}

/// The bytes a C string argument shows (up to the first NUL).
fn c_text(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// Expected status of a NUL-terminated identifier setter (orgId, device).
fn model_field(b: &[u8]) -> bill_status {
    let t = c_text(b);
    if !t.is_empty() && t.len() <= 4096 && utf8_no_control(t) {
        bill_status::BILL_OK
    } else {
        bill_status::BILL_ERR_INVALID_ARG
    }
}

fn ok_if(cond: bool) -> bill_status {
    if cond {
        bill_status::BILL_OK
    } else {
        bill_status::BILL_ERR_INVALID_ARG
    }
}

/// A base URL from parts, with the answer the documented rules give.
fn url_from_parts(c: &mut Cursor<'_>) -> (Vec<u8>, bill_status) {
    const SCHEMES: [(&str, u8); 5] = [("https://", 2), ("http://", 1), ("ftp://", 0), ("", 0), ("https:/", 0)];
    // (host, is loopback)
    const HOSTS: [(&str, bool); 9] = [
        ("127.0.0.1", true),
        ("localhost", true),
        ("[::1]", true),
        ("127.8.9.10", true),
        ("api.bill.com", false),
        ("127.0.0.1.evil.example", false),
        ("10.0.0.1", false),
        ("[::2]", false),
        ("gateway.stage.bill.com", false),
    ];
    let (scheme, kind) = SCHEMES[c.byte().unwrap_or(0) as usize % SCHEMES.len()];
    let (host, loopback) = HOSTS[c.byte().unwrap_or(0) as usize % HOSTS.len()];
    let flags = c.byte().unwrap_or(0);
    let mut u = String::from(scheme);
    let userinfo = flags & 1 != 0;
    if userinfo {
        u.push_str("user:pw@");
    }
    u.push_str(host);
    if flags & 2 != 0 {
        u.push_str(":8443");
    }
    u.push_str(["", "/", "/api/v2", "/connect/", "/a/b/c"][(flags >> 2) as usize % 5]);
    let query = flags & 0x20 != 0;
    if query {
        u.push_str("?devKey=x");
    }
    let fragment = flags & 0x40 != 0;
    if fragment {
        u.push_str("#frag");
    }
    let space = flags & 0x80 != 0;
    if space {
        u.push_str(" x");
    }
    let allowed = match kind {
        2 => true,
        1 => loopback,
        _ => false,
    };
    (u.into_bytes(), ok_if(allowed && !userinfo && !query && !fragment && !space))
}

/// An event callback that does nothing (the fuzzed options never sign in successfully).
unsafe extern "C" fn no_events(_: *mut c_void, _: bill_event, _: bill_status, _: *const c_char) {}

fn cstring(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v.push(0);
    v
}

fn last_error_text() -> String {
    let mut buf = vec![0u8; 8192];
    let mut len = 0usize;
    // SAFETY: buf has 8192 writable bytes.
    let st = unsafe { bill_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut len) };
    assert_eq!(st, bill_status::BILL_OK, "last error does not fit 8 KiB");
    buf.truncate(len);
    String::from_utf8(buf).expect("last error is UTF-8")
}

/// Statuses `bill_login` may return by its documentation (never PANIC).
fn login_status_documented(st: bill_status) -> bool {
    use bill_status::*;
    matches!(
        st,
        BILL_OK
            | BILL_ERR_NULL_ARG
            | BILL_ERR_INVALID_ARG
            | BILL_ERR_AUTH
            | BILL_ERR_RATE_LIMITED
            | BILL_ERR_NETWORK
            | BILL_ERR_TIMEOUT
            | BILL_ERR_TLS
            | BILL_ERR_PROTOCOL
            | BILL_ERR_SERVER
            | BILL_ERR_API
            | BILL_ERR_IN_CALLBACK
    )
}

/// Where `options` signs in: a loopback port with nothing listening, so a
/// sign-in attempt fails fast and never leaves the machine.
pub const DEAD_URL: &[u8] = b"http://127.0.0.1:1/connect\0";

/// Runs the fuzzer's bytes as a script of option-setter calls on one options
/// object (and now and then on NULL), comparing each status with the model.
/// When `allow_login` is set, a script may also try `bill_login` against
/// `DEAD_URL`: it must fail with a documented status and no secret in the
/// error text.
pub fn options(data: &[u8], allow_login: bool) {
    use bill_status::*;
    let mut c = Cursor { data };
    let mut opts: *mut bill_options = std::ptr::null_mut();
    // SAFETY: out-pointer to a local.
    assert_eq!(unsafe { bill_options_new(&mut opts) }, BILL_OK);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let mut steps = 0;
    while let Some(op) = c.byte() {
        steps += 1;
        if steps > 64 {
            break;
        }
        // Op numbers >= 128 target NULL options: every setter says NULL_ARG.
        let target = if op >= 128 { std::ptr::null_mut() } else { opts };
        let null_opts = target.is_null();
        let op = op % 128;
        // SAFETY (all calls below): pointers are NULL or point to buffers of the
        // stated length / NUL-terminated copies owned by this function.
        let (got, want): (bill_status, bill_status) = unsafe {
            match op % 22 {
                0..=2 => {
                    let b = c.bytes();
                    let null_ptr = c.byte().unwrap_or(0).is_multiple_of(8);
                    let p = if null_ptr { std::ptr::null() } else { b.as_ptr() };
                    let got = match op % 22 {
                        0 => bill_options_set_user_name(target, p, b.len()),
                        1 => bill_options_set_password(target, p, b.len()),
                        _ => bill_options_set_dev_key(target, p, b.len()),
                    };
                    let want = model_secret(null_ptr, &b);
                    if got == BILL_OK && b.len() >= 16 {
                        secrets.push(b.clone());
                    }
                    (got, want)
                }
                3 => {
                    let b = c.bytes();
                    if c.byte().unwrap_or(0).is_multiple_of(8) {
                        (bill_options_set_org_id(target, std::ptr::null()), BILL_ERR_NULL_ARG)
                    } else {
                        let s = cstring(&b);
                        (bill_options_set_org_id(target, s.as_ptr().cast()), model_field(&b))
                    }
                }
                4 => {
                    let v = c.u32() % 8;
                    (bill_options_set_api_version(target, v), ok_if(v == 2 || v == 3))
                }
                5 => {
                    let v = c.u32();
                    (bill_options_set_environment(target, v), ok_if(v <= 1))
                }
                6 => {
                    let pick = c.byte().unwrap_or(0);
                    if pick.is_multiple_of(16) {
                        (bill_options_set_base_url(target, std::ptr::null()), BILL_OK)
                    } else if pick.is_multiple_of(2) {
                        let (u, want) = url_from_parts(&mut c);
                        let s = cstring(&u);
                        (bill_options_set_base_url(target, s.as_ptr().cast()), want)
                    } else {
                        // Raw bytes: only the invariants, not an exact answer.
                        let b = c.bytes();
                        let s = cstring(&b);
                        let got = bill_options_set_base_url(target, s.as_ptr().cast());
                        let text = c_text(&b);
                        if got == BILL_OK && !null_opts {
                            let t = std::str::from_utf8(text).expect("accepted a non-UTF-8 base URL");
                            assert!(t.len() <= 2048, "accepted a base URL of {} bytes", t.len());
                            assert!(
                                t.starts_with("https://") || t.starts_with("http://"),
                                "accepted a base URL that is neither https:// nor http://: {t:?}"
                            );
                            assert!(
                                !t.contains(['#', '?', ' ']),
                                "accepted a base URL with a query, fragment or space: {t:?}"
                            );
                        }
                        let want = if null_opts {
                            BILL_ERR_NULL_ARG
                        } else if got == BILL_OK {
                            BILL_OK
                        } else {
                            BILL_ERR_INVALID_ARG
                        };
                        (got, want)
                    }
                }
                7 => {
                    let v = c.number();
                    (bill_options_set_idle_timeout_ms(target, v), ok_if(v == 0 || (100..=MAX_MS).contains(&v)))
                }
                8 => {
                    let v = c.number();
                    (bill_options_set_renew_margin_ms(target, v), ok_if(v <= MAX_MS))
                }
                9 => {
                    let v = c.number();
                    (bill_options_set_connect_timeout_ms(target, v), ok_if((1..=MAX_MS).contains(&v)))
                }
                10 => {
                    let v = c.number();
                    (bill_options_set_request_timeout_ms(target, v), ok_if((1..=MAX_MS).contains(&v)))
                }
                11 => {
                    let b = c.bytes();
                    if c.byte().unwrap_or(0).is_multiple_of(4) {
                        (bill_options_set_ca_file(target, std::ptr::null()), BILL_OK)
                    } else {
                        let s = cstring(&b);
                        let t = c_text(&b);
                        let ok = !t.is_empty() && t.len() <= 4096 && std::str::from_utf8(t).is_ok();
                        (bill_options_set_ca_file(target, s.as_ptr().cast()), ok_if(ok))
                    }
                }
                12 => {
                    let v = c.u32() % 6;
                    (bill_options_set_refresh_mode(target, v), ok_if(v <= 2))
                }
                13 => {
                    let v = c.u32() % 4;
                    (bill_options_set_sign_in_kind(target, v), ok_if(v <= 1))
                }
                14 => {
                    let sel = c.byte().unwrap_or(0);
                    if sel.is_multiple_of(8) {
                        (bill_options_set_mfa_trust(target, std::ptr::null(), 0, std::ptr::null()), BILL_OK)
                    } else {
                        let id = c.bytes();
                        let dev = c.bytes();
                        let null_id = sel % 8 == 1;
                        let null_dev = sel % 8 == 2;
                        let ds = cstring(&dev);
                        let p = if null_id { std::ptr::null() } else { id.as_ptr() };
                        let d = if null_dev { std::ptr::null() } else { ds.as_ptr().cast() };
                        let got = bill_options_set_mfa_trust(target, p, id.len(), d);
                        let want = if null_id && id.is_empty() {
                            BILL_OK
                        } else {
                            match model_secret(null_id, &id) {
                                BILL_OK if null_dev => BILL_ERR_NULL_ARG,
                                BILL_OK => model_field(&dev),
                                other => other,
                            }
                        };
                        (got, want)
                    }
                }
                15 => {
                    let v = c.number() as usize;
                    (bill_options_set_max_response_bytes(target, v), ok_if((1024..=1 << 30).contains(&v)))
                }
                16 => {
                    let n = c.number() as u32;
                    let w = c.number();
                    (bill_options_set_sign_in_budget(target, n, w), ok_if(n >= 1 && (100..=MAX_MS).contains(&w)))
                }
                17 => {
                    let v = c.number() as u32;
                    (bill_options_set_max_in_flight(target, v), ok_if((1..=64).contains(&v)))
                }
                18 => {
                    let b = c.bytes();
                    if c.byte().unwrap_or(0).is_multiple_of(8) {
                        (bill_options_allow_api_endpoint_host(target, std::ptr::null()), BILL_ERR_NULL_ARG)
                    } else {
                        let s = cstring(&b);
                        let t = c_text(&b);
                        let ok = !t.is_empty()
                            && t.len() <= 255
                            && t.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'.' || x == b'-');
                        (bill_options_allow_api_endpoint_host(target, s.as_ptr().cast()), ok_if(ok))
                    }
                }
                19 => {
                    let cb: bill_event_fn =
                        if c.byte().unwrap_or(0).is_multiple_of(2) { Some(no_events) } else { None };
                    (bill_options_set_event_callback(target, cb, std::ptr::null_mut()), BILL_OK)
                }
                20 => {
                    // The last error must fit any buffer it claims to need.
                    let cap = c.byte().unwrap_or(0) as usize;
                    let mut buf = vec![0xAAu8; cap];
                    let mut len = usize::MAX;
                    let p = if cap == 0 { std::ptr::null_mut() } else { buf.as_mut_ptr().cast() };
                    let st = bill_last_error(p, cap, &mut len);
                    if st == BILL_OK {
                        assert!(len < cap && buf[len] == 0, "bill_last_error wrote {len} bytes into {cap}");
                    } else {
                        assert_eq!(st, BILL_ERR_BUFFER_TOO_SMALL);
                        assert!(len > cap || cap == 0, "too small, yet {len} <= {cap}");
                        assert!(buf.iter().all(|&x| x == 0xAA), "bill_last_error wrote into a too-small buffer");
                    }
                    continue;
                }
                _ => {
                    if !allow_login || null_opts {
                        continue;
                    }
                    // Sign in against a dead loopback port: never leaves the machine.
                    assert_eq!(bill_options_set_base_url(opts, DEAD_URL.as_ptr().cast()), BILL_OK);
                    let mut s: *mut bill_session = std::ptr::null_mut();
                    let st = bill_login(opts, &mut s);
                    assert!(login_status_documented(st), "bill_login returned {st:?}");
                    assert_ne!(st, BILL_OK, "signed in against a dead port");
                    assert!(s.is_null(), "bill_login wrote *out on failure");
                    assert_eq!(bill_last_error_status(), st);
                    let text = last_error_text();
                    for sec in &secrets {
                        let sec = String::from_utf8_lossy(sec);
                        assert!(!text.contains(sec.as_ref()), "a secret appears in the sign-in error: {text:?}");
                    }
                    continue;
                }
            }
        };
        let want = if null_opts { BILL_ERR_NULL_ARG } else { want };
        assert_eq!(got, want, "setter op {} (NULL options: {null_opts})", op % 22);
        assert_ne!(got, BILL_ERR_PANIC);
        if got != BILL_OK {
            assert_eq!(bill_last_error_status(), got, "last error status not recorded");
        }
    }
    // SAFETY: opts came from bill_options_new and is freed once.
    unsafe { bill_options_free(opts) };
}
