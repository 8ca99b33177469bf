//! BILL API v3: JSON bodies, `devKey`/`sessionId` headers, errors as a JSON array with HTTP 4xx/5xx.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    api_error, check_session_id, is_bill_code, json_exact, quote, require_json, server_error, LoginReply,
    MAX_MESSAGE_CHARS, WITHHELD_CODE,
};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::options::Options;
use crate::secret::Secret;

pub const LOGIN: &str = "v3/login";
pub const LOGOUT: &str = "v3/logout";
pub const SESSION_INFO: &str = "v3/login/session";

#[derive(Serialize)]
#[allow(non_snake_case)]
struct LoginBody<'a> {
    username: &'a str,
    password: &'a str,
    organizationId: &'a str,
    devKey: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rememberMeId: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a str>,
}

/// The body of `POST /v3/login`.
pub fn login_json(o: &Options) -> Zeroizing<Vec<u8>> {
    json_exact(&LoginBody {
        username: o.user_name.expose(),
        password: o.password.expose(),
        organizationId: &o.org_id,
        devKey: o.dev_key.expose(),
        rememberMeId: o.mfa_remember_id.as_ref().map(Secret::expose),
        device: o.mfa_device.as_deref(),
    })
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct LoginData {
    sessionId: Secret,
    #[serde(default)]
    organizationId: Option<String>,
    #[serde(default)]
    userId: Option<String>,
    #[serde(default)]
    trusted: bool,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Many(Vec<ApiError>),
    One(ApiError),
}

/// Turns a non-2xx reply into an error, reading BILL's error array when present.
fn failure(status: u16, body: &[u8], ctx: Context) -> Error {
    let first = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody::Many(v)) => {
            let first_error = v.iter().position(|e| e.severity.as_deref().is_none_or(|s| s == "ERROR"));
            first_error
                .map(|i| &v[i])
                .or(v.first())
                .filter(|e| !e.code.is_empty())
                .map(|e| (e.code.clone(), e.message.clone()))
        }
        Ok(ErrorBody::One(e)) if !e.code.is_empty() => Some((e.code, e.message)),
        _ => None,
    };
    let err = match first {
        Some((code, message)) if is_bill_code(&code) => api_error(&code, &message, ctx),
        // A code of another shape is withheld; the HTTP status classifies the error.
        Some((_, message)) => {
            let e = by_status(status, ctx);
            quote(e.kind, &format!("{}; {WITHHELD_CODE}", e.message), &message, MAX_MESSAGE_CHARS)
        }
        None => by_status(status, ctx),
    };
    err.with_http_status(status)
}

/// An error reply without a usable BILL code, classified by its HTTP status.
/// A 401 at sign-in means the credentials were refused, not that a session expired.
fn by_status(status: u16, ctx: Context) -> Error {
    match (status, ctx) {
        (401, Context::SignIn) => Error::new(ErrorKind::Auth, "BILL answered 401 Unauthorized to the sign-in"),
        (401, Context::Call) => Error::new(ErrorKind::SessionExpired, "BILL answered 401 Unauthorized"),
        (429, _) => Error::new(ErrorKind::RateLimited, "BILL answered 429 Too Many Requests"),
        (s, _) if s >= 500 => server_error(s),
        _ => Error::new(ErrorKind::Protocol, "BILL v3 error reply without an error code"),
    }
}

/// Parses the reply to `POST /v3/login`.
pub fn parse_login(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<LoginReply> {
    if !(200..300).contains(&status) {
        return Err(failure(status, body, Context::SignIn));
    }
    require_json(content_type)?;
    let d: LoginData = serde_json::from_slice(body)
        .map_err(|_| Error::new(ErrorKind::Protocol, "v3 sign-in reply has no sessionId"))?;
    check_session_id(&d.sessionId)?;
    Ok(LoginReply {
        session_id: d.sessionId,
        org_id: d.organizationId,
        user_id: d.userId,
        api_endpoint: None,
        trusted: d.trusted,
    })
}

/// Checks the reply to any authenticated call. Bodies of successes are not parsed here.
pub fn check_reply(status: u16, body: &[u8]) -> Result<()> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(failure(status, body, Context::Call))
    }
}

