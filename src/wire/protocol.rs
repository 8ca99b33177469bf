//! One interface over BILL's two APIs. The session asks for the request it
//! needs and hands back the reply; which API that is gets decided here, once.
//!
//! Still pure: builds requests and reads replies, never does I/O.

use zeroize::Zeroizing;

use super::{json_exact, v2, v3, LoginReply};
use crate::error::{Error, ErrorKind, Result};
use crate::options::{ApiVersion, Options, MAX_URL_LEN};
use crate::secret::Secret;

/// What a request carries after its headers.
pub enum Payload<'a> {
    None,
    /// `application/x-www-form-urlencoded`, built in wiped memory.
    Form(Zeroizing<String>),
    /// `application/json`, built in wiped memory.
    Json(Zeroizing<Vec<u8>>),
    /// `application/json`, the caller's own bytes.
    JsonRef(&'a [u8]),
}

/// One request, ready for the transport. Header values may be secrets.
pub struct Outgoing<'a> {
    pub method: &'static str,
    /// Below the base URL, without a leading '/'.
    pub path: String,
    pub headers: Vec<(&'static str, &'a str)>,
    pub payload: Payload<'a>,
}

/// The parts of a reply the parsers read.
#[derive(Clone, Copy)]
pub struct ReplyRef<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// The credentials an authenticated request carries.
#[derive(Clone, Copy)]
pub struct Auth<'a> {
    pub dev_key: &'a Secret,
    pub session_id: &'a Secret,
}

/// A call's method and path, checked and normalised for one API.
pub struct CallTarget {
    pub method: &'static str,
    pub path: String,
}

/// Sign-in, calls, keepalive, sign-out and MFA trust for one API version.
pub trait Protocol: Sync {
    /// The sign-in request.
    fn login<'a>(&self, o: &'a Options) -> Outgoing<'a>;
    fn parse_login(&self, r: ReplyRef<'_>) -> Result<LoginReply>;
    /// Checks and normalises a caller's method and path.
    fn call_target(&self, method: &str, path: &str) -> Result<CallTarget>;
    /// An authenticated call to `target` with an optional JSON body.
    fn call<'a>(&self, auth: Auth<'a>, target: &CallTarget, body: Option<&'a str>) -> Outgoing<'a>;
    fn check_call(&self, r: ReplyRef<'_>) -> Result<()>;
    /// A request that resets BILL's idle timer and keeps the same id.
    fn keepalive<'a>(&self, auth: Auth<'a>) -> Outgoing<'a>;
    fn check_keepalive(&self, r: ReplyRef<'_>) -> Result<()>;
    fn logout<'a>(&self, auth: Auth<'a>) -> Outgoing<'a>;
    fn check_logout(&self, r: ReplyRef<'_>) -> Result<()>;
    /// The request that tells whether MFA trust took, when the sign-in
    /// reply does not say (v2). `None`: the sign-in reply's `trusted` holds.
    fn trust_check<'a>(&self, o: &'a Options, auth: Auth<'a>) -> Option<Outgoing<'a>>;
    fn parse_trust(&self, r: ReplyRef<'_>) -> Result<bool>;
}

/// The protocol for an API version.
pub fn for_version(api: ApiVersion) -> &'static dyn Protocol {
    match api {
        ApiVersion::V2 => &V2,
        ApiVersion::V3 => &V3,
    }
}

/// Rules every call path follows, whatever the API.
fn check_path(path: &str) -> Result<&str> {
    if path.is_empty() || path.len() > MAX_URL_LEN {
        return Err(Error::invalid("path must be 1 to 2048 bytes"));
    }
    if path.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'#' || b == b'\\')
        || path.contains("..")
        || path.contains("://")
    {
        return Err(Error::invalid(
            "path has characters that are not allowed (spaces, '#', '\\', '..', control or non-ASCII)",
        ));
    }
    Ok(path.trim_start_matches('/'))
}

struct V2;
struct V3;

fn v2_post(path: impl Into<String>, form: Zeroizing<String>) -> Outgoing<'static> {
    Outgoing { method: "POST", path: path.into(), headers: Vec::new(), payload: Payload::Form(form) }
}

fn v3_request<'a>(method: &'static str, path: impl Into<String>, auth: Auth<'a>, payload: Payload<'a>) -> Outgoing<'a> {
    Outgoing {
        method,
        path: path.into(),
        headers: vec![("devKey", auth.dev_key.expose()), ("sessionId", auth.session_id.expose())],
        payload,
    }
}

