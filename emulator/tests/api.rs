//! v2 and v3 envelopes, error codes, sessions and limits over real loopback HTTP.

mod common;

use std::time::Duration;

use bill_emulator::*;
use common::*;
use serde_json::{json, Value};

fn emu() -> Emulator {
    Emulator::start(Config::default()).unwrap()
}

const CREDS: [(&str, &str); 4] =
    [("userName", DEMO_USER), ("password", DEMO_PASSWORD), ("orgId", DEMO_ORG), ("devKey", DEMO_DEV_KEY)];

fn creds_with(key: &str, value: &str) -> Vec<(&'static str, String)> {
    CREDS.iter().map(|&(k, v)| (k, if k == key { value.to_string() } else { v.to_string() })).collect()
}

fn list_orgs(e: &Emulator, password: &str) -> Resp {
    let form = [("devKey", DEMO_DEV_KEY), ("userName", DEMO_USER), ("password", password)];
    v2(e, "ListOrgs.json", &form)
}

fn login_with(e: &Emulator, key: &str, value: &str) -> Resp {
    let form = creds_with(key, value);
    let form: Vec<(&str, &str)> = form.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.as_str())).collect();
    v2(e, "Login.json", &form)
}

#[test]
fn v2_login_call_logout() {
    let e = emu();
    let r = v2(&e, "Login.json", &CREDS);
    assert_eq!(r.status, 200);
    assert!(
        r.text.starts_with(r#"{"response_status":0,"response_message":"Success","response_data":{"sessionId":"#),
        "{}",
        r.text
    );
    let d = r.v2_data();
    let sid = d["sessionId"].as_str().unwrap();
    assert!((40..=60).contains(&sid.len()), "{sid}");
    assert!(sid.contains('+') && sid.contains('/') && sid.contains('=') && sid.contains('!'));
    assert_eq!(d["orgId"], DEMO_ORG);
    assert_eq!(d["apiEndPoint"], e.v2_base());
    let user_id = d["usersId"].as_str().unwrap().to_string();

    let info = v2(&e, "GetSessionInfo.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", sid)]).v2_data();
    assert_eq!(info, json!({"organizationId": DEMO_ORG, "userId": user_id}));

    let r = v2_call(&e, "Crud/Read/Vendor.json", sid, &json!({"id": "00901ABC"}));
    assert_eq!(r.v2_data(), json!({"endpoint": "Crud/Read/Vendor.json", "echo": {"id": "00901ABC"}}));
    let r = v2_call(&e, "List/Vendor.json", sid, &json!({"start": 0, "max": 10}));
    assert_eq!(r.v2_data()["endpoint"], "List/Vendor.json");

    let out = v2(&e, "Logout.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", sid)]);
    assert_eq!(out.v2_data(), json!({}));
    let after = v2(&e, "GetSessionInfo.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", sid)]);
    assert_eq!(after.status, 200);
    assert_eq!(after.v2_code().as_deref(), Some("BDC_1109"));
    assert_eq!(after.v2_message(), "Session is invalid.  Please log in.");
    let s = e.session(sid);
    assert!(s.known && !s.valid);
    assert_eq!(s.end_reason, Some(EndReason::Logout));

    let st = e.stats();
    assert_eq!((st.logins, st.logins_v2, st.keepalives, st.calls, st.logouts, st.rejected_1109), (1, 1, 1, 2, 1, 1));
    assert_eq!(st.sessions_issued, vec![sid.to_string()]);
    let kinds: Vec<EventKind> = e.log().iter().map(|ev| ev.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, vec![Login, Keepalive, Call, Call, Logout, Rejected]);
    assert_eq!(e.log()[5].code.as_deref(), Some("BDC_1109"));
}

