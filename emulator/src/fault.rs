//! Fault injection: what can go wrong on the main port, and the response bodies
//! that make it go wrong (a torn reply ending in RST, a 64 MiB stream).

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde::{Deserialize, Serialize};
use tokio::time::Sleep;

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

pub(crate) const HUGE_BODY_LEN: usize = 64 << 20;
const HUGE_PREFIX: &[u8] = br#"{"response_status":0,"response_message":"Success","response_data":{"pad":""#;
const HUGE_SUFFIX: &[u8] = br#""}}"#;
const CHUNK: usize = 64 << 10;

/// Response body of the main port.
pub(crate) enum EmuBody {
    Full(Option<Bytes>),
    /// Prefix, then `remaining` filler bytes, then suffix.
    Huge {
        prefix: Option<Bytes>,
        filler: Bytes,
        remaining: usize,
        suffix: Option<Bytes>,
    },
    /// One chunk, a pause so it reaches the peer, then RST.
    Torn {
        first: Option<Bytes>,
        pause: Pin<Box<Sleep>>,
        fd: RawFd,
    },
}

impl EmuBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        EmuBody::Full(Some(b.into()))
    }

    pub fn huge() -> Self {
        EmuBody::Huge {
            prefix: Some(Bytes::from_static(HUGE_PREFIX)),
            filler: Bytes::from(vec![b'a'; CHUNK]),
            remaining: HUGE_BODY_LEN - HUGE_PREFIX.len() - HUGE_SUFFIX.len(),
            suffix: Some(Bytes::from_static(HUGE_SUFFIX)),
        }
    }

    /// `fd` is the connection's socket; it outlives the body, which only the
    /// connection polls.
    pub fn torn(first: Bytes, fd: RawFd) -> Self {
        EmuBody::Torn { first: Some(first), pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))), fd }
    }
}

fn data(b: Bytes) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
    Poll::Ready(Some(Ok(Frame::data(b))))
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            EmuBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            EmuBody::Huge { prefix, filler, remaining, suffix } => {
                if let Some(p) = prefix.take() {
                    return data(p);
                }
                if *remaining > 0 {
                    let n = (*remaining).min(filler.len());
                    *remaining -= n;
                    return data(filler.slice(..n));
                }
                Poll::Ready(suffix.take().map(|s| Ok(Frame::data(s))))
            }
            EmuBody::Torn { first, pause, fd } => {
                if let Some(b) = first.take() {
                    return data(b);
                }
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Linger 0 turns the close that follows the error into an RST.
                let sock = unsafe { BorrowedFd::borrow_raw(*fd) };
                let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
                Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected reset"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, EmuBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            EmuBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