impl Protocol for V2 {
    fn login<'a>(&self, o: &'a Options) -> Outgoing<'a> {
        v2_post(v2::LOGIN, v2::login_form(o))
    }
    fn parse_login(&self, r: ReplyRef<'_>) -> Result<LoginReply> {
        v2::parse_login(r.status, r.content_type, r.body)
    }
    fn call_target(&self, method: &str, path: &str) -> Result<CallTarget> {
        let p = check_path(path)?;
        if !(method.is_empty() || method.eq_ignore_ascii_case("POST")) {
            return Err(Error::invalid("v2 calls are always POST"));
        }
        if p.contains('?') {
            return Err(Error::invalid("v2 calls take their arguments in the data body, not a query string"));
        }
        let name = p.strip_suffix(".json").unwrap_or(p);
        if name.is_empty() || name.ends_with('/') {
            return Err(Error::invalid("path names no v2 endpoint (for example \"List/Vendor\")"));
        }
        Ok(CallTarget { method: "POST", path: format!("{name}.json") })
    }
    fn call<'a>(&self, auth: Auth<'a>, target: &CallTarget, body: Option<&'a str>) -> Outgoing<'a> {
        v2_post(target.path.clone(), v2::session_form(auth.dev_key, auth.session_id, Some(body.unwrap_or("{}"))))
    }
    fn check_call(&self, r: ReplyRef<'_>) -> Result<()> {
        v2::check_reply(r.status, r.content_type, r.body)
    }
    fn keepalive<'a>(&self, auth: Auth<'a>) -> Outgoing<'a> {
        v2_post(v2::SESSION_INFO, v2::session_form(auth.dev_key, auth.session_id, None))
    }
    fn check_keepalive(&self, r: ReplyRef<'_>) -> Result<()> {
        v2::check_reply(r.status, r.content_type, r.body)
    }
    fn logout<'a>(&self, auth: Auth<'a>) -> Outgoing<'a> {
        v2_post(v2::LOGOUT, v2::session_form(auth.dev_key, auth.session_id, None))
    }
    fn check_logout(&self, r: ReplyRef<'_>) -> Result<()> {
        v2::check_reply(r.status, r.content_type, r.body)
    }
    fn trust_check<'a>(&self, o: &'a Options, auth: Auth<'a>) -> Option<Outgoing<'a>> {
        let (mfa_id, device) = (o.mfa_remember_id.as_ref()?, o.mfa_device.as_deref()?);
        let data = json_exact(&serde_json::json!({ "mfaId": mfa_id.expose(), "deviceId": device }));
        let data = std::str::from_utf8(&data).ok()?;
        Some(v2_post("MFAStatus.json", v2::session_form(auth.dev_key, auth.session_id, Some(data))))
    }
    fn parse_trust(&self, r: ReplyRef<'_>) -> Result<bool> {
        v2::check_reply(r.status, r.content_type, r.body)?;
        let v: serde_json::Value =
            serde_json::from_slice(r.body).map_err(|_| Error::new(ErrorKind::Protocol, "bad MFAStatus reply"))?;
        Ok(v.pointer("/response_data/isTrusted").and_then(serde_json::Value::as_bool).unwrap_or(false))
    }
}

impl Protocol for V3 {
    fn login<'a>(&self, o: &'a Options) -> Outgoing<'a> {
        Outgoing {
            method: "POST",
            path: v3::LOGIN.into(),
            headers: Vec::new(),
            payload: Payload::Json(v3::login_json(o)),
        }
    }
    fn parse_login(&self, r: ReplyRef<'_>) -> Result<LoginReply> {
        v3::parse_login(r.status, r.content_type, r.body)
    }
    fn call_target(&self, method: &str, path: &str) -> Result<CallTarget> {
        let p = check_path(path)?;
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            _ => return Err(Error::invalid("v3 method must be GET, POST, PUT, PATCH or DELETE")),
        };
        let p = p.strip_prefix("v3/").unwrap_or(p);
        if p.is_empty() {
            return Err(Error::invalid("path names no v3 resource"));
        }
        Ok(CallTarget { method, path: format!("v3/{p}") })
    }
    fn call<'a>(&self, auth: Auth<'a>, target: &CallTarget, body: Option<&'a str>) -> Outgoing<'a> {
        let payload = body.map_or(Payload::None, |b| Payload::JsonRef(b.as_bytes()));
        v3_request(target.method, target.path.clone(), auth, payload)
    }
    fn check_call(&self, r: ReplyRef<'_>) -> Result<()> {
        v3::check_call_reply(r.status, r.content_type, r.body)
    }
    fn keepalive<'a>(&self, auth: Auth<'a>) -> Outgoing<'a> {
        v3_request("GET", v3::SESSION_INFO, auth, Payload::None)
    }
    fn check_keepalive(&self, r: ReplyRef<'_>) -> Result<()> {
        v3::check_json_reply(r.status, r.content_type, r.body)
    }
    fn logout<'a>(&self, auth: Auth<'a>) -> Outgoing<'a> {
        v3_request("POST", v3::LOGOUT, auth, Payload::None)
    }
    fn check_logout(&self, r: ReplyRef<'_>) -> Result<()> {
        v3::check_reply(r.status, r.body)
    }
    fn trust_check<'a>(&self, _o: &'a Options, _auth: Auth<'a>) -> Option<Outgoing<'a>> {
        None
    }
    fn parse_trust(&self, _r: ReplyRef<'_>) -> Result<bool> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(api: ApiVersion, method: &str, path: &str) -> Result<(&'static str, String)> {
        for_version(api).call_target(method, path).map(|t| (t.method, t.path))
    }

    #[test]
    fn call_paths() {
        assert_eq!(target(ApiVersion::V2, "", "List/Vendor").unwrap(), ("POST", "List/Vendor.json".into()));
        assert_eq!(target(ApiVersion::V2, "post", "/Crud/Read/Bill.json").unwrap().1, "Crud/Read/Bill.json");
        assert!(target(ApiVersion::V2, "GET", "List/Vendor").is_err());
        assert!(target(ApiVersion::V2, "POST", "/").is_err());
        assert!(target(ApiVersion::V2, "POST", ".json").is_err());
        assert!(target(ApiVersion::V2, "POST", "List/").is_err());
        assert_eq!(target(ApiVersion::V3, "get", "/v3/vendors?max=10").unwrap(), ("GET", "v3/vendors?max=10".into()));
        assert!(target(ApiVersion::V3, "GET", "../admin").is_err());
        assert!(target(ApiVersion::V3, "TRACE", "vendors").is_err());
        assert!(target(ApiVersion::V3, "GET", "http://evil/").is_err());
    }
}