#[test]
fn v2_login_errors() {
    let e = emu();
    for field in ["userName", "password", "orgId", "devKey"] {
        let r = login_with(&e, field, "");
        assert_eq!(r.v2_code().as_deref(), Some("BDC_1108"), "{field}");
        assert_eq!(r.v2_message(), format!("Missing parameter value for parameter: {field}."));
    }
    assert_eq!(login_with(&e, "devKey", "NOPE").v2_code().as_deref(), Some("BDC_1102"));
    assert_eq!(login_with(&e, "password", "wrong").v2_code().as_deref(), Some("BDC_1101"));
    assert_eq!(login_with(&e, "userName", "who@example.com").v2_code().as_deref(), Some("BDC_1101"));
    let r = login_with(&e, "orgId", "fakeOrganizationId");
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1129"));
    assert_eq!(r.v2_message(), "Invalid parameter value for parameter,value: orgId, fakeOrganizationId.");

    e.add_account(Account {
        dev_key_inactive: true,
        ..Account::new("idle@example.com", "pw-idle-1", "00901ORG2", "OLD-KEY")
    });
    let r = v2(
        &e,
        "Login.json",
        &[("userName", "idle@example.com"), ("password", "pw-idle-1"), ("orgId", "00901ORG2"), ("devKey", "OLD-KEY")],
    );
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1103"));
    e.add_account(Account { locked: true, ..Account::new("lock@example.com", "pw-lock-1", DEMO_ORG, DEMO_DEV_KEY) });
    let r = v2(
        &e,
        "Login.json",
        &[("userName", "lock@example.com"), ("password", "pw-lock-1"), ("orgId", DEMO_ORG), ("devKey", DEMO_DEV_KEY)],
    );
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1110"));

    e.add_account(Account {
        org_name: Some("Second".into()),
        ..Account::new(DEMO_USER, DEMO_PASSWORD, "00901SECOND", DEMO_DEV_KEY)
    });
    let orgs = list_orgs(&e, DEMO_PASSWORD).v2_data();
    assert_eq!(
        orgs,
        json!([{"orgId": DEMO_ORG, "orgName": DEMO_ORG_NAME}, {"orgId": "00901SECOND", "orgName": "Second"}])
    );
    let bad = list_orgs(&e, "x");
    assert_eq!(bad.v2_code().as_deref(), Some("BDC_1101"));
    assert_eq!(e.stats().login_attempts, 12);
}

