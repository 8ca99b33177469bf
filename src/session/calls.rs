//! Callers' calls: checked input, a sign-in first when the session is known
//! dead, and one shared sign-in plus one retry when BILL says BDC_1109.

use std::sync::atomic::Ordering;

use super::request::{view, Deadline};
use super::{closed, expired, lock, Inner, Response, State};
use crate::clock;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::Priority;
use crate::wire::protocol::Auth;

impl Inner {
    pub(super) fn call(&self, method: &str, path: &str, body: &[u8], deadline: Deadline<'_>) -> Result<Response> {
        let o = &self.cfg.opts;
        let target = self.proto.call_target(method, path)?;
        if body.len() > o.max_response_bytes {
            return Err(Error::invalid("request body is larger than the configured size limit"));
        }
        let body_text = if body.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(body).map_err(|_| Error::invalid("request body is not UTF-8 JSON"))?)
        };
        match self.state() {
            State::Closed => return Err(closed()),
            State::Failed if self.is_dead(clock::now_ns()) => {
                return Err(lock(&self.last_error).clone().unwrap_or_else(expired));
            }
            _ => {}
        }
        // A session known to be dead (lazy mode, or renewals failing) signs in first.
        if self.is_dead(clock::now_ns()) {
            let seen = self.generation.load(Ordering::Acquire);
            self.renew_shared(seen, false, deadline)?;
        }
        let mut retried = false;
        loop {
            let cur = self.current.load_full().ok_or_else(closed)?;
            let sent_ns = clock::now_ns();
            let auth = Auth { dev_key: &o.dev_key, session_id: &cur.id };
            let out = self.proto.call(auth, &target, body_text);
            let result = self.request(&cur.base, &out, deadline, Priority::Caller, Some(&cur.id), |r| {
                self.proto.check_call(view(&r))?;
                Ok(Response { http_status: r.status, body: r.body })
            });
            match result {
                Err(e) if e.kind == ErrorKind::SessionExpired && !retried => {
                    retried = true;
                    self.renew_shared(cur.generation, true, deadline)?;
                }
                Ok(resp) => {
                    // BILL reset its timer when it handled the request, not when we read the reply.
                    self.last_used.fetch_max(sent_ns, Ordering::AcqRel);
                    return Ok(resp);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
