//! Faults at sign-in, background renewal and calls, against
//! the in-process emulator over real loopback sockets.
//!
//! For each fault the emulator can inject (refused, reset, slow beyond the
//! request timeout, HTTP 500/503, malformed, wrong content type, huge body),
//! and TLS with the wrong CA:
//! - the operation ends with the expected `ErrorKind` within the configured
//!   request timeout plus slack;
//! - the background thread is not stuck: a canary session on a fault-free
//!   emulator keeps being renewed on time meanwhile;
//! - an id handed out during the fault was valid at the emulator when read;
//! - once the fault stops, the session recovers by itself (state back to
//!   Active, the next call works) without the caller doing anything.
//!
//! v3 runs over HTTPS with the emulator's generated CA (given as the CA file),
//! v2 over plain HTTP on loopback.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bill::options::{ApiVersion, Event, EventSink, RefreshMode};
use bill::{Error, ErrorKind, Options, Session, State};
use bill_emulator::{Account, Config, Emulator, Fault, FaultMode, FaultTarget, DEMO_ORG, DEMO_PASSWORD, DEMO_USER};

mod common;
use common::valid_since;

/// The emulator's and the sessions' idle timeout.
const IDLE: Duration = Duration::from_millis(3000);
/// Renewal 1 s after the last use.
const MARGIN: Duration = Duration::from_millis(2000);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling and a debug build on a busy 2-core machine. A failure within
/// REQUEST_TIMEOUT + SLACK still comes before a held reply (SLOW_MS) would.
const SLACK: Duration = Duration::from_millis(3500);
const _: () = assert!(REQUEST_TIMEOUT.as_millis() + SLACK.as_millis() < SLOW_MS as u128);
/// Longest wait for a condition that should come about.
const WAIT: Duration = Duration::from_secs(15);
/// A reply held this long is "slow beyond the request timeout".
const SLOW_MS: u64 = 5000;
const MAX_REPLY: usize = 1 << 20;
const CANARY_IDLE: Duration = Duration::from_millis(8000);

/// One fault and what it must turn into.
struct Case {
    name: &'static str,
    mode: FaultMode,
    delay_ms: u64,
    want: ErrorKind,
}

const CASES: [Case; 8] = [
    Case { name: "refused", mode: FaultMode::Refuse, delay_ms: 0, want: ErrorKind::Network },
    Case { name: "reset", mode: FaultMode::Reset, delay_ms: 0, want: ErrorKind::Network },
    Case { name: "slow", mode: FaultMode::Delay, delay_ms: SLOW_MS, want: ErrorKind::Timeout },
    Case { name: "http500", mode: FaultMode::Http500, delay_ms: 0, want: ErrorKind::Server },
    Case { name: "http503", mode: FaultMode::Http503, delay_ms: 0, want: ErrorKind::Server },
    Case { name: "malformed", mode: FaultMode::Malformed, delay_ms: 0, want: ErrorKind::Protocol },
    Case { name: "wrong_content_type", mode: FaultMode::WrongContentType, delay_ms: 0, want: ErrorKind::Protocol },
    Case { name: "huge_body", mode: FaultMode::HugeBody, delay_ms: 0, want: ErrorKind::ResponseTooLarge },
];

impl Case {
    fn fault(&self, target: FaultTarget) -> Fault {
        Fault::new(self.mode).target(target).delay_ms(self.delay_ms)
    }
}

