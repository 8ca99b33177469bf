//! Fault injection: what can go wrong on the main port, for which requests,
//! and for how long.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    None,
    /// The main port refuses TCP connections (listener closed, open connections dropped).
    Refuse,
    /// Reply headers and part of the body, then close with RST.
    Reset,
    /// Answer normally, but hold the reply `delay_ms` first.
    Delay,
    Http500,
    Http503,
    /// HTTP 200 whose JSON is cut off.
    Malformed,
    /// The real reply, labelled `text/html`.
    WrongContentType,
    /// A 64 MiB chunked reply.
    HugeBody,
    /// A BILL error that echoes one of the request's secrets (see [`Echo`]).
    Echo,
}

/// Which requests a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    #[default]
    All,
    /// v2 Login/ListOrgs, v3 login, partner login, login-as-user.
    Login,
    /// Every other request: generic endpoints and MFA.
    Calls,
    /// v2 GetSessionInfo, v3 GET login/session.
    Keepalive,
    Logout,
}

/// One injected fault. `count` 0 = until cleared; `delay_ms` is the hold of
/// `delay`, and for `refuse` how long until the port comes back (0 = until cleared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub mode: FaultMode,
    #[serde(default)]
    pub target: FaultTarget,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub count: u32,
    /// What an `echo` fault sends back; `None` = the default [`Echo`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<Echo>,
}

/// Which secret of the request an `echo` fault sends back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EchoSecret {
    #[default]
    Password,
    DevKey,
    UserName,
    SessionId,
}

/// Where the echoed secret goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EchoPlace {
    /// The error message.
    #[default]
    Message,
    /// The error-code field itself.
    Code,
    /// The reply's Content-Type header.
    ContentType,
}

/// How the echoed secret is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EchoEncoding {
    #[default]
    Raw,
    /// application/x-www-form-urlencoded (space as `+`).
    Form,
    /// JSON-escaped where that differs: `\u0022`, `\/`, `\uXXXX` for non-ASCII.
    Json,
    /// Upper-cased.
    Upper,
}

/// An `echo` fault's reply: a BILL error (v2 envelope, v3 array) with one of
/// the request's secrets in it, after `offset` filler characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Echo {
    #[serde(default)]
    pub secret: EchoSecret,
    #[serde(default)]
    pub place: EchoPlace,
    #[serde(default)]
    pub encoding: EchoEncoding,
    /// Filler characters before the secret in its place.
    #[serde(default)]
    pub offset: usize,
    /// The error code (unless `place` is `code`); `None` = `BDC_1111`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The HTTP status; `None` = 200 for v2 (as BILL), 400 for v3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Builder methods that each set one field.
macro_rules! setters {
    ($($field:ident: $ty:ty => $value:expr),* $(,)?) => {
        $(pub fn $field(mut self, $field: $ty) -> Self {
            self.$field = $value;
            self
        })*
    };
}

impl Echo {
    pub fn new(secret: EchoSecret) -> Self {
        Echo { secret, ..Echo::default() }
    }
    setters! {
        place: EchoPlace => place,
        encoding: EchoEncoding => encoding,
        offset: usize => offset,
        code: &str => Some(code.into()),
        status: u16 => Some(status),
    }
}

impl Fault {
    pub fn new(mode: FaultMode) -> Self {
        Fault { mode, target: FaultTarget::All, delay_ms: 0, count: 0, echo: None }
    }
    /// An `echo` fault.
    pub fn echo(echo: Echo) -> Self {
        Fault { echo: Some(echo), ..Fault::new(FaultMode::Echo) }
    }
    setters! {
        target: FaultTarget => target,
        delay_ms: u64 => delay_ms,
        count: u32 => count,
    }
    /// Whether the request is answered by the fault alone (never processed).
    pub(crate) fn replaces_reply(&self) -> bool {
        !matches!(self.mode, FaultMode::Delay | FaultMode::WrongContentType | FaultMode::None)
    }
}