#[test]
fn v2_authenticated_call_errors() {
    let e = emu();
    let sid = v2_login(&e);
    let data = json!({}).to_string();
    let r = v2(&e, "List/Vendor.json", &[("sessionId", &sid), ("data", &data)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1102"));
    assert_eq!(r.v2_message(), "Developer key must be specified.");
    let r = v2(&e, "List/Vendor.json", &[("devKey", "OTHER"), ("sessionId", &sid), ("data", &data)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1102"));

    // A session only works with the devKey it was issued to.
    e.add_account(Account::new("dev2@example.com", "pw-dev2-1", "00901ORG2", "KEY-TWO"));
    let r = v2(&e, "List/Vendor.json", &[("devKey", "KEY-TWO"), ("sessionId", &sid), ("data", &data)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1109"));
    let r = v2(&e, "List/Vendor.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", "nope"), ("data", &data)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1109"));
    let r = v2(&e, "List/Vendor.json", &[("devKey", DEMO_DEV_KEY), ("data", &data)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1109"));
    let r = v2(&e, "List/Vendor.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", &sid)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1108"));
    let r = v2(&e, "List/Vendor.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", &sid), ("data", "{not json")]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1122"));

    // A JSON body is not a form.
    let body = json!({"devKey": DEMO_DEV_KEY, "sessionId": sid}).to_string();
    let r = read(agent().post(format!("{}/List/Vendor.json", e.v2_base())).content_type("application/json").send(body));
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1122"));

    for path in ["Crud/Read/Vendor", "nothing", ".json"] {
        let r = v2(&e, path, &CREDS);
        assert_eq!((r.status, r.v2_code().as_deref()), (404, Some("BDC_1121")), "{path}");
    }
    let r = read(agent().get(format!("{}/Login.json", e.v2_base())).call());
    assert_eq!((r.status, r.v2_code().as_deref()), (404, Some("BDC_1121")));
    let r = read(agent().post(format!("http://127.0.0.1:{}/elsewhere", e.port())).send_empty());
    assert_eq!((r.status, r.v2_code().as_deref()), (404, Some("BDC_1121")));

    // A v2 session is not a v3 one.
    let r = v3(&e, "GET", "/v3/login/session", Some(&sid), None);
    assert_eq!((r.status, r.v3_code().as_str()), (401, "BDC_1109"));
    // Refused calls did not slide the timer.
    assert_eq!(e.session(&sid).last_seen_ms, e.session(&sid).created_ms);
}

#[test]
fn v3_login_session_logout() {
    let e = emu();
    let r = v3(&e, "POST", "/v3/login", None, Some(&v3_login_body()));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["organizationId"], DEMO_ORG);
    assert_eq!(v["trusted"], false);
    assert!(v["userId"].as_str().unwrap().starts_with("006"));
    let sid = v["sessionId"].as_str().unwrap();

    let s = v3(&e, "GET", "/v3/login/session", Some(sid), None);
    assert_eq!(s.status, 200);
    assert_eq!(
        s.json(),
        json!({"organizationId": DEMO_ORG, "userId": v["userId"], "mfaStatus": "DISABLED", "mfaBypass": false})
    );

    let g = v3(&e, "GET", "/v3/vendors", Some(sid), None);
    assert_eq!(g.json(), json!({"method": "GET", "path": "/connect/v3/vendors", "echo": null}));
    let p = v3(&e, "POST", "/v3/bills", Some(sid), Some(&json!({"amount": 12.5})));
    assert_eq!(p.json()["echo"], json!({"amount": 12.5}));

    let out = v3(&e, "POST", "/v3/logout", Some(sid), None);
    assert_eq!((out.status, out.text.as_str()), (200, ""));
    for (m, path) in [("GET", "/v3/login/session"), ("POST", "/v3/logout"), ("GET", "/v3/vendors")] {
        let r = v3(&e, m, path, Some(sid), None);
        assert_eq!((r.status, r.v3_code().as_str()), (401, "BDC_1109"), "{m} {path}");
        assert_eq!(r.json()[0]["message"], "Session is invalid.  Please log in.");
    }
    let r = v3(&e, "GET", "/v3/vendors", None, None);
    assert_eq!((r.status, r.v3_code().as_str()), (400, "BDC_1102"));
    let st = e.stats();
    assert_eq!((st.logins_v3, st.keepalives, st.calls, st.logouts, st.rejected_1109), (1, 1, 2, 1, 3));
}

#[test]
fn v3_login_errors() {
    let e = emu();
    e.add_account(Account {
        dev_key_inactive: true,
        ..Account::new("a@example.com", "pw-aaaa-1", "00901A", "KEY-OFF")
    });
    e.add_account(Account { locked: true, ..Account::new("b@example.com", "pw-bbbb-1", DEMO_ORG, DEMO_DEV_KEY) });
    let with = |k: &str, v: Value| {
        let mut b = v3_login_body();
        b[k] = v;
        b
    };
    let cases = [
        (with("password", json!("nope")), "BDC_1101"),
        (with("devKey", json!("NOPE")), "BDC_1102"),
        (
            json!({"username": "a@example.com", "password": "pw-aaaa-1", "organizationId": "00901A", "devKey": "KEY-OFF"}),
            "BDC_1103",
        ),
        (with("username", Value::Null), "BDC_1108"),
        (with("organizationId", json!("")), "BDC_1108"),
        (
            json!({"username": "b@example.com", "password": "pw-bbbb-1", "organizationId": DEMO_ORG, "devKey": DEMO_DEV_KEY}),
            "BDC_1110",
        ),
        (with("organizationId", json!("00901XX")), "BDC_1129"),
    ];
    for (body, code) in cases {
        let r = v3(&e, "POST", "/v3/login", None, Some(&body));
        assert_eq!((r.status, r.v3_code().as_str()), (400, code), "{body}");
    }
    let r = read(agent().post(format!("{}/v3/login", e.v3_base())).content_type("application/json").send("{oops"));
    assert_eq!((r.status, r.v3_code().as_str()), (400, "BDC_1122"));
    let r = read(agent().post(format!("{}/nothing", e.v3_base())).send_empty());
    assert_eq!((r.status, r.v3_code().as_str()), (404, "BDC_1121"));
}

#[test]
fn sliding_idle_timeout_on_injected_clock() {
    let e = emu(); // BILL's 35 minutes
    let sid = v2_login(&e);
    let v3sid = v3_login(&e);
    let minutes = |m: u64| Duration::from_secs(60 * m);
    for _ in 0..3 {
        e.advance_clock(minutes(30));
        assert_eq!(v2_call(&e, "List/Vendor.json", &sid, &json!({})).v2_code(), None);
        assert_eq!(v3(&e, "GET", "/v3/login/session", Some(&v3sid), None).status, 200);
    }
    let seen = e.session(&sid).last_seen_ms.unwrap();
    e.advance_clock(minutes(36));
    let s = e.session(&sid);
    assert!(!s.valid);
    assert_eq!((s.end_reason, s.ended_ms), (Some(EndReason::Idle), Some(seen + 35 * 60_000)));
    assert_eq!(v2_call(&e, "List/Vendor.json", &sid, &json!({})).v2_code().as_deref(), Some("BDC_1109"));
    let r = v3(&e, "GET", "/v3/vendors", Some(&v3sid), None);
    assert_eq!((r.status, r.v3_code().as_str()), (401, "BDC_1109"));
}

#[test]
fn idle_timeout_in_real_time_and_forced_expiry() {
    let e = Emulator::start(Config { idle_timeout: Duration::from_millis(300), ..Config::default() }).unwrap();
    let sid = v2_login(&e);
    wait_until("idle expiry", || !e.session(&sid).valid);
    assert_eq!(e.session(&sid).end_reason, Some(EndReason::Idle));
    let r = v2(&e, "GetSessionInfo.json", &[("devKey", DEMO_DEV_KEY), ("sessionId", &sid)]);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1109"));

    e.set_idle_timeout(Duration::from_secs(60));
    let (a, b, c) = (v2_login(&e), v3_login(&e), v2_login(&e));
    assert!(e.expire(&a));
    assert!(!e.expire(&a));
    assert_eq!(e.session(&a).end_reason, Some(EndReason::Forced));
    assert_eq!(e.expire_all(), 2);
    assert!(!e.session(&b).valid && !e.session(&c).valid);
    assert!(!e.session("never-issued").known);
}

#[test]
fn fourth_concurrent_request_gets_1322() {
    let e = emu();
    let sid = v2_login(&e);
    let v3sid = v3_login(&e);
    e.add_account(Account::new(DEMO_USER, DEMO_PASSWORD, "00901OTHER", DEMO_DEV_KEY));
    let other = v2(
        &e,
        "Login.json",
        &[("userName", DEMO_USER), ("password", DEMO_PASSWORD), ("orgId", "00901OTHER"), ("devKey", DEMO_DEV_KEY)],
    )
    .v2_data()["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::scope(|s| {
        let slow: Vec<_> =
            (0..3).map(|_| s.spawn(|| v2_call(&e, "List/Vendor.json", &sid, &json!({"sleepMs": 4000})))).collect();
        wait_until("3 in flight", || e.stats().in_flight == 3);
        let r = v2_call(&e, "List/Vendor.json", &sid, &json!({}));
        assert_eq!(r.v2_code().as_deref(), Some("BDC_1322"));
        assert_eq!(r.v2_message(), "Max number of concurrent requests per organization reached.");
        let r = v3(&e, "GET", "/v3/vendors", Some(&v3sid), None);
        assert_eq!((r.status, r.v3_code().as_str()), (429, "BDC_1322"));
        // Another org of the same devKey has its own three.
        assert_eq!(v2_call(&e, "List/Vendor.json", &other, &json!({})).v2_code(), None);
        for h in slow {
            assert_eq!(h.join().unwrap().v2_code(), None);
        }
    });
    assert_eq!(v2_call(&e, "List/Vendor.json", &sid, &json!({})).v2_code(), None);
    let st = e.stats();
    assert_eq!((st.rejected_1322, st.max_in_flight, st.in_flight), (2, 4, 0));
    // t_ms is arrival; done_ms is when the reply was ready.
    let held = e.log().iter().filter(|ev| ev.done_ms - ev.t_ms >= 4000).count();
    assert_eq!(held, 3);
}

#[test]
fn hourly_request_limit_1144() {
    let e = emu();
    let sid = v2_login(&e);
    let v3sid = v3_login(&e);
    e.set_request_limit(4);
    for _ in 0..2 {
        assert_eq!(v2_call(&e, "List/Vendor.json", &sid, &json!({})).v2_code(), None);
        assert_eq!(v3(&e, "GET", "/v3/vendors", Some(&v3sid), None).status, 200);
    }
    let r = v2_call(&e, "List/Vendor.json", &sid, &json!({}));
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1144"));
    assert_eq!(r.v2_message(), "Max number of allowed requests per hour reached: 4.");
    let r = v3(&e, "GET", "/v3/vendors", Some(&v3sid), None);
    assert_eq!((r.status, r.v3_code().as_str()), (429, "BDC_1144"));
    e.configure(ConfigPatch { rate_limit_status: Some(503), ..Default::default() });
    assert_eq!(v3(&e, "GET", "/v3/vendors", Some(&v3sid), None).status, 503);

    // The next window starts at the next multiple of hour_ms since the epoch.
    e.set_idle_timeout(Duration::from_secs(7200));
    let st = e.stats();
    assert_eq!(st.window_start_ms % 3_600_000, 0);
    e.advance_clock(Duration::from_millis(st.window_end_ms - st.wall_ms));
    assert_eq!(v2_call(&e, "List/Vendor.json", &sid, &json!({})).v2_code(), None);
    assert_eq!(e.stats().rejected_1144, 3);
}

#[test]
fn hourly_login_limit_1144() {
    let e = emu();
    e.set_login_limit(3);
    assert!(!v2_login(&e).is_empty());
    list_orgs(&e, DEMO_PASSWORD).v2_data();
    assert!(!v3_login(&e).is_empty());
    let r = v2(&e, "Login.json", &CREDS);
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1144"));
    let r = v3(&e, "POST", "/v3/login", None, Some(&v3_login_body()));
    assert_eq!((r.status, r.v3_code().as_str()), (429, "BDC_1144"));
    e.set_hour(Duration::from_secs(1));
    wait_until("next window", || v2(&e, "Login.json", &CREDS).v2_code().is_none());
}

#[test]
fn mfa_trust_and_1361() {
    let e = emu();
    let sid = v2_login(&e);
    let r = v2_call(&e, "PayBills.json", &sid, &json!({}));
    assert_eq!(r.v2_code().as_deref(), Some("BDC_1361"));
    assert_eq!(r.v2_message(), "Untrusted session.");
    assert_eq!(v2_call(&e, "SendVendorInvite.json", &sid, &json!({})).v2_code().as_deref(), Some("BDC_1361"));

    // v2 MFA: challenge, authenticate with rememberMe, then a trusted login.
    let ch = v2_call(&e, "MFAChallenge.json", &sid, &json!({"useBackup": false})).v2_data();
    let ch = ch["challengeId"].as_str().unwrap();
    let bad = v2_call(
        &e,
        "MFAAuthenticate.json",
        &sid,
        &json!({"challengeId": ch, "token": "000000", "deviceId": "dev-1", "rememberMe": true}),
    );
    assert_eq!(bad.v2_code().as_deref(), Some("BDC_1129"));
    let ok = v2_call(
        &e,
        "MFAAuthenticate.json",
        &sid,
        &json!({"challengeId": ch, "token": "123456", "deviceId": "dev-1", "machineName": "ci", "rememberMe": true}),
    );
    let mfa_id = ok.v2_data()["mfaId"].as_str().unwrap().to_string();
    assert_eq!(v2_call(&e, "PayBills.json", &sid, &json!({})).v2_code(), None);
    let st = v2_call(&e, "MFAStatus.json", &sid, &json!({"mfaId": mfa_id, "deviceId": "dev-1"}));
    assert_eq!(st.v2_data(), json!({"isTrusted": true}));
    let mut form = CREDS.to_vec();
    form.extend([("mfaId", mfa_id.as_str()), ("deviceId", "dev-1")]);
    let trusted = v2(&e, "Login.json", &form).v2_data()["sessionId"].as_str().unwrap().to_string();
    assert!(e.session(&trusted).trusted);

    // v3: payments need trust; a registered rememberMeId + device gives it at login.
    let v3sid = v3_login(&e);
    let r = v3(&e, "POST", "/v3/payments", Some(&v3sid), Some(&json!({})));
    assert_eq!((r.status, r.v3_code().as_str()), (403, "BDC_1361"));
    assert_eq!(r.json()[0]["category"], "DOWNSTREAM");
    e.register_mfa("remember-1", "device-1");
    let mut body = v3_login_body();
    body["rememberMeId"] = json!("remember-1");
    body["device"] = json!("device-1");
    let l = v3(&e, "POST", "/v3/login", None, Some(&body)).json();
    assert_eq!(l["trusted"], true);
    let r = v3(&e, "POST", "/v3/payments/bulk", Some(l["sessionId"].as_str().unwrap()), Some(&json!({"x": 1})));
    assert_eq!(r.status, 200, "{}", r.text);

    // v3 step-up turns the earlier session trusted.
    let r = v3(
        &e,
        "POST",
        "/v3/mfa/step-up",
        Some(&v3sid),
        Some(&json!({"rememberMeId": "remember-1", "device": "device-1"})),
    );
    assert_eq!(r.json(), json!({"trusted": true}));
    assert_eq!(v3(&e, "POST", "/v3/payments", Some(&v3sid), None).status, 200);
    assert_eq!(e.stats().rejected_1361, 3);
}

#[test]
fn v3_mfa_challenge_and_partner_login() {
    let e = emu();
    let sid = v3_login(&e);
    let ch = v3(&e, "POST", "/v3/mfa/challenge", Some(&sid), Some(&json!({"useBackup": false}))).json();
    let body = json!({"challengeId": ch["challengeId"], "token": "123456", "device": "d9", "machineName": "m", "rememberMe": true});
    let v = v3(&e, "POST", "/v3/mfa/challenge/validate", Some(&sid), Some(&body)).json();
    let remember = v["rememberMeId"].as_str().unwrap();
    assert!(e.session(&sid).trusted);
    let again = v3(&e, "POST", "/v3/mfa/challenge/validate", Some(&sid), Some(&body));
    assert_eq!((again.status, again.v3_code().as_str()), (400, "BDC_1129"));

    let p = v3(
        &e,
        "POST",
        "/v3/partner/login",
        None,
        Some(&json!({"username": DEMO_USER, "password": DEMO_PASSWORD, "appKey": DEMO_DEV_KEY})),
    );
    let psid = p.json()["sessionId"].as_str().unwrap().to_string();
    let user_id = v3(&e, "GET", "/v3/login/session", Some(&sid), None).json()["userId"].clone();
    let req = ureq::http::Request::post(format!("{}/v3/partner/login-as-user", e.v3_base()))
        .header("sessionId", &psid)
        .header("appKey", DEMO_DEV_KEY)
        .header("content-type", "application/json")
        .body(
            json!({"userId": user_id, "organizationId": DEMO_ORG, "rememberMeId": remember, "device": "d9"})
                .to_string(),
        )
        .unwrap();
    let r = read(agent().run(req)).json();
    assert_eq!(r["trusted"], true);
    assert_eq!(v3(&e, "GET", "/v3/login/session", Some(r["sessionId"].as_str().unwrap()), None).status, 200);
    // A partner session is not a user session.
    assert_eq!(v3(&e, "GET", "/v3/login/session", Some(&psid), None).status, 401);
}

#[test]
fn secrets_in_query_string_are_violations() {
    let e = emu();
    let sid = v2_login(&e);
    let url = format!("{}/Login.json?userName={DEMO_USER}&password={DEMO_PASSWORD}", e.v2_base());
    let r = read(agent().post(url).send_form([("orgId", DEMO_ORG), ("devKey", DEMO_DEV_KEY)]));
    assert_eq!(r.v2_code(), None, "still answered");
    let enc: String = form_urlencoded::byte_serialize(sid.as_bytes()).collect();
    let url = format!("{}/vendors?q={enc}", e.v3_base());
    read(agent().get(url).header("devKey", DEMO_DEV_KEY).header("sessionId", &sid).call());
    let v = e.violations();
    let got: Vec<(&str, &str)> = v.iter().map(|v| (v.param.as_str(), v.reason.as_str())).collect();
    assert_eq!(got, vec![("userName", "name"), ("password", "name"), ("q", "value")]);
    assert_eq!(v[0].path, "/api/v2/Login.json");
    let dump = serde_json::to_string(&e.stats()).unwrap();
    assert!(!dump.contains(DEMO_PASSWORD));
}

fn control(e: &Emulator, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}/_emu/{path}", e.control_base());
    let r = match body {
        Some(b) => read(agent().post(url).content_type("application/json").send(b.to_string())),
        None if method == "GET" => read(agent().get(url).call()),
        None => read(agent().post(url).send_empty()),
    };
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json()
}

#[test]
fn control_api_over_http() {
    let e = emu();
    assert_eq!(control(&e, "GET", "health", None), json!({"ok": true}));
    assert_eq!(control(&e, "GET", "info", None)["v2_base"], e.v2_base());
    let uid = control(
        &e,
        "POST",
        "accounts",
        Some(
            json!({"userName": "c@example.com", "password": "pw-cccc-1", "orgId": "00901C", "devKey": "KEY-C", "orgName": "C Org"}),
        ),
    );
    assert!(uid["userId"].as_str().unwrap().starts_with("006"));
    let login = json!({"username": "c@example.com", "password": "pw-cccc-1", "organizationId": "00901C", "devKey": "KEY-C", "rememberMeId": "r1", "device": "d1"});
    let l = v3(&e, "POST", "/v3/login", None, Some(&login)).json();
    assert_eq!(l["trusted"], false);
    control(&e, "POST", "mfa", Some(json!({"rememberMeId": "r1", "device": "d1"})));
    control(&e, "POST", "mfa", Some(json!({"mfaId": "m1", "deviceId": "d2"})));
    assert_eq!(v3(&e, "POST", "/v3/login", None, Some(&login)).json()["trusted"], true);
    let sid = l["sessionId"].as_str().unwrap();

    let s = control(&e, "POST", "session", Some(json!({"sessionId": sid})));
    assert_eq!(
        (s["known"].clone(), s["valid"].clone(), s["end_reason"].clone()),
        (json!(true), json!(true), Value::Null)
    );
    let cfg = control(
        &e,
        "POST",
        "config",
        Some(json!({"idle_timeout_ms": 1000, "api_endpoint": "https://example.test/api/v2"})),
    );
    assert_eq!(cfg["idle_timeout_ms"], 1000);
    assert_eq!(v2(&e, "Login.json", &CREDS).v2_data()["apiEndPoint"], "https://example.test/api/v2");
    let before = control(&e, "GET", "stats", None)["now_ms"].as_u64().unwrap();
    let c = control(&e, "POST", "clock", Some(json!({"advance_ms": 5000})));
    assert!(c["now_ms"].as_u64().unwrap() >= before + 5000);
    let s = control(&e, "POST", "session", Some(json!({"sessionId": sid})));
    assert_eq!((s["valid"].clone(), s["end_reason"].clone()), (json!(false), json!("idle")));
    assert_eq!(control(&e, "POST", "expire", Some(json!({"all": true})))["expired"], 0, "all idle already");
    control(&e, "POST", "config", Some(json!({"idle_timeout_ms": 600_000})));
    let live = v2_login(&e);
    assert_eq!(control(&e, "POST", "expire", Some(json!({"sessionId": live})))["expired"], 1);
    assert_eq!(control(&e, "POST", "session", Some(json!({"sessionId": live})))["end_reason"], "forced");

    let log = control(&e, "GET", "log", None);
    assert_eq!(log[0]["kind"], "login");
    assert_eq!(log[0]["api"], "v3");
    let n = log.as_array().unwrap().len();
    assert_eq!(control(&e, "GET", &format!("log?since={}", n - 1), None).as_array().unwrap().len(), 1);
    let f = control(&e, "POST", "faults", Some(json!({"mode": "http503", "target": "keepalive", "count": 2})));
    assert_eq!(f["faults"][0]["count"], 2);
    let st = control(&e, "GET", "stats", None);
    assert_eq!(st["logins"], 4);
    assert_eq!(st["sessions_issued"].as_array().unwrap().len(), 4);
    control(&e, "POST", "reset", None);
    let st = control(&e, "GET", "stats", None);
    assert_eq!((st["logins"].clone(), st["sessions_issued"].as_array().unwrap().len()), (json!(0), 4));
    assert_eq!(control(&e, "GET", "faults", None), json!({"faults": []}));
    control(&e, "POST", "reset", Some(json!({"sessions": true})));
    let s = control(&e, "POST", "session", Some(json!({"sessionId": sid})));
    assert_eq!(s["known"], false);
    let r = read(agent().get(format!("{}/_emu/nothing", e.control_base())).call());
    assert_eq!(r.status, 404);
}

/// `cargo test -p bill-emulator --release -- --ignored throughput --nocapture`
#[test]
#[ignore]
fn throughput() {
    let e = Emulator::start(Config { request_limit: u64::MAX, ..Config::default() }).unwrap();
    let sid = v2_login(&e);
    let n = 3000;
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let a = agent();
                for _ in 0..n {
                    let r = a
                        .post(format!("{}/GetSessionInfo.json", e.v2_base()))
                        .send_form([("devKey", DEMO_DEV_KEY), ("sessionId", &sid)]);
                    // Reading the body returns the connection to the pool.
                    assert_eq!(read(r).status, 200);
                }
            });
        }
    });
    let rate = (3 * n) as f64 / t.elapsed().as_secs_f64();
    println!("{rate:.0} requests/s");
    assert_eq!(e.stats().keepalives, 3 * n);
}
