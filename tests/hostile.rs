//! Promises kept under hostile input: secrets redacted before anything is
//! cut, BILL-shaped error codes only, strict URLs, documented statuses, safe
//! CA files, and no chunked request bodies. Each test drives the library over
//! loopback HTTP against the in-process emulator, or the C ABI directly.

mod common;

use std::ffi::CString;

use bill::ffi::*;

/// A new options handle, freed by the caller.
fn c_options() -> *mut bill_options {
    let mut o: *mut bill_options = std::ptr::null_mut();
    // SAFETY: out-pointer to a local.
    assert_eq!(unsafe { bill_options_new(&mut o) }, bill_status::BILL_OK);
    o
}

#[test]
fn out_of_range_ports_and_non_whatwg_urls_are_refused() {
    let o = c_options();
    for url in [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:65616",
        "http://127.0.0.1:0/connect",
        "http://127.0.0.1:8080x/connect",
        "https://[::1/connect",
        "https://",
    ] {
        let c = CString::new(url).unwrap();
        // SAFETY: o is live; c is NUL-terminated.
        let st = unsafe { bill_options_set_base_url(o, c.as_ptr()) };
        assert_eq!(st, bill_status::BILL_ERR_INVALID_ARG, "{url}");
    }
    for url in ["http://127.0.0.1:65535/connect", "http://127.0.0.1:1/api/v2", "https://api.bill.com/api/v2"] {
        let c = CString::new(url).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { bill_options_set_base_url(o, c.as_ptr()) }, bill_status::BILL_OK, "{url}");
    }
    // SAFETY: o came from bill_options_new and is freed once.
    unsafe { bill_options_free(o) };
    // The Rust API refuses the same URL before any traffic.
    let opts = bill::Options {
        user_name: "u".into(),
        password: "p".into(),
        dev_key: "k".into(),
        org_id: "o".into(),
        base_url: Some("http://127.0.0.1:99999".into()),
        ..bill::Options::default()
    };
    assert_eq!(bill::Session::login(&opts).err().map(|e| e.kind), Some(bill::ErrorKind::InvalidArg));
}

// ---------------------------------------------------------------------------
// Secrets in error text, error codes and event details.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bill::options::{ApiVersion, Event, Options};
use bill::{Error, ErrorKind, Session};
use bill_emulator::{Account, Echo, EchoEncoding, EchoPlace, EchoSecret, Emulator, Fault, FaultTarget};
use common::*;

/// Secrets with characters that every encoding changes: a space, a slash, a
/// quote, `&`, `=` and non-ASCII.
struct Hostile {
    user: String,
    password: String,
    dev_key: String,
}

impl Hostile {
    fn new(tag: &str) -> Hostile {
        Hostile {
            user: format!("Hostile.{tag}@Example.com"),
            password: "correct horse/battery \"stäple\" & =tail".into(),
            dev_key: format!("DEVKEY-{tag}-0123456789"),
        }
    }

    fn secret(&self, s: EchoSecret) -> &str {
        match s {
            EchoSecret::Password => &self.password,
            EchoSecret::DevKey => &self.dev_key,
            EchoSecret::UserName => &self.user,
            EchoSecret::SessionId => unreachable!("session ids are checked on their own"),
        }
    }

    /// Options for this account on `e`, with a sign-in budget that many failed sign-ins cannot use up.
    fn options(&self, e: &Emulator, api: ApiVersion) -> Options {
        e.add_account(Account::new(&self.user, &self.password, ORG, &self.dev_key));
        let mut o = options(e, "unused", api, 60_000, 1000);
        o.user_name = self.user.as_str().into();
        o.password = self.password.as_str().into();
        o.dev_key = self.dev_key.as_str().into();
        o.sign_in_budget = 1_000_000;
        o
    }
}

/// Every run of 5 characters of `secret`, as written, form-encoded and
/// JSON-escaped, in lower case: none may appear in text shown to a caller.
fn windows(secret: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap();
    let mut out = Vec::new();
    for form in [secret.to_owned(), form, json[1..json.len() - 1].to_owned()] {
        let chars: Vec<char> = form.to_lowercase().chars().collect();
        for w in chars.windows(5) {
            out.push(w.iter().collect());
        }
    }
    out
}

