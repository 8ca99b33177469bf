//! Errors of the core. The C boundary maps `ErrorKind` to `bill_status`.

use std::fmt;
use std::time::Duration;

/// What went wrong, coarse enough for callers to act on. The C boundary
/// finds each kind's status by its name (src/ffi/status.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumIter)]
pub enum ErrorKind {
    NullArg,
    InvalidArg,
    BufferTooSmall,
    /// BILL rejected the credentials, devKey, org or login (permanent).
    Auth,
    /// The session is dead (BDC_1109, or idle past the timeout).
    SessionExpired,
    Network,
    Timeout,
    /// A reply that is not what BILL documents.
    Protocol,
    /// BDC_1144 / BDC_1322, or the client-side sign-in budget.
    RateLimited,
    /// BDC_1361: the operation needs an MFA-trusted session.
    MfaRequired,
    /// Any other BILL error code.
    Api,
    /// The session was logged out or closed.
    Closed,
    Panic,
    /// The handle was inherited across fork().
    Forked,
    Tls,
    /// HTTP 5xx or BDC_1001 (transient).
    Server,
    ResponseTooLarge,
    /// A blocking call from inside an event callback.
    InCallback,
    Internal,
}

/// An error with BILL's code and message. Server text in it is made safe by
/// `redact` before it leaves the library.
#[derive(Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// BILL's code, such as `BDC_1109`.
    pub code: Option<String>,
    pub message: String,
    pub http_status: Option<u16>,
    /// When retrying makes sense (rate limits).
    pub retry_after: Option<Duration>,
    /// Server text past the message's cut, kept (bounded) so that `redact`
    /// sees a secret whole even when the cut falls inside it. Never shown.
    rest: Option<String>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("http_status", &self.http_status)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, code: None, message: message.into(), http_status: None, retry_after: None, rest: None }
    }

    /// Keeps server text that did not fit the message, for `redact`.
    pub(crate) fn with_rest(mut self, rest: String) -> Error {
        self.rest = Some(rest);
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Error {
        self.code = Some(code.into());
        self
    }

    pub fn with_http_status(mut self, status: u16) -> Error {
        self.http_status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, d: Duration) -> Error {
        self.retry_after = Some(d);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArg, message)
    }

    /// Worth retrying later with the same credentials.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Network
                | ErrorKind::Timeout
                | ErrorKind::Server
                | ErrorKind::Protocol
                | ErrorKind::ResponseTooLarge
        )
    }

    /// Renewing again cannot help: the account, devKey or org is refused.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, ErrorKind::Auth | ErrorKind::MfaRequired)
    }

    /// Makes the error safe to show: redacts `secrets` (any number: the
    /// credentials and every session id the session has held) in the whole
    /// server text, the part past the message's cut included, then cuts it
    /// again (`secret::scrub_to`), and withholds a code that held a secret.
    /// Every error carrying server text must pass through here before it
    /// leaves the library (`secret::scrub` on the message alone also leaves
    /// no secret, but cannot see past the cut).
    pub fn redact(&mut self, secrets: &[&crate::secret::Secret]) {
        // The whole server text first, then the cut the message had.
        let cut = self.message.chars().count();
        let whole = match self.rest.take() {
            Some(rest) => self.message.clone() + &rest,
            None => self.message.clone(),
        };
        self.message = crate::secret::scrub_to(&whole, secrets, cut);
        if let Some(code) = &self.code {
            if crate::secret::scrub_to(code, secrets, usize::MAX) != *code {
                self.code = None;
            }
        }
    }

    /// True when BILL answered with exactly this code.
    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Where a BILL error code came from: codes such as BDC_1129 mean a bad
/// orgId at sign-in but a bad argument in an ordinary call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    SignIn,
    Call,
}

/// Maps a BILL error code to a kind. Unknown codes are `Api`.
pub fn kind_for_code(code: &str, ctx: Context) -> ErrorKind {
    match code {
        "BDC_1101" | "BDC_1102" | "BDC_1103" | "BDC_1107" | "BDC_1110" | "BDC_1111" | "BDC_1113" => ErrorKind::Auth,
        // At sign-in there is no session yet: an invalid-session answer refuses the sign-in.
        "BDC_1109" | "BDC_1123" | "BDC_1129" if ctx == Context::SignIn => ErrorKind::Auth,
        "BDC_1109" => ErrorKind::SessionExpired,
        "BDC_1144" | "BDC_1322" => ErrorKind::RateLimited,
        "BDC_1361" => ErrorKind::MfaRequired,
        "BDC_1001" => ErrorKind::Server,
        _ => ErrorKind::Api,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_by_context() {
        assert_eq!(kind_for_code("BDC_1129", Context::SignIn), ErrorKind::Auth);
        assert_eq!(kind_for_code("BDC_1129", Context::Call), ErrorKind::Api);
        assert_eq!(kind_for_code("BDC_1109", Context::Call), ErrorKind::SessionExpired);
        assert_eq!(kind_for_code("BDC_1361", Context::Call), ErrorKind::MfaRequired);
        assert_eq!(kind_for_code("BDC_9999", Context::Call), ErrorKind::Api);
    }

    #[test]
    fn display_has_code_and_status() {
        let e = Error::new(ErrorKind::Auth, "Developer key is invalid.").with_code("BDC_1102").with_http_status(400);
        assert_eq!(e.to_string(), "BDC_1102: Developer key is invalid. (HTTP 400)");
    }
}
