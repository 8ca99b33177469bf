//! `bill_status`: the one table of statuses. Each variant carries its value
//! (append-only ABI), its doc comment (the header), its text
//! (`bill_status_str`) and the core `ErrorKind` it reports; `from_u32` and
//! the kind mapping are derived from it.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use strum::{EnumIter, EnumMessage, EnumProperty, FromRepr, IntoEnumIterator};

use crate::error::ErrorKind;

/// Status of every fallible call. Values are explicit and never reused;
/// new ones are only ever appended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromRepr, EnumIter, EnumMessage, EnumProperty)]
pub enum bill_status {
    /// Success.
    #[default]
    #[strum(message = "ok")]
    BILL_OK = 0,
    /// A required pointer argument was NULL.
    #[strum(message = "a required pointer argument was NULL", props(kind = "NullArg"))]
    BILL_ERR_NULL_ARG = 1,
    /// An argument was out of range, malformed, not UTF-8, too long, or an
    /// unknown enum value; or a handle that is not live.
    #[strum(message = "invalid argument", props(kind = "InvalidArg"))]
    BILL_ERR_INVALID_ARG = 2,
    /// The output buffer is too small (or NULL); `*len` says how many bytes are needed, NUL included.
    #[strum(message = "buffer too small", props(kind = "BufferTooSmall"))]
    BILL_ERR_BUFFER_TOO_SMALL = 3,
    /// BILL refused the credentials, devKey, organization or login
    /// (BDC_1101/1102/1103/1107/1110/1111/1113; at sign-in also BDC_1109,
    /// BDC_1123/1129 and a v3 HTTP 401).
    #[strum(message = "BILL refused the sign-in (credentials, devKey, organization or login)", props(kind = "Auth"))]
    BILL_ERR_AUTH = 4,
    /// The session is no longer valid (BDC_1109, or idle past the timeout).
    #[strum(message = "session expired", props(kind = "SessionExpired"))]
    BILL_ERR_SESSION_EXPIRED = 5,
    /// The network failed: refused, reset, DNS, closed mid-reply.
    #[strum(message = "network error", props(kind = "Network"))]
    BILL_ERR_NETWORK = 6,
    /// A connect or request timeout passed.
    #[strum(message = "timed out", props(kind = "Timeout"))]
    BILL_ERR_TIMEOUT = 7,
    /// BILL's reply could not be understood (not JSON, wrong shape, wrong content type).
    #[strum(message = "unexpected reply from BILL", props(kind = "Protocol"))]
    BILL_ERR_PROTOCOL = 8,
    /// BDC_1144 or BDC_1322, or the client-side sign-in budget is used up.
    /// `bill_last_error_retry_after_ms` says when retrying makes sense.
    #[strum(message = "rate limited", props(kind = "RateLimited"))]
    BILL_ERR_RATE_LIMITED = 9,
    /// BDC_1361: the operation, or a sign-in, needs an MFA-trusted session.
    #[strum(message = "MFA-trusted session required", props(kind = "MfaRequired"))]
    BILL_ERR_MFA_REQUIRED = 10,
    /// Any other BILL error code; see `bill_last_error_code`.
    #[strum(message = "BILL API error", props(kind = "Api"))]
    BILL_ERR_API = 11,
    /// The session was logged out or closed.
    #[strum(message = "session closed", props(kind = "Closed"))]
    BILL_ERR_CLOSED = 12,
    /// A bug inside libbill was caught at the boundary; the process is unharmed.
    #[strum(message = "internal panic (caught)", props(kind = "Panic"))]
    BILL_ERR_PANIC = 13,
    /// The handle was created before fork(); it cannot be used in the child.
    #[strum(message = "handle used in a fork() child", props(kind = "Forked"))]
    BILL_ERR_FORKED = 14,
    /// TLS failed (for example an untrusted certificate).
    #[strum(message = "TLS error", props(kind = "Tls"))]
    BILL_ERR_TLS = 15,
    /// BILL answered with HTTP 5xx or BDC_1001 (transient).
    #[strum(message = "BILL server error", props(kind = "Server"))]
    BILL_ERR_SERVER = 16,
    /// The reply was larger than the configured limit.
    #[strum(message = "reply too large", props(kind = "ResponseTooLarge"))]
    BILL_ERR_RESPONSE_TOO_LARGE = 17,
    /// A call that may block on the network was made inside an event callback.
    #[strum(message = "not allowed inside an event callback", props(kind = "InCallback"))]
    BILL_ERR_IN_CALLBACK = 18,
    /// An internal error that is not a panic.
    #[strum(message = "internal error", props(kind = "Internal"))]
    BILL_ERR_INTERNAL = 19,
}

impl bill_status {
    /// The status with value `v`; an unknown value (from a newer library) is BILL_ERR_INTERNAL.
    pub fn from_u32(v: u32) -> bill_status {
        bill_status::from_repr(v).unwrap_or(bill_status::BILL_ERR_INTERNAL)
    }

    /// The core error kind this status reports, `None` for BILL_OK.
    pub fn kind_name(self) -> Option<&'static str> {
        self.get_str("kind")
    }

    /// The NUL-terminated text, for `bill_status_str`. Static storage.
    pub(crate) fn c_text(v: u32) -> *const c_char {
        static TEXTS: OnceLock<Vec<(u32, CString)>> = OnceLock::new();
        let texts = TEXTS.get_or_init(|| {
            bill_status::iter()
                .map(|s| (s as u32, CString::new(s.get_message().unwrap_or_default()).unwrap_or_default()))
                .chain([(u32::MAX, CString::new("unknown status").unwrap_or_default())])
                .collect()
        });
        let unknown = &texts[texts.len() - 1].1;
        texts.iter().find(|(k, _)| *k == v).map_or(unknown, |(_, t)| t).as_ptr()
    }
}

impl From<ErrorKind> for bill_status {
    fn from(kind: ErrorKind) -> bill_status {
        let name: &'static str = kind.into();
        bill_status::iter().find(|s| s.kind_name() == Some(name)).unwrap_or(bill_status::BILL_ERR_INTERNAL)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn every_kind_has_exactly_one_status() {
        for kind in ErrorKind::iter() {
            let name: &'static str = kind.into();
            let n = bill_status::iter().filter(|s| s.kind_name() == Some(name)).count();
            assert_eq!(n, 1, "{kind:?} is reported by {n} statuses");
        }
        let kinds: HashSet<&str> = ErrorKind::iter().map(<&str>::from).collect();
        for s in bill_status::iter().filter(|s| *s != bill_status::BILL_OK) {
            assert!(kinds.contains(s.kind_name().unwrap_or("")), "{s:?} names no ErrorKind");
        }
    }

    #[test]
    fn values_round_trip_and_have_text() {
        for (i, s) in bill_status::iter().enumerate() {
            assert_eq!(s as u32, i as u32, "values stay dense and in order");
            assert_eq!(bill_status::from_u32(s as u32), s);
            // SAFETY: c_text returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(bill_status::c_text(s as u32)) }.to_str().unwrap();
            assert_eq!(Some(text), s.get_message());
        }
        assert_eq!(bill_status::from_u32(1000), bill_status::BILL_ERR_INTERNAL);
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(bill_status::c_text(1000)) }.to_str().unwrap(), "unknown status");
    }
}