fn assert_clean(what: &str, text: &str, secret: &str) {
    let lower = text.to_lowercase();
    for w in windows(secret) {
        assert!(!lower.contains(&w), "{what}: {w:?} of a secret survives in {text:?}");
    }
}

/// What a caller sees of an error: the text (code included) and the code.
fn assert_error_clean(what: &str, e: &Error, secret: &str) {
    assert_clean(what, &e.to_string(), secret);
    if let Some(code) = &e.code {
        assert!(bill::wire::is_bill_code(code), "{what}: code {code:?} is not of BILL's shape");
    }
}

/// The HTTP status of an echo reply. A v3 error is read from a 4xx reply,
/// whose content type is never looked at; a 200 makes the content type matter.
fn echo_status(api: ApiVersion, place: EchoPlace) -> u16 {
    if api == ApiVersion::V3 && place != EchoPlace::ContentType {
        400
    } else {
        200
    }
}

/// Places and the filler that makes the secret straddle the cut there.
const PLACES: [(EchoPlace, &[usize]); 3] =
    [(EchoPlace::Message, &[0, 500]), (EchoPlace::Code, &[0, 20]), (EchoPlace::ContentType, &[0, 60])];
const ENCODINGS: [EchoEncoding; 4] = [EchoEncoding::Raw, EchoEncoding::Form, EchoEncoding::Json, EchoEncoding::Upper];
const SECRETS: [EchoSecret; 3] = [EchoSecret::Password, EchoSecret::DevKey, EchoSecret::UserName];

/// Every echo: each secret in each place, in each encoding, at each offset.
fn echoes(api: ApiVersion) -> Vec<(String, EchoSecret, Echo)> {
    let mut out = Vec::new();
    for secret in SECRETS {
        for (place, offsets) in PLACES {
            for &offset in offsets {
                for encoding in ENCODINGS {
                    let echo = Echo::new(secret).place(place).encoding(encoding).offset(offset);
                    let what = format!("{api:?}: {secret:?} in {place:?} at {offset}, {encoding:?}");
                    out.push((what, secret, echo.status(echo_status(api, place))));
                }
            }
        }
    }
    out
}

#[test]
fn echoed_secrets_never_reach_sign_in_errors() {
    let e = emulator(60_000);
    for api in [ApiVersion::V2, ApiVersion::V3] {
        let h = Hostile::new(&format!("signin{api:?}"));
        let opts = h.options(&e, api);
        for (what, secret, echo) in echoes(api) {
            e.set_fault(Fault::echo(echo).target(FaultTarget::Login));
            let err = Session::login(&opts).err().unwrap_or_else(|| panic!("{what}: signed in"));
            assert_error_clean(&format!("sign-in, {what}"), &err, h.secret(secret));
        }
    }
    e.clear_faults();
}

#[test]
fn echoed_secrets_never_reach_call_errors() {
    let e = emulator(60_000);
    for api in [ApiVersion::V2, ApiVersion::V3] {
        let h = Hostile::new(&format!("call{api:?}"));
        let s = Session::login(&h.options(&e, api)).unwrap();
        let path = if api == ApiVersion::V2 { "List/Vendor" } else { "vendors" };
        for (what, secret, echo) in echoes(api) {
            e.set_fault(Fault::echo(echo).target(FaultTarget::Calls).count(1));
            let err = s.call("POST", path, b"{}").err().unwrap_or_else(|| panic!("{what}: succeeded"));
            assert_error_clean(&format!("call, {what}"), &err, h.secret(secret));
        }
    }
    e.clear_faults();
}

