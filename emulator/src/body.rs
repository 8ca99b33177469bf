//! Response bodies of the main port: a full body, a 64 MiB stream, and a
//! torn reply ending in RST (the last two for faults).

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

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
