//! Fault injection and TLS, over real loopback sockets.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bill_emulator::*;
use common::*;
use serde_json::json;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

fn emu() -> Emulator {
    Emulator::start(Config::default()).unwrap()
}

fn keepalive(e: &Emulator, sid: &str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    agent()
        .post(format!("{}/GetSessionInfo.json", e.v2_base()))
        .send_form([("devKey", DEMO_DEV_KEY), ("sessionId", sid)])
}

fn connect(e: &Emulator) -> std::io::Result<TcpStream> {
    TcpStream::connect(("127.0.0.1", e.port()))
}

#[test]
fn refuse_closes_the_port_and_control_stays_up() {
    let e = emu();
    let sid = v2_login(&e);
    let mut open = connect(&e).unwrap();
    e.set_fault(Fault::new(FaultMode::Refuse));
    assert_eq!(connect(&e).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    // Connections open before the fault are dropped too.
    let mut buf = [0u8; 16];
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(open.read(&mut buf), Ok(0) | Err(_)));
    assert!(keepalive(&e, &sid).is_err());
    let health = read(agent().get(format!("{}/_emu/health", e.control_base())).call());
    assert_eq!(health.status, 200);

    e.clear_faults();
    assert_eq!(read(keepalive(&e, &sid)).v2_code(), None);

    // Through the control port, and back by itself after delay_ms.
    let r = read(
        agent()
            .post(format!("{}/_emu/faults", e.control_base()))
            .content_type("application/json")
            .send(r#"{"mode":"refuse","delay_ms":300}"#),
    );
    assert_eq!(r.status, 200);
    assert!(connect(&e).is_err());
    wait_until("port back", || connect(&e).is_ok());
    assert_eq!(read(keepalive(&e, &sid)).v2_code(), None);
}

#[test]
fn reset_sends_part_of_a_reply_then_rst() {
    let e = emu();
    let sid = v2_login(&e);
    e.set_fault(Fault::new(FaultMode::Reset).count(1));
    let mut s = connect(&e).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "POST /api/v2/List/Vendor.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 2\r\n\r\na=").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => break Some(err.kind()),
        }
    };
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert_eq!(end, Some(ErrorKind::ConnectionReset));
    // count 1: the next request is answered normally.
    assert_eq!(read(keepalive(&e, &sid)).v2_code(), None);
    let faults: Vec<_> = e.log().iter().filter_map(|ev| ev.fault).collect();
    assert_eq!(faults, vec![FaultMode::Reset]);
    assert_eq!(e.stats().faults_injected, 1);
}

#[test]
fn delay_holds_the_reply() {
    let e = emu();
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Login).delay_ms(400).count(2));
    let t = Instant::now();
    let sid = v2_login(&e);
    assert!(t.elapsed() >= Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(read(keepalive(&e, &sid)).v2_code(), None);
    assert!(t.elapsed() < Duration::from_millis(400), "keepalive is not a login");
    let quick: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_millis(100))).build().into();
    let r = quick
        .post(format!("{}/v3/login", e.v3_base()))
        .content_type("application/json")
        .send(v3_login_body().to_string());
    assert!(matches!(r, Err(ureq::Error::Timeout(_))), "{r:?}");
}