/// The code field held the password: `bill_last_error_code` must not return it,
/// and `bill_last_error` must not begin with it.
#[test]
fn a_password_in_the_code_field_is_withheld_at_the_c_abi() {
    let e = emulator(60_000);
    let h = Hostile::new("cabi");
    let rust = h.options(&e, ApiVersion::V3);
    e.set_fault(Fault::echo(Echo::new(EchoSecret::Password).place(EchoPlace::Code)).target(FaultTarget::Login));
    let o = c_options();
    let set = |st: bill_status| assert_eq!(st, bill_status::BILL_OK);
    let base = CString::new(rust.base_url.clone().unwrap()).unwrap();
    let org = CString::new(ORG).unwrap();
    // SAFETY: o is live; every pointer is valid for its length or NUL-terminated.
    unsafe {
        set(bill_options_set_user_name(o, h.user.as_ptr(), h.user.len()));
        set(bill_options_set_password(o, h.password.as_ptr(), h.password.len()));
        set(bill_options_set_dev_key(o, h.dev_key.as_ptr(), h.dev_key.len()));
        set(bill_options_set_org_id(o, org.as_ptr()));
        set(bill_options_set_base_url(o, base.as_ptr()));
        let mut s: *mut bill_session = std::ptr::null_mut();
        let st = bill_login(o, &mut s);
        assert_ne!(st, bill_status::BILL_OK);
        assert!(s.is_null());
        let mut buf = [0u8; 2048];
        let mut len = 0usize;
        assert_eq!(bill_last_error_code(buf.as_mut_ptr().cast(), buf.len(), &mut len), bill_status::BILL_OK);
        assert_eq!(len, 0, "a non-standard code is withheld: {:?}", String::from_utf8_lossy(&buf[..len]));
        assert_eq!(bill_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut len), bill_status::BILL_OK);
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        assert_clean("bill_last_error", &text, &h.password);
        assert!(text.contains("non-standard error code"), "{text}");
        bill_options_free(o);
    }
    e.clear_faults();
}

/// A background renewal that meets an echoing server reports a clean event
/// detail, session error and session error code.
#[test]
fn echoed_secrets_never_reach_event_details_or_session_errors() {
    let e = emulator(60_000);
    for (place, offset) in [(EchoPlace::ContentType, 60), (EchoPlace::Code, 0), (EchoPlace::Message, 500)] {
        let h = Hostile::new(&format!("ev{}", place as u8));
        let details: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = details.clone();
        let mut opts = h.options(&e, ApiVersion::V2);
        opts.idle_timeout = Some(ms(1500));
        opts.renew_margin = ms(1200);
        opts.events = Some(Arc::new(move |ev: Event, err: Option<&Error>| {
            if ev == Event::RenewFailed {
                sink.lock().unwrap().push(err.map(|e| e.to_string()).unwrap_or_default());
            }
        }));
        let s = Session::login(&opts).unwrap();
        let echo = Echo::new(EchoSecret::DevKey).place(place).encoding(EchoEncoding::Upper).offset(offset);
        e.set_fault(Fault::echo(echo).target(FaultTarget::Login));
        assert!(wait_until(Duration::from_secs(20), || !details.lock().unwrap().is_empty()), "no renewal failed");
        e.clear_faults();
        for d in details.lock().unwrap().iter() {
            assert_clean(&format!("event detail ({place:?})"), d, &h.dev_key);
        }
        let err = s.last_error().expect("the renewal failure is recorded");
        assert_error_clean(&format!("session error ({place:?})"), &err, &h.dev_key);
    }
}

/// Session ids are secrets too: an id echoed in an error is redacted.
#[test]
fn echoed_session_ids_are_redacted() {
    let e = emulator(60_000);
    for api in [ApiVersion::V2, ApiVersion::V3] {
        let h = Hostile::new(&format!("sid{api:?}"));
        let s = Session::login(&h.options(&e, api)).unwrap();
        let id = id_of(&s);
        let path = if api == ApiVersion::V2 { "List/Vendor" } else { "vendors" };
        for encoding in ENCODINGS {
            let echo = Echo::new(EchoSecret::SessionId).encoding(encoding).offset(500);
            e.set_fault(Fault::echo(echo).target(FaultTarget::Calls).count(1));
            let err = s.call("POST", path, b"{}").expect_err("the echo fault answers");
            assert_error_clean(&format!("{api:?} {encoding:?}"), &err, &id);
        }
    }
}

// ---------------------------------------------------------------------------
// Statuses: what each function can return is what its documentation lists.

/// The statuses that include/bill.h documents for `function`.
fn documented(function: &str) -> Vec<bill_status> {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/bill.h")).unwrap();
    let decl = header.find(&format!(" {function}(")).unwrap_or_else(|| panic!("{function} not in bill.h"));
    let doc_start = header[..decl].rfind("/**").unwrap();
    let doc = &header[doc_start..decl];
    let mut doc = doc.to_owned();
    // "the statuses of `bill_login`" includes them.
    if function != "bill_login" && doc.contains("the statuses of `bill_login`") {
        doc.push_str(&documented("bill_login").iter().map(|s| format!(" {s:?}")).collect::<String>());
    }
    (0..100)
        .filter_map(bill_status::from_repr)
        .filter(|s| {
            let name = format!("{s:?}");
            doc.match_indices(&name).any(|(i, _)| {
                let next = doc[i + name.len()..].chars().next().unwrap_or(' ');
                !(next.is_ascii_alphanumeric() || next == '_')
            })
        })
        .collect()
}

