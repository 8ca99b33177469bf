//! Test helpers: a plain HTTP client (ureq) against a running emulator.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bill_emulator::{Emulator, DEMO_DEV_KEY, DEMO_ORG, DEMO_PASSWORD, DEMO_USER};
use serde_json::{json, Value};
use ureq::http::Response;

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// `error_code` of a v2 error envelope, `None` on success.
    pub fn v2_code(&self) -> Option<String> {
        let v = self.json();
        match v["response_status"].as_i64() {
            Some(0) => None,
            Some(1) => {
                assert_eq!(v["response_message"], "Error");
                Some(v["response_data"]["error_code"].as_str().unwrap().to_string())
            }
            _ => panic!("not a v2 envelope: {v}"),
        }
    }
    pub fn v2_message(&self) -> String {
        self.json()["response_data"]["error_message"].as_str().unwrap().to_string()
    }
    pub fn v2_data(&self) -> Value {
        let v = self.json();
        assert_eq!(v["response_status"], 0, "{v}");
        assert_eq!(v["response_message"], "Success");
        v["response_data"].clone()
    }
    /// `code` of a v3 error array, checking its shape.
    pub fn v3_code(&self) -> String {
        let v = self.json();
        let e = &v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))[0];
        assert_eq!(e["severity"], "ERROR");
        assert!(e["timestamp"].as_str().unwrap().contains('T'));
        assert!(e["category"].is_string() && e["message"].is_string());
        e["code"].as_str().unwrap().to_string()
    }
}

pub fn read(r: Result<Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("request failed");
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let text = r.body_mut().read_to_string().expect("body");
    Resp { status: r.status().as_u16(), content_type, text }
}

pub fn v2(emu: &Emulator, path: &str, form: &[(&str, &str)]) -> Resp {
    read(agent().post(format!("{}/{path}", emu.v2_base())).send_form(form.iter().copied()))
}

pub fn v2_call(emu: &Emulator, path: &str, sid: &str, data: &Value) -> Resp {
    let data = data.to_string();
    v2(emu, path, &[("devKey", DEMO_DEV_KEY), ("sessionId", sid), ("data", &data)])
}

pub fn v2_login(emu: &Emulator) -> String {
    let r = v2(
        emu,
        "Login.json",
        &[("userName", DEMO_USER), ("password", DEMO_PASSWORD), ("orgId", DEMO_ORG), ("devKey", DEMO_DEV_KEY)],
    );
    r.v2_data()["sessionId"].as_str().unwrap().to_string()
}

/// v3 request; `sid` adds the demo devKey and that session as headers.
pub fn v3(emu: &Emulator, method: &str, path: &str, sid: Option<&str>, body: Option<&Value>) -> Resp {
    let url = format!("{}{path}", emu.v3_base());
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(s) = sid {
        req = req.header("devKey", DEMO_DEV_KEY).header("sessionId", s);
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(b.to_string()),
        None => req.body(String::new()),
    };
    read(agent().run(req.unwrap()))
}

pub fn v3_login_body() -> Value {
    json!({"username": DEMO_USER, "password": DEMO_PASSWORD, "organizationId": DEMO_ORG, "devKey": DEMO_DEV_KEY})
}

pub fn v3_login(emu: &Emulator) -> String {
    let r = v3(emu, "POST", "/v3/login", None, Some(&v3_login_body()));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["sessionId"].as_str().unwrap().to_string()
}

/// Polls `cond` until it holds; fails the test after 10 s.
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
