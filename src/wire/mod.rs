//! BILL's request and reply formats. Pure functions: no I/O, easy to fuzz.
//!
//! Bodies that carry secrets are built at their exact final size inside
//! zeroizing buffers, so no reallocation leaves an unwiped copy behind.

use std::io::Write;

use zeroize::Zeroizing;

use crate::error::{kind_for_code, Context, Error, ErrorKind, Result};
use crate::secret::Secret;

pub mod v2;
pub mod v3;

/// What a successful sign-in returns, in either API version.
#[derive(Debug)]
pub struct LoginReply {
    pub session_id: Secret,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    /// v2 only: where BILL says later calls should go.
    pub api_endpoint: Option<String>,
    /// v3 only: whether the session is MFA-trusted.
    pub trusted: bool,
}

/// Longest session id accepted from a server; BILL's are under 100 bytes.
pub const MAX_SESSION_ID: usize = 1024;

fn check_session_id(id: &Secret) -> Result<()> {
    if id.is_empty() || id.len() > MAX_SESSION_ID || id.expose().chars().any(char::is_control) {
        return Err(Error::new(ErrorKind::Protocol, "sign-in reply has an empty or malformed sessionId"));
    }
    Ok(())
}

/// A reply we parse must say it is JSON; anything else is a proxy page or a fault.
pub fn require_json(content_type: Option<&str>) -> Result<()> {
    match content_type {
        Some(ct) if ct.to_ascii_lowercase().contains("json") => Ok(()),
        Some(ct) => Err(Error::new(
            ErrorKind::Protocol,
            format!("expected a JSON reply, got content type: {}", server_text(ct)),
        )),
        None => Err(Error::new(ErrorKind::Protocol, "reply has no content type; expected JSON")),
    }
}

/// Error for a reply whose HTTP status says the server failed.
pub fn server_error(status: u16) -> Error {
    Error::new(ErrorKind::Server, "BILL answered with a server error").with_http_status(status)
}

/// An error from a BILL code and message, classified for the context. A
/// code not of BILL's shape is not passed on: servers have echoed secrets
/// in that field. It is withheld and the error is BILL_ERR_API.
pub fn api_error(code: &str, message: &str, ctx: Context) -> Error {
    if !is_bill_code(code) {
        return Error::new(ErrorKind::Api, withheld_code(message));
    }
    Error::new(kind_for_code(code, ctx), server_text(message)).with_code(code)
}

/// BILL's error codes are `BDC_` and digits.
pub fn is_bill_code(code: &str) -> bool {
    code.strip_prefix("BDC_").is_some_and(|n| (1..=8).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The message of an error whose code field was not of BILL's shape.
pub fn withheld_code(message: &str) -> String {
    format!("BILL answered with a non-standard error code (withheld): {}", server_text(message))
}

/// Most bytes of server text kept in an error. Generous on purpose: secrets
/// are redacted on the whole of it before the session cuts the message to
/// its final length (`secret::scrub`), so none survives half-cut.
pub const SERVER_TEXT_BYTES: usize = 1536;

/// Untrusted text from a server, stripped of control characters and bounded
/// to SERVER_TEXT_BYTES. Callers put it at the end of a message, where the
/// final cut happens.
pub fn server_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SERVER_TEXT_BYTES));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > SERVER_TEXT_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Untrusted text from a server, cut and stripped of control characters.
pub fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Serializes `value` as JSON into a zeroizing buffer of exactly the right size.
pub fn json_exact<T: serde::Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing plain structs of strings cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    let mut out = Zeroizing::new(Vec::with_capacity(count.0));
    let _ = serde_json::to_writer(&mut *out, value);
    out
}

/// Form-encodes `pairs` into a zeroizing buffer of exactly the right size.
pub fn form_exact(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let enc_len = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).map(str::len).sum::<usize>();
    let total: usize =
        pairs.iter().map(|(k, v)| enc_len(k) + 1 + enc_len(v)).sum::<usize>() + pairs.len().saturating_sub(1);
    let mut out = Zeroizing::new(String::with_capacity(total));
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.extend(form_urlencoded::byte_serialize(k.as_bytes()));
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
    }
    debug_assert_eq!(out.len(), total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_is_exact_and_encoded() {
        let f = form_exact(&[("sessionId", "a+b/c=!"), ("data", "{\"x\":1}")]);
        assert_eq!(f.as_str(), "sessionId=a%2Bb%2Fc%3D%21&data=%7B%22x%22%3A1%7D");
        assert_eq!(f.capacity(), f.len());
    }

    #[test]
    fn json_is_exact() {
        let j = json_exact(&serde_json::json!({"a": "b\"c"}));
        assert_eq!(&j[..], br#"{"a":"b\"c"}"#);
        assert_eq!(j.capacity(), j.len());
    }
}