/// A devKey of its own for every session group, so request slots and sign-in
/// budgets of tests running in parallel never interfere.
fn fresh_dev_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("FAULTS-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

struct Env {
    emu: Emulator,
    api: ApiVersion,
    dev_key: String,
}

fn env(api: ApiVersion) -> Env {
    env_idle(api, IDLE)
}

fn env_idle(api: ApiVersion, idle: Duration) -> Env {
    let dev_key = fresh_dev_key();
    let emu = Emulator::start(Config {
        idle_timeout: idle,
        login_limit: 1_000_000,
        request_limit: 10_000_000,
        // v3 over HTTPS with a generated CA; v2 over plain HTTP on loopback.
        tls: api == ApiVersion::V3,
        accounts: vec![Account::new(DEMO_USER, DEMO_PASSWORD, DEMO_ORG, &dev_key)],
        ..Config::default()
    })
    .unwrap();
    let env = Env { emu, api, dev_key };
    // One request through first. A refuse fault set before the emulator's
    // accept loop has run once leaves the bound socket open (connections hang
    // instead of being refused): an emulator defect, reported.
    drop(env.login(None));
    env
}

#[derive(Default)]
struct Log {
    events: Mutex<Vec<(Instant, Event, Option<ErrorKind>)>>,
}

impl Log {
    fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |ev: Event, err: Option<&Error>| {
            me.events.lock().unwrap().push((Instant::now(), ev, err.map(|e| e.kind)))
        })
    }
    fn count(&self, ev: Event) -> usize {
        self.events.lock().unwrap().iter().filter(|e| e.1 == ev).count()
    }
    fn first_after(&self, ev: Event, t: Instant) -> Option<(Instant, Option<ErrorKind>)> {
        self.events.lock().unwrap().iter().find(|e| e.1 == ev && e.0 >= t).map(|e| (e.0, e.2))
    }
}

impl Env {
    fn options(&self, log: Option<&Arc<Log>>) -> Options {
        Options {
            user_name: DEMO_USER.into(),
            password: DEMO_PASSWORD.into(),
            dev_key: self.dev_key.as_str().into(),
            org_id: DEMO_ORG.into(),
            api: self.api,
            base_url: Some(match self.api {
                ApiVersion::V2 => self.emu.v2_base().to_owned(),
                ApiVersion::V3 => self.emu.v3_base().to_owned(),
            }),
            ca_file: self.emu.ca_file().map(Into::into),
            idle_timeout: Some(IDLE),
            renew_margin: MARGIN,
            request_timeout: REQUEST_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            max_response_bytes: MAX_REPLY,
            sign_in_budget: 1_000_000,
            events: log.map(|l| l.sink()),
            ..Options::default()
        }
    }

    fn login(&self, log: Option<&Arc<Log>>) -> Session {
        Session::login(&self.options(log)).unwrap_or_else(|e| panic!("{:?} sign-in: {e}", self.api))
    }

