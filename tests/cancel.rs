//! Per-call deadlines and cancellation: a triggered handle ends a call that
//! waits on the network or for a slot, and the session and its connection
//! pool stay clean.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bill::cancel::Cancel;
use bill::options::ApiVersion;
use bill::session::CallOptions;
use bill::{ErrorKind, Session};
use common::{emulator, ms, options, wait_until};

fn slow_call(s: &Session, call: &CallOptions) -> bill::error::Result<bill::session::Response> {
    s.call_with("POST", "vendors", br#"{"sleepMs":20000}"#, call)
}

#[test]
fn a_cancel_from_another_thread_ends_a_slow_call_and_the_next_call_succeeds() {
    let e = emulator(60_000);
    let mut o = options(&e, "cancel-slow", ApiVersion::V3, 60_000, 1000);
    o.request_timeout = ms(30_000);
    let s = Arc::new(Session::login(&o).unwrap());
    let cancel = Cancel::new();
    let call = CallOptions { timeout: None, cancel: Some(cancel.clone()) };
    let caller = {
        let s = s.clone();
        std::thread::spawn(move || slow_call(&s, &call))
    };
    assert!(wait_until(ms(10_000), || e.stats().in_flight == 1), "the call reached the emulator");
    cancel.trigger();
    // The reply is held for 20 s; the call ends long before.
    let r = caller.join().unwrap();
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    let calls_before = e.stats().calls;
    let next = s.call("GET", "vendors", b"").unwrap();
    assert_eq!(next.http_status, 200);
    assert_eq!(e.stats().calls, calls_before + 1, "the next call succeeded first time");
    // A handle that is already triggered stops a call before it is sent.
    let again = CallOptions { timeout: None, cancel: Some(cancel) };
    assert_eq!(s.call_with("GET", "vendors", b"", &again).unwrap_err().kind, ErrorKind::Cancelled);
    assert_eq!(e.stats().calls, calls_before + 1);
}

#[test]
fn a_per_call_timeout_shortens_the_session_timeout() {
    let e = emulator(60_000);
    let mut o = options(&e, "cancel-timeout", ApiVersion::V3, 60_000, 1000);
    o.request_timeout = ms(30_000);
    let s = Session::login(&o).unwrap();
    let call = CallOptions { timeout: Some(ms(500)), cancel: None };
    assert_eq!(slow_call(&s, &call).unwrap_err().kind, ErrorKind::Timeout);
    // A longer per-call timeout cannot lengthen the session's.
    let mut short = options(&e, "cancel-timeout2", ApiVersion::V3, 60_000, 1000);
    short.request_timeout = ms(500);
    let s2 = Session::login(&short).unwrap();
    let long = CallOptions { timeout: Some(Duration::from_secs(60)), cancel: None };
    assert_eq!(slow_call(&s2, &long).unwrap_err().kind, ErrorKind::Timeout);
    assert_eq!(s.call("GET", "vendors", b"").unwrap().http_status, 200);
}

#[test]
fn a_cancel_ends_a_wait_for_a_request_slot() {
    let e = emulator(60_000);
    let mut o = options(&e, "cancel-slot", ApiVersion::V3, 60_000, 1000);
    o.max_in_flight = 1;
    o.request_timeout = ms(30_000);
    let s = Arc::new(Session::login(&o).unwrap());
    let holder_cancel = Cancel::new();
    let holder = {
        let (s, c) = (s.clone(), holder_cancel.clone());
        std::thread::spawn(move || slow_call(&s, &CallOptions { timeout: None, cancel: Some(c) }))
    };
    assert!(wait_until(ms(10_000), || e.stats().in_flight == 1), "the first call holds the only slot");
    let waiter_cancel = Cancel::new();
    let waiter = {
        let (s, c) = (s.clone(), waiter_cancel.clone());
        std::thread::spawn(move || s.call_with("GET", "vendors", b"", &CallOptions { timeout: None, cancel: Some(c) }))
    };
    std::thread::sleep(ms(100)); // let it queue; the assertions hold either way
    waiter_cancel.trigger();
    assert_eq!(waiter.join().unwrap().unwrap_err().kind, ErrorKind::Cancelled);
    holder_cancel.trigger();
    assert_eq!(holder.join().unwrap().unwrap_err().kind, ErrorKind::Cancelled);
    assert_eq!(s.call("GET", "vendors", b"").unwrap().http_status, 200, "the slot came back");
}

#[test]
fn renew_and_login_take_the_same_options() {
    let e = emulator(60_000);
    let o = options(&e, "cancel-renew", ApiVersion::V3, 60_000, 1000);
    let cancel = Cancel::new();
    cancel.trigger();
    let call = CallOptions { timeout: None, cancel: Some(cancel) };
    assert_eq!(Session::login_with(&o, &call).unwrap_err().kind, ErrorKind::Cancelled);
    let s = Session::login(&o).unwrap();
    assert_eq!(s.renew_with(&call).unwrap_err().kind, ErrorKind::Cancelled);
    s.renew_with(&CallOptions::default()).unwrap();
}