#[test]
fn http_errors_malformed_and_wrong_content_type() {
    let e = emu();
    let sid = v2_login(&e);
    let v3sid = v3_login(&e);

    e.set_fault(Fault::new(FaultMode::Http500).count(2));
    let r = read(keepalive(&e, &sid));
    assert_eq!((r.status, r.content_type.as_deref()), (500, Some("text/html; charset=utf-8")));
    let r = v3(&e, "GET", "/v3/login/session", Some(&v3sid), None);
    assert_eq!((r.status, r.v3_code().as_str()), (500, "BDC_1001"));

    e.set_fault(Fault::new(FaultMode::Http503).target(FaultTarget::Keepalive).count(1));
    assert_eq!(v2_call(&e, "List/Vendor.json", &sid, &json!({})).status, 200, "calls are not keepalives");
    assert_eq!(read(keepalive(&e, &sid)).status, 503);
    assert_eq!(read(keepalive(&e, &sid)).status, 200);

    e.set_fault(Fault::new(FaultMode::Malformed).count(1));
    let r = read(keepalive(&e, &sid));
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());

    // Processed as usual, but labelled HTML.
    e.set_fault(Fault::new(FaultMode::WrongContentType).target(FaultTarget::Login));
    let before = e.stats().logins;
    let r = v2(
        &e,
        "Login.json",
        &[("userName", DEMO_USER), ("password", DEMO_PASSWORD), ("orgId", DEMO_ORG), ("devKey", DEMO_DEV_KEY)],
    );
    assert_eq!(r.content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert!(r.v2_data()["sessionId"].is_string());
    assert_eq!(e.stats().logins, before + 1);
    assert_eq!(e.faults().len(), 1, "count 0 stays until cleared");

    // Faults can stack; `none` clears all.
    e.add_fault(Fault::new(FaultMode::Http503).target(FaultTarget::Logout));
    assert_eq!(e.faults().len(), 2);
    e.set_fault(Fault::new(FaultMode::None));
    assert!(e.faults().is_empty());
}

#[test]
fn huge_body_is_64_mib() {
    let e = emu();
    let sid = v2_login(&e);
    e.set_fault(Fault::new(FaultMode::HugeBody).count(2));
    let r = keepalive(&e, &sid).unwrap();
    assert!(r.into_body().into_with_config().limit(1 << 20).read_to_vec().is_err(), "a capped reader stops");
    let r = keepalive(&e, &sid).unwrap();
    let n = std::io::copy(&mut r.into_body().into_reader(), &mut std::io::sink()).unwrap();
    assert_eq!(n, 64 << 20);
}

