//! The `echo` fault: a BILL error that sends one of the request's own secrets
//! back, encoded and placed where a client might cut it or pass it through.

use std::fmt::Write;

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::Value;

use crate::errors::{v2_error, v3_error};
use crate::fault::{Echo, EchoEncoding, EchoPlace, EchoSecret};
use crate::http::{Req, JSON};
use crate::state::{Api, Shared};

const DEFAULT_CODE: &str = "BDC_1111";
const MESSAGE: &str = "Invalid request.";

pub(crate) struct EchoReply {
    pub status: u16,
    pub content_type: HeaderValue,
    pub body: Bytes,
}

/// Field and header names that carry a secret, in v2 and v3 spelling.
fn names(s: EchoSecret) -> &'static [&'static str] {
    match s {
        EchoSecret::Password => &["password"],
        EchoSecret::DevKey => &["devKey", "appKey"],
        EchoSecret::UserName => &["userName", "username"],
        EchoSecret::SessionId => &["sessionId"],
    }
}

/// The secret as the request carried it: JSON body, form body or query, headers.
fn from_request(req: &Req, names: &[&str]) -> Option<String> {
    let json: Option<Value> = serde_json::from_slice(&req.body).ok();
    let query = req.query.as_deref().unwrap_or("").as_bytes();
    let form: Vec<(String, String)> =
        form_urlencoded::parse(&req.body).into_owned().chain(form_urlencoded::parse(query).into_owned()).collect();
    names.iter().find_map(|n| {
        json.as_ref()
            .and_then(|j| j.get(n))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
            .or_else(|| req.header(n).map(str::to_string))
            .filter(|v| !v.is_empty())
    })
}

/// JSON escapes where they differ from the raw text, as some servers write them.
fn json_escaped(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '"' | '&' | '\'' | '<' | '>' | '=' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            ' '..='~' => out.push(c),
            c => {
                for u in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out
}

fn encode(s: &str, e: EchoEncoding) -> String {
    match e {
        EchoEncoding::Raw => s.to_string(),
        EchoEncoding::Form => form_urlencoded::byte_serialize(s.as_bytes()).collect(),
        EchoEncoding::Json => json_escaped(s),
        EchoEncoding::Upper => s.to_uppercase(),
    }
}

/// `n` filler characters: `base`, then `x`s.
fn filler(base: &str, n: usize) -> String {
    base.chars().chain(std::iter::repeat('x')).take(n).collect()
}

/// A header value from any text; bytes a header cannot carry become `?`.
fn header_value(s: &str) -> HeaderValue {
    let bytes: Vec<u8> = s.bytes().map(|b| if b == b'\t' || (b >= 0x20 && b != 0x7f) { b } else { b'?' }).collect();
    HeaderValue::from_bytes(&bytes).unwrap_or(HeaderValue::from_static(JSON))
}

/// The error reply of an `echo` fault. A secret the request lacks is taken
/// from the account of the request's session, if any (else it is empty).
pub(crate) fn reply(sh: &Shared, req: &Req, api: Api, echo: &Echo) -> EchoReply {
    let secret = from_request(req, names(echo.secret))
        .or_else(|| {
            let sid = from_request(req, names(EchoSecret::SessionId))?;
            sh.lock().session_secret(&sid, echo.secret)
        })
        .unwrap_or_default();
    let secret = encode(&secret, echo.encoding);
    let placed = |base: &str| filler(base, echo.offset) + &secret;
    let default_code = echo.code.as_deref().unwrap_or(DEFAULT_CODE);
    let (code, message, content_type) = match echo.place {
        EchoPlace::Message => (default_code.to_string(), placed(""), HeaderValue::from_static(JSON)),
        EchoPlace::Code => (placed(""), MESSAGE.to_string(), HeaderValue::from_static(JSON)),
        EchoPlace::ContentType => {
            (default_code.to_string(), MESSAGE.to_string(), header_value(&placed("text/plain;x=")))
        }
    };
    let (status, body) = match api {
        Api::V2 => (echo.status.unwrap_or(200), serde_json::to_vec(&v2_error(&code, &message))),
        Api::V3 => {
            let body = v3_error(&code, "APPLICATION", &message, sh.clock.wall_ms());
            (echo.status.unwrap_or(400), serde_json::to_vec(&body))
        }
    };
    EchoReply { status, content_type, body: body.unwrap_or_default().into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let pw = "a \"b\" & c+d/é😀";
        assert_eq!(encode(pw, EchoEncoding::Raw), pw);
        assert_eq!(encode(pw, EchoEncoding::Form), "a+%22b%22+%26+c%2Bd%2F%C3%A9%F0%9F%98%80");
        assert_eq!(encode(pw, EchoEncoding::Json), "a \\u0022b\\u0022 \\u0026 c+d\\/\\u00e9\\ud83d\\ude00");
        assert_eq!(encode(pw, EchoEncoding::Upper), "A \"B\" & C+D/É😀");
        assert_eq!(filler("text/", 8), "text/xxx");
        assert_eq!(filler("text/", 2), "te");
    }
}