/// Replies a server may send, in each API's shape: every BILL code libbill
/// knows, a non-standard code and none, under the usual HTTP statuses.
fn replies(api: ApiVersion) -> Vec<(u16, Vec<u8>)> {
    let codes = [
        "BDC_1001",
        "BDC_1101",
        "BDC_1102",
        "BDC_1103",
        "BDC_1107",
        "BDC_1108",
        "BDC_1109",
        "BDC_1110",
        "BDC_1111",
        "BDC_1113",
        "BDC_1121",
        "BDC_1122",
        "BDC_1123",
        "BDC_1129",
        "BDC_1144",
        "BDC_1322",
        "BDC_1361",
        "BDC_9999",
        "not a code",
        "",
    ];
    let mut out = Vec::new();
    for status in [200, 400, 401, 403, 404, 429, 500, 503] {
        for code in codes {
            let body = match api {
                ApiVersion::V2 => serde_json::json!({"response_status": 1, "response_message": "Error",
                    "response_data": {"error_code": code, "error_message": "m"}}),
                ApiVersion::V3 => serde_json::json!([{"code": code, "severity": "ERROR", "message": "m"}]),
            };
            out.push((status, serde_json::to_vec(&body).unwrap()));
        }
        out.push((status, b"<html>proxy</html>".to_vec()));
    }
    out
}

/// What the transport can fail with on any request.
const TRANSPORT: [ErrorKind; 5] =
    [ErrorKind::Network, ErrorKind::Timeout, ErrorKind::Tls, ErrorKind::Protocol, ErrorKind::ResponseTooLarge];

fn assert_documented(function: &str, kinds: impl IntoIterator<Item = ErrorKind>, why: &str) {
    let doc = documented(function);
    for kind in kinds {
        let st = bill_status::from(kind);
        assert!(doc.contains(&st), "{function} can return {st:?} ({why}) but bill.h does not list it: {doc:?}");
    }
}

#[test]
fn every_status_a_function_can_return_is_documented() {
    use bill::wire::{v2, v3};
    let json = Some("application/json");
    let mut login = Vec::new();
    let mut call = Vec::new();
    let mut logout = Vec::new();
    for (status, body) in replies(ApiVersion::V2) {
        login.extend(v2::parse_login(status, json, &body).err().map(|e| e.kind));
        call.extend(v2::check_reply(status, json, &body).err().map(|e| e.kind));
        logout.extend(v2::check_reply(status, json, &body).err().map(|e| e.kind));
    }
    for (status, body) in replies(ApiVersion::V3) {
        login.extend(v3::parse_login(status, json, &body).err().map(|e| e.kind));
        call.extend(v3::check_call_reply(status, json, &body).err().map(|e| e.kind));
        logout.extend(v3::check_reply(status, &body).err().map(|e| e.kind));
    }
    // A sign-in is refused with BILL_ERR_AUTH, never "session expired".
    assert!(!login.contains(&ErrorKind::SessionExpired), "a sign-in reported an expired session");
    let local = [ErrorKind::NullArg, ErrorKind::InvalidArg, ErrorKind::RateLimited, ErrorKind::InCallback];
    assert_documented("bill_login", login.iter().copied().chain(TRANSPORT).chain(local), "sign-in replies");
    assert_documented("bill_renew", login.iter().copied().chain(TRANSPORT), "sign-in replies");
    assert_documented("bill_renew", [ErrorKind::Closed, ErrorKind::Forked], "session states");
    let session =
        [ErrorKind::NullArg, ErrorKind::InvalidArg, ErrorKind::Closed, ErrorKind::Forked, ErrorKind::InCallback];
    // A call signs in again on BDC_1109, so it can meet every sign-in answer too.
    assert_documented("bill_call", call.iter().chain(&login).copied().chain(TRANSPORT).chain(session), "call replies");
    // A logout of a session BILL already dropped counts as done.
    logout.retain(|k| *k != ErrorKind::SessionExpired);
    assert_documented("bill_logout", logout.iter().copied().chain(TRANSPORT).chain(session), "logout replies");
    for f in ["bill_session_id", "bill_touch"] {
        assert_documented(
            f,
            [
                ErrorKind::NullArg,
                ErrorKind::InvalidArg,
                ErrorKind::SessionExpired,
                ErrorKind::Closed,
                ErrorKind::Forked,
            ],
            "session states",
        );
    }
    for f in ["bill_session_state", "bill_session_trusted", "bill_session_error", "bill_session_error_code"] {
        assert_documented(f, [ErrorKind::NullArg, ErrorKind::InvalidArg, ErrorKind::Forked], "handle checks");
    }
    for f in ["bill_response_body", "bill_response_http_status", "bill_options_set_event_callback"] {
        assert_documented(f, [ErrorKind::NullArg, ErrorKind::InvalidArg], "handle checks");
    }
}

