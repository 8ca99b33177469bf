//! BILL's request and reply formats. Pure functions: no I/O, easy to fuzz.
//!
//! Bodies that carry secrets are built at their exact final size inside
//! zeroizing buffers, so no reallocation leaves an unwiped copy behind.

use std::io::Write;

use zeroize::Zeroizing;

use crate::error::{kind_for_code, Context, Error, ErrorKind, Result};
use crate::secret::Secret;

pub mod protocol;
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
        Some(ct) => Err(quote(ErrorKind::Protocol, "expected a JSON reply, got content type: ", ct, 64)),
        None => Err(Error::new(ErrorKind::Protocol, "reply has no content type; expected JSON")),
    }
}

/// Error for a reply whose HTTP status says the server failed.
pub fn server_error(status: u16) -> Error {
    Error::new(ErrorKind::Server, "BILL answered with a server error").with_http_status(status)
}

/// Most characters of BILL's message in an error.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// Begins the message of an error whose code field was not of BILL's shape.
pub const WITHHELD_CODE: &str = "BILL answered with a non-standard error code (withheld): ";

/// An error from a BILL code and message, classified for the context. A
/// code not of BILL's shape is not passed on: servers have echoed secrets
/// in that field. It is withheld and the error is BILL_ERR_API.
pub fn api_error(code: &str, message: &str, ctx: Context) -> Error {
    if !is_bill_code(code) {
        return quote(ErrorKind::Api, WITHHELD_CODE, message, MAX_MESSAGE_CHARS);
    }
    quote(kind_for_code(code, ctx), "", message, MAX_MESSAGE_CHARS).with_code(code)
}

/// BILL's error codes are `BDC_` and digits.
pub fn is_bill_code(code: &str) -> bool {
    code.strip_prefix("BDC_").is_some_and(|n| (1..=8).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Most bytes of an error message.
pub const MAX_MESSAGE_BYTES: usize = 2048;
/// Most bytes of server text kept past the cut.
pub const REST_BYTES: usize = 1536;

/// An error whose message is `prefix` and then untrusted server text,
/// stripped of control characters and cut to `max` characters (and the
/// message to MAX_MESSAGE_BYTES). The text past the cut is kept aside,
/// bounded, so that `Error::redact` can redact secrets in the whole text
/// before it cuts: a secret across the cut must not survive in part.
pub fn quote(kind: ErrorKind, prefix: &str, text: &str, max: usize) -> Error {
    let head_bytes = MAX_MESSAGE_BYTES.saturating_sub(prefix.len());
    let mut chars = text.chars().filter(|c| !c.is_control()).peekable();
    let mut message = String::from(prefix);
    let mut n = 0;
    while let Some(&c) = chars.peek() {
        if n == max || message.len() - prefix.len() + c.len_utf8() > head_bytes {
            break;
        }
        message.push(c);
        n += 1;
        chars.next();
    }
    let mut rest = String::new();
    for c in chars {
        if rest.len() + c.len_utf8() > REST_BYTES {
            break;
        }
        rest.push(c);
    }
    let e = Error::new(kind, message);
    if rest.is_empty() {
        e
    } else {
        e.with_rest(rest)
    }
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
    fn redaction_sees_past_the_cut() {
        let pw = Secret::from("correct horse battery staple");
        let msg = format!("{}{}", "x".repeat(500), pw.expose());
        let mut e = api_error("BDC_1111", &msg, Context::SignIn);
        assert_eq!(e.message, msg.chars().take(512).collect::<String>());
        assert!(!format!("{e:?}").contains("battery"), "Debug shows nothing past the cut");
        e.redact(&[&pw]);
        assert_eq!(e.message, format!("{}[REDACTED]", "x".repeat(500)));
        // A secret the server itself cut leaves a prefix at the end: dropped.
        let mut e = api_error("BDC_1111", &format!("user {}", &pw.expose()[..12]), Context::SignIn);
        e.redact(&[&pw]);
        assert_eq!(e.message, "user ");
    }

    #[test]
    fn only_bill_shaped_codes_pass() {
        for code in ["BDC_1109", "BDC_1", "BDC_12345678"] {
            assert!(is_bill_code(code), "{code}");
        }
        for code in ["BDC_", "BDC_123456789", "bdc_1109", "BDC_11a", "correct horse", "", "BDC_1109 "] {
            assert!(!is_bill_code(code), "{code}");
        }
        let e = api_error("hunter2-password", "Invalid request.", Context::Call);
        assert_eq!((e.kind, e.code.as_deref()), (ErrorKind::Api, None));
        assert_eq!(e.to_string(), format!("{WITHHELD_CODE}Invalid request."));
    }

    #[test]
    fn json_is_exact() {
        let j = json_exact(&serde_json::json!({"a": "b\"c"}));
        assert_eq!(&j[..], br#"{"a":"b\"c"}"#);
        assert_eq!(j.capacity(), j.len());
    }
}