fn tls_agent(pem_file: &std::path::Path) -> ureq::Agent {
    let pem = std::fs::read(pem_file).unwrap();
    let roots = RootCerts::Specific(Arc::new(vec![Certificate::from_pem(&pem).unwrap()]));
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[test]
fn tls_with_right_and_wrong_ca() {
    let dir = std::env::temp_dir().join(format!("bill-emu-tls-{}", std::process::id()));
    let e = Emulator::start(Config { tls: true, state_dir: Some(dir.clone()), ..Config::default() }).unwrap();
    assert!(e.v2_base().starts_with("https://127.0.0.1:"));
    assert_eq!(e.info().scheme, "https");
    let (ca, wrong) = (e.ca_file().unwrap(), e.wrong_ca_file().unwrap());
    assert!(ca.starts_with(&dir) && wrong.starts_with(&dir));

    let form = [("userName", DEMO_USER), ("password", DEMO_PASSWORD), ("orgId", DEMO_ORG), ("devKey", DEMO_DEV_KEY)];
    let r = read(tls_agent(ca).post(format!("{}/Login.json", e.v2_base())).send_form(form));
    assert_eq!(r.v2_data()["apiEndPoint"], e.v2_base());
    let r = read(
        tls_agent(ca)
            .post(format!("{}/v3/login", e.v3_base()))
            .content_type("application/json")
            .send(v3_login_body().to_string()),
    );
    assert_eq!(r.status, 200);

    let err = tls_agent(wrong).post(format!("{}/Login.json", e.v2_base())).send_form(form).unwrap_err();
    assert!(matches!(err, ureq::Error::Rustls(_) | ureq::Error::Io(_)), "{err:?}");
    assert!(agent().post(format!("{}/Login.json", e.v2_base())).send_form(form).is_err(), "public roots refuse it");
    // The control port stays plain HTTP.
    assert_eq!(read(agent().get(format!("{}/_emu/health", e.control_base())).call()).status, 200);
    drop(e);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn temporary_ca_folder_is_removed_on_drop() {
    let e = Emulator::start(Config { tls: true, ..Config::default() }).unwrap();
    let ca = e.ca_file().unwrap().to_path_buf();
    assert!(ca.exists());
    drop(e);
    assert!(!ca.exists());
}

/// A realistic hostile password: spaces, quotes, `&`, `+`, `/` and non-ASCII.
const ECHO_PW: &str = "correct \"horse\" & battery+staple/é ü";
const ECHO_USER: &str = "Echo.User@Example.com";
const ECHO_KEY: &str = "ECHO-DEVKEY-0123456789";

fn echo_emu() -> Emulator {
    let e = emu();
    e.add_account(Account::new(ECHO_USER, ECHO_PW, "00901ECHO", ECHO_KEY));
    e
}

fn echo_v2_login(e: &Emulator) -> Resp {
    v2(e, "Login.json", &[("userName", ECHO_USER), ("password", ECHO_PW), ("orgId", "00901ECHO"), ("devKey", ECHO_KEY)])
}

fn echo_v3_login(e: &Emulator) -> Resp {
    let body = json!({"username": ECHO_USER, "password": ECHO_PW, "organizationId": "00901ECHO", "devKey": ECHO_KEY});
    v3(e, "POST", "/v3/login", None, Some(&body))
}

#[test]
fn echo_puts_a_request_secret_in_the_error() {
    let e = echo_emu();
    // Raw, in the message, straddling a 512-character cut.
    e.set_fault(Fault::echo(Echo::new(EchoSecret::Password).offset(500)).target(FaultTarget::Login).count(1));
    let r = echo_v2_login(&e);
    assert_eq!((r.status, r.v2_code().as_deref()), (200, Some("BDC_1111")));
    assert_eq!(r.v2_message(), format!("{}{ECHO_PW}", "x".repeat(500)));
    assert_eq!(e.stats().logins, 0, "the request was not processed");
    assert!(echo_v2_login(&e).v2_data()["sessionId"].is_string(), "count 1");

    // JSON-escaped, as the v3 error code itself, with a chosen status.
    let echo = Echo::new(EchoSecret::Password).place(EchoPlace::Code).encoding(EchoEncoding::Json).offset(3);
    e.set_fault(Fault::echo(echo.status(401)).count(1));
    let r = echo_v3_login(&e);
    assert_eq!(r.status, 401);
    let want = r#"xxxcorrect \u0022horse\u0022 \u0026 battery+staple\/\u00e9 \u00fc"#;
    assert_eq!(r.v3_code(), want);

    // Form-encoded in the Content-Type, taken from the session's account on a
    // keepalive that does not carry the password.
    let sid = echo_v3_login(&e).json()["sessionId"].as_str().unwrap().to_string();
    let echo = Echo::new(EchoSecret::Password).place(EchoPlace::ContentType).encoding(EchoEncoding::Form).offset(60);
    e.set_fault(Fault::echo(echo).target(FaultTarget::Keepalive).count(1));
    let r = read(
        agent()
            .get(format!("{}/v3/login/session", e.v3_base()))
            .header("devKey", ECHO_KEY)
            .header("sessionId", &sid)
            .call(),
    );
    let form = "correct+%22horse%22+%26+battery%2Bstaple%2F%C3%A9+%C3%BC";
    let want = format!("text/plain;x={}{form}", "x".repeat(60 - "text/plain;x=".len()));
    assert_eq!(r.content_type.as_deref(), Some(want.as_str()));
    assert_eq!(r.v3_code(), "BDC_1111");

    // Upper-cased user name, the session id from a header, the devKey from a v2 form.
    let echo = Echo::new(EchoSecret::UserName).encoding(EchoEncoding::Upper).code("BDC_1101");
    e.set_fault(Fault::echo(echo).count(1));
    assert_eq!(echo_v2_login(&e).v2_message(), ECHO_USER.to_uppercase());
    e.set_fault(Fault::echo(Echo::new(EchoSecret::SessionId)).count(1));
    let r = v3(&e, "GET", "/v3/login/session", Some(&sid), None);
    assert_eq!(r.json()[0]["message"], sid.as_str());
    e.set_fault(Fault::echo(Echo::new(EchoSecret::DevKey).offset(2)).count(1));
    let r = v2(&e, "GetSessionInfo.json", &[("devKey", ECHO_KEY), ("sessionId", "nope")]);
    assert_eq!(r.v2_message(), format!("xx{ECHO_KEY}"));

    // The log names the fault, never the echoed text.
    let log = e.log();
    assert!(log
        .iter()
        .filter(|ev| ev.fault == Some(FaultMode::Echo))
        .all(|ev| ev.kind == EventKind::Fault && ev.code.is_none() && ev.session_id.is_none()));
    assert_eq!(log.iter().filter(|ev| ev.fault == Some(FaultMode::Echo)).count(), 6);
}

#[test]
fn echo_through_the_control_port() {
    let e = echo_emu();
    let body = json!({"mode": "echo", "target": "login", "count": 1,
        "echo": {"secret": "user_name", "place": "message", "encoding": "upper", "offset": 10, "code": "BDC_1109", "status": 418}});
    let r = read(
        agent()
            .post(format!("{}/_emu/faults", e.control_base()))
            .content_type("application/json")
            .send(body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["faults"][0]["echo"]["secret"], "user_name");
    let r = echo_v3_login(&e);
    assert_eq!((r.status, r.v3_code().as_str()), (418, "BDC_1109"));
    assert_eq!(r.json()[0]["message"], format!("xxxxxxxxxx{}", ECHO_USER.to_uppercase()));
    // An echo without details echoes the raw password in the message.
    let r = read(
        agent()
            .post(format!("{}/_emu/faults", e.control_base()))
            .content_type("application/json")
            .send(r#"{"mode":"echo"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(echo_v2_login(&e).v2_message(), ECHO_PW);
}

/// Sends raw HTTP/1.1 (with `Connection: close`) and returns the whole reply.
fn raw(e: &Emulator, head: &str, body: &str) -> String {
    let mut s = connect(e).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{head}Host: x\r\nConnection: close\r\n\r\n{body}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn chunked_request_bodies_are_counted() {
    let e = emu();
    let sid = v3_login(&e);
    let plain = raw(
        &e,
        &format!(
            "POST /connect/v3/logout HTTP/1.1\r\ndevKey: {DEMO_DEV_KEY}\r\nsessionId: nope\r\nContent-Length: 0\r\n"
        ),
        "",
    );
    assert!(plain.starts_with("HTTP/1.1 401"), "{plain}");
    assert_eq!(e.stats().chunked_requests, 0);
    let chunked = raw(
        &e,
        &format!("POST /connect/v3/logout HTTP/1.1\r\ndevKey: {DEMO_DEV_KEY}\r\nsessionId: {sid}\r\nTransfer-Encoding: chunked\r\n"),
        "0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert_eq!(e.stats().chunked_requests, 1);
    let flags: Vec<bool> = e.log().iter().map(|ev| ev.chunked).collect();
    assert_eq!(flags, vec![false, false, true]);
    let log = read(agent().get(format!("{}/_emu/log", e.control_base())).call()).json();
    assert_eq!(log[2]["chunked"], true);
}

#[test]
fn delay_can_hold_calls_only() {
    let e = Arc::new(emu());
    let sid = v2_login(&e);
    e.set_fault(Fault::new(FaultMode::Delay).target(FaultTarget::Calls).delay_ms(3000).count(1));
    let held = {
        let (e, sid) = (e.clone(), sid.clone());
        std::thread::spawn(move || v2_call(&e, "List/Vendor.json", &sid, &json!({})).status)
    };
    wait_until("the held call processed", || e.stats().calls == 1);
    // Sign-in and keepalive go through while the call is held.
    v2_login(&e);
    assert_eq!(read(keepalive(&e, &sid)).v2_code(), None);
    assert!(!held.is_finished(), "the call is still held");
    assert_eq!(held.join().unwrap(), 200);
}
