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