/// Checks that a successful reply with a body is JSON (the keepalive reply).
pub fn check_json_reply(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<()> {
    check_reply(status, body)?;
    require_json(content_type)?;
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| quote(ErrorKind::Protocol, "v3 reply is not JSON: ", &e.to_string(), 200))
}

/// Checks the reply to an ordinary call: an error, or a success whose body
/// (if any) is JSON. BILL's v3 replies are JSON; anything else came from
/// something in between (a proxy page, a cut connection) and must not pass as data.
pub fn check_call_reply(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<()> {
    if body.is_empty() {
        return check_reply(status, body);
    }
    check_json_reply(status, content_type, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn login_success() {
        let r =
            parse_login(200, JSON, br#"{"organizationId":"o","sessionId":"s1","trusted":true,"userId":"u"}"#).unwrap();
        assert_eq!(r.session_id.expose(), "s1");
        assert!(r.trusted);
    }

    #[test]
    fn error_array() {
        let body = br#"[{"timestamp":"2024-01-01T00:00:00Z","code":"BDC_1102","severity":"ERROR","category":"REQUEST","message":"Developer key is invalid."}]"#;
        let e = parse_login(400, JSON, body).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.code_is("BDC_1102"));
        assert_eq!(e.http_status, Some(400));
    }

    #[test]
    fn untrusted_is_mfa() {
        let body = br#"[{"code":"BDC_1361","severity":"ERROR","category":"DOWNSTREAM","message":"Untrusted session.","params":{}}]"#;
        assert_eq!(check_reply(403, body).unwrap_err().kind, ErrorKind::MfaRequired);
    }

    #[test]
    fn call_bodies_must_be_json() {
        assert!(check_call_reply(200, JSON, br#"{"a":1}"#).is_ok());
        assert!(check_call_reply(204, None, b"").is_ok());
        assert_eq!(check_call_reply(200, JSON, b"{\"a\":").unwrap_err().kind, ErrorKind::Protocol);
        assert_eq!(check_call_reply(200, Some("text/html"), br#"{"a":1}"#).unwrap_err().kind, ErrorKind::Protocol);
        let long = format!("[\"{}", "z".repeat(100_000));
        assert!(check_call_reply(200, JSON, long.as_bytes()).unwrap_err().message.len() < 400);
    }

    #[test]
    fn unauthorized_sign_in_is_auth() {
        assert_eq!(parse_login(401, JSON, b"").unwrap_err().kind, ErrorKind::Auth);
        let body = br#"[{"code":"BDC_1109","severity":"ERROR","message":"Session is invalid."}]"#;
        assert_eq!(parse_login(401, JSON, body).unwrap_err().kind, ErrorKind::Auth);
        assert_eq!(check_reply(401, body).unwrap_err().kind, ErrorKind::SessionExpired);
    }

    #[test]
    fn only_bill_shaped_codes_pass() {
        let body = br#"[{"code":"hunter2 password","severity":"ERROR","message":"Invalid request."}]"#;
        let e = check_reply(400, body).unwrap_err();
        assert_eq!((e.kind, e.code.as_deref()), (ErrorKind::Protocol, None));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = check_reply(401, body).unwrap_err();
        assert_eq!((e.kind, e.code.as_deref()), (ErrorKind::SessionExpired, None));
    }

    #[test]
    fn bare_statuses() {
        assert_eq!(check_reply(401, b"").unwrap_err().kind, ErrorKind::SessionExpired);
        assert_eq!(check_reply(502, b"<html>").unwrap_err().kind, ErrorKind::Server);
        assert_eq!(check_reply(429, b"").unwrap_err().kind, ErrorKind::RateLimited);
        assert!(check_reply(204, b"").is_ok());
    }
}