    fn call(&self, s: &Session) -> bill::error::Result<bill::session::Response> {
        match self.api {
            ApiVersion::V2 => s.call("POST", "List/Vendor", br#"{"start":0,"max":1}"#),
            ApiVersion::V3 => s.call("GET", "vendors?max=1", b""),
        }
    }

    /// Whether the id handed out now was valid at the emulator when it was read.
    fn id_valid_at_emulator(&self, s: &Session) -> Option<bool> {
        let since = self.emu.now_ms();
        let id = s.with_id(str::to_owned).ok()?;
        Some(valid_since(&self.emu, &id, since))
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `f`, checks it failed with `want` within the request timeout plus slack.
fn expect_fail<T>(what: &str, want: ErrorKind, f: impl FnOnce() -> bill::error::Result<T>) {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    match r {
        Ok(_) => panic!("{what}: succeeded; expected {want:?}"),
        Err(e) => {
            assert_eq!(e.kind, want, "{what}: {e}");
            assert!(!e.message.is_empty(), "{what}: error without an explanation");
        }
    }
    assert!(took < REQUEST_TIMEOUT + SLACK, "{what}: took {took:?}, request timeout {REQUEST_TIMEOUT:?}");
}

/// After a fault: the session gets back to Active by itself and calls work.
fn recovers(env: &Env, s: &Session, what: &str) {
    wait_for(&format!("{what}: back to Active"), || {
        s.state() == State::Active && env.id_valid_at_emulator(s) == Some(true)
    });
    let r = env.call(s).unwrap_or_else(|e| panic!("{what}: call after recovery: {e}"));
    assert_eq!(r.http_status, 200);
    // A renewal may be due again by now (every second): wait for the state between two.
    wait_for(&format!("{what}: Active after the call"), || s.state() == State::Active);
}

/// A session on its own fault-free emulator, renewed by the same background
/// thread: if that thread were stuck, the canary would stop being renewed.
struct Canary {
    env: Env,
    session: Session,
    log: Arc<Log>,
}

impl Canary {
    fn new() -> Canary {
        // Renewed every second like the sessions under test, but with room to
        // spare: one background thread serves both, and a sign-in held by a
        // "slow" fault delays every other renewal by up to a request timeout.
        let env = env_idle(ApiVersion::V2, CANARY_IDLE);
        let log = Arc::new(Log::default());
        let opts = Options {
            idle_timeout: Some(CANARY_IDLE),
            renew_margin: CANARY_IDLE - (IDLE - MARGIN),
            ..env.options(Some(&log))
        };
        let session = Session::login(&opts).unwrap();
        Canary { env, session, log }
    }
    /// Renewed at least twice more since `since`, and its id valid now.
    fn still_renewed(&self, since: usize, what: &str) {
        wait_for(&format!("{what}: canary renewed meanwhile"), || self.log.count(Event::Renewed) >= since + 2);
        assert_eq!(self.env.id_valid_at_emulator(&self.session), Some(true), "{what}: canary id");
        assert_eq!(self.log.count(Event::RenewFailed), 0, "{what}: canary renewal failed");
    }
}

// ---------------------------------------------------------------------------
// Sign-in.

fn sign_in_faults(api: ApiVersion) {
    let env = env(api);
    for c in &CASES {
        let what = format!("{api:?} sign-in, {}", c.name);
        env.emu.set_fault(c.fault(FaultTarget::Login));
        let opts = env.options(None);
        expect_fail(&what, c.want, || Session::login(&opts));
        env.emu.clear_faults();
        // Nothing is left over: the next sign-in works.
        let s = env.login(None);
        assert_eq!(env.id_valid_at_emulator(&s), Some(true), "{what}");
        assert_eq!(env.call(&s).unwrap().http_status, 200, "{what}");
    }
}

#[test]
fn sign_in_v2() {
    sign_in_faults(ApiVersion::V2);
}

#[test]
fn sign_in_v3_https() {
    sign_in_faults(ApiVersion::V3);
}

// ---------------------------------------------------------------------------
// Background renewal.

fn renewal_faults(api: ApiVersion) {
    let canary = Canary::new();
    let env = env(api);
    for c in &CASES {
        let what = format!("{api:?} renewal, {}", c.name);
        let log = Arc::new(Log::default());
        let canary_renewals = canary.log.count(Event::Renewed);
        let s = env.login(Some(&log));
        // Only sign-in requests fail (a refused port refuses everything).
        env.emu.set_fault(c.fault(FaultTarget::Login));
        let signed_in = Instant::now();
        // The first renewal is due at IDLE - MARGIN; it must fail with the fault's kind in time.
        wait_for(&format!("{what}: renewal failure reported"), || log.count(Event::RenewFailed) > 0);
        let (at, kind) = log.first_after(Event::RenewFailed, signed_in).unwrap();
        assert_eq!(kind, Some(c.want), "{what}: {:?}", s.last_error());
        let due = IDLE - MARGIN;
        let took = at - signed_in;
        assert!(took < due + REQUEST_TIMEOUT + SLACK, "{what}: failure reported {took:?} after sign-in (due {due:?})");
        assert_eq!(s.last_error().map(|e| e.kind), Some(c.want), "{what}: session error");
        // Meanwhile the id handed out is the old one, still valid at BILL (until it idles out).
        if let Some(valid) = env.id_valid_at_emulator(&s) {
            assert!(valid, "{what}: handed out an id the emulator no longer accepts");
        }
        // Keep the fault past the idle timeout: the session expires, and is not handed out.
        wait_for(&format!("{what}: expired"), || s.state() == State::Expired);
        assert_eq!(s.with_id(|_| ()).unwrap_err().kind, ErrorKind::SessionExpired, "{what}");
        canary.still_renewed(canary_renewals, &what);
        env.emu.clear_faults();
        // The background thread keeps retrying and brings the session back by itself.
        recovers(&env, &s, &what);
        assert!(log.count(Event::Renewed) >= 1, "{what}: no Renewed event");
    }
}

#[test]
fn renewal_v2() {
    renewal_faults(ApiVersion::V2);
}

#[test]
fn renewal_v3_https() {
    renewal_faults(ApiVersion::V3);
}

/// KEEPALIVE mode renews through GetSessionInfo / GET /v3/login/session: the
/// same faults on that request.
fn keepalive_faults(api: ApiVersion) {
    let env = env(api);
    for c in &CASES {
        let what = format!("{api:?} keepalive, {}", c.name);
        let log = Arc::new(Log::default());
        let s = Session::login(&Options { refresh: RefreshMode::KeepAlive, ..env.options(Some(&log)) }).unwrap();
        let id = s.with_id(str::to_owned).unwrap();
        let signed_in = Instant::now();
        env.emu.set_fault(c.fault(FaultTarget::Keepalive));
        wait_for(&format!("{what}: keepalive failure reported"), || log.count(Event::RenewFailed) > 0);
        let (at, kind) = log.first_after(Event::RenewFailed, signed_in).unwrap();
        // A refused port refuses everything; the others hit only the keepalive.
        assert_eq!(kind, Some(c.want), "{what}: {:?}", s.last_error());
        assert!(
            at - signed_in < IDLE - MARGIN + REQUEST_TIMEOUT + SLACK,
            "{what}: reported after {:?}",
            at - signed_in
        );
        env.emu.clear_faults();
        recovers(&env, &s, &what);
        // Recovered by a keepalive (same id) or, if the id idled out meanwhile, a sign-in.
        let now = s.with_id(str::to_owned).unwrap();
        assert!(now == id || log.count(Event::Renewed) >= 1, "{what}: id changed without a Renewed event");
    }
}

#[test]
fn keepalive_v3_https() {
    keepalive_faults(ApiVersion::V3);
}

// ---------------------------------------------------------------------------
// Calls.

fn call_faults(api: ApiVersion) {
    let env = env(api);
    let s = env.login(None);
    for c in &CASES {
        let what = format!("{api:?} call, {}", c.name);
        env.emu.set_fault(c.fault(FaultTarget::Calls));
        // A cut or mislabelled 200 reply is a protocol error on both APIs, never data.
        expect_fail(&what, c.want, || env.call(&s));
        // A failed call does not kill the session.
        assert!(matches!(s.state(), State::Active | State::Renewing), "{what}: state {:?}", s.state());
        env.emu.clear_faults();
        recovers(&env, &s, &what);
    }
}

#[test]
fn calls_v2() {
    call_faults(ApiVersion::V2);
}

#[test]
fn calls_v3_https() {
    call_faults(ApiVersion::V3);
}

// ---------------------------------------------------------------------------
// TLS and plain HTTP.

#[test]
fn tls_wrong_ca_is_refused() {
    let env = env(ApiVersion::V3);
    let wrong = env.emu.wrong_ca_file().unwrap().to_owned();
    let opts = Options { ca_file: Some(wrong), ..env.options(None) };
    expect_fail("sign-in trusting the wrong CA", ErrorKind::Tls, || Session::login(&opts));
    // The built-in roots do not trust the emulator either.
    let opts = Options { ca_file: None, ..env.options(None) };
    expect_fail("sign-in trusting Mozilla's roots", ErrorKind::Tls, || Session::login(&opts));
    // Not PEM at all: refused when the options are used, before any network.
    let dir = std::env::temp_dir().join(format!("bill-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let opts = Options { ca_file: Some(junk), ..env.options(None) };
    assert_eq!(Session::login(&opts).err().map(|e| e.kind), Some(ErrorKind::InvalidArg));
    let _ = std::fs::remove_dir_all(&dir);
    // And the right CA works.
    let s = env.login(None);
    assert_eq!(env.call(&s).unwrap().http_status, 200);
    // Plain HTTP to the HTTPS port is not mistaken for a reply.
    let plain = env.emu.v3_base().replace("https://", "http://");
    let opts = Options { base_url: Some(plain), ..env.options(None) };
    let e = Session::login(&opts).expect_err("plain HTTP to a TLS port signed in");
    assert!(matches!(e.kind, ErrorKind::Network | ErrorKind::Protocol | ErrorKind::Timeout), "{e}");
}

#[test]
fn http_to_a_non_loopback_host_is_refused_at_option_time() {
    use bill::ffi::*;
    use std::ffi::CString;
    let mut o: *mut bill_options = std::ptr::null_mut();
    // SAFETY: out-pointer to a local; every string is NUL-terminated; o is freed once.
    unsafe {
        assert_eq!(bill_options_new(&mut o), bill_status::BILL_OK);
        for url in [
            "http://api.bill.com/api/v2",
            "http://gateway.stage.bill.com/connect",
            "http://10.0.0.1/connect",
            "http://127.0.0.1.evil.example/x",
            "http://[::2]:80/",
        ] {
            let c = CString::new(url).unwrap();
            assert_eq!(bill_options_set_base_url(o, c.as_ptr()), bill_status::BILL_ERR_INVALID_ARG, "{url}");
        }
        for url in [
            "http://127.0.0.1:9/connect",
            "http://localhost/api/v2",
            "http://[::1]:8080/connect",
            "https://api.bill.com/api/v2",
        ] {
            let c = CString::new(url).unwrap();
            assert_eq!(bill_options_set_base_url(o, c.as_ptr()), bill_status::BILL_OK, "{url}");
        }
        bill_options_free(o);
    }
    // The Rust API checks at sign-in, before any network traffic.
    let opts = Options {
        user_name: "u".into(),
        password: "p".into(),
        dev_key: "k".into(),
        org_id: "o".into(),
        base_url: Some("http://api.bill.com/api/v2".into()),
        ..Options::default()
    };
    let t = Instant::now();
    assert_eq!(Session::login(&opts).err().map(|e| e.kind), Some(ErrorKind::InvalidArg));
    assert!(t.elapsed() < Duration::from_millis(500));
}

// ---------------------------------------------------------------------------
// A slow reply (within the timeout) must not stretch the idle accounting.

/// BILL's idle timer starts when it handles a request, not when its reply
/// arrives here. After a sign-in (or call) whose reply took a while, the
/// session must not be treated as fresher than BILL treats it: every id handed
/// out must still be valid at the emulator.
fn slow_reply_keeps_ids_valid(target: FaultTarget) {
    let env = env(ApiVersion::V3);
    let hold = Duration::from_millis(1500);
    let margin = Duration::from_millis(500);
    let opts = Options { request_timeout: Duration::from_secs(5), renew_margin: margin, ..env.options(None) };
    if target == FaultTarget::Login {
        env.emu.set_fault(Fault::new(FaultMode::Delay).target(target).delay_ms(hold.as_millis() as u64));
    }
    let s = Session::login(&opts).unwrap();
    if target == FaultTarget::Calls {
        env.emu.set_fault(Fault::new(FaultMode::Delay).target(target).delay_ms(hold.as_millis() as u64));
        env.call(&s).unwrap();
    }
    env.emu.clear_faults();
    let first = s.with_id(str::to_owned).unwrap();
    let end = Instant::now() + IDLE + hold + Duration::from_secs(2);
    let mut checked = 0;
    while Instant::now() < end {
        let since = env.emu.now_ms();
        if let Ok(id) = s.with_id(str::to_owned) {
            let info = env.emu.session(&id);
            assert!(
                valid_since(&env.emu, &id, since),
                "{target:?}: handed out an id the emulator expired {} ms ago ({} ids checked; renewed: {})",
                env.emu.now_ms().saturating_sub(info.last_seen_ms.unwrap_or(0) + IDLE.as_millis() as u64),
                checked,
                id != first
            );
            checked += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// Defect in src/session.rs (reported; not ours to change): `install()` and
// `call()` (and the keepalive branch of `Task::run`) record the last use as the
// time the reply arrived, but BILL starts its idle timer when it handles the
// request. After a reply that took `hold`, libbill believes the session is
// `hold` fresher than BILL does, so for up to `hold` before the renewal it
// hands out an id BILL has already dropped. Fix: take the clock before sending
// and store that (the sign-in start in `install`, the call start in `call`).
#[test]
fn slow_sign_in_reply_keeps_ids_valid() {
    slow_reply_keeps_ids_valid(FaultTarget::Login);
}

#[test]
fn slow_call_reply_keeps_ids_valid() {
    slow_reply_keeps_ids_valid(FaultTarget::Calls);
}
