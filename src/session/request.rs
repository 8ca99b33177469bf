//! Sending one request: a slot among BILL's in-flight limit, one deadline for
//! every wait and attempt, and jittered retries while BILL answers BDC_1322.

use std::time::Duration;

use super::{jittered, Inner};
use crate::cancel::{cancelled, Cancel, SLICE};
use crate::clock::{self, NS_PER_MS};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{self, Priority};
use crate::secret::Secret;
use crate::transport::{Body, Reply};
use crate::wire::protocol::{Outgoing, Payload, ReplyRef};

/// Attempts at a request that BILL refused with BDC_1322 (too many in flight).
const MAX_1322_ATTEMPTS: u32 = 5;

/// The one point in time by which an operation must be over, and the
/// caller's cancellation handle. Every wait and every attempt inside the
/// operation uses what is left.
#[derive(Clone, Copy, Debug)]
pub struct Deadline<'a> {
    at_ns: u64,
    cancel: Option<&'a Cancel>,
}

impl<'a> Deadline<'a> {
    pub fn after(d: Duration) -> Deadline<'static> {
        Deadline { at_ns: clock::now_ns().saturating_add(d.as_nanos() as u64), cancel: None }
    }

    /// `after(d)`, cancellable with `cancel`.
    pub fn with_cancel(d: Duration, cancel: Option<&'a Cancel>) -> Deadline<'a> {
        Deadline { cancel, ..Deadline::after(d) }
    }

    /// What is left, or `None` once it has passed or the call was cancelled.
    pub fn remaining(&self) -> Option<Duration> {
        self.left().ok()
    }

    /// What is left, or why nothing is.
    pub fn left(&self) -> Result<Duration> {
        if self.cancel.is_some_and(Cancel::is_triggered) {
            return Err(cancelled());
        }
        let now = clock::now_ns();
        if now < self.at_ns {
            Ok(Duration::from_nanos(self.at_ns - now))
        } else {
            Err(timed_out())
        }
    }

    /// How long one wait may last before it looks at the handle again.
    pub fn slice(&self, left: Duration) -> Duration {
        if self.cancel.is_some() {
            left.min(SLICE)
        } else {
            left
        }
    }

    /// The same deadline without the handle.
    pub fn uncancellable(&self) -> Deadline<'static> {
        Deadline { at_ns: self.at_ns, cancel: None }
    }

    pub fn cancel(&self) -> Option<&'a Cancel> {
        self.cancel
    }

    pub fn at_ns(&self) -> u64 {
        self.at_ns
    }
}

pub(super) fn timed_out() -> Error {
    Error::new(ErrorKind::Timeout, "the request timeout passed before BILL answered")
}

impl Inner {
    /// Sends `out` to `base` and parses the reply with `parse`, within
    /// `deadline`. `priority` puts the request ahead of callers' calls
    /// waiting for a slot; `id` is the session id it carries, scrubbed from
    /// any error text with the other secrets.
    pub(super) fn request<T>(
        &self,
        base: &str,
        out: &Outgoing<'_>,
        deadline: Deadline<'_>,
        priority: Priority,
        id: Option<&Secret>,
        mut parse: impl FnMut(Reply) -> Result<T>,
    ) -> Result<T> {
        let o = &self.cfg.opts;
        let url = join(base, &out.path);
        let body = match &out.payload {
            Payload::None => Body::None,
            Payload::Form(f) => Body::Form(f.as_bytes()),
            Payload::Json(j) => Body::Json(j),
            Payload::JsonRef(j) => Body::Json(j),
        };
        let mut attempt = 0;
        loop {
            let left = deadline.left()?;
            let permit = self.gate.acquire(left, priority, deadline.at_ns(), deadline.cancel())?;
            let shared = self.fleet_permit(deadline, priority)?;
            let left = deadline.left()?;
            let reply = self.transport.send(out.method, &url, &out.headers, body, left, deadline.cancel());
            drop(shared);
            drop(permit);
            let result = reply.and_then(&mut parse);
            match result {
                Err(e) if e.code_is("BDC_1322") && attempt + 1 < MAX_1322_ATTEMPTS => {
                    attempt += 1;
                    let wait = Duration::from_nanos(jittered((100 * NS_PER_MS) << attempt.min(5)));
                    match deadline.remaining() {
                        Some(left) if left > wait => sleep_within(deadline, wait)?,
                        _ => return Err(self.clean(e, id)),
                    }
                }
                Err(mut e) => {
                    if e.code_is("BDC_1144") {
                        self.fleet_pause();
                        e.retry_after = Some(limits::pause_until_next_window(self.dev_key_id, o.rate_window));
                    }
                    return Err(self.clean(e, id));
                }
                Ok(v) => return Ok(v),
            }
        }
    }
}

/// Sleeps for `d`, ending early (with the reason) if the call is cancelled.
fn sleep_within(deadline: Deadline<'_>, d: Duration) -> Result<()> {
    let end = std::time::Instant::now() + d;
    loop {
        deadline.left()?;
        let now = std::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep(deadline.slice(end - now));
    }
}

pub(super) fn join(base: &str, path: &str) -> String {
    let mut u = String::with_capacity(base.len() + 1 + path.len());
    u.push_str(base);
    u.push('/');
    u.push_str(path);
    u
}

/// What the protocol's parsers read of a reply.
pub(super) fn view(r: &Reply) -> ReplyRef<'_> {
    ReplyRef { status: r.status, content_type: r.content_type.as_deref(), body: &r.body }
}