/// At sign-in a 401, or BDC_1109, means the sign-in was refused.
#[test]
fn unauthorized_at_sign_in_is_an_auth_failure() {
    let e = emulator(60_000);
    for api in [ApiVersion::V2, ApiVersion::V3] {
        let h = Hostile::new(&format!("401{api:?}"));
        let opts = h.options(&e, api);
        let with_code =
            Echo::new(EchoSecret::Password).code("BDC_1109").status(if api == ApiVersion::V2 { 200 } else { 401 });
        e.set_fault(Fault::echo(with_code).target(FaultTarget::Login));
        let err = Session::login(&opts).expect_err("refused");
        assert_eq!((err.kind, err.code.as_deref()), (ErrorKind::Auth, Some("BDC_1109")), "{api:?}: {err}");
        if api == ApiVersion::V3 {
            // A 401 without a usable code.
            let no_code = Echo::new(EchoSecret::Password).place(EchoPlace::Code).status(401);
            e.set_fault(Fault::echo(no_code).target(FaultTarget::Login));
            let err = Session::login(&opts).expect_err("refused");
            assert_eq!((err.kind, err.code.clone()), (ErrorKind::Auth, None), "{err}");
        }
    }
    e.clear_faults();
}

// ---------------------------------------------------------------------------
// CA files.

#[test]
fn a_ca_file_that_is_not_a_small_regular_file_is_refused_without_hanging() {
    let e = emulator(60_000);
    let dir = std::env::temp_dir().join(format!("libbill-hostile-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.pem");
    let c = CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let big = dir.join("big.pem");
    std::fs::write(&big, vec![b'A'; (1 << 20) + 1]).unwrap();
    let opts = options(&e, "cafile", ApiVersion::V3, 60_000, 1000);
    for path in [fifo.clone(), "/dev/zero".into(), big, dir.clone()] {
        let o = Options { ca_file: Some(path.clone()), ..opts.clone() };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Session::login(&o).err().map(|e| (e.kind, e.to_string())));
        });
        // Generous: a refusal takes microseconds; a FIFO would block forever.
        let got = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("{path:?}: bill_login hung"));
        let (kind, text) = got.unwrap_or_else(|| panic!("{path:?}: signed in"));
        assert_eq!(kind, ErrorKind::InvalidArg, "{path:?}: {text}");
        assert!(text.contains("CA file"), "{path:?}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Request framing.

/// Requests without a body (the v3 logout, GETs, DELETEs) carry
/// `Content-Length: 0`; nothing is sent chunked.
#[test]
fn no_request_is_sent_chunked() {
    let e = emulator(60_000);
    for api in [ApiVersion::V2, ApiVersion::V3] {
        let s = Session::login(&options(&e, &format!("chunked{api:?}"), api, 60_000, 1000)).unwrap();
        match api {
            ApiVersion::V2 => {
                s.call("POST", "List/Vendor", b"").unwrap();
            }
            ApiVersion::V3 => {
                for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                    s.call(method, "vendors", b"").unwrap();
                }
            }
        }
        s.renew().unwrap();
        // The next request on the same connection must still be understood.
        s.logout().unwrap();
    }
    let stats = e.stats();
    assert!(stats.logouts >= 2, "both logouts reached the emulator");
    assert_eq!(stats.chunked_requests, 0, "requests sent with a chunked body");
}
