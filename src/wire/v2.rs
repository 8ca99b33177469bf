//! BILL API v2: form-encoded POSTs, JSON envelopes, errors as HTTP 200.

use serde::Deserialize;
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use super::{api_error, check_session_id, form_exact, quote, require_json, server_error, LoginReply};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::options::Options;
use crate::secret::Secret;

pub const LOGIN: &str = "Login.json";
pub const LOGOUT: &str = "Logout.json";
pub const SESSION_INFO: &str = "GetSessionInfo.json";

/// The body of `POST /Login.json`.
pub fn login_form(o: &Options) -> Zeroizing<String> {
    let mut pairs = vec![
        ("userName", o.user_name.expose()),
        ("password", o.password.expose()),
        ("orgId", o.org_id.as_str()),
        ("devKey", o.dev_key.expose()),
    ];
    if let (Some(id), Some(dev)) = (&o.mfa_remember_id, &o.mfa_device) {
        pairs.push(("mfaId", id.expose()));
        pairs.push(("deviceId", dev.as_str()));
    }
    form_exact(&pairs)
}

/// The body of an authenticated call: devKey, sessionId and optional `data`.
pub fn session_form(dev_key: &Secret, session_id: &Secret, data: Option<&str>) -> Zeroizing<String> {
    let mut pairs = vec![("devKey", dev_key.expose()), ("sessionId", session_id.expose())];
    if let Some(d) = data {
        pairs.push(("data", d));
    }
    form_exact(&pairs)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    response_status: i64,
    #[serde(borrow, default)]
    response_data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    error_message: String,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct LoginData {
    sessionId: Secret,
    #[serde(default)]
    orgId: Option<String>,
    #[serde(default)]
    usersId: Option<String>,
    #[serde(default)]
    apiEndPoint: Option<String>,
}

/// Checks the envelope and returns `response_data` of a success.
fn open<'a>(status: u16, content_type: Option<&str>, body: &'a [u8], ctx: Context) -> Result<Option<&'a RawValue>> {
    if status >= 500 {
        return Err(server_error(status));
    }
    if status != 200 {
        // BDC_1121 comes as HTTP 404 with the usual envelope; try to read it.
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            if env.response_status != 0 {
                // Malformed or not, the error keeps the HTTP status it came with.
                let (Ok(e) | Err(e)) = envelope_error(env.response_data, ctx);
                return Err(e.with_http_status(status));
            }
        }
        return Err(Error::new(ErrorKind::Protocol, "unexpected HTTP status from BILL v2").with_http_status(status));
    }
    require_json(content_type)?;
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| quote(ErrorKind::Protocol, "v2 reply is not a BILL envelope: ", &e.to_string(), 200))?;
    match env.response_status {
        0 => Ok(env.response_data),
        1 => Err(envelope_error(env.response_data, ctx)?),
        other => Err(Error::new(ErrorKind::Protocol, format!("v2 reply has unknown response_status {other}"))),
    }
}

fn envelope_error(data: Option<&RawValue>, ctx: Context) -> Result<Error> {
    let data = data.ok_or_else(|| Error::new(ErrorKind::Protocol, "v2 error reply has no response_data"))?;
    let e: ErrorData = serde_json::from_str(data.get())
        .map_err(|_| Error::new(ErrorKind::Protocol, "v2 error reply has no error_code"))?;
    if e.error_code.is_empty() {
        return Err(Error::new(ErrorKind::Protocol, "v2 error reply has an empty error_code"));
    }
    Ok(api_error(&e.error_code, &e.error_message, ctx))
}

/// Parses the reply to `Login.json`.
pub fn parse_login(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<LoginReply> {
    let data = open(status, content_type, body, Context::SignIn)?
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "v2 sign-in reply has no response_data"))?;
    let d: LoginData = serde_json::from_str(data.get())
        .map_err(|_| Error::new(ErrorKind::Protocol, "v2 sign-in reply has no sessionId"))?;
    check_session_id(&d.sessionId)?;
    Ok(LoginReply {
        session_id: d.sessionId,
        org_id: d.orgId,
        user_id: d.usersId,
        api_endpoint: d.apiEndPoint,
        trusted: false,
    })
}

/// Checks the reply to any authenticated call (including Logout and GetSessionInfo).
pub fn check_reply(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<()> {
    open(status, content_type, body, Context::Call).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json;charset=UTF-8");

    #[test]
    fn login_success() {
        let body = br#"{"response_status":0,"response_message":"Success","response_data":{"sessionId":"!abc+/=","orgId":"00901","apiEndPoint":"https://api-stage.bill.com/api/v2","usersId":"006"}}"#;
        let r = parse_login(200, JSON, body).unwrap();
        assert_eq!(r.session_id.expose(), "!abc+/=");
        assert_eq!(r.api_endpoint.as_deref(), Some("https://api-stage.bill.com/api/v2"));
    }

    #[test]
    fn login_error_codes() {
        let body = br#"{"response_status":1,"response_message":"Error","response_data":{"error_code":"BDC_1101","error_message":"User name and/or password do not match our records."}}"#;
        let e = parse_login(200, JSON, body).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.code_is("BDC_1101"));
    }

    #[test]
    fn session_invalid_is_expiry() {
        let body = br#"{"response_status":1,"response_message":"Error","response_data":{"error_code":"BDC_1109","error_message":"Session is invalid.  Please log in."}}"#;
        assert_eq!(check_reply(200, JSON, body).unwrap_err().kind, ErrorKind::SessionExpired);
    }

    #[test]
    fn not_supported_404() {
        let body = br#"{"response_status":1,"response_message":"Error","response_data":{"error_code":"BDC_1121","error_message":"API not supported."}}"#;
        let e = check_reply(404, JSON, body).unwrap_err();
        assert!(e.code_is("BDC_1121"));
        assert_eq!(e.http_status, Some(404));
    }

    #[test]
    fn non_200_keeps_http_status_even_when_malformed() {
        let e = check_reply(404, JSON, br#"{"response_status":1,"response_data":{}}"#).unwrap_err();
        assert_eq!((e.kind, e.http_status), (ErrorKind::Protocol, Some(404)));
    }

    #[test]
    fn malformed_and_wrong_type() {
        assert_eq!(check_reply(200, JSON, b"{not json").unwrap_err().kind, ErrorKind::Protocol);
        assert_eq!(check_reply(200, Some("text/html"), b"{}").unwrap_err().kind, ErrorKind::Protocol);
        assert_eq!(check_reply(503, None, b"").unwrap_err().kind, ErrorKind::Server);
        assert_eq!(
            parse_login(200, JSON, br#"{"response_status":0,"response_data":{"sessionId":""}}"#).unwrap_err().kind,
            ErrorKind::Protocol
        );
    }
}
