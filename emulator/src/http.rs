//! What the handlers share: the request and reply types, error replies,
//! JSON field access and the response builders. The server, the v2/v3
//! handlers and the control API all import from here, never from each other.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::body::EmuBody;
use crate::errors::ApiError;
use crate::state::{Api, EventKind, Shared};

pub(crate) const JSON: &str = "application/json";
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// A fully read main-port request.
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
    }
    pub fn content_type_is(&self, want: &str) -> bool {
        self.header("content-type")
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(want))
    }
}

/// What a handler decided; logged, then sent.
pub(crate) struct Outcome {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    pub kind: EventKind,
    pub session_id: Option<String>,
    pub code: Option<&'static str>,
}

impl Outcome {
    pub fn json(status: u16, kind: EventKind, session_id: Option<String>, v: &impl Serialize) -> Self {
        let body = serde_json::to_vec(v).unwrap_or_default().into();
        Outcome { status, content_type: Some(JSON), body, kind, session_id, code: None }
    }
    pub fn empty(kind: EventKind, session_id: Option<String>) -> Self {
        Outcome { status: 200, content_type: None, body: Bytes::new(), kind, session_id, code: None }
    }
}

/// An error reply, with the session it concerned (for the log).
pub(crate) struct Rejection {
    pub err: ApiError,
    pub session_id: Option<String>,
}

impl From<ApiError> for Rejection {
    fn from(err: ApiError) -> Self {
        Rejection { err, session_id: None }
    }
}

pub(crate) fn with_session(session_id: Option<&str>) -> impl FnOnce(ApiError) -> Rejection + '_ {
    move |err| Rejection { err, session_id: session_id.map(str::to_string) }
}

pub(crate) fn error_outcome(sh: &Shared, api: Api, r: Rejection) -> Outcome {
    let mut o = match api {
        Api::V2 => Outcome::json(r.err.v2_status(), EventKind::Rejected, r.session_id, &r.err.v2_body()),
        Api::V3 => {
            let status = r.err.v3_status(sh.lock().settings.rate_limit_status);
            Outcome::json(status, EventKind::Rejected, r.session_id, &r.err.v3_body(sh.clock.wall_ms()))
        }
    };
    o.code = Some(r.err.code);
    o
}

/// A required string field of a JSON object (v2 `data`, v3 bodies).
pub(crate) fn json_str<'a>(v: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing(key))
}

/// Holds a generic call for `sleepMs` (capped at two minutes) to keep it in flight.
pub(crate) async fn hold(v: &Value) {
    if let Some(ms) = v.get("sleepMs").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms.min(120_000))).await;
    }
}

pub(crate) fn response(status: u16, content_type: Option<&str>, body: EmuBody) -> Response<EmuBody> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(CONTENT_TYPE, ct);
    }
    r
}

pub(crate) fn json_response(status: u16, v: &Value) -> Response<EmuBody> {
    response(status, Some(JSON), EmuBody::full(v.to_string()))
}

pub(crate) fn control_error(status: u16, msg: &str) -> Response<EmuBody> {
    json_response(status, &json!({ "error": msg }))
}
